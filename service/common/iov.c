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

static void cursor_settle(IovCursor *c) {
        while (c->i < c->n && c->off >= c->iov[c->i].iov_len) {
                c->off -= c->iov[c->i].iov_len;
                c->i++;
        }
        if (c->i >= c->n) {
                c->i = c->n;
                c->off = 0;
        }
}

void iov_cursor_init(IovCursor *c, const struct iovec *iov, unsigned n, size_t offset) {
        *c = (IovCursor){ .iov = iov, .n = n, .off = offset };
        cursor_settle(c);
}

size_t iov_cursor_skip(IovCursor *c, size_t len) {
        size_t done = 0;

        while (done < len && c->i < c->n) {
                size_t k = MIN(c->iov[c->i].iov_len - c->off, len - done);
                done += k;
                c->off += k;
                cursor_settle(c);
        }
        return done;
}

uint8_t *iov_cursor_span(const IovCursor *c, size_t *ret_len) {
        if (c->i >= c->n) {
                *ret_len = 0;
                return NULL;
        }
        *ret_len = c->iov[c->i].iov_len - c->off;
        return (uint8_t *) c->iov[c->i].iov_base + c->off;
}

size_t iov_cursor_read(IovCursor *c, void *buf, size_t len) {
        size_t done = 0;

        while (done < len && c->i < c->n) {
                size_t k = MIN(c->iov[c->i].iov_len - c->off, len - done);
                memcpy((uint8_t *) buf + done, (const uint8_t *) c->iov[c->i].iov_base + c->off, k);
                done += k;
                c->off += k;
                cursor_settle(c);
        }
        return done;
}

size_t iov_cursor_write(IovCursor *c, const void *buf, size_t len) {
        size_t done = 0;

        while (done < len && c->i < c->n) {
                size_t k = MIN(c->iov[c->i].iov_len - c->off, len - done);
                memcpy((uint8_t *) c->iov[c->i].iov_base + c->off, (const uint8_t *) buf + done, k);
                done += k;
                c->off += k;
                cursor_settle(c);
        }
        return done;
}

size_t iov_cursor_copy(IovCursor *dst, IovCursor *src, size_t len) {
        size_t done = 0;

        while (done < len && dst->i < dst->n && src->i < src->n) {
                size_t k = MIN(dst->iov[dst->i].iov_len - dst->off, src->iov[src->i].iov_len - src->off);
                k = MIN(k, len - done);
                memcpy((uint8_t *) dst->iov[dst->i].iov_base + dst->off,
                       (const uint8_t *) src->iov[src->i].iov_base + src->off, k);
                done += k;
                dst->off += k;
                src->off += k;
                cursor_settle(dst);
                cursor_settle(src);
        }
        return done;
}
