/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <libavutil/frame.h>
#include <libavutil/pixfmt.h>

#include "common/iov.h"
#include "common/macro.h"
#include "common/planar.h"
#include "layout.h"

/* The components of a 4:2:0 picture, in the order the layouts name their planes. */
enum { COMP_Y, COMP_U, COMP_V, COMP_UV /* NV12's interleaved chroma */ };

typedef struct PlaneDesc {
        unsigned comp;
        bool chroma;
} PlaneDesc;

static unsigned layout_planes(uint32_t format, PlaneDesc ret[3]) {
        switch (format) {
        case VIDEO_FORMAT_NV12:
                ret[0] = (PlaneDesc) { COMP_Y, false };
                ret[1] = (PlaneDesc) { COMP_UV, true };
                return 2;
        case VIDEO_FORMAT_YUV420:
                ret[0] = (PlaneDesc) { COMP_Y, false };
                ret[1] = (PlaneDesc) { COMP_U, true };
                ret[2] = (PlaneDesc) { COMP_V, true };
                return 3;
        case VIDEO_FORMAT_YVU420:
                ret[0] = (PlaneDesc) { COMP_Y, false };
                ret[1] = (PlaneDesc) { COMP_V, true };
                ret[2] = (PlaneDesc) { COMP_U, true };
                return 3;
        default:
                return 0;
        }
}

bool ff_raw_format_supported(uint32_t format) {
        PlaneDesc d[3];

        return layout_planes(format, d) > 0;
}

/* Bytes per row and rows of a plane of a w x h frame. */
static void plane_dims(PlaneDesc d, uint32_t w, uint32_t h, uint32_t *ret_row, uint32_t *ret_rows) {
        uint32_t cw = (w + 1) / 2, ch = (h + 1) / 2;

        switch (d.comp) {
        case COMP_Y:
                *ret_row = w;
                *ret_rows = h;
                break;
        case COMP_UV:
                *ret_row = 2 * cw;
                *ret_rows = ch;
                break;
        default:
                *ret_row = cw;
                *ret_rows = ch;
        }
}

int ff_layout_default(uint32_t format, uint32_t width, uint32_t height, VideoParams *p) {
        PlaneDesc d[3];
        unsigned n = layout_planes(format, d);

        if (n == 0 || width == 0 || height == 0 || width > FF_MAX_DIMENSION || height > FF_MAX_DIMENSION)
                return -EINVAL;
        p->format = format;
        p->frame_width = width;
        p->frame_height = height;
        p->num_planes = n;
        memset(p->planes, 0, sizeof(p->planes));
        for (unsigned i = 0; i < n; i++) {
                uint32_t row, rows;

                plane_dims(d[i], width, height, &row, &rows);
                /* NV12 shares one stride between Y and CbCr, as V4L2 and the guest driver assume. */
                if (format == VIDEO_FORMAT_NV12)
                        row = 2 * ((width + 1) / 2);
                p->planes[i].stride = row;
                p->planes[i].plane_size = row * rows;
        }
        return 0;
}

int ff_layout_adjust(VideoParams *p, const VideoParams *proposed) {
        PlaneDesc d[3];
        unsigned n = layout_planes(p->format, d);

        if (n == 0)
                return -EINVAL;
        for (unsigned i = 0; i < n; i++) {
                uint32_t row, rows, stride, size;

                plane_dims(d[i], p->frame_width, p->frame_height, &row, &rows);
                stride = MAX(proposed->planes[i].stride, p->planes[i].stride);
                stride = MAX(stride, row);
                if (stride > 4 * FF_MAX_DIMENSION)
                        return -EINVAL;
                size = MAX(proposed->planes[i].plane_size, stride * rows);
                if (size > (1u << 28)) /* 256 MiB: four bytes a pixel at the largest size */
                        return -EINVAL;
                p->planes[i].stride = stride;
                p->planes[i].plane_size = size;
        }
        return 0;
}

/* Where plane i of layout p lives in buf: its own buffer plane, or packed one after the other in a
 * single buffer plane (SINGLE_BUFFER resources described as one plane). */
static int plane_location(const VideoParams *p, const VideoBuffer *buf, unsigned i, unsigned *ret_index,
                          size_t *ret_offset) {
        size_t offset = 0;

        if (buf->n_planes == p->num_planes) {
                *ret_index = i;
                *ret_offset = 0;
                return 0;
        }
        if (buf->n_planes != 1)
                return -EINVAL;
        for (unsigned j = 0; j < i; j++)
                offset += p->planes[j].plane_size;
        *ret_index = 0;
        *ret_offset = offset;
        return 0;
}

int ff_layout_check_buffer(const VideoParams *p, const VideoBuffer *buf) {
        if (p->num_planes == 0 || p->num_planes > 3)
                return -EINVAL;
        for (unsigned i = 0; i < p->num_planes; i++) {
                unsigned index;
                size_t offset, end;
                int r = plane_location(p, buf, i, &index, &offset);

                if (r < 0)
                        return r;
                if (__builtin_add_overflow(offset, (size_t) p->planes[i].plane_size, &end))
                        return -EINVAL;
                if (end > buf->planes[index].length)
                        return -EINVAL;
        }
        return 0;
}

void ff_scratch_free(FfScratch *s) {
        free(s->row);
        s->row = NULL;
        s->size = 0;
}

static uint8_t *scratch_get(FfScratch *s, size_t size) {
        if (s->size < size) {
                uint8_t *n = realloc(s->row, size);

                if (!n)
                        return NULL;
                s->row = n;
                s->size = size;
        }
        return s->row;
}

/* A forward cursor over one buffer plane and its position, for rows visited in increasing order. */
typedef struct PlaneCursor {
        IovCursor c;
        const VideoPlane *plane;
        size_t pos;
} PlaneCursor;

static void plane_cursor_init(PlaneCursor *p, const VideoPlane *plane) {
        *p = (PlaneCursor) { .plane = plane };
        iov_cursor_init(&p->c, plane->iov, plane->n_iov, 0);
}

/* Moves to byte `pos` of the plane; false when the plane ends before. */
static bool plane_cursor_seek(PlaneCursor *p, size_t pos) {
        if (pos < p->pos) /* never with the layouts here (planes and rows in order), but stay correct */
                plane_cursor_init(p, p->plane);
        if (iov_cursor_skip(&p->c, pos - p->pos) != pos - p->pos)
                return false;
        p->pos = pos;
        return true;
}

/* The `len` bytes at the cursor in place when they lie in one segment, else NULL. */
static uint8_t *plane_cursor_row(PlaneCursor *p, size_t len) {
        size_t span;
        uint8_t *ptr = iov_cursor_span(&p->c, &span);

        return span >= len ? ptr : NULL;
}

static size_t plane_cursor_write(PlaneCursor *p, const void *data, size_t len) {
        size_t k = iov_cursor_write(&p->c, data, len);

        p->pos += k;
        return k;
}

static size_t plane_cursor_read(PlaneCursor *p, void *data, size_t len) {
        size_t k = iov_cursor_read(&p->c, data, len);

        p->pos += k;
        return k;
}

static void plane_cursor_pass(PlaneCursor *p, size_t len) {
        p->pos += iov_cursor_skip(&p->c, len);
}

typedef struct SrcComp {
        const uint8_t *data;
        ptrdiff_t linesize;
        unsigned step;
} SrcComp;

static int frame_components(const AVFrame *f, SrcComp c[3]) {
        c[COMP_Y] = (SrcComp) { f->data[0], f->linesize[0], 1 };
        switch (f->format) {
        case AV_PIX_FMT_YUV420P:
        case AV_PIX_FMT_YUVJ420P:
                c[COMP_U] = (SrcComp) { f->data[1], f->linesize[1], 1 };
                c[COMP_V] = (SrcComp) { f->data[2], f->linesize[2], 1 };
                return 0;
        case AV_PIX_FMT_NV12:
                c[COMP_U] = (SrcComp) { f->data[1], f->linesize[1], 2 };
                c[COMP_V] = (SrcComp) { f->data[1] + 1, f->linesize[1], 2 };
                return 0;
        case AV_PIX_FMT_NV21:
                c[COMP_V] = (SrcComp) { f->data[1], f->linesize[1], 2 };
                c[COMP_U] = (SrcComp) { f->data[1] + 1, f->linesize[1], 2 };
                return 0;
        default:
                return -EOPNOTSUPP;
        }
}

bool ff_pix_fmt_supported(int pix_fmt) {
        return pix_fmt == AV_PIX_FMT_YUV420P || pix_fmt == AV_PIX_FMT_YUVJ420P || pix_fmt == AV_PIX_FMT_NV12 ||
               pix_fmt == AV_PIX_FMT_NV21;
}

/* One row of plane `comp` of the frame into dst (row bytes). */
static void frame_row(const SrcComp c[3], unsigned comp, uint32_t y, uint32_t row, uint32_t cw, uint8_t *dst) {
        if (comp == COMP_UV) {
                const uint8_t *u = c[COMP_U].data + y * c[COMP_U].linesize;
                const uint8_t *v = c[COMP_V].data + y * c[COMP_V].linesize;

                if (c[COMP_U].step == 1 && c[COMP_V].step == 1)
                        planar_interleave(dst, u, v, cw);
                else if (v == u + 1) /* an NV12 frame: the row as it is */
                        memcpy(dst, u, 2 * (size_t) cw);
                else
                        for (uint32_t x = 0; x < cw; x++) {
                                dst[2 * x] = u[x * c[COMP_U].step];
                                dst[2 * x + 1] = v[x * c[COMP_V].step];
                        }
                return;
        }

        const SrcComp *sc = &c[comp];
        const uint8_t *line = sc->data + y * sc->linesize;

        if (sc->step == 1)
                memcpy(dst, line, row);
        else
                for (uint32_t x = 0; x < row; x++)
                        dst[x] = line[x * sc->step];
}

int ff_frame_to_buffer(const AVFrame *f, const VideoParams *p, VideoBuffer *buf, uint32_t sizes[],
                       FfScratch *scratch) {
        PlaneDesc d[3];
        SrcComp c[3];
        unsigned n = layout_planes(p->format, d);
        PlaneCursor cursors[VIDEO_MAX_PLANES] = {};
        int r;

        if (n == 0 || n != p->num_planes)
                return -EINVAL;
        r = frame_components(f, c);
        if (r < 0)
                return r;
        if ((uint32_t) f->width != p->frame_width || (uint32_t) f->height != p->frame_height)
                return -EINVAL;
        r = ff_layout_check_buffer(p, buf);
        if (r < 0)
                return r;
        for (unsigned i = 0; i < buf->n_planes; i++) {
                plane_cursor_init(&cursors[i], &buf->planes[i]);
                sizes[i] = 0;
        }

        for (unsigned i = 0; i < n; i++) {
                uint32_t row, rows, cw = (p->frame_width + 1) / 2;
                unsigned index = 0;
                size_t offset = 0;

                (void) plane_location(p, buf, i, &index, &offset);
                plane_dims(d[i], p->frame_width, p->frame_height, &row, &rows);
                for (uint32_t y = 0; y < rows; y++) {
                        PlaneCursor *pc = &cursors[index];
                        uint8_t *dst;

                        if (!plane_cursor_seek(pc, offset + (size_t) y * p->planes[i].stride))
                                return -ENOSPC;
                        /* Straight into guest memory when the row lies in one segment. */
                        dst = plane_cursor_row(pc, row);
                        if (dst) {
                                frame_row(c, d[i].comp, y, row, cw, dst);
                                plane_cursor_pass(pc, row);
                                continue;
                        }
                        dst = scratch_get(scratch, row);
                        if (!dst)
                                return -ENOMEM;
                        frame_row(c, d[i].comp, y, row, cw, dst);
                        if (plane_cursor_write(pc, dst, row) != row)
                                return -ENOSPC;
                }
                sizes[index] += p->planes[i].plane_size;
        }
        return 0;
}

/* One row of the buffer (src, row bytes) into plane `comp` of a yuv420p frame. */
static void buffer_row(AVFrame *f, unsigned comp, uint32_t y, uint32_t row, uint32_t cw, const uint8_t *src) {
        if (comp == COMP_UV) {
                planar_deinterleave(f->data[1] + y * f->linesize[1], f->data[2] + y * f->linesize[2], src, cw);
                return;
        }
        unsigned plane = comp == COMP_Y ? 0 : comp == COMP_U ? 1 : 2;
        memcpy(f->data[plane] + y * f->linesize[plane], src, row);
}

int ff_buffer_to_frame(const VideoBuffer *buf, const VideoParams *p, AVFrame *f, FfScratch *scratch) {
        PlaneDesc d[3];
        unsigned n = layout_planes(p->format, d);
        PlaneCursor cursors[VIDEO_MAX_PLANES] = {};
        int r;

        if (n == 0 || n != p->num_planes || f->format != AV_PIX_FMT_YUV420P)
                return -EINVAL;
        if ((uint32_t) f->width != p->frame_width || (uint32_t) f->height != p->frame_height)
                return -EINVAL;
        r = ff_layout_check_buffer(p, buf);
        if (r < 0)
                return r;
        for (unsigned i = 0; i < buf->n_planes; i++)
                plane_cursor_init(&cursors[i], &buf->planes[i]);

        for (unsigned i = 0; i < n; i++) {
                uint32_t row, rows, cw = (p->frame_width + 1) / 2;
                unsigned index = 0;
                size_t offset = 0;

                (void) plane_location(p, buf, i, &index, &offset);
                plane_dims(d[i], p->frame_width, p->frame_height, &row, &rows);
                for (uint32_t y = 0; y < rows; y++) {
                        PlaneCursor *pc = &cursors[index];
                        const uint8_t *src;
                        uint8_t *tmp;

                        if (!plane_cursor_seek(pc, offset + (size_t) y * p->planes[i].stride))
                                return -EINVAL;
                        /* Straight out of guest memory when the row lies in one segment. */
                        src = plane_cursor_row(pc, row);
                        if (src) {
                                buffer_row(f, d[i].comp, y, row, cw, src);
                                plane_cursor_pass(pc, row);
                                continue;
                        }
                        tmp = scratch_get(scratch, row);
                        if (!tmp)
                                return -ENOMEM;
                        if (plane_cursor_read(pc, tmp, row) != row)
                                return -EINVAL;
                        buffer_row(f, d[i].comp, y, row, cw, tmp);
                }
        }
        return 0;
}
