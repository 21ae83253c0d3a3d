/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The driver side of split virtqueues (virtio 1.x §2.7) in the frontend's guest memory: descriptor
 * allocation, publishing with release stores, reaping used entries with acquire loads, kicks, calls and
 * EVENT_IDX; and request/response helpers on top.
 */

#include <assert.h>
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/macro.h"
#include "frontend/frontend-internal.h"

static Queue *get_queue(VuFrontend *fe, unsigned i) {
        if (!fe || i >= fe->opts.num_queues || !fe->queues[i].slots)
                return NULL;
        return &fe->queues[i];
}

static bool negotiated(VuFrontend *fe, unsigned bit) {
        return fe->features & BIT_ULL(bit);
}

/* Index helpers: avail is u16 flags, u16 idx, u16 ring[num], u16 used_event; used is u16 flags, u16 idx,
 * struct vring_used_elem ring[num] (4 u16 each), u16 avail_event. */
static uint16_t *avail_ring(Queue *q) {
        return q->avail + 2;
}

static uint16_t *used_event(Queue *q) {
        return q->avail + 2 + q->num;
}

static struct vring_used_elem *used_ring(Queue *q) {
        return (struct vring_used_elem *) (q->used + 2);
}

static uint16_t *avail_event(Queue *q) {
        return q->used + 2 + 4 * q->num;
}

int queue_alloc_ring(VuFrontend *fe, unsigned i) {
        Queue *q = &fe->queues[i];
        unsigned num = fe->opts.queue_size;
        int r;

        q->num = num;
        q->next_free = calloc(num, sizeof(*q->next_free));
        q->slots = calloc(num, sizeof(*q->slots));
        if (!q->next_free || !q->slots) {
                r = -ENOMEM;
                goto fail;
        }
        /* Separate page-aligned areas, like a driver allocating the three parts (alignment 16/2/4). */
        if ((r = vu_frontend_mem_alloc(fe, 16ULL * num, 4096, &q->desc_gpa)) < 0 ||
            (r = vu_frontend_mem_alloc(fe, 6 + 2ULL * num, 4096, &q->avail_gpa)) < 0 ||
            (r = vu_frontend_mem_alloc(fe, 6 + 8ULL * num, 4096, &q->used_gpa)) < 0)
                goto fail;
        q->desc = vu_frontend_gpa_to_ptr(fe, q->desc_gpa, 16ULL * num);
        q->avail = vu_frontend_gpa_to_ptr(fe, q->avail_gpa, 6 + 2ULL * num);
        q->used = vu_frontend_gpa_to_ptr(fe, q->used_gpa, 6 + 8ULL * num);

        for (unsigned k = 0; k < num; k++)
                q->next_free[k] = (uint16_t) (k + 1);
        q->free_head = 0;
        q->n_free = num;
        q->avail_idx = q->kick_old = q->last_used = q->base = 0;
        q->in_flight = 0;
        return 0;

fail:
        queue_free_ring(fe, i);
        return r;
}

static void free_owned(VuFrontend *fe, uint64_t req_gpa, uint64_t resp_gpa) {
        if (req_gpa)
                (void) vu_frontend_mem_free(fe, req_gpa);
        if (resp_gpa)
                (void) vu_frontend_mem_free(fe, resp_gpa);
}

static void ring_release(VuFrontend *fe, Queue *q) {
        if (q->slots)
                for (unsigned k = 0; k < q->num; k++) {
                        Slot *s = &q->slots[k];

                        if (!s->in_flight)
                                continue;
                        if (s->owned)
                                free_owned(fe, s->req_gpa, s->resp_gpa);
                        if (s->indirect_gpa)
                                (void) vu_frontend_mem_free(fe, s->indirect_gpa);
                }
        for (size_t k = 0; k < q->n_done; k++)
                if (q->done[k].owned)
                        free_owned(fe, q->done[k].req_gpa, q->done[k].resp_gpa);
        free(q->done);
        free(q->slots);
        free(q->next_free);
        if (q->desc_gpa)
                (void) vu_frontend_mem_free(fe, q->desc_gpa);
        if (q->avail_gpa)
                (void) vu_frontend_mem_free(fe, q->avail_gpa);
        if (q->used_gpa)
                (void) vu_frontend_mem_free(fe, q->used_gpa);

        q->done = NULL;
        q->n_done = q->cap_done = 0;
        q->slots = NULL;
        q->next_free = NULL;
        q->desc_gpa = q->avail_gpa = q->used_gpa = 0;
        q->desc = NULL;
        q->avail = q->used = NULL;
        q->n_free = q->in_flight = 0;
}

void queue_free_ring(VuFrontend *fe, unsigned i) {
        ring_release(fe, &fe->queues[i]);
}

int queue_reset_ring(VuFrontend *fe, unsigned i) {
        Queue old = fe->queues[i], *q = &fe->queues[i];
        int r;

        /* Allocate the new ring before releasing the old one, so that it lands elsewhere, as a driver
         * re-probing would: the backend must not mistake a reset for a resume (§2.4). */
        q->done = NULL;
        q->n_done = q->cap_done = 0;
        q->slots = NULL;
        q->next_free = NULL;
        q->desc_gpa = q->avail_gpa = q->used_gpa = 0;
        r = queue_alloc_ring(fe, i);
        if (r < 0) {
                *q = old;
                return r;
        }
        ring_release(fe, &old);
        return 0;
}

void queue_done(VuFrontend *fe, unsigned i) {
        queue_free_ring(fe, i);
}

static uint16_t take_desc(Queue *q) {
        uint16_t d = q->free_head;

        assert(q->n_free > 0);
        q->free_head = q->next_free[d];
        q->n_free--;
        return d;
}

static void put_chain(Queue *q, uint16_t head, unsigned n) {
        uint16_t last = head;

        for (unsigned k = 1; k < n; k++)
                last = q->next_free[last];
        q->next_free[last] = q->free_head;
        q->free_head = head;
        q->n_free += n;
}

static void publish(Queue *q, uint16_t head) {
        avail_ring(q)[q->avail_idx % q->num] = htole16(head);
        q->avail_idx++;
        /* Descriptors and the ring entry must be visible before the index (§7.3 pitfall 4). */
        __atomic_store_n(&q->avail[1], htole16(q->avail_idx), __ATOMIC_RELEASE);
}

static void write_desc(struct vring_desc *d, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next) {
        d->addr = htole64(addr);
        d->len = htole32(len);
        d->flags = htole16(flags);
        d->next = htole16(next);
}

int vu_frontend_post(VuFrontend *fe,
                     unsigned queue,
                     const VuSeg *segs,
                     unsigned n,
                     unsigned flags,
                     uint64_t tag,
                     uint16_t *ret_head) {
        Queue *q = get_queue(fe, queue);
        bool indirect = flags & VU_POST_INDIRECT, seen_wr = false;
        uint64_t wr_cap = 0, table = 0;
        uint16_t head;
        int r;

        if (!q || !segs || n == 0 || (flags & ~(VU_POST_INDIRECT | VU_POST_UNCHECKED)))
                return -EINVAL;
        for (unsigned k = 0; k < n; k++) {
                if (segs[k].device_writable) {
                        seen_wr = true;
                        wr_cap += segs[k].len;
                } else if (seen_wr && !(flags & VU_POST_UNCHECKED))
                        return -EINVAL;
        }

        if (indirect) {
                struct vring_desc *t;

                if (n > FRONTEND_MAX_INDIRECT)
                        return -EINVAL;
                if (!(flags & VU_POST_UNCHECKED) &&
                    !((fe->running || fe->features) ? negotiated(fe, VIRTIO_RING_F_INDIRECT_DESC)
                                                    : fe->opts.indirect_desc))
                        return -EOPNOTSUPP;
                if (q->n_free < 1)
                        return -ENOSPC;
                r = vu_frontend_mem_alloc(fe, 16ULL * n, 16, &table);
                if (r < 0)
                        return r;
                t = vu_frontend_gpa_to_ptr(fe, table, 16ULL * n);
                for (unsigned k = 0; k < n; k++)
                        write_desc(&t[k], segs[k].gpa, segs[k].len,
                                   (segs[k].device_writable ? VRING_DESC_F_WRITE : 0) |
                                           (k + 1 < n ? VRING_DESC_F_NEXT : 0),
                                   k + 1 < n ? (uint16_t) (k + 1) : 0);
                head = take_desc(q);
                q->next_free[head] = 0;
                write_desc(&q->desc[head], table, 16 * n, VRING_DESC_F_INDIRECT, 0);
                n = 1;
        } else {
                uint16_t prev = 0;

                if (n > q->n_free)
                        return -ENOSPC;
                head = 0;
                for (unsigned k = 0; k < n; k++) {
                        uint16_t d = take_desc(q);

                        if (k == 0)
                                head = d;
                        else {
                                q->next_free[prev] = d;
                                q->desc[prev].flags |= htole16(VRING_DESC_F_NEXT);
                                q->desc[prev].next = htole16(d);
                        }
                        write_desc(&q->desc[d], segs[k].gpa, segs[k].len,
                                   segs[k].device_writable ? VRING_DESC_F_WRITE : 0, 0);
                        prev = d;
                }
        }

        q->slots[head] = (Slot){
                .in_flight = true,
                .n_desc = (uint16_t) n,
                .tag = tag,
                .wr_cap = wr_cap,
                .indirect_gpa = table,
        };
        q->in_flight++;
        publish(q, head);
        if (ret_head)
                *ret_head = head;
        return 0;
}

int vu_frontend_kick(VuFrontend *fe, unsigned queue) {
        Queue *q = get_queue(fe, queue);
        uint64_t one = 1;

        if (!q)
                return -EINVAL;
        q->kick_old = q->avail_idx;
        if (write(q->kick_fd, &one, sizeof(one)) < 0)
                return -errno;
        return 0;
}

int vu_frontend_kick_if_needed(VuFrontend *fe, unsigned queue) {
        Queue *q = get_queue(fe, queue);
        uint16_t old, new;
        bool need;
        int r;

        if (!q)
                return -EINVAL;
        /* The avail index store must be ordered before reading the device's suppression state. */
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        old = q->kick_old;
        new = q->avail_idx;
        if (negotiated(fe, VIRTIO_RING_F_EVENT_IDX))
                need = vring_need_event(le16toh(__atomic_load_n(avail_event(q), __ATOMIC_RELAXED)), new,
                                        old);
        else
                need = !(le16toh(__atomic_load_n(&q->used[0], __ATOMIC_RELAXED)) & VRING_USED_F_NO_NOTIFY);
        q->kick_old = new;
        if (!need)
                return 0;
        r = vu_frontend_kick(fe, queue);
        return r < 0 ? r : 1;
}

static int done_append(Queue *q, const Done *d) {
        if (q->n_done == q->cap_done) {
                size_t c = q->cap_done ? q->cap_done * 2 : 16;
                Done *t = reallocarray(q->done, c, sizeof(*t));

                if (!t)
                        return -ENOMEM;
                q->done = t;
                q->cap_done = c;
        }
        q->done[q->n_done++] = *d;
        return 0;
}

static void done_remove(Queue *q, size_t at) {
        memmove(q->done + at, q->done + at + 1, (q->n_done - at - 1) * sizeof(*q->done));
        q->n_done--;
}

/* Moves every new used entry to the done list. Returns how many, or -EBADMSG for a backend bug; a bad
 * entry is left in place so that every later call reports it too. */
static int reap(VuFrontend *fe, Queue *q) {
        uint16_t used_idx = le16toh(__atomic_load_n(&q->used[1], __ATOMIC_ACQUIRE));
        int n = 0, r;

        if ((uint16_t) (used_idx - q->last_used) > q->num)
                return log_debug_errno(-EBADMSG,
                                       "vhost-user frontend: used->idx %u ran %u entries ahead of %u",
                                       used_idx, (uint16_t) (used_idx - q->last_used), q->last_used);

        while (q->last_used != used_idx) {
                struct vring_used_elem e = used_ring(q)[q->last_used % q->num];
                uint32_t id = le32toh(e.id), len = le32toh(e.len);
                Slot *s;
                Done d;

                if (id >= q->num || !q->slots[id].in_flight)
                        return log_debug_errno(-EBADMSG,
                                               "vhost-user frontend: used entry %u has id %u, not in flight",
                                               q->last_used, id);
                s = &q->slots[id];
                if (len > s->wr_cap)
                        return log_debug_errno(
                                -EBADMSG,
                                "vhost-user frontend: used entry %u for head %u has len %u > %" PRIu64,
                                q->last_used, id, len, s->wr_cap);
                d = (Done){
                        .used = { .head = (uint16_t) id, .len = len, .tag = s->tag },
                        .owned = s->owned,
                        .event = s->event,
                        .req_gpa = s->req_gpa,
                        .resp_gpa = s->resp_gpa,
                        .resp_cap = s->resp_cap,
                };
                r = done_append(q, &d);
                if (r < 0)
                        return r;
                if (s->indirect_gpa)
                        (void) vu_frontend_mem_free(fe, s->indirect_gpa);
                put_chain(q, (uint16_t) id, s->n_desc);
                *s = (Slot){};
                q->in_flight--;
                q->last_used++;
                n++;
        }
        return n;
}

static int wait_progress(VuFrontend *fe, Queue *q, uint64_t deadline) {
        uint64_t v;
        int r;

        /* With EVENT_IDX, ask for a call on the very next completion (§7.3 pitfall 5), then look again:
         * a completion pushed before the device saw used_event would otherwise never be signalled. */
        if (negotiated(fe, VIRTIO_RING_F_EVENT_IDX))
                __atomic_store_n(used_event(q), htole16(q->last_used), __ATOMIC_RELAXED);
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        if (le16toh(__atomic_load_n(&q->used[1], __ATOMIC_ACQUIRE)) != q->last_used)
                return 0;
        r = frontend_wait_fd(fe, q->call_fd, POLLIN, deadline);
        if (r < 0)
                return r;
        if (read(q->call_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
                return -errno;
        return 0;
}

int vu_frontend_get_used(VuFrontend *fe, unsigned queue, VuUsed *ret) {
        Queue *q = get_queue(fe, queue);
        int r;

        if (!q || !ret)
                return -EINVAL;
        if (q->n_done == 0) {
                r = reap(fe, q);
                if (r < 0)
                        return r;
                if (q->n_done == 0)
                        return 0;
        }
        if (q->done[0].owned)
                free_owned(fe, q->done[0].req_gpa, q->done[0].resp_gpa);
        *ret = q->done[0].used;
        done_remove(q, 0);
        return 1;
}

int vu_frontend_wait_used(VuFrontend *fe, unsigned queue, VuUsed *ret) {
        Queue *q = get_queue(fe, queue);
        uint64_t deadline;
        int r;

        if (!q || !ret)
                return -EINVAL;
        (void) frontend_deadline(fe, &deadline);
        for (;;) {
                r = vu_frontend_get_used(fe, queue, ret);
                if (r != 0)
                        return r;
                if (q->in_flight == 0)
                        return -ENOENT;
                r = wait_progress(fe, q, deadline);
                if (r < 0)
                        return r;
        }
}

static int wait_eventfd(VuFrontend *fe, int fd) {
        uint64_t deadline, v;
        int r;

        (void) frontend_deadline(fe, &deadline);
        for (;;) {
                r = frontend_wait_fd(fe, fd, POLLIN, deadline);
                if (r < 0)
                        return r;
                if (read(fd, &v, sizeof(v)) >= 0)
                        return 0;
                if (errno != EAGAIN)
                        return -errno;
        }
}

int vu_frontend_wait_call(VuFrontend *fe, unsigned queue) {
        Queue *q = get_queue(fe, queue);

        return q ? wait_eventfd(fe, q->call_fd) : -EINVAL;
}

int vu_frontend_wait_err(VuFrontend *fe, unsigned queue) {
        Queue *q = get_queue(fe, queue);

        return q ? wait_eventfd(fe, q->err_fd) : -EINVAL;
}

int vu_frontend_consume_call(VuFrontend *fe, unsigned queue) {
        Queue *q = get_queue(fe, queue);
        uint64_t v;

        if (!q)
                return -EINVAL;
        if (read(q->call_fd, &v, sizeof(v)) >= 0)
                return 1;
        return errno == EAGAIN ? 0 : -errno;
}

unsigned vu_frontend_in_flight(VuFrontend *fe, unsigned queue) {
        Queue *q = get_queue(fe, queue);

        return q ? q->in_flight : 0;
}

/* ---- requests ---------------------------------------------------------------------------------------- */

int vu_frontend_submit(VuFrontend *fe,
                       unsigned queue,
                       const void *req,
                       size_t req_len,
                       size_t resp_cap,
                       unsigned flags,
                       uint64_t tag) {
        Queue *q = get_queue(fe, queue);
        uint64_t req_gpa = 0, resp_gpa = 0;
        VuSeg segs[2];
        uint16_t head;
        int r;

        if (!q || !req || req_len == 0 || req_len > UINT32_MAX || resp_cap > UINT32_MAX ||
            (flags & ~VU_POST_INDIRECT))
                return -EINVAL;
        r = vu_frontend_mem_alloc(fe, req_len, 16, &req_gpa);
        if (r < 0)
                return r;
        memcpy(vu_frontend_gpa_to_ptr(fe, req_gpa, req_len), req, req_len);
        segs[0] = (VuSeg){ .gpa = req_gpa, .len = (uint32_t) req_len };
        if (resp_cap > 0) {
                r = vu_frontend_mem_alloc(fe, resp_cap, 16, &resp_gpa);
                if (r < 0) {
                        free_owned(fe, req_gpa, 0);
                        return r;
                }
                segs[1] = (VuSeg){ .gpa = resp_gpa, .len = (uint32_t) resp_cap, .device_writable = true };
        }

        r = vu_frontend_post(fe, queue, segs, resp_cap > 0 ? 2 : 1, flags, tag, &head);
        if (r < 0) {
                free_owned(fe, req_gpa, resp_gpa);
                return r;
        }
        q->slots[head].owned = true;
        q->slots[head].req_gpa = req_gpa;
        q->slots[head].resp_gpa = resp_gpa;
        q->slots[head].resp_cap = resp_cap;
        return vu_frontend_kick(fe, queue);
}

static bool owned_in_flight(Queue *q, bool any, uint64_t tag) {
        for (unsigned k = 0; k < q->num; k++)
                if (q->slots[k].in_flight && q->slots[k].owned && !q->slots[k].event &&
                    (any || q->slots[k].tag == tag))
                        return true;
        return false;
}

static int collect(VuFrontend *fe,
                   unsigned queue,
                   bool any,
                   uint64_t tag,
                   uint64_t *ret_tag,
                   void *resp,
                   size_t resp_cap,
                   size_t *ret_len) {
        Queue *q = get_queue(fe, queue);
        uint64_t deadline;
        int r;

        if (!q || (resp_cap > 0 && !resp))
                return -EINVAL;
        (void) frontend_deadline(fe, &deadline);
        for (;;) {
                for (size_t k = 0; k < q->n_done; k++) {
                        Done d = q->done[k];

                        if (!d.owned || d.event || (!any && d.used.tag != tag))
                                continue;
                        if (resp_cap > 0 && d.used.len > 0)
                                memcpy(resp, vu_frontend_gpa_to_ptr(fe, d.resp_gpa, d.used.len),
                                       MIN((size_t) d.used.len, resp_cap));
                        free_owned(fe, d.req_gpa, d.resp_gpa);
                        done_remove(q, k);
                        if (ret_tag)
                                *ret_tag = d.used.tag;
                        if (ret_len)
                                *ret_len = d.used.len;
                        return 0;
                }
                r = reap(fe, q);
                if (r < 0)
                        return r;
                if (r > 0)
                        continue;
                if (!owned_in_flight(q, any, tag))
                        return -ENOENT;
                r = wait_progress(fe, q, deadline);
                if (r < 0)
                        return r;
        }
}

int vu_frontend_collect(
        VuFrontend *fe, unsigned queue, uint64_t tag, void *resp, size_t resp_cap, size_t *ret_len) {
        return collect(fe, queue, false, tag, NULL, resp, resp_cap, ret_len);
}

int vu_frontend_collect_any(
        VuFrontend *fe, unsigned queue, uint64_t *ret_tag, void *resp, size_t resp_cap, size_t *ret_len) {
        return collect(fe, queue, true, 0, ret_tag, resp, resp_cap, ret_len);
}

int vu_frontend_request(VuFrontend *fe,
                        unsigned queue,
                        const void *req,
                        size_t req_len,
                        void *resp,
                        size_t resp_cap,
                        unsigned flags,
                        size_t *ret_len) {
        uint64_t tag;
        int r;

        if (!fe || (resp_cap > 0 && !resp))
                return -EINVAL;
        /* Tags with the top bit set are ours, so they never match a caller's submit(). */
        tag = (1ULL << 63) | fe->request_seq++;
        r = vu_frontend_submit(fe, queue, req, req_len, resp_cap, flags, tag);
        if (r < 0)
                return r;
        return vu_frontend_collect(fe, queue, tag, resp, resp_cap, ret_len);
}

/* ---- event buffers ---------------------------------------------------------------------------------- */

static int post_event_buffer(VuFrontend *fe, unsigned queue, uint64_t gpa, uint32_t size) {
        Queue *q = &fe->queues[queue];
        VuSeg seg = { .gpa = gpa, .len = size, .device_writable = true };
        uint16_t head;
        int r;

        r = vu_frontend_post(fe, queue, &seg, 1, 0, 0, &head);
        if (r < 0)
                return r;
        q->slots[head].owned = q->slots[head].event = true;
        q->slots[head].resp_gpa = gpa;
        q->slots[head].resp_cap = size;
        return 0;
}

int vu_frontend_post_event_buffers(VuFrontend *fe, unsigned queue, unsigned n, uint32_t size) {
        Queue *q = get_queue(fe, queue);
        int r;

        if (!q || n == 0 || size == 0)
                return -EINVAL;
        if (n > q->n_free)
                return -ENOSPC;
        for (unsigned k = 0; k < n; k++) {
                uint64_t gpa;

                r = vu_frontend_mem_alloc(fe, size, 16, &gpa);
                if (r < 0)
                        return r;
                r = post_event_buffer(fe, queue, gpa, size);
                if (r < 0) {
                        (void) vu_frontend_mem_free(fe, gpa);
                        return r;
                }
        }
        return vu_frontend_kick(fe, queue);
}

int vu_frontend_get_event(VuFrontend *fe, unsigned queue, void *buf, size_t cap, size_t *ret_len) {
        Queue *q = get_queue(fe, queue);
        int r;

        if (!q || (cap > 0 && !buf))
                return -EINVAL;
        r = reap(fe, q);
        if (r < 0)
                return r;
        for (size_t k = 0; k < q->n_done; k++) {
                Done d = q->done[k];

                if (!d.event)
                        continue;
                if (cap > 0 && d.used.len > 0)
                        memcpy(buf, vu_frontend_gpa_to_ptr(fe, d.resp_gpa, d.used.len),
                               MIN((size_t) d.used.len, cap));
                done_remove(q, k);
                /* Reaping gave its descriptor back; should other chains have taken it since, the buffer is
                 * dropped and the caller learns it from -ENOSPC. */
                r = post_event_buffer(fe, queue, d.resp_gpa, (uint32_t) d.resp_cap);
                if (r < 0) {
                        (void) vu_frontend_mem_free(fe, d.resp_gpa);
                        return r;
                }
                r = vu_frontend_kick(fe, queue);
                if (r < 0)
                        return r;
                if (ret_len)
                        *ret_len = d.used.len;
                return 1;
        }
        return 0;
}

int vu_frontend_wait_event(VuFrontend *fe, unsigned queue, void *buf, size_t cap, size_t *ret_len) {
        Queue *q = get_queue(fe, queue);
        uint64_t deadline;
        int r;

        if (!q)
                return -EINVAL;
        (void) frontend_deadline(fe, &deadline);
        for (;;) {
                r = vu_frontend_get_event(fe, queue, buf, cap, ret_len);
                if (r != 0)
                        return r < 0 ? r : 0;
                r = wait_progress(fe, q, deadline);
                if (r < 0)
                        return r;
        }
}

/* ---- ring internals ---------------------------------------------------------------------------------- */

int vu_frontend_ring_view(VuFrontend *fe, unsigned queue, VuRingView *ret) {
        Queue *q = get_queue(fe, queue);

        if (!q || !ret)
                return -EINVAL;
        *ret = (VuRingView){
                .num = q->num,
                .desc = q->desc,
                .avail_flags = &q->avail[0],
                .avail_idx = &q->avail[1],
                .avail_ring = avail_ring(q),
                .used_event = used_event(q),
                .used_flags = &q->used[0],
                .used_idx = &q->used[1],
                .used_ring = used_ring(q),
                .avail_event = avail_event(q),
                .desc_gpa = q->desc_gpa,
                .avail_gpa = q->avail_gpa,
                .used_gpa = q->used_gpa,
        };
        return 0;
}

int vu_frontend_publish_head(VuFrontend *fe, unsigned queue, uint16_t head) {
        Queue *q = get_queue(fe, queue);

        if (!q)
                return -EINVAL;
        publish(q, head);
        return 0;
}

int vu_frontend_reserve_desc(VuFrontend *fe, unsigned queue, unsigned n, uint16_t *ret) {
        Queue *q = get_queue(fe, queue);

        if (!q || !ret || n == 0)
                return -EINVAL;
        if (n > q->n_free)
                return -ENOSPC;
        for (unsigned k = 0; k < n; k++)
                ret[k] = take_desc(q);
        return 0;
}

int vu_frontend_set_used_event(VuFrontend *fe, unsigned queue, uint16_t idx) {
        Queue *q = get_queue(fe, queue);

        if (!q)
                return -EINVAL;
        __atomic_store_n(used_event(q), htole16(idx), __ATOMIC_RELAXED);
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        return 0;
}

int vu_frontend_set_no_interrupt(VuFrontend *fe, unsigned queue, bool no_interrupt) {
        Queue *q = get_queue(fe, queue);

        if (!q)
                return -EINVAL;
        __atomic_store_n(&q->avail[0], htole16(no_interrupt ? VRING_AVAIL_F_NO_INTERRUPT : 0),
                         __ATOMIC_RELAXED);
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        return 0;
}

int vu_frontend_kick_fd(VuFrontend *fe, unsigned queue) {
        Queue *q = get_queue(fe, queue);

        return q ? q->kick_fd : -EINVAL;
}

int vu_frontend_call_fd(VuFrontend *fe, unsigned queue) {
        Queue *q = get_queue(fe, queue);

        return q ? q->call_fd : -EINVAL;
}

int vu_frontend_err_fd(VuFrontend *fe, unsigned queue) {
        Queue *q = get_queue(fe, queue);

        return q ? q->err_fd : -EINVAL;
}
