/* SPDX-License-Identifier: GPL-2.0-or-later */

#include <errno.h>

#include <linux/videodev2.h>

#include "backend/v4l2/v4l2-formats.h"
#include "common/macro.h"

static const struct {
        uint32_t format, fourcc;
} format_map[] = {
        /* virtio-video-v3.md §5.1: the fourccs the guest driver's helpers use. */
        { VIDEO_FORMAT_ARGB8888, V4L2_PIX_FMT_ARGB32 },
        { VIDEO_FORMAT_BGRA8888, V4L2_PIX_FMT_ABGR32 },
        { VIDEO_FORMAT_NV12, V4L2_PIX_FMT_NV12 },
        { VIDEO_FORMAT_YUV420, V4L2_PIX_FMT_YUV420 },
        { VIDEO_FORMAT_YVU420, V4L2_PIX_FMT_YVU420 },
        { VIDEO_FORMAT_MPEG2, V4L2_PIX_FMT_MPEG2 },
        { VIDEO_FORMAT_MPEG4, V4L2_PIX_FMT_MPEG4 },
        { VIDEO_FORMAT_H264, V4L2_PIX_FMT_H264 },
        { VIDEO_FORMAT_HEVC, V4L2_PIX_FMT_HEVC },
        { VIDEO_FORMAT_VP8, V4L2_PIX_FMT_VP8 },
        { VIDEO_FORMAT_VP9, V4L2_PIX_FMT_VP9 },
        { VIDEO_FORMAT_FWHT, V4L2_PIX_FMT_FWHT },
        /* Multi-planar (non-contiguous) variants, from the device only. */
        { VIDEO_FORMAT_NV12, V4L2_PIX_FMT_NV12M },
        { VIDEO_FORMAT_YUV420, V4L2_PIX_FMT_YUV420M },
        { VIDEO_FORMAT_YVU420, V4L2_PIX_FMT_YVU420M },
};

uint32_t v4l2_fourcc_from_format(uint32_t format) {
        for (size_t i = 0; i < ELEMENTSOF(format_map); i++)
                if (format_map[i].format == format)
                        return format_map[i].fourcc;
        return 0;
}

uint32_t v4l2_format_from_fourcc(uint32_t fourcc) {
        for (size_t i = 0; i < ELEMENTSOF(format_map); i++)
                if (format_map[i].fourcc == fourcc)
                        return format_map[i].format;
        return 0;
}

unsigned v4l2_format_color_planes(uint32_t format) {
        switch (format) {
        case VIDEO_FORMAT_NV12:
                return 2;
        case VIDEO_FORMAT_YUV420:
        case VIDEO_FORMAT_YVU420:
                return 3;
        default:
                return 1;
        }
}

uint32_t v4l2_cid_from_control(VideoControl control, uint32_t coded_format) {
        switch (control) {
        case VIDEO_CONTROL_BITRATE:
                return V4L2_CID_MPEG_VIDEO_BITRATE;
        case VIDEO_CONTROL_BITRATE_MODE:
                return V4L2_CID_MPEG_VIDEO_BITRATE_MODE;
        case VIDEO_CONTROL_BITRATE_PEAK:
                return V4L2_CID_MPEG_VIDEO_BITRATE_PEAK;
        case VIDEO_CONTROL_FORCE_KEYFRAME:
                return V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME;
        case VIDEO_CONTROL_PREPEND_SPSPPS_TO_IDR:
                return V4L2_CID_MPEG_VIDEO_PREPEND_SPSPPS_TO_IDR;
        case VIDEO_CONTROL_PROFILE:
                switch (coded_format) {
                case VIDEO_FORMAT_H264:
                        return V4L2_CID_MPEG_VIDEO_H264_PROFILE;
                case VIDEO_FORMAT_HEVC:
                        return V4L2_CID_MPEG_VIDEO_HEVC_PROFILE;
                case VIDEO_FORMAT_VP8:
                        return V4L2_CID_MPEG_VIDEO_VP8_PROFILE;
                case VIDEO_FORMAT_VP9:
                        return V4L2_CID_MPEG_VIDEO_VP9_PROFILE;
                default:
                        return 0;
                }
        case VIDEO_CONTROL_LEVEL:
                /* §5.9: levels exist for H.264 only. */
                return coded_format == VIDEO_FORMAT_H264 ? V4L2_CID_MPEG_VIDEO_H264_LEVEL : 0;
        }
        return 0;
}

typedef struct MenuMap {
        uint32_t virtio;
        int32_t v4l2;
} MenuMap;

static const MenuMap h264_profiles[] = {
        { 0x100, V4L2_MPEG_VIDEO_H264_PROFILE_BASELINE },
        { 0x101, V4L2_MPEG_VIDEO_H264_PROFILE_MAIN },
        { 0x102, V4L2_MPEG_VIDEO_H264_PROFILE_EXTENDED },
        { 0x103, V4L2_MPEG_VIDEO_H264_PROFILE_HIGH },
        { 0x104, V4L2_MPEG_VIDEO_H264_PROFILE_HIGH_10 },
        { 0x105, V4L2_MPEG_VIDEO_H264_PROFILE_HIGH_422 },
        { 0x106, V4L2_MPEG_VIDEO_H264_PROFILE_HIGH_444_PREDICTIVE },
        { 0x107, V4L2_MPEG_VIDEO_H264_PROFILE_SCALABLE_BASELINE },
        { 0x108, V4L2_MPEG_VIDEO_H264_PROFILE_SCALABLE_HIGH },
        { 0x109, V4L2_MPEG_VIDEO_H264_PROFILE_STEREO_HIGH },
        { 0x10A, V4L2_MPEG_VIDEO_H264_PROFILE_MULTIVIEW_HIGH },
};

static const MenuMap hevc_profiles[] = {
        { 0x200, V4L2_MPEG_VIDEO_HEVC_PROFILE_MAIN },
        { 0x201, V4L2_MPEG_VIDEO_HEVC_PROFILE_MAIN_10 },
        { 0x202, V4L2_MPEG_VIDEO_HEVC_PROFILE_MAIN_STILL_PICTURE },
};

static const MenuMap vp8_profiles[] = {
        { 0x300, V4L2_MPEG_VIDEO_VP8_PROFILE_0 },
        { 0x301, V4L2_MPEG_VIDEO_VP8_PROFILE_1 },
        { 0x302, V4L2_MPEG_VIDEO_VP8_PROFILE_2 },
        { 0x303, V4L2_MPEG_VIDEO_VP8_PROFILE_3 },
};

static const MenuMap vp9_profiles[] = {
        { 0x400, V4L2_MPEG_VIDEO_VP9_PROFILE_0 },
        { 0x401, V4L2_MPEG_VIDEO_VP9_PROFILE_1 },
        { 0x402, V4L2_MPEG_VIDEO_VP9_PROFILE_2 },
        { 0x403, V4L2_MPEG_VIDEO_VP9_PROFILE_3 },
};

/* §5.9 has no level 1b. */
static const MenuMap h264_levels[] = {
        { 0x100, V4L2_MPEG_VIDEO_H264_LEVEL_1_0 }, { 0x101, V4L2_MPEG_VIDEO_H264_LEVEL_1_1 },
        { 0x102, V4L2_MPEG_VIDEO_H264_LEVEL_1_2 }, { 0x103, V4L2_MPEG_VIDEO_H264_LEVEL_1_3 },
        { 0x104, V4L2_MPEG_VIDEO_H264_LEVEL_2_0 }, { 0x105, V4L2_MPEG_VIDEO_H264_LEVEL_2_1 },
        { 0x106, V4L2_MPEG_VIDEO_H264_LEVEL_2_2 }, { 0x107, V4L2_MPEG_VIDEO_H264_LEVEL_3_0 },
        { 0x108, V4L2_MPEG_VIDEO_H264_LEVEL_3_1 }, { 0x109, V4L2_MPEG_VIDEO_H264_LEVEL_3_2 },
        { 0x10A, V4L2_MPEG_VIDEO_H264_LEVEL_4_0 }, { 0x10B, V4L2_MPEG_VIDEO_H264_LEVEL_4_1 },
        { 0x10C, V4L2_MPEG_VIDEO_H264_LEVEL_4_2 }, { 0x10D, V4L2_MPEG_VIDEO_H264_LEVEL_5_0 },
        { 0x10E, V4L2_MPEG_VIDEO_H264_LEVEL_5_1 },
};

static const MenuMap bitrate_modes[] = {
        { VIDEO_BITRATE_MODE_VBR, V4L2_MPEG_VIDEO_BITRATE_MODE_VBR },
        { VIDEO_BITRATE_MODE_CBR, V4L2_MPEG_VIDEO_BITRATE_MODE_CBR },
};

static const MenuMap *menu_for(VideoControl control, uint32_t coded_format, size_t *ret_n) {
#define RET(m)                          \
        ({                              \
                *ret_n = ELEMENTSOF(m); \
                m;                      \
        })
        switch (control) {
        case VIDEO_CONTROL_BITRATE_MODE:
                return RET(bitrate_modes);
        case VIDEO_CONTROL_LEVEL:
                return coded_format == VIDEO_FORMAT_H264 ? RET(h264_levels) : NULL;
        case VIDEO_CONTROL_PROFILE:
                switch (coded_format) {
                case VIDEO_FORMAT_H264:
                        return RET(h264_profiles);
                case VIDEO_FORMAT_HEVC:
                        return RET(hevc_profiles);
                case VIDEO_FORMAT_VP8:
                        return RET(vp8_profiles);
                case VIDEO_FORMAT_VP9:
                        return RET(vp9_profiles);
                default:
                        return NULL;
                }
        default:
                *ret_n = 0;
                return NULL;
        }
#undef RET
}

static bool control_is_menu(VideoControl c) {
        return c == VIDEO_CONTROL_BITRATE_MODE || c == VIDEO_CONTROL_LEVEL || c == VIDEO_CONTROL_PROFILE;
}

int v4l2_control_value_to_v4l2(VideoControl control, uint32_t coded_format, uint32_t value, int32_t *ret) {
        const MenuMap *m;
        size_t n = 0;

        if (!control_is_menu(control)) {
                if (control == VIDEO_CONTROL_FORCE_KEYFRAME ||
                    control == VIDEO_CONTROL_PREPEND_SPSPPS_TO_IDR)
                        value = !!value;
                else if (value > INT32_MAX) /* bitrates are s32 in V4L2 */
                        return -EINVAL;
                *ret = (int32_t) value;
                return 0;
        }
        m = menu_for(control, coded_format, &n);
        for (size_t i = 0; m && i < n; i++)
                if (m[i].virtio == value) {
                        *ret = m[i].v4l2;
                        return 0;
                }
        return -EINVAL;
}

int v4l2_control_value_from_v4l2(VideoControl control, uint32_t coded_format, int32_t value, uint32_t *ret) {
        const MenuMap *m;
        size_t n = 0;

        if (!control_is_menu(control)) {
                if (value < 0)
                        return -EINVAL;
                *ret = (uint32_t) value;
                return 0;
        }
        m = menu_for(control, coded_format, &n);
        for (size_t i = 0; m && i < n; i++)
                if (m[i].v4l2 == value) {
                        *ret = m[i].virtio;
                        return 0;
                }
        return -EINVAL;
}

void v4l2_params_from_format(const struct v4l2_format *f, bool mplane, VideoParams *p) {
        uint32_t fourcc, w, h, bpl, sizeimage, format, sum = 0;
        unsigned n;

        if (mplane) {
                const struct v4l2_pix_format_mplane *mp = &f->fmt.pix_mp;

                fourcc = mp->pixelformat;
                w = mp->width;
                h = mp->height;
                format = v4l2_format_from_fourcc(fourcc);
                if (mp->num_planes > 1) {
                        /* One memory plane per colour plane: take them as they are. */
                        n = MIN((unsigned) mp->num_planes, (unsigned) VIDEO_MAX_PLANES);
                        p->format = format;
                        p->frame_width = w;
                        p->frame_height = h;
                        p->num_planes = n;
                        for (unsigned i = 0; i < n; i++) {
                                p->planes[i].stride = mp->plane_fmt[i].bytesperline;
                                p->planes[i].plane_size = mp->plane_fmt[i].sizeimage;
                        }
                        return;
                }
                bpl = mp->plane_fmt[0].bytesperline;
                sizeimage = mp->plane_fmt[0].sizeimage;
        } else {
                fourcc = f->fmt.pix.pixelformat;
                w = f->fmt.pix.width;
                h = f->fmt.pix.height;
                format = v4l2_format_from_fourcc(fourcc);
                bpl = f->fmt.pix.bytesperline;
                sizeimage = f->fmt.pix.sizeimage;
        }

        p->format = format;
        p->frame_width = w;
        p->frame_height = h;
        n = v4l2_format_color_planes(format);
        p->num_planes = n;
        if (n == 1) {
                p->planes[0].stride = bpl;
                p->planes[0].plane_size = sizeimage;
                return;
        }
        for (unsigned i = 0; i < n; i++) {
                uint32_t stride = i == 0 || format == VIDEO_FORMAT_NV12 ? bpl : bpl / 2;
                uint32_t rows = i == 0 ? h : (h + 1) / 2;
                uint32_t size = stride * rows;

                if (size > sizeimage - sum)
                        size = sizeimage - sum;
                p->planes[i].stride = stride;
                p->planes[i].plane_size = size;
                sum += size;
        }
        /* Padding the driver asked for goes with the last plane. */
        p->planes[n - 1].plane_size += sizeimage - sum;
}
