/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Shared pieces of the benchmarks (tests/bench/README.md): monotonic time, percentiles, the result file
 * (one JSON object per benchmark), and a worker process serving a socket for the frontend library.
 * Benchmarks report ratios against a baseline measured in the same run; they never fail on a number.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

typedef struct VuFrontend VuFrontend;
typedef struct VideoClient VideoClient;

uint64_t bench_now_ns(void);
/* Runs to take the best of: $BENCH_RUNS (1..100) when set, else `fallback`. On a shared, noisy machine
 * more runs make the best of them steadier. */
unsigned bench_runs(unsigned fallback);
/* Sorts v and returns the p-th percentile (0 < p <= 100), nearest rank. */
uint64_t bench_percentile(uint64_t *v, size_t n, double p);

/* A flat JSON object written to <results dir>/<name>.json; the results dir is $BENCH_RESULTS_DIR or
 * "tests/bench/results" under the current directory. */
typedef struct BenchJson {
        FILE *f;
        bool first;
        char path[512];
} BenchJson;
int bench_json_open(BenchJson *j, const char *name);
void bench_json_num(BenchJson *j, const char *key, double value);
void bench_json_str(BenchJson *j, const char *key, const char *value);
void bench_json_bool(BenchJson *j, const char *key, bool value);
int bench_json_close(BenchJson *j); /* prints the path it wrote */

/* The worker binary: $VHOST_USER_VIDEO, else the one of this build; sets $VIRTIO_VIDEO_BACKEND_DIR to this
 * build's backend modules unless set. */
const char *bench_worker_path(void);
/* Starts `vhost-user-video --backend <backend> --socket-path <path> [extra...]` and waits until the socket
 * exists. extra: NULL-terminated, may be NULL. */
int bench_spawn_worker(const char *backend, const char *socket_path, const char *const *extra, pid_t *ret_pid);
void bench_stop_worker(pid_t pid);
/* Connects the frontend library to a worker's socket, starts it, and probes the device. */
int bench_connect(const char *socket_path, uint64_t mem_size, VuFrontend **ret_fe, VideoClient **ret_client);
void bench_disconnect(VuFrontend *fe, VideoClient *c);
/* A scratch directory for sockets, removed by the caller with bench_rmdir(). */
int bench_tmpdir(char *buf, size_t size);
void bench_rmdir(const char *dir);
/* Resident set size of a process in KiB (VmRSS), or 0. */
uint64_t bench_rss_kib(pid_t pid);
/* A null-codec stream (/work/wt/_notes/null-codec.md) of n frames of w x h; caller frees. */
uint8_t *bench_null_stream(unsigned frames, unsigned w, unsigned h, size_t *ret_size, size_t *ret_frame_size);
