/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Unit tests of the frontend library (service/frontend/) without the real transport: the other end of
 * a socketpair is a small scripted backend run from the library's pump hook in this thread. It logs
 * every message, answers like a backend, maps guest memory from the fd it receives and translates ring
 * addresses through the announced user address (never our pointer), and can run an "echo" device on the
 * rings, so that the wire encoding, the message order, the strict reply checks and the ring layout are
 * all checked from the backend's side.
 */
#include <endian.h>
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/macro.h"
#include "frontend/frontend.h"
#include "vhost/vhost-user-proto.h"

#define LOG_MAX 256
#define FAKE_CONFIG_SIZE 44

typedef enum Misbehave {
        MB_NONE,
        MB_BAD_FLAGS,
        MB_BAD_ID,
        MB_BAD_SIZE,
        MB_WITH_FD,
        MB_HANGUP,
        MB_SILENT,
        MB_NACK,
        MB_BAD_BASE,
        MB_FEATURES_CHANGE,
} Misbehave;

typedef struct FakeVq {
        unsigned num;
        uint64_t desc_ua, avail_ua, used_ua;
        uint16_t base, last_avail, used_idx;
        int kick, call, err;
        bool enabled;
} FakeVq;

typedef struct Fake {
        int sock;
        uint64_t features, protocol_features, acked_protocol;
        struct {
                uint32_t request, flags, size;
                unsigned n_fds;
                uint64_t u64; /* first 8 payload bytes */
        } log[LOG_MAX];
        unsigned n_log;

        void *map;
        size_t map_len;
        uint64_t gpa, size, uaddr, mmap_offset;
        FakeVq vq[2];
        uint8_t config[FAKE_CONFIG_SIZE];

        bool echo;    /* run the echo device from the pump */
        bool reverse; /* complete everything available in reverse order */
        Misbehave mb;
        uint32_t mb_request; /* the request the misbehaviour applies to */
} Fake;

static Fake *fake_new(uint64_t features, uint64_t protocol_features) {
        Fake *f = calloc(1, sizeof(*f));

        assert_non_null(f);
        f->sock = -EBADF;
        f->features = features;
        f->protocol_features = protocol_features;
        for (unsigned i = 0; i < 2; i++)
                f->vq[i].kick = f->vq[i].call = f->vq[i].err = -EBADF;
        for (unsigned i = 0; i < FAKE_CONFIG_SIZE; i++)
                f->config[i] = (uint8_t) (0xa0 + i);
        return f;
}

static void fake_free(Fake *f) {
        safe_close(f->sock);
        for (unsigned i = 0; i < 2; i++) {
                safe_close(f->vq[i].kick);
                safe_close(f->vq[i].call);
                safe_close(f->vq[i].err);
        }
        if (f->map)
                munmap(f->map, f->map_len);
        free(f);
}

static void *fake_ua(Fake *f, uint64_t ua, uint64_t len) {
        assert_true(ua >= f->uaddr && ua + len <= f->uaddr + f->size);
        return (uint8_t *) f->map + f->mmap_offset + (ua - f->uaddr);
}

static void *fake_gpa(Fake *f, uint64_t gpa, uint64_t len) {
        assert_true(gpa >= f->gpa && gpa + len <= f->gpa + f->size);
        return (uint8_t *) f->map + f->mmap_offset + (gpa - f->gpa);
}

static void
fake_send(Fake *f, uint32_t request, uint32_t flags, const void *payload, uint32_t size, int fd) {
        uint8_t buf[12 + 512];
        union {
                struct cmsghdr align;
                char b[CMSG_SPACE(sizeof(int))];
        } control = {};
        struct iovec iov = { .iov_base = buf, .iov_len = 12 + size };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

        assert_true(size <= 512);
        memcpy(buf, &request, 4);
        memcpy(buf + 4, &flags, 4);
        memcpy(buf + 8, &size, 4);
        if (size)
                memcpy(buf + 12, payload, size);
        if (fd >= 0) {
                struct cmsghdr *c;

                mh.msg_control = &control;
                mh.msg_controllen = sizeof(control);
                c = CMSG_FIRSTHDR(&mh);
                c->cmsg_level = SOL_SOCKET;
                c->cmsg_type = SCM_RIGHTS;
                c->cmsg_len = CMSG_LEN(sizeof(int));
                memcpy(CMSG_DATA(c), &fd, sizeof(int));
        }
        assert_int_equal(sendmsg(f->sock, &mh, MSG_NOSIGNAL), (ssize_t) (12 + size));
}

/* A reply, possibly spoilt as the test asked. Returns false when the fake hung up instead. */
static bool fake_reply(Fake *f, uint32_t request, const void *payload, uint32_t size) {
        uint32_t flags = VHOST_USER_REPLY_FLAGS;
        uint64_t nack = 1;

        if (f->mb != MB_NONE && f->mb_request == request) {
                switch (f->mb) {
                case MB_BAD_FLAGS:
                        flags |= VHOST_USER_NEED_REPLY_MASK;
                        break;
                case MB_BAD_ID:
                        request += 1;
                        break;
                case MB_BAD_SIZE:
                        size -= 1;
                        break;
                case MB_WITH_FD:
                        fake_send(f, request, flags, payload, size, STDERR_FILENO);
                        return true;
                case MB_HANGUP:
                        f->sock = safe_close(f->sock);
                        return false;
                case MB_SILENT:
                        return true;
                case MB_NACK:
                        payload = &nack;
                        break;
                default:
                        break;
                }
        }
        fake_send(f, request, flags, payload, size, -EBADF);
        return true;
}

static void fake_ack(Fake *f, uint32_t request, uint32_t flags) {
        uint64_t zero = 0;

        if (flags & VHOST_USER_NEED_REPLY_MASK)
                (void) fake_reply(f, request, &zero, sizeof(zero));
}

static void fake_map(Fake *f, const struct vhost_user_mem_region *r, int fd) {
        struct stat st;

        assert_true(fd >= 0);
        assert_int_equal(fstat(fd, &st), 0);
        assert_true((uint64_t) st.st_size >= r->mmap_offset + r->memory_size);
        if (f->map)
                munmap(f->map, f->map_len);
        f->map_len = r->mmap_offset + r->memory_size;
        f->map = mmap(NULL, f->map_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        assert_true(f->map != MAP_FAILED);
        f->gpa = r->guest_phys_addr;
        f->size = r->memory_size;
        f->uaddr = r->user_addr;
        f->mmap_offset = r->mmap_offset;
        close(fd);
}

static void fake_set_fd(int *slot, uint64_t v, int fd) {
        safe_close(*slot);
        *slot = (v & VHOST_USER_VRING_NOFD_MASK) ? -EBADF : fd;
}

/* Handles one message; false when there was none or the fake hung up. */
static bool fake_step(Fake *f) {
        struct pollfd p = { .fd = f->sock, .events = POLLIN };
        union {
                struct cmsghdr align;
                char b[CMSG_SPACE(8 * sizeof(int))];
        } control;
        uint32_t h[3];
        uint8_t payload[4096];
        struct iovec iov = { .iov_base = h, .iov_len = sizeof(h) };
        struct msghdr mh = {
                .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &control, .msg_controllen = sizeof(control)
        };
        int fds[8], n_fds = 0;
        uint64_t v = 0;
        ssize_t k;

        if (f->sock < 0 || poll(&p, 1, 0) <= 0)
                return false;
        k = recvmsg(f->sock, &mh, MSG_CMSG_CLOEXEC);
        if (k == 0) {
                f->sock = safe_close(f->sock);
                return false;
        }
        assert_int_equal(k, 12);
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
                n_fds = (int) ((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
                memcpy(fds, CMSG_DATA(c), n_fds * sizeof(int));
        }
        assert_true(h[2] <= sizeof(payload));
        if (h[2] > 0)
                assert_int_equal(recv(f->sock, payload, h[2], MSG_WAITALL), (ssize_t) h[2]);
        if (h[2] >= 8)
                memcpy(&v, payload, 8);

        assert_true(f->n_log < LOG_MAX);
        f->log[f->n_log++] = (typeof(f->log[0])){ h[0], h[1], h[2], (unsigned) n_fds, v };

        switch (h[0]) {
        case VHOST_USER_GET_FEATURES: {
                uint64_t feat = f->features;

                if (f->mb == MB_FEATURES_CHANGE && f->n_log > 1)
                        feat &= ~BIT_ULL(VIRTIO_RING_F_INDIRECT_DESC);
                (void) fake_reply(f, h[0], &feat, 8);
                break;
        }
        case VHOST_USER_GET_PROTOCOL_FEATURES:
                (void) fake_reply(f, h[0], &f->protocol_features, 8);
                break;
        case VHOST_USER_SET_PROTOCOL_FEATURES:
                f->acked_protocol = v;
                break;
        case VHOST_USER_GET_QUEUE_NUM: {
                uint64_t two = 2;
                (void) fake_reply(f, h[0], &two, 8);
                break;
        }
        case VHOST_USER_GET_MAX_MEM_SLOTS: {
                uint64_t slots = 509;
                (void) fake_reply(f, h[0], &slots, 8);
                break;
        }
        case VHOST_USER_SET_MEM_TABLE: {
                struct vhost_user_mem_region r;

                assert_int_equal(h[2], 40);
                assert_int_equal(n_fds, 1);
                memcpy(&r, payload + 8, sizeof(r));
                fake_map(f, &r, fds[0]);
                fake_ack(f, h[0], h[1]);
                break;
        }
        case VHOST_USER_ADD_MEM_REG: {
                struct vhost_user_mem_reg_msg m;

                assert_int_equal(h[2], 40);
                assert_int_equal(n_fds, 1);
                memcpy(&m, payload, sizeof(m));
                fake_map(f, &m.region, fds[0]);
                fake_ack(f, h[0], h[1]);
                break;
        }
        case VHOST_USER_SET_VRING_NUM:
        case VHOST_USER_SET_VRING_BASE:
        case VHOST_USER_SET_VRING_ENABLE: {
                struct vhost_user_vring_state s;

                memcpy(&s, payload, sizeof(s));
                assert_true(s.index < 2);
                if (h[0] == VHOST_USER_SET_VRING_NUM)
                        f->vq[s.index].num = s.num;
                else if (h[0] == VHOST_USER_SET_VRING_BASE)
                        f->vq[s.index].base = f->vq[s.index].last_avail = (uint16_t) s.num;
                else
                        f->vq[s.index].enabled = s.num;
                fake_ack(f, h[0], h[1]);
                break;
        }
        case VHOST_USER_SET_VRING_ADDR: {
                struct vhost_user_vring_addr a;

                memcpy(&a, payload, sizeof(a));
                assert_true(a.index < 2);
                f->vq[a.index].desc_ua = a.desc_user_addr;
                f->vq[a.index].avail_ua = a.avail_user_addr;
                f->vq[a.index].used_ua = a.used_user_addr;
                fake_ack(f, h[0], h[1]);
                break;
        }
        case VHOST_USER_GET_VRING_BASE: {
                struct vhost_user_vring_state s;

                memcpy(&s, payload, sizeof(s));
                assert_true(s.index < 2);
                f->vq[s.index].enabled = false;
                s.num = f->vq[s.index].last_avail;
                if (f->mb == MB_BAD_BASE)
                        s.num += 1;
                (void) fake_reply(f, h[0], &s, sizeof(s));
                break;
        }
        case VHOST_USER_SET_VRING_KICK:
        case VHOST_USER_SET_VRING_CALL:
        case VHOST_USER_SET_VRING_ERR: {
                unsigned i = v & VHOST_USER_VRING_IDX_MASK;

                assert_true(i < 2);
                assert_int_equal(n_fds, (v & VHOST_USER_VRING_NOFD_MASK) ? 0 : 1);
                fake_set_fd(h[0] == VHOST_USER_SET_VRING_KICK   ? &f->vq[i].kick
                            : h[0] == VHOST_USER_SET_VRING_CALL ? &f->vq[i].call
                                                                : &f->vq[i].err,
                            v, n_fds ? fds[0] : -EBADF);
                /* The ring starts at SET_VRING_KICK: take the used index from guest memory. */
                if (h[0] == VHOST_USER_SET_VRING_KICK && f->map) {
                        uint16_t *used = fake_ua(f, f->vq[i].used_ua, 6 + 8ULL * f->vq[i].num);

                        f->vq[i].used_idx = le16toh(used[1]);
                }
                fake_ack(f, h[0], h[1]);
                break;
        }
        case VHOST_USER_GET_CONFIG: {
                struct vhost_user_config_hdr c;
                uint8_t rep[12 + VHOST_USER_MAX_CONFIG_SIZE];

                memcpy(&c, payload, sizeof(c));
                assert_int_equal(h[2], 12 + c.size);
                assert_true(c.offset + c.size <= FAKE_CONFIG_SIZE);
                memcpy(rep, &c, sizeof(c));
                memcpy(rep + 12, f->config + c.offset, c.size);
                (void) fake_reply(f, h[0], rep, 12 + c.size);
                break;
        }
        case VHOST_USER_SET_CONFIG: {
                struct vhost_user_config_hdr c;

                memcpy(&c, payload, sizeof(c));
                assert_true(c.offset + c.size <= FAKE_CONFIG_SIZE);
                memcpy(f->config + c.offset, payload + 12, c.size);
                fake_ack(f, h[0], h[1]);
                break;
        }
        default:
                for (int i = 0; i < n_fds; i++)
                        close(fds[i]);
                fake_ack(f, h[0], h[1]);
                break;
        }
        return true;
}

typedef struct Chain {
        uint16_t head;
        uint8_t rd[4096];
        size_t rd_len;
        struct {
                uint8_t *p;
                uint32_t len;
        } wr[64];
        unsigned n_wr;
} Chain;

static void fake_walk(Fake *f, FakeVq *vq, uint16_t head, Chain *c) {
        struct vring_desc *table = fake_ua(f, vq->desc_ua, 16ULL * vq->num);
        unsigned n = vq->num;
        uint16_t i = head;

        c->head = head;
        c->rd_len = 0;
        c->n_wr = 0;
        if (le16toh(table[head].flags) & VRING_DESC_F_INDIRECT) {
                assert_int_equal(le32toh(table[head].len) % 16, 0);
                n = le32toh(table[head].len) / 16;
                table = fake_gpa(f, le64toh(table[head].addr), le32toh(table[head].len));
                i = 0;
        }
        for (unsigned steps = 0;; steps++) {
                struct vring_desc d = table[i];
                uint16_t fl = le16toh(d.flags);

                assert_true(steps < n);
                assert_false(fl & VRING_DESC_F_INDIRECT);
                if (fl & VRING_DESC_F_WRITE) {
                        assert_true(c->n_wr < 64);
                        c->wr[c->n_wr].p = fake_gpa(f, le64toh(d.addr), le32toh(d.len));
                        c->wr[c->n_wr++].len = le32toh(d.len);
                } else {
                        assert_int_equal(c->n_wr, 0);
                        assert_true(c->rd_len + le32toh(d.len) <= sizeof(c->rd));
                        memcpy(c->rd + c->rd_len, fake_gpa(f, le64toh(d.addr), le32toh(d.len)),
                               le32toh(d.len));
                        c->rd_len += le32toh(d.len);
                }
                if (!(fl & VRING_DESC_F_NEXT))
                        break;
                i = le16toh(d.next);
                assert_true(i < n);
        }
}

static void fake_push(Fake *f, FakeVq *vq, uint16_t head, uint32_t len) {
        uint16_t *used = fake_ua(f, vq->used_ua, 6 + 8ULL * vq->num);
        struct vring_used_elem *e = (struct vring_used_elem *) (used + 2);

        e[vq->used_idx % vq->num] = (struct vring_used_elem){ htole32(head), htole32(len) };
        vq->used_idx++;
        __atomic_store_n(&used[1], htole16(vq->used_idx), __ATOMIC_RELEASE);
}

static void fake_notify(Fake *f, FakeVq *vq) {
        uint64_t one = 1;

        if (vq->call >= 0)
                assert_int_equal(write(vq->call, &one, 8), 8);
}

/* The echo device: copies readable bytes to the writable segments, pushes the written length. */
static bool fake_echo(Fake *f, unsigned qi) {
        FakeVq *vq = &f->vq[qi];
        static Chain chains[64];
        unsigned n = 0;
        uint16_t *avail, avail_idx;

        if (!f->map || !vq->enabled || vq->kick < 0 || vq->num == 0)
                return false;
        avail = fake_ua(f, vq->avail_ua, 6 + 2ULL * vq->num);
        avail_idx = le16toh(__atomic_load_n(&avail[1], __ATOMIC_ACQUIRE));
        while (vq->last_avail != avail_idx && n < 64) {
                uint16_t head = le16toh(avail[2 + vq->last_avail % vq->num]);

                fake_walk(f, vq, head, &chains[n++]);
                vq->last_avail++;
        }
        for (unsigned k = 0; k < n; k++) {
                Chain *c = &chains[f->reverse ? n - 1 - k : k];
                size_t off = 0;

                for (unsigned w = 0; w < c->n_wr && off < c->rd_len; w++) {
                        size_t step = MIN((size_t) c->wr[w].len, c->rd_len - off);

                        memcpy(c->wr[w].p, c->rd + off, step);
                        off += step;
                }
                fake_push(f, vq, c->head, (uint32_t) off);
        }
        if (n > 0)
                fake_notify(f, vq);
        return n > 0;
}

static int fake_pump(void *userdata) {
        Fake *f = userdata;
        bool progress = fake_step(f);

        if (f->echo)
                for (unsigned i = 0; i < 2; i++)
                        progress |= fake_echo(f, i);
        return progress;
}

typedef struct Ctx {
        Fake *fake;
        VuFrontend *fe;
        VuFrontendOptions o;
} Ctx;

#define ALL_FEATURES                                                             \
        (BIT_ULL(VIRTIO_F_VERSION_1) | BIT_ULL(VHOST_USER_F_PROTOCOL_FEATURES) | \
         BIT_ULL(VIRTIO_RING_F_INDIRECT_DESC) | BIT_ULL(VIRTIO_RING_F_EVENT_IDX) | BIT_ULL(0) | BIT_ULL(5))
#define ALL_PROTOCOL                                                                                  \
        (BIT_ULL(VHOST_USER_PROTOCOL_F_MQ) | BIT_ULL(VHOST_USER_PROTOCOL_F_REPLY_ACK) |               \
         BIT_ULL(VHOST_USER_PROTOCOL_F_CONFIG) | BIT_ULL(VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS) | \
         BIT_ULL(5) /* BACKEND_REQ: never acked by us */)

static Ctx *ctx_new_with(uint64_t features, uint64_t protocol, void (*tweak)(VuFrontendOptions *o)) {
        Ctx *c = calloc(1, sizeof(*c));
        int sv[2];

        assert_non_null(c);
        c->fake = fake_new(features, protocol);
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        c->fake->sock = sv[1];
        vu_frontend_options_init(&c->o);
        c->o.queue_size = 16;
        c->o.config_size = FAKE_CONFIG_SIZE;
        c->o.device_features = BIT_ULL(0);
        c->o.timeout_ms = 2000;
        c->o.pump = fake_pump;
        c->o.pump_userdata = c->fake;
        if (tweak)
                tweak(&c->o);
        assert_int_equal(vu_frontend_new_from_fd(&c->o, sv[0], &c->fe), 0);
        return c;
}

static Ctx *ctx_new(void) {
        return ctx_new_with(ALL_FEATURES, ALL_PROTOCOL, NULL);
}

static void ctx_free(Ctx *c) {
        vu_frontend_free(c->fe);
        fake_free(c->fake);
        free(c);
}

static void assert_log(Fake *f, unsigned *at, uint32_t request, bool need_reply, unsigned n_fds) {
        assert_true(*at < f->n_log);
        if (f->log[*at].request != request)
                fail_msg("message %u: request %u, expected %u", *at, f->log[*at].request, request);
        assert_int_equal(f->log[*at].flags,
                         VHOST_USER_VERSION | (need_reply ? VHOST_USER_NEED_REPLY_MASK : 0));
        assert_int_equal(f->log[*at].n_fds, n_fds);
        (*at)++;
}

/* ---- guest memory ---------------------------------------------------------------------------------- */

static void test_mem_alloc_aligns_and_coalesces(void **state) {
        Ctx *c = ctx_new();
        uint64_t before = vu_frontend_mem_available(c->fe), g[6];
        const uint64_t sizes[6] = { 1, 100, 4096, 5000, 17, 65536 };
        const uint64_t aligns[6] = { 0, 8, 4096, 64, 2, 65536 };

        for (unsigned i = 0; i < 6; i++) {
                uint8_t *p;

                assert_int_equal(vu_frontend_mem_alloc(c->fe, sizes[i], aligns[i], &g[i]), 0);
                assert_int_equal(g[i] % (aligns[i] ? aligns[i] : 16), 0);
                p = vu_frontend_gpa_to_ptr(c->fe, g[i], sizes[i]);
                assert_non_null(p);
                for (uint64_t b = 0; b < sizes[i]; b++)
                        assert_int_equal(p[b], 0);
                memset(p, 0xff, sizes[i]);
                for (unsigned j = 0; j < i; j++) /* no overlap */
                        assert_true(g[i] + sizes[i] <= g[j] || g[j] + sizes[j] <= g[i]);
        }
        assert_true(vu_frontend_mem_available(c->fe) <= before - 1 - 100 - 4096 - 5000 - 17 - 65536);

        /* Free in an order that needs merging on both sides. */
        assert_int_equal(vu_frontend_mem_free(c->fe, g[1]), 0);
        assert_int_equal(vu_frontend_mem_free(c->fe, g[1]), -EINVAL);     /* double free */
        assert_int_equal(vu_frontend_mem_free(c->fe, g[3] + 1), -EINVAL); /* not an allocation */
        assert_int_equal(vu_frontend_mem_free(c->fe, g[5]), 0);
        assert_int_equal(vu_frontend_mem_free(c->fe, g[0]), 0);
        assert_int_equal(vu_frontend_mem_free(c->fe, g[3]), 0);
        assert_int_equal(vu_frontend_mem_free(c->fe, g[2]), 0);
        assert_int_equal(vu_frontend_mem_free(c->fe, g[4]), 0);
        assert_int_equal(vu_frontend_mem_available(c->fe), before);

        /* The whole free space is usable again in one piece once everything but the rings is freed. */
        assert_int_equal(vu_frontend_mem_alloc(c->fe, 8 * 1024 * 1024, 4096, &g[0]), 0);
        assert_int_equal(vu_frontend_mem_alloc(c->fe, 64ULL * 1024 * 1024, 0, &g[1]), -ENOSPC);
        assert_int_equal(vu_frontend_mem_alloc(c->fe, 16, 3, &g[1]), -EINVAL);
        assert_int_equal(vu_frontend_mem_alloc(c->fe, 0, 0, &g[1]), -EINVAL);
        assert_int_equal(vu_frontend_mem_free(c->fe, g[0]), 0);
        assert_int_equal(vu_frontend_mem_available(c->fe), before);
        ctx_free(c);
}

static void test_mem_translation_keeps_spaces_apart(void **state) {
        Ctx *c = ctx_new();
        uint64_t gpa = vu_frontend_mem_gpa(c->fe), size = vu_frontend_mem_size(c->fe);
        uint8_t *base = vu_frontend_gpa_to_ptr(c->fe, gpa, 1);

        assert_int_equal(gpa, 0x40000000);
        assert_int_equal(size, 16 * 1024 * 1024);
        assert_non_null(base);
        assert_true(vu_frontend_mem_user_addr(c->fe) != gpa);
        assert_true(vu_frontend_mem_user_addr(c->fe) != (uint64_t) (uintptr_t) base);
        assert_int_equal(vu_frontend_gpa_to_uaddr(c->fe, gpa + 0x123),
                         vu_frontend_mem_user_addr(c->fe) + 0x123);
        assert_ptr_equal(vu_frontend_gpa_to_ptr(c->fe, gpa + size - 4, 4), base + size - 4);
        assert_null(vu_frontend_gpa_to_ptr(c->fe, gpa + size - 4, 5));
        assert_null(vu_frontend_gpa_to_ptr(c->fe, gpa - 1, 1));
        assert_null(vu_frontend_gpa_to_ptr(c->fe, UINT64_MAX, 2));
        assert_int_equal(vu_frontend_ptr_to_gpa(c->fe, base + 77), gpa + 77);
        assert_int_equal(vu_frontend_ptr_to_gpa(c->fe, base + size), 0);
        assert_int_equal(vu_frontend_ptr_to_gpa(c->fe, &gpa), 0);
        ctx_free(c);
}

static void test_options_rejected(void **state) {
        VuFrontendOptions o;
        VuFrontend *fe = NULL;
        int sv[2];

        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        vu_frontend_options_init(&o);
        o.queue_size = 100;
        assert_int_equal(vu_frontend_new_from_fd(&o, sv[0], &fe), -EINVAL);
        vu_frontend_options_init(&o);
        o.num_queues = 9;
        assert_int_equal(vu_frontend_new_from_fd(&o, sv[0], &fe), -EINVAL);
        vu_frontend_options_init(&o);
        o.mem_size = 4095;
        assert_int_equal(vu_frontend_new_from_fd(&o, sv[0], &fe), -EINVAL);
        vu_frontend_options_init(&o);
        o.config_size = 257;
        assert_int_equal(vu_frontend_new_from_fd(&o, sv[0], &fe), -EINVAL);
        assert_null(fe);
        assert_int_equal(vu_frontend_connect(&o, "/nonexistent/socket", &fe), -EINVAL);
        vu_frontend_options_init(&o);
        assert_int_equal(vu_frontend_connect(&o, "/nonexistent/socket", &fe), -ENOENT);
        close(sv[0]);
        close(sv[1]);
}

/* ---- handshake ------------------------------------------------------------------------------------- */

static void test_start_sends_qemu_sequence_with_mem_slots(void **state) {
        Ctx *c = ctx_new();
        Fake *f = c->fake;
        unsigned at = 0;

        assert_int_equal(vu_frontend_start(c->fe), 0);
        assert_true(vu_frontend_is_running(c->fe));
        assert_int_equal(f->acked_protocol, ALL_PROTOCOL & ~BIT_ULL(5));

        /* §2.1 */
        assert_log(f, &at, VHOST_USER_GET_FEATURES, false, 0);
        assert_log(f, &at, VHOST_USER_GET_PROTOCOL_FEATURES, false, 0);
        assert_log(f, &at, VHOST_USER_SET_PROTOCOL_FEATURES, false, 0);
        assert_log(f, &at, VHOST_USER_GET_QUEUE_NUM, false, 0);
        assert_log(f, &at, VHOST_USER_GET_MAX_MEM_SLOTS, false, 0);
        assert_log(f, &at, VHOST_USER_SET_OWNER, true, 0);
        assert_log(f, &at, VHOST_USER_GET_FEATURES, false, 0);
        for (unsigned i = 0; i < 2; i++) {
                assert_int_equal(f->log[at].u64, i);
                assert_log(f, &at, VHOST_USER_SET_VRING_CALL, true, 1);
                assert_log(f, &at, VHOST_USER_SET_VRING_ERR, true, 1);
        }
        /* §2.2 */
        assert_log(f, &at, VHOST_USER_GET_CONFIG, false, 0);
        /* §2.3 */
        assert_int_equal(f->log[at].u64, BIT_ULL(VIRTIO_F_VERSION_1) |
                                                 BIT_ULL(VHOST_USER_F_PROTOCOL_FEATURES) |
                                                 BIT_ULL(VIRTIO_RING_F_INDIRECT_DESC) | BIT_ULL(0));
        assert_log(f, &at, VHOST_USER_SET_FEATURES, true, 0);
        assert_log(f, &at, VHOST_USER_ADD_MEM_REG, true, 1);
        for (unsigned i = 0; i < 2; i++) {
                assert_log(f, &at, VHOST_USER_SET_VRING_NUM, true, 0);
                assert_log(f, &at, VHOST_USER_SET_VRING_BASE, true, 0);
                assert_log(f, &at, VHOST_USER_SET_VRING_ADDR, true, 0);
                assert_log(f, &at, VHOST_USER_SET_VRING_KICK, true, 1);
                assert_log(f, &at, VHOST_USER_SET_VRING_CALL, true, 1);
        }
        for (unsigned i = 0; i < 2; i++)
                assert_log(f, &at, VHOST_USER_SET_VRING_ENABLE, true, 0);
        for (unsigned i = 0; i < 2; i++)
                assert_log(f, &at, VHOST_USER_SET_VRING_CALL, true, 1);
        assert_int_equal(at, f->n_log);

        /* The backend saw GPAs and user addresses, never our pointers, and the ring layout we chose. */
        assert_int_equal(f->gpa, 0x40000000);
        assert_int_equal(f->uaddr, 0x7f0012340000);
        assert_int_equal(f->mmap_offset, 0x1000);
        for (unsigned i = 0; i < 2; i++) {
                VuRingView v;

                assert_int_equal(vu_frontend_ring_view(c->fe, i, &v), 0);
                assert_int_equal(f->vq[i].num, 16);
                assert_int_equal(f->vq[i].desc_ua, vu_frontend_gpa_to_uaddr(c->fe, v.desc_gpa));
                assert_int_equal(f->vq[i].avail_ua, vu_frontend_gpa_to_uaddr(c->fe, v.avail_gpa));
                assert_int_equal(f->vq[i].used_ua, vu_frontend_gpa_to_uaddr(c->fe, v.used_gpa));
                /* Same bytes through the backend's own mapping. */
                v.desc[3].len = htole32(0x1234 + i);
                assert_int_equal(((struct vring_desc *) fake_ua(f, f->vq[i].desc_ua, 256))[3].len,
                                 htole32(0x1234 + i));
                assert_true(f->vq[i].enabled);
                assert_true(f->vq[i].kick >= 0 && f->vq[i].call >= 0 && f->vq[i].err >= 0);
        }
        assert_int_equal(vu_frontend_queue_num(c->fe), 2);
        assert_int_equal(vu_frontend_max_mem_slots(c->fe), 509);
        assert_int_equal(vu_frontend_start(c->fe), -EBUSY);
        ctx_free(c);
}

static void opts_mem_table_no_ack(VuFrontendOptions *o) {
        o->protocol_features &= ~(BIT_ULL(VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS) |
                                  BIT_ULL(VHOST_USER_PROTOCOL_F_REPLY_ACK));
}

static void test_start_without_reply_ack_uses_barriers(void **state) {
        Ctx *c = ctx_new_with(ALL_FEATURES, ALL_PROTOCOL, opts_mem_table_no_ack);
        Fake *f = c->fake;
        unsigned at = 0, enables = 0;

        assert_int_equal(vu_frontend_start(c->fe), 0);
        for (unsigned k = 0; k < f->n_log; k++) {
                assert_int_equal(f->log[k].flags, VHOST_USER_VERSION); /* never NEED_REPLY */
                assert_true(f->log[k].request != VHOST_USER_GET_MAX_MEM_SLOTS);
                assert_true(f->log[k].request != VHOST_USER_ADD_MEM_REG);
                if (f->log[k].request == VHOST_USER_SET_VRING_ENABLE) {
                        /* QEMU's GET_FEATURES barrier follows every enable. */
                        assert_int_equal(f->log[k + 1].request, VHOST_USER_GET_FEATURES);
                        enables++;
                }
                if (f->log[k].request == VHOST_USER_SET_MEM_TABLE)
                        at = k;
        }
        assert_int_equal(enables, 2);
        assert_int_equal(f->log[at].size, 40);
        assert_int_equal(f->log[at].n_fds, 1);
        assert_int_equal(f->log[at - 1].request, VHOST_USER_SET_FEATURES);
        ctx_free(c);
}

static void opts_like_qemu(VuFrontendOptions *o) {
        o->ack_every_message = false;
}

static void test_qemu_exact_need_reply(void **state) {
        Ctx *c = ctx_new_with(ALL_FEATURES, ALL_PROTOCOL, opts_like_qemu);
        Fake *f = c->fake;

        assert_int_equal(vu_frontend_start(c->fe), 0);
        for (unsigned k = 0; k < f->n_log; k++) {
                bool nr = f->log[k].flags & VHOST_USER_NEED_REPLY_MASK;
                uint32_t r = f->log[k].request;

                assert_int_equal(nr, r == VHOST_USER_ADD_MEM_REG || r == VHOST_USER_SET_VRING_ENABLE);
        }
        ctx_free(c);
}

static void opts_no_config(VuFrontendOptions *o) {
        o->config_size = 0;
}

static void test_features_without_protocol_bit(void **state) {
        Ctx *c = ctx_new_with(BIT_ULL(VIRTIO_F_VERSION_1) | BIT_ULL(VIRTIO_RING_F_INDIRECT_DESC), 0, NULL);

        /* config_size needs CONFIG, which needs protocol features. */
        assert_int_equal(vu_frontend_start(c->fe), -EOPNOTSUPP);
        ctx_free(c);

        c = ctx_new_with(BIT_ULL(VIRTIO_F_VERSION_1), 0, opts_no_config);
        assert_int_equal(vu_frontend_start(c->fe), 0);
        for (unsigned k = 0; k < c->fake->n_log; k++)
                assert_true(c->fake->log[k].request != VHOST_USER_SET_VRING_ENABLE &&
                            c->fake->log[k].request != VHOST_USER_GET_PROTOCOL_FEATURES);
        assert_int_equal(vu_frontend_features(c->fe), BIT_ULL(VIRTIO_F_VERSION_1));
        ctx_free(c);

        c = ctx_new_with(BIT_ULL(VHOST_USER_F_PROTOCOL_FEATURES), ALL_PROTOCOL, NULL);
        assert_int_equal(vu_frontend_start(c->fe), -EOPNOTSUPP); /* no VERSION_1 */
        ctx_free(c);
}

static void check_reply_failure(Misbehave mb, uint32_t request, int expected) {
        Ctx *c = ctx_new();

        c->fake->mb = mb;
        c->fake->mb_request = request;
        assert_int_equal(vu_frontend_start(c->fe), expected);
        assert_false(vu_frontend_is_running(c->fe));
        ctx_free(c);
}

static void test_reply_checks_are_strict(void **state) {
        check_reply_failure(MB_BAD_FLAGS, VHOST_USER_GET_FEATURES, -EPROTO);
        check_reply_failure(MB_BAD_ID, VHOST_USER_GET_PROTOCOL_FEATURES, -EPROTO);
        check_reply_failure(MB_BAD_SIZE, VHOST_USER_GET_QUEUE_NUM, -EPROTO);
        check_reply_failure(MB_BAD_SIZE, VHOST_USER_GET_CONFIG, -EPROTO);
        check_reply_failure(MB_WITH_FD, VHOST_USER_GET_MAX_MEM_SLOTS, -EPROTO);
        check_reply_failure(MB_HANGUP, VHOST_USER_SET_OWNER, -ECONNRESET);
        check_reply_failure(MB_BAD_FLAGS, VHOST_USER_SET_VRING_ADDR, -EPROTO); /* an ack */
        check_reply_failure(MB_NACK, VHOST_USER_ADD_MEM_REG, -EIO);
        check_reply_failure(MB_NACK, VHOST_USER_SET_VRING_ENABLE, -EIO);
        check_reply_failure(MB_FEATURES_CHANGE, 0, -EPROTO);
}

static void opts_short_timeout(VuFrontendOptions *o) {
        o->timeout_ms = 50;
}

static void test_missing_reply_times_out(void **state) {
        Ctx *c = ctx_new_with(ALL_FEATURES, ALL_PROTOCOL, opts_short_timeout);

        c->fake->mb = MB_SILENT;
        c->fake->mb_request = VHOST_USER_GET_QUEUE_NUM;
        assert_int_equal(vu_frontend_start(c->fe), -ETIMEDOUT);
        ctx_free(c);
}

static void test_config_roundtrip(void **state) {
        Ctx *c = ctx_new();
        uint8_t buf[FAKE_CONFIG_SIZE], w[4] = { 1, 2, 3, 4 };

        assert_int_equal(vu_frontend_init(c->fe), 0);
        assert_int_equal(vu_frontend_init(c->fe), -EBUSY);
        assert_int_equal(vu_frontend_get_config(c->fe, 0, buf, sizeof(buf)), 0);
        assert_memory_equal(buf, c->fake->config, sizeof(buf));
        assert_int_equal(vu_frontend_set_config(c->fe, 8, w, 4), 0);
        assert_int_equal(vu_frontend_get_config(c->fe, 6, buf, 8), 0);
        assert_int_equal(buf[2], 1);
        assert_int_equal(buf[5], 4);
        assert_int_equal(buf[0], 0xa0 + 6);
        assert_int_equal(vu_frontend_get_config(c->fe, 0, buf, 300), -EINVAL);
        /* The fake does not offer RESET_DEVICE. */
        assert_int_equal(vu_frontend_reset_device(c->fe), -EOPNOTSUPP);
        ctx_free(c);
}

/* ---- rings ------------------------------------------------------------------------------------------ */

static void test_post_direct_chain_layout(void **state) {
        Ctx *c = ctx_new();
        VuRingView v;
        uint64_t g[3];
        VuSeg segs[3];
        uint16_t head;
        VuUsed u;

        assert_int_equal(vu_frontend_start(c->fe), 0);
        for (unsigned i = 0; i < 3; i++)
                assert_int_equal(vu_frontend_mem_alloc(c->fe, 64, 0, &g[i]), 0);
        segs[0] = (VuSeg){ g[0], 10, false };
        segs[1] = (VuSeg){ g[1], 20, false };
        segs[2] = (VuSeg){ g[2], 64, true };
        assert_int_equal(vu_frontend_post(c->fe, 0, segs, 3, 0, 77, &head), 0);
        assert_int_equal(vu_frontend_ring_view(c->fe, 0, &v), 0);

        assert_int_equal(le16toh(*v.avail_idx), 1);
        assert_int_equal(le16toh(v.avail_ring[0]), head);
        {
                uint16_t d = head;

                for (unsigned i = 0; i < 3; i++) {
                        assert_int_equal(le64toh(v.desc[d].addr), segs[i].gpa);
                        assert_int_equal(le32toh(v.desc[d].len), segs[i].len);
                        assert_int_equal(le16toh(v.desc[d].flags),
                                         (i < 2 ? VRING_DESC_F_NEXT : 0) |
                                                 (i == 2 ? VRING_DESC_F_WRITE : 0));
                        d = le16toh(v.desc[d].next);
                }
        }
        assert_int_equal(vu_frontend_in_flight(c->fe, 0), 1);

        /* Nothing completed yet. */
        assert_int_equal(vu_frontend_get_used(c->fe, 0, &u), 0);
        c->fake->echo = true;
        memset(vu_frontend_gpa_to_ptr(c->fe, g[0], 10), 'a', 10);
        memset(vu_frontend_gpa_to_ptr(c->fe, g[1], 20), 'b', 20);
        assert_int_equal(vu_frontend_kick(c->fe, 0), 0);
        assert_int_equal(vu_frontend_wait_used(c->fe, 0, &u), 1);
        assert_int_equal(u.head, head);
        assert_int_equal(u.tag, 77);
        assert_int_equal(u.len, 30);
        assert_memory_equal(vu_frontend_gpa_to_ptr(c->fe, g[2], 10), "aaaaaaaaaa", 10);
        assert_int_equal(((uint8_t *) vu_frontend_gpa_to_ptr(c->fe, g[2], 30))[29], 'b');
        assert_int_equal(vu_frontend_in_flight(c->fe, 0), 0);
        assert_int_equal(vu_frontend_wait_used(c->fe, 0, &u), -ENOENT);

        /* Writable before readable is a driver bug, unless asked for. */
        segs[0].device_writable = true;
        assert_int_equal(vu_frontend_post(c->fe, 0, segs, 2, 0, 0, &head), -EINVAL);
        ctx_free(c);
}

static void test_post_indirect_chain_layout(void **state) {
        Ctx *c = ctx_new();
        VuRingView v;
        uint64_t g[2];
        VuSeg segs[2];
        struct vring_desc *t;
        uint16_t head;
        VuUsed u;
        uint64_t before;

        assert_int_equal(vu_frontend_start(c->fe), 0);
        assert_int_equal(vu_frontend_mem_alloc(c->fe, 32, 0, &g[0]), 0);
        assert_int_equal(vu_frontend_mem_alloc(c->fe, 32, 0, &g[1]), 0);
        segs[0] = (VuSeg){ g[0], 32, false };
        segs[1] = (VuSeg){ g[1], 32, true };
        before = vu_frontend_mem_available(c->fe);
        assert_int_equal(vu_frontend_post(c->fe, 1, segs, 2, VU_POST_INDIRECT, 5, &head), 0);
        assert_int_equal(vu_frontend_ring_view(c->fe, 1, &v), 0);
        assert_int_equal(le16toh(v.desc[head].flags), VRING_DESC_F_INDIRECT);
        assert_int_equal(le32toh(v.desc[head].len), 32);
        t = vu_frontend_gpa_to_ptr(c->fe, le64toh(v.desc[head].addr), 32);
        assert_non_null(t);
        assert_int_equal(le64toh(v.desc[head].addr) % 16, 0);
        assert_int_equal(le64toh(t[0].addr), g[0]);
        assert_int_equal(le16toh(t[0].flags), VRING_DESC_F_NEXT);
        assert_int_equal(le16toh(t[0].next), 1);
        assert_int_equal(le64toh(t[1].addr), g[1]);
        assert_int_equal(le16toh(t[1].flags), VRING_DESC_F_WRITE);

        c->fake->echo = true;
        assert_int_equal(vu_frontend_kick(c->fe, 1), 0);
        assert_int_equal(vu_frontend_wait_used(c->fe, 1, &u), 1);
        assert_int_equal(u.tag, 5);
        assert_int_equal(u.len, 32);
        /* The indirect table went back to the allocator. */
        assert_int_equal(vu_frontend_mem_available(c->fe), before);
        ctx_free(c);
}

static void opts_no_indirect(VuFrontendOptions *o) {
        o->indirect_desc = false;
}

static void test_indirect_needs_negotiation(void **state) {
        Ctx *c = ctx_new_with(ALL_FEATURES, ALL_PROTOCOL, opts_no_indirect);
        VuSeg s = { vu_frontend_mem_gpa(c->fe), 16, false };
        uint16_t head;

        assert_int_equal(vu_frontend_start(c->fe), 0);
        assert_false(vu_frontend_features(c->fe) & BIT_ULL(VIRTIO_RING_F_INDIRECT_DESC));
        assert_int_equal(vu_frontend_post(c->fe, 0, &s, 1, VU_POST_INDIRECT, 0, &head), -EOPNOTSUPP);
        assert_int_equal(vu_frontend_post(c->fe, 0, &s, 1, VU_POST_INDIRECT | VU_POST_UNCHECKED, 0, &head),
                         0);
        ctx_free(c);
}

static void test_ring_full_and_reuse(void **state) {
        Ctx *c = ctx_new();
        VuSeg s[2] = { { 0x40000000, 8, false }, { 0x40000100, 8, true } };
        uint16_t head;
        VuUsed u;

        assert_int_equal(vu_frontend_start(c->fe), 0);
        for (unsigned i = 0; i < 8; i++)
                assert_int_equal(vu_frontend_post(c->fe, 0, s, 2, 0, i, &head), 0);
        assert_int_equal(vu_frontend_post(c->fe, 0, s, 1, 0, 99, &head), -ENOSPC);
        assert_int_equal(vu_frontend_in_flight(c->fe, 0), 8);
        c->fake->echo = true;
        assert_int_equal(vu_frontend_kick(c->fe, 0), 0);
        for (unsigned i = 0; i < 8; i++) {
                assert_int_equal(vu_frontend_wait_used(c->fe, 0, &u), 1);
                assert_int_equal(u.tag, i);
        }
        /* Descriptors came back: the ring takes 16 more, across the avail index wrap of the ring. */
        for (unsigned round = 0; round < 3; round++) {
                for (unsigned i = 0; i < 16; i++)
                        assert_int_equal(vu_frontend_post(c->fe, 0, s, 1, VU_POST_INDIRECT, i, &head), 0);
                assert_int_equal(vu_frontend_kick(c->fe, 0), 0);
                for (unsigned i = 0; i < 16; i++)
                        assert_int_equal(vu_frontend_wait_used(c->fe, 0, &u), 1);
        }
        ctx_free(c);
}

static void test_requests_complete_out_of_order(void **state) {
        Ctx *c = ctx_new();
        char resp[64];
        size_t len;
        uint64_t tag;
        uint64_t before;

        assert_int_equal(vu_frontend_start(c->fe), 0);
        before = vu_frontend_mem_available(c->fe);
        c->fake->echo = true;
        assert_int_equal(vu_frontend_request(c->fe, 0, "hello", 5, resp, sizeof(resp), 0, &len), 0);
        assert_int_equal(len, 5);
        assert_memory_equal(resp, "hello", 5);
        assert_int_equal(vu_frontend_request(c->fe, 0, "indirect", 8, resp, sizeof(resp), VU_POST_INDIRECT,
                                             &len),
                         0);
        assert_memory_equal(resp, "indirect", 8);
        /* A response larger than the caller's buffer is cut, the used length tells the truth. */
        assert_int_equal(vu_frontend_request(c->fe, 0, "0123456789", 10, resp, 4, 0, &len), 0);
        assert_int_equal(len, 4);

        c->fake->echo = false;
        c->fake->reverse = true;
        for (unsigned i = 0; i < 4; i++) {
                char req[8];

                snprintf(req, sizeof(req), "req%u", i);
                assert_int_equal(vu_frontend_submit(c->fe, 0, req, 5, 16, i % 2 ? VU_POST_INDIRECT : 0,
                                                    100 + i),
                                 0);
        }
        c->fake->echo = true;
        /* Collect the first one submitted: the others complete (in reverse) and are kept. */
        assert_int_equal(vu_frontend_collect(c->fe, 0, 100, resp, sizeof(resp), &len), 0);
        assert_int_equal(len, 5);
        assert_string_equal(resp, "req0");
        assert_int_equal(vu_frontend_collect_any(c->fe, 0, &tag, resp, sizeof(resp), &len), 0);
        assert_int_equal(tag, 103); /* reverse completion order */
        assert_string_equal(resp, "req3");
        assert_int_equal(vu_frontend_collect(c->fe, 0, 101, resp, sizeof(resp), &len), 0);
        assert_string_equal(resp, "req1");
        assert_int_equal(vu_frontend_collect(c->fe, 0, 102, resp, sizeof(resp), NULL), 0);
        assert_string_equal(resp, "req2");
        assert_int_equal(vu_frontend_collect(c->fe, 0, 102, resp, sizeof(resp), NULL), -ENOENT);
        assert_int_equal(vu_frontend_collect_any(c->fe, 0, &tag, resp, sizeof(resp), NULL), -ENOENT);
        assert_int_equal(vu_frontend_mem_available(c->fe), before);
        ctx_free(c);
}

static void test_bad_used_entries_rejected(void **state) {
        Ctx *c = ctx_new();
        Fake *f = c->fake;
        VuSeg s[2] = { { 0x40000000, 8, false }, { 0x40000100, 8, true } };
        uint16_t head, *used;
        VuRingView v;
        VuUsed u;

        assert_int_equal(vu_frontend_start(c->fe), 0);
        assert_int_equal(vu_frontend_ring_view(c->fe, 0, &v), 0);
        assert_int_equal(vu_frontend_post(c->fe, 0, s, 2, 0, 1, &head), 0);
        used = fake_ua(f, f->vq[0].used_ua, 6 + 8 * 16);
        *v.used_flags = htole16(0);
        used[0] = htole16(VRING_USED_F_NO_NOTIFY);
        assert_int_equal(le16toh(*v.used_flags), VRING_USED_F_NO_NOTIFY);
        used[0] = 0;

        /* An id that is not a head in flight. */
        fake_push(f, &f->vq[0], (uint16_t) (head + 1), 0);
        assert_int_equal(vu_frontend_get_used(c->fe, 0, &u), -EBADMSG);
        assert_int_equal(vu_frontend_wait_used(c->fe, 0, &u), -EBADMSG);
        /* Its length beyond the writable bytes. */
        v.used_ring[0] = (struct vring_used_elem){ htole32(head), htole32(9) };
        assert_int_equal(vu_frontend_get_used(c->fe, 0, &u), -EBADMSG);
        /* An id beyond the ring. */
        v.used_ring[0] = (struct vring_used_elem){ htole32(16), htole32(0) };
        assert_int_equal(vu_frontend_get_used(c->fe, 0, &u), -EBADMSG);
        /* used->idx running more than a ring ahead. */
        v.used_ring[0] = (struct vring_used_elem){ htole32(head), htole32(8) };
        *v.used_idx = htole16(17);
        assert_int_equal(vu_frontend_get_used(c->fe, 0, &u), -EBADMSG);
        /* Repaired, the entry is taken. */
        *v.used_idx = htole16(1);
        assert_int_equal(vu_frontend_get_used(c->fe, 0, &u), 1);
        assert_int_equal(u.len, 8);
        ctx_free(c);
}

static void opts_event_idx(VuFrontendOptions *o) {
        o->event_idx = true;
}

static void test_event_idx_maintains_used_event(void **state) {
        Ctx *c = ctx_new_with(ALL_FEATURES, ALL_PROTOCOL, opts_event_idx);
        VuSeg s[2] = { { 0x40000000, 8, false }, { 0x40000100, 8, true } };
        VuRingView v;
        uint16_t head;
        VuUsed u;

        assert_int_equal(vu_frontend_start(c->fe), 0);
        assert_true(vu_frontend_features(c->fe) & BIT_ULL(VIRTIO_RING_F_EVENT_IDX));
        assert_int_equal(vu_frontend_ring_view(c->fe, 0, &v), 0);

        /* kick_if_needed follows avail_event: the device asked to be kicked at index 2 only. */
        *v.avail_event = htole16(2);
        assert_int_equal(vu_frontend_post(c->fe, 0, s, 2, 0, 0, &head), 0);
        assert_int_equal(vu_frontend_kick_if_needed(c->fe, 0), 0); /* idx 1: not yet */
        assert_int_equal(vu_frontend_post(c->fe, 0, s, 2, 0, 1, &head), 0);
        assert_int_equal(vu_frontend_kick_if_needed(c->fe, 0), 0); /* crossed 1->2: event 2 not passed */
        assert_int_equal(vu_frontend_post(c->fe, 0, s, 2, 0, 2, &head), 0);
        assert_int_equal(vu_frontend_kick_if_needed(c->fe, 0), 1); /* 2->3 passes event 2 */

        c->fake->echo = true;
        for (unsigned i = 0; i < 3; i++) {
                assert_int_equal(vu_frontend_wait_used(c->fe, 0, &u), 1);
                assert_int_equal(u.tag, i);
        }
        /* The last wait that found nothing set used_event to the next used slot; the final one found
         * entries already reaped, so used_event is 0 (set before the first completion). */
        assert_int_equal(le16toh(*v.used_event), 0);
        assert_int_equal(vu_frontend_post(c->fe, 0, s, 2, 0, 3, &head), 0);
        c->fake->echo = false;
        assert_int_equal(vu_frontend_kick(c->fe, 0), 0);
        c->fake->echo = true;
        assert_int_equal(vu_frontend_wait_used(c->fe, 0, &u), 1);
        assert_int_equal(le16toh(*v.used_event), 3);

        /* Without EVENT_IDX, NO_NOTIFY in used->flags suppresses kicks. */
        ctx_free(c);
        c = ctx_new();
        assert_int_equal(vu_frontend_start(c->fe), 0);
        assert_int_equal(vu_frontend_ring_view(c->fe, 0, &v), 0);
        assert_int_equal(vu_frontend_post(c->fe, 0, s, 2, 0, 0, &head), 0);
        *v.used_flags = htole16(VRING_USED_F_NO_NOTIFY);
        assert_int_equal(vu_frontend_kick_if_needed(c->fe, 0), 0);
        *v.used_flags = 0;
        assert_int_equal(vu_frontend_kick_if_needed(c->fe, 0), 1);
        assert_int_equal(vu_frontend_set_no_interrupt(c->fe, 0, true), 0);
        assert_int_equal(le16toh(*v.avail_flags), VRING_AVAIL_F_NO_INTERRUPT);
        ctx_free(c);
}

static void test_stop_resume_keeps_rings(void **state) {
        Ctx *c = ctx_new();
        Fake *f = c->fake;
        VuSeg s[2] = { { 0x40000000, 8, false }, { 0x40000100, 8, true } };
        uint16_t head, bases[2];
        VuRingView before, after;
        unsigned n_before, adds = 0;
        VuUsed u;

        assert_int_equal(vu_frontend_start(c->fe), 0);
        assert_int_equal(vu_frontend_ring_view(c->fe, 0, &before), 0);
        c->fake->echo = true;
        for (unsigned i = 0; i < 3; i++) {
                assert_int_equal(vu_frontend_post(c->fe, 0, s, 2, 0, i, &head), 0);
                assert_int_equal(vu_frontend_kick(c->fe, 0), 0);
                assert_int_equal(vu_frontend_wait_used(c->fe, 0, &u), 1);
        }
        assert_int_equal(vu_frontend_stop(c->fe, bases), 0);
        assert_false(vu_frontend_is_running(c->fe));
        assert_int_equal(bases[0], 3);
        assert_int_equal(bases[1], 0);
        assert_int_equal(vu_frontend_stop(c->fe, bases), -EBUSY);

        n_before = f->n_log;
        assert_int_equal(vu_frontend_resume(c->fe), 0);
        assert_int_equal(vu_frontend_resume(c->fe), -EBUSY);
        assert_int_equal(f->vq[0].base, 3);
        assert_int_equal(vu_frontend_ring_view(c->fe, 0, &after), 0);
        assert_int_equal(after.desc_gpa, before.desc_gpa);
        assert_int_equal(f->vq[0].desc_ua, vu_frontend_gpa_to_uaddr(c->fe, before.desc_gpa));
        for (unsigned k = n_before; k < f->n_log; k++)
                adds += f->log[k].request == VHOST_USER_ADD_MEM_REG;
        assert_int_equal(adds, 0); /* the region is already known to the backend */
        assert_int_equal(f->log[n_before].request, VHOST_USER_SET_FEATURES);

        /* A driver reset: fresh rings, base 0. */
        assert_int_equal(vu_frontend_reset_rings(c->fe), 0);
        assert_int_equal(vu_frontend_ring_view(c->fe, 0, &after), 0);
        assert_true(after.desc_gpa != before.desc_gpa);
        assert_int_equal(f->vq[0].base, 0);
        assert_int_equal(f->vq[0].desc_ua, vu_frontend_gpa_to_uaddr(c->fe, after.desc_gpa));
        assert_int_equal(vu_frontend_request(c->fe, 0, "x", 1, NULL, 0, 0, NULL), 0);

        /* A base outside [used, avail] is a backend bug. */
        f->mb = MB_BAD_BASE;
        assert_int_equal(vu_frontend_stop(c->fe, NULL), -EPROTO);
        ctx_free(c);
}

static void test_raw_messages_and_hangup(void **state) {
        Ctx *c = ctx_new();
        uint64_t v;
        uint8_t junk[3] = { 1, 2, 3 };
        int fd = vu_frontend_kick_fd(c->fe, 0);

        assert_int_equal(vu_frontend_message(c->fe, VHOST_USER_GET_FEATURES, NULL, 0, NULL, 0, &v, 8), 0);
        assert_int_equal(v, ALL_FEATURES);
        assert_int_equal(vu_frontend_send_msg(c->fe, VHOST_USER_GET_QUEUE_NUM, 0x1, 0, NULL, 0, NULL, 0), 0);
        assert_int_equal(vu_frontend_recv_reply(c->fe, VHOST_USER_GET_QUEUE_NUM, &v, 8), 0);
        assert_int_equal(v, 2);
        assert_int_equal(vu_frontend_send_msg(c->fe, 99, 0x1, 0, NULL, 0, &fd, 1), 0);
        assert_true(fake_step(c->fake));
        assert_int_equal(c->fake->log[c->fake->n_log - 1].request, 99);
        assert_int_equal(c->fake->log[c->fake->n_log - 1].n_fds, 1);

        assert_int_equal(vu_frontend_send_raw(c->fe, junk, sizeof(junk), NULL, 0), 0);
        assert_int_equal(recv(c->fake->sock, junk, sizeof(junk), 0), 3);
        c->fake->sock = safe_close(c->fake->sock);
        assert_int_equal(vu_frontend_wait_hangup(c->fe), 0);
        assert_int_equal(vu_frontend_message(c->fe, VHOST_USER_GET_FEATURES, NULL, 0, NULL, 0, &v, 8),
                         -ECONNRESET);
        vu_frontend_disconnect(c->fe);
        assert_int_equal(vu_frontend_socket_fd(c->fe), -EBADF);
        assert_int_equal(vu_frontend_message(c->fe, VHOST_USER_GET_FEATURES, NULL, 0, NULL, 0, &v, 8),
                         -ENOTCONN);
        ctx_free(c);
}

static void test_publish_bad_head_and_reserve(void **state) {
        Ctx *c = ctx_new();
        VuRingView v;
        uint16_t d[2];

        assert_int_equal(vu_frontend_ring_view(c->fe, 0, &v), 0);
        assert_int_equal(vu_frontend_reserve_desc(c->fe, 0, 2, d), 0);
        assert_true(d[0] < 16 && d[1] < 16 && d[0] != d[1]);
        assert_int_equal(vu_frontend_publish_head(c->fe, 0, 300), 0);
        assert_int_equal(le16toh(*v.avail_idx), 1);
        assert_int_equal(le16toh(v.avail_ring[0]), 300);
        assert_int_equal(vu_frontend_reserve_desc(c->fe, 0, 15, d), -ENOSPC);
        assert_int_equal(vu_frontend_ring_view(c->fe, 2, &v), -EINVAL);
        ctx_free(c);
}

typedef struct Acceptor {
        int listen_fd;
        int accepted;
} Acceptor;

static int accept_pump(void *userdata) {
        Acceptor *a = userdata;
        int fd = accept4(a->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

        if (fd < 0)
                return errno == EAGAIN ? 0 : -errno;
        a->accepted++;
        close(fd);
        return 1;
}

static void test_connect_retries_while_backlog_full(void **state) {
        Acceptor a = { .listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0) };
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        char dir[] = "/tmp/vvid-fe-unit-XXXXXX";
        VuFrontendOptions o;
        VuFrontend *first = NULL, *second = NULL;

        assert_true(a.listen_fd >= 0);
        assert_non_null(mkdtemp(dir));
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/s", dir);
        assert_int_equal(bind(a.listen_fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
        assert_int_equal(listen(a.listen_fd, 0), 0); /* room for one pending connection */

        vu_frontend_options_init(&o);
        o.mem_size = 1 << 20;
        o.timeout_ms = 50;
        assert_int_equal(vu_frontend_connect(&o, sa.sun_path, &first), 0);
        /* Backlog full and nobody accepting: connect() would block; we get a timeout instead. */
        assert_int_equal(vu_frontend_connect(&o, sa.sun_path, &second), -ETIMEDOUT);
        assert_null(second);
        /* With a pump that accepts, the retry gets through. */
        o.timeout_ms = 5000;
        o.pump = accept_pump;
        o.pump_userdata = &a;
        assert_int_equal(vu_frontend_connect(&o, sa.sun_path, &second), 0);
        assert_true(a.accepted >= 1);

        vu_frontend_free(first);
        vu_frontend_free(second);
        close(a.listen_fd);
        unlink(sa.sun_path);
        rmdir(dir);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_mem_alloc_aligns_and_coalesces),
                cmocka_unit_test(test_mem_translation_keeps_spaces_apart),
                cmocka_unit_test(test_options_rejected),
                cmocka_unit_test(test_start_sends_qemu_sequence_with_mem_slots),
                cmocka_unit_test(test_start_without_reply_ack_uses_barriers),
                cmocka_unit_test(test_qemu_exact_need_reply),
                cmocka_unit_test(test_features_without_protocol_bit),
                cmocka_unit_test(test_reply_checks_are_strict),
                cmocka_unit_test(test_missing_reply_times_out),
                cmocka_unit_test(test_config_roundtrip),
                cmocka_unit_test(test_post_direct_chain_layout),
                cmocka_unit_test(test_post_indirect_chain_layout),
                cmocka_unit_test(test_indirect_needs_negotiation),
                cmocka_unit_test(test_ring_full_and_reuse),
                cmocka_unit_test(test_requests_complete_out_of_order),
                cmocka_unit_test(test_bad_used_entries_rejected),
                cmocka_unit_test(test_event_idx_maintains_used_event),
                cmocka_unit_test(test_stop_resume_keeps_rings),
                cmocka_unit_test(test_raw_messages_and_hangup),
                cmocka_unit_test(test_publish_bad_head_and_reserve),
                cmocka_unit_test(test_connect_retries_while_backlog_full),
        };

        signal(SIGPIPE, SIG_IGN);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
