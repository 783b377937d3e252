/* MSE-optimal clipping (observer kind mse): of the clipping ranges
 * alpha * [lo, hi] (the observed range widened to include 0) on the grid
 * alpha = 1.00, 0.99, ..., 0.20, the one whose quantization error
 * sum (x - dequant(quant(x)))^2 is smallest; ties keep the wider range.
 * Weights are scored exactly, value by value, per tensor or per output
 * channel; activations on a 2048-bin histogram of the batch (bin centres),
 * which costs the same for any batch size.
 *
 * Why contraction is off: the score decides a scale, and qat-export on
 * another machine must pick the same one from the same checkpoint. Without
 * fused multiply-adds the vector clones compute exactly what the scalar
 * code does (fixed lanes, fixed reduction order), on every ISA. The pragma
 * that turns it off (GCC; clang does not contract across statements) is
 * clones.h's. */
#include "clones.h" /* first: its pragma must precede every inline function */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "qat/fixedpoint.h"
#include "qat/quant.h"

#define LANES 16
#define HIST_BINS 2048

float qat_mse_grid_ratio(int j) { return 1.0f - 0.01f * (float)j; }

/* sum over x of (x - s (clamp(round(x / s) + z) - z))^2, in LANES partial
 * sums reduced in order: the same bits from every clone. */
QUANT_CLONES static double
sq_error(const float *restrict x, size_t n, float s, int32_t z, int32_t qmin, int32_t qmax)
{
    float part[LANES] = {0};
    size_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int j = 0; j < LANES; j++) {
            float q = (float)(qat_fp_quantize_vec(x[i + j], s, z, qmin, qmax) - z);
            float e = x[i + j] - s * q;
            part[j] += e * e;
        }
    for (int j = 0; i < n; i++, j++) {
        float q = (float)(qat_fp_quantize_vec(x[i], s, z, qmin, qmax) - z);
        float e = x[i] - s * q;
        part[j] += e * e;
    }
    double sum = 0;
    for (int j = 0; j < LANES; j++)
        sum += part[j];
    return sum;
}

/* The grid's best ratio for values x[0..n) with range [lo, hi] (0 inside). */
static float best_weight_ratio(const float *x, size_t n, float lo, float hi, int bits,
                               qat_quant_scheme scheme)
{
    float best_a = 1.0f;
    double best = INFINITY;
    for (int j = 0; j < QAT_MSE_GRID; j++) {
        float a = qat_mse_grid_ratio(j);
        qat_qparams p = qat_weight_qparams_from_range(a * lo, a * hi, bits, scheme);
        double e = sq_error(x, n, p.scale, p.zero_point, p.qmin, p.qmax);
        if (e < best) {
            best = e;
            best_a = a;
        }
    }
    return best_a;
}

void qat_weight_ranges_mse(const float *w, int C, size_t k, int per_channel, int bits,
                           qat_quant_scheme scheme, float *lo, float *hi)
{
    int rows = per_channel ? C : 1;
    size_t len = per_channel ? k : (size_t)C * k;
    for (int r = 0; r < rows; r++) {
        const float *row = w + (size_t)r * len;
        float a = 0.0f, b = 0.0f; /* widened to include 0, as the quantizer does */
        for (size_t i = 0; i < len; i++) {
            a = row[i] < a ? row[i] : a;
            b = row[i] > b ? row[i] : b;
        }
        float t = a < b ? best_weight_ratio(row, len, a, b, bits, scheme) : 1.0f;
        lo[r] = t * a;
        hi[r] = t * b;
    }
}

void qat_values_range_mse(const float *x, size_t n, int bits, qat_quant_scheme scheme, float *lo,
                          float *hi)
{
    float a = 0.0f, b = 0.0f;
    for (size_t i = 0; i < n; i++) {
        a = x[i] < a ? x[i] : a;
        b = x[i] > b ? x[i] : b;
    }
    *lo = a;
    *hi = b;
    if (!(b > a))
        return;
    _Static_assert(HIST_BINS <= 4096, "histogram on the stack");
    uint32_t hist[HIST_BINS];
    memset(hist, 0, sizeof hist);
    float w = (b - a) / HIST_BINS;
    for (size_t i = 0; i < n; i++) {
        int k = (int)((x[i] - a) / w);
        hist[k < 0 ? 0 : k >= HIST_BINS ? HIST_BINS - 1 : k]++;
    }
    float best_a = 1.0f;
    double best = INFINITY;
    for (int j = 0; j < QAT_MSE_GRID; j++) {
        float r = qat_mse_grid_ratio(j);
        qat_qparams p = qat_qparams_from_range(r * a, r * b, bits, scheme);
        double e = 0;
        for (int k = 0; k < HIST_BINS; k++) {
            if (!hist[k])
                continue;
            float c = a + w * ((float)k + 0.5f);
            float q = (float)(qat_fp_quantize_vec(c, p.scale, p.zero_point, p.qmin, p.qmax) -
                              p.zero_point);
            double d = (double)c - (double)p.scale * q;
            e += (double)hist[k] * d * d;
        }
        if (e < best) {
            best = e;
            best_a = r;
        }
    }
    *lo = best_a * a;
    *hi = best_a * b;
}
