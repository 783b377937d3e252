/* The model input: per-channel standardisation, and for float32 inputs the
 * input quantization the integer model applies on the way in.
 *
 * uint8 pixels enter as p / 255 (exactly the runtime's p - 128 at scale
 * 1/255) and their standardisation is folded into the first conv/linear
 * layer. float32 features are standardised first, t = (x - mean) / std,
 * and quantized with a scale and zero point observed on the training
 * inputs; the runtime's float entry point computes the very same codes,
 * q = qat_fp_quantize(x - offset[c], step[c], zp) with offset = mean and
 * step = std * scale, so both sides agree bit for bit. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model_internal.h"
#include "qat/fixedpoint.h"

/* float arrays of inbuf, C each */
enum { IN_MEAN, IN_STD, IN_FOLD_A, IN_FOLD_C, IN_OFFSET, IN_STEP, IN_ARRAYS };

static float *arr(qat_model *m, int which) { return m->inbuf + (size_t)which * m->in.channels; }

/* Everything that follows from mean, std (and the float range). */
static void derive(qat_model *m)
{
    qat_model_input *in = &m->in;
    int C = in->channels;
    float *fa = arr(m, IN_FOLD_A), *fc = arr(m, IN_FOLD_C);
    for (int c = 0; c < C; c++) {
        fa[c] = in->normalize ? 1.0f / in->std[c] : 1.0f;
        fc[c] = in->normalize ? -in->mean[c] / in->std[c] : 0.0f;
    }
    if (!in->is_float)
        return;
    in->q = qat_qparams_from_range(in->lo, in->hi, 8, QAT_SCHEME_ASYMMETRIC);
    float *off = arr(m, IN_OFFSET), *step = arr(m, IN_STEP);
    for (int c = 0; c < C; c++) {
        off[c] = in->normalize ? in->mean[c] : 0.0f;
        step[c] = in->normalize ? in->std[c] * in->q.scale : in->q.scale;
    }
}

qat_status qat_model_input_init(qat_model *m, qat_error *err)
{
    const qat_model_cfg *mc = &m->cfg.model;
    qat_model_input *in = &m->in;
    int C = mc->input_channels;
    memset(in, 0, sizeof *in);
    in->channels = C;
    in->is_float = mc->input_type == QAT_INPUT_FLOAT32;
    in->normalize = mc->normalize_input;
    m->inbuf = calloc((size_t)C * IN_ARRAYS, sizeof(float));
    if (!m->inbuf)
        return qat_fail(err, QAT_ENOMEM, "out of memory for %d input channels", C);
    in->mean = arr(m, IN_MEAN);
    in->std = arr(m, IN_STD);
    in->fold_a = arr(m, IN_FOLD_A);
    in->fold_c = arr(m, IN_FOLD_C);
    in->offset = arr(m, IN_OFFSET);
    in->step = arr(m, IN_STEP);
    const qat_cfg_floats *mean = &mc->input_mean, *std = &mc->input_std;
    in->stats_from_data = in->normalize && (mean->n == 0 || std->n == 0);
    const qat_cfg_floats *lists[2] = {mean, std};
    for (int k = 0; k < 2; k++)
        if (in->normalize && lists[k]->n > 1 && lists[k]->n != C)
            return qat_fail(err, QAT_EINVAL,
                            "%s: [model] %s has %d values but the input has %d channels: give "
                            "one value, one per channel, or auto",
                            m->cfg.path, k ? "input_std" : "input_mean", lists[k]->n, C);
    float *mu = arr(m, IN_MEAN), *sd = arr(m, IN_STD);
    for (int c = 0; c < C; c++) {
        mu[c] = mean->n ? mean->v[mean->n > 1 ? c : 0] : 0.0f;
        sd[c] = std->n ? std->v[std->n > 1 ? c : 0] : 1.0f;
    }
    /* uint8 with one mean and std: the scalar fold existing runs were
     * trained with (same bits); per channel or auto: the column fold */
    m->norm_a = 1.0f;
    m->norm_c = 0.0f;
    m->norm_per_channel = 0;
    if (in->normalize && !in->is_float) {
        if (in->stats_from_data || mean->n > 1 || std->n > 1) {
            m->norm_per_channel = 1;
        } else {
            m->norm_a = 1.0f / std->v[0];
            m->norm_c = -mean->v[0] / std->v[0];
        }
    }
    in->lo = 0.0f;
    in->hi = 1.0f;
    in->ready = !in->stats_from_data && !in->is_float;
    derive(m);
    return QAT_OK;
}

const qat_model_input *qat_model_input_info(const qat_model *m) { return &m->in; }

void qat_model_set_input_norm(qat_model *m, const float *mean, const float *std)
{
    int C = m->in.channels;
    memcpy(arr(m, IN_MEAN), mean, (size_t)C * sizeof(float));
    memcpy(arr(m, IN_STD), std, (size_t)C * sizeof(float));
    m->in.stats_set = 1;
    m->in.ready = !m->in.is_float;
    derive(m);
}

/* The standardised value of x in channel c, as the float forward computes it. */
static float standardise(const qat_model_input *in, float x, int c)
{
    return in->normalize ? (x - in->mean[c]) / in->std[c] : x;
}

void qat_model_observe_input(qat_model *m, const float *x, size_t count)
{
    qat_model_input *in = &m->in;
    QAT_ASSERT(in->is_float);
    /* the first call starts the range (it always holds 0), later ones widen it */
    float lo = in->ready ? in->lo : 0.0f, hi = in->ready ? in->hi : 0.0f;
    int C = in->channels;
    for (size_t i = 0; i < count; i++) {
        float t = standardise(in, x[i], (int)(i % (size_t)C));
        lo = t < lo ? t : lo;
        hi = t > hi ? t : hi;
    }
    in->lo = lo;
    in->hi = hi;
    in->ready = 1;
    derive(m);
}

size_t qat_model_input_state_size(const qat_model *m)
{
    return (m->in.stats_from_data ? 2 * (size_t)m->in.channels : 0) + (m->in.is_float ? 2 : 0);
}

void qat_model_input_state_save(const qat_model *m, float *out)
{
    size_t C = (size_t)m->in.channels;
    if (m->in.stats_from_data) {
        memcpy(out, m->in.mean, C * sizeof(float));
        memcpy(out + C, m->in.std, C * sizeof(float));
        out += 2 * C;
    }
    if (m->in.is_float) {
        out[0] = m->in.lo;
        out[1] = m->in.hi;
    }
}

qat_status qat_model_input_state_load(qat_model *m, const float *in, qat_error *err)
{
    qat_model_input *mi = &m->in;
    int C = mi->channels;
    if (mi->stats_from_data) {
        for (int c = 0; c < C; c++)
            if (!(in[C + c] > 0.0f) || !isfinite(in[c]))
                return qat_fail(err, QAT_EINVAL,
                                "input statistics: channel %d has mean %g and std %g (std must "
                                "be positive)",
                                c, (double)in[c], (double)in[C + c]);
        memcpy(arr(m, IN_MEAN), in, (size_t)C * sizeof(float));
        memcpy(arr(m, IN_STD), in + C, (size_t)C * sizeof(float));
        mi->stats_set = 1;
        in += 2 * C;
    }
    if (mi->is_float) {
        if (!(in[0] <= 0.0f && in[1] >= 0.0f))
            return qat_fail(err, QAT_EINVAL,
                            "input range: [%g, %g] is not a range observed on data (it always "
                            "holds 0)",
                            (double)in[0], (double)in[1]);
        mi->lo = in[0];
        mi->hi = in[1];
    }
    mi->ready = 1;
    derive(m);
    return QAT_OK;
}

qat_tensor *qat_model_input_tensor(qat_model *m, qat_tape *t, const void *x, int is_float, int n,
                                   int quant, qat_qparams *q)
{
    const qat_model_cfg *mc = &m->cfg.model;
    const qat_model_input *in = &m->in;
    int shape[4] = {n, mc->input_height, mc->input_width, mc->input_channels};
    qat_tensor *v = qat_tape_tensor(t, 4, shape);
    QAT_ASSERT(is_float == in->is_float);
    if (!is_float) {
        /* Exactly the dequantized model input: (p - 128 - (-128)) * (1/255).
         * Standardisation, if on, is folded into the first conv/linear layer. */
        const uint8_t *images = x;
        *q = qat_input_qparams();
        for (size_t i = 0; i < v->numel; i++)
            v->data[i] = (float)images[i] * q->scale;
        return v;
    }
    const float *f = x;
    size_t C = (size_t)in->channels;
    *q = in->q;
    if (!quant) {
        for (size_t i = 0; i < v->numel; i++)
            v->data[i] = standardise(in, f[i], (int)(i % C));
        return v;
    }
    /* the runtime's codes, dequantized: s (q - z) */
    for (size_t i = 0; i < v->numel; i++) {
        size_t c = i % C;
        int32_t code = qat_fp_quantize(f[i] - in->offset[c], in->step[c], in->q.zero_point,
                                       in->q.qmin, in->q.qmax);
        v->data[i] = in->q.scale * (float)(code - in->q.zero_point);
    }
    return v;
}
