/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cli/table.h"
#include "common/macro.h"

static char *render(Table *t, bool json, TableJson mode, bool legend) {
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);

        assert_non_null(f);
        assert_int_equal(json ? table_print_json(t, f, mode) : table_print(t, f, legend), 0);
        fclose(f);
        return buf;
}

static Table *sample(void) {
        static const char *const headers[] = { "VM", "HOST-DEVICE", "ATTACHED" };
        Table *t = table_new(headers, 3);

        assert_non_null(t);
        table_set_numeric(t, 2);
        assert_int_equal(table_add_row(t, (const char *const[]){ "zeta", "/dev/video3", "2" }), 0);
        assert_int_equal(table_add_row(t, (const char *const[]){ "alpha", NULL, "10" }), 0);
        return t;
}

static void test_print_aligns_sorts_and_drops_legend(void **state) {
        static const unsigned cols[] = { 0 };
        Table *t = sample();

        table_sort(t, cols, 1);
        _cleanup_free_ char *with = render(t, false, TABLE_JSON_OFF, true);
        assert_string_equal(with, "VM     HOST-DEVICE  ATTACHED\n"
                                  "alpha  -            10\n"
                                  "zeta   /dev/video3  2\n");
        _cleanup_free_ char *without = render(t, false, TABLE_JSON_OFF, false);
        assert_string_equal(without, "alpha  -            10\n"
                                     "zeta   /dev/video3  2\n");
        table_free(t);
}

static void test_json_keys_numbers_nulls_and_escapes(void **state) {
        static const char *const headers[] = { "KEY", "VALUE" };
        Table *t = sample();

        _cleanup_free_ char *s = render(t, true, TABLE_JSON_SHORT, true);
        assert_string_equal(s, "[{\"vm\":\"zeta\",\"host_device\":\"/dev/video3\",\"attached\":2},"
                               "{\"vm\":\"alpha\",\"host_device\":null,\"attached\":10}]\n");
        _cleanup_free_ char *p = render(t, true, TABLE_JSON_PRETTY, true);
        assert_non_null(strstr(p, "\n  {\n    \"vm\": \"zeta\",\n"));
        table_free(t);

        t = table_new(headers, 2);
        assert_int_equal(table_add_row(t, (const char *const[]){ "a\"b\\c\n\x01", "x" }), 0);
        _cleanup_free_ char *e = render(t, true, TABLE_JSON_SHORT, true);
        assert_string_equal(e, "[{\"key\":\"a\\\"b\\\\c\\n\\u0001\",\"value\":\"x\"}]\n");
        table_free(t);
}

static void test_empty_table_and_bad_column_counts(void **state) {
        static const char *const headers[] = { "A" };
        Table *t = table_new(headers, 1);

        _cleanup_free_ char *s = render(t, true, TABLE_JSON_SHORT, true);
        assert_string_equal(s, "[]\n");
        assert_int_equal(table_get_rows(t), 0);
        table_free(t);
        assert_null(table_new(headers, 0));
        assert_null(table_new(headers, 17));
        _cleanup_free_ char *k = table_json_key("Host Device-Path");
        assert_string_equal(k, "host_device_path");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_print_aligns_sorts_and_drops_legend),
                cmocka_unit_test(test_json_keys_numbers_nulls_and_escapes),
                cmocka_unit_test(test_empty_table_and_bad_column_counts),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
