/* Typed schema tables: defaults, parsing, range checks, unknown keys. */
#include "qat/ini.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static void *field(void *base, const qat_cfg_key *k) { return (char *)base + k->offset; }
static const void *cfield(const void *base, const qat_cfg_key *k)
{
    return (const char *)base + k->offset;
}

static int parse_bool(const char *s, int *out)
{
    static const char *const t[] = {"true", "yes", "on", "1"}, *const f[] = {"false", "no", "off", "0"};
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(s, t[i]) == 0)
            return *out = 1, 0;
        if (strcasecmp(s, f[i]) == 0)
            return *out = 0, 0;
    }
    return -1;
}

static int range_ok(const qat_cfg_key *k, double v)
{
    if (k->flags & QAT_CFG_MIN_EXCL ? !(v > k->min) : !(v >= k->min))
        return 0;
    if (k->flags & QAT_CFG_MAX_EXCL ? !(v < k->max) : !(v <= k->max))
        return 0;
    return 1;
}

static void range_text(const qat_cfg_key *k, char *buf, size_t len)
{
    snprintf(buf, len, "%c%g, %g%c", k->flags & QAT_CFG_MIN_EXCL ? '(' : '[', k->min, k->max,
             k->flags & QAT_CFG_MAX_EXCL ? ')' : ']');
}

/* Parses text into the field; on failure writes the reason into why. */
static int parse_value(const qat_cfg_key *k, const char *s, void *out, char *why, size_t wl)
{
    char rt[96];
    switch (k->type) {
    case QAT_CFG_INT: {
        char *end;
        errno = 0;
        long v = strtol(s, &end, 10);
        if (*s == '\0' || *end != '\0' || errno == ERANGE) {
            snprintf(why, wl, "expected an integer, found '%s'", s);
            return -1;
        }
        if (!range_ok(k, (double)v)) {
            range_text(k, rt, sizeof rt);
            snprintf(why, wl, "expected an integer in %s, found %ld", rt, v);
            return -1;
        }
        *(int *)out = (int)v;
        return 0;
    }
    case QAT_CFG_FLOAT: {
        char *end;
        errno = 0;
        double v = strtod(s, &end);
        if (*s == '\0' || *end != '\0' || isspace((unsigned char)*s)) {
            snprintf(why, wl, "expected a number, found '%s'", s);
            return -1;
        }
        if (!isfinite(v) || errno == ERANGE || fabs(v) > 3.0e38) {
            snprintf(why, wl, "expected a finite number, found '%s'", s);
            return -1;
        }
        if (!range_ok(k, v)) {
            range_text(k, rt, sizeof rt);
            snprintf(why, wl, "expected a number in %s, found %s", rt, s);
            return -1;
        }
        *(float *)out = (float)v;
        return 0;
    }
    case QAT_CFG_BOOL:
        if (parse_bool(s, (int *)out) != 0) {
            snprintf(why, wl, "expected true or false, found '%s'", s);
            return -1;
        }
        return 0;
    case QAT_CFG_STRING:
        if (strlen(s) >= QAT_CFG_STR_MAX) {
            snprintf(why, wl, "value longer than %d characters", QAT_CFG_STR_MAX - 1);
            return -1;
        }
        strcpy((char *)out, s);
        return 0;
    case QAT_CFG_FLOATS: {
        qat_cfg_floats *fl = out, tmp = {0};
        if ((k->flags & QAT_CFG_AUTO) && strcasecmp(s, "auto") == 0) {
            *fl = tmp;
            return 0;
        }
        const char *p = s;
        for (;;) {
            char *end;
            errno = 0;
            while (isspace((unsigned char)*p))
                p++;
            double v = strtod(p, &end);
            if (end == p) {
                snprintf(why, wl, "expected %s comma-separated numbers, found '%s'",
                         k->flags & QAT_CFG_AUTO ? "auto or" : "", s);
                return -1;
            }
            if (!isfinite(v) || errno == ERANGE || fabs(v) > 3.0e38) {
                snprintf(why, wl, "expected finite numbers, found %.*s", (int)(end - p), p);
                return -1;
            }
            if (!range_ok(k, v)) {
                range_text(k, rt, sizeof rt);
                snprintf(why, wl, "expected numbers in %s, found %.*s", rt, (int)(end - p), p);
                return -1;
            }
            if (tmp.n == QAT_CFG_FLOATS_MAX) {
                snprintf(why, wl, "more than %d values", QAT_CFG_FLOATS_MAX);
                return -1;
            }
            tmp.v[tmp.n++] = (float)v;
            p = end;
            while (isspace((unsigned char)*p))
                p++;
            if (*p == '\0')
                break;
            if (*p != ',') {
                snprintf(why, wl, "expected comma-separated numbers, found '%s'", s);
                return -1;
            }
            p++;
        }
        *fl = tmp;
        return 0;
    }
    case QAT_CFG_ENUM: {
        int v = qat_enum_parse(k->choices, s);
        if (v >= 0) {
            *(int *)out = v;
            return 0;
        }
        size_t n = (size_t)snprintf(why, wl, "expected one of ");
        for (int i = 0; k->choices[i] && n < wl; i++)
            n += (size_t)snprintf(why + n, wl - n, "%s%s", i ? ", " : "", k->choices[i]);
        if (n < wl)
            snprintf(why + n, wl - n, "; found '%s'", s);
        return -1;
    }
    }
    snprintf(why, wl, "unsupported key type");
    return -1;
}

int qat_enum_count(const char *const *names)
{
    int n = 0;
    while (names[n])
        n++;
    return n;
}

const char *qat_enum_name(const char *const *names, int value)
{
    return value >= 0 && value < qat_enum_count(names) ? names[value] : "unknown";
}

int qat_enum_parse(const char *const *names, const char *s)
{
    for (int i = 0; s && names[i]; i++)
        if (strcasecmp(s, names[i]) == 0)
            return i;
    return -1;
}

void qat_cfg_defaults(const qat_cfg_key *keys, int n, void *out)
{
    for (int i = 0; i < n; i++) {
        if (!keys[i].def)
            continue;
        char why[256];
        int rc = parse_value(&keys[i], keys[i].def, field(out, &keys[i]), why, sizeof why);
        QAT_ASSERT(rc == 0); /* a schema's own default must parse */
    }
}

qat_status qat_cfg_apply(const qat_ini *ini, qat_ini_section *s, const qat_cfg_key *keys, int n,
                         void *out, int require, qat_error *err)
{
    for (int i = 0; i < n; i++) {
        const qat_cfg_key *k = &keys[i];
        qat_ini_entry *e = qat_ini_section_get(s, k->name);
        if (!e) {
            if (require && !k->def)
                return qat_fail(err, QAT_EINVAL, "%s:%d: [%s] missing required key '%s' (%s)",
                                ini->path, s->line, s->name, k->name, k->doc ? k->doc : "");
            continue;
        }
        e->used = 1;
        char why[512];
        if (parse_value(k, e->value, field(out, k), why, sizeof why) != 0) {
            char where[600];
            qat_ini_where(ini, e, where, sizeof where);
            return qat_fail(err, QAT_EINVAL, "%s: [%s] %s: %s", where, s->name, k->name, why);
        }
    }
    return QAT_OK;
}

qat_status qat_cfg_check_unused(const qat_ini *ini, const qat_ini_section *s, const char *valid,
                                qat_error *err)
{
    for (int j = 0; j < s->nentries; j++) {
        const qat_ini_entry *e = &s->entries[j];
        if (e->used)
            continue;
        char where[600];
        qat_ini_where(ini, e, where, sizeof where);
        return qat_fail(err, QAT_EINVAL, "%s: [%s] unknown key '%s' (valid keys: %s)", where,
                        s->name, e->key, valid);
    }
    return QAT_OK;
}

void qat_cfg_names(const qat_cfg_key *keys, int n, char *buf, size_t len)
{
    size_t used = strlen(buf);
    for (int i = 0; i < n && used < len; i++)
        used += (size_t)snprintf(buf + used, len - used, "%s%s", used ? ", " : "", keys[i].name);
}

void qat_cfg_format(const qat_cfg_key *k, const void *in, char *buf, size_t len)
{
    const void *p = cfield(in, k);
    switch (k->type) {
    case QAT_CFG_INT: snprintf(buf, len, "%d", *(const int *)p); break;
    case QAT_CFG_FLOAT: snprintf(buf, len, "%.9g", (double)*(const float *)p); break;
    case QAT_CFG_BOOL: snprintf(buf, len, "%s", *(const int *)p ? "true" : "false"); break;
    case QAT_CFG_STRING: snprintf(buf, len, "%s", (const char *)p); break;
    case QAT_CFG_ENUM: snprintf(buf, len, "%s", k->choices[*(const int *)p]); break;
    case QAT_CFG_FLOATS: {
        const qat_cfg_floats *fl = p;
        size_t used = 0;
        if (fl->n == 0)
            snprintf(buf, len, "auto");
        for (int i = 0; i < fl->n && used < len; i++)
            used += (size_t)snprintf(buf + used, len - used, "%s%.9g", i ? ", " : "",
                                     (double)fl->v[i]);
        break;
    }
    }
}

void qat_cfg_write(FILE *f, const qat_cfg_key *keys, int n, const void *in)
{
    for (int i = 0; i < n; i++) {
        char v[2048]; /* a FLOATS list: 64 values of up to 17 characters */
        qat_cfg_format(&keys[i], in, v, sizeof v);
        fprintf(f, "%s = %s\n", keys[i].name, v);
    }
}
