/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Split virtqueue (vhost-user-backend.md §5). Internal to vhost/ and its unit tests.
 *
 * The ring state of §5.2: started/stopped and enabled/disabled are independent; a queue pops only when
 * started, enabled, mapped and not broken. Ring pointers are translated from user addresses against the
 * VhostMem the queue holds a reference to; descriptors and indirect tables through guest physical
 * addresses of the same table, and each element keeps its own reference to it.
 *
 * Structural guest errors (§5.7) break the ring: it is logged once (rate-limited), the err eventfd is
 * signalled and nothing more is popped until the ring is reconfigured. Errors confined to one request
 * (zero-length descriptor, buffer outside guest memory) complete that request with used length 0.
 */

#include <stdbool.h>
#include <stdint.h>

#include "common/macro.h"
#include "vhost/vhost.h"

typedef struct VirtQueue VirtQueue;

#define VIRTQ_MAX_INDIRECT 1024 /* descriptors in one indirect table */

int virtq_new(unsigned index, VirtQueue **ret);
VirtQueue *virtq_free(VirtQueue *vq);
DEFINE_TRIVIAL_CLEANUP_FUNC(VirtQueue *, virtq_free);

/* Back to the initial state of a new connection: stopped, disabled, no num/addresses/memory (and no
 * call/err fds when close_fds); queued completions are dropped and elements still held by the device
 * become stale (their push is ignored). */
void virtq_reset(VirtQueue *vq, bool close_fds);

/* SET_VRING_NUM: power of two in 1..max. -EINVAL, or -EBUSY while started. */
int virtq_set_num(VirtQueue *vq, unsigned num, unsigned max);
/* SET_VRING_ADDR: alignment (desc 16, avail 2, used 4) and every structure inside one region of mem.
 * -EINVAL (alignment, no num), -EFAULT (not mapped), -EBUSY (started). Clears `broken`. */
int virtq_set_addr(VirtQueue *vq, VhostMem *mem, uint64_t desc, uint64_t avail, uint64_t used);
/* A new memory table: re-translate the ring. -EFAULT leaves the ring unmapped (nothing is popped and
 * completions are queued) until a later table maps it again. */
int virtq_set_mem(VirtQueue *vq, VhostMem *mem);
/* SET_VRING_BASE: next avail index. -EBUSY while started. Clears `broken`. */
int virtq_set_base(VirtQueue *vq, uint16_t base);
void virtq_set_event_idx(VirtQueue *vq, bool event_idx);
void virtq_set_enabled(VirtQueue *vq, bool enabled);
/* Take ownership of an eventfd (-1: none); the previous one is closed. */
void virtq_set_call_fd(VirtQueue *vq, int fd);
void virtq_set_err_fd(VirtQueue *vq, int fd);

/*
 * Start the ring (SET_VRING_KICK): reads used->idx from guest memory. Returns -ENXIO when num, addresses
 * or memory are missing, 1 when the ring was stopped by virtq_stop() before and the restart does not
 * look like a resume of that (§2.4: base, addresses or used->idx differ: the driver reset the device),
 * 0 otherwise. Queued completions are not written yet: call virtq_flush_pending() (after the device
 * reset, if 1 was returned).
 */
int virtq_start(VirtQueue *vq);
/* GET_VRING_BASE: stop and remember what a resume must look like. Returns the next avail index. */
uint16_t virtq_stop(VirtQueue *vq);
/* Forget queued completions and everything in flight (device reset); stale elements are ignored. */
void virtq_drop_inflight(VirtQueue *vq);
/* Write the completions queued while the ring was stopped or unmapped. */
void virtq_flush_pending(VirtQueue *vq);

bool virtq_is_started(const VirtQueue *vq);
bool virtq_is_enabled(const VirtQueue *vq);
bool virtq_is_broken(const VirtQueue *vq);
/* Started, enabled, mapped and not broken. */
bool virtq_can_pop(const VirtQueue *vq);
unsigned virtq_inflight(const VirtQueue *vq);
unsigned virtq_n_pending(const VirtQueue *vq);

/*
 * Pop one chain. Returns 0 when the ring is empty (or cannot pop), 1 with *ret set, -EBADMSG when the
 * ring broke (reason in *ret_reason), or -EFAULT/-EINVAL when this one request was malformed and was
 * completed with length 0 (reason in *ret_reason; the ring goes on).
 */
int virtq_pop(VirtQueue *vq, VhostElem **ret, const char **ret_reason);
/* Complete an element (takes it): used entry with min(written, wr_len). Queued while stopped or
 * unmapped, dropped when stale or the ring is broken. */
void virtq_push(VirtQueue *vq, VhostElem *elem, uint32_t written);
/* Signal the call eventfd if completions were pushed since the last call and EVENT_IDX /
 * NO_INTERRUPT allow it. Returns true when the guest was signalled. */
bool virtq_notify(VirtQueue *vq);

/*
 * Pop until empty, handing each element to handle(), with kick suppression and the re-check of §5.5.
 * At most `budget` chains: returns 1 when more may be available (the caller comes back later), 0 when
 * the ring is empty or cannot pop, -EBADMSG when it broke.
 */
int virtq_drain(VirtQueue *vq,
                void (*handle)(void *userdata, VhostElem *elem),
                void *userdata,
                unsigned budget);
