/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "video/command.h"
#include "video/virtio-video-proto.h"

/* Parses `len` bytes of `buf` cut into descriptors at every `chunk` bytes (0: one descriptor). */
static int parse_chunked(const void *buf, size_t len, size_t chunk, VideoCmd *cmd) {
        struct iovec iov[512];
        unsigned n = 0;

        if (chunk == 0)
                chunk = len ? len : 1;
        for (size_t off = 0; off < len; off += chunk) {
                assert_true(n < 512);
                iov[n++] = (struct iovec){ (uint8_t *) buf + off, len - off < chunk ? len - off : chunk };
        }
        return video_cmd_parse(iov, n, cmd);
}

static int parse(const void *buf, size_t len, VideoCmd *cmd) {
        return parse_chunked(buf, len, 0, cmd);
}

static struct virtio_video_cmd_hdr hdr(uint32_t type, uint32_t stream_id) {
        return (struct virtio_video_cmd_hdr){ cpu_to_le32(type), cpu_to_le32(stream_id) };
}

/* ---- malformed requests ---------------------------------------------------------------------------- */

static void test_rejects_short_header(void **state) {
        uint8_t buf[4] = { 0x00, 0x01, 0, 0 };
        VideoCmd c;

        assert_int_equal(parse(buf, sizeof(buf), &c), -EINVAL);
        assert_int_equal(c.type, 0);
        assert_int_equal(video_cmd_parse(NULL, 0, &c), -EINVAL);
}

static void test_rejects_unknown_command(void **state) {
        struct virtio_video_cmd_hdr h = hdr(0x0199, 7);
        struct virtio_video_cmd_hdr old = hdr(0x0001, 7); /* an OSY-old draft number */
        VideoCmd c;

        assert_int_equal(parse(&h, sizeof(h), &c), -ENOSYS);
        assert_int_equal(c.type, 0x0199);
        assert_int_equal(c.stream_id, 7);
        assert_int_equal(video_resp_from_errno(-ENOSYS), VIRTIO_VIDEO_RESP_ERR_INVALID_OPERATION);
        assert_int_equal(parse(&old, sizeof(old), &c), -ENOSYS);
}

static void test_rejects_bad_queue_type(void **state) {
        const uint32_t types[] = { VIRTIO_VIDEO_CMD_QUERY_CAPABILITY, VIRTIO_VIDEO_CMD_RESOURCE_DESTROY_ALL,
                                   VIRTIO_VIDEO_CMD_QUEUE_CLEAR, VIRTIO_VIDEO_CMD_GET_PARAMS,
                                   VIRTIO_VIDEO_CMD_GET_PARAMS_EXT };
        for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
                struct virtio_video_get_params req = { .hdr = hdr(types[i], 1),
                                                       .queue_type = cpu_to_le32(0x102) };
                VideoCmd c;

                assert_int_equal(parse(&req, sizeof(req), &c), -EINVAL);
                assert_int_equal(video_resp_from_errno(-EINVAL), VIRTIO_VIDEO_RESP_ERR_INVALID_PARAMETER);
                req.queue_type = cpu_to_le32(0);
                assert_int_equal(parse(&req, sizeof(req), &c), -EINVAL);
        }
}

static void test_rejects_wrong_sizes(void **state) {
        uint8_t buf[256] = {};
        const struct {
                uint32_t type;
                size_t good;
        } cases[] = {
                { VIRTIO_VIDEO_CMD_QUERY_CAPABILITY, 16 }, { VIRTIO_VIDEO_CMD_STREAM_CREATE, 88 },
                { VIRTIO_VIDEO_CMD_STREAM_DESTROY, 8 },    { VIRTIO_VIDEO_CMD_STREAM_DRAIN, 8 },
                { VIRTIO_VIDEO_CMD_RESOURCE_QUEUE, 64 },   { VIRTIO_VIDEO_CMD_RESOURCE_DESTROY_ALL, 16 },
                { VIRTIO_VIDEO_CMD_QUEUE_CLEAR, 16 },      { VIRTIO_VIDEO_CMD_GET_PARAMS, 16 },
                { VIRTIO_VIDEO_CMD_SET_PARAMS, 120 },      { VIRTIO_VIDEO_CMD_QUERY_CONTROL, 24 },
                { VIRTIO_VIDEO_CMD_GET_CONTROL, 16 },      { VIRTIO_VIDEO_CMD_GET_PARAMS_EXT, 16 },
                { VIRTIO_VIDEO_CMD_SET_PARAMS_EXT, 128 },
        };

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                struct virtio_video_cmd_hdr h = hdr(cases[i].type, 1);
                VideoCmd c;

                memset(buf, 0, sizeof(buf));
                memcpy(buf, &h, sizeof(h));
                /* a valid queue type / control where the body has one, so only the size is wrong */
                le32 q = cpu_to_le32(VIRTIO_VIDEO_QUEUE_TYPE_INPUT);
                le32 ctl = cpu_to_le32(VIRTIO_VIDEO_CONTROL_BITRATE);
                memcpy(buf + 8,
                       cases[i].type == VIRTIO_VIDEO_CMD_QUERY_CONTROL ||
                                       cases[i].type == VIRTIO_VIDEO_CMD_GET_CONTROL
                               ? (void *) &ctl
                               : (void *) &q,
                       4);
                if (cases[i].type == VIRTIO_VIDEO_CMD_STREAM_CREATE) {
                        le32 f = cpu_to_le32(VIDEO_FORMAT_H264);
                        memset(buf + 8, 0, 4);
                        memcpy(buf + 16, &f, 4);
                }
                if (cases[i].type == VIRTIO_VIDEO_CMD_SET_PARAMS ||
                    cases[i].type == VIRTIO_VIDEO_CMD_SET_PARAMS_EXT)
                        memcpy(buf + 8, &q, 4);
                assert_int_equal(parse(buf, cases[i].good, &c), 0);
                video_cmd_done(&c);
                assert_int_equal(parse(buf, cases[i].good - 1, &c), -EINVAL);
                assert_int_equal(parse(buf, cases[i].good + 4, &c), -EINVAL);
        }
}

static void test_stream_create_rejects_bad_enums(void **state) {
        struct virtio_video_stream_create req = {
                .hdr = hdr(VIRTIO_VIDEO_CMD_STREAM_CREATE, 3),
                .coded_format = cpu_to_le32(VIDEO_FORMAT_FWHT),
        };
        VideoCmd c;

        req.in_mem_type = cpu_to_le32(2);
        assert_int_equal(parse(&req, sizeof(req), &c), -EINVAL);
        req.in_mem_type = cpu_to_le32(0);
        req.out_mem_type = cpu_to_le32(0xffffffff);
        assert_int_equal(parse(&req, sizeof(req), &c), -EINVAL);
        req.out_mem_type = cpu_to_le32(0);
        req.coded_format = cpu_to_le32(VIDEO_FORMAT_NV12); /* raw, not a coded format */
        assert_int_equal(parse(&req, sizeof(req), &c), -EINVAL);
        req.coded_format = cpu_to_le32(0x1007);
        assert_int_equal(parse(&req, sizeof(req), &c), -EINVAL);
}

static void test_stream_create_sanitizes_tag(void **state) {
        struct virtio_video_stream_create req = {
                .hdr = hdr(VIRTIO_VIDEO_CMD_STREAM_CREATE, 3),
                .in_mem_type = cpu_to_le32(VIRTIO_VIDEO_MEM_TYPE_GUEST_PAGES),
                .out_mem_type = cpu_to_le32(VIRTIO_VIDEO_MEM_TYPE_VIRTIO_OBJECT),
                .coded_format = cpu_to_le32(VIDEO_FORMAT_H264),
        };
        VideoCmd c;

        memset(req.tag, 'a', sizeof(req.tag)); /* not NUL terminated */
        req.tag[1] = '\n';
        assert_int_equal(parse_chunked(&req, sizeof(req), 5, &c), 0);
        assert_int_equal(c.type, VIRTIO_VIDEO_CMD_STREAM_CREATE);
        assert_int_equal(c.stream_id, 3);
        assert_int_equal(c.stream_create.coded_format, VIDEO_FORMAT_H264);
        assert_int_equal(c.stream_create.out_mem_type, VIRTIO_VIDEO_MEM_TYPE_VIRTIO_OBJECT);
        assert_int_equal(strlen(c.stream_create.tag), 64);
        assert_int_equal(c.stream_create.tag[1], '?');
        video_cmd_done(&c);
}

typedef struct ResourceCreateReq {
        struct virtio_video_resource_create rc;
        struct virtio_video_mem_entry e[8];
} ResourceCreateReq;

static ResourceCreateReq resource_create_req(uint32_t planes, const uint32_t *num_entries) {
        ResourceCreateReq r = {
                .rc.hdr = hdr(VIRTIO_VIDEO_CMD_RESOURCE_CREATE, 1),
                .rc.queue_type = cpu_to_le32(VIRTIO_VIDEO_QUEUE_TYPE_OUTPUT),
                .rc.resource_id = cpu_to_le32(42),
                .rc.planes_layout = cpu_to_le32(VIRTIO_VIDEO_PLANES_LAYOUT_SINGLE_BUFFER),
                .rc.num_planes = cpu_to_le32(planes),
        };
        for (unsigned i = 0; i < planes && i < 8; i++)
                r.rc.num_entries[i] = cpu_to_le32(num_entries[i]);
        for (unsigned i = 0; i < 8; i++)
                r.e[i] =
                        (struct virtio_video_mem_entry){ cpu_to_le64(0x1000 * (i + 1)), cpu_to_le32(0x800) };
        return r;
}

static void test_resource_create_rejects_bad_layout_and_counts(void **state) {
        const uint32_t one[8] = { 1 }, two[8] = { 1, 1 };
        ResourceCreateReq r;
        VideoCmd c;

        /* no entries at all */
        r = resource_create_req(1, one);
        assert_int_equal(parse(&r, sizeof(r.rc), &c), -EINVAL);
        /* entry array not a multiple of 16 */
        assert_int_equal(parse(&r, sizeof(r.rc) + 8, &c), -EINVAL);
        /* num_planes 0 and 9 */
        r.rc.num_planes = cpu_to_le32(0);
        assert_int_equal(parse(&r, sizeof(r.rc) + 16, &c), -EINVAL);
        r.rc.num_planes = cpu_to_le32(9);
        assert_int_equal(parse(&r, sizeof(r.rc) + 16, &c), -EINVAL);
        /* layout must be exactly one known bit */
        r = resource_create_req(1, one);
        r.rc.planes_layout = cpu_to_le32(3);
        assert_int_equal(parse(&r, sizeof(r.rc) + 16, &c), -EINVAL);
        r.rc.planes_layout = cpu_to_le32(0);
        assert_int_equal(parse(&r, sizeof(r.rc) + 16, &c), -EINVAL);
        /* counts say 3 entries, 2 sent */
        const uint32_t three[8] = { 2, 1 };
        r = resource_create_req(2, three);
        assert_int_equal(parse(&r, sizeof(r.rc) + 32, &c), -EINVAL);
        /* a count that would overflow a sum */
        r = resource_create_req(2, two);
        r.rc.num_entries[1] = cpu_to_le32(0xffffffff);
        assert_int_equal(parse(&r, sizeof(r.rc) + 32, &c), -EINVAL);
        /* bad queue type */
        r = resource_create_req(1, one);
        r.rc.queue_type = cpu_to_le32(7);
        assert_int_equal(parse(&r, sizeof(r.rc) + 16, &c), -EINVAL);
        /* an entry whose end wraps 64 bits */
        r = resource_create_req(1, one);
        r.e[0].addr = cpu_to_le64(UINT64_MAX - 16);
        assert_int_equal(parse(&r, sizeof(r.rc) + 16, &c), -EINVAL);
}

static void test_resource_create_parses_entries_across_descriptors(void **state) {
        const uint32_t counts[8] = { 1, 2 };
        ResourceCreateReq r = resource_create_req(2, counts);
        struct iovec iov[3];
        VideoCmd c;

        /* the driver's layout: request in one descriptor, entries in a second; split the second again */
        iov[0] = (struct iovec){ &r.rc, sizeof(r.rc) };
        iov[1] = (struct iovec){ &r.e[0], 20 };
        iov[2] = (struct iovec){ (uint8_t *) &r.e[0] + 20, 28 };
        assert_int_equal(video_cmd_parse(iov, 3, &c), 0);
        assert_int_equal(c.resource_create.queue, VIDEO_QUEUE_OUTPUT);
        assert_int_equal(c.resource_create.resource_id, 42);
        assert_int_equal(c.resource_create.num_planes, 2);
        assert_int_equal(c.resource_create.sum_entries, 3);
        assert_int_equal(c.resource_create.n_entries, 3);
        assert_int_equal(c.resource_create.entries[2].addr, 0x3000);
        assert_int_equal(c.resource_create.entries[2].length, 0x800);
        assert_int_equal(c.resource_create.num_entries[2], 0);
        video_cmd_done(&c);

        /* the virtio-object shape: one entry for two planes is left to the model to judge */
        const uint32_t ones[8] = { 1, 1 };
        r = resource_create_req(2, ones);
        assert_int_equal(parse(&r, sizeof(r.rc) + 16, &c), 0);
        assert_int_equal(c.resource_create.n_entries, 1);
        assert_int_equal(c.resource_create.sum_entries, 2);
        video_cmd_done(&c);
}

static void test_resource_queue(void **state) {
        struct virtio_video_resource_queue req = {
                .hdr = hdr(VIRTIO_VIDEO_CMD_RESOURCE_QUEUE, 9),
                .queue_type = cpu_to_le32(VIRTIO_VIDEO_QUEUE_TYPE_INPUT),
                .resource_id = cpu_to_le32(5),
                .timestamp = cpu_to_le64(0x1122334455667788ULL),
                .num_data_sizes = cpu_to_le32(9),
        };
        VideoCmd c;

        assert_int_equal(parse(&req, sizeof(req), &c), -EINVAL);
        req.num_data_sizes = cpu_to_le32(2);
        req.data_sizes[0] = cpu_to_le32(100);
        req.data_sizes[1] = cpu_to_le32(200);
        req.data_sizes[2] = cpu_to_le32(300); /* beyond num_data_sizes: ignored */
        assert_int_equal(parse_chunked(&req, sizeof(req), 3, &c), 0);
        assert_int_equal(c.resource_queue.queue, VIDEO_QUEUE_INPUT);
        assert_int_equal(c.resource_queue.resource_id, 5);
        assert_true(c.resource_queue.timestamp == 0x1122334455667788ULL);
        assert_int_equal(c.resource_queue.data_sizes[1], 200);
        assert_int_equal(c.resource_queue.data_sizes[2], 0);
}

static void test_params_dialects(void **state) {
        struct virtio_video_set_params_ext ext = {
                .hdr = hdr(VIRTIO_VIDEO_CMD_SET_PARAMS_EXT, 2),
                .params.base.queue_type = cpu_to_le32(VIRTIO_VIDEO_QUEUE_TYPE_OUTPUT),
                .params.base.format = cpu_to_le32(VIDEO_FORMAT_NV12),
                .params.base.frame_width = cpu_to_le32(320),
                .params.base.num_planes = cpu_to_le32(2),
                .params.base.plane_formats[1].stride = cpu_to_le32(336),
                .params.resource_type = cpu_to_le32(VIRTIO_VIDEO_MEM_TYPE_GUEST_PAGES),
        };
        struct virtio_video_set_params plain;
        struct virtio_video_get_params get = {
                .hdr = hdr(VIRTIO_VIDEO_CMD_GET_PARAMS_EXT, 2),
                .queue_type = cpu_to_le32(VIRTIO_VIDEO_QUEUE_TYPE_OUTPUT),
        };
        VideoCmd c;

        assert_int_equal(parse(&ext, sizeof(ext), &c), 0);
        assert_true(c.set_params.ext);
        assert_int_equal(c.set_params.queue, VIDEO_QUEUE_OUTPUT);
        assert_int_equal(c.set_params.params.frame_width, 320);
        assert_int_equal(c.set_params.params.planes[1].stride, 336);
        /* the _EXT code with the plain size, and the reverse */
        assert_int_equal(parse(&ext, sizeof(struct virtio_video_set_params), &c), -EINVAL);
        memcpy(&plain, &ext, sizeof(plain));
        plain.hdr = hdr(VIRTIO_VIDEO_CMD_SET_PARAMS, 2);
        assert_int_equal(parse(&plain, sizeof(plain), &c), 0);
        assert_false(c.set_params.ext);
        assert_int_equal(c.set_params.resource_type, 0);
        /* bad resource type, plane count, queue */
        ext.params.resource_type = cpu_to_le32(4);
        assert_int_equal(parse(&ext, sizeof(ext), &c), -EINVAL);
        ext.params.resource_type = cpu_to_le32(0);
        ext.params.base.num_planes = cpu_to_le32(9);
        assert_int_equal(parse(&ext, sizeof(ext), &c), -EINVAL);
        ext.params.base.num_planes = cpu_to_le32(1);
        ext.params.base.queue_type = cpu_to_le32(0x200);
        assert_int_equal(parse(&ext, sizeof(ext), &c), -EINVAL);

        assert_int_equal(parse(&get, sizeof(get), &c), 0);
        assert_true(c.get_params_ext);
        get.hdr = hdr(VIRTIO_VIDEO_CMD_GET_PARAMS, 2);
        assert_int_equal(parse(&get, sizeof(get), &c), 0);
        assert_false(c.get_params_ext);
        assert_int_equal(c.queue.queue, VIDEO_QUEUE_OUTPUT);
}

static void test_controls(void **state) {
        struct virtio_video_query_control q = {
                .hdr = hdr(VIRTIO_VIDEO_CMD_QUERY_CONTROL, 0),
                .control = cpu_to_le32(8),
                .format = cpu_to_le32(VIDEO_FORMAT_H264),
        };
        struct virtio_video_get_control g = { .hdr = hdr(VIRTIO_VIDEO_CMD_GET_CONTROL, 1),
                                              .control = cpu_to_le32(0) };
        struct virtio_video_set_control s = {
                .hdr = hdr(VIRTIO_VIDEO_CMD_SET_CONTROL, 1),
                .control = cpu_to_le32(VIRTIO_VIDEO_CONTROL_BITRATE),
                .value = cpu_to_le32(5000000),
        };
        VideoCmd c;

        assert_int_equal(parse(&q, sizeof(q), &c), -EOPNOTSUPP);
        assert_int_equal(video_resp_from_errno(-EOPNOTSUPP), VIRTIO_VIDEO_RESP_ERR_UNSUPPORTED_CONTROL);
        q.control = cpu_to_le32(VIRTIO_VIDEO_CONTROL_LEVEL);
        assert_int_equal(parse(&q, sizeof(q), &c), 0);
        assert_int_equal(c.query_control.format, VIDEO_FORMAT_H264);
        assert_int_equal(parse(&g, sizeof(g), &c), -EOPNOTSUPP);

        /* 16 bytes only for FORCE_KEYFRAME (§4.13) */
        assert_int_equal(parse(&s, 16, &c), -EINVAL);
        assert_int_equal(parse(&s, sizeof(s), &c), 0);
        assert_int_equal(c.set_control.value, 5000000);
        s.control = cpu_to_le32(VIRTIO_VIDEO_CONTROL_FORCE_KEYFRAME);
        assert_int_equal(parse(&s, 16, &c), 0);
        assert_int_equal(c.set_control.control, VIRTIO_VIDEO_CONTROL_FORCE_KEYFRAME);
        assert_int_equal(parse(&s, sizeof(s), &c), 0);
        assert_int_equal(parse(&s, 20, &c), -EINVAL);
}

static void test_error_mapping(void **state) {
        assert_int_equal(video_resp_from_errno(-ESRCH), VIRTIO_VIDEO_RESP_ERR_INVALID_STREAM_ID);
        assert_int_equal(video_resp_from_errno(-EBADSLT), VIRTIO_VIDEO_RESP_ERR_INVALID_RESOURCE_ID);
        assert_int_equal(video_resp_from_errno(-ENOMEM), VIRTIO_VIDEO_RESP_ERR_OUT_OF_MEMORY);
        assert_int_equal(video_resp_from_errno(-ENOSPC), VIRTIO_VIDEO_RESP_ERR_OUT_OF_MEMORY);
        assert_int_equal(video_resp_from_errno(-EFAULT), VIRTIO_VIDEO_RESP_ERR_INVALID_PARAMETER);
        assert_int_equal(video_resp_from_errno(-EBUSY), VIRTIO_VIDEO_RESP_ERR_INVALID_OPERATION);
        assert_int_equal(video_resp_from_errno(-EIO), VIRTIO_VIDEO_RESP_ERR_INVALID_OPERATION);
        assert_int_equal(video_queue_from_wire(VIRTIO_VIDEO_QUEUE_TYPE_OUTPUT), VIDEO_QUEUE_OUTPUT);
        assert_int_equal(video_queue_to_wire(VIDEO_QUEUE_INPUT), VIRTIO_VIDEO_QUEUE_TYPE_INPUT);
        assert_string_equal(video_cmd_type_to_string(VIRTIO_VIDEO_CMD_SET_PARAMS_EXT), "SET_PARAMS_EXT");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_rejects_short_header),
                cmocka_unit_test(test_rejects_unknown_command),
                cmocka_unit_test(test_rejects_bad_queue_type),
                cmocka_unit_test(test_rejects_wrong_sizes),
                cmocka_unit_test(test_stream_create_rejects_bad_enums),
                cmocka_unit_test(test_stream_create_sanitizes_tag),
                cmocka_unit_test(test_resource_create_rejects_bad_layout_and_counts),
                cmocka_unit_test(test_resource_create_parses_entries_across_descriptors),
                cmocka_unit_test(test_resource_queue),
                cmocka_unit_test(test_params_dialects),
                cmocka_unit_test(test_controls),
                cmocka_unit_test(test_error_mapping),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
