/* SPDX-License-Identifier: GPL-2.0-or-later */

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>

#include <linux/videodev2.h>
#include <systemd/sd-event.h>

#include "backend/v4l2/v4l2-formats.h"
#include "backend/v4l2/v4l2.h"
#include "common/iov.h"
#include "common/log.h"
#include "common/macro.h"

#define MAX_SLOTS 32 /* VIDEO_MAX_FRAME */
#define INPUT_SLOTS 8
#define MAX_STREAMS 32
#define TS_RING 128 /* input timestamps remembered for the outputs made from them */
#define MAX_ENUM 64

typedef struct V4l2Backend {
        Backend base;
        const V4l2DeviceOps *ops;
        void *node;
        VideoRole role;
        bool mplane;
        bool force_copy;
        sd_event *event;
        VideoCaps caps;
        uint32_t fourcc[_VIDEO_QUEUE_MAX][VIDEO_MAX_FORMATS]; /* the device's fourcc for caps.formats */
        unsigned n_streams;
} V4l2Backend;

typedef struct Slot {
        VideoBuffer *buf; /* NULL: free */
        void *map[VIDEO_MAX_PLANES];
        size_t map_len[VIDEO_MAX_PLANES];
        void *bounce[VIDEO_MAX_PLANES]; /* USERPTR through a host copy (plane not one host range) */
        size_t bounce_len[VIDEO_MAX_PLANES];
        bool copy; /* data goes through map[] or bounce[] */
} Slot;

/* A FIFO of VideoBuffers chained through backend_data, which is ours while we hold the buffer. */
typedef struct BufList {
        VideoBuffer *head, *tail;
} BufList;

typedef struct Queue {
        uint32_t type;   /* V4L2 buffer type */
        uint32_t memory; /* 0: no buffers allocated */
        bool streaming;
        unsigned n_slots, n_queued;
        unsigned n_mem_planes;
        uint32_t mem_plane_size[VIDEO_MAX_PLANES];
        Slot slots[MAX_SLOTS];
        BufList pending; /* held, waiting for a free slot */
        bool logged_memory;
        bool no_userptr; /* the device took USERPTR buffers at REQBUFS but refused them at QBUF */
} Queue;

typedef enum EvType {
        EV_BUFFER,
        EV_FORMAT,
        EV_DRAIN,
        EV_CLEAR,
        EV_ERROR,
} EvType;

typedef struct Ev {
        EvType type;
        VideoBuffer *buf;
        VideoBufferResult res;
        int arg;
        struct Ev *next;
} Ev;

typedef enum CaptureState {
        CAP_UNKNOWN,   /* decoder: no format from the stream yet */
        CAP_KNOWN,     /* format known, capture queue not set up for it */
        CAP_READY,     /* capture allocated for the current format */
        CAP_RESCHANGE, /* decoder: source change seen while streaming, waiting for the LAST buffer */
} CaptureState;

typedef enum DrainState {
        DRAIN_NONE,
        DRAIN_WAIT_INPUT, /* STOP goes out once every held input is on the device */
        DRAIN_WAIT_LAST,  /* STOP sent, waiting for the buffer flagged LAST */
        DRAIN_NEED_EOS,   /* an empty EOS completion goes to the next output buffer */
} DrainState;

typedef struct V4l2Stream {
        BackendStream base;
        V4l2Backend *b;
        void *dev;
        const BackendStreamCallbacks *cb;
        void *userdata;
        uint32_t coded_format;
        uint32_t raw_fourcc; /* decoder: the output format the guest chose */
        VideoParams params[_VIDEO_QUEUE_MAX];
        Queue q[_VIDEO_QUEUE_MAX]; /* INPUT: V4L2 OUTPUT queue; OUTPUT: V4L2 CAPTURE queue */
        CaptureState cap;
        DrainState drain;
        BufList stale;        /* decoder output buffers queued before a format change, held until clear */
        bool await_clear;     /* decoder: a format change caught output buffers; the guest clears next */
        bool out_since_clear; /* decoder: output buffers came since the last clear(OUTPUT) */
        bool in_fed;          /* input went to the device since the stream began or was cleared */
        struct v4l2_format cap_fmt; /* decoder: the capture format the output params come from */
        struct v4l2_rect cap_compose;
        bool broken;
        bool events_subscribed;
        sd_event_source *io, *defer, *retry;
        uint64_t retry_usec; /* back-off while the node polls EPOLLERR (see on_io()) */
        uint32_t io_events;
        Ev *ev_head, *ev_tail;
        bool dispatching, freed;
        uint64_t ts_cookie;
        struct {
                uint64_t cookie, timestamp;
        } ts[TS_RING];
} V4l2Stream;

static bool is_decoder(V4l2Stream *s) {
        return s->b->role == VIDEO_ROLE_DECODER;
}

/* The device's own fourcc for a format of a queue (NV12M on a device that has no NV12, say). */
static uint32_t fourcc_for(V4l2Backend *b, VideoQueue q, uint32_t format) {
        for (unsigned i = 0; i < b->caps.n_formats[q]; i++)
                if (b->caps.formats[q][i].format == format)
                        return b->fourcc[q][i];
        return v4l2_fourcc_from_format(format);
}

static int xioctl(V4l2Stream *s, unsigned long req, void *arg) {
        int r = s->b->ops->ioctl(s->dev, req, arg);

        if (r < 0 && r != -EAGAIN && r != -ENOENT && r != -EPIPE)
                log_debug_errno(r, "V4L2 ioctl 0x%08lx failed: %m", req);
        return r;
}

/* ---- buffer lists and deferred callbacks ---------------------------------------------------------- */

static void buflist_push(BufList *l, VideoBuffer *buf) {
        buf->backend_data = NULL;
        if (l->tail)
                l->tail->backend_data = buf;
        else
                l->head = buf;
        l->tail = buf;
}

static void buflist_push_front(BufList *l, VideoBuffer *buf) {
        buf->backend_data = l->head;
        l->head = buf;
        if (!l->tail)
                l->tail = buf;
}

static VideoBuffer *buflist_pop(BufList *l) {
        VideoBuffer *buf = l->head;

        if (!buf)
                return NULL;
        l->head = buf->backend_data;
        if (!l->head)
                l->tail = NULL;
        buf->backend_data = NULL;
        return buf;
}

static void
stream_post(V4l2Stream *s, EvType type, VideoBuffer *buf, const VideoBufferResult *res, int arg) {
        Ev *e = calloc(1, sizeof(*e));

        if (!e) {
                log_oom();
                return;
        }
        e->type = type;
        e->buf = buf;
        if (res)
                e->res = *res;
        e->arg = arg;
        if (s->ev_tail)
                s->ev_tail->next = e;
        else
                s->ev_head = e;
        s->ev_tail = e;
        (void) sd_event_source_set_enabled(s->defer, SD_EVENT_ONESHOT);
}

static void
post_buffer(V4l2Stream *s, VideoBuffer *buf, uint32_t flags, uint64_t ts, const uint32_t *sizes) {
        VideoBufferResult res = { .flags = flags, .timestamp = ts };

        if (sizes)
                memcpy(res.sizes, sizes, sizeof(res.sizes));
        stream_post(s, EV_BUFFER, buf, &res, 0);
}

static void stream_destroy(V4l2Stream *s);

static int on_defer(sd_event_source *src, void *userdata) {
        V4l2Stream *s = userdata;

        s->dispatching = true;
        while (s->ev_head && !s->freed) {
                Ev *e = s->ev_head;

                s->ev_head = e->next;
                if (!s->ev_head)
                        s->ev_tail = NULL;
                switch (e->type) {
                case EV_BUFFER:
                        s->cb->buffer_done(s->userdata, e->buf, &e->res);
                        break;
                case EV_FORMAT:
                        s->cb->format_changed(s->userdata);
                        break;
                case EV_DRAIN:
                        s->cb->drain_done(s->userdata);
                        break;
                case EV_CLEAR:
                        s->cb->clear_done(s->userdata, (VideoQueue) e->arg);
                        break;
                case EV_ERROR:
                        s->cb->error(s->userdata, e->arg);
                        break;
                }
                free(e);
        }
        s->dispatching = false;
        if (s->freed)
                stream_destroy(s);
        return 0;
}

/* ---- timestamps ---------------------------------------------------------------------------------- */

/* The device carries a small cookie instead of the guest's timestamp: V4L2 timestamps pass through a
 * struct timeval and nanoseconds inside the kernel, which does not keep every 64-bit value. */
static uint64_t ts_remember(V4l2Stream *s, uint64_t timestamp) {
        uint64_t c = ++s->ts_cookie;

        s->ts[c % TS_RING].cookie = c;
        s->ts[c % TS_RING].timestamp = timestamp;
        return c;
}

static uint64_t ts_lookup(V4l2Stream *s, const struct timeval *tv) {
        uint64_t c = (uint64_t) tv->tv_sec;

        if (c != 0 && s->ts[c % TS_RING].cookie == c)
                return s->ts[c % TS_RING].timestamp;
        return 0;
}

/* ---- formats ------------------------------------------------------------------------------------- */

static void fmt_init(V4l2Stream *s, struct v4l2_format *f, uint32_t type) {
        memset(f, 0, sizeof(*f));
        f->type = type;
}

static uint32_t fmt_fourcc(V4l2Stream *s, const struct v4l2_format *f) {
        return s->b->mplane ? f->fmt.pix_mp.pixelformat : f->fmt.pix.pixelformat;
}

static void fmt_set(V4l2Stream *s,
                    struct v4l2_format *f,
                    uint32_t fourcc,
                    uint32_t w,
                    uint32_t h,
                    uint32_t sizeimage,
                    uint32_t bytesperline) {
        if (s->b->mplane) {
                f->fmt.pix_mp.pixelformat = fourcc;
                f->fmt.pix_mp.width = w;
                f->fmt.pix_mp.height = h;
                f->fmt.pix_mp.field = V4L2_FIELD_NONE;
                f->fmt.pix_mp.num_planes = 1;
                f->fmt.pix_mp.plane_fmt[0].sizeimage = sizeimage;
                f->fmt.pix_mp.plane_fmt[0].bytesperline = bytesperline;
        } else {
                f->fmt.pix.pixelformat = fourcc;
                f->fmt.pix.width = w;
                f->fmt.pix.height = h;
                f->fmt.pix.field = V4L2_FIELD_NONE;
                f->fmt.pix.sizeimage = sizeimage;
                f->fmt.pix.bytesperline = bytesperline;
        }
}

/* Takes a format the device returned into the queue's params and memory-plane sizes. */
static void queue_take_format(V4l2Stream *s, VideoQueue vq, const struct v4l2_format *f) {
        Queue *q = &s->q[vq];
        VideoParams *p = &s->params[vq];

        v4l2_params_from_format(f, s->b->mplane, p);
        if (s->b->mplane) {
                q->n_mem_planes = MIN((unsigned) f->fmt.pix_mp.num_planes, (unsigned) VIDEO_MAX_PLANES);
                if (q->n_mem_planes == 0)
                        q->n_mem_planes = 1;
                for (unsigned i = 0; i < q->n_mem_planes; i++)
                        q->mem_plane_size[i] = f->fmt.pix_mp.plane_fmt[i].sizeimage;
        } else {
                q->n_mem_planes = 1;
                q->mem_plane_size[0] = f->fmt.pix.sizeimage;
        }
        if (!video_format_is_raw(p->format)) {
                p->num_planes = 1;
                p->planes[0].stride = 0;
        }
        if (p->crop.width == 0 || p->crop.width > p->frame_width || p->crop.height > p->frame_height) {
                p->crop.left = p->crop.top = 0;
                p->crop.width = p->frame_width;
                p->crop.height = p->frame_height;
        }
}

static int queue_g_fmt(V4l2Stream *s, VideoQueue vq) {
        struct v4l2_format f;
        int r;

        fmt_init(s, &f, s->q[vq].type);
        r = xioctl(s, VIDIOC_G_FMT, &f);
        if (r < 0)
                return r;
        queue_take_format(s, vq, &f);
        return 0;
}

static int queue_s_fmt(V4l2Stream *s,
                       VideoQueue vq,
                       uint32_t fourcc,
                       uint32_t w,
                       uint32_t h,
                       uint32_t sizeimage,
                       uint32_t bpl) {
        struct v4l2_format f;
        int r;

        fmt_init(s, &f, s->q[vq].type);
        fmt_set(s, &f, fourcc, w, h, sizeimage, bpl);
        r = xioctl(s, VIDIOC_S_FMT, &f);
        if (r < 0)
                return r;
        queue_take_format(s, vq, &f);
        return 0;
}

/* Decoder: what the capture queue looks like after the stream's headers (dev-decoder.rst "Capture
 * Setup"): the format, with the guest's choice of pixel format when the device has it, the visible
 * rectangle (COMPOSE) and the buffers the decoder needs. */
static int decoder_read_capture(V4l2Stream *s) {
        VideoParams *p = &s->params[VIDEO_QUEUE_OUTPUT];
        struct v4l2_selection sel = {
                .type = V4L2_BUF_TYPE_VIDEO_CAPTURE,
                .target = V4L2_SEL_TGT_COMPOSE,
        };
        struct v4l2_control ctrl = { .id = V4L2_CID_MIN_BUFFERS_FOR_CAPTURE };
        struct v4l2_format f;
        int r;

        fmt_init(s, &f, s->q[VIDEO_QUEUE_OUTPUT].type);
        r = xioctl(s, VIDIOC_G_FMT, &f);
        if (r < 0)
                return r;
        if (s->raw_fourcc && fmt_fourcc(s, &f) != s->raw_fourcc) {
                uint32_t had = fmt_fourcc(s, &f);

                fmt_set(s, &f, s->raw_fourcc, s->b->mplane ? f.fmt.pix_mp.width : f.fmt.pix.width,
                        s->b->mplane ? f.fmt.pix_mp.height : f.fmt.pix.height, 0, 0);
                r = xioctl(s, VIDIOC_S_FMT, &f);
                if (r < 0) {
                        /* Not for this stream: keep the decoder's own choice. */
                        fmt_init(s, &f, s->q[VIDEO_QUEUE_OUTPUT].type);
                        r = xioctl(s, VIDIOC_G_FMT, &f);
                        if (r < 0)
                                return r;
                }
                if (fmt_fourcc(s, &f) != s->raw_fourcc)
                        log_debug("Decoder kept output format %.4s.", (const char *) &had);
        }
        memset(&p->crop, 0, sizeof(p->crop));
        queue_take_format(s, VIDEO_QUEUE_OUTPUT, &f);
        s->cap_fmt = f;
        memset(&s->cap_compose, 0, sizeof(s->cap_compose));
        if (xioctl(s, VIDIOC_G_SELECTION, &sel) >= 0 && sel.r.width > 0 && sel.r.height > 0) {
                s->cap_compose = sel.r;
                p->crop.left = (uint32_t) MAX(sel.r.left, 0);
                p->crop.top = (uint32_t) MAX(sel.r.top, 0);
                p->crop.width = sel.r.width;
                p->crop.height = sel.r.height;
        }
        if (xioctl(s, VIDIOC_G_CTRL, &ctrl) >= 0 && ctrl.value > 0)
                p->min_buffers = MIN((uint32_t) ctrl.value, (uint32_t) MAX_SLOTS);
        else
                p->min_buffers = 1;
        p->max_buffers = MAX_SLOTS;
        return 0;
}

/* ---- V4L2 buffers -------------------------------------------------------------------------------- */

static void
vbuf_init(V4l2Stream *s, Queue *q, unsigned index, struct v4l2_buffer *vb, struct v4l2_plane *planes) {
        memset(vb, 0, sizeof(*vb));
        vb->type = q->type;
        vb->memory = q->memory;
        vb->index = index;
        if (s->b->mplane) {
                memset(planes, 0, sizeof(*planes) * VIDEO_MAX_PLANES);
                vb->m.planes = planes;
                vb->length = q->n_mem_planes;
        }
}

static void slot_release_memory(V4l2Stream *s, Slot *slot) {
        for (unsigned p = 0; p < VIDEO_MAX_PLANES; p++) {
                if (slot->map[p])
                        (void) s->b->ops->munmap(s->dev, slot->map[p], slot->map_len[p]);
                free(slot->bounce[p]);
        }
        memset(slot, 0, sizeof(*slot));
}

/* Frees the V4L2 buffers of a queue (the queue must be stopped and hold nothing on the device). */
static int queue_free_buffers(V4l2Stream *s, Queue *q) {
        struct v4l2_requestbuffers req = { .type = q->type, .memory = q->memory, .count = 0 };
        int r = 0;

        for (unsigned i = 0; i < MAX_SLOTS; i++)
                slot_release_memory(s, &q->slots[i]);
        if (q->memory)
                r = xioctl(s, VIDIOC_REQBUFS, &req);
        q->memory = 0;
        q->n_slots = 0;
        q->n_queued = 0;
        return r;
}

static int queue_map_slots(V4l2Stream *s, Queue *q) {
        for (unsigned i = 0; i < q->n_slots; i++) {
                struct v4l2_plane planes[VIDEO_MAX_PLANES];
                struct v4l2_buffer vb;
                unsigned n;
                int r;

                vbuf_init(s, q, i, &vb, planes);
                r = xioctl(s, VIDIOC_QUERYBUF, &vb);
                if (r < 0)
                        return r;
                n = s->b->mplane ? MIN(vb.length, (unsigned) VIDEO_MAX_PLANES) : 1;
                for (unsigned p = 0; p < n; p++) {
                        size_t len = s->b->mplane ? planes[p].length : vb.length;
                        off_t off = s->b->mplane ? planes[p].m.mem_offset : vb.m.offset;
                        void *m = s->b->ops->mmap(s->dev, len, PROT_READ | PROT_WRITE, MAP_SHARED, off);

                        if (m == MAP_FAILED)
                                return -errno;
                        q->slots[i].map[p] = m;
                        q->slots[i].map_len[p] = len;
                }
                q->slots[i].copy = true;
        }
        return 0;
}

/* Allocates the queue's buffers: USERPTR (zero copy) when the device has it and copying is not forced,
 * else MMAP (one copy). */
static int queue_alloc(V4l2Stream *s, VideoQueue vq, unsigned count) {
        Queue *q = &s->q[vq];
        struct v4l2_requestbuffers req;
        int r = -EINVAL;

        count = MAX(MIN(count, (unsigned) MAX_SLOTS), 1u);
        if (!s->b->force_copy && !q->no_userptr) {
                req = (struct v4l2_requestbuffers){ .type = q->type,
                                                    .memory = V4L2_MEMORY_USERPTR,
                                                    .count = count };
                r = xioctl(s, VIDIOC_REQBUFS, &req);
                if (r >= 0 && req.count > 0) {
                        q->memory = V4L2_MEMORY_USERPTR;
                        q->n_slots = MIN(req.count, (unsigned) MAX_SLOTS);
                }
        }
        if (!q->memory) {
                req = (struct v4l2_requestbuffers){ .type = q->type,
                                                    .memory = V4L2_MEMORY_MMAP,
                                                    .count = count };
                r = xioctl(s, VIDIOC_REQBUFS, &req);
                if (r < 0)
                        return r;
                if (req.count == 0)
                        return -ENOMEM;
                q->memory = V4L2_MEMORY_MMAP;
                q->n_slots = MIN(req.count, (unsigned) MAX_SLOTS);
                r = queue_map_slots(s, q);
                if (r < 0) {
                        (void) queue_free_buffers(s, q);
                        return r;
                }
        }
        if (!q->logged_memory) {
                log_info("Stream uses %s on its %s queue (%u buffers).",
                         q->memory == V4L2_MEMORY_USERPTR ? "USERPTR (zero copy)"
                                                          : "MMAP buffers and a copy",
                         vq == VIDEO_QUEUE_INPUT ? "input" : "output", q->n_slots);
                q->logged_memory = true;
        }
        return 0;
}

static int queue_streamon(V4l2Stream *s, Queue *q) {
        int type = (int) q->type;
        int r;

        if (q->streaming)
                return 0;
        r = xioctl(s, VIDIOC_STREAMON, &type);
        if (r < 0)
                return r;
        q->streaming = true;
        return 0;
}

/* Stops the queue; every buffer it had on the device comes back, in slot order, for the caller. */
static int queue_streamoff(V4l2Stream *s, Queue *q, BufList *ret) {
        int type = (int) q->type;
        int r = 0;

        if (q->streaming || q->n_queued > 0)
                r = xioctl(s, VIDIOC_STREAMOFF, &type);
        q->streaming = false;
        for (unsigned i = 0; i < MAX_SLOTS; i++)
                if (q->slots[i].buf) {
                        buflist_push(ret, q->slots[i].buf);
                        q->slots[i].buf = NULL;
                }
        q->n_queued = 0;
        return r;
}

/* Where plane i of a buffer sits in the V4L2 memory planes: one to one, or all colour planes back to
 * back in a single memory plane (offsets from the queue's params). */
static bool layout_concat(V4l2Stream *s, VideoQueue vq, const VideoBuffer *buf) {
        return s->q[vq].n_mem_planes == 1 && buf->n_planes > 1;
}

static size_t plane_offset(V4l2Stream *s, VideoQueue vq, unsigned i) {
        size_t off = 0;

        for (unsigned j = 0; j < i; j++)
                off += s->params[vq].planes[j].plane_size;
        return off;
}

/* The one host range a memory plane can be handed to the device as, if there is one. */
static bool mem_plane_contiguous(
        V4l2Stream *s, VideoQueue vq, const VideoBuffer *buf, unsigned m, void **ret_ptr, size_t *ret_len) {
        if (!layout_concat(s, vq, buf)) {
                if (buf->planes[m].n_iov != 1)
                        return false;
                *ret_ptr = buf->planes[m].iov[0].iov_base;
                *ret_len = buf->planes[m].iov[0].iov_len;
                return true;
        }
        for (unsigned i = 0; i < buf->n_planes; i++) {
                if (buf->planes[i].n_iov != 1)
                        return false;
                if ((uint8_t *) buf->planes[i].iov[0].iov_base !=
                    (uint8_t *) buf->planes[0].iov[0].iov_base + plane_offset(s, vq, i))
                        return false;
        }
        *ret_ptr = buf->planes[0].iov[0].iov_base;
        *ret_len = plane_offset(s, vq, buf->n_planes - 1) + buf->planes[buf->n_planes - 1].iov[0].iov_len;
        return true;
}

/* Copies an input buffer into the slot's memory; returns the bytes used per memory plane. */
static void copy_in(V4l2Stream *s, VideoQueue vq, Slot *slot, const VideoBuffer *buf, uint32_t *bytesused) {
        if (!layout_concat(s, vq, buf)) {
                for (unsigned m = 0; m < buf->n_planes; m++) {
                        void *dst = slot->map[m] ? slot->map[m] : slot->bounce[m];
                        size_t cap = slot->map[m] ? slot->map_len[m] : slot->bounce_len[m];

                        if (!dst) { /* this plane went to the device as it is (USERPTR) */
                                bytesused[m] = buf->planes[m].data_size;
                                continue;
                        }
                        bytesused[m] =
                                (uint32_t) iov_to_buf(buf->planes[m].iov, buf->planes[m].n_iov, 0, dst,
                                                      MIN((size_t) buf->planes[m].data_size, cap));
                }
                return;
        }
        bytesused[0] = 0;
        for (unsigned i = 0; i < buf->n_planes; i++) {
                uint8_t *dst = slot->map[0] ? slot->map[0] : slot->bounce[0];
                size_t cap = slot->map[0] ? slot->map_len[0] : slot->bounce_len[0];
                size_t off = plane_offset(s, vq, i), n;

                if (off >= cap)
                        break;
                n = iov_to_buf(buf->planes[i].iov, buf->planes[i].n_iov, 0, dst + off,
                               MIN((size_t) buf->planes[i].data_size, cap - off));
                bytesused[0] = (uint32_t) (off + n);
        }
}

/* Output sizes per colour plane from the bytes used per memory plane, copying out when needed. */
static void copy_out(V4l2Stream *s,
                     VideoQueue vq,
                     Slot *slot,
                     const VideoBuffer *buf,
                     const uint32_t *bytesused,
                     uint32_t *sizes) {
        if (!layout_concat(s, vq, buf)) {
                for (unsigned m = 0; m < buf->n_planes; m++) {
                        size_t n = MIN((size_t) bytesused[m], buf->planes[m].length);

                        if (slot->copy && (slot->map[m] || slot->bounce[m])) {
                                const void *src = slot->map[m] ? slot->map[m] : slot->bounce[m];
                                size_t cap = slot->map[m] ? slot->map_len[m] : slot->bounce_len[m];

                                n = buf_to_iov(buf->planes[m].iov, buf->planes[m].n_iov, 0, src,
                                               MIN(n, cap));
                        }
                        sizes[m] = (uint32_t) n;
                }
                return;
        }
        for (unsigned i = 0; i < buf->n_planes; i++) {
                size_t off = plane_offset(s, vq, i), n = 0;

                if (bytesused[0] > off)
                        n = MIN((size_t) bytesused[0] - off,
                                MIN((size_t) s->params[vq].planes[i].plane_size, buf->planes[i].length));
                if (slot->copy && n > 0) {
                        const uint8_t *src = slot->map[0] ? slot->map[0] : slot->bounce[0];
                        size_t cap = slot->map[0] ? slot->map_len[0] : slot->bounce_len[0];

                        n = off < cap ? buf_to_iov(buf->planes[i].iov, buf->planes[i].n_iov, 0, src + off,
                                                   MIN(n, cap - off))
                                      : 0;
                }
                sizes[i] = (uint32_t) n;
        }
}

/* Hands one held buffer to the device in a free slot. */
static int queue_to_device(V4l2Stream *s, VideoQueue vq, unsigned index, VideoBuffer *buf) {
        Queue *q = &s->q[vq];
        Slot *slot = &q->slots[index];
        struct v4l2_plane planes[VIDEO_MAX_PLANES];
        uint32_t bytesused[VIDEO_MAX_PLANES] = {};
        struct v4l2_buffer vb;
        uint64_t cookie;
        int r;

        vbuf_init(s, q, index, &vb, planes);
        if (q->memory == V4L2_MEMORY_USERPTR) {
                slot->copy = false;
                for (unsigned m = 0; m < q->n_mem_planes; m++) {
                        void *ptr;
                        size_t len;

                        if (mem_plane_contiguous(s, vq, buf, m, &ptr, &len) && len >= q->mem_plane_size[m]) {
                                free(slot->bounce[m]);
                                slot->bounce[m] = NULL;
                                slot->bounce_len[m] = 0;
                        } else {
                                /* Not one host range: through a host buffer, one copy. */
                                len = q->mem_plane_size[m];
                                if (slot->bounce_len[m] < len) {
                                        free(slot->bounce[m]);
                                        slot->bounce[m] = calloc(1, len);
                                        if (!slot->bounce[m]) {
                                                slot->bounce_len[m] = 0;
                                                return -ENOMEM;
                                        }
                                        slot->bounce_len[m] = len;
                                }
                                ptr = slot->bounce[m];
                                len = slot->bounce_len[m];
                                slot->copy = true;
                        }
                        if (s->b->mplane) {
                                planes[m].m.userptr = (unsigned long) ptr;
                                planes[m].length = (uint32_t) MIN(len, (size_t) UINT32_MAX);
                        } else {
                                vb.m.userptr = (unsigned long) ptr;
                                vb.length = (uint32_t) MIN(len, (size_t) UINT32_MAX);
                        }
                }
        }

        if (vq == VIDEO_QUEUE_INPUT) {
                if (slot->copy)
                        copy_in(s, vq, slot, buf, bytesused);
                else if (layout_concat(s, vq, buf))
                        bytesused[0] = (uint32_t) (plane_offset(s, vq, buf->n_planes - 1) +
                                                   buf->planes[buf->n_planes - 1].data_size);
                else
                        for (unsigned m = 0; m < buf->n_planes; m++)
                                bytesused[m] = buf->planes[m].data_size;
                cookie = ts_remember(s, buf->timestamp);
                vb.timestamp.tv_sec = (time_t) cookie;
                for (unsigned m = 0; m < q->n_mem_planes; m++) {
                        if (s->b->mplane)
                                planes[m].bytesused = bytesused[m];
                        else
                                vb.bytesused = bytesused[0];
                }
        }

        r = xioctl(s, VIDIOC_QBUF, &vb);
        if (r < 0)
                return r;
        slot->buf = buf;
        q->n_queued++;
        if (vq == VIDEO_QUEUE_INPUT)
                s->in_fed = true;
        return 0;
}

static int queue_free_slot(Queue *q) {
        for (unsigned i = 0; i < q->n_slots; i++)
                if (!q->slots[i].buf)
                        return (int) i;
        return -1;
}

/* ---- stream state -------------------------------------------------------------------------------- */

static void stream_update_io(V4l2Stream *s) {
        bool on = !s->broken && (s->q[0].streaming || s->q[1].streaming);

        (void) sd_event_source_set_enabled(s->io, on ? SD_EVENT_ON : SD_EVENT_OFF);
}

static void give_back_all(V4l2Stream *s, BufList *l) {
        VideoBuffer *buf;

        while ((buf = buflist_pop(l)))
                post_buffer(s, buf, VIDEO_BUFFER_F_ERR, 0, NULL);
}

/* The stream cannot go on: every held buffer comes back with F_ERR and the device model is told. */
static void stream_fail(V4l2Stream *s, int error) {
        BufList l = {};

        if (s->broken)
                return;
        log_warning_errno(error, "V4L2 stream failed: %m");
        s->broken = true;
        /* Best effort: a device still there must let go of guest memory (USERPTR) before we give it back. */
        for (unsigned vq = 0; vq < _VIDEO_QUEUE_MAX; vq++) {
                (void) queue_streamoff(s, &s->q[vq], &l);
                give_back_all(s, &s->q[vq].pending);
        }
        give_back_all(s, &l);
        give_back_all(s, &s->stale);
        s->drain = DRAIN_NONE;
        stream_post(s, EV_ERROR, NULL, NULL, error);
        stream_update_io(s);
}

static int decoder_setup_capture(V4l2Stream *s) {
        Queue *q = &s->q[VIDEO_QUEUE_OUTPUT];
        VideoParams *p = &s->params[VIDEO_QUEUE_OUTPUT];
        int r;

        if (q->memory) {
                r = queue_free_buffers(s, q);
                if (r < 0)
                        return r;
        }
        r = queue_alloc(s, VIDEO_QUEUE_OUTPUT, MAX(p->min_buffers + 2, 4u));
        if (r < 0)
                return r;
        s->cap = CAP_READY;
        return 0;
}

static int encoder_setup(V4l2Stream *s, VideoQueue vq) {
        return queue_alloc(s, vq,
                           vq == VIDEO_QUEUE_INPUT ? INPUT_SLOTS : MAX(s->params[vq].min_buffers + 2, 4u));
}

/* Delivers the empty EOS completion a drain still owes, on the next held output buffer. */
static void drain_finish_eos(V4l2Stream *s) {
        VideoBuffer *buf;

        if (s->drain != DRAIN_NEED_EOS)
                return;
        buf = buflist_pop(&s->q[VIDEO_QUEUE_OUTPUT].pending);
        if (!buf)
                return;
        post_buffer(s, buf, VIDEO_BUFFER_F_EOS, 0, NULL);
        s->drain = DRAIN_NONE;
        stream_post(s, EV_DRAIN, NULL, NULL, 0);
}

static int drain_send_stop(V4l2Stream *s) {
        int r;

        if (is_decoder(s)) {
                struct v4l2_decoder_cmd cmd = { .cmd = V4L2_DEC_CMD_STOP };

                r = xioctl(s, VIDIOC_DECODER_CMD, &cmd);
        } else {
                struct v4l2_encoder_cmd cmd = { .cmd = V4L2_ENC_CMD_STOP };

                r = xioctl(s, VIDIOC_ENCODER_CMD, &cmd);
        }
        /* -EBUSY: the device still drains (it kept the STOP across a CAPTURE restart). */
        if (r < 0 && r != -EBUSY)
                return r;
        s->drain = DRAIN_WAIT_LAST;
        return 0;
}

/* CAPTURE was stopped during a drain: v4l2-mem2mem forgets the STOP then (vicodec: no LAST buffer will
 * come), so it goes out again once both queues stream (dev-decoder.rst: the drain goes on after a
 * resolution change). */
static void drain_capture_stopped(V4l2Stream *s) {
        if (s->drain == DRAIN_WAIT_LAST)
                s->drain = DRAIN_WAIT_INPUT;
}

/* A device may take USERPTR at REQBUFS and still refuse the memory at QBUF (vb2-dma-contig needs it
 * physically contiguous: EFAULT or EINVAL). Before the queue ever ran, that is a reason to use MMAP. */
static bool userptr_refused(Queue *q, int r) {
        return (r == -EFAULT || r == -EINVAL) && q->memory == V4L2_MEMORY_USERPTR && q->n_queued == 0 &&
               !q->streaming;
}

static int queue_fall_back_to_mmap(V4l2Stream *s, VideoQueue vq, int error) {
        Queue *q = &s->q[vq];
        unsigned count = q->n_slots;
        int r;

        log_info_errno(error, "Device refused guest memory as USERPTR (%m), using MMAP buffers and a copy.");
        r = queue_free_buffers(s, q);
        if (r < 0)
                return r;
        q->no_userptr = true;
        q->logged_memory = false;
        return queue_alloc(s, vq, count);
}

/* Moves held buffers onto the device as far as slots and state allow; sets up queues on first use. */
static int stream_kick(V4l2Stream *s) {
        int r;

        if (s->broken)
                return 0;

        for (unsigned vq = 0; vq < _VIDEO_QUEUE_MAX; vq++) {
                Queue *q = &s->q[vq];

                if (!q->pending.head)
                        continue;
                if (vq == VIDEO_QUEUE_OUTPUT && s->drain == DRAIN_NEED_EOS) {
                        drain_finish_eos(s);
                        if (!q->pending.head)
                                continue;
                }
                if (vq == VIDEO_QUEUE_OUTPUT && is_decoder(s)) {
                        /* During a resolution change the decoder may still need a buffer to flag LAST. */
                        if (s->cap == CAP_UNKNOWN)
                                continue;
                        if (s->cap == CAP_KNOWN) {
                                r = decoder_setup_capture(s);
                                if (r < 0)
                                        return r;
                        }
                } else if (!q->memory) {
                        r = is_decoder(s) ? queue_alloc(s, vq, INPUT_SLOTS) : encoder_setup(s, vq);
                        if (r < 0)
                                return r;
                }
                /* A capture queue stopped after a drain restarts below with STREAMON (dev-decoder.rst
                 * "Drain": STREAMOFF and STREAMON of CAPTURE resume the codec). */
                for (;;) {
                        int i = queue_free_slot(q);
                        VideoBuffer *buf;

                        if (i < 0)
                                break;
                        buf = buflist_pop(&q->pending);
                        if (!buf)
                                break;
                        r = queue_to_device(s, (VideoQueue) vq, (unsigned) i, buf);
                        if (r < 0) {
                                buflist_push_front(&q->pending, buf);
                                if (!userptr_refused(q, r))
                                        return r;
                                r = queue_fall_back_to_mmap(s, (VideoQueue) vq, r);
                                if (r < 0)
                                        return r;
                        }
                }
                if (q->n_queued > 0) {
                        r = queue_streamon(s, q);
                        if (r < 0)
                                return r;
                }
        }

        if (s->drain == DRAIN_WAIT_INPUT && !s->q[VIDEO_QUEUE_INPUT].pending.head &&
            s->q[VIDEO_QUEUE_INPUT].streaming && s->q[VIDEO_QUEUE_OUTPUT].streaming) {
                r = drain_send_stop(s);
                if (r < 0)
                        return r;
        }
        stream_update_io(s);
        return 0;
}

static void stream_kick_or_fail(V4l2Stream *s) {
        int r = stream_kick(s);

        if (r < 0)
                stream_fail(s, r);
}

/* ---- dequeue work (event loop) ------------------------------------------------------------------- */

static int decoder_format_known(V4l2Stream *s) {
        Queue *q = &s->q[VIDEO_QUEUE_OUTPUT];
        VideoBuffer *buf;
        int r;

        /* Buffers of the old geometry go first, so that the guest's pixel format can be set again. */
        if (q->memory && !q->streaming && q->n_queued == 0) {
                r = queue_free_buffers(s, q);
                if (r < 0)
                        return r;
        }
        r = decoder_read_capture(s);
        if (r < 0)
                return r;
        /* backend.h: output buffers queued before the change are held until the guest clears them. */
        while ((buf = buflist_pop(&s->q[VIDEO_QUEUE_OUTPUT].pending)))
                buflist_push(&s->stale, buf);
        /* Until the guest's QUEUE_CLEAR(OUTPUT), what it queues is still of the old geometry: also when
         * none of its buffers was caught here (all with the guest, one of them the last frame), as it
         * may queue one back before it sees the change (virtio-video-v3.md §7.7e). */
        s->await_clear = s->stale.head || s->out_since_clear;
        s->cap = CAP_KNOWN;
        stream_post(s, EV_FORMAT, NULL, NULL, 0);
        return 0;
}

/* Decoder: whether the capture format the device reports now is the one the output params describe. A
 * decoder may signal SOURCE_CHANGE again for the same stream: vicodec does for the first header it sees
 * after every STREAMOFF(OUTPUT), that is after each seek, and it flags no LAST buffer then, as nothing
 * changed (dev-decoder.rst "Dynamic Resolution Change" starts only on a parameter that differs). */
static bool decoder_capture_unchanged(V4l2Stream *s) {
        struct v4l2_selection sel = {
                .type = V4L2_BUF_TYPE_VIDEO_CAPTURE,
                .target = V4L2_SEL_TGT_COMPOSE,
        };
        struct v4l2_control ctrl = { .id = V4L2_CID_MIN_BUFFERS_FOR_CAPTURE };
        uint32_t min_buffers = 1;
        struct v4l2_format f;

        if (s->cap == CAP_UNKNOWN)
                return false;
        /* The buffers the stream needs are a decoding parameter too (as decoder_read_capture() reads
         * them). */
        if (xioctl(s, VIDIOC_G_CTRL, &ctrl) >= 0 && ctrl.value > 0)
                min_buffers = MIN((uint32_t) ctrl.value, (uint32_t) MAX_SLOTS);
        if (min_buffers != s->params[VIDEO_QUEUE_OUTPUT].min_buffers)
                return false;
        fmt_init(s, &f, s->q[VIDEO_QUEUE_OUTPUT].type);
        if (xioctl(s, VIDIOC_G_FMT, &f) < 0)
                return false;
        if (s->b->mplane) {
                const struct v4l2_pix_format_mplane *a = &f.fmt.pix_mp, *b = &s->cap_fmt.fmt.pix_mp;

                if (a->pixelformat != b->pixelformat || a->width != b->width || a->height != b->height ||
                    a->num_planes != b->num_planes)
                        return false;
                for (unsigned i = 0; i < MIN((unsigned) a->num_planes, (unsigned) VIDEO_MAX_PLANES); i++)
                        if (a->plane_fmt[i].sizeimage != b->plane_fmt[i].sizeimage ||
                            a->plane_fmt[i].bytesperline != b->plane_fmt[i].bytesperline)
                                return false;
        } else {
                const struct v4l2_pix_format *a = &f.fmt.pix, *b = &s->cap_fmt.fmt.pix;

                if (a->pixelformat != b->pixelformat || a->width != b->width || a->height != b->height ||
                    a->sizeimage != b->sizeimage || a->bytesperline != b->bytesperline)
                        return false;
        }
        if (xioctl(s, VIDIOC_G_SELECTION, &sel) < 0)
                memset(&sel.r, 0, sizeof(sel.r));
        return memcmp(&sel.r, &s->cap_compose, sizeof(sel.r)) == 0;
}

static int handle_event(V4l2Stream *s, const struct v4l2_event *ev) {
        if (ev->type != V4L2_EVENT_SOURCE_CHANGE || !is_decoder(s))
                return 0; /* V4L2_EVENT_EOS: the LAST buffer says the same */
        if (!(ev->u.src_change.changes & V4L2_EVENT_SRC_CH_RESOLUTION))
                return 0;
        if (s->cap != CAP_RESCHANGE && decoder_capture_unchanged(s)) {
                log_debug("Decoder signalled a source change to the same format, ignoring.");
                return 0;
        }
        /* While capture streams, the decoder first returns the frames of the old geometry and flags the
         * last one (dev-decoder.rst "Dynamic Resolution Change"). */
        if (s->q[VIDEO_QUEUE_OUTPUT].streaming) {
                s->cap = CAP_RESCHANGE;
                return 0;
        }
        return decoder_format_known(s);
}

static int decoder_resolution_change_done(V4l2Stream *s) {
        Queue *q = &s->q[VIDEO_QUEUE_OUTPUT];
        int r;

        r = queue_streamoff(s, q, &s->stale);
        if (r < 0)
                return r;
        drain_capture_stopped(s);
        r = queue_free_buffers(s, q);
        if (r < 0)
                return r;
        return decoder_format_known(s);
}

/* After the LAST buffer of a drain: STREAMOFF/STREAMON of CAPTURE resumes the codec; what was still on
 * the device goes back to the head of the pending list. */
static int drain_over(V4l2Stream *s) {
        Queue *q = &s->q[VIDEO_QUEUE_OUTPUT];
        BufList back = {};
        VideoBuffer *buf;
        int r;

        r = queue_streamoff(s, q, &back);
        if (r < 0)
                return r;
        while ((buf = buflist_pop(&q->pending)))
                buflist_push(&back, buf);
        q->pending = back;
        return 0;
}

static int process_events(V4l2Stream *s, bool *progress) {
        int r;

        if (!s->events_subscribed)
                return 0;
        for (;;) {
                struct v4l2_event ev = {};

                r = xioctl(s, VIDIOC_DQEVENT, &ev);
                if (r == -ENOENT || r == -EAGAIN)
                        return 0;
                if (r < 0)
                        return r;
                *progress = true;
                r = handle_event(s, &ev);
                if (r < 0)
                        return r;
        }
}

static int dequeue_one(V4l2Stream *s, VideoQueue vq, bool *progress) {
        Queue *q = &s->q[vq];
        struct v4l2_plane planes[VIDEO_MAX_PLANES];
        uint32_t bytesused[VIDEO_MAX_PLANES] = {}, sizes[VIDEO_MAX_PLANES] = {}, flags = 0;
        struct v4l2_buffer vb;
        VideoBuffer *buf;
        Slot *slot;
        bool last;
        int r;

        if (!q->streaming || q->n_queued == 0)
                return 0;
        vbuf_init(s, q, 0, &vb, planes);
        r = xioctl(s, VIDIOC_DQBUF, &vb);
        if (r == -EAGAIN || r == -EPIPE)
                return 0;
        if (r < 0)
                return r;
        if (vb.index >= q->n_slots || !q->slots[vb.index].buf)
                return log_debug_errno(-EIO, "Device returned buffer %u it does not hold.", vb.index);
        *progress = true;
        slot = &q->slots[vb.index];
        buf = slot->buf;
        slot->buf = NULL;
        q->n_queued--;

        if (vb.flags & V4L2_BUF_FLAG_ERROR)
                flags |= VIDEO_BUFFER_F_ERR;
        if (vq == VIDEO_QUEUE_INPUT) {
                post_buffer(s, buf, flags, buf->timestamp, NULL);
                return 1;
        }

        for (unsigned m = 0; m < q->n_mem_planes; m++)
                bytesused[m] =
                        s->b->mplane ? planes[m].bytesused - MIN(planes[m].data_offset, planes[m].bytesused)
                                     : vb.bytesused;
        last = vb.flags & V4L2_BUF_FLAG_LAST;
        if (vb.flags & V4L2_BUF_FLAG_KEYFRAME)
                flags |= VIDEO_BUFFER_F_IFRAME;
        if (vb.flags & V4L2_BUF_FLAG_PFRAME)
                flags |= VIDEO_BUFFER_F_PFRAME;
        if (vb.flags & V4L2_BUF_FLAG_BFRAME)
                flags |= VIDEO_BUFFER_F_BFRAME;
        copy_out(s, vq, slot, buf, bytesused, sizes);

        if (!last) {
                post_buffer(s, buf, flags, ts_lookup(s, &vb.timestamp), sizes);
                return 1;
        }

        /* The decoder queues SOURCE_CHANGE and flags LAST at the same moment, from its own context (vicodec:
         * the next job's job_ready() in a kworker): the event may have come after our last look. */
        if (is_decoder(s) && s->cap != CAP_RESCHANGE) {
                r = process_events(s, progress);
                if (r < 0)
                        return r;
        }
        if (s->cap == CAP_RESCHANGE) {
                if (bytesused[0] > 0)
                        post_buffer(s, buf, flags, ts_lookup(s, &vb.timestamp), sizes);
                else
                        buflist_push(&s->stale, buf);
                r = decoder_resolution_change_done(s);
                return r < 0 ? r : 0;
        }

        /* The end of a drain (7.4): EOS goes on an empty buffer; a LAST buffer with a frame is delivered as
         * a frame and an empty EOS follows on the next output buffer. */
        if (bytesused[0] > 0 && !(flags & VIDEO_BUFFER_F_ERR)) {
                post_buffer(s, buf, flags, ts_lookup(s, &vb.timestamp), sizes);
                s->drain = DRAIN_NEED_EOS;
        } else {
                memset(sizes, 0, sizeof(sizes));
                post_buffer(s, buf, VIDEO_BUFFER_F_EOS, 0, sizes);
                if (s->drain != DRAIN_NONE)
                        stream_post(s, EV_DRAIN, NULL, NULL, 0);
                s->drain = DRAIN_NONE;
        }
        r = drain_over(s);
        if (r < 0)
                return r;
        drain_finish_eos(s);
        return 0;
}

static int stream_process(V4l2Stream *s, bool *progress) {
        int r;

        r = process_events(s, progress);
        if (r < 0)
                return r;
        for (unsigned vq = 0; vq < _VIDEO_QUEUE_MAX; vq++)
                for (;;) {
                        r = dequeue_one(s, (VideoQueue) vq, progress);
                        if (r < 0)
                                return r;
                        if (r == 0)
                                break;
                }
        return stream_kick(s);
}

static int on_retry(sd_event_source *src, uint64_t usec, void *userdata) {
        V4l2Stream *s = userdata;

        s->retry = sd_event_source_unref(s->retry);
        stream_update_io(s);
        return 0;
}

static int on_io(sd_event_source *src, int fd, uint32_t revents, void *userdata) {
        V4l2Stream *s = userdata;
        bool progress = false;
        uint64_t now;
        int r;

        r = stream_process(s, &progress);
        if (r < 0) {
                stream_fail(s, r);
                return 0;
        }
        if (progress || !(revents & (EPOLLERR | EPOLLHUP))) {
                s->retry_usec = 0;
                return 0;
        }
        /* A mem2mem node polls EPOLLERR while neither queue holds a buffer, which level-triggered epoll
         * would report in a loop. Stay off until new work re-enables it, but look again after a growing
         * delay: an event (SOURCE_CHANGE from firmware) can come while no buffer is queued. */
        (void) sd_event_source_set_enabled(s->io, SD_EVENT_OFF);
        s->retry_usec = MIN(MAX(s->retry_usec * 2, (uint64_t) 10000), (uint64_t) 1000000);
        if (!s->retry && (sd_event_now(s->b->event, CLOCK_MONOTONIC, &now) < 0 ||
                          sd_event_add_time(s->b->event, &s->retry, CLOCK_MONOTONIC, now + s->retry_usec, 0,
                                            on_retry, s) < 0))
                log_debug("Could not arm the V4L2 poll retry timer, ignoring.");
        return 0;
}

/* ---- backend ops --------------------------------------------------------------------------------- */

static V4l2Stream *to_stream(BackendStream *bs) {
        return (V4l2Stream *) bs;
}

static void stream_destroy(V4l2Stream *s) {
        BufList l = {};

        if (s->dev) {
                for (unsigned vq = 0; vq < _VIDEO_QUEUE_MAX; vq++) {
                        (void) queue_streamoff(s, &s->q[vq], &l);
                        (void) queue_free_buffers(s, &s->q[vq]);
                }
                s->b->ops->close(s->dev);
        }
        while (s->ev_head) {
                Ev *e = s->ev_head;

                s->ev_head = e->next;
                free(e);
        }
        sd_event_source_disable_unref(s->io);
        sd_event_source_disable_unref(s->defer);
        sd_event_source_disable_unref(s->retry);
        s->b->n_streams--;
        free(s);
}

static void v4l2_stream_free(BackendStream *bs) {
        V4l2Stream *s = to_stream(bs);

        if (!s)
                return;
        /* From inside one of our own callbacks: no more callbacks, the memory goes once it returns. */
        if (s->dispatching) {
                s->freed = true;
                return;
        }
        stream_destroy(s);
}

static int stream_init_formats(V4l2Stream *s) {
        V4l2Backend *b = s->b;
        uint32_t coded =
                fourcc_for(b, is_decoder(s) ? VIDEO_QUEUE_INPUT : VIDEO_QUEUE_OUTPUT, s->coded_format);
        int r;

        if (is_decoder(s)) {
                struct v4l2_event_subscription sub = { .type = V4L2_EVENT_SOURCE_CHANGE };

                r = queue_s_fmt(s, VIDEO_QUEUE_INPUT, coded, 0, 0, 0, 0);
                if (r < 0)
                        return r;
                r = xioctl(s, VIDIOC_SUBSCRIBE_EVENT, &sub);
                if (r < 0)
                        return r;
                s->events_subscribed = true;
                s->raw_fourcc = b->fourcc[VIDEO_QUEUE_OUTPUT][0];
                s->params[VIDEO_QUEUE_OUTPUT].format = b->caps.formats[VIDEO_QUEUE_OUTPUT][0].format;
                s->params[VIDEO_QUEUE_OUTPUT].num_planes =
                        v4l2_format_color_planes(s->params[VIDEO_QUEUE_OUTPUT].format);
                s->params[VIDEO_QUEUE_OUTPUT].min_buffers = 1;
                s->params[VIDEO_QUEUE_OUTPUT].max_buffers = MAX_SLOTS;
        } else {
                /* dev-encoder.rst "Initialization": the coded format first, then the raw one. */
                r = queue_s_fmt(s, VIDEO_QUEUE_OUTPUT, coded, 0, 0, 0, 0);
                if (r < 0)
                        return r;
                r = queue_g_fmt(s, VIDEO_QUEUE_INPUT);
                if (r < 0)
                        return r;
                s->params[VIDEO_QUEUE_OUTPUT].min_buffers = 1;
                s->params[VIDEO_QUEUE_OUTPUT].max_buffers = MAX_SLOTS;
                s->cap = CAP_READY;
        }
        s->params[VIDEO_QUEUE_INPUT].min_buffers = 1;
        s->params[VIDEO_QUEUE_INPUT].max_buffers = MAX_SLOTS;
        return 0;
}

static int v4l2_stream_new(Backend *bb,
                           uint32_t coded_format,
                           const BackendStreamCallbacks *callbacks,
                           void *userdata,
                           BackendStream **ret) {
        V4l2Backend *b = (V4l2Backend *) bb;
        VideoQueue coded_q = b->role == VIDEO_ROLE_DECODER ? VIDEO_QUEUE_INPUT : VIDEO_QUEUE_OUTPUT;
        bool found = false;
        V4l2Stream *s;
        uint32_t events;
        int fd, r;

        for (unsigned i = 0; i < b->caps.n_formats[coded_q]; i++)
                if (b->caps.formats[coded_q][i].format == coded_format)
                        found = true;
        if (!found)
                return -EINVAL;
        if (b->n_streams >= MAX_STREAMS)
                return -ENOSPC;

        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->base.backend = bb;
        s->b = b;
        b->n_streams++;
        s->cb = callbacks;
        s->userdata = userdata;
        s->coded_format = coded_format;
        s->q[VIDEO_QUEUE_INPUT].type =
                b->mplane ? V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE : V4L2_BUF_TYPE_VIDEO_OUTPUT;
        s->q[VIDEO_QUEUE_OUTPUT].type =
                b->mplane ? V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE : V4L2_BUF_TYPE_VIDEO_CAPTURE;

        r = b->ops->open(b->node, &s->dev);
        if (r < 0) {
                s->dev = NULL;
                stream_destroy(s);
                return r == -EBUSY ? -ENOSPC : r;
        }
        r = stream_init_formats(s);
        if (r < 0)
                goto fail;
        fd = b->ops->poll_fd(s->dev, &events);
        r = sd_event_add_io(b->event, &s->io, fd, events, on_io, s);
        if (r < 0)
                goto fail;
        (void) sd_event_source_set_enabled(s->io, SD_EVENT_OFF);
        r = sd_event_add_defer(b->event, &s->defer, on_defer, s);
        if (r < 0)
                goto fail;
        (void) sd_event_source_set_enabled(s->defer, SD_EVENT_OFF);
        *ret = &s->base;
        return 0;

fail:
        stream_destroy(s);
        return r == -EBUSY ? -ENOSPC : r;
}

static int v4l2_get_params(BackendStream *bs, VideoQueue queue, VideoParams *ret) {
        V4l2Stream *s = to_stream(bs);

        if ((unsigned) queue >= _VIDEO_QUEUE_MAX)
                return -EINVAL;
        *ret = s->params[queue];
        return 0;
}

/* A queue whose buffers sit idle (stopped, nothing held) drops them, so that its format may change, as
 * after the guest's QUEUE_CLEAR and RESOURCE_DESTROY_ALL. */
static int queue_release_if_idle(V4l2Stream *s, Queue *q) {
        if (!q->memory)
                return 0;
        if (q->streaming || q->n_queued > 0 || q->pending.head)
                return -EBUSY;
        return queue_free_buffers(s, q);
}

static bool caps_have(V4l2Backend *b, VideoQueue q, uint32_t format) {
        for (unsigned i = 0; i < b->caps.n_formats[q]; i++)
                if (b->caps.formats[q][i].format == format)
                        return true;
        return false;
}

static int v4l2_set_params(BackendStream *bs, VideoQueue queue, const VideoParams *p) {
        V4l2Stream *s = to_stream(bs);
        Queue *q;
        int r;

        if ((unsigned) queue >= _VIDEO_QUEUE_MAX)
                return -EINVAL;
        if (s->broken)
                return -EIO;
        q = &s->q[queue];
        if (p->format != 0 && !caps_have(s->b, queue, p->format))
                return -EINVAL;

        if (is_decoder(s) && queue == VIDEO_QUEUE_OUTPUT) {
                /* The decoder decides the geometry; the guest picks the pixel format. */
                if (p->format == 0)
                        return 0;
                if (s->cap == CAP_READY) {
                        r = queue_release_if_idle(s, q);
                        if (r < 0)
                                return r;
                        s->cap = CAP_KNOWN;
                }
                s->raw_fourcc = fourcc_for(s->b, queue, p->format);
                if (s->cap == CAP_UNKNOWN) {
                        s->params[queue].format = p->format;
                        s->params[queue].num_planes = v4l2_format_color_planes(p->format);
                        return 0;
                }
                if (s->cap == CAP_RESCHANGE)
                        return -EBUSY;
                return decoder_read_capture(s);
        }

        r = queue_release_if_idle(s, q);
        if (r < 0)
                return r;

        if (is_decoder(s)) {
                uint32_t fmt = p->format ? p->format : s->coded_format;

                r = queue_s_fmt(s, queue, fourcc_for(s->b, queue, fmt), p->frame_width, p->frame_height,
                                p->planes[0].plane_size, 0);
                if (r < 0)
                        return r == -EBUSY ? -EBUSY : -EINVAL;
                s->coded_format = s->params[queue].format ? s->params[queue].format : fmt;
                return 0;
        }

        if (queue == VIDEO_QUEUE_INPUT) {
                uint32_t fmt = p->format ? p->format : s->params[queue].format;
                VideoParams *in = &s->params[VIDEO_QUEUE_INPUT];

                r = queue_s_fmt(s, queue, fourcc_for(s->b, queue, fmt), p->frame_width, p->frame_height, 0,
                                p->num_planes > 0 ? p->planes[0].stride : 0);
                if (r < 0)
                        return r == -EBUSY ? -EBUSY : -EINVAL;
                /* dev-encoder.rst "Initialization": the visible rectangle is the OUTPUT crop. What the
                 * device took is what GET_PARAMS says (vicodec moves it to 0,0); without the selection
                 * API the whole picture is encoded. */
                if (p->crop.width > 0 && p->crop.height > 0 &&
                    p->crop.left + p->crop.width <= in->frame_width &&
                    p->crop.top + p->crop.height <= in->frame_height &&
                    (p->crop.left || p->crop.top || p->crop.width != in->frame_width ||
                     p->crop.height != in->frame_height)) {
                        struct v4l2_selection sel = {
                                .type = V4L2_BUF_TYPE_VIDEO_OUTPUT, /* also for the mplane API */
                                .target = V4L2_SEL_TGT_CROP,
                                .r = { (int32_t) p->crop.left, (int32_t) p->crop.top, p->crop.width,
                                       p->crop.height },
                        };

                        if (xioctl(s, VIDIOC_S_SELECTION, &sel) >= 0 && sel.r.left >= 0 && sel.r.top >= 0 &&
                            sel.r.width > 0 && sel.r.height > 0 &&
                            (uint32_t) sel.r.left + sel.r.width <= in->frame_width &&
                            (uint32_t) sel.r.top + sel.r.height <= in->frame_height) {
                                in->crop.left = (uint32_t) sel.r.left;
                                in->crop.top = (uint32_t) sel.r.top;
                                in->crop.width = sel.r.width;
                                in->crop.height = sel.r.height;
                        } else
                                log_debug("Encoder keeps the whole picture: no crop %ux%u+%u+%u.",
                                          p->crop.width, p->crop.height, p->crop.left, p->crop.top);
                }
                if (p->frame_rate > 0) {
                        struct v4l2_streamparm parm = { .type = q->type };

                        parm.parm.output.timeperframe.numerator = 1;
                        parm.parm.output.timeperframe.denominator = p->frame_rate;
                        if (xioctl(s, VIDIOC_S_PARM, &parm) >= 0 &&
                            parm.parm.output.timeperframe.numerator > 0)
                                in->frame_rate = parm.parm.output.timeperframe.denominator /
                                                 parm.parm.output.timeperframe.numerator;
                }
                /* The coded side follows the picture size. */
                if (!s->q[VIDEO_QUEUE_OUTPUT].memory) {
                        VideoParams *out = &s->params[VIDEO_QUEUE_OUTPUT];

                        (void) queue_s_fmt(s, VIDEO_QUEUE_OUTPUT,
                                           fourcc_for(s->b, VIDEO_QUEUE_OUTPUT, s->coded_format),
                                           in->frame_width, in->frame_height, out->planes[0].plane_size, 0);
                }
                return 0;
        }

        r = queue_s_fmt(s, queue, fourcc_for(s->b, queue, p->format ? p->format : s->coded_format),
                        s->params[VIDEO_QUEUE_INPUT].frame_width, s->params[VIDEO_QUEUE_INPUT].frame_height,
                        p->planes[0].plane_size, 0);
        if (r < 0)
                return r == -EBUSY ? -EBUSY : -EINVAL;
        s->coded_format = s->params[queue].format;
        return 0;
}

static int v4l2_get_control(BackendStream *bs, VideoControl control, uint32_t *ret) {
        V4l2Stream *s = to_stream(bs);
        uint32_t cid = v4l2_cid_from_control(control, s->coded_format);
        struct v4l2_control c = { .id = cid };
        int r;

        if (cid == 0 || !(s->b->caps.controls & (1u << control)))
                return -EOPNOTSUPP;
        if (control == VIDEO_CONTROL_FORCE_KEYFRAME)
                return -EOPNOTSUPP; /* a button: nothing to read (§4.12) */
        r = xioctl(s, VIDIOC_G_CTRL, &c);
        if (r == -EINVAL)
                return -EOPNOTSUPP;
        if (r < 0)
                return r;
        return v4l2_control_value_from_v4l2(control, s->coded_format, c.value, ret);
}

static int v4l2_set_control(BackendStream *bs, VideoControl control, uint32_t value) {
        V4l2Stream *s = to_stream(bs);
        uint32_t cid = v4l2_cid_from_control(control, s->coded_format);
        struct v4l2_control c = { .id = cid };
        int r;

        if (cid == 0 || !(s->b->caps.controls & (1u << control)))
                return -EOPNOTSUPP;
        r = v4l2_control_value_to_v4l2(control, s->coded_format, value, &c.value);
        if (r < 0)
                return r;
        r = xioctl(s, VIDIOC_S_CTRL, &c);
        if (r == -ERANGE || r == -EINVAL)
                return -EINVAL;
        if (r == -EACCES)
                return -EOPNOTSUPP;
        return r;
}

static int buffer_check(V4l2Stream *s, VideoBuffer *buf) {
        VideoParams *p = &s->params[buf->queue];
        bool raw = video_format_is_raw(p->format);

        if (buf->n_planes == 0 || buf->n_planes > VIDEO_MAX_PLANES)
                return -EINVAL;
        for (unsigned i = 0; i < buf->n_planes; i++)
                if (buf->planes[i].data_size > buf->planes[i].length ||
                    iov_size(buf->planes[i].iov, buf->planes[i].n_iov) < buf->planes[i].length)
                        return -EINVAL;
        /* Decoder output before the format is known: held, checked once it is (stale by then anyway). */
        if (is_decoder(s) && buf->queue == VIDEO_QUEUE_OUTPUT && (s->cap == CAP_UNKNOWN || s->await_clear))
                return 0;
        if (raw) {
                if (buf->n_planes != p->num_planes && buf->n_planes != s->q[buf->queue].n_mem_planes)
                        return -EINVAL;
                if (buf->n_planes == p->num_planes) {
                        for (unsigned i = 0; i < buf->n_planes; i++)
                                if (buf->planes[i].length < p->planes[i].plane_size)
                                        return -EINVAL;
                } else if (buf->planes[0].length < s->q[buf->queue].mem_plane_size[0])
                        return -EINVAL; /* one plane for the whole frame */
        } else {
                if (buf->n_planes != 1)
                        return -EINVAL;
                if (buf->queue == VIDEO_QUEUE_OUTPUT && buf->planes[0].length < p->planes[0].plane_size)
                        return -EINVAL;
                if (buf->queue == VIDEO_QUEUE_INPUT && buf->planes[0].data_size > s->q[0].mem_plane_size[0])
                        return -EINVAL;
        }
        return 0;
}

static int v4l2_queue_buffer(BackendStream *bs, VideoBuffer *buf) {
        V4l2Stream *s = to_stream(bs);
        uint64_t total = 0;
        int r;

        if ((unsigned) buf->queue >= _VIDEO_QUEUE_MAX)
                return -EINVAL;
        if (s->broken)
                return -EIO;
        r = buffer_check(s, buf);
        if (r < 0)
                return r;
        if (buf->queue == VIDEO_QUEUE_OUTPUT)
                s->out_since_clear = true;

        if (is_decoder(s) && buf->queue == VIDEO_QUEUE_OUTPUT && s->await_clear) {
                buflist_push(&s->stale, buf);
                return 0;
        }
        if (buf->queue == VIDEO_QUEUE_INPUT) {
                if (s->drain == DRAIN_WAIT_INPUT || s->drain == DRAIN_WAIT_LAST)
                        return -EBUSY; /* 7.2: no input while draining */
                for (unsigned i = 0; i < buf->n_planes; i++)
                        total += buf->planes[i].data_size;
                if (total == 0) {
                        /* V4L2 reads bytesused 0 as "the whole buffer": nothing to give the codec. */
                        post_buffer(s, buf, 0, buf->timestamp, NULL);
                        return 0;
                }
        }
        buflist_push(&s->q[buf->queue].pending, buf);
        stream_kick_or_fail(s);
        return 0;
}

static int v4l2_drain(BackendStream *bs) {
        V4l2Stream *s = to_stream(bs);
        Queue *in = &s->q[VIDEO_QUEUE_INPUT];

        if (s->broken)
                return -EIO;
        if (s->drain != DRAIN_NONE)
                return -EBUSY;
        /* The codec never got input (or was reset by a clear): nothing can come out, so the EOS goes
         * straight to the next output buffer. */
        if (!s->in_fed && !in->pending.head) {
                s->drain = DRAIN_NEED_EOS;
                drain_finish_eos(s);
                return 0;
        }
        /* Else STOP goes out once every held input is on the device and both queues stream (a codec with
         * a stopped queue ignores STOP, as vicodec does). */
        s->drain = DRAIN_WAIT_INPUT;
        stream_kick_or_fail(s);
        return 0;
}

static int v4l2_clear(BackendStream *bs, VideoQueue queue) {
        V4l2Stream *s = to_stream(bs);
        Queue *q;
        BufList l = {};
        bool was_streaming;
        int r = 0;

        if ((unsigned) queue >= _VIDEO_QUEUE_MAX)
                return -EINVAL;
        q = &s->q[queue];
        was_streaming = q->streaming;
        if (!s->broken)
                r = queue_streamoff(s, q, &l);
        /* dev-decoder.rst "Seek": STREAMOFF and STREAMON of OUTPUT, then the new bitstream. Queued to a
         * stopped OUTPUT queue instead, vicodec takes its first header for the stream's initial one: a
         * SOURCE_CHANGE without the LAST buffer a new size needs. */
        if (r >= 0 && !s->broken && queue == VIDEO_QUEUE_INPUT && is_decoder(s) && was_streaming)
                r = queue_streamon(s, q);
        if (queue == VIDEO_QUEUE_INPUT)
                s->in_fed = false;
        give_back_all(s, &l);
        give_back_all(s, &q->pending);
        if (queue == VIDEO_QUEUE_OUTPUT) {
                give_back_all(s, &s->stale);
                s->await_clear = false;
                s->out_since_clear = false;
                drain_capture_stopped(s);
        }
        if (queue == VIDEO_QUEUE_INPUT && s->drain != DRAIN_NONE) {
                /* STREAMOFF(OUTPUT) aborts a drain (dev-decoder.rst, dev-encoder.rst); backend.h: no
                 * drain_done then. A STOP already sent is undone by restarting CAPTURE. */
                if (s->drain == DRAIN_WAIT_LAST && s->q[VIDEO_QUEUE_OUTPUT].streaming)
                        r = r < 0 ? r : drain_over(s);
                s->drain = DRAIN_NONE;
        }
        stream_post(s, EV_CLEAR, NULL, NULL, queue);
        if (r < 0)
                stream_fail(s, r);
        else
                stream_kick_or_fail(s);
        return 0;
}

/* ---- backend: capabilities ------------------------------------------------------------------------ */

static void caps_frame_sizes(V4l2Backend *b, void *dev, uint32_t fourcc, VideoFormatDesc *d) {
        for (unsigned i = 0; i < MAX_ENUM && d->n_frames < VIDEO_MAX_FRAME_SIZES; i++) {
                struct v4l2_frmsizeenum fs = { .index = i, .pixel_format = fourcc };
                VideoFrameSize *f = &d->frames[d->n_frames];
                uint32_t w, h;

                if (b->ops->ioctl(dev, VIDIOC_ENUM_FRAMESIZES, &fs) < 0)
                        break;
                if (fs.type == V4L2_FRMSIZE_TYPE_DISCRETE) {
                        f->width = (VideoRange){ fs.discrete.width, fs.discrete.width, 0 };
                        f->height = (VideoRange){ fs.discrete.height, fs.discrete.height, 0 };
                        w = fs.discrete.width;
                        h = fs.discrete.height;
                } else {
                        bool cont = fs.type == V4L2_FRMSIZE_TYPE_CONTINUOUS;

                        f->width = (VideoRange){ fs.stepwise.min_width, fs.stepwise.max_width,
                                                 cont ? 1 : fs.stepwise.step_width };
                        f->height = (VideoRange){ fs.stepwise.min_height, fs.stepwise.max_height,
                                                  cont ? 1 : fs.stepwise.step_height };
                        w = fs.stepwise.max_width;
                        h = fs.stepwise.max_height;
                }
                for (unsigned j = 0; j < MAX_ENUM && f->n_rates < VIDEO_MAX_FRAME_RATES; j++) {
                        struct v4l2_frmivalenum fi = {
                                .index = j, .pixel_format = fourcc, .width = w, .height = h
                        };

                        if (b->ops->ioctl(dev, VIDIOC_ENUM_FRAMEINTERVALS, &fi) < 0)
                                break;
                        if (fi.type == V4L2_FRMIVAL_TYPE_DISCRETE) {
                                uint32_t fps;

                                if (fi.discrete.numerator == 0)
                                        continue;
                                fps = fi.discrete.denominator / fi.discrete.numerator;
                                /* §8.7: a discrete rate is min == max, not {rate, 0}. */
                                f->rates[f->n_rates++] = (VideoRange){ fps, fps, 0 };
                        } else {
                                /* Frames per second are the inverse of the intervals. */
                                uint32_t lo = fi.stepwise.max.numerator ? fi.stepwise.max.denominator /
                                                                                  fi.stepwise.max.numerator
                                                                        : 1;
                                uint32_t hi = fi.stepwise.min.numerator ? fi.stepwise.min.denominator /
                                                                                  fi.stepwise.min.numerator
                                                                        : lo;

                                f->rates[f->n_rates++] =
                                        (VideoRange){ MAX(lo, 1u), MAX(hi, MAX(lo, 1u)), 1 };
                                break;
                        }
                }
                d->n_frames++;
                if (fs.type != V4L2_FRMSIZE_TYPE_DISCRETE)
                        break;
        }
        if (d->n_frames == 0) {
                /* The device gives no sizes (common for coded formats): any size the other side takes. */
                d->frames[0].width = (VideoRange){ 16, 8192, 1 };
                d->frames[0].height = (VideoRange){ 16, 8192, 1 };
                d->n_frames = 1;
        }
}

static int caps_queue(V4l2Backend *b, void *dev, uint32_t type, VideoQueue vq, unsigned *ret_coded) {
        VideoCaps *c = &b->caps;
        unsigned coded = 0;

        for (unsigned i = 0; i < MAX_ENUM && c->n_formats[vq] < VIDEO_MAX_FORMATS; i++) {
                struct v4l2_fmtdesc fd = { .index = i, .type = type };
                VideoFormatDesc *d;
                uint32_t format;
                bool dup = false;
                int r;

                r = b->ops->ioctl(dev, VIDIOC_ENUM_FMT, &fd);
                if (r == -EINVAL)
                        break;
                if (r < 0)
                        return r;
                format = v4l2_format_from_fourcc(fd.pixelformat);
                if (format == 0)
                        continue;
                for (unsigned j = 0; j < c->n_formats[vq]; j++)
                        dup = dup || c->formats[vq][j].format == format;
                if (dup)
                        continue;
                b->fourcc[vq][c->n_formats[vq]] = fd.pixelformat;
                d = &c->formats[vq][c->n_formats[vq]++];
                d->format = format;
                if (video_format_is_raw(format))
                        d->planes_layout = VIDEO_PLANES_LAYOUT_SINGLE_BUFFER;
                else
                        coded++;
                caps_frame_sizes(b, dev, fd.pixelformat, d);
        }
        *ret_coded = coded;
        return 0;
}

static int caps_probe(V4l2Backend *b, VideoRole want) {
        struct v4l2_capability cap = {};
        unsigned coded_out = 0, coded_cap = 0;
        uint32_t caps_bits;
        void *dev = NULL;
        int r;

        r = b->ops->open(b->node, &dev);
        if (r < 0)
                return log_error_errno(r, "Could not open the V4L2 device: %m");
        r = b->ops->ioctl(dev, VIDIOC_QUERYCAP, &cap);
        if (r < 0) {
                log_error_errno(r, "VIDIOC_QUERYCAP failed: %m");
                goto out;
        }
        caps_bits = (cap.capabilities & V4L2_CAP_DEVICE_CAPS) ? cap.device_caps : cap.capabilities;
        if (caps_bits & V4L2_CAP_VIDEO_M2M_MPLANE)
                b->mplane = true;
        else if (caps_bits & V4L2_CAP_VIDEO_M2M)
                b->mplane = false;
        else {
                r = log_error_errno(-ENODEV, "'%.32s' is not a memory-to-memory device.",
                                    (const char *) cap.card);
                goto out;
        }
        if (!(caps_bits & V4L2_CAP_STREAMING)) {
                r = log_error_errno(-ENODEV, "'%.32s' has no streaming I/O.", (const char *) cap.card);
                goto out;
        }

        /* The V4L2 OUTPUT queue is our INPUT queue in both roles. */
        r = caps_queue(b, dev, b->mplane ? V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE : V4L2_BUF_TYPE_VIDEO_OUTPUT,
                       VIDEO_QUEUE_INPUT, &coded_out);
        if (r < 0)
                goto out;
        r = caps_queue(b, dev, b->mplane ? V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE : V4L2_BUF_TYPE_VIDEO_CAPTURE,
                       VIDEO_QUEUE_OUTPUT, &coded_cap);
        if (r < 0)
                goto out;

        if (coded_out > 0 && coded_cap == 0)
                b->role = VIDEO_ROLE_DECODER;
        else if (coded_cap > 0 && coded_out == 0)
                b->role = VIDEO_ROLE_ENCODER;
        else {
                r = log_error_errno(-ENODEV, "'%.32s' is not a stateful decoder or encoder.",
                                    (const char *) cap.card);
                goto out;
        }
        if (b->role != want) {
                r = log_error_errno(-ENODEV, "'%.32s' is a%s, not a%s.", (const char *) cap.card,
                                    b->role == VIDEO_ROLE_DECODER ? " decoder" : "n encoder",
                                    want == VIDEO_ROLE_DECODER ? " decoder" : "n encoder");
                goto out;
        }
        /* Keep only the raw side's formats as the "raw" queue, coded as the other; drop mismatches. */
        for (unsigned vq = 0; vq < _VIDEO_QUEUE_MAX; vq++) {
                bool want_coded = (vq == VIDEO_QUEUE_INPUT) == (b->role == VIDEO_ROLE_DECODER);
                unsigned n = 0;

                for (unsigned i = 0; i < b->caps.n_formats[vq]; i++)
                        if (video_format_is_coded(b->caps.formats[vq][i].format) == want_coded) {
                                b->fourcc[vq][n] = b->fourcc[vq][i];
                                b->caps.formats[vq][n++] = b->caps.formats[vq][i];
                        }
                b->caps.n_formats[vq] = n;
        }
        if (b->caps.n_formats[0] == 0 || b->caps.n_formats[1] == 0) {
                r = log_error_errno(-ENODEV, "'%.32s' has no format virtio-video knows on one side.",
                                    (const char *) cap.card);
                goto out;
        }
        /* §4.1: bit i means "to format i of the other queue's list"; any to any for these devices. */
        for (unsigned vq = 0; vq < _VIDEO_QUEUE_MAX; vq++) {
                unsigned other = b->caps.n_formats[!vq];
                uint64_t mask = other >= 64 ? UINT64_MAX : (UINT64_C(1) << other) - 1;

                for (unsigned i = 0; i < b->caps.n_formats[vq]; i++)
                        b->caps.formats[vq][i].mask = mask;
        }

        b->caps.role = b->role;
        for (unsigned c = VIDEO_CONTROL_BITRATE; c <= VIDEO_CONTROL_PREPEND_SPSPPS_TO_IDR; c++) {
                VideoQueue cq = b->role == VIDEO_ROLE_DECODER ? VIDEO_QUEUE_INPUT : VIDEO_QUEUE_OUTPUT;

                for (unsigned i = 0; i < b->caps.n_formats[cq]; i++) {
                        uint32_t cid =
                                v4l2_cid_from_control((VideoControl) c, b->caps.formats[cq][i].format);
                        struct v4l2_queryctrl qc = { .id = cid };

                        if (cid != 0 && b->ops->ioctl(dev, VIDIOC_QUERYCTRL, &qc) >= 0 &&
                            !(qc.flags & V4L2_CTRL_FLAG_DISABLED)) {
                                b->caps.controls |= 1u << c;
                                break;
                        }
                }
        }
        log_debug("V4L2 %s '%.32s': %u input and %u output formats, %s API.",
                  b->role == VIDEO_ROLE_DECODER ? "decoder" : "encoder", (const char *) cap.card,
                  b->caps.n_formats[0], b->caps.n_formats[1], b->mplane ? "multi-planar" : "single-planar");
        r = 0;
out:
        b->ops->close(dev);
        return r;
}

static int v4l2_query_control(
        Backend *bb, VideoControl control, uint32_t format, uint32_t *values, unsigned max_values) {
        V4l2Backend *b = (V4l2Backend *) bb;
        uint32_t cid = v4l2_cid_from_control(control, format);
        struct v4l2_queryctrl qc = { .id = cid };
        unsigned n = 0;
        void *dev = NULL;
        int r;

        if ((control != VIDEO_CONTROL_PROFILE && control != VIDEO_CONTROL_LEVEL) || cid == 0)
                return -EOPNOTSUPP;
        r = b->ops->open(b->node, &dev);
        if (r < 0)
                return r;
        r = b->ops->ioctl(dev, VIDIOC_QUERYCTRL, &qc);
        if (r < 0 || qc.type != V4L2_CTRL_TYPE_MENU || (qc.flags & V4L2_CTRL_FLAG_DISABLED)) {
                r = -EOPNOTSUPP;
                goto out;
        }
        for (int32_t i = qc.minimum; i <= qc.maximum && n < max_values; i++) {
                struct v4l2_querymenu qm = { .id = cid, .index = (uint32_t) i };
                uint32_t v;

                /* Items the driver skips answer EINVAL. */
                if (b->ops->ioctl(dev, VIDIOC_QUERYMENU, &qm) < 0)
                        continue;
                if (v4l2_control_value_from_v4l2(control, format, i, &v) < 0)
                        continue;
                values[n++] = v;
        }
        r = (int) n;
out:
        b->ops->close(dev);
        return r;
}

static const VideoCaps *v4l2_get_caps(Backend *bb) {
        return &((V4l2Backend *) bb)->caps;
}

static void v4l2_free(Backend *bb) {
        V4l2Backend *b = (V4l2Backend *) bb;

        if (!b)
                return;
        if (b->ops && b->ops->node_free)
                b->ops->node_free(b->node);
        sd_event_unref(b->event);
        free(b);
}

static const BackendOps *ops_for(VideoRole role) {
        return role == VIDEO_ROLE_DECODER ? &backend_v4l2_decoder_ops : &backend_v4l2_encoder_ops;
}

int backend_v4l2_new_with_ops(const V4l2DeviceOps *ops,
                              void *node,
                              VideoRole role,
                              const BackendConfig *config,
                              sd_event *event,
                              Backend **ret) {
        V4l2Backend *b;
        int r;

        if (!ops || !event || !ret)
                return -EINVAL;
        b = calloc(1, sizeof(*b));
        if (!b) {
                if (ops->node_free)
                        ops->node_free(node);
                return -ENOMEM;
        }
        b->base.ops = ops_for(role);
        b->ops = ops;
        b->node = node;
        b->force_copy = config && config->force_copy;
        b->event = sd_event_ref(event);
        r = caps_probe(b, role);
        if (r < 0) {
                v4l2_free(&b->base);
                return r;
        }
        *ret = &b->base;
        return 0;
}

static int new_for_role(VideoRole role, const BackendConfig *config, sd_event *event, Backend **ret) {
        void *node = NULL;
        int r;

        if (!config || (config->device_fd < 0 && !config->device_path))
                return log_error_errno(-EINVAL, "The V4L2 backends need a device (path or fd).");
        r = v4l2_device_node_new(config->device_path, config->device_fd, &node);
        if (r < 0)
                return r;
        return backend_v4l2_new_with_ops(&v4l2_device_libv4l2_ops, node, role, config, event, ret);
}

static int v4l2_decoder_new(const BackendConfig *config, sd_event *event, Backend **ret) {
        return new_for_role(VIDEO_ROLE_DECODER, config, event, ret);
}

static int v4l2_encoder_new(const BackendConfig *config, sd_event *event, Backend **ret) {
        return new_for_role(VIDEO_ROLE_ENCODER, config, event, ret);
}

#define V4L2_OPS_COMMON                                                                                  \
        .free = v4l2_free, .get_caps = v4l2_get_caps, .query_control = v4l2_query_control,               \
        .stream_new = v4l2_stream_new, .stream_free = v4l2_stream_free, .get_params = v4l2_get_params,   \
        .set_params = v4l2_set_params, .get_control = v4l2_get_control, .set_control = v4l2_set_control, \
        .queue_buffer = v4l2_queue_buffer, .drain = v4l2_drain, .clear = v4l2_clear

const BackendOps backend_v4l2_decoder_ops = {
        .name = "v4l2-decoder",
        .new = v4l2_decoder_new,
        V4L2_OPS_COMMON,
};

const BackendOps backend_v4l2_encoder_ops = {
        .name = "v4l2-encoder",
        .new = v4l2_encoder_new,
        V4L2_OPS_COMMON,
};
