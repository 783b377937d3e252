/* Sweep files -> runs: each run is a list of config overrides that has been
 * applied to the base config once here, so every bad key or value is found
 * before any process starts, and named by the sweep file's line. */
#include "qat/sweep.h"

#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "qat/ini.h"
#include "sweep_internal.h"

typedef struct sweep_header {
    char base[QAT_CFG_STR_MAX];
    char name[QAT_CFG_STR_MAX];
    int jobs;
} sweep_header;

static const qat_cfg_key header_keys[] = {
    {"base", QAT_CFG_STRING, offsetof(sweep_header, base), NULL, 0, 0, 0, NULL,
     "base config; a relative path is relative to the sweep file's folder"},
    {"name", QAT_CFG_STRING, offsetof(sweep_header, name), "", 0, 0, 0, NULL,
     "sweep name, used for the default out dir sweeps/<name>/ (default: the file name)"},
    {"jobs", QAT_CFG_INT, offsetof(sweep_header, jobs), "0", 0, 1024, 0, NULL,
     "runs at a time (0: online cores / train.threads)"},
};


static qat_status parse_values(qat_sweep_builder *b, const qat_ini *ini, const char *section,
                               const qat_ini_entry *e, qat_error *err)
{
    qat_sweep_axis *a = &b->axes[b->naxes];
    memset(a, 0, sizeof *a);
    snprintf(a->where, sizeof a->where, "%s:%d", ini->path, e->line);
    if (snprintf(a->key, sizeof a->key, "%s.%s", section, e->key) >= (int)sizeof a->key)
        return qat_fail(err, QAT_EINVAL, "%s: key name too long", a->where);
    b->naxes++;
    if (e->value[0] == '\0')
        return qat_fail(err, QAT_EINVAL,
                        "%s: [grid.%s] %s: empty value list (expected values separated by "
                        "commas, e.g. %s = 2, 4, 8)",
                        a->where, section, e->key, e->key);
    const char *p = e->value;
    for (;;) {
        const char *c = strchr(p, ',');
        const char *vb = p, *ve = c ? c : p + strlen(p);
        while (vb < ve && isspace((unsigned char)*vb))
            vb++;
        while (ve > vb && isspace((unsigned char)ve[-1]))
            ve--;
        char v[QAT_CFG_STR_MAX];
        if (vb == ve || (size_t)(ve - vb) >= sizeof v)
            return qat_fail(err, QAT_EINVAL, "%s: [grid.%s] %s: %s value in the list '%s'",
                            a->where, section, e->key, vb == ve ? "empty" : "too long a",
                            e->value);
        memcpy(v, vb, (size_t)(ve - vb));
        v[ve - vb] = '\0';
        if (qat_strv_has(&a->values, v))
            return qat_fail(err, QAT_EINVAL, "%s: [grid.%s] %s: value '%s' is listed twice",
                            a->where, section, e->key, v);
        if (qat_strv_push(&a->values, v))
            return qat_fail(err, QAT_ENOMEM, "out of memory");
        if (!c)
            break;
        p = c + 1;
    }
    return QAT_OK;
}

/* "[runs]  name = section.key=value section.key=value ...", and the same
 * in [methods] (sec), whose keys go to method_keys. */
static qat_status parse_run(qat_sweep_builder *b, const qat_ini *ini, const qat_ini_entry *e,
                            const char *sec, qat_error *err)
{
    int method = strcmp(sec, "methods") == 0;
    qat_sweep_proto *p;
    if (method) {
        qat_sweep_proto *nm = realloc(b->methods, (size_t)(b->nmethods + 1) * sizeof *nm);
        if (!nm)
            return qat_fail(err, QAT_ENOMEM, "out of memory");
        b->methods = nm;
        p = &b->methods[b->nmethods++];
        memset(p, 0, sizeof *p);
    } else if (!(p = qat_sweep_add_proto(b))) {
        return qat_fail(err, QAT_ENOMEM, "out of memory");
    }
    qat_strv *keys = method ? &b->method_keys : &b->run_keys;
    snprintf(p->where, sizeof p->where, "%s:%d", ini->path, e->line);
    int bad = strcmp(e->key, "plots") == 0;
    for (const char *c = e->key; method && *c; c++) /* method names end up in run names */
        bad |= !isalnum((unsigned char)*c) && !strchr("._+-", *c);
    if (strlen(e->key) >= QAT_SWEEP_NAME_MAX - (method ? 48 : 8) || bad)
        return qat_fail(err, QAT_EINVAL, "%s: [%s] '%s': %s names are folder names: at most "
                        "%d characters%s, and not 'plots'", p->where, sec, e->key,
                        method ? "method" : "run", QAT_SWEEP_NAME_MAX - (method ? 49 : 9),
                        method ? " of letters, digits, '.', '_', '+' and '-'" : "");
    snprintf(p->name, sizeof p->name, "%s", e->key);
    snprintf(p->method, sizeof p->method, "%s", method ? e->key : "");
    const char *s = e->value;
    while (*s) {
        while (isspace((unsigned char)*s))
            s++;
        if (!*s)
            break;
        const char *t = s;
        while (*s && !isspace((unsigned char)*s))
            s++;
        char tok[QAT_CFG_STR_MAX + 256], key[256];
        if ((size_t)(s - t) >= sizeof tok)
            return qat_fail(err, QAT_EINVAL, "%s: [%s] %s: override too long", p->where, sec,
                            p->name);
        memcpy(tok, t, (size_t)(s - t));
        tok[s - t] = '\0';
        const char *eq = strchr(tok, '=');
        const char *dot = memchr(tok, '.', eq ? (size_t)(eq - tok) : 0);
        if (!eq || !dot || dot == tok || dot + 1 == eq)
            return qat_fail(err, QAT_EINVAL,
                            "%s: [%s] %s: '%s' is not section.key=value (overrides are "
                            "separated by spaces, e.g. quant.weight_bits=4 "
                            "layer.fc1.weight_bits=8)",
                            p->where, sec, p->name, tok);
        qat_sweep_assignment_key(tok, key, sizeof key);
        for (int i = 0; i < p->sets.n; i++) {
            char k2[256];
            qat_sweep_assignment_key(p->sets.v[i], k2, sizeof k2);
            if (strcmp(k2, key) == 0)
                return qat_fail(err, QAT_EINVAL, "%s: [%s] %s: %s is set twice", p->where, sec,
                                p->name, key);
        }
        if (qat_strv_push(&p->sets, tok) ||
            (!qat_strv_has(keys, key) && qat_strv_push(keys, key)))
            return qat_fail(err, QAT_ENOMEM, "out of memory");
    }
    return QAT_OK;
}

/* Reads [sweep], [set.*], [grid.*] and [runs]; fills base, fixed sets, axes
 * and explicit runs. */
static qat_status read_sections(qat_sweep_builder *b, qat_ini *ini, sweep_header *h, qat_error *err)
{
    qat_status st;
    qat_ini_section *hs = qat_ini_find(ini, "sweep");
    if (!hs)
        return qat_fail(err, QAT_EINVAL,
                        "%s: no [sweep] section (it names the base config: base = "
                        "../mnist_cnn.ini)",
                        ini->path);
    qat_cfg_defaults(header_keys, 3, h);
    if ((st = qat_cfg_apply(ini, hs, header_keys, 3, h, 1, err)) ||
        (st = qat_cfg_check_unused(ini, hs, "base, name, jobs", err)))
        return st;
    int nentries = 0;
    for (int i = 0; i < ini->nsections; i++)
        nentries += ini->sections[i].nentries;
    b->axes = calloc((size_t)nentries + 1, sizeof *b->axes);
    if (!b->axes)
        return qat_fail(err, QAT_ENOMEM, "out of memory");
    for (int i = 0; i < ini->nsections; i++) {
        qat_ini_section *s = &ini->sections[i];
        const char *sub = strchr(s->name, '.');
        size_t role = sub ? (size_t)(sub - s->name) : strlen(s->name);
        if (strcmp(s->name, "sweep") == 0)
            continue;
        if (strcmp(s->name, "runs") == 0 || strcmp(s->name, "methods") == 0) {
            for (int j = 0; j < s->nentries; j++)
                if ((st = parse_run(b, ini, &s->entries[j], s->name, err)))
                    return st;
        } else if ((role == 3 && strncmp(s->name, "set", 3) == 0) ||
                   (role == 4 && strncmp(s->name, "grid", 4) == 0)) {
            if (!sub || !sub[1])
                return qat_fail(err, QAT_EINVAL,
                                "%s:%d: [%s] needs the config section it applies to, e.g. "
                                "[%s.quant] or [%s.layer.conv1]",
                                ini->path, s->line, s->name, s->name, s->name);
            for (int j = 0; j < s->nentries; j++) {
                qat_ini_entry *e = &s->entries[j];
                if (role == 4) {
                    if ((st = parse_values(b, ini, sub + 1, e, err)))
                        return st;
                    if (qat_strv_push(&b->keys, b->axes[b->naxes - 1].key))
                        return qat_fail(err, QAT_ENOMEM, "out of memory");
                } else {
                    char a[QAT_CFG_STR_MAX + 300];
                    snprintf(a, sizeof a, "%s.%s=%s", sub + 1, e->key, e->value);
                    if (qat_strv_push(&b->fixed, a))
                        return qat_fail(err, QAT_ENOMEM, "out of memory");
                }
            }
        } else {
            return qat_fail(err, QAT_EINVAL,
                            "%s:%d: unknown section [%s] (valid: [sweep], [set.<section>], "
                            "[grid.<section>], [methods], [runs])",
                            ini->path, s->line, s->name);
        }
    }
    /* the methods are the grid's last (fastest) axis */
    if (b->nmethods && qat_strv_push(&b->keys, QAT_SWEEP_METHOD_KEY))
        return qat_fail(err, QAT_ENOMEM, "out of memory");
    for (int i = 0; i < b->method_keys.n; i++)
        for (int k = 0; k < b->naxes; k++)
            if (strcmp(b->axes[k].key, b->method_keys.v[i]) == 0)
                return qat_fail(err, QAT_EINVAL, "%s: [methods] set %s, which the grid varies; "
                                "vary it in one place only", b->axes[k].where,
                                b->method_keys.v[i]);
    for (int i = 0; i < b->run_keys.n; i++)
        if (!qat_strv_has(&b->keys, b->run_keys.v[i]) && qat_strv_push(&b->keys, b->run_keys.v[i]))
            return qat_fail(err, QAT_ENOMEM, "out of memory");
    return QAT_OK;
}

/* [set.*] entries: each on its own first (to name its line), and none may
 * fix a key the sweep varies. */
static qat_status check_fixed(qat_sweep_builder *b, qat_ini *ini, qat_error *err)
{
    int k = 0;
    for (int i = 0; i < ini->nsections; i++) {
        qat_ini_section *s = &ini->sections[i];
        if (strncmp(s->name, "set.", 4) != 0)
            continue;
        for (int j = 0; j < s->nentries; j++, k++) {
            char where[QAT_CFG_STR_MAX + 64], key[256];
            snprintf(where, sizeof where, "%s:%d: [%s] %s", ini->path, s->entries[j].line,
                     s->name, s->entries[j].key);
            qat_sweep_assignment_key(b->fixed.v[k], key, sizeof key);
            if (qat_strv_has(&b->keys, key) || qat_strv_has(&b->method_keys, key))
                return qat_fail(err, QAT_EINVAL, "%s: the sweep also varies %s; set it in one "
                                "place only", where, key);
            qat_status st = qat_config_parse(b->base_text, b->base_len, b->base_path,
                                             (const char *const *)&b->fixed.v[k], 1, b->cfg, err);
            if (st != QAT_OK)
                return qat_sweep_blame(err, b->fixed.v[k], where);
        }
    }
    return QAT_OK;
}

/* A short folder-name label per grid key: weight_bits -> w, activation_bits
 * -> a, else the key; layer keys get the layer name in front. Labels that
 * collide fall back to the whole key. */
static void label_for(const char *key, char *out, size_t n)
{
    const char *dot = strrchr(key, '.');
    const char *k = dot ? dot + 1 : key;
    const char *ab = strcmp(k, "weight_bits") == 0       ? "w"
                     : strcmp(k, "activation_bits") == 0 ? "a"
                                                         : k;
    if (strncmp(key, "layer.", 6) == 0 && dot)
        snprintf(out, n, "%.*s.%s", (int)(dot - key - 6), key + 6, ab);
    else
        snprintf(out, n, "%s", ab);
}

static void append_part(char *name, size_t n, const char *label, const char *value)
{
    size_t len = strlen(name);
    const char *last = strrchr(label, '.');
    last = last ? last + 1 : label;
    int glue = strlen(last) == 1 && isdigit((unsigned char)value[0]);
    snprintf(name + len, n - len, "%s%s%s", len ? "_" : "", label, glue ? "" : "-");
    len = strlen(name);
    for (const char *v = value; *v && len + 1 < n; v++)
        name[len++] = (isalnum((unsigned char)*v) || strchr("._+-", *v)) ? *v : '-';
    name[len] = '\0';
}

static qat_status expand_grid(qat_sweep_builder *b, qat_error *err)
{
    if (!b->naxes && !b->nmethods)
        return QAT_OK;
    if (b->naxes > 64)
        return qat_fail(err, QAT_EINVAL, "%s: more than 64 grid keys", b->axes[64].where);
    int nm = b->nmethods ? b->nmethods : 1;
    long total = nm;
    for (int i = 0; i < b->naxes; i++) {
        total *= b->axes[i].values.n;
        if (total > QAT_SWEEP_MAX_RUNS)
            return qat_fail(err, QAT_EINVAL, "%s: the grid has more than %d runs", b->axes[0].where,
                            QAT_SWEEP_MAX_RUNS);
    }
    char labels[64][256];
    int nl = b->naxes;
    for (int i = 0; i < nl; i++)
        label_for(b->axes[i].key, labels[i], sizeof labels[i]);
    for (int i = 0; i < nl; i++)
        for (int j = 0; j < nl; j++)
            if (i != j && strcmp(labels[i], labels[j]) == 0)
                snprintf(labels[i], sizeof labels[i], "%s", b->axes[i].key);
    for (long r = 0; r < total; r++) {
        qat_sweep_proto *p = qat_sweep_add_proto(b);
        if (!p)
            return qat_fail(err, QAT_ENOMEM, "out of memory");
        const qat_sweep_proto *m = b->nmethods ? &b->methods[r % nm] : NULL;
        snprintf(p->where, sizeof p->where, "%s", b->naxes ? b->axes[0].where : m->where);
        /* the first key varies slowest, like nested loops in file order;
         * the method fastest, so a grid point's methods sit together */
        int idx[64];
        long rest = r / nm;
        for (int i = b->naxes - 1; i >= 0; i--) {
            idx[i] = (int)(rest % b->axes[i].values.n);
            rest /= b->axes[i].values.n;
        }
        char name[1024] = "";
        for (int i = 0; i < b->naxes; i++) {
            const char *v = b->axes[i].values.v[idx[i]];
            char a[QAT_CFG_STR_MAX + 300];
            snprintf(a, sizeof a, "%s=%s", b->axes[i].key, v);
            if (qat_strv_push(&p->sets, a))
                return qat_fail(err, QAT_ENOMEM, "out of memory");
            append_part(name, sizeof name, labels[i], v);
        }
        if (m) {
            snprintf(p->method, sizeof p->method, "%s", m->name);
            snprintf(name + strlen(name), sizeof name - strlen(name), "%s%s", name[0] ? "_" : "",
                     m->name);
            for (int j = 0; j < m->sets.n; j++)
                if (qat_strv_push(&p->sets, m->sets.v[j]))
                    return qat_fail(err, QAT_ENOMEM, "out of memory");
        }
        if (strlen(name) >= QAT_SWEEP_NAME_MAX - 8)
            snprintf(p->name, sizeof p->name, "run-%04ld", r + 1);
        else
            snprintf(p->name, sizeof p->name, "%.*s", QAT_SWEEP_NAME_MAX - 1, name);
    }
    return QAT_OK;
}

/* Every grid value and run override alone first, so a bad one is reported
 * at its own line rather than inside some combination. */
static qat_status check_axes_and_runs(qat_sweep_builder *b, int first_explicit, qat_error *err)
{
    qat_status st;
    for (int i = 0; i < b->naxes; i++) {
        qat_sweep_axis *a = &b->axes[i];
        const char *dot = strrchr(a->key, '.');
        for (int j = 0; j < a->values.n; j++) {
            char as[QAT_CFG_STR_MAX + 300], where[QAT_CFG_STR_MAX + 400];
            snprintf(as, sizeof as, "%s=%s", a->key, a->values.v[j]);
            snprintf(where, sizeof where, "%s: [grid.%.*s] %s = %s", a->where,
                     (int)(dot - a->key), a->key, dot + 1, a->values.v[j]);
            const char *one = as;
            if ((st = qat_sweep_try_load(b, &one, 1, err)))
                return qat_sweep_blame(err, as, where);
        }
    }
    for (int i = 0; i < b->nmethods; i++) {
        qat_sweep_proto *p = &b->methods[i];
        for (int j = 0; j < p->sets.n; j++) {
            char where[QAT_CFG_STR_MAX + 400];
            snprintf(where, sizeof where, "%s: [methods] %s: %s", p->where, p->name, p->sets.v[j]);
            const char *one = p->sets.v[j];
            if ((st = qat_sweep_try_load(b, &one, 1, err)))
                return qat_sweep_blame(err, one, where);
        }
    }
    for (int i = first_explicit; i < b->nprotos; i++) {
        qat_sweep_proto *p = &b->protos[i];
        for (int j = 0; j < p->sets.n; j++) {
            char where[QAT_CFG_STR_MAX + 400];
            snprintf(where, sizeof where, "%s: [runs] %s: %s", p->where, p->name, p->sets.v[j]);
            const char *one = p->sets.v[j];
            if ((st = qat_sweep_try_load(b, &one, 1, err)))
                return qat_sweep_blame(err, one, where);
        }
        for (int j = 0; j < first_explicit; j++)
            if (strcmp(b->protos[j].name, p->name) == 0)
                return qat_fail(err, QAT_EINVAL,
                                "%s: [runs] %s: a grid run has this name already; choose another",
                                p->where, p->name);
    }
    return QAT_OK;
}

static qat_status check_name(const char *name, const char *where, qat_error *err)
{
    if (!name[0] || strlen(name) >= QAT_SWEEP_NAME_MAX || strcmp(name, ".") == 0 ||
        strcmp(name, "..") == 0)
        return qat_fail(err, QAT_EINVAL, "%s: sweep name '%s' must have 1 to %d characters",
                        where, name, QAT_SWEEP_NAME_MAX - 1);
    for (const char *p = name; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("._-", *p))
            return qat_fail(err, QAT_EINVAL, "%s: sweep name '%s': use letters, digits, '.', "
                            "'_' and '-' (it names a folder)", where, name);
    return QAT_OK;
}

static qat_status build_sweep(qat_ini *ini, const char *const *sets, int nsets, qat_sweep *sw,
                              qat_error *err)
{
    qat_sweep_builder b = {.file = ini->path};
    sweep_header *h = calloc(1, sizeof *h);
    qat_status st = h ? read_sections(&b, ini, h, err) : qat_fail(err, QAT_ENOMEM, "out of memory");
    if (st != QAT_OK)
        goto done;
    qat_ini_section *hs = qat_ini_find(ini, "sweep");
    qat_ini_entry *be = qat_ini_section_get(hs, "base");
    char where[QAT_CFG_STR_MAX + 32], path[2 * QAT_CFG_STR_MAX];
    snprintf(where, sizeof where, "%s:%d", ini->path, be->line);
    const char *slash = strrchr(ini->path, '/');
    if (h->base[0] == '/' || !slash)
        snprintf(path, sizeof path, "%s", h->base);
    else
        snprintf(path, sizeof path, "%.*s/%s", (int)(slash - ini->path), ini->path, h->base);
    if (strlen(path) >= QAT_CFG_STR_MAX) {
        st = qat_fail(err, QAT_EINVAL, "%s: base config path too long", where);
        goto done;
    }
    char bw[2 * QAT_CFG_STR_MAX + 64];
    snprintf(bw, sizeof bw, "%s: base = %s", where, h->base);
    if ((st = qat_sweep_load_base(&b, path, bw, err)) || (st = check_fixed(&b, ini, err)) ||
        (st = qat_sweep_add_cli_sets(&b, sets, nsets, err)))
        goto done;
    int nexplicit = b.nprotos;
    /* grid runs come first in the table; explicit runs follow in file order */
    qat_sweep_proto *explicit_runs = b.protos;
    b.protos = NULL;
    b.nprotos = b.cap = 0;
    if ((st = expand_grid(&b, err)) != QAT_OK) {
        for (int i = 0; i < nexplicit; i++)
            qat_strv_free(&explicit_runs[i].sets);
        free(explicit_runs);
        goto done;
    }
    int ngrid = b.nprotos;
    for (int i = 0; i < nexplicit; i++) {
        qat_sweep_proto *p = qat_sweep_add_proto(&b);
        if (!p) {
            for (int j = i; j < nexplicit; j++)
                qat_strv_free(&explicit_runs[j].sets);
            free(explicit_runs);
            st = qat_fail(err, QAT_ENOMEM, "out of memory");
            goto done;
        }
        *p = explicit_runs[i];
    }
    free(explicit_runs);
    if (b.nprotos == 0) {
        st = qat_fail(err, QAT_EINVAL, "%s: nothing to run: add a [grid.<section>] (e.g. "
                      "[grid.quant] weight_bits = 2, 4, 8), [methods] or a [runs] section",
                      ini->path);
        goto done;
    }
    if (b.nprotos > QAT_SWEEP_MAX_RUNS) {
        st = qat_fail(err, QAT_EINVAL, "%s: more than %d runs", ini->path, QAT_SWEEP_MAX_RUNS);
        goto done;
    }
    if ((st = check_axes_and_runs(&b, ngrid, err)))
        goto done;
    /* grid names could collide only after sanitising odd characters */
    for (int i = 1; i < ngrid; i++)
        for (int j = 0; j < i; j++)
            if (strcmp(b.protos[i].name, b.protos[j].name) == 0) {
                snprintf(b.protos[i].name, sizeof b.protos[i].name, "run-%04d", i + 1);
                break;
            }
    sw->kind = QAT_SWEEP_GRID;
    sw->jobs = h->jobs;
    sw->ngrid_keys = b.naxes + (b.nmethods > 0);
    sw->ngrid_runs = ngrid;
    snprintf(sw->path, sizeof sw->path, "%s", ini->path);
    snprintf(sw->base, sizeof sw->base, "%.*s", QAT_CFG_STR_MAX - 1, path);
    char name[QAT_CFG_STR_MAX];
    if (h->name[0])
        snprintf(name, sizeof name, "%s", h->name);
    else
        qat_sweep_default_name(ini->path, "", name, sizeof name);
    qat_ini_entry *ne = qat_ini_section_get(hs, "name");
    char nwhere[QAT_CFG_STR_MAX + 32];
    if (ne)
        snprintf(nwhere, sizeof nwhere, "%s:%d", ini->path, ne->line);
    else
        snprintf(nwhere, sizeof nwhere, "%s", ini->path);
    if ((st = check_name(name, nwhere, err)))
        goto done;
    snprintf(sw->name, sizeof sw->name, "%.*s", QAT_SWEEP_NAME_MAX - 1, name);
    st = qat_sweep_finish_runs(&b, sw, err);
done:
    free(h);
    qat_sweep_builder_free(&b);
    return st;
}

qat_status qat_sweep_parse(const char *text, size_t len, const char *name,
                           const char *const *sets, int nsets, qat_sweep **out, qat_error *err)
{
    *out = NULL;
    qat_ini *ini;
    qat_status st = qat_ini_parse(text, len, name, &ini, err);
    if (st != QAT_OK)
        return st;
    qat_sweep *sw = calloc(1, sizeof *sw);
    st = sw ? build_sweep(ini, sets, nsets, sw, err) : qat_fail(err, QAT_ENOMEM, "out of memory");
    qat_ini_free(ini);
    if (st != QAT_OK) {
        qat_sweep_free(sw);
        return st;
    }
    *out = sw;
    return QAT_OK;
}

qat_status qat_sweep_load(const char *path, const char *const *sets, int nsets, qat_sweep **out,
                          qat_error *err)
{
    *out = NULL;
    size_t len;
    char *text = qat_sweep_read_file(path, &len);
    if (!text)
        return qat_fail(err, errno == ENOMEM ? QAT_ENOMEM : QAT_EINVAL,
                        "%s: cannot read the sweep file: %s", path, strerror(errno));
    qat_status st = qat_sweep_parse(text, len, path, sets, nsets, out, err);
    free(text);
    return st;
}
