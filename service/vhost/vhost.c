/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The vhost-user connection: listening, accepting one frontend, framing (message.c), dispatch, and the
 * glue between rings (virtq.c), guest memory (mem-table.c), kick/call/err eventfds and the device ops.
 *
 * Rules: a protocol violation (bad framing, size, fd count, unknown request, index out of range, invalid
 * values) closes the connection; a request that is well-formed but cannot be honoured (mapping failed,
 * overlapping region, ring outside memory, no memory table yet) gets a failure ack when REPLY_ACK asks
 * for one and leaves the connection up.
 *
 * Order of the device callbacks (what a device may rely on):
 *  - peer(true, true) after accept; peer(true, false) for a refused peer (already closed).
 *  - set_features() at SET_FEATURES, with the device bits only.
 *  - Ring start (SET_VRING_KICK once num, base, addresses and memory are set): when the §2.4 heuristic
 *    says the driver reset the device, reset() comes first; then completions queued while stopped are
 *    written, then queue_state(q, true), then the ring is drained (handle_elem()) if enabled.
 *  - handle_elem() runs from kicks, and also from inside message handling (ring start, SET_VRING_ENABLE,
 *    memory-table updates), only while the ring is started and enabled. The device may push
 *    synchronously from it.
 *  - GET_VRING_BASE: the ring is stopped first, then queue_state(q, false); from then on pushes on it are
 *    queued until the ring restarts (resume) or dropped (reset).
 *  - RESET_DEVICE: queue_state(q, false) for each started ring, then reset().
 *  - Disconnect: queue_state(q, false) for each started ring, reset(), then rings, fds and memory are
 *    torn down, then peer(false, true). Elements pushed after that (or from before a reset) are dropped.
 *  - memory_changed() after a new table is in place and rings are re-translated, before rings drain.
 * A callback may call vhost_dev_disconnect(); none may call vhost_dev_free().
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <systemd/sd-event.h>

#include "common/log-ids.h"
#include "common/log.h"
#include "vhost/mem-table.h"
#include "vhost/message.h"
#include "vhost/vhost.h"
#include "vhost/virtq.h"

#define VHOST_MAX_QUEUES 8
#define DRAIN_BUDGET 256U   /* chains per ring per loop iteration (livelock guard) */
#define MSGS_PER_WAKEUP 64U /* messages handled before yielding to kicks and completions */
#define RECV_MAX_FDS 32     /* accept more than we allow, to detect and close extras */
#define OUT_BUF_SIZE (VHOST_USER_HDR_SIZE + VHOST_USER_MAX_PAYLOAD)

typedef struct Ring {
        VhostDev *dev;
        unsigned index;
        VirtQueue *vq;
        int kick_fd;
        sd_event_source *kick_source;
        sd_event_source *defer_source; /* continues a drain that hit its budget */
} Ring;

struct VhostDev {
        sd_event *event;
        VhostDevConfig config;
        uid_t *allowed_uids;
        VhostDeviceOps ops;
        void *userdata;

        int listen_fd;
        sd_event_source *listen_source;
        char *path; /* socket file we created, removed on free */

        int conn_fd;
        sd_event_source *conn_source;
        struct ucred peer;
        uint64_t conn_generation; /* bumped on every disconnect, to notice it from callbacks */
        VhostMsgReader reader;
        uint8_t out[OUT_BUF_SIZE];
        size_t out_len, out_off;

        uint64_t features;
        bool features_set;
        uint64_t protocol_features;
        bool owner;
        bool config_size_warned;
        VhostMem *mem;
        Ring rings[VHOST_MAX_QUEUES];
};

static uint64_t offered_features(const VhostDev *d) {
        return VHOST_USER_BACKEND_TRANSPORT_FEATURES | d->config.device_features;
}

static bool conn_active(const VhostDev *d) {
        return d->conn_fd >= 0;
}

static void ring_update_watch(Ring *ring) {
        bool on = ring->kick_source && virtq_can_pop(ring->vq);

        /* Watched only while started and enabled: an eventfd stays readable, so a kick that arrived
         * while disabled is seen as soon as the ring is enabled (§5.2). */
        if (ring->kick_source)
                (void) sd_event_source_set_enabled(ring->kick_source, on ? SD_EVENT_ON : SD_EVENT_OFF);
}

static void ring_close_kick(Ring *ring) {
        ring->kick_source = sd_event_source_disable_unref(ring->kick_source);
        ring->kick_fd = safe_close(ring->kick_fd);
}

static void handle_elem_cb(void *userdata, VhostElem *elem) {
        VhostDev *d = userdata;

        if (d->ops.handle_elem)
                d->ops.handle_elem(d->userdata, elem);
        else
                vhost_dev_push(d, elem, 0);
}

static void ring_drain(Ring *ring) {
        VhostDev *d = ring->dev;
        int r;

        r = virtq_drain(ring->vq, handle_elem_cb, d, DRAIN_BUDGET);
        if (r > 0 && ring->defer_source)
                (void) sd_event_source_set_enabled(ring->defer_source, SD_EVENT_ONESHOT);
        /* Completions of requests failed by the walker, and whatever the device pushed synchronously. */
        (void) virtq_notify(ring->vq);
        ring_update_watch(ring);
}

static int on_kick(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Ring *ring = userdata;
        uint64_t v;

        /* The value is a counter with no meaning; EAGAIN just means someone else read it (§5.5). */
        if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN && errno != EINTR)
                log_debug_errno(-errno, "VQ=%u: failed to read the kick eventfd, ignoring: %m", ring->index);
        ring_drain(ring);
        return 0;
}

static int on_defer(sd_event_source *s, void *userdata) {
        ring_drain(userdata);
        return 0;
}

/* The device state goes: told first, then rings forget everything in flight. */
static void device_reset(VhostDev *d) {
        if (d->ops.reset)
                d->ops.reset(d->userdata);
        for (unsigned i = 0; i < d->config.num_queues; i++)
                virtq_drop_inflight(d->rings[i].vq);
}

static void conn_teardown(VhostDev *d) {
        bool had = conn_active(d);
        struct ucred peer = d->peer;

        d->conn_generation++;
        d->conn_source = sd_event_source_disable_unref(d->conn_source);
        d->conn_fd = safe_close(d->conn_fd);
        vhost_msg_reader_reset(&d->reader);
        d->out_len = d->out_off = 0;

        /* §2.4: stop work first (the device is told), then drop device state, then ring state and fds,
         * then the memory. Elements the device frees in reset() keep their own VhostMem references. */
        for (unsigned i = 0; i < d->config.num_queues; i++) {
                Ring *ring = &d->rings[i];

                ring_close_kick(ring);
                if (ring->defer_source)
                        (void) sd_event_source_set_enabled(ring->defer_source, SD_EVENT_OFF);
                if (virtq_is_started(ring->vq)) {
                        (void) virtq_stop(ring->vq);
                        if (had && d->ops.queue_state)
                                d->ops.queue_state(d->userdata, i, false);
                }
        }
        if (had && d->ops.reset)
                d->ops.reset(d->userdata);
        for (unsigned i = 0; i < d->config.num_queues; i++)
                virtq_reset(d->rings[i].vq, true);
        d->mem = vhost_mem_unref(d->mem);
        d->features = d->protocol_features = 0;
        d->features_set = d->owner = false;

        if (had) {
                log_id(LOG_INFO, LOG_MESSAGE_PEER_DISCONNECTED, "Frontend (PID %d) disconnected.",
                       (int) peer.pid);
                if (d->ops.peer)
                        d->ops.peer(d->userdata, false, true, &peer);
        }
        d->peer = (struct ucred){ .pid = 0, .uid = (uid_t) -1, .gid = (gid_t) -1 };
        if (d->listen_source)
                (void) sd_event_source_set_enabled(d->listen_source, SD_EVENT_ON);
}

/* ---- output ---- */

static int conn_flush(VhostDev *d) {
        while (d->out_off < d->out_len) {
                ssize_t n = send(d->conn_fd, d->out + d->out_off, d->out_len - d->out_off,
                                 MSG_NOSIGNAL | MSG_DONTWAIT);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN)
                                break;
                        return -errno;
                }
                d->out_off += (size_t) n;
        }
        if (d->out_off < d->out_len) {
                /* Stop reading requests until the frontend takes its reply. */
                (void) sd_event_source_set_io_events(d->conn_source, EPOLLOUT);
                return 0;
        }
        d->out_len = d->out_off = 0;
        (void) sd_event_source_set_io_events(d->conn_source, EPOLLIN);
        return 0;
}

static int conn_reply(VhostDev *d, uint32_t request, const void *payload, uint32_t size) {
        int n;

        if (d->out_len > 0)
                return -EBUSY; /* cannot happen: we do not read while a reply is pending */
        n = vhost_msg_encode_reply(request, payload, size, d->out, sizeof(d->out));
        if (n < 0)
                return n;
        d->out_len = (size_t) n;
        d->out_off = 0;
        return conn_flush(d);
}

static int reply_u64(VhostDev *d, uint32_t request, uint64_t v) {
        uint64_t le = htole64(v);

        return conn_reply(d, request, &le, sizeof(le));
}

/* ---- request handlers: -EPROTO closes the connection, other errors fail the request ---- */

static int get_ring(VhostDev *d, uint32_t index, Ring **ret) {
        if (index >= d->config.num_queues)
                return -EPROTO;
        *ret = &d->rings[index];
        return 0;
}

static int handle_set_features(VhostDev *d, uint64_t f) {
        if (f & ~offered_features(d)) {
                log_warning("Frontend acked features 0x%" PRIx64 " we did not offer.",
                            f & ~offered_features(d));
                return -EPROTO;
        }
        if (!(f & BIT_ULL(VIRTIO_F_VERSION_1))) {
                log_warning("Frontend did not ack VERSION_1; legacy devices are not supported.");
                return -EPROTO;
        }
        d->features = f;
        d->features_set = true;
        for (unsigned i = 0; i < d->config.num_queues; i++) {
                virtq_set_event_idx(d->rings[i].vq, f & BIT_ULL(VIRTIO_RING_F_EVENT_IDX));
                /* Without protocol features rings are enabled right away (spec). */
                if (!(f & BIT_ULL(VHOST_USER_F_PROTOCOL_FEATURES))) {
                        virtq_set_enabled(d->rings[i].vq, true);
                        ring_update_watch(&d->rings[i]);
                }
        }
        if (d->ops.set_features)
                d->ops.set_features(d->userdata, f & (BIT_ULL(24) - 1));
        return 0;
}

static void apply_mem(VhostDev *d, VhostMem *mem) {
        vhost_mem_unref(d->mem);
        d->mem = mem;
        for (unsigned i = 0; i < d->config.num_queues; i++) {
                Ring *ring = &d->rings[i];

                if (virtq_set_mem(ring->vq, mem) < 0)
                        log_warning(
                                "VQ=%u: ring no longer inside guest memory, paused until it is mapped again.",
                                i);
                else
                        virtq_flush_pending(ring->vq);
                (void) virtq_notify(ring->vq);
                ring_update_watch(ring);
        }
        if (d->ops.memory_changed)
                d->ops.memory_changed(d->userdata);
        for (unsigned i = 0; i < d->config.num_queues; i++)
                if (virtq_can_pop(d->rings[i].vq))
                        ring_drain(&d->rings[i]);
}

static int handle_set_mem_table(VhostDev *d, VhostMsg *m) {
        struct vhost_user_mem_region regions[VHOST_USER_MEM_TABLE_MAX_REGIONS];
        MemRegion *mapped[VHOST_USER_MEM_TABLE_MAX_REGIONS] = {};
        VhostMem *mem = NULL;
        unsigned n;
        int r = 0;

        n = vhost_msg_mem_table(m, regions);
        for (unsigned i = 0; i < n; i++) {
                r = mem_region_map(&regions[i], m->fds[i], &mapped[i]);
                if (r < 0) {
                        log_warning_errno(r, "Failed to map memory region %u: %m", i);
                        goto finish;
                }
        }
        r = vhost_mem_new(mapped, n, &mem);
        if (r < 0) {
                log_warning_errno(r, "Rejecting memory table: %m");
                goto finish;
        }
        apply_mem(d, mem);
finish:
        for (unsigned i = 0; i < n; i++)
                mem_region_unref(mapped[i]);
        return r;
}

static int handle_add_mem_reg(VhostDev *d, VhostMsg *m) {
        _cleanup_(mem_region_unrefp) MemRegion *region = NULL;
        struct vhost_user_mem_region desc = vhost_msg_mem_reg(m);
        VhostMem *mem;
        int r;

        r = mem_region_map(&desc, m->fds[0], &region);
        if (r < 0)
                return log_warning_errno(r, "Failed to map added memory region: %m");
        r = vhost_mem_new_added(d->mem, region, &mem);
        if (r < 0)
                return log_warning_errno(r, "Rejecting added memory region: %m");
        apply_mem(d, mem);
        return 0;
}

static int handle_rem_mem_reg(VhostDev *d, VhostMsg *m) {
        struct vhost_user_mem_region desc = vhost_msg_mem_reg(m);
        VhostMem *mem;
        int r;

        r = vhost_mem_new_removed(d->mem, &desc, &mem);
        if (r < 0)
                return log_warning_errno(r, "Cannot remove memory region: %m");
        apply_mem(d, mem);
        return 0;
}

static int handle_set_vring_addr(VhostDev *d, const VhostMsg *m) {
        struct vhost_user_vring_addr a = vhost_msg_vring_addr(m);
        Ring *ring;
        int r;

        r = get_ring(d, a.index, &ring);
        if (r < 0)
                return r;
        /* We never offered logging; alignment as the split ring requires (§3.3). */
        if (a.flags != 0 || a.desc_user_addr % 16 != 0 || a.avail_user_addr % 2 != 0 ||
            a.used_user_addr % 4 != 0)
                return -EPROTO;
        if (!d->mem)
                return -ENXIO;
        r = virtq_set_addr(ring->vq, d->mem, a.desc_user_addr, a.avail_user_addr, a.used_user_addr);
        if (r < 0)
                return log_warning_errno(r, "VQ=%u: rejecting ring addresses: %m", a.index);
        return 0;
}

static int ring_start(VhostDev *d, Ring *ring) {
        uint64_t gen = d->conn_generation;
        int r;

        virtq_set_event_idx(ring->vq, d->features & BIT_ULL(VIRTIO_RING_F_EVENT_IDX));
        r = virtq_start(ring->vq);
        if (r < 0)
                return log_warning_errno(
                        r, "VQ=%u: cannot start the ring before its size, addresses and memory: %m",
                        ring->index);
        if (r > 0) {
                log_info("VQ=%u: ring restarted with a different state: the driver reset the device.",
                         ring->index);
                device_reset(d);
        }
        virtq_flush_pending(ring->vq);
        if (d->ops.queue_state)
                d->ops.queue_state(d->userdata, ring->index, true);
        if (gen != d->conn_generation)
                return 0;
        (void) virtq_notify(ring->vq);
        ring_update_watch(ring);
        /* Kicks may have come before we watched the fd (§3.3). */
        ring_drain(ring);
        return 0;
}

static int handle_set_vring_kick(VhostDev *d, VhostMsg *m) {
        uint64_t v = vhost_msg_u64(m);
        Ring *ring;
        int r;

        r = get_ring(d, (uint32_t) (v & VHOST_USER_VRING_IDX_MASK), &ring);
        if (r < 0)
                return r;
        ring_close_kick(ring);
        if (!(v & VHOST_USER_VRING_NOFD_MASK)) {
                ring->kick_fd = vhost_msg_take_fd(m, 0);
                r = sd_event_add_io(d->event, &ring->kick_source, ring->kick_fd, EPOLLIN, on_kick, ring);
                if (r < 0) {
                        ring_close_kick(ring);
                        return log_warning_errno(r, "VQ=%u: failed to watch the kick eventfd: %m",
                                                 ring->index);
                }
                (void) sd_event_source_set_enabled(ring->kick_source, SD_EVENT_OFF);
        }
        if (virtq_is_started(ring->vq)) {
                ring_update_watch(ring);
                ring_drain(ring);
                return 0;
        }
        return ring_start(d, ring);
}

static int handle_set_vring_fd(VhostDev *d, VhostMsg *m) {
        uint64_t v = vhost_msg_u64(m);
        int fd = -EBADF;
        Ring *ring;
        int r;

        r = get_ring(d, (uint32_t) (v & VHOST_USER_VRING_IDX_MASK), &ring);
        if (r < 0)
                return r;
        if (!(v & VHOST_USER_VRING_NOFD_MASK))
                fd = vhost_msg_take_fd(m, 0);
        if (m->request == VHOST_USER_SET_VRING_CALL) {
                virtq_set_call_fd(ring->vq, fd);
                /* Completions may be waiting for a working interrupt. */
                (void) virtq_notify(ring->vq);
        } else
                virtq_set_err_fd(ring->vq, fd);
        return 0;
}

static int handle_get_vring_base(VhostDev *d, const VhostMsg *m) {
        struct vhost_user_vring_state s = vhost_msg_vring_state(m);
        uint64_t gen = d->conn_generation;
        bool was_started;
        Ring *ring;
        int r;

        r = get_ring(d, s.index, &ring);
        if (r < 0)
                return r;
        was_started = virtq_is_started(ring->vq);
        s.num = virtq_stop(ring->vq);
        ring_close_kick(ring);
        if (ring->defer_source)
                (void) sd_event_source_set_enabled(ring->defer_source, SD_EVENT_OFF);
        if (was_started && d->ops.queue_state)
                d->ops.queue_state(d->userdata, s.index, false);
        if (gen != d->conn_generation)
                return 0;
        s.index = htole32(s.index);
        s.num = htole32(s.num);
        return conn_reply(d, VHOST_USER_GET_VRING_BASE, &s, sizeof(s));
}

static int handle_get_config(VhostDev *d, const VhostMsg *m) {
        struct vhost_user_config_hdr c = vhost_msg_config(m, NULL);
        uint8_t buf[sizeof(struct vhost_user_config_hdr) + VHOST_USER_MAX_CONFIG_SIZE] = {};
        uint32_t end, have;
        int r = 0;

        /* QEMU asks for its own config_size property. Past our config space the reply is zero-filled
         * (§3.3), so only [offset, min(end, config_size)) reaches the device. */
        if (__builtin_add_overflow(c.offset, c.size, &end) || end > VHOST_USER_MAX_CONFIG_SIZE)
                r = -EINVAL;
        else {
                have = c.offset < d->config.config_size ? MIN(end, d->config.config_size) - c.offset : 0;
                if (end > d->config.config_size && !d->config_size_warned) {
                        log_warning("Frontend reads config bytes %" PRIu32 "..%" PRIu32
                                    " beyond our %" PRIu32 " bytes; check its config_size.",
                                    c.offset, end, d->config.config_size);
                        d->config_size_warned = true;
                }
                if (d->ops.get_config && have > 0)
                        r = d->ops.get_config(d->userdata, c.offset, buf + sizeof(c), have);
        }
        if (r < 0) {
                /* The spec's failure reply: an empty payload. */
                log_warning_errno(r, "GET_CONFIG offset %" PRIu32 " size %" PRIu32 " failed: %m", c.offset,
                                  c.size);
                return conn_reply(d, VHOST_USER_GET_CONFIG, NULL, 0);
        }
        memcpy(buf, m->payload, sizeof(c));
        return conn_reply(d, VHOST_USER_GET_CONFIG, buf, (uint32_t) sizeof(c) + c.size);
}

static int handle_set_config(VhostDev *d, const VhostMsg *m) {
        const uint8_t *data;
        struct vhost_user_config_hdr c = vhost_msg_config(m, &data);

        if (c.offset > d->config.config_size || c.size > d->config.config_size - c.offset)
                return -EINVAL;
        if (!d->ops.set_config)
                return -EPERM;
        return d->ops.set_config(d->userdata, c.offset, data, c.size);
}

static void rings_disable(VhostDev *d) {
        for (unsigned i = 0; i < d->config.num_queues; i++) {
                virtq_set_enabled(d->rings[i].vq, false);
                ring_update_watch(&d->rings[i]);
        }
}

static int handle_reset_device(VhostDev *d) {
        /* Back to the device's initial state; the connection, owner and protocol features stay (§3.3). */
        for (unsigned i = 0; i < d->config.num_queues; i++) {
                Ring *ring = &d->rings[i];

                ring_close_kick(ring);
                if (virtq_is_started(ring->vq)) {
                        (void) virtq_stop(ring->vq);
                        if (d->ops.queue_state)
                                d->ops.queue_state(d->userdata, i, false);
                }
        }
        if (d->ops.reset)
                d->ops.reset(d->userdata);
        for (unsigned i = 0; i < d->config.num_queues; i++)
                virtq_reset(d->rings[i].vq, false);
        d->features = 0;
        d->features_set = false;
        return 0;
}

static int dispatch(VhostDev *d, VhostMsg *m) {
        struct vhost_user_vring_state s;
        Ring *ring;
        uint64_t v;
        int r;

        switch (m->request) {
        case VHOST_USER_GET_FEATURES:
                return reply_u64(d, m->request, offered_features(d));
        case VHOST_USER_SET_FEATURES:
                return handle_set_features(d, vhost_msg_u64(m));
        case VHOST_USER_GET_PROTOCOL_FEATURES:
                return reply_u64(d, m->request, VHOST_USER_BACKEND_PROTOCOL_FEATURES);
        case VHOST_USER_SET_PROTOCOL_FEATURES:
                v = vhost_msg_u64(m);
                if (v & ~(uint64_t) VHOST_USER_BACKEND_PROTOCOL_FEATURES)
                        return -EPROTO;
                d->protocol_features = v;
                return 0;
        case VHOST_USER_GET_QUEUE_NUM:
                return reply_u64(d, m->request, d->config.num_queues);
        case VHOST_USER_GET_MAX_MEM_SLOTS:
                return reply_u64(d, m->request, VHOST_USER_MAX_MEM_SLOTS);
        case VHOST_USER_SET_OWNER:
                if (d->owner)
                        log_debug("Duplicate SET_OWNER, accepting.");
                d->owner = true;
                return 0;
        case VHOST_USER_RESET_OWNER:
                /* Deprecated; the spec suggests only disabling the rings. */
                rings_disable(d);
                return 0;
        case VHOST_USER_RESET_DEVICE:
                return handle_reset_device(d);
        case VHOST_USER_SET_MEM_TABLE:
                return handle_set_mem_table(d, m);
        case VHOST_USER_ADD_MEM_REG:
                return handle_add_mem_reg(d, m);
        case VHOST_USER_REM_MEM_REG:
                return handle_rem_mem_reg(d, m);
        case VHOST_USER_SET_VRING_NUM:
                s = vhost_msg_vring_state(m);
                r = get_ring(d, s.index, &ring);
                if (r < 0)
                        return r;
                if (s.num == 0 || s.num > d->config.max_queue_size || (s.num & (s.num - 1)) != 0)
                        return -EPROTO;
                return virtq_set_num(ring->vq, s.num, d->config.max_queue_size);
        case VHOST_USER_SET_VRING_ADDR:
                return handle_set_vring_addr(d, m);
        case VHOST_USER_SET_VRING_BASE:
                s = vhost_msg_vring_state(m);
                r = get_ring(d, s.index, &ring);
                if (r < 0)
                        return r;
                if (s.num > UINT16_MAX) /* split ring: bits 16..31 are 0 */
                        return -EPROTO;
                return virtq_set_base(ring->vq, (uint16_t) s.num);
        case VHOST_USER_GET_VRING_BASE:
                return handle_get_vring_base(d, m);
        case VHOST_USER_SET_VRING_KICK:
                return handle_set_vring_kick(d, m);
        case VHOST_USER_SET_VRING_CALL:
        case VHOST_USER_SET_VRING_ERR:
                return handle_set_vring_fd(d, m);
        case VHOST_USER_SET_VRING_ENABLE:
                s = vhost_msg_vring_state(m);
                r = get_ring(d, s.index, &ring);
                if (r < 0)
                        return r;
                if (s.num > 1)
                        return -EPROTO;
                if (d->features_set && !(d->features & BIT_ULL(VHOST_USER_F_PROTOCOL_FEATURES)))
                        return -EINVAL;
                virtq_set_enabled(ring->vq, s.num);
                ring_update_watch(ring);
                if (s.num)
                        ring_drain(ring); /* a kick may be pending */
                return 0;
        case VHOST_USER_GET_CONFIG:
                return handle_get_config(d, m);
        case VHOST_USER_SET_CONFIG:
                return handle_set_config(d, m);
        default:
                return -EPROTO; /* vhost_msg_validate() already refused it */
        }
}

/* 0: handled (connection may be gone), -EPROTO: violation. */
static int conn_process(VhostDev *d, VhostMsg *m) {
        uint64_t gen = d->conn_generation;
        const char *reason = NULL;
        bool ack;
        int r;

        r = vhost_msg_validate(m, &reason);
        if (r < 0) {
                log_warning("Protocol violation in %s (%" PRIu32 "): %s.",
                            vhost_user_request_to_string(m->request), m->request, reason);
                return -EPROTO;
        }
        log_debug("Frontend request %s, %" PRIu32 " bytes, %u fds.",
                  vhost_user_request_to_string(m->request), m->size, m->n_fds);
        ack = !vhost_user_request_has_reply(m->request) && (m->flags & VHOST_USER_NEED_REPLY_MASK);
        r = dispatch(d, m);
        if (r == -EPROTO) {
                log_warning("Invalid %s from the frontend.", vhost_user_request_to_string(m->request));
                return r;
        }
        if (gen != d->conn_generation)
                return 0;
        if (r < 0 && !ack)
                log_warning_errno(r, "%s failed: %m", vhost_user_request_to_string(m->request));
        /* REPLY_ACK (§1.4): class-2 messages with NEED_REPLY, once the feature is negotiated. */
        if (ack && (d->protocol_features & BIT_ULL(VHOST_USER_PROTOCOL_F_REPLY_ACK))) {
                r = reply_u64(d, m->request, r < 0 ? 1 : 0);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int conn_read_one(VhostDev *d, bool *ret_again) {
        union {
                struct cmsghdr align;
                uint8_t buf[CMSG_SPACE(sizeof(int) * RECV_MAX_FDS)];
        } control;
        int fds[RECV_MAX_FDS];
        unsigned n_fds = 0;
        const char *reason = NULL;
        struct iovec iov;
        struct msghdr mh = {
                .msg_iov = &iov,
                .msg_iovlen = 1,
                .msg_control = &control,
                .msg_controllen = sizeof(control),
        };
        ssize_t n;
        int r;

        *ret_again = false;
        iov.iov_base = vhost_msg_reader_want(&d->reader, &iov.iov_len);
        n = recvmsg(d->conn_fd, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
        if (n < 0) {
                if (errno == EAGAIN || errno == EINTR) {
                        *ret_again = errno == EINTR;
                        return 0;
                }
                return log_info_errno(-errno, "Frontend connection failed: %m");
        }
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
                if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
                        continue;
                for (size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++) {
                        int fd;

                        memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
                        if (n_fds < RECV_MAX_FDS)
                                fds[n_fds++] = fd;
                        else
                                safe_close(fd);
                }
        }
        if (mh.msg_flags & MSG_CTRUNC) {
                for (unsigned i = 0; i < n_fds; i++)
                        safe_close(fds[i]);
                log_warning("Protocol violation: file descriptors were truncated.");
                return -EPROTO;
        }
        if (n == 0) {
                for (unsigned i = 0; i < n_fds; i++)
                        safe_close(fds[i]);
                if (!vhost_msg_reader_idle(&d->reader))
                        log_warning("Frontend hung up in the middle of a message.");
                return -ECONNRESET;
        }
        r = vhost_msg_reader_advance(&d->reader, (size_t) n, fds, n_fds, &reason);
        if (r < 0) {
                log_warning("Protocol violation: %s.", reason);
                return r;
        }
        if (r == 0) {
                *ret_again = true;
                return 0;
        }
        r = conn_process(d, &d->reader.msg);
        vhost_msg_reader_reset(&d->reader); /* closes every fd the handler did not take */
        if (r < 0)
                return r;
        *ret_again = true;
        return 1;
}

static int on_conn_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        VhostDev *d = userdata;
        uint64_t gen = d->conn_generation;
        unsigned msgs = 0;
        int r;

        if (d->out_len > 0) {
                r = conn_flush(d);
                if (r < 0 || (revents & EPOLLERR)) {
                        conn_teardown(d);
                        return 0;
                }
                if (d->out_len > 0)
                        return 0;
        }
        while (msgs < MSGS_PER_WAKEUP) {
                bool again;

                r = conn_read_one(d, &again);
                if (gen != d->conn_generation)
                        return 0; /* a callback dropped the connection */
                if (r < 0) {
                        conn_teardown(d);
                        return 0;
                }
                if (r > 0)
                        msgs++;
                if (!again || d->out_len > 0)
                        break;
        }
        return 0;
}

/* ---- connections ---- */

static bool peer_allowed(const VhostDev *d, const struct ucred *cred) {
        if (d->config.n_allowed_uids == 0 || cred->uid == 0)
                return true;
        for (unsigned i = 0; i < d->config.n_allowed_uids; i++)
                if (d->allowed_uids[i] == cred->uid)
                        return true;
        return false;
}

static void refuse(VhostDev *d, int fd, const struct ucred *cred, const char *why) {
        log_warning("Refusing frontend connection (PID %d, UID %u): %s.", (int) cred->pid,
                    (unsigned) cred->uid, why);
        safe_close(fd);
        if (d->ops.peer)
                d->ops.peer(d->userdata, true, false, cred);
}

static int conn_attach(VhostDev *d, int fd) {
        _cleanup_close_ int cfd = fd;
        struct ucred cred = { .pid = 0, .uid = (uid_t) -1, .gid = (gid_t) -1 };
        socklen_t len = sizeof(cred);
        int flags, r;

        if (getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
                return log_warning_errno(-errno, "Failed to read the peer credentials: %m");
        if (conn_active(d)) {
                refuse(d, TAKE_FD(cfd), &cred, "another frontend is connected");
                return -EBUSY;
        }
        if (!peer_allowed(d, &cred)) {
                refuse(d, TAKE_FD(cfd), &cred, "user not allowed");
                return -EPERM;
        }
        flags = fcntl(cfd, F_GETFL);
        if (flags < 0 || fcntl(cfd, F_SETFL, flags | O_NONBLOCK) < 0)
                return log_warning_errno(-errno, "Failed to make the frontend socket non-blocking: %m");
        r = sd_event_add_io(d->event, &d->conn_source, cfd, EPOLLIN, on_conn_io, d);
        if (r < 0)
                return log_warning_errno(r, "Failed to watch the frontend socket: %m");
        d->conn_fd = TAKE_FD(cfd);
        d->peer = cred;
        vhost_msg_reader_init(&d->reader);
        /* One frontend at a time: further connections wait in the backlog (listen(1)). */
        if (d->listen_source)
                (void) sd_event_source_set_enabled(d->listen_source, SD_EVENT_OFF);
        log_id(LOG_INFO, LOG_MESSAGE_PEER_CONNECTED, "Frontend connected (PID %d, UID %u).", (int) cred.pid,
               (unsigned) cred.uid);
        if (d->ops.peer)
                d->ops.peer(d->userdata, true, true, &cred);
        return 0;
}

static int on_listen(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        VhostDev *d = userdata;
        int cfd;

        cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (cfd < 0) {
                if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                        log_warning_errno(-errno, "Failed to accept a frontend connection, ignoring: %m");
                return 0;
        }
        (void) conn_attach(d, cfd);
        return 0;
}

static int listen_attach(VhostDev *d, int fd) {
        int r;

        if (d->listen_fd >= 0)
                return -EBUSY;
        r = sd_event_add_io(d->event, &d->listen_source, fd, EPOLLIN, on_listen, d);
        if (r < 0)
                return r;
        d->listen_fd = fd;
        if (conn_active(d))
                (void) sd_event_source_set_enabled(d->listen_source, SD_EVENT_OFF);
        return 0;
}

int vhost_dev_listen_fd(VhostDev *d, int fd) {
        _cleanup_close_ int lfd = fd;
        int type = 0, acc = 0, flags, r;
        socklen_t len = sizeof(type);

        if (fd < 0)
                return -EBADF;
        if (getsockopt(lfd, SOL_SOCKET, SO_TYPE, &type, &len) < 0)
                return -errno;
        len = sizeof(acc);
        if (getsockopt(lfd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &len) < 0)
                return -errno;
        if (type != SOCK_STREAM || !acc)
                return -ENOTSOCK;
        flags = fcntl(lfd, F_GETFL);
        if (flags < 0 || fcntl(lfd, F_SETFL, flags | O_NONBLOCK) < 0)
                return -errno;
        r = listen_attach(d, lfd);
        if (r < 0)
                return r;
        TAKE_FD(lfd);
        return 0;
}

int vhost_dev_listen_path(VhostDev *d, const char *path) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ char *p = NULL;
        struct stat st;
        mode_t old_mask;
        int r;

        if (!path || strlen(path) >= sizeof(sa.sun_path))
                return -EINVAL;
        if (d->listen_fd >= 0)
                return -EBUSY;
        p = strdup(path);
        if (!p)
                return -ENOMEM;
        memcpy(sa.sun_path, path, strlen(path));
        /* Replace only a stale socket, never another kind of file (§6.1). */
        if (lstat(path, &st) == 0) {
                if (!S_ISSOCK(st.st_mode))
                        return -EEXIST;
                if (unlink(path) < 0)
                        return -errno;
        }
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        old_mask = umask(0117); /* 0660, no chmod race (§6.3) */
        r = bind(fd, (struct sockaddr *) &sa, sizeof(sa));
        umask(old_mask);
        if (r < 0)
                return -errno;
        if (listen(fd, 1) < 0) {
                r = -errno;
                (void) unlink(path);
                return r;
        }
        r = listen_attach(d, fd);
        if (r < 0) {
                (void) unlink(path);
                return r;
        }
        TAKE_FD(fd);
        d->path = TAKE_PTR(p);
        return 0;
}

int vhost_dev_serve_fd(VhostDev *d, int fd) {
        if (fd < 0)
                return -EBADF;
        if (conn_active(d)) {
                safe_close(fd);
                return -EBUSY;
        }
        return conn_attach(d, fd);
}

void vhost_dev_disconnect(VhostDev *d) {
        if (d && conn_active(d))
                conn_teardown(d);
}

bool vhost_dev_is_connected(VhostDev *d) {
        return d && conn_active(d);
}

/* ---- device-facing data path ---- */

void vhost_dev_push(VhostDev *d, VhostElem *elem, uint32_t written) {
        if (!elem)
                return;
        if (!d || elem->queue >= d->config.num_queues) {
                vhost_elem_free(elem);
                return;
        }
        virtq_push(d->rings[elem->queue].vq, elem, written);
}

void vhost_dev_notify(VhostDev *d, unsigned queue) {
        if (!d || queue >= d->config.num_queues)
                return;
        (void) virtq_notify(d->rings[queue].vq);
}

VhostMem *vhost_dev_get_mem(VhostDev *d) {
        return d ? d->mem : NULL;
}

/* ---- lifetime ---- */

int vhost_dev_new(sd_event *event,
                  const VhostDevConfig *config,
                  const VhostDeviceOps *ops,
                  void *userdata,
                  VhostDev **ret) {
        VhostDev *d;
        int r;

        if (!event || !config || !ops || !ret)
                return -EINVAL;
        if (config->num_queues < 1 || config->num_queues > VHOST_MAX_QUEUES)
                return -EINVAL;
        if (config->max_queue_size == 0 || config->max_queue_size > VIRTQ_MAX_SIZE ||
            (config->max_queue_size & (config->max_queue_size - 1)) != 0)
                return -EINVAL;
        if (config->config_size > VHOST_USER_MAX_CONFIG_SIZE)
                return -EINVAL;
        if (config->device_features & ~(BIT_ULL(24) - 1))
                return -EINVAL;
        if (config->n_allowed_uids > 0 && !config->allowed_uids)
                return -EINVAL;

        d = calloc(1, sizeof(*d));
        if (!d)
                return -ENOMEM;
        d->event = sd_event_ref(event);
        d->config = *config;
        d->ops = *ops;
        d->userdata = userdata;
        d->listen_fd = d->conn_fd = -EBADF;
        d->peer = (struct ucred){ .pid = 0, .uid = (uid_t) -1, .gid = (gid_t) -1 };
        vhost_msg_reader_init(&d->reader);
        if (config->n_allowed_uids > 0) {
                d->allowed_uids = calloc(config->n_allowed_uids, sizeof(uid_t));
                if (!d->allowed_uids) {
                        r = -ENOMEM;
                        goto fail;
                }
                memcpy(d->allowed_uids, config->allowed_uids, sizeof(uid_t) * config->n_allowed_uids);
        }
        d->config.allowed_uids = d->allowed_uids;
        for (unsigned i = 0; i < config->num_queues; i++) {
                Ring *ring = &d->rings[i];

                ring->dev = d;
                ring->index = i;
                ring->kick_fd = -EBADF;
                r = virtq_new(i, &ring->vq);
                if (r < 0)
                        goto fail;
                r = sd_event_add_defer(event, &ring->defer_source, on_defer, ring);
                if (r < 0)
                        goto fail;
                (void) sd_event_source_set_enabled(ring->defer_source, SD_EVENT_OFF);
        }
        *ret = d;
        return 0;
fail:
        vhost_dev_free(d);
        return r;
}

VhostDev *vhost_dev_free(VhostDev *d) {
        if (!d)
                return NULL;
        if (conn_active(d))
                conn_teardown(d);
        for (unsigned i = 0; i < VHOST_MAX_QUEUES; i++) {
                Ring *ring = &d->rings[i];

                ring->defer_source = sd_event_source_disable_unref(ring->defer_source);
                ring->vq = virtq_free(ring->vq);
        }
        d->listen_source = sd_event_source_disable_unref(d->listen_source);
        d->listen_fd = safe_close(d->listen_fd);
        if (d->path)
                (void) unlink(d->path);
        free(d->path);
        free(d->allowed_uids);
        sd_event_unref(d->event);
        free(d);
        return NULL;
}
