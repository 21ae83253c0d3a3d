/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A polkit authority for tests on a private bus: owns org.freedesktop.PolicyKit1 and answers every
 * CheckAuthorization with a fixed verdict, so an unprivileged test can drive the daemon's mutating calls.
 *
 *     fake-polkit ADDRESS yes|no|challenge
 *
 * Prints "ready" on stdout once the name is owned, logs each query ("check ACTION") on stderr, and exits
 * 0 on SIGTERM or SIGINT, or when the bus goes away.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "common/macro.h"

static int verdict_authorized, verdict_challenge;

static int check_authorization(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        const char *action;
        int r;

        r = sd_bus_message_skip(m, "(sa{sv})");
        if (r >= 0)
                r = sd_bus_message_read(m, "s", &action);
        if (r < 0)
                return sd_bus_error_set(error, SD_BUS_ERROR_INVALID_ARGS,
                                        "Malformed CheckAuthorization call");
        fprintf(stderr, "fake-polkit: check %s\n", action);
        return sd_bus_reply_method_return(m, "(bba{ss})", verdict_authorized, verdict_challenge, 0);
}

static const sd_bus_vtable authority_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD("CheckAuthorization",
                      "(sa{sv})sa{ss}us",
                      "(bba{ss})",
                      check_authorization,
                      SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

int main(int argc, char **argv) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        sigset_t ss;
        int r;

        if (argc != 3 || (strcmp(argv[2], "yes") != 0 && strcmp(argv[2], "no") != 0 &&
                          strcmp(argv[2], "challenge") != 0)) {
                fprintf(stderr, "usage: %s BUS-ADDRESS yes|no|challenge\n", argv[0]);
                return 2;
        }
        verdict_authorized = strcmp(argv[2], "yes") == 0;
        verdict_challenge = strcmp(argv[2], "challenge") == 0;

        sigemptyset(&ss);
        sigaddset(&ss, SIGTERM);
        sigaddset(&ss, SIGINT);
        sigprocmask(SIG_BLOCK, &ss, NULL);

        if ((r = sd_event_default(&e)) < 0 || (r = sd_event_add_signal(e, NULL, SIGTERM, NULL, NULL)) < 0 ||
            (r = sd_event_add_signal(e, NULL, SIGINT, NULL, NULL)) < 0) {
                fprintf(stderr, "fake-polkit: event loop: %s\n", strerror(-r));
                return 1;
        }
        if ((r = sd_bus_new(&bus)) < 0 || (r = sd_bus_set_address(bus, argv[1])) < 0 ||
            (r = sd_bus_set_bus_client(bus, 1)) < 0 || (r = sd_bus_start(bus)) < 0) {
                fprintf(stderr, "fake-polkit: cannot connect to %s: %s\n", argv[1], strerror(-r));
                return 1;
        }
        r = sd_bus_add_object_vtable(bus, NULL, "/org/freedesktop/PolicyKit1/Authority",
                                     "org.freedesktop.PolicyKit1.Authority", authority_vtable, NULL);
        if (r >= 0)
                r = sd_bus_request_name(bus, "org.freedesktop.PolicyKit1", 0);
        if (r >= 0)
                r = sd_bus_attach_event(bus, e, SD_EVENT_PRIORITY_NORMAL);
        if (r < 0) {
                fprintf(stderr, "fake-polkit: cannot serve org.freedesktop.PolicyKit1: %s\n", strerror(-r));
                return 1;
        }
        /* exit when the bus daemon goes away */
        (void) sd_bus_set_exit_on_disconnect(bus, 1);
        printf("ready\n");
        fflush(stdout);
        r = sd_event_loop(e);
        return r < 0 ? 1 : 0;
}
