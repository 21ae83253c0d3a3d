/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/iov.h"
#include "common/planar.h"

/* The iovec cursor (common/iov.h) against the flat reference iov_to_buf()/buf_to_iov(), and the
 * interleave rows (common/planar.h) against the obvious loop. */

#define MEM 300

/* 300 bytes cut into segments of 1, 0, 7, 13, 0, 64, 15, 200 bytes (zero-length ones included). */
static unsigned make_iov(uint8_t *mem, struct iovec *iov) {
        static const size_t lens[] = { 1, 0, 7, 13, 0, 64, 15, 200 };
        size_t off = 0;
        unsigned n = 0;

        for (unsigned i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
                iov[n++] = (struct iovec){ mem + off, lens[i] };
                off += lens[i];
        }
        assert_int_equal(off, MEM);
        return n;
}

static void test_cursor_read_matches_iov_to_buf(void **state) {
        uint8_t mem[MEM], a[MEM], b[MEM];
        struct iovec iov[8];
        unsigned n = make_iov(mem, iov);

        for (unsigned i = 0; i < MEM; i++)
                mem[i] = (uint8_t) (i * 13 + 7);
        /* Every start offset; reads of varied lengths moving forward, including past the end. */
        for (size_t start = 0; start <= MEM + 2; start++) {
                IovCursor c;
                size_t pos = start;

                iov_cursor_init(&c, iov, n, start);
                for (size_t len = 0; pos < MEM + 20; len = (len * 3 + 5) % 71) {
                        size_t want = iov_to_buf(iov, n, pos, a, len);
                        size_t got = iov_cursor_read(&c, b, len);

                        assert_int_equal(got, want);
                        assert_memory_equal(a, b, got);
                        pos += len;
                        if (len == 0) {
                                /* a skip of a few bytes between reads */
                                size_t skipped = iov_cursor_skip(&c, 3);
                                assert_int_equal(skipped, pos >= MEM ? 0 : (MEM - pos < 3 ? MEM - pos : 3));
                                pos += 3;
                        }
                }
        }
}

static void test_cursor_write_and_span(void **state) {
        uint8_t mem[MEM], ref[MEM], data[MEM];
        struct iovec iov[8];
        unsigned n = make_iov(mem, iov);
        IovCursor c;
        size_t len, pos = 0;
        uint8_t *p;

        memset(mem, 0, MEM);
        memset(ref, 0, MEM);
        for (unsigned i = 0; i < MEM; i++)
                data[i] = (uint8_t) (255 - i);
        iov_cursor_init(&c, iov, n, 0);
        /* The span at the start skips nothing: one byte in the first segment. */
        p = iov_cursor_span(&c, &len);
        assert_ptr_equal(p, mem);
        assert_int_equal(len, 1);
        for (size_t k = 1; pos < MEM; k += 4) {
                size_t w = iov_cursor_write(&c, data + pos, k);
                size_t r = buf_to_iov(iov, n, pos, data + pos, k);

                assert_int_equal(w, r);
                memcpy(ref + pos, data + pos, w);
                pos += w;
                p = iov_cursor_span(&c, &len);
                if (pos < MEM) {
                        /* the span starts where the cursor is, and never crosses a segment */
                        assert_ptr_equal(p, mem + pos);
                        assert_true(len > 0);
                        assert_true(pos + len <= MEM);
                } else {
                        assert_null(p);
                        assert_int_equal(len, 0);
                }
        }
        assert_memory_equal(mem, ref, MEM);
        /* At the end everything comes up short. */
        assert_int_equal(iov_cursor_write(&c, data, 1), 0);
        assert_int_equal(iov_cursor_read(&c, data, 1), 0);
        assert_int_equal(iov_cursor_skip(&c, 1), 0);
        iov_cursor_init(&c, iov, n, MEM + 100);
        assert_null(iov_cursor_span(&c, &len));
        iov_cursor_init(&c, NULL, 0, 0);
        assert_int_equal(iov_cursor_read(&c, data, 1), 0);
}

static void test_cursor_copy_between_arrays(void **state) {
        uint8_t src_mem[MEM], dst_mem[MEM], ref[MEM];
        struct iovec src_iov[8], dst_iov[MEM];
        unsigned n_src = make_iov(src_mem, src_iov), n_dst = 0;

        for (unsigned i = 0; i < MEM; i++)
                src_mem[i] = (uint8_t) (i * 31 + 1);
        /* The destination in segments of 1, 2, 3, ... bytes: edges never line up with the source's. */
        for (size_t off = 0, k = 1; off < MEM; off += k, k++)
                dst_iov[n_dst++] = (struct iovec){ dst_mem + off, off + k > MEM ? MEM - off : k };

        for (size_t s0 = 0; s0 < MEM; s0 += 37)
                for (size_t d0 = 0; d0 < MEM; d0 += 41) {
                        IovCursor src, dst;
                        size_t len = 150, want = MEM - s0 < MEM - d0 ? MEM - s0 : MEM - d0;

                        if (want > len)
                                want = len;
                        memset(dst_mem, 0xAA, MEM);
                        memset(ref, 0xAA, MEM);
                        memcpy(ref + d0, src_mem + s0, want);
                        iov_cursor_init(&src, src_iov, n_src, s0);
                        iov_cursor_init(&dst, dst_iov, n_dst, d0);
                        assert_int_equal(iov_cursor_copy(&dst, &src, len), want);
                        assert_memory_equal(dst_mem, ref, MEM);
                        /* both moved by the bytes copied */
                        uint8_t b1, b2;
                        if (s0 + want < MEM) {
                                assert_int_equal(iov_cursor_read(&src, &b1, 1), 1);
                                assert_int_equal(b1, src_mem[s0 + want]);
                        }
                        if (d0 + want < MEM) {
                                assert_int_equal(iov_cursor_read(&dst, &b2, 1), 1);
                                assert_int_equal(b2, dst_mem[d0 + want]);
                        }
                }
}

static void test_planar_interleave_matches_reference(void **state) {
        static const size_t lens[] = { 0, 1, 2, 31, 32, 33, 63, 64, 65, 100, 959, 960, 2048 };
        uint8_t u[2048], v[2048], uv[4096 + 8], u2[2048 + 8], v2[2048 + 8];

        for (unsigned i = 0; i < 2048; i++) {
                u[i] = (uint8_t) (i * 3 + 1);
                v[i] = (uint8_t) (i * 5 + 2);
        }
        for (unsigned t = 0; t < sizeof(lens) / sizeof(lens[0]); t++) {
                size_t n = lens[t];

                memset(uv, 0x5A, sizeof(uv));
                planar_interleave(uv, u, v, n);
                for (size_t x = 0; x < n; x++) {
                        assert_int_equal(uv[2 * x], u[x]);
                        assert_int_equal(uv[2 * x + 1], v[x]);
                }
                /* nothing written past 2n bytes */
                for (size_t x = 2 * n; x < sizeof(uv); x++)
                        assert_int_equal(uv[x], 0x5A);

                memset(u2, 0x11, sizeof(u2));
                memset(v2, 0x22, sizeof(v2));
                planar_deinterleave(u2, v2, uv, n);
                assert_memory_equal(u2, u, n);
                assert_memory_equal(v2, v, n);
                for (size_t x = n; x < sizeof(u2); x++) {
                        assert_int_equal(u2[x], 0x11);
                        assert_int_equal(v2[x], 0x22);
                }
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_cursor_read_matches_iov_to_buf),
                cmocka_unit_test(test_cursor_write_and_span),
                cmocka_unit_test(test_cursor_copy_between_arrays),
                cmocka_unit_test(test_planar_interleave_matches_reference),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
