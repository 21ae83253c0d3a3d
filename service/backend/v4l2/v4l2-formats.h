/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Translation between virtio-video values (backend.h, virtio-video-v3.md §5) and V4L2: formats to
 * fourccs (§5.1), controls to CIDs (§5.7), profiles and levels to the V4L2 menu items (§5.8, §5.9).
 */

#include <stdbool.h>
#include <stdint.h>

#include "backend/backend.h"

struct v4l2_format;

/* 0 when the format has no V4L2 fourcc. */
uint32_t v4l2_fourcc_from_format(uint32_t format);
/* 0 when the fourcc is not a virtio-video format (multi-planar variants map to their format). */
uint32_t v4l2_format_from_fourcc(uint32_t fourcc);
/* The V4L2 control for a virtio control; profile and level depend on the coded format. 0: none. */
uint32_t v4l2_cid_from_control(VideoControl control, uint32_t coded_format);
/* Control values both ways. -EINVAL for a value with no counterpart. */
int v4l2_control_value_to_v4l2(VideoControl control, uint32_t coded_format, uint32_t value, int32_t *ret);
int v4l2_control_value_from_v4l2(VideoControl control, uint32_t coded_format, int32_t value, uint32_t *ret);

/* Fills num_planes and the per-plane stride/size of params from a G_FMT/S_FMT result (either API). The
 * colour planes of a single-memory-plane format are laid out back to back and their sizes add up to the
 * V4L2 buffer size. */
void v4l2_params_from_format(const struct v4l2_format *f, bool mplane, VideoParams *params);
/* Number of colour planes of a raw format (1 for coded ones). */
unsigned v4l2_format_color_planes(uint32_t format);
