/* Observers: the range of a batch (values, weights per channel, or the
 * accumulators of the exact path) and its running fold over steps. */
#include "clones.h" /* first: its pragma must precede every inline function */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "qat/quant.h"
#include "qat/select.h"
#include "qat/team.h"
#include "quant_internal.h"

void qat_observer_update(qat_observer *o, qat_observer_kind kind, float batch_lo, float batch_hi,
                         float decay)
{
    if (!o->initialized) {
        o->lo = batch_lo;
        o->hi = batch_hi;
        o->initialized = 1;
        return;
    }
    if (kind == QAT_OBS_MINMAX) {
        o->lo = batch_lo < o->lo ? batch_lo : o->lo;
        o->hi = batch_hi > o->hi ? batch_hi : o->hi;
        return;
    }
    o->lo = decay * o->lo + (1.0f - decay) * batch_lo;
    o->hi = decay * o->hi + (1.0f - decay) * batch_hi;
}

/* Smallest and largest of row[0..n): the first of equal values wins, as a
 * scalar scan gives (which matters only for -0 against +0). 32 lanes of
 * compare-and-select vectorise (several registers, so the chains of
 * dependent compares overlap); a result of zero, whose sign the lanes'
 * order could change, is the first zero of the row (activations after a
 * relu: found at once). */
QUANT_CLONES static void
row_extremes(const float *restrict row, size_t n, float *lo, float *hi)
{
    enum { L = 32 };
    float a[L], b[L];
    for (int j = 0; j < L; j++)
        a[j] = INFINITY, b[j] = -INFINITY;
    size_t i = 0;
    for (; i + L <= n; i += L)
        for (int j = 0; j < L; j++) {
            float x = row[i + (size_t)j];
            a[j] = x < a[j] ? x : a[j];
            b[j] = x > b[j] ? x : b[j];
        }
    for (; i < n; i++) {
        a[0] = row[i] < a[0] ? row[i] : a[0];
        b[0] = row[i] > b[0] ? row[i] : b[0];
    }
    float mn = a[0], mx = b[0];
    for (int j = 1; j < L; j++) {
        mn = a[j] < mn ? a[j] : mn;
        mx = b[j] > mx ? b[j] : mx;
    }
    if (mn == 0.0f || mx == 0.0f) {
        /* an extreme of zero: the scan in order keeps the first zero it
         * meets (-0 and +0 compare equal), whichever its sign, and so do
         * both ends (no value below a zero minimum or above a zero maximum
         * came before it) */
        for (i = 0; row[i] != 0.0f; i++)
            ;
        mn = mn == 0.0f ? row[i] : mn;
        mx = mx == 0.0f ? row[i] : mx;
    }
    *lo = mn;
    *hi = mx;
}

#define HIST_BINS 2048

/* Percentiles by histogram: the edge of the bin where the cumulative count
 * crosses the share. Bin edges, not interpolation: cheap, and within one bin
 * width ((hi - lo) / 2048) of the exact order statistic. */
void qat_values_range(const float *x, size_t n, qat_observer_kind kind, float percentile,
                      float *lo, float *hi)
{
    float a, b;
    /* the same scan as the weights' rows (a single-accumulator loop here
     * was a dependent chain per value: 7.9% of a DS-CNN QAT step) */
    row_extremes(x, n, &a, &b);
    *lo = a;
    *hi = b;
    if (kind != QAT_OBS_PERCENTILE || percentile >= 100.0f || !(b > a))
        return;
    uint32_t hist[HIST_BINS];
    memset(hist, 0, sizeof hist);
    float w = (b - a) / HIST_BINS;
    for (size_t i = 0; i < n; i++) {
        int k = (int)((x[i] - a) / w);
        hist[k < 0 ? 0 : k >= HIST_BINS ? HIST_BINS - 1 : k]++;
    }
    double tail = (1.0 - (double)percentile / 100.0) * (double)n;
    double c = 0;
    int k;
    for (k = 0; k < HIST_BINS - 1 && c + hist[k] <= tail; k++)
        c += hist[k];
    *lo = a + w * (float)k;
    c = 0;
    for (k = HIST_BINS - 1; k > 0 && c + hist[k] <= tail; k--)
        c += hist[k];
    *hi = a + w * (float)(k + 1);
    if (*lo > 0.0f && a <= 0.0f)
        *lo = 0.0f;
}

static void weight_ranges(const float *w, int C, size_t k, int per_channel, qat_observer_kind kind,
                          float percentile, qat_quant_scheme scheme, int skip_zeros, float *lo,
                          float *hi, float *scratch)
{
    int rows = per_channel ? C : 1;
    size_t len = per_channel ? k : (size_t)C * k;
    for (int r = 0; r < rows; r++) {
        const float *row = w + (size_t)r * len;
        if (kind != QAT_OBS_PERCENTILE || percentile >= 100.0f) {
            row_extremes(row, len, &lo[r], &hi[r]);
            continue;
        }
        /* Percentile of the magnitudes (symmetric) or of the values. */
        size_t n = 0;
        for (size_t i = 0; i < len; i++)
            if (!skip_zeros || row[i] != 0.0f)
                scratch[n++] = scheme == QAT_SCHEME_SYMMETRIC ? fabsf(row[i]) : row[i];
        if (n == 0) { /* a fully pruned row */
            lo[r] = hi[r] = 0.0f;
            continue;
        }
        size_t top = (size_t)ceil((double)percentile / 100.0 * (double)n);
        top = top == 0 ? 0 : top - 1;
        hi[r] = qat_select_kth(scratch, n, top);
        lo[r] = scheme == QAT_SCHEME_SYMMETRIC ? -hi[r] : qat_select_kth(scratch, n, n - 1 - top);
    }
}

void qat_weight_ranges(const float *w, int C, size_t k, int per_channel, qat_observer_kind kind,
                       float percentile, qat_quant_scheme scheme, float *lo, float *hi,
                       float *scratch)
{
    weight_ranges(w, C, k, per_channel, kind, percentile, scheme, 0, lo, hi, scratch);
}

void qat_weight_ranges_pruned(const float *w, int C, size_t k, int per_channel,
                              qat_observer_kind kind, float percentile, qat_quant_scheme scheme,
                              float *lo, float *hi, float *scratch)
{
    weight_ranges(w, C, k, per_channel, kind, percentile, scheme, 1, lo, hi, scratch);
}

/* ---- accumulator ranges -------------------------------------------------------- */
typedef struct {
    const float *acc;
    const int32_t *bq;
    const float *acc_scale;
    float *vals;    /* PERCENTILE, MSE: the real outputs */
    float *mn, *mx; /* [threads][C] per-channel accumulator extremes */
    size_t rows;
    int C, relu;
} range_ctx;

/* Per-channel extremes of the accumulators: scales are positive, so the
 * real range follows from them, and a min/max over rows vectorises across
 * channels. */
QUANT_CLONES static void
minmax_rows(const float *restrict acc, size_t rows, int C, float *restrict mn, float *restrict mx)
{
    for (size_t r = 0; r < rows; r++) {
        const float *a = acc + r * (size_t)C;
        for (int c = 0; c < C; c++) {
            mn[c] = a[c] < mn[c] ? a[c] : mn[c];
            mx[c] = a[c] > mx[c] ? a[c] : mx[c];
        }
    }
}

static void range_part(void *v, int tid, int nt)
{
    range_ctx *r = v;
    size_t b, e;
    qat_team_range(r->rows, tid, nt, &b, &e);
    float *mn = r->mn + (size_t)tid * r->C, *mx = r->mx + (size_t)tid * r->C;
    for (int c = 0; c < r->C; c++) {
        mn[c] = INFINITY;
        mx[c] = -INFINITY;
    }
    minmax_rows(r->acc + b * (size_t)r->C, e - b, r->C, mn, mx);
    if (r->vals)
        for (size_t row = b; row < e; row++)
            for (int c = 0; c < r->C; c++) {
                size_t i = row * (size_t)r->C + c;
                float x = (float)acc_value(r->acc[i], r->bq[c]) * r->acc_scale[c];
                x = r->relu && x < 0.0f ? 0.0f : x;
                r->vals[i] = r->relu == 2 && x > 6.0f ? 6.0f : x;
            }
}

void qat_acc_range(qat_tape *t, const qat_tensor *acc, const qat_tensor *bias,
                   const float *acc_scale, int32_t bias_limit, int relu, const qat_quant_cfg *qc,
                   float *lo, float *hi)
{
    qat_observer_kind kind = qc->activation_observer;
    int C = acc->shape[acc->ndim - 1];
    int32_t *bq = qat_tape_alloc(t, (size_t)C * sizeof *bq);
    for (int c = 0; c < C; c++)
        bq[c] = bias ? qat_quantize_bias(bias->data[c], acc_scale[c], bias_limit) : 0;
    qat_team *team = qat_tape_team(t);
    int nt = qat_team_threads(team);
    QAT_ASSERT(nt <= MAX_THREADS);
    if (acc->numel < (size_t)nt * QAT_ELEMWISE_GRAIN)
        nt = 1;
    range_ctx *r = qat_tape_alloc(t, sizeof *r);
    r->acc = acc->data;
    r->bq = bq;
    r->acc_scale = acc_scale;
    int values = kind == QAT_OBS_PERCENTILE || kind == QAT_OBS_MSE;
    r->vals = values ? qat_tape_alloc(t, acc->numel * sizeof(float)) : NULL;
    r->mn = qat_tape_alloc(t, (size_t)nt * (size_t)C * sizeof(float));
    r->mx = qat_tape_alloc(t, (size_t)nt * (size_t)C * sizeof(float));
    r->rows = acc->numel / (size_t)C;
    r->C = C;
    r->relu = relu;
    if (nt == 1)
        range_part(r, 0, 1);
    else
        qat_team_run(team, range_part, r);
    *lo = INFINITY;
    *hi = -INFINITY;
    for (int i = 0; i < nt; i++) /* min/max: order cannot change the result */
        for (int c = 0; c < C; c++) {
            size_t k = (size_t)i * C + c;
            if (!(r->mn[k] <= r->mx[k]))
                continue; /* this member saw no rows */
            float a = (float)acc_value(r->mn[k], bq[c]) * acc_scale[c];
            float z = (float)acc_value(r->mx[k], bq[c]) * acc_scale[c];
            *lo = a < *lo ? a : *lo;
            *hi = z > *hi ? z : *hi;
        }
    if (relu) {
        *lo = *lo > 0.0f ? *lo : 0.0f;
        *hi = *hi > 0.0f ? *hi : 0.0f;
    }
    if (relu == 2) { /* relu6 */
        *lo = *lo < 6.0f ? *lo : 6.0f;
        *hi = *hi < 6.0f ? *hi : 6.0f;
    }
    if (kind == QAT_OBS_MSE)
        qat_values_range_mse(r->vals, acc->numel, qc->activation_bits, qc->activation_scheme, lo,
                             hi);
    else if (r->vals)
        qat_values_range(r->vals, acc->numel, kind, qc->percentile, lo, hi);
}
