/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>

#include "common/macro.h"
#include "config.h"
#include "profiles.h"

/* Decoder output that is not 8-bit 4:2:0 (High 10/4:2:2/4:4:4, HEVC Main 10, VP9 profiles 1-3) is
 * converted by libswscale; without it those profiles are not offered. */
static const uint32_t h264_decoder_profiles[] = {
        VIDEO_PROFILE_H264_BASELINE,
        VIDEO_PROFILE_H264_MAIN,
        VIDEO_PROFILE_H264_EXTENDED,
        VIDEO_PROFILE_H264_HIGH,
#if HAVE_LIBSWSCALE
        0x104, /* HIGH10PROFILE */
        0x105, /* HIGH422PROFILE */
        0x106, /* HIGH444PREDICTIVEPROFILE */
#endif
};
static const uint32_t h264_encoder_profiles[] = {
        VIDEO_PROFILE_H264_BASELINE,
        VIDEO_PROFILE_H264_MAIN,
        VIDEO_PROFILE_H264_HIGH,
};
static const uint32_t hevc_decoder_profiles[] = {
        VIDEO_PROFILE_HEVC_MAIN,
#if HAVE_LIBSWSCALE
        0x201, /* MAIN10 */
#endif
        VIDEO_PROFILE_HEVC_MAIN_STILL_PICTURE,
};
static const uint32_t vp8_profiles[] = { 0x300, 0x301, 0x302, 0x303 };
static const uint32_t vp9_decoder_profiles[] = {
        VIDEO_PROFILE_VP9_PROFILE0,
#if HAVE_LIBSWSCALE
        0x401,
        0x402,
        0x403,
#endif
};
static const uint32_t vp9_encoder_profiles[] = { VIDEO_PROFILE_VP9_PROFILE0 };
/* level_idc of each VIDEO_LEVEL_H264_* in order (§5.9: no level 1b). */
static const uint8_t h264_level_idc[] = { 10, 11, 12, 13, 20, 21, 22, 30, 31, 32, 40, 41, 42, 50, 51 };
static const uint32_t h264_levels[] = { 0x100, 0x101, 0x102, 0x103, 0x104, 0x105, 0x106, 0x107,
                                        0x108, 0x109, 0x10A, 0x10B, 0x10C, 0x10D, 0x10E };
_Static_assert(ELEMENTSOF(h264_levels) == ELEMENTSOF(h264_level_idc), "one level_idc per level");

static int list_for(VideoControl control, uint32_t format, bool decoder, const uint32_t **ret_list) {
        if (control == VIDEO_CONTROL_LEVEL) {
                if (format != VIDEO_FORMAT_H264)
                        return -EOPNOTSUPP;
                *ret_list = h264_levels;
                return ELEMENTSOF(h264_levels);
        }
        if (control != VIDEO_CONTROL_PROFILE)
                return -EOPNOTSUPP;
        switch (format) {
        case VIDEO_FORMAT_H264:
                *ret_list = decoder ? h264_decoder_profiles : h264_encoder_profiles;
                return decoder ? (int) ELEMENTSOF(h264_decoder_profiles)
                               : (int) ELEMENTSOF(h264_encoder_profiles);
        case VIDEO_FORMAT_HEVC:
                *ret_list = hevc_decoder_profiles; /* no HEVC encoder is offered */
                return ELEMENTSOF(hevc_decoder_profiles);
        case VIDEO_FORMAT_VP8:
                *ret_list = vp8_profiles;
                return ELEMENTSOF(vp8_profiles);
        case VIDEO_FORMAT_VP9:
                *ret_list = decoder ? vp9_decoder_profiles : vp9_encoder_profiles;
                return decoder ? (int) ELEMENTSOF(vp9_decoder_profiles)
                               : (int) ELEMENTSOF(vp9_encoder_profiles);
        default:
                return -EOPNOTSUPP;
        }
}

int ff_profiles_list(VideoControl control, uint32_t format, bool decoder, uint32_t *values, unsigned max) {
        const uint32_t *list = NULL;
        int n = list_for(control, format, decoder, &list);

        if (n < 0)
                return n;
        n = MIN(n, (int) max);
        for (int i = 0; i < n; i++)
                values[i] = list[i];
        return n;
}

bool ff_profile_valid(VideoControl control, uint32_t format, bool decoder, uint32_t value) {
        const uint32_t *list = NULL;
        int n = list_for(control, format, decoder, &list);

        for (int i = 0; i < n; i++)
                if (list[i] == value)
                        return true;
        return false;
}

int ff_h264_level_idc(uint32_t level) {
        if (level < VIDEO_LEVEL_H264_1_0 || level > VIDEO_LEVEL_H264_5_1)
                return -EINVAL;
        return h264_level_idc[level - VIDEO_LEVEL_H264_1_0];
}
