/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <systemd/sd-event.h>

#include "backend/null/null-format.h"
#include "backend/registry.h"
#include "common/iov.h"
#include "common/log.h"
#include "common/macro.h"
#include "common/planar.h"

/*
 * The null backend: a software "codec" for the trivial null-frame format (null-format.h) that behaves
 * like a real stateful V4L2 codec, for tests and demos. "null" decodes (any input chunking, format_changed
 * on the first header and on size changes, output only into buffers queued after the change, drain with
 * EOS on an empty output buffer, asynchronous clear, a corrupt stream puts the stream in error);
 * "null-encoder" turns each raw picture into one frame. All work and every callback runs from a defer
 * source on the event loop, never inside an op.
 */

#define NULL_MAX_STREAMS 64u
#define NULL_INPUT_BUFFER_DEFAULT (1024u * 1024u)
#define NULL_INPUT_BUFFER_MIN 4096u
#define NULL_INPUT_BUFFER_MAX (32u * 1024u * 1024u)
#define NULL_MAX_STRIDE 16384u
#define NULL_DEFAULT_WIDTH 640u
#define NULL_DEFAULT_HEIGHT 480u
#define NULL_MAX_BUFFERS 32u

typedef struct NullBackend {
        Backend base;
        sd_event *event;
        bool encoder;
        VideoCaps caps;
        unsigned n_streams;
} NullBackend;

typedef struct Node {
        VideoBuffer *buf;
        uint64_t gen; /* output: the format generation it was queued under */
        struct Node *next;
} Node;

typedef struct Fifo {
        Node *head, *tail;
        unsigned n;
} Fifo;

typedef struct NullStream {
        BackendStream base;
        NullBackend *nb;
        const BackendStreamCallbacks *cb;
        void *userdata;
        sd_event_source *defer;

        Fifo q[_VIDEO_QUEUE_MAX];
        VideoParams params[_VIDEO_QUEUE_MAX];
        uint32_t controls[8];

        /* raw geometry: decoder output / encoder input */
        uint32_t width, height;
        bool have_format;
        uint64_t gen;

        /* decoder parser */
        uint8_t hdr[NULL_FRAME_HEADER_SIZE];
        size_t hdr_have;
        uint32_t fw, fh;
        uint8_t *frame;
        size_t frame_cap, payload_size, payload_have;
        bool frame_ready;
        uint64_t frame_ts;
        size_t in_off;

        uint32_t seq;
        bool draining;
        bool clear_pending[_VIDEO_QUEUE_MAX];
        bool errored, error_reported;
} NullStream;

/* ---- fifo ----------------------------------------------------------------------------------------------
 */

static int fifo_push(Fifo *f, VideoBuffer *buf, uint64_t gen) {
        Node *n = calloc(1, sizeof(*n));

        if (!n)
                return -ENOMEM;
        n->buf = buf;
        n->gen = gen;
        if (f->tail)
                f->tail->next = n;
        else
                f->head = n;
        f->tail = n;
        f->n++;
        return 0;
}

static VideoBuffer *fifo_pop(Fifo *f) {
        Node *n = f->head;
        VideoBuffer *buf;

        if (!n)
                return NULL;
        f->head = n->next;
        if (!f->head)
                f->tail = NULL;
        f->n--;
        buf = n->buf;
        free(n);
        return buf;
}

/* Removes and returns the first buffer queued under generation `gen`. */
static VideoBuffer *fifo_take_gen(Fifo *f, uint64_t gen) {
        for (Node **p = &f->head, *prev = NULL; *p; prev = *p, p = &(*p)->next) {
                Node *n = *p;
                if (n->gen != gen)
                        continue;
                *p = n->next;
                if (f->tail == n)
                        f->tail = prev;
                f->n--;
                VideoBuffer *buf = n->buf;
                free(n);
                return buf;
        }
        return NULL;
}

static bool fifo_has_gen(const Fifo *f, uint64_t gen) {
        for (const Node *n = f->head; n; n = n->next)
                if (n->gen == gen)
                        return true;
        return false;
}

static void fifo_clear(Fifo *f) {
        while (fifo_pop(f))
                ;
}

/* ---- raw picture layouts -------------------------------------------------------------------------------
 */

typedef struct Component {
        unsigned plane;
        size_t offset, stride;
        uint32_t width, rows; /* bytes per row, rows */
} Component;

static unsigned format_components(uint32_t format) {
        return format == VIDEO_FORMAT_NV12 ? 2 : 3;
}

/* Where each component (Y, then UV or U and V) of a w x h picture lives in the buffer described by p. */
static unsigned raw_layout(const VideoParams *p, uint32_t w, uint32_t h, Component c[3]) {
        unsigned n = format_components(p->format);
        bool multi = p->num_planes == n;

        if (p->format == VIDEO_FORMAT_NV12) {
                size_t s0 = p->planes[0].stride, s1 = multi ? p->planes[1].stride : s0;
                c[0] = (Component){ 0, 0, s0, w, h };
                c[1] = (Component){ multi ? 1 : 0, multi ? 0 : s0 * h, s1, w, h / 2 };
        } else {
                size_t s0 = p->planes[0].stride;
                size_t s1 = multi ? p->planes[1].stride : s0 / 2, s2 = multi ? p->planes[2].stride : s0 / 2;
                c[0] = (Component){ 0, 0, s0, w, h };
                c[1] = (Component){ multi ? 1 : 0, multi ? 0 : s0 * h, s1, w / 2, h / 2 };
                c[2] = (Component){ multi ? 2 : 0, multi ? 0 : s0 * h + s1 * (h / 2), s2, w / 2, h / 2 };
        }
        return n;
}

/* Fills in strides and plane sizes of raw params for w x h, keeping a larger stride the guest asked for. */
static int raw_params_fix(VideoParams *p, uint32_t w, uint32_t h) {
        unsigned n = format_components(p->format);
        bool multi = p->num_planes == n;
        uint32_t s0 = MAX(p->planes[0].stride, w);

        if (s0 > NULL_MAX_STRIDE)
                return -EINVAL;
        s0 = ALIGN_TO(s0, 2u);
        p->frame_width = w;
        p->frame_height = h;
        p->crop.left = p->crop.top = 0;
        p->crop.width = w;
        p->crop.height = h;
        if (!multi) {
                p->num_planes = 1;
                p->planes[0].stride = s0;
                p->planes[0].plane_size = s0 * h + s0 * (h / 2);
        } else if (p->format == VIDEO_FORMAT_NV12) {
                uint32_t s1 = MAX(p->planes[1].stride, w);
                if (s1 > NULL_MAX_STRIDE)
                        return -EINVAL;
                p->planes[0] = (typeof(p->planes[0])){ .stride = s0, .plane_size = s0 * h };
                p->planes[1] = (typeof(p->planes[1])){ .stride = s1, .plane_size = s1 * (h / 2) };
        } else {
                p->planes[0] = (typeof(p->planes[0])){ .stride = s0, .plane_size = s0 * h };
                for (unsigned i = 1; i < 3; i++) {
                        uint32_t s = MAX(p->planes[i].stride, w / 2);
                        if (s > NULL_MAX_STRIDE)
                                return -EINVAL;
                        p->planes[i] = (typeof(p->planes[i])){ .stride = s, .plane_size = s * (h / 2) };
                }
        }
        for (unsigned i = p->num_planes; i < VIDEO_MAX_PLANES; i++)
                p->planes[i] = (typeof(p->planes[i])){};
        return 0;
}

static bool raw_buffer_fits(const VideoParams *p, const VideoBuffer *buf) {
        if (buf->n_planes < p->num_planes)
                return false;
        for (unsigned i = 0; i < p->num_planes; i++)
                if (buf->planes[i].length < p->planes[i].plane_size)
                        return false;
        return true;
}

/* Chroma rows of NV12 are at most this wide (NULL_FRAME_MAX_DIM): the bounce rows live on the stack. */
#define NULL_MAX_ROW NULL_FRAME_MAX_DIM

/* Copies a component of `rows` rows of `width` bytes between the tightly packed picture (at `packed`)
 * and a raw plane (at `raw`, rows `stride` apart), moving both cursors. */
static bool
copy_rows(IovCursor *raw, size_t stride, IovCursor *packed, size_t width, size_t rows, bool to_raw) {
        IovCursor *dst = to_raw ? raw : packed, *src = to_raw ? packed : raw;

        if (stride == width) /* one run */
                return iov_cursor_copy(dst, src, width * rows) == width * rows;
        for (size_t r = 0; r < rows; r++) {
                if (iov_cursor_copy(dst, src, width) != width)
                        return false;
                if (r + 1 < rows && iov_cursor_skip(raw, stride - width) != stride - width)
                        return false;
        }
        return true;
}

/* NV12 chroma: rows of cw U and cw V bytes (two packed cursors) to / from interleaved rows of 2 * cw
 * bytes, `stride` apart. Rows that lie in one segment on every side are converted in place; a row split
 * across segments goes through bounce rows. */
static bool interleave_rows(
        IovCursor *raw, size_t stride, IovCursor *u, IovCursor *v, size_t cw, size_t rows, bool to_raw) {
        uint8_t ub[NULL_MAX_ROW / 2], vb[NULL_MAX_ROW / 2], row[NULL_MAX_ROW];

        if (cw > NULL_MAX_ROW / 2)
                return false;
        for (size_t r = 0; r < rows; r++) {
                size_t ul, vl, rl;
                uint8_t *up = iov_cursor_span(u, &ul), *vp = iov_cursor_span(v, &vl),
                        *rp = iov_cursor_span(raw, &rl);

                if (ul >= cw && vl >= cw && rl >= 2 * cw) {
                        if (to_raw)
                                planar_interleave(rp, up, vp, cw);
                        else
                                planar_deinterleave(up, vp, rp, cw);
                        (void) iov_cursor_skip(u, cw);
                        (void) iov_cursor_skip(v, cw);
                        (void) iov_cursor_skip(raw, 2 * cw);
                } else if (to_raw) {
                        if (iov_cursor_read(u, ub, cw) != cw || iov_cursor_read(v, vb, cw) != cw)
                                return false;
                        planar_interleave(row, ub, vb, cw);
                        if (iov_cursor_write(raw, row, 2 * cw) != 2 * cw)
                                return false;
                } else {
                        if (iov_cursor_read(raw, row, 2 * cw) != 2 * cw)
                                return false;
                        planar_deinterleave(ub, vb, row, cw);
                        if (iov_cursor_write(u, ub, cw) != cw || iov_cursor_write(v, vb, cw) != cw)
                                return false;
                }
                if (r + 1 < rows && iov_cursor_skip(raw, stride - 2 * cw) != stride - 2 * cw)
                        return false;
        }
        return true;
}

/* Converts between a tightly packed I420 picture (the null-frame payload: bytes [offset, offset + w*h*3/2)
 * of `packed`) and the raw buffer `buf` in layout p: into buf (to_raw) or out of it. Each byte is copied
 * once, straight between the two iovec arrays. False when a side is too short, which buffers checked by
 * raw_buffer_fits() and a complete payload never are. */
static bool raw_convert(const VideoParams *p,
                        uint32_t w,
                        uint32_t h,
                        const VideoBuffer *buf,
                        const struct iovec *packed,
                        unsigned n_packed,
                        size_t offset,
                        bool to_raw) {
        Component c[3];
        unsigned n = raw_layout(p, w, h, c);
        size_t ysz = (size_t) w * h, csz = (size_t) (w / 2) * (h / 2);
        IovCursor src[3], dst;

        iov_cursor_init(&src[0], packed, n_packed, offset);
        iov_cursor_init(&src[1], packed, n_packed, offset + ysz);
        iov_cursor_init(&src[2], packed, n_packed, offset + ysz + csz);
        for (unsigned k = 0; k < n; k++) {
                const VideoPlane *pl = &buf->planes[c[k].plane];
                bool ok;

                if (c[k].plane >= buf->n_planes || c[k].stride < c[k].width)
                        return false;
                iov_cursor_init(&dst, pl->iov, pl->n_iov, c[k].offset);
                if (p->format == VIDEO_FORMAT_NV12 && k == 1)
                        ok = interleave_rows(&dst, c[k].stride, &src[1], &src[2], w / 2, c[k].rows, to_raw);
                else
                        ok = copy_rows(&dst, c[k].stride, &src[k], c[k].width, c[k].rows, to_raw);
                if (!ok)
                        return false;
        }
        return true;
}

/* ---- common stream plumbing ----------------------------------------------------------------------------
 */

static void schedule(NullStream *s) {
        (void) sd_event_source_set_enabled(s->defer, SD_EVENT_ONESHOT);
}

static void
give_back(NullStream *s, VideoBuffer *buf, uint32_t flags, uint64_t timestamp, const uint32_t *sizes) {
        VideoBufferResult res = { .flags = flags, .timestamp = timestamp };

        if (sizes)
                memcpy(res.sizes, sizes, sizeof(res.sizes));
        s->cb->buffer_done(s->userdata, buf, &res);
}

static void fail_stream(NullStream *s, int error) {
        s->errored = true;
        if (!s->error_reported) {
                s->error_reported = true;
                s->cb->error(s->userdata, error);
        }
}

/* Clears requested by clear(): every buffer of the queue back with ERR, then clear_done (backend.h). */
static void run_clears(NullStream *s) {
        for (VideoQueue q = 0; q < _VIDEO_QUEUE_MAX; q++) {
                VideoBuffer *buf;

                if (!s->clear_pending[q])
                        continue;
                s->clear_pending[q] = false;
                while ((buf = fifo_pop(&s->q[q])))
                        give_back(s, buf, VIDEO_BUFFER_F_ERR, 0, NULL);
                if (q == VIDEO_QUEUE_INPUT) {
                        /* A seek: forget partial data and a parsed frame, cancel the drain, recover. */
                        s->hdr_have = s->payload_have = s->in_off = 0;
                        s->frame_ready = false;
                        s->draining = false;
                        s->errored = s->error_reported = false;
                }
                s->cb->clear_done(s->userdata, q);
        }
}

/* End of a drain: one empty output buffer with EOS, then drain_done (§7.4). */
static bool finish_drain(NullStream *s, uint64_t gen) {
        VideoBuffer *out = fifo_take_gen(&s->q[VIDEO_QUEUE_OUTPUT], gen);

        if (!out)
                return false;
        s->draining = false;
        give_back(s, out, VIDEO_BUFFER_F_EOS, 0, NULL);
        s->cb->drain_done(s->userdata);
        return true;
}

/* ---- decoder -------------------------------------------------------------------------------------------
 */

static void decoder_set_geometry(NullStream *s, uint32_t w, uint32_t h) {
        VideoParams *out = &s->params[VIDEO_QUEUE_OUTPUT];

        s->width = w;
        s->height = h;
        /* The decoder picks the layout for the new size (strides = width); the guest may ask for more. */
        for (unsigned i = 0; i < VIDEO_MAX_PLANES; i++)
                out->planes[i].stride = 0;
        (void) raw_params_fix(out, w, h); /* cannot fail: w <= 4096 */
        s->params[VIDEO_QUEUE_INPUT].frame_width = w;
        s->params[VIDEO_QUEUE_INPUT].frame_height = h;
}

static int decoder_parse_header(NullStream *s) {
        uint16_t w, h;
        uint32_t size;

        memcpy(&w, s->hdr + 4, 2);
        memcpy(&h, s->hdr + 6, 2);
        memcpy(&size, s->hdr + 8, 4);
        w = le16toh(w);
        h = le16toh(h);
        size = le32toh(size);
        if (memcmp(s->hdr, NULL_FRAME_MAGIC, 4) != 0 || w < NULL_FRAME_MIN_DIM || w > NULL_FRAME_MAX_DIM ||
            h < NULL_FRAME_MIN_DIM || h > NULL_FRAME_MAX_DIM || (w | h) & 1 ||
            size != null_frame_payload_size(w, h))
                return -EBADMSG;

        s->fw = w;
        s->fh = h;
        s->payload_size = size;
        s->payload_have = 0;
        if (!s->have_format || w != s->width || h != s->height) {
                /* Output buffers queued before this point are stale until the guest clears them. */
                s->have_format = true;
                s->gen++;
                decoder_set_geometry(s, w, h);
                s->cb->format_changed(s->userdata);
        }
        return 0;
}

/* The staging buffer for a frame whose payload is split across input buffers (or arrives when no output
 * buffer is there): allocated on first use, kept for the next frames. */
static int decoder_stage_alloc(NullStream *s) {
        uint8_t *f;

        if (s->frame_cap >= s->payload_size)
                return 0;
        f = realloc(s->frame, s->payload_size);
        if (!f)
                return -ENOMEM;
        s->frame = f;
        s->frame_cap = s->payload_size;
        return 0;
}

/* Writes the frame of the current geometry from `packed` (its payload at `offset`) into an output buffer;
 * returns the result flags and fills sizes[]. */
static uint32_t decoder_fill(NullStream *s,
                             VideoBuffer *out,
                             const struct iovec *packed,
                             unsigned n,
                             size_t offset,
                             uint32_t *sizes) {
        const VideoParams *p = &s->params[VIDEO_QUEUE_OUTPUT];

        /* Cannot fail for a buffer that passed raw_buffer_fits(); never hand out a partial picture. */
        if (!raw_convert(p, s->width, s->height, out, packed, n, offset, /* to_raw= */ true))
                return VIDEO_BUFFER_F_ERR;
        for (unsigned i = 0; i < p->num_planes; i++)
                sizes[i] = p->planes[i].plane_size;
        return 0;
}

/* Gives the head input buffer back once all of its payload is consumed. */
static void decoder_input_consumed(NullStream *s, VideoBuffer *in) {
        if (s->in_off < in->planes[0].data_size)
                return;
        s->in_off = 0;
        give_back(s, fifo_pop(&s->q[VIDEO_QUEUE_INPUT]), 0, in->timestamp, NULL);
}

/* Consumes bytes of the head input buffer; returns false when nothing more can happen now. */
static bool decoder_consume(NullStream *s) {
        VideoBuffer *in = s->q[VIDEO_QUEUE_INPUT].head ? s->q[VIDEO_QUEUE_INPUT].head->buf : NULL;
        const VideoPlane *pl;
        VideoBuffer *out;
        int r;

        if (!in)
                return false;
        pl = &in->planes[0];
        if (s->in_off < pl->data_size) {
                size_t avail = pl->data_size - s->in_off, k;

                if (s->hdr_have < NULL_FRAME_HEADER_SIZE) {
                        if (s->hdr_have == 0)
                                s->frame_ts = in->timestamp; /* the input where the frame starts */
                        k = MIN(avail, NULL_FRAME_HEADER_SIZE - s->hdr_have);
                        iov_to_buf(pl->iov, pl->n_iov, s->in_off, s->hdr + s->hdr_have, k);
                        s->hdr_have += k;
                        s->in_off += k;
                        if (s->hdr_have == NULL_FRAME_HEADER_SIZE) {
                                r = decoder_parse_header(s);
                                if (r < 0) {
                                        log_debug_errno(r, "null: corrupt stream: %m");
                                        s->in_off = 0;
                                        give_back(s, fifo_pop(&s->q[VIDEO_QUEUE_INPUT]), VIDEO_BUFFER_F_ERR,
                                                  in->timestamp, NULL);
                                        fail_stream(s, r);
                                        return false;
                                }
                        }
                } else if (s->payload_have == 0 && avail >= s->payload_size &&
                           (out = fifo_take_gen(&s->q[VIDEO_QUEUE_OUTPUT], s->gen))) {
                        /* The whole payload is in this input and an output buffer is waiting: convert from
                         * guest buffer to guest buffer, without staging. */
                        uint32_t sizes[VIDEO_MAX_PLANES] = {};
                        uint32_t flags = decoder_fill(s, out, pl->iov, pl->n_iov, s->in_off, sizes);

                        s->in_off += s->payload_size;
                        s->hdr_have = 0;
                        /* The input goes back before the output, as on the staged path. */
                        decoder_input_consumed(s, in);
                        give_back(s, out, flags, s->frame_ts, sizes);
                        return true;
                } else {
                        if (s->payload_have == 0) {
                                r = decoder_stage_alloc(s);
                                if (r < 0) {
                                        fail_stream(s, r);
                                        return false;
                                }
                        }
                        k = MIN(avail, s->payload_size - s->payload_have);
                        iov_to_buf(pl->iov, pl->n_iov, s->in_off, s->frame + s->payload_have, k);
                        s->payload_have += k;
                        s->in_off += k;
                }
                if (s->hdr_have == NULL_FRAME_HEADER_SIZE && s->payload_have == s->payload_size) {
                        s->frame_ready = true;
                        s->hdr_have = s->payload_have = 0;
                }
        }
        decoder_input_consumed(s, in);
        return true;
}

static void decoder_run(NullStream *s) {
        for (;;) {
                if (s->errored) {
                        VideoBuffer *in;
                        while ((in = fifo_pop(&s->q[VIDEO_QUEUE_INPUT])))
                                give_back(s, in, VIDEO_BUFFER_F_ERR, in->timestamp, NULL);
                        return;
                }
                if (s->frame_ready) {
                        VideoBuffer *out = fifo_take_gen(&s->q[VIDEO_QUEUE_OUTPUT], s->gen);
                        struct iovec staged = { s->frame, s->payload_size };

                        if (!out)
                                return; /* wait for an output buffer of the current format */
                        uint32_t sizes[VIDEO_MAX_PLANES] = {};
                        uint32_t flags = decoder_fill(s, out, &staged, 1, 0, sizes);

                        s->frame_ready = false;
                        give_back(s, out, flags, s->frame_ts, sizes);
                        continue;
                }
                if (decoder_consume(s))
                        continue;
                if (s->draining && !s->q[VIDEO_QUEUE_INPUT].head) {
                        /* A partial frame at the end of the stream is dropped, as decoders do. */
                        s->hdr_have = s->payload_have = 0;
                        (void) finish_drain(s, s->gen);
                }
                return;
        }
}

/* ---- encoder -------------------------------------------------------------------------------------------
 */

static void encoder_run(NullStream *s) {
        for (;;) {
                const VideoParams *p = &s->params[VIDEO_QUEUE_INPUT];
                VideoBuffer *in = s->q[VIDEO_QUEUE_INPUT].head ? s->q[VIDEO_QUEUE_INPUT].head->buf : NULL;
                VideoBuffer *out;
                uint8_t hdr[NULL_FRAME_HEADER_SIZE];
                size_t payload;
                uint32_t sizes[VIDEO_MAX_PLANES] = {};

                if (!in) {
                        if (s->draining)
                                (void) finish_drain(s, s->gen);
                        return;
                }
                out = fifo_take_gen(&s->q[VIDEO_QUEUE_OUTPUT], s->gen);
                if (!out)
                        return;
                (void) fifo_pop(&s->q[VIDEO_QUEUE_INPUT]);
                /* `in` belongs to the device model again once given back: read it first. */
                uint64_t ts = in->timestamp;

                payload = null_frame_payload_size(s->width, s->height);
                /* The picture goes straight from the raw input into the frame's payload. */
                if (out->planes[0].length < NULL_FRAME_HEADER_SIZE + payload ||
                    !raw_convert(p, s->width, s->height, in, out->planes[0].iov, out->planes[0].n_iov,
                                 NULL_FRAME_HEADER_SIZE, /* to_raw= */ false)) {
                        /* The output buffer cannot hold the frame: fail both, as a codec would. */
                        give_back(s, in, VIDEO_BUFFER_F_ERR, ts, NULL);
                        give_back(s, out, VIDEO_BUFFER_F_ERR, ts, NULL);
                        continue;
                }
                null_frame_write_header(hdr, (uint16_t) s->width, (uint16_t) s->height, s->seq++);
                buf_to_iov(out->planes[0].iov, out->planes[0].n_iov, 0, hdr, sizeof(hdr));
                sizes[0] = (uint32_t) (sizeof(hdr) + payload);
                give_back(s, in, 0, ts, NULL);
                /* Every null frame stands alone: all are key frames. */
                give_back(s, out, VIDEO_BUFFER_F_IFRAME, ts, sizes);
        }
}

static void encoder_set_geometry(NullStream *s, uint32_t w, uint32_t h) {
        size_t payload = null_frame_payload_size(w, h);
        VideoParams *out = &s->params[VIDEO_QUEUE_OUTPUT];

        s->width = w;
        s->height = h;
        out->frame_width = w;
        out->frame_height = h;
        out->planes[0].plane_size =
                MAX(out->planes[0].plane_size, (uint32_t) (NULL_FRAME_HEADER_SIZE + payload));
}

/* ---- ops -----------------------------------------------------------------------------------------------
 */

static int on_defer(sd_event_source *source, void *userdata) {
        NullStream *s = userdata;

        run_clears(s);
        if (s->nb->encoder)
                encoder_run(s);
        else
                decoder_run(s);
        return 0;
}

static VideoQueue raw_queue(const NullStream *s) {
        return s->nb->encoder ? VIDEO_QUEUE_INPUT : VIDEO_QUEUE_OUTPUT;
}

static int null_stream_new(Backend *b,
                           uint32_t coded_format,
                           const BackendStreamCallbacks *callbacks,
                           void *userdata,
                           BackendStream **ret) {
        NullBackend *nb = (NullBackend *) b;
        NullStream *s;
        VideoQueue rq, cq;
        int r = 0;

        if (coded_format != VIDEO_FORMAT_FWHT)
                return -EINVAL;
        if (nb->n_streams >= NULL_MAX_STREAMS)
                return -ENOSPC;
        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->base.backend = b;
        s->nb = nb;
        s->cb = callbacks;
        s->userdata = userdata;
        r = sd_event_add_defer(nb->event, &s->defer, on_defer, s);
        if (r < 0) {
                free(s);
                return r;
        }
        (void) sd_event_source_set_enabled(s->defer, SD_EVENT_OFF);
        (void) sd_event_source_set_description(s->defer, "null-codec");

        rq = raw_queue(s);
        cq = rq == VIDEO_QUEUE_INPUT ? VIDEO_QUEUE_OUTPUT : VIDEO_QUEUE_INPUT;
        s->params[cq] = (VideoParams){
                .format = VIDEO_FORMAT_FWHT,
                .min_buffers = 1,
                .max_buffers = NULL_MAX_BUFFERS,
                .num_planes = 1,
                .planes[0].plane_size = NULL_INPUT_BUFFER_DEFAULT,
        };
        s->params[rq] = (VideoParams){
                .format = VIDEO_FORMAT_NV12,
                .min_buffers = 1,
                .max_buffers = NULL_MAX_BUFFERS,
                .num_planes = 1,
        };
        s->controls[VIDEO_CONTROL_BITRATE] = 1000000;
        s->controls[VIDEO_CONTROL_BITRATE_PEAK] = 2000000;
        s->controls[VIDEO_CONTROL_BITRATE_MODE] = VIDEO_BITRATE_MODE_VBR;
        if (nb->encoder)
                encoder_set_geometry(s, NULL_DEFAULT_WIDTH, NULL_DEFAULT_HEIGHT);
        r = raw_params_fix(&s->params[rq], NULL_DEFAULT_WIDTH, NULL_DEFAULT_HEIGHT);
        if (r < 0) {
                sd_event_source_disable_unref(s->defer);
                free(s->frame);
                free(s);
                return r;
        }
        if (!nb->encoder) {
                s->width = NULL_DEFAULT_WIDTH;
                s->height = NULL_DEFAULT_HEIGHT;
        }
        nb->n_streams++;
        *ret = &s->base;
        return 0;
}

static void null_stream_free(BackendStream *bs) {
        NullStream *s = (NullStream *) bs;

        if (!s)
                return;
        sd_event_source_disable_unref(s->defer);
        for (VideoQueue q = 0; q < _VIDEO_QUEUE_MAX; q++)
                fifo_clear(&s->q[q]);
        free(s->frame);
        s->nb->n_streams--;
        free(s);
}

static int null_get_params(BackendStream *bs, VideoQueue q, VideoParams *ret) {
        NullStream *s = (NullStream *) bs;

        if (q >= _VIDEO_QUEUE_MAX)
                return -EINVAL;
        *ret = s->params[q];
        return 0;
}

static int null_set_params(BackendStream *bs, VideoQueue q, const VideoParams *params) {
        NullStream *s = (NullStream *) bs;
        VideoParams p;
        int r;

        if (q >= _VIDEO_QUEUE_MAX)
                return -EINVAL;
        p = s->params[q];
        if (q != raw_queue(s)) {
                /* Coded side: only the buffer size is the guest's choice (the format is always ours). */
                if (params->num_planes >= 1 && params->planes[0].plane_size != 0)
                        p.planes[0].plane_size =
                                MIN(MAX(params->planes[0].plane_size, NULL_INPUT_BUFFER_MIN),
                                    NULL_INPUT_BUFFER_MAX);
                if (s->nb->encoder)
                        p.planes[0].plane_size =
                                MAX(p.planes[0].plane_size,
                                    (uint32_t) (NULL_FRAME_HEADER_SIZE +
                                                null_frame_payload_size(s->width, s->height)));
                if (!s->nb->encoder && params->frame_width && params->frame_height) {
                        p.frame_width = params->frame_width;
                        p.frame_height = params->frame_height;
                }
                if (params->frame_rate)
                        p.frame_rate = params->frame_rate;
                s->params[q] = p;
                return 0;
        }

        /* Raw side. */
        if (s->q[q].n > 0 && fifo_has_gen(&s->q[q], s->gen))
                return -EBUSY;
        if (params->format == VIDEO_FORMAT_NV12 || params->format == VIDEO_FORMAT_YUV420)
                p.format = params->format;
        p.num_planes = params->num_planes;
        for (unsigned i = 0; i < VIDEO_MAX_PLANES; i++)
                p.planes[i].stride = i < params->num_planes ? params->planes[i].stride : 0;
        if (params->frame_rate)
                p.frame_rate = params->frame_rate;

        uint32_t w = s->width, h = s->height;
        /* The guest picks the size of what it feeds an encoder, and a decoder's size until the stream
         * tells (a real decoder would be reconfigured by the first header anyway). */
        if ((s->nb->encoder || !s->have_format) && params->frame_width && params->frame_height) {
                w = ALIGN_TO(MIN(MAX(params->frame_width, NULL_FRAME_MIN_DIM), NULL_FRAME_MAX_DIM), 2u);
                h = ALIGN_TO(MIN(MAX(params->frame_height, NULL_FRAME_MIN_DIM), NULL_FRAME_MAX_DIM), 2u);
        }
        r = raw_params_fix(&p, w, h);
        if (r < 0)
                return r;
        if (s->nb->encoder)
                encoder_set_geometry(s, w, h);
        else {
                s->width = w;
                s->height = h;
        }
        s->params[q] = p;
        return 0;
}

static bool control_supported(const NullStream *s, VideoControl control) {
        return control < ELEMENTSOF(s->controls) && (s->nb->caps.controls & (1u << control));
}

static int null_get_control(BackendStream *bs, VideoControl control, uint32_t *ret) {
        NullStream *s = (NullStream *) bs;

        if (!control_supported(s, control) || control == VIDEO_CONTROL_FORCE_KEYFRAME)
                return -EOPNOTSUPP;
        *ret = s->controls[control];
        return 0;
}

static int null_set_control(BackendStream *bs, VideoControl control, uint32_t value) {
        NullStream *s = (NullStream *) bs;

        if (!control_supported(s, control))
                return -EOPNOTSUPP;
        if (control == VIDEO_CONTROL_BITRATE_MODE && value > VIDEO_BITRATE_MODE_CBR)
                return -EINVAL;
        if (control == VIDEO_CONTROL_PREPEND_SPSPPS_TO_IDR && value > 1)
                return -EINVAL;
        if ((control == VIDEO_CONTROL_BITRATE || control == VIDEO_CONTROL_BITRATE_PEAK) && value == 0)
                return -EINVAL;
        if (control != VIDEO_CONTROL_FORCE_KEYFRAME) /* every null frame is a key frame already */
                s->controls[control] = value;
        return 0;
}

static int null_queue_buffer(BackendStream *bs, VideoBuffer *buf) {
        NullStream *s = (NullStream *) bs;
        VideoQueue q = buf->queue;
        int r;

        if (q >= _VIDEO_QUEUE_MAX || buf->n_planes < 1)
                return -EINVAL;
        if (s->clear_pending[q])
                return -EBUSY;
        if (q == VIDEO_QUEUE_INPUT && s->draining)
                return -EBUSY;
        if (q == raw_queue(s)) {
                /* Buffers queued before the first format are stale anyway; check the others. */
                if ((s->nb->encoder || s->have_format) && !raw_buffer_fits(&s->params[q], buf))
                        return -EINVAL;
        } else if (buf->n_planes != 1)
                return -EINVAL;
        r = fifo_push(&s->q[q], buf, s->gen);
        if (r < 0)
                return r;
        schedule(s);
        return 0;
}

static int null_drain(BackendStream *bs) {
        NullStream *s = (NullStream *) bs;

        if (s->draining)
                return -EBUSY;
        s->draining = true;
        schedule(s);
        return 0;
}

static int null_clear(BackendStream *bs, VideoQueue q) {
        NullStream *s = (NullStream *) bs;

        if (q >= _VIDEO_QUEUE_MAX)
                return -EINVAL;
        if (s->clear_pending[q])
                return -EBUSY;
        s->clear_pending[q] = true;
        schedule(s);
        return 0;
}

static int null_query_control(
        Backend *b, VideoControl control, uint32_t format, uint32_t *values, unsigned max_values) {
        /* FWHT has neither profiles nor levels (§5.8). */
        return -EOPNOTSUPP;
}

static const VideoCaps *null_get_caps(Backend *b) {
        return &((NullBackend *) b)->caps;
}

static void caps_init(VideoCaps *caps, bool encoder) {
        VideoQueue cq = encoder ? VIDEO_QUEUE_OUTPUT : VIDEO_QUEUE_INPUT;
        VideoQueue rq = encoder ? VIDEO_QUEUE_INPUT : VIDEO_QUEUE_OUTPUT;
        const VideoFrameSize frame = {
                .width = { NULL_FRAME_MIN_DIM, NULL_FRAME_MAX_DIM, 2 },
                .height = { NULL_FRAME_MIN_DIM, NULL_FRAME_MAX_DIM, 2 },
                .n_rates = 1,
                .rates[0] = { 1, 60, 1 },
        };

        *caps = (VideoCaps){ .role = encoder ? VIDEO_ROLE_ENCODER : VIDEO_ROLE_DECODER };
        caps->n_formats[cq] = 1;
        caps->formats[cq][0] = (VideoFormatDesc){
                .format = VIDEO_FORMAT_FWHT,
                .mask = 0x3, /* both raw formats of the other list */
                .planes_layout = VIDEO_PLANES_LAYOUT_SINGLE_BUFFER,
                .n_frames = 1,
                .frames[0] = frame,
        };
        caps->n_formats[rq] = 2;
        for (unsigned i = 0; i < 2; i++)
                caps->formats[rq][i] = (VideoFormatDesc){
                        .format = i == 0 ? VIDEO_FORMAT_NV12 : VIDEO_FORMAT_YUV420,
                        .mask = 0x1,
                        .planes_layout = VIDEO_PLANES_LAYOUT_SINGLE_BUFFER | VIDEO_PLANES_LAYOUT_PER_PLANE,
                        .n_frames = 1,
                        .frames[0] = frame,
                };
        if (encoder)
                caps->controls = (1u << VIDEO_CONTROL_BITRATE) | (1u << VIDEO_CONTROL_BITRATE_MODE) |
                                 (1u << VIDEO_CONTROL_BITRATE_PEAK) | (1u << VIDEO_CONTROL_FORCE_KEYFRAME) |
                                 (1u << VIDEO_CONTROL_PREPEND_SPSPPS_TO_IDR);
}

static int null_new_common(sd_event *event, bool encoder, Backend **ret) {
        NullBackend *nb = calloc(1, sizeof(*nb));

        if (!nb)
                return -ENOMEM;
        nb->event = sd_event_ref(event);
        nb->encoder = encoder;
        caps_init(&nb->caps, encoder);
        *ret = &nb->base;
        return 0;
}

static int null_decoder_new(const BackendConfig *config, sd_event *event, Backend **ret) {
        return null_new_common(event, false, ret);
}

static int null_encoder_new(const BackendConfig *config, sd_event *event, Backend **ret) {
        return null_new_common(event, true, ret);
}

static void null_free(Backend *b) {
        NullBackend *nb = (NullBackend *) b;

        if (!nb)
                return;
        assert(nb->n_streams == 0);
        sd_event_unref(nb->event);
        free(nb);
}

const BackendOps null_decoder_ops = {
        .name = "null",
        .new = null_decoder_new,
        .free = null_free,
        .get_caps = null_get_caps,
        .query_control = null_query_control,
        .stream_new = null_stream_new,
        .stream_free = null_stream_free,
        .get_params = null_get_params,
        .set_params = null_set_params,
        .get_control = null_get_control,
        .set_control = null_set_control,
        .queue_buffer = null_queue_buffer,
        .drain = null_drain,
        .clear = null_clear,
};

const BackendOps null_encoder_ops = {
        .name = "null-encoder",
        .new = null_encoder_new,
        .free = null_free,
        .get_caps = null_get_caps,
        .query_control = null_query_control,
        .stream_new = null_stream_new,
        .stream_free = null_stream_free,
        .get_params = null_get_params,
        .set_params = null_set_params,
        .get_control = null_get_control,
        .set_control = null_set_control,
        .queue_buffer = null_queue_buffer,
        .drain = null_drain,
        .clear = null_clear,
};
