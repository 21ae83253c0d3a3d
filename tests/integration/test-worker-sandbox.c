/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vhost-user-video --sandbox seen from outside (worker/sandbox.h): full sessions on the null backend and
 * the ffmpeg decoder and encoder through the frontend library and the video client, and the state of the
 * running process read from /proc: NoNewPrivs, seccomp filter mode, capabilities, fd table and
 * RLIMIT_NOFILE.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
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
#include "config.h"
#include "frontend/frontend.h"
#include "frontend/video-client.h"
#include "null-stream.h"
#include "video/virtio-video-proto.h"
#include "worker-process.h"
#if HAVE_LIBAVCODEC
#include "av-media.h"
#endif

#define CHILD_CONTROL_FD 3
#define CHILD_SOCKET_FD 4
#define CHILD_STRAY_FD 5 /* inherited by mistake: the sandbox must close it */

static char tmpdir[64];

typedef struct Worker {
        pid_t pid;
        int ctl;
        int err_fd; /* the worker's stderr */
        char path[100];
} Worker;

/* Starts the worker on <tmpdir>/<name> with the control socket on fd 3 and a stray pipe end on fd 5, and
 * waits for HELLO. */
/* The listening socket as the manager makes it, for --socket-fd. */
static int listen_on(const char *path) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

        assert_true(fd >= 0);
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
        assert_int_equal(bind(fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
        assert_int_equal(listen(fd, 4), 0);
        return fd;
}

/* Starts the worker on <tmpdir>/<name> (with --socket-path, or with inherit_socket the way the manager
 * does: a listening socket as --socket-fd=4) with the control socket on fd 3 and a stray pipe end on fd
 * 5, and waits for HELLO. */
static void
worker_start_full(Worker *w, const char *name, const char *backend, bool sandbox, bool inherit_socket) {
        const char *argv[16];
        int ctl[2], err[2], stray[2], lfd = -1;
        unsigned n = 0;
        CtlMsg m;

        snprintf(w->path, sizeof(w->path), "%s/%s", tmpdir, name);
        argv[n++] = worker_path();
        argv[n++] = backend;
        if (inherit_socket) {
                lfd = listen_on(w->path);
                argv[n++] = "--socket-fd=4";
        } else {
                argv[n++] = "--socket-path";
                argv[n++] = w->path;
        }
        argv[n++] = "--control-fd=3";
        if (strcmp(backend, "--backend=ffmpeg-decoder") == 0)
                argv[n++] = "--threads=2";
        if (sandbox)
                argv[n++] = "--sandbox";
        argv[n] = NULL;
        assert_int_equal(ctl_socketpair(ctl), 0);
        assert_int_equal(pipe2(err, O_CLOEXEC), 0);
        assert_int_equal(pipe2(stray, O_CLOEXEC), 0);
        w->pid = fork();
        assert_true(w->pid >= 0);
        if (w->pid == 0) {
                int c = fcntl(ctl[1], F_DUPFD_CLOEXEC, 10), s = fcntl(stray[0], F_DUPFD_CLOEXEC, 10);
                int l = lfd >= 0 ? fcntl(lfd, F_DUPFD_CLOEXEC, 10) : -1;

                if (c < 0 || s < 0 || dup2(err[1], STDERR_FILENO) < 0 || dup2(c, CHILD_CONTROL_FD) < 0 ||
                    dup2(s, CHILD_STRAY_FD) < 0 || (lfd >= 0 && (l < 0 || dup2(l, CHILD_SOCKET_FD) < 0)))
                        _exit(126);
                execv(argv[0], (char *const *) argv);
                _exit(127);
        }
        close(ctl[1]);
        close(err[1]);
        close(stray[0]);
        close(stray[1]);
        safe_close(lfd);
        w->ctl = ctl[0];
        w->err_fd = err[0];
        assert_int_equal(ctl_wait_recv(w->ctl, &m), 1);
        assert_int_equal(m.type, CTL_MSG_HELLO);
}

static void worker_start(Worker *w, const char *name, const char *backend, bool sandbox) {
        worker_start_full(w, name, backend, sandbox, false);
}

/* HELLO goes out before the sandbox is applied; a STATS reply comes from the event loop, which runs only
 * once it is. */
static void worker_wait_serving(Worker *w) {
        CtlMsg m;

        assert_int_equal(ctl_send(w->ctl, &(CtlMsg){ .type = CTL_MSG_STATS_REQUEST, .stats_cookie = 5 }), 0);
        /* Peer notices queued before the reply are skipped. */
        do
                assert_int_equal(ctl_wait_recv(w->ctl, &m), 1);
        while (m.type == CTL_MSG_PEER_CONNECTED || m.type == CTL_MSG_PEER_DISCONNECTED);
        assert_int_equal(m.type, CTL_MSG_STATS);
        assert_int_equal(m.stats.cookie, 5);
}

/* SIGTERM; returns the wait status, and the worker's stderr in *ret_err. */
static int worker_stop(Worker *w, char **ret_err) {
        char *buf = NULL, chunk[4096];
        size_t len = 0;
        int status;

        assert_int_equal(kill(w->pid, SIGTERM), 0);
        for (;;) {
                struct pollfd p = { .fd = w->err_fd, .events = POLLIN };
                ssize_t k;
                char *b;

                assert_true(poll(&p, 1, SAFETY_TIMEOUT_MS) > 0);
                k = read(w->err_fd, chunk, sizeof(chunk));
                assert_true(k >= 0);
                if (k == 0)
                        break;
                b = realloc(buf, len + (size_t) k + 1);
                assert_non_null(b);
                buf = b;
                memcpy(buf + len, chunk, (size_t) k);
                len += (size_t) k;
                buf[len] = '\0';
        }
        assert_int_equal(waitpid(w->pid, &status, 0), w->pid);
        close(w->err_fd);
        close(w->ctl);
        *ret_err = buf ? buf : strdup("");
        return status;
}

/* The value of "Field:" in /proc/<pid>/status, or NULL. */
static char *proc_status_field(pid_t pid, const char *field) {
        char path[64], line[512], *value = NULL;
        size_t n = strlen(field);
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/status", (int) pid);
        f = fopen(path, "re");
        assert_non_null(f);
        while (!value && fgets(line, sizeof(line), f))
                if (strncmp(line, field, n) == 0 && line[n] == ':') {
                        char *v = line + n + 1;
                        v += strspn(v, " \t");
                        v[strcspn(v, "\n")] = '\0';
                        value = strdup(v);
                }
        fclose(f);
        return value;
}

static void assert_status_field(pid_t pid, const char *field, const char *want) {
        _cleanup_free_ char *v = proc_status_field(pid, field);

        assert_non_null(v);
        if (strcmp(v, want) != 0)
                fail_msg("%s: '%s', wanted '%s'", field, v, want);
}

/* Checks the fd table: stdio, the control socket, and only anonymous inodes and sockets beyond; no file,
 * directory or device, and not the stray pipe (its number is reused by the worker's own fds once closed).
 * Returns the number of fds. */
static unsigned assert_fd_table(pid_t pid) {
        char dir[64], path[128], target[PATH_MAX];
        unsigned n = 0;
        bool control = false;

        snprintf(dir, sizeof(dir), "/proc/%d/fd", (int) pid);
        for (int fd = 0; fd < 1024; fd++) {
                ssize_t k;

                snprintf(path, sizeof(path), "%s/%d", dir, fd);
                k = readlink(path, target, sizeof(target) - 1);
                if (k < 0) {
                        assert_int_equal(errno, ENOENT);
                        continue;
                }
                target[k] = '\0';
                n++;
                if (fd <= STDERR_FILENO)
                        continue;
                if (fd == CHILD_CONTROL_FD) {
                        control = strncmp(target, "socket:", 7) == 0;
                        continue;
                }
                if (strncmp(target, "anon_inode:", 11) != 0 && strncmp(target, "socket:", 7) != 0)
                        fail_msg("fd %d of the sandboxed worker is '%s'", fd, target);
        }
        assert_true(control);
        return n;
}

static unsigned max_open_files(pid_t pid) {
        char path[64], line[256];
        unsigned soft = 0, hard = 0;
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/limits", (int) pid);
        f = fopen(path, "re");
        assert_non_null(f);
        while (fgets(line, sizeof(line), f))
                if (strncmp(line, "Max open files", 14) == 0)
                        assert_int_equal(sscanf(line + 14, "%u %u", &soft, &hard), 2);
        fclose(f);
        assert_int_equal(soft, hard);
        return soft;
}

static VuFrontend *connect_frontend(const char *path) {
        VuFrontendOptions o;
        VuFrontend *fe = NULL;

        vu_frontend_options_init(&o);
        o.config_size = sizeof(struct virtio_video_config);
        o.device_features = 1u << VIRTIO_VIDEO_F_RESOURCE_GUEST_PAGES;
        o.timeout_ms = SAFETY_TIMEOUT_MS;
        assert_int_equal(vu_frontend_connect(&o, path, &fe), 0);
        assert_int_equal(vu_frontend_start(fe), 0);
        return fe;
}

static VideoClient *new_client(VuFrontend *fe) {
        VideoClientOptions co;
        VideoClient *c = NULL;

        video_client_options_init(&co);
        co.timeout_ms = SAFETY_TIMEOUT_MS;
        assert_int_equal(video_client_new(fe, &co, &c), 0);
        assert_int_equal(video_client_probe(c), 0);
        return c;
}

typedef struct NullCount {
        unsigned n;
} NullCount;

static int null_frame(void *userdata, const VcFrame *f) {
        NullCount *c = userdata;

        if (!null_frame_matches(f, 48, 32, c->n + 1))
                return -EBADMSG;
        c->n++;
        return 0;
}

static void null_session(const char *path, uint32_t stream_id) {
        _cleanup_(video_client_freep) VideoClient *c = NULL;
        NullStream s = {};
        NullCount count = {};
        VcDecodeResult res;
        VcDecodeOptions o = { .stream_id = stream_id, .frame = null_frame, .userdata = &count };
        VuFrontend *fe = connect_frontend(path);

        for (unsigned i = 0; i < 5; i++)
                assert_int_equal(null_stream_append(&s, 48, 32, i + 1), 0);
        o.bitstream = s.data;
        o.size = s.size;
        c = new_client(fe);
        assert_int_equal(video_client_decode(c, &o, &res), 0);
        assert_int_equal(res.frames, 5);
        assert_int_equal(count.n, 5);
        null_stream_done(&s);
        c = video_client_free(c);
        vu_frontend_free(fe);
}

static void assert_sandboxed(pid_t pid) {
        assert_status_field(pid, "NoNewPrivs", "1");
        assert_status_field(pid, "Seccomp", "2");
        assert_status_field(pid, "CapEff", "0000000000000000");
        assert_status_field(pid, "CapPrm", "0000000000000000");
        assert_status_field(pid, "CapInh", "0000000000000000");
        assert_status_field(pid, "CapAmb", "0000000000000000");
        /* Emptying the bounding set needs CAP_SETPCAP, which only a privileged test run gives it. */
        if (geteuid() == 0)
                assert_status_field(pid, "CapBnd", "0000000000000000");
        assert_int_equal(max_open_files(pid), 256);
}

static void test_null_sessions_sandboxed(void **state) {
        _cleanup_free_ char *err = NULL;
        Worker w = {};
        unsigned n_idle, n_busy;
        int status;

        worker_start(&w, "null.sock", "--backend=null", true);
        worker_wait_serving(&w);
        assert_sandboxed(w.pid);
        /* Idle: 0-2, control, epoll, signalfd, the listening socket. */
        n_idle = assert_fd_table(w.pid);
        assert_int_equal(n_idle, 7);

        null_session(w.path, 1);
        null_session(w.path, 3);
        /* A connection in progress: the fd table gains the connection and its eventfds, and nothing else. */
        {
                VuFrontend *fe = connect_frontend(w.path);
                _cleanup_(video_client_freep) VideoClient *c = new_client(fe);

                worker_wait_serving(&w);
                n_busy = assert_fd_table(w.pid);
                assert_true(n_busy > n_idle);
                c = video_client_free(c);
                vu_frontend_free(fe);
        }
        worker_wait_serving(&w);
        assert_sandboxed(w.pid);

        status = worker_stop(&w, &err);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                fail_msg("worker status 0x%x, stderr: %s", (unsigned) status, err);
        assert_null(strstr(err, "refused system call"));
        /* The sandbox refuses unlink: the socket file stays for the next start to replace. */
        assert_int_equal(unlink(w.path), 0);
}

/* As the manager runs it: an inherited listening socket, sessions, then SHUTDOWN on the control socket. */
static void test_manager_style_worker_sandboxed(void **state) {
        char err[4096], path[64], target[PATH_MAX];
        size_t len = 0;
        ssize_t k;
        Worker w = {};
        int status;

        worker_start_full(&w, "managed.sock", "--backend=null", true, true);
        worker_wait_serving(&w);
        assert_sandboxed(w.pid);
        assert_int_equal(assert_fd_table(w.pid), 7);
        /* The inherited socket is served from its own number. */
        snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int) w.pid, CHILD_SOCKET_FD);
        k = readlink(path, target, sizeof(target) - 1);
        assert_true(k > 0);
        target[k] = '\0';
        assert_int_equal(strncmp(target, "socket:", 7), 0);
        null_session(w.path, 1);
        null_session(w.path, 2);

        assert_int_equal(ctl_send(w.ctl, &(CtlMsg){ .type = CTL_MSG_SHUTDOWN }), 0);
        for (;;) {
                struct pollfd p = { .fd = w.err_fd, .events = POLLIN };

                assert_true(poll(&p, 1, SAFETY_TIMEOUT_MS) > 0);
                k = read(w.err_fd, err + len, sizeof(err) - 1 - len);
                assert_true(k >= 0);
                if (k == 0 || len + (size_t) k >= sizeof(err) - 1)
                        break;
                len += (size_t) k;
        }
        err[len] = '\0';
        assert_int_equal(waitpid(w.pid, &status, 0), w.pid);
        close(w.err_fd);
        close(w.ctl);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                fail_msg("worker status 0x%x, stderr: %s", (unsigned) status, err);
        assert_null(strstr(err, "refused system call"));
        /* The socket file is the manager's: it stays. */
        assert_int_equal(unlink(w.path), 0);
}

/* The same worker without --sandbox: nothing of the above holds, so the checks can tell. */
static void test_unsandboxed_worker_differs(void **state) {
        _cleanup_free_ char *err = NULL, *seccomp = NULL, *nnp = NULL;
        char path[64], target[PATH_MAX];
        bool stray = false;
        Worker w = {};
        int status;

        worker_start(&w, "plain.sock", "--backend=null", false);
        worker_wait_serving(&w);
        seccomp = proc_status_field(w.pid, "Seccomp");
        nnp = proc_status_field(w.pid, "NoNewPrivs");
        assert_non_null(seccomp);
        assert_non_null(nnp);
        assert_string_equal(seccomp, "0");
        assert_string_equal(nnp, "0");
        for (int fd = STDERR_FILENO + 1; fd < 64; fd++) {
                ssize_t k;

                snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int) w.pid, fd);
                k = readlink(path, target, sizeof(target) - 1);
                if (k > 0) {
                        target[k] = '\0';
                        stray = stray || strncmp(target, "pipe:", 5) == 0;
                }
        }
        assert_true(stray);
        null_session(w.path, 1);
        status = worker_stop(&w, &err);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
        /* Without the sandbox the worker removes its socket file. */
        assert_int_equal(access(w.path, F_OK), -1);
}

#if HAVE_LIBAVCODEC
typedef struct AvCheck {
        const MediaFrames *ref;
        unsigned n;
} AvCheck;

/* Compares the luma plane of each frame with libavcodec's own decode, in display order. */
static int av_frame_check(void *userdata, const VcFrame *f) {
        AvCheck *c = userdata;
        const AVFrame *r;

        if (c->n >= c->ref->n)
                return -E2BIG;
        r = c->ref->f[c->n];
        if (f->crop.width != (uint32_t) r->width || f->crop.height != (uint32_t) r->height ||
            f->n_planes < 1)
                return -EBADMSG;
        for (int y = 0; y < r->height; y++) {
                size_t off = (size_t) y * f->strides[0];

                if (off + (size_t) r->width > f->plane_sizes[0] ||
                    memcmp(f->planes[0] + off, r->data[0] + (size_t) y * (size_t) r->linesize[0],
                           (size_t) r->width) != 0)
                        return -EBADMSG;
        }
        c->n++;
        return 0;
}

static void test_ffmpeg_sessions_sandboxed(void **state) {
        _cleanup_free_ char *err = NULL;
        _cleanup_free_ uint8_t *bytes = NULL;
        _cleanup_free_ size_t *offsets = NULL;
        MediaStream s = {};
        MediaFrames ref = {};
        size_t size;
        Worker w = {};
        int status;

        assert_int_equal(media_encode("libx264", 96, 64, 10, 0, &s), 0);
        assert_int_equal(media_decode(AV_CODEC_ID_H264, &s, 0, NULL, &ref), 0);
        assert_int_equal(ref.n, 10);
        bytes = media_stream_bytes(&s, &size, &offsets);
        assert_non_null(bytes);

        worker_start(&w, "ffmpeg.sock", "--backend=ffmpeg-decoder", true);
        worker_wait_serving(&w);
        assert_sandboxed(w.pid);
        assert_fd_table(w.pid);
        /* Two sessions: codec threads (--threads=2) are created and joined under the filter each time. */
        for (uint32_t id = 1; id <= 2; id++) {
                VuFrontend *fe = connect_frontend(w.path);
                _cleanup_(video_client_freep) VideoClient *c = new_client(fe);
                AvCheck check = { .ref = &ref };
                VcDecodeOptions o = {
                        .stream_id = id,
                        .coded_format = 0x1002 /* H264 (virtio-video-v3.md) */,
                        .bitstream = bytes,
                        .size = size,
                        .chunk_sizes = NULL,
                        .frame = av_frame_check,
                        .userdata = &check,
                };
                VcDecodeResult res;

                assert_int_equal(video_client_decode(c, &o, &res), 0);
                assert_int_equal(res.frames, 10);
                assert_int_equal(check.n, 10);
                worker_wait_serving(&w);
                assert_fd_table(w.pid);
                c = video_client_free(c);
                vu_frontend_free(fe);
        }
        status = worker_stop(&w, &err);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                fail_msg("worker status 0x%x, stderr: %s", (unsigned) status, err);
        assert_null(strstr(err, "refused system call"));
        assert_int_equal(unlink(w.path), 0);
        media_frames_free(&ref);
        media_stream_free(&s);
}

typedef struct Packets {
        MediaStream s;
} Packets;

static int
collect_packet(void *userdata, const uint8_t *data, size_t size, uint64_t timestamp, uint32_t flags) {
        Packets *p = userdata;
        MediaPacket *n;

        n = reallocarray(p->s.pkts, p->s.n + 1, sizeof(*n));
        if (!n)
                return -ENOMEM;
        p->s.pkts = n;
        n[p->s.n].data = malloc(size);
        if (!n[p->s.n].data)
                return -ENOMEM;
        memcpy(n[p->s.n].data, data, size);
        n[p->s.n].size = size;
        n[p->s.n].key = false;
        p->s.n++;
        return 0;
}

/* Tightly packed I420, as VcEncodeOptions wants it. */
static uint8_t *pack_i420(const AVFrame *f) {
        size_t w = (size_t) f->width, h = (size_t) f->height, off = 0;
        uint8_t *b = malloc(w * h * 3 / 2);

        assert_non_null(b);
        for (unsigned plane = 0; plane < 3; plane++) {
                size_t pw = plane ? w / 2 : w, ph = plane ? h / 2 : h;

                for (size_t y = 0; y < ph; y++, off += pw)
                        memcpy(b + off, f->data[plane] + y * (size_t) f->linesize[plane], pw);
        }
        return b;
}

/* The software encoder sandboxed: pictures in, H.264 out that libavcodec decodes to the same pictures. */
static void test_ffmpeg_encoder_session_sandboxed(void **state) {
        _cleanup_free_ char *err = NULL;
        enum { W = 96, H = 64, N = 6 };
        uint8_t *pics[N];
        AVFrame *ref[N];
        Packets out = {};
        MediaFrames decoded = {};
        VcEncodeResult res;
        Worker w = {};
        int status;

        for (unsigned i = 0; i < N; i++) {
                ref[i] = media_pattern(W, H, i);
                assert_non_null(ref[i]);
                pics[i] = pack_i420(ref[i]);
        }
        worker_start(&w, "encoder.sock", "--backend=ffmpeg-encoder", true);
        worker_wait_serving(&w);
        assert_sandboxed(w.pid);
        {
                VuFrontend *fe = connect_frontend(w.path);
                _cleanup_(video_client_freep) VideoClient *c = new_client(fe);
                VcEncodeOptions o = {
                        .stream_id = 1,
                        .coded_format = 0x1002, /* H264 */
                        .raw_format = 4,        /* YUV420 */
                        .width = W,
                        .height = H,
                        .frame_rate = 30,
                        .frames = (const uint8_t *const *) pics,
                        .frame_size = W * H * 3 / 2,
                        .n_frames = N,
                        .packet = collect_packet,
                        .userdata = &out,
                };

                assert_true(video_client_is_encoder(c));
                assert_int_equal(video_client_encode(c, &o, &res), 0);
                worker_wait_serving(&w);
                assert_fd_table(w.pid);
                c = video_client_free(c);
                vu_frontend_free(fe);
        }
        status = worker_stop(&w, &err);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                fail_msg("worker status 0x%x, stderr: %s", (unsigned) status, err);
        assert_null(strstr(err, "refused system call"));
        assert_int_equal(unlink(w.path), 0);

        assert_true(res.packets > 0);
        assert_int_equal(media_decode(AV_CODEC_ID_H264, &out.s, 0, NULL, &decoded), 0);
        assert_int_equal(decoded.n, N);
        for (unsigned i = 0; i < N; i++) {
                double psnr = media_psnr(ref[i], decoded.f[i]);
                if (psnr < 30)
                        fail_msg("picture %u: PSNR %.1f dB", i, psnr);
                av_frame_free(&ref[i]);
                free(pics[i]);
        }
        media_frames_free(&decoded);
        media_stream_free(&out.s);
}
#endif

static int group_setup(void **state) {
        worker_tests_setup(tmpdir, sizeof(tmpdir), "/tmp/vuv-sandbox-XXXXXX");
        return 0;
}

static int group_teardown(void **state) {
        (void) rmdir(tmpdir);
        return 0;
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_null_sessions_sandboxed),
                cmocka_unit_test(test_manager_style_worker_sandboxed),
                cmocka_unit_test(test_unsandboxed_worker_differs),
#if HAVE_LIBAVCODEC
                cmocka_unit_test(test_ffmpeg_sessions_sandboxed),
                cmocka_unit_test(test_ffmpeg_encoder_session_sandboxed),
#endif
        };

        return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
