/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * "ffmpeg-decoder": a stateful decoder (virtio-video-v3.md §7) on libavcodec's send/receive API.
 *
 * Input buffers carry the bitstream in chunks of any size: codecs with a byte-stream syntax (H.264,
 * HEVC, MPEG-2, MPEG-4 part 2) go through av_parser to find the access units; VP8 and VP9 have no
 * start codes, so each input buffer is taken as one frame, as V4L2 stateful decoders take them.
 * A packet's timestamp is the one of the input its first byte came from: we track where inputs start
 * ourselves, as the parser's own table holds only four inputs, too few for small chunks.
 *
 * Output: the first frame's size, and every later change, raises format_changed. When output buffers
 * were queued before the change (since the last clear(OUTPUT)), every output buffer is held from then on
 * until clear(OUTPUT), also those queued after the event: the driver re-queues old buffers before it
 * stops the capture queue, and no frame of the new geometry may land in them (§7.5, §7.7d). Only
 * buffers queued after the clear take frames again. The very first format of a driver that sets up
 * its capture queue after the event (§7.3 step 7) needs no clear.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <libavcodec/avcodec.h>
#include <libavutil/error.h>

#include "backend/ffmpeg/ffmpeg.h"
#include "common/iov.h"
#include "common/log.h"
#include "common/macro.h"
#include "config.h"
#include "layout.h"
#include "profiles.h"
#include "stream.h"

#if HAVE_LIBSWSCALE
#include <libswscale/swscale.h>
#endif

#define DEC_INPUT_BUFFER_SIZE (1024u * 1024u)
#define DEC_INPUT_BUFFER_MAX (64u * 1024u * 1024u)
#define DEC_DEFAULT_WIDTH 640u
#define DEC_DEFAULT_HEIGHT 480u
#define DEC_MIN_OUTPUT_BUFFERS 2u
#define DEC_MAX_BUFFERS 32u

static const struct {
        uint32_t format;
        enum AVCodecID id;
        bool parser;
} dec_codecs[] = {
        { VIDEO_FORMAT_H264, AV_CODEC_ID_H264, true },
        { VIDEO_FORMAT_HEVC, AV_CODEC_ID_HEVC, true },
        { VIDEO_FORMAT_VP8, AV_CODEC_ID_VP8, false },
        { VIDEO_FORMAT_VP9, AV_CODEC_ID_VP9, false },
        { VIDEO_FORMAT_MPEG2, AV_CODEC_ID_MPEG2VIDEO, true },
        { VIDEO_FORMAT_MPEG4, AV_CODEC_ID_MPEG4, true },
};

static const uint32_t dec_raw_formats[] = { VIDEO_FORMAT_NV12, VIDEO_FORMAT_YUV420, VIDEO_FORMAT_YVU420 };

#define DEC_MAX_MARKS 4096u

/* Where an input started in the byte stream given to the parser. */
typedef struct TsMark {
        uint64_t offset;
        uint64_t timestamp;
} TsMark;

typedef enum DrainState {
        DRAIN_NONE,
        DRAIN_INPUT,   /* decoding the input queued before the drain */
        DRAIN_FLUSH,   /* parser flushed; the NULL packet goes to the decoder next */
        DRAIN_DECODER, /* the decoder is giving out its last frames */
        DRAIN_EOS,     /* every frame is out: an output buffer carries the EOS */
} DrainState;

typedef struct Decoder {
        FfStream s;
        FfBackend *backend;
        uint32_t coded_format;
        enum AVCodecID codec_id;
        bool use_parser;
        /* Loop thread: the same rule as out_seen/out_blocked below, as far as the guest has seen it. */
        bool loop_out_seen, loop_out_blocked;

        /* Codec thread only, from here on. */
        AVCodecContext *ctx;
        AVCodecParserContext *parser;
        AVPacket *pkt;
        bool pkt_pending;
        AVFrame *frame;
        bool frame_pending;

        FfList inputs;
        FfWork *cur;    /* the input being parsed */
        uint8_t *chunk; /* its copy, with AV_INPUT_BUFFER_PADDING_SIZE zero bytes after */
        size_t chunk_size, chunk_alloc, chunk_off;
        bool cur_failed;
        TsMark *marks;
        size_t n_marks, alloc_marks;
        uint64_t stream_offset; /* bytes given to the parser */

        FfList outputs;   /* of the current format generation */
        FfList stale;     /* held until clear(OUTPUT) */
        bool out_seen;    /* an output buffer was queued since the last clear(OUTPUT) */
        bool out_blocked; /* a change happened since: outputs go to `stale` */
        uint64_t out_gen;
        int out_width, out_height;

        DrainState drain;
        unsigned drain_inputs; /* inputs queued before the drain, still in `inputs` */
        FfWork *drain_cmd;     /* becomes the DRAIN_DONE completion */

        bool broken;
        FfScratch scratch;
#if HAVE_LIBSWSCALE
        struct SwsContext *sws; /* other pixel formats -> yuv420p, into `converted` */
        AVFrame *converted;
#endif
} Decoder;

static Decoder *decoder_from(BackendStream *bs) {
        return (Decoder *) bs;
}

/* ---- codec thread ------------------------------------------------------------------------------- */

static int decoder_open_codec(Decoder *d) {
        const AVCodec *codec = avcodec_find_decoder(d->codec_id);

        if (!codec)
                return -EINVAL;
        d->ctx = avcodec_alloc_context3(codec);
        if (!d->ctx)
                return -ENOMEM;
        d->ctx->thread_count = (int) d->backend->threads;
        if (avcodec_open2(d->ctx, codec, NULL) < 0)
                return -EIO;
        if (d->use_parser) {
                d->parser = av_parser_init(d->codec_id);
                if (!d->parser)
                        return -ENOMEM;
        }
        return 0;
}

static void decoder_fail(Decoder *d, int error);

static void decoder_reset_parser(Decoder *d) {
        if (!d->use_parser)
                return;
        d->n_marks = 0;
        d->stream_offset = 0;
        av_parser_close(d->parser);
        d->parser = av_parser_init(d->codec_id);
        if (!d->parser)
                decoder_fail(d, -ENOMEM);
}

/* The decoder took every frame out of the EOF state or lost its position: start over. */
static void decoder_reset_codec(Decoder *d) {
        av_packet_unref(d->pkt);
        d->pkt_pending = false;
        avcodec_flush_buffers(d->ctx);
        decoder_reset_parser(d);
}

static void decoder_finish_input(Decoder *d) {
        FfWork *w = TAKE_PTR(d->cur);

        ff_stream_buffer_done(&d->s, w, d->cur_failed ? VIDEO_BUFFER_F_ERR : 0, w->buf->timestamp);
        d->cur_failed = false;
}

static void decoder_cancel_inputs(Decoder *d) {
        if (d->cur) {
                d->cur_failed = true;
                decoder_finish_input(d);
        }
        ff_stream_cancel_list(&d->s, &d->inputs);
}

/* The stream cannot go on: report it, and give every held buffer back (later ones come back at once). */
static void decoder_fail(Decoder *d, int error) {
        if (d->broken)
                return;
        log_debug_errno(error, "ffmpeg-decoder: stream failed: %m");
        d->broken = true;
        ff_stream_error(&d->s, error);
        decoder_cancel_inputs(d);
        ff_stream_cancel_list(&d->s, &d->outputs);
        ff_stream_cancel_list(&d->s, &d->stale);
}

/* Takes the next input: one copy out of guest memory, after which the guest buffer is not touched. */
static int decoder_start_input(Decoder *d) {
        FfWork *w = ff_list_pop(&d->inputs);
        const VideoPlane *p = &w->buf->planes[0];
        size_t need = (size_t) p->data_size + AV_INPUT_BUFFER_PADDING_SIZE;

        if (d->drain == DRAIN_INPUT && d->drain_inputs > 0)
                d->drain_inputs--;
        d->cur = w;
        d->cur_failed = false;
        if (d->chunk_alloc < need) {
                uint8_t *n = realloc(d->chunk, need);

                if (!n)
                        return -ENOMEM;
                d->chunk = n;
                d->chunk_alloc = need;
        }
        d->chunk_size = iov_to_buf(p->iov, p->n_iov, 0, d->chunk, p->data_size);
        memset(d->chunk + d->chunk_size, 0, AV_INPUT_BUFFER_PADDING_SIZE);
        d->chunk_off = 0;
        if (!d->use_parser || d->chunk_size == 0)
                return 0;

        if (d->n_marks == DEC_MAX_MARKS) {
                /* A frame spread over thousands of inputs: forget the oldest half. */
                memmove(d->marks, d->marks + DEC_MAX_MARKS / 2, sizeof(TsMark) * (DEC_MAX_MARKS / 2));
                d->n_marks = DEC_MAX_MARKS / 2;
        }
        if (d->n_marks == d->alloc_marks) {
                size_t n = MAX(d->alloc_marks * 2, (size_t) 16);
                TsMark *m = reallocarray(d->marks, n, sizeof(TsMark));

                if (!m)
                        return -ENOMEM;
                d->marks = m;
                d->alloc_marks = n;
        }
        d->marks[d->n_marks++] = (TsMark){ d->stream_offset, w->buf->timestamp };
        return 0;
}

/* The timestamp of the input holding byte `start` of the stream; earlier marks are not needed again. */
static uint64_t decoder_timestamp_at(Decoder *d, uint64_t start) {
        size_t i = 0;

        if (d->n_marks == 0)
                return 0;
        while (i + 1 < d->n_marks && d->marks[i + 1].offset <= start)
                i++;
        if (i > 0) {
                memmove(d->marks, d->marks + i, sizeof(TsMark) * (d->n_marks - i));
                d->n_marks -= i;
        }
        return d->marks[0].timestamp;
}

static void decoder_set_packet(Decoder *d, uint8_t *data, int size) {
        /* The parser counts the bytes it was given as we do; frame_offset is where this packet started
         * (which may lie before the bytes of the last call, when a start code straddled two inputs). */
        uint64_t start = d->parser->frame_offset > 0 ? (uint64_t) d->parser->frame_offset : 0;

        d->pkt->data = data;
        d->pkt->size = size;
        d->pkt->pts = (int64_t) decoder_timestamp_at(d, start);
        d->pkt_pending = true;
}

/* Turns the current chunk, or a part of it, into the pending packet. */
static void decoder_parse(Decoder *d) {
        uint8_t *data = d->chunk + d->chunk_off;
        int size = (int) MIN(d->chunk_size - d->chunk_off, (size_t) INT32_MAX);
        av_packet_unref(d->pkt);
        if (!d->use_parser) {
                d->pkt->data = data;
                d->pkt->size = size;
                d->pkt->pts = (int64_t) d->cur->buf->timestamp;
                d->chunk_off = d->chunk_size;
                d->pkt_pending = true;
                return;
        }

        uint8_t *out = NULL;
        int out_size = 0;
        int used = av_parser_parse2(d->parser, d->ctx, &out, &out_size, data, size, AV_NOPTS_VALUE,
                                    AV_NOPTS_VALUE, 0);
        if (used < 0) {
                /* The parsers do not fail on data; treat it as corrupt input and skip the chunk. */
                d->cur_failed = true;
                used = size;
        }
        d->chunk_off += (size_t) used;
        d->stream_offset += (uint64_t) used;
        if (out_size > 0)
                decoder_set_packet(d, out, out_size);
}

static bool decoder_flush_parser(Decoder *d) {
        uint8_t *out = NULL;
        int out_size = 0;

        if (!d->use_parser)
                return false;
        av_packet_unref(d->pkt);
        (void) av_parser_parse2(d->parser, d->ctx, &out, &out_size, NULL, 0, AV_NOPTS_VALUE, AV_NOPTS_VALUE,
                                0);
        if (out_size <= 0)
                return false;
        decoder_set_packet(d, out, out_size);
        return true;
}

/* Pixel formats the guest formats cannot carry as they are (10-bit, 4:2:2, 4:4:4) are converted to
 * 8-bit 4:2:0 first, when libswscale is there: same size, so the flags only pick the chroma filter
 * (bilinear; the tests build their references with the same). */
static bool decoder_can_convert(int pix_fmt) {
#if HAVE_LIBSWSCALE
        return sws_isSupportedInput(pix_fmt) > 0;
#else
        return false;
#endif
}

/* The frame to copy out: the decoded one, or its conversion. */
static int decoder_frame_for_output(Decoder *d, const AVFrame **ret) {
        if (ff_pix_fmt_supported(d->frame->format)) {
                *ret = d->frame;
                return 0;
        }
#if HAVE_LIBSWSCALE
        const AVFrame *in = d->frame;
        AVFrame *out = d->converted;

        d->sws = sws_getCachedContext(d->sws, in->width, in->height, in->format, in->width, in->height,
                                      AV_PIX_FMT_YUV420P, SWS_BILINEAR, NULL, NULL, NULL);
        if (!d->sws)
                return -EOPNOTSUPP;
        av_frame_unref(out);
        out->format = AV_PIX_FMT_YUV420P;
        out->width = in->width;
        out->height = in->height;
        if (av_frame_get_buffer(out, 0) < 0)
                return -ENOMEM;
        if (sws_scale(d->sws, (const uint8_t *const *) in->data, in->linesize, 0, in->height, out->data,
                      out->linesize) < 0)
                return -EIO;
        *ret = out;
        return 0;
#else
        return -EOPNOTSUPP;
#endif
}

/* A frame came out: announce a new geometry before anything is written for it. */
static void decoder_check_format(Decoder *d) {
        const AVFrame *f = d->frame;
        FfWork *w;

        if (!ff_pix_fmt_supported(f->format) && !decoder_can_convert(f->format)) {
                log_debug("ffmpeg-decoder: cannot convert pixel format %d", f->format);
                decoder_fail(d, -EOPNOTSUPP);
                return;
        }
        if (d->out_gen > 0 && f->width == d->out_width && f->height == d->out_height)
                return;
        if (f->width <= 0 || f->height <= 0 || (unsigned) f->width > FF_MAX_DIMENSION ||
            (unsigned) f->height > FF_MAX_DIMENSION) {
                decoder_fail(d, -EINVAL);
                return;
        }
        w = ff_work_new(FF_DONE_FORMAT);
        if (!w) {
                decoder_fail(d, -ENOMEM);
                return;
        }
        d->out_gen++;
        d->out_width = f->width;
        d->out_height = f->height;
        w->gen = d->out_gen;
        w->params.frame_width = (uint32_t) f->width;
        w->params.frame_height = (uint32_t) f->height;
        /* Buffers queued so far were sized for the old geometry: they wait for clear(OUTPUT). */
        for (FfWork *o; (o = ff_list_pop(&d->outputs));)
                ff_list_push(&d->stale, o);
        if (d->out_seen)
                d->out_blocked = true;
        log_debug("ffmpeg-decoder: output %dx%d, generation %" PRIu64, f->width, f->height, d->out_gen);
        ff_stream_complete(&d->s, w);
}

static bool decoder_output_frame(Decoder *d) {
        const AVFrame *src;
        FfWork *w;
        uint64_t ts;
        int r;

        if (!d->outputs.head)
                return false;
        w = ff_list_pop(&d->outputs);
        if (w->params.frame_width != (uint32_t) d->frame->width ||
            w->params.frame_height != (uint32_t) d->frame->height) {
                /* Queued before the guest learned of this geometry (it was in flight when the change was
                 * announced): like every buffer of the old geometry it waits for clear(OUTPUT). */
                ff_list_push(&d->stale, w);
                d->out_blocked = true;
                for (FfWork *o; (o = ff_list_pop(&d->outputs));)
                        ff_list_push(&d->stale, o);
                return true;
        }
        ts = (uint64_t) (d->frame->pts != AV_NOPTS_VALUE ? d->frame->pts : d->frame->best_effort_timestamp);
        if (d->frame->pts == AV_NOPTS_VALUE && d->frame->best_effort_timestamp == AV_NOPTS_VALUE)
                ts = 0;
        r = decoder_frame_for_output(d, &src);
        if (r >= 0)
                r = ff_frame_to_buffer(src, &w->params, w->buf, w->result.sizes, &d->scratch);
        if (r == -EOPNOTSUPP || r == -ENOMEM) {
                ff_stream_buffer_done(&d->s, w, VIDEO_BUFFER_F_ERR, ts);
                decoder_fail(d, r);
        } else if (r < 0) {
                log_debug_errno(r, "ffmpeg-decoder: cannot write a frame into output %u: %m",
                                w->buf->resource_id);
                ff_stream_buffer_done(&d->s, w, VIDEO_BUFFER_F_ERR, ts);
        } else
                ff_stream_buffer_done(&d->s, w, 0, ts);
        av_frame_unref(d->frame);
        d->frame_pending = false;
        return true;
}

static bool decoder_send_eos(Decoder *d) {
        if (!ff_stream_finish_drain(&d->s, &d->outputs, &d->drain_cmd))
                return false;
        d->drain = DRAIN_NONE;
        decoder_reset_codec(d);
        return true;
}

static void decoder_send_packet(Decoder *d, const AVPacket *pkt, bool *ret_again) {
        int r = avcodec_send_packet(d->ctx, pkt);

        *ret_again = r == AVERROR(EAGAIN);
        if (*ret_again)
                return;
        if (pkt) {
                av_packet_unref(d->pkt);
                d->pkt_pending = false;
        }
        if (r == AVERROR(ENOMEM))
                decoder_fail(d, -ENOMEM);
        else if (r < 0 && r != AVERROR_EOF) {
                /* A packet the decoder rejects: the input it came from completes with F_ERR. */
                log_debug("ffmpeg-decoder: packet rejected: %s", av_err2str(r));
                if (d->cur)
                        d->cur_failed = true;
        }
}

/* One unit of work; false when nothing can move until a command comes. */
static bool decoder_step(FfStream *s) {
        Decoder *d = (Decoder *) s;
        bool again;
        int r;

        if (d->broken)
                return false;

        if (d->frame_pending)
                return decoder_output_frame(d);

        if (d->drain == DRAIN_EOS)
                return decoder_send_eos(d);

        r = avcodec_receive_frame(d->ctx, d->frame);
        if (r == 0) {
                d->frame_pending = true;
                decoder_check_format(d);
                return true;
        }
        if (r == AVERROR_EOF) {
                if (d->drain == DRAIN_DECODER) {
                        d->drain = DRAIN_EOS;
                        return true;
                }
                /* EOF without a drain cannot happen; reset rather than spin. */
                decoder_reset_codec(d);
                return true;
        }
        if (r == AVERROR(ENOMEM)) {
                decoder_fail(d, -ENOMEM);
                return false;
        }
        if (r != AVERROR(EAGAIN)) {
                log_debug("ffmpeg-decoder: decoding failed: %s", av_err2str(r));
                if (d->cur)
                        d->cur_failed = true;
                return true;
        }

        /* The decoder wants input. */
        if (d->pkt_pending) {
                decoder_send_packet(d, d->pkt, &again);
                return !again;
        }
        if (d->cur) {
                if (d->chunk_off < d->chunk_size)
                        decoder_parse(d);
                else
                        decoder_finish_input(d);
                return true;
        }
        /* Input queued after a drain waits until the drain is over. */
        if (d->inputs.head && (d->drain == DRAIN_NONE || (d->drain == DRAIN_INPUT && d->drain_inputs > 0))) {
                r = decoder_start_input(d);
                if (r < 0)
                        decoder_fail(d, r);
                return r >= 0;
        }
        switch (d->drain) {
        case DRAIN_INPUT:
                (void) decoder_flush_parser(d);
                d->drain = DRAIN_FLUSH;
                return true;
        case DRAIN_FLUSH:
                decoder_send_packet(d, NULL, &again);
                if (!again)
                        d->drain = DRAIN_DECODER;
                return true;
        default:
                return false;
        }
}

static void decoder_clear_input(Decoder *d) {
        decoder_cancel_inputs(d);
        av_frame_unref(d->frame);
        d->frame_pending = false;
        if (d->drain != DRAIN_NONE) {
                d->drain = DRAIN_NONE;
                free(d->drain_cmd);
                d->drain_cmd = NULL;
        }
        decoder_reset_codec(d);
}

static void decoder_apply(FfStream *s, FfWork *w) {
        Decoder *d = (Decoder *) s;

        switch (w->type) {
        case FF_CMD_QUEUE:
                if (d->broken)
                        ff_stream_buffer_done(s, w, VIDEO_BUFFER_F_ERR, w->buf->timestamp);
                else if (w->queue == VIDEO_QUEUE_INPUT)
                        ff_list_push(&d->inputs, w);
                else {
                        d->out_seen = true;
                        ff_list_push(d->out_blocked || w->stale ? &d->stale : &d->outputs, w);
                }
                break;
        case FF_CMD_DRAIN:
                if (d->broken) {
                        free(w);
                        break;
                }
                d->drain = DRAIN_INPUT;
                d->drain_inputs = d->inputs.n;
                d->drain_cmd = w;
                break;
        case FF_CMD_CLEAR:
                if (w->queue == VIDEO_QUEUE_INPUT)
                        decoder_clear_input(d);
                else {
                        ff_stream_cancel_list(s, &d->stale);
                        ff_stream_cancel_list(s, &d->outputs);
                        d->out_seen = d->out_blocked = false;
                }
                w->type = FF_DONE_CLEAR;
                ff_stream_complete(s, w);
                break;
        default:
                free(w);
        }
}

/* ---- event loop thread --------------------------------------------------------------------------- */

static void decoder_output_params(Decoder *d, uint32_t format, uint32_t width, uint32_t height) {
        VideoParams *p = &d->s.params[VIDEO_QUEUE_OUTPUT];
        uint32_t rate = p->frame_rate;

        *p = (VideoParams){};
        (void) ff_layout_default(format, width, height, p);
        p->frame_rate = rate;
        p->min_buffers = DEC_MIN_OUTPUT_BUFFERS;
        p->max_buffers = DEC_MAX_BUFFERS;
        p->crop.width = width;
        p->crop.height = height;
}

static void decoder_format_changed(FfStream *s, const FfWork *w) {
        Decoder *d = (Decoder *) s;

        if (d->loop_out_seen)
                d->loop_out_blocked = true;
        decoder_output_params(d, s->params[VIDEO_QUEUE_OUTPUT].format, w->params.frame_width,
                              w->params.frame_height);
        s->params[VIDEO_QUEUE_INPUT].frame_width = w->params.frame_width;
        s->params[VIDEO_QUEUE_INPUT].frame_height = w->params.frame_height;
}

static void decoder_destroy(FfStream *s) {
        Decoder *d = (Decoder *) s;

        ff_list_free(&d->inputs);
        ff_list_free(&d->outputs);
        ff_list_free(&d->stale);
        free(d->cur);
        free(d->drain_cmd);
        free(d->chunk);
        free(d->marks);
        ff_scratch_free(&d->scratch);
        av_parser_close(d->parser);
        avcodec_free_context(&d->ctx);
        av_packet_free(&d->pkt);
        av_frame_free(&d->frame);
#if HAVE_LIBSWSCALE
        sws_freeContext(d->sws);
        av_frame_free(&d->converted);
#endif
        free(d);
}

static const FfStreamClass decoder_class = {
        .apply = decoder_apply,
        .step = decoder_step,
        .format_changed = decoder_format_changed,
        .destroy = decoder_destroy,
};

static int decoder_stream_new(Backend *b,
                              uint32_t coded_format,
                              const BackendStreamCallbacks *callbacks,
                              void *userdata,
                              BackendStream **ret) {
        FfBackend *db = (FfBackend *) b;
        Decoder *d;
        int r = -EINVAL;

        if (!callbacks || !callbacks->buffer_done)
                return -EINVAL;
        d = calloc(1, sizeof(*d));
        if (!d)
                return -ENOMEM;
        ff_stream_init(&d->s, b, &decoder_class, callbacks, userdata);
        d->backend = db;
        d->coded_format = coded_format;
        for (size_t i = 0; i < ELEMENTSOF(dec_codecs); i++)
                if (dec_codecs[i].format == coded_format && avcodec_find_decoder(dec_codecs[i].id)) {
                        d->codec_id = dec_codecs[i].id;
                        d->use_parser = dec_codecs[i].parser;
                        r = 0;
                }
        if (r < 0) {
                free(d);
                return r;
        }

        /* The thread only touches the codec once a command comes, after this function. */
        r = ff_stream_start(&d->s, db->event);
        if (r >= 0) {
                d->pkt = av_packet_alloc();
                d->frame = av_frame_alloc();
                r = d->pkt && d->frame ? decoder_open_codec(d) : -ENOMEM;
#if HAVE_LIBSWSCALE
                d->converted = av_frame_alloc();
                if (r >= 0 && !d->converted)
                        r = -ENOMEM;
#endif
        }
        if (r < 0) {
                ff_stream_free(&d->s);
                return r;
        }

        d->s.params[VIDEO_QUEUE_INPUT] = (VideoParams){
                .format = coded_format,
                .min_buffers = 1,
                .max_buffers = DEC_MAX_BUFFERS,
                .num_planes = 1,
                .planes[0].plane_size = DEC_INPUT_BUFFER_SIZE,
        };
        decoder_output_params(d, VIDEO_FORMAT_NV12, DEC_DEFAULT_WIDTH, DEC_DEFAULT_HEIGHT);
        d->s.params[VIDEO_QUEUE_OUTPUT].crop.width = 0; /* not known until the headers are parsed */
        d->s.params[VIDEO_QUEUE_OUTPUT].crop.height = 0;
        *ret = &d->s.base;
        return 0;
}

static int decoder_set_input_params(Decoder *d, const VideoParams *params) {
        VideoParams *p = &d->s.params[VIDEO_QUEUE_INPUT];

        if (params->format != 0 && params->format != d->coded_format)
                return -EINVAL; /* the coded format is the stream's, chosen at stream_new */
        if (d->s.gen == 0) {
                p->frame_width = MIN(params->frame_width, FF_MAX_DIMENSION);
                p->frame_height = MIN(params->frame_height, FF_MAX_DIMENSION);
        }
        if (params->planes[0].plane_size > 0)
                p->planes[0].plane_size =
                        MIN(MAX(params->planes[0].plane_size, 4096u), DEC_INPUT_BUFFER_MAX);
        p->frame_rate = params->frame_rate;
        return 0;
}

static int decoder_set_output_params(Decoder *d, const VideoParams *params) {
        VideoParams *cur = &d->s.params[VIDEO_QUEUE_OUTPUT];
        VideoParams p = *cur;
        uint32_t format = params->format != 0 ? params->format : cur->format;
        uint32_t width = cur->frame_width, height = cur->frame_height;
        int r;

        if (!ff_raw_format_supported(format))
                return -EINVAL;
        if (d->s.gen == 0 && params->frame_width > 0 && params->frame_height > 0) {
                /* Before the stream's headers the guest's size stands (CROSVM keeps a default). */
                width = params->frame_width;
                height = params->frame_height;
        }
        r = ff_layout_default(format, width, height, &p);
        if (r < 0)
                return r;
        r = ff_layout_adjust(&p, params);
        if (r < 0)
                return r;
        if (d->s.held[VIDEO_QUEUE_OUTPUT] > 0 &&
            (p.format != cur->format || memcmp(p.planes, cur->planes, sizeof(p.planes)) != 0))
                return -EBUSY;
        p.frame_rate = params->frame_rate;
        if (d->s.gen == 0) {
                p.crop.width = 0;
                p.crop.height = 0;
        }
        *cur = p;
        return 0;
}

static int decoder_set_params(BackendStream *bs, VideoQueue queue, const VideoParams *params) {
        Decoder *d = decoder_from(bs);

        switch (queue) {
        case VIDEO_QUEUE_INPUT:
                return decoder_set_input_params(d, params);
        case VIDEO_QUEUE_OUTPUT:
                return decoder_set_output_params(d, params);
        default:
                return -EINVAL;
        }
}

static int decoder_get_control(BackendStream *bs, VideoControl control, uint32_t *ret) {
        return -EOPNOTSUPP;
}

static int decoder_set_control(BackendStream *bs, VideoControl control, uint32_t value) {
        return -EOPNOTSUPP;
}

static int decoder_queue_buffer(BackendStream *bs, VideoBuffer *buf) {
        Decoder *d = decoder_from(bs);
        bool stale = false;
        FfWork *w;

        switch (buf->queue) {
        case VIDEO_QUEUE_INPUT:
                if (buf->n_planes < 1 || buf->planes[0].data_size > buf->planes[0].length)
                        return -EINVAL;
                break;
        case VIDEO_QUEUE_OUTPUT:
                /* After a change, a driver may still re-queue buffers of the old geometry before it stops
                 * the capture queue; they are taken and held until the clear gives them back. */
                if (ff_layout_check_buffer(&d->s.params[VIDEO_QUEUE_OUTPUT], buf) < 0) {
                        if (!d->loop_out_blocked)
                                return -EINVAL;
                        stale = true;
                }
                break;
        default:
                return -EINVAL;
        }
        w = ff_stream_queue_work(&d->s, buf);
        if (!w)
                return -ENOMEM;
        w->stale = stale;
        if (buf->queue == VIDEO_QUEUE_OUTPUT)
                d->loop_out_seen = true;
        ff_stream_submit(&d->s, w);
        return 0;
}

static int decoder_clear(BackendStream *bs, VideoQueue queue) {
        Decoder *d = decoder_from(bs);
        int r;

        r = ff_stream_clear(&d->s, queue);
        if (r < 0)
                return r;
        /* loop_out_* are the loop thread's: resetting them after the submit is the same. */
        if (queue == VIDEO_QUEUE_OUTPUT)
                d->loop_out_seen = d->loop_out_blocked = false;
        return 0;
}

/* ---- backend --------------------------------------------------------------------------------------- */

static void decoder_fill_caps(VideoCaps *c) {
        const VideoFrameSize size = {
                .width = { 16, 4096, 1 },
                .height = { 16, 4096, 1 },
                .n_rates = 1,
                .rates[0] = { 1, 120, 1 },
        };
        unsigned n_in = 0;

        c->role = VIDEO_ROLE_DECODER;
        for (size_t i = 0; i < ELEMENTSOF(dec_codecs); i++) {
                VideoFormatDesc *f;

                if (!avcodec_find_decoder(dec_codecs[i].id))
                        continue;
                if (dec_codecs[i].parser) {
                        AVCodecParserContext *p = av_parser_init(dec_codecs[i].id);

                        if (!p)
                                continue;
                        av_parser_close(p);
                }
                f = &c->formats[VIDEO_QUEUE_INPUT][n_in++];
                f->format = dec_codecs[i].format;
                f->mask = (UINT64_C(1) << ELEMENTSOF(dec_raw_formats)) - 1;
                f->n_frames = 1;
                f->frames[0] = size;
        }
        c->n_formats[VIDEO_QUEUE_INPUT] = n_in;
        ff_caps_set_raw_formats(c, VIDEO_QUEUE_OUTPUT, dec_raw_formats, ELEMENTSOF(dec_raw_formats), n_in,
                                &size);
        c->controls = 0;
}

static int decoder_backend_new(const BackendConfig *config, sd_event *event, Backend **ret) {
        return ff_backend_new(&backend_ffmpeg_decoder_ops, config, event, decoder_fill_caps, ret);
}

const BackendOps backend_ffmpeg_decoder_ops = {
        .name = "ffmpeg-decoder",
        .new = decoder_backend_new,
        .free = ff_backend_free,
        .get_caps = ff_backend_get_caps,
        .query_control = ff_backend_query_control,
        .stream_new = decoder_stream_new,
        .stream_free = ff_stream_op_free,
        .get_params = ff_stream_op_get_params,
        .set_params = decoder_set_params,
        .get_control = decoder_get_control,
        .set_control = decoder_set_control,
        .queue_buffer = decoder_queue_buffer,
        .drain = ff_stream_op_drain,
        .clear = decoder_clear,
};
