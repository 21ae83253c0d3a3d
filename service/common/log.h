/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Logging (style.md §2.5): log_<level>_errno(r, fmt, ...) logs and returns r (a negative errno), with %m
 * expanding to strerror(-r). Messages go to the journal when the process runs under systemd
 * (JOURNAL_STREAM is set and matches stderr), to stderr otherwise.
 *
 * log_set_context() sets structured fields that go with every message of this process (for the worker:
 * "VM=foo", "ALIAS=video0", "HOST_DEVICE=/dev/video3"); on stderr they are printed as a prefix.
 */

#include <stdbool.h>
#include <stdint.h>
#include <syslog.h>

#include "macro.h"

void log_set_max_level(int level);
int log_get_max_level(void);
/* Parses "debug", "info", "notice", "warning", "err", "crit", "alert", "emerg" or a number 0..7. */
int log_level_from_string(const char *s);
const char *log_level_to_string(int level);
/* Sets program name used in stderr output (default: program_invocation_short_name). */
void log_set_ident(const char *ident);
/* Replaces the context fields; each entry is "KEY=value"; n at most 8. Copies the strings. */
int log_set_context(const char *const *fields, unsigned n);
/* Forces the output: true for the journal, false for stderr (default: auto-detect). */
void log_set_target_journal(bool journal);

int log_internal(int level, int error, const char *file, int line, const char *func,
                 const char *message_id, const char *format, ...) _printf_(7, 8);

#define log_full_errno(level, error, ...)                                                                  \
        ({                                                                                                  \
                int _level = (level), _e = (error);                                                         \
                _e = _e < 0 ? _e : -_e;                                                                     \
                (log_get_max_level() >= _level)                                                             \
                        ? log_internal(_level, _e, __FILE__, __LINE__, __func__, NULL, __VA_ARGS__)        \
                        : _e;                                                                               \
        })

#define log_full(level, ...) ((void) log_full_errno(level, 0, __VA_ARGS__))

/* With a MESSAGE_ID= (log-ids.h) for events an operator may search the journal for. */
#define log_id_errno(level, id, error, ...)                                                                \
        ({                                                                                                  \
                int _level2 = (level), _e2 = (error);                                                       \
                _e2 = _e2 < 0 ? _e2 : -_e2;                                                                 \
                (log_get_max_level() >= _level2)                                                            \
                        ? log_internal(_level2, _e2, __FILE__, __LINE__, __func__, (id), __VA_ARGS__)      \
                        : _e2;                                                                              \
        })
#define log_id(level, id, ...) ((void) log_id_errno(level, id, 0, __VA_ARGS__))

#define log_debug(...) log_full(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_full(LOG_INFO, __VA_ARGS__)
#define log_notice(...) log_full(LOG_NOTICE, __VA_ARGS__)
#define log_warning(...) log_full(LOG_WARNING, __VA_ARGS__)
#define log_error(...) log_full(LOG_ERR, __VA_ARGS__)

#define log_debug_errno(e, ...) log_full_errno(LOG_DEBUG, e, __VA_ARGS__)
#define log_info_errno(e, ...) log_full_errno(LOG_INFO, e, __VA_ARGS__)
#define log_notice_errno(e, ...) log_full_errno(LOG_NOTICE, e, __VA_ARGS__)
#define log_warning_errno(e, ...) log_full_errno(LOG_WARNING, e, __VA_ARGS__)
#define log_error_errno(e, ...) log_full_errno(LOG_ERR, e, __VA_ARGS__)

#define log_oom() log_error_errno(-ENOMEM, "Out of memory.")

/*
 * Rate limit for messages a peer can trigger at will (a guest, a frontend): at most `burst` messages per
 * `interval_usec`; the first message after a suppressed period says how many were dropped.
 */
typedef struct RateLimit {
        uint64_t interval_usec;
        unsigned burst;
        uint64_t begin;
        unsigned num;
        unsigned suppressed;
} RateLimit;

#define RATELIMIT_INIT(interval, b) ((RateLimit){ .interval_usec = (interval), .burst = (b) })
/* True when the caller may log now. */
bool ratelimit_below(RateLimit *rl);
