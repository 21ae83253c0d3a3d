/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Black-box tests of the vhost-user-video program: its command line (management-plane.md §6.6),
 * --print-capabilities, signals, the socket file, the control-fd protocol (common/control.h), and a full
 * decoder session over its socket driven by the frontend library and the video client from this process.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/control.h"
#include "common/macro.h"
#include "frontend/frontend.h"
#include "frontend/video-client.h"
#include "null-stream.h"
#include "video/virtio-video-proto.h"
#include "worker-process.h"

#define CHILD_CONTROL_FD 3
#define CHILD_SOCKET_FD 4

typedef struct Child {
        pid_t pid;
        int out_fd, err_fd;
        char *out, *err;
        size_t out_len, err_len;
        int status;
} Child;

static char tmpdir[64];

static void sock_path(char *buf, size_t size, const char *name) {
        snprintf(buf, size, "%s/%s", tmpdir, name);
}

/* Moves fd to target in the child (dup2 clears O_CLOEXEC; same number: clear it by hand). */
static void child_place_fd(int fd, int target) {
        if (fd == target) {
                int fl = fcntl(fd, F_GETFD);
                if (fl < 0 || fcntl(fd, F_SETFD, fl & ~FD_CLOEXEC) < 0)
                        _exit(126);
        } else if (dup2(fd, target) < 0)
                _exit(126);
}

/* Spawns the worker with argv (NULL-terminated, argv[0] excluded); control_fd / socket_fd (or -1) are
 * passed as fds 3 / 4. */
static Child spawn(const char *const *args, int control_fd, int socket_fd) {
        const char *argv[64];
        int out[2], err[2];
        unsigned n = 0;
        Child c = {};

        argv[n++] = worker_path();
        for (unsigned i = 0; args[i]; i++) {
                assert_true(n < ELEMENTSOF(argv) - 1);
                argv[n++] = args[i];
        }
        argv[n] = NULL;
        assert_int_equal(pipe2(out, O_CLOEXEC), 0);
        assert_int_equal(pipe2(err, O_CLOEXEC), 0);
        c.pid = fork();
        assert_true(c.pid >= 0);
        if (c.pid == 0) {
                /* Park the fds above the targets first, so placing one cannot clobber another. */
                int cfd = control_fd >= 0 ? fcntl(control_fd, F_DUPFD_CLOEXEC, 10) : -1;
                int sfd = socket_fd >= 0 ? fcntl(socket_fd, F_DUPFD_CLOEXEC, 10) : -1;

                if (dup2(out[1], STDOUT_FILENO) < 0 || dup2(err[1], STDERR_FILENO) < 0)
                        _exit(126);
                if (cfd >= 0)
                        child_place_fd(cfd, CHILD_CONTROL_FD);
                if (sfd >= 0)
                        child_place_fd(sfd, CHILD_SOCKET_FD);
                execv(argv[0], (char *const *) argv);
                _exit(127);
        }
        close(out[1]);
        close(err[1]);
        c.out_fd = out[0];
        c.err_fd = err[0];
        return c;
}

static void append(char **buf, size_t *len, const char *data, size_t n) {
        char *b = realloc(*buf, *len + n + 1);
        assert_non_null(b);
        memcpy(b + *len, data, n);
        *len += n;
        b[*len] = '\0';
        *buf = b;
}

/* Reads stdout and stderr to EOF (the child exited or closed them), then reaps it. */
static void child_wait(Child *c) {
        while (c->out_fd >= 0 || c->err_fd >= 0) {
                struct pollfd p[2] = { { .fd = c->out_fd, .events = POLLIN },
                                       { .fd = c->err_fd, .events = POLLIN } };
                char buf[4096];

                assert_true(poll(p, 2, SAFETY_TIMEOUT_MS) > 0);
                for (unsigned i = 0; i < 2; i++) {
                        int *fd = i == 0 ? &c->out_fd : &c->err_fd;
                        ssize_t k;

                        if (*fd < 0 || !p[i].revents)
                                continue;
                        k = read(*fd, buf, sizeof(buf));
                        assert_true(k >= 0);
                        if (k == 0) {
                                close(*fd);
                                *fd = -1;
                        } else if (i == 0)
                                append(&c->out, &c->out_len, buf, (size_t) k);
                        else
                                append(&c->err, &c->err_len, buf, (size_t) k);
                }
        }
        assert_int_equal(waitpid(c->pid, &c->status, 0), c->pid);
        if (!c->out)
                append(&c->out, &c->out_len, "", 0);
        if (!c->err)
                append(&c->err, &c->err_len, "", 0);
}

static int child_exit_status(const Child *c) {
        if (!WIFEXITED(c->status)) {
                fprintf(stderr, "# worker did not exit normally (status 0x%x), stderr: %s\n",
                        (unsigned) c->status, c->err);
                return -1;
        }
        return WEXITSTATUS(c->status);
}

static void child_done(Child *c) {
        free(c->out);
        free(c->err);
        *c = (Child){};
}

/* Runs the worker to completion and checks the one-line error contract. */
static void expect_usage_error(const char *const *args, const char *needle) {
        Child c = spawn(args, -1, -1);
        child_wait(&c);
        if (child_exit_status(&c) != 1 || strncmp(c.err, "vhost-user-video: ", 18) != 0 ||
            !strstr(c.err, needle) || strchr(c.err, '\n') != c.err + c.err_len - 1)
                fail_msg("args '%s': status %d, stderr '%s' (wanted '%s')", args[0], child_exit_status(&c),
                         c.err, needle);
        child_done(&c);
}

static bool exists(const char *path) {
        struct stat st;
        return lstat(path, &st) == 0;
}

/* ---- command line ----------------------------------------------------------------------------------- */

static void test_help_and_version(void **state) {
        const char *help[] = { "--help", NULL }, *version[] = { "--version", NULL };
        Child c = spawn(help, -1, -1);

        child_wait(&c);
        assert_int_equal(child_exit_status(&c), 0);
        assert_non_null(strstr(c.out, "--socket-path"));
        assert_non_null(strstr(c.out, "--print-capabilities"));
        child_done(&c);
        c = spawn(version, -1, -1);
        child_wait(&c);
        assert_int_equal(child_exit_status(&c), 0);
        assert_non_null(strstr(c.out, "vhost-user-video "));
        child_done(&c);
}

/* A strict little JSON parser: enough to prove the output is one well-formed object. */
typedef struct Json {
        const char *p;
} Json;

static void json_ws(Json *j) {
        while (*j->p == ' ' || *j->p == '\n' || *j->p == '\t' || *j->p == '\r')
                j->p++;
}

static bool json_value(Json *j);

static bool json_string(Json *j, char *out, size_t size) {
        size_t n = 0;

        if (*j->p != '"')
                return false;
        j->p++;
        while (*j->p && *j->p != '"') {
                if (*j->p == '\\' || (unsigned char) *j->p < 0x20)
                        return false; /* we never print escapes */
                if (out && n + 1 < size)
                        out[n++] = *j->p;
                j->p++;
        }
        if (*j->p != '"')
                return false;
        j->p++;
        if (out)
                out[n] = '\0';
        return true;
}

static bool json_container(Json *j, char open, char close, bool object) {
        if (*j->p != open)
                return false;
        j->p++;
        json_ws(j);
        if (*j->p == close) {
                j->p++;
                return true;
        }
        for (;;) {
                json_ws(j);
                if (object) {
                        if (!json_string(j, NULL, 0))
                                return false;
                        json_ws(j);
                        if (*j->p++ != ':')
                                return false;
                }
                if (!json_value(j))
                        return false;
                json_ws(j);
                if (*j->p == ',') {
                        j->p++;
                        continue;
                }
                if (*j->p != close)
                        return false;
                j->p++;
                return true;
        }
}

static bool json_value(Json *j) {
        json_ws(j);
        if (*j->p == '"')
                return json_string(j, NULL, 0);
        if (*j->p == '{')
                return json_container(j, '{', '}', true);
        if (*j->p == '[')
                return json_container(j, '[', ']', false);
        if (strncmp(j->p, "true", 4) == 0 || strncmp(j->p, "null", 4) == 0) {
                j->p += 4;
                return true;
        }
        if (strncmp(j->p, "false", 5) == 0) {
                j->p += 5;
                return true;
        }
        if ((*j->p >= '0' && *j->p <= '9') || *j->p == '-') {
                j->p++;
                while (*j->p >= '0' && *j->p <= '9')
                        j->p++;
                return true;
        }
        return false;
}

static void test_print_capabilities_json(void **state) {
        const char *args[] = { "--print-capabilities", NULL };
        Child c = spawn(args, -1, -1);
        Json j;
        char key[64], value[64];

        child_wait(&c);
        assert_int_equal(child_exit_status(&c), 0);
        j.p = c.out;
        json_ws(&j);
        assert_true(json_container(&j, '{', '}', true));
        json_ws(&j);
        assert_int_equal(*j.p, '\0');
        /* The first member is the backend type (QEMU docs/interop/vhost-user.json). */
        j.p = strchr(c.out, '{') + 1;
        json_ws(&j);
        assert_true(json_string(&j, key, sizeof(key)));
        assert_string_equal(key, "type");
        json_ws(&j);
        assert_int_equal(*j.p++, ':');
        json_ws(&j);
        assert_true(json_string(&j, value, sizeof(value)));
        assert_string_equal(value, "video");
        assert_non_null(strstr(c.out, "\"features\""));
        assert_non_null(strstr(c.out, "\"null\""));
        child_done(&c);
}

static void test_bad_flags_exit_1_with_one_line(void **state) {
        char long_path[200], missing_dir[200], regular[200], ok[200];
        int fd;

        memset(long_path, 'a', sizeof(long_path));
        long_path[0] = '/';
        long_path[108] = '\0';
        snprintf(missing_dir, sizeof(missing_dir), "%s/no-such-dir/x.sock", tmpdir);
        sock_path(regular, sizeof(regular), "regular-file");
        sock_path(ok, sizeof(ok), "ok.sock");
        fd = open(regular, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
        close(fd);

        {
                const char *a[] = { "--bogus", NULL };
                expect_usage_error(a, "unknown option");
        }
        {
                const char *a[] = { "-x", NULL };
                expect_usage_error(a, "unknown option");
        }
        {
                const char *a[] = { "--backend", NULL };
                expect_usage_error(a, "needs an argument");
        }
        {
                const char *a[] = { "--backend=nope", "-s", ok, NULL };
                expect_usage_error(a, "unknown backend 'nope'");
        }
        {
                const char *a[] = { "--backend=null", NULL };
                expect_usage_error(a,
                                   "one of --socket-path, --socket-fd, --connection-fd or --connect-path");
        }
        {
                const char *a[] = { "--backend=null", "-s", ok, "--socket-fd=4", NULL };
                expect_usage_error(a, "mutually exclusive");
        }
        {
                const char *a[] = { "-s", ok, NULL };
                expect_usage_error(a, "--backend is required");
        }
        {
                const char *a[] = { "--backend=null", "-s", long_path, NULL };
                expect_usage_error(a, "too long");
        }
        {
                const char *a[] = { "--backend=null", "-s", missing_dir, NULL };
                expect_usage_error(a, "no-such-dir");
        }
        {
                const char *a[] = { "--backend=null", "-s", regular, NULL };
                expect_usage_error(a, "not a socket");
        }
        {
                /* The directory exists but nothing can be bound there: the failure of bind() itself. */
                const char *a[] = { "--backend=null", "-s", "/proc/vhost-user-video-test.sock", NULL };
                expect_usage_error(a, "cannot listen on '/proc/vhost-user-video-test.sock'");
        }
        {
                const char *a[] = { "--backend=null", "--socket-fd=abc", NULL };
                expect_usage_error(a, "invalid --socket-fd 'abc'");
        }
        {
                const char *a[] = { "--backend=null", "--socket-fd=987", NULL };
                expect_usage_error(a, "not an open file descriptor");
        }
        {
                const char *a[] = { "--backend=null", "-s", ok, "--threads=1000", NULL };
                expect_usage_error(a, "invalid --threads");
        }
        {
                const char *a[] = { "--backend=null", "-s", ok, "--allow-uid=-1", NULL };
                expect_usage_error(a, "invalid --allow-uid");
        }
        {
                const char *a[] = { "--backend=null", "-s", ok, "extra", NULL };
                expect_usage_error(a, "unexpected argument 'extra'");
        }
        {
                const char *a[] = { "--backend=null", "-s", ok, "--control-fd=987", NULL };
                expect_usage_error(a, "not an open file descriptor");
        }
        {
                /* A missing V4L2 node: either the backend is built and the node is refused, or it is not. */
                const char *a[] = { "--backend=v4l2-decoder", "-s", ok, "-d", "/nonexistent/video9", NULL };
                Child c = spawn(a, -1, -1);
                child_wait(&c);
                assert_int_equal(child_exit_status(&c), 1);
                assert_true(strstr(c.err, "vhost-user-video: V4L2 device '/nonexistent/video9'") ||
                            strstr(c.err, "vhost-user-video: unknown backend 'v4l2-decoder'"));
                child_done(&c);
        }
        assert_false(exists(ok));
        unlink(regular);
}

/* ---- serving -------------------------------------------------------------------------------------- */

typedef struct Running {
        Child child;
        int ctl;
        char path[100];
} Running;

static void start_worker(Running *r, const char *name, const char *const *extra) {
        const char *args[32] = { "--backend=null", "--socket-path", r->path, "--control-fd=3" };
        unsigned n = 4;
        int fds[2];
        CtlMsg m;

        sock_path(r->path, sizeof(r->path), name);
        for (unsigned i = 0; extra && extra[i]; i++)
                args[n++] = extra[i];
        args[n] = NULL;
        assert_int_equal(ctl_socketpair(fds), 0);
        r->child = spawn(args, fds[1], -1);
        close(fds[1]);
        r->ctl = fds[0];
        /* HELLO comes once the socket listens: no polling for the file. */
        assert_int_equal(ctl_wait_recv(r->ctl, &m), 1);
        assert_int_equal(m.type, CTL_MSG_HELLO);
        assert_int_equal(m.hello.pid, (uint32_t) r->child.pid);
        assert_string_equal(m.hello.backend, "null");
        assert_true(exists(r->path));
}

/* Waits for the worker to exit; *ret_err (optional) gets what it wrote to stderr. */
static int stop_worker_err(Running *r, char **ret_err) {
        int status;

        child_wait(&r->child);
        status = child_exit_status(&r->child);
        if (ret_err)
                *ret_err = TAKE_PTR(r->child.err);
        child_done(&r->child);
        safe_close(r->ctl);
        r->ctl = -1;
        return status;
}

static int stop_worker(Running *r) {
        return stop_worker_err(r, NULL);
}

static VuFrontend *connect_frontend_full(const char *path, bool event_idx) {
        VuFrontendOptions o;
        VuFrontend *fe = NULL;

        vu_frontend_options_init(&o);
        o.event_idx = event_idx;
        o.config_size = sizeof(struct virtio_video_config);
        o.device_features = 1u << VIRTIO_VIDEO_F_RESOURCE_GUEST_PAGES;
        o.timeout_ms = SAFETY_TIMEOUT_MS;
        assert_int_equal(vu_frontend_connect(&o, path, &fe), 0);
        assert_int_equal(vu_frontend_start(fe), 0);
        assert_int_equal(!!(vu_frontend_features(fe) & (1ull << 29)),
                         event_idx); /* VIRTIO_RING_F_EVENT_IDX */
        return fe;
}

static VuFrontend *connect_frontend(const char *path) {
        return connect_frontend_full(path, false);
}

typedef struct Count {
        const NullStream *s;
        unsigned n;
} Count;

static int count_frame(void *userdata, const VcFrame *f) {
        Count *c = userdata;

        if (!null_frame_matches(f, 48, 32, c->n + 1))
                return -EBADMSG;
        c->n++;
        return 0;
}

static void decode_session(VuFrontend *fe, uint32_t stream_id) {
        _cleanup_(video_client_freep) VideoClient *c = NULL;
        VideoClientOptions co;
        NullStream s = {};
        Count count = { .s = &s };
        VcDecodeResult res;
        VcDecodeOptions o = { .stream_id = stream_id, .frame = count_frame, .userdata = &count };

        for (unsigned i = 0; i < 4; i++)
                assert_int_equal(null_stream_append(&s, 48, 32, i + 1), 0);
        o.bitstream = s.data;
        o.size = s.size;
        video_client_options_init(&co);
        co.timeout_ms = SAFETY_TIMEOUT_MS;
        assert_int_equal(video_client_new(fe, &co, &c), 0);
        assert_int_equal(video_client_probe(c), 0);
        assert_int_equal(video_client_decode(c, &o, &res), 0);
        assert_int_equal(res.frames, 4);
        assert_int_equal(count.n, 4);
        null_stream_done(&s);
}

/* Creates stream 1, queues a partial frame and output buffers, and leaves everything in flight. */
static void abandon_session(VuFrontend *fe) {
        _cleanup_(video_client_freep) VideoClient *c = NULL;
        VideoClientOptions co;
        NullStream s = {};
        uint32_t size = 4096, zero[VC_MAX_PLANES] = {}, sizes[VC_MAX_PLANES];
        VcParams p;
        VcEvent e;

        assert_int_equal(null_stream_append(&s, 48, 32, 1), 0);
        video_client_options_init(&co);
        co.timeout_ms = SAFETY_TIMEOUT_MS;
        assert_int_equal(video_client_new(fe, &co, &c), 0);
        assert_int_equal(video_client_probe(c), 0);
        assert_int_equal(video_client_stream_create(c, 1, 0x1006, "abandoned"), 0);
        assert_int_equal(video_client_resource_create(c, 1, VIRTIO_VIDEO_QUEUE_TYPE_INPUT, 1, 1, &size, 1),
                         0);
        assert_int_equal(video_client_resource_write(c, 1, VIRTIO_VIDEO_QUEUE_TYPE_INPUT, 1, 0, 0, s.data,
                                                     100),
                         0);
        size = 100;
        assert_int_equal(video_client_resource_queue(c, 1, VIRTIO_VIDEO_QUEUE_TYPE_INPUT, 1, 1000, 1, &size),
                         0);
        assert_int_equal(video_client_next_event(c, &e, true), 1);
        assert_int_equal(e.event_type, VIRTIO_VIDEO_EVENT_DECODER_RESOLUTION_CHANGED);
        assert_int_equal(video_client_get_params(c, 1, VIRTIO_VIDEO_QUEUE_TYPE_OUTPUT, true, &p), 0);
        for (unsigned k = 0; k < p.num_planes; k++)
                sizes[k] = p.planes[k].plane_size;
        for (uint32_t id = 10; id < 13; id++) {
                assert_int_equal(video_client_resource_create(c, 1, VIRTIO_VIDEO_QUEUE_TYPE_OUTPUT, id,
                                                              p.num_planes, sizes, 1),
                                 0);
                assert_int_equal(video_client_resource_queue(c, 1, VIRTIO_VIDEO_QUEUE_TYPE_OUTPUT, id, 0,
                                                             p.num_planes, zero),
                                 0);
        }
        assert_int_equal(video_client_poll(c), 0);
        assert_int_equal(video_client_queued(c, 1, VIRTIO_VIDEO_QUEUE_TYPE_OUTPUT), 3);
        null_stream_done(&s);
}

static void test_full_session_then_sigterm_removes_socket(void **state) {
        Running r = {};
        VuFrontend *fe;
        CtlMsg m;

        start_worker(&r, "session.sock", NULL);
        fe = connect_frontend(r.path);
        assert_int_equal(ctl_wait_recv(r.ctl, &m), 1);
        assert_int_equal(m.type, CTL_MSG_PEER_CONNECTED);
        assert_int_equal(m.peer.pid, (uint32_t) getpid());
        assert_int_equal(m.peer.uid, getuid());
        assert_int_equal(m.peer.gid, getgid());
        decode_session(fe, 1);
        vu_frontend_free(fe);
        assert_int_equal(ctl_wait_recv(r.ctl, &m), 1);
        assert_int_equal(m.type, CTL_MSG_PEER_DISCONNECTED);
        /* Listening again: a second frontend gets a fresh device. It goes away in the middle of a stream
         * with buffers queued, as a killed QEMU does. */
        fe = connect_frontend(r.path);
        assert_int_equal(ctl_wait_recv(r.ctl, &m), 1);
        assert_int_equal(m.type, CTL_MSG_PEER_CONNECTED);
        abandon_session(fe);
        vu_frontend_free(fe);
        assert_int_equal(ctl_wait_recv(r.ctl, &m), 1);
        assert_int_equal(m.type, CTL_MSG_PEER_DISCONNECTED);
        /* The worker dropped that state and serves the same stream id from scratch. */
        fe = connect_frontend(r.path);
        decode_session(fe, 1);
        vu_frontend_free(fe);

        assert_int_equal(kill(r.child.pid, SIGTERM), 0);
        assert_int_equal(stop_worker(&r), 0);
        assert_false(exists(r.path));
}

static void test_sigint_exits_0(void **state) {
        Running r = {};

        start_worker(&r, "sigint.sock", NULL);
        assert_int_equal(kill(r.child.pid, SIGINT), 0);
        assert_int_equal(stop_worker(&r), 0);
        assert_false(exists(r.path));
}

static void test_control_stats_disconnect_shutdown(void **state) {
        char *err = NULL, *first;
        Running r = {};
        VuFrontend *fe;
        CtlMsg m;

        start_worker(&r, "control.sock", NULL);
        assert_int_equal(ctl_send(r.ctl, &(CtlMsg){ .type = CTL_MSG_STATS_REQUEST, .stats_cookie = 77 }), 0);
        assert_int_equal(ctl_wait_recv(r.ctl, &m), 1);
        assert_int_equal(m.type, CTL_MSG_STATS);
        assert_int_equal(m.stats.cookie, 77);
        assert_int_equal(m.stats.connections, 0);
        assert_int_equal(m.stats.streams_created, 0);

        fe = connect_frontend(r.path);
        assert_int_equal(ctl_wait_recv(r.ctl, &m), 1);
        assert_int_equal(m.type, CTL_MSG_PEER_CONNECTED);
        decode_session(fe, 3);
        assert_int_equal(ctl_send(r.ctl, &(CtlMsg){ .type = CTL_MSG_SET_LOG_LEVEL, .log_level = 7 }), 0);
        assert_int_equal(ctl_send(r.ctl, &(CtlMsg){ .type = CTL_MSG_STATS_REQUEST, .stats_cookie = 78 }), 0);
        assert_int_equal(ctl_wait_recv(r.ctl, &m), 1);
        assert_int_equal(m.type, CTL_MSG_STATS);
        assert_int_equal(m.stats.cookie, 78);
        assert_int_equal(m.stats.connections, 1);
        assert_int_equal(m.stats.streams_created, 1);
        assert_int_equal(m.stats.active_streams, 0);
        assert_true(m.stats.bytes_in > 0);
        assert_true(m.stats.bytes_out > 0);

        /* A forced detach drops the frontend and keeps listening. */
        assert_int_equal(ctl_send(r.ctl, &(CtlMsg){ .type = CTL_MSG_DISCONNECT_PEER }), 0);
        assert_int_equal(vu_frontend_wait_hangup(fe), 0);
        vu_frontend_free(fe);
        assert_int_equal(ctl_wait_recv(r.ctl, &m), 1);
        assert_int_equal(m.type, CTL_MSG_PEER_DISCONNECTED);
        fe = connect_frontend(r.path);
        assert_int_equal(ctl_wait_recv(r.ctl, &m), 1);
        assert_int_equal(m.type, CTL_MSG_PEER_CONNECTED);

        /* SHUTDOWN drops the frontend and exits 0, removing the socket. */
        assert_int_equal(ctl_send(r.ctl, &(CtlMsg){ .type = CTL_MSG_SHUTDOWN }), 0);
        assert_int_equal(vu_frontend_wait_hangup(fe), 0);
        vu_frontend_free(fe);
        assert_int_equal(stop_worker_err(&r, &err), 0);
        assert_false(exists(r.path));
        /* SET_LOG_LEVEL took effect: the second connection's handshake was traced at debug level, the
         * first one (at the default level) was not. */
        assert_non_null(strstr(err, "Log level set to debug"));
        first = strstr(err, "GET_FEATURES");
        assert_non_null(first);
        assert_true(first > strstr(err, "Log level set to debug"));
        free(err);
}

static void test_control_eof_exits_0(void **state) {
        Running r = {};

        start_worker(&r, "eof.sock", NULL);
        r.ctl = safe_close(r.ctl); /* the manager is gone */
        assert_int_equal(stop_worker(&r), 0);
        assert_false(exists(r.path));
}

static void test_control_malformed_exits_1(void **state) {
        const uint8_t garbage[] = { 9, 0, 64, 0, 0, 0, 0, 0 }; /* version 9 */
        Running r = {};

        start_worker(&r, "malformed.sock", NULL);
        assert_int_equal(send(r.ctl, garbage, sizeof(garbage), MSG_NOSIGNAL), (ssize_t) sizeof(garbage));
        assert_int_equal(stop_worker(&r), 1);
        assert_false(exists(r.path));
}

static void test_control_wrong_direction_exits_1(void **state) {
        Running r = {};

        start_worker(&r, "direction.sock", NULL);
        assert_int_equal(ctl_send(r.ctl, &(CtlMsg){ .type = CTL_MSG_PEER_DISCONNECTED }), 0);
        assert_int_equal(stop_worker(&r), 1);
}

/* --socket-fd: an inherited listening socket is served and the file is left to its owner. */
static void test_inherited_socket_fd(void **state) {
        const char *args[] = { "--backend=null", "--socket-fd=4", "--control-fd=3",
                               "--vm=test vm",   "--alias=v0",    NULL };
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        char path[100];
        int lfd, fds[2], status;
        bool context;
        VuFrontend *fe;
        Child c;
        CtlMsg m;

        sock_path(path, sizeof(path), "inherited.sock");
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
        lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_true(lfd >= 0);
        assert_int_equal(bind(lfd, (struct sockaddr *) &sa, sizeof(sa)), 0);
        assert_int_equal(listen(lfd, 4), 0);
        assert_int_equal(ctl_socketpair(fds), 0);
        c = spawn(args, fds[1], lfd);
        close(fds[1]);
        close(lfd);
        assert_int_equal(ctl_wait_recv(fds[0], &m), 1);
        assert_int_equal(m.type, CTL_MSG_HELLO);
        /* With EVENT_IDX the client must re-arm used_event before each sleep, or it waits in vain. */
        fe = connect_frontend_full(path, true);
        decode_session(fe, 9);
        vu_frontend_free(fe);
        assert_int_equal(kill(c.pid, SIGTERM), 0);
        child_wait(&c);
        status = child_exit_status(&c);
        /* --vm/--alias become the context of every message (on stderr, a prefix). */
        context = strstr(c.err, "VM=test vm ALIAS=v0 ") != NULL;
        child_done(&c);
        close(fds[0]);
        assert_int_equal(status, 0);
        assert_true(context);
        assert_true(exists(path));
        unlink(path);
}

/* --connection-fd (the fd transport): the worker serves one connected socket, reports it after HELLO, and
 * stays up without a listener when it ends. */
static void test_connection_fd(void **state) {
        const char *args[] = { "--backend=null", "--connection-fd=4", "--control-fd=3", NULL };
        VuFrontendOptions o;
        VuFrontend *fe = NULL;
        int pair[2], fds[2];
        Child c;
        CtlMsg m;

        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
        assert_int_equal(ctl_socketpair(fds), 0);
        c = spawn(args, fds[1], pair[1]);
        close(fds[1]);
        close(pair[1]);
        assert_int_equal(ctl_wait_recv(fds[0], &m), 1);
        assert_int_equal(m.type, CTL_MSG_HELLO);
        assert_int_equal(ctl_wait_recv(fds[0], &m), 1);
        assert_int_equal(m.type, CTL_MSG_PEER_CONNECTED);
        assert_int_equal(m.peer.pid, (uint32_t) getpid()); /* the socketpair's creator */

        vu_frontend_options_init(&o);
        o.config_size = sizeof(struct virtio_video_config);
        o.device_features = 1u << VIRTIO_VIDEO_F_RESOURCE_GUEST_PAGES;
        o.timeout_ms = SAFETY_TIMEOUT_MS;
        assert_int_equal(vu_frontend_new_from_fd(&o, pair[0], &fe), 0);
        assert_int_equal(vu_frontend_start(fe), 0);
        decode_session(fe, 3);
        vu_frontend_free(fe);
        assert_int_equal(ctl_wait_recv(fds[0], &m), 1);
        assert_int_equal(m.type, CTL_MSG_PEER_DISCONNECTED);
        /* still running, serving nothing; SHUTDOWN ends it */
        assert_int_equal(ctl_send(fds[0], &(CtlMsg){ .type = CTL_MSG_SHUTDOWN }), 0);
        child_wait(&c);
        assert_int_equal(child_exit_status(&c), 0);
        child_done(&c);
        close(fds[0]);
}

static bool build_has_sandbox(void);

static int accept_safely(int lfd) {
        struct pollfd p = { .fd = lfd, .events = POLLIN };
        int fd;

        assert_int_equal(poll(&p, 1, SAFETY_TIMEOUT_MS), 1);
        fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        assert_true(fd >= 0);
        return fd;
}

/* --connect-path (the client transport), sandboxed when the build can: the worker retries until the
 * frontend listens, serves it, and connects again after the frontend went away. */
static void test_connect_path_reconnects(void **state) {
        char path[100];
        const char *args[] = { "--backend=null", "--connect-path", path, "--control-fd=3", NULL, NULL };
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        VuFrontendOptions o;
        VuFrontend *fe = NULL;
        int fds[2], lfd, cfd;
        Child c;
        CtlMsg m;

        sock_path(path, sizeof(path), "qemu-server.sock");
        if (build_has_sandbox())
                args[4] = "--sandbox";
        assert_int_equal(ctl_socketpair(fds), 0);
        c = spawn(args, fds[1], -1);
        close(fds[1]);
        assert_int_equal(ctl_wait_recv(fds[0], &m), 1);
        assert_int_equal(m.type, CTL_MSG_HELLO);

        /* the "QEMU" comes up after the worker */
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
        lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_true(lfd >= 0);
        assert_int_equal(bind(lfd, (struct sockaddr *) &sa, sizeof(sa)), 0);
        assert_int_equal(listen(lfd, 4), 0);
        for (unsigned round = 0; round < 2; round++) {
                cfd = accept_safely(lfd);
                assert_int_equal(ctl_wait_recv(fds[0], &m), 1);
                assert_int_equal(m.type, CTL_MSG_PEER_CONNECTED);
                vu_frontend_options_init(&o);
                o.config_size = sizeof(struct virtio_video_config);
                o.device_features = 1u << VIRTIO_VIDEO_F_RESOURCE_GUEST_PAGES;
                o.timeout_ms = SAFETY_TIMEOUT_MS;
                assert_int_equal(vu_frontend_new_from_fd(&o, cfd, &fe), 0);
                assert_int_equal(vu_frontend_start(fe), 0);
                decode_session(fe, 5);
                vu_frontend_free(fe); /* QEMU restarts */
                assert_int_equal(ctl_wait_recv(fds[0], &m), 1);
                assert_int_equal(m.type, CTL_MSG_PEER_DISCONNECTED);
        }
        close(lfd);
        unlink(path);
        assert_int_equal(kill(c.pid, SIGTERM), 0);
        child_wait(&c);
        assert_int_equal(child_exit_status(&c), 0);
        child_done(&c);
        close(fds[0]);
}

/* The manager exits with messages of ours unread: the next read gives ECONNRESET, which is EOF too. */
static void test_control_reset_exits_0(void **state) {
        Running r = {};
        struct pollfd p;

        start_worker(&r, "reset.sock", NULL);
        /* ask for statistics and close without reading the answer */
        assert_int_equal(ctl_send(r.ctl, &(CtlMsg){ .type = CTL_MSG_STATS_REQUEST, .stats_cookie = 1 }), 0);
        p = (struct pollfd){ .fd = r.ctl, .events = POLLIN };
        assert_int_equal(poll(&p, 1, SAFETY_TIMEOUT_MS), 1);
        r.ctl = safe_close(r.ctl);
        assert_int_equal(stop_worker(&r), 0);
        assert_false(exists(r.path));
}

static bool build_has_backend(const char *name) {
        const char *args[] = { "--print-capabilities", NULL };
        char quoted[64];
        Child c = spawn(args, -1, -1);
        bool found;

        child_wait(&c);
        assert_int_equal(child_exit_status(&c), 0);
        snprintf(quoted, sizeof(quoted), "\"%s\"", name);
        found = strstr(c.out, quoted) != NULL;
        child_done(&c);
        return found;
}

static bool build_has_sandbox(void) {
        return build_has_backend("sandbox"); /* a quoted feature name, like a backend's */
}

/* The codec flags reach the backends: ffmpeg takes --threads, v4l2 takes the manager's --device-fd. */
static void test_backend_flags(void **state) {
        if (build_has_backend("ffmpeg-decoder")) {
                Running r = {};
                int fds[2];
                CtlMsg m;

                sock_path(r.path, sizeof(r.path), "ffmpeg.sock");
                assert_int_equal(ctl_socketpair(fds), 0);
                {
                        const char *a[] = { "--backend=ffmpeg-decoder", "-s", r.path, "--threads=2",
                                            "--control-fd=3",           NULL };
                        r.child = spawn(a, fds[1], -1);
                }
                close(fds[1]);
                r.ctl = fds[0];
                assert_int_equal(ctl_wait_recv(r.ctl, &m), 1);
                assert_int_equal(m.type, CTL_MSG_HELLO);
                assert_string_equal(m.hello.backend, "ffmpeg-decoder");
                assert_int_equal(kill(r.child.pid, SIGTERM), 0);
                assert_int_equal(stop_worker(&r), 0);
                assert_false(exists(r.path));
        }
        if (build_has_backend("v4l2-decoder")) {
                /* The node comes as an fd (here /dev/null, which is no V4L2 device): the backend must use
                 * it, not -d, and refuse it in one line. */
                const char *a[] = {
                        "--backend=v4l2-decoder", "-s", "/tmp/unused-v4l2.sock", "--device-fd=4", "-d",
                        "/nonexistent/video7",    NULL
                };
                int fd = open("/dev/null", O_RDWR | O_CLOEXEC);
                Child c;

                assert_true(fd >= 0);
                c = spawn(a, -1, fd); /* lands on fd 4 */
                close(fd);
                child_wait(&c);
                assert_int_equal(child_exit_status(&c), 1);
                assert_non_null(strstr(c.err, "vhost-user-video: cannot set up the 'v4l2-decoder' backend"));
                assert_null(strstr(c.err, "/nonexistent/video7"));
                child_done(&c);
                assert_false(exists("/tmp/unused-v4l2.sock"));
        }
}

/* --allow-uid: a peer with another uid is refused (root is always allowed, so the peer drops root). */
static void test_allow_uid_rejects_other_peers(void **state) {
        const char *extra[] = { "--allow-uid=4242", NULL };
        Running r = {};
        CtlMsg m;
        pid_t pid;
        int status;

        if (getuid() != 0) {
                /* Unprivileged: we are a non-allowed uid ourselves. */
                start_worker(&r, "allow.sock", extra);
                {
                        struct sockaddr_un sa = { .sun_family = AF_UNIX };
                        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", r.path);
                        assert_int_equal(connect(fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
                        assert_int_equal(ctl_wait_recv(r.ctl, &m), 1);
                        assert_int_equal(m.type, CTL_MSG_PEER_REJECTED);
                        assert_int_equal(m.peer.uid, getuid());
                        close(fd);
                }
        } else {
                start_worker(&r, "allow.sock", extra);
                assert_int_equal(chmod(tmpdir, 0755), 0);
                assert_int_equal(chmod(r.path, 0777), 0);
                pid = fork();
                assert_true(pid >= 0);
                if (pid == 0) {
                        struct sockaddr_un sa = { .sun_family = AF_UNIX };
                        char b;
                        int fd;

                        if (setresgid(65534, 65534, 65534) < 0 || setresuid(65534, 65534, 65534) < 0)
                                _exit(2);
                        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", r.path);
                        if (fd < 0 || connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0)
                                _exit(3);
                        /* Refused: the worker closes the connection. */
                        _exit(read(fd, &b, 1) == 0 ? 0 : 4);
                }
                assert_int_equal(ctl_wait_recv(r.ctl, &m), 1);
                assert_int_equal(m.type, CTL_MSG_PEER_REJECTED);
                assert_int_equal(m.peer.uid, 65534);
                assert_int_equal(waitpid(pid, &status, 0), pid);
                assert_true(WIFEXITED(status));
                assert_int_equal(WEXITSTATUS(status), 0);
                /* Root may still connect. */
                VuFrontend *fe = connect_frontend(r.path);
                assert_int_equal(ctl_wait_recv(r.ctl, &m), 1);
                assert_int_equal(m.type, CTL_MSG_PEER_CONNECTED);
                vu_frontend_free(fe);
        }
        assert_int_equal(kill(r.child.pid, SIGTERM), 0);
        assert_int_equal(stop_worker(&r), 0);
}

static int group_setup(void **state) {
        worker_tests_setup(tmpdir, sizeof(tmpdir), "/tmp/vuv-test-XXXXXX");
        return 0;
}

static int group_teardown(void **state) {
        (void) rmdir(tmpdir);
        return 0;
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_help_and_version),
                cmocka_unit_test(test_print_capabilities_json),
                cmocka_unit_test(test_bad_flags_exit_1_with_one_line),
                cmocka_unit_test(test_full_session_then_sigterm_removes_socket),
                cmocka_unit_test(test_sigint_exits_0),
                cmocka_unit_test(test_control_stats_disconnect_shutdown),
                cmocka_unit_test(test_control_eof_exits_0),
                cmocka_unit_test(test_control_malformed_exits_1),
                cmocka_unit_test(test_control_wrong_direction_exits_1),
                cmocka_unit_test(test_inherited_socket_fd),
                cmocka_unit_test(test_allow_uid_rejects_other_peers),
                cmocka_unit_test(test_backend_flags),
                cmocka_unit_test(test_connection_fd),
                cmocka_unit_test(test_connect_path_reconnects),
                cmocka_unit_test(test_control_reset_exits_0),
        };

        return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
