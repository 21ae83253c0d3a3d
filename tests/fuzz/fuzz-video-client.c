/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * libFuzzer target: the video client's QUERY_CAPABILITY parser (service/frontend/video-client.c) on
 * arbitrary replies of a misbehaving device. The reply is copied into a buffer of exactly its size, so
 * ASan catches any read beyond what the device wrote; whatever is accepted must respect the limits.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "frontend/video-client.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static VcCaps caps;
        uint8_t *copy = malloc(size ?: 1);

        if (!copy)
                return 0;
        memcpy(copy, data, size);
        if (video_client_parse_capability(copy, size, &caps) == 0) {
                if (caps.n_formats == 0 || caps.n_formats > VC_MAX_FORMATS)
                        abort();
                for (unsigned i = 0; i < caps.n_formats; i++) {
                        if (caps.formats[i].n_frames > VC_MAX_FRAMES)
                                abort();
                        for (unsigned k = 0; k < caps.formats[i].n_frames; k++)
                                if (caps.formats[i].frames[k].n_rates > VC_MAX_RATES)
                                        abort();
                }
        }
        free(copy);
        return 0;
}
