/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <ftw.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "backend/null/null-format.h"
#include "bench-common.h"
#include "common/macro.h"
#include "config.h"
#include "frontend/frontend.h"
#include "frontend/video-client.h"
#include "video/virtio-video-proto.h"

uint64_t bench_now_ns(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}

unsigned bench_runs(unsigned fallback) {
        const char *e = getenv("BENCH_RUNS");
        long n = e ? strtol(e, NULL, 10) : 0;

        return n >= 1 && n <= 100 ? (unsigned) n : fallback;
}

static int cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
        return x < y ? -1 : x > y;
}

uint64_t bench_percentile(uint64_t *v, size_t n, double p) {
        size_t rank;

        if (n == 0)
                return 0;
        qsort(v, n, sizeof(*v), cmp_u64);
        rank = (size_t) ((p / 100.0) * (double) n + 0.999999);
        if (rank == 0)
                rank = 1;
        return v[MIN(rank, n) - 1];
}

int bench_json_open(BenchJson *j, const char *name) {
        const char *dir = getenv("BENCH_RESULTS_DIR") ?: "tests/bench/results";
        char cmd[600];

        snprintf(cmd, sizeof(cmd), "%s", dir);
        (void) mkdir(dir, 0755);
        snprintf(j->path, sizeof(j->path), "%s/%s.json", dir, name);
        j->f = fopen(j->path, "we");
        if (!j->f)
                return -errno;
        j->first = true;
        fputc('{', j->f);
        return 0;
}

static void key(BenchJson *j, const char *k) {
        fprintf(j->f, "%s\n  \"%s\": ", j->first ? "" : ",", k);
        j->first = false;
}

void bench_json_num(BenchJson *j, const char *k, double value) {
        key(j, k);
        fprintf(j->f, "%.6g", value);
}

void bench_json_str(BenchJson *j, const char *k, const char *value) {
        key(j, k);
        fputc('"', j->f);
        for (const char *p = value; *p; p++) {
                if (*p == '"' || *p == '\\')
                        fputc('\\', j->f);
                if ((unsigned char) *p >= 0x20)
                        fputc(*p, j->f);
        }
        fputc('"', j->f);
}

void bench_json_bool(BenchJson *j, const char *k, bool value) {
        key(j, k);
        fputs(value ? "true" : "false", j->f);
}

int bench_json_close(BenchJson *j) {
        fputs("\n}\n", j->f);
        if (fclose(j->f) != 0)
                return -errno;
        printf("Results written to %s\n", j->path);
        return 0;
}

const char *bench_worker_path(void) {
        /* with the backend modules of the same build, unless told otherwise (backend/backend-module.h) */
        (void) setenv("VIRTIO_VIDEO_BACKEND_DIR", BENCH_BACKEND_DIR, /* overwrite= */ 0);
        return getenv("VHOST_USER_VIDEO") ?: BENCH_WORKER_PATH;
}

int bench_spawn_worker(const char *backend, const char *socket_path, const char *const *extra, pid_t *ret_pid) {
        const char *argv[32] = { "vhost-user-video", "--backend", backend, "--socket-path", socket_path };
        unsigned n = 5;
        pid_t pid;

        for (unsigned i = 0; extra && extra[i] && n < ELEMENTSOF(argv) - 1; i++)
                argv[n++] = extra[i];
        argv[n] = NULL;
        const char *worker = bench_worker_path();

        (void) unlink(socket_path);
        pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0) {
                /* The workers' lifecycle lines would drown the tables: keep them for BENCH_VERBOSE=1. */
                if (!getenv("BENCH_VERBOSE")) {
                        int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
                        if (devnull >= 0)
                                (void) dup2(devnull, STDERR_FILENO);
                }
                execv(worker, (char *const *) argv);
                _exit(127);
        }
        /* Wait (bounded) for the socket to appear. */
        for (unsigned i = 0; i < 5000; i++) {
                struct stat st;
                int status;
                if (stat(socket_path, &st) == 0 && S_ISSOCK(st.st_mode)) {
                        *ret_pid = pid;
                        return 0;
                }
                if (waitpid(pid, &status, WNOHANG) == pid)
                        return -ECHILD;
                usleep(1000);
        }
        bench_stop_worker(pid);
        return -ETIMEDOUT;
}

void bench_stop_worker(pid_t pid) {
        if (pid <= 0)
                return;
        (void) kill(pid, SIGTERM);
        (void) waitpid(pid, NULL, 0);
}

int bench_connect(const char *socket_path, uint64_t mem_size, VuFrontend **ret_fe, VideoClient **ret_client) {
        VuFrontend *fe = NULL;
        VideoClient *c = NULL;
        VuFrontendOptions o;
        VideoClientOptions vo;
        int r;

        vu_frontend_options_init(&o);
        o.mem_size = mem_size;
        o.queue_size = 256;
        o.config_size = sizeof(struct virtio_video_config);
        o.device_features = (1u << VIRTIO_VIDEO_F_RESOURCE_GUEST_PAGES) | (1u << VIRTIO_VIDEO_F_RESOURCE_NON_CONTIG);
        o.timeout_ms = 30000;
        /* The socket file exists from bind() on, a moment before the worker listens: retry a refusal. */
        for (unsigned i = 0; (r = vu_frontend_connect(&o, socket_path, &fe)) == -ECONNREFUSED && i < 5000; i++)
                usleep(1000);
        if (r < 0)
                return r;
        r = vu_frontend_start(fe);
        if (r >= 0) {
                video_client_options_init(&vo);
                vo.timeout_ms = 30000;
                r = video_client_new(fe, &vo, &c);
        }
        if (r >= 0) {
                r = video_client_probe(c);
                if (r > 0)
                        r = -EPROTO;
        }
        if (r < 0) {
                video_client_free(c);
                vu_frontend_free(fe);
                return r;
        }
        *ret_fe = fe;
        *ret_client = c;
        return 0;
}

void bench_disconnect(VuFrontend *fe, VideoClient *c) {
        video_client_free(c);
        vu_frontend_free(fe);
}

int bench_tmpdir(char *buf, size_t size) {
        snprintf(buf, size, "/tmp/vv-bench-XXXXXX");
        return mkdtemp(buf) ? 0 : -errno;
}

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw) {
        (void) remove(path);
        return 0;
}

void bench_rmdir(const char *dir) {
        (void) nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

uint64_t bench_rss_kib(pid_t pid) {
        char path[64], line[256];
        unsigned long long kib = 0;
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/status", (int) pid);
        f = fopen(path, "re");
        if (!f)
                return 0;
        while (fgets(line, sizeof(line), f))
                if (sscanf(line, "VmRSS: %llu kB", &kib) == 1)
                        break;
        fclose(f);
        return kib;
}

uint8_t *bench_null_stream(unsigned frames, unsigned w, unsigned h, size_t *ret_size, size_t *ret_frame_size) {
        *ret_frame_size = NULL_FRAME_HEADER_SIZE + null_frame_payload_size(w, h);
        return null_coded_stream_new(frames, (uint16_t) w, (uint16_t) h, ret_size);
}
