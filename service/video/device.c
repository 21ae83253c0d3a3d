/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "common/iov.h"
#include "common/log.h"
#include "common/macro.h"
#include "vhost/vhost.h"
#include "video/device.h"
#include "video/model.h"
#include "video/virtio-video-proto.h"

/*
 * The glue between the vhost transport and the device model: commandq elements become model requests
 * (the element is the token; its memory reference keeps the guest buffers it translated mapped until it
 * is completed), eventq elements become event buffers, and model completions are written into the
 * element's writable segments and pushed.
 */

#define VIDEO_QUEUE_SIZE_MAX 1024u

struct VideoDevice {
        sd_event *event;
        Backend *backend;
        VhostDev *vhost;
        VideoModel *model;
        VideoDeviceOptions options;
        uid_t *allowed_uids;
        uint64_t features;
        struct virtio_video_config config;
        VideoDeviceStats stats;
};

static void model_complete(void *userdata, void *token, const void *resp, size_t len) {
        VideoDevice *d = userdata;
        VhostElem *elem = token;
        size_t written = 0;

        if (len > 0)
                written = buf_to_iov(elem->wr, elem->n_wr, 0, resp, len);
        if (written < len)
                log_debug("Response of %zu bytes truncated to the %zu writable bytes of the chain.", len,
                          elem->wr_len);
        unsigned queue = elem->queue;
        vhost_dev_push(d->vhost, elem, (uint32_t) written);
        vhost_dev_notify(d->vhost, queue);
}

static void model_drop(void *userdata, void *token) {
        vhost_elem_free(token);
}

static int model_translate(
        void *userdata, void *token, uint64_t gpa, uint64_t len, struct iovec *iov, unsigned max_iov) {
        VhostElem *elem = token;

        if (!elem->mem)
                return -EFAULT;
        return vhost_mem_translate(elem->mem, gpa, len, iov, max_iov);
}

static const VideoModelOps model_ops = {
        .complete = model_complete,
        .drop = model_drop,
        .translate = model_translate,
};

static void dev_handle_elem(void *userdata, VhostElem *elem) {
        VideoDevice *d = userdata;

        switch (elem->queue) {
        case VIRTIO_VIDEO_QUEUE_COMMAND:
                video_model_request(d->model, elem->rd, elem->n_rd, elem->wr_len, elem);
                break;
        case VIRTIO_VIDEO_QUEUE_EVENT:
                video_model_event_buffer(d->model, elem, elem->wr_len);
                break;
        default: /* the transport only has our two queues; complete it anyway */
                vhost_dev_push(d->vhost, elem, 0);
                break;
        }
}

static int dev_get_config(void *userdata, uint32_t offset, void *buf, uint32_t size) {
        VideoDevice *d = userdata;

        if (offset > sizeof(d->config) || size > sizeof(d->config) - offset)
                return -EINVAL;
        memcpy(buf, (const uint8_t *) &d->config + offset, size);
        return 0;
}

static int dev_set_config(void *userdata, uint32_t offset, const void *buf, uint32_t size) {
        /* The config space is read-only (§1.3). */
        return -EPERM;
}

static void dev_set_features(void *userdata, uint64_t device_features) {
        VideoDevice *d = userdata;

        d->features = device_features;
        log_debug("Negotiated virtio-video features 0x%" PRIx64, device_features);
}

static void dev_reset(void *userdata) {
        VideoDevice *d = userdata;

        log_debug("Device reset: dropping all streams.");
        if (d->model)
                video_model_reset(d->model);
}

static void dev_queue_state(void *userdata, unsigned queue, bool started) {
        /* Stream state survives a ring stop/start (VM pause, vhost-user-backend.md §2.4); the transport
         * queues our completions while the ring is stopped. */
        log_debug("VQ=%u: %s", queue, started ? "started" : "stopped");
}

static void dev_peer(void *userdata, bool connected, bool accepted, const struct ucred *cred) {
        VideoDevice *d = userdata;

        if (connected && accepted)
                d->stats.connections++;
        else if (!connected)
                d->stats.disconnects++;
        if (d->options.peer)
                d->options.peer(d->options.userdata, connected, accepted, cred);
}

static const VhostDeviceOps vhost_ops = {
        .handle_elem = dev_handle_elem,
        .get_config = dev_get_config,
        .set_config = dev_set_config,
        .set_features = dev_set_features,
        .reset = dev_reset,
        .queue_state = dev_queue_state,
        .peer = dev_peer,
};

int video_device_new(sd_event *event,
                     Backend *backend,
                     const VideoDeviceOptions *options,
                     VideoDevice **ret) {
        VideoDevice *d;
        VhostDevConfig config;
        int r;

        if (!event || !backend || !ret)
                return -EINVAL;
        if (options && options->max_queue_size != 0 &&
            (options->max_queue_size > VIDEO_QUEUE_SIZE_MAX ||
             (options->max_queue_size & (options->max_queue_size - 1)) != 0))
                return -EINVAL;

        d = calloc(1, sizeof(*d));
        if (!d)
                return -ENOMEM;
        d->event = event;
        d->backend = backend;
        if (options)
                d->options = *options;
        if (d->options.n_allowed_uids > 0) {
                d->allowed_uids = calloc(d->options.n_allowed_uids, sizeof(uid_t));
                if (!d->allowed_uids) {
                        video_device_free(d);
                        return -ENOMEM;
                }
                memcpy(d->allowed_uids, d->options.allowed_uids, d->options.n_allowed_uids * sizeof(uid_t));
                d->options.allowed_uids = d->allowed_uids;
        }

        r = video_model_new(backend, &model_ops, d, &d->model);
        if (r < 0) {
                video_device_free(d);
                return r;
        }

        d->config = (struct virtio_video_config){
                .version = cpu_to_le32(0),
                .max_caps_length = cpu_to_le32(video_model_max_caps_length(d->model)),
                .max_resp_length = cpu_to_le32(video_model_max_resp_length(d->model)),
        };
        strncpy((char *) d->config.device_name, backend->ops->name, sizeof(d->config.device_name) - 1);

        config = (VhostDevConfig){
                .num_queues = VIRTIO_VIDEO_NUM_QUEUES,
                .max_queue_size = d->options.max_queue_size ?: VIDEO_QUEUE_SIZE_MAX,
                /* Scatter lists become iovecs and the backends copy, so non-contiguous buffers are fine. */
                .device_features = (1ULL << VIRTIO_VIDEO_F_RESOURCE_GUEST_PAGES) |
                                   (1ULL << VIRTIO_VIDEO_F_RESOURCE_NON_CONTIG),
                .config_size = sizeof(struct virtio_video_config),
                .allowed_uids = d->options.allowed_uids,
                .n_allowed_uids = d->options.n_allowed_uids,
        };
        r = vhost_dev_new(event, &config, &vhost_ops, d, &d->vhost);
        if (r < 0) {
                video_device_free(d);
                return log_error_errno(r, "Failed to set up the vhost-user transport: %m");
        }

        log_info("virtio-video %s device on backend '%s' (max_caps_length %" PRIu32 ").",
                 video_model_role(d->model) == VIDEO_ROLE_DECODER ? "decoder" : "encoder",
                 backend->ops->name, video_model_max_caps_length(d->model));
        *ret = d;
        return 0;
}

VideoDevice *video_device_free(VideoDevice *d) {
        if (!d)
                return NULL;
        /* Streams first: their held elements go back while the transport that owns the rings exists.
         * The transport's own teardown may call dev_reset() again, so the model goes last. */
        if (d->model)
                video_model_reset(d->model);
        d->vhost = vhost_dev_free(d->vhost);
        d->model = video_model_free(d->model);
        free(d->allowed_uids);
        free(d);
        return NULL;
}

VhostDev *video_device_get_vhost(VideoDevice *d) {
        return d->vhost;
}

uint32_t video_device_virtio_id(VideoDevice *d) {
        return video_model_role(d->model) == VIDEO_ROLE_DECODER ? VIDEO_DEVICE_ID_DECODER
                                                                : VIDEO_DEVICE_ID_ENCODER;
}

void video_device_get_stats(VideoDevice *d, VideoDeviceStats *ret) {
        *ret = d->stats;
        video_model_get_stats(d->model, ret);
}
