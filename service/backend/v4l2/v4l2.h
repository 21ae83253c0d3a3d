/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * V4L2 stateful codec backends (dev-decoder.rst, dev-encoder.rst) on libv4l2, behind the device-ops seam
 * of v4l2-device.h. "v4l2-decoder" drives a node whose OUTPUT queue takes a coded format, "v4l2-encoder"
 * one whose CAPTURE queue produces one; the role is checked against the node's formats.
 *
 * Every stream opens its own instance (mem2mem context) of the node. Memory, chosen per stream and queue:
 * USERPTR on guest memory when the device accepts it (planes that are not one host range go through a
 * bounce buffer), else MMAP buffers and one copy; BackendConfig.force_copy forces MMAP.
 */

#include "backend/backend.h"
#include "backend/v4l2/v4l2-device.h"

extern const BackendOps backend_v4l2_decoder_ops;
extern const BackendOps backend_v4l2_encoder_ops;

/* For tests and embedders: a backend on any device-ops table. The node is freed with the backend only if
 * ops->node_free is set. config may be NULL (device_path and device_fd are then unused). */
int backend_v4l2_new_with_ops(const V4l2DeviceOps *ops,
                              void *node,
                              VideoRole role,
                              const BackendConfig *config,
                              sd_event *event,
                              Backend **ret);
