/* SPDX-License-Identifier: GPL-2.0-or-later */

/* The virtio-video <-> V4L2 maps of backend/v4l2/v4l2-formats.c (virtio-video-v3.md §5.1, §5.7-§5.10). */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <linux/videodev2.h>

#include "backend/v4l2/v4l2-formats.h"
#include "common/macro.h"

static const struct {
        uint32_t format, fourcc;
} formats[] = {
        { VIDEO_FORMAT_ARGB8888, v4l2_fourcc('B', 'A', '2', '4') },
        { VIDEO_FORMAT_BGRA8888, v4l2_fourcc('A', 'R', '2', '4') },
        { VIDEO_FORMAT_NV12, v4l2_fourcc('N', 'V', '1', '2') },
        { VIDEO_FORMAT_YUV420, v4l2_fourcc('Y', 'U', '1', '2') },
        { VIDEO_FORMAT_YVU420, v4l2_fourcc('Y', 'V', '1', '2') },
        { VIDEO_FORMAT_MPEG2, v4l2_fourcc('M', 'P', 'G', '2') },
        { VIDEO_FORMAT_MPEG4, v4l2_fourcc('M', 'P', 'G', '4') },
        { VIDEO_FORMAT_H264, v4l2_fourcc('H', '2', '6', '4') },
        { VIDEO_FORMAT_HEVC, v4l2_fourcc('H', 'E', 'V', 'C') },
        { VIDEO_FORMAT_VP8, v4l2_fourcc('V', 'P', '8', '0') },
        { VIDEO_FORMAT_VP9, v4l2_fourcc('V', 'P', '9', '0') },
        { VIDEO_FORMAT_FWHT, v4l2_fourcc('F', 'W', 'H', 'T') },
};

static void test_format_map_both_ways(void **state) {
        for (size_t i = 0; i < ELEMENTSOF(formats); i++) {
                assert_int_equal(v4l2_fourcc_from_format(formats[i].format), formats[i].fourcc);
                assert_int_equal(v4l2_format_from_fourcc(formats[i].fourcc), formats[i].format);
        }
}

static void test_format_map_multiplanar_variants_and_unknown(void **state) {
        assert_int_equal(v4l2_format_from_fourcc(V4L2_PIX_FMT_NV12M), VIDEO_FORMAT_NV12);
        assert_int_equal(v4l2_format_from_fourcc(V4L2_PIX_FMT_YUV420M), VIDEO_FORMAT_YUV420);
        assert_int_equal(v4l2_format_from_fourcc(V4L2_PIX_FMT_YVU420M), VIDEO_FORMAT_YVU420);
        /* The contiguous fourcc is the one we ask for. */
        assert_int_equal(v4l2_fourcc_from_format(VIDEO_FORMAT_NV12), V4L2_PIX_FMT_NV12);
        /* rust-vmm's "ABGR" is no V4L2 fourcc (§5.1): nothing maps to it. */
        assert_int_equal(v4l2_format_from_fourcc(v4l2_fourcc('A', 'B', 'G', 'R')), 0);
        assert_int_equal(v4l2_format_from_fourcc(V4L2_PIX_FMT_MJPEG), 0);
        assert_int_equal(v4l2_format_from_fourcc(0), 0);
        assert_int_equal(v4l2_fourcc_from_format(0), 0);
        assert_int_equal(v4l2_fourcc_from_format(6), 0);
        assert_int_equal(v4l2_fourcc_from_format(0x1007), 0);
        assert_int_equal(v4l2_format_color_planes(VIDEO_FORMAT_NV12), 2);
        assert_int_equal(v4l2_format_color_planes(VIDEO_FORMAT_YVU420), 3);
        assert_int_equal(v4l2_format_color_planes(VIDEO_FORMAT_ARGB8888), 1);
        assert_int_equal(v4l2_format_color_planes(VIDEO_FORMAT_H264), 1);
}

static void test_control_cids(void **state) {
        assert_int_equal(v4l2_cid_from_control(VIDEO_CONTROL_BITRATE, 0), V4L2_CID_MPEG_VIDEO_BITRATE);
        assert_int_equal(v4l2_cid_from_control(VIDEO_CONTROL_BITRATE_MODE, 0),
                         V4L2_CID_MPEG_VIDEO_BITRATE_MODE);
        assert_int_equal(v4l2_cid_from_control(VIDEO_CONTROL_BITRATE_PEAK, 0),
                         V4L2_CID_MPEG_VIDEO_BITRATE_PEAK);
        assert_int_equal(v4l2_cid_from_control(VIDEO_CONTROL_FORCE_KEYFRAME, 0),
                         V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME);
        assert_int_equal(v4l2_cid_from_control(VIDEO_CONTROL_PREPEND_SPSPPS_TO_IDR, 0),
                         V4L2_CID_MPEG_VIDEO_PREPEND_SPSPPS_TO_IDR);
        assert_int_equal(v4l2_cid_from_control(VIDEO_CONTROL_PROFILE, VIDEO_FORMAT_H264),
                         V4L2_CID_MPEG_VIDEO_H264_PROFILE);
        assert_int_equal(v4l2_cid_from_control(VIDEO_CONTROL_PROFILE, VIDEO_FORMAT_HEVC),
                         V4L2_CID_MPEG_VIDEO_HEVC_PROFILE);
        assert_int_equal(v4l2_cid_from_control(VIDEO_CONTROL_PROFILE, VIDEO_FORMAT_VP8),
                         V4L2_CID_MPEG_VIDEO_VP8_PROFILE);
        assert_int_equal(v4l2_cid_from_control(VIDEO_CONTROL_PROFILE, VIDEO_FORMAT_VP9),
                         V4L2_CID_MPEG_VIDEO_VP9_PROFILE);
        assert_int_equal(v4l2_cid_from_control(VIDEO_CONTROL_PROFILE, VIDEO_FORMAT_FWHT), 0);
        assert_int_equal(v4l2_cid_from_control(VIDEO_CONTROL_LEVEL, VIDEO_FORMAT_H264),
                         V4L2_CID_MPEG_VIDEO_H264_LEVEL);
        assert_int_equal(v4l2_cid_from_control(VIDEO_CONTROL_LEVEL, VIDEO_FORMAT_HEVC), 0);
        assert_int_equal(v4l2_cid_from_control((VideoControl) 99, VIDEO_FORMAT_H264), 0);
}

static void test_h264_profiles_and_levels(void **state) {
        static const int32_t profiles[] = {
                V4L2_MPEG_VIDEO_H264_PROFILE_BASELINE,
                V4L2_MPEG_VIDEO_H264_PROFILE_MAIN,
                V4L2_MPEG_VIDEO_H264_PROFILE_EXTENDED,
                V4L2_MPEG_VIDEO_H264_PROFILE_HIGH,
                V4L2_MPEG_VIDEO_H264_PROFILE_HIGH_10,
                V4L2_MPEG_VIDEO_H264_PROFILE_HIGH_422,
                V4L2_MPEG_VIDEO_H264_PROFILE_HIGH_444_PREDICTIVE,
                V4L2_MPEG_VIDEO_H264_PROFILE_SCALABLE_BASELINE,
                V4L2_MPEG_VIDEO_H264_PROFILE_SCALABLE_HIGH,
                V4L2_MPEG_VIDEO_H264_PROFILE_STEREO_HIGH,
                V4L2_MPEG_VIDEO_H264_PROFILE_MULTIVIEW_HIGH,
        };
        int32_t v;
        uint32_t u;

        for (uint32_t i = 0; i < ELEMENTSOF(profiles); i++) {
                assert_int_equal(v4l2_control_value_to_v4l2(VIDEO_CONTROL_PROFILE, VIDEO_FORMAT_H264,
                                                            0x100 + i, &v),
                                 0);
                assert_int_equal(v, profiles[i]);
                assert_int_equal(v4l2_control_value_from_v4l2(VIDEO_CONTROL_PROFILE, VIDEO_FORMAT_H264, v,
                                                              &u),
                                 0);
                assert_int_equal(u, 0x100 + i);
        }
        /* V4L2 items with no virtio counterpart. */
        assert_int_equal(v4l2_control_value_from_v4l2(VIDEO_CONTROL_PROFILE, VIDEO_FORMAT_H264,
                                                      V4L2_MPEG_VIDEO_H264_PROFILE_CONSTRAINED_BASELINE, &u),
                         -EINVAL);
        assert_int_equal(v4l2_control_value_to_v4l2(VIDEO_CONTROL_PROFILE, VIDEO_FORMAT_H264, 0x10B, &v),
                         -EINVAL);
        assert_int_equal(v4l2_control_value_to_v4l2(VIDEO_CONTROL_PROFILE, VIDEO_FORMAT_H264, 0x200, &v),
                         -EINVAL);

        /* §5.9: 0x100 = 1.0 ... 0x10E = 5.1, no 1b. */
        assert_int_equal(v4l2_control_value_to_v4l2(VIDEO_CONTROL_LEVEL, VIDEO_FORMAT_H264, 0x100, &v), 0);
        assert_int_equal(v, V4L2_MPEG_VIDEO_H264_LEVEL_1_0);
        assert_int_equal(v4l2_control_value_to_v4l2(VIDEO_CONTROL_LEVEL, VIDEO_FORMAT_H264, 0x101, &v), 0);
        assert_int_equal(v, V4L2_MPEG_VIDEO_H264_LEVEL_1_1);
        assert_int_equal(v4l2_control_value_to_v4l2(VIDEO_CONTROL_LEVEL, VIDEO_FORMAT_H264, 0x107, &v), 0);
        assert_int_equal(v, V4L2_MPEG_VIDEO_H264_LEVEL_3_0);
        assert_int_equal(v4l2_control_value_to_v4l2(VIDEO_CONTROL_LEVEL, VIDEO_FORMAT_H264, 0x10E, &v), 0);
        assert_int_equal(v, V4L2_MPEG_VIDEO_H264_LEVEL_5_1);
        assert_int_equal(v4l2_control_value_to_v4l2(VIDEO_CONTROL_LEVEL, VIDEO_FORMAT_H264, 0x10F, &v),
                         -EINVAL);
        assert_int_equal(v4l2_control_value_from_v4l2(VIDEO_CONTROL_LEVEL, VIDEO_FORMAT_H264,
                                                      V4L2_MPEG_VIDEO_H264_LEVEL_1B, &u),
                         -EINVAL);
        assert_int_equal(v4l2_control_value_from_v4l2(VIDEO_CONTROL_LEVEL, VIDEO_FORMAT_H264,
                                                      V4L2_MPEG_VIDEO_H264_LEVEL_4_2, &u),
                         0);
        assert_int_equal(u, 0x10C);
        assert_int_equal(v4l2_control_value_to_v4l2(VIDEO_CONTROL_LEVEL, VIDEO_FORMAT_VP8, 0x100, &v),
                         -EINVAL);
}

static void test_other_profiles(void **state) {
        int32_t v;
        uint32_t u;

        assert_int_equal(v4l2_control_value_to_v4l2(VIDEO_CONTROL_PROFILE, VIDEO_FORMAT_HEVC, 0x201, &v), 0);
        assert_int_equal(v, V4L2_MPEG_VIDEO_HEVC_PROFILE_MAIN_10);
        assert_int_equal(v4l2_control_value_to_v4l2(VIDEO_CONTROL_PROFILE, VIDEO_FORMAT_HEVC, 0x202, &v), 0);
        assert_int_equal(v, V4L2_MPEG_VIDEO_HEVC_PROFILE_MAIN_STILL_PICTURE);
        assert_int_equal(v4l2_control_value_to_v4l2(VIDEO_CONTROL_PROFILE, VIDEO_FORMAT_VP8, 0x303, &v), 0);
        assert_int_equal(v, V4L2_MPEG_VIDEO_VP8_PROFILE_3);
        assert_int_equal(v4l2_control_value_from_v4l2(VIDEO_CONTROL_PROFILE, VIDEO_FORMAT_VP9,
                                                      V4L2_MPEG_VIDEO_VP9_PROFILE_2, &u),
                         0);
        assert_int_equal(u, 0x402);
        /* A profile of another codec is not one of this codec's. */
        assert_int_equal(v4l2_control_value_to_v4l2(VIDEO_CONTROL_PROFILE, VIDEO_FORMAT_VP9, 0x300, &v),
                         -EINVAL);
        assert_int_equal(v4l2_control_value_to_v4l2(VIDEO_CONTROL_PROFILE, VIDEO_FORMAT_MPEG2, 0x100, &v),
                         -EINVAL);
}

static void test_plain_controls(void **state) {
        int32_t v;
        uint32_t u;

        assert_int_equal(v4l2_control_value_to_v4l2(VIDEO_CONTROL_BITRATE_MODE, 0, VIDEO_BITRATE_MODE_CBR,
                                                    &v),
                         0);
        assert_int_equal(v, V4L2_MPEG_VIDEO_BITRATE_MODE_CBR);
        assert_int_equal(v4l2_control_value_to_v4l2(VIDEO_CONTROL_BITRATE_MODE, 0, VIDEO_BITRATE_MODE_VBR,
                                                    &v),
                         0);
        assert_int_equal(v, V4L2_MPEG_VIDEO_BITRATE_MODE_VBR);
        assert_int_equal(v4l2_control_value_to_v4l2(VIDEO_CONTROL_BITRATE_MODE, 0, 2, &v), -EINVAL);
        assert_int_equal(v4l2_control_value_from_v4l2(VIDEO_CONTROL_BITRATE_MODE, 0,
                                                      V4L2_MPEG_VIDEO_BITRATE_MODE_CQ, &u),
                         -EINVAL);
        assert_int_equal(v4l2_control_value_to_v4l2(VIDEO_CONTROL_BITRATE, 0, 4000000, &v), 0);
        assert_int_equal(v, 4000000);
        /* V4L2 bitrates are s32. */
        assert_int_equal(v4l2_control_value_to_v4l2(VIDEO_CONTROL_BITRATE, 0, 0x80000000u, &v), -EINVAL);
        assert_int_equal(v4l2_control_value_from_v4l2(VIDEO_CONTROL_BITRATE_PEAK, 0, -1, &u), -EINVAL);
        assert_int_equal(v4l2_control_value_to_v4l2(VIDEO_CONTROL_FORCE_KEYFRAME, 0, 7, &v), 0);
        assert_int_equal(v, 1);
        assert_int_equal(v4l2_control_value_to_v4l2(VIDEO_CONTROL_PREPEND_SPSPPS_TO_IDR, 0, 0, &v), 0);
        assert_int_equal(v, 0);
}

static void test_params_from_single_plane_formats(void **state) {
        struct v4l2_format f = { .type = V4L2_BUF_TYPE_VIDEO_CAPTURE };
        VideoParams p = {};

        f.fmt.pix = (struct v4l2_pix_format){ .pixelformat = V4L2_PIX_FMT_NV12,
                                              .width = 100,
                                              .height = 50,
                                              .bytesperline = 128,
                                              .sizeimage = 128 * 50 * 3 / 2 + 64 };
        v4l2_params_from_format(&f, false, &p);
        assert_int_equal(p.format, VIDEO_FORMAT_NV12);
        assert_int_equal(p.frame_width, 100);
        assert_int_equal(p.num_planes, 2);
        assert_int_equal(p.planes[0].stride, 128);
        assert_int_equal(p.planes[0].plane_size, 128 * 50);
        assert_int_equal(p.planes[1].stride, 128);
        assert_int_equal(p.planes[1].plane_size,
                         128 * 25 + 64); /* driver padding goes with the last plane */

        memset(&p, 0, sizeof(p));
        f.type = V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE;
        f.fmt.pix_mp = (struct v4l2_pix_format_mplane){
                .pixelformat = V4L2_PIX_FMT_YVU420, .width = 64, .height = 30, .num_planes = 1
        };
        f.fmt.pix_mp.plane_fmt[0].bytesperline = 64;
        f.fmt.pix_mp.plane_fmt[0].sizeimage = 64 * 30 * 3 / 2;
        v4l2_params_from_format(&f, true, &p);
        assert_int_equal(p.format, VIDEO_FORMAT_YVU420);
        assert_int_equal(p.num_planes, 3);
        assert_int_equal(p.planes[0].plane_size, 64 * 30);
        assert_int_equal(p.planes[1].stride, 32);
        assert_int_equal(p.planes[1].plane_size, 32 * 15);
        assert_int_equal(p.planes[2].plane_size, 32 * 15);

        /* A short sizeimage never makes the planes add up to more than it. */
        f.fmt.pix_mp.plane_fmt[0].sizeimage = 100;
        v4l2_params_from_format(&f, true, &p);
        assert_int_equal(p.planes[0].plane_size + p.planes[1].plane_size + p.planes[2].plane_size, 100);
}

static void test_params_from_multi_plane_and_coded(void **state) {
        struct v4l2_format f = { .type = V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE };
        VideoParams p = {};

        f.fmt.pix_mp = (struct v4l2_pix_format_mplane){
                .pixelformat = V4L2_PIX_FMT_NV12M, .width = 64, .height = 32, .num_planes = 2
        };
        f.fmt.pix_mp.plane_fmt[0] = (struct v4l2_plane_pix_format){ .sizeimage = 2048, .bytesperline = 64 };
        f.fmt.pix_mp.plane_fmt[1] = (struct v4l2_plane_pix_format){ .sizeimage = 1024, .bytesperline = 64 };
        v4l2_params_from_format(&f, true, &p);
        assert_int_equal(p.format, VIDEO_FORMAT_NV12);
        assert_int_equal(p.num_planes, 2);
        assert_int_equal(p.planes[1].plane_size, 1024);

        memset(&p, 0, sizeof(p));
        f.type = V4L2_BUF_TYPE_VIDEO_OUTPUT;
        f.fmt.pix = (struct v4l2_pix_format){ .pixelformat = V4L2_PIX_FMT_VP9, .sizeimage = 1 << 20 };
        v4l2_params_from_format(&f, false, &p);
        assert_int_equal(p.format, VIDEO_FORMAT_VP9);
        assert_int_equal(p.num_planes, 1);
        assert_int_equal(p.planes[0].plane_size, 1 << 20);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_format_map_both_ways),
                cmocka_unit_test(test_format_map_multiplanar_variants_and_unknown),
                cmocka_unit_test(test_control_cids),
                cmocka_unit_test(test_h264_profiles_and_levels),
                cmocka_unit_test(test_other_profiles),
                cmocka_unit_test(test_plain_controls),
                cmocka_unit_test(test_params_from_single_plane_formats),
                cmocka_unit_test(test_params_from_multi_plane_and_coded),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
