/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The registry's module loading (backend-module.h) as the worker has it: libbackend_core only, so every
 * name but null's goes to a module. TEST_MODULE_DIR holds the tiny modules of test-backend-module.c;
 * BACKEND_BUILD_DIR the real ones of this build.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <systemd/sd-event.h>

#include "backend/backend-module.h"
#include "common/macro.h"
#include "config.h"

static bool contains(const char *haystack, const char *needle) {
        if (!haystack || !strstr(haystack, needle)) {
                print_error("'%s' does not contain '%s'\n", haystack ?: "(null)", needle);
                return false;
        }
        return true;
}

static bool listed(const char *name) {
        for (const char *const *n = backend_names(); *n; n++)
                if (strcmp(*n, name) == 0)
                        return true;
        return false;
}

static int setup_test_dir(void **state) {
        return setenv(BACKEND_MODULE_DIR_ENV, TEST_MODULE_DIR, 1);
}

static void test_builtin_needs_no_module(void **state) {
        assert_int_equal(setenv(BACKEND_MODULE_DIR_ENV, "/nonexistent", 1), 0);
        assert_non_null(backend_find("null"));
        assert_non_null(backend_find("null-encoder"));
        assert_null(backend_find_error());
        assert_true(listed("null"));
        assert_true(listed("null-encoder"));
}

static void test_module_found_and_used(void **state) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        BackendConfig config = { .device_fd = -1, .threads = 7 };
        const BackendOps *a, *b;
        Backend *backend = NULL;
        BackendStream *s = NULL;

        a = backend_find("testmod");
        assert_non_null(a);
        assert_null(backend_find_error());
        assert_string_equal(a->name, "testmod");
        b = backend_find("testmod-b");
        assert_non_null(b);
        assert_ptr_not_equal(a, b);
        assert_ptr_equal(backend_find("testmod"), a); /* loaded once */

        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(backend_new("testmod-b", &config, e, &backend), 0);
        assert_ptr_equal(backend->ops, b);
        assert_int_equal(backend->ops->get_caps(backend)->role, VIDEO_ROLE_ENCODER);
        assert_int_equal(backend->ops->get_caps(backend)->formats[VIDEO_QUEUE_INPUT][0].format,
                         VIDEO_FORMAT_FWHT);
        assert_int_equal(backend->ops->stream_new(backend, VIDEO_FORMAT_FWHT, NULL, NULL, &s), -ENOSPC);
        backend_free(backend);

        /* a name the module does not offer */
        assert_null(backend_find("testmod-c"));
        assert_true(contains(backend_find_error(), "backend-testmod.so has no backend 'testmod-c'"));
        assert_int_equal(backend_new("testmod-c", NULL, e, &backend), -ENOENT);
}

static void test_missing_module(void **state) {
        assert_null(backend_find("absent-decoder"));
        assert_true(contains(backend_find_error(), TEST_MODULE_DIR "/backend-absent.so"));
        assert_true(contains(backend_find_error(), "No such file"));
        assert_false(listed("absent-decoder"));
}

static void test_wrong_abi(void **state) {
        assert_null(backend_find("badabi-decoder"));
        assert_true(
                contains(backend_find_error(), TEST_MODULE_DIR "/backend-badabi.so: module ABI version"));
        /* refused again, not half-loaded the first time */
        assert_null(backend_find("badabi-decoder"));
        assert_true(contains(backend_find_error(), "another build"));
}

static void test_no_symbol(void **state) {
        assert_null(backend_find("nosym-decoder"));
        assert_true(
                contains(backend_find_error(), TEST_MODULE_DIR "/backend-nosym.so is not a backend module"));
        assert_true(contains(backend_find_error(), BACKEND_MODULE_ENTRY_NAME));
}

static void test_unresolved_symbol(void **state) {
        assert_null(backend_find("unresolved-decoder"));
        assert_true(contains(backend_find_error(), TEST_MODULE_DIR "/backend-unresolved.so"));
        assert_true(contains(backend_find_error(), "test_module_no_such_symbol"));
}

static void test_wrong_family(void **state) {
        assert_null(backend_find("wrongfam-decoder"));
        assert_true(contains(backend_find_error(),
                             "backend 'other-decoder' is not of the module's family 'wrongfam'"));
        assert_null(backend_find("other-decoder"));
        assert_true(contains(backend_find_error(), "backend-other.so"));
}

static void test_names_not_paths(void **state) {
        /* never a file outside the directory, nor a file at all for what cannot be a module's name */
        static const char *const bad[] = { "../x", "/etc/passwd", "", "-decoder", "Null", "a/b-c", "x.so" };

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                assert_null(backend_find(bad[i]));
                assert_null(backend_find_error());
        }
        assert_null(backend_find(NULL));
}

static void test_names_list_usable_modules(void **state) {
        const char *before = NULL;

        assert_null(backend_find("absent-x"));
        before = backend_find_error();
        assert_non_null(before);
        assert_true(listed("null"));
        assert_true(listed("testmod"));
        assert_true(listed("testmod-b"));
        assert_false(listed("badabi-decoder"));
        assert_false(listed("other-decoder"));
        assert_false(listed("unresolved-decoder"));
        assert_false(listed("nosym-decoder"));
        /* listing leaves the last lookup's error alone */
        assert_true(contains(backend_find_error(), "backend-absent.so"));
}

static void test_install_dir_without_env(void **state) {
        assert_int_equal(unsetenv(BACKEND_MODULE_DIR_ENV), 0);
        assert_null(backend_find("nothere-decoder"));
        assert_true(contains(backend_find_error(), BACKEND_MODULE_DIR "/backend-nothere.so"));
        assert_int_equal(setenv(BACKEND_MODULE_DIR_ENV, "", 1), 0);
        assert_null(backend_find("nothere-decoder"));
        assert_true(contains(backend_find_error(), BACKEND_MODULE_DIR "/backend-nothere.so"));
}

static void test_build_modules(void **state) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        static const char *const names[] = {
#if HAVE_LIBAVCODEC
                "ffmpeg-decoder",
                "ffmpeg-encoder",
#endif
#if HAVE_LIBV4L2
                "v4l2-decoder",
                "v4l2-encoder",
#endif
                NULL,
        };

        assert_int_equal(setenv(BACKEND_MODULE_DIR_ENV, BACKEND_BUILD_DIR, 1), 0);
        assert_int_equal(sd_event_new(&e), 0);
        for (size_t i = 0; names[i]; i++) {
                const BackendOps *o = backend_find(names[i]);

                assert_non_null(o);
                assert_string_equal(o->name, names[i]);
                assert_true(listed(names[i]));
        }
#if HAVE_LIBAVCODEC
        /* the libavcodec module works in this process: a backend and its capabilities */
        Backend *b = NULL;
        assert_int_equal(backend_new("ffmpeg-decoder", NULL, e, &b), 0);
        assert_int_equal(b->ops->get_caps(b)->role, VIDEO_ROLE_DECODER);
        assert_true(b->ops->get_caps(b)->n_formats[VIDEO_QUEUE_INPUT] > 0);
        backend_free(b);
#endif
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_builtin_needs_no_module),
                cmocka_unit_test_setup(test_module_found_and_used, setup_test_dir),
                cmocka_unit_test_setup(test_missing_module, setup_test_dir),
                cmocka_unit_test_setup(test_wrong_abi, setup_test_dir),
                cmocka_unit_test_setup(test_no_symbol, setup_test_dir),
                cmocka_unit_test_setup(test_unresolved_symbol, setup_test_dir),
                cmocka_unit_test_setup(test_wrong_family, setup_test_dir),
                cmocka_unit_test_setup(test_names_not_paths, setup_test_dir),
                cmocka_unit_test_setup(test_names_list_usable_modules, setup_test_dir),
                cmocka_unit_test(test_install_dir_without_env),
                cmocka_unit_test(test_build_modules),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
