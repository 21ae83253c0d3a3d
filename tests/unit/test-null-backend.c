/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <systemd/sd-event.h>

#include "backend/backend.h"
#include "backend/null/null-format.h"

/* Drives the null backend through backend.h only, stepping a real sd-event loop. */

enum { EV_DONE, EV_FORMAT, EV_DRAIN, EV_CLEAR, EV_ERROR };

typedef struct Rec {
        int kind;
        VideoBuffer *buf;
        VideoBufferResult res;
        VideoQueue queue;
        int error;
} Rec;

typedef struct TBuf {
        VideoBuffer vb;
        uint8_t *mem[VIDEO_MAX_PLANES];
        struct iovec iov[VIDEO_MAX_PLANES][256];
} TBuf;

typedef struct Fx {
        sd_event *event;
        Backend *backend;
        BackendStream *stream;
        bool in_op;
        Rec log[512];
        unsigned n;
        TBuf *bufs[512];
        unsigned n_bufs;
} Fx;

static void record(Fx *fx, Rec r) {
        /* backend.h: callbacks come from the event loop, never from inside an op */
        assert_false(fx->in_op);
        assert_true(fx->n < 512);
        fx->log[fx->n++] = r;
}

static void cb_done(void *u, VideoBuffer *buf, const VideoBufferResult *res) {
        record(u, (Rec){ .kind = EV_DONE, .buf = buf, .res = *res, .queue = buf->queue });
}
static void cb_format(void *u) {
        record(u, (Rec){ .kind = EV_FORMAT });
}
static void cb_drain(void *u) {
        record(u, (Rec){ .kind = EV_DRAIN });
}
static void cb_clear(void *u, VideoQueue q) {
        record(u, (Rec){ .kind = EV_CLEAR, .queue = q });
}
static void cb_error(void *u, int e) {
        record(u, (Rec){ .kind = EV_ERROR, .error = e });
}

static const BackendStreamCallbacks callbacks = {
        .buffer_done = cb_done,
        .format_changed = cb_format,
        .drain_done = cb_drain,
        .clear_done = cb_clear,
        .error = cb_error,
};

static Fx *fx_new(const char *name) {
        Fx *fx = calloc(1, sizeof(*fx));

        assert_non_null(fx);
        assert_int_equal(sd_event_new(&fx->event), 0);
        assert_int_equal(backend_new(name, NULL, fx->event, &fx->backend), 0);
        fx->in_op = true;
        assert_int_equal(fx->backend->ops->stream_new(fx->backend, VIDEO_FORMAT_FWHT, &callbacks, fx,
                                                      &fx->stream),
                         0);
        fx->in_op = false;
        return fx;
}

static void fx_free(Fx *fx) {
        if (fx->stream)
                fx->backend->ops->stream_free(fx->stream);
        backend_free(fx->backend);
        sd_event_unref(fx->event);
        for (unsigned i = 0; i < fx->n_bufs; i++) {
                for (unsigned p = 0; p < VIDEO_MAX_PLANES; p++)
                        free(fx->bufs[i]->mem[p]);
                free(fx->bufs[i]);
        }
        free(fx);
}

static int setup_decoder(void **state) {
        *state = fx_new("null");
        return 0;
}
static int setup_encoder(void **state) {
        *state = fx_new("null-encoder");
        return 0;
}
static int teardown(void **state) {
        fx_free(*state);
        return 0;
}

/* Steps the loop until nothing is pending (no sleeps, no timers). */
static void run(Fx *fx) {
        for (unsigned i = 0; i < 100000; i++) {
                int r = sd_event_run(fx->event, 0);
                assert_true(r >= 0);
                if (r == 0)
                        return;
        }
        fail_msg("event loop does not settle");
}

/* A buffer of n planes with the given sizes, each plane cut into `chunk`-byte segments. */
static TBuf *tbuf(Fx *fx, VideoQueue q, uint32_t id, unsigned n_planes, const size_t *sizes, size_t chunk) {
        TBuf *b = calloc(1, sizeof(*b));

        assert_non_null(b);
        b->vb.resource_id = id;
        b->vb.queue = q;
        b->vb.n_planes = n_planes;
        for (unsigned p = 0; p < n_planes; p++) {
                unsigned n = 0;
                b->mem[p] = calloc(1, sizes[p] ? sizes[p] : 1);
                memset(b->mem[p], 0xEE, sizes[p]);
                for (size_t off = 0; off < sizes[p]; off += chunk) {
                        assert_true(n < 256);
                        b->iov[p][n++] = (struct iovec){ b->mem[p] + off,
                                                         sizes[p] - off < chunk ? sizes[p] - off : chunk };
                }
                b->vb.planes[p] = (VideoPlane){ .iov = b->iov[p], .n_iov = n, .length = sizes[p] };
        }
        fx->bufs[fx->n_bufs++] = b;
        return b;
}

static int queue(Fx *fx, TBuf *b) {
        int r;

        fx->in_op = true;
        r = fx->backend->ops->queue_buffer(fx->stream, &b->vb);
        fx->in_op = false;
        return r;
}

static TBuf *input(Fx *fx, const uint8_t *data, size_t len, uint64_t ts) {
        size_t size = len ? len : 1;
        TBuf *b = tbuf(fx, VIDEO_QUEUE_INPUT, 100 + fx->n_bufs, 1, &size, size < 1000 ? 5 : size / 200 + 1);

        memcpy(b->mem[0], data, len);
        b->vb.planes[0].data_size = (uint32_t) len;
        b->vb.timestamp = ts;
        return b;
}

static uint8_t pix(unsigned plane, size_t i, uint32_t seq) {
        return (uint8_t) (i * 7 + plane * 31 + seq * 13);
}

/* One null frame; returns its length. */
static size_t make_frame(uint8_t *out, uint16_t w, uint16_t h, uint32_t seq) {
        size_t ysz = (size_t) w * h, csz = (size_t) (w / 2) * (h / 2);

        null_frame_write_header(out, w, h, seq);
        for (size_t i = 0; i < ysz; i++)
                out[16 + i] = pix(0, i, seq);
        for (size_t i = 0; i < csz; i++) {
                out[16 + ysz + i] = pix(1, i, seq);
                out[16 + ysz + csz + i] = pix(2, i, seq);
        }
        return 16 + ysz + 2 * csz;
}

static void check_nv12(const uint8_t *mem, uint32_t w, uint32_t h, uint32_t stride, uint32_t seq) {
        for (uint32_t y = 0; y < h; y++)
                for (uint32_t x = 0; x < w; x++)
                        assert_int_equal(mem[y * stride + x], pix(0, (size_t) y * w + x, seq));
        for (uint32_t y = 0; y < h / 2; y++)
                for (uint32_t x = 0; x < w / 2; x++) {
                        size_t i = (size_t) y * (w / 2) + x;
                        assert_int_equal(mem[stride * h + y * stride + 2 * x], pix(1, i, seq));
                        assert_int_equal(mem[stride * h + y * stride + 2 * x + 1], pix(2, i, seq));
                }
}

static VideoParams get_params(Fx *fx, VideoQueue q) {
        VideoParams p = {};

        assert_int_equal(fx->backend->ops->get_params(fx->stream, q, &p), 0);
        return p;
}

static unsigned count(Fx *fx, int kind) {
        unsigned n = 0;

        for (unsigned i = 0; i < fx->n; i++)
                n += fx->log[i].kind == kind;
        return n;
}

static const Rec *find_done(Fx *fx, TBuf *b) {
        for (unsigned i = 0; i < fx->n; i++)
                if (fx->log[i].kind == EV_DONE && fx->log[i].buf == &b->vb)
                        return &fx->log[i];
        return NULL;
}

static TBuf *output_for(Fx *fx, uint32_t id) {
        VideoParams p = get_params(fx, VIDEO_QUEUE_OUTPUT);
        size_t sizes[VIDEO_MAX_PLANES];

        for (unsigned i = 0; i < p.num_planes; i++)
                sizes[i] = p.planes[i].plane_size;
        return tbuf(fx, VIDEO_QUEUE_OUTPUT, id, p.num_planes, sizes, 24);
}

/* ---- tests ----------------------------------------------------------------------------------------- */

static void test_registry_and_caps(void **state) {
        Fx *fx = *state;
        const VideoCaps *caps = fx->backend->ops->get_caps(fx->backend);
        const char *const *names = backend_names();
        Backend *b = NULL;
        bool have_null = false, have_enc = false;

        for (size_t i = 0; names[i]; i++) {
                have_null |= strcmp(names[i], "null") == 0;
                have_enc |= strcmp(names[i], "null-encoder") == 0;
        }
        assert_true(have_null && have_enc);
        assert_ptr_equal(backend_find("null"), fx->backend->ops);
        assert_null(backend_find("nonexistent"));
        assert_null(backend_find(NULL));
        assert_int_equal(backend_new("nonexistent", NULL, fx->event, &b), -ENOENT);
        assert_null(b);

        assert_int_equal(caps->role, VIDEO_ROLE_DECODER);
        assert_int_equal(caps->n_formats[VIDEO_QUEUE_INPUT], 1);
        assert_int_equal(caps->formats[VIDEO_QUEUE_INPUT][0].format, VIDEO_FORMAT_FWHT);
        assert_int_equal(caps->n_formats[VIDEO_QUEUE_OUTPUT], 2);
        assert_int_equal(caps->formats[VIDEO_QUEUE_OUTPUT][0].format, VIDEO_FORMAT_NV12);
        assert_int_equal(caps->formats[VIDEO_QUEUE_OUTPUT][1].format, VIDEO_FORMAT_YUV420);

        /* only the coded format it has */
        BackendStream *s2 = NULL;
        assert_int_equal(fx->backend->ops->stream_new(fx->backend, VIDEO_FORMAT_H264, &callbacks, fx, &s2),
                         -EINVAL);
        assert_int_equal(fx->backend->ops->query_control(fx->backend, VIDEO_CONTROL_PROFILE,
                                                         VIDEO_FORMAT_FWHT, NULL, 0),
                         -EOPNOTSUPP);
}

static void test_decode_any_chunking(void **state) {
        Fx *fx = *state;
        static uint8_t stream[3 * (16 + 16 * 8 * 3 / 2)];
        size_t len = 0, frame_len = 16 + 16 * 8 * 3 / 2;
        TBuf *in[64], *out[3];
        unsigned n_in = 0;

        for (uint32_t k = 0; k < 3; k++)
                len += make_frame(stream + len, 16, 8, k);
        /* 11-byte inputs: headers and payloads straddle buffers */
        for (size_t off = 0; off < len; off += 11) {
                size_t k = len - off < 11 ? len - off : 11;
                in[n_in] = input(fx, stream + off, k, 1000 * (n_in + 1));
                assert_int_equal(queue(fx, in[n_in]), 0);
                n_in++;
        }
        assert_int_equal(fx->n, 0); /* nothing happens inside the ops */
        run(fx);
        assert_int_equal(count(fx, EV_FORMAT), 1);

        VideoParams p = get_params(fx, VIDEO_QUEUE_OUTPUT);
        assert_int_equal(p.format, VIDEO_FORMAT_NV12);
        assert_int_equal(p.frame_width, 16);
        assert_int_equal(p.frame_height, 8);
        assert_int_equal(p.crop.width, 16);
        assert_int_equal(p.num_planes, 1);
        assert_int_equal(p.planes[0].stride, 16);
        assert_int_equal(p.planes[0].plane_size, 16 * 8 * 3 / 2);

        for (unsigned i = 0; i < 3; i++) {
                out[i] = output_for(fx, i + 1);
                assert_int_equal(queue(fx, out[i]), 0);
        }
        run(fx);
        for (uint32_t k = 0; k < 3; k++) {
                const Rec *r = find_done(fx, out[k]);
                assert_non_null(r);
                assert_int_equal(r->res.flags, 0);
                assert_int_equal(r->res.sizes[0], 16 * 8 * 3 / 2);
                /* the timestamp of the input where the frame's header started */
                assert_true(r->res.timestamp == 1000 * (k * frame_len / 11 + 1));
                check_nv12(out[k]->mem[0], 16, 8, 16, k);
        }
        for (unsigned i = 0; i < n_in; i++) {
                const Rec *r = find_done(fx, in[i]);
                assert_non_null(r);
                assert_int_equal(r->res.flags, 0);
        }
        /* outputs in presentation order */
        unsigned last = 0;
        for (unsigned k = 0; k < 3; k++) {
                unsigned idx = (unsigned) (find_done(fx, out[k]) - fx->log);
                assert_true(idx > last);
                last = idx;
        }
}

static void test_resolution_change(void **state) {
        Fx *fx = *state;
        static uint8_t stream[2 * (16 + 32 * 16 * 3 / 2)];
        size_t len = 0;
        TBuf *o1, *o2, *o3, *small;

        len += make_frame(stream, 16, 8, 0);
        len += make_frame(stream + len, 32, 16, 1);
        assert_int_equal(queue(fx, input(fx, stream, len, 5)), 0);
        run(fx);
        assert_int_equal(count(fx, EV_FORMAT), 1);

        o1 = output_for(fx, 1);
        size_t big = 32 * 16 * 3 / 2;
        o2 = tbuf(fx, VIDEO_QUEUE_OUTPUT, 2, 1, &big, 4096);
        size_t tiny = 10;
        small = tbuf(fx, VIDEO_QUEUE_OUTPUT, 9, 1, &tiny, 4096);
        assert_int_equal(queue(fx, small), -EINVAL);
        assert_int_equal(queue(fx, o1), 0);
        assert_int_equal(queue(fx, o2), 0);
        run(fx);
        /* frame 0 in o1, then the second header changes the size: o2 is stale and held */
        assert_non_null(find_done(fx, o1));
        assert_null(find_done(fx, o2));
        assert_int_equal(count(fx, EV_FORMAT), 2);
        VideoParams p = get_params(fx, VIDEO_QUEUE_OUTPUT);
        assert_int_equal(p.frame_width, 32);
        assert_int_equal(p.frame_height, 16);

        /* the guest re-creates its output buffers: clear gives o2 back with ERR, then clear_done */
        fx->in_op = true;
        assert_int_equal(fx->backend->ops->clear(fx->stream, VIDEO_QUEUE_OUTPUT), 0);
        fx->in_op = false;
        unsigned before = fx->n;
        run(fx);
        const Rec *r2 = find_done(fx, o2);
        assert_non_null(r2);
        assert_int_equal(r2->res.flags, VIDEO_BUFFER_F_ERR);
        assert_int_equal(fx->log[fx->n - 1].kind, EV_CLEAR);
        assert_true((unsigned) (r2 - fx->log) >= before);

        o3 = output_for(fx, 3);
        assert_int_equal(queue(fx, o3), 0);
        run(fx);
        const Rec *r3 = find_done(fx, o3);
        assert_non_null(r3);
        assert_int_equal(r3->res.flags, 0);
        assert_int_equal(r3->res.timestamp, 5);
        check_nv12(o3->mem[0], 32, 16, 32, 1);
}

static void test_drain_eos_on_empty_buffer(void **state) {
        Fx *fx = *state;
        uint8_t stream[16 + 8 * 4 * 3 / 2];
        size_t len = make_frame(stream, 8, 4, 0);
        TBuf *o1, *o2;

        assert_int_equal(queue(fx, input(fx, stream, len, 77)), 0);
        run(fx);
        o1 = output_for(fx, 1);
        assert_int_equal(queue(fx, o1), 0);
        fx->in_op = true;
        assert_int_equal(fx->backend->ops->drain(fx->stream), 0);
        assert_int_equal(fx->backend->ops->drain(fx->stream), -EBUSY);
        fx->in_op = false;
        assert_int_equal(queue(fx, input(fx, stream, len, 78)), -EBUSY);
        run(fx);
        assert_non_null(find_done(fx, o1));
        /* no buffer for the EOS yet: the drain waits */
        assert_int_equal(count(fx, EV_DRAIN), 0);

        o2 = output_for(fx, 2);
        assert_int_equal(queue(fx, o2), 0);
        run(fx);
        const Rec *r = find_done(fx, o2);
        assert_non_null(r);
        assert_int_equal(r->res.flags, VIDEO_BUFFER_F_EOS);
        assert_int_equal(r->res.sizes[0], 0);
        assert_int_equal(count(fx, EV_DRAIN), 1);
        /* EOS completion comes right before drain_done */
        assert_int_equal(fx->log[fx->n - 1].kind, EV_DRAIN);
        assert_ptr_equal(fx->log[fx->n - 2].buf, &o2->vb);

        /* decoding goes on after a drain */
        assert_int_equal(queue(fx, input(fx, stream, len, 79)), 0);
}

static void test_clear_input_cancels_drain_and_resets_parser(void **state) {
        Fx *fx = *state;
        uint8_t stream[16 + 8 * 4 * 3 / 2];
        size_t len = make_frame(stream, 8, 4, 3);
        TBuf *i1, *o;

        /* half a frame, then a drain that cannot finish (no output buffer) */
        i1 = input(fx, stream, 20, 1);
        assert_int_equal(queue(fx, i1), 0);
        run(fx);
        fx->in_op = true;
        assert_int_equal(fx->backend->ops->drain(fx->stream), 0);
        assert_int_equal(fx->backend->ops->clear(fx->stream, VIDEO_QUEUE_INPUT), 0);
        assert_int_equal(fx->backend->ops->clear(fx->stream, VIDEO_QUEUE_INPUT), -EBUSY);
        fx->in_op = false;
        run(fx);
        assert_int_equal(count(fx, EV_CLEAR), 1);
        assert_int_equal(count(fx, EV_DRAIN), 0);

        /* a whole new frame decodes from its start: the partial one was forgotten */
        assert_int_equal(queue(fx, input(fx, stream, len, 2)), 0);
        run(fx);
        o = output_for(fx, 1);
        assert_int_equal(queue(fx, o), 0);
        run(fx);
        const Rec *r = find_done(fx, o);
        assert_non_null(r);
        assert_int_equal(r->res.timestamp, 2);
        check_nv12(o->mem[0], 8, 4, 8, 3);
}

static void test_corrupt_stream(void **state) {
        Fx *fx = *state;
        uint8_t stream[16 + 8 * 4 * 3 / 2];
        size_t len = make_frame(stream, 8, 4, 0);
        TBuf *bad, *later;

        stream[0] = 'X';
        bad = input(fx, stream, len, 1);
        assert_int_equal(queue(fx, bad), 0);
        run(fx);
        assert_int_equal(count(fx, EV_ERROR), 1);
        assert_int_equal(find_done(fx, bad)->res.flags, VIDEO_BUFFER_F_ERR);
        later = input(fx, stream, len, 2);
        assert_int_equal(queue(fx, later), 0);
        run(fx);
        assert_int_equal(find_done(fx, later)->res.flags, VIDEO_BUFFER_F_ERR);
        assert_int_equal(count(fx, EV_ERROR), 1); /* reported once */

        /* a seek recovers; an odd width is corrupt too */
        fx->in_op = true;
        assert_int_equal(fx->backend->ops->clear(fx->stream, VIDEO_QUEUE_INPUT), 0);
        fx->in_op = false;
        run(fx);
        len = make_frame(stream, 8, 4, 0);
        stream[4] = 7;
        assert_int_equal(queue(fx, input(fx, stream, len, 3)), 0);
        run(fx);
        assert_int_equal(count(fx, EV_ERROR), 2);
}

static void test_yuv420_per_plane_output(void **state) {
        Fx *fx = *state;
        uint8_t stream[16 + 8 * 4 * 3 / 2];
        size_t len = make_frame(stream, 8, 4, 5);
        VideoParams p;
        TBuf *o;

        assert_int_equal(queue(fx, input(fx, stream, len, 9)), 0);
        run(fx);
        p = get_params(fx, VIDEO_QUEUE_OUTPUT);
        p.format = VIDEO_FORMAT_YUV420;
        p.num_planes = 3;
        p.planes[0].stride = 12; /* padded rows */
        p.planes[1].stride = 0;  /* device picks */
        p.planes[2].stride = 6;
        fx->in_op = true;
        assert_int_equal(fx->backend->ops->set_params(fx->stream, VIDEO_QUEUE_OUTPUT, &p), 0);
        fx->in_op = false;
        p = get_params(fx, VIDEO_QUEUE_OUTPUT);
        assert_int_equal(p.format, VIDEO_FORMAT_YUV420);
        assert_int_equal(p.num_planes, 3);
        assert_int_equal(p.planes[0].stride, 12);
        assert_int_equal(p.planes[0].plane_size, 12 * 4);
        assert_int_equal(p.planes[1].stride, 4);
        assert_int_equal(p.planes[2].plane_size, 6 * 2);

        o = output_for(fx, 1);
        assert_int_equal(queue(fx, o), 0);
        /* the format cannot change under a queued buffer */
        fx->in_op = true;
        assert_int_equal(fx->backend->ops->set_params(fx->stream, VIDEO_QUEUE_OUTPUT, &p), -EBUSY);
        fx->in_op = false;
        run(fx);
        assert_int_equal(find_done(fx, o)->res.sizes[2], 12);
        for (uint32_t y = 0; y < 4; y++)
                for (uint32_t x = 0; x < 8; x++)
                        assert_int_equal(o->mem[0][y * 12 + x], pix(0, y * 8 + x, 5));
        for (uint32_t y = 0; y < 2; y++)
                for (uint32_t x = 0; x < 4; x++) {
                        assert_int_equal(o->mem[1][y * 4 + x], pix(1, y * 4 + x, 5));
                        assert_int_equal(o->mem[2][y * 6 + x], pix(2, y * 4 + x, 5));
                }
}

static void test_encoder(void **state) {
        Fx *fx = *state;
        const VideoCaps *caps = fx->backend->ops->get_caps(fx->backend);
        VideoParams p;
        uint8_t frame[16 + 8 * 4 * 3 / 2];
        uint32_t v = 0;
        TBuf *in, *out;

        assert_int_equal(caps->role, VIDEO_ROLE_ENCODER);
        assert_int_equal(caps->formats[VIDEO_QUEUE_OUTPUT][0].format, VIDEO_FORMAT_FWHT);

        p = get_params(fx, VIDEO_QUEUE_INPUT);
        p.format = VIDEO_FORMAT_YUV420;
        p.frame_width = 8;
        p.frame_height = 4;
        p.num_planes = 1;
        p.planes[0].stride = 8;
        assert_int_equal(fx->backend->ops->set_params(fx->stream, VIDEO_QUEUE_INPUT, &p), 0);
        p = get_params(fx, VIDEO_QUEUE_INPUT);
        assert_int_equal(p.planes[0].plane_size, 48);

        assert_int_equal(fx->backend->ops->get_control(fx->stream, VIDEO_CONTROL_BITRATE, &v), 0);
        assert_true(v > 0);
        assert_int_equal(fx->backend->ops->set_control(fx->stream, VIDEO_CONTROL_BITRATE, 300000), 0);
        assert_int_equal(fx->backend->ops->get_control(fx->stream, VIDEO_CONTROL_BITRATE, &v), 0);
        assert_int_equal(v, 300000);
        assert_int_equal(fx->backend->ops->set_control(fx->stream, VIDEO_CONTROL_BITRATE_MODE, 2), -EINVAL);
        assert_int_equal(fx->backend->ops->set_control(fx->stream, VIDEO_CONTROL_FORCE_KEYFRAME, 1), 0);
        assert_int_equal(fx->backend->ops->get_control(fx->stream, VIDEO_CONTROL_PROFILE, &v), -EOPNOTSUPP);

        /* the raw picture, I420 in one plane, is exactly a null frame's payload */
        make_frame(frame, 8, 4, 0);
        size_t isz = 48, osz = get_params(fx, VIDEO_QUEUE_OUTPUT).planes[0].plane_size;
        assert_true(osz >= sizeof(frame));
        in = tbuf(fx, VIDEO_QUEUE_INPUT, 1, 1, &isz, 7);
        memcpy(in->mem[0], frame + 16, 48);
        in->vb.planes[0].data_size = 48;
        in->vb.timestamp = 4242;
        out = tbuf(fx, VIDEO_QUEUE_OUTPUT, 2, 1, &osz, osz / 100 + 1);
        assert_int_equal(queue(fx, in), 0);
        assert_int_equal(queue(fx, out), 0);
        run(fx);
        const Rec *r = find_done(fx, out);
        assert_non_null(r);
        assert_int_equal(r->res.flags, VIDEO_BUFFER_F_IFRAME);
        assert_int_equal(r->res.timestamp, 4242);
        assert_int_equal(r->res.sizes[0], sizeof(frame));
        assert_memory_equal(out->mem[0], frame, sizeof(frame));
        assert_non_null(find_done(fx, in));
}

static void test_encoder_drain(void **state) {
        Fx *fx = *state;
        VideoParams p = get_params(fx, VIDEO_QUEUE_INPUT);
        size_t isz = p.planes[0].plane_size, osz = get_params(fx, VIDEO_QUEUE_OUTPUT).planes[0].plane_size;
        TBuf *in[2], *out[3];

        /* default 640x480 NV12 input */
        assert_int_equal(p.format, VIDEO_FORMAT_NV12);
        assert_int_equal(isz, 640 * 480 * 3 / 2);
        for (unsigned i = 0; i < 2; i++) {
                in[i] = tbuf(fx, VIDEO_QUEUE_INPUT, i, 1, &isz, isz / 100 + 1);
                in[i]->vb.planes[0].data_size = (uint32_t) isz;
                in[i]->vb.timestamp = 10 + i;
                assert_int_equal(queue(fx, in[i]), 0);
        }
        fx->in_op = true;
        assert_int_equal(fx->backend->ops->drain(fx->stream), 0);
        fx->in_op = false;
        for (unsigned i = 0; i < 3; i++) {
                out[i] = tbuf(fx, VIDEO_QUEUE_OUTPUT, 10 + i, 1, &osz, osz / 100 + 1);
                assert_int_equal(queue(fx, out[i]), 0);
        }
        run(fx);
        for (unsigned i = 0; i < 2; i++) {
                const Rec *r = find_done(fx, out[i]);
                assert_non_null(r);
                assert_int_equal(r->res.flags, VIDEO_BUFFER_F_IFRAME);
                assert_int_equal(r->res.timestamp, 10 + i);
                assert_int_equal(r->res.sizes[0], 16 + isz);
        }
        assert_int_equal(find_done(fx, out[2])->res.flags, VIDEO_BUFFER_F_EOS);
        assert_int_equal(find_done(fx, out[2])->res.sizes[0], 0);
        assert_int_equal(fx->log[fx->n - 1].kind, EV_DRAIN);
}

/* ---- the conversion paths ------------------------------------------------------------------------- */

/* An input buffer holding data in `chunk`-byte segments. */
static TBuf *input_chunked(Fx *fx, const uint8_t *data, size_t len, uint64_t ts, size_t chunk) {
        TBuf *b = tbuf(fx, VIDEO_QUEUE_INPUT, 100 + fx->n_bufs, 1, &len, chunk);

        memcpy(b->mem[0], data, len);
        b->vb.planes[0].data_size = (uint32_t) len;
        b->vb.timestamp = ts;
        return b;
}

/* The bytes a raw buffer of layout p must hold after frame `seq` of w x h (make_frame()) was written
 * into planes pre-filled with 0xEE, computed independently of the backend. */
static void expected_raw(const VideoParams *p, uint32_t w, uint32_t h, uint32_t seq, uint8_t *planes[]) {
        bool multi = p->num_planes > 1;
        size_t s0 = p->planes[0].stride, cw = w / 2, ch = h / 2;

        for (unsigned i = 0; i < p->num_planes; i++)
                memset(planes[i], 0xEE, p->planes[i].plane_size);
        for (size_t y = 0; y < h; y++)
                for (size_t x = 0; x < w; x++)
                        planes[0][y * s0 + x] = pix(0, y * w + x, seq);
        for (size_t y = 0; y < ch; y++)
                for (size_t x = 0; x < cw; x++) {
                        uint8_t u = pix(1, y * cw + x, seq), v = pix(2, y * cw + x, seq);
                        if (p->format == VIDEO_FORMAT_NV12) {
                                uint8_t *uv = multi ? planes[1] + y * p->planes[1].stride
                                                    : planes[0] + s0 * h + y * s0;
                                uv[2 * x] = u;
                                uv[2 * x + 1] = v;
                        } else if (multi) {
                                planes[1][y * p->planes[1].stride + x] = u;
                                planes[2][y * p->planes[2].stride + x] = v;
                        } else {
                                planes[0][s0 * h + y * (s0 / 2) + x] = u;
                                planes[0][s0 * h + (s0 / 2) * ch + y * (s0 / 2) + x] = v;
                        }
                }
}

static void check_raw(Fx *fx, TBuf *o, uint32_t w, uint32_t h, uint32_t seq) {
        VideoParams p = get_params(fx, VIDEO_QUEUE_OUTPUT);
        uint8_t *want[VIDEO_MAX_PLANES] = {};
        const Rec *r = find_done(fx, o);

        assert_non_null(r);
        assert_int_equal(r->res.flags, 0);
        for (unsigned i = 0; i < p.num_planes; i++) {
                want[i] = malloc(p.planes[i].plane_size);
                assert_non_null(want[i]);
                assert_int_equal(r->res.sizes[i], p.planes[i].plane_size);
        }
        expected_raw(&p, w, h, seq, want);
        for (unsigned i = 0; i < p.num_planes; i++) {
                assert_memory_equal(o->mem[i], want[i], p.planes[i].plane_size);
                free(want[i]);
        }
}

typedef struct Layout {
        uint32_t format;
        unsigned num_planes;
        uint32_t strides[3];
} Layout;

/* Every way a frame reaches an output buffer gives the same bytes: staged because no output buffer was
 * there (the first frame), straight from the input buffer to the output buffer (payload within one input,
 * output waiting), staged because the payload is split across inputs, and straight again from an input in
 * tiny segments. Output planes are cut into segments that split rows (5, 13 bytes) or hold them whole,
 * strides are padded and odd, and the chroma rows are an odd 9 bytes per component. */
static void test_direct_and_staged_paths_same_bytes(void **state) {
        static const Layout layouts[] = {
                { VIDEO_FORMAT_NV12, 1, { 0 } },      { VIDEO_FORMAT_NV12, 1, { 24 } },
                { VIDEO_FORMAT_NV12, 2, { 20, 21 } }, { VIDEO_FORMAT_YUV420, 3, { 20, 9, 11 } },
                { VIDEO_FORMAT_YUV420, 1, { 22 } },
        };
        const uint16_t w = 18, h = 6;
        uint8_t frame[16 + 18 * 6 * 3 / 2];
        size_t len = make_frame(frame, w, h, 7);

        (void) state;
        for (unsigned l = 0; l < sizeof(layouts) / sizeof(layouts[0]); l++) {
                Fx *fx = fx_new("null");
                VideoParams p;
                TBuf *o[4], *split[2];

                /* 1: no output buffer yet: the frame is staged when the format becomes known. */
                assert_int_equal(queue(fx, input_chunked(fx, frame, len, 1, 4096)), 0);
                run(fx);
                assert_int_equal(count(fx, EV_FORMAT), 1);
                p = get_params(fx, VIDEO_QUEUE_OUTPUT);
                p.format = layouts[l].format;
                p.num_planes = layouts[l].num_planes;
                for (unsigned i = 0; i < 3; i++)
                        p.planes[i].stride = layouts[l].strides[i];
                fx->in_op = true;
                assert_int_equal(fx->backend->ops->set_params(fx->stream, VIDEO_QUEUE_OUTPUT, &p), 0);
                fx->in_op = false;
                p = get_params(fx, VIDEO_QUEUE_OUTPUT);
                assert_int_equal(p.num_planes, layouts[l].num_planes);
                if (layouts[l].strides[0])
                        assert_int_equal(p.planes[0].stride, layouts[l].strides[0]);

                size_t sizes[VIDEO_MAX_PLANES];
                for (unsigned i = 0; i < p.num_planes; i++)
                        sizes[i] = p.planes[i].plane_size;
                o[0] = tbuf(fx, VIDEO_QUEUE_OUTPUT, 1, p.num_planes, sizes, 5);
                o[1] = tbuf(fx, VIDEO_QUEUE_OUTPUT, 2, p.num_planes, sizes, 4096);
                o[2] = tbuf(fx, VIDEO_QUEUE_OUTPUT, 3, p.num_planes, sizes, 13);
                o[3] = tbuf(fx, VIDEO_QUEUE_OUTPUT, 4, p.num_planes, sizes, 64);
                assert_int_equal(queue(fx, o[0]), 0);
                run(fx);
                check_raw(fx, o[0], w, h, 7);

                /* 2: the output waits, the whole frame is in one input: converted in place. */
                assert_int_equal(queue(fx, o[1]), 0);
                run(fx);
                assert_null(find_done(fx, o[1]));
                assert_int_equal(queue(fx, input_chunked(fx, frame, len, 2, 4096)), 0);
                run(fx);
                check_raw(fx, o[1], w, h, 7);
                assert_int_equal(find_done(fx, o[1])->res.timestamp, 2);

                /* 3: the payload split across two inputs: staged. */
                assert_int_equal(queue(fx, o[2]), 0);
                split[0] = input_chunked(fx, frame, 21, 3, 4096);
                split[1] = input_chunked(fx, frame + 21, len - 21, 4, 4096);
                assert_int_equal(queue(fx, split[0]), 0);
                assert_int_equal(queue(fx, split[1]), 0);
                run(fx);
                check_raw(fx, o[2], w, h, 7);
                assert_int_equal(find_done(fx, o[2])->res.timestamp, 3);

                /* 4: one input in 7-byte segments, output waiting: in place, rows split on both sides. */
                assert_int_equal(queue(fx, o[3]), 0);
                assert_int_equal(queue(fx, input_chunked(fx, frame, len, 5, 7)), 0);
                run(fx);
                check_raw(fx, o[3], w, h, 7);

                /* every input back, and each before the output made from it */
                for (unsigned i = 0; i < fx->n_bufs; i++)
                        if (fx->bufs[i]->vb.queue == VIDEO_QUEUE_INPUT) {
                                const Rec *r = find_done(fx, fx->bufs[i]);
                                assert_non_null(r);
                                assert_int_equal(r->res.flags, 0);
                        }
                assert_true(find_done(fx, split[1]) < find_done(fx, o[2]));
                assert_int_equal(count(fx, EV_ERROR), 0);
                fx_free(fx);
        }
}

/* Two frames in one input buffer, outputs waiting: both converted in place, in order, the input back
 * once both are out of it (after the first output, before the second). */
static void test_direct_path_two_frames_in_one_input(void **state) {
        Fx *fx = *state;
        uint8_t stream[2 * (16 + 8 * 4 * 3 / 2)], first[16 + 8 * 4 * 3 / 2];
        size_t len = make_frame(stream, 8, 4, 1);
        TBuf *o1, *o2, *in;

        len += make_frame(stream + len, 8, 4, 2);
        make_frame(first, 8, 4, 0);
        assert_int_equal(queue(fx, input_chunked(fx, first, sizeof(first), 1, 4096)), 0);
        run(fx);
        assert_int_equal(queue(fx, output_for(fx, 1)), 0);
        run(fx); /* frame 0, staged */
        o1 = output_for(fx, 2);
        o2 = output_for(fx, 3);
        assert_int_equal(queue(fx, o1), 0);
        assert_int_equal(queue(fx, o2), 0);
        in = input_chunked(fx, stream, len, 9, 4096);
        assert_int_equal(queue(fx, in), 0);
        run(fx);
        check_nv12(o1->mem[0], 8, 4, 8, 1);
        check_nv12(o2->mem[0], 8, 4, 8, 2);
        assert_true(find_done(fx, o1) < find_done(fx, in));
        assert_true(find_done(fx, in) < find_done(fx, o2));
        assert_int_equal(find_done(fx, o1)->res.timestamp, 9);
        assert_int_equal(find_done(fx, o2)->res.timestamp, 9);
}

/* The encoder reads the raw picture straight into the coded buffer: odd strides, several planes, both
 * sides in segments that split rows. */
static void test_encoder_strided_segmented_input(void **state) {
        static const Layout layouts[] = {
                { VIDEO_FORMAT_NV12, 1, { 20 } },
                { VIDEO_FORMAT_NV12, 2, { 18, 23 } },
                { VIDEO_FORMAT_YUV420, 3, { 22, 9, 13 } },
        };
        const uint16_t w = 18, h = 6;
        uint8_t frame[16 + 18 * 6 * 3 / 2];

        (void) state;
        make_frame(frame, w, h, 0); /* the null encoder numbers its frames from 0 */
        for (unsigned l = 0; l < sizeof(layouts) / sizeof(layouts[0]); l++) {
                Fx *fx = fx_new("null-encoder");
                VideoParams p = get_params(fx, VIDEO_QUEUE_INPUT);
                uint8_t *raw[VIDEO_MAX_PLANES] = {};
                size_t sizes[VIDEO_MAX_PLANES], osz;
                TBuf *in, *out;

                p.format = layouts[l].format;
                p.frame_width = w;
                p.frame_height = h;
                p.num_planes = layouts[l].num_planes;
                for (unsigned i = 0; i < 3; i++)
                        p.planes[i].stride = layouts[l].strides[i];
                fx->in_op = true;
                assert_int_equal(fx->backend->ops->set_params(fx->stream, VIDEO_QUEUE_INPUT, &p), 0);
                fx->in_op = false;
                p = get_params(fx, VIDEO_QUEUE_INPUT);
                assert_int_equal(p.num_planes, layouts[l].num_planes);
                for (unsigned i = 0; i < p.num_planes; i++) {
                        sizes[i] = p.planes[i].plane_size;
                        raw[i] = malloc(sizes[i]);
                        assert_non_null(raw[i]);
                }
                expected_raw(&p, w, h, 0, raw);
                in = tbuf(fx, VIDEO_QUEUE_INPUT, 1, p.num_planes, sizes, 11);
                for (unsigned i = 0; i < p.num_planes; i++) {
                        memcpy(in->mem[i], raw[i], sizes[i]);
                        in->vb.planes[i].data_size = (uint32_t) sizes[i];
                        free(raw[i]);
                }
                osz = get_params(fx, VIDEO_QUEUE_OUTPUT).planes[0].plane_size;
                out = tbuf(fx, VIDEO_QUEUE_OUTPUT, 2, 1, &osz, osz);
                /* 6-byte segments over the frame, the rest of the buffer in one */
                unsigned n = 0;
                for (size_t off = 0; off < osz; off += 6) {
                        bool last = off + 6 >= sizeof(frame) + 6;
                        out->iov[0][n++] = (struct iovec){ out->mem[0] + off, last ? osz - off : 6 };
                        if (last)
                                break;
                }
                out->vb.planes[0].n_iov = n;
                assert_int_equal(queue(fx, in), 0);
                assert_int_equal(queue(fx, out), 0);
                run(fx);
                const Rec *r = find_done(fx, out);
                assert_non_null(r);
                assert_int_equal(r->res.flags, VIDEO_BUFFER_F_IFRAME);
                assert_int_equal(r->res.sizes[0], sizeof(frame));
                assert_memory_equal(out->mem[0], frame, sizeof(frame));
                fx_free(fx);
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_registry_and_caps, setup_decoder, teardown),
                cmocka_unit_test_setup_teardown(test_decode_any_chunking, setup_decoder, teardown),
                cmocka_unit_test_setup_teardown(test_resolution_change, setup_decoder, teardown),
                cmocka_unit_test_setup_teardown(test_drain_eos_on_empty_buffer, setup_decoder, teardown),
                cmocka_unit_test_setup_teardown(test_clear_input_cancels_drain_and_resets_parser,
                                                setup_decoder, teardown),
                cmocka_unit_test_setup_teardown(test_corrupt_stream, setup_decoder, teardown),
                cmocka_unit_test_setup_teardown(test_yuv420_per_plane_output, setup_decoder, teardown),
                cmocka_unit_test_setup_teardown(test_encoder, setup_encoder, teardown),
                cmocka_unit_test_setup_teardown(test_encoder_drain, setup_encoder, teardown),
                cmocka_unit_test(test_direct_and_staged_paths_same_bytes),
                cmocka_unit_test_setup_teardown(test_direct_path_two_frames_in_one_input, setup_decoder,
                                                teardown),
                cmocka_unit_test(test_encoder_strided_segmented_input),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
