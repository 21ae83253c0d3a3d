/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

#include <stddef.h>
#include <sys/uio.h>

/* Copy helpers over iovec arrays, bounded by both sides. Return the number of bytes copied. */
size_t iov_to_buf(const struct iovec *iov, unsigned n, size_t offset, void *buf, size_t len);
size_t buf_to_iov(const struct iovec *iov, unsigned n, size_t offset, const void *buf, size_t len);
/* Sum of the segment lengths, saturating at SIZE_MAX. */
size_t iov_size(const struct iovec *iov, unsigned n);
