/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * "ffmpeg-encoder": a stateful encoder on libavcodec's send/receive API. Raw input (NV12, YUV420,
 * YVU420, any strides) is copied once out of guest memory into a yuv420p frame; each coded packet is
 * copied once into an output buffer, flagged IFRAME or PFRAME (no B-frames, so output order is input
 * order), with the timestamp of the frame it was made from.
 *
 * The encoder is opened at the first frame with the input params and controls then in force. Bitrate
 * changes reach libx264 at once (it reconfigures itself); any other change of controls or input params
 * flushes the open encoder and opens a new one, whose first frame is a keyframe.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <libavcodec/avcodec.h>
#include <libavutil/error.h>
#include <libavutil/opt.h>

#include "backend/ffmpeg/ffmpeg.h"
#include "common/iov.h"
#include "common/log.h"
#include "common/macro.h"
#include "layout.h"
#include "profiles.h"
#include "stream.h"

#define ENC_DEFAULT_WIDTH 640u
#define ENC_DEFAULT_HEIGHT 480u
#define ENC_DEFAULT_RATE 30u
#define ENC_MAX_RATE 120u
#define ENC_DEFAULT_BITRATE 2000000u
#define ENC_MIN_OUTPUT_SIZE (64u * 1024u)
#define ENC_MAX_OUTPUT_SIZE (64u * 1024u * 1024u)
#define ENC_MAX_BUFFERS 32u
#define ENC_MAX_PACKETS 16u /* coded packets waiting for output buffers */
#define ENC_FEED_PACKETS 4u /* no new input while this many wait */
#define ENC_TS_RING 256u    /* frames in flight inside the encoder, at most */

static const struct {
        uint32_t format;
        const char *encoder;
} enc_codecs[] = {
        { VIDEO_FORMAT_H264, "libx264" },
        { VIDEO_FORMAT_H264, "libopenh264" },
        { VIDEO_FORMAT_VP8, "libvpx" },
        { VIDEO_FORMAT_VP9, "libvpx-vp9" },
};

static const uint32_t enc_raw_formats[] = { VIDEO_FORMAT_NV12, VIDEO_FORMAT_YUV420, VIDEO_FORMAT_YVU420 };

typedef struct EncoderConfig {
        uint32_t bitrate, peak, mode, profile, level;
        bool prepend_headers;
} EncoderConfig;

typedef enum EncDrain {
        ENC_DRAIN_NONE,
        ENC_DRAIN_INPUT, /* encoding the input queued before the drain */
        ENC_DRAIN_FLUSH, /* NULL frame sent; packets come until EOF */
        ENC_DRAIN_EOS,   /* every packet is out: an output buffer carries the EOS */
} EncDrain;

typedef struct Encoder {
        FfStream s;
        FfBackend *backend;
        uint32_t coded_format;
        const AVCodec *codec;
        bool is_x264;
        EncoderConfig cfg;   /* loop thread */
        bool force_keyframe; /* loop thread: for the next input queued */

        /* Codec thread only, from here on. */
        EncoderConfig tcfg;     /* the latest controls */
        EncoderConfig open_cfg; /* the controls ctx was opened with */
        VideoParams open_params;
        AVCodecContext *ctx;
        bool flushing;    /* NULL frame sent to ctx */
        bool headers_due; /* global headers to put before the next packet */
        AVFrame *frame;
        AVPacket *tmp;
        AVPacket *pkts[ENC_MAX_PACKETS];
        unsigned pkt_head, n_pkts;
        uint64_t ts_ring[ENC_TS_RING];
        int64_t next_pts;

        FfList inputs, outputs;
        EncDrain drain;
        unsigned drain_inputs;
        FfWork *drain_cmd;

        bool broken;
        FfScratch scratch;
} Encoder;

static Encoder *encoder_from(BackendStream *bs) {
        return (Encoder *) bs;
}

/* ---- codec thread ------------------------------------------------------------------------------- */

/* The stream cannot go on: report it, and give every held buffer back (later ones come back at once). */
static void encoder_fail(Encoder *e, int error) {
        if (e->broken)
                return;
        log_debug_errno(error, "ffmpeg-encoder: stream failed: %m");
        e->broken = true;
        ff_stream_error(&e->s, error);
        ff_stream_cancel_list(&e->s, &e->inputs);
        ff_stream_cancel_list(&e->s, &e->outputs);
}

static void encoder_drop_packets(Encoder *e) {
        for (unsigned i = 0; i < ENC_MAX_PACKETS; i++)
                av_packet_free(&e->pkts[i]);
        e->pkt_head = e->n_pkts = 0;
}

static void encoder_close(Encoder *e) {
        avcodec_free_context(&e->ctx);
        e->flushing = false;
        e->headers_due = false;
}

static void encoder_apply_rate(Encoder *e, AVCodecContext *ctx) {
        const EncoderConfig *c = &e->tcfg;
        int64_t peak = MAX(c->peak, c->bitrate);

        ctx->bit_rate = c->bitrate;
        if (c->mode == VIDEO_BITRATE_MODE_CBR) {
                /* libvpx takes min == max == target as CBR; libx264 gets a one second VBV at the rate. */
                ctx->rc_min_rate = c->bitrate;
                ctx->rc_max_rate = c->bitrate;
                ctx->rc_buffer_size = (int) MIN((int64_t) c->bitrate, (int64_t) INT32_MAX);
        } else {
                ctx->rc_min_rate = 0;
                ctx->rc_max_rate = peak;
                ctx->rc_buffer_size = (int) MIN(peak * 2, (int64_t) INT32_MAX);
        }
}

static int encoder_open(Encoder *e, const VideoParams *p) {
        static const char *const h264_profiles[] = { "baseline", "main", NULL, "high" };
        AVCodecContext *ctx;
        unsigned rate = p->frame_rate > 0 ? p->frame_rate : ENC_DEFAULT_RATE;
        int r;

        ctx = avcodec_alloc_context3(e->codec);
        if (!ctx)
                return -ENOMEM;
        ctx->width = (int) p->frame_width;
        ctx->height = (int) p->frame_height;
        ctx->pix_fmt = AV_PIX_FMT_YUV420P;
        ctx->time_base = (AVRational){ 1, (int) rate };
        ctx->framerate = (AVRational){ (int) rate, 1 };
        ctx->gop_size = (int) rate * 4;
        ctx->max_b_frames = 0;
        ctx->thread_count = (int) e->backend->threads;
        encoder_apply_rate(e, ctx);

        if (e->coded_format == VIDEO_FORMAT_H264) {
                uint32_t i = e->tcfg.profile - VIDEO_PROFILE_H264_BASELINE;

                if (i < ELEMENTSOF(h264_profiles) && h264_profiles[i])
                        (void) av_opt_set(ctx->priv_data, "profile", h264_profiles[i], 0);
                if (e->tcfg.level != 0)
                        ctx->level = ff_h264_level_idc(e->tcfg.level);
                if (!e->tcfg.prepend_headers)
                        ctx->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
                if (e->is_x264) {
                        /* No lookahead: one packet per frame, at once, as a hardware encoder. */
                        (void) av_opt_set(ctx->priv_data, "preset", "veryfast", 0);
                        (void) av_opt_set(ctx->priv_data, "tune", "zerolatency", 0);
                        (void) av_opt_set_int(ctx->priv_data, "forced-idr", 1, 0);
                }
        } else {
                ctx->profile = (int) (e->tcfg.profile & 0xff);
                (void) av_opt_set(ctx->priv_data, "deadline", "realtime", 0);
                (void) av_opt_set_int(ctx->priv_data, "cpu-used", 8, 0);
                (void) av_opt_set_int(ctx->priv_data, "lag-in-frames", 0, 0);
        }

        r = avcodec_open2(ctx, e->codec, NULL);
        if (r < 0) {
                log_debug("ffmpeg-encoder: cannot open %s: %s", e->codec->name, av_err2str(r));
                avcodec_free_context(&ctx);
                return r == AVERROR(ENOMEM) ? -ENOMEM : -EINVAL;
        }
        e->ctx = ctx;
        e->open_cfg = e->tcfg;
        e->open_params = *p;
        e->headers_due = (ctx->flags & AV_CODEC_FLAG_GLOBAL_HEADER) && ctx->extradata_size > 0;
        return 0;
}

/* Whether a frame of params p (and the current controls) can go to the open encoder. */
static bool encoder_fits(Encoder *e, const VideoParams *p) {
        const EncoderConfig *a = &e->open_cfg, *b = &e->tcfg;

        if (p->frame_width != e->open_params.frame_width || p->frame_height != e->open_params.frame_height ||
            p->frame_rate != e->open_params.frame_rate)
                return false;
        if (a->profile != b->profile || a->level != b->level || a->prepend_headers != b->prepend_headers)
                return false;
        if (a->bitrate == b->bitrate && a->peak == b->peak && a->mode == b->mode)
                return true;
        if (!e->is_x264)
                return false;
        encoder_apply_rate(e, e->ctx); /* libx264 reconfigures its rate control at the next frame */
        e->open_cfg = *b;
        return true;
}

static bool encoder_output_packet(Encoder *e) {
        FfWork *w = ff_list_pop(&e->outputs);
        AVPacket *pkt = e->pkts[e->pkt_head];
        const VideoPlane *plane = &w->buf->planes[0];
        size_t hdr = e->headers_due ? (size_t) e->ctx->extradata_size : 0;
        uint64_t ts = pkt->pts != AV_NOPTS_VALUE ? e->ts_ring[(uint64_t) pkt->pts % ENC_TS_RING] : 0;
        uint32_t flags = pkt->flags & AV_PKT_FLAG_KEY ? VIDEO_BUFFER_F_IFRAME : VIDEO_BUFFER_F_PFRAME;

        if (hdr + (size_t) pkt->size > plane->length) {
                log_debug("ffmpeg-encoder: packet of %zu bytes does not fit output %u (%zu bytes), dropped",
                          hdr + (size_t) pkt->size, w->buf->resource_id, plane->length);
                flags = VIDEO_BUFFER_F_ERR;
        } else {
                if (hdr > 0)
                        (void) buf_to_iov(plane->iov, plane->n_iov, 0, e->ctx->extradata, hdr);
                (void) buf_to_iov(plane->iov, plane->n_iov, hdr, pkt->data, (size_t) pkt->size);
                memset(w->result.sizes, 0, sizeof(w->result.sizes));
                w->result.sizes[0] = (uint32_t) (hdr + (size_t) pkt->size);
                e->headers_due = false;
        }
        ff_stream_buffer_done(&e->s, w, flags, ts);
        av_packet_unref(pkt);
        e->pkt_head = (e->pkt_head + 1) % ENC_MAX_PACKETS;
        e->n_pkts--;
        return true;
}

static bool encoder_send_eos(Encoder *e) {
        if (!ff_stream_finish_drain(&e->s, &e->outputs, &e->drain_cmd))
                return false;
        e->drain = ENC_DRAIN_NONE;
        return true;
}

static int encoder_receive(Encoder *e) {
        unsigned slot = (e->pkt_head + e->n_pkts) % ENC_MAX_PACKETS;
        int r;

        if (!e->pkts[slot]) {
                e->pkts[slot] = av_packet_alloc();
                if (!e->pkts[slot])
                        return -ENOMEM;
        }
        r = avcodec_receive_packet(e->ctx, e->pkts[slot]);
        if (r == 0)
                e->n_pkts++;
        return r;
}

static void encoder_send_flush(Encoder *e) {
        int r = avcodec_send_frame(e->ctx, NULL);

        if (r < 0 && r != AVERROR_EOF)
                encoder_fail(e, -EIO);
        e->flushing = true;
}

static void encoder_encode_input(Encoder *e) {
        FfWork *w = ff_list_pop(&e->inputs);
        uint64_t ts = w->buf->timestamp;
        bool force_keyframe = w->force_keyframe;
        int r;

        if (e->drain == ENC_DRAIN_INPUT && e->drain_inputs > 0)
                e->drain_inputs--;
        if (!e->ctx) {
                r = encoder_open(e, &w->params);
                if (r < 0) {
                        ff_stream_buffer_done(&e->s, w, VIDEO_BUFFER_F_ERR, ts);
                        encoder_fail(e, r);
                        return;
                }
        }

        av_frame_unref(e->frame);
        e->frame->format = AV_PIX_FMT_YUV420P;
        e->frame->width = (int) w->params.frame_width;
        e->frame->height = (int) w->params.frame_height;
        r = av_frame_get_buffer(e->frame, 0);
        if (r < 0) {
                ff_stream_buffer_done(&e->s, w, VIDEO_BUFFER_F_ERR, ts);
                encoder_fail(e, -ENOMEM);
                return;
        }
        r = ff_buffer_to_frame(w->buf, &w->params, e->frame, &e->scratch);
        /* Neither the guest buffer nor w (now the loop's) is touched after this point. */
        ff_stream_buffer_done(&e->s, w, r < 0 ? VIDEO_BUFFER_F_ERR : 0, ts);
        if (r < 0) {
                log_debug_errno(r, "ffmpeg-encoder: cannot read input frame: %m");
                return;
        }
        e->frame->pts = e->next_pts;
        e->ts_ring[(uint64_t) e->next_pts % ENC_TS_RING] = ts;
        e->next_pts++;
        e->frame->pict_type = force_keyframe ? AV_PICTURE_TYPE_I : AV_PICTURE_TYPE_NONE;
        e->frame->key_frame = force_keyframe;
        r = avcodec_send_frame(e->ctx, e->frame);
        if (r < 0) {
                log_debug("ffmpeg-encoder: frame rejected: %s", av_err2str(r));
                encoder_fail(e, r == AVERROR(ENOMEM) ? -ENOMEM : -EIO);
        }
}

static bool encoder_step(FfStream *s) {
        Encoder *e = (Encoder *) s;
        int r;

        if (e->broken)
                return false;

        if (e->n_pkts > 0 && e->outputs.head)
                return encoder_output_packet(e);

        if (e->ctx && e->n_pkts < ENC_MAX_PACKETS) {
                r = encoder_receive(e);
                if (r == 0)
                        return true;
                if (r == AVERROR_EOF) {
                        if (e->n_pkts > 0)
                                return false; /* the last packets wait for output buffers */
                        encoder_close(e);
                        if (e->drain == ENC_DRAIN_FLUSH)
                                e->drain = ENC_DRAIN_EOS;
                        return true;
                }
                if (r != AVERROR(EAGAIN)) {
                        log_debug("ffmpeg-encoder: encoding failed: %s", av_err2str(r));
                        encoder_fail(e, r == AVERROR(ENOMEM) ? -ENOMEM : -EIO);
                        return false;
                }
        }
        if (e->n_pkts >= ENC_FEED_PACKETS || e->flushing)
                return false;

        if (e->drain == ENC_DRAIN_EOS)
                return encoder_send_eos(e);

        if (e->inputs.head &&
            (e->drain == ENC_DRAIN_NONE || (e->drain == ENC_DRAIN_INPUT && e->drain_inputs > 0))) {
                if (e->ctx && !encoder_fits(e, &e->inputs.head->params)) {
                        encoder_send_flush(e); /* reopened with the new settings once flushed */
                        return true;
                }
                encoder_encode_input(e);
                return true;
        }
        if (e->drain == ENC_DRAIN_INPUT) {
                if (e->ctx) {
                        encoder_send_flush(e);
                        e->drain = ENC_DRAIN_FLUSH;
                } else
                        e->drain = ENC_DRAIN_EOS;
                return true;
        }
        return false;
}

static void encoder_apply(FfStream *s, FfWork *w) {
        Encoder *e = (Encoder *) s;

        switch (w->type) {
        case FF_CMD_QUEUE:
                if (e->broken)
                        ff_stream_buffer_done(s, w, VIDEO_BUFFER_F_ERR, w->buf->timestamp);
                else
                        ff_list_push(w->queue == VIDEO_QUEUE_INPUT ? &e->inputs : &e->outputs, w);
                break;
        case FF_CMD_DRAIN:
                if (e->broken) {
                        free(w);
                        break;
                }
                e->drain = ENC_DRAIN_INPUT;
                e->drain_inputs = e->inputs.n;
                e->drain_cmd = w;
                break;
        case FF_CMD_CLEAR:
                if (w->queue == VIDEO_QUEUE_INPUT) {
                        /* A reset: the frames inside the encoder and the packets not yet out go too. */
                        ff_stream_cancel_list(s, &e->inputs);
                        encoder_drop_packets(e);
                        encoder_close(e);
                        e->drain = ENC_DRAIN_NONE;
                        free(e->drain_cmd);
                        e->drain_cmd = NULL;
                } else
                        ff_stream_cancel_list(s, &e->outputs);
                w->type = FF_DONE_CLEAR;
                ff_stream_complete(s, w);
                break;
        case FF_CMD_CONTROL:
                switch (w->control) {
                case VIDEO_CONTROL_BITRATE:
                        e->tcfg.bitrate = w->value;
                        break;
                case VIDEO_CONTROL_BITRATE_PEAK:
                        e->tcfg.peak = w->value;
                        break;
                case VIDEO_CONTROL_BITRATE_MODE:
                        e->tcfg.mode = w->value;
                        break;
                case VIDEO_CONTROL_PROFILE:
                        e->tcfg.profile = w->value;
                        break;
                case VIDEO_CONTROL_LEVEL:
                        e->tcfg.level = w->value;
                        break;
                case VIDEO_CONTROL_PREPEND_SPSPPS_TO_IDR:
                        e->tcfg.prepend_headers = w->value;
                        break;
                default:
                        break;
                }
                free(w);
                break;
        default:
                free(w);
        }
}

/* ---- event loop thread --------------------------------------------------------------------------- */

static void encoder_format_changed(FfStream *s, const FfWork *w) {
}

static void encoder_destroy(FfStream *s) {
        Encoder *e = (Encoder *) s;

        ff_list_free(&e->inputs);
        ff_list_free(&e->outputs);
        free(e->drain_cmd);
        encoder_drop_packets(e);
        ff_scratch_free(&e->scratch);
        avcodec_free_context(&e->ctx);
        av_frame_free(&e->frame);
        free(e);
}

static const FfStreamClass encoder_class = {
        .apply = encoder_apply,
        .step = encoder_step,
        .format_changed = encoder_format_changed,
        .destroy = encoder_destroy,
};

static const AVCodec *encoder_find(uint32_t format) {
        for (size_t i = 0; i < ELEMENTSOF(enc_codecs); i++) {
                const AVCodec *c;

                if (enc_codecs[i].format != format)
                        continue;
                c = avcodec_find_encoder_by_name(enc_codecs[i].encoder);
                if (c)
                        return c;
        }
        return NULL;
}

/* The coded queue follows the raw one: same size and rate, a buffer size a frame fits in. */
static void encoder_sync_output(Encoder *e, uint32_t proposed_size) {
        const VideoParams *in = &e->s.params[VIDEO_QUEUE_INPUT];
        VideoParams *out = &e->s.params[VIDEO_QUEUE_OUTPUT];
        uint32_t size = MAX(in->frame_width * in->frame_height * 3 / 2, ENC_MIN_OUTPUT_SIZE);

        out->frame_width = in->frame_width;
        out->frame_height = in->frame_height;
        out->crop = in->crop;
        out->frame_rate = in->frame_rate;
        size = MAX(size, MAX(proposed_size, out->planes[0].plane_size));
        out->planes[0].plane_size = MIN(size, ENC_MAX_OUTPUT_SIZE);
}

static int encoder_stream_new(Backend *b,
                              uint32_t coded_format,
                              const BackendStreamCallbacks *callbacks,
                              void *userdata,
                              BackendStream **ret) {
        FfBackend *eb = (FfBackend *) b;
        const AVCodec *codec = encoder_find(coded_format);
        Encoder *e;
        int r;

        if (!codec)
                return -EINVAL;
        if (!callbacks || !callbacks->buffer_done)
                return -EINVAL;
        e = calloc(1, sizeof(*e));
        if (!e)
                return -ENOMEM;
        ff_stream_init(&e->s, b, &encoder_class, callbacks, userdata);
        e->backend = eb;
        e->coded_format = coded_format;
        e->codec = codec;
        e->is_x264 = strcmp(codec->name, "libx264") == 0;
        e->cfg = (EncoderConfig){
                .bitrate = ENC_DEFAULT_BITRATE,
                .peak = ENC_DEFAULT_BITRATE,
                .mode = VIDEO_BITRATE_MODE_VBR,
                .prepend_headers = true,
        };
        switch (coded_format) {
        case VIDEO_FORMAT_H264:
                e->cfg.profile = VIDEO_PROFILE_H264_HIGH;
                e->cfg.level = VIDEO_LEVEL_H264_5_1;
                break;
        case VIDEO_FORMAT_VP8:
                e->cfg.profile = VIDEO_PROFILE_VP8_PROFILE0;
                break;
        default:
                e->cfg.profile = VIDEO_PROFILE_VP9_PROFILE0;
        }
        e->tcfg = e->cfg;

        r = ff_stream_start(&e->s, eb->event);
        if (r >= 0) {
                e->frame = av_frame_alloc();
                r = e->frame ? 0 : -ENOMEM;
        }
        if (r < 0) {
                ff_stream_free(&e->s);
                return r;
        }

        VideoParams *in = &e->s.params[VIDEO_QUEUE_INPUT];
        (void) ff_layout_default(VIDEO_FORMAT_NV12, ENC_DEFAULT_WIDTH, ENC_DEFAULT_HEIGHT, in);
        in->frame_rate = ENC_DEFAULT_RATE;
        in->min_buffers = 1;
        in->max_buffers = ENC_MAX_BUFFERS;
        in->crop.width = ENC_DEFAULT_WIDTH;
        in->crop.height = ENC_DEFAULT_HEIGHT;
        e->s.params[VIDEO_QUEUE_OUTPUT] = (VideoParams){
                .format = coded_format,
                .min_buffers = 1,
                .max_buffers = ENC_MAX_BUFFERS,
                .num_planes = 1,
        };
        encoder_sync_output(e, 0);
        *ret = &e->s.base;
        return 0;
}

static int encoder_set_input_params(Encoder *e, const VideoParams *params) {
        VideoParams *cur = &e->s.params[VIDEO_QUEUE_INPUT];
        VideoParams p = *cur;
        uint32_t format = params->format != 0 ? params->format : cur->format;
        uint32_t width = params->frame_width ? params->frame_width : cur->frame_width;
        uint32_t height = params->frame_height ? params->frame_height : cur->frame_height;
        int r;

        if (!ff_raw_format_supported(format) || width < 16 || height < 16 || width > 4096 || height > 4096)
                return -EINVAL;
        /* 4:2:0 encoders take even sizes only. */
        width = ALIGN_TO(width, 2u);
        height = ALIGN_TO(height, 2u);
        r = ff_layout_default(format, width, height, &p);
        if (r < 0)
                return r;
        r = ff_layout_adjust(&p, params);
        if (r < 0)
                return r;
        if (params->frame_rate > 0)
                p.frame_rate = MIN(params->frame_rate, ENC_MAX_RATE);
        p.crop.left = p.crop.top = 0;
        p.crop.width = width;
        p.crop.height = height;
        if (e->s.held[VIDEO_QUEUE_INPUT] > 0 && memcmp(&p, cur, sizeof(p)) != 0)
                return -EBUSY;
        *cur = p;
        encoder_sync_output(e, 0);
        return 0;
}

static int encoder_set_output_params(Encoder *e, const VideoParams *params) {
        if (params->format != 0 && params->format != e->coded_format)
                return -EINVAL;
        if (params->frame_rate > 0 && e->s.held[VIDEO_QUEUE_INPUT] == 0)
                e->s.params[VIDEO_QUEUE_INPUT].frame_rate = MIN(params->frame_rate, ENC_MAX_RATE);
        encoder_sync_output(e, params->planes[0].plane_size);
        return 0;
}

static int encoder_set_params(BackendStream *bs, VideoQueue queue, const VideoParams *params) {
        Encoder *e = encoder_from(bs);

        switch (queue) {
        case VIDEO_QUEUE_INPUT:
                return encoder_set_input_params(e, params);
        case VIDEO_QUEUE_OUTPUT:
                return encoder_set_output_params(e, params);
        default:
                return -EINVAL;
        }
}

static bool encoder_has_control(Encoder *e, VideoControl control) {
        switch (control) {
        case VIDEO_CONTROL_BITRATE:
        case VIDEO_CONTROL_BITRATE_MODE:
        case VIDEO_CONTROL_BITRATE_PEAK:
        case VIDEO_CONTROL_PROFILE:
        case VIDEO_CONTROL_FORCE_KEYFRAME:
                return true;
        case VIDEO_CONTROL_LEVEL:
        case VIDEO_CONTROL_PREPEND_SPSPPS_TO_IDR:
                return e->coded_format == VIDEO_FORMAT_H264;
        default:
                return false;
        }
}

static int encoder_get_control(BackendStream *bs, VideoControl control, uint32_t *ret) {
        Encoder *e = encoder_from(bs);

        if (!encoder_has_control(e, control))
                return -EOPNOTSUPP;
        switch (control) {
        case VIDEO_CONTROL_BITRATE:
                *ret = e->cfg.bitrate;
                break;
        case VIDEO_CONTROL_BITRATE_MODE:
                *ret = e->cfg.mode;
                break;
        case VIDEO_CONTROL_BITRATE_PEAK:
                *ret = e->cfg.peak;
                break;
        case VIDEO_CONTROL_PROFILE:
                *ret = e->cfg.profile;
                break;
        case VIDEO_CONTROL_LEVEL:
                *ret = e->cfg.level;
                break;
        case VIDEO_CONTROL_PREPEND_SPSPPS_TO_IDR:
                *ret = e->cfg.prepend_headers;
                break;
        default:
                *ret = 0; /* FORCE_KEYFRAME is a button */
        }
        return 0;
}

static int encoder_set_control(BackendStream *bs, VideoControl control, uint32_t value) {
        Encoder *e = encoder_from(bs);
        FfWork *w;

        if (!encoder_has_control(e, control))
                return -EOPNOTSUPP;
        switch (control) {
        case VIDEO_CONTROL_FORCE_KEYFRAME:
                e->force_keyframe = true;
                return 0;
        case VIDEO_CONTROL_BITRATE:
        case VIDEO_CONTROL_BITRATE_PEAK:
                if (value < 1000 || value > 1000000000)
                        return -EINVAL;
                break;
        case VIDEO_CONTROL_BITRATE_MODE:
                if (value != VIDEO_BITRATE_MODE_VBR && value != VIDEO_BITRATE_MODE_CBR)
                        return -EINVAL;
                break;
        case VIDEO_CONTROL_PROFILE:
        case VIDEO_CONTROL_LEVEL:
                if (!ff_profile_valid(control, e->coded_format, false, value))
                        return -EINVAL;
                break;
        case VIDEO_CONTROL_PREPEND_SPSPPS_TO_IDR:
                if (value > 1)
                        return -EINVAL;
                break;
        default:
                return -EOPNOTSUPP;
        }

        w = ff_work_new(FF_CMD_CONTROL);
        if (!w)
                return -ENOMEM;
        w->control = control;
        w->value = value;
        switch (control) {
        case VIDEO_CONTROL_BITRATE:
                e->cfg.bitrate = value;
                break;
        case VIDEO_CONTROL_BITRATE_PEAK:
                e->cfg.peak = value;
                break;
        case VIDEO_CONTROL_BITRATE_MODE:
                e->cfg.mode = value;
                break;
        case VIDEO_CONTROL_PROFILE:
                e->cfg.profile = value;
                break;
        case VIDEO_CONTROL_LEVEL:
                e->cfg.level = value;
                break;
        default:
                e->cfg.prepend_headers = value;
        }
        ff_stream_submit(&e->s, w);
        return 0;
}

static int encoder_queue_buffer(BackendStream *bs, VideoBuffer *buf) {
        Encoder *e = encoder_from(bs);
        FfWork *w;

        switch (buf->queue) {
        case VIDEO_QUEUE_INPUT:
                if (ff_layout_check_buffer(&e->s.params[VIDEO_QUEUE_INPUT], buf) < 0)
                        return -EINVAL;
                break;
        case VIDEO_QUEUE_OUTPUT:
                if (buf->n_planes < 1 || buf->planes[0].length == 0)
                        return -EINVAL;
                break;
        default:
                return -EINVAL;
        }
        w = ff_stream_queue_work(&e->s, buf);
        if (!w)
                return -ENOMEM;
        if (buf->queue == VIDEO_QUEUE_INPUT) {
                w->force_keyframe = e->force_keyframe;
                e->force_keyframe = false;
        }
        ff_stream_submit(&e->s, w);
        return 0;
}

/* ---- backend --------------------------------------------------------------------------------------- */

static void encoder_fill_caps(VideoCaps *c) {
        const VideoFrameSize size = {
                .width = { 16, 4096, 2 },
                .height = { 16, 4096, 2 },
                .n_rates = 1,
                .rates[0] = { 1, ENC_MAX_RATE, 1 },
        };
        unsigned n_out = 0;

        c->role = VIDEO_ROLE_ENCODER;
        for (size_t i = 0; i < ELEMENTSOF(enc_codecs); i++) {
                VideoFormatDesc *f;
                bool dup = false;

                for (unsigned j = 0; j < n_out; j++)
                        dup = dup || c->formats[VIDEO_QUEUE_OUTPUT][j].format == enc_codecs[i].format;
                if (dup || !avcodec_find_encoder_by_name(enc_codecs[i].encoder))
                        continue;
                f = &c->formats[VIDEO_QUEUE_OUTPUT][n_out++];
                f->format = enc_codecs[i].format;
                f->mask = (UINT64_C(1) << ELEMENTSOF(enc_raw_formats)) - 1;
                f->n_frames = 1;
                f->frames[0] = size;
        }
        c->n_formats[VIDEO_QUEUE_OUTPUT] = n_out;
        ff_caps_set_raw_formats(c, VIDEO_QUEUE_INPUT, enc_raw_formats, ELEMENTSOF(enc_raw_formats), n_out,
                                &size);
        c->controls = 1u << VIDEO_CONTROL_BITRATE | 1u << VIDEO_CONTROL_PROFILE | 1u << VIDEO_CONTROL_LEVEL |
                      1u << VIDEO_CONTROL_FORCE_KEYFRAME | 1u << VIDEO_CONTROL_BITRATE_MODE |
                      1u << VIDEO_CONTROL_BITRATE_PEAK | 1u << VIDEO_CONTROL_PREPEND_SPSPPS_TO_IDR;
}

static int encoder_backend_new(const BackendConfig *config, sd_event *event, Backend **ret) {
        return ff_backend_new(&backend_ffmpeg_encoder_ops, config, event, encoder_fill_caps, ret);
}

const BackendOps backend_ffmpeg_encoder_ops = {
        .name = "ffmpeg-encoder",
        .new = encoder_backend_new,
        .free = ff_backend_free,
        .get_caps = ff_backend_get_caps,
        .query_control = ff_backend_query_control,
        .stream_new = encoder_stream_new,
        .stream_free = ff_stream_op_free,
        .get_params = ff_stream_op_get_params,
        .set_params = encoder_set_params,
        .get_control = encoder_get_control,
        .set_control = encoder_set_control,
        .queue_buffer = encoder_queue_buffer,
        .drain = ff_stream_op_drain,
        .clear = ff_stream_op_clear,
};
