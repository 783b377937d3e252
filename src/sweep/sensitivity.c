/* Sensitivity sweeps: the base run, then one run per quantized layer with
 * weights and bit-width that lowers only that layer (or, --target float,
 * one run per layer that keeps only that layer in float32). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "qat/sweep.h"
#include "sweep_internal.h"

/* The float sweep's run for layer lc: layer.NAME.quantize=false. A layer
 * the base already keeps in float has nothing to gain, and a depthwise or
 * grouped conv has no float kernel (the config refuses quantize = false on
 * it): both are skipped. */
static qat_status add_float_run(qat_sweep_builder *b, const char *config, const qat_layer_cfg *lc,
                                const char *const *sets, int nsets, qat_error *err)
{
    int can_float = (lc->type == QAT_LAYER_CONV2D && lc->groups == 1) ||
                    lc->type == QAT_LAYER_LINEAR;
    if (!can_float || qat_layer_cfg_is_float(lc))
        return QAT_OK;
    char key[256], a[300];
    snprintf(key, sizeof key, "layer.%s.quantize", lc->name);
    for (int i = 0; i < nsets; i++) {
        char k2[256];
        qat_sweep_assignment_key(sets[i], k2, sizeof k2);
        if (strcmp(k2, key) == 0)
            return qat_fail(err, QAT_EINVAL, "--set %s: the sensitivity sweep varies %s; "
                            "a --set cannot override it", sets[i], key);
    }
    qat_sweep_proto *p = qat_sweep_add_proto(b);
    if (!p)
        return qat_fail(err, QAT_ENOMEM, "out of memory");
    snprintf(p->name, sizeof p->name, "%.*s-float", QAT_NAME_MAX, lc->name);
    snprintf(p->where, sizeof p->where, "%s:%d", config, lc->line);
    snprintf(p->layer, sizeof p->layer, "%s", lc->name);
    snprintf(a, sizeof a, "%s=false", key);
    if (qat_strv_push(&p->sets, a))
        return qat_fail(err, QAT_ENOMEM, "out of memory");
    return QAT_OK;
}

qat_status qat_sweep_sensitivity(const char *config, const int *bits, int nbits, int target,
                                 const char *const *sets, int nsets, qat_sweep **out,
                                 qat_error *err)
{
    *out = NULL;
    if (target == QAT_SWEEP_FLOAT && nbits != 0)
        return qat_fail(err, QAT_EINVAL, "--bits: a float sensitivity sweep (--target float) "
                        "varies no bit-width");
    if (target < QAT_SWEEP_WEIGHTS || target > QAT_SWEEP_FLOAT)
        return qat_fail(err, QAT_EINVAL, "--target: expected weights, activations, both or float");
    if (target != QAT_SWEEP_FLOAT && (nbits < 1 || nbits > QAT_SWEEP_MAX_BITS))
        return qat_fail(err, QAT_EINVAL, "--bits: give 1 to %d bit-widths, e.g. --bits 2,4",
                        QAT_SWEEP_MAX_BITS);
    for (int i = 0; i < nbits; i++) {
        if (bits[i] < 2 || bits[i] > 8)
            return qat_fail(err, QAT_EINVAL, "--bits: %d is outside the supported 2..8", bits[i]);
        for (int j = 0; j < i; j++)
            if (bits[j] == bits[i])
                return qat_fail(err, QAT_EINVAL, "--bits: %d is listed twice", bits[i]);
    }
    qat_sweep_builder b = {.file = config};
    qat_sweep *sw = calloc(1, sizeof *sw);
    qat_status st = sw ? qat_sweep_load_base(&b, config, config, err)
                       : qat_fail(err, QAT_ENOMEM, "out of memory");
    static const char *const what[] = {"weight_bits", "activation_bits"};
    static const char *const tag[] = {"w", "a", "wa"};
    if (st == QAT_OK)
        st = qat_sweep_add_cli_sets(&b, sets, nsets, err);
    if (st == QAT_OK && !b.cfg->quant.enabled)
        st = qat_fail(err, QAT_EINVAL, "%s: a sensitivity sweep needs [quant] enabled = true",
                      config);
    qat_sweep_proto *p = st == QAT_OK ? qat_sweep_add_proto(&b) : NULL;
    if (st == QAT_OK && !p)
        st = qat_fail(err, QAT_ENOMEM, "out of memory");
    if (p) {
        snprintf(p->name, sizeof p->name, "base");
        snprintf(p->where, sizeof p->where, "%s", config);
    }
    /* b.cfg is rewritten by every trial load: take the layer list now */
    qat_config *c = st == QAT_OK ? malloc(sizeof *c) : NULL;
    if (st == QAT_OK && !c)
        st = qat_fail(err, QAT_ENOMEM, "out of memory");
    if (c)
        *c = *b.cfg;
    for (int l = 0; st == QAT_OK && l < c->nlayers; l++) {
        const qat_layer_cfg *lc = &c->layers[l];
        if (!qat_layer_type_has_weights(lc->type))
            continue;
        if (target == QAT_SWEEP_FLOAT) {
            st = add_float_run(&b, config, lc, sets, nsets, err);
            continue;
        }
        if (qat_layer_cfg_is_float(lc)) /* float32 already: its bits are unused */
            continue;
        for (int w = 0; w < 2; w++) {
            char key[256];
            snprintf(key, sizeof key, "layer.%s.%s", lc->name, what[w]);
            for (int i = 0; i < nsets && (target == QAT_SWEEP_BOTH || target == w); i++) {
                char k2[256];
                qat_sweep_assignment_key(sets[i], k2, sizeof k2);
                if (strcmp(k2, key) == 0)
                    st = qat_fail(err, QAT_EINVAL, "--set %s: the sensitivity sweep varies %s; "
                                  "a --set cannot override it", sets[i], key);
            }
        }
        for (int i = 0; st == QAT_OK && i < nbits; i++) {
            if (!(p = qat_sweep_add_proto(&b))) {
                st = qat_fail(err, QAT_ENOMEM, "out of memory");
                break;
            }
            snprintf(p->name, sizeof p->name, "%.*s-%s%d", QAT_NAME_MAX, lc->name, tag[target],
                     bits[i]);
            snprintf(p->where, sizeof p->where, "%s:%d", config, lc->line);
            snprintf(p->layer, sizeof p->layer, "%s", lc->name);
            p->bits = bits[i];
            for (int w = 0; w < 2; w++) {
                if (target != QAT_SWEEP_BOTH && target != w)
                    continue;
                char a[256];
                snprintf(a, sizeof a, "layer.%s.%s=%d", lc->name, what[w], bits[i]);
                if (qat_strv_push(&p->sets, a))
                    st = qat_fail(err, QAT_ENOMEM, "out of memory");
            }
        }
    }
    if (st == QAT_OK && b.nprotos < 2 && target == QAT_SWEEP_FLOAT)
        st = qat_fail(err, QAT_EINVAL, "%s: no quantized conv2d (groups = 1) or linear layer "
                      "left to keep in float", config);
    if (st == QAT_OK && b.nprotos < 2)
        st = qat_fail(err, QAT_EINVAL, "%s: no conv2d or linear layer to quantize", config);
    if (st == QAT_OK) {
        sw->kind = QAT_SWEEP_SENSITIVITY;
        sw->target = target;
        sw->nbits = nbits;
        if (nbits > 0)
            memcpy(sw->bits, bits, (size_t)nbits * sizeof *bits);
        snprintf(sw->path, sizeof sw->path, "%s", config);
        snprintf(sw->base, sizeof sw->base, "%s", config);
        qat_sweep_default_name(config, "-sensitivity", sw->name, sizeof sw->name);
        st = qat_sweep_finish_runs(&b, sw, err);
    }
    free(c);
    qat_sweep_builder_free(&b);
    if (st != QAT_OK) {
        qat_sweep_free(sw);
        return st;
    }
    *out = sw;
    return QAT_OK;
}

/* What a row is sorted by: gain per KiB, or for a layer that costs no bytes
 * (a float32 layer can store less than its int8 codes plus three int32 per
 * channel when it has very few inputs) the sign of its gain, at the ends. */
static double rank_value(const qat_sweep_float_gain *g)
{
    if (g->extra_bytes > 0)
        return g->points_per_kib;
    return g->gain_points > 0 ? INFINITY : g->gain_points < 0 ? -INFINITY : 0.0;
}

int qat_sweep_base_run(const qat_sweep *sw)
{
    for (int i = 0; i < sw->nruns; i++)
        if (!sw->runs[i].layer[0])
            return i;
    return -1;
}

int qat_sweep_float_ranking(const qat_sweep *sw, const qat_sweep_outcome *o,
                            qat_sweep_float_gain *rows)
{
    int b = qat_sweep_base_run(sw);
    int base_ok = b >= 0 && (o[b].status == QAT_RUN_OK || o[b].status == QAT_RUN_CACHED) &&
                  !isnan(o[b].int8_acc) && !isnan(o[b].bytes_int8);
    int n = 0;
    for (int i = 0; i < sw->nruns; i++) {
        if (i == b)
            continue;
        qat_sweep_float_gain *g = &rows[n++];
        int ok = (o[i].status == QAT_RUN_OK || o[i].status == QAT_RUN_CACHED) &&
                 !isnan(o[i].int8_acc) && !isnan(o[i].bytes_int8);
        g->run = i;
        g->metric = ok ? o[i].int8_acc : NAN;
        g->gain_points = ok && base_ok ? 100 * (o[i].int8_acc - o[b].int8_acc) : NAN;
        g->extra_bytes = ok && base_ok ? o[i].bytes_int8 - o[b].bytes_int8 : NAN;
        g->points_per_kib = g->extra_bytes > 0 ? g->gain_points / (g->extra_bytes / 1024) : NAN;
        g->rank = !isnan(g->gain_points);
    }
    /* insertion sort: stable, so ties and the unknown rows keep file order */
    for (int i = 1; i < n; i++) {
        qat_sweep_float_gain t = rows[i];
        int j = i;
        for (; j > 0; j--) {
            const qat_sweep_float_gain *p = &rows[j - 1];
            int before = t.rank && (!p->rank || rank_value(&t) > rank_value(p));
            if (!before)
                break;
            rows[j] = rows[j - 1];
        }
        rows[j] = t;
    }
    for (int i = 0; i < n; i++)
        rows[i].rank = rows[i].rank ? i + 1 : 0;
    return n;
}
