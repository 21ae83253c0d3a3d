/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * The virtio-video command decoder: the one boundary between guest bytes and the device model
 * (style.md §2.6, crosvm's VideoCmd). A request's readable bytes are read once, as one byte stream
 * across descriptors, into a host-typed VideoCmd with every enum, count and size checked. Nothing
 * behind it touches wire structs of requests.
 *
 * Errors are negative errnos with a fixed meaning, turned into the guest's VIRTIO_VIDEO_RESP_ERR_* by
 * video_resp_from_errno() (crosvm's response.rs), the only place that mapping exists:
 *   -ENOSYS                      unknown command                  -> ERR_INVALID_OPERATION
 *   -EBUSY, -EBADMSG, -EPROTO    not allowed now / in this state  -> ERR_INVALID_OPERATION
 *   -EINVAL, -EFAULT, -E2BIG,
 *   -ERANGE, -EMSGSIZE           bad size, enum, count, address   -> ERR_INVALID_PARAMETER
 *   -ESRCH                       unknown or duplicate stream id   -> ERR_INVALID_STREAM_ID
 *   -EBADSLT                     unknown or duplicate resource id -> ERR_INVALID_RESOURCE_ID
 *   -EOPNOTSUPP                  control not supported            -> ERR_UNSUPPORTED_CONTROL
 *   -ENOMEM, -ENOSPC, -EMFILE    out of memory or over a cap      -> ERR_OUT_OF_MEMORY
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "backend/backend.h"

/* Caps on what one request may describe (style.md §2.6). A 4096x4096 NV12 frame in 4 KiB pages is
 * 6144 entries, so 16384 leaves room for a multi-plane buffer of that size. */
#define VIDEO_CMD_MAX_ENTRIES 16384u

typedef struct VideoMemEntry {
        uint64_t addr;
        uint32_t length;
} VideoMemEntry;

typedef struct VideoCmd {
        uint32_t type; /* VIRTIO_VIDEO_CMD_* */
        uint32_t stream_id;
        union {
                /* QUERY_CAPABILITY, RESOURCE_DESTROY_ALL, QUEUE_CLEAR, GET_PARAMS(_EXT) */
                struct {
                        VideoQueue queue;
                } queue;
                struct {
                        uint32_t in_mem_type, out_mem_type;
                        uint32_t coded_format;
                        char tag[65]; /* NUL-terminated copy, non-printable bytes replaced */
                } stream_create;
                struct {
                        VideoQueue queue;
                        uint32_t resource_id;
                        uint32_t planes_layout; /* exactly one VIDEO_PLANES_LAYOUT_* bit */
                        uint32_t num_planes;    /* 1..8 */
                        uint32_t plane_offsets[VIDEO_MAX_PLANES];
                        uint32_t num_entries[VIDEO_MAX_PLANES]; /* entries of planes >= num_planes are 0 */
                        uint32_t sum_entries;                   /* sum of num_entries[0..num_planes) */
                        unsigned n_entries;                     /* entries present: 1..MAX */
                        VideoMemEntry *entries;                 /* owned, see video_cmd_done() */
                } resource_create;
                struct {
                        VideoQueue queue;
                        uint32_t resource_id;
                        uint64_t timestamp;
                        uint32_t num_data_sizes; /* 0..8 */
                        uint32_t data_sizes[VIDEO_MAX_PLANES];
                } resource_queue;
                struct {
                        VideoQueue queue;
                        bool ext;               /* _EXT dialect (120-byte params) */
                        uint32_t resource_type; /* _EXT only, else 0 */
                        VideoParams params;     /* as the guest sent it (num_planes <= 8) */
                } set_params;
                struct {
                        uint32_t control; /* VideoControl 1..7 */
                        uint32_t format;
                } query_control;
                struct {
                        uint32_t control;
                } get_control;
                struct {
                        uint32_t control;
                        uint32_t value; /* 0 for FORCE_KEYFRAME */
                } set_control;
        };
        bool get_params_ext; /* GET_PARAMS_EXT: answer with the 128-byte form */
} VideoCmd;

/*
 * Parses a request. On success *ret is filled (release with video_cmd_done()). On failure returns one of
 * the errnos above and still fills ret->type/ret->stream_id with whatever the header said (0 when the
 * header itself is short), so an error reply can be logged against the stream.
 */
int video_cmd_parse(const struct iovec *rd, unsigned n_rd, VideoCmd *ret);
void video_cmd_done(VideoCmd *cmd);

/* Our errno convention -> VIRTIO_VIDEO_RESP_ERR_*. */
uint32_t video_resp_from_errno(int r);

const char *video_cmd_type_to_string(uint32_t type);
const char *video_queue_to_string(VideoQueue q);

/* Wire queue type <-> VideoQueue; -EINVAL for anything else. */
int video_queue_from_wire(uint32_t queue_type);
uint32_t video_queue_to_wire(VideoQueue q);
