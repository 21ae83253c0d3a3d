/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * vhost-user message framing and validation (vhost-user-backend.md §1, §3.2), without any socket:
 * a reader state machine that says where the next bytes of a message go, header checks, the exact size
 * and fd policy of every request we serve, payload accessors and reply encoding. Internal to vhost/ and
 * its tests. Every rejection is a protocol violation (-EPROTO) after which the connection is closed.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vhost/vhost-user-proto.h"

typedef struct VhostMsg {
        uint32_t request;
        uint32_t flags;
        uint32_t size; /* payload bytes */
        uint8_t payload[VHOST_USER_MAX_PAYLOAD];
        int fds[VHOST_USER_MAX_FDS];
        unsigned n_fds;
} VhostMsg;

typedef struct VhostMsgReader {
        uint8_t hdr[VHOST_USER_HDR_SIZE];
        size_t got; /* bytes of the current message so far, header included */
        VhostMsg msg;
} VhostMsgReader;

void vhost_msg_reader_init(VhostMsgReader *rd);
/* Drop a partial or complete message and close its fds; ready for the next one. */
void vhost_msg_reader_reset(VhostMsgReader *rd);
/* Where the next bytes go and how many the current message still needs (never more). */
void *vhost_msg_reader_want(VhostMsgReader *rd, size_t *ret_len);
/*
 * n bytes were stored at the want pointer, received together with fds (taken, also on error). Returns
 * 0 when more bytes are needed, 1 when rd->msg is complete (header checked, not yet validated), -EPROTO
 * on a bad header or too many fds (reason in *ret_reason).
 */
int vhost_msg_reader_advance(
        VhostMsgReader *rd, size_t n, const int *fds, unsigned n_fds, const char **ret_reason);
/* True when the reader sits at a message boundary (EOF here is a clean disconnect). */
bool vhost_msg_reader_idle(const VhostMsgReader *rd);

/* Header checks: version 1, no REPLY bit, no reserved bits, size <= 4096, a request we serve. */
int vhost_msg_check_header(uint32_t request, uint32_t flags, uint32_t size, const char **ret_reason);
/* Exact payload size and fd count for the request (§3.2). */
int vhost_msg_validate(const VhostMsg *m, const char **ret_reason);
void vhost_msg_close_fds(VhostMsg *m);
/* Take fds[i] out of the message (-EBADF when absent). */
int vhost_msg_take_fd(VhostMsg *m, unsigned i);

const char *vhost_user_request_to_string(uint32_t request);
/* Class 1 of §1.4: requests answered with a body whatever NEED_REPLY says. */
bool vhost_user_request_has_reply(uint32_t request);

/* Payload accessors for validated messages (unaligned-safe copies). */
uint64_t vhost_msg_u64(const VhostMsg *m);
struct vhost_user_vring_state vhost_msg_vring_state(const VhostMsg *m);
struct vhost_user_vring_addr vhost_msg_vring_addr(const VhostMsg *m);
/* SET_MEM_TABLE regions; returns their number (<= VHOST_USER_MEM_TABLE_MAX_REGIONS). */
unsigned vhost_msg_mem_table(const VhostMsg *m,
                             struct vhost_user_mem_region regions[VHOST_USER_MEM_TABLE_MAX_REGIONS]);
struct vhost_user_mem_region vhost_msg_mem_reg(const VhostMsg *m);
/* GET_CONFIG/SET_CONFIG header; *ret_data points at cfg.size bytes in the payload. */
struct vhost_user_config_hdr vhost_msg_config(const VhostMsg *m, const uint8_t **ret_data);

/* Encodes a reply (flags exactly 0x5) into buf; returns its length or -ENOBUFS / -EMSGSIZE. */
int vhost_msg_encode_reply(
        uint32_t request, const void *payload, uint32_t size, uint8_t *buf, size_t buf_size);
