/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Benchmark 1: the command round trip. A GET_PARAMS_EXT through the whole vhost-user path (the client
 * writes the chain and kicks; the worker wakes, pops, parses, answers, pushes and calls; the client
 * wakes on the call eventfd), against the floor: an eventfd ping-pong between two processes, which is
 * the least any round trip between the frontend and a worker process can cost. Target: p50 within 2x.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench-common.h"
#include "common/macro.h"
#include "frontend/frontend.h"
#include "frontend/video-client.h"
#include "backend/backend.h"
#include "video/virtio-video-proto.h"

#define WARMUP 500u
#define ITERATIONS 20000u

static int eventfd_floor(uint64_t *samples, unsigned n) {
        int req = eventfd(0, EFD_CLOEXEC), resp = eventfd(0, EFD_CLOEXEC);
        uint64_t v = 1;
        pid_t pid;

        if (req < 0 || resp < 0)
                return -errno;
        pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0) {
                for (unsigned i = 0; i < n + WARMUP; i++) {
                        if (read(req, &v, sizeof(v)) != sizeof(v) || write(resp, &v, sizeof(v)) != sizeof(v))
                                _exit(1);
                }
                _exit(0);
        }
        for (unsigned i = 0; i < n + WARMUP; i++) {
                uint64_t t0 = bench_now_ns();
                if (write(req, &v, sizeof(v)) != sizeof(v) || read(resp, &v, sizeof(v)) != sizeof(v))
                        return -EIO;
                if (i >= WARMUP)
                        samples[i - WARMUP] = bench_now_ns() - t0;
        }
        (void) waitpid(pid, NULL, 0);
        close(req);
        close(resp);
        return 0;
}

static int path_roundtrip(uint64_t *samples, unsigned n) {
        char dir[64], sock[128];
        VuFrontend *fe = NULL;
        VideoClient *c = NULL;
        pid_t worker = 0;
        VcParams p;
        int r;

        r = bench_tmpdir(dir, sizeof(dir));
        if (r < 0)
                return r;
        snprintf(sock, sizeof(sock), "%s/rt.sock", dir);
        r = bench_spawn_worker("null", sock, NULL, &worker);
        if (r < 0)
                goto finish;
        r = bench_connect(sock, 16u << 20, &fe, &c);
        if (r < 0)
                goto finish;
        r = video_client_stream_create(c, 1, VIDEO_FORMAT_FWHT, "bench");
        if (r != 0)
                goto finish;
        for (unsigned i = 0; i < n + WARMUP; i++) {
                uint64_t t0 = bench_now_ns();
                r = video_client_get_params(c, 1, VIRTIO_VIDEO_QUEUE_TYPE_INPUT, true, &p);
                if (r != 0)
                        goto finish;
                if (i >= WARMUP)
                        samples[i - WARMUP] = bench_now_ns() - t0;
        }
        r = 0;
finish:
        if (c)
                bench_disconnect(fe, c);
        bench_stop_worker(worker);
        bench_rmdir(dir);
        return r > 0 ? -EPROTO : r;
}

int main(int argc, char **argv) {
        _cleanup_free_ uint64_t *floor = calloc(ITERATIONS, sizeof(uint64_t));
        _cleanup_free_ uint64_t *path = calloc(ITERATIONS, sizeof(uint64_t));
        BenchJson j;
        int r;

        if (!floor || !path)
                return EXIT_FAILURE;
        signal(SIGPIPE, SIG_IGN);
        r = eventfd_floor(floor, ITERATIONS);
        if (r < 0) {
                fprintf(stderr, "eventfd ping-pong failed: %s\n", strerror(-r));
                return EXIT_FAILURE;
        }
        r = path_roundtrip(path, ITERATIONS);
        if (r < 0) {
                fprintf(stderr, "GET_PARAMS round trip failed: %s\n", strerror(-r));
                return EXIT_FAILURE;
        }
        double f50 = (double) bench_percentile(floor, ITERATIONS, 50) / 1e3;
        double f99 = (double) bench_percentile(floor, ITERATIONS, 99) / 1e3;
        double p50 = (double) bench_percentile(path, ITERATIONS, 50) / 1e3;
        double p99 = (double) bench_percentile(path, ITERATIONS, 99) / 1e3;

        printf("Command round trip, %u iterations after %u warm-up\n", ITERATIONS, WARMUP);
        printf("%-30s %10s %10s\n", "", "p50 (us)", "p99 (us)");
        printf("%-30s %10.2f %10.2f\n", "eventfd ping-pong (floor)", f50, f99);
        printf("%-30s %10.2f %10.2f\n", "GET_PARAMS_EXT through vhost", p50, p99);
        printf("%-30s %10.2fx %9.2fx   (target p50 <= 2x: %s)\n", "ratio path / floor", p50 / f50, p99 / f99,
               p50 / f50 <= 2.0 ? "met" : "NOT met");

        if (bench_json_open(&j, "roundtrip") < 0)
                return EXIT_FAILURE;
        bench_json_str(&j, "benchmark", "command round trip");
        bench_json_num(&j, "iterations", ITERATIONS);
        bench_json_num(&j, "floor_p50_us", f50);
        bench_json_num(&j, "floor_p99_us", f99);
        bench_json_num(&j, "path_p50_us", p50);
        bench_json_num(&j, "path_p99_us", p99);
        bench_json_num(&j, "ratio_p50", p50 / f50);
        bench_json_num(&j, "ratio_p99", p99 / f99);
        bench_json_num(&j, "target_ratio_p50", 2.0);
        bench_json_bool(&j, "target_met", p50 / f50 <= 2.0);
        return bench_json_close(&j) < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
