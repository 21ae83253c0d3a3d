/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <systemd/sd-event.h>

#include "backend-harness.h"
#include "common/iov.h"
#include "common/macro.h"

/* Safety net only: each step waits at most 100 ms, and a test gives up after this many idle steps. */
#define HARNESS_STEP_USEC (100 * 1000)
#define HARNESS_MAX_IDLE_STEPS 600

static HarnessBuffer *buffer_of(VideoBuffer *vb) {
        return (HarnessBuffer *) ((uint8_t *) vb - offsetof(HarnessBuffer, vb));
}

static void record_done(Harness *h, HarnessBuffer *b) {
        if (h->n_done == h->alloc_done) {
                size_t n = MAX(h->alloc_done * 2, (size_t) 64);
                HarnessBuffer **a = reallocarray(h->done, n, sizeof(*a));

                if (!a)
                        abort();
                h->done = a;
                h->alloc_done = n;
        }
        h->done[h->n_done++] = b;
}

static void on_buffer_done(void *userdata, VideoBuffer *vb, const VideoBufferResult *result) {
        Harness *h = userdata;
        HarnessBuffer *b = buffer_of(vb);

        if (!h->stream)
                h->callbacks_after_free++;
        if (h->in_callback)
                h->reentrant_calls++;
        if (!b->queued)
                abort(); /* given back twice, or never lent */
        b->queued = false;
        b->result = *result;
        b->done_count++;
        record_done(h, b);
        if (h->free_stream_in_callback && h->stream) {
                h->free_stream_in_callback = false;
                harness_stream_free(h);
        }
}

static void on_format_changed(void *userdata) {
        Harness *h = userdata;

        if (!h->stream)
                h->callbacks_after_free++;
        if (h->in_callback)
                h->reentrant_calls++;
        h->format_changes++;
}

static void on_drain_done(void *userdata) {
        Harness *h = userdata;

        if (!h->stream)
                h->callbacks_after_free++;
        if (h->in_callback)
                h->reentrant_calls++;
        h->drains_done++;
}

static void on_clear_done(void *userdata, VideoQueue queue) {
        Harness *h = userdata;

        if (!h->stream)
                h->callbacks_after_free++;
        if (h->in_callback)
                h->reentrant_calls++;
        h->clears_done[queue]++;
}

static void on_error(void *userdata, int error) {
        Harness *h = userdata;

        if (!h->stream)
                h->callbacks_after_free++;
        h->errors++;
        h->last_error = error;
}

int harness_new(const BackendOps *ops, unsigned threads, Harness **ret) {
        Harness *h = calloc(1, sizeof(*h));
        BackendConfig config = { .device_fd = -1, .threads = threads };
        int r;

        if (!h)
                return -ENOMEM;
        r = sd_event_new(&h->event);
        if (r >= 0)
                r = ops->new (&config, h->event, &h->backend);
        if (r < 0) {
                harness_free(h);
                return r;
        }
        h->callbacks = (BackendStreamCallbacks){
                .buffer_done = on_buffer_done,
                .format_changed = on_format_changed,
                .drain_done = on_drain_done,
                .clear_done = on_clear_done,
                .error = on_error,
        };
        *ret = h;
        return 0;
}

int harness_stream_new(Harness *h, uint32_t coded_format) {
        int r;

        h->in_callback = true; /* a callback from inside stream_new would be re-entrant */
        r = h->backend->ops->stream_new(h->backend, coded_format, &h->callbacks, h, &h->stream);
        h->in_callback = false;
        return r;
}

void harness_stream_free(Harness *h) {
        if (!h->stream)
                return;
        h->backend->ops->stream_free(h->stream);
        h->stream = NULL;
}

void harness_free(Harness *h) {
        if (!h)
                return;
        harness_stream_free(h);
        if (h->backend)
                h->backend->ops->free(h->backend);
        sd_event_unref(h->event);
        free(h->done);
        free(h);
}

HarnessBuffer *harness_buffer_new(
        VideoQueue queue, unsigned n_planes, const size_t sizes[], unsigned n_segments, unsigned seed) {
        HarnessBuffer *b = calloc(1, sizeof(*b));

        if (!b)
                return NULL;
        n_segments = MIN(MAX(n_segments, 1u), (unsigned) HARNESS_MAX_SEGMENTS);
        b->vb.queue = queue;
        b->vb.n_planes = n_planes;
        for (unsigned p = 0; p < n_planes; p++) {
                size_t left = sizes[p];
                unsigned n = 0;

                for (unsigned i = 0; i < n_segments && left > 0; i++) {
                        size_t len = left;

                        if (i + 1 < n_segments) {
                                seed = seed * 1103515245u + 12345u;
                                len = MIN(left, 1 + (seed >> 8) % (sizes[p] / n_segments * 2 + 1));
                        }
                        b->iov[p][n].iov_base = malloc(len);
                        if (!b->iov[p][n].iov_base)
                                abort();
                        memset(b->iov[p][n].iov_base, 0xAA, len);
                        b->iov[p][n].iov_len = len;
                        left -= len;
                        n++;
                }
                b->vb.planes[p].iov = b->iov[p];
                b->vb.planes[p].n_iov = n;
                b->vb.planes[p].length = sizes[p];
        }
        return b;
}

void harness_buffer_free(HarnessBuffer *b) {
        if (!b)
                return;
        for (unsigned p = 0; p < VIDEO_MAX_PLANES; p++)
                for (unsigned i = 0; i < HARNESS_MAX_SEGMENTS; i++)
                        free(b->iov[p][i].iov_base);
        free(b);
}

void harness_buffer_write(HarnessBuffer *b, unsigned plane, const void *data, size_t len) {
        (void) buf_to_iov(b->vb.planes[plane].iov, b->vb.planes[plane].n_iov, 0, data, len);
}

void harness_buffer_read(const HarnessBuffer *b, unsigned plane, void *data, size_t len) {
        (void) iov_to_buf(b->vb.planes[plane].iov, b->vb.planes[plane].n_iov, 0, data, len);
}

int harness_queue(Harness *h, HarnessBuffer *b, uint64_t timestamp, uint32_t data_size) {
        int r;

        b->vb.timestamp = timestamp;
        b->vb.planes[0].data_size = b->vb.queue == VIDEO_QUEUE_INPUT ? data_size : 0;
        b->queued = true;
        h->in_callback = true;
        r = h->backend->ops->queue_buffer(h->stream, &b->vb);
        h->in_callback = false;
        if (r < 0)
                b->queued = false;
        return r;
}

bool harness_run_until(Harness *h, bool (*pred)(Harness *h, void *userdata), void *userdata) {
        unsigned idle = 0;

        while (!pred(h, userdata)) {
                int r = sd_event_run(h->event, HARNESS_STEP_USEC);

                if (r < 0)
                        return false;
                if (r == 0 && ++idle > HARNESS_MAX_IDLE_STEPS)
                        return false;
                if (r > 0)
                        idle = 0;
        }
        return true;
}

void harness_settle(Harness *h) {
        unsigned quiet = 0;

        while (quiet < 3) {
                int r = sd_event_run(h->event, HARNESS_STEP_USEC);

                quiet = r > 0 ? 0 : quiet + 1;
        }
}

HarnessBuffer *harness_take_done(Harness *h) {
        if (h->n_taken >= h->n_done)
                return NULL;
        return h->done[h->n_taken++];
}
