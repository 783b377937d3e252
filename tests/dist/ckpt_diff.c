/* ckpt_diff A.h5 B.h5 TOL: the largest difference between two
 * checkpoints' parameters and model state (observers, BN statistics),
 * relative to max(1, |a|); exit 0 when it is at most TOL, 1 when larger,
 * 2 when a file does not load or the models differ in size. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "qat/train.h"

static double worst(const float *a, const float *b, size_t n)
{
    double w = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]) / fmax(1.0, fabs((double)a[i]));
        w = d > w || isnan(d) ? d : w;
    }
    return w;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: ckpt_diff A.h5 B.h5 TOL\n");
        return 2;
    }
    qat_model *m[2] = {NULL, NULL};
    qat_error err;
    for (int i = 0; i < 2; i++)
        if (qat_checkpoint_load_model(argv[1 + i], &m[i], &err) != QAT_OK ||
            qat_checkpoint_restore(argv[1 + i], m[i], NULL, NULL, &err) != QAT_OK) {
            fprintf(stderr, "ckpt_diff: %s\n", err.msg);
            return 2;
        }
    size_t np[2], ns[2] = {qat_model_state_size(m[0]), qat_model_state_size(m[1])};
    const float *p0 = qat_model_params(m[0], &np[0]), *p1 = qat_model_params(m[1], &np[1]);
    if (np[0] != np[1] || ns[0] != ns[1]) {
        fprintf(stderr, "ckpt_diff: the models differ in size\n");
        return 2;
    }
    float *s0 = malloc((ns[0] + 1) * sizeof *s0), *s1 = malloc((ns[0] + 1) * sizeof *s1);
    if (!s0 || !s1)
        return 2;
    qat_model_state_save(m[0], s0);
    qat_model_state_save(m[1], s1);
    double wp = worst(p0, p1, np[0]), ws = worst(s0, s1, ns[0]);
    printf("params: %zu, max relative difference %.3g; state: %zu, %.3g\n", np[0], wp, ns[0], ws);
    free(s0);
    free(s1);
    qat_model_destroy(m[0]);
    qat_model_destroy(m[1]);
    double tol = atof(argv[3]);
    return wp <= tol && ws <= tol ? 0 : 1;
}
