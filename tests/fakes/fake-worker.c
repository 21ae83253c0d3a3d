/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A stand-in for vhost-user-video in the daemon's tests: it honours the worker's command line and control
 * protocol contract (service/common/control.h) exactly, but serves no virtio-video: it accepts one peer at
 * a time on the listening socket it was given, checks SO_PEERCRED against --allow-uid (root always
 * passes), reports peers to the manager, counts bytes, answers STATS_REQUEST, and obeys DISCONNECT_PEER,
 * SHUTDOWN and EOF on the control socket. With $FAKE_WORKER_LOG set it appends its argv to that file, so
 * tests can check what the daemon passed.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/control.h"

#define MAX_UIDS 64

static int ctl_fd = -1, listen_fd = -1, conn_fd = -1;
static CtlStats stats;

static void die(const char *what) {
        fprintf(stderr, "fake-worker: %s\n", what);
        exit(2);
}

static void send_msg(const CtlMsg *m) {
        if (ctl_send(ctl_fd, m) < 0)
                exit(3);
}

static void drop_peer(void) {
        CtlMsg m = { .type = CTL_MSG_PEER_DISCONNECTED };

        if (conn_fd < 0)
                return;
        close(conn_fd);
        conn_fd = -1;
        stats.disconnects++;
        send_msg(&m);
}

/* Reports a new frontend on fd (accepted, or connected to us) after the --allow-uid check. */
static void new_peer(int fd, const unsigned *uids, unsigned n_uids) {
        struct ucred cred;
        socklen_t len = sizeof(cred);
        bool ok;

        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
                close(fd);
                return;
        }
        ok = n_uids == 0 || cred.uid == 0;
        for (unsigned i = 0; i < n_uids; i++)
                ok = ok || uids[i] == cred.uid;
        CtlMsg m = { .type = ok ? CTL_MSG_PEER_CONNECTED : CTL_MSG_PEER_REJECTED };
        m.peer = (CtlPeer){ .pid = (uint32_t) cred.pid, .uid = cred.uid, .gid = cred.gid };
        if (ok) {
                conn_fd = fd;
                stats.connections++;
        } else
                close(fd);
        send_msg(&m);
}

static int try_connect(const char *path) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

        if (fd < 0)
                return -1;
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
        if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0) {
                close(fd);
                return -1;
        }
        return fd;
}

static int parse_fd(const char *s) {
        char *end;
        long v = strtol(s, &end, 10);
        struct stat st;

        if (*end || v < 3 || v > 1024 || fstat((int) v, &st) < 0)
                die("bad fd argument");
        return (int) v;
}

int main(int argc, char **argv) {
        static const struct option options[] = {
                { "socket-fd", required_argument, NULL, 's' },
                { "control-fd", required_argument, NULL, 'c' },
                { "backend", required_argument, NULL, 'b' },
                { "device-fd", required_argument, NULL, 'd' },
                { "allow-uid", required_argument, NULL, 'u' },
                { "vm", required_argument, NULL, 'm' },
                { "alias", required_argument, NULL, 'a' },
                { "host-device", required_argument, NULL, 'h' },
                { "verbose", no_argument, NULL, 'v' },
                { "connection-fd", required_argument, NULL, 'C' },
                { "connect-path", required_argument, NULL, 'P' },
                { "sandbox", no_argument, NULL, 'S' },
                { "print-capabilities", no_argument, NULL, 'K' },
                {},
        };
        unsigned uids[MAX_UIDS], n_uids = 0;
        const char *backend = NULL, *log = getenv("FAKE_WORKER_LOG"), *connect_path = NULL;
        int c, first_conn = -1, retry_ms = 10;

        if (log) {
                FILE *f = fopen(log, "ae");
                if (f) {
                        for (int i = 0; i < argc; i++)
                                fprintf(f, "%s%s", i ? " " : "", argv[i]);
                        fputc('\n', f);
                        fclose(f);
                }
        }
        while ((c = getopt_long(argc, argv, "v", options, NULL)) >= 0) {
                switch (c) {
                case 's':
                        listen_fd = parse_fd(optarg);
                        break;
                case 'c':
                        ctl_fd = parse_fd(optarg);
                        break;
                case 'd':
                        (void) parse_fd(optarg);
                        break;
                case 'b':
                        backend = optarg;
                        break;
                case 'u':
                        if (n_uids >= MAX_UIDS)
                                die("too many --allow-uid");
                        uids[n_uids++] = (unsigned) strtoul(optarg, NULL, 10);
                        break;
                case 'C':
                        first_conn = parse_fd(optarg);
                        break;
                case 'P':
                        connect_path = optarg;
                        break;
                case 'K':
                        /* like vhost-user-video; $FAKE_WORKER_NO_SANDBOX plays a build without seccomp */
                        printf("{\n  \"type\": \"video\",\n  \"features\": [\n    \"socket-fd\"%s\n  ]\n}\n",
                               getenv("FAKE_WORKER_NO_SANDBOX") ? "" : ",\n    \"sandbox\"");
                        return 0;
                case 'S':
                        if (getenv("FAKE_WORKER_NO_SANDBOX"))
                                die("--sandbox is not available");
                        break;
                case 'm':
                case 'a':
                case 'h':
                case 'v':
                        break;
                default:
                        die("bad option");
                }
        }
        if ((listen_fd >= 0) + (first_conn >= 0) + (connect_path != NULL) != 1 || ctl_fd < 0 || !backend)
                die("one of --socket-fd, --connection-fd, --connect-path, and --control-fd and --backend are "
                    "required");
        if (strcmp(backend, "null") != 0 && strcmp(backend, "null-encoder") != 0 &&
            strcmp(backend, "ffmpeg-decoder") != 0 && strcmp(backend, "ffmpeg-encoder") != 0 &&
            strcmp(backend, "v4l2-decoder") != 0 && strcmp(backend, "v4l2-encoder") != 0)
                die("unknown backend");

        CtlMsg hello = { .type = CTL_MSG_HELLO };
        hello.hello.pid = (uint32_t) getpid();
        snprintf(hello.hello.backend, sizeof(hello.hello.backend), "%s", backend);
        send_msg(&hello);
        if (first_conn >= 0)
                new_peer(first_conn, uids, n_uids);

        for (;;) {
                if (connect_path && conn_fd < 0) {
                        int fd = try_connect(connect_path);
                        if (fd >= 0) {
                                new_peer(fd, uids, n_uids);
                                retry_ms = 10;
                        } else if (retry_ms < 1000)
                                retry_ms *= 2;
                }
                struct pollfd p[3] = {
                        { .fd = ctl_fd, .events = POLLIN },
                        { .fd = conn_fd < 0 ? listen_fd : -1, .events = POLLIN },
                        { .fd = conn_fd, .events = POLLIN },
                };
                if (poll(p, 3, connect_path && conn_fd < 0 ? retry_ms : -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        die("poll");
                }
                if (p[0].revents) {
                        CtlMsg m;
                        int r = ctl_recv(ctl_fd, &m);
                        if (r == 0 || r == -ECONNRESET)
                                return 0; /* the manager went away */
                        if (r == -EAGAIN || r == -EINTR)
                                continue;
                        if (r < 0)
                                die("bad control message");
                        switch (m.type) {
                        case CTL_MSG_STATS_REQUEST: {
                                CtlMsg s = { .type = CTL_MSG_STATS, .stats = stats };
                                s.stats.cookie = m.stats_cookie;
                                send_msg(&s);
                                break;
                        }
                        case CTL_MSG_DISCONNECT_PEER:
                                drop_peer();
                                break;
                        case CTL_MSG_SHUTDOWN:
                                drop_peer();
                                return 0;
                        default:
                                break;
                        }
                }
                if (p[1].revents & POLLIN) {
                        int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);

                        if (fd >= 0)
                                new_peer(fd, uids, n_uids);
                }
                if (conn_fd >= 0 && p[2].revents) {
                        char buf[4096];
                        ssize_t n = read(conn_fd, buf, sizeof(buf));
                        if (n > 0)
                                stats.bytes_in += (uint64_t) n;
                        else if (n == 0 || (errno != EINTR && errno != EAGAIN))
                                drop_peer();
                }
        }
}
