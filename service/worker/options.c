/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include "backend/backend.h"
#include "common/macro.h"
#include "config.h"
#include "worker/options.h"
#include "worker/sandbox.h"

enum {
        ARG_SOCKET_FD = 0x100,
        ARG_DEVICE_FD,
        ARG_CONTROL_FD,
        ARG_ALLOW_UID,
        ARG_FORCE_COPY,
        ARG_SANDBOX,
        ARG_THREADS,
        ARG_VM,
        ARG_ALIAS,
        ARG_HOST_DEVICE,
        ARG_PRINT_CAPABILITIES,
        ARG_VERSION,
        ARG_CONNECTION_FD,
        ARG_CONNECT_PATH,
};

static const struct option long_options[] = {
        { "socket-path", required_argument, NULL, 's' },
        { "socket-fd", required_argument, NULL, ARG_SOCKET_FD },
        { "connection-fd", required_argument, NULL, ARG_CONNECTION_FD },
        { "connect-path", required_argument, NULL, ARG_CONNECT_PATH },
        { "v4l2-device", required_argument, NULL, 'd' },
        { "device-fd", required_argument, NULL, ARG_DEVICE_FD },
        { "backend", required_argument, NULL, 'b' },
        { "control-fd", required_argument, NULL, ARG_CONTROL_FD },
        { "allow-uid", required_argument, NULL, ARG_ALLOW_UID },
        { "force-copy", no_argument, NULL, ARG_FORCE_COPY },
        { "sandbox", no_argument, NULL, ARG_SANDBOX },
        { "threads", required_argument, NULL, ARG_THREADS },
        { "vm", required_argument, NULL, ARG_VM },
        { "alias", required_argument, NULL, ARG_ALIAS },
        { "host-device", required_argument, NULL, ARG_HOST_DEVICE },
        { "print-capabilities", no_argument, NULL, ARG_PRINT_CAPABILITIES },
        { "verbose", no_argument, NULL, 'v' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, ARG_VERSION },
        {},
};

/* Writes the one-line message for the user and returns r. */
_printf_(4, 5) static int fail(int r, char *error, size_t size, const char *fmt, ...) {
        va_list ap;

        if (error && size > 0) {
                va_start(ap, fmt);
                (void) vsnprintf(error, size, fmt, ap);
                va_end(ap);
        }
        return r;
}

/* Parses a non-negative decimal number up to max; no sign, no spaces, no trailing garbage. */
static int parse_uint(const char *s, unsigned long max, unsigned long *ret) {
        unsigned long v;
        char *end;

        if (!s || *s < '0' || *s > '9')
                return -EINVAL;
        errno = 0;
        v = strtoul(s, &end, 10);
        if (errno != 0 || *end != '\0')
                return -EINVAL;
        if (v > max)
                return -ERANGE;
        *ret = v;
        return 0;
}

static int set_string(char **dst, const char *value) {
        char *c = strdup(value);

        if (!c)
                return -ENOMEM;
        free(*dst);
        *dst = c;
        return 0;
}

static bool backend_is_v4l2(const char *name) {
        return name && strncmp(name, "v4l2-", 5) == 0;
}

static void append_backend_names(char *buf, size_t size) {
        const char *const *names = backend_names();
        size_t off = strlen(buf);

        for (size_t i = 0; names && names[i] && off < size; i++) {
                int k = snprintf(buf + off, size - off, "%s%s", i > 0 ? ", " : "", names[i]);
                if (k < 0)
                        break;
                off += (size_t) k;
        }
}

void worker_options_done(WorkerOptions *o) {
        if (!o)
                return;
        free(o->socket_path);
        free(o->connect_path);
        free(o->v4l2_device);
        free(o->backend);
        free(o->allowed_uids);
        free(o->vm);
        free(o->alias);
        free(o->host_device);
        *o = (WorkerOptions){ .socket_fd = -1, .connection_fd = -1, .device_fd = -1, .control_fd = -1 };
}

static int parse_fd_arg(const char *flag, const char *value, int *ret, char *error, size_t size) {
        unsigned long v;

        if (parse_uint(value, INT_MAX, &v) < 0)
                return fail(-EINVAL, error, size, "invalid %s '%s': expected a file descriptor number", flag,
                            value);
        *ret = (int) v;
        return 0;
}

static int add_uid(WorkerOptions *o, const char *value, char *error, size_t size) {
        unsigned long v;
        uid_t *n;

        /* (uid_t) -1 is "no uid" for the kernel, so it is not a uid one can allow. */
        if (parse_uint(value, UINT32_MAX - 1, &v) < 0)
                return fail(-EINVAL, error, size, "invalid --allow-uid '%s': expected a numeric uid", value);
        for (unsigned i = 0; i < o->n_allowed_uids; i++)
                if (o->allowed_uids[i] == (uid_t) v)
                        return 0;
        if (o->n_allowed_uids >= WORKER_MAX_ALLOWED_UIDS)
                return fail(-EINVAL, error, size, "too many --allow-uid (at most %d)",
                            WORKER_MAX_ALLOWED_UIDS);
        n = reallocarray(o->allowed_uids, o->n_allowed_uids + 1, sizeof(*n));
        if (!n)
                return -ENOMEM;
        n[o->n_allowed_uids++] = (uid_t) v;
        o->allowed_uids = n;
        return 0;
}

static int parse_one(WorkerOptions *o, int c, const char *arg, char *error, size_t size) {
        unsigned long v;

        switch (c) {
        case 's':
                if (arg[0] == '\0')
                        return fail(-EINVAL, error, size, "empty --socket-path");
                if (strlen(arg) > WORKER_SOCKET_PATH_MAX)
                        return fail(-EINVAL, error, size,
                                    "socket path '%s' is too long (%zu bytes, at most %d)", arg, strlen(arg),
                                    WORKER_SOCKET_PATH_MAX);
                return set_string(&o->socket_path, arg);
        case ARG_SOCKET_FD:
                return parse_fd_arg("--socket-fd", arg, &o->socket_fd, error, size);
        case ARG_CONNECTION_FD:
                return parse_fd_arg("--connection-fd", arg, &o->connection_fd, error, size);
        case ARG_CONNECT_PATH:
                if (arg[0] != '/')
                        return fail(-EINVAL, error, size, "--connect-path '%s' is not an absolute path",
                                    arg);
                if (strlen(arg) > WORKER_SOCKET_PATH_MAX)
                        return fail(-EINVAL, error, size,
                                    "socket path '%s' is too long (%zu bytes, at most %d)", arg, strlen(arg),
                                    WORKER_SOCKET_PATH_MAX);
                return set_string(&o->connect_path, arg);
        case 'd':
                if (arg[0] == '\0')
                        return fail(-EINVAL, error, size, "empty --v4l2-device");
                return set_string(&o->v4l2_device, arg);
        case ARG_DEVICE_FD:
                return parse_fd_arg("--device-fd", arg, &o->device_fd, error, size);
        case 'b':
                if (!backend_find(arg)) {
                        char names[256] = "", why[800] = "";
                        if (backend_find_error())
                                snprintf(why, sizeof(why), ": %s", backend_find_error());
                        append_backend_names(names, sizeof(names));
                        return fail(-EINVAL, error, size, "unknown backend '%s'%s (this build has: %s)", arg,
                                    why, names);
                }
                return set_string(&o->backend, arg);
        case ARG_CONTROL_FD:
                return parse_fd_arg("--control-fd", arg, &o->control_fd, error, size);
        case ARG_ALLOW_UID:
                return add_uid(o, arg, error, size);
        case ARG_FORCE_COPY:
                o->force_copy = true;
                return 0;
        case ARG_SANDBOX:
                if (!sandbox_have_seccomp())
                        return fail(-EOPNOTSUPP, error, size,
                                    "--sandbox is not available: this build has no seccomp support");
                o->sandbox = true;
                return 0;
        case ARG_THREADS:
                if (parse_uint(arg, WORKER_MAX_THREADS, &v) < 0)
                        return fail(-EINVAL, error, size, "invalid --threads '%s': expected 0..%d", arg,
                                    WORKER_MAX_THREADS);
                o->threads = (unsigned) v;
                return 0;
        case ARG_VM:
                return set_string(&o->vm, arg);
        case ARG_ALIAS:
                return set_string(&o->alias, arg);
        case ARG_HOST_DEVICE:
                return set_string(&o->host_device, arg);
        case ARG_PRINT_CAPABILITIES:
                o->action = WORKER_ACTION_PRINT_CAPABILITIES;
                return 0;
        case 'v':
                o->log_level = LOG_DEBUG;
                return 0;
        case 'h':
                o->action = WORKER_ACTION_HELP;
                return 0;
        case ARG_VERSION:
                o->action = WORKER_ACTION_VERSION;
                return 0;
        default:
                return fail(-EINVAL, error, size, "unexpected option");
        }
}

static int check_combination(WorkerOptions *o, char *error, size_t size) {
        int n;

        if (o->action != WORKER_ACTION_RUN)
                return 0;
        n = !!o->socket_path + (o->socket_fd >= 0) + (o->connection_fd >= 0) + !!o->connect_path;
        if (n > 1)
                return fail(
                        -EINVAL, error, size,
                        "--socket-path, --socket-fd, --connection-fd and --connect-path are mutually exclusive");
        if (n == 0)
                return fail(
                        -EINVAL, error, size,
                        "one of --socket-path, --socket-fd, --connection-fd or --connect-path is required");
        if (!o->backend)
                return fail(-EINVAL, error, size, "--backend is required");
        if (o->device_fd >= 0 && !backend_is_v4l2(o->backend))
                return fail(-EINVAL, error, size, "--device-fd is only for the v4l2 backends, not '%s'",
                            o->backend);
        if (o->socket_fd >= 0 && (o->socket_fd == o->control_fd || o->socket_fd == o->device_fd))
                return fail(-EINVAL, error, size, "--socket-fd, --control-fd and --device-fd must differ");
        if (o->connection_fd >= 0 && (o->connection_fd == o->control_fd || o->connection_fd == o->device_fd))
                return fail(-EINVAL, error, size,
                            "--connection-fd, --control-fd and --device-fd must differ");
        if (o->control_fd >= 0 && o->control_fd == o->device_fd)
                return fail(-EINVAL, error, size, "--control-fd and --device-fd must differ");
        return 0;
}

int worker_options_parse(int argc, char **argv, WorkerOptions *ret, char *error, size_t size) {
        WorkerOptions o = { .socket_fd = -1,
                            .connection_fd = -1,
                            .device_fd = -1,
                            .control_fd = -1,
                            .log_level = LOG_INFO };
        int c, r;

        if (error && size > 0)
                error[0] = '\0';
        *ret = o;

        /* '+': stop at the first non-option (we take none); ':': report a missing argument as ':'. */
        optind = 0;
        opterr = 0;
        while ((c = getopt_long(argc, argv, "+:s:d:b:vh", long_options, NULL)) >= 0) {
                if (c == '?') {
                        if (optopt)
                                r = fail(-EINVAL, error, size, "unknown option '-%c'", optopt);
                        else
                                r = fail(-EINVAL, error, size, "unknown option '%s'", argv[optind - 1]);
                } else if (c == ':')
                        r = fail(-EINVAL, error, size, "option '%s' needs an argument", argv[optind - 1]);
                else
                        r = parse_one(&o, c, optarg, error, size);
                if (r < 0) {
                        worker_options_done(&o);
                        return r;
                }
        }
        if (optind < argc) {
                r = fail(-EINVAL, error, size, "unexpected argument '%s'", argv[optind]);
                worker_options_done(&o);
                return r;
        }
        if (!o.v4l2_device && set_string(&o.v4l2_device, WORKER_DEFAULT_V4L2_DEVICE) < 0) {
                worker_options_done(&o);
                return -ENOMEM;
        }
        r = check_combination(&o, error, size);
        if (r < 0) {
                worker_options_done(&o);
                return r;
        }
        *ret = o;
        return 0;
}

static int check_fd(int fd, const char *flag, char *error, size_t size) {
        if (fcntl(fd, F_GETFD) < 0)
                return fail(-EBADF, error, size, "%s=%d is not an open file descriptor", flag, fd);
        return 0;
}

static int check_socket_fd(int fd, const char *flag, int type, bool listening, char *error, size_t size) {
        int v = 0, r;
        socklen_t l = sizeof(v);

        r = check_fd(fd, flag, error, size);
        if (r < 0)
                return r;
        if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &v, &l) < 0 || v != type)
                return fail(-ENOTSOCK, error, size, "%s=%d is not a %s socket", flag, fd,
                            type == SOCK_STREAM ? "stream" : "seqpacket");
        if (!listening)
                return 0;
        v = 0;
        l = sizeof(v);
        if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &v, &l) < 0 || v != AF_UNIX)
                return fail(-EAFNOSUPPORT, error, size, "%s=%d is not a unix socket", flag, fd);
        v = 0;
        l = sizeof(v);
        if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &l) < 0 || !v)
                return fail(-EINVAL, error, size, "%s=%d is not a listening socket", flag, fd);
        return 0;
}

static int check_socket_path(const char *path, char *error, size_t size) {
        _cleanup_free_ char *dir = NULL;
        struct stat st;
        char *slash;

        dir = strdup(path);
        if (!dir)
                return -ENOMEM;
        slash = strrchr(dir, '/');
        if (!slash)
                strcpy(dir, ".");
        else if (slash == dir)
                dir[1] = '\0';
        else
                *slash = '\0';
        if (stat(dir, &st) < 0)
                return fail(-errno, error, size, "cannot use socket path '%s': directory '%s': %s", path,
                            dir, strerror(errno));
        if (!S_ISDIR(st.st_mode))
                return fail(-ENOTDIR, error, size, "cannot use socket path '%s': '%s' is not a directory",
                            path, dir);
        if (lstat(path, &st) == 0 && !S_ISSOCK(st.st_mode))
                return fail(-EEXIST, error, size,
                            "cannot use socket path '%s': it exists and is not a socket", path);
        return 0;
}

int worker_options_check(const WorkerOptions *o, char *error, size_t size) {
        struct stat st;
        int r;

        if (error && size > 0)
                error[0] = '\0';
        if (o->socket_path) {
                r = check_socket_path(o->socket_path, error, size);
                if (r < 0)
                        return r;
        }
        if (o->socket_fd >= 0) {
                r = check_socket_fd(o->socket_fd, "--socket-fd", SOCK_STREAM, true, error, size);
                if (r < 0)
                        return r;
        }
        if (o->connection_fd >= 0) {
                r = check_socket_fd(o->connection_fd, "--connection-fd", SOCK_STREAM, false, error, size);
                if (r < 0)
                        return r;
        }
        if (o->connect_path) {
                _cleanup_free_ char *dir = strdup(o->connect_path);
                struct stat cst;

                if (!dir)
                        return -ENOMEM;
                *strrchr(dir, '/') = '\0';
                /* The frontend may create the socket later (we retry), but its directory must exist. */
                if (stat(dir[0] ? dir : "/", &cst) < 0 || !S_ISDIR(cst.st_mode))
                        return fail(-ENOENT, error, size, "cannot connect to '%s': no directory '%s'",
                                    o->connect_path, dir[0] ? dir : "/");
                if (lstat(o->connect_path, &cst) == 0 && !S_ISSOCK(cst.st_mode))
                        return fail(-ENOTSOCK, error, size, "cannot connect to '%s': it is not a socket",
                                    o->connect_path);
        }
        if (o->control_fd >= 0) {
                r = check_socket_fd(o->control_fd, "--control-fd", SOCK_SEQPACKET, false, error, size);
                if (r < 0)
                        return r;
        }
        if (o->device_fd >= 0) {
                r = check_fd(o->device_fd, "--device-fd", error, size);
                if (r < 0)
                        return r;
        } else if (backend_is_v4l2(o->backend)) {
                if (stat(o->v4l2_device, &st) < 0)
                        return fail(-ENODEV, error, size, "V4L2 device '%s': %s", o->v4l2_device,
                                    strerror(errno));
                if (!S_ISCHR(st.st_mode))
                        return fail(-ENODEV, error, size, "V4L2 device '%s' is not a character device",
                                    o->v4l2_device);
        }
        return 0;
}

void worker_print_help(FILE *f) {
        char names[256] = "";

        append_backend_names(names, sizeof(names));
        fprintf(f,
                "Usage: " WORKER_PROGRAM_NAME " [OPTIONS]\n"
                "\n"
                "Serve one virtio-video device (draft v3) over a vhost-user socket.\n"
                "\n"
                "  -s, --socket-path=PATH   listen on PATH (created; removed on exit)\n"
                "      --socket-fd=N        serve an inherited listening socket\n"
                "      --connection-fd=N    serve one inherited, already connected frontend socket\n"
                "      --connect-path=PATH  connect to a frontend listening on PATH (retried)\n"
                "  -d, --v4l2-device=PATH   V4L2 node for the v4l2 backends (default " WORKER_DEFAULT_V4L2_DEVICE
                ")\n"
                "      --device-fd=N        an already opened V4L2 node\n"
                "  -b, --backend=NAME       codec backend: %s\n"
                "      --control-fd=N       control socket to the virtio-videod manager\n"
                "      --allow-uid=UID      only root and these uids may connect (repeatable)\n"
                "      --force-copy         v4l2: MMAP buffers and a copy instead of zero copy\n"
                "      --threads=N          ffmpeg: codec threads per stream (0 = automatic)\n"
                "      --sandbox            after set-up: no new privileges, no capabilities, only the\n"
                "                           given fds, a system call filter (no files, no exec)\n"
                "      --vm=NAME --alias=NAME --host-device=PATH\n"
                "                           context fields of every log message\n"
                "      --print-capabilities print the vhost-user backend capabilities (JSON) and exit\n"
                "  -v, --verbose            debug logging\n"
                "  -h, --help               show this help\n"
                "      --version            show the version\n",
                names);
}

void worker_print_capabilities(FILE *f) {
        const char *const *names = backend_names();

        /* QEMU docs/interop/vhost-user.json: an object with "type" and a "features" list; the features
         * name the optional flags a management layer may pass. "backends" lists what this build has. */
        fprintf(f, "{\n  \"type\": \"video\",\n  \"features\": [\n");
        fprintf(f,
                "    \"socket-fd\",\n    \"connection-fd\",\n    \"connect-path\",\n    \"v4l2-device\",\n    \"device-fd\",\n    \"control-fd\",\n"
                "    \"allow-uid\",\n    \"force-copy\",\n    \"threads\"%s\n  ],\n",
                sandbox_have_seccomp() ? ",\n    \"sandbox\"" : "");
        fprintf(f, "  \"backends\": [");
        for (size_t i = 0; names && names[i]; i++)
                fprintf(f, "%s\"%s\"", i > 0 ? ", " : "", names[i]);
        fprintf(f, "]\n}\n");
}
