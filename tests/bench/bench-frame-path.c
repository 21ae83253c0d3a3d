/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Benchmark 2: the frame path. 1080p pictures through the null backend, the whole way through the
 * vhost-user path: the guest side writes each coded picture (I420) from the stream into an input buffer and
 * queues it, the device copies it once into the guest's NV12 output buffer. Frames per second and GB/s of
 * output, against memcpy bandwidth measured in the same run. Target: at least 80% of the memcpy baseline.
 *
 * The baseline is memcpy of the same buffers: the two copies the path cannot avoid, between the same
 * buffers, on two threads as the guest and the device make them on two cores, without the path around
 * them: one thread copies each picture from the stream (FRAMES distinct pictures, 373 MB: main memory,
 * beyond the caches) into one of the INPUT_BUFFERS input buffers (the guest's copy), the other copies
 * input buffers into the OUTPUT_BUFFERS output buffers (the device's). What the path costs beyond that
 * is the transport, the protocol, two processes and their handshakes. The baselines run between the
 * path's runs, so that both see the same share of a busy machine.
 * For comparison it also prints one copy of each picture from the stream into the output buffers (the
 * bytes the path must move at least once; two copies sharing the memory bandwidth cannot reach it), and
 * the earlier baseline: four 3 MB sources into one 3 MB destination, 15 MB that stay in the 32 MB L3, a
 * single copy the path can never make since its bytes come from the stream and go through two copies.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
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
#define RUNS bench_runs(3u)
#define INPUT_BUFFERS 4u
#define OUTPUT_BUFFERS 6u

static int count_frames(void *userdata, const VcFrame *f) {
        (*(unsigned *) userdata)++;
        return 0;
}

/* The memcpy baselines' buffers, written before they are timed. */
typedef struct Baselines {
        uint8_t *in, *out, *cached_src, *cached_dst;
} Baselines;

enum { BASE_TWO_COPIES, BASE_ONE_COPY, BASE_CACHED, _BASE_MAX };

static int baselines_init(Baselines *b, size_t frame_size, size_t size) {
        b->in = malloc(frame_size * INPUT_BUFFERS);
        b->out = malloc(size * OUTPUT_BUFFERS);
        b->cached_src = malloc(size * INPUT_BUFFERS);
        b->cached_dst = malloc(size);
        if (!b->in || !b->out || !b->cached_src || !b->cached_dst)
                return -ENOMEM;
        memset(b->in, 1, frame_size * INPUT_BUFFERS);
        memset(b->out, 2, size * OUTPUT_BUFFERS);
        memset(b->cached_src, 3, size * INPUT_BUFFERS);
        memset(b->cached_dst, 4, size);
        return 0;
}

static void baselines_done(Baselines *b) {
        free(b->in);
        free(b->out);
        free(b->cached_src);
        free(b->cached_dst);
}

typedef struct GuestCopy {
        Baselines *b;
        const uint8_t *stream;
        size_t frame_size;
} GuestCopy;

/* The guest's copies of the two-copies baseline: every picture from the stream into an input buffer. */
static void *guest_copy(void *userdata) {
        GuestCopy *g = userdata;

        for (unsigned i = 0; i < FRAMES; i++) {
                uint8_t *in = g->b->in + (i % INPUT_BUFFERS) * g->frame_size;
                memcpy(in, g->stream + i * g->frame_size, g->frame_size);
                __asm__ volatile("" ::"r"(in) : "memory");
        }
        return NULL;
}

/* One timed pass of each baseline over FRAMES pictures, keeping the best time of each:
 * - two copies: the path's two copies on two threads, as the guest and the device make them on two
 *   cores: one thread copies each picture from the stream into an input buffer while the other copies
 *   input buffers into output buffers (the same bytes through the same buffers; no handshake, which is
 *   the path's part);
 * - one copy: each picture's payload from the stream straight into an output buffer;
 * - cached (the earlier baseline): four cache-resident sources into one destination. */
static void baselines_run(Baselines *b, const uint8_t *stream, size_t frame_size, size_t size, uint64_t best[]) {
        for (unsigned k = 0; k < _BASE_MAX; k++) {
                GuestCopy g = { b, stream, frame_size };
                pthread_t guest;
                uint64_t t0 = bench_now_ns();

                if (k == BASE_TWO_COPIES && pthread_create(&guest, NULL, guest_copy, &g) != 0)
                        continue;
                for (unsigned i = 0; i < FRAMES; i++) {
                        uint8_t *o = k == BASE_CACHED ? b->cached_dst : b->out + (i % OUTPUT_BUFFERS) * size;
                        const uint8_t *src = stream + i * frame_size + 16;

                        if (k == BASE_TWO_COPIES)
                                src = b->in + (i % INPUT_BUFFERS) * frame_size + 16;
                        else if (k == BASE_CACHED)
                                src = b->cached_src + (i % INPUT_BUFFERS) * size;
                        memcpy(o, src, size);
                        __asm__ volatile("" ::"r"(o) : "memory");
                }
                if (k == BASE_TWO_COPIES)
                        pthread_join(guest, NULL);
                best[k] = MIN(best[k], bench_now_ns() - t0);
        }
}

int main(int argc, char **argv) {
        char dir[64], sock[128];
        size_t stream_size, frame_size, nv12 = (size_t) WIDTH * HEIGHT * 3 / 2;
        _cleanup_free_ uint8_t *stream = bench_null_stream(FRAMES, WIDTH, HEIGHT, &stream_size, &frame_size);
        _cleanup_free_ size_t *chunks = calloc(FRAMES, sizeof(size_t));
        uint64_t best = UINT64_MAX, base_best[_BASE_MAX] = { UINT64_MAX, UINT64_MAX, UINT64_MAX };
        Baselines base = {};
        VuFrontend *fe = NULL;
        VideoClient *c = NULL;
        pid_t worker = 0;
        BenchJson j;
        int r;

        if (!stream || !chunks)
                return EXIT_FAILURE;
        signal(SIGPIPE, SIG_IGN);
        for (unsigned i = 0; i < FRAMES; i++)
                chunks[i] = frame_size;

        if (baselines_init(&base, frame_size, nv12) < 0) {
                baselines_done(&base);
                return EXIT_FAILURE;
        }
        if (bench_tmpdir(dir, sizeof(dir)) < 0)
                return EXIT_FAILURE;
        snprintf(sock, sizeof(sock), "%s/frames.sock", dir);
        r = bench_spawn_worker("null", sock, NULL, &worker);
        if (r >= 0)
                r = bench_connect(sock, 128u << 20, &fe, &c);
        /* One connection for every run, and run 0 untimed: it faults in the guest memory of the buffers on
         * both sides (fresh memfd pages, zeroed by the kernel), as the memcpy baseline's buffers are
         * before it is timed; a VM's RAM and its reused V4L2 buffers are resident too. The baselines run
         * between the path's runs, so that both see the same share of a busy machine. */
        for (unsigned run = 0; r >= 0 && run <= RUNS; run++) {
                unsigned frames = 0;
                VcDecodeResult res;

                if (run > 0)
                        baselines_run(&base, stream, frame_size, nv12, base_best);

                VcDecodeOptions o = {
                        .stream_id = 1,
                        .output_format = VIDEO_FORMAT_NV12,
                        .bitstream = stream,
                        .size = stream_size,
                        .chunk_sizes = chunks,
                        .n_chunks = FRAMES,
                        .n_input_buffers = INPUT_BUFFERS,
                        .n_output_buffers = OUTPUT_BUFFERS,
                        .input_buffer_size = (uint32_t) frame_size,
                        .frame = count_frames,
                        .userdata = &frames,
                };
                uint64_t t0 = bench_now_ns();
                r = video_client_decode(c, &o, &res);
                uint64_t dt = bench_now_ns() - t0;
                if (r != 0 || frames != FRAMES) {
                        fprintf(stderr, "decode failed: %d, %u of %u frames\n", r, frames, FRAMES);
                        r = -EIO;
                        break;
                }
                if (run > 0)
                        best = MIN(best, dt);
        }
        if (fe)
                bench_disconnect(fe, c);
        bench_stop_worker(worker);
        bench_rmdir(dir);
        baselines_done(&base);
        double copy = (double) nv12 * FRAMES / (double) base_best[BASE_TWO_COPIES];
        double one = (double) nv12 * FRAMES / (double) base_best[BASE_ONE_COPY];
        double cached = (double) nv12 * FRAMES / (double) base_best[BASE_CACHED];
        if (r < 0) {
                fprintf(stderr, "frame path failed: %s\n", strerror(-r));
                return EXIT_FAILURE;
        }

        double fps = FRAMES / ((double) best / 1e9);
        double gbps = (double) nv12 * FRAMES / (double) best;
        printf("Frame path: %u frames of %ux%u NV12 (%zu bytes) through the null backend, best of %u runs\n",
               FRAMES, WIDTH, HEIGHT, nv12, RUNS);
        printf("%-42s %10s %10s\n", "", "frames/s", "GB/s");
        printf("%-42s %10.1f %10.2f\n", "memcpy stream->input | input->output", copy / (double) nv12 * 1e9,
               copy);
        printf("%-42s %10.1f %10.2f\n", "memcpy stream->output (one copy)", one / (double) nv12 * 1e9, one);
        printf("%-42s %10.1f %10.2f\n", "memcpy 4 x 3 MB -> 3 MB (cache resident)", cached / (double) nv12 * 1e9,
               cached);
        printf("%-42s %10.1f %10.2f\n", "RESOURCE_QUEUE through vhost", fps, gbps);
        printf("%-42s %21.1f%%   (target >= 80%%: %s)\n", "path / memcpy", 100 * gbps / copy,
               gbps / copy >= 0.8 ? "met" : "NOT met");
        printf("%-42s %21.1f%%\n", "path / one copy", 100 * gbps / one);
        printf("%-42s %21.1f%%\n", "path / cache-resident copy", 100 * gbps / cached);

        if (bench_json_open(&j, "frame-path") < 0)
                return EXIT_FAILURE;
        bench_json_str(&j, "benchmark", "frame path, 1080p NV12, null backend");
        bench_json_num(&j, "frames", FRAMES);
        bench_json_num(&j, "frame_bytes", (double) nv12);
        bench_json_num(&j, "memcpy_gbps", copy);
        bench_json_num(&j, "memcpy_one_copy_gbps", one);
        bench_json_num(&j, "memcpy_cached_gbps", cached);
        bench_json_num(&j, "path_fps", fps);
        bench_json_num(&j, "path_gbps", gbps);
        bench_json_num(&j, "ratio", gbps / copy);
        bench_json_num(&j, "ratio_one_copy", gbps / one);
        bench_json_num(&j, "ratio_cached", gbps / cached);
        bench_json_num(&j, "target_ratio", 0.8);
        bench_json_bool(&j, "target_met", gbps / copy >= 0.8);
        return bench_json_close(&j) < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
