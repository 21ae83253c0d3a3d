/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * libFuzzer target: random descriptor tables, indirect tables and avail rings in memfd guest memory,
 * popped until empty or broken (vhost-user-backend.md §5.3, §5.7). Every segment handed out is read and
 * written in full, so ASan catches any translation that leaves guest memory.
 *
 * Input: [flags][num shift][base lo][base hi][desc table 16*num][avail ring 6+2*num][indirect area...]
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/macro.h"
#include "vhost-guest.h"
#include "vhost/mem-table.h"
#include "vhost/virtq.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REGION_SIZE (64 * 1024ULL)
#define INDIRECT_OFF 0x4000ULL

static Guest guest;
static VhostMem *mem;

static void init_once(void) {
        struct vhost_user_mem_region d;
        MemRegion *r;

        if (mem)
                return;
        log_set_max_level(LOG_CRIT); /* every broken ring logs a warning */
        if (guest_init(&guest, REGION_SIZE, 1) < 0)
                abort();
        d = guest_region(&guest);
        if (mem_region_map(&d, guest.memfd, &r) < 0 || vhost_mem_new(&r, 1, &mem) < 0)
                abort();
        mem_region_unref(r);
}

static void touch(VhostElem *e) {
        volatile uint8_t sink = 0;

        if (e->n_rd + e->n_wr > VHOST_ELEM_MAX_IOV)
                abort();
        for (unsigned i = 0; i < e->n_rd; i++) {
                const uint8_t *p = e->rd[i].iov_base;

                sink ^= p[0];
                sink ^= p[e->rd[i].iov_len - 1];
        }
        for (unsigned i = 0; i < e->n_wr; i++) {
                uint8_t *p = e->wr[i].iov_base;

                p[0] = 0xa5;
                p[e->wr[i].iov_len - 1] = 0x5a;
        }
        (void) sink;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        VirtQueue *vq = NULL;
        VhostElem *held[64];
        unsigned n_held = 0, num;
        uint8_t flags;
        size_t off = 4, n;

        init_once();
        if (size < 4)
                return 0;
        flags = data[0];
        num = 1u << (data[1] % 9); /* 1..256: desc, avail and used fit below INDIRECT_OFF */
        guest.num = num;
        memset(guest_ptr(&guest, GUEST_GPA), 0, REGION_SIZE);

        n = MIN((size_t) 16 * num, size - off);
        memcpy(guest_ptr(&guest, GUEST_GPA + GUEST_DESC_OFF), data + off, n);
        off += n;
        n = MIN((size_t) 6 + 2 * num, size - off);
        memcpy(guest_ptr(&guest, GUEST_GPA + GUEST_AVAIL_OFF), data + off, n);
        off += n;
        n = MIN((size_t) (REGION_SIZE - INDIRECT_OFF), size - off);
        memcpy(guest_ptr(&guest, GUEST_GPA + INDIRECT_OFF), data + off, n);

        /* Bias addresses into guest memory so that chains get deep. */
        if (flags & 1) {
                struct vring_desc *d = guest_ptr(&guest, GUEST_GPA + GUEST_DESC_OFF);

                for (unsigned i = 0; i < num; i++)
                        d[i].addr = htole64(GUEST_GPA + le64toh(d[i].addr) % REGION_SIZE);
        }

        if (virtq_new(0, &vq) < 0)
                abort();
        if (virtq_set_num(vq, num, 1024) < 0 ||
            virtq_set_addr(vq, mem, guest_ua(GUEST_GPA + GUEST_DESC_OFF),
                           guest_ua(GUEST_GPA + GUEST_AVAIL_OFF),
                           guest_ua(GUEST_GPA + GUEST_USED_OFF)) < 0 ||
            virtq_set_base(vq, (uint16_t) (data[2] | data[3] << 8)) < 0)
                abort();
        virtq_set_event_idx(vq, flags & 2);
        virtq_set_enabled(vq, true);
        if (virtq_start(vq) != 0)
                abort();

        for (unsigned i = 0; i < 4 * num + 4; i++) {
                VhostElem *e;
                int r = virtq_pop(vq, &e, NULL);

                if (r == 0 || r == -EBADMSG)
                        break;
                if (r < 0)
                        continue; /* this request failed alone */
                touch(e);
                if ((flags & 4) && n_held < ELEMENTSOF(held))
                        held[n_held++] = e;
                else
                        virtq_push(vq, e, (uint32_t) (e->wr_len / 2));
        }
        if (virtq_inflight(vq) > num)
                abort();
        (void) virtq_notify(vq);

        /* Completions while stopped are queued, then flushed on resume. */
        (void) virtq_stop(vq);
        for (unsigned i = 0; i < n_held; i++)
                virtq_push(vq, held[i], 1);
        if (virtq_n_pending(vq) != n_held)
                abort();
        /* A guest that wrote over its own used ring while the ring was stopped looks like a driver reset
         * (vhost-user-backend.md §2.4): the transport then drops what was pending instead of flushing it. */
        int started = virtq_start(vq);
        if (started < 0)
                abort();
        if (started == 1)
                virtq_drop_inflight(vq);
        virtq_flush_pending(vq);
        if (virtq_n_pending(vq) != 0)
                abort();
        (void) virtq_notify(vq);
        virtq_free(vq);
        return 0;
}
