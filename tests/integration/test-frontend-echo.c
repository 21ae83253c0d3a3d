/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The frontend library (service/frontend/) playing QEMU against the real backend transport
 * (service/vhost/) over a real unix socket, with a trivial "echo" device on top of the transport: it
 * copies the readable bytes of each chain into its writable segments and completes it with the written
 * length. The backend runs on an sd-event loop in this thread, driven by the frontend's pump hook
 * (sd_event_run(e, 0)), except in the threaded test where it runs its own loop in a second thread.
 *
 * Covered: QEMU's handshake (vhost-user-backend.md §2) with and without CONFIGURE_MEM_SLOTS and
 * REPLY_ACK; chains direct and indirect, many at once; EVENT_IDX on and off with exact notification
 * control; stop/resume with requests in flight; driver reset; disconnect/reconnect 100 times without
 * fd or memory growth; a malicious frontend (garbage, bad sizes, bad fds, unknown ids, half messages);
 * guest-level ring violations reported on the err eventfd.
 */
#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <malloc.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <systemd/sd-event.h>

#include "common/iov.h"
#include "common/macro.h"
#include "frontend/frontend.h"
#include "vhost/vhost-user-proto.h"
#include "vhost/vhost.h"

#define CONFIG_SIZE 44
#define MAX_HELD 512
#define DEVICE_FEATURES BIT_ULL(0)

typedef struct Echo {
        VhostDev *dev;
        bool hold; /* keep elements instead of completing them */
        VhostElem *held[MAX_HELD];
        unsigned n_held;
        unsigned resets, connects, disconnects;
        bool started[2];
        uint64_t device_features;
        uint8_t config[CONFIG_SIZE];
} Echo;

typedef struct Env {
        sd_event *event;
        Echo echo;
        char dir[64];
        char path[128];
        unsigned n_frontends; /* connections made, to know when the backend has seen them all end */
} Env;

static void echo_complete(Echo *e, VhostElem *elem) {
        uint8_t *buf = malloc(elem->rd_len ? elem->rd_len : 1);
        size_t n, written;
        unsigned q = elem->queue;

        assert_non_null(buf);
        n = iov_to_buf(elem->rd, elem->n_rd, 0, buf, elem->rd_len);
        written = buf_to_iov(elem->wr, elem->n_wr, 0, buf, n);
        free(buf);
        vhost_dev_push(e->dev, elem, (uint32_t) written);
        vhost_dev_notify(e->dev, q);
}

static void echo_handle_elem(void *userdata, VhostElem *elem) {
        Echo *e = userdata;

        if (e->hold && e->n_held < MAX_HELD) {
                e->held[e->n_held++] = elem;
                return;
        }
        echo_complete(e, elem);
}

static int echo_get_config(void *userdata, uint32_t offset, void *buf, uint32_t size) {
        Echo *e = userdata;

        memcpy(buf, e->config + offset, size);
        return 0;
}

static int echo_set_config(void *userdata, uint32_t offset, const void *buf, uint32_t size) {
        return -EPERM; /* read-only, like virtio-video's */
}

static void echo_set_features(void *userdata, uint64_t f) {
        ((Echo *) userdata)->device_features = f;
}

static void echo_reset(void *userdata) {
        Echo *e = userdata;

        for (unsigned i = 0; i < e->n_held; i++)
                vhost_elem_free(e->held[i]);
        e->n_held = 0;
        e->resets++;
}

static void echo_queue_state(void *userdata, unsigned queue, bool started) {
        Echo *e = userdata;

        assert_true(queue < 2);
        e->started[queue] = started;
}

static void echo_peer(void *userdata, bool connected, bool accepted, const struct ucred *cred) {
        Echo *e = userdata;

        if (connected)
                e->connects++;
        else
                e->disconnects++;
}

static const VhostDeviceOps echo_ops = {
        .handle_elem = echo_handle_elem,
        .get_config = echo_get_config,
        .set_config = echo_set_config,
        .set_features = echo_set_features,
        .reset = echo_reset,
        .queue_state = echo_queue_state,
        .peer = echo_peer,
};

static int pump(void *userdata) {
        return sd_event_run(userdata, 0);
}

static uint64_t now_ms(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

/* Steps the backend's loop until cond holds; the 10 s limit is only a safety net. */
#define PUMP_UNTIL(env, cond)                                                \
        do {                                                                 \
                uint64_t _end = now_ms() + 10000;                            \
                while (!(cond)) {                                            \
                        assert_true(sd_event_run((env)->event, 1000) >= 0);  \
                        if (now_ms() > _end)                                 \
                                fail_msg("timed out waiting for %s", #cond); \
                }                                                            \
        } while (0)

static int env_setup(void **state) {
        Env *env = calloc(1, sizeof(*env));
        VhostDevConfig cfg = {
                .num_queues = 2,
                .max_queue_size = 1024,
                .device_features = DEVICE_FEATURES,
                .config_size = CONFIG_SIZE,
        };

        assert_non_null(env);
        strcpy(env->dir, "/tmp/vvid-frontend-XXXXXX");
        assert_non_null(mkdtemp(env->dir));
        snprintf(env->path, sizeof(env->path), "%s/video.sock", env->dir);
        for (unsigned i = 0; i < CONFIG_SIZE; i++)
                env->echo.config[i] = (uint8_t) (i * 7 + 1);
        assert_int_equal(sd_event_new(&env->event), 0);
        assert_int_equal(vhost_dev_new(env->event, &cfg, &echo_ops, &env->echo, &env->echo.dev), 0);
        assert_int_equal(vhost_dev_listen_path(env->echo.dev, env->path), 0);
        *state = env;
        return 0;
}

static int env_teardown(void **state) {
        Env *env = *state;

        for (unsigned i = 0; i < env->echo.n_held; i++)
                vhost_elem_free(env->echo.held[i]);
        vhost_dev_free(env->echo.dev);
        sd_event_unref(env->event);
        rmdir(env->dir);
        free(env);
        return 0;
}

static void opts_for(Env *env, VuFrontendOptions *o) {
        vu_frontend_options_init(o);
        o->mem_size = 4 * 1024 * 1024;
        o->config_size = CONFIG_SIZE;
        o->device_features = DEVICE_FEATURES;
        o->timeout_ms = 10000; /* safety net only */
        o->pump = pump;
        o->pump_userdata = env->event;
}

static VuFrontend *connect_with(Env *env, const VuFrontendOptions *o) {
        VuFrontend *fe = NULL;

        assert_int_equal(vu_frontend_connect(o, env->path, &fe), 0);
        env->n_frontends++;
        return fe;
}

static VuFrontend *connect_default(Env *env) {
        VuFrontendOptions o;

        opts_for(env, &o);
        return connect_with(env, &o);
}

/* Closes the frontend and waits until the backend has noticed and listens again. */
static void close_and_wait(Env *env, VuFrontend *fe) {
        vu_frontend_free(fe);
        PUMP_UNTIL(env, env->echo.connects == env->n_frontends &&
                                env->echo.disconnects == env->n_frontends &&
                                !vhost_dev_is_connected(env->echo.dev));
}

static void check_echo(VuFrontend *fe, unsigned queue, size_t len, unsigned flags) {
        uint8_t *req = malloc(len), *resp = malloc(len + 16);
        size_t got = 0;

        assert_non_null(req);
        assert_non_null(resp);
        for (size_t i = 0; i < len; i++)
                req[i] = (uint8_t) (i * 31 + len);
        assert_int_equal(vu_frontend_request(fe, queue, req, len, resp, len + 16, flags, &got), 0);
        assert_int_equal(got, len);
        assert_memory_equal(resp, req, len);
        free(req);
        free(resp);
}

/* A full QEMU session: handshake, one request per queue, direct and indirect. */
static void clean_session(Env *env) {
        VuFrontend *fe = connect_default(env);

        assert_int_equal(vu_frontend_start(fe), 0);
        check_echo(fe, 0, 100, 0);
        check_echo(fe, 1, 33, VU_POST_INDIRECT);
        close_and_wait(env, fe);
}

/* ---- handshake -------------------------------------------------------------------------------------- */

static void test_handshake_and_echo(void **state) {
        Env *env = *state;
        VuFrontend *fe = connect_default(env);
        uint8_t cfg[CONFIG_SIZE];

        assert_int_equal(vu_frontend_start(fe), 0);
        assert_int_equal(env->echo.connects, 1);
        assert_int_equal(vu_frontend_offered_features(fe),
                         VHOST_USER_BACKEND_TRANSPORT_FEATURES | DEVICE_FEATURES);
        assert_int_equal(vu_frontend_features(fe),
                         BIT_ULL(VIRTIO_F_VERSION_1) | BIT_ULL(VHOST_USER_F_PROTOCOL_FEATURES) |
                                 BIT_ULL(VIRTIO_RING_F_INDIRECT_DESC) | DEVICE_FEATURES);
        assert_int_equal(env->echo.device_features, DEVICE_FEATURES);
        assert_int_equal(vu_frontend_offered_protocol_features(fe), VHOST_USER_BACKEND_PROTOCOL_FEATURES);
        assert_int_equal(vu_frontend_queue_num(fe), 2);
        assert_true(vu_frontend_max_mem_slots(fe) >= 1);
        assert_true(env->echo.started[0] && env->echo.started[1]);

        assert_int_equal(vu_frontend_get_config(fe, 0, cfg, CONFIG_SIZE), 0);
        assert_memory_equal(cfg, env->echo.config, CONFIG_SIZE);
        assert_int_equal(vu_frontend_get_config(fe, 40, cfg, 4), 0);
        assert_memory_equal(cfg, env->echo.config + 40, 4);
        /* The device refuses config writes: a failure ack, and the connection stays up. */
        assert_int_equal(vu_frontend_set_config(fe, 0, cfg, 4), -EIO);

        for (unsigned q = 0; q < 2; q++) {
                check_echo(fe, q, 1, 0);
                check_echo(fe, q, 4096, 0);
                check_echo(fe, q, 100000, VU_POST_INDIRECT);
        }
        /* A request without a writable part completes with length 0. */
        assert_int_equal(vu_frontend_request(fe, 0, "x", 1, NULL, 0, 0, NULL), 0);
        close_and_wait(env, fe);
        assert_int_equal(env->echo.disconnects, 1);
        assert_false(env->echo.started[0] || env->echo.started[1]);
}

static void opts_mem_table_no_ack(VuFrontendOptions *o) {
        o->protocol_features &= ~(BIT_ULL(VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS) |
                                  BIT_ULL(VHOST_USER_PROTOCOL_F_REPLY_ACK));
}

static void opts_like_qemu(VuFrontendOptions *o) {
        o->ack_every_message = false;
}

static void opts_event_idx(VuFrontendOptions *o) {
        o->event_idx = true;
}

static void session_with(Env *env, void (*tweak)(VuFrontendOptions *o)) {
        VuFrontendOptions o;
        VuFrontend *fe;
        uint64_t f;
        uint16_t bases[2];

        opts_for(env, &o);
        tweak(&o);
        fe = connect_with(env, &o);
        assert_int_equal(vu_frontend_start(fe), 0);
        check_echo(fe, 0, 500, 0);
        check_echo(fe, 1, 500, VU_POST_INDIRECT);
        assert_int_equal(vu_frontend_stop(fe, bases), 0);
        assert_int_equal(bases[0], 1);
        assert_int_equal(bases[1], 1);
        assert_int_equal(vu_frontend_resume(fe), 0);
        check_echo(fe, 0, 7, 0);
        /* No spurious ack is waiting in the socket: the next reply is the right one. */
        assert_int_equal(vu_frontend_message(fe, VHOST_USER_GET_FEATURES, NULL, 0, NULL, 0, &f, sizeof(f)),
                         0);
        assert_int_equal(le64toh(f), vu_frontend_offered_features(fe));
        close_and_wait(env, fe);
}

static void test_handshake_set_mem_table_without_reply_ack(void **state) {
        session_with(*state, opts_mem_table_no_ack);
}

static void test_handshake_qemu_need_reply_subset(void **state) {
        session_with(*state, opts_like_qemu);
}

static void test_handshake_event_idx(void **state) {
        session_with(*state, opts_event_idx);
}

/* ---- data path -------------------------------------------------------------------------------------- */

static void many_in_flight(Env *env, bool event_idx) {
        VuFrontendOptions o;
        VuFrontend *fe;
        enum { N = 170 }; /* 85 direct chains of 2 descriptors + 85 indirect ones: 255 of 256 */
        uint8_t req[128], resp[128];
        size_t len;

        opts_for(env, &o);
        o.event_idx = event_idx;
        fe = connect_with(env, &o);
        assert_int_equal(vu_frontend_start(fe), 0);
        assert_int_equal(!!(vu_frontend_features(fe) & BIT_ULL(VIRTIO_RING_F_EVENT_IDX)), event_idx);

        for (unsigned round = 0; round < 3; round++) {
                for (unsigned i = 0; i < N; i++) {
                        memset(req, (int) (i + round), sizeof(req));
                        assert_int_equal(vu_frontend_submit(fe, 0, req, 1 + i % 100, sizeof(resp),
                                                            i % 2 ? VU_POST_INDIRECT : 0, i),
                                         0);
                }
                /* Collect in an order unrelated to the completion order. */
                for (unsigned k = 0; k < N; k++) {
                        unsigned i = (k * 7) % N;

                        assert_int_equal(vu_frontend_collect(fe, 0, i, resp, sizeof(resp), &len), 0);
                        assert_int_equal(len, 1 + i % 100);
                        assert_int_equal(resp[0], (uint8_t) (i + round));
                        assert_int_equal(resp[len - 1], (uint8_t) (i + round));
                }
                assert_int_equal(vu_frontend_in_flight(fe, 0), 0);
        }
        if (event_idx) {
                VuRingView v;

                /* The device asked for a kick at the next new entry (avail_event = its last_avail). */
                assert_int_equal(vu_frontend_ring_view(fe, 0, &v), 0);
                assert_int_equal(le16toh(*v.avail_event), le16toh(*v.avail_idx));
        }
        close_and_wait(env, fe);
}

static void test_many_in_flight(void **state) {
        many_in_flight(*state, false);
}

static void test_many_in_flight_event_idx(void **state) {
        many_in_flight(*state, true);
}

static void test_multi_segment_chains(void **state) {
        Env *env = *state;
        VuFrontend *fe = connect_default(env);
        const uint32_t rd_len[5] = { 1, 7, 4096, 13, 300 }, wr_len[3] = { 5, 4000, 1000 };
        uint8_t expect[5000];
        size_t total = 0;

        assert_int_equal(vu_frontend_start(fe), 0);
        for (unsigned flags = 0; flags <= VU_POST_INDIRECT; flags += VU_POST_INDIRECT) {
                VuSeg segs[8];
                uint16_t head;
                VuUsed u;
                size_t off = 0;

                total = 0;
                for (unsigned i = 0; i < 5; i++) {
                        uint8_t *p;

                        assert_int_equal(vu_frontend_mem_alloc(fe, rd_len[i], 1, &segs[i].gpa), 0);
                        p = vu_frontend_gpa_to_ptr(fe, segs[i].gpa, rd_len[i]);
                        for (uint32_t b = 0; b < rd_len[i]; b++)
                                p[b] = expect[total++] = (uint8_t) (b + i * 50 + flags);
                        segs[i].len = rd_len[i];
                        segs[i].device_writable = false;
                }
                for (unsigned i = 0; i < 3; i++) {
                        assert_int_equal(vu_frontend_mem_alloc(fe, wr_len[i], 1, &segs[5 + i].gpa), 0);
                        segs[5 + i].len = wr_len[i];
                        segs[5 + i].device_writable = true;
                }
                assert_int_equal(vu_frontend_post(fe, 1, segs, 8, flags, 42, &head), 0);
                assert_int_equal(vu_frontend_kick(fe, 1), 0);
                assert_int_equal(vu_frontend_wait_used(fe, 1, &u), 1);
                assert_int_equal(u.head, head);
                assert_int_equal(u.tag, 42);
                assert_int_equal(u.len, total); /* 4417 bytes over 5005 writable */
                for (unsigned i = 0; i < 3 && off < total; i++) {
                        size_t step = MIN((size_t) wr_len[i], total - off);

                        assert_memory_equal(vu_frontend_gpa_to_ptr(fe, segs[5 + i].gpa, step), expect + off,
                                            step);
                        off += step;
                }
                for (unsigned i = 0; i < 8; i++)
                        assert_int_equal(vu_frontend_mem_free(fe, segs[i].gpa), 0);
        }
        close_and_wait(env, fe);
}

static void test_request_posted_before_start(void **state) {
        Env *env = *state;
        VuFrontend *fe = connect_default(env);
        char resp[16];
        size_t len;

        /* Posted and kicked before the backend has memory, addresses or the kick fd (§7.3 pitfall 3). */
        assert_int_equal(vu_frontend_submit(fe, 0, "early", 5, sizeof(resp), 0, 1), 0);
        assert_int_equal(vu_frontend_submit(fe, 1, "early1", 6, sizeof(resp), VU_POST_INDIRECT, 2), 0);
        assert_int_equal(vu_frontend_start(fe), 0);
        assert_int_equal(vu_frontend_collect(fe, 0, 1, resp, sizeof(resp), &len), 0);
        assert_int_equal(len, 5);
        assert_memory_equal(resp, "early", 5);
        assert_int_equal(vu_frontend_collect(fe, 1, 2, resp, sizeof(resp), &len), 0);
        assert_memory_equal(resp, "early1", 6);
        close_and_wait(env, fe);
}

static void test_event_idx_exact_notifications(void **state) {
        Env *env = *state;
        VuFrontendOptions o;
        VuFrontend *fe;
        VuRingView v;
        VuUsed u;

        opts_for(env, &o);
        o.event_idx = true;
        fe = connect_with(env, &o);
        assert_int_equal(vu_frontend_start(fe), 0);
        assert_int_equal(vu_frontend_ring_view(fe, 0, &v), 0);

        env->echo.hold = true;
        for (unsigned i = 0; i < 4; i++)
                assert_int_equal(vu_frontend_submit(fe, 0, "abc", 3, 8, 0, i), 0);
        PUMP_UNTIL(env, env->echo.n_held == 4);
        assert_int_equal(le16toh(*v.avail_event), 4);
        (void) vu_frontend_consume_call(fe, 0);

        /* The first signal after a ring start is unconditional. */
        echo_complete(&env->echo, env->echo.held[0]);
        assert_int_equal(vu_frontend_consume_call(fe, 0), 1);
        /* used_event = 2: signal only when used->idx moves past 2, i.e. with the third completion. */
        assert_int_equal(vu_frontend_set_used_event(fe, 0, 2), 0);
        echo_complete(&env->echo, env->echo.held[1]);
        assert_int_equal(vu_frontend_consume_call(fe, 0), 0);
        echo_complete(&env->echo, env->echo.held[2]);
        assert_int_equal(vu_frontend_consume_call(fe, 0), 1);
        echo_complete(&env->echo, env->echo.held[3]);
        assert_int_equal(vu_frontend_consume_call(fe, 0), 0);
        env->echo.n_held = 0;
        env->echo.hold = false;
        for (unsigned i = 0; i < 4; i++) {
                assert_int_equal(vu_frontend_get_used(fe, 0, &u), 1);
                assert_int_equal(u.tag, i);
                assert_int_equal(u.len, 3);
        }
        close_and_wait(env, fe);
}

static void test_no_interrupt_suppresses_calls(void **state) {
        Env *env = *state;
        VuFrontend *fe = connect_default(env);
        VuUsed u;

        assert_int_equal(vu_frontend_start(fe), 0);
        env->echo.hold = true;
        assert_int_equal(vu_frontend_submit(fe, 0, "abc", 3, 8, 0, 1), 0);
        PUMP_UNTIL(env, env->echo.n_held == 1);
        (void) vu_frontend_consume_call(fe, 0);
        assert_int_equal(vu_frontend_set_no_interrupt(fe, 0, true), 0);
        echo_complete(&env->echo, env->echo.held[0]);
        assert_int_equal(vu_frontend_consume_call(fe, 0), 0);
        assert_int_equal(vu_frontend_get_used(fe, 0, &u), 1);
        assert_int_equal(vu_frontend_set_no_interrupt(fe, 0, false), 0);
        env->echo.n_held = 0;
        env->echo.hold = false;
        check_echo(fe, 0, 10, 0);
        close_and_wait(env, fe);
}

static VhostElem *held_take(Echo *e, unsigned i) {
        VhostElem *elem;

        assert_true(i < e->n_held);
        elem = e->held[i];
        memmove(e->held + i, e->held + i + 1, (e->n_held - i - 1) * sizeof(e->held[0]));
        e->n_held--;
        return elem;
}

static void test_event_buffers_stay_posted(void **state) {
        Env *env = *state;
        VuFrontend *fe = connect_default(env);
        uint64_t before;
        char ev[64];
        size_t len;

        assert_int_equal(vu_frontend_start(fe), 0);
        before = vu_frontend_mem_available(fe);
        env->echo.hold = true;
        assert_int_equal(vu_frontend_post_event_buffers(fe, 1, 4, 64), 0);
        PUMP_UNTIL(env, env->echo.n_held == 4);
        assert_int_equal(vu_frontend_get_event(fe, 1, ev, sizeof(ev), &len), 0);

        for (unsigned i = 0; i < 20; i++) {
                VhostElem *elem = held_take(&env->echo, i % env->echo.n_held);
                char msg[16];
                int n = snprintf(msg, sizeof(msg), "event-%u", i);

                assert_int_equal(elem->queue, 1);
                assert_int_equal(elem->n_rd, 0);
                assert_int_equal(elem->wr_len, 64);
                assert_int_equal(buf_to_iov(elem->wr, elem->n_wr, 0, msg, (size_t) n), (size_t) n);
                vhost_dev_push(env->echo.dev, elem, (uint32_t) n);
                vhost_dev_notify(env->echo.dev, 1);

                memset(ev, 0, sizeof(ev));
                assert_int_equal(vu_frontend_wait_event(fe, 1, ev, sizeof(ev), &len), 0);
                assert_int_equal(len, (size_t) n);
                assert_string_equal(ev, msg);
                /* The buffer went straight back to the device. */
                PUMP_UNTIL(env, env->echo.n_held == 4);
                assert_int_equal(vu_frontend_in_flight(fe, 1), 4);
                /* Requests on the command queue are unaffected. */
                env->echo.hold = false;
                check_echo(fe, 0, 16 + i, 0);
                env->echo.hold = true;
        }
        assert_int_equal(vu_frontend_get_event(fe, 1, ev, sizeof(ev), &len), 0);

        /* A driver reset drops them, and their memory comes back. */
        env->echo.hold = false;
        assert_int_equal(vu_frontend_reset_rings(fe), 0);
        assert_int_equal(env->echo.n_held, 0);
        assert_int_equal(vu_frontend_in_flight(fe, 1), 0);
        assert_int_equal(vu_frontend_mem_available(fe), before);
        assert_int_equal(vu_frontend_post_event_buffers(fe, 1, 257, 64), -ENOSPC);
        close_and_wait(env, fe);
}

/* ---- stop, resume, reset ---------------------------------------------------------------------------- */

static void test_stop_resume_keeps_in_flight(void **state) {
        Env *env = *state;
        VuFrontend *fe = connect_default(env);
        uint16_t bases[2];
        char resp[16];
        size_t len;

        assert_int_equal(vu_frontend_start(fe), 0);
        check_echo(fe, 0, 10, 0);
        env->echo.hold = true;
        for (unsigned i = 0; i < 3; i++)
                assert_int_equal(vu_frontend_submit(fe, 0, "held!", 5, sizeof(resp),
                                                    i ? VU_POST_INDIRECT : 0, i),
                                 0);
        PUMP_UNTIL(env, env->echo.n_held == 3);

        /* VM pause: the backend reports the held requests as consumed. */
        assert_int_equal(vu_frontend_stop(fe, bases), 0);
        assert_int_equal(bases[0], 4);
        assert_int_equal(bases[1], 0);
        assert_false(env->echo.started[0]);
        /* The device completes them while the ring is stopped: the transport queues the completions. */
        for (unsigned i = 0; i < 3; i++)
                echo_complete(&env->echo, env->echo.held[i]);
        env->echo.n_held = 0;
        env->echo.hold = false;
        assert_int_equal(vu_frontend_in_flight(fe, 0), 3);

        /* VM resume: same rings, same bases; no reset, the queued completions arrive. */
        assert_int_equal(vu_frontend_resume(fe), 0);
        assert_int_equal(env->echo.resets, 0);
        assert_true(env->echo.started[0]);
        for (unsigned i = 0; i < 3; i++) {
                assert_int_equal(vu_frontend_collect(fe, 0, i, resp, sizeof(resp), &len), 0);
                assert_int_equal(len, 5);
                assert_memory_equal(resp, "held!", 5);
        }
        check_echo(fe, 0, 64, 0);
        check_echo(fe, 1, 64, 0);
        close_and_wait(env, fe);
}

static void test_kick_while_stopped_served_on_resume(void **state) {
        Env *env = *state;
        VuFrontend *fe = connect_default(env);
        uint16_t bases[2];
        char resp[8];
        size_t len;

        assert_int_equal(vu_frontend_start(fe), 0);
        check_echo(fe, 1, 8, 0);
        assert_int_equal(vu_frontend_stop(fe, bases), 0);
        /* Posted and kicked while the VM is paused: nobody may take it now... */
        assert_int_equal(vu_frontend_submit(fe, 1, "late", 4, sizeof(resp), 0, 5), 0);
        for (unsigned i = 0; i < 10 && sd_event_run(env->event, 0) > 0; i++)
                ;
        assert_int_equal(vu_frontend_get_used(fe, 1, &(VuUsed){}), 0);
        /* ...and the kick is not lost: served after the resume. */
        assert_int_equal(vu_frontend_resume(fe), 0);
        assert_int_equal(vu_frontend_collect(fe, 1, 5, resp, sizeof(resp), &len), 0);
        assert_int_equal(len, 4);
        assert_memory_equal(resp, "late", 4);
        assert_int_equal(env->echo.resets, 0);
        close_and_wait(env, fe);
}

static void test_driver_reset_drops_held_requests(void **state) {
        Env *env = *state;
        VuFrontend *fe = connect_default(env);

        assert_int_equal(vu_frontend_start(fe), 0);
        check_echo(fe, 0, 10, 0);
        env->echo.hold = true;
        assert_int_equal(vu_frontend_submit(fe, 0, "a", 1, 4, 0, 1), 0);
        assert_int_equal(vu_frontend_submit(fe, 1, "b", 1, 4, 0, 2), 0);
        PUMP_UNTIL(env, env->echo.n_held == 2);
        env->echo.hold = false;

        assert_int_equal(vu_frontend_reset_rings(fe), 0);
        assert_true(env->echo.resets >= 1);
        assert_int_equal(env->echo.n_held, 0); /* freed by the device's reset() */
        assert_int_equal(vu_frontend_in_flight(fe, 0), 0);
        assert_int_equal(vu_frontend_in_flight(fe, 1), 0);
        assert_true(env->echo.started[0] && env->echo.started[1]);
        check_echo(fe, 0, 77, 0);
        check_echo(fe, 1, 77, VU_POST_INDIRECT);
        close_and_wait(env, fe);
}

static void test_reset_device_then_reprobe(void **state) {
        Env *env = *state;
        VuFrontend *fe = connect_default(env);
        unsigned resets;

        assert_int_equal(vu_frontend_start(fe), 0);
        env->echo.hold = true;
        assert_int_equal(vu_frontend_submit(fe, 0, "a", 1, 4, 0, 1), 0);
        PUMP_UNTIL(env, env->echo.n_held == 1);
        env->echo.hold = false;
        resets = env->echo.resets;

        assert_int_equal(vu_frontend_reset_device(fe), 0);
        assert_false(vu_frontend_is_running(fe));
        assert_int_equal(env->echo.resets, resets + 1);
        assert_int_equal(env->echo.n_held, 0);
        assert_false(env->echo.started[0] || env->echo.started[1]);
        /* The connection survived: a new SET_FEATURES and fresh rings bring the device back. */
        assert_int_equal(vu_frontend_reset_rings(fe), 0);
        assert_true(env->echo.started[0] && env->echo.started[1]);
        check_echo(fe, 0, 50, 0);
        check_echo(fe, 1, 50, VU_POST_INDIRECT);
        close_and_wait(env, fe);
}

/* ---- connection lifecycle ----------------------------------------------------------------------------- */

static unsigned count_fds(void) {
        DIR *d = opendir("/proc/self/fd");
        unsigned n = 0;

        assert_non_null(d);
        while (readdir(d))
                n++;
        closedir(d);
        return n;
}

static void test_reconnect_100_times_without_leaks(void **state) {
        Env *env = *state;
        unsigned fds = 0;
        size_t heap = 0;

        for (unsigned i = 0; i < 110; i++) {
                VuFrontend *fe = connect_default(env);

                assert_int_equal(vu_frontend_start(fe), 0);
                check_echo(fe, i % 2, 64 + i, i % 3 ? 0 : VU_POST_INDIRECT);
                if (i % 2) /* QEMU stopping the device first, or QEMU killed */
                        assert_int_equal(vu_frontend_stop(fe, NULL), 0);
                if (i % 5 == 0) { /* a request left in flight at disconnect */
                        env->echo.hold = true;
                        assert_int_equal(vu_frontend_submit(fe, 0, "zz", 2, 2, 0, 9), 0);
                }
                close_and_wait(env, fe);
                env->echo.hold = false;
                assert_int_equal(env->echo.n_held, 0);
                if (i == 9) { /* after warm-up: allocator pools and caches are primed */
                        fds = count_fds();
                        heap = mallinfo2().uordblks;
                }
        }
        assert_int_equal(env->echo.disconnects, 110);
        assert_int_equal(count_fds(), fds);
        /* 100 sessions; a leak of even 100 bytes per session would show. Under ASan mallinfo2() sees
         * nothing and the leak checker does this job. */
        assert_true(mallinfo2().uordblks <= heap + 8192);
}

static void test_second_frontend_waits_its_turn(void **state) {
        Env *env = *state;
        VuFrontend *first = connect_default(env), *second;

        assert_int_equal(vu_frontend_start(first), 0);
        /* Queued in the listen backlog while the first one is served. */
        second = connect_default(env);
        check_echo(first, 0, 100, 0);
        assert_int_equal(env->echo.connects, 1);
        vu_frontend_free(first);
        /* Served as soon as the first one is gone. */
        assert_int_equal(vu_frontend_start(second), 0);
        check_echo(second, 1, 100, VU_POST_INDIRECT);
        assert_int_equal(env->echo.connects, 2);
        close_and_wait(env, second);
}

/* ---- a malicious frontend ----------------------------------------------------------------------------- */

typedef enum Expect {
        EXPECT_HANGUP,  /* protocol violation: the backend closes the connection */
        EXPECT_REFUSED, /* a failure ack, or a hangup */
        EXPECT_NOTHING, /* we hang up ourselves */
} Expect;

static void expect_outcome(VuFrontend *fe, int r, Expect e) {
        switch (e) {
        case EXPECT_HANGUP:
                assert_int_equal(vu_frontend_wait_hangup(fe), 0);
                break;
        case EXPECT_REFUSED:
                if (r != -EIO && r != -ECONNRESET)
                        fail_msg("expected a failure ack or a hangup, got %d", r);
                break;
        case EXPECT_NOTHING:
                break;
        }
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t rng(void) {
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        return rng_state;
}

static void garbage_random(Env *env, VuFrontend *fe) {
        uint8_t buf[4096];

        for (size_t i = 0; i < sizeof(buf); i++)
                buf[i] = (uint8_t) rng();
        assert_int_equal(vu_frontend_send_raw(fe, buf, sizeof(buf), NULL, 0), 0);
        expect_outcome(fe, 0, EXPECT_HANGUP);
}

static void send_hdr(VuFrontend *fe,
                     uint32_t request,
                     uint32_t flags,
                     uint32_t size,
                     const void *p,
                     size_t len,
                     const int *fds,
                     unsigned n_fds,
                     Expect e) {
        assert_int_equal(vu_frontend_send_msg(fe, request, flags, size, p, len, fds, n_fds), 0);
        expect_outcome(fe, 0, e);
}

static void test_malicious_frontend(void **state) {
        Env *env = *state;
        uint8_t zeros[64] = {};
        int efd, mfd, two[2];
        unsigned fds_before;

        clean_session(env);
        fds_before = count_fds();
        efd = eventfd(0, EFD_CLOEXEC);
        mfd = memfd_create("small", MFD_CLOEXEC);
        assert_true(efd >= 0 && mfd >= 0);
        assert_int_equal(ftruncate(mfd, 4096), 0);
        two[0] = two[1] = efd;

        for (unsigned c = 0;; c++) {
                VuFrontend *fe = connect_default(env);
                bool done = false;

                switch (c) {
                case 0:
                        for (unsigned k = 0; k < 4; k++) {
                                garbage_random(env, fe);
                                close_and_wait(env, fe);
                                fe = connect_default(env);
                        }
                        break;
                case 1: /* payload beyond 4096 */
                        send_hdr(fe, VHOST_USER_SET_FEATURES, 1, 5000, NULL, 0, NULL, 0, EXPECT_HANGUP);
                        break;
                case 2: /* wrong sizes */
                        send_hdr(fe, VHOST_USER_SET_VRING_NUM, 1, 4, zeros, 4, NULL, 0, EXPECT_HANGUP);
                        break;
                case 3:
                        send_hdr(fe, VHOST_USER_GET_FEATURES, 1, 8, zeros, 8, NULL, 0, EXPECT_HANGUP);
                        break;
                case 4:
                        assert_int_equal(vu_frontend_init(fe), 0);
                        send_hdr(fe, VHOST_USER_SET_VRING_ADDR, 1, 39, zeros, 39, NULL, 0, EXPECT_HANGUP);
                        break;
                case 5: /* unknown ids */
                        send_hdr(fe, 99, 1, 0, NULL, 0, NULL, 0, EXPECT_HANGUP);
                        break;
                case 6:
                        send_hdr(fe, 0, 1, 0, NULL, 0, NULL, 0, EXPECT_HANGUP);
                        break;
                case 7:
                        send_hdr(fe, VHOST_USER_SET_LOG_BASE, 1, 16, zeros, 16, &efd, 1, EXPECT_HANGUP);
                        break;
                case 8: /* flags: reserved bits, version 2, REPLY set by a frontend */
                        send_hdr(fe, VHOST_USER_GET_FEATURES, 0x101, 0, NULL, 0, NULL, 0, EXPECT_HANGUP);
                        break;
                case 9:
                        send_hdr(fe, VHOST_USER_GET_FEATURES, 2, 0, NULL, 0, NULL, 0, EXPECT_HANGUP);
                        break;
                case 10:
                        send_hdr(fe, VHOST_USER_GET_FEATURES, 5, 0, NULL, 0, NULL, 0, EXPECT_HANGUP);
                        break;
                case 11: /* fds where none belong, missing where one must be, too many */
                        send_hdr(fe, VHOST_USER_GET_FEATURES, 1, 0, NULL, 0, &efd, 1, EXPECT_HANGUP);
                        break;
                case 12: {
                        struct vhost_user_mem_reg_msg m = {
                                .region = { 0x40000000, 4096, 0x7f0000000000, 0 },
                        };

                        assert_int_equal(vu_frontend_init(fe), 0);
                        send_hdr(fe, VHOST_USER_ADD_MEM_REG, 1, sizeof(m), &m, sizeof(m), NULL, 0,
                                 EXPECT_HANGUP);
                        break;
                }
                case 13: {
                        struct {
                                struct vhost_user_mem_table_hdr h;
                                struct vhost_user_mem_region r[2];
                        } t = { .h.nregions = 2,
                                .r = { { 0x40000000, 4096, 0x7f0000000000, 0 },
                                       { 0x50000000, 4096, 0x7f1000000000, 0 } } };

                        send_hdr(fe, VHOST_USER_SET_MEM_TABLE, 1, sizeof(t), &t, sizeof(t), &efd, 1,
                                 EXPECT_HANGUP);
                        break;
                }
                case 14: {
                        uint64_t v = 0;

                        send_hdr(fe, VHOST_USER_SET_VRING_CALL, 1, 8, &v, 8, two, 2, EXPECT_HANGUP);
                        break;
                }
                case 15: { /* ring index beyond the queues, bad sizes: refused */
                        struct vhost_user_vring_state s = { 5, 16 };

                        assert_int_equal(vu_frontend_init(fe), 0);
                        expect_outcome(fe,
                                       vu_frontend_message(fe, VHOST_USER_SET_VRING_NUM, &s, 8, NULL, 0,
                                                           NULL, 0),
                                       EXPECT_REFUSED);
                        break;
                }
                case 16:
                case 17:
                case 18: {
                        struct vhost_user_vring_state s = { 0, c == 16 ? 0 : c == 17 ? 3 : 2048 };

                        assert_int_equal(vu_frontend_init(fe), 0);
                        expect_outcome(fe,
                                       vu_frontend_message(fe, VHOST_USER_SET_VRING_NUM, &s, 8, NULL, 0,
                                                           NULL, 0),
                                       EXPECT_REFUSED);
                        break;
                }
                case 19: { /* a region larger than its file */
                        struct vhost_user_mem_reg_msg m = {
                                .region = { 0x40000000, 1 << 20, 0x7f0000000000, 0 },
                        };

                        assert_int_equal(vu_frontend_init(fe), 0);
                        expect_outcome(fe,
                                       vu_frontend_message(fe, VHOST_USER_ADD_MEM_REG, &m, sizeof(m), &mfd,
                                                           1, NULL, 0),
                                       EXPECT_REFUSED);
                        break;
                }
                case 20: { /* misaligned ring address */
                        struct vhost_user_vring_addr a = { .index = 0, .desc_user_addr = 0x7f0012340008 };

                        assert_int_equal(vu_frontend_init(fe), 0);
                        expect_outcome(fe,
                                       vu_frontend_message(fe, VHOST_USER_SET_VRING_ADDR, &a, sizeof(a),
                                                           NULL, 0, NULL, 0),
                                       EXPECT_REFUSED);
                        break;
                }
                case 21: /* half a header, then EOF */
                        assert_int_equal(vu_frontend_send_raw(fe, zeros, 6, NULL, 0), 0);
                        break;
                case 22: { /* half a payload, then EOF, with an fd in flight */
                        uint64_t v = 0;

                        assert_int_equal(vu_frontend_init(fe), 0);
                        send_hdr(fe, VHOST_USER_SET_VRING_KICK, 1, 8, &v, 4, &efd, 1, EXPECT_NOTHING);
                        break;
                }
                case 23: /* a running session killed without GET_VRING_BASE, with a request in flight */
                        assert_int_equal(vu_frontend_start(fe), 0);
                        env->echo.hold = true;
                        assert_int_equal(vu_frontend_submit(fe, 0, "x", 1, 1, 0, 1), 0);
                        PUMP_UNTIL(env, env->echo.n_held == 1);
                        env->echo.hold = false;
                        break;
                default:
                        done = true;
                        break;
                }
                close_and_wait(env, fe);
                if (done)
                        break;
                /* The backend survived, listens, and serves a clean QEMU session. */
                clean_session(env);
                assert_int_equal(env->echo.n_held, 0);
        }
        close(efd);
        close(mfd);
        assert_int_equal(count_fds(), fds_before);
}

/* ---- guest-level violations ----------------------------------------------------------------------------
 */

static void test_bad_head_breaks_only_that_ring(void **state) {
        Env *env = *state;
        VuFrontend *fe = connect_default(env);

        assert_int_equal(vu_frontend_start(fe), 0);
        check_echo(fe, 0, 10, 0);
        assert_int_equal(vu_frontend_publish_head(fe, 0, 300), 0); /* ring has 256 */
        assert_int_equal(vu_frontend_kick(fe, 0), 0);
        assert_int_equal(vu_frontend_wait_err(fe, 0), 0);
        /* The other ring still works; a driver reset repairs the broken one. */
        check_echo(fe, 1, 10, 0);
        assert_int_equal(vu_frontend_reset_rings(fe), 0);
        check_echo(fe, 0, 10, 0);
        close_and_wait(env, fe);
}

static void test_descriptor_loop_breaks_ring(void **state) {
        Env *env = *state;
        VuFrontend *fe = connect_default(env);
        VuRingView v;
        uint16_t d[2];
        uint64_t buf;

        assert_int_equal(vu_frontend_start(fe), 0);
        assert_int_equal(vu_frontend_mem_alloc(fe, 64, 0, &buf), 0);
        assert_int_equal(vu_frontend_ring_view(fe, 1, &v), 0);
        assert_int_equal(vu_frontend_reserve_desc(fe, 1, 2, d), 0);
        v.desc[d[0]] =
                (struct vring_desc){ htole64(buf), htole32(8), htole16(VRING_DESC_F_NEXT), htole16(d[1]) };
        v.desc[d[1]] = (struct vring_desc){ htole64(buf + 8), htole32(8), htole16(VRING_DESC_F_NEXT),
                                            htole16(d[0]) };
        assert_int_equal(vu_frontend_publish_head(fe, 1, d[0]), 0);
        assert_int_equal(vu_frontend_kick(fe, 1), 0);
        assert_int_equal(vu_frontend_wait_err(fe, 1), 0);
        check_echo(fe, 0, 10, 0);
        close_and_wait(env, fe);
}

/* ---- backend in its own thread --------------------------------------------------------------------------
 */

typedef struct Threaded {
        sd_event *event;
        Echo echo;
        int quit_fd;
} Threaded;

static int on_quit(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        return sd_event_exit(sd_event_source_get_event(s), 0);
}

static void *backend_thread(void *p) {
        Threaded *t = p;

        assert_int_equal(sd_event_loop(t->event), 0);
        return NULL;
}

static void test_threaded_backend_without_pump(void **state) {
        Env *env = *state;
        Threaded t = {};
        VhostDevConfig cfg = { .num_queues = 2,
                               .max_queue_size = 1024,
                               .device_features = DEVICE_FEATURES,
                               .config_size = CONFIG_SIZE };
        char path[160];
        VuFrontendOptions o;
        VuFrontend *fe;
        pthread_t th;
        uint16_t bases[2];
        uint8_t req[300], resp[300];
        size_t len;
        uint64_t one = 1;

        snprintf(path, sizeof(path), "%s/threaded.sock", env->dir);
        t.quit_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        assert_true(t.quit_fd >= 0);
        assert_int_equal(sd_event_new(&t.event), 0);
        assert_int_equal(sd_event_add_io(t.event, NULL, t.quit_fd, EPOLLIN, on_quit, NULL), 0);
        assert_int_equal(vhost_dev_new(t.event, &cfg, &echo_ops, &t.echo, &t.echo.dev), 0);
        assert_int_equal(vhost_dev_listen_path(t.echo.dev, path), 0);
        assert_int_equal(pthread_create(&th, NULL, backend_thread, &t), 0);

        opts_for(env, &o);
        o.pump = NULL;
        o.event_idx = true;
        for (unsigned session = 0; session < 3; session++) {
                assert_int_equal(vu_frontend_connect(&o, path, &fe), 0);
                assert_int_equal(vu_frontend_start(fe), 0);
                for (unsigned i = 0; i < 200; i++) {
                        memset(req, (int) i, sizeof(req));
                        assert_int_equal(vu_frontend_submit(fe, i % 2, req, 1 + i, sizeof(resp),
                                                            i % 3 ? 0 : VU_POST_INDIRECT, i),
                                         0);
                }
                for (unsigned i = 0; i < 200; i++) {
                        assert_int_equal(vu_frontend_collect(fe, i % 2, i, resp, sizeof(resp), &len), 0);
                        assert_int_equal(len, 1 + i);
                        assert_int_equal(resp[i], (uint8_t) i);
                }
                assert_int_equal(vu_frontend_stop(fe, bases), 0);
                assert_int_equal(bases[0], 100);
                assert_int_equal(bases[1], 100);
                assert_int_equal(vu_frontend_resume(fe), 0);
                check_echo(fe, 0, 1000, VU_POST_INDIRECT);
                vu_frontend_free(fe);
        }

        assert_int_equal(write(t.quit_fd, &one, sizeof(one)), (ssize_t) sizeof(one));
        assert_int_equal(pthread_join(th, NULL), 0);
        assert_true(t.echo.connects >= 2); /* the last disconnect may race the quit */
        vhost_dev_free(t.echo.dev);
        sd_event_unref(t.event);
        close(t.quit_fd);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_handshake_and_echo, env_setup, env_teardown),
                cmocka_unit_test_setup_teardown(test_handshake_set_mem_table_without_reply_ack, env_setup,
                                                env_teardown),
                cmocka_unit_test_setup_teardown(test_handshake_qemu_need_reply_subset, env_setup,
                                                env_teardown),
                cmocka_unit_test_setup_teardown(test_handshake_event_idx, env_setup, env_teardown),
                cmocka_unit_test_setup_teardown(test_many_in_flight, env_setup, env_teardown),
                cmocka_unit_test_setup_teardown(test_many_in_flight_event_idx, env_setup, env_teardown),
                cmocka_unit_test_setup_teardown(test_multi_segment_chains, env_setup, env_teardown),
                cmocka_unit_test_setup_teardown(test_request_posted_before_start, env_setup, env_teardown),
                cmocka_unit_test_setup_teardown(test_event_idx_exact_notifications, env_setup, env_teardown),
                cmocka_unit_test_setup_teardown(test_no_interrupt_suppresses_calls, env_setup, env_teardown),
                cmocka_unit_test_setup_teardown(test_event_buffers_stay_posted, env_setup, env_teardown),
                cmocka_unit_test_setup_teardown(test_stop_resume_keeps_in_flight, env_setup, env_teardown),
                cmocka_unit_test_setup_teardown(test_kick_while_stopped_served_on_resume, env_setup,
                                                env_teardown),
                cmocka_unit_test_setup_teardown(test_driver_reset_drops_held_requests, env_setup,
                                                env_teardown),
                cmocka_unit_test_setup_teardown(test_reset_device_then_reprobe, env_setup, env_teardown),
                cmocka_unit_test_setup_teardown(test_reconnect_100_times_without_leaks, env_setup,
                                                env_teardown),
                cmocka_unit_test_setup_teardown(test_second_frontend_waits_its_turn, env_setup,
                                                env_teardown),
                cmocka_unit_test_setup_teardown(test_malicious_frontend, env_setup, env_teardown),
                cmocka_unit_test_setup_teardown(test_bad_head_breaks_only_that_ring, env_setup,
                                                env_teardown),
                cmocka_unit_test_setup_teardown(test_descriptor_loop_breaks_ring, env_setup, env_teardown),
                cmocka_unit_test_setup_teardown(test_threaded_backend_without_pump, env_setup, env_teardown),
        };

        signal(SIGPIPE, SIG_IGN);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
