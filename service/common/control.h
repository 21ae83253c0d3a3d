/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * The control protocol between virtio-videod (the manager) and a vhost-user-video worker
 * (architecture.md §2). It runs over one end each of a SOCK_SEQPACKET socketpair, so every message is one
 * datagram: a 8-byte header {le16 version, le16 type, le32 size} and `size` payload bytes, no fds.
 * Either side treats the other as untrusted: ctl_recv() checks the version, the type, the exact
 * payload size of each type and every string, and returns -EBADMSG for anything else.
 */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define CTL_PROTOCOL_VERSION 1
#define CTL_BACKEND_NAME_MAX 32

typedef enum CtlMsgType {
        /* worker → manager */
        CTL_MSG_HELLO = 1,             /* worker is up and listening */
        CTL_MSG_PEER_CONNECTED = 2,    /* a frontend connected and passed the peer check */
        CTL_MSG_PEER_REJECTED = 3,     /* a frontend was refused by the peer check */
        CTL_MSG_PEER_DISCONNECTED = 4, /* the frontend went away; listening again */
        CTL_MSG_STATS = 5,             /* answer to STATS_REQUEST */
        /* manager → worker */
        CTL_MSG_STATS_REQUEST = 64,
        CTL_MSG_SET_LOG_LEVEL = 65,
        CTL_MSG_DISCONNECT_PEER = 66, /* drop the connected frontend (forced detach), keep listening */
        CTL_MSG_SHUTDOWN = 67,        /* drop the frontend and exit 0 */
        _CTL_MSG_TYPE_INVALID = -22,
} CtlMsgType;

typedef struct CtlHello {
        uint32_t pid;
        char backend[CTL_BACKEND_NAME_MAX]; /* NUL-terminated, e.g. "ffmpeg-decoder" */
} CtlHello;

typedef struct CtlPeer {
        uint32_t pid, uid, gid;
} CtlPeer;

typedef struct CtlStats {
        uint32_t cookie;
        uint32_t active_streams;
        uint64_t connections;
        uint64_t disconnects;
        uint64_t streams_created;
        uint64_t errors;
        uint64_t bytes_in;
        uint64_t bytes_out;
} CtlStats;

/* A decoded message, host-typed. Which member is valid follows from `type`. */
typedef struct CtlMsg {
        CtlMsgType type;
        union {
                CtlHello hello;           /* HELLO */
                CtlPeer peer;             /* PEER_CONNECTED, PEER_REJECTED */
                CtlStats stats;           /* STATS */
                uint32_t stats_cookie;    /* STATS_REQUEST */
                uint32_t log_level;       /* SET_LOG_LEVEL, 0..7 */
        };
} CtlMsg;

/* Creates a SOCK_SEQPACKET|SOCK_CLOEXEC socketpair for the protocol. */
int ctl_socketpair(int ret_fds[2]);

/* Encodes and sends one message; MSG_NOSIGNAL, non-blocking friendly (-EAGAIN is returned as is). */
int ctl_send(int fd, const CtlMsg *msg);

/* Receives and validates one message. Returns 1 with *ret filled, 0 on EOF (peer closed), -EAGAIN when
 * nothing is pending on a non-blocking fd, -EBADMSG for a malformed message (the caller should close). */
int ctl_recv(int fd, CtlMsg *ret);

/* Decodes a datagram already read; exposed for unit tests and the fuzzer. */
int ctl_decode(const void *buf, size_t size, CtlMsg *ret);
/* Encodes into buf (at least CTL_MSG_MAX bytes); returns the datagram size or -EINVAL. */
int ctl_encode(const CtlMsg *msg, void *buf, size_t size);

const char *ctl_msg_type_to_string(CtlMsgType t);

#define CTL_MSG_MAX 128
