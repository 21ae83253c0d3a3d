/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The codec backends linked in rather than loaded: libbackend_dep (the tests, the fuzzers) links this
 * whole, so its strong backend_linked_codecs overrides the registry's weak reference and lookups of these
 * names never go to a module. The worker links only libbackend_core_dep and loads modules.
 */
#include "backend/registry.h"

const BackendOps *const backend_linked_codecs[] = {
        BACKEND_REGISTRY_FFMPEG BACKEND_REGISTRY_V4L2 NULL,
};
