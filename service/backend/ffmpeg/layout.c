/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <libavutil/frame.h>
#include <libavutil/pixfmt.h>

#include "common/macro.h"
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
                ret[0] = (PlaneDesc){ COMP_Y, false };
                ret[1] = (PlaneDesc){ COMP_UV, true };
                return 2;
        case VIDEO_FORMAT_YUV420:
                ret[0] = (PlaneDesc){ COMP_Y, false };
                ret[1] = (PlaneDesc){ COMP_U, true };
                ret[2] = (PlaneDesc){ COMP_V, true };
                return 3;
        case VIDEO_FORMAT_YVU420:
                ret[0] = (PlaneDesc){ COMP_Y, false };
                ret[1] = (PlaneDesc){ COMP_V, true };
                ret[2] = (PlaneDesc){ COMP_U, true };
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
static int plane_location(
        const VideoParams *p, const VideoBuffer *buf, unsigned i, unsigned *ret_index, size_t *ret_offset) {
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

/* A forward cursor over an iovec array, so rows written in order cost O(rows + segments). */
typedef struct IovCursor {
        const struct iovec *iov;
        unsigned n, i;
        size_t base; /* offset of segment i */
} IovCursor;

static size_t cursor_copy(IovCursor *c, size_t pos, void *data, size_t len, bool to_iov) {
        size_t done = 0, base, off;
        unsigned i;

        if (pos < c->base) {
                c->i = 0;
                c->base = 0;
        }
        while (c->i < c->n && pos >= c->base + c->iov[c->i].iov_len) {
                c->base += c->iov[c->i].iov_len;
                c->i++;
        }
        i = c->i;
        base = c->base;
        off = pos - base;
        while (done < len && i < c->n) {
                size_t k = MIN(c->iov[i].iov_len - off, len - done);
                uint8_t *g = (uint8_t *) c->iov[i].iov_base + off;

                if (to_iov)
                        memcpy(g, (const uint8_t *) data + done, k);
                else
                        memcpy((uint8_t *) data + done, g, k);
                done += k;
                off = 0;
                i++;
        }
        return done;
}

typedef struct SrcComp {
        const uint8_t *data;
        ptrdiff_t linesize;
        unsigned step;
} SrcComp;

static int frame_components(const AVFrame *f, SrcComp c[3]) {
        c[COMP_Y] = (SrcComp){ f->data[0], f->linesize[0], 1 };
        switch (f->format) {
        case AV_PIX_FMT_YUV420P:
        case AV_PIX_FMT_YUVJ420P:
                c[COMP_U] = (SrcComp){ f->data[1], f->linesize[1], 1 };
                c[COMP_V] = (SrcComp){ f->data[2], f->linesize[2], 1 };
                return 0;
        case AV_PIX_FMT_NV12:
                c[COMP_U] = (SrcComp){ f->data[1], f->linesize[1], 2 };
                c[COMP_V] = (SrcComp){ f->data[1] + 1, f->linesize[1], 2 };
                return 0;
        case AV_PIX_FMT_NV21:
                c[COMP_V] = (SrcComp){ f->data[1], f->linesize[1], 2 };
                c[COMP_U] = (SrcComp){ f->data[1] + 1, f->linesize[1], 2 };
                return 0;
        default:
                return -EOPNOTSUPP;
        }
}

bool ff_pix_fmt_supported(int pix_fmt) {
        return pix_fmt == AV_PIX_FMT_YUV420P || pix_fmt == AV_PIX_FMT_YUVJ420P ||
               pix_fmt == AV_PIX_FMT_NV12 || pix_fmt == AV_PIX_FMT_NV21;
}

int ff_frame_to_buffer(
        const AVFrame *f, const VideoParams *p, VideoBuffer *buf, uint32_t sizes[], FfScratch *scratch) {
        PlaneDesc d[3];
        SrcComp c[3];
        unsigned n = layout_planes(p->format, d);
        IovCursor cursors[VIDEO_MAX_PLANES] = {};
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
                cursors[i] = (IovCursor){ .iov = buf->planes[i].iov, .n = buf->planes[i].n_iov };
                sizes[i] = 0;
        }

        for (unsigned i = 0; i < n; i++) {
                uint32_t row, rows, cw = (p->frame_width + 1) / 2;
                unsigned index = 0;
                size_t offset = 0;
                uint8_t *tmp = NULL;

                (void) plane_location(p, buf, i, &index, &offset);
                plane_dims(d[i], p->frame_width, p->frame_height, &row, &rows);
                if (d[i].comp == COMP_UV || c[d[i].comp].step != 1) {
                        tmp = scratch_get(scratch, row);
                        if (!tmp)
                                return -ENOMEM;
                }
                for (uint32_t y = 0; y < rows; y++) {
                        size_t pos = offset + (size_t) y * p->planes[i].stride;
                        const uint8_t *src;

                        if (d[i].comp == COMP_UV) {
                                const uint8_t *u = c[COMP_U].data + y * c[COMP_U].linesize;
                                const uint8_t *v = c[COMP_V].data + y * c[COMP_V].linesize;

                                for (uint32_t x = 0; x < cw; x++) {
                                        tmp[2 * x] = u[x * c[COMP_U].step];
                                        tmp[2 * x + 1] = v[x * c[COMP_V].step];
                                }
                                src = tmp;
                        } else {
                                const SrcComp *s = &c[d[i].comp];
                                const uint8_t *line = s->data + y * s->linesize;

                                if (s->step == 1)
                                        src = line;
                                else {
                                        for (uint32_t x = 0; x < row; x++)
                                                tmp[x] = line[x * s->step];
                                        src = tmp;
                                }
                        }
                        if (cursor_copy(&cursors[index], pos, (void *) src, row, true) != row)
                                return -ENOSPC;
                }
                sizes[index] += p->planes[i].plane_size;
        }
        return 0;
}

int ff_buffer_to_frame(const VideoBuffer *buf, const VideoParams *p, AVFrame *f, FfScratch *scratch) {
        PlaneDesc d[3];
        unsigned n = layout_planes(p->format, d);
        IovCursor cursors[VIDEO_MAX_PLANES] = {};
        int r;

        if (n == 0 || n != p->num_planes || f->format != AV_PIX_FMT_YUV420P)
                return -EINVAL;
        if ((uint32_t) f->width != p->frame_width || (uint32_t) f->height != p->frame_height)
                return -EINVAL;
        r = ff_layout_check_buffer(p, buf);
        if (r < 0)
                return r;
        for (unsigned i = 0; i < buf->n_planes; i++)
                cursors[i] = (IovCursor){ .iov = buf->planes[i].iov, .n = buf->planes[i].n_iov };

        for (unsigned i = 0; i < n; i++) {
                uint32_t row, rows, cw = (p->frame_width + 1) / 2;
                unsigned index = 0;
                size_t offset = 0;
                uint8_t *tmp = NULL;

                (void) plane_location(p, buf, i, &index, &offset);
                plane_dims(d[i], p->frame_width, p->frame_height, &row, &rows);
                if (d[i].comp == COMP_UV) {
                        tmp = scratch_get(scratch, row);
                        if (!tmp)
                                return -ENOMEM;
                }
                for (uint32_t y = 0; y < rows; y++) {
                        size_t pos = offset + (size_t) y * p->planes[i].stride;

                        if (d[i].comp == COMP_UV) {
                                uint8_t *u = f->data[1] + y * f->linesize[1];
                                uint8_t *v = f->data[2] + y * f->linesize[2];

                                if (cursor_copy(&cursors[index], pos, tmp, row, false) != row)
                                        return -EINVAL;
                                for (uint32_t x = 0; x < cw; x++) {
                                        u[x] = tmp[2 * x];
                                        v[x] = tmp[2 * x + 1];
                                }
                        } else {
                                unsigned plane = d[i].comp == COMP_Y ? 0 : d[i].comp == COMP_U ? 1 : 2;
                                uint8_t *line = f->data[plane] + y * f->linesize[plane];

                                if (cursor_copy(&cursors[index], pos, line, row, false) != row)
                                        return -EINVAL;
                        }
                }
        }
        return 0;
}
