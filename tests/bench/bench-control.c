/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Benchmark 4: the control plane. virtio-videod on a private bus: AttachDevice latency (p50, p99, with
 * the null backend, so that the codec costs nothing) against a plain method call round trip to the same
 * daemon in the same run (the bus floor), and the memory each idle attachment costs at 1, 16, 64 and 256
 * attachments: resident (RSS) and proportional (PSS) set size of the worker processes, and the daemon's
 * growth, against the RSS of an idle minimal process (sleep) measured in the same run.
 * Targets: attach p50 under 10 ms; under 2 MiB resident per idle worker.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <systemd/sd-bus.h>

#include "bench-common.h"
#include "common/macro.h"

#define MAX_ATTACH 256u
#define PINGS 2000u
#define BUS_NAME "org.virtiovideo.video1"
#define MANAGER_PATH "/org/virtiovideo/video1"
#define MANAGER_IFACE "org.virtiovideo.video1.Manager"

static const unsigned steps[] = { 1, 16, 64, 256 };

static const char bus_config[] =
        "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN\"\n"
        " \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n"
        "<busconfig><type>session</type><listen>unix:path=%s</listen>\n"
        "<auth>EXTERNAL</auth><policy context=\"default\"><allow send_destination=\"*\" eavesdrop=\"true\"/>\n"
        "<allow eavesdrop=\"true\"/><allow own=\"*\"/><allow user=\"*\"/></policy></busconfig>\n";

static pid_t spawn(char *const argv[], char *const envp_extra) {
        pid_t pid = fork();

        if (pid == 0) {
                if (envp_extra)
                        putenv(envp_extra);
                int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
                if (devnull >= 0 && !getenv("BENCH_VERBOSE"))
                        (void) dup2(devnull, STDERR_FILENO);
                execvp(argv[0], argv);
                _exit(127);
        }
        return pid;
}

/* A polkit authority on the private bus that allows everything, for runs as a non-root user (root
 * passes the daemon's privilege shortcut and never asks). */
static int polkit_check(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r = sd_bus_message_new_method_return(m, &reply);

        if (r >= 0)
                r = sd_bus_message_append(reply, "(bba{ss})", 1, 0, 0);
        if (r >= 0)
                r = sd_bus_send(NULL, reply, NULL);
        return r;
}

static const sd_bus_vtable polkit_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD("CheckAuthorization", "(sa{sv})sa{ss}us", "(bba{ss})", polkit_check, 0),
        SD_BUS_VTABLE_END,
};

static volatile bool polkit_stop;

static void *polkit_thread(void *userdata) {
        sd_bus *bus = userdata;

        while (!polkit_stop) {
                int r = sd_bus_process(bus, NULL);
                if (r < 0)
                        break;
                if (r == 0)
                        (void) sd_bus_wait(bus, 100000);
        }
        return NULL;
}

static int bus_connect(const char *address, sd_bus **ret) {
        sd_bus *bus = NULL;
        int r = sd_bus_new(&bus);

        if (r >= 0)
                r = sd_bus_set_address(bus, address);
        if (r >= 0)
                r = sd_bus_set_bus_client(bus, 1);
        if (r >= 0)
                r = sd_bus_start(bus);
        if (r < 0) {
                sd_bus_unref(bus);
                return r;
        }
        *ret = bus;
        return 0;
}

static uint64_t smaps_pss_kib(pid_t pid) {
        char path[64], line[256];
        unsigned long long kib = 0;
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", (int) pid);
        f = fopen(path, "re");
        if (!f)
                return 0;
        while (fgets(line, sizeof(line), f))
                if (sscanf(line, "Pss: %llu kB", &kib) == 1)
                        break;
        fclose(f);
        return kib;
}

/* Sums RSS and PSS over the daemon's children (the workers). */
static unsigned children_memory(pid_t parent, uint64_t *ret_rss, uint64_t *ret_pss) {
        DIR *d = opendir("/proc");
        struct dirent *de;
        unsigned n = 0;

        *ret_rss = *ret_pss = 0;
        if (!d)
                return 0;
        while ((de = readdir(d))) {
                char path[300], buf[512];
                int ppid = 0;
                FILE *f;
                if (de->d_name[0] < '0' || de->d_name[0] > '9')
                        continue;
                snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
                f = fopen(path, "re");
                if (!f)
                        continue;
                if (fgets(buf, sizeof(buf), f)) {
                        char *close_paren = strrchr(buf, ')');
                        if (close_paren)
                                (void) sscanf(close_paren + 2, "%*c %d", &ppid);
                }
                fclose(f);
                if (ppid != parent)
                        continue;
                pid_t pid = (pid_t) atoi(de->d_name);
                *ret_rss += bench_rss_kib(pid);
                *ret_pss += smaps_pss_kib(pid);
                n++;
        }
        closedir(d);
        return n;
}

static uint64_t call_ns(sd_bus *bus, const char *member, const char *vm, sd_bus_error *error, int *ret_r) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        uint64_t t0;
        int r;

        if (strcmp(member, "AttachDevice") == 0) {
                r = sd_bus_message_new_method_call(bus, &m, BUS_NAME, MANAGER_PATH, MANAGER_IFACE, member);
                if (r >= 0)
                        r = sd_bus_message_append(m, "ssa{sv}t", vm, "", 1, "Backend", "s", "null", UINT64_C(0));
        } else
                r = sd_bus_message_new_method_call(bus, &m, BUS_NAME, MANAGER_PATH, "org.freedesktop.DBus.Peer",
                                                   "Ping");
        if (r < 0) {
                *ret_r = r;
                return 0;
        }
        t0 = bench_now_ns();
        r = sd_bus_call(bus, m, 0, error, &reply);
        *ret_r = r;
        return bench_now_ns() - t0;
}

int main(int argc, char **argv) {
        char dir[64], conf[128], sockpath[128], address[200], runtime[128], worker_env[600];
        _cleanup_free_ uint64_t *lat = calloc(MAX_ATTACH, sizeof(uint64_t));
        _cleanup_free_ uint64_t *ping = calloc(PINGS, sizeof(uint64_t));
        uint64_t rss[ELEMENTSOF(steps)], pss[ELEMENTSOF(steps)], daemon_rss[ELEMENTSOF(steps)];
        sd_bus *bus = NULL, *polkit_bus = NULL;
        pthread_t polkit_tid;
        bool polkit_running = false;
        pid_t dbus_pid = 0, daemon_pid = 0, sleeper = 0;
        unsigned attached = 0;
        uint64_t daemon_rss0, sleep_rss;
        BenchJson j;
        int r = 0;
        FILE *f;

        if (!lat || !ping)
                return EXIT_FAILURE;
        signal(SIGPIPE, SIG_IGN);
        if (bench_tmpdir(dir, sizeof(dir)) < 0)
                return EXIT_FAILURE;
        snprintf(conf, sizeof(conf), "%s/bus.conf", dir);
        snprintf(sockpath, sizeof(sockpath), "%s/bus", dir);
        snprintf(address, sizeof(address), "unix:path=%s", sockpath);
        snprintf(runtime, sizeof(runtime), "%s/run", dir);
        f = fopen(conf, "we");
        if (!f)
                return EXIT_FAILURE;
        fprintf(f, bus_config, sockpath);
        fclose(f);

        char *dbus_argv[] = { (char *) "dbus-daemon", (char *) "--nofork", (char *) "--config-file", conf, NULL };
        dbus_pid = spawn(dbus_argv, NULL);
        for (unsigned i = 0; i < 5000 && access(sockpath, F_OK) < 0; i++)
                usleep(1000);

        /* The daemon: the worker of this build, a private runtime directory, no idle exit. */
        snprintf(worker_env, sizeof(worker_env), "VIRTIO_VIDEOD_WORKER=%s", bench_worker_path());
        char *daemon_argv[] = { (char *) BENCH_DAEMON_PATH, (char *) "--bus-address", address,
                                (char *) "--runtime-dir", runtime, NULL };
        daemon_pid = spawn(daemon_argv, worker_env);
        r = bus_connect(address, &bus);
        if (r < 0)
                goto finish;
        if (geteuid() != 0) {
                r = bus_connect(address, &polkit_bus);
                if (r >= 0)
                        r = sd_bus_add_object_vtable(polkit_bus, NULL, "/org/freedesktop/PolicyKit1/Authority",
                                                     "org.freedesktop.PolicyKit1.Authority", polkit_vtable, NULL);
                if (r >= 0)
                        r = sd_bus_request_name(polkit_bus, "org.freedesktop.PolicyKit1", 0);
                if (r < 0)
                        goto finish;
                polkit_running = pthread_create(&polkit_tid, NULL, polkit_thread, polkit_bus) == 0;
        }
        for (unsigned i = 0; i < 10000; i++) {
                if (sd_bus_call_method(bus, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                                       "GetNameOwner", NULL, NULL, "s", BUS_NAME) >= 0)
                        break;
                usleep(1000);
        }

        for (unsigned i = 0; i < PINGS; i++) {
                ping[i] = call_ns(bus, "Ping", NULL, NULL, &r);
                if (r < 0)
                        goto finish;
        }

        char *sleep_argv[] = { (char *) "sleep", (char *) "1000", NULL };
        sleeper = spawn(sleep_argv, NULL);
        usleep(100000);
        sleep_rss = bench_rss_kib(sleeper);
        daemon_rss0 = bench_rss_kib(daemon_pid);

        for (unsigned s = 0; s < ELEMENTSOF(steps); s++) {
                for (; attached < steps[s]; attached++) {
                        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
                        char vm[32];
                        snprintf(vm, sizeof(vm), "bench-%u", attached);
                        lat[attached] = call_ns(bus, "AttachDevice", vm, &error, &r);
                        if (r < 0) {
                                fprintf(stderr, "AttachDevice %u failed: %s\n", attached,
                                        error.message ?: strerror(-r));
                                goto finish;
                        }
                }
                /* Idle: wait until every worker is up and has settled. */
                uint64_t prev = 0;
                for (unsigned k = 0; k < 50; k++) {
                        usleep(100000);
                        unsigned n = children_memory(daemon_pid, &rss[s], &pss[s]);
                        if (n == steps[s] && rss[s] == prev)
                                break;
                        prev = rss[s];
                }
                daemon_rss[s] = bench_rss_kib(daemon_pid);
        }

        double l50 = (double) bench_percentile(lat, MAX_ATTACH, 50) / 1e6;
        double l99 = (double) bench_percentile(lat, MAX_ATTACH, 99) / 1e6;
        double p50 = (double) bench_percentile(ping, PINGS, 50) / 1e6;
        printf("Control plane: AttachDevice (null backend) on a private bus, %u attachments\n", MAX_ATTACH);
        printf("%-34s %10s %10s\n", "", "p50 (ms)", "p99 (ms)");
        printf("%-34s %10.3f\n", "method call round trip (floor)", p50);
        printf("%-34s %10.3f %10.3f   (target p50 < 10 ms: %s)\n", "AttachDevice", l50, l99,
               l50 < 10 ? "met" : "NOT met");
        printf("%-34s %10.1fx\n", "ratio attach / floor (p50)", l50 / p50);
        printf("\n%-12s %16s %16s %16s %12s\n", "attachments", "RSS/worker KiB", "PSS/worker KiB",
               "daemon +KiB/dev", "RSS / sleep");
        for (unsigned s = 0; s < ELEMENTSOF(steps); s++)
                printf("%-12u %16.0f %16.0f %16.1f %11.2fx\n", steps[s], (double) rss[s] / steps[s],
                       (double) pss[s] / steps[s], ((double) daemon_rss[s] - (double) daemon_rss0) / steps[s],
                       (double) rss[s] / steps[s] / (double) sleep_rss);
        printf("(idle sleep(1) process: %" PRIu64 " KiB RSS; target: under 2048 KiB resident per idle worker: %s)\n",
               sleep_rss, (double) rss[ELEMENTSOF(steps) - 1] / MAX_ATTACH < 2048 ? "met" : "NOT met");

        if (bench_json_open(&j, "control") < 0)
                goto finish;
        bench_json_str(&j, "benchmark", "control plane");
        bench_json_num(&j, "ping_p50_ms", p50);
        bench_json_num(&j, "attach_p50_ms", l50);
        bench_json_num(&j, "attach_p99_ms", l99);
        bench_json_num(&j, "ratio_attach_ping_p50", l50 / p50);
        bench_json_bool(&j, "attach_target_met", l50 < 10);
        bench_json_num(&j, "sleep_rss_kib", (double) sleep_rss);
        for (unsigned s = 0; s < ELEMENTSOF(steps); s++) {
                char key[48];
                snprintf(key, sizeof(key), "rss_per_worker_kib_%u", steps[s]);
                bench_json_num(&j, key, (double) rss[s] / steps[s]);
                snprintf(key, sizeof(key), "pss_per_worker_kib_%u", steps[s]);
                bench_json_num(&j, key, (double) pss[s] / steps[s]);
                snprintf(key, sizeof(key), "daemon_kib_per_device_%u", steps[s]);
                bench_json_num(&j, key, ((double) daemon_rss[s] - (double) daemon_rss0) / steps[s]);
        }
        bench_json_bool(&j, "memory_target_met", (double) rss[ELEMENTSOF(steps) - 1] / MAX_ATTACH < 2048);
        r = bench_json_close(&j);
finish:
        if (r < 0)
                fprintf(stderr, "control plane benchmark failed: %s\n", strerror(-r));
        if (bus) {
                (void) sd_bus_call_method(bus, BUS_NAME, MANAGER_PATH, MANAGER_IFACE, "GetStatistics", NULL, NULL,
                                          NULL);
                sd_bus_flush_close_unref(bus);
        }
        polkit_stop = true;
        if (polkit_running)
                pthread_join(polkit_tid, NULL);
        sd_bus_flush_close_unref(polkit_bus);
        pid_t pids[] = { sleeper, daemon_pid, dbus_pid };
        for (unsigned i = 0; i < ELEMENTSOF(pids); i++)
                if (pids[i] > 0) {
                        (void) kill(pids[i], SIGTERM);
                        (void) waitpid(pids[i], NULL, 0);
                }
        bench_rmdir(runtime);
        bench_rmdir(dir);
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
