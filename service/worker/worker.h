/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * The vhost-user-video worker (architecture.md §2): one codec backend, one virtio-video device, one
 * listening vhost-user socket, and optionally the control socket to the manager (common/control.h), all
 * on one sd-event loop. main() is parse options, worker_new(), worker_start(), sd_event_loop(), and the
 * loop's exit code is the process's: 0 for SIGTERM/SIGINT, SHUTDOWN or EOF on the control socket, a
 * negative errno for a malformed control message or a control socket failure.
 */

#include <stdbool.h>
#include <stddef.h>

#include "worker/options.h"

typedef struct sd_event sd_event;
typedef struct VideoDevice VideoDevice;
typedef struct Worker Worker;

/* Creates the backend and the device; takes ownership of the fds named by the options (socket, device,
 * control), which are closed by worker_free() even when worker_new() fails. Nothing listens yet.
 * Start-up failures do not log: they return a negative errno and a one-line message in error[] (main()
 * prints "vhost-user-video: <message>"). */
int worker_new(sd_event *event, WorkerOptions *options, Worker **ret, char *error, size_t error_size);
Worker *worker_free(Worker *w);

/* Listens on the socket (path or inherited fd), watches the control socket, sends HELLO. With
 * handle_signals, SIGTERM and SIGINT end the loop with 0 (they must be blocked by the caller). */
int worker_start(Worker *w, bool handle_signals, char *error, size_t error_size);

VideoDevice *worker_get_device(Worker *w);
