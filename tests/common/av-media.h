/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Test media made with libavcodec directly, independent of the backend under test: synthetic pictures
 * (a moving pattern), coded streams of them, reference decodes, and the raw layouts in guest buffers
 * written and checked pixel by pixel with code of their own.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libavcodec/avcodec.h>

#include "backend-harness.h"

typedef struct MediaPacket {
        uint8_t *data;
        size_t size;
        bool key;
} MediaPacket;

typedef struct MediaStream {
        MediaPacket *pkts;
        size_t n;
} MediaStream;

typedef struct MediaFrames {
        AVFrame **f;
        size_t n;
} MediaFrames;

/* A yuv420p picture of the pattern at time t (caller frees with av_frame_free). */
AVFrame *media_pattern(unsigned width, unsigned height, unsigned t);
/* The same with pseudo-random luma noise of the given amplitude (< 40), which no encoder can squeeze:
 * the coded size then follows the rate control. */
AVFrame *media_pattern_noisy(unsigned width, unsigned height, unsigned t, unsigned noise);
/* Appends the packets of n frames (pattern times first_t...) coded by `encoder` ("libx264", "libx265",
 * "libvpx", "libvpx-vp9", "mpeg2video", "mpeg4") to s, in decode order. */
int media_encode(
        const char *encoder, unsigned width, unsigned height, unsigned n, unsigned first_t, MediaStream *s);
/* The same, with the encoder taking pix_fmt (yuv420p, yuv422p, yuv420p10le...; needs libswscale for
 * anything but yuv420p). */
int media_encode_fmt(const char *encoder,
                     int pix_fmt,
                     unsigned width,
                     unsigned height,
                     unsigned n,
                     unsigned first_t,
                     MediaStream *s);
void media_stream_free(MediaStream *s);
/* Concatenation of every packet, and the offset where each starts. */
uint8_t *media_stream_bytes(const MediaStream *s, size_t *ret_size, size_t **ret_offsets);

/* Decodes packets [first, s->n) one by one with pts[i] (or i when pts is NULL); appends the frames. */
int media_decode(
        enum AVCodecID id, const MediaStream *s, size_t first, const int64_t *pts, MediaFrames *out);
/* Decodes a byte stream fed in one piece through the codec's parser (for encoder outputs). */
void media_frames_free(MediaFrames *f);
/* Converts every frame that is not yuv420p to yuv420p with libswscale's bilinear filter, as the backend
 * does (-EOPNOTSUPP without libswscale). */
int media_frames_to_yuv420p(MediaFrames *f);

/* PSNR of the Y, U and V planes together, in dB (99 for identical pictures). */
double media_psnr(const AVFrame *a, const AVFrame *b);

/* Writes pic (yuv420p) into b in layout p (NV12/YUV420/YVU420; b has p->num_planes planes, or one
 * plane holding them packed). */
void media_write_raw(const AVFrame *pic, const VideoParams *p, HarnessBuffer *b);
/* Whether b holds exactly ref's pixels in layout p (padding ignored), and result->sizes are right. */
bool media_output_matches(const AVFrame *ref,
                          const VideoParams *p,
                          const HarnessBuffer *b,
                          const VideoBufferResult *result);
/* Buffer plane sizes for layout p: one per plane, or one for all when packed. */
unsigned media_layout_sizes(const VideoParams *p, bool packed, size_t sizes[]);
