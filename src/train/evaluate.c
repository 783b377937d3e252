/* Accuracy of the training-engine model (float or fake-quant) and of the
 * integer runtime over a dataset. */
#include <stdlib.h>
#include <string.h>

#include "qat/clock.h"
#include "qat/train.h"

static int argmax_f(const float *z, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (z[i] > z[best])
            best = i;
    return best;
}

double qat_evaluate(qat_model *m, qat_tape *t, const qat_dataset *d, int batch, uint8_t *pred)
{
    size_t isz = qat_dataset_image_size(d);
    int was_training = qat_tape_training(t), was_grad = qat_tape_grad_enabled(t);
    qat_tape_set_training(t, 0);
    qat_tape_set_grad_enabled(t, 0);
    size_t correct = 0;
    for (uint32_t b = 0; b < d->n; b += (uint32_t)batch) {
        int n = (int)(d->n - b < (uint32_t)batch ? d->n - b : (uint32_t)batch);
        qat_tape_reset(t);
        qat_tensor *logits = qat_model_forward(m, t, d->images + (size_t)b * isz, n);
        int C = logits->shape[1];
        for (int i = 0; i < n; i++) {
            int p = argmax_f(logits->data + (size_t)i * C, C);
            correct += p == d->labels[b + (uint32_t)i];
            if (pred)
                pred[b + (uint32_t)i] = (uint8_t)p;
        }
    }
    qat_tape_reset(t);
    qat_tape_set_training(t, was_training);
    qat_tape_set_grad_enabled(t, was_grad);
    return d->n ? (double)correct / d->n : 0.0;
}

qat_status qat_evaluate_int8(const qat_rt_model *m, const qat_dataset *d, int threads, int batch,
                             uint8_t *pred, double *accuracy, double *images_per_second,
                             qat_error *err)
{
    qat_rt_options o = {.threads = threads, .max_batch = batch};
    qat_rt_session *s;
    qat_status st = qat_rt_session_create(m, &o, &s, err);
    if (st != QAT_OK)
        return st;
    int C = qat_rt_model_num_classes(m);
    size_t isz = qat_dataset_image_size(d);
    int8_t *logits = malloc((size_t)batch * (size_t)C);
    if (!logits) {
        qat_rt_session_destroy(s);
        return qat_fail(err, QAT_ENOMEM, "out of memory");
    }
    size_t correct = 0;
    double t0 = qat_clock_seconds();
    for (uint32_t b = 0; b < d->n && st == QAT_OK; b += (uint32_t)batch) {
        int n = (int)(d->n - b < (uint32_t)batch ? d->n - b : (uint32_t)batch);
        st = qat_rt_run(s, d->images + (size_t)b * isz, n, logits, err);
        for (int i = 0; st == QAT_OK && i < n; i++) {
            int p = qat_rt_argmax(logits + (size_t)i * C, C);
            correct += p == d->labels[b + (uint32_t)i];
            if (pred)
                pred[b + (uint32_t)i] = (uint8_t)p;
        }
    }
    double dt = qat_clock_seconds() - t0;
    free(logits);
    qat_rt_session_destroy(s);
    if (st != QAT_OK)
        return st;
    *accuracy = d->n ? (double)correct / d->n : 0.0;
    if (images_per_second)
        *images_per_second = dt > 0 ? d->n / dt : 0.0;
    return QAT_OK;
}
