/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <endian.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "common/macro.h"
#include "vhost/message.h"

static uint32_t get_le32(const uint8_t *p) {
        uint32_t v;

        memcpy(&v, p, sizeof(v));
        return le32toh(v);
}

static uint64_t get_le64(const uint8_t *p) {
        uint64_t v;

        memcpy(&v, p, sizeof(v));
        return le64toh(v);
}

static void put_le32(uint8_t *p, uint32_t v) {
        v = htole32(v);
        memcpy(p, &v, sizeof(v));
}

const char *vhost_user_request_to_string(uint32_t request) {
        static const char *const table[_VHOST_USER_REQUEST_MAX] = {
                [VHOST_USER_NONE] = "NONE",
                [VHOST_USER_GET_FEATURES] = "GET_FEATURES",
                [VHOST_USER_SET_FEATURES] = "SET_FEATURES",
                [VHOST_USER_SET_OWNER] = "SET_OWNER",
                [VHOST_USER_RESET_OWNER] = "RESET_OWNER",
                [VHOST_USER_SET_MEM_TABLE] = "SET_MEM_TABLE",
                [VHOST_USER_SET_LOG_BASE] = "SET_LOG_BASE",
                [VHOST_USER_SET_LOG_FD] = "SET_LOG_FD",
                [VHOST_USER_SET_VRING_NUM] = "SET_VRING_NUM",
                [VHOST_USER_SET_VRING_ADDR] = "SET_VRING_ADDR",
                [VHOST_USER_SET_VRING_BASE] = "SET_VRING_BASE",
                [VHOST_USER_GET_VRING_BASE] = "GET_VRING_BASE",
                [VHOST_USER_SET_VRING_KICK] = "SET_VRING_KICK",
                [VHOST_USER_SET_VRING_CALL] = "SET_VRING_CALL",
                [VHOST_USER_SET_VRING_ERR] = "SET_VRING_ERR",
                [VHOST_USER_GET_PROTOCOL_FEATURES] = "GET_PROTOCOL_FEATURES",
                [VHOST_USER_SET_PROTOCOL_FEATURES] = "SET_PROTOCOL_FEATURES",
                [VHOST_USER_GET_QUEUE_NUM] = "GET_QUEUE_NUM",
                [VHOST_USER_SET_VRING_ENABLE] = "SET_VRING_ENABLE",
                [VHOST_USER_SEND_RARP] = "SEND_RARP",
                [VHOST_USER_NET_SET_MTU] = "NET_SET_MTU",
                [VHOST_USER_SET_BACKEND_REQ_FD] = "SET_BACKEND_REQ_FD",
                [VHOST_USER_IOTLB_MSG] = "IOTLB_MSG",
                [VHOST_USER_SET_VRING_ENDIAN] = "SET_VRING_ENDIAN",
                [VHOST_USER_GET_CONFIG] = "GET_CONFIG",
                [VHOST_USER_SET_CONFIG] = "SET_CONFIG",
                [VHOST_USER_GET_INFLIGHT_FD] = "GET_INFLIGHT_FD",
                [VHOST_USER_SET_INFLIGHT_FD] = "SET_INFLIGHT_FD",
                [VHOST_USER_RESET_DEVICE] = "RESET_DEVICE",
                [VHOST_USER_GET_MAX_MEM_SLOTS] = "GET_MAX_MEM_SLOTS",
                [VHOST_USER_ADD_MEM_REG] = "ADD_MEM_REG",
                [VHOST_USER_REM_MEM_REG] = "REM_MEM_REG",
                [VHOST_USER_SET_STATUS] = "SET_STATUS",
                [VHOST_USER_GET_STATUS] = "GET_STATUS",
        };

        if (request < ELEMENTSOF(table) && table[request])
                return table[request];
        return "unknown";
}

/* Requests we serve: exactly the ungated ones and those behind the bits we offer (§3.2). */
static bool request_supported(uint32_t request) {
        switch (request) {
        case VHOST_USER_GET_FEATURES:
        case VHOST_USER_SET_FEATURES:
        case VHOST_USER_SET_OWNER:
        case VHOST_USER_RESET_OWNER:
        case VHOST_USER_SET_MEM_TABLE:
        case VHOST_USER_SET_VRING_NUM:
        case VHOST_USER_SET_VRING_ADDR:
        case VHOST_USER_SET_VRING_BASE:
        case VHOST_USER_GET_VRING_BASE:
        case VHOST_USER_SET_VRING_KICK:
        case VHOST_USER_SET_VRING_CALL:
        case VHOST_USER_SET_VRING_ERR:
        case VHOST_USER_GET_PROTOCOL_FEATURES:
        case VHOST_USER_SET_PROTOCOL_FEATURES:
        case VHOST_USER_GET_QUEUE_NUM:
        case VHOST_USER_SET_VRING_ENABLE:
        case VHOST_USER_GET_CONFIG:
        case VHOST_USER_SET_CONFIG:
        case VHOST_USER_RESET_DEVICE:
        case VHOST_USER_GET_MAX_MEM_SLOTS:
        case VHOST_USER_ADD_MEM_REG:
        case VHOST_USER_REM_MEM_REG:
                return true;
        default:
                return false;
        }
}

bool vhost_user_request_has_reply(uint32_t request) {
        switch (request) {
        case VHOST_USER_GET_FEATURES:
        case VHOST_USER_GET_PROTOCOL_FEATURES:
        case VHOST_USER_GET_QUEUE_NUM:
        case VHOST_USER_GET_VRING_BASE:
        case VHOST_USER_GET_CONFIG:
        case VHOST_USER_GET_MAX_MEM_SLOTS:
                return true;
        default:
                return false;
        }
}

static int fail(const char **ret_reason, const char *reason) {
        if (ret_reason)
                *ret_reason = reason;
        return -EPROTO;
}

int vhost_msg_check_header(uint32_t request, uint32_t flags, uint32_t size, const char **ret_reason) {
        if ((flags & VHOST_USER_VERSION_MASK) != VHOST_USER_VERSION)
                return fail(ret_reason, "unsupported protocol version");
        if (flags & VHOST_USER_REPLY_MASK)
                return fail(ret_reason, "reply flag set on a request");
        if (flags & ~(VHOST_USER_VERSION_MASK | VHOST_USER_REPLY_MASK | VHOST_USER_NEED_REPLY_MASK))
                return fail(ret_reason, "reserved flag bits set");
        if (size > VHOST_USER_MAX_PAYLOAD)
                return fail(ret_reason, "payload larger than 4096 bytes");
        if (!request_supported(request))
                return fail(ret_reason, "unknown or unsupported request");
        return 0;
}

void vhost_msg_close_fds(VhostMsg *m) {
        for (unsigned i = 0; i < m->n_fds && i < VHOST_USER_MAX_FDS; i++)
                m->fds[i] = safe_close(m->fds[i]);
        m->n_fds = 0;
}

int vhost_msg_take_fd(VhostMsg *m, unsigned i) {
        if (i >= m->n_fds || i >= VHOST_USER_MAX_FDS)
                return -EBADF;
        return TAKE_FD(m->fds[i]);
}

void vhost_msg_reader_init(VhostMsgReader *rd) {
        rd->got = 0;
        rd->msg.n_fds = 0;
        rd->msg.size = 0;
}

void vhost_msg_reader_reset(VhostMsgReader *rd) {
        vhost_msg_close_fds(&rd->msg);
        vhost_msg_reader_init(rd);
}

bool vhost_msg_reader_idle(const VhostMsgReader *rd) {
        return rd->got == 0;
}

void *vhost_msg_reader_want(VhostMsgReader *rd, size_t *ret_len) {
        if (rd->got < VHOST_USER_HDR_SIZE) {
                *ret_len = VHOST_USER_HDR_SIZE - rd->got;
                return rd->hdr + rd->got;
        }
        *ret_len = rd->msg.size - (rd->got - VHOST_USER_HDR_SIZE);
        return rd->msg.payload + (rd->got - VHOST_USER_HDR_SIZE);
}

int vhost_msg_reader_advance(
        VhostMsgReader *rd, size_t n, const int *fds, unsigned n_fds, const char **ret_reason) {
        size_t want;
        int r;

        (void) vhost_msg_reader_want(rd, &want);
        for (unsigned i = 0; i < n_fds; i++) {
                if (rd->msg.n_fds >= VHOST_USER_MAX_FDS) {
                        for (unsigned j = i; j < n_fds; j++)
                                safe_close(fds[j]);
                        return fail(ret_reason, "too many file descriptors");
                }
                rd->msg.fds[rd->msg.n_fds++] = fds[i];
        }
        if (n > want)
                return fail(ret_reason, "read past the message");
        rd->got += n;
        if (rd->got == VHOST_USER_HDR_SIZE && n > 0) {
                rd->msg.request = get_le32(rd->hdr);
                rd->msg.flags = get_le32(rd->hdr + 4);
                rd->msg.size = get_le32(rd->hdr + 8);
                r = vhost_msg_check_header(rd->msg.request, rd->msg.flags, rd->msg.size, ret_reason);
                if (r < 0)
                        return r;
        }
        if (rd->got < VHOST_USER_HDR_SIZE || rd->got < VHOST_USER_HDR_SIZE + (size_t) rd->msg.size)
                return 0;
        return 1;
}

/* u64 payloads of SET_VRING_KICK/CALL/ERR: index in bits 0..7, "no fd" in bit 8, the rest 0. */
static int validate_vring_fd_msg(const VhostMsg *m, const char **ret_reason) {
        uint64_t v = get_le64(m->payload);

        if (v & ~(uint64_t) (VHOST_USER_VRING_IDX_MASK | VHOST_USER_VRING_NOFD_MASK))
                return fail(ret_reason, "reserved bits in the vring fd payload");
        if (m->n_fds != ((v & VHOST_USER_VRING_NOFD_MASK) ? 0u : 1u))
                return fail(ret_reason, "wrong number of file descriptors");
        return 0;
}

int vhost_msg_validate(const VhostMsg *m, const char **ret_reason) {
        uint32_t expect_size, nregions;
        unsigned expect_fds = 0;
        int r;

        r = vhost_msg_check_header(m->request, m->flags, m->size, ret_reason);
        if (r < 0)
                return r;

        switch (m->request) {
        case VHOST_USER_GET_FEATURES:
        case VHOST_USER_SET_OWNER:
        case VHOST_USER_RESET_OWNER:
        case VHOST_USER_GET_PROTOCOL_FEATURES:
        case VHOST_USER_GET_QUEUE_NUM:
        case VHOST_USER_RESET_DEVICE:
        case VHOST_USER_GET_MAX_MEM_SLOTS:
                expect_size = 0;
                break;
        case VHOST_USER_SET_FEATURES:
        case VHOST_USER_SET_PROTOCOL_FEATURES:
        case VHOST_USER_SET_VRING_NUM:
        case VHOST_USER_SET_VRING_BASE:
        case VHOST_USER_GET_VRING_BASE:
        case VHOST_USER_SET_VRING_ENABLE:
                expect_size = 8;
                break;
        case VHOST_USER_SET_VRING_KICK:
        case VHOST_USER_SET_VRING_CALL:
        case VHOST_USER_SET_VRING_ERR:
                if (m->size != 8)
                        return fail(ret_reason, "wrong payload size");
                return validate_vring_fd_msg(m, ret_reason);
        case VHOST_USER_SET_VRING_ADDR:
                expect_size = sizeof(struct vhost_user_vring_addr);
                break;
        case VHOST_USER_SET_MEM_TABLE:
                if (m->size < sizeof(struct vhost_user_mem_table_hdr))
                        return fail(ret_reason, "wrong payload size");
                nregions = get_le32(m->payload);
                if (nregions == 0 || nregions > VHOST_USER_MEM_TABLE_MAX_REGIONS)
                        return fail(ret_reason, "bad number of memory regions");
                expect_size = sizeof(struct vhost_user_mem_table_hdr) +
                              nregions * sizeof(struct vhost_user_mem_region);
                expect_fds = nregions;
                break;
        case VHOST_USER_ADD_MEM_REG:
                expect_size = sizeof(struct vhost_user_mem_reg_msg);
                expect_fds = 1;
                break;
        case VHOST_USER_REM_MEM_REG:
                if (m->size != sizeof(struct vhost_user_mem_reg_msg))
                        return fail(ret_reason, "wrong payload size");
                /* The spec asks to tolerate one fd here (and close it unused). */
                if (m->n_fds > 1)
                        return fail(ret_reason, "wrong number of file descriptors");
                return 0;
        case VHOST_USER_GET_CONFIG:
        case VHOST_USER_SET_CONFIG:
                if (m->size < sizeof(struct vhost_user_config_hdr))
                        return fail(ret_reason, "wrong payload size");
                if (get_le32(m->payload + 4) > VHOST_USER_MAX_CONFIG_SIZE)
                        return fail(ret_reason, "config size larger than 256 bytes");
                expect_size = sizeof(struct vhost_user_config_hdr) + get_le32(m->payload + 4);
                break;
        default:
                return fail(ret_reason, "unknown or unsupported request");
        }
        if (m->size != expect_size)
                return fail(ret_reason, "wrong payload size");
        if (m->n_fds != expect_fds)
                return fail(ret_reason, "wrong number of file descriptors");
        return 0;
}

uint64_t vhost_msg_u64(const VhostMsg *m) {
        return get_le64(m->payload);
}

struct vhost_user_vring_state vhost_msg_vring_state(const VhostMsg *m) {
        return (struct vhost_user_vring_state){
                .index = get_le32(m->payload),
                .num = get_le32(m->payload + 4),
        };
}

struct vhost_user_vring_addr vhost_msg_vring_addr(const VhostMsg *m) {
        return (struct vhost_user_vring_addr){
                .index = get_le32(m->payload),
                .flags = get_le32(m->payload + 4),
                .desc_user_addr = get_le64(m->payload + 8),
                .used_user_addr = get_le64(m->payload + 16),
                .avail_user_addr = get_le64(m->payload + 24),
                .log_guest_addr = get_le64(m->payload + 32),
        };
}

static struct vhost_user_mem_region region_at(const uint8_t *p) {
        return (struct vhost_user_mem_region){
                .guest_phys_addr = get_le64(p),
                .memory_size = get_le64(p + 8),
                .user_addr = get_le64(p + 16),
                .mmap_offset = get_le64(p + 24),
        };
}

unsigned vhost_msg_mem_table(const VhostMsg *m,
                             struct vhost_user_mem_region regions[VHOST_USER_MEM_TABLE_MAX_REGIONS]) {
        uint32_t n = get_le32(m->payload);

        n = MIN(n, (uint32_t) VHOST_USER_MEM_TABLE_MAX_REGIONS);
        n = MIN(n, (m->size - 8) / 32); /* never read past the payload, even if unvalidated */
        for (uint32_t i = 0; i < n; i++)
                regions[i] = region_at(m->payload + 8 + 32 * i);
        return n;
}

struct vhost_user_mem_region vhost_msg_mem_reg(const VhostMsg *m) {
        return region_at(m->payload + 8);
}

struct vhost_user_config_hdr vhost_msg_config(const VhostMsg *m, const uint8_t **ret_data) {
        if (ret_data)
                *ret_data = m->payload + sizeof(struct vhost_user_config_hdr);
        return (struct vhost_user_config_hdr){
                .offset = get_le32(m->payload),
                .size = get_le32(m->payload + 4),
                .flags = get_le32(m->payload + 8),
        };
}

int vhost_msg_encode_reply(
        uint32_t request, const void *payload, uint32_t size, uint8_t *buf, size_t buf_size) {
        if (size > VHOST_USER_MAX_PAYLOAD)
                return -EMSGSIZE;
        if (buf_size < VHOST_USER_HDR_SIZE + (size_t) size)
                return -ENOBUFS;
        put_le32(buf, request);
        put_le32(buf + 4, VHOST_USER_REPLY_FLAGS);
        put_le32(buf + 8, size);
        if (size > 0)
                memcpy(buf + VHOST_USER_HDR_SIZE, payload, size);
        return VHOST_USER_HDR_SIZE + (int) size;
}
