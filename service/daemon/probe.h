/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * What the daemon needs to know about a host codec node (management-plane.md §6.2 ListHostDevices,
 * §6.6 Attach step 2), behind a small interface so tests can describe devices without V4L2 hardware.
 * The production implementation is probe_v4l2 (VIDIOC_QUERYCAP plus VIDIOC_ENUM_FMT on both queues).
 */

#include <stdbool.h>
#include <stdint.h>

#define HOST_ROLE_DECODER (1u << 0)
#define HOST_ROLE_ENCODER (1u << 1)

typedef struct HostDeviceInfo {
        char driver[32];
        char card[64];
        char bus_info[64];
        uint32_t device_caps;
        bool m2m;       /* a memory-to-memory node */
        unsigned roles; /* HOST_ROLE_* */
} HostDeviceInfo;

typedef struct HostProbe {
        /* Describes the node opened as fd (path is for messages). Returns 0, -ENOTTY when it is no V4L2
         * node, or another negative errno. Must not keep fd. */
        int (*probe)(void *userdata, int fd, const char *path, HostDeviceInfo *ret);
        void *userdata;
} HostProbe;

extern const HostProbe probe_v4l2;

/* "decoder", "encoder", "decoder,encoder" or "" for a role set; returns a static string. */
const char *host_roles_to_string(unsigned roles);
