/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Authorization of mutating calls (management-plane.md §1.2, §6.5): the object's owner passes, then
 * root or CAP_SYS_ADMIN, then an asynchronous CheckAuthorization on org.freedesktop.PolicyKit1. While
 * polkit thinks, the handler returns 1; when the answer comes the original message is queued again with
 * sd_bus_enqueue_for_read() and the handler runs a second time, finding the verdict here.
 */

#include <stdbool.h>
#include <sys/types.h>

#include <systemd/sd-bus.h>

typedef struct PolkitRegistry PolkitRegistry;

PolkitRegistry *polkit_registry_new(void);
PolkitRegistry *polkit_registry_free(PolkitRegistry *r);
unsigned polkit_registry_pending(const PolkitRegistry *r);

/* details: NULL-terminated key, value, key, value… list. owner: UID_INVALID for none.
 * Returns 1 when allowed, 0 when a query is now pending (the handler returns 1 and runs again later),
 * or a negative errno with *error set (AccessDenied, InteractiveAuthorizationRequired, …). */
int polkit_check(PolkitRegistry *reg,
                 sd_bus_message *m,
                 const char *action,
                 const char *const *details,
                 uid_t owner,
                 sd_bus_error *error);

#define UID_INVALID ((uid_t) -1)
