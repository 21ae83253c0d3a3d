/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>

#include <linux/videodev2.h>

#include "daemon/probe.h"

static void copy_field(char *dst, size_t dst_size, const uint8_t *src, size_t src_size) {
        size_t n = strnlen((const char *) src, src_size);

        if (n >= dst_size)
                n = dst_size - 1;
        memcpy(dst, src, n);
        dst[n] = 0;
        /* the kernel fills these, but a misbehaving driver must not put garbage into D-Bus strings */
        for (size_t i = 0; i < n; i++)
                if ((unsigned char) dst[i] < 0x20 || (unsigned char) dst[i] >= 0x7f)
                        dst[i] = '?';
}

/* True when the queue has at least one compressed format. */
static bool queue_has_compressed(int fd, uint32_t type) {
        for (uint32_t i = 0; i < 256; i++) {
                struct v4l2_fmtdesc d = { .index = i, .type = type };

                if (ioctl(fd, VIDIOC_ENUM_FMT, &d) < 0)
                        return false;
                if (d.flags & V4L2_FMT_FLAG_COMPRESSED)
                        return true;
        }
        return false;
}

static int v4l2_probe(void *userdata, int fd, const char *path, HostDeviceInfo *ret) {
        struct v4l2_capability cap = {};
        HostDeviceInfo info = {};
        uint32_t caps, out_type, cap_type;
        bool mplane;

        if (ioctl(fd, VIDIOC_QUERYCAP, &cap) < 0)
                return errno == ENOTTY || errno == EINVAL ? -ENOTTY : -errno;
        caps = (cap.capabilities & V4L2_CAP_DEVICE_CAPS) ? cap.device_caps : cap.capabilities;
        copy_field(info.driver, sizeof(info.driver), cap.driver, sizeof(cap.driver));
        copy_field(info.card, sizeof(info.card), cap.card, sizeof(cap.card));
        copy_field(info.bus_info, sizeof(info.bus_info), cap.bus_info, sizeof(cap.bus_info));
        info.device_caps = caps;
        info.m2m = caps & (V4L2_CAP_VIDEO_M2M | V4L2_CAP_VIDEO_M2M_MPLANE);
        if (info.m2m) {
                mplane = caps & V4L2_CAP_VIDEO_M2M_MPLANE;
                out_type = mplane ? V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE : V4L2_BUF_TYPE_VIDEO_OUTPUT;
                cap_type = mplane ? V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE : V4L2_BUF_TYPE_VIDEO_CAPTURE;
                /* stateful decoder: bitstream in on OUTPUT; encoder: bitstream out on CAPTURE */
                if (queue_has_compressed(fd, out_type))
                        info.roles |= HOST_ROLE_DECODER;
                if (queue_has_compressed(fd, cap_type))
                        info.roles |= HOST_ROLE_ENCODER;
        }
        *ret = info;
        return 0;
}

const HostProbe probe_v4l2 = {
        .probe = v4l2_probe,
};

const char *host_roles_to_string(unsigned roles) {
        switch (roles & (HOST_ROLE_DECODER | HOST_ROLE_ENCODER)) {
        case HOST_ROLE_DECODER:
                return "decoder";
        case HOST_ROLE_ENCODER:
                return "encoder";
        case HOST_ROLE_DECODER | HOST_ROLE_ENCODER:
                return "decoder,encoder";
        default:
                return "";
        }
}
