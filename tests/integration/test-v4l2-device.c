/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The V4L2 backends through the whole vhost-user path (architecture.md §6 layer 2): the device model on
 * the v4l2-decoder / v4l2-encoder backend over the fake M2M device (tests/fakes/fake-v4l2.h), behind the
 * vhost transport on a socketpair, driven by the frontend library (plays QEMU) and the video client
 * (plays the guest driver). Guest memory is the frontend's memfd, so USERPTR hands the fake real guest
 * pages. One thread: the client pumps the device's sd-event loop while it waits.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <linux/videodev2.h>
#include <systemd/sd-event.h>

#include "backend/v4l2/v4l2.h"
#include "common/log.h"
#include "common/macro.h"
#include "device-fixture.h"
#include "fake-v4l2.h"
#include "frontend/video-client.h"
#include "null-stream.h"
#include "video/virtio-video-proto.h"

typedef struct Env {
        DeviceFixture fx;
        FakeV4l2 *fake;
} Env;

static Env *env_open(const FakeV4l2Config *cfg, bool force_copy) {
        BackendConfig bc = { .device_fd = -1, .force_copy = force_copy };
        Env *env = calloc(1, sizeof(*env));

        assert_non_null(env);
        assert_int_equal(sd_event_new(&env->fx.event), 0);
        env->fake = fake_v4l2_new(cfg);
        assert_non_null(env->fake);
        assert_int_equal(backend_v4l2_new_with_ops(&fake_v4l2_ops, env->fake,
                                                   cfg->encoder ? VIDEO_ROLE_ENCODER : VIDEO_ROLE_DECODER,
                                                   &bc, env->fx.event, &env->fx.backend),
                         0);
        device_fixture_connect(&env->fx, 0);
        return env;
}

static void env_close(Env *env) {
        device_fixture_disconnect(&env->fx);
        /* Every instance the streams opened is closed again, every mapping gone. */
        assert_int_equal(fake_v4l2_stats(env->fake)->open_instances, 0);
        assert_int_equal(fake_v4l2_stats(env->fake)->active_maps, 0);
        fake_v4l2_free(env->fake);
        sd_event_unref(env->fx.event);
        free(env);
}

typedef struct Expect {
        const uint32_t *w, *h;
        unsigned n, next;
        FakeV4l2 *vanish_at_frame_of; /* makes the device disappear after the first frame */
} Expect;

static int check_frame(void *userdata, const VcFrame *f) {
        Expect *x = userdata;

        if (x->next >= x->n)
                return -E2BIG;
        if (!null_frame_matches(f, x->w[x->next], x->h[x->next], x->next + 1))
                return -EBADMSG;
        x->next++;
        if (x->vanish_at_frame_of)
                fake_v4l2_vanish(x->vanish_at_frame_of);
        return 0;
}

static void
decode(const FakeV4l2Config *cfg, bool force_copy, unsigned entries_per_plane, uint32_t output_format) {
        const uint32_t w[] = { 64, 64, 96, 96, 96 }, h[] = { 48, 48, 64, 64, 64 };
        Env *env = env_open(cfg, force_copy);
        NullStream s = {};
        Expect x = { .w = w, .h = h, .n = 5 };
        size_t chunks[] = { 3, 10, 700, 1, 5000, 5, 4096, 9000, 30000 };
        VcDecodeResult res;
        VcDecodeOptions o = {
                .stream_id = 1,
                .chunk_sizes = chunks,
                .n_chunks = ELEMENTSOF(chunks),
                .entries_per_plane = entries_per_plane,
                .output_format = output_format,
                .frame = check_frame,
                .userdata = &x,
        };

        for (unsigned i = 0; i < 5; i++)
                assert_int_equal(null_stream_append(&s, w[i], h[i], i + 1), 0);
        assert_true(s.size < 3 + 10 + 700 + 1 + 5000 + 5 + 4096 + 9000 + 30000);
        chunks[ELEMENTSOF(chunks) - 1] = s.size - (3 + 10 + 700 + 1 + 5000 + 5 + 4096 + 9000);
        o.bitstream = s.data;
        o.size = s.size;
        assert_int_equal(video_client_decode(env->fx.c, &o, &res), 0);
        assert_int_equal(res.frames, 5);
        assert_int_equal(x.next, 5);
        assert_int_equal(res.resolution_changes, 2);
        assert_int_equal(res.width, 96);
        assert_int_equal(res.height, 64);
        assert_int_equal(res.input_completions, ELEMENTSOF(chunks));
        assert_int_equal(fake_v4l2_stats(env->fake)->source_changes, 2);
        if (force_copy || !cfg->userptr)
                assert_int_equal(fake_v4l2_stats(env->fake)->qbuf_userptr, 0);
        else
                assert_int_equal(fake_v4l2_stats(env->fake)->qbuf_mmap, 0);
        null_stream_done(&s);
        env_close(env);
}

static void test_decode_userptr_guest_pages(void **state) {
        decode(&(FakeV4l2Config){ .mplane = true, .userptr = true }, false, 1, 0);
}

static void test_decode_userptr_non_contiguous_nv12(void **state) {
        decode(&(FakeV4l2Config){ .mplane = true, .userptr = true }, false, 3, VIDEO_FORMAT_NV12);
}

static void test_decode_single_planar_mmap(void **state) {
        decode(&(FakeV4l2Config){ .mplane = false, .userptr = false }, false, 2, 0);
}

static void test_decode_force_copy(void **state) {
        decode(&(FakeV4l2Config){ .mplane = true, .userptr = true }, true, 1, VIDEO_FORMAT_YUV420);
}

static void test_decode_separate_memory_planes(void **state) {
        decode(&(FakeV4l2Config){ .mplane = true, .userptr = true, .mem_planes = true }, false, 1,
               VIDEO_FORMAT_NV12);
}

static void test_decode_device_vanishes(void **state) {
        const uint32_t w[] = { 32, 32, 32 }, h[] = { 32, 32, 32 };
        Env *env = env_open(&(FakeV4l2Config){ .mplane = true, .userptr = true }, false);
        NullStream s = {};
        Expect x = { .w = w, .h = h, .n = 3 };
        VcDecodeResult res;
        VcDecodeOptions o = { .stream_id = 3, .frame = check_frame, .userdata = &x, .n_input_buffers = 1 };

        for (unsigned i = 0; i < 3; i++)
                assert_int_equal(null_stream_append(&s, w[i], h[i], i + 1), 0);
        o.bitstream = s.data;
        o.size = s.size;
        size_t chunks[] = { s.frame_offsets[1], s.frame_offsets[2] - s.frame_offsets[1],
                            s.size - s.frame_offsets[2] };
        o.chunk_sizes = chunks;
        o.n_chunks = 3;
        x.vanish_at_frame_of = env->fake;
        /* The guest gets an error event for the stream; the device goes on serving commands. */
        assert_int_equal(video_client_decode(env->fx.c, &o, &res), -EIO);
        assert_true(x.next >= 1 && x.next < 3); /* frames already decoded may still arrive */
        assert_true(video_client_stream_create(env->fx.c, 4, VIDEO_FORMAT_FWHT, "after") >= 0x0300);
        null_stream_done(&s);
        env_close(env);
}

typedef struct Packets {
        uint32_t w, h;
        unsigned n;
        uint64_t timestamps[8];
        uint32_t flags[8];
} Packets;

static int
check_packet(void *userdata, const uint8_t *data, size_t size, uint64_t timestamp, uint32_t flags) {
        Packets *x = userdata;

        if (x->n >= ELEMENTSOF(x->timestamps) || !null_packet_matches(data, size, x->w, x->h, x->n + 1))
                return -EBADMSG;
        x->flags[x->n] = flags;
        x->timestamps[x->n++] = timestamp;
        return 0;
}

/* In place: the fake encodes what it reads back to I420, so an NV12 input must hold the same picture. */
static void i420_to_nv12(uint8_t *pic, unsigned w, unsigned h) {
        size_t q = (size_t) (w / 2) * (h / 2);
        _cleanup_free_ uint8_t *uv = malloc(2 * q);

        assert_non_null(uv);
        for (size_t i = 0; i < q; i++) {
                uv[2 * i] = pic[(size_t) w * h + i];
                uv[2 * i + 1] = pic[(size_t) w * h + q + i];
        }
        memcpy(pic + (size_t) w * h, uv, 2 * q);
}

static void encode(const FakeV4l2Config *cfg, uint32_t raw_format) {
        Env *env = env_open(cfg, false);
        uint8_t *pics[4];
        size_t size = 48 * 32 * 3 / 2;
        Packets x = { .w = 48, .h = 32 };
        VcEncodeResult res;
        VcEncodeOptions o = {
                .stream_id = 1,
                .coded_format = VIDEO_FORMAT_H264,
                .raw_format = raw_format,
                .width = 48,
                .height = 32,
                .frame_rate = 30,
                .frame_size = size,
                .n_frames = 4,
                .bitrate = 2000000,
                .packet = check_packet,
                .userdata = &x,
        };
        int32_t v;

        assert_true(video_client_is_encoder(env->fx.c));
        for (unsigned i = 0; i < 4; i++) {
                pics[i] = malloc(size);
                assert_non_null(pics[i]);
                null_picture(48, 32, i + 1, pics[i]);
                if (raw_format == VIDEO_FORMAT_NV12)
                        i420_to_nv12(pics[i], 48, 32);
        }
        o.frames = (const uint8_t *const *) pics;
        assert_int_equal(video_client_encode(env->fx.c, &o, &res), 0);
        assert_int_equal(res.packets, 4);
        assert_int_equal(x.n, 4);
        assert_int_equal(res.keyframes, 1);
        assert_true(x.flags[0] & VIRTIO_VIDEO_BUFFER_FLAG_IFRAME);
        for (unsigned i = 1; i < 4; i++)
                assert_true(x.flags[i] & VIRTIO_VIDEO_BUFFER_FLAG_PFRAME);
        assert_int_equal(fake_v4l2_get_control(env->fake, V4L2_CID_MPEG_VIDEO_BITRATE, &v), 0);
        assert_int_equal(v, 2000000);
        for (unsigned i = 0; i < 4; i++)
                free(pics[i]);
        env_close(env);
}

static void test_encode_yuv420_userptr(void **state) {
        encode(&(FakeV4l2Config){ .encoder = true, .mplane = true, .userptr = true }, VIDEO_FORMAT_YUV420);
}

static void test_encode_nv12_single_planar_mmap(void **state) {
        encode(&(FakeV4l2Config){ .encoder = true, .mplane = false }, VIDEO_FORMAT_NV12);
}

static void test_encoder_profiles_through_query_control(void **state) {
        Env *env = env_open(&(FakeV4l2Config){ .encoder = true, .mplane = true }, false);
        uint32_t values[16];
        unsigned n = 0;

        assert_int_equal(video_client_query_control(env->fx.c, VIRTIO_VIDEO_CONTROL_PROFILE,
                                                    VIDEO_FORMAT_H264, values, ELEMENTSOF(values), &n),
                         0);
        assert_int_equal(n, 3);
        assert_int_equal(values[2], 0x103);
        env_close(env);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_decode_userptr_guest_pages),
                cmocka_unit_test(test_decode_userptr_non_contiguous_nv12),
                cmocka_unit_test(test_decode_single_planar_mmap),
                cmocka_unit_test(test_decode_force_copy),
                cmocka_unit_test(test_decode_separate_memory_planes),
                cmocka_unit_test(test_decode_device_vanishes),
                cmocka_unit_test(test_encode_yuv420_userptr),
                cmocka_unit_test(test_encode_nv12_single_planar_mmap),
                cmocka_unit_test(test_encoder_profiles_through_query_control),
        };

        if (getenv("TEST_DEBUG"))
                log_set_max_level(LOG_DEBUG);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
