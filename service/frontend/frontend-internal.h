/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/* Private state of the frontend library, shared by frontend.c, frontend-mem.c and frontend-ring.c. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "frontend/frontend.h"
#include "vhost/vhost-user-proto.h"

#define FRONTEND_MAX_QUEUES 8
#define FRONTEND_MAX_INDIRECT 1024

typedef struct MemBlock {
        uint64_t gpa;
        uint64_t size;
} MemBlock;

typedef struct GuestMem {
        int fd;
        uint8_t *map;  /* the whole memfd: mmap_offset + size bytes */
        uint8_t *base; /* map + mmap_offset: GPA gpa */
        uint64_t gpa, size, user_addr, mmap_offset;
        MemBlock *free; /* sorted by gpa, never adjacent (coalesced) */
        size_t n_free, cap_free;
        MemBlock *used; /* sorted by gpa */
        size_t n_used, cap_used;
        uint64_t touched; /* offset past the highest byte ever handed out: beyond it the memfd reads as zero */
} GuestMem;

/* One head of the descriptor table, while its chain is in flight. */
typedef struct Slot {
        bool in_flight;
        uint16_t n_desc; /* descriptors of the table the chain occupies */
        uint64_t tag;
        uint64_t wr_cap;       /* device-writable bytes of the chain */
        uint64_t indirect_gpa; /* owned indirect table, 0 if none */
        bool owned;            /* posted by submit() or post_event_buffers(): req/resp buffers are ours */
        bool event;            /* an event buffer (resp_gpa), re-posted once taken */
        uint64_t req_gpa, resp_gpa;
        uint64_t resp_cap;
} Slot;

/* A completion taken off the used ring and not yet handed out. */
typedef struct Done {
        VuUsed used;
        bool owned, event;
        uint64_t req_gpa, resp_gpa;
        uint64_t resp_cap;
} Done;

typedef struct Queue {
        unsigned num;
        uint64_t desc_gpa, avail_gpa, used_gpa;
        struct vring_desc *desc;
        uint16_t *avail; /* flags, idx, ring[num], used_event */
        uint16_t *used;  /* flags, idx, then used elements, then avail_event */

        uint16_t avail_idx; /* shadow of avail->idx */
        uint16_t kick_old;  /* avail_idx at the last kick decision */
        uint16_t last_used; /* next used slot to read */
        uint16_t base;      /* SET_VRING_BASE value for the next start */

        uint16_t *next_free; /* host-side chain links and free list */
        uint16_t free_head;
        unsigned n_free;
        Slot *slots;
        unsigned in_flight;

        Done *done;
        size_t n_done, cap_done;

        int kick_fd, call_fd, err_fd, masked_call_fd;
} Queue;

struct VuFrontend {
        VuFrontendOptions opts;
        int sock;
        GuestMem mem;
        Queue queues[FRONTEND_MAX_QUEUES];

        bool inited, running, region_added;
        uint64_t offered_features, offered_protocol_features;
        uint64_t protocol_features, features;
        uint64_t queue_num, max_mem_slots;
        uint64_t request_seq;
};

int guest_mem_init(GuestMem *m, const VuFrontendOptions *o);
void guest_mem_done(GuestMem *m);

int frontend_deadline(VuFrontend *fe, uint64_t *ret);
/* Waits until fd has one of events, or the deadline passes (-ETIMEDOUT); calls the pump. 1 = ready. */
int frontend_wait_fd(VuFrontend *fe, int fd, short events, uint64_t deadline);

int queue_alloc_ring(VuFrontend *fe, unsigned i);
void queue_free_ring(VuFrontend *fe, unsigned i);
int queue_reset_ring(VuFrontend *fe, unsigned i);
void queue_done(VuFrontend *fe, unsigned i);
