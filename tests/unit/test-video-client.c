/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The video client (service/frontend/video-client.c) against a misbehaving device: a fake virtio-video
 * device on the real vhost transport that answers with crafted replies. Every count, length and order
 * the device gets wrong must come back as an error, never as a crash or a read beyond the reply.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <systemd/sd-event.h>

#include "common/iov.h"
#include "common/macro.h"
#include "frontend/frontend.h"
#include "frontend/video-client.h"
#include "vhost/vhost.h"
#include "video/virtio-video-proto.h"

#define MAX_HELD 32

typedef struct Fake {
        sd_event *event;
        VhostDev *vhost;
        VuFrontend *fe;
        VideoClient *c;
        struct virtio_video_config cfg;
        uint8_t caps[2][1024];
        size_t caps_len[2];
        /* Reply to this command type with these bytes instead of the default. */
        uint32_t override_type;
        uint8_t override[512];
        size_t override_len;
        /* Never answer this command type. */
        uint32_t drop_type;
        /* Hold RESOURCE_QUEUEs; QUEUE_CLEAR completes them with ERR before (true) or after its reply. */
        bool clear_in_order;
        VhostElem *held[MAX_HELD];
        unsigned n_held;
        VhostElem *events[64];
        unsigned n_events;
        /* A scripted decoder (script_handle()) instead of the replies above. */
        bool script;
        uint32_t width, height;
        unsigned inputs;
        bool cleared;
        VhostElem *outs[MAX_HELD]; /* output buffers queued, oldest first */
        unsigned n_outs;
        VhostElem *drain;
        uint32_t drain_reply; /* answer STREAM_DRAIN at once with this type (0: see script_handle()) */
        unsigned destroys;
} Fake;

static void reply(Fake *f, VhostElem *e, const void *buf, size_t len) {
        size_t n = buf_to_iov(e->wr, e->n_wr, 0, buf, MIN(len, e->wr_len));
        unsigned queue = e->queue;

        vhost_dev_push(f->vhost, e, (uint32_t) n); /* frees e */
        vhost_dev_notify(f->vhost, queue);
}

static void reply_type(Fake *f, VhostElem *e, uint32_t type) {
        struct virtio_video_cmd_hdr h = { cpu_to_le32(type), cpu_to_le32(0) };
        reply(f, e, &h, sizeof(h));
}

static void complete_held(Fake *f) {
        for (unsigned i = 0; i < f->n_held; i++) {
                struct virtio_video_resource_queue_resp r = {
                        .hdr = { cpu_to_le32(VIRTIO_VIDEO_RESP_OK_RESOURCE_QUEUE), cpu_to_le32(0) },
                        .flags = cpu_to_le32(VIRTIO_VIDEO_BUFFER_FLAG_ERR),
                };
                reply(f, f->held[i], &r, sizeof(r));
        }
        f->n_held = 0;
}

static void raise_event(Fake *f, uint32_t type, uint32_t stream_id) {
        struct virtio_video_event ev = { cpu_to_le32(type), cpu_to_le32(stream_id) };

        assert_true(f->n_events > 0);
        reply(f, f->events[--f->n_events], &ev, sizeof(ev));
}

static void complete_buffer(Fake *f, VhostElem *e, uint32_t flags, uint64_t timestamp) {
        struct virtio_video_resource_queue_resp r = {
                .hdr = { cpu_to_le32(VIRTIO_VIDEO_RESP_OK_RESOURCE_QUEUE), cpu_to_le32(0) },
                .timestamp = cpu_to_le64(timestamp),
                .flags = cpu_to_le32(flags),
        };
        reply(f, e, &r, sizeof(r));
}

/* Completes the oldest n queued output buffers with these flags. */
static void complete_outs(Fake *f, unsigned n, uint32_t flags, uint64_t timestamp) {
        assert_true(n <= f->n_outs);
        for (unsigned i = 0; i < n; i++)
                complete_buffer(f, f->outs[i], flags, timestamp);
        memmove(f->outs, f->outs + n, (f->n_outs - n) * sizeof(f->outs[0]));
        f->n_outs -= n;
}

/* A decoder that raises DECODER_RESOLUTION_CHANGED *before* it completes the last picture of the old size
 * (events and completions travel on different queues, with no order between them, §7.3): the first input
 * buffer gives the first geometry (32x32); the second one changes it to 64x48 at once, and the 32x32
 * picture it still had comes back when the driver clears the output queue, as a frame before the
 * cancelled buffers and the clear's reply (§7.7c). The drain is answered once two output buffers of the
 * new size are queued: one 64x48 frame, then the EOS buffer. */
static void script_handle(Fake *f, VhostElem *e, const uint8_t *req, uint32_t type) {
        uint32_t qt, stream_id;
        le32 v;

        memcpy(&v, req + 4, sizeof(v));
        stream_id = le32_to_cpu(v);
        memcpy(&v, req + 8, sizeof(v));
        qt = le32_to_cpu(v);
        switch (type) {
        case VIRTIO_VIDEO_CMD_GET_PARAMS_EXT: {
                bool out = qt == VIRTIO_VIDEO_QUEUE_TYPE_OUTPUT;
                uint32_t size = out ? f->width * f->height * 3 / 2 : 4096;
                struct virtio_video_get_params_ext_resp r = {
                        .hdr = { cpu_to_le32(VIRTIO_VIDEO_RESP_OK_GET_PARAMS), cpu_to_le32(stream_id) },
                        .params.base = {
                                .queue_type = cpu_to_le32(qt),
                                .format = cpu_to_le32(out ? 3 : 0x1002),
                                .frame_width = cpu_to_le32(f->width),
                                .frame_height = cpu_to_le32(f->height),
                                .min_buffers = cpu_to_le32(1),
                                .max_buffers = cpu_to_le32(32),
                                .crop = { .width = cpu_to_le32(f->width), .height = cpu_to_le32(f->height) },
                                .num_planes = cpu_to_le32(1),
                                .plane_formats = { [0] = { .plane_size = cpu_to_le32(size),
                                                           .stride = cpu_to_le32(out ? f->width : 0) } },
                        },
                        .params.resource_type = cpu_to_le32(VIRTIO_VIDEO_MEM_TYPE_GUEST_PAGES),
                };
                reply(f, e, &r, sizeof(r));
                return;
        }
        case VIRTIO_VIDEO_CMD_RESOURCE_QUEUE:
                if (qt == VIRTIO_VIDEO_QUEUE_TYPE_OUTPUT) {
                        assert_true(f->n_outs < MAX_HELD);
                        f->outs[f->n_outs++] = e;
                        if (f->drain && f->cleared && f->n_outs >= 2) {
                                complete_outs(f, 1, 0, 2000);
                                complete_outs(f, 1, VIRTIO_VIDEO_BUFFER_FLAG_EOS, 0);
                                reply_type(f, f->drain, VIRTIO_VIDEO_RESP_OK_NODATA);
                                f->drain = NULL;
                        }
                        return;
                }
                f->inputs++;
                complete_buffer(f, e, 0, f->inputs * 1000);
                if (f->inputs == 1) {
                        f->width = f->height = 32;
                        raise_event(f, VIRTIO_VIDEO_EVENT_DECODER_RESOLUTION_CHANGED, stream_id);
                } else if (f->inputs == 2) {
                        /* The new size is known before the old picture is handed out. */
                        f->width = 64;
                        f->height = 48;
                        raise_event(f, VIRTIO_VIDEO_EVENT_DECODER_RESOLUTION_CHANGED, stream_id);
                }
                return;
        case VIRTIO_VIDEO_CMD_QUEUE_CLEAR:
                if (qt == VIRTIO_VIDEO_QUEUE_TYPE_OUTPUT && f->inputs == 2 && !f->cleared && f->n_outs > 0) {
                        f->cleared = true;
                        complete_outs(f, 1, 0, 1000); /* the last 32x32 picture */
                }
                complete_outs(f, f->n_outs, VIRTIO_VIDEO_BUFFER_FLAG_ERR, 0);
                reply_type(f, e, VIRTIO_VIDEO_RESP_OK_NODATA);
                return;
        case VIRTIO_VIDEO_CMD_STREAM_DRAIN:
                if (f->drain_reply)
                        reply_type(f, e, f->drain_reply);
                else
                        f->drain = e;
                return;
        case VIRTIO_VIDEO_CMD_STREAM_DESTROY:
                f->destroys++;
                complete_outs(f, f->n_outs, VIRTIO_VIDEO_BUFFER_FLAG_ERR, 0);
                reply_type(f, e, VIRTIO_VIDEO_RESP_OK_NODATA);
                return;
        default:
                reply_type(f, e, VIRTIO_VIDEO_RESP_OK_NODATA);
        }
}

static void fake_handle_elem(void *userdata, VhostElem *e) {
        Fake *f = userdata;
        uint8_t req[256] = {};
        uint32_t type;
        le32 v;

        if (e->queue == VIRTIO_VIDEO_QUEUE_EVENT) {
                assert_true(f->n_events < ELEMENTSOF(f->events));
                f->events[f->n_events++] = e;
                return;
        }
        iov_to_buf(e->rd, e->n_rd, 0, req, sizeof(req));
        memcpy(&v, req, sizeof(v));
        type = le32_to_cpu(v);
        if (f->script) {
                script_handle(f, e, req, type);
                return;
        }
        if (type == f->drop_type || (type == VIRTIO_VIDEO_CMD_RESOURCE_QUEUE && f->n_held < MAX_HELD)) {
                assert_true(f->n_held < MAX_HELD);
                f->held[f->n_held++] = e;
                return;
        }
        if (type == f->override_type) {
                reply(f, e, f->override, f->override_len);
                return;
        }
        switch (type) {
        case VIRTIO_VIDEO_CMD_QUERY_CAPABILITY:
                memcpy(&v, req + 8, sizeof(v));
                if (le32_to_cpu(v) == VIRTIO_VIDEO_QUEUE_TYPE_INPUT ||
                    le32_to_cpu(v) == VIRTIO_VIDEO_QUEUE_TYPE_OUTPUT) {
                        unsigned q = le32_to_cpu(v) - VIRTIO_VIDEO_QUEUE_TYPE_INPUT;
                        reply(f, e, f->caps[q], f->caps_len[q]);
                } else
                        reply_type(f, e, VIRTIO_VIDEO_RESP_ERR_INVALID_PARAMETER);
                return;
        case VIRTIO_VIDEO_CMD_QUEUE_CLEAR:
                if (f->clear_in_order)
                        complete_held(f);
                reply_type(f, e, VIRTIO_VIDEO_RESP_OK_NODATA);
                complete_held(f);
                return;
        default:
                reply_type(f, e, VIRTIO_VIDEO_RESP_OK_NODATA);
        }
}

static int fake_get_config(void *userdata, uint32_t offset, void *buf, uint32_t size) {
        Fake *f = userdata;
        memcpy(buf, (uint8_t *) &f->cfg + offset, size);
        return 0;
}

static void fake_reset(void *userdata) {
        Fake *f = userdata;

        for (unsigned i = 0; i < f->n_held; i++)
                vhost_elem_free(f->held[i]);
        for (unsigned i = 0; i < f->n_events; i++)
                vhost_elem_free(f->events[i]);
        for (unsigned i = 0; i < f->n_outs; i++)
                vhost_elem_free(f->outs[i]);
        if (f->drain)
                vhost_elem_free(f->drain);
        f->drain = NULL;
        f->n_held = f->n_events = f->n_outs = 0;
}

static const VhostDeviceOps fake_ops = {
        .handle_elem = fake_handle_elem,
        .get_config = fake_get_config,
        .reset = fake_reset,
};

/* A valid capability reply: one format, one frame size with n_rates rates. */
static size_t build_caps(uint8_t *buf, uint32_t format, uint32_t n_rates) {
        struct virtio_video_query_capability_resp h = {
                .hdr = { cpu_to_le32(VIRTIO_VIDEO_RESP_OK_QUERY_CAPABILITY), cpu_to_le32(0) },
                .num_descs = cpu_to_le32(1),
        };
        struct virtio_video_format_desc d = {
                .mask = cpu_to_le64(1),
                .format = cpu_to_le32(format),
                .planes_layout = cpu_to_le32(1),
                .num_frames = cpu_to_le32(1),
        };
        struct virtio_video_format_frame fr = {
                .width = { cpu_to_le32(16), cpu_to_le32(4096), cpu_to_le32(2) },
                .height = { cpu_to_le32(16), cpu_to_le32(2160), cpu_to_le32(2) },
                .num_rates = cpu_to_le32(n_rates),
        };
        size_t off = 0;

        memcpy(buf + off, &h, sizeof(h));
        off += sizeof(h);
        memcpy(buf + off, &d, sizeof(d));
        off += sizeof(d);
        memcpy(buf + off, &fr, sizeof(fr));
        off += sizeof(fr);
        for (uint32_t i = 0; i < n_rates; i++) {
                struct virtio_video_format_range r = { cpu_to_le32(i + 1), cpu_to_le32(i + 1),
                                                       cpu_to_le32(0) };
                memcpy(buf + off, &r, sizeof(r));
                off += sizeof(r);
        }
        return off;
}

static int pump(void *userdata) {
        return sd_event_run(userdata, 0);
}

static int setup(void **state) {
        VhostDevConfig vc = {
                .num_queues = 2,
                .max_queue_size = 1024,
                .device_features = 1u << VIRTIO_VIDEO_F_RESOURCE_GUEST_PAGES,
                .config_size = sizeof(struct virtio_video_config),
        };
        VuFrontendOptions fo;
        VideoClientOptions co;
        Fake *f = calloc(1, sizeof(*f));
        int fds[2];

        assert_non_null(f);
        f->cfg.max_caps_length = cpu_to_le32(1024);
        f->cfg.max_resp_length = cpu_to_le32(1024);
        f->caps_len[0] = build_caps(f->caps[0], 0x1002, 1);
        f->caps_len[1] = build_caps(f->caps[1], 3, 1);
        assert_int_equal(sd_event_new(&f->event), 0);
        assert_int_equal(vhost_dev_new(f->event, &vc, &fake_ops, f, &f->vhost), 0);
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
        assert_int_equal(vhost_dev_serve_fd(f->vhost, fds[0]), 0);
        vu_frontend_options_init(&fo);
        fo.pump = pump;
        fo.pump_userdata = f->event;
        fo.config_size = sizeof(struct virtio_video_config);
        fo.device_features = 1u << VIRTIO_VIDEO_F_RESOURCE_GUEST_PAGES;
        assert_int_equal(vu_frontend_new_from_fd(&fo, fds[1], &f->fe), 0);
        assert_int_equal(vu_frontend_start(f->fe), 0);
        video_client_options_init(&co);
        co.pump = pump;
        co.pump_userdata = f->event;
        co.timeout_ms = 2000;
        assert_int_equal(video_client_new(f->fe, &co, &f->c), 0);
        *state = f;
        return 0;
}

static int teardown(void **state) {
        Fake *f = *state;

        video_client_free(f->c);
        vu_frontend_free(f->fe);
        for (int i = 0; i < 100 && sd_event_run(f->event, 0) > 0; i++)
                ;
        fake_reset(f);
        vhost_dev_free(f->vhost);
        sd_event_unref(f->event);
        free(f);
        return 0;
}

static void set_override(Fake *f, uint32_t type, const void *buf, size_t len) {
        f->override_type = type;
        memcpy(f->override, buf, len);
        f->override_len = len;
}

/* ---- probe ---------------------------------------------------------------------------------------- */

static void test_probe_parses_valid_caps(void **state) {
        Fake *f = *state;
        const VcCaps *in;

        f->caps_len[0] = build_caps(f->caps[0], 0x1002, VC_MAX_RATES + 3); /* more rates than we keep */
        assert_int_equal(video_client_probe(f->c), 0);
        in = video_client_get_caps(f->c, VIRTIO_VIDEO_QUEUE_TYPE_INPUT);
        assert_int_equal(in->n_formats, 1);
        assert_int_equal(in->formats[0].format, 0x1002);
        assert_int_equal(in->formats[0].mask, 1);
        assert_int_equal(in->formats[0].n_frames, 1);
        assert_int_equal(in->formats[0].frames[0].width.max, 4096);
        assert_int_equal(in->formats[0].frames[0].height.max, 2160);
        assert_int_equal(in->formats[0].frames[0].n_rates, VC_MAX_RATES);
        assert_int_equal(in->formats[0].frames[0].rates[2].min, 3);
        assert_false(video_client_is_encoder(f->c));
        assert_int_equal(video_client_get_config(f->c)->max_caps_length, 1024);
        assert_int_equal(video_client_get_config(f->c)->size, 44);
}

static void test_probe_rejects_zero_limits(void **state) {
        Fake *f = *state;

        f->cfg.max_caps_length = cpu_to_le32(0);
        assert_int_equal(video_client_probe(f->c), -EBADMSG);
}

static void test_probe_rejects_absurd_caps_length(void **state) {
        Fake *f = *state;

        f->cfg.max_caps_length = cpu_to_le32(UINT32_MAX);
        assert_int_equal(video_client_probe(f->c), -EBADMSG);
}

static void test_caps_counts_beyond_payload(void **state) {
        Fake *f = *state;
        struct virtio_video_query_capability_resp h;

        /* num_descs says 2, only one is there. */
        memcpy(&h, f->caps[0], sizeof(h));
        h.num_descs = cpu_to_le32(2);
        memcpy(f->caps[0], &h, sizeof(h));
        assert_int_equal(video_client_probe(f->c), -EBADMSG);
}

static void test_caps_huge_num_frames(void **state) {
        Fake *f = *state;
        struct virtio_video_format_desc d;

        memcpy(&d, f->caps[0] + 16, sizeof(d));
        d.num_frames = cpu_to_le32(UINT32_MAX);
        memcpy(f->caps[0] + 16, &d, sizeof(d));
        assert_int_equal(video_client_probe(f->c), -EBADMSG);
}

static void test_caps_huge_num_rates(void **state) {
        Fake *f = *state;
        struct virtio_video_format_frame fr;

        memcpy(&fr, f->caps[1] + 40, sizeof(fr));
        fr.num_rates = cpu_to_le32(0x10000000);
        memcpy(f->caps[1] + 40, &fr, sizeof(fr));
        assert_int_equal(video_client_probe(f->c), -EBADMSG);
}

static void test_caps_zero_descs_and_trailing_bytes(void **state) {
        Fake *f = *state;
        struct virtio_video_query_capability_resp h;

        /* Trailing bytes after the last descriptor: counts do not match the payload (§4.1). */
        f->caps_len[1] += 16;
        assert_int_equal(video_client_probe(f->c), -EBADMSG);
        teardown(state);
        setup(state);
        f = *state;
        /* The driver requires at least one descriptor per queue. */
        memcpy(&h, f->caps[1], sizeof(h));
        h.num_descs = cpu_to_le32(0);
        memcpy(f->caps[1], &h, sizeof(h));
        f->caps_len[1] = sizeof(h);
        assert_int_equal(video_client_probe(f->c), -EBADMSG);
}

static void test_caps_error_reply(void **state) {
        Fake *f = *state;
        struct virtio_video_cmd_hdr h = { cpu_to_le32(VIRTIO_VIDEO_RESP_ERR_OUT_OF_MEMORY), cpu_to_le32(0) };

        memcpy(f->caps[0], &h, sizeof(h));
        f->caps_len[0] = sizeof(h);
        assert_int_equal(video_client_probe(f->c), VIRTIO_VIDEO_RESP_ERR_OUT_OF_MEMORY);
}

/* ---- replies ------------------------------------------------------------------------------------------ */

static void test_get_params_checks(void **state) {
        Fake *f = *state;
        struct virtio_video_get_params_ext_resp r = {
                .hdr = { cpu_to_le32(VIRTIO_VIDEO_RESP_OK_GET_PARAMS), cpu_to_le32(1) },
                .params.base = { .queue_type = cpu_to_le32(VIRTIO_VIDEO_QUEUE_TYPE_OUTPUT),
                                 .format = cpu_to_le32(3),
                                 .num_planes = cpu_to_le32(2) },
        };
        VcParams p;

        assert_int_equal(video_client_probe(f->c), 0);
        set_override(f, VIRTIO_VIDEO_CMD_GET_PARAMS_EXT, &r, sizeof(r));
        assert_int_equal(video_client_get_params(f->c, 1, VIRTIO_VIDEO_QUEUE_TYPE_OUTPUT, true, &p), 0);
        assert_int_equal(p.format, 3);
        assert_int_equal(p.num_planes, 2);
        /* The echoed queue must be the one asked for (ambiguity 10.20). */
        assert_int_equal(video_client_get_params(f->c, 1, VIRTIO_VIDEO_QUEUE_TYPE_INPUT, true, &p),
                         -EBADMSG);
        /* More planes than the wire allows. */
        r.params.base.num_planes = cpu_to_le32(9);
        set_override(f, VIRTIO_VIDEO_CMD_GET_PARAMS_EXT, &r, sizeof(r));
        assert_int_equal(video_client_get_params(f->c, 1, VIRTIO_VIDEO_QUEUE_TYPE_OUTPUT, true, &p),
                         -EBADMSG);
        /* An OK type with a short body. */
        r.params.base.num_planes = cpu_to_le32(1);
        set_override(f, VIRTIO_VIDEO_CMD_GET_PARAMS_EXT, &r, 64);
        assert_int_equal(video_client_get_params(f->c, 1, VIRTIO_VIDEO_QUEUE_TYPE_OUTPUT, true, &p),
                         -EBADMSG);
        /* A legacy reply (120 bytes) to the _EXT command is not what was asked. */
        set_override(f, VIRTIO_VIDEO_CMD_GET_PARAMS_EXT, &r, 120);
        assert_int_equal(video_client_get_params(f->c, 1, VIRTIO_VIDEO_QUEUE_TYPE_OUTPUT, true, &p),
                         -EBADMSG);
        /* An error header is the device's answer, passed on as its type. */
        r.hdr.type = cpu_to_le32(VIRTIO_VIDEO_RESP_ERR_INVALID_STREAM_ID);
        set_override(f, VIRTIO_VIDEO_CMD_GET_PARAMS_EXT, &r, 8);
        assert_int_equal(video_client_get_params(f->c, 1, VIRTIO_VIDEO_QUEUE_TYPE_OUTPUT, true, &p),
                         VIRTIO_VIDEO_RESP_ERR_INVALID_STREAM_ID);
        /* Fewer than 8 bytes: not even a header. */
        set_override(f, VIRTIO_VIDEO_CMD_GET_PARAMS_EXT, &r, 4);
        assert_int_equal(video_client_get_params(f->c, 1, VIRTIO_VIDEO_QUEUE_TYPE_OUTPUT, true, &p),
                         -EBADMSG);
}

static void test_query_control_count_checked(void **state) {
        Fake *f = *state;
        uint8_t buf[16 + 8] = {};
        struct virtio_video_query_control_resp h = {
                .hdr = { cpu_to_le32(VIRTIO_VIDEO_RESP_OK_QUERY_CONTROL), cpu_to_le32(0) },
                .num = cpu_to_le32(2),
        };
        le32 vals[2] = { cpu_to_le32(0x100), cpu_to_le32(0x101) };
        uint32_t out[1];
        unsigned n;

        assert_int_equal(video_client_probe(f->c), 0);
        memcpy(buf, &h, sizeof(h));
        memcpy(buf + sizeof(h), vals, sizeof(vals));
        set_override(f, VIRTIO_VIDEO_CMD_QUERY_CONTROL, buf, sizeof(buf));
        /* Only as many values as the caller has room for are written. */
        assert_int_equal(video_client_query_control(f->c, 2, 0x1002, out, 1, &n), 0);
        assert_int_equal(n, 2);
        assert_int_equal(out[0], 0x100);
        h.num = cpu_to_le32(1000000);
        memcpy(buf, &h, sizeof(h));
        set_override(f, VIRTIO_VIDEO_CMD_QUERY_CONTROL, buf, sizeof(buf));
        assert_int_equal(video_client_query_control(f->c, 2, 0x1002, out, 1, &n), -EBADMSG);
}

/* §7.7c: the clear's reply may not overtake the buffers it cancels. */
static void test_clear_reply_before_cancelled_buffers_is_eproto(void **state) {
        Fake *f = *state;
        uint32_t size = 4096;
        VcCompletion v;

        assert_int_equal(video_client_probe(f->c), 0);
        assert_int_equal(video_client_resource_create(f->c, 1, VIRTIO_VIDEO_QUEUE_TYPE_INPUT, 5, 1, &size,
                                                      1),
                         0);
        assert_int_equal(video_client_resource_queue(f->c, 1, VIRTIO_VIDEO_QUEUE_TYPE_INPUT, 5, 0, 1, &size),
                         0);
        f->clear_in_order = true;
        assert_int_equal(video_client_queue_clear(f->c, 1, VIRTIO_VIDEO_QUEUE_TYPE_INPUT), 0);
        assert_int_equal(video_client_next_completion(f->c, &v, false), 1);
        assert_true(v.flags & VIRTIO_VIDEO_BUFFER_FLAG_ERR);

        assert_int_equal(video_client_resource_queue(f->c, 1, VIRTIO_VIDEO_QUEUE_TYPE_INPUT, 5, 0, 1, &size),
                         0);
        f->clear_in_order = false;
        assert_int_equal(video_client_queue_clear(f->c, 1, VIRTIO_VIDEO_QUEUE_TYPE_INPUT), -EPROTO);
        /* The late completion is still collected. */
        assert_int_equal(video_client_next_completion(f->c, &v, true), 1);
        assert_int_equal(v.resource_id, 5);
}

/* A STREAM_DESTROY reply consumes its stream: completions that overtook it still belong to it (-EPROTO
 * for the destroy, the device broke §7.7c, but nobody meets them later), and the stream's events that
 * come after the reply (the eventq has no order with the commandq) are dropped until the id is created
 * again. */
static void test_destroy_consumes_late_completions_and_events(void **state) {
        Fake *f = *state;
        uint32_t size = 4096;
        VcCompletion v;
        VcEvent e;

        assert_int_equal(video_client_probe(f->c), 0);
        assert_int_equal(video_client_resource_create(f->c, 1, VIRTIO_VIDEO_QUEUE_TYPE_INPUT, 5, 1, &size,
                                                      1),
                         0);
        assert_int_equal(video_client_resource_queue(f->c, 1, VIRTIO_VIDEO_QUEUE_TYPE_INPUT, 5, 0, 1, &size),
                         0);
        assert_int_equal(video_client_resource_create(f->c, 2, VIRTIO_VIDEO_QUEUE_TYPE_INPUT, 6, 1, &size,
                                                      1),
                         0);
        assert_int_equal(video_client_resource_queue(f->c, 2, VIRTIO_VIDEO_QUEUE_TYPE_INPUT, 6, 0, 1, &size),
                         0);
        for (int i = 0; i < 10 && f->n_held < 2 && sd_event_run(f->event, 0) >= 0; i++)
                ;
        assert_int_equal(f->n_held, 2);
        /* The reply overtakes both held buffers; only stream 1's are the destroy's. */
        assert_int_equal(video_client_stream_destroy(f->c, 1), -EPROTO);
        complete_held(f);
        raise_event(f, VIRTIO_VIDEO_EVENT_ERROR, 1);
        raise_event(f, VIRTIO_VIDEO_EVENT_ERROR, 2);
        assert_int_equal(video_client_next_completion(f->c, &v, true), 1);
        assert_int_equal(v.stream_id, 2);
        assert_int_equal(v.resource_id, 6);
        assert_int_equal(video_client_next_event(f->c, &e, true), 1);
        assert_int_equal(e.stream_id, 2);
        assert_int_equal(video_client_poll(f->c), 0);
        assert_int_equal(video_client_pop_completion(f->c, &v), 0);
        assert_int_equal(video_client_pop_event(f->c, &e), 0);
        assert_int_equal(video_client_queued(f->c, 1, VIRTIO_VIDEO_QUEUE_TYPE_INPUT), 0);
        /* Created again: its events are delivered again. */
        assert_int_equal(video_client_stream_create(f->c, 1, 0x1002, "again"), 0);
        raise_event(f, VIRTIO_VIDEO_EVENT_ERROR, 1);
        assert_int_equal(video_client_next_event(f->c, &e, true), 1);
        assert_int_equal(e.stream_id, 1);
}

static void test_silent_device_times_out(void **state) {
        Fake *f = *state;
        VcParams p;

        assert_int_equal(video_client_probe(f->c), 0);
        f->drop_type = VIRTIO_VIDEO_CMD_GET_PARAMS_EXT;
        assert_int_equal(video_client_get_params(f->c, 1, VIRTIO_VIDEO_QUEUE_TYPE_INPUT, true, &p),
                         -ETIMEDOUT);
}

static void test_events_short_and_valid(void **state) {
        Fake *f = *state;
        struct virtio_video_event ev = { cpu_to_le32(VIRTIO_VIDEO_EVENT_DECODER_RESOLUTION_CHANGED),
                                         cpu_to_le32(3) };
        unsigned posted;
        VcEvent e;

        assert_int_equal(video_client_probe(f->c), 0);
        assert_int_equal(video_client_poll(f->c), 0);
        posted = f->n_events;
        assert_true(posted >= 2);
        /* A 4-byte event is a device bug: counted, not delivered; the buffer is posted again. */
        reply(f, f->events[--f->n_events], &ev, 4);
        reply(f, f->events[--f->n_events], &ev, sizeof(ev));
        assert_int_equal(video_client_next_event(f->c, &e, true), 1);
        assert_int_equal(e.event_type, VIRTIO_VIDEO_EVENT_DECODER_RESOLUTION_CHANGED);
        assert_int_equal(e.stream_id, 3);
        assert_int_equal(video_client_bad_events(f->c), 1);
        assert_int_equal(video_client_next_event(f->c, &e, false), 0);
        for (int i = 0; i < 10 && sd_event_run(f->event, 0) > 0; i++)
                ;
        assert_int_equal(f->n_events, posted);
}

typedef struct Seen {
        unsigned n;
        uint32_t width[4], height[4];
        uint64_t timestamp[4];
} Seen;

static int record_frame(void *userdata, const VcFrame *fr) {
        Seen *x = userdata;

        if (x->n >= ELEMENTSOF(x->width))
                return -E2BIG;
        x->width[x->n] = fr->width;
        x->height[x->n] = fr->height;
        x->timestamp[x->n] = fr->timestamp;
        x->n++;
        return 0;
}

/* A picture of the old size that completes after the resolution change event (script_handle()) is a
 * frame of the old geometry, handed out before the output buffers are destroyed: neither rejected as a
 * completion of an unknown buffer nor lost. */
static void test_decode_frame_completed_after_resolution_event(void **state) {
        Fake *f = *state;
        static const uint8_t bitstream[20] = { 0 };
        const size_t chunks[] = { 10, 10 };
        Seen x = {};
        VcDecodeResult res = {};

        assert_int_equal(video_client_probe(f->c), 0);
        f->script = true;
        assert_int_equal(video_client_decode(f->c,
                                             &(VcDecodeOptions){
                                                     .stream_id = 1,
                                                     .bitstream = bitstream,
                                                     .size = sizeof(bitstream),
                                                     .chunk_sizes = chunks,
                                                     .n_chunks = ELEMENTSOF(chunks),
                                                     .n_input_buffers = 1,
                                                     .n_output_buffers = 3,
                                                     .frame = record_frame,
                                                     .userdata = &x,
                                             },
                                             &res),
                         0);
        assert_true(f->cleared);
        assert_int_equal(res.resolution_changes, 2);
        assert_int_equal(res.frames, 2);
        assert_int_equal(x.n, 2);
        assert_int_equal(x.width[0], 32);
        assert_int_equal(x.height[0], 32);
        assert_int_equal(x.timestamp[0], 1000);
        assert_int_equal(x.width[1], 64);
        assert_int_equal(x.height[1], 48);
        assert_int_equal(x.timestamp[1], 2000);
        /* The two other 32x32 buffers were cancelled by the clear. */
        assert_int_equal(res.error_completions, 2);
        assert_int_equal(res.width, 64);
        assert_int_equal(res.height, 48);
        assert_int_equal(res.drain_resp_type, VIRTIO_VIDEO_RESP_OK_NODATA);
}

/* A drain answered with an error produces no EOS buffer (§4.4): the session ends with -EREMOTEIO at once
 * (not with the timeout) and destroys its stream; the next session on the client works. */
static void test_decode_drain_error_reply_ends_session(void **state) {
        Fake *f = *state;
        static const uint8_t bitstream[10] = { 0 };
        Seen x = {};
        VcDecodeResult res = {};
        VcDecodeOptions o = {
                .stream_id = 2,
                .bitstream = bitstream,
                .size = sizeof(bitstream),
                .n_input_buffers = 1,
                .n_output_buffers = 2,
                .frame = record_frame,
                .userdata = &x,
        };
        VcCompletion v;
        VcEvent e;

        assert_int_equal(video_client_probe(f->c), 0);
        f->script = true;
        f->drain_reply = VIRTIO_VIDEO_RESP_ERR_INVALID_OPERATION;
        assert_int_equal(video_client_decode(f->c, &o, &res), -EREMOTEIO);
        assert_int_equal(f->destroys, 1);
        assert_int_equal(x.n, 0);
        /* Nothing of it is left behind. */
        assert_int_equal(video_client_poll(f->c), 0);
        assert_int_equal(video_client_pop_completion(f->c, &v), 0);
        assert_int_equal(video_client_pop_event(f->c, &e), 0);
        assert_int_equal(video_client_queued(f->c, 2, VIRTIO_VIDEO_QUEUE_TYPE_OUTPUT), 0);
}

static void test_resource_copy_bounds(void **state) {
        Fake *f = *state;
        uint32_t sizes[2] = { 100, 50 };
        uint8_t in[150], out[150];

        assert_int_equal(video_client_probe(f->c), 0);
        assert_int_equal(video_client_resource_create(f->c, 1, VIRTIO_VIDEO_QUEUE_TYPE_OUTPUT, 9, 2, sizes,
                                                      7),
                         0);
        for (unsigned i = 0; i < sizeof(in); i++)
                in[i] = (uint8_t) (i * 7 + 1);
        /* Across the seven chunks of a plane, at an offset. */
        assert_int_equal(video_client_resource_write(f->c, 1, VIRTIO_VIDEO_QUEUE_TYPE_OUTPUT, 9, 0, 3, in,
                                                     97),
                         0);
        assert_int_equal(video_client_resource_read(f->c, 1, VIRTIO_VIDEO_QUEUE_TYPE_OUTPUT, 9, 0, 3, out,
                                                    97),
                         0);
        assert_memory_equal(in, out, 97);
        assert_int_equal(video_client_resource_write(f->c, 1, VIRTIO_VIDEO_QUEUE_TYPE_OUTPUT, 9, 0, 3, in,
                                                     98),
                         -EINVAL);
        assert_int_equal(video_client_resource_write(f->c, 1, VIRTIO_VIDEO_QUEUE_TYPE_OUTPUT, 9, 1, 0, in,
                                                     51),
                         -EINVAL);
        assert_int_equal(video_client_resource_write(f->c, 1, VIRTIO_VIDEO_QUEUE_TYPE_OUTPUT, 9, 2, 0, in,
                                                     1),
                         -EINVAL);
        assert_int_equal(video_client_resource_read(f->c, 1, VIRTIO_VIDEO_QUEUE_TYPE_OUTPUT, 10, 0, 0, out,
                                                    1),
                         -ENOENT);
        assert_int_equal(video_client_resource_create(f->c, 1, VIRTIO_VIDEO_QUEUE_TYPE_OUTPUT, 11, 9, sizes,
                                                      1),
                         -EINVAL);
        assert_int_equal(video_client_resource_create(f->c, 1, VIRTIO_VIDEO_QUEUE_TYPE_OUTPUT, 11, 1, sizes,
                                                      0),
                         -EINVAL);
}

static void test_resource_peek_in_place_or_null(void **state) {
        Fake *f = *state;
        uint32_t sizes[2] = { 100, 50 };
        uint8_t in[100];
        const uint8_t *p;

        assert_int_equal(video_client_probe(f->c), 0);
        /* Resource 9: plane 0 in four chunks of 25 bytes; resource 12: plane 0 in one chunk. */
        assert_int_equal(video_client_resource_create(f->c, 1, VIRTIO_VIDEO_QUEUE_TYPE_OUTPUT, 9, 2, sizes,
                                                      4),
                         0);
        assert_int_equal(video_client_resource_create(f->c, 1, VIRTIO_VIDEO_QUEUE_TYPE_OUTPUT, 12, 2, sizes,
                                                      1),
                         0);
        for (unsigned i = 0; i < sizeof(in); i++)
                in[i] = (uint8_t) (i * 5 + 3);
        assert_int_equal(video_client_resource_write(f->c, 1, VIRTIO_VIDEO_QUEUE_TYPE_OUTPUT, 9, 0, 0, in,
                                                     100),
                         0);
        assert_int_equal(video_client_resource_write(f->c, 1, VIRTIO_VIDEO_QUEUE_TYPE_OUTPUT, 12, 0, 0, in,
                                                     100),
                         0);

        /* The bytes themselves, where they lie in one chunk. */
        p = video_client_resource_peek(f->c, 1, VIRTIO_VIDEO_QUEUE_TYPE_OUTPUT, 12, 0, 0, 100);
        assert_non_null(p);
        assert_memory_equal(p, in, 100);
        p = video_client_resource_peek(f->c, 1, VIRTIO_VIDEO_QUEUE_TYPE_OUTPUT, 9, 0, 25, 25);
        assert_non_null(p);
        assert_memory_equal(p, in + 25, 25);
        p = video_client_resource_peek(f->c, 1, VIRTIO_VIDEO_QUEUE_TYPE_OUTPUT, 9, 0, 80, 20);
        assert_non_null(p);
        assert_memory_equal(p, in + 80, 20);
        /* In place: a write through the client shows at the peeked address. */
        in[90] ^= 0xff;
        assert_int_equal(video_client_resource_write(f->c, 1, VIRTIO_VIDEO_QUEUE_TYPE_OUTPUT, 9, 0, 90,
                                                     in + 90, 1),
                         0);
        assert_int_equal(p[10], in[90]);

        /* Across chunks, beyond the plane, unknown resource or plane: NULL. */
        assert_null(video_client_resource_peek(f->c, 1, VIRTIO_VIDEO_QUEUE_TYPE_OUTPUT, 9, 0, 20, 10));
        assert_null(video_client_resource_peek(f->c, 1, VIRTIO_VIDEO_QUEUE_TYPE_OUTPUT, 9, 0, 0, 100));
        assert_null(video_client_resource_peek(f->c, 1, VIRTIO_VIDEO_QUEUE_TYPE_OUTPUT, 12, 0, 1, 100));
        assert_null(video_client_resource_peek(f->c, 1, VIRTIO_VIDEO_QUEUE_TYPE_OUTPUT, 12, 0, 101, 0));
        assert_null(video_client_resource_peek(f->c, 1, VIRTIO_VIDEO_QUEUE_TYPE_OUTPUT, 12, 2, 0, 1));
        assert_null(video_client_resource_peek(f->c, 1, VIRTIO_VIDEO_QUEUE_TYPE_OUTPUT, 13, 0, 0, 1));
        assert_null(video_client_resource_peek(f->c, 1, VIRTIO_VIDEO_QUEUE_TYPE_INPUT, 12, 0, 0, 1));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_probe_parses_valid_caps, setup, teardown),
                cmocka_unit_test_setup_teardown(test_probe_rejects_zero_limits, setup, teardown),
                cmocka_unit_test_setup_teardown(test_probe_rejects_absurd_caps_length, setup, teardown),
                cmocka_unit_test_setup_teardown(test_caps_counts_beyond_payload, setup, teardown),
                cmocka_unit_test_setup_teardown(test_caps_huge_num_frames, setup, teardown),
                cmocka_unit_test_setup_teardown(test_caps_huge_num_rates, setup, teardown),
                cmocka_unit_test_setup_teardown(test_caps_zero_descs_and_trailing_bytes, setup, teardown),
                cmocka_unit_test_setup_teardown(test_caps_error_reply, setup, teardown),
                cmocka_unit_test_setup_teardown(test_get_params_checks, setup, teardown),
                cmocka_unit_test_setup_teardown(test_query_control_count_checked, setup, teardown),
                cmocka_unit_test_setup_teardown(test_clear_reply_before_cancelled_buffers_is_eproto, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_destroy_consumes_late_completions_and_events, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_silent_device_times_out, setup, teardown),
                cmocka_unit_test_setup_teardown(test_events_short_and_valid, setup, teardown),
                cmocka_unit_test_setup_teardown(test_decode_frame_completed_after_resolution_event, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_decode_drain_error_reply_ends_session, setup, teardown),
                cmocka_unit_test_setup_teardown(test_resource_copy_bounds, setup, teardown),
                cmocka_unit_test_setup_teardown(test_resource_peek_in_place_or_null, setup, teardown),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
