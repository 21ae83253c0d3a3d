/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <grp.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/bus-errors.h"
#include "common/log.h"
#include "config.h"
#include "daemon/manager.h"

#define ALIAS_AUTO_MAX 1000

DEFINE_TRIVIAL_CLEANUP_FUNC(GHashTable *, g_hash_table_unref);

static uint64_t now_realtime(void) {
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t) ts.tv_sec * UINT64_C(1000000) + (uint64_t) ts.tv_nsec / 1000;
}

/* What AttachDevice was asked for, before anything is touched. */
typedef struct AttachRequest {
        DeviceSpec spec;
        DeviceRole role_requested;
        bool alias_given;
        bool socket_path_given;
        bool bind_to_caller;
        bool with_connection; /* AttachDeviceWithConnection: the fd transport */
        uint64_t flags;
} AttachRequest;

static void attach_request_done(AttachRequest *a) {
        device_spec_done(&a->spec);
}

static bool gid_is_ours(gid_t gid) {
        gid_t groups[NGROUPS_MAX];
        int n;

        if (geteuid() == 0 || gid == getegid())
                return true;
        n = getgroups(ELEMENTSOF(groups), groups);
        for (int i = 0; i < n; i++)
                if (groups[i] == gid)
                        return true;
        return false;
}

static int read_string_option(sd_bus_message *m, const char *key, char **ret, sd_bus_error *error) {
        const char *v;
        int r;

        r = sd_bus_message_read(m, "v", "s", &v);
        if (r < 0)
                return r;
        free(*ret);
        *ret = strdup(v);
        return *ret ? 0 : -ENOMEM;
}

/* Reads the a{sv} of §6.2; each value must have exactly the documented type. */
static int parse_options(sd_bus_message *m, AttachRequest *a, sd_bus_error *error) {
        static const struct {
                const char *key;
                const char *type;
        } known[] = {
                { "Alias", "s" },        { "Role", "s" },
                { "Protocol", "s" },     { "VMUUID", "ay" },
                { "Transport", "s" },    { "SocketPath", "s" },
                { "SocketMode", "u" },   { "SocketGroup", "u" },
                { "SocketUser", "u" },   { "AllowedPeerUIDs", "au" },
                { "PeerMachine", "s" },  { "Exclusive", "b" },
                { "BindToCaller", "b" }, { "Backend", "s" },
        };
        _cleanup_free_ char *role = NULL, *backend = NULL;
        int r;

        r = sd_bus_message_enter_container(m, 'a', "{sv}");
        if (r < 0)
                return r;
        for (;;) {
                const char *key, *contents;
                size_t i;
                char type;

                r = sd_bus_message_enter_container(m, 'e', "sv");
                if (r < 0)
                        return r;
                if (r == 0)
                        break;
                r = sd_bus_message_read(m, "s", &key);
                if (r < 0)
                        return r;
                for (i = 0; i < ELEMENTSOF(known); i++)
                        if (strcmp(key, known[i].key) == 0)
                                break;
                if (i >= ELEMENTSOF(known))
                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "Unknown option '%s'",
                                                 key);
                r = sd_bus_message_peek_type(m, &type, &contents);
                if (r < 0)
                        return r;
                if (type != 'v' || strcmp(contents, known[i].type) != 0)
                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                                 "Option '%s' must be of type '%s', got '%s'", key,
                                                 known[i].type, contents);

                if (strcmp(key, "Alias") == 0) {
                        r = read_string_option(m, key, &a->spec.alias, error);
                        a->alias_given = true;
                } else if (strcmp(key, "Role") == 0)
                        r = read_string_option(m, key, &role, error);
                else if (strcmp(key, "Backend") == 0)
                        r = read_string_option(m, key, &backend, error);
                else if (strcmp(key, "Protocol") == 0)
                        r = read_string_option(m, key, &a->spec.protocol, error);
                else if (strcmp(key, "Transport") == 0)
                        r = read_string_option(m, key, &a->spec.transport, error);
                else if (strcmp(key, "SocketPath") == 0) {
                        r = read_string_option(m, key, &a->spec.socket_path, error);
                        a->socket_path_given = true;
                } else if (strcmp(key, "PeerMachine") == 0)
                        r = read_string_option(m, key, &a->spec.peer_machine, error);
                else if (strcmp(key, "VMUUID") == 0) {
                        const void *p;
                        size_t n;
                        r = sd_bus_message_enter_container(m, 'v', "ay");
                        if (r >= 0)
                                r = sd_bus_message_read_array(m, 'y', &p, &n);
                        if (r >= 0)
                                r = sd_bus_message_exit_container(m);
                        if (r >= 0 && n != 0 && n != 16)
                                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                                         "VMUUID must be 16 bytes or empty, got %zu", n);
                        if (r >= 0) {
                                memcpy(a->spec.uuid, p, n);
                                a->spec.uuid_size = n;
                        }
                } else if (strcmp(key, "SocketMode") == 0 || strcmp(key, "SocketGroup") == 0 ||
                           strcmp(key, "SocketUser") == 0) {
                        uint32_t u;
                        r = sd_bus_message_read(m, "v", "u", &u);
                        if (r < 0)
                                return r;
                        if (key[6] == 'M') {
                                if (u > 0777 || (u & 0600) != 0600)
                                        return sd_bus_error_setf(
                                                error, SD_BUS_ERROR_INVALID_ARGS,
                                                "Invalid SocketMode %04o: must be at most 0777 and include 0600",
                                                u);
                                a->spec.socket_mode = u;
                        } else if (key[6] == 'G') {
                                if (u == UINT32_MAX || !gid_is_ours(u))
                                        return sd_bus_error_setf(
                                                error, SD_BUS_ERROR_INVALID_ARGS,
                                                "SocketGroup %u is not one of the service's groups", u);
                                a->spec.socket_group = u;
                        } else {
                                if (u == UINT32_MAX || (geteuid() != 0 && u != geteuid()))
                                        return sd_bus_error_setf(
                                                error, SD_BUS_ERROR_INVALID_ARGS,
                                                "SocketUser %u cannot be set: the service lacks CAP_CHOWN",
                                                u);
                                a->spec.socket_user = u;
                        }
                } else if (strcmp(key, "AllowedPeerUIDs") == 0) {
                        const void *p;
                        size_t n;
                        r = sd_bus_message_enter_container(m, 'v', "au");
                        if (r >= 0)
                                r = sd_bus_message_read_array(m, 'u', &p, &n);
                        if (r >= 0)
                                r = sd_bus_message_exit_container(m);
                        if (r < 0)
                                return r;
                        n /= sizeof(uint32_t);
                        if (n > ALLOWED_UIDS_MAX)
                                return sd_bus_error_setf(
                                        error, SD_BUS_ERROR_INVALID_ARGS,
                                        "AllowedPeerUIDs has %zu entries, at most %d are allowed", n,
                                        ALLOWED_UIDS_MAX);
                        free(a->spec.allowed_uids);
                        a->spec.allowed_uids = n ? calloc(n, sizeof(uid_t)) : NULL;
                        if (n && !a->spec.allowed_uids)
                                return -ENOMEM;
                        for (size_t j = 0; j < n; j++) {
                                uint32_t u;
                                memcpy(&u, (const uint8_t *) p + j * sizeof(u), sizeof(u));
                                if (u == UINT32_MAX)
                                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                                                 "Invalid uid in AllowedPeerUIDs");
                                a->spec.allowed_uids[j] = u;
                        }
                        a->spec.n_allowed_uids = n;
                } else if (strcmp(key, "Exclusive") == 0) {
                        int b;
                        r = sd_bus_message_read(m, "v", "b", &b);
                        a->spec.exclusive = b;
                } else { /* BindToCaller */
                        int b;
                        r = sd_bus_message_read(m, "v", "b", &b);
                        a->bind_to_caller = b;
                }
                if (r < 0)
                        return r;
                r = sd_bus_message_exit_container(m);
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_exit_container(m);
        if (r < 0)
                return r;

        if (a->spec.peer_machine && !a->spec.peer_machine[0]) {
                free(a->spec.peer_machine); /* "" means no check */
                a->spec.peer_machine = NULL;
        } else if (a->spec.peer_machine && !vm_name_is_valid(a->spec.peer_machine))
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "Invalid PeerMachine '%s'",
                                         a->spec.peer_machine);
        a->role_requested = role ? device_role_from_string(role) : DEVICE_ROLE_AUTO;
        if (a->role_requested < 0)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "Invalid Role '%s': expected auto, decoder or encoder", role);
        a->spec.backend = backend ? backend_kind_from_string(backend) : BACKEND_V4L2;
        if (a->spec.backend < 0)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "Invalid Backend '%s': expected v4l2, ffmpeg or null", backend);
        if (a->alias_given && !alias_is_valid(a->spec.alias))
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "Invalid alias '%s': expected 1 to 16 of a-z, 0-9, '_', '-'",
                                         a->spec.alias);
        if (!a->spec.protocol)
                a->spec.protocol = strdup("virtio-video");
        else if (strcmp(a->spec.protocol, "virtio-video") != 0)
                return sd_bus_error_setf(error, BUS_ERROR_UNSUPPORTED_PROTOCOL,
                                         "Protocol '%s' is not supported (this version speaks virtio-video)",
                                         a->spec.protocol);
        if (!a->spec.transport)
                a->spec.transport = strdup(a->with_connection ? "fd" : "server");
        else if (a->with_connection && strcmp(a->spec.transport, "fd") != 0)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "AttachDeviceWithConnection uses the fd transport, not '%s'",
                                         a->spec.transport);
        else if (!a->with_connection && strcmp(a->spec.transport, "fd") == 0)
                return sd_bus_error_set(error, SD_BUS_ERROR_INVALID_ARGS,
                                        "The fd transport needs AttachDeviceWithConnection");
        else if (strcmp(a->spec.transport, "server") != 0 && strcmp(a->spec.transport, "client") != 0 &&
                 strcmp(a->spec.transport, "fd") != 0)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "Invalid Transport '%s': expected server, client or fd",
                                         a->spec.transport);
        if (!a->spec.protocol || !a->spec.transport)
                return -ENOMEM;
        /* The pair is ours, so its peer is the service itself: nothing machined could check. */
        if (a->spec.peer_machine && strcmp(a->spec.transport, "fd") == 0)
                return sd_bus_error_set(error, SD_BUS_ERROR_INVALID_ARGS,
                                        "PeerMachine cannot be checked on the fd transport");
        return 0;
}

static int validate_socket_path(Manager *m, AttachRequest *a, sd_bus_error *error) {
        if (strcmp(a->spec.transport, "fd") == 0) {
                if (a->socket_path_given && a->spec.socket_path[0])
                        return sd_bus_error_set(error, SD_BUS_ERROR_INVALID_ARGS,
                                                "The fd transport takes no SocketPath");
                free(a->spec.socket_path);
                a->spec.socket_path = strdup("");
                return a->spec.socket_path ? 0 : -ENOMEM;
        }
        if (strcmp(a->spec.transport, "client") == 0) {
                /* QEMU serves this path; we connect (and retry until it is there). Rules: absolute and
                 * normalized, at most 107 bytes, its directory exists, it is a socket if it exists, and
                 * it is not one of our own listeners below SocketDirectory. */
                _cleanup_free_ char *dir = NULL;
                struct stat st;
                const char *p = a->spec.socket_path;

                if (!a->socket_path_given || !p[0])
                        return sd_bus_error_set(error, SD_BUS_ERROR_INVALID_ARGS,
                                                "The client transport needs a SocketPath");
                if (p[0] != '/' || strstr(p, "//") || strstr(p, "/./") || strstr(p, "/../") ||
                    g_str_has_suffix(p, "/.") || g_str_has_suffix(p, "/..") || g_str_has_suffix(p, "/"))
                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                                 "Socket path '%s' is not an absolute, normalized path", p);
                if (strlen(p) > SOCKET_PATH_MAX)
                        return sd_bus_error_setf(error, BUS_ERROR_SOCKET_PATH_TOO_LONG,
                                                 "Socket path '%s' is longer than %d bytes", p,
                                                 SOCKET_PATH_MAX);
                if (path_is_below(p, m->socket_dir) || path_is_below(p, m->runtime_dir))
                        return sd_bus_error_setf(error, BUS_ERROR_SOCKET_PATH_NOT_ALLOWED,
                                                 "Socket path '%s' is below %s, where the service listens",
                                                 p, m->runtime_dir);
                dir = g_path_get_dirname(p);
                if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                                 "Socket path '%s': directory %s does not exist", p, dir);
                if (lstat(p, &st) >= 0 && !S_ISSOCK(st.st_mode))
                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                                 "Socket path '%s' exists and is not a socket", p);
                return 0;
        }
        if (a->socket_path_given) {
                if (!path_is_below(a->spec.socket_path, m->socket_dir))
                        return sd_bus_error_setf(error, BUS_ERROR_SOCKET_PATH_NOT_ALLOWED,
                                                 "Socket path '%s' is not below %s", a->spec.socket_path,
                                                 m->socket_dir);
        } else {
                _cleanup_free_ char *label = NULL;
                int r = vm_label(a->spec.vm, &label);
                if (r < 0)
                        return r;
                free(a->spec.socket_path);
                if (asprintf(&a->spec.socket_path, "%s/%s/%s.sock", m->socket_dir, label, a->spec.alias) < 0)
                        return -ENOMEM;
        }
        if (strlen(a->spec.socket_path) > SOCKET_PATH_MAX)
                return sd_bus_error_setf(error, BUS_ERROR_SOCKET_PATH_TOO_LONG,
                                         "Socket path '%s' is longer than %d bytes", a->spec.socket_path,
                                         SOCKET_PATH_MAX);
        return 0;
}

/* Fills spec.host_device with the canonical node; errors for missing or not allowed nodes. */
static int validate_host_device(Manager *m, const char *host_device, AttachRequest *a, sd_bus_error *error) {
        char *canon;

        if (a->spec.backend != BACKEND_V4L2) {
                if (host_device[0])
                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                                 "The %s backend takes no host device, got '%s'",
                                                 backend_kind_to_string(a->spec.backend), host_device);
                a->spec.host_device = strdup("");
                return a->spec.host_device ? 0 : -ENOMEM;
        }
        if (host_device[0] != '/')
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "Invalid host device '%s': expected an absolute path", host_device);
        canon = realpath(host_device, NULL);
        if (!canon) {
                if (errno == ENOMEM)
                        return -ENOMEM;
                if (!daemon_config_host_device_allowed(&m->config, host_device))
                        return sd_bus_error_setf(error, BUS_ERROR_HOST_DEVICE_NOT_ALLOWED,
                                                 "Host device '%s' is not in AllowedHostDevices=",
                                                 host_device);
                return sd_bus_error_setf(error, BUS_ERROR_NO_SUCH_HOST_DEVICE,
                                         "Host device '%s' does not exist", host_device);
        }
        a->spec.host_device = canon;
        if (!daemon_config_host_device_allowed(&m->config, canon))
                return sd_bus_error_setf(error, BUS_ERROR_HOST_DEVICE_NOT_ALLOWED,
                                         "Host device '%s' is not in AllowedHostDevices=", canon);
        return 0;
}

static bool device_matches(Device *d, const AttachRequest *a) {
        return strcmp(d->spec.host_device, a->spec.host_device) == 0 && d->spec.backend == a->spec.backend &&
               strcmp(d->spec.transport, a->spec.transport) == 0 &&
               (a->role_requested == DEVICE_ROLE_AUTO || a->role_requested == d->spec.role);
}

/* Opens and probes the node, resolves the role: §6.6 Attach step 2. */
static int open_host_device(Manager *m, AttachRequest *a, int *ret_fd, sd_bus_error *error) {
        _cleanup_close_ int fd = -EBADF;
        HostDeviceInfo info = {};
        unsigned want;
        int r;

        *ret_fd = -EBADF;
        if (a->spec.backend != BACKEND_V4L2) {
                a->spec.role =
                        a->role_requested == DEVICE_ROLE_AUTO ? DEVICE_ROLE_DECODER : a->role_requested;
                if (!worker_backend_name(a->spec.backend, a->spec.role))
                        return sd_bus_error_setf(error, BUS_ERROR_NOT_A_CODEC, "The %s backend has no %s",
                                                 backend_kind_to_string(a->spec.backend),
                                                 device_role_to_string(a->spec.role));
                a->spec.driver = strdup(backend_kind_to_string(a->spec.backend));
                a->spec.card = strdup(a->spec.backend == BACKEND_NULL ? "null codec" : "libavcodec");
                return a->spec.driver && a->spec.card ? 0 : -ENOMEM;
        }
        fd = open(a->spec.host_device, O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
        if (fd < 0) {
                if (errno == ENOENT)
                        return sd_bus_error_setf(error, BUS_ERROR_NO_SUCH_HOST_DEVICE,
                                                 "Host device '%s' does not exist", a->spec.host_device);
                return sd_bus_error_set_errnof(error, errno, "Failed to open host device '%s': %m",
                                               a->spec.host_device);
        }
        r = m->probe->probe(m->probe->userdata, fd, a->spec.host_device, &info);
        if (r == -ENOTTY || (r >= 0 && !info.m2m))
                return sd_bus_error_setf(error, BUS_ERROR_NOT_A_CODEC,
                                         "Host device '%s' is not a V4L2 memory-to-memory codec",
                                         a->spec.host_device);
        if (r < 0)
                return sd_bus_error_set_errnof(error, r, "Failed to query host device '%s': %m",
                                               a->spec.host_device);
        if (a->role_requested == DEVICE_ROLE_AUTO)
                a->spec.role = (info.roles & HOST_ROLE_DECODER) ? DEVICE_ROLE_DECODER : DEVICE_ROLE_ENCODER;
        else
                a->spec.role = a->role_requested;
        want = a->spec.role == DEVICE_ROLE_DECODER ? HOST_ROLE_DECODER : HOST_ROLE_ENCODER;
        if (!(info.roles & want))
                return sd_bus_error_setf(error, BUS_ERROR_NOT_A_CODEC, "Host device '%s' (%s) is no %s",
                                         a->spec.host_device, info.card,
                                         a->role_requested == DEVICE_ROLE_AUTO
                                                 ? "decoder or encoder"
                                                 : device_role_to_string(a->spec.role));
        a->spec.driver = strdup(info.driver);
        a->spec.card = strdup(info.card);
        if (!a->spec.driver || !a->spec.card)
                return -ENOMEM;
        *ret_fd = TAKE_FD(fd);
        return 0;
}

static int check_conflicts(Manager *m, AttachRequest *a, Device *replaced, sd_bus_error *error) {
        GHashTableIter it;
        Device *d;

        if (manager_n_devices(m) - (replaced ? 1 : 0) >= m->config.max_devices)
                return sd_bus_error_setf(error, BUS_ERROR_TOO_MANY_DEVICES,
                                         "Too many devices attached (MaxDevices=%u)", m->config.max_devices);
        g_hash_table_iter_init(&it, m->devices);
        while (g_hash_table_iter_next(&it, NULL, (void **) &d)) {
                if (d == replaced)
                        continue;
                if (a->spec.host_device[0] && strcmp(d->spec.host_device, a->spec.host_device) == 0 &&
                    (d->spec.exclusive || a->spec.exclusive))
                        return sd_bus_error_setf(error, BUS_ERROR_HOST_DEVICE_BUSY,
                                                 "Host device '%s' is used by %s/%s%s", a->spec.host_device,
                                                 d->spec.vm, d->spec.alias,
                                                 d->spec.exclusive ? " exclusively" : "");
                if (strcmp(d->spec.socket_path, a->spec.socket_path) == 0)
                        return sd_bus_error_setf(error, BUS_ERROR_SOCKET_PATH_NOT_ALLOWED,
                                                 "Socket path '%s' is used by %s/%s", a->spec.socket_path,
                                                 d->spec.vm, d->spec.alias);
                if (strcmp(d->label, "") != 0 && strcmp(d->spec.vm, a->spec.vm) != 0 &&
                    strcmp(d->spec.alias, a->spec.alias) == 0) {
                        _cleanup_free_ char *label = NULL;
                        if (vm_label(a->spec.vm, &label) >= 0 && strcmp(label, d->label) == 0)
                                return sd_bus_error_setf(error, BUS_ERROR_DEVICE_EXISTS,
                                                         "VM '%s' has the same label as VM '%s'", a->spec.vm,
                                                         d->spec.vm);
                }
        }
        return 0;
}

static int reply_device(sd_bus_message *message, Device *d) {
        _cleanup_close_ int qemu_fd = -EBADF;
        int r;

        if (strcmp(d->spec.transport, "fd") != 0)
                return sd_bus_reply_method_return(message, "os", d->object_path, d->spec.socket_path);
        /* The fd transport (IF_MISSING on an existing device too): a fresh pair, as OpenConnection. */
        r = device_open_connection(d, &qemu_fd);
        if (r < 0)
                return sd_bus_reply_method_errnof(message, r, "Failed to open a connection to %s/%s: %m",
                                                  d->spec.vm, d->spec.alias);
        return sd_bus_reply_method_return(message, "oh", d->object_path, qemu_fd);
}

static int attach_common(sd_bus_message *message, Manager *m, bool with_connection, sd_bus_error *error) {
        _cleanup_(attach_request_done) AttachRequest a = {
                .spec = { .socket_mode = 0660, .socket_user = UID_INVALID, .socket_group = GID_INVALID },
                .with_connection = with_connection,
        };
        _cleanup_close_ int qemu_fd = -EBADF, worker_conn_fd = -EBADF;
        _cleanup_close_ int host_fd = -EBADF;
        const char *vm, *host_device;
        const char *details[9];
        Device *existing, *d;
        uid_t owner;
        int r;

        r = sd_bus_message_read(message, "ss", &vm, &host_device);
        if (r < 0)
                return r;
        if (!vm_name_is_valid(vm))
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "Invalid VM name '%s'", vm);
        a.spec.vm = strdup(vm);
        if (!a.spec.vm)
                return -ENOMEM;
        r = parse_options(message, &a, error);
        if (r < 0)
                return r;
        r = sd_bus_message_read(message, "t", &a.flags);
        if (r < 0)
                return r;
        if (a.flags & ~(ATTACH_FLAG_REPLACE | ATTACH_FLAG_IF_MISSING))
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "Invalid flags 0x%" PRIx64,
                                         a.flags);
        if ((a.flags & ATTACH_FLAG_REPLACE) && (a.flags & ATTACH_FLAG_IF_MISSING))
                return sd_bus_error_set(error, SD_BUS_ERROR_INVALID_ARGS,
                                        "REPLACE and IF_MISSING exclude each other");
        r = validate_host_device(m, host_device, &a, error);
        if (r < 0)
                return r;
        if (!a.alias_given) {
                for (unsigned i = 0; i < ALIAS_AUTO_MAX && !a.spec.alias; i++) {
                        char buf[16];
                        (void) snprintf(buf, sizeof(buf), "video%u", i);
                        if (!manager_find_device(m, vm, buf))
                                a.spec.alias = strdup(buf);
                }
                if (!a.spec.alias)
                        return sd_bus_error_setf(error, BUS_ERROR_TOO_MANY_DEVICES,
                                                 "VM '%s' has no free alias", vm);
        }
        r = validate_socket_path(m, &a, error);
        if (r < 0)
                return r;

        existing = manager_find_device(m, vm, a.spec.alias);
        if (existing && (a.flags & ATTACH_FLAG_IF_MISSING)) {
                if (!device_matches(existing, &a))
                        return sd_bus_error_setf(error, BUS_ERROR_DEVICE_EXISTS,
                                                 "Device %s/%s exists with other parameters (%s, %s)", vm,
                                                 a.spec.alias,
                                                 existing->spec.host_device[0] ? existing->spec.host_device
                                                                               : "no host device",
                                                 backend_kind_to_string(existing->spec.backend));
                return reply_device(message, existing);
        }
        if (existing && !(a.flags & ATTACH_FLAG_REPLACE))
                return sd_bus_error_setf(error, BUS_ERROR_DEVICE_EXISTS, "Device %s/%s exists already", vm,
                                         a.spec.alias);

        details[0] = "vm";
        details[1] = vm;
        details[2] = "alias";
        details[3] = a.spec.alias;
        details[4] = "host_device";
        details[5] = a.spec.host_device;
        details[6] = "verb";
        details[7] = "attach";
        details[8] = NULL;
        r = polkit_check(m->polkit, message, "org.virtiovideo.video1.attach-device", details, UID_INVALID,
                         error);
        if (r < 0)
                return r;
        if (r == 0)
                return 1; /* polkit will call us back */

        r = check_conflicts(m, &a, existing, error);
        if (r < 0)
                return r;
        r = open_host_device(m, &a, &host_fd, error);
        if (r < 0)
                return r;
        {
                _cleanup_(sd_bus_creds_unrefp) sd_bus_creds *creds = NULL;
                r = sd_bus_query_sender_creds(message, SD_BUS_CREDS_EUID | SD_BUS_CREDS_UID, &creds);
                if (r < 0)
                        return r;
                if (sd_bus_creds_get_euid(creds, &owner) < 0) {
                        r = sd_bus_creds_get_uid(creds, &owner);
                        if (r < 0)
                                return r;
                }
        }
        a.spec.owner = owner;
        a.spec.created_usec = now_realtime();

        if (with_connection) {
                int pair[2];
                if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) < 0)
                        return sd_bus_error_set_errnof(error, errno, "Failed to create the connection: %m");
                qemu_fd = pair[0];
                worker_conn_fd = pair[1];
        }
        if (existing) {
                r = manager_remove_device(m, existing);
                if (r < 0)
                        return r;
        }
        /* fd transport: pair[1] is served by the worker, pair[0] goes to the caller (QEMU). */
        r = manager_add_device(m, &a.spec, TAKE_FD(host_fd), TAKE_FD(worker_conn_fd), true, &d);
        if (r < 0)
                return sd_bus_error_set_errnof(error, r, "Failed to attach %s/%s: %m", vm,
                                               a.spec.alias ? a.spec.alias : "");
        if (a.bind_to_caller) {
                r = device_bind_to_caller(d, message);
                if (r < 0) {
                        (void) manager_remove_device(m, d);
                        return sd_bus_error_set_errnof(error, r, "Failed to track the caller of %s/%s: %m",
                                                       vm, a.spec.alias);
                }
        }
        if (with_connection)
                return sd_bus_reply_method_return(message, "oh", d->object_path, qemu_fd);
        return reply_device(message, d);
}

static int method_attach_device(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        return attach_common(message, userdata, false, error);
}

static int method_attach_with_connection(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        return attach_common(message, userdata, true, error);
}

static int lookup_device(Manager *m, const char *vm, const char *alias, Device **ret, sd_bus_error *error) {
        Device *d;

        if (!vm_name_is_valid(vm))
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "Invalid VM name '%s'", vm);
        if (!alias_is_valid(alias))
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "Invalid alias '%s'", alias);
        d = manager_find_device(m, vm, alias);
        if (!d)
                return sd_bus_error_setf(error, BUS_ERROR_NO_SUCH_DEVICE, "No device %s/%s", vm, alias);
        *ret = d;
        return 0;
}

static int method_get_device(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        const char *vm, *alias;
        Device *d = NULL;
        int r;

        r = sd_bus_message_read(message, "ss", &vm, &alias);
        if (r < 0)
                return r;
        r = lookup_device(m, vm, alias, &d, error);
        if (r < 0)
                return r;
        return sd_bus_reply_method_return(message, "o", d->object_path);
}

static gint compare_devices(gconstpointer a, gconstpointer b) {
        const Device *x = *(Device *const *) a, *y = *(Device *const *) b;
        int c = strcmp(x->spec.vm, y->spec.vm);

        return c != 0 ? c : strcmp(x->spec.alias, y->spec.alias);
}

static GPtrArray *sorted_devices(Manager *m) {
        GPtrArray *a = g_ptr_array_new();
        GHashTableIter it;
        Device *d;

        g_hash_table_iter_init(&it, m->devices);
        while (g_hash_table_iter_next(&it, NULL, (void **) &d))
                g_ptr_array_add(a, d);
        g_ptr_array_sort(a, compare_devices);
        return a;
}

static int method_list_devices(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        Manager *m = userdata;
        GPtrArray *a;
        int r;

        r = sd_bus_message_new_method_return(message, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, 'a', "(sssso)");
        if (r < 0)
                return r;
        a = sorted_devices(m);
        for (unsigned i = 0; r >= 0 && i < a->len; i++) {
                Device *d = a->pdata[i];
                r = sd_bus_message_append(reply, "(sssso)", d->spec.vm, d->spec.alias, d->spec.host_device,
                                          device_state_to_string(d->state), d->object_path);
        }
        g_ptr_array_free(a, TRUE);
        if (r < 0)
                return r;
        r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

static int method_list_host_devices(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(g_hash_table_unrefp) GHashTable *seen = NULL;
        Manager *m = userdata;
        int r;

        r = sd_bus_message_new_method_return(message, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, 'a', "(ssssu)");
        if (r < 0)
                return r;
        seen = g_hash_table_new_full(g_str_hash, g_str_equal, free, NULL);
        for (char **pattern = m->config.allowed_host_devices; pattern && *pattern; pattern++) {
                glob_t g = {};

                if (glob(*pattern, 0, NULL, &g) != 0) {
                        globfree(&g);
                        continue;
                }
                for (size_t i = 0; i < g.gl_pathc && r >= 0; i++) {
                        _cleanup_free_ char *canon = realpath(g.gl_pathv[i], NULL);
                        _cleanup_close_ int fd = -EBADF;
                        HostDeviceInfo info;
                        GHashTableIter it;
                        Device *d;
                        uint32_t n = 0;
                        struct stat st;

                        if (!canon || g_hash_table_contains(seen, canon) ||
                            !daemon_config_host_device_allowed(&m->config, canon))
                                continue;
                        if (stat(canon, &st) < 0 || S_ISDIR(st.st_mode))
                                continue;
                        fd = open(canon, O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
                        if (fd < 0) {
                                log_debug_errno(-errno, "Skipping %s: %m", canon);
                                continue;
                        }
                        if (m->probe->probe(m->probe->userdata, fd, canon, &info) < 0 || !info.m2m)
                                continue;
                        g_hash_table_iter_init(&it, m->devices);
                        while (g_hash_table_iter_next(&it, NULL, (void **) &d))
                                if (strcmp(d->spec.host_device, canon) == 0)
                                        n++;
                        r = sd_bus_message_append(reply, "(ssssu)", canon, info.driver, info.card,
                                                  host_roles_to_string(info.roles), n);
                        g_hash_table_add(seen, TAKE_PTR(canon));
                }
                globfree(&g);
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

/* Shared by Manager.DetachDevice, Manager.DetachVM and Device.Detach: polkit, then act. Returns 1 when
 * pending, 0 when done, or a negative errno. */
int bus_device_detach(Device *d, sd_bus_message *message, uint64_t flags, sd_bus_error *error);
int bus_device_detach(Device *d, sd_bus_message *message, uint64_t flags, sd_bus_error *error) {
        Manager *m = d->manager;
        const char *details[9] = { "vm",          d->spec.vm,    "alias",
                                   d->spec.alias, "host_device", d->spec.host_device,
                                   "verb",        "detach",      NULL };
        int r;

        if (flags & ~DETACH_FLAG_FORCE)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "Invalid flags 0x%" PRIx64,
                                         flags);
        r = polkit_check(m->polkit, message, "org.virtiovideo.video1.detach-device", details, d->spec.owner,
                         error);
        if (r <= 0)
                return r < 0 ? r : 1;
        if (d->state == DEVICE_STATE_CONNECTED && !(flags & DETACH_FLAG_FORCE))
                return sd_bus_error_setf(
                        error, BUS_ERROR_DEVICE_CONNECTED,
                        "Device %s/%s has a connected peer (pid %u); unplug it first or use FORCE",
                        d->spec.vm, d->spec.alias, d->peer_pid);
        r = manager_remove_device(m, d);
        return r < 0 ? r : 0;
}

static int method_detach_device(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        const char *vm, *alias;
        uint64_t flags;
        Device *d = NULL;
        int r;

        r = sd_bus_message_read(message, "sst", &vm, &alias, &flags);
        if (r < 0)
                return r;
        r = lookup_device(m, vm, alias, &d, error);
        if (r < 0)
                return r;
        r = bus_device_detach(d, message, flags, error);
        if (r != 0)
                return r;
        return sd_bus_reply_method_return(message, NULL);
}

static int method_detach_vm(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        const char *vm;
        uint64_t flags;
        _cleanup_(sd_bus_error_free) sd_bus_error connected_error = SD_BUS_ERROR_NULL;
        uid_t owner = UID_INVALID;
        GPtrArray *a;
        uint32_t n = 0;
        int r = 0;

        r = sd_bus_message_read(message, "st", &vm, &flags);
        if (r < 0)
                return r;
        if (!vm_name_is_valid(vm))
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "Invalid VM name '%s'", vm);
        if (flags & ~DETACH_FLAG_FORCE)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "Invalid flags 0x%" PRIx64,
                                         flags);

        /* One authorization for the whole VM; the owner shortcut applies when the caller owns every
         * device of it. Then check everything first, so the call detaches all or nothing. */
        a = sorted_devices(m);
        for (unsigned i = 0; i < a->len; i++) {
                Device *d = a->pdata[i];
                if (strcmp(d->spec.vm, vm) != 0)
                        continue;
                if (n == 0)
                        owner = d->spec.owner;
                else if (owner != d->spec.owner)
                        owner = UID_INVALID;
                n++;
                if (d->state == DEVICE_STATE_CONNECTED && !(flags & DETACH_FLAG_FORCE) && r >= 0)
                        r = sd_bus_error_setf(
                                &connected_error, BUS_ERROR_DEVICE_CONNECTED,
                                "Device %s/%s has a connected peer; unplug it first or use FORCE",
                                d->spec.vm, d->spec.alias);
        }
        if (n > 0) {
                const char *details[5] = { "vm", vm, "verb", "detach-vm", NULL };
                int k = polkit_check(m->polkit, message, "org.virtiovideo.video1.detach-device", details,
                                     owner, error);
                if (k <= 0) {
                        g_ptr_array_free(a, TRUE);
                        return k < 0 ? k : 1;
                }
        }
        if (r < 0) {
                g_ptr_array_free(a, TRUE);
                return sd_bus_error_copy(error, &connected_error);
        }
        n = 0;
        for (unsigned i = 0; i < a->len && r >= 0; i++) {
                Device *d = a->pdata[i];
                if (strcmp(d->spec.vm, vm) != 0)
                        continue;
                r = manager_remove_device(m, d);
                if (r >= 0)
                        n++;
        }
        g_ptr_array_free(a, TRUE);
        if (r < 0)
                return r;
        return sd_bus_reply_method_return(message, "u", n);
}

static int method_get_statistics(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        GHashTableIter it;
        Device *d;
        uint32_t connected = 0, failed = 0;

        g_hash_table_iter_init(&it, m->devices);
        while (g_hash_table_iter_next(&it, NULL, (void **) &d)) {
                connected += d->state == DEVICE_STATE_CONNECTED;
                failed += d->state == DEVICE_STATE_FAILED;
        }
        return sd_bus_reply_method_return(message, "a{sv}", 8, "Devices", "u", manager_n_devices(m),
                                          "ConnectedDevices", "u", connected, "FailedDevices", "u", failed,
                                          "Attached", "t", m->n_attached_total, "Detached", "t",
                                          m->n_detached_total, "WorkerRestarts", "t", m->n_worker_restarts,
                                          "PeerConnections", "t", m->n_peer_connections, "PeerRejections",
                                          "t", m->n_peer_rejections);
}

static int property_get_version(sd_bus *bus,
                                const char *path,
                                const char *interface,
                                const char *property,
                                sd_bus_message *reply,
                                void *userdata,
                                sd_bus_error *error) {
        return sd_bus_message_append(reply, "s", PROJECT_VERSION);
}

static int property_get_features(sd_bus *bus,
                                 const char *path,
                                 const char *interface,
                                 const char *property,
                                 sd_bus_message *reply,
                                 void *userdata,
                                 sd_bus_error *error) {
        Manager *m = userdata;

        return sd_bus_message_append(reply, "as", m->worker_sandbox ? 9 : 8, "virtio-video", "fdstore",
                                     "static-sockets", "worker-process", "fd-transport", "client-transport",
                                     "bind-to-caller", "peer-machine", "worker-sandbox");
}

static int property_get_allowed(sd_bus *bus,
                                const char *path,
                                const char *interface,
                                const char *property,
                                sd_bus_message *reply,
                                void *userdata,
                                sd_bus_error *error) {
        Manager *m = userdata;

        return sd_bus_message_append_strv(reply, m->config.allowed_host_devices);
}

static int property_get_socket_dir(sd_bus *bus,
                                   const char *path,
                                   const char *interface,
                                   const char *property,
                                   sd_bus_message *reply,
                                   void *userdata,
                                   sd_bus_error *error) {
        Manager *m = userdata;

        return sd_bus_message_append(reply, "s", m->runtime_dir);
}

static int property_get_ndevices(sd_bus *bus,
                                 const char *path,
                                 const char *interface,
                                 const char *property,
                                 sd_bus_message *reply,
                                 void *userdata,
                                 sd_bus_error *error) {
        Manager *m = userdata;

        return sd_bus_message_append(reply, "u", manager_n_devices(m));
}

int manager_send_ndevices_changed(Manager *m) {
        if (!m->bus)
                return 0;
        return sd_bus_emit_properties_changed(m->bus, MANAGER_OBJECT_PATH, MANAGER_INTERFACE, "NDevices",
                                              NULL);
}

const sd_bus_vtable manager_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Version", "s", property_get_version, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Features", "as", property_get_features, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("SocketDirectory", "s", property_get_socket_dir, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("AllowedHostDevices", "as", property_get_allowed, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("NDevices", "u", property_get_ndevices, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_METHOD_WITH_ARGS("ListDevices",
                                SD_BUS_NO_ARGS,
                                SD_BUS_RESULT("a(sssso)", devices),
                                method_list_devices,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("GetDevice",
                                SD_BUS_ARGS("s", vm, "s", alias),
                                SD_BUS_RESULT("o", device),
                                method_get_device,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ListHostDevices",
                                SD_BUS_NO_ARGS,
                                SD_BUS_RESULT("a(ssssu)", host_devices),
                                method_list_host_devices,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("AttachDevice",
                                SD_BUS_ARGS("s", vm, "s", host_device, "a{sv}", options, "t", flags),
                                SD_BUS_RESULT("o", device, "s", socket_path),
                                method_attach_device,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("AttachDeviceWithConnection",
                                SD_BUS_ARGS("s", vm, "s", host_device, "a{sv}", options, "t", flags),
                                SD_BUS_RESULT("o", device, "h", connection),
                                method_attach_with_connection,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("DetachDevice",
                                SD_BUS_ARGS("s", vm, "s", alias, "t", flags),
                                SD_BUS_NO_RESULT,
                                method_detach_device,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("DetachVM",
                                SD_BUS_ARGS("s", vm, "t", flags),
                                SD_BUS_RESULT("u", n_detached),
                                method_detach_vm,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("GetStatistics",
                                SD_BUS_NO_ARGS,
                                SD_BUS_RESULT("a{sv}", statistics),
                                method_get_statistics,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_SIGNAL_WITH_ARGS("DeviceNew", SD_BUS_ARGS("s", vm, "s", alias, "o", device), 0),
        SD_BUS_SIGNAL_WITH_ARGS("DeviceRemoved", SD_BUS_ARGS("s", vm, "s", alias, "o", device), 0),
        SD_BUS_VTABLE_END,
};
