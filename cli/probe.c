/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backend/backend.h"
#include "backend/null/null-format.h"
#include "cli/probe.h"
#include "common/macro.h"
#include "frontend/frontend.h"
#include "frontend/video-client.h"
#include "video/virtio-video-proto.h"

#define PROBE_MEM_SIZE (64u << 20)
#define PROBE_STREAM_MAX (16u << 20) /* a --stream file larger than this is refused */
#define PROBE_FRAMES 8u
#define PROBE_WIDTH 64
#define PROBE_HEIGHT 48

static const char *format_name(uint32_t f) {
        switch (f) {
        case VIDEO_FORMAT_ARGB8888:
                return "ARGB8888";
        case VIDEO_FORMAT_BGRA8888:
                return "BGRA8888";
        case VIDEO_FORMAT_NV12:
                return "NV12";
        case VIDEO_FORMAT_YUV420:
                return "YUV420";
        case VIDEO_FORMAT_YVU420:
                return "YVU420";
        case VIDEO_FORMAT_MPEG2:
                return "MPEG2";
        case VIDEO_FORMAT_MPEG4:
                return "MPEG4";
        case VIDEO_FORMAT_H264:
                return "H264";
        case VIDEO_FORMAT_HEVC:
                return "HEVC";
        case VIDEO_FORMAT_VP8:
                return "VP8";
        case VIDEO_FORMAT_VP9:
                return "VP9";
        case VIDEO_FORMAT_FWHT:
                return "FWHT";
        default:
                return "unknown";
        }
}

static int read_file(const char *path, uint8_t **ret, size_t *ret_size) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        struct stat st;
        uint8_t *buf;
        size_t done = 0;

        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode) || st.st_size <= 0 || (uint64_t) st.st_size > PROBE_STREAM_MAX)
                return -EFBIG;
        buf = malloc((size_t) st.st_size);
        if (!buf)
                return -ENOMEM;
        while (done < (size_t) st.st_size) {
                ssize_t k = read(fd, buf + done, (size_t) st.st_size - done);
                if (k <= 0) {
                        free(buf);
                        return k < 0 ? -errno : -EIO;
                }
                done += (size_t) k;
        }
        *ret = buf;
        *ret_size = done;
        return 0;
}

static int count_frame(void *userdata, const VcFrame *f) {
        return 0;
}

static void print_formats(FILE *out, const VcCaps *caps, TableJson json) {
        for (unsigned i = 0; caps && i < caps->n_formats; i++) {
                const VcFormat *f = &caps->formats[i];
                if (json != TABLE_JSON_OFF) {
                        fprintf(out, "%s{\"format\":", i ? "," : "");
                        json_print_string(out, format_name(f->format));
                        fprintf(out, ",\"sizes\":[");
                        for (unsigned k = 0; k < f->n_frames; k++)
                                fprintf(out,
                                        "%s{\"min_width\":%" PRIu32 ",\"max_width\":%" PRIu32
                                        ",\"min_height\":%" PRIu32 ",\"max_height\":%" PRIu32 "}",
                                        k ? "," : "", f->frames[k].width.min, f->frames[k].width.max,
                                        f->frames[k].height.min, f->frames[k].height.max);
                        fprintf(out, "]}");
                } else {
                        fprintf(out, "        %-8s", format_name(f->format));
                        for (unsigned k = 0; k < f->n_frames; k++)
                                fprintf(out, " %" PRIu32 "x%" PRIu32 "..%" PRIu32 "x%" PRIu32,
                                        f->frames[k].width.min, f->frames[k].height.min,
                                        f->frames[k].width.max, f->frames[k].height.max);
                        fputc('\n', out);
                }
        }
}

uint32_t probe_format_from_string(const char *s) {
        static const struct {
                const char *name;
                uint32_t format;
        } table[] = {
                { "h264", VIDEO_FORMAT_H264 },   { "hevc", VIDEO_FORMAT_HEVC },
                { "vp8", VIDEO_FORMAT_VP8 },     { "vp9", VIDEO_FORMAT_VP9 },
                { "mpeg2", VIDEO_FORMAT_MPEG2 }, { "mpeg4", VIDEO_FORMAT_MPEG4 },
                { "fwht", VIDEO_FORMAT_FWHT },
        };
        for (size_t i = 0; i < ELEMENTSOF(table); i++)
                if (strcasecmp(s, table[i].name) == 0)
                        return table[i].format;
        return 0;
}

int probe_device(const char *socket_path,
                 const char *stream_file,
                 uint32_t stream_format,
                 TableJson json,
                 FILE *out) {
        _cleanup_(vu_frontend_freep) VuFrontend *fe = NULL;
        _cleanup_(video_client_freep) VideoClient *c = NULL;
        _cleanup_free_ uint8_t *stream = NULL;
        VuFrontendOptions o;
        VideoClientOptions vo;
        VcDecodeResult dr = {};
        VcEncodeResult er = {};
        size_t stream_size = 0;
        const char *session = NULL; /* "decode" or "encode" when one ran */
        int r, session_r = 0;
        struct timespec t0, t1;

        vu_frontend_options_init(&o);
        o.mem_size = PROBE_MEM_SIZE;
        o.config_size = sizeof(struct virtio_video_config);
        o.device_features =
                (1u << VIRTIO_VIDEO_F_RESOURCE_GUEST_PAGES) | (1u << VIRTIO_VIDEO_F_RESOURCE_NON_CONTIG);
        r = vu_frontend_connect(&o, socket_path, &fe);
        if (r < 0)
                return r;
        r = vu_frontend_start(fe);
        if (r < 0)
                return r;
        video_client_options_init(&vo);
        r = video_client_new(fe, &vo, &c);
        if (r < 0)
                return r;
        r = video_client_probe(c);
        if (r != 0)
                return r < 0 ? r : -EPROTO;

        const VcConfig *cfg = video_client_get_config(c);
        const VcCaps *in = video_client_get_caps(c, VIRTIO_VIDEO_QUEUE_TYPE_INPUT);
        const VcCaps *outc = video_client_get_caps(c, VIRTIO_VIDEO_QUEUE_TYPE_OUTPUT);
        bool encoder = video_client_is_encoder(c);

        clock_gettime(CLOCK_MONOTONIC, &t0);
        if (stream_file && encoder)
                return -EINVAL;
        if (stream_file) {
                r = read_file(stream_file, &stream, &stream_size);
                if (r < 0)
                        return r;
        } else if (!encoder && strcmp(cfg->device_name, "null") == 0) {
                stream = null_coded_stream_new(PROBE_FRAMES, PROBE_WIDTH, PROBE_HEIGHT, &stream_size);
                if (!stream)
                        return -ENOMEM;
        }
        if (stream) {
                VcDecodeOptions d = {
                        .stream_id = 1,
                        .coded_format = stream_file ? stream_format : 0,
                        .bitstream = stream,
                        .size = stream_size,
                        .frame = count_frame,
                };
                session = "decode";
                session_r = video_client_decode(c, &d, &dr);
        } else if (encoder && in && in->n_formats > 0) {
                /* Synthetic pictures in the device's first raw format (4:2:0, tightly packed). */
                size_t fsize = (size_t) PROBE_WIDTH * PROBE_HEIGHT * 3 / 2;
                _cleanup_free_ uint8_t *pics = malloc(fsize * PROBE_FRAMES);
                const uint8_t *frames[PROBE_FRAMES];
                if (!pics)
                        return -ENOMEM;
                for (unsigned k = 0; k < PROBE_FRAMES; k++) {
                        for (size_t i = 0; i < fsize; i++)
                                pics[k * fsize + i] = (uint8_t) (i + k * 3);
                        frames[k] = pics + k * fsize;
                }
                VcEncodeOptions e = {
                        .stream_id = 1,
                        .width = PROBE_WIDTH,
                        .height = PROBE_HEIGHT,
                        .frames = frames,
                        .frame_size = fsize,
                        .n_frames = PROBE_FRAMES,
                };
                session = "encode";
                session_r = video_client_encode(c, &e, &er);
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double ms = (double) (t1.tv_sec - t0.tv_sec) * 1e3 + (double) (t1.tv_nsec - t0.tv_nsec) / 1e6;

        if (json != TABLE_JSON_OFF) {
                fprintf(out, "{\"socket\":");
                json_print_string(out, socket_path);
                fprintf(out, ",\"role\":\"%s\",\"device_name\":", encoder ? "encoder" : "decoder");
                json_print_string(out, cfg->device_name);
                fprintf(out, ",\"max_caps_length\":%" PRIu32 ",\"max_resp_length\":%" PRIu32,
                        cfg->max_caps_length, cfg->max_resp_length);
                fprintf(out, ",\"input_formats\":[");
                print_formats(out, in, json);
                fprintf(out, "],\"output_formats\":[");
                print_formats(out, outc, json);
                fprintf(out, "]");
                if (session && strcmp(session, "decode") == 0)
                        fprintf(out,
                                ",\"decode\":{\"ok\":%s,\"frames\":%u,\"width\":%" PRIu32
                                ",\"height\":%" PRIu32 ",\"resolution_changes\":%u}",
                                session_r == 0 ? "true" : "false", dr.frames, dr.width, dr.height,
                                dr.resolution_changes);
                else if (session)
                        fprintf(out, ",\"encode\":{\"ok\":%s,\"packets\":%u,\"bytes\":%zu,\"keyframes\":%u}",
                                session_r == 0 ? "true" : "false", er.packets, er.bytes, er.keyframes);
                fprintf(out, "}\n");
        } else {
                fprintf(out, "%s\n", socket_path);
                fprintf(out, "    Device: virtio-video %s, backend '%s'\n", encoder ? "encoder" : "decoder",
                        cfg->device_name[0] ? cfg->device_name : "?");
                fprintf(out, "    Limits: capabilities %" PRIu32 " bytes, responses %" PRIu32 " bytes\n",
                        cfg->max_caps_length, cfg->max_resp_length);
                fprintf(out, "    Input formats:\n");
                print_formats(out, in, json);
                fprintf(out, "    Output formats:\n");
                print_formats(out, outc, json);
                if (!session)
                        fprintf(out,
                                "    Decode: skipped (give --stream=FILE with a stream in the first input format)\n");
                else if (strcmp(session, "decode") == 0)
                        fprintf(out, "    Decode: %s, %u frames of %" PRIu32 "x%" PRIu32 " in %.1f ms\n",
                                session_r == 0 ? "ok" : "FAILED", dr.frames, dr.width, dr.height, ms);
                else
                        fprintf(out, "    Encode: %s, %u frames into %u packets (%zu bytes) in %.1f ms\n",
                                session_r == 0 ? "ok" : "FAILED", PROBE_FRAMES, er.packets, er.bytes, ms);
        }
        if (session_r != 0)
                return session_r < 0 ? session_r : -EPROTO;
        return 0;
}
