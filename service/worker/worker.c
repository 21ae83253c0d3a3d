/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <systemd/sd-event.h>

#include "backend/backend.h"
#include "common/control.h"
#include "common/log.h"
#include "common/macro.h"
#include "vhost/vhost.h"
#include "video/device.h"
#include "worker/worker.h"

/* --connect-path back-off: 100 ms doubling up to 5 s; reset by a successful connection. */
#define WORKER_RECONNECT_MIN_USEC (100 * UINT64_C(1000))
#define WORKER_RECONNECT_MAX_USEC (5 * UINT64_C(1000000))

struct Worker {
        sd_event *event;
        Backend *backend;
        VideoDevice *device;
        int socket_fd;      /* inherited listening socket until handed to the transport */
        int control_fd;     /* -1 without a manager */
        int connection_fd;  /* --connection-fd until handed to the transport */
        char *connect_path; /* --connect-path: we are the client of a frontend's server socket */
        sd_event_source *reconnect_source;
        uint64_t reconnect_delay_usec;
        sd_event_source *control_source;
        sd_event_source *sigterm_source, *sigint_source;
        char *socket_path;
        char backend_name[CTL_BACKEND_NAME_MAX];
        uid_t *allowed_uids;
        unsigned n_allowed_uids;
        bool control_broken;
};

Worker *worker_free(Worker *w) {
        if (!w)
                return NULL;
        sd_event_source_disable_unref(w->control_source);
        sd_event_source_disable_unref(w->reconnect_source);
        sd_event_source_disable_unref(w->sigterm_source);
        sd_event_source_disable_unref(w->sigint_source);
        /* Drop a connected frontend first, while the whole device is alive to reset its streams; then
         * the device (and with it the transport, which removes the socket file it created) goes before
         * the backend it borrows. */
        if (w->device) {
                vhost_dev_disconnect(video_device_get_vhost(w->device));
                video_device_free(w->device);
        }
        backend_free(w->backend);
        safe_close(w->socket_fd);
        safe_close(w->connection_fd);
        safe_close(w->control_fd);
        free(w->socket_path);
        free(w->connect_path);
        free(w->allowed_uids);
        sd_event_unref(w->event);
        free(w);
        return NULL;
}

DEFINE_TRIVIAL_CLEANUP_FUNC(Worker *, worker_free);

/* A start-up failure: a one-line message for main() to print, and r. */
_printf_(4, 5) static int startup_error(int r, char *error, size_t size, const char *fmt, ...) {
        va_list ap;
        int n;

        if (!error || size == 0)
                return r;
        va_start(ap, fmt);
        n = vsnprintf(error, size, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t) n < size)
                snprintf(error + n, size - (size_t) n, ": %s", strerror(-r));
        return r;
}

VideoDevice *worker_get_device(Worker *w) {
        return w ? w->device : NULL;
}

static void worker_control_send(Worker *w, const CtlMsg *m) {
        int r;

        if (w->control_fd < 0 || w->control_broken)
                return;
        r = ctl_send(w->control_fd, m);
        if (r == -EPIPE || r == -ECONNRESET) {
                /* The manager is gone; the EOF on the read side ends the loop. */
                w->control_broken = true;
                return;
        }
        if (r < 0)
                log_warning_errno(r, "Failed to send %s to the manager, ignoring: %m",
                                  ctl_msg_type_to_string(m->type));
}

static void worker_schedule_connect(Worker *w);

/* --connect-path: one attempt; on failure the next one is scheduled with back-off. */
static void worker_try_connect(Worker *w) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_close_ int fd = -EBADF;
        int r;

        if (vhost_dev_is_connected(video_device_get_vhost(w->device)))
                return;
        memcpy(sa.sun_path, w->connect_path, strlen(w->connect_path)); /* length checked by the options */
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
                log_warning_errno(-errno, "Failed to create a socket to connect to %s: %m", w->connect_path);
                worker_schedule_connect(w);
                return;
        }
        if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0) {
                log_debug_errno(-errno, "Cannot connect to %s yet, retrying in %llu ms: %m", w->connect_path,
                                (unsigned long long) (w->reconnect_delay_usec / 1000));
                worker_schedule_connect(w);
                return;
        }
        log_info("Connected to the frontend at %s.", w->connect_path);
        /* A refused peer (uid policy) comes back through worker_on_peer(), which schedules a retry. */
        r = vhost_dev_serve_fd(video_device_get_vhost(w->device), TAKE_FD(fd));
        if (r >= 0)
                w->reconnect_delay_usec = WORKER_RECONNECT_MIN_USEC;
        else if (r != -EPERM)
                worker_schedule_connect(w);
}

static int worker_on_reconnect(sd_event_source *s, uint64_t usec, void *userdata) {
        Worker *w = userdata;

        w->reconnect_source = sd_event_source_disable_unref(w->reconnect_source);
        worker_try_connect(w);
        return 0;
}

static void worker_schedule_connect(Worker *w) {
        uint64_t delay = w->reconnect_delay_usec;
        int r;

        if (w->reconnect_source || sd_event_get_state(w->event) == SD_EVENT_EXITING)
                return;
        w->reconnect_delay_usec = MIN(delay * 2, WORKER_RECONNECT_MAX_USEC);
        r = sd_event_add_time_relative(w->event, &w->reconnect_source, CLOCK_MONOTONIC, delay, 0,
                                       worker_on_reconnect, w);
        if (r < 0) {
                log_error_errno(r, "Failed to schedule a reconnection to %s, exiting: %m", w->connect_path);
                (void) sd_event_exit(w->event, r);
        }
}

static void worker_on_peer(void *userdata, bool connected, bool accepted, const struct ucred *cred) {
        Worker *w = userdata;
        CtlMsg m = {};

        /* Client transport: QEMU went away (or refused us); connect again once it is back. */
        if (w->connect_path && (!connected || !accepted))
                worker_schedule_connect(w);

        if (connected && accepted)
                m.type = CTL_MSG_PEER_CONNECTED;
        else if (connected)
                m.type = CTL_MSG_PEER_REJECTED;
        else
                m.type = CTL_MSG_PEER_DISCONNECTED;
        if (m.type != CTL_MSG_PEER_DISCONNECTED && cred)
                m.peer = (CtlPeer){ .pid = (uint32_t) cred->pid, .uid = cred->uid, .gid = cred->gid };
        worker_control_send(w, &m);
}

static int worker_handle_control_msg(Worker *w, const CtlMsg *m) {
        VideoDeviceStats s;
        CtlMsg reply = {};

        switch (m->type) {
        case CTL_MSG_STATS_REQUEST:
                video_device_get_stats(w->device, &s);
                reply.type = CTL_MSG_STATS;
                reply.stats = (CtlStats){
                        .cookie = m->stats_cookie,
                        .active_streams = s.active_streams,
                        .connections = s.connections,
                        .disconnects = s.disconnects,
                        .streams_created = s.streams_created,
                        .errors = s.errors,
                        .bytes_in = s.bytes_in,
                        .bytes_out = s.bytes_out,
                };
                worker_control_send(w, &reply);
                return 0;
        case CTL_MSG_SET_LOG_LEVEL:
                log_set_max_level((int) m->log_level);
                log_info("Log level set to %s by the manager.", log_level_to_string((int) m->log_level));
                return 0;
        case CTL_MSG_DISCONNECT_PEER:
                log_info("Disconnecting the frontend at the manager's request.");
                vhost_dev_disconnect(video_device_get_vhost(w->device));
                return 0;
        case CTL_MSG_SHUTDOWN:
                log_info("Shutting down at the manager's request.");
                return sd_event_exit(w->event, 0);
        case CTL_MSG_HELLO:
        case CTL_MSG_PEER_CONNECTED:
        case CTL_MSG_PEER_REJECTED:
        case CTL_MSG_PEER_DISCONNECTED:
        case CTL_MSG_STATS:
        case _CTL_MSG_TYPE_INVALID:
        default:
                /* A worker-to-manager type coming the other way is a protocol violation. */
                log_error("Unexpected control message %s from the manager.",
                          ctl_msg_type_to_string(m->type));
                return sd_event_exit(w->event, -EBADMSG);
        }
}

static int worker_on_control(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Worker *w = userdata;
        CtlMsg m;
        int r;

        /* Drain what is pending; each datagram is one message. */
        for (;;) {
                r = ctl_recv(fd, &m);
                if (r == -EAGAIN || r == -EINTR)
                        return 0;
                if (r == 0 || r == -ECONNRESET) {
                        log_info("The manager closed the control socket, exiting.");
                        return sd_event_exit(w->event, 0);
                }
                if (r == -EBADMSG) {
                        log_error_errno(r, "Malformed message on the control socket, exiting.");
                        return sd_event_exit(w->event, r);
                }
                if (r < 0) {
                        log_error_errno(r, "Failed to read the control socket: %m");
                        return sd_event_exit(w->event, r);
                }
                r = worker_handle_control_msg(w, &m);
                if (r < 0)
                        return r;
                if (sd_event_get_state(w->event) == SD_EVENT_EXITING)
                        return 0;
        }
}

static int worker_on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        Worker *w = userdata;

        log_info("Received %s, exiting.", strsignal((int) si->ssi_signo));
        return sd_event_exit(w->event, 0);
}

int worker_new(sd_event *event, WorkerOptions *o, Worker **ret, char *error, size_t error_size) {
        _cleanup_(worker_freep) Worker *w = NULL;
        BackendConfig bc = {
                .device_path = o->v4l2_device,
                .device_fd = o->device_fd,
                .force_copy = o->force_copy,
                .threads = o->threads,
        };
        VideoDeviceOptions vo = {};
        int r;

        w = calloc(1, sizeof(*w));
        if (!w)
                return startup_error(-ENOMEM, error, error_size, "cannot allocate the worker");
        w->event = sd_event_ref(event);
        /* Take the fds first, so they are closed on every failure below. */
        w->socket_fd = TAKE_FD(o->socket_fd);
        w->control_fd = TAKE_FD(o->control_fd);
        w->connection_fd = TAKE_FD(o->connection_fd);
        w->reconnect_delay_usec = WORKER_RECONNECT_MIN_USEC;
        o->device_fd = -EBADF;
        if (o->connect_path) {
                w->connect_path = strdup(o->connect_path);
                if (!w->connect_path) {
                        safe_close(bc.device_fd);
                        return startup_error(-ENOMEM, error, error_size, "cannot allocate the worker");
                }
        }
        if (o->socket_path) {
                w->socket_path = strdup(o->socket_path);
                if (!w->socket_path) {
                        safe_close(bc.device_fd);
                        return startup_error(-ENOMEM, error, error_size, "cannot allocate the worker");
                }
        }
        snprintf(w->backend_name, sizeof(w->backend_name), "%s", o->backend);
        if (o->n_allowed_uids > 0) {
                w->allowed_uids = calloc(o->n_allowed_uids, sizeof(uid_t));
                if (!w->allowed_uids) {
                        safe_close(bc.device_fd);
                        return startup_error(-ENOMEM, error, error_size, "cannot allocate the worker");
                }
                memcpy(w->allowed_uids, o->allowed_uids, o->n_allowed_uids * sizeof(uid_t));
                w->n_allowed_uids = o->n_allowed_uids;
        }

        /* Sandboxed, a V4L2 node cannot be opened by path at serve time (worker/sandbox.h): open it now, as
         * the manager does, so the backend holds it as an fd and makes its per-stream instances from that.
         */
        if (o->sandbox && bc.device_fd < 0 && strncmp(o->backend, "v4l2-", 5) == 0) {
                bc.device_fd = open(o->v4l2_device, O_RDWR | O_NONBLOCK | O_CLOEXEC);
                if (bc.device_fd < 0)
                        return startup_error(-errno, error, error_size, "cannot open V4L2 device '%s'",
                                             o->v4l2_device);
        }

        /* The backend takes bc.device_fd in every case (backend.h). */
        r = backend_new(o->backend, &bc, event, &w->backend);
        if (r < 0)
                return startup_error(r, error, error_size, "cannot set up the '%s' backend", o->backend);

        vo.allowed_uids = w->allowed_uids;
        vo.n_allowed_uids = w->n_allowed_uids;
        vo.peer = worker_on_peer;
        vo.userdata = w;
        r = video_device_new(event, w->backend, &vo, &w->device);
        if (r < 0)
                return startup_error(r, error, error_size, "cannot create the video device");

        *ret = TAKE_PTR(w);
        return 0;
}

int worker_start(Worker *w, bool handle_signals, char *error, size_t error_size) {
        VhostDev *v = video_device_get_vhost(w->device);
        int r;

        if (handle_signals) {
                r = sd_event_add_signal(w->event, &w->sigterm_source, SIGTERM, worker_on_signal, w);
                if (r < 0)
                        return startup_error(r, error, error_size, "cannot watch SIGTERM");
                r = sd_event_add_signal(w->event, &w->sigint_source, SIGINT, worker_on_signal, w);
                if (r < 0)
                        return startup_error(r, error, error_size, "cannot watch SIGINT");
        }

        if (w->socket_path) {
                r = vhost_dev_listen_path(v, w->socket_path);
                if (r < 0)
                        return startup_error(r, error, error_size, "cannot listen on '%s'", w->socket_path);
        } else if (w->socket_fd >= 0) {
                r = vhost_dev_listen_fd(v, TAKE_FD(w->socket_fd));
                if (r < 0)
                        return startup_error(r, error, error_size, "cannot serve the inherited socket");
        }

        if (w->control_fd >= 0) {
                CtlMsg hello = { .type = CTL_MSG_HELLO, .hello.pid = (uint32_t) getpid() };

                /* A manager that stops reading must not block the loop: sends fail with EAGAIN instead. */
                r = fcntl(w->control_fd, F_GETFL);
                if (r < 0 || fcntl(w->control_fd, F_SETFL, r | O_NONBLOCK) < 0)
                        return startup_error(-errno, error, error_size, "cannot set up the control socket");
                r = sd_event_add_io(w->event, &w->control_source, w->control_fd, EPOLLIN, worker_on_control,
                                    w);
                if (r < 0)
                        return startup_error(r, error, error_size, "cannot watch the control socket");
                memcpy(hello.hello.backend, w->backend_name, sizeof(hello.hello.backend));
                r = ctl_send(w->control_fd, &hello);
                if (r < 0)
                        return startup_error(r, error, error_size, "cannot send HELLO to the manager");
        }

        /* The frontend comes after HELLO, so the manager sees HELLO, then PEER_CONNECTED. */
        if (w->connection_fd >= 0) {
                r = vhost_dev_serve_fd(v, TAKE_FD(w->connection_fd));
                if (r < 0)
                        return startup_error(r, error, error_size, "cannot serve the inherited connection");
        } else if (w->connect_path)
                worker_try_connect(w);

        return 0;
}
