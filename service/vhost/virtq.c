/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <assert.h>
#include <endian.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log-ids.h"
#include "common/log.h"
#include "vhost/mem-table.h"
#include "vhost/virtq.h"

/* The element the device sees is the first member; the rest is ours. */
typedef struct VirtqElem {
        VhostElem pub;
        uint64_t generation;
        struct VirtqElem *pending_next;
        uint32_t pending_len;
        struct iovec iov[];
} VirtqElem;

struct VirtQueue {
        unsigned index;
        unsigned num; /* 0: not set */
        uint64_t desc_ua, avail_ua, used_ua;
        bool addr_set;
        VhostMem *mem;  /* table the pointers below were translated against */
        uint8_t *desc;  /* 16 * num */
        uint8_t *avail; /* 6 + 2 * num: flags, idx, ring[num], used_event */
        uint8_t *used;  /* 6 + 8 * num: flags, idx, ring[num], avail_event */

        uint16_t last_avail_idx;
        uint16_t used_idx;
        uint16_t signalled_used;
        bool signalled_valid;
        unsigned pushed_since_notify;
        unsigned inflight;
        uint64_t generation;

        bool started, enabled, broken, event_idx;
        int call_fd, err_fd;

        /* What GET_VRING_BASE left behind, for the resume-vs-reset decision (§2.4). */
        bool stop_recorded;
        uint16_t stop_avail_idx, stop_used_idx;
        uint64_t stop_desc_ua, stop_avail_ua, stop_used_ua;

        VirtqElem *pending_head, **pending_tail;
        unsigned n_pending;

        RateLimit log_rl;
        struct iovec *iov_tmp; /* VHOST_ELEM_MAX_IOV */
        uint8_t *indirect_buf; /* bounce buffer for tables straddling regions */
};

/* Ring field accessors: natural-width atomic accesses, little-endian (§5.4). */
static uint16_t load16(const uint8_t *p) {
        return le16toh(__atomic_load_n((const uint16_t *) (const void *) p, __ATOMIC_RELAXED));
}

static void store16(uint8_t *p, uint16_t v) {
        __atomic_store_n((uint16_t *) (void *) p, htole16(v), __ATOMIC_RELAXED);
}

static void store32(uint8_t *p, uint32_t v) {
        __atomic_store_n((uint32_t *) (void *) p, htole32(v), __ATOMIC_RELAXED);
}

#define AVAIL_FLAGS(vq) ((vq)->avail)
#define AVAIL_IDX(vq) ((vq)->avail + 2)
#define AVAIL_RING(vq, i) ((vq)->avail + 4 + 2 * (size_t) (i))
#define USED_EVENT(vq) ((vq)->avail + 4 + 2 * (size_t) (vq)->num)
#define USED_FLAGS(vq) ((vq)->used)
#define USED_IDX(vq) ((vq)->used + 2)
#define USED_RING(vq, i) ((vq)->used + 4 + 8 * (size_t) (i))
#define AVAIL_EVENT(vq) ((vq)->used + 4 + 8 * (size_t) (vq)->num)

int virtq_new(unsigned index, VirtQueue **ret) {
        _cleanup_(virtq_freep) VirtQueue *vq = NULL;

        vq = calloc(1, sizeof(*vq));
        if (!vq)
                return -ENOMEM;
        vq->index = index;
        vq->call_fd = vq->err_fd = -EBADF;
        vq->pending_tail = &vq->pending_head;
        vq->log_rl = RATELIMIT_INIT(10 * 1000000ULL, 3);
        vq->iov_tmp = calloc(VHOST_ELEM_MAX_IOV, sizeof(struct iovec));
        vq->indirect_buf = malloc(VIRTQ_MAX_INDIRECT * sizeof(struct vring_desc));
        if (!vq->iov_tmp || !vq->indirect_buf)
                return -ENOMEM;
        *ret = TAKE_PTR(vq);
        return 0;
}

static void drop_pending(VirtQueue *vq) {
        while (vq->pending_head) {
                VirtqElem *e = vq->pending_head;

                vq->pending_head = e->pending_next;
                vhost_elem_free(&e->pub);
        }
        vq->pending_tail = &vq->pending_head;
        vq->n_pending = 0;
}

static void unmap_ring(VirtQueue *vq) {
        vq->desc = vq->avail = vq->used = NULL;
}

void virtq_reset(VirtQueue *vq, bool close_fds) {
        drop_pending(vq);
        vq->mem = vhost_mem_unref(vq->mem);
        unmap_ring(vq);
        if (close_fds) {
                vq->call_fd = safe_close(vq->call_fd);
                vq->err_fd = safe_close(vq->err_fd);
        }
        vq->num = 0;
        vq->desc_ua = vq->avail_ua = vq->used_ua = 0;
        vq->addr_set = false;
        vq->last_avail_idx = vq->used_idx = vq->signalled_used = 0;
        vq->signalled_valid = false;
        vq->pushed_since_notify = 0;
        vq->inflight = 0;
        vq->generation++;
        vq->started = vq->enabled = vq->broken = vq->event_idx = false;
        vq->stop_recorded = false;
}

VirtQueue *virtq_free(VirtQueue *vq) {
        if (!vq)
                return NULL;
        virtq_reset(vq, true);
        free(vq->iov_tmp);
        free(vq->indirect_buf);
        free(vq);
        return NULL;
}

/* Ring structures must each lie inside one region (§3.3; libvhost-user checked only the start). */
static int translate_ring(VirtQueue *vq, VhostMem *mem) {
        uint8_t *d, *a, *u;

        d = vhost_mem_uaddr_to_ptr(mem, vq->desc_ua, 16ULL * vq->num);
        a = vhost_mem_uaddr_to_ptr(mem, vq->avail_ua, 6ULL + 2ULL * vq->num);
        u = vhost_mem_uaddr_to_ptr(mem, vq->used_ua, 6ULL + 8ULL * vq->num);
        if (!d || !a || !u)
                return -EFAULT;
        vq->desc = d;
        vq->avail = a;
        vq->used = u;
        return 0;
}

int virtq_set_num(VirtQueue *vq, unsigned num, unsigned max) {
        if (vq->started)
                return -EBUSY;
        if (num == 0 || num > max || num > VIRTQ_MAX_SIZE || (num & (num - 1)) != 0)
                return -EINVAL;
        if (vq->num != num) {
                vq->num = num;
                /* Addresses were validated for another size. */
                vq->addr_set = false;
                unmap_ring(vq);
        }
        return 0;
}

int virtq_set_addr(VirtQueue *vq, VhostMem *mem, uint64_t desc, uint64_t avail, uint64_t used) {
        uint64_t old_d = vq->desc_ua, old_a = vq->avail_ua, old_u = vq->used_ua;
        int r;

        if (vq->started)
                return -EBUSY;
        if (vq->num == 0 || desc % 16 != 0 || avail % 2 != 0 || used % 4 != 0)
                return -EINVAL;
        vq->desc_ua = desc;
        vq->avail_ua = avail;
        vq->used_ua = used;
        r = translate_ring(vq, mem);
        if (r < 0) {
                vq->desc_ua = old_d;
                vq->avail_ua = old_a;
                vq->used_ua = old_u;
                return r;
        }
        if (vq->mem != mem) {
                vhost_mem_unref(vq->mem);
                vq->mem = vhost_mem_ref(mem);
        }
        vq->addr_set = true;
        vq->broken = false;
        return 0;
}

int virtq_set_mem(VirtQueue *vq, VhostMem *mem) {
        if (vq->mem != mem) {
                vhost_mem_unref(vq->mem);
                vq->mem = vhost_mem_ref(mem);
        }
        unmap_ring(vq);
        if (!vq->addr_set)
                return 0;
        return translate_ring(vq, mem);
}

int virtq_set_base(VirtQueue *vq, uint16_t base) {
        if (vq->started)
                return -EBUSY;
        vq->last_avail_idx = base;
        vq->broken = false;
        return 0;
}

void virtq_set_event_idx(VirtQueue *vq, bool event_idx) {
        vq->event_idx = event_idx;
}

void virtq_set_enabled(VirtQueue *vq, bool enabled) {
        vq->enabled = enabled;
}

void virtq_set_call_fd(VirtQueue *vq, int fd) {
        int old = vq->call_fd;

        vq->call_fd = fd;
        safe_close(old);
}

void virtq_set_err_fd(VirtQueue *vq, int fd) {
        int old = vq->err_fd;

        vq->err_fd = fd;
        safe_close(old);
}

static bool mapped(const VirtQueue *vq) {
        return vq->desc && vq->avail && vq->used;
}

int virtq_start(VirtQueue *vq) {
        bool reset = false;
        uint16_t used_idx;

        if (vq->num == 0 || !vq->addr_set || !mapped(vq))
                return -ENXIO;
        used_idx = load16(USED_IDX(vq));
        if (vq->stop_recorded)
                reset = vq->stop_avail_idx != vq->last_avail_idx || vq->stop_used_idx != used_idx ||
                        vq->stop_desc_ua != vq->desc_ua || vq->stop_avail_ua != vq->avail_ua ||
                        vq->stop_used_ua != vq->used_ua;
        vq->stop_recorded = false;
        vq->used_idx = used_idx;
        vq->signalled_valid = false;
        vq->pushed_since_notify = 0;
        vq->started = true;
        return reset ? 1 : 0;
}

uint16_t virtq_stop(VirtQueue *vq) {
        if (vq->started) {
                vq->stop_recorded = true;
                vq->stop_avail_idx = vq->last_avail_idx;
                vq->stop_used_idx = vq->used_idx;
                vq->stop_desc_ua = vq->desc_ua;
                vq->stop_avail_ua = vq->avail_ua;
                vq->stop_used_ua = vq->used_ua;
        }
        vq->started = false;
        return vq->last_avail_idx;
}

void virtq_drop_inflight(VirtQueue *vq) {
        drop_pending(vq);
        vq->inflight = 0;
        vq->generation++;
        vq->stop_recorded = false;
}

bool virtq_is_started(const VirtQueue *vq) {
        return vq->started;
}

bool virtq_is_enabled(const VirtQueue *vq) {
        return vq->enabled;
}

bool virtq_is_broken(const VirtQueue *vq) {
        return vq->broken;
}

bool virtq_can_pop(const VirtQueue *vq) {
        return vq->started && vq->enabled && !vq->broken && mapped(vq);
}

unsigned virtq_inflight(const VirtQueue *vq) {
        return vq->inflight;
}

unsigned virtq_n_pending(const VirtQueue *vq) {
        return vq->n_pending;
}

static int ring_break(VirtQueue *vq, const char *reason, const char **ret_reason) {
        static const uint64_t one = 1;

        if (ratelimit_below(&vq->log_rl))
                log_id(LOG_WARNING, LOG_MESSAGE_BROKEN_BY_GUEST, "VQ=%u: guest broke the ring: %s",
                       vq->index, reason);
        vq->broken = true;
        if (vq->err_fd >= 0 && write(vq->err_fd, &one, sizeof(one)) < 0)
                log_debug_errno(-errno, "VQ=%u: failed to signal the error eventfd, ignoring: %m",
                                vq->index);
        if (ret_reason)
                *ret_reason = reason;
        return -EBADMSG;
}

/* Write one used entry and publish it (barrier 2 of §5.4). */
static void write_used(VirtQueue *vq, uint16_t head, uint32_t len) {
        unsigned slot = vq->used_idx & (vq->num - 1);

        store32(USED_RING(vq, slot), head);
        store32(USED_RING(vq, slot) + 4, len);
        vq->used_idx++;
        atomic_thread_fence(memory_order_release);
        store16(USED_IDX(vq), vq->used_idx);
        vq->pushed_since_notify++;
}

typedef struct Walk {
        unsigned n_rd, n_wr;
        size_t rd_len, wr_len;
        uint64_t total;
        bool seen_write;
} Walk;

/* Validate one descriptor copy and append its segments. 0, -EBADMSG (break), -EFAULT/-EINVAL (fail req). */
static int walk_desc(VirtQueue *vq, Walk *w, const struct vring_desc *d, const char **reason) {
        uint64_t addr = le64toh(d->addr);
        uint32_t len = le32toh(d->len);
        uint16_t flags = le16toh(d->flags);
        bool write = flags & VRING_DESC_F_WRITE;
        unsigned used = w->n_rd + w->n_wr;
        int n;

        if (flags & VRING_DESC_F_INDIRECT) {
                *reason = "indirect descriptor inside an indirect table or chain";
                return -EBADMSG;
        }
        if (!write && w->seen_write) {
                *reason = "device-readable descriptor after a writable one";
                return -EBADMSG;
        }
        if (len == 0) {
                /* Real drivers have sent these: fail the request, keep the device (§5.7). */
                *reason = "zero-length descriptor";
                return -EINVAL;
        }
        w->total += len;
        if (w->total > (1ULL << 32)) {
                *reason = "chain longer than 4 GiB";
                return -EBADMSG;
        }
        if (used >= VHOST_ELEM_MAX_IOV) {
                *reason = "too many segments";
                return -EBADMSG;
        }
        n = vhost_mem_translate(vq->mem, addr, len, vq->iov_tmp + used, VHOST_ELEM_MAX_IOV - used);
        if (n == -E2BIG) {
                *reason = "too many segments";
                return -EBADMSG;
        }
        if (n < 0) {
                *reason = "buffer outside guest memory";
                return -EFAULT;
        }
        /* Readable segments all come first (checked above), so they stay contiguous at the front. */
        if (write) {
                w->seen_write = true;
                w->n_wr += (unsigned) n;
                w->wr_len += len;
        } else {
                w->n_rd += (unsigned) n;
                w->rd_len += len;
        }
        return 0;
}

/* Walk the chain starting at head; fills vq->iov_tmp. */
static int walk_chain(VirtQueue *vq, uint16_t head, Walk *w, const char **reason) {
        const uint8_t *tbl = vq->desc;
        unsigned max = vq->num, i = head, steps = 0;
        struct vring_desc d;
        int r;

        memcpy(&d, tbl + 16 * (size_t) i, sizeof(d)); /* copied once; only the copy is used */
        if (le16toh(d.flags) & VRING_DESC_F_INDIRECT) {
                uint64_t taddr = le64toh(d.addr);
                uint32_t tlen = le32toh(d.len);

                if (le16toh(d.flags) & VRING_DESC_F_NEXT) {
                        *reason = "indirect descriptor with NEXT";
                        return -EBADMSG;
                }
                if (tlen == 0 || tlen % 16 != 0) {
                        *reason = "bad indirect table length";
                        return -EBADMSG;
                }
                if (tlen / 16 > VIRTQ_MAX_INDIRECT) {
                        *reason = "indirect table too large";
                        return -EBADMSG;
                }
                tbl = vhost_mem_gpa_to_ptr(vq->mem, taddr, tlen);
                if (!tbl) {
                        /* Straddles regions (or is unmapped): bounded bounce copy. */
                        if (vhost_mem_read_gpa(vq->mem, taddr, vq->indirect_buf, tlen) < 0) {
                                *reason = "indirect table outside guest memory";
                                return -EBADMSG;
                        }
                        tbl = vq->indirect_buf;
                }
                max = tlen / 16;
                i = 0;
                memcpy(&d, tbl, sizeof(d));
        }

        for (;;) {
                uint16_t flags;

                if (++steps > max) {
                        *reason = "descriptor loop or chain longer than its table";
                        return -EBADMSG;
                }
                r = walk_desc(vq, w, &d, reason);
                if (r < 0)
                        return r;
                flags = le16toh(d.flags);
                if (!(flags & VRING_DESC_F_NEXT))
                        return 0;
                i = le16toh(d.next);
                if (i >= max) {
                        *reason = "next descriptor index out of range";
                        return -EBADMSG;
                }
                memcpy(&d, tbl + 16 * (size_t) i, sizeof(d));
        }
}

static int make_elem(VirtQueue *vq, uint16_t head, const Walk *w, VhostElem **ret) {
        unsigned n = w->n_rd + w->n_wr;
        VirtqElem *e;

        e = calloc(1, sizeof(*e) + sizeof(struct iovec) * n);
        if (!e)
                return -ENOMEM;
        memcpy(e->iov, vq->iov_tmp, sizeof(struct iovec) * n);
        e->generation = vq->generation;
        e->pub = (VhostElem){
                .queue = vq->index,
                .head = head,
                .rd = e->iov,
                .n_rd = w->n_rd,
                .rd_len = w->rd_len,
                .wr = e->iov + w->n_rd,
                .n_wr = w->n_wr,
                .wr_len = w->wr_len,
                .mem = vhost_mem_ref(vq->mem),
        };
        *ret = &e->pub;
        return 0;
}

int virtq_pop(VirtQueue *vq, VhostElem **ret, const char **ret_reason) {
        const char *reason = NULL;
        uint16_t avail_idx, head;
        Walk w = {};
        int r;

        *ret = NULL;
        if (!virtq_can_pop(vq))
                return 0;
        avail_idx = load16(AVAIL_IDX(vq));
        atomic_thread_fence(memory_order_acquire); /* barrier 1: entries after the index */
        if (avail_idx == vq->last_avail_idx)
                return 0;
        if ((uint16_t) (avail_idx - vq->last_avail_idx) > vq->num)
                return ring_break(vq, "avail index moved further than the ring size", ret_reason);
        if (vq->inflight >= vq->num)
                return ring_break(vq, "more requests in flight than the ring size", ret_reason);
        head = load16(AVAIL_RING(vq, vq->last_avail_idx & (vq->num - 1)));
        if (head >= vq->num)
                return ring_break(vq, "head index out of range", ret_reason);

        r = walk_chain(vq, head, &w, &reason);
        if (r == -EBADMSG)
                return ring_break(vq, reason, ret_reason);

        vq->last_avail_idx++;
        if (vq->event_idx)
                store16(AVAIL_EVENT(vq), vq->last_avail_idx);
        if (r >= 0)
                r = make_elem(vq, head, &w, ret);
        if (r == -ENOMEM)
                reason = "out of memory";
        if (r < 0) {
                /* This request alone fails: complete it empty so the driver gets its buffers back. */
                if (ratelimit_below(&vq->log_rl))
                        log_warning("VQ=%u: failing request %u: %s", vq->index, head, reason);
                write_used(vq, head, 0);
                if (ret_reason)
                        *ret_reason = reason;
                return r == -ENOMEM ? -EINVAL : r;
        }
        vq->inflight++;
        return 1;
}

void virtq_push(VirtQueue *vq, VhostElem *elem, uint32_t written) {
        VirtqElem *e = (VirtqElem *) elem;

        if (!elem)
                return;
        if (e->generation != vq->generation || elem->queue != vq->index) {
                /* Popped before a reset: its ring is gone. */
                log_debug("VQ=%u: dropping completion of a request from before a reset", vq->index);
                vhost_elem_free(elem);
                return;
        }
        if (written > elem->wr_len)
                written = (uint32_t) MIN(elem->wr_len, (size_t) UINT32_MAX);
        if (!vq->started || !mapped(vq)) {
                e->pending_len = written;
                e->pending_next = NULL;
                *vq->pending_tail = e;
                vq->pending_tail = &e->pending_next;
                vq->n_pending++;
                return;
        }
        if (!vq->broken)
                write_used(vq, elem->head, written);
        if (vq->inflight > 0)
                vq->inflight--;
        vhost_elem_free(elem);
}

void virtq_flush_pending(VirtQueue *vq) {
        if (!vq->started || !mapped(vq))
                return;
        while (vq->pending_head) {
                VirtqElem *e = vq->pending_head;

                vq->pending_head = e->pending_next;
                vq->n_pending--;
                if (!vq->broken)
                        write_used(vq, e->pub.head, e->pending_len);
                if (vq->inflight > 0)
                        vq->inflight--;
                vhost_elem_free(&e->pub);
        }
        vq->pending_tail = &vq->pending_head;
}

bool virtq_notify(VirtQueue *vq) {
        static const uint64_t one = 1;
        bool notify;

        if (!vq->started || vq->broken || !mapped(vq) || vq->pushed_since_notify == 0)
                return false;
        atomic_thread_fence(memory_order_seq_cst); /* barrier 3: used->idx before reading used_event */
        if (vq->event_idx) {
                uint16_t old = vq->signalled_used, new = vq->used_idx;
                /* The 16-bit comparison breaks after 2^15 completions without a signal. */
                bool valid = vq->signalled_valid && vq->pushed_since_notify < 0x8000;

                vq->signalled_used = new;
                vq->signalled_valid = true;
                notify = !valid || vring_need_event(load16(USED_EVENT(vq)), new, old);
        } else
                notify = !(load16(AVAIL_FLAGS(vq)) & VRING_AVAIL_F_NO_INTERRUPT);
        vq->pushed_since_notify = 0;
        if (!notify || vq->call_fd < 0)
                return false;
        if (write(vq->call_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
                log_debug_errno(-errno, "VQ=%u: failed to signal the call eventfd, ignoring: %m", vq->index);
        return true;
}

static void set_kicks(VirtQueue *vq, bool on) {
        if (vq->event_idx) {
                /* On: ask for a kick at the next new entry. Off: leave avail_event behind. */
                if (on)
                        store16(AVAIL_EVENT(vq), vq->last_avail_idx);
        } else
                store16(USED_FLAGS(vq), on ? 0 : VRING_USED_F_NO_NOTIFY);
}

int virtq_drain(VirtQueue *vq,
                void (*handle)(void *userdata, VhostElem *elem),
                void *userdata,
                unsigned budget) {
        for (;;) {
                if (!virtq_can_pop(vq))
                        return vq->broken ? -EBADMSG : 0;
                set_kicks(vq, false);
                while (budget > 0) {
                        VhostElem *e;
                        int r;

                        r = virtq_pop(vq, &e, NULL);
                        if (r == 0)
                                break;
                        budget--;
                        if (r == -EBADMSG)
                                return r;
                        if (r == 1)
                                handle(userdata, e);
                        /* handle() may have stopped or reset the queue. */
                        if (!virtq_can_pop(vq))
                                return vq->broken ? -EBADMSG : 0;
                }
                set_kicks(vq, true);
                atomic_thread_fence(memory_order_seq_cst); /* barrier 4: missed-kick race */
                if (load16(AVAIL_IDX(vq)) == vq->last_avail_idx)
                        return 0;
                if (budget == 0)
                        return 1; /* livelock guard: yield to the loop, the caller comes back */
        }
}

VhostElem *vhost_elem_free(VhostElem *elem) {
        VirtqElem *e = (VirtqElem *) elem;

        if (!elem)
                return NULL;
        vhost_mem_unref(elem->mem);
        free(e);
        return NULL;
}
