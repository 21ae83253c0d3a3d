/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * A vhost-user *frontend*: plays QEMU towards a backend (vhost-user-backend.md §2, §7) and gives the
 * building blocks for playing a guest driver on top of it (split rings in guest memory, kicks, calls,
 * request/response helpers). Used by `videoctl probe`, the integration tests and the benchmarks.
 *
 * What it does like QEMU: one memfd-backed guest memory region shared with MAP_SHARED, sent with a GPA,
 * a fake user address distinct from our real pointer and a non-zero mmap offset (§7.1); the exact
 * message order of §2.1-§2.4; NEED_REPLY on every message without a reply body once REPLY_ACK is
 * negotiated (a GET_FEATURES barrier after SET_VRING_ENABLE otherwise); and every reply checked
 * strictly (flags exactly 0x5, same request id, exact size).
 *
 * Everything the backend sends is untrusted: a bad reply, a bad used entry or a disconnect returns a
 * negative errno, never an assertion. Every wait is bounded by the timeout of the options and calls the
 * optional pump hook between polls, so a backend driven by an sd-event loop in the same thread makes
 * progress (pass a function doing sd_event_run(e, 0)).
 *
 * Errors: -ETIMEDOUT (a wait expired), -ECONNRESET (the backend closed the socket), -EPROTO (malformed
 * or unexpected reply), -EIO (the backend acked a request with a failure), -EBADMSG (the backend
 * published a bad used entry), -ENOSPC (ring or guest memory full), -EOPNOTSUPP (the backend lacks
 * something the options require), -EBUSY (wrong state for the call), -EINVAL (bad arguments).
 *
 * After -EPROTO, -ETIMEDOUT or -ECONNRESET from a socket operation the connection is out of step (a
 * reply may be half read): only vu_frontend_wait_hangup(), vu_frontend_disconnect() and
 * vu_frontend_free() make sense then.
 *
 * Not thread-safe: one VuFrontend is used from one thread.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct VuFrontend VuFrontend;
struct vring_desc; /* vhost/vhost-user-proto.h */
struct vring_used_elem;

/* Called between polls while the library waits. Return < 0 to abort the wait with that error, 0 when
 * idle (the library then sleeps in poll() for at most 1 ms), > 0 when work was done (polls again at
 * once). sd_event_run(e, 0) has exactly these semantics. */
typedef int (*VuPumpFunc)(void *userdata);

typedef struct VuFrontendOptions {
        /* Guest memory: one region of mem_size bytes at GPA mem_gpa, announced with the (fake) user
         * address mem_user_addr and mmap offset mem_mmap_offset into a memfd of offset + size bytes. */
        uint64_t mem_size;        /* default 16 MiB; multiple of 4096 */
        uint64_t mem_gpa;         /* default 0x40000000 */
        uint64_t mem_user_addr;   /* default 0x7f0012340000 */
        uint64_t mem_mmap_offset; /* default 0x1000; multiple of 4096 */

        unsigned num_queues; /* default 2; at most 8 */
        unsigned queue_size; /* default 256; power of two, <= 32768 */

        /* Virtio features we accept when offered (besides VERSION_1 and bit 30, always accepted). */
        bool event_idx;           /* default false */
        bool indirect_desc;       /* default true */
        uint64_t device_features; /* device bits (0..23) accepted when offered; default 0 */

        /* Protocol features we ack when offered, out of MQ, REPLY_ACK, CONFIG, RESET_DEVICE and
         * CONFIGURE_MEM_SLOTS (default: all five). Without CONFIGURE_MEM_SLOTS memory goes by
         * SET_MEM_TABLE, with it by GET_MAX_MEM_SLOTS + ADD_MEM_REG as QEMU does. */
        uint64_t protocol_features;
        /* With REPLY_ACK: true (default) sets NEED_REPLY on every message without a reply body and checks
         * each ack; false sets it only where QEMU 10.x does (memory table, SET_VRING_ENABLE, SET_CONFIG). */
        bool ack_every_message;

        /* Device config space size QEMU was told (config_size property); > 0 requires the CONFIG
         * protocol feature and makes vu_frontend_start() read it once (§2.2). Default 0. At most 256. */
        uint32_t config_size;

        int timeout_ms; /* every wait; default 5000 */
        VuPumpFunc pump;
        void *pump_userdata;
} VuFrontendOptions;

/* Fills in the defaults above. Start every VuFrontendOptions with it. */
void vu_frontend_options_init(VuFrontendOptions *o);

/* ---- lifecycle --------------------------------------------------------------------------------------- */

/* Creates guest memory, rings and eventfds, and connects to a listening unix socket at path (retrying,
 * with the pump, while its backlog is full), or takes ownership of a connected socket fd (e.g. one end
 * of a socketpair). Sends nothing yet. */
int vu_frontend_connect(const VuFrontendOptions *o, const char *path, VuFrontend **ret);
int vu_frontend_new_from_fd(const VuFrontendOptions *o, int fd, VuFrontend **ret);
/* Closes the socket (a disconnect, as when QEMU exits: no GET_VRING_BASE), then frees everything.
 * NULL-safe, returns NULL. */
VuFrontend *vu_frontend_free(VuFrontend *fe);
static inline void vu_frontend_freep(VuFrontend **fe) {
        if (*fe)
                vu_frontend_free(*fe);
}
/* Closes the socket only; guest memory and rings stay readable. Idempotent. */
void vu_frontend_disconnect(VuFrontend *fe);
int vu_frontend_socket_fd(VuFrontend *fe);

/* §2.1 device realize: GET_FEATURES, GET_PROTOCOL_FEATURES, SET_PROTOCOL_FEATURES, GET_QUEUE_NUM,
 * GET_MAX_MEM_SLOTS, SET_OWNER, GET_FEATURES (must match the first), then SET_VRING_CALL and
 * SET_VRING_ERR per queue with the "masked" call eventfd. Enough for a probe. */
int vu_frontend_init(VuFrontend *fe);
/* §2.2 + §2.3: runs vu_frontend_init() if not done yet, GET_CONFIG when config_size > 0, then
 * SET_FEATURES, the memory table, per queue SET_VRING_NUM/BASE(0)/ADDR/KICK/CALL, SET_VRING_ENABLE(1)
 * per queue, and the second SET_VRING_CALL per queue of vub_start. */
int vu_frontend_start(VuFrontend *fe);
/* §2.4 stop: SET_VRING_ENABLE(0) then GET_VRING_BASE per queue (each base checked to lie between the
 * ring's used and avail indices), then SET_VRING_CALL with the masked eventfd as vub_stop does.
 * ret_bases (num_queues entries, may be NULL) gets each ring's last_avail_idx. In-flight chains stay
 * tracked: completions the backend makes after resume() still arrive. */
int vu_frontend_stop(VuFrontend *fe, uint16_t *ret_bases);
/* Restart after stop with the same rings and the bases returned by GET_VRING_BASE (VM resume); with
 * CONFIGURE_MEM_SLOTS the region is not re-sent, as QEMU only sends the diff. */
int vu_frontend_resume(VuFrontend *fe);
/* Restart as after a guest driver reset: stops first when running, forgets every in-flight chain
 * (buffers the library owns are freed), allocates fresh rings and starts them with base 0. */
int vu_frontend_reset_rings(VuFrontend *fe);
/* RESET_DEVICE (needs the protocol feature): the backend drops rings and device state but keeps the
 * connection. The rings count as stopped; restart them with reset_rings() as a re-probing driver. */
int vu_frontend_reset_device(VuFrontend *fe);
bool vu_frontend_is_running(VuFrontend *fe);

/* What the backend offered and what was negotiated (valid after init / start). */
uint64_t vu_frontend_offered_features(VuFrontend *fe);
uint64_t vu_frontend_offered_protocol_features(VuFrontend *fe);
uint64_t vu_frontend_protocol_features(VuFrontend *fe); /* acked */
uint64_t vu_frontend_features(VuFrontend *fe);          /* sent with SET_FEATURES (0 before start) */
uint64_t vu_frontend_queue_num(VuFrontend *fe);         /* GET_QUEUE_NUM answer, 0 without MQ */
uint64_t vu_frontend_max_mem_slots(VuFrontend *fe);     /* 0 without CONFIGURE_MEM_SLOTS */

/* GET_CONFIG / SET_CONFIG (needs CONFIG). get_config checks the reply echoes offset and size. */
int vu_frontend_get_config(VuFrontend *fe, uint32_t offset, void *buf, uint32_t size);
int vu_frontend_set_config(VuFrontend *fe, uint32_t offset, const void *buf, uint32_t size);

/* ---- raw messages (negative tests, probes) ----------------------------------------------------------- */

/* One request the way the library sends them: header (flags version 1, plus NEED_REPLY when reply is
 * NULL, REPLY_ACK is negotiated and ack_every_message or QEMU would ask) + payload + fds in one sendmsg.
 * With reply != NULL, waits for a reply of exactly reply_size bytes; otherwise, with REPLY_ACK, for the u64
 * ack (non-zero: -EIO). */
int vu_frontend_message(VuFrontend *fe,
                        uint32_t request,
                        const void *payload,
                        uint32_t size,
                        const int *fds,
                        unsigned n_fds,
                        void *reply,
                        uint32_t reply_size);
/* Sends len arbitrary bytes with n_fds arbitrary fds (SCM_RIGHTS on the first byte) in one sendmsg. */
int vu_frontend_send_raw(VuFrontend *fe, const void *buf, size_t len, const int *fds, unsigned n_fds);
/* Sends a 12-byte header with these exact fields (size need not match len) followed by the payload. */
int vu_frontend_send_msg(VuFrontend *fe,
                         uint32_t request,
                         uint32_t flags,
                         uint32_t size,
                         const void *payload,
                         size_t len,
                         const int *fds,
                         unsigned n_fds);
/* Waits for a reply to request with exactly reply_size bytes of payload (strict checks). */
int vu_frontend_recv_reply(VuFrontend *fe, uint32_t request, void *reply, uint32_t reply_size);
/* Waits until the backend closes the connection, discarding anything it sends: 0 on EOF/reset. */
int vu_frontend_wait_hangup(VuFrontend *fe);

/* ---- guest memory ------------------------------------------------------------------------------------ */

int vu_frontend_mem_fd(VuFrontend *fe); /* the memfd (borrowed) */
uint64_t vu_frontend_mem_gpa(VuFrontend *fe);
uint64_t vu_frontend_mem_size(VuFrontend *fe);
uint64_t vu_frontend_mem_user_addr(VuFrontend *fe);
/* Our pointer to [gpa, gpa + len), or NULL when any byte lies outside guest memory. */
void *vu_frontend_gpa_to_ptr(VuFrontend *fe, uint64_t gpa, uint64_t len);
/* The GPA of a pointer into guest memory, or 0 when it does not point into it (GPA 0 is never in it). */
uint64_t vu_frontend_ptr_to_gpa(VuFrontend *fe, const void *p);
/* The user address QEMU would announce for a GPA (what SET_VRING_ADDR carries). */
uint64_t vu_frontend_gpa_to_uaddr(VuFrontend *fe, uint64_t gpa);

/* First-fit allocator over guest memory. align: power of two (0 means 16). The memory is zeroed (memory
 * never handed out before is left as the memfd made it, zero, unless a device wrote there unasked).
 * -ENOSPC when nothing fits. mem_free() takes a GPA returned by mem_alloc(); anything else: -EINVAL. */
int vu_frontend_mem_alloc(VuFrontend *fe, uint64_t size, uint64_t align, uint64_t *ret_gpa);
int vu_frontend_mem_free(VuFrontend *fe, uint64_t gpa);
uint64_t vu_frontend_mem_available(VuFrontend *fe); /* free bytes, in total */

/* ---- split rings: the driver side -------------------------------------------------------------------- */

/* One buffer of a chain, in guest memory. */
typedef struct VuSeg {
        uint64_t gpa;
        uint32_t len;
        bool device_writable;
} VuSeg;

/* One completion. tag is what the chain was posted with. */
typedef struct VuUsed {
        uint16_t head;
        uint32_t len; /* bytes the device says it wrote */
        uint64_t tag;
} VuUsed;

/* One descriptor pointing to an indirect table (needs INDIRECT_DESC). */
#define VU_POST_INDIRECT (1u << 0)
/* Negative tests: allow writable before readable segments, and indirect tables without INDIRECT_DESC. */
#define VU_POST_UNCHECKED (1u << 1)

/* Writes a chain (readable segments must come before writable ones, as the spec requires of drivers)
 * and publishes it in the avail ring (release store of avail->idx). Does not kick. n >= 1; direct chains
 * need n free descriptors, indirect ones one descriptor and n <= 1024. */
int vu_frontend_post(VuFrontend *fe,
                     unsigned queue,
                     const VuSeg *segs,
                     unsigned n,
                     unsigned flags,
                     uint64_t tag,
                     uint16_t *ret_head);
/* Writes the kick eventfd. kick_if_needed() honours VRING_USED_F_NO_NOTIFY or, with EVENT_IDX,
 * avail_event, as a driver does; returns 1 when it kicked, 0 when it did not need to. */
int vu_frontend_kick(VuFrontend *fe, unsigned queue);
int vu_frontend_kick_if_needed(VuFrontend *fe, unsigned queue);

/* Takes the next completion, first from those already reaped by a wait on another tag, then from the
 * used ring (acquire load of used->idx). 1 with *ret set, 0 when there is none. Buffers the library
 * allocated (submit(), event buffers) are freed. -EBADMSG when the backend published an id that is not
 * an in-flight head, or a length beyond the chain's writable bytes. */
int vu_frontend_get_used(VuFrontend *fe, unsigned queue, VuUsed *ret);
/* Like get_used() but waits (call eventfd + pump, with the timeout); with EVENT_IDX it first sets
 * used_event so that the next completion is signalled. -ENOENT when nothing is in flight. */
int vu_frontend_wait_used(VuFrontend *fe, unsigned queue, VuUsed *ret);
/* Waits for the call eventfd of a queue and reads it. */
int vu_frontend_wait_call(VuFrontend *fe, unsigned queue);
/* Reads the call eventfd without waiting: 1 when it was signalled, 0 when not. */
int vu_frontend_consume_call(VuFrontend *fe, unsigned queue);
/* Waits for the err eventfd of a queue (the backend reports a broken ring) and reads it. */
int vu_frontend_wait_err(VuFrontend *fe, unsigned queue);
/* Chains posted and not yet completed. */
unsigned vu_frontend_in_flight(VuFrontend *fe, unsigned queue);

/* ---- requests: a buffer pair per chain ---------------------------------------------------------------- */

/* Copies req into guest memory, allocates resp_cap device-writable bytes, posts both as one chain
 * (direct, or indirect with VU_POST_INDIRECT) with tag, and kicks. The buffers are freed when the
 * completion is collected. resp_cap may be 0 (then the chain has no writable part); req_len >= 1. */
int vu_frontend_submit(VuFrontend *fe,
                       unsigned queue,
                       const void *req,
                       size_t req_len,
                       size_t resp_cap,
                       unsigned flags,
                       uint64_t tag);
/* Waits for the completion of the submitted chain with this tag (other completions that arrive
 * meanwhile are kept for later), copies min(used len, resp_cap) bytes out, sets *ret_len (optional) to
 * the used length. resp may be NULL. -ENOENT when no chain with that tag is in flight or completed. */
int vu_frontend_collect(
        VuFrontend *fe, unsigned queue, uint64_t tag, void *resp, size_t resp_cap, size_t *ret_len);
/* Same, for whichever submitted chain completes first. */
int vu_frontend_collect_any(
        VuFrontend *fe, unsigned queue, uint64_t *ret_tag, void *resp, size_t resp_cap, size_t *ret_len);
/* submit + collect, with the response capacity equal to resp_cap. After any error but -EINVAL, the
 * request may still be in flight. */
int vu_frontend_request(VuFrontend *fe,
                        unsigned queue,
                        const void *req,
                        size_t req_len,
                        void *resp,
                        size_t resp_cap,
                        unsigned flags,
                        size_t *ret_len);

/* ---- buffers that stay posted: the virtio-video event queue ----------------------------------------- */

/* Allocates n device-writable buffers of size bytes and posts each as its own chain, then kicks. Each one
 * is re-posted as soon as its event has been taken with get_event()/wait_event(); reset_rings() frees
 * them (post them again afterwards, as a driver does on re-probe). Don't mix with get_used()/wait_used()
 * on the same queue: those would take (and free) event buffers too. */
int vu_frontend_post_event_buffers(VuFrontend *fe, unsigned queue, unsigned n, uint32_t size);
/* Takes the next filled event buffer: copies min(len, cap) bytes to buf, sets *ret_len (optional) to the
 * length the device wrote, re-posts the buffer and kicks. 1 when an event was taken, 0 when none. */
int vu_frontend_get_event(VuFrontend *fe, unsigned queue, void *buf, size_t cap, size_t *ret_len);
/* Same, waiting (with the timeout and the pump) for an event: 0 on success. */
int vu_frontend_wait_event(VuFrontend *fe, unsigned queue, void *buf, size_t cap, size_t *ret_len);

/* ---- ring internals, for negative and EVENT_IDX tests ------------------------------------------------ */

/* Pointers into guest memory (our address space) of a queue's ring, and their GPAs. */
typedef struct VuRingView {
        unsigned num;
        struct vring_desc *desc;
        uint16_t *avail_flags;
        uint16_t *avail_idx;
        uint16_t *avail_ring; /* num entries */
        uint16_t *used_event; /* avail_ring[num] */
        uint16_t *used_flags;
        uint16_t *used_idx;
        struct vring_used_elem *used_ring; /* num entries */
        uint16_t *avail_event;             /* after used_ring[num] */
        uint64_t desc_gpa, avail_gpa, used_gpa;
} VuRingView;

/* Rings exist from creation on (chains may be posted before the first start); reset_rings() moves them. */
int vu_frontend_ring_view(VuFrontend *fe, unsigned queue, VuRingView *ret);
/* Puts an arbitrary head into the next avail slot and publishes it, without any tracking or check
 * (e.g. a head beyond the ring, or a descriptor the test wrote itself through the view). */
int vu_frontend_publish_head(VuFrontend *fe, unsigned queue, uint16_t head);
/* Reserves n free descriptors (not tracked as in flight) for hand-written chains; returns their
 * indices in ret (n entries). Use with ring_view() + publish_head(). */
int vu_frontend_reserve_desc(VuFrontend *fe, unsigned queue, unsigned n, uint16_t *ret);
/* Sets used_event (EVENT_IDX) / VRING_AVAIL_F_NO_INTERRUPT by hand. */
int vu_frontend_set_used_event(VuFrontend *fe, unsigned queue, uint16_t idx);
int vu_frontend_set_no_interrupt(VuFrontend *fe, unsigned queue, bool no_interrupt);
/* The eventfds (borrowed): kick (we write), call and err (the backend writes). */
int vu_frontend_kick_fd(VuFrontend *fe, unsigned queue);
int vu_frontend_call_fd(VuFrontend *fe, unsigned queue);
int vu_frontend_err_fd(VuFrontend *fe, unsigned queue);
