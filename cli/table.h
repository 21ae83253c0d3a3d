/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * The tables videoctl prints (management-plane.md §6.9): aligned columns with a header line, or the same
 * rows as JSON objects whose keys are the column names in lower-case snake_case ("HOST-DEVICE" becomes
 * "host_device"). Cells are strings; a column marked numeric is written to JSON without quotes.
 */

#include <stdbool.h>
#include <stdio.h>

typedef struct Table Table;

typedef enum TableJson {
        TABLE_JSON_OFF,
        TABLE_JSON_SHORT,
        TABLE_JSON_PRETTY,
} TableJson;

/* headers: ncols column names. Returns NULL on OOM. */
Table *table_new(const char *const *headers, unsigned ncols);
Table *table_free(Table *t);
/* Marks a column numeric for JSON output (its cells must be decimal numbers). */
void table_set_numeric(Table *t, unsigned col);
/* Copies ncols cells; NULL cells print as "-" (JSON null). */
int table_add_row(Table *t, const char *const *cells);
unsigned table_get_rows(Table *t);
/* Sorts rows by the given columns, in order of priority (strcmp). */
void table_sort(Table *t, const unsigned *cols, unsigned n);
/* Prints the header (when legend) and the rows, columns separated by two spaces. */
int table_print(Table *t, FILE *f, bool legend);
/* Prints a JSON array of objects, one per row. */
int table_print_json(Table *t, FILE *f, TableJson mode);

/* Writes s as a JSON string literal, with quotes. */
void json_print_string(FILE *f, const char *s);
/* Turns a column header into its JSON key: lower case, '-' and ' ' become '_'. Caller frees. */
char *table_json_key(const char *header);
