/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/* The named D-Bus errors of org.virtiovideo.video1 (management-plane.md §6.4): the one map, shared by the
 * daemon and videoctl, each registering it with sd_bus_error_add_map() so errno and name map both ways. */

#include <systemd/sd-bus.h>

#define BUS_ERROR_NO_SUCH_DEVICE "org.virtiovideo.video1.NoSuchDevice"
#define BUS_ERROR_DEVICE_EXISTS "org.virtiovideo.video1.DeviceExists"
#define BUS_ERROR_NO_SUCH_HOST_DEVICE "org.virtiovideo.video1.NoSuchHostDevice"
#define BUS_ERROR_HOST_DEVICE_NOT_ALLOWED "org.virtiovideo.video1.HostDeviceNotAllowed"
#define BUS_ERROR_NOT_A_CODEC "org.virtiovideo.video1.NotACodec"
#define BUS_ERROR_HOST_DEVICE_BUSY "org.virtiovideo.video1.HostDeviceBusy"
#define BUS_ERROR_DEVICE_CONNECTED "org.virtiovideo.video1.DeviceConnected"
#define BUS_ERROR_SOCKET_PATH_NOT_ALLOWED "org.virtiovideo.video1.SocketPathNotAllowed"
#define BUS_ERROR_SOCKET_PATH_TOO_LONG "org.virtiovideo.video1.SocketPathTooLong"
#define BUS_ERROR_UNSUPPORTED_PROTOCOL "org.virtiovideo.video1.UnsupportedProtocol"
#define BUS_ERROR_TOO_MANY_DEVICES "org.virtiovideo.video1.TooManyDevices"

extern const sd_bus_error_map bus_error_map_video1[];
