/* AdaRound (Nagel et al. 2020, "Up or Down? Adaptive Rounding for
 * Post-Training Quantization"): per layer, learn for every weight whether
 * it rounds down or up, so that the quantized layer reproduces the float
 * layer's outputs on calibration data. The choice is relaxed to the
 * rectified sigmoid h(v) and pushed to 0 or 1 by a regulariser whose
 * exponent beta is annealed from 20 to 2.
 *
 * The loss and its gradient are written out by hand (two GEMMs and
 * elementwise maps): the per-layer problem is small and fixed, so the tape
 * would only add its bookkeeping. tests/ptq checks the gradient against
 * central differences. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "qat/fixedpoint.h"
#include "qat/ops.h"
#include "qat/ptq.h"

#define ZETA 1.1f
#define GAMMA (-0.1f)
#define LR 0.01f
#define LAMBDA 0.01f
#define MAX_BATCH 256

enum { FREE = 0, FIXED = 1, PINNED = 2 };

static float sigmoidf(float v) { return 1.0f / (1.0f + expf(-v)); }

/* h(v) and dh/dv (0 where the rectification clips). */
static float rect_sigmoid(float v, float *dh)
{
    float s = sigmoidf(v), h = s * (ZETA - GAMMA) + GAMMA;
    if (h <= 0.0f || h >= 1.0f) {
        if (dh)
            *dh = 0.0f;
        return h <= 0.0f ? 0.0f : 1.0f;
    }
    if (dh)
        *dh = (ZETA - GAMMA) * s * (1.0f - s);
    return h;
}

static int32_t clamp32(int32_t v, int32_t lo, int32_t hi) { return v < lo ? lo : v > hi ? hi : v; }

/* The round-to-nearest code of weight i (the quantizer's own rounding). */
static int32_t nearest(const qat_adaround *a, size_t i)
{
    int c = (int)(i / a->K);
    return qat_fp_quantize(a->w[i], a->scale[c], a->zp[c], a->qmin, a->qmax);
}

qat_status qat_adaround_init(qat_adaround *a, qat_error *err)
{
    size_t n = (size_t)a->C * a->K;
    a->v = malloc((n + 1) * sizeof *a->v);
    a->down = malloc((n + 1) * sizeof *a->down);
    a->kind = malloc(n + 1);
    a->wq = malloc((n + 1) * sizeof *a->wq);
    a->dwq = malloc((n + 1) * sizeof *a->dwq);
    a->h = malloc((n + 1) * sizeof *a->h);
    a->dh = malloc((n + 1) * sizeof *a->dh);
    if (!a->v || !a->down || !a->kind || !a->wq || !a->dwq || !a->h || !a->dh) {
        qat_adaround_free(a);
        return qat_fail(err, QAT_ENOMEM, "out of memory for AdaRound (%zu weights)", n);
    }
    int groups = a->per_tensor ? 1 : a->C;
    size_t glen = a->per_tensor ? n : a->K;
    for (int g = 0; g < groups; g++) {
        const float *w = a->w + (size_t)g * glen;
        size_t amin = 0, amax = 0;
        for (size_t i = 1; i < glen; i++) {
            amin = w[i] < w[amin] ? i : amin;
            amax = w[i] > w[amax] ? i : amax;
        }
        float lo = w[amin] < 0.0f ? w[amin] : 0.0f, hi = w[amax] > 0.0f ? w[amax] : 0.0f;
        for (size_t j = 0; j < glen; j++) {
            size_t i = (size_t)g * glen + j;
            int c = (int)(i / a->K);
            float s = a->scale[c];
            int32_t z = a->zp[c];
            a->v[i] = 0.0f;
            /* the extremes set the observed range and zeros are pruned weights:
             * both keep their float value */
            if (j == amin || j == amax || w[j] == 0.0f) {
                a->kind[i] = PINNED;
                a->down[i] = nearest(a, i);
                continue;
            }
            /* codes whose values stay inside [lo, hi] (a thousandth of a step
             * of slack for float rounding), so the range does not move */
            int32_t blo = clamp32((int32_t)ceilf(lo / s + (float)z - 1e-3f), a->qmin, a->qmax);
            int32_t bhi = clamp32((int32_t)floorf(hi / s + (float)z + 1e-3f), a->qmin, a->qmax);
            float t = w[j] / s + (float)z;
            float fl = floorf(t);
            int32_t down = clamp32((int32_t)fl, blo, bhi);
            int32_t up = clamp32((int32_t)fl + 1, blo, bhi);
            if (down == up || fl < (float)blo || fl + 1.0f > (float)bhi) {
                a->kind[i] = FIXED;
                a->down[i] = t - fl >= 0.5f ? up : down;
                continue;
            }
            a->kind[i] = FREE;
            a->down[i] = down;
            float p = (t - fl - GAMMA) / (ZETA - GAMMA); /* sigmoid(v) giving h = frac */
            a->v[i] = logf(p / (1.0f - p));
        }
    }
    return QAT_OK;
}

void qat_adaround_free(qat_adaround *a)
{
    free(a->v);
    free(a->down);
    free(a->kind);
    free(a->wq);
    free(a->dwq);
    free(a->h);
    free(a->dh);
    a->v = a->wq = a->dwq = a->h = a->dh = NULL;
    a->down = NULL;
    a->kind = NULL;
}

/* y = X wq^T + bias, [B, C]. */
static void layer_out(const qat_adaround *a, qat_team *team, const float *X, int B, float *y)
{
    qat_sgemm_rows(team, 0, 1, B, a->C, (int)a->K, 1.0f, X, (int)a->K, a->wq, (int)a->K, 0.0f,
                   y, a->C);
    for (int r = 0; r < B; r++)
        for (int c = 0; c < a->C; c++)
            y[(size_t)r * a->C + c] += a->bias[c];
}

double qat_adaround_objective(qat_adaround *a, qat_team *team, const float *X, const float *T,
                              int B, float beta, float lambda, float *dv, float *y)
{
    for (int c = 0; c < a->C; c++) /* soft weights; h and dh/dv kept for the gradient */
        for (size_t i = (size_t)c * a->K; i < (size_t)(c + 1) * a->K; i++) {
            float q = (float)(a->down[i] - a->zp[c]);
            a->h[i] = a->dh[i] = 0.0f;
            if (a->kind[i] == FREE) {
                a->h[i] = rect_sigmoid(a->v[i], &a->dh[i]);
                q += a->h[i];
            }
            a->wq[i] = a->scale[c] * q;
        }
    layer_out(a, team, X, B, y);
    double rec = 0;
    for (size_t i = 0; i < (size_t)B * a->C; i++) {
        float z = a->relu && y[i] < 0.0f ? 0.0f : y[i];
        float t = a->relu && T[i] < 0.0f ? 0.0f : T[i];
        float d = z - t;
        rec += (double)d * d;
        /* y becomes the gradient of the mean squared error in y */
        y[i] = a->relu && y[i] <= 0.0f ? 0.0f : 2.0f * d / (float)B;
    }
    if (dv) /* dwq [C, K] = G^T X, split over the K columns */
        qat_sgemm_cols(team, 1, 0, a->C, (int)a->K, B, 1.0f, y, a->C, X, (int)a->K, 0.0f, a->dwq,
                       (int)a->K);
    double reg = 0;
    for (int c = 0; c < a->C; c++)
        for (size_t i = (size_t)c * a->K; i < (size_t)(c + 1) * a->K; i++) {
            /* h is 0 or 1 where it clips: no regulariser left, no gradient */
            float g = 0.0f;
            if (a->dh[i] != 0.0f) {
                if (lambda > 0.0f) {
                    float u = 2.0f * a->h[i] - 1.0f, au = fabsf(u);
                    float p = powf(au, beta - 1.0f); /* |u|^(beta - 1), |u|^beta from it */
                    reg += 1.0 - (double)p * au;
                    g = lambda * -beta * p * 2.0f * (u > 0 ? 1.0f : u < 0 ? -1.0f : 0.0f);
                }
                if (dv)
                    g += a->dwq[i] * a->scale[c];
            }
            if (dv)
                dv[i] = g * a->dh[i];
        }
    return rec / B + lambda * reg;
}

void qat_adaround_codes(const qat_adaround *a, int32_t *codes)
{
    size_t n = (size_t)a->C * a->K;
    for (size_t i = 0; i < n; i++)
        codes[i] = a->down[i] + (a->kind[i] == FREE && rect_sigmoid(a->v[i], NULL) >= 0.5f);
}

void qat_adaround_nearest(const qat_adaround *a, int32_t *codes)
{
    size_t n = (size_t)a->C * a->K;
    for (size_t i = 0; i < n; i++)
        codes[i] = nearest(a, i);
}

double qat_adaround_error(const qat_adaround *a, qat_team *team, const int32_t *codes,
                          const float *X, const float *T, size_t R, float *y)
{
    for (int c = 0; c < a->C; c++)
        for (size_t i = (size_t)c * a->K; i < (size_t)(c + 1) * a->K; i++)
            a->wq[i] = a->scale[c] * (float)(codes[i] - a->zp[c]);
    double e = 0;
    /* in slices, so y never needs more than MAX_BATCH * 16 rows */
    for (size_t r0 = 0; r0 < R; r0 += 16 * MAX_BATCH) {
        int B = (int)(R - r0 < 16 * MAX_BATCH ? R - r0 : 16 * MAX_BATCH);
        layer_out(a, team, X + r0 * a->K, B, y);
        for (size_t i = 0; i < (size_t)B * a->C; i++) {
            float z = a->relu && y[i] < 0.0f ? 0.0f : y[i];
            float t = T[r0 * a->C + i];
            t = a->relu && t < 0.0f ? 0.0f : t;
            e += (double)(z - t) * (z - t);
        }
    }
    return R ? e / (double)R : 0.0;
}

/* Rows of X and T in a random order, in place: batches are then windows. */
static void shuffle_rows(float *X, float *T, size_t R, size_t K, size_t C, qat_rng *rng, float *tmp)
{
    for (size_t i = R; i > 1; i--) {
        size_t j = qat_rng_below(rng, (uint32_t)i);
        if (j == i - 1)
            continue;
        float *a[2] = {X + (i - 1) * K, T + (i - 1) * C}, *b[2] = {X + j * K, T + j * C};
        size_t len[2] = {K, C};
        for (int k = 0; k < 2; k++) {
            memcpy(tmp, a[k], len[k] * sizeof(float));
            memcpy(a[k], b[k], len[k] * sizeof(float));
            memcpy(b[k], tmp, len[k] * sizeof(float));
        }
    }
}

qat_status qat_adaround_optimize(qat_adaround *a, qat_team *team, float *X, float *T, size_t R,
                                 int iterations, qat_rng *rng, qat_error *err)
{
    size_t n = (size_t)a->C * a->K, K = a->K, C = (size_t)a->C;
    int B = R < MAX_BATCH ? (int)R : MAX_BATCH;
    float *m1 = calloc(n + 1, sizeof *m1), *m2 = calloc(n + 1, sizeof *m2);
    float *dv = malloc((n + 1) * sizeof *dv), *tmp = malloc((K + C + 1) * sizeof *tmp);
    float *y = malloc(((size_t)B * C + 1) * sizeof *y);
    qat_status st = QAT_OK;
    if (!m1 || !m2 || !dv || !tmp || !y) {
        st = qat_fail(err, QAT_ENOMEM, "out of memory for AdaRound");
        goto done;
    }
    shuffle_rows(X, T, R, K, C, rng, tmp);
    int warm = iterations / 5;
    const float b1 = 0.9f, b2 = 0.999f;
    double p1 = 1.0, p2 = 1.0;
    size_t at = 0; /* the next window's first row */
    for (int it = 0; it < iterations; it++) {
        int nb = R - at < (size_t)B ? (int)(R - at) : B;
        float lambda = it < warm ? 0.0f : LAMBDA, beta = 2.0f;
        if (it >= warm && iterations > warm) {
            double rel = (double)(it - warm) / (double)(iterations - warm);
            beta = (float)(2.0 + 0.5 * (20.0 - 2.0) * (1.0 + cos(rel * M_PI)));
        }
        qat_adaround_objective(a, team, X + at * K, T + at * C, nb, beta, lambda, dv, y);
        at = at + (size_t)nb == R ? 0 : at + (size_t)nb;
        p1 *= b1;
        p2 *= b2;
        float c1 = (float)(1.0 / (1.0 - p1)), c2 = (float)(1.0 / (1.0 - p2));
        for (size_t i = 0; i < n; i++) {
            if (a->kind[i] != FREE)
                continue;
            m1[i] = b1 * m1[i] + (1.0f - b1) * dv[i];
            m2[i] = b2 * m2[i] + (1.0f - b2) * dv[i] * dv[i];
            a->v[i] -= LR * (m1[i] * c1) / (sqrtf(m2[i] * c2) + 1e-8f);
        }
    }
done:
    free(m1);
    free(m2);
    free(dv);
    free(tmp);
    free(y);
    return st;
}
