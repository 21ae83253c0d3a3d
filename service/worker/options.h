/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Command line of vhost-user-video (architecture.md §2, management-plane.md §6.6). The flags -s/-d/-b are
 * those of rust-vmm's vhost-user-video; the rest follow QEMU's vhost-user backend conventions
 * (--socket-fd, --print-capabilities) and the manager's contract (--control-fd, --device-fd,
 * --allow-uid, log context fields).
 *
 * Parsing and checking never log: they return a negative errno and a one-line message for the user, which
 * main() prints as "vhost-user-video: <message>".
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>

#define WORKER_PROGRAM_NAME "vhost-user-video"
#define WORKER_DEFAULT_V4L2_DEVICE "/dev/video0"
#define WORKER_MAX_ALLOWED_UIDS 64
#define WORKER_MAX_THREADS 64
/* sizeof(sun_path) - 1: the path and its NUL must fit struct sockaddr_un. */
#define WORKER_SOCKET_PATH_MAX 107

typedef enum WorkerAction {
        WORKER_ACTION_RUN,
        WORKER_ACTION_HELP,
        WORKER_ACTION_VERSION,
        WORKER_ACTION_PRINT_CAPABILITIES,
} WorkerAction;

typedef struct WorkerOptions {
        WorkerAction action;
        char *socket_path;   /* --socket-path, or NULL */
        int socket_fd;       /* --socket-fd, or -1 */
        int connection_fd;   /* --connection-fd: an already connected frontend (fd transport), or -1 */
        char *connect_path;  /* --connect-path: connect to a frontend's server socket (client), or NULL */
        char *v4l2_device;   /* --v4l2-device (default /dev/video0) */
        int device_fd;       /* --device-fd, or -1 */
        char *backend;       /* --backend */
        int control_fd;      /* --control-fd, or -1 */
        uid_t *allowed_uids; /* --allow-uid, repeatable */
        unsigned n_allowed_uids;
        bool force_copy;
        bool sandbox;     /* --sandbox: worker/sandbox.h after set-up */
        unsigned threads; /* 0 = automatic */
        char *vm, *alias, *host_device;
        int log_level; /* LOG_INFO, LOG_DEBUG with --verbose */
} WorkerOptions;

/* Fills *ret (always initialised, free with worker_options_done()). Returns 0, or -EINVAL with a message in
 * error[] for a bad flag, a bad value, an unknown backend, not exactly one of --socket-path, --socket-fd,
 * --connection-fd, --connect-path.
 * Uses getopt_long(), so it resets optind itself. */
int worker_options_parse(int argc, char **argv, WorkerOptions *ret, char *error, size_t error_size);
void worker_options_done(WorkerOptions *o);

/* Checks what the options name in the environment, before anything is created: the socket path is usable
 * (its directory exists, it is not a non-socket file), the inherited fds are what they claim to be, and
 * the V4L2 device exists for the v4l2 backends. Returns 0 or a negative errno with a message in error[]. */
int worker_options_check(const WorkerOptions *o, char *error, size_t error_size);

/* Writes the --help text. */
void worker_print_help(FILE *f);
/* Writes the --print-capabilities JSON (QEMU docs/interop/vhost-user.json convention). */
void worker_print_capabilities(FILE *f);
