/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "common/bus-errors.h"
#include "common/log.h"
#include "config.h"
#include "daemon/daemon-main.h"
#include "daemon/manager.h"

static void help(void) {
        printf("%s [OPTIONS...]\n\n"
               "The virtio-video device service: attaches host video codecs to virtual machines as\n"
               "vhost-user devices, managed over D-Bus (org.virtiovideo.video1).\n\n"
               "  -h --help               Show this help\n"
               "     --version            Show the version\n"
               "     --bus=system|session Which bus to serve on (default: system; honours\n"
               "                          DBUS_SYSTEM_BUS_ADDRESS and DBUS_SESSION_BUS_ADDRESS)\n"
               "     --bus-address=ADDR   Serve on the bus at this D-Bus address\n"
               "     --runtime-dir=DIR    Sockets and state (default: /run/virtio-video)\n"
               "     --config=PATH        Configuration file (default: %s)\n"
               "     --no-idle-exit       Do not exit when nothing is attached\n"
               "  -v --verbose            Log at debug level\n",
               program_invocation_short_name, DAEMON_CONFIG_DEFAULT_PATH);
}

int daemon_main(int argc, char **argv, const HostProbe *probe) {
        enum {
                ARG_VERSION = 0x100,
                ARG_BUS,
                ARG_BUS_ADDRESS,
                ARG_RUNTIME_DIR,
                ARG_CONFIG,
                ARG_NO_IDLE_EXIT
        };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                { "bus", required_argument, NULL, ARG_BUS },
                { "bus-address", required_argument, NULL, ARG_BUS_ADDRESS },
                { "runtime-dir", required_argument, NULL, ARG_RUNTIME_DIR },
                { "config", required_argument, NULL, ARG_CONFIG },
                { "no-idle-exit", no_argument, NULL, ARG_NO_IDLE_EXIT },
                { "verbose", no_argument, NULL, 'v' },
                {},
        };
        ManagerOptions o = { .log_level = -1, .probe = probe };
        _cleanup_(manager_freep) Manager *m = NULL;
        sigset_t ss;
        int c, r;

        log_set_ident("virtio-videod");
        optind = 0;
        while ((c = getopt_long(argc, argv, "hv", options, NULL)) >= 0) {
                switch (c) {
                case 'h':
                        help();
                        return 0;
                case ARG_VERSION:
                        printf("virtio-videod %s\n", PROJECT_VERSION);
                        return 0;
                case ARG_BUS:
                        if (strcmp(optarg, "system") == 0)
                                o.bus_user = false;
                        else if (strcmp(optarg, "session") == 0 || strcmp(optarg, "user") == 0)
                                o.bus_user = true;
                        else {
                                fprintf(stderr, "virtio-videod: --bus=%s: expected system or session\n",
                                        optarg);
                                return 1;
                        }
                        break;
                case ARG_BUS_ADDRESS:
                        o.bus_address = optarg;
                        break;
                case ARG_RUNTIME_DIR:
                        if (!path_is_below(optarg, "/")) {
                                fprintf(stderr,
                                        "virtio-videod: --runtime-dir=%s: expected an absolute, normalized path\n",
                                        optarg);
                                return 1;
                        }
                        o.runtime_dir = optarg;
                        break;
                case ARG_CONFIG:
                        o.config_path = optarg;
                        break;
                case ARG_NO_IDLE_EXIT:
                        o.no_idle_exit = true;
                        break;
                case 'v':
                        o.log_level = LOG_DEBUG;
                        break;
                default:
                        return 1;
                }
        }
        if (optind < argc) {
                fprintf(stderr, "virtio-videod: unexpected argument '%s'\n", argv[optind]);
                return 1;
        }

        /* sd-event handles these through signalfd and pidfd/waitid; they must be blocked */
        sigemptyset(&ss);
        sigaddset(&ss, SIGCHLD);
        sigaddset(&ss, SIGTERM);
        sigaddset(&ss, SIGINT);
        sigprocmask(SIG_BLOCK, &ss, NULL);
        signal(SIGPIPE, SIG_IGN);

        r = sd_bus_error_add_map(bus_error_map_video1);
        if (r < 0)
                return log_error_errno(r, "Failed to register the error map: %m"), 1;
        r = manager_new(&o, &m);
        if (r < 0)
                return 1;
        r = manager_startup(m);
        if (r < 0)
                return 1;
        r = manager_connect_bus(m, &o);
        if (r < 0)
                return 1;
        r = manager_run(m);
        return r < 0 ? 1 : 0;
}
