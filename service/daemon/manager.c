/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "common/bus-errors.h"
#include "common/log-ids.h"
#include "common/log.h"
#include "config.h"
#include "daemon/manager.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(DIR *, closedir);
DEFINE_TRIVIAL_CLEANUP_FUNC(GHashTable *, g_hash_table_unref);

static void device_free_notify(void *p) {
        device_free(p);
}

/* Asks the worker binary once whether it can sandbox itself: "sandbox" in its --print-capabilities. */
static bool worker_has_sandbox(const char *worker_path) {
        char *argv[] = { (char *) worker_path, (char *) "--print-capabilities", NULL };
        _cleanup_free_ char *out = NULL;
        GError *err = NULL;
        int status = 0;

        if (!g_spawn_sync(NULL, argv, NULL, G_SPAWN_STDERR_TO_DEV_NULL | G_SPAWN_CLOEXEC_PIPES, NULL, NULL,
                          &out, NULL, &status, &err)) {
                log_warning("Cannot ask %s for its capabilities, running workers without a sandbox: %s",
                            worker_path, err->message);
                g_error_free(err);
                return false;
        }
        if (!g_spawn_check_wait_status(status, NULL)) {
                log_warning("%s --print-capabilities failed, running workers without a sandbox.",
                            worker_path);
                return false;
        }
        return out && strstr(out, "\"sandbox\"") != NULL;
}

int manager_new(const ManagerOptions *o, Manager **ret) {
        _cleanup_(manager_freep) Manager *m = NULL;
        _cleanup_free_ char *config_error = NULL, *conf_dir = NULL;
        const char *w;
        int r;

        m = calloc(1, sizeof(*m));
        if (!m)
                return log_oom();
        daemon_config_init(&m->config);
        m->devices = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, device_free_notify);
        m->polkit = polkit_registry_new();
        if (!m->polkit)
                return log_oom();
        m->probe = o->probe ? o->probe : &probe_v4l2;
        m->no_idle_exit = o->no_idle_exit;

        r = daemon_config_load(&m->config, o->config_path ? o->config_path : DAEMON_CONFIG_DEFAULT_PATH,
                               o->config_path != NULL, &config_error);
        if (r < 0)
                return log_error_errno(r, "Bad configuration: %s",
                                       config_error ? config_error : "(no message)");
        log_set_max_level(o->log_level >= 0 ? o->log_level : m->config.log_level);

        m->runtime_dir = strdup(o->runtime_dir ? o->runtime_dir : "/run/virtio-video");
        conf_dir = g_path_get_dirname(o->config_path ? o->config_path : DAEMON_CONFIG_DEFAULT_PATH);
        w = o->worker_path ? o->worker_path : getenv("VIRTIO_VIDEOD_WORKER");
        m->worker_path = strdup(w && *w ? w : WORKER_PATH);
        if (!m->runtime_dir || !m->worker_path || asprintf(&m->socket_dir, "%s/vm", m->runtime_dir) < 0 ||
            asprintf(&m->state_dir, "%s/devices", m->runtime_dir) < 0 ||
            asprintf(&m->static_dir, "%s/static", m->runtime_dir) < 0 ||
            asprintf(&m->static_conf_dir, "%s/static.d", conf_dir) < 0)
                return log_oom();
        if (m->runtime_dir[0] != '/' || !path_is_below(m->socket_dir, "/"))
                return log_error_errno(-EINVAL,
                                       "Runtime directory '%s' must be an absolute, normalized path.",
                                       m->runtime_dir);
        m->use_fdstore = getenv("NOTIFY_SOCKET") != NULL;
        if (m->config.worker_sandbox) {
                m->worker_sandbox = worker_has_sandbox(m->worker_path);
                log_debug("Workers run %s.", m->worker_sandbox ? "sandboxed (--sandbox)"
                                                               : "without a sandbox: the worker lacks one");
        } else
                log_info("Workers run without a sandbox (WorkerSandbox=no).");

        r = sd_event_default(&m->event);
        if (r < 0)
                return log_error_errno(r, "Failed to allocate the event loop: %m");
        *ret = TAKE_PTR(m);
        return 0;
}

Manager *manager_free(Manager *m) {
        if (!m)
                return NULL;
        if (m->devices)
                g_hash_table_destroy(m->devices);
        polkit_registry_free(m->polkit);
        sd_bus_flush_close_unref(m->bus);
        sd_event_unref(m->event);
        daemon_config_done(&m->config);
        free(m->runtime_dir);
        free(m->socket_dir);
        free(m->state_dir);
        free(m->static_dir);
        free(m->static_conf_dir);
        free(m->worker_path);
        free(m);
        return NULL;
}

Device *manager_find_device(Manager *m, const char *vm, const char *alias) {
        _cleanup_free_ char *key = NULL;

        if (asprintf(&key, "%s/%s", vm, alias) < 0)
                return NULL;
        return g_hash_table_lookup(m->devices, key);
}

unsigned manager_n_devices(Manager *m) {
        return g_hash_table_size(m->devices);
}

bool manager_is_idle(Manager *m) {
        return g_hash_table_size(m->devices) == 0 && polkit_registry_pending(m->polkit) == 0;
}

void manager_notify_status(Manager *m) {
        GHashTableIter it;
        Device *d;
        unsigned connected = 0;

        g_hash_table_iter_init(&it, m->devices);
        while (g_hash_table_iter_next(&it, NULL, (void **) &d))
                if (d->state == DEVICE_STATE_CONNECTED)
                        connected++;
        (void) sd_notifyf(false, "STATUS=Serving %u devices, %u connected.", manager_n_devices(m),
                          connected);
}

int manager_fdstore_remove(Manager *m, const char *fdname) {
        _cleanup_free_ char *s = NULL;

        if (!m->use_fdstore)
                return 0;
        if (asprintf(&s, "FDSTOREREMOVE=1\nFDNAME=%s", fdname) < 0)
                return -ENOMEM;
        return sd_notify(false, s);
}

static int fdstore_push(Manager *m, const char *fdname, int fd) {
        _cleanup_free_ char *s = NULL;
        int r;

        if (!m->use_fdstore)
                return 0;
        if (asprintf(&s, "FDSTORE=1\nFDNAME=%s", fdname) < 0)
                return -ENOMEM;
        r = sd_pid_notify_with_fds(0, false, s, &fd, 1);
        if (r < 0)
                return log_warning_errno(r, "Failed to put %s into the fd store, ignoring: %m", fdname);
        return 0;
}

static int mkdir_parents(const char *path, mode_t mode) {
        _cleanup_free_ char *p = strdup(path);

        if (!p)
                return -ENOMEM;
        for (char *s = strchr(p + 1, '/'); s; s = strchr(s + 1, '/')) {
                *s = 0;
                if (mkdir(p, mode) < 0 && errno != EEXIST)
                        return -errno;
                *s = '/';
        }
        return 0;
}

static gid_t effective_socket_group(Manager *m, const DeviceSpec *s) {
        if (s->socket_group != GID_INVALID)
                return s->socket_group;
        if (m->config.socket_group)
                return m->config.socket_gid;
        return GID_INVALID;
}

/* §3.5: bind while the directory is still private, fix mode and group, only then open the directory. */
static int create_listener(Manager *m, const DeviceSpec *s, int *ret_fd) {
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ char *dir = g_path_get_dirname(s->socket_path);
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        gid_t gid = effective_socket_group(m, s);
        struct stat st;
        bool new_dir = false;
        mode_t old_umask;
        int r;

        if (strlen(s->socket_path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, s->socket_path);

        r = mkdir_parents(dir, 0755);
        if (r < 0)
                return log_error_errno(r, "Failed to create the parents of %s: %m", dir);
        if (mkdir(dir, 0700) >= 0)
                new_dir = true;
        else if (errno != EEXIST)
                return log_error_errno(-errno, "Failed to create %s: %m", dir);

        if (lstat(s->socket_path, &st) >= 0) {
                if (!S_ISSOCK(st.st_mode))
                        return log_error_errno(-EEXIST, "%s exists and is not a socket.", s->socket_path);
                (void) unlink(s->socket_path); /* a stale socket of a device that is gone */
        }

        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        old_umask = umask(0177);
        r = bind(fd, (struct sockaddr *) &sa, sizeof(sa));
        umask(old_umask);
        if (r < 0)
                return log_error_errno(-errno, "Failed to bind %s: %m", s->socket_path);
        if (chown(s->socket_path, s->socket_user, gid) < 0 || chmod(s->socket_path, s->socket_mode) < 0) {
                r = -errno;
                (void) unlink(s->socket_path);
                return log_error_errno(r, "Failed to set owner or mode of %s: %m", s->socket_path);
        }
        if (listen(fd, SOMAXCONN) < 0) {
                r = -errno;
                (void) unlink(s->socket_path);
                return log_error_errno(r, "Failed to listen on %s: %m", s->socket_path);
        }
        if (new_dir && ((gid != GID_INVALID && chown(dir, (uid_t) -1, gid) < 0) || chmod(dir, 0750) < 0))
                log_warning_errno(-errno, "Failed to open up %s, ignoring: %m", dir);
        *ret_fd = TAKE_FD(fd);
        return 0;
}

static void remove_socket(const char *path) {
        _cleanup_free_ char *dir = g_path_get_dirname(path);

        if (unlink(path) < 0 && errno != ENOENT)
                log_warning_errno(-errno, "Failed to remove %s, ignoring: %m", path);
        (void) rmdir(dir); /* only when it was the VM's last socket */
}

int manager_add_device(
        Manager *m, DeviceSpec *spec, int host_fd, int listen_fd, bool announce, Device **ret) {
        Device *d = NULL;
        bool adopted = listen_fd >= 0, fd_transport = strcmp(spec->transport, "fd") == 0,
             client = strcmp(spec->transport, "client") == 0;
        int r;

        r = device_new(m, spec, &d);
        if (r < 0) {
                safe_close(host_fd);
                safe_close(listen_fd);
                return r;
        }
        d->host_fd = host_fd;
        if (fd_transport) {
                /* no listener, no socket file, no state: the connection is the device's whole transport */
                d->conn_fd = listen_fd;
                adopted = true;
                d->state = DEVICE_STATE_DISCONNECTED;
        } else if (client) {
                safe_close(listen_fd); /* nothing to listen on: the worker connects */
                adopted = true;
        } else
                d->listen_fd = listen_fd;
        if (!adopted) {
                r = create_listener(m, &d->spec, &d->listen_fd);
                if (r < 0)
                        goto fail;
        }
        if (!d->spec.static_instance && !fd_transport) {
                r = mkdir_parents(d->state_file, 0755);
                if (r >= 0)
                        r = device_spec_save(&d->spec, d->state_file);
                if (r < 0) {
                        log_error_errno(r, "Failed to write %s: %m", d->state_file);
                        goto fail_unlink;
                }
                /* adopted listeners are in the store already; a client has none */
                if (!adopted)
                        (void) fdstore_push(m, d->fdname, d->listen_fd);
        }
        g_hash_table_insert(m->devices, d->key, d);
        r = device_start_worker(d);
        if (r < 0) {
                log_error_errno(r, "Failed to start the worker of %s/%s: %m", d->spec.vm, d->spec.alias);
                g_hash_table_steal(m->devices, d->key);
                if (!d->spec.static_instance && !fd_transport) {
                        (void) unlink(d->state_file);
                        if (!adopted)
                                (void) manager_fdstore_remove(m, d->fdname);
                }
                goto fail_unlink;
        }

        m->n_attached_total++;
        if (announce) {
                log_id(LOG_INFO, LOG_MESSAGE_DEVICE_ATTACHED, "Attached %s/%s (%s%s%s) %s %s.", d->spec.vm,
                       d->spec.alias, d->worker_backend, d->spec.host_device[0] ? " on " : "",
                       d->spec.host_device,
                       client         ? "connecting to"
                       : fd_transport ? "over"
                                      : "at",
                       fd_transport ? "a connection" : d->spec.socket_path);
                if (m->bus)
                        (void) sd_bus_emit_signal(m->bus, MANAGER_OBJECT_PATH, MANAGER_INTERFACE,
                                                  "DeviceNew", "sso", d->spec.vm, d->spec.alias,
                                                  d->object_path);
                (void) manager_send_ndevices_changed(m);
        } else
                log_info("Restored %s/%s at %s.", d->spec.vm, d->spec.alias, d->spec.socket_path);
        manager_notify_status(m);
        if (ret)
                *ret = d;
        return 0;

fail_unlink:
        if (!adopted && !client && !fd_transport)
                remove_socket(d->spec.socket_path);
fail:
        device_free(d);
        return r;
}

int manager_remove_device(Manager *m, Device *d) {
        _cleanup_free_ char *vm = strdup(d->spec.vm), *alias = strdup(d->spec.alias),
                            *path = strdup(d->object_path);

        if (!vm || !alias || !path)
                return -ENOMEM;
        device_stop_worker(d, true);
        if (!d->spec.static_instance && !device_is_fd_transport(d)) {
                /* a static unit's socket belongs to systemd (RemoveOnStop=); QEMU's, to QEMU */
                if (!device_is_client_transport(d))
                        remove_socket(d->spec.socket_path);
                if (unlink(d->state_file) < 0 && errno != ENOENT)
                        log_warning_errno(-errno, "Failed to remove %s, ignoring: %m", d->state_file);
                (void) manager_fdstore_remove(m, d->fdname);
        }
        log_id(LOG_INFO, LOG_MESSAGE_DEVICE_DETACHED, "Detached %s/%s.", vm, alias);
        g_hash_table_remove(m->devices, d->key);
        m->n_detached_total++;
        if (m->bus)
                (void) sd_bus_emit_signal(m->bus, MANAGER_OBJECT_PATH, MANAGER_INTERFACE, "DeviceRemoved",
                                          "sso", vm, alias, path);
        (void) manager_send_ndevices_changed(m);
        manager_notify_status(m);
        return 0;
}

/* Opens and probes the host node of a restored or static device; fills driver and card. */
static int reopen_host_device(Manager *m, DeviceSpec *s, int *ret_fd) {
        _cleanup_close_ int fd = -EBADF;
        HostDeviceInfo info;
        int r;

        *ret_fd = -EBADF;
        if (s->backend != BACKEND_V4L2)
                return 0;
        if (!daemon_config_host_device_allowed(&m->config, s->host_device))
                return log_error_errno(-EPERM, "%s is not in AllowedHostDevices=.", s->host_device);
        fd = open(s->host_device, O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return log_error_errno(-errno, "Failed to open %s: %m", s->host_device);
        r = m->probe->probe(m->probe->userdata, fd, s->host_device, &info);
        if (r < 0)
                return log_error_errno(r, "Failed to probe %s: %m", s->host_device);
        if (!info.m2m ||
            !(info.roles & (s->role == DEVICE_ROLE_ENCODER ? HOST_ROLE_ENCODER : HOST_ROLE_DECODER)))
                return log_error_errno(-ENOTTY, "%s is not a %s.", s->host_device,
                                       device_role_to_string(s->role));
        free(s->driver);
        free(s->card);
        s->driver = strdup(info.driver);
        s->card = strdup(info.card);
        *ret_fd = TAKE_FD(fd);
        return 0;
}

/* Takes fd in every case. */
static int adopt_static(Manager *m, const char *instance, int fd) {
        _cleanup_(device_spec_done) DeviceSpec s = {};
        _cleanup_free_ char *conf = NULL, *error = NULL;
        _cleanup_close_ int listen_fd = fd;
        struct sockaddr_un sa = {};
        socklen_t len = sizeof(sa);
        int host_fd, r;

        if (asprintf(&conf, "%s/%s.conf", m->static_conf_dir, instance) < 0)
                return -ENOMEM;
        r = device_spec_load_static(conf, instance, &s, &error);
        if (r < 0)
                return log_error_errno(r, "Ignoring static socket %s: %s", instance, error ? error : "");
        if (manager_find_device(m, s.vm, s.alias))
                return log_error_errno(-EEXIST, "Ignoring static socket %s: %s/%s exists already.", instance,
                                       s.vm, s.alias);
        if (getsockname(listen_fd, (struct sockaddr *) &sa, &len) < 0 || sa.sun_family != AF_UNIX ||
            !sa.sun_path[0])
                return log_error_errno(-ENOTSOCK, "Ignoring static socket %s: not a named unix socket.",
                                       instance);
        s.socket_path = strndup(sa.sun_path, sizeof(sa.sun_path));
        if (!s.socket_path)
                return -ENOMEM;
        r = reopen_host_device(m, &s, &host_fd);
        if (r < 0)
                return r;
        return manager_add_device(m, &s, host_fd, TAKE_FD(listen_fd), false, NULL);
}

static void close_fd_value(void *p) {
        safe_close(GPOINTER_TO_INT(p));
}

static int restore_state(Manager *m, GHashTable *stored) {
        _cleanup_(closedirp) DIR *dir = NULL;
        struct dirent *de;

        dir = opendir(m->state_dir);
        if (!dir)
                return errno == ENOENT ? 0 : log_error_errno(-errno, "Failed to open %s: %m", m->state_dir);
        while ((de = readdir(dir))) {
                _cleanup_(device_spec_done) DeviceSpec s = {};
                _cleanup_free_ char *path = NULL, *error = NULL, *fdname = NULL;
                int host_fd = -EBADF, listen_fd = -EBADF, r;
                gpointer key, value;

                if (!g_str_has_suffix(de->d_name, ".state") || de->d_name[0] == '.')
                        continue;
                if (asprintf(&path, "%s/%s", m->state_dir, de->d_name) < 0)
                        return -ENOMEM;
                r = device_spec_load(path, &s, &error);
                if (r >= 0 &&
                    ((strcmp(s.transport, "server") == 0 && !path_is_below(s.socket_path, m->socket_dir)) ||
                     manager_find_device(m, s.vm, s.alias)))
                        r = -EINVAL;
                if (r < 0) {
                        log_error("Dropping bad state file %s: %s", path,
                                  error ? error : "invalid or duplicate");
                        (void) unlink(path);
                        continue;
                }
                r = device_fdname(s.vm, s.alias, &fdname);
                if (r < 0)
                        return r;
                if (strcmp(s.transport, "client") == 0)
                        ; /* nothing stored: the worker connects again */
                else if (g_hash_table_lookup_extended(stored, fdname, &key, &value)) {
                        g_hash_table_steal(stored, fdname);
                        free(key);
                        listen_fd = GPOINTER_TO_INT(value);
                } else
                        log_warning("No stored listener for %s/%s, binding %s again.", s.vm, s.alias,
                                    s.socket_path);
                r = reopen_host_device(m, &s, &host_fd);
                if (r >= 0)
                        r = manager_add_device(m, &s, host_fd, listen_fd, false, NULL);
                else
                        safe_close(listen_fd);
                if (r < 0) {
                        log_error_errno(r, "Failed to restore %s/%s, dropping it: %m", s.vm, s.alias);
                        (void) unlink(path);
                        (void) manager_fdstore_remove(m, fdname);
                }
        }
        return 0;
}

int manager_startup(Manager *m) {
        _cleanup_(g_hash_table_unrefp) GHashTable *stored = NULL;
        char **names = NULL;
        GHashTableIter it;
        gpointer key;
        int n, r;

        stored = g_hash_table_new_full(g_str_hash, g_str_equal, free, close_fd_value);
        n = sd_listen_fds_with_names(true, &names);
        if (n < 0)
                log_warning_errno(n, "Failed to get passed file descriptors, ignoring: %m");
        for (int i = 0; i < n; i++) {
                int fd = SD_LISTEN_FDS_START + i;
                const char *name = names && names[i] ? names[i] : "unknown";

                (void) fcntl(fd, F_SETFD, FD_CLOEXEC);
                if (strncmp(name, "dev-", 4) == 0 && sd_is_socket_unix(fd, SOCK_STREAM, 1, NULL, 0) > 0 &&
                    !g_hash_table_contains(stored, name)) {
                        g_hash_table_insert(stored, strdup(name), GINT_TO_POINTER(fd));
                } else if (strncmp(name, "static-", 7) == 0 && name[7] &&
                           sd_is_socket_unix(fd, SOCK_STREAM, 1, NULL, 0) > 0 && !strchr(name, '/')) {
                        (void) adopt_static(m, name + 7, fd); /* logs; a bad one is dropped */
                } else {
                        log_warning("Dropping unknown passed file descriptor '%s'.", name);
                        (void) manager_fdstore_remove(m, name);
                        safe_close(fd);
                }
        }
        g_strfreev(names);

        r = restore_state(m, stored);
        if (r < 0)
                return r;

        g_hash_table_iter_init(&it, stored);
        while (g_hash_table_iter_next(&it, &key, NULL)) {
                log_warning("Dropping stored listener %s without state.", (const char *) key);
                (void) manager_fdstore_remove(m, key);
        }
        return 0;
}

static int on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        Manager *m = userdata;

        log_info("Received SIG%s, exiting.", sigabbrev_np((int) si->ssi_signo));
        (void) sd_notify(false, "STOPPING=1");
        return sd_event_exit(m->event, 0);
}

int manager_run(Manager *m) {
        int r;

        r = sd_event_add_signal(m->event, NULL, SIGTERM, on_signal, m);
        if (r >= 0)
                r = sd_event_add_signal(m->event, NULL, SIGINT, on_signal, m);
        if (r < 0)
                return log_error_errno(r, "Failed to watch signals: %m");
        r = sd_event_set_watchdog(m->event, true);
        if (r < 0)
                log_warning_errno(r, "Failed to enable the watchdog, ignoring: %m");

        (void) sd_notify(false, "READY=1");
        manager_notify_status(m);
        log_info("Serving %u devices.", manager_n_devices(m));

        for (;;) {
                bool idle = !m->no_idle_exit && m->config.idle_exit_usec > 0 && manager_is_idle(m);

                r = sd_event_get_state(m->event);
                if (r < 0)
                        return r;
                if (r == SD_EVENT_FINISHED)
                        break;
                r = sd_event_run(m->event, idle ? m->config.idle_exit_usec : UINT64_MAX);
                if (r < 0)
                        return log_error_errno(r, "Event loop failed: %m");
                if (r == 0 && idle && manager_is_idle(m)) {
                        log_info("Nothing attached for a while, exiting.");
                        (void) sd_notify(false, "STOPPING=1");
                        /* machined's pattern: give the name up, then serve what was queued already */
                        r = sd_bus_release_name(m->bus, BUS_NAME);
                        if (r < 0)
                                log_warning_errno(r, "Failed to release the bus name, ignoring: %m");
                        while (sd_bus_process(m->bus, NULL) > 0)
                                ;
                        break;
                }
        }
        return 0;
}
