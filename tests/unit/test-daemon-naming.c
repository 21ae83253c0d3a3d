/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "daemon/naming.h"

static void test_vm_name_validation(void **state) {
        char big[300];

        assert_true(vm_name_is_valid("foo"));
        assert_true(vm_name_is_valid("qemu-1-débian 12"));
        assert_false(vm_name_is_valid(""));
        assert_false(vm_name_is_valid(NULL));
        assert_false(vm_name_is_valid("a/b"));
        assert_false(vm_name_is_valid("a\nb"));
        assert_false(vm_name_is_valid("a\x7f"));
        assert_false(vm_name_is_valid("bad\xff utf8"));
        assert_false(vm_name_is_valid("c1 \xc2\x85 control"));
        memset(big, 'a', sizeof(big));
        big[255] = 0;
        assert_true(vm_name_is_valid(big));
        big[255] = 'a';
        big[256] = 0;
        assert_false(vm_name_is_valid(big));
}

static void test_alias_validation(void **state) {
        assert_true(alias_is_valid("video0"));
        assert_true(alias_is_valid("a_b-c"));
        assert_true(alias_is_valid("0123456789abcdef"));
        assert_false(alias_is_valid("0123456789abcdefg"));
        assert_false(alias_is_valid(""));
        assert_false(alias_is_valid("Video0"));
        assert_false(alias_is_valid("a.b"));
        assert_false(alias_is_valid("a/b"));
        assert_false(alias_is_valid(NULL));
}

static void test_vm_label_unchanged_names_stay(void **state) {
        char *l = NULL;

        assert_int_equal(vm_label("foo.bar_baz-1", &l), 0);
        assert_string_equal(l, "foo.bar_baz-1");
        free(l);
}

static void test_vm_label_sanitizes_and_hashes(void **state) {
        char *a = NULL, *b = NULL, *c = NULL;

        assert_int_equal(vm_label("my vm", &a), 0);
        assert_int_equal(vm_label("my:vm", &b), 0);
        /* same sanitized prefix, distinct hashes */
        assert_memory_equal(a, "my_vm-", 6);
        assert_memory_equal(b, "my_vm-", 6);
        assert_int_equal(strlen(a), 6 + 8);
        assert_string_not_equal(a, b);
        /* deterministic */
        assert_int_equal(vm_label("my vm", &c), 0);
        assert_string_equal(a, c);
        free(a);
        free(b);
        free(c);
}

static void test_vm_label_truncates_long_names(void **state) {
        char name[200], *l = NULL;

        memset(name, 'x', sizeof(name) - 1);
        name[sizeof(name) - 1] = 0;
        assert_int_equal(vm_label(name, &l), 0);
        assert_int_equal(strlen(l), VM_LABEL_PREFIX_MAX + 1 + 8);
        assert_int_equal(l[VM_LABEL_PREFIX_MAX], '-');
        free(l);
}

static void test_vm_label_dot_names(void **state) {
        char *a = NULL, *b = NULL;

        assert_int_equal(vm_label(".", &a), 0);
        assert_int_equal(vm_label("..", &b), 0);
        assert_string_not_equal(a, ".");
        assert_memory_equal(a, "_-", 2);
        assert_memory_equal(b, "__-", 3);
        free(a);
        free(b);
}

static void test_vm_label_rejects_invalid(void **state) {
        char *l = NULL;

        assert_int_equal(vm_label("a/b", &l), -EINVAL);
        assert_null(l);
}

static void test_fdname(void **state) {
        char *n = NULL;

        assert_int_equal(device_fdname("foo", "video0", &n), 0);
        assert_string_equal(n, "dev-foo.video0");
        assert_true(fdname_is_valid(n));
        free(n);
        assert_int_equal(device_fdname("a:b c", "video1", &n), 0);
        assert_true(fdname_is_valid(n));
        assert_null(strchr(n, ':'));
        free(n);
        assert_int_equal(device_fdname("foo", "Bad", &n), -EINVAL);
        assert_false(fdname_is_valid("a:b"));
        assert_false(fdname_is_valid(""));
}

static void test_worker_backend_names(void **state) {
        assert_string_equal(worker_backend_name(BACKEND_V4L2, DEVICE_ROLE_DECODER), "v4l2-decoder");
        assert_string_equal(worker_backend_name(BACKEND_V4L2, DEVICE_ROLE_ENCODER), "v4l2-encoder");
        assert_string_equal(worker_backend_name(BACKEND_FFMPEG, DEVICE_ROLE_DECODER), "ffmpeg-decoder");
        assert_string_equal(worker_backend_name(BACKEND_FFMPEG, DEVICE_ROLE_ENCODER), "ffmpeg-encoder");
        assert_string_equal(worker_backend_name(BACKEND_NULL, DEVICE_ROLE_DECODER), "null");
        assert_string_equal(worker_backend_name(BACKEND_NULL, DEVICE_ROLE_ENCODER), "null-encoder");
        assert_null(worker_backend_name(BACKEND_V4L2, DEVICE_ROLE_AUTO));
        assert_null(worker_backend_name(_BACKEND_KIND_INVALID, DEVICE_ROLE_DECODER));
}

static void test_enum_strings(void **state) {
        assert_int_equal(device_role_from_string("auto"), DEVICE_ROLE_AUTO);
        assert_int_equal(device_role_from_string("encoder"), DEVICE_ROLE_ENCODER);
        assert_int_equal(device_role_from_string("Encoder"), _DEVICE_ROLE_INVALID);
        assert_int_equal(device_role_from_string(NULL), _DEVICE_ROLE_INVALID);
        assert_int_equal(backend_kind_from_string("ffmpeg"), BACKEND_FFMPEG);
        assert_int_equal(backend_kind_from_string("gstreamer"), _BACKEND_KIND_INVALID);
        assert_string_equal(backend_kind_to_string(BACKEND_NULL), "null");
        assert_null(backend_kind_to_string(_BACKEND_KIND_MAX));
        assert_null(device_role_to_string(_DEVICE_ROLE_INVALID));
}

static void test_path_is_below(void **state) {
        assert_true(path_is_below("/run/vv/vm/a/b.sock", "/run/vv/vm"));
        assert_true(path_is_below("/run/vv/vm/x", "/run/vv/vm"));
        assert_false(path_is_below("/run/vv/vm", "/run/vv/vm"));
        assert_false(path_is_below("/run/vv/vmx/a", "/run/vv/vm"));
        assert_false(path_is_below("/run/vv/vm/../../etc/x", "/run/vv/vm"));
        assert_false(path_is_below("/run/vv/vm/./a", "/run/vv/vm"));
        assert_false(path_is_below("/run/vv/vm//a", "/run/vv/vm"));
        assert_false(path_is_below("/run/vv/vm/a/", "/run/vv/vm"));
        assert_false(path_is_below("relative/a", "/run/vv/vm"));
        assert_false(path_is_below(NULL, "/run"));
        assert_true(path_is_below("/run", "/"));
        assert_false(path_is_below("/", "/"));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_vm_name_validation),
                cmocka_unit_test(test_alias_validation),
                cmocka_unit_test(test_vm_label_unchanged_names_stay),
                cmocka_unit_test(test_vm_label_sanitizes_and_hashes),
                cmocka_unit_test(test_vm_label_truncates_long_names),
                cmocka_unit_test(test_vm_label_dot_names),
                cmocka_unit_test(test_vm_label_rejects_invalid),
                cmocka_unit_test(test_fdname),
                cmocka_unit_test(test_worker_backend_names),
                cmocka_unit_test(test_enum_strings),
                cmocka_unit_test(test_path_is_below),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
