/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * The vhost-user backend transport (vhost-user-backend.md). It owns the unix socket, the message framing,
 * the guest memory table and the split virtqueues, all on one sd-event loop, and knows nothing about
 * the device behind it: a device layer registers VhostDeviceOps and receives popped descriptor chains.
 *
 * Threading: every function here must be called from the event loop's thread. The only things a device
 * may hand to another thread are the iovecs of an element (and of a VhostMem translation) while it holds
 * the VhostMem reference that came with them.
 */

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

typedef struct sd_event sd_event;
typedef struct VhostDev VhostDev;
typedef struct VhostMem VhostMem;

/* Upper bounds on what one chain may describe (§5.3, §5.7). */
#define VHOST_ELEM_MAX_IOV 1024

/*
 * One popped descriptor chain. The device owns it from the handle_elem callback on, and gives it back
 * with exactly one of vhost_dev_push() (completion) or vhost_elem_free() (dropped without completion,
 * only on reset). The iovecs point into guest memory of `mem`, which stays mapped while the element
 * lives, even if the frontend replaces the memory table in the meantime.
 */
typedef struct VhostElem {
        unsigned queue;
        uint16_t head;
        struct iovec *rd;  /* device-readable segments, in chain order */
        unsigned n_rd;
        size_t rd_len;     /* sum of rd[].iov_len */
        struct iovec *wr;  /* device-writable segments, in chain order */
        unsigned n_wr;
        size_t wr_len;     /* sum of wr[].iov_len */
        VhostMem *mem;     /* reference held by the element */
} VhostElem;

typedef struct VhostDeviceOps {
        /* Called with every element popped from an enabled, started queue. Must not fail: a request the
         * device cannot parse still gets a completion (with an error response of its protocol). */
        void (*handle_elem)(void *userdata, VhostElem *elem);
        /* Device config space (GET_CONFIG / SET_CONFIG); offset + size are already checked against
         * config_size. Return 0 or a negative errno (turned into a failure reply). */
        int (*get_config)(void *userdata, uint32_t offset, void *buf, uint32_t size);
        int (*set_config)(void *userdata, uint32_t offset, const void *buf, uint32_t size);
        /* The negotiated device-specific feature bits (bits 0..23), at SET_FEATURES. */
        void (*set_features)(void *userdata, uint64_t device_features);
        /* Drop all device state (streams, held elements: free them with vhost_elem_free()). Called on
         * disconnect, RESET_DEVICE / RESET_OWNER, and a ring restart that is a driver reset rather than
         * a VM resume (§2.4 heuristic). Elements freed here are never completed. */
        void (*reset)(void *userdata);
        /* A ring started (true) or stopped (false: VM paused, or about to reset). While any ring is
         * stopped the device must not expect completions to reach the guest: vhost_dev_push() queues
         * them and they are flushed on resume, or dropped on reset. */
        void (*queue_state)(void *userdata, unsigned queue, bool started);
        /* A frontend connected (cred of the peer) or went away. Optional. `accepted` is false when the
         * peer was refused by the peer-uid policy and the connection is already closed. */
        void (*peer)(void *userdata, bool connected, bool accepted, const struct ucred *cred);
        /* The memory table changed; elements and VhostMem references taken before stay valid. Optional. */
        void (*memory_changed)(void *userdata);
} VhostDeviceOps;

typedef struct VhostDevConfig {
        unsigned num_queues;        /* 1..8 */
        unsigned max_queue_size;    /* power of two, <= 32768; the video device uses 1024 */
        uint64_t device_features;   /* bits 0..23 offered on top of the transport's own */
        uint32_t config_size;       /* bytes of device config space, <= 256 */
        /* Peer policy checked with SO_PEERCRED on accept: when n_allowed_uids > 0, only root and these
         * uids may connect. */
        const uid_t *allowed_uids;
        unsigned n_allowed_uids;
} VhostDevConfig;

int vhost_dev_new(sd_event *event,
                  const VhostDevConfig *config,
                  const VhostDeviceOps *ops,
                  void *userdata,
                  VhostDev **ret);
VhostDev *vhost_dev_free(VhostDev *d);

/* Bind and listen on a path (a stale socket file is replaced; the file is removed by vhost_dev_free()). */
int vhost_dev_listen_path(VhostDev *d, const char *path);
/* Serve an inherited listening socket (--socket-fd, the manager, systemd). Takes ownership. */
int vhost_dev_listen_fd(VhostDev *d, int fd);
/* Serve one already-connected socket (a socketpair in tests). Takes ownership. */
int vhost_dev_serve_fd(VhostDev *d, int fd);
/* Drop the current frontend (as on EOF), then keep listening. */
void vhost_dev_disconnect(VhostDev *d);
bool vhost_dev_is_connected(VhostDev *d);

/* Complete an element: writes the used entry with `written` bytes (clamped to wr_len), frees the
 * element. Queued internally while the ring is stopped. Does not notify. */
void vhost_dev_push(VhostDev *d, VhostElem *elem, uint32_t written);
/* Signal the guest for a queue if EVENT_IDX / NO_INTERRUPT allow it; call once per batch of pushes. */
void vhost_dev_notify(VhostDev *d, unsigned queue);
/* Drop an element without completing it (reset paths only). NULL-safe, returns NULL. */
VhostElem *vhost_elem_free(VhostElem *elem);

/* The device layer's view of guest memory: the current table (borrowed; take a ref to keep it). */
VhostMem *vhost_dev_get_mem(VhostDev *d);
VhostMem *vhost_mem_ref(VhostMem *m);
VhostMem *vhost_mem_unref(VhostMem *m);
/* Translates the guest-physical range [gpa, gpa + len) into host segments, splitting at region edges.
 * Returns the number of segments, -EFAULT when any byte is outside guest memory or the range wraps,
 * -E2BIG when more than max_iov segments would be needed. */
int vhost_mem_translate(VhostMem *m, uint64_t gpa, uint64_t len, struct iovec *iov, unsigned max_iov);
