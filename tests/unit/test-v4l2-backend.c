/* SPDX-License-Identifier: GPL-2.0-or-later */

/* The V4L2 backends through the backend API, against the fake M2M device (tests/fakes/fake-v4l2.h).
 * Guest memory is heap memory described by iovecs, as the device model hands it over. */

#include <dirent.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <cmocka.h>
#include <linux/videodev2.h>
#include <systemd/sd-event.h>

#include "backend/v4l2/v4l2.h"
#include "common/iov.h"
#include "common/log.h"
#include "common/macro.h"
#include "fake-v4l2.h"

#define MAX_DONE 512
#define MAX_TBUFS 128
#define SEGS 3

typedef struct TBuf {
        VideoBuffer vb;
        struct iovec iov[VIDEO_MAX_PLANES][SEGS];
        void *mem[VIDEO_MAX_PLANES * SEGS];
        unsigned n_mem;
        bool done;
        VideoBufferResult res;
        unsigned order;
} TBuf;

typedef struct T {
        sd_event *e;
        FakeV4l2 *fake;
        Backend *b;
        BackendStream *s;
        TBuf *bufs[MAX_TBUFS];
        unsigned n_bufs;
        TBuf *done[MAX_DONE];
        unsigned n_done;
        unsigned n_format, n_drain, n_clear[2], n_error;
        int last_error;
        unsigned done_at_drain; /* n_done when drain_done came */
        bool free_in_callback;
        unsigned calls_after_free;
        bool freed;
        size_t input_cap; /* capacity of the input buffers made by tbuf_input() (at least their data) */
} T;

static void cb_buffer_done(void *userdata, VideoBuffer *buf, const VideoBufferResult *res) {
        T *t = userdata;
        TBuf *tb = (TBuf *) buf;

        if (t->freed)
                t->calls_after_free++;
        assert_false(tb->done); /* exactly one buffer_done per queue_buffer */
        tb->done = true;
        tb->res = *res;
        tb->order = t->n_done;
        assert_true(t->n_done < MAX_DONE);
        t->done[t->n_done++] = tb;
        if (t->free_in_callback && !t->freed) {
                t->b->ops->stream_free(t->s);
                t->s = NULL;
                t->freed = true;
        }
}

static void cb_format_changed(void *userdata) {
        T *t = userdata;

        if (t->freed)
                t->calls_after_free++;
        t->n_format++;
}

static void cb_drain_done(void *userdata) {
        T *t = userdata;

        if (t->freed)
                t->calls_after_free++;
        t->n_drain++;
        t->done_at_drain = t->n_done;
}

static void cb_clear_done(void *userdata, VideoQueue q) {
        T *t = userdata;

        if (t->freed)
                t->calls_after_free++;
        t->n_clear[q]++;
}

static void cb_error(void *userdata, int error) {
        T *t = userdata;

        if (t->freed)
                t->calls_after_free++;
        t->n_error++;
        t->last_error = error;
}

static const BackendStreamCallbacks callbacks = {
        .buffer_done = cb_buffer_done,
        .format_changed = cb_format_changed,
        .drain_done = cb_drain_done,
        .clear_done = cb_clear_done,
        .error = cb_error,
};

static T *t_new(const FakeV4l2Config *cfg, bool force_copy) {
        T *t = calloc(1, sizeof(*t));
        BackendConfig bc = { .device_fd = -1, .force_copy = force_copy };

        assert_non_null(t);
        assert_int_equal(sd_event_new(&t->e), 0);
        t->fake = fake_v4l2_new(cfg);
        assert_non_null(t->fake);
        assert_int_equal(backend_v4l2_new_with_ops(&fake_v4l2_ops, t->fake,
                                                   cfg->encoder ? VIDEO_ROLE_ENCODER : VIDEO_ROLE_DECODER,
                                                   &bc, t->e, &t->b),
                         0);
        return t;
}

static void t_stream(T *t, uint32_t coded) {
        assert_int_equal(t->b->ops->stream_new(t->b, coded, &callbacks, t, &t->s), 0);
}

static void tbuf_free(TBuf *tb) {
        for (unsigned i = 0; i < tb->n_mem; i++)
                free(tb->mem[i]);
        free(tb);
}

static void t_free(T *t) {
        if (t->s)
                t->b->ops->stream_free(t->s);
        t->b->ops->free(t->b);
        /* Every instance closed, every mapping gone. */
        assert_int_equal(fake_v4l2_stats(t->fake)->open_instances, 0);
        assert_int_equal(fake_v4l2_stats(t->fake)->active_maps, 0);
        fake_v4l2_free(t->fake);
        for (unsigned i = 0; i < t->n_bufs; i++)
                tbuf_free(t->bufs[i]);
        sd_event_unref(t->e);
        free(t);
}

/* Steps the loop until cond holds. The fake works synchronously, so an idle loop means a hang: the bound on
 * idle iterations is only a safety net. */
#define RUN_UNTIL(t, cond)                                    \
        do {                                                  \
                unsigned _idle = 0;                           \
                while (!(cond)) {                             \
                        int _r = sd_event_run((t)->e, 50000); \
                        assert_true(_r >= 0);                 \
                        if (_r == 0)                          \
                                assert_true(++_idle < 40);    \
                }                                             \
        } while (0)

/* Runs whatever is ready now, without waiting. */
static void t_settle(T *t) {
        for (unsigned i = 0; i < 100; i++)
                if (sd_event_run(t->e, 0) <= 0)
                        return;
}

/* A buffer of n_planes planes of the given sizes. contiguous: one allocation, planes back to back, one
 * segment each (zero copy possible); else each plane in SEGS separate segments. */
static TBuf *tbuf_new(T *t, VideoQueue q, unsigned n_planes, const size_t *sizes, bool contiguous) {
        TBuf *tb = calloc(1, sizeof(*tb));
        size_t total = 0;

        assert_non_null(tb);
        assert_true(t->n_bufs < MAX_TBUFS);
        t->bufs[t->n_bufs++] = tb;
        tb->vb.queue = q;
        tb->vb.n_planes = n_planes;
        for (unsigned p = 0; p < n_planes; p++)
                total += sizes[p];
        if (contiguous) {
                uint8_t *m = calloc(1, total);
                size_t off = 0;

                assert_non_null(m);
                tb->mem[tb->n_mem++] = m;
                for (unsigned p = 0; p < n_planes; p++) {
                        tb->iov[p][0] = (struct iovec){ m + off, sizes[p] };
                        tb->vb.planes[p] = (VideoPlane){ .iov = tb->iov[p], .n_iov = 1, .length = sizes[p] };
                        off += sizes[p];
                }
                return tb;
        }
        for (unsigned p = 0; p < n_planes; p++) {
                size_t left = sizes[p];

                for (unsigned s = 0; s < SEGS; s++) {
                        size_t n = s == SEGS - 1 ? left : sizes[p] / SEGS;
                        void *m = calloc(1, n ? n : 1);

                        assert_non_null(m);
                        tb->mem[tb->n_mem++] = m;
                        tb->iov[p][s] = (struct iovec){ m, n };
                        left -= n;
                }
                tb->vb.planes[p] = (VideoPlane){ .iov = tb->iov[p], .n_iov = SEGS, .length = sizes[p] };
        }
        return tb;
}

static TBuf *tbuf_input(T *t, const uint8_t *data, size_t len, uint64_t ts, bool contiguous) {
        size_t size = MAX(len, t->input_cap);
        TBuf *tb = tbuf_new(t, VIDEO_QUEUE_INPUT, 1, &size, contiguous);

        buf_to_iov(tb->vb.planes[0].iov, tb->vb.planes[0].n_iov, 0, data, len);
        tb->vb.planes[0].data_size = (uint32_t) len;
        tb->vb.timestamp = ts;
        return tb;
}

static TBuf *tbuf_output(T *t, bool contiguous) {
        VideoParams p;
        size_t sizes[VIDEO_MAX_PLANES];

        assert_int_equal(t->b->ops->get_params(t->s, VIDEO_QUEUE_OUTPUT, &p), 0);
        for (unsigned i = 0; i < p.num_planes; i++)
                sizes[i] = p.planes[i].plane_size;
        return tbuf_new(t, VIDEO_QUEUE_OUTPUT, p.num_planes, sizes, contiguous);
}

static void t_queue(T *t, TBuf *tb) {
        assert_int_equal(t->b->ops->queue_buffer(t->s, &tb->vb), 0);
}

static unsigned count_done(T *t, VideoQueue q, uint32_t with_flags, uint32_t without_flags) {
        unsigned n = 0;

        for (unsigned i = 0; i < t->n_done; i++)
                if (t->done[i]->vb.queue == q && (t->done[i]->res.flags & with_flags) == with_flags &&
                    !(t->done[i]->res.flags & without_flags))
                        n++;
        return n;
}

/* A coded stream of frames; returns its length. */
static size_t make_stream(uint8_t *out, size_t cap, unsigned n, unsigned w, unsigned h, uint8_t seed0) {
        size_t len = 0;

        for (unsigned i = 0; i < n; i++) {
                size_t k = fake_v4l2_make_frame(out + len, cap - len, w, h, i, (uint8_t) (seed0 + i));

                assert_true(k > 0);
                len += k;
        }
        return len;
}

/* Queues a coded stream cut in chunks of `chunk` bytes, timestamps 1000 * (chunk index + 1). */
static unsigned queue_stream(T *t, const uint8_t *data, size_t len, size_t chunk, bool contiguous) {
        unsigned n = 0;

        for (size_t off = 0; off < len; off += chunk, n++)
                t_queue(t, tbuf_input(t, data + off, MIN(chunk, len - off), 1000 * (n + 1), contiguous));
        return n;
}

/* Checks a decoded picture (YUV420 layout from the params it was decoded with) against the fake's pattern.
 */
static void check_picture_with(TBuf *tb, const VideoParams *pp, unsigned w, unsigned h, uint8_t seed) {
        VideoParams p = *pp;
        bool nv12 = p.format == VIDEO_FORMAT_NV12;

        assert_true(p.format == VIDEO_FORMAT_YUV420 || nv12);
        assert_int_equal(p.num_planes, nv12 ? 2 : 3);
        assert_int_equal(tb->vb.n_planes, p.num_planes);
        for (unsigned pl = 0; pl < p.num_planes; pl++) {
                unsigned pw = pl == 0 || nv12 ? w : w / 2, ph = pl ? h / 2 : h;
                uint32_t stride = p.planes[pl].stride;

                assert_true(tb->res.sizes[pl] >= stride * (ph - 1) + pw);
                for (unsigned y = 0; y < ph; y++)
                        for (unsigned x = 0; x < pw; x++) {
                                /* NV12: the second plane interleaves U and V. */
                                uint8_t v = 0, want = nv12 && pl == 1
                                                              ? fake_v4l2_pixel(1 + x % 2, x / 2, y, seed)
                                                              : fake_v4l2_pixel(pl, x, y, seed);

                                assert_int_equal(iov_to_buf(tb->vb.planes[pl].iov, tb->vb.planes[pl].n_iov,
                                                            (size_t) y * stride + x, &v, 1),
                                                 1);
                                if (v != want)
                                        fail_msg("plane %u pixel %u,%u: %u != %u", pl, x, y, v, want);
                        }
        }
}

static void check_picture(T *t, TBuf *tb, unsigned w, unsigned h, uint8_t seed) {
        VideoParams p;

        assert_int_equal(t->b->ops->get_params(t->s, VIDEO_QUEUE_OUTPUT, &p), 0);
        check_picture_with(tb, &p, w, h, seed);
}

/* The frames (not EOS, not ERR) completed on the output queue, in completion order. */
static unsigned output_frames(T *t, TBuf **ret, unsigned max) {
        unsigned n = 0;

        for (unsigned i = 0; i < t->n_done && n < max; i++)
                if (t->done[i]->vb.queue == VIDEO_QUEUE_OUTPUT &&
                    !(t->done[i]->res.flags & (VIDEO_BUFFER_F_ERR | VIDEO_BUFFER_F_EOS)))
                        ret[n++] = t->done[i];
        return n;
}

/* Decoder start-up: bitstream in, wait for format_changed. */
static void decode_until_format(T *t, const uint8_t *data, size_t len, size_t chunk, bool contiguous) {
        queue_stream(t, data, len, chunk, contiguous);
        RUN_UNTIL(t, t->n_format == 1);
}

/* ---- decoder ------------------------------------------------------------------------------------- */

static void decode_session(const FakeV4l2Config *cfg, bool force_copy, bool contiguous) {
        static uint8_t data[3 * (16 + 72 * 48 * 3 / 2)];
        T *t = t_new(cfg, force_copy);
        TBuf *frames[8];
        size_t len = make_stream(data, sizeof(data), 3, 72, 48, 10);
        VideoParams p;
        unsigned n_in;

        t_stream(t, VIDEO_FORMAT_FWHT);
        /* Input buffers as large as the device's buffers, so that USERPTR can take them as they are. */
        assert_int_equal(t->b->ops->get_params(t->s, VIDEO_QUEUE_INPUT, &p), 0);
        p.planes[0].plane_size = 8192;
        assert_int_equal(t->b->ops->set_params(t->s, VIDEO_QUEUE_INPUT, &p), 0);
        assert_int_equal(t->b->ops->get_params(t->s, VIDEO_QUEUE_INPUT, &p), 0);
        assert_int_equal(p.format, VIDEO_FORMAT_FWHT);
        assert_int_equal(p.planes[0].plane_size, 8192);
        t->input_cap = 8192;
        n_in = queue_stream(t, data, len, 1000, contiguous); /* chunks do not follow frame bounds */
        RUN_UNTIL(t, t->n_format == 1);

        assert_int_equal(t->b->ops->get_params(t->s, VIDEO_QUEUE_OUTPUT, &p), 0);
        assert_int_equal(p.frame_width, 72);
        assert_int_equal(p.frame_height, 48);
        assert_int_equal(p.planes[0].stride, 80); /* the fake pads lines to 16 */
        assert_int_equal(p.planes[0].plane_size, 80 * 48);
        assert_int_equal(p.planes[1].stride, 40);
        assert_int_equal(p.crop.width, 72);
        assert_int_equal(p.crop.height, 48);
        assert_int_equal(p.min_buffers, 2);

        for (unsigned i = 0; i < 4; i++)
                t_queue(t, tbuf_output(t, contiguous));
        RUN_UNTIL(t, output_frames(t, frames, 8) == 3 && count_done(t, VIDEO_QUEUE_INPUT, 0, 0) == n_in);

        for (unsigned i = 0; i < 3; i++)
                check_picture(t, frames[i], 72, 48, (uint8_t) (10 + i));
        /* Each output carries the timestamp of the input where its frame began. */
        assert_int_equal(frames[0]->res.timestamp, 1000);
        assert_int_equal(frames[1]->res.timestamp, 1000 * ((16 + 72 * 48 * 3 / 2) / 1000 + 1));
        assert_int_equal(count_done(t, VIDEO_QUEUE_INPUT, VIDEO_BUFFER_F_ERR, 0), 0);

        assert_int_equal(t->b->ops->drain(t->s), 0);
        assert_int_equal(t->b->ops->drain(t->s), -EBUSY);
        RUN_UNTIL(t, t->n_drain == 1);
        /* 7.4: the last output completion before drain_done is an empty EOS buffer. */
        assert_true(t->done[t->done_at_drain - 1]->res.flags & VIDEO_BUFFER_F_EOS);
        assert_int_equal(t->done[t->done_at_drain - 1]->res.sizes[0], 0);
        assert_int_equal(count_done(t, VIDEO_QUEUE_OUTPUT, VIDEO_BUFFER_F_EOS, 0), 1);
        assert_int_equal(t->n_error, 0);

        if (force_copy || !cfg->userptr || cfg->userptr_qbuf_fails)
                assert_int_equal(fake_v4l2_stats(t->fake)->qbuf_userptr, 0);
        else
                assert_int_equal(fake_v4l2_stats(t->fake)->qbuf_mmap, 0);
        if (!force_copy && cfg->userptr && !cfg->userptr_qbuf_fails)
                assert_true(fake_v4l2_stats(t->fake)->qbuf_userptr > 0);
        else
                assert_true(fake_v4l2_stats(t->fake)->qbuf_mmap > 0);
        t_free(t);
}

static void test_decode_mplane_userptr_zero_copy(void **state) {
        decode_session(&(FakeV4l2Config){ .mplane = true, .userptr = true }, false, true);
}

static void test_decode_mplane_userptr_multi_segment_bounce(void **state) {
        decode_session(&(FakeV4l2Config){ .mplane = true, .userptr = true }, false, false);
}

static void test_decode_single_planar_mmap_multi_segment(void **state) {
        decode_session(&(FakeV4l2Config){ .mplane = false, .userptr = false }, false, false);
}

static void test_decode_force_copy_uses_mmap(void **state) {
        decode_session(&(FakeV4l2Config){ .mplane = true, .userptr = true }, true, true);
}

static void test_decode_single_planar_userptr(void **state) {
        decode_session(&(FakeV4l2Config){ .mplane = false, .userptr = true }, false, true);
}

/* A device with one memory plane per colour plane (YU12M/NV12M): the planes map one to one. */
static void test_decode_separate_memory_planes_userptr(void **state) {
        decode_session(&(FakeV4l2Config){ .mplane = true, .userptr = true, .mem_planes = true }, false,
                       true);
}

static void test_decode_separate_memory_planes_mmap(void **state) {
        decode_session(&(FakeV4l2Config){ .mplane = true, .userptr = false, .mem_planes = true }, false,
                       false);
}

/* REQBUFS(USERPTR) works but QBUF refuses guest memory: the queue falls back to MMAP. */
static void test_decode_userptr_refused_at_qbuf_falls_back(void **state) {
        decode_session(&(FakeV4l2Config){ .mplane = true, .userptr = true, .userptr_qbuf_fails = true },
                       false, true);
}

static TBuf *raw_frame(T *t, unsigned w, unsigned h, uint8_t seed, uint64_t ts, bool contiguous);
static void check_coded(TBuf *tb, unsigned w, unsigned h, uint8_t seed, uint32_t seq);

/* Plane 1 in two segments, the others one: a buffer partly zero copy, partly through a host copy. */
static TBuf *split_plane1(TBuf *tb) {
        struct iovec whole = tb->iov[1][0];
        size_t half = whole.iov_len / 2;

        assert_int_equal(tb->vb.planes[1].n_iov, 1);
        tb->iov[1][0] = (struct iovec){ whole.iov_base, half };
        tb->iov[1][1] = (struct iovec){ (uint8_t *) whole.iov_base + half, whole.iov_len - half };
        tb->vb.planes[1].n_iov = 2;
        return tb;
}

static void test_separate_memory_planes_partly_contiguous(void **state) {
        static uint8_t data[2 * (16 + 48 * 32 * 3 / 2)];
        T *t = t_new(&(FakeV4l2Config){ .mplane = true, .userptr = true, .mem_planes = true }, false);
        size_t len = make_stream(data, sizeof(data), 2, 48, 32, 70);
        TBuf *frames[4];

        t_stream(t, VIDEO_FORMAT_FWHT);
        decode_until_format(t, data, len, len, true);
        for (unsigned i = 0; i < 3; i++)
                t_queue(t, split_plane1(tbuf_output(t, true)));
        RUN_UNTIL(t, output_frames(t, frames, 4) == 2);
        check_picture(t, frames[0], 48, 32, 70);
        check_picture(t, frames[1], 48, 32, 71);
        assert_int_equal(fake_v4l2_stats(t->fake)->qbuf_mmap, 0);
        t_free(t);

        /* The encoder's input side: copy_in() with one plane as it is and one through a copy. */
        t = t_new(&(FakeV4l2Config){ .encoder = true, .mplane = true, .userptr = true, .mem_planes = true },
                  false);
        t_stream(t, VIDEO_FORMAT_FWHT);
        {
                VideoParams p;

                assert_int_equal(t->b->ops->get_params(t->s, VIDEO_QUEUE_INPUT, &p), 0);
                p.format = VIDEO_FORMAT_NV12;
                p.frame_width = 32;
                p.frame_height = 16;
                assert_int_equal(t->b->ops->set_params(t->s, VIDEO_QUEUE_INPUT, &p), 0);
        }
        t_queue(t, tbuf_output(t, true));
        t_queue(t, split_plane1(raw_frame(t, 32, 16, 5, 1, true)));
        RUN_UNTIL(t, output_frames(t, frames, 4) == 1);
        check_coded(frames[0], 32, 16, 5, 0);
        t_free(t);
}

static void test_decode_resolution_change(void **state) {
        static uint8_t data[2 * (16 + 64 * 48 * 3 / 2) + 2 * (16 + 96 * 64 * 3 / 2)];
        T *t = t_new(&(FakeV4l2Config){ .mplane = true, .userptr = true }, false);
        TBuf *frames[8], *old[4];
        size_t len = make_stream(data, sizeof(data), 2, 64, 48, 1);
        VideoParams p, p_old;

        len += make_stream(data + len, sizeof(data) - len, 2, 96, 64, 50);
        t_stream(t, VIDEO_FORMAT_FWHT);
        queue_stream(t, data, len, 4096, true);
        RUN_UNTIL(t, t->n_format == 1);
        assert_int_equal(t->b->ops->get_params(t->s, VIDEO_QUEUE_OUTPUT, &p_old), 0);
        for (unsigned i = 0; i < 4; i++)
                t_queue(t, old[i] = tbuf_output(t, true));
        RUN_UNTIL(t, t->n_format == 2);
        t_settle(t);
        assert_int_equal(output_frames(t, frames, 8), 2);
        check_picture_with(frames[0], &p_old, 64, 48, 1);
        check_picture_with(frames[1], &p_old, 64, 48, 2);

        /* GET_PARAMS already has the new geometry; the old buffers are held until the guest clears. */
        assert_int_equal(t->b->ops->get_params(t->s, VIDEO_QUEUE_OUTPUT, &p), 0);
        assert_int_equal(p.frame_width, 96);
        assert_int_equal(p.frame_height, 64);
        assert_int_equal(fake_v4l2_stats(t->fake)->source_changes, 2);
        assert_int_equal(count_done(t, VIDEO_QUEUE_OUTPUT, 0, 0), 2);
        /* The driver re-queues a returned buffer (old geometry) before it clears: held, not refused. */
        {
                size_t sizes[3] = { p_old.planes[0].plane_size, p_old.planes[1].plane_size,
                                    p_old.planes[2].plane_size };

                t_queue(t, tbuf_new(t, VIDEO_QUEUE_OUTPUT, 3, sizes, true));
        }
        t_settle(t);
        assert_int_equal(count_done(t, VIDEO_QUEUE_OUTPUT, 0, 0), 2);
        assert_int_equal(t->b->ops->clear(t->s, VIDEO_QUEUE_OUTPUT), 0);
        RUN_UNTIL(t, t->n_clear[VIDEO_QUEUE_OUTPUT] == 1);
        assert_int_equal(count_done(t, VIDEO_QUEUE_OUTPUT, VIDEO_BUFFER_F_ERR, 0), 3);
        for (unsigned i = 0; i < 4; i++)
                assert_true(old[i]->done);

        for (unsigned i = 0; i < 3; i++)
                t_queue(t, tbuf_output(t, true));
        RUN_UNTIL(t, output_frames(t, frames, 8) == 4);
        check_picture(t, frames[2], 96, 64, 50);
        check_picture(t, frames[3], 96, 64, 51);
        assert_int_equal(t->n_error, 0);
        t_free(t);
}

/* The change is signalled while every output buffer is with the guest: the decoder flags LAST only on
 * the next buffer queued, which the backend must hand it although the geometry already changed. */
static void test_decode_resolution_change_without_free_output(void **state) {
        static uint8_t data[2 * (16 + 32 * 32 * 3 / 2) + (16 + 64 * 32 * 3 / 2)];
        T *t = t_new(&(FakeV4l2Config){ .mplane = false, .userptr = true }, false);
        size_t len = make_stream(data, sizeof(data), 2, 32, 32, 1);
        TBuf *frames[4], *late;
        VideoParams p;

        len += make_stream(data + len, sizeof(data) - len, 1, 64, 32, 9);
        t_stream(t, VIDEO_FORMAT_FWHT);
        queue_stream(t, data, len, 512, true);
        RUN_UNTIL(t, t->n_format == 1);
        for (unsigned i = 0; i < 2; i++)
                t_queue(t, tbuf_output(t, true));
        RUN_UNTIL(t, output_frames(t, frames, 4) == 2);
        t_settle(t);
        assert_int_equal(fake_v4l2_stats(t->fake)->source_changes, 2);
        assert_int_equal(t->n_format, 1); /* not before the old sequence has ended */
        late = tbuf_output(t, true);
        t_queue(t, late);
        RUN_UNTIL(t, t->n_format == 2);
        assert_int_equal(t->b->ops->get_params(t->s, VIDEO_QUEUE_OUTPUT, &p), 0);
        assert_int_equal(p.frame_width, 64);
        assert_false(late->done); /* held until the clear */
        assert_int_equal(t->b->ops->clear(t->s, VIDEO_QUEUE_OUTPUT), 0);
        RUN_UNTIL(t, late->done);
        assert_int_equal(late->res.flags, VIDEO_BUFFER_F_ERR);
        t_queue(t, tbuf_output(t, true));
        RUN_UNTIL(t, output_frames(t, frames, 4) == 3);
        check_picture(t, frames[2], 64, 32, 9);
        t_free(t);
}

static void test_decode_drain_last_buffer_with_frame(void **state) {
        static uint8_t data[2 * (16 + 32 * 16 * 3 / 2)];
        T *t = t_new(&(FakeV4l2Config){ .mplane = true, .userptr = true, .last_with_frame = true }, false);
        size_t flen = 16 + 32 * 16 * 3 / 2;
        TBuf *frames[4], *last;

        make_stream(data, sizeof(data), 2, 32, 16, 7);
        t_stream(t, VIDEO_FORMAT_FWHT);
        decode_until_format(t, data, flen, flen, true);
        t_queue(t, tbuf_output(t, true));
        RUN_UNTIL(t, output_frames(t, frames, 4) == 1);
        /* The second frame waits for a buffer while the drain starts, so it comes out flagged LAST. */
        t_queue(t, tbuf_input(t, data + flen, flen, 2, true));
        assert_int_equal(t->b->ops->drain(t->s), 0);
        t_settle(t);
        assert_int_equal(t->n_drain, 0);
        for (unsigned i = 0; i < 2; i++)
                t_queue(t, tbuf_output(t, true));
        RUN_UNTIL(t, t->n_drain == 1);
        assert_int_equal(output_frames(t, frames, 4), 2);
        check_picture(t, frames[1], 32, 16, 8);
        assert_int_equal(frames[1]->res.timestamp, 2);
        last = t->done[t->done_at_drain - 1];
        assert_int_equal(last->res.flags, VIDEO_BUFFER_F_EOS);
        assert_int_equal(last->res.sizes[0], 0);
        assert_true(last->order > frames[1]->order);

        /* The stream goes on after a drain. */
        t_queue(t, tbuf_output(t, true));
        t_queue(t, tbuf_input(t, data, flen, 77, true));
        RUN_UNTIL(t, output_frames(t, frames, 4) == 3);
        check_picture(t, frames[2], 32, 16, 7);
        assert_int_equal(frames[2]->res.timestamp, 77);
        assert_int_equal(t->n_error, 0);
        t_free(t);
}

static void test_decode_drain_before_any_output(void **state) {
        T *t = t_new(&(FakeV4l2Config){ .mplane = true, .userptr = true }, false);
        size_t sizes[3] = { 64, 16, 16 };
        TBuf *out;

        t_stream(t, VIDEO_FORMAT_FWHT);
        assert_int_equal(t->b->ops->drain(t->s), 0);
        t_settle(t);
        assert_int_equal(t->n_drain, 0); /* waits for an output buffer to carry the EOS */
        out = tbuf_new(t, VIDEO_QUEUE_OUTPUT, 3, sizes, true);
        t_queue(t, out);
        RUN_UNTIL(t, t->n_drain == 1);
        assert_int_equal(out->res.flags, VIDEO_BUFFER_F_EOS);
        t_free(t);
}

/* A seek before the decoder saw any header, then a drain: nothing can come out, so the EOS goes to the
 * next output buffer, although the seek left OUTPUT streaming (the decoder has no format, so CAPTURE
 * cannot start for a STOP to end on). */
static void test_decode_drain_after_seek_before_headers(void **state) {
        static const uint8_t part[8] = { 'V', 'V', 'N', 'F' };
        T *t = t_new(&(FakeV4l2Config){ .mplane = true, .userptr = true }, false);
        size_t sizes[3] = { 64, 16, 16 };
        TBuf *in, *out;

        t_stream(t, VIDEO_FORMAT_FWHT);
        t_queue(t, in = tbuf_input(t, part, sizeof(part), 1, true));
        RUN_UNTIL(t, in->done);
        assert_int_equal(t->b->ops->clear(t->s, VIDEO_QUEUE_INPUT), 0);
        RUN_UNTIL(t, t->n_clear[VIDEO_QUEUE_INPUT] == 1);
        assert_int_equal(t->b->ops->drain(t->s), 0);
        out = tbuf_new(t, VIDEO_QUEUE_OUTPUT, 3, sizes, true);
        t_queue(t, out);
        RUN_UNTIL(t, t->n_drain == 1);
        assert_int_equal(out->res.flags, VIDEO_BUFFER_F_EOS);
        assert_int_equal(t->n_format, 0);
        assert_int_equal(t->n_error, 0);
        t_free(t);
}

static void test_decode_seek_clears_input(void **state) {
        static uint8_t data[4 * (16 + 64 * 32 * 3 / 2)];
        T *t = t_new(&(FakeV4l2Config){ .mplane = true, .userptr = true }, false);
        size_t flen = 16 + 64 * 32 * 3 / 2, len = make_stream(data, sizeof(data), 4, 64, 32, 3);
        TBuf *frames[8];
        unsigned n_in, before;

        t_stream(t, VIDEO_FORMAT_FWHT);
        decode_until_format(t, data, flen, flen, true);
        /* No output buffers: the decoder stalls and the inputs stay with the backend. */
        n_in = queue_stream(t, data + flen, len - flen, 100, true);
        t_settle(t);
        before = count_done(t, VIDEO_QUEUE_INPUT, 0, 0);
        assert_true(before < 1 + n_in);
        assert_int_equal(t->b->ops->drain(t->s), 0);
        assert_int_equal(t->b->ops->clear(t->s, VIDEO_QUEUE_INPUT), 0);
        RUN_UNTIL(t, t->n_clear[VIDEO_QUEUE_INPUT] == 1);
        assert_int_equal(count_done(t, VIDEO_QUEUE_INPUT, 0, 0), 1 + n_in);
        assert_true(count_done(t, VIDEO_QUEUE_INPUT, VIDEO_BUFFER_F_ERR, 0) > 0);
        assert_true(fake_v4l2_stats(t->fake)->streamoff[0] >= 1);
        assert_int_equal(t->n_drain, 0); /* a cleared drain gets no drain_done */

        /* After the seek: a frame from its start decodes. */
        t_queue(t, tbuf_input(t, data + 2 * flen, flen, 555, false));
        for (unsigned i = 0; i < 2; i++)
                t_queue(t, tbuf_output(t, true));
        RUN_UNTIL(t, output_frames(t, frames, 8) == 1);
        check_picture(t, frames[0], 64, 32, 5);
        assert_int_equal(frames[0]->res.timestamp, 555);
        assert_int_equal(t->n_error, 0);
        t_free(t);
}

/* A seek while CAPTURE streams (found on vicodec in tests/vm: the decode stalled). Bitstream queued to a
 * stopped OUTPUT queue makes vicodec, and the fake, raise SOURCE_CHANGE again for the first header
 * although nothing changed, with no LAST buffer. The backend restarts OUTPUT before it queues the new
 * bitstream (dev-decoder.rst "Seek"), so no event comes; the drain that ends the stream ends with EOS. */
static void test_decode_seek_while_capture_streams(void **state) {
        static uint8_t data[4 * (16 + 64 * 32 * 3 / 2)];
        T *t = t_new(&(FakeV4l2Config){ .mplane = true, .userptr = true }, false);
        size_t flen = 16 + 64 * 32 * 3 / 2;
        TBuf *frames[16];

        make_stream(data, sizeof(data), 4, 64, 32, 30);
        t_stream(t, VIDEO_FORMAT_FWHT);
        decode_until_format(t, data, flen, flen, true);
        for (unsigned i = 0; i < 4; i++)
                t_queue(t, tbuf_output(t, true));
        for (unsigned i = 1; i < 3; i++)
                t_queue(t, tbuf_input(t, data + i * flen, flen, 1000 * (i + 1), true));
        RUN_UNTIL(t, output_frames(t, frames, 16) == 3);

        /* Seek back to the first frame: the last input goes, the stream is queued again. */
        t_queue(t, tbuf_input(t, data + 3 * flen, flen, 4000, true));
        assert_int_equal(t->b->ops->clear(t->s, VIDEO_QUEUE_INPUT), 0);
        RUN_UNTIL(t, t->n_clear[VIDEO_QUEUE_INPUT] == 1);
        /* Four frames and the empty LAST buffer. */
        for (unsigned i = 0; i < 5; i++)
                t_queue(t, tbuf_output(t, true));
        for (unsigned i = 0; i < 4; i++)
                t_queue(t, tbuf_input(t, data + i * flen, flen, 100000 + i, true));
        assert_int_equal(t->b->ops->drain(t->s), 0);
        RUN_UNTIL(t, t->n_drain == 1);
        assert_int_equal(fake_v4l2_stats(t->fake)->source_changes, 1);
        assert_int_equal(t->n_format, 1);
        assert_int_equal(count_done(t, VIDEO_QUEUE_OUTPUT, VIDEO_BUFFER_F_EOS, 0), 1);
        assert_true(t->done[t->done_at_drain - 1]->res.flags & VIDEO_BUFFER_F_EOS);
        {
                unsigned n = output_frames(t, frames, 16), k = 0;

                for (unsigned i = 0; i < n; i++) {
                        if (frames[i]->res.timestamp < 100000)
                                continue;
                        assert_int_equal(frames[i]->res.timestamp, 100000 + k);
                        check_picture(t, frames[i], 64, 32, (uint8_t) (30 + k));
                        k++;
                }
                assert_int_equal(k, 4);
        }
        assert_int_equal(t->n_error, 0);
        t_free(t);
}

/* A seek to a stream of another size while CAPTURE streams: the decoder must see it with both queues
 * streaming, where it ends the old geometry with a LAST buffer. Queued to a stopped OUTPUT queue, vicodec
 * (and the fake) would switch formats with no LAST and decode the new size into the old buffers. */
static void test_decode_seek_to_new_size_while_capture_streams(void **state) {
        static uint8_t data[2 * (16 + 64 * 32 * 3 / 2)], data2[2 * (16 + 96 * 64 * 3 / 2)];
        T *t = t_new(&(FakeV4l2Config){ .mplane = true, .userptr = true }, false);
        size_t flen = 16 + 64 * 32 * 3 / 2, flen2 = 16 + 96 * 64 * 3 / 2;
        TBuf *frames[8];

        make_stream(data, sizeof(data), 2, 64, 32, 40);
        make_stream(data2, sizeof(data2), 2, 96, 64, 60);
        t_stream(t, VIDEO_FORMAT_FWHT);
        decode_until_format(t, data, flen, flen, true);
        for (unsigned i = 0; i < 4; i++)
                t_queue(t, tbuf_output(t, true));
        t_queue(t, tbuf_input(t, data + flen, flen, 2, true));
        RUN_UNTIL(t, output_frames(t, frames, 8) == 2);
        assert_int_equal(t->b->ops->clear(t->s, VIDEO_QUEUE_INPUT), 0);
        RUN_UNTIL(t, t->n_clear[VIDEO_QUEUE_INPUT] == 1);
        for (unsigned i = 0; i < 2; i++)
                t_queue(t, tbuf_input(t, data2 + i * flen2, flen2, 10 + i, true));
        RUN_UNTIL(t, t->n_format == 2);
        t_settle(t);
        assert_int_equal(count_done(t, VIDEO_QUEUE_OUTPUT, VIDEO_BUFFER_F_ERR, 0), 0);
        assert_int_equal(t->b->ops->clear(t->s, VIDEO_QUEUE_OUTPUT), 0);
        RUN_UNTIL(t, t->n_clear[VIDEO_QUEUE_OUTPUT] == 1);
        for (unsigned i = 0; i < 3; i++)
                t_queue(t, tbuf_output(t, true));
        RUN_UNTIL(t, output_frames(t, frames, 8) == 4);
        check_picture(t, frames[2], 96, 64, 60);
        check_picture(t, frames[3], 96, 64, 61);
        assert_int_equal(frames[3]->res.timestamp, 11);
        assert_int_equal(t->n_error, 0);
        t_free(t);
}

/* A seek after a drain, every output buffer with the guest (CAPTURE stopped): vicodec, and the fake, raise
 * SOURCE_CHANGE for the first header again, to the format in use. Not a change: no format_changed, and
 * the guest's buffers go on as they are. */
static void test_decode_seek_after_drain_same_format(void **state) {
        static uint8_t data[2 * (16 + 32 * 32 * 3 / 2)];
        T *t = t_new(&(FakeV4l2Config){ .mplane = false, .userptr = true }, false);
        size_t flen = 16 + 32 * 32 * 3 / 2;
        TBuf *frames[4], *outs[2];

        make_stream(data, sizeof(data), 2, 32, 32, 70);
        t_stream(t, VIDEO_FORMAT_FWHT);
        decode_until_format(t, data, flen, flen, true);
        for (unsigned i = 0; i < 2; i++)
                t_queue(t, outs[i] = tbuf_output(t, true));
        RUN_UNTIL(t, output_frames(t, frames, 4) == 1);
        assert_int_equal(t->b->ops->drain(t->s), 0);
        RUN_UNTIL(t, t->n_drain == 1);
        assert_int_equal(t->b->ops->clear(t->s, VIDEO_QUEUE_INPUT), 0);
        RUN_UNTIL(t, t->n_clear[VIDEO_QUEUE_INPUT] == 1);
        t_queue(t, tbuf_input(t, data + flen, flen, 5, true));
        t_settle(t);
        assert_int_equal(fake_v4l2_stats(t->fake)->source_changes, 2);
        assert_int_equal(t->n_format, 1);
        outs[0]->done = false;
        t_queue(t, outs[0]); /* a buffer of the geometry in use, queued again */
        RUN_UNTIL(t, output_frames(t, frames, 4) == 2);
        check_picture(t, frames[1], 32, 32, 71);
        assert_int_equal(frames[1]->res.timestamp, 5);
        assert_int_equal(t->n_format, 1);
        assert_int_equal(t->n_error, 0);
        t_free(t);
}

/* A change of the buffers the stream needs is a resolution change with the same format (dev-decoder.rst):
 * SOURCE_CHANGE, then LAST. Not to be taken for vicodec's repeated event, nor its LAST for an EOS. */
static void test_decode_min_buffers_change(void **state) {
        static uint8_t data[4 * (16 + 32 * 32 * 3 / 2)];
        T *t = t_new(&(FakeV4l2Config){ .mplane = true, .userptr = true }, false);
        size_t flen = 16 + 32 * 32 * 3 / 2;
        TBuf *frames[8];
        VideoParams p;

        make_stream(data, sizeof(data), 4, 32, 32, 80);
        t_stream(t, VIDEO_FORMAT_FWHT);
        decode_until_format(t, data, flen, flen, true);
        for (unsigned i = 0; i < 4; i++)
                t_queue(t, tbuf_output(t, true));
        RUN_UNTIL(t, output_frames(t, frames, 8) == 1);
        fake_v4l2_change_min_buffers(t->fake, 5);
        for (unsigned i = 1; i < 4; i++)
                t_queue(t, tbuf_input(t, data + i * flen, flen, 10 + i, true));
        RUN_UNTIL(t, t->n_format == 2);
        t_settle(t);
        assert_int_equal(count_done(t, VIDEO_QUEUE_OUTPUT, VIDEO_BUFFER_F_EOS, 0), 0);
        assert_int_equal(t->b->ops->get_params(t->s, VIDEO_QUEUE_OUTPUT, &p), 0);
        assert_int_equal(p.min_buffers, 5);
        assert_int_equal(p.frame_width, 32);
        assert_int_equal(t->b->ops->clear(t->s, VIDEO_QUEUE_OUTPUT), 0);
        RUN_UNTIL(t, t->n_clear[VIDEO_QUEUE_OUTPUT] == 1);
        for (unsigned i = 0; i < 6; i++)
                t_queue(t, tbuf_output(t, true));
        RUN_UNTIL(t, output_frames(t, frames, 8) == 4);
        check_picture(t, frames[3], 32, 32, 83);
        assert_int_equal(frames[3]->res.timestamp, 13);
        assert_int_equal(t->n_error, 0);
        t_free(t);
}

/* A drain asked before a resolution change the remaining input holds: the change is handled first, then
 * the drain goes on to its EOS (dev-decoder.rst "Drain"), although restarting CAPTURE for the new
 * geometry ended the device's drain (v4l2-mem2mem, vicodec). */
static void test_decode_drain_across_resolution_change(void **state) {
        static uint8_t data[2 * (16 + 32 * 32 * 3 / 2) + 2 * (16 + 64 * 32 * 3 / 2)];
        T *t = t_new(&(FakeV4l2Config){ .mplane = true, .userptr = true }, false);
        size_t len = make_stream(data, sizeof(data), 2, 32, 32, 1);
        TBuf *frames[8];

        len += make_stream(data + len, sizeof(data) - len, 2, 64, 32, 20);
        t_stream(t, VIDEO_FORMAT_FWHT);
        queue_stream(t, data, len, 2048, true);
        RUN_UNTIL(t, t->n_format == 1);
        for (unsigned i = 0; i < 4; i++)
                t_queue(t, tbuf_output(t, true));
        assert_int_equal(t->b->ops->drain(t->s), 0);
        RUN_UNTIL(t, t->n_format == 2);
        t_settle(t);
        assert_int_equal(t->n_drain, 0);
        assert_int_equal(count_done(t, VIDEO_QUEUE_OUTPUT, VIDEO_BUFFER_F_EOS, 0), 0);
        assert_int_equal(t->b->ops->clear(t->s, VIDEO_QUEUE_OUTPUT), 0);
        RUN_UNTIL(t, t->n_clear[VIDEO_QUEUE_OUTPUT] == 1);
        for (unsigned i = 0; i < 4; i++)
                t_queue(t, tbuf_output(t, true));
        RUN_UNTIL(t, t->n_drain == 1);
        assert_int_equal(output_frames(t, frames, 8), 4);
        check_picture(t, frames[2], 64, 32, 20);
        check_picture(t, frames[3], 64, 32, 21);
        assert_true(t->done[t->done_at_drain - 1]->res.flags & VIDEO_BUFFER_F_EOS);
        assert_int_equal(count_done(t, VIDEO_QUEUE_OUTPUT, VIDEO_BUFFER_F_EOS, 0), 1);
        assert_int_equal(t->n_error, 0);
        t_free(t);
}

/* The decoder raises SOURCE_CHANGE and flags LAST from its own context: the event may be seen only
 * after the LAST buffer was dequeued. That buffer ends the old geometry, it is not an end of stream. */
static void test_decode_resolution_change_event_after_last(void **state) {
        static uint8_t data[2 * (16 + 64 * 48 * 3 / 2) + 2 * (16 + 96 * 64 * 3 / 2)];
        T *t = t_new(&(FakeV4l2Config){ .mplane = true, .userptr = true, .late_source_change = true },
                     false);
        TBuf *frames[8];
        size_t len = make_stream(data, sizeof(data), 2, 64, 48, 1);

        len += make_stream(data + len, sizeof(data) - len, 2, 96, 64, 50);
        t_stream(t, VIDEO_FORMAT_FWHT);
        queue_stream(t, data, len, 4096, true);
        RUN_UNTIL(t, t->n_format == 1);
        for (unsigned i = 0; i < 4; i++)
                t_queue(t, tbuf_output(t, true));
        RUN_UNTIL(t, t->n_format == 2);
        t_settle(t);
        assert_int_equal(output_frames(t, frames, 8), 2);
        assert_int_equal(count_done(t, VIDEO_QUEUE_OUTPUT, VIDEO_BUFFER_F_EOS, 0), 0);
        assert_int_equal(t->b->ops->clear(t->s, VIDEO_QUEUE_OUTPUT), 0);
        RUN_UNTIL(t, t->n_clear[VIDEO_QUEUE_OUTPUT] == 1);
        for (unsigned i = 0; i < 3; i++)
                t_queue(t, tbuf_output(t, true));
        RUN_UNTIL(t, output_frames(t, frames, 8) == 4);
        check_picture(t, frames[2], 96, 64, 50);
        check_picture(t, frames[3], 96, 64, 51);
        assert_int_equal(count_done(t, VIDEO_QUEUE_OUTPUT, VIDEO_BUFFER_F_EOS, 0), 0);
        assert_int_equal(t->n_error, 0);
        t_free(t);
}

/* A new geometry after a drain, while the guest holds every output buffer: none is caught by the change,
 * and one it queues back before it has seen format_changed is of the old geometry. backend.h: held until
 * the clear, then given back with F_ERR (found on vicodec in tests/vm). */
static void test_decode_old_output_queued_after_change_at_rest(void **state) {
        static uint8_t data[(16 + 32 * 32 * 3 / 2) + (16 + 64 * 32 * 3 / 2)];
        T *t = t_new(&(FakeV4l2Config){ .mplane = true, .userptr = true }, false);
        size_t flen = 16 + 32 * 32 * 3 / 2;
        TBuf *frames[4], *old[2], *late;
        VideoParams p_old, p;

        make_stream(data, sizeof(data), 1, 32, 32, 3);
        make_stream(data + flen, sizeof(data) - flen, 1, 64, 32, 4);
        t_stream(t, VIDEO_FORMAT_FWHT);
        decode_until_format(t, data, flen, flen, true);
        assert_int_equal(t->b->ops->get_params(t->s, VIDEO_QUEUE_OUTPUT, &p_old), 0);
        for (unsigned i = 0; i < 2; i++)
                t_queue(t, old[i] = tbuf_output(t, true));
        RUN_UNTIL(t, output_frames(t, frames, 4) == 1);
        assert_int_equal(t->b->ops->drain(t->s), 0);
        RUN_UNTIL(t, t->n_drain == 1);
        assert_true(old[0]->done && old[1]->done);

        t_queue(t, tbuf_input(t, data + flen, 16 + 64 * 32 * 3 / 2, 7, true));
        RUN_UNTIL(t, t->n_format == 2);
        assert_int_equal(t->b->ops->get_params(t->s, VIDEO_QUEUE_OUTPUT, &p), 0);
        assert_int_equal(p.frame_width, 64);
        {
                size_t sizes[3] = { p_old.planes[0].plane_size, p_old.planes[1].plane_size,
                                    p_old.planes[2].plane_size };

                late = tbuf_new(t, VIDEO_QUEUE_OUTPUT, 3, sizes, true);
        }
        t_queue(t, late);
        t_settle(t);
        assert_false(late->done);
        assert_int_equal(t->b->ops->clear(t->s, VIDEO_QUEUE_OUTPUT), 0);
        RUN_UNTIL(t, late->done);
        assert_int_equal(late->res.flags, VIDEO_BUFFER_F_ERR);
        t_queue(t, tbuf_output(t, true));
        RUN_UNTIL(t, output_frames(t, frames, 4) == 2);
        check_picture(t, frames[1], 64, 32, 4);
        assert_int_equal(frames[1]->res.timestamp, 7);
        assert_int_equal(t->n_error, 0);
        t_free(t);
}

static void test_decode_clear_output(void **state) {
        static uint8_t data[2 * (16 + 32 * 32 * 3 / 2)];
        T *t = t_new(&(FakeV4l2Config){ .mplane = false, .userptr = false }, false);
        size_t flen = 16 + 32 * 32 * 3 / 2;
        TBuf *frames[4];

        make_stream(data, sizeof(data), 2, 32, 32, 20);
        t_stream(t, VIDEO_FORMAT_FWHT);
        decode_until_format(t, data, flen, flen, true);
        for (unsigned i = 0; i < 3; i++)
                t_queue(t, tbuf_output(t, false));
        t_settle(t);
        assert_int_equal(t->b->ops->clear(t->s, VIDEO_QUEUE_OUTPUT), 0);
        RUN_UNTIL(t, t->n_clear[VIDEO_QUEUE_OUTPUT] == 1);
        /* The first frame may have been decoded before the clear; every other buffer came back with ERR. */
        assert_int_equal(count_done(t, VIDEO_QUEUE_OUTPUT, 0, 0), 3);
        assert_true(count_done(t, VIDEO_QUEUE_OUTPUT, VIDEO_BUFFER_F_ERR, 0) >= 2);
        t_queue(t, tbuf_output(t, false));
        t_queue(t, tbuf_input(t, data + flen, flen, 9, true));
        RUN_UNTIL(t, output_frames(t, frames, 4) >= 1 &&
                             frames[output_frames(t, frames, 4) - 1]->res.timestamp == 9);
        check_picture(t, frames[output_frames(t, frames, 4) - 1], 32, 32, 21);
        t_free(t);
}

static void test_decode_output_format_change_after_clear(void **state) {
        static uint8_t data[2 * (16 + 32 * 32 * 3 / 2)];
        T *t = t_new(&(FakeV4l2Config){ .mplane = true, .userptr = true }, false);
        size_t flen = 16 + 32 * 32 * 3 / 2;
        VideoParams p;
        TBuf *frames[4];

        make_stream(data, sizeof(data), 2, 32, 32, 60);
        t_stream(t, VIDEO_FORMAT_FWHT);
        decode_until_format(t, data, flen, flen, true);
        t_queue(t, tbuf_output(t, true));
        RUN_UNTIL(t, output_frames(t, frames, 4) == 1);
        check_picture(t, frames[0], 32, 32, 60);
        t_queue(t, tbuf_output(t, true));
        /* Output buffers held: the format is fixed. */
        assert_int_equal(t->b->ops->get_params(t->s, VIDEO_QUEUE_OUTPUT, &p), 0);
        p.format = VIDEO_FORMAT_NV12;
        assert_int_equal(t->b->ops->set_params(t->s, VIDEO_QUEUE_OUTPUT, &p), -EBUSY);
        assert_int_equal(t->b->ops->clear(t->s, VIDEO_QUEUE_OUTPUT), 0);
        RUN_UNTIL(t, t->n_clear[VIDEO_QUEUE_OUTPUT] == 1);
        /* After the clear the guest may pick another pixel format. */
        assert_int_equal(t->b->ops->set_params(t->s, VIDEO_QUEUE_OUTPUT, &p), 0);
        assert_int_equal(t->b->ops->get_params(t->s, VIDEO_QUEUE_OUTPUT, &p), 0);
        assert_int_equal(p.format, VIDEO_FORMAT_NV12);
        t_queue(t, tbuf_output(t, false));
        t_queue(t, tbuf_input(t, data + flen, flen, 3, true));
        RUN_UNTIL(t, output_frames(t, frames, 4) == 2);
        check_picture(t, frames[1], 32, 32, 61);
        assert_int_equal(t->n_error, 0);
        t_free(t);
}

/* The guest takes its output buffers back in the middle of a drain and queues new ones: the drain ends
 * on them. */
static void test_decode_clear_output_during_drain(void **state) {
        static uint8_t data[2 * (16 + 32 * 32 * 3 / 2)];
        T *t = t_new(&(FakeV4l2Config){ .mplane = true, .userptr = true }, false);
        size_t flen = 16 + 32 * 32 * 3 / 2;
        TBuf *frames[4];

        make_stream(data, sizeof(data), 2, 32, 32, 80);
        t_stream(t, VIDEO_FORMAT_FWHT);
        decode_until_format(t, data, flen, flen, true);
        t_queue(t, tbuf_output(t, true));
        RUN_UNTIL(t, output_frames(t, frames, 4) == 1);
        t_queue(t, tbuf_input(t, data + flen, flen, 2, true));
        assert_int_equal(t->b->ops->drain(t->s), 0); /* frame 2 waits for an output buffer */
        t_settle(t);
        t_queue(t, tbuf_output(t, true));
        assert_int_equal(t->b->ops->clear(t->s, VIDEO_QUEUE_OUTPUT), 0);
        RUN_UNTIL(t, t->n_clear[VIDEO_QUEUE_OUTPUT] == 1);
        assert_int_equal(t->n_drain, 0);
        for (unsigned i = 0; i < 2; i++)
                t_queue(t, tbuf_output(t, true));
        RUN_UNTIL(t, t->n_drain == 1);
        assert_true(t->done[t->done_at_drain - 1]->res.flags & VIDEO_BUFFER_F_EOS);
        assert_int_equal(count_done(t, VIDEO_QUEUE_OUTPUT, VIDEO_BUFFER_F_EOS, 0), 1);
        assert_int_equal(t->n_error, 0);
        t_free(t);
}

static void test_decode_frame_error_flag(void **state) {
        static uint8_t data[2 * (16 + 16 * 16 * 3 / 2)];
        T *t = t_new(&(FakeV4l2Config){ .mplane = true, .userptr = true }, false);
        size_t len = make_stream(data, sizeof(data), 2, 16, 16, 0);

        t_stream(t, VIDEO_FORMAT_FWHT);
        decode_until_format(t, data, len, len, true);
        fake_v4l2_corrupt_next_frame(t->fake);
        for (unsigned i = 0; i < 3; i++)
                t_queue(t, tbuf_output(t, true));
        RUN_UNTIL(t, count_done(t, VIDEO_QUEUE_OUTPUT, 0, 0) == 2);
        assert_int_equal(count_done(t, VIDEO_QUEUE_OUTPUT, VIDEO_BUFFER_F_ERR, 0), 1);
        assert_int_equal(t->n_error, 0); /* one bad frame does not end the stream */
        t_free(t);
}

static void test_decode_bad_stream_error_frame(void **state) {
        static const uint8_t junk[64] = "not a null frame at all, definitely not";
        T *t = t_new(&(FakeV4l2Config){ .mplane = true, .userptr = true }, false);

        t_stream(t, VIDEO_FORMAT_FWHT);
        t_queue(t, tbuf_input(t, junk, sizeof(junk), 1, true));
        RUN_UNTIL(t, count_done(t, VIDEO_QUEUE_INPUT, 0, 0) == 1);
        t_settle(t);
        assert_int_equal(t->n_format, 0);
        t_free(t);
}

static void test_stream_free_while_busy(void **state) {
        static uint8_t data[4 * (16 + 64 * 64 * 3 / 2)];
        T *t = t_new(&(FakeV4l2Config){ .mplane = true, .userptr = false }, false);
        size_t len = make_stream(data, sizeof(data), 4, 64, 64, 0);
        unsigned done;

        t_stream(t, VIDEO_FORMAT_FWHT);
        decode_until_format(t, data, len, 700, false);
        for (unsigned i = 0; i < 3; i++)
                t_queue(t, tbuf_output(t, false));
        assert_int_equal(t->b->ops->drain(t->s), 0);
        done = t->n_done;
        t->b->ops->stream_free(t->s); /* buffers on the device, callbacks pending */
        t->s = NULL;
        t->freed = true;
        t_settle(t);
        assert_int_equal(t->n_done, done);
        assert_int_equal(t->calls_after_free, 0);
        assert_int_equal(fake_v4l2_stats(t->fake)->open_instances, 0);
        assert_int_equal(fake_v4l2_stats(t->fake)->active_maps, 0);
        t_free(t);
}

static void test_stream_free_from_callback(void **state) {
        static uint8_t data[3 * (16 + 32 * 32 * 3 / 2)];
        T *t = t_new(&(FakeV4l2Config){ .mplane = true, .userptr = true }, false);
        size_t len = make_stream(data, sizeof(data), 3, 32, 32, 0);

        t_stream(t, VIDEO_FORMAT_FWHT);
        queue_stream(t, data, len, 300, true);
        t->free_in_callback = true;
        RUN_UNTIL(t, t->freed);
        t_settle(t);
        assert_int_equal(t->n_done, 1);
        assert_int_equal(t->calls_after_free, 0);
        t_free(t);
}

static void test_device_vanishes(void **state) {
        static uint8_t data[3 * (16 + 32 * 32 * 3 / 2)];
        T *t = t_new(&(FakeV4l2Config){ .mplane = true, .userptr = true }, false);
        size_t flen = 16 + 32 * 32 * 3 / 2, len = make_stream(data, sizeof(data), 3, 32, 32, 0);
        unsigned queued;

        t_stream(t, VIDEO_FORMAT_FWHT);
        decode_until_format(t, data, flen, flen, true);
        queued = 1 + queue_stream(t, data + flen, len - flen, 200, true);
        for (unsigned i = 0; i < 2; i++)
                t_queue(t, tbuf_output(t, true));
        fake_v4l2_vanish(t->fake);
        RUN_UNTIL(t, t->n_error == 1);
        t_settle(t);
        assert_int_equal(t->last_error, -ENODEV);
        /* Every buffer came back exactly once (asserted in the callback). */
        assert_int_equal(t->n_done, queued + 2);
        assert_int_equal(t->b->ops->queue_buffer(t->s, &tbuf_output(t, true)->vb), -EIO);
        assert_int_equal(t->b->ops->drain(t->s), -EIO);
        assert_int_equal(t->b->ops->clear(t->s, VIDEO_QUEUE_INPUT), 0);
        RUN_UNTIL(t, t->n_clear[VIDEO_QUEUE_INPUT] == 1);
        t_free(t);
}

static void test_new_stream_on_vanished_device_fails(void **state) {
        T *t = t_new(&(FakeV4l2Config){ .mplane = true }, false);
        BackendStream *s = NULL;

        fake_v4l2_vanish(t->fake);
        assert_int_equal(t->b->ops->stream_new(t->b, VIDEO_FORMAT_FWHT, &callbacks, t, &s), -ENODEV);
        assert_null(s);
        t_free(t);
}

static void test_ioctl_failure_puts_stream_in_error(void **state) {
        static uint8_t data[16 + 32 * 32 * 3 / 2];
        T *t = t_new(&(FakeV4l2Config){ .mplane = true, .userptr = true }, false);
        size_t len = make_stream(data, sizeof(data), 1, 32, 32, 0);
        TBuf *in;

        t_stream(t, VIDEO_FORMAT_FWHT);
        fake_v4l2_fail_ioctl(t->fake, VIDIOC_STREAMON, EIO, 0, 1);
        in = tbuf_input(t, data, len, 1, true);
        assert_int_equal(t->b->ops->queue_buffer(t->s, &in->vb), 0);
        RUN_UNTIL(t, t->n_error == 1 && in->done);
        assert_int_equal(t->last_error, -EIO);
        assert_int_equal(in->res.flags, VIDEO_BUFFER_F_ERR);
        t_free(t);
}

static void test_dequeue_failure_puts_stream_in_error(void **state) {
        static uint8_t data[2 * (16 + 32 * 32 * 3 / 2)];
        T *t = t_new(&(FakeV4l2Config){ .mplane = false, .userptr = false }, false);
        size_t len = make_stream(data, sizeof(data), 2, 32, 32, 0);

        t_stream(t, VIDEO_FORMAT_FWHT);
        decode_until_format(t, data, len, len, true);
        fake_v4l2_fail_ioctl(t->fake, VIDIOC_DQBUF, EIO, 0, 1);
        for (unsigned i = 0; i < 2; i++)
                t_queue(t, tbuf_output(t, true));
        RUN_UNTIL(t, t->n_error == 1);
        t_settle(t);
        assert_int_equal(count_done(t, VIDEO_QUEUE_OUTPUT, 0, 0), 2);
        t_free(t);
}

static void test_many_streams(void **state) {
        enum { N = 6 };
        static uint8_t data[2 * (16 + 48 * 32 * 3 / 2)];
        T *t = t_new(&(FakeV4l2Config){ .mplane = true, .userptr = true, .max_instances = N }, false);
        T *u[N] = {};
        BackendStream *extra = NULL;
        size_t len = make_stream(data, sizeof(data), 2, 48, 32, 40);

        /* One stream per fake instance; a further one finds no room. */
        for (unsigned i = 0; i < N; i++) {
                u[i] = calloc(1, sizeof(T));
                assert_non_null(u[i]);
                u[i]->e = t->e;
                u[i]->b = t->b;
                assert_int_equal(t->b->ops->stream_new(t->b, VIDEO_FORMAT_FWHT, &callbacks, u[i], &u[i]->s),
                                 0);
        }
        assert_int_equal(t->b->ops->stream_new(t->b, VIDEO_FORMAT_FWHT, &callbacks, t, &extra), -ENOSPC);
        for (unsigned i = 0; i < N; i++)
                queue_stream(u[i], data, len, 500 + 100 * i, i % 2);
        for (unsigned i = 0; i < N; i++)
                RUN_UNTIL(u[i], u[i]->n_format == 1);
        for (unsigned i = 0; i < N; i++)
                for (unsigned k = 0; k < 3; k++)
                        t_queue(u[i], tbuf_output(u[i], i % 2));
        for (unsigned i = 0; i < N; i++) {
                TBuf *frames[4];

                RUN_UNTIL(u[i], output_frames(u[i], frames, 4) == 2);
                check_picture(u[i], frames[0], 48, 32, 40);
                check_picture(u[i], frames[1], 48, 32, 41);
        }
        for (unsigned i = 0; i < N; i++) {
                t->b->ops->stream_free(u[i]->s);
                for (unsigned k = 0; k < u[i]->n_bufs; k++)
                        tbuf_free(u[i]->bufs[k]);
                free(u[i]);
        }
        t_free(t);
}

static void test_queue_buffer_validation(void **state) {
        static uint8_t data[16 + 32 * 32 * 3 / 2];
        T *t = t_new(&(FakeV4l2Config){ .mplane = true, .userptr = true }, false);
        size_t len = make_stream(data, sizeof(data), 1, 32, 32, 0);
        VideoParams p;
        TBuf *small;
        size_t sizes[3];

        t_stream(t, VIDEO_FORMAT_FWHT);
        decode_until_format(t, data, len, len, true);
        assert_int_equal(t->b->ops->get_params(t->s, VIDEO_QUEUE_OUTPUT, &p), 0);
        for (unsigned i = 0; i < 3; i++)
                sizes[i] = p.planes[i].plane_size - (i == 2);
        small = tbuf_new(t, VIDEO_QUEUE_OUTPUT, 3, sizes, true);
        assert_int_equal(t->b->ops->queue_buffer(t->s, &small->vb), -EINVAL);
        small->vb.n_planes = 2;
        assert_int_equal(t->b->ops->queue_buffer(t->s, &small->vb), -EINVAL);
        /* data_size beyond the plane */
        small = tbuf_input(t, data, 16, 0, true);
        small->vb.planes[0].data_size = 17;
        assert_int_equal(t->b->ops->queue_buffer(t->s, &small->vb), -EINVAL);
        /* The input format cannot change while its buffers exist. */
        assert_int_equal(t->b->ops->get_params(t->s, VIDEO_QUEUE_INPUT, &p), 0);
        assert_int_equal(t->b->ops->set_params(t->s, VIDEO_QUEUE_INPUT, &p), -EBUSY);
        p.format = VIDEO_FORMAT_H264;
        assert_int_equal(t->b->ops->set_params(t->s, VIDEO_QUEUE_INPUT, &p), -EINVAL);
        /* An empty input is given back without reaching the codec. */
        small = tbuf_input(t, data, 16, 5, true);
        small->vb.planes[0].data_size = 0;
        assert_int_equal(t->b->ops->queue_buffer(t->s, &small->vb), 0);
        RUN_UNTIL(t, small->done);
        assert_int_equal(small->res.flags, 0);
        assert_int_equal(t->b->ops->get_control(t->s, VIDEO_CONTROL_BITRATE, &(uint32_t){ 0 }), -EOPNOTSUPP);
        t_free(t);
}

static void test_decoder_output_format_choice(void **state) {
        static uint8_t data[16 + 32 * 16 * 3 / 2];
        T *t = t_new(&(FakeV4l2Config){ .mplane = true, .userptr = true }, false);
        size_t len = make_stream(data, sizeof(data), 1, 32, 16, 0);
        VideoParams p = { .format = VIDEO_FORMAT_NV12 };

        t_stream(t, VIDEO_FORMAT_FWHT);
        assert_int_equal(t->b->ops->set_params(t->s, VIDEO_QUEUE_OUTPUT, &p), 0);
        decode_until_format(t, data, len, len, true);
        assert_int_equal(t->b->ops->get_params(t->s, VIDEO_QUEUE_OUTPUT, &p), 0);
        assert_int_equal(p.format, VIDEO_FORMAT_NV12);
        assert_int_equal(p.num_planes, 2);
        assert_int_equal(p.planes[0].plane_size, 32 * 16);
        assert_int_equal(p.planes[1].plane_size, 32 * 8);
        p.format = VIDEO_FORMAT_YUV420;
        assert_int_equal(t->b->ops->set_params(t->s, VIDEO_QUEUE_OUTPUT, &p), 0);
        assert_int_equal(t->b->ops->get_params(t->s, VIDEO_QUEUE_OUTPUT, &p), 0);
        assert_int_equal(p.format, VIDEO_FORMAT_YUV420);
        assert_int_equal(p.num_planes, 3);
        p.format = VIDEO_FORMAT_ARGB8888; /* not this device's */
        assert_int_equal(t->b->ops->set_params(t->s, VIDEO_QUEUE_OUTPUT, &p), -EINVAL);
        t_free(t);
}

/* A real mem2mem node polls EPOLLERR while neither queue holds a buffer. Ops that report nothing but
 * EPOLLERR (a pipe without reader) check that the backend neither spins on it nor stalls. */
static int errpipe[2] = { -1, -1 };
static unsigned ioctl_calls;

static int err_ioctl(void *dev, unsigned long req, void *arg) {
        ioctl_calls++;
        return fake_v4l2_ops.ioctl(dev, req, arg);
}

static int err_poll_fd(void *dev, uint32_t *ret_events) {
        *ret_events = EPOLLIN | EPOLLPRI;
        return errpipe[1];
}

static void test_decode_on_a_node_polling_epollerr(void **state) {
        static uint8_t data[3 * (16 + 32 * 32 * 3 / 2)];
        V4l2DeviceOps ops = fake_v4l2_ops;
        BackendConfig bc = { .device_fd = -1 };
        T *t = calloc(1, sizeof(*t));
        size_t len = make_stream(data, sizeof(data), 3, 32, 32, 4);
        TBuf *frames[4];
        unsigned calls;

        assert_non_null(t);
        assert_int_equal(pipe2(errpipe, O_CLOEXEC), 0);
        safe_close(errpipe[0]); /* the write end now polls EPOLLERR */
        ops.ioctl = err_ioctl;
        ops.poll_fd = err_poll_fd;
        assert_int_equal(sd_event_new(&t->e), 0);
        t->fake = fake_v4l2_new(&(FakeV4l2Config){ .mplane = true, .userptr = true });
        assert_int_equal(backend_v4l2_new_with_ops(&ops, t->fake, VIDEO_ROLE_DECODER, &bc, t->e, &t->b), 0);
        t_stream(t, VIDEO_FORMAT_FWHT);
        ioctl_calls = 0;
        queue_stream(t, data, len, 600, true);
        RUN_UNTIL(t, t->n_format == 1);
        for (unsigned i = 0; i < 4; i++)
                t_queue(t, tbuf_output(t, true));
        RUN_UNTIL(t, output_frames(t, frames, 4) == 3);
        check_picture(t, frames[2], 32, 32, 6);
        /* Idle EPOLLERR wakes are backed off, not served in a loop. */
        calls = ioctl_calls;
        t_settle(t);
        assert_true(ioctl_calls - calls < 20);
        t_free(t);
        safe_close(errpipe[1]);
}

/* ---- encoder ------------------------------------------------------------------------------------- */

static TBuf *raw_frame(T *t, unsigned w, unsigned h, uint8_t seed, uint64_t ts, bool contiguous) {
        VideoParams p;
        size_t sizes[VIDEO_MAX_PLANES];
        TBuf *tb;

        assert_int_equal(t->b->ops->get_params(t->s, VIDEO_QUEUE_INPUT, &p), 0);
        for (unsigned i = 0; i < p.num_planes; i++)
                sizes[i] = p.planes[i].plane_size;
        tb = tbuf_new(t, VIDEO_QUEUE_INPUT, p.num_planes, sizes, contiguous);
        for (unsigned pl = 0; pl < p.num_planes; pl++) {
                unsigned ph = pl ? h / 2 : h;

                for (unsigned y = 0; y < ph; y++)
                        for (unsigned x = 0; x < p.planes[pl].stride; x++) {
                                uint8_t v;

                                if (p.format == VIDEO_FORMAT_NV12 && pl == 1)
                                        v = fake_v4l2_pixel(1 + x % 2, x / 2, y, seed);
                                else
                                        v = fake_v4l2_pixel(pl, x, y, seed);
                                buf_to_iov(tb->vb.planes[pl].iov, tb->vb.planes[pl].n_iov,
                                           (size_t) y * p.planes[pl].stride + x, &v, 1);
                        }
                tb->vb.planes[pl].data_size = p.planes[pl].plane_size;
        }
        tb->vb.timestamp = ts;
        return tb;
}

static void check_coded(TBuf *tb, unsigned w, unsigned h, uint8_t seed, uint32_t seq) {
        size_t n = 16 + (size_t) w * h * 3 / 2;
        uint8_t *want = malloc(n), *got = malloc(n);

        assert_non_null(want);
        assert_non_null(got);
        assert_int_equal(fake_v4l2_make_frame(want, n, w, h, seq, seed), n);
        assert_int_equal(tb->res.sizes[0], n);
        assert_int_equal(iov_to_buf(tb->vb.planes[0].iov, tb->vb.planes[0].n_iov, 0, got, n), n);
        assert_memory_equal(got, want, n);
        free(want);
        free(got);
}

static void encode_session(const FakeV4l2Config *cfg, uint32_t raw, bool contiguous) {
        T *t = t_new(cfg, false);
        VideoParams p;
        TBuf *in[3], *frames[4];
        int32_t v;

        t_stream(t, VIDEO_FORMAT_H264);
        assert_int_equal(t->b->ops->get_params(t->s, VIDEO_QUEUE_INPUT, &p), 0);
        p.format = raw;
        p.frame_width = 48;
        p.frame_height = 32;
        p.frame_rate = 60;
        assert_int_equal(t->b->ops->set_params(t->s, VIDEO_QUEUE_INPUT, &p), 0);
        assert_int_equal(t->b->ops->get_params(t->s, VIDEO_QUEUE_INPUT, &p), 0);
        assert_int_equal(p.format, raw);
        assert_int_equal(p.frame_width, 48);
        assert_int_equal(p.frame_rate, 60);
        assert_int_equal(t->b->ops->get_params(t->s, VIDEO_QUEUE_OUTPUT, &p), 0);
        assert_int_equal(p.format, VIDEO_FORMAT_H264);
        assert_int_equal(p.frame_width, 48);
        assert_true(p.planes[0].plane_size >= 16 + 48 * 32 * 3 / 2);

        /* Controls reach the device, mapped to its values. */
        assert_int_equal(t->b->ops->set_control(t->s, VIDEO_CONTROL_BITRATE, 3000000), 0);
        assert_int_equal(t->b->ops->set_control(t->s, VIDEO_CONTROL_BITRATE_MODE, VIDEO_BITRATE_MODE_CBR),
                         0);
        assert_int_equal(t->b->ops->set_control(t->s, VIDEO_CONTROL_PROFILE, 0x103 /* HIGH */), 0);
        assert_int_equal(t->b->ops->set_control(t->s, VIDEO_CONTROL_LEVEL, 0x10A /* 4.0 */), 0);
        assert_int_equal(t->b->ops->set_control(t->s, VIDEO_CONTROL_PREPEND_SPSPPS_TO_IDR, 1), 0);
        assert_int_equal(t->b->ops->set_control(t->s, VIDEO_CONTROL_PROFILE, 0x102 /* EXTENDED: skipped */),
                         -EINVAL);
        assert_int_equal(t->b->ops->set_control(t->s, VIDEO_CONTROL_LEVEL, 0x10E /* 5.1: above max */),
                         -EINVAL);
        assert_int_equal(t->b->ops->set_control(t->s, VIDEO_CONTROL_PROFILE, 0x9999), -EINVAL);
        assert_int_equal(fake_v4l2_get_control(t->fake, V4L2_CID_MPEG_VIDEO_BITRATE, &v), 0);
        assert_int_equal(v, 3000000);
        assert_int_equal(fake_v4l2_get_control(t->fake, V4L2_CID_MPEG_VIDEO_BITRATE_MODE, &v), 0);
        assert_int_equal(v, V4L2_MPEG_VIDEO_BITRATE_MODE_CBR);
        assert_int_equal(fake_v4l2_get_control(t->fake, V4L2_CID_MPEG_VIDEO_H264_PROFILE, &v), 0);
        assert_int_equal(v, V4L2_MPEG_VIDEO_H264_PROFILE_HIGH);
        assert_int_equal(fake_v4l2_get_control(t->fake, V4L2_CID_MPEG_VIDEO_H264_LEVEL, &v), 0);
        assert_int_equal(v, V4L2_MPEG_VIDEO_H264_LEVEL_4_0);
        {
                uint32_t got = 0;

                assert_int_equal(t->b->ops->get_control(t->s, VIDEO_CONTROL_PROFILE, &got), 0);
                assert_int_equal(got, 0x103);
                assert_int_equal(t->b->ops->get_control(t->s, VIDEO_CONTROL_BITRATE, &got), 0);
                assert_int_equal(got, 3000000);
        }

        for (unsigned i = 0; i < 3; i++)
                t_queue(t, tbuf_output(t, contiguous));
        for (unsigned i = 0; i < 2; i++)
                t_queue(t, in[i] = raw_frame(t, 48, 32, (uint8_t) (30 + i), 100 + i, contiguous));
        RUN_UNTIL(t, output_frames(t, frames, 4) == 2);
        assert_int_equal(t->b->ops->set_control(t->s, VIDEO_CONTROL_FORCE_KEYFRAME, 1), 0);
        t_queue(t, in[2] = raw_frame(t, 48, 32, 32, 102, contiguous));
        RUN_UNTIL(t, output_frames(t, frames, 4) == 3);

        for (unsigned i = 0; i < 3; i++) {
                check_coded(frames[i], 48, 32, (uint8_t) (30 + i), i);
                assert_int_equal(frames[i]->res.timestamp, 100 + i);
                assert_true(in[i]->done);
                assert_int_equal(in[i]->res.flags, 0);
        }
        assert_int_equal(frames[0]->res.flags, VIDEO_BUFFER_F_IFRAME);
        assert_int_equal(frames[1]->res.flags, VIDEO_BUFFER_F_PFRAME);
        assert_int_equal(frames[2]->res.flags, VIDEO_BUFFER_F_IFRAME);

        /* Drain: no output buffer left, so the EOS waits for the next one. */
        assert_int_equal(t->b->ops->drain(t->s), 0);
        assert_int_equal(t->b->ops->queue_buffer(t->s, &raw_frame(t, 48, 32, 1, 1, true)->vb), -EBUSY);
        t_settle(t);
        assert_int_equal(t->n_drain, 0);
        t_queue(t, tbuf_output(t, contiguous));
        RUN_UNTIL(t, t->n_drain == 1);
        assert_int_equal(t->done[t->done_at_drain - 1]->res.flags, VIDEO_BUFFER_F_EOS);
        assert_int_equal(t->done[t->done_at_drain - 1]->res.sizes[0], 0);

        /* Encoding resumes after the drain. */
        t_queue(t, tbuf_output(t, contiguous));
        t_queue(t, raw_frame(t, 48, 32, 33, 103, contiguous));
        RUN_UNTIL(t, output_frames(t, frames, 4) == 4);
        check_coded(frames[3], 48, 32, 33, 3);
        assert_int_equal(t->n_error, 0);
        t_free(t);
}

static void test_encode_mplane_userptr_yuv420(void **state) {
        encode_session(&(FakeV4l2Config){ .encoder = true, .mplane = true, .userptr = true },
                       VIDEO_FORMAT_YUV420, true);
}

static void test_encode_single_planar_mmap_nv12_multi_segment(void **state) {
        encode_session(&(FakeV4l2Config){ .encoder = true, .mplane = false, .userptr = false },
                       VIDEO_FORMAT_NV12, false);
}

static void test_encode_separate_memory_planes_nv12m(void **state) {
        encode_session(&(FakeV4l2Config){ .encoder = true,
                                          .mplane = true,
                                          .userptr = true,
                                          .mem_planes = true },
                       VIDEO_FORMAT_NV12, false);
}

static void test_encode_drain_last_with_frame(void **state) {
        T *t = t_new(&(FakeV4l2Config){ .encoder = true,
                                        .mplane = true,
                                        .userptr = true,
                                        .last_with_frame = true },
                     false);
        VideoParams p;
        TBuf *frames[4];

        t_stream(t, VIDEO_FORMAT_FWHT);
        assert_int_equal(t->b->ops->get_params(t->s, VIDEO_QUEUE_INPUT, &p), 0);
        p.frame_width = 16;
        p.frame_height = 16;
        assert_int_equal(t->b->ops->set_params(t->s, VIDEO_QUEUE_INPUT, &p), 0);
        t_queue(t, raw_frame(t, 16, 16, 9, 1, true));
        assert_int_equal(t->b->ops->drain(t->s), 0);
        for (unsigned i = 0; i < 3; i++)
                t_queue(t, tbuf_output(t, true));
        RUN_UNTIL(t, t->n_drain == 1);
        assert_int_equal(output_frames(t, frames, 4), 1);
        check_coded(frames[0], 16, 16, 9, 0);
        assert_int_equal(t->done[t->done_at_drain - 1]->res.flags, VIDEO_BUFFER_F_EOS);
        assert_true(t->done[t->done_at_drain - 1]->order > frames[0]->order);
        t_free(t);
}

/* The guest's visible rectangle reaches the encoder as the OUTPUT crop (dev-encoder.rst
 * "Initialization"), and GET_PARAMS says what the device took: the coded frames have the visible size. */
static void test_encode_crop(void **state) {
        T *t = t_new(&(FakeV4l2Config){ .encoder = true, .mplane = true, .userptr = true }, false);
        VideoParams p;
        TBuf *frames[2];

        t_stream(t, VIDEO_FORMAT_FWHT);
        assert_int_equal(t->b->ops->get_params(t->s, VIDEO_QUEUE_INPUT, &p), 0);
        p.format = VIDEO_FORMAT_YUV420;
        p.frame_width = 48;
        p.frame_height = 32;
        p.crop.left = 8; /* the fake, like vicodec, crops at 0,0 only */
        p.crop.top = 0;
        p.crop.width = 32;
        p.crop.height = 24;
        assert_int_equal(t->b->ops->set_params(t->s, VIDEO_QUEUE_INPUT, &p), 0);
        assert_int_equal(t->b->ops->get_params(t->s, VIDEO_QUEUE_INPUT, &p), 0);
        assert_int_equal(p.crop.left, 0);
        assert_int_equal(p.crop.width, 32);
        assert_int_equal(p.crop.height, 24);
        p.crop.left = 0;
        p.crop.width = 48;
        assert_int_equal(t->b->ops->set_params(t->s, VIDEO_QUEUE_INPUT, &p), 0);
        assert_int_equal(t->b->ops->get_params(t->s, VIDEO_QUEUE_INPUT, &p), 0);
        assert_int_equal(p.frame_height, 32);
        assert_int_equal(p.crop.width, 48);
        assert_int_equal(p.crop.height, 24);

        t_queue(t, tbuf_output(t, true));
        t_queue(t, raw_frame(t, 48, 32, 90, 5, true));
        RUN_UNTIL(t, output_frames(t, frames, 2) == 1);
        check_coded(frames[0], 48, 24, 90, 0);
        assert_int_equal(t->n_error, 0);
        t_free(t);
}

static void test_encoder_set_params_busy(void **state) {
        T *t = t_new(&(FakeV4l2Config){ .encoder = true, .mplane = true, .userptr = true }, false);
        VideoParams p;

        t_stream(t, VIDEO_FORMAT_FWHT);
        t_queue(t, tbuf_output(t, true));
        assert_int_equal(t->b->ops->get_params(t->s, VIDEO_QUEUE_OUTPUT, &p), 0);
        assert_int_equal(t->b->ops->set_params(t->s, VIDEO_QUEUE_OUTPUT, &p), -EBUSY);
        assert_int_equal(t->b->ops->get_params(t->s, VIDEO_QUEUE_INPUT, &p), 0);
        assert_int_equal(t->b->ops->set_params(t->s, VIDEO_QUEUE_INPUT, &p), 0);
        assert_int_equal(t->b->ops->clear(t->s, VIDEO_QUEUE_OUTPUT), 0);
        RUN_UNTIL(t, t->n_clear[VIDEO_QUEUE_OUTPUT] == 1);
        assert_int_equal(count_done(t, VIDEO_QUEUE_OUTPUT, VIDEO_BUFFER_F_ERR, 0), 1);
        t_free(t);
}

/* ---- capabilities -------------------------------------------------------------------------------- */

static void test_decoder_caps(void **state) {
        T *t = t_new(&(FakeV4l2Config){ .mplane = false }, false);
        const VideoCaps *c = t->b->ops->get_caps(t->b);
        uint32_t values[16];

        assert_string_equal(t->b->ops->name, "v4l2-decoder");
        assert_int_equal(c->role, VIDEO_ROLE_DECODER);
        assert_int_equal(c->n_formats[VIDEO_QUEUE_INPUT], 1);
        assert_int_equal(c->formats[VIDEO_QUEUE_INPUT][0].format, VIDEO_FORMAT_FWHT);
        assert_int_equal(c->formats[VIDEO_QUEUE_INPUT][0].mask, 0x3); /* both outputs */
        assert_int_equal(c->n_formats[VIDEO_QUEUE_OUTPUT], 2);
        assert_int_equal(c->formats[VIDEO_QUEUE_OUTPUT][0].format, VIDEO_FORMAT_YUV420);
        assert_int_equal(c->formats[VIDEO_QUEUE_OUTPUT][1].format, VIDEO_FORMAT_NV12);
        assert_int_equal(c->formats[VIDEO_QUEUE_OUTPUT][1].mask, 0x1);
        assert_int_equal(c->formats[VIDEO_QUEUE_OUTPUT][1].planes_layout, VIDEO_PLANES_LAYOUT_SINGLE_BUFFER);
        assert_int_equal(c->formats[VIDEO_QUEUE_INPUT][0].n_frames, 1);
        assert_int_equal(c->formats[VIDEO_QUEUE_INPUT][0].frames[0].width.min, 2);
        assert_int_equal(c->formats[VIDEO_QUEUE_INPUT][0].frames[0].width.max, 4096);
        assert_int_equal(c->formats[VIDEO_QUEUE_INPUT][0].frames[0].width.step, 2);
        assert_int_equal(c->formats[VIDEO_QUEUE_INPUT][0].frames[0].n_rates, 2);
        /* Discrete rates are min == max (not rust-vmm's {rate, 0}). */
        assert_int_equal(c->formats[VIDEO_QUEUE_INPUT][0].frames[0].rates[0].min, 30);
        assert_int_equal(c->formats[VIDEO_QUEUE_INPUT][0].frames[0].rates[0].max, 30);
        assert_int_equal(c->formats[VIDEO_QUEUE_INPUT][0].frames[0].rates[1].min, 60);
        assert_int_equal(c->controls, 0);
        assert_int_equal(t->b->ops->query_control(t->b, VIDEO_CONTROL_PROFILE, VIDEO_FORMAT_H264, values,
                                                  16),
                         -EOPNOTSUPP);
        /* Wrong coded format for this backend. */
        assert_int_equal(t->b->ops->stream_new(t->b, VIDEO_FORMAT_VP9, &callbacks, t, &t->s), -EINVAL);
        assert_int_equal(t->b->ops->stream_new(t->b, VIDEO_FORMAT_NV12, &callbacks, t, &t->s), -EINVAL);
        t->s = NULL;
        t_free(t);
}

static void test_encoder_caps_and_query_control(void **state) {
        T *t = t_new(&(FakeV4l2Config){ .encoder = true, .mplane = true }, false);
        const VideoCaps *c = t->b->ops->get_caps(t->b);
        uint32_t values[16];
        int n;

        assert_string_equal(t->b->ops->name, "v4l2-encoder");
        assert_int_equal(c->role, VIDEO_ROLE_ENCODER);
        assert_int_equal(c->n_formats[VIDEO_QUEUE_INPUT], 2);
        assert_int_equal(c->n_formats[VIDEO_QUEUE_OUTPUT], 2);
        assert_int_equal(c->formats[VIDEO_QUEUE_OUTPUT][0].format, VIDEO_FORMAT_FWHT);
        assert_int_equal(c->formats[VIDEO_QUEUE_OUTPUT][1].format, VIDEO_FORMAT_H264);
        assert_int_equal(c->controls,
                         (1u << VIDEO_CONTROL_BITRATE) | (1u << VIDEO_CONTROL_PROFILE) |
                                 (1u << VIDEO_CONTROL_LEVEL) | (1u << VIDEO_CONTROL_FORCE_KEYFRAME) |
                                 (1u << VIDEO_CONTROL_BITRATE_MODE) | (1u << VIDEO_CONTROL_BITRATE_PEAK) |
                                 (1u << VIDEO_CONTROL_PREPEND_SPSPPS_TO_IDR));
        n = t->b->ops->query_control(t->b, VIDEO_CONTROL_PROFILE, VIDEO_FORMAT_H264, values, 16);
        assert_int_equal(n, 3); /* baseline, main, high: the fake skips constrained baseline and extended */
        assert_int_equal(values[0], 0x100);
        assert_int_equal(values[1], 0x101);
        assert_int_equal(values[2], 0x103);
        n = t->b->ops->query_control(t->b, VIDEO_CONTROL_LEVEL, VIDEO_FORMAT_H264, values, 16);
        assert_int_equal(n, 11); /* 1.0 .. 4.0 without 1b */
        assert_int_equal(values[0], 0x100);
        assert_int_equal(values[1], 0x101);
        assert_int_equal(values[10], 0x10A);
        assert_int_equal(t->b->ops->query_control(t->b, VIDEO_CONTROL_LEVEL, VIDEO_FORMAT_H264, values, 2),
                         2);
        assert_int_equal(t->b->ops->query_control(t->b, VIDEO_CONTROL_PROFILE, VIDEO_FORMAT_FWHT, values,
                                                  16),
                         -EOPNOTSUPP);
        assert_int_equal(t->b->ops->query_control(t->b, VIDEO_CONTROL_BITRATE, VIDEO_FORMAT_H264, values,
                                                  16),
                         -EOPNOTSUPP);
        assert_int_equal(t->b->ops->query_control(t->b, VIDEO_CONTROL_PROFILE, VIDEO_FORMAT_VP8, values, 16),
                         -EOPNOTSUPP);
        t_free(t);
}

static void test_role_mismatch_rejected(void **state) {
        sd_event *e = NULL;
        FakeV4l2 *f = fake_v4l2_new(&(FakeV4l2Config){ .encoder = true, .mplane = true });
        Backend *b = NULL;

        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(backend_v4l2_new_with_ops(&fake_v4l2_ops, f, VIDEO_ROLE_DECODER, NULL, e, &b),
                         -ENODEV);
        assert_null(b);
        fake_v4l2_fail_ioctl(f, VIDIOC_QUERYCAP, ENOTTY, 0, 1);
        assert_int_equal(backend_v4l2_new_with_ops(&fake_v4l2_ops, f, VIDEO_ROLE_ENCODER, NULL, e, &b),
                         -ENOTTY);
        fake_v4l2_vanish(f);
        assert_int_equal(backend_v4l2_new_with_ops(&fake_v4l2_ops, f, VIDEO_ROLE_ENCODER, NULL, e, &b),
                         -ENODEV);
        assert_int_equal(fake_v4l2_stats(f)->open_instances, 0);
        fake_v4l2_free(f);
        sd_event_unref(e);
}

static void test_registry_has_v4l2_backends(void **state) {
        sd_event *e = NULL;
        Backend *b = NULL;
        BackendConfig missing = { .device_fd = -1, .device_path = "/nonexistent/video99" };
        bool dec = false, enc = false;

        assert_ptr_equal(backend_find("v4l2-decoder"), &backend_v4l2_decoder_ops);
        assert_ptr_equal(backend_find("v4l2-encoder"), &backend_v4l2_encoder_ops);
        for (const char *const *n = backend_names(); *n; n++) {
                dec = dec || strcmp(*n, "v4l2-decoder") == 0;
                enc = enc || strcmp(*n, "v4l2-encoder") == 0;
        }
        assert_true(dec && enc);
        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(backend_new("v4l2-decoder", &missing, e, &b), -ENOENT);
        assert_int_equal(backend_new("v4l2-encoder", NULL, e, &b), -EINVAL);
        assert_null(b);
        sd_event_unref(e);
}

static unsigned count_fds(void) {
        unsigned n = 0;
        DIR *d = opendir("/proc/self/fd");

        assert_non_null(d);
        while (readdir(d))
                n++;
        closedir(d);
        return n;
}

static void test_production_ops_need_a_device(void **state) {
        sd_event *e = NULL;
        Backend *b = NULL;
        BackendConfig none = { .device_fd = -1 };
        BackendConfig missing = { .device_fd = -1, .device_path = "/nonexistent/video99" };
        BackendConfig not_v4l2 = { .device_fd = -1, .device_path = "/dev/null" };
        unsigned fds;

        assert_int_equal(sd_event_new(&e), 0);
        fds = count_fds();
        assert_int_equal(backend_v4l2_decoder_ops.new(&none, e, &b), -EINVAL);
        assert_int_equal(backend_v4l2_encoder_ops.new(&missing, e, &b), -ENOENT);
        /* Not a V4L2 node, by path and by an fd handed over (reopened through /proc, and taken). */
        assert_true(backend_v4l2_decoder_ops.new(&not_v4l2, e, &b) < 0);
        not_v4l2 = (BackendConfig){ .device_fd = open("/dev/null", O_RDWR | O_CLOEXEC) };
        assert_true(not_v4l2.device_fd >= 0);
        assert_true(backend_v4l2_encoder_ops.new(&not_v4l2, e, &b) < 0);
        assert_null(b);
        assert_int_equal(count_fds(), fds); /* nothing leaked, the handed-over fd closed */
        sd_event_unref(e);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_decode_mplane_userptr_zero_copy),
                cmocka_unit_test(test_decode_mplane_userptr_multi_segment_bounce),
                cmocka_unit_test(test_decode_single_planar_mmap_multi_segment),
                cmocka_unit_test(test_decode_force_copy_uses_mmap),
                cmocka_unit_test(test_decode_single_planar_userptr),
                cmocka_unit_test(test_decode_separate_memory_planes_userptr),
                cmocka_unit_test(test_decode_separate_memory_planes_mmap),
                cmocka_unit_test(test_decode_userptr_refused_at_qbuf_falls_back),
                cmocka_unit_test(test_separate_memory_planes_partly_contiguous),
                cmocka_unit_test(test_decode_resolution_change),
                cmocka_unit_test(test_decode_resolution_change_without_free_output),
                cmocka_unit_test(test_decode_drain_last_buffer_with_frame),
                cmocka_unit_test(test_decode_drain_before_any_output),
                cmocka_unit_test(test_decode_drain_after_seek_before_headers),
                cmocka_unit_test(test_decode_seek_clears_input),
                cmocka_unit_test(test_decode_seek_while_capture_streams),
                cmocka_unit_test(test_decode_seek_to_new_size_while_capture_streams),
                cmocka_unit_test(test_decode_seek_after_drain_same_format),
                cmocka_unit_test(test_decode_min_buffers_change),
                cmocka_unit_test(test_decode_drain_across_resolution_change),
                cmocka_unit_test(test_decode_resolution_change_event_after_last),
                cmocka_unit_test(test_decode_old_output_queued_after_change_at_rest),
                cmocka_unit_test(test_decode_clear_output),
                cmocka_unit_test(test_decode_output_format_change_after_clear),
                cmocka_unit_test(test_decode_clear_output_during_drain),
                cmocka_unit_test(test_decode_frame_error_flag),
                cmocka_unit_test(test_decode_bad_stream_error_frame),
                cmocka_unit_test(test_stream_free_while_busy),
                cmocka_unit_test(test_stream_free_from_callback),
                cmocka_unit_test(test_device_vanishes),
                cmocka_unit_test(test_new_stream_on_vanished_device_fails),
                cmocka_unit_test(test_ioctl_failure_puts_stream_in_error),
                cmocka_unit_test(test_dequeue_failure_puts_stream_in_error),
                cmocka_unit_test(test_many_streams),
                cmocka_unit_test(test_decode_on_a_node_polling_epollerr),
                cmocka_unit_test(test_queue_buffer_validation),
                cmocka_unit_test(test_decoder_output_format_choice),
                cmocka_unit_test(test_encode_mplane_userptr_yuv420),
                cmocka_unit_test(test_encode_single_planar_mmap_nv12_multi_segment),
                cmocka_unit_test(test_encode_separate_memory_planes_nv12m),
                cmocka_unit_test(test_encode_drain_last_with_frame),
                cmocka_unit_test(test_encode_crop),
                cmocka_unit_test(test_encoder_set_params_busy),
                cmocka_unit_test(test_decoder_caps),
                cmocka_unit_test(test_encoder_caps_and_query_control),
                cmocka_unit_test(test_role_mismatch_rejected),
                cmocka_unit_test(test_production_ops_need_a_device),
                cmocka_unit_test(test_registry_has_v4l2_backends),
        };

        if (getenv("TEST_DEBUG"))
                log_set_max_level(LOG_DEBUG);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
