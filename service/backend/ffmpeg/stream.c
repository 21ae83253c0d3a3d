/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <libavutil/log.h>
#include <systemd/sd-event.h>

#include "common/log.h"
#include "common/macro.h"
#include "profiles.h"
#include "stream.h"

/* libav* messages (corrupt streams: a guest can cause any number) go to our log at debug level, never
 * straight to stderr. */
static void ff_av_log(void *avcl, int level, const char *fmt, va_list ap) {
        char line[512];
        int print_prefix = 1;
        size_t n;

        if (level > AV_LOG_WARNING || log_get_max_level() < LOG_DEBUG)
                return;
        av_log_format_line2(avcl, level, fmt, ap, line, sizeof(line), &print_prefix);
        n = strlen(line);
        while (n > 0 && line[n - 1] == '\n')
                line[--n] = '\0';
        log_debug("libav: %s", line);
}

static void ff_av_log_setup_once(void) {
        av_log_set_callback(ff_av_log);
}

void ff_av_log_setup(void) {
        static pthread_once_t once = PTHREAD_ONCE_INIT;

        (void) pthread_once(&once, ff_av_log_setup_once);
}

void ff_list_push(FfList *l, FfWork *w) {
        w->next = NULL;
        if (l->tail)
                l->tail->next = w;
        else
                l->head = w;
        l->tail = w;
        l->n++;
}

FfWork *ff_list_pop(FfList *l) {
        FfWork *w = l->head;

        if (!w)
                return NULL;
        l->head = w->next;
        if (!l->head)
                l->tail = NULL;
        l->n--;
        w->next = NULL;
        return w;
}

void ff_list_free(FfList *l) {
        FfWork *w;

        while ((w = ff_list_pop(l)))
                free(w);
}

FfWork *ff_work_new(FfWorkType type) {
        FfWork *w = calloc(1, sizeof(*w));

        if (w)
                w->type = type;
        return w;
}

static void ff_stream_wake_loop(FfStream *s) {
        uint64_t one = 1;

        /* Only fails when the counter would overflow, which a reader draining it prevents. */
        if (write(s->efd, &one, sizeof(one)) < 0)
                log_debug_errno(-errno, "Failed to signal the event loop, ignoring: %m");
}

void ff_stream_complete(FfStream *s, FfWork *w) {
        pthread_mutex_lock(&s->lock);
        ff_list_push(&s->dones, w);
        pthread_mutex_unlock(&s->lock);
        ff_stream_wake_loop(s);
}

void ff_stream_buffer_done(FfStream *s, FfWork *w, uint32_t flags, uint64_t timestamp) {
        w->type = FF_DONE_BUFFER;
        w->result.flags = flags;
        w->result.timestamp = timestamp;
        if (flags & VIDEO_BUFFER_F_ERR)
                memset(w->result.sizes, 0, sizeof(w->result.sizes));
        ff_stream_complete(s, w);
}

void ff_stream_error(FfStream *s, int error) {
        FfWork *w = ff_work_new(FF_DONE_ERROR);

        if (!w) {
                w = TAKE_PTR(s->spare_error);
                if (!w)
                        return; /* already reported one error without memory; the stream is dead */
                w->type = FF_DONE_ERROR;
        }
        w->error = error < 0 ? error : -EIO;
        ff_stream_complete(s, w);
}

bool ff_stream_finish_drain(FfStream *s, FfList *outputs, FfWork **drain_cmd) {
        FfWork *w = ff_list_pop(outputs);

        if (!w)
                return false;
        memset(w->result.sizes, 0, sizeof(w->result.sizes));
        ff_stream_buffer_done(s, w, VIDEO_BUFFER_F_EOS, 0);
        w = TAKE_PTR(*drain_cmd);
        w->type = FF_DONE_DRAIN;
        ff_stream_complete(s, w);
        return true;
}

void ff_stream_cancel_list(FfStream *s, FfList *l) {
        FfWork *w;

        while ((w = ff_list_pop(l)))
                ff_stream_buffer_done(s, w, VIDEO_BUFFER_F_ERR, w->buf->timestamp);
}

static void *ff_stream_thread(void *userdata) {
        FfStream *s = userdata;
        bool progress = false;

        for (;;) {
                FfList cmds;
                FfWork *w;

                pthread_mutex_lock(&s->lock);
                while (!s->quit && !s->cmds.head && !progress)
                        pthread_cond_wait(&s->cond, &s->lock);
                if (s->quit) {
                        pthread_mutex_unlock(&s->lock);
                        break;
                }
                cmds = s->cmds;
                s->cmds = (FfList){};
                pthread_mutex_unlock(&s->lock);

                while ((w = ff_list_pop(&cmds)))
                        s->class->apply(s, w);
                progress = s->class->step(s);
        }
        return NULL;
}

void ff_stream_submit(FfStream *s, FfWork *w) {
        if (w->type == FF_CMD_QUEUE)
                s->held[w->queue]++;
        pthread_mutex_lock(&s->lock);
        ff_list_push(&s->cmds, w);
        pthread_cond_signal(&s->cond);
        pthread_mutex_unlock(&s->lock);
}

static void ff_stream_dispatch(FfStream *s, FfWork *w) {
        switch (w->type) {
        case FF_DONE_BUFFER:
                assert(s->held[w->queue] > 0);
                s->held[w->queue]--;
                s->cb->buffer_done(s->userdata, w->buf, &w->result);
                break;
        case FF_DONE_FORMAT:
                s->class->format_changed(s, w);
                s->gen = w->gen;
                if (s->cb->format_changed)
                        s->cb->format_changed(s->userdata);
                break;
        case FF_DONE_DRAIN:
                if (w->gen <= s->drain_cancelled)
                        break; /* cancelled by a clear(INPUT) issued before we got here */
                s->draining = false;
                if (s->cb->drain_done)
                        s->cb->drain_done(s->userdata);
                break;
        case FF_DONE_CLEAR:
                if (s->cb->clear_done)
                        s->cb->clear_done(s->userdata, w->queue);
                break;
        case FF_DONE_ERROR:
                if (s->cb->error)
                        s->cb->error(s->userdata, w->error);
                break;
        default:
                assert(!"command on the completion list");
        }
}

static void ff_stream_destroy(FfStream *s) {
        ff_list_free(&s->cmds);
        ff_list_free(&s->dones);
        free(s->spare_error);
        pthread_mutex_destroy(&s->lock);
        pthread_cond_destroy(&s->cond);
        s->class->destroy(s);
}

static int ff_stream_on_event(sd_event_source *source, int fd, uint32_t revents, void *userdata) {
        FfStream *s = userdata;
        uint64_t counter;

        if (read(s->efd, &counter, sizeof(counter)) < 0 && errno != EAGAIN)
                log_debug_errno(-errno, "Failed to read the codec thread's eventfd, ignoring: %m");

        /* One completion at a time: a callback may queue more work, or free the stream. */
        s->in_dispatch = true;
        while (!s->free_requested) {
                FfWork *w;

                pthread_mutex_lock(&s->lock);
                w = ff_list_pop(&s->dones);
                pthread_mutex_unlock(&s->lock);
                if (!w)
                        break;
                ff_stream_dispatch(s, w);
                free(w);
        }
        s->in_dispatch = false;
        if (s->free_requested)
                ff_stream_destroy(s);
        return 0;
}

int ff_stream_start(FfStream *s, sd_event *event) {
        int r;

        s->efd = -EBADF;
        pthread_mutex_init(&s->lock, NULL);
        pthread_cond_init(&s->cond, NULL);
        s->spare_error = ff_work_new(FF_DONE_ERROR);
        if (!s->spare_error)
                return -ENOMEM;

        s->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (s->efd < 0)
                return -errno;
        r = sd_event_add_io(event, &s->source, s->efd, EPOLLIN, ff_stream_on_event, s);
        if (r < 0)
                return r;
        (void) sd_event_source_set_description(s->source, "ffmpeg-stream");

        r = -pthread_create(&s->thread, NULL, ff_stream_thread, s);
        if (r < 0)
                return r;
        s->thread_started = true;
        return 0;
}

void ff_stream_init(FfStream *s,
                    Backend *b,
                    const FfStreamClass *class,
                    const BackendStreamCallbacks *callbacks,
                    void *userdata) {
        s->base.backend = b;
        s->class = class;
        s->cb = callbacks;
        s->userdata = userdata;
}

void ff_stream_free(FfStream *s) {
        if (!s || s->free_requested)
                return;

        if (s->thread_started) {
                pthread_mutex_lock(&s->lock);
                s->quit = true;
                pthread_cond_signal(&s->cond);
                pthread_mutex_unlock(&s->lock);
                pthread_join(s->thread, NULL);
                s->thread_started = false;
        }
        s->source = sd_event_source_disable_unref(s->source);
        s->efd = safe_close(s->efd);

        if (s->in_dispatch) {
                s->free_requested = true; /* the dispatcher frees it when the callback returns */
                return;
        }
        ff_stream_destroy(s);
}

FfWork *ff_stream_queue_work(FfStream *s, VideoBuffer *buf) {
        FfWork *w = ff_work_new(FF_CMD_QUEUE);

        if (!w)
                return NULL;
        w->queue = buf->queue;
        w->buf = buf;
        w->params = s->params[buf->queue];
        return w;
}

int ff_stream_drain(FfStream *s) {
        FfWork *w;

        if (s->draining)
                return -EBUSY;
        w = ff_work_new(FF_CMD_DRAIN);
        if (!w)
                return -ENOMEM;
        w->gen = ++s->drain_seq;
        s->draining = true;
        ff_stream_submit(s, w);
        return 0;
}

int ff_stream_clear(FfStream *s, VideoQueue queue) {
        FfWork *w;

        if ((unsigned) queue >= _VIDEO_QUEUE_MAX)
                return -EINVAL;
        w = ff_work_new(FF_CMD_CLEAR);
        if (!w)
                return -ENOMEM;
        w->queue = queue;
        if (queue == VIDEO_QUEUE_INPUT && s->draining) {
                s->draining = false;
                s->drain_cancelled = s->drain_seq;
        }
        ff_stream_submit(s, w);
        return 0;
}

static FfStream *ff_stream_from(BackendStream *bs) {
        return (FfStream *) bs;
}

void ff_stream_op_free(BackendStream *bs) {
        if (bs)
                ff_stream_free(ff_stream_from(bs));
}

int ff_stream_op_get_params(BackendStream *bs, VideoQueue queue, VideoParams *ret) {
        if ((unsigned) queue >= _VIDEO_QUEUE_MAX)
                return -EINVAL;
        *ret = ff_stream_from(bs)->params[queue];
        return 0;
}

int ff_stream_op_drain(BackendStream *bs) {
        return ff_stream_drain(ff_stream_from(bs));
}

int ff_stream_op_clear(BackendStream *bs, VideoQueue queue) {
        return ff_stream_clear(ff_stream_from(bs), queue);
}

/* ---- backend --------------------------------------------------------------------------------------- */

static VideoQueue ff_backend_coded_queue(const VideoCaps *c) {
        return c->role == VIDEO_ROLE_DECODER ? VIDEO_QUEUE_INPUT : VIDEO_QUEUE_OUTPUT;
}

int ff_backend_new(const BackendOps *ops,
                   const BackendConfig *config,
                   sd_event *event,
                   void (*fill_caps)(VideoCaps *c),
                   Backend **ret) {
        FfBackend *fb;

        if (!event)
                return -EINVAL;
        ff_av_log_setup();
        fb = calloc(1, sizeof(*fb));
        if (!fb)
                return -ENOMEM;
        fb->base.ops = ops;
        fb->event = event;
        fb->threads = config ? config->threads : 0;
        fill_caps(&fb->caps);
        if (fb->caps.n_formats[ff_backend_coded_queue(&fb->caps)] == 0) {
                bool decoder = fb->caps.role == VIDEO_ROLE_DECODER;

                free(fb);
                return log_debug_errno(-EOPNOTSUPP, "%s: this libavcodec has no usable %s.", ops->name,
                                       decoder ? "decoder" : "encoder");
        }
        *ret = &fb->base;
        return 0;
}

void ff_caps_set_raw_formats(VideoCaps *c,
                             VideoQueue q,
                             const uint32_t *formats,
                             size_t n,
                             unsigned n_coded,
                             const VideoFrameSize *size) {
        for (size_t i = 0; i < n; i++) {
                VideoFormatDesc *f = &c->formats[q][i];

                f->format = formats[i];
                f->mask = (UINT64_C(1) << n_coded) - 1;
                f->planes_layout = VIDEO_PLANES_LAYOUT_SINGLE_BUFFER;
                f->n_frames = 1;
                f->frames[0] = *size;
        }
        c->n_formats[q] = n;
}

void ff_backend_free(Backend *b) {
        free(b);
}

const VideoCaps *ff_backend_get_caps(Backend *b) {
        return &((FfBackend *) b)->caps;
}

int ff_backend_query_control(
        Backend *b, VideoControl control, uint32_t format, uint32_t *values, unsigned max_values) {
        const VideoCaps *c = ff_backend_get_caps(b);
        VideoQueue q = ff_backend_coded_queue(c);

        for (unsigned i = 0; i < c->n_formats[q]; i++)
                if (c->formats[q][i].format == format)
                        return ff_profiles_list(control, format, c->role == VIDEO_ROLE_DECODER, values,
                                                max_values);
        return -EOPNOTSUPP;
}
