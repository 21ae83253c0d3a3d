/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/macro.h"
#include "config.h"
#include "worker/sandbox.h"

#if HAVE_SECCOMP
#include <seccomp.h>
#endif

static bool allow_unix_connect;

void sandbox_allow_unix_connect(void) {
        allow_unix_connect = true;
}

bool sandbox_have_seccomp(void) {
        return HAVE_SECCOMP;
}

_printf_(4, 5) static int fail(int r, char *error, size_t size, const char *fmt, ...) {
        va_list ap;
        int n;

        if (!error || size == 0)
                return r;
        va_start(ap, fmt);
        n = vsnprintf(error, size, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t) n < size)
                (void) snprintf(error + n, size - (size_t) n, ": %s", strerror(-r));
        return r;
}

static bool fd_kept(int fd, const int *keep, size_t n_keep) {
        if (fd <= STDERR_FILENO)
                return true;
        for (size_t i = 0; i < n_keep; i++)
                if (keep[i] == fd)
                        return true;
        return false;
}

/* Without /proc (a bare container): every number below the fd limit, capped. */
static int fd_scan_limit(void) {
        struct rlimit l;

        if (getrlimit(RLIMIT_NOFILE, &l) < 0 || l.rlim_cur == RLIM_INFINITY || l.rlim_cur > 65536)
                return 65536;
        return (int) l.rlim_cur;
}

int sandbox_close_inherited_fds(const int *keep, size_t n_keep) {
        _cleanup_free_ int *victims = NULL;
        size_t n = 0, allocated = 0;
        struct dirent *de;
        DIR *d;

        /* Collect first, close after: closing while reading the directory would close its own fd. */
        d = opendir("/proc/self/fd");
        if (!d) {
                for (int fd = STDERR_FILENO + 1, max = fd_scan_limit(); fd < max; fd++)
                        if (!fd_kept(fd, keep, n_keep))
                                (void) close(fd);
                return 0;
        }
        while ((de = readdir(d))) {
                char *end;
                long fd;

                if (de->d_name[0] < '0' || de->d_name[0] > '9')
                        continue;
                errno = 0;
                fd = strtol(de->d_name, &end, 10);
                if (errno != 0 || *end != '\0' || fd < 0 || fd > INT32_MAX || fd == dirfd(d) ||
                    fd_kept((int) fd, keep, n_keep))
                        continue;
                if (n == allocated) {
                        size_t k = allocated ? allocated * 2 : 16;
                        int *v = reallocarray(victims, k, sizeof(*v));
                        if (!v) {
                                closedir(d);
                                return -ENOMEM;
                        }
                        victims = v;
                        allocated = k;
                }
                victims[n++] = (int) fd;
        }
        closedir(d);
        for (size_t i = 0; i < n; i++)
                (void) close(victims[i]);
        return 0;
}

/* Empties the bounding set (when we may: it needs CAP_SETPCAP), the ambient set, and the effective,
 * permitted and inheritable sets. */
static int drop_capabilities(char *error, size_t size) {
        struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
        struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
        bool any = false;

        if (syscall(SYS_capget, &h, data) < 0)
                return fail(-errno, error, size, "cannot read the capabilities");
        if (data[CAP_TO_INDEX(CAP_SETPCAP)].effective & CAP_TO_MASK(CAP_SETPCAP))
                for (int c = 0;; c++) {
                        int r = prctl(PR_CAPBSET_READ, (unsigned long) c, 0, 0, 0);
                        if (r < 0)
                                break; /* EINVAL: past the last capability of this kernel */
                        if (r > 0 && prctl(PR_CAPBSET_DROP, (unsigned long) c, 0, 0, 0) < 0)
                                return fail(-errno, error, size,
                                            "cannot drop capability %d from the bounding set", c);
                }
        /* EINVAL: a kernel before 4.3 has no ambient set. */
        if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
                return fail(-errno, error, size, "cannot clear the ambient capabilities");
        for (unsigned i = 0; i < ELEMENTSOF(data); i++)
                any = any || data[i].effective || data[i].permitted || data[i].inheritable;
        if (!any)
                return 0;
        memset(data, 0, sizeof(data));
        if (syscall(SYS_capset, &h, data) < 0)
                return fail(-errno, error, size, "cannot drop the capabilities");
        return 0;
}

static int highest_open_fd(void) {
        struct dirent *de;
        int max = STDERR_FILENO;
        DIR *d;

        d = opendir("/proc/self/fd");
        if (!d) {
                for (int fd = STDERR_FILENO + 1, limit = fd_scan_limit(); fd < limit; fd++)
                        if (fcntl(fd, F_GETFD) >= 0)
                                max = fd;
                return max;
        }
        while ((de = readdir(d))) {
                long fd = strtol(de->d_name, NULL, 10);
                if (de->d_name[0] >= '0' && de->d_name[0] <= '9' && fd > max && fd <= INT32_MAX)
                        max = (int) fd;
        }
        closedir(d);
        return max;
}

static int set_limit(int resource, rlim_t value) {
        struct rlimit l;

        if (getrlimit(resource, &l) < 0)
                return -errno;
        /* Lower both, so the limit cannot be raised again; never try to raise a hard limit. */
        if (l.rlim_max != RLIM_INFINITY && l.rlim_max < value)
                value = l.rlim_max;
        l.rlim_cur = l.rlim_max = value;
        if (setrlimit(resource, &l) < 0)
                return -errno;
        return 0;
}

/* RLIMIT_NOFILE: what a worker needs (above what is open now). RLIMIT_FSIZE 0: the worker writes no regular
 * file, but stderr redirected to a log file is one, so only when no standard fd is a regular file.
 * RLIMIT_NPROC is left alone: it counts every process of the user, and all workers share one, so a low
 * value would make one VM's worker fail for another's threads; the filter refuses fork instead. */
static int lower_limits(char *error, size_t size) {
        bool regular = false;
        struct stat st;
        int max, r;

        max = highest_open_fd();
        if (max < 0)
                return fail(max, error, size, "cannot list the open file descriptors");
        r = set_limit(RLIMIT_NOFILE, (rlim_t) MAX(SANDBOX_MAX_FDS, max + 1 + 64));
        if (r < 0)
                return fail(r, error, size, "cannot lower RLIMIT_NOFILE");
        for (int fd = STDIN_FILENO; fd <= STDERR_FILENO; fd++)
                regular = regular || (fstat(fd, &st) == 0 && S_ISREG(st.st_mode));
        if (!regular) {
                r = set_limit(RLIMIT_FSIZE, 0);
                if (r < 0)
                        return fail(r, error, size, "cannot lower RLIMIT_FSIZE");
        }
        return 0;
}

#if HAVE_SECCOMP

/* Names of the system calls, resolved before the filter goes in: the SIGSYS handler may only call
 * async-signal-safe functions. */
#define SYSCALL_NAMES_MAX 1024
static char *syscall_names[SYSCALL_NAMES_MAX];

static void format_uint(char *buf, size_t size, unsigned long v) {
        char tmp[24];
        size_t n = 0, i = 0;

        do
                tmp[n++] = (char) ('0' + v % 10);
        while ((v /= 10) > 0 && n < sizeof(tmp));
        for (; n > 0 && i + 1 < size; i++)
                buf[i] = tmp[--n];
        buf[i] = '\0';
}

static void on_sigsys(int sig, siginfo_t *si, void *context) {
        struct sigaction dfl = { .sa_handler = SIG_DFL };
        const char *name = NULL;
        char msg[256], nr[24];
        size_t n = 0;

        format_uint(nr, sizeof(nr), (unsigned long) (unsigned) si->si_syscall);
        if (si->si_syscall >= 0 && si->si_syscall < SYSCALL_NAMES_MAX)
                name = syscall_names[si->si_syscall];
        for (const char *const *p = (const char *const[]){ "vhost-user-video: sandbox: refused system call ",
                                                           name ?: "?", " (", nr, "), exiting\n", NULL };
             *p; p++)
                for (const char *c = *p; *c && n < sizeof(msg); c++)
                        msg[n++] = *c;
        (void) !write(STDERR_FILENO, msg, n);

        /* Die of SIGSYS as SECCOMP_RET_KILL_PROCESS would: it stays pending (blocked in this handler) and
         * is delivered with the default action when the handler returns. */
        (void) sigaction(SIGSYS, &dfl, NULL);
        (void) syscall(SYS_tgkill, getpid(), (pid_t) syscall(SYS_gettid), SIGSYS);
}

/* Every call of a worker after set-up: measured on the null backend and the ffmpeg decoder and encoder
 * (tests/integration/test-worker-sandbox.c), plus what backend/v4l2/v4l2-device.c does through libv4l2
 * (ioctl, mmap, the node's fd in the event loop), which no test runs against a kernel device. The groups:
 * the sd-event loop and its fds, the vhost-user socket (accept, messages with fds), guest memory maps,
 * codec threads (clone with CLONE_THREAD, futex), logging and exit. */
/* clang-format off */
static const char *const allowed[] = {
        /* memory; mmap and mprotect also have a rule against PROT_EXEC below */
        "brk", "munmap", "mremap", "madvise", "membarrier",
        /* fds the worker holds */
        "read", "write", "readv", "writev", "pread64", "pwrite64", "preadv", "pwritev", "close", "fstat",
        "fstatfs", "lseek", "fcntl", "dup", "dup2", "dup3",
        /* sd-event, eventfds, signalfd, timers */
        "epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait", "epoll_pwait2", "eventfd2", "signalfd4",
        "timerfd_create", "timerfd_settime", "timerfd_gettime", "poll", "ppoll", "select", "pselect6",
        /* the vhost-user socket and the control socket */
        "accept", "accept4", "recvmsg", "sendmsg", "recvfrom", "sendto", "getsockopt", "setsockopt",
        "getsockname", "getpeername", "shutdown",
        /* time */
        "clock_gettime", "clock_getres", "gettimeofday", "time", "nanosleep", "clock_nanosleep",
        /* threads and signals */
        "futex", "set_robust_list", "get_robust_list", "rseq", "set_tid_address", "sched_getaffinity",
        "sched_yield", "gettid", "getpid", "getppid", "getuid", "geteuid", "getgid", "getegid",
        "getresuid", "getresgid", "rt_sigprocmask", "rt_sigaction", "rt_sigreturn", "sigaltstack",
        "restart_syscall", "exit", "exit_group", "getrandom", "uname", "sysinfo", "getrlimit",
};
/* clang-format on */

/* Calls that fail with an errno instead of killing: libraries that probe files fall back (glibc,
 * libv4l2's plugin directory, the V4L2 backend's per-stream reopen through /proc/self/fd, which then runs
 * on a duplicate of the fd), and a new socket or memfd (sd-journal) is an error the logger survives. */
/* clang-format off */
static const char *const refused_eacces[] = {
        "open", "openat", "openat2", "creat", "access", "faccessat", "faccessat2", "stat", "lstat",
        "readlink", "readlinkat", "statfs", "socket", "memfd_create",
};
/* clang-format on */

/* Removing the --socket-path file at exit: it stays, and the next start replaces the stale socket. */
static const char *const refused_eperm[] = { "unlink", "unlinkat", "rmdir" };

#if HAVE_SANITIZERS
/* What the ASan/LSan/UBSan runtimes call: LSan's exit-time leak check stops the world with a clone()d
 * tracer task (no CLONE_THREAD) that lists /proc/<pid>/task with open+getdents (the old calls on x86-64),
 * ptrace()s every thread and reads /proc/self/maps; reports read /proc/self/exe and the maps. A refusal
 * in the tracer is fatal to it alone (it blocks SIGSYS) and the worker would spin waiting for it, so this
 * list is generous. Only in sanitizer builds (b_sanitize). */
/* clang-format off */
static const char *const allowed_sanitizers[] = {
        "clone", "ptrace", "wait4", "waitid", "prctl", "getdents", "getdents64", "kill", "tgkill",
        "readlink", "readlinkat", "stat", "lstat", "newfstatat", "arch_prctl", "process_vm_readv",
        "sched_setaffinity", "pipe2", "prlimit64", "setrlimit", "getrusage", "mincore", "sched_getparam",
        "sched_getscheduler",
};
/* clang-format on */

static bool in_list(const char *name, const char *const *list, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (strcmp(list[i], name) == 0)
                        return true;
        return false;
}
#endif

static int rule(scmp_filter_ctx ctx, uint32_t action, const char *name, unsigned n, ...) {
        struct scmp_arg_cmp cmp[3];
        va_list ap;
        int nr;

        nr = seccomp_syscall_resolve_name(name);
        if (nr == __NR_SCMP_ERROR)
                return 0; /* not a system call on this architecture */
        va_start(ap, n);
        for (unsigned i = 0; i < n && i < ELEMENTSOF(cmp); i++)
                cmp[i] = va_arg(ap, struct scmp_arg_cmp);
        va_end(ap);
        return seccomp_rule_add_array(ctx, action, nr, MIN(n, ELEMENTSOF(cmp)), cmp);
}

static int add_rules(scmp_filter_ctx ctx) {
        const uint64_t ioctl_types[] = { 'V', '|' }; /* V4L2, media controller */
        const uint64_t ioctls[] = { TCGETS, FIONBIO, FIONREAD, FIOCLEX };
        int r;

        for (unsigned i = 0; i < ELEMENTSOF(allowed); i++)
                if ((r = rule(ctx, SCMP_ACT_ALLOW, allowed[i], 0)) < 0)
                        return r;
        for (unsigned i = 0; i < ELEMENTSOF(refused_eperm); i++)
                if ((r = rule(ctx, SCMP_ACT_ERRNO(EPERM), refused_eperm[i], 0)) < 0)
                        return r;

        /* No executable mappings after set-up: nothing the worker loads is code. */
        if ((r = rule(ctx, SCMP_ACT_ALLOW, "mmap", 1, SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0))) < 0 ||
            (r = rule(ctx, SCMP_ACT_ALLOW, "mprotect", 1, SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0))) < 0)
                return r;
        /* fstat() is newfstatat(fd, "", AT_EMPTY_PATH) in glibc 2.33+ (the sanitizers stat paths). */
        if ((!HAVE_SANITIZERS &&
             (r = rule(ctx, SCMP_ACT_ALLOW, "newfstatat", 1,
                       SCMP_A3(SCMP_CMP_MASKED_EQ, AT_EMPTY_PATH, AT_EMPTY_PATH))) < 0) ||
            (r = rule(ctx, SCMP_ACT_ALLOW, "statx", 1,
                      SCMP_A2(SCMP_CMP_MASKED_EQ, AT_EMPTY_PATH, AT_EMPTY_PATH))) < 0)
                return r;
        /* Threads of this process only, never a child process; glibc tries clone3 first, whose flags sit
         * in memory the filter cannot read, so it gets ENOSYS and glibc falls back to clone. */
        if ((r = rule(ctx, SCMP_ACT_ERRNO(ENOSYS), "clone3", 0)) < 0)
                return r;
#if !HAVE_SANITIZERS
        if ((r = rule(ctx, SCMP_ACT_ALLOW, "clone", 1,
                      SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD))) < 0)
                return r;
        /* Signals only to our own threads (abort(), the SIGSYS handler). */
        if ((r = rule(ctx, SCMP_ACT_ALLOW, "tgkill", 1, SCMP_A0(SCMP_CMP_EQ, (uint64_t) getpid()))) < 0)
                return r;
        /* Codec threads name themselves. */
        if ((r = rule(ctx, SCMP_ACT_ALLOW, "prctl", 1, SCMP_A0(SCMP_CMP_EQ, PR_SET_NAME))) < 0 ||
            (r = rule(ctx, SCMP_ACT_ALLOW, "prctl", 1, SCMP_A0(SCMP_CMP_EQ, PR_GET_NAME))) < 0)
                return r;
        /* getrlimit() is prlimit64(0, resource, NULL, old): reading only. */
        if ((r = rule(ctx, SCMP_ACT_ALLOW, "prlimit64", 1, SCMP_A2(SCMP_CMP_EQ, 0))) < 0)
                return r;
        for (unsigned i = 0; i < ELEMENTSOF(refused_eacces); i++)
                if (!(allow_unix_connect && strcmp(refused_eacces[i], "socket") == 0) &&
                    (r = rule(ctx, SCMP_ACT_ERRNO(EACCES), refused_eacces[i], 0)) < 0)
                        return r;
#else
        for (unsigned i = 0; i < ELEMENTSOF(allowed_sanitizers); i++)
                if ((r = rule(ctx, SCMP_ACT_ALLOW, allowed_sanitizers[i], 0)) < 0)
                        return r;
        /* The runtimes open /proc files read-only; anything else is refused as without sanitizers. */
        for (unsigned i = 0; i < ELEMENTSOF(refused_eacces); i++) {
                const char *n = refused_eacces[i];
                unsigned flags_arg = strcmp(n, "open") == 0 ? 1 : 2;

                if (allow_unix_connect && strcmp(n, "socket") == 0)
                        continue;
                if (strcmp(n, "open") != 0 && strcmp(n, "openat") != 0) {
                        if (!in_list(n, allowed_sanitizers, ELEMENTSOF(allowed_sanitizers)) &&
                            (r = rule(ctx, SCMP_ACT_ERRNO(EACCES), n, 0)) < 0)
                                return r;
                        continue;
                }
                if ((r = rule(ctx, SCMP_ACT_ALLOW, n, 1,
                              (struct scmp_arg_cmp){ .arg = flags_arg,
                                                     .op = SCMP_CMP_MASKED_EQ,
                                                     .datum_a = O_ACCMODE | O_CREAT | O_TRUNC | O_APPEND,
                                                     .datum_b = 0 })) < 0)
                        return r;
                for (unsigned k = 0; k < 5; k++) {
                        const uint64_t masks[] = { O_ACCMODE, O_ACCMODE, O_CREAT, O_TRUNC, O_APPEND };
                        const uint64_t values[] = { O_WRONLY, O_RDWR, O_CREAT, O_TRUNC, O_APPEND };

                        if ((r = rule(ctx, SCMP_ACT_ERRNO(EACCES), n, 1,
                                      (struct scmp_arg_cmp){ .arg = flags_arg,
                                                             .op = SCMP_CMP_MASKED_EQ,
                                                             .datum_a = masks[k],
                                                             .datum_b = values[k] })) < 0)
                                return r;
                }
        }
#endif
        /* --connect-path: new unix stream sockets to reconnect to the frontend; other families stay
         * refused. connect() reaches only what the worker's (unprivileged) credentials can. */
        if (allow_unix_connect &&
            ((r = rule(ctx, SCMP_ACT_ALLOW, "socket", 1, SCMP_A0(SCMP_CMP_EQ, AF_UNIX))) < 0 ||
             (r = rule(ctx, SCMP_ACT_ERRNO(EACCES), "socket", 1, SCMP_A0(SCMP_CMP_NE, AF_UNIX))) < 0 ||
             (r = rule(ctx, SCMP_ACT_ALLOW, "connect", 0)) < 0))
                return r;
        for (unsigned i = 0; i < ELEMENTSOF(ioctl_types); i++)
                if ((r = rule(ctx, SCMP_ACT_ALLOW, "ioctl", 1,
                              SCMP_A1(SCMP_CMP_MASKED_EQ, 0xff00, ioctl_types[i] << 8))) < 0)
                        return r;
        for (unsigned i = 0; i < ELEMENTSOF(ioctls); i++)
                if ((r = rule(ctx, SCMP_ACT_ALLOW, "ioctl", 1, SCMP_A1(SCMP_CMP_EQ, ioctls[i]))) < 0)
                        return r;
        return 0;
}

static void resolve_syscall_names(void) {
        for (int nr = 0; nr < SYSCALL_NAMES_MAX; nr++)
                if (!syscall_names[nr])
                        syscall_names[nr] = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
}

int sandbox_install_filter(void) {
        struct sigaction sa = { .sa_sigaction = on_sigsys, .sa_flags = SA_SIGINFO };
        scmp_filter_ctx ctx;
        int r;

        resolve_syscall_names();
        if (sigaction(SIGSYS, &sa, NULL) < 0)
                return -errno;
        ctx = seccomp_init(SCMP_ACT_TRAP);
        if (!ctx)
                return -ENOMEM;
        r = add_rules(ctx);
        /* Every thread, including any a library started during set-up. */
        if (r >= 0)
                r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1);
        if (r >= 0)
                r = seccomp_load(ctx);
        seccomp_release(ctx);
        return r < 0 ? r : 0;
}

#else

int sandbox_install_filter(void) {
        return -EOPNOTSUPP;
}

#endif

int sandbox_apply(char *error, size_t size) {
        int r;

        if (error && size > 0)
                error[0] = '\0';
        if (!sandbox_have_seccomp())
                return fail(-EOPNOTSUPP, error, size, "cannot apply the sandbox: built without libseccomp");
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
                return fail(-errno, error, size, "cannot set no_new_privs");
        r = drop_capabilities(error, size);
        if (r < 0)
                return r;
        r = lower_limits(error, size);
        if (r < 0)
                return r;
        r = sandbox_install_filter();
        if (r < 0)
                return fail(r, error, size, "cannot install the seccomp filter");
        return 0;
}
