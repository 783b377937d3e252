/* Every invariant of a model description, checked before anything reads or
 * copies its arrays (docs/FORMAT.md, "What a reader must validate"). The
 * order matters: sizes are proven before arrays are indexed, and the name is
 * proven NUL-terminated before it is printed. */
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qat/fixedpoint.h"
#include "qat/runtime.h"
#include "qat/status.h"

const char *qat_rt_op_name(qat_rt_op op)
{
    switch (op) {
    case QAT_RT_CONV2D: return "conv2d";
    case QAT_RT_LINEAR: return "linear";
    case QAT_RT_MAXPOOL2D: return "maxpool2d";
    case QAT_RT_AVGPOOL2D: return "avgpool2d";
    case QAT_RT_FLATTEN: return "flatten";
    case QAT_RT_ADD: return "add";
    case QAT_RT_CONCAT: return "concat";
    case QAT_RT_GLOBAL_AVGPOOL: return "global_avgpool";
    }
    return NULL;
}

/* The runtime's name for the core's status strings: the shared library
 * exports qat_rt_* only. */
const char *qat_rt_status_name(qat_status s) { return qat_status_name(s); }

/* "layer <i> '<name>': <message>" */
__attribute__((format(printf, 4, 5))) static qat_status
lfail(qat_error *err, int i, const qat_rt_layer_desc *l, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const char *name = memchr(l->name, '\0', QAT_RT_NAME_MAX) ? l->name : "<unterminated>";
    return qat_fail(err, QAT_EINVAL, "layer %d '%s': %s", i, name, msg);
}

static int in_range(long long v, long long lo, long long hi) { return v >= lo && v <= hi; }
static int good_scale(float s) { return isfinite(s) && s > 0.0f; }

#define CHECK_DIM(field)                                                                     \
    do {                                                                                     \
        if (!in_range(l->field, 1, QAT_RT_MAX_DIM))                                          \
            return lfail(err, i, l, #field ": expected in [1, %d], found %d", QAT_RT_MAX_DIM, \
                         l->field);                                                          \
    } while (0)

static qat_status check_shapes(const qat_rt_layer_desc *l, int i, qat_error *err)
{
    CHECK_DIM(in_h);
    CHECK_DIM(in_w);
    CHECK_DIM(in_c);
    CHECK_DIM(out_h);
    CHECK_DIM(out_w);
    CHECK_DIM(out_c);
    /* each dim <= 2^20, so the products fit in 64 bits */
    unsigned long long in = (unsigned long long)l->in_h * (unsigned long long)l->in_w *
                            (unsigned long long)l->in_c;
    unsigned long long out = (unsigned long long)l->out_h * (unsigned long long)l->out_w *
                             (unsigned long long)l->out_c;
    if (in > QAT_RT_MAX_TENSOR)
        return lfail(err, i, l, "input size: expected at most %d values per image, found %llu",
                     QAT_RT_MAX_TENSOR, in);
    if (out > QAT_RT_MAX_TENSOR)
        return lfail(err, i, l, "output size: expected at most %d values per image, found %llu",
                     QAT_RT_MAX_TENSOR, out);
    return QAT_OK;
}

static qat_status check_quant(const qat_rt_layer_desc *l, int i, qat_error *err)
{
    if (!good_scale(l->input_scale))
        return lfail(err, i, l, "input_scale: expected positive and finite, found %g",
                     (double)l->input_scale);
    if (!good_scale(l->output_scale))
        return lfail(err, i, l, "output_scale: expected positive and finite, found %g",
                     (double)l->output_scale);
    if (!in_range(l->input_zero_point, INT8_MIN, INT8_MAX))
        return lfail(err, i, l, "input_zero_point: expected in [-128, 127], found %d",
                     l->input_zero_point);
    if (!in_range(l->output_zero_point, INT8_MIN, INT8_MAX))
        return lfail(err, i, l, "output_zero_point: expected in [-128, 127], found %d",
                     l->output_zero_point);
    return QAT_OK;
}

/* kernel/stride/pad of one axis and the output size they imply. */
static qat_status check_window(const qat_rt_layer_desc *l, int i, const char *axis, int in,
                               int out, int k, int s, int pad, int max_pad, qat_error *err)
{
    if (!in_range(k, 1, QAT_RT_MAX_DIM))
        return lfail(err, i, l, "kernel_%s: expected in [1, %d], found %d", axis, QAT_RT_MAX_DIM,
                     k);
    if (!in_range(s, 1, QAT_RT_MAX_DIM))
        return lfail(err, i, l, "stride_%s: expected in [1, %d], found %d", axis, QAT_RT_MAX_DIM,
                     s);
    if (!in_range(pad, 0, max_pad))
        return lfail(err, i, l, "pad_%s: expected in [0, %d], found %d", axis, max_pad, pad);
    long long span = (long long)in + 2LL * pad;
    if (span < k)
        return lfail(err, i, l, "kernel_%s: kernel %d does not fit input %d with padding %d",
                     axis, k, in, pad);
    long long want = (span - k) / s + 1;
    if (out != want)
        return lfail(err, i, l,
                     "out_%s: expected (in %d + 2*pad %d - kernel %d) / stride %d + 1 = %lld, "
                     "found %d",
                     axis, in, pad, k, s, want, out);
    return QAT_OK;
}

static qat_status check_same_quant(const qat_rt_layer_desc *l, int i, qat_error *err)
{
    if (l->output_scale != l->input_scale)
        return lfail(err, i, l, "output_scale: expected equal to input_scale %.9g, found %.9g",
                     (double)l->input_scale, (double)l->output_scale);
    if (l->output_zero_point != l->input_zero_point)
        return lfail(err, i, l, "output_zero_point: expected equal to input_zero_point %d, found %d",
                     l->input_zero_point, l->output_zero_point);
    return QAT_OK;
}

static int32_t packed_at(const uint8_t *p, size_t idx, int slot, unsigned *raw)
{
    size_t per = (size_t)(8 / slot);
    unsigned mask = (1u << slot) - 1u, sign = 1u << (slot - 1);
    unsigned v = ((unsigned)p[idx / per] >> ((idx % per) * (size_t)slot)) & mask;
    *raw = v;
    return (int32_t)(v ^ sign) - (int32_t)sign;
}

/* Palettized weights (FORMAT.md §10): the codebook's shape and codes, the
 * index stream's length, every index below K, zero padding bits. Reads each
 * index once; allocates nothing. */
static qat_status check_palette(const qat_rt_layer_desc *l, int i, size_t count, qat_error *err)
{
    const int k = l->palette_size, bits = l->weight_bits;
    const int32_t wmin = -(1 << (bits - 1)), wmax = (1 << (bits - 1)) - 1;
    if (!in_range(k, 2, QAT_RT_PALETTE_MAX))
        return lfail(err, i, l, "palette_size: expected in [2, %d] (or 0: not palettized), found %d",
                     QAT_RT_PALETTE_MAX, k);
    if (l->palette_groups != 1 && l->palette_groups != l->out_c)
        return lfail(err, i, l, "palette_groups: expected 1 or out_c %d, found %d", l->out_c,
                     l->palette_groups);
    if (!l->codebook)
        return lfail(err, i, l, "codebook: missing (NULL)");
    if (!l->indices)
        return lfail(err, i, l, "palette_indices: missing (NULL)");
    size_t ncodes = (size_t)l->palette_groups * (size_t)k;
    for (size_t j = 0; j < ncodes; j++)
        if (l->codebook[j] < wmin || l->codebook[j] > wmax)
            return lfail(err, i, l, "codebook[%zu]: expected in [%d, %d] for %d bits, found %d",
                         j, wmin, wmax, bits, l->codebook[j]);
    size_t bytes = qat_rt_palette_index_bytes(count, k);
    if (l->indices_bytes != bytes)
        return lfail(err, i, l,
                     "palette_indices: expected %zu bytes (%zu indices of %d bits), found %zu",
                     bytes, count, qat_rt_palette_index_bits(k), l->indices_bytes);
    const int b = qat_rt_palette_index_bits(k);
    for (size_t j = 0; j < count; j++) {
        unsigned v = qat_rt_palette_index_at(l->indices, j, b);
        if (v >= (unsigned)k)
            return lfail(err, i, l, "palette_indices[%zu]: expected < palette_size %d, found %u",
                         j, k, v);
    }
    size_t used = count * (size_t)b % 8;
    if (used && (l->indices[bytes - 1] >> used))
        return lfail(err, i, l,
                     "palette_indices: padding bits of the last byte must be zero, found 0x%02x",
                     (unsigned)l->indices[bytes - 1]);
    return QAT_OK;
}

static qat_status check_clamp(const qat_rt_layer_desc *l, int i, qat_error *err)
{
    if (!in_range(l->act_min, INT8_MIN, INT8_MAX))
        return lfail(err, i, l, "act_min: expected in [-128, 127], found %d", l->act_min);
    if (!in_range(l->act_max, INT8_MIN, INT8_MAX))
        return lfail(err, i, l, "act_max: expected in [-128, 127], found %d", l->act_max);
    if (l->act_min > l->act_max)
        return lfail(err, i, l, "act_min: expected <= act_max %d, found %d", l->act_max,
                     l->act_min);
    return QAT_OK;
}

/* add, concat, global_avgpool: their multipliers and the output clamp
 * (ARITHMETIC.md §4.1). An add input's multiplier is at most 1/2, a right
 * shift: with the 2^20 scaling each rescaled input stays below 2^28 and
 * their sum in int32, which a left shift there would break. */
static qat_status check_merge_arrays(const qat_rt_layer_desc *l, int i, qat_error *err)
{
    if (!l->multiplier)
        return lfail(err, i, l, "multiplier: missing (NULL)");
    if (!l->shift)
        return lfail(err, i, l, "shift: missing (NULL)");
    for (int k = 0; k < qat_rt_desc_merge_mults(l); k++) {
        int max_shift = l->op == QAT_RT_ADD && k < 2 ? 0 : QAT_SHIFT_MAX;
        if (l->multiplier[k] < 0)
            return lfail(err, i, l, "multiplier[%d]: expected in [0, 2^31), found %d", k,
                         l->multiplier[k]);
        if (!in_range(l->shift[k], QAT_SHIFT_MIN, max_shift))
            return lfail(err, i, l, "shift[%d]: expected in [%d, %d]%s, found %d", k,
                         QAT_SHIFT_MIN, max_shift,
                         max_shift == 0 ? " (an add input is scaled down)" : "", l->shift[k]);
    }
    return check_clamp(l, i, err);
}

/* A float conv2d / linear (FORMAT.md §11): ungrouped, its float32 arrays
 * present and finite (a NaN or infinity would poison every output it
 * touches, silently), a known activation and the output clamp. */
static qat_status check_float(const qat_rt_layer_desc *l, int i, qat_error *err)
{
    if (qat_rt_desc_groups(l) != 1)
        return lfail(err, i, l, "groups: a float layer expects 1, found %d", l->groups);
    if (l->float_act < QAT_RT_FLOAT_ACT_NONE || l->float_act > QAT_RT_FLOAT_ACT_RELU6)
        return lfail(err, i, l, "float_act: expected none(0), relu(1) or relu6(2), found %d",
                     (int)l->float_act);
    unsigned long long k = (unsigned long long)l->kernel_h * (unsigned long long)l->kernel_w *
                           (unsigned long long)l->in_c;
    unsigned long long count = k <= QAT_RT_MAX_WEIGHTS ? k * (unsigned long long)l->out_c : k;
    if (count > QAT_RT_MAX_WEIGHTS)
        return lfail(err, i, l, "float_weights: expected at most %d values, found %llu",
                     QAT_RT_MAX_WEIGHTS, count);
    if (!l->float_weights)
        return lfail(err, i, l, "float_weights: missing (NULL)");
    if (!l->float_bias)
        return lfail(err, i, l, "float_bias: missing (NULL)");
    for (unsigned long long j = 0; j < count; j++)
        if (!isfinite(l->float_weights[j]))
            return lfail(err, i, l, "float_weights[%llu] (channel %llu): expected finite, found %g",
                         j, j / k, (double)l->float_weights[j]);
    for (int c = 0; c < l->out_c; c++)
        if (!isfinite(l->float_bias[c]))
            return lfail(err, i, l, "float_bias[%d]: expected finite, found %g", c,
                         (double)l->float_bias[c]);
    return check_clamp(l, i, err);
}

/* conv2d / linear: bits, packed buffer, per-channel arrays, overflow bound. */
static qat_status check_weights(const qat_rt_layer_desc *l, int i, qat_error *err)
{
    if (l->is_float)
        return check_float(l, i, err);
    if (!in_range(l->weight_bits, 2, 8))
        return lfail(err, i, l, "weight_bits: expected in [2, 8], found %d", l->weight_bits);
    /* dims <= 2^20: K <= 2^60 fits in 64 bits; bound it before multiplying
     * by out_c, or a crafted shape could wrap the count to 0 */
    const int g = qat_rt_desc_groups(l);
    if (l->groups < 0 || l->in_c % g || l->out_c % g)
        return lfail(err, i, l,
                     "groups: expected a divisor of in_c %d and out_c %d, found %d", l->in_c,
                     l->out_c, l->groups);
    unsigned long long k = (unsigned long long)l->kernel_h * (unsigned long long)l->kernel_w *
                           (unsigned long long)(l->in_c / g);
    if (k > QAT_RT_MAX_WEIGHTS)
        return lfail(err, i, l, "weights: expected at most %d values per channel, found %llu",
                     QAT_RT_MAX_WEIGHTS, k);
    unsigned long long count = k * (unsigned long long)l->out_c;
    if (count > QAT_RT_MAX_WEIGHTS)
        return lfail(err, i, l, "weights: expected at most %d values, found %llu",
                     QAT_RT_MAX_WEIGHTS, count);
    size_t bytes = qat_rt_packed_weight_bytes((size_t)count, l->weight_bits);
    const int pal = l->palette_size != 0;
    qat_status st;
    if (pal && (st = check_palette(l, i, (size_t)count, err)))
        return st;
    if (!pal && !l->weights)
        return lfail(err, i, l, "weights: missing (NULL)");
    if (!pal && l->weights_bytes != bytes)
        return lfail(err, i, l,
                     "weights_bytes: expected %zu (%llu weights of %d bits packed), found %zu",
                     bytes, count, l->weight_bits, l->weights_bytes);
    if (!l->bias)
        return lfail(err, i, l, "bias: missing (NULL)");
    if (!l->multiplier)
        return lfail(err, i, l, "multiplier: missing (NULL)");
    if (!l->shift)
        return lfail(err, i, l, "shift: missing (NULL)");
    if (!l->weight_scale)
        return lfail(err, i, l, "weight_scale: missing (NULL)");
    if ((st = check_clamp(l, i, err)))
        return st;

    const int bits = l->weight_bits;
    const int slot = bits >= 5 ? 8 : bits >= 3 ? 4 : 2;
    const int32_t wmin = -(1 << (bits - 1)), wmax = (1 << (bits - 1)) - 1;
    const size_t per = (size_t)(8 / slot);
    const int pbits = pal ? qat_rt_palette_index_bits(l->palette_size) : 0;
    if (!pal && count % per) {
        unsigned pad = (unsigned)l->weights[bytes - 1] >> ((count % per) * (size_t)slot);
        if (pad)
            return lfail(err, i, l,
                         "weights: padding bits of the last byte must be zero, found 0x%02x",
                         (unsigned)l->weights[bytes - 1]);
    }
    for (int c = 0; c < l->out_c; c++) {
        int32_t wzp = l->weight_zero_point ? l->weight_zero_point[c] : 0;
        if (!in_range(wzp, wmin, wmax))
            return lfail(err, i, l, "weight_zero_point[%d]: expected in [%d, %d], found %d", c,
                         wmin, wmax, wzp);
        if (l->multiplier[c] < 0)
            return lfail(err, i, l, "multiplier[%d]: expected in [0, 2^31), found %d", c,
                         l->multiplier[c]);
        if (!in_range(l->shift[c], QAT_SHIFT_MIN, QAT_SHIFT_MAX))
            return lfail(err, i, l, "shift[%d]: expected in [%d, %d], found %d", c, QAT_SHIFT_MIN,
                         QAT_SHIFT_MAX, l->shift[c]);
        if (!good_scale(l->weight_scale[c]))
            return lfail(err, i, l, "weight_scale[%d]: expected positive and finite, found %g", c,
                         (double)l->weight_scale[c]);
        long long maxdev = 0;
        for (unsigned long long j = 0; j < k; j++) {
            size_t idx = (size_t)((unsigned long long)c * k + j);
            unsigned raw;
            int32_t w = pal ? l->codebook[(l->palette_groups > 1 ? (size_t)c : 0) *
                                              (size_t)l->palette_size +
                                          qat_rt_palette_index_at(l->indices, idx, pbits)]
                            : packed_at(l->weights, idx, slot, &raw);
            if (w < wmin || w > wmax)
                return lfail(err, i, l,
                             "weights[%zu] (channel %d): expected in [%d, %d] for %d bits, "
                             "found %d",
                             idx, c, wmin, wmax, bits, w);
            long long dev = llabs((long long)w - wzp);
            if (dev > maxdev)
                maxdev = dev;
        }
        /* |acc| <= K * max|w - wzp| * 255 + |bias|: every partial sum of the
         * int32 accumulator stays below this (docs/ARITHMETIC.md). */
        long long bound = (long long)k * maxdev * 255LL + llabs((long long)l->bias[c]);
        if (bound >= (1LL << 31))
            return lfail(err, i, l,
                         "bias[%d]: int32 accumulator may overflow: K %llu * max|w - zp| %lld "
                         "* 255 + |bias| %lld = %lld, expected < 2^31",
                         c, k, maxdev, llabs((long long)l->bias[c]), bound);
    }
    return QAT_OK;
}

static qat_status check_op(const qat_rt_layer_desc *l, int i, qat_error *err)
{
    qat_status st;
    switch (l->op) {
    case QAT_RT_CONV2D:
        if ((st = check_window(l, i, "h", l->in_h, l->out_h, l->kernel_h, l->stride_h, l->pad_h,
                               l->kernel_h > 0 ? l->kernel_h - 1 : 0, err)) ||
            (st = check_window(l, i, "w", l->in_w, l->out_w, l->kernel_w, l->stride_w, l->pad_w,
                               l->kernel_w > 0 ? l->kernel_w - 1 : 0, err)))
            return st;
        return check_weights(l, i, err);
    case QAT_RT_LINEAR:
        if (l->in_h != 1 || l->in_w != 1)
            return lfail(err, i, l, "input shape: linear expects in_h = in_w = 1, found %dx%d",
                         l->in_h, l->in_w);
        if (l->out_h != 1 || l->out_w != 1)
            return lfail(err, i, l, "output shape: linear expects out_h = out_w = 1, found %dx%d",
                         l->out_h, l->out_w);
        if (l->kernel_h != 1 || l->kernel_w != 1 || l->stride_h != 1 || l->stride_w != 1 ||
            l->pad_h != 0 || l->pad_w != 0)
            return lfail(err, i, l,
                         "kernel/stride/pad: linear expects 1x1 / 1x1 / 0x0, found %dx%d / %dx%d "
                         "/ %dx%d",
                         l->kernel_h, l->kernel_w, l->stride_h, l->stride_w, l->pad_h, l->pad_w);
        return check_weights(l, i, err);
    case QAT_RT_MAXPOOL2D:
    case QAT_RT_AVGPOOL2D:
        if ((st = check_window(l, i, "h", l->in_h, l->out_h, l->kernel_h, l->stride_h, l->pad_h,
                               0, err)) ||
            (st = check_window(l, i, "w", l->in_w, l->out_w, l->kernel_w, l->stride_w, l->pad_w,
                               0, err)))
            return st;
        if (l->out_c != l->in_c)
            return lfail(err, i, l, "out_c: expected in_c %d, found %d", l->in_c, l->out_c);
        /* DivRound adds n/2 to a sum of up to n * 255: n <= 2^23 keeps it
         * below 2^31 (n * 255 alone would admit windows where it wraps). */
        if (l->op == QAT_RT_AVGPOOL2D && (long long)l->kernel_h * l->kernel_w > (1LL << 23))
            return lfail(err, i, l,
                         "kernel: avgpool window %dx%d too large for an int32 sum (expected "
                         "kernel_h * kernel_w <= 2^23)",
                         l->kernel_h, l->kernel_w);
        return check_same_quant(l, i, err);
    case QAT_RT_FLATTEN: {
        long long want = (long long)l->in_h * l->in_w * l->in_c;
        if (l->out_h != 1 || l->out_w != 1 || l->out_c != want)
            return lfail(err, i, l,
                         "output shape: flatten expects 1x1x%lld (in_h*in_w*in_c), found %dx%dx%d",
                         want, l->out_h, l->out_w, l->out_c);
        return check_same_quant(l, i, err);
    }
    case QAT_RT_ADD:
        if (l->out_h != l->in_h || l->out_w != l->in_w || l->out_c != l->in_c)
            return lfail(err, i, l, "output shape: add expects its input's %dx%dx%d, found %dx%dx%d",
                         l->in_h, l->in_w, l->in_c, l->out_h, l->out_w, l->out_c);
        return check_merge_arrays(l, i, err);
    case QAT_RT_CONCAT:
        if (l->out_h != l->in_h || l->out_w != l->in_w)
            return lfail(err, i, l, "output shape: concat expects its inputs' %dx%d, found %dx%d",
                         l->in_h, l->in_w, l->out_h, l->out_w);
        return check_merge_arrays(l, i, err); /* out_c: checked against the inputs */
    case QAT_RT_GLOBAL_AVGPOOL:
        if (l->out_h != 1 || l->out_w != 1 || l->out_c != l->in_c)
            return lfail(err, i, l, "output shape: global_avgpool expects 1x1x%d, found %dx%dx%d",
                         l->in_c, l->out_h, l->out_w, l->out_c);
        /* the int32 sum of H*W codes minus the zero point (each <= 255) */
        if ((long long)l->in_h * l->in_w > (1LL << 23))
            return lfail(err, i, l,
                         "input shape: global_avgpool over %dx%d pixels too large for an int32 "
                         "sum (expected in_h * in_w <= 2^23)",
                         l->in_h, l->in_w);
        return check_merge_arrays(l, i, err);
    }
    return lfail(err, i, l, "op: expected one of conv2d(1), linear(2), maxpool2d(3), "
                            "avgpool2d(4), flatten(5), add(6), concat(7), global_avgpool(8), "
                            "found %d",
                 (int)l->op);
}

/* Layer i's inputs: their count for the op, each an earlier layer (which
 * also rules out a cycle: in file order one edge of it would point
 * forward), input 0 matching the layer's input attributes exactly, and the
 * other inputs' shapes fitting the op. */
static qat_status check_inputs(const qat_rt_model_desc *d, int i, qat_error *err)
{
    const qat_rt_layer_desc *l = &d->layers[i];
    if (d->version < 2 && qat_rt_desc_is_v2(l, i))
        return lfail(err, i, l, "%s: a graph layer needs format version 2, the model says %d",
                     l->op > QAT_RT_FLATTEN ? "op" : qat_rt_desc_groups(l) > 1 ? "groups" : "inputs",
                     d->version);
    int n = qat_rt_desc_ninputs(l);
    int want_lo = l->op == QAT_RT_ADD ? 2 : l->op == QAT_RT_CONCAT ? 1 : 1;
    int want_hi = l->op == QAT_RT_ADD ? 2 : l->op == QAT_RT_CONCAT ? QAT_RT_MAX_INPUTS : 1;
    if (l->num_inputs < 0 || n < want_lo || n > want_hi)
        return lfail(err, i, l, "inputs: %s reads %d..%d layers, found %d", qat_rt_op_name(l->op),
                     want_lo, want_hi, l->num_inputs);
    int hsum = 0;
    for (int k = 0; k < n; k++) {
        int src = qat_rt_desc_input(l, i, k);
        if (src == i)
            return lfail(err, i, l, "inputs[%d]: the layer reads itself (a cycle)", k);
        if (src > i && src < d->num_layers)
            return lfail(err, i, l,
                         "inputs[%d]: points forward to layer %d (layers run in file order, "
                         "so an input must come earlier; a cycle needs such an edge)",
                         k, src);
        if (src < -1 || src >= d->num_layers)
            return lfail(err, i, l, "inputs[%d]: expected a layer index in [-1, %d], found %d", k,
                         i - 1, src);
        const qat_rt_layer_desc *s = src >= 0 ? &d->layers[src] : NULL;
        int h = s ? s->out_h : d->in_h, w = s ? s->out_w : d->in_w, c = s ? s->out_c : d->in_c;
        float scale = s ? s->output_scale : d->input_scale;
        int32_t zp = s ? s->output_zero_point : d->input_zero_point;
        char what[48];
        if (src < 0)
            snprintf(what, sizeof what, "the model input");
        else
            snprintf(what, sizeof what, "layer %d's output", src);
        if (k == 0) {
            if (l->in_h != h || l->in_w != w || l->in_c != c)
                return lfail(err, i, l, "input shape: expected %dx%dx%d (%s), found %dx%dx%d", h,
                             w, c, what, l->in_h, l->in_w, l->in_c);
            if (l->input_scale != scale)
                return lfail(err, i, l, "input_scale: expected %.9g (%s), found %.9g",
                             (double)scale, what, (double)l->input_scale);
            if (l->input_zero_point != zp)
                return lfail(err, i, l, "input_zero_point: expected %d (%s), found %d", zp, what,
                             l->input_zero_point);
        } else if (l->op == QAT_RT_ADD && (h != l->in_h || w != l->in_w || c != l->in_c)) {
            return lfail(err, i, l,
                         "inputs[%d]: add needs inputs of one shape: input 0 is %dx%dx%d, %s "
                         "%dx%dx%d",
                         k, l->in_h, l->in_w, l->in_c, what, h, w, c);
        } else if (l->op == QAT_RT_CONCAT && (h != l->in_h || w != l->in_w)) {
            return lfail(err, i, l,
                         "inputs[%d]: concat needs inputs of one height and width: input 0 is "
                         "%dx%d, %s %dx%d",
                         k, l->in_h, l->in_w, what, h, w);
        }
        hsum += c;
    }
    if (l->op == QAT_RT_CONCAT && l->out_c != hsum)
        return lfail(err, i, l, "output shape: concat expects out_c %d (the inputs' channels), "
                                "found %d",
                     hsum, l->out_c);
    return QAT_OK;
}

/* The model input: uint8 pixels at the fixed 1/255, -128; or float32
 * features with a positive finite scale, an int8 zero point and per-channel
 * offsets and steps (FORMAT.md §9). */
static qat_status check_input(const qat_rt_model_desc *d, qat_error *err)
{
    if (d->task != QAT_RT_TASK_CLASSIFICATION && d->task != QAT_RT_TASK_REGRESSION)
        return qat_fail(err, QAT_EINVAL, "model: task: expected classification(0) or "
                                         "regression(1), found %d", (int)d->task);
    if (d->input_type == QAT_RT_INPUT_UINT8) {
        if (d->input_scale != 1.0f / 255.0f)
            return qat_fail(err, QAT_EINVAL,
                            "model: input_scale: expected 1/255 (%.9g), found %.9g",
                            (double)(1.0f / 255.0f), (double)d->input_scale);
        if (d->input_zero_point != -128)
            return qat_fail(err, QAT_EINVAL, "model: input_zero_point: expected -128, found %d",
                            d->input_zero_point);
        return QAT_OK;
    }
    if (d->input_type != QAT_RT_INPUT_FLOAT32)
        return qat_fail(err, QAT_EINVAL, "model: input_type: expected uint8(0) or float32(1), "
                                         "found %d", (int)d->input_type);
    if (!good_scale(d->input_scale))
        return qat_fail(err, QAT_EINVAL, "model: input_scale: expected positive and finite, "
                                         "found %g", (double)d->input_scale);
    if (!in_range(d->input_zero_point, INT8_MIN, INT8_MAX))
        return qat_fail(err, QAT_EINVAL, "model: input_zero_point: expected in [-128, 127], "
                                         "found %d", d->input_zero_point);
    if (!d->input_offset || !d->input_step)
        return qat_fail(err, QAT_EINVAL, "model: input_offset / input_step: float32 inputs need "
                                         "both (NULL)");
    for (int c = 0; c < d->in_c; c++) {
        if (!isfinite(d->input_offset[c]))
            return qat_fail(err, QAT_EINVAL, "model: input_offset[%d]: expected finite, found %g",
                            c, (double)d->input_offset[c]);
        if (!good_scale(d->input_step[c]))
            return qat_fail(err, QAT_EINVAL,
                            "model: input_step[%d]: expected positive and finite, found %g", c,
                            (double)d->input_step[c]);
    }
    return QAT_OK;
}

qat_status qat_rt_model_validate(const qat_rt_model_desc *d, qat_error *err)
{
    if (!d)
        return qat_fail(err, QAT_EINVAL, "model: description is NULL");
    if (d->version < QAT_RT_FORMAT_VERSION_MIN || d->version > QAT_RT_FORMAT_VERSION)
        return qat_fail(err, QAT_EINVAL, "model: version: expected %d..%d, found %d",
                        QAT_RT_FORMAT_VERSION_MIN, QAT_RT_FORMAT_VERSION, d->version);
    if (!in_range(d->in_h, 1, QAT_RT_MAX_DIM) || !in_range(d->in_w, 1, QAT_RT_MAX_DIM) ||
        !in_range(d->in_c, 1, QAT_RT_MAX_DIM) ||
        (long long)d->in_h * d->in_w * d->in_c > QAT_RT_MAX_TENSOR)
        return qat_fail(err, QAT_EINVAL,
                        "model: input shape: expected each dim in [1, %d] and at most %d values, "
                        "found %dx%dx%d",
                        QAT_RT_MAX_DIM, QAT_RT_MAX_TENSOR, d->in_h, d->in_w, d->in_c);
    qat_status st0 = check_input(d, err);
    if (st0 != QAT_OK)
        return st0;
    if (!in_range(d->num_classes, 1, QAT_RT_MAX_DIM))
        return qat_fail(err, QAT_EINVAL, "model: num_classes: expected in [1, %d], found %d",
                        QAT_RT_MAX_DIM, d->num_classes);
    if (!in_range(d->num_layers, 1, QAT_RT_MAX_LAYERS))
        return qat_fail(err, QAT_EINVAL, "model: num_layers: expected in [1, %d], found %d",
                        QAT_RT_MAX_LAYERS, d->num_layers);
    if (!d->layers)
        return qat_fail(err, QAT_EINVAL, "model: layers: missing (NULL)");

    for (int i = 0; i < d->num_layers; i++) {
        const qat_rt_layer_desc *l = &d->layers[i];
        qat_status st;
        if (!memchr(l->name, '\0', QAT_RT_NAME_MAX))
            return lfail(err, i, l, "name: expected a NUL-terminated string of at most %d bytes",
                         QAT_RT_NAME_MAX - 1);
        if (!qat_rt_op_name(l->op))
            return check_op(l, i, err); /* reports the unknown op */
        if ((st = check_shapes(l, i, err)) || (st = check_quant(l, i, err)) ||
            (st = check_inputs(d, i, err)) || (st = check_op(l, i, err)))
            return st;
        if (l->is_float != 0 && (l->is_float != 1 || (l->op != QAT_RT_CONV2D &&
                                                      l->op != QAT_RT_LINEAR)))
            return lfail(err, i, l, "is_float: expected 0, or 1 on a conv2d / linear layer, "
                                    "found %d on %s", l->is_float, qat_rt_op_name(l->op));
        if (l->is_float && d->version < 3)
            return lfail(err, i, l, "is_float: a float layer needs format version 3, the model "
                                    "says %d", d->version);
        if (l->palette_size != 0 && !l->is_float &&
            (l->op == QAT_RT_CONV2D || l->op == QAT_RT_LINEAR) &&
            d->version < 2)
            return lfail(err, i, l, "palette_size: palettized weights need format version 2, "
                                    "the model says %d", d->version);
    }
    /* every output but the last feeds a later layer: a layer nobody reads
     * is a broken graph, not dead code to run */
    for (int i = 0; i + 1 < d->num_layers; i++) {
        int read = 0;
        for (int j = i + 1; j < d->num_layers && !read; j++)
            for (int k = 0; k < qat_rt_desc_ninputs(&d->layers[j]); k++)
                read |= qat_rt_desc_input(&d->layers[j], j, k) == i;
        if (!read)
            return lfail(err, i, &d->layers[i], "output: read by no later layer (an unused "
                                                 "output; only the last layer's is the model's)");
    }
    const qat_rt_layer_desc *last = &d->layers[d->num_layers - 1];
    if (last->out_h != 1 || last->out_w != 1 || last->out_c != d->num_classes)
        return lfail(err, d->num_layers - 1, last,
                     "output shape: the last layer must give 1x1x%d (num_classes), found %dx%dx%d",
                     d->num_classes, last->out_h, last->out_w, last->out_c);
    return QAT_OK;
}
