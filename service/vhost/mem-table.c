/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "common/log.h"
#include "vhost/mem-table.h"

#define HUGETLBFS_MAGIC_ 0x958458f6

struct MemRegion {
        unsigned n_ref;
        uint64_t gpa;
        uint64_t size;
        uint64_t uaddr;
        uint64_t mmap_offset;
        void *map_base; /* what mmap returned */
        size_t map_len;
        uint8_t *host; /* map_base + (mmap_offset - page-aligned offset) */
};

struct VhostMem {
        unsigned n_ref;
        unsigned n_regions;
        MemRegion *regions[];
};

static int region_desc_check(const struct vhost_user_mem_region *d) {
        uint64_t end;

        if (d->memory_size == 0)
                return -EINVAL;
        /* Every end must be representable (§3.4): rust-vmm checks all three. */
        if (__builtin_add_overflow(d->guest_phys_addr, d->memory_size - 1, &end) ||
            __builtin_add_overflow(d->user_addr, d->memory_size - 1, &end) ||
            __builtin_add_overflow(d->mmap_offset, d->memory_size, &end))
                return -EINVAL;
        if (d->memory_size > SIZE_MAX / 2)
                return -EINVAL;
        return 0;
}

static uint64_t fd_page_size(int fd) {
        struct statfs sfs;
        long ps = sysconf(_SC_PAGESIZE);

        if (fstatfs(fd, &sfs) == 0 && (uint64_t) sfs.f_type == HUGETLBFS_MAGIC_ && sfs.f_bsize > 0)
                return (uint64_t) sfs.f_bsize;
        return ps > 0 ? (uint64_t) ps : 4096;
}

int mem_region_map(const struct vhost_user_mem_region *desc, int fd, MemRegion **ret) {
        struct vhost_user_mem_region d;
        struct stat st;
        uint64_t page, fd_off, delta, len, end;
        MemRegion *r;
        void *p;
        int k;

        memcpy(&d, desc, sizeof(d));
        k = region_desc_check(&d);
        if (k < 0)
                return k;
        if (fd < 0)
                return -EBADF;
        if (fstat(fd, &st) < 0)
                return -errno;
        /* A short file would SIGBUS on access (§3.4); block devices and the like report size 0. */
        end = d.mmap_offset + d.memory_size;
        if (!S_ISREG(st.st_mode) || st.st_size < 0 || (uint64_t) st.st_size < end)
                return -EFAULT;

        page = fd_page_size(fd);
        if (page == 0 || (page & (page - 1)) != 0)
                return -EINVAL;
        fd_off = d.mmap_offset & ~(page - 1);
        delta = d.mmap_offset - fd_off;
        if (__builtin_add_overflow(d.memory_size, delta, &len) || len > SIZE_MAX / 2)
                return -EINVAL;

        p = mmap(NULL, (size_t) len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, (off_t) fd_off);
        if (p == MAP_FAILED)
                return -errno;
        (void) madvise(p, (size_t) len, MADV_DONTDUMP);

        r = calloc(1, sizeof(*r));
        if (!r) {
                (void) munmap(p, (size_t) len);
                return -ENOMEM;
        }
        *r = (MemRegion){
                .n_ref = 1,
                .gpa = d.guest_phys_addr,
                .size = d.memory_size,
                .uaddr = d.user_addr,
                .mmap_offset = d.mmap_offset,
                .map_base = p,
                .map_len = (size_t) len,
                .host = (uint8_t *) p + delta,
        };
        *ret = r;
        return 0;
}

MemRegion *mem_region_ref(MemRegion *r) {
        if (r)
                r->n_ref++;
        return r;
}

MemRegion *mem_region_unref(MemRegion *r) {
        if (!r)
                return NULL;
        assert(r->n_ref > 0);
        if (--r->n_ref > 0)
                return NULL;
        (void) munmap(r->map_base, r->map_len);
        free(r);
        return NULL;
}

/* [a, a + as) and [b, b + bs) overlap; both sizes > 0 and both ends representable. */
static bool ranges_overlap(uint64_t a, uint64_t as, uint64_t b, uint64_t bs) {
        return a <= b + (bs - 1) && b <= a + (as - 1);
}

int vhost_mem_new(MemRegion *const *regions, unsigned n, VhostMem **ret) {
        VhostMem *m;

        if (n > VHOST_USER_MAX_MEM_SLOTS)
                return -E2BIG;
        for (unsigned i = 0; i < n; i++)
                for (unsigned j = i + 1; j < n; j++) {
                        const MemRegion *a = regions[i], *b = regions[j];

                        if (ranges_overlap(a->gpa, a->size, b->gpa, b->size) ||
                            ranges_overlap(a->uaddr, a->size, b->uaddr, b->size))
                                return -EINVAL;
                }

        m = calloc(1, sizeof(*m) + sizeof(MemRegion *) * n);
        if (!m)
                return -ENOMEM;
        m->n_ref = 1;
        m->n_regions = n;
        for (unsigned i = 0; i < n; i++)
                m->regions[i] = mem_region_ref(regions[i]);
        *ret = m;
        return 0;
}

int vhost_mem_new_added(VhostMem *old, MemRegion *r, VhostMem **ret) {
        _cleanup_free_ MemRegion **v = NULL;
        unsigned n = old ? old->n_regions : 0;

        if (n >= VHOST_USER_MAX_MEM_SLOTS)
                return -E2BIG;
        v = calloc(n + 1, sizeof(MemRegion *));
        if (!v)
                return -ENOMEM;
        for (unsigned i = 0; i < n; i++)
                v[i] = old->regions[i];
        v[n] = r;
        return vhost_mem_new(v, n + 1, ret);
}

int vhost_mem_new_removed(VhostMem *old, const struct vhost_user_mem_region *desc, VhostMem **ret) {
        _cleanup_free_ MemRegion **v = NULL;
        struct vhost_user_mem_region d;
        unsigned n = old ? old->n_regions : 0, k = 0;
        bool found = false;

        memcpy(&d, desc, sizeof(d));
        v = calloc(n + 1, sizeof(MemRegion *));
        if (!v)
                return -ENOMEM;
        for (unsigned i = 0; i < n; i++) {
                MemRegion *r = old->regions[i];

                /* mmap_offset is ignored: QEMU sends 0 here (§3.3). */
                if (!found && r->gpa == d.guest_phys_addr && r->size == d.memory_size &&
                    r->uaddr == d.user_addr) {
                        found = true;
                        continue;
                }
                v[k++] = r;
        }
        if (!found)
                return -ENOENT;
        return vhost_mem_new(v, k, ret);
}

unsigned vhost_mem_n_regions(const VhostMem *m) {
        return m ? m->n_regions : 0;
}

VhostMem *vhost_mem_ref(VhostMem *m) {
        if (m)
                m->n_ref++;
        return m;
}

VhostMem *vhost_mem_unref(VhostMem *m) {
        if (!m)
                return NULL;
        assert(m->n_ref > 0);
        if (--m->n_ref > 0)
                return NULL;
        for (unsigned i = 0; i < m->n_regions; i++)
                mem_region_unref(m->regions[i]);
        free(m);
        return NULL;
}

/* The region containing addr, comparing against the offset so that base + size never overflows. */
static const MemRegion *find_region(const VhostMem *m, uint64_t addr, bool by_gpa) {
        if (!m)
                return NULL;
        for (unsigned i = 0; i < m->n_regions; i++) {
                const MemRegion *r = m->regions[i];
                uint64_t base = by_gpa ? r->gpa : r->uaddr;

                if (addr >= base && addr - base < r->size)
                        return r;
        }
        return NULL;
}

static void *to_ptr(const VhostMem *m, uint64_t addr, uint64_t len, bool by_gpa) {
        const MemRegion *r;
        uint64_t off, end;

        if (len == 0 || __builtin_add_overflow(addr, len - 1, &end))
                return NULL;
        r = find_region(m, addr, by_gpa);
        if (!r)
                return NULL;
        off = addr - (by_gpa ? r->gpa : r->uaddr);
        if (len > r->size - off)
                return NULL;
        return r->host + off;
}

void *vhost_mem_uaddr_to_ptr(const VhostMem *m, uint64_t uaddr, uint64_t len) {
        return to_ptr(m, uaddr, len, false);
}

void *vhost_mem_gpa_to_ptr(const VhostMem *m, uint64_t gpa, uint64_t len) {
        return to_ptr(m, gpa, len, true);
}

int vhost_mem_translate(VhostMem *m, uint64_t gpa, uint64_t len, struct iovec *iov, unsigned max_iov) {
        unsigned n = 0;
        uint64_t end;

        if (len == 0)
                return 0;
        if (__builtin_add_overflow(gpa, len - 1, &end))
                return -EFAULT;
        while (len > 0) {
                const MemRegion *r = find_region(m, gpa, true);
                uint64_t off, chunk;

                if (!r)
                        return -EFAULT;
                if (n >= max_iov)
                        return -E2BIG;
                off = gpa - r->gpa;
                chunk = MIN(len, r->size - off);
                iov[n++] = (struct iovec){ .iov_base = r->host + off, .iov_len = (size_t) chunk };
                gpa += chunk; /* cannot wrap: end was checked */
                len -= chunk;
        }
        return (int) n;
}

int vhost_mem_read_gpa(const VhostMem *m, uint64_t gpa, void *buf, size_t len) {
        uint8_t *out = buf;
        uint64_t end;

        if (len == 0)
                return 0;
        if (__builtin_add_overflow(gpa, (uint64_t) len - 1, &end))
                return -EFAULT;
        while (len > 0) {
                const MemRegion *r = find_region(m, gpa, true);
                uint64_t off, chunk;

                if (!r)
                        return -EFAULT;
                off = gpa - r->gpa;
                chunk = MIN((uint64_t) len, r->size - off);
                memcpy(out, r->host + off, (size_t) chunk);
                out += chunk;
                gpa += chunk;
                len -= (size_t) chunk;
        }
        return 0;
}
