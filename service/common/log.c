/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define SD_JOURNAL_SUPPRESS_LOCATION
#include <systemd/sd-journal.h>

#include "log.h"

#define LOG_CONTEXT_MAX 8

static int max_level = LOG_INFO;
static const char *ident;
static char *context[LOG_CONTEXT_MAX];
static unsigned n_context;
static int target_journal = -1; /* -1: not decided yet */

static const char *const level_names[] = {
        [LOG_EMERG] = "emerg", [LOG_ALERT] = "alert",   [LOG_CRIT] = "crit", [LOG_ERR] = "err",
        [LOG_WARNING] = "warning", [LOG_NOTICE] = "notice", [LOG_INFO] = "info", [LOG_DEBUG] = "debug",
};

void log_set_max_level(int level) {
        if (level >= LOG_EMERG && level <= LOG_DEBUG)
                max_level = level;
}

int log_get_max_level(void) {
        return max_level;
}

int log_level_from_string(const char *s) {
        if (!s || !*s)
                return -EINVAL;
        for (int i = 0; i < (int) ELEMENTSOF(level_names); i++)
                if (strcmp(s, level_names[i]) == 0)
                        return i;
        if (strcmp(s, "error") == 0)
                return LOG_ERR;
        if (s[0] >= '0' && s[0] <= '7' && s[1] == '\0')
                return s[0] - '0';
        return -EINVAL;
}

const char *log_level_to_string(int level) {
        if (level < 0 || level >= (int) ELEMENTSOF(level_names))
                return NULL;
        return level_names[level];
}

void log_set_ident(const char *i) {
        ident = i;
}

int log_set_context(const char *const *fields, unsigned n) {
        char *copy[LOG_CONTEXT_MAX] = {};

        if (n > LOG_CONTEXT_MAX)
                return -E2BIG;
        for (unsigned i = 0; i < n; i++) {
                if (!strchr(fields[i], '=')) {
                        for (unsigned j = 0; j < i; j++)
                                free(copy[j]);
                        return -EINVAL;
                }
                copy[i] = strdup(fields[i]);
                if (!copy[i]) {
                        for (unsigned j = 0; j < i; j++)
                                free(copy[j]);
                        return -ENOMEM;
                }
        }
        for (unsigned i = 0; i < n_context; i++)
                free(context[i]);
        memcpy(context, copy, sizeof(copy));
        n_context = n;
        return 0;
}

void log_set_target_journal(bool journal) {
        target_journal = journal;
}

/* systemd sets JOURNAL_STREAM=dev:ino when stderr is connected to the journal. */
static bool stderr_is_journal(void) {
        const char *e = getenv("JOURNAL_STREAM");
        unsigned long long dev, ino;
        struct stat st;

        if (!e || sscanf(e, "%llu:%llu", &dev, &ino) != 2)
                return false;
        if (fstat(STDERR_FILENO, &st) < 0)
                return false;
        return (unsigned long long) st.st_dev == dev && (unsigned long long) st.st_ino == ino;
}

static void log_to_journal(int level, int error, const char *file, int line, const char *func,
                           const char *message_id, const char *msg) {
        struct iovec iov[8 + LOG_CONTEXT_MAX];
        char prio[32], codeline[32], errnostr[32], mid[64];
        _cleanup_free_ char *m = NULL, *cf = NULL, *fn = NULL;
        unsigned n = 0;

        if (asprintf(&m, "MESSAGE=%s", msg) < 0 || asprintf(&cf, "CODE_FILE=%s", file) < 0 ||
            asprintf(&fn, "CODE_FUNC=%s", func) < 0)
                return;
        snprintf(prio, sizeof(prio), "PRIORITY=%i", level);
        snprintf(codeline, sizeof(codeline), "CODE_LINE=%i", line);
        iov[n++] = (struct iovec){ m, strlen(m) };
        iov[n++] = (struct iovec){ prio, strlen(prio) };
        iov[n++] = (struct iovec){ cf, strlen(cf) };
        iov[n++] = (struct iovec){ codeline, strlen(codeline) };
        iov[n++] = (struct iovec){ fn, strlen(fn) };
        if (error != 0) {
                snprintf(errnostr, sizeof(errnostr), "ERRNO=%i", -error);
                iov[n++] = (struct iovec){ errnostr, strlen(errnostr) };
        }
        if (message_id) {
                snprintf(mid, sizeof(mid), "MESSAGE_ID=%s", message_id);
                iov[n++] = (struct iovec){ mid, strlen(mid) };
        }
        for (unsigned i = 0; i < n_context; i++)
                iov[n++] = (struct iovec){ context[i], strlen(context[i]) };
        (void) sd_journal_sendv(iov, (int) n);
}

static void log_to_stderr(int level, const char *msg) {
        char prefix[256] = "";
        size_t off = 0;

        for (unsigned i = 0; i < n_context && off < sizeof(prefix) - 1; i++) {
                int k = snprintf(prefix + off, sizeof(prefix) - off, "%s ", context[i]);
                if (k < 0)
                        break;
                off += (size_t) k;
        }
        if (off >= sizeof(prefix))
                off = sizeof(prefix) - 1;
        fprintf(stderr, "%s[%d]: %s%s%s\n", ident ?: program_invocation_short_name, (int) getpid(),
                level <= LOG_WARNING ? (level <= LOG_ERR ? "error: " : "warning: ") : "", prefix, msg);
}

int log_internal(int level, int error, const char *file, int line, const char *func,
                 const char *message_id, const char *format, ...) {
        char buf[2048];
        va_list ap;
        int saved = errno;

        /* %m in the format expands to the error passed in, not to whatever errno happens to hold. */
        errno = error < 0 ? -error : error;
        va_start(ap, format);
        vsnprintf(buf, sizeof(buf), format, ap);
        va_end(ap);

        if (target_journal < 0)
                target_journal = stderr_is_journal();
        if (target_journal)
                log_to_journal(level, error, file, line, func, message_id, buf);
        else
                log_to_stderr(level, buf);

        errno = saved;
        return error < 0 ? error : -error;
}

static uint64_t now_usec(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u;
}

bool ratelimit_below(RateLimit *rl) {
        uint64_t ts = now_usec();

        if (rl->begin == 0 || ts - rl->begin > rl->interval_usec) {
                if (rl->suppressed > 0)
                        log_warning("(%u similar messages suppressed)", rl->suppressed);
                rl->begin = ts;
                rl->num = 0;
                rl->suppressed = 0;
        }
        if (rl->num < rl->burst) {
                rl->num++;
                return true;
        }
        rl->suppressed++;
        return false;
}
