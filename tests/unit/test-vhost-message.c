/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/macro.h"
#include "vhost/message.h"

static int new_fd(void) {
        int fd = eventfd(0, EFD_CLOEXEC);

        assert_true(fd >= 0);
        return fd;
}

static bool fd_open(int fd) {
        return fcntl(fd, F_GETFD) >= 0;
}

static void msg_init(VhostMsg *m, uint32_t request, uint32_t size) {
        memset(m, 0, sizeof(*m));
        m->request = request;
        m->flags = VHOST_USER_VERSION;
        m->size = size;
}

static void put_u64(VhostMsg *m, uint64_t v) {
        v = htole64(v);
        memcpy(m->payload, &v, 8);
}

static void put_u32(VhostMsg *m, size_t off, uint32_t v) {
        v = htole32(v);
        memcpy(m->payload + off, &v, 4);
}

static void test_header_rejects_version_flags_size_request(void **state) {
        const char *reason = NULL;

        assert_int_equal(vhost_msg_check_header(VHOST_USER_GET_FEATURES, 0x1, 0, &reason), 0);
        assert_int_equal(vhost_msg_check_header(VHOST_USER_GET_FEATURES, 0x1 | VHOST_USER_NEED_REPLY_MASK, 0,
                                                NULL),
                         0);
        assert_int_equal(vhost_msg_check_header(VHOST_USER_GET_FEATURES, 0x0, 0, &reason), -EPROTO);
        assert_non_null(reason);
        assert_int_equal(vhost_msg_check_header(VHOST_USER_GET_FEATURES, 0x2, 0, NULL), -EPROTO);
        assert_int_equal(vhost_msg_check_header(VHOST_USER_GET_FEATURES, 0x3, 0, NULL), -EPROTO);
        assert_int_equal(vhost_msg_check_header(VHOST_USER_GET_FEATURES, 0x5, 0, NULL), -EPROTO); /* reply */
        for (unsigned bit = 4; bit < 32; bit++)
                assert_int_equal(vhost_msg_check_header(VHOST_USER_GET_FEATURES, 0x1 | (1u << bit), 0, NULL),
                                 -EPROTO);
        assert_int_equal(vhost_msg_check_header(VHOST_USER_SET_CONFIG, 0x1, 4096, NULL), 0);
        assert_int_equal(vhost_msg_check_header(VHOST_USER_SET_CONFIG, 0x1, 4097, NULL), -EPROTO);
        assert_int_equal(vhost_msg_check_header(VHOST_USER_SET_CONFIG, 0x1, UINT32_MAX, NULL), -EPROTO);
        /* NONE, never-offered features, unknown ids. */
        const uint32_t bad[] = { VHOST_USER_NONE,
                                 VHOST_USER_SET_LOG_BASE,
                                 VHOST_USER_SET_LOG_FD,
                                 VHOST_USER_SEND_RARP,
                                 VHOST_USER_SET_BACKEND_REQ_FD,
                                 VHOST_USER_IOTLB_MSG,
                                 VHOST_USER_GET_INFLIGHT_FD,
                                 VHOST_USER_SET_STATUS,
                                 VHOST_USER_GET_STATUS,
                                 26,
                                 33,
                                 35,
                                 41,
                                 44,
                                 99,
                                 UINT32_MAX };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                assert_int_equal(vhost_msg_check_header(bad[i], 0x1, 0, NULL), -EPROTO);
}

static void test_validate_exact_sizes(void **state) {
        static const struct {
                uint32_t request;
                uint32_t size;
        } table[] = {
                { VHOST_USER_GET_FEATURES, 0 },
                { VHOST_USER_SET_FEATURES, 8 },
                { VHOST_USER_SET_OWNER, 0 },
                { VHOST_USER_RESET_OWNER, 0 },
                { VHOST_USER_SET_VRING_NUM, 8 },
                { VHOST_USER_SET_VRING_ADDR, 40 },
                { VHOST_USER_SET_VRING_BASE, 8 },
                { VHOST_USER_GET_VRING_BASE, 8 },
                { VHOST_USER_GET_PROTOCOL_FEATURES, 0 },
                { VHOST_USER_SET_PROTOCOL_FEATURES, 8 },
                { VHOST_USER_GET_QUEUE_NUM, 0 },
                { VHOST_USER_SET_VRING_ENABLE, 8 },
                { VHOST_USER_RESET_DEVICE, 0 },
                { VHOST_USER_GET_MAX_MEM_SLOTS, 0 },
                { VHOST_USER_REM_MEM_REG, 40 },
        };
        VhostMsg m;

        for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
                msg_init(&m, table[i].request, table[i].size);
                assert_int_equal(vhost_msg_validate(&m, NULL), 0);
                m.size = table[i].size + 1;
                assert_int_equal(vhost_msg_validate(&m, NULL), -EPROTO);
                if (table[i].size > 0) {
                        m.size = table[i].size - 1;
                        assert_int_equal(vhost_msg_validate(&m, NULL), -EPROTO);
                }
                /* No fd is allowed on any of these (REM_MEM_REG tolerates one, tested below). */
                if (table[i].request != VHOST_USER_REM_MEM_REG) {
                        m.size = table[i].size;
                        m.n_fds = 1;
                        m.fds[0] = -1;
                        assert_int_equal(vhost_msg_validate(&m, NULL), -EPROTO);
                }
        }
}

static void test_validate_vring_fd_messages(void **state) {
        const uint32_t reqs[] = { VHOST_USER_SET_VRING_KICK, VHOST_USER_SET_VRING_CALL,
                                  VHOST_USER_SET_VRING_ERR };
        VhostMsg m;

        for (size_t i = 0; i < 3; i++) {
                msg_init(&m, reqs[i], 8);
                put_u64(&m, 1);
                assert_int_equal(vhost_msg_validate(&m, NULL), -EPROTO); /* fd missing */
                m.n_fds = 1;
                assert_int_equal(vhost_msg_validate(&m, NULL), 0);
                put_u64(&m, 1 | VHOST_USER_VRING_NOFD_MASK);
                assert_int_equal(vhost_msg_validate(&m, NULL), -EPROTO); /* fd despite "no fd" */
                m.n_fds = 0;
                assert_int_equal(vhost_msg_validate(&m, NULL), 0);
                put_u64(&m, 1 | (1ULL << 9));
                assert_int_equal(vhost_msg_validate(&m, NULL), -EPROTO); /* reserved bits */
                put_u64(&m, 1ULL << 63 | VHOST_USER_VRING_NOFD_MASK);
                assert_int_equal(vhost_msg_validate(&m, NULL), -EPROTO);
                put_u64(&m, VHOST_USER_VRING_NOFD_MASK);
                m.size = 4;
                assert_int_equal(vhost_msg_validate(&m, NULL), -EPROTO);
        }
}

static void test_validate_mem_messages(void **state) {
        struct vhost_user_mem_region r[VHOST_USER_MEM_TABLE_MAX_REGIONS];
        VhostMsg m;

        msg_init(&m, VHOST_USER_SET_MEM_TABLE, 8 + 32 * 2);
        put_u32(&m, 0, 2);
        m.n_fds = 2;
        assert_int_equal(vhost_msg_validate(&m, NULL), 0);
        assert_int_equal(vhost_msg_mem_table(&m, r), 2);
        m.n_fds = 1; /* n != nregions */
        assert_int_equal(vhost_msg_validate(&m, NULL), -EPROTO);
        m.n_fds = 3;
        assert_int_equal(vhost_msg_validate(&m, NULL), -EPROTO);
        m.n_fds = 2;
        m.size = 8 + 32 * 3; /* size disagrees with nregions */
        assert_int_equal(vhost_msg_validate(&m, NULL), -EPROTO);
        m.size = 4;
        assert_int_equal(vhost_msg_validate(&m, NULL), -EPROTO);
        msg_init(&m, VHOST_USER_SET_MEM_TABLE, 8);
        put_u32(&m, 0, 0);
        assert_int_equal(vhost_msg_validate(&m, NULL), -EPROTO); /* no regions */
        msg_init(&m, VHOST_USER_SET_MEM_TABLE, 8 + 32 * 9);
        put_u32(&m, 0, 9);
        m.n_fds = 8;
        assert_int_equal(vhost_msg_validate(&m, NULL), -EPROTO); /* more than 8 */
        /* The accessor never reads past the payload, even unvalidated. */
        msg_init(&m, VHOST_USER_SET_MEM_TABLE, 8 + 32);
        put_u32(&m, 0, 8);
        assert_int_equal(vhost_msg_mem_table(&m, r), 1);

        msg_init(&m, VHOST_USER_ADD_MEM_REG, 40);
        assert_int_equal(vhost_msg_validate(&m, NULL), -EPROTO); /* needs its fd */
        m.n_fds = 1;
        assert_int_equal(vhost_msg_validate(&m, NULL), 0);
        m.n_fds = 2;
        assert_int_equal(vhost_msg_validate(&m, NULL), -EPROTO);
        msg_init(&m, VHOST_USER_REM_MEM_REG, 40);
        m.n_fds = 1; /* tolerated (spec), closed unused */
        assert_int_equal(vhost_msg_validate(&m, NULL), 0);
        m.n_fds = 2;
        assert_int_equal(vhost_msg_validate(&m, NULL), -EPROTO);
}

static void test_validate_config_messages(void **state) {
        const uint32_t reqs[] = { VHOST_USER_GET_CONFIG, VHOST_USER_SET_CONFIG };
        const uint8_t *data;
        VhostMsg m;

        for (size_t i = 0; i < 2; i++) {
                msg_init(&m, reqs[i], 12 + 44);
                put_u32(&m, 0, 4);
                put_u32(&m, 4, 44);
                m.payload[12] = 0x5a;
                assert_int_equal(vhost_msg_validate(&m, NULL), 0);
                struct vhost_user_config_hdr c = vhost_msg_config(&m, &data);
                assert_int_equal(c.offset, 4);
                assert_int_equal(c.size, 44);
                assert_int_equal(data[0], 0x5a);
                m.size = 12 + 43;
                assert_int_equal(vhost_msg_validate(&m, NULL), -EPROTO);
                m.size = 11;
                assert_int_equal(vhost_msg_validate(&m, NULL), -EPROTO);
                msg_init(&m, reqs[i], 12 + 257);
                put_u32(&m, 4, 257);
                assert_int_equal(vhost_msg_validate(&m, NULL), -EPROTO);
                put_u32(&m, 4, UINT32_MAX - 5); /* 12 + size would wrap in 32 bits */
                m.size = 6;
                assert_int_equal(vhost_msg_validate(&m, NULL), -EPROTO);
        }
}

static void test_payload_accessors(void **state) {
        VhostMsg m;

        msg_init(&m, VHOST_USER_SET_VRING_ADDR, 40);
        /* Unaligned little-endian fields: index, flags, desc, used, avail, log. */
        for (unsigned i = 0; i < 40; i++)
                m.payload[i] = (uint8_t) i;
        struct vhost_user_vring_addr a = vhost_msg_vring_addr(&m);
        assert_int_equal(a.index, 0x03020100);
        assert_int_equal(a.flags, 0x07060504);
        assert_true(a.desc_user_addr == 0x0f0e0d0c0b0a0908ULL);
        assert_true(a.used_user_addr == 0x1716151413121110ULL);
        assert_true(a.avail_user_addr == 0x1f1e1d1c1b1a1918ULL);
        struct vhost_user_vring_state s = vhost_msg_vring_state(&m);
        assert_int_equal(s.num, 0x07060504);
        assert_true(vhost_msg_u64(&m) == 0x0706050403020100ULL);
        assert_string_equal(vhost_user_request_to_string(VHOST_USER_GET_VRING_BASE), "GET_VRING_BASE");
        assert_string_equal(vhost_user_request_to_string(1234), "unknown");
        assert_true(vhost_user_request_has_reply(VHOST_USER_GET_CONFIG));
        assert_false(vhost_user_request_has_reply(VHOST_USER_SET_CONFIG));
}

static void test_encode_reply(void **state) {
        uint8_t buf[VHOST_USER_HDR_SIZE + 8];
        uint64_t v = htole64(42);
        uint32_t f;

        assert_int_equal(vhost_msg_encode_reply(VHOST_USER_GET_FEATURES, &v, 8, buf, sizeof(buf)), 20);
        memcpy(&f, buf + 4, 4);
        assert_int_equal(le32toh(f), 0x5);
        memcpy(&f, buf, 4);
        assert_int_equal(le32toh(f), VHOST_USER_GET_FEATURES);
        memcpy(&f, buf + 8, 4);
        assert_int_equal(le32toh(f), 8);
        assert_int_equal(vhost_msg_encode_reply(1, &v, 8, buf, sizeof(buf) - 1), -ENOBUFS);
        assert_int_equal(vhost_msg_encode_reply(1, NULL, 4097, buf, sizeof(buf)), -EMSGSIZE);
}

/* Feed bytes through the reader in chunks of `chunk`, with fds on the first chunk. */
static int
feed(VhostMsgReader *rd, const uint8_t *bytes, size_t len, size_t chunk, int *fds, unsigned n_fds) {
        size_t off = 0;
        int r = 0;

        while (off < len) {
                size_t want, n;
                void *p = vhost_msg_reader_want(rd, &want);

                assert_true(want > 0);
                n = MIN(MIN(chunk, want), len - off);
                memcpy(p, bytes + off, n);
                r = vhost_msg_reader_advance(rd, n, off == 0 ? fds : NULL, off == 0 ? n_fds : 0, NULL);
                off += n;
                if (r != 0)
                        break;
        }
        return r;
}

static void test_reader_assembles_in_pieces(void **state) {
        uint8_t wire[12 + 8] = {
                VHOST_USER_SET_VRING_KICK, 0, 0, 0, 0x9, 0, 0, 0, 8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0
        };
        VhostMsgReader rd;
        int fd = new_fd(), taken;

        vhost_msg_reader_init(&rd);
        assert_true(vhost_msg_reader_idle(&rd));
        assert_int_equal(feed(&rd, wire, 11, 1, &fd, 1), 0);
        assert_false(vhost_msg_reader_idle(&rd));
        assert_int_equal(feed(&rd, wire + 11, sizeof(wire) - 11, 3, NULL, 0), 1);
        assert_int_equal(rd.msg.request, VHOST_USER_SET_VRING_KICK);
        assert_int_equal(rd.msg.flags, 0x9);
        assert_int_equal(rd.msg.n_fds, 1);
        assert_int_equal(vhost_msg_validate(&rd.msg, NULL), 0);
        taken = vhost_msg_take_fd(&rd.msg, 0);
        assert_int_equal(taken, fd);
        assert_int_equal(vhost_msg_take_fd(&rd.msg, 1), -EBADF);
        vhost_msg_reader_reset(&rd);
        assert_true(fd_open(fd)); /* taken fds are not closed by the reset */
        close(fd);

        /* A header-only message completes with the header. */
        uint8_t hdr[12] = { VHOST_USER_GET_FEATURES, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0 };
        assert_int_equal(feed(&rd, hdr, 12, 12, NULL, 0), 1);
        assert_int_equal(rd.msg.size, 0);
        vhost_msg_reader_reset(&rd);
}

static void test_reader_rejects_bad_header_and_closes_fds(void **state) {
        uint8_t hdr[12] = { VHOST_USER_GET_FEATURES, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0 };
        VhostMsgReader rd;
        int fds[VHOST_USER_MAX_FDS + 2];

        vhost_msg_reader_init(&rd);
        /* size 4097 */
        hdr[8] = 0x01;
        hdr[9] = 0x10;
        fds[0] = new_fd();
        assert_int_equal(feed(&rd, hdr, 12, 12, fds, 1), -EPROTO);
        vhost_msg_reader_reset(&rd);
        assert_false(fd_open(fds[0]));

        /* Too many fds: all of them end up closed. */
        hdr[8] = hdr[9] = 0;
        for (unsigned i = 0; i < VHOST_USER_MAX_FDS + 2; i++)
                fds[i] = new_fd();
        assert_int_equal(feed(&rd, hdr, 12, 12, fds, VHOST_USER_MAX_FDS + 2), -EPROTO);
        vhost_msg_reader_reset(&rd);
        for (unsigned i = 0; i < VHOST_USER_MAX_FDS + 2; i++)
                assert_false(fd_open(fds[i]));

        /* Wrong fd count on a complete message: validation refuses, the reset closes it. */
        fds[0] = new_fd();
        assert_int_equal(feed(&rd, hdr, 12, 12, fds, 1), 1);
        assert_int_equal(vhost_msg_validate(&rd.msg, NULL), -EPROTO);
        vhost_msg_reader_reset(&rd);
        assert_false(fd_open(fds[0]));

        /* Reserved flags and unknown requests. */
        hdr[4] = 0x11;
        assert_int_equal(feed(&rd, hdr, 12, 5, NULL, 0), -EPROTO);
        vhost_msg_reader_reset(&rd);
        hdr[4] = 0x1;
        hdr[0] = 77;
        assert_int_equal(feed(&rd, hdr, 12, 12, NULL, 0), -EPROTO);
        vhost_msg_reader_reset(&rd);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_header_rejects_version_flags_size_request),
                cmocka_unit_test(test_validate_exact_sizes),
                cmocka_unit_test(test_validate_vring_fd_messages),
                cmocka_unit_test(test_validate_mem_messages),
                cmocka_unit_test(test_validate_config_messages),
                cmocka_unit_test(test_payload_accessors),
                cmocka_unit_test(test_encode_reply),
                cmocka_unit_test(test_reader_assembles_in_pieces),
                cmocka_unit_test(test_reader_rejects_bad_header_and_closes_fds),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
