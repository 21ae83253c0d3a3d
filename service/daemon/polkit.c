/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <linux/capability.h>
#include <string.h>

#include <glib.h>

#include "common/log.h"
#include "common/macro.h"
#include "daemon/polkit.h"

struct PolkitRegistry {
        GHashTable *queries; /* sd_bus_message* → Query* */
};

typedef struct Query {
        PolkitRegistry *reg;
        sd_bus_message *request;
        sd_bus_slot *slot;
        char *action;
        char **details;
        bool done;
        bool authorized;
        bool challenge;
        char *error_name;
        char *error_message;
} Query;

static void query_free(void *p) {
        Query *q = p;

        if (!q)
                return;
        sd_bus_slot_unref(q->slot);
        sd_bus_message_unref(q->request);
        free(q->action);
        g_strfreev(q->details);
        free(q->error_name);
        free(q->error_message);
        free(q);
}

PolkitRegistry *polkit_registry_new(void) {
        PolkitRegistry *r = calloc(1, sizeof(*r));

        if (!r)
                return NULL;
        r->queries = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, query_free);
        return r;
}

PolkitRegistry *polkit_registry_free(PolkitRegistry *r) {
        if (!r)
                return NULL;
        g_hash_table_destroy(r->queries);
        free(r);
        return NULL;
}

unsigned polkit_registry_pending(const PolkitRegistry *r) {
        return r ? g_hash_table_size(r->queries) : 0;
}

static bool details_equal(char **a, const char *const *b) {
        size_t i = 0;

        for (; a && a[i] && b && b[i]; i++)
                if (strcmp(a[i], b[i]) != 0)
                        return false;
        return (!a || !a[i]) && (!b || !b[i]);
}

static int query_callback(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        Query *q = userdata;
        int r;

        q->slot = sd_bus_slot_unref(q->slot);
        q->done = true;
        if (sd_bus_message_is_method_error(reply, NULL)) {
                const sd_bus_error *e = sd_bus_message_get_error(reply);
                q->error_name = strdup(e && e->name ? e->name : "unknown");
                q->error_message = strdup(e && e->message ? e->message : "");
        } else {
                int authorized = 0, challenge = 0;
                r = sd_bus_message_enter_container(reply, 'r', "bba{ss}");
                if (r >= 0)
                        r = sd_bus_message_read(reply, "bb", &authorized, &challenge);
                if (r < 0) {
                        q->error_name = strdup(SD_BUS_ERROR_INVALID_ARGS);
                        q->error_message = strdup("malformed reply from polkit");
                } else {
                        q->authorized = authorized;
                        q->challenge = challenge;
                }
        }

        /* Run the original method call again; this time the handler finds the verdict. */
        r = sd_bus_message_rewind(q->request, true);
        if (r >= 0)
                r = sd_bus_enqueue_for_read(sd_bus_message_get_bus(q->request), q->request);
        if (r < 0) {
                log_warning_errno(r, "Failed to requeue a method call after polkit answered: %m");
                (void) sd_bus_reply_method_errnof(q->request, r, "Failed to complete authorization: %m");
                g_hash_table_remove(q->reg->queries, q->request);
        }
        return 0;
}

static int
start_query(PolkitRegistry *reg, sd_bus_message *m, const char *action, const char *const *details) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *call = NULL;
        Query *q;
        int r;

        r = sd_bus_message_new_method_call(sd_bus_message_get_bus(m), &call, "org.freedesktop.PolicyKit1",
                                           "/org/freedesktop/PolicyKit1/Authority",
                                           "org.freedesktop.PolicyKit1.Authority", "CheckAuthorization");
        if (r < 0)
                return r;
        r = sd_bus_message_append(call, "(sa{sv})s", "system-bus-name", 1, "name", "s",
                                  sd_bus_message_get_sender(m), action);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(call, 'a', "{ss}");
        if (r < 0)
                return r;
        for (size_t i = 0; details && details[i] && details[i + 1]; i += 2) {
                r = sd_bus_message_append(call, "{ss}", details[i], details[i + 1]);
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_close_container(call);
        if (r < 0)
                return r;
        r = sd_bus_message_append(call, "us",
                                  (uint32_t) (sd_bus_message_get_allow_interactive_authorization(m) > 0),
                                  "");
        if (r < 0)
                return r;

        q = calloc(1, sizeof(*q));
        if (!q)
                return -ENOMEM;
        q->reg = reg;
        q->request = sd_bus_message_ref(m);
        q->action = strdup(action);
        q->details = g_strdupv((char **) details);
        if (!q->action) {
                query_free(q);
                return -ENOMEM;
        }
        /* interactive authentication may take a while: no timeout of our own (polkit has one) */
        r = sd_bus_call_async(sd_bus_message_get_bus(m), &q->slot, call, query_callback, q, UINT64_MAX);
        if (r < 0) {
                query_free(q);
                return r;
        }
        g_hash_table_replace(reg->queries, m, q);
        return 0;
}

static int check_good_user(sd_bus_message *m, uid_t owner, bool *ret_owner, bool *ret_privileged) {
        _cleanup_(sd_bus_creds_unrefp) sd_bus_creds *creds = NULL;
        uid_t uid;
        int r;

        r = sd_bus_query_sender_creds(m, SD_BUS_CREDS_UID | SD_BUS_CREDS_EUID | SD_BUS_CREDS_EFFECTIVE_CAPS,
                                      &creds);
        if (r < 0)
                return r;
        r = sd_bus_creds_get_euid(creds, &uid);
        if (r < 0)
                r = sd_bus_creds_get_uid(creds, &uid);
        if (r < 0)
                return r;
        *ret_owner = owner != UID_INVALID && uid == owner;
        *ret_privileged = uid == 0 || sd_bus_creds_has_effective_cap(creds, CAP_SYS_ADMIN) > 0;
        return 0;
}

int polkit_check(PolkitRegistry *reg,
                 sd_bus_message *m,
                 const char *action,
                 const char *const *details,
                 uid_t owner,
                 sd_bus_error *error) {
        Query *q;
        bool is_owner = false, privileged = false;
        int r;

        q = g_hash_table_lookup(reg->queries, m);
        if (q && q->done && strcmp(q->action, action) == 0 && details_equal(q->details, details)) {
                bool authorized = q->authorized, challenge = q->challenge;
                _cleanup_free_ char *name = TAKE_PTR(q->error_name), *message = TAKE_PTR(q->error_message);

                g_hash_table_remove(reg->queries, m);
                if (name)
                        return sd_bus_error_setf(
                                error, SD_BUS_ERROR_ACCESS_DENIED,
                                "Authorization of %s could not be checked (%s: %s); access denied", action,
                                name, message ? message : "");
                if (authorized)
                        return 1;
                if (challenge)
                        return sd_bus_error_setf(error, SD_BUS_ERROR_INTERACTIVE_AUTHORIZATION_REQUIRED,
                                                 "Interactive authentication required for %s", action);
                return sd_bus_error_setf(error, SD_BUS_ERROR_ACCESS_DENIED,
                                         "Access denied: %s not authorized", action);
        }
        if (q) {
                /* still pending, or asked for something else: a client re-sent the message object?
                 * Drop the stale verdict and ask again. */
                if (!q->done)
                        return 0;
                g_hash_table_remove(reg->queries, m);
        }

        r = check_good_user(m, owner, &is_owner, &privileged);
        if (r < 0)
                return sd_bus_error_set_errnof(error, r, "Failed to get the caller's credentials: %m");
        if (is_owner || privileged)
                return 1;

        r = start_query(reg, m, action, details);
        if (r < 0)
                return sd_bus_error_set_errnof(error, r, "Failed to ask polkit: %m");
        return 0;
}
