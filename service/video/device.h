/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * The virtio-video v3 device model (virtio-video-v3.md): one VideoDevice per worker, serving one
 * vhost-user frontend at a time through the vhost/ transport it creates, and driving one codec Backend.
 * It parses and validates every command, keeps per-stream state (many streams per device), maps guest
 * resources through the vhost memory table, and enforces the ordering rules of §7.7.
 */

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

typedef struct sd_event sd_event;
typedef struct Backend Backend;
typedef struct VhostDev VhostDev;
typedef struct VideoDevice VideoDevice;

#define VIDEO_DEVICE_ID_ENCODER 30
#define VIDEO_DEVICE_ID_DECODER 31

typedef struct VideoDeviceOptions {
        /* Peer policy for the vhost-user socket (SO_PEERCRED): empty = any peer that can connect. */
        const uid_t *allowed_uids;
        unsigned n_allowed_uids;
        /* Virtqueue size limit offered to the frontend (power of two, <= 1024); 0 = 1024. */
        unsigned max_queue_size;
        /* Told about every frontend connect, refusal and disconnect (the worker forwards it to the
         * manager). Optional. */
        void (*peer)(void *userdata, bool connected, bool accepted, const struct ucred *cred);
        void *userdata;
} VideoDeviceOptions;

typedef struct VideoDeviceStats {
        uint64_t connections;
        uint64_t disconnects;
        uint64_t streams_created;
        uint32_t active_streams;
        uint64_t errors;    /* error responses and error events sent to the guest */
        uint64_t bytes_in;  /* payload the guest queued on input queues */
        uint64_t bytes_out; /* payload the device produced on output queues */
} VideoDeviceStats;

/* The backend is borrowed: it must outlive the device. The device kind (decoder or encoder) follows
 * from the backend's caps. */
int video_device_new(sd_event *event, Backend *backend, const VideoDeviceOptions *options, VideoDevice **ret);
VideoDevice *video_device_free(VideoDevice *d);

/* The transport, for the worker to listen on (vhost_dev_listen_fd() / _path() / _serve_fd()). */
VhostDev *video_device_get_vhost(VideoDevice *d);
/* VIDEO_DEVICE_ID_DECODER or VIDEO_DEVICE_ID_ENCODER. */
uint32_t video_device_virtio_id(VideoDevice *d);
void video_device_get_stats(VideoDevice *d, VideoDeviceStats *ret);
