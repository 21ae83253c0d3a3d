/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/* Cleanup and ownership helpers in the style of systemd (style.md §2.4). */

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _unused_ __attribute__((unused))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _fallthrough_ __attribute__((__fallthrough__))
#define _likely_(x) (__builtin_expect(!!(x), 1))
#define _unlikely_(x) (__builtin_expect(!!(x), 0))

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))
/* GLib's gmacros.h defines the same two; keep whichever came first. */
#ifndef MIN
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#endif
#ifndef MAX
#define MAX(a, b) ((a) > (b) ? (a) : (b))
#endif
#define ALIGN_TO(x, a) (((x) + (a) - 1) & ~((typeof(x)) (a) - 1))

/* Take a pointer out of a cleanup variable: ownership moves to the caller. */
#define TAKE_PTR(p)                                                                                         \
        ({                                                                                                  \
                typeof(p) _tp = (p);                                                                        \
                (p) = NULL;                                                                                 \
                _tp;                                                                                        \
        })

#define TAKE_FD(fd)                                                                                         \
        ({                                                                                                  \
                int _tf = (fd);                                                                             \
                (fd) = -EBADF;                                                                              \
                _tf;                                                                                        \
        })

/* Makes foop(T **p) calling func(*p) when *p is set, for use with _cleanup_(). */
#define DEFINE_TRIVIAL_CLEANUP_FUNC(type, func)                                                             \
        static inline void func##p(type *p) {                                                               \
                if (*p)                                                                                     \
                        func(*p);                                                                           \
        }

static inline void freep(void *p) {
        free(*(void **) p);
}
#define _cleanup_free_ _cleanup_(freep)

/* Closes fd unless it is negative; keeps errno. Returns -EBADF for "fd = safe_close(fd);". */
static inline int safe_close(int fd) {
        if (fd >= 0) {
                int saved = errno;
                (void) close(fd);
                errno = saved;
        }
        return -EBADF;
}

static inline void closep(int *fd) {
        safe_close(*fd);
}
#define _cleanup_close_ _cleanup_(closep)

/* Compile-time string of a number. */
#define STRINGIFY_(x) #x
#define STRINGIFY(x) STRINGIFY_(x)
