/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * A fake V4L2 memory-to-memory codec behind the device-ops seam (service/backend/v4l2/v4l2-device.h),
 * as strict as a kernel driver about the stateful decoder and encoder interfaces (dev-decoder.rst,
 * dev-encoder.rst): calls in the wrong state fail with the kernel's errno, buffer counts and sizes are
 * checked, MMAP and USERPTR, multi- and single-planar APIs, SOURCE_CHANGE events, drain with the LAST
 * flag, and a pollable eventfd that is readable while something can be dequeued.
 *
 * The codec is the trivial "null frames" format of _notes/null-codec.md, offered as 'FWHT' (and 'H264'
 * for the encoder, same bytes): a 16-byte header ("VVNF", le16 width, le16 height, le32 payload size,
 * le32 sequence) and an I420 picture. The decoder writes pictures as YU12 or NV12 with
 * bytesperline = ALIGN(width, 16); the encoder does the reverse.
 *
 * Usage: node = fake_v4l2_new(&cfg); backend_v4l2_new_with_ops(&fake_v4l2_ops, node, role, ...).
 * fake_v4l2_ops has no node_free: the test frees the node after the backend.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend/v4l2/v4l2-device.h"

typedef struct FakeV4l2 FakeV4l2;

typedef struct FakeV4l2Config {
        bool encoder;
        bool mplane;             /* V4L2_CAP_VIDEO_M2M_MPLANE, else V4L2_CAP_VIDEO_M2M */
        bool userptr;            /* accepts V4L2_MEMORY_USERPTR (always MMAP) */
        unsigned max_instances;  /* 0: 64 */
        unsigned min_buffers;    /* decoder: V4L2_CID_MIN_BUFFERS_FOR_CAPTURE (0: 2) */
        bool last_with_frame;    /* a drain's final frame carries the LAST flag (no extra empty buffer) */
        bool userptr_qbuf_fails; /* REQBUFS takes USERPTR, QBUF refuses it with EFAULT (dma-contig) */
        bool mem_planes; /* mplane only: raw formats YU12M/NV12M, one memory plane per colour plane */
        /* Decoder: at a resolution change while CAPTURE streams, SOURCE_CHANGE becomes visible only once
         * the LAST buffer has been dequeued (vicodec raises both from a kworker, between any two of the
         * client's ioctls). */
        bool late_source_change;
} FakeV4l2Config;

typedef struct FakeV4l2Stats {
        unsigned qbuf_userptr, qbuf_mmap;
        unsigned source_changes;
        unsigned frames;       /* decoded or encoded */
        unsigned streamoff[2]; /* [0] OUTPUT, [1] CAPTURE */
        unsigned open_instances;
        unsigned active_maps;
        unsigned rejected; /* ioctls refused for the wrong state or arguments */
} FakeV4l2Stats;

extern const V4l2DeviceOps fake_v4l2_ops;

FakeV4l2 *fake_v4l2_new(const FakeV4l2Config *config);
FakeV4l2 *fake_v4l2_free(FakeV4l2 *f);

/* The next `count` calls of `request` (after `skip` successful ones) fail with -error. */
void fake_v4l2_fail_ioctl(FakeV4l2 *f, unsigned long request, int error, unsigned skip, unsigned count);
/* The device goes away: every call on every instance fails with ENODEV and the poll fds fire. */
void fake_v4l2_vanish(FakeV4l2 *f);
/* Decoder: from the next picture on, the stream needs `n` CAPTURE buffers (MIN_BUFFERS_FOR_CAPTURE):
 * a dynamic resolution change with the format unchanged (dev-decoder.rst). */
void fake_v4l2_change_min_buffers(FakeV4l2 *f, unsigned n);
/* Decoder: puts V4L2_BUF_FLAG_ERROR on the next decoded picture. */
void fake_v4l2_corrupt_next_frame(FakeV4l2 *f);
const FakeV4l2Stats *fake_v4l2_stats(FakeV4l2 *f);
/* The last value any instance was given for a control with S_CTRL (-ENOENT: never set), for checking
 * what a backend applied even after its stream is gone. */
int fake_v4l2_get_control(FakeV4l2 *f, uint32_t id, int32_t *ret);

/* Null frames, for tests: writes one coded frame of a w x h I420 picture (payload from `seed`) into
 * buf, returns its size (16 + w*h*3/2) or 0 when it does not fit. */
size_t fake_v4l2_make_frame(uint8_t *buf, size_t size, unsigned w, unsigned h, uint32_t seq, uint8_t seed);
/* The byte a picture made by fake_v4l2_make_frame() has at colour plane p (0 Y, 1 U, 2 V), x, y. */
uint8_t fake_v4l2_pixel(unsigned p, unsigned x, unsigned y, uint8_t seed);
