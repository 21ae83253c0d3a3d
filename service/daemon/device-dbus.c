/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include "common/bus-errors.h"
#include "common/log.h"
#include "common/macro.h"
#include "daemon/manager.h"

int bus_device_detach(Device *d, sd_bus_message *message, uint64_t flags, sd_bus_error *error);

int device_object_find(sd_bus *bus,
                       const char *path,
                       const char *interface,
                       void *userdata,
                       void **found,
                       sd_bus_error *error) {
        Manager *m = userdata;
        _cleanup_free_ char *vm = NULL, *alias = NULL;
        Device *d;
        int r;

        r = sd_bus_path_decode_many(path, DEVICE_OBJECT_PREFIX "/%/%", &vm, &alias);
        if (r <= 0)
                return r;
        d = manager_find_device(m, vm, alias);
        if (!d)
                return 0;
        *found = d;
        return 1;
}

int device_node_enumerator(
        sd_bus *bus, const char *path, void *userdata, char ***nodes, sd_bus_error *error) {
        Manager *m = userdata;
        GHashTableIter it;
        Device *d;
        char **l;
        size_t i = 0;

        l = calloc(manager_n_devices(m) + 1, sizeof(char *));
        if (!l)
                return -ENOMEM;
        g_hash_table_iter_init(&it, m->devices);
        while (g_hash_table_iter_next(&it, NULL, (void **) &d)) {
                l[i] = strdup(d->object_path);
                if (!l[i]) {
                        g_strfreev(l);
                        return -ENOMEM;
                }
                i++;
        }
        *nodes = l;
        return 1;
}

int device_send_changed(Device *d, const char *property, ...) {
        const char *names[8];
        size_t n = 0;
        va_list ap;

        if (!d->manager->bus)
                return 0;
        va_start(ap, property);
        for (const char *p = property; p && n < ELEMENTSOF(names) - 1; p = va_arg(ap, const char *))
                names[n++] = p;
        va_end(ap);
        names[n] = NULL;
        return sd_bus_emit_properties_changed_strv(d->manager->bus, d->object_path, DEVICE_INTERFACE,
                                                   (char **) names);
}

static int method_detach(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        Device *d = userdata;
        uint64_t flags;
        int r;

        r = sd_bus_message_read(message, "t", &flags);
        if (r < 0)
                return r;
        r = bus_device_detach(d, message, flags, error);
        if (r != 0)
                return r;
        return sd_bus_reply_method_return(message, NULL);
}

static int method_get_statistics(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        return device_request_stats(userdata, message);
}

static int method_open_connection(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        Device *d = userdata;
        _cleanup_close_ int fd = -EBADF;
        int r;

        if (!device_is_fd_transport(d))
                return sd_bus_error_setf(
                        error, SD_BUS_ERROR_NOT_SUPPORTED,
                        "Device %s/%s uses the %s transport; OpenConnection needs the fd transport",
                        d->spec.vm, d->spec.alias, d->spec.transport);
        {
                const char *details[9] = { "vm",          d->spec.vm,        "alias",
                                           d->spec.alias, "host_device",     d->spec.host_device,
                                           "verb",        "open-connection", NULL };
                /* the attach action: a new connection is what attaching with one gave */
                r = polkit_check(d->manager->polkit, message, "org.virtiovideo.video1.attach-device",
                                 details, d->spec.owner, error);
                if (r <= 0)
                        return r < 0 ? r : 1;
        }
        r = device_open_connection(d, &fd);
        if (r < 0)
                return sd_bus_error_set_errnof(error, r, "Failed to open a connection to %s/%s: %m",
                                               d->spec.vm, d->spec.alias);
        return sd_bus_reply_method_return(message, "h", fd);
}

static int property_get_uuid(sd_bus *bus,
                             const char *path,
                             const char *interface,
                             const char *property,
                             sd_bus_message *reply,
                             void *userdata,
                             sd_bus_error *error) {
        Device *d = userdata;

        return sd_bus_message_append_array(reply, 'y', d->spec.uuid, d->spec.uuid_size);
}

/* A getter for an enum property: the vtable entry's offset points userdata at the field (as machined's
 * BUS_DEFINE_PROPERTY_GET_ENUM does). */
#define DEFINE_PROPERTY_GET_ENUM(function, type, to_string)                                             \
        static int function(sd_bus *bus, const char *path, const char *interface, const char *property, \
                            sd_bus_message *reply, void *userdata, sd_bus_error *error) {               \
                const type *p = userdata;                                                               \
                                                                                                        \
                return sd_bus_message_append(reply, "s", to_string(*p));                                \
        }

DEFINE_PROPERTY_GET_ENUM(property_get_role, DeviceRole, device_role_to_string)
DEFINE_PROPERTY_GET_ENUM(property_get_backend, BackendKind, backend_kind_to_string)
DEFINE_PROPERTY_GET_ENUM(property_get_state, DeviceState, device_state_to_string)

static int property_get_socket_group(sd_bus *bus,
                                     const char *path,
                                     const char *interface,
                                     const char *property,
                                     sd_bus_message *reply,
                                     void *userdata,
                                     sd_bus_error *error) {
        Device *d = userdata;
        gid_t g = d->spec.socket_group;

        if (g == GID_INVALID)
                g = d->manager->config.socket_group ? d->manager->config.socket_gid : getegid();
        return sd_bus_message_append(reply, "u", (uint32_t) g);
}

static int property_get_worker_pid(sd_bus *bus,
                                   const char *path,
                                   const char *interface,
                                   const char *property,
                                   sd_bus_message *reply,
                                   void *userdata,
                                   sd_bus_error *error) {
        Device *d = userdata;

        return sd_bus_message_append(reply, "u", (uint32_t) (d->worker_pid > 0 ? d->worker_pid : 0));
}

static int property_get_peer_machine(sd_bus *bus,
                                     const char *path,
                                     const char *interface,
                                     const char *property,
                                     sd_bus_message *reply,
                                     void *userdata,
                                     sd_bus_error *error) {
        Device *d = userdata;

        return sd_bus_message_append(reply, "s", d->peer_machine ? d->peer_machine : "");
}

_Static_assert(sizeof(mode_t) == 4 && sizeof(uid_t) == 4 && sizeof(gid_t) == 4, "u properties");

const sd_bus_vtable device_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("VM", "s", NULL, offsetof(Device, spec.vm), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Alias", "s", NULL, offsetof(Device, spec.alias), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("VMUUID", "ay", property_get_uuid, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("HostDevice",
                        "s",
                        NULL,
                        offsetof(Device, spec.host_device),
                        SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("HostDeviceDriver",
                        "s",
                        NULL,
                        offsetof(Device, spec.driver),
                        SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("HostDeviceCard",
                        "s",
                        NULL,
                        offsetof(Device, spec.card),
                        SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Backend",
                        "s",
                        property_get_backend,
                        offsetof(Device, spec.backend),
                        SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Role",
                        "s",
                        property_get_role,
                        offsetof(Device, spec.role),
                        SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Protocol",
                        "s",
                        NULL,
                        offsetof(Device, spec.protocol),
                        SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Transport",
                        "s",
                        NULL,
                        offsetof(Device, spec.transport),
                        SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("SocketPath",
                        "s",
                        NULL,
                        offsetof(Device, spec.socket_path),
                        SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("SocketMode",
                        "u",
                        NULL,
                        offsetof(Device, spec.socket_mode),
                        SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("SocketUser",
                        "u",
                        NULL,
                        offsetof(Device, spec.socket_user),
                        SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("SocketGroup", "u", property_get_socket_group, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Owner", "u", NULL, offsetof(Device, spec.owner), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("CreatedTimestamp",
                        "t",
                        NULL,
                        offsetof(Device, spec.created_usec),
                        SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("State",
                        "s",
                        property_get_state,
                        offsetof(Device, state),
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("ConnectedTimestamp",
                        "t",
                        NULL,
                        offsetof(Device, connected_usec),
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("PeerPID",
                        "u",
                        NULL,
                        offsetof(Device, peer_pid),
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("PeerUID",
                        "u",
                        NULL,
                        offsetof(Device, peer_uid),
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("PeerMachine",
                        "s",
                        property_get_peer_machine,
                        0,
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("WorkerPID", "u", property_get_worker_pid, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_METHOD_WITH_ARGS("Detach",
                                SD_BUS_ARGS("t", flags),
                                SD_BUS_NO_RESULT,
                                method_detach,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("GetStatistics",
                                SD_BUS_NO_ARGS,
                                SD_BUS_RESULT("a{sv}", statistics),
                                method_get_statistics,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("OpenConnection",
                                SD_BUS_NO_ARGS,
                                SD_BUS_RESULT("h", connection),
                                method_open_connection,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

/* org.freedesktop.LogControl1 (systemctl service-log-level / service-log-target). The setters are left
 * privileged (no SD_BUS_VTABLE_UNPRIVILEGED): only root or the service's own user may change them. */
static const char *log_target = "auto";

static int property_get_log_level(sd_bus *bus,
                                  const char *path,
                                  const char *interface,
                                  const char *property,
                                  sd_bus_message *reply,
                                  void *userdata,
                                  sd_bus_error *error) {
        return sd_bus_message_append(reply, "s", log_level_to_string(log_get_max_level()));
}

static int property_set_log_level(sd_bus *bus,
                                  const char *path,
                                  const char *interface,
                                  const char *property,
                                  sd_bus_message *value,
                                  void *userdata,
                                  sd_bus_error *error) {
        Manager *m = userdata;
        GHashTableIter it;
        Device *d;
        const char *s;
        int r, level;

        r = sd_bus_message_read(value, "s", &s);
        if (r < 0)
                return r;
        level = log_level_from_string(s);
        if (level < 0)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "Invalid log level '%s'", s);
        log_set_max_level(level);
        g_hash_table_iter_init(&it, m->devices);
        while (g_hash_table_iter_next(&it, NULL, (void **) &d))
                (void) device_set_worker_log_level(d, level);
        log_info("Log level set to %s.", log_level_to_string(level));
        return 0;
}

static int property_get_log_target(sd_bus *bus,
                                   const char *path,
                                   const char *interface,
                                   const char *property,
                                   sd_bus_message *reply,
                                   void *userdata,
                                   sd_bus_error *error) {
        return sd_bus_message_append(reply, "s", log_target);
}

static int property_set_log_target(sd_bus *bus,
                                   const char *path,
                                   const char *interface,
                                   const char *property,
                                   sd_bus_message *value,
                                   void *userdata,
                                   sd_bus_error *error) {
        const char *s;
        int r;

        r = sd_bus_message_read(value, "s", &s);
        if (r < 0)
                return r;
        if (strcmp(s, "journal") == 0) {
                log_set_target_journal(true);
                log_target = "journal";
        } else if (strcmp(s, "console") == 0) {
                log_set_target_journal(false);
                log_target = "console";
        } else
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "Invalid log target '%s': expected journal or console", s);
        return 0;
}

static int property_get_ident(sd_bus *bus,
                              const char *path,
                              const char *interface,
                              const char *property,
                              sd_bus_message *reply,
                              void *userdata,
                              sd_bus_error *error) {
        return sd_bus_message_append(reply, "s", program_invocation_short_name);
}

const sd_bus_vtable log_control_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_WRITABLE_PROPERTY("LogLevel", "s", property_get_log_level, property_set_log_level, 0, 0),
        SD_BUS_WRITABLE_PROPERTY("LogTarget", "s", property_get_log_target, property_set_log_target, 0, 0),
        SD_BUS_PROPERTY("SyslogIdentifier", "s", property_get_ident, 0, 0),
        SD_BUS_VTABLE_END,
};

int manager_connect_bus(Manager *m, const ManagerOptions *o) {
        int r;

        if (o->bus_address) {
                r = sd_bus_new(&m->bus);
                if (r >= 0)
                        r = sd_bus_set_address(m->bus, o->bus_address);
                if (r >= 0)
                        r = sd_bus_set_bus_client(m->bus, true);
                if (r >= 0)
                        r = sd_bus_set_trusted(m->bus, false);
                if (r >= 0)
                        r = sd_bus_negotiate_creds(m->bus, true, SD_BUS_CREDS_UID | SD_BUS_CREDS_EUID);
                if (r >= 0)
                        r = sd_bus_start(m->bus);
        } else if (o->bus_user)
                r = sd_bus_open_user(&m->bus);
        else
                r = sd_bus_open_system(&m->bus);
        if (r < 0)
                return log_error_errno(r, "Failed to connect to the bus: %m");

        r = sd_bus_add_object_vtable(m->bus, NULL, MANAGER_OBJECT_PATH, MANAGER_INTERFACE, manager_vtable,
                                     m);
        if (r < 0)
                return log_error_errno(r, "Failed to register the Manager object: %m");
        r = sd_bus_add_fallback_vtable(m->bus, NULL, DEVICE_OBJECT_PREFIX, DEVICE_INTERFACE, device_vtable,
                                       device_object_find, m);
        if (r < 0)
                return log_error_errno(r, "Failed to register the Device objects: %m");
        r = sd_bus_add_node_enumerator(m->bus, NULL, DEVICE_OBJECT_PREFIX, device_node_enumerator, m);
        if (r < 0)
                return log_error_errno(r, "Failed to register the device enumerator: %m");
        r = sd_bus_add_object_vtable(m->bus, NULL, "/org/freedesktop/LogControl1",
                                     "org.freedesktop.LogControl1", log_control_vtable, m);
        if (r < 0)
                return log_error_errno(r, "Failed to register LogControl1: %m");
        /* losing the bus ends the daemon (systemd or the bus restarts it); never linger unreachable */
        r = sd_bus_set_exit_on_disconnect(m->bus, true);
        if (r < 0)
                return log_error_errno(r, "Failed to set exit on disconnect: %m");
        r = sd_bus_attach_event(m->bus, m->event, 0);
        if (r < 0)
                return log_error_errno(r, "Failed to attach the bus to the event loop: %m");
        r = sd_bus_request_name(m->bus, BUS_NAME, 0);
        if (r < 0)
                return log_error_errno(r, "Failed to take the name %s: %m", BUS_NAME);
        return 0;
}
