/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The command line of vhost-user-video (service/worker/options.c): every flag, and every refusal. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <syslog.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/macro.h"
#include "worker/options.h"
#include "worker/sandbox.h"

static int parse(WorkerOptions *o, char *error, size_t size, ...) {
        char *argv[32] = { (char *) "vhost-user-video" };
        int argc = 1;
        va_list ap;
        const char *a;

        va_start(ap, size);
        while ((a = va_arg(ap, const char *)) && argc < 31)
                argv[argc++] = (char *) a;
        va_end(ap);
        return worker_options_parse(argc, argv, o, error, size);
}

#define PARSE(o, err, ...) parse(o, err, sizeof(err), __VA_ARGS__, NULL)

static void test_rust_vmm_short_flags(void **state) {
        WorkerOptions o;
        char err[256];

        assert_int_equal(PARSE(&o, err, "-s", "/run/x.sock", "-d", "/dev/video3", "-b", "null"), 0);
        assert_int_equal(o.action, WORKER_ACTION_RUN);
        assert_string_equal(o.socket_path, "/run/x.sock");
        assert_string_equal(o.v4l2_device, "/dev/video3");
        assert_string_equal(o.backend, "null");
        assert_int_equal(o.socket_fd, -1);
        assert_int_equal(o.control_fd, -1);
        assert_int_equal(o.device_fd, -1);
        assert_int_equal(o.log_level, LOG_INFO);
        worker_options_done(&o);
}

static void test_long_flags_and_defaults(void **state) {
        WorkerOptions o;
        char err[256];

        assert_int_equal(PARSE(&o, err, "--socket-fd=3", "--backend=null", "--control-fd", "5",
                               "--allow-uid=1000", "--allow-uid=1001", "--allow-uid=1000", "--force-copy",
                               "--threads=4", "--vm=vm one", "--alias=video0", "--host-device=/dev/video9",
                               "-v"),
                         0);
        assert_null(o.socket_path);
        assert_int_equal(o.socket_fd, 3);
        assert_int_equal(o.control_fd, 5);
        assert_string_equal(o.v4l2_device, WORKER_DEFAULT_V4L2_DEVICE);
        assert_int_equal(o.n_allowed_uids, 2); /* duplicates folded */
        assert_int_equal(o.allowed_uids[0], 1000);
        assert_int_equal(o.allowed_uids[1], 1001);
        assert_true(o.force_copy);
        assert_int_equal(o.threads, 4);
        assert_string_equal(o.vm, "vm one");
        assert_string_equal(o.alias, "video0");
        assert_string_equal(o.host_device, "/dev/video9");
        assert_int_equal(o.log_level, LOG_DEBUG);
        worker_options_done(&o);
}

static void test_actions_need_nothing_else(void **state) {
        WorkerOptions o;
        char err[256];

        assert_int_equal(PARSE(&o, err, "--print-capabilities"), 0);
        assert_int_equal(o.action, WORKER_ACTION_PRINT_CAPABILITIES);
        worker_options_done(&o);
        assert_int_equal(PARSE(&o, err, "-h"), 0);
        assert_int_equal(o.action, WORKER_ACTION_HELP);
        worker_options_done(&o);
        assert_int_equal(PARSE(&o, err, "--version"), 0);
        assert_int_equal(o.action, WORKER_ACTION_VERSION);
        worker_options_done(&o);
}

static void expect_refused(const char *needle, ...) {
        char *argv[32] = { (char *) "vhost-user-video" };
        WorkerOptions o;
        char err[256];
        int argc = 1;
        va_list ap;
        const char *a;

        va_start(ap, needle);
        while ((a = va_arg(ap, const char *)) && argc < 31)
                argv[argc++] = (char *) a;
        va_end(ap);
        assert_int_equal(worker_options_parse(argc, argv, &o, err, sizeof(err)), -EINVAL);
        if (!strstr(err, needle))
                fail_msg("'%s' does not contain '%s'", err, needle);
        assert_null(strchr(err, '\n'));
        /* Nothing is left allocated on failure, and done() is harmless. */
        assert_null(o.socket_path);
        assert_null(o.backend);
        worker_options_done(&o);
}

static void test_refusals(void **state) {
        char long_path[120];

        memset(long_path, 'p', sizeof(long_path));
        long_path[0] = '/';
        long_path[108] = '\0';
        expect_refused("unknown option '--nope'", "--nope", NULL);
        expect_refused("unknown option '-q'", "-q", NULL);
        expect_refused("needs an argument", "-s", NULL);
        expect_refused("unknown backend 'h264'", "-b", "h264", "-s", "/x", NULL);
        expect_refused("null", "-b", "h264", "-s", "/x", NULL); /* the message lists what exists */
        expect_refused("one of --socket-path, --socket-fd, --connection-fd or --connect-path", "-b", "null",
                       NULL);
        expect_refused("mutually exclusive", "-b", "null", "-s", "/x", "--socket-fd=3", NULL);
        expect_refused("--backend is required", "-s", "/x", NULL);
        expect_refused("too long", "-b", "null", "-s", long_path, NULL);
        expect_refused("empty --socket-path", "-b", "null", "-s", "", NULL);
        expect_refused("invalid --socket-fd '-1'", "-b", "null", "--socket-fd=-1", NULL);
        expect_refused("invalid --socket-fd '3x'", "-b", "null", "--socket-fd=3x", NULL);
        expect_refused("invalid --control-fd '99999999999'", "-b", "null", "-s", "/x",
                       "--control-fd=99999999999", NULL);
        expect_refused("invalid --threads", "-b", "null", "-s", "/x", "--threads=65", NULL);
        expect_refused("invalid --threads", "-b", "null", "-s", "/x", "--threads=", NULL);
        expect_refused("invalid --allow-uid 'root'", "-b", "null", "-s", "/x", "--allow-uid=root", NULL);
        expect_refused("invalid --allow-uid", "-b", "null", "-s", "/x", "--allow-uid=4294967295", NULL);
        expect_refused("--device-fd is only for the v4l2 backends", "-b", "null", "-s", "/x",
                       "--device-fd=5", NULL);
        expect_refused("must differ", "-b", "null", "--socket-fd=5", "--control-fd=5", NULL);
        expect_refused("unexpected argument 'extra'", "-b", "null", "-s", "/x", "extra", NULL);
        /* the fd and client transports */
        expect_refused("mutually exclusive", "-b", "null", "-s", "/x", "--connect-path=/y", NULL);
        expect_refused("mutually exclusive", "-b", "null", "--connection-fd=3", "--socket-fd=4", NULL);
        expect_refused("mutually exclusive", "-b", "null", "--connection-fd=3", "--connect-path=/y", NULL);
        expect_refused("not an absolute path", "-b", "null", "--connect-path=rel/q.sock", NULL);
        expect_refused("too long", "-b", "null", "--connect-path", long_path, NULL);
        expect_refused("invalid --connection-fd 'x'", "-b", "null", "--connection-fd=x", NULL);
        expect_refused("must differ", "-b", "null", "--connection-fd=5", "--control-fd=5", NULL);
}

static void test_path_of_exactly_107_bytes_is_accepted(void **state) {
        char path[108];
        WorkerOptions o;
        char err[256];

        memset(path, 'p', sizeof(path));
        path[0] = '/';
        path[107] = '\0';
        assert_int_equal(PARSE(&o, err, "-b", "null", "-s", path), 0);
        worker_options_done(&o);
}

static void test_check_environment(void **state) {
        char dir[] = "/tmp/worker-opts-XXXXXX", sock[64], file[64], missing[96];
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd, lfd, sp[2];
        WorkerOptions o;
        char err[256];

        assert_non_null(mkdtemp(dir));
        snprintf(sock, sizeof(sock), "%s/s.sock", dir);
        snprintf(file, sizeof(file), "%s/file", dir);
        snprintf(missing, sizeof(missing), "%s/missing/s.sock", dir);
        fd = open(file, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
        assert_true(fd >= 0);

        assert_int_equal(PARSE(&o, err, "-b", "null", "-s", sock), 0);
        assert_int_equal(worker_options_check(&o, err, sizeof(err)), 0);
        worker_options_done(&o);
        assert_int_equal(PARSE(&o, err, "-b", "null", "-s", missing), 0);
        assert_true(worker_options_check(&o, err, sizeof(err)) < 0);
        assert_non_null(strstr(err, "missing"));
        worker_options_done(&o);
        assert_int_equal(PARSE(&o, err, "-b", "null", "-s", file), 0);
        assert_true(worker_options_check(&o, err, sizeof(err)) < 0);
        assert_non_null(strstr(err, "not a socket"));
        worker_options_done(&o);

        /* --socket-fd must be a listening unix stream socket; --control-fd a seqpacket one. */
        {
                char a[16], b[16];
                snprintf(a, sizeof(a), "--socket-fd=%d", fd);
                assert_int_equal(PARSE(&o, err, "-b", "null", a), 0);
                assert_true(worker_options_check(&o, err, sizeof(err)) < 0);
                assert_non_null(strstr(err, "not a stream socket"));
                worker_options_done(&o);

                lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                assert_true(lfd >= 0);
                snprintf(a, sizeof(a), "--socket-fd=%d", lfd);
                assert_int_equal(PARSE(&o, err, "-b", "null", a), 0);
                assert_true(worker_options_check(&o, err, sizeof(err)) < 0);
                assert_non_null(strstr(err, "not a listening socket"));
                worker_options_done(&o);

                snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
                assert_int_equal(bind(lfd, (struct sockaddr *) &sa, sizeof(sa)), 0);
                assert_int_equal(listen(lfd, 1), 0);
                assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
                snprintf(b, sizeof(b), "--control-fd=%d", sp[0]);
                assert_int_equal(PARSE(&o, err, "-b", "null", a, b), 0);
                assert_true(worker_options_check(&o, err, sizeof(err)) < 0);
                assert_non_null(strstr(err, "not a seqpacket socket"));
                worker_options_done(&o);
                close(sp[0]);
                close(sp[1]);

                assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp), 0);
                snprintf(b, sizeof(b), "--control-fd=%d", sp[0]);
                assert_int_equal(PARSE(&o, err, "-b", "null", a, b), 0);
                assert_int_equal(worker_options_check(&o, err, sizeof(err)), 0);
                worker_options_done(&o);
                close(sp[0]);
                close(sp[1]);
                close(lfd);
        }
        close(fd);
        unlink(file);
        unlink(sock);
        rmdir(dir);
}

/* --sandbox is off by default, on with the flag where the build can filter system calls, and refused in one
 * line where it cannot; --print-capabilities and --help say so. */
static void test_sandbox_flag(void **state) {
        char err[256], *buf = NULL;
        size_t len = 0;
        WorkerOptions o;
        FILE *f;
        int r;

        assert_int_equal(PARSE(&o, err, "-s", "/run/x.sock", "-b", "null"), 0);
        assert_false(o.sandbox);
        worker_options_done(&o);

        r = PARSE(&o, err, "-s", "/run/x.sock", "-b", "null", "--sandbox");
        if (sandbox_have_seccomp()) {
                assert_int_equal(r, 0);
                assert_true(o.sandbox);
                worker_options_done(&o);
        } else {
                assert_int_equal(r, -EOPNOTSUPP);
                assert_non_null(strstr(err, "--sandbox is not available"));
        }

        f = open_memstream(&buf, &len);
        assert_non_null(f);
        worker_print_capabilities(f);
        worker_print_help(f);
        fclose(f);
        assert_int_equal(strstr(buf, "\"sandbox\"") != NULL, sandbox_have_seccomp());
        assert_non_null(strstr(buf, "--sandbox"));
        free(buf);
}

static void test_print_capabilities_lists_backends(void **state) {
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);

        assert_non_null(f);
        worker_print_capabilities(f);
        fclose(f);
        assert_non_null(strstr(buf, "\"type\": \"video\""));
        assert_non_null(strstr(buf, "\"null\""));
        free(buf);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_rust_vmm_short_flags),
                cmocka_unit_test(test_long_flags_and_defaults),
                cmocka_unit_test(test_actions_need_nothing_else),
                cmocka_unit_test(test_refusals),
                cmocka_unit_test(test_path_of_exactly_107_bytes_is_accepted),
                cmocka_unit_test(test_check_environment),
                cmocka_unit_test(test_print_capabilities_lists_backends),
                cmocka_unit_test(test_sandbox_flag),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
