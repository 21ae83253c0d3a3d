/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "worker-process.h"

const char *worker_path(void) {
        static char path[4096];
        const char *root = getenv("BUILD_ROOT");

        assert_non_null(root);
        snprintf(path, sizeof(path), "%s/service/worker/vhost-user-video", root);
        return path;
}

int ctl_wait_recv(int fd, CtlMsg *m) {
        struct pollfd p = { .fd = fd, .events = POLLIN };

        if (poll(&p, 1, SAFETY_TIMEOUT_MS) <= 0)
                return -ETIMEDOUT;
        return ctl_recv(fd, m);
}

void worker_tests_setup(char *dir, size_t size, const char *template) {
        snprintf(dir, size, "%s", template);
        assert_non_null(mkdtemp(dir));
        signal(SIGPIPE, SIG_IGN);
}
