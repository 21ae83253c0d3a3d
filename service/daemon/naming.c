/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>

#include "common/macro.h"
#include "daemon/naming.h"

static const char *const role_names[_DEVICE_ROLE_MAX] = {
        [DEVICE_ROLE_AUTO] = "auto",
        [DEVICE_ROLE_DECODER] = "decoder",
        [DEVICE_ROLE_ENCODER] = "encoder",
};

static const char *const backend_names[_BACKEND_KIND_MAX] = {
        [BACKEND_V4L2] = "v4l2",
        [BACKEND_FFMPEG] = "ffmpeg",
        [BACKEND_NULL] = "null",
};

const char *device_role_to_string(DeviceRole r) {
        if (r < 0 || r >= _DEVICE_ROLE_MAX)
                return NULL;
        return role_names[r];
}

DeviceRole device_role_from_string(const char *s) {
        if (!s)
                return _DEVICE_ROLE_INVALID;
        for (int i = 0; i < _DEVICE_ROLE_MAX; i++)
                if (strcmp(s, role_names[i]) == 0)
                        return (DeviceRole) i;
        return _DEVICE_ROLE_INVALID;
}

const char *backend_kind_to_string(BackendKind b) {
        if (b < 0 || b >= _BACKEND_KIND_MAX)
                return NULL;
        return backend_names[b];
}

BackendKind backend_kind_from_string(const char *s) {
        if (!s)
                return _BACKEND_KIND_INVALID;
        for (int i = 0; i < _BACKEND_KIND_MAX; i++)
                if (strcmp(s, backend_names[i]) == 0)
                        return (BackendKind) i;
        return _BACKEND_KIND_INVALID;
}

bool vm_name_is_valid(const char *vm) {
        size_t n;

        if (!vm)
                return false;
        n = strlen(vm);
        if (n == 0 || n > VM_NAME_MAX)
                return false;
        if (!g_utf8_validate(vm, (gssize) n, NULL))
                return false;
        for (const unsigned char *p = (const unsigned char *) vm; *p; p++)
                if (*p == '/' || *p < 0x20 || *p == 0x7f)
                        return false;
        /* C1 control characters (U+0080..U+009F) */
        for (const char *p = vm; *p; p = g_utf8_next_char(p)) {
                gunichar c = g_utf8_get_char(p);
                if (c >= 0x80 && c <= 0x9f)
                        return false;
        }
        return true;
}

bool alias_is_valid(const char *alias) {
        size_t n;

        if (!alias)
                return false;
        n = strlen(alias);
        if (n == 0 || n > ALIAS_MAX)
                return false;
        for (const char *p = alias; *p; p++)
                if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_' || *p == '-'))
                        return false;
        return true;
}

/* FNV-1a: stable across restarts and builds, which the label needs (it names files in /run). */
static uint32_t hash32(const char *s) {
        uint32_t h = 2166136261u;

        for (const unsigned char *p = (const unsigned char *) s; *p; p++) {
                h ^= *p;
                h *= 16777619u;
        }
        return h;
}

int vm_label(const char *vm, char **ret) {
        char buf[VM_LABEL_PREFIX_MAX + 1 + 8 + 1];
        size_t n = 0;
        bool changed = false;

        if (!vm_name_is_valid(vm))
                return -EINVAL;
        for (const char *p = vm; *p; p++) {
                char c = *p;
                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '.' || c == '_' || c == '-')) {
                        c = '_';
                        changed = true;
                }
                if (n == VM_LABEL_PREFIX_MAX) {
                        changed = true;
                        break;
                }
                buf[n++] = c;
        }
        buf[n] = 0;
        /* "." and ".." are not usable as directory names */
        if (strcmp(buf, ".") == 0 || strcmp(buf, "..") == 0) {
                memset(buf, '_', n);
                changed = true;
        }
        if (changed)
                (void) snprintf(buf + n, sizeof(buf) - n, "-%08x", hash32(vm));
        *ret = strdup(buf);
        return *ret ? 0 : -ENOMEM;
}

int device_fdname(const char *vm, const char *alias, char **ret) {
        _cleanup_free_ char *label = NULL;
        int r;

        if (!alias_is_valid(alias))
                return -EINVAL;
        r = vm_label(vm, &label);
        if (r < 0)
                return r;
        if (asprintf(ret, "dev-%s.%s", label, alias) < 0)
                return -ENOMEM;
        return 0;
}

bool fdname_is_valid(const char *s) {
        size_t n;

        if (!s)
                return false;
        n = strlen(s);
        if (n == 0 || n > 255)
                return false;
        for (const char *p = s; *p; p++)
                if (*p < 0x20 || *p >= 0x7f || *p == ':')
                        return false;
        return true;
}

const char *worker_backend_name(BackendKind b, DeviceRole role) {
        bool enc = role == DEVICE_ROLE_ENCODER;

        if (role != DEVICE_ROLE_DECODER && role != DEVICE_ROLE_ENCODER)
                return NULL;
        switch (b) {
        case BACKEND_V4L2:
                return enc ? "v4l2-encoder" : "v4l2-decoder";
        case BACKEND_FFMPEG:
                return enc ? "ffmpeg-encoder" : "ffmpeg-decoder";
        case BACKEND_NULL:
                /* the null codec (null-codec.md): "null" decodes, "null-encoder" encodes */
                return enc ? "null-encoder" : "null";
        default:
                return NULL;
        }
}

static bool path_is_normalized(const char *p) {
        if (!p || p[0] != '/')
                return false;
        if (strcmp(p, "/") == 0)
                return true;
        if (p[strlen(p) - 1] == '/')
                return false;
        for (const char *c = p; *c;) {
                const char *e;
                size_t n;

                c++; /* skip '/' */
                e = strchrnul(c, '/');
                n = (size_t) (e - c);
                if (n == 0 || (n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.'))
                        return false;
                c = e;
        }
        return true;
}

bool path_is_below(const char *path, const char *dir) {
        size_t n;

        if (!path_is_normalized(path) || !path_is_normalized(dir))
                return false;
        n = strlen(dir);
        if (strcmp(dir, "/") == 0)
                return strlen(path) > 1;
        return strncmp(path, dir, n) == 0 && path[n] == '/' && path[n + 1] != 0;
}
