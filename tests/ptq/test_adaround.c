/* AdaRound's per-layer problem: the hand-written gradient against central
 * differences, and the learned rounding against round-to-nearest. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>

#include "qat/fixedpoint.h"
#include "qat/ptq.h"
#include "qat/quant.h"
#include "qat/team.h"

typedef struct fixture {
    int C;
    size_t K;
    float *w, *bias, *scale;
    int32_t *zp;
    qat_team *team;
} fixture;

/* C rows of K weights ~ N(0, 0.3), symmetric per-channel scales at bits. */
static void make(fixture *f, int C, size_t K, int bits, qat_rng *r)
{
    f->C = C;
    f->K = K;
    f->w = malloc((size_t)C * K * sizeof *f->w);
    f->bias = malloc((size_t)C * sizeof *f->bias);
    f->scale = malloc((size_t)C * sizeof *f->scale);
    f->zp = calloc((size_t)C, sizeof *f->zp);
    for (int c = 0; c < C; c++) {
        float m = 0;
        for (size_t k = 0; k < K; k++) {
            float v = 0.3f * qat_rng_normal(r);
            f->w[(size_t)c * K + k] = v;
            m = fabsf(v) > m ? fabsf(v) : m;
        }
        f->scale[c] = qat_weight_qparams_from_range(-m, m, bits, QAT_SCHEME_SYMMETRIC).scale;
        f->bias[c] = 0.1f * qat_rng_normal(r);
    }
    cr_assert_eq(qat_team_create(1, &f->team, NULL), QAT_OK);
}

static void unmake(fixture *f)
{
    free(f->w);
    free(f->bias);
    free(f->scale);
    free(f->zp);
    qat_team_destroy(f->team);
}

static qat_adaround problem(const fixture *f, int bits, int relu)
{
    int32_t qmin, qmax;
    qat_qrange(bits, 1, &qmin, &qmax);
    return (qat_adaround){.C = f->C, .K = f->K, .w = f->w, .bias = f->bias, .scale = f->scale,
                          .zp = f->zp, .qmin = qmin, .qmax = qmax, .relu = relu};
}

/* X [R, K]: correlated inputs (a shared component per row plus noise),
 * and T = X w^T + bias, the float layer's outputs. With white inputs the
 * output error would be the weights' own and round-to-nearest optimal:
 * AdaRound gains where inputs correlate, as real activations do. */
static void data(const fixture *f, size_t R, qat_rng *r, float *X, float *T)
{
    for (size_t i = 0; i < R; i++) {
        float g = qat_rng_normal(r);
        for (size_t k = 0; k < f->K; k++)
            X[i * f->K + k] = g + 0.5f * qat_rng_normal(r);
    }
    for (size_t i = 0; i < R; i++)
        for (int c = 0; c < f->C; c++) {
            double s = f->bias[c];
            for (size_t k = 0; k < f->K; k++)
                s += (double)X[i * f->K + k] * f->w[(size_t)c * f->K + k];
            T[i * f->C + c] = (float)s;
        }
}

static void check_gradient(int relu)
{
    qat_rng r;
    qat_rng_seed(&r, 7, 1);
    fixture f;
    make(&f, 4, 12, 4, &r);
    if (relu) /* outputs well away from the kink, where differences cannot see it */
        for (int c = 0; c < f.C; c++)
            f.bias[c] = 4.0f;
    enum { B = 16 };
    float X[B * 12], T[B * 4], y[B * 4], dv[4 * 12];
    data(&f, B, &r, X, T);
    for (int i = 0; i < B * 4; i++)
        T[i] += 0.3f * qat_rng_normal(&r); /* a residual for the gradient to push on */
    qat_adaround a = problem(&f, 4, relu);
    cr_assert_eq(qat_adaround_init(&a, NULL), QAT_OK);
    for (size_t i = 0; i < 48; i++) /* interior of the rectified sigmoid */
        a.v[i] = 3.0f * qat_rng_uniform(&r) - 1.5f;
    const float beta = 3.0f, lambda = 0.05f;
    qat_adaround_objective(&a, f.team, X, T, B, beta, lambda, dv, y);
    int checked = 0;
    for (size_t i = 0; i < 48; i++) {
        if (a.kind[i] != 0)
            continue; /* pinned and fixed weights have no rounding to learn */
        float v0 = a.v[i], h = 1e-2f;
        a.v[i] = v0 + h;
        double up = qat_adaround_objective(&a, f.team, X, T, B, beta, lambda, NULL, y);
        a.v[i] = v0 - h;
        double dn = qat_adaround_objective(&a, f.team, X, T, B, beta, lambda, NULL, y);
        a.v[i] = v0;
        double fd = (up - dn) / (2.0 * h);
        cr_assert(fabs(fd - dv[i]) <= 2e-3 * (1.0 + fabs(fd)), "weight %zu: analytic %g, central %g",
                  i, (double)dv[i], fd);
        checked++;
    }
    cr_assert_geq(checked, 30, "most weights are free");
    qat_adaround_free(&a);
    unmake(&f);
}

Test(adaround, gradient_matches_central_differences) { check_gradient(0); }

Test(adaround, gradient_through_the_relu_matches_central_differences) { check_gradient(1); }

Test(adaround, learned_rounding_reconstructs_better_than_nearest)
{
    qat_rng r;
    qat_rng_seed(&r, 11, 1);
    fixture f;
    const int bits = 3;
    make(&f, 8, 64, bits, &r);
    f.w[5] = 0.0f; /* a pruned weight */
    const size_t R = 2048;
    float *X = malloc(R * f.K * sizeof *X), *T = malloc(R * (size_t)f.C * sizeof *T);
    float *y = malloc(4096 * (size_t)f.C * sizeof *y);
    data(&f, R, &r, X, T);
    qat_adaround a = problem(&f, bits, 1);
    cr_assert_eq(qat_adaround_init(&a, NULL), QAT_OK);
    size_t n = (size_t)f.C * f.K;
    int32_t *near = malloc(n * sizeof *near), *learned = malloc(n * sizeof *learned);
    qat_adaround_nearest(&a, near);
    double e0 = qat_adaround_error(&a, f.team, near, X, T, R, y);
    qat_rng opt;
    qat_rng_seed(&opt, 1, 2);
    cr_assert_eq(qat_adaround_optimize(&a, f.team, X, T, R, 400, &opt, NULL), QAT_OK);
    qat_adaround_codes(&a, learned);
    double e1 = qat_adaround_error(&a, f.team, learned, X, T, R, y);
    cr_assert_lt(e1, 0.7 * e0, "learned rounding %g vs nearest %g", e1, e0);
    int flipped = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (int)(i / f.K);
        float t = f.w[i] / f.scale[c];
        /* only ever one of the two neighbours, inside the code range */
        cr_assert(learned[i] == (int32_t)floorf(t) || learned[i] == (int32_t)floorf(t) + 1,
                  "weight %zu: code %d for %g steps", i, learned[i], (double)t);
        cr_assert(learned[i] >= a.qmin && learned[i] <= a.qmax);
        flipped += learned[i] != near[i];
    }
    cr_assert_gt(flipped, 0);
    cr_assert_eq(learned[5], 0, "an exact zero stays zero (pruned weights stay pruned)");
    for (int c = 0; c < f.C; c++) { /* the row's extremes keep round-to-nearest */
        size_t amax = 0;
        for (size_t k = 1; k < f.K; k++)
            amax = f.w[(size_t)c * f.K + k] > f.w[(size_t)c * f.K + amax] ? k : amax;
        cr_assert_eq(learned[(size_t)c * f.K + amax], near[(size_t)c * f.K + amax]);
    }
    free(near);
    free(learned);
    free(X);
    free(T);
    free(y);
    qat_adaround_free(&a);
    unmake(&f);
}
