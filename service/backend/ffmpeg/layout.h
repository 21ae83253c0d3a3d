/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Raw frame layouts in guest memory (NV12, YUV420, YVU420) and the copies between them and libavcodec
 * frames. A frame is copied into or out of guest memory exactly once, row by row through an iovec
 * cursor, so a guest buffer may be any number of segments.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend/backend.h"

typedef struct AVFrame AVFrame;

#define FF_MAX_DIMENSION 8192u

bool ff_raw_format_supported(uint32_t format);
/* Fills format, num_planes and the minimal strides and plane sizes for a w x h frame. */
int ff_layout_default(uint32_t format, uint32_t width, uint32_t height, VideoParams *p);
/* Takes the guest's proposal for the strides and plane sizes of p (already carrying format and size)
 * and raises whatever is too small to fit the frame. */
int ff_layout_adjust(VideoParams *p, const VideoParams *proposed);
/* -EINVAL when buf cannot hold (or does not carry) a frame of layout p. */
int ff_layout_check_buffer(const VideoParams *p, const VideoBuffer *buf);

/* Scratch row memory for the conversions, owned by a codec thread. */
typedef struct FfScratch {
        uint8_t *row;
        size_t size;
} FfScratch;
void ff_scratch_free(FfScratch *s);

/* The decoder pixel formats ff_frame_to_buffer() converts from (an AVPixelFormat). */
bool ff_pix_fmt_supported(int pix_fmt);
/* Writes a decoded frame (yuv420p, yuvj420p, nv12 or nv21) into buf in layout p; fills sizes[] with
 * the bytes used per buffer plane. -EOPNOTSUPP for another pixel format, -ENOSPC when it does not fit. */
int ff_frame_to_buffer(
        const AVFrame *f, const VideoParams *p, VideoBuffer *buf, uint32_t sizes[], FfScratch *scratch);
/* Reads a raw frame of layout p from buf into f (allocated yuv420p of the same size). */
int ff_buffer_to_frame(const VideoBuffer *buf, const VideoParams *p, AVFrame *f, FfScratch *scratch);
