/* Reading a run's summary.json, and the status names of the tables. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "qat/run.h"
#include "qat/sweep.h"
#include "sweep_internal.h"

const char *qat_sweep_status_name(int status)
{
    switch (status) {
    case QAT_RUN_OK: return "ok";
    case QAT_RUN_CACHED: return "cached";
    case QAT_RUN_FAILED: return "failed";
    default: return "pending";
    }
}

void qat_sweep_count_status(const qat_sweep_outcome *o, int n, int counts[QAT_RUN_NSTATUS])
{
    for (int s = 0; s < QAT_RUN_NSTATUS; s++)
        counts[s] = 0;
    for (int i = 0; i < n; i++) {
        QAT_ASSERT(o[i].status >= 0 && o[i].status < QAT_RUN_NSTATUS);
        counts[o[i].status]++;
    }
}

/* ---- a reader for the flat JSON object qat-train writes (keys: run.h) -------- */

static const char *ws(const char *p)
{
    while (isspace((unsigned char)*p))
        p++;
    return p;
}

/* p at '"': the end of the string, or NULL when unterminated. */
static const char *skip_string(const char *p)
{
    for (p++; *p; p++) {
        if (*p == '\\' && p[1])
            p++;
        else if (*p == '"')
            return p + 1;
    }
    return NULL;
}

/* Skips any JSON value (nested objects and arrays included). */
static const char *skip_value(const char *p)
{
    if (*p == '"')
        return skip_string(p);
    if (*p == '{' || *p == '[') {
        int depth = 0;
        while (*p) {
            if (*p == '"') {
                if (!(p = skip_string(p)))
                    return NULL;
                continue;
            }
            if (*p == '{' || *p == '[')
                depth++;
            else if (*p == '}' || *p == ']')
                if (--depth == 0)
                    return p + 1;
            p++;
        }
        return NULL;
    }
    const char *s = p;
    while (*p && *p != ',' && *p != '}' && *p != ']' && !isspace((unsigned char)*p))
        p++;
    return p > s ? p : NULL;
}

typedef struct wanted {
    const char *key;
    double *dst;
} wanted;

qat_status qat_sweep_read_summary(const char *path, qat_sweep_outcome *o, qat_error *err)
{
    double r2[3];
    wanted w[] = {
        {QAT_SUMMARY_FLOAT_ACCURACY, &o->float_acc},
        {QAT_SUMMARY_FAKEQUANT_ACCURACY, &o->fq_acc},
        {QAT_SUMMARY_INT8_ACCURACY, &o->int8_acc},
        {QAT_SUMMARY_FLOAT_R2, &r2[0]},
        {QAT_SUMMARY_FAKEQUANT_R2, &r2[1]},
        {QAT_SUMMARY_INT8_R2, &r2[2]},
        {QAT_SUMMARY_AGREEMENT, &o->agreement},
        {QAT_SUMMARY_MODEL_BYTES_INT8, &o->bytes_int8},
        {QAT_SUMMARY_SPARSITY, &o->sparsity},
        {QAT_SUMMARY_TRAIN_SECONDS, &o->train_seconds},
        {QAT_SUMMARY_PTQ_SECONDS, &o->ptq_seconds},
    };
    const int nw = (int)(sizeof w / sizeof w[0]);
    for (int i = 0; i < nw; i++)
        *w[i].dst = NAN;
    o->regression = 0;
    char *text = qat_sweep_read_file(path, NULL);
    if (!text)
        return qat_fail(err, QAT_EIO, "%s: cannot read: %s", path, strerror(errno));
    const char *p = ws(text);
    qat_status st = QAT_OK;
    if (*p != '{') {
        st = qat_fail(err, QAT_EINVAL, "%s: not a JSON object", path);
        goto done;
    }
    p = ws(p + 1);
    while (*p != '}') {
        char key[64];
        const char *ke = *p == '"' ? skip_string(p) : NULL;
        if (!ke) {
            st = qat_fail(err, QAT_EINVAL, "%s: malformed JSON at byte %ld (expected a key)",
                          path, (long)(p - text));
            goto done;
        }
        snprintf(key, sizeof key, "%.*s", (int)(ke - p - 2), p + 1);
        p = ws(ke);
        if (*p != ':') {
            st = qat_fail(err, QAT_EINVAL, "%s: malformed JSON at byte %ld (expected ':')",
                          path, (long)(p - text));
            goto done;
        }
        p = ws(p + 1);
        const char *ve = skip_value(p);
        if (!ve) {
            st = qat_fail(err, QAT_EINVAL, "%s: malformed JSON at byte %ld (bad value)", path,
                          (long)(p - text));
            goto done;
        }
        if (strcmp(key, QAT_SUMMARY_TASK) == 0)
            o->regression = strncmp(p, "\"regression\"", 12) == 0;
        for (int i = 0; i < nw; i++) {
            if (strcmp(key, w[i].key) != 0)
                continue;
            /* numbers only: null (or a value of a future, richer shape) stays NaN */
            char *end;
            double v = strtod(p, &end);
            if (end == ve && (isdigit((unsigned char)*p) || *p == '-'))
                *w[i].dst = v;
        }
        p = ws(ve);
        if (*p == ',')
            p = ws(p + 1);
        else if (*p != '}') {
            st = qat_fail(err, QAT_EINVAL, "%s: malformed JSON at byte %ld (expected ',' or '}')",
                          path, (long)(p - text));
            goto done;
        }
    }
    if (o->regression) { /* the main metric: R^2 */
        o->float_acc = r2[0];
        o->fq_acc = r2[1];
        o->int8_acc = r2[2];
    }
    if (isnan(o->fq_acc) && isnan(o->float_acc) && !o->regression)
        st = qat_fail(err, QAT_EINVAL, "%s: holds neither " QAT_SUMMARY_FAKEQUANT_ACCURACY
                      " nor " QAT_SUMMARY_FLOAT_ACCURACY, path);
done:
    free(text);
    return st;
}

const qat_sweep_metric *qat_sweep_metric_of(const qat_sweep_outcome *o, int n)
{
    static const qat_sweep_metric acc = {"accuracy", "accuracy", "acc %"},
                                  r2 = {"r2", "R^2", "R² x100"};
    for (int i = 0; i < n; i++)
        if (o[i].regression)
            return &r2;
    return &acc;
}
