/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * The virtio-videod manager (architecture.md §2, §4; management-plane.md §6): the registry of attached
 * devices, one supervised vhost-user-video worker per device, the bus objects, persistence in the runtime
 * directory and the fd store, and the daemon's life cycle (readiness, watchdog, idle exit).
 */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <glib.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "common/control.h"
#include "common/macro.h"
#include "daemon/daemon-config.h"
#include "daemon/polkit.h"
#include "daemon/probe.h"
#include "daemon/state.h"

#define MANAGER_OBJECT_PATH "/org/virtiovideo/video1"
#define DEVICE_OBJECT_PREFIX "/org/virtiovideo/video1/device"
#define BUS_NAME "org.virtiovideo.video1"
#define MANAGER_INTERFACE "org.virtiovideo.video1.Manager"
#define DEVICE_INTERFACE "org.virtiovideo.video1.Device"

#define ATTACH_FLAG_REPLACE (UINT64_C(1) << 0)
#define ATTACH_FLAG_IF_MISSING (UINT64_C(1) << 1)
#define DETACH_FLAG_FORCE (UINT64_C(1) << 0)

typedef struct Manager Manager;
typedef struct Device Device;

typedef enum DeviceState {
        DEVICE_STATE_LISTENING,
        DEVICE_STATE_CONNECTED,
        DEVICE_STATE_DISCONNECTED,
        DEVICE_STATE_FAILED,
        _DEVICE_STATE_MAX,
        _DEVICE_STATE_INVALID = -22,
} DeviceState;

const char *device_state_to_string(DeviceState s);

typedef struct ManagerOptions {
        const char *runtime_dir; /* default /run/virtio-video */
        const char *config_path; /* NULL: the default path, which may be missing */
        const char *bus_address; /* NULL: see bus_user */
        bool bus_user;           /* session bus instead of the system bus */
        bool no_idle_exit;
        int log_level;           /* -1: from the config */
        const HostProbe *probe;  /* NULL: probe_v4l2 */
        const char *worker_path; /* NULL: $VIRTIO_VIDEOD_WORKER or WORKER_PATH */
} ManagerOptions;

struct Device {
        Manager *manager;
        DeviceSpec spec;
        char *object_path;
        char *key; /* "vm/alias" */
        char *label;
        char *fdname;
        char *state_file;
        const char *worker_backend;

        DeviceState state;
        uint64_t connected_usec;
        uint32_t peer_pid;
        uint32_t peer_uid;

        int listen_fd; /* server transport */
        int conn_fd;   /* fd transport: the worker's end of the current pair, until the worker has it */
        int host_fd;

        sd_bus_track *track;            /* BindToCaller */
        sd_event_source *unbind_source; /* deferred detach once the caller left */
        sd_bus_slot *machine_slot;      /* pending machined lookup of the peer */
        CtlPeer pending_peer;           /* the peer being looked up */
        char *peer_machine;             /* machined name of the peer, or NULL */

        pid_t worker_pid;
        uint64_t worker_started_usec;
        int control_fd;
        sd_event_source *control_source;
        sd_event_source *child_source;
        sd_event_source *restart_source;
        unsigned restart_count;
        bool worker_ready;
        uint32_t next_stats_cookie;
        GQueue *stats_requests; /* of StatsRequest* */
};

struct Manager {
        sd_event *event;
        sd_bus *bus;
        DaemonConfig config;
        const HostProbe *probe;
        char *runtime_dir;
        char *socket_dir;      /* <runtime>/vm */
        char *state_dir;       /* <runtime>/devices */
        char *static_dir;      /* <runtime>/static */
        char *static_conf_dir; /* <dir of config>/static.d */
        char *worker_path;
        bool no_idle_exit;
        bool use_fdstore;
        bool worker_sandbox; /* pass --sandbox: WorkerSandbox=yes and the worker lists "sandbox" */

        GHashTable *devices; /* "vm/alias" → Device* (owned) */
        PolkitRegistry *polkit;

        uint64_t n_attached_total;
        uint64_t n_detached_total;
        uint64_t n_worker_restarts;
        uint64_t n_peer_connections;
        uint64_t n_peer_rejections;
};

int manager_new(const ManagerOptions *o, Manager **ret);
Manager *manager_free(Manager *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(Manager *, manager_free);

/* Startup steps 2–4 of §6.6: adopt fds from the fd store and socket units, load state. */
int manager_startup(Manager *m);
/* Connect, register objects, take the name. */
int manager_connect_bus(Manager *m, const ManagerOptions *o);
/* Runs until SIGTERM/SIGINT, or idle exit. */
int manager_run(Manager *m);

bool manager_is_idle(Manager *m);
Device *manager_find_device(Manager *m, const char *vm, const char *alias);
unsigned manager_n_devices(Manager *m);

/* Attach: validated spec in, device out (listening, worker started, persisted, signalled). host_fd may be
 * -EBADF for software backends. listen_fd: an adopted listener, or -EBADF to create one. */
int manager_add_device(
        Manager *m, DeviceSpec *spec, int host_fd, int listen_fd, bool announce, Device **ret);
/* For the fd transport listen_fd is instead the worker's end of the connection (no listener, no state
 * file, no fd store entry: such a device does not survive a daemon restart). */
/* Detach: stop the worker, close and unlink the socket, forget state and fd store entry, signal. */
int manager_remove_device(Manager *m, Device *d);

/* notify helpers */
void manager_notify_status(Manager *m);
int manager_fdstore_remove(Manager *m, const char *fdname);

/* device.c */
int device_new(Manager *m, DeviceSpec *spec, Device **ret);
Device *device_free(Device *d);
int device_start_worker(Device *d);
void device_stop_worker(Device *d, bool graceful);
int device_request_stats(Device *d, sd_bus_message *m);
int device_set_worker_log_level(Device *d, int level);
int device_disconnect_peer(Device *d);
/* fd transport: a new socketpair; the worker is restarted on one end, *ret_fd gets the other. */
int device_open_connection(Device *d, int *ret_fd);
/* BindToCaller: detach the device when the sender of m leaves the bus. */
int device_bind_to_caller(Device *d, sd_bus_message *m);
bool device_is_fd_transport(const Device *d);
bool device_is_client_transport(const Device *d);

/* bus glue */
extern const sd_bus_vtable manager_vtable[];
extern const sd_bus_vtable device_vtable[];
extern const sd_bus_vtable log_control_vtable[];
int device_object_find(sd_bus *bus,
                       const char *path,
                       const char *interface,
                       void *userdata,
                       void **found,
                       sd_bus_error *error);
int device_node_enumerator(
        sd_bus *bus, const char *path, void *userdata, char ***nodes, sd_bus_error *error);
int device_send_changed(Device *d, const char *property, ...);
int manager_send_ndevices_changed(Manager *m);
