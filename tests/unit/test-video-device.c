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
#include "video/model.h"
#include "video/virtio-video-proto.h"

/*
 * The device model fed with wire bytes, answering through its ops, with the null backend on a real
 * sd-event loop and a fake guest RAM made of two "regions" (translations split at the boundary, as the
 * vhost memory table does).
 */

#define GUEST_BASE 0x100000ULL
#define GUEST_SIZE (4u * 1024u * 1024u)
#define MAX_REQS 2048

typedef struct Req {
        bool done, dropped;
        unsigned order;
        uint8_t resp[4096];
        size_t len;
} Req;

typedef struct Gx {
        sd_event *event;
        Backend *backend;
        VideoModel *model;
        uint8_t *guest;
        uint64_t next_gpa;
        Req *reqs[MAX_REQS];
        unsigned n_reqs;
        unsigned n_done, n_dropped;
} Gx;

static void op_complete(void *userdata, void *token, const void *resp, size_t len) {
        Gx *gx = userdata;
        Req *r = token;

        assert_false(r->done);
        assert_false(r->dropped);
        assert_true(len <= sizeof(r->resp));
        r->done = true;
        r->order = gx->n_done++;
        if (len)
                memcpy(r->resp, resp, len);
        r->len = len;
}

static void op_drop(void *userdata, void *token) {
        Gx *gx = userdata;
        Req *r = token;

        assert_false(r->done);
        r->dropped = true;
        gx->n_dropped++;
}

/* Two regions: [BASE, BASE + SIZE/2) and [BASE + SIZE/2, BASE + SIZE). */
static int
op_translate(void *userdata, void *token, uint64_t gpa, uint64_t len, struct iovec *iov, unsigned max_iov) {
        Gx *gx = userdata;
        uint64_t mid = GUEST_BASE + GUEST_SIZE / 2, end;
        unsigned n = 0;

        if (__builtin_add_overflow(gpa, len, &end) || gpa < GUEST_BASE || end > GUEST_BASE + GUEST_SIZE)
                return -EFAULT;
        while (len > 0) {
                uint64_t k = gpa < mid ? (mid - gpa < len ? mid - gpa : len) : len;
                if (n >= max_iov)
                        return -E2BIG;
                iov[n++] = (struct iovec){ gx->guest + (gpa - GUEST_BASE), k };
                gpa += k;
                len -= k;
        }
        return (int) n;
}

static const VideoModelOps ops = {
        .complete = op_complete,
        .drop = op_drop,
        .translate = op_translate,
};

static Gx *gx_new(const char *backend) {
        Gx *gx = calloc(1, sizeof(*gx));

        assert_non_null(gx);
        gx->guest = calloc(1, GUEST_SIZE);
        assert_non_null(gx->guest);
        gx->next_gpa = GUEST_BASE;
        assert_int_equal(sd_event_new(&gx->event), 0);
        assert_int_equal(backend_new(backend, NULL, gx->event, &gx->backend), 0);
        assert_int_equal(video_model_new(gx->backend, &ops, gx, &gx->model), 0);
        return gx;
}

static int setup_decoder(void **state) {
        *state = gx_new("null");
        return 0;
}
static int setup_encoder(void **state) {
        *state = gx_new("null-encoder");
        return 0;
}

static int teardown(void **state) {
        Gx *gx = *state;

        video_model_free(gx->model);
        backend_free(gx->backend);
        sd_event_unref(gx->event);
        for (unsigned i = 0; i < gx->n_reqs; i++) {
                /* every request was answered, or dropped by a reset/free */
                assert_true(gx->reqs[i]->done || gx->reqs[i]->dropped);
                free(gx->reqs[i]);
        }
        free(gx->guest);
        free(gx);
        return 0;
}

static void run(Gx *gx) {
        for (unsigned i = 0; i < 100000; i++) {
                int r = sd_event_run(gx->event, 0);
                assert_true(r >= 0);
                if (r == 0)
                        return;
        }
        fail_msg("event loop does not settle");
}

static Req *new_req(Gx *gx) {
        Req *r = calloc(1, sizeof(*r));

        assert_non_null(r);
        assert_true(gx->n_reqs < MAX_REQS);
        gx->reqs[gx->n_reqs++] = r;
        return r;
}

/* Sends a request, cutting it into two descriptors when it is long enough. */
static Req *send_cap(Gx *gx, const void *buf, size_t len, size_t cap) {
        Req *r = new_req(gx);
        struct iovec iov[2] = {
                { (void *) buf, len > 9 ? 9 : len },
                { (uint8_t *) buf + (len > 9 ? 9 : len), len > 9 ? len - 9 : 0 },
        };

        video_model_request(gx->model, iov, len > 9 ? 2 : 1, cap, r);
        return r;
}

static Req *req_send(Gx *gx, const void *buf, size_t len) {
        return send_cap(gx, buf, len, 1024);
}

static uint32_t rtype(const Req *r) {
        uint32_t v;

        assert_true(r->done);
        assert_true(r->len >= 8);
        memcpy(&v, r->resp, 4);
        return le32toh(v);
}

static uint32_t rd32(const Req *r, size_t off) {
        uint32_t v;

        assert_true(off + 4 <= r->len);
        memcpy(&v, r->resp + off, 4);
        return le32toh(v);
}

static uint64_t rd64(const Req *r, size_t off) {
        uint64_t v;

        assert_true(off + 8 <= r->len);
        memcpy(&v, r->resp + off, 8);
        return le64toh(v);
}

static uint32_t qwire(VideoQueue q) {
        return q == VIDEO_QUEUE_INPUT ? VIRTIO_VIDEO_QUEUE_TYPE_INPUT : VIRTIO_VIDEO_QUEUE_TYPE_OUTPUT;
}

static struct virtio_video_cmd_hdr hdr(uint32_t type, uint32_t stream_id) {
        return (struct virtio_video_cmd_hdr){ cpu_to_le32(type), cpu_to_le32(stream_id) };
}

static Req *cmd_queue_op(Gx *gx, uint32_t type, uint32_t stream, VideoQueue q) {
        struct virtio_video_get_params req = {
                .hdr = hdr(type, stream),
                .queue_type = cpu_to_le32(q == VIDEO_QUEUE_INPUT ? VIRTIO_VIDEO_QUEUE_TYPE_INPUT
                                                                 : VIRTIO_VIDEO_QUEUE_TYPE_OUTPUT),
        };
        return req_send(gx, &req, sizeof(req));
}

static Req *cmd_hdr(Gx *gx, uint32_t type, uint32_t stream) {
        struct virtio_video_cmd_hdr h = hdr(type, stream);
        return req_send(gx, &h, sizeof(h));
}

static Req *stream_create(Gx *gx, uint32_t id, uint32_t format, uint32_t mem) {
        struct virtio_video_stream_create req = {
                .hdr = hdr(VIRTIO_VIDEO_CMD_STREAM_CREATE, id),
                .in_mem_type = cpu_to_le32(mem),
                .out_mem_type = cpu_to_le32(VIRTIO_VIDEO_MEM_TYPE_GUEST_PAGES),
                .coded_format = cpu_to_le32(format),
        };
        strcpy((char *) req.tag, "test");
        return req_send(gx, &req, sizeof(req));
}

static uint64_t guest_alloc(Gx *gx, size_t len) {
        uint64_t gpa = gx->next_gpa;

        gx->next_gpa += (len + 63) & ~(uint64_t) 63;
        assert_true(gx->next_gpa <= GUEST_BASE + GUEST_SIZE);
        return gpa;
}

static uint8_t *host(Gx *gx, uint64_t gpa) {
        return gx->guest + (gpa - GUEST_BASE);
}

/* One plane of `len` bytes described by `n_entries` entries (NON_CONTIG style); returns the first GPA. */
static Req *resource_create_at(
        Gx *gx, uint32_t stream, VideoQueue q, uint32_t id, uint64_t gpa, size_t len, unsigned n_entries) {
        struct {
                struct virtio_video_resource_create rc;
                struct virtio_video_mem_entry e[16];
        } req = {
                .rc.hdr = hdr(VIRTIO_VIDEO_CMD_RESOURCE_CREATE, stream),
                .rc.queue_type = cpu_to_le32(qwire(q)),
                .rc.resource_id = cpu_to_le32(id),
                .rc.planes_layout = cpu_to_le32(VIRTIO_VIDEO_PLANES_LAYOUT_SINGLE_BUFFER),
                .rc.num_planes = cpu_to_le32(1),
                .rc.num_entries[0] = cpu_to_le32(n_entries),
        };
        size_t per = len / n_entries;

        assert_true(n_entries <= 16);
        for (unsigned i = 0; i < n_entries; i++)
                req.e[i] = (struct virtio_video_mem_entry){
                        .addr = cpu_to_le64(gpa + i * per),
                        .length = cpu_to_le32((uint32_t) (i + 1 == n_entries ? len - i * per : per)),
                };
        return req_send(gx, &req, sizeof(req.rc) + n_entries * sizeof(req.e[0]));
}

static Req *
resource_queue(Gx *gx, uint32_t stream, VideoQueue q, uint32_t id, uint64_t ts, uint32_t data_size) {
        struct virtio_video_resource_queue req = {
                .hdr = hdr(VIRTIO_VIDEO_CMD_RESOURCE_QUEUE, stream),
                .queue_type = cpu_to_le32(qwire(q)),
                .resource_id = cpu_to_le32(id),
                .timestamp = cpu_to_le64(ts),
                .num_data_sizes = cpu_to_le32(1),
                .data_sizes[0] = cpu_to_le32(data_size),
        };
        return req_send(gx, &req, sizeof(req));
}

static Req *event_buffer(Gx *gx) {
        Req *r = new_req(gx);

        video_model_event_buffer(gx->model, r, 8);
        return r;
}

static uint8_t pix(unsigned plane, size_t i, uint32_t seq) {
        return (uint8_t) (i * 3 + plane * 17 + seq * 29);
}

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

/* STREAM_CREATE + an input resource holding `n` 16x8 frames, queued with timestamp ts. */
static Req *start_decode(Gx *gx, uint32_t stream, unsigned n, uint64_t ts, uint32_t input_id) {
        size_t cap = 8192, len = 0;
        uint64_t gpa = guest_alloc(gx, cap);
        Req *r;

        r = stream_create(gx, stream, VIDEO_FORMAT_FWHT, VIRTIO_VIDEO_MEM_TYPE_GUEST_PAGES);
        assert_int_equal(rtype(r), VIRTIO_VIDEO_RESP_OK_NODATA);
        for (unsigned k = 0; k < n; k++)
                len += make_frame(host(gx, gpa) + len, 16, 8, k);
        r = resource_create_at(gx, stream, VIDEO_QUEUE_INPUT, input_id, gpa, cap, 3);
        assert_int_equal(rtype(r), VIRTIO_VIDEO_RESP_OK_NODATA);
        r = resource_queue(gx, stream, VIDEO_QUEUE_INPUT, input_id, ts, (uint32_t) len);
        assert_false(r->done); /* deferred until the codec consumed it */
        return r;
}

/* ---- tests ----------------------------------------------------------------------------------------- */

static void test_query_capability(void **state) {
        Gx *gx = *state;
        VideoDeviceStats st = {};
        Req *r;

        r = cmd_queue_op(gx, VIRTIO_VIDEO_CMD_QUERY_CAPABILITY, 0, VIDEO_QUEUE_INPUT);
        /* 16 + 1 desc (24) + 1 frame (40) + 1 rate (16) */
        assert_int_equal(rtype(r), VIRTIO_VIDEO_RESP_OK_QUERY_CAPABILITY);
        assert_int_equal(r->len, 96);
        assert_int_equal(rd32(r, 8), 1);
        assert_true(rd64(r, 16) == 0x3); /* mask */
        assert_int_equal(rd32(r, 24), VIDEO_FORMAT_FWHT);
        assert_int_equal(rd32(r, 36), 1);    /* num_frames */
        assert_int_equal(rd32(r, 40), 2);    /* width.min */
        assert_int_equal(rd32(r, 44), 4096); /* width.max */
        assert_int_equal(rd32(r, 72), 1);    /* num_rates */
        assert_int_equal(rd32(r, 84), 60);   /* rate max */

        r = cmd_queue_op(gx, VIRTIO_VIDEO_CMD_QUERY_CAPABILITY, 0, VIDEO_QUEUE_OUTPUT);
        assert_int_equal(r->len, 16 + 2 * 80);
        assert_int_equal(rd32(r, 8), 2);
        assert_int_equal(rd32(r, 16 + 8), VIDEO_FORMAT_NV12);
        assert_int_equal(rd32(r, 96 + 8), VIDEO_FORMAT_YUV420);
        assert_true(video_model_max_caps_length(gx->model) >= 176);
        assert_true(video_model_max_resp_length(gx->model) >= 128);

        /* a response buffer too small for the list, a bad queue type */
        struct virtio_video_query_capability q = {
                .hdr = hdr(VIRTIO_VIDEO_CMD_QUERY_CAPABILITY, 0),
                .queue_type = cpu_to_le32(VIRTIO_VIDEO_QUEUE_TYPE_OUTPUT),
        };
        r = send_cap(gx, &q, sizeof(q), 100);
        assert_int_equal(rtype(r), VIRTIO_VIDEO_RESP_ERR_OUT_OF_MEMORY);
        q.queue_type = cpu_to_le32(3);
        r = req_send(gx, &q, sizeof(q));
        assert_int_equal(rtype(r), VIRTIO_VIDEO_RESP_ERR_INVALID_PARAMETER);
        assert_int_equal(r->len, 8);
        video_model_get_stats(gx->model, &st);
        assert_int_equal(st.errors, 2);
}

static void test_unknown_and_malformed_are_answered(void **state) {
        Gx *gx = *state;
        uint8_t junk[3] = { 1, 2, 3 };
        Req *r;

        r = cmd_hdr(gx, 0x0150, 4);
        assert_int_equal(rtype(r), VIRTIO_VIDEO_RESP_ERR_INVALID_OPERATION);
        assert_int_equal(rd32(r, 4), 4);
        r = req_send(gx, junk, sizeof(junk));
        assert_int_equal(rtype(r), VIRTIO_VIDEO_RESP_ERR_INVALID_PARAMETER);
        /* commands on a stream that does not exist */
        r = cmd_queue_op(gx, VIRTIO_VIDEO_CMD_GET_PARAMS_EXT, 77, VIDEO_QUEUE_INPUT);
        assert_int_equal(rtype(r), VIRTIO_VIDEO_RESP_ERR_INVALID_STREAM_ID);
        r = cmd_hdr(gx, VIRTIO_VIDEO_CMD_STREAM_DESTROY, 77);
        assert_int_equal(rtype(r), VIRTIO_VIDEO_RESP_ERR_INVALID_STREAM_ID);
        r = cmd_hdr(gx, VIRTIO_VIDEO_CMD_STREAM_DRAIN, 77);
        assert_int_equal(rtype(r), VIRTIO_VIDEO_RESP_ERR_INVALID_STREAM_ID);
}

static void test_stream_create_rules(void **state) {
        Gx *gx = *state;
        VideoDeviceStats st = {};
        Req *r;

        assert_int_equal(rtype(stream_create(gx, 1, VIDEO_FORMAT_FWHT, 0)), VIRTIO_VIDEO_RESP_OK_NODATA);
        assert_int_equal(rtype(stream_create(gx, 1, VIDEO_FORMAT_FWHT, 0)),
                         VIRTIO_VIDEO_RESP_ERR_INVALID_STREAM_ID);
        /* a coded format the backend lacks; virtio objects are not offered */
        assert_int_equal(rtype(stream_create(gx, 2, VIDEO_FORMAT_H264, 0)),
                         VIRTIO_VIDEO_RESP_ERR_INVALID_PARAMETER);
        assert_int_equal(rtype(stream_create(gx, 2, VIDEO_FORMAT_FWHT, VIRTIO_VIDEO_MEM_TYPE_VIRTIO_OBJECT)),
                         VIRTIO_VIDEO_RESP_ERR_INVALID_PARAMETER);
        for (uint32_t id = 2; id <= VIDEO_MODEL_MAX_STREAMS; id++)
                assert_int_equal(rtype(stream_create(gx, id, VIDEO_FORMAT_FWHT, 0)),
                                 VIRTIO_VIDEO_RESP_OK_NODATA);
        r = stream_create(gx, 1000, VIDEO_FORMAT_FWHT, 0);
        assert_int_equal(rtype(r), VIRTIO_VIDEO_RESP_ERR_OUT_OF_MEMORY);
        video_model_get_stats(gx->model, &st);
        assert_int_equal(st.active_streams, VIDEO_MODEL_MAX_STREAMS);
        assert_int_equal(rtype(cmd_hdr(gx, VIRTIO_VIDEO_CMD_STREAM_DESTROY, 5)),
                         VIRTIO_VIDEO_RESP_OK_NODATA);
        assert_int_equal(rtype(stream_create(gx, 1000, VIDEO_FORMAT_FWHT, 0)), VIRTIO_VIDEO_RESP_OK_NODATA);
        video_model_get_stats(gx->model, &st);
        assert_int_equal(st.streams_created, VIDEO_MODEL_MAX_STREAMS + 1);
        assert_int_equal(st.errors, 4);
}

static void test_params_both_dialects(void **state) {
        Gx *gx = *state;
        Req *r;

        assert_int_equal(rtype(stream_create(gx, 3, VIDEO_FORMAT_FWHT, 0)), VIRTIO_VIDEO_RESP_OK_NODATA);
        r = cmd_queue_op(gx, VIRTIO_VIDEO_CMD_GET_PARAMS, 3, VIDEO_QUEUE_OUTPUT);
        assert_int_equal(rtype(r), VIRTIO_VIDEO_RESP_OK_GET_PARAMS);
        assert_int_equal(r->len, 120);
        assert_int_equal(rd32(r, 8), VIRTIO_VIDEO_QUEUE_TYPE_OUTPUT); /* echoed */
        assert_int_equal(rd32(r, 12), VIDEO_FORMAT_NV12);
        r = cmd_queue_op(gx, VIRTIO_VIDEO_CMD_GET_PARAMS_EXT, 3, VIDEO_QUEUE_INPUT);
        assert_int_equal(r->len, 128);
        assert_int_equal(rd32(r, 8), VIRTIO_VIDEO_QUEUE_TYPE_INPUT);
        assert_int_equal(rd32(r, 12), VIDEO_FORMAT_FWHT);
        assert_int_equal(rd32(r, 8 + 112), VIRTIO_VIDEO_MEM_TYPE_GUEST_PAGES);

        /* SET_PARAMS_EXT as DRV sends it: crop zero (no change), YUV420 on the output */
        struct virtio_video_set_params_ext sp = {
                .hdr = hdr(VIRTIO_VIDEO_CMD_SET_PARAMS_EXT, 3),
                .params.base.queue_type = cpu_to_le32(VIRTIO_VIDEO_QUEUE_TYPE_OUTPUT),
                .params.base.format = cpu_to_le32(VIDEO_FORMAT_YUV420),
                .params.base.frame_width = cpu_to_le32(320),
                .params.base.frame_height = cpu_to_le32(240),
                .params.base.num_planes = cpu_to_le32(1),
        };
        assert_int_equal(rtype(req_send(gx, &sp, sizeof(sp))), VIRTIO_VIDEO_RESP_OK_NODATA);
        r = cmd_queue_op(gx, VIRTIO_VIDEO_CMD_GET_PARAMS_EXT, 3, VIDEO_QUEUE_OUTPUT);
        assert_int_equal(rd32(r, 12), VIDEO_FORMAT_YUV420);
        assert_int_equal(rd32(r, 16), 320);
        assert_int_equal(rd32(r, 8 + 24 + 8), 320); /* crop.width kept from the device */
        assert_int_equal(rd32(r, 8 + 48), 320 * 240 * 3 / 2);
        /* the plain dialect works the same way, with a 120-byte request */
        struct virtio_video_set_params plain;
        memcpy(&plain, &sp, sizeof(plain));
        plain.hdr = hdr(VIRTIO_VIDEO_CMD_SET_PARAMS, 3);
        plain.params.format = cpu_to_le32(VIDEO_FORMAT_NV12);
        assert_int_equal(rtype(req_send(gx, &plain, sizeof(plain))), VIRTIO_VIDEO_RESP_OK_NODATA);
        r = cmd_queue_op(gx, VIRTIO_VIDEO_CMD_GET_PARAMS, 3, VIDEO_QUEUE_OUTPUT);
        assert_int_equal(rd32(r, 12), VIDEO_FORMAT_NV12);
        /* a resource type the stream does not use */
        sp.params.resource_type = cpu_to_le32(VIRTIO_VIDEO_MEM_TYPE_VIRTIO_OBJECT);
        assert_int_equal(rtype(req_send(gx, &sp, sizeof(sp))), VIRTIO_VIDEO_RESP_ERR_INVALID_PARAMETER);
}

static void test_decode_session(void **state) {
        Gx *gx = *state;
        Req *in, *ev, *out[3], *drain, *r;
        uint64_t gpa_out[3];
        VideoDeviceStats st = {};

        in = start_decode(gx, 1, 2, 5000, 10);
        run(gx);
        /* the input was consumed up to the first picture; no event buffer yet: the event waits */
        ev = event_buffer(gx);
        assert_true(ev->done);
        assert_int_equal(rd32(ev, 0), VIRTIO_VIDEO_EVENT_DECODER_RESOLUTION_CHANGED);
        assert_int_equal(rd32(ev, 4), 1);
        Req *ev2 = event_buffer(gx);
        assert_false(ev2->done); /* held for a later event */

        r = cmd_queue_op(gx, VIRTIO_VIDEO_CMD_GET_PARAMS_EXT, 1, VIDEO_QUEUE_OUTPUT);
        assert_int_equal(rd32(r, 16), 16);
        assert_int_equal(rd32(r, 20), 8);
        uint32_t size = rd32(r, 8 + 48);
        assert_int_equal(size, 16 * 8 * 3 / 2);

        for (unsigned i = 0; i < 3; i++) {
                /* across the fake region boundary for the second buffer, in 4 entries */
                gpa_out[i] = i == 1 ? GUEST_BASE + GUEST_SIZE / 2 - 100 : guest_alloc(gx, size);
                r = resource_create_at(gx, 1, VIDEO_QUEUE_OUTPUT, 20 + i, gpa_out[i], size, i == 1 ? 4 : 1);
                assert_int_equal(rtype(r), VIRTIO_VIDEO_RESP_OK_NODATA);
        }
        for (unsigned i = 0; i < 3; i++)
                out[i] = resource_queue(gx, 1, VIDEO_QUEUE_OUTPUT, 20 + i, 0, 0);
        run(gx);
        assert_true(in->done);
        assert_int_equal(rtype(in), VIRTIO_VIDEO_RESP_OK_RESOURCE_QUEUE);
        assert_int_equal(rd32(in, 16), 0);
        for (unsigned k = 0; k < 2; k++) {
                assert_true(out[k]->done);
                assert_int_equal(rtype(out[k]), VIRTIO_VIDEO_RESP_OK_RESOURCE_QUEUE);
                assert_int_equal(out[k]->len, 24);
                assert_true(rd64(out[k], 8) == 5000); /* the input's timestamp */
                assert_int_equal(rd32(out[k], 16), 0);
                assert_int_equal(rd32(out[k], 20), size);
                const uint8_t *y = host(gx, gpa_out[k]);
                for (size_t i = 0; i < 16 * 8; i++)
                        assert_int_equal(y[i], pix(0, i, k));
        }
        assert_false(out[2]->done);

        /* no input while draining; the EOS buffer comes before the drain reply (§7.4) */
        drain = cmd_hdr(gx, VIRTIO_VIDEO_CMD_STREAM_DRAIN, 1);
        assert_false(drain->done);
        r = resource_queue(gx, 1, VIDEO_QUEUE_INPUT, 10, 1, 1);
        assert_int_equal(rtype(r), VIRTIO_VIDEO_RESP_ERR_INVALID_OPERATION);
        r = cmd_hdr(gx, VIRTIO_VIDEO_CMD_STREAM_DRAIN, 1);
        assert_int_equal(rtype(r), VIRTIO_VIDEO_RESP_ERR_INVALID_OPERATION);
        run(gx);
        assert_true(out[2]->done);
        assert_int_equal(rd32(out[2], 16), VIRTIO_VIDEO_BUFFER_FLAG_EOS);
        assert_int_equal(rd32(out[2], 20), 0);
        assert_int_equal(rtype(drain), VIRTIO_VIDEO_RESP_OK_NODATA);
        assert_true(drain->order == out[2]->order + 1);

        video_model_get_stats(gx->model, &st);
        assert_true(st.bytes_in > 0);
        assert_int_equal(st.bytes_out, 2 * size);
}

static void test_queue_clear_completes_buffers_before_reply(void **state) {
        Gx *gx = *state;
        Req *out[2], *clear, *r;

        start_decode(gx, 2, 0, 1, 30); /* no frames: the outputs stay queued */
        run(gx);
        for (unsigned i = 0; i < 2; i++) {
                r = resource_create_at(gx, 2, VIDEO_QUEUE_OUTPUT, 40 + i, guest_alloc(gx, 640 * 720),
                                       640 * 720, 2);
                assert_int_equal(rtype(r), VIRTIO_VIDEO_RESP_OK_NODATA);
                out[i] = resource_queue(gx, 2, VIDEO_QUEUE_OUTPUT, 40 + i, 0, 0);
                assert_false(out[i]->done);
        }
        clear = cmd_queue_op(gx, VIRTIO_VIDEO_CMD_QUEUE_CLEAR, 2, VIDEO_QUEUE_OUTPUT);
        assert_false(clear->done); /* held until the backend gave every buffer back */
        /* while the clear runs: no queueing, no second clear */
        assert_int_equal(rtype(resource_queue(gx, 2, VIDEO_QUEUE_OUTPUT, 40, 0, 0)),
                         VIRTIO_VIDEO_RESP_ERR_INVALID_OPERATION);
        assert_int_equal(rtype(cmd_queue_op(gx, VIRTIO_VIDEO_CMD_QUEUE_CLEAR, 2, VIDEO_QUEUE_OUTPUT)),
                         VIRTIO_VIDEO_RESP_ERR_INVALID_OPERATION);
        run(gx);
        for (unsigned i = 0; i < 2; i++) {
                assert_int_equal(rtype(out[i]), VIRTIO_VIDEO_RESP_OK_RESOURCE_QUEUE);
                assert_int_equal(rd32(out[i], 16), VIRTIO_VIDEO_BUFFER_FLAG_ERR);
                assert_true(out[i]->order < clear->order); /* §7.7c */
        }
        assert_int_equal(rtype(clear), VIRTIO_VIDEO_RESP_OK_NODATA);
}

static void test_destroy_all_with_buffers_in_flight(void **state) {
        Gx *gx = *state;
        Req *out, *destroy, *r;
        uint64_t gpa = guest_alloc(gx, 640 * 720);

        start_decode(gx, 3, 0, 1, 50);
        run(gx);
        assert_int_equal(rtype(resource_create_at(gx, 3, VIDEO_QUEUE_OUTPUT, 60, gpa, 640 * 720, 1)),
                         VIRTIO_VIDEO_RESP_OK_NODATA);
        out = resource_queue(gx, 3, VIDEO_QUEUE_OUTPUT, 60, 0, 0);
        destroy = cmd_queue_op(gx, VIRTIO_VIDEO_CMD_RESOURCE_DESTROY_ALL, 3, VIDEO_QUEUE_OUTPUT);
        assert_false(destroy->done);
        assert_int_equal(rtype(resource_create_at(gx, 3, VIDEO_QUEUE_OUTPUT, 61, gpa, 640 * 720, 1)),
                         VIRTIO_VIDEO_RESP_ERR_INVALID_OPERATION);
        run(gx);
        assert_int_equal(rd32(out, 16), VIRTIO_VIDEO_BUFFER_FLAG_ERR);
        assert_int_equal(rtype(destroy), VIRTIO_VIDEO_RESP_OK_NODATA);
        assert_true(out->order < destroy->order);
        /* the id can be created again */
        r = resource_create_at(gx, 3, VIDEO_QUEUE_OUTPUT, 60, gpa, 640 * 720, 1);
        assert_int_equal(rtype(r), VIRTIO_VIDEO_RESP_OK_NODATA);
        /* without buffers in flight the reply is immediate */
        r = cmd_queue_op(gx, VIRTIO_VIDEO_CMD_RESOURCE_DESTROY_ALL, 3, VIDEO_QUEUE_OUTPUT);
        assert_int_equal(rtype(r), VIRTIO_VIDEO_RESP_OK_NODATA);
        assert_int_equal(rtype(resource_queue(gx, 3, VIDEO_QUEUE_OUTPUT, 60, 0, 0)),
                         VIRTIO_VIDEO_RESP_ERR_INVALID_RESOURCE_ID);
}

static void test_stream_destroy_cancels_everything_first(void **state) {
        Gx *gx = *state;
        Req *in, *out, *drain, *destroy;

        /* An output queued before the stream's format is known goes stale at the first header, so the
         * decoded frame has nowhere to go and the drain cannot finish. */
        in = start_decode(gx, 4, 1, 7, 70);
        assert_int_equal(rtype(resource_create_at(gx, 4, VIDEO_QUEUE_OUTPUT, 71, guest_alloc(gx, 64), 64,
                                                  1)),
                         VIRTIO_VIDEO_RESP_OK_NODATA);
        out = resource_queue(gx, 4, VIDEO_QUEUE_OUTPUT, 71, 0, 0);
        run(gx);
        assert_false(out->done);
        drain = cmd_hdr(gx, VIRTIO_VIDEO_CMD_STREAM_DRAIN, 4);
        run(gx);
        assert_false(drain->done);
        destroy = cmd_hdr(gx, VIRTIO_VIDEO_CMD_STREAM_DESTROY, 4);
        assert_true(in->done && out->done && drain->done && destroy->done);
        assert_int_equal(rd32(out, 16), VIRTIO_VIDEO_BUFFER_FLAG_ERR);
        assert_int_equal(rtype(drain), VIRTIO_VIDEO_RESP_ERR_INVALID_OPERATION);
        assert_true(out->order < destroy->order && drain->order < destroy->order);
        assert_int_equal(rtype(destroy), VIRTIO_VIDEO_RESP_OK_NODATA);
        assert_int_equal(rtype(cmd_queue_op(gx, VIRTIO_VIDEO_CMD_GET_PARAMS, 4, VIDEO_QUEUE_INPUT)),
                         VIRTIO_VIDEO_RESP_ERR_INVALID_STREAM_ID);
}

static void test_resource_errors(void **state) {
        Gx *gx = *state;
        uint64_t gpa = guest_alloc(gx, 4096);
        Req *r;

        assert_int_equal(rtype(stream_create(gx, 5, VIDEO_FORMAT_FWHT, 0)), VIRTIO_VIDEO_RESP_OK_NODATA);
        /* outside guest memory, and wrapping past its end */
        r = resource_create_at(gx, 5, VIDEO_QUEUE_INPUT, 1, GUEST_BASE + GUEST_SIZE - 16, 4096, 1);
        assert_int_equal(rtype(r), VIRTIO_VIDEO_RESP_ERR_INVALID_PARAMETER);
        r = resource_create_at(gx, 5, VIDEO_QUEUE_INPUT, 1, 0x1000, 4096, 1);
        assert_int_equal(rtype(r), VIRTIO_VIDEO_RESP_ERR_INVALID_PARAMETER);
        /* a zero-length entry */
        r = resource_create_at(gx, 5, VIDEO_QUEUE_INPUT, 1, gpa, 0, 1);
        assert_int_equal(rtype(r), VIRTIO_VIDEO_RESP_ERR_INVALID_PARAMETER);
        /* one entry for two planes is the virtio-object shape: not for guest pages */
        struct {
                struct virtio_video_resource_create rc;
                struct virtio_video_mem_entry e;
        } two = {
                .rc.hdr = hdr(VIRTIO_VIDEO_CMD_RESOURCE_CREATE, 5),
                .rc.queue_type = cpu_to_le32(VIRTIO_VIDEO_QUEUE_TYPE_OUTPUT),
                .rc.resource_id = cpu_to_le32(9),
                .rc.planes_layout = cpu_to_le32(VIRTIO_VIDEO_PLANES_LAYOUT_SINGLE_BUFFER),
                .rc.num_planes = cpu_to_le32(2),
                .rc.num_entries = { cpu_to_le32(1), cpu_to_le32(1) },
                .e = { cpu_to_le64(gpa), cpu_to_le32(4096) },
        };
        assert_int_equal(rtype(req_send(gx, &two, sizeof(two))), VIRTIO_VIDEO_RESP_ERR_INVALID_PARAMETER);
        /* SPEC-v3 single buffer: both planes cut from the one entry at plane_offsets */
        two.rc.num_entries[0] = cpu_to_le32(1);
        two.rc.num_entries[1] = cpu_to_le32(0);
        two.rc.plane_offsets[1] = cpu_to_le32(5000); /* beyond the buffer */
        assert_int_equal(rtype(req_send(gx, &two, sizeof(two))), VIRTIO_VIDEO_RESP_ERR_INVALID_PARAMETER);
        two.rc.plane_offsets[1] = cpu_to_le32(2048);
        assert_int_equal(rtype(req_send(gx, &two, sizeof(two))), VIRTIO_VIDEO_RESP_OK_NODATA);

        r = resource_create_at(gx, 5, VIDEO_QUEUE_INPUT, 1, gpa, 4096, 2);
        assert_int_equal(rtype(r), VIRTIO_VIDEO_RESP_OK_NODATA);
        r = resource_create_at(gx, 5, VIDEO_QUEUE_INPUT, 1, gpa, 4096, 1);
        assert_int_equal(rtype(r), VIRTIO_VIDEO_RESP_ERR_INVALID_RESOURCE_ID);
        /* unknown stream, unknown resource, data beyond the buffer, twice queued */
        r = resource_create_at(gx, 99, VIDEO_QUEUE_INPUT, 2, gpa, 4096, 1);
        assert_int_equal(rtype(r), VIRTIO_VIDEO_RESP_ERR_INVALID_STREAM_ID);
        assert_int_equal(rtype(resource_queue(gx, 5, VIDEO_QUEUE_INPUT, 2, 0, 10)),
                         VIRTIO_VIDEO_RESP_ERR_INVALID_RESOURCE_ID);
        assert_int_equal(rtype(resource_queue(gx, 5, VIDEO_QUEUE_OUTPUT, 1, 0, 10)),
                         VIRTIO_VIDEO_RESP_ERR_INVALID_RESOURCE_ID);
        assert_int_equal(rtype(resource_queue(gx, 5, VIDEO_QUEUE_INPUT, 1, 0, 4097)),
                         VIRTIO_VIDEO_RESP_ERR_INVALID_PARAMETER);
        make_frame(host(gx, gpa), 16, 8, 0);
        r = resource_queue(gx, 5, VIDEO_QUEUE_INPUT, 1, 0, 10);
        assert_false(r->done);
        assert_int_equal(rtype(resource_queue(gx, 5, VIDEO_QUEUE_INPUT, 1, 0, 10)),
                         VIRTIO_VIDEO_RESP_ERR_INVALID_PARAMETER);
        run(gx);
        assert_true(r->done);

        /* resource cap per queue */
        for (uint32_t id = 100; id < 100 + VIDEO_MODEL_MAX_RESOURCES - 1; id++)
                assert_int_equal(rtype(resource_create_at(gx, 5, VIDEO_QUEUE_INPUT, id, gpa, 64, 1)),
                                 VIRTIO_VIDEO_RESP_OK_NODATA);
        assert_int_equal(rtype(resource_create_at(gx, 5, VIDEO_QUEUE_INPUT, 1000, gpa, 64, 1)),
                         VIRTIO_VIDEO_RESP_ERR_OUT_OF_MEMORY);
}

/* A resource of VIDEO_CMD_MAX_ENTRIES 16-byte entries, all in one small guest range. */
static Req *resource_create_many(Gx *gx, uint32_t stream, uint32_t id, uint64_t gpa) {
        const unsigned n = 16384;
        size_t len = sizeof(struct virtio_video_resource_create) + n * sizeof(struct virtio_video_mem_entry);
        uint8_t *buf = calloc(1, len);
        struct virtio_video_resource_create rc = {
                .hdr = hdr(VIRTIO_VIDEO_CMD_RESOURCE_CREATE, stream),
                .queue_type = cpu_to_le32(VIRTIO_VIDEO_QUEUE_TYPE_OUTPUT),
                .resource_id = cpu_to_le32(id),
                .planes_layout = cpu_to_le32(VIRTIO_VIDEO_PLANES_LAYOUT_SINGLE_BUFFER),
                .num_planes = cpu_to_le32(1),
                .num_entries[0] = cpu_to_le32(n),
        };
        struct virtio_video_mem_entry e = { cpu_to_le64(gpa), cpu_to_le32(16) };
        Req *r;

        assert_non_null(buf);
        memcpy(buf, &rc, sizeof(rc));
        for (unsigned i = 0; i < n; i++)
                memcpy(buf + sizeof(rc) + i * sizeof(e), &e, sizeof(e));
        r = req_send(gx, buf, len);
        free(buf);
        return r;
}

static void test_entries_are_capped_per_device(void **state) {
        Gx *gx = *state;
        uint64_t gpa = guest_alloc(gx, 64);
        unsigned per = VIDEO_MODEL_MAX_ENTRIES_TOTAL / 16384;

        assert_int_equal(rtype(stream_create(gx, 1, VIDEO_FORMAT_FWHT, 0)), VIRTIO_VIDEO_RESP_OK_NODATA);
        assert_int_equal(rtype(stream_create(gx, 2, VIDEO_FORMAT_FWHT, 0)), VIRTIO_VIDEO_RESP_OK_NODATA);
        for (unsigned i = 0; i < per; i++)
                assert_int_equal(rtype(resource_create_many(gx, 1 + i % 2, i, gpa)), VIRTIO_VIDEO_RESP_OK_NODATA);
        assert_int_equal(rtype(resource_create_many(gx, 2, 1000, gpa)), VIRTIO_VIDEO_RESP_ERR_OUT_OF_MEMORY);
        /* forgetting resources gives the room back */
        assert_int_equal(rtype(cmd_queue_op(gx, VIRTIO_VIDEO_CMD_RESOURCE_DESTROY_ALL, 1, VIDEO_QUEUE_OUTPUT)),
                         VIRTIO_VIDEO_RESP_OK_NODATA);
        assert_int_equal(rtype(resource_create_many(gx, 2, 1000, gpa)), VIRTIO_VIDEO_RESP_OK_NODATA);
        assert_int_equal(rtype(cmd_hdr(gx, VIRTIO_VIDEO_CMD_STREAM_DESTROY, 2)), VIRTIO_VIDEO_RESP_OK_NODATA);
        assert_int_equal(rtype(resource_create_many(gx, 1, 2000, gpa)), VIRTIO_VIDEO_RESP_OK_NODATA);
}

static void test_reset_drops_held_requests(void **state) {
        Gx *gx = *state;
        Req *in, *ev, *clear;
        VideoDeviceStats st = {};

        in = start_decode(gx, 6, 0, 1, 80);
        clear = cmd_queue_op(gx, VIRTIO_VIDEO_CMD_QUEUE_CLEAR, 6, VIDEO_QUEUE_OUTPUT);
        ev = event_buffer(gx);
        assert_false(in->done || clear->done || ev->done);
        video_model_reset(gx->model);
        assert_true(in->dropped && clear->dropped && ev->dropped);
        assert_int_equal(gx->n_dropped, 3);
        video_model_get_stats(gx->model, &st);
        assert_int_equal(st.active_streams, 0);
        /* nothing comes from the freed stream afterwards, and the id is free again */
        run(gx);
        assert_int_equal(rtype(stream_create(gx, 6, VIDEO_FORMAT_FWHT, 0)), VIRTIO_VIDEO_RESP_OK_NODATA);
}

static void test_error_event_on_corrupt_stream(void **state) {
        Gx *gx = *state;
        uint64_t gpa = guest_alloc(gx, 64);
        Req *r, *ev;

        assert_int_equal(rtype(stream_create(gx, 8, VIDEO_FORMAT_FWHT, 0)), VIRTIO_VIDEO_RESP_OK_NODATA);
        assert_int_equal(rtype(resource_create_at(gx, 8, VIDEO_QUEUE_INPUT, 1, gpa, 64, 1)),
                         VIRTIO_VIDEO_RESP_OK_NODATA);
        memset(host(gx, gpa), 0x55, 64);
        ev = event_buffer(gx);
        r = resource_queue(gx, 8, VIDEO_QUEUE_INPUT, 1, 3, 64);
        run(gx);
        assert_int_equal(rd32(r, 16), VIRTIO_VIDEO_BUFFER_FLAG_ERR);
        assert_true(ev->done);
        assert_int_equal(rd32(ev, 0), VIRTIO_VIDEO_EVENT_ERROR);
        assert_int_equal(rd32(ev, 4), 8);
}

static void test_decoder_controls(void **state) {
        Gx *gx = *state;
        struct virtio_video_query_control q = {
                .hdr = hdr(VIRTIO_VIDEO_CMD_QUERY_CONTROL, 0),
                .control = cpu_to_le32(VIRTIO_VIDEO_CONTROL_PROFILE),
                .format = cpu_to_le32(VIDEO_FORMAT_FWHT),
        };
        struct virtio_video_get_control g = {
                .hdr = hdr(VIRTIO_VIDEO_CMD_GET_CONTROL, 9),
                .control = cpu_to_le32(VIRTIO_VIDEO_CONTROL_BITRATE),
        };

        assert_int_equal(rtype(req_send(gx, &q, sizeof(q))), VIRTIO_VIDEO_RESP_ERR_UNSUPPORTED_CONTROL);
        assert_int_equal(rtype(stream_create(gx, 9, VIDEO_FORMAT_FWHT, 0)), VIRTIO_VIDEO_RESP_OK_NODATA);
        assert_int_equal(rtype(req_send(gx, &g, sizeof(g))), VIRTIO_VIDEO_RESP_ERR_UNSUPPORTED_CONTROL);
}

static void test_encoder_controls_and_encode(void **state) {
        Gx *gx = *state;
        struct virtio_video_get_control g = {
                .hdr = hdr(VIRTIO_VIDEO_CMD_GET_CONTROL, 1),
                .control = cpu_to_le32(VIRTIO_VIDEO_CONTROL_BITRATE),
        };
        struct virtio_video_set_control s = {
                .hdr = hdr(VIRTIO_VIDEO_CMD_SET_CONTROL, 1),
                .control = cpu_to_le32(VIRTIO_VIDEO_CONTROL_BITRATE),
                .value = cpu_to_le32(123456),
        };
        Req *r, *in, *out;

        assert_int_equal(video_model_role(gx->model), VIDEO_ROLE_ENCODER);
        assert_int_equal(rtype(stream_create(gx, 1, VIDEO_FORMAT_FWHT, 0)), VIRTIO_VIDEO_RESP_OK_NODATA);
        assert_int_equal(rtype(req_send(gx, &s, sizeof(s))), VIRTIO_VIDEO_RESP_OK_NODATA);
        r = req_send(gx, &g, sizeof(g));
        assert_int_equal(rtype(r), VIRTIO_VIDEO_RESP_OK_GET_CONTROL);
        assert_int_equal(r->len, 16);
        assert_int_equal(rd32(r, 8), 123456);
        s.control = cpu_to_le32(VIRTIO_VIDEO_CONTROL_FORCE_KEYFRAME);
        assert_int_equal(rtype(req_send(gx, &s, 16)), VIRTIO_VIDEO_RESP_OK_NODATA);
        g.control = cpu_to_le32(VIRTIO_VIDEO_CONTROL_FORCE_KEYFRAME);
        assert_int_equal(rtype(req_send(gx, &g, sizeof(g))), VIRTIO_VIDEO_RESP_ERR_UNSUPPORTED_CONTROL);
        s.control = cpu_to_le32(VIRTIO_VIDEO_CONTROL_BITRATE_MODE);
        s.value = cpu_to_le32(5);
        assert_int_equal(rtype(req_send(gx, &s, sizeof(s))), VIRTIO_VIDEO_RESP_ERR_INVALID_PARAMETER);
        s.control = cpu_to_le32(VIRTIO_VIDEO_CONTROL_PROFILE);
        s.value = cpu_to_le32(0x100);
        assert_int_equal(rtype(req_send(gx, &s, sizeof(s))), VIRTIO_VIDEO_RESP_ERR_UNSUPPORTED_CONTROL);

        /* 16x8 NV12 in, one frame out with its timestamp and size */
        struct virtio_video_set_params_ext sp = {
                .hdr = hdr(VIRTIO_VIDEO_CMD_SET_PARAMS_EXT, 1),
                .params.base.queue_type = cpu_to_le32(VIRTIO_VIDEO_QUEUE_TYPE_INPUT),
                .params.base.format = cpu_to_le32(VIDEO_FORMAT_NV12),
                .params.base.frame_width = cpu_to_le32(16),
                .params.base.frame_height = cpu_to_le32(8),
                .params.base.num_planes = cpu_to_le32(1),
        };
        assert_int_equal(rtype(req_send(gx, &sp, sizeof(sp))), VIRTIO_VIDEO_RESP_OK_NODATA);
        r = cmd_queue_op(gx, VIRTIO_VIDEO_CMD_GET_PARAMS_EXT, 1, VIDEO_QUEUE_INPUT);
        assert_int_equal(rd32(r, 8 + 48), 192);
        uint64_t gin = guest_alloc(gx, 192), gout = guest_alloc(gx, 4096);
        memset(host(gx, gin), 0x42, 192);
        assert_int_equal(rtype(resource_create_at(gx, 1, VIDEO_QUEUE_INPUT, 1, gin, 192, 1)),
                         VIRTIO_VIDEO_RESP_OK_NODATA);
        assert_int_equal(rtype(resource_create_at(gx, 1, VIDEO_QUEUE_OUTPUT, 2, gout, 4096, 1)),
                         VIRTIO_VIDEO_RESP_OK_NODATA);
        in = resource_queue(gx, 1, VIDEO_QUEUE_INPUT, 1, 99, 192);
        out = resource_queue(gx, 1, VIDEO_QUEUE_OUTPUT, 2, 0, 0);
        run(gx);
        assert_int_equal(rtype(in), VIRTIO_VIDEO_RESP_OK_RESOURCE_QUEUE);
        assert_int_equal(rd32(out, 16), VIRTIO_VIDEO_BUFFER_FLAG_IFRAME);
        assert_true(rd64(out, 8) == 99);
        assert_int_equal(rd32(out, 20), 16 + 192);
        assert_memory_equal(host(gx, gout), NULL_FRAME_MAGIC, 4);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_query_capability, setup_decoder, teardown),
                cmocka_unit_test_setup_teardown(test_unknown_and_malformed_are_answered, setup_decoder,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_stream_create_rules, setup_decoder, teardown),
                cmocka_unit_test_setup_teardown(test_params_both_dialects, setup_decoder, teardown),
                cmocka_unit_test_setup_teardown(test_decode_session, setup_decoder, teardown),
                cmocka_unit_test_setup_teardown(test_queue_clear_completes_buffers_before_reply,
                                                setup_decoder, teardown),
                cmocka_unit_test_setup_teardown(test_destroy_all_with_buffers_in_flight, setup_decoder,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_stream_destroy_cancels_everything_first, setup_decoder,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_resource_errors, setup_decoder, teardown),
                cmocka_unit_test_setup_teardown(test_entries_are_capped_per_device, setup_decoder, teardown),
                cmocka_unit_test_setup_teardown(test_reset_drops_held_requests, setup_decoder, teardown),
                cmocka_unit_test_setup_teardown(test_error_event_on_corrupt_stream, setup_decoder, teardown),
                cmocka_unit_test_setup_teardown(test_decoder_controls, setup_decoder, teardown),
                cmocka_unit_test_setup_teardown(test_encoder_controls_and_encode, setup_encoder, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
