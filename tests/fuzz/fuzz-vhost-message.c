/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * libFuzzer target: arbitrary byte streams with random fd counts through the vhost-user message reader,
 * validator and payload accessors, as the connection feeds them (vhost-user-backend.md §7.3 item 9).
 *
 * Input: records of [control byte][bytes]. Low 5 bits of the control byte: chunk length (0 = exactly
 * what the reader wants); bits 5..7: number of fds that arrive with the chunk.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/macro.h"
#include "vhost/message.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int devnull = -1, lowest_free = -1;

static void use_message(VhostMsg *m) {
        struct vhost_user_mem_region regions[VHOST_USER_MEM_TABLE_MAX_REGIONS];
        uint8_t reply[VHOST_USER_HDR_SIZE + VHOST_USER_MAX_PAYLOAD];
        const uint8_t *cfg;
        volatile uint64_t sink = 0;

        if (vhost_msg_validate(m, NULL) < 0)
                return;
        switch (m->request) {
        case VHOST_USER_SET_MEM_TABLE: {
                unsigned n = vhost_msg_mem_table(m, regions);

                if (n != m->n_fds)
                        abort(); /* the validator promised one fd per region */
                for (unsigned i = 0; i < n; i++)
                        sink += regions[i].memory_size;
                break;
        }
        case VHOST_USER_ADD_MEM_REG:
        case VHOST_USER_REM_MEM_REG:
                sink += vhost_msg_mem_reg(m).guest_phys_addr;
                break;
        case VHOST_USER_GET_CONFIG:
        case VHOST_USER_SET_CONFIG: {
                struct vhost_user_config_hdr c = vhost_msg_config(m, &cfg);

                if (c.size > VHOST_USER_MAX_CONFIG_SIZE || 12 + c.size != m->size)
                        abort();
                for (uint32_t i = 0; i < c.size; i++)
                        sink += cfg[i];
                if (vhost_msg_encode_reply(m->request, m->payload, m->size, reply, sizeof(reply)) < 0)
                        abort();
                break;
        }
        case VHOST_USER_SET_VRING_ADDR:
                sink += vhost_msg_vring_addr(m).desc_user_addr;
                break;
        case VHOST_USER_SET_VRING_KICK:
        case VHOST_USER_SET_VRING_CALL:
        case VHOST_USER_SET_VRING_ERR:
                if (m->n_fds > 0) {
                        int fd = vhost_msg_take_fd(m, 0);

                        if (fd < 0)
                                abort();
                        close(fd);
                }
                break;
        default:
                if (m->size == 8)
                        sink += vhost_msg_u64(m) + vhost_msg_vring_state(m).num;
                break;
        }
        (void) sink;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        VhostMsgReader rd;
        size_t off = 0;
        int probe;

        if (devnull < 0) {
                devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
                if (devnull < 0)
                        abort();
                lowest_free = dup(devnull);
                close(lowest_free);
        }
        vhost_msg_reader_init(&rd);
        while (off < size) {
                uint8_t ctl = data[off++];
                int fds[7];
                unsigned n_fds = ctl >> 5;
                size_t want, n;
                void *p = vhost_msg_reader_want(&rd, &want);
                int r;

                n = (ctl & 0x1f) ? (size_t) (ctl & 0x1f) : want;
                n = MIN(n, want);
                n = MIN(n, size - off);
                memcpy(p, data + off, n);
                off += n;
                for (unsigned i = 0; i < n_fds; i++) {
                        fds[i] = dup(devnull);
                        if (fds[i] < 0)
                                abort();
                }
                r = vhost_msg_reader_advance(&rd, n, fds, n_fds, NULL);
                if (r > 0)
                        use_message(&rd.msg);
                if (r != 0)
                        vhost_msg_reader_reset(&rd);
        }
        vhost_msg_reader_reset(&rd);

        /* Every fd handed to the reader was closed or taken and closed: no leak. */
        probe = dup(devnull);
        if (probe != lowest_free)
                abort();
        close(probe);
        return 0;
}
