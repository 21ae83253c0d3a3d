/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The frontend's socket side: message framing, strict reply checks, and QEMU's handshake, stop, resume
 * and reset sequences (vhost-user-backend.md §1, §2, §7).
 */

#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/macro.h"
#include "frontend/frontend-internal.h"

#define PROTOCOL_FEATURES_KNOWN                                                                \
        (BIT_ULL(VHOST_USER_PROTOCOL_F_MQ) | BIT_ULL(VHOST_USER_PROTOCOL_F_REPLY_ACK) |        \
         BIT_ULL(VHOST_USER_PROTOCOL_F_CONFIG) | BIT_ULL(VHOST_USER_PROTOCOL_F_RESET_DEVICE) | \
         BIT_ULL(VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS))
#define DEVICE_FEATURES_MASK ((1ULL << 24) - 1)

void vu_frontend_options_init(VuFrontendOptions *o) {
        *o = (VuFrontendOptions){
                .mem_size = 16 * 1024 * 1024,
                .mem_gpa = 0x40000000,
                .mem_user_addr = 0x7f0012340000,
                .mem_mmap_offset = 0x1000,
                .num_queues = 2,
                .queue_size = 256,
                .indirect_desc = true,
                .protocol_features = PROTOCOL_FEATURES_KNOWN,
                .ack_every_message = true,
                .timeout_ms = 5000,
        };
}

/* ---- time and waiting -------------------------------------------------------------------------------- */

static uint64_t now_msec(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

int frontend_deadline(VuFrontend *fe, uint64_t *ret) {
        *ret = now_msec() + (uint64_t) fe->opts.timeout_ms;
        return 0;
}

int frontend_wait_fd(VuFrontend *fe, int fd, short events, uint64_t deadline) {
        for (;;) {
                struct pollfd p = { .fd = fd, .events = events };
                int progress = 0, timeout, r;
                uint64_t now;

                if (fe->opts.pump) {
                        progress = fe->opts.pump(fe->opts.pump_userdata);
                        if (progress < 0)
                                return progress;
                }

                now = now_msec();
                if (fe->opts.pump)
                        timeout = progress > 0 ? 0 : 1;
                else
                        timeout = now >= deadline ? 0 : (int) MIN(deadline - now, (uint64_t) 60000);

                r = poll(&p, 1, timeout);
                if (r < 0 && errno != EINTR)
                        return -errno;
                if (r > 0) {
                        if (p.revents & POLLNVAL)
                                return -EBADF;
                        return 1;
                }
                if (now_msec() >= deadline)
                        return -ETIMEDOUT;
        }
}

/* ---- socket I/O -------------------------------------------------------------------------------------- */

static int
send_all(VuFrontend *fe, const struct iovec *iov_in, unsigned n_iov, const int *fds, unsigned n_fds) {
        struct iovec iov[4];
        size_t total = 0, sent = 0;
        uint64_t deadline;
        bool fds_sent = false;

        if (fe->sock < 0)
                return -ENOTCONN;
        if (n_iov > ELEMENTSOF(iov) || n_fds > 253)
                return -EINVAL;
        memcpy(iov, iov_in, n_iov * sizeof(*iov));
        for (unsigned i = 0; i < n_iov; i++)
                total += iov[i].iov_len;
        (void) frontend_deadline(fe, &deadline);

        while (sent < total || (!fds_sent && n_fds > 0)) {
                union {
                        struct cmsghdr align;
                        char buf[CMSG_SPACE(253 * sizeof(int))];
                } control;
                struct msghdr mh = { .msg_iov = iov, .msg_iovlen = n_iov };
                unsigned first = 0;
                ssize_t k;
                int r;

                while (first < n_iov && iov[first].iov_len == 0)
                        first++;
                mh.msg_iov = iov + first;
                mh.msg_iovlen = n_iov - first;

                if (!fds_sent && n_fds > 0) {
                        struct cmsghdr *c;

                        memset(&control, 0, sizeof(control));
                        mh.msg_control = &control;
                        mh.msg_controllen = CMSG_SPACE(n_fds * sizeof(int));
                        c = CMSG_FIRSTHDR(&mh);
                        c->cmsg_level = SOL_SOCKET;
                        c->cmsg_type = SCM_RIGHTS;
                        c->cmsg_len = CMSG_LEN(n_fds * sizeof(int));
                        memcpy(CMSG_DATA(c), fds, n_fds * sizeof(int));
                }

                k = sendmsg(fe->sock, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno != EAGAIN)
                                return errno == EPIPE ? -ECONNRESET : -errno;
                        r = frontend_wait_fd(fe, fe->sock, POLLOUT, deadline);
                        if (r < 0)
                                return r;
                        continue;
                }
                fds_sent = true;
                sent += (size_t) k;
                for (size_t left = (size_t) k; left > 0 && first < n_iov; first++) {
                        size_t step = MIN(left, iov[first].iov_len);

                        iov[first].iov_base = (uint8_t *) iov[first].iov_base + step;
                        iov[first].iov_len -= step;
                        left -= step;
                        if (iov[first].iov_len > 0)
                                break;
                }
        }
        return 0;
}

/* Reads exactly len bytes. Any fd the backend attaches is closed and makes the read fail: no reply of
 * the protocol carries fds for the messages we send. */
static int recv_exact(VuFrontend *fe, void *buf, size_t len, uint64_t deadline) {
        size_t got = 0;

        if (fe->sock < 0)
                return -ENOTCONN;
        while (got < len) {
                union {
                        struct cmsghdr align;
                        char buf[CMSG_SPACE(VHOST_USER_MAX_FDS * sizeof(int))];
                } control;
                struct iovec iov = { .iov_base = (uint8_t *) buf + got, .iov_len = len - got };
                struct msghdr mh = {
                        .msg_iov = &iov,
                        .msg_iovlen = 1,
                        .msg_control = &control,
                        .msg_controllen = sizeof(control),
                };
                bool had_fds = false;
                ssize_t k;
                int r;

                k = recvmsg(fe->sock, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno != EAGAIN)
                                return -errno;
                        r = frontend_wait_fd(fe, fe->sock, POLLIN, deadline);
                        if (r < 0)
                                return r;
                        continue;
                }
                for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
                        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
                                continue;
                        for (size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++) {
                                int fd;

                                memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(fd));
                                safe_close(fd);
                        }
                        had_fds = true;
                }
                if (had_fds || (mh.msg_flags & MSG_CTRUNC))
                        return log_debug_errno(-EPROTO,
                                               "vhost-user frontend: backend sent fds with a reply");
                if (k == 0)
                        return -ECONNRESET;
                got += (size_t) k;
        }
        return 0;
}

static bool want_ack(VuFrontend *fe, uint32_t request) {
        if (!(fe->protocol_features & BIT_ULL(VHOST_USER_PROTOCOL_F_REPLY_ACK)))
                return false;
        if (fe->opts.ack_every_message)
                return true;
        /* The messages QEMU 10.x itself sends with NEED_REPLY (hw/virtio/vhost-user.c). */
        switch (request) {
        case VHOST_USER_SET_MEM_TABLE:
        case VHOST_USER_ADD_MEM_REG:
        case VHOST_USER_REM_MEM_REG:
        case VHOST_USER_SET_VRING_ENABLE:
        case VHOST_USER_SET_CONFIG:
        case VHOST_USER_SET_BACKEND_REQ_FD:
                return true;
        default:
                return false;
        }
}

int vu_frontend_send_msg(VuFrontend *fe,
                         uint32_t request,
                         uint32_t flags,
                         uint32_t size,
                         const void *payload,
                         size_t len,
                         const int *fds,
                         unsigned n_fds) {
        uint8_t hdr[VHOST_USER_HDR_SIZE];
        uint32_t v;
        struct iovec iov[2] = {
                { .iov_base = hdr, .iov_len = sizeof(hdr) },
                { .iov_base = (void *) payload, .iov_len = payload ? len : 0 },
        };

        if (!fe || (len > 0 && !payload) || (n_fds > 0 && !fds))
                return -EINVAL;
        v = htole32(request);
        memcpy(hdr, &v, 4);
        v = htole32(flags);
        memcpy(hdr + 4, &v, 4);
        v = htole32(size);
        memcpy(hdr + 8, &v, 4);
        return send_all(fe, iov, 2, fds, n_fds);
}

int vu_frontend_send_raw(VuFrontend *fe, const void *buf, size_t len, const int *fds, unsigned n_fds) {
        struct iovec iov = { .iov_base = (void *) buf, .iov_len = len };

        if (!fe || (len > 0 && !buf) || (n_fds > 0 && !fds) || (len == 0 && n_fds > 0))
                return -EINVAL;
        return send_all(fe, &iov, 1, fds, n_fds);
}

static int
recv_reply_deadline(VuFrontend *fe, uint32_t request, void *reply, uint32_t reply_size, uint64_t deadline) {
        uint32_t h[3];
        int r;

        if (reply_size > VHOST_USER_MAX_PAYLOAD || (reply_size > 0 && !reply))
                return -EINVAL;
        r = recv_exact(fe, h, sizeof(h), deadline);
        if (r < 0)
                return r;
        h[0] = le32toh(h[0]);
        h[1] = le32toh(h[1]);
        h[2] = le32toh(h[2]);
        if (h[0] != request)
                return log_debug_errno(-EPROTO, "vhost-user frontend: reply to request %u has id %u",
                                       request, h[0]);
        if (h[1] != VHOST_USER_REPLY_FLAGS)
                return log_debug_errno(-EPROTO, "vhost-user frontend: reply to request %u has flags 0x%x",
                                       request, h[1]);
        if (h[2] != reply_size)
                return log_debug_errno(-EPROTO,
                                       "vhost-user frontend: reply to request %u has size %u, expected %u",
                                       request, h[2], reply_size);
        return recv_exact(fe, reply, reply_size, deadline);
}

int vu_frontend_recv_reply(VuFrontend *fe, uint32_t request, void *reply, uint32_t reply_size) {
        uint64_t deadline;

        if (!fe)
                return -EINVAL;
        (void) frontend_deadline(fe, &deadline);
        return recv_reply_deadline(fe, request, reply, reply_size, deadline);
}

int vu_frontend_message(VuFrontend *fe,
                        uint32_t request,
                        const void *payload,
                        uint32_t size,
                        const int *fds,
                        unsigned n_fds,
                        void *reply,
                        uint32_t reply_size) {
        uint32_t flags = VHOST_USER_VERSION;
        bool ack;
        int r;

        if (!fe || size > VHOST_USER_MAX_PAYLOAD)
                return -EINVAL;
        ack = !reply && want_ack(fe, request);
        if (ack)
                flags |= VHOST_USER_NEED_REPLY_MASK;

        r = vu_frontend_send_msg(fe, request, flags, size, payload, size, fds, n_fds);
        if (r < 0)
                return r;
        if (reply)
                return vu_frontend_recv_reply(fe, request, reply, reply_size);
        if (ack) {
                uint64_t v;

                r = vu_frontend_recv_reply(fe, request, &v, sizeof(v));
                if (r < 0)
                        return r;
                if (le64toh(v) != 0)
                        return log_debug_errno(-EIO, "vhost-user frontend: request %u failed, ack %" PRIu64,
                                               request, le64toh(v));
        }
        return 0;
}

int vu_frontend_wait_hangup(VuFrontend *fe) {
        uint64_t deadline;

        if (!fe || fe->sock < 0)
                return -EINVAL;
        (void) frontend_deadline(fe, &deadline);
        for (;;) {
                uint8_t buf[4096];
                ssize_t k;
                int r;

                k = recv(fe->sock, buf, sizeof(buf), MSG_DONTWAIT);
                if (k == 0)
                        return 0;
                if (k < 0) {
                        if (errno == ECONNRESET)
                                return 0;
                        if (errno == EINTR)
                                continue;
                        if (errno != EAGAIN)
                                return -errno;
                        r = frontend_wait_fd(fe, fe->sock, POLLIN, deadline);
                        if (r < 0)
                                return r;
                }
        }
}

/* ---- typed messages ---------------------------------------------------------------------------------- */

static int msg_get_u64(VuFrontend *fe, uint32_t request, uint64_t *ret) {
        uint64_t v;
        int r;

        r = vu_frontend_message(fe, request, NULL, 0, NULL, 0, &v, sizeof(v));
        if (r < 0)
                return r;
        *ret = le64toh(v);
        return 0;
}

static int msg_set_u64(VuFrontend *fe, uint32_t request, uint64_t value, const int *fd) {
        uint64_t v = htole64(value);

        return vu_frontend_message(fe, request, &v, sizeof(v), fd, fd ? 1 : 0, NULL, 0);
}

static int msg_vring_state(VuFrontend *fe, uint32_t request, unsigned index, uint32_t num) {
        struct vhost_user_vring_state s = { .index = htole32(index), .num = htole32(num) };

        return vu_frontend_message(fe, request, &s, sizeof(s), NULL, 0, NULL, 0);
}

static int msg_vring_fd(VuFrontend *fe, uint32_t request, unsigned index, int fd) {
        return msg_set_u64(fe, request, index, &fd);
}

/* QEMU's ordering barrier when REPLY_ACK is not negotiated (§1.4): GET_FEATURES, whose answer must not
 * change. */
static int barrier(VuFrontend *fe) {
        uint64_t f;
        int r;

        if (fe->protocol_features & BIT_ULL(VHOST_USER_PROTOCOL_F_REPLY_ACK))
                return 0;
        r = msg_get_u64(fe, VHOST_USER_GET_FEATURES, &f);
        if (r < 0)
                return r;
        if (f != fe->offered_features)
                return log_debug_errno(-EPROTO,
                                       "vhost-user frontend: GET_FEATURES changed from 0x%" PRIx64
                                       " to 0x%" PRIx64,
                                       fe->offered_features, f);
        return 0;
}

/* ---- lifecycle --------------------------------------------------------------------------------------- */

static int make_eventfd(int *ret) {
        int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);

        if (fd < 0)
                return -errno;
        *ret = fd;
        return 0;
}

static int frontend_new(const VuFrontendOptions *o, VuFrontend **ret) {
        _cleanup_(vu_frontend_freep) VuFrontend *fe = NULL;
        int r;

        if (!o || !ret || o->num_queues == 0 || o->num_queues > FRONTEND_MAX_QUEUES || o->queue_size == 0 ||
            o->queue_size > VIRTQ_MAX_SIZE || (o->queue_size & (o->queue_size - 1)) ||
            o->config_size > VHOST_USER_MAX_CONFIG_SIZE || o->timeout_ms <= 0)
                return -EINVAL;

        fe = calloc(1, sizeof(*fe));
        if (!fe)
                return -ENOMEM;
        fe->opts = *o;
        fe->sock = -EBADF;
        fe->mem.fd = -EBADF;
        for (unsigned i = 0; i < FRONTEND_MAX_QUEUES; i++) {
                Queue *q = &fe->queues[i];

                q->kick_fd = q->call_fd = q->err_fd = q->masked_call_fd = -EBADF;
        }

        r = guest_mem_init(&fe->mem, o);
        if (r < 0)
                return r;
        for (unsigned i = 0; i < o->num_queues; i++) {
                Queue *q = &fe->queues[i];

                if ((r = make_eventfd(&q->kick_fd)) < 0 || (r = make_eventfd(&q->call_fd)) < 0 ||
                    (r = make_eventfd(&q->err_fd)) < 0 || (r = make_eventfd(&q->masked_call_fd)) < 0)
                        return r;
                r = queue_alloc_ring(fe, i);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(fe);
        return 0;
}

int vu_frontend_new_from_fd(const VuFrontendOptions *o, int fd, VuFrontend **ret) {
        VuFrontend *fe;
        int r;

        if (fd < 0)
                return -EBADF;
        r = frontend_new(o, &fe);
        if (r < 0)
                return r;
        fe->sock = fd;
        *ret = fe;
        return 0;
}

/* A unix socket connect fails with EAGAIN while the listener's backlog is full (the backend serves one
 * frontend at a time with a short backlog): retry, pumping, until the timeout. Blocking in connect()
 * instead would deadlock against a backend running in this thread. */
static int connect_retry(VuFrontend *fe, int fd, const struct sockaddr_un *sa) {
        uint64_t deadline;

        (void) frontend_deadline(fe, &deadline);
        for (;;) {
                int r;

                if (connect(fd, (const struct sockaddr *) sa, sizeof(*sa)) >= 0)
                        return 0;
                if (errno != EAGAIN && errno != EINTR)
                        return -errno;
                if (now_msec() >= deadline)
                        return -ETIMEDOUT;
                if (fe->opts.pump) {
                        r = fe->opts.pump(fe->opts.pump_userdata);
                        if (r < 0)
                                return r;
                        if (r > 0)
                                continue;
                }
                (void) poll(NULL, 0, 1);
        }
}

int vu_frontend_connect(const VuFrontendOptions *o, const char *path, VuFrontend **ret) {
        _cleanup_(vu_frontend_freep) VuFrontend *fe = NULL;
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int r;

        if (!path || !ret || strlen(path) >= sizeof(sa.sun_path))
                return -EINVAL;
        strcpy(sa.sun_path, path);
        r = frontend_new(o, &fe);
        if (r < 0)
                return r;
        fe->sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fe->sock < 0)
                return -errno;
        r = connect_retry(fe, fe->sock, &sa);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(fe);
        return 0;
}

void vu_frontend_disconnect(VuFrontend *fe) {
        if (!fe)
                return;
        fe->sock = safe_close(fe->sock);
        fe->running = false;
}

VuFrontend *vu_frontend_free(VuFrontend *fe) {
        if (!fe)
                return NULL;
        vu_frontend_disconnect(fe);
        for (unsigned i = 0; i < FRONTEND_MAX_QUEUES; i++) {
                Queue *q = &fe->queues[i];

                queue_done(fe, i);
                q->kick_fd = safe_close(q->kick_fd);
                q->call_fd = safe_close(q->call_fd);
                q->err_fd = safe_close(q->err_fd);
                q->masked_call_fd = safe_close(q->masked_call_fd);
        }
        guest_mem_done(&fe->mem);
        free(fe);
        return NULL;
}

int vu_frontend_socket_fd(VuFrontend *fe) {
        return fe ? fe->sock : -EINVAL;
}

bool vu_frontend_is_running(VuFrontend *fe) {
        return fe && fe->running;
}

uint64_t vu_frontend_offered_features(VuFrontend *fe) {
        return fe ? fe->offered_features : 0;
}

uint64_t vu_frontend_offered_protocol_features(VuFrontend *fe) {
        return fe ? fe->offered_protocol_features : 0;
}

uint64_t vu_frontend_protocol_features(VuFrontend *fe) {
        return fe ? fe->protocol_features : 0;
}

uint64_t vu_frontend_features(VuFrontend *fe) {
        return fe ? fe->features : 0;
}

uint64_t vu_frontend_queue_num(VuFrontend *fe) {
        return fe ? fe->queue_num : 0;
}

uint64_t vu_frontend_max_mem_slots(VuFrontend *fe) {
        return fe ? fe->max_mem_slots : 0;
}

/* ---- QEMU's sequences -------------------------------------------------------------------------------- */

int vu_frontend_init(VuFrontend *fe) {
        uint64_t f, pf = 0;
        int r;

        if (!fe)
                return -EINVAL;
        if (fe->inited)
                return -EBUSY;

        r = msg_get_u64(fe, VHOST_USER_GET_FEATURES, &f);
        if (r < 0)
                return r;
        fe->offered_features = f;
        if (!(f & BIT_ULL(VIRTIO_F_VERSION_1)))
                return log_debug_errno(-EOPNOTSUPP, "vhost-user frontend: backend does not offer VERSION_1");

        if (f & BIT_ULL(VHOST_USER_F_PROTOCOL_FEATURES)) {
                r = msg_get_u64(fe, VHOST_USER_GET_PROTOCOL_FEATURES, &pf);
                if (r < 0)
                        return r;
                fe->offered_protocol_features = pf;
                if (fe->opts.config_size > 0 && !(pf & BIT_ULL(VHOST_USER_PROTOCOL_F_CONFIG)))
                        return log_debug_errno(-EOPNOTSUPP,
                                               "vhost-user frontend: config_size set, backend lacks CONFIG");
                pf &= fe->opts.protocol_features & PROTOCOL_FEATURES_KNOWN;
                if (fe->opts.config_size == 0)
                        pf &= ~BIT_ULL(VHOST_USER_PROTOCOL_F_CONFIG);
                /* Sent without NEED_REPLY, as QEMU does: REPLY_ACK is only in force afterwards. */
                r = msg_set_u64(fe, VHOST_USER_SET_PROTOCOL_FEATURES, pf, NULL);
                if (r < 0)
                        return r;
                fe->protocol_features = pf;
        } else if (fe->opts.config_size > 0)
                return log_debug_errno(
                        -EOPNOTSUPP,
                        "vhost-user frontend: config_size set, backend lacks protocol features");

        if (pf & BIT_ULL(VHOST_USER_PROTOCOL_F_MQ)) {
                r = msg_get_u64(fe, VHOST_USER_GET_QUEUE_NUM, &fe->queue_num);
                if (r < 0)
                        return r;
                if (fe->queue_num < fe->opts.num_queues)
                        return log_debug_errno(-EOPNOTSUPP,
                                               "vhost-user frontend: backend has %" PRIu64
                                               " queues, need %u",
                                               fe->queue_num, fe->opts.num_queues);
        }
        if (pf & BIT_ULL(VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS)) {
                r = msg_get_u64(fe, VHOST_USER_GET_MAX_MEM_SLOTS, &fe->max_mem_slots);
                if (r < 0)
                        return r;
                if (fe->max_mem_slots < 1)
                        return log_debug_errno(-EOPNOTSUPP,
                                               "vhost-user frontend: backend has no memory slot");
        }

        r = vu_frontend_message(fe, VHOST_USER_SET_OWNER, NULL, 0, NULL, 0, NULL, 0);
        if (r < 0)
                return r;
        r = msg_get_u64(fe, VHOST_USER_GET_FEATURES, &f);
        if (r < 0)
                return r;
        if (f != fe->offered_features)
                return log_debug_errno(-EPROTO,
                                       "vhost-user frontend: GET_FEATURES changed from 0x%" PRIx64
                                       " to 0x%" PRIx64,
                                       fe->offered_features, f);

        for (unsigned i = 0; i < fe->opts.num_queues; i++) {
                r = msg_vring_fd(fe, VHOST_USER_SET_VRING_CALL, i, fe->queues[i].masked_call_fd);
                if (r < 0)
                        return r;
                r = msg_vring_fd(fe, VHOST_USER_SET_VRING_ERR, i, fe->queues[i].err_fd);
                if (r < 0)
                        return r;
        }
        fe->inited = true;
        return 0;
}

static int send_memory(VuFrontend *fe) {
        struct vhost_user_mem_region region = {
                .guest_phys_addr = htole64(fe->mem.gpa),
                .memory_size = htole64(fe->mem.size),
                .user_addr = htole64(fe->mem.user_addr),
                .mmap_offset = htole64(fe->mem.mmap_offset),
        };
        int r;

        if (fe->protocol_features & BIT_ULL(VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS)) {
                struct vhost_user_mem_reg_msg m = { .region = region };

                /* QEMU sends the difference to what it sent before on this connection. */
                if (fe->region_added)
                        return 0;
                r = vu_frontend_message(fe, VHOST_USER_ADD_MEM_REG, &m, sizeof(m), &fe->mem.fd, 1, NULL, 0);
                if (r < 0)
                        return r;
                fe->region_added = true;
                return 0;
        }

        struct {
                struct vhost_user_mem_table_hdr hdr;
                struct vhost_user_mem_region region;
        } t = { .hdr.nregions = htole32(1), .region = region };
        _Static_assert(sizeof(t) == 40, "wire layout");

        return vu_frontend_message(fe, VHOST_USER_SET_MEM_TABLE, &t, sizeof(t), &fe->mem.fd, 1, NULL, 0);
}

static uint64_t wanted_features(VuFrontend *fe) {
        uint64_t off = fe->offered_features, f = BIT_ULL(VIRTIO_F_VERSION_1);

        f |= off & BIT_ULL(VHOST_USER_F_PROTOCOL_FEATURES);
        if (fe->opts.indirect_desc)
                f |= off & BIT_ULL(VIRTIO_RING_F_INDIRECT_DESC);
        if (fe->opts.event_idx)
                f |= off & BIT_ULL(VIRTIO_RING_F_EVENT_IDX);
        f |= off & fe->opts.device_features & DEVICE_FEATURES_MASK;
        return f;
}

static int start_rings(VuFrontend *fe) {
        bool enable_msgs = fe->offered_features & BIT_ULL(VHOST_USER_F_PROTOCOL_FEATURES);
        uint64_t f = wanted_features(fe);
        int r;

        r = msg_set_u64(fe, VHOST_USER_SET_FEATURES, f, NULL);
        if (r < 0)
                return r;
        fe->features = f;

        r = send_memory(fe);
        if (r < 0)
                return r;

        for (unsigned i = 0; i < fe->opts.num_queues; i++) {
                Queue *q = &fe->queues[i];
                struct vhost_user_vring_addr a = {
                        .index = htole32(i),
                        .desc_user_addr = htole64(vu_frontend_gpa_to_uaddr(fe, q->desc_gpa)),
                        .used_user_addr = htole64(vu_frontend_gpa_to_uaddr(fe, q->used_gpa)),
                        .avail_user_addr = htole64(vu_frontend_gpa_to_uaddr(fe, q->avail_gpa)),
                        .log_guest_addr = htole64(q->used_gpa),
                };

                if ((r = msg_vring_state(fe, VHOST_USER_SET_VRING_NUM, i, q->num)) < 0 ||
                    (r = msg_vring_state(fe, VHOST_USER_SET_VRING_BASE, i, q->base)) < 0 ||
                    (r = vu_frontend_message(fe, VHOST_USER_SET_VRING_ADDR, &a, sizeof(a), NULL, 0, NULL,
                                             0)) < 0 ||
                    (r = msg_vring_fd(fe, VHOST_USER_SET_VRING_KICK, i, q->kick_fd)) < 0 ||
                    (r = msg_vring_fd(fe, VHOST_USER_SET_VRING_CALL, i, q->call_fd)) < 0)
                        return r;
        }
        if (enable_msgs)
                for (unsigned i = 0; i < fe->opts.num_queues; i++) {
                        r = msg_vring_state(fe, VHOST_USER_SET_VRING_ENABLE, i, 1);
                        if (r < 0)
                                return r;
                        r = barrier(fe);
                        if (r < 0)
                                return r;
                }
        /* vub_start unmasks every queue once more. */
        for (unsigned i = 0; i < fe->opts.num_queues; i++) {
                r = msg_vring_fd(fe, VHOST_USER_SET_VRING_CALL, i, fe->queues[i].call_fd);
                if (r < 0)
                        return r;
        }
        fe->running = true;
        return 0;
}

int vu_frontend_start(VuFrontend *fe) {
        int r;

        if (!fe)
                return -EINVAL;
        if (fe->running)
                return -EBUSY;
        if (!fe->inited) {
                r = vu_frontend_init(fe);
                if (r < 0)
                        return r;
        }
        if (fe->opts.config_size > 0) {
                uint8_t cfg[VHOST_USER_MAX_CONFIG_SIZE];

                r = vu_frontend_get_config(fe, 0, cfg, fe->opts.config_size);
                if (r < 0)
                        return r;
        }
        return start_rings(fe);
}

int vu_frontend_stop(VuFrontend *fe, uint16_t *ret_bases) {
        uint16_t bases[FRONTEND_MAX_QUEUES];
        int r;

        if (!fe)
                return -EINVAL;
        if (!fe->running)
                return -EBUSY;

        if (fe->offered_features & BIT_ULL(VHOST_USER_F_PROTOCOL_FEATURES))
                for (unsigned i = 0; i < fe->opts.num_queues; i++) {
                        r = msg_vring_state(fe, VHOST_USER_SET_VRING_ENABLE, i, 0);
                        if (r < 0)
                                return r;
                        r = barrier(fe);
                        if (r < 0)
                                return r;
                }

        for (unsigned i = 0; i < fe->opts.num_queues; i++) {
                Queue *q = &fe->queues[i];
                struct vhost_user_vring_state s = { .index = htole32(i) };
                uint16_t used_idx;

                r = vu_frontend_message(fe, VHOST_USER_GET_VRING_BASE, &s, sizeof(s), NULL, 0, &s,
                                        sizeof(s));
                if (r < 0)
                        return r;
                if (le32toh(s.index) != i || le32toh(s.num) > UINT16_MAX)
                        return log_debug_errno(-EPROTO,
                                               "vhost-user frontend: GET_VRING_BASE(%u) answered {%u, %u}",
                                               i, le32toh(s.index), le32toh(s.num));
                /* The backend cannot have consumed what was never made available, nor less than it
                 * completed: used->idx <= base <= avail->idx, modulo 2^16. */
                used_idx = le16toh(__atomic_load_n(&q->used[1], __ATOMIC_ACQUIRE));
                if ((uint16_t) (q->avail_idx - le32toh(s.num)) > (uint16_t) (q->avail_idx - used_idx))
                        return log_debug_errno(
                                -EPROTO, "vhost-user frontend: GET_VRING_BASE(%u) = %u outside [%u, %u]", i,
                                le32toh(s.num), used_idx, q->avail_idx);
                bases[i] = (uint16_t) le32toh(s.num);
        }
        for (unsigned i = 0; i < fe->opts.num_queues; i++)
                fe->queues[i].base = bases[i];

        /* vub_stop tears the guest notifiers down: QEMU's masked call fd again. */
        fe->running = false;
        for (unsigned i = 0; i < fe->opts.num_queues; i++) {
                r = msg_vring_fd(fe, VHOST_USER_SET_VRING_CALL, i, fe->queues[i].masked_call_fd);
                if (r < 0)
                        return r;
        }
        if (ret_bases)
                memcpy(ret_bases, bases, fe->opts.num_queues * sizeof(*bases));
        return 0;
}

int vu_frontend_resume(VuFrontend *fe) {
        if (!fe)
                return -EINVAL;
        if (!fe->inited || fe->running)
                return -EBUSY;
        return start_rings(fe);
}

int vu_frontend_reset_rings(VuFrontend *fe) {
        int r;

        if (!fe)
                return -EINVAL;
        if (!fe->inited)
                return -EBUSY;
        if (fe->running) {
                r = vu_frontend_stop(fe, NULL);
                if (r < 0)
                        return r;
        }
        for (unsigned i = 0; i < fe->opts.num_queues; i++) {
                r = queue_reset_ring(fe, i);
                if (r < 0)
                        return r;
        }
        return start_rings(fe);
}

int vu_frontend_reset_device(VuFrontend *fe) {
        int r;

        if (!fe)
                return -EINVAL;
        if (!(fe->protocol_features & BIT_ULL(VHOST_USER_PROTOCOL_F_RESET_DEVICE)))
                return -EOPNOTSUPP;
        r = vu_frontend_message(fe, VHOST_USER_RESET_DEVICE, NULL, 0, NULL, 0, NULL, 0);
        if (r < 0)
                return r;
        fe->running = false;
        return 0;
}

/* ---- config ------------------------------------------------------------------------------------------ */

int vu_frontend_get_config(VuFrontend *fe, uint32_t offset, void *buf, uint32_t size) {
        struct {
                struct vhost_user_config_hdr hdr;
                uint8_t data[VHOST_USER_MAX_CONFIG_SIZE];
        } req = {}, rep;
        int r;

        if (!fe || (size > 0 && !buf) || size > VHOST_USER_MAX_CONFIG_SIZE)
                return -EINVAL;
        if (!(fe->protocol_features & BIT_ULL(VHOST_USER_PROTOCOL_F_CONFIG)))
                return -EOPNOTSUPP;
        req.hdr.offset = htole32(offset);
        req.hdr.size = htole32(size);
        /* QEMU sends the whole structure, data zeroed, and expects it back filled in. */
        r = vu_frontend_message(fe, VHOST_USER_GET_CONFIG, &req, sizeof(req.hdr) + size, NULL, 0, &rep,
                                sizeof(rep.hdr) + size);
        if (r < 0)
                return r;
        if (le32toh(rep.hdr.offset) != offset || le32toh(rep.hdr.size) != size)
                return log_debug_errno(-EPROTO,
                                       "vhost-user frontend: GET_CONFIG reply for offset %u size %u",
                                       le32toh(rep.hdr.offset), le32toh(rep.hdr.size));
        if (size > 0)
                memcpy(buf, rep.data, size);
        return 0;
}

int vu_frontend_set_config(VuFrontend *fe, uint32_t offset, const void *buf, uint32_t size) {
        struct {
                struct vhost_user_config_hdr hdr;
                uint8_t data[VHOST_USER_MAX_CONFIG_SIZE];
        } req = {};

        if (!fe || (size > 0 && !buf) || size > VHOST_USER_MAX_CONFIG_SIZE)
                return -EINVAL;
        if (!(fe->protocol_features & BIT_ULL(VHOST_USER_PROTOCOL_F_CONFIG)))
                return -EOPNOTSUPP;
        req.hdr.offset = htole32(offset);
        req.hdr.size = htole32(size);
        if (size > 0)
                memcpy(req.data, buf, size);
        return vu_frontend_message(fe, VHOST_USER_SET_CONFIG, &req, sizeof(req.hdr) + size, NULL, 0, NULL,
                                   0);
}
