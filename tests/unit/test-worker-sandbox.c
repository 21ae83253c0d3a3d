/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * worker/sandbox.c: the seccomp filter installed in a forked child (what a worker does after set-up works,
 * file access and new sockets fail with an errno, exec, fork and executable mappings kill with a message
 * naming the call), closing inherited fds, and sandbox_apply() seen from /proc.
 */
#include <errno.h>
#include <fcntl.h>
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
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/macro.h"
#include "config.h"
#include "worker/sandbox.h"

#define SAFETY_TIMEOUT_MS 20000

typedef struct ChildResult {
        int status;
        char err[4096]; /* what the child wrote to stderr */
} ChildResult;

/* Runs fn in a forked child with stderr on a pipe; the child _exit()s with fn's return value. */
static void run_child(int (*fn)(void *), void *userdata, ChildResult *ret) {
        size_t len = 0;
        int p[2];
        pid_t pid;

        memset(ret, 0, sizeof(*ret));
        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        fflush(NULL);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                if (dup2(p[1], STDERR_FILENO) < 0)
                        _exit(125);
                _exit(fn(userdata));
        }
        close(p[1]);
        for (;;) {
                struct pollfd pf = { .fd = p[0], .events = POLLIN };
                ssize_t k;

                assert_true(poll(&pf, 1, SAFETY_TIMEOUT_MS) > 0);
                k = read(p[0], ret->err + len, sizeof(ret->err) - 1 - len);
                assert_true(k >= 0);
                if (k == 0 || len + (size_t) k >= sizeof(ret->err) - 1)
                        break;
                len += (size_t) k;
        }
        close(p[0]);
        assert_int_equal(waitpid(pid, &ret->status, 0), pid);
}

static int enter_filter(void) {
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
                return 100;
        return sandbox_install_filter() < 0 ? 101 : 0;
}

static void assert_exit_0(const ChildResult *r) {
        if (!WIFEXITED(r->status) || WEXITSTATUS(r->status) != 0)
                fail_msg("child status 0x%x, stderr: %s", (unsigned) r->status, r->err);
}

static void assert_killed_for(const ChildResult *r, const char *syscall_name) {
        char want[128];

        snprintf(want, sizeof(want), "sandbox: refused system call %s (", syscall_name);
        if (!WIFSIGNALED(r->status) || WTERMSIG(r->status) != SIGSYS)
                fail_msg("child status 0x%x, wanted death by SIGSYS; stderr: %s", (unsigned) r->status,
                         r->err);
        if (!strstr(r->err, want))
                fail_msg("stderr '%s' does not name %s", r->err, syscall_name);
}

static void *thread_add(void *arg) {
        int *v = arg;

        (*v)++;
        return NULL;
}

/* What a worker does after set-up: its event loop, fds received with SCM_RIGHTS, guest memory maps,
 * codec threads, time, its own signals. */
static int child_allowed(void *userdata) {
        struct epoll_event ev = { .events = EPOLLIN };
        char c = 'x', buf[CMSG_SPACE(sizeof(int))] = {};
        struct iovec iov = { .iov_base = &c, .iov_len = 1 };
        struct msghdr mh = {
                .msg_iov = &iov, .msg_iovlen = 1, .msg_control = buf, .msg_controllen = sizeof(buf)
        };
        struct cmsghdr *cm;
        struct timespec ts;
        int sp[2], memfd, efd, ep, got, r, v = 0;
        uint64_t one = 1, val = 0;
        pthread_t t;
        uint8_t *m;

        /* What the worker had before the filter: the connection and guest memory come from outside. */
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0)
                return 1;
        memfd = memfd_create("guest", MFD_CLOEXEC);
        if (memfd < 0 || ftruncate(memfd, 65536) < 0)
                return 2;
        r = enter_filter();
        if (r != 0)
                return r;

        efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        ep = epoll_create1(EPOLL_CLOEXEC);
        if (efd < 0 || ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev) < 0)
                return 3;
        if (write(efd, &one, sizeof(one)) != sizeof(one) || epoll_wait(ep, &ev, 1, 0) != 1 ||
            read(efd, &val, sizeof(val)) != sizeof(val) || val != 1)
                return 4;
        /* An fd over the socket, as SET_MEM_TABLE sends them. */
        cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cm), &memfd, sizeof(int));
        if (sendmsg(sp[0], &mh, 0) != 1)
                return 5;
        memset(buf, 0, sizeof(buf));
        mh.msg_controllen = sizeof(buf);
        if (recvmsg(sp[1], &mh, MSG_CMSG_CLOEXEC) != 1 || !(cm = CMSG_FIRSTHDR(&mh)))
                return 6;
        memcpy(&got, CMSG_DATA(cm), sizeof(int));
        m = mmap(NULL, 65536, PROT_READ | PROT_WRITE, MAP_SHARED, got, 0);
        if (m == MAP_FAILED)
                return 7;
        m[4096] = 42;
        if (munmap(m, 65536) < 0 || close(got) < 0)
                return 8;
        /* malloc, threads, time. */
        m = malloc(1 << 20);
        if (!m)
                return 9;
        m[0] = 1;
        free(m);
        if (pthread_create(&t, NULL, thread_add, &v) != 0 || pthread_join(t, NULL) != 0 || v != 1)
                return 10;
        if (clock_gettime(CLOCK_MONOTONIC, &ts) < 0 || getpid() <= 0)
                return 11;
        return 0;
}

static void test_filter_allows_what_a_worker_does(void **state) {
        ChildResult r;

        run_child(child_allowed, NULL, &r);
        assert_exit_0(&r);
        assert_null(strstr(r.err, "refused"));
}

static char scratch[64];

/* Files and new sockets: an errno, not death, so libraries that probe files fall back. */
static int child_file_access(void *userdata) {
        const char *path = userdata;
        char created[128];
        int r;

        snprintf(created, sizeof(created), "%s.new", path);
        r = enter_filter();
        if (r != 0)
                return r;
        if (open(created, O_WRONLY | O_CREAT | O_CLOEXEC, 0600) >= 0 || errno != EACCES)
                return 1;
        if (openat(AT_FDCWD, path, O_RDWR | O_CLOEXEC) >= 0 || errno != EACCES)
                return 2;
#if !HAVE_SANITIZERS
        /* Read-only too (the sanitizer runtimes need that one: sandbox.c). */
        if (open(path, O_RDONLY | O_CLOEXEC) >= 0 || errno != EACCES)
                return 3;
        if (open("/proc/self/status", O_RDONLY | O_CLOEXEC) >= 0 || errno != EACCES)
                return 4;
#endif
        if (socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0) >= 0 || errno != EACCES)
                return 5;
        if (unlink(path) == 0 || errno != EPERM)
                return 6;
        return 0;
}

static void test_filter_refuses_files_with_errno(void **state) {
        char path[128];
        ChildResult r;
        int fd;

        snprintf(path, sizeof(path), "%s/file", scratch);
        fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
        close(fd);
        run_child(child_file_access, path, &r);
        assert_exit_0(&r);
        /* The file survived the unlink and nothing was created. */
        assert_int_equal(access(path, F_OK), 0);
        strcat(path, ".new");
        assert_int_equal(access(path, F_OK), -1);
        path[strlen(path) - 4] = '\0';
        assert_int_equal(unlink(path), 0);
}

static int child_execve(void *userdata) {
        char *const argv[] = { (char *) "true", NULL }, *const envp[] = { NULL };
        int r = enter_filter();

        if (r != 0)
                return r;
        execve("/bin/true", argv, envp);
        return 1; /* refused with an errno: wrong */
}

static void test_filter_kills_execve(void **state) {
        ChildResult r;

        run_child(child_execve, NULL, &r);
        assert_killed_for(&r, "execve");
}

static int child_exec_mapping(void *userdata) {
        int r = enter_filter();

        if (r != 0)
                return r;
        (void) mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        return 1;
}

static void test_filter_kills_executable_mapping(void **state) {
        ChildResult r;

        run_child(child_exec_mapping, NULL, &r);
        assert_killed_for(&r, "mmap");
}

static int child_setuid(void *userdata) {
        int r = enter_filter();

        if (r != 0)
                return r;
        (void) syscall(SYS_setuid, 0);
        return 1;
}

/* A call that is on no list at all. */
static void test_filter_kills_unlisted_call(void **state) {
        ChildResult r;

        run_child(child_setuid, NULL, &r);
        assert_killed_for(&r, "setuid");
}

#if !HAVE_SANITIZERS
static int child_fork(void *userdata) {
        pid_t pid;
        int r = enter_filter();

        if (r != 0)
                return r;
        pid = fork();
        if (pid == 0)
                _exit(0);
        return 1;
}

/* Threads yes, processes no (LSan's tracer needs a process, so sanitizer builds allow clone). */
static void test_filter_kills_fork(void **state) {
        ChildResult r;

        run_child(child_fork, NULL, &r);
        assert_killed_for(&r, "clone");
}
#endif

typedef struct Waiter {
        int fd; /* read end: the thread waits here until the filter is in */
        int result;
} Waiter;

static void *thread_after_filter(void *arg) {
        Waiter *w = arg;
        char c;

        if (read(w->fd, &c, 1) != 1)
                w->result = 1;
        else if (socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0) >= 0 || errno != EACCES)
                w->result = 2;
        return NULL;
}

/* A thread started before the filter is filtered too (TSYNC). */
static int child_thread_before_filter(void *userdata) {
        Waiter w = {};
        pthread_t t;
        int p[2], r;

        if (pipe2(p, O_CLOEXEC) < 0)
                return 1;
        w.fd = p[0];
        if (pthread_create(&t, NULL, thread_after_filter, &w) != 0)
                return 2;
        r = enter_filter();
        if (r != 0)
                return r;
        if (write(p[1], "g", 1) != 1 || pthread_join(t, NULL) != 0)
                return 3;
        return w.result ? 10 + w.result : 0;
}

static void test_filter_covers_existing_threads(void **state) {
        ChildResult r;

        run_child(child_thread_before_filter, NULL, &r);
        assert_exit_0(&r);
}

static int child_close_fds(void *userdata) {
        int a[2], b, c, keep[3];

        if (pipe2(a, 0) < 0)
                return 1;
        b = open("/dev/null", O_RDONLY);
        c = open("/dev/null", O_RDONLY);
        if (b < 0 || c < 0)
                return 2;
        keep[0] = a[1];
        keep[1] = c;
        keep[2] = -1;
        if (sandbox_close_inherited_fds(keep, ELEMENTSOF(keep)) < 0)
                return 3;
        if (fcntl(a[0], F_GETFD) >= 0 || errno != EBADF || fcntl(b, F_GETFD) >= 0 || errno != EBADF)
                return 4;
        if (fcntl(a[1], F_GETFD) < 0 || fcntl(c, F_GETFD) < 0)
                return 5;
        for (int fd = 0; fd <= 2; fd++)
                if (fcntl(fd, F_GETFD) < 0)
                        return 6;
        return 0;
}

static void test_close_inherited_fds_keeps_only_given(void **state) {
        ChildResult r;

        run_child(child_close_fds, NULL, &r);
        assert_exit_0(&r);
}

typedef struct Handshake {
        int ready[2], go[2];
} Handshake;

static int child_apply(void *userdata) {
        Handshake *h = userdata;
        char error[256] = "", c;
        struct rlimit l;

        if (sandbox_apply(error, sizeof(error)) < 0) {
                fprintf(stderr, "%s\n", error);
                return 1;
        }
        if (getrlimit(RLIMIT_NOFILE, &l) < 0 || l.rlim_cur != l.rlim_max || l.rlim_cur > SANDBOX_MAX_FDS)
                return 2;
        if (write(h->ready[1], "r", 1) != 1 || read(h->go[0], &c, 1) != 1)
                return 3;
        return 0;
}

static char *status_field(pid_t pid, const char *field) {
        char path[64], line[256], *value = NULL;
        size_t n = strlen(field);
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/status", (int) pid);
        f = fopen(path, "re");
        assert_non_null(f);
        while (!value && fgets(line, sizeof(line), f))
                if (strncmp(line, field, n) == 0 && line[n] == ':') {
                        char *v = line + n + 1 + strspn(line + n + 1, " \t");
                        v[strcspn(v, "\n")] = '\0';
                        value = strdup(v);
                }
        fclose(f);
        assert_non_null(value);
        return value;
}

static void test_apply_seen_from_proc(void **state) {
        Handshake h;
        pid_t pid;
        char c;
        int status;

        assert_int_equal(pipe2(h.ready, O_CLOEXEC), 0);
        assert_int_equal(pipe2(h.go, O_CLOEXEC), 0);
        fflush(NULL);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0)
                _exit(child_apply(&h));
        {
                struct pollfd p = { .fd = h.ready[0], .events = POLLIN };
                assert_true(poll(&p, 1, SAFETY_TIMEOUT_MS) > 0);
        }
        if (read(h.ready[0], &c, 1) == 1) {
                _cleanup_free_ char *nnp = status_field(pid, "NoNewPrivs"),
                                    *sec = status_field(pid, "Seccomp"), *eff = status_field(pid, "CapEff"),
                                    *prm = status_field(pid, "CapPrm");

                assert_string_equal(nnp, "1");
                assert_string_equal(sec, "2");
                assert_string_equal(eff, "0000000000000000");
                assert_string_equal(prm, "0000000000000000");
                if (geteuid() == 0) {
                        _cleanup_free_ char *bnd = status_field(pid, "CapBnd");
                        assert_string_equal(bnd, "0000000000000000");
                }
        }
        assert_int_equal(write(h.go[1], "g", 1), 1);
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
        close(h.ready[0]);
        close(h.ready[1]);
        close(h.go[0]);
        close(h.go[1]);
}

static int group_setup(void **state) {
        snprintf(scratch, sizeof(scratch), "/tmp/vuv-sandbox-unit-XXXXXX");
        assert_non_null(mkdtemp(scratch));
        return 0;
}

static int group_teardown(void **state) {
        (void) rmdir(scratch);
        return 0;
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_filter_allows_what_a_worker_does),
                cmocka_unit_test(test_filter_refuses_files_with_errno),
                cmocka_unit_test(test_filter_kills_execve),
                cmocka_unit_test(test_filter_kills_executable_mapping),
                cmocka_unit_test(test_filter_kills_unlisted_call),
#if !HAVE_SANITIZERS
                cmocka_unit_test(test_filter_kills_fork),
#endif
                cmocka_unit_test(test_filter_covers_existing_threads),
                cmocka_unit_test(test_close_inherited_fds_keeps_only_given),
                cmocka_unit_test(test_apply_seen_from_proc),
        };

        return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
