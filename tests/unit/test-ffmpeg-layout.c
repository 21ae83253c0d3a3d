/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The frame <-> guest buffer conversions of the ffmpeg backends (backend/ffmpeg/layout.h): every source
 * pixel format into every raw layout, per-plane or packed in one buffer plane, default, padded and odd
 * strides, odd frame sizes, with guest memory in one segment (rows written in place) and in small
 * segments that split rows (rows bounced through the scratch row). Both ways must give the same bytes:
 * the ones an independent reference computes, padding untouched; and back into a frame, the pixels.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <libavutil/frame.h>
#include <libavutil/pixfmt.h>

#include "backend/backend.h"
#include "backend/ffmpeg/layout.h"
#include "common/macro.h"

#define MAX_SEGS 4096

typedef struct Buf {
        VideoBuffer vb;
        uint8_t *mem[3];
        struct iovec iov[3][MAX_SEGS];
} Buf;

static uint8_t pel(unsigned comp, uint32_t x, uint32_t y) {
        return (uint8_t) (x * 7 + y * 13 + comp * 71 + 1);
}

/* A w x h frame of pixel format fmt whose component comp (0 Y, 1 U, 2 V) at (x, y) is pel(). */
static AVFrame *make_frame(int fmt, uint32_t w, uint32_t h) {
        AVFrame *f = av_frame_alloc();
        uint32_t cw = (w + 1) / 2, ch = (h + 1) / 2;

        assert_non_null(f);
        f->format = fmt;
        f->width = (int) w;
        f->height = (int) h;
        assert_int_equal(av_frame_get_buffer(f, 0), 0);
        for (uint32_t y = 0; y < h; y++)
                for (uint32_t x = 0; x < w; x++)
                        f->data[0][y * f->linesize[0] + x] = pel(0, x, y);
        for (uint32_t y = 0; y < ch; y++)
                for (uint32_t x = 0; x < cw; x++) {
                        if (fmt == AV_PIX_FMT_YUV420P) {
                                f->data[1][y * f->linesize[1] + x] = pel(1, x, y);
                                f->data[2][y * f->linesize[2] + x] = pel(2, x, y);
                        } else {
                                bool nv21 = fmt == AV_PIX_FMT_NV21;
                                f->data[1][y * f->linesize[1] + 2 * x + nv21] = pel(1, x, y);
                                f->data[1][y * f->linesize[1] + 2 * x + !nv21] = pel(2, x, y);
                        }
                }
        return f;
}

/* Buffer planes of the given sizes, cut into `seg`-byte segments, pre-filled with 0xEE. */
static Buf *make_buf(unsigned n, const size_t *sizes, size_t seg) {
        Buf *b = calloc(1, sizeof(*b));

        assert_non_null(b);
        b->vb.n_planes = n;
        for (unsigned i = 0; i < n; i++) {
                unsigned k = 0;

                b->mem[i] = malloc(sizes[i]);
                assert_non_null(b->mem[i]);
                memset(b->mem[i], 0xEE, sizes[i]);
                for (size_t off = 0; off < sizes[i]; off += seg) {
                        assert_true(k < MAX_SEGS);
                        b->iov[i][k++] = (struct iovec) { b->mem[i] + off, MIN(seg, sizes[i] - off) };
                }
                b->vb.planes[i] = (VideoPlane) { .iov = b->iov[i], .n_iov = k, .length = sizes[i] };
        }
        return b;
}

static void free_buf(Buf *b) {
        for (unsigned i = 0; i < 3; i++)
                free(b->mem[i]);
        free(b);
}

/* Where byte (x, y) of component comp (0 Y, 1 U, 2 V) of layout p must be, as (buffer plane, offset). */
static void locate(const VideoParams *p, bool packed, unsigned comp, uint32_t x, uint32_t y, unsigned *ret_plane,
                   size_t *ret_off) {
        unsigned lp; /* layout plane */
        size_t off;

        if (comp == 0) {
                lp = 0;
                off = (size_t) y * p->planes[0].stride + x;
        } else if (p->format == VIDEO_FORMAT_NV12) {
                lp = 1;
                off = (size_t) y * p->planes[1].stride + 2 * x + (comp == 2);
        } else {
                bool first = (comp == 1) == (p->format == VIDEO_FORMAT_YUV420);
                lp = first ? 1 : 2;
                off = (size_t) y * p->planes[lp].stride + x;
        }
        if (packed) {
                for (unsigned j = 0; j < lp; j++)
                        off += p->planes[j].plane_size;
                lp = 0;
        }
        *ret_plane = lp;
        *ret_off = off;
}

static void check_case(int src_fmt, uint32_t out_format, uint32_t w, uint32_t h, uint32_t extra_stride,
                       bool packed, size_t seg) {
        VideoParams p = {}, proposed = {};
        uint32_t cw = (w + 1) / 2, ch = (h + 1) / 2, sizes[VIDEO_MAX_PLANES] = {};
        size_t bsizes[3] = {};
        uint8_t *want[3] = {};
        FfScratch scratch = {};
        AVFrame *f = make_frame(src_fmt, w, h), *back = make_frame(AV_PIX_FMT_YUV420P, w, h);
        Buf *b;
        unsigned nb;

        assert_int_equal(ff_layout_default(out_format, w, h, &p), 0);
        proposed = p;
        for (unsigned i = 0; i < p.num_planes; i++)
                proposed.planes[i].stride = p.planes[i].stride + extra_stride;
        assert_int_equal(ff_layout_adjust(&p, &proposed), 0);
        if (packed) {
                nb = 1;
                for (unsigned i = 0; i < p.num_planes; i++)
                        bsizes[0] += p.planes[i].plane_size;
        } else {
                nb = p.num_planes;
                for (unsigned i = 0; i < nb; i++)
                        bsizes[i] = p.planes[i].plane_size;
        }
        b = make_buf(nb, bsizes, seg);
        for (unsigned i = 0; i < nb; i++) {
                want[i] = malloc(bsizes[i]);
                assert_non_null(want[i]);
                memset(want[i], 0xEE, bsizes[i]);
        }
        for (unsigned comp = 0; comp < 3; comp++)
                for (uint32_t y = 0; y < (comp ? ch : h); y++)
                        for (uint32_t x = 0; x < (comp ? cw : w); x++) {
                                unsigned plane;
                                size_t off;
                                locate(&p, packed, comp, x, y, &plane, &off);
                                want[plane][off] = pel(comp, x, y);
                        }

        assert_int_equal(ff_frame_to_buffer(f, &p, &b->vb, sizes, &scratch), 0);
        for (unsigned i = 0; i < nb; i++)
                assert_memory_equal(b->mem[i], want[i], bsizes[i]);
        if (packed)
                assert_int_equal(sizes[0], bsizes[0]);
        else
                for (unsigned i = 0; i < nb; i++)
                        assert_int_equal(sizes[i], bsizes[i]);

        /* And back: the encoder's direction gives the pixels again. */
        for (unsigned i = 0; i < 3; i++)
                memset(back->data[i], 0, (size_t) back->linesize[i] * (i ? ch : h));
        assert_int_equal(ff_buffer_to_frame(&b->vb, &p, back, &scratch), 0);
        for (unsigned comp = 0; comp < 3; comp++)
                for (uint32_t y = 0; y < (comp ? ch : h); y++)
                        for (uint32_t x = 0; x < (comp ? cw : w); x++)
                                assert_int_equal(back->data[comp][y * back->linesize[comp] + x], pel(comp, x, y));

        for (unsigned i = 0; i < nb; i++)
                free(want[i]);
        free_buf(b);
        ff_scratch_free(&scratch);
        av_frame_free(&f);
        av_frame_free(&back);
}

static void test_every_format_layout_and_segmentation(void **state) {
        static const int src_fmts[] = { AV_PIX_FMT_YUV420P, AV_PIX_FMT_NV12, AV_PIX_FMT_NV21 };
        static const uint32_t out_formats[] = { VIDEO_FORMAT_NV12, VIDEO_FORMAT_YUV420, VIDEO_FORMAT_YVU420 };
        static const uint32_t sizes[][2] = { { 64, 6 }, { 18, 4 }, { 17, 5 }, { 66, 3 } };
        static const uint32_t extra[] = { 0, 3, 32 };
        static const size_t segs[] = { 1u << 20, 5, 13, 64 };

        for (unsigned a = 0; a < 3; a++)
                for (unsigned o = 0; o < 3; o++)
                        for (unsigned s = 0; s < 4; s++)
                                for (unsigned e = 0; e < 3; e++)
                                        for (unsigned g = 0; g < 4; g++)
                                                for (unsigned packed = 0; packed < 2; packed++)
                                                        check_case(src_fmts[a], out_formats[o], sizes[s][0],
                                                                   sizes[s][1], extra[e], packed, segs[g]);
}

static void test_too_small_buffer_is_refused(void **state) {
        VideoParams p = {};
        uint32_t sizes[VIDEO_MAX_PLANES] = {};
        size_t bsizes[2];
        FfScratch scratch = {};
        AVFrame *f = make_frame(AV_PIX_FMT_YUV420P, 16, 4);
        Buf *b;

        assert_int_equal(ff_layout_default(VIDEO_FORMAT_NV12, 16, 4, &p), 0);
        bsizes[0] = p.planes[0].plane_size;
        bsizes[1] = p.planes[1].plane_size - 1;
        b = make_buf(2, bsizes, 7);
        assert_int_equal(ff_frame_to_buffer(f, &p, &b->vb, sizes, &scratch), -EINVAL);
        assert_int_equal(ff_buffer_to_frame(&b->vb, &p, f, &scratch), -EINVAL);
        free_buf(b);
        ff_scratch_free(&scratch);
        av_frame_free(&f);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_every_format_layout_and_segmentation),
                cmocka_unit_test(test_too_small_buffer_is_refused),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
