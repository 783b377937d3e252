/* Fake-quant ops: activation/weight codes, the exact requantizing output
 * stage, plain fake quantization and quantized average-pool rounding. Each
 * forward sits beside its straight-through backward; scale gradients (LSQ)
 * are only computed when the scale tensor requires them. */
#include "clones.h" /* first: its pragma must precede every inline function */
#include <math.h>
#include <string.h>

#include "qat/team.h"
#include "qat/fixedpoint.h"
#include "qat/quant.h"

#include "quant_internal.h"

qat_tensor *qat_tape_const(qat_tape *t, const float *v, int n)
{
    qat_tensor *c = qat_tape_tensor(t, 1, &n);
    memcpy(c->data, v, (size_t)n * sizeof(float));
    return c;
}

/* acc + v where pass, else acc bit for bit (-0 included): a select on the
 * bits, not a branch, so the loops that call it vectorise. */
static inline float add_where(float acc, float v, int pass)
{
    float sum = acc + v;
    uint32_t nb, ob;
    memcpy(&nb, &sum, sizeof nb);
    memcpy(&ob, &acc, sizeof ob);
    uint32_t m = 0u - (uint32_t)(pass != 0);
    nb = (nb & m) | (ob & ~m);
    memcpy(&acc, &nb, sizeof acc);
    return acc;
}

/* ---- activation codes -------------------------------------------------------- */
typedef struct {
    const float *x, *dy, *k;
    float *y, *dx;
    float s, inv;
    size_t n;
    int want_ds; /* the scale takes a gradient (LSQ) */
    int fresh;   /* dx was just taken uninitialised (qat_tape_grad_fresh) */
    partials ds;
} codes_ctx;

/* Codes are bounded by the int8 container (or 255 / (1 - p) after dropout);
 * the clamp only keeps garbage finite. */
#define CODE_LIMIT 1073741824.0f

/* Two loops over a chunk that stays in L1: gcc 12 vectorises each alone, but
 * not the clamp and the rounding fused in one loop (it keeps branches there:
 * one vdivss a code). Same operations, same bits. */
QUANT_CLONES static void
codes_run(const float *restrict x, float *restrict y, float s, size_t n)
{
    for (size_t c = 0; c < n; c += 1024) {
        size_t m = n - c < 1024 ? n - c : 1024;
        const float *restrict xc = x + c;
        float *restrict yc = y + c;
        for (size_t i = 0; i < m; i++) {
            float r = xc[i] / s;
            r = r >= -CODE_LIMIT ? r : -CODE_LIMIT; /* NaN -> -limit */
            yc[i] = r <= CODE_LIMIT ? r : CODE_LIMIT;
        }
        for (size_t i = 0; i < m; i++) {
            int32_t k = (int32_t)yc[i];
            float f = yc[i] - (float)k;
            yc[i] = (float)(k + (f >= 0.5f) - (f <= -0.5f));
        }
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
    qat_team_range(c->n, tid, nt, &b, &e);
    /* two loops: the first vectorises; the second, a double sum in order,
     * cannot, and runs only when the scale learns */
    if (c->dx) {
        float *restrict dx = c->dx;
        const float *restrict dy = c->dy;
        if (c->fresh) /* qat_tape_grad_fresh: stored, no zero-fill pass */
            for (size_t i = b; i < e; i++)
                dx[i] = 0.0f + dy[i] * c->inv;
        else
            for (size_t i = b; i < e; i++)
                dx[i] += dy[i] * c->inv;
    }
    if (!c->want_ds)
        return;
    double ds = 0;
    for (size_t i = b; i < e; i++)
        ds += (double)c->dy[i] * c->k[i];
    c->ds.part[tid] = -ds * c->inv; /* dk/ds = -k / s */
}

static void act_codes_backward(qat_tape *t, const qat_node *n)
{
    qat_tensor *x = n->in[0], *s = n->in[1];
    codes_ctx *c = n->saved;
    c->dy = n->out->grad;
    c->k = n->out->data;
    c->dx = qat_needs_grad(x) ? qat_tape_grad_fresh(t, x, &c->fresh) : NULL;
    c->want_ds = qat_needs_grad(s);
    qat_team *team = qat_tape_team(t);
    int nt = c->n < (size_t)QAT_ELEMWISE_GRAIN * 2 ? 1 : qat_team_threads(team);
    if (nt == 1)
        codes_bwd(c, 0, 1);
    else
        qat_team_run(team, codes_bwd, c);
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
    qat_team_parallel_for(qat_tape_team(t), x->numel, QAT_ELEMWISE_GRAIN, codes_fwd, c);
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
QUANT_CLONES static void
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

#if defined(__x86_64__)
#include <immintrin.h>
/* wcodes_row, 16 at a time with AVX-512 masks: GCC's own vectorisation of
 * it keeps 8 lanes and spills (it was 2.9% of an MNIST QAT step, paid once
 * per step whatever the batch: twice the share on each of 2 ranks). The
 * same operations on each lane, so the same bits. */
__attribute__((target("avx512f"))) static size_t
wcodes_row16(const float *restrict w, float *restrict y, uint8_t *restrict pass, size_t k, float s,
             int32_t z, int32_t qmin, int32_t qmax, int ident)
{
    /* qat_fp_quantize_vec(w, s, z, qmin - 1, qmax + 1), unrolled */
    const __m512 vs = _mm512_set1_ps(s), fz = _mm512_set1_ps((float)z);
    const __m512 lo = _mm512_set1_ps((float)(qmin - 1 - z) - 1.0f);
    const __m512 hi = _mm512_set1_ps((float)(qmax + 1 - z) + 1.0f);
    const __m512 half = _mm512_set1_ps(0.5f), mhalf = _mm512_set1_ps(-0.5f);
    const __m512 fmin = _mm512_set1_ps((float)qmin), fmax = _mm512_set1_ps((float)qmax);
    const __m512i one = _mm512_set1_epi32(1), vz = _mm512_set1_epi32(z);
    const __m512i qlo = _mm512_set1_epi32(qmin - 1), qhi = _mm512_set1_epi32(qmax + 1);
    const __m512i vmin = _mm512_set1_epi32(qmin), vmax = _mm512_set1_epi32(qmax);
    const __m512i base = _mm512_set1_epi32(ident), four = _mm512_set1_epi32(4);
    size_t i = 0;
    for (; i + 16 <= k; i += 16) {
        __m512 r = _mm512_div_ps(_mm512_loadu_ps(w + i), vs);
        __m512 u = _mm512_add_ps(r, fz);
        r = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(r, lo, _CMP_GE_OQ), lo, r); /* NaN: lo */
        r = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(r, hi, _CMP_LE_OQ), hi, r);
        __m512i q = _mm512_cvttps_epi32(r);
        __m512 f = _mm512_sub_ps(r, _mm512_cvtepi32_ps(q));
        q = _mm512_mask_add_epi32(q, _mm512_cmp_ps_mask(f, half, _CMP_GE_OQ), q, one);
        q = _mm512_mask_sub_epi32(q, _mm512_cmp_ps_mask(f, mhalf, _CMP_LE_OQ), q, one);
        q = _mm512_min_epi32(_mm512_max_epi32(_mm512_add_epi32(q, vz), qlo), qhi);
        __mmask16 in = _mm512_cmpge_epi32_mask(q, vmin) & _mm512_cmple_epi32_mask(q, vmax);
        __mmask16 in_u = _mm512_cmp_ps_mask(u, fmin, _CMP_GE_OQ) &
                         _mm512_cmp_ps_mask(u, fmax, _CMP_LE_OQ);
        __m512i p = _mm512_mask_or_epi32(base, in, base, one);
        p = _mm512_mask_or_epi32(p, in_u, p, four);
        _mm_storeu_si128((__m128i *)(pass + i), _mm512_cvtepi32_epi8(p));
        q = _mm512_min_epi32(_mm512_max_epi32(q, vmin), vmax);
        _mm512_storeu_ps(y + i, _mm512_cvtepi32_ps(_mm512_sub_epi32(q, vz)));
    }
    return i;
}

/* wgrad_row's select, 16 at a time: a product, then a sum (never fused),
 * kept where the STE passes. */
__attribute__((target("avx512f"))) static size_t wgrad_row16(float *restrict dw,
                                                             const float *restrict dy,
                                                             const uint8_t *restrict pass,
                                                             size_t k, float inv)
{
    const __m512 vi = _mm512_set1_ps(inv);
    const __m512i three = _mm512_set1_epi32(3);
    size_t i = 0;
    for (; i + 16 <= k; i += 16) {
        __m512i p = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(pass + i)));
        __mmask16 m = _mm512_test_epi32_mask(p, three);
        __m512 a = _mm512_loadu_ps(dw + i);
        __m512 v = _mm512_mul_ps(_mm512_loadu_ps(dy + i), vi);
        __asm__("" : "+v"(v)); /* the product rounds before the sum */
        _mm512_storeu_ps(dw + i, _mm512_mask_add_ps(a, m, a, v));
    }
    return i;
}

/* __builtin_cpu_supports reads a word libgcc filled at start-up: no cache
 * (a static one would be written by several team threads at once). */
static int have_avx512f(void) { return __builtin_cpu_supports("avx512f") != 0; }
#endif

QUANT_CLONES static void
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
        if (c->pass) {
            int ident = c->ste == QAT_STE_IDENTITY ? 2 : 0;
            size_t d = 0;
#if defined(__x86_64__)
            if (have_avx512f())
                d = wcodes_row16(c->w + o, c->y + o, c->pass + o, c->k, c->scale[si], z, c->qmin,
                                 c->qmax, ident);
#endif
            wcodes_row(c->w + o + d, c->y + o + d, c->pass + o + d, c->k - d, c->scale[si], z,
                       c->qmin, c->qmax, ident);
        }
        else
            wcodes_row_nomask(c->w + o, c->y + o, c->k, c->scale[si], z, c->qmin, c->qmax);
    }
}

/* dw[i] += dy[i] * inv where the STE passes, else dw[i] unchanged (-0
 * included): the select on the bits has no branch, so it vectorises; no
 * target clones, whose FMA would fuse the product into the sum. */
static void wgrad_row(float *restrict dw, const float *restrict dy, const uint8_t *restrict pass,
                      size_t k, float inv)
{
    for (size_t i = 0; i < k; i++)
        dw[i] = add_where(dw[i], dy[i] * inv, (pass[i] & 3) != 0);
}

static void wcodes_bwd(void *v, size_t b, size_t e)
{
    wcodes_ctx *c = v;
    for (size_t row = b; row < e; row++) {
        float s = c->scale[c->per_channel ? row : 0];
        float inv = 1.0f / s;
        size_t o = row * c->k;
        if (c->dw) {
            size_t d = 0;
#if defined(__x86_64__)
            if (have_avx512f())
                d = wgrad_row16(c->dw + o, c->dy + o, c->pass + o, c->k, inv);
#endif
            wgrad_row(c->dw + o + d, c->dy + o + d, c->pass + o + d, c->k - d, inv);
        }
        if (!c->ds)
            continue;
        double ds = 0;
        for (size_t i = o; i < o + c->k; i++)
            if (c->pass[i] & 4) /* LSQ: d q / d s = -w / s^2 inside */
                ds -= (double)c->dy[i] * c->w[i] * inv * inv;
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
    qat_team_parallel_for(qat_tape_team(t), rows, QAT_ELEMWISE_GRAIN / c->k + 1, wcodes_bwd, c);
    if (c->ds) {
        float *gs = qat_tape_grad(t, s);
        for (size_t r = 0; r < rows; r++) /* per tensor: sum rows in order */
            gs[c->per_channel ? r : 0] += c->ds[r];
    }
}

qat_tensor *qat_op_weight_codes(qat_tape *t, qat_tensor *w, qat_tensor *scale, const int32_t *zp,
                                int32_t qmin, int32_t qmax, qat_ste_kind ste)
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
    qat_team_parallel_for(qat_tape_team(t), rows, QAT_ELEMWISE_GRAIN / c->k + 1, wcodes_fwd, c);
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

/* ---- plain fake quantization ------------------------------------------------ */
typedef struct {
    float s;
    int32_t zp, qmin, qmax;
    uint8_t *pass;
} fq_saved;

/* dx where the STE passes: stored (0 + dy, -0 included) into a fresh
 * buffer, else added with a branch-free select so the loop vectorises. */
typedef struct {
    const float *dy;
    const uint8_t *pass;
    float *dx;
    int fresh;
} ste_ctx;

QUANT_CLONES static void
ste_rows(void *v, size_t b, size_t e)
{
    const ste_ctx *c = v;
    const float *restrict dy = c->dy;
    const uint8_t *restrict pass = c->pass;
    float *restrict dx = c->dx;
    if (c->fresh) { /* dy read whatever the mask says: a select, no branch */
        for (size_t i = b; i < e; i++) {
            float d = dy[i];
            dx[i] = 0.0f + (pass[i] ? d : 0.0f);
        }
        return;
    }
    for (size_t i = b; i < e; i++)
        dx[i] = add_where(dx[i], dy[i], pass[i] != 0);
}

static void fake_quant_backward(qat_tape *t, const qat_node *n)
{
    qat_tensor *x = n->in[0], *s = n->in[1];
    const fq_saved *sv = n->saved;
    if (qat_needs_grad(x)) {
        ste_ctx c = {n->out->grad, sv->pass, NULL, 0};
        c.dx = qat_tape_grad_fresh(t, x, &c.fresh);
        qat_team_parallel_for(qat_tape_team(t), x->numel, QAT_ELEMWISE_GRAIN, ste_rows, &c);
    }
    if (!qat_needs_grad(s)) /* the scale's in-order double sum only when it learns */
        return;
    double ds = 0;
    float inv = 1.0f / sv->s;
    for (size_t i = 0; i < x->numel; i++) {
        float dy = n->out->grad[i];
        float qz = n->out->data[i] * inv, u = x->data[i] * inv;
        int inside_u = u + (float)sv->zp >= (float)sv->qmin && u + (float)sv->zp <= (float)sv->qmax;
        ds += (double)dy * (inside_u ? qz - u : qz);
    }
    qat_tape_grad(t, s)[0] += (float)ds;
}

/* One range of the fake-quant forward: qat_fp_quantize_vec is
 * qat_fp_quantize without branches (same result for every input), so the
 * loop vectorises; the masked variant is a loop of its own for the same
 * reason as rq_rows_mask's. */
typedef struct {
    const float *x;
    float *y;
    uint8_t *pass;
    float s;
    int32_t zp, qmin, qmax;
    uint8_t ident;
} fq_ctx;

QUANT_CLONES static void
fq_run(const float *restrict x, float *restrict y, uint8_t *restrict pass, float s, int32_t zp,
       int32_t qmin, int32_t qmax, uint8_t ident, size_t n)
{
    if (pass)
        for (size_t i = 0; i < n; i++) {
            int32_t q = qat_fp_quantize_vec(x[i], s, zp, qmin - 1, qmax + 1);
            pass[i] = (uint8_t)(((q >= qmin) & (q <= qmax)) | ident);
            q = q < qmin ? qmin : q > qmax ? qmax : q;
            y[i] = s * (float)(q - zp);
        }
    else
        for (size_t i = 0; i < n; i++) {
            int32_t q = qat_fp_quantize_vec(x[i], s, zp, qmin, qmax);
            y[i] = s * (float)(q - zp);
        }
}

static void fq_fwd(void *v, size_t b, size_t e)
{
    fq_ctx *c = v;
    fq_run(c->x + b, c->y + b, c->pass ? c->pass + b : NULL, c->s, c->zp, c->qmin, c->qmax,
           c->ident, e - b);
}

qat_tensor *qat_op_fake_quant(qat_tape *t, qat_tensor *x, qat_tensor *scale, int32_t zp,
                              int32_t qmin, int32_t qmax, qat_ste_kind ste)
{
    qat_tensor *y = qat_tape_tensor(t, x->ndim, x->shape);
    int record = qat_tape_grad_enabled(t) && (x->requires_grad || scale->requires_grad);
    uint8_t *pass = record ? qat_tape_alloc(t, x->numel) : NULL;
    float s = scale->data[0];
    fq_ctx c = {x->data, y->data, pass, s, zp, qmin, qmax, ste == QAT_STE_IDENTITY ? 2 : 0};
    qat_team_parallel_for(qat_tape_team(t), x->numel, QAT_ELEMWISE_GRAIN, fq_fwd, &c);
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
