/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * The software codec backends on libavcodec (architecture.md §3): "ffmpeg-decoder" (H.264, HEVC, VP8,
 * VP9, MPEG-2, MPEG-4 part 2, whichever this libavcodec has) and "ffmpeg-encoder" (H.264, VP8, VP9 when
 * an encoder for them is present). Codec work runs on one thread per stream; results come back to the
 * event loop given to new() through an eventfd. Raw frames are NV12, YUV420 or YVU420 with the guest's
 * strides and plane sizes.
 */

#include "backend/backend.h"

extern const BackendOps backend_ffmpeg_decoder_ops;
extern const BackendOps backend_ffmpeg_encoder_ops;
