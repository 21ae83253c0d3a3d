/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/* What the tests of the vhost-user-video program as a black box share. */

#include <stddef.h>

#include "common/control.h"

/* How long any wait for the worker may take before the test fails: a bound, never a timing check. */
#define SAFETY_TIMEOUT_MS 20000

/* The vhost-user-video program of the build tree ($BUILD_ROOT). */
const char *worker_path(void);

/* ctl_recv() once fd is readable; -ETIMEDOUT after SAFETY_TIMEOUT_MS. */
int ctl_wait_recv(int fd, CtlMsg *m);

/* The test group's scratch directory from a mkdtemp() template (the sockets go there); SIGPIPE is
 * ignored, so a worker that hangs up fails a write instead of killing the test. */
void worker_tests_setup(char *dir, size_t size, const char *template);
