/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The video device (device.c) over the real vhost transport: a raw frontend in the test plays QEMU on a
 * socketpair (vhost-user-backend.md §7), then plays the guest driver on split rings in memfd guest memory,
 * with the null backend behind the device. Checks the glue: config space, offered features, responses
 * written into the writable descriptors with the right used length, eventq buffers, pause/resume keeping
 * streams, and a driver reset / disconnect dropping them.
 */
#include <endian.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <systemd/sd-event.h>

#include "backend/backend.h"
#include "backend/null/null-format.h"
#include "common/macro.h"
#include "vhost-guest.h"
#include "vhost/vhost-user-proto.h"
#include "vhost/vhost.h"
#include "video/device.h"
#include "video/virtio-video-proto.h"

#define MIB (1024ULL * 1024ULL)
#define NUM 64
#define NEED_REPLY (VHOST_USER_VERSION | VHOST_USER_NEED_REPLY_MASK)
#define VIDEO_FEATURES \
        (BIT_ULL(VIRTIO_VIDEO_F_RESOURCE_GUEST_PAGES) | BIT_ULL(VIRTIO_VIDEO_F_RESOURCE_NON_CONTIG))

typedef struct T {
        sd_event *e;
        Backend *backend;
        VideoDevice *dev;
        int fe;
        Guest g;
        int kick[2], call[2];
        uint16_t next_desc[2];
        uint16_t last_used[2];
        uint64_t next_buf;
        unsigned n_peer_connected, n_peer_gone;
} T;

static void on_peer(void *userdata, bool connected, bool accepted, const struct ucred *cred) {
        T *t = userdata;

        if (connected)
                t->n_peer_connected++;
        else
                t->n_peer_gone++;
}

static void pump(T *t) {
        for (unsigned i = 0; i < 10000; i++) {
                int r = sd_event_run(t->e, 0);

                assert_true(r >= 0);
                if (r == 0)
                        return;
        }
        fail_msg("event loop never went idle");
}

static void connect_fe(T *t) {
        int sv[2];

        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        t->fe = sv[1];
        assert_int_equal(vhost_dev_serve_fd(video_device_get_vhost(t->dev), sv[0]), 0);
        pump(t);
}

static int setup(void **state) {
        T *t = calloc(1, sizeof(*t));
        VideoDeviceOptions opts = { .peer = on_peer, .max_queue_size = 256 };

        assert_non_null(t);
        opts.userdata = t;
        assert_int_equal(sd_event_new(&t->e), 0);
        assert_int_equal(backend_new("null", NULL, t->e, &t->backend), 0);
        assert_int_equal(video_device_new(t->e, t->backend, &opts, &t->dev), 0);
        assert_int_equal(guest_init(&t->g, MIB, NUM), 0);
        for (unsigned q = 0; q < 2; q++) {
                t->kick[q] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
                t->call[q] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        }
        t->next_buf = GUEST_GPA + GUEST_BUF_OFF;
        connect_fe(t);
        *state = t;
        return 0;
}

static int teardown(void **state) {
        T *t = *state;

        video_device_free(t->dev);
        backend_free(t->backend);
        safe_close(t->fe);
        for (unsigned q = 0; q < 2; q++) {
                close(t->kick[q]);
                close(t->call[q]);
        }
        guest_done(&t->g);
        sd_event_unref(t->e);
        free(t);
        return 0;
}

/* ---- the raw frontend ---- */

static void fe_send(T *t,
                    uint32_t request,
                    uint32_t flags,
                    const void *payload,
                    uint32_t size,
                    const int *fds,
                    unsigned n_fds) {
        uint8_t buf[VHOST_USER_HDR_SIZE + 512];
        union {
                struct cmsghdr align;
                uint8_t b[CMSG_SPACE(sizeof(int) * 4)];
        } control = {};
        struct iovec iov = { .iov_base = buf, .iov_len = VHOST_USER_HDR_SIZE + size };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
        uint32_t h[3] = { htole32(request), htole32(flags), htole32(size) };

        assert_true(size <= 512);
        memcpy(buf, h, sizeof(h));
        if (size > 0)
                memcpy(buf + VHOST_USER_HDR_SIZE, payload, size);
        if (n_fds > 0) {
                struct cmsghdr *c;

                mh.msg_control = &control;
                mh.msg_controllen = CMSG_SPACE(sizeof(int) * n_fds);
                c = CMSG_FIRSTHDR(&mh);
                c->cmsg_level = SOL_SOCKET;
                c->cmsg_type = SCM_RIGHTS;
                c->cmsg_len = CMSG_LEN(sizeof(int) * n_fds);
                memcpy(CMSG_DATA(c), fds, sizeof(int) * n_fds);
        }
        assert_int_equal(sendmsg(t->fe, &mh, MSG_NOSIGNAL), (ssize_t) iov.iov_len);
        pump(t);
}

static uint32_t fe_recv(T *t, uint32_t request, void *payload, size_t max) {
        uint32_t h[3];

        pump(t);
        assert_int_equal(recv(t->fe, h, sizeof(h), MSG_DONTWAIT), (ssize_t) sizeof(h));
        assert_int_equal(le32toh(h[0]), request);
        assert_true(le32toh(h[2]) <= max);
        if (h[2] > 0)
                assert_int_equal(recv(t->fe, payload, le32toh(h[2]), MSG_DONTWAIT), (ssize_t) le32toh(h[2]));
        return le32toh(h[2]);
}

static uint64_t fe_call_u64(T *t, uint32_t request, uint64_t v, const int *fds, unsigned n_fds) {
        uint64_t r;

        v = htole64(v);
        fe_send(t, request, NEED_REPLY, &v, 8, fds, n_fds);
        assert_int_equal(fe_recv(t, request, &r, 8), 8);
        return le64toh(r);
}

static void fe_state(T *t, uint32_t request, uint32_t index, uint32_t num) {
        struct vhost_user_vring_state s = { htole32(index), htole32(num) };
        uint64_t r;

        fe_send(t, request, NEED_REPLY, &s, sizeof(s), NULL, 0);
        assert_int_equal(fe_recv(t, request, &r, 8), 8);
        assert_int_equal(r, 0);
}

static uint64_t ring_gpa(uint32_t q, uint64_t off) {
        return GUEST_GPA + 0x4000ULL * q + off;
}

static void fe_start_ring(T *t, uint32_t q, uint16_t base) {
        struct vhost_user_vring_addr a = {
                .index = htole32(q),
                .desc_user_addr = htole64(guest_ua(ring_gpa(q, GUEST_DESC_OFF))),
                .used_user_addr = htole64(guest_ua(ring_gpa(q, GUEST_USED_OFF))),
                .avail_user_addr = htole64(guest_ua(ring_gpa(q, GUEST_AVAIL_OFF))),
        };
        uint64_t r;

        fe_state(t, VHOST_USER_SET_VRING_NUM, q, NUM);
        fe_state(t, VHOST_USER_SET_VRING_BASE, q, base);
        fe_send(t, VHOST_USER_SET_VRING_ADDR, NEED_REPLY, &a, sizeof(a), NULL, 0);
        assert_int_equal(fe_recv(t, VHOST_USER_SET_VRING_ADDR, &r, 8), 8);
        assert_int_equal(fe_call_u64(t, VHOST_USER_SET_VRING_KICK, q, &t->kick[q], 1), 0);
        assert_int_equal(fe_call_u64(t, VHOST_USER_SET_VRING_CALL, q, &t->call[q], 1), 0);
        fe_state(t, VHOST_USER_SET_VRING_ENABLE, q, 1);
}

static void fe_set_features_and_mem(T *t) {
        struct {
                struct vhost_user_mem_table_hdr h;
                struct vhost_user_mem_region r;
        } mt = { { htole32(1), 0 }, guest_region(&t->g) };
        uint64_t r;

        assert_int_equal(fe_call_u64(t, VHOST_USER_SET_FEATURES,
                                     BIT_ULL(VIRTIO_F_VERSION_1) | BIT_ULL(VHOST_USER_F_PROTOCOL_FEATURES) |
                                             BIT_ULL(VIRTIO_RING_F_INDIRECT_DESC) | VIDEO_FEATURES,
                                     NULL, 0),
                         0);
        fe_send(t, VHOST_USER_SET_MEM_TABLE, NEED_REPLY, &mt, sizeof(mt), &t->g.memfd, 1);
        assert_int_equal(fe_recv(t, VHOST_USER_SET_MEM_TABLE, &r, 8), 8);
        assert_int_equal(r, 0);
}

/* QEMU's order (§2.1, §2.3) up to both rings running; returns the offered features. */
static uint64_t fe_start(T *t) {
        uint64_t features, v = htole64(VHOST_USER_BACKEND_PROTOCOL_FEATURES);

        fe_send(t, VHOST_USER_GET_FEATURES, VHOST_USER_VERSION, NULL, 0, NULL, 0);
        assert_int_equal(fe_recv(t, VHOST_USER_GET_FEATURES, &features, 8), 8);
        fe_send(t, VHOST_USER_SET_PROTOCOL_FEATURES, VHOST_USER_VERSION, &v, 8, NULL, 0);
        fe_send(t, VHOST_USER_SET_OWNER, VHOST_USER_VERSION, NULL, 0, NULL, 0);
        fe_set_features_and_mem(t);
        fe_start_ring(t, 0, 0);
        fe_start_ring(t, 1, 0);
        return le64toh(features);
}

/* ---- the guest driver ---- */

static uint64_t guest_buf(T *t, size_t len) {
        uint64_t gpa = t->next_buf;

        t->next_buf += (len + 0xfff) & ~0xfffULL;
        assert_true(t->next_buf <= GUEST_GPA + t->g.size);
        return gpa;
}

/* Publishes a chain of readable segments then one writable buffer; returns {head, response gpa}. */
typedef struct Sent {
        uint16_t head;
        uint64_t resp;
} Sent;

static Sent
guest_chain(T *t, unsigned q, const void *const *rd, const size_t *rd_len, unsigned n_rd, size_t wr_len) {
        uint64_t table = ring_gpa(q, GUEST_DESC_OFF), avail = ring_gpa(q, GUEST_AVAIL_OFF);
        Sent s = { .head = t->next_desc[q] };
        uint16_t idx;

        for (unsigned i = 0; i < n_rd + 1; i++) {
                uint16_t d = t->next_desc[q]++;
                assert_true(t->next_desc[q] <= NUM); /* the tests stay within one pass of the table */
                if (i < n_rd) {
                        uint64_t gpa = guest_buf(t, rd_len[i]);
                        memcpy(guest_ptr(&t->g, gpa), rd[i], rd_len[i]);
                        guest_set_desc(&t->g, table, d, gpa, (uint32_t) rd_len[i], VRING_DESC_F_NEXT,
                                       (uint16_t) (d + 1));
                } else {
                        s.resp = guest_buf(t, wr_len);
                        memset(guest_ptr(&t->g, s.resp), 0, wr_len);
                        guest_set_desc(&t->g, table, d, s.resp, (uint32_t) wr_len, VRING_DESC_F_WRITE, 0);
                }
        }
        idx = le16toh(*guest_u16(&t->g, avail + 2));
        *guest_u16(&t->g, avail + 4 + 2 * (idx % NUM)) = htole16(s.head);
        __atomic_thread_fence(__ATOMIC_RELEASE);
        *guest_u16(&t->g, avail + 2) = htole16((uint16_t) (idx + 1));
        return s;
}

static void kick(T *t, unsigned q) {
        uint64_t one = 1;

        assert_int_equal(write(t->kick[q], &one, 8), 8);
        pump(t);
}

static Sent command(T *t, const void *req, size_t len, size_t wr_len) {
        const void *rd[1] = { req };
        Sent s = guest_chain(t, 0, rd, &len, 1, wr_len);

        kick(t, 0);
        return s;
}

/* The used length the device reported for `head` on queue q, or -1 when not completed. */
static int64_t used_len(T *t, unsigned q, uint16_t head) {
        uint64_t used = ring_gpa(q, GUEST_USED_OFF);
        uint16_t n = le16toh(__atomic_load_n(guest_u16(&t->g, used + 2), __ATOMIC_ACQUIRE));

        for (uint16_t i = 0; i < n; i++) {
                struct vring_used_elem e;
                memcpy(&e, (uint8_t *) guest_ptr(&t->g, used) + 4 + 8 * (i % NUM), sizeof(e));
                if (le32toh(e.id) == head)
                        return le32toh(e.len);
        }
        return -1;
}

static uint32_t resp32(T *t, Sent s, size_t off) {
        uint32_t v;

        memcpy(&v, (uint8_t *) guest_ptr(&t->g, s.resp) + off, 4);
        return le32toh(v);
}

static bool called(T *t, unsigned q) {
        uint64_t v;

        return read(t->call[q], &v, 8) == 8;
}

static struct virtio_video_cmd_hdr hdr(uint32_t type, uint32_t stream_id) {
        return (struct virtio_video_cmd_hdr){ cpu_to_le32(type), cpu_to_le32(stream_id) };
}

static Sent stream_create(T *t, uint32_t id) {
        struct virtio_video_stream_create req = {
                .hdr = hdr(VIRTIO_VIDEO_CMD_STREAM_CREATE, id),
                .coded_format = cpu_to_le32(VIDEO_FORMAT_FWHT),
        };
        return command(t, &req, sizeof(req), 8);
}

static Sent get_params_ext(T *t, uint32_t id, uint32_t queue_type) {
        struct virtio_video_get_params req = {
                .hdr = hdr(VIRTIO_VIDEO_CMD_GET_PARAMS_EXT, id),
                .queue_type = cpu_to_le32(queue_type),
        };
        return command(t, &req, sizeof(req), 128);
}

/* ---- tests ---- */

static void test_config_and_features(void **state) {
        T *t = *state;
        struct vhost_user_config_hdr c = { 0, htole32(44), 0 };
        uint8_t req[12 + 44] = {}, buf[12 + 44];
        struct virtio_video_config cfg;
        VideoDeviceStats st;

        assert_int_equal(video_device_virtio_id(t->dev), VIDEO_DEVICE_ID_DECODER);
        assert_int_equal(t->n_peer_connected, 1);
        uint64_t f = fe_start(t);
        assert_true((f & VIDEO_FEATURES) == VIDEO_FEATURES);
        assert_false(f & BIT_ULL(VIRTIO_VIDEO_F_RESOURCE_VIRTIO_OBJECT));

        memcpy(req, &c, sizeof(c));
        fe_send(t, VHOST_USER_GET_CONFIG, VHOST_USER_VERSION, req, sizeof(req), NULL, 0);
        assert_int_equal(fe_recv(t, VHOST_USER_GET_CONFIG, buf, sizeof(buf)), sizeof(buf));
        memcpy(&cfg, buf + 12, sizeof(cfg));
        assert_int_equal(le32_to_cpu(cfg.version), 0);
        assert_int_equal(le32_to_cpu(cfg.max_caps_length), 1024);
        assert_int_equal(le32_to_cpu(cfg.max_resp_length), 1024);
        assert_string_equal((const char *) cfg.device_name, "null");
        video_device_get_stats(t->dev, &st);
        assert_int_equal(st.connections, 1);
}

static void test_commands_through_the_rings(void **state) {
        T *t = *state;
        struct virtio_video_query_capability qc = {
                .hdr = hdr(VIRTIO_VIDEO_CMD_QUERY_CAPABILITY, 0),
                .queue_type = cpu_to_le32(VIRTIO_VIDEO_QUEUE_TYPE_INPUT),
        };
        Sent s, ev, in;

        fe_start(t);
        /* the driver's QUERY_CAPABILITY: 16 readable bytes, max_caps_length writable */
        s = command(t, &qc, sizeof(qc), 1024);
        assert_int_equal(used_len(t, 0, s.head), 96);
        assert_int_equal(resp32(t, s, 0), VIRTIO_VIDEO_RESP_OK_QUERY_CAPABILITY);
        assert_int_equal(resp32(t, s, 8), 1);
        assert_true(called(t, 0));
        /* an unknown command still gets an 8-byte answer */
        struct virtio_video_cmd_hdr bad = hdr(0x1ff, 3);
        s = command(t, &bad, sizeof(bad), 64);
        assert_int_equal(used_len(t, 0, s.head), 8);
        assert_int_equal(resp32(t, s, 0), VIRTIO_VIDEO_RESP_ERR_INVALID_OPERATION);

        /* eventq: two buffers pre-posted, as the driver does at probe */
        ev = guest_chain(t, 1, NULL, NULL, 0, 8);
        Sent ev2 = guest_chain(t, 1, NULL, NULL, 0, 8);
        kick(t, 1);
        assert_int_equal(used_len(t, 1, ev.head), -1);

        s = stream_create(t, 1);
        assert_int_equal(resp32(t, s, 0), VIRTIO_VIDEO_RESP_OK_NODATA);
        s = get_params_ext(t, 1, VIRTIO_VIDEO_QUEUE_TYPE_OUTPUT);
        assert_int_equal(used_len(t, 0, s.head), 128);
        assert_int_equal(resp32(t, s, 8), VIRTIO_VIDEO_QUEUE_TYPE_OUTPUT);

        /* RESOURCE_CREATE as DRV sends it: entries in a second readable descriptor */
        uint64_t data = guest_buf(t, 8192);
        size_t len = NULL_FRAME_HEADER_SIZE + null_frame_payload_size(16, 8);
        null_frame_write_header(guest_ptr(&t->g, data), 16, 8, 0);
        memset((uint8_t *) guest_ptr(&t->g, data) + 16, 0x80, len - 16);
        struct virtio_video_resource_create rc = {
                .hdr = hdr(VIRTIO_VIDEO_CMD_RESOURCE_CREATE, 1),
                .queue_type = cpu_to_le32(VIRTIO_VIDEO_QUEUE_TYPE_INPUT),
                .resource_id = cpu_to_le32(1),
                .planes_layout = cpu_to_le32(VIRTIO_VIDEO_PLANES_LAYOUT_SINGLE_BUFFER),
                .num_planes = cpu_to_le32(1),
                .num_entries[0] = cpu_to_le32(1),
        };
        struct virtio_video_mem_entry e = { cpu_to_le64(data), cpu_to_le32(8192) };
        const void *rd[2] = { &rc, &e };
        size_t rd_len[2] = { sizeof(rc), sizeof(e) };
        s = guest_chain(t, 0, rd, rd_len, 2, 8);
        kick(t, 0);
        assert_int_equal(resp32(t, s, 0), VIRTIO_VIDEO_RESP_OK_NODATA);

        struct virtio_video_resource_queue rq = {
                .hdr = hdr(VIRTIO_VIDEO_CMD_RESOURCE_QUEUE, 1),
                .queue_type = cpu_to_le32(VIRTIO_VIDEO_QUEUE_TYPE_INPUT),
                .resource_id = cpu_to_le32(1),
                .timestamp = cpu_to_le64(1000),
                .num_data_sizes = cpu_to_le32(1),
                .data_sizes[0] = cpu_to_le32((uint32_t) len),
        };
        in = command(t, &rq, sizeof(rq), 24);
        pump(t);
        /* the header was parsed: the resolution event went out on the first event buffer */
        assert_int_equal(used_len(t, 1, ev.head), 8);
        assert_int_equal(resp32(t, ev, 0), VIRTIO_VIDEO_EVENT_DECODER_RESOLUTION_CHANGED);
        assert_int_equal(resp32(t, ev, 4), 1);
        assert_int_equal(used_len(t, 1, ev2.head), -1);
        assert_true(called(t, 1));
        /* the input was consumed: deferred 24-byte completion */
        assert_int_equal(used_len(t, 0, in.head), 24);
        assert_int_equal(resp32(t, in, 0), VIRTIO_VIDEO_RESP_OK_RESOURCE_QUEUE);
        assert_int_equal(resp32(t, in, 8), 1000);
}

static void test_pause_resume_keeps_streams_reset_drops_them(void **state) {
        T *t = *state;
        struct vhost_user_vring_state vs = { htole32(0), 0 };
        VideoDeviceStats st;
        Sent s;

        fe_start(t);
        s = stream_create(t, 7);
        assert_int_equal(resp32(t, s, 0), VIRTIO_VIDEO_RESP_OK_NODATA);

        /* VM pause: disable + GET_VRING_BASE on both rings, then resume with the same state */
        uint16_t base[2];
        for (uint32_t q = 0; q < 2; q++) {
                fe_state(t, VHOST_USER_SET_VRING_ENABLE, q, 0);
                vs = (struct vhost_user_vring_state){ htole32(q), 0 };
                fe_send(t, VHOST_USER_GET_VRING_BASE, VHOST_USER_VERSION, &vs, sizeof(vs), NULL, 0);
                assert_int_equal(fe_recv(t, VHOST_USER_GET_VRING_BASE, &vs, sizeof(vs)), 8);
                base[q] = (uint16_t) le32toh(vs.num);
        }
        assert_int_equal(base[0], 1);
        fe_set_features_and_mem(t);
        fe_start_ring(t, 0, base[0]);
        fe_start_ring(t, 1, base[1]);
        s = get_params_ext(t, 7, VIRTIO_VIDEO_QUEUE_TYPE_INPUT);
        assert_int_equal(resp32(t, s, 0), VIRTIO_VIDEO_RESP_OK_GET_PARAMS);
        video_device_get_stats(t->dev, &st);
        assert_int_equal(st.active_streams, 1);

        /* frontend gone: everything dropped; a new frontend starts from scratch */
        t->fe = safe_close(t->fe);
        pump(t);
        assert_int_equal(t->n_peer_gone, 1);
        video_device_get_stats(t->dev, &st);
        assert_int_equal(st.active_streams, 0);
        assert_int_equal(st.disconnects, 1);
        assert_int_equal(st.streams_created, 1);
}

static void test_short_writable_buffers(void **state) {
        T *t = *state;
        Sent s, tiny, ev;

        fe_start(t);
        s = stream_create(t, 2);
        assert_int_equal(resp32(t, s, 0), VIRTIO_VIDEO_RESP_OK_NODATA);
        /* a 128-byte answer into 8 writable bytes: truncated, used length says so */
        struct virtio_video_get_params req = {
                .hdr = hdr(VIRTIO_VIDEO_CMD_GET_PARAMS_EXT, 2),
                .queue_type = cpu_to_le32(VIRTIO_VIDEO_QUEUE_TYPE_OUTPUT),
        };
        s = command(t, &req, sizeof(req), 8);
        assert_int_equal(used_len(t, 0, s.head), 8);
        assert_int_equal(resp32(t, s, 0), VIRTIO_VIDEO_RESP_OK_GET_PARAMS);
        /* a zero-length writable descriptor: the chain is still completed, with nothing written */
        const void *rd[1] = { &req };
        size_t rd_len[1] = { sizeof(req) };
        s = guest_chain(t, 0, rd, rd_len, 1, 0);
        kick(t, 0);
        assert_int_equal(used_len(t, 0, s.head), 0);

        /* an event buffer too small for an event is given back empty; the event waits for a real one */
        tiny = guest_chain(t, 1, NULL, NULL, 0, 4);
        kick(t, 1);
        uint64_t data = guest_buf(t, 4096);
        uint8_t junk[64];
        memset(junk, 0x5a, sizeof(junk));
        memcpy(guest_ptr(&t->g, data), junk, sizeof(junk));
        struct virtio_video_resource_create rc = {
                .hdr = hdr(VIRTIO_VIDEO_CMD_RESOURCE_CREATE, 2),
                .queue_type = cpu_to_le32(VIRTIO_VIDEO_QUEUE_TYPE_INPUT),
                .resource_id = cpu_to_le32(1),
                .planes_layout = cpu_to_le32(VIRTIO_VIDEO_PLANES_LAYOUT_SINGLE_BUFFER),
                .num_planes = cpu_to_le32(1),
                .num_entries[0] = cpu_to_le32(1),
        };
        struct virtio_video_mem_entry e = { cpu_to_le64(data), cpu_to_le32(4096) };
        const void *rd2[2] = { &rc, &e };
        size_t rd2_len[2] = { sizeof(rc), sizeof(e) };
        s = guest_chain(t, 0, rd2, rd2_len, 2, 8);
        kick(t, 0);
        assert_int_equal(resp32(t, s, 0), VIRTIO_VIDEO_RESP_OK_NODATA);
        struct virtio_video_resource_queue rq = {
                .hdr = hdr(VIRTIO_VIDEO_CMD_RESOURCE_QUEUE, 2),
                .queue_type = cpu_to_le32(VIRTIO_VIDEO_QUEUE_TYPE_INPUT),
                .resource_id = cpu_to_le32(1),
                .num_data_sizes = cpu_to_le32(1),
                .data_sizes[0] = cpu_to_le32(sizeof(junk)),
        };
        s = command(t, &rq, sizeof(rq), 24);
        pump(t);
        assert_int_equal(resp32(t, s, 16), VIRTIO_VIDEO_BUFFER_FLAG_ERR); /* corrupt stream */
        assert_int_equal(used_len(t, 1, tiny.head), 0);
        ev = guest_chain(t, 1, NULL, NULL, 0, 8);
        kick(t, 1);
        assert_int_equal(used_len(t, 1, ev.head), 8);
        assert_int_equal(resp32(t, ev, 0), VIRTIO_VIDEO_EVENT_ERROR);
        assert_int_equal(resp32(t, ev, 4), 2);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_config_and_features, setup, teardown),
                cmocka_unit_test_setup_teardown(test_commands_through_the_rings, setup, teardown),
                cmocka_unit_test_setup_teardown(test_pause_resume_keeps_streams_reset_drops_them, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_short_writable_buffers, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
