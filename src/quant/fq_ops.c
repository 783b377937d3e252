/* Fake-quant ops: activation/weight codes, the exact requantizing output
 * stage, plain fake quantization and quantized average-pool rounding. Each
 * forward sits beside its straight-through backward. */
#include <math.h>
#include <string.h>

#include "ops/ops_internal.h"
#include "qat/fixedpoint.h"
#include "qat/quant.h"

/* ---- activation codes -------------------------------------------------------- */
typedef struct {
    const float *x, *dy;
    float *y, *dx;
    float s, inv;
} codes_ctx;

/* Codes are bounded by the int8 container (or 255 / (1 - p) after dropout);
 * the clamp only keeps garbage finite. */
#define CODE_LIMIT 1073741824.0f

static void codes_fwd(void *v, size_t b, size_t e)
{
    codes_ctx *c = v;
    for (size_t i = b; i < e; i++) {
        float r = c->x[i] / c->s;
        r = r > CODE_LIMIT ? CODE_LIMIT : r < -CODE_LIMIT ? -CODE_LIMIT : r;
        c->y[i] = (float)qat_fp_round(r);
    }
}

static void codes_bwd(void *v, size_t b, size_t e)
{
    codes_ctx *c = v;
    for (size_t i = b; i < e; i++)
        c->dx[i] += c->dy[i] * c->inv;
}

static void act_codes_backward(qat_tape *t, const qat_node *n)
{
    qat_tensor *x = n->in[0];
    if (!qat_needs_grad(x))
        return;
    codes_ctx c = {NULL, n->out->grad, NULL, qat_tape_grad(t, x), 0, 1.0f / *(float *)n->saved};
    qat_parallel_for(qat_tape_pool(t), x->numel, QAT_ELEMWISE_GRAIN, codes_bwd, &c);
}

qat_tensor *qat_op_act_codes(qat_tape *t, qat_tensor *x, float scale)
{
    qat_tensor *y = qat_tape_tensor(t, x->ndim, x->shape);
    codes_ctx c = {x->data, NULL, y->data, NULL, scale, 0};
    qat_parallel_for(qat_tape_pool(t), x->numel, QAT_ELEMWISE_GRAIN, codes_fwd, &c);
    if (qat_tape_grad_enabled(t) && x->requires_grad) {
        float *s = qat_tape_alloc(t, sizeof *s);
        *s = scale;
        qat_tape_record(t, act_codes_backward, y, s, 1, &x);
    }
    return y;
}

/* ---- weight codes -------------------------------------------------------------- */
typedef struct {
    const float *w, *scale, *dy;
    float *y, *dw;
    uint8_t *pass; /* STE mask saved by the forward */
    size_t k;      /* row length */
    int32_t qmin, qmax;
    int ste;
} wcodes_ctx;

static void wcodes_fwd(void *v, size_t b, size_t e)
{
    wcodes_ctx *c = v;
    for (size_t row = b; row < e; row++) {
        float s = c->scale[row];
        for (size_t i = row * c->k; i < (row + 1) * c->k; i++) {
            /* the unclamped code decides the clipped STE */
            int32_t q = qat_fp_quantize(c->w[i], s, 0, c->qmin - 1, c->qmax + 1);
            if (c->pass)
                c->pass[i] = (uint8_t)((q >= c->qmin && q <= c->qmax) || c->ste == QAT_STE_IDENTITY);
            c->y[i] = (float)(q < c->qmin ? c->qmin : q > c->qmax ? c->qmax : q);
        }
    }
}

static void wcodes_bwd(void *v, size_t b, size_t e)
{
    wcodes_ctx *c = v;
    for (size_t row = b; row < e; row++) {
        float inv = 1.0f / c->scale[row];
        for (size_t i = row * c->k; i < (row + 1) * c->k; i++)
            c->dw[i] += c->pass[i] ? c->dy[i] * inv : 0.0f;
    }
}

static void weight_codes_backward(qat_tape *t, const qat_node *n)
{
    qat_tensor *w = n->in[0];
    if (!qat_needs_grad(w))
        return;
    wcodes_ctx *c = n->saved;
    c->dy = n->out->grad;
    c->dw = qat_tape_grad(t, w);
    qat_parallel_for(qat_tape_pool(t), (size_t)w->shape[0], QAT_ELEMWISE_GRAIN / c->k + 1,
                     wcodes_bwd, c);
}

qat_tensor *qat_op_weight_codes(qat_tape *t, qat_tensor *w, const float *scale, int32_t qmin,
                                int32_t qmax, int ste)
{
    qat_tensor *y = qat_tape_tensor(t, w->ndim, w->shape);
    int record = qat_tape_grad_enabled(t) && w->requires_grad;
    wcodes_ctx *c = qat_tape_alloc(t, sizeof *c);
    *c = (wcodes_ctx){w->data, scale, NULL, y->data, NULL,
                      record ? qat_tape_alloc(t, w->numel) : NULL,
                      w->numel / (size_t)w->shape[0], qmin, qmax, ste};
    qat_parallel_for(qat_tape_pool(t), (size_t)w->shape[0], QAT_ELEMWISE_GRAIN / c->k + 1,
                     wcodes_fwd, c);
    if (record)
        qat_tape_record(t, weight_codes_backward, y, c, 1, &w);
    return y;
}

/* ---- requantizing output stage ------------------------------------------------- */
static void bias_codes(const qat_tensor *bias, const qat_requant_params *rp, int32_t *bq)
{
    for (int c = 0; c < rp->channels; c++)
        bq[c] = bias ? qat_quantize_bias(bias->data[c], rp->acc_scale[c], rp->bias_limit) : 0;
}

/* The GEMM result is an integer held in a float; llrintf recovers it (exact
 * below 2^24, nearest integer beyond). */
static inline int32_t acc_value(float a, int32_t bq)
{
    long long v = llrintf(a) + (long long)bq;
    return v > INT32_MAX ? INT32_MAX : v < INT32_MIN ? INT32_MIN : (int32_t)v;
}

#define MAX_THREADS 256

typedef struct {
    const float *acc;
    const int32_t *bq;
    const float *acc_scale;
    size_t rows;
    int C, relu;
    float lo[MAX_THREADS], hi[MAX_THREADS];
} range_ctx;

static void range_part(void *v, int tid, int nt)
{
    range_ctx *r = v;
    size_t b, e;
    qat_pool_range(r->rows, tid, nt, &b, &e);
    float lo = INFINITY, hi = -INFINITY;
    for (size_t row = b; row < e; row++) {
        const float *a = r->acc + row * (size_t)r->C;
        for (int c = 0; c < r->C; c++) {
            float x = (float)acc_value(a[c], r->bq[c]) * r->acc_scale[c];
            lo = x < lo ? x : lo;
            hi = x > hi ? x : hi;
        }
    }
    if (r->relu) {
        lo = fmaxf(lo, 0.0f);
        hi = fmaxf(hi, 0.0f);
    }
    r->lo[tid] = lo;
    r->hi[tid] = hi;
}

void qat_acc_range(qat_tape *t, const qat_tensor *acc, const qat_tensor *bias,
                   const float *acc_scale, int32_t bias_limit, int relu, float *lo, float *hi)
{
    int C = acc->shape[acc->ndim - 1];
    int32_t *bq = qat_tape_alloc(t, (size_t)C * sizeof *bq);
    for (int c = 0; c < C; c++)
        bq[c] = bias ? qat_quantize_bias(bias->data[c], acc_scale[c], bias_limit) : 0;
    range_ctx *r = qat_tape_alloc(t, sizeof *r);
    r->acc = acc->data;
    r->bq = bq;
    r->acc_scale = acc_scale;
    r->rows = acc->numel / (size_t)C;
    r->C = C;
    r->relu = relu;
    qat_pool *pool = qat_tape_pool(t);
    int nt = qat_pool_threads(pool);
    QAT_ASSERT(nt <= MAX_THREADS);
    if (acc->numel < (size_t)nt * QAT_ELEMWISE_GRAIN)
        nt = 1, range_part(r, 0, 1);
    else
        qat_pool_run(pool, range_part, r);
    *lo = INFINITY;
    *hi = -INFINITY;
    for (int i = 0; i < nt; i++) { /* min/max: order cannot change the result */
        *lo = fminf(*lo, r->lo[i]);
        *hi = fmaxf(*hi, r->hi[i]);
    }
}

typedef struct {
    const qat_requant_params *rp;
    const int32_t *bq;
    const float *acc, *dy;
    float *y, *dacc;
    uint8_t *mask;     /* 1 where the STE passes the gradient */
    float *dbias_part; /* [threads][C] partial bias gradients */
    size_t rows;
    int C;
} rq_ctx;

static void rq_fwd(void *v, size_t b, size_t e)
{
    rq_ctx *c = v;
    const qat_requant_params *rp = c->rp;
    const int32_t zp = rp->out.zero_point;
    const float s = rp->out.scale;
    for (size_t row = b; row < e; row++) {
        size_t o = row * (size_t)c->C;
        for (int ch = 0; ch < c->C; ch++) {
            int32_t a = acc_value(c->acc[o + ch], c->bq[ch]);
            int32_t q = qat_fp_requantize(a, rp->multiplier[ch], rp->shift[ch], zp, INT32_MIN,
                                          INT32_MAX);
            int inside = q >= rp->act_min && q <= rp->act_max;
            if (c->mask)
                c->mask[o + ch] = (uint8_t)(inside || rp->ste == QAT_STE_IDENTITY);
            q = q < rp->act_min ? rp->act_min : q > rp->act_max ? rp->act_max : q;
            c->y[o + ch] = s * (float)(q - zp);
        }
    }
}

static void rq_bwd_part(void *v, int tid, int nt)
{
    rq_ctx *c = v;
    size_t b, e;
    qat_pool_range(c->rows, tid, nt, &b, &e);
    const float *scale = c->rp->acc_scale;
    float *db = c->dbias_part ? c->dbias_part + (size_t)tid * (size_t)c->C : NULL;
    if (db)
        memset(db, 0, (size_t)c->C * sizeof *db);
    for (size_t row = b; row < e; row++) {
        size_t o = row * (size_t)c->C;
        for (int ch = 0; ch < c->C; ch++) {
            float g = c->mask[o + ch] ? c->dy[o + ch] : 0.0f;
            if (c->dacc)
                c->dacc[o + ch] += g * scale[ch];
            if (db)
                db[ch] += g;
        }
    }
}

static void requantize_backward(qat_tape *t, const qat_node *n)
{
    rq_ctx *c = n->saved;
    qat_tensor *acc = n->in[0], *bias = n->nin > 1 ? n->in[1] : NULL;
    qat_pool *pool = qat_tape_pool(t);
    int nt = qat_pool_threads(pool);
    if (c->rows * (size_t)c->C < (size_t)nt * QAT_ELEMWISE_GRAIN)
        nt = 1;
    c->dy = n->out->grad;
    c->dacc = qat_needs_grad(acc) ? qat_tape_grad(t, acc) : NULL;
    c->dbias_part = qat_needs_grad(bias)
                        ? qat_tape_alloc(t, (size_t)nt * (size_t)c->C * sizeof(float))
                        : NULL;
    if (nt == 1)
        rq_bwd_part(c, 0, 1);
    else
        qat_pool_run(pool, rq_bwd_part, c);
    if (c->dbias_part) {
        float *db = qat_tape_grad(t, bias);
        for (int i = 0; i < nt; i++) /* fixed order: bit-identical per thread count */
            for (int ch = 0; ch < c->C; ch++)
                db[ch] += c->dbias_part[(size_t)i * (size_t)c->C + ch];
    }
}

qat_tensor *qat_op_requantize(qat_tape *t, qat_tensor *acc, qat_tensor *bias,
                              const qat_requant_params *rp)
{
    int C = rp->channels;
    QAT_ASSERT(acc->shape[acc->ndim - 1] == C);
    qat_tensor *y = qat_tape_tensor(t, acc->ndim, acc->shape);
    rq_ctx *c = qat_tape_alloc(t, sizeof *c);
    memset(c, 0, sizeof *c);
    int32_t *bq = qat_tape_alloc(t, (size_t)C * sizeof *bq);
    bias_codes(bias, rp, bq);
    int record = qat_tape_grad_enabled(t) && (qat_needs_grad(acc) || qat_needs_grad(bias));
    c->rp = rp;
    c->bq = bq;
    c->acc = acc->data;
    c->y = y->data;
    c->mask = record ? qat_tape_alloc(t, acc->numel) : NULL;
    c->rows = acc->numel / (size_t)C;
    c->C = C;
    qat_parallel_for(qat_tape_pool(t), c->rows, QAT_ELEMWISE_GRAIN / (size_t)C + 1, rq_fwd, c);
    if (record) {
        qat_tensor *in[2] = {acc, bias};
        qat_tape_record(t, requantize_backward, y, c, bias ? 2 : 1, in);
    }
    return y;
}

/* ---- plain fake quantization ------------------------------------------------ */
static void fake_quant_backward(qat_tape *t, const qat_node *n)
{
    qat_tensor *x = n->in[0];
    if (!qat_needs_grad(x))
        return;
    const uint8_t *pass = n->saved;
    float *dx = qat_tape_grad(t, x);
    for (size_t i = 0; i < x->numel; i++)
        dx[i] += pass[i] ? n->out->grad[i] : 0.0f;
}

qat_tensor *qat_op_fake_quant(qat_tape *t, qat_tensor *x, qat_qparams qp, int ste)
{
    qat_tensor *y = qat_tape_tensor(t, x->ndim, x->shape);
    int record = qat_tape_grad_enabled(t) && x->requires_grad;
    uint8_t *pass = record ? qat_tape_alloc(t, x->numel) : NULL;
    for (size_t i = 0; i < x->numel; i++) {
        int32_t q = qat_fp_quantize(x->data[i], qp.scale, qp.zero_point, qp.qmin - 1, qp.qmax + 1);
        if (pass)
            pass[i] = (uint8_t)((q >= qp.qmin && q <= qp.qmax) || ste == QAT_STE_IDENTITY);
        q = q < qp.qmin ? qp.qmin : q > qp.qmax ? qp.qmax : q;
        y->data[i] = qp.scale * (float)(q - qp.zero_point);
    }
    if (record)
        qat_tape_record(t, fake_quant_backward, y, pass, 1, &x);
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
