/* The model as a graph: which layers each layer reads. A layer reads the
 * previous one unless its section says `input = NAME` (add and concat:
 * `inputs = a, b`); only layers above it may be named, so the file order is
 * a topological order and the model a DAG by construction. Shapes are
 * checked later, by the model build (src/nn), which knows them. */
#include <ctype.h>
#include <string.h>

#include "config_internal.h"

static int multi_input(qat_layer_type t) { return t == QAT_LAYER_ADD || t == QAT_LAYER_CONCAT; }

static const char *input_key(qat_layer_type t) { return multi_input(t) ? "inputs" : "input"; }

void qat_config_mark_input_keys(qat_ini_section *s, qat_layer_type type, char *valid, size_t len)
{
    qat_ini_entry *e = qat_ini_section_get(s, input_key(type));
    if (e)
        e->used = 1;
    size_t used = strlen(valid);
    if (used < len)
        snprintf(valid + used, len - used, "%s%s", used ? ", " : "", input_key(type));
}

static int find_layer(const qat_config *cfg, const char *name)
{
    for (int i = 0; i < cfg->nlayers; i++)
        if (strcmp(cfg->layers[i].name, name) == 0)
            return i;
    return -1;
}

/* Whether following inputs back from layer `from` can reach `self`, for a
 * `from` after `self` (named before it is resolved): the forward reference
 * then closes a cycle. Layers after self are followed through their raw
 * key; layers before it only read layers further up, so never self. */
static int reaches(qat_ini *ini, const qat_config *cfg, int from, int self, unsigned char *seen)
{
    if (from == self)
        return 1;
    if (from < self || seen[from])
        return 0;
    seen[from] = 1;
    const qat_layer_cfg *l = &cfg->layers[from];
    char sec[QAT_NAME_MAX + 8];
    snprintf(sec, sizeof sec, "layer.%s", l->name);
    qat_ini_section *s = qat_ini_find(ini, sec);
    qat_ini_entry *e = s ? qat_ini_section_get(s, input_key(l->type)) : NULL;
    if (!e)
        return reaches(ini, cfg, from - 1, self, seen);
    char buf[QAT_CFG_STR_MAX], *save = NULL;
    snprintf(buf, sizeof buf, "%s", e->value);
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        while (isspace((unsigned char)*tok))
            tok++;
        char *end = tok + strlen(tok);
        while (end > tok && isspace((unsigned char)end[-1]))
            *--end = '\0';
        int j = find_layer(cfg, tok);
        if (j >= 0 && reaches(ini, cfg, j, self, seen))
            return 1;
    }
    return 0;
}

/* Parses one comma-separated list of layer names into l->inputs. */
static qat_status parse_inputs(qat_ini *ini, qat_config *cfg, int i, qat_ini_entry *e,
                               qat_error *err)
{
    qat_layer_cfg *l = &cfg->layers[i];
    const char *key = input_key(l->type);
    char where[600], buf[QAT_CFG_STR_MAX];
    qat_ini_where(ini, e, where, sizeof where);
    size_t n = strlen(e->value);
    if (n >= sizeof buf)
        return qat_fail(err, QAT_EINVAL, "%s: [layer.%s] %s: value longer than %zu characters",
                        where, l->name, key, sizeof buf - 1);
    memcpy(buf, e->value, n + 1);
    l->ninputs = 0;
    char *p = buf;
    for (;;) {
        char *comma = strchr(p, ',');
        if (comma)
            *comma = '\0';
        while (isspace((unsigned char)*p))
            p++;
        char *end = p + strlen(p);
        while (end > p && isspace((unsigned char)end[-1]))
            *--end = '\0';
        if (*p == '\0')
            return qat_fail(err, QAT_EINVAL,
                            "%s: [layer.%s] %s: expected %s, found '%s'", where, l->name, key,
                            multi_input(l->type) ? "layer names separated by commas"
                                                 : "the name of an earlier layer",
                            e->value);
        if (!multi_input(l->type) && comma)
            return qat_fail(err, QAT_EINVAL,
                            "%s: [layer.%s] input: a %s layer reads one layer, found '%s' (only "
                            "add and concat take several, as inputs = a, b)",
                            where, l->name, qat_layer_type_name(l->type), e->value);
        if (l->ninputs == QAT_MAX_INPUTS)
            return qat_fail(err, QAT_EINVAL, "%s: [layer.%s] %s: more than %d layers", where,
                            l->name, key, QAT_MAX_INPUTS);
        int j = find_layer(cfg, p);
        if (j < 0)
            return qat_fail(err, QAT_EINVAL,
                            "%s: [layer.%s] %s: unknown layer '%s' (no [layer.%s] section)",
                            where, l->name, key, p, p);
        if (j == i)
            return qat_fail(err, QAT_EINVAL,
                            "%s: [layer.%s] %s: '%s' is this layer itself, a cycle (a layer "
                            "reads layers above it in the file)",
                            where, l->name, key, p);
        if (j > i) {
            unsigned char seen[QAT_MAX_LAYERS] = {0};
            int cycle = reaches(ini, cfg, j, i, seen);
            return qat_fail(err, QAT_EINVAL,
                            "%s: [layer.%s] %s: layer '%s' (line %d) comes later in the file%s; "
                            "a layer reads only layers above it, so the file order is the order "
                            "they run in",
                            where, l->name, key, p, cfg->layers[j].line,
                            cycle ? " and reads this one, a cycle" : "");
        }
        l->inputs[l->ninputs++] = j;
        if (!comma)
            break;
        p = comma + 1;
    }
    if (l->type == QAT_LAYER_ADD && l->ninputs != 2)
        return qat_fail(err, QAT_EINVAL, "%s: [layer.%s] inputs: add sums exactly 2 layers, found %d",
                        where, l->name, l->ninputs);
    if (l->type == QAT_LAYER_CONCAT && l->ninputs < 2)
        return qat_fail(err, QAT_EINVAL,
                        "%s: [layer.%s] inputs: concat joins 2 to %d layers, found %d", where,
                        l->name, QAT_MAX_INPUTS, l->ninputs);
    return QAT_OK;
}

qat_status qat_config_resolve_inputs(qat_ini *ini, qat_config *cfg, qat_error *err)
{
    for (int i = 0; i < cfg->nlayers; i++) {
        qat_layer_cfg *l = &cfg->layers[i];
        char sec[QAT_NAME_MAX + 8];
        snprintf(sec, sizeof sec, "layer.%s", l->name);
        qat_ini_section *s = qat_ini_find(ini, sec);
        qat_ini_entry *e = s ? qat_ini_section_get(s, input_key(l->type)) : NULL;
        if (e) {
            qat_status st = parse_inputs(ini, cfg, i, e, err);
            if (st != QAT_OK)
                return st;
            l->explicit_inputs = 1;
        } else if (multi_input(l->type)) {
            return qat_fail(err, QAT_EINVAL,
                            "%s:%d: [layer.%s] missing required key 'inputs' (the layers a %s "
                            "reads, e.g. inputs = a, b)",
                            ini->path, l->line, l->name, qat_layer_type_name(l->type));
        } else {
            l->ninputs = 1;
            l->inputs[0] = i - 1; /* -1: the model input */
        }
    }
    /* every output but the model's (the last layer's) must be read */
    for (int i = 0; i + 1 < cfg->nlayers; i++) {
        int read = 0;
        for (int j = i + 1; j < cfg->nlayers && !read; j++)
            for (int k = 0; k < cfg->layers[j].ninputs; k++)
                read |= cfg->layers[j].inputs[k] == i;
        if (!read)
            return qat_fail(err, QAT_EINVAL,
                            "%s:%d: [layer.%s] its output is never used: no later layer reads "
                            "it, and only the last layer's output is the model's (name it in a "
                            "later layer's input or inputs, or remove the layer)",
                            ini->path, cfg->layers[i].line, cfg->layers[i].name);
    }
    return QAT_OK;
}

void qat_config_write_inputs(FILE *f, const qat_config *cfg, int i)
{
    const qat_layer_cfg *l = &cfg->layers[i];
    if (!l->explicit_inputs)
        return;
    fprintf(f, "%s = ", input_key(l->type));
    for (int k = 0; k < l->ninputs; k++)
        fprintf(f, "%s%s", k ? ", " : "", cfg->layers[l->inputs[k]].name);
    fputc('\n', f);
}
