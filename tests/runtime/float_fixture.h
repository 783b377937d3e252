/* Float layers in the runtime tests' synthetic models (FORMAT.md §11,
 * ARITHMETIC.md §7): fx_floatize turns chosen conv2d / linear layers of an
 * fx_model into float layers computing about what their integers computed
 * (weights (w - wzp) * M * s_out / s_in, bias bias * M * s_out);
 * fx_oracle runs them with fx_float_oracle, an independent reading of §7. */
#ifndef QAT_TEST_FLOAT_FIXTURE_H
#define QAT_TEST_FLOAT_FIXTURE_H

#include <math.h>

#include "rt_fixture.h"

typedef struct fx_float {
    float *w[FX_MAX_LAYERS], *b[FX_MAX_LAYERS];
} fx_float;

/* Layers whose bit i of mask is set become float (relu if their clamp
 * started at the zero point); the description becomes version 3. */
static inline void fx_floatize(fx_model *m, fx_float *f, unsigned mask)
{
    memset(f, 0, sizeof *f);
    for (int i = 0; i < m->desc.num_layers; i++) {
        qat_rt_layer_desc *l = &m->layers[i];
        if (!(mask >> i & 1) || (l->op != QAT_RT_CONV2D && l->op != QAT_RT_LINEAR))
            continue;
        size_t k = (size_t)l->kernel_h * (size_t)l->kernel_w * (size_t)l->in_c;
        size_t oc = (size_t)l->out_c;
        f->w[i] = malloc(k * oc * sizeof(float));
        f->b[i] = malloc(oc * sizeof(float));
        for (size_t c = 0; c < oc; c++) {
            double M = ldexp((double)l->multiplier[c], l->shift[c] - 31);
            for (size_t j = 0; j < k; j++)
                f->w[i][c * k + j] = (float)((double)(m->w[i][c * k + j] - m->wzp[i][c]) * M *
                                             l->output_scale / l->input_scale);
            f->b[i][c] = (float)((double)l->bias[c] * M * l->output_scale);
        }
        l->is_float = 1;
        l->float_weights = f->w[i];
        l->float_bias = f->b[i];
        l->float_act = l->act_min == l->output_zero_point && l->act_min > -128
                           ? QAT_RT_FLOAT_ACT_RELU
                           : QAT_RT_FLOAT_ACT_NONE;
        l->weight_bits = 0;
        l->weights = NULL;
        l->weights_bytes = 0;
        l->weight_zero_point = l->bias = l->multiplier = l->shift = NULL;
        l->weight_scale = NULL;
    }
    m->desc.version = 3;
}

static inline void fx_float_free(fx_float *f)
{
    for (int i = 0; i < FX_MAX_LAYERS; i++) {
        free(f->w[i]);
        free(f->b[i]);
    }
}

#endif
