/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The "ffmpeg-decoder" backend driven through backend.h as the device model drives it: streams made
 * here with libavcodec's encoders go in as chunks of random sizes; every output frame is compared bit
 * for bit with a direct libavcodec decode of the same packets, and its timestamp with the one of the
 * input its access unit started in.
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
#include <systemd/sd-event.h>

#include "av-media.h"
#include "backend-harness.h"
#include "backend/ffmpeg/ffmpeg.h"
#include "common/macro.h"
#include "config.h"

#define N_INPUTS 4
#define MAX_OUTPUTS 6

typedef struct DecodeCase {
        uint32_t coded_format;
        enum AVCodecID codec_id;
        const char *encoder;
        struct {
                unsigned width, height, frames;
        } parts[2];
        uint32_t out_format;
        bool per_plane;        /* one buffer plane per layout plane (else all packed in one) */
        uint32_t extra_stride; /* bytes the guest adds to each stride */
        size_t max_chunk;      /* 0: one packet per input */
        unsigned seed;
        unsigned seek_after; /* clear(INPUT) once this many chunks were consumed, then start over */
        unsigned n_outputs;
        bool prequeue_outputs; /* output buffers of the default params queued before any input */
        int pix_fmt;           /* of the coded pictures; 0 = yuv420p; others go through libswscale */
} DecodeCase;

typedef struct Run {
        const DecodeCase *c;
        Harness *h;
        MediaStream stream;
        uint8_t *bytes;
        size_t size, *pkt_offsets;
        /* chunks */
        size_t n_chunks, *chunk_off, *chunk_len;
        uint64_t *chunk_ts;
        int64_t *pkt_pts;
        MediaFrames ref;

        HarnessBuffer *in[N_INPUTS];
        bool in_free[N_INPUTS];
        HarnessBuffer *out[MAX_OUTPUTS];
        VideoParams out_params;
        size_t next_chunk, consumed, next_frame;
        unsigned formats_handled, format_changes_seen;
        bool drain_sent, eos, seeked;
        unsigned frames_total, frames_before_seek;
} Run;

static void run_make_stream(Run *run) {
        const DecodeCase *c = run->c;

        for (unsigned i = 0; i < 2 && c->parts[i].frames > 0; i++)
                assert_int_equal(media_encode_fmt(c->encoder, c->pix_fmt, c->parts[i].width,
                                                  c->parts[i].height, c->parts[i].frames, i * 100,
                                                  &run->stream),
                                 0);
        assert_true(run->stream.n >= c->parts[0].frames);
        run->bytes = media_stream_bytes(&run->stream, &run->size, &run->pkt_offsets);

        /* Chunks: random sizes over the byte stream, or one per packet. */
        run->chunk_off = calloc(run->size + run->stream.n + 1, sizeof(size_t));
        run->chunk_len = calloc(run->size + run->stream.n + 1, sizeof(size_t));
        run->chunk_ts = calloc(run->size + run->stream.n + 1, sizeof(uint64_t));
        run->pkt_pts = calloc(run->stream.n, sizeof(int64_t));
        assert_non_null(run->chunk_off);
        assert_non_null(run->pkt_pts);
        unsigned seed = c->seed;
        for (size_t off = 0, i = 0; off < run->size; i++) {
                size_t len;

                if (c->max_chunk == 0)
                        len = run->stream.pkts[i].size;
                else {
                        seed = seed * 1103515245u + 12345u;
                        len = MIN(run->size - off, 1 + (seed >> 4) % c->max_chunk);
                }
                run->chunk_off[i] = off;
                run->chunk_len[i] = len;
                run->chunk_ts[i] = 1000000 + i * 3331;
                off += len;
                run->n_chunks = i + 1;
        }
        /* A packet's timestamp is the one of the chunk holding its first byte. */
        for (size_t k = 0, i = 0; k < run->stream.n; k++) {
                while (i + 1 < run->n_chunks && run->chunk_off[i + 1] <= run->pkt_offsets[k])
                        i++;
                run->pkt_pts[k] = (int64_t) run->chunk_ts[i];
        }
        assert_int_equal(media_decode(c->codec_id, &run->stream, 0, run->pkt_pts, &run->ref), 0);
        /* The backend gives out 8-bit 4:2:0 whatever the stream's format: the reference does the same. */
        assert_int_equal(media_frames_to_yuv420p(&run->ref), 0);
        unsigned want = c->parts[0].frames + c->parts[1].frames;
        assert_int_equal(run->ref.n, want);
}

static void run_free(Run *run) {
        harness_free(run->h);
        for (unsigned i = 0; i < N_INPUTS; i++)
                harness_buffer_free(run->in[i]);
        for (unsigned i = 0; i < MAX_OUTPUTS; i++)
                harness_buffer_free(run->out[i]);
        media_stream_free(&run->stream);
        media_frames_free(&run->ref);
        free(run->bytes);
        free(run->pkt_offsets);
        free(run->chunk_off);
        free(run->chunk_len);
        free(run->chunk_ts);
        free(run->pkt_pts);
}

static bool pred_news(Harness *h, void *userdata) {
        Run *run = userdata;

        return h->n_taken < h->n_done || h->format_changes != run->format_changes_seen ||
               h->drains_done > 0 || h->errors > 0;
}

static bool pred_clear_output(Harness *h, void *userdata) {
        return h->clears_done[VIDEO_QUEUE_OUTPUT] == *(unsigned *) userdata;
}

static bool pred_clear_input(Harness *h, void *userdata) {
        return h->clears_done[VIDEO_QUEUE_INPUT] == *(unsigned *) userdata;
}

/* Checks an output completion and queues the buffer again, as the driver does. */
static void run_check_output(Run *run, HarnessBuffer *b) {
        const VideoBufferResult *res = &b->result;

        if (res->flags & VIDEO_BUFFER_F_EOS) {
                assert_false(run->eos);
                assert_int_equal(res->flags, VIDEO_BUFFER_F_EOS);
                for (unsigned k = 0; k < VIDEO_MAX_PLANES; k++)
                        assert_int_equal(res->sizes[k], 0);
                run->eos = true;
                return;
        }
        assert_int_equal(res->flags, 0);
        assert_false(run->eos); /* EOS is the last output completion */
        assert_true(run->next_frame < run->ref.n);
        const AVFrame *ref = run->ref.f[run->next_frame];
        if (!media_output_matches(ref, &run->out_params, b, res))
                fail_msg("frame %zu differs from the reference decode", run->next_frame);
        assert_int_equal(res->timestamp, (uint64_t) ref->pts);
        run->next_frame++;
        run->frames_total++;
        assert_int_equal(harness_queue(run->h, b, 0, 0), 0);
}

/* The guest's reaction to format_changed (virtio-video-v3.md §7.3 step 10). */
static void run_reallocate(Run *run) {
        Harness *h = run->h;
        const BackendOps *ops = h->backend->ops;
        VideoParams p;
        unsigned clears = h->clears_done[VIDEO_QUEUE_OUTPUT] + 1;
        size_t sizes[VIDEO_MAX_PLANES];
        unsigned n;

        assert_int_equal(ops->get_params(h->stream, VIDEO_QUEUE_OUTPUT, &p), 0);
        if (run->out[0]) {
                /* No frame of the new size may land in the old buffers: they all come back cancelled. */
                harness_settle(h);
                for (HarnessBuffer *b; (b = harness_take_done(h));) {
                        if (b->vb.queue == VIDEO_QUEUE_INPUT) {
                                for (unsigned i = 0; i < N_INPUTS; i++)
                                        if (run->in[i] == b)
                                                run->in_free[i] = true;
                                continue;
                        }
                        if (run->formats_handled == 0)
                                fail_msg("an output queued before the headers completed before the clear");
                        /* Frames of the old size, before the change. The buffer goes back in as a driver
                         * may do before it stops the capture queue: no frame of the new size may land in
                         * it, so the clear below must give it back cancelled. */
                        run_check_output(run, b);
                }
                /* One more buffer of the old geometry, queued after the event as a driver may: taken
                 * even when it is too small for the new geometry, never filled, cancelled by the clear. */
                size_t old_sizes[VIDEO_MAX_PLANES];
                unsigned n_old = media_layout_sizes(&run->out_params, !run->c->per_plane, old_sizes);
                HarnessBuffer *late = harness_buffer_new(VIDEO_QUEUE_OUTPUT, n_old, old_sizes, 2, 99);

                assert_int_equal(harness_queue(h, late, 0, 0), 0);
                harness_settle(h);
                assert_true(late->queued);
                assert_int_equal(ops->clear(h->stream, VIDEO_QUEUE_OUTPUT), 0);
                assert_true(harness_run_until(h, pred_clear_output, &clears));
                assert_false(late->queued);
                assert_int_equal(late->result.flags, VIDEO_BUFFER_F_ERR);
                for (HarnessBuffer *b; (b = harness_take_done(h));) {
                        if (b->vb.queue == VIDEO_QUEUE_INPUT) {
                                for (unsigned i = 0; i < N_INPUTS; i++)
                                        if (run->in[i] == b)
                                                run->in_free[i] = true;
                                continue;
                        }
                        assert_int_equal(b->result.flags, VIDEO_BUFFER_F_ERR);
                }
                harness_buffer_free(late); /* taken from the completions above */
                for (unsigned i = 0; i < run->c->n_outputs; i++) {
                        assert_false(run->out[i]->queued);
                        harness_buffer_free(run->out[i]);
                        run->out[i] = NULL;
                }
        }

        /* The new geometry, as the guest reads it. */
        const DecodeCase *c = run->c;
        unsigned part = run->formats_handled % 2;
        if (c->parts[1].frames == 0)
                part = 0;
        assert_int_equal(p.frame_width, c->parts[part].width);
        assert_int_equal(p.frame_height, c->parts[part].height);
        assert_int_equal(p.crop.width, c->parts[part].width);
        assert_int_equal(p.crop.height, c->parts[part].height);
        assert_true(p.min_buffers >= 1 && p.min_buffers <= c->n_outputs);

        p.format = c->out_format;
        for (unsigned i = 0; i < VIDEO_MAX_PLANES; i++)
                p.planes[i].stride += c->extra_stride;
        assert_int_equal(ops->set_params(h->stream, VIDEO_QUEUE_OUTPUT, &p), 0);
        assert_int_equal(ops->get_params(h->stream, VIDEO_QUEUE_OUTPUT, &run->out_params), 0);
        assert_int_equal(run->out_params.format, c->out_format);
        assert_int_equal(run->out_params.num_planes, c->out_format == VIDEO_FORMAT_NV12 ? 2 : 3);
        assert_true(run->out_params.planes[0].stride >= p.frame_width + c->extra_stride);

        n = media_layout_sizes(&run->out_params, !c->per_plane, sizes);
        for (unsigned i = 0; i < c->n_outputs; i++) {
                run->out[i] = harness_buffer_new(VIDEO_QUEUE_OUTPUT, n, sizes, 3 + i % 3, 77 + i);
                assert_non_null(run->out[i]);
                assert_int_equal(harness_queue(h, run->out[i], 0, 0), 0);
        }
        run->formats_handled++;
}

static void run_feed(Run *run) {
        const BackendOps *ops = run->h->backend->ops;

        for (unsigned i = 0; i < N_INPUTS; i++) {
                size_t k = run->next_chunk;

                if (!run->in_free[i] || k >= run->n_chunks)
                        continue;
                if (run->c->seek_after > 0 && !run->seeked && k >= run->c->seek_after)
                        return;
                harness_buffer_write(run->in[i], 0, run->bytes + run->chunk_off[k], run->chunk_len[k]);
                assert_int_equal(harness_queue(run->h, run->in[i], run->chunk_ts[k],
                                               (uint32_t) run->chunk_len[k]),
                                 0);
                run->in_free[i] = false;
                run->next_chunk++;
        }
        if (run->next_chunk == run->n_chunks && !run->drain_sent) {
                assert_int_equal(ops->drain(run->h->stream), 0);
                assert_int_equal(ops->drain(run->h->stream), -EBUSY);
                run->drain_sent = true;
        }
}

/* A seek: the guest stops the bitstream queue (QUEUE_CLEAR(INPUT)) and restarts from the beginning. */
static void run_seek(Run *run) {
        Harness *h = run->h;
        unsigned clears = h->clears_done[VIDEO_QUEUE_INPUT] + 1;

        assert_int_equal(h->backend->ops->clear(h->stream, VIDEO_QUEUE_INPUT), 0);
        assert_true(harness_run_until(h, pred_clear_input, &clears));
        for (HarnessBuffer *b; (b = harness_take_done(h));) {
                if (b->vb.queue == VIDEO_QUEUE_OUTPUT) {
                        run_check_output(run, b);
                        continue;
                }
                for (unsigned i = 0; i < N_INPUTS; i++)
                        if (run->in[i] == b)
                                run->in_free[i] = true;
        }
        for (unsigned i = 0; i < N_INPUTS; i++)
                assert_true(run->in_free[i]);
        run->frames_before_seek = run->frames_total;
        run->seeked = true;
        run->next_chunk = 0;
        run->next_frame = 0;
}

static void run_decode(const DecodeCase *c) {
        Run run = { .c = c };
        size_t in_size = c->max_chunk > 0 ? c->max_chunk : 0;

        run_make_stream(&run);
        for (size_t i = 0; i < run.n_chunks; i++)
                in_size = MAX(in_size, run.chunk_len[i]);
        assert_int_equal(harness_new(&backend_ffmpeg_decoder_ops, 2, &run.h), 0);
        assert_int_equal(harness_stream_new(run.h, c->coded_format), 0);
        for (unsigned i = 0; i < N_INPUTS; i++) {
                run.in[i] = harness_buffer_new(VIDEO_QUEUE_INPUT, 1, &in_size, 1 + i, 5 + i);
                run.in_free[i] = true;
        }
        if (c->prequeue_outputs) {
                /* Before the stream's headers: these have the default geometry, not the stream's, so
                 * they must come back cancelled by the clear that follows the first format_changed. */
                size_t sizes[VIDEO_MAX_PLANES];
                unsigned n;

                assert_int_equal(backend_ffmpeg_decoder_ops.get_params(run.h->stream, VIDEO_QUEUE_OUTPUT,
                                                                       &run.out_params),
                                 0);
                n = media_layout_sizes(&run.out_params, true, sizes);
                for (unsigned i = 0; i < c->n_outputs; i++) {
                        run.out[i] = harness_buffer_new(VIDEO_QUEUE_OUTPUT, n, sizes, 2, 50 + i);
                        assert_int_equal(harness_queue(run.h, run.out[i], 0, 0), 0);
                }
        }

        while (!(run.eos && run.h->drains_done == 1)) {
                run_feed(&run);
                assert_true(harness_run_until(run.h, pred_news, &run));
                assert_int_equal(run.h->errors, 0);
                assert_int_equal(run.h->reentrant_calls, 0);
                if (run.h->format_changes != run.format_changes_seen) {
                        run.format_changes_seen = run.h->format_changes;
                        run_reallocate(&run);
                }
                for (HarnessBuffer *b; (b = harness_take_done(run.h));) {
                        if (b->vb.queue == VIDEO_QUEUE_OUTPUT) {
                                run_check_output(&run, b);
                                continue;
                        }
                        assert_int_equal(b->result.flags, 0);
                        for (unsigned i = 0; i < N_INPUTS; i++)
                                if (run.in[i] == b)
                                        run.in_free[i] = true;
                        run.consumed++;
                }
                if (c->seek_after > 0 && !run.seeked && run.next_chunk >= c->seek_after) {
                        bool all_back = true;

                        for (unsigned i = 0; i < N_INPUTS; i++)
                                all_back = all_back && run.in_free[i];
                        if (all_back)
                                run_seek(&run);
                }
                if (run.h->drains_done > 0)
                        assert_true(run.eos); /* drain_done after the EOS buffer */
        }
        assert_int_equal(run.h->drains_done, 1);
        assert_int_equal(run.next_frame, run.ref.n);
        assert_int_equal(run.h->format_changes, c->parts[1].frames > 0 ? 2 : 1);
        if (c->seek_after > 0) {
                assert_true(run.seeked);
                assert_int_equal(run.frames_total, run.frames_before_seek + run.ref.n);
        }
        harness_stream_free(run.h);
        harness_settle(run.h);
        assert_int_equal(run.h->callbacks_after_free, 0);
        run_free(&run);
}

static void test_h264_random_chunks_nv12(void **state) {
        const DecodeCase c = {
                .coded_format = VIDEO_FORMAT_H264,
                .codec_id = AV_CODEC_ID_H264,
                .encoder = "libx264",
                .parts = { { 160, 96, 30 } },
                .out_format = VIDEO_FORMAT_NV12,
                .extra_stride = 32,
                .max_chunk = 700,
                .seed = 1,
                .n_outputs = 4,
        };
        run_decode(&c);
}

static void test_h264_tiny_chunks_yuv420_per_plane(void **state) {
        const DecodeCase c = {
                .coded_format = VIDEO_FORMAT_H264,
                .codec_id = AV_CODEC_ID_H264,
                .encoder = "libx264",
                .parts = { { 96, 64, 12 } },
                .out_format = VIDEO_FORMAT_YUV420,
                .per_plane = true,
                .max_chunk = 37,
                .seed = 2,
                .n_outputs = 3,
        };
        run_decode(&c);
}

/* Start codes straddle inputs all the time. */
static void test_h264_three_byte_chunks(void **state) {
        const DecodeCase c = {
                .coded_format = VIDEO_FORMAT_H264,
                .codec_id = AV_CODEC_ID_H264,
                .encoder = "libx264",
                .parts = { { 96, 64, 6 } },
                .out_format = VIDEO_FORMAT_NV12,
                .max_chunk = 3,
                .seed = 5,
                .n_outputs = 2,
        };
        run_decode(&c);
}

static void test_h264_resolution_change(void **state) {
        const DecodeCase c = {
                .coded_format = VIDEO_FORMAT_H264,
                .codec_id = AV_CODEC_ID_H264,
                .encoder = "libx264",
                .parts = { { 160, 96, 14 }, { 96, 64, 14 } },
                .out_format = VIDEO_FORMAT_NV12,
                .max_chunk = 1500,
                .seed = 3,
                .n_outputs = 4,
        };
        run_decode(&c);
}

/* Growing: buffers of the small size, re-queued after the change, do not fit the new params; they
 * are taken anyway and held until the clear. */
static void test_h264_resolution_grows(void **state) {
        const DecodeCase c = {
                .coded_format = VIDEO_FORMAT_H264,
                .codec_id = AV_CODEC_ID_H264,
                .encoder = "libx264",
                .parts = { { 96, 64, 10 }, { 160, 96, 10 } },
                .out_format = VIDEO_FORMAT_YUV420,
                .max_chunk = 1000,
                .seed = 9,
                .n_outputs = 3,
        };
        run_decode(&c);
}

/* Output buffers queued before the first format_changed are held until the clear, never filled. */
static void test_h264_outputs_before_headers(void **state) {
        const DecodeCase c = {
                .coded_format = VIDEO_FORMAT_H264,
                .codec_id = AV_CODEC_ID_H264,
                .encoder = "libx264",
                .parts = { { 160, 96, 10 } },
                .out_format = VIDEO_FORMAT_NV12,
                .max_chunk = 600,
                .seed = 10,
                .n_outputs = 3,
                .prequeue_outputs = true,
        };
        run_decode(&c);
}

static void test_h264_seek(void **state) {
        const DecodeCase c = {
                .coded_format = VIDEO_FORMAT_H264,
                .codec_id = AV_CODEC_ID_H264,
                .encoder = "libx264",
                .parts = { { 160, 96, 20 } },
                .out_format = VIDEO_FORMAT_YVU420,
                .max_chunk = 900,
                .seed = 4,
                .seek_after = 6,
                .n_outputs = 4,
        };
        run_decode(&c);
}

static void test_vp8_yuv420(void **state) {
        const DecodeCase c = {
                .coded_format = VIDEO_FORMAT_VP8,
                .codec_id = AV_CODEC_ID_VP8,
                .encoder = "libvpx",
                .parts = { { 160, 96, 30 } },
                .out_format = VIDEO_FORMAT_YUV420,
                .extra_stride = 16,
                .n_outputs = 3,
        };
        run_decode(&c);
}

static void test_vp9_resolution_change_yvu420(void **state) {
        const DecodeCase c = {
                .coded_format = VIDEO_FORMAT_VP9,
                .codec_id = AV_CODEC_ID_VP9,
                .encoder = "libvpx-vp9",
                .parts = { { 160, 96, 10 }, { 96, 64, 10 } },
                .out_format = VIDEO_FORMAT_YVU420,
                .per_plane = true,
                .n_outputs = 4,
        };
        run_decode(&c);
}

/* The other codecs the backend advertises, through their parsers, with reordering. */
static void test_hevc_random_chunks(void **state) {
        const DecodeCase c = {
                .coded_format = VIDEO_FORMAT_HEVC,
                .codec_id = AV_CODEC_ID_HEVC,
                .encoder = "libx265",
                .parts = { { 96, 64, 10 } },
                .out_format = VIDEO_FORMAT_NV12,
                .max_chunk = 300,
                .seed = 6,
                .n_outputs = 3,
        };
        run_decode(&c);
}

static void test_mpeg2_random_chunks(void **state) {
        const DecodeCase c = {
                .coded_format = VIDEO_FORMAT_MPEG2,
                .codec_id = AV_CODEC_ID_MPEG2VIDEO,
                .encoder = "mpeg2video",
                .parts = { { 160, 96, 16 } },
                .out_format = VIDEO_FORMAT_YUV420,
                .max_chunk = 800,
                .seed = 7,
                .n_outputs = 3,
        };
        run_decode(&c);
}

static void test_mpeg4_random_chunks(void **state) {
        const DecodeCase c = {
                .coded_format = VIDEO_FORMAT_MPEG4,
                .codec_id = AV_CODEC_ID_MPEG4,
                .encoder = "mpeg4",
                .parts = { { 160, 96, 16 } },
                .out_format = VIDEO_FORMAT_NV12,
                .per_plane = true,
                .max_chunk = 500,
                .seed = 8,
                .n_outputs = 3,
        };
        run_decode(&c);
}

static bool pred_all_done(Harness *h, void *userdata);

static bool pred_clear_in_done(Harness *h, void *userdata) {
        return h->clears_done[VIDEO_QUEUE_INPUT] > 0;
}

static bool pred_error(Harness *h, void *userdata) {
        return h->errors > 0;
}

/* A picture wider than the backend can describe (8192): a fatal stream error (the error callback), after
 * which every buffer still comes back. */
static void test_oversized_picture_is_fatal(void **state) {
        const AVCodec *codec = avcodec_find_encoder_by_name("libx264");
        AVCodecContext *ctx = avcodec_alloc_context3(codec);
        AVPacket *pkt = av_packet_alloc();
        AVFrame *f = av_frame_alloc();
        uint8_t coded[65536];
        size_t coded_size = 0, size = sizeof(coded), out_size = 640 * 480 * 3 / 2;
        const BackendOps *ops = &backend_ffmpeg_decoder_ops;
        HarnessBuffer *in, *out;
        Harness *h;

        ctx->width = 8208;
        ctx->height = 16;
        ctx->pix_fmt = AV_PIX_FMT_YUV420P;
        ctx->time_base = (AVRational){ 1, 30 };
        assert_int_equal(avcodec_open2(ctx, codec, NULL), 0);
        f->format = AV_PIX_FMT_YUV420P;
        f->width = 8208;
        f->height = 16;
        assert_int_equal(av_frame_get_buffer(f, 0), 0);
        for (int p = 0; p < 3; p++)
                memset(f->data[p], 100 + 20 * p, (size_t) f->linesize[p] * (p ? 8 : 16));
        for (int i = 0; i < 3; i++) {
                f->pts = i;
                assert_int_equal(avcodec_send_frame(ctx, i < 2 ? f : NULL), 0);
                while (avcodec_receive_packet(ctx, pkt) == 0) {
                        assert_true(coded_size + (size_t) pkt->size <= sizeof(coded));
                        memcpy(coded + coded_size, pkt->data, (size_t) pkt->size);
                        coded_size += (size_t) pkt->size;
                        av_packet_unref(pkt);
                }
        }

        assert_int_equal(harness_new(ops, 1, &h), 0);
        assert_int_equal(harness_stream_new(h, VIDEO_FORMAT_H264), 0);
        in = harness_buffer_new(VIDEO_QUEUE_INPUT, 1, &size, 3, 1);
        out = harness_buffer_new(VIDEO_QUEUE_OUTPUT, 1, &out_size, 2, 2);
        harness_buffer_write(in, 0, coded, coded_size);
        /* An output buffer held when the stream breaks comes back too, without a clear. */
        assert_int_equal(harness_queue(h, out, 0, 0), 0);
        assert_int_equal(harness_queue(h, in, 7, (uint32_t) coded_size), 0);
        assert_int_equal(ops->drain(h->stream), 0);
        assert_true(harness_run_until(h, pred_error, NULL));
        assert_int_equal(h->last_error, -EINVAL);
        assert_int_equal(h->format_changes, 0);
        size_t want = 2;
        assert_true(harness_run_until(h, pred_all_done, &want));
        assert_false(in->queued);
        assert_int_equal(out->result.flags, VIDEO_BUFFER_F_ERR);
        /* Whatever is queued later comes back cancelled; a clear still completes. */
        assert_int_equal(harness_queue(h, out, 0, 0), 0);
        want = 3;
        assert_true(harness_run_until(h, pred_all_done, &want));
        assert_int_equal(out->result.flags, VIDEO_BUFFER_F_ERR);
        assert_int_equal(ops->clear(h->stream, VIDEO_QUEUE_INPUT), 0);
        assert_true(harness_run_until(h, pred_clear_in_done, NULL));
        assert_int_equal(h->errors, 1);

        harness_free(h);
        harness_buffer_free(in);
        harness_buffer_free(out);
        av_frame_free(&f);
        av_packet_free(&pkt);
        avcodec_free_context(&ctx);
}

#if HAVE_LIBSWSCALE
/* Streams whose pictures are not 8-bit 4:2:0 come out converted to it. */
static void test_h264_high422_converted(void **state) {
        const DecodeCase c = {
                .coded_format = VIDEO_FORMAT_H264,
                .codec_id = AV_CODEC_ID_H264,
                .encoder = "libx264",
                .pix_fmt = AV_PIX_FMT_YUV422P,
                .parts = { { 160, 96, 10 } },
                .out_format = VIDEO_FORMAT_YUV420,
                .max_chunk = 700,
                .seed = 11,
                .n_outputs = 3,
        };
        run_decode(&c);
}

static void test_h264_high10_converted(void **state) {
        const DecodeCase c = {
                .coded_format = VIDEO_FORMAT_H264,
                .codec_id = AV_CODEC_ID_H264,
                .encoder = "libx264",
                .pix_fmt = AV_PIX_FMT_YUV420P10LE,
                .parts = { { 96, 64, 10 } },
                .out_format = VIDEO_FORMAT_NV12,
                .max_chunk = 500,
                .seed = 12,
                .n_outputs = 3,
        };
        run_decode(&c);
}

static void test_vp9_profile1_converted(void **state) {
        const DecodeCase c = {
                .coded_format = VIDEO_FORMAT_VP9,
                .codec_id = AV_CODEC_ID_VP9,
                .encoder = "libvpx-vp9",
                .pix_fmt = AV_PIX_FMT_YUV444P,
                .parts = { { 96, 64, 8 } },
                .out_format = VIDEO_FORMAT_YVU420,
                .n_outputs = 3,
        };
        run_decode(&c);
}
#endif

static bool pred_drained(Harness *h, void *userdata) {
        return h->drains_done > 0;
}

/* §7.4: a drain with no output buffer queued waits for one to carry the EOS. */
static void test_drain_waits_for_output_buffer(void **state) {
        Harness *h;
        HarnessBuffer *out;
        size_t size = 640 * 480 * 3 / 2;
        const BackendOps *ops = &backend_ffmpeg_decoder_ops;

        assert_int_equal(harness_new(ops, 1, &h), 0);
        assert_int_equal(harness_stream_new(h, VIDEO_FORMAT_H264), 0);
        assert_int_equal(ops->drain(h->stream), 0);
        harness_settle(h);
        assert_int_equal(h->drains_done, 0);

        out = harness_buffer_new(VIDEO_QUEUE_OUTPUT, 1, &size, 2, 9);
        assert_int_equal(harness_queue(h, out, 0, 0), 0);
        assert_true(harness_run_until(h, pred_drained, NULL));
        assert_int_equal(h->n_done, 1);
        assert_ptr_equal(h->done[0], out);
        assert_int_equal(out->result.flags, VIDEO_BUFFER_F_EOS);
        assert_int_equal(out->result.sizes[0], 0);
        assert_int_equal(h->format_changes, 0);
        harness_free(h);
        harness_buffer_free(out);
}

static bool pred_all_done(Harness *h, void *userdata) {
        return h->n_done >= *(size_t *) userdata;
}

typedef struct JunkWait {
        size_t done;
        unsigned changes;
} JunkWait;

static bool pred_junk_news(Harness *h, void *userdata) {
        const JunkWait *w = userdata;

        return h->n_done > w->done || h->format_changes > w->changes || h->drains_done > 0 || h->errors > 0;
}

/* Garbage in, for every codec: buffers come back (VP8's decoder rejects it: F_ERR), nothing crashes,
 * and the stream still drains (or reports a stream error, never hangs). */
static void test_corrupt_input(void **state) {
        const uint32_t formats[] = { VIDEO_FORMAT_VP8, VIDEO_FORMAT_H264,  VIDEO_FORMAT_HEVC,
                                     VIDEO_FORMAT_VP9, VIDEO_FORMAT_MPEG2, VIDEO_FORMAT_MPEG4 };

        for (size_t f = 0; f < ELEMENTSOF(formats); f++) {
                Harness *h;
                HarnessBuffer *in[4], *out;
                size_t size = 3000, out_size = 640 * 480 * 3 / 2, want = 4;
                unsigned seed = 42, errs = 0;
                uint8_t junk[3000];
                const BackendOps *ops = &backend_ffmpeg_decoder_ops;

                assert_int_equal(harness_new(ops, 1, &h), 0);
                assert_int_equal(harness_stream_new(h, formats[f]), 0);
                for (unsigned i = 0; i < 4; i++) {
                        for (size_t k = 0; k < sizeof(junk); k++) {
                                seed = seed * 1103515245u + 12345u;
                                junk[k] = (uint8_t) (seed >> 16);
                        }
                        if (formats[f] == VIDEO_FORMAT_H264 && i == 1)
                                memcpy(junk, "\0\0\0\1\x67\x42\0\x1e\xff\xff", 10); /* a broken SPS */
                        in[i] = harness_buffer_new(VIDEO_QUEUE_INPUT, 1, &size, 3, i);
                        harness_buffer_write(in[i], 0, junk, sizeof(junk));
                        assert_int_equal(harness_queue(h, in[i], i, sizeof(junk)), 0);
                }
                assert_true(harness_run_until(h, pred_all_done, &want));
                for (unsigned i = 0; i < 4; i++)
                        errs += !!(in[i]->result.flags & VIDEO_BUFFER_F_ERR);
                if (formats[f] == VIDEO_FORMAT_VP8)
                        assert_int_equal(errs, 4);

                /* Junk may still yield pictures of some size (MPEG-2, MPEG-4 conceal a lot): react as
                 * a guest would (clear and re-queue on a change, re-queue after a picture) until the EOS
                 * or a stream error. */
                out = harness_buffer_new(VIDEO_QUEUE_OUTPUT, 1, &out_size, 1, 0);
                assert_int_equal(ops->drain(h->stream), 0);
                for (unsigned round = 0, handled = 0; h->drains_done == 0 && h->errors == 0; round++) {
                        JunkWait wait = { .done = h->n_done, .changes = h->format_changes };

                        assert_true(round < 64);
                        if (h->format_changes > handled) {
                                unsigned clears = h->clears_done[VIDEO_QUEUE_OUTPUT] + 1;

                                handled = h->format_changes;
                                assert_int_equal(ops->clear(h->stream, VIDEO_QUEUE_OUTPUT), 0);
                                assert_true(harness_run_until(h, pred_clear_output, &clears));
                                wait.done = h->n_done;
                        }
                        if (!out->queued)
                                assert_int_equal(harness_queue(h, out, 0, 0), 0);
                        assert_true(harness_run_until(h, pred_junk_news, &wait));
                }
                if (h->errors == 0)
                        assert_int_equal(out->result.flags, VIDEO_BUFFER_F_EOS);
                printf("# junk into 0x%x: %u/4 inputs F_ERR, %u format changes, %u stream errors\n",
                       formats[f], errs, h->format_changes, h->errors);
                harness_free(h);
                for (unsigned i = 0; i < 4; i++)
                        harness_buffer_free(in[i]);
                harness_buffer_free(out);
        }
}

static void test_caps_and_params(void **state) {
        Harness *h;
        const BackendOps *ops = &backend_ffmpeg_decoder_ops;
        const VideoCaps *caps;
        VideoParams p;
        uint32_t values[32];
        bool have_h264 = false;
        HarnessBuffer *small;
        size_t tiny = 100;

        assert_int_equal(harness_new(ops, 0, &h), 0);
        caps = ops->get_caps(h->backend);
        assert_int_equal(caps->role, VIDEO_ROLE_DECODER);
        assert_true(caps->n_formats[VIDEO_QUEUE_INPUT] >= 1);
        assert_int_equal(caps->n_formats[VIDEO_QUEUE_OUTPUT], 3);
        for (unsigned i = 0; i < caps->n_formats[VIDEO_QUEUE_INPUT]; i++) {
                const VideoFormatDesc *d = &caps->formats[VIDEO_QUEUE_INPUT][i];

                assert_true(video_format_is_coded(d->format));
                assert_int_equal(d->mask, 7);
                assert_int_equal(d->n_frames, 1);
                have_h264 = have_h264 || d->format == VIDEO_FORMAT_H264;
                printf("# decoder input format 0x%x\n", d->format);
        }
        assert_true(have_h264);
        for (unsigned i = 0; i < 3; i++)
                assert_true(video_format_is_raw(caps->formats[VIDEO_QUEUE_OUTPUT][i].format));
        /* Baseline, Main, Extended, High; with libswscale also High 10, 4:2:2 and 4:4:4. */
        assert_int_equal(ops->query_control(h->backend, VIDEO_CONTROL_PROFILE, VIDEO_FORMAT_H264, values,
                                            32),
                         HAVE_LIBSWSCALE ? 7 : 4);
        assert_int_equal(ops->query_control(h->backend, VIDEO_CONTROL_LEVEL, VIDEO_FORMAT_H264, values, 32),
                         15);
        assert_int_equal(ops->query_control(h->backend, VIDEO_CONTROL_LEVEL, VIDEO_FORMAT_VP8, values, 32),
                         -EOPNOTSUPP);
        assert_int_equal(ops->query_control(h->backend, VIDEO_CONTROL_PROFILE, VIDEO_FORMAT_FWHT, values,
                                            32),
                         -EOPNOTSUPP);

        assert_int_equal(harness_stream_new(h, VIDEO_FORMAT_FWHT), -EINVAL);
        assert_int_equal(harness_stream_new(h, 0x42), -EINVAL);
        assert_int_equal(harness_stream_new(h, VIDEO_FORMAT_H264), 0);

        assert_int_equal(ops->get_params(h->stream, VIDEO_QUEUE_INPUT, &p), 0);
        assert_int_equal(p.format, VIDEO_FORMAT_H264);
        assert_int_equal(p.num_planes, 1);
        assert_true(p.planes[0].plane_size > 0);
        p.format = VIDEO_FORMAT_VP8;
        assert_int_equal(ops->set_params(h->stream, VIDEO_QUEUE_INPUT, &p), -EINVAL);

        assert_int_equal(ops->get_params(h->stream, VIDEO_QUEUE_OUTPUT, &p), 0);
        assert_int_equal(p.format, VIDEO_FORMAT_NV12);
        p.format = VIDEO_FORMAT_H264;
        assert_int_equal(ops->set_params(h->stream, VIDEO_QUEUE_OUTPUT, &p), -EINVAL);
        p.format = VIDEO_FORMAT_YUV420;
        p.planes[0].stride = 1; /* too small: raised */
        assert_int_equal(ops->set_params(h->stream, VIDEO_QUEUE_OUTPUT, &p), 0);
        assert_int_equal(ops->get_params(h->stream, VIDEO_QUEUE_OUTPUT, &p), 0);
        assert_int_equal(p.num_planes, 3);
        assert_true(p.planes[0].stride >= p.frame_width);
        assert_true(p.planes[1].plane_size >= p.planes[1].stride * ((p.frame_height + 1) / 2));

        small = harness_buffer_new(VIDEO_QUEUE_OUTPUT, 1, &tiny, 1, 0);
        assert_int_equal(harness_queue(h, small, 0, 0), -EINVAL);
        assert_int_equal(ops->get_control(h->stream, VIDEO_CONTROL_BITRATE, values), -EOPNOTSUPP);
        assert_int_equal(ops->set_control(h->stream, VIDEO_CONTROL_BITRATE, 1), -EOPNOTSUPP);
        harness_free(h);
        harness_buffer_free(small);
}

/* stream_free with work in flight: no callback afterwards, nothing leaks. */
static void test_free_with_work_in_flight(void **state) {
        Harness *h;
        MediaStream s = {};
        HarnessBuffer *in[8];
        size_t size = 4096;

        assert_int_equal(media_encode("libx264", 96, 64, 8, 0, &s), 0);
        assert_int_equal(harness_new(&backend_ffmpeg_decoder_ops, 1, &h), 0);
        assert_int_equal(harness_stream_new(h, VIDEO_FORMAT_H264), 0);
        for (unsigned i = 0; i < 8; i++) {
                in[i] = harness_buffer_new(VIDEO_QUEUE_INPUT, 1, &size, 2, i);
                harness_buffer_write(in[i], 0, s.pkts[i].data, s.pkts[i].size);
                assert_int_equal(harness_queue(h, in[i], i, (uint32_t) s.pkts[i].size), 0);
        }
        assert_int_equal(backend_ffmpeg_decoder_ops.drain(h->stream), 0);
        (void) sd_event_run(h->event, 0);
        harness_stream_free(h);
        harness_settle(h);
        assert_int_equal(h->callbacks_after_free, 0);
        harness_free(h);
        for (unsigned i = 0; i < 8; i++)
                harness_buffer_free(in[i]);
        media_stream_free(&s);
}

/* libx265 (which makes the HEVC test stream) leaks a few internal buffers per encoder; LeakSanitizer
 * reads this hook in sanitizer builds and ignores it elsewhere. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void) {
        return "leak:libx265.so\n";
}

static bool pred_stream_gone(Harness *h, void *userdata) {
        return !h->stream;
}

/* The device model may destroy the stream from inside a callback. */
static void test_free_from_callback(void **state) {
        Harness *h;
        HarnessBuffer *in[4];
        size_t size = 1024;
        uint8_t junk[512];

        memset(junk, 0x42, sizeof(junk));
        assert_int_equal(harness_new(&backend_ffmpeg_decoder_ops, 1, &h), 0);
        assert_int_equal(harness_stream_new(h, VIDEO_FORMAT_H264), 0);
        for (unsigned i = 0; i < 4; i++) {
                in[i] = harness_buffer_new(VIDEO_QUEUE_INPUT, 1, &size, 2, i);
                harness_buffer_write(in[i], 0, junk, sizeof(junk));
                assert_int_equal(harness_queue(h, in[i], i, sizeof(junk)), 0);
        }
        h->free_stream_in_callback = true;
        assert_true(harness_run_until(h, pred_stream_gone, NULL));
        assert_int_equal(h->n_done, 1);
        harness_settle(h);
        assert_int_equal(h->n_done, 1);
        assert_int_equal(h->callbacks_after_free, 0);
        harness_free(h);
        for (unsigned i = 0; i < 4; i++)
                harness_buffer_free(in[i]);
}

int main(void) {
        av_log_set_level(AV_LOG_QUIET);
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_caps_and_params),
                cmocka_unit_test(test_h264_random_chunks_nv12),
                cmocka_unit_test(test_h264_tiny_chunks_yuv420_per_plane),
                cmocka_unit_test(test_h264_three_byte_chunks),
                cmocka_unit_test(test_h264_resolution_change),
                cmocka_unit_test(test_h264_resolution_grows),
                cmocka_unit_test(test_h264_outputs_before_headers),
                cmocka_unit_test(test_h264_seek),
                cmocka_unit_test(test_vp8_yuv420),
                cmocka_unit_test(test_vp9_resolution_change_yvu420),
                cmocka_unit_test(test_hevc_random_chunks),
                cmocka_unit_test(test_mpeg2_random_chunks),
                cmocka_unit_test(test_mpeg4_random_chunks),
#if HAVE_LIBSWSCALE
                cmocka_unit_test(test_h264_high422_converted),
                cmocka_unit_test(test_h264_high10_converted),
                cmocka_unit_test(test_vp9_profile1_converted),
#endif
                cmocka_unit_test(test_drain_waits_for_output_buffer),
                cmocka_unit_test(test_corrupt_input),
                cmocka_unit_test(test_oversized_picture_is_fatal),
                cmocka_unit_test(test_free_with_work_in_flight),
                cmocka_unit_test(test_free_from_callback),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
