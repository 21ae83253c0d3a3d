/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * /etc/virtio-video/virtio-videod.conf (management-plane.md §6.8): a GKeyFile with one group [Daemon]:
 *   SocketGroup=        group name or number that gets the per-VM socket directories and sockets
 *   AllowedHostDevices= ';'-separated globs of host nodes that may be attached (default /dev/video*)
 *   MaxDevices=         upper bound of attached devices (1..65536, default 256)
 *   LogLevel=           err, warning, notice, info, debug, or 0..7 (default info)
 *   IdleExitSec=        seconds without devices before the daemon exits; 0 disables (default 30)
 *   WorkerSandbox=      yes|no: pass --sandbox to workers whose --print-capabilities list "sandbox"
 *                       (default yes)
 * Unknown groups or keys and bad values are errors: the daemon refuses to start with a message naming
 * the file, the key and the value.
 */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define DAEMON_CONFIG_DEFAULT_PATH SYSCONFDIR "/virtio-video/virtio-videod.conf"
#define DAEMON_DEFAULT_MAX_DEVICES 256u
#define DAEMON_MAX_DEVICES_LIMIT 65536u
#define DAEMON_DEFAULT_IDLE_EXIT_SEC 30u

typedef struct DaemonConfig {
        char *path;                  /* the file read, or NULL when defaults are used */
        char *socket_group;          /* NULL: keep the daemon's own group */
        gid_t socket_gid;            /* valid when socket_group is set */
        char **allowed_host_devices; /* NULL-terminated glob list */
        unsigned max_devices;
        int log_level;
        uint64_t idle_exit_usec; /* 0: never */
        bool worker_sandbox;
} DaemonConfig;

/* Fills defaults. */
int daemon_config_init(DaemonConfig *c);
void daemon_config_done(DaemonConfig *c);

/* Reads path into *c (which must hold defaults). A missing file is fine only when !must_exist. On a
 * parse error returns a negative errno and sets *ret_error to a message ("<file>: <key>=<value>: why"). */
int daemon_config_load(DaemonConfig *c, const char *path, bool must_exist, char **ret_error);

/* True when path matches one of the allow-list globs. */
bool daemon_config_host_device_allowed(const DaemonConfig *c, const char *path);
