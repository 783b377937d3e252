/* L1 / L2 penalties as a training hook: the trainer adds their gradient to
 * the data loss's after backward, and reports the penalty apart from the
 * data loss. The gradient is the penalty's own derivative, so it is exact:
 * no tape op is needed for a function of the parameters alone. */
#include <math.h>

#include "qat/prune.h"

static int is_compute(int type) { return qat_layer_type_has_weights((qat_layer_type)type); }

int qat_regularize_active(const qat_config *cfg)
{
    for (int i = 0; i < cfg->nlayers; i++) {
        const qat_layer_cfg *l = &cfg->layers[i];
        if (is_compute(l->type) && (l->l1 > 0.0f || l->l2 > 0.0f))
            return 1;
    }
    return 0;
}

/* Penalty of one tensor; with grad, also adds its gradient. */
static double tensor_penalty(const qat_tensor *t, float *grad, float l1, float l2)
{
    double l1s = 0, l2s = 0;
    for (size_t k = 0; k < t->numel; k++) {
        float w = t->data[k];
        l1s += fabs((double)w);
        l2s += (double)w * (double)w;
        if (grad) /* sign(0) = 0: an exact (pruned) zero gets no push */
            grad[k] += l1 * (float)((w > 0.0f) - (w < 0.0f)) + l2 * w;
    }
    return (double)l1 * l1s + 0.5 * (double)l2 * l2s;
}

static double penalty(qat_model *m, int add_grad)
{
    int biases = qat_model_config(m)->regularize.biases;
    double sum = 0;
    for (int i = 0; i < qat_model_num_layers(m); i++) {
        qat_layer *l = qat_model_layer(m, i);
        float l1 = l->cfg->l1, l2 = l->cfg->l2;
        if (!is_compute(l->type) || (l1 == 0.0f && l2 == 0.0f))
            continue;
        sum += tensor_penalty(&l->w, add_grad ? l->w.grad : NULL, l1, l2);
        if (biases && l->b.data)
            sum += tensor_penalty(&l->b, add_grad ? l->b.grad : NULL, l1, l2);
    }
    return sum;
}

double qat_regularize_penalty(qat_model *m) { return penalty(m, 0); }
double qat_regularize_apply(qat_model *m) { return penalty(m, 1); }
