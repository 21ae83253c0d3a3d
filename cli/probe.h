/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

#include <stdio.h>

#include "cli/table.h"

/*
 * `videoctl probe`: connects to a device's vhost-user socket as a VMM would (the frontend library plays
 * QEMU and the guest driver), reads the capabilities, and decodes a short stream; prints a report (or
 * JSON). stream_file: a null-codec stream to decode, or NULL for a generated one when the device
 * decodes the null codec; other codecs report capabilities only unless a stream is given.
 */
int probe_device(const char *socket_path, const char *stream_file, TableJson json, FILE *out);
