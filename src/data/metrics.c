/* How well outputs fit a dataset's targets: the measures every tool reports
 * for a regression (training, the run's integer evaluation, qat-infer), so
 * they are computed one way. */
#include <math.h>
#include <stdlib.h>

#include "qat/data.h"

void qat_dataset_regression_metrics(const qat_dataset *d, const float *outputs,
                                    qat_regression_metrics *out)
{
    size_t k = (size_t)d->target_dim, n = d->n;
    out->mse = out->mae = out->r2 = NAN;
    if (!d->targets || n == 0 || k == 0)
        return;
    double *mean = calloc(k, sizeof *mean);
    QAT_ASSERT(mean != NULL);
    for (size_t i = 0; i < n; i++) {
        const float *t = d->targets + (size_t)(d->index ? d->index[i] : i) * k;
        for (size_t j = 0; j < k; j++)
            mean[j] += t[j];
    }
    for (size_t j = 0; j < k; j++)
        mean[j] /= (double)n;
    double sse = 0, sae = 0, sst = 0;
    for (size_t i = 0; i < n; i++) {
        const float *t = d->targets + (size_t)(d->index ? d->index[i] : i) * k;
        for (size_t j = 0; j < k; j++) {
            double e = (double)outputs[i * k + j] - (double)t[j];
            sse += e * e;
            sae += fabs(e);
            sst += ((double)t[j] - mean[j]) * ((double)t[j] - mean[j]);
        }
    }
    free(mean);
    out->mse = sse / (double)(n * k);
    out->mae = sae / (double)(n * k);
    /* R^2 over all outputs: 1 - SSE / SST, SST around each output's mean;
     * undefined (NaN) when the targets do not vary */
    out->r2 = sst > 0 ? 1.0 - sse / sst : NAN;
}
