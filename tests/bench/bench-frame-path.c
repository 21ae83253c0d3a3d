/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Benchmark 2: the frame path. 1080p pictures through the null backend, which copies each coded picture
 * (I420) once into the guest's NV12 output buffer, the whole way through the vhost-user path: frames per
 * second and GB/s of output, against memcpy bandwidth of buffers of the same size measured in the same
 * run (the physical limit of one copy). Target: at least 80% of memcpy bandwidth.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench-common.h"
#include "common/macro.h"
#include "frontend/frontend.h"
#include "frontend/video-client.h"
#include "backend/backend.h"
#include "video/virtio-video-proto.h"

#define WIDTH 1920u
#define HEIGHT 1080u
#define FRAMES 120u
#define RUNS 3u

static int count_frames(void *userdata, const VcFrame *f) {
        (*(unsigned *) userdata)++;
        return 0;
}

/* memcpy of one picture's bytes between two buffers as large as the guest's, over FRAMES pictures. */
static double memcpy_gbps(size_t size) {
        _cleanup_free_ uint8_t *a = malloc(size * 4), *b = malloc(size);
        uint64_t best = UINT64_MAX;

        if (!a || !b)
                return 0;
        memset(a, 1, size * 4);
        memset(b, 2, size);
        for (unsigned run = 0; run < RUNS; run++) {
                uint64_t t0 = bench_now_ns();
                for (unsigned i = 0; i < FRAMES; i++) {
                        memcpy(b, a + (i % 4) * size, size); /* four sources, as the four input buffers */
                        __asm__ volatile("" ::"r"(b) : "memory");
                }
                best = MIN(best, bench_now_ns() - t0);
        }
        return (double) size * FRAMES / (double) best;
}

int main(int argc, char **argv) {
        char dir[64], sock[128];
        size_t stream_size, frame_size, nv12 = (size_t) WIDTH * HEIGHT * 3 / 2;
        _cleanup_free_ uint8_t *stream = bench_null_stream(FRAMES, WIDTH, HEIGHT, &stream_size, &frame_size);
        _cleanup_free_ size_t *chunks = calloc(FRAMES, sizeof(size_t));
        uint64_t best = UINT64_MAX;
        pid_t worker = 0;
        BenchJson j;
        int r;

        if (!stream || !chunks)
                return EXIT_FAILURE;
        signal(SIGPIPE, SIG_IGN);
        for (unsigned i = 0; i < FRAMES; i++)
                chunks[i] = frame_size;

        double copy = memcpy_gbps(nv12);
        if (bench_tmpdir(dir, sizeof(dir)) < 0)
                return EXIT_FAILURE;
        snprintf(sock, sizeof(sock), "%s/frames.sock", dir);
        r = bench_spawn_worker("null", sock, NULL, &worker);
        for (unsigned run = 0; r >= 0 && run < RUNS; run++) {
                VuFrontend *fe;
                VideoClient *c;
                unsigned frames = 0;
                VcDecodeResult res;

                r = bench_connect(sock, 128u << 20, &fe, &c);
                if (r < 0)
                        break;
                VcDecodeOptions o = {
                        .stream_id = 1,
                        .output_format = VIDEO_FORMAT_NV12,
                        .bitstream = stream,
                        .size = stream_size,
                        .chunk_sizes = chunks,
                        .n_chunks = FRAMES,
                        .n_input_buffers = 4,
                        .n_output_buffers = 6,
                        .input_buffer_size = (uint32_t) frame_size,
                        .frame = count_frames,
                        .userdata = &frames,
                };
                uint64_t t0 = bench_now_ns();
                r = video_client_decode(c, &o, &res);
                uint64_t dt = bench_now_ns() - t0;
                bench_disconnect(fe, c);
                if (r != 0 || frames != FRAMES) {
                        fprintf(stderr, "decode failed: %d, %u of %u frames\n", r, frames, FRAMES);
                        r = -EIO;
                        break;
                }
                best = MIN(best, dt);
        }
        bench_stop_worker(worker);
        bench_rmdir(dir);
        if (r < 0) {
                fprintf(stderr, "frame path failed: %s\n", strerror(-r));
                return EXIT_FAILURE;
        }

        double fps = FRAMES / ((double) best / 1e9);
        double gbps = (double) nv12 * FRAMES / (double) best;
        printf("Frame path: %u frames of %ux%u NV12 (%zu bytes) through the null backend, best of %u runs\n",
               FRAMES, WIDTH, HEIGHT, nv12, RUNS);
        printf("%-34s %10s %10s\n", "", "frames/s", "GB/s");
        printf("%-34s %10.1f %10.2f\n", "memcpy of the same size (limit)", copy / (double) nv12 * 1e9, copy);
        printf("%-34s %10.1f %10.2f\n", "RESOURCE_QUEUE through vhost", fps, gbps);
        printf("%-34s %21.1f%%   (target >= 80%%: %s)\n", "path / memcpy", 100 * gbps / copy,
               gbps / copy >= 0.8 ? "met" : "NOT met");

        if (bench_json_open(&j, "frame-path") < 0)
                return EXIT_FAILURE;
        bench_json_str(&j, "benchmark", "frame path, 1080p NV12, null backend");
        bench_json_num(&j, "frames", FRAMES);
        bench_json_num(&j, "frame_bytes", (double) nv12);
        bench_json_num(&j, "memcpy_gbps", copy);
        bench_json_num(&j, "path_fps", fps);
        bench_json_num(&j, "path_gbps", gbps);
        bench_json_num(&j, "ratio", gbps / copy);
        bench_json_num(&j, "target_ratio", 0.8);
        bench_json_bool(&j, "target_met", gbps / copy >= 0.8);
        return bench_json_close(&j) < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
