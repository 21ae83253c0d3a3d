/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Whole decoder and encoder sessions in the guest driver's command order (virtio-video-v3.md §7.3). */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/macro.h"
#include "frontend/video-client.h"
#include "video/virtio-video-proto.h"

#define SESSION_MAX_BUFFERS 32
#define DEFAULT_INPUT_BUFFER_SIZE (1u << 20)

typedef struct Buf {
        uint32_t id;
        bool queued;
        bool live; /* created and not destroyed */
} Buf;

typedef struct Decoder {
        VideoClient *c;
        const VcDecodeOptions *o;
        VcDecodeResult *res;
        uint32_t next_id;
        Buf in[SESSION_MAX_BUFFERS];
        unsigned n_in;
        uint32_t in_size;
        Buf out[SESSION_MAX_BUFFERS];
        unsigned n_out;
        VcParams outp;
        uint8_t *scratch;
        size_t scratch_size;
        size_t pos;     /* bytes of the bitstream queued */
        unsigned chunk; /* next chunk index */
        bool created, drain_sent, eos;
        bool changing; /* between the resolution change event and the output buffers' destruction */
        uint64_t drain_tag;
} Decoder;

static int check(int r) {
        /* A device error reply where OK was needed ends the session: report it as a protocol error. */
        return r > 0 ? -EREMOTEIO : r;
}

/* Whether a failed session may still talk to the device (to destroy its stream). */
static bool transport_alive(int r) {
        return r != -ETIMEDOUT && r != -ECONNRESET && r != -EPIPE && r != -ENOMEM;
}

static size_t next_chunk_size(Decoder *d) {
        size_t left = d->o->size - d->pos;

        if (d->o->chunk_sizes)
                return d->chunk < d->o->n_chunks ? MIN(d->o->chunk_sizes[d->chunk], left) : 0;
        return MIN(left, (size_t) d->in_size);
}

static bool input_done(Decoder *d) {
        if (d->o->chunk_sizes)
                return d->chunk >= d->o->n_chunks || d->pos >= d->o->size;
        return d->pos >= d->o->size;
}

static int queue_inputs(Decoder *d) {
        for (unsigned i = 0; i < d->n_in && !input_done(d); i++) {
                Buf *b = &d->in[i];
                uint32_t size;
                int r;

                if (b->queued)
                        continue;
                size = (uint32_t) next_chunk_size(d);
                if (size > d->in_size)
                        return -E2BIG;
                r = video_client_resource_write(d->c, d->o->stream_id, VIRTIO_VIDEO_QUEUE_TYPE_INPUT, b->id,
                                                0, 0, d->o->bitstream + d->pos, size);
                if (r < 0)
                        return r;
                /* Linux passes nanoseconds from a timeval: multiples of 1000 (§4.6). */
                r = video_client_resource_queue(d->c, d->o->stream_id, VIRTIO_VIDEO_QUEUE_TYPE_INPUT, b->id,
                                                (uint64_t) (d->chunk + 1) * 1000, 1, &size);
                if (r < 0)
                        return r;
                b->queued = true;
                d->pos += size;
                d->chunk++;
        }
        return 0;
}

static int queue_output(Decoder *d, Buf *b) {
        uint32_t zero[VC_MAX_PLANES] = {};
        int r;

        r = video_client_resource_queue(d->c, d->o->stream_id, VIRTIO_VIDEO_QUEUE_TYPE_OUTPUT, b->id, 0,
                                        d->outp.num_planes, zero);
        if (r < 0)
                return r;
        b->queued = true;
        return 0;
}

static int on_completion(Decoder *d, const VcCompletion *v);

/* §7.3 step 10: the event, then STREAMOFF(CAPTURE), REQBUFS(0), G_FMT, REQBUFS(m), QBUF. */
static int on_resolution_change(Decoder *d) {
        bool ext = !d->o->legacy_params;
        uint32_t sizes[VC_MAX_PLANES];
        size_t total = 0;
        int r;

        if (d->n_out > 0) {
                VcCompletion v;

                /* Events and completions come on separate queues without order between them (§7.3): the
                 * device may have completed old-size pictures after the event was seen. The clear's reply
                 * comes after every buffer of the queue (§7.7c), so once it is here each one of ours has
                 * come back: take them now, while the old geometry and the buffers still exist. A picture
                 * among them is a frame of the old size (as the driver hands it to the application before
                 * STREAMOFF); it is not queued again. */
                d->changing = true;
                r = check(video_client_queue_clear(d->c, d->o->stream_id, VIRTIO_VIDEO_QUEUE_TYPE_OUTPUT));
                while (r >= 0 && video_client_pop_completion(d->c, &v) > 0)
                        r = on_completion(d, &v);
                d->changing = false;
                if (r < 0)
                        return r;
                r = check(video_client_resource_destroy_all(d->c, d->o->stream_id,
                                                            VIRTIO_VIDEO_QUEUE_TYPE_OUTPUT));
                if (r < 0)
                        return r;
                for (unsigned i = 0; i < d->n_out; i++)
                        d->out[i] = (Buf){};
                d->n_out = 0;
        }
        if (d->o->output_format) {
                r = check(video_client_get_params(d->c, d->o->stream_id, VIRTIO_VIDEO_QUEUE_TYPE_OUTPUT, ext,
                                                  &d->outp));
                if (r < 0)
                        return r;
                d->outp.format = d->o->output_format;
                r = check(video_client_set_params(d->c, d->o->stream_id, ext, &d->outp));
                if (r < 0)
                        return r;
        }
        r = check(video_client_get_params(d->c, d->o->stream_id, VIRTIO_VIDEO_QUEUE_TYPE_OUTPUT, ext,
                                          &d->outp));
        if (r < 0)
                return r;
        if (d->outp.num_planes == 0)
                return -EBADMSG;
        for (unsigned p = 0; p < d->outp.num_planes; p++) {
                sizes[p] = d->outp.planes[p].plane_size;
                if (sizes[p] == 0)
                        return -EBADMSG;
                total += sizes[p];
        }
        if (total > d->scratch_size) {
                uint8_t *s = realloc(d->scratch, total);
                if (!s)
                        return -ENOMEM;
                d->scratch = s;
                d->scratch_size = total;
        }
        d->n_out = d->o->n_output_buffers ?: MIN(d->outp.min_buffers + 2, (uint32_t) SESSION_MAX_BUFFERS);
        d->n_out = MIN(MAX(d->n_out, 1u), (unsigned) SESSION_MAX_BUFFERS);
        for (unsigned i = 0; i < d->n_out; i++) {
                Buf *b = &d->out[i];

                b->id = d->next_id++;
                r = check(video_client_resource_create(d->c, d->o->stream_id, VIRTIO_VIDEO_QUEUE_TYPE_OUTPUT,
                                                       b->id, d->outp.num_planes, sizes,
                                                       d->o->entries_per_plane ?: 1));
                if (r < 0)
                        return r;
                b->live = true;
        }
        for (unsigned i = 0; i < d->n_out; i++) {
                r = queue_output(d, &d->out[i]);
                if (r < 0)
                        return r;
        }
        d->res->resolution_changes++;
        d->res->width = d->outp.frame_width;
        d->res->height = d->outp.frame_height;
        return 0;
}

static Buf *find_buf(Buf *bufs, unsigned n, uint32_t id) {
        for (unsigned i = 0; i < n; i++)
                if (bufs[i].live && bufs[i].id == id)
                        return &bufs[i];
        return NULL;
}

static int on_output(Decoder *d, const VcCompletion *v) {
        Buf *b = find_buf(d->out, d->n_out, v->resource_id);
        VcFrame f = {};
        size_t off = 0;
        int r;

        if (!b) {
                /* A buffer of an earlier geometry, cancelled by the clear / destroy. */
                if (!(v->flags & VIRTIO_VIDEO_BUFFER_FLAG_ERR))
                        return -EBADMSG;
                d->res->error_completions++;
                return 0;
        }
        if (!b->queued)
                return -EBADMSG;
        b->queued = false;
        if (v->resp_type != VIRTIO_VIDEO_RESP_OK_RESOURCE_QUEUE)
                return -EREMOTEIO;
        if (v->flags & VIRTIO_VIDEO_BUFFER_FLAG_ERR) {
                d->res->error_completions++;
                return 0;
        }
        if (v->flags & VIRTIO_VIDEO_BUFFER_FLAG_EOS) {
                /* The driver forces bytesused to 0 on EOS (§4.6): any data in it is not a frame. */
                d->eos = true;
                return 0;
        }
        f = (VcFrame){
                .format = d->outp.format,
                .width = d->outp.frame_width,
                .height = d->outp.frame_height,
                .crop = { d->outp.crop.left, d->outp.crop.top, d->outp.crop.width, d->outp.crop.height },
                .timestamp = v->timestamp,
                .flags = v->flags,
                .n_planes = d->outp.num_planes,
        };
        for (unsigned p = 0; p < d->outp.num_planes; p++) {
                uint32_t size = d->outp.planes[p].plane_size;
                /* The callback reads the buffer in place, as a guest application would; a plane split
                 * across chunks of guest memory is gathered into the scratch copy. */
                const uint8_t *in_place =
                        video_client_resource_peek(d->c, d->o->stream_id, VIRTIO_VIDEO_QUEUE_TYPE_OUTPUT,
                                                   b->id, p, 0, size);

                if (in_place) {
                        f.planes[p] = in_place;
                        f.plane_sizes[p] = size;
                        f.strides[p] = d->outp.planes[p].stride;
                        continue;
                }
                r = video_client_resource_read(d->c, d->o->stream_id, VIRTIO_VIDEO_QUEUE_TYPE_OUTPUT, b->id,
                                               p, 0, d->scratch + off, size);
                if (r < 0)
                        return r;
                f.planes[p] = d->scratch + off;
                f.plane_sizes[p] = size;
                f.strides[p] = d->outp.planes[p].stride;
                off += size;
        }
        d->res->frames++;
        if (d->o->frame) {
                r = d->o->frame(d->o->userdata, &f);
                if (r < 0)
                        return r;
        }
        /* During a resolution change the buffer is about to be destroyed. */
        return d->changing ? 0 : queue_output(d, b);
}

static int on_completion(Decoder *d, const VcCompletion *v) {
        Buf *b;

        if (v->stream_id != d->o->stream_id)
                return -EBADMSG;
        if (v->queue_type == VIRTIO_VIDEO_QUEUE_TYPE_OUTPUT)
                return on_output(d, v);
        b = find_buf(d->in, d->n_in, v->resource_id);
        if (!b || !b->queued)
                return -EBADMSG;
        if (v->resp_type != VIRTIO_VIDEO_RESP_OK_RESOURCE_QUEUE)
                return -EREMOTEIO;
        b->queued = false;
        d->res->input_completions++;
        return 0;
}

static int decode_setup(Decoder *d) {
        const VcCaps *in = video_client_get_caps(d->c, VIRTIO_VIDEO_QUEUE_TYPE_INPUT);
        bool ext = !d->o->legacy_params;
        uint32_t coded = d->o->coded_format;
        VcParams p;
        int r;

        if (!in)
                return -EBUSY;
        if (!coded)
                coded = in->formats[0].format;
        /* §7.3 step 2: open(). */
        r = check(video_client_stream_create(d->c, d->o->stream_id, coded, "video-client"));
        if (r < 0)
                return r;
        d->created = true;
        r = check(video_client_get_params(d->c, d->o->stream_id, VIRTIO_VIDEO_QUEUE_TYPE_INPUT, ext, &p));
        if (r < 0)
                return r;
        r = check(video_client_get_params(d->c, d->o->stream_id, VIRTIO_VIDEO_QUEUE_TYPE_OUTPUT, ext,
                                          &d->outp));
        if (r < 0)
                return r;
        /* Step 3: S_FMT on the bitstream queue. */
        p.format = coded;
        p.num_planes = 1;
        p.planes[0].plane_size =
                d->o->input_buffer_size ?: (p.planes[0].plane_size ?: DEFAULT_INPUT_BUFFER_SIZE);
        p.resource_type = VIRTIO_VIDEO_MEM_TYPE_GUEST_PAGES;
        r = check(video_client_set_params(d->c, d->o->stream_id, ext, &p));
        if (r < 0)
                return r;
        r = check(video_client_get_params(d->c, d->o->stream_id, VIRTIO_VIDEO_QUEUE_TYPE_INPUT, ext, &p));
        if (r < 0)
                return r;
        r = check(video_client_get_params(d->c, d->o->stream_id, VIRTIO_VIDEO_QUEUE_TYPE_OUTPUT, ext,
                                          &d->outp));
        if (r < 0)
                return r;
        if (p.format != coded || p.num_planes < 1 || p.planes[0].plane_size == 0)
                return -EBADMSG;
        d->in_size = p.planes[0].plane_size;
        /* Step 4: REQBUFS on the bitstream queue. */
        d->n_in = MIN(d->o->n_input_buffers ?: 4u, (unsigned) SESSION_MAX_BUFFERS);
        for (unsigned i = 0; i < d->n_in; i++) {
                d->in[i].id = d->next_id++;
                r = check(video_client_resource_create(d->c, d->o->stream_id, VIRTIO_VIDEO_QUEUE_TYPE_INPUT,
                                                       d->in[i].id, 1, &d->in_size,
                                                       d->o->entries_per_plane ?: 1));
                if (r < 0)
                        return r;
                d->in[i].live = true;
        }
        return 0;
}

/* A drain answered with an error (nothing to drain, or cancelled) produces no EOS buffer (§4.4): waiting
 * for one would only end with the timeout. The reply may come before or after the EOS buffer, both are
 * fine (§4.4), so it is only looked at, not waited for. */
static int check_drain(VideoClient *c, bool drain_sent, bool eos, uint64_t tag, uint32_t *ret_type) {
        uint32_t t;
        int r;

        if (!drain_sent || eos)
                return 0;
        r = video_client_reply_type(c, tag, &t);
        if (r <= 0)
                return r;
        if (t == VIRTIO_VIDEO_RESP_OK_NODATA)
                return 0;
        if (ret_type)
                *ret_type = t;
        return -EREMOTEIO;
}

static int decode_loop(Decoder *d) {
        int r;

        while (!d->eos) {
                VcCompletion v;
                VcEvent e;

                r = queue_inputs(d);
                if (r < 0)
                        return r;
                /* Step 9: V4L2_DEC_CMD_STOP once everything is queued; not waited for. */
                if (input_done(d) && !d->drain_sent) {
                        r = video_client_stream_drain(d->c, d->o->stream_id, &d->drain_tag);
                        if (r < 0)
                                return r;
                        d->drain_sent = true;
                }
                r = video_client_wait_any(d->c);
                if (r < 0)
                        return r;
                /* Completions first: those the device made before an event are in by now. Old-size
                 * pictures completed after a resolution change event are taken by
                 * on_resolution_change() itself. */
                for (;;) {
                        while (video_client_pop_completion(d->c, &v) > 0) {
                                r = on_completion(d, &v);
                                if (r < 0)
                                        return r;
                        }
                        if (video_client_pop_event(d->c, &e) <= 0)
                                break;
                        if (e.stream_id != d->o->stream_id)
                                continue;
                        if (e.event_type == VIRTIO_VIDEO_EVENT_ERROR)
                                return -EIO;
                        if (e.event_type == VIRTIO_VIDEO_EVENT_DECODER_RESOLUTION_CHANGED) {
                                r = on_resolution_change(d);
                                if (r < 0)
                                        return r;
                        }
                }
                r = check_drain(d->c, d->drain_sent, d->eos, d->drain_tag, &d->res->drain_resp_type);
                if (r < 0)
                        return r;
        }
        return 0;
}

int video_client_decode(VideoClient *c, const VcDecodeOptions *o, VcDecodeResult *ret) {
        VcDecodeResult res = {};
        Decoder d = { .c = c, .o = o, .res = &res, .next_id = (o->stream_id << 12) + 1 };
        uint8_t drain_resp[8];
        int r;

        if (!o->bitstream || o->size == 0 || o->stream_id == 0 || o->stream_id >= (1u << 19))
                return -EINVAL;
        r = decode_setup(&d);
        if (r >= 0)
                r = decode_loop(&d);
        if (r >= 0 && d.drain_sent) {
                size_t len;
                r = video_client_wait_reply(c, d.drain_tag, drain_resp, sizeof(drain_resp), &len);
                if (r >= 0)
                        res.drain_resp_type = video_client_resp_type(drain_resp, len);
        }
        if (r >= 0)
                r = check(video_client_stream_destroy(c, o->stream_id));
        else if (d.created && transport_alive(r))
                (void) video_client_stream_destroy(c, o->stream_id); /* best effort, like close() */
        if (r < 0 && d.drain_sent && video_client_reply_type(c, d.drain_tag, NULL) > 0)
                (void) video_client_wait_reply(c, d.drain_tag, NULL, 0, NULL); /* forget it */
        free(d.scratch);
        if (r < 0)
                return r;
        if (ret)
                *ret = res;
        return 0;
}

/* ---- encoder -------------------------------------------------------------------------------------------
 */

typedef struct Encoder {
        VideoClient *c;
        const VcEncodeOptions *o;
        VcEncodeResult *res;
        VcParams inp, outp;
        Buf in[SESSION_MAX_BUFFERS], out[SESSION_MAX_BUFFERS];
        unsigned n_in, n_out;
        unsigned next_frame;
        bool created, drain_sent, eos;
        uint64_t drain_tag;
        uint8_t *scratch;
} Encoder;

static int encode_queue_output(Encoder *e, Buf *b) {
        uint32_t zero[VC_MAX_PLANES] = {};
        int r;

        r = video_client_resource_queue(e->c, e->o->stream_id, VIRTIO_VIDEO_QUEUE_TYPE_OUTPUT, b->id, 0,
                                        e->outp.num_planes, zero);
        if (r >= 0)
                b->queued = true;
        return r;
}

/* Where component c (in memory order of a tightly packed picture) of a raw format sits in the device's
 * buffer: plane, offset of its first row, stride, bytes per row and rows. Single-plane layouts stack the
 * components at stride * frame_height (the layout the null backend, CROSVM and DRV-A's helpers use). */
typedef struct RawComp {
        unsigned plane;
        size_t offset, stride, row, rows;
} RawComp;

static int raw_layout(const VcParams *p, uint32_t w, uint32_t h, RawComp comps[3], unsigned *ret_n) {
        size_t s0 = p->planes[0].stride, hh = p->frame_height;
        bool multi = p->num_planes > 1;

        if (hh < h || s0 == 0)
                return -EBADMSG;
        switch (p->format) {
        case 1: /* ARGB8888 */
        case 2: /* BGRA8888 */
                comps[0] = (RawComp){ 0, 0, s0, (size_t) w * 4, h };
                *ret_n = 1;
                return 0;
        case 3: /* NV12 */
                comps[0] = (RawComp){ 0, 0, s0, w, h };
                comps[1] = multi ? (RawComp){ 1, 0, p->planes[1].stride, w, h / 2 }
                                 : (RawComp){ 0, s0 * hh, s0, w, h / 2 };
                *ret_n = 2;
                return 0;
        case 4: /* YUV420 */
        case 5: /* YVU420 */
                comps[0] = (RawComp){ 0, 0, s0, w, h };
                if (multi && p->num_planes >= 3) {
                        comps[1] = (RawComp){ 1, 0, p->planes[1].stride, w / 2, h / 2 };
                        comps[2] = (RawComp){ 2, 0, p->planes[2].stride, w / 2, h / 2 };
                } else {
                        comps[1] = (RawComp){ 0, s0 * hh, s0 / 2, w / 2, h / 2 };
                        comps[2] = (RawComp){ 0, s0 * hh + (s0 / 2) * (hh / 2), s0 / 2, w / 2, h / 2 };
                }
                *ret_n = 3;
                return 0;
        default:
                return -EOPNOTSUPP;
        }
}

/* Copies a tightly packed picture into an input resource, row by row with the device's strides. */
static int write_raw_picture(Encoder *e, uint32_t id, const uint8_t *src, uint32_t sizes[VC_MAX_PLANES]) {
        RawComp comps[3];
        size_t used = 0;
        unsigned n;
        int r;

        r = raw_layout(&e->inp, e->o->width, e->o->height, comps, &n);
        if (r < 0)
                return r;
        for (unsigned c = 0; c < n; c++) {
                const RawComp *k = &comps[c];

                if (k->plane >= e->inp.num_planes || k->stride < k->row)
                        return -EBADMSG;
                for (size_t y = 0; y < k->rows; y++) {
                        if (used + k->row > e->o->frame_size)
                                return -EINVAL;
                        r = video_client_resource_write(e->c, e->o->stream_id, VIRTIO_VIDEO_QUEUE_TYPE_INPUT,
                                                        id, k->plane, k->offset + y * k->stride, src + used,
                                                        k->row);
                        if (r < 0)
                                return r;
                        used += k->row;
                }
        }
        if (used != e->o->frame_size)
                return -EINVAL;
        for (unsigned p = 0; p < e->inp.num_planes; p++)
                sizes[p] = e->inp.planes[p].plane_size;
        return 0;
}

static int encode_queue_inputs(Encoder *e) {
        for (unsigned i = 0; i < e->n_in && e->next_frame < e->o->n_frames; i++) {
                Buf *b = &e->in[i];
                uint32_t sizes[VC_MAX_PLANES] = {};
                int r;

                if (b->queued)
                        continue;
                r = write_raw_picture(e, b->id, e->o->frames[e->next_frame], sizes);
                if (r < 0)
                        return r;
                r = video_client_resource_queue(e->c, e->o->stream_id, VIRTIO_VIDEO_QUEUE_TYPE_INPUT, b->id,
                                                (uint64_t) (e->next_frame + 1) * 1000, e->inp.num_planes,
                                                sizes);
                if (r < 0)
                        return r;
                b->queued = true;
                e->next_frame++;
        }
        return 0;
}

static int encode_on_completion(Encoder *e, const VcCompletion *v) {
        bool output = v->queue_type == VIRTIO_VIDEO_QUEUE_TYPE_OUTPUT;
        Buf *b;
        int r;

        if (v->stream_id != e->o->stream_id)
                return -EBADMSG;
        b = output ? find_buf(e->out, e->n_out, v->resource_id) : find_buf(e->in, e->n_in, v->resource_id);
        if (!b || !b->queued)
                return -EBADMSG;
        b->queued = false;
        if (v->resp_type != VIRTIO_VIDEO_RESP_OK_RESOURCE_QUEUE)
                return -EREMOTEIO;
        if (!output)
                return 0;
        if (v->flags & VIRTIO_VIDEO_BUFFER_FLAG_EOS) {
                e->eos = true;
                return 0;
        }
        if (v->flags & VIRTIO_VIDEO_BUFFER_FLAG_ERR)
                return -EIO;
        if (v->size > e->outp.planes[0].plane_size)
                return -EBADMSG;
        r = video_client_resource_read(e->c, e->o->stream_id, VIRTIO_VIDEO_QUEUE_TYPE_OUTPUT, b->id, 0, 0,
                                       e->scratch, v->size);
        if (r < 0)
                return r;
        e->res->packets++;
        e->res->bytes += v->size;
        if (v->flags & VIRTIO_VIDEO_BUFFER_FLAG_IFRAME)
                e->res->keyframes++;
        if (e->o->packet) {
                r = e->o->packet(e->o->userdata, e->scratch, v->size, v->timestamp, v->flags);
                if (r < 0)
                        return r;
        }
        return encode_queue_output(e, b);
}

static int encode_setup(Encoder *e) {
        const VcCaps *in = video_client_get_caps(e->c, VIRTIO_VIDEO_QUEUE_TYPE_INPUT);
        const VcCaps *out = video_client_get_caps(e->c, VIRTIO_VIDEO_QUEUE_TYPE_OUTPUT);
        bool ext = !e->o->legacy_params;
        uint32_t coded, raw;
        int r;

        if (!in || !out)
                return -EBUSY;
        coded = e->o->coded_format ?: out->formats[0].format;
        raw = e->o->raw_format ?: in->formats[0].format;
        r = check(video_client_stream_create(e->c, e->o->stream_id, coded, "video-client"));
        if (r < 0)
                return r;
        e->created = true;
        for (unsigned q = 0; q < 2; q++) {
                uint32_t qt = q == 0 ? VIRTIO_VIDEO_QUEUE_TYPE_INPUT : VIRTIO_VIDEO_QUEUE_TYPE_OUTPUT;
                VcParams *p = q == 0 ? &e->inp : &e->outp;

                r = check(video_client_get_params(e->c, e->o->stream_id, qt, ext, p));
                if (r < 0)
                        return r;
                p->format = q == 0 ? raw : coded;
                /* Let the device lay the planes out for the new geometry (it keeps larger strides). */
                p->num_planes = 0;
                memset(p->planes, 0, sizeof(p->planes));
                p->frame_width = e->o->width;
                p->frame_height = e->o->height;
                if (e->o->frame_rate)
                        p->frame_rate = e->o->frame_rate;
                p->resource_type = VIRTIO_VIDEO_MEM_TYPE_GUEST_PAGES;
                r = check(video_client_set_params(e->c, e->o->stream_id, ext, p));
                if (r < 0)
                        return r;
        }
        r = check(
                video_client_get_params(e->c, e->o->stream_id, VIRTIO_VIDEO_QUEUE_TYPE_INPUT, ext, &e->inp));
        if (r < 0)
                return r;
        r = check(video_client_get_params(e->c, e->o->stream_id, VIRTIO_VIDEO_QUEUE_TYPE_OUTPUT, ext,
                                          &e->outp));
        if (r < 0)
                return r;
        if (e->inp.num_planes == 0 || e->outp.num_planes == 0 || e->outp.planes[0].plane_size == 0)
                return -EBADMSG;
        if (e->o->bitrate) {
                r = check(video_client_set_control(e->c, e->o->stream_id, VIRTIO_VIDEO_CONTROL_BITRATE,
                                                   e->o->bitrate));
                if (r < 0)
                        return r;
        }
        e->scratch = malloc(e->outp.planes[0].plane_size);
        if (!e->scratch)
                return -ENOMEM;
        e->n_in = MIN(e->o->n_input_buffers ?: 4u, (unsigned) SESSION_MAX_BUFFERS);
        e->n_out = MIN(e->o->n_output_buffers ?: 4u, (unsigned) SESSION_MAX_BUFFERS);
        for (unsigned q = 0; q < 2; q++) {
                VcParams *p = q == 0 ? &e->inp : &e->outp;
                Buf *bufs = q == 0 ? e->in : e->out;
                unsigned n = q == 0 ? e->n_in : e->n_out;
                uint32_t sizes[VC_MAX_PLANES];

                for (unsigned k = 0; k < p->num_planes; k++)
                        sizes[k] = p->planes[k].plane_size ?: 1;
                for (unsigned i = 0; i < n; i++) {
                        bufs[i].id = (e->o->stream_id << 12) + q * SESSION_MAX_BUFFERS + i + 1;
                        r = check(video_client_resource_create(e->c, e->o->stream_id,
                                                               q == 0 ? VIRTIO_VIDEO_QUEUE_TYPE_INPUT
                                                                      : VIRTIO_VIDEO_QUEUE_TYPE_OUTPUT,
                                                               bufs[i].id, p->num_planes, sizes, 1));
                        if (r < 0)
                                return r;
                        bufs[i].live = true;
                }
        }
        for (unsigned i = 0; i < e->n_out; i++) {
                r = encode_queue_output(e, &e->out[i]);
                if (r < 0)
                        return r;
        }
        return 0;
}

int video_client_encode(VideoClient *c, const VcEncodeOptions *o, VcEncodeResult *ret) {
        VcEncodeResult res = {};
        Encoder e = { .c = c, .o = o, .res = &res };
        uint8_t drain_resp[8];
        int r;

        if (!o->frames || o->n_frames == 0 || o->frame_size == 0 || o->stream_id == 0 ||
            o->stream_id >= (1u << 19))
                return -EINVAL;
        r = encode_setup(&e);
        while (r >= 0 && !e.eos) {
                VcCompletion v;
                VcEvent ev;

                r = encode_queue_inputs(&e);
                if (r < 0)
                        break;
                if (e.next_frame >= o->n_frames && !e.drain_sent) {
                        r = video_client_stream_drain(c, o->stream_id, &e.drain_tag);
                        if (r < 0)
                                break;
                        e.drain_sent = true;
                }
                r = video_client_wait_any(c);
                if (r < 0)
                        break;
                bool failed = false;
                while ((r = video_client_next_event(c, &ev, false)) > 0)
                        if (ev.stream_id == o->stream_id && ev.event_type == VIRTIO_VIDEO_EVENT_ERROR)
                                failed = true;
                if (r >= 0 && failed)
                        r = -EIO;
                while (r >= 0 && (r = video_client_next_completion(c, &v, false)) > 0)
                        r = encode_on_completion(&e, &v);
                if (r >= 0)
                        r = check_drain(c, e.drain_sent, e.eos, e.drain_tag, NULL);
        }
        if (r >= 0 && e.drain_sent)
                r = video_client_wait_reply(c, e.drain_tag, drain_resp, sizeof(drain_resp), NULL);
        if (r >= 0)
                r = check(video_client_stream_destroy(c, o->stream_id));
        else if (e.created && transport_alive(r))
                (void) video_client_stream_destroy(c, o->stream_id); /* best effort, like close() */
        if (r < 0 && e.drain_sent && video_client_reply_type(c, e.drain_tag, NULL) > 0)
                (void) video_client_wait_reply(c, e.drain_tag, NULL, 0, NULL); /* forget it */
        free(e.scratch);
        if (r < 0)
                return r;
        if (ret)
                *ret = res;
        return 0;
}
