/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/* The virtio-video profile and level values (virtio-video-v3.md §5.8, §5.9) the libavcodec backends
 * answer QUERY_CONTROL with, and their mapping to libavcodec's numbers. */

#include <stdbool.h>
#include <stdint.h>

#include "backend/backend.h"

#define VIDEO_PROFILE_H264_BASELINE 0x100u
#define VIDEO_PROFILE_H264_MAIN 0x101u
#define VIDEO_PROFILE_H264_EXTENDED 0x102u
#define VIDEO_PROFILE_H264_HIGH 0x103u
#define VIDEO_PROFILE_HEVC_MAIN 0x200u
#define VIDEO_PROFILE_HEVC_MAIN_STILL_PICTURE 0x202u
#define VIDEO_PROFILE_VP8_PROFILE0 0x300u
#define VIDEO_PROFILE_VP8_PROFILE3 0x303u
#define VIDEO_PROFILE_VP9_PROFILE0 0x400u
#define VIDEO_LEVEL_H264_1_0 0x100u
#define VIDEO_LEVEL_H264_5_1 0x10Eu

/* Writes the profiles (or levels) for format: for a decoder those it can give out as 8-bit 4:2:0 (the
 * raw formats we have), for an encoder those it makes. Returns the count written, -EOPNOTSUPP when the
 * format has no such list. */
int ff_profiles_list(VideoControl control, uint32_t format, bool decoder, uint32_t *values, unsigned max);
bool ff_profile_valid(VideoControl control, uint32_t format, bool decoder, uint32_t value);
/* H.264 level enum -> level_idc (10, 11, ..., 51). */
int ff_h264_level_idc(uint32_t level);
