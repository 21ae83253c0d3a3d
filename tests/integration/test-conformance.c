/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Conformance of the virtio-video device through the whole vhost-user path (architecture.md §6 layer 2):
 * the device model with the null backend behind the vhost transport on a socketpair, driven by the
 * frontend library (plays QEMU) and the video client (plays the guest driver DRV-A, command order of
 * virtio-video-v3.md §7.3). Everything runs on one thread: the frontend and the client pump the
 * device's sd-event loop while they wait.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <systemd/sd-event.h>

#include "backend/backend.h"
#include "common/macro.h"
#include "frontend/frontend.h"
#include "frontend/video-client.h"
#include "null-stream.h"
#include "vhost/vhost.h"
#include "video/device.h"
#include "video/virtio-video-proto.h"

#define QT_IN VIRTIO_VIDEO_QUEUE_TYPE_INPUT
#define QT_OUT VIRTIO_VIDEO_QUEUE_TYPE_OUTPUT

typedef struct Env {
        sd_event *event;
        Backend *backend;
        VideoDevice *device;
        VuFrontend *fe;
        VideoClient *c;
} Env;

static int pump(void *userdata) {
        return sd_event_run(userdata, 0);
}

static int env_open(Env **ret, const char *backend_name) {
        BackendConfig bc = { .device_fd = -1 };
        VuFrontendOptions fo;
        VideoClientOptions co;
        int fds[2], r;
        Env *env;

        env = calloc(1, sizeof(*env));
        assert_non_null(env);
        assert_int_equal(sd_event_new(&env->event), 0);
        r = backend_new(backend_name, &bc, env->event, &env->backend);
        if (r < 0) {
                sd_event_unref(env->event);
                free(env);
                return r;
        }
        assert_int_equal(video_device_new(env->event, env->backend, &(VideoDeviceOptions){}, &env->device),
                         0);
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
        assert_int_equal(vhost_dev_serve_fd(video_device_get_vhost(env->device), fds[0]), 0);

        vu_frontend_options_init(&fo);
        fo.pump = pump;
        fo.pump_userdata = env->event;
        fo.config_size = sizeof(struct virtio_video_config);
        fo.device_features =
                (1u << VIRTIO_VIDEO_F_RESOURCE_GUEST_PAGES) | (1u << VIRTIO_VIDEO_F_RESOURCE_NON_CONTIG);
        assert_int_equal(vu_frontend_new_from_fd(&fo, fds[1], &env->fe), 0);
        assert_int_equal(vu_frontend_start(env->fe), 0);

        video_client_options_init(&co);
        co.pump = pump;
        co.pump_userdata = env->event;
        assert_int_equal(video_client_new(env->fe, &co, &env->c), 0);
        assert_int_equal(video_client_probe(env->c), 0);
        *ret = env;
        return 0;
}

static int setup(void **state) {
        Env *env = NULL;

        assert_int_equal(env_open(&env, "null"), 0);
        *state = env;
        return 0;
}

static int teardown(void **state) {
        Env *env = *state;

        video_client_free(env->c);
        vu_frontend_free(env->fe);
        /* Let the device see the hangup and drop its state, as it would in production. */
        for (int i = 0; i < 100 && sd_event_run(env->event, 0) > 0; i++)
                ;
        video_device_free(env->device);
        backend_free(env->backend);
        sd_event_unref(env->event);
        free(env);
        return 0;
}

/* ---- helpers -------------------------------------------------------------------------------------- */

typedef struct Expect {
        const NullStream *s;
        const uint32_t *w, *h; /* per frame */
        unsigned next;
        uint64_t *timestamps; /* per frame, what the output completion carried */
} Expect;

static int check_frame(void *userdata, const VcFrame *f) {
        Expect *x = userdata;

        if (x->next >= x->s->n_frames)
                return -E2BIG;
        if (!null_frame_matches(f, x->w[x->next], x->h[x->next], x->next + 1))
                return -EBADMSG;
        /* The visible rectangle is the picture (§4.9, typical decoder values). */
        if (f->crop.left != 0 || f->crop.top != 0 || f->crop.width != x->w[x->next] ||
            f->crop.height != x->h[x->next])
                return -EBADMSG;
        if (x->timestamps)
                x->timestamps[x->next] = f->timestamp;
        x->next++;
        return 0;
}

static void build_stream(NullStream *s, unsigned n, const uint32_t *w, const uint32_t *h) {
        for (unsigned i = 0; i < n; i++)
                assert_int_equal(null_stream_append(s, w[i], h[i], i + 1), 0);
}

static uint32_t first_format(Env *env, uint32_t qt) {
        const VcCaps *caps = video_client_get_caps(env->c, qt);
        assert_non_null(caps);
        assert_true(caps->n_formats >= 1);
        return caps->formats[0].format;
}

/* Creates a stream and sets its input up the way the driver does (§7.3 steps 2-4). */
static void open_stream(Env *env, uint32_t id, unsigned n_in, uint32_t in_size, uint32_t first_res_id) {
        VcParams p;

        assert_int_equal(video_client_stream_create(env->c, id, first_format(env, QT_IN), "test"), 0);
        assert_int_equal(video_client_get_params(env->c, id, QT_IN, true, &p), 0);
        assert_int_equal(video_client_get_params(env->c, id, QT_OUT, true, &p), 0);
        assert_int_equal(video_client_get_params(env->c, id, QT_IN, true, &p), 0);
        p.planes[0].plane_size = in_size;
        assert_int_equal(video_client_set_params(env->c, id, true, &p), 0);
        assert_int_equal(video_client_get_params(env->c, id, QT_IN, true, &p), 0);
        assert_true(p.planes[0].plane_size >= in_size);
        for (unsigned i = 0; i < n_in; i++)
                assert_int_equal(video_client_resource_create(env->c, id, QT_IN, first_res_id + i, 1,
                                                              &in_size, 1),
                                 0);
}

static void
queue_input(Env *env, uint32_t stream, uint32_t res, const void *data, uint32_t len, uint64_t ts) {
        assert_int_equal(video_client_resource_write(env->c, stream, QT_IN, res, 0, 0, data, len), 0);
        assert_int_equal(video_client_resource_queue(env->c, stream, QT_IN, res, ts, 1, &len), 0);
}

/* Creates and queues n output buffers after GET_PARAMS(OUTPUT); returns the params. */
static VcParams setup_outputs(Env *env, uint32_t stream, unsigned n, uint32_t first_res_id) {
        uint32_t sizes[VC_MAX_PLANES], zero[VC_MAX_PLANES] = {};
        VcParams p;

        assert_int_equal(video_client_get_params(env->c, stream, QT_OUT, true, &p), 0);
        assert_true(p.num_planes >= 1 && p.num_planes <= VC_MAX_PLANES);
        for (unsigned k = 0; k < p.num_planes; k++)
                sizes[k] = p.planes[k].plane_size;
        for (unsigned i = 0; i < n; i++) {
                assert_int_equal(video_client_resource_create(env->c, stream, QT_OUT, first_res_id + i,
                                                              p.num_planes, sizes, 1),
                                 0);
                assert_int_equal(video_client_resource_queue(env->c, stream, QT_OUT, first_res_id + i, 0,
                                                             p.num_planes, zero),
                                 0);
        }
        return p;
}

static VcEvent wait_event(Env *env) {
        VcEvent e;
        assert_int_equal(video_client_next_event(env->c, &e, true), 1);
        return e;
}

static VcCompletion wait_completion(Env *env) {
        VcCompletion v;
        assert_int_equal(video_client_next_completion(env->c, &v, true), 1);
        return v;
}

/* Raw command with an 8-byte reply: the reply's type. */
static uint32_t raw_type(Env *env, const void *req, size_t len, const void *extra, size_t extra_len) {
        uint8_t resp[8];
        size_t n;

        assert_int_equal(video_client_command(env->c, req, len, extra, extra_len, resp, sizeof(resp), &n),
                         0);
        assert_int_equal(n, 8);
        return video_client_resp_type(resp, n);
}

/* ---- probe ---------------------------------------------------------------------------------------- */

static void test_probe_config_and_capabilities(void **state) {
        Env *env = *state;
        const VcConfig *cfg = video_client_get_config(env->c);
        const VcCaps *in = video_client_get_caps(env->c, QT_IN),
                     *out = video_client_get_caps(env->c, QT_OUT);

        assert_int_equal(cfg->version, 0);
        assert_true(cfg->max_caps_length >= 96);
        assert_true(cfg->max_resp_length >= 16);
        assert_int_equal(video_device_virtio_id(env->device), VIDEO_DEVICE_ID_DECODER);
        assert_false(video_client_is_encoder(env->c));
        /* The null decoder takes FWHT-tagged null frames and produces raw pictures (null-codec.md). */
        assert_int_equal(in->formats[0].format, 0x1006);
        for (unsigned i = 0; i < out->n_formats; i++) {
                assert_true(out->formats[i].format >= 1 && out->formats[i].format <= 5);
                assert_true(out->formats[i].planes_layout & VIRTIO_VIDEO_PLANES_LAYOUT_SINGLE_BUFFER);
        }
        /* §4.1: the mask of an input format indexes the output list. */
        assert_true(in->formats[0].mask != 0);
        assert_true(in->formats[0].mask >> out->n_formats == 0);
        assert_true(in->formats[0].n_frames >= 1);
}

/* ---- decoder sessions -------------------------------------------------------------------------------- */

static void test_decode_session_driver_order(void **state) {
        Env *env = *state;
        const uint32_t w[] = { 64, 64, 64, 64, 64 }, h[] = { 48, 48, 48, 48, 48 };
        uint64_t ts[5] = {};
        NullStream s = {};
        Expect x = { .s = &s, .w = w, .h = h, .timestamps = ts };
        VcDecodeResult res;
        VcDecodeOptions o = {
                .stream_id = 1,
                .frame = check_frame,
                .userdata = &x,
                .n_input_buffers = 2,
        };

        build_stream(&s, 5, w, h);
        o.bitstream = s.data;
        o.size = s.size;
        /* One frame per input buffer: timestamps can be matched frame by frame. */
        size_t chunks[5];
        for (unsigned i = 0; i < 5; i++)
                chunks[i] = (i + 1 < 5 ? s.frame_offsets[i + 1] : s.size) - s.frame_offsets[i];
        o.chunk_sizes = chunks;
        o.n_chunks = 5;

        assert_int_equal(video_client_decode(env->c, &o, &res), 0);
        assert_int_equal(res.frames, 5);
        assert_int_equal(x.next, 5);
        assert_int_equal(res.resolution_changes, 1);
        assert_int_equal(res.width, 64);
        assert_int_equal(res.height, 48);
        assert_int_equal(res.input_completions, 5);
        assert_int_equal(res.drain_resp_type, VIRTIO_VIDEO_RESP_OK_NODATA);
        /* §4.6: an output carries the timestamp of the input its frame came from. */
        for (unsigned i = 0; i < 5; i++)
                assert_int_equal(ts[i], (uint64_t) (i + 1) * 1000);
        null_stream_done(&s);
}

static void test_decode_any_chunking_and_scatter_gather(void **state) {
        Env *env = *state;
        const uint32_t w[] = { 32, 32, 32, 32 }, h[] = { 16, 16, 16, 16 };
        NullStream s = {};
        Expect x = { .s = &s, .w = w, .h = h };
        VcDecodeResult res;
        /* Chunks that split headers and payloads, and one that holds parts of three frames. */
        size_t chunks[] = { 3, 10, 700, 1, 1200, 5, 4096 };
        VcDecodeOptions o = {
                .stream_id = 7,
                .chunk_sizes = chunks,
                .n_chunks = ELEMENTSOF(chunks),
                .entries_per_plane = 3,
                .output_format = 4, /* YUV420 */
                .frame = check_frame,
                .userdata = &x,
        };

        build_stream(&s, 4, w, h);
        o.bitstream = s.data;
        o.size = s.size;
        assert_int_equal(video_client_decode(env->c, &o, &res), 0);
        assert_int_equal(res.frames, 4);
        assert_int_equal(x.next, 4);
        null_stream_done(&s);
}

static void test_decode_legacy_params_dialect(void **state) {
        Env *env = *state;
        const uint32_t w[] = { 16, 16 }, h[] = { 16, 16 };
        NullStream s = {};
        Expect x = { .s = &s, .w = w, .h = h };
        VcDecodeResult res;
        VcDecodeOptions o = { .stream_id = 3, .legacy_params = true, .frame = check_frame, .userdata = &x };
        struct virtio_video_get_params q = {
                .hdr = { cpu_to_le32(VIRTIO_VIDEO_CMD_GET_PARAMS), cpu_to_le32(9) },
                .queue_type = cpu_to_le32(QT_IN),
        };
        uint8_t resp[200];
        size_t len;

        build_stream(&s, 2, w, h);
        o.bitstream = s.data;
        o.size = s.size;
        assert_int_equal(video_client_decode(env->c, &o, &res), 0);
        assert_int_equal(res.frames, 2);

        /* GET_PARAMS answers in its own dialect: 120 bytes, GET_PARAMS_EXT 128 (§4.9). */
        assert_int_equal(video_client_stream_create(env->c, 9, first_format(env, QT_IN), "x"), 0);
        assert_int_equal(video_client_command(env->c, &q, sizeof(q), NULL, 0, resp, sizeof(resp), &len), 0);
        assert_int_equal(len, 120);
        assert_int_equal(video_client_resp_type(resp, len), VIRTIO_VIDEO_RESP_OK_GET_PARAMS);
        q.hdr.type = cpu_to_le32(VIRTIO_VIDEO_CMD_GET_PARAMS_EXT);
        assert_int_equal(video_client_command(env->c, &q, sizeof(q), NULL, 0, resp, sizeof(resp), &len), 0);
        assert_int_equal(len, 128);
        assert_int_equal(video_client_stream_destroy(env->c, 9), 0);
        null_stream_done(&s);
}

static void test_resolution_change_mid_stream(void **state) {
        Env *env = *state;
        const uint32_t w[] = { 32, 32, 64, 64, 16 }, h[] = { 32, 32, 16, 16, 8 };
        NullStream s = {};
        Expect x = { .s = &s, .w = w, .h = h };
        VcDecodeResult res;
        VcDecodeOptions o = { .stream_id = 2, .frame = check_frame, .userdata = &x, .n_output_buffers = 3 };

        build_stream(&s, 5, w, h);
        o.bitstream = s.data;
        o.size = s.size;
        assert_int_equal(video_client_decode(env->c, &o, &res), 0);
        assert_int_equal(res.frames, 5);
        assert_int_equal(res.resolution_changes, 3);
        assert_int_equal(res.width, 16);
        assert_int_equal(res.height, 8);
        /* The buffers still queued at each change came back with ERR (§7.5). */
        assert_true(res.error_completions >= 3);
        null_stream_done(&s);
}

/* §7.4: every frame, then one EOS buffer as the last output completion, then the drain reply. */
static void test_drain_returns_frames_then_empty_eos(void **state) {
        Env *env = *state;
        const uint32_t w[] = { 16, 16, 16 }, h[] = { 16, 16, 16 };
        NullStream s = {};
        unsigned frames = 0;
        uint64_t drain;
        uint8_t resp[8];
        size_t len;
        VcParams p;

        build_stream(&s, 3, w, h);
        open_stream(env, 5, 1, (uint32_t) s.size, 100);
        queue_input(env, 5, 100, s.data, (uint32_t) s.size, 1000);
        assert_int_equal(wait_event(env).event_type, VIRTIO_VIDEO_EVENT_DECODER_RESOLUTION_CHANGED);
        p = setup_outputs(env, 5, 4, 200);
        assert_int_equal(p.frame_width, 16);
        assert_int_equal(video_client_stream_drain(env->c, 5, &drain), 0);

        for (;;) {
                VcCompletion v = wait_completion(env);
                assert_int_equal(v.resp_type, VIRTIO_VIDEO_RESP_OK_RESOURCE_QUEUE);
                if (v.queue_type == QT_IN)
                        continue;
                assert_false(v.flags & VIRTIO_VIDEO_BUFFER_FLAG_ERR);
                if (v.flags & VIRTIO_VIDEO_BUFFER_FLAG_EOS) {
                        assert_int_equal(v.size, 0);
                        break;
                }
                assert_int_equal(v.timestamp, 1000);
                frames++;
        }
        assert_int_equal(frames, 3);
        assert_int_equal(video_client_wait_reply(env->c, drain, resp, sizeof(resp), &len), 0);
        assert_int_equal(video_client_resp_type(resp, len), VIRTIO_VIDEO_RESP_OK_NODATA);
        /* Nothing else: the EOS buffer was the last output completion. */
        assert_int_equal(video_client_queued(env->c, 5, QT_OUT), 0);
        assert_int_equal(video_client_stream_destroy(env->c, 5), 0);
        null_stream_done(&s);
}

/* A drain with nothing pending still ends with an EOS buffer (§7.4, last bullet). */
static void test_drain_without_input_gives_eos(void **state) {
        Env *env = *state;
        const uint32_t w[] = { 16 }, h[] = { 16 };
        NullStream s = {};
        uint64_t drain;
        VcCompletion v;

        build_stream(&s, 1, w, h);
        open_stream(env, 6, 1, 4096, 300);
        queue_input(env, 6, 300, s.data, (uint32_t) s.size, 5000);
        assert_int_equal(wait_event(env).event_type, VIRTIO_VIDEO_EVENT_DECODER_RESOLUTION_CHANGED);
        setup_outputs(env, 6, 2, 310);
        do
                v = wait_completion(env);
        while (v.queue_type != QT_OUT);
        assert_int_equal(v.timestamp, 5000);
        assert_int_equal(video_client_stream_drain(env->c, 6, &drain), 0);
        do
                v = wait_completion(env);
        while (v.queue_type != QT_OUT);
        assert_true(v.flags & VIRTIO_VIDEO_BUFFER_FLAG_EOS);
        assert_int_equal(video_client_wait_reply(env->c, drain, NULL, 0, NULL), 0);
        assert_int_equal(video_client_stream_destroy(env->c, 6), 0);
        null_stream_done(&s);
}

/* §4.8 / §7.7c: QUEUE_CLEAR hands back every queued buffer with ERR before its reply; the stream goes on. */
static void test_queue_clear_mid_stream(void **state) {
        Env *env = *state;
        const uint32_t w[] = { 16, 16, 16 }, h[] = { 16, 16, 16 };
        NullStream s = {};
        VcCompletion v;
        unsigned errs = 0;
        int r;

        build_stream(&s, 3, w, h);
        open_stream(env, 11, 2, 4096, 400);
        /* Headers only: the decoder learns the size and holds the partial frame. */
        queue_input(env, 11, 400, s.data, NULL_FRAME_HEADER_SIZE + 10, 1000);
        assert_int_equal(wait_event(env).event_type, VIRTIO_VIDEO_EVENT_DECODER_RESOLUTION_CHANGED);
        setup_outputs(env, 11, 3, 410);
        assert_int_equal(video_client_queued(env->c, 11, QT_OUT), 3);

        /* The client fails with -EPROTO if the reply overtakes one of the cancelled buffers. */
        assert_int_equal(video_client_queue_clear(env->c, 11, QT_OUT), 0);
        assert_int_equal(video_client_queued(env->c, 11, QT_OUT), 0);
        while ((r = video_client_next_completion(env->c, &v, false)) > 0) {
                if (v.queue_type != QT_OUT)
                        continue;
                assert_true(v.flags & VIRTIO_VIDEO_BUFFER_FLAG_ERR);
                errs++;
        }
        assert_int_equal(r, 0);
        assert_int_equal(errs, 3);

        /* Seek: clear the input too, then decode a fresh frame from its start. */
        assert_int_equal(video_client_queue_clear(env->c, 11, QT_IN), 0);
        assert_int_equal(video_client_queued(env->c, 11, QT_IN), 0);
        {
                uint32_t zero[VC_MAX_PLANES] = {};
                for (uint32_t id = 410; id < 413; id++)
                        assert_int_equal(video_client_resource_queue(env->c, 11, QT_OUT, id, 0, 1, zero), 0);
        }
        queue_input(env, 11, 401, s.data + s.frame_offsets[1],
                    (uint32_t) (s.frame_offsets[2] - s.frame_offsets[1]), 7000);
        for (;;) {
                v = wait_completion(env);
                if (v.queue_type == QT_OUT && !(v.flags & VIRTIO_VIDEO_BUFFER_FLAG_ERR))
                        break;
        }
        assert_int_equal(v.timestamp, 7000);
        assert_int_equal(video_client_stream_destroy(env->c, 11), 0);
        null_stream_done(&s);
}

/* §4.3 / §7.6: STREAM_DESTROY with buffers queued completes them with ERR before its reply. */
static void test_stream_destroy_with_buffers_queued(void **state) {
        Env *env = *state;
        const uint32_t w[] = { 16 }, h[] = { 16 };
        NullStream s = {};
        VcCompletion v;
        unsigned errs = 0, all = 0;
        VcParams p;

        build_stream(&s, 1, w, h);
        open_stream(env, 12, 2, 4096, 500);
        queue_input(env, 12, 500, s.data, NULL_FRAME_HEADER_SIZE, 1000);
        assert_int_equal(wait_event(env).event_type, VIRTIO_VIDEO_EVENT_DECODER_RESOLUTION_CHANGED);
        setup_outputs(env, 12, 2, 510);
        /* A partial frame keeps input 501 inside the decoder. */
        queue_input(env, 12, 501, s.data + NULL_FRAME_HEADER_SIZE, 8, 2000);
        /* The cancelled completions belong to the destroy: it counts them and nobody gets them later. */
        assert_int_equal(video_client_stream_destroy_full(env->c, 12, &all, &errs), 0);
        assert_true(errs >= 2); /* both outputs (and input 501 if the decoder still held it) */
        assert_true(all >= errs);
        assert_int_equal(video_client_next_completion(env->c, &v, false), 0);
        assert_int_equal(video_client_queued(env->c, 12, QT_OUT), 0);
        assert_int_equal(video_client_queued(env->c, 12, QT_IN), 0);
        /* The id is free again and the old one is gone. */
        assert_int_equal(video_client_get_params(env->c, 12, QT_IN, true, &p),
                         VIRTIO_VIDEO_RESP_ERR_INVALID_STREAM_ID);
        null_stream_done(&s);
}

/* §4.7 / §7.7c: RESOURCE_DESTROY_ALL with buffers queued completes them with ERR before its reply; the ids
 * may be created again afterwards. */
static void test_destroy_all_with_buffers_queued(void **state) {
        Env *env = *state;
        const uint32_t w[] = { 16 }, h[] = { 16 };
        NullStream s = {};
        uint32_t size = 4096;
        unsigned errs = 0;
        VcCompletion v;
        VcParams p;
        int r;

        build_stream(&s, 1, w, h);
        open_stream(env, 13, 2, size, 600);
        queue_input(env, 13, 600, s.data, NULL_FRAME_HEADER_SIZE, 1000);
        assert_int_equal(wait_event(env).event_type, VIRTIO_VIDEO_EVENT_DECODER_RESOLUTION_CHANGED);
        p = setup_outputs(env, 13, 3, 610);
        assert_int_equal(video_client_queued(env->c, 13, QT_OUT), 3);
        /* The client fails with -EPROTO when the reply overtakes one of the three. */
        assert_int_equal(video_client_resource_destroy_all(env->c, 13, QT_OUT), 0);
        assert_int_equal(video_client_queued(env->c, 13, QT_OUT), 0);
        while ((r = video_client_next_completion(env->c, &v, false)) > 0)
                if (v.queue_type == QT_OUT) {
                        assert_true(v.flags & VIRTIO_VIDEO_BUFFER_FLAG_ERR);
                        errs++;
                }
        assert_int_equal(r, 0);
        assert_int_equal(errs, 3);
        /* Forgotten: queueing one is refused, creating it again works. */
        assert_int_equal(video_client_resource_queue(env->c, 13, QT_OUT, 610, 0, 1, &size), 0);
        assert_int_equal(wait_completion(env).resp_type, VIRTIO_VIDEO_RESP_ERR_INVALID_RESOURCE_ID);
        {
                uint32_t sizes[VC_MAX_PLANES];
                for (unsigned k = 0; k < p.num_planes; k++)
                        sizes[k] = p.planes[k].plane_size;
                assert_int_equal(video_client_resource_create(env->c, 13, QT_OUT, 610, p.num_planes, sizes,
                                                              1),
                                 0);
        }
        assert_int_equal(video_client_resource_destroy_all(env->c, 13, QT_IN), 0);
        assert_int_equal(video_client_resource_create(env->c, 13, QT_IN, 600, 1, &size, 1), 0);
        assert_int_equal(video_client_stream_destroy(env->c, 13), 0);
        null_stream_done(&s);
}

typedef struct Session {
        uint32_t id;
        const NullStream *s;
        uint32_t w, h;
        unsigned frames;
        bool eos;
} Session;

/* Two streams decode at once, interleaved on one commandq; completions and events carry their stream. */
static void test_two_streams_at_once(void **state) {
        Env *env = *state;
        const uint32_t wa[] = { 32, 32, 32 }, ha[] = { 16, 16, 16 }, wb[] = { 16, 16 }, hb[] = { 32, 32 };
        NullStream sa = {}, sb = {};
        Session ss[2] = { { .id = 21, .s = &sa, .w = 32, .h = 16 },
                          { .id = 22, .s = &sb, .w = 16, .h = 32 } };
        unsigned outputs_set = 0;
        uint64_t drains[2];

        build_stream(&sa, 3, wa, ha);
        build_stream(&sb, 2, wb, hb);
        open_stream(env, 21, 1, (uint32_t) sa.size, 700);
        open_stream(env, 22, 1, (uint32_t) sb.size, 800);
        queue_input(env, 21, 700, sa.data, (uint32_t) sa.size, 21000);
        queue_input(env, 22, 800, sb.data, (uint32_t) sb.size, 22000);
        while (outputs_set < 2) {
                VcEvent e = wait_event(env);
                assert_int_equal(e.event_type, VIRTIO_VIDEO_EVENT_DECODER_RESOLUTION_CHANGED);
                assert_true(e.stream_id == 21 || e.stream_id == 22);
                VcParams p = setup_outputs(env, e.stream_id, 2, e.stream_id == 21 ? 710 : 810);
                assert_int_equal(p.frame_width, e.stream_id == 21 ? 32 : 16);
                assert_int_equal(p.frame_height, e.stream_id == 21 ? 16 : 32);
                outputs_set++;
        }
        assert_int_equal(video_client_stream_drain(env->c, 21, &drains[0]), 0);
        assert_int_equal(video_client_stream_drain(env->c, 22, &drains[1]), 0);
        while (!ss[0].eos || !ss[1].eos) {
                VcCompletion v = wait_completion(env);
                Session *x = v.stream_id == 21 ? &ss[0] : &ss[1];
                uint32_t zero[VC_MAX_PLANES] = {};

                assert_true(v.stream_id == 21 || v.stream_id == 22);
                if (v.queue_type == QT_IN)
                        continue;
                assert_false(v.flags & VIRTIO_VIDEO_BUFFER_FLAG_ERR);
                assert_false(x->eos);
                if (v.flags & VIRTIO_VIDEO_BUFFER_FLAG_EOS) {
                        x->eos = true;
                        continue;
                }
                assert_int_equal(v.timestamp, x->id * 1000);
                /* Check the picture, then give the buffer back. */
                {
                        VcParams p;
                        VcFrame f = {};
                        uint8_t *buf[VC_MAX_PLANES] = {};

                        assert_int_equal(video_client_get_params(env->c, x->id, QT_OUT, true, &p), 0);
                        f = (VcFrame){ .format = p.format,
                                       .width = p.frame_width,
                                       .height = p.frame_height,
                                       .n_planes = p.num_planes };
                        for (unsigned k = 0; k < p.num_planes; k++) {
                                buf[k] = malloc(p.planes[k].plane_size);
                                assert_non_null(buf[k]);
                                assert_int_equal(video_client_resource_read(env->c, x->id, QT_OUT,
                                                                            v.resource_id, k, 0, buf[k],
                                                                            p.planes[k].plane_size),
                                                 0);
                                f.planes[k] = buf[k];
                                f.plane_sizes[k] = p.planes[k].plane_size;
                                f.strides[k] = p.planes[k].stride;
                        }
                        assert_true(null_frame_matches(&f, x->w, x->h, x->frames + 1));
                        for (unsigned k = 0; k < p.num_planes; k++)
                                free(buf[k]);
                }
                x->frames++;
                assert_int_equal(video_client_resource_queue(env->c, x->id, QT_OUT, v.resource_id, 0, 1,
                                                             zero),
                                 0);
        }
        assert_int_equal(ss[0].frames, 3);
        assert_int_equal(ss[1].frames, 2);
        assert_int_equal(video_client_wait_reply(env->c, drains[0], NULL, 0, NULL), 0);
        assert_int_equal(video_client_wait_reply(env->c, drains[1], NULL, 0, NULL), 0);
        assert_int_equal(video_client_stream_destroy(env->c, 21), 0);
        assert_int_equal(video_client_stream_destroy(env->c, 22), 0);
        null_stream_done(&sa);
        null_stream_done(&sb);
}

/* Both params dialects set and read back the same values; the _EXT one carries resource_type. */
static void test_params_both_dialects(void **state) {
        Env *env = *state;
        VcParams p, ext, legacy;

        assert_int_equal(video_client_stream_create(env->c, 31, first_format(env, QT_IN), "params"), 0);
        assert_int_equal(video_client_get_params(env->c, 31, QT_IN, true, &p), 0);
        assert_int_equal(p.queue_type, QT_IN);
        assert_int_equal(p.format, first_format(env, QT_IN));
        assert_int_equal(p.resource_type, VIRTIO_VIDEO_MEM_TYPE_GUEST_PAGES);
        p.planes[0].plane_size = 123456;
        assert_int_equal(video_client_set_params(env->c, 31, false, &p), 0);
        assert_int_equal(video_client_get_params(env->c, 31, QT_IN, true, &ext), 0);
        assert_int_equal(video_client_get_params(env->c, 31, QT_IN, false, &legacy), 0);
        assert_true(ext.planes[0].plane_size >= 123456);
        assert_int_equal(ext.planes[0].plane_size, legacy.planes[0].plane_size);
        assert_int_equal(ext.format, legacy.format);
        ext.planes[0].plane_size = 65536;
        assert_int_equal(video_client_set_params(env->c, 31, true, &ext), 0);
        assert_int_equal(video_client_get_params(env->c, 31, QT_IN, false, &legacy), 0);
        assert_int_equal(legacy.planes[0].plane_size, 65536);
        assert_int_equal(video_client_get_params(env->c, 31, QT_OUT, false, &legacy), 0);
        assert_int_equal(legacy.queue_type, QT_OUT);
        assert_int_equal(video_client_stream_destroy(env->c, 31), 0);
}

/* ---- every error code a guest can provoke (§3.3, 0x0300..0x0305) --------------------------------- */

static void test_err_invalid_operation(void **state) {
        Env *env = *state;
        struct virtio_video_cmd_hdr unknown = { cpu_to_le32(0x01ff), cpu_to_le32(0) };
        uint64_t d1, d2;
        uint8_t resp[8];
        size_t len;
        uint32_t size = 4096;

        assert_int_equal(raw_type(env, &unknown, sizeof(unknown), NULL, 0),
                         VIRTIO_VIDEO_RESP_ERR_INVALID_OPERATION);
        /* A second drain while one is in progress, and input queued during a drain (§4.4). */
        open_stream(env, 41, 2, size, 900);
        assert_int_equal(video_client_stream_drain(env->c, 41, &d1), 0);
        assert_int_equal(video_client_stream_drain(env->c, 41, &d2), 0);
        assert_int_equal(video_client_wait_reply(env->c, d2, resp, sizeof(resp), &len), 0);
        assert_int_equal(video_client_resp_type(resp, len), VIRTIO_VIDEO_RESP_ERR_INVALID_OPERATION);
        assert_int_equal(video_client_resource_queue(env->c, 41, QT_IN, 900, 1, 1, &size), 0);
        VcCompletion v = wait_completion(env);
        assert_int_equal(v.resp_type, VIRTIO_VIDEO_RESP_ERR_INVALID_OPERATION);
        assert_int_equal(video_client_stream_destroy(env->c, 41), 0);
        /* The drain cancelled by the destroy is answered too (§4.4). */
        assert_int_equal(video_client_wait_reply(env->c, d1, resp, sizeof(resp), &len), 0);
        assert_int_equal(video_client_resp_type(resp, len), VIRTIO_VIDEO_RESP_ERR_INVALID_OPERATION);

        /* So is a drain cancelled by QUEUE_CLEAR(INPUT), a seek (§4.4, CROSVM). */
        open_stream(env, 42, 1, size, 950);
        assert_int_equal(video_client_stream_drain(env->c, 42, &d1), 0);
        assert_int_equal(video_client_queue_clear(env->c, 42, QT_IN), 0);
        assert_int_equal(video_client_wait_reply(env->c, d1, resp, sizeof(resp), &len), 0);
        assert_int_equal(video_client_resp_type(resp, len), VIRTIO_VIDEO_RESP_ERR_INVALID_OPERATION);
        /* And the stream takes input again afterwards (not refused as during the drain). */
        assert_int_equal(video_client_resource_queue(env->c, 42, QT_IN, 950, 1, 1, &size), 0);
        v = wait_completion(env);
        assert_int_equal(v.resource_id, 950);
        assert_int_equal(v.resp_type, VIRTIO_VIDEO_RESP_OK_RESOURCE_QUEUE);
        assert_int_equal(video_client_stream_destroy(env->c, 42), 0);
}

static void test_err_out_of_memory(void **state) {
        Env *env = *state;
        unsigned i;
        int r = 0;

        /* Streams are a capped resource (style.md §2.6): creating past the cap is refused. */
        for (i = 1; i <= 4096; i++) {
                r = video_client_stream_create(env->c, 1000 + i, first_format(env, QT_IN), "many");
                if (r != 0)
                        break;
        }
        assert_int_equal(r, VIRTIO_VIDEO_RESP_ERR_OUT_OF_MEMORY);
        for (unsigned k = 1; k < i; k++)
                assert_int_equal(video_client_stream_destroy(env->c, 1000 + k), 0);
        /* Room again after the destroys. */
        assert_int_equal(video_client_stream_create(env->c, 1000, first_format(env, QT_IN), "again"), 0);
        assert_int_equal(video_client_stream_destroy(env->c, 1000), 0);
}

static void test_err_invalid_stream_id(void **state) {
        Env *env = *state;
        VcParams p;
        uint32_t size = 4096;

        assert_int_equal(video_client_get_params(env->c, 77, QT_IN, true, &p),
                         VIRTIO_VIDEO_RESP_ERR_INVALID_STREAM_ID);
        assert_int_equal(video_client_stream_destroy(env->c, 77), VIRTIO_VIDEO_RESP_ERR_INVALID_STREAM_ID);
        assert_int_equal(video_client_resource_create(env->c, 77, QT_IN, 1, 1, &size, 1),
                         VIRTIO_VIDEO_RESP_ERR_INVALID_STREAM_ID);
        assert_int_equal(video_client_stream_create(env->c, 78, first_format(env, QT_IN), "a"), 0);
        /* SPEC-v3: an id in use MUST be refused. */
        assert_int_equal(video_client_stream_create(env->c, 78, first_format(env, QT_IN), "b"),
                         VIRTIO_VIDEO_RESP_ERR_INVALID_STREAM_ID);
        assert_int_equal(video_client_stream_destroy(env->c, 78), 0);
}

static void test_err_invalid_resource_id(void **state) {
        Env *env = *state;
        uint32_t size = 4096;

        open_stream(env, 51, 1, size, 1100);
        assert_int_equal(video_client_resource_create(env->c, 51, QT_IN, 1100, 1, &size, 1),
                         VIRTIO_VIDEO_RESP_ERR_INVALID_RESOURCE_ID);
        assert_int_equal(video_client_resource_queue(env->c, 51, QT_IN, 4242, 0, 1, &size), 0);
        assert_int_equal(wait_completion(env).resp_type, VIRTIO_VIDEO_RESP_ERR_INVALID_RESOURCE_ID);
        assert_int_equal(video_client_stream_destroy(env->c, 51), 0);
}

static void test_err_invalid_parameter(void **state) {
        Env *env = *state;
        struct virtio_video_query_capability qc = {
                .hdr = { cpu_to_le32(VIRTIO_VIDEO_CMD_QUERY_CAPABILITY), cpu_to_le32(0) },
                .queue_type = cpu_to_le32(0x555),
        };
        struct virtio_video_resource_create rc = {
                .hdr = { cpu_to_le32(VIRTIO_VIDEO_CMD_RESOURCE_CREATE), cpu_to_le32(61) },
                .queue_type = cpu_to_le32(QT_IN),
                .resource_id = cpu_to_le32(1200),
                .planes_layout = cpu_to_le32(VIRTIO_VIDEO_PLANES_LAYOUT_SINGLE_BUFFER),
                .num_planes = cpu_to_le32(1),
                .num_entries = { cpu_to_le32(1) },
        };
        struct virtio_video_mem_entry outside = {
                .addr = cpu_to_le64(vu_frontend_mem_gpa(env->fe) + vu_frontend_mem_size(env->fe) - 64),
                .length = cpu_to_le32(4096),
        };
        uint8_t resp[64];
        size_t len;

        assert_int_equal(video_client_command(env->c, &qc, sizeof(qc), NULL, 0, resp, sizeof(resp), &len),
                         0);
        assert_int_equal(video_client_resp_type(resp, len), VIRTIO_VIDEO_RESP_ERR_INVALID_PARAMETER);
        assert_int_equal(video_client_stream_create(env->c, 61, 0x7777, "bad format"),
                         VIRTIO_VIDEO_RESP_ERR_INVALID_PARAMETER);
        assert_int_equal(video_client_stream_create_full(env->c, 61, 5, 0, first_format(env, QT_IN),
                                                         "bad mem"),
                         VIRTIO_VIDEO_RESP_ERR_INVALID_PARAMETER);
        assert_int_equal(video_client_stream_create(env->c, 61, first_format(env, QT_IN), "ok"), 0);
        /* A buffer that runs past the end of guest memory. */
        assert_int_equal(raw_type(env, &rc, sizeof(rc), &outside, sizeof(outside)),
                         VIRTIO_VIDEO_RESP_ERR_INVALID_PARAMETER);
        /* RESOURCE_QUEUE refusals are synchronous (§4.6): more than 8 data sizes, a size beyond the
         * buffer, and a buffer that is already queued. */
        {
                uint32_t size = 4096, big = 8192;

                assert_int_equal(video_client_resource_create(env->c, 61, QT_IN, 1201, 1, &size, 1), 0);
                assert_int_equal(video_client_resource_queue(env->c, 61, QT_IN, 1201, 0, 9, NULL), 0);
                assert_int_equal(wait_completion(env).resp_type, VIRTIO_VIDEO_RESP_ERR_INVALID_PARAMETER);
                assert_int_equal(video_client_resource_queue(env->c, 61, QT_IN, 1201, 0, 1, &big), 0);
                assert_int_equal(wait_completion(env).resp_type, VIRTIO_VIDEO_RESP_ERR_INVALID_PARAMETER);
        }
        /* Two planes layouts at once. */
        rc.planes_layout = cpu_to_le32(3);
        outside.addr = cpu_to_le64(vu_frontend_mem_gpa(env->fe) + 0x100000);
        assert_int_equal(raw_type(env, &rc, sizeof(rc), &outside, sizeof(outside)),
                         VIRTIO_VIDEO_RESP_ERR_INVALID_PARAMETER);
        assert_int_equal(video_client_stream_destroy(env->c, 61), 0);
}

/* An output buffer that is still queued cannot be queued again (§4.6). */
static void test_err_queue_twice(void **state) {
        Env *env = *state;
        const uint32_t w[] = { 16 }, h[] = { 16 };
        uint32_t zero[VC_MAX_PLANES] = {};
        NullStream s = {};
        VcCompletion v;
        VcParams p;

        build_stream(&s, 1, w, h);
        open_stream(env, 62, 1, 4096, 1300);
        queue_input(env, 62, 1300, s.data, NULL_FRAME_HEADER_SIZE, 1000);
        assert_int_equal(wait_event(env).event_type, VIRTIO_VIDEO_EVENT_DECODER_RESOLUTION_CHANGED);
        p = setup_outputs(env, 62, 1, 1310);
        assert_int_equal(video_client_resource_queue(env->c, 62, QT_OUT, 1310, 0, p.num_planes, zero), 0);
        do
                v = wait_completion(env);
        while (v.queue_type != QT_OUT);
        assert_int_equal(v.resp_type, VIRTIO_VIDEO_RESP_ERR_INVALID_PARAMETER);
        /* The first one is still queued, and comes back with ERR on the destroy. */
        assert_int_equal(video_client_queued(env->c, 62, QT_OUT), 1);
        assert_int_equal(video_client_stream_destroy(env->c, 62), 0);
        null_stream_done(&s);
}

static void test_err_unsupported_control(void **state) {
        Env *env = *state;
        uint32_t v;

        assert_int_equal(video_client_query_control(env->c, 99, first_format(env, QT_IN), NULL, 0, NULL),
                         VIRTIO_VIDEO_RESP_ERR_UNSUPPORTED_CONTROL);
        assert_int_equal(video_client_stream_create(env->c, 71, first_format(env, QT_IN), "ctl"), 0);
        assert_int_equal(video_client_get_control(env->c, 71, 99, &v),
                         VIRTIO_VIDEO_RESP_ERR_UNSUPPORTED_CONTROL);
        assert_int_equal(video_client_stream_destroy(env->c, 71), 0);
}

/* A device that keeps serving after every one of those errors: a full decode still works. */
/* Sessions one after the other on one client: the buffers each session's STREAM_DESTROY cancels (the
 * output buffers still queued after EOS) are consumed by that destroy, not met by the next session. The
 * first three reuse stream id 1, with a resolution change each (64x48, then 32x16, then 64x48 again). */
static void test_decode_sessions_back_to_back(void **state) {
        Env *env = *state;
        const uint32_t wa[] = { 64, 64, 64 }, ha[] = { 48, 48, 48 }, wb[] = { 32, 32 }, hb[] = { 16, 16 };
        const uint32_t ids[] = { 1, 1, 1, 5 };

        for (unsigned k = 0; k < ELEMENTSOF(ids); k++) {
                const uint32_t *w = k % 2 ? wb : wa, *h = k % 2 ? hb : ha;
                unsigned n = k % 2 ? 2 : 3;
                NullStream s = {};
                Expect x = { .s = &s, .w = w, .h = h };
                VcDecodeResult res;
                VcDecodeOptions o = {
                        .stream_id = ids[k],
                        .frame = check_frame,
                        .userdata = &x,
                        .n_output_buffers = 4,
                };

                build_stream(&s, n, w, h);
                o.bitstream = s.data;
                o.size = s.size;
                assert_int_equal(video_client_decode(env->c, &o, &res), 0);
                assert_int_equal(res.frames, n);
                assert_int_equal(x.next, n);
                assert_int_equal(res.resolution_changes, 1);
                assert_int_equal(res.error_completions, 0);
                assert_int_equal(res.drain_resp_type, VIRTIO_VIDEO_RESP_OK_NODATA);
                /* Nothing of the destroyed stream is left for anyone. */
                assert_int_equal(video_client_poll(env->c), 0);
                {
                        VcCompletion v;
                        VcEvent e;
                        assert_int_equal(video_client_pop_completion(env->c, &v), 0);
                        assert_int_equal(video_client_pop_event(env->c, &e), 0);
                }
                null_stream_done(&s);
        }
}

static void test_decode_after_errors(void **state) {
        test_err_invalid_parameter(state);
        test_err_invalid_resource_id(state);
        test_decode_session_driver_order(state);
}

/* ---- encoder (the null backend's "null-encoder" flavour) ------------------------------------------- */

static int setup_encoder(void **state) {
        Env *env = NULL;

        assert_int_equal(env_open(&env, "null-encoder"), 0);
        *state = env;
        return 0;
}

typedef struct Packets {
        uint32_t w, h;
        unsigned n;
        uint64_t timestamps[8];
} Packets;

static int
check_packet(void *userdata, const uint8_t *data, size_t size, uint64_t timestamp, uint32_t flags) {
        Packets *x = userdata;
        size_t payload = (size_t) x->w * x->h * 3 / 2;
        _cleanup_free_ uint8_t *pic = malloc(payload);

        /* One null frame per picture (null-codec.md): header, then the I420 picture unchanged. */
        if (!pic || x->n >= ELEMENTSOF(x->timestamps) || size != NULL_FRAME_HEADER_SIZE + payload)
                return -EBADMSG;
        if (memcmp(data, "VVNF", 4) != 0 || (data[4] | data[5] << 8) != (int) x->w ||
            (data[6] | data[7] << 8) != (int) x->h)
                return -EBADMSG;
        null_picture(x->w, x->h, x->n + 1, pic);
        if (memcmp(data + NULL_FRAME_HEADER_SIZE, pic, payload) != 0)
                return -EBADMSG;
        if (!(flags & VIRTIO_VIDEO_BUFFER_FLAG_IFRAME))
                return -EBADMSG;
        x->timestamps[x->n++] = timestamp;
        return 0;
}

static bool has_format(Env *env, uint32_t qt, uint32_t format) {
        const VcCaps *caps = video_client_get_caps(env->c, qt);
        for (unsigned i = 0; i < caps->n_formats; i++)
                if (caps->formats[i].format == format)
                        return true;
        return false;
}

static void test_encoder_session_with_controls(void **state) {
        Env *env = *state;
        uint8_t *pics[3];
        size_t size = 32 * 16 * 3 / 2;
        Packets x = { .w = 32, .h = 16 };
        VcEncodeResult res;
        VcEncodeOptions o = {
                .stream_id = 1,
                .raw_format = 4, /* YUV420 */
                .width = 32,
                .height = 16,
                .frame_rate = 30,
                .frame_size = size,
                .n_frames = 3,
                .bitrate = 500000,
                .packet = check_packet,
                .userdata = &x,
        };

        assert_true(video_client_is_encoder(env->c));
        assert_int_equal(video_device_virtio_id(env->device), VIDEO_DEVICE_ID_ENCODER);
        assert_true(has_format(env, QT_IN, 4));
        assert_int_equal(first_format(env, QT_OUT), 0x1006);
        for (unsigned i = 0; i < 3; i++) {
                pics[i] = malloc(size);
                assert_non_null(pics[i]);
                null_picture(32, 16, i + 1, pics[i]);
        }
        o.frames = (const uint8_t *const *) pics;
        assert_int_equal(video_client_encode(env->c, &o, &res), 0);
        assert_int_equal(res.packets, 3);
        assert_int_equal(res.keyframes, 3);
        assert_int_equal(x.n, 3);
        for (unsigned i = 0; i < 3; i++) {
                assert_int_equal(x.timestamps[i], (uint64_t) (i + 1) * 1000);
                free(pics[i]);
        }
}

/* Encoder sessions one after the other on one client, reusing the stream id: the output buffers still
 * queued after EOS are cancelled by each STREAM_DESTROY and must not reach the next session. */
static void test_encoder_sessions_back_to_back(void **state) {
        Env *env = *state;
        size_t size = 32 * 16 * 3 / 2;
        uint8_t *pics[2];

        for (unsigned i = 0; i < 2; i++) {
                pics[i] = malloc(size);
                assert_non_null(pics[i]);
                null_picture(32, 16, i + 1, pics[i]);
        }
        for (unsigned k = 0; k < 3; k++) {
                Packets x = { .w = 32, .h = 16 };
                VcEncodeResult res;
                VcEncodeOptions o = {
                        .stream_id = 3,
                        .raw_format = 4, /* YUV420 */
                        .width = 32,
                        .height = 16,
                        .frames = (const uint8_t *const *) pics,
                        .frame_size = size,
                        .n_frames = 2,
                        .n_output_buffers = 4,
                        .packet = check_packet,
                        .userdata = &x,
                };

                assert_int_equal(video_client_encode(env->c, &o, &res), 0);
                assert_int_equal(res.packets, 2);
                assert_int_equal(x.n, 2);
        }
        for (unsigned i = 0; i < 2; i++)
                free(pics[i]);
}

static void test_encoder_controls(void **state) {
        Env *env = *state;
        uint32_t v = 0, values[4];
        unsigned n = 0;

        assert_int_equal(video_client_stream_create(env->c, 2, first_format(env, QT_OUT), "ctl"), 0);
        assert_int_equal(video_client_get_control(env->c, 2, VIRTIO_VIDEO_CONTROL_BITRATE, &v), 0);
        assert_true(v > 0);
        assert_int_equal(video_client_set_control(env->c, 2, VIRTIO_VIDEO_CONTROL_BITRATE, 750000), 0);
        assert_int_equal(video_client_get_control(env->c, 2, VIRTIO_VIDEO_CONTROL_BITRATE, &v), 0);
        assert_int_equal(v, 750000);
        assert_int_equal(video_client_set_control(env->c, 2, VIRTIO_VIDEO_CONTROL_BITRATE_MODE,
                                                  VIRTIO_VIDEO_BITRATE_MODE_CBR),
                         0);
        assert_int_equal(video_client_get_control(env->c, 2, VIRTIO_VIDEO_CONTROL_BITRATE_MODE, &v), 0);
        assert_int_equal(v, VIRTIO_VIDEO_BITRATE_MODE_CBR);
        assert_int_equal(video_client_set_control(env->c, 2, VIRTIO_VIDEO_CONTROL_BITRATE_MODE, 7),
                         VIRTIO_VIDEO_RESP_ERR_INVALID_PARAMETER);
        /* FORCE_KEYFRAME goes without a value (16 bytes) and is a button: not readable (§4.12). */
        assert_int_equal(video_client_set_control(env->c, 2, VIRTIO_VIDEO_CONTROL_FORCE_KEYFRAME, 0), 0);
        assert_int_not_equal(video_client_get_control(env->c, 2, VIRTIO_VIDEO_CONTROL_FORCE_KEYFRAME, &v),
                             0);
        /* No profiles or levels exist for the FWHT-tagged null format (§5.8). */
        assert_int_equal(video_client_get_control(env->c, 2, VIRTIO_VIDEO_CONTROL_PROFILE, &v),
                         VIRTIO_VIDEO_RESP_ERR_UNSUPPORTED_CONTROL);
        assert_int_equal(video_client_query_control(env->c, VIRTIO_VIDEO_CONTROL_PROFILE,
                                                    first_format(env, QT_OUT), values, ELEMENTSOF(values),
                                                    &n),
                         VIRTIO_VIDEO_RESP_ERR_UNSUPPORTED_CONTROL);
        assert_int_equal(video_client_set_control(env->c, 99, VIRTIO_VIDEO_CONTROL_BITRATE, 1),
                         VIRTIO_VIDEO_RESP_ERR_INVALID_STREAM_ID);
        assert_int_equal(video_client_stream_destroy(env->c, 2), 0);
}

/* A decoder has no encoder controls: SET_CONTROL is refused. */
static void test_decoder_refuses_set_control(void **state) {
        Env *env = *state;
        int r;

        assert_int_equal(video_client_stream_create(env->c, 3, first_format(env, QT_IN), "dec"), 0);
        r = video_client_set_control(env->c, 3, VIRTIO_VIDEO_CONTROL_BITRATE, 1000);
        assert_true(r == VIRTIO_VIDEO_RESP_ERR_UNSUPPORTED_CONTROL ||
                    r == VIRTIO_VIDEO_RESP_ERR_INVALID_OPERATION);
        assert_int_equal(video_client_stream_destroy(env->c, 3), 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_probe_config_and_capabilities, setup, teardown),
                cmocka_unit_test_setup_teardown(test_decode_session_driver_order, setup, teardown),
                cmocka_unit_test_setup_teardown(test_decode_any_chunking_and_scatter_gather, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_decode_legacy_params_dialect, setup, teardown),
                cmocka_unit_test_setup_teardown(test_resolution_change_mid_stream, setup, teardown),
                cmocka_unit_test_setup_teardown(test_drain_returns_frames_then_empty_eos, setup, teardown),
                cmocka_unit_test_setup_teardown(test_drain_without_input_gives_eos, setup, teardown),
                cmocka_unit_test_setup_teardown(test_queue_clear_mid_stream, setup, teardown),
                cmocka_unit_test_setup_teardown(test_stream_destroy_with_buffers_queued, setup, teardown),
                cmocka_unit_test_setup_teardown(test_destroy_all_with_buffers_queued, setup, teardown),
                cmocka_unit_test_setup_teardown(test_two_streams_at_once, setup, teardown),
                cmocka_unit_test_setup_teardown(test_params_both_dialects, setup, teardown),
                cmocka_unit_test_setup_teardown(test_err_invalid_operation, setup, teardown),
                cmocka_unit_test_setup_teardown(test_err_out_of_memory, setup, teardown),
                cmocka_unit_test_setup_teardown(test_err_invalid_stream_id, setup, teardown),
                cmocka_unit_test_setup_teardown(test_err_invalid_resource_id, setup, teardown),
                cmocka_unit_test_setup_teardown(test_err_invalid_parameter, setup, teardown),
                cmocka_unit_test_setup_teardown(test_err_queue_twice, setup, teardown),
                cmocka_unit_test_setup_teardown(test_err_unsupported_control, setup, teardown),
                cmocka_unit_test_setup_teardown(test_decode_after_errors, setup, teardown),
                cmocka_unit_test_setup_teardown(test_decode_sessions_back_to_back, setup, teardown),
                cmocka_unit_test_setup_teardown(test_decoder_refuses_set_control, setup, teardown),
                cmocka_unit_test_setup_teardown(test_encoder_session_with_controls, setup_encoder, teardown),
                cmocka_unit_test_setup_teardown(test_encoder_controls, setup_encoder, teardown),
                cmocka_unit_test_setup_teardown(test_encoder_sessions_back_to_back, setup_encoder, teardown),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
