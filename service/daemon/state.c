/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <glib.h>

#include "common/macro.h"
#include "daemon/polkit.h"
#include "daemon/state.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(GKeyFile *, g_key_file_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(char **, g_strfreev);

#define GROUP "Device"

void device_spec_done(DeviceSpec *s) {
        free(s->vm);
        free(s->alias);
        free(s->host_device);
        free(s->protocol);
        free(s->transport);
        free(s->socket_path);
        free(s->peer_machine);
        free(s->allowed_uids);
        free(s->driver);
        free(s->card);
        free(s->static_instance);
        *s = (DeviceSpec){};
}

static int write_atomic(const char *path, const char *data, size_t size) {
        _cleanup_free_ char *tmp = NULL;
        _cleanup_close_ int fd = -EBADF;
        int r = 0;

        if (asprintf(&tmp, "%s.XXXXXX", path) < 0)
                return -ENOMEM;
        fd = mkostemp(tmp, O_CLOEXEC);
        if (fd < 0)
                return -errno;
        if (fchmod(fd, 0600) < 0)
                r = -errno;
        for (size_t done = 0; r == 0 && done < size;) {
                ssize_t n = write(fd, data + done, size - done);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        r = -errno;
                } else
                        done += (size_t) n;
        }
        if (r == 0 && fsync(fd) < 0)
                r = -errno;
        if (r == 0 && rename(tmp, path) < 0)
                r = -errno;
        if (r < 0)
                (void) unlink(tmp);
        return r;
}

int device_spec_save(const DeviceSpec *s, const char *path) {
        _cleanup_(g_key_file_freep) GKeyFile *kf = g_key_file_new();
        _cleanup_free_ char *data = NULL;
        gsize size = 0;

        g_key_file_set_string(kf, GROUP, "VM", s->vm);
        g_key_file_set_string(kf, GROUP, "Alias", s->alias);
        g_key_file_set_string(kf, GROUP, "HostDevice", s->host_device ? s->host_device : "");
        g_key_file_set_string(kf, GROUP, "Backend", backend_kind_to_string(s->backend));
        g_key_file_set_string(kf, GROUP, "Role", device_role_to_string(s->role));
        g_key_file_set_string(kf, GROUP, "Protocol", s->protocol);
        g_key_file_set_string(kf, GROUP, "Transport", s->transport);
        g_key_file_set_string(kf, GROUP, "SocketPath", s->socket_path);
        if (s->uuid_size == 16) {
                char hex[33];
                for (size_t i = 0; i < 16; i++)
                        (void) snprintf(hex + 2 * i, 3, "%02x", s->uuid[i]);
                g_key_file_set_string(kf, GROUP, "VMUUID", hex);
        }
        g_key_file_set_uint64(kf, GROUP, "SocketMode", s->socket_mode);
        if (s->socket_user != UID_INVALID)
                g_key_file_set_uint64(kf, GROUP, "SocketUser", s->socket_user);
        if (s->socket_group != GID_INVALID)
                g_key_file_set_uint64(kf, GROUP, "SocketGroup", s->socket_group);
        g_key_file_set_uint64(kf, GROUP, "Owner", s->owner);
        if (s->n_allowed_uids > 0) {
                GString *l = g_string_new(NULL);
                for (size_t i = 0; i < s->n_allowed_uids; i++)
                        g_string_append_printf(l, "%s%u", i ? ";" : "", (unsigned) s->allowed_uids[i]);
                g_key_file_set_string(kf, GROUP, "AllowedPeerUIDs", l->str);
                g_string_free(l, TRUE);
        }
        g_key_file_set_boolean(kf, GROUP, "Exclusive", s->exclusive);
        if (s->peer_machine)
                g_key_file_set_string(kf, GROUP, "PeerMachine", s->peer_machine);
        g_key_file_set_uint64(kf, GROUP, "Created", s->created_usec);
        g_key_file_set_string(kf, GROUP, "Driver", s->driver ? s->driver : "");
        g_key_file_set_string(kf, GROUP, "Card", s->card ? s->card : "");
        if (s->static_instance)
                g_key_file_set_string(kf, GROUP, "StaticInstance", s->static_instance);

        data = g_key_file_to_data(kf, &size, NULL);
        if (!data)
                return -ENOMEM;
        return write_atomic(path, data, size);
}

static int fail(char **ret_error, const char *fmt, ...) _printf_(2, 3);
static int fail(char **ret_error, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        if (ret_error && vasprintf(ret_error, fmt, ap) < 0)
                *ret_error = NULL;
        va_end(ap);
        return -EINVAL;
}

static int get_uint(GKeyFile *kf, const char *key, uint64_t max, uint64_t def, uint64_t *ret) {
        _cleanup_free_ char *v = g_key_file_get_value(kf, GROUP, key, NULL);
        char *end;

        if (!v) {
                *ret = def;
                return 0;
        }
        if (!*v || *v == '-' || *v == '+' || *v == ' ')
                return -EINVAL;
        errno = 0;
        *ret = strtoull(v, &end, 0);
        if (errno != 0 || *end != 0 || *ret > max)
                return -EINVAL;
        return 0;
}

static int parse_uid_list(GKeyFile *kf, DeviceSpec *s) {
        _cleanup_(g_strfreevp) char **l =
                g_key_file_get_string_list(kf, GROUP, "AllowedPeerUIDs", NULL, NULL);
        size_t n = l ? g_strv_length(l) : 0;

        if (n > ALLOWED_UIDS_MAX)
                return -E2BIG;
        if (n == 0)
                return 0;
        s->allowed_uids = calloc(n, sizeof(uid_t));
        if (!s->allowed_uids)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                char *end;
                unsigned long long v;
                errno = 0;
                v = strtoull(l[i], &end, 10);
                if (errno != 0 || *end != 0 || !*l[i] || v >= UINT32_MAX)
                        return -EINVAL;
                s->allowed_uids[i] = (uid_t) v;
        }
        s->n_allowed_uids = n;
        return 0;
}

static int load_common(GKeyFile *kf, const char *path, DeviceSpec *s, char **ret_error) {
        _cleanup_free_ char *backend = g_key_file_get_string(kf, GROUP, "Backend", NULL);
        _cleanup_free_ char *role = g_key_file_get_string(kf, GROUP, "Role", NULL);

        s->vm = g_key_file_get_string(kf, GROUP, "VM", NULL);
        if (!vm_name_is_valid(s->vm))
                return fail(ret_error, "%s: VM=%s: invalid VM name", path, s->vm ? s->vm : "");
        s->alias = g_key_file_get_string(kf, GROUP, "Alias", NULL);
        if (!s->alias)
                s->alias = strdup("video0");
        if (!alias_is_valid(s->alias))
                return fail(ret_error, "%s: Alias=%s: invalid alias", path, s->alias ? s->alias : "");
        s->backend = backend ? backend_kind_from_string(backend) : BACKEND_V4L2;
        if (s->backend < 0)
                return fail(ret_error, "%s: Backend=%s: expected v4l2, ffmpeg or null", path, backend);
        s->role = role ? device_role_from_string(role) : DEVICE_ROLE_DECODER;
        if (s->role != DEVICE_ROLE_DECODER && s->role != DEVICE_ROLE_ENCODER)
                return fail(ret_error, "%s: Role=%s: expected decoder or encoder", path, role);
        s->host_device = g_key_file_get_string(kf, GROUP, "HostDevice", NULL);
        if (!s->host_device)
                s->host_device = strdup("");
        if (s->backend == BACKEND_V4L2 && s->host_device[0] != '/')
                return fail(ret_error, "%s: HostDevice=%s: the v4l2 backend needs an absolute device path",
                            path, s->host_device);
        if (parse_uid_list(kf, s) < 0)
                return fail(ret_error, "%s: AllowedPeerUIDs=: expected up to %d numeric uids", path,
                            ALLOWED_UIDS_MAX);
        return 0;
}

int device_spec_load(const char *path, DeviceSpec *ret, char **ret_error) {
        _cleanup_(g_key_file_freep) GKeyFile *kf = g_key_file_new();
        _cleanup_(device_spec_done) DeviceSpec s = {};
        _cleanup_free_ char *uuid = NULL;
        GError *err = NULL;
        uint64_t u;
        int r;

        if (!g_key_file_load_from_file(kf, path, G_KEY_FILE_NONE, &err)) {
                r = fail(ret_error, "%s: %s", path, err->message);
                g_error_free(err);
                return r;
        }
        r = load_common(kf, path, &s, ret_error);
        if (r < 0)
                return r;
        s.protocol = g_key_file_get_string(kf, GROUP, "Protocol", NULL);
        s.transport = g_key_file_get_string(kf, GROUP, "Transport", NULL);
        s.socket_path = g_key_file_get_string(kf, GROUP, "SocketPath", NULL);
        s.driver = g_key_file_get_string(kf, GROUP, "Driver", NULL);
        s.card = g_key_file_get_string(kf, GROUP, "Card", NULL);
        s.static_instance = g_key_file_get_string(kf, GROUP, "StaticInstance", NULL);
        if (!s.protocol || !s.transport || !s.socket_path || s.socket_path[0] != '/' ||
            strlen(s.socket_path) > SOCKET_PATH_MAX ||
            (strcmp(s.transport, "server") != 0 && strcmp(s.transport, "client") != 0))
                return fail(ret_error, "%s: Protocol=, Transport= or SocketPath= missing or invalid", path);
        uuid = g_key_file_get_string(kf, GROUP, "VMUUID", NULL);
        if (uuid) {
                if (strlen(uuid) != 32)
                        return fail(ret_error, "%s: VMUUID=%s: expected 32 hex digits", path, uuid);
                for (size_t i = 0; i < 16; i++) {
                        unsigned b;
                        if (sscanf(uuid + 2 * i, "%2x", &b) != 1)
                                return fail(ret_error, "%s: VMUUID=%s: expected 32 hex digits", path, uuid);
                        s.uuid[i] = (uint8_t) b;
                }
                s.uuid_size = 16;
        }
        if (get_uint(kf, "SocketMode", 0777, 0660, &u) < 0)
                return fail(ret_error, "%s: SocketMode=: invalid", path);
        s.socket_mode = (mode_t) u;
        if (get_uint(kf, "SocketUser", UINT32_MAX - 1, UID_INVALID, &u) < 0)
                return fail(ret_error, "%s: SocketUser=: invalid", path);
        s.socket_user = (uid_t) u;
        if (get_uint(kf, "SocketGroup", UINT32_MAX - 1, GID_INVALID, &u) < 0)
                return fail(ret_error, "%s: SocketGroup=: invalid", path);
        s.socket_group = (gid_t) u;
        if (get_uint(kf, "Owner", UINT32_MAX - 1, 0, &u) < 0)
                return fail(ret_error, "%s: Owner=: invalid", path);
        s.owner = (uid_t) u;
        if (get_uint(kf, "Created", UINT64_MAX, 0, &u) < 0)
                return fail(ret_error, "%s: Created=: invalid", path);
        s.created_usec = u;
        s.exclusive = g_key_file_get_boolean(kf, GROUP, "Exclusive", NULL);
        s.peer_machine = g_key_file_get_string(kf, GROUP, "PeerMachine", NULL);
        if (s.peer_machine && !s.peer_machine[0])
                return fail(ret_error, "%s: PeerMachine=: empty", path);
        *ret = s;
        s = (DeviceSpec){};
        return 0;
}

int device_spec_load_static(const char *path, const char *instance, DeviceSpec *ret, char **ret_error) {
        static const char *const allowed[] = { "VM",   "Alias",   "HostDevice",
                                               "Role", "Backend", "AllowedPeerUIDs" };
        _cleanup_(g_key_file_freep) GKeyFile *kf = g_key_file_new();
        _cleanup_(device_spec_done) DeviceSpec s = {};
        _cleanup_(g_strfreevp) char **groups = NULL, **keys = NULL;
        GError *err = NULL;
        int r;

        if (!g_key_file_load_from_file(kf, path, G_KEY_FILE_NONE, &err)) {
                r = fail(ret_error, "%s: %s", path, err->message);
                g_error_free(err);
                return r;
        }
        groups = g_key_file_get_groups(kf, NULL);
        for (char **g = groups; g && *g; g++)
                if (strcmp(*g, GROUP) != 0)
                        return fail(ret_error, "%s: unknown section [%s]", path, *g);
        keys = g_key_file_get_keys(kf, GROUP, NULL, NULL);
        for (char **k = keys; k && *k; k++) {
                bool ok = false;
                for (size_t i = 0; i < ELEMENTSOF(allowed); i++)
                        ok = ok || strcmp(*k, allowed[i]) == 0;
                if (!ok)
                        return fail(ret_error, "%s: [Device] unknown key %s=", path, *k);
        }
        r = load_common(kf, path, &s, ret_error);
        if (r < 0)
                return r;
        s.protocol = strdup("virtio-video");
        s.transport = strdup("server");
        s.static_instance = strdup(instance);
        s.socket_mode = 0660;
        s.socket_user = UID_INVALID;
        s.socket_group = GID_INVALID;
        s.owner = 0;
        if (!s.protocol || !s.transport || !s.static_instance)
                return -ENOMEM;
        *ret = s;
        s = (DeviceSpec){};
        return 0;
}
