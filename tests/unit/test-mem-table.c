/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "vhost-guest.h"
#include "vhost/mem-table.h"

#define MIB (1024ULL * 1024ULL)

static MemRegion *map_ok(const Guest *g, struct vhost_user_mem_region d) {
        MemRegion *r = NULL;

        assert_int_equal(mem_region_map(&d, g->memfd, &r), 0);
        assert_non_null(r);
        return r;
}

static void test_translate_both_spaces(void **state) {
        _cleanup_(vhost_mem_unrefp) VhostMem *m = NULL;
        MemRegion *r;
        Guest g;
        uint8_t *p;

        assert_int_equal(guest_init(&g, MIB, 16), 0);
        r = map_ok(&g, guest_region(&g));
        assert_int_equal(vhost_mem_new(&r, 1, &m), 0);
        mem_region_unref(r);

        memcpy(guest_ptr(&g, GUEST_GPA + 0x100), "hello", 5);
        p = vhost_mem_gpa_to_ptr(m, GUEST_GPA + 0x100, 5);
        assert_non_null(p);
        assert_memory_equal(p, "hello", 5);
        /* The user address of the same byte reaches the same memory; the GPA is not a user address. */
        assert_ptr_equal(vhost_mem_uaddr_to_ptr(m, guest_ua(GUEST_GPA + 0x100), 5), p);
        assert_null(vhost_mem_uaddr_to_ptr(m, GUEST_GPA + 0x100, 5));
        assert_null(vhost_mem_gpa_to_ptr(m, GUEST_UADDR + 0x100, 5));
        /* Last byte in, one past out. */
        assert_non_null(vhost_mem_gpa_to_ptr(m, GUEST_GPA + MIB - 1, 1));
        assert_null(vhost_mem_gpa_to_ptr(m, GUEST_GPA + MIB - 1, 2));
        assert_null(vhost_mem_gpa_to_ptr(m, GUEST_GPA - 1, 2));
        assert_null(vhost_mem_gpa_to_ptr(m, GUEST_GPA, 0));
        /* Lengths that wrap 64 bits never translate. */
        assert_null(vhost_mem_gpa_to_ptr(m, GUEST_GPA + 16, UINT64_MAX));
        assert_null(vhost_mem_gpa_to_ptr(NULL, GUEST_GPA, 1));
        guest_done(&g);
}

static void test_translate_splits_adjacent_regions(void **state) {
        _cleanup_(vhost_mem_unrefp) VhostMem *m = NULL;
        struct vhost_user_mem_region d1, d2;
        MemRegion *r[2];
        struct iovec iov[4];
        uint8_t buf[32];
        Guest g;

        assert_int_equal(guest_init(&g, 2 * MIB, 16), 0);
        d1 = guest_region(&g);
        d1.memory_size = MIB;
        /* Second region: next GPA range, user address far away, next part of the file. */
        d2 = (struct vhost_user_mem_region){ GUEST_GPA + MIB, MIB, GUEST_UADDR + 16 * MIB,
                                             GUEST_MMAP_OFFSET + MIB };
        r[0] = map_ok(&g, d1);
        r[1] = map_ok(&g, d2);
        assert_int_equal(vhost_mem_new(r, 2, &m), 0);
        mem_region_unref(r[0]);
        mem_region_unref(r[1]);

        assert_int_equal(vhost_mem_translate(m, GUEST_GPA + MIB - 8, 32, iov, 4), 2);
        assert_int_equal(iov[0].iov_len, 8);
        assert_int_equal(iov[1].iov_len, 24);
        /* The backend has its own mapping: compare through the memory, not the pointers. */
        memset(iov[0].iov_base, 0x11, 8);
        memset(iov[1].iov_base, 0x22, 24);
        assert_int_equal(*(uint8_t *) guest_ptr(&g, GUEST_GPA + MIB - 1), 0x11);
        assert_int_equal(*(uint8_t *) guest_ptr(&g, GUEST_GPA + MIB), 0x22);
        assert_int_equal(*(uint8_t *) guest_ptr(&g, GUEST_GPA + MIB + 23), 0x22);
        assert_int_equal(*(uint8_t *) guest_ptr(&g, GUEST_GPA + MIB + 24), 0);
        assert_int_equal(vhost_mem_translate(m, GUEST_GPA + MIB - 8, 32, iov, 1), -E2BIG);
        assert_int_equal(vhost_mem_translate(m, GUEST_GPA + 2 * MIB - 8, 32, iov, 4), -EFAULT);
        assert_int_equal(vhost_mem_translate(m, UINT64_MAX - 4, 32, iov, 4), -EFAULT);
        assert_int_equal(vhost_mem_translate(m, GUEST_GPA, 0, iov, 4), 0);
        /* A single-object lookup refuses to straddle; the copy helper does not. */
        assert_null(vhost_mem_gpa_to_ptr(m, GUEST_GPA + MIB - 8, 32));
        memset(guest_ptr(&g, GUEST_GPA + MIB - 8), 0xab, 32);
        assert_int_equal(vhost_mem_read_gpa(m, GUEST_GPA + MIB - 8, buf, 32), 0);
        for (unsigned i = 0; i < 32; i++)
                assert_int_equal(buf[i], 0xab);
        assert_int_equal(vhost_mem_read_gpa(m, GUEST_GPA + 2 * MIB - 8, buf, 32), -EFAULT);
        guest_done(&g);
}

static void test_region_rejects_bad_descriptions(void **state) {
        struct vhost_user_mem_region d;
        MemRegion *r = NULL;
        Guest g;

        assert_int_equal(guest_init(&g, MIB, 16), 0);
        d = guest_region(&g);
        d.memory_size = 0;
        assert_int_equal(mem_region_map(&d, g.memfd, &r), -EINVAL);
        d = guest_region(&g);
        d.guest_phys_addr = UINT64_MAX - 100; /* gpa + size wraps */
        assert_int_equal(mem_region_map(&d, g.memfd, &r), -EINVAL);
        d = guest_region(&g);
        d.user_addr = UINT64_MAX - 100;
        assert_int_equal(mem_region_map(&d, g.memfd, &r), -EINVAL);
        d = guest_region(&g);
        d.mmap_offset = UINT64_MAX - 100;
        assert_int_equal(mem_region_map(&d, g.memfd, &r), -EINVAL);
        assert_null(r);
        guest_done(&g);
}

static void test_region_rejects_short_fd(void **state) {
        struct vhost_user_mem_region d;
        MemRegion *r = NULL;
        Guest g;

        assert_int_equal(guest_init(&g, MIB, 16), 0);
        d = guest_region(&g);
        d.memory_size = MIB + 1; /* fd holds offset + MIB exactly */
        assert_int_equal(mem_region_map(&d, g.memfd, &r), -EFAULT);
        d = guest_region(&g);
        d.mmap_offset += 4096;
        assert_int_equal(mem_region_map(&d, g.memfd, &r), -EFAULT);
        d = guest_region(&g);
        assert_int_equal(mem_region_map(&d, -1, &r), -EBADF);
        assert_null(r);
        guest_done(&g);
}

static void test_region_unaligned_offset(void **state) {
        _cleanup_(vhost_mem_unrefp) VhostMem *m = NULL;
        struct vhost_user_mem_region d;
        MemRegion *r;
        Guest g;

        assert_int_equal(guest_init(&g, MIB, 16), 0);
        d = guest_region(&g);
        d.mmap_offset += 0x123;
        d.memory_size -= 0x123;
        r = map_ok(&g, d);
        assert_int_equal(vhost_mem_new(&r, 1, &m), 0);
        mem_region_unref(r);
        memcpy(guest_ptr(&g, GUEST_GPA + 0x123), "xy", 2);
        assert_memory_equal(vhost_mem_gpa_to_ptr(m, GUEST_GPA, 2), "xy", 2);
        guest_done(&g);
}

static void test_table_rejects_overlap(void **state) {
        VhostMem *m = NULL;
        struct vhost_user_mem_region d1, d2;
        MemRegion *r[2];
        Guest g;

        assert_int_equal(guest_init(&g, 2 * MIB, 16), 0);
        d1 = guest_region(&g);
        d1.memory_size = MIB;
        r[0] = map_ok(&g, d1);

        /* GPA overlap by one byte. */
        d2 = (struct vhost_user_mem_region){ GUEST_GPA + MIB - 1, MIB, GUEST_UADDR + 16 * MIB,
                                             GUEST_MMAP_OFFSET };
        r[1] = map_ok(&g, d2);
        assert_int_equal(vhost_mem_new(r, 2, &m), -EINVAL);
        assert_int_equal(vhost_mem_new_added(NULL, r[0], &m), 0);
        VhostMem *m2 = NULL;
        assert_int_equal(vhost_mem_new_added(m, r[1], &m2), -EINVAL);
        assert_null(m2);
        mem_region_unref(r[1]);

        /* User address overlap. */
        d2 = (struct vhost_user_mem_region){ GUEST_GPA + 8 * MIB, MIB, GUEST_UADDR + 4096,
                                             GUEST_MMAP_OFFSET };
        r[1] = map_ok(&g, d2);
        assert_int_equal(vhost_mem_new_added(m, r[1], &m2), -EINVAL);
        mem_region_unref(r[1]);

        /* Region ending at the top of the address space does not wrap the check. */
        d2 = (struct vhost_user_mem_region){ UINT64_MAX - MIB + 1, MIB, GUEST_UADDR + 16 * MIB,
                                             GUEST_MMAP_OFFSET };
        r[1] = map_ok(&g, d2);
        assert_int_equal(vhost_mem_new_added(m, r[1], &m2), 0);
        assert_int_equal(vhost_mem_n_regions(m2), 2);
        assert_non_null(vhost_mem_gpa_to_ptr(m2, UINT64_MAX, 1));
        assert_null(vhost_mem_gpa_to_ptr(m2, UINT64_MAX, 2));
        mem_region_unref(r[1]);
        vhost_mem_unref(m2);

        mem_region_unref(r[0]);
        vhost_mem_unref(m);
        guest_done(&g);
}

static void test_add_remove_and_snapshot_lifetime(void **state) {
        VhostMem *m1 = NULL, *m2 = NULL, *m3 = NULL;
        struct vhost_user_mem_region d1, d2, rm;
        MemRegion *r1, *r2;
        uint8_t *p;
        Guest g;

        assert_int_equal(guest_init(&g, 2 * MIB, 16), 0);
        d1 = guest_region(&g);
        d1.memory_size = MIB;
        d2 = (struct vhost_user_mem_region){ GUEST_GPA + MIB, MIB, GUEST_UADDR + 16 * MIB,
                                             GUEST_MMAP_OFFSET + MIB };
        r1 = map_ok(&g, d1);
        r2 = map_ok(&g, d2);
        assert_int_equal(vhost_mem_new_added(NULL, r1, &m1), 0);
        assert_int_equal(vhost_mem_new_added(m1, r2, &m2), 0);
        mem_region_unref(r1);
        mem_region_unref(r2);
        assert_int_equal(vhost_mem_n_regions(m2), 2);

        /* Remove matches gpa, size and user address; the offset is ignored (QEMU sends 0). */
        rm = d2;
        rm.mmap_offset = 0;
        rm.user_addr++;
        assert_int_equal(vhost_mem_new_removed(m2, &rm, &m3), -ENOENT);
        rm.user_addr--;
        assert_int_equal(vhost_mem_new_removed(m2, &rm, &m3), 0);
        assert_int_equal(vhost_mem_n_regions(m3), 1);
        assert_null(vhost_mem_gpa_to_ptr(m3, GUEST_GPA + MIB, 1));

        /* A snapshot that was replaced stays mapped while referenced. */
        p = vhost_mem_gpa_to_ptr(m2, GUEST_GPA + MIB + 8, 4);
        assert_non_null(p);
        vhost_mem_unref(m1);
        vhost_mem_ref(m2);
        vhost_mem_unref(m2);
        memcpy(p, "live", 4);
        assert_memory_equal(guest_ptr(&g, GUEST_GPA + MIB + 8), "live", 4);
        vhost_mem_unref(m2);
        /* Region 1 is still used by m3. */
        memcpy(vhost_mem_gpa_to_ptr(m3, GUEST_GPA, 2), "ok", 2);
        vhost_mem_unref(m3);
        assert_null(vhost_mem_unref(NULL));
        guest_done(&g);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_translate_both_spaces),
                cmocka_unit_test(test_translate_splits_adjacent_regions),
                cmocka_unit_test(test_region_rejects_bad_descriptions),
                cmocka_unit_test(test_region_rejects_short_fd),
                cmocka_unit_test(test_region_unaligned_offset),
                cmocka_unit_test(test_table_rejects_overlap),
                cmocka_unit_test(test_add_remove_and_snapshot_lifetime),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
