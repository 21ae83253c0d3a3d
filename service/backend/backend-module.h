/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * The ABI between the registry (registry.c) and a loadable backend module (architecture.md §3).
 *
 * The worker has the null backends built in; every other backend family is a module file
 * "backend-<family>.so" (backend-ffmpeg.so, backend-v4l2.so) that the registry dlopen()s on the first
 * lookup of a name "<family>" or "<family>-<anything>". A module exports exactly one symbol,
 * BACKEND_MODULE_ENTRY_NAME, a function returning its BackendModule: the ops tables it offers, stamped
 * with the ABI version and struct sizes it was compiled against. The registry refuses a module whose
 * stamp differs from its own. Bump BACKEND_MODULE_ABI_VERSION on any change to backend.h that a module
 * built before the change would misread (a member added, removed or reordered; a changed meaning).
 *
 * A module links libcommon itself, but the worker exports its own copy (export_dynamic), which the
 * module's references bind to first: logging state (level, context fields) is the worker's.
 *
 * Only the registry knows where modules are found; see backend_find() in backend.h.
 */

#include <stdint.h>

#include "backend/backend.h"

#define BACKEND_MODULE_ABI_VERSION 1u
#define BACKEND_MODULE_ENTRY virtio_video_backend_module
#define BACKEND_MODULE_ENTRY_NAME "virtio_video_backend_module"
#define BACKEND_MODULE_PREFIX "backend-"
#define BACKEND_MODULE_SUFFIX ".so"
/* Environment variable naming the directory to load modules from instead of BACKEND_MODULE_DIR
 * (config.h): for the tests and for running from the build tree. */
#define BACKEND_MODULE_DIR_ENV "VIRTIO_VIDEO_BACKEND_DIR"

typedef struct BackendModule {
        uint32_t abi_version;         /* BACKEND_MODULE_ABI_VERSION */
        uint32_t ops_size;            /* sizeof(BackendOps) */
        uint32_t config_size;         /* sizeof(BackendConfig) */
        const BackendOps *const *ops; /* NULL-terminated; every name "<family>" or "<family>-..." */
} BackendModule;

typedef const BackendModule *(*BackendModuleEntry)(void);

/* In the module's one source file: BACKEND_MODULE_DEFINE(&foo_decoder_ops, &foo_encoder_ops); */
#define BACKEND_MODULE_DEFINE(...)                                                              \
        __attribute__((visibility("default"))) const BackendModule *BACKEND_MODULE_ENTRY(void); \
        const BackendModule *BACKEND_MODULE_ENTRY(void) {                                       \
                static const BackendOps *const ops[] = { __VA_ARGS__, NULL };                   \
                static const BackendModule module = {                                           \
                        .abi_version = BACKEND_MODULE_ABI_VERSION,                              \
                        .ops_size = sizeof(BackendOps),                                         \
                        .config_size = sizeof(BackendConfig),                                   \
                        .ops = ops,                                                             \
                };                                                                              \
                return &module;                                                                 \
        }
