/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libavutil/opt.h>

#include "av-media.h"
#include "common/macro.h"
#include "config.h"

#if HAVE_LIBSWSCALE
#include <libswscale/swscale.h>
#endif

AVFrame *media_pattern(unsigned width, unsigned height, unsigned t) {
        return media_pattern_noisy(width, height, t, 0);
}

AVFrame *media_pattern_noisy(unsigned width, unsigned height, unsigned t, unsigned noise) {
        AVFrame *f = av_frame_alloc();
        unsigned bx = (t * 3) % (width - 16), by = (t * 2) % (height - 16);

        if (!f)
                return NULL;
        f->format = AV_PIX_FMT_YUV420P;
        f->width = (int) width;
        f->height = (int) height;
        if (av_frame_get_buffer(f, 0) < 0) {
                av_frame_free(&f);
                return NULL;
        }
        for (unsigned y = 0; y < height; y++)
                for (unsigned x = 0; x < width; x++) {
                        bool box = x >= bx && x < bx + 16 && y >= by && y < by + 16;

                        unsigned n = 0;

                        if (noise > 0) {
                                uint32_t hash = (x * 73856093u) ^ (y * 19349663u) ^ (t * 83492791u);

                                hash ^= hash >> 13;
                                hash *= 0x5bd1e995u;
                                n = (hash >> 15) % noise;
                        }
                        f->data[0][y * f->linesize[0] + x] = box ? 235 : 16 + (x * 2 + y + t * 4) % 200 + n;
                }
        for (unsigned y = 0; y < (height + 1) / 2; y++)
                for (unsigned x = 0; x < (width + 1) / 2; x++) {
                        f->data[1][y * f->linesize[1] + x] = 96 + (x + 2 * t) % 64;
                        f->data[2][y * f->linesize[2] + x] = 96 + (x + y + t) % 64;
                }
        return f;
}

static int stream_append(MediaStream *s, const AVPacket *pkt) {
        MediaPacket *a = reallocarray(s->pkts, s->n + 1, sizeof(*a));

        if (!a)
                return -ENOMEM;
        s->pkts = a;
        a[s->n].data = malloc((size_t) pkt->size);
        if (!a[s->n].data)
                return -ENOMEM;
        memcpy(a[s->n].data, pkt->data, (size_t) pkt->size);
        a[s->n].size = (size_t) pkt->size;
        a[s->n].key = pkt->flags & AV_PKT_FLAG_KEY;
        s->n++;
        return 0;
}

static int encode_collect(AVCodecContext *ctx, const AVFrame *f, AVPacket *pkt, MediaStream *s) {
        int r = avcodec_send_frame(ctx, f);

        if (r < 0)
                return r;
        for (;;) {
                r = avcodec_receive_packet(ctx, pkt);
                if (r == AVERROR(EAGAIN) || r == AVERROR_EOF)
                        return 0;
                if (r < 0)
                        return r;
                r = stream_append(s, pkt);
                av_packet_unref(pkt);
                if (r < 0)
                        return r;
        }
}

/* pic (yuv420p) in another pixel format; NULL when that cannot be done. */
static AVFrame *convert_frame(AVFrame *pic, int pix_fmt, int flags) {
#if HAVE_LIBSWSCALE
        struct SwsContext *sws = sws_getContext(pic->width, pic->height, pic->format, pic->width,
                                                pic->height, pix_fmt, flags, NULL, NULL, NULL);
        AVFrame *out = av_frame_alloc();

        if (!sws || !out)
                goto fail;
        out->format = pix_fmt;
        out->width = pic->width;
        out->height = pic->height;
        out->pts = pic->pts;
        if (av_frame_get_buffer(out, 0) < 0)
                goto fail;
        if (sws_scale(sws, (const uint8_t *const *) pic->data, pic->linesize, 0, pic->height, out->data,
                      out->linesize) < 0)
                goto fail;
        sws_freeContext(sws);
        return out;
fail:
        sws_freeContext(sws);
        av_frame_free(&out);
        return NULL;
#else
        return NULL;
#endif
}

int media_frames_to_yuv420p(MediaFrames *f) {
        for (size_t i = 0; i < f->n; i++) {
                AVFrame *c;

                if (f->f[i]->format == AV_PIX_FMT_YUV420P)
                        continue;
                c = convert_frame(f->f[i], AV_PIX_FMT_YUV420P, 2 /* SWS_BILINEAR, as the backend */);
                if (!c)
                        return -EOPNOTSUPP;
                av_frame_free(&f->f[i]);
                f->f[i] = c;
        }
        return 0;
}

int media_encode(
        const char *encoder, unsigned width, unsigned height, unsigned n, unsigned first_t, MediaStream *s) {
        return media_encode_fmt(encoder, AV_PIX_FMT_YUV420P, width, height, n, first_t, s);
}

int media_encode_fmt(const char *encoder,
                     int pix_fmt,
                     unsigned width,
                     unsigned height,
                     unsigned n,
                     unsigned first_t,
                     MediaStream *s) {
        const AVCodec *codec = avcodec_find_encoder_by_name(encoder);
        AVCodecContext *ctx;
        AVPacket *pkt = av_packet_alloc();
        int r;

        if (!codec || !pkt) {
                av_packet_free(&pkt);
                return -ENOENT;
        }
        ctx = avcodec_alloc_context3(codec);
        ctx->width = (int) width;
        ctx->height = (int) height;
        ctx->pix_fmt = pix_fmt;
        ctx->time_base = (AVRational){ 1, 30 };
        ctx->framerate = (AVRational){ 30, 1 };
        ctx->gop_size = 10;
        ctx->bit_rate = 1000000;
        ctx->thread_count = 1;
        if (strcmp(encoder, "libx264") == 0) {
                /* B-frames, so the decoder under test has to reorder. */
                ctx->max_b_frames = 2;
                av_opt_set(ctx->priv_data, "preset", "fast", 0);
        } else if (strcmp(encoder, "libx265") == 0) {
                av_opt_set(ctx->priv_data, "preset", "ultrafast", 0);
                av_opt_set(ctx->priv_data, "x265-params", "log-level=none:bframes=2", 0);
        } else if (strncmp(encoder, "libvpx", 6) == 0) {
                av_opt_set(ctx->priv_data, "deadline", "realtime", 0);
                av_opt_set_int(ctx->priv_data, "cpu-used", 8, 0);
                av_opt_set_int(ctx->priv_data, "lag-in-frames", 0, 0);
        } else
                ctx->max_b_frames = 2; /* mpeg2video, mpeg4: reordering as well */
        r = avcodec_open2(ctx, codec, NULL);
        for (unsigned i = 0; r >= 0 && i < n; i++) {
                AVFrame *f = media_pattern(width, height, first_t + i);

                if (f && pix_fmt != AV_PIX_FMT_YUV420P) {
                        AVFrame *c = convert_frame(f, pix_fmt, 2 /* SWS_BILINEAR */);

                        av_frame_free(&f);
                        f = c;
                }
                if (!f) {
                        r = -ENOMEM;
                        break;
                }
                f->pts = i;
                r = encode_collect(ctx, f, pkt, s);
                av_frame_free(&f);
        }
        if (r >= 0)
                r = encode_collect(ctx, NULL, pkt, s);
        avcodec_free_context(&ctx);
        av_packet_free(&pkt);
        return r < 0 ? -EIO : 0;
}

void media_stream_free(MediaStream *s) {
        for (size_t i = 0; i < s->n; i++)
                free(s->pkts[i].data);
        free(s->pkts);
        *s = (MediaStream){};
}

uint8_t *media_stream_bytes(const MediaStream *s, size_t *ret_size, size_t **ret_offsets) {
        size_t total = 0;
        uint8_t *b;
        size_t *off = calloc(s->n + 1, sizeof(size_t));

        for (size_t i = 0; i < s->n; i++)
                total += s->pkts[i].size;
        b = malloc(total + 1);
        if (!b || !off)
                abort();
        total = 0;
        for (size_t i = 0; i < s->n; i++) {
                off[i] = total;
                memcpy(b + total, s->pkts[i].data, s->pkts[i].size);
                total += s->pkts[i].size;
        }
        off[s->n] = total;
        *ret_size = total;
        *ret_offsets = off;
        return b;
}

static int frames_append(MediaFrames *out, const AVFrame *f) {
        AVFrame **a = reallocarray(out->f, out->n + 1, sizeof(*a));

        if (!a)
                return -ENOMEM;
        out->f = a;
        a[out->n] = av_frame_clone(f);
        if (!a[out->n])
                return -ENOMEM;
        out->n++;
        return 0;
}

static int decode_collect(AVCodecContext *ctx, const AVPacket *pkt, AVFrame *f, MediaFrames *out) {
        int r = avcodec_send_packet(ctx, pkt);

        if (r < 0 && r != AVERROR_INVALIDDATA)
                return r;
        for (;;) {
                r = avcodec_receive_frame(ctx, f);
                if (r == AVERROR(EAGAIN) || r == AVERROR_EOF)
                        return 0;
                if (r < 0)
                        return r;
                r = frames_append(out, f);
                av_frame_unref(f);
                if (r < 0)
                        return r;
        }
}

int media_decode(
        enum AVCodecID id, const MediaStream *s, size_t first, const int64_t *pts, MediaFrames *out) {
        const AVCodec *codec = avcodec_find_decoder(id);
        AVCodecContext *ctx = avcodec_alloc_context3(codec);
        AVPacket *pkt = av_packet_alloc();
        AVFrame *f = av_frame_alloc();
        int r;

        ctx->thread_count = 1;
        r = avcodec_open2(ctx, codec, NULL);
        for (size_t i = first; r >= 0 && i < s->n; i++) {
                r = av_new_packet(pkt, (int) s->pkts[i].size);
                if (r < 0)
                        break;
                memcpy(pkt->data, s->pkts[i].data, s->pkts[i].size);
                pkt->pts = pts ? pts[i] : (int64_t) i;
                r = decode_collect(ctx, pkt, f, out);
                av_packet_unref(pkt);
        }
        if (r >= 0)
                r = decode_collect(ctx, NULL, f, out);
        av_frame_free(&f);
        av_packet_free(&pkt);
        avcodec_free_context(&ctx);
        return r < 0 ? -EIO : 0;
}

void media_frames_free(MediaFrames *f) {
        for (size_t i = 0; i < f->n; i++)
                av_frame_free(&f->f[i]);
        free(f->f);
        *f = (MediaFrames){};
}

double media_psnr(const AVFrame *a, const AVFrame *b) {
        double sse = 0, n = 0;

        for (int p = 0; p < 3; p++) {
                int w = p ? (a->width + 1) / 2 : a->width, h = p ? (a->height + 1) / 2 : a->height;

                for (int y = 0; y < h; y++)
                        for (int x = 0; x < w; x++) {
                                double d = (double) a->data[p][y * a->linesize[p] + x] -
                                           (double) b->data[p][y * b->linesize[p] + x];
                                sse += d * d;
                        }
                n += (double) w * h;
        }
        if (sse == 0)
                return 99;
        return 10 * log10(255.0 * 255.0 / (sse / n));
}

/* Pixel component c (0 Y, 1 U, 2 V) of plane-row (x, y) for each layout plane: which component and
 * which sample a byte of the layout holds. */
static void layout_byte(uint32_t format, unsigned plane, unsigned x, unsigned *ret_comp, unsigned *ret_x) {
        if (plane == 0) {
                *ret_comp = 0;
                *ret_x = x;
        } else if (format == VIDEO_FORMAT_NV12) {
                *ret_comp = 1 + (x & 1);
                *ret_x = x / 2;
        } else if (format == VIDEO_FORMAT_YUV420) {
                *ret_comp = plane;
                *ret_x = x;
        } else {
                *ret_comp = 3 - plane;
                *ret_x = x;
        }
}

static unsigned plane_row_bytes(uint32_t format, unsigned plane, unsigned w) {
        if (plane == 0)
                return w;
        return format == VIDEO_FORMAT_NV12 ? 2 * ((w + 1) / 2) : (w + 1) / 2;
}

unsigned media_layout_sizes(const VideoParams *p, bool packed, size_t sizes[]) {
        if (!packed) {
                for (unsigned i = 0; i < p->num_planes; i++)
                        sizes[i] = p->planes[i].plane_size;
                return p->num_planes;
        }
        sizes[0] = 0;
        for (unsigned i = 0; i < p->num_planes; i++)
                sizes[0] += p->planes[i].plane_size;
        return 1;
}

/* Linear copies of the buffer planes, and where layout plane i starts in them. */
static uint8_t *plane_base(const VideoParams *p, uint8_t *lin[], unsigned n_buf_planes, unsigned i) {
        size_t off = 0;

        if (n_buf_planes == p->num_planes)
                return lin[i];
        for (unsigned j = 0; j < i; j++)
                off += p->planes[j].plane_size;
        return lin[0] + off;
}

void media_write_raw(const AVFrame *pic, const VideoParams *p, HarnessBuffer *b) {
        uint8_t *lin[VIDEO_MAX_PLANES] = {};

        for (unsigned k = 0; k < b->vb.n_planes; k++) {
                lin[k] = calloc(1, b->vb.planes[k].length);
                harness_buffer_read(b, k, lin[k], b->vb.planes[k].length);
        }
        for (unsigned i = 0; i < p->num_planes; i++) {
                uint8_t *base = plane_base(p, lin, b->vb.n_planes, i);
                unsigned rows = i == 0 ? p->frame_height : (p->frame_height + 1) / 2;

                for (unsigned y = 0; y < rows; y++)
                        for (unsigned x = 0; x < plane_row_bytes(p->format, i, p->frame_width); x++) {
                                unsigned c, sx;

                                layout_byte(p->format, i, x, &c, &sx);
                                base[(size_t) y * p->planes[i].stride + x] =
                                        pic->data[c][y * pic->linesize[c] + sx];
                        }
        }
        for (unsigned k = 0; k < b->vb.n_planes; k++) {
                harness_buffer_write(b, k, lin[k], b->vb.planes[k].length);
                free(lin[k]);
        }
}

bool media_output_matches(const AVFrame *ref,
                          const VideoParams *p,
                          const HarnessBuffer *b,
                          const VideoBufferResult *result) {
        uint8_t *lin[VIDEO_MAX_PLANES] = {};
        size_t sizes[VIDEO_MAX_PLANES] = {};
        bool ok = true;
        unsigned n = media_layout_sizes(p, b->vb.n_planes != p->num_planes, sizes);

        if ((uint32_t) ref->width != p->frame_width || (uint32_t) ref->height != p->frame_height) {
                fprintf(stderr, "# size %dx%d, layout %ux%u\n", ref->width, ref->height, p->frame_width,
                        p->frame_height);
                return false;
        }
        for (unsigned k = 0; k < n; k++)
                if (result->sizes[k] != sizes[k]) {
                        fprintf(stderr, "# plane %u: %u bytes used, expected %zu\n", k, result->sizes[k],
                                sizes[k]);
                        return false;
                }
        for (unsigned k = 0; k < b->vb.n_planes; k++) {
                lin[k] = calloc(1, b->vb.planes[k].length);
                harness_buffer_read(b, k, lin[k], b->vb.planes[k].length);
        }
        for (unsigned i = 0; ok && i < p->num_planes; i++) {
                const uint8_t *base = plane_base(p, lin, b->vb.n_planes, i);
                unsigned rows = i == 0 ? p->frame_height : (p->frame_height + 1) / 2;

                for (unsigned y = 0; ok && y < rows; y++)
                        for (unsigned x = 0; ok && x < plane_row_bytes(p->format, i, p->frame_width); x++) {
                                unsigned c, sx;
                                uint8_t want, got;

                                layout_byte(p->format, i, x, &c, &sx);
                                want = ref->data[c][y * ref->linesize[c] + sx];
                                got = base[(size_t) y * p->planes[i].stride + x];
                                if (want != got) {
                                        fprintf(stderr, "# plane %u (%u,%u): %u, expected %u\n", i, x, y,
                                                got, want);
                                        ok = false;
                                }
                        }
        }
        for (unsigned k = 0; k < b->vb.n_planes; k++)
                free(lin[k]);
        return ok;
}
