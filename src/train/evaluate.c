/* Accuracy (classification) or MSE, MAE and R^2 (regression) of the
 * training-engine model, float or fake-quant, over a dataset. (The integer
 * runtime's is the run pipeline's, src/run/.) */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "qat/train.h"

static int argmax_f(const float *z, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (z[i] > z[best])
            best = i;
    return best;
}

qat_status qat_evaluate_set(qat_model *m, qat_tape *t, const qat_dataset *d, int batch,
                            float *outputs, uint8_t *pred, qat_eval *res, qat_error *err)
{
    res->accuracy = NAN;
    res->reg = (qat_regression_metrics){NAN, NAN, NAN};
    int is_float = qat_dataset_type(d) == QAT_DATA_F32, K = qat_model_num_outputs(m);
    size_t isz = qat_dataset_image_size(d) * (is_float ? sizeof(float) : 1);
    void *in = malloc((size_t)batch * isz);
    uint8_t *labels = malloc((size_t)batch);
    float *own = NULL;
    if (d->targets && !outputs)
        outputs = own = malloc((size_t)d->n * (size_t)K * sizeof(float));
    if (!in || !labels || (d->targets && !outputs)) {
        free(in);
        free(labels);
        free(own);
        return qat_fail(err, QAT_ENOMEM, "out of memory evaluating %u examples", d->n);
    }
    int was_training = qat_tape_training(t), was_grad = qat_tape_grad_enabled(t);
    qat_tape_set_training(t, 0);
    qat_tape_set_grad_enabled(t, 0);
    size_t correct = 0;
    for (uint32_t b = 0; b < d->n; b += (uint32_t)batch) {
        int n = (int)(d->n - b < (uint32_t)batch ? d->n - b : (uint32_t)batch);
        qat_tape_reset(t);
        qat_dataset_batch(d, NULL, b, n, in, labels, NULL);
        qat_tensor *y = is_float ? qat_model_forward_f32(m, t, in, n)
                                 : qat_model_forward(m, t, in, n);
        if (outputs)
            memcpy(outputs + (size_t)b * K, y->data, (size_t)n * (size_t)K * sizeof(float));
        if (!d->labels)
            continue;
        for (int i = 0; i < n; i++) {
            int p = argmax_f(y->data + (size_t)i * K, K);
            correct += p == labels[i];
            if (pred)
                pred[b + (uint32_t)i] = (uint8_t)p;
        }
    }
    qat_tape_reset(t);
    qat_tape_set_training(t, was_training);
    qat_tape_set_grad_enabled(t, was_grad);
    if (d->labels)
        res->accuracy = d->n ? (double)correct / d->n : 0.0;
    if (d->targets)
        qat_dataset_regression_metrics(d, outputs, &res->reg);
    free(in);
    free(labels);
    free(own);
    return QAT_OK;
}

double qat_evaluate(qat_model *m, qat_tape *t, const qat_dataset *d, int batch, uint8_t *pred)
{
    qat_eval r;
    qat_error err;
    return qat_evaluate_set(m, t, d, batch, NULL, pred, &r, &err) == QAT_OK ? r.accuracy : NAN;
}
