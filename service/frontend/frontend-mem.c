/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Guest memory of the frontend: one memfd region and a first-fit allocator over it. */

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/macro.h"
#include "frontend/frontend-internal.h"

int guest_mem_init(GuestMem *m, const VuFrontendOptions *o) {
        _cleanup_close_ int fd = -EBADF;
        uint64_t total;
        void *p;

        *m = (GuestMem){ .fd = -EBADF };

        if (o->mem_size == 0 || o->mem_size % 4096 != 0 || o->mem_mmap_offset % 4096 != 0 ||
            o->mem_gpa == 0 || o->mem_gpa % 4096 != 0)
                return -EINVAL;
        if (__builtin_add_overflow(o->mem_mmap_offset, o->mem_size, &total) || total > SIZE_MAX ||
            o->mem_gpa + o->mem_size < o->mem_gpa || o->mem_user_addr + o->mem_size < o->mem_user_addr)
                return -EINVAL;

        fd = memfd_create("vu-frontend-guest", MFD_CLOEXEC);
        if (fd < 0)
                return -errno;
        if (ftruncate(fd, (off_t) total) < 0)
                return -errno;
        p = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED)
                return -errno;

        m->free = calloc(1, sizeof(*m->free));
        if (!m->free) {
                (void) munmap(p, total);
                return -ENOMEM;
        }
        m->cap_free = m->n_free = 1;
        m->free[0] = (MemBlock){ .gpa = o->mem_gpa, .size = o->mem_size };

        m->fd = TAKE_FD(fd);
        m->map = p;
        m->base = m->map + o->mem_mmap_offset;
        m->gpa = o->mem_gpa;
        m->size = o->mem_size;
        m->user_addr = o->mem_user_addr;
        m->mmap_offset = o->mem_mmap_offset;
        return 0;
}

void guest_mem_done(GuestMem *m) {
        if (m->map)
                (void) munmap(m->map, m->mmap_offset + m->size);
        m->fd = safe_close(m->fd);
        free(m->free);
        free(m->used);
        *m = (GuestMem){ .fd = -EBADF };
}

static int block_insert(MemBlock **a, size_t *n, size_t *cap, size_t at, MemBlock b) {
        if (*n == *cap) {
                size_t c = *cap ? *cap * 2 : 16;
                MemBlock *t = reallocarray(*a, c, sizeof(**a));

                if (!t)
                        return -ENOMEM;
                *a = t;
                *cap = c;
        }
        memmove(*a + at + 1, *a + at, (*n - at) * sizeof(**a));
        (*a)[at] = b;
        (*n)++;
        return 0;
}

static void block_remove(MemBlock *a, size_t *n, size_t at) {
        memmove(a + at, a + at + 1, (*n - at - 1) * sizeof(*a));
        (*n)--;
}

/* Index of the first block whose gpa is >= gpa. */
static size_t block_lower_bound(const MemBlock *a, size_t n, uint64_t gpa) {
        size_t lo = 0, hi = n;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;

                if (a[mid].gpa < gpa)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return lo;
}

int vu_frontend_mem_alloc(VuFrontend *fe, uint64_t size, uint64_t align, uint64_t *ret_gpa) {
        GuestMem *m;
        int r;

        if (!fe || !ret_gpa || size == 0)
                return -EINVAL;
        if (align == 0)
                align = 16;
        if (align & (align - 1))
                return -EINVAL;
        m = &fe->mem;

        for (size_t i = 0; i < m->n_free; i++) {
                MemBlock f = m->free[i];
                uint64_t start, end, f_end = f.gpa + f.size;
                size_t at;

                if (__builtin_add_overflow(f.gpa, align - 1, &start))
                        continue;
                start &= ~(align - 1);
                if (__builtin_add_overflow(start, size, &end) || end > f_end)
                        continue;

                /* Reserve the bookkeeping slot first so that failure leaves both lists untouched. */
                at = block_lower_bound(m->used, m->n_used, start);
                r = block_insert(&m->used, &m->n_used, &m->cap_used, at, (MemBlock){ start, size });
                if (r < 0)
                        return r;

                if (start > f.gpa && end < f_end) {
                        r = block_insert(&m->free, &m->n_free, &m->cap_free, i + 1,
                                         (MemBlock){ end, f_end - end });
                        if (r < 0) {
                                block_remove(m->used, &m->n_used, at);
                                return r;
                        }
                        m->free[i].size = start - f.gpa;
                } else if (start > f.gpa)
                        m->free[i].size = start - f.gpa;
                else if (end < f_end)
                        m->free[i] = (MemBlock){ end, f_end - end };
                else
                        block_remove(m->free, &m->n_free, i);

                /* Zero what was handed out before; memory never handed out is still as the memfd made
                 * it (zero), and writing it here would only fault in pages the user is about to fill. */
                uint64_t off = start - m->gpa;
                if (off < m->touched)
                        memset(m->base + off, 0, MIN(size, m->touched - off));
                m->touched = MAX(m->touched, off + size);
                *ret_gpa = start;
                return 0;
        }
        return -ENOSPC;
}

int vu_frontend_mem_free(VuFrontend *fe, uint64_t gpa) {
        GuestMem *m;
        MemBlock b;
        size_t at, i;

        if (!fe)
                return -EINVAL;
        m = &fe->mem;
        at = block_lower_bound(m->used, m->n_used, gpa);
        if (at >= m->n_used || m->used[at].gpa != gpa)
                return -EINVAL;
        b = m->used[at];
        block_remove(m->used, &m->n_used, at);

        i = block_lower_bound(m->free, m->n_free, b.gpa);
        /* Merge with the previous and/or next free block; only a block between two gaps needs a slot. */
        if (i > 0 && m->free[i - 1].gpa + m->free[i - 1].size == b.gpa) {
                m->free[i - 1].size += b.size;
                if (i < m->n_free && b.gpa + b.size == m->free[i].gpa) {
                        m->free[i - 1].size += m->free[i].size;
                        block_remove(m->free, &m->n_free, i);
                }
                return 0;
        }
        if (i < m->n_free && b.gpa + b.size == m->free[i].gpa) {
                m->free[i].gpa = b.gpa;
                m->free[i].size += b.size;
                return 0;
        }
        /* The free list grows by one entry at most per used entry, and the used list just shrank, but
         * the arrays are separate: on ENOMEM, put the block back rather than lose it. */
        if (block_insert(&m->free, &m->n_free, &m->cap_free, i, b) < 0) {
                (void) block_insert(&m->used, &m->n_used, &m->cap_used, at, b);
                return -ENOMEM;
        }
        return 0;
}

uint64_t vu_frontend_mem_available(VuFrontend *fe) {
        uint64_t sum = 0;

        if (!fe)
                return 0;
        for (size_t i = 0; i < fe->mem.n_free; i++)
                sum += fe->mem.free[i].size;
        return sum;
}

int vu_frontend_mem_fd(VuFrontend *fe) {
        return fe ? fe->mem.fd : -EINVAL;
}

uint64_t vu_frontend_mem_gpa(VuFrontend *fe) {
        return fe ? fe->mem.gpa : 0;
}

uint64_t vu_frontend_mem_size(VuFrontend *fe) {
        return fe ? fe->mem.size : 0;
}

uint64_t vu_frontend_mem_user_addr(VuFrontend *fe) {
        return fe ? fe->mem.user_addr : 0;
}

void *vu_frontend_gpa_to_ptr(VuFrontend *fe, uint64_t gpa, uint64_t len) {
        uint64_t off, end;

        if (!fe || gpa < fe->mem.gpa)
                return NULL;
        off = gpa - fe->mem.gpa;
        if (__builtin_add_overflow(off, len, &end) || end > fe->mem.size)
                return NULL;
        if (len == 0 && off >= fe->mem.size)
                return NULL;
        return fe->mem.base + off;
}

uint64_t vu_frontend_ptr_to_gpa(VuFrontend *fe, const void *p) {
        uintptr_t u = (uintptr_t) p, b;

        if (!fe || !fe->mem.base)
                return 0;
        b = (uintptr_t) fe->mem.base;
        if (u < b || u - b >= fe->mem.size)
                return 0;
        return fe->mem.gpa + (u - b);
}

uint64_t vu_frontend_gpa_to_uaddr(VuFrontend *fe, uint64_t gpa) {
        if (!fe)
                return 0;
        return fe->mem.user_addr + (gpa - fe->mem.gpa);
}
