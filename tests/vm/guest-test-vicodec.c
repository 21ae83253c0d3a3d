/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The V4L2 backends against the kernel's vicodec, through the whole vhost-user path; runs inside the
 * test guest (tests/vm/guest-vicodec.sh). For each case it starts our worker
 *
 *     vhost-user-video --socket-fd=3 --backend v4l2-decoder|v4l2-encoder --v4l2-device NODE [--force-copy]
 *
 * on a listening socket it made, connects to it with the frontend library (playing QEMU) and drives the
 * device with the video client (playing the guest driver). References come from v4l2-ctl on the same
 * vicodec nodes, made by the guest script in the data directory:
 *
 *     in-WxH.yuv    10 generated YU12 frames         (vm-frametool generate)
 *     enc-WxH.fwht  v4l2-ctl's direct FWHT encode of them
 *     dec-WxH.yuv   v4l2-ctl's direct decode of enc-WxH.fwht
 *
 * for 640x480 and 1280x720. Every decoded frame must equal v4l2-ctl's bit for bit, every encoded
 * stream v4l2-ctl's byte for byte. Results are TAP on stdout, diagnostics on stderr.
 *
 *   guest-test-vicodec --worker PATH --decoder NODE --encoder NODE --data DIR [--force-copy]
 *                      [--worker-log FILE] [--timeout-ms N]
 */

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend/backend.h"
#include "common/macro.h"
#include "frontend/frontend.h"
#include "frontend/video-client.h"
#include "video/virtio-video-proto.h"

#define N_FRAMES 10u
#define N_CLIPS 2u
#define MAX_CHUNKS 64u
#define MAX_BUFS 16u
#define RESTART_TS_BASE 100u /* timestamps of the inputs queued after a clear, in frames */

typedef struct Clip {
        uint32_t width, height;
        size_t frame_size; /* YU12 */
        uint8_t *raw;      /* N_FRAMES input frames */
        size_t raw_size;
        uint8_t *coded; /* v4l2-ctl's encode */
        size_t coded_size;
        size_t chunk_sizes[MAX_CHUNKS]; /* one FWHT frame (header + payload) each */
        unsigned n_chunks;
        uint8_t *decoded; /* v4l2-ctl's decode: N_FRAMES frames */
        size_t decoded_size;
} Clip;

static struct {
        const char *worker;
        const char *decoder;
        const char *encoder;
        const char *data;
        const char *worker_log;
        bool force_copy;
        int timeout_ms;
} arg = { .timeout_ms = 20000 };

static Clip clips[N_CLIPS] = { { .width = 640, .height = 480 }, { .width = 1280, .height = 720 } };
static unsigned tap_n, tap_failed;
/* Set while running a case that fails for a known bug elsewhere: its results carry a TAP TODO
 * directive, which meson counts as an expected failure, and as a failure once the case passes
 * (an unexpected pass), so the marker goes when the bug does. */
static const char *tap_todo;
static unsigned worker_seq;

static void tap_result(bool ok, const char *fmt, ...) _printf_(2, 3);
static void tap_result(bool ok, const char *fmt, ...) {
        va_list ap;

        tap_n++;
        if (!ok && !tap_todo)
                tap_failed++;
        printf("%sok %u - ", ok ? "" : "not ", tap_n);
        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
        printf("%s", arg.force_copy ? " (--force-copy)" : "");
        if (tap_todo)
                printf(" # TODO %s", tap_todo);
        printf("\n");
        fflush(stdout);
}

static void diag(const char *fmt, ...) _printf_(1, 2);
static void diag(const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
}

/* ---- reference data ------------------------------------------------------------------------------- */

static int read_file(const char *dir, const char *name, uint8_t **ret, size_t *ret_size) {
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ uint8_t *buf = NULL;
        _cleanup_free_ char *path = NULL;
        struct stat st;
        size_t got = 0;

        if (asprintf(&path, "%s/%s", dir, name) < 0)
                return -ENOMEM;
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || fstat(fd, &st) < 0) {
                diag("Cannot read '%s': %m", path);
                return -errno;
        }
        if (st.st_size <= 0 || st.st_size > (1 << 30)) {
                diag("'%s' has %jd bytes", path, (intmax_t) st.st_size);
                return -EINVAL;
        }
        buf = malloc((size_t) st.st_size);
        if (!buf)
                return -ENOMEM;
        while (got < (size_t) st.st_size) {
                ssize_t n = read(fd, buf + got, (size_t) st.st_size - got);
                if (n <= 0) {
                        diag("Cannot read '%s': %m", path);
                        return n < 0 ? -errno : -EIO;
                }
                got += (size_t) n;
        }
        *ret = TAKE_PTR(buf);
        *ret_size = got;
        return 0;
}

static uint32_t be32_at(const uint8_t *p) {
        return (uint32_t) p[0] << 24 | (uint32_t) p[1] << 16 | (uint32_t) p[2] << 8 | p[3];
}

/* Splits vicodec's FWHT stream into frames: a 44-byte header whose last field is the payload size. */
static int clip_split(Clip *c) {
        size_t pos = 0;

        c->n_chunks = 0;
        while (pos < c->coded_size) {
                uint32_t size;

                if (c->coded_size - pos < 44 || be32_at(c->coded + pos) != 0x4f4f4f4f ||
                    c->n_chunks >= MAX_CHUNKS)
                        return -EBADMSG;
                size = be32_at(c->coded + pos + 40);
                if (size > c->coded_size - pos - 44)
                        return -EBADMSG;
                c->chunk_sizes[c->n_chunks++] = 44 + size;
                pos += 44 + size;
        }
        return c->n_chunks == N_FRAMES ? 0 : -EBADMSG;
}

static int clip_load(Clip *c) {
        char name[64];
        int r;

        c->frame_size = (size_t) c->width * c->height * 3 / 2;
        snprintf(name, sizeof(name), "in-%" PRIu32 "x%" PRIu32 ".yuv", c->width, c->height);
        r = read_file(arg.data, name, &c->raw, &c->raw_size);
        if (r < 0)
                return r;
        snprintf(name, sizeof(name), "enc-%" PRIu32 "x%" PRIu32 ".fwht", c->width, c->height);
        r = read_file(arg.data, name, &c->coded, &c->coded_size);
        if (r < 0)
                return r;
        snprintf(name, sizeof(name), "dec-%" PRIu32 "x%" PRIu32 ".yuv", c->width, c->height);
        r = read_file(arg.data, name, &c->decoded, &c->decoded_size);
        if (r < 0)
                return r;
        if (c->raw_size != N_FRAMES * c->frame_size || c->decoded_size != N_FRAMES * c->frame_size) {
                diag("%" PRIu32 "x%" PRIu32 ": reference files of the wrong size", c->width, c->height);
                return -EINVAL;
        }
        r = clip_split(c);
        if (r < 0)
                diag("%" PRIu32 "x%" PRIu32 ": v4l2-ctl's stream is not %u FWHT frames", c->width, c->height,
                     N_FRAMES);
        return r;
}

/* Compares a decoded picture, in whatever plane layout the device chose for YUV420, with a packed YU12
 * reference frame. */
static bool frame_matches(const VcFrame *f, const Clip *c, unsigned index, char *why, size_t why_size) {
        const uint8_t *ref = c->decoded + (size_t) index * c->frame_size;
        uint32_t w = c->width, h = c->height;

        if (f->format != VIDEO_FORMAT_YUV420 || f->width != w || f->height != h) {
                snprintf(why, why_size,
                         "format 0x%" PRIx32 " %" PRIu32 "x%" PRIu32 ", expected YUV420 %" PRIu32
                         "x%" PRIu32,
                         f->format, f->width, f->height, w, h);
                return false;
        }
        for (unsigned p = 0; p < 3; p++) {
                uint32_t pw = p == 0 ? w : w / 2, ph = p == 0 ? h : h / 2, stride;
                const uint8_t *base;
                size_t avail;

                if (f->n_planes == 3) {
                        base = f->planes[p];
                        stride = f->strides[p] ?: pw;
                        avail = f->plane_sizes[p];
                } else if (f->n_planes == 1) {
                        /* One plane: Y, then U and V at half the stride. */
                        stride = p == 0 ? (f->strides[0] ?: w) : (f->strides[0] ?: w) / 2;
                        size_t off = p == 0 ? 0
                                            : (size_t) (f->strides[0] ?: w) * h +
                                                      (p == 2 ? (size_t) stride * (h / 2) : 0);
                        if (off > f->plane_sizes[0]) {
                                snprintf(why, why_size, "plane of %" PRIu32 " bytes is too small",
                                         f->plane_sizes[0]);
                                return false;
                        }
                        base = f->planes[0] + off;
                        avail = f->plane_sizes[0] - off;
                } else {
                        snprintf(why, why_size, "%u planes", f->n_planes);
                        return false;
                }
                if (stride < pw || (size_t) stride * (ph - 1) + pw > avail) {
                        snprintf(why, why_size,
                                 "plane %u: stride %" PRIu32 " and %zu bytes for %" PRIu32 "x%" PRIu32, p,
                                 stride, avail, pw, ph);
                        return false;
                }
                for (uint32_t y = 0; y < ph; y++) {
                        if (memcmp(base + (size_t) y * stride, ref, pw) != 0) {
                                snprintf(why, why_size, "plane %u differs from v4l2-ctl's in row %" PRIu32,
                                         p, y);
                                return false;
                        }
                        ref += pw;
                }
        }
        return true;
}

/* ---- the worker ------------------------------------------------------------------------------------ */

typedef struct Worker {
        pid_t pid;
        char path[sizeof(((struct sockaddr_un *) NULL)->sun_path)];
} Worker;

static int worker_start(const char *backend, const char *node, Worker *ret) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_close_ int fd = -EBADF;
        pid_t pid;

        snprintf(sa.sun_path, sizeof(sa.sun_path), "/tmp/vhost-user-video-%u.sock", ++worker_seq);
        (void) unlink(sa.sun_path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0 || listen(fd, 4) < 0)
                return -errno;
        pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0) {
                const char *argv[12];
                unsigned n = 0;

                /* The worker inherits fd 3 and nothing else of ours: dup2() clears FD_CLOEXEC on the copy,
                 * and is a no-op when the socket is fd 3 already. */
                if (fd == 3 ? fcntl(fd, F_SETFD, 0) < 0 : dup2(fd, 3) < 0)
                        _exit(127);
                if (arg.worker_log) {
                        int log = open(arg.worker_log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
                        if (log >= 0)
                                (void) dup2(log, STDERR_FILENO);
                }
                argv[n++] = arg.worker;
                argv[n++] = "--socket-fd=3";
                argv[n++] = "--backend";
                argv[n++] = backend;
                argv[n++] = "--v4l2-device";
                argv[n++] = node;
                argv[n++] = "--verbose";
                if (arg.force_copy)
                        argv[n++] = "--force-copy";
                argv[n] = NULL;
                execv(arg.worker, (char *const *) argv);
                _exit(127);
        }
        ret->pid = pid;
        memcpy(ret->path, sa.sun_path, sizeof(ret->path));
        return 0;
}

/* SIGTERM, then the exit status: a worker that survived the session exits 0 on SIGTERM. */
static int worker_stop(Worker *w) {
        int status;

        if (w->pid <= 0)
                return -ESRCH;
        (void) kill(w->pid, SIGTERM);
        if (waitpid(w->pid, &status, 0) < 0)
                return -errno;
        w->pid = 0;
        (void) unlink(w->path);
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
                return 0;
        if (WIFEXITED(status))
                diag("worker exited with status %d", WEXITSTATUS(status));
        else
                diag("worker killed by signal %d", WTERMSIG(status));
        return -ECHILD;
}

typedef struct Session {
        Worker worker;
        VuFrontend *fe;
        VideoClient *c;
} Session;

static void session_end(Session *s) {
        s->c = video_client_free(s->c);
        s->fe = vu_frontend_free(s->fe);
}

/* Starts a worker and plays QEMU (memory, rings) and the driver's probe against it. */
static int session_start(const char *backend, const char *node, Session *s) {
        VuFrontendOptions fo;
        VideoClientOptions co;
        int r;

        *s = (Session){};
        r = worker_start(backend, node, &s->worker);
        if (r < 0) {
                diag("Cannot start the worker: %s", strerror(-r));
                return r;
        }
        vu_frontend_options_init(&fo);
        /* As QEMU's vhost-user-video device: the config space, and guest pages for resources. */
        fo.config_size = sizeof(struct virtio_video_config);
        fo.device_features = 1u << VIRTIO_VIDEO_F_RESOURCE_GUEST_PAGES;
        /* Two 1280x720 streams at once: ~4 MB coded buffers and 1.4 MB pictures each. */
        fo.mem_size = 256ull << 20;
        fo.timeout_ms = arg.timeout_ms;
        r = vu_frontend_connect(&fo, s->worker.path, &s->fe);
        if (r >= 0)
                r = vu_frontend_start(s->fe);
        if (r < 0) {
                diag("vhost-user start against '%s' failed: %s", backend, strerror(-r));
                return r;
        }
        video_client_options_init(&co);
        co.timeout_ms = arg.timeout_ms;
        r = video_client_new(s->fe, &co, &s->c);
        if (r < 0)
                return r;
        r = video_client_probe(s->c);
        if (r != 0) {
                diag("probe failed: %s", r < 0 ? strerror(-r) : "device error");
                return r < 0 ? r : -EREMOTEIO;
        }
        return 0;
}

static bool caps_have(const VcCaps *caps, uint32_t format) {
        if (!caps)
                return false;
        for (unsigned i = 0; i < caps->n_formats; i++)
                if (caps->formats[i].format == format)
                        return true;
        return false;
}

/* ---- decoding with the library's session -------------------------------------------------------- */

typedef struct FrameCheck {
        const Clip *clips[N_CLIPS]; /* the clips, in bitstream order */
        unsigned n_clips;
        unsigned seen; /* frames so far, over all clips */
        unsigned bad;
        char why[256];
} FrameCheck;

static int on_frame(void *userdata, const VcFrame *f) {
        FrameCheck *fc = userdata;
        unsigned clip = fc->seen / N_FRAMES, index = fc->seen % N_FRAMES;
        char why[128];

        if (clip >= fc->n_clips) {
                snprintf(fc->why, sizeof(fc->why), "more than %u frames", fc->n_clips * N_FRAMES);
                return -E2BIG;
        }
        fc->seen++;
        if (!frame_matches(f, fc->clips[clip], index, why, sizeof(why))) {
                if (fc->bad++ == 0)
                        snprintf(fc->why, sizeof(fc->why), "frame %u: %s", fc->seen - 1, why);
        }
        return 0;
}

/* One decode session of the clips' streams concatenated (a resolution change at each boundary). */
static void
test_decode(Session *s, uint32_t stream_id, const Clip *const *cs, unsigned n, const char *name) {
        _cleanup_free_ uint8_t *bs = NULL;
        size_t chunks[N_CLIPS * MAX_CHUNKS], size = 0;
        FrameCheck fc = { .n_clips = n };
        VcDecodeResult res = {};
        unsigned n_chunks = 0;
        int r;

        for (unsigned i = 0; i < n; i++)
                size += cs[i]->coded_size;
        bs = malloc(size);
        if (!bs) {
                tap_result(false, "%s: out of memory", name);
                return;
        }
        size = 0;
        for (unsigned i = 0; i < n; i++) {
                memcpy(bs + size, cs[i]->coded, cs[i]->coded_size);
                size += cs[i]->coded_size;
                for (unsigned k = 0; k < cs[i]->n_chunks; k++)
                        chunks[n_chunks++] = cs[i]->chunk_sizes[k];
                fc.clips[i] = cs[i];
        }
        r = video_client_decode(s->c,
                                &(VcDecodeOptions){
                                        .stream_id = stream_id,
                                        .coded_format = VIDEO_FORMAT_FWHT,
                                        .output_format = VIDEO_FORMAT_YUV420,
                                        .bitstream = bs,
                                        .size = size,
                                        .chunk_sizes = chunks,
                                        .n_chunks = n_chunks,
                                        .frame = on_frame,
                                        .userdata = &fc,
                                },
                                &res);
        if (r < 0) {
                diag("%s: decode session failed: %s%s%s", name, strerror(-r), fc.why[0] ? "; " : "", fc.why);
                /* Best effort, so that the next case starts clean. */
                (void) video_client_stream_destroy(s->c, stream_id);
        }
        tap_result(r >= 0, "%s: the decode session runs to EOS", name);
        tap_result(r >= 0 && res.drain_resp_type == VIRTIO_VIDEO_RESP_OK_NODATA,
                   "%s: STREAM_DRAIN answered OK after the EOS buffer", name);
        if (fc.bad)
                diag("%s: %u frames differ; first: %s", name, fc.bad, fc.why);
        tap_result(r >= 0 && fc.seen == n * N_FRAMES && fc.bad == 0,
                   "%s: all %u frames equal v4l2-ctl's decode bit for bit (%u seen, %u differ)", name,
                   n * N_FRAMES, fc.seen, fc.bad);
        tap_result(r >= 0 && res.resolution_changes == n && res.width == cs[n - 1]->width &&
                           res.height == cs[n - 1]->height,
                   "%s: %u resolution change(s) to the stream's sizes (%u, last %" PRIu32 "x%" PRIu32 ")",
                   name, n, res.resolution_changes, res.width, res.height);
}

/* ---- decoding by hand: several streams at once, clear and restart ------------------------------- */

typedef struct Buf {
        uint32_t id;
        bool queued;
} Buf;

typedef struct Dec {
        VideoClient *c;
        uint32_t stream_id;
        const Clip *clip;
        unsigned clear_after; /* > 0: after this many good frames, QUEUE_CLEAR(INPUT) and start over */
        bool cleared;
        Buf in[4];
        uint32_t in_size;
        Buf out[MAX_BUFS];
        unsigned n_out;
        VcParams outp;
        uint32_t next_id;
        unsigned next_chunk;
        size_t pos;
        unsigned ts_base;
        bool drain_sent, eos;
        bool changing; /* from a resolution change's QUEUE_CLEAR(OUTPUT) to its RESOURCE_DESTROY_ALL */
        uint64_t drain_tag;
        unsigned frames, bad, restart_seen_mask, restart_frames;
        uint8_t *scratch;
        size_t scratch_size;
        char why[256];
} Dec;

static int ok_or(int r) {
        return r > 0 ? -EREMOTEIO : r;
}

static int dec_setup(Dec *d) {
        VcParams p;
        int r;

        d->next_id = (d->stream_id << 12) + 1;
        r = ok_or(video_client_stream_create(d->c, d->stream_id, VIDEO_FORMAT_FWHT, "vm-test"));
        if (r < 0)
                return r;
        r = ok_or(video_client_get_params(d->c, d->stream_id, VIRTIO_VIDEO_QUEUE_TYPE_INPUT, true, &p));
        if (r < 0)
                return r;
        p.format = VIDEO_FORMAT_FWHT;
        p.num_planes = 1;
        p.resource_type = VIRTIO_VIDEO_MEM_TYPE_GUEST_PAGES;
        r = ok_or(video_client_set_params(d->c, d->stream_id, true, &p));
        if (r < 0)
                return r;
        r = ok_or(video_client_get_params(d->c, d->stream_id, VIRTIO_VIDEO_QUEUE_TYPE_INPUT, true, &p));
        if (r < 0)
                return r;
        if (p.num_planes < 1 || p.planes[0].plane_size < d->clip->chunk_sizes[0])
                return -EBADMSG;
        d->in_size = p.planes[0].plane_size;
        for (unsigned i = 0; i < ELEMENTSOF(d->in); i++) {
                d->in[i].id = d->next_id++;
                r = ok_or(video_client_resource_create(d->c, d->stream_id, VIRTIO_VIDEO_QUEUE_TYPE_INPUT,
                                                       d->in[i].id, 1, &d->in_size, 1));
                if (r < 0)
                        return r;
        }
        return 0;
}

static int dec_queue_inputs(Dec *d) {
        int r;

        for (unsigned i = 0; i < ELEMENTSOF(d->in) && d->next_chunk < d->clip->n_chunks; i++) {
                uint32_t size = (uint32_t) d->clip->chunk_sizes[d->next_chunk];

                if (d->in[i].queued)
                        continue;
                if (size > d->in_size)
                        return -E2BIG;
                r = video_client_resource_write(d->c, d->stream_id, VIRTIO_VIDEO_QUEUE_TYPE_INPUT,
                                                d->in[i].id, 0, 0, d->clip->coded + d->pos, size);
                if (r < 0)
                        return r;
                r = video_client_resource_queue(d->c, d->stream_id, VIRTIO_VIDEO_QUEUE_TYPE_INPUT,
                                                d->in[i].id,
                                                (uint64_t) (d->ts_base + d->next_chunk + 1) * 1000, 1,
                                                &size);
                if (r < 0)
                        return r;
                d->in[i].queued = true;
                d->pos += size;
                d->next_chunk++;
        }
        /* No drain before a pending clear: the clear would cut it short. */
        if (d->next_chunk >= d->clip->n_chunks && !d->drain_sent && (d->clear_after == 0 || d->cleared)) {
                r = video_client_stream_drain(d->c, d->stream_id, &d->drain_tag);
                if (r < 0)
                        return r;
                d->drain_sent = true;
        }
        return 0;
}

static int dec_queue_output(Dec *d, Buf *b) {
        uint32_t zero[VC_MAX_PLANES] = {};
        int r;

        r = video_client_resource_queue(d->c, d->stream_id, VIRTIO_VIDEO_QUEUE_TYPE_OUTPUT, b->id, 0,
                                        d->outp.num_planes, zero);
        if (r >= 0)
                b->queued = true;
        return r;
}

static int dec_completion(Dec *d, const VcCompletion *v);
static Dec *dec_by_stream(Dec *ds, unsigned n, uint32_t stream_id);

static int dec_resolution_changed(Dec *ds, unsigned n_decs, Dec *d) {
        uint32_t sizes[VC_MAX_PLANES];
        size_t total = 0;
        int r;

        if (d->n_out > 0) {
                VcCompletion v;

                /* No order holds between the eventq and the commandq: pictures of the old size may have
                 * completed after the event. They are all in once the clear has answered (§7.7c): take
                 * them (and whatever came for the other streams) while the old buffers exist. */
                d->changing = true;
                r = ok_or(video_client_queue_clear(d->c, d->stream_id, VIRTIO_VIDEO_QUEUE_TYPE_OUTPUT));
                while (r >= 0 && video_client_pop_completion(d->c, &v) > 0) {
                        Dec *x = dec_by_stream(ds, n_decs, v.stream_id);
                        if (x)
                                r = dec_completion(x, &v);
                }
                d->changing = false;
                if (r >= 0)
                        r = ok_or(video_client_resource_destroy_all(d->c, d->stream_id,
                                                                    VIRTIO_VIDEO_QUEUE_TYPE_OUTPUT));
                if (r < 0)
                        return r;
                d->n_out = 0;
        }
        r = ok_or(
                video_client_get_params(d->c, d->stream_id, VIRTIO_VIDEO_QUEUE_TYPE_OUTPUT, true, &d->outp));
        if (r < 0)
                return r;
        d->outp.format = VIDEO_FORMAT_YUV420;
        r = ok_or(video_client_set_params(d->c, d->stream_id, true, &d->outp));
        if (r >= 0)
                r = ok_or(video_client_get_params(d->c, d->stream_id, VIRTIO_VIDEO_QUEUE_TYPE_OUTPUT, true,
                                                  &d->outp));
        if (r < 0)
                return r;
        if (d->outp.num_planes == 0 || d->outp.num_planes > VC_MAX_PLANES)
                return -EBADMSG;
        for (unsigned p = 0; p < d->outp.num_planes; p++) {
                sizes[p] = d->outp.planes[p].plane_size;
                if (sizes[p] == 0)
                        return -EBADMSG;
                total += sizes[p];
        }
        if (total > d->scratch_size) {
                uint8_t *n = realloc(d->scratch, total);
                if (!n)
                        return -ENOMEM;
                d->scratch = n;
                d->scratch_size = total;
        }
        d->n_out = MIN(d->outp.min_buffers + 2, MAX_BUFS);
        for (unsigned i = 0; i < d->n_out; i++) {
                d->out[i] = (Buf){ .id = d->next_id++ };
                r = ok_or(video_client_resource_create(d->c, d->stream_id, VIRTIO_VIDEO_QUEUE_TYPE_OUTPUT,
                                                       d->out[i].id, d->outp.num_planes, sizes, 1));
                if (r < 0)
                        return r;
        }
        for (unsigned i = 0; i < d->n_out; i++) {
                r = dec_queue_output(d, &d->out[i]);
                if (r < 0)
                        return r;
        }
        return 0;
}

static Buf *dec_find(Buf *bufs, unsigned n, uint32_t id) {
        for (unsigned i = 0; i < n; i++)
                if (bufs[i].id == id)
                        return &bufs[i];
        return NULL;
}

/* The bitstream is dropped mid-stream (a seek: STREAMOFF/STREAMON of the V4L2 OUTPUT queue) and queued
 * again from its first, intra-coded frame, with timestamps from RESTART_TS_BASE on. */
static int dec_clear_and_restart(Dec *d) {
        int r;

        r = ok_or(video_client_queue_clear(d->c, d->stream_id, VIRTIO_VIDEO_QUEUE_TYPE_INPUT));
        if (r < 0)
                return r;
        d->cleared = true;
        d->next_chunk = 0;
        d->pos = 0;
        d->ts_base = RESTART_TS_BASE;
        return 0;
}

static int dec_output_done(Dec *d, const VcCompletion *v) {
        Buf *b = dec_find(d->out, d->n_out, v->resource_id);
        VcFrame f;
        uint64_t ts;
        unsigned index;
        size_t off = 0;
        char why[128];
        int r;

        if (!b) {
                /* A buffer of the geometry before a resolution change, cancelled by its clear. */
                if (v->flags & VIRTIO_VIDEO_BUFFER_FLAG_ERR)
                        return 0;
                snprintf(d->why, sizeof(d->why), "completion of unknown output resource %" PRIu32,
                         v->resource_id);
                return -EBADMSG;
        }
        if (!b->queued || v->resp_type != VIRTIO_VIDEO_RESP_OK_RESOURCE_QUEUE) {
                snprintf(d->why, sizeof(d->why),
                         "output resource %" PRIu32 ": %s completion, type 0x%" PRIx32, v->resource_id,
                         b->queued ? "queued" : "unqueued", v->resp_type);
                return -EBADMSG;
        }
        b->queued = false;
        if (v->flags & VIRTIO_VIDEO_BUFFER_FLAG_EOS) {
                d->eos = true;
                return 0;
        }
        if (v->flags & VIRTIO_VIDEO_BUFFER_FLAG_ERR)
                return d->changing ? 0 : dec_queue_output(d, b);
        /* The output carries the timestamp of the bitstream buffer it was decoded from. */
        ts = v->timestamp / 1000;
        if (v->timestamp % 1000 != 0 || ts == 0 ||
            !((ts <= N_FRAMES) || (ts > RESTART_TS_BASE && ts <= RESTART_TS_BASE + N_FRAMES))) {
                snprintf(d->why, sizeof(d->why), "output with timestamp %" PRIu64, v->timestamp);
                return -EBADMSG;
        }
        index = (unsigned) ((ts > RESTART_TS_BASE ? ts - RESTART_TS_BASE : ts) - 1);
        f = (VcFrame){
                .format = d->outp.format,
                .width = d->outp.frame_width,
                .height = d->outp.frame_height,
                .n_planes = d->outp.num_planes,
        };
        for (unsigned p = 0; p < d->outp.num_planes; p++) {
                r = video_client_resource_read(d->c, d->stream_id, VIRTIO_VIDEO_QUEUE_TYPE_OUTPUT, b->id, p,
                                               0, d->scratch + off, d->outp.planes[p].plane_size);
                if (r < 0)
                        return r;
                f.planes[p] = d->scratch + off;
                f.plane_sizes[p] = d->outp.planes[p].plane_size;
                f.strides[p] = d->outp.planes[p].stride;
                off += d->outp.planes[p].plane_size;
        }
        d->frames++;
        if (!frame_matches(&f, d->clip, index, why, sizeof(why)) && d->bad++ == 0)
                snprintf(d->why, sizeof(d->why), "frame %u (timestamp %" PRIu64 "): %s", index, v->timestamp,
                         why);
        if (ts > RESTART_TS_BASE) {
                d->restart_frames++;
                d->restart_seen_mask |= 1u << index;
        }
        /* During a resolution change the buffer is about to be destroyed. */
        r = d->changing ? 0 : dec_queue_output(d, b);
        if (r < 0)
                return r;
        if (d->clear_after > 0 && !d->cleared && d->frames == d->clear_after)
                return dec_clear_and_restart(d);
        return 0;
}

static int dec_completion(Dec *d, const VcCompletion *v) {
        Buf *b;

        if (v->queue_type == VIRTIO_VIDEO_QUEUE_TYPE_OUTPUT)
                return dec_output_done(d, v);
        b = dec_find(d->in, ELEMENTSOF(d->in), v->resource_id);
        /* Cancelled by QUEUE_CLEAR(INPUT) or consumed: either way the buffer is ours again. */
        if (!b || !b->queued || v->resp_type != VIRTIO_VIDEO_RESP_OK_RESOURCE_QUEUE) {
                snprintf(d->why, sizeof(d->why),
                         "input resource %" PRIu32 ": %s completion, type 0x%" PRIx32, v->resource_id,
                         !b          ? "unknown"
                         : b->queued ? "queued"
                                     : "unqueued",
                         v->resp_type);
                return -EBADMSG;
        }
        b->queued = false;
        return 0;
}

static Dec *dec_by_stream(Dec *ds, unsigned n, uint32_t stream_id) {
        for (unsigned i = 0; i < n; i++)
                if (ds[i].stream_id == stream_id)
                        return &ds[i];
        return NULL;
}

/* Runs n decoders on one device at once, interleaving their commands, until every one saw EOS. */
static int run_decoders(VideoClient *c, Dec *ds, unsigned n) {
        bool all_eos;
        int r;

        for (unsigned i = 0; i < n; i++) {
                r = dec_setup(&ds[i]);
                if (r < 0)
                        return r;
        }
        for (;;) {
                VcCompletion v;
                VcEvent e;

                all_eos = true;
                for (unsigned i = 0; i < n; i++) {
                        if (ds[i].eos)
                                continue;
                        all_eos = false;
                        r = dec_queue_inputs(&ds[i]);
                        if (r < 0)
                                return r;
                }
                if (all_eos)
                        break;
                r = video_client_wait_any(c);
                if (r < 0)
                        return r;
                /* Completions first: the pictures completed before a resolution change event are
                 * frames of the old geometry, and handling the event recreates the output buffers. */
                while ((r = video_client_next_completion(c, &v, false)) > 0) {
                        Dec *d = dec_by_stream(ds, n, v.stream_id);
                        /* Not one of ours: the client drops a destroyed stream's completions, so this is
                         * only a stream a failed case could not destroy. */
                        if (!d)
                                continue;
                        r = dec_completion(d, &v);
                        if (r < 0)
                                return r;
                }
                if (r < 0)
                        return r;
                while ((r = video_client_next_event(c, &e, false)) > 0) {
                        Dec *d = dec_by_stream(ds, n, e.stream_id);
                        if (!d)
                                continue;
                        if (e.event_type == VIRTIO_VIDEO_EVENT_ERROR) {
                                snprintf(ds[0].why, sizeof(ds[0].why),
                                         "event 0x%" PRIx32 " for stream %" PRIu32, e.event_type,
                                         e.stream_id);
                                return -EIO;
                        }
                        if (e.event_type == VIRTIO_VIDEO_EVENT_DECODER_RESOLUTION_CHANGED) {
                                r = dec_resolution_changed(ds, n, d);
                                if (r < 0)
                                        return r;
                        }
                }
                if (r < 0)
                        return r;
        }
        for (unsigned i = 0; i < n; i++) {
                uint8_t resp[8];
                size_t len;

                r = video_client_wait_reply(c, ds[i].drain_tag, resp, sizeof(resp), &len);
                if (r < 0)
                        return r;
                if (video_client_resp_type(resp, len) != VIRTIO_VIDEO_RESP_OK_NODATA)
                        return -EREMOTEIO;
                r = ok_or(video_client_stream_destroy(c, ds[i].stream_id));
                if (r < 0)
                        return r;
        }
        return 0;
}

static void test_two_streams(Session *s) {
        Dec ds[2] = {
                { .c = s->c, .stream_id = 11, .clip = &clips[0] },
                { .c = s->c, .stream_id = 12, .clip = &clips[1] },
        };
        int r;

        r = run_decoders(s->c, ds, 2);
        if (r < 0)
                for (unsigned i = 0; i < 2; i++)
                        (void) video_client_stream_destroy(s->c, ds[i].stream_id);
        if (r < 0)
                diag("two streams: %s%s%s", strerror(-r), ds[0].why[0] || ds[1].why[0] ? "; " : "",
                     ds[0].why[0] ? ds[0].why : ds[1].why);
        tap_result(r >= 0, "two streams at once: both decode to EOS and drain OK");
        for (unsigned i = 0; i < 2; i++) {
                if (ds[i].bad)
                        diag("stream %" PRIu32 ": %s", ds[i].stream_id, ds[i].why);
                tap_result(r >= 0 && ds[i].frames == N_FRAMES && ds[i].bad == 0,
                           "two streams at once: %" PRIu32 "x%" PRIu32
                           " frames equal v4l2-ctl's (%u of %u, %u differ)",
                           ds[i].clip->width, ds[i].clip->height, ds[i].frames, N_FRAMES, ds[i].bad);
        }
        for (unsigned i = 0; i < 2; i++)
                free(ds[i].scratch);
}

static void test_clear_restart(Session *s) {
        Dec d = { .c = s->c, .stream_id = 21, .clip = &clips[0], .clear_after = 3 };
        int r;

        r = run_decoders(s->c, &d, 1);
        if (r < 0)
                (void) video_client_stream_destroy(s->c, d.stream_id);
        if (r < 0)
                diag("clear and restart: %s%s%s", strerror(-r), d.why[0] ? "; " : "", d.why);
        if (d.bad)
                diag("clear and restart: %s", d.why);
        tap_result(
                d.cleared && d.bad == 0 && d.restart_frames == N_FRAMES &&
                        d.restart_seen_mask == (1u << N_FRAMES) - 1,
                "QUEUE_CLEAR(INPUT) after 3 frames and a restart from the first frame: all %u frames come "
                "again, each equal to v4l2-ctl's (%u frames in all, %u after the restart, %u differ)",
                N_FRAMES, d.frames, d.restart_frames, d.bad);
        tap_result(r >= 0 && d.cleared, "after the restart, the drain ends with the EOS buffer");
        free(d.scratch);
}

/* ---- encoding ------------------------------------------------------------------------------------- */

typedef struct Packets {
        uint8_t *data;
        size_t size, cap;
} Packets;

static int on_packet(void *userdata, const uint8_t *data, size_t size, uint64_t timestamp, uint32_t flags) {
        Packets *p = userdata;

        if (p->size + size > p->cap) {
                size_t cap = MAX(p->cap * 2, p->size + size);
                uint8_t *n = realloc(p->data, cap);
                if (!n)
                        return -ENOMEM;
                p->data = n;
                p->cap = cap;
        }
        memcpy(p->data + p->size, data, size);
        p->size += size;
        return 0;
}

static void test_encode(Session *s, uint32_t stream_id, const Clip *clip) {
        const uint8_t *frames[N_FRAMES];
        Packets pk = {};
        VcEncodeResult res = {};
        int r;

        for (unsigned i = 0; i < N_FRAMES; i++)
                frames[i] = clip->raw + (size_t) i * clip->frame_size;
        r = video_client_encode(s->c,
                                &(VcEncodeOptions){
                                        .stream_id = stream_id,
                                        .coded_format = VIDEO_FORMAT_FWHT,
                                        .raw_format = VIDEO_FORMAT_YUV420,
                                        .width = clip->width,
                                        .height = clip->height,
                                        .frames = frames,
                                        .frame_size = clip->frame_size,
                                        .n_frames = N_FRAMES,
                                        .packet = on_packet,
                                        .userdata = &pk,
                                },
                                &res);
        if (r < 0)
                diag("encode %" PRIu32 "x%" PRIu32 ": %s", clip->width, clip->height, strerror(-r));
        tap_result(r >= 0 && res.packets == N_FRAMES,
                   "encode %" PRIu32 "x%" PRIu32 ": %u packets to EOS (%u)", clip->width, clip->height,
                   N_FRAMES, res.packets);
        if (r >= 0 && (pk.size != clip->coded_size || memcmp(pk.data, clip->coded, pk.size) != 0))
                diag("encode %" PRIu32 "x%" PRIu32 ": %zu bytes, v4l2-ctl's %zu", clip->width, clip->height,
                     pk.size, clip->coded_size);
        tap_result(r >= 0 && pk.size == clip->coded_size && memcmp(pk.data, clip->coded, pk.size) == 0,
                   "encode %" PRIu32 "x%" PRIu32 ": the stream equals v4l2-ctl's byte for byte", clip->width,
                   clip->height);
        free(pk.data);
}

/* ---- main ---------------------------------------------------------------------------------------- */

static int parse_argv(int argc, char **argv) {
        static const struct option options[] = {
                { "worker", required_argument, NULL, 'w' },     { "decoder", required_argument, NULL, 'd' },
                { "encoder", required_argument, NULL, 'e' },    { "data", required_argument, NULL, 'D' },
                { "worker-log", required_argument, NULL, 'l' }, { "force-copy", no_argument, NULL, 'f' },
                { "timeout-ms", required_argument, NULL, 't' }, {},
        };
        int c;

        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0)
                switch (c) {
                case 'w':
                        arg.worker = optarg;
                        break;
                case 'd':
                        arg.decoder = optarg;
                        break;
                case 'e':
                        arg.encoder = optarg;
                        break;
                case 'D':
                        arg.data = optarg;
                        break;
                case 'l':
                        arg.worker_log = optarg;
                        break;
                case 'f':
                        arg.force_copy = true;
                        break;
                case 't': {
                        char *end;
                        long v = strtol(optarg, &end, 10);
                        if (*end != '\0' || end == optarg || v < 100 || v > 3600000) {
                                diag("Invalid --timeout-ms '%s'", optarg);
                                return -EINVAL;
                        }
                        arg.timeout_ms = (int) v;
                        break;
                }
                default:
                        return -EINVAL;
                }
        if (optind != argc || !arg.worker || !arg.decoder || !arg.encoder || !arg.data) {
                diag("usage: guest-test-vicodec --worker PATH --decoder NODE --encoder NODE --data DIR "
                     "[--force-copy] [--worker-log FILE] [--timeout-ms N]");
                return -EINVAL;
        }
        return 0;
}

static void end_worker(Session *s, const char *what) {
        session_end(s);
        tap_result(worker_stop(&s->worker) == 0, "the %s worker exits cleanly on SIGTERM", what);
}

int main(int argc, char **argv) {
        Session s;
        int r;

        if (parse_argv(argc, argv) < 0)
                return 2;
        /* A worker that dies must not kill us through a write on its socket. */
        (void) signal(SIGPIPE, SIG_IGN);
        for (unsigned i = 0; i < N_CLIPS; i++)
                if (clip_load(&clips[i]) < 0) {
                        printf("Bail out! reference data in '%s' missing or malformed\n", arg.data);
                        return 1;
                }

        r = session_start("v4l2-decoder", arg.decoder, &s);
        tap_result(r >= 0, "decoder worker on %s: vhost-user start and probe", arg.decoder);
        if (r >= 0) {
                const Clip *both[2] = { &clips[0], &clips[1] };

                tap_result(caps_have(video_client_get_caps(s.c, VIRTIO_VIDEO_QUEUE_TYPE_INPUT),
                                     VIDEO_FORMAT_FWHT) &&
                                   caps_have(video_client_get_caps(s.c, VIRTIO_VIDEO_QUEUE_TYPE_OUTPUT),
                                             VIDEO_FORMAT_YUV420) &&
                                   !video_client_is_encoder(s.c),
                           "decoder capabilities: FWHT in, YUV420 out");
                test_decode(&s, 1, &both[0], 1, "decode 640x480");
                test_decode(&s, 2, &both[1], 1, "then decode 1280x720 on the same device");
                test_decode(&s, 3, both, 2, "decode 640x480 then 1280x720 in one stream");
                test_two_streams(&s);
                test_clear_restart(&s);
        }
        end_worker(&s, "decoder");

        r = session_start("v4l2-encoder", arg.encoder, &s);
        tap_result(r >= 0, "encoder worker on %s: vhost-user start and probe", arg.encoder);
        if (r >= 0) {
                tap_result(caps_have(video_client_get_caps(s.c, VIRTIO_VIDEO_QUEUE_TYPE_INPUT),
                                     VIDEO_FORMAT_YUV420) &&
                                   caps_have(video_client_get_caps(s.c, VIRTIO_VIDEO_QUEUE_TYPE_OUTPUT),
                                             VIDEO_FORMAT_FWHT) &&
                                   video_client_is_encoder(s.c),
                           "encoder capabilities: YUV420 in, FWHT out");
                test_encode(&s, 1, &clips[0]);
                test_encode(&s, 2, &clips[1]);
        }
        end_worker(&s, "encoder");

        for (unsigned i = 0; i < N_CLIPS; i++) {
                free(clips[i].raw);
                free(clips[i].coded);
                free(clips[i].decoded);
        }
        printf("1..%u\n", tap_n);
        return tap_failed == 0 ? 0 : 1;
}
