/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Tiny backend modules for test-backend-modules: one source, built as one module per TEST_MODULE_* case
 * (tests/unit/meson.build), each a way a module file can be right or wrong.
 */
#include <errno.h>
#include <stdlib.h>

#include "backend/backend-module.h"

typedef struct TestBackend {
        Backend base;
        VideoCaps caps;
} TestBackend;

__attribute__((unused)) static int test_new(const BackendConfig *config, sd_event *event, Backend **ret) {
        TestBackend *b = calloc(1, sizeof(*b));

        if (!b)
                return -ENOMEM;
        b->caps.role = config->threads == 7 ? VIDEO_ROLE_ENCODER : VIDEO_ROLE_DECODER;
        b->caps.n_formats[VIDEO_QUEUE_INPUT] = 1;
        b->caps.formats[VIDEO_QUEUE_INPUT][0].format = VIDEO_FORMAT_FWHT;
        *ret = &b->base;
        return 0;
}

__attribute__((unused)) static void test_free(Backend *b) {
        free(b);
}

__attribute__((unused)) static const VideoCaps *test_get_caps(Backend *b) {
        return &((TestBackend *) b)->caps;
}

__attribute__((unused)) static int test_stream_new(Backend *b,
                                                   uint32_t coded_format,
                                                   const BackendStreamCallbacks *callbacks,
                                                   void *userdata,
                                                   BackendStream **ret) {
        return -ENOSPC;
}

__attribute__((unused)) static void test_stream_free(BackendStream *s) {
}

#define OPS(n)                                                                              \
        {                                                                                   \
                .name = (n), .new = test_new, .free = test_free, .get_caps = test_get_caps, \
                .stream_new = test_stream_new, .stream_free = test_stream_free,             \
        }

#if defined(TEST_MODULE_OK)
/* backend-testmod.so: two backends, one named like the family itself */
static const BackendOps testmod_ops = OPS("testmod");
static const BackendOps testmod_b_ops = OPS("testmod-b");
BACKEND_MODULE_DEFINE(&testmod_ops, &testmod_b_ops)

#elif defined(TEST_MODULE_BAD_ABI)
/* backend-badabi.so: built against another ABI version */
__attribute__((visibility("default"))) const BackendModule *BACKEND_MODULE_ENTRY(void);
const BackendModule *BACKEND_MODULE_ENTRY(void) {
        static const BackendOps ops = OPS("badabi-decoder");
        static const BackendOps *const list[] = { &ops, NULL };
        static const BackendModule m = {
                .abi_version = BACKEND_MODULE_ABI_VERSION + 1,
                .ops_size = sizeof(BackendOps),
                .config_size = sizeof(BackendConfig),
                .ops = list,
        };
        return &m;
}

#elif defined(TEST_MODULE_NO_SYMBOL)
/* backend-nosym.so: a shared object without the entry point */
__attribute__((visibility("default"))) int nosym_something(void);
int nosym_something(void) {
        return 1;
}

#elif defined(TEST_MODULE_WRONG_FAMILY)
/* backend-wrongfam.so: offers a name of another family */
static const BackendOps other_ops = OPS("other-decoder");
BACKEND_MODULE_DEFINE(&other_ops)

#elif defined(TEST_MODULE_UNRESOLVED)
/* backend-unresolved.so: needs a symbol nothing defines (RTLD_NOW must refuse it) */
extern int test_module_no_such_symbol(void);
static int unresolved_new(const BackendConfig *config, sd_event *event, Backend **ret) {
        return test_module_no_such_symbol();
}
static const BackendOps unresolved_ops = {
        .name = "unresolved-decoder",
        .new = unresolved_new,
        .free = test_free,
        .get_caps = test_get_caps,
        .stream_new = test_stream_new,
        .stream_free = test_stream_free,
};
BACKEND_MODULE_DEFINE(&unresolved_ops)

#else
#error "define one TEST_MODULE_*"
#endif
