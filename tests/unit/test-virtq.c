/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>

#include <cmocka.h>

#include "common/iov.h"
#include "vhost-guest.h"
#include "vhost/mem-table.h"
#include "vhost/virtq.h"

#define MIB (1024ULL * 1024ULL)
#define NUM 16
#define DESC (GUEST_GPA + GUEST_DESC_OFF)
#define BUF(n) (GUEST_GPA + GUEST_BUF_OFF + 0x1000ULL * (n))
#define TABLE (GUEST_GPA + 0x8000ULL) /* indirect tables */

typedef struct Fixture {
        Guest g;
        VhostMem *mem;
        VirtQueue *vq;
        int call_fd, err_fd;
} Fixture;

static VhostMem *mem_for(const Guest *g) {
        struct vhost_user_mem_region d = guest_region(g);
        MemRegion *r;
        VhostMem *m;

        assert_int_equal(mem_region_map(&d, g->memfd, &r), 0);
        assert_int_equal(vhost_mem_new(&r, 1, &m), 0);
        mem_region_unref(r);
        return m;
}

static int fixture_setup_size(void **state, uint64_t bytes) {
        Fixture *f = calloc(1, sizeof(*f));

        assert_non_null(f);
        assert_int_equal(guest_init(&f->g, bytes, NUM), 0);
        f->mem = mem_for(&f->g);
        assert_int_equal(virtq_new(0, &f->vq), 0);
        assert_int_equal(virtq_set_num(f->vq, NUM, 1024), 0);
        assert_int_equal(virtq_set_addr(f->vq, f->mem, guest_ua(GUEST_GPA + GUEST_DESC_OFF),
                                        guest_ua(GUEST_GPA + GUEST_AVAIL_OFF),
                                        guest_ua(GUEST_GPA + GUEST_USED_OFF)),
                         0);
        assert_int_equal(virtq_set_base(f->vq, 0), 0);
        f->call_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        f->err_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        assert_true(f->call_fd >= 0 && f->err_fd >= 0);
        virtq_set_call_fd(f->vq, dup(f->call_fd));
        virtq_set_err_fd(f->vq, dup(f->err_fd));
        virtq_set_enabled(f->vq, true);
        assert_int_equal(virtq_start(f->vq), 0);
        *state = f;
        return 0;
}

static int fixture_setup(void **state) {
        return fixture_setup_size(state, MIB);
}

static int fixture_teardown(void **state) {
        Fixture *f = *state;

        virtq_free(f->vq);
        vhost_mem_unref(f->mem);
        close(f->call_fd);
        close(f->err_fd);
        guest_done(&f->g);
        free(f);
        return 0;
}

/* Reads and clears an eventfd: true when it had been signalled. */
static bool fired(int fd) {
        uint64_t v;

        return read(fd, &v, sizeof(v)) == sizeof(v) && v > 0;
}

/* The ring breaks for this reason (so that each test fails when its own check is removed). */
static void expect_break(Fixture *f, const char *why) {
        VhostElem *e = (VhostElem *) 1;
        const char *reason = NULL;

        assert_int_equal(virtq_pop(f->vq, &e, &reason), -EBADMSG);
        assert_null(e);
        assert_non_null(reason);
        if (!strstr(reason, why))
                fail_msg("ring broke for '%s', expected '%s'", reason, why);
        assert_true(virtq_is_broken(f->vq));
        assert_true(fired(f->err_fd));
        /* Broken means broken: nothing more is popped, the used ring is untouched. */
        assert_int_equal(virtq_pop(f->vq, &e, NULL), 0);
        assert_int_equal(guest_used_idx(&f->g), 0);
}

/* The request alone fails: completed with length 0, the ring goes on. */
static void expect_failed_request(Fixture *f, uint16_t head) {
        VhostElem *e = NULL;
        int r;

        r = virtq_pop(f->vq, &e, NULL);
        assert_true(r == -EFAULT || r == -EINVAL);
        assert_null(e);
        assert_false(virtq_is_broken(f->vq));
        assert_int_equal(guest_used_idx(&f->g), 1);
        assert_int_equal(guest_used_elem(&f->g, 0).id, head);
        assert_int_equal(guest_used_elem(&f->g, 0).len, 0);
        assert_int_equal(virtq_inflight(f->vq), 0);
        assert_false(fired(f->err_fd));
}

/* ---- good chains ---- */

static void test_pop_direct_chain(void **state) {
        Fixture *f = *state;
        VhostElem *e = NULL, *held;
        char out[8] = {};

        memcpy(guest_ptr(&f->g, BUF(0)), "request!", 8);
        guest_desc(&f->g, 3, BUF(0), 8, VRING_DESC_F_NEXT, 7);
        guest_desc(&f->g, 7, BUF(1), 100, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 9);
        guest_desc(&f->g, 9, BUF(2), 28, VRING_DESC_F_WRITE, 0);
        guest_publish(&f->g, 3);

        assert_int_equal(virtq_pop(f->vq, &e, NULL), 1);
        assert_non_null(e);
        assert_int_equal(e->head, 3);
        assert_int_equal(e->queue, 0);
        assert_int_equal(e->n_rd, 1);
        assert_int_equal(e->rd_len, 8);
        assert_int_equal(e->n_wr, 2);
        assert_int_equal(e->wr_len, 128);
        assert_int_equal(iov_to_buf(e->rd, e->n_rd, 0, out, sizeof(out)), 8);
        assert_memory_equal(out, "request!", 8);
        assert_int_equal(buf_to_iov(e->wr, e->n_wr, 98, "resp", 4), 4);
        assert_int_equal(virtq_inflight(f->vq), 1);
        held = e;
        assert_int_equal(virtq_pop(f->vq, &e, NULL), 0);
        assert_null(e);
        assert_int_equal(guest_used_idx(&f->g), 0);
        virtq_push(f->vq, held, 102);
        assert_int_equal(guest_used_elem(&f->g, 0).len, 102);
        /* Written across the two writable segments. */
        assert_memory_equal(guest_ptr(&f->g, BUF(1) + 98), "re", 2);
        assert_memory_equal(guest_ptr(&f->g, BUF(2)), "sp", 2);
}

static void test_push_writes_used_and_clamps(void **state) {
        Fixture *f = *state;
        VhostElem *e;

        guest_desc(&f->g, 0, BUF(0), 8, VRING_DESC_F_NEXT, 1);
        guest_desc(&f->g, 1, BUF(1), 64, VRING_DESC_F_WRITE, 0);
        guest_publish(&f->g, 0);
        assert_int_equal(virtq_pop(f->vq, &e, NULL), 1);
        virtq_push(f->vq, e, 1000); /* more than writable: clamped */
        assert_int_equal(guest_used_idx(&f->g), 1);
        assert_int_equal(guest_used_elem(&f->g, 0).id, 0);
        assert_int_equal(guest_used_elem(&f->g, 0).len, 64);
        assert_int_equal(virtq_inflight(f->vq), 0);
        assert_true(virtq_notify(f->vq));
        assert_true(fired(f->call_fd));
        /* Nothing new pushed: no second interrupt. */
        assert_false(virtq_notify(f->vq));
}

static void test_pop_indirect_chain(void **state) {
        Fixture *f = *state;
        VhostElem *e;

        guest_set_desc(&f->g, TABLE, 0, BUF(0), 16, VRING_DESC_F_NEXT, 2);
        guest_set_desc(&f->g, TABLE, 2, BUF(1), 32, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 1);
        guest_set_desc(&f->g, TABLE, 1, BUF(2), 48, VRING_DESC_F_WRITE, 0);
        guest_desc(&f->g, 5, TABLE, 3 * 16, VRING_DESC_F_INDIRECT, 0);
        guest_publish(&f->g, 5);
        assert_int_equal(virtq_pop(f->vq, &e, NULL), 1);
        assert_int_equal(e->head, 5);
        assert_int_equal(e->rd_len, 16);
        assert_int_equal(e->wr_len, 80);
        assert_int_equal(e->n_wr, 2);
        virtq_push(f->vq, e, 10);
        assert_int_equal(guest_used_elem(&f->g, 0).id, 5);
        assert_int_equal(guest_used_elem(&f->g, 0).len, 10);
}

static void test_pop_indirect_table_straddling_regions(void **state) {
        struct vhost_user_mem_region d1, d2;
        MemRegion *r[2];
        VhostMem *m;
        VirtQueue *vq;
        VhostElem *e;
        Guest g;
        uint64_t table = GUEST_GPA + MIB - 32; /* 2 entries in region 1, 2 in region 2 */

        assert_int_equal(guest_init(&g, 2 * MIB, NUM), 0);
        d1 = guest_region(&g);
        d1.memory_size = MIB;
        d2 = (struct vhost_user_mem_region){ GUEST_GPA + MIB, MIB, GUEST_UADDR + 64 * MIB,
                                             GUEST_MMAP_OFFSET + MIB };
        assert_int_equal(mem_region_map(&d1, g.memfd, &r[0]), 0);
        assert_int_equal(mem_region_map(&d2, g.memfd, &r[1]), 0);
        assert_int_equal(vhost_mem_new(r, 2, &m), 0);
        mem_region_unref(r[0]);
        mem_region_unref(r[1]);
        assert_int_equal(virtq_new(1, &vq), 0);
        assert_int_equal(virtq_set_num(vq, NUM, NUM), 0);
        assert_int_equal(virtq_set_addr(vq, m, guest_ua(DESC), guest_ua(GUEST_GPA + GUEST_AVAIL_OFF),
                                        guest_ua(GUEST_GPA + GUEST_USED_OFF)),
                         0);
        virtq_set_enabled(vq, true);
        assert_int_equal(virtq_start(vq), 0);

        for (unsigned i = 0; i < 4; i++)
                guest_set_desc(&g, table, i, BUF(i), 10 + i,
                               VRING_DESC_F_NEXT | (i >= 2 ? VRING_DESC_F_WRITE : 0), (uint16_t) (i + 1));
        guest_set_desc(&g, table, 3, BUF(3), 13, VRING_DESC_F_WRITE, 0);
        guest_desc(&g, 0, table, 64, VRING_DESC_F_INDIRECT, 0);
        guest_publish(&g, 0);
        assert_int_equal(virtq_pop(vq, &e, NULL), 1);
        assert_int_equal(e->queue, 1);
        assert_int_equal(e->rd_len, 10 + 11);
        assert_int_equal(e->wr_len, 12 + 13);
        virtq_push(vq, e, 0);
        virtq_free(vq);
        vhost_mem_unref(m);
        guest_done(&g);
}

/* ---- §5.7, one row each ---- */

static void test_pop_rejects_avail_idx_jump(void **state) {
        Fixture *f = *state;

        guest_desc(&f->g, 0, BUF(0), 8, 0, 0);
        guest_set_avail_idx(&f->g, NUM + 1);
        expect_break(f, "avail index moved");
}

static void test_pop_rejects_head_beyond_ring(void **state) {
        Fixture *f = *state;

        guest_publish(&f->g, NUM);
        expect_break(f, "head index out of range");
}

static void test_pop_rejects_next_out_of_range(void **state) {
        Fixture *f = *state;

        guest_desc(&f->g, 0, BUF(0), 8, VRING_DESC_F_NEXT, NUM);
        guest_publish(&f->g, 0);
        expect_break(f, "next descriptor index out of range");
}

static void test_pop_rejects_descriptor_loop(void **state) {
        Fixture *f = *state;

        guest_desc(&f->g, 0, BUF(0), 8, VRING_DESC_F_NEXT, 1);
        guest_desc(&f->g, 1, BUF(1), 8, VRING_DESC_F_NEXT, 0);
        guest_publish(&f->g, 0);
        expect_break(f, "loop");
}

static void test_pop_rejects_chain_longer_than_ring(void **state) {
        Fixture *f = *state;

        /* Every descriptor is distinct until the last, which points back into the chain. */
        for (unsigned i = 0; i < NUM; i++)
                guest_desc(&f->g, i, BUF(0), 8, VRING_DESC_F_NEXT, (uint16_t) ((i + 1) % NUM));
        guest_publish(&f->g, 0);
        expect_break(f, "longer than its table");
}

static void test_pop_rejects_indirect_loop(void **state) {
        Fixture *f = *state;

        guest_set_desc(&f->g, TABLE, 0, BUF(0), 8, VRING_DESC_F_NEXT, 1);
        guest_set_desc(&f->g, TABLE, 1, BUF(0), 8, VRING_DESC_F_NEXT, 0);
        guest_desc(&f->g, 0, TABLE, 32, VRING_DESC_F_INDIRECT, 0);
        guest_publish(&f->g, 0);
        expect_break(f, "loop");
}

static void test_pop_rejects_nested_indirect(void **state) {
        Fixture *f = *state;

        guest_set_desc(&f->g, TABLE, 0, TABLE + 0x100, 16, VRING_DESC_F_INDIRECT, 0);
        guest_set_desc(&f->g, TABLE + 0x100, 0, BUF(0), 8, 0, 0);
        guest_desc(&f->g, 0, TABLE, 16, VRING_DESC_F_INDIRECT, 0);
        guest_publish(&f->g, 0);
        expect_break(f, "indirect descriptor inside");
}

static void test_pop_rejects_indirect_with_next(void **state) {
        Fixture *f = *state;

        guest_set_desc(&f->g, TABLE, 0, BUF(0), 8, 0, 0);
        guest_desc(&f->g, 0, TABLE, 16, VRING_DESC_F_INDIRECT | VRING_DESC_F_NEXT, 1);
        guest_desc(&f->g, 1, BUF(1), 8, 0, 0);
        guest_publish(&f->g, 0);
        expect_break(f, "indirect descriptor with NEXT");
}

static void test_pop_rejects_indirect_len_zero(void **state) {
        Fixture *f = *state;

        guest_desc(&f->g, 0, TABLE, 0, VRING_DESC_F_INDIRECT, 0);
        guest_publish(&f->g, 0);
        expect_break(f, "bad indirect table length");
}

static void test_pop_rejects_indirect_len_not_multiple_of_16(void **state) {
        Fixture *f = *state;

        guest_set_desc(&f->g, TABLE, 0, BUF(0), 8, 0, 0);
        guest_desc(&f->g, 0, TABLE, 24, VRING_DESC_F_INDIRECT, 0);
        guest_publish(&f->g, 0);
        expect_break(f, "bad indirect table length");
}

static void test_pop_rejects_indirect_table_outside_memory(void **state) {
        Fixture *f = *state;

        guest_desc(&f->g, 0, GUEST_GPA + MIB - 16, 32, VRING_DESC_F_INDIRECT, 0);
        guest_publish(&f->g, 0);
        expect_break(f, "indirect table outside");
}

static void test_pop_rejects_indirect_table_too_large(void **state) {
        Fixture *f = *state;

        guest_desc(&f->g, 0, TABLE, 16 * (VIRTQ_MAX_INDIRECT + 1), VRING_DESC_F_INDIRECT, 0);
        guest_publish(&f->g, 0);
        expect_break(f, "indirect table too large");
}

static void test_pop_fails_buffer_outside_memory(void **state) {
        Fixture *f = *state;
        VhostElem *e;

        guest_desc(&f->g, 2, GUEST_GPA + MIB - 4, 8, 0, 0); /* 4 bytes past the end */
        guest_publish(&f->g, 2);
        expect_failed_request(f, 2);
        /* The next request is served. */
        guest_desc(&f->g, 3, BUF(0), 8, 0, 0);
        guest_publish(&f->g, 3);
        assert_int_equal(virtq_pop(f->vq, &e, NULL), 1);
        virtq_push(f->vq, e, 0);
}

static void test_pop_fails_address_wrap(void **state) {
        Fixture *f = *state;

        guest_desc(&f->g, 1, UINT64_MAX - 8, 0x100, 0, 0);
        guest_publish(&f->g, 1);
        expect_failed_request(f, 1);
}

static void test_pop_fails_zero_length_descriptor(void **state) {
        Fixture *f = *state;

        guest_desc(&f->g, 4, BUF(0), 8, VRING_DESC_F_NEXT, 5);
        guest_desc(&f->g, 5, BUF(1), 0, VRING_DESC_F_WRITE, 0);
        guest_publish(&f->g, 4);
        expect_failed_request(f, 4);
}

static void test_pop_rejects_readable_after_writable(void **state) {
        Fixture *f = *state;

        guest_desc(&f->g, 0, BUF(0), 8, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1);
        guest_desc(&f->g, 1, BUF(1), 8, 0, 0);
        guest_publish(&f->g, 0);
        expect_break(f, "readable descriptor after");
}

static void test_pop_rejects_too_many_inflight(void **state) {
        Fixture *f = *state;
        VhostElem *held[NUM];

        guest_desc(&f->g, 0, BUF(0), 8, 0, 0);
        for (unsigned i = 0; i < NUM; i++) {
                guest_publish(&f->g, 0);
                assert_int_equal(virtq_pop(f->vq, &held[i], NULL), 1);
        }
        assert_int_equal(virtq_inflight(f->vq), NUM);
        guest_publish(&f->g, 0);
        expect_break(f, "in flight");
        for (unsigned i = 0; i < NUM; i++)
                vhost_elem_free(held[i]);
}

static void test_pop_rejects_chain_over_4gib(void **state) {
        Fixture *f = *state;

        /* Two descriptors over the same 2 GiB + 1 byte: the walk stops before the sum passes 2^32. */
        guest_desc(&f->g, 0, GUEST_GPA, 0x80000001u, VRING_DESC_F_NEXT, 1);
        guest_desc(&f->g, 1, GUEST_GPA, 0x80000001u, 0, 0);
        guest_publish(&f->g, 0);
        expect_break(f, "4 GiB");
}

static void test_pop_rejects_too_many_segments(void **state) {
        struct vhost_user_mem_region d1, d2;
        MemRegion *r[2];
        VhostMem *m;
        VirtQueue *vq;
        VhostElem *e;
        Guest g;
        const unsigned n = 600; /* each crosses the region boundary: 2 segments each, > 1024 */

        assert_int_equal(guest_init(&g, 2 * MIB, NUM), 0);
        d1 = guest_region(&g);
        d1.memory_size = MIB;
        d2 = (struct vhost_user_mem_region){ GUEST_GPA + MIB, MIB, GUEST_UADDR + 64 * MIB,
                                             GUEST_MMAP_OFFSET + MIB };
        assert_int_equal(mem_region_map(&d1, g.memfd, &r[0]), 0);
        assert_int_equal(mem_region_map(&d2, g.memfd, &r[1]), 0);
        assert_int_equal(vhost_mem_new(r, 2, &m), 0);
        mem_region_unref(r[0]);
        mem_region_unref(r[1]);
        assert_int_equal(virtq_new(0, &vq), 0);
        assert_int_equal(virtq_set_num(vq, NUM, NUM), 0);
        assert_int_equal(virtq_set_addr(vq, m, guest_ua(DESC), guest_ua(GUEST_GPA + GUEST_AVAIL_OFF),
                                        guest_ua(GUEST_GPA + GUEST_USED_OFF)),
                         0);
        virtq_set_enabled(vq, true);
        assert_int_equal(virtq_start(vq), 0);
        for (unsigned i = 0; i < n; i++)
                guest_set_desc(&g, TABLE, i, GUEST_GPA + MIB - 4, 8, i + 1 < n ? VRING_DESC_F_NEXT : 0,
                               (uint16_t) (i + 1));
        guest_desc(&g, 0, TABLE, 16 * n, VRING_DESC_F_INDIRECT, 0);
        guest_publish(&g, 0);
        const char *reason = NULL;
        assert_int_equal(virtq_pop(vq, &e, &reason), -EBADMSG);
        assert_string_equal(reason, "too many segments");
        assert_true(virtq_is_broken(vq));
        virtq_free(vq);
        vhost_mem_unref(m);
        guest_done(&g);
}

static void test_broken_ring_recovers_on_reconfiguration(void **state) {
        Fixture *f = *state;
        VhostElem *e;

        guest_publish(&f->g, NUM + 3);
        expect_break(f, "head index");
        (void) virtq_stop(f->vq);
        assert_int_equal(virtq_set_base(f->vq, guest_avail_idx(&f->g)), 0);
        assert_false(virtq_is_broken(f->vq));
        assert_int_equal(virtq_start(f->vq), 1); /* base moved: not a resume */
        guest_desc(&f->g, 0, BUF(0), 8, 0, 0);
        guest_publish(&f->g, 0);
        assert_int_equal(virtq_pop(f->vq, &e, NULL), 1);
        virtq_push(f->vq, e, 0);
}

/* ---- configuration ---- */

static void test_config_rejects_bad_num_and_addresses(void **state) {
        Fixture *f = *state;
        VirtQueue *vq;
        uint64_t d = guest_ua(DESC), a = guest_ua(GUEST_GPA + GUEST_AVAIL_OFF),
                 u = guest_ua(GUEST_GPA + GUEST_USED_OFF);

        assert_int_equal(virtq_new(0, &vq), 0);
        assert_int_equal(virtq_set_addr(vq, f->mem, d, a, u), -EINVAL); /* no num yet */
        assert_int_equal(virtq_set_num(vq, 0, 1024), -EINVAL);
        assert_int_equal(virtq_set_num(vq, 3, 1024), -EINVAL);
        assert_int_equal(virtq_set_num(vq, 2048, 1024), -EINVAL);
        assert_int_equal(virtq_set_num(vq, 65536, 65536), -EINVAL);
        assert_int_equal(virtq_start(vq), -ENXIO);
        assert_int_equal(virtq_set_num(vq, NUM, 1024), 0);
        assert_int_equal(virtq_set_addr(vq, f->mem, d + 8, a, u), -EINVAL);
        assert_int_equal(virtq_set_addr(vq, f->mem, d, a + 1, u), -EINVAL);
        assert_int_equal(virtq_set_addr(vq, f->mem, d, a, u + 2), -EINVAL);
        /* GPAs are not user addresses. */
        assert_int_equal(virtq_set_addr(vq, f->mem, DESC, a, u), -EFAULT);
        /* Used ring whose tail leaves the region: the start alone would translate. */
        assert_int_equal(virtq_set_addr(vq, f->mem, d, a, guest_ua(GUEST_GPA + MIB - 64)), -EFAULT);
        assert_int_equal(virtq_set_addr(vq, f->mem, guest_ua(GUEST_GPA + MIB - 16 * NUM + 16), a, u),
                         -EFAULT);
        assert_int_equal(virtq_set_addr(vq, NULL, d, a, u), -EFAULT);
        assert_int_equal(virtq_start(vq), -ENXIO);
        assert_int_equal(virtq_set_addr(vq, f->mem, d, a, u), 0);
        virtq_set_enabled(vq, true);
        assert_int_equal(virtq_start(vq), 0);
        assert_int_equal(virtq_set_num(vq, 8, 1024), -EBUSY);
        assert_int_equal(virtq_set_base(vq, 1), -EBUSY);
        assert_int_equal(virtq_set_addr(vq, f->mem, d, a, u), -EBUSY);
        virtq_free(vq);
}

/* ---- notifications ---- */

static void pop_push(Fixture *f, unsigned count) {
        VhostElem *e;

        for (unsigned i = 0; i < count; i++) {
                guest_publish(&f->g, 0);
                assert_int_equal(virtq_pop(f->vq, &e, NULL), 1);
                virtq_push(f->vq, e, 0);
        }
}

static void test_event_idx_notify_decisions(void **state) {
        Fixture *f = *state;

        (void) virtq_stop(f->vq);
        virtq_set_event_idx(f->vq, true);
        assert_int_equal(virtq_start(f->vq), 0);
        guest_desc(&f->g, 0, BUF(0), 8, 0, 0);

        guest_set_used_event(&f->g, 0xffff);
        pop_push(f, 1);
        /* The pop asked for a kick at the next entry. */
        assert_int_equal(guest_avail_event(&f->g), 1);
        /* First signal after a start is always sent. */
        assert_true(virtq_notify(f->vq));
        assert_true(fired(f->call_fd));

        /* Driver wants an interrupt once used idx passes 4. */
        guest_set_used_event(&f->g, 4);
        pop_push(f, 2); /* used idx 3 */
        assert_false(virtq_notify(f->vq));
        assert_false(fired(f->call_fd));
        pop_push(f, 2); /* used idx 5: crossed 4 */
        assert_true(virtq_notify(f->vq));
        assert_true(fired(f->call_fd));
        pop_push(f, 1); /* 6: event 4 already behind */
        assert_false(virtq_notify(f->vq));
        guest_set_used_event(&f->g, 6);
        pop_push(f, 1);
        assert_true(virtq_notify(f->vq));
        /* NO_INTERRUPT means nothing with EVENT_IDX. */
        guest_set_avail_flags(&f->g, VRING_AVAIL_F_NO_INTERRUPT);
        guest_set_used_event(&f->g, 7);
        pop_push(f, 1);
        assert_true(virtq_notify(f->vq));
}

static void test_no_interrupt_flag_without_event_idx(void **state) {
        Fixture *f = *state;

        guest_desc(&f->g, 0, BUF(0), 8, 0, 0);
        guest_set_avail_flags(&f->g, VRING_AVAIL_F_NO_INTERRUPT);
        pop_push(f, 1);
        assert_false(virtq_notify(f->vq));
        assert_false(fired(f->call_fd));
        guest_set_avail_flags(&f->g, 0);
        pop_push(f, 1);
        assert_true(virtq_notify(f->vq));
        assert_true(fired(f->call_fd));
        /* No call fd ("no fd" flag): decided but nobody to signal. */
        virtq_set_call_fd(f->vq, -1);
        pop_push(f, 1);
        (void) virtq_notify(f->vq);
        assert_false(fired(f->call_fd));
}

typedef struct DrainCtx {
        Fixture *f;
        unsigned handled;
        uint16_t used_flags_seen;
        bool push;
} DrainCtx;

static void drain_handle(void *userdata, VhostElem *e) {
        DrainCtx *c = userdata;

        c->handled++;
        c->used_flags_seen |= guest_used_flags(&c->f->g);
        if (c->push)
                virtq_push(c->f->vq, e, 0);
        else
                vhost_elem_free(e);
}

static void test_drain_suppresses_kicks_and_rechecks(void **state) {
        Fixture *f = *state;
        DrainCtx c = { .f = f, .push = true };

        guest_desc(&f->g, 0, BUF(0), 8, 0, 0);
        for (unsigned i = 0; i < 5; i++)
                guest_publish(&f->g, 0);
        assert_int_equal(virtq_drain(f->vq, drain_handle, &c, 100), 0);
        assert_int_equal(c.handled, 5);
        assert_int_equal(c.used_flags_seen, VRING_USED_F_NO_NOTIFY);
        assert_int_equal(guest_used_flags(&f->g), 0); /* kicks enabled again */
        assert_int_equal(guest_used_idx(&f->g), 5);

        /* Budget: the livelock guard hands control back with work left. */
        for (unsigned i = 0; i < 5; i++)
                guest_publish(&f->g, 0);
        c.handled = 0;
        assert_int_equal(virtq_drain(f->vq, drain_handle, &c, 2), 1);
        assert_int_equal(c.handled, 2);
        assert_int_equal(virtq_drain(f->vq, drain_handle, &c, 100), 0);
        assert_int_equal(c.handled, 5);

        /* A broken ring ends the drain. */
        guest_publish(&f->g, NUM + 1);
        assert_int_equal(virtq_drain(f->vq, drain_handle, &c, 100), -EBADMSG);
}

static void test_drain_disabled_or_stopped_pops_nothing(void **state) {
        Fixture *f = *state;
        DrainCtx c = { .f = f, .push = true };

        guest_desc(&f->g, 0, BUF(0), 8, 0, 0);
        guest_publish(&f->g, 0);
        virtq_set_enabled(f->vq, false);
        assert_int_equal(virtq_drain(f->vq, drain_handle, &c, 100), 0);
        assert_int_equal(c.handled, 0);
        virtq_set_enabled(f->vq, true);
        (void) virtq_stop(f->vq);
        assert_int_equal(virtq_drain(f->vq, drain_handle, &c, 100), 0);
        assert_int_equal(c.handled, 0);
        assert_int_equal(virtq_start(f->vq), 0);
        assert_int_equal(virtq_drain(f->vq, drain_handle, &c, 100), 0);
        assert_int_equal(c.handled, 1);
}

/* ---- stop, resume, reset ---- */

static void test_push_while_stopped_is_queued_and_resumed(void **state) {
        Fixture *f = *state;
        VhostElem *e1, *e2;

        guest_desc(&f->g, 0, BUF(0), 8, VRING_DESC_F_NEXT, 1);
        guest_desc(&f->g, 1, BUF(1), 8, VRING_DESC_F_WRITE, 0);
        guest_desc(&f->g, 2, BUF(2), 8, VRING_DESC_F_WRITE, 0);
        guest_publish(&f->g, 0);
        guest_publish(&f->g, 2);
        assert_int_equal(virtq_pop(f->vq, &e1, NULL), 1);
        assert_int_equal(virtq_pop(f->vq, &e2, NULL), 1);

        assert_int_equal(virtq_stop(f->vq), 2);
        virtq_push(f->vq, e1, 5);
        virtq_push(f->vq, e2, 7);
        assert_int_equal(virtq_n_pending(f->vq), 2);
        assert_int_equal(guest_used_idx(&f->g), 0);
        assert_false(virtq_notify(f->vq));

        /* Resume: same base, addresses and used idx. */
        assert_int_equal(virtq_set_base(f->vq, 2), 0);
        assert_int_equal(virtq_start(f->vq), 0);
        virtq_flush_pending(f->vq);
        assert_int_equal(virtq_n_pending(f->vq), 0);
        assert_int_equal(guest_used_idx(&f->g), 2);
        assert_int_equal(guest_used_elem(&f->g, 0).id, 0);
        assert_int_equal(guest_used_elem(&f->g, 0).len, 5);
        assert_int_equal(guest_used_elem(&f->g, 1).id, 2);
        assert_int_equal(guest_used_elem(&f->g, 1).len, 7);
        assert_int_equal(virtq_inflight(f->vq), 0);
        assert_true(virtq_notify(f->vq));
}

static void test_restart_with_other_state_is_a_reset(void **state) {
        Fixture *f = *state;
        VhostElem *e, *stale;

        guest_desc(&f->g, 0, BUF(0), 8, VRING_DESC_F_WRITE, 0);
        guest_publish(&f->g, 0);
        guest_publish(&f->g, 0);
        assert_int_equal(virtq_pop(f->vq, &e, NULL), 1);
        assert_int_equal(virtq_pop(f->vq, &stale, NULL), 1);
        (void) virtq_stop(f->vq);
        virtq_push(f->vq, e, 1);

        /* The driver re-initialised the ring: base 0 again. */
        assert_int_equal(virtq_set_base(f->vq, 0), 0);
        memset(guest_ptr(&f->g, GUEST_GPA + GUEST_AVAIL_OFF), 0, 0x2000);
        assert_int_equal(virtq_start(f->vq), 1);
        virtq_drop_inflight(f->vq);
        virtq_flush_pending(f->vq);
        assert_int_equal(guest_used_idx(&f->g), 0);
        assert_int_equal(virtq_inflight(f->vq), 0);
        /* An element from before the reset is ignored. */
        virtq_push(f->vq, stale, 8);
        assert_int_equal(guest_used_idx(&f->g), 0);

        /* Used idx changed behind our back is a reset too, and so are new addresses. */
        (void) virtq_stop(f->vq);
        guest_set_used_idx(&f->g, 9);
        assert_int_equal(virtq_start(f->vq), 1);
        (void) virtq_stop(f->vq);
        assert_int_equal(virtq_set_addr(f->vq, f->mem, guest_ua(DESC + 0x4000),
                                        guest_ua(GUEST_GPA + GUEST_AVAIL_OFF),
                                        guest_ua(GUEST_GPA + GUEST_USED_OFF)),
                         0);
        assert_int_equal(virtq_start(f->vq), 1);
        /* Without a stop record (a fresh connection) a start is never a reset. */
        virtq_reset(f->vq, false);
        assert_int_equal(virtq_set_num(f->vq, NUM, NUM), 0);
        assert_int_equal(virtq_set_addr(f->vq, f->mem, guest_ua(DESC), guest_ua(GUEST_GPA + GUEST_AVAIL_OFF),
                                        guest_ua(GUEST_GPA + GUEST_USED_OFF)),
                         0);
        assert_int_equal(virtq_start(f->vq), 0);
}

static void test_element_keeps_replaced_memory_mapped(void **state) {
        Fixture *f = *state;
        Guest g2;
        VhostMem *m2;
        VhostElem *e;
        struct vhost_user_mem_region d;
        MemRegion *r;

        guest_desc(&f->g, 0, BUF(0), 8, VRING_DESC_F_WRITE, 0);
        guest_publish(&f->g, 0);
        assert_int_equal(virtq_pop(f->vq, &e, NULL), 1);

        /* A completely different table (other memfd, other addresses): the ring becomes unmapped. */
        assert_int_equal(guest_init(&g2, MIB, NUM), 0);
        d = guest_region(&g2);
        d.guest_phys_addr += 256 * MIB;
        d.user_addr += 256 * MIB;
        assert_int_equal(mem_region_map(&d, g2.memfd, &r), 0);
        assert_int_equal(vhost_mem_new(&r, 1, &m2), 0);
        mem_region_unref(r);
        assert_int_equal(virtq_set_mem(f->vq, m2), -EFAULT);
        f->mem = vhost_mem_unref(f->mem);
        assert_false(virtq_can_pop(f->vq));

        /* The old table lives on in the element. */
        assert_int_equal(buf_to_iov(e->wr, e->n_wr, 0, "still ok", 8), 8);
        assert_memory_equal(guest_ptr(&f->g, BUF(0)), "still ok", 8);
        /* Completion while unmapped is queued, then lands once the ring is mapped again. */
        virtq_push(f->vq, e, 8);
        assert_int_equal(virtq_n_pending(f->vq), 1);
        f->mem = mem_for(&f->g);
        assert_int_equal(virtq_set_mem(f->vq, f->mem), 0);
        virtq_flush_pending(f->vq);
        assert_int_equal(guest_used_idx(&f->g), 1);
        assert_int_equal(guest_used_elem(&f->g, 0).len, 8);
        vhost_mem_unref(m2);
        guest_done(&g2);
}

#define T(name) cmocka_unit_test_setup_teardown(name, fixture_setup, fixture_teardown)

static int fixture_setup_big(void **state) {
        return fixture_setup_size(state, 3ULL * 1024 * MIB);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                T(test_pop_direct_chain),
                T(test_push_writes_used_and_clamps),
                T(test_pop_indirect_chain),
                cmocka_unit_test(test_pop_indirect_table_straddling_regions),
                T(test_pop_rejects_avail_idx_jump),
                T(test_pop_rejects_head_beyond_ring),
                T(test_pop_rejects_next_out_of_range),
                T(test_pop_rejects_descriptor_loop),
                T(test_pop_rejects_chain_longer_than_ring),
                T(test_pop_rejects_indirect_loop),
                T(test_pop_rejects_nested_indirect),
                T(test_pop_rejects_indirect_with_next),
                T(test_pop_rejects_indirect_len_zero),
                T(test_pop_rejects_indirect_len_not_multiple_of_16),
                T(test_pop_rejects_indirect_table_outside_memory),
                T(test_pop_rejects_indirect_table_too_large),
                T(test_pop_fails_buffer_outside_memory),
                T(test_pop_fails_address_wrap),
                T(test_pop_fails_zero_length_descriptor),
                T(test_pop_rejects_readable_after_writable),
                T(test_pop_rejects_too_many_inflight),
                cmocka_unit_test_setup_teardown(test_pop_rejects_chain_over_4gib, fixture_setup_big,
                                                fixture_teardown),
                cmocka_unit_test(test_pop_rejects_too_many_segments),
                T(test_broken_ring_recovers_on_reconfiguration),
                T(test_config_rejects_bad_num_and_addresses),
                T(test_event_idx_notify_decisions),
                T(test_no_interrupt_flag_without_event_idx),
                T(test_drain_suppresses_kicks_and_rechecks),
                T(test_drain_disabled_or_stopped_pops_nothing),
                T(test_push_while_stopped_is_queued_and_resumed),
                T(test_restart_with_other_state_is_a_reset),
                T(test_element_keeps_replaced_memory_mapped),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
