/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <systemd/sd-event.h>

#include "common/log.h"
#include "common/macro.h"
#include "config.h"
#include "video/device.h"
#include "worker/options.h"
#include "worker/sandbox.h"
#include "worker/worker.h"

static int set_log_context(const WorkerOptions *o) {
        _cleanup_free_ char *vm = NULL, *alias = NULL, *host = NULL;
        const char *fields[3];
        unsigned n = 0;

        if (o->vm) {
                if (asprintf(&vm, "VM=%s", o->vm) < 0)
                        return -ENOMEM;
                fields[n++] = vm;
        }
        if (o->alias) {
                if (asprintf(&alias, "ALIAS=%s", o->alias) < 0)
                        return -ENOMEM;
                fields[n++] = alias;
        }
        if (o->host_device) {
                if (asprintf(&host, "HOST_DEVICE=%s", o->host_device) < 0)
                        return -ENOMEM;
                fields[n++] = host;
        }
        return n > 0 ? log_set_context(fields, n) : 0;
}

/* Returns 0 for a clean exit, a negative errno otherwise; start-up failures are printed as one line. */
static int run(WorkerOptions *o) {
        _cleanup_(sd_event_unrefp) sd_event *event = NULL;
        char error[512] = "";
        Worker *w = NULL;
        const char *where;
        sigset_t mask;
        int r;

        r = set_log_context(o);
        if (r < 0)
                return log_error_errno(r, "Failed to set the log context: %m");

        /* sd_event_add_signal() needs the signals blocked. */
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return log_error_errno(errno, "Failed to block signals: %m");
        /* A frontend or the manager going away must be an error return, not SIGPIPE. */
        signal(SIGPIPE, SIG_IGN);

        r = sd_event_default(&event);
        if (r < 0)
                return log_error_errno(r, "Failed to allocate the event loop: %m");

        /* Until we serve, a failure is the one line below, which carries the cause: keep the layers'
         * own messages about it out (with --verbose everything is shown). */
        if (o->log_level < LOG_DEBUG)
                log_set_max_level(LOG_CRIT);
        where = o->socket_path          ? o->socket_path
                : o->connect_path       ? o->connect_path
                : o->connection_fd >= 0 ? "an inherited connection"
                                        : "an inherited socket";
        r = worker_new(event, o, &w, error, sizeof(error));
        if (r >= 0)
                r = worker_start(w, /* handle_signals= */ true, error, sizeof(error));
        log_set_max_level(o->log_level);
        if (r < 0)
                fprintf(stderr, WORKER_PROGRAM_NAME ": %s\n", error[0] ? error : strerror(-r));
        else {
                log_info("Serving a virtio-video %s (backend '%s') on %s%s.",
                         video_device_virtio_id(worker_get_device(w)) == VIDEO_DEVICE_ID_ENCODER ? "encoder"
                                                                                                 : "decoder",
                         o->backend, where, o->sandbox ? ", sandboxed" : "");
                /* Everything is set up and nothing has been accepted yet: no frontend ever talks to an
                 * unsandboxed worker. (The line above also opened the journal socket, if logging there.) */
                if (o->sandbox) {
                        if (o->connect_path)
                                sandbox_allow_unix_connect();
                        r = sandbox_apply(error, sizeof(error));
                        if (r < 0)
                                fprintf(stderr, WORKER_PROGRAM_NAME ": %s\n", error);
                }
                if (r >= 0)
                        r = sd_event_loop(event);
        }
        worker_free(w);
        return r;
}

int main(int argc, char **argv) {
        WorkerOptions o;
        char error[512];
        int r;

        log_set_ident(WORKER_PROGRAM_NAME);
        r = worker_options_parse(argc, argv, &o, error, sizeof(error));
        if (r < 0) {
                fprintf(stderr, WORKER_PROGRAM_NAME ": %s\n", error[0] ? error : strerror(-r));
                return EXIT_FAILURE;
        }

        switch (o.action) {
        case WORKER_ACTION_HELP:
                worker_print_help(stdout);
                worker_options_done(&o);
                return EXIT_SUCCESS;
        case WORKER_ACTION_VERSION:
                printf(WORKER_PROGRAM_NAME " " PROJECT_VERSION "\n");
                worker_options_done(&o);
                return EXIT_SUCCESS;
        case WORKER_ACTION_PRINT_CAPABILITIES:
                worker_print_capabilities(stdout);
                worker_options_done(&o);
                return EXIT_SUCCESS;
        case WORKER_ACTION_RUN:
                break;
        }

        r = worker_options_check(&o, error, sizeof(error));
        if (r < 0) {
                fprintf(stderr, WORKER_PROGRAM_NAME ": %s\n", error[0] ? error : strerror(-r));
                worker_options_done(&o);
                return EXIT_FAILURE;
        }

        if (o.sandbox) {
                /* Before any library opens anything, so only strays inherited by mistake go. */
                const int keep[] = { o.socket_fd, o.connection_fd, o.control_fd, o.device_fd };

                r = sandbox_close_inherited_fds(keep, ELEMENTSOF(keep));
                if (r < 0) {
                        fprintf(stderr,
                                WORKER_PROGRAM_NAME ": cannot close inherited file descriptors: %s\n",
                                strerror(-r));
                        worker_options_done(&o);
                        return EXIT_FAILURE;
                }
        }

        log_set_max_level(o.log_level);
        r = run(&o);
        worker_options_done(&o);
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
