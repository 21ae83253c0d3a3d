/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Names of the management plane (management-plane.md §6.1, §6.7): which VM names and aliases are valid,
 * the filesystem label of a VM, fd-store names, and the worker backend for a Backend/Role pair.
 * Pure functions: no logging, no I/O.
 */

#include <stdbool.h>
#include <stddef.h>

#define VM_NAME_MAX 255
#define ALIAS_MAX 16
#define VM_LABEL_PREFIX_MAX 48
/* sizeof(sun_path) - 1 */
#define SOCKET_PATH_MAX 107

typedef enum DeviceRole {
        DEVICE_ROLE_AUTO,
        DEVICE_ROLE_DECODER,
        DEVICE_ROLE_ENCODER,
        _DEVICE_ROLE_MAX,
        _DEVICE_ROLE_INVALID = -22,
} DeviceRole;

typedef enum BackendKind {
        BACKEND_V4L2,
        BACKEND_FFMPEG,
        BACKEND_NULL,
        _BACKEND_KIND_MAX,
        _BACKEND_KIND_INVALID = -22,
} BackendKind;

const char *device_role_to_string(DeviceRole r);
DeviceRole device_role_from_string(const char *s);
const char *backend_kind_to_string(BackendKind b);
BackendKind backend_kind_from_string(const char *s);

/* Any UTF-8 of 1..255 bytes without '/' or control characters. */
bool vm_name_is_valid(const char *vm);
/* [a-z0-9_-]{1,16} */
bool alias_is_valid(const char *alias);

/* The VM's directory label: characters outside [A-Za-z0-9._-] become '_', the result is cut to 48 bytes,
 * and "-<8 hex digits of a hash of the name>" is appended when anything was changed. */
int vm_label(const char *vm, char **ret);

/* "dev-<vm-label>.<alias>": the FDNAME= of a device's listening socket in the fd store. */
int device_fdname(const char *vm, const char *alias, char **ret);

/* True when s is a name systemd accepts for FDNAME= (1..255 printable ASCII characters, no ':'). */
bool fdname_is_valid(const char *s);

/* The worker's --backend= value for a backend kind and a resolved role (decoder or encoder). Returns
 * NULL when the backend does not offer that role. */
const char *worker_backend_name(BackendKind b, DeviceRole role);

/* True when path is absolute, normalized (no "//", "." or ".." components, no trailing '/') and below
 * dir (itself normalized). */
bool path_is_below(const char *path, const char *dir);
