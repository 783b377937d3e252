/* The exact output stage of a quantized conv/linear: requantization with the
 * runtime's arithmetic (forward) beside its straight-through and LSQ
 * gradients (backward). */
#include <math.h>
#include <string.h>

#include "qat/team.h"
#include "qat/fixedpoint.h"
#include "qat/quant.h"
#include "quant_internal.h"

/* ---- requantizing output stage ------------------------------------------------- */
typedef struct {
    const qat_requant_params *rp;
    const int32_t *bq;
    const float *acc, *acc_scale, *dy, *y;
    float *out, *dacc;
    float s_out;
    uint8_t *pass;     /* bit 0: inside the clamp; bit 1: identity STE */
    double *dbias;     /* [threads][C] */
    double *dscale;    /* [threads][C] */
    float *fpart;      /* [threads][2C] float partials of the two above */
    partials ds_out;
    int32_t *right; /* per channel: -shift */
    int64_t *rnd;   /* per channel: 2^(right-1), or 0 */
    int all_right;  /* every shift <= 0: the vectorised path applies */
    size_t rows;
    int C, want_bias, want_scale, want_out_scale;
    int fresh; /* dacc was just allocated: stored, not added to */
} rq_ctx;

/* One row of the output stage. Channels with a right shift (every practical
 * multiplier M < 1) take the branch-free form, which vectorises; the others
 * use the scalar oracle. Accumulators are integers held in floats, so the
 * conversion is exact. The STE mask variant is a separate loop: a store
 * under a condition would keep the compiler from vectorising. */
#define RQ_ROW_BODY                                                                              \
    int64_t a64 = (int64_t)(int32_t)acc[c] + bq[c];                                              \
    int32_t a = (int32_t)(a64 > INT32_MAX ? INT32_MAX : a64 < INT32_MIN ? INT32_MIN : a64);      \
    int64_t q = qat_fp_requantize_right(a, mult[c], right[c], rnd[c], zp);                      \
    int inside = (q >= lo) & (q <= hi);                                                          \
    q = q < lo ? lo : q > hi ? hi : q;                                                           \
    out[c] = s * (float)(int32_t)(q - zp);

/* The forward loops are integer arithmetic and one float product an
 * output, so the x86-64-v4 clone (DQ's int64 <-> float conversions: conv1's
 * forward at 2 threads 0.72 -> 0.64 ms) cannot change a bit. The backward
 * keeps its "avx512f" clone: with the x86-64-v4 target and contraction
 * turned off (quant/clones.h) an LSQ run's checkpoint still changed, which
 * I did not track down. */
__attribute__((target_clones("arch=x86-64-v4", "avx2", "default"))) static void
rq_rows(const float *restrict acc, const int32_t *restrict bq, const int32_t *restrict mult,
        const int32_t *restrict right, const int64_t *restrict rnd, size_t rows, int C, int32_t zp,
        int32_t lo, int32_t hi, float s, float *restrict out)
{
    for (size_t r = 0; r < rows; r++, acc += C, out += C)
        for (int c = 0; c < C; c++) {
            RQ_ROW_BODY
            (void)inside;
        }
}

__attribute__((target_clones("arch=x86-64-v4", "avx2", "default"))) static void
rq_rows_mask(const float *restrict acc, const int32_t *restrict bq, const int32_t *restrict mult,
             const int32_t *restrict right, const int64_t *restrict rnd, size_t rows, int C,
             int32_t zp, int32_t lo, int32_t hi, int ident, float s, float *restrict out,
             uint8_t *restrict pass)
{
    for (size_t r = 0; r < rows; r++, acc += C, out += C, pass += C)
        for (int c = 0; c < C; c++) {
            RQ_ROW_BODY
            pass[c] = (uint8_t)(inside | ident);
        }
}

static void rq_fwd(void *v, size_t b, size_t e)
{
    rq_ctx *c = v;
    const qat_requant_params *rp = c->rp;
    const int32_t zp = rp->zero_point;
    const int ident = rp->ste == QAT_STE_IDENTITY ? 2 : 0;
    size_t o0 = b * (size_t)c->C;
    if (c->all_right && c->pass) {
        rq_rows_mask(c->acc + o0, c->bq, rp->multiplier, c->right, c->rnd, e - b, c->C, zp,
                     rp->act_min, rp->act_max, ident, c->s_out, c->out + o0, c->pass + o0);
        return;
    }
    if (c->all_right) {
        rq_rows(c->acc + o0, c->bq, rp->multiplier, c->right, c->rnd, e - b, c->C, zp,
                rp->act_min, rp->act_max, c->s_out, c->out + o0);
        return;
    }
    for (size_t row = b; row < e; row++) {
        size_t o = row * (size_t)c->C;
        for (int ch = 0; ch < c->C; ch++) {
            int32_t a = acc_value(c->acc[o + ch], c->bq[ch]);
            int32_t q = qat_fp_requantize(a, rp->multiplier[ch], rp->shift[ch], zp, INT32_MIN,
                                          INT32_MAX);
            int inside = q >= rp->act_min && q <= rp->act_max;
            if (c->pass)
                c->pass[o + ch] = (uint8_t)(inside | ident);
            q = q < rp->act_min ? rp->act_min : q > rp->act_max ? rp->act_max : q;
            c->out[o + ch] = c->s_out * (float)(q - zp);
        }
    }
}

/* Rows of the output stage's backward: STE-masked gradient into the
 * accumulator, and per-channel float partial sums for the bias and the
 * accumulator scale (flushed into doubles every few rows by the caller).
 * One loop per output, each over a row: gcc 12 vectorises these, not the
 * three fused in one loop. dy is loaded whether or not the code passed, so
 * the select needs no branch. Each output's arithmetic is as it was. */
__attribute__((target_clones("avx512f", "avx2", "default"))) static void
rq_bwd_rows(const uint8_t *restrict pass, const float *restrict dy, const float *restrict as,
            const float *restrict acc, float *restrict dacc, int fresh, float *restrict dbf,
            float *restrict dsf, size_t rows, int C)
{
    for (size_t r = 0; r < rows; r++) {
        const uint8_t *restrict p = pass + r * (size_t)C;
        const float *restrict d = dy + r * (size_t)C;
        if (dacc && fresh) { /* what += gives on a zeroed buffer, without zeroing it */
            float *restrict da = dacc + r * (size_t)C;
            for (int c = 0; c < C; c++) {
                float v = d[c];
                da[c] = 0.0f + (p[c] ? v : 0.0f) * as[c];
            }
        } else if (dacc) {
            float *restrict da = dacc + r * (size_t)C;
            for (int c = 0; c < C; c++) {
                float v = d[c];
                da[c] += (p[c] ? v : 0.0f) * as[c];
            }
        }
        if (dbf)
            for (int c = 0; c < C; c++) {
                float v = d[c];
                dbf[c] += p[c] ? v : 0.0f;
            }
        if (dsf) {
            const float *restrict a = acc + r * (size_t)C;
            for (int c = 0; c < C; c++) {
                float v = d[c];
                dsf[c] += (p[c] ? v : 0.0f) * a[c];
            }
        }
    }
}

#define RQ_FLUSH_ROWS 256 /* float partials are summed into doubles this often */

static void rq_bwd_part(void *v, int tid, int nt)
{
    rq_ctx *c = v;
    size_t b, e;
    qat_team_range(c->rows, tid, nt, &b, &e);
    const int C = c->C;
    const float *as = c->acc_scale;
    double *db = c->want_bias ? c->dbias + (size_t)tid * C : NULL;
    double *dsc = c->want_scale ? c->dscale + (size_t)tid * C : NULL;
    float *dbf = c->want_bias ? c->fpart + (size_t)tid * 2 * C : NULL;
    float *dsf = c->want_scale ? c->fpart + (size_t)tid * 2 * C + C : NULL;
    for (int ch = 0; ch < C; ch++) {
        if (db)
            db[ch] = 0, dbf[ch] = 0;
        if (dsc)
            dsc[ch] = 0, dsf[ch] = 0;
    }
    for (size_t row = b; row < e; row += RQ_FLUSH_ROWS) {
        size_t n = e - row < RQ_FLUSH_ROWS ? e - row : RQ_FLUSH_ROWS, o = row * (size_t)C;
        rq_bwd_rows(c->pass + o, c->dy + o, as, c->acc + o, c->dacc ? c->dacc + o : NULL, c->fresh,
                    dbf, dsf,
                    n, C);
        for (int ch = 0; ch < C; ch++) {
            if (db)
                db[ch] += dbf[ch], dbf[ch] = 0;
            if (dsc)
                dsc[ch] += dsf[ch], dsf[ch] = 0;
        }
    }
    double dso = 0;
    if (c->want_out_scale) {
        const float inv_s = 1.0f / c->s_out;
        const float zpf = (float)c->rp->zero_point;
        for (size_t row = b; row < e; row++) {
            size_t o = row * (size_t)C;
            for (int ch = 0; ch < C; ch++) {
                /* LSQ: d(s (q - zp))/ds = (q - zp) - y / s inside, (q - zp) clamped */
                float qz = c->y[o + ch] * inv_s; /* = q - zp */
                float u = as[ch] * (float)acc_value(c->acc[o + ch], c->bq[ch]) * inv_s;
                int inside_u = u + zpf >= (float)c->rp->act_min && u + zpf <= (float)c->rp->act_max;
                dso += (double)c->dy[o + ch] * (inside_u ? qz - u : qz);
            }
        }
    }
    c->ds_out.part[tid] = dso;
}

static void requantize_backward(qat_tape *t, const qat_node *n)
{
    rq_ctx *c = n->saved;
    qat_tensor *acc = n->in[0], *acc_scale = n->in[1], *out_scale = n->in[2];
    qat_tensor *bias = n->nin > 3 ? n->in[3] : NULL;
    qat_team *team = qat_tape_team(t);
    int nt = qat_team_threads(team);
    if (c->rows * (size_t)c->C < (size_t)nt * QAT_ELEMWISE_GRAIN)
        nt = 1;
    c->dy = n->out->grad;
    c->dacc = qat_needs_grad(acc) ? qat_tape_grad_fresh(t, acc, &c->fresh) : NULL;
    c->want_bias = qat_needs_grad(bias);
    c->want_scale = qat_needs_grad(acc_scale);
    c->want_out_scale = qat_needs_grad(out_scale);
    size_t part = (size_t)nt * (size_t)c->C * sizeof(double);
    c->dbias = c->want_bias ? qat_tape_alloc(t, part) : NULL;
    c->dscale = c->want_scale ? qat_tape_alloc(t, part) : NULL;
    c->fpart = qat_tape_alloc(t, (size_t)nt * 2 * (size_t)c->C * sizeof(float));
    if (nt == 1)
        rq_bwd_part(c, 0, 1);
    else
        qat_team_run(team, rq_bwd_part, c);
    /* fixed-order reductions: bit-identical per thread count */
    if (c->want_bias) {
        float *g = qat_tape_grad(t, bias);
        for (int ch = 0; ch < c->C; ch++) {
            double s = 0;
            for (int i = 0; i < nt; i++)
                s += c->dbias[(size_t)i * c->C + ch];
            g[ch] += (float)s;
        }
    }
    if (c->want_scale) {
        float *g = qat_tape_grad(t, acc_scale);
        for (int ch = 0; ch < c->C; ch++) {
            double s = 0;
            for (int i = 0; i < nt; i++)
                s += c->dscale[(size_t)i * c->C + ch];
            g[ch] += (float)s;
        }
    }
    if (c->want_out_scale)
        qat_tape_grad(t, out_scale)[0] += (float)reduce(&c->ds_out, nt);
}

qat_tensor *qat_op_requantize(qat_tape *t, qat_tensor *acc, qat_tensor *bias,
                              qat_tensor *acc_scale, qat_tensor *out_scale,
                              const qat_requant_params *rp)
{
    int C = rp->channels;
    QAT_ASSERT(acc->shape[acc->ndim - 1] == C && acc_scale->numel == (size_t)C);
    qat_tensor *y = qat_tape_tensor(t, acc->ndim, acc->shape);
    rq_ctx *c = qat_tape_alloc(t, sizeof *c);
    memset(c, 0, sizeof *c);
    int32_t *bq = qat_tape_alloc(t, (size_t)C * sizeof *bq);
    for (int ch = 0; ch < C; ch++)
        bq[ch] = bias ? qat_quantize_bias(bias->data[ch], acc_scale->data[ch], rp->bias_limit) : 0;
    int record = qat_tape_grad_enabled(t) &&
                 (qat_needs_grad(acc) || qat_needs_grad(bias) || qat_needs_grad(acc_scale) ||
                  qat_needs_grad(out_scale));
    c->rp = rp;
    c->bq = bq;
    c->acc = acc->data;
    c->acc_scale = acc_scale->data;
    c->out = y->data;
    c->y = y->data;
    c->s_out = out_scale->data[0];
    c->pass = record ? qat_tape_alloc(t, acc->numel) : NULL;
    c->rows = acc->numel / (size_t)C;
    c->C = C;
    c->right = qat_tape_alloc(t, (size_t)C * sizeof *c->right);
    c->rnd = qat_tape_alloc(t, (size_t)C * sizeof *c->rnd);
    c->all_right = 1;
    for (int ch = 0; ch < C; ch++) {
        c->all_right &= rp->shift[ch] <= 0;
        c->right[ch] = rp->shift[ch] <= 0 ? -rp->shift[ch] : 0;
        c->rnd[ch] = c->right[ch] ? (int64_t)1 << (c->right[ch] - 1) : 0;
    }
    qat_team_parallel_for(qat_tape_team(t), c->rows, QAT_ELEMWISE_GRAIN / (size_t)C + 1, rq_fwd, c);
    if (record) {
        qat_tensor *in[4] = {acc, acc_scale, out_scale, bias};
        qat_tape_record(t, requantize_backward, y, c, bias ? 4 : 3, in);
    }
    return y;
}

