/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The libavcodec backends through the whole vhost-user path (architecture.md §6 layer 2): the device
 * model with "ffmpeg-decoder" / "ffmpeg-encoder" behind the vhost transport on a socketpair, driven by
 * the frontend library (QEMU) and the video client (the guest driver). The codec thread wakes the
 * device's loop through its eventfd while the client pumps that loop.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <systemd/sd-event.h>

#include "av-media.h"
#include "backend/backend.h"
#include "common/macro.h"
#include "device-fixture.h"
#include "frontend/video-client.h"
#include "video/virtio-video-proto.h"

typedef DeviceFixture Env;

static Env *env_open(const char *backend_name) {
        BackendConfig bc = { .device_fd = -1, .threads = 1 };
        Env *env = calloc(1, sizeof(*env));

        assert_non_null(env);
        assert_int_equal(sd_event_new(&env->event), 0);
        assert_int_equal(backend_new(backend_name, &bc, env->event, &env->backend), 0);
        device_fixture_connect(env, 20000);
        return env;
}

static void env_close(Env *env) {
        device_fixture_disconnect(env);
        sd_event_unref(env->event);
        free(env);
}

typedef struct Expect {
        const MediaFrames *ref;
        unsigned next;
        unsigned mismatches;
} Expect;

/* Compares a frame as the guest sees it (planes with the device's strides) with the reference. */
static int check_frame(void *userdata, const VcFrame *f) {
        Expect *x = userdata;
        const AVFrame *ref;

        if (x->next >= x->ref->n)
                return -E2BIG;
        ref = x->ref->f[x->next++];
        if ((int) f->width != ref->width || (int) f->height != ref->height) {
                x->mismatches++;
                return 0;
        }
        for (unsigned y = 0; y < f->height; y++)
                if (memcmp(f->planes[0] + (size_t) y * f->strides[0], ref->data[0] + y * ref->linesize[0],
                           f->width))
                        x->mismatches++;
        for (unsigned y = 0; y < (f->height + 1) / 2; y++)
                for (unsigned i = 0; i < (f->width + 1) / 2; i++) {
                        uint8_t u = ref->data[1][y * ref->linesize[1] + i],
                                v = ref->data[2][y * ref->linesize[2] + i];
                        uint8_t gu, gv;

                        if (f->format == VIDEO_FORMAT_NV12) {
                                gu = f->planes[1][(size_t) y * f->strides[1] + 2 * i];
                                gv = f->planes[1][(size_t) y * f->strides[1] + 2 * i + 1];
                        } else {
                                gu = f->planes[1][(size_t) y * f->strides[1] + i];
                                gv = f->planes[2][(size_t) y * f->strides[2] + i];
                        }
                        if (gu != u || gv != v)
                                x->mismatches++;
                }
        return 0;
}

static void decode_through_device(uint32_t output_format) {
        Env *env = env_open("ffmpeg-decoder");
        MediaStream s = {};
        MediaFrames ref = {};
        uint8_t *bytes;
        size_t size, *offsets, chunks[4096];
        unsigned n_chunks = 0, seed = 7;
        VcDecodeResult res = {};
        Expect x = { .ref = &ref };

        assert_int_equal(media_encode("libx264", 160, 96, 16, 0, &s), 0);
        assert_int_equal(media_encode("libx264", 96, 64, 8, 50, &s), 0);
        assert_int_equal(media_decode(AV_CODEC_ID_H264, &s, 0, NULL, &ref), 0);
        assert_int_equal(ref.n, 24);
        bytes = media_stream_bytes(&s, &size, &offsets);
        for (size_t off = 0; off < size; n_chunks++) {
                seed = seed * 1103515245u + 12345u;
                chunks[n_chunks] = MIN(size - off, (size_t) 1 + (seed >> 8) % 2000);
                off += chunks[n_chunks];
                assert_true(n_chunks + 1 < ELEMENTSOF(chunks));
        }

        VcDecodeOptions o = {
                .stream_id = 1,
                .coded_format = VIDEO_FORMAT_H264,
                .output_format = output_format,
                .bitstream = bytes,
                .size = size,
                .chunk_sizes = chunks,
                .n_chunks = n_chunks,
                .entries_per_plane = 3,
                .frame = check_frame,
                .userdata = &x,
        };
        assert_int_equal(video_client_decode(env->c, &o, &res), 0);
        assert_int_equal(res.frames, 24);
        assert_int_equal(x.next, 24);
        assert_int_equal(x.mismatches, 0);
        assert_int_equal(res.resolution_changes, 2);
        assert_int_equal(res.width, 96);
        assert_int_equal(res.height, 64);
        assert_int_equal(res.drain_resp_type, VIRTIO_VIDEO_RESP_OK_NODATA);

        free(bytes);
        free(offsets);
        media_stream_free(&s);
        media_frames_free(&ref);
        env_close(env);
}

static void test_decode_h264_nv12(void **state) {
        decode_through_device(VIDEO_FORMAT_NV12);
}

static void test_decode_h264_yuv420(void **state) {
        decode_through_device(VIDEO_FORMAT_YUV420);
}

typedef struct Packets {
        MediaStream s;
        uint64_t last_ts;
} Packets;

static int on_packet(void *userdata, const uint8_t *data, size_t size, uint64_t timestamp, uint32_t flags) {
        Packets *p = userdata;
        MediaPacket *a = reallocarray(p->s.pkts, p->s.n + 1, sizeof(*a));

        if (!a || size == 0 || timestamp <= p->last_ts)
                return -EBADMSG;
        p->s.pkts = a;
        a[p->s.n] = (MediaPacket){ .data = malloc(size), .size = size, .key = flags & 0x4 };
        if (!a[p->s.n].data)
                return -ENOMEM;
        memcpy(a[p->s.n].data, data, size);
        p->s.n++;
        p->last_ts = timestamp;
        return 0;
}

/* I420 pictures, tightly packed, as the client takes them. */
static uint8_t *packed_picture(unsigned w, unsigned h, unsigned t) {
        AVFrame *f = media_pattern(w, h, t);
        uint8_t *b = malloc((size_t) w * h * 3 / 2), *q = b;

        assert_non_null(f);
        assert_non_null(b);
        for (int c = 0; c < 3; c++)
                for (unsigned y = 0; y < (c ? h / 2 : h); y++) {
                        memcpy(q, f->data[c] + y * f->linesize[c], c ? w / 2 : w);
                        q += c ? w / 2 : w;
                }
        av_frame_free(&f);
        return b;
}

static void encode_through_device(uint32_t coded_format, enum AVCodecID id) {
        Env *env = env_open("ffmpeg-encoder");
        enum { W = 160, H = 96, N = 20 };
        uint8_t *frames[N];
        Packets p = {};
        MediaFrames dec = {};
        VcEncodeResult res = {};

        for (unsigned i = 0; i < N; i++)
                frames[i] = packed_picture(W, H, i);
        VcEncodeOptions o = {
                .stream_id = 1,
                .coded_format = coded_format,
                .raw_format = VIDEO_FORMAT_YUV420,
                .width = W,
                .height = H,
                .frame_rate = 30,
                .frames = (const uint8_t *const *) frames,
                .frame_size = W * H * 3 / 2,
                .n_frames = N,
                .bitrate = 1000000,
                .packet = on_packet,
                .userdata = &p,
        };
        assert_int_equal(video_client_encode(env->c, &o, &res), 0);
        assert_int_equal(res.packets, N);
        assert_true(res.keyframes >= 1);
        assert_int_equal(p.s.n, N);
        assert_true(p.s.pkts[0].key);

        assert_int_equal(media_decode(id, &p.s, 0, NULL, &dec), 0);
        assert_int_equal(dec.n, N);
        for (unsigned i = 0; i < N; i++) {
                AVFrame *src = media_pattern(W, H, i);
                double psnr = media_psnr(src, dec.f[i]);

                if (psnr < 35.0)
                        fail_msg("frame %u: PSNR %.2f dB", i, psnr);
                av_frame_free(&src);
                free(frames[i]);
        }
        media_frames_free(&dec);
        media_stream_free(&p.s);
        env_close(env);
}

static void test_encode_h264(void **state) {
        encode_through_device(VIDEO_FORMAT_H264, AV_CODEC_ID_H264);
}

static void test_encode_vp8(void **state) {
        encode_through_device(VIDEO_FORMAT_VP8, AV_CODEC_ID_VP8);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_decode_h264_nv12),
                cmocka_unit_test(test_decode_h264_yuv420),
                cmocka_unit_test(test_encode_h264),
                cmocka_unit_test(test_encode_vp8),
        };

        av_log_set_level(AV_LOG_QUIET);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
