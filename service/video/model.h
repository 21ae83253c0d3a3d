/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * The virtio-video device model without the transport: streams, resources, params, controls, events
 * and the ordering rules of virtio-video-v3.md §7.7, driving one Backend. It sees requests as readable
 * bytes plus an opaque token (a VhostElem in the device, anything in tests) and hands responses back
 * through VideoModelOps, so it can be tested by feeding wire bytes and collecting wire bytes.
 *
 * Every request is answered exactly once through ops->complete(), possibly later (RESOURCE_QUEUE,
 * STREAM_DRAIN, QUEUE_CLEAR, RESOURCE_DESTROY_ALL with buffers in flight), except on reset/free where
 * held tokens go to ops->drop(). Completions for one stream come in the order §7.7 requires: cancelled
 * buffers before the reply of the command that cancelled them, the EOS buffer before the drain reply.
 */

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "backend/backend.h"
#include "video/device.h"

typedef struct VideoModel VideoModel;

typedef struct VideoModelOps {
        /* Completes a request (a command or an event buffer) with `len` response bytes. */
        void (*complete)(void *userdata, void *token, const void *resp, size_t len);
        /* Gives up a request without a completion (reset and free only). */
        void (*drop)(void *userdata, void *token);
        /* Translates guest memory [gpa, gpa + len) as the request `token` sees it (vhost_mem_translate()
         * semantics: segment count, -EFAULT, -E2BIG). The segments stay valid until `token` completes. */
        int (*translate)(void *userdata,
                         void *token,
                         uint64_t gpa,
                         uint64_t len,
                         struct iovec *iov,
                         unsigned max_iov);
} VideoModelOps;

/* Caps on what a guest can allocate (style.md §2.6). */
#define VIDEO_MODEL_MAX_STREAMS 32u
#define VIDEO_MODEL_MAX_RESOURCES 128u /* per queue of a stream */
/* Mem entries stored for all resources of the device: 16 MiB of host memory at most. */
#define VIDEO_MODEL_MAX_ENTRIES_TOTAL (1u << 20)
#define VIDEO_MODEL_MAX_EVENTS 256u    /* events waiting for an event buffer */
#define VIDEO_MODEL_MAX_EVENT_BUFFERS 1024u

/* The backend is borrowed. Fails with -EINVAL when its caps cannot be described on the wire. */
int video_model_new(Backend *backend, const VideoModelOps *ops, void *userdata, VideoModel **ret);
/* Frees every stream; held tokens go to ops->drop(). NULL-safe. */
VideoModel *video_model_free(VideoModel *m);

/* A commandq request: readable bytes and the capacity of its writable part. */
void video_model_request(
        VideoModel *m, const struct iovec *rd, unsigned n_rd, size_t resp_capacity, void *token);
/* An eventq buffer: held until an event needs it. */
void video_model_event_buffer(VideoModel *m, void *token, size_t capacity);
/* Drops all device state (driver reset, disconnect): streams freed, tokens dropped. */
void video_model_reset(VideoModel *m);

VideoRole video_model_role(VideoModel *m);
uint32_t video_model_max_caps_length(VideoModel *m);
uint32_t video_model_max_resp_length(VideoModel *m);
/* Fills the stream and guest-traffic counters (streams_created, active_streams, errors, bytes_*). */
void video_model_get_stats(VideoModel *m, VideoDeviceStats *ret);
