#include "qat/autograd.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static double eval_loss(qat_tape *t, qat_gradcheck_fn fn, void *ctx)
{
    qat_tape_reset(t);
    qat_tape_set_grad_enabled(t, 0);
    qat_tensor *l = fn(t, ctx);
    qat_tape_set_grad_enabled(t, 1);
    return (double)l->data[0];
}

double qat_gradcheck(qat_tape *t, qat_gradcheck_fn fn, void *ctx, qat_tensor *const *leaves,
                     int nleaves, double eps, double atol, double rtol, int max_probes,
                     char *where, size_t where_len)
{
    /* Analytic pass. */
    for (int l = 0; l < nleaves; l++) {
        QAT_ASSERT(leaves[l]->grad);
        memset(leaves[l]->grad, 0, leaves[l]->numel * sizeof(float));
    }
    qat_tape_reset(t);
    qat_tape_set_grad_enabled(t, 1);
    qat_tensor *loss = fn(t, ctx);
    qat_tape_backward(t, loss);

    double worst = 0.0;
    if (where && where_len)
        where[0] = '\0';
    for (int l = 0; l < nleaves; l++) {
        qat_tensor *x = leaves[l];
        float *analytic = malloc(x->numel * sizeof(float));
        QAT_ASSERT(analytic);
        memcpy(analytic, x->grad, x->numel * sizeof(float));
        size_t probes = x->numel;
        if (max_probes > 0 && (size_t)max_probes < probes)
            probes = (size_t)max_probes;
        for (size_t p = 0; p < probes; p++) {
            size_t i = probes == x->numel ? p : p * x->numel / probes;
            float orig = x->data[i];
            x->data[i] = (float)(orig + eps);
            double lp = eval_loss(t, fn, ctx);
            x->data[i] = (float)(orig - eps);
            double lm = eval_loss(t, fn, ctx);
            x->data[i] = orig;
            double num = (lp - lm) / (2.0 * eps);
            double a = analytic[i];
            double tol = atol + rtol * fmax(fabs(a), fabs(num));
            double r = fabs(a - num) / tol;
            if (!(r <= worst)) { /* also catches NaN */
                worst = isnan(r) ? INFINITY : r;
                if (where && where_len)
                    snprintf(where, where_len, "leaf %d element %zu: analytic %.6g numeric %.6g",
                             l, i, a, num);
            }
        }
        free(analytic);
    }
    return worst;
}
