/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * The sandbox vhost-user-video applies to itself with --sandbox (architecture.md §2: the manager hands the
 * worker only fds, so after set-up it needs no filesystem, no privileges and few system calls; crosvm's
 * jailed devices). Two steps:
 *
 *  1. Right after option parsing, before any library opens anything: sandbox_close_inherited_fds() closes
 *     every inherited fd the worker was not given (keeps 0-2 and the --socket-fd/--control-fd/--device-fd
 *     fds). Fds opened later by the worker and its libraries are its own and stay.
 *  2. After set-up (backend, listening socket, control fd), before serving any frontend: sandbox_apply()
 *     sets no_new_privs, drops every capability, lowers RLIMIT_NOFILE (and RLIMIT_FSIZE when no standard
 *     fd is a regular file) and installs the seccomp filter (sandbox_install_filter()).
 *
 * The filter's default action is SECCOMP_RET_TRAP: a SIGSYS handler logs the refused system call by name
 * and the process then dies of SIGSYS, as with SECCOMP_RET_KILL_PROCESS. A few calls fail with an errno
 * instead (see sandbox.c): open/openat (EACCES, so libraries probing files fall back), unlink (EPERM: the
 * socket file of --socket-path stays behind), clone3 (ENOSYS, so glibc falls back to clone, whose flags
 * the filter can check).
 */

#include <stdbool.h>
#include <stddef.h>

/* RLIMIT_NOFILE of a sandboxed worker: 0-2, listening and connected socket, control fd, epoll, signalfd,
 * kick/call/err eventfds, 8 memory regions, an fd or eventfd per stream (32 streams) and library fds fit
 * with room to spare. */
#define SANDBOX_MAX_FDS 256

/* Whether this build can filter system calls (libseccomp). */
bool sandbox_have_seccomp(void);

/* Closes every fd above 2 that is not in keep[] (negative entries are ignored). Returns 0 or -errno. */
int sandbox_close_inherited_fds(const int *keep, size_t n_keep);

/* Before sandbox_apply(): also allow socket(AF_UNIX, ...) and connect(), which --connect-path needs to
 * reconnect to its frontend. Other socket families stay refused. */
void sandbox_allow_unix_connect(void);

/* no_new_privs, capabilities, resource limits, seccomp filter; irreversible. Returns 0, or a negative
 * errno with a one-line message in error[] (nothing is logged). -EOPNOTSUPP: a build without seccomp. */
int sandbox_apply(char *error, size_t error_size);

/* Only the seccomp filter (and the SIGSYS handler that reports refusals); needs no_new_privs or
 * CAP_SYS_ADMIN. Applies to every thread of the process. Returns 0 or -errno. */
int sandbox_install_filter(void);
