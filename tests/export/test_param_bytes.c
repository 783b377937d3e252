/* qat_export_param_bytes (summary.json's model_bytes_int8) counts every
 * array the integer model stores: the conv / linear weights and int32
 * per-channel arrays, and the merge layers' multipliers and shifts, which
 * a graph model has and a chain does not. */
#include <criterion/criterion.h>

#include "../runtime/rt_fixture.h"
#include "qat/export.h"

/* Counted from the description by hand (docs/FORMAT.md's datasets), not
 * with the runtime's helpers. */
static size_t stored_bytes(const qat_rt_model_desc *d)
{
    size_t n = 0;
    for (int i = 0; i < d->num_layers; i++) {
        const qat_rt_layer_desc *l = &d->layers[i];
        switch (l->op) {
        case QAT_RT_CONV2D:
        case QAT_RT_LINEAR:
            cr_assert_eq(l->palette_size, 0);
            n += l->weights_bytes + 3 * 4 * (size_t)l->out_c; /* bias, multiplier, shift */
            n += l->weight_zero_point ? 4 * (size_t)l->out_c : 0;
            break;
        case QAT_RT_ADD: /* m_0, m_1, m_out and their shifts */
            n += 3 * 2 * 4;
            break;
        case QAT_RT_CONCAT: /* one multiplier and shift per input */
            n += (size_t)l->num_inputs * 2 * 4;
            break;
        case QAT_RT_GLOBAL_AVGPOOL:
            n += 2 * 4;
            break;
        default:
            break;
        }
    }
    return n;
}

Test(param_bytes, graph_counts_the_merge_layers_multipliers)
{
    for (int bits = 4; bits <= 8; bits += 4) {
        fx_model fx;
        fx_build_graph(&fx, 77, bits);
        /* the example graph: an add, a three-input concat and a global
         * average pool, 3 + 3 + 1 multipliers and shifts of 4 bytes */
        size_t weights_only = 0;
        for (int i = 0; i < fx.desc.num_layers; i++) {
            const qat_rt_layer_desc *l = &fx.layers[i];
            if (l->op == QAT_RT_CONV2D || l->op == QAT_RT_LINEAR)
                weights_only += l->weights_bytes + 3 * 4 * (size_t)l->out_c +
                                (l->weight_zero_point ? 4 * (size_t)l->out_c : 0);
        }
        size_t got = qat_export_param_bytes(&fx.desc);
        cr_assert_eq(got, stored_bytes(&fx.desc), "bits %d: %zu, want %zu", bits, got,
                     stored_bytes(&fx.desc));
        cr_assert_eq(got - weights_only, (size_t)(3 + 3 + 1) * 2 * 4, "bits %d", bits);
        fx_free(&fx);
    }
}

Test(param_bytes, chain_is_weights_and_per_channel_arrays)
{
    fx_model fx;
    fx_build_cnn(&fx, 78, 8);
    cr_assert_eq(qat_export_param_bytes(&fx.desc), stored_bytes(&fx.desc));
    /* conv1 7 x 9, conv2 33 x 63, fc 10 x 132 weight bytes */
    cr_assert_eq(qat_export_param_bytes(&fx.desc),
                 (size_t)(7 * 9 + 33 * 63 + 10 * 132) + 3 * 4 * (size_t)(7 + 33 + 10) +
                     (fx.layers[0].weight_zero_point ? 4 * (size_t)(7 + 33 + 10) : 0));
    fx_free(&fx);
}
