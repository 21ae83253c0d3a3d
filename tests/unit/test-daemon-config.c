/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include <cmocka.h>

#include "daemon/daemon-config.h"
#include "daemon/state.h"

static char dir[] = "/tmp/test-daemon-config-XXXXXX";

static const char *write_file(const char *name, const char *content) {
        static char path[256];
        FILE *f;

        snprintf(path, sizeof(path), "%s/%s", dir, name);
        f = fopen(path, "we");
        assert_non_null(f);
        fputs(content, f);
        fclose(f);
        return path;
}

/* Loads content; returns the result and the error message (caller frees). */
static int load(const char *content, DaemonConfig *c, char **error) {
        const char *p = write_file("c.conf", content);

        daemon_config_init(c);
        *error = NULL;
        return daemon_config_load(c, p, true, error);
}

static void test_defaults(void **state) {
        DaemonConfig c;

        daemon_config_init(&c);
        assert_int_equal(c.max_devices, DAEMON_DEFAULT_MAX_DEVICES);
        assert_int_equal(c.log_level, LOG_INFO);
        assert_int_equal(c.idle_exit_usec, 30 * UINT64_C(1000000));
        assert_null(c.socket_group);
        assert_string_equal(c.allowed_host_devices[0], "/dev/video*");
        assert_null(c.allowed_host_devices[1]);
        assert_true(c.worker_sandbox);
        assert_true(daemon_config_host_device_allowed(&c, "/dev/video3"));
        assert_false(daemon_config_host_device_allowed(&c, "/dev/media0"));
        assert_false(daemon_config_host_device_allowed(&c, "/dev/v4l/video3"));
        daemon_config_done(&c);
}

static void test_full_file(void **state) {
        DaemonConfig c;
        char *e;

        assert_int_equal(load("[Daemon]\nSocketGroup=0\nAllowedHostDevices=/dev/video1*;/tmp/x/*\n"
                              "MaxDevices=7\nLogLevel=debug\nIdleExitSec=0\nWorkerSandbox=no\n",
                              &c, &e),
                         0);
        assert_null(e);
        assert_string_equal(c.socket_group, "0");
        assert_int_equal(c.socket_gid, 0);
        assert_int_equal(c.max_devices, 7);
        assert_int_equal(c.log_level, LOG_DEBUG);
        assert_int_equal(c.idle_exit_usec, 0);
        assert_false(c.worker_sandbox);
        assert_true(daemon_config_host_device_allowed(&c, "/dev/video12"));
        assert_false(daemon_config_host_device_allowed(&c, "/dev/video2"));
        assert_true(daemon_config_host_device_allowed(&c, "/tmp/x/dev"));
        assert_false(daemon_config_host_device_allowed(&c, "/tmp/x/a/dev"));
        assert_non_null(c.path);
        daemon_config_done(&c);
}

static void test_worker_sandbox_values(void **state) {
        static const struct {
                const char *content;
                bool want;
        } cases[] = {
                { "[Daemon]\nWorkerSandbox=yes\n", true },    { "[Daemon]\nWorkerSandbox=true\n", true },
                { "[Daemon]\nWorkerSandbox=1\n", true },      { "[Daemon]\nWorkerSandbox=no\n", false },
                { "[Daemon]\nWorkerSandbox=false\n", false }, { "[Daemon]\nWorkerSandbox=0\n", false },
        };

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                DaemonConfig c;
                char *e;

                assert_int_equal(load(cases[i].content, &c, &e), 0);
                assert_int_equal(c.worker_sandbox, cases[i].want);
                daemon_config_done(&c);
        }
}

static void test_group_by_name(void **state) {
        DaemonConfig c;
        char *e;

        assert_int_equal(load("[Daemon]\nSocketGroup=root\n", &c, &e), 0);
        assert_int_equal(c.socket_gid, 0);
        daemon_config_done(&c);
}

/* Each bad file must fail and name the offending key and value. */
static void test_bad_values_are_reported(void **state) {
        static const struct {
                const char *content, *needle;
        } cases[] = {
                { "[Daemon]\nMaxDevices=0\n", "MaxDevices=0" },
                { "[Daemon]\nMaxDevices=-1\n", "MaxDevices=-1" },
                { "[Daemon]\nMaxDevices=lots\n", "MaxDevices=lots" },
                { "[Daemon]\nMaxDevices=99999999999999999999\n", "MaxDevices=" },
                { "[Daemon]\nLogLevel=chatty\n", "LogLevel=chatty" },
                { "[Daemon]\nIdleExitSec=soon\n", "IdleExitSec=soon" },
                { "[Daemon]\nWorkerSandbox=maybe\n", "WorkerSandbox=maybe" },
                { "[Daemon]\nSocketGroup=no-such-group-here\n", "SocketGroup=no-such-group-here" },
                { "[Daemon]\nAllowedHostDevices=video*\n", "AllowedHostDevices=video*" },
                { "[Daemon]\nFrobnicate=yes\n", "Frobnicate" },
                { "[Other]\nA=b\n", "[Other]" },
                { "this is not a keyfile\n", "c.conf" },
        };

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                DaemonConfig c;
                char *e;

                assert_int_equal(load(cases[i].content, &c, &e), -EINVAL);
                assert_non_null(e);
                assert_non_null(strstr(e, cases[i].needle));
                assert_non_null(strstr(e, dir));
                free(e);
                daemon_config_done(&c);
        }
}

static void test_missing_file(void **state) {
        DaemonConfig c;
        char *e = NULL;
        char path[256];

        snprintf(path, sizeof(path), "%s/none.conf", dir);
        daemon_config_init(&c);
        assert_int_equal(daemon_config_load(&c, path, false, &e), 0);
        assert_null(e);
        assert_int_equal(daemon_config_load(&c, path, true, &e), -EINVAL);
        assert_non_null(strstr(e, "none.conf"));
        free(e);
        daemon_config_done(&c);
}

static void test_state_round_trip(void **state) {
        uid_t uids[2] = { 107, 1000 };
        DeviceSpec s = {
                .vm = (char *) "vm one",
                .alias = (char *) "video3",
                .host_device = (char *) "/dev/video3",
                .backend = BACKEND_V4L2,
                .role = DEVICE_ROLE_ENCODER,
                .protocol = (char *) "virtio-video",
                .transport = (char *) "client",
                .socket_path = (char *) "/run/vv/vm/x/video3.sock",
                .peer_machine = (char *) "qemu-1-vm",
                .uuid = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16 },
                .uuid_size = 16,
                .socket_mode = 0640,
                .socket_user = (uid_t) -1,
                .socket_group = 107,
                .owner = 1000,
                .allowed_uids = uids,
                .n_allowed_uids = 2,
                .exclusive = true,
                .created_usec = 123456789,
                .driver = (char *) "vicodec",
                .card = (char *) "vicodec card",
        };
        DeviceSpec l = {};
        char path[256], *e = NULL;

        snprintf(path, sizeof(path), "%s/x.state", dir);
        assert_int_equal(device_spec_save(&s, path), 0);
        assert_int_equal(device_spec_load(path, &l, &e), 0);
        assert_string_equal(l.vm, s.vm);
        assert_string_equal(l.alias, s.alias);
        assert_string_equal(l.host_device, s.host_device);
        assert_int_equal(l.backend, BACKEND_V4L2);
        assert_int_equal(l.role, DEVICE_ROLE_ENCODER);
        assert_string_equal(l.socket_path, s.socket_path);
        assert_string_equal(l.transport, "client");
        assert_string_equal(l.peer_machine, "qemu-1-vm");
        assert_int_equal(l.uuid_size, 16);
        assert_memory_equal(l.uuid, s.uuid, 16);
        assert_int_equal(l.socket_mode, 0640);
        assert_int_equal(l.socket_user, (uid_t) -1);
        assert_int_equal(l.socket_group, 107);
        assert_int_equal(l.owner, 1000);
        assert_int_equal(l.n_allowed_uids, 2);
        assert_int_equal(l.allowed_uids[1], 1000);
        assert_true(l.exclusive);
        assert_int_equal(l.created_usec, 123456789);
        assert_string_equal(l.driver, "vicodec");
        device_spec_done(&l);
}

static void test_state_rejects_bad_files(void **state) {
        static const char *const bad[] = {
                "[Device]\nVM=a/b\nAlias=video0\nBackend=null\nProtocol=virtio-video\nTransport=server\nSocketPath=/x\n",
                "[Device]\nVM=a\nAlias=Video0\nBackend=null\nProtocol=virtio-video\nTransport=server\nSocketPath=/x\n",
                "[Device]\nVM=a\nAlias=video0\nBackend=gst\nProtocol=virtio-video\nTransport=server\nSocketPath=/x\n",
                "[Device]\nVM=a\nAlias=video0\nBackend=null\nRole=auto\nProtocol=virtio-video\nTransport=server\nSocketPath=/x\n",
                "[Device]\nVM=a\nAlias=video0\nBackend=v4l2\nHostDevice=\nProtocol=virtio-video\nTransport=server\nSocketPath=/x\n",
                "[Device]\nVM=a\nAlias=video0\nBackend=null\nProtocol=virtio-video\nTransport=server\nSocketPath=rel\n",
                "[Device]\nVM=a\nAlias=video0\nBackend=null\nProtocol=virtio-video\nTransport=server\nSocketPath=/x\nSocketMode=01777\n",
                "[Device]\nVM=a\nAlias=video0\nBackend=null\nProtocol=virtio-video\nTransport=server\nSocketPath=/x\nVMUUID=zz\n",
                "[Device]\nVM=a\nAlias=video0\nBackend=null\nProtocol=virtio-video\nTransport=server\nSocketPath=/x\nAllowedPeerUIDs=1;x\n",
                /* the fd transport is never persisted; an empty PeerMachine is not a machine */
                "[Device]\nVM=a\nAlias=video0\nBackend=null\nProtocol=virtio-video\nTransport=fd\nSocketPath=/x\n",
                "[Device]\nVM=a\nAlias=video0\nBackend=null\nProtocol=virtio-video\nTransport=server\nSocketPath=/x\nPeerMachine=\n",
                "garbage",
        };

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                DeviceSpec l = {};
                char *e = NULL;

                assert_int_equal(device_spec_load(write_file("bad.state", bad[i]), &l, &e), -EINVAL);
                assert_non_null(e);
                free(e);
                device_spec_done(&l);
        }
}

static void test_static_conf(void **state) {
        DeviceSpec l = {};
        char *e = NULL;

        assert_int_equal(device_spec_load_static(write_file("s.conf", "[Device]\nVM=web\nBackend=null\n"),
                                                 "web", &l, &e),
                         0);
        assert_string_equal(l.vm, "web");
        assert_string_equal(l.alias, "video0");
        assert_int_equal(l.role, DEVICE_ROLE_DECODER);
        assert_string_equal(l.static_instance, "web");
        device_spec_done(&l);
        assert_int_equal(device_spec_load_static(write_file("s.conf", "[Device]\nVM=web\nSocketPath=/x\n"),
                                                 "web", &l, &e),
                         -EINVAL);
        assert_non_null(strstr(e, "SocketPath"));
        free(e);
        device_spec_done(&l);
}

static int setup(void **state) {
        return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state) {
        char cmd[300];

        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        return system(cmd) == 0 ? 0 : -1;
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_defaults),
                cmocka_unit_test(test_full_file),
                cmocka_unit_test(test_group_by_name),
                cmocka_unit_test(test_worker_sandbox_values),
                cmocka_unit_test(test_bad_values_are_reported),
                cmocka_unit_test(test_missing_file),
                cmocka_unit_test(test_state_round_trip),
                cmocka_unit_test(test_state_rejects_bad_files),
                cmocka_unit_test(test_static_conf),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
