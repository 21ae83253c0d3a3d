/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Test-side "guest" for the vhost unit tests and fuzzers (vhost-user-backend.md §7.1): memfd guest
 * memory seen through its own mapping, with guest-physical address != frontend user address != test
 * pointer, and a split ring the test writes as the driver would.
 */

#include <endian.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vhost/vhost-user-proto.h"

#define GUEST_GPA 0x40000000ULL
#define GUEST_UADDR 0x7f0012340000ULL
#define GUEST_MMAP_OFFSET 0x1000ULL
#define GUEST_DESC_OFF 0x0000ULL
#define GUEST_AVAIL_OFF 0x1000ULL
#define GUEST_USED_OFF 0x2000ULL
#define GUEST_BUF_OFF 0x10000ULL

typedef struct Guest {
        int memfd;
        uint8_t *map; /* whole memfd */
        size_t map_size;
        uint64_t size; /* region size */
        unsigned num;  /* ring size */
} Guest;

/* memfd of `bytes` + the mmap offset; region covers [GUEST_GPA, GUEST_GPA + bytes). Returns 0 or -errno. */
static inline int guest_init(Guest *g, uint64_t bytes, unsigned num) {
        memset(g, 0, sizeof(*g));
        g->memfd = memfd_create("guest", MFD_CLOEXEC);
        if (g->memfd < 0)
                return -errno;
        g->map_size = (size_t) (bytes + GUEST_MMAP_OFFSET);
        if (ftruncate(g->memfd, (off_t) g->map_size) < 0)
                return -errno;
        g->map = mmap(NULL, g->map_size, PROT_READ | PROT_WRITE, MAP_SHARED, g->memfd, 0);
        if (g->map == MAP_FAILED)
                return -errno;
        g->size = bytes;
        g->num = num;
        return 0;
}

static inline void guest_done(Guest *g) {
        if (g->map && g->map != MAP_FAILED)
                munmap(g->map, g->map_size);
        if (g->memfd >= 0)
                close(g->memfd);
        memset(g, 0, sizeof(*g));
        g->memfd = -1;
}

static inline struct vhost_user_mem_region guest_region(const Guest *g) {
        return (struct vhost_user_mem_region){
                .guest_phys_addr = GUEST_GPA,
                .memory_size = g->size,
                .user_addr = GUEST_UADDR,
                .mmap_offset = GUEST_MMAP_OFFSET,
        };
}

static inline void *guest_ptr(const Guest *g, uint64_t gpa) {
        return g->map + GUEST_MMAP_OFFSET + (gpa - GUEST_GPA);
}

static inline uint64_t guest_ua(uint64_t gpa) {
        return GUEST_UADDR + (gpa - GUEST_GPA);
}

static inline void guest_set_desc(Guest *g,
                                  uint64_t table_gpa,
                                  unsigned i,
                                  uint64_t addr,
                                  uint32_t len,
                                  uint16_t flags,
                                  uint16_t next) {
        struct vring_desc d = {
                .addr = htole64(addr),
                .len = htole32(len),
                .flags = htole16(flags),
                .next = htole16(next),
        };
        memcpy((uint8_t *) guest_ptr(g, table_gpa) + 16 * i, &d, sizeof(d));
}

static inline void
guest_desc(Guest *g, unsigned i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next) {
        guest_set_desc(g, GUEST_GPA + GUEST_DESC_OFF, i, addr, len, flags, next);
}

static inline uint16_t *guest_u16(const Guest *g, uint64_t gpa) {
        return (uint16_t *) guest_ptr(g, gpa);
}

static inline uint16_t guest_avail_idx(const Guest *g) {
        return le16toh(*guest_u16(g, GUEST_GPA + GUEST_AVAIL_OFF + 2));
}

static inline void guest_set_avail_idx(Guest *g, uint16_t v) {
        atomic_thread_fence(memory_order_release);
        *guest_u16(g, GUEST_GPA + GUEST_AVAIL_OFF + 2) = htole16(v);
}

/* Put head in the next avail slot and publish it. */
static inline void guest_publish(Guest *g, uint16_t head) {
        uint16_t idx = guest_avail_idx(g);

        *guest_u16(g, GUEST_GPA + GUEST_AVAIL_OFF + 4 + 2 * (idx % g->num)) = htole16(head);
        guest_set_avail_idx(g, (uint16_t) (idx + 1));
}

static inline void guest_set_avail_flags(Guest *g, uint16_t f) {
        *guest_u16(g, GUEST_GPA + GUEST_AVAIL_OFF) = htole16(f);
}

static inline void guest_set_used_event(Guest *g, uint16_t v) {
        *guest_u16(g, GUEST_GPA + GUEST_AVAIL_OFF + 4 + 2 * g->num) = htole16(v);
}

static inline uint16_t guest_used_flags(const Guest *g) {
        return le16toh(*guest_u16(g, GUEST_GPA + GUEST_USED_OFF));
}

static inline uint16_t guest_used_idx(const Guest *g) {
        uint16_t v =
                le16toh(__atomic_load_n(guest_u16(g, GUEST_GPA + GUEST_USED_OFF + 2), __ATOMIC_ACQUIRE));
        return v;
}

static inline void guest_set_used_idx(Guest *g, uint16_t v) {
        *guest_u16(g, GUEST_GPA + GUEST_USED_OFF + 2) = htole16(v);
}

static inline uint16_t guest_avail_event(const Guest *g) {
        return le16toh(*guest_u16(g, GUEST_GPA + GUEST_USED_OFF + 4 + 8 * g->num));
}

static inline struct vring_used_elem guest_used_elem(const Guest *g, uint16_t i) {
        struct vring_used_elem e;

        memcpy(&e, (uint8_t *) guest_ptr(g, GUEST_GPA + GUEST_USED_OFF) + 4 + 8 * (i % g->num), sizeof(e));
        e.id = le32toh(e.id);
        e.len = le32toh(e.len);
        return e;
}
