/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * virtio-videod on a private bus (management-plane.md §6.10, architecture.md §6 layer 3): a dbus-daemon
 * started here, a fake polkit authority on it (a thread owning org.freedesktop.PolicyKit1 that answers
 * CheckAuthorization from a script), the daemon started as a child with NOTIFY_SOCKET pointed at a socket of
 * ours (so we see READY=1 and act as its fd store), and workers played by tests/fakes/fake-worker. Nothing
 * sleeps: every wait steps a bus or polls an fd until a condition holds, with a generous deadline as a
 * safety net only.
 *
 * argv: <virtio-videod> <virtio-videod-fakeprobe> <fake-worker> <source root>
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <glib.h>
#include <systemd/sd-bus.h>

#include "common/bus-errors.h"
#include "common/macro.h"
#include "daemon/naming.h"
#include "frontend/frontend.h"
#include "frontend/video-client.h"
#include "null-stream.h"
#include "video/virtio-video-proto.h"

#ifndef __has_feature
#define __has_feature(x) 0
#endif
#if defined(__SANITIZE_ADDRESS__) || __has_feature(address_sanitizer)
/* ASan's allocator keeps freed chunks in its quarantine and per-class caches, so RSS grows with churn
 * alone; in that lane LeakSanitizer checks the daemon's exit (daemon_stop() wants status 0). */
#define RSS_SLACK_KB (8 * 1024)
#else
#define RSS_SLACK_KB 1024
#endif

#define DEADLINE_USEC (60 * UINT64_C(1000000))
#define NOBODY 65534
#define OTHER_UID 1 /* "daemon": dbus-daemon wants uids that resolve to a user */

static const char *arg_daemon, *arg_fakeprobe, *arg_worker, *arg_source, *arg_real_worker;
static const char *worker_in_use; /* what VIRTIO_VIDEOD_WORKER names for the daemons we start */

/* ---- small helpers ---------------------------------------------------------------------------------- */

static uint64_t now_usec(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000;
}

static void write_file(const char *path, const char *content) {
        FILE *f = fopen(path, "we");

        assert_non_null(f);
        fputs(content, f);
        assert_int_equal(fclose(f), 0);
}

static char *read_file(const char *path) {
        char *s = NULL;

        if (!g_file_get_contents(path, &s, NULL, NULL))
                return g_strdup("");
        return s;
}

static bool path_exists(const char *p) {
        return access(p, F_OK) == 0;
}

/* Waits for pid to exit; returns its wait status, or -1 at the deadline. */
static int wait_exit(pid_t pid) {
        int pidfd = (int) syscall(SYS_pidfd_open, pid, 0), status;
        struct pollfd p = { .fd = pidfd, .events = POLLIN };

        assert_true(pidfd >= 0);
        if (poll(&p, 1, (int) (DEADLINE_USEC / 1000)) <= 0) {
                close(pidfd);
                return -1;
        }
        close(pidfd);
        assert_int_equal(waitpid(pid, &status, 0), pid);
        return status;
}

static unsigned count_fds(pid_t pid) {
        char path[64];
        GDir *d;
        unsigned n = 0;

        snprintf(path, sizeof(path), "/proc/%d/fd", (int) pid);
        d = g_dir_open(path, 0, NULL);
        assert_non_null(d);
        while (g_dir_read_name(d))
                n++;
        g_dir_close(d);
        return n;
}

static unsigned long vm_rss_kb(pid_t pid) {
        char path[64], *s, *p;
        unsigned long v = 0;

        snprintf(path, sizeof(path), "/proc/%d/status", (int) pid);
        s = read_file(path);
        p = strstr(s, "VmRSS:");
        if (p)
                v = strtoul(p + 6, NULL, 10);
        g_free(s);
        return v;
}

/* ---- the private bus ------------------------------------------------------------------------------ */

typedef struct PrivateBus {
        char dir[PATH_MAX];
        char address[PATH_MAX + 32];
        pid_t pid;
} PrivateBus;

static void bus_start(PrivateBus *b, const char *dir) {
        char conf[PATH_MAX + 16], services[PATH_MAX + 16], *text;
        int pipefd[2];
        struct pollfd p;
        ssize_t n;

        snprintf(b->dir, sizeof(b->dir), "%s", dir);
        snprintf(conf, sizeof(conf), "%s/bus.conf", dir);
        snprintf(services, sizeof(services), "%s/services", dir);
        (void) mkdir(services, 0755);
        /* a session-style bus that lets every user connect and do anything: authorization is the daemon's */
        text = g_strdup_printf(
                "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN\"\n"
                " \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n"
                "<busconfig>\n"
                "  <type>session</type>\n"
                "  <listen>unix:path=%s/bus</listen>\n"
                "  <auth>EXTERNAL</auth>\n"
                "  <servicedir>%s</servicedir>\n"
                "  <policy context=\"default\">\n"
                "    <allow user=\"*\"/>\n"
                "    <allow send_destination=\"*\" eavesdrop=\"true\"/>\n"
                "    <allow eavesdrop=\"true\"/>\n"
                "    <allow own=\"*\"/>\n"
                "  </policy>\n"
                "</busconfig>\n",
                dir, services);
        write_file(conf, text);
        g_free(text);

        assert_int_equal(pipe2(pipefd, O_CLOEXEC), 0);
        b->pid = fork();
        assert_true(b->pid >= 0);
        if (b->pid == 0) {
                char arg[64];
                int fd = dup(pipefd[1]);                 /* without CLOEXEC */
                (void) prctl(PR_SET_PDEATHSIG, SIGTERM); /* never outlive a crashed test */
                snprintf(arg, sizeof(arg), "--print-address=%d", fd);
                execlp("dbus-daemon", "dbus-daemon", "--nofork", "--nopidfile", "--nosyslog",
                       "--config-file", conf, arg, (char *) NULL);
                _exit(127);
        }
        close(pipefd[1]);
        p = (struct pollfd){ .fd = pipefd[0], .events = POLLIN };
        assert_int_equal(poll(&p, 1, (int) (DEADLINE_USEC / 1000)), 1);
        n = read(pipefd[0], b->address, sizeof(b->address) - 1);
        assert_true(n > 0);
        b->address[n] = 0;
        b->address[strcspn(b->address, "\n")] = 0;
        close(pipefd[0]);
}

static void bus_stop(PrivateBus *b) {
        if (b->pid > 0) {
                kill(b->pid, SIGTERM);
                assert_true(wait_exit(b->pid) >= 0);
                b->pid = 0;
        }
}

static sd_bus *bus_connect(const char *address) {
        sd_bus *bus = NULL;

        if (sd_bus_new(&bus) < 0 || sd_bus_set_address(bus, address) < 0 ||
            sd_bus_set_bus_client(bus, 1) < 0 || sd_bus_start(bus) < 0) {
                /* also used on the polkit thread, where cmocka's asserts must not run */
                fprintf(stderr, "Failed to connect to %s\n", address);
                abort();
        }
        return bus;
}

/* ---- fake polkit authority -------------------------------------------------------------------------- */

static struct {
        pthread_mutex_t lock;
        bool authorized, challenge;
        unsigned calls;
        char action[128];
        char details[512];
        uint32_t flags;
        char subject_kind[64];
        atomic_bool stop;
        atomic_bool ready;
        pthread_t thread;
        char address[PATH_MAX + 32];
} pk = { .lock = PTHREAD_MUTEX_INITIALIZER };

static int pk_check_authorization(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        const char *kind, *action, *key, *value, *cancel;
        GString *details = g_string_new(NULL);
        uint32_t flags;
        bool authorized, challenge;
        int r;

        r = sd_bus_message_enter_container(m, 'r', "sa{sv}");
        if (r >= 0)
                r = sd_bus_message_read(m, "s", &kind);
        if (r >= 0)
                r = sd_bus_message_skip(m, "a{sv}");
        if (r >= 0)
                r = sd_bus_message_exit_container(m);
        if (r >= 0)
                r = sd_bus_message_read(m, "s", &action);
        if (r >= 0)
                r = sd_bus_message_enter_container(m, 'a', "{ss}");
        while (r >= 0 && (r = sd_bus_message_read(m, "{ss}", &key, &value)) > 0)
                g_string_append_printf(details, "%s=%s;", key, value);
        if (r >= 0)
                r = sd_bus_message_exit_container(m);
        if (r >= 0)
                r = sd_bus_message_read(m, "us", &flags, &cancel);
        if (r < 0) {
                g_string_free(details, TRUE);
                return r;
        }
        pthread_mutex_lock(&pk.lock);
        pk.calls++;
        snprintf(pk.action, sizeof(pk.action), "%s", action);
        snprintf(pk.details, sizeof(pk.details), "%s", details->str);
        snprintf(pk.subject_kind, sizeof(pk.subject_kind), "%s", kind);
        pk.flags = flags;
        authorized = pk.authorized;
        challenge = pk.challenge;
        pthread_mutex_unlock(&pk.lock);
        g_string_free(details, TRUE);
        return sd_bus_reply_method_return(m, "(bba{ss})", authorized, challenge, 0);
}

static const sd_bus_vtable pk_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD("CheckAuthorization",
                      "(sa{sv})sa{ss}us",
                      "(bba{ss})",
                      pk_check_authorization,
                      SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

/* A fake machined on the same connection: GetMachineByPID answers from a one-entry script. */
static struct {
        pthread_mutex_t lock;
        uint32_t pid;
        char name[64];
        unsigned calls;
} mach = { .lock = PTHREAD_MUTEX_INITIALIZER };

static int mach_get_machine_by_pid(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        _cleanup_free_ char *path = NULL;
        uint32_t pid;
        int r;

        r = sd_bus_message_read(m, "u", &pid);
        if (r < 0)
                return r;
        pthread_mutex_lock(&mach.lock);
        mach.calls++;
        if (pid == mach.pid && mach.name[0])
                r = sd_bus_path_encode("/org/freedesktop/machine1/machine", mach.name, &path);
        else
                r = 0;
        pthread_mutex_unlock(&mach.lock);
        if (r < 0)
                return r;
        if (!path)
                return sd_bus_error_setf(error, "org.freedesktop.machine1.NoMachineForPID",
                                         "PID %u does not belong to any known machine", pid);
        return sd_bus_reply_method_return(m, "o", path);
}

static const sd_bus_vtable mach_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD("GetMachineByPID", "u", "o", mach_get_machine_by_pid, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

static void mach_script(pid_t pid, const char *name) {
        pthread_mutex_lock(&mach.lock);
        mach.pid = (uint32_t) pid;
        snprintf(mach.name, sizeof(mach.name), "%s", name ? name : "");
        pthread_mutex_unlock(&mach.lock);
}

static unsigned mach_calls(void) {
        unsigned n;

        pthread_mutex_lock(&mach.lock);
        n = mach.calls;
        pthread_mutex_unlock(&mach.lock);
        return n;
}

static void *pk_thread(void *arg) {
        sd_bus *bus = bus_connect(pk.address);

        /* no cmocka asserts off the main thread */
        if (sd_bus_add_object_vtable(bus, NULL, "/org/freedesktop/PolicyKit1/Authority",
                                     "org.freedesktop.PolicyKit1.Authority", pk_vtable, NULL) < 0 ||
            sd_bus_request_name(bus, "org.freedesktop.PolicyKit1", 0) < 0 ||
            sd_bus_add_object_vtable(bus, NULL, "/org/freedesktop/machine1",
                                     "org.freedesktop.machine1.Manager", mach_vtable, NULL) < 0 ||
            sd_bus_request_name(bus, "org.freedesktop.machine1", 0) < 0) {
                fprintf(stderr, "The fake polkit authority failed to start\n");
                abort();
        }
        atomic_store(&pk.ready, true);
        while (!atomic_load(&pk.stop)) {
                if (sd_bus_process(bus, NULL) > 0)
                        continue;
                (void) sd_bus_wait(bus, 50 * 1000); /* wakes up to notice pk.stop */
        }
        sd_bus_flush_close_unref(bus);
        return NULL;
}

static void pk_start(const char *address) {
        snprintf(pk.address, sizeof(pk.address), "%s", address);
        atomic_store(&pk.stop, false);
        atomic_store(&pk.ready, false);
        assert_int_equal(pthread_create(&pk.thread, NULL, pk_thread, NULL), 0);
}

static void pk_stop(void) {
        atomic_store(&pk.stop, true);
        pthread_join(pk.thread, NULL);
}

static void pk_script(bool authorized, bool challenge) {
        pthread_mutex_lock(&pk.lock);
        pk.authorized = authorized;
        pk.challenge = challenge;
        pthread_mutex_unlock(&pk.lock);
}

static unsigned pk_calls(void) {
        unsigned n;

        pthread_mutex_lock(&pk.lock);
        n = pk.calls;
        pthread_mutex_unlock(&pk.lock);
        return n;
}

/* ---- the test environment: bus, notify socket (our fd store), the daemon --------------------------- */

typedef struct StoredFd {
        char *name;
        int fd;
} StoredFd;

static struct {
        char tmp[64];
        char run[128], conf[128], confdir[128], devdir[128], notify[128], workerlog[128], daemonlog[128];
        bool capture_stderr; /* the daemons started now write their log to daemonlog */
        PrivateBus bus;
        int notify_fd;
        GPtrArray *store;   /* StoredFd*, what the daemon pushed with FDSTORE=1 */
        GPtrArray *removed; /* names of FDSTOREREMOVE=1 */
        unsigned ready, stopping;
        pid_t daemon;
        sd_bus *client;
        unsigned device_new, device_removed;
        char last_new[256], last_removed[256];
} T;

static void stored_fd_free(void *p) {
        StoredFd *s = p;

        close(s->fd);
        g_free(s->name);
        g_free(s);
}

static pthread_mutex_t nlock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ncond = PTHREAD_COND_INITIALIZER;
static pthread_t notify_thread_id;
static atomic_bool notify_stop;

/* with nlock held */
static StoredFd *store_find_locked(const char *name) {
        for (unsigned i = 0; i < T.store->len; i++) {
                StoredFd *s = T.store->pdata[i];
                if (strcmp(s->name, name) == 0)
                        return s;
        }
        return NULL;
}

/* Handles one notify datagram (with nlock held). */
static void notify_handle(void) {
        char buf[4096], cbuf[CMSG_SPACE(sizeof(int) * 16) + CMSG_SPACE(sizeof(struct ucred))];
        struct iovec iov = { buf, sizeof(buf) - 1 };
        struct msghdr mh = {
                .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf)
        };
        int fds[16], n_fds = 0;
        const char *name = NULL;
        char **lines;
        ssize_t n;

        n = recvmsg(T.notify_fd, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
        if (n < 0)
                return;
        buf[n] = 0;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
                if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
                        n_fds = (int) ((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
                        memcpy(fds, CMSG_DATA(c), (size_t) n_fds * sizeof(int));
                }
        lines = g_strsplit(buf, "\n", -1);
        for (char **l = lines; *l; l++)
                if (g_str_has_prefix(*l, "FDNAME="))
                        name = *l + 7;
        for (char **l = lines; *l; l++) {
                if (strcmp(*l, "READY=1") == 0)
                        T.ready++;
                else if (strcmp(*l, "STOPPING=1") == 0)
                        T.stopping++;
                else if (strcmp(*l, "FDSTORE=1") == 0 && name && n_fds == 1) {
                        StoredFd *s = g_new0(StoredFd, 1);
                        s->name = g_strdup(name);
                        s->fd = fds[0];
                        n_fds = 0;
                        g_ptr_array_add(T.store, s);
                } else if (strcmp(*l, "FDSTOREREMOVE=1") == 0 && name) {
                        StoredFd *s = store_find_locked(name);
                        if (s)
                                g_ptr_array_remove(T.store, s);
                        g_ptr_array_add(T.removed, g_strdup(name));
                }
        }
        for (int i = 0; i < n_fds; i++)
                close(fds[i]);
        g_strfreev(lines);
}

/* Plays systemd's side of NOTIFY_SOCKET: read at once, so the daemon's sd_notify() never blocks on a full
 * datagram queue. */
static void *notify_thread(void *arg) {
        while (!atomic_load(&notify_stop)) {
                struct pollfd p = { .fd = T.notify_fd, .events = POLLIN };
                if (poll(&p, 1, 50) <= 0) /* wakes up to notice notify_stop */
                        continue;
                pthread_mutex_lock(&nlock);
                notify_handle();
                pthread_cond_broadcast(&ncond);
                pthread_mutex_unlock(&nlock);
        }
        return NULL;
}

typedef bool (*NotifyPredicate)(const void *arg);

/* Waits until pred holds on the notify state; false at the deadline. */
static bool notify_wait(NotifyPredicate pred, const void *arg) {
        uint64_t deadline = now_usec() + DEADLINE_USEC;
        bool ok;

        pthread_mutex_lock(&nlock);
        while (!(ok = pred(arg)) && now_usec() < deadline) {
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                ts.tv_sec += 1;
                pthread_cond_timedwait(&ncond, &nlock, &ts);
        }
        pthread_mutex_unlock(&nlock);
        return ok;
}

static bool pred_stored(const void *name) {
        return store_find_locked(name) != NULL;
}

static bool pred_removed(const void *name) {
        for (unsigned i = 0; i < T.removed->len; i++)
                if (strcmp(T.removed->pdata[i], name) == 0)
                        return true;
        return false;
}

static bool pred_store_empty(const void *arg) {
        return T.store->len == 0;
}

static bool removed_contains(const char *name) {
        return notify_wait(pred_removed, name);
}

static bool stored(const char *name) {
        return notify_wait(pred_stored, name);
}

static bool store_empty(void) {
        return notify_wait(pred_store_empty, NULL);
}

static int store_fd(const char *name) {
        StoredFd *s;
        int fd;

        pthread_mutex_lock(&nlock);
        s = store_find_locked(name);
        fd = s ? s->fd : -1;
        pthread_mutex_unlock(&nlock);
        return fd;
}

static unsigned ready_count(void) {
        unsigned n;

        pthread_mutex_lock(&nlock);
        n = T.ready;
        pthread_mutex_unlock(&nlock);
        return n;
}

/* Waits for READY=1 after `before`, failing if pid dies first. */
static void wait_ready(unsigned before, pid_t pid) {
        uint64_t deadline = now_usec() + DEADLINE_USEC;

        for (;;) {
                struct timespec ts;
                bool ok;
                int status;

                pthread_mutex_lock(&nlock);
                ok = T.ready > before;
                if (!ok) {
                        clock_gettime(CLOCK_REALTIME, &ts);
                        ts.tv_sec += 1;
                        pthread_cond_timedwait(&ncond, &nlock, &ts);
                        ok = T.ready > before;
                }
                pthread_mutex_unlock(&nlock);
                if (ok)
                        return;
                assert_true(now_usec() < deadline);
                assert_int_equal(waitpid(pid, &status, WNOHANG), 0); /* died before READY=1? */
        }
}

static int on_device_signal(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        const char *vm, *alias, *path;

        if (sd_bus_message_read(m, "sso", &vm, &alias, &path) < 0)
                return 0;
        if (sd_bus_message_is_signal(m, NULL, "DeviceNew")) {
                T.device_new++;
                snprintf(T.last_new, sizeof(T.last_new), "%s/%s %s", vm, alias, path);
        } else {
                T.device_removed++;
                snprintf(T.last_removed, sizeof(T.last_removed), "%s/%s %s", vm, alias, path);
        }
        return 0;
}

static void client_step(uint64_t timeout_usec) {
        while (sd_bus_process(T.client, NULL) > 0)
                ;
        (void) sd_bus_wait(T.client, timeout_usec);
        while (sd_bus_process(T.client, NULL) > 0)
                ;
}

/* Starts exe as the daemon; fds/names: what "systemd" passes (LISTEN_FDS). Waits for READY=1. */
static pid_t daemon_spawn_full(const char *exe, int *fds, char **names, size_t n, char **extra_args) {
        unsigned ready = ready_count();
        pid_t pid;

        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                char addr[PATH_MAX + 64], run[256], conf[256], num[32];
                const char *argv[32];
                int k = 0;

                (void) prctl(PR_SET_PDEATHSIG, SIGTERM);
                setenv("NOTIFY_SOCKET", T.notify, 1);
                setenv("VIRTIO_VIDEOD_WORKER", worker_in_use, 1);
                setenv("FAKE_WORKER_LOG", T.workerlog, 1);
                if (T.capture_stderr) {
                        int lfd = open(T.daemonlog, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
                        if (lfd < 0 || dup2(lfd, STDERR_FILENO) < 0)
                                _exit(126);
                }
                /* keep ASan's quarantine small so VmRSS reflects live memory in the leak check */
                setenv("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=1:quarantine_size_mb=1", 1);
                if (n > 0) {
                        int tmp[16];
                        char *joined = g_strjoinv(":", names);
                        for (size_t i = 0; i < n; i++)
                                tmp[i] = fcntl(fds[i], F_DUPFD, 100);
                        for (size_t i = 0; i < n; i++)
                                dup2(tmp[i], 3 + (int) i);
                        snprintf(num, sizeof(num), "%d", (int) getpid());
                        setenv("LISTEN_PID", num, 1);
                        snprintf(num, sizeof(num), "%zu", n);
                        setenv("LISTEN_FDS", num, 1);
                        setenv("LISTEN_FDNAMES", joined, 1);
                }
                snprintf(addr, sizeof(addr), "--bus-address=%s", T.bus.address);
                snprintf(run, sizeof(run), "--runtime-dir=%s", T.run);
                snprintf(conf, sizeof(conf), "--config=%s", T.conf);
                argv[k++] = exe;
                argv[k++] = addr;
                argv[k++] = run;
                argv[k++] = conf;
                for (char **a = extra_args; a && *a; a++)
                        argv[k++] = *a;
                argv[k] = NULL;
                execv(exe, (char **) argv);
                _exit(127);
        }
        wait_ready(ready, pid);
        return pid;
}

static char *default_args[] = { (char *) "--no-idle-exit", NULL };

static void daemon_start(void) {
        T.daemon = daemon_spawn_full(arg_fakeprobe, NULL, NULL, 0, default_args);
}

static void daemon_stop(void) {
        int status;

        if (T.daemon <= 0)
                return;
        kill(T.daemon, SIGTERM);
        status = wait_exit(T.daemon);
        T.daemon = 0;
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
}

static void write_config(const char *extra) {
        char *text =
                g_strdup_printf("[Daemon]\nAllowedHostDevices=%s/*\nSocketGroup=0\n%s", T.devdir, extra);

        write_file(T.conf, text);
        g_free(text);
}

static int env_setup(void **state) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        char busdir[128];

        snprintf(T.tmp, sizeof(T.tmp), "/tmp/test-daemon-XXXXXX");
        assert_non_null(mkdtemp(T.tmp));
        assert_int_equal(chmod(T.tmp, 0755), 0); /* clients of other uids must reach the bus socket */
        snprintf(T.run, sizeof(T.run), "%s/run", T.tmp);
        snprintf(T.confdir, sizeof(T.confdir), "%s/etc", T.tmp);
        snprintf(T.conf, sizeof(T.conf), "%s/etc/virtio-videod.conf", T.tmp);
        snprintf(T.devdir, sizeof(T.devdir), "%s/dev", T.tmp);
        snprintf(T.notify, sizeof(T.notify), "%s/notify", T.tmp);
        snprintf(T.workerlog, sizeof(T.workerlog), "%s/worker.log", T.tmp);
        snprintf(T.daemonlog, sizeof(T.daemonlog), "%s/daemon.log", T.tmp);
        snprintf(busdir, sizeof(busdir), "%s/bus", T.tmp);
        assert_int_equal(mkdir(T.confdir, 0755), 0);
        assert_int_equal(mkdir(T.devdir, 0755), 0);
        assert_int_equal(mkdir(busdir, 0755), 0);
        write_config("");

        T.notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        assert_true(T.notify_fd >= 0);
        strcpy(sa.sun_path, T.notify);
        assert_int_equal(bind(T.notify_fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
        T.store = g_ptr_array_new_with_free_func(stored_fd_free);
        T.removed = g_ptr_array_new_with_free_func(g_free);
        atomic_store(&notify_stop, false);
        assert_int_equal(pthread_create(&notify_thread_id, NULL, notify_thread, NULL), 0);

        bus_start(&T.bus, busdir);
        pk_start(T.bus.address);
        while (!atomic_load(&pk.ready))
                sched_yield(); /* the thread connects and takes its name; no timing involved */
        T.client = bus_connect(T.bus.address);
        assert_true(sd_bus_match_signal(T.client, NULL, "org.virtiovideo.video1", "/org/virtiovideo/video1",
                                        "org.virtiovideo.video1.Manager", NULL, on_device_signal,
                                        NULL) >= 0);
        assert_true(sd_bus_match_signal(T.client, NULL, "org.virtiovideo.video1", NULL,
                                        "org.freedesktop.DBus.Properties", "PropertiesChanged", NULL,
                                        NULL) >= 0);
        daemon_start();
        return 0;
}

static int env_teardown(void **state) {
        char cmd[128];

        daemon_stop();
        T.client = sd_bus_flush_close_unref(T.client);
        pk_stop();
        bus_stop(&T.bus);
        atomic_store(&notify_stop, true);
        pthread_join(notify_thread_id, NULL);
        close(T.notify_fd);
        g_ptr_array_free(T.store, TRUE);
        g_ptr_array_free(T.removed, TRUE);
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", T.tmp);
        return system(cmd) == 0 ? 0 : -1;
}

/* ---- bus call helpers ------------------------------------------------------------------------------- */

#define DEST "org.virtiovideo.video1"
#define MANAGER_PATH "/org/virtiovideo/video1"
#define MANAGER_IFACE "org.virtiovideo.video1.Manager"
#define DEVICE_IFACE "org.virtiovideo.video1.Device"

static void path_of(const char *vm, const char *alias, char **ret) {
        assert_true(sd_bus_path_encode_many(ret, "/org/virtiovideo/video1/device/%/%", vm, alias) >= 0);
}

/* AttachDevice with the null backend and extra options given as (key, type, value) triples after n. */
static int
attach_null(sd_bus *bus, const char *vm, const char *alias, sd_bus_error *error, char **ret_socket) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *path, *socket;
        int r;

        r = sd_bus_call_method(bus, DEST, MANAGER_PATH, MANAGER_IFACE, "AttachDevice", error, &reply,
                               "ssa{sv}t", vm, "", 2, "Backend", "s", "null", "Alias", "s", alias,
                               UINT64_C(0));
        if (r < 0)
                return r;
        assert_true(sd_bus_message_read(reply, "os", &path, &socket) > 0);
        if (ret_socket)
                *ret_socket = g_strdup(socket);
        return 0;
}

static int detach(sd_bus *bus, const char *vm, const char *alias, uint64_t flags, sd_bus_error *error) {
        int r = sd_bus_call_method(bus, DEST, MANAGER_PATH, MANAGER_IFACE, "DetachDevice", error, NULL,
                                   "sst", vm, alias, flags);
        return r < 0 ? r : 0;
}

static char *get_string(const char *path, const char *property) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        char *s = NULL;

        assert_true(sd_bus_get_property_string(T.client, DEST, path, DEVICE_IFACE, property, &error, &s) >=
                    0);
        return s;
}

static uint32_t get_u32(const char *path, const char *iface, const char *property) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        uint32_t u = 0;

        assert_true(sd_bus_get_property_trivial(T.client, DEST, path, iface, property, &error, 'u', &u) >=
                    0);
        return u;
}

/* Steps the client bus (woken by PropertiesChanged) until the property has the value. */
static void wait_state(const char *path, const char *want) {
        uint64_t deadline = now_usec() + DEADLINE_USEC;

        for (;;) {
                char *s = get_string(path, "State");
                bool ok = strcmp(s, want) == 0;
                free(s);
                if (ok)
                        return;
                assert_true(now_usec() < deadline);
                client_step(200 * 1000);
        }
}

static int connect_unix(const char *path) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

        assert_true(fd >= 0);
        strcpy(sa.sun_path, path);
        assert_int_equal(connect(fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
        return fd;
}

/* Waits until the file contains needle (the fake worker writes its argv once it runs). */
static void wait_file_contains(const char *path, const char *needle) {
        _cleanup_free_ char *dir = g_path_get_dirname(path);
        int fd = inotify_init1(IN_CLOEXEC);
        char *s;

        assert_true(fd >= 0);
        assert_true(inotify_add_watch(fd, dir, IN_CREATE | IN_MODIFY | IN_CLOSE_WRITE) >= 0);
        for (;;) {
                struct pollfd p = { .fd = fd, .events = POLLIN };
                char buf[4096];
                bool found;

                s = read_file(path);
                found = strstr(s, needle) != NULL;
                g_free(s);
                if (found)
                        break;
                assert_int_equal(poll(&p, 1, (int) (DEADLINE_USEC / 1000)), 1);
                assert_true(read(fd, buf, sizeof(buf)) > 0);
        }
        close(fd);
}

static void make_fake_device(const char *name, const char *content) {
        char path[256];

        snprintf(path, sizeof(path), "%s/%s", T.devdir, name);
        write_file(path, content);
}

#define DECODER_NODE "[V4L2]\nDriver=vicodec\nCard=vicodec-fake\nM2M=true\nRoles=decoder\n"
#define CODEC_NODE "[V4L2]\nDriver=vicodec\nCard=vicodec-both\nM2M=true\nRoles=decoder;encoder\n"
#define CAPTURE_NODE "[V4L2]\nDriver=uvcvideo\nCard=webcam\nM2M=false\n"

/* ---- Introspection matches the shipped dbus/ XML
 * --------------------------------------------------------------- */

typedef struct Members {
        const char *iface;
        bool in;
        GPtrArray *names;
} Members;

static void xml_start(GMarkupParseContext *ctx,
                      const char *el,
                      const char **names,
                      const char **values,
                      void *userdata,
                      GError **error) {
        Members *m = userdata;
        const char *name = NULL;

        for (int i = 0; names[i]; i++)
                if (strcmp(names[i], "name") == 0)
                        name = values[i];
        if (strcmp(el, "interface") == 0)
                m->in = name && strcmp(name, m->iface) == 0;
        else if (m->in && name &&
                 (strcmp(el, "method") == 0 || strcmp(el, "property") == 0 || strcmp(el, "signal") == 0))
                g_ptr_array_add(m->names, g_strdup_printf("%s:%s", el, name));
}

static void xml_end(GMarkupParseContext *ctx, const char *el, void *userdata, GError **error) {
        Members *m = userdata;

        if (strcmp(el, "interface") == 0)
                m->in = false;
}

static gint cmp_str(gconstpointer a, gconstpointer b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

static char *members_of(const char *xml, const char *iface) {
        GMarkupParser parser = { .start_element = xml_start, .end_element = xml_end };
        Members m = { .iface = iface, .names = g_ptr_array_new_with_free_func(g_free) };
        GMarkupParseContext *ctx = g_markup_parse_context_new(&parser, 0, &m, NULL);
        const char *skip = xml;
        char *joined;

        /* GMarkup does not take a DOCTYPE: start at <node> */
        skip = strstr(xml, "<node");
        assert_non_null(skip);
        assert_true(g_markup_parse_context_parse(ctx, skip, -1, NULL));
        assert_true(g_markup_parse_context_end_parse(ctx, NULL));
        g_markup_parse_context_free(ctx);
        g_ptr_array_sort(m.names, cmp_str);
        g_ptr_array_add(m.names, NULL);
        joined = g_strjoinv(" ", (char **) m.names->pdata);
        g_ptr_array_free(m.names, TRUE);
        return joined;
}

static char *introspect(const char *path) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *xml;

        assert_true(sd_bus_call_method(T.client, DEST, path, "org.freedesktop.DBus.Introspectable",
                                       "Introspect", NULL, &reply, "") >= 0);
        assert_true(sd_bus_message_read(reply, "s", &xml) > 0);
        return g_strdup(xml);
}

static void check_xml(const char *file, const char *path, const char *iface) {
        char fpath[PATH_MAX], *shipped, *live, *a, *b;

        snprintf(fpath, sizeof(fpath), "%s/dbus/%s", arg_source, file);
        shipped = read_file(fpath);
        live = introspect(path);
        a = members_of(shipped, iface);
        b = members_of(live, iface);
        assert_true(strlen(a) > 0);
        assert_string_equal(a, b);
        g_free(shipped);
        g_free(live);
        g_free(a);
        g_free(b);
}

static void test_introspection_matches_shipped_xml(void **state) {
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        char *dev = NULL, *root;

        check_xml("org.virtiovideo.video1.Manager.xml", MANAGER_PATH, MANAGER_IFACE);
        assert_int_equal(attach_null(T.client, "xml", "video0", &e, NULL), 0);
        path_of("xml", "video0", &dev);
        check_xml("org.virtiovideo.video1.Device.xml", dev, DEVICE_IFACE);
        /* the node enumerator lists the device below the fallback path */
        root = introspect("/org/virtiovideo/video1/device/xml");
        assert_non_null(strstr(root, "<node name=\"video0\"/>"));
        g_free(root);
        assert_int_equal(detach(T.client, "xml", "video0", 0, &e), 0);
        free(dev);
}

/* ---- attach, list, properties, signals, peer, stats, detach ---------------------------------------- */

static void test_attach_list_properties_detach(void **state) {
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *vm, *alias, *host, *st, *p;
        char *socket = NULL, *dev = NULL, *s, statefile[256], *log;
        unsigned new_before = T.device_new, removed_before = T.device_removed;
        uint64_t t;
        struct stat sst;
        int peer, r;

        (void) unlink(T.workerlog);
        assert_int_equal(attach_null(T.client, "vm one", "video0", &e, &socket), 0);
        path_of("vm one", "video0", &dev);

        /* listening on return, mode 0660, in a private directory, state kept, listener in the fd store */
        assert_int_equal(stat(socket, &sst), 0);
        assert_true(S_ISSOCK(sst.st_mode));
        assert_int_equal(sst.st_mode & 0777, 0660);
        assert_true(g_str_has_prefix(socket, T.run));
        assert_non_null(strstr(socket, "/vm/vm_one-"));
        peer = connect_unix(socket); /* the first peer: accepted once the worker is up */
        snprintf(statefile, sizeof(statefile), "%s/devices", T.run);
        assert_true(path_exists(statefile));
        {
                char *fdname = NULL;
                assert_int_equal(device_fdname("vm one", "video0", &fdname), 0);
                assert_true(stored(fdname));
                free(fdname);
        }

        /* signal */
        /* signals of earlier tests may still be queued: wait for ours */
        for (uint64_t deadline = now_usec() + DEADLINE_USEC; !g_str_has_suffix(T.last_new, dev);) {
                assert_true(now_usec() < deadline);
                client_step(200 * 1000);
        }
        assert_true(T.device_new > new_before);
        assert_true(g_str_has_prefix(T.last_new, "vm one/video0 "));

        /* list */
        assert_true(sd_bus_call_method(T.client, DEST, MANAGER_PATH, MANAGER_IFACE, "ListDevices", &e,
                                       &reply, "") >= 0);
        assert_true(sd_bus_message_enter_container(reply, 'a', "(sssso)") > 0);
        assert_true(sd_bus_message_read(reply, "(sssso)", &vm, &alias, &host, &st, &p) > 0);
        assert_string_equal(vm, "vm one");
        assert_string_equal(alias, "video0");
        assert_string_equal(host, "");
        assert_string_equal(p, dev);
        reply = sd_bus_message_unref(reply);
        assert_true(sd_bus_call_method(T.client, DEST, MANAGER_PATH, MANAGER_IFACE, "GetDevice", &e, &reply,
                                       "ss", "vm one", "video0") >= 0);
        assert_true(sd_bus_message_read(reply, "o", &p) > 0);
        assert_string_equal(p, dev);
        reply = sd_bus_message_unref(reply);
        assert_int_equal(get_u32(MANAGER_PATH, MANAGER_IFACE, "NDevices"), 1);

        /* properties */
        s = get_string(dev, "VM");
        assert_string_equal(s, "vm one");
        free(s);
        s = get_string(dev, "SocketPath");
        assert_string_equal(s, socket);
        free(s);
        s = get_string(dev, "Role");
        assert_string_equal(s, "decoder");
        free(s);
        s = get_string(dev, "Backend");
        assert_string_equal(s, "null");
        free(s);
        s = get_string(dev, "Protocol");
        assert_string_equal(s, "virtio-video");
        free(s);
        assert_int_equal(get_u32(dev, DEVICE_IFACE, "SocketMode"), 0660);
        assert_int_equal(get_u32(dev, DEVICE_IFACE, "Owner"), 0);
        assert_true(sd_bus_get_property_trivial(T.client, DEST, dev, DEVICE_IFACE, "CreatedTimestamp", &e,
                                                't', &t) >= 0);
        assert_true(t > 0);

        /* the worker got what the contract says */
        log = read_file(T.workerlog);
        assert_non_null(strstr(log, "--socket-fd=3 --control-fd=4 --backend=null"));
        assert_null(strstr(log, "--device-fd"));
        assert_non_null(strstr(log, "--vm=vm one --alias=video0"));
        g_free(log);

        /* the peer is served: State, PeerPID, PeerUID change */
        wait_state(dev, "connected");
        assert_int_equal(get_u32(dev, DEVICE_IFACE, "PeerPID"), (uint32_t) getpid());
        assert_int_equal(get_u32(dev, DEVICE_IFACE, "PeerUID"), 0);
        assert_int_equal(write(peer, "hello", 5), 5);

        /* Device.GetStatistics goes to the worker */
        {
                uint64_t connections = 0, bytes_in = 0;
                const char *key;
                bool seen_in = false;
                for (uint64_t deadline = now_usec() + DEADLINE_USEC; !seen_in || bytes_in < 5;) {
                        assert_true(now_usec() < deadline);
                        reply = sd_bus_message_unref(reply);
                        assert_true(sd_bus_call_method(T.client, DEST, dev, DEVICE_IFACE, "GetStatistics",
                                                       &e, &reply, "") >= 0);
                        assert_true(sd_bus_message_enter_container(reply, 'a', "{sv}") > 0);
                        while (sd_bus_message_enter_container(reply, 'e', "sv") > 0) {
                                assert_true(sd_bus_message_read(reply, "s", &key) > 0);
                                if (strcmp(key, "Connections") == 0)
                                        assert_true(sd_bus_message_read(reply, "v", "t", &connections) > 0);
                                else if (strcmp(key, "BytesIn") == 0) {
                                        assert_true(sd_bus_message_read(reply, "v", "t", &bytes_in) > 0);
                                        seen_in = true;
                                } else
                                        assert_true(sd_bus_message_skip(reply, "v") >= 0);
                                assert_true(sd_bus_message_exit_container(reply) >= 0);
                        }
                }
                assert_int_equal(connections, 1);
                reply = sd_bus_message_unref(reply);
        }

        /* no detach while connected without FORCE */
        r = detach(T.client, "vm one", "video0", 0, &e);
        assert_true(r < 0);
        assert_string_equal(e.name, "org.virtiovideo.video1.DeviceConnected");
        sd_bus_error_free(&e);

        /* the peer leaves: back to listening */
        close(peer);
        wait_state(dev, "listening");
        assert_int_equal(get_u32(dev, DEVICE_IFACE, "PeerPID"), 0);
        assert_int_equal(get_u32(dev, DEVICE_IFACE, "PeerUID"), UINT32_MAX);

        /* detach through the Device object */
        assert_true(sd_bus_call_method(T.client, DEST, dev, DEVICE_IFACE, "Detach", &e, NULL, "t",
                                       UINT64_C(0)) >= 0);
        for (uint64_t deadline = now_usec() + DEADLINE_USEC; !g_str_has_suffix(T.last_removed, dev);) {
                assert_true(now_usec() < deadline);
                client_step(200 * 1000);
        }
        assert_true(T.device_removed > removed_before);
        assert_false(path_exists(socket));
        {
                char *fdname = NULL;
                assert_int_equal(device_fdname("vm one", "video0", &fdname), 0);
                assert_true(removed_contains(fdname));
                free(fdname);
        }
        assert_true(store_empty());
        assert_int_equal(get_u32(MANAGER_PATH, MANAGER_IFACE, "NDevices"), 0);
        r = sd_bus_call_method(T.client, DEST, MANAGER_PATH, MANAGER_IFACE, "GetDevice", &e, NULL, "ss",
                               "vm one", "video0");
        assert_string_equal(e.name, "org.virtiovideo.video1.NoSuchDevice");
        assert_int_equal(r, -ENXIO); /* through the error map */
        g_free(socket);
        free(dev);
}

/* ---- host devices through the probe interface ------------------------------------------------------- */

static int attach_v4l2(const char *vm,
                       const char *node,
                       const char *alias,
                       const char *role,
                       bool exclusive,
                       sd_bus_error *e) {
        char path[256];

        snprintf(path, sizeof(path), "%s/%s", T.devdir, node);
        return sd_bus_call_method(T.client, DEST, MANAGER_PATH, MANAGER_IFACE, "AttachDevice", e, NULL,
                                  "ssa{sv}t", vm, path, 3, "Alias", "s", alias, "Role", "s", role,
                                  "Exclusive", "b", exclusive, UINT64_C(0));
}

static void test_host_devices_probe_and_list(void **state) {
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *path, *driver, *card, *roles;
        char *dev = NULL, *s, *log;
        unsigned n_listed = 0;
        uint32_t n;

        make_fake_device("video10", DECODER_NODE);
        make_fake_device("video11", CODEC_NODE);
        make_fake_device("video12", CAPTURE_NODE);
        (void) unlink(T.workerlog);

        assert_true(attach_v4l2("hw", "video11", "video0", "encoder", false, &e) >= 0);
        path_of("hw", "video0", &dev);
        s = get_string(dev, "HostDeviceDriver");
        assert_string_equal(s, "vicodec");
        free(s);
        s = get_string(dev, "HostDeviceCard");
        assert_string_equal(s, "vicodec-both");
        free(s);
        s = get_string(dev, "Role");
        assert_string_equal(s, "encoder");
        free(s);
        wait_file_contains(T.workerlog, "--backend=v4l2-encoder --device-fd=5");
        log = read_file(T.workerlog);
        assert_non_null(strstr(log, "--host-device="));
        g_free(log);

        /* M2M nodes in the allow-list only, with their users counted */
        assert_true(sd_bus_call_method(T.client, DEST, MANAGER_PATH, MANAGER_IFACE, "ListHostDevices", &e,
                                       &reply, "") >= 0);
        assert_true(sd_bus_message_enter_container(reply, 'a', "(ssssu)") > 0);
        while (sd_bus_message_read(reply, "(ssssu)", &path, &driver, &card, &roles, &n) > 0) {
                n_listed++;
                assert_null(strstr(path, "video12"));
                if (g_str_has_suffix(path, "video11")) {
                        assert_string_equal(roles, "decoder,encoder");
                        assert_int_equal(n, 1);
                } else {
                        assert_true(g_str_has_suffix(path, "video10"));
                        assert_string_equal(roles, "decoder");
                        assert_string_equal(driver, "vicodec");
                        assert_int_equal(n, 0);
                }
        }
        assert_int_equal(n_listed, 2);
        reply = sd_bus_message_unref(reply);

        /* auto role on a decoder-only node */
        assert_true(attach_v4l2("hw", "video10", "video1", "auto", false, &e) >= 0);
        free(dev);
        path_of("hw", "video1", &dev);
        s = get_string(dev, "Role");
        assert_string_equal(s, "decoder");
        free(s);

        /* sharing is fine, exclusivity is not */
        assert_true(attach_v4l2("hw2", "video11", "video0", "decoder", false, &e) >= 0);
        assert_true(attach_v4l2("hw3", "video11", "video0", "decoder", true, &e) < 0);
        assert_string_equal(e.name, "org.virtiovideo.video1.HostDeviceBusy");
        sd_bus_error_free(&e);

        assert_true(sd_bus_call_method(T.client, DEST, MANAGER_PATH, MANAGER_IFACE, "DetachVM", &e, &reply,
                                       "st", "hw", UINT64_C(0)) >= 0);
        reply = sd_bus_message_unref(reply);
        assert_true(sd_bus_call_method(T.client, DEST, MANAGER_PATH, MANAGER_IFACE, "DetachVM", &e, &reply,
                                       "st", "hw2", UINT64_C(0)) >= 0);
        assert_true(sd_bus_message_read(reply, "u", &n) > 0);
        assert_int_equal(n, 1);
        reply = sd_bus_message_unref(reply);
        /* idempotent */
        assert_true(sd_bus_call_method(T.client, DEST, MANAGER_PATH, MANAGER_IFACE, "DetachVM", &e, &reply,
                                       "st", "hw2", UINT64_C(0)) >= 0);
        assert_true(sd_bus_message_read(reply, "u", &n) > 0);
        assert_int_equal(n, 0);
        assert_int_equal(get_u32(MANAGER_PATH, MANAGER_IFACE, "NDevices"), 0);
        free(dev);
}

/* ---- every error of §6.4, and InvalidArgs ----------------------------------------------------------- */

#define expect_error(r, e, name) expect_error_at((r), (e), (name), __LINE__)
static void expect_error_at(int r, sd_bus_error *e, const char *name, int line) {
        if (r >= 0)
                fail_msg("line %d: expected %s, but the call succeeded", line, name);
        assert_non_null(e->name);
        if (strcmp(e->name, name) != 0)
                fail_msg("line %d: expected %s, got %s: %s", line, name, e->name, e->message);
        assert_non_null(e->message);
        sd_bus_error_free(e);
}

static int attach_opts1(const char *vm,
                        const char *host,
                        const char *key,
                        const char *type,
                        const void *value,
                        uint64_t flags,
                        sd_bus_error *e) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        int r;

        assert_true(sd_bus_message_new_method_call(T.client, &m, DEST, MANAGER_PATH, MANAGER_IFACE,
                                                   "AttachDevice") >= 0);
        assert_true(sd_bus_message_append(m, "ss", vm, host) >= 0);
        assert_true(sd_bus_message_open_container(m, 'a', "{sv}") >= 0);
        if (!host[0])
                assert_true(sd_bus_message_append(m, "{sv}", "Backend", "s", "null") >= 0);
        if (key) {
                assert_true(sd_bus_message_open_container(m, 'e', "sv") >= 0);
                assert_true(sd_bus_message_append(m, "s", key) >= 0);
                assert_true(sd_bus_message_open_container(m, 'v', type) >= 0);
                if (strcmp(type, "s") == 0)
                        assert_true(sd_bus_message_append(m, "s", (const char *) value) >= 0);
                else if (strcmp(type, "u") == 0)
                        assert_true(sd_bus_message_append(m, "u", *(const uint32_t *) value) >= 0);
                else if (strcmp(type, "b") == 0)
                        assert_true(sd_bus_message_append(m, "b", *(const int *) value) >= 0);
                else if (strcmp(type, "ay") == 0)
                        assert_true(sd_bus_message_append_array(m, 'y', value, 5) >= 0);
                else
                        fail();
                assert_true(sd_bus_message_close_container(m) >= 0);
                assert_true(sd_bus_message_close_container(m) >= 0);
        }
        assert_true(sd_bus_message_close_container(m) >= 0);
        assert_true(sd_bus_message_append(m, "t", flags) >= 0);
        r = sd_bus_call(T.client, m, 0, e, NULL);
        return r;
}

static void test_errors(void **state) {
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        char path[256], longpath[512], *socket = NULL;
        uint32_t u;
        int b = 1, r;

        make_fake_device("video20", DECODER_NODE);
        make_fake_device("video21", CAPTURE_NODE);
        make_fake_device("video22", "not a keyfile at all\n");

        /* NoSuchDevice */
        expect_error(sd_bus_call_method(T.client, DEST, MANAGER_PATH, MANAGER_IFACE, "GetDevice", &e, NULL,
                                        "ss", "nope", "video0"),
                     &e, "org.virtiovideo.video1.NoSuchDevice");
        expect_error(detach(T.client, "nope", "video0", 0, &e), &e, "org.virtiovideo.video1.NoSuchDevice");
        /* DeviceExists */
        assert_int_equal(attach_null(T.client, "err", "video0", &e, &socket), 0);
        expect_error(attach_null(T.client, "err", "video0", &e, NULL), &e,
                     "org.virtiovideo.video1.DeviceExists");
        /* NoSuchHostDevice */
        snprintf(path, sizeof(path), "%s/video99", T.devdir);
        expect_error(attach_opts1("err", path, NULL, NULL, NULL, 0, &e), &e,
                     "org.virtiovideo.video1.NoSuchHostDevice");
        /* HostDeviceNotAllowed, also for a missing node outside the list */
        expect_error(attach_opts1("err", "/etc/passwd", NULL, NULL, NULL, 0, &e), &e,
                     "org.virtiovideo.video1.HostDeviceNotAllowed");
        expect_error(attach_opts1("err", "/dev/video-none", NULL, NULL, NULL, 0, &e), &e,
                     "org.virtiovideo.video1.HostDeviceNotAllowed");
        /* NotACodec: no M2M, no V4L2 at all, the wrong role */
        snprintf(path, sizeof(path), "%s/video21", T.devdir);
        expect_error(attach_opts1("err", path, NULL, NULL, NULL, 0, &e), &e,
                     "org.virtiovideo.video1.NotACodec");
        snprintf(path, sizeof(path), "%s/video22", T.devdir);
        expect_error(attach_opts1("err", path, NULL, NULL, NULL, 0, &e), &e,
                     "org.virtiovideo.video1.NotACodec");
        snprintf(path, sizeof(path), "%s/video20", T.devdir);
        expect_error(attach_opts1("err", path, "Role", "s", "encoder", 0, &e), &e,
                     "org.virtiovideo.video1.NotACodec");
        /* HostDeviceBusy */
        assert_true(attach_v4l2("err", "video20", "video5", "decoder", true, &e) >= 0);
        expect_error(attach_v4l2("err2", "video20", "video0", "decoder", false, &e), &e,
                     "org.virtiovideo.video1.HostDeviceBusy");
        /* SocketPathNotAllowed: outside, with "..", and taken */
        expect_error(attach_opts1("err", "", "SocketPath", "s", "/tmp/evil.sock", 0, &e), &e,
                     "org.virtiovideo.video1.SocketPathNotAllowed");
        snprintf(path, sizeof(path), "%s/vm/../../evil.sock", T.run);
        expect_error(attach_opts1("err", "", "SocketPath", "s", path, 0, &e), &e,
                     "org.virtiovideo.video1.SocketPathNotAllowed");
        expect_error(attach_opts1("err3", "", "SocketPath", "s", socket, 0, &e), &e,
                     "org.virtiovideo.video1.SocketPathNotAllowed");
        /* SocketPathTooLong */
        snprintf(longpath, sizeof(longpath), "%s/vm/x/%0120d.sock", T.run, 0);
        expect_error(attach_opts1("err", "", "SocketPath", "s", longpath, 0, &e), &e,
                     "org.virtiovideo.video1.SocketPathTooLong");
        /* a socket path of our choice inside the directory works */
        snprintf(path, sizeof(path), "%s/vm/custom/a.sock", T.run);
        assert_true(attach_opts1("custom", "", "SocketPath", "s", path, 0, &e) >= 0);
        assert_true(path_exists(path));
        /* UnsupportedProtocol */
        expect_error(attach_opts1("err", "", "Protocol", "s", "virtio-media", 0, &e), &e,
                     "org.virtiovideo.video1.UnsupportedProtocol");
        expect_error(attach_opts1("err", "", "Protocol", "s", "smoke-signals", 0, &e), &e,
                     "org.virtiovideo.video1.UnsupportedProtocol");
        /* InvalidArgs: unknown key, wrong type, bad values, bad flags, bad names */
        expect_error(attach_opts1("err", "", "Colour", "s", "blue", 0, &e), &e, SD_BUS_ERROR_INVALID_ARGS);
        u = 3;
        expect_error(attach_opts1("err", "", "Alias", "u", &u, 0, &e), &e, SD_BUS_ERROR_INVALID_ARGS);
        expect_error(attach_opts1("err", "", "Alias", "s", "Not Valid", 0, &e), &e,
                     SD_BUS_ERROR_INVALID_ARGS);
        expect_error(attach_opts1("err", "", "Role", "s", "transcoder", 0, &e), &e,
                     SD_BUS_ERROR_INVALID_ARGS);
        expect_error(attach_opts1("err", "", "Backend", "s", "gstreamer", 0, &e), &e,
                     SD_BUS_ERROR_INVALID_ARGS);
        expect_error(attach_opts1("err", "", "Transport", "s", "carrier-pigeon", 0, &e), &e,
                     SD_BUS_ERROR_INVALID_ARGS);
        expect_error(attach_opts1("err", "", "VMUUID", "ay", "abcde", 0, &e), &e, SD_BUS_ERROR_INVALID_ARGS);
        u = 01777;
        expect_error(attach_opts1("err", "", "SocketMode", "u", &u, 0, &e), &e, SD_BUS_ERROR_INVALID_ARGS);
        expect_error(attach_opts1("err", "", NULL, NULL, NULL, 4, &e), &e, SD_BUS_ERROR_INVALID_ARGS);
        expect_error(attach_opts1("err", "", NULL, NULL, NULL, 3, &e), &e, SD_BUS_ERROR_INVALID_ARGS);
        expect_error(attach_opts1("a/b", "", NULL, NULL, NULL, 0, &e), &e, SD_BUS_ERROR_INVALID_ARGS);
        expect_error(attach_opts1("", "", NULL, NULL, NULL, 0, &e), &e, SD_BUS_ERROR_INVALID_ARGS);
        expect_error(attach_opts1("err", "relative/video0", NULL, NULL, NULL, 0, &e), &e,
                     SD_BUS_ERROR_INVALID_ARGS);
        expect_error(detach(T.client, "err", "video0", 2, &e), &e, SD_BUS_ERROR_INVALID_ARGS);
        expect_error(detach(T.client, "err", "Bad Alias", 0, &e), &e, SD_BUS_ERROR_INVALID_ARGS);
        /* the fd transport is AttachDeviceWithConnection's; client needs a SocketPath (test_client_*) */
        expect_error(attach_opts1("err", "", "Transport", "s", "fd", 0, &e), &e, SD_BUS_ERROR_INVALID_ARGS);
        expect_error(attach_opts1("err", "", "Transport", "s", "client", 0, &e), &e,
                     SD_BUS_ERROR_INVALID_ARGS);
        expect_error(attach_opts1("err", "", "Transport", "s", "carrier-pigeon", 0, &e), &e,
                     SD_BUS_ERROR_INVALID_ARGS);
        expect_error(attach_opts1("err", "", "PeerMachine", "s", "bad/machine", 0, &e), &e,
                     SD_BUS_ERROR_INVALID_ARGS);
        (void) b;
        /* DeviceConnected is covered in test_attach_list_properties_detach */

        /* IF_MISSING returns the existing device; with other parameters it is DeviceExists */
        {
                _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
                const char *o, *sock;
                assert_true(sd_bus_call_method(T.client, DEST, MANAGER_PATH, MANAGER_IFACE, "AttachDevice",
                                               &e, &reply, "ssa{sv}t", "err", "", 2, "Backend", "s", "null",
                                               "Alias", "s", "video0", UINT64_C(2)) >= 0);
                assert_true(sd_bus_message_read(reply, "os", &o, &sock) > 0);
                assert_string_equal(sock, socket);
                snprintf(path, sizeof(path), "%s/video20", T.devdir);
                expect_error(attach_opts1("err", path, "Alias", "s", "video0", 2, &e), &e,
                             "org.virtiovideo.video1.DeviceExists");
        }
        /* REPLACE swaps it */
        {
                char *dev = NULL, *s;
                snprintf(path, sizeof(path), "%s/video20", T.devdir);
                assert_true(attach_v4l2("err", "video20", "video0", "decoder", false, &e) < 0);
                sd_bus_error_free(&e);
                r = sd_bus_call_method(T.client, DEST, MANAGER_PATH, MANAGER_IFACE, "AttachDevice", &e, NULL,
                                       "ssa{sv}t", "err", "", 2, "Backend", "s", "null", "Alias", "s",
                                       "video0", UINT64_C(1));
                assert_true(r >= 0);
                path_of("err", "video0", &dev);
                s = get_string(dev, "Backend");
                assert_string_equal(s, "null");
                free(s);
                free(dev);
        }
        /* default alias: the first free videoN */
        {
                _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
                const char *o, *sock;
                assert_true(sd_bus_call_method(T.client, DEST, MANAGER_PATH, MANAGER_IFACE, "AttachDevice",
                                               &e, &reply, "ssa{sv}t", "err", "", 1, "Backend", "s", "null",
                                               UINT64_C(0)) >= 0);
                assert_true(sd_bus_message_read(reply, "os", &o, &sock) > 0);
                assert_true(g_str_has_suffix(sock, "/video1.sock"));
        }

        /* the SO_PEERCRED policy goes to the worker, which enforces it (§3.5) */
        {
                _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
                uint32_t uids[2] = { 107, 1000 };
                assert_true(sd_bus_message_new_method_call(T.client, &m, DEST, MANAGER_PATH, MANAGER_IFACE,
                                                           "AttachDevice") >= 0);
                assert_true(sd_bus_message_append(m, "ss", "uids", "") >= 0);
                assert_true(sd_bus_message_open_container(m, 'a', "{sv}") >= 0);
                assert_true(sd_bus_message_append(m, "{sv}", "Backend", "s", "null") >= 0);
                assert_true(sd_bus_message_open_container(m, 'e', "sv") >= 0);
                assert_true(sd_bus_message_append(m, "s", "AllowedPeerUIDs") >= 0);
                assert_true(sd_bus_message_open_container(m, 'v', "au") >= 0);
                assert_true(sd_bus_message_append_array(m, 'u', uids, sizeof(uids)) >= 0);
                assert_true(sd_bus_message_close_container(m) >= 0);
                assert_true(sd_bus_message_close_container(m) >= 0);
                assert_true(sd_bus_message_close_container(m) >= 0);
                assert_true(sd_bus_message_append(m, "t", UINT64_C(0)) >= 0);
                assert_true(sd_bus_call(T.client, m, 0, &e, NULL) >= 0);
                wait_file_contains(T.workerlog, "--allow-uid=107 --allow-uid=1000 --vm=uids");
                assert_true(sd_bus_call_method(T.client, DEST, MANAGER_PATH, MANAGER_IFACE, "DetachVM", &e,
                                               NULL, "st", "uids", UINT64_C(0)) >= 0);
        }

        assert_true(sd_bus_call_method(T.client, DEST, MANAGER_PATH, MANAGER_IFACE, "DetachVM", &e, NULL,
                                       "st", "err", UINT64_C(0)) >= 0);
        assert_true(sd_bus_call_method(T.client, DEST, MANAGER_PATH, MANAGER_IFACE, "DetachVM", &e, NULL,
                                       "st", "custom", UINT64_C(0)) >= 0);
        assert_int_equal(get_u32(MANAGER_PATH, MANAGER_IFACE, "NDevices"), 0);
        g_free(socket);
}

/* TooManyDevices needs a small MaxDevices: restart the daemon with one. */
static void test_too_many_devices(void **state) {
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        char alias[16];

        daemon_stop();
        write_config("MaxDevices=3\n");
        daemon_start();
        for (int i = 0; i < 3; i++) {
                snprintf(alias, sizeof(alias), "video%d", i);
                assert_int_equal(attach_null(T.client, "many", alias, &e, NULL), 0);
        }
        expect_error(attach_null(T.client, "many", "video3", &e, NULL), &e,
                     "org.virtiovideo.video1.TooManyDevices");
        assert_true(sd_bus_call_method(T.client, DEST, MANAGER_PATH, MANAGER_IFACE, "DetachVM", &e, NULL,
                                       "st", "many", UINT64_C(0)) >= 0);
        daemon_stop();
        write_config("");
        daemon_start();
}

/* ---- polkit: callers that are neither root nor the owner -------------------------------------------- */

typedef enum { OP_ATTACH, OP_DETACH, OP_LIST, OP_DETACH_VM, OP_ATTACH_INTERACTIVE } Op;

/* Runs one call as uid in a child; returns "ok" or the D-Bus error name (g_free). */
static char *run_as(uid_t uid, Op op, const char *vm, const char *alias) {
        int pipefd[2];
        pid_t pid;
        char buf[256] = "";
        ssize_t n;

        assert_int_equal(pipe2(pipefd, O_CLOEXEC), 0);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                sd_bus_error e = SD_BUS_ERROR_NULL;
                sd_bus *bus = NULL;
                const char *res = "ok";
                int r;

                if (setgroups(0, NULL) < 0 || setresgid(NOBODY, NOBODY, NOBODY) < 0 ||
                    setresuid(uid, uid, uid) < 0)
                        _exit(3);
                if (sd_bus_new(&bus) < 0 || sd_bus_set_address(bus, T.bus.address) < 0 ||
                    sd_bus_set_bus_client(bus, 1) < 0 || sd_bus_start(bus) < 0)
                        _exit(4);
                if (op == OP_ATTACH_INTERACTIVE)
                        (void) sd_bus_set_allow_interactive_authorization(bus, 1);
                switch (op) {
                case OP_ATTACH:
                case OP_ATTACH_INTERACTIVE:
                        r = attach_null(bus, vm, alias, &e, NULL);
                        break;
                case OP_DETACH:
                        r = detach(bus, vm, alias, 0, &e);
                        break;
                case OP_DETACH_VM:
                        r = sd_bus_call_method(bus, DEST, MANAGER_PATH, MANAGER_IFACE, "DetachVM", &e, NULL,
                                               "st", vm, UINT64_C(0));
                        break;
                default:
                        r = sd_bus_call_method(bus, DEST, MANAGER_PATH, MANAGER_IFACE, "ListDevices", &e,
                                               NULL, "");
                        break;
                }
                if (r < 0) {
                        res = e.name ? e.name : "error";
                        fprintf(stderr, "run_as(%u): %s: %s\n", (unsigned) uid, res,
                                e.message ? e.message : "");
                }
                if (write(pipefd[1], res, strlen(res)) < 0)
                        _exit(5);
                _exit(0);
        }
        close(pipefd[1]);
        n = read(pipefd[0], buf, sizeof(buf) - 1);
        close(pipefd[0]);
        assert_true(wait_exit(pid) == 0);
        assert_true(n > 0);
        buf[n] = 0;
        return g_strdup(buf);
}

static void test_polkit(void **state) {
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        unsigned calls;
        char *r, *dev = NULL;

        /* read-only calls are open to everybody, without polkit */
        calls = pk_calls();
        r = run_as(NOBODY, OP_LIST, NULL, NULL);
        assert_string_equal(r, "ok");
        g_free(r);
        assert_int_equal(pk_calls(), calls);

        /* polkit says no */
        pk_script(false, false);
        r = run_as(NOBODY, OP_ATTACH, "pk", "video0");
        assert_string_equal(r, SD_BUS_ERROR_ACCESS_DENIED);
        g_free(r);
        assert_int_equal(pk_calls(), calls + 1);
        pthread_mutex_lock(&pk.lock);
        assert_string_equal(pk.action, "org.virtiovideo.video1.attach-device");
        assert_string_equal(pk.subject_kind, "system-bus-name");
        assert_non_null(strstr(pk.details, "vm=pk;"));
        assert_non_null(strstr(pk.details, "alias=video0;"));
        assert_non_null(strstr(pk.details, "host_device=;"));
        assert_non_null(strstr(pk.details, "verb=attach;"));
        assert_int_equal(pk.flags, 0);
        pthread_mutex_unlock(&pk.lock);
        assert_int_equal(get_u32(MANAGER_PATH, MANAGER_IFACE, "NDevices"), 0);

        /* polkit wants a challenge */
        pk_script(false, true);
        r = run_as(NOBODY, OP_ATTACH_INTERACTIVE, "pk", "video0");
        assert_string_equal(r, SD_BUS_ERROR_INTERACTIVE_AUTHORIZATION_REQUIRED);
        g_free(r);
        pthread_mutex_lock(&pk.lock);
        assert_int_equal(pk.flags, 1); /* AllowUserInteraction from the message header */
        pthread_mutex_unlock(&pk.lock);

        /* polkit says yes: nobody owns the device now */
        pk_script(true, false);
        r = run_as(NOBODY, OP_ATTACH, "pk", "video0");
        assert_string_equal(r, "ok");
        g_free(r);
        path_of("pk", "video0", &dev);
        assert_int_equal(get_u32(dev, DEVICE_IFACE, "Owner"), NOBODY);

        /* another unprivileged user may not detach it when polkit says no */
        pk_script(false, false);
        calls = pk_calls();
        r = run_as(OTHER_UID, OP_DETACH, "pk", "video0");
        assert_string_equal(r, SD_BUS_ERROR_ACCESS_DENIED);
        g_free(r);
        assert_int_equal(pk_calls(), calls + 1);
        pthread_mutex_lock(&pk.lock);
        assert_string_equal(pk.action, "org.virtiovideo.video1.detach-device");
        assert_non_null(strstr(pk.details, "verb=detach;"));
        pthread_mutex_unlock(&pk.lock);
        r = run_as(OTHER_UID, OP_DETACH_VM, "pk", NULL);
        assert_string_equal(r, SD_BUS_ERROR_ACCESS_DENIED);
        g_free(r);
        assert_int_equal(get_u32(MANAGER_PATH, MANAGER_IFACE, "NDevices"), 1);

        /* the owner may, without asking polkit */
        calls = pk_calls();
        r = run_as(NOBODY, OP_DETACH, "pk", "video0");
        assert_string_equal(r, "ok");
        g_free(r);
        assert_int_equal(pk_calls(), calls);
        assert_int_equal(get_u32(MANAGER_PATH, MANAGER_IFACE, "NDevices"), 0);

        /* root never asks polkit */
        calls = pk_calls();
        assert_int_equal(attach_null(T.client, "pk", "video0", &e, NULL), 0);
        assert_int_equal(detach(T.client, "pk", "video0", 0, &e), 0);
        assert_int_equal(pk_calls(), calls);
        free(dev);
}

/* ---- a worker killed with SIGKILL is restarted on the same socket ---------------------------------- */

static void test_worker_killed_is_restarted(void **state) {
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        char *socket = NULL, *dev = NULL, *s;
        uint32_t pid1, pid2;
        uint64_t deadline = now_usec() + DEADLINE_USEC;
        int peer;

        assert_int_equal(attach_null(T.client, "crash", "video0", &e, &socket), 0);
        path_of("crash", "video0", &dev);
        pid1 = get_u32(dev, DEVICE_IFACE, "WorkerPID");
        assert_true(pid1 > 0);
        assert_int_equal(kill((pid_t) pid1, SIGKILL), 0);

        for (;;) {
                pid2 = get_u32(dev, DEVICE_IFACE, "WorkerPID");
                s = get_string(dev, "State");
                if (pid2 != 0 && pid2 != pid1 && strcmp(s, "listening") == 0) {
                        free(s);
                        break;
                }
                free(s);
                assert_true(now_usec() < deadline);
                client_step(200 * 1000);
        }
        /* same path, same listener: a peer gets served */
        s = get_string(dev, "SocketPath");
        assert_string_equal(s, socket);
        free(s);
        peer = connect_unix(socket);
        wait_state(dev, "connected");
        close(peer);
        wait_state(dev, "listening");
        assert_int_equal(detach(T.client, "crash", "video0", 0, &e), 0);
        g_free(socket);
        free(dev);
}

/* ---- LogControl1 ------------------------------------------------------------------------------------ */

static void test_log_control(void **state) {
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        char *s = NULL;

        assert_true(sd_bus_set_property(T.client, DEST, "/org/freedesktop/LogControl1",
                                        "org.freedesktop.LogControl1", "LogLevel", &e, "s", "debug") >= 0);
        assert_true(sd_bus_get_property_string(T.client, DEST, "/org/freedesktop/LogControl1",
                                               "org.freedesktop.LogControl1", "LogLevel", &e, &s) >= 0);
        assert_string_equal(s, "debug");
        free(s);
        expect_error(sd_bus_set_property(T.client, DEST, "/org/freedesktop/LogControl1",
                                         "org.freedesktop.LogControl1", "LogLevel", &e, "s", "loud"),
                     &e, SD_BUS_ERROR_INVALID_ARGS);
        assert_true(sd_bus_set_property(T.client, DEST, "/org/freedesktop/LogControl1",
                                        "org.freedesktop.LogControl1", "LogLevel", &e, "s", "info") >= 0);
}

/* ---- a daemon restart keeps every attachment (fd store + state) ------------------------------------- */

static void test_restart_keeps_attachments(void **state) {
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        char *sock_a = NULL, *sock_b = NULL, *dev_a = NULL, *dev_b = NULL, *fdname_a = NULL,
             *fdname_b = NULL, *s;
        int fds[5], bogus, peer;
        char *names[6];
        size_t n = 0;

        assert_int_equal(attach_null(T.client, "keep", "video0", &e, &sock_a), 0);
        assert_int_equal(attach_null(T.client, "keep two", "video1", &e, &sock_b), 0);
        path_of("keep", "video0", &dev_a);
        path_of("keep two", "video1", &dev_b);
        assert_int_equal(device_fdname("keep", "video0", &fdname_a), 0);
        assert_int_equal(device_fdname("keep two", "video1", &fdname_b), 0);
        assert_true(stored(fdname_a));
        assert_true(stored(fdname_b));

        {
                /* wait for the old workers too, so none of them can take the next connection */
                pid_t w[2] = { (pid_t) get_u32(dev_a, DEVICE_IFACE, "WorkerPID"),
                               (pid_t) get_u32(dev_b, DEVICE_IFACE, "WorkerPID") };
                int pfd[2];
                for (int i = 0; i < 2; i++) {
                        pfd[i] = (int) syscall(SYS_pidfd_open, w[i], 0);
                        assert_true(pfd[i] >= 0);
                }
                daemon_stop();
                for (int i = 0; i < 2; i++) {
                        struct pollfd p = { .fd = pfd[i], .events = POLLIN };
                        assert_int_equal(poll(&p, 1, (int) (DEADLINE_USEC / 1000)), 1);
                        close(pfd[i]);
                }
        }
        /* the sockets stay: nobody unlinked them */
        assert_true(path_exists(sock_a));
        assert_true(path_exists(sock_b));
        /* a client connecting now waits in the stored listener's backlog */
        peer = connect_unix(sock_a);

        /* systemd passes the store back; add a stale entry the daemon must drop */
        bogus = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_true(bogus >= 0);
        fds[n] = store_fd(fdname_a);
        names[n++] = fdname_a;
        fds[n] = store_fd(fdname_b);
        names[n++] = fdname_b;
        fds[n] = bogus;
        names[n++] = (char *) "dev-gone.video0";
        /* and a static socket unit without its static.d/<instance>.conf: logged and dropped */
        {
                struct sockaddr_un sa = { .sun_family = AF_UNIX };
                int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                assert_true(fd >= 0);
                snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/orphan.sock", T.tmp);
                assert_int_equal(bind(fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
                assert_int_equal(listen(fd, 1), 0);
                fds[n] = fd;
                names[n++] = (char *) "static-orphan";
        }
        names[n] = NULL;
        T.daemon = daemon_spawn_full(arg_fakeprobe, fds, names, n, default_args);
        close(bogus);
        close(fds[n - 1]);

        assert_true(removed_contains("dev-gone.video0"));
        assert_int_equal(get_u32(MANAGER_PATH, MANAGER_IFACE, "NDevices"), 2);
        s = get_string(dev_a, "SocketPath");
        assert_string_equal(s, sock_a);
        free(s);
        s = get_string(dev_b, "SocketPath");
        assert_string_equal(s, sock_b);
        free(s);
        /* the peer that connected during the restart is served by the new worker */
        wait_state(dev_a, "connected");
        close(peer);
        wait_state(dev_a, "listening");

        /* a state file without a stored fd is bound again (and stored again) */
        daemon_stop();
        pthread_mutex_lock(&nlock);
        g_ptr_array_set_size(T.store, 0);
        pthread_mutex_unlock(&nlock);
        T.daemon = daemon_spawn_full(arg_fakeprobe, NULL, NULL, 0, default_args);
        assert_int_equal(get_u32(MANAGER_PATH, MANAGER_IFACE, "NDevices"), 2);
        assert_true(stored(fdname_a));
        peer = connect_unix(sock_b);
        wait_state(dev_b, "connected");
        close(peer);
        wait_state(dev_b, "listening");

        assert_true(sd_bus_call_method(T.client, DEST, MANAGER_PATH, MANAGER_IFACE, "DetachVM", &e, NULL,
                                       "st", "keep", UINT64_C(0)) >= 0);
        assert_true(sd_bus_call_method(T.client, DEST, MANAGER_PATH, MANAGER_IFACE, "DetachVM", &e, NULL,
                                       "st", "keep two", UINT64_C(0)) >= 0);
        assert_true(store_empty());
        g_free(sock_a);
        g_free(sock_b);
        free(dev_a);
        free(dev_b);
        free(fdname_a);
        free(fdname_b);
}

/* ---- 500 attach/detach cycles: no fd or memory growth ----------------------------------------------- */

static void wait_fds_at_most(unsigned limit) {
        uint64_t deadline = now_usec() + DEADLINE_USEC;

        /* detached workers exit asynchronously; their pidfds go when they are reaped */
        while (count_fds(T.daemon) > limit) {
                assert_true(now_usec() < deadline);
                client_step(100 * 1000);
        }
}

static void cycle(unsigned i) {
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;

        assert_int_equal(attach_null(T.client, "cycle", "video0", &e, NULL), 0);
        assert_int_equal(detach(T.client, "cycle", "video0", 0, &e), 0);
}

static void test_attach_detach_cycles_do_not_leak(void **state) {
        unsigned fds0, fds1;
        unsigned long rss0, rss1;

        for (unsigned i = 0; i < 50; i++)
                cycle(i);
        fds0 = count_fds(T.daemon);
        wait_fds_at_most(fds0);
        rss0 = vm_rss_kb(T.daemon);
        for (unsigned i = 0; i < 500; i++)
                cycle(i);
        wait_fds_at_most(fds0);
        fds1 = count_fds(T.daemon);
        rss1 = vm_rss_kb(T.daemon);
        fprintf(stderr, "fds %u -> %u, VmRSS %lu kB -> %lu kB\n", fds0, fds1, rss0, rss1);
        assert_true(fds1 <= fds0);
        /* 500 cycles that leaked even 1 KiB each would show; allow allocator noise */
        assert_true(rss1 <= rss0 + RSS_SLACK_KB);
        assert_true(store_empty());
}

/* ---- activation: D-Bus, then socket units ----------------------------------------------------------- */

static bool name_has_owner(void) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int b = 0;

        assert_true(sd_bus_call_method(T.client, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                       "org.freedesktop.DBus", "NameHasOwner", NULL, &reply, "s",
                                       DEST) >= 0);
        assert_true(sd_bus_message_read(reply, "b", &b) > 0);
        return b;
}

static void test_dbus_activation_and_idle_exit(void **state) {
        char path[PATH_MAX + 64], *text, conf2[256];
        uint64_t deadline = now_usec() + DEADLINE_USEC;
        uint32_t pid;
        int pidfd;

        daemon_stop();
        assert_false(name_has_owner());
        snprintf(conf2, sizeof(conf2), "%s/idle.conf", T.confdir);
        write_file(conf2, "[Daemon]\nIdleExitSec=1\n");
        snprintf(path, sizeof(path), "%s/services/org.virtiovideo.video1.service", T.bus.dir);
        text = g_strdup_printf("[D-BUS Service]\nName=org.virtiovideo.video1\n"
                               "Exec=%s --bus-address=%s --runtime-dir=%s --config=%s\n",
                               arg_daemon, T.bus.address, T.run, conf2);
        write_file(path, text);
        g_free(text);

        /* the first call starts the real daemon */
        assert_int_equal(get_u32(MANAGER_PATH, MANAGER_IFACE, "NDevices"), 0);
        assert_true(name_has_owner());
        {
                _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
                assert_true(sd_bus_call_method(T.client, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                               "org.freedesktop.DBus", "GetConnectionUnixProcessID", NULL,
                                               &reply, "s", DEST) >= 0);
                assert_true(sd_bus_message_read(reply, "u", &pid) > 0);
        }
        pidfd = (int) syscall(SYS_pidfd_open, (pid_t) pid, 0);
        assert_true(pidfd >= 0);
        assert_int_equal(unlink(path), 0); /* no second activation from here on */

        /* nothing attached: it gives up the name and exits after IdleExitSec= */
        while (name_has_owner()) {
                assert_true(now_usec() < deadline);
                client_step(200 * 1000);
        }
        {
                struct pollfd p = { .fd = pidfd, .events = POLLIN };
                assert_int_equal(poll(&p, 1, (int) (DEADLINE_USEC / 1000)), 1);
                close(pidfd);
        }
}

static void wait_created(const char *dir, const char *name) {
        char path[512];
        int fd = inotify_init1(IN_CLOEXEC);

        assert_true(fd >= 0);
        assert_true(inotify_add_watch(fd, dir, IN_CREATE | IN_MOVED_TO) >= 0);
        snprintf(path, sizeof(path), "%s/%s", dir, name);
        while (!path_exists(path)) {
                struct pollfd p = { .fd = fd, .events = POLLIN };
                char buf[4096];
                assert_int_equal(poll(&p, 1, (int) (DEADLINE_USEC / 1000)), 1);
                assert_true(read(fd, buf, sizeof(buf)) > 0);
        }
        close(fd);
}

static void test_socket_activation_static_unit(void **state) {
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        char staticdir[256], staticconf[256], sock[300], arg_l[320], addr[PATH_MAX + 64], run[256],
                conf[256], *dev = NULL, *s;
        unsigned ready = ready_count();
        pid_t pid;
        int peer;

        if (T.daemon > 0)
                daemon_stop();
        snprintf(staticdir, sizeof(staticdir), "%s/static", T.run);
        (void) mkdir(T.run, 0755);
        (void) mkdir(staticdir, 0755);
        snprintf(staticconf, sizeof(staticconf), "%s/static.d", T.confdir);
        (void) mkdir(staticconf, 0755);
        snprintf(staticconf, sizeof(staticconf), "%s/static.d/web.conf", T.confdir);
        write_file(staticconf, "[Device]\nVM=web server\nAlias=video2\nBackend=null\n");
        snprintf(sock, sizeof(sock), "%s/web.sock", staticdir);
        snprintf(arg_l, sizeof(arg_l), "--listen=%s", sock);
        snprintf(addr, sizeof(addr), "--bus-address=%s", T.bus.address);
        snprintf(run, sizeof(run), "--runtime-dir=%s", T.run);
        snprintf(conf, sizeof(conf), "--config=%s", T.conf);

        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                setenv("NOTIFY_SOCKET", T.notify, 1);
                setenv("VIRTIO_VIDEOD_WORKER", arg_worker, 1);
                execlp("systemd-socket-activate", "systemd-socket-activate", arg_l, "--fdname=static-web",
                       "-E", "NOTIFY_SOCKET", "-E", "VIRTIO_VIDEOD_WORKER", "-E", "ASAN_OPTIONS", "-E",
                       "UBSAN_OPTIONS", arg_daemon, addr, run, conf, "--no-idle-exit", (char *) NULL);
                _exit(127);
        }
        wait_created(staticdir, "web.sock");
        /* the first connection starts the daemon, which adopts the socket as web server/video2 */
        peer = connect_unix(sock);
        wait_ready(ready, pid);
        T.daemon = pid;
        path_of("web server", "video2", &dev);
        s = get_string(dev, "SocketPath");
        assert_string_equal(s, sock);
        free(s);
        wait_state(dev, "connected");
        /* static devices are not in the fd store: systemd holds the socket unit's fd */
        assert_true(store_empty());

        expect_error(detach(T.client, "web server", "video2", 0, &e), &e,
                     "org.virtiovideo.video1.DeviceConnected");
        assert_int_equal(detach(T.client, "web server", "video2", 1, &e), 0);
        /* the socket unit owns the path (RemoveOnStop=): it stays */
        assert_true(path_exists(sock));
        close(peer);
        daemon_stop();
        free(dev);
}

/* ---- a real session: vhost-user-video behind the daemon, the frontend library as QEMU and guest ------- */

typedef struct FrameCount {
        unsigned n;
} FrameCount;

static int count_null_frame(void *userdata, const VcFrame *f) {
        FrameCount *c = userdata;

        if (!null_frame_matches(f, 48, 32, c->n + 1))
                return -EBADMSG;
        c->n++;
        return 0;
}

static void test_session_through_real_worker(void **state) {
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(video_client_freep) VideoClient *c = NULL;
        _cleanup_(vu_frontend_freep) VuFrontend *fe = NULL;
        VuFrontendOptions fo;
        VideoClientOptions co;
        NullStream s = {};
        FrameCount count = {};
        VcDecodeResult res;
        VcDecodeOptions o = { .stream_id = 1, .frame = count_null_frame, .userdata = &count };
        char *socket = NULL, *dev = NULL, *key;
        uint64_t connections = 0;

        daemon_stop();
        worker_in_use = arg_real_worker;
        T.daemon = daemon_spawn_full(arg_daemon, NULL, NULL, 0, default_args);

        assert_int_equal(attach_null(T.client, "guest", "video0", &e, &socket), 0);
        path_of("guest", "video0", &dev);

        vu_frontend_options_init(&fo);
        fo.config_size = sizeof(struct virtio_video_config);
        fo.device_features = 1u << VIRTIO_VIDEO_F_RESOURCE_GUEST_PAGES;
        fo.timeout_ms = (int) (DEADLINE_USEC / 1000);
        assert_int_equal(vu_frontend_connect(&fo, socket, &fe), 0);
        assert_int_equal(vu_frontend_start(fe), 0);
        wait_state(dev, "connected");
        assert_int_equal(get_u32(dev, DEVICE_IFACE, "PeerPID"), (uint32_t) getpid());

        for (unsigned i = 0; i < 4; i++)
                assert_int_equal(null_stream_append(&s, 48, 32, i + 1), 0);
        o.bitstream = s.data;
        o.size = s.size;
        video_client_options_init(&co);
        co.timeout_ms = (int) (DEADLINE_USEC / 1000);
        assert_int_equal(video_client_new(fe, &co, &c), 0);
        assert_int_equal(video_client_probe(c), 0);
        assert_int_equal(video_client_decode(c, &o, &res), 0);
        assert_int_equal(res.frames, 4);
        assert_int_equal(count.n, 4);
        null_stream_done(&s);

        /* the worker's own statistics, through Device.GetStatistics */
        assert_true(sd_bus_call_method(T.client, DEST, dev, DEVICE_IFACE, "GetStatistics", &e, &reply, "") >=
                    0);
        assert_true(sd_bus_message_enter_container(reply, 'a', "{sv}") > 0);
        while (sd_bus_message_enter_container(reply, 'e', "sv") > 0) {
                assert_true(sd_bus_message_read(reply, "s", &key) > 0);
                if (strcmp(key, "Connections") == 0)
                        assert_true(sd_bus_message_read(reply, "v", "t", &connections) > 0);
                else
                        assert_true(sd_bus_message_skip(reply, "v") >= 0);
                assert_true(sd_bus_message_exit_container(reply) >= 0);
        }
        assert_int_equal(connections, 1);

        /* QEMU goes away: listening again; a forced detach is not needed then */
        c = video_client_free(c);
        fe = vu_frontend_free(fe);
        wait_state(dev, "listening");
        assert_int_equal(detach(T.client, "guest", "video0", 0, &e), 0);
        assert_false(path_exists(socket));

        daemon_stop();
        worker_in_use = arg_worker;
        daemon_start();
        g_free(socket);
        free(dev);
}

/* ---- transports: fd (AttachDeviceWithConnection, OpenConnection) and client ------------------------- */

static int attach_with_connection(const char *vm, const char *alias, sd_bus_error *e, int *ret_fd) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *o;
        int fd, r;

        r = sd_bus_call_method(T.client, DEST, MANAGER_PATH, MANAGER_IFACE, "AttachDeviceWithConnection", e,
                               &reply, "ssa{sv}t", vm, "", 2, "Backend", "s", "null", "Alias", "s", alias,
                               UINT64_C(0));
        if (r < 0)
                return r;
        assert_true(sd_bus_message_read(reply, "oh", &o, &fd) > 0);
        *ret_fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        assert_true(*ret_fd >= 0);
        return 0;
}

static int open_connection(const char *dev, sd_bus_error *e, int *ret_fd) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int fd, r;

        r = sd_bus_call_method(T.client, DEST, dev, DEVICE_IFACE, "OpenConnection", e, &reply, "");
        if (r < 0)
                return r;
        assert_true(sd_bus_message_read(reply, "h", &fd) > 0);
        *ret_fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        assert_true(*ret_fd >= 0);
        return 0;
}

static void wait_worker_pid_not(const char *dev, uint32_t old) {
        uint64_t deadline = now_usec() + DEADLINE_USEC;

        for (;;) {
                uint32_t pid = get_u32(dev, DEVICE_IFACE, "WorkerPID");
                if (pid != 0 && pid != old)
                        return;
                assert_true(now_usec() < deadline);
                client_step(200 * 1000);
        }
}

static bool device_exists(const char *vm, const char *alias);

static void test_fd_transport(void **state) {
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        char *dev = NULL, *s, *sock = NULL;
        uint32_t pid1, pid2;
        int fd = -1, fd2 = -1;

        assert_int_equal(attach_with_connection("fdvm", "video0", &e, &fd), 0);
        path_of("fdvm", "video0", &dev);
        wait_state(dev, "connected");
        s = get_string(dev, "Transport");
        assert_string_equal(s, "fd");
        free(s);
        s = get_string(dev, "SocketPath");
        assert_string_equal(s, "");
        free(s);
        wait_file_contains(T.workerlog, "--connection-fd=3 --control-fd=4 --backend=null");
        /* no socket, no state file, no fd store entry for this transport */
        assert_false(stored("dev-fdvm.video0"));

        /* QEMU's end closes: disconnected, and nothing listens */
        pid1 = get_u32(dev, DEVICE_IFACE, "WorkerPID");
        close(fd);
        wait_state(dev, "disconnected");
        assert_int_equal(get_u32(dev, DEVICE_IFACE, "PeerUID"), UINT32_MAX);

        /* OpenConnection: a new pair, served by a new worker */
        assert_int_equal(open_connection(dev, &e, &fd), 0);
        wait_worker_pid_not(dev, pid1);
        wait_state(dev, "connected");
        pid2 = get_u32(dev, DEVICE_IFACE, "WorkerPID");
        /* the worker dies: the connection died with it, so no restart until OpenConnection */
        assert_int_equal(kill((pid_t) pid2, SIGKILL), 0);
        wait_state(dev, "disconnected");
        {
                char buf[1];
                struct pollfd p = { .fd = fd, .events = POLLIN };
                assert_int_equal(poll(&p, 1, (int) (DEADLINE_USEC / 1000)), 1);
                assert_int_equal(read(fd, buf, 1), 0); /* QEMU sees the hang-up */
        }
        close(fd);
        assert_int_equal(open_connection(dev, &e, &fd2), 0);
        wait_worker_pid_not(dev, pid2);
        wait_state(dev, "connected");
        /* IF_MISSING on the existing device: the same device with a new connection, the old one closed */
        {
                _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
                const char *o;
                int nfd;
                char buf[1];
                struct pollfd p = { .fd = fd2, .events = POLLIN };

                pid1 = get_u32(dev, DEVICE_IFACE, "WorkerPID");
                assert_true(sd_bus_call_method(T.client, DEST, MANAGER_PATH, MANAGER_IFACE,
                                               "AttachDeviceWithConnection", &e, &reply, "ssa{sv}t", "fdvm",
                                               "", 2, "Backend", "s", "null", "Alias", "s", "video0",
                                               UINT64_C(2)) >= 0);
                assert_true(sd_bus_message_read(reply, "oh", &o, &nfd) > 0);
                assert_string_equal(o, dev);
                assert_int_equal(poll(&p, 1, (int) (DEADLINE_USEC / 1000)), 1);
                assert_int_equal(read(fd2, buf, 1), 0);
                close(fd2);
                fd2 = fcntl(nfd, F_DUPFD_CLOEXEC, 3);
                assert_true(fd2 >= 0);
                wait_worker_pid_not(dev, pid1);
                wait_state(dev, "connected");
        }

        /* a connected device needs FORCE; then the worker's end closes */
        expect_error(detach(T.client, "fdvm", "video0", 0, &e), &e,
                     "org.virtiovideo.video1.DeviceConnected");
        assert_int_equal(detach(T.client, "fdvm", "video0", 1, &e), 0);
        {
                char buf[1];
                struct pollfd p = { .fd = fd2, .events = POLLIN };
                assert_int_equal(poll(&p, 1, (int) (DEADLINE_USEC / 1000)), 1);
                assert_int_equal(read(fd2, buf, 1), 0);
        }
        close(fd2);

        /* OpenConnection is for the fd transport only; AttachDevice cannot make one */
        assert_int_equal(attach_null(T.client, "fdvm", "video1", &e, &sock), 0);
        free(dev);
        path_of("fdvm", "video1", &dev);
        expect_error(open_connection(dev, &e, &fd), &e, SD_BUS_ERROR_NOT_SUPPORTED);
        expect_error(sd_bus_call_method(T.client, DEST, MANAGER_PATH, MANAGER_IFACE,
                                        "AttachDeviceWithConnection", &e, NULL, "ssa{sv}t", "fdvm", "", 2,
                                        "Backend", "s", "null", "Transport", "s", "server", UINT64_C(0)),
                     &e, SD_BUS_ERROR_INVALID_ARGS);
        expect_error(sd_bus_call_method(T.client, DEST, MANAGER_PATH, MANAGER_IFACE,
                                        "AttachDeviceWithConnection", &e, NULL, "ssa{sv}t", "fdvm", "", 2,
                                        "Backend", "s", "null", "SocketPath", "s", "/tmp/x.sock",
                                        UINT64_C(0)),
                     &e, SD_BUS_ERROR_INVALID_ARGS);
        expect_error(sd_bus_call_method(T.client, DEST, MANAGER_PATH, MANAGER_IFACE,
                                        "AttachDeviceWithConnection", &e, NULL, "ssa{sv}t", "fdvm", "", 2,
                                        "Backend", "s", "null", "PeerMachine", "s", "vm-good", UINT64_C(0)),
                     &e, SD_BUS_ERROR_INVALID_ARGS);
        assert_int_equal(detach(T.client, "fdvm", "video1", 0, &e), 0);

        /* an fd device does not outlive the service: its connection ends with it */
        assert_int_equal(attach_with_connection("fdvm", "video2", &e, &fd), 0);
        free(dev);
        path_of("fdvm", "video2", &dev);
        wait_state(dev, "connected");
        daemon_stop();
        daemon_start();
        assert_false(device_exists("fdvm", "video2"));
        {
                char buf[1];
                struct pollfd p = { .fd = fd, .events = POLLIN };
                assert_int_equal(poll(&p, 1, (int) (DEADLINE_USEC / 1000)), 1);
                assert_int_equal(read(fd, buf, 1), 0);
        }
        close(fd);
        g_free(sock);
        free(dev);
}

static int
attach_client(const char *vm, const char *alias, const char *path, const char *machine, sd_bus_error *e) {
        if (machine)
                return sd_bus_call_method(T.client, DEST, MANAGER_PATH, MANAGER_IFACE, "AttachDevice", e,
                                          NULL, "ssa{sv}t", vm, "", 5, "Backend", "s", "null", "Alias", "s",
                                          alias, "Transport", "s", "client", "SocketPath", "s", path,
                                          "PeerMachine", "s", machine, UINT64_C(0));
        return sd_bus_call_method(T.client, DEST, MANAGER_PATH, MANAGER_IFACE, "AttachDevice", e, NULL,
                                  "ssa{sv}t", vm, "", 4, "Backend", "s", "null", "Alias", "s", alias,
                                  "Transport", "s", "client", "SocketPath", "s", path, UINT64_C(0));
}

static int listen_unix(const char *path) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

        assert_true(fd >= 0);
        strcpy(sa.sun_path, path);
        assert_int_equal(bind(fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
        assert_int_equal(listen(fd, 4), 0);
        return fd;
}

static int accept_within_deadline(int lfd) {
        struct pollfd p = { .fd = lfd, .events = POLLIN };
        int fd;

        assert_int_equal(poll(&p, 1, (int) (DEADLINE_USEC / 1000)), 1);
        fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        assert_true(fd >= 0);
        return fd;
}

static void test_client_transport(void **state) {
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        char qdir[192], qsock[256], bad[300], *dev = NULL, *s;
        int lfd, cfd;

        snprintf(qdir, sizeof(qdir), "%s/qemu", T.tmp);
        assert_int_equal(mkdir(qdir, 0755), 0);
        snprintf(qsock, sizeof(qsock), "%s/vm.sock", qdir);

        /* the path rules: absolute and normalized, the directory exists, a socket if it exists, not ours */
        expect_error(attach_client("cl", "video0", "relative.sock", NULL, &e), &e,
                     SD_BUS_ERROR_INVALID_ARGS);
        snprintf(bad, sizeof(bad), "%s/../qemu/vm.sock", qdir);
        expect_error(attach_client("cl", "video0", bad, NULL, &e), &e, SD_BUS_ERROR_INVALID_ARGS);
        snprintf(bad, sizeof(bad), "%s/missing/vm.sock", qdir);
        expect_error(attach_client("cl", "video0", bad, NULL, &e), &e, SD_BUS_ERROR_INVALID_ARGS);
        snprintf(bad, sizeof(bad), "%s/plain", qdir);
        write_file(bad, "not a socket");
        expect_error(attach_client("cl", "video0", bad, NULL, &e), &e, SD_BUS_ERROR_INVALID_ARGS);
        snprintf(bad, sizeof(bad), "%s/vm/x.sock", T.run);
        expect_error(attach_client("cl", "video0", bad, NULL, &e), &e,
                     "org.virtiovideo.video1.SocketPathNotAllowed");

        /* QEMU is not there yet: the worker keeps trying; the device says listening */
        assert_true(attach_client("cl", "video0", qsock, NULL, &e) >= 0);
        path_of("cl", "video0", &dev);
        wait_file_contains(T.workerlog, "--connect-path=");
        s = get_string(dev, "Transport");
        assert_string_equal(s, "client");
        free(s);
        s = get_string(dev, "SocketPath");
        assert_string_equal(s, qsock);
        free(s);
        s = get_string(dev, "State");
        assert_string_equal(s, "listening");
        free(s);

        /* QEMU comes up: the worker connects; the peer is QEMU (us) */
        lfd = listen_unix(qsock);
        cfd = accept_within_deadline(lfd);
        wait_state(dev, "connected");
        assert_int_equal(get_u32(dev, DEVICE_IFACE, "PeerPID"), (uint32_t) getpid());
        /* QEMU drops the connection (restart): the worker connects again */
        close(cfd);
        cfd = accept_within_deadline(lfd);
        wait_state(dev, "connected");
        close(cfd);
        /* a restart of the service keeps the device, which connects again */
        daemon_stop();
        daemon_start();
        cfd = accept_within_deadline(lfd);
        wait_state(dev, "connected");
        close(cfd);
        close(lfd);
        (void) unlink(qsock);
        wait_state(dev, "listening");

        /* detach leaves QEMU's socket path alone */
        lfd = listen_unix(qsock);
        cfd = accept_within_deadline(lfd);
        wait_state(dev, "connected");
        assert_int_equal(detach(T.client, "cl", "video0", 1, &e), 0);
        assert_true(path_exists(qsock));
        close(cfd);
        close(lfd);
        free(dev);
}

/* ---- BindToCaller ----------------------------------------------------------------------------------- */

static bool device_exists(const char *vm, const char *alias) {
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        int r = sd_bus_call_method(T.client, DEST, MANAGER_PATH, MANAGER_IFACE, "GetDevice", &e, NULL, "ss",
                                   vm, alias);
        if (r < 0)
                assert_string_equal(e.name, "org.virtiovideo.video1.NoSuchDevice");
        return r >= 0;
}

static void test_bind_to_caller(void **state) {
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        uint64_t deadline = now_usec() + DEADLINE_USEC;
        sd_bus *other = bus_connect(T.bus.address);
        unsigned removed;

        assert_true(sd_bus_call_method(other, DEST, MANAGER_PATH, MANAGER_IFACE, "AttachDevice", &e, NULL,
                                       "ssa{sv}t", "bound", "", 3, "Backend", "s", "null", "Alias", "s",
                                       "video0", "BindToCaller", "b", 1, UINT64_C(0)) >= 0);
        assert_true(sd_bus_call_method(other, DEST, MANAGER_PATH, MANAGER_IFACE, "AttachDevice", &e, NULL,
                                       "ssa{sv}t", "bound", "", 3, "Backend", "s", "null", "Alias", "s",
                                       "video1", "BindToCaller", "b", 0, UINT64_C(0)) >= 0);
        assert_true(device_exists("bound", "video0"));
        removed = T.device_removed;
        /* the caller leaves the bus: its bound device goes, the other stays */
        other = sd_bus_flush_close_unref(other);
        while (device_exists("bound", "video0")) {
                assert_true(now_usec() < deadline);
                client_step(200 * 1000);
        }
        while (T.device_removed == removed) {
                assert_true(now_usec() < deadline);
                client_step(200 * 1000);
        }
        assert_non_null(strstr(T.last_removed, "bound"));
        assert_true(device_exists("bound", "video1"));
        assert_int_equal(detach(T.client, "bound", "video1", 0, &e), 0);
}

/* ---- PeerMachine ------------------------------------------------------------------------------------ */

static void wait_peer_dropped(int fd) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        char buf[1];

        assert_int_equal(poll(&p, 1, (int) (DEADLINE_USEC / 1000)), 1);
        assert_int_equal(read(fd, buf, 1), 0);
}

static uint64_t manager_stat(const char *name) {
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *key;
        uint64_t v = UINT64_MAX;

        assert_true(sd_bus_call_method(T.client, DEST, MANAGER_PATH, MANAGER_IFACE, "GetStatistics", &e,
                                       &reply, "") >= 0);
        assert_true(sd_bus_message_enter_container(reply, 'a', "{sv}") > 0);
        while (sd_bus_message_enter_container(reply, 'e', "sv") > 0) {
                assert_true(sd_bus_message_read(reply, "s", &key) > 0);
                if (strcmp(key, name) == 0)
                        assert_true(sd_bus_message_read(reply, "v", "t", &v) > 0);
                else
                        assert_true(sd_bus_message_skip(reply, "v") >= 0);
                assert_true(sd_bus_message_exit_container(reply) >= 0);
        }
        assert_true(v != UINT64_MAX);
        return v;
}

static void test_peer_machine(void **state) {
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        char *socket = NULL, *dev = NULL, *s;
        uint64_t rejections;
        unsigned calls;
        int peer;

        /* PeerMachine=vm-good: a peer of that machine gets in, PeerMachine is filled */
        assert_true(sd_bus_call_method(T.client, DEST, MANAGER_PATH, MANAGER_IFACE, "AttachDevice", &e, NULL,
                                       "ssa{sv}t", "pm", "", 3, "Backend", "s", "null", "Alias", "s",
                                       "video0", "PeerMachine", "s", "vm-good", UINT64_C(0)) >= 0);
        path_of("pm", "video0", &dev);
        socket = get_string(dev, "SocketPath");
        mach_script(getpid(), "vm-good");
        peer = connect_unix(socket);
        wait_state(dev, "connected");
        s = get_string(dev, "PeerMachine");
        assert_string_equal(s, "vm-good");
        free(s);
        close(peer);
        wait_state(dev, "listening");
        s = get_string(dev, "PeerMachine");
        assert_string_equal(s, "");
        free(s);

        /* a peer of another machine, or of none, is dropped and counted */
        rejections = manager_stat("PeerRejections");
        mach_script(getpid(), "vm-evil");
        peer = connect_unix(socket);
        wait_peer_dropped(peer);
        close(peer);
        assert_int_equal(manager_stat("PeerRejections"), rejections + 1);
        mach_script(0, NULL);
        peer = connect_unix(socket);
        wait_peer_dropped(peer);
        close(peer);
        assert_int_equal(manager_stat("PeerRejections"), rejections + 2);
        s = get_string(dev, "State");
        assert_string_equal(s, "listening");
        free(s);
        assert_int_equal(detach(T.client, "pm", "video0", 0, &e), 0);
        free(socket);
        free(dev);

        /* without the option the machine is only looked up for the property */
        assert_int_equal(attach_null(T.client, "pm", "video1", &e, &socket), 0);
        path_of("pm", "video1", &dev);
        mach_script(getpid(), "vm-other");
        calls = mach_calls();
        peer = connect_unix(socket);
        wait_state(dev, "connected");
        {
                uint64_t deadline = now_usec() + DEADLINE_USEC;
                for (;;) {
                        s = get_string(dev, "PeerMachine");
                        bool ok = strcmp(s, "vm-other") == 0;
                        free(s);
                        if (ok)
                                break;
                        assert_true(now_usec() < deadline);
                        client_step(200 * 1000);
                }
        }
        assert_true(mach_calls() > calls);
        close(peer);
        wait_state(dev, "listening");
        assert_int_equal(detach(T.client, "pm", "video1", 0, &e), 0);
        mach_script(0, NULL);
        g_free(socket);
        free(dev);
}

/* ---- the worker sandbox ----------------------------------------------------------------------------- */

static bool has_feature(const char *name) {
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        char **l = NULL;
        bool found;

        assert_true(sd_bus_get_property_strv(T.client, DEST, MANAGER_PATH, MANAGER_IFACE, "Features", &e,
                                             &l) >= 0);
        found = g_strv_contains((const char *const *) l, name);
        g_strfreev(l);
        return found;
}

static void test_worker_sandbox(void **state) {
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        char *socket = NULL, *dev = NULL, *log;
        uint32_t pid1;

        /* the fake worker lists "sandbox": every worker gets --sandbox; SIGSYS is logged and restarted */
        daemon_stop();
        (void) unlink(T.workerlog);
        (void) unlink(T.daemonlog);
        T.capture_stderr = true;
        daemon_start();
        assert_true(has_feature("worker-sandbox"));
        assert_true(has_feature("fd-transport") && has_feature("client-transport") &&
                    has_feature("bind-to-caller") && has_feature("peer-machine"));
        assert_int_equal(attach_null(T.client, "sb", "video0", &e, &socket), 0);
        wait_file_contains(T.workerlog, "--vm=sb --alias=video0 --sandbox");
        path_of("sb", "video0", &dev);
        wait_state(dev, "listening");
        pid1 = get_u32(dev, DEVICE_IFACE, "WorkerPID");
        assert_int_equal(kill((pid_t) pid1, SIGSYS), 0);
        wait_file_contains(T.daemonlog, "refused a system call in its sandbox");
        wait_worker_pid_not(dev, pid1);
        wait_state(dev, "listening");
        assert_int_equal(detach(T.client, "sb", "video0", 0, &e), 0);
        g_free(socket);
        socket = NULL;

        /* WorkerSandbox=no */
        daemon_stop();
        (void) unlink(T.workerlog);
        write_config("WorkerSandbox=no\n");
        daemon_start();
        assert_false(has_feature("worker-sandbox"));
        assert_int_equal(attach_null(T.client, "sb", "video1", &e, &socket), 0);
        wait_file_contains(T.workerlog, "--vm=sb --alias=video1");
        log = read_file(T.workerlog);
        assert_null(strstr(log, "--sandbox"));
        g_free(log);
        assert_int_equal(detach(T.client, "sb", "video1", 0, &e), 0);
        g_free(socket);
        socket = NULL;

        /* a worker without "sandbox" in --print-capabilities runs without it */
        daemon_stop();
        (void) unlink(T.workerlog);
        write_config("");
        setenv("FAKE_WORKER_NO_SANDBOX", "1", 1);
        daemon_start();
        assert_false(has_feature("worker-sandbox"));
        assert_int_equal(attach_null(T.client, "sb", "video2", &e, &socket), 0);
        wait_file_contains(T.workerlog, "--vm=sb --alias=video2");
        log = read_file(T.workerlog);
        assert_null(strstr(log, "--sandbox"));
        g_free(log);
        assert_int_equal(detach(T.client, "sb", "video2", 0, &e), 0);
        unsetenv("FAKE_WORKER_NO_SANDBOX");
        g_free(socket);
        daemon_stop();
        T.capture_stderr = false;
        daemon_start();
        free(dev);
}

/* ---- the fd and client transports with the real (sandboxed) worker ---------------------------------- */

static void decode_four_null_frames(VuFrontend *fe) {
        _cleanup_(video_client_freep) VideoClient *c = NULL;
        VideoClientOptions co;
        NullStream s = {};
        FrameCount count = {};
        VcDecodeResult res;
        VcDecodeOptions o = { .stream_id = 1, .frame = count_null_frame, .userdata = &count };

        for (unsigned i = 0; i < 4; i++)
                assert_int_equal(null_stream_append(&s, 48, 32, i + 1), 0);
        o.bitstream = s.data;
        o.size = s.size;
        video_client_options_init(&co);
        co.timeout_ms = (int) (DEADLINE_USEC / 1000);
        assert_int_equal(video_client_new(fe, &co, &c), 0);
        assert_int_equal(video_client_probe(c), 0);
        assert_int_equal(video_client_decode(c, &o, &res), 0);
        assert_int_equal(res.frames, 4);
        assert_int_equal(count.n, 4);
        null_stream_done(&s);
}

static VuFrontend *frontend_on_fd(int fd) {
        VuFrontendOptions fo;
        VuFrontend *fe = NULL;

        vu_frontend_options_init(&fo);
        fo.config_size = sizeof(struct virtio_video_config);
        fo.device_features = 1u << VIRTIO_VIDEO_F_RESOURCE_GUEST_PAGES;
        fo.timeout_ms = (int) (DEADLINE_USEC / 1000);
        assert_int_equal(vu_frontend_new_from_fd(&fo, fd, &fe), 0);
        assert_int_equal(vu_frontend_start(fe), 0);
        return fe;
}

static void test_transports_through_real_worker(void **state) {
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        char qsock[256], *dev = NULL;
        VuFrontend *fe;
        int fd, lfd;

        daemon_stop();
        worker_in_use = arg_real_worker;
        T.daemon = daemon_spawn_full(arg_daemon, NULL, NULL, 0, default_args);

        /* fd: QEMU's end of the pair is a working vhost-user connection; OpenConnection gives another */
        assert_int_equal(attach_with_connection("real", "video0", &e, &fd), 0);
        path_of("real", "video0", &dev);
        fe = frontend_on_fd(fd);
        wait_state(dev, "connected");
        decode_four_null_frames(fe);
        vu_frontend_free(fe);
        wait_state(dev, "disconnected");
        assert_int_equal(open_connection(dev, &e, &fd), 0);
        fe = frontend_on_fd(fd);
        wait_state(dev, "connected");
        decode_four_null_frames(fe);
        vu_frontend_free(fe);
        wait_state(dev, "disconnected");
        assert_int_equal(detach(T.client, "real", "video0", 0, &e), 0);
        free(dev);

        /* client: the worker connects to "QEMU", and again after QEMU went away */
        snprintf(qsock, sizeof(qsock), "%s/real-qemu.sock", T.tmp);
        assert_true(attach_client("real", "video1", qsock, NULL, &e) >= 0);
        path_of("real", "video1", &dev);
        lfd = listen_unix(qsock);
        for (unsigned round = 0; round < 2; round++) {
                fe = frontend_on_fd(accept_within_deadline(lfd));
                wait_state(dev, "connected");
                decode_four_null_frames(fe);
                vu_frontend_free(fe);
        }
        close(lfd);
        wait_state(dev, "listening");
        assert_int_equal(detach(T.client, "real", "video1", 0, &e), 0);
        free(dev);

        daemon_stop();
        worker_in_use = arg_worker;
        daemon_start();
}

/* ---- the command line and a bad configuration ------------------------------------------------------- */

static int run_daemon_capture(char **args, char **ret_err) {
        int pipefd[2], status;
        pid_t pid;
        GString *err = g_string_new(NULL);
        char buf[1024];
        ssize_t n;

        assert_int_equal(pipe2(pipefd, O_CLOEXEC), 0);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                dup2(pipefd[1], 2);
                dup2(pipefd[1], 1);
                execv(arg_daemon, args);
                _exit(127);
        }
        close(pipefd[1]);
        while ((n = read(pipefd[0], buf, sizeof(buf))) > 0)
                g_string_append_len(err, buf, n);
        close(pipefd[0]);
        status = wait_exit(pid);
        *ret_err = g_string_free(err, FALSE);
        assert_true(WIFEXITED(status));
        return WEXITSTATUS(status);
}

static void test_command_line_and_bad_config(void **state) {
        char bad[256], cfg[300], addr[PATH_MAX + 64], *out;
        char *help[] = { (char *) arg_daemon, (char *) "--help", NULL };
        char *version[] = { (char *) arg_daemon, (char *) "--version", NULL };
        char *unknown[] = { (char *) arg_daemon, (char *) "--frobnicate", NULL };
        char *badbus[] = { (char *) arg_daemon, (char *) "--bus=pony", NULL };
        char *badrun[] = { (char *) arg_daemon, (char *) "--runtime-dir=rel/dir", NULL };
        char *withconf[] = { (char *) arg_daemon, addr, cfg, NULL };

        assert_int_equal(run_daemon_capture(help, &out), 0);
        assert_non_null(strstr(out, "--bus-address"));
        g_free(out);
        assert_int_equal(run_daemon_capture(version, &out), 0);
        assert_non_null(strstr(out, "virtio-videod "));
        g_free(out);
        assert_int_equal(run_daemon_capture(unknown, &out), 1);
        g_free(out);
        assert_int_equal(run_daemon_capture(badbus, &out), 1);
        assert_non_null(strstr(out, "pony"));
        g_free(out);
        assert_int_equal(run_daemon_capture(badrun, &out), 1);
        g_free(out);

        snprintf(addr, sizeof(addr), "--bus-address=%s", T.bus.address);
        snprintf(bad, sizeof(bad), "%s/bad.conf", T.confdir);
        snprintf(cfg, sizeof(cfg), "--config=%s", bad);
        write_file(bad, "[Daemon]\nMaxDevices=many\n");
        assert_int_equal(run_daemon_capture(withconf, &out), 1);
        assert_non_null(strstr(out, bad));
        assert_non_null(strstr(out, "MaxDevices=many"));
        g_free(out);
        write_file(bad, "[Daemon]\nNoSuchKey=1\n");
        assert_int_equal(run_daemon_capture(withconf, &out), 1);
        assert_non_null(strstr(out, "NoSuchKey"));
        g_free(out);
        snprintf(cfg, sizeof(cfg), "--config=%s/missing.conf", T.confdir);
        assert_int_equal(run_daemon_capture(withconf, &out), 1);
        assert_non_null(strstr(out, "missing.conf"));
        g_free(out);
}

int main(int argc, char **argv) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_introspection_matches_shipped_xml),
                cmocka_unit_test(test_attach_list_properties_detach),
                cmocka_unit_test(test_host_devices_probe_and_list),
                cmocka_unit_test(test_errors),
                cmocka_unit_test(test_too_many_devices),
                cmocka_unit_test(test_polkit),
                cmocka_unit_test(test_worker_killed_is_restarted),
                cmocka_unit_test(test_log_control),
                cmocka_unit_test(test_restart_keeps_attachments),
                cmocka_unit_test(test_attach_detach_cycles_do_not_leak),
                cmocka_unit_test(test_session_through_real_worker),
                cmocka_unit_test(test_fd_transport),
                cmocka_unit_test(test_client_transport),
                cmocka_unit_test(test_bind_to_caller),
                cmocka_unit_test(test_peer_machine),
                cmocka_unit_test(test_worker_sandbox),
                cmocka_unit_test(test_transports_through_real_worker),
                cmocka_unit_test(test_command_line_and_bad_config),
                cmocka_unit_test(test_dbus_activation_and_idle_exit),
                cmocka_unit_test(test_socket_activation_static_unit),
        };

        if (argc != 6) {
                fprintf(stderr, "usage: %s DAEMON DAEMON-FAKEPROBE FAKE-WORKER SOURCE-ROOT WORKER\n",
                        argv[0]);
                return 2;
        }
        arg_daemon = argv[1];
        arg_fakeprobe = argv[2];
        arg_worker = argv[3];
        arg_source = argv[4];
        arg_real_worker = argv[5];
        worker_in_use = arg_worker;
        if (getuid() != 0) {
                /* polkit tests switch uids; there is no skip() that cmocka 1.1.5 reports correctly */
                fprintf(stderr, "test-daemon needs root (it runs clients as other uids)\n");
                return 1;
        }
        signal(SIGPIPE, SIG_IGN);
        /* for daemons started by the bus (D-Bus activation) too */
        setenv("VIRTIO_VIDEOD_WORKER", arg_worker, 1);
        assert_true(sd_bus_error_add_map(bus_error_map_video1) >= 0);
        return cmocka_run_group_tests(tests, env_setup, env_teardown);
}
