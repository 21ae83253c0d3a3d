/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * The thin seam between the V4L2 backends and a V4L2 memory-to-memory node (architecture.md §3).
 * Production ops go through libv4l2; tests plug in the fake M2M device (tests/fakes/fake-v4l2.h).
 *
 * A "node" is the device node (one per backend); open() makes a new instance on it, which for a
 * memory-to-memory device is a new codec context: one per stream, plus one for capability probing.
 */

#include <stdint.h>
#include <sys/types.h>

typedef struct V4l2DeviceOps {
        /* A new instance of the node. -errno on failure (-EBUSY: no room for another context). */
        int (*open)(void *node, void **ret_dev);
        void (*close)(void *dev);
        /* 0 or -errno; never blocks (instances are non-blocking). */
        int (*ioctl)(void *dev, unsigned long request, void *arg);
        /* MAP_FAILED with errno set on failure, as mmap(2). */
        void *(*mmap)(void *dev, size_t length, int prot, int flags, off_t offset);
        int (*munmap)(void *dev, void *addr, size_t length);
        /* The fd to watch and the epoll events meaning "something may be dequeued". */
        int (*poll_fd)(void *dev, uint32_t *ret_events);
        /* Frees the node at backend_free() (NULL when the caller keeps it). */
        void (*node_free)(void *node);
} V4l2DeviceOps;

/* libv4l2 ops. The node is made from a path or from an fd the caller hands over (taken even on error). */
extern const V4l2DeviceOps v4l2_device_libv4l2_ops;
int v4l2_device_node_new(const char *path, int fd, void **ret_node);
