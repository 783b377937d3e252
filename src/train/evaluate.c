/* Accuracy of the training-engine model (float or fake-quant) over a
 * dataset. (The integer runtime's is the run pipeline's, src/run/.) */
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
