/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <stdint.h>
#include <string.h>

#include "iov.h"
#include "macro.h"

size_t iov_to_buf(const struct iovec *iov, unsigned n, size_t offset, void *buf, size_t len) {
        size_t done = 0;

        for (unsigned i = 0; i < n && done < len; i++) {
                if (offset >= iov[i].iov_len) {
                        offset -= iov[i].iov_len;
                        continue;
                }
                size_t k = MIN(iov[i].iov_len - offset, len - done);
                memcpy((uint8_t *) buf + done, (const uint8_t *) iov[i].iov_base + offset, k);
                done += k;
                offset = 0;
        }
        return done;
}

size_t buf_to_iov(const struct iovec *iov, unsigned n, size_t offset, const void *buf, size_t len) {
        size_t done = 0;

        for (unsigned i = 0; i < n && done < len; i++) {
                if (offset >= iov[i].iov_len) {
                        offset -= iov[i].iov_len;
                        continue;
                }
                size_t k = MIN(iov[i].iov_len - offset, len - done);
                memcpy((uint8_t *) iov[i].iov_base + offset, (const uint8_t *) buf + done, k);
                done += k;
                offset = 0;
        }
        return done;
}

size_t iov_size(const struct iovec *iov, unsigned n) {
        size_t total = 0;

        for (unsigned i = 0; i < n; i++)
                if (__builtin_add_overflow(total, iov[i].iov_len, &total))
                        return SIZE_MAX;
        return total;
}
