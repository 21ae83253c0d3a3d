/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Test helpers for the null backend's coded format (/work/wt/_notes/null-codec.md, "null frames"): a
 * 16-byte header {"VVNF", le16 width, le16 height, le32 payload size, le32 sequence} and an I420 picture.
 * The pictures are a deterministic function of (width, height, sequence), so a decoded frame can be
 * compared byte for byte with what was encoded.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "frontend/video-client.h"

#define NULL_FRAME_HEADER_SIZE 16

typedef struct NullStream {
        uint8_t *data;
        size_t size;
        unsigned n_frames;
        size_t *frame_offsets; /* n_frames entries */
} NullStream;

/* Appends one frame of w x h (even, 2..4096) whose picture is picture(seq). */
int null_stream_append(NullStream *s, uint32_t w, uint32_t h, uint32_t seq);
void null_stream_done(NullStream *s);

/* The I420 picture number seq of w x h, w*h*3/2 bytes. */
void null_picture(uint32_t w, uint32_t h, uint32_t seq, uint8_t *out);

/* True when a decoded frame (NV12 or YUV420 in one, two or three planes, with the strides of the
 * frame) holds picture seq of w x h. */
bool null_frame_matches(const VcFrame *f, uint32_t w, uint32_t h, uint32_t seq);

/* True when an encoded packet is one null frame of w x h holding picture seq: the header with that size,
 * then the picture unchanged. */
bool null_packet_matches(const uint8_t *data, size_t size, uint32_t w, uint32_t h, uint32_t seq);
