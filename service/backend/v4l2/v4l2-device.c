/* SPDX-License-Identifier: GPL-2.0-or-later */

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>

#include <libv4l2.h>

#include "backend/v4l2/v4l2-device.h"
#include "common/log.h"
#include "common/macro.h"

typedef struct V4l2Node {
        char *path;
        int fd;
        bool fd_in_use; /* an instance runs on a duplicate of fd (no /proc to reopen it through) */
} V4l2Node;

typedef struct V4l2Instance {
        V4l2Node *node;
        int fd;      /* registered with libv4l2 */
        bool shared; /* a duplicate of the node's fd */
} V4l2Instance;

int v4l2_device_node_new(const char *path, int fd, void **ret_node) {
        _cleanup_close_ int owned = fd;
        V4l2Node *n;

        if (owned < 0 && !path)
                return -EINVAL;
        n = calloc(1, sizeof(*n));
        if (!n)
                return -ENOMEM;
        n->fd = TAKE_FD(owned);
        if (path) {
                n->path = strdup(path);
                if (!n->path) {
                        safe_close(n->fd);
                        free(n);
                        return -ENOMEM;
                }
        }
        *ret_node = n;
        return 0;
}

static void node_free(void *node) {
        V4l2Node *n = node;

        if (!n)
                return;
        safe_close(n->fd);
        free(n->path);
        free(n);
}

/* Each stream needs its own open file description (its own mem2mem context). With an fd handed over by
 * the manager, the node is opened again through /proc/self/fd, which needs no access to /dev. Where
 * that fails (no /proc in the sandbox), one instance at a time runs on a duplicate of the fd itself. */
static int lv_open(void *node, void **ret_dev) {
        V4l2Node *n = node;
        _cleanup_close_ int fd = -EBADF;
        bool shared = false;
        char p[64];
        V4l2Instance *i;
        int lfd;

        if (n->fd >= 0) {
                (void) snprintf(p, sizeof(p), "/proc/self/fd/%d", n->fd);
                fd = open(p, O_RDWR | O_NONBLOCK | O_CLOEXEC);
                if (fd < 0 && !n->fd_in_use) {
                        log_debug_errno(errno,
                                        "Could not reopen the V4L2 device through %s, using its fd: %m", p);
                        fd = fcntl(n->fd, F_DUPFD_CLOEXEC, 3);
                        shared = fd >= 0;
                } else if (fd < 0)
                        return -EBUSY; /* no room for another context */
        } else
                fd = open(n->path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0)
                return -errno;

        i = calloc(1, sizeof(*i));
        if (!i)
                return -ENOMEM;
        /* Conversion off: the guest gets the device's own formats, and libv4l2 never copies. */
        lfd = v4l2_fd_open(fd, V4L2_DISABLE_CONVERSION);
        if (lfd < 0) {
                free(i);
                return -errno;
        }
        TAKE_FD(fd);
        i->node = n;
        i->fd = lfd;
        i->shared = shared;
        n->fd_in_use = n->fd_in_use || shared;
        *ret_dev = i;
        return 0;
}

static void lv_close(void *dev) {
        V4l2Instance *i = dev;

        if (!i)
                return;
        if (i->shared)
                i->node->fd_in_use = false;
        (void) v4l2_close(i->fd);
        free(i);
}

static int lv_ioctl(void *dev, unsigned long request, void *arg) {
        V4l2Instance *i = dev;

        if (v4l2_ioctl(i->fd, request, arg) < 0)
                return -errno;
        return 0;
}

static void *lv_mmap(void *dev, size_t length, int prot, int flags, off_t offset) {
        V4l2Instance *i = dev;

        return v4l2_mmap(NULL, length, prot, flags, i->fd, offset);
}

static int lv_munmap(void *dev, void *addr, size_t length) {
        if (v4l2_munmap(addr, length) < 0)
                return -errno;
        return 0;
}

static int lv_poll_fd(void *dev, uint32_t *ret_events) {
        V4l2Instance *i = dev;

        /* POLLIN: a CAPTURE buffer is done; POLLOUT: an OUTPUT buffer; POLLPRI: an event. */
        *ret_events = EPOLLIN | EPOLLOUT | EPOLLPRI;
        return i->fd;
}

const V4l2DeviceOps v4l2_device_libv4l2_ops = {
        .open = lv_open,
        .close = lv_close,
        .ioctl = lv_ioctl,
        .mmap = lv_mmap,
        .munmap = lv_munmap,
        .poll_fd = lv_poll_fd,
        .node_free = node_free,
};
