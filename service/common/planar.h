/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Row operations on 4:2:0 pictures shared by the software backends: NV12's interleaved chroma row from
 * separate U and V rows, and back. Written in fixed-size blocks so that gcc and clang vectorize them at
 * -O2 already (a loop of unknown count is only vectorized from -O3 by gcc 12). The buffers must not
 * overlap.
 */

#include <stddef.h>
#include <stdint.h>

/* uv[2x] = u[x], uv[2x + 1] = v[x] for x < n. */
void planar_interleave(uint8_t *restrict uv, const uint8_t *restrict u, const uint8_t *restrict v, size_t n);
/* u[x] = uv[2x], v[x] = uv[2x + 1] for x < n. */
void planar_deinterleave(uint8_t *restrict u, uint8_t *restrict v, const uint8_t *restrict uv, size_t n);
