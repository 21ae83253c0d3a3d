/* SPDX-License-Identifier: GPL-2.0-or-later */

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <linux/videodev2.h>

#include "common/macro.h"
#include "fake-v4l2.h"

#define FAKE_MAX_BUFS 32
#define FAKE_MAX_INSTANCES 64
#define FAKE_MAX_DIM 4096
#define HDR_SIZE 16
#define MAX_BITSTREAM (64u << 20)
#define CODED_SIZEIMAGE (1u << 20)
#define MAX_EVENTS 8
#define OFFSET_SHIFT 16 /* mmap offset cookie: queue << 24 | index << 16 | plane << 12 */
#define PLANE_SHIFT 12

#define CLAMP_SIZE(x) ((x) == 0 ? CODED_SIZEIMAGE : MIN(MAX((uint32_t) (x), 4096u), 16u << 20))
#define CLAMP_DIM(x) (MIN(MAX((uint32_t) (x), 2u), (uint32_t) FAKE_MAX_DIM) & ~1u)

typedef enum BufState {
        BUF_DEQUEUED,
        BUF_QUEUED,
        BUF_DONE,
} BufState;

#define FAKE_MAX_PLANES 3

typedef struct FakeBuf {
        BufState state;
        uint8_t *mem; /* MMAP memory, every plane of the buffer at plane_off[] */
        size_t mem_len;
        size_t plane_off[FAKE_MAX_PLANES];
        unsigned maps;
        unsigned long userptr[FAKE_MAX_PLANES];
        uint32_t length[FAKE_MAX_PLANES], bytesused[FAKE_MAX_PLANES], flags;
        struct timeval timestamp;
        uint64_t done_seq;
} FakeBuf;

typedef struct FakeQueue {
        uint32_t fourcc, width, height, bpl, sizeimage;
        /* Memory planes: one, or one per colour plane for the 'M' formats (NV12M, YU12M). */
        unsigned np;
        uint32_t psize[FAKE_MAX_PLANES], pbpl[FAKE_MAX_PLANES];
        bool fmt_valid;
        uint32_t memory;
        unsigned count;
        uint32_t alloc_size[FAKE_MAX_PLANES]; /* plane sizes at allocation: vb2 checks against them */
        FakeBuf bufs[FAKE_MAX_BUFS];
        bool streaming, last_dequeued;
} FakeQueue;

typedef struct Chunk {
        size_t end;
        struct timeval ts;
} Chunk;

typedef struct FakeInstance {
        FakeV4l2 *node;
        int efd;
        bool signaled;
        FakeQueue q[2]; /* 0: OUTPUT, 1: CAPTURE */
        bool sub_source_change, sub_eos;
        struct v4l2_event events[MAX_EVENTS];
        unsigned n_events;
        uint32_t ev_seq;
        uint64_t done_seq;
        /* decoder */
        uint8_t *bits;
        size_t bits_len, bits_cap;
        Chunk chunks[FAKE_MAX_BUFS * 2];
        unsigned n_chunks;
        bool headers_parsed; /* the capture format is known */
        bool need_reconfig;  /* resolution changed: stalled until CAPTURE is restarted */
        bool last_pending;   /* resolution changed while CAPTURE streams: LAST still to be given */
        bool event_held;     /* late_source_change: SOURCE_CHANGE goes out with the LAST buffer's DQBUF */
        /* Like vicodec's first_source_change_sent: the first header queued while OUTPUT or CAPTURE is
         * stopped raises SOURCE_CHANGE, changed or not; STREAMOFF(OUTPUT) (a seek) re-arms it. */
        bool first_source_change_sent;
        bool draining, stopped;
        bool bad_stream;
        uint32_t seq;
        /* encoder */
        bool force_key, first_frame;
        uint32_t crop_w, crop_h; /* OUTPUT crop (S_SELECTION), like vicodec's visible size: at 0,0 */
        int32_t ctrl_bitrate, ctrl_mode, ctrl_peak, ctrl_profile, ctrl_level, ctrl_prepend;
} FakeInstance;

typedef struct FailRule {
        unsigned long request;
        int error;
        unsigned skip, count;
} FailRule;

struct FakeV4l2 {
        FakeV4l2Config cfg;
        FakeV4l2Stats stats;
        FakeInstance *instances[FAKE_MAX_INSTANCES];
        FailRule fail;
        bool vanished;
        bool corrupt_next;
        unsigned next_min_buffers; /* 0: no change to come */
        struct {
                uint32_t id;
                int32_t value;
        } applied[16]; /* the last value any instance got for each control */
        unsigned n_applied;
};

static bool is_enc(FakeInstance *in) {
        return in->node->cfg.encoder;
}

static bool mplane(FakeInstance *in) {
        return in->node->cfg.mplane;
}

/* ---- null frames ---------------------------------------------------------------------------------- */

uint8_t fake_v4l2_pixel(unsigned p, unsigned x, unsigned y, uint8_t seed) {
        return (uint8_t) (seed + p * 61 + x * 7 + y * 13);
}

static void put_le16(uint8_t *p, uint32_t v) {
        p[0] = (uint8_t) v;
        p[1] = (uint8_t) (v >> 8);
}

static void put_le32(uint8_t *p, uint32_t v) {
        put_le16(p, v);
        put_le16(p + 2, v >> 16);
}

static uint32_t get_le16(const uint8_t *p) {
        return (uint32_t) p[0] | (uint32_t) p[1] << 8;
}

static uint32_t get_le32(const uint8_t *p) {
        return get_le16(p) | get_le16(p + 2) << 16;
}

static size_t i420_size(unsigned w, unsigned h) {
        return (size_t) w * h * 3 / 2;
}

static void write_header(uint8_t *buf, unsigned w, unsigned h, uint32_t seq) {
        memcpy(buf, "VVNF", 4);
        put_le16(buf + 4, w);
        put_le16(buf + 6, h);
        put_le32(buf + 8, (uint32_t) i420_size(w, h));
        put_le32(buf + 12, seq);
}

size_t fake_v4l2_make_frame(uint8_t *buf, size_t size, unsigned w, unsigned h, uint32_t seq, uint8_t seed) {
        size_t total = HDR_SIZE + i420_size(w, h);
        uint8_t *p = buf + HDR_SIZE;

        if (total > size)
                return 0;
        write_header(buf, w, h, seq);
        for (unsigned pl = 0; pl < 3; pl++) {
                unsigned pw = pl ? w / 2 : w, ph = pl ? h / 2 : h;

                for (unsigned y = 0; y < ph; y++)
                        for (unsigned x = 0; x < pw; x++)
                                *p++ = fake_v4l2_pixel(pl, x, y, seed);
        }
        return total;
}

/* ---- node and instances --------------------------------------------------------------------------- */

FakeV4l2 *fake_v4l2_new(const FakeV4l2Config *config) {
        FakeV4l2 *f = calloc(1, sizeof(*f));

        if (!f)
                return NULL;
        f->cfg = *config;
        if (f->cfg.max_instances == 0 || f->cfg.max_instances > FAKE_MAX_INSTANCES)
                f->cfg.max_instances = FAKE_MAX_INSTANCES;
        if (f->cfg.min_buffers == 0)
                f->cfg.min_buffers = 2;
        return f;
}

static void queue_release(FakeQueue *q) {
        for (unsigned i = 0; i < FAKE_MAX_BUFS; i++) {
                if (q->bufs[i].mem)
                        (void) munmap(q->bufs[i].mem, q->bufs[i].mem_len);
                memset(&q->bufs[i], 0, sizeof(q->bufs[i]));
        }
        q->count = 0;
        q->memory = 0;
}

static void instance_free(FakeInstance *in) {
        if (!in)
                return;
        for (unsigned i = 0; i < 2; i++) {
                for (unsigned b = 0; b < FAKE_MAX_BUFS; b++)
                        in->node->stats.active_maps -= in->q[i].bufs[b].maps;
                queue_release(&in->q[i]);
        }
        for (unsigned i = 0; i < FAKE_MAX_INSTANCES; i++)
                if (in->node->instances[i] == in)
                        in->node->instances[i] = NULL;
        in->node->stats.open_instances--;
        safe_close(in->efd);
        free(in->bits);
        free(in);
}

FakeV4l2 *fake_v4l2_free(FakeV4l2 *f) {
        if (!f)
                return NULL;
        for (unsigned i = 0; i < FAKE_MAX_INSTANCES; i++)
                instance_free(f->instances[i]);
        free(f);
        return NULL;
}

static const uint32_t *formats_of(FakeInstance *in, int qi, unsigned *n);
static void raw_layout(FakeQueue *q, unsigned w, unsigned h, uint32_t fourcc);
static void coded_layout(FakeQueue *q, uint32_t sizeimage);

static void set_default_formats(FakeInstance *in) {
        FakeQueue *out = &in->q[0], *cap = &in->q[1];

        unsigned n;

        if (is_enc(in)) {
                *out = (FakeQueue){ .fmt_valid = true };
                raw_layout(out, 64, 48, formats_of(in, 0, &n)[0]);
                *cap = (FakeQueue){
                        .fourcc = V4L2_PIX_FMT_FWHT, .width = 64, .height = 48, .fmt_valid = true
                };
                coded_layout(cap, CODED_SIZEIMAGE);
        } else {
                *out = (FakeQueue){ .fourcc = V4L2_PIX_FMT_FWHT, .fmt_valid = true };
                coded_layout(out, CODED_SIZEIMAGE);
                *cap = (FakeQueue){ .fourcc = formats_of(in, 1, &n)[0] };
        }
}

static int fake_open(void *node, void **ret_dev) {
        FakeV4l2 *f = node;
        FakeInstance *in;
        int slot = -1;

        if (f->vanished)
                return -ENODEV;
        for (unsigned i = 0; i < f->cfg.max_instances; i++)
                if (!f->instances[i]) {
                        slot = (int) i;
                        break;
                }
        if (slot < 0)
                return -EBUSY;
        in = calloc(1, sizeof(*in));
        if (!in)
                return -ENOMEM;
        in->node = f;
        in->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (in->efd < 0) {
                free(in);
                return -errno;
        }
        set_default_formats(in);
        in->first_frame = true;
        in->ctrl_bitrate = 1000000;
        in->ctrl_peak = 2000000;
        in->ctrl_profile = V4L2_MPEG_VIDEO_H264_PROFILE_BASELINE;
        in->ctrl_level = V4L2_MPEG_VIDEO_H264_LEVEL_3_0;
        f->instances[slot] = in;
        f->stats.open_instances++;
        *ret_dev = in;
        return 0;
}

static void fake_close(void *dev) {
        instance_free(dev);
}

/* ---- readiness ------------------------------------------------------------------------------------ */

static bool queue_has_done(FakeQueue *q) {
        if (!q->streaming)
                return false;
        for (unsigned i = 0; i < q->count; i++)
                if (q->bufs[i].state == BUF_DONE)
                        return true;
        return false;
}

static void update_poll(FakeInstance *in) {
        bool ready = in->node->vanished || in->n_events > 0 || queue_has_done(&in->q[0]) ||
                     queue_has_done(&in->q[1]);
        uint64_t v = 1;

        if (ready && !in->signaled) {
                if (write(in->efd, &v, sizeof(v)) == sizeof(v))
                        in->signaled = true;
        } else if (!ready && in->signaled) {
                if (read(in->efd, &v, sizeof(v)) == sizeof(v))
                        in->signaled = false;
        }
}

void fake_v4l2_change_min_buffers(FakeV4l2 *f, unsigned n) {
        f->next_min_buffers = n;
}

void fake_v4l2_vanish(FakeV4l2 *f) {
        f->vanished = true;
        for (unsigned i = 0; i < FAKE_MAX_INSTANCES; i++)
                if (f->instances[i])
                        update_poll(f->instances[i]);
}

static void push_event(FakeInstance *in, uint32_t type, uint32_t changes) {
        struct v4l2_event *e;

        if ((type == V4L2_EVENT_SOURCE_CHANGE && !in->sub_source_change) ||
            (type == V4L2_EVENT_EOS && !in->sub_eos))
                return;
        if (in->n_events == MAX_EVENTS)
                return;
        e = &in->events[in->n_events++];
        memset(e, 0, sizeof(*e));
        e->type = type;
        e->u.src_change.changes = changes;
        e->sequence = in->ev_seq++;
}

/* ---- codec ---------------------------------------------------------------------------------------- */

static uint8_t *plane_ptr(FakeQueue *q, FakeBuf *b, unsigned p) {
        return q->memory == V4L2_MEMORY_MMAP ? b->mem + b->plane_off[p] : (uint8_t *) b->userptr[p];
}

static uint8_t *buf_data(FakeQueue *q, FakeBuf *b) {
        return plane_ptr(q, b, 0);
}

static bool is_nv12(uint32_t fourcc) {
        return fourcc == V4L2_PIX_FMT_NV12 || fourcc == V4L2_PIX_FMT_NV12M;
}

/* Where the colour planes of a raw picture are (Y, then UV or U and V), with their strides. */
static void color_planes(FakeQueue *q, FakeBuf *b, uint8_t *c[3], uint32_t stride[3]) {
        if (q->np > 1) {
                for (unsigned p = 0; p < q->np; p++) {
                        c[p] = plane_ptr(q, b, p);
                        stride[p] = q->pbpl[p];
                }
                return;
        }
        c[0] = plane_ptr(q, b, 0);
        stride[0] = q->bpl;
        c[1] = c[0] + (size_t) q->bpl * q->height;
        stride[1] = is_nv12(q->fourcc) ? q->bpl : q->bpl / 2;
        c[2] = c[1] + (size_t) stride[1] * (q->height / 2);
        stride[2] = stride[1];
}

static void buf_done(FakeInstance *in, FakeBuf *b, uint32_t flags) {
        b->state = BUF_DONE;
        b->flags = flags;
        b->done_seq = ++in->done_seq;
}

static FakeBuf *next_queued(FakeQueue *q) {
        FakeBuf *best = NULL;

        /* Buffers are processed in the order they were queued (done_seq holds the queue order). */
        for (unsigned i = 0; i < q->count; i++)
                if (q->bufs[i].state == BUF_QUEUED && (!best || q->bufs[i].done_seq < best->done_seq))
                        best = &q->bufs[i];
        return best;
}

static void raw_layout(FakeQueue *q, unsigned w, unsigned h, uint32_t fourcc) {
        uint32_t stride = ALIGN_TO(w, 16u);

        q->fourcc = fourcc;
        q->width = w;
        q->height = h;
        q->bpl = stride;
        q->sizeimage = stride * h * 3 / 2;
        if (fourcc == V4L2_PIX_FMT_NV12M) {
                q->np = 2;
                q->pbpl[0] = q->pbpl[1] = stride;
                q->psize[0] = stride * h;
                q->psize[1] = stride * (h / 2);
        } else if (fourcc == V4L2_PIX_FMT_YUV420M) {
                q->np = 3;
                q->pbpl[0] = stride;
                q->pbpl[1] = q->pbpl[2] = stride / 2;
                q->psize[0] = stride * h;
                q->psize[1] = q->psize[2] = stride / 2 * (h / 2);
        } else {
                q->np = 1;
                q->pbpl[0] = stride;
                q->psize[0] = q->sizeimage;
        }
}

static void coded_layout(FakeQueue *q, uint32_t sizeimage) {
        q->sizeimage = sizeimage;
        q->bpl = 0;
        q->np = 1;
        q->psize[0] = sizeimage;
        q->pbpl[0] = 0;
}

/* Writes an I420 picture into a raw buffer in the queue's layout. */
static void write_picture(FakeQueue *q, FakeBuf *b, const uint8_t *i420, unsigned w, unsigned h) {
        const uint8_t *u = i420 + (size_t) w * h, *v = u + (size_t) (w / 2) * (h / 2);
        uint8_t *c[3];
        uint32_t st[3];

        color_planes(q, b, c, st);
        for (unsigned y = 0; y < h; y++)
                memcpy(c[0] + (size_t) y * st[0], i420 + (size_t) y * w, w);
        for (unsigned y = 0; y < h / 2; y++)
                for (unsigned x = 0; x < w / 2; x++) {
                        uint8_t cu = u[(size_t) y * (w / 2) + x], cv = v[(size_t) y * (w / 2) + x];

                        if (is_nv12(q->fourcc)) {
                                c[1][(size_t) y * st[1] + 2 * x] = cu;
                                c[1][(size_t) y * st[1] + 2 * x + 1] = cv;
                        } else {
                                c[1][(size_t) y * st[1] + x] = cu;
                                c[2][(size_t) y * st[2] + x] = cv;
                        }
                }
}

/* Reads a raw picture in the queue's layout into I420. */
static void read_picture(FakeQueue *q, FakeBuf *b, uint8_t *i420, unsigned w, unsigned h) {
        uint8_t *u = i420 + (size_t) w * h, *v = u + (size_t) (w / 2) * (h / 2);
        uint8_t *c[3];
        uint32_t st[3];

        color_planes(q, b, c, st);
        for (unsigned y = 0; y < h; y++)
                memcpy(i420 + (size_t) y * w, c[0] + (size_t) y * st[0], w);
        for (unsigned y = 0; y < h / 2; y++)
                for (unsigned x = 0; x < w / 2; x++) {
                        if (is_nv12(q->fourcc)) {
                                u[(size_t) y * (w / 2) + x] = c[1][(size_t) y * st[1] + 2 * x];
                                v[(size_t) y * (w / 2) + x] = c[1][(size_t) y * st[1] + 2 * x + 1];
                        } else {
                                u[(size_t) y * (w / 2) + x] = c[1][(size_t) y * st[1] + x];
                                v[(size_t) y * (w / 2) + x] = c[2][(size_t) y * st[2] + x];
                        }
                }
}

static struct timeval chunk_ts(FakeInstance *in, size_t offset) {
        for (unsigned i = 0; i < in->n_chunks; i++)
                if (in->chunks[i].end > offset)
                        return in->chunks[i].ts;
        return (struct timeval){};
}

static void bits_consume(FakeInstance *in, size_t n) {
        unsigned k = 0;

        memmove(in->bits, in->bits + n, in->bits_len - n);
        in->bits_len -= n;
        for (unsigned i = 0; i < in->n_chunks; i++)
                if (in->chunks[i].end > n) {
                        in->chunks[k] = in->chunks[i];
                        in->chunks[k++].end -= n;
                }
        in->n_chunks = k;
}

/* True when the decoder holds a whole frame (or a broken header): it takes no more input until then,
 * so bitstream buffers stay queued while the decoder waits for CAPTURE buffers, as with real ones. */
static bool dec_frame_ready(FakeInstance *in) {
        if (in->bits_len < HDR_SIZE)
                return false;
        if (memcmp(in->bits, "VVNF", 4) != 0)
                return true;
        return in->bits_len >= HDR_SIZE + (size_t) get_le32(in->bits + 8);
}

/* Takes queued bitstream buffers into the decoder's buffer (they are done once read). */
static void dec_take_input(FakeInstance *in) {
        FakeQueue *out = &in->q[0];
        FakeBuf *b;

        while (out->streaming && in->n_chunks < ELEMENTSOF(in->chunks) && !dec_frame_ready(in) &&
               (b = next_queued(out))) {
                size_t need = in->bits_len + b->bytesused[0];

                if (need > MAX_BITSTREAM) {
                        buf_done(in, b, V4L2_BUF_FLAG_ERROR);
                        continue;
                }
                if (need > in->bits_cap) {
                        uint8_t *n = realloc(in->bits, need);

                        if (!n) {
                                buf_done(in, b, V4L2_BUF_FLAG_ERROR);
                                continue;
                        }
                        in->bits = n;
                        in->bits_cap = need;
                }
                memcpy(in->bits + in->bits_len, buf_data(out, b), b->bytesused[0]);
                in->bits_len += b->bytesused[0];
                in->chunks[in->n_chunks++] = (Chunk){ .end = in->bits_len, .ts = b->timestamp };
                buf_done(in, b, 0);
        }
}

static void dec_set_capture_format(FakeInstance *in, unsigned w, unsigned h) {
        FakeQueue *cap = &in->q[1];

        raw_layout(cap, w, h, cap->fourcc);
        cap->fmt_valid = true;
}

static bool buf_fits(FakeQueue *q, FakeBuf *b) {
        for (unsigned p = 0; p < q->np; p++)
                if (b->length[p] < q->psize[p])
                        return false;
        return true;
}

static void emit_last(FakeInstance *in, FakeBuf *b) {
        memset(b->bytesused, 0, sizeof(b->bytesused));
        buf_done(in, b, V4L2_BUF_FLAG_LAST);
}

static void dec_run(FakeInstance *in) {
        FakeQueue *out = &in->q[0], *cap = &in->q[1];

        for (;;) {
                FakeBuf *cb;
                unsigned w, h;
                size_t total;

                dec_take_input(in);
                if (in->bad_stream)
                        return;
                if (in->bits_len < HDR_SIZE) {
                        if (in->draining && !next_queued(out) && cap->streaming && !in->stopped &&
                            (cb = next_queued(cap))) {
                                /* Nothing left to decode: the drain ends on an empty LAST buffer. */
                                emit_last(in, cb);
                                in->draining = false;
                                in->stopped = true;
                                push_event(in, V4L2_EVENT_EOS, 0);
                        }
                        return;
                }
                w = get_le16(in->bits + 4);
                h = get_le16(in->bits + 6);
                if (memcmp(in->bits, "VVNF", 4) != 0 || w < 2 || h < 2 || w > FAKE_MAX_DIM ||
                    h > FAKE_MAX_DIM || w % 2 || h % 2 || get_le32(in->bits + 8) != i420_size(w, h)) {
                        /* A broken stream: the next picture comes out flagged ERROR and the rest is dropped.
                         */
                        if (cap->streaming && (cb = next_queued(cap))) {
                                memset(cb->bytesused, 0, sizeof(cb->bytesused));
                                buf_done(in, cb, V4L2_BUF_FLAG_ERROR);
                                in->bad_stream = true;
                                in->bits_len = 0;
                                in->n_chunks = 0;
                        }
                        return;
                }
                if (in->last_pending) {
                        /* The change was signalled; the old sequence ends with LAST on the next
                         * CAPTURE buffer, which may come later than the event. */
                        if (!(cb = next_queued(cap)))
                                return;
                        emit_last(in, cb);
                        in->last_pending = false;
                        in->need_reconfig = true;
                        return;
                }
                if (!in->headers_parsed || w != cap->width || h != cap->height ||
                    in->node->next_min_buffers) {
                        bool streaming_change = in->headers_parsed && cap->streaming;

                        if (in->need_reconfig)
                                return;
                        if (in->node->next_min_buffers) {
                                in->node->cfg.min_buffers = in->node->next_min_buffers;
                                in->node->next_min_buffers = 0;
                        }
                        /* Dynamic resolution change: the event at once, then stall until the client
                         * restarts CAPTURE. */
                        if (in->headers_parsed)
                                in->need_reconfig = !streaming_change;
                        in->last_pending = streaming_change;
                        dec_set_capture_format(in, w, h);
                        in->headers_parsed = true;
                        in->node->stats.source_changes++;
                        if (streaming_change && in->node->cfg.late_source_change)
                                in->event_held = true;
                        else
                                push_event(in, V4L2_EVENT_SOURCE_CHANGE, V4L2_EVENT_SRC_CH_RESOLUTION);
                        if (in->last_pending)
                                continue;
                        if (in->need_reconfig)
                                return;
                }
                if (in->need_reconfig || !cap->streaming || in->stopped)
                        return;
                total = HDR_SIZE + i420_size(w, h);
                if (in->bits_len < total) {
                        if (in->draining && !next_queued(out)) {
                                /* A truncated last frame is dropped at the end of a drain. */
                                in->bits_len = 0;
                                in->n_chunks = 0;
                                continue;
                        }
                        return;
                }
                cb = next_queued(cap);
                if (!cb)
                        return;
                if (!buf_fits(cap, cb)) {
                        memset(cb->bytesused, 0, sizeof(cb->bytesused));
                        buf_done(in, cb, V4L2_BUF_FLAG_ERROR);
                        continue;
                }
                write_picture(cap, cb, in->bits + HDR_SIZE, w, h);
                memcpy(cb->bytesused, cap->psize, sizeof(cb->bytesused));
                cb->timestamp = chunk_ts(in, 0);
                bits_consume(in, total);
                in->node->stats.frames++;
                {
                        uint32_t flags = V4L2_BUF_FLAG_KEYFRAME;

                        if (in->node->corrupt_next) {
                                flags |= V4L2_BUF_FLAG_ERROR;
                                in->node->corrupt_next = false;
                        }
                        if (in->draining && in->node->cfg.last_with_frame && !next_queued(out) &&
                            in->bits_len < HDR_SIZE) {
                                flags |= V4L2_BUF_FLAG_LAST;
                                in->draining = false;
                                in->stopped = true;
                                push_event(in, V4L2_EVENT_EOS, 0);
                        }
                        buf_done(in, cb, flags);
                }
        }
}

static void enc_run(FakeInstance *in) {
        FakeQueue *out = &in->q[0], *cap = &in->q[1];
        _cleanup_free_ uint8_t *tmp = NULL;

        while (out->streaming && cap->streaming && !in->stopped) {
                FakeBuf *ob = next_queued(out), *cb = next_queued(cap);
                /* The stream has the visible (cropped) size, as vicodec's headers do. */
                unsigned w = in->crop_w ? MIN(in->crop_w, out->width) : out->width,
                         h = in->crop_h ? MIN(in->crop_h, out->height) : out->height;
                size_t total = HDR_SIZE + i420_size(w, h);
                uint32_t flags;

                if (!cb)
                        return;
                if (!ob) {
                        if (in->draining) {
                                emit_last(in, cb);
                                in->draining = false;
                                in->stopped = true;
                                push_event(in, V4L2_EVENT_EOS, 0);
                        }
                        return;
                }
                if (cb->length[0] < total) {
                        memset(cb->bytesused, 0, sizeof(cb->bytesused));
                        buf_done(in, cb, V4L2_BUF_FLAG_ERROR);
                        buf_done(in, ob, V4L2_BUF_FLAG_ERROR);
                        continue;
                }
                if (!tmp) {
                        tmp = malloc(i420_size(w, h));
                        if (!tmp)
                                return;
                }
                read_picture(out, ob, tmp, w, h);
                write_header(buf_data(cap, cb), w, h, in->seq++);
                memcpy(buf_data(cap, cb) + HDR_SIZE, tmp, i420_size(w, h));
                cb->bytesused[0] = (uint32_t) total;
                cb->timestamp = ob->timestamp;
                flags = in->first_frame || in->force_key ? V4L2_BUF_FLAG_KEYFRAME : V4L2_BUF_FLAG_PFRAME;
                in->first_frame = in->force_key = false;
                buf_done(in, ob, 0);
                in->node->stats.frames++;
                if (in->draining && in->node->cfg.last_with_frame && !next_queued(out)) {
                        flags |= V4L2_BUF_FLAG_LAST;
                        in->draining = false;
                        in->stopped = true;
                        push_event(in, V4L2_EVENT_EOS, 0);
                }
                buf_done(in, cb, flags);
        }
}

static void run(FakeInstance *in) {
        if (is_enc(in))
                enc_run(in);
        else
                dec_run(in);
        update_poll(in);
}

/* ---- ioctls --------------------------------------------------------------------------------------- */

static int queue_index(FakeInstance *in, uint32_t type) {
        if (mplane(in)) {
                if (type == V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE)
                        return 0;
                if (type == V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE)
                        return 1;
        } else {
                if (type == V4L2_BUF_TYPE_VIDEO_OUTPUT)
                        return 0;
                if (type == V4L2_BUF_TYPE_VIDEO_CAPTURE)
                        return 1;
        }
        return -EINVAL;
}

static bool queue_busy(FakeQueue *q) {
        return q->count > 0;
}

static const uint32_t dec_out_formats[] = { V4L2_PIX_FMT_FWHT };
static const uint32_t dec_cap_formats[] = { V4L2_PIX_FMT_YUV420, V4L2_PIX_FMT_NV12 };
static const uint32_t enc_out_formats[] = { V4L2_PIX_FMT_YUV420, V4L2_PIX_FMT_NV12 };
static const uint32_t enc_cap_formats[] = { V4L2_PIX_FMT_FWHT, V4L2_PIX_FMT_H264 };
/* With FakeV4l2Config.mem_planes: one memory plane per colour plane, as s5p-mfc or some Qualcomm parts. */
static const uint32_t raw_m_formats[] = { V4L2_PIX_FMT_YUV420M, V4L2_PIX_FMT_NV12M };

static const uint32_t *formats_of(FakeInstance *in, int qi, unsigned *n) {
        if (in->node->cfg.mem_planes && in->node->cfg.mplane && qi == (is_enc(in) ? 0 : 1)) {
                *n = ELEMENTSOF(raw_m_formats);
                return raw_m_formats;
        }
        if (is_enc(in) && qi == 0) {
                *n = ELEMENTSOF(enc_out_formats);
                return enc_out_formats;
        }
        if (is_enc(in)) {
                *n = ELEMENTSOF(enc_cap_formats);
                return enc_cap_formats;
        }
        if (qi == 0) {
                *n = ELEMENTSOF(dec_out_formats);
                return dec_out_formats;
        }
        *n = ELEMENTSOF(dec_cap_formats);
        return dec_cap_formats;
}

static bool format_supported(FakeInstance *in, int qi, uint32_t fourcc) {
        unsigned n;
        const uint32_t *l = formats_of(in, qi, &n);

        for (unsigned i = 0; i < n; i++)
                if (l[i] == fourcc)
                        return true;
        return false;
}

static bool queue_is_coded(FakeInstance *in, int qi) {
        return (qi == 0) != is_enc(in);
}

static void fill_fmt(FakeInstance *in, FakeQueue *q, struct v4l2_format *f) {
        uint32_t type = f->type;

        memset(&f->fmt, 0, sizeof(f->fmt));
        f->type = type;
        if (mplane(in)) {
                f->fmt.pix_mp.pixelformat = q->fourcc;
                f->fmt.pix_mp.width = q->width;
                f->fmt.pix_mp.height = q->height;
                f->fmt.pix_mp.field = V4L2_FIELD_NONE;
                f->fmt.pix_mp.num_planes = (uint8_t) q->np;
                for (unsigned p = 0; p < q->np; p++) {
                        f->fmt.pix_mp.plane_fmt[p].bytesperline = q->pbpl[p];
                        f->fmt.pix_mp.plane_fmt[p].sizeimage = q->psize[p];
                }
        } else {
                f->fmt.pix.pixelformat = q->fourcc;
                f->fmt.pix.width = q->width;
                f->fmt.pix.height = q->height;
                f->fmt.pix.field = V4L2_FIELD_NONE;
                f->fmt.pix.bytesperline = q->bpl;
                f->fmt.pix.sizeimage = q->sizeimage;
        }
}

static int do_g_fmt(FakeInstance *in, struct v4l2_format *f) {
        int qi = queue_index(in, f->type);

        if (qi < 0)
                return qi;
        /* dev-decoder.rst: the CAPTURE format is not known before the stream's headers are parsed. */
        if (!in->q[qi].fmt_valid)
                return -EINVAL;
        fill_fmt(in, &in->q[qi], f);
        return 0;
}

static int do_s_fmt(FakeInstance *in, struct v4l2_format *f) {
        int qi = queue_index(in, f->type);
        FakeQueue *q;
        uint32_t fourcc, w, h, sizeimage;

        if (qi < 0)
                return qi;
        q = &in->q[qi];
        if (queue_busy(q))
                return -EBUSY;
        fourcc = mplane(in) ? f->fmt.pix_mp.pixelformat : f->fmt.pix.pixelformat;
        w = mplane(in) ? f->fmt.pix_mp.width : f->fmt.pix.width;
        h = mplane(in) ? f->fmt.pix_mp.height : f->fmt.pix.height;
        sizeimage = mplane(in) ? f->fmt.pix_mp.plane_fmt[0].sizeimage : f->fmt.pix.sizeimage;
        if (!format_supported(in, qi, fourcc)) {
                unsigned n;

                fourcc = formats_of(in, qi, &n)[0]; /* drivers adjust, they do not refuse */
        }
        if (queue_is_coded(in, qi)) {
                q->fourcc = fourcc;
                if (!is_enc(in)) {
                        q->width = w;
                        q->height = h;
                        coded_layout(q, CLAMP_SIZE(sizeimage));
                } else {
                        q->width = in->q[0].width;
                        q->height = in->q[0].height;
                        coded_layout(q, MAX(CLAMP_SIZE(sizeimage),
                                            (uint32_t) (HDR_SIZE + i420_size(q->width, q->height))));
                }
                q->fmt_valid = true;
        } else if (!is_enc(in)) {
                /* Decoder CAPTURE: the client picks the pixel format, the stream the size. */
                if (!in->headers_parsed)
                        return -EINVAL;
                raw_layout(q, q->width, q->height, fourcc);
        } else {
                w = CLAMP_DIM(w);
                h = CLAMP_DIM(h);
                raw_layout(q, w, h, fourcc);
                q->fmt_valid = true;
                in->crop_w = w; /* S_FMT resets the crop to the whole picture */
                in->crop_h = h;
                in->q[1].width = w;
                in->q[1].height = h;
                coded_layout(&in->q[1], MAX(in->q[1].sizeimage, (uint32_t) (HDR_SIZE + i420_size(w, h))));
        }
        fill_fmt(in, q, f);
        return 0;
}

static int do_reqbufs(FakeInstance *in, struct v4l2_requestbuffers *r) {
        int qi = queue_index(in, r->type);
        FakeQueue *q;

        if (qi < 0)
                return qi;
        q = &in->q[qi];
        if (r->memory != V4L2_MEMORY_MMAP && !(r->memory == V4L2_MEMORY_USERPTR && in->node->cfg.userptr))
                return -EINVAL;
        if (q->streaming)
                return -EBUSY;
        for (unsigned i = 0; i < q->count; i++)
                if (q->bufs[i].maps > 0)
                        return -EBUSY; /* vb2: memory still mapped */
        if (qi == 1 && !q->fmt_valid && r->count > 0)
                return -EINVAL;
        queue_release(q);
        if (r->count == 0)
                return 0;
        r->count = MIN(r->count, (uint32_t) FAKE_MAX_BUFS);
        if (qi == 1 && !is_enc(in))
                r->count = MAX(r->count, in->node->cfg.min_buffers);
        q->memory = r->memory;
        q->count = r->count;
        memcpy(q->alloc_size, q->psize, sizeof(q->alloc_size));
        for (unsigned i = 0; i < q->count; i++) {
                FakeBuf *b = &q->bufs[i];

                b->mem_len = 0;
                for (unsigned p = 0; p < q->np; p++) {
                        /* Each plane page-aligned, as separately mappable memory. */
                        b->length[p] = q->psize[p];
                        b->plane_off[p] = b->mem_len;
                        b->mem_len += ALIGN_TO((size_t) q->psize[p], (size_t) 4096);
                }
                if (q->memory == V4L2_MEMORY_MMAP) {
                        b->mem = mmap(NULL, b->mem_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                                      -1, 0);
                        if (b->mem == MAP_FAILED) {
                                b->mem = NULL;
                                queue_release(q);
                                return -ENOMEM;
                        }
                }
        }
        return 0;
}

static int get_buf(FakeInstance *in, struct v4l2_buffer *vb, FakeQueue **ret_q, FakeBuf **ret_b) {
        int qi = queue_index(in, vb->type);
        FakeQueue *q;

        if (qi < 0)
                return qi;
        q = &in->q[qi];
        if (vb->index >= q->count)
                return -EINVAL;
        if (mplane(in) && (!vb->m.planes || vb->length < q->np))
                return -EINVAL;
        *ret_q = q;
        *ret_b = &q->bufs[vb->index];
        return qi;
}

static void fill_buf(FakeInstance *in, int qi, FakeQueue *q, FakeBuf *b, struct v4l2_buffer *vb) {
        vb->memory = q->memory;
        vb->flags = b->flags;
        vb->timestamp = b->timestamp;
        vb->field = V4L2_FIELD_NONE;
        if (mplane(in)) {
                vb->length = q->np;
                for (unsigned i = 0; i < q->np; i++) {
                        struct v4l2_plane *p = &vb->m.planes[i];

                        p->length = b->length[i];
                        p->bytesused = b->bytesused[i];
                        p->data_offset = 0;
                        if (q->memory == V4L2_MEMORY_MMAP)
                                p->m.mem_offset = (uint32_t) ((qi << 24) | (vb->index << OFFSET_SHIFT) |
                                                              (i << PLANE_SHIFT));
                        else
                                p->m.userptr = b->userptr[i];
                }
        } else {
                vb->length = b->length[0];
                vb->bytesused = b->bytesused[0];
                if (q->memory == V4L2_MEMORY_MMAP)
                        vb->m.offset = (uint32_t) ((qi << 24) | (vb->index << OFFSET_SHIFT));
                else
                        vb->m.userptr = b->userptr[0];
        }
}

static int do_querybuf(FakeInstance *in, struct v4l2_buffer *vb) {
        FakeQueue *q;
        FakeBuf *b;
        int qi = get_buf(in, vb, &q, &b);

        if (qi < 0)
                return qi;
        fill_buf(in, qi, q, b, vb);
        return 0;
}

/* vicodec's buf_queue(): with a queue stopped, the first valid header of the stream raises SOURCE_CHANGE
 * at once and sets the CAPTURE format from it, also when it repeats the format already set (after a
 * seek), and then never again until the next STREAMOFF(OUTPUT). No LAST buffer ends the old geometry
 * then: with CAPTURE streaming, a new size is decoded into the old buffers (which fail). Before the
 * first format, or with CAPTURE stopped, a new size goes the usual way (dec_run()). */
static void dec_queued_bitstream(FakeInstance *in, FakeQueue *q, FakeBuf *b) {
        const uint8_t *d = buf_data(q, b);
        unsigned w, h;

        if (in->first_source_change_sent || (in->q[0].streaming && in->q[1].streaming) ||
            b->bytesused[0] < HDR_SIZE || memcmp(d, "VVNF", 4) != 0)
                return;
        in->first_source_change_sent = true;
        w = get_le16(d + 4);
        h = get_le16(d + 6);
        if (!in->headers_parsed || w < 2 || h < 2 || w > FAKE_MAX_DIM || h > FAKE_MAX_DIM || w % 2 || h % 2)
                return;
        if (w != in->q[1].width || h != in->q[1].height) {
                if (!in->q[1].streaming)
                        return;
                dec_set_capture_format(in, w, h);
        }
        in->node->stats.source_changes++;
        push_event(in, V4L2_EVENT_SOURCE_CHANGE, V4L2_EVENT_SRC_CH_RESOLUTION);
}

static int do_qbuf(FakeInstance *in, struct v4l2_buffer *vb) {
        FakeQueue *q;
        FakeBuf *b;
        int qi = get_buf(in, vb, &q, &b);
        uint32_t bytesused[FAKE_MAX_PLANES] = {}, length[FAKE_MAX_PLANES] = {};
        unsigned long userptr[FAKE_MAX_PLANES] = {};

        if (qi < 0)
                return qi;
        if (vb->memory != q->memory || b->state != BUF_DEQUEUED)
                return -EINVAL;
        if (mplane(in)) {
                if (vb->length != q->np)
                        return -EINVAL;
                for (unsigned p = 0; p < q->np; p++) {
                        bytesused[p] = vb->m.planes[p].bytesused;
                        length[p] = vb->m.planes[p].length;
                        userptr[p] = vb->m.planes[p].m.userptr;
                }
        } else {
                bytesused[0] = vb->bytesused;
                length[0] = vb->length;
                userptr[0] = vb->m.userptr;
        }
        if (q->memory == V4L2_MEMORY_USERPTR) {
                for (unsigned p = 0; p < q->np; p++)
                        if (!userptr[p] || length[p] < q->alloc_size[p])
                                return -EINVAL;
                /* Like vb2-dma-contig on memory that is not physically contiguous. */
                if (in->node->cfg.userptr_qbuf_fails)
                        return -EFAULT;
                memcpy(b->userptr, userptr, sizeof(userptr));
                memcpy(b->length, length, sizeof(length));
                in->node->stats.qbuf_userptr++;
        } else
                in->node->stats.qbuf_mmap++;
        memset(b->bytesused, 0, sizeof(b->bytesused));
        if (qi == 0) {
                for (unsigned p = 0; p < q->np; p++) {
                        if (bytesused[p] > b->length[p])
                                return -EINVAL;
                        /* vb2: bytesused 0 on an OUTPUT buffer means the whole buffer (deprecated). */
                        b->bytesused[p] = bytesused[p] ? bytesused[p] : b->length[p];
                }
                b->timestamp = vb->timestamp;
        }
        b->flags = 0;
        b->state = BUF_QUEUED;
        b->done_seq = ++in->done_seq;
        if (qi == 0 && !is_enc(in))
                dec_queued_bitstream(in, q, b);
        run(in);
        return 0;
}

static int do_dqbuf(FakeInstance *in, struct v4l2_buffer *vb) {
        int qi = queue_index(in, vb->type);
        FakeQueue *q;
        FakeBuf *best = NULL;

        if (qi < 0)
                return qi;
        q = &in->q[qi];
        if (vb->memory != q->memory || (mplane(in) && (!vb->m.planes || vb->length < 1)))
                return -EINVAL;
        if (!q->streaming)
                return -EINVAL;
        if (qi == 1 && q->last_dequeued)
                return -EPIPE;
        for (unsigned i = 0; i < q->count; i++)
                if (q->bufs[i].state == BUF_DONE && (!best || q->bufs[i].done_seq < best->done_seq))
                        best = &q->bufs[i];
        if (!best)
                return -EAGAIN;
        vb->index = (uint32_t) (best - q->bufs);
        best->state = BUF_DEQUEUED;
        fill_buf(in, qi, q, best, vb);
        if (qi == 1 && (best->flags & V4L2_BUF_FLAG_LAST)) {
                q->last_dequeued = true;
                if (in->event_held) {
                        in->event_held = false;
                        push_event(in, V4L2_EVENT_SOURCE_CHANGE, V4L2_EVENT_SRC_CH_RESOLUTION);
                }
        }
        update_poll(in);
        return 0;
}

static int do_streamon(FakeInstance *in, const int *type) {
        int qi = queue_index(in, (uint32_t) *type);
        FakeQueue *q;

        if (qi < 0)
                return qi;
        q = &in->q[qi];
        if (q->count == 0)
                return -EINVAL;
        if (q->streaming)
                return 0;
        q->streaming = true;
        if (qi == 1) {
                q->last_dequeued = false;
                /* CAPTURE restarted: resumes after a drain, or completes a resolution change. */
                in->stopped = false;
                in->need_reconfig = false;
                if (is_enc(in))
                        in->first_frame = true;
        }
        run(in);
        return 0;
}

static int do_streamoff(FakeInstance *in, const int *type) {
        int qi = queue_index(in, (uint32_t) *type);
        FakeQueue *q;

        if (qi < 0)
                return qi;
        q = &in->q[qi];
        for (unsigned i = 0; i < q->count; i++) {
                q->bufs[i].state = BUF_DEQUEUED;
                q->bufs[i].flags = 0;
        }
        q->streaming = false;
        q->last_dequeued = false;
        in->node->stats.streamoff[qi]++;
        if (qi == 1 && in->last_pending) {
                /* CAPTURE stopped before the LAST buffer: nothing to end, the client reconfigures. */
                in->last_pending = false;
                in->need_reconfig = true;
        }
        if (qi == 1) {
                /* v4l2-mem2mem (v4l2_m2m_update_stop_streaming_state): stopping CAPTURE ends a drain in
                 * progress without a LAST buffer. */
                in->draining = false;
        }
        if (qi == 1 && in->event_held) {
                in->event_held = false;
                push_event(in, V4L2_EVENT_SOURCE_CHANGE, V4L2_EVENT_SRC_CH_RESOLUTION);
        }
        if (qi == 0) {
                /* Seek: the decoder forgets the bitstream; a drain is aborted. */
                in->first_source_change_sent = false;
                in->bits_len = 0;
                in->n_chunks = 0;
                in->draining = false;
                in->bad_stream = false;
        }
        update_poll(in);
        return 0;
}

static int do_stop_cmd(FakeInstance *in, uint32_t cmd, bool enc) {
        if (enc != is_enc(in))
                return -ENOTTY;
        /* The START and STOP codes are the same numbers for both ioctls. */
        _Static_assert(V4L2_ENC_CMD_START == V4L2_DEC_CMD_START && V4L2_ENC_CMD_STOP == V4L2_DEC_CMD_STOP,
                       "");
        if (cmd == V4L2_DEC_CMD_START) {
                in->stopped = false;
                in->q[1].last_dequeued = false;
                run(in);
                return 0;
        }
        if (cmd != V4L2_DEC_CMD_STOP)
                return -EINVAL;
        if (in->draining)
                return -EBUSY;
        /* Like vicodec: with a queue not streaming there is nothing to drain and STOP does nothing. */
        if (!in->q[0].streaming || !in->q[1].streaming)
                return 0;
        in->draining = true;
        run(in);
        return 0;
}

static int do_subscribe(FakeInstance *in, const struct v4l2_event_subscription *sub) {
        if (sub->type == V4L2_EVENT_SOURCE_CHANGE && !is_enc(in))
                in->sub_source_change = true;
        else if (sub->type == V4L2_EVENT_EOS)
                in->sub_eos = true;
        else
                return -EINVAL;
        return 0;
}

static int do_dqevent(FakeInstance *in, struct v4l2_event *ev) {
        if (in->n_events == 0)
                return -ENOENT;
        *ev = in->events[0];
        in->n_events--;
        memmove(in->events, in->events + 1, in->n_events * sizeof(in->events[0]));
        ev->pending = in->n_events;
        update_poll(in);
        return 0;
}

typedef struct CtrlDesc {
        uint32_t id;
        uint32_t type;
        int32_t min, max, def;
        uint64_t skip; /* menu items the "driver" does not have */
        bool enc, dec;
} CtrlDesc;

static const CtrlDesc ctrls[] = {
        { V4L2_CID_MIN_BUFFERS_FOR_CAPTURE, V4L2_CTRL_TYPE_INTEGER, 1, 32, 2, 0, false, true },
        { V4L2_CID_MPEG_VIDEO_BITRATE, V4L2_CTRL_TYPE_INTEGER, 1000, 100000000, 1000000, 0, true, false },
        { V4L2_CID_MPEG_VIDEO_BITRATE_PEAK, V4L2_CTRL_TYPE_INTEGER, 1000, 100000000, 2000000, 0, true,
          false },
        { V4L2_CID_MPEG_VIDEO_BITRATE_MODE, V4L2_CTRL_TYPE_MENU, 0, 1, 0, 0, true, false },
        { V4L2_CID_MPEG_VIDEO_H264_PROFILE, V4L2_CTRL_TYPE_MENU, 0, V4L2_MPEG_VIDEO_H264_PROFILE_HIGH, 0,
          (1u << V4L2_MPEG_VIDEO_H264_PROFILE_CONSTRAINED_BASELINE) |
                  (1u << V4L2_MPEG_VIDEO_H264_PROFILE_EXTENDED),
          true, false },
        { V4L2_CID_MPEG_VIDEO_H264_LEVEL, V4L2_CTRL_TYPE_MENU, 0, V4L2_MPEG_VIDEO_H264_LEVEL_4_0,
          V4L2_MPEG_VIDEO_H264_LEVEL_3_0, 1u << V4L2_MPEG_VIDEO_H264_LEVEL_1B, true, false },
        { V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME, V4L2_CTRL_TYPE_BUTTON, 0, 0, 0, 0, true, false },
        { V4L2_CID_MPEG_VIDEO_PREPEND_SPSPPS_TO_IDR, V4L2_CTRL_TYPE_BOOLEAN, 0, 1, 0, 0, true, false },
};

static const CtrlDesc *find_ctrl(FakeInstance *in, uint32_t id) {
        for (size_t i = 0; i < ELEMENTSOF(ctrls); i++)
                if (ctrls[i].id == id && (is_enc(in) ? ctrls[i].enc : ctrls[i].dec))
                        return &ctrls[i];
        return NULL;
}

static int32_t *ctrl_value(FakeInstance *in, uint32_t id) {
        switch (id) {
        case V4L2_CID_MPEG_VIDEO_BITRATE:
                return &in->ctrl_bitrate;
        case V4L2_CID_MPEG_VIDEO_BITRATE_PEAK:
                return &in->ctrl_peak;
        case V4L2_CID_MPEG_VIDEO_BITRATE_MODE:
                return &in->ctrl_mode;
        case V4L2_CID_MPEG_VIDEO_H264_PROFILE:
                return &in->ctrl_profile;
        case V4L2_CID_MPEG_VIDEO_H264_LEVEL:
                return &in->ctrl_level;
        case V4L2_CID_MPEG_VIDEO_PREPEND_SPSPPS_TO_IDR:
                return &in->ctrl_prepend;
        default:
                return NULL;
        }
}

static int do_queryctrl(FakeInstance *in, struct v4l2_queryctrl *qc) {
        const CtrlDesc *c = find_ctrl(in, qc->id);

        if (!c)
                return -EINVAL;
        memset(qc->name, 0, sizeof(qc->name));
        qc->type = c->type;
        qc->minimum = c->min;
        qc->maximum = c->max;
        qc->step = 1;
        qc->default_value = c->def;
        qc->flags = c->id == V4L2_CID_MIN_BUFFERS_FOR_CAPTURE
                            ? V4L2_CTRL_FLAG_READ_ONLY | V4L2_CTRL_FLAG_VOLATILE
                            : 0;
        if (c->type == V4L2_CTRL_TYPE_BUTTON)
                qc->flags |= V4L2_CTRL_FLAG_WRITE_ONLY;
        return 0;
}

static int do_querymenu(FakeInstance *in, struct v4l2_querymenu *qm) {
        const CtrlDesc *c = find_ctrl(in, qm->id);

        if (!c || c->type != V4L2_CTRL_TYPE_MENU)
                return -EINVAL;
        if ((int64_t) qm->index < c->min || (int64_t) qm->index > c->max ||
            (c->skip & (UINT64_C(1) << qm->index)))
                return -EINVAL;
        memset(qm->name, 0, sizeof(qm->name));
        qm->name[0] = 'x';
        return 0;
}

static int do_g_ctrl(FakeInstance *in, struct v4l2_control *c) {
        const CtrlDesc *d = find_ctrl(in, c->id);
        int32_t *v;

        if (!d)
                return -EINVAL;
        if (d->type == V4L2_CTRL_TYPE_BUTTON)
                return -EACCES;
        if (d->id == V4L2_CID_MIN_BUFFERS_FOR_CAPTURE) {
                c->value = (int32_t) in->node->cfg.min_buffers;
                return 0;
        }
        v = ctrl_value(in, c->id);
        c->value = v ? *v : 0;
        return 0;
}

static void remember_control(FakeV4l2 *f, uint32_t id, int32_t value) {
        for (unsigned i = 0; i < f->n_applied; i++)
                if (f->applied[i].id == id) {
                        f->applied[i].value = value;
                        return;
                }
        if (f->n_applied < ELEMENTSOF(f->applied)) {
                f->applied[f->n_applied].id = id;
                f->applied[f->n_applied++].value = value;
        }
}

static int do_s_ctrl(FakeInstance *in, struct v4l2_control *c) {
        const CtrlDesc *d = find_ctrl(in, c->id);
        int32_t *v;

        if (!d)
                return -EINVAL;
        if (d->id == V4L2_CID_MIN_BUFFERS_FOR_CAPTURE)
                return -EACCES;
        if (d->type == V4L2_CTRL_TYPE_BUTTON) {
                in->force_key = true;
                return 0;
        }
        if (c->value < d->min || c->value > d->max)
                return -ERANGE;
        if (d->type == V4L2_CTRL_TYPE_MENU && (d->skip & (UINT64_C(1) << c->value)))
                return -EINVAL;
        v = ctrl_value(in, c->id);
        if (v)
                *v = c->value;
        remember_control(in->node, c->id, c->value);
        return 0;
}

static int do_enum_fmt(FakeInstance *in, struct v4l2_fmtdesc *fd) {
        int qi = queue_index(in, fd->type);
        const uint32_t *l;
        unsigned n;

        if (qi < 0)
                return qi;
        l = formats_of(in, qi, &n);
        if (fd->index >= n)
                return -EINVAL;
        fd->pixelformat = l[fd->index];
        fd->flags = queue_is_coded(in, qi) ? V4L2_FMT_FLAG_COMPRESSED : 0;
        return 0;
}

static bool known_fourcc(FakeInstance *in, uint32_t fourcc) {
        return format_supported(in, 0, fourcc) || format_supported(in, 1, fourcc);
}

static int do_enum_framesizes(FakeInstance *in, struct v4l2_frmsizeenum *fs) {
        if (!known_fourcc(in, fs->pixel_format) || fs->index > 0)
                return -EINVAL;
        fs->type = V4L2_FRMSIZE_TYPE_STEPWISE;
        fs->stepwise = (struct v4l2_frmsize_stepwise){ 2, FAKE_MAX_DIM, 2, 2, FAKE_MAX_DIM, 2 };
        return 0;
}

static int do_enum_frameintervals(FakeInstance *in, struct v4l2_frmivalenum *fi) {
        static const uint32_t fps[] = { 30, 60 };

        if (!known_fourcc(in, fi->pixel_format) || fi->index >= ELEMENTSOF(fps) ||
            fi->width > FAKE_MAX_DIM || fi->height > FAKE_MAX_DIM)
                return -EINVAL;
        fi->type = V4L2_FRMIVAL_TYPE_DISCRETE;
        fi->discrete.numerator = 1;
        fi->discrete.denominator = fps[fi->index];
        return 0;
}

static int do_g_selection(FakeInstance *in, struct v4l2_selection *s) {
        FakeQueue *cap = &in->q[1];

        /* The selection API takes the single-planar types for both APIs. */
        if (is_enc(in) && s->type == V4L2_BUF_TYPE_VIDEO_OUTPUT && s->target == V4L2_SEL_TGT_CROP &&
            in->q[0].fmt_valid) {
                s->r = (struct v4l2_rect){ 0, 0, in->crop_w ? in->crop_w : in->q[0].width,
                                           in->crop_h ? in->crop_h : in->q[0].height };
                return 0;
        }
        if (s->type != V4L2_BUF_TYPE_VIDEO_CAPTURE || is_enc(in) || !cap->fmt_valid)
                return -EINVAL;
        if (s->target != V4L2_SEL_TGT_COMPOSE && s->target != V4L2_SEL_TGT_CROP)
                return -EINVAL;
        s->r = (struct v4l2_rect){ 0, 0, cap->width, cap->height };
        return 0;
}

/* Like vicodec: the encoder's OUTPUT crop only, moved to 0,0 and clamped to the picture. */
static int do_s_selection(FakeInstance *in, struct v4l2_selection *s) {
        FakeQueue *out = &in->q[0];

        if (s->type != V4L2_BUF_TYPE_VIDEO_OUTPUT || !is_enc(in) || s->target != V4L2_SEL_TGT_CROP ||
            !out->fmt_valid)
                return -EINVAL;
        s->r.left = 0;
        s->r.top = 0;
        s->r.width = CLAMP_DIM(MIN(s->r.width, out->width));
        s->r.height = CLAMP_DIM(MIN(s->r.height, out->height));
        in->crop_w = s->r.width;
        in->crop_h = s->r.height;
        return 0;
}

static int do_s_parm(FakeInstance *in, struct v4l2_streamparm *p) {
        int qi = queue_index(in, p->type);

        if (qi != 0 || !is_enc(in))
                return -EINVAL;
        if (p->parm.output.timeperframe.denominator == 0)
                p->parm.output.timeperframe = (struct v4l2_fract){ 1, 30 };
        return 0;
}

static int do_querycap(FakeInstance *in, struct v4l2_capability *c) {
        memset(c, 0, sizeof(*c));
        memcpy(c->driver, "fake-v4l2", 9);
        memcpy(c->card, is_enc(in) ? "fake-enc" : "fake-dec", 8);
        c->device_caps = (mplane(in) ? V4L2_CAP_VIDEO_M2M_MPLANE : V4L2_CAP_VIDEO_M2M) | V4L2_CAP_STREAMING;
        c->capabilities = c->device_caps | V4L2_CAP_DEVICE_CAPS;
        return 0;
}

static int dispatch(FakeInstance *in, unsigned long req, void *arg) {
        switch (req) {
        case VIDIOC_QUERYCAP:
                return do_querycap(in, arg);
        case VIDIOC_ENUM_FMT:
                return do_enum_fmt(in, arg);
        case VIDIOC_ENUM_FRAMESIZES:
                return do_enum_framesizes(in, arg);
        case VIDIOC_ENUM_FRAMEINTERVALS:
                return do_enum_frameintervals(in, arg);
        case VIDIOC_G_FMT:
                return do_g_fmt(in, arg);
        case VIDIOC_S_FMT:
                return do_s_fmt(in, arg);
        case VIDIOC_REQBUFS:
                return do_reqbufs(in, arg);
        case VIDIOC_QUERYBUF:
                return do_querybuf(in, arg);
        case VIDIOC_QBUF:
                return do_qbuf(in, arg);
        case VIDIOC_DQBUF:
                return do_dqbuf(in, arg);
        case VIDIOC_STREAMON:
                return do_streamon(in, arg);
        case VIDIOC_STREAMOFF:
                return do_streamoff(in, arg);
        case VIDIOC_DECODER_CMD:
                return do_stop_cmd(in, ((struct v4l2_decoder_cmd *) arg)->cmd, false);
        case VIDIOC_ENCODER_CMD:
                return do_stop_cmd(in, ((struct v4l2_encoder_cmd *) arg)->cmd, true);
        case VIDIOC_SUBSCRIBE_EVENT:
                return do_subscribe(in, arg);
        case VIDIOC_DQEVENT:
                return do_dqevent(in, arg);
        case VIDIOC_QUERYCTRL:
                return do_queryctrl(in, arg);
        case VIDIOC_QUERYMENU:
                return do_querymenu(in, arg);
        case VIDIOC_G_CTRL:
                return do_g_ctrl(in, arg);
        case VIDIOC_S_CTRL:
                return do_s_ctrl(in, arg);
        case VIDIOC_G_SELECTION:
                return do_g_selection(in, arg);
        case VIDIOC_S_SELECTION:
                return do_s_selection(in, arg);
        case VIDIOC_S_PARM:
                return do_s_parm(in, arg);
        default:
                return -ENOTTY;
        }
}

static int fake_ioctl(void *dev, unsigned long req, void *arg) {
        FakeInstance *in = dev;
        FakeV4l2 *f = in->node;
        int r;

        if (f->vanished)
                return -ENODEV;
        if (f->fail.count > 0 && f->fail.request == req) {
                if (f->fail.skip > 0)
                        f->fail.skip--;
                else {
                        f->fail.count--;
                        return -f->fail.error;
                }
        }
        r = dispatch(in, req, arg);
        if (r < 0 && r != -EAGAIN && r != -ENOENT && r != -EPIPE)
                f->stats.rejected++;
        return r;
}

static void *fake_mmap(void *dev, size_t length, int prot, int flags, off_t offset) {
        FakeInstance *in = dev;
        unsigned qi = (unsigned) (offset >> 24), idx = (unsigned) ((offset >> OFFSET_SHIFT) & 0xff),
                 p = (unsigned) ((offset >> PLANE_SHIFT) & 0xf);
        FakeBuf *b;

        if (in->node->vanished) {
                errno = ENODEV;
                return MAP_FAILED;
        }
        if (qi > 1 || (offset & 0xfff) || idx >= in->q[qi].count || p >= in->q[qi].np ||
            in->q[qi].memory != V4L2_MEMORY_MMAP || !(flags & MAP_SHARED)) {
                errno = EINVAL;
                return MAP_FAILED;
        }
        b = &in->q[qi].bufs[idx];
        if (length == 0 || length > ALIGN_TO((size_t) b->length[p], (size_t) 4096)) {
                errno = EINVAL;
                return MAP_FAILED;
        }
        b->maps++;
        in->node->stats.active_maps++;
        return b->mem + b->plane_off[p];
}

static int fake_munmap(void *dev, void *addr, size_t length) {
        FakeInstance *in = dev;

        for (unsigned qi = 0; qi < 2; qi++)
                for (unsigned i = 0; i < in->q[qi].count; i++) {
                        FakeBuf *b = &in->q[qi].bufs[i];

                        for (unsigned p = 0; p < in->q[qi].np; p++)
                                if (b->mem && b->mem + b->plane_off[p] == addr && b->maps > 0) {
                                        b->maps--;
                                        in->node->stats.active_maps--;
                                        return 0;
                                }
                }
        return -EINVAL;
}

static int fake_poll_fd(void *dev, uint32_t *ret_events) {
        FakeInstance *in = dev;

        *ret_events = EPOLLIN;
        return in->efd;
}

const V4l2DeviceOps fake_v4l2_ops = {
        .open = fake_open,
        .close = fake_close,
        .ioctl = fake_ioctl,
        .mmap = fake_mmap,
        .munmap = fake_munmap,
        .poll_fd = fake_poll_fd,
};

void fake_v4l2_fail_ioctl(FakeV4l2 *f, unsigned long request, int error, unsigned skip, unsigned count) {
        f->fail = (FailRule){
                .request = request, .error = error < 0 ? -error : error, .skip = skip, .count = count
        };
}

void fake_v4l2_corrupt_next_frame(FakeV4l2 *f) {
        f->corrupt_next = true;
}

const FakeV4l2Stats *fake_v4l2_stats(FakeV4l2 *f) {
        return &f->stats;
}

int fake_v4l2_get_control(FakeV4l2 *f, uint32_t id, int32_t *ret) {
        for (unsigned i = 0; i < f->n_applied; i++)
                if (f->applied[i].id == id) {
                        *ret = f->applied[i].value;
                        return 0;
                }
        return -ENOENT;
}
