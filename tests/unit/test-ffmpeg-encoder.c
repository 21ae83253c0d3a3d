/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The "ffmpeg-encoder" backend driven through backend.h: synthetic frames go in through guest-like
 * buffers in the guest's layout; what comes out is decoded directly with libavcodec and compared with
 * the source (frame count, PSNR), and the controls must show in the output.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "av-media.h"
#include "backend-harness.h"
#include "backend/ffmpeg/ffmpeg.h"
#include "common/macro.h"

#define N_INPUTS 3
#define N_OUTPUTS 4
#define MAX_FRAMES 64
#define MIN_PSNR 35.0

typedef struct EncodeCase {
        uint32_t coded_format;
        enum AVCodecID codec_id;
        uint32_t in_format;
        bool per_plane;
        uint32_t extra_stride;
        unsigned width, height, frames;
        uint32_t bitrate;      /* 0: the default */
        uint32_t mode;         /* VIDEO_BITRATE_MODE_* */
        int force_keyframe_at; /* frame index, or -1 */
        int prepend;           /* PREPEND_SPSPPS_TO_IDR, or -1 to leave it */
        unsigned noise;        /* luma noise in the source pictures (media_pattern_noisy()) */
        int bitrate_change_at; /* frame index where BITRATE becomes bitrate_after, or 0 */
        uint32_t bitrate_after;
} EncodeCase;

typedef struct Encoded {
        MediaStream stream;
        uint32_t flags[MAX_FRAMES];
        uint64_t ts[MAX_FRAMES];
        size_t bytes;
} Encoded;

static uint64_t frame_ts(unsigned i) {
        return 5000 + (uint64_t) i * 33333;
}

static bool pred_done_or_drained(Harness *h, void *userdata) {
        return h->n_taken < h->n_done || h->drains_done > *(unsigned *) userdata || h->errors > 0;
}

static void append_packet(Encoded *e, const HarnessBuffer *b) {
        size_t n = e->stream.n;
        MediaPacket *a = reallocarray(e->stream.pkts, n + 1, sizeof(*a));

        assert_non_null(a);
        assert_true(n < MAX_FRAMES);
        e->stream.pkts = a;
        a[n].size = b->result.sizes[0];
        a[n].data = malloc(a[n].size + 1);
        assert_non_null(a[n].data);
        harness_buffer_read(b, 0, a[n].data, a[n].size);
        a[n].key = b->result.flags & VIDEO_BUFFER_F_IFRAME;
        e->flags[n] = b->result.flags;
        e->ts[n] = b->result.timestamp;
        e->bytes += a[n].size;
        e->stream.n++;
}

/* Queues frames [first, first + n) and drains; the packets are appended to e. */
static void encode_frames(
        Harness *h, const EncodeCase *c, unsigned first, unsigned n, HarnessBuffer *outs[], Encoded *e) {
        const BackendOps *ops = h->backend->ops;
        HarnessBuffer *in[N_INPUTS];
        VideoParams p;
        size_t sizes[VIDEO_MAX_PLANES];
        unsigned np, next = first, drains = h->drains_done;
        bool eos = false;

        assert_int_equal(ops->get_params(h->stream, VIDEO_QUEUE_INPUT, &p), 0);
        np = media_layout_sizes(&p, !c->per_plane, sizes);
        for (unsigned i = 0; i < N_INPUTS; i++)
                in[i] = harness_buffer_new(VIDEO_QUEUE_INPUT, np, sizes, 2 + i, 11 + i);

        for (;;) {
                for (unsigned i = 0; i < N_INPUTS && next < first + n; i++) {
                        AVFrame *pic;

                        if (in[i]->queued)
                                continue;
                        if (c->bitrate_change_at > 0 && c->bitrate_change_at == (int) next)
                                assert_int_equal(ops->set_control(h->stream, VIDEO_CONTROL_BITRATE,
                                                                  c->bitrate_after),
                                                 0);
                        if (c->force_keyframe_at == (int) next)
                                assert_int_equal(ops->set_control(h->stream, VIDEO_CONTROL_FORCE_KEYFRAME,
                                                                  0),
                                                 0);
                        pic = media_pattern_noisy(p.frame_width, p.frame_height, next, c->noise);
                        media_write_raw(pic, &p, in[i]);
                        av_frame_free(&pic);
                        assert_int_equal(harness_queue(h, in[i], frame_ts(next), 0), 0);
                        next++;
                        if (next == first + n)
                                assert_int_equal(ops->drain(h->stream), 0);
                }
                if (eos && h->drains_done > drains)
                        break;
                assert_true(harness_run_until(h, pred_done_or_drained, &drains));
                assert_int_equal(h->errors, 0);
                for (HarnessBuffer *b; (b = harness_take_done(h));) {
                        if (b->vb.queue == VIDEO_QUEUE_INPUT) {
                                assert_int_equal(b->result.flags, 0);
                                continue;
                        }
                        assert_false(eos);
                        if (b->result.flags & VIDEO_BUFFER_F_EOS) {
                                assert_int_equal(b->result.flags, VIDEO_BUFFER_F_EOS);
                                assert_int_equal(b->result.sizes[0], 0);
                                eos = true;
                        } else {
                                uint32_t f = b->result.flags;

                                assert_true(f == VIDEO_BUFFER_F_IFRAME || f == VIDEO_BUFFER_F_PFRAME);
                                assert_true(b->result.sizes[0] > 0);
                                append_packet(e, b);
                        }
                        assert_int_equal(harness_queue(h, b, 0, 0), 0);
                }
                if (h->drains_done > drains)
                        assert_true(eos);
        }
        for (unsigned i = 0; i < N_INPUTS; i++) {
                assert_false(in[i]->queued);
                harness_buffer_free(in[i]);
        }
}

static Harness *encoder_start(const EncodeCase *c, HarnessBuffer *outs[]) {
        const BackendOps *ops = &backend_ffmpeg_encoder_ops;
        Harness *h;
        VideoParams p;
        size_t out_size;

        assert_int_equal(harness_new(ops, 1, &h), 0);
        assert_int_equal(harness_stream_new(h, c->coded_format), 0);
        assert_int_equal(ops->get_params(h->stream, VIDEO_QUEUE_INPUT, &p), 0);
        p.format = c->in_format;
        p.frame_width = c->width;
        p.frame_height = c->height;
        p.frame_rate = 30;
        for (unsigned i = 0; i < VIDEO_MAX_PLANES; i++)
                p.planes[i] = (typeof(p.planes[i])){ 0, 0 };
        p.planes[0].stride = c->width + c->extra_stride;
        assert_int_equal(ops->set_params(h->stream, VIDEO_QUEUE_INPUT, &p), 0);
        assert_int_equal(ops->get_params(h->stream, VIDEO_QUEUE_INPUT, &p), 0);
        assert_int_equal(p.format, c->in_format);
        assert_int_equal(p.frame_width, c->width);
        assert_int_equal(p.planes[0].stride, c->width + c->extra_stride);
        assert_int_equal(ops->get_params(h->stream, VIDEO_QUEUE_OUTPUT, &p), 0);
        assert_int_equal(p.format, c->coded_format);
        assert_int_equal(p.frame_width, c->width);
        out_size = p.planes[0].plane_size;
        assert_true(out_size >= c->width * c->height);

        if (c->bitrate > 0) {
                assert_int_equal(ops->set_control(h->stream, VIDEO_CONTROL_BITRATE_MODE, c->mode), 0);
                assert_int_equal(ops->set_control(h->stream, VIDEO_CONTROL_BITRATE, c->bitrate), 0);
                assert_int_equal(ops->set_control(h->stream, VIDEO_CONTROL_BITRATE_PEAK, c->bitrate), 0);
        }
        if (c->prepend >= 0)
                assert_int_equal(ops->set_control(h->stream, VIDEO_CONTROL_PREPEND_SPSPPS_TO_IDR,
                                                  (uint32_t) c->prepend),
                                 0);
        for (unsigned i = 0; i < N_OUTPUTS; i++) {
                outs[i] = harness_buffer_new(VIDEO_QUEUE_OUTPUT, 1, &out_size, 1 + i, 3 + i);
                assert_int_equal(harness_queue(h, outs[i], 0, 0), 0);
        }
        return h;
}

static void encoder_stop(Harness *h, HarnessBuffer *outs[]) {
        harness_free(h);
        for (unsigned i = 0; i < N_OUTPUTS; i++)
                harness_buffer_free(outs[i]);
}

/* Encodes the whole case and checks what every encode must give. */
static void run_encode(const EncodeCase *c, Encoded *e) {
        HarnessBuffer *outs[N_OUTPUTS];
        Harness *h = encoder_start(c, outs);

        encode_frames(h, c, 0, c->frames, outs, e);
        assert_int_equal(e->stream.n, c->frames); /* one packet per frame, nothing lost */
        for (unsigned i = 0; i < c->frames; i++)
                assert_int_equal(e->ts[i], frame_ts(i));
        assert_int_equal(e->flags[0], VIDEO_BUFFER_F_IFRAME);
        assert_int_equal(h->reentrant_calls, 0);
        encoder_stop(h, outs);
}

/* Decodes e from packet `first` on: one frame per packet, each close to its source. */
static void check_decodes_psnr(const EncodeCase *c, const Encoded *e, size_t first, double min_psnr) {
        MediaFrames frames = {};

        assert_int_equal(media_decode(c->codec_id, &e->stream, first, NULL, &frames), 0);
        assert_int_equal(frames.n, c->frames - first);
        for (size_t i = 0; i < frames.n; i++) {
                AVFrame *src = media_pattern_noisy(c->width, c->height, (unsigned) (first + i), c->noise);
                double psnr = media_psnr(src, frames.f[i]);

                assert_int_equal(frames.f[i]->width, c->width);
                assert_int_equal(frames.f[i]->height, c->height);
                if (psnr < min_psnr)
                        fail_msg("frame %zu: PSNR %.2f dB", first + i, psnr);
                av_frame_free(&src);
        }
        media_frames_free(&frames);
}

static void check_decodes(const EncodeCase *c, const Encoded *e, size_t first) {
        check_decodes_psnr(c, e, first, MIN_PSNR);
}

static void test_h264_nv12(void **state) {
        const EncodeCase c = {
                .coded_format = VIDEO_FORMAT_H264,
                .codec_id = AV_CODEC_ID_H264,
                .in_format = VIDEO_FORMAT_NV12,
                .extra_stride = 32,
                .width = 160,
                .height = 96,
                .frames = 30,
                .force_keyframe_at = -1,
                .prepend = -1,
        };
        Encoded e = {};

        run_encode(&c, &e);
        check_decodes(&c, &e, 0);
        media_stream_free(&e.stream);
}

static void test_vp8_yuv420_per_plane(void **state) {
        const EncodeCase c = {
                .coded_format = VIDEO_FORMAT_VP8,
                .codec_id = AV_CODEC_ID_VP8,
                .in_format = VIDEO_FORMAT_YUV420,
                .per_plane = true,
                .width = 160,
                .height = 96,
                .frames = 30,
                .force_keyframe_at = -1,
                .prepend = -1,
        };
        Encoded e = {};

        run_encode(&c, &e);
        check_decodes(&c, &e, 0);
        media_stream_free(&e.stream);
}

static void test_vp9_yvu420(void **state) {
        const EncodeCase c = {
                .coded_format = VIDEO_FORMAT_VP9,
                .codec_id = AV_CODEC_ID_VP9,
                .in_format = VIDEO_FORMAT_YVU420,
                .extra_stride = 8,
                .width = 96,
                .height = 64,
                .frames = 20,
                .force_keyframe_at = -1,
                .prepend = -1,
        };
        Encoded e = {};

        run_encode(&c, &e);
        check_decodes(&c, &e, 0);
        media_stream_free(&e.stream);
}

static void check_bitrate_lowers_size(uint32_t coded_format, enum AVCodecID id) {
        EncodeCase c = {
                .coded_format = coded_format,
                .codec_id = id,
                .in_format = VIDEO_FORMAT_NV12,
                .width = 160,
                .height = 96,
                .frames = 30,
                .bitrate = 2000000,
                .mode = VIDEO_BITRATE_MODE_VBR,
                .force_keyframe_at = -1,
                .prepend = -1,
                .noise = 32,
        };
        Encoded high = {}, low = {};

        run_encode(&c, &high);
        c.bitrate = 60000;
        c.mode = VIDEO_BITRATE_MODE_CBR;
        run_encode(&c, &low);
        printf("# format 0x%x: %zu bytes at 2 Mbit/s, %zu at 60 kbit/s\n", coded_format, high.bytes,
               low.bytes);
        assert_true(low.bytes * 4 < high.bytes);
        /* 60 kbit/s over one second of video, with generous room for the first keyframe. */
        assert_true(low.bytes < 60000 / 8 * 3);
        check_decodes_psnr(&c, &low, 0, 0); /* every frame decodes, quality aside */
        check_decodes_psnr(&c, &high, 0, 25);
        media_stream_free(&high.stream);
        media_stream_free(&low.stream);
}

static void test_h264_bitrate(void **state) {
        check_bitrate_lowers_size(VIDEO_FORMAT_H264, AV_CODEC_ID_H264);
}

static void test_vp8_bitrate(void **state) {
        check_bitrate_lowers_size(VIDEO_FORMAT_VP8, AV_CODEC_ID_VP8);
}

/* BITRATE set while the stream runs takes effect on the frames after it. */
static void check_bitrate_change_midstream(uint32_t coded_format, enum AVCodecID id) {
        EncodeCase c = {
                .coded_format = coded_format,
                .codec_id = id,
                .in_format = VIDEO_FORMAT_NV12,
                .width = 160,
                .height = 96,
                .frames = 30,
                .bitrate = 2000000,
                .mode = VIDEO_BITRATE_MODE_CBR,
                .force_keyframe_at = -1,
                .prepend = -1,
                .noise = 32,
        };
        Encoded steady = {}, lowered = {};
        size_t tail_steady = 0, tail_lowered = 0;

        run_encode(&c, &steady);
        c.bitrate_change_at = 12;
        c.bitrate_after = 60000;
        run_encode(&c, &lowered);
        for (unsigned i = 20; i < 30; i++) {
                tail_steady += steady.stream.pkts[i].size;
                tail_lowered += lowered.stream.pkts[i].size;
        }
        printf("# format 0x%x: last 10 frames %zu bytes at 2 Mbit/s, %zu after lowering to 60 kbit/s\n",
               coded_format, tail_steady, tail_lowered);
        assert_true(tail_lowered * 4 < tail_steady);
        check_decodes_psnr(&c, &lowered, 0, 0);
        media_stream_free(&steady.stream);
        media_stream_free(&lowered.stream);
}

static void test_h264_bitrate_change(void **state) {
        check_bitrate_change_midstream(VIDEO_FORMAT_H264, AV_CODEC_ID_H264);
}

static void test_vp8_bitrate_change(void **state) {
        check_bitrate_change_midstream(VIDEO_FORMAT_VP8, AV_CODEC_ID_VP8);
}

/* Whether an Annex B access unit holds a NAL unit of this type. */
static bool has_nal(const MediaPacket *p, unsigned type) {
        for (size_t i = 0; i + 3 < p->size; i++)
                if (p->data[i] == 0 && p->data[i + 1] == 0 && p->data[i + 2] == 1 &&
                    (p->data[i + 3] & 0x1f) == type)
                        return true;
        return false;
}

#define KEY_AT 13

static void check_force_keyframe(uint32_t coded_format, enum AVCodecID id) {
        EncodeCase c = {
                .coded_format = coded_format,
                .codec_id = id,
                .in_format = VIDEO_FORMAT_YUV420,
                .width = 160,
                .height = 96,
                .frames = 24,
                .force_keyframe_at = -1,
                .prepend = -1,
        };
        Encoded plain = {}, forced = {};

        run_encode(&c, &plain);
        assert_int_equal(plain.flags[KEY_AT], VIDEO_BUFFER_F_PFRAME);
        c.force_keyframe_at = KEY_AT;
        run_encode(&c, &forced);
        assert_int_equal(forced.flags[KEY_AT], VIDEO_BUFFER_F_IFRAME);
        assert_int_equal(forced.flags[KEY_AT + 1], VIDEO_BUFFER_F_PFRAME);
        /* A decoder starting at that frame gets every frame from there on. */
        check_decodes(&c, &forced, KEY_AT);
        if (coded_format == VIDEO_FORMAT_H264) {
                assert_true(has_nal(&forced.stream.pkts[KEY_AT], 5)); /* IDR slice */
                assert_true(has_nal(&forced.stream.pkts[KEY_AT], 7)); /* SPS, prepended by default */
        }
        media_stream_free(&plain.stream);
        media_stream_free(&forced.stream);
}

static void test_h264_force_keyframe(void **state) {
        check_force_keyframe(VIDEO_FORMAT_H264, AV_CODEC_ID_H264);
}

static void test_vp8_force_keyframe(void **state) {
        check_force_keyframe(VIDEO_FORMAT_VP8, AV_CODEC_ID_VP8);
}

/* PREPEND_SPSPPS_TO_IDR off: the headers open the stream, and later IDRs go without them. */
static void test_h264_prepend_off(void **state) {
        const EncodeCase c = {
                .coded_format = VIDEO_FORMAT_H264,
                .codec_id = AV_CODEC_ID_H264,
                .in_format = VIDEO_FORMAT_NV12,
                .width = 96,
                .height = 64,
                .frames = 20,
                .force_keyframe_at = KEY_AT,
                .prepend = 0,
        };
        Encoded e = {};

        run_encode(&c, &e);
        assert_true(has_nal(&e.stream.pkts[0], 7));
        assert_true(has_nal(&e.stream.pkts[0], 8));
        assert_int_equal(e.flags[KEY_AT], VIDEO_BUFFER_F_IFRAME);
        assert_true(has_nal(&e.stream.pkts[KEY_AT], 5));
        assert_false(has_nal(&e.stream.pkts[KEY_AT], 7));
        check_decodes(&c, &e, 0);
        media_stream_free(&e.stream);
}

/* After a drain the guest may change the picture size: the next frames come at the new size. */
static void test_h264_new_size_after_drain(void **state) {
        EncodeCase c = {
                .coded_format = VIDEO_FORMAT_H264,
                .codec_id = AV_CODEC_ID_H264,
                .in_format = VIDEO_FORMAT_NV12,
                .width = 160,
                .height = 96,
                .frames = 8,
                .force_keyframe_at = -1,
                .prepend = -1,
        };
        HarnessBuffer *outs[N_OUTPUTS];
        Harness *h = encoder_start(&c, outs);
        const BackendOps *ops = h->backend->ops;
        Encoded first = {}, second = {};
        VideoParams p;

        encode_frames(h, &c, 0, c.frames, outs, &first);
        assert_int_equal(first.stream.n, 8);
        check_decodes(&c, &first, 0);

        assert_int_equal(ops->get_params(h->stream, VIDEO_QUEUE_INPUT, &p), 0);
        p.frame_width = 96;
        p.frame_height = 64;
        memset(p.planes, 0, sizeof(p.planes));
        assert_int_equal(ops->set_params(h->stream, VIDEO_QUEUE_INPUT, &p), 0);
        c.width = 96;
        c.height = 64;
        encode_frames(h, &c, 0, c.frames, outs, &second);
        assert_int_equal(second.stream.n, 8);
        assert_int_equal(second.flags[0], VIDEO_BUFFER_F_IFRAME);
        check_decodes(&c, &second, 0);
        encoder_stop(h, outs);
        media_stream_free(&first.stream);
        media_stream_free(&second.stream);
}

static bool pred_clear_input(Harness *h, void *userdata) {
        return h->clears_done[VIDEO_QUEUE_INPUT] > 0;
}

static bool pred_drain(Harness *h, void *userdata) {
        return h->drains_done > 0;
}

/* A drain before any frame still ends with an EOS buffer. */
static void test_drain_without_frames(void **state) {
        const BackendOps *ops = &backend_ffmpeg_encoder_ops;
        size_t size = 4096;
        HarnessBuffer *out = harness_buffer_new(VIDEO_QUEUE_OUTPUT, 1, &size, 2, 1);
        Harness *h;

        assert_int_equal(harness_new(ops, 1, &h), 0);
        assert_int_equal(harness_stream_new(h, VIDEO_FORMAT_H264), 0);
        assert_int_equal(ops->drain(h->stream), 0);
        assert_int_equal(ops->drain(h->stream), -EBUSY);
        assert_int_equal(harness_queue(h, out, 0, 0), 0);
        assert_true(harness_run_until(h, pred_drain, NULL));
        assert_int_equal(out->result.flags, VIDEO_BUFFER_F_EOS);
        assert_int_equal(out->result.sizes[0], 0);
        harness_free(h);
        harness_buffer_free(out);
}

/* clear(INPUT) resets the encoder: held frames come back, and what follows starts with a keyframe
 * that decodes alone. */
static void test_h264_clear_input_restarts(void **state) {
        const EncodeCase c = {
                .coded_format = VIDEO_FORMAT_H264,
                .codec_id = AV_CODEC_ID_H264,
                .in_format = VIDEO_FORMAT_NV12,
                .width = 96,
                .height = 64,
                .frames = 6,
                .force_keyframe_at = -1,
                .prepend = -1,
        };
        HarnessBuffer *outs[N_OUTPUTS], *in[3];
        Harness *h = encoder_start(&c, outs);
        const BackendOps *ops = h->backend->ops;
        Encoded after = {};
        VideoParams p;
        size_t sizes[VIDEO_MAX_PLANES];
        unsigned np;

        assert_int_equal(ops->get_params(h->stream, VIDEO_QUEUE_INPUT, &p), 0);
        np = media_layout_sizes(&p, true, sizes);
        for (unsigned i = 0; i < 3; i++) {
                AVFrame *pic = media_pattern(96, 64, 40 + i);

                in[i] = harness_buffer_new(VIDEO_QUEUE_INPUT, np, sizes, 2, i);
                media_write_raw(pic, &p, in[i]);
                av_frame_free(&pic);
                assert_int_equal(harness_queue(h, in[i], 1 + i, 0), 0);
        }
        assert_int_equal(ops->clear(h->stream, VIDEO_QUEUE_INPUT), 0);
        assert_true(harness_run_until(h, pred_clear_input, NULL));
        for (unsigned i = 0; i < 3; i++)
                assert_false(in[i]->queued);
        /* Packets of the frames before the clear may have come out; skip them. */
        for (HarnessBuffer *b; (b = harness_take_done(h));)
                if (b->vb.queue == VIDEO_QUEUE_OUTPUT)
                        assert_int_equal(harness_queue(h, b, 0, 0), 0);

        encode_frames(h, &c, 0, c.frames, outs, &after);
        assert_int_equal(after.stream.n, c.frames);
        assert_int_equal(after.flags[0], VIDEO_BUFFER_F_IFRAME);
        check_decodes(&c, &after, 0);
        encoder_stop(h, outs);
        for (unsigned i = 0; i < 3; i++)
                harness_buffer_free(in[i]);
        media_stream_free(&after.stream);
}

static void test_caps_and_controls(void **state) {
        const BackendOps *ops = &backend_ffmpeg_encoder_ops;
        Harness *h;
        const VideoCaps *caps;
        uint32_t values[32], v;
        bool h264 = false, vp8 = false;
        HarnessBuffer *small;
        size_t tiny = 64;

        assert_int_equal(harness_new(ops, 0, &h), 0);
        caps = ops->get_caps(h->backend);
        assert_int_equal(caps->role, VIDEO_ROLE_ENCODER);
        assert_int_equal(caps->n_formats[VIDEO_QUEUE_INPUT], 3);
        for (unsigned i = 0; i < caps->n_formats[VIDEO_QUEUE_OUTPUT]; i++) {
                uint32_t f = caps->formats[VIDEO_QUEUE_OUTPUT][i].format;

                printf("# encoder output format 0x%x\n", f);
                h264 = h264 || f == VIDEO_FORMAT_H264;
                vp8 = vp8 || f == VIDEO_FORMAT_VP8;
        }
        assert_true(h264 && vp8);
        assert_true(caps->controls & (1u << VIDEO_CONTROL_FORCE_KEYFRAME));
        assert_int_equal(ops->query_control(h->backend, VIDEO_CONTROL_PROFILE, VIDEO_FORMAT_H264, values,
                                            32),
                         3);
        assert_int_equal(values[0], 0x100);
        assert_int_equal(ops->query_control(h->backend, VIDEO_CONTROL_LEVEL, VIDEO_FORMAT_H264, values, 2),
                         2);
        assert_int_equal(ops->query_control(h->backend, VIDEO_CONTROL_PROFILE, VIDEO_FORMAT_VP8, values, 32),
                         4);
        assert_int_equal(ops->query_control(h->backend, VIDEO_CONTROL_PROFILE, VIDEO_FORMAT_MPEG2, values,
                                            32),
                         -EOPNOTSUPP);

        assert_int_equal(harness_stream_new(h, VIDEO_FORMAT_NV12), -EINVAL);
        assert_int_equal(harness_stream_new(h, VIDEO_FORMAT_VP8), 0);
        assert_int_equal(ops->set_control(h->stream, VIDEO_CONTROL_LEVEL, 0x100), -EOPNOTSUPP);
        assert_int_equal(ops->set_control(h->stream, VIDEO_CONTROL_PREPEND_SPSPPS_TO_IDR, 1), -EOPNOTSUPP);
        assert_int_equal(ops->set_control(h->stream, VIDEO_CONTROL_PROFILE, 0x100), -EINVAL);
        assert_int_equal(ops->set_control(h->stream, VIDEO_CONTROL_PROFILE, 0x301), 0);
        assert_int_equal(ops->get_control(h->stream, VIDEO_CONTROL_PROFILE, &v), 0);
        assert_int_equal(v, 0x301);
        assert_int_equal(ops->set_control(h->stream, VIDEO_CONTROL_BITRATE_MODE, 7), -EINVAL);
        assert_int_equal(ops->set_control(h->stream, VIDEO_CONTROL_BITRATE, 0), -EINVAL);
        assert_int_equal(ops->set_control(h->stream, VIDEO_CONTROL_BITRATE, 300000), 0);
        assert_int_equal(ops->get_control(h->stream, VIDEO_CONTROL_BITRATE, &v), 0);
        assert_int_equal(v, 300000);
        assert_int_equal(ops->set_control(h->stream, (VideoControl) 99, 1), -EOPNOTSUPP);

        VideoParams p;
        assert_int_equal(ops->get_params(h->stream, VIDEO_QUEUE_INPUT, &p), 0);
        p.format = VIDEO_FORMAT_H264;
        assert_int_equal(ops->set_params(h->stream, VIDEO_QUEUE_INPUT, &p), -EINVAL);
        p.format = VIDEO_FORMAT_NV12;
        p.frame_width = 100000;
        assert_int_equal(ops->set_params(h->stream, VIDEO_QUEUE_INPUT, &p), -EINVAL);
        small = harness_buffer_new(VIDEO_QUEUE_INPUT, 1, &tiny, 1, 0);
        assert_int_equal(harness_queue(h, small, 0, 0), -EINVAL);
        harness_free(h);
        harness_buffer_free(small);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_caps_and_controls),
                cmocka_unit_test(test_h264_nv12),
                cmocka_unit_test(test_vp8_yuv420_per_plane),
                cmocka_unit_test(test_vp9_yvu420),
                cmocka_unit_test(test_h264_bitrate),
                cmocka_unit_test(test_vp8_bitrate),
                cmocka_unit_test(test_h264_bitrate_change),
                cmocka_unit_test(test_vp8_bitrate_change),
                cmocka_unit_test(test_h264_force_keyframe),
                cmocka_unit_test(test_vp8_force_keyframe),
                cmocka_unit_test(test_h264_prepend_off),
                cmocka_unit_test(test_h264_new_size_after_drain),
                cmocka_unit_test(test_drain_without_frames),
                cmocka_unit_test(test_h264_clear_input_restarts),
        };

        av_log_set_level(AV_LOG_QUIET);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
