/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Benchmark 3: decode. A 1080p H.264 stream (made here with libavcodec) decoded through the whole path
 * (frontend library -> vhost-user -> worker with the ffmpeg-decoder backend -> NV12 in guest memory),
 * against a direct libavcodec decode of the same packets with the same thread count, in the same run.
 * Target: at least 97% of the direct throughput. Then decode throughput against the number of concurrent
 * streams (1, 2, 4, 8; one worker and one connection each, as with one VM each), written as a data file
 * and, when gnuplot is installed, a PNG plot.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <libavcodec/avcodec.h>
#include <libavutil/imgutils.h>
#include <libavutil/opt.h>

#include "backend/backend.h"
#include "bench-common.h"
#include "common/macro.h"
#include "frontend/frontend.h"
#include "frontend/video-client.h"
#include "video/virtio-video-proto.h"

#define WIDTH 1920u
#define HEIGHT 1080u
#define FRAMES 60u
#define RUNS bench_runs(3u)
#define MAX_STREAMS 8u

typedef struct Stream {
        uint8_t *data;
        size_t size;
        size_t *packet_sizes;
        unsigned n_packets;
} Stream;

static unsigned arg_threads = 1;

static void stream_done(Stream *s) {
        free(s->data);
        free(s->packet_sizes);
}

static int stream_append(Stream *s, const AVPacket *pkt) {
        uint8_t *d = realloc(s->data, s->size + (size_t) pkt->size);
        size_t *p = reallocarray(s->packet_sizes, s->n_packets + 1, sizeof(size_t));

        if (d)
                s->data = d;
        if (p)
                s->packet_sizes = p;
        if (!d || !p)
                return -ENOMEM;
        memcpy(s->data + s->size, pkt->data, (size_t) pkt->size);
        s->size += (size_t) pkt->size;
        s->packet_sizes[s->n_packets++] = (size_t) pkt->size;
        return 0;
}

/* Moving diagonal bands with a little noise, so that motion search and entropy coding have work. */
static int make_h264(Stream *s) {
        const AVCodec *codec = avcodec_find_encoder_by_name("libx264") ?: avcodec_find_encoder(AV_CODEC_ID_H264);
        AVCodecContext *ctx = NULL;
        AVFrame *frame = av_frame_alloc();
        AVPacket *pkt = av_packet_alloc();
        uint32_t seed = 1;
        int r = -ENOMEM;

        if (!codec) {
                r = -EOPNOTSUPP;
                goto finish;
        }
        ctx = avcodec_alloc_context3(codec);
        if (!ctx || !frame || !pkt)
                goto finish;
        ctx->width = WIDTH;
        ctx->height = HEIGHT;
        ctx->pix_fmt = AV_PIX_FMT_YUV420P;
        ctx->time_base = (AVRational){ 1, 30 };
        ctx->framerate = (AVRational){ 30, 1 };
        ctx->gop_size = 30;
        ctx->max_b_frames = 0;
        ctx->bit_rate = 8000000;
        (void) av_opt_set(ctx->priv_data, "preset", "veryfast", 0);
        r = avcodec_open2(ctx, codec, NULL);
        if (r < 0)
                goto finish;
        frame->format = ctx->pix_fmt;
        frame->width = WIDTH;
        frame->height = HEIGHT;
        r = av_frame_get_buffer(frame, 0);
        if (r < 0)
                goto finish;
        for (int i = 0; i <= (int) FRAMES; i++) {
                if (i < (int) FRAMES) {
                        r = av_frame_make_writable(frame);
                        if (r < 0)
                                goto finish;
                        /* Film-grain-like noise over moving bands: a bitrate and a decode cost like camera
                         * content, not the near-empty stream a clean gradient gives. */
                        for (int y = 0; y < (int) HEIGHT; y++)
                                for (int x = 0; x < (int) WIDTH; x++) {
                                        seed = seed * 1103515245u + 12345u;
                                        frame->data[0][y * frame->linesize[0] + x] =
                                                (uint8_t) ((x + y + i * 8) / 4 + (int) ((seed >> 16) & 15));
                                }
                        for (int y = 0; y < (int) HEIGHT / 2; y++)
                                for (int x = 0; x < (int) WIDTH / 2; x++) {
                                        frame->data[1][y * frame->linesize[1] + x] = (uint8_t) (128 + (x - i) / 8);
                                        frame->data[2][y * frame->linesize[2] + x] = (uint8_t) (128 + (y + i) / 8);
                                }
                        frame->pts = i;
                }
                r = avcodec_send_frame(ctx, i < (int) FRAMES ? frame : NULL);
                if (r < 0)
                        goto finish;
                while ((r = avcodec_receive_packet(ctx, pkt)) == 0) {
                        r = stream_append(s, pkt);
                        av_packet_unref(pkt);
                        if (r < 0)
                                goto finish;
                }
                if (r != AVERROR(EAGAIN) && r != AVERROR_EOF)
                        goto finish;
        }
        r = 0;
finish:
        avcodec_free_context(&ctx);
        av_frame_free(&frame);
        av_packet_free(&pkt);
        return r;
}

/* Direct libavcodec decode of every packet; returns the time in ns, or 0 on failure. Timed from opening
 * the decoder to closing it, as the path is timed from STREAM_CREATE (which opens the worker's decoder)
 * to STREAM_DESTROY. */
static uint64_t decode_direct(const Stream *s, unsigned *ret_frames) {
        const AVCodec *codec = avcodec_find_decoder(AV_CODEC_ID_H264);
        AVCodecContext *ctx = NULL;
        AVFrame *frame = av_frame_alloc();
        AVPacket *pkt = av_packet_alloc();
        uint64_t t0 = bench_now_ns(), dt = 0;
        unsigned frames = 0;
        size_t off = 0;

        ctx = avcodec_alloc_context3(codec);
        if (!ctx || !frame || !pkt)
                goto finish;
        ctx->thread_count = (int) arg_threads;
        if (avcodec_open2(ctx, codec, NULL) < 0)
                goto finish;
        for (unsigned i = 0; i <= s->n_packets; i++) {
                int r;
                if (i < s->n_packets) {
                        pkt->data = s->data + off;
                        pkt->size = (int) s->packet_sizes[i];
                        off += s->packet_sizes[i];
                }
                r = avcodec_send_packet(ctx, i < s->n_packets ? pkt : NULL);
                if (r < 0)
                        goto finish;
                while (avcodec_receive_frame(ctx, frame) == 0) {
                        frames++;
                        av_frame_unref(frame);
                }
        }
        avcodec_free_context(&ctx);
        dt = bench_now_ns() - t0;
finish:
        *ret_frames = frames;
        avcodec_free_context(&ctx);
        av_frame_free(&frame);
        av_packet_free(&pkt);
        return dt;
}

static int count_frames(void *userdata, const VcFrame *f) {
        (*(unsigned *) userdata)++;
        return 0;
}

/* Every stream connects first; the decodes start together once all are connected. */
typedef struct Gate {
        pthread_mutex_t lock;
        pthread_cond_t cond;
        unsigned ready;
        bool open;
} Gate;

typedef struct Job {
        const Stream *s;
        char sock[128];
        Gate *gate;
        unsigned frames;
        uint64_t end;
        int r;
} Job;

/* Connects (the vhost-user session a VM sets up once), waits for the other streams, then decodes: timed
 * from the gate opening to the end of the session (STREAM_DESTROY answered), not the disconnect. */
static void *decode_through_path(void *userdata) {
        Job *job = userdata;
        VuFrontend *fe;
        VideoClient *c;
        VcDecodeResult res;

        job->frames = 0;
        job->r = bench_connect(job->sock, 256u << 20, &fe, &c);
        pthread_mutex_lock(&job->gate->lock);
        job->gate->ready++;
        pthread_cond_broadcast(&job->gate->cond);
        while (!job->gate->open)
                pthread_cond_wait(&job->gate->cond, &job->gate->lock);
        pthread_mutex_unlock(&job->gate->lock);
        if (job->r < 0)
                return NULL;
        VcDecodeOptions o = {
                .stream_id = 1,
                .coded_format = VIDEO_FORMAT_H264,
                .output_format = VIDEO_FORMAT_NV12,
                .bitstream = job->s->data,
                .size = job->s->size,
                .chunk_sizes = job->s->packet_sizes,
                .n_chunks = job->s->n_packets,
                .n_input_buffers = 8,
                .input_buffer_size = 1u << 20,
                .frame = count_frames,
                .userdata = &job->frames,
        };
        job->r = video_client_decode(c, &o, &res);
        job->end = bench_now_ns();
        bench_disconnect(fe, c);
        return NULL;
}

/* n concurrent streams, one worker each; returns the elapsed ns of the slowest, 0 on failure. */
static uint64_t run_streams(const Stream *s, unsigned n, const char *dir) {
        Job jobs[MAX_STREAMS] = {};
        pthread_t threads[MAX_STREAMS];
        Gate gate = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };
        pid_t workers[MAX_STREAMS] = {};
        char threads_arg[32];
        const char *extra[] = { threads_arg, NULL };
        uint64_t t0, dt = 0;
        unsigned started = 0;
        bool ok = true;

        snprintf(threads_arg, sizeof(threads_arg), "--threads=%u", arg_threads);
        for (unsigned i = 0; i < n; i++) {
                jobs[i].s = s;
                jobs[i].gate = &gate;
                snprintf(jobs[i].sock, sizeof(jobs[i].sock), "%s/dec%u.sock", dir, i);
                if (bench_spawn_worker("ffmpeg-decoder", jobs[i].sock, extra, &workers[i]) < 0) {
                        ok = false;
                        break;
                }
        }
        for (; ok && started < n; started++)
                if (pthread_create(&threads[started], NULL, decode_through_path, &jobs[started]) != 0) {
                        ok = false;
                        break;
                }
        pthread_mutex_lock(&gate.lock);
        while (gate.ready < started)
                pthread_cond_wait(&gate.cond, &gate.lock);
        gate.open = true;
        pthread_cond_broadcast(&gate.cond);
        pthread_mutex_unlock(&gate.lock);
        t0 = bench_now_ns();
        for (unsigned i = 0; i < started; i++) {
                pthread_join(threads[i], NULL);
                dt = MAX(dt, jobs[i].end > t0 ? jobs[i].end - t0 : 0);
        }
        for (unsigned i = 0; i < n; i++) {
                bench_stop_worker(workers[i]);
                if (i < started && (jobs[i].r != 0 || jobs[i].frames != FRAMES)) {
                        fprintf(stderr, "stream %u: result %d, %u of %u frames\n", i, jobs[i].r, jobs[i].frames,
                                FRAMES);
                        ok = false;
                }
        }
        return ok ? dt : 0;
}

static void plot(const char *dat, const char *png) {
        FILE *g = popen("gnuplot 2>/dev/null", "w");

        if (!g)
                return;
        fprintf(g, "set terminal png size 800,500\nset output '%s'\n"
                   "set title 'H.264 1080p decode through virtio-video (ffmpeg backend, %u thread per stream)'\n"
                   "set xlabel 'concurrent streams'\nset ylabel 'frames per second (all streams)'\n"
                   "set logscale x 2\nset xrange [0.8:10]\nset xtics (1,2,4,8)\nset yrange [0:*]\nset grid\n"
                   "plot '%s' using 1:2 with linespoints title 'through the vhost-user path', "
                   "'%s' using 1:3 with lines dashtype 2 title 'direct libavcodec, one stream'\n",
                png, arg_threads, dat, dat);
        if (pclose(g) == 0)
                printf("Plot written to %s\n", png);
}

int main(int argc, char **argv) {
        const char *dirname_results = getenv("BENCH_RESULTS_DIR") ?: "tests/bench/results";
        static const unsigned counts[] = { 1, 2, 4, 8 };
        double scaling[ELEMENTSOF(counts)];
        Stream s = {};
        char dir[64], dat[512], png[512];
        uint64_t best_direct = UINT64_MAX, best_path = UINT64_MAX;
        unsigned frames = 0;
        BenchJson j;
        int r;

        signal(SIGPIPE, SIG_IGN);
        if (getenv("BENCH_THREADS"))
                arg_threads = (unsigned) atoi(getenv("BENCH_THREADS")) ?: 1;
        r = make_h264(&s);
        if (r < 0) {
                fprintf(stderr, "Could not make the H.264 stream: %s\n", av_err2str(r));
                return EXIT_FAILURE;
        }
        if (bench_tmpdir(dir, sizeof(dir)) < 0)
                return EXIT_FAILURE;

        for (unsigned run = 0; run < RUNS; run++) {
                uint64_t d = decode_direct(&s, &frames), p;
                if (d == 0 || frames != FRAMES) {
                        fprintf(stderr, "direct decode failed (%u frames)\n", frames);
                        return EXIT_FAILURE;
                }
                best_direct = MIN(best_direct, d);
                p = run_streams(&s, 1, dir);
                if (p == 0) {
                        fprintf(stderr, "decode through the path failed\n");
                        bench_rmdir(dir);
                        return EXIT_FAILURE;
                }
                best_path = MIN(best_path, p);
        }
        double direct_fps = FRAMES / ((double) best_direct / 1e9), path_fps = FRAMES / ((double) best_path / 1e9);

        printf("Decode: %u frames of %ux%u H.264 (%zu bytes), %u codec thread%s, best of %u runs\n", FRAMES, WIDTH,
               HEIGHT, s.size, arg_threads, arg_threads == 1 ? "" : "s", RUNS);
        printf("%-36s %10s\n", "", "frames/s");
        printf("%-36s %10.1f\n", "direct libavcodec (limit)", direct_fps);
        printf("%-36s %10.1f\n", "through vhost-user, ffmpeg backend", path_fps);
        printf("%-36s %9.1f%%   (target >= 97%%: %s)\n", "path / direct", 100 * path_fps / direct_fps,
               path_fps / direct_fps >= 0.97 ? "met" : "NOT met");

        snprintf(dat, sizeof(dat), "%s/decode-streams.dat", dirname_results);
        snprintf(png, sizeof(png), "%s/decode-streams.png", dirname_results);
        (void) mkdir(dirname_results, 0755);
        FILE *f = fopen(dat, "we");
        if (!f)
                return EXIT_FAILURE;
        fprintf(f, "# streams path_fps direct_fps_one_stream\n");
        printf("\n%-10s %14s %14s\n", "streams", "total fps", "per stream");
        for (unsigned k = 0; k < ELEMENTSOF(counts); k++) {
                uint64_t dt = run_streams(&s, counts[k], dir);
                if (dt == 0) {
                        fclose(f);
                        bench_rmdir(dir);
                        return EXIT_FAILURE;
                }
                scaling[k] = counts[k] * FRAMES / ((double) dt / 1e9);
                printf("%-10u %14.1f %14.1f\n", counts[k], scaling[k], scaling[k] / counts[k]);
                fprintf(f, "%u %.3f %.3f\n", counts[k], scaling[k], direct_fps);
        }
        fclose(f);
        bench_rmdir(dir);
        plot(dat, png);

        if (bench_json_open(&j, "decode") < 0)
                return EXIT_FAILURE;
        bench_json_str(&j, "benchmark", "H.264 1080p decode, ffmpeg backend");
        bench_json_num(&j, "frames", FRAMES);
        bench_json_num(&j, "threads", arg_threads);
        bench_json_num(&j, "direct_fps", direct_fps);
        bench_json_num(&j, "path_fps", path_fps);
        bench_json_num(&j, "ratio", path_fps / direct_fps);
        bench_json_num(&j, "target_ratio", 0.97);
        bench_json_bool(&j, "target_met", path_fps / direct_fps >= 0.97);
        for (unsigned k = 0; k < ELEMENTSOF(counts); k++) {
                char key[32];
                snprintf(key, sizeof(key), "streams_%u_fps", counts[k]);
                bench_json_num(&j, key, scaling[k]);
        }
        stream_done(&s);
        return bench_json_close(&j) < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
