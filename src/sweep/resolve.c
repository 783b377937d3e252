/* Turning override lists into runs: the base config is loaded once, every
 * run's overrides are applied to it with qat_config_parse (the same code
 * qat-train uses), and the resolved config is kept to recognise a finished
 * run later. */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "qat/ini.h"
#include "qat/sweep.h"
#include "sweep_internal.h"

int qat_strv_push(qat_strv *a, const char *s)
{
    if (a->n == a->cap) {
        int cap = a->cap ? a->cap * 2 : 8;
        char **nv = realloc(a->v, (size_t)cap * sizeof *nv);
        if (!nv)
            return -1;
        a->v = nv;
        a->cap = cap;
    }
    if (!(a->v[a->n] = strdup(s)))
        return -1;
    a->n++;
    return 0;
}

void qat_strv_free(qat_strv *a)
{
    for (int i = 0; i < a->n; i++)
        free(a->v[i]);
    free(a->v);
    memset(a, 0, sizeof *a);
}

int qat_strv_has(const qat_strv *a, const char *s)
{
    for (int i = 0; i < a->n; i++)
        if (strcmp(a->v[i], s) == 0)
            return 1;
    return 0;
}

char *qat_sweep_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (n < cap)
            break;
        char *nb = cap < ((size_t)64 << 20) ? realloc(buf, cap * 2 + 1) : NULL;
        if (!nb) {
            free(buf);
            buf = NULL;
            errno = ENOMEM;
            break;
        }
        buf = nb;
        cap *= 2;
    }
    int bad = ferror(f);
    fclose(f);
    if (buf && bad) {
        free(buf);
        errno = EIO;
        return NULL;
    }
    if (buf) {
        buf[n] = '\0';
        if (len)
            *len = n;
    }
    return buf;
}

/* The key part of "section.key=value", trimmed, into out. */
void qat_sweep_assignment_key(const char *a, char *out, size_t n)
{
    const char *eq = strchr(a, '=');
    size_t k = eq ? (size_t)(eq - a) : strlen(a);
    while (k && isspace((unsigned char)a[k - 1]))
        k--;
    while (k && isspace((unsigned char)*a))
        a++, k--;
    if (k >= n)
        k = n - 1;
    memcpy(out, a, k);
    out[k] = '\0';
}

void qat_sweep_builder_free(qat_sweep_builder *b)
{
    free(b->base_text);
    free(b->cfg);
    qat_strv_free(&b->fixed);
    qat_strv_free(&b->keys);
    qat_strv_free(&b->run_keys);
    for (int i = 0; i < b->naxes; i++)
        qat_strv_free(&b->axes[i].values);
    free(b->axes);
    for (int i = 0; i < b->nmethods; i++)
        qat_strv_free(&b->methods[i].sets);
    free(b->methods);
    qat_strv_free(&b->method_keys);
    for (int i = 0; i < b->nprotos; i++)
        qat_strv_free(&b->protos[i].sets);
    free(b->protos);
}

qat_sweep_proto *qat_sweep_add_proto(qat_sweep_builder *b)
{
    if (b->nprotos == b->cap) {
        int cap = b->cap ? b->cap * 2 : 16;
        qat_sweep_proto *np = realloc(b->protos, (size_t)cap * sizeof *np);
        if (!np)
            return NULL;
        b->protos = np;
        b->cap = cap;
    }
    qat_sweep_proto *p = &b->protos[b->nprotos++];
    memset(p, 0, sizeof *p);
    return p;
}

/* Loads the base config with the fixed overrides plus extra (n of them). */
qat_status qat_sweep_try_load(qat_sweep_builder *b, const char *const *extra, int n, qat_error *err)
{
    const char *sets[QAT_SWEEP_MAX_SETS];
    int k = 0;
    if (b->fixed.n + n > QAT_SWEEP_MAX_SETS)
        return qat_fail(err, QAT_EINVAL, "%s: more than %d overrides in one run", b->file,
                        QAT_SWEEP_MAX_SETS);
    for (int i = 0; i < b->fixed.n; i++)
        sets[k++] = b->fixed.v[i];
    for (int i = 0; i < n; i++)
        sets[k++] = extra[i];
    return qat_config_parse(b->base_text, b->base_len, b->base_path, sets, k, b->cfg, err);
}

/* Config errors about an override start with "--set a=b: "; in a sweep file
 * the override came from a line, so that prefix gives way to the line. */
qat_status qat_sweep_blame(qat_error *err, const char *assignment, const char *where)
{
    char head[1200];
    snprintf(head, sizeof head, "--set %s: ", assignment);
    size_t hl = strlen(head);
    if (strncmp(err->msg, head, hl) == 0)
        memmove(err->msg, err->msg + hl, strlen(err->msg + hl) + 1);
    return qat_error_prefix(err, "%s", where);
}

qat_status qat_sweep_load_base(qat_sweep_builder *b, const char *path, const char *where, qat_error *err)
{
    snprintf(b->base_path, sizeof b->base_path, "%s", path);
    b->base_text = qat_sweep_read_file(path, &b->base_len);
    if (!b->base_text)
        return qat_fail(err, QAT_EINVAL, "%s: cannot read the base config %s: %s", where, path,
                        strerror(errno));
    b->cfg = malloc(sizeof *b->cfg);
    if (!b->cfg)
        return qat_fail(err, QAT_ENOMEM, "out of memory");
    qat_status st = qat_config_parse(b->base_text, b->base_len, path, NULL, 0, b->cfg, err);
    if (st != QAT_OK)
        return qat_error_prefix(err, "%s: base config", where);
    return QAT_OK;
}

/* Command-line overrides go after the file's [set.*] entries (so they win
 * over those) but may not touch a key the sweep varies: the grid would
 * collapse into copies of one run. */
qat_status qat_sweep_add_cli_sets(qat_sweep_builder *b, const char *const *sets, int nsets, qat_error *err)
{
    for (int i = 0; i < nsets; i++) {
        char key[256];
        qat_sweep_assignment_key(sets[i], key, sizeof key);
        if (qat_strv_has(&b->keys, key) || qat_strv_has(&b->method_keys, key))
            return qat_fail(err, QAT_EINVAL,
                            "--set %s: the sweep %s varies %s; a --set cannot override it",
                            sets[i], b->file, key);
        if (qat_strv_push(&b->fixed, sets[i]))
            return qat_fail(err, QAT_ENOMEM, "out of memory");
    }
    if (nsets) {
        qat_status st = qat_sweep_try_load(b, NULL, 0, err);
        if (st != QAT_OK)
            return st; /* the message names the --set */
    }
    return QAT_OK;
}

/* The value of "section.key" in a resolved config (parsed INI). */
static const char *resolved_value(qat_ini *ini, const char *key)
{
    const char *dot = strrchr(key, '.');
    if (!dot)
        return "";
    char sec[256];
    snprintf(sec, sizeof sec, "%.*s", (int)(dot - key), key);
    qat_ini_section *s = qat_ini_find(ini, sec);
    qat_ini_entry *e = s ? qat_ini_section_get(s, dot + 1) : NULL;
    return e ? e->value : "";
}

/* Resolves every run and moves it into sw. */
qat_status qat_sweep_finish_runs(qat_sweep_builder *b, qat_sweep *sw, qat_error *err)
{
    sw->runs = calloc((size_t)b->nprotos, sizeof *sw->runs);
    sw->keys = calloc((size_t)b->keys.n + 1, sizeof *sw->keys);
    if (!sw->runs || !sw->keys)
        return qat_fail(err, QAT_ENOMEM, "out of memory");
    for (int i = 0; i < b->keys.n; i++)
        if (!(sw->keys[sw->nkeys++] = strdup(b->keys.v[i])))
            return qat_fail(err, QAT_ENOMEM, "out of memory");
    for (int i = 0; i < b->nprotos; i++) {
        qat_sweep_proto *p = &b->protos[i];
        qat_sweep_run *r = &sw->runs[sw->nruns++];
        snprintf(r->name, sizeof r->name, "%s", p->name);
        snprintf(r->where, sizeof r->where, "%s", p->where);
        snprintf(r->layer, sizeof r->layer, "%s", p->layer);
        r->bits = p->bits;
        qat_status st = qat_sweep_try_load(b, (const char *const *)p->sets.v, p->sets.n, err);
        if (st != QAT_OK)
            return qat_error_prefix(err, "%s: run %s", p->where, p->name);
        r->threads = b->cfg->train.threads;
        size_t len = 0;
        FILE *m = open_memstream(&r->resolved, &len);
        if (!m)
            return qat_fail(err, QAT_ENOMEM, "out of memory");
        qat_config_write(m, b->cfg);
        fclose(m);
        r->nsets = b->fixed.n + p->sets.n;
        r->sets = calloc((size_t)r->nsets + 1, sizeof *r->sets);
        r->values = calloc((size_t)sw->nkeys + 1, sizeof *r->values);
        if (!r->resolved || !r->sets || !r->values)
            return qat_fail(err, QAT_ENOMEM, "out of memory");
        for (int j = 0; j < r->nsets; j++) {
            const char *s = j < b->fixed.n ? b->fixed.v[j] : p->sets.v[j - b->fixed.n];
            if (!(r->sets[j] = strdup(s)))
                return qat_fail(err, QAT_ENOMEM, "out of memory");
        }
        qat_ini *ri;
        if ((st = qat_ini_parse(r->resolved, len, "resolved", &ri, err)) != QAT_OK)
            return st;
        for (int k = 0; k < sw->nkeys; k++)
            if (!(r->values[k] = strdup(strcmp(sw->keys[k], QAT_SWEEP_METHOD_KEY) == 0
                                            ? p->method
                                            : resolved_value(ri, sw->keys[k])))) {
                qat_ini_free(ri);
                return qat_fail(err, QAT_ENOMEM, "out of memory");
            }
        qat_ini_free(ri);
    }
    return QAT_OK;
}

void qat_sweep_default_name(const char *path, const char *suffix, char *out, size_t n)
{
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    size_t len = strlen(b);
    if (len > 4 && strcmp(b + len - 4, ".ini") == 0)
        len -= 4;
    snprintf(out, n, "%.*s%s", (int)len, b, suffix);
}

void qat_sweep_free(qat_sweep *sw)
{
    if (!sw)
        return;
    for (int i = 0; i < sw->nruns; i++) {
        qat_sweep_run *r = &sw->runs[i];
        for (int j = 0; r->sets && j < r->nsets; j++)
            free(r->sets[j]);
        free(r->sets);
        for (int k = 0; r->values && k < sw->nkeys; k++)
            free(r->values[k]);
        free(r->values);
        free(r->resolved);
    }
    free(sw->runs);
    for (int k = 0; k < sw->nkeys; k++)
        free(sw->keys[k]);
    free(sw->keys);
    free(sw);
}

int qat_sweep_default_jobs(const qat_sweep *sw, int cores)
{
    if (cores < 1)
        cores = 1;
    int t = 1;
    for (int i = 0; i < sw->nruns; i++) {
        int rt = sw->runs[i].threads > 0 ? sw->runs[i].threads : cores;
        if (rt > t)
            t = rt;
    }
    int j = cores / t;
    return j < 1 ? 1 : j;
}
