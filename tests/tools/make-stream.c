/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * make-stream: writes a coded test stream of the moving pattern of tests/common/av-media.c, made with
 * libavcodec, for tools/demo.sh and for trying `videoctl probe --stream` by hand.
 *
 *   make-stream --codec h264|vp8|vp9 [--size WxH] [--frames N] --output FILE
 *
 * H.264 is written as an Annex B byte stream (what a stateful decoder takes); VP8 and VP9 as the bare
 * frames one after the other.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libavutil/log.h>

#include "av-media.h"
#include "common/macro.h"

static void help(void) {
        printf("Usage: make-stream --codec h264|vp8|vp9 [--size WxH] [--frames N] --output FILE\n");
}

int main(int argc, char **argv) {
        static const struct option options[] = {
                { "codec", required_argument, NULL, 'c' },  { "size", required_argument, NULL, 's' },
                { "frames", required_argument, NULL, 'n' }, { "output", required_argument, NULL, 'o' },
                { "help", no_argument, NULL, 'h' },         {}
        };
        const char *codec = NULL, *output = NULL, *encoder;
        unsigned width = 320, height = 240, frames = 30;
        MediaStream s = {};
        size_t size;
        int c, r;

        while ((c = getopt_long(argc, argv, "c:s:n:o:h", options, NULL)) >= 0)
                switch (c) {
                case 'c':
                        codec = optarg;
                        break;
                case 's':
                        if (sscanf(optarg, "%ux%u", &width, &height) != 2 || width < 16 || height < 16 ||
                            width > 4096 || height > 4096 || width % 2 || height % 2) {
                                fprintf(stderr, "make-stream: bad --size '%s' (even WxH, 16..4096)\n", optarg);
                                return EXIT_FAILURE;
                        }
                        break;
                case 'n':
                        frames = (unsigned) strtoul(optarg, NULL, 10);
                        if (frames < 1 || frames > 10000) {
                                fprintf(stderr, "make-stream: bad --frames '%s' (1..10000)\n", optarg);
                                return EXIT_FAILURE;
                        }
                        break;
                case 'o':
                        output = optarg;
                        break;
                case 'h':
                        help();
                        return EXIT_SUCCESS;
                default:
                        return EXIT_FAILURE;
                }
        if (!codec || !output) {
                help();
                return EXIT_FAILURE;
        }
        if (strcmp(codec, "h264") == 0)
                encoder = "libx264";
        else if (strcmp(codec, "vp8") == 0)
                encoder = "libvpx";
        else if (strcmp(codec, "vp9") == 0)
                encoder = "libvpx-vp9";
        else {
                fprintf(stderr, "make-stream: unknown --codec '%s' (h264, vp8 or vp9)\n", codec);
                return EXIT_FAILURE;
        }
        av_log_set_level(AV_LOG_ERROR);
        r = media_encode(encoder, width, height, frames, 0, &s);
        if (r < 0) {
                fprintf(stderr, "make-stream: encoding with %s failed: %s\n", encoder, strerror(-r));
                return EXIT_FAILURE;
        }
        _cleanup_free_ size_t *offsets = NULL;
        _cleanup_free_ uint8_t *bytes = media_stream_bytes(&s, &size, &offsets);
        FILE *f = bytes ? fopen(output, "we") : NULL;
        if (!f || fwrite(bytes, 1, size, f) != size || fclose(f) != 0) {
                fprintf(stderr, "make-stream: cannot write '%s': %m\n", output);
                media_stream_free(&s);
                return EXIT_FAILURE;
        }
        printf("%s: %u frames of %ux%u %s, %zu bytes\n", output, frames, width, height, codec, size);
        media_stream_free(&s);
        return EXIT_SUCCESS;
}
