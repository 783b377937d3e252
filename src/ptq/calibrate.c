/* Calibration: the quantized model's observers run over the calibration
 * images in eval mode (BN on its running statistics, no dropout, no weight
 * update), and the passes every compensation step makes over them. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ptq_internal.h"
#include "qat/quant.h"

void ptq_pass(ptq_ctx *c, int quant, int last, int batch, ptq_visit fn, void *user)
{
    qat_model_set_quant_active(c->m, quant);
    qat_tape_set_grad_enabled(c->t, 0);
    qat_tape_set_training(c->t, 0);
    for (int b = 0; b < c->n; b += batch) {
        int n = c->n - b < batch ? c->n - b : batch;
        qat_tape_reset(c->t);
        qat_model_forward_taps(c->m, c->t, c->images + (size_t)b * c->isz, n, last, c->taps);
        if (fn)
            fn(c, b, n, user);
    }
    qat_tape_reset(c->t);
    qat_model_set_quant_active(c->m, 1);
}

void ptq_reset_observers(ptq_ctx *c)
{
    for (int i = 0; i < qat_model_num_layers(c->m); i++) {
        qat_layer *l = qat_model_layer(c->m, i);
        if (!ptq_is_compute(l) || qat_quant_lsq_ready(&l->q))
            continue;
        memset(&l->q.act_obs, 0, sizeof l->q.act_obs);
        l->q.w_ema.initialized = 0;
    }
}

/* Batches of [train] batch_size, as QAT's observers see them: an EMA or
 * percentile observer averages per-batch ranges, so the batch size is part
 * of what it measures. */
void ptq_calibrate(ptq_ctx *c)
{
    qat_model_set_calibrating(c->m, 1);
    ptq_pass(c, 1, qat_model_num_layers(c->m) - 1, c->cfg->train.batch_size, NULL, NULL);
    qat_model_set_calibrating(c->m, 0);
}

/* Batch statistics of the quantized model (the folded-BN training path QAT
 * used), averaged over the calibration batches: each training-mode forward
 * moves the running statistics by momentum m towards the batch's, from
 * which the batch's are recovered and the running ones put back, so every
 * batch sees the same folding. Observers stay frozen; dropout, as in
 * training mode, is on (AIMET's re-estimation does the same). */
int ptq_bn_reestimate(ptq_ctx *c)
{
    qat_model *m = c->m;
    int nbn = 0;
    size_t total = 0;
    for (int i = 0; i < qat_model_num_layers(m); i++) {
        qat_layer *l = qat_model_layer(m, i);
        if (ptq_is_compute(l) && l->running_mean) {
            nbn++;
            total += 2 * (size_t)l->out_c;
        }
    }
    double *sum = nbn ? calloc(total, sizeof *sum) : NULL;
    float *prev = nbn ? malloc(total * sizeof *prev) : NULL;
    if (!sum || !prev) {
        free(sum);
        free(prev);
        return 0;
    }
    qat_model_set_observers_frozen(m, 1);
    qat_model_set_quant_active(m, 1);
    qat_tape_set_grad_enabled(c->t, 0);
    qat_tape_set_training(c->t, 1);
    int B = c->cfg->train.batch_size, batches = 0;
    for (int b = 0; b < c->n; b += B, batches++) {
        int n = c->n - b < B ? c->n - b : B;
        size_t o = 0;
        for (int i = 0; i < qat_model_num_layers(m); i++) { /* save */
            qat_layer *l = qat_model_layer(m, i);
            if (!ptq_is_compute(l) || !l->running_mean)
                continue;
            memcpy(prev + o, l->running_mean, (size_t)l->out_c * sizeof(float));
            memcpy(prev + o + l->out_c, l->running_var, (size_t)l->out_c * sizeof(float));
            o += 2 * (size_t)l->out_c;
        }
        qat_tape_reset(c->t);
        qat_model_forward_taps(m, c->t, c->images + (size_t)b * c->isz, n,
                               qat_model_num_layers(m) - 1, NULL);
        o = 0;
        for (int i = 0; i < qat_model_num_layers(m); i++) { /* recover the batch's, restore */
            qat_layer *l = qat_model_layer(m, i);
            if (!ptq_is_compute(l) || !l->running_mean)
                continue;
            double mom = l->cfg->bn_momentum;
            float *run[2] = {l->running_mean, l->running_var};
            for (int k = 0; k < 2; k++)
                for (int ch = 0; ch < l->out_c; ch++) {
                    size_t j = o + (size_t)k * l->out_c + (size_t)ch;
                    sum[j] += ((double)run[k][ch] - (1.0 - mom) * prev[j]) / mom;
                    run[k][ch] = prev[j];
                }
            o += 2 * (size_t)l->out_c;
        }
    }
    size_t o = 0;
    for (int i = 0; i < qat_model_num_layers(m); i++) {
        qat_layer *l = qat_model_layer(m, i);
        if (!ptq_is_compute(l) || !l->running_mean)
            continue;
        for (int ch = 0; ch < l->out_c; ch++) {
            l->running_mean[ch] = (float)(sum[o + (size_t)ch] / batches);
            float v = (float)(sum[o + (size_t)l->out_c + (size_t)ch] / batches);
            l->running_var[ch] = v > 0.0f ? v : 0.0f;
        }
        o += 2 * (size_t)l->out_c;
    }
    qat_tape_reset(c->t);
    qat_tape_set_training(c->t, 0);
    qat_model_set_observers_frozen(m, 0);
    free(sum);
    free(prev);
    return nbn;
}

void ptq_quant_bias(const qat_layer *l, float *out)
{
    const qat_layer_quant *q = &l->q;
    for (int ch = 0; ch < l->out_c; ch++)
        out[ch] = q->acc_scale[ch] *
                  (float)qat_quantize_bias(l->b_eff[ch], q->acc_scale[ch], q->bias_limit);
}
