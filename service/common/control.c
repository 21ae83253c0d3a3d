/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <endian.h>
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "control.h"
#include "macro.h"

#define CTL_HDR_SIZE 8

static void put16(uint8_t *p, uint16_t v) {
        v = htole16(v);
        memcpy(p, &v, sizeof(v));
}

static void put32(uint8_t *p, uint32_t v) {
        v = htole32(v);
        memcpy(p, &v, sizeof(v));
}

static void put64(uint8_t *p, uint64_t v) {
        v = htole64(v);
        memcpy(p, &v, sizeof(v));
}

static uint16_t get16(const uint8_t *p) {
        uint16_t v;
        memcpy(&v, p, sizeof(v));
        return le16toh(v);
}

static uint32_t get32(const uint8_t *p) {
        uint32_t v;
        memcpy(&v, p, sizeof(v));
        return le32toh(v);
}

static uint64_t get64(const uint8_t *p) {
        uint64_t v;
        memcpy(&v, p, sizeof(v));
        return le64toh(v);
}

/* Exact payload size of each message type; -1 for unknown types. */
static int payload_size(CtlMsgType t) {
        switch (t) {
        case CTL_MSG_HELLO:
                return 4 + CTL_BACKEND_NAME_MAX;
        case CTL_MSG_PEER_CONNECTED:
        case CTL_MSG_PEER_REJECTED:
                return 12;
        case CTL_MSG_STATS:
                return 8 + 6 * 8;
        case CTL_MSG_STATS_REQUEST:
        case CTL_MSG_SET_LOG_LEVEL:
                return 4;
        case CTL_MSG_PEER_DISCONNECTED:
        case CTL_MSG_DISCONNECT_PEER:
        case CTL_MSG_SHUTDOWN:
                return 0;
        default:
                return -1;
        }
}

const char *ctl_msg_type_to_string(CtlMsgType t) {
        switch (t) {
        case CTL_MSG_HELLO:
                return "hello";
        case CTL_MSG_PEER_CONNECTED:
                return "peer-connected";
        case CTL_MSG_PEER_REJECTED:
                return "peer-rejected";
        case CTL_MSG_PEER_DISCONNECTED:
                return "peer-disconnected";
        case CTL_MSG_STATS:
                return "stats";
        case CTL_MSG_STATS_REQUEST:
                return "stats-request";
        case CTL_MSG_SET_LOG_LEVEL:
                return "set-log-level";
        case CTL_MSG_DISCONNECT_PEER:
                return "disconnect-peer";
        case CTL_MSG_SHUTDOWN:
                return "shutdown";
        default:
                return NULL;
        }
}

int ctl_encode(const CtlMsg *msg, void *buf, size_t size) {
        uint8_t *p = buf, *d = p + CTL_HDR_SIZE;
        int n = payload_size(msg->type);

        if (n < 0 || size < (size_t) (CTL_HDR_SIZE + n))
                return -EINVAL;
        memset(p, 0, CTL_HDR_SIZE + n);
        put16(p, CTL_PROTOCOL_VERSION);
        put16(p + 2, (uint16_t) msg->type);
        put32(p + 4, (uint32_t) n);

        switch (msg->type) {
        case CTL_MSG_HELLO: {
                size_t l = strnlen(msg->hello.backend, CTL_BACKEND_NAME_MAX);
                if (l >= CTL_BACKEND_NAME_MAX)
                        return -EINVAL;
                put32(d, msg->hello.pid);
                memcpy(d + 4, msg->hello.backend, l);
                break;
        }
        case CTL_MSG_PEER_CONNECTED:
        case CTL_MSG_PEER_REJECTED:
                put32(d, msg->peer.pid);
                put32(d + 4, msg->peer.uid);
                put32(d + 8, msg->peer.gid);
                break;
        case CTL_MSG_STATS:
                put32(d, msg->stats.cookie);
                put32(d + 4, msg->stats.active_streams);
                put64(d + 8, msg->stats.connections);
                put64(d + 16, msg->stats.disconnects);
                put64(d + 24, msg->stats.streams_created);
                put64(d + 32, msg->stats.errors);
                put64(d + 40, msg->stats.bytes_in);
                put64(d + 48, msg->stats.bytes_out);
                break;
        case CTL_MSG_STATS_REQUEST:
                put32(d, msg->stats_cookie);
                break;
        case CTL_MSG_SET_LOG_LEVEL:
                if (msg->log_level > 7)
                        return -EINVAL;
                put32(d, msg->log_level);
                break;
        default:
                break;
        }
        return CTL_HDR_SIZE + n;
}

int ctl_decode(const void *buf, size_t size, CtlMsg *ret) {
        const uint8_t *p = buf, *d = p + CTL_HDR_SIZE;
        CtlMsg m = {};
        int n;

        if (size < CTL_HDR_SIZE)
                return -EBADMSG;
        if (get16(p) != CTL_PROTOCOL_VERSION)
                return -EBADMSG;
        m.type = (CtlMsgType) get16(p + 2);
        n = payload_size(m.type);
        if (n < 0 || get32(p + 4) != (uint32_t) n || size != (size_t) (CTL_HDR_SIZE + n))
                return -EBADMSG;

        switch (m.type) {
        case CTL_MSG_HELLO:
                m.hello.pid = get32(d);
                /* The name must be NUL-terminated inside its field. */
                if (strnlen((const char *) d + 4, CTL_BACKEND_NAME_MAX) >= CTL_BACKEND_NAME_MAX)
                        return -EBADMSG;
                memcpy(m.hello.backend, d + 4, CTL_BACKEND_NAME_MAX);
                break;
        case CTL_MSG_PEER_CONNECTED:
        case CTL_MSG_PEER_REJECTED:
                m.peer.pid = get32(d);
                m.peer.uid = get32(d + 4);
                m.peer.gid = get32(d + 8);
                break;
        case CTL_MSG_STATS:
                m.stats.cookie = get32(d);
                m.stats.active_streams = get32(d + 4);
                m.stats.connections = get64(d + 8);
                m.stats.disconnects = get64(d + 16);
                m.stats.streams_created = get64(d + 24);
                m.stats.errors = get64(d + 32);
                m.stats.bytes_in = get64(d + 40);
                m.stats.bytes_out = get64(d + 48);
                break;
        case CTL_MSG_STATS_REQUEST:
                m.stats_cookie = get32(d);
                break;
        case CTL_MSG_SET_LOG_LEVEL:
                m.log_level = get32(d);
                if (m.log_level > 7)
                        return -EBADMSG;
                break;
        default:
                break;
        }
        *ret = m;
        return 0;
}

int ctl_socketpair(int ret_fds[2]) {
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ret_fds) < 0)
                return -errno;
        return 0;
}

int ctl_send(int fd, const CtlMsg *msg) {
        uint8_t buf[CTL_MSG_MAX];
        ssize_t k;
        int n;

        n = ctl_encode(msg, buf, sizeof(buf));
        if (n < 0)
                return n;
        do
                k = send(fd, buf, (size_t) n, MSG_NOSIGNAL);
        while (k < 0 && errno == EINTR);
        if (k < 0)
                return -errno;
        if (k != n)
                return -EIO;
        return 0;
}

int ctl_recv(int fd, CtlMsg *ret) {
        /* One byte more than the largest message, so an oversized datagram is seen as such. */
        uint8_t buf[CTL_MSG_MAX + 1];
        struct iovec iov = { buf, sizeof(buf) };
        union {
                struct cmsghdr h;
                uint8_t b[CMSG_SPACE(sizeof(int) * 8)];
        } control;
        struct msghdr mh = {
                .msg_iov = &iov,
                .msg_iovlen = 1,
                .msg_control = &control,
                .msg_controllen = sizeof(control),
        };
        ssize_t k;
        int r;

        do
                k = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
        while (k < 0 && errno == EINTR);
        if (k < 0)
                return -errno;

        /* The protocol carries no fds: close any that were sent anyway. */
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
                if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
                        size_t nfds = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                        int fds[8];
                        memcpy(fds, CMSG_DATA(c), MIN(nfds, ELEMENTSOF(fds)) * sizeof(int));
                        for (size_t i = 0; i < MIN(nfds, ELEMENTSOF(fds)); i++)
                                safe_close(fds[i]);
                        k = -1;
                }
        if (k < 0 || (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)))
                return -EBADMSG;
        if (k == 0)
                return 0;

        r = ctl_decode(buf, (size_t) k, ret);
        if (r < 0)
                return r;
        return 1;
}
