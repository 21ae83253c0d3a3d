/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/iov.h"
#include "common/macro.h"
#include "video/command.h"
#include "video/virtio-video-proto.h"

int video_queue_from_wire(uint32_t queue_type) {
        switch (queue_type) {
        case VIRTIO_VIDEO_QUEUE_TYPE_INPUT:
                return VIDEO_QUEUE_INPUT;
        case VIRTIO_VIDEO_QUEUE_TYPE_OUTPUT:
                return VIDEO_QUEUE_OUTPUT;
        default:
                return -EINVAL;
        }
}

uint32_t video_queue_to_wire(VideoQueue q) {
        return q == VIDEO_QUEUE_INPUT ? VIRTIO_VIDEO_QUEUE_TYPE_INPUT : VIRTIO_VIDEO_QUEUE_TYPE_OUTPUT;
}

const char *video_queue_to_string(VideoQueue q) {
        return q == VIDEO_QUEUE_INPUT ? "input" : "output";
}

const char *video_cmd_type_to_string(uint32_t type) {
        switch (type) {
        case VIRTIO_VIDEO_CMD_QUERY_CAPABILITY:
                return "QUERY_CAPABILITY";
        case VIRTIO_VIDEO_CMD_STREAM_CREATE:
                return "STREAM_CREATE";
        case VIRTIO_VIDEO_CMD_STREAM_DESTROY:
                return "STREAM_DESTROY";
        case VIRTIO_VIDEO_CMD_STREAM_DRAIN:
                return "STREAM_DRAIN";
        case VIRTIO_VIDEO_CMD_RESOURCE_CREATE:
                return "RESOURCE_CREATE";
        case VIRTIO_VIDEO_CMD_RESOURCE_QUEUE:
                return "RESOURCE_QUEUE";
        case VIRTIO_VIDEO_CMD_RESOURCE_DESTROY_ALL:
                return "RESOURCE_DESTROY_ALL";
        case VIRTIO_VIDEO_CMD_QUEUE_CLEAR:
                return "QUEUE_CLEAR";
        case VIRTIO_VIDEO_CMD_GET_PARAMS:
                return "GET_PARAMS";
        case VIRTIO_VIDEO_CMD_SET_PARAMS:
                return "SET_PARAMS";
        case VIRTIO_VIDEO_CMD_QUERY_CONTROL:
                return "QUERY_CONTROL";
        case VIRTIO_VIDEO_CMD_GET_CONTROL:
                return "GET_CONTROL";
        case VIRTIO_VIDEO_CMD_SET_CONTROL:
                return "SET_CONTROL";
        case VIRTIO_VIDEO_CMD_GET_PARAMS_EXT:
                return "GET_PARAMS_EXT";
        case VIRTIO_VIDEO_CMD_SET_PARAMS_EXT:
                return "SET_PARAMS_EXT";
        default:
                return "unknown";
        }
}

uint32_t video_resp_from_errno(int r) {
        switch (r) {
        case -EINVAL:
        case -EFAULT:
        case -E2BIG:
        case -ERANGE:
        case -EMSGSIZE:
                return VIRTIO_VIDEO_RESP_ERR_INVALID_PARAMETER;
        case -ESRCH:
                return VIRTIO_VIDEO_RESP_ERR_INVALID_STREAM_ID;
        case -EBADSLT:
                return VIRTIO_VIDEO_RESP_ERR_INVALID_RESOURCE_ID;
        case -EOPNOTSUPP:
                return VIRTIO_VIDEO_RESP_ERR_UNSUPPORTED_CONTROL;
        case -ENOMEM:
        case -ENOSPC:
        case -EMFILE:
                return VIRTIO_VIDEO_RESP_ERR_OUT_OF_MEMORY;
        default: /* -ENOSYS, -EBUSY, -EBADMSG, -EPROTO and anything unexpected */
                return VIRTIO_VIDEO_RESP_ERR_INVALID_OPERATION;
        }
}

static int parse_control(uint32_t control) {
        switch (control) {
        case VIRTIO_VIDEO_CONTROL_BITRATE:
        case VIRTIO_VIDEO_CONTROL_PROFILE:
        case VIRTIO_VIDEO_CONTROL_LEVEL:
        case VIRTIO_VIDEO_CONTROL_FORCE_KEYFRAME:
        case VIRTIO_VIDEO_CONTROL_BITRATE_MODE:
        case VIRTIO_VIDEO_CONTROL_BITRATE_PEAK:
        case VIRTIO_VIDEO_CONTROL_PREPEND_SPSPPS_TO_IDR:
                return 0;
        default:
                return -EOPNOTSUPP;
        }
}

static int parse_mem_type(uint32_t t) {
        switch (t) {
        case VIRTIO_VIDEO_MEM_TYPE_GUEST_PAGES:
        case VIRTIO_VIDEO_MEM_TYPE_VIRTIO_OBJECT:
                return 0;
        default:
                return -EINVAL;
        }
}

static int parse_queue(le32 wire, VideoQueue *ret) {
        int q = video_queue_from_wire(le32_to_cpu(wire));
        if (q < 0)
                return q;
        *ret = (VideoQueue) q;
        return 0;
}

/* Fixed-size requests: exactly `size` readable bytes (the driver never sends more or less). */
static int read_fixed(const struct iovec *rd, unsigned n_rd, size_t rd_len, void *buf, size_t size) {
        if (rd_len != size)
                return -EINVAL;
        if (iov_to_buf(rd, n_rd, 0, buf, size) != size)
                return -EINVAL;
        return 0;
}

static void params_from_wire(const struct virtio_video_params *w, VideoParams *p) {
        *p = (VideoParams){
                .format = le32_to_cpu(w->format),
                .frame_width = le32_to_cpu(w->frame_width),
                .frame_height = le32_to_cpu(w->frame_height),
                .min_buffers = le32_to_cpu(w->min_buffers),
                .max_buffers = le32_to_cpu(w->max_buffers),
                .crop.left = le32_to_cpu(w->crop.left),
                .crop.top = le32_to_cpu(w->crop.top),
                .crop.width = le32_to_cpu(w->crop.width),
                .crop.height = le32_to_cpu(w->crop.height),
                .frame_rate = le32_to_cpu(w->frame_rate),
                .num_planes = le32_to_cpu(w->num_planes),
        };
        for (unsigned i = 0; i < VIDEO_MAX_PLANES; i++) {
                p->planes[i].plane_size = le32_to_cpu(w->plane_formats[i].plane_size);
                p->planes[i].stride = le32_to_cpu(w->plane_formats[i].stride);
        }
}

static int parse_set_params(const struct iovec *rd, unsigned n_rd, size_t rd_len, VideoCmd *c) {
        struct virtio_video_set_params_ext req = {};
        bool ext = c->type == VIRTIO_VIDEO_CMD_SET_PARAMS_EXT;
        size_t size =
                ext ? sizeof(struct virtio_video_set_params_ext) : sizeof(struct virtio_video_set_params);
        int r;

        r = read_fixed(rd, n_rd, rd_len, &req, size);
        if (r < 0)
                return r;
        r = parse_queue(req.params.base.queue_type, &c->set_params.queue);
        if (r < 0)
                return r;
        params_from_wire(&req.params.base, &c->set_params.params);
        if (c->set_params.params.num_planes > VIDEO_MAX_PLANES)
                return -EINVAL;
        c->set_params.ext = ext;
        if (ext) {
                c->set_params.resource_type = le32_to_cpu(req.params.resource_type);
                r = parse_mem_type(c->set_params.resource_type);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int parse_resource_create(const struct iovec *rd, unsigned n_rd, size_t rd_len, VideoCmd *c) {
        struct virtio_video_resource_create req;
        typeof(c->resource_create) *rc = &c->resource_create;
        size_t n;
        int r;

        /* The entries follow the fixed part, in the same or a separate descriptor (§4.5, 10.12): their
         * count comes from the readable length and is checked against num_entries[]. */
        if (rd_len < sizeof(req) || (rd_len - sizeof(req)) % sizeof(struct virtio_video_mem_entry) != 0)
                return -EINVAL;
        n = (rd_len - sizeof(req)) / sizeof(struct virtio_video_mem_entry);
        if (n == 0 || n > VIDEO_CMD_MAX_ENTRIES)
                return -EINVAL;
        if (iov_to_buf(rd, n_rd, 0, &req, sizeof(req)) != sizeof(req))
                return -EINVAL;

        r = parse_queue(req.queue_type, &rc->queue);
        if (r < 0)
                return r;
        rc->resource_id = le32_to_cpu(req.resource_id);
        rc->planes_layout = le32_to_cpu(req.planes_layout);
        if (rc->planes_layout != VIDEO_PLANES_LAYOUT_SINGLE_BUFFER &&
            rc->planes_layout != VIDEO_PLANES_LAYOUT_PER_PLANE)
                return -EINVAL;
        rc->num_planes = le32_to_cpu(req.num_planes);
        if (rc->num_planes < 1 || rc->num_planes > VIDEO_MAX_PLANES)
                return -EINVAL;

        rc->sum_entries = 0;
        for (unsigned i = 0; i < VIDEO_MAX_PLANES; i++) {
                rc->plane_offsets[i] = i < rc->num_planes ? le32_to_cpu(req.plane_offsets[i]) : 0;
                rc->num_entries[i] = i < rc->num_planes ? le32_to_cpu(req.num_entries[i]) : 0;
                if (rc->num_entries[i] > VIDEO_CMD_MAX_ENTRIES)
                        return -EINVAL;
                rc->sum_entries += rc->num_entries[i]; /* <= 8 * 16384: no overflow */
        }
        /* Guest pages: exactly sum(num_entries) entries. Virtio objects: the driver sends one entry for
         * N planes (10.11). The device model checks which applies to the stream's memory type. */
        if (n != rc->sum_entries && n != 1)
                return -EINVAL;

        rc->entries = calloc(n, sizeof(VideoMemEntry));
        if (!rc->entries)
                return -ENOMEM;
        rc->n_entries = n;
        for (size_t i = 0; i < n; i++) {
                struct virtio_video_mem_entry e;
                uint64_t end;

                if (iov_to_buf(rd, n_rd, sizeof(req) + i * sizeof(e), &e, sizeof(e)) != sizeof(e))
                        return -EINVAL;
                rc->entries[i].addr = le64_to_cpu(e.addr);
                rc->entries[i].length = le32_to_cpu(e.length);
                /* Object entries are UUIDs: the address checks happen where the memory type is known. */
                if (__builtin_add_overflow(rc->entries[i].addr, (uint64_t) rc->entries[i].length, &end))
                        return -EINVAL;
        }
        return 0;
}

static int parse_body(const struct iovec *rd, unsigned n_rd, size_t rd_len, VideoCmd *c) {
        int r;

        switch (c->type) {
        case VIRTIO_VIDEO_CMD_QUERY_CAPABILITY:
        case VIRTIO_VIDEO_CMD_RESOURCE_DESTROY_ALL:
        case VIRTIO_VIDEO_CMD_QUEUE_CLEAR:
        case VIRTIO_VIDEO_CMD_GET_PARAMS:
        case VIRTIO_VIDEO_CMD_GET_PARAMS_EXT: {
                struct virtio_video_get_params req; /* the common 16-byte {hdr, queue_type, pad} */

                r = read_fixed(rd, n_rd, rd_len, &req, sizeof(req));
                if (r < 0)
                        return r;
                c->get_params_ext = c->type == VIRTIO_VIDEO_CMD_GET_PARAMS_EXT;
                return parse_queue(req.queue_type, &c->queue.queue);
        }
        case VIRTIO_VIDEO_CMD_STREAM_CREATE: {
                struct virtio_video_stream_create req;

                r = read_fixed(rd, n_rd, rd_len, &req, sizeof(req));
                if (r < 0)
                        return r;
                c->stream_create.in_mem_type = le32_to_cpu(req.in_mem_type);
                c->stream_create.out_mem_type = le32_to_cpu(req.out_mem_type);
                c->stream_create.coded_format = le32_to_cpu(req.coded_format);
                for (size_t i = 0; i < sizeof(req.tag); i++) {
                        uint8_t ch = req.tag[i];
                        if (ch == 0)
                                break;
                        c->stream_create.tag[i] = ch >= 0x20 && ch < 0x7f ? (char) ch : '?';
                }
                r = parse_mem_type(c->stream_create.in_mem_type);
                if (r < 0)
                        return r;
                r = parse_mem_type(c->stream_create.out_mem_type);
                if (r < 0)
                        return r;
                if (!video_format_is_coded(c->stream_create.coded_format))
                        return -EINVAL;
                return 0;
        }
        case VIRTIO_VIDEO_CMD_STREAM_DESTROY:
        case VIRTIO_VIDEO_CMD_STREAM_DRAIN:
                return rd_len == sizeof(struct virtio_video_cmd_hdr) ? 0 : -EINVAL;
        case VIRTIO_VIDEO_CMD_RESOURCE_CREATE:
                return parse_resource_create(rd, n_rd, rd_len, c);
        case VIRTIO_VIDEO_CMD_RESOURCE_QUEUE: {
                struct virtio_video_resource_queue req;

                r = read_fixed(rd, n_rd, rd_len, &req, sizeof(req));
                if (r < 0)
                        return r;
                r = parse_queue(req.queue_type, &c->resource_queue.queue);
                if (r < 0)
                        return r;
                c->resource_queue.resource_id = le32_to_cpu(req.resource_id);
                c->resource_queue.timestamp = le64_to_cpu(req.timestamp);
                c->resource_queue.num_data_sizes = le32_to_cpu(req.num_data_sizes);
                if (c->resource_queue.num_data_sizes > VIDEO_MAX_PLANES)
                        return -EINVAL;
                for (unsigned i = 0; i < c->resource_queue.num_data_sizes; i++)
                        c->resource_queue.data_sizes[i] = le32_to_cpu(req.data_sizes[i]);
                return 0;
        }
        case VIRTIO_VIDEO_CMD_SET_PARAMS:
        case VIRTIO_VIDEO_CMD_SET_PARAMS_EXT:
                return parse_set_params(rd, n_rd, rd_len, c);
        case VIRTIO_VIDEO_CMD_QUERY_CONTROL: {
                struct virtio_video_query_control req;

                r = read_fixed(rd, n_rd, rd_len, &req, sizeof(req));
                if (r < 0)
                        return r;
                c->query_control.control = le32_to_cpu(req.control);
                c->query_control.format = le32_to_cpu(req.format);
                return parse_control(c->query_control.control);
        }
        case VIRTIO_VIDEO_CMD_GET_CONTROL: {
                struct virtio_video_get_control req;

                r = read_fixed(rd, n_rd, rd_len, &req, sizeof(req));
                if (r < 0)
                        return r;
                c->get_control.control = le32_to_cpu(req.control);
                return parse_control(c->get_control.control);
        }
        case VIRTIO_VIDEO_CMD_SET_CONTROL: {
                struct virtio_video_set_control req = {};

                /* 16 bytes for FORCE_KEYFRAME (no value block), 24 for the rest (§4.13). */
                if (rd_len != sizeof(req) && rd_len != VIRTIO_VIDEO_SET_CONTROL_NOVALUE_SIZE)
                        return -EINVAL;
                if (iov_to_buf(rd, n_rd, 0, &req, rd_len) != rd_len)
                        return -EINVAL;
                c->set_control.control = le32_to_cpu(req.control);
                r = parse_control(c->set_control.control);
                if (r < 0)
                        return r;
                if (c->set_control.control == VIRTIO_VIDEO_CONTROL_FORCE_KEYFRAME) {
                        c->set_control.value = 0;
                        return 0;
                }
                if (rd_len != sizeof(req))
                        return -EINVAL;
                c->set_control.value = le32_to_cpu(req.value);
                return 0;
        }
        default:
                return -ENOSYS;
        }
}

int video_cmd_parse(const struct iovec *rd, unsigned n_rd, VideoCmd *ret) {
        struct virtio_video_cmd_hdr hdr;
        size_t rd_len = iov_size(rd, n_rd);
        int r;

        *ret = (VideoCmd){};
        if (rd_len < sizeof(hdr) || iov_to_buf(rd, n_rd, 0, &hdr, sizeof(hdr)) != sizeof(hdr))
                return -EINVAL;
        ret->type = le32_to_cpu(hdr.type);
        ret->stream_id = le32_to_cpu(hdr.stream_id);

        r = parse_body(rd, n_rd, rd_len, ret);
        if (r < 0) {
                uint32_t type = ret->type, stream_id = ret->stream_id;

                video_cmd_done(ret);
                ret->type = type;
                ret->stream_id = stream_id;
                return r;
        }
        return 0;
}

void video_cmd_done(VideoCmd *cmd) {
        if (!cmd)
                return;
        if (cmd->type == VIRTIO_VIDEO_CMD_RESOURCE_CREATE)
                free(cmd->resource_create.entries);
        *cmd = (VideoCmd){};
}
