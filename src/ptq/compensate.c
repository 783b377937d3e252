/* Error compensation, layer by layer in model order: AdaRound, then bias
 * correction. Both compare the quantized layer with the float model's, and
 * the float model is the one the checkpoint held: its outputs are taken in
 * one float pass before any weight changes. The quantized side is taken
 * afresh for each layer, so it carries every earlier layer's compensation
 * (and corrects what the earlier layers' quantization still loses). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ptq_internal.h"
#include "qat/fixedpoint.h"

/* AdaRound learns from at most this many sampled outputs per layer (and at
 * most 2^24 input values of them). */
#define MAX_ROWS 32768

typedef struct layer_data {
    int index;      /* model layer */
    size_t P;       /* output positions per image (conv: oh * ow; linear: 1) */
    size_t total;   /* output rows over the calibration set */
    size_t R;       /* rows AdaRound samples */
    size_t *rows;   /* [R] sampled row indices, increasing */
    float *T;       /* [R, C] float outputs before the activation at those rows */
    double *fsum;   /* [C] float outputs summed over every row */
    double *qsum;   /* [C] quantized accumulators summed, as of the last pass */
} layer_data;

typedef struct comp {
    layer_data L[QAT_MAX_LAYERS];
    int nl;
    int cur;        /* the layer a quantized pass serves */
    float *X;       /* [R, K] of the current layer */
    int capture_x;
} comp;

/* Rows of a batch (first image, count) in [lo, hi) of sampled indices. */
static void row_span(const layer_data *d, int first, int count, size_t *lo, size_t *hi)
{
    size_t b = (size_t)first * d->P, e = (size_t)(first + count) * d->P;
    size_t a = 0, z = d->R;
    while (a < z) { /* first sampled row >= b */
        size_t mid = (a + z) / 2;
        if (d->rows[mid] < b)
            a = mid + 1;
        else
            z = mid;
    }
    *lo = a;
    while (a < d->R && d->rows[a] < e)
        a++;
    *hi = a;
}

static void float_visit(ptq_ctx *c, int first, int count, void *user)
{
    comp *cp = user;
    for (int k = 0; k < cp->nl; k++) {
        layer_data *d = &cp->L[k];
        qat_layer *l = qat_model_layer(c->m, d->index);
        const qat_tensor *y = c->taps[d->index].out;
        size_t C = (size_t)l->out_c, rows = y->numel / C;
        for (size_t r = 0; r < rows; r++)
            for (size_t ch = 0; ch < C; ch++)
                d->fsum[ch] += y->data[r * C + ch];
        size_t lo, hi;
        row_span(d, first, count, &lo, &hi);
        for (size_t j = lo; j < hi; j++)
            memcpy(d->T + j * C, y->data + (d->rows[j] - (size_t)first * d->P) * C,
                   C * sizeof(float));
    }
}

/* One row of the layer's input as the GEMM reads it (im2col for a conv),
 * real values: codes relative to the zero point times the input scale. */
static void input_row(const qat_layer *l, const qat_tensor *in, size_t img, size_t pos,
                      float *out)
{
    float s = l->q.in.scale;
    if (l->type == QAT_LAYER_LINEAR) {
        const float *x = in->data + img * l->fan_in;
        for (size_t k = 0; k < l->fan_in; k++)
            out[k] = x[k] * s;
        return;
    }
    int oy = (int)(pos / (size_t)l->out_w), ox = (int)(pos % (size_t)l->out_w);
    size_t o = 0;
    for (int ky = 0; ky < l->kernel; ky++)
        for (int kx = 0; kx < l->kernel; kx++) {
            int iy = oy * l->stride - l->padding + ky, ix = ox * l->stride - l->padding + kx;
            int inside = iy >= 0 && iy < l->in_h && ix >= 0 && ix < l->in_w;
            const float *x = in->data + ((img * (size_t)l->in_h + (size_t)(inside ? iy : 0)) *
                                             (size_t)l->in_w +
                                         (size_t)(inside ? ix : 0)) *
                                            (size_t)l->in_c;
            for (int ch = 0; ch < l->in_c; ch++)
                out[o++] = inside ? x[ch] * s : 0.0f;
        }
}

static void quant_visit(ptq_ctx *c, int first, int count, void *user)
{
    comp *cp = user;
    for (int k = 0; k <= cp->cur; k++) { /* every layer the pass reached */
        layer_data *d = &cp->L[k];
        const qat_tensor *y = c->taps[d->index].out;
        size_t C = (size_t)qat_model_layer(c->m, d->index)->out_c, rows = y->numel / C;
        for (size_t r = 0; r < rows; r++)
            for (size_t ch = 0; ch < C; ch++)
                d->qsum[ch] += y->data[r * C + ch];
    }
    if (!cp->capture_x)
        return;
    layer_data *d = &cp->L[cp->cur];
    qat_layer *l = qat_model_layer(c->m, d->index);
    const qat_layer_tap *tap = &c->taps[d->index];
    size_t lo, hi;
    row_span(d, first, count, &lo, &hi);
    for (size_t j = lo; j < hi; j++) {
        size_t g = d->rows[j] - (size_t)first * d->P;
        input_row(l, tap->in, g / d->P, g % d->P, cp->X + j * l->fan_in);
    }
}

/* A quantized pass up to the current layer: accumulator sums of every layer
 * up to it, and its sampled inputs when capture_x. */
static void quant_pass(ptq_ctx *c, comp *cp, int capture_x)
{
    for (int k = 0; k <= cp->cur; k++)
        memset(cp->L[k].qsum, 0,
               (size_t)qat_model_layer(c->m, cp->L[k].index)->out_c * sizeof(double));
    cp->capture_x = capture_x;
    ptq_pass(c, 1, cp->L[cp->cur].index, PTQ_PASS_BATCH, quant_visit, cp);
}

/* Layer k's E[float] - E[quantized] per channel from the last pass that
 * reached it (delta, C entries), and their mean magnitude. */
static double mean_error(ptq_ctx *c, comp *cp, int k, float *delta)
{
    layer_data *d = &cp->L[k];
    qat_layer *l = qat_model_layer(c->m, d->index);
    ptq_quant_bias(l, delta); /* the quantized bias first, then the differences */
    double e = 0;
    for (int ch = 0; ch < l->out_c; ch++) {
        double mq = l->q.acc_scale[ch] * (d->qsum[ch] / (double)d->total) + delta[ch];
        double mf = d->fsum[ch] / (double)d->total;
        delta[ch] = (float)(mf - mq);
        e += fabs(mf - mq);
    }
    return e / l->out_c;
}

static qat_status adaround_layer(ptq_ctx *c, comp *cp, qat_ptq_layer_report *lr, qat_error *err)
{
    layer_data *d = &cp->L[cp->cur];
    qat_layer *l = qat_model_layer(c->m, d->index);
    size_t n = (size_t)l->out_c * l->fan_in;
    float *bias = malloc(((size_t)l->out_c + 1) * sizeof *bias);
    float *w = malloc((n + 1) * sizeof *w), *y = malloc(((size_t)l->out_c * 4096 + 1) * sizeof *y);
    int32_t *codes = malloc((n + 1) * sizeof *codes), *near = malloc((n + 1) * sizeof *near);
    qat_adaround a = {.C = l->out_c, .K = l->fan_in, .w = w, .bias = bias,
                      .scale = l->q.w_scale, .zp = l->q.w_zp, .qmin = l->q.wqmin,
                      .qmax = l->q.wqmax, .relu = l->q.relu,
                      .per_tensor = l->q.wq_channels == 1 && l->out_c > 1};
    qat_status st = QAT_OK;
    if (!bias || !w || !y || !codes || !near) {
        st = qat_fail(err, QAT_ENOMEM, "out of memory for AdaRound on layer '%s'", l->cfg->name);
        goto done;
    }
    memcpy(w, l->w_eff, n * sizeof *w);
    ptq_quant_bias(l, bias);
    if ((st = qat_adaround_init(&a, err)) != QAT_OK)
        goto done;
    qat_team *team = qat_tape_team(c->t);
    qat_adaround_nearest(&a, near);
    lr->round_error_nearest = qat_adaround_error(&a, team, near, cp->X, d->T, d->R, y);
    qat_rng rng;
    qat_rng_seed(&rng, (uint64_t)c->cfg->train.seed, 100 + (uint64_t)d->index);
    if ((st = qat_adaround_optimize(&a, team, cp->X, d->T, d->R, c->cfg->ptq.adaround_iterations,
                                    &rng, err)) != QAT_OK)
        goto done;
    qat_adaround_codes(&a, codes);
    lr->round_error_learned = qat_adaround_error(&a, team, codes, cp->X, d->T, d->R, y);
    /* on a problem too hard for the relaxation (very few bits) the learned
     * rounding can end up worse than the nearest one: keep the better */
    if (!(lr->round_error_learned < lr->round_error_nearest)) {
        lr->round_error_learned = lr->round_error_nearest;
        lr->rounding_kept_nearest = 1;
        goto done; /* the weights stay as they are */
    }
    /* the rounding goes into the weights: pinned ones keep their value, the
     * others become their code's value, which round-to-nearest gives back */
    for (size_t i = 0; i < n; i++) {
        int ch = (int)(i / l->fan_in);
        if (a.kind[i] != 2)
            w[i] = l->q.w_scale[ch] * (float)(codes[i] - l->q.w_zp[ch]);
        lr->codes_flipped += codes[i] != near[i];
    }
    if ((st = qat_layer_set_effective(c->m, l, w, NULL, err)) != QAT_OK ||
        (st = qat_model_refresh_qparams(c->m, err)) != QAT_OK)
        goto done;
    for (size_t i = 0; i < n; i++) {
        int ch = (int)(i / l->fan_in);
        int32_t q = qat_fp_quantize(l->w_eff[i], l->q.w_scale[ch], l->q.w_zp[ch], l->q.wqmin,
                                    l->q.wqmax);
        lr->codes_mismatched += q != codes[i];
    }
done:
    qat_adaround_free(&a);
    free(bias);
    free(w);
    free(y);
    free(codes);
    free(near);
    return st;
}

/* Corrects the current layer from a fresh pass; its error after the
 * correction is measured by the next pass that reaches it. */
static qat_status correct_bias(ptq_ctx *c, comp *cp, qat_ptq_layer_report *lr, qat_error *err)
{
    layer_data *d = &cp->L[cp->cur];
    qat_layer *l = qat_model_layer(c->m, d->index);
    size_t C = (size_t)l->out_c;
    float *delta = malloc((C + 1) * sizeof *delta), *b = malloc((C + 1) * sizeof *b);
    qat_status st = QAT_OK;
    if (!delta || !b) {
        st = qat_fail(err, QAT_ENOMEM, "out of memory");
        goto done;
    }
    quant_pass(c, cp, 0);
    lr->bias_error_before = lr->bias_error_after = mean_error(c, cp, cp->cur, delta);
    if (!qat_layer_has_bias(l))
        goto done; /* nothing to put the correction in */
    for (size_t ch = 0; ch < C; ch++)
        b[ch] = l->b_eff[ch] + delta[ch];
    if ((st = qat_layer_set_effective(c->m, l, l->w_eff, b, err)) != QAT_OK ||
        (st = qat_model_refresh_qparams(c->m, err)) != QAT_OK)
        goto done;
    lr->bias_corrected = 1;
done:
    free(delta);
    free(b);
    return st;
}

static void free_comp(comp *cp)
{
    for (int k = 0; k < cp->nl; k++) {
        free(cp->L[k].rows);
        free(cp->L[k].T);
        free(cp->L[k].fsum);
        free(cp->L[k].qsum);
    }
    free(cp->X);
}

/* Every compute layer's rows, evenly spread with a random offset. */
static qat_status plan(ptq_ctx *c, comp *cp, qat_error *err)
{
    qat_rng rng;
    qat_rng_seed(&rng, (uint64_t)c->cfg->train.seed, 99);
    size_t maxx = 1;
    for (int i = 0; i < qat_model_num_layers(c->m); i++) {
        qat_layer *l = qat_model_layer(c->m, i);
        if (!ptq_is_compute(l))
            continue;
        layer_data *d = &cp->L[cp->nl++];
        d->index = i;
        d->P = (size_t)l->out_h * (size_t)l->out_w;
        d->total = d->P * (size_t)c->n;
        size_t cap = ((size_t)1 << 24) / l->fan_in;
        cap = cap < 1024 ? 1024 : cap > MAX_ROWS ? MAX_ROWS : cap;
        d->R = c->cfg->ptq.adaround ? (d->total < cap ? d->total : cap) : 0;
        d->rows = malloc((d->R + 1) * sizeof *d->rows);
        d->T = malloc((d->R * (size_t)l->out_c + 1) * sizeof *d->T);
        d->fsum = calloc((size_t)l->out_c, sizeof *d->fsum);
        d->qsum = calloc((size_t)l->out_c, sizeof *d->qsum);
        if (!d->rows || !d->T || !d->fsum || !d->qsum)
            return qat_fail(err, QAT_ENOMEM, "out of memory for post-training quantization");
        double u = qat_rng_uniform(&rng);
        for (size_t j = 0; j < d->R; j++)
            d->rows[j] = (size_t)(((double)j + u) * (double)d->total / (double)d->R);
        maxx = d->R * l->fan_in > maxx ? d->R * l->fan_in : maxx;
    }
    cp->X = malloc(maxx * sizeof *cp->X);
    if (!cp->X)
        return qat_fail(err, QAT_ENOMEM, "out of memory for post-training quantization");
    return QAT_OK;
}

/* The corrected layer before cur, measured by the pass that just reached
 * it (its own pass saw it before the correction). */
static void bias_after(ptq_ctx *c, comp *cp, int k, qat_ptq_report *rep)
{
    if (k < 0) /* the first layer: nothing before it was corrected */
        return;
    qat_ptq_layer_report *lr = &rep->layers[k];
    if (!lr->bias_corrected)
        return;
    float *dv = malloc(((size_t)qat_model_layer(c->m, cp->L[k].index)->out_c + 1) * sizeof *dv);
    if (dv)
        lr->bias_error_after = mean_error(c, cp, k, dv);
    free(dv);
    if (c->log)
        fprintf(c->log, "ptq: %-8s bias correction  mean |E[float] - E[int]| %.4g -> %.4g\n",
                lr->name, lr->bias_error_before, lr->bias_error_after);
}

qat_status ptq_compensate(ptq_ctx *c, qat_ptq_report *rep, qat_error *err)
{
    const qat_ptq_cfg *pc = &c->cfg->ptq;
    comp *cp = calloc(1, sizeof *cp);
    if (!cp)
        return qat_fail(err, QAT_ENOMEM, "out of memory");
    qat_status st = plan(c, cp, err);
    if (st == QAT_OK)
        ptq_pass(c, 0, cp->L[cp->nl - 1].index, PTQ_PASS_BATCH, float_visit, cp);
    for (int k = 0; st == QAT_OK && k < cp->nl; k++) {
        qat_ptq_layer_report *lr = &rep->layers[k];
        qat_layer *l = qat_model_layer(c->m, cp->L[k].index);
        cp->cur = k;
        if (pc->adaround) {
            quant_pass(c, cp, 1);
            bias_after(c, cp, k - 1, rep);
            st = adaround_layer(c, cp, lr, err);
            if (st == QAT_OK && c->log)
                fprintf(c->log,
                        "ptq: %-8s AdaRound  reconstruction error %.4g -> %.4g (%ld of %zu "
                        "codes rounded the other way)%s\n",
                        lr->name, lr->round_error_nearest, lr->round_error_learned,
                        lr->codes_flipped, (size_t)l->out_c * l->fan_in,
                        lr->rounding_kept_nearest ? "; the learned rounding was worse: kept "
                                                    "round-to-nearest"
                                                  : "");
        }
        if (st == QAT_OK && pc->bias_correction) {
            st = correct_bias(c, cp, lr, err);
            if (!pc->adaround)
                bias_after(c, cp, k - 1, rep);
            if (st == QAT_OK && !lr->bias_corrected && c->log)
                fprintf(c->log, "ptq: %-8s bias correction  mean |E[float] - E[int]| %.4g "
                        "(no bias to correct)\n", lr->name, lr->bias_error_before);
        }
    }
    if (st == QAT_OK && pc->bias_correction) { /* the last layer's correction, measured */
        cp->cur = cp->nl - 1;
        quant_pass(c, cp, 0);
        bias_after(c, cp, cp->nl - 1, rep);
    }
    free_comp(cp);
    free(cp);
    return st;
}
