/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/macro.h"
#include "table.h"

#define TABLE_MAX_COLS 16

struct Table {
        unsigned ncols;
        char *headers[TABLE_MAX_COLS];
        bool numeric[TABLE_MAX_COLS];
        char **cells; /* rows * ncols, row-major */
        unsigned nrows, allocated;
        /* for table_sort(): qsort has no context argument */
        const unsigned *sort_cols;
        unsigned n_sort_cols;
};

Table *table_new(const char *const *headers, unsigned ncols) {
        Table *t;

        if (ncols == 0 || ncols > TABLE_MAX_COLS)
                return NULL;
        t = calloc(1, sizeof(*t));
        if (!t)
                return NULL;
        t->ncols = ncols;
        for (unsigned i = 0; i < ncols; i++) {
                t->headers[i] = strdup(headers[i]);
                if (!t->headers[i])
                        return table_free(t);
        }
        return t;
}

Table *table_free(Table *t) {
        if (!t)
                return NULL;
        for (unsigned i = 0; i < t->ncols; i++)
                free(t->headers[i]);
        for (size_t i = 0; i < (size_t) t->nrows * t->ncols; i++)
                free(t->cells[i]);
        free(t->cells);
        free(t);
        return NULL;
}

void table_set_numeric(Table *t, unsigned col) {
        if (col < t->ncols)
                t->numeric[col] = true;
}

int table_add_row(Table *t, const char *const *cells) {
        if (t->nrows == t->allocated) {
                unsigned n = t->allocated ? t->allocated * 2 : 16;
                char **c = reallocarray(t->cells, (size_t) n * t->ncols, sizeof(char *));
                if (!c)
                        return -ENOMEM;
                t->cells = c;
                t->allocated = n;
        }
        char **row = t->cells + (size_t) t->nrows * t->ncols;
        for (unsigned i = 0; i < t->ncols; i++) {
                row[i] = NULL;
                if (!cells[i])
                        continue;
                row[i] = strdup(cells[i]);
                if (!row[i]) {
                        for (unsigned j = 0; j < i; j++)
                                free(row[j]);
                        return -ENOMEM;
                }
        }
        t->nrows++;
        return 0;
}

unsigned table_get_rows(Table *t) {
        return t->nrows;
}

static Table *sort_table;

static int row_compare(const void *a, const void *b) {
        const char *const *ra = *(const char *const *const *) a, *const *rb =
                                                                         *(const char *const *const *) b;

        for (unsigned i = 0; i < sort_table->n_sort_cols; i++) {
                unsigned c = sort_table->sort_cols[i];
                int r = strcmp(ra[c] ?: "", rb[c] ?: "");
                if (r != 0)
                        return r;
        }
        return 0;
}

void table_sort(Table *t, const unsigned *cols, unsigned n) {
        _cleanup_free_ char ***rows = NULL;
        _cleanup_free_ char **sorted = NULL;

        if (t->nrows < 2)
                return;
        rows = calloc(t->nrows, sizeof(char **));
        sorted = calloc((size_t) t->nrows * t->ncols, sizeof(char *));
        if (!rows || !sorted)
                return; /* leaving the order as it is is the only sane fallback */
        for (unsigned i = 0; i < t->nrows; i++)
                rows[i] = t->cells + (size_t) i * t->ncols;
        t->sort_cols = cols;
        t->n_sort_cols = n;
        sort_table = t;
        qsort(rows, t->nrows, sizeof(char **), row_compare);
        sort_table = NULL;
        for (unsigned i = 0; i < t->nrows; i++)
                memcpy(sorted + (size_t) i * t->ncols, rows[i], t->ncols * sizeof(char *));
        memcpy(t->cells, sorted, (size_t) t->nrows * t->ncols * sizeof(char *));
}

int table_print(Table *t, FILE *f, bool legend) {
        size_t width[TABLE_MAX_COLS] = {};

        for (unsigned c = 0; c < t->ncols; c++) {
                width[c] = legend ? strlen(t->headers[c]) : 0;
                for (unsigned r = 0; r < t->nrows; r++) {
                        const char *s = t->cells[(size_t) r * t->ncols + c];
                        width[c] = MAX(width[c], s ? strlen(s) : 1);
                }
        }
        for (int r = legend ? -1 : 0; r < (int) t->nrows; r++)
                for (unsigned c = 0; c < t->ncols; c++) {
                        const char *s = r < 0 ? t->headers[c] : t->cells[(size_t) r * t->ncols + c];
                        bool last = c + 1 == t->ncols;
                        /* No trailing blanks: the last column is not padded. */
                        fprintf(f, "%-*s%s", last ? 0 : (int) width[c], s ?: "-", last ? "\n" : "  ");
                }
        return ferror(f) ? -EIO : 0;
}

void json_print_string(FILE *f, const char *s) {
        fputc('"', f);
        for (const unsigned char *p = (const unsigned char *) s; *p; p++) {
                switch (*p) {
                case '"':
                        fputs("\\\"", f);
                        break;
                case '\\':
                        fputs("\\\\", f);
                        break;
                case '\n':
                        fputs("\\n", f);
                        break;
                case '\t':
                        fputs("\\t", f);
                        break;
                case '\r':
                        fputs("\\r", f);
                        break;
                default:
                        if (*p < 0x20)
                                fprintf(f, "\\u%04x", *p);
                        else
                                fputc(*p, f);
                }
        }
        fputc('"', f);
}

char *table_json_key(const char *header) {
        char *k = strdup(header);

        if (!k)
                return NULL;
        for (char *p = k; *p; p++)
                *p = (*p == '-' || *p == ' ') ? '_' : (char) tolower((unsigned char) *p);
        return k;
}

int table_print_json(Table *t, FILE *f, TableJson mode) {
        bool pretty = mode == TABLE_JSON_PRETTY;
        char *keys[TABLE_MAX_COLS] = {};
        int r = 0;

        for (unsigned c = 0; c < t->ncols; c++) {
                keys[c] = table_json_key(t->headers[c]);
                if (!keys[c]) {
                        r = -ENOMEM;
                        goto finish;
                }
        }
        fputc('[', f);
        for (unsigned row = 0; row < t->nrows; row++) {
                fputs(row > 0 ? "," : "", f);
                fputs(pretty ? "\n  {" : "{", f);
                for (unsigned c = 0; c < t->ncols; c++) {
                        const char *s = t->cells[(size_t) row * t->ncols + c];
                        fputs(c > 0 ? "," : "", f);
                        fputs(pretty ? "\n    " : "", f);
                        json_print_string(f, keys[c]);
                        fputs(pretty ? ": " : ":", f);
                        if (!s)
                                fputs("null", f);
                        else if (t->numeric[c])
                                fputs(s, f);
                        else
                                json_print_string(f, s);
                }
                fputs(pretty ? "\n  }" : "}", f);
        }
        fputs(pretty && t->nrows > 0 ? "\n]\n" : "]\n", f);
        r = ferror(f) ? -EIO : 0;
finish:
        for (unsigned c = 0; c < t->ncols; c++)
                free(keys[c]);
        return r;
}
