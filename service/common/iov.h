/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

/* Copy helpers over iovec arrays, bounded by both sides. Return the number of bytes copied. */
size_t iov_to_buf(const struct iovec *iov, unsigned n, size_t offset, void *buf, size_t len);
size_t buf_to_iov(const struct iovec *iov, unsigned n, size_t offset, const void *buf, size_t len);
/* Sum of the segment lengths, saturating at SIZE_MAX. */
size_t iov_size(const struct iovec *iov, unsigned n);

/*
 * A forward-only position in an iovec array. Seeking forward, reading and writing cost O(bytes +
 * segments crossed), so a picture walked row by row does not re-walk the array from the start for each
 * row (which iov_to_buf()/buf_to_iov() with an offset do). Every operation is bounded by the array: at
 * its end the cursor stays there and copies come up short.
 * Invariant: i == n (the end), or off < iov[i].iov_len.
 */
typedef struct IovCursor {
        const struct iovec *iov;
        unsigned n; /* segments */
        unsigned i; /* current segment */
        size_t off; /* offset in segment i */
} IovCursor;

/* Positions c at byte `offset` of the array (at its end when offset is beyond it). */
void iov_cursor_init(IovCursor *c, const struct iovec *iov, unsigned n, size_t offset);
/* Moves forward by len bytes; returns the bytes passed (fewer at the end). */
size_t iov_cursor_skip(IovCursor *c, size_t len);
/* The contiguous bytes at the cursor, without moving: a pointer and their count (NULL and 0 at the
 * end). */
uint8_t *iov_cursor_span(const IovCursor *c, size_t *ret_len);
/* Copies out of / into the array at the cursor and moves past the bytes copied; returns their count. */
size_t iov_cursor_read(IovCursor *c, void *buf, size_t len);
size_t iov_cursor_write(IovCursor *c, const void *buf, size_t len);
/* Copies len bytes from src's position to dst's, moving both; returns the bytes copied. */
size_t iov_cursor_copy(IovCursor *dst, IovCursor *src, size_t len);
