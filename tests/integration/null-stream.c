/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/macro.h"
#include "null-stream.h"
#include "video/virtio-video-proto.h"

static uint8_t luma(uint32_t x, uint32_t y, uint32_t seq) {
        return (uint8_t) (x * 3 + y * 5 + seq * 7);
}
static uint8_t cb(uint32_t x, uint32_t y, uint32_t seq) {
        return (uint8_t) (x + y * 2 + seq * 11 + 64);
}
static uint8_t cr(uint32_t x, uint32_t y, uint32_t seq) {
        return (uint8_t) (x * 2 + y + seq * 13 + 128);
}

void null_picture(uint32_t w, uint32_t h, uint32_t seq, uint8_t *out) {
        uint8_t *u = out + (size_t) w * h, *v = u + (size_t) (w / 2) * (h / 2);

        for (uint32_t y = 0; y < h; y++)
                for (uint32_t x = 0; x < w; x++)
                        out[(size_t) y * w + x] = luma(x, y, seq);
        for (uint32_t y = 0; y < h / 2; y++)
                for (uint32_t x = 0; x < w / 2; x++) {
                        u[(size_t) y * (w / 2) + x] = cb(x, y, seq);
                        v[(size_t) y * (w / 2) + x] = cr(x, y, seq);
                }
}

static void put16(uint8_t *p, uint16_t v) {
        p[0] = (uint8_t) v;
        p[1] = (uint8_t) (v >> 8);
}
static void put32(uint8_t *p, uint32_t v) {
        for (unsigned i = 0; i < 4; i++)
                p[i] = (uint8_t) (v >> (8 * i));
}

int null_stream_append(NullStream *s, uint32_t w, uint32_t h, uint32_t seq) {
        size_t payload = (size_t) w * h * 3 / 2, n = s->size + NULL_FRAME_HEADER_SIZE + payload;
        size_t *offs;
        uint8_t *d, *p;

        if (w < 2 || h < 2 || w > 4096 || h > 4096 || w % 2 || h % 2)
                return -EINVAL;
        d = realloc(s->data, n);
        if (!d)
                return -ENOMEM;
        s->data = d;
        offs = reallocarray(s->frame_offsets, s->n_frames + 1, sizeof(*offs));
        if (!offs)
                return -ENOMEM;
        s->frame_offsets = offs;
        s->frame_offsets[s->n_frames++] = s->size;
        p = d + s->size;
        memcpy(p, "VVNF", 4);
        put16(p + 4, (uint16_t) w);
        put16(p + 6, (uint16_t) h);
        put32(p + 8, (uint32_t) payload);
        put32(p + 12, seq);
        null_picture(w, h, seq, p + NULL_FRAME_HEADER_SIZE);
        s->size = n;
        return 0;
}

void null_stream_done(NullStream *s) {
        free(s->data);
        free(s->frame_offsets);
        *s = (NullStream){};
}

/* Byte at (plane component c, x, y) of the frame, or -1 when it lies outside what the device wrote. */
static int sample(const VcFrame *f, unsigned comp, uint32_t x, uint32_t y) {
        bool nv12 = f->format == 3; /* VIRTIO_VIDEO_FORMAT_NV12 */
        uint32_t s0 = f->strides[0];
        size_t off;
        unsigned p;

        if (comp == 0) {
                p = 0;
                off = (size_t) y * s0 + x;
        } else if (nv12) {
                p = f->n_planes >= 2 ? 1 : 0;
                off = (p == 1 ? 0 : (size_t) s0 * f->height) + (size_t) y * (p == 1 ? f->strides[1] : s0) +
                      2 * x + (comp == 2);
        } else if (f->n_planes >= 3) {
                p = comp;
                off = (size_t) y * f->strides[p] + x;
        } else {
                uint32_t cs = f->n_planes == 2 ? f->strides[1] : s0 / 2;
                size_t base = f->n_planes == 2 ? 0 : (size_t) s0 * f->height;
                p = f->n_planes == 2 ? 1 : 0;
                off = base + (comp == 2 ? (size_t) cs * (f->height / 2) : 0) + (size_t) y * cs + x;
        }
        if (p >= f->n_planes || off >= f->plane_sizes[p])
                return -1;
        return f->planes[p][off];
}

bool null_frame_matches(const VcFrame *f, uint32_t w, uint32_t h, uint32_t seq) {
        if (f->n_planes == 0 || f->strides[0] < w)
                return false;
        for (uint32_t y = 0; y < h; y++)
                for (uint32_t x = 0; x < w; x++)
                        if (sample(f, 0, x, y) != luma(x, y, seq))
                                return false;
        for (uint32_t y = 0; y < h / 2; y++)
                for (uint32_t x = 0; x < w / 2; x++)
                        if (sample(f, 1, x, y) != cb(x, y, seq) || sample(f, 2, x, y) != cr(x, y, seq))
                                return false;
        return true;
}

bool null_packet_matches(const uint8_t *data, size_t size, uint32_t w, uint32_t h, uint32_t seq) {
        size_t payload = (size_t) w * h * 3 / 2;
        _cleanup_free_ uint8_t *pic = malloc(payload);

        if (!pic || size != NULL_FRAME_HEADER_SIZE + payload)
                return false;
        if (memcmp(data, "VVNF", 4) != 0 || (data[4] | data[5] << 8) != (int) w ||
            (data[6] | data[7] << 8) != (int) h)
                return false;
        null_picture(w, h, seq, pic);
        return memcmp(data + NULL_FRAME_HEADER_SIZE, pic, payload) == 0;
}
