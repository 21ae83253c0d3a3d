/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The transport over a real socket: a minimal raw frontend in the test (socketpair, one sendmsg per
 * message with its fds), the backend stepped with sd_event_run(e, 0) (vhost-user-backend.md §7).
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>
#include <systemd/sd-event.h>

#include "common/iov.h"
#include "common/macro.h"
#include "vhost-guest.h"
#include "vhost/vhost-user-proto.h"
#include "vhost/vhost.h"

#define MIB (1024ULL * 1024ULL)
#define NUM 16
#define CONFIG_SIZE 44
#define DEVICE_FEATURES BIT_ULL(0)
#define NEED_REPLY (VHOST_USER_VERSION | VHOST_USER_NEED_REPLY_MASK)
#define BUF(n) (GUEST_GPA + GUEST_BUF_OFF + 0x1000ULL * (n))

typedef struct T {
        unsigned fds_before; /* open fds before the fixture: every fd the backend got is closed again */
        sd_event *e;
        VhostDev *d;
        int fe; /* frontend end of the connection */
        Guest g;
        int kick[2], call[2], err[2];

        /* What the device saw. */
        unsigned n_reset, n_connect, n_refused, n_disconnect, n_elems, n_mem_changed;
        unsigned n_started[2], n_stopped[2];
        uint64_t device_features;
        bool hold; /* keep elements instead of completing them */
        VhostElem *held[NUM];
        unsigned n_held;
        uint8_t config[CONFIG_SIZE];
} T;

/* ---- the device ---- */

static void dev_handle_elem(void *userdata, VhostElem *e) {
        T *t = userdata;
        char req[8] = {};
        unsigned q;

        t->n_elems++;
        if (t->hold) {
                assert_true(t->n_held < NUM);
                t->held[t->n_held++] = e;
                return;
        }
        iov_to_buf(e->rd, e->n_rd, 0, req, sizeof(req) - 1);
        assert_string_equal(req, "REQUEST");
        buf_to_iov(e->wr, e->n_wr, 0, "RESPONSE", 8);
        q = e->queue;
        vhost_dev_push(t->d, e, 8); /* frees e */
        vhost_dev_notify(t->d, q);
}

static int dev_get_config(void *userdata, uint32_t offset, void *buf, uint32_t size) {
        T *t = userdata;

        memcpy(buf, t->config + offset, size);
        return 0;
}

static int dev_set_config(void *userdata, uint32_t offset, const void *buf, uint32_t size) {
        return -EPERM; /* virtio-video has no writable config */
}

static void dev_set_features(void *userdata, uint64_t f) {
        ((T *) userdata)->device_features = f;
}

static void dev_reset(void *userdata) {
        T *t = userdata;

        t->n_reset++;
        for (unsigned i = 0; i < t->n_held; i++)
                vhost_elem_free(t->held[i]);
        t->n_held = 0;
}

static void dev_queue_state(void *userdata, unsigned q, bool started) {
        T *t = userdata;

        assert_true(q < 2);
        if (started)
                t->n_started[q]++;
        else
                t->n_stopped[q]++;
}

static void dev_peer(void *userdata, bool connected, bool accepted, const struct ucred *cred) {
        T *t = userdata;

        assert_non_null(cred);
        if (!connected)
                t->n_disconnect++;
        else if (accepted)
                t->n_connect++;
        else
                t->n_refused++;
}

static void dev_memory_changed(void *userdata) {
        ((T *) userdata)->n_mem_changed++;
}

static const VhostDeviceOps ops = {
        .handle_elem = dev_handle_elem,
        .get_config = dev_get_config,
        .set_config = dev_set_config,
        .set_features = dev_set_features,
        .reset = dev_reset,
        .queue_state = dev_queue_state,
        .peer = dev_peer,
        .memory_changed = dev_memory_changed,
};

/* ---- fixture ---- */

static void pump(T *t) {
        /* Run until nothing is pending; bounded so that a livelock fails instead of hanging. */
        for (unsigned i = 0; i < 1000; i++) {
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
        assert_int_equal(vhost_dev_serve_fd(t->d, sv[0]), 0);
        assert_true(vhost_dev_is_connected(t->d));
}

static unsigned count_fds(void) {
        unsigned n = 0;

        for (int fd = 0; fd < 1024; fd++)
                if (fcntl(fd, F_GETFD) >= 0)
                        n++;
        return n;
}

static int setup_with(void **state, const VhostDevConfig *cfg) {
        T *t = calloc(1, sizeof(*t));

        assert_non_null(t);
        t->fds_before = count_fds();
        for (unsigned i = 0; i < CONFIG_SIZE; i++)
                t->config[i] = (uint8_t) (i * 7 + 1);
        assert_int_equal(sd_event_new(&t->e), 0);
        assert_int_equal(vhost_dev_new(t->e, cfg, &ops, t, &t->d), 0);
        assert_int_equal(guest_init(&t->g, MIB, NUM), 0);
        for (unsigned q = 0; q < 2; q++) {
                t->kick[q] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
                t->call[q] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
                t->err[q] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        }
        t->fe = -1;
        *state = t;
        return 0;
}

static const VhostDevConfig default_config = {
        .num_queues = 2,
        .max_queue_size = 1024,
        .device_features = DEVICE_FEATURES,
        .config_size = CONFIG_SIZE,
};

static int setup(void **state) {
        int r = setup_with(state, &default_config);

        connect_fe(*state);
        pump(*state);
        return r;
}

static int teardown(void **state) {
        T *t = *state;

        vhost_dev_free(t->d);
        for (unsigned i = 0; i < t->n_held; i++)
                vhost_elem_free(t->held[i]);
        safe_close(t->fe);
        for (unsigned q = 0; q < 2; q++) {
                close(t->kick[q]);
                close(t->call[q]);
                close(t->err[q]);
        }
        guest_done(&t->g);
        sd_event_unref(t->e);
        /* Memory fds, kick/call/err fds, unexpected fds and sockets: none left behind. */
        assert_int_equal(count_fds(), t->fds_before);
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
        uint8_t buf[VHOST_USER_HDR_SIZE + VHOST_USER_MAX_PAYLOAD + 64];
        union {
                struct cmsghdr align;
                uint8_t b[CMSG_SPACE(sizeof(int) * 16)];
        } control = {};
        struct iovec iov = { .iov_base = buf, .iov_len = VHOST_USER_HDR_SIZE + size };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
        uint32_t h[3] = { htole32(request), htole32(flags), htole32(size) };

        assert_true(size <= sizeof(buf) - VHOST_USER_HDR_SIZE);
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

static void fe_send_u64(T *t, uint32_t request, uint32_t flags, uint64_t v, const int *fds, unsigned n_fds) {
        v = htole64(v);
        fe_send(t, request, flags, &v, 8, fds, n_fds);
}

static void fe_send_state(T *t, uint32_t request, uint32_t flags, uint32_t index, uint32_t num) {
        struct vhost_user_vring_state s = { htole32(index), htole32(num) };

        fe_send(t, request, flags, &s, sizeof(s), NULL, 0);
}

/* Reads one reply; asserts its request id and flags == 0x5. Returns the payload size. */
static uint32_t fe_recv(T *t, uint32_t request, void *payload, size_t max) {
        uint32_t h[3];
        ssize_t n;

        pump(t);
        n = recv(t->fe, h, sizeof(h), MSG_DONTWAIT);
        assert_int_equal(n, (ssize_t) sizeof(h));
        assert_int_equal(le32toh(h[0]), request);
        assert_int_equal(le32toh(h[1]), VHOST_USER_REPLY_FLAGS);
        assert_true(le32toh(h[2]) <= max);
        if (h[2] > 0)
                assert_int_equal(recv(t->fe, payload, le32toh(h[2]), MSG_DONTWAIT), (ssize_t) le32toh(h[2]));
        return le32toh(h[2]);
}

static uint64_t fe_recv_u64(T *t, uint32_t request) {
        uint64_t v;

        assert_int_equal(fe_recv(t, request, &v, sizeof(v)), 8);
        return le64toh(v);
}

static void fe_expect_nothing(T *t) {
        uint8_t b;

        pump(t);
        assert_int_equal(recv(t->fe, &b, 1, MSG_DONTWAIT), -1);
        assert_int_equal(errno, EAGAIN);
}

/* The backend closed the connection and tore everything down. */
static void fe_expect_closed(T *t) {
        uint8_t b[64];

        ssize_t n;

        pump(t);
        /* EOF, or a reset when the backend closed with our unread bytes still queued. */
        n = recv(t->fe, b, sizeof(b), MSG_DONTWAIT);
        assert_true(n == 0 || (n < 0 && errno == ECONNRESET));
        assert_false(vhost_dev_is_connected(t->d));
        assert_int_equal(t->n_disconnect, 1);
        assert_true(t->n_reset >= 1);
        t->fe = safe_close(t->fe);
}

static uint64_t fe_get_features(T *t) {
        fe_send(t, VHOST_USER_GET_FEATURES, VHOST_USER_VERSION, NULL, 0, NULL, 0);
        return fe_recv_u64(t, VHOST_USER_GET_FEATURES);
}

/* QEMU's init order (§2.1), with REPLY_ACK from SET_PROTOCOL_FEATURES on. */
static void fe_init(T *t) {
        assert_true(fe_get_features(t) == (VHOST_USER_BACKEND_TRANSPORT_FEATURES | DEVICE_FEATURES));
        fe_send(t, VHOST_USER_GET_PROTOCOL_FEATURES, VHOST_USER_VERSION, NULL, 0, NULL, 0);
        assert_true(fe_recv_u64(t, VHOST_USER_GET_PROTOCOL_FEATURES) ==
                    VHOST_USER_BACKEND_PROTOCOL_FEATURES);
        fe_send_u64(t, VHOST_USER_SET_PROTOCOL_FEATURES, VHOST_USER_VERSION,
                    VHOST_USER_BACKEND_PROTOCOL_FEATURES, NULL, 0);
        fe_expect_nothing(t);
        fe_send(t, VHOST_USER_GET_QUEUE_NUM, VHOST_USER_VERSION, NULL, 0, NULL, 0);
        assert_int_equal(fe_recv_u64(t, VHOST_USER_GET_QUEUE_NUM), 2);
        fe_send(t, VHOST_USER_GET_MAX_MEM_SLOTS, VHOST_USER_VERSION, NULL, 0, NULL, 0);
        assert_int_equal(fe_recv_u64(t, VHOST_USER_GET_MAX_MEM_SLOTS), 509);
        fe_send(t, VHOST_USER_SET_OWNER, NEED_REPLY, NULL, 0, NULL, 0);
        assert_int_equal(fe_recv_u64(t, VHOST_USER_SET_OWNER), 0);
        assert_true(fe_get_features(t) == (VHOST_USER_BACKEND_TRANSPORT_FEATURES | DEVICE_FEATURES));
        for (uint32_t q = 0; q < 2; q++) {
                fe_send_u64(t, VHOST_USER_SET_VRING_CALL, NEED_REPLY, q, &t->call[q], 1);
                assert_int_equal(fe_recv_u64(t, VHOST_USER_SET_VRING_CALL), 0);
                fe_send_u64(t, VHOST_USER_SET_VRING_ERR, NEED_REPLY, q, &t->err[q], 1);
                assert_int_equal(fe_recv_u64(t, VHOST_USER_SET_VRING_ERR), 0);
        }
}

static void fe_set_features(T *t, uint64_t f) {
        fe_send_u64(t, VHOST_USER_SET_FEATURES, NEED_REPLY, f, NULL, 0);
        assert_int_equal(fe_recv_u64(t, VHOST_USER_SET_FEATURES), 0);
}

static void fe_mem_table(T *t) {
        struct {
                struct vhost_user_mem_table_hdr h;
                struct vhost_user_mem_region r;
        } mt = { { htole32(1), 0 }, guest_region(&t->g) };

        fe_send(t, VHOST_USER_SET_MEM_TABLE, NEED_REPLY, &mt, sizeof(mt), &t->g.memfd, 1);
        assert_int_equal(fe_recv_u64(t, VHOST_USER_SET_MEM_TABLE), 0);
}

static uint64_t ring_gpa(uint32_t q, uint64_t off) {
        return GUEST_GPA + 0x4000ULL * q + off;
}

static void fe_ring_addr(T *t, uint32_t q) {
        struct vhost_user_vring_addr a = {
                .index = htole32(q),
                .desc_user_addr = htole64(guest_ua(ring_gpa(q, GUEST_DESC_OFF))),
                .used_user_addr = htole64(guest_ua(ring_gpa(q, GUEST_USED_OFF))),
                .avail_user_addr = htole64(guest_ua(ring_gpa(q, GUEST_AVAIL_OFF))),
        };

        fe_send(t, VHOST_USER_SET_VRING_ADDR, NEED_REPLY, &a, sizeof(a), NULL, 0);
        assert_int_equal(fe_recv_u64(t, VHOST_USER_SET_VRING_ADDR), 0);
}

/* §2.3 for one queue, then enable. */
static void fe_start_ring(T *t, uint32_t q, uint16_t base) {
        fe_send_state(t, VHOST_USER_SET_VRING_NUM, NEED_REPLY, q, NUM);
        assert_int_equal(fe_recv_u64(t, VHOST_USER_SET_VRING_NUM), 0);
        fe_send_state(t, VHOST_USER_SET_VRING_BASE, NEED_REPLY, q, base);
        assert_int_equal(fe_recv_u64(t, VHOST_USER_SET_VRING_BASE), 0);
        fe_ring_addr(t, q);
        fe_send_u64(t, VHOST_USER_SET_VRING_KICK, NEED_REPLY, q, &t->kick[q], 1);
        assert_int_equal(fe_recv_u64(t, VHOST_USER_SET_VRING_KICK), 0);
        fe_send_u64(t, VHOST_USER_SET_VRING_CALL, NEED_REPLY, q, &t->call[q], 1);
        assert_int_equal(fe_recv_u64(t, VHOST_USER_SET_VRING_CALL), 0);
}

static void fe_enable(T *t, uint32_t q, bool on) {
        fe_send_state(t, VHOST_USER_SET_VRING_ENABLE, NEED_REPLY, q, on);
        assert_int_equal(fe_recv_u64(t, VHOST_USER_SET_VRING_ENABLE), 0);
}

static void fe_start_all(T *t) {
        fe_init(t);
        fe_set_features(t, BIT_ULL(VIRTIO_F_VERSION_1) | BIT_ULL(VHOST_USER_F_PROTOCOL_FEATURES) |
                                   BIT_ULL(VIRTIO_RING_F_INDIRECT_DESC) | DEVICE_FEATURES);
        assert_true(t->device_features == DEVICE_FEATURES);
        fe_mem_table(t);
        fe_start_ring(t, 0, 0);
        fe_start_ring(t, 1, 0);
        fe_enable(t, 0, true);
        fe_enable(t, 1, true);
}

/* Guest side of queue 0 (ring at ring_gpa(0, ...)): request + response descriptors. */
static void guest_request(T *t, uint16_t head) {
        Guest *g = &t->g; /* queue 0 uses the default ring offsets */

        memcpy(guest_ptr(g, BUF(head)), "REQUEST", 8);
        guest_desc(g, head, BUF(head), 8, VRING_DESC_F_NEXT, (uint16_t) (head + 1));
        guest_desc(g, (uint16_t) (head + 1), BUF(head + 1), 64, VRING_DESC_F_WRITE, 0);
        guest_publish(g, head);
}

static void kick(T *t, unsigned q) {
        uint64_t one = 1;

        assert_int_equal(write(t->kick[q], &one, 8), 8);
        pump(t);
}

static bool called(T *t, unsigned q) {
        uint64_t v;

        return read(t->call[q], &v, 8) == 8;
}

/* ---- tests ---- */

static void test_handshake_replies(void **state) {
        T *t = *state;
        uint8_t buf[VHOST_USER_MAX_PAYLOAD];
        struct vhost_user_config_hdr c = { 0, htole32(CONFIG_SIZE), 0 };
        uint8_t req[12 + CONFIG_SIZE] = {};

        assert_int_equal(t->n_connect, 1);
        fe_init(t);

        memcpy(req, &c, sizeof(c));
        fe_send(t, VHOST_USER_GET_CONFIG, VHOST_USER_VERSION, req, sizeof(req), NULL, 0);
        assert_int_equal(fe_recv(t, VHOST_USER_GET_CONFIG, buf, sizeof(buf)), 12 + CONFIG_SIZE);
        assert_memory_equal(buf, &c, sizeof(c));
        assert_memory_equal(buf + 12, t->config, CONFIG_SIZE);
        /* NEED_REPLY on a message with a reply body: the body only, no extra ack. */
        fe_send(t, VHOST_USER_GET_CONFIG, NEED_REPLY, req, sizeof(req), NULL, 0);
        assert_int_equal(fe_recv(t, VHOST_USER_GET_CONFIG, buf, sizeof(buf)), 12 + CONFIG_SIZE);
        fe_expect_nothing(t);
        /* Past our config space (QEMU's config_size larger than ours): zero-filled. */
        c = (struct vhost_user_config_hdr){ htole32(40), htole32(8), 0 };
        memcpy(req, &c, sizeof(c));
        fe_send(t, VHOST_USER_GET_CONFIG, VHOST_USER_VERSION, req, 12 + 8, NULL, 0);
        assert_int_equal(fe_recv(t, VHOST_USER_GET_CONFIG, buf, sizeof(buf)), 12 + 8);
        assert_memory_equal(buf + 12, t->config + 40, 4);
        assert_memory_equal(buf + 16, "\0\0\0\0", 4);
        /* Past the 256-byte config space: the spec's empty failure reply. */
        c = (struct vhost_user_config_hdr){ htole32(252), htole32(8), 0 };
        memcpy(req, &c, sizeof(c));
        fe_send(t, VHOST_USER_GET_CONFIG, VHOST_USER_VERSION, req, 12 + 8, NULL, 0);
        assert_int_equal(fe_recv(t, VHOST_USER_GET_CONFIG, buf, sizeof(buf)), 0);
        /* SET_CONFIG is delegated; our device refuses it, which the ack says. */
        c = (struct vhost_user_config_hdr){ 0, htole32(4), 0 };
        memcpy(req, &c, sizeof(c));
        fe_send(t, VHOST_USER_SET_CONFIG, NEED_REPLY, req, 12 + 4, NULL, 0);
        assert_int_not_equal(fe_recv_u64(t, VHOST_USER_SET_CONFIG), 0);

        /* Without NEED_REPLY nothing comes back. */
        fe_send(t, VHOST_USER_SET_OWNER, VHOST_USER_VERSION, NULL, 0, NULL, 0);
        fe_expect_nothing(t);
        fe_set_features(t, BIT_ULL(VIRTIO_F_VERSION_1) | BIT_ULL(VHOST_USER_F_PROTOCOL_FEATURES) |
                                   DEVICE_FEATURES);
        assert_true(t->device_features == DEVICE_FEATURES);
        assert_true(vhost_dev_is_connected(t->d));
        assert_int_equal(t->n_disconnect, 0);
}

static void test_ring_roundtrip_and_notifications(void **state) {
        T *t = *state;

        /* A request published before the ring starts is served at start (§7.3). */
        guest_request(t, 0);
        fe_start_all(t);
        assert_int_equal(t->n_started[0], 1);
        assert_int_equal(t->n_started[1], 1);
        assert_int_equal(t->n_mem_changed, 1);
        assert_int_equal(t->n_elems, 1);
        assert_int_equal(guest_used_idx(&t->g), 1);
        assert_true(called(t, 0));

        /* Kick path. */
        guest_request(t, 2);
        kick(t, 0);
        assert_int_equal(t->n_elems, 2);
        assert_int_equal(guest_used_idx(&t->g), 2);
        assert_int_equal(guest_used_elem(&t->g, 1).id, 2);
        assert_int_equal(guest_used_elem(&t->g, 1).len, 8);
        assert_memory_equal(guest_ptr(&t->g, BUF(3)), "RESPONSE", 8);
        assert_true(called(t, 0));
        assert_false(called(t, 1));

        /* A kick while disabled is not lost: served on enable. */
        fe_enable(t, 0, false);
        guest_request(t, 4);
        kick(t, 0);
        assert_int_equal(t->n_elems, 2);
        fe_enable(t, 0, true);
        assert_int_equal(t->n_elems, 3);
        assert_int_equal(guest_used_idx(&t->g), 3);

        /* A broken ring signals its err fd and is left alone; the connection stays. */
        guest_publish(&t->g, NUM + 1);
        kick(t, 0);
        uint64_t v;
        assert_int_equal(read(t->err[0], &v, 8), 8);
        assert_true(vhost_dev_is_connected(t->d));
        assert_true(fe_get_features(t) != 0);
}

static void test_stop_resume_keeps_device_state(void **state) {
        T *t = *state;
        struct vhost_user_vring_state s;

        fe_start_all(t);
        t->hold = true;
        guest_request(t, 0);
        kick(t, 0);
        assert_int_equal(t->n_held, 1);

        /* VM pause: disable, GET_VRING_BASE stops the ring. */
        fe_enable(t, 0, false);
        fe_send_state(t, VHOST_USER_GET_VRING_BASE, VHOST_USER_VERSION, 0, 0);
        assert_int_equal(fe_recv(t, VHOST_USER_GET_VRING_BASE, &s, sizeof(s)), 8);
        assert_int_equal(le32toh(s.index), 0);
        assert_int_equal(le32toh(s.num), 1);
        assert_int_equal(t->n_stopped[0], 1);

        /* The device completes while stopped: nothing reaches the guest. */
        vhost_dev_push(t->d, t->held[0], 8);
        vhost_dev_notify(t->d, 0);
        t->n_held = 0;
        pump(t);
        assert_int_equal(guest_used_idx(&t->g), 0);
        assert_false(called(t, 0));

        /* Resume: the same base, addresses and used idx. Device state is kept, the completion lands. */
        fe_set_features(t, BIT_ULL(VIRTIO_F_VERSION_1) | BIT_ULL(VHOST_USER_F_PROTOCOL_FEATURES) |
                                   DEVICE_FEATURES);
        fe_mem_table(t);
        fe_start_ring(t, 0, 1);
        fe_enable(t, 0, true);
        assert_int_equal(t->n_reset, 0);
        assert_int_equal(t->n_started[0], 2);
        assert_int_equal(guest_used_idx(&t->g), 1);
        assert_int_equal(guest_used_elem(&t->g, 0).len, 8);
        assert_true(called(t, 0));
}

static void test_restart_after_driver_reset_resets_device(void **state) {
        T *t = *state;
        struct vhost_user_vring_state s;

        fe_start_all(t);
        t->hold = true;
        guest_request(t, 0);
        kick(t, 0);
        assert_int_equal(t->n_held, 1);
        fe_send_state(t, VHOST_USER_GET_VRING_BASE, VHOST_USER_VERSION, 0, 0);
        assert_int_equal(fe_recv(t, VHOST_USER_GET_VRING_BASE, &s, sizeof(s)), 8);

        /* The driver re-initialised the device: fresh ring, base 0. */
        memset(guest_ptr(&t->g, GUEST_GPA), 0, 0x4000);
        fe_start_ring(t, 0, 0);
        assert_int_equal(t->n_reset, 1);
        assert_int_equal(t->n_held, 0); /* the device dropped what it held */
        assert_int_equal(guest_used_idx(&t->g), 0);
        fe_enable(t, 0, true);
        t->hold = false;
        guest_request(t, 0);
        kick(t, 0);
        assert_int_equal(guest_used_idx(&t->g), 1);
}

static void test_add_mem_reg_and_failure_acks(void **state) {
        T *t = *state;
        struct vhost_user_mem_reg_msg reg = { 0, guest_region(&t->g) };
        struct vhost_user_vring_addr a = { .index = 0 };
        Guest small;

        fe_init(t);
        fe_set_features(t, BIT_ULL(VIRTIO_F_VERSION_1) | BIT_ULL(VHOST_USER_F_PROTOCOL_FEATURES));
        /* Ring addresses before any memory: refused, connection kept. */
        fe_send_state(t, VHOST_USER_SET_VRING_NUM, NEED_REPLY, 0, NUM);
        assert_int_equal(fe_recv_u64(t, VHOST_USER_SET_VRING_NUM), 0);
        fe_send(t, VHOST_USER_SET_VRING_ADDR, NEED_REPLY, &a, sizeof(a), NULL, 0);
        assert_int_not_equal(fe_recv_u64(t, VHOST_USER_SET_VRING_ADDR), 0);
        /* Starting a ring that is not configured fails. */
        fe_send_u64(t, VHOST_USER_SET_VRING_KICK, NEED_REPLY, 0, &t->kick[0], 1);
        assert_int_not_equal(fe_recv_u64(t, VHOST_USER_SET_VRING_KICK), 0);

        /* A region larger than its fd. */
        assert_int_equal(guest_init(&small, 4096, NUM), 0);
        struct vhost_user_mem_reg_msg bad = { 0, guest_region(&small) };
        bad.region.memory_size = 8192;
        fe_send(t, VHOST_USER_ADD_MEM_REG, NEED_REPLY, &bad, sizeof(bad), &small.memfd, 1);
        assert_int_not_equal(fe_recv_u64(t, VHOST_USER_ADD_MEM_REG), 0);

        /* CONFIGURE_MEM_SLOTS path. */
        fe_send(t, VHOST_USER_ADD_MEM_REG, NEED_REPLY, &reg, sizeof(reg), &t->g.memfd, 1);
        assert_int_equal(fe_recv_u64(t, VHOST_USER_ADD_MEM_REG), 0);
        /* Overlap with what is there. */
        bad = (struct vhost_user_mem_reg_msg){ 0, guest_region(&small) };
        bad.region.guest_phys_addr = GUEST_GPA + 4096;
        bad.region.user_addr = 0x1000;
        fe_send(t, VHOST_USER_ADD_MEM_REG, NEED_REPLY, &bad, sizeof(bad), &small.memfd, 1);
        assert_int_not_equal(fe_recv_u64(t, VHOST_USER_ADD_MEM_REG), 0);
        /* Removing something that is not there. */
        bad.region.guest_phys_addr = 0x1000;
        fe_send(t, VHOST_USER_REM_MEM_REG, NEED_REPLY, &bad, sizeof(bad), NULL, 0);
        assert_int_not_equal(fe_recv_u64(t, VHOST_USER_REM_MEM_REG), 0);
        guest_done(&small);

        /* The ring works on the added region. */
        fe_start_ring(t, 0, 0);
        fe_enable(t, 0, true);
        guest_request(t, 0);
        kick(t, 0);
        assert_int_equal(guest_used_idx(&t->g), 1);

        /* Removing the region pauses the ring; a fd sent along (tolerated) is closed. */
        reg.region.mmap_offset = 0;
        fe_send(t, VHOST_USER_REM_MEM_REG, NEED_REPLY, &reg, sizeof(reg), &t->kick[1], 1);
        assert_int_equal(fe_recv_u64(t, VHOST_USER_REM_MEM_REG), 0);
        guest_request(t, 2);
        kick(t, 0);
        assert_int_equal(guest_used_idx(&t->g), 1);
        /* Added back: the ring goes on and serves what was waiting. */
        reg.region.mmap_offset = GUEST_MMAP_OFFSET;
        fe_send(t, VHOST_USER_ADD_MEM_REG, NEED_REPLY, &reg, sizeof(reg), &t->g.memfd, 1);
        assert_int_equal(fe_recv_u64(t, VHOST_USER_ADD_MEM_REG), 0);
        assert_int_equal(guest_used_idx(&t->g), 2);
        assert_true(vhost_dev_is_connected(t->d));
}

/* Each violation closes the connection, resets the device, and the next connection is served. */
static void violation_then_fresh_connection(T *t) {
        fe_expect_closed(t);
        connect_fe(t);
        pump(t);
        assert_true(fe_get_features(t) == (VHOST_USER_BACKEND_TRANSPORT_FEATURES | DEVICE_FEATURES));
        t->n_disconnect = 0;
        t->n_reset = 0;
}

static void test_violations_close_connection(void **state) {
        T *t = *state;
        uint8_t big[VHOST_USER_MAX_PAYLOAD + 1] = {};
        uint32_t hdr[3];
        int fd = eventfd(0, EFD_CLOEXEC);

        fe_send(t, VHOST_USER_SET_OWNER, 0x1 | 0x10, NULL, 0, NULL, 0); /* reserved flag */
        violation_then_fresh_connection(t);
        fe_send(t, VHOST_USER_GET_FEATURES, 0x2, NULL, 0, NULL, 0); /* version 2 */
        violation_then_fresh_connection(t);
        fe_send(t, VHOST_USER_GET_FEATURES, 0x1 | VHOST_USER_REPLY_MASK, NULL, 0, NULL, 0);
        violation_then_fresh_connection(t);
        fe_send(t, 99, VHOST_USER_VERSION, NULL, 0, NULL, 0); /* unknown */
        violation_then_fresh_connection(t);
        fe_send(t, VHOST_USER_NONE, VHOST_USER_VERSION, NULL, 0, NULL, 0);
        violation_then_fresh_connection(t);
        fe_send(t, VHOST_USER_SET_LOG_BASE, VHOST_USER_VERSION, big, 16, &fd, 1); /* never offered */
        violation_then_fresh_connection(t);
        fe_send(t, VHOST_USER_SET_CONFIG, VHOST_USER_VERSION, big, sizeof(big), NULL, 0); /* > 4096 */
        violation_then_fresh_connection(t);
        fe_send(t, VHOST_USER_GET_FEATURES, VHOST_USER_VERSION, big, 4, NULL, 0); /* short/long size */
        violation_then_fresh_connection(t);
        fe_send(t, VHOST_USER_GET_FEATURES, VHOST_USER_VERSION, NULL, 0, &fd, 1); /* fd on GET_FEATURES */
        violation_then_fresh_connection(t);
        fe_send_state(t, VHOST_USER_SET_VRING_NUM, VHOST_USER_VERSION, 2, NUM); /* index >= num_queues */
        violation_then_fresh_connection(t);
        fe_send_state(t, VHOST_USER_SET_VRING_NUM, VHOST_USER_VERSION, 0, 3);
        violation_then_fresh_connection(t);
        fe_send_state(t, VHOST_USER_SET_VRING_NUM, VHOST_USER_VERSION, 0, 0);
        violation_then_fresh_connection(t);
        fe_send_state(t, VHOST_USER_SET_VRING_NUM, VHOST_USER_VERSION, 0, 2048);
        violation_then_fresh_connection(t);
        fe_send_state(t, VHOST_USER_GET_VRING_BASE, VHOST_USER_VERSION, 200, 0);
        violation_then_fresh_connection(t);
        fe_send_u64(t, VHOST_USER_SET_VRING_CALL, VHOST_USER_VERSION, 5 | VHOST_USER_VRING_NOFD_MASK, NULL,
                    0);
        violation_then_fresh_connection(t);
        fe_send_u64(t, VHOST_USER_SET_VRING_KICK, VHOST_USER_VERSION, 0, NULL, 0); /* fd missing */
        violation_then_fresh_connection(t);
        fe_send_state(t, VHOST_USER_SET_VRING_ENABLE, VHOST_USER_VERSION, 0, 2);
        violation_then_fresh_connection(t);
        fe_send_u64(t, VHOST_USER_SET_FEATURES, VHOST_USER_VERSION, BIT_ULL(VHOST_USER_F_PROTOCOL_FEATURES),
                    NULL, 0);
        violation_then_fresh_connection(t); /* no VERSION_1 */
        fe_send_u64(t, VHOST_USER_SET_FEATURES, VHOST_USER_VERSION,
                    BIT_ULL(VIRTIO_F_VERSION_1) | BIT_ULL(34), NULL, 0);
        violation_then_fresh_connection(t); /* not offered */
        fe_send_u64(t, VHOST_USER_SET_PROTOCOL_FEATURES, VHOST_USER_VERSION, BIT_ULL(1), NULL, 0);
        violation_then_fresh_connection(t);

        /* Misaligned ring addresses, after a proper set-up. */
        fe_init(t);
        fe_mem_table(t);
        fe_send_state(t, VHOST_USER_SET_VRING_NUM, VHOST_USER_VERSION, 0, NUM);
        struct vhost_user_vring_addr a = {
                .desc_user_addr = htole64(guest_ua(GUEST_GPA) + 8),
                .used_user_addr = htole64(guest_ua(GUEST_GPA + GUEST_USED_OFF)),
                .avail_user_addr = htole64(guest_ua(GUEST_GPA + GUEST_AVAIL_OFF)),
        };
        fe_send(t, VHOST_USER_SET_VRING_ADDR, NEED_REPLY, &a, sizeof(a), NULL, 0);
        violation_then_fresh_connection(t);

        /* EOF in the middle of a header, and of a payload. */
        hdr[0] = htole32(VHOST_USER_SET_FEATURES);
        hdr[1] = htole32(1);
        hdr[2] = htole32(8);
        assert_int_equal(send(t->fe, hdr, 5, MSG_NOSIGNAL), 5);
        pump(t);
        assert_true(vhost_dev_is_connected(t->d)); /* a half header just waits */
        shutdown(t->fe, SHUT_WR);
        violation_then_fresh_connection(t);
        assert_int_equal(send(t->fe, hdr, 12, MSG_NOSIGNAL), 12);
        assert_int_equal(send(t->fe, big, 3, MSG_NOSIGNAL), 3);
        pump(t);
        assert_true(vhost_dev_is_connected(t->d));
        shutdown(t->fe, SHUT_WR);
        violation_then_fresh_connection(t);
        close(fd);
}

static void test_disconnect_tears_down_and_serves_again(void **state) {
        T *t = *state;

        fe_start_all(t);
        t->hold = true;
        guest_request(t, 0);
        kick(t, 0);
        assert_int_equal(t->n_held, 1);
        /* QEMU killed: close without GET_VRING_BASE. */
        t->fe = safe_close(t->fe);
        pump(t);
        assert_false(vhost_dev_is_connected(t->d));
        assert_int_equal(t->n_disconnect, 1);
        assert_int_equal(t->n_reset, 1);
        assert_int_equal(t->n_held, 0);
        assert_int_equal(t->n_stopped[0], 1);
        assert_null(vhost_dev_get_mem(t->d));

        /* A new VM: a whole new guest memory. */
        guest_done(&t->g);
        assert_int_equal(guest_init(&t->g, MIB, NUM), 0);
        t->hold = false;
        connect_fe(t);
        pump(t);
        assert_int_equal(t->n_connect, 2);
        fe_start_all(t);
        guest_request(t, 0);
        kick(t, 0);
        assert_int_equal(guest_used_idx(&t->g), 1);

        /* Device-initiated disconnect. */
        vhost_dev_disconnect(t->d);
        assert_false(vhost_dev_is_connected(t->d));
        assert_int_equal(t->n_disconnect, 2);
}

static int connect_path(const char *path) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

        assert_true(fd >= 0);
        assert_true(strlen(path) < sizeof(sa.sun_path));
        memcpy(sa.sun_path, path, strlen(path) + 1);
        assert_int_equal(connect(fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
        return fd;
}

static void test_listen_serves_one_frontend_at_a_time(void **state) {
        T *t = *state;
        char dir[] = "/tmp/test-vhost-XXXXXX", path[PATH_MAX];
        struct stat st;
        int second;
        uint8_t b;

        assert_non_null(mkdtemp(dir));
        snprintf(path, sizeof(path), "%s/sock", dir);
        /* A stale socket file is replaced; a regular file is not touched. */
        assert_int_equal(close(open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600)), 0);
        assert_int_equal(vhost_dev_listen_path(t->d, path), -EEXIST);
        assert_int_equal(unlink(path), 0);
        assert_int_equal(vhost_dev_listen_path(t->d, path), 0);
        assert_int_equal(stat(path, &st), 0);
        assert_true(S_ISSOCK(st.st_mode));
        assert_int_equal(st.st_mode & 0777, 0660);

        /* The socketpair connection from setup is active: a connection on the path waits. */
        second = connect_path(path);
        pump(t);
        assert_int_equal(recv(second, &b, 1, MSG_DONTWAIT), -1);
        t->fe = safe_close(t->fe);
        pump(t); /* disconnect, then the waiting one is accepted */
        assert_int_equal(t->n_disconnect, 1);
        assert_int_equal(t->n_connect, 2);
        t->fe = second;
        assert_true(fe_get_features(t) != 0);

        /* While it is served, one more is refused. */
        unsigned refused = t->n_refused;
        int third = connect_path(path);
        pump(t);
        /* Either it waits in the backlog or it was refused with a clean close. */
        ssize_t n = recv(third, &b, 1, MSG_DONTWAIT);
        assert_true((n == -1 && errno == EAGAIN) || (n == 0 && t->n_refused == refused + 1));
        t->fe = safe_close(t->fe);
        pump(t);
        t->fe = third;
        if (n == 0) {
                t->fe = safe_close(t->fe);
                t->fe = connect_path(path);
                pump(t);
        }
        assert_true(vhost_dev_is_connected(t->d));
        assert_true(fe_get_features(t) != 0);

        t->d = vhost_dev_free(t->d);
        assert_int_equal(stat(path, &st), -1); /* removed by free */
        assert_int_equal(rmdir(dir), 0);
}

static void test_peer_uid_policy(void **state) {
        T *t = *state;
        uid_t other = getuid() + 4242;
        VhostDevConfig cfg = default_config;
        VhostDev *d;
        int sv[2];

        cfg.allowed_uids = &other;
        cfg.n_allowed_uids = 1;
        assert_int_equal(vhost_dev_new(t->e, &cfg, &ops, t, &d), 0);
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        if (getuid() == 0) {
                /* Root is always allowed. */
                assert_int_equal(vhost_dev_serve_fd(d, sv[0]), 0);
                assert_true(vhost_dev_is_connected(d));
                assert_int_equal(t->n_refused, 0);
        } else {
                uint8_t b;

                assert_int_equal(vhost_dev_serve_fd(d, sv[0]), -EPERM);
                assert_false(vhost_dev_is_connected(d));
                assert_int_equal(t->n_refused, 1);
                assert_int_equal(recv(sv[1], &b, 1, MSG_DONTWAIT), 0);
        }
        close(sv[1]);
        vhost_dev_free(d);
        /* Our own uid in the list is allowed. */
        other = getuid();
        assert_int_equal(vhost_dev_new(t->e, &cfg, &ops, t, &d), 0);
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        assert_int_equal(vhost_dev_serve_fd(d, sv[0]), 0);
        close(sv[1]);
        vhost_dev_free(d);
}

static void test_new_rejects_bad_config(void **state) {
        T *t = *state;
        VhostDevConfig cfg = default_config;
        VhostDev *d = NULL;

        cfg.num_queues = 0;
        assert_int_equal(vhost_dev_new(t->e, &cfg, &ops, t, &d), -EINVAL);
        cfg.num_queues = 9;
        assert_int_equal(vhost_dev_new(t->e, &cfg, &ops, t, &d), -EINVAL);
        cfg = default_config;
        cfg.max_queue_size = 1000;
        assert_int_equal(vhost_dev_new(t->e, &cfg, &ops, t, &d), -EINVAL);
        cfg = default_config;
        cfg.config_size = 257;
        assert_int_equal(vhost_dev_new(t->e, &cfg, &ops, t, &d), -EINVAL);
        cfg = default_config;
        cfg.device_features = BIT_ULL(VIRTIO_F_VERSION_1);
        assert_int_equal(vhost_dev_new(t->e, &cfg, &ops, t, &d), -EINVAL);
        assert_null(d);
        assert_int_equal(vhost_dev_serve_fd(t->d, -1), -EBADF);
        assert_int_equal(vhost_dev_listen_fd(t->d, -1), -EBADF);
}

static void test_reset_device_and_reset_owner(void **state) {
        T *t = *state;

        fe_start_all(t);
        t->hold = true;
        guest_request(t, 0);
        kick(t, 0);
        assert_int_equal(t->n_held, 1);

        /* RESET_OWNER (deprecated): rings disabled, everything else kept. */
        fe_send(t, VHOST_USER_RESET_OWNER, NEED_REPLY, NULL, 0, NULL, 0);
        assert_int_equal(fe_recv_u64(t, VHOST_USER_RESET_OWNER), 0);
        assert_int_equal(t->n_reset, 0);
        assert_int_equal(t->n_held, 1);
        guest_request(t, 2);
        kick(t, 0);
        assert_int_equal(t->n_elems, 1);
        fe_enable(t, 0, true);
        assert_int_equal(t->n_elems, 2);

        /* RESET_DEVICE: device state dropped, rings stopped, connection and protocol features kept. */
        fe_send(t, VHOST_USER_RESET_DEVICE, NEED_REPLY, NULL, 0, NULL, 0);
        assert_int_equal(fe_recv_u64(t, VHOST_USER_RESET_DEVICE), 0);
        assert_int_equal(t->n_reset, 1);
        assert_int_equal(t->n_held, 0);
        assert_int_equal(t->n_stopped[0], 1);
        assert_int_equal(t->n_stopped[1], 1);
        assert_true(vhost_dev_is_connected(t->d));
        guest_request(t, 4);
        kick(t, 0);
        assert_int_equal(t->n_elems, 2);

        /* Started again from scratch (REPLY_ACK still negotiated: the helpers expect acks). */
        memset(guest_ptr(&t->g, GUEST_GPA), 0, 0x4000);
        t->hold = false;
        fe_set_features(t, BIT_ULL(VIRTIO_F_VERSION_1) | BIT_ULL(VHOST_USER_F_PROTOCOL_FEATURES));
        fe_start_ring(t, 0, 0);
        fe_enable(t, 0, true);
        assert_int_equal(t->n_reset, 1); /* no stop record after a reset: not a second reset */
        guest_request(t, 0);
        kick(t, 0);
        assert_int_equal(guest_used_idx(&t->g), 1);
}

static void test_features_without_protocol_bit_enable_rings(void **state) {
        T *t = *state;

        fe_send(t, VHOST_USER_SET_PROTOCOL_FEATURES, VHOST_USER_VERSION, NULL, 0, NULL, 0);
        fe_expect_closed(t); /* wrong size */
        connect_fe(t);
        pump(t);
        /* No protocol features at all: no acks, rings enabled by SET_FEATURES itself (spec). */
        fe_send_u64(t, VHOST_USER_SET_FEATURES, VHOST_USER_VERSION, BIT_ULL(VIRTIO_F_VERSION_1), NULL, 0);
        struct {
                struct vhost_user_mem_table_hdr h;
                struct vhost_user_mem_region r;
        } mt = { { htole32(1), 0 }, guest_region(&t->g) };
        fe_send(t, VHOST_USER_SET_MEM_TABLE, NEED_REPLY, &mt, sizeof(mt), &t->g.memfd, 1);
        fe_expect_nothing(t); /* NEED_REPLY without REPLY_ACK: no ack */
        fe_send_state(t, VHOST_USER_SET_VRING_NUM, VHOST_USER_VERSION, 0, NUM);
        fe_send_state(t, VHOST_USER_SET_VRING_BASE, VHOST_USER_VERSION, 0, 0);
        struct vhost_user_vring_addr a = {
                .desc_user_addr = htole64(guest_ua(GUEST_GPA + GUEST_DESC_OFF)),
                .used_user_addr = htole64(guest_ua(GUEST_GPA + GUEST_USED_OFF)),
                .avail_user_addr = htole64(guest_ua(GUEST_GPA + GUEST_AVAIL_OFF)),
        };
        fe_send(t, VHOST_USER_SET_VRING_ADDR, VHOST_USER_VERSION, &a, sizeof(a), NULL, 0);
        fe_send_u64(t, VHOST_USER_SET_VRING_CALL, VHOST_USER_VERSION, 0, &t->call[0], 1);
        guest_request(t, 0);
        fe_send_u64(t, VHOST_USER_SET_VRING_KICK, VHOST_USER_VERSION, 0, &t->kick[0], 1);
        assert_int_equal(guest_used_idx(&t->g), 1);
        assert_true(called(t, 0));
        /* SET_VRING_ENABLE is invalid without the protocol bit: refused (no ack to carry it). */
        fe_send_state(t, VHOST_USER_SET_VRING_ENABLE, VHOST_USER_VERSION, 0, 0);
        guest_request(t, 2);
        kick(t, 0);
        assert_int_equal(guest_used_idx(&t->g), 2);
        fe_expect_nothing(t);
}

static void test_replies_survive_a_full_socket(void **state) {
        T *t = *state;
        uint32_t h[3] = { htole32(VHOST_USER_GET_QUEUE_NUM), htole32(VHOST_USER_VERSION), 0 };
        unsigned sent = 0, got = 0;

        /* Send without reading until neither direction takes more: the backend must stop reading
         * while its reply is pending, and lose nothing. */
        for (unsigned idle = 0; idle < 3;) {
                ssize_t n = send(t->fe, h, sizeof(h), MSG_DONTWAIT | MSG_NOSIGNAL);

                if (n == (ssize_t) sizeof(h)) {
                        sent++;
                        idle = 0;
                        continue;
                }
                assert_true(n < 0 && errno == EAGAIN);
                pump(t);
                idle++;
                assert_true(sent < 1000000);
        }
        assert_true(sent > 100);
        assert_true(vhost_dev_is_connected(t->d));
        while (got < sent) {
                uint32_t r[3];
                uint64_t v;

                pump(t);
                for (;;) {
                        ssize_t n = recv(t->fe, r, sizeof(r), MSG_DONTWAIT | MSG_PEEK);

                        if (n < (ssize_t) sizeof(r))
                                break;
                        assert_int_equal(fe_recv(t, VHOST_USER_GET_QUEUE_NUM, &v, sizeof(v)), 8);
                        assert_int_equal(le64toh(v), 2);
                        got++;
                }
        }
        assert_int_equal(got, sent);
        fe_expect_nothing(t);
}

static void test_listen_fd(void **state) {
        T *t = *state;
        char dir[] = "/tmp/test-vhost-XXXXXX", path[PATH_MAX];
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int lfd, sv[2], c;

        assert_non_null(mkdtemp(dir));
        snprintf(path, sizeof(path), "%s/sock", dir);
        assert_true(strlen(path) < sizeof(sa.sun_path));
        memcpy(sa.sun_path, path, strlen(path) + 1);
        lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_int_equal(bind(lfd, (struct sockaddr *) &sa, sizeof(sa)), 0);
        /* Not listening yet, or not a stream socket: refused (and taken). */
        assert_int_equal(vhost_dev_listen_fd(t->d, dup(lfd)), -ENOTSOCK);
        assert_int_equal(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv), 0);
        close(sv[1]);
        assert_int_equal(vhost_dev_listen_fd(t->d, sv[0]), -ENOTSOCK);
        assert_int_equal(listen(lfd, 1), 0);
        assert_int_equal(vhost_dev_listen_fd(t->d, lfd), 0);

        t->fe = safe_close(t->fe); /* the socketpair from setup */
        pump(t);
        c = connect_path(path);
        pump(t);
        assert_true(vhost_dev_is_connected(t->d));
        t->fe = c;
        assert_true(fe_get_features(t) != 0);
        t->d = vhost_dev_free(t->d);
        /* An inherited socket's file is not ours to remove. */
        assert_int_equal(unlink(path), 0);
        assert_int_equal(rmdir(dir), 0);
}

static void test_event_idx_end_to_end(void **state) {
        T *t = *state;

        fe_init(t);
        fe_set_features(t, BIT_ULL(VIRTIO_F_VERSION_1) | BIT_ULL(VHOST_USER_F_PROTOCOL_FEATURES) |
                                   BIT_ULL(VIRTIO_RING_F_EVENT_IDX));
        fe_mem_table(t);
        fe_start_ring(t, 0, 0);
        fe_enable(t, 0, true);

        guest_request(t, 0);
        kick(t, 0);
        assert_int_equal(guest_used_idx(&t->g), 1);
        assert_int_equal(guest_avail_event(&t->g), 1); /* kick me at the next entry */
        assert_true(called(t, 0));                     /* first completion after start */

        /* The driver only wants an interrupt once the used index passes 2. */
        guest_set_used_event(&t->g, 2);
        guest_request(t, 2);
        kick(t, 0);
        assert_int_equal(guest_used_idx(&t->g), 2);
        assert_false(called(t, 0));
        guest_request(t, 4);
        kick(t, 0);
        assert_int_equal(guest_used_idx(&t->g), 3);
        assert_true(called(t, 0));
        assert_int_equal(guest_used_flags(&t->g), 0); /* NO_NOTIFY is not used with EVENT_IDX */

        /* "No fd" call: completions land without an interrupt. */
        fe_send_u64(t, VHOST_USER_SET_VRING_CALL, NEED_REPLY, 0 | VHOST_USER_VRING_NOFD_MASK, NULL, 0);
        assert_int_equal(fe_recv_u64(t, VHOST_USER_SET_VRING_CALL), 0);
        guest_set_used_event(&t->g, 3);
        guest_request(t, 6);
        kick(t, 0);
        assert_int_equal(guest_used_idx(&t->g), 4);
        assert_false(called(t, 0));
}

#define TEST(n) cmocka_unit_test_setup_teardown(n, setup, teardown)

int main(void) {
        const struct CMUnitTest tests[] = {
                TEST(test_handshake_replies),
                TEST(test_ring_roundtrip_and_notifications),
                TEST(test_stop_resume_keeps_device_state),
                TEST(test_restart_after_driver_reset_resets_device),
                TEST(test_add_mem_reg_and_failure_acks),
                TEST(test_violations_close_connection),
                TEST(test_disconnect_tears_down_and_serves_again),
                TEST(test_listen_serves_one_frontend_at_a_time),
                TEST(test_peer_uid_policy),
                TEST(test_new_rejects_bad_config),
                TEST(test_reset_device_and_reset_owner),
                TEST(test_features_without_protocol_bit_enable_rings),
                TEST(test_replies_survive_a_full_socket),
                TEST(test_listen_fd),
                TEST(test_event_idx_end_to_end),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
