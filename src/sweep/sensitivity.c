/* Sensitivity sweeps: the base run, then one run per conv2d/linear layer
 * and bit-width that lowers only that layer. */
#include <stdlib.h>
#include <string.h>

#include "qat/sweep.h"
#include "sweep_internal.h"

qat_status qat_sweep_sensitivity(const char *config, const int *bits, int nbits, int target,
                                 const char *const *sets, int nsets, qat_sweep **out,
                                 qat_error *err)
{
    *out = NULL;
    if (nbits < 1 || nbits > QAT_SWEEP_MAX_BITS)
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
    if (st == QAT_OK && b.nprotos < 2)
        st = qat_fail(err, QAT_EINVAL, "%s: no conv2d or linear layer to quantize", config);
    if (st == QAT_OK) {
        sw->kind = QAT_SWEEP_SENSITIVITY;
        sw->target = target;
        sw->nbits = nbits;
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
