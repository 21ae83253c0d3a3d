/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Frame tool for the VM tests (tests/vm): runs inside the guest next to v4l2-ctl.
 *
 *   vm-frametool generate WIDTH HEIGHT COUNT FILE
 *           writes COUNT YU12 (I420) frames: smooth gradients and a moving square, different per frame
 *           and per size, so that FWHT coding keeps them recognisable and a frame mix-up shows.
 *   vm-frametool fwht-check FILE WIDTH HEIGHT COUNT
 *           parses an FWHT stream as vicodec's encoder writes it (one struct fwht_cframe_hdr plus
 *           payload per frame) and checks the frame count, every header's magic and size, and that
 *           nothing trails the last frame.
 *   vm-frametool compare WIDTH HEIGHT REFERENCE DECODED MIN_PSNR_DB
 *           compares two YU12 files frame by frame; fails unless both hold the same whole number of
 *           frames and every frame's PSNR is at least MIN_PSNR_DB.
 *
 * Exit status 0 on success, 1 when a check fails, 2 on bad usage or I/O errors.
 */

#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/macro.h"

#define FWHT_MAGIC1 0x4f4f4f4fu
#define FWHT_MAGIC2 0xffffffffu
#define DIM_MAX 8192u
#define COUNT_MAX 100000u

/* drivers/media/test-drivers/vicodec/codec-fwht.h: the magics are written as they are, the rest
 * big-endian. */
struct fwht_cframe_hdr {
        uint32_t magic1;
        uint32_t magic2;
        uint32_t version;
        uint32_t width;
        uint32_t height;
        uint32_t flags;
        uint32_t colorspace;
        uint32_t xfer_func;
        uint32_t ycbcr_enc;
        uint32_t quantization;
        uint32_t size;
};
_Static_assert(sizeof(struct fwht_cframe_hdr) == 44, "vicodec's header layout");

static void fclosep(FILE **f) {
        if (*f)
                (void) fclose(*f);
}

static int parse_u32(const char *s, uint32_t max, uint32_t *ret) {
        char *end;
        unsigned long v;

        errno = 0;
        v = strtoul(s, &end, 10);
        if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || v == 0 || v > max) {
                fprintf(stderr, "Invalid number '%s' (1..%" PRIu32 ")\n", s, max);
                return -EINVAL;
        }
        *ret = (uint32_t) v;
        return 0;
}

/* YU12 needs even sizes: the chroma planes are half width and half height. */
static int parse_size(const char *w, const char *h, uint32_t *ret_w, uint32_t *ret_h) {
        uint32_t width, height;

        if (parse_u32(w, DIM_MAX, &width) < 0 || parse_u32(h, DIM_MAX, &height) < 0)
                return -EINVAL;
        if (width % 2 != 0 || height % 2 != 0) {
                fprintf(stderr, "Size %" PRIu32 "x%" PRIu32 " is not even\n", width, height);
                return -EINVAL;
        }
        *ret_w = width;
        *ret_h = height;
        return 0;
}

static size_t frame_bytes(uint32_t w, uint32_t h) {
        return (size_t) w * h * 3 / 2;
}

static void draw_frame(uint8_t *f, uint32_t w, uint32_t h, uint32_t n) {
        uint8_t *u = f + (size_t) w * h, *v = u + (size_t) w * h / 4;
        uint32_t sq = MIN(w, h) / 4, sx = (n * 16) % (w - sq + 1), sy = (n * 8) % (h - sq + 1);

        for (uint32_t y = 0; y < h; y++)
                for (uint32_t x = 0; x < w; x++) {
                        bool in_square = x >= sx && x < sx + sq && y >= sy && y < sy + sq;
                        f[(size_t) y * w + x] =
                                in_square ? 235 : (uint8_t) (16 + (x * 200 / w + y * 20 / h + n * 3) % 200);
                }
        for (uint32_t y = 0; y < h / 2; y++)
                for (uint32_t x = 0; x < w / 2; x++) {
                        u[(size_t) y * (w / 2) + x] = (uint8_t) (64 + (y * 128 / (h / 2) + n * 5) % 128);
                        v[(size_t) y * (w / 2) + x] = (uint8_t) (192 - (x * 128 / (w / 2) + n * 7) % 128);
                }
}

static int verb_generate(char **argv) {
        _cleanup_(fclosep) FILE *out = NULL;
        _cleanup_free_ uint8_t *frame = NULL;
        uint32_t w, h, count;

        if (parse_size(argv[0], argv[1], &w, &h) < 0 || parse_u32(argv[2], COUNT_MAX, &count) < 0)
                return 2;
        frame = malloc(frame_bytes(w, h));
        if (!frame)
                return 2;
        out = fopen(argv[3], "we");
        if (!out) {
                fprintf(stderr, "Cannot create '%s': %m\n", argv[3]);
                return 2;
        }
        for (uint32_t n = 0; n < count; n++) {
                draw_frame(frame, w, h, n);
                if (fwrite(frame, frame_bytes(w, h), 1, out) != 1) {
                        fprintf(stderr, "Cannot write '%s': %m\n", argv[3]);
                        return 2;
                }
        }
        if (fclose(TAKE_PTR(out)) != 0) {
                fprintf(stderr, "Cannot write '%s': %m\n", argv[3]);
                return 2;
        }
        return 0;
}

static int verb_fwht_check(char **argv) {
        _cleanup_(fclosep) FILE *in = NULL;
        uint32_t w, h, count, n = 0;
        struct fwht_cframe_hdr hdr;
        uint64_t total = 0;

        if (parse_size(argv[1], argv[2], &w, &h) < 0 || parse_u32(argv[3], COUNT_MAX, &count) < 0)
                return 2;
        in = fopen(argv[0], "re");
        if (!in) {
                fprintf(stderr, "Cannot open '%s': %m\n", argv[0]);
                return 2;
        }
        for (;;) {
                size_t got = fread(&hdr, 1, sizeof(hdr), in);
                uint32_t size;

                if (got == 0 && feof(in))
                        break;
                if (got != sizeof(hdr)) {
                        fprintf(stderr, "Frame %" PRIu32 ": truncated header at byte %" PRIu64 "\n", n,
                                total);
                        return 1;
                }
                if (hdr.magic1 != FWHT_MAGIC1 || hdr.magic2 != FWHT_MAGIC2) {
                        fprintf(stderr, "Frame %" PRIu32 ": no FWHT magic at byte %" PRIu64 "\n", n, total);
                        return 1;
                }
                if (be32toh(hdr.width) != w || be32toh(hdr.height) != h) {
                        fprintf(stderr,
                                "Frame %" PRIu32 ": size %" PRIu32 "x%" PRIu32 ", expected %" PRIu32
                                "x%" PRIu32 "\n",
                                n, be32toh(hdr.width), be32toh(hdr.height), w, h);
                        return 1;
                }
                size = be32toh(hdr.size);
                /* An unencoded frame is the raw planes; coding never makes a frame bigger than that. */
                if (size == 0 || size > frame_bytes(w, h)) {
                        fprintf(stderr, "Frame %" PRIu32 ": payload of %" PRIu32 " bytes\n", n, size);
                        return 1;
                }
                if (fseek(in, size, SEEK_CUR) < 0) {
                        fprintf(stderr, "Cannot seek in '%s': %m\n", argv[0]);
                        return 2;
                }
                total += sizeof(hdr) + size;
                printf("frame %" PRIu32 ": %" PRIu32 " payload bytes, flags 0x%" PRIx32 "\n", n, size,
                       be32toh(hdr.flags));
                n++;
        }
        /* fseek() may move past the end: the file must end exactly where the last payload ends. */
        if (fseek(in, 0, SEEK_END) < 0 || ftell(in) != (long) total) {
                fprintf(stderr, "'%s': the last frame's payload is truncated\n", argv[0]);
                return 1;
        }
        if (n != count) {
                fprintf(stderr, "'%s' holds %" PRIu32 " frames, expected %" PRIu32 "\n", argv[0], n, count);
                return 1;
        }
        return 0;
}

static double plane_sse(const uint8_t *a, const uint8_t *b, size_t n) {
        double sse = 0;

        for (size_t i = 0; i < n; i++) {
                int d = (int) a[i] - (int) b[i];
                sse += (double) (d * d);
        }
        return sse;
}

static int verb_compare(char **argv) {
        _cleanup_(fclosep) FILE *ref = NULL, *dec = NULL;
        _cleanup_free_ uint8_t *a = NULL, *b = NULL;
        uint32_t w, h, n = 0, bad = 0;
        double min_psnr, worst = INFINITY;
        char *end;
        size_t fb;

        if (parse_size(argv[0], argv[1], &w, &h) < 0)
                return 2;
        min_psnr = strtod(argv[4], &end);
        if (end == argv[4] || *end != '\0' || !(min_psnr > 0 && min_psnr < 100)) {
                fprintf(stderr, "Invalid PSNR '%s'\n", argv[4]);
                return 2;
        }
        fb = frame_bytes(w, h);
        a = malloc(fb);
        b = malloc(fb);
        if (!a || !b)
                return 2;
        ref = fopen(argv[2], "re");
        dec = fopen(argv[3], "re");
        if (!ref || !dec) {
                fprintf(stderr, "Cannot open '%s': %m\n", ref ? argv[3] : argv[2]);
                return 2;
        }
        for (;;) {
                size_t ga = fread(a, 1, fb, ref), gb = fread(b, 1, fb, dec);
                double psnr;

                if (ga == 0 && gb == 0)
                        break;
                if (ga != fb || gb != fb) {
                        fprintf(stderr,
                                "Frame %" PRIu32 ": '%s' has %zu bytes, '%s' %zu, expected %zu each\n", n,
                                argv[2], ga, argv[3], gb, fb);
                        return 1;
                }
                psnr = plane_sse(a, b, fb);
                psnr = psnr == 0 ? INFINITY : 10 * log10(255.0 * 255.0 * (double) fb / psnr);
                printf("frame %" PRIu32 ": PSNR %.2f dB\n", n, psnr);
                if (psnr < min_psnr)
                        bad++;
                worst = MIN(worst, psnr);
                n++;
        }
        if (n == 0) {
                fprintf(stderr, "'%s' and '%s' hold no frames\n", argv[2], argv[3]);
                return 1;
        }
        if (bad > 0) {
                fprintf(stderr, "%" PRIu32 " of %" PRIu32 " frames below %.2f dB (worst %.2f dB)\n", bad, n,
                        min_psnr, worst);
                return 1;
        }
        return 0;
}

static const struct {
        const char *name;
        int argc;
        int (*run)(char **argv);
} verbs[] = {
        { "generate", 4, verb_generate },
        { "fwht-check", 4, verb_fwht_check },
        { "compare", 5, verb_compare },
};

int main(int argc, char **argv) {
        if (argc >= 2)
                for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                        if (strcmp(argv[1], verbs[i].name) == 0) {
                                if (argc - 2 != verbs[i].argc)
                                        break;
                                return verbs[i].run(argv + 2);
                        }
        fprintf(stderr, "usage: vm-frametool generate WIDTH HEIGHT COUNT FILE\n"
                        "       vm-frametool fwht-check FILE WIDTH HEIGHT COUNT\n"
                        "       vm-frametool compare WIDTH HEIGHT REFERENCE DECODED MIN_PSNR_DB\n");
        return 2;
}
