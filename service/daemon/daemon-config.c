/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <fnmatch.h>
#include <grp.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>

#include <glib.h>

#include "common/log.h"
#include "common/macro.h"
#include "config.h"
#include "daemon/daemon-config.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(GKeyFile *, g_key_file_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(GError *, g_error_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(char **, g_strfreev);

static const char *const known_keys[] = {
        "SocketGroup", "AllowedHostDevices", "MaxDevices", "LogLevel", "IdleExitSec", "WorkerSandbox",
};

int daemon_config_init(DaemonConfig *c) {
        *c = (DaemonConfig){
                .max_devices = DAEMON_DEFAULT_MAX_DEVICES,
                .log_level = LOG_INFO,
                .idle_exit_usec = DAEMON_DEFAULT_IDLE_EXIT_SEC * UINT64_C(1000000),
                .worker_sandbox = true,
        };
        c->allowed_host_devices = g_new0(char *, 2);
        c->allowed_host_devices[0] = g_strdup("/dev/video*");
        return 0;
}

void daemon_config_done(DaemonConfig *c) {
        free(c->path);
        free(c->socket_group);
        g_strfreev(c->allowed_host_devices);
        *c = (DaemonConfig){};
}

static int fail(char **ret_error, int r, const char *fmt, ...) _printf_(3, 4);
static int fail(char **ret_error, int r, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        if (ret_error && vasprintf(ret_error, fmt, ap) < 0)
                *ret_error = NULL;
        va_end(ap);
        return r;
}

static int parse_uint(const char *s, uint64_t max, uint64_t *ret) {
        char *end;
        unsigned long long v;

        if (!s || !*s || *s == '-' || *s == '+' || *s == ' ')
                return -EINVAL;
        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno != 0 || *end != 0 || v > max)
                return -ERANGE;
        *ret = v;
        return 0;
}

static int resolve_group(const char *name, gid_t *ret) {
        uint64_t v;
        struct group *g;

        if (parse_uint(name, UINT32_MAX - 1, &v) >= 0) {
                *ret = (gid_t) v;
                return 0;
        }
        errno = 0;
        g = getgrnam(name);
        if (!g)
                return errno > 0 ? -errno : -ESRCH;
        *ret = g->gr_gid;
        return 0;
}

int daemon_config_load(DaemonConfig *c, const char *path, bool must_exist, char **ret_error) {
        _cleanup_(g_key_file_freep) GKeyFile *kf = g_key_file_new();
        _cleanup_(g_error_freep) GError *err = NULL;
        _cleanup_(g_strfreevp) char **groups = NULL, **keys = NULL;
        gsize n_keys = 0;

        if (!g_key_file_load_from_file(kf, path, G_KEY_FILE_NONE, &err)) {
                if (g_error_matches(err, G_FILE_ERROR, G_FILE_ERROR_NOENT) && !must_exist)
                        return 0;
                return fail(ret_error, -EINVAL, "%s: %s", path, err->message);
        }

        groups = g_key_file_get_groups(kf, NULL);
        for (char **g = groups; g && *g; g++)
                if (strcmp(*g, "Daemon") != 0)
                        return fail(ret_error, -EINVAL, "%s: unknown section [%s]", path, *g);
        if (!g_key_file_has_group(kf, "Daemon"))
                goto done;

        keys = g_key_file_get_keys(kf, "Daemon", &n_keys, NULL);
        for (char **k = keys; k && *k; k++) {
                bool known = false;
                for (size_t i = 0; i < ELEMENTSOF(known_keys); i++)
                        if (strcmp(*k, known_keys[i]) == 0)
                                known = true;
                if (!known)
                        return fail(ret_error, -EINVAL, "%s: [Daemon] unknown key %s=", path, *k);
        }

        for (char **k = keys; k && *k; k++) {
                _cleanup_free_ char *v = g_key_file_get_string(kf, "Daemon", *k, NULL);
                uint64_t u;
                int r;

                if (!v)
                        return fail(ret_error, -EINVAL, "%s: %s= is not a valid string", path, *k);
                if (strcmp(*k, "SocketGroup") == 0) {
                        gid_t gid;
                        if (!*v) {
                                free(c->socket_group);
                                c->socket_group = NULL;
                                continue;
                        }
                        r = resolve_group(v, &gid);
                        if (r < 0)
                                return fail(ret_error, -EINVAL, "%s: SocketGroup=%s: no such group", path,
                                            v);
                        free(c->socket_group);
                        c->socket_group = TAKE_PTR(v);
                        c->socket_gid = gid;
                } else if (strcmp(*k, "AllowedHostDevices") == 0) {
                        _cleanup_(g_strfreevp) char **l =
                                g_key_file_get_string_list(kf, "Daemon", *k, NULL, NULL);
                        for (char **p = l; p && *p; p++)
                                if ((*p)[0] != '/')
                                        return fail(
                                                ret_error, -EINVAL,
                                                "%s: AllowedHostDevices=%s: '%s' is not an absolute path glob",
                                                path, v, *p);
                        g_strfreev(c->allowed_host_devices);
                        c->allowed_host_devices = l ? TAKE_PTR(l) : g_new0(char *, 1);
                } else if (strcmp(*k, "MaxDevices") == 0) {
                        r = parse_uint(v, DAEMON_MAX_DEVICES_LIMIT, &u);
                        if (r < 0 || u == 0)
                                return fail(ret_error, -EINVAL, "%s: MaxDevices=%s: expected a number 1..%u",
                                            path, v, DAEMON_MAX_DEVICES_LIMIT);
                        c->max_devices = (unsigned) u;
                } else if (strcmp(*k, "LogLevel") == 0) {
                        r = log_level_from_string(v);
                        if (r < 0)
                                return fail(
                                        ret_error, -EINVAL,
                                        "%s: LogLevel=%s: expected err, warning, notice, info, debug or 0..7",
                                        path, v);
                        c->log_level = r;
                } else if (strcmp(*k, "IdleExitSec") == 0) {
                        r = parse_uint(v, UINT64_C(86400) * 365, &u);
                        if (r < 0)
                                return fail(ret_error, -EINVAL,
                                            "%s: IdleExitSec=%s: expected seconds (0 disables idle exit)",
                                            path, v);
                        c->idle_exit_usec = u * UINT64_C(1000000);
                } else if (strcmp(*k, "WorkerSandbox") == 0) {
                        if (g_ascii_strcasecmp(v, "yes") == 0 || g_ascii_strcasecmp(v, "true") == 0 ||
                            strcmp(v, "1") == 0)
                                c->worker_sandbox = true;
                        else if (g_ascii_strcasecmp(v, "no") == 0 || g_ascii_strcasecmp(v, "false") == 0 ||
                                 strcmp(v, "0") == 0)
                                c->worker_sandbox = false;
                        else
                                return fail(ret_error, -EINVAL, "%s: WorkerSandbox=%s: expected yes or no",
                                            path, v);
                }
        }
done:
        free(c->path);
        c->path = strdup(path);
        return c->path ? 0 : -ENOMEM;
}

bool daemon_config_host_device_allowed(const DaemonConfig *c, const char *path) {
        for (char **p = c->allowed_host_devices; p && *p; p++)
                if (fnmatch(*p, path, FNM_PATHNAME) == 0)
                        return true;
        return false;
}
