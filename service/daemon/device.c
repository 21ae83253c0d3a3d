/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/control.h"
#include "common/log-ids.h"
#include "common/log.h"
#include "daemon/manager.h"

/* Worker restart back-off: 100 ms doubling up to 10 s; a worker that ran 10 s resets it. */
#define RESTART_DELAY_MIN_USEC (100 * UINT64_C(1000))
#define RESTART_DELAY_MAX_USEC (10 * UINT64_C(1000000))
#define RESTART_RESET_USEC (10 * UINT64_C(1000000))
#define STATS_REQUESTS_MAX 64

typedef struct StatsRequest {
        uint32_t cookie;
        sd_bus_message *message;
} StatsRequest;

static const char *const state_names[_DEVICE_STATE_MAX] = {
        [DEVICE_STATE_LISTENING] = "listening",
        [DEVICE_STATE_CONNECTED] = "connected",
        [DEVICE_STATE_DISCONNECTED] = "disconnected",
        [DEVICE_STATE_FAILED] = "failed",
};

const char *device_state_to_string(DeviceState s) {
        if (s < 0 || s >= _DEVICE_STATE_MAX)
                return NULL;
        return state_names[s];
}

static char *mfree_str(char *p) {
        free(p);
        return NULL;
}

static uint64_t now_usec(clockid_t clock) {
        struct timespec ts;

        clock_gettime(clock, &ts);
        return (uint64_t) ts.tv_sec * UINT64_C(1000000) + (uint64_t) ts.tv_nsec / 1000;
}

int device_new(Manager *m, DeviceSpec *spec, Device **ret) {
        Device *d;
        int r;

        d = calloc(1, sizeof(*d));
        if (!d)
                return -ENOMEM;
        d->manager = m;
        d->listen_fd = d->conn_fd = d->host_fd = d->control_fd = -EBADF;
        d->peer_uid = UINT32_MAX;
        d->state = DEVICE_STATE_LISTENING;
        d->spec = *spec;
        *spec = (DeviceSpec){};
        d->stats_requests = g_queue_new();

        r = vm_label(d->spec.vm, &d->label);
        if (r < 0)
                goto fail;
        r = device_fdname(d->spec.vm, d->spec.alias, &d->fdname);
        if (r < 0)
                goto fail;
        r = sd_bus_path_encode_many(&d->object_path, DEVICE_OBJECT_PREFIX "/%/%", d->spec.vm, d->spec.alias);
        if (r < 0)
                goto fail;
        if (asprintf(&d->key, "%s/%s", d->spec.vm, d->spec.alias) < 0 ||
            asprintf(&d->state_file, "%s/%s.%s.state", m->state_dir, d->label, d->spec.alias) < 0) {
                r = -ENOMEM;
                goto fail;
        }
        d->worker_backend = worker_backend_name(d->spec.backend, d->spec.role);
        if (!d->worker_backend) {
                r = -EINVAL;
                goto fail;
        }
        *ret = d;
        return 0;
fail:
        device_free(d);
        return r;
}

static void fail_stats_requests(Device *d, const char *why) {
        StatsRequest *q;

        while ((q = g_queue_pop_head(d->stats_requests))) {
                (void) sd_bus_reply_method_errorf(q->message, SD_BUS_ERROR_FAILED,
                                                  "Statistics of %s/%s unavailable: %s", d->spec.vm,
                                                  d->spec.alias, why);
                sd_bus_message_unref(q->message);
                free(q);
        }
}

Device *device_free(Device *d) {
        if (!d)
                return NULL;
        device_stop_worker(d, false);
        d->restart_source = sd_event_source_disable_unref(d->restart_source);
        d->unbind_source = sd_event_source_disable_unref(d->unbind_source);
        d->track = sd_bus_track_unref(d->track);
        d->machine_slot = sd_bus_slot_unref(d->machine_slot);
        free(d->peer_machine);
        safe_close(d->conn_fd);
        if (d->stats_requests) {
                fail_stats_requests(d, "the device is gone");
                g_queue_free(d->stats_requests);
        }
        safe_close(d->listen_fd);
        safe_close(d->host_fd);
        device_spec_done(&d->spec);
        free(d->object_path);
        free(d->key);
        free(d->label);
        free(d->fdname);
        free(d->state_file);
        free(d);
        return NULL;
}

bool device_is_fd_transport(const Device *d) {
        return strcmp(d->spec.transport, "fd") == 0;
}

bool device_is_client_transport(const Device *d) {
        return strcmp(d->spec.transport, "client") == 0;
}

/* What the device is when nobody is connected. */
static DeviceState idle_state(const Device *d) {
        return device_is_fd_transport(d) ? DEVICE_STATE_DISCONNECTED : DEVICE_STATE_LISTENING;
}

static void device_set_state(Device *d, DeviceState s) {
        if (d->state == s)
                return;
        d->state = s;
        (void) device_send_changed(d, "State", NULL);
        manager_notify_status(d->manager);
}

static void device_set_peer(Device *d, const CtlPeer *p) {
        if (p) {
                d->peer_pid = p->pid;
                d->peer_uid = p->uid;
                d->connected_usec = now_usec(CLOCK_REALTIME);
        } else {
                d->peer_pid = 0;
                d->peer_uid = UINT32_MAX;
                d->machine_slot = sd_bus_slot_unref(d->machine_slot);
                if (d->peer_machine) {
                        d->peer_machine = mfree_str(d->peer_machine);
                        (void) device_send_changed(d, "PeerMachine", NULL);
                }
        }
        (void) device_send_changed(d, "PeerPID", "PeerUID", "ConnectedTimestamp", NULL);
}

/* ---- PeerMachine: machined's GetMachineByPID on the daemon's bus ---- */

static void peer_accept(Device *d, const CtlPeer *p) {
        d->manager->n_peer_connections++;
        device_set_peer(d, p);
        device_set_state(d, DEVICE_STATE_CONNECTED);
}

static int on_machine_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        Device *d = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        _cleanup_free_ char *name = NULL;
        const char *path = NULL;
        CtlPeer p = d->pending_peer;
        int r;

        d->machine_slot = sd_bus_slot_unref(d->machine_slot);
        if (!e) {
                r = sd_bus_message_read(reply, "o", &path);
                if (r >= 0)
                        r = sd_bus_path_decode(path, "/org/freedesktop/machine1/machine", &name);
                if (r <= 0 || !name || !name[0])
                        name = mfree_str(name);
        }
        if (!d->spec.peer_machine) {
                /* No check asked for: fill in PeerMachine when resolvable. */
                if (name && d->state == DEVICE_STATE_CONNECTED) {
                        free(d->peer_machine);
                        d->peer_machine = TAKE_PTR(name);
                        (void) device_send_changed(d, "PeerMachine", NULL);
                }
                return 0;
        }
        if (name && strcmp(name, d->spec.peer_machine) == 0) {
                log_id(LOG_INFO, LOG_MESSAGE_PEER_CONNECTED,
                       "Peer pid %u uid %u of machine %s connected to %s/%s.", p.pid, p.uid, name,
                       d->spec.vm, d->spec.alias);
                d->peer_machine = TAKE_PTR(name);
                peer_accept(d, &p);
                (void) device_send_changed(d, "PeerMachine", NULL);
                return 0;
        }
        log_warning("Refused peer pid %u uid %u on %s/%s: it belongs to %s%s%s, not to machine %s.", p.pid,
                    p.uid, d->spec.vm, d->spec.alias, name ? "machine " : "no machine",
                    name ? name : (e && e->message ? " (" : ""),
                    name ? "" : (e && e->message ? e->message : ""), d->spec.peer_machine);
        d->manager->n_peer_rejections++;
        (void) device_disconnect_peer(d);
        return 0;
}

/* A peer passed the worker's uid check. Without PeerMachine it is connected now and its machine is looked
 * up for the property; with it, it is connected only once machined confirms the machine. */
static void peer_connected(Device *d, const CtlPeer *p) {
        Manager *m = d->manager;
        int r = -ENOTCONN;

        d->machine_slot = sd_bus_slot_unref(d->machine_slot);
        d->pending_peer = *p;
        if (m->bus && !device_is_fd_transport(d) && p->pid > 0)
                r = sd_bus_call_method_async(m->bus, &d->machine_slot, "org.freedesktop.machine1",
                                             "/org/freedesktop/machine1", "org.freedesktop.machine1.Manager",
                                             "GetMachineByPID", on_machine_reply, d, "u", p->pid);
        if (!d->spec.peer_machine || device_is_fd_transport(d)) {
                log_id(LOG_INFO, LOG_MESSAGE_PEER_CONNECTED, "Peer pid %u uid %u connected to %s/%s.",
                       p->pid, p->uid, d->spec.vm, d->spec.alias);
                peer_accept(d, p);
                return;
        }
        if (r < 0) {
                log_warning_errno(
                        r, "Refused peer pid %u uid %u on %s/%s: cannot ask machined for its machine: %m",
                        p->pid, p->uid, d->spec.vm, d->spec.alias);
                m->n_peer_rejections++;
                (void) device_disconnect_peer(d);
        }
}

static void reply_stats(Device *d, const CtlStats *st) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        StatsRequest *q = NULL;
        int r;

        for (GList *l = d->stats_requests->head; l; l = l->next) {
                StatsRequest *c = l->data;
                if (c->cookie == st->cookie) {
                        q = c;
                        g_queue_delete_link(d->stats_requests, l);
                        break;
                }
        }
        if (!q) {
                log_debug("Worker of %s/%s sent statistics nobody asked for (cookie %u), ignoring.",
                          d->spec.vm, d->spec.alias, st->cookie);
                return;
        }
        r = sd_bus_message_new_method_return(q->message, &reply);
        if (r >= 0)
                r = sd_bus_message_append(reply, "a{sv}", 8, "Connections", "t", st->connections,
                                          "Disconnects", "t", st->disconnects, "StreamsCreated", "t",
                                          st->streams_created, "ActiveStreams", "u", st->active_streams,
                                          "Errors", "t", st->errors, "BytesIn", "t", st->bytes_in,
                                          "BytesOut", "t", st->bytes_out, "WorkerRestarts", "t",
                                          (uint64_t) d->restart_count);
        if (r >= 0)
                r = sd_bus_send(NULL, reply, NULL);
        if (r < 0)
                log_warning_errno(r, "Failed to reply with statistics of %s/%s, ignoring: %m", d->spec.vm,
                                  d->spec.alias);
        sd_bus_message_unref(q->message);
        free(q);
}

static void handle_control_message(Device *d, const CtlMsg *msg) {
        Manager *m = d->manager;

        switch (msg->type) {
        case CTL_MSG_HELLO:
                log_debug("Worker %u of %s/%s is up (backend %s).", msg->hello.pid, d->spec.vm,
                          d->spec.alias, msg->hello.backend);
                d->worker_ready = true;
                /* fd transport: PEER_CONNECTED follows for the connection the worker was given */
                device_set_state(d, idle_state(d));
                break;
        case CTL_MSG_PEER_CONNECTED:
                peer_connected(d, &msg->peer);
                break;
        case CTL_MSG_PEER_REJECTED:
                log_warning("Refused peer pid %u uid %u on %s/%s: uid not allowed.", msg->peer.pid,
                            msg->peer.uid, d->spec.vm, d->spec.alias);
                m->n_peer_rejections++;
                break;
        case CTL_MSG_PEER_DISCONNECTED:
                log_id(LOG_INFO, LOG_MESSAGE_PEER_DISCONNECTED, "Peer of %s/%s disconnected.", d->spec.vm,
                       d->spec.alias);
                device_set_peer(d, NULL);
                device_set_state(d, idle_state(d));
                break;
        case CTL_MSG_STATS:
                reply_stats(d, &msg->stats);
                break;
        default:
                /* manager→worker types coming back: a confused worker */
                log_warning("Worker of %s/%s sent unexpected %s, ignoring.", d->spec.vm, d->spec.alias,
                            ctl_msg_type_to_string(msg->type));
                break;
        }
}

static int on_control(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Device *d = userdata;

        for (unsigned i = 0; i < 64; i++) {
                CtlMsg msg;
                int r = ctl_recv(fd, &msg);

                if (r == -EAGAIN || r == -EINTR)
                        return 0;
                if (r == 0) {
                        /* The worker closed its end: it is exiting; the child handler does the rest. */
                        d->control_source = sd_event_source_disable_unref(d->control_source);
                        d->control_fd = safe_close(d->control_fd);
                        return 0;
                }
                if (r < 0) {
                        log_error_errno(r, "Worker %d of %s/%s broke the control protocol, killing it: %m",
                                        (int) d->worker_pid, d->spec.vm, d->spec.alias);
                        d->control_source = sd_event_source_disable_unref(d->control_source);
                        d->control_fd = safe_close(d->control_fd);
                        if (d->worker_pid > 0)
                                (void) kill(d->worker_pid, SIGKILL);
                        return 0;
                }
                handle_control_message(d, &msg);
        }
        return 0;
}

static int on_restart_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Device *d = userdata;
        int r;

        d->restart_source = sd_event_source_disable_unref(d->restart_source);
        r = device_start_worker(d);
        if (r < 0) {
                log_error_errno(r, "Failed to restart the worker of %s/%s: %m", d->spec.vm, d->spec.alias);
                /* try again later, with the next back-off step */
                uint64_t delay =
                        MIN(RESTART_DELAY_MIN_USEC << MIN(d->restart_count, 10u), RESTART_DELAY_MAX_USEC);
                d->restart_count++;
                (void) sd_event_add_time_relative(d->manager->event, &d->restart_source, CLOCK_MONOTONIC,
                                                  delay, 0, on_restart_timer, d);
        }
        return 0;
}

static void log_exit(const siginfo_t *si, int level, const char *vm, const char *alias) {
        if (si->si_code != CLD_EXITED && si->si_status == SIGSYS)
                log_full(
                        level == LOG_DEBUG ? LOG_DEBUG : LOG_ERR,
                        "Worker %d of %s/%s was killed: it was refused a system call in its sandbox (SIGSYS; "
                        "its log names the call).",
                        (int) si->si_pid, vm, alias);
        else if (si->si_code == CLD_EXITED)
                log_full(level, "Worker %d of %s/%s exited with status %d.", (int) si->si_pid, vm, alias,
                         si->si_status);
        else
                log_full(level, "Worker %d of %s/%s was killed by signal %s.", (int) si->si_pid, vm, alias,
                         strsignal(si->si_status));
}

static int on_worker_exit(sd_event_source *s, const siginfo_t *si, void *userdata) {
        Device *d = userdata;
        uint64_t delay, ran;

        if (!d) {
                /* A detached device's worker finishing: drop the event loop's (floating) reference, the
                 * only one left (device_stop_worker() dropped ours). */
                log_exit(si, LOG_DEBUG, "detached", "device");
                sd_event_source_unref(s);
                return 0;
        }
        log_exit(si, LOG_WARNING, d->spec.vm, d->spec.alias);
        d->child_source = sd_event_source_unref(d->child_source);
        d->control_source = sd_event_source_disable_unref(d->control_source);
        d->control_fd = safe_close(d->control_fd);
        d->worker_pid = 0;
        d->worker_ready = false;
        fail_stats_requests(d, "the worker exited");
        (void) device_send_changed(d, "WorkerPID", NULL);
        if (d->peer_pid != 0 || d->peer_uid != UINT32_MAX)
                device_set_peer(d, NULL);
        if (device_is_fd_transport(d)) {
                /* The connection died with the worker: nothing to serve until OpenConnection. */
                device_set_state(d, DEVICE_STATE_DISCONNECTED);
                return 0;
        }
        device_set_state(d, DEVICE_STATE_FAILED);

        ran = now_usec(CLOCK_MONOTONIC) - d->worker_started_usec;
        if (ran >= RESTART_RESET_USEC)
                d->restart_count = 0;
        delay = MIN(RESTART_DELAY_MIN_USEC << MIN(d->restart_count, 10u), RESTART_DELAY_MAX_USEC);
        d->restart_count++;
        d->manager->n_worker_restarts++;
        log_id(LOG_NOTICE, LOG_MESSAGE_WORKER_RESTARTED, "Restarting the worker of %s/%s in %" PRIu64 " ms.",
               d->spec.vm, d->spec.alias, delay / 1000);
        return sd_event_add_time_relative(d->manager->event, &d->restart_source, CLOCK_MONOTONIC, delay, 0,
                                          on_restart_timer, d);
}

static char **worker_argv(Device *d) {
        GPtrArray *a = g_ptr_array_new();

        g_ptr_array_add(a, g_strdup(d->manager->worker_path));
        if (device_is_fd_transport(d))
                g_ptr_array_add(a, g_strdup("--connection-fd=3"));
        else if (device_is_client_transport(d))
                g_ptr_array_add(a, g_strdup_printf("--connect-path=%s", d->spec.socket_path));
        else
                g_ptr_array_add(a, g_strdup("--socket-fd=3"));
        g_ptr_array_add(a, g_strdup("--control-fd=4"));
        g_ptr_array_add(a, g_strdup_printf("--backend=%s", d->worker_backend));
        if (d->host_fd >= 0)
                g_ptr_array_add(a, g_strdup("--device-fd=5"));
        for (size_t i = 0; i < d->spec.n_allowed_uids; i++)
                g_ptr_array_add(a, g_strdup_printf("--allow-uid=%u", (unsigned) d->spec.allowed_uids[i]));
        if (d->spec.n_allowed_uids == 0 && d->spec.socket_user != UID_INVALID)
                g_ptr_array_add(a, g_strdup_printf("--allow-uid=%u", (unsigned) d->spec.socket_user));
        g_ptr_array_add(a, g_strdup_printf("--vm=%s", d->spec.vm));
        g_ptr_array_add(a, g_strdup_printf("--alias=%s", d->spec.alias));
        if (d->spec.host_device && d->spec.host_device[0])
                g_ptr_array_add(a, g_strdup_printf("--host-device=%s", d->spec.host_device));
        if (d->manager->worker_sandbox)
                g_ptr_array_add(a, g_strdup("--sandbox"));
        if (log_get_max_level() >= LOG_DEBUG)
                g_ptr_array_add(a, g_strdup("-v"));
        g_ptr_array_add(a, NULL);
        return (char **) g_ptr_array_free(a, FALSE);
}

/* In the child between fork() and exec(): only async-signal-safe calls. */
_Noreturn static void exec_worker(char **argv, int listen_fd, int control_fd, int host_fd) {
        int src[3] = { listen_fd, control_fd, host_fd }, tmp[3] = { -1, -1, -1 };
        sigset_t ss;

        sigemptyset(&ss);
        (void) sigprocmask(SIG_SETMASK, &ss, NULL);
        /* Move the three fds out of the way first, so placing them at 3, 4, 5 cannot clobber another. */
        for (int i = 0; i < 3; i++)
                if (src[i] >= 0) {
                        tmp[i] = fcntl(src[i], F_DUPFD_CLOEXEC, 10);
                        if (tmp[i] < 0)
                                _exit(126);
                }
        for (int i = 0; i < 3; i++)
                if (tmp[i] >= 0 && dup2(tmp[i], 3 + i) < 0)
                        _exit(126);
        (void) close_range(host_fd >= 0 ? 6 : 5, ~0U, 0);
        execv(argv[0], argv);
        _exit(127);
}

int device_start_worker(Device *d) {
        Manager *m = d->manager;
        int pair[2];
        pid_t pid;
        char **argv;
        int r;

        assert(d->worker_pid == 0);
        if (device_is_fd_transport(d) && d->conn_fd < 0) {
                device_set_state(d, DEVICE_STATE_DISCONNECTED);
                return 0; /* nothing to serve: OpenConnection starts one */
        }
        r = ctl_socketpair(pair);
        if (r < 0)
                return r;
        argv = worker_argv(d);
        pid = fork();
        if (pid < 0) {
                r = -errno;
                g_strfreev(argv);
                safe_close(pair[0]);
                safe_close(pair[1]);
                return r;
        }
        if (pid == 0)
                exec_worker(argv, device_is_fd_transport(d) ? d->conn_fd : d->listen_fd, pair[1],
                            d->host_fd);

        g_strfreev(argv);
        safe_close(pair[1]);
        /* The worker has the connection now; keeping a copy would hide its end from QEMU. */
        d->conn_fd = safe_close(d->conn_fd);
        d->control_fd = pair[0];
        d->worker_pid = pid;
        d->worker_ready = false;
        d->worker_started_usec = now_usec(CLOCK_MONOTONIC);
        if (fcntl(d->control_fd, F_SETFL, O_NONBLOCK) < 0)
                log_warning_errno(-errno, "Failed to make the control socket non-blocking, ignoring: %m");

        r = sd_event_add_child(m->event, &d->child_source, pid, WEXITED, on_worker_exit, d);
        if (r < 0) {
                (void) kill(pid, SIGKILL);
                (void) waitpid(pid, NULL, 0);
                d->worker_pid = 0;
                d->control_fd = safe_close(d->control_fd);
                return r;
        }
        r = sd_event_add_io(m->event, &d->control_source, d->control_fd, EPOLLIN, on_control, d);
        if (r < 0) {
                (void) kill(pid, SIGKILL);
                return r; /* the child handler restarts it */
        }
        if (log_get_max_level() != LOG_INFO) {
                CtlMsg msg = { .type = CTL_MSG_SET_LOG_LEVEL, .log_level = (uint32_t) log_get_max_level() };
                (void) ctl_send(d->control_fd, &msg);
        }
        log_debug("Started worker %d for %s/%s (backend %s).", (int) pid, d->spec.vm, d->spec.alias,
                  d->worker_backend);
        (void) device_send_changed(d, "WorkerPID", NULL);
        return 0;
}

void device_stop_worker(Device *d, bool graceful) {
        d->restart_source = sd_event_source_disable_unref(d->restart_source);
        if (graceful && d->control_fd >= 0) {
                CtlMsg msg = { .type = CTL_MSG_SHUTDOWN };
                (void) ctl_send(d->control_fd, &msg);
        }
        /* Closing the control socket alone makes a worker exit (EOF). */
        d->control_source = sd_event_source_disable_unref(d->control_source);
        d->control_fd = safe_close(d->control_fd);
        if (d->child_source) {
                if (graceful && d->worker_pid > 0)
                        (void) kill(d->worker_pid, SIGTERM);
                /* Keep reaping it without the device: the event loop owns the source from now on. Floating
                 * takes a reference of its own, so drop ours; then on_worker_exit() drops the loop's, or
                 * the loop does when it is freed first (the daemon exiting before the worker). */
                (void) sd_event_source_set_userdata(d->child_source, NULL);
                (void) sd_event_source_set_floating(d->child_source, true);
                d->child_source = sd_event_source_unref(d->child_source);
        }
        d->worker_pid = 0;
        d->worker_ready = false;
        if (d->stats_requests)
                fail_stats_requests(d, "the worker was stopped");
}

int device_request_stats(Device *d, sd_bus_message *m) {
        StatsRequest *q;
        CtlMsg msg = { .type = CTL_MSG_STATS_REQUEST };
        int r;

        if (d->control_fd < 0 || !d->worker_ready)
                return sd_bus_reply_method_errorf(m, SD_BUS_ERROR_FAILED,
                                                  "The worker of %s/%s is not running (state %s)",
                                                  d->spec.vm, d->spec.alias,
                                                  device_state_to_string(d->state));
        if (g_queue_get_length(d->stats_requests) >= STATS_REQUESTS_MAX)
                return sd_bus_reply_method_errorf(m, SD_BUS_ERROR_LIMITS_EXCEEDED,
                                                  "Too many statistics requests pending for %s/%s",
                                                  d->spec.vm, d->spec.alias);
        msg.stats_cookie = ++d->next_stats_cookie;
        r = ctl_send(d->control_fd, &msg);
        if (r < 0)
                return sd_bus_reply_method_errnof(m, r,
                                                  "Failed to ask the worker of %s/%s for statistics: %m",
                                                  d->spec.vm, d->spec.alias);
        q = calloc(1, sizeof(*q));
        if (!q)
                return -ENOMEM;
        q->cookie = msg.stats_cookie;
        q->message = sd_bus_message_ref(m);
        g_queue_push_tail(d->stats_requests, q);
        return 1;
}

int device_set_worker_log_level(Device *d, int level) {
        CtlMsg msg = { .type = CTL_MSG_SET_LOG_LEVEL, .log_level = (uint32_t) level };

        if (d->control_fd < 0)
                return 0;
        return ctl_send(d->control_fd, &msg);
}

int device_disconnect_peer(Device *d) {
        CtlMsg msg = { .type = CTL_MSG_DISCONNECT_PEER };

        if (d->control_fd < 0)
                return -ESRCH;
        return ctl_send(d->control_fd, &msg);
}

int device_open_connection(Device *d, int *ret_fd) {
        int pair[2], r;

        if (!device_is_fd_transport(d))
                return -EOPNOTSUPP;
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) < 0)
                return -errno;
        /* The old worker and its connection go (QEMU restarted, or wants a new one); a new worker
         * serves the new pair. */
        if (d->worker_pid > 0 || d->control_fd >= 0)
                device_stop_worker(d, true);
        if (d->peer_pid != 0 || d->peer_uid != UINT32_MAX)
                device_set_peer(d, NULL);
        device_set_state(d, DEVICE_STATE_DISCONNECTED);
        safe_close(d->conn_fd);
        d->conn_fd = pair[1];
        d->restart_count = 0;
        r = device_start_worker(d);
        if (r < 0) {
                d->conn_fd = safe_close(d->conn_fd);
                safe_close(pair[0]);
                return r;
        }
        *ret_fd = pair[0];
        return 0;
}

static int on_unbind(sd_event_source *s, void *userdata) {
        Device *d = userdata;

        d->unbind_source = sd_event_source_disable_unref(d->unbind_source);
        log_info("The caller that attached %s/%s left the bus (BindToCaller), detaching it.", d->spec.vm,
                 d->spec.alias);
        (void) manager_remove_device(d->manager, d); /* frees d */
        return 0;
}

static int on_caller_gone(sd_bus_track *t, void *userdata) {
        Device *d = userdata;

        /* Detach outside the track's own dispatch, which still holds the track. */
        if (d->unbind_source)
                return 0;
        return sd_event_add_defer(d->manager->event, &d->unbind_source, on_unbind, d);
}

int device_bind_to_caller(Device *d, sd_bus_message *m) {
        int r;

        d->track = sd_bus_track_unref(d->track);
        r = sd_bus_track_new(sd_bus_message_get_bus(m), &d->track, on_caller_gone, d);
        if (r < 0)
                return r;
        r = sd_bus_track_add_sender(d->track, m);
        if (r < 0)
                d->track = sd_bus_track_unref(d->track);
        return r;
}
