/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/control.h"
#include "common/macro.h"

static void test_roundtrip_every_type(void **state) {
        const CtlMsg msgs[] = {
                { .type = CTL_MSG_HELLO, .hello = { .pid = 42, .backend = "ffmpeg-decoder" } },
                { .type = CTL_MSG_PEER_CONNECTED, .peer = { 7, 1000, 1001 } },
                { .type = CTL_MSG_PEER_REJECTED, .peer = { 8, 65534, 65534 } },
                { .type = CTL_MSG_PEER_DISCONNECTED },
                { .type = CTL_MSG_STATS,
                  .stats = { .cookie = 3, .active_streams = 2, .connections = 1ull << 40, .disconnects = 5,
                             .streams_created = 6, .errors = 7, .bytes_in = 8, .bytes_out = UINT64_MAX } },
                { .type = CTL_MSG_STATS_REQUEST, .stats_cookie = 0xdeadbeef },
                { .type = CTL_MSG_SET_LOG_LEVEL, .log_level = 7 },
                { .type = CTL_MSG_DISCONNECT_PEER },
                { .type = CTL_MSG_SHUTDOWN },
        };
        uint8_t buf[CTL_MSG_MAX];

        for (size_t i = 0; i < ELEMENTSOF(msgs); i++) {
                CtlMsg out;
                int n = ctl_encode(&msgs[i], buf, sizeof(buf));
                assert_true(n >= 8);
                assert_int_equal(ctl_decode(buf, (size_t) n, &out), 0);
                assert_int_equal(out.type, msgs[i].type);
                assert_memory_equal(&out.stats, &msgs[i].stats, sizeof(CtlStats));
                assert_non_null(ctl_msg_type_to_string(out.type));
        }
}

static void test_decode_rejects_short_and_long(void **state) {
        CtlMsg m = { .type = CTL_MSG_STATS_REQUEST, .stats_cookie = 1 }, out;
        uint8_t buf[CTL_MSG_MAX];
        int n = ctl_encode(&m, buf, sizeof(buf));

        for (int k = 0; k < n; k++)
                assert_int_equal(ctl_decode(buf, (size_t) k, &out), -EBADMSG);
        assert_int_equal(ctl_decode(buf, (size_t) n + 1, &out), -EBADMSG);
}

static void test_decode_rejects_bad_header(void **state) {
        CtlMsg m = { .type = CTL_MSG_SHUTDOWN }, out;
        uint8_t buf[CTL_MSG_MAX];
        int n = ctl_encode(&m, buf, sizeof(buf));

        buf[0] = 2; /* version */
        assert_int_equal(ctl_decode(buf, (size_t) n, &out), -EBADMSG);
        buf[0] = 1;
        buf[2] = 200; /* unknown type */
        assert_int_equal(ctl_decode(buf, (size_t) n, &out), -EBADMSG);
        buf[2] = CTL_MSG_SHUTDOWN;
        buf[4] = 4; /* size field disagrees with the datagram */
        assert_int_equal(ctl_decode(buf, (size_t) n, &out), -EBADMSG);
        buf[4] = 0;
        assert_int_equal(ctl_decode(buf, (size_t) n, &out), 0);
}

static void test_decode_rejects_unterminated_name_and_bad_level(void **state) {
        CtlMsg m = { .type = CTL_MSG_HELLO, .hello = { .pid = 1, .backend = "null" } }, out;
        uint8_t buf[CTL_MSG_MAX];
        int n = ctl_encode(&m, buf, sizeof(buf));

        memset(buf + 8 + 4, 'x', CTL_BACKEND_NAME_MAX);
        assert_int_equal(ctl_decode(buf, (size_t) n, &out), -EBADMSG);

        m = (CtlMsg){ .type = CTL_MSG_SET_LOG_LEVEL, .log_level = 8 };
        assert_int_equal(ctl_encode(&m, buf, sizeof(buf)), -EINVAL);
        m.log_level = 3;
        n = ctl_encode(&m, buf, sizeof(buf));
        buf[8] = 9;
        assert_int_equal(ctl_decode(buf, (size_t) n, &out), -EBADMSG);
}

static void test_socketpair_send_recv_and_eof(void **state) {
        int fds[2];
        CtlMsg m = { .type = CTL_MSG_PEER_CONNECTED, .peer = { 1, 2, 3 } }, out;

        assert_int_equal(ctl_socketpair(fds), 0);
        assert_int_equal(ctl_recv(fds[1], &out), -EAGAIN);
        assert_int_equal(ctl_send(fds[0], &m), 0);
        assert_int_equal(ctl_recv(fds[1], &out), 1);
        assert_int_equal(out.type, CTL_MSG_PEER_CONNECTED);
        assert_int_equal(out.peer.gid, 3);

        /* A datagram larger than any message is refused, not truncated into something valid. */
        uint8_t big[CTL_MSG_MAX + 16] = { 1, 0, CTL_MSG_SHUTDOWN };
        assert_int_equal(send(fds[0], big, sizeof(big), 0), (ssize_t) sizeof(big));
        assert_int_equal(ctl_recv(fds[1], &out), -EBADMSG);

        close(fds[0]);
        assert_int_equal(ctl_recv(fds[1], &out), 0);
        close(fds[1]);
}

static void test_recv_closes_passed_fds(void **state) {
        int fds[2], extra[2];
        uint8_t buf[CTL_MSG_MAX];
        CtlMsg m = { .type = CTL_MSG_SHUTDOWN }, out;
        union {
                struct cmsghdr h;
                uint8_t b[CMSG_SPACE(sizeof(int))];
        } control = {};

        assert_int_equal(ctl_socketpair(fds), 0);
        assert_int_equal(pipe(extra), 0);
        int n = ctl_encode(&m, buf, sizeof(buf));
        struct iovec iov = { buf, (size_t) n };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &control,
                             .msg_controllen = sizeof(control) };
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &extra[0], sizeof(int));
        assert_int_equal(sendmsg(fds[0], &mh, 0), n);
        close(extra[0]);

        assert_int_equal(ctl_recv(fds[1], &out), -EBADMSG);
        /* The only read end was closed by ctl_recv(): writing now fails with EPIPE. */
        signal(SIGPIPE, SIG_IGN);
        assert_int_equal(write(extra[1], "x", 1), -1);
        assert_int_equal(errno, EPIPE);
        close(extra[1]);
        close(fds[0]);
        close(fds[1]);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_roundtrip_every_type),
                cmocka_unit_test(test_decode_rejects_short_and_long),
                cmocka_unit_test(test_decode_rejects_bad_header),
                cmocka_unit_test(test_decode_rejects_unterminated_name_and_bad_level),
                cmocka_unit_test(test_socketpair_send_recv_and_eof),
                cmocka_unit_test(test_recv_closes_passed_fds),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
