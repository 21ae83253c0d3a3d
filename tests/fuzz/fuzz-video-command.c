/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <endian.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <systemd/sd-event.h>

#include "backend/backend.h"
#include "common/log.h"
#include "common/macro.h"
#include "video/command.h"
#include "video/model.h"

/*
 * libFuzzer target for the virtio-video command decoder and the device model behind it. The input is a
 * sequence of records {u8 op, u8 len_lo, u8 len_hi, len bytes}, by the top bits of op:
 *   00  a commandq request: parsed alone (cut into descriptors of op & 0x3f bytes), then fed to the model
 *   01  an eventq buffer (the bytes are ignored)
 *   10  a guest memory write: {le32 offset, bytes}, so resource entries can point at real frames
 *   11  as the first record: run the null encoder instead of the decoder; later: a device reset
 * The model runs over the null backend with a 1 MiB guest memory at GUEST_BASE, and the event loop is
 * stepped after each record. Every request must be answered or dropped; nothing may crash or leak.
 */

#define GUEST_BASE 0x100000ULL
#define GUEST_SIZE (1024u * 1024u)
#define MAX_TOKENS 256

typedef struct Token {
        bool done;
} Token;

typedef struct Fz {
        uint8_t *guest;
        Token *tokens[MAX_TOKENS];
        unsigned n_tokens;
} Fz;

static void op_complete(void *userdata, void *token, const void *resp, size_t len) {
        Token *t = token;

        if (t->done)
                abort(); /* answered twice */
        t->done = true;
}

static void op_drop(void *userdata, void *token) {
        op_complete(userdata, token, NULL, 0);
}

static int
op_translate(void *userdata, void *token, uint64_t gpa, uint64_t len, struct iovec *iov, unsigned max_iov) {
        Fz *fz = userdata;
        uint64_t end;

        if (__builtin_add_overflow(gpa, len, &end) || gpa < GUEST_BASE || end > GUEST_BASE + GUEST_SIZE)
                return -EFAULT;
        if (max_iov < 1)
                return -E2BIG;
        iov[0] = (struct iovec){ fz->guest + (gpa - GUEST_BASE), len };
        return 1;
}

static const VideoModelOps ops = {
        .complete = op_complete,
        .drop = op_drop,
        .translate = op_translate,
};

static void to_iov(const uint8_t *p, size_t len, size_t chunk, struct iovec *iov, unsigned *n) {
        *n = 0;
        if (chunk == 0)
                chunk = len ? len : 1;
        for (size_t off = 0; off < len && *n < 64; off += chunk)
                iov[(*n)++] = (struct iovec){ (void *) (p + off), len - off < chunk ? len - off : chunk };
        if (*n == 64) /* keep the whole request: last segment takes the rest */
                iov[63].iov_len = len - (size_t) ((const uint8_t *) iov[63].iov_base - p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static bool quiet;
        sd_event *event = NULL;
        Backend *backend = NULL;
        VideoModel *model = NULL;
        Fz fz = {};

        if (!quiet) {
                log_set_max_level(LOG_CRIT);
                quiet = true;
        }
        fz.guest = calloc(1, GUEST_SIZE);
        if (!fz.guest || sd_event_new(&event) < 0)
                abort();
        if (backend_new(size > 0 && (data[0] & 0xc0) == 0xc0 ? "null-encoder" : "null", NULL, event,
                        &backend) < 0)
                abort();
        if (video_model_new(backend, &ops, &fz, &model) < 0)
                abort();

        for (size_t off = 0; off + 3 <= size && fz.n_tokens < MAX_TOKENS;) {
                uint8_t op = data[off];
                size_t len = data[off + 1] | (size_t) data[off + 2] << 8;
                const uint8_t *p = data + off + 3;

                off += 3;
                if (len > size - off)
                        len = size - off;
                off += len;

                switch (op & 0xc0) {
                case 0x00: {
                        struct iovec iov[64];
                        unsigned n;
                        VideoCmd cmd;
                        Token *t;

                        to_iov(p, len, op & 0x3f, iov, &n);
                        if (video_cmd_parse(iov, n, &cmd) >= 0)
                                video_cmd_done(&cmd);
                        t = calloc(1, sizeof(*t));
                        if (!t)
                                abort();
                        fz.tokens[fz.n_tokens++] = t;
                        video_model_request(model, iov, n, 4096, t);
                        break;
                }
                case 0x40: {
                        Token *t = calloc(1, sizeof(*t));
                        if (!t)
                                abort();
                        fz.tokens[fz.n_tokens++] = t;
                        video_model_event_buffer(model, t, 8);
                        break;
                }
                case 0x80:
                        if (len >= 4) {
                                uint32_t at;
                                memcpy(&at, p, 4);
                                at = le32toh(at) % GUEST_SIZE;
                                memcpy(fz.guest + at, p + 4, MIN(len - 4, (size_t) (GUEST_SIZE - at)));
                        }
                        break;
                default:
                        if (p - 3 != data)
                                video_model_reset(model);
                        break;
                }
                for (unsigned i = 0; i < 64 && sd_event_run(event, 0) > 0; i++)
                        ;
        }

        video_model_free(model);
        backend_free(backend);
        sd_event_unref(event);
        for (unsigned i = 0; i < fz.n_tokens; i++) {
                if (!fz.tokens[i]->done)
                        abort(); /* neither answered nor dropped */
                free(fz.tokens[i]);
        }
        free(fz.guest);
        return 0;
}
