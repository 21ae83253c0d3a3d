/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * videoctl: the command line client of virtio-videod (management-plane.md §6.9), a thin sd-bus client in
 * the style of machinectl. Exit status 0 on success, 1 on any failure; errors on stderr as
 * "Failed to <verb> <object>: <reason>".
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <inttypes.h>
#include <pwd.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "cli/probe.h"
#include "cli/table.h"
#include "common/bus-errors.h"
#include "common/macro.h"
#include "config.h"

#define BUS_NAME "org.virtiovideo.video1"
#define MANAGER_PATH "/org/virtiovideo/video1"
#define MANAGER_IFACE "org.virtiovideo.video1.Manager"
#define DEVICE_IFACE "org.virtiovideo.video1.Device"
#define DEVICE_PATH_PREFIX "/org/virtiovideo/video1/device"

#define ATTACH_FLAG_REPLACE (UINT64_C(1) << 0)
#define ATTACH_FLAG_IF_MISSING (UINT64_C(1) << 1)
#define DETACH_FLAG_FORCE (UINT64_C(1) << 0)

#define MAX_LIST_ARGS 64

static TableJson arg_json = TABLE_JSON_OFF;
static bool arg_legend = true;
static bool arg_ask_password = true;
static bool arg_quiet = false;
static bool arg_full = false;
static bool arg_all = false;
static bool arg_value = false;
static bool arg_force = false;
static const char *arg_host = NULL;
static const char *arg_machine = NULL;
static const char *arg_properties[MAX_LIST_ARGS];
static unsigned arg_n_properties = 0;
/* attach, detach, list */
static const char *arg_vm = NULL;
static const char *arg_device = NULL;
static const char *arg_alias = NULL;
static const char *arg_role = NULL;
static const char *arg_protocol = NULL;
static const char *arg_backend = NULL;
static const char *arg_uuid = NULL;
static const char *arg_transport = NULL;
static const char *arg_socket = NULL;
static const char *arg_socket_mode = NULL;
static const char *arg_socket_group = NULL;
static const char *arg_socket_user = NULL;
static uint32_t arg_allow_uids[MAX_LIST_ARGS];
static unsigned arg_n_allow_uids = 0;
static const char *arg_peer_machine = NULL;
static bool arg_exclusive = false;
static bool arg_bind_to_caller = false;
static uint64_t arg_attach_flags = 0;
/* qemu-args */
static const char *arg_id = NULL;
static const char *arg_reconnect_ms = NULL;
static const char *arg_format = "cmdline";
static const char *arg_frontend = "vhost-user-test-device-pci";
/* probe */
static const char *arg_probe_stream = NULL;
static uint32_t arg_probe_stream_format = 0;

static pid_t agent_pid = 0;

/* --- helpers ------------------------------------------------------------------------------------------- */

static int fail(const char *verb, const char *object, int r, const sd_bus_error *error) {
        if (error && sd_bus_error_is_set(error) && error->message)
                fprintf(stderr, "Failed to %s%s%s: %s\n", verb, object ? " " : "", object ?: "",
                        error->message);
        else
                fprintf(stderr, "Failed to %s%s%s: %s\n", verb, object ? " " : "", object ?: "",
                        strerror(r < 0 ? -r : r));
        return -EINVAL;
}

static int parse_uint32(const char *s, int base, uint32_t *ret) {
        char *end;
        unsigned long v;

        if (!s || !*s || *s == '-' || *s == '+')
                return -EINVAL;
        errno = 0;
        v = strtoul(s, &end, base);
        if (errno != 0 || *end != '\0' || v > UINT32_MAX)
                return -EINVAL;
        *ret = (uint32_t) v;
        return 0;
}

/* "VM/ALIAS": neither part may be empty; a VM name cannot contain '/', so the first one splits. */
static int split_device_name(const char *name, char **ret_vm, char **ret_alias) {
        const char *slash = strchr(name, '/');
        char *vm, *alias;

        if (!slash || slash == name || slash[1] == '\0' || strchr(slash + 1, '/'))
                return -EINVAL;
        vm = strndup(name, (size_t) (slash - name));
        alias = strdup(slash + 1);
        if (!vm || !alias) {
                free(vm);
                free(alias);
                return -ENOMEM;
        }
        *ret_vm = vm;
        *ret_alias = alias;
        return 0;
}

static int parse_uuid(const char *s, uint8_t ret[16]) {
        unsigned n = 0;

        for (const char *p = s; *p; p++) {
                int hi, lo;
                if (*p == '-' && (n == 4 || n == 6 || n == 8 || n == 10))
                        continue;
                if (n >= 16 || !p[1])
                        return -EINVAL;
                hi = *p >= '0' && *p <= '9'                     ? *p - '0'
                     : (*p | 0x20) >= 'a' && (*p | 0x20) <= 'f' ? (*p | 0x20) - 'a' + 10
                                                                : -1;
                p++;
                lo = *p >= '0' && *p <= '9'                     ? *p - '0'
                     : (*p | 0x20) >= 'a' && (*p | 0x20) <= 'f' ? (*p | 0x20) - 'a' + 10
                                                                : -1;
                if (hi < 0 || lo < 0)
                        return -EINVAL;
                ret[n++] = (uint8_t) (hi << 4 | lo);
        }
        return n == 16 ? 0 : -EINVAL;
}

static void format_timestamp(uint64_t usec, char *buf, size_t size) {
        time_t t = (time_t) (usec / 1000000);
        struct tm tm;

        if (usec == 0 || !localtime_r(&t, &tm) || strftime(buf, size, "%a %Y-%m-%d %H:%M:%S %Z", &tm) == 0)
                snprintf(buf, size, "n/a");
}

static void polkit_agent_close(void) {
        if (agent_pid <= 0)
                return;
        (void) kill(agent_pid, SIGTERM);
        (void) waitpid(agent_pid, NULL, 0);
        agent_pid = 0;
}

/* Like systemd's tools: when interactive authorization is allowed and we talk to a terminal, run
 * pkttyagent for this process so polkit can ask for a password. Failure to start it is not an error. */
static void polkit_agent_open(void) {
        char pid_arg[32], fd_arg[32];
        int pipefd[2];
        char c;

        if (!arg_ask_password || arg_host || geteuid() == 0 || !isatty(STDIN_FILENO) ||
            !isatty(STDOUT_FILENO))
                return;
        if (access("/usr/bin/pkttyagent", X_OK) < 0 || pipe2(pipefd, O_CLOEXEC) < 0)
                return;
        snprintf(pid_arg, sizeof(pid_arg), "%d", (int) getpid());
        agent_pid = fork();
        if (agent_pid < 0) {
                agent_pid = 0;
                safe_close(pipefd[0]);
                safe_close(pipefd[1]);
                return;
        }
        if (agent_pid == 0) {
                int fd = dup(pipefd[1]); /* without O_CLOEXEC, for the agent */
                snprintf(fd_arg, sizeof(fd_arg), "%d", fd);
                execl("/usr/bin/pkttyagent", "pkttyagent", "--notify-fd", fd_arg, "--fallback", "--process",
                      pid_arg, (char *) NULL);
                _exit(EXIT_FAILURE);
        }
        safe_close(pipefd[1]);
        /* The agent closes the notify fd once it is registered (or dies). */
        while (read(pipefd[0], &c, 1) < 0 && errno == EINTR)
                ;
        safe_close(pipefd[0]);
}

static int bus_open(sd_bus **ret) {
        sd_bus *bus = NULL;
        int r;

        if (arg_host)
                r = sd_bus_open_system_remote(&bus, arg_host);
        else if (arg_machine)
                r = sd_bus_open_system_machine(&bus, arg_machine);
        else
                r = sd_bus_open_system(&bus); /* honours DBUS_SYSTEM_BUS_ADDRESS */
        if (r < 0) {
                fprintf(stderr, "Failed to connect to the system bus: %s\n", strerror(-r));
                return r;
        }
        (void) sd_bus_set_allow_interactive_authorization(bus, arg_ask_password);
        *ret = bus;
        return 0;
}

static int get_device_path(sd_bus *bus, const char *vm, const char *alias, char **ret, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *path;
        int r;

        r = sd_bus_call_method(bus, BUS_NAME, MANAGER_PATH, MANAGER_IFACE, "GetDevice", error, &reply, "ss",
                               vm, alias);
        if (r < 0)
                return r;
        r = sd_bus_message_read(reply, "o", &path);
        if (r < 0)
                return r;
        *ret = strdup(path);
        return *ret ? 0 : -ENOMEM;
}

/* --- properties ---------------------------------------------------------------------------------------- */

typedef struct DeviceInfo {
        char *vm, *alias, *host_device, *host_device_driver, *host_device_card;
        char *backend, *role, *protocol, *transport, *socket_path, *state, *peer_machine;
        uint32_t socket_mode, socket_user, socket_group, owner, peer_pid, peer_uid;
        uint64_t created, connected;
} DeviceInfo;

static void device_info_done(DeviceInfo *i) {
        char **strs[] = {
                &i->vm,      &i->alias,       &i->host_device, &i->host_device_driver, &i->host_device_card,
                &i->backend, &i->role,        &i->protocol,    &i->transport,          &i->socket_path,
                &i->state,   &i->peer_machine
        };
        for (size_t k = 0; k < ELEMENTSOF(strs); k++) {
                free(*strs[k]);
                *strs[k] = NULL;
        }
}

static const struct {
        const char *name;
        char type;
        size_t offset;
} device_info_map[] = {
        { "VM", 's', offsetof(DeviceInfo, vm) },
        { "Alias", 's', offsetof(DeviceInfo, alias) },
        { "HostDevice", 's', offsetof(DeviceInfo, host_device) },
        { "HostDeviceDriver", 's', offsetof(DeviceInfo, host_device_driver) },
        { "HostDeviceCard", 's', offsetof(DeviceInfo, host_device_card) },
        { "Backend", 's', offsetof(DeviceInfo, backend) },
        { "Role", 's', offsetof(DeviceInfo, role) },
        { "Protocol", 's', offsetof(DeviceInfo, protocol) },
        { "Transport", 's', offsetof(DeviceInfo, transport) },
        { "SocketPath", 's', offsetof(DeviceInfo, socket_path) },
        { "State", 's', offsetof(DeviceInfo, state) },
        { "PeerMachine", 's', offsetof(DeviceInfo, peer_machine) },
        { "SocketMode", 'u', offsetof(DeviceInfo, socket_mode) },
        { "SocketUser", 'u', offsetof(DeviceInfo, socket_user) },
        { "SocketGroup", 'u', offsetof(DeviceInfo, socket_group) },
        { "Owner", 'u', offsetof(DeviceInfo, owner) },
        { "PeerPID", 'u', offsetof(DeviceInfo, peer_pid) },
        { "PeerUID", 'u', offsetof(DeviceInfo, peer_uid) },
        { "CreatedTimestamp", 't', offsetof(DeviceInfo, created) },
        { "ConnectedTimestamp", 't', offsetof(DeviceInfo, connected) },
};

static int device_info_get(sd_bus *bus, const char *path, DeviceInfo *ret, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        DeviceInfo info = {};
        int r;

        r = sd_bus_call_method(bus, BUS_NAME, path, "org.freedesktop.DBus.Properties", "GetAll", error,
                               &reply, "s", DEVICE_IFACE);
        if (r < 0)
                return r;
        r = sd_bus_message_enter_container(reply, 'a', "{sv}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(reply, 'e', "sv")) > 0) {
                const char *name;
                bool known = false;

                r = sd_bus_message_read(reply, "s", &name);
                if (r < 0)
                        goto fail;
                for (size_t k = 0; k < ELEMENTSOF(device_info_map) && !known; k++) {
                        char sig[2] = { device_info_map[k].type, 0 };
                        uint8_t *field = (uint8_t *) &info + device_info_map[k].offset;

                        if (strcmp(name, device_info_map[k].name) != 0)
                                continue;
                        known = true;
                        if (sd_bus_message_verify_type(reply, 'v', sig) <= 0)
                                break; /* a type we do not know: leave the field unset */
                        r = sd_bus_message_enter_container(reply, 'v', sig);
                        if (r < 0)
                                goto fail;
                        if (sig[0] == 's') {
                                const char *s;
                                r = sd_bus_message_read(reply, "s", &s);
                                if (r >= 0 && !(*(char **) field = strdup(s)))
                                        r = -ENOMEM;
                        } else
                                r = sd_bus_message_read_basic(reply, sig[0], field);
                        if (r < 0)
                                goto fail;
                        r = sd_bus_message_exit_container(reply);
                        if (r < 0)
                                goto fail;
                }
                if (!known || sd_bus_message_verify_type(reply, 'v', NULL) > 0) {
                        r = sd_bus_message_skip(reply, "v");
                        if (r < 0)
                                goto fail;
                }
                r = sd_bus_message_exit_container(reply);
                if (r < 0)
                        goto fail;
        }
        if (r < 0)
                goto fail;
        *ret = info;
        return 0;
fail:
        device_info_done(&info);
        return r;
}

typedef union BasicValue {
        const char *s;
        uint8_t y;
        uint16_t q;
        uint32_t u;
        int32_t i;
        uint64_t t;
        int64_t x;
        int b;
} BasicValue;

#define PRINTABLE_BASIC_TYPES "sobuiytxq"

/* One basic value as `show` prints it. */
static void print_basic(FILE *f, char type, const BasicValue *v) {
        switch (type) {
        case 's':
        case 'o':
                fputs(v->s, f);
                break;
        case 'y':
                fprintf(f, "%u", (unsigned) v->y);
                break;
        case 'q':
                fprintf(f, "%u", (unsigned) v->q);
                break;
        case 'u':
                fprintf(f, "%" PRIu32, v->u);
                break;
        case 'i':
                fprintf(f, "%" PRIi32, v->i);
                break;
        case 't':
                fprintf(f, "%" PRIu64, v->t);
                break;
        case 'x':
                fprintf(f, "%" PRIi64, v->x);
                break;
        default:
                fputs(v->b ? "yes" : "no", f);
        }
}

/* Formats the variant the message points at: basic types, arrays of them space-separated, and byte
 * arrays as one hex string (a UUID reads as one). */
static int format_variant(sd_bus_message *m, char **ret) {
        const char *contents;
        char type;
        int r;

        r = sd_bus_message_peek_type(m, &type, &contents);
        if (r < 0)
                return r;
        r = sd_bus_message_enter_container(m, 'v', contents);
        if (r < 0)
                return r;
        r = sd_bus_message_peek_type(m, &type, &contents);
        if (r < 0)
                return r;

        char *s = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&s, &len);
        if (!f)
                return -ENOMEM;

        BasicValue v;
        if (type == 'a' && contents && strlen(contents) == 1 && strchr(PRINTABLE_BASIC_TYPES, contents[0])) {
                char et = contents[0];
                r = sd_bus_message_enter_container(m, 'a', contents);
                for (bool first = true; r >= 0; first = false) {
                        r = sd_bus_message_read_basic(m, et, &v);
                        if (r <= 0)
                                break;
                        if (et == 'y')
                                fprintf(f, "%02x", v.y);
                        else {
                                fputs(first ? "" : " ", f);
                                print_basic(f, et, &v);
                        }
                }
                if (r >= 0)
                        r = sd_bus_message_exit_container(m);
        } else if (type && strchr(PRINTABLE_BASIC_TYPES, type)) {
                r = sd_bus_message_read_basic(m, type, &v);
                if (r >= 0)
                        print_basic(f, type, &v);
        } else {
                fputs("[unprintable]", f);
                r = sd_bus_message_skip(m, contents);
        }
        fclose(f);
        if (r >= 0)
                r = sd_bus_message_exit_container(m);
        if (r < 0) {
                free(s);
                return r;
        }
        *ret = s;
        return 0;
}

static bool property_wanted(const char *name) {
        if (arg_n_properties == 0)
                return true;
        for (unsigned i = 0; i < arg_n_properties; i++)
                if (strcmp(arg_properties[i], name) == 0)
                        return true;
        return false;
}

/* Key=Value lines of one object's interface (show). Empty values only with -a or when asked by name. */
static int print_properties(sd_bus *bus, const char *path, const char *iface, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        r = sd_bus_call_method(bus, BUS_NAME, path, "org.freedesktop.DBus.Properties", "GetAll", error,
                               &reply, "s", iface);
        if (r < 0)
                return r;
        r = sd_bus_message_enter_container(reply, 'a', "{sv}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(reply, 'e', "sv")) > 0) {
                _cleanup_free_ char *value = NULL;
                const char *name;

                r = sd_bus_message_read(reply, "s", &name);
                if (r < 0)
                        return r;
                r = format_variant(reply, &value);
                if (r < 0)
                        return r;
                r = sd_bus_message_exit_container(reply);
                if (r < 0)
                        return r;
                if (!property_wanted(name))
                        continue;
                if (!arg_all && arg_n_properties == 0 && value[0] == '\0')
                        continue;
                if (arg_value)
                        printf("%s\n", value);
                else
                        printf("%s=%s\n", name, value);
        }
        return r;
}

/* --- verbs --------------------------------------------------------------------------------------------- */

static int verb_list(sd_bus *bus, int argc, char **argv) {
        static const char *const headers[] = { "VM", "ALIAS", "HOST-DEVICE", "ROLE", "STATE", "SOCKET" };
        static const unsigned sort_cols[] = { 0, 1 };
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        Table *t;
        const char *vm, *alias, *host, *state, *path;
        int r;

        r = sd_bus_call_method(bus, BUS_NAME, MANAGER_PATH, MANAGER_IFACE, "ListDevices", &error, &reply,
                               NULL);
        if (r < 0)
                return fail("list", "devices", r, &error);
        t = table_new(headers, ELEMENTSOF(headers));
        if (!t)
                return fail("list", "devices", -ENOMEM, NULL);
        r = sd_bus_message_enter_container(reply, 'a', "(sssso)");
        while (r >= 0 &&
               (r = sd_bus_message_read(reply, "(sssso)", &vm, &alias, &host, &state, &path)) > 0) {
                DeviceInfo info = {};
                if (arg_vm && strcmp(arg_vm, vm) != 0)
                        continue;
                /* Role and socket are not in the list; a device detached meanwhile is shown with "-". */
                if (device_info_get(bus, path, &info, NULL) < 0)
                        info = (DeviceInfo){};
                const char *cells[] = { vm,
                                        alias,
                                        host[0] ? host : "-",
                                        info.role,
                                        info.state ?: state,
                                        info.socket_path && info.socket_path[0] ? info.socket_path : NULL };
                r = table_add_row(t, cells);
                device_info_done(&info);
        }
        if (r < 0) {
                table_free(t);
                return fail("list", "devices", r, NULL);
        }
        table_sort(t, sort_cols, ELEMENTSOF(sort_cols));
        if (arg_json != TABLE_JSON_OFF)
                r = table_print_json(t, stdout, arg_json);
        else {
                r = table_print(t, stdout, arg_legend);
                if (arg_legend) {
                        unsigned n = table_get_rows(t);
                        if (n > 0)
                                printf("\n%u device%s listed.\n", n, n == 1 ? "" : "s");
                        else
                                printf("No devices.\n");
                }
        }
        table_free(t);
        return r;
}

static int verb_list_host_devices(sd_bus *bus, int argc, char **argv) {
        static const char *const headers[] = { "DEVICE", "DRIVER", "CARD", "ROLES", "ATTACHED" };
        static const unsigned sort_cols[] = { 0 };
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *path, *driver, *card, *roles;
        uint32_t n_attached;
        Table *t;
        int r;

        r = sd_bus_call_method(bus, BUS_NAME, MANAGER_PATH, MANAGER_IFACE, "ListHostDevices", &error, &reply,
                               NULL);
        if (r < 0)
                return fail("list", "host devices", r, &error);
        t = table_new(headers, ELEMENTSOF(headers));
        if (!t)
                return fail("list", "host devices", -ENOMEM, NULL);
        table_set_numeric(t, 4);
        r = sd_bus_message_enter_container(reply, 'a', "(ssssu)");
        while (r >= 0 &&
               (r = sd_bus_message_read(reply, "(ssssu)", &path, &driver, &card, &roles, &n_attached)) > 0) {
                char n[16];
                snprintf(n, sizeof(n), "%" PRIu32, n_attached);
                const char *cells[] = { path, driver, card, roles, n };
                r = table_add_row(t, cells);
        }
        if (r < 0) {
                table_free(t);
                return fail("list", "host devices", r, NULL);
        }
        table_sort(t, sort_cols, 1);
        if (arg_json != TABLE_JSON_OFF)
                r = table_print_json(t, stdout, arg_json);
        else {
                r = table_print(t, stdout, arg_legend);
                if (arg_legend) {
                        unsigned k = table_get_rows(t);
                        if (k > 0)
                                printf("\n%u host device%s listed.\n", k, k == 1 ? "" : "s");
                        else
                                printf("No host devices.\n");
                }
        }
        table_free(t);
        return r;
}

static int print_status(sd_bus *bus, const char *name, const char *path) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        DeviceInfo i = {};
        char since[64], created[64];
        uint32_t streams = 0;
        bool have_streams = false;
        int r;

        r = device_info_get(bus, path, &i, &error);
        if (r < 0)
                return fail("get status of", name, r, &error);

        /* Active streams come from the worker; the device may be down: leave the line out then. */
        if (sd_bus_call_method(bus, BUS_NAME, path, DEVICE_IFACE, "GetStatistics", NULL, &reply, NULL) >=
                    0 &&
            sd_bus_message_enter_container(reply, 'a', "{sv}") >= 0) {
                while (sd_bus_message_enter_container(reply, 'e', "sv") > 0) {
                        const char *key;
                        if (sd_bus_message_read(reply, "s", &key) < 0)
                                break;
                        if (strcmp(key, "ActiveStreams") == 0 &&
                            sd_bus_message_read(reply, "v", "u", &streams) >= 0)
                                have_streams = true;
                        else if (sd_bus_message_skip(reply, "v") < 0)
                                break;
                        if (sd_bus_message_exit_container(reply) < 0)
                                break;
                }
        }

        format_timestamp(i.connected, since, sizeof(since));
        format_timestamp(i.created, created, sizeof(created));
        printf("%s/%s\n", i.vm ?: "?", i.alias ?: "?");
        if (i.host_device && i.host_device[0]) {
                printf("    Host device: %s", i.host_device);
                if ((i.host_device_driver && i.host_device_driver[0]) ||
                    (i.host_device_card && i.host_device_card[0]))
                        printf(" (%s, %s)", i.host_device_driver ?: "", i.host_device_card ?: "");
        } else { /* a software backend (ffmpeg, null): no host node */
                printf("        Backend: %s", i.backend && i.backend[0] ? i.backend : "-");
                if (i.host_device_card && i.host_device_card[0])
                        printf(" (%s)", i.host_device_card);
        }
        printf("\n           Role: %s (%s)\n", i.role ?: "-", i.protocol ?: "-");
        if (i.socket_path && i.socket_path[0])
                printf("         Socket: %s (mode %04" PRIo32 ", group %" PRIu32 ", %s)\n", i.socket_path,
                       i.socket_mode, i.socket_group, i.transport ?: "server");
        else
                printf("         Socket: none (%s transport)\n", i.transport ?: "-");
        printf("        Created: %s\n", created);
        if (i.state && strcmp(i.state, "connected") == 0)
                printf("          State: connected since %s\n", since);
        else
                printf("          State: %s\n", i.state ?: "-");
        if (i.peer_pid != 0)
                printf("           Peer: pid %" PRIu32 ", uid %" PRIu32 "%s%s\n", i.peer_pid, i.peer_uid,
                       i.peer_machine && i.peer_machine[0] ? ", machine " : "", i.peer_machine ?: "");
        if (have_streams)
                printf("        Streams: %" PRIu32 " active\n", streams);
        device_info_done(&i);
        return 0;
}

static int for_each_device_arg(sd_bus *bus,
                               int argc,
                               char **argv,
                               const char *verb,
                               int (*fn)(sd_bus *bus, const char *name, const char *path)) {
        int ret = 0;

        for (int k = 0; k < argc; k++) {
                _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
                _cleanup_free_ char *vm = NULL, *alias = NULL, *path = NULL;
                int r;

                r = split_device_name(argv[k], &vm, &alias);
                if (r < 0) {
                        fprintf(stderr, "Failed to %s %s: device names are written VM/ALIAS\n", verb,
                                argv[k]);
                        ret = -EINVAL;
                        continue;
                }
                r = get_device_path(bus, vm, alias, &path, &error);
                if (r < 0) {
                        ret = fail(verb, argv[k], r, &error);
                        continue;
                }
                if (k > 0 && fn == print_status)
                        putchar('\n');
                r = fn(bus, argv[k], path);
                if (r < 0)
                        ret = r;
        }
        return ret;
}

static int verb_status(sd_bus *bus, int argc, char **argv) {
        if (argc > 1)
                return for_each_device_arg(bus, argc - 1, argv + 1, "get status of", print_status);

        /* No argument: every device. */
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *vm, *alias, *host, *state, *path;
        int r, ret = 0;
        bool first = true;

        r = sd_bus_call_method(bus, BUS_NAME, MANAGER_PATH, MANAGER_IFACE, "ListDevices", &error, &reply,
                               NULL);
        if (r < 0)
                return fail("list", "devices", r, &error);
        r = sd_bus_message_enter_container(reply, 'a', "(sssso)");
        while (r >= 0 &&
               (r = sd_bus_message_read(reply, "(sssso)", &vm, &alias, &host, &state, &path)) > 0) {
                char name[600];
                snprintf(name, sizeof(name), "%s/%s", vm, alias);
                if (!first)
                        putchar('\n');
                first = false;
                if (print_status(bus, name, path) < 0)
                        ret = -EIO;
        }
        if (r < 0)
                return fail("list", "devices", r, NULL);
        return ret;
}

static int show_one(sd_bus *bus, const char *name, const char *path) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        int r = print_properties(bus, path, DEVICE_IFACE, &error);

        if (r < 0)
                return fail("show", name, r, &error);
        return 0;
}

static int verb_show(sd_bus *bus, int argc, char **argv) {
        if (argc > 1)
                return for_each_device_arg(bus, argc - 1, argv + 1, "show", show_one);

        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        int r = print_properties(bus, MANAGER_PATH, MANAGER_IFACE, &error);
        if (r < 0)
                return fail("show", "manager", r, &error);
        return 0;
}

static int append_option_string(sd_bus_message *m, const char *key, const char *value) {
        return value ? sd_bus_message_append(m, "{sv}", key, "s", value) : 0;
}

static int build_attach_options(sd_bus_message *m, const char **ret_error) {
        int r;

        r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r < 0)
                return r;
        if ((r = append_option_string(m, "Alias", arg_alias)) < 0 ||
            (r = append_option_string(m, "Role", arg_role)) < 0 ||
            (r = append_option_string(m, "Protocol", arg_protocol)) < 0 ||
            (r = append_option_string(m, "Backend", arg_backend)) < 0 ||
            (r = append_option_string(m, "Transport", arg_transport)) < 0 ||
            (r = append_option_string(m, "SocketPath", arg_socket)) < 0 ||
            (r = append_option_string(m, "PeerMachine", arg_peer_machine)) < 0)
                return r;
        if (arg_uuid) {
                uint8_t uuid[16];
                if (parse_uuid(arg_uuid, uuid) < 0) {
                        *ret_error = "invalid --uuid";
                        return -EINVAL;
                }
                r = sd_bus_message_open_container(m, 'e', "sv");
                if (r >= 0)
                        r = sd_bus_message_append(m, "s", "VMUUID");
                if (r >= 0)
                        r = sd_bus_message_open_container(m, 'v', "ay");
                if (r >= 0)
                        r = sd_bus_message_append_array(m, 'y', uuid, sizeof(uuid));
                if (r >= 0)
                        r = sd_bus_message_close_container(m);
                if (r >= 0)
                        r = sd_bus_message_close_container(m);
                if (r < 0)
                        return r;
        }
        if (arg_socket_mode) {
                uint32_t mode;
                if (parse_uint32(arg_socket_mode, 8, &mode) < 0 || mode > 07777) {
                        *ret_error = "invalid --socket-mode (an octal mode such as 0660)";
                        return -EINVAL;
                }
                r = sd_bus_message_append(m, "{sv}", "SocketMode", "u", mode);
                if (r < 0)
                        return r;
        }
        if (arg_socket_group) {
                uint32_t gid;
                if (parse_uint32(arg_socket_group, 10, &gid) < 0) {
                        struct group *g = getgrnam(arg_socket_group);
                        if (!g) {
                                *ret_error = "unknown --socket-group";
                                return -EINVAL;
                        }
                        gid = (uint32_t) g->gr_gid;
                }
                r = sd_bus_message_append(m, "{sv}", "SocketGroup", "u", gid);
                if (r < 0)
                        return r;
        }
        if (arg_socket_user) {
                uint32_t uid;
                if (parse_uint32(arg_socket_user, 10, &uid) < 0) {
                        struct passwd *p = getpwnam(arg_socket_user);
                        if (!p) {
                                *ret_error = "unknown --socket-user";
                                return -EINVAL;
                        }
                        uid = (uint32_t) p->pw_uid;
                }
                r = sd_bus_message_append(m, "{sv}", "SocketUser", "u", uid);
                if (r < 0)
                        return r;
        }
        if (arg_n_allow_uids > 0) {
                r = sd_bus_message_open_container(m, 'e', "sv");
                if (r >= 0)
                        r = sd_bus_message_append(m, "s", "AllowedPeerUIDs");
                if (r >= 0)
                        r = sd_bus_message_open_container(m, 'v', "au");
                if (r >= 0)
                        r = sd_bus_message_append_array(m, 'u', arg_allow_uids,
                                                        arg_n_allow_uids * sizeof(uint32_t));
                if (r >= 0)
                        r = sd_bus_message_close_container(m);
                if (r >= 0)
                        r = sd_bus_message_close_container(m);
                if (r < 0)
                        return r;
        }
        if (arg_exclusive && (r = sd_bus_message_append(m, "{sv}", "Exclusive", "b", 1)) < 0)
                return r;
        if (arg_bind_to_caller && (r = sd_bus_message_append(m, "{sv}", "BindToCaller", "b", 1)) < 0)
                return r;
        return sd_bus_message_close_container(m);
}

static int verb_attach(sd_bus *bus, int argc, char **argv) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        const char *object, *socket, *what = arg_device ?: arg_backend ?: "?", *bad = NULL;
        _cleanup_free_ char *alias = NULL;
        int r;

        if (!arg_vm) {
                fprintf(stderr, "Failed to attach device: --vm is required\n");
                return -EINVAL;
        }
        if (!arg_device && !arg_backend) {
                fprintf(stderr,
                        "Failed to attach device to %s: --device PATH or --backend ffmpeg|null is required\n",
                        arg_vm);
                return -EINVAL;
        }
        r = sd_bus_message_new_method_call(bus, &m, BUS_NAME, MANAGER_PATH, MANAGER_IFACE, "AttachDevice");
        if (r >= 0)
                r = sd_bus_message_append(m, "ss", arg_vm, arg_device ?: "");
        if (r >= 0)
                r = build_attach_options(m, &bad);
        if (r >= 0)
                r = sd_bus_message_append(m, "t", arg_attach_flags);
        if (r < 0) {
                if (bad)
                        fprintf(stderr, "Failed to attach %s to %s: %s\n", what, arg_vm, bad);
                else
                        fail("attach", what, r, NULL);
                return r;
        }
        polkit_agent_open();
        r = sd_bus_call(bus, m, 0, &error, &reply);
        polkit_agent_close();
        if (r < 0) {
                fprintf(stderr, "Failed to attach %s to %s: %s\n", what, arg_vm,
                        error.message ?: strerror(-r));
                return r;
        }
        r = sd_bus_message_read(reply, "os", &object, &socket);
        if (r < 0)
                return fail("attach", what, r, NULL);
        if (arg_json == TABLE_JSON_OFF) {
                printf("%s\n", socket);
                return 0;
        }
        r = sd_bus_get_property_string(bus, BUS_NAME, object, DEVICE_IFACE, "Alias", &error, &alias);
        if (r < 0)
                return fail("get alias of", object, r, &error);
        bool pretty = arg_json == TABLE_JSON_PRETTY;
        const char *keys[] = { "vm", "alias", "socket", "object" },
                   *values[] = { arg_vm, alias, socket, object };
        fputs(pretty ? "{\n" : "{", stdout);
        for (unsigned k = 0; k < ELEMENTSOF(keys); k++) {
                fputs(pretty ? "  " : "", stdout);
                json_print_string(stdout, keys[k]);
                fputs(pretty ? ": " : ":", stdout);
                json_print_string(stdout, values[k]);
                fputs(k + 1 < ELEMENTSOF(keys) ? (pretty ? ",\n" : ",") : (pretty ? "\n" : ""), stdout);
        }
        fputs("}\n", stdout);
        return 0;
}

static int verb_detach(sd_bus *bus, int argc, char **argv) {
        uint64_t flags = arg_force ? DETACH_FLAG_FORCE : 0;
        int r, ret = 0;

        if (arg_vm && arg_all) {
                _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
                _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
                uint32_t n;

                if (argc > 1) {
                        fprintf(stderr,
                                "Failed to detach devices: give either VM/ALIAS… or --vm VM --all\n");
                        return -EINVAL;
                }
                polkit_agent_open();
                r = sd_bus_call_method(bus, BUS_NAME, MANAGER_PATH, MANAGER_IFACE, "DetachVM", &error,
                                       &reply, "st", arg_vm, flags);
                polkit_agent_close();
                if (r < 0)
                        return fail("detach devices of", arg_vm, r, &error);
                r = sd_bus_message_read(reply, "u", &n);
                if (r < 0)
                        return fail("detach devices of", arg_vm, r, NULL);
                if (!arg_quiet && arg_json == TABLE_JSON_OFF && isatty(STDOUT_FILENO))
                        printf("%" PRIu32 " device%s detached.\n", n, n == 1 ? "" : "s");
                else if (arg_json != TABLE_JSON_OFF) {
                        printf("{\"vm\":");
                        json_print_string(stdout, arg_vm);
                        printf(",\"detached\":%" PRIu32 "}\n", n);
                }
                return 0;
        }
        if (argc < 2 || arg_all) {
                fprintf(stderr, "Failed to detach devices: give VM/ALIAS… or --vm VM --all\n");
                return -EINVAL;
        }
        polkit_agent_open();
        for (int k = 1; k < argc; k++) {
                _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
                _cleanup_free_ char *vm = NULL, *alias = NULL;

                if (split_device_name(argv[k], &vm, &alias) < 0) {
                        fprintf(stderr, "Failed to detach %s: device names are written VM/ALIAS\n", argv[k]);
                        ret = -EINVAL;
                        continue;
                }
                r = sd_bus_call_method(bus, BUS_NAME, MANAGER_PATH, MANAGER_IFACE, "DetachDevice", &error,
                                       NULL, "sst", vm, alias, flags);
                if (r < 0)
                        ret = fail("detach", argv[k], r, &error);
        }
        polkit_agent_close();
        return ret;
}

static int print_stats(sd_bus *bus, const char *name, const char *path) {
        static const char *const headers[] = { "KEY", "VALUE" };
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        Table *t;
        int r;

        r = sd_bus_call_method(bus, BUS_NAME, path, DEVICE_IFACE, "GetStatistics", &error, &reply, NULL);
        if (r < 0)
                return fail("get statistics of", name, r, &error);
        t = table_new(headers, 2);
        if (!t)
                return fail("get statistics of", name, -ENOMEM, NULL);
        table_set_numeric(t, 1);
        r = sd_bus_message_enter_container(reply, 'a', "{sv}");
        while (r >= 0 && (r = sd_bus_message_enter_container(reply, 'e', "sv")) > 0) {
                _cleanup_free_ char *value = NULL;
                const char *key, *contents;
                char type;

                r = sd_bus_message_read(reply, "s", &key);
                if (r < 0)
                        break;
                /* Counters are numbers; anything else is left out of a numeric column. */
                r = sd_bus_message_peek_type(reply, &type, &contents);
                if (r < 0)
                        break;
                if (!contents || !strchr("yqutix", contents[0]) || contents[1]) {
                        r = sd_bus_message_skip(reply, "v");
                } else {
                        r = format_variant(reply, &value);
                        if (r >= 0)
                                r = table_add_row(t, (const char *const[]){ key, value });
                }
                if (r >= 0)
                        r = sd_bus_message_exit_container(reply);
        }
        if (r < 0) {
                table_free(t);
                return fail("get statistics of", name, r, NULL);
        }
        r = arg_json != TABLE_JSON_OFF ? table_print_json(t, stdout, arg_json)
                                       : table_print(t, stdout, arg_legend);
        table_free(t);
        return r;
}

static int verb_stats(sd_bus *bus, int argc, char **argv) {
        return for_each_device_arg(bus, argc - 1, argv + 1, "get statistics of", print_stats);
}

/* A socket path given at attach time (or --frontend) may hold any byte but NUL: escape it for XML. */
static void print_xml_attribute(FILE *f, const char *s) {
        for (; *s; s++)
                switch (*s) {
                case '&':
                        fputs("&amp;", f);
                        break;
                case '<':
                        fputs("&lt;", f);
                        break;
                case '>':
                        fputs("&gt;", f);
                        break;
                case '\'':
                        fputs("&apos;", f);
                        break;
                case '"':
                        fputs("&quot;", f);
                        break;
                default:
                        fputc(*s, f);
                }
}

static int qemu_args_one(sd_bus *bus, const char *name, const char *path) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        DeviceInfo i = {};
        char id[64], chardev[512], device[512];
        uint32_t reconnect = 0;
        int r;

        r = device_info_get(bus, path, &i, &error);
        if (r < 0)
                return fail("build QEMU arguments for", name, r, &error);
        if (!i.socket_path || !i.socket_path[0] || (i.transport && strcmp(i.transport, "server") != 0)) {
                fprintf(stderr,
                        "Failed to build QEMU arguments for %s: the device has no listening socket (transport '%s')\n",
                        name, i.transport ?: "?");
                device_info_done(&i);
                return -EINVAL;
        }
        if (arg_reconnect_ms && parse_uint32(arg_reconnect_ms, 10, &reconnect) < 0) {
                fprintf(stderr, "Failed to build QEMU arguments for %s: invalid --reconnect-ms '%s'\n", name,
                        arg_reconnect_ms);
                device_info_done(&i);
                return -EINVAL;
        }
        snprintf(id, sizeof(id), "%s", arg_id ?: "vvid0");
        for (char *p = id; *p; p++)
                if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                      *p == '_' || *p == '-' || *p == '.')) {
                        fprintf(stderr, "Failed to build QEMU arguments for %s: invalid --id '%s'\n", name,
                                id);
                        device_info_done(&i);
                        return -EINVAL;
                }
        /* QEMU's option parser splits on ',': a comma in the path is written twice. */
        char path_escaped[256];
        size_t o = 0;
        for (const char *p = i.socket_path; *p && o + 2 < sizeof(path_escaped); p++) {
                if (*p == ',')
                        path_escaped[o++] = ',';
                path_escaped[o++] = *p;
        }
        path_escaped[o] = '\0';
        if (reconnect > 0)
                snprintf(chardev, sizeof(chardev), "socket,id=%s,path=%s,reconnect-ms=%" PRIu32, id,
                         path_escaped, reconnect);
        else
                snprintf(chardev, sizeof(chardev), "socket,id=%s,path=%s", id, path_escaped);
        snprintf(device, sizeof(device), "%s,chardev=%s,virtio-id=%d,num_vqs=2,vq_size=256,config_size=44",
                 arg_frontend, id, i.role && strcmp(i.role, "encoder") == 0 ? 30 : 31);

        if (strcmp(arg_format, "libvirt") == 0) {
                printf("<!-- In the <domain> element: xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'.\n"
                       "     Guest memory must be shared with the device process:\n"
                       "     <memoryBacking><source type='memfd'/><access mode='shared'/></memoryBacking> -->\n");
                printf("<qemu:commandline>\n");
                printf("  <qemu:arg value='-chardev'/>\n  <qemu:arg value='");
                print_xml_attribute(stdout, chardev);
                printf("'/>\n  <qemu:arg value='-device'/>\n  <qemu:arg value='");
                print_xml_attribute(stdout, device);
                printf("'/>\n");
                printf("</qemu:commandline>\n");
        } else {
                printf("-chardev %s -device %s\n", chardev, device);
                if (!arg_quiet)
                        fprintf(stderr,
                                "Note: guest RAM must be shared memory, e.g. -object memory-backend-memfd,id=mem,size=4G,share=on -machine memory-backend=mem\n");
        }
        device_info_done(&i);
        return 0;
}

static int verb_qemu_args(sd_bus *bus, int argc, char **argv) {
        if (strcmp(arg_format, "cmdline") != 0 && strcmp(arg_format, "libvirt") != 0) {
                fprintf(stderr,
                        "Failed to build QEMU arguments: unknown --format '%s' (cmdline or libvirt)\n",
                        arg_format);
                return -EINVAL;
        }
        if (argc != 2) {
                fprintf(stderr, "Failed to build QEMU arguments for device: give exactly one VM/ALIAS\n");
                return -EINVAL;
        }
        return for_each_device_arg(bus, 1, argv + 1, "build QEMU arguments for", qemu_args_one);
}

static void print_event_json(const char *event,
                             const char *vm,
                             const char *alias,
                             const char *object,
                             const char *extra_key,
                             const char *extra_value) {
        printf("{\"event\":");
        json_print_string(stdout, event);
        printf(",\"vm\":");
        json_print_string(stdout, vm);
        printf(",\"alias\":");
        json_print_string(stdout, alias);
        printf(",\"object\":");
        json_print_string(stdout, object);
        if (extra_key) {
                printf(",");
                json_print_string(stdout, extra_key);
                printf(":");
                json_print_string(stdout, extra_value);
        }
        printf("}\n");
}

static int on_device_signal(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        const char *vm, *alias, *object;

        if (sd_bus_message_read(m, "sso", &vm, &alias, &object) < 0)
                return 0;
        if (arg_json != TABLE_JSON_OFF)
                print_event_json(sd_bus_message_get_member(m), vm, alias, object, NULL, NULL);
        else
                printf("%s %s/%s %s\n", sd_bus_message_get_member(m), vm, alias, object);
        fflush(stdout);
        return 0;
}

static int on_properties_changed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        _cleanup_free_ char *vm = NULL, *alias = NULL;
        const char *iface, *path = sd_bus_message_get_path(m);
        int r;

        if (!path || sd_bus_path_decode_many(path, DEVICE_PATH_PREFIX "/%/%", &vm, &alias) <= 0)
                return 0;
        if (sd_bus_message_read(m, "s", &iface) < 0 || strcmp(iface, DEVICE_IFACE) != 0)
                return 0;
        r = sd_bus_message_enter_container(m, 'a', "{sv}");
        while (r >= 0 && (r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
                _cleanup_free_ char *value = NULL;
                const char *name;
                if (sd_bus_message_read(m, "s", &name) < 0 || format_variant(m, &value) < 0)
                        return 0;
                if (arg_json != TABLE_JSON_OFF)
                        print_event_json("PropertiesChanged", vm, alias, path, name, value);
                else
                        printf("PropertiesChanged %s/%s %s=%s\n", vm, alias, name, value);
                r = sd_bus_message_exit_container(m);
        }
        fflush(stdout);
        return 0;
}

static int verb_monitor(sd_bus *bus, int argc, char **argv) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        sigset_t mask;
        int r;

        r = sd_event_default(&e);
        if (r < 0)
                return fail("monitor", "devices", r, NULL);
        sigemptyset(&mask);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGTERM);
        sigprocmask(SIG_BLOCK, &mask, NULL);
        if ((r = sd_event_add_signal(e, NULL, SIGINT, NULL, NULL)) < 0 ||
            (r = sd_event_add_signal(e, NULL, SIGTERM, NULL, NULL)) < 0)
                return fail("monitor", "devices", r, NULL);
        r = sd_bus_match_signal(bus, NULL, BUS_NAME, MANAGER_PATH, MANAGER_IFACE, "DeviceNew",
                                on_device_signal, NULL);
        if (r >= 0)
                r = sd_bus_match_signal(bus, NULL, BUS_NAME, MANAGER_PATH, MANAGER_IFACE, "DeviceRemoved",
                                        on_device_signal, NULL);
        if (r >= 0)
                r = sd_bus_add_match(bus, NULL,
                                     "type='signal',sender='" BUS_NAME
                                     "',interface='org.freedesktop.DBus.Properties',"
                                     "member='PropertiesChanged',path_namespace='" DEVICE_PATH_PREFIX "'",
                                     on_properties_changed, NULL);
        if (r < 0)
                return fail("monitor", "devices", r, NULL);
        r = sd_bus_attach_event(bus, e, SD_EVENT_PRIORITY_NORMAL);
        if (r < 0)
                return fail("monitor", "devices", r, NULL);
        /* The matches are installed (AddMatch is synchronous): from here on no event is missed. stdout
         * carries events only; the notice goes to stderr, where a script can wait for it. */
        if (!arg_quiet)
                fprintf(stderr, "Monitoring org.virtiovideo.video1; press ^C to stop.\n");
        r = sd_event_loop(e);
        return r < 0 ? fail("monitor", "devices", r, NULL) : 0;
}

static int probe_one(sd_bus *bus, const char *name, const char *path) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        DeviceInfo i = {};
        int r;

        r = device_info_get(bus, path, &i, &error);
        if (r < 0)
                return fail("probe", name, r, &error);
        if (i.state && strcmp(i.state, "connected") == 0) {
                fprintf(stderr,
                        "Failed to probe %s: a VM is connected to it (pid %" PRIu32 "); probing would take "
                        "the device from it. Try again when it is not in use.\n",
                        name, i.peer_pid);
                device_info_done(&i);
                return -EBUSY;
        }
        if (!i.socket_path || !i.socket_path[0]) {
                fprintf(stderr, "Failed to probe %s: the device has no listening socket\n", name);
                device_info_done(&i);
                return -EINVAL;
        }
        r = probe_device(i.socket_path, arg_probe_stream, arg_probe_stream_format, arg_json, stdout);
        if (r < 0)
                fprintf(stderr, "Failed to probe %s: %s\n", name, strerror(-r));
        device_info_done(&i);
        return r;
}

static int verb_probe(sd_bus *bus, int argc, char **argv) {
        if (argc != 2) {
                fprintf(stderr, "Failed to probe device: give exactly one VM/ALIAS\n");
                return -EINVAL;
        }
        return for_each_device_arg(bus, 1, argv + 1, "probe", probe_one);
}

/* --- main ---------------------------------------------------------------------------------------------- */

static void help(void) {
        printf("%s [OPTIONS…] COMMAND …\n\n"
               "Attach host video codecs to virtual machines through virtio-videod.\n\n"
               "Device commands:\n"
               "  list [--vm VM]                   List attached devices\n"
               "  status [VM/ALIAS…]               Show the state of devices\n"
               "  show [VM/ALIAS…]                 Show properties of devices, or of the manager\n"
               "  attach --vm VM --device PATH     Attach a V4L2 codec (or --backend ffmpeg|null) to a VM;\n"
               "                                   prints the vhost-user socket path\n"
               "  detach VM/ALIAS…                 Detach devices\n"
               "  detach --vm VM --all             Detach every device of a VM\n"
               "  stats VM/ALIAS                   Show a device's counters\n"
               "  qemu-args VM/ALIAS               Print the QEMU arguments that connect a VM to a device\n"
               "  probe VM/ALIAS                   Connect as a VM would: capabilities and a short decode\n"
               "  monitor                          Print device events as they happen\n\n"
               "Host commands:\n"
               "  list-host-devices                List the host's codec devices\n\n"
               "Options:\n"
               "  -h --help                        Show this help\n"
               "     --version                     Show the package version\n"
               "     --no-pager                    Do not pipe output into a pager (output is never paged)\n"
               "     --no-legend                   Do not print the column headers and the footer\n"
               "     --json=short|pretty|off       Print JSON; -j: pretty on a terminal, short otherwise\n"
               "  -q --quiet                       Print less\n"
               "  -l --full                        Do not shorten output\n"
               "     --no-ask-password             Do not ask for a password for privileged operations\n"
               "  -H --host=[USER@]HOST            Operate on a remote host (over ssh)\n"
               "  -M --machine=CONTAINER           Operate on a local container\n"
               "  -p --property=NAME               show: only this property (repeatable)\n"
               "  -P NAME                          show: only the value of this property\n"
               "     --value                       show: values only\n"
               "  -a --all                         show: empty properties too; detach: every device of --vm\n\n"
               "Attach options:\n"
               "     --vm=VM --device=PATH --alias=ALIAS --role=auto|decoder|encoder\n"
               "     --backend=v4l2|ffmpeg|null --protocol=virtio-video --uuid=UUID\n"
               "     --transport=server|client --socket=PATH --socket-mode=MODE\n"
               "     --socket-group=GROUP --socket-user=USER --allow-uid=UID[,UID…]\n"
               "     --peer-machine=NAME --exclusive --bind-to-caller --replace | --if-missing\n"
               "Detach options:\n"
               "     --force                       Detach even while a VM is connected\n"
               "qemu-args options:\n"
               "     --id=ID --reconnect-ms=N --format=cmdline|libvirt --frontend=QEMU-DEVICE\n"
               "probe options:\n"
               "     --stream=FILE                 Decode this stream instead of a generated null-codec one\n"
               "     --stream-format=FORMAT        Its format: h264, hevc, vp8, vp9, mpeg2, mpeg4 or fwht\n",
               program_invocation_short_name);
}

enum {
        ARG_VERSION = 0x100,
        ARG_NO_PAGER,
        ARG_NO_LEGEND,
        ARG_JSON,
        ARG_NO_ASK_PASSWORD,
        ARG_VALUE,
        ARG_VM,
        ARG_DEVICE,
        ARG_ALIAS,
        ARG_ROLE,
        ARG_PROTOCOL,
        ARG_BACKEND,
        ARG_UUID,
        ARG_TRANSPORT,
        ARG_SOCKET,
        ARG_SOCKET_MODE,
        ARG_SOCKET_GROUP,
        ARG_SOCKET_USER,
        ARG_ALLOW_UID,
        ARG_PEER_MACHINE,
        ARG_EXCLUSIVE,
        ARG_BIND_TO_CALLER,
        ARG_REPLACE,
        ARG_IF_MISSING,
        ARG_FORCE,
        ARG_ID,
        ARG_RECONNECT_MS,
        ARG_FORMAT,
        ARG_FRONTEND,
        ARG_STREAM,
        ARG_STREAM_FORMAT,
};

static int add_allow_uids(const char *list) {
        _cleanup_free_ char *copy = strdup(list);
        char *save = NULL;

        if (!copy)
                return -ENOMEM;
        for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
                uint32_t uid;
                if (arg_n_allow_uids >= MAX_LIST_ARGS || parse_uint32(tok, 10, &uid) < 0 ||
                    uid == UINT32_MAX)
                        return -EINVAL;
                arg_allow_uids[arg_n_allow_uids++] = uid;
        }
        return 0;
}

static int parse_argv(int argc, char **argv) {
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                { "no-pager", no_argument, NULL, ARG_NO_PAGER },
                { "no-legend", no_argument, NULL, ARG_NO_LEGEND },
                { "json", required_argument, NULL, ARG_JSON },
                { "quiet", no_argument, NULL, 'q' },
                { "full", no_argument, NULL, 'l' },
                { "no-ask-password", no_argument, NULL, ARG_NO_ASK_PASSWORD },
                { "host", required_argument, NULL, 'H' },
                { "machine", required_argument, NULL, 'M' },
                { "property", required_argument, NULL, 'p' },
                { "value", no_argument, NULL, ARG_VALUE },
                { "all", no_argument, NULL, 'a' },
                { "vm", required_argument, NULL, ARG_VM },
                { "device", required_argument, NULL, ARG_DEVICE },
                { "alias", required_argument, NULL, ARG_ALIAS },
                { "role", required_argument, NULL, ARG_ROLE },
                { "protocol", required_argument, NULL, ARG_PROTOCOL },
                { "backend", required_argument, NULL, ARG_BACKEND },
                { "uuid", required_argument, NULL, ARG_UUID },
                { "transport", required_argument, NULL, ARG_TRANSPORT },
                { "socket", required_argument, NULL, ARG_SOCKET },
                { "socket-mode", required_argument, NULL, ARG_SOCKET_MODE },
                { "socket-group", required_argument, NULL, ARG_SOCKET_GROUP },
                { "socket-user", required_argument, NULL, ARG_SOCKET_USER },
                { "allow-uid", required_argument, NULL, ARG_ALLOW_UID },
                { "peer-machine", required_argument, NULL, ARG_PEER_MACHINE },
                { "exclusive", no_argument, NULL, ARG_EXCLUSIVE },
                { "bind-to-caller", no_argument, NULL, ARG_BIND_TO_CALLER },
                { "replace", no_argument, NULL, ARG_REPLACE },
                { "if-missing", no_argument, NULL, ARG_IF_MISSING },
                { "force", no_argument, NULL, ARG_FORCE },
                { "id", required_argument, NULL, ARG_ID },
                { "reconnect-ms", required_argument, NULL, ARG_RECONNECT_MS },
                { "format", required_argument, NULL, ARG_FORMAT },
                { "frontend", required_argument, NULL, ARG_FRONTEND },
                { "stream", required_argument, NULL, ARG_STREAM },
                { "stream-format", required_argument, NULL, ARG_STREAM_FORMAT },
                {}
        };
        int c;

        while ((c = getopt_long(argc, argv, "hqlH:M:p:P:aj", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        help();
                        return 0;
                case ARG_VERSION:
                        printf("videoctl %s\n", PROJECT_VERSION);
                        return 0;
                case ARG_NO_PAGER:
                        break;
                case ARG_NO_LEGEND:
                        arg_legend = false;
                        break;
                case ARG_JSON:
                        if (strcmp(optarg, "short") == 0)
                                arg_json = TABLE_JSON_SHORT;
                        else if (strcmp(optarg, "pretty") == 0)
                                arg_json = TABLE_JSON_PRETTY;
                        else if (strcmp(optarg, "off") == 0)
                                arg_json = TABLE_JSON_OFF;
                        else if (strcmp(optarg, "help") == 0) {
                                printf("short\npretty\noff\n");
                                return 0;
                        } else {
                                fprintf(stderr, "Unknown --json= mode '%s' (short, pretty or off).\n",
                                        optarg);
                                return -EINVAL;
                        }
                        break;
                case 'j':
                        arg_json = isatty(STDOUT_FILENO) ? TABLE_JSON_PRETTY : TABLE_JSON_SHORT;
                        break;
                case 'q':
                        arg_quiet = true;
                        break;
                case 'l':
                        arg_full = true;
                        break;
                case ARG_NO_ASK_PASSWORD:
                        arg_ask_password = false;
                        break;
                case 'H':
                        arg_host = optarg;
                        break;
                case 'M':
                        arg_machine = optarg;
                        break;
                case 'P':
                        arg_value = true;
                        _fallthrough_;
                case 'p':
                        if (arg_n_properties >= MAX_LIST_ARGS) {
                                fprintf(stderr, "Too many --property= options.\n");
                                return -EINVAL;
                        }
                        arg_properties[arg_n_properties++] = optarg;
                        break;
                case ARG_VALUE:
                        arg_value = true;
                        break;
                case 'a':
                        arg_all = true;
                        break;
                case ARG_VM:
                        arg_vm = optarg;
                        break;
                case ARG_DEVICE:
                        arg_device = optarg;
                        break;
                case ARG_ALIAS:
                        arg_alias = optarg;
                        break;
                case ARG_ROLE:
                        arg_role = optarg;
                        break;
                case ARG_PROTOCOL:
                        arg_protocol = optarg;
                        break;
                case ARG_BACKEND:
                        arg_backend = optarg;
                        break;
                case ARG_UUID:
                        arg_uuid = optarg;
                        break;
                case ARG_TRANSPORT:
                        arg_transport = optarg;
                        break;
                case ARG_SOCKET:
                        arg_socket = optarg;
                        break;
                case ARG_SOCKET_MODE:
                        arg_socket_mode = optarg;
                        break;
                case ARG_SOCKET_GROUP:
                        arg_socket_group = optarg;
                        break;
                case ARG_SOCKET_USER:
                        arg_socket_user = optarg;
                        break;
                case ARG_ALLOW_UID:
                        if (add_allow_uids(optarg) < 0) {
                                fprintf(stderr, "Invalid --allow-uid '%s' (uids, comma separated).\n",
                                        optarg);
                                return -EINVAL;
                        }
                        break;
                case ARG_PEER_MACHINE:
                        arg_peer_machine = optarg;
                        break;
                case ARG_EXCLUSIVE:
                        arg_exclusive = true;
                        break;
                case ARG_BIND_TO_CALLER:
                        arg_bind_to_caller = true;
                        break;
                case ARG_REPLACE:
                        arg_attach_flags |= ATTACH_FLAG_REPLACE;
                        break;
                case ARG_IF_MISSING:
                        arg_attach_flags |= ATTACH_FLAG_IF_MISSING;
                        break;
                case ARG_FORCE:
                        arg_force = true;
                        break;
                case ARG_ID:
                        arg_id = optarg;
                        break;
                case ARG_RECONNECT_MS:
                        arg_reconnect_ms = optarg;
                        break;
                case ARG_FORMAT:
                        arg_format = optarg;
                        break;
                case ARG_FRONTEND:
                        arg_frontend = optarg;
                        break;
                case ARG_STREAM:
                        arg_probe_stream = optarg;
                        break;
                case ARG_STREAM_FORMAT:
                        arg_probe_stream_format = probe_format_from_string(optarg);
                        if (arg_probe_stream_format == 0) {
                                fprintf(stderr,
                                        "Unknown --stream-format '%s' (h264, hevc, vp8, vp9, mpeg2, mpeg4 or fwht).\n",
                                        optarg);
                                return -EINVAL;
                        }
                        break;
                case '?':
                        return -EINVAL;
                default:
                        return -EINVAL;
                }
        if ((arg_attach_flags & ATTACH_FLAG_REPLACE) && (arg_attach_flags & ATTACH_FLAG_IF_MISSING)) {
                fprintf(stderr, "--replace and --if-missing cannot be combined.\n");
                return -EINVAL;
        }
        if (arg_host && arg_machine) {
                fprintf(stderr, "--host and --machine cannot be combined.\n");
                return -EINVAL;
        }
        return 1;
}

typedef struct Verb {
        const char *name;
        int min_args, max_args; /* counting the verb itself; -1: no maximum */
        int (*run)(sd_bus *bus, int argc, char **argv);
} Verb;

static const Verb verbs[] = {
        { "list", 1, 1, verb_list },      { "status", 1, -1, verb_status },
        { "show", 1, -1, verb_show },     { "attach", 1, 1, verb_attach },
        { "detach", 1, -1, verb_detach }, { "list-host-devices", 1, 1, verb_list_host_devices },
        { "stats", 2, 2, verb_stats },    { "qemu-args", 2, 2, verb_qemu_args },
        { "probe", 2, 2, verb_probe },    { "monitor", 1, 1, verb_monitor },
};

int main(int argc, char **argv) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        const Verb *verb = NULL;
        int r;

        r = parse_argv(argc, argv);
        if (r <= 0)
                return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;

        argc -= optind;
        argv += optind;
        const char *name = argc > 0 ? argv[0] : "list";
        for (size_t k = 0; k < ELEMENTSOF(verbs); k++)
                if (strcmp(verbs[k].name, name) == 0)
                        verb = &verbs[k];
        if (!verb) {
                fprintf(stderr, "Unknown command verb '%s'. See '%s --help'.\n", name,
                        program_invocation_short_name);
                return EXIT_FAILURE;
        }
        int n = argc > 0 ? argc : 1;
        if (n < verb->min_args || (verb->max_args >= 0 && n > verb->max_args)) {
                fprintf(stderr, "%s '%s'.\n",
                        n < verb->min_args ? "Too few arguments for" : "Too many arguments for", verb->name);
                return EXIT_FAILURE;
        }

        (void) sd_bus_error_add_map(bus_error_map_video1);
        r = bus_open(&bus);
        if (r < 0)
                return EXIT_FAILURE;
        char *fallback[] = { (char *) name, NULL };
        r = verb->run(bus, n, argc > 0 ? argv : fallback);
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
