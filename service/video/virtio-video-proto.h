/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * virtio-video "v3" wire format, ChromeOS dialect (virtio-video-v3.md): both GET/SET_PARAMS forms
 * (0x0108/0x0109 with the 112-byte params, _EXT 0x010D/0x010E with the 120-byte params), the 0x03xx
 * error codes, and the 44-byte config space. Every multi-byte field is little endian and wrapped in a
 * le16/le32/le64 struct, so reading one without the conversion helpers fails to compile (style.md §2.6).
 * Each struct size is checked against virtio-video-v3.md §11.
 *
 * Shared by the device model (video/) and the driver client of the frontend library (frontend/).
 */

#include <endian.h>
#include <stddef.h>
#include <stdint.h>

#ifndef VIRTIO_LE_WIRE_TYPES
#define VIRTIO_LE_WIRE_TYPES
typedef struct {
        uint16_t raw;
} le16;
typedef struct {
        uint32_t raw;
} le32;
typedef struct {
        uint64_t raw;
} le64;

static inline uint16_t le16_to_cpu(le16 v) {
        return le16toh(v.raw);
}
static inline uint32_t le32_to_cpu(le32 v) {
        return le32toh(v.raw);
}
static inline uint64_t le64_to_cpu(le64 v) {
        return le64toh(v.raw);
}
static inline le16 cpu_to_le16(uint16_t v) {
        return (le16){ htole16(v) };
}
static inline le32 cpu_to_le32(uint32_t v) {
        return (le32){ htole32(v) };
}
static inline le64 cpu_to_le64(uint64_t v) {
        return (le64){ htole64(v) };
}
#endif

/* §1.2 device feature bits */
#define VIRTIO_VIDEO_F_RESOURCE_GUEST_PAGES 0
#define VIRTIO_VIDEO_F_RESOURCE_NON_CONTIG 1
#define VIRTIO_VIDEO_F_RESOURCE_VIRTIO_OBJECT 2

/* §2.1 virtqueues */
#define VIRTIO_VIDEO_QUEUE_COMMAND 0
#define VIRTIO_VIDEO_QUEUE_EVENT 1
#define VIRTIO_VIDEO_NUM_QUEUES 2

/* §3.2 command codes */
enum virtio_video_cmd_type {
        VIRTIO_VIDEO_CMD_QUERY_CAPABILITY = 0x0100,
        VIRTIO_VIDEO_CMD_STREAM_CREATE = 0x0101,
        VIRTIO_VIDEO_CMD_STREAM_DESTROY = 0x0102,
        VIRTIO_VIDEO_CMD_STREAM_DRAIN = 0x0103,
        VIRTIO_VIDEO_CMD_RESOURCE_CREATE = 0x0104,
        VIRTIO_VIDEO_CMD_RESOURCE_QUEUE = 0x0105,
        VIRTIO_VIDEO_CMD_RESOURCE_DESTROY_ALL = 0x0106,
        VIRTIO_VIDEO_CMD_QUEUE_CLEAR = 0x0107,
        VIRTIO_VIDEO_CMD_GET_PARAMS = 0x0108,
        VIRTIO_VIDEO_CMD_SET_PARAMS = 0x0109,
        VIRTIO_VIDEO_CMD_QUERY_CONTROL = 0x010A,
        VIRTIO_VIDEO_CMD_GET_CONTROL = 0x010B,
        VIRTIO_VIDEO_CMD_SET_CONTROL = 0x010C,
        VIRTIO_VIDEO_CMD_GET_PARAMS_EXT = 0x010D,
        VIRTIO_VIDEO_CMD_SET_PARAMS_EXT = 0x010E,
};

/* §3.3 response codes (0x03xx errors, not the Rust crate's 0x0206..0x020B) */
enum virtio_video_resp_type {
        VIRTIO_VIDEO_RESP_OK_NODATA = 0x0200,
        VIRTIO_VIDEO_RESP_OK_QUERY_CAPABILITY = 0x0201,
        VIRTIO_VIDEO_RESP_OK_RESOURCE_QUEUE = 0x0202,
        VIRTIO_VIDEO_RESP_OK_GET_PARAMS = 0x0203,
        VIRTIO_VIDEO_RESP_OK_QUERY_CONTROL = 0x0204,
        VIRTIO_VIDEO_RESP_OK_GET_CONTROL = 0x0205,
        VIRTIO_VIDEO_RESP_ERR_INVALID_OPERATION = 0x0300,
        VIRTIO_VIDEO_RESP_ERR_OUT_OF_MEMORY = 0x0301,
        VIRTIO_VIDEO_RESP_ERR_INVALID_STREAM_ID = 0x0302,
        VIRTIO_VIDEO_RESP_ERR_INVALID_RESOURCE_ID = 0x0303,
        VIRTIO_VIDEO_RESP_ERR_INVALID_PARAMETER = 0x0304,
        VIRTIO_VIDEO_RESP_ERR_UNSUPPORTED_CONTROL = 0x0305,
};

/* §5.2 queue types */
#define VIRTIO_VIDEO_QUEUE_TYPE_INPUT 0x100
#define VIRTIO_VIDEO_QUEUE_TYPE_OUTPUT 0x101

/* §5.4 memory types */
#define VIRTIO_VIDEO_MEM_TYPE_GUEST_PAGES 0
#define VIRTIO_VIDEO_MEM_TYPE_VIRTIO_OBJECT 1

/* §5.5 planes layout, §5.6 buffer flags */
#define VIRTIO_VIDEO_PLANES_LAYOUT_SINGLE_BUFFER 0x1u
#define VIRTIO_VIDEO_PLANES_LAYOUT_PER_PLANE 0x2u
#define VIRTIO_VIDEO_BUFFER_FLAG_ERR 0x01u
#define VIRTIO_VIDEO_BUFFER_FLAG_EOS 0x02u
#define VIRTIO_VIDEO_BUFFER_FLAG_IFRAME 0x04u
#define VIRTIO_VIDEO_BUFFER_FLAG_PFRAME 0x08u
#define VIRTIO_VIDEO_BUFFER_FLAG_BFRAME 0x10u

/* §5.7 controls, §5.10 bitrate modes (values shared with backend.h's VideoControl) */
#define VIRTIO_VIDEO_CONTROL_BITRATE 1
#define VIRTIO_VIDEO_CONTROL_PROFILE 2
#define VIRTIO_VIDEO_CONTROL_LEVEL 3
#define VIRTIO_VIDEO_CONTROL_FORCE_KEYFRAME 4
#define VIRTIO_VIDEO_CONTROL_BITRATE_MODE 5
#define VIRTIO_VIDEO_CONTROL_BITRATE_PEAK 6
#define VIRTIO_VIDEO_CONTROL_PREPEND_SPSPPS_TO_IDR 7
#define VIRTIO_VIDEO_BITRATE_MODE_VBR 0
#define VIRTIO_VIDEO_BITRATE_MODE_CBR 1

/* §5.8 profiles and §5.9 levels: ranges */
#define VIRTIO_VIDEO_PROFILE_H264_MIN 0x100
#define VIRTIO_VIDEO_PROFILE_H264_MAX 0x10A
#define VIRTIO_VIDEO_PROFILE_HEVC_MIN 0x200
#define VIRTIO_VIDEO_PROFILE_HEVC_MAX 0x202
#define VIRTIO_VIDEO_PROFILE_VP8_MIN 0x300
#define VIRTIO_VIDEO_PROFILE_VP8_MAX 0x303
#define VIRTIO_VIDEO_PROFILE_VP9_MIN 0x400
#define VIRTIO_VIDEO_PROFILE_VP9_MAX 0x403
#define VIRTIO_VIDEO_LEVEL_H264_MIN 0x100
#define VIRTIO_VIDEO_LEVEL_H264_MAX 0x10E

/* §5.11 event types */
#define VIRTIO_VIDEO_EVENT_ERROR 0x0100
#define VIRTIO_VIDEO_EVENT_DECODER_RESOLUTION_CHANGED 0x0200

#define VIRTIO_VIDEO_MAX_PLANES 8

/* §3.1 */
struct virtio_video_cmd_hdr {
        le32 type;
        le32 stream_id;
};
_Static_assert(sizeof(struct virtio_video_cmd_hdr) == 8, "wire layout");

/* §4.1 QUERY_CAPABILITY */
struct virtio_video_query_capability {
        struct virtio_video_cmd_hdr hdr;
        le32 queue_type;
        uint8_t padding[4];
};
_Static_assert(sizeof(struct virtio_video_query_capability) == 16, "wire layout");

struct virtio_video_format_range {
        le32 min;
        le32 max;
        le32 step;
        uint8_t padding[4];
};
_Static_assert(sizeof(struct virtio_video_format_range) == 16, "wire layout");

/* followed by num_rates x virtio_video_format_range */
struct virtio_video_format_frame {
        struct virtio_video_format_range width;
        struct virtio_video_format_range height;
        le32 num_rates;
        uint8_t padding[4];
};
_Static_assert(sizeof(struct virtio_video_format_frame) == 40, "wire layout");

/* followed by num_frames x virtio_video_format_frame (each with its rates) */
struct virtio_video_format_desc {
        le64 mask;
        le32 format;
        le32 planes_layout;
        le32 plane_align;
        le32 num_frames;
};
_Static_assert(sizeof(struct virtio_video_format_desc) == 24, "wire layout");

/* followed by num_descs x virtio_video_format_desc */
struct virtio_video_query_capability_resp {
        struct virtio_video_cmd_hdr hdr;
        le32 num_descs;
        uint8_t padding[4];
};
_Static_assert(sizeof(struct virtio_video_query_capability_resp) == 16, "wire layout");

/* §4.2 STREAM_CREATE */
struct virtio_video_stream_create {
        struct virtio_video_cmd_hdr hdr;
        le32 in_mem_type;
        le32 out_mem_type;
        le32 coded_format;
        uint8_t padding[4];
        uint8_t tag[64];
};
_Static_assert(sizeof(struct virtio_video_stream_create) == 88, "wire layout");

/* §4.3 STREAM_DESTROY, §4.4 STREAM_DRAIN: header only */
struct virtio_video_stream_destroy {
        struct virtio_video_cmd_hdr hdr;
};
struct virtio_video_stream_drain {
        struct virtio_video_cmd_hdr hdr;
};
_Static_assert(sizeof(struct virtio_video_stream_destroy) == 8, "wire layout");
_Static_assert(sizeof(struct virtio_video_stream_drain) == 8, "wire layout");

/* §4.5 RESOURCE_CREATE, followed by sum(num_entries) entries */
struct virtio_video_mem_entry {
        le64 addr;
        le32 length;
        uint8_t padding[4];
};
_Static_assert(sizeof(struct virtio_video_mem_entry) == 16, "wire layout");

struct virtio_video_object_entry {
        uint8_t uuid[16];
};
_Static_assert(sizeof(struct virtio_video_object_entry) == 16, "wire layout");

struct virtio_video_resource_create {
        struct virtio_video_cmd_hdr hdr;
        le32 queue_type;
        le32 resource_id;
        le32 planes_layout;
        le32 num_planes;
        le32 plane_offsets[VIRTIO_VIDEO_MAX_PLANES];
        le32 num_entries[VIRTIO_VIDEO_MAX_PLANES];
};
_Static_assert(sizeof(struct virtio_video_resource_create) == 88, "wire layout");

/* §4.6 RESOURCE_QUEUE */
struct virtio_video_resource_queue {
        struct virtio_video_cmd_hdr hdr;
        le32 queue_type;
        le32 resource_id;
        le64 timestamp;
        le32 num_data_sizes;
        le32 data_sizes[VIRTIO_VIDEO_MAX_PLANES];
        uint8_t padding[4];
};
_Static_assert(sizeof(struct virtio_video_resource_queue) == 64, "wire layout");

struct virtio_video_resource_queue_resp {
        struct virtio_video_cmd_hdr hdr;
        le64 timestamp;
        le32 flags;
        le32 size;
};
_Static_assert(sizeof(struct virtio_video_resource_queue_resp) == 24, "wire layout");

/* §4.7 RESOURCE_DESTROY_ALL, §4.8 QUEUE_CLEAR, §4.9 GET_PARAMS(_EXT): same 16-byte layout */
struct virtio_video_resource_destroy_all {
        struct virtio_video_cmd_hdr hdr;
        le32 queue_type;
        uint8_t padding[4];
};
struct virtio_video_queue_clear {
        struct virtio_video_cmd_hdr hdr;
        le32 queue_type;
        uint8_t padding[4];
};
struct virtio_video_get_params {
        struct virtio_video_cmd_hdr hdr;
        le32 queue_type;
        uint8_t padding[4];
};
_Static_assert(sizeof(struct virtio_video_resource_destroy_all) == 16, "wire layout");
_Static_assert(sizeof(struct virtio_video_queue_clear) == 16, "wire layout");
_Static_assert(sizeof(struct virtio_video_get_params) == 16, "wire layout");

struct virtio_video_plane_format {
        le32 plane_size;
        le32 stride;
};
_Static_assert(sizeof(struct virtio_video_plane_format) == 8, "wire layout");

struct virtio_video_crop {
        le32 left;
        le32 top;
        le32 width;
        le32 height;
};
_Static_assert(sizeof(struct virtio_video_crop) == 16, "wire layout");

/* SPEC-v3 params (GET_PARAMS/SET_PARAMS 0x0108/0x0109): 112 bytes */
struct virtio_video_params {
        le32 queue_type;
        le32 format;
        le32 frame_width;
        le32 frame_height;
        le32 min_buffers;
        le32 max_buffers;
        struct virtio_video_crop crop;
        le32 frame_rate;
        le32 num_planes;
        struct virtio_video_plane_format plane_formats[VIRTIO_VIDEO_MAX_PLANES];
};
_Static_assert(sizeof(struct virtio_video_params) == 112, "wire layout");

/* ChromeOS _EXT params (0x010D/0x010E): 120 bytes */
struct virtio_video_params_ext {
        struct virtio_video_params base;
        le32 resource_type;
        uint8_t padding[4];
};
_Static_assert(sizeof(struct virtio_video_params_ext) == 120, "wire layout");

struct virtio_video_get_params_resp {
        struct virtio_video_cmd_hdr hdr;
        struct virtio_video_params params;
};
_Static_assert(sizeof(struct virtio_video_get_params_resp) == 120, "wire layout");

struct virtio_video_get_params_ext_resp {
        struct virtio_video_cmd_hdr hdr;
        struct virtio_video_params_ext params;
};
_Static_assert(sizeof(struct virtio_video_get_params_ext_resp) == 128, "wire layout");

struct virtio_video_set_params {
        struct virtio_video_cmd_hdr hdr;
        struct virtio_video_params params;
};
_Static_assert(sizeof(struct virtio_video_set_params) == 120, "wire layout");

struct virtio_video_set_params_ext {
        struct virtio_video_cmd_hdr hdr;
        struct virtio_video_params_ext params;
};
_Static_assert(sizeof(struct virtio_video_set_params_ext) == 128, "wire layout");

/* §4.11 QUERY_CONTROL */
struct virtio_video_query_control {
        struct virtio_video_cmd_hdr hdr;
        le32 control;
        uint8_t padding[4];
        le32 format; /* SPEC-v3 calls it "profile" for LEVEL; every implementation sends a format */
        uint8_t padding2[4];
};
_Static_assert(sizeof(struct virtio_video_query_control) == 24, "wire layout");

/* followed by num x le32 values */
struct virtio_video_query_control_resp {
        struct virtio_video_cmd_hdr hdr;
        le32 num;
        uint8_t padding[4];
};
_Static_assert(sizeof(struct virtio_video_query_control_resp) == 16, "wire layout");

/* §4.12 GET_CONTROL */
struct virtio_video_get_control {
        struct virtio_video_cmd_hdr hdr;
        le32 control;
        uint8_t padding[4];
};
_Static_assert(sizeof(struct virtio_video_get_control) == 16, "wire layout");

struct virtio_video_get_control_resp {
        struct virtio_video_cmd_hdr hdr;
        le32 value;
        uint8_t padding[4];
};
_Static_assert(sizeof(struct virtio_video_get_control_resp) == 16, "wire layout");

/* §4.13 SET_CONTROL: 24 bytes, or just the first 16 for FORCE_KEYFRAME (no value) */
struct virtio_video_set_control {
        struct virtio_video_cmd_hdr hdr;
        le32 control;
        uint8_t padding[4];
        le32 value;
        uint8_t padding2[4];
};
_Static_assert(sizeof(struct virtio_video_set_control) == 24, "wire layout");
#define VIRTIO_VIDEO_SET_CONTROL_NOVALUE_SIZE 16

/* §6 events */
struct virtio_video_event {
        le32 event_type;
        le32 stream_id;
};
_Static_assert(sizeof(struct virtio_video_event) == 8, "wire layout");

/* §1.3 config space, 44-byte ChromeOS layout (the driver reads only offsets 4 and 8) */
struct virtio_video_config {
        le32 version;
        le32 max_caps_length;
        le32 max_resp_length;
        uint8_t device_name[32];
};
_Static_assert(sizeof(struct virtio_video_config) == 44, "wire layout");

/* Offsets the driver depends on (tables of §4). */
_Static_assert(offsetof(struct virtio_video_resource_queue, timestamp) == 16, "wire layout");
_Static_assert(offsetof(struct virtio_video_resource_queue, data_sizes) == 28, "wire layout");
_Static_assert(offsetof(struct virtio_video_resource_create, plane_offsets) == 24, "wire layout");
_Static_assert(offsetof(struct virtio_video_resource_create, num_entries) == 56, "wire layout");
_Static_assert(offsetof(struct virtio_video_params, plane_formats) == 48, "wire layout");
_Static_assert(offsetof(struct virtio_video_stream_create, tag) == 24, "wire layout");
_Static_assert(offsetof(struct virtio_video_set_control, value) == 16, "wire layout");
_Static_assert(offsetof(struct virtio_video_config, device_name) == 12, "wire layout");
