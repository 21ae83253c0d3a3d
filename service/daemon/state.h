/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * What an attachment is, and how it is kept across daemon restarts (management-plane.md §6.6): one keyfile
 * per device in <runtime>/devices/<vm-label>.<alias>.state, written atomically (temporary file, fsync,
 * rename). The same parser reads /etc/virtio-video/static.d/<instance>.conf for static socket units,
 * which may only set VM=, Alias=, HostDevice=, Role=, Backend= and AllowedPeerUIDs=.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "daemon/naming.h"

#define GID_INVALID ((gid_t) -1)
#define ALLOWED_UIDS_MAX 64

typedef struct DeviceSpec {
        char *vm;
        char *alias;
        char *host_device; /* "" for software backends */
        BackendKind backend;
        DeviceRole role; /* resolved: decoder or encoder */
        char *protocol;
        char *transport;    /* "server", "client" (we connect to socket_path) or "fd" (never persisted) */
        char *socket_path;  /* "" for the fd transport */
        char *peer_machine; /* PeerMachine=: the machined machine the peer must belong to, or NULL */
        uint8_t uuid[16];
        size_t uuid_size; /* 0 or 16 */
        mode_t socket_mode;
        uid_t socket_user;  /* UID_INVALID: unchanged */
        gid_t socket_group; /* GID_INVALID: the daemon's own */
        uid_t owner;
        uid_t *allowed_uids;
        size_t n_allowed_uids;
        bool exclusive;
        uint64_t created_usec;
        char *driver;
        char *card;
        char *static_instance; /* set for devices from static socket units */
} DeviceSpec;

void device_spec_done(DeviceSpec *s);

/* Writes s to path atomically (mode 0600). */
int device_spec_save(const DeviceSpec *s, const char *path);
/* Reads a state file written by device_spec_save(). Every value is checked as on AttachDevice; a file that
 * does not pass gives -EINVAL and a message in *ret_error. */
int device_spec_load(const char *path, DeviceSpec *ret, char **ret_error);
/* Reads static.d/<instance>.conf. Defaults: Alias=video0, Backend=v4l2, Role=decoder. */
int device_spec_load_static(const char *path, const char *instance, DeviceSpec *ret, char **ret_error);
