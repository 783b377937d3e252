/* CSV tables: a header row naming the columns, then one example per line.
 * Every column but the target is a float32 feature. Fields are separated by
 * commas and may be double-quoted ("" inside quotes is a quote); blank
 * lines are skipped; CRLF line ends are accepted. A quoted field may not span
 * lines. Anything else -- a missing value, a cell that is not a number, a row
 * with more or fewer cells than the header -- is an error naming the line. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/data_internal.h"
#include "qat/data.h"

#define CELL_MAX 256

typedef struct csv {
    const char *p, *end, *name;
    int line;
} csv;

static int too_long(const csv *c, qat_error *err)
{
    qat_fail(err, QAT_EINVAL, "%s:%d: a cell longer than %d characters", c->name, c->line,
             CELL_MAX - 1);
    return -1;
}

/* Reads the next field of the current line into cell (unquoted, trimmed).
 * Returns 1 if a field was read and more follow on the line, 0 if it was the
 * last one, -1 on error. */
static int next_field(csv *c, char *cell, int *quoted, qat_error *err)
{
    size_t n = 0;
    *quoted = 0;
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t'))
        c->p++;
    if (c->p < c->end && *c->p == '"') {
        *quoted = 1;
        c->p++;
        for (;;) {
            if (c->p >= c->end || *c->p == '\n' || *c->p == '\r') {
                qat_fail(err, QAT_EINVAL, "%s:%d: unterminated quoted field", c->name, c->line);
                return -1;
            }
            if (*c->p == '"') {
                if (c->p + 1 < c->end && c->p[1] == '"') {
                    c->p++;
                } else {
                    c->p++;
                    break;
                }
            }
            if (n + 1 >= CELL_MAX)
                return too_long(c, err);
            cell[n++] = *c->p;
            c->p++;
        }
        while (c->p < c->end && (*c->p == ' ' || *c->p == '\t'))
            c->p++;
    } else {
        while (c->p < c->end && *c->p != ',' && *c->p != '\n' && *c->p != '\r') {
            if (n + 1 >= CELL_MAX)
                return too_long(c, err);
            cell[n++] = *c->p;
            c->p++;
        }
        while (n > 0 && (cell[n - 1] == ' ' || cell[n - 1] == '\t'))
            n--;
    }
    cell[n] = '\0';
    if (c->p < c->end && *c->p == ',') {
        c->p++;
        return 1;
    }
    if (c->p < c->end && *c->p != '\n' && *c->p != '\r') {
        qat_fail(err, QAT_EINVAL, "%s:%d: text after a quoted field", c->name, c->line);
        return -1;
    }
    return 0;
}

/* Moves past the end of the line (and any blank lines), counting them. */
static void end_line(csv *c)
{
    while (c->p < c->end && (*c->p == '\n' || *c->p == '\r')) {
        if (*c->p == '\n')
            c->line++;
        c->p++;
    }
}

/* Grows a float array of cap elements to hold need. */
static int grow(float **a, size_t *cap, size_t need)
{
    if (need <= *cap)
        return 0;
    size_t nc = *cap ? *cap : 1024;
    while (nc < need)
        nc *= 2;
    float *b = realloc(*a, nc * sizeof *b);
    if (!b)
        return -1;
    *a = b;
    *cap = nc;
    return 0;
}

qat_status qat_csv_parse(const char *text, size_t len, const char *name, const char *target,
                         int regression, int num_classes, qat_dataset *out, qat_error *err)
{
    memset(out, 0, sizeof *out);
    csv c = {text, text + len, name, 1};
    /* skip a UTF-8 byte-order mark, which spreadsheets write */
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0)
        c.p += 3;
    end_line(&c);
    if (c.p >= c.end)
        return qat_fail(err, QAT_EINVAL, "%s: empty file: expected a header row naming the "
                                         "columns", name);
    if (memchr(text, '\0', len))
        return qat_fail(err, QAT_EINVAL, "%s: holds a NUL byte: not a text file", name);
    char cell[CELL_MAX];
    int cols = 0, tcol = -1, more, quoted, header_line = c.line;
    do {
        if ((more = next_field(&c, cell, &quoted, err)) < 0)
            return QAT_EINVAL;
        if (strcmp(cell, target) == 0) {
            if (tcol >= 0)
                return qat_fail(err, QAT_EINVAL, "%s:%d: two columns are named '%s'", name,
                                c.line, target);
            tcol = cols;
        }
        cols++;
    } while (more);
    if (tcol < 0)
        return qat_fail(err, QAT_EINVAL,
                        "%s:%d: no column named '%s' in the header ([data] target names the "
                        "target column)",
                        name, header_line, target);
    if (cols < 2)
        return qat_fail(err, QAT_EINVAL, "%s:%d: the header has only the target column; "
                                         "expected at least one feature", name, header_line);
    end_line(&c);
    size_t F = (size_t)cols - 1, n = 0, fcap = 0, tcap = 0;
    float *feat = NULL, *tgt = NULL;
    qat_status st = QAT_OK;
    while (c.p < c.end && st == QAT_OK) {
        if (n == UINT32_MAX) {
            st = qat_fail(err, QAT_EINVAL, "%s: more than 2^32 - 1 rows", name);
            break;
        }
        if (grow(&feat, &fcap, (n + 1) * F) || grow(&tgt, &tcap, n + 1)) {
            st = qat_fail(err, QAT_ENOMEM, "%s: out of memory at line %d", name, c.line);
            break;
        }
        int col = 0;
        size_t fi = n * F;
        do {
            if ((more = next_field(&c, cell, &quoted, err)) < 0) {
                st = QAT_EINVAL;
                break;
            }
            if (col >= cols) {
                st = qat_fail(err, QAT_EINVAL,
                              "%s:%d: ragged row: more than the header's %d cells", name, c.line,
                              cols);
                break;
            }
            if (cell[0] == '\0') {
                st = qat_fail(err, QAT_EINVAL, "%s:%d: missing value in column %d", name,
                              c.line, col + 1);
                break;
            }
            char *e;
            errno = 0;
            double v = strtod(cell, &e);
            if (*e != '\0' || e == cell) {
                st = qat_fail(err, QAT_EINVAL, "%s:%d: column %d: '%s' is not a number", name,
                              c.line, col + 1, cell);
                break;
            }
            if (!isfinite(v) || fabs(v) > 3.0e38) {
                st = qat_fail(err, QAT_EINVAL, "%s:%d: column %d: '%s' is not a finite float32",
                              name, c.line, col + 1, cell);
                break;
            }
            if (col == tcol)
                tgt[n] = (float)v;
            else
                feat[fi++] = (float)v;
            col++;
        } while (more);
        if (st == QAT_OK && col < cols)
            st = qat_fail(err, QAT_EINVAL, "%s:%d: ragged row: %d cells, the header has %d", name,
                          c.line, col, cols);
        if (st == QAT_OK && !regression) {
            float v = tgt[n];
            if (!(v >= 0.0f && v < (float)num_classes && v == floorf(v)))
                st = qat_fail(err, QAT_EINVAL,
                              "%s:%d: label %g in column '%s' is not an integer in [0, %d) "
                              "(num_classes %d)",
                              name, c.line, (double)v, target, num_classes, num_classes);
        }
        n++;
        end_line(&c);
    }
    if (st == QAT_OK && n == 0)
        st = qat_fail(err, QAT_EINVAL, "%s: no rows after the header: the split is empty", name);
    if (st != QAT_OK) {
        free(feat);
        free(tgt);
        return st;
    }
    out->n = (uint32_t)n;
    out->h = out->w = 1;
    out->c = (int)F;
    out->features = feat;
    qat_data_own(out, feat, 0);
    if (regression) {
        out->targets = tgt;
        out->target_dim = 1;
        qat_data_own(out, tgt, 0);
    } else {
        out->labels = malloc(n);
        if (!out->labels) {
            free(tgt);
            qat_dataset_free(out);
            return qat_fail(err, QAT_ENOMEM, "%s: out of memory", name);
        }
        for (size_t i = 0; i < n; i++)
            out->labels[i] = (uint8_t)tgt[i];
        free(tgt);
        qat_data_own(out, out->labels, 0);
        out->num_classes = num_classes;
    }
    return QAT_OK;
}
