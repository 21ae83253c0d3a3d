/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "planar.h"

/* Elements per block: the inner loops have a constant trip count, which the vectorizers take at -O2. */
#define BLOCK 32u

void planar_interleave(uint8_t *restrict uv,
                       const uint8_t *restrict u,
                       const uint8_t *restrict v,
                       size_t n) {
        size_t x = 0;

        for (; x + BLOCK <= n; x += BLOCK)
                for (size_t k = x; k < x + BLOCK; k++) {
                        uv[2 * k] = u[k];
                        uv[2 * k + 1] = v[k];
                }
        for (; x < n; x++) {
                uv[2 * x] = u[x];
                uv[2 * x + 1] = v[x];
        }
}

void planar_deinterleave(uint8_t *restrict u, uint8_t *restrict v, const uint8_t *restrict uv, size_t n) {
        size_t x = 0;

        for (; x + BLOCK <= n; x += BLOCK)
                for (size_t k = x; k < x + BLOCK; k++) {
                        u[k] = uv[2 * k];
                        v[k] = uv[2 * k + 1];
                }
        for (; x < n; x++) {
                u[x] = uv[2 * x];
                v[x] = uv[2 * x + 1];
        }
}
