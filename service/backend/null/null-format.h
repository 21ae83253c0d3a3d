/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * The null backend's coded format ("null frames", /work notes null-codec.md), advertised to guests as
 * FWHT because the protocol has no test format. A coded stream is a sequence of frames:
 *   0  "VVNF"   4 bytes magic
 *   4  le16     width  (2..4096, even)
 *   6  le16     height (2..4096, even)
 *   8  le32     payload size = width * height * 3 / 2
 *  12  le32     sequence number (informational)
 *  16  payload  planar I420: Y (w*h), U (w/2*h/2), V (w/2*h/2)
 * Tests and the frontend's probe build streams with these helpers.
 */

#include <endian.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define NULL_FRAME_MAGIC "VVNF"
#define NULL_FRAME_HEADER_SIZE 16u
#define NULL_FRAME_MIN_DIM 2u
#define NULL_FRAME_MAX_DIM 4096u

static inline size_t null_frame_payload_size(uint32_t width, uint32_t height) {
        return (size_t) width * height * 3 / 2;
}

static inline void
null_frame_write_header(uint8_t hdr[NULL_FRAME_HEADER_SIZE], uint16_t width, uint16_t height, uint32_t seq) {
        uint16_t w = htole16(width), h = htole16(height);
        uint32_t size = htole32((uint32_t) null_frame_payload_size(width, height)), s = htole32(seq);

        memcpy(hdr, NULL_FRAME_MAGIC, 4);
        memcpy(hdr + 4, &w, 2);
        memcpy(hdr + 6, &h, 2);
        memcpy(hdr + 8, &size, 4);
        memcpy(hdr + 12, &s, 4);
}

/* A stream of `frames` pictures of width x height (even, within the limits above) whose pixels change
 * from frame to frame, for probes, tests and benchmarks. Returns NULL on OOM; the caller frees it. */
static inline uint8_t *null_coded_stream_new(unsigned frames, uint16_t width, uint16_t height, size_t *ret_size) {
        size_t payload = null_frame_payload_size(width, height), frame = NULL_FRAME_HEADER_SIZE + payload;
        uint8_t *s = malloc(frame * frames);

        if (!s)
                return NULL;
        for (unsigned k = 0; k < frames; k++) {
                uint8_t *p = s + k * frame;
                null_frame_write_header(p, width, height, k);
                for (size_t i = 0; i < payload; i++)
                        p[NULL_FRAME_HEADER_SIZE + i] = (uint8_t) (i * 7 + k * 13);
        }
        *ret_size = frame * frames;
        return s;
}
