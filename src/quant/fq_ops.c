/* Fake-quant ops: activation/weight codes, the exact requantizing output
 * stage, plain fake quantization and quantized average-pool rounding. Each
 * forward sits beside its straight-through backward; scale gradients (LSQ)
 * are only computed when the scale tensor requires them. */
#include <math.h>
#include <string.h>

#include "ops/ops_internal.h"
#include "qat/fixedpoint.h"
#include "qat/quant.h"

#define MAX_THREADS 256

qat_tensor *qat_tape_const(qat_tape *t, const float *v, int n)
{
    qat_tensor *c = qat_tape_tensor(t, 1, &n);
    memcpy(c->data, v, (size_t)n * sizeof(float));
    return c;
}

/* Per-thread partial sums reduced in thread order: bit-identical for a given
 * thread count. */
typedef struct {
    double part[MAX_THREADS];
} partials;

static double reduce(const partials *p, int nt)
{
    double s = 0;
    for (int i = 0; i < nt; i++)
        s += p->part[i];
    return s;
}

/* ---- activation codes -------------------------------------------------------- */
typedef struct {
    const float *x, *dy, *k;
    float *y, *dx;
    float s, inv;
    size_t n;
    partials ds;
} codes_ctx;

/* Codes are bounded by the int8 container (or 255 / (1 - p) after dropout);
 * the clamp only keeps garbage finite. */
#define CODE_LIMIT 1073741824.0f

__attribute__((target_clones("avx512f", "avx2", "default"))) static void
codes_run(const float *restrict x, float *restrict y, float s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float r = x[i] / s;
        r = r >= -CODE_LIMIT ? r : -CODE_LIMIT; /* NaN -> -limit */
        r = r <= CODE_LIMIT ? r : CODE_LIMIT;
        int32_t k = (int32_t)r;
        float f = r - (float)k;
        y[i] = (float)(k + (f >= 0.5f) - (f <= -0.5f));
    }
}

static void codes_fwd(void *v, size_t b, size_t e)
{
    codes_ctx *c = v;
    codes_run(c->x + b, c->y + b, c->s, e - b);
}

static void codes_bwd(void *v, int tid, int nt)
{
    codes_ctx *c = v;
    size_t b, e;
    qat_pool_range(c->n, tid, nt, &b, &e);
    double ds = 0;
    for (size_t i = b; i < e; i++) {
        if (c->dx)
            c->dx[i] += c->dy[i] * c->inv;
        ds += (double)c->dy[i] * c->k[i];
    }
    c->ds.part[tid] = -ds * c->inv; /* dk/ds = -k / s */
}

static void act_codes_backward(qat_tape *t, const qat_node *n)
{
    qat_tensor *x = n->in[0], *s = n->in[1];
    codes_ctx *c = n->saved;
    c->dy = n->out->grad;
    c->k = n->out->data;
    c->dx = qat_needs_grad(x) ? qat_tape_grad(t, x) : NULL;
    qat_pool *pool = qat_tape_pool(t);
    int nt = c->n < (size_t)QAT_ELEMWISE_GRAIN * 2 ? 1 : qat_pool_threads(pool);
    if (nt == 1)
        codes_bwd(c, 0, 1);
    else
        qat_pool_run(pool, codes_bwd, c);
    if (qat_needs_grad(s))
        qat_tape_grad(t, s)[0] += (float)reduce(&c->ds, nt);
}

qat_tensor *qat_op_act_codes(qat_tape *t, qat_tensor *x, qat_tensor *scale)
{
    qat_tensor *y = qat_tape_tensor(t, x->ndim, x->shape);
    codes_ctx *c = qat_tape_alloc(t, sizeof *c);
    memset(c, 0, sizeof *c);
    c->x = x->data;
    c->y = y->data;
    c->s = scale->data[0];
    c->inv = 1.0f / c->s;
    c->n = x->numel;
    qat_parallel_for(qat_tape_pool(t), x->numel, QAT_ELEMWISE_GRAIN, codes_fwd, c);
    qat_tensor *in[2] = {x, scale};
    qat_tape_record(t, act_codes_backward, y, c, 2, in);
    return y;
}

/* ---- weight codes -------------------------------------------------------------- */
typedef struct {
    const float *w, *scale, *dy;
    const int32_t *zp;
    float *y, *dw;
    float *ds;     /* per scale entry; rows write disjoint entries per channel */
    uint8_t *pass; /* bit 0: code inside, 1: identity STE, 2: unrounded inside */
    size_t k;      /* row length */
    int per_channel;
    int32_t qmin, qmax;
    int ste;
} wcodes_ctx;

/* One row of weight codes; the unclamped code decides the clipped STE, the
 * unrounded value LSQ's clipping (Esser et al.). */
__attribute__((target_clones("avx512f", "avx2", "default"))) static void
wcodes_row(const float *restrict w, float *restrict y, uint8_t *restrict pass, size_t k, float s,
           int32_t z, int32_t qmin, int32_t qmax, int ident)
{
    for (size_t i = 0; i < k; i++) {
        int32_t q = qat_fp_quantize_vec(w[i], s, z, qmin - 1, qmax + 1);
        int inside = (q >= qmin) & (q <= qmax);
        float u = w[i] / s + (float)z;
        int inside_u = (u >= (float)qmin) & (u <= (float)qmax);
        pass[i] = (uint8_t)(inside | ident | (inside_u << 2));
        q = q < qmin ? qmin : q;
        q = q > qmax ? qmax : q;
        y[i] = (float)(q - z);
    }
}

__attribute__((target_clones("avx512f", "avx2", "default"))) static void
wcodes_row_nomask(const float *restrict w, float *restrict y, size_t k, float s, int32_t z,
                  int32_t qmin, int32_t qmax)
{
    for (size_t i = 0; i < k; i++)
        y[i] = (float)(qat_fp_quantize_vec(w[i], s, z, qmin, qmax) - z);
}

static void wcodes_fwd(void *v, size_t b, size_t e)
{
    wcodes_ctx *c = v;
    for (size_t row = b; row < e; row++) {
        size_t si = c->per_channel ? row : 0, o = row * c->k;
        int32_t z = c->zp ? c->zp[si] : 0;
        if (c->pass)
            wcodes_row(c->w + o, c->y + o, c->pass + o, c->k, c->scale[si], z, c->qmin, c->qmax,
                       c->ste == QAT_STE_IDENTITY ? 2 : 0);
        else
            wcodes_row_nomask(c->w + o, c->y + o, c->k, c->scale[si], z, c->qmin, c->qmax);
    }
}

static void wcodes_bwd(void *v, size_t b, size_t e)
{
    wcodes_ctx *c = v;
    for (size_t row = b; row < e; row++) {
        float s = c->scale[c->per_channel ? row : 0];
        float inv = 1.0f / s;
        double ds = 0;
        for (size_t i = row * c->k; i < (row + 1) * c->k; i++) {
            uint8_t p = c->pass[i];
            if (c->dw && (p & 3))
                c->dw[i] += c->dy[i] * inv;
            if (c->ds && (p & 4)) /* LSQ: d q / d s = -w / s^2 inside */
                ds -= (double)c->dy[i] * c->w[i] * inv * inv;
        }
        if (c->ds)
            c->ds[row] = (float)ds;
    }
}

static void weight_codes_backward(qat_tape *t, const qat_node *n)
{
    qat_tensor *w = n->in[0], *s = n->in[1];
    wcodes_ctx *c = n->saved;
    c->dy = n->out->grad;
    c->dw = qat_needs_grad(w) ? qat_tape_grad(t, w) : NULL;
    size_t rows = (size_t)w->shape[0];
    c->ds = qat_needs_grad(s) ? qat_tape_alloc(t, rows * sizeof(float)) : NULL;
    qat_parallel_for(qat_tape_pool(t), rows, QAT_ELEMWISE_GRAIN / c->k + 1, wcodes_bwd, c);
    if (c->ds) {
        float *gs = qat_tape_grad(t, s);
        for (size_t r = 0; r < rows; r++) /* per tensor: sum rows in order */
            gs[c->per_channel ? r : 0] += c->ds[r];
    }
}

qat_tensor *qat_op_weight_codes(qat_tape *t, qat_tensor *w, qat_tensor *scale, const int32_t *zp,
                                int32_t qmin, int32_t qmax, int ste)
{
    qat_tensor *y = qat_tape_tensor(t, w->ndim, w->shape);
    int record = qat_tape_grad_enabled(t) && (w->requires_grad || scale->requires_grad);
    size_t rows = (size_t)w->shape[0];
    QAT_ASSERT(scale->numel == rows || scale->numel == 1);
    wcodes_ctx *c = qat_tape_alloc(t, sizeof *c);
    *c = (wcodes_ctx){w->data, scale->data, NULL, zp, y->data, NULL, NULL,
                      record ? qat_tape_alloc(t, w->numel) : NULL,
                      w->numel / rows, scale->numel == rows && rows > 1, qmin, qmax, ste};
    if (scale->numel == 1 && rows == 1)
        c->per_channel = 0;
    qat_parallel_for(qat_tape_pool(t), rows, QAT_ELEMWISE_GRAIN / c->k + 1, wcodes_fwd, c);
    if (record) {
        qat_tensor *in[2] = {w, scale};
        qat_tape_record(t, weight_codes_backward, y, c, 2, in);
    }
    return y;
}

/* ---- scale plumbing ------------------------------------------------------------ */
static void acc_scale_backward(qat_tape *t, const qat_node *n)
{
    qat_tensor *si = n->in[0], *sw = n->in[1];
    const float *dy = n->out->grad;
    int C = (int)n->out->numel;
    if (qat_needs_grad(si)) {
        double g = 0;
        for (int c = 0; c < C; c++)
            g += (double)dy[c] * sw->data[sw->numel == 1 ? 0 : c];
        qat_tape_grad(t, si)[0] += (float)g;
    }
    if (qat_needs_grad(sw)) {
        float *g = qat_tape_grad(t, sw);
        for (int c = 0; c < C; c++)
            g[sw->numel == 1 ? 0 : c] += dy[c] * si->data[0];
    }
}

qat_tensor *qat_op_acc_scale(qat_tape *t, qat_tensor *s_in, qat_tensor *s_w, int C)
{
    qat_tensor *y = qat_tape_tensor(t, 1, &C);
    for (int c = 0; c < C; c++)
        y->data[c] = s_in->data[0] * s_w->data[s_w->numel == 1 ? 0 : c];
    qat_tensor *in[2] = {s_in, s_w};
    qat_tape_record(t, acc_scale_backward, y, NULL, 2, in);
    return y;
}

static void grad_scale_backward(qat_tape *t, const qat_node *n)
{
    float g = *(const float *)n->saved;
    float *dx = qat_tape_grad(t, n->in[0]);
    for (size_t i = 0; i < n->out->numel; i++)
        dx[i] += g * n->out->grad[i];
}

qat_tensor *qat_op_grad_scale(qat_tape *t, qat_tensor *x, float g)
{
    qat_tensor *y = qat_tape_tensor(t, x->ndim, x->shape);
    memcpy(y->data, x->data, x->numel * sizeof(float));
    float *s = qat_tape_alloc(t, sizeof *s);
    *s = g;
    qat_tape_record(t, grad_scale_backward, y, s, 1, &x);
    return y;
}

/* ---- requantizing output stage ------------------------------------------------- */
/* The GEMM result is an integer held in a float; llrintf recovers it (exact
 * below 2^24, nearest integer beyond). */
static inline int32_t acc_value(float a, int32_t bq)
{
    long long v = llrintf(a) + (long long)bq;
    return v > INT32_MAX ? INT32_MAX : v < INT32_MIN ? INT32_MIN : (int32_t)v;
}

typedef struct {
    const float *acc;
    const int32_t *bq;
    const float *acc_scale;
    float *vals;    /* PERCENTILE: the real outputs */
    float *mn, *mx; /* [threads][C] per-channel accumulator extremes */
    size_t rows;
    int C, relu;
} range_ctx;

/* Per-channel extremes of the accumulators: scales are positive, so the
 * real range follows from them, and a min/max over rows vectorises across
 * channels. */
__attribute__((target_clones("avx512f", "avx2", "default"))) static void
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
    qat_pool_range(r->rows, tid, nt, &b, &e);
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
                r->vals[i] = r->relu && x < 0.0f ? 0.0f : x;
            }
}

void qat_acc_range(qat_tape *t, const qat_tensor *acc, const qat_tensor *bias,
                   const float *acc_scale, int32_t bias_limit, int relu, int kind,
                   float percentile, float *lo, float *hi)
{
    int C = acc->shape[acc->ndim - 1];
    int32_t *bq = qat_tape_alloc(t, (size_t)C * sizeof *bq);
    for (int c = 0; c < C; c++)
        bq[c] = bias ? qat_quantize_bias(bias->data[c], acc_scale[c], bias_limit) : 0;
    qat_pool *pool = qat_tape_pool(t);
    int nt = qat_pool_threads(pool);
    QAT_ASSERT(nt <= MAX_THREADS);
    if (acc->numel < (size_t)nt * QAT_ELEMWISE_GRAIN)
        nt = 1;
    range_ctx *r = qat_tape_alloc(t, sizeof *r);
    r->acc = acc->data;
    r->bq = bq;
    r->acc_scale = acc_scale;
    r->vals = kind == QAT_OBS_PERCENTILE ? qat_tape_alloc(t, acc->numel * sizeof(float)) : NULL;
    r->mn = qat_tape_alloc(t, (size_t)nt * (size_t)C * sizeof(float));
    r->mx = qat_tape_alloc(t, (size_t)nt * (size_t)C * sizeof(float));
    r->rows = acc->numel / (size_t)C;
    r->C = C;
    r->relu = relu;
    if (nt == 1)
        range_part(r, 0, 1);
    else
        qat_pool_run(pool, range_part, r);
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
    if (r->vals)
        qat_values_range(r->vals, acc->numel, kind, percentile, lo, hi);
}

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

__attribute__((target_clones("avx512f", "avx2", "default"))) static void
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

__attribute__((target_clones("avx512f", "avx2", "default"))) static void
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

/* One row of the output stage's backward: STE-masked gradient into the
 * accumulator, and per-channel float partial sums for the bias and the
 * accumulator scale (flushed into doubles every few rows by the caller).
 * The NULL checks are loop-invariant: the compiler unswitches them. */
__attribute__((target_clones("avx512f", "avx2", "default"))) static void
rq_bwd_rows(const uint8_t *restrict pass, const float *restrict dy, const float *restrict as,
            const float *restrict acc, float *restrict dacc, float *restrict dbf,
            float *restrict dsf, size_t rows, int C)
{
    for (size_t r = 0; r < rows; r++) {
        size_t o = r * (size_t)C;
        for (int c = 0; c < C; c++) {
            float g = pass[o + c] ? dy[o + c] : 0.0f;
            if (dacc)
                dacc[o + c] += g * as[c];
            if (dbf)
                dbf[c] += g;
            if (dsf)
                dsf[c] += g * acc[o + c];
        }
    }
}

#define RQ_FLUSH_ROWS 256 /* float partials are summed into doubles this often */

static void rq_bwd_part(void *v, int tid, int nt)
{
    rq_ctx *c = v;
    size_t b, e;
    qat_pool_range(c->rows, tid, nt, &b, &e);
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
        rq_bwd_rows(c->pass + o, c->dy + o, as, c->acc + o, c->dacc ? c->dacc + o : NULL, dbf, dsf,
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
    qat_pool *pool = qat_tape_pool(t);
    int nt = qat_pool_threads(pool);
    if (c->rows * (size_t)c->C < (size_t)nt * QAT_ELEMWISE_GRAIN)
        nt = 1;
    c->dy = n->out->grad;
    c->dacc = qat_needs_grad(acc) ? qat_tape_grad(t, acc) : NULL;
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
        qat_pool_run(pool, rq_bwd_part, c);
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
    qat_parallel_for(qat_tape_pool(t), c->rows, QAT_ELEMWISE_GRAIN / (size_t)C + 1, rq_fwd, c);
    if (record) {
        qat_tensor *in[4] = {acc, acc_scale, out_scale, bias};
        qat_tape_record(t, requantize_backward, y, c, bias ? 4 : 3, in);
    }
    return y;
}

/* ---- plain fake quantization ------------------------------------------------ */
typedef struct {
    float s;
    int32_t zp, qmin, qmax;
    uint8_t *pass;
} fq_saved;

static void fake_quant_backward(qat_tape *t, const qat_node *n)
{
    qat_tensor *x = n->in[0], *s = n->in[1];
    const fq_saved *sv = n->saved;
    float *dx = qat_needs_grad(x) ? qat_tape_grad(t, x) : NULL;
    double ds = 0;
    float inv = 1.0f / sv->s;
    for (size_t i = 0; i < x->numel; i++) {
        float dy = n->out->grad[i];
        if (dx && sv->pass[i])
            dx[i] += dy;
        float qz = n->out->data[i] * inv, u = x->data[i] * inv;
        int inside_u = u + (float)sv->zp >= (float)sv->qmin && u + (float)sv->zp <= (float)sv->qmax;
        ds += (double)dy * (inside_u ? qz - u : qz);
    }
    if (qat_needs_grad(s))
        qat_tape_grad(t, s)[0] += (float)ds;
}

qat_tensor *qat_op_fake_quant(qat_tape *t, qat_tensor *x, qat_tensor *scale, int32_t zp,
                              int32_t qmin, int32_t qmax, int ste)
{
    qat_tensor *y = qat_tape_tensor(t, x->ndim, x->shape);
    int record = qat_tape_grad_enabled(t) && (x->requires_grad || scale->requires_grad);
    uint8_t *pass = record ? qat_tape_alloc(t, x->numel) : NULL;
    float s = scale->data[0];
    for (size_t i = 0; i < x->numel; i++) {
        int32_t q = qat_fp_quantize(x->data[i], s, zp, qmin - 1, qmax + 1);
        int inside = q >= qmin && q <= qmax;
        if (pass)
            pass[i] = (uint8_t)(inside | (ste == QAT_STE_IDENTITY ? 2 : 0));
        q = q < qmin ? qmin : q > qmax ? qmax : q;
        y->data[i] = s * (float)(q - zp);
    }
    if (record) {
        fq_saved *sv = qat_tape_alloc(t, sizeof *sv);
        *sv = (fq_saved){s, zp, qmin, qmax, pass};
        qat_tensor *in[2] = {x, scale};
        qat_tape_record(t, fake_quant_backward, y, sv, 2, in);
    }
    return y;
}

/* ---- quantized average-pool rounding ------------------------------------------ */
static void identity_backward(qat_tape *t, const qat_node *n)
{
    qat_tensor *x = n->in[0];
    if (!qat_needs_grad(x))
        return;
    float *dx = qat_tape_grad(t, x);
    for (size_t i = 0; i < x->numel; i++)
        dx[i] += n->out->grad[i];
}

qat_tensor *qat_op_avgpool_round(qat_tape *t, qat_tensor *avg, float scale, int window)
{
    qat_tensor *y = qat_tape_tensor(t, avg->ndim, avg->shape);
    for (size_t i = 0; i < avg->numel; i++) {
        /* the float average of codes times scale: the code sum is recovered
         * exactly (it is an integer far below 2^24) */
        int32_t sum = (int32_t)lrintf(avg->data[i] * (float)window / scale);
        y->data[i] = scale * (float)qat_fp_div_round(sum, window);
    }
    qat_tape_record(t, identity_backward, y, NULL, 1, &avg);
    return y;
}
