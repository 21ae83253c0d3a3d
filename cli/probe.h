/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

#include <stdint.h>
#include <stdio.h>

#include "cli/table.h"

/*
 * `videoctl probe`: connects to a device's vhost-user socket as a VMM would (the frontend library plays
 * QEMU and the guest driver), reads the capabilities, and decodes a short stream; prints a report (or
 * JSON). stream_file: a null-codec stream to decode, or NULL for a generated one when the device
 * decodes the null codec; other codecs report capabilities only unless a stream is given. stream_format:
 * the coded format of stream_file (0: the device's first input format).
 */
int probe_device(
        const char *socket_path, const char *stream_file, uint32_t stream_format, TableJson json, FILE *out);
/* "h264", "hevc", "vp8", "vp9", "mpeg2", "mpeg4", "fwht" to the virtio-video format; 0 if unknown. */
uint32_t probe_format_from_string(const char *s);
