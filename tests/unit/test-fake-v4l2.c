/* SPDX-License-Identifier: GPL-2.0-or-later */

/* The fake V4L2 M2M device itself: it must refuse what a kernel driver refuses, with the same errno,
 * or the backend tests against it prove nothing. */

#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <cmocka.h>
#include <linux/videodev2.h>

#include "common/macro.h"
#include "fake-v4l2.h"

typedef struct F {
        FakeV4l2 *node;
        void *dev;
        bool mp;
} F;

static F *f_new(const FakeV4l2Config *cfg) {
        F *f = calloc(1, sizeof(*f));

        assert_non_null(f);
        f->node = fake_v4l2_new(cfg);
        assert_non_null(f->node);
        assert_int_equal(fake_v4l2_ops.open(f->node, &f->dev), 0);
        f->mp = cfg->mplane;
        return f;
}

static void f_free(F *f) {
        fake_v4l2_ops.close(f->dev);
        assert_int_equal(fake_v4l2_stats(f->node)->open_instances, 0);
        fake_v4l2_free(f->node);
        free(f);
}

static int io(F *f, unsigned long req, void *arg) {
        return fake_v4l2_ops.ioctl(f->dev, req, arg);
}

static uint32_t t_out(F *f) {
        return f->mp ? V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE : V4L2_BUF_TYPE_VIDEO_OUTPUT;
}

static uint32_t t_cap(F *f) {
        return f->mp ? V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE : V4L2_BUF_TYPE_VIDEO_CAPTURE;
}

static int reqbufs(F *f, uint32_t type, uint32_t memory, uint32_t count) {
        struct v4l2_requestbuffers r = { .type = type, .memory = memory, .count = count };

        return io(f, VIDIOC_REQBUFS, &r);
}

static int
qbuf(F *f, uint32_t type, uint32_t memory, uint32_t index, void *ptr, uint32_t length, uint32_t used) {
        struct v4l2_plane planes[VIDEO_MAX_PLANES] = {};
        struct v4l2_buffer b = { .type = type, .memory = memory, .index = index };

        if (f->mp) {
                b.m.planes = planes;
                b.length = 1;
                planes[0].m.userptr = (unsigned long) ptr;
                planes[0].length = length;
                planes[0].bytesused = used;
        } else {
                b.m.userptr = (unsigned long) ptr;
                b.length = length;
                b.bytesused = used;
        }
        return io(f, VIDIOC_QBUF, &b);
}

static int dqbuf(F *f, uint32_t type, uint32_t memory, struct v4l2_buffer *ret) {
        static struct v4l2_plane planes[VIDEO_MAX_PLANES];

        *ret = (struct v4l2_buffer){ .type = type, .memory = memory };
        if (f->mp) {
                ret->m.planes = planes;
                ret->length = VIDEO_MAX_PLANES;
        }
        return io(f, VIDIOC_DQBUF, ret);
}

static int stream(F *f, unsigned long req, uint32_t type) {
        int t = (int) type;

        return io(f, req, &t);
}

static bool readable(F *f) {
        uint32_t ev;
        struct pollfd p = { .fd = fake_v4l2_ops.poll_fd(f->dev, &ev), .events = POLLIN };

        assert_int_equal(ev, POLLIN);
        return poll(&p, 1, 0) == 1;
}

static void test_querycap_and_api(void **state) {
        F *f = f_new(&(FakeV4l2Config){ .mplane = false });
        struct v4l2_capability cap;
        struct v4l2_format fmt = { .type = V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE };

        assert_int_equal(io(f, VIDIOC_QUERYCAP, &cap), 0);
        assert_true(cap.device_caps & V4L2_CAP_VIDEO_M2M);
        assert_false(cap.device_caps & V4L2_CAP_VIDEO_M2M_MPLANE);
        /* Multi-planar types on a single-planar device. */
        assert_int_equal(io(f, VIDIOC_G_FMT, &fmt), -EINVAL);
        assert_int_equal(reqbufs(f, V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE, V4L2_MEMORY_MMAP, 1), -EINVAL);
        assert_int_equal(io(f, VIDIOC_LOG_STATUS, NULL), -ENOTTY);
        assert_int_equal(io(f, VIDIOC_ENCODER_CMD, &(struct v4l2_encoder_cmd){ .cmd = V4L2_ENC_CMD_STOP }),
                         -ENOTTY);
        f_free(f);
}

static void test_buffer_rules(void **state) {
        F *f = f_new(&(FakeV4l2Config){ .mplane = true, .userptr = false });
        struct v4l2_format fmt = { .type = V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE };
        struct v4l2_buffer b;
        uint8_t mem[64];

        /* USERPTR is not offered; QBUF/STREAMON before buffers exist. */
        assert_int_equal(reqbufs(f, t_out(f), V4L2_MEMORY_USERPTR, 2), -EINVAL);
        assert_int_equal(qbuf(f, t_out(f), V4L2_MEMORY_MMAP, 0, NULL, 0, 1), -EINVAL);
        assert_int_equal(stream(f, VIDIOC_STREAMON, t_out(f)), -EINVAL);
        assert_int_equal(dqbuf(f, t_out(f), V4L2_MEMORY_MMAP, &b), -EINVAL);

        assert_int_equal(reqbufs(f, t_out(f), V4L2_MEMORY_MMAP, 2), 0);
        /* The format is fixed while buffers exist (vb2_is_busy). */
        assert_int_equal(io(f, VIDIOC_G_FMT, &fmt), 0);
        assert_int_equal(io(f, VIDIOC_S_FMT, &fmt), -EBUSY);
        /* Index, memory type, double queueing, payload larger than the buffer. */
        assert_int_equal(qbuf(f, t_out(f), V4L2_MEMORY_MMAP, 2, NULL, 0, 1), -EINVAL);
        assert_int_equal(qbuf(f, t_out(f), V4L2_MEMORY_USERPTR, 0, mem, sizeof(mem), 1), -EINVAL);
        assert_int_equal(qbuf(f, t_out(f), V4L2_MEMORY_MMAP, 0, NULL, 0, (1u << 20) + 1), -EINVAL);
        assert_int_equal(qbuf(f, t_out(f), V4L2_MEMORY_MMAP, 0, NULL, 0, 10), 0);
        assert_int_equal(qbuf(f, t_out(f), V4L2_MEMORY_MMAP, 0, NULL, 0, 10), -EINVAL);
        assert_int_equal(stream(f, VIDIOC_STREAMON, t_out(f)), 0);
        /* No buffers can be (re)allocated while streaming. */
        assert_int_equal(reqbufs(f, t_out(f), V4L2_MEMORY_MMAP, 4), -EBUSY);
        assert_int_equal(stream(f, VIDIOC_STREAMOFF, t_out(f)), 0);
        assert_int_equal(dqbuf(f, t_out(f), V4L2_MEMORY_MMAP, &b), -EINVAL);
        assert_true(fake_v4l2_stats(f->node)->rejected >= 10);
        f_free(f);
}

static void test_mmap_rules(void **state) {
        F *f = f_new(&(FakeV4l2Config){ .mplane = false });
        struct v4l2_buffer b = { .type = V4L2_BUF_TYPE_VIDEO_OUTPUT,
                                 .memory = V4L2_MEMORY_MMAP,
                                 .index = 1 };
        void *m;

        assert_int_equal(reqbufs(f, t_out(f), V4L2_MEMORY_MMAP, 2), 0);
        assert_int_equal(io(f, VIDIOC_QUERYBUF, &b), 0);
        assert_true(b.length >= 4096);
        assert_true(fake_v4l2_ops.mmap(f->dev, b.length, PROT_READ, MAP_SHARED, b.m.offset + 4096) ==
                    MAP_FAILED);
        assert_true(fake_v4l2_ops.mmap(f->dev, b.length * 2, PROT_READ, MAP_SHARED, b.m.offset) ==
                    MAP_FAILED);
        m = fake_v4l2_ops.mmap(f->dev, b.length, PROT_READ | PROT_WRITE, MAP_SHARED, b.m.offset);
        assert_true(m != MAP_FAILED);
        /* vb2 keeps mapped memory: no freeing while it is mapped. */
        assert_int_equal(reqbufs(f, t_out(f), V4L2_MEMORY_MMAP, 0), -EBUSY);
        assert_int_equal(fake_v4l2_ops.munmap(f->dev, m, b.length), 0);
        assert_int_equal(fake_v4l2_ops.munmap(f->dev, m, b.length), -EINVAL);
        assert_int_equal(reqbufs(f, t_out(f), V4L2_MEMORY_MMAP, 0), 0);
        b.index = 0;
        assert_int_equal(io(f, VIDIOC_QUERYBUF, &b), -EINVAL);
        f_free(f);
}

static void test_decoder_sequence(void **state) {
        F *f = f_new(&(FakeV4l2Config){ .mplane = true, .userptr = true, .min_buffers = 3 });
        struct v4l2_event_subscription sub = { .type = V4L2_EVENT_SOURCE_CHANGE };
        struct v4l2_format fmt = { .type = V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE };
        struct v4l2_control ctrl = { .id = V4L2_CID_MIN_BUFFERS_FOR_CAPTURE };
        struct v4l2_event ev;
        struct v4l2_buffer b;
        static uint8_t bits[2 * (16 + 16 * 16 * 3 / 2)];
        static uint8_t pic[4][16 * 16 * 3 / 2];
        size_t n = fake_v4l2_make_frame(bits, sizeof(bits), 16, 16, 0, 1);

        n += fake_v4l2_make_frame(bits + n, sizeof(bits) - n, 16, 16, 1, 2);
        assert_int_equal(io(f, VIDIOC_SUBSCRIBE_EVENT, &sub), 0);
        /* The capture format is unknown until the headers are parsed. */
        assert_int_equal(io(f, VIDIOC_G_FMT, &fmt), -EINVAL);
        assert_int_equal(io(f, VIDIOC_S_FMT, &fmt), -EINVAL);
        assert_int_equal(io(f, VIDIOC_DQEVENT, &ev), -ENOENT);
        assert_false(readable(f));

        assert_int_equal(reqbufs(f, t_out(f), V4L2_MEMORY_USERPTR, 1), 0);
        /* A USERPTR buffer shorter than the format's sizeimage is refused. */
        assert_int_equal(qbuf(f, t_out(f), V4L2_MEMORY_USERPTR, 0, bits, sizeof(bits), (uint32_t) n),
                         -EINVAL);
        {
                uint8_t *big = calloc(1, 1 << 20);

                assert_non_null(big);
                memcpy(big, bits, n);
                assert_int_equal(qbuf(f, t_out(f), V4L2_MEMORY_USERPTR, 0, big, 1 << 20, (uint32_t) n), 0);
                assert_int_equal(stream(f, VIDIOC_STREAMON, t_out(f)), 0);
                assert_true(readable(f));
                assert_int_equal(io(f, VIDIOC_DQEVENT, &ev), 0);
                assert_int_equal(ev.type, V4L2_EVENT_SOURCE_CHANGE);
                assert_int_equal(ev.u.src_change.changes, V4L2_EVENT_SRC_CH_RESOLUTION);
                assert_int_equal(dqbuf(f, t_out(f), V4L2_MEMORY_USERPTR, &b), 0);
                assert_int_equal(dqbuf(f, t_out(f), V4L2_MEMORY_USERPTR, &b), -EAGAIN);
                assert_false(readable(f));
                free(big);
        }
        assert_int_equal(io(f, VIDIOC_G_FMT, &fmt), 0);
        assert_int_equal(fmt.fmt.pix_mp.width, 16);
        assert_int_equal(fmt.fmt.pix_mp.plane_fmt[0].sizeimage, 16 * 16 * 3 / 2);
        assert_int_equal(io(f, VIDIOC_G_CTRL, &ctrl), 0);
        assert_int_equal(ctrl.value, 3);
        assert_int_equal(io(f, VIDIOC_S_CTRL, &ctrl), -EACCES);

        /* REQBUFS rounds up to the decoder's minimum. */
        {
                struct v4l2_requestbuffers r = { .type = t_cap(f),
                                                 .memory = V4L2_MEMORY_USERPTR,
                                                 .count = 1 };

                assert_int_equal(io(f, VIDIOC_REQBUFS, &r), 0);
                assert_int_equal(r.count, 3);
        }
        for (unsigned i = 0; i < 3; i++)
                assert_int_equal(qbuf(f, t_cap(f), V4L2_MEMORY_USERPTR, i, pic[i], sizeof(pic[i]), 0), 0);
        assert_int_equal(stream(f, VIDIOC_STREAMON, t_cap(f)), 0);
        assert_int_equal(dqbuf(f, t_cap(f), V4L2_MEMORY_USERPTR, &b), 0);
        assert_int_equal(b.m.planes[0].bytesused, 16 * 16 * 3 / 2);
        assert_int_equal(pic[b.index][17], fake_v4l2_pixel(0, 1, 1, 1));
        assert_int_equal(dqbuf(f, t_cap(f), V4L2_MEMORY_USERPTR, &b), 0);
        assert_int_equal(pic[b.index][0], fake_v4l2_pixel(0, 0, 0, 2));

        /* Drain: STOP, then LAST on an empty buffer, then EPIPE; a second STOP while draining is busy. */
        assert_int_equal(io(f, VIDIOC_DECODER_CMD, &(struct v4l2_decoder_cmd){ .cmd = V4L2_DEC_CMD_STOP }),
                         0);
        assert_int_equal(dqbuf(f, t_cap(f), V4L2_MEMORY_USERPTR, &b), 0);
        assert_true(b.flags & V4L2_BUF_FLAG_LAST);
        assert_int_equal(b.m.planes[0].bytesused, 0);
        assert_int_equal(dqbuf(f, t_cap(f), V4L2_MEMORY_USERPTR, &b), -EPIPE);
        assert_int_equal(io(f, VIDIOC_DECODER_CMD, &(struct v4l2_decoder_cmd){ .cmd = 99 }), -EINVAL);
        assert_int_equal(io(f, VIDIOC_DECODER_CMD, &(struct v4l2_decoder_cmd){ .cmd = V4L2_DEC_CMD_START }),
                         0);
        assert_int_equal(dqbuf(f, t_cap(f), V4L2_MEMORY_USERPTR, &b), -EAGAIN);
        assert_int_equal(fake_v4l2_stats(f->node)->frames, 2);
        f_free(f);
}

/* Like vicodec: the first header queued to a stopped OUTPUT queue after STREAMOFF(OUTPUT) raises
 * SOURCE_CHANGE again, the size unchanged and no LAST buffer; queued with both queues streaming, none. */
static void test_decoder_seek_source_change(void **state) {
        F *f = f_new(&(FakeV4l2Config){ .mplane = true, .userptr = true });
        struct v4l2_event_subscription sub = { .type = V4L2_EVENT_SOURCE_CHANGE };
        struct v4l2_event ev;
        struct v4l2_buffer b;
        static uint8_t pic[4][16 * 16 * 3 / 2];
        uint8_t *big = calloc(1, 1 << 20);
        uint32_t n = (uint32_t) fake_v4l2_make_frame(big, 1 << 20, 16, 16, 0, 5);

        assert_non_null(big);
        assert_int_equal(io(f, VIDIOC_SUBSCRIBE_EVENT, &sub), 0);
        assert_int_equal(reqbufs(f, t_out(f), V4L2_MEMORY_USERPTR, 1), 0);
        assert_int_equal(qbuf(f, t_out(f), V4L2_MEMORY_USERPTR, 0, big, 1 << 20, n), 0);
        assert_int_equal(stream(f, VIDIOC_STREAMON, t_out(f)), 0);
        assert_int_equal(io(f, VIDIOC_DQEVENT, &ev), 0);
        assert_int_equal(dqbuf(f, t_out(f), V4L2_MEMORY_USERPTR, &b), 0);
        assert_int_equal(reqbufs(f, t_cap(f), V4L2_MEMORY_USERPTR, 4), 0);
        for (unsigned i = 0; i < 4; i++)
                assert_int_equal(qbuf(f, t_cap(f), V4L2_MEMORY_USERPTR, i, pic[i], sizeof(pic[i]), 0), 0);
        assert_int_equal(stream(f, VIDIOC_STREAMON, t_cap(f)), 0);
        assert_int_equal(dqbuf(f, t_cap(f), V4L2_MEMORY_USERPTR, &b), 0);
        assert_int_equal(fake_v4l2_stats(f->node)->source_changes, 1);

        /* Seek, bitstream before STREAMON: the event again, then the picture, no LAST. */
        assert_int_equal(stream(f, VIDIOC_STREAMOFF, t_out(f)), 0);
        assert_int_equal(qbuf(f, t_out(f), V4L2_MEMORY_USERPTR, 0, big, 1 << 20, n), 0);
        assert_int_equal(io(f, VIDIOC_DQEVENT, &ev), 0);
        assert_int_equal(ev.type, V4L2_EVENT_SOURCE_CHANGE);
        assert_int_equal(stream(f, VIDIOC_STREAMON, t_out(f)), 0);
        assert_int_equal(dqbuf(f, t_cap(f), V4L2_MEMORY_USERPTR, &b), 0);
        assert_false(b.flags & V4L2_BUF_FLAG_LAST);
        assert_int_equal(b.m.planes[0].bytesused, 16 * 16 * 3 / 2);
        assert_int_equal(dqbuf(f, t_out(f), V4L2_MEMORY_USERPTR, &b), 0);
        assert_int_equal(fake_v4l2_stats(f->node)->source_changes, 2);

        /* Seek, STREAMON first (dev-decoder.rst "Seek"): no event. */
        assert_int_equal(stream(f, VIDIOC_STREAMOFF, t_out(f)), 0);
        assert_int_equal(stream(f, VIDIOC_STREAMON, t_out(f)), 0);
        assert_int_equal(qbuf(f, t_out(f), V4L2_MEMORY_USERPTR, 0, big, 1 << 20, n), 0);
        assert_int_equal(io(f, VIDIOC_DQEVENT, &ev), -ENOENT);
        assert_int_equal(dqbuf(f, t_cap(f), V4L2_MEMORY_USERPTR, &b), 0);
        assert_false(b.flags & V4L2_BUF_FLAG_LAST);
        assert_int_equal(fake_v4l2_stats(f->node)->source_changes, 2);
        assert_int_equal(fake_v4l2_stats(f->node)->frames, 3);
        free(big);
        f_free(f);
}

static void test_stop_while_draining_is_busy(void **state) {
        F *f = f_new(&(FakeV4l2Config){ .encoder = true, .mplane = false });
        struct v4l2_encoder_cmd stop = { .cmd = V4L2_ENC_CMD_STOP };

        /* Queues stopped: STOP does nothing (as vicodec). */
        assert_int_equal(io(f, VIDIOC_ENCODER_CMD, &stop), 0);
        assert_int_equal(reqbufs(f, t_out(f), V4L2_MEMORY_MMAP, 1), 0);
        assert_int_equal(reqbufs(f, t_cap(f), V4L2_MEMORY_MMAP, 1), 0);
        assert_int_equal(qbuf(f, t_out(f), V4L2_MEMORY_MMAP, 0, NULL, 0, 16), 0);
        assert_int_equal(stream(f, VIDIOC_STREAMON, t_out(f)), 0);
        assert_int_equal(stream(f, VIDIOC_STREAMON, t_cap(f)), 0);
        assert_int_equal(io(f, VIDIOC_ENCODER_CMD, &stop), 0);
        assert_int_equal(io(f, VIDIOC_ENCODER_CMD, &stop), -EBUSY);
        assert_int_equal(io(f, VIDIOC_DECODER_CMD, &(struct v4l2_decoder_cmd){ .cmd = V4L2_DEC_CMD_STOP }),
                         -ENOTTY);
        f_free(f);
}

static void test_encoder_controls(void **state) {
        F *f = f_new(&(FakeV4l2Config){ .encoder = true, .mplane = true });
        struct v4l2_queryctrl qc = { .id = V4L2_CID_MPEG_VIDEO_H264_PROFILE };
        struct v4l2_querymenu qm = { .id = V4L2_CID_MPEG_VIDEO_H264_PROFILE };
        struct v4l2_control c = { .id = V4L2_CID_MPEG_VIDEO_BITRATE, .value = 10 };

        assert_int_equal(io(f, VIDIOC_QUERYCTRL, &qc), 0);
        assert_int_equal(qc.type, V4L2_CTRL_TYPE_MENU);
        qm.index = V4L2_MPEG_VIDEO_H264_PROFILE_EXTENDED;
        assert_int_equal(io(f, VIDIOC_QUERYMENU, &qm), -EINVAL);
        qm.index = V4L2_MPEG_VIDEO_H264_PROFILE_MAIN;
        assert_int_equal(io(f, VIDIOC_QUERYMENU, &qm), 0);
        assert_int_equal(io(f, VIDIOC_S_CTRL, &c), -ERANGE);
        c.id = V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME;
        assert_int_equal(io(f, VIDIOC_G_CTRL, &c), -EACCES);
        c.id = V4L2_CID_MIN_BUFFERS_FOR_CAPTURE;
        assert_int_equal(io(f, VIDIOC_G_CTRL, &c), -EINVAL); /* a decoder control */
        qc.id = V4L2_CID_BRIGHTNESS;
        assert_int_equal(io(f, VIDIOC_QUERYCTRL, &qc), -EINVAL);
        f_free(f);
}

static void test_fault_injection_and_removal(void **state) {
        F *f = f_new(&(FakeV4l2Config){ .mplane = true, .max_instances = 2 });
        struct v4l2_capability cap;
        void *dev2 = NULL, *dev3 = NULL;

        fake_v4l2_fail_ioctl(f->node, VIDIOC_QUERYCAP, EIO, 1, 1);
        assert_int_equal(io(f, VIDIOC_QUERYCAP, &cap), 0);
        assert_int_equal(io(f, VIDIOC_QUERYCAP, &cap), -EIO);
        assert_int_equal(io(f, VIDIOC_QUERYCAP, &cap), 0);

        assert_int_equal(fake_v4l2_ops.open(f->node, &dev2), 0);
        assert_int_equal(fake_v4l2_ops.open(f->node, &dev3), -EBUSY);
        assert_false(readable(f));
        fake_v4l2_vanish(f->node);
        assert_true(readable(f));
        assert_int_equal(io(f, VIDIOC_QUERYCAP, &cap), -ENODEV);
        assert_true(fake_v4l2_ops.mmap(f->dev, 4096, PROT_READ, MAP_SHARED, 0) == MAP_FAILED);
        fake_v4l2_ops.close(dev2);
        assert_int_equal(fake_v4l2_ops.open(f->node, &dev3), -ENODEV);
        f_free(f);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_querycap_and_api),
                cmocka_unit_test(test_buffer_rules),
                cmocka_unit_test(test_mmap_rules),
                cmocka_unit_test(test_decoder_sequence),
                cmocka_unit_test(test_decoder_seek_source_change),
                cmocka_unit_test(test_stop_while_draining_is_busy),
                cmocka_unit_test(test_encoder_controls),
                cmocka_unit_test(test_fault_injection_and_removal),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
