/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Guest memory table (vhost-user-backend.md §3.4). Internal to vhost/ and its unit tests.
 *
 * A VhostMem is an immutable, refcounted snapshot of the frontend's regions. Each region is mapped once
 * (MemRegion, refcounted itself) and shared by every snapshot that contains it, so ADD_MEM_REG/REM_MEM_REG
 * build a new snapshot without remapping, and a snapshot replaced while elements still use it stays
 * mapped until its last reference goes.
 */

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "common/macro.h"
#include "vhost/vhost-user-proto.h"
#include "vhost/vhost.h"

typedef struct MemRegion MemRegion;

/* Validates a region description, checks the fd is large enough and maps it (MAP_SHARED). Does not take
 * the fd: the caller closes it. -EINVAL for a bad description, -EFAULT when the fd is too small. */
int mem_region_map(const struct vhost_user_mem_region *desc, int fd, MemRegion **ret);
MemRegion *mem_region_ref(MemRegion *r);
MemRegion *mem_region_unref(MemRegion *r);

/* A snapshot of n regions (refs are taken; the caller keeps its own). -EINVAL when two regions overlap in
 * guest-physical or user address space, -E2BIG beyond VHOST_USER_MAX_MEM_SLOTS. n may be 0. */
int vhost_mem_new(MemRegion *const *regions, unsigned n, VhostMem **ret);
/* New snapshot = old (may be NULL) plus r, with the same checks. */
int vhost_mem_new_added(VhostMem *old, MemRegion *r, VhostMem **ret);
/* New snapshot = old minus the region matching (gpa, size, user_addr); -ENOENT when none matches. */
int vhost_mem_new_removed(VhostMem *old, const struct vhost_user_mem_region *desc, VhostMem **ret);
unsigned vhost_mem_n_regions(const VhostMem *m);

/* Host pointer for [addr, addr + len) when it lies inside one region, NULL otherwise (also on wrap or a
 * NULL table). uaddr: frontend user address (ring addresses); gpa: guest physical address (buffers). */
void *vhost_mem_uaddr_to_ptr(const VhostMem *m, uint64_t uaddr, uint64_t len);
void *vhost_mem_gpa_to_ptr(const VhostMem *m, uint64_t gpa, uint64_t len);
/* Copies [gpa, gpa + len) out of guest memory, across adjacent regions. -EFAULT when not all mapped. */
int vhost_mem_read_gpa(const VhostMem *m, uint64_t gpa, void *buf, size_t len);

DEFINE_TRIVIAL_CLEANUP_FUNC(VhostMem *, vhost_mem_unref);
DEFINE_TRIVIAL_CLEANUP_FUNC(MemRegion *, mem_region_unref);
