/* Layers whose output has a quantization of its own but no weights: add,
 * concat and global average pooling. Their integers (multipliers of the
 * inputs and the output, docs/ARITHMETIC.md §2 and §4.1), their exact
 * fake-quant ops, which compute on codes with the runtime's own functions
 * (include/qat/fixedpoint.h) beside their straight-through backward, and
 * their checkpointed state (an activation observer). */
#include "clones.h" /* first: its pragma must precede every inline function */
#include <math.h>
#include <string.h>

#include "qat/fixedpoint.h"
#include "qat/quant.h"
#include "qat/team.h"

/* Training may feed codes beyond int8 (dropout scales by 1 / (1 - p)); a
 * clamp far outside the valid range keeps the integer add from overflowing
 * (1024 * 2^20 * M_in <= 2^29) without touching any code a model can hold. */
#define CODE_CLAMP 1024

static int mult(double M, int32_t *m, int32_t *shift)
{
    if (qat_fp_quantize_multiplier(M, m, shift) == 0)
        return 0;
    *m = INT32_MAX;
    *shift = QAT_SHIFT_MAX;
    return 1;
}

int qat_quant_merge_finish(qat_layer_quant *q, qat_layer_type type, int window)
{
    qat_merge_params *p = &q->merge;
    p->type = type;
    p->window = window;
    p->out = q->out;
    p->act_min = q->act_min;
    p->act_max = q->act_max;
    p->ste = q->cfg->activation_ste;
    const double so = (double)q->out.scale;
    int bad = 0;
    switch (type) {
    case QAT_LAYER_ADD: {
        /* TFLite's ADD: both inputs onto the scale 2 max(s_a, s_b) / 2^20,
         * so each input multiplier is at most 1/2 (a right shift) */
        double sa = (double)p->in[0].scale, sb = (double)p->in[1].scale;
        double twice_max = 2.0 * (sa > sb ? sa : sb);
        p->left_shift = QAT_ADD_LEFT_SHIFT;
        bad |= mult(sa / twice_max, &p->in_mult[0], &p->in_shift[0]);
        bad |= mult(sb / twice_max, &p->in_mult[1], &p->in_shift[1]);
        bad |= mult(twice_max / ((double)(1 << QAT_ADD_LEFT_SHIFT) * so), &p->out_mult,
                    &p->out_shift);
        break;
    }
    case QAT_LAYER_CONCAT:
        for (int k = 0; k < p->n; k++)
            bad |= mult((double)p->in[k].scale / so, &p->in_mult[k], &p->in_shift[k]);
        break;
    case QAT_LAYER_GLOBAL_AVGPOOL:
        /* the mean and the change of scale in one rounding */
        bad |= mult((double)p->in[0].scale / ((double)window * so), &p->out_mult, &p->out_shift);
        break;
    default:
        QAT_ASSERT(!"qat_quant_merge_finish: not a merge layer");
    }
    return bad ? -1 : 0;
}

/* x / s rounded, clamped: the code difference of a value on the grid. */
static inline int32_t code_of(float x, float s)
{
    float r = x / s;
    r = r >= -(float)CODE_CLAMP ? r : -(float)CODE_CLAMP; /* NaN -> -clamp */
    r = r <= (float)CODE_CLAMP ? r : (float)CODE_CLAMP;
    return qat_fp_round(r);
}

/* The clipped STE's mask of one output code; the identity STE passes all. */
static inline uint8_t pass_of(const qat_merge_params *p, int32_t unclamped)
{
    return (uint8_t)(p->ste == QAT_STE_IDENTITY ||
                     (unclamped >= p->act_min && unclamped <= p->act_max));
}

typedef struct {
    const qat_merge_params *p;
    uint8_t *pass;
    int n;      /* inputs */
    int c[QAT_MAX_INPUTS]; /* concat: channels of each input */
    int C;      /* output channels */
    size_t rows;
} merge_saved;

/* ---- add ------------------------------------------------------------------------- */

/* The exact add when every multiplier is a right shift (always so for the
 * inputs, M <= 1/2; the output's too unless its scale is below the inputs'
 * by 2^-20): include/qat/fixedpoint.h's branch-free output stage in loops
 * gcc vectorises, over a chunk that stays in L1. The codes are made in loops
 * of their own (clamp, then round: fused, gcc keeps branches, see codes_run
 * in fq_ops.c). a << left_shift cannot saturate: |code| <= CODE_CLAMP.
 * Same integers as qat_fp_add, so the same bits. */
#define ADD_CHUNK 512

typedef struct {
    int32_t ma, mb, mo;     /* multipliers */
    int ra, rb, ro;         /* right shifts */
    int64_t rnda, rndb, rndo;
    int left, zp, lo, hi, ident;
    float sa, sb, so;
} add_right;

QUANT_CLONES static void
add_run(const add_right *restrict k, const float *restrict a, const float *restrict b,
        float *restrict y, uint8_t *restrict pass, size_t n)
{
    float fa[ADD_CHUNK], fb[ADD_CHUNK];
    const float lim = (float)CODE_CLAMP;
    const int32_t ma = k->ma, mb = k->mb, mo = k->mo, zp = k->zp, lo = k->lo, hi = k->hi;
    const int ra = k->ra, rb = k->rb, ro = k->ro, left = k->left, ident = k->ident;
    const int64_t rnda = k->rnda, rndb = k->rndb, rndo = k->rndo;
    const float sa = k->sa, sb = k->sb, so = k->so;
    for (size_t c = 0; c < n; c += ADD_CHUNK) {
        size_t m = n - c < ADD_CHUNK ? n - c : ADD_CHUNK;
        for (size_t i = 0; i < m; i++) {
            float r = a[c + i] / sa;
            r = r >= -lim ? r : -lim; /* NaN -> -clamp, as code_of */
            fa[i] = r <= lim ? r : lim;
        }
        for (size_t i = 0; i < m; i++) {
            float r = b[c + i] / sb;
            r = r >= -lim ? r : -lim;
            fb[i] = r <= lim ? r : lim;
        }
        for (size_t i = 0; i < m; i++) {
            int32_t ia = (int32_t)fa[i], ib = (int32_t)fb[i];
            float ga = fa[i] - (float)ia, gb = fb[i] - (float)ib;
            ia = ia + (ga >= 0.5f) - (ga <= -0.5f); /* qat_fp_round */
            ib = ib + (gb >= 0.5f) - (gb <= -0.5f);
            int32_t sum = (int32_t)qat_fp_requantize_right(ia * (1 << left), ma, ra, rnda, 0) +
                          (int32_t)qat_fp_requantize_right(ib * (1 << left), mb, rb, rndb, 0);
            int64_t q = qat_fp_requantize_right(sum, mo, ro, rndo, zp);
            int inside = (q >= lo) & (q <= hi);
            q = q < lo ? lo : q > hi ? hi : q;
            y[c + i] = so * (float)(int32_t)(q - zp);
            pass[c + i] = (uint8_t)(inside | ident);
        }
    }
}

static inline int64_t rnd_of(int right) { return right > 0 ? (int64_t)1 << (right - 1) : 0; }

typedef struct {
    const qat_merge_params *p;
    const float *a, *b;
    float *y;
    uint8_t *pass;
    int all_right;
    add_right k;
} add_ctx;

static void add_fwd(void *v, size_t lo, size_t hi)
{
    add_ctx *c = v;
    const qat_merge_params *p = c->p;
    if (c->all_right) {
        uint8_t scratch[ADD_CHUNK];
        if (c->pass) {
            add_run(&c->k, c->a + lo, c->b + lo, c->y + lo, c->pass + lo, hi - lo);
            return;
        }
        for (size_t i = lo; i < hi; i += ADD_CHUNK) { /* no mask wanted: a scratch one */
            size_t m = hi - i < ADD_CHUNK ? hi - i : ADD_CHUNK;
            add_run(&c->k, c->a + i, c->b + i, c->y + i, scratch, m);
        }
        return;
    }
    const float sa = p->in[0].scale, sb = p->in[1].scale, so = p->out.scale;
    for (size_t i = lo; i < hi; i++) {
        /* unclamped first (for the mask), then the clamp the runtime applies */
        int32_t q = qat_fp_add(code_of(c->a[i], sa), code_of(c->b[i], sb), p->left_shift,
                               p->in_mult[0], p->in_shift[0], p->in_mult[1], p->in_shift[1],
                               p->out_mult, p->out_shift, p->out.zero_point, INT32_MIN, INT32_MAX);
        if (c->pass)
            c->pass[i] = pass_of(p, q);
        q = q < p->act_min ? p->act_min : q > p->act_max ? p->act_max : q;
        c->y[i] = so * (float)(q - p->out.zero_point);
    }
}

typedef struct {
    const uint8_t *pass;
    const float *dy;
    float *dx;
} add_bwd_ctx;

/* dx += dy where the output passed: branch-free (dy is loaded either way)
 * so that it vectorises; elementwise, so split across the team. */
static void add_bwd(void *v, size_t lo, size_t hi)
{
    add_bwd_ctx *c = v;
    const uint8_t *restrict pass = c->pass;
    const float *restrict dy = c->dy;
    float *restrict dx = c->dx;
    for (size_t i = lo; i < hi; i++) {
        float g = dy[i];
        dx[i] += pass[i] ? g : 0.0f;
    }
}

static void add_backward(qat_tape *t, const qat_node *n)
{
    const merge_saved *s = n->saved;
    for (int k = 0; k < 2; k++) {
        qat_tensor *x = n->in[k];
        if (!qat_needs_grad(x))
            continue;
        add_bwd_ctx c = {s->pass, n->out->grad, qat_tape_grad(t, x)};
        qat_team_parallel_for(qat_tape_team(t), x->numel, QAT_ELEMWISE_GRAIN, add_bwd, &c);
    }
}

qat_tensor *qat_op_add_exact(qat_tape *t, qat_tensor *a, qat_tensor *b, const qat_merge_params *p)
{
    QAT_ASSERT(a->numel == b->numel);
    qat_tensor *y = qat_tape_tensor(t, a->ndim, a->shape);
    int record = qat_tape_grad_enabled(t) && (a->requires_grad || b->requires_grad);
    add_ctx c = {.p = p, .a = a->data, .b = b->data, .y = y->data};
    c.pass = record ? qat_tape_alloc(t, a->numel) : NULL;
    c.all_right = p->in_shift[0] <= 0 && p->in_shift[1] <= 0 && p->out_shift <= 0 &&
                  p->left_shift >= 0 && p->left_shift <= 20;
    c.k = (add_right){p->in_mult[0], p->in_mult[1], p->out_mult,
                      -p->in_shift[0], -p->in_shift[1], -p->out_shift,
                      rnd_of(-p->in_shift[0]), rnd_of(-p->in_shift[1]), rnd_of(-p->out_shift),
                      p->left_shift, p->out.zero_point, p->act_min, p->act_max,
                      p->ste == QAT_STE_IDENTITY, p->in[0].scale, p->in[1].scale, p->out.scale};
    qat_team_parallel_for(qat_tape_team(t), a->numel, QAT_ELEMWISE_GRAIN, add_fwd, &c);
    if (record) {
        merge_saved *s = qat_tape_alloc(t, sizeof *s);
        memset(s, 0, sizeof *s);
        s->p = p;
        s->pass = c.pass;
        qat_tensor *in[2] = {a, b};
        qat_tape_record(t, add_backward, y, s, 2, in);
    }
    return y;
}

/* ---- concat ------------------------------------------------------------------------ */

static void concat_backward(qat_tape *t, const qat_node *n)
{
    const merge_saved *s = n->saved;
    const float *dy = n->out->grad;
    for (int k = 0, off = 0; k < s->n; off += s->c[k], k++) {
        qat_tensor *x = n->in[k];
        if (!qat_needs_grad(x))
            continue;
        float *dx = qat_tape_grad(t, x);
        for (size_t r = 0; r < s->rows; r++)
            for (int ch = 0; ch < s->c[k]; ch++) {
                size_t o = r * (size_t)s->C + (size_t)(off + ch);
                float d = dy[o]; /* read unconditionally: a select, no branch */
                dx[r * (size_t)s->c[k] + (size_t)ch] += s->pass[o] ? d : 0.0f;
            }
    }
}

qat_tensor *qat_op_concat_exact(qat_tape *t, qat_tensor *const *x, int n,
                                const qat_merge_params *p)
{
    QAT_ASSERT(n >= 1 && n <= 4); /* a tape node holds four inputs */
    int shape[QAT_MAX_DIMS], nd = x[0]->ndim, C = 0;
    for (int k = 0; k < n; k++)
        C += x[k]->shape[nd - 1];
    memcpy(shape, x[0]->shape, sizeof shape);
    shape[nd - 1] = C;
    qat_tensor *y = qat_tape_tensor(t, nd, shape);
    int record = 0;
    for (int k = 0; k < n; k++)
        record |= x[k]->requires_grad;
    record &= qat_tape_grad_enabled(t);
    merge_saved *s = qat_tape_alloc(t, sizeof *s);
    memset(s, 0, sizeof *s);
    s->p = p;
    s->n = n;
    s->C = C;
    s->rows = y->numel / (size_t)C;
    s->pass = record ? qat_tape_alloc(t, y->numel) : NULL;
    const float so = p->out.scale;
    for (int k = 0, off = 0; k < n; off += s->c[k], k++) {
        s->c[k] = x[k]->shape[nd - 1];
        const float si = p->in[k].scale;
        for (size_t r = 0; r < s->rows; r++)
            for (int ch = 0; ch < s->c[k]; ch++) {
                size_t o = r * (size_t)C + (size_t)(off + ch);
                int32_t q = qat_fp_requantize(code_of(x[k]->data[r * (size_t)s->c[k] + ch], si),
                                              p->in_mult[k], p->in_shift[k], p->out.zero_point,
                                              INT32_MIN, INT32_MAX);
                if (s->pass)
                    s->pass[o] = pass_of(p, q);
                q = q < p->act_min ? p->act_min : q > p->act_max ? p->act_max : q;
                y->data[o] = so * (float)(q - p->out.zero_point);
            }
    }
    if (record)
        qat_tape_record(t, concat_backward, y, s, n, x);
    return y;
}

/* ---- global average pooling --------------------------------------------------------- */

/* One image's channel sums of input codes, GAP_CHUNK channels at a time:
 * each pixel's row of codes made in two vectorised loops (divide and
 * clamp, then round: code_of, as in add_run), then added to int32 sums in
 * a third. Integer sums: the same in any order. */
#define GAP_CHUNK 256

QUANT_CLONES static void
gap_sums(const float *restrict x, size_t pix, size_t C, size_t c0, size_t m, float si,
         int32_t *restrict sum)
{
    float f[GAP_CHUNK];
    const float lim = (float)CODE_CLAMP;
    for (size_t i = 0; i < m; i++)
        sum[i] = 0;
    for (size_t px = 0; px < pix; px++) {
        const float *restrict xr = x + px * C + c0;
        for (size_t i = 0; i < m; i++) {
            float r = xr[i] / si;
            r = r >= -lim ? r : -lim; /* NaN -> -clamp, as code_of */
            f[i] = r <= lim ? r : lim;
        }
        for (size_t i = 0; i < m; i++) {
            int32_t k = (int32_t)f[i];
            float g = f[i] - (float)k;
            sum[i] += k + (g >= 0.5f) - (g <= -0.5f); /* qat_fp_round */
        }
    }
}

typedef struct {
    const qat_merge_params *p;
    const float *x, *dy;
    float *y, *dx;
    uint8_t *pass;
    size_t pix, C;
} gap_job;

static void gap_fwd_images(void *v, size_t b, size_t e)
{
    const gap_job *j = v;
    const qat_merge_params *p = j->p;
    const float si = p->in[0].scale, so = p->out.scale;
    int32_t sum[GAP_CHUNK]; /* |sum| <= 2^23 * 1024: no overflow */
    for (size_t img = b; img < e; img++)
        for (size_t c0 = 0; c0 < j->C; c0 += GAP_CHUNK) {
            size_t m = j->C - c0 < GAP_CHUNK ? j->C - c0 : GAP_CHUNK;
            gap_sums(j->x + img * j->pix * j->C, j->pix, j->C, c0, m, si, sum);
            for (size_t i = 0; i < m; i++) {
                int32_t q = qat_fp_requantize(sum[i], p->out_mult, p->out_shift,
                                              p->out.zero_point, INT32_MIN, INT32_MAX);
                size_t o = img * j->C + c0 + i;
                if (j->pass)
                    j->pass[o] = pass_of(p, q);
                q = q < p->act_min ? p->act_min : q > p->act_max ? p->act_max : q;
                j->y[o] = so * (float)(q - p->out.zero_point);
            }
        }
}

/* dx[px][c] += pass ? dy[c] / pix : 0 over one image's pixels. */
QUANT_CLONES static void
gap_bwd_image(const float *restrict dy, const uint8_t *restrict pass, size_t pix, size_t C,
              float inv, float *restrict dx)
{
    for (size_t px = 0; px < pix; px++) {
        float *restrict d = dx + px * C;
        for (size_t c = 0; c < C; c++) {
            float g = dy[c] * inv;
            d[c] += pass[c] ? g : 0.0f;
        }
    }
}

static void gap_bwd_images(void *v, size_t b, size_t e)
{
    const gap_job *j = v;
    float inv = 1.0f / (float)j->pix;
    for (size_t img = b; img < e; img++)
        gap_bwd_image(j->dy + img * j->C, j->pass + img * j->C, j->pix, j->C, inv,
                      j->dx + img * j->pix * j->C);
}

/* images per thread at least: ~16k input elements */
static size_t gap_grain(size_t pix, size_t C) { return 16384 / (pix * C) + 1; }

static void gap_backward(qat_tape *t, const qat_node *n)
{
    qat_tensor *x = n->in[0];
    if (!qat_needs_grad(x))
        return;
    const merge_saved *s = n->saved;
    gap_job j = {.dy = n->out->grad, .dx = qat_tape_grad(t, x), .pass = s->pass,
                 .pix = (size_t)s->p->window, .C = (size_t)s->C};
    qat_team_parallel_for(qat_tape_team(t), s->rows, gap_grain(j.pix, j.C), gap_bwd_images, &j);
}

qat_tensor *qat_op_global_avgpool_exact(qat_tape *t, qat_tensor *x, const qat_merge_params *p)
{
    QAT_ASSERT(x->ndim == 4 && (size_t)x->shape[1] * (size_t)x->shape[2] == (size_t)p->window);
    int N = x->shape[0], C = x->shape[3], shape[4] = {N, 1, 1, C};
    qat_tensor *y = qat_tape_tensor(t, 4, shape);
    int record = qat_tape_grad_enabled(t) && x->requires_grad;
    merge_saved *s = qat_tape_alloc(t, sizeof *s);
    memset(s, 0, sizeof *s);
    s->p = p;
    s->C = C;
    s->rows = (size_t)N;
    s->pass = record ? qat_tape_alloc(t, y->numel) : NULL;
    gap_job j = {.p = p, .x = x->data, .y = y->data, .pass = s->pass,
                 .pix = (size_t)p->window, .C = (size_t)C};
    qat_team_parallel_for(qat_tape_team(t), (size_t)N, gap_grain(j.pix, j.C), gap_fwd_images, &j);
    if (record)
        qat_tape_record(t, gap_backward, y, s, 1, &x);
    return y;
}

/* ---- checkpointed state ----------------------------------------------------------------- */

size_t qat_quant_output_state_size(void) { return 3; }

void qat_quant_output_state_save(const qat_layer_quant *q, float *out)
{
    out[0] = q->act_obs.lo;
    out[1] = q->act_obs.hi;
    out[2] = (float)q->act_obs.initialized;
}

qat_status qat_quant_output_state_load(qat_layer_quant *q, const float *in, qat_error *err)
{
    if (in[2] != 0.0f && in[2] != 1.0f)
        return qat_fail(err, QAT_EINVAL,
                        "the activation observer's 'initialised' flag is %g, expected 0 or 1",
                        (double)in[2]);
    q->act_obs.lo = in[0];
    q->act_obs.hi = in[1];
    q->act_obs.initialized = in[2] == 1.0f;
    return QAT_OK;
}
