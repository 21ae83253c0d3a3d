/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * vhost-user wire definitions (QEMU docs/interop/vhost-user.rst; vhost-user-backend.md §1, §3, §4),
 * shared by the backend transport (vhost/) and the frontend library (frontend/). All fields are
 * little-endian; the header is packed and payloads start at byte 12, so read them with memcpy().
 */

#include <stdint.h>

#define VHOST_USER_HDR_SIZE 12
#define VHOST_USER_MAX_PAYLOAD 4096 /* we close the connection on anything larger (§1.2) */
#define VHOST_USER_MAX_FDS 8        /* QEMU sends at most 8 (SET_MEM_TABLE) */
#define VHOST_USER_MAX_CONFIG_SIZE 256
#define VHOST_USER_MAX_MEM_SLOTS 509 /* GET_MAX_MEM_SLOTS answer, as libvhost-user and rust-vmm */
#define VHOST_USER_MEM_TABLE_MAX_REGIONS 8

#define VHOST_USER_VERSION 0x1u
#define VHOST_USER_VERSION_MASK 0x3u
#define VHOST_USER_REPLY_MASK (1u << 2)
#define VHOST_USER_NEED_REPLY_MASK (1u << 3)
#define VHOST_USER_REPLY_FLAGS (VHOST_USER_VERSION | VHOST_USER_REPLY_MASK) /* exactly 0x5 */

#define VHOST_USER_VRING_IDX_MASK 0xffu
#define VHOST_USER_VRING_NOFD_MASK (1u << 8)

typedef enum VhostUserRequest {
        VHOST_USER_NONE = 0,
        VHOST_USER_GET_FEATURES = 1,
        VHOST_USER_SET_FEATURES = 2,
        VHOST_USER_SET_OWNER = 3,
        VHOST_USER_RESET_OWNER = 4,
        VHOST_USER_SET_MEM_TABLE = 5,
        VHOST_USER_SET_LOG_BASE = 6,
        VHOST_USER_SET_LOG_FD = 7,
        VHOST_USER_SET_VRING_NUM = 8,
        VHOST_USER_SET_VRING_ADDR = 9,
        VHOST_USER_SET_VRING_BASE = 10,
        VHOST_USER_GET_VRING_BASE = 11,
        VHOST_USER_SET_VRING_KICK = 12,
        VHOST_USER_SET_VRING_CALL = 13,
        VHOST_USER_SET_VRING_ERR = 14,
        VHOST_USER_GET_PROTOCOL_FEATURES = 15,
        VHOST_USER_SET_PROTOCOL_FEATURES = 16,
        VHOST_USER_GET_QUEUE_NUM = 17,
        VHOST_USER_SET_VRING_ENABLE = 18,
        VHOST_USER_SEND_RARP = 19,
        VHOST_USER_NET_SET_MTU = 20,
        VHOST_USER_SET_BACKEND_REQ_FD = 21,
        VHOST_USER_IOTLB_MSG = 22,
        VHOST_USER_SET_VRING_ENDIAN = 23,
        VHOST_USER_GET_CONFIG = 24,
        VHOST_USER_SET_CONFIG = 25,
        VHOST_USER_GET_INFLIGHT_FD = 31,
        VHOST_USER_SET_INFLIGHT_FD = 32,
        VHOST_USER_RESET_DEVICE = 34,
        VHOST_USER_GET_MAX_MEM_SLOTS = 36,
        VHOST_USER_ADD_MEM_REG = 37,
        VHOST_USER_REM_MEM_REG = 38,
        VHOST_USER_SET_STATUS = 39,
        VHOST_USER_GET_STATUS = 40,
        _VHOST_USER_REQUEST_MAX,
} VhostUserRequest;

/* Virtio feature bits (§4.1). */
#define VIRTIO_RING_F_INDIRECT_DESC 28
#define VIRTIO_RING_F_EVENT_IDX 29
#define VHOST_USER_F_PROTOCOL_FEATURES 30
#define VIRTIO_F_VERSION_1 32

/* Protocol feature bits (§4.2). */
#define VHOST_USER_PROTOCOL_F_MQ 0
#define VHOST_USER_PROTOCOL_F_REPLY_ACK 3
#define VHOST_USER_PROTOCOL_F_CONFIG 9
#define VHOST_USER_PROTOCOL_F_RESET_DEVICE 13
#define VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS 15

#define BIT_ULL(n) (1ULL << (n))

/* The transport's complete offer: exactly what vhost/ implements (§0). */
#define VHOST_USER_BACKEND_TRANSPORT_FEATURES                                                              \
        (BIT_ULL(VIRTIO_F_VERSION_1) | BIT_ULL(VHOST_USER_F_PROTOCOL_FEATURES) |                           \
         BIT_ULL(VIRTIO_RING_F_INDIRECT_DESC) | BIT_ULL(VIRTIO_RING_F_EVENT_IDX))
#define VHOST_USER_BACKEND_PROTOCOL_FEATURES                                                               \
        (BIT_ULL(VHOST_USER_PROTOCOL_F_MQ) | BIT_ULL(VHOST_USER_PROTOCOL_F_REPLY_ACK) |                    \
         BIT_ULL(VHOST_USER_PROTOCOL_F_CONFIG) | BIT_ULL(VHOST_USER_PROTOCOL_F_RESET_DEVICE) |             \
         BIT_ULL(VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS))

/* Payload layouts (§3.1). Sizes are wire sizes; copy payloads out with memcpy before use. */
struct vhost_user_vring_state {
        uint32_t index;
        uint32_t num;
};
_Static_assert(sizeof(struct vhost_user_vring_state) == 8, "wire layout");

struct vhost_user_vring_addr {
        uint32_t index;
        uint32_t flags;
        uint64_t desc_user_addr;
        uint64_t used_user_addr;
        uint64_t avail_user_addr;
        uint64_t log_guest_addr;
};
_Static_assert(sizeof(struct vhost_user_vring_addr) == 40, "wire layout");

struct vhost_user_mem_region {
        uint64_t guest_phys_addr;
        uint64_t memory_size;
        uint64_t user_addr;
        uint64_t mmap_offset;
};
_Static_assert(sizeof(struct vhost_user_mem_region) == 32, "wire layout");

struct vhost_user_mem_table_hdr { /* followed by nregions regions */
        uint32_t nregions;
        uint32_t padding;
};
_Static_assert(sizeof(struct vhost_user_mem_table_hdr) == 8, "wire layout");

struct vhost_user_mem_reg_msg { /* ADD_MEM_REG, REM_MEM_REG */
        uint64_t padding;
        struct vhost_user_mem_region region;
};
_Static_assert(sizeof(struct vhost_user_mem_reg_msg) == 40, "wire layout");

struct vhost_user_config_hdr { /* followed by size bytes */
        uint32_t offset;
        uint32_t size;
        uint32_t flags;
};
_Static_assert(sizeof(struct vhost_user_config_hdr) == 12, "wire layout");

/* Split virtqueue layout (§5.1). */
#define VRING_DESC_F_NEXT 1
#define VRING_DESC_F_WRITE 2
#define VRING_DESC_F_INDIRECT 4
#define VRING_AVAIL_F_NO_INTERRUPT 1
#define VRING_USED_F_NO_NOTIFY 1
#define VIRTQ_MAX_SIZE 32768 /* spec maximum; QEMU uses at most 1024 */

struct vring_desc {
        uint64_t addr;
        uint32_t len;
        uint16_t flags;
        uint16_t next;
};
_Static_assert(sizeof(struct vring_desc) == 16, "wire layout");

struct vring_used_elem {
        uint32_t id;
        uint32_t len;
};
_Static_assert(sizeof(struct vring_used_elem) == 8, "wire layout");

/* True when a notification is due: the "need_event" test of EVENT_IDX (§5.5). */
static inline int vring_need_event(uint16_t event_idx, uint16_t new_idx, uint16_t old_idx) {
        return (uint16_t) (new_idx - event_idx - 1) < (uint16_t) (new_idx - old_idx);
}
