/* The ops of graph models: grouped and depthwise conv2d against a naive
 * double-precision convolution, and finite-difference gradients of it,
 * relu6 and concat; the exact integer add, concat and global average pool
 * of quantized training against the runtime's arithmetic (fixedpoint.h),
 * with their straight-through gradients. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "gradcheck_util.h"
#include "qat/fixedpoint.h"
#include "qat/quant.h"

typedef struct {
    int N, H, W, C, CO, K, s, pad, groups, bias;
} gconv_case;

/* depthwise (multiplier 1 and 2, stride 2, padding), grouped with several
 * channels per group, a 1x1 grouped conv, odd sizes */
static const gconv_case cases[] = {
    {2, 7, 6, 5, 5, 3, 1, 1, 5, 1},  {1, 9, 8, 3, 6, 3, 2, 1, 3, 1}, {3, 5, 7, 4, 6, 3, 1, 0, 2, 0},
    {2, 6, 6, 6, 9, 1, 1, 0, 3, 1},  {1, 8, 5, 16, 16, 5, 2, 2, 16, 1},
};
#define NCASES (sizeof cases / sizeof cases[0])

static int out_size(const gconv_case *c, int in) { return (in + 2 * c->pad - c->K) / c->s + 1; }

static void naive(const gconv_case *c, const float *x, const float *w, const float *b, double *y)
{
    int OH = out_size(c, c->H), OW = out_size(c, c->W), cg = c->C / c->groups,
        og = c->CO / c->groups;
    for (int n = 0; n < c->N; n++)
        for (int oh = 0; oh < OH; oh++)
            for (int ow = 0; ow < OW; ow++)
                for (int co = 0; co < c->CO; co++) {
                    double s = c->bias ? b[co] : 0.0;
                    for (int kh = 0; kh < c->K; kh++)
                        for (int kw = 0; kw < c->K; kw++) {
                            int ih = oh * c->s - c->pad + kh, iw = ow * c->s - c->pad + kw;
                            if (ih < 0 || ih >= c->H || iw < 0 || iw >= c->W)
                                continue;
                            for (int j = 0; j < cg; j++)
                                s += (double)x[((n * c->H + ih) * c->W + iw) * c->C +
                                               co / og * cg + j] *
                                     w[((co * c->K + kh) * c->K + kw) * cg + j];
                        }
                    y[(((size_t)n * OH + oh) * OW + ow) * c->CO + co] = s;
                }
}

typedef struct {
    gconv_case c;
    test_leaf x, w, b;
    float *proj;
} gctx;

static void gctx_init(gctx *k, const gconv_case *c, uint64_t seed)
{
    memset(k, 0, sizeof *k);
    k->c = *c;
    qat_rng r;
    qat_rng_seed(&r, seed, (uint64_t)(c->C * 100 + c->CO));
    int xs[4] = {c->N, c->H, c->W, c->C}, ws[4] = {c->CO, c->K, c->K, c->C / c->groups},
        bs[1] = {c->CO};
    leaf_init(&k->x, &r, 4, xs, 1.0f);
    leaf_init(&k->w, &r, 4, ws, 0.5f);
    leaf_init(&k->b, &r, 1, bs, 0.5f);
    k->proj = random_vec(&r, (size_t)c->N * out_size(c, c->H) * out_size(c, c->W) * c->CO);
}

static void gctx_free(gctx *k)
{
    leaf_free(&k->x);
    leaf_free(&k->w);
    leaf_free(&k->b);
    free(k->proj);
}

static qat_tensor *gconv_fn(qat_tape *t, void *v)
{
    gctx *k = v;
    qat_conv2d_params p = {k->c.s, k->c.s, k->c.pad, k->c.pad};
    qat_tensor *y = qat_op_conv2d_grouped(t, &k->x.t, &k->w.t, k->c.bias ? &k->b.t : NULL, &p,
                                          k->c.groups);
    return qat_op_dot_const(t, y, k->proj);
}

static qat_tape *make_tape(int threads, qat_team **team)
{
    *team = NULL;
    if (threads > 1)
        cr_assert_eq(qat_team_create(threads, team, NULL), QAT_OK);
    qat_tape *t;
    cr_assert_eq(qat_tape_create(*team, &t, NULL), QAT_OK);
    tape_poison(t, (size_t)4 << 20);
    return t;
}

Test(grouped_conv, forward_matches_naive_double_convolution)
{
    for (size_t i = 0; i < NCASES; i++)
        for (int threads = 1; threads <= 2; threads++) {
            const gconv_case *c = &cases[i];
            gctx k;
            gctx_init(&k, c, 3);
            qat_team *team;
            qat_tape *t = make_tape(threads, &team);
            qat_conv2d_params p = {c->s, c->s, c->pad, c->pad};
            qat_tensor *y =
                qat_op_conv2d_grouped(t, &k.x.t, &k.w.t, c->bias ? &k.b.t : NULL, &p, c->groups);
            cr_assert(y->shape[1] == out_size(c, c->H) && y->shape[2] == out_size(c, c->W) &&
                      y->shape[3] == c->CO);
            double *ref = malloc(y->numel * sizeof(double));
            naive(c, k.x.data, k.w.data, k.b.data, ref);
            for (size_t j = 0; j < y->numel; j++)
                cr_assert(fabs(y->data[j] - ref[j]) <= 1e-4 * (1.0 + fabs(ref[j])),
                          "case %zu threads %d: y[%zu] = %g, expected %g", i, threads, j,
                          (double)y->data[j], ref[j]);
            free(ref);
            qat_tape_destroy(t);
            qat_team_destroy(team);
            gctx_free(&k);
        }
}

Test(grouped_conv, gradients_match_finite_differences)
{
    for (size_t i = 0; i < NCASES; i++)
        for (int threads = 1; threads <= 2; threads++) {
            const gconv_case *c = &cases[i];
            gctx k;
            gctx_init(&k, c, 7);
            qat_team *team;
            qat_tape *t = make_tape(threads, &team);
            qat_tensor *leaves[3] = {&k.x.t, &k.w.t, &k.b.t};
            char where[256];
            double worst = qat_gradcheck(t, gconv_fn, &k, leaves, c->bias ? 3 : 2, 1e-2, 1e-3,
                                         1e-2, 200, where, sizeof where);
            cr_assert_leq(worst, 1.0, "case %zu threads %d: %s", i, threads, where);
            qat_tape_destroy(t);
            qat_team_destroy(team);
            gctx_free(&k);
        }
}

/* ---- relu6 and concat ------------------------------------------------------------- */

typedef struct {
    test_leaf a, b;
    float *proj;
} pair_ctx;

static qat_tensor *relu6_fn(qat_tape *t, void *v)
{
    pair_ctx *k = v;
    return qat_op_dot_const(t, qat_op_relu6(t, &k->a.t), k->proj);
}

static qat_tensor *concat_fn(qat_tape *t, void *v)
{
    pair_ctx *k = v;
    qat_tensor *x[3] = {&k->a.t, &k->b.t, &k->a.t}; /* a twice: both gradients add up */
    return qat_op_dot_const(t, qat_op_concat(t, x, 3), k->proj);
}

/* relu6 of an intermediate used twice: the later use's backward takes the
 * gradient fresh (stored, qat_tape_grad_fresh), the earlier one adds to it */
static qat_tensor *relu6_twice_fn(qat_tape *t, void *v)
{
    pair_ctx *k = v;
    qat_tensor *u = qat_op_relu6(t, &k->a.t);
    qat_tensor *x[2] = {qat_op_relu6(t, u), qat_op_relu6(t, u)};
    return qat_op_dot_const(t, qat_op_concat(t, x, 2), k->proj);
}

Test(graph_ops, fresh_gradient_is_stored_then_accumulated)
{
    qat_rng r;
    qat_rng_seed(&r, 6, 1);
    pair_ctx k;
    int sa[4] = {2, 3, 4, 5};
    leaf_init(&k.a, &r, 4, sa, 4.0f);
    for (size_t i = 0; i < k.a.t.numel; i++)
        if (fabsf(k.a.data[i]) < 0.05f || fabsf(k.a.data[i] - 6.0f) < 0.05f)
            k.a.data[i] += 0.2f;
    k.proj = random_vec(&r, 2 * 3 * 4 * 10);
    qat_tape *t;
    cr_assert_eq(qat_tape_create(NULL, &t, NULL), QAT_OK);
    char where[256];
    qat_tensor *la[1] = {&k.a.t};
    cr_assert_leq(qat_gradcheck(t, relu6_twice_fn, &k, la, 1, 1e-3, 1e-3, 1e-2, 0, where,
                                sizeof where),
                  1.0, "relu6 twice: %s", where);
    /* the flag: fresh the first time, accumulating after */
    qat_tape_reset(t);
    qat_tensor *u = qat_op_relu6(t, &k.a.t);
    int fresh = 0;
    float *g = qat_tape_grad_fresh(t, u, &fresh);
    cr_assert_eq(fresh, 1);
    cr_assert_eq(qat_tape_grad_fresh(t, u, &fresh), g);
    cr_assert_eq(fresh, 0);
    qat_tape_destroy(t);
    leaf_free(&k.a);
    free(k.proj);
}

Test(graph_ops, relu6_and_concat_gradients)
{
    qat_rng r;
    qat_rng_seed(&r, 5, 1);
    pair_ctx k;
    int sa[4] = {2, 3, 4, 5}, sb[4] = {2, 3, 4, 2};
    leaf_init(&k.a, &r, 4, sa, 4.0f);
    leaf_init(&k.b, &r, 4, sb, 1.0f);
    /* keep relu6's inputs away from its kinks at 0 and 6 */
    for (size_t i = 0; i < k.a.t.numel; i++)
        if (fabsf(k.a.data[i]) < 0.05f || fabsf(k.a.data[i] - 6.0f) < 0.05f)
            k.a.data[i] += 0.2f;
    k.proj = random_vec(&r, 2 * 3 * 4 * 12);
    qat_tape *t;
    cr_assert_eq(qat_tape_create(NULL, &t, NULL), QAT_OK);
    char where[256];
    qat_tensor *la[1] = {&k.a.t}, *lab[2] = {&k.a.t, &k.b.t};
    cr_assert_leq(qat_gradcheck(t, relu6_fn, &k, la, 1, 1e-3, 1e-3, 1e-2, 0, where, sizeof where),
                  1.0, "relu6: %s", where);
    cr_assert_leq(qat_gradcheck(t, concat_fn, &k, lab, 2, 1e-2, 1e-3, 1e-2, 0, where, sizeof where),
                  1.0, "concat: %s", where);
    /* values: relu6 clamps to [0, 6], concat places each input's channels */
    qat_tape_reset(t);
    qat_tensor *y = qat_op_relu6(t, &k.a.t);
    for (size_t i = 0; i < y->numel; i++)
        cr_assert_eq(y->data[i], fminf(fmaxf(k.a.data[i], 0.0f), 6.0f));
    qat_tensor *x[2] = {&k.a.t, &k.b.t};
    y = qat_op_concat(t, x, 2);
    cr_assert_eq(y->shape[3], 7);
    for (size_t p = 0; p < 2 * 3 * 4; p++) {
        cr_assert_eq(y->data[p * 7 + 4], k.a.data[p * 5 + 4]);
        cr_assert_eq(y->data[p * 7 + 6], k.b.data[p * 2 + 1]);
    }
    qat_tape_destroy(t);
    leaf_free(&k.a);
    leaf_free(&k.b);
    free(k.proj);
}

/* ---- the exact integer ops ---------------------------------------------------------- */

static qat_quant_cfg qcfg(void)
{
    qat_quant_cfg c;
    memset(&c, 0, sizeof c);
    c.activation_ste = QAT_STE_CLIPPED;
    return c;
}

/* Real values on the grid of (s, zp): s * (q - zp) for random int8 codes q. */
static void on_grid(qat_rng *r, float *x, size_t n, float s, int32_t zp)
{
    for (size_t i = 0; i < n; i++)
        x[i] = s * (float)((int32_t)qat_rng_below(r, 256) - 128 - zp);
}

Test(merge_ops, add_is_the_integer_add_with_its_ste)
{
    qat_rng r;
    qat_rng_seed(&r, 11, 2);
    qat_quant_cfg qc = qcfg();
    qat_layer_quant q;
    memset(&q, 0, sizeof q);
    q.cfg = &qc;
    q.merge.n = 2;
    q.merge.in[0] = (qat_qparams){0.05f, -3, -128, 127};
    q.merge.in[1] = (qat_qparams){0.0173f, 20, -128, 127};
    q.out = (qat_qparams){0.061f, -10, -128, 127};
    q.act_min = -10; /* a relu */
    q.act_max = 127;
    cr_assert_eq(qat_quant_merge_finish(&q, QAT_LAYER_ADD, 0), 0);
    const qat_merge_params *p = &q.merge;
    cr_assert_eq(p->left_shift, 20);
    cr_assert(p->in_shift[0] <= 0 && p->in_shift[1] <= 0, "input multipliers are below 1");
    int shape[2] = {4, 100};
    test_leaf a, b;
    leaf_init(&a, &r, 2, shape, 1.0f);
    leaf_init(&b, &r, 2, shape, 1.0f);
    on_grid(&r, a.data, 400, 0.05f, -3);
    on_grid(&r, b.data, 400, 0.0173f, 20);
    a.t.requires_grad = b.t.requires_grad = 1;
    qat_tape *t;
    cr_assert_eq(qat_tape_create(NULL, &t, NULL), QAT_OK);
    qat_tensor *y = qat_op_add_exact(t, &a.t, &b.t, p);
    int clamped = 0;
    for (size_t i = 0; i < 400; i++) {
        int32_t ka = (int32_t)lrintf(a.data[i] / 0.05f), kb = (int32_t)lrintf(b.data[i] / 0.0173f);
        int32_t want = qat_fp_add(ka, kb, 20, p->in_mult[0], p->in_shift[0], p->in_mult[1],
                                  p->in_shift[1], p->out_mult, p->out_shift, -10, -10, 127);
        cr_assert_eq(y->data[i], 0.061f * (float)(want + 10), "element %zu", i);
        /* within one output step of the real sum, unless clamped */
        if (want > -10 && want < 127)
            cr_assert(fabsf(y->data[i] - (a.data[i] + b.data[i])) <= 0.061f, "element %zu", i);
        else
            clamped++;
    }
    cr_assert(clamped > 0 && clamped < 400);
    /* the clipped STE: gradient 1 to both inputs where the output was not clamped */
    float *proj = random_vec(&r, 400);
    qat_tensor *loss = qat_op_dot_const(t, y, proj);
    qat_tape_backward(t, loss);
    for (size_t i = 0; i < 400; i++) {
        int32_t code = (int32_t)lrintf(y->data[i] / 0.061f) - 10;
        int32_t ka = (int32_t)lrintf(a.data[i] / 0.05f), kb = (int32_t)lrintf(b.data[i] / 0.0173f);
        int32_t raw = qat_fp_add(ka, kb, 20, p->in_mult[0], p->in_shift[0], p->in_mult[1],
                                 p->in_shift[1], p->out_mult, p->out_shift, -10, INT32_MIN,
                                 INT32_MAX);
        float g = raw >= -10 && raw <= 127 ? proj[i] : 0.0f;
        (void)code;
        cr_assert_eq(a.grad[i], g);
        cr_assert_eq(b.grad[i], g);
    }
    free(proj);
    qat_tape_destroy(t);
    leaf_free(&a);
    leaf_free(&b);
}

/* The add's vectorised path (every shift a right shift) against the scalar
 * oracle off the grid too: ties at half a step, NaN, codes beyond int8 and
 * beyond the clamp, a length that is not a multiple of the chunk, with and
 * without the mask, the identity STE, two threads, and scales whose output
 * multiplier is above 1 (the scalar path). */
static int32_t code_oracle(float x, float s)
{
    float r = x / s;
    r = r >= -1024.0f ? r : -1024.0f;
    r = r <= 1024.0f ? r : 1024.0f;
    return qat_fp_round(r);
}

Test(merge_ops, add_fast_path_equals_the_scalar_oracle)
{
    static const float sc[][3] = {{0.05f, 0.0173f, 0.061f},  {0.02f, 0.02f, 0.5f},
                                  {1e-3f, 0.7f, 0.011f},     {0.3f, 0.001f, 1e-7f},
                                  {0.01f, 0.04f, 1e-9f}};
    const size_t n = 40000 + 77;
    qat_rng r;
    qat_rng_seed(&r, 21, 4);
    for (size_t k = 0; k < sizeof sc / sizeof sc[0]; k++)
        for (int variant = 0; variant < 4; variant++) {
            int threads = 1 + (variant & 1), grad = variant < 2, ident = variant == 3;
            qat_quant_cfg qc = qcfg();
            if (ident)
                qc.activation_ste = QAT_STE_IDENTITY;
            qat_layer_quant q;
            memset(&q, 0, sizeof q);
            q.cfg = &qc;
            q.merge.n = 2;
            q.merge.in[0] = (qat_qparams){sc[k][0], 5, -128, 127};
            q.merge.in[1] = (qat_qparams){sc[k][1], -7, -128, 127};
            q.out = (qat_qparams){sc[k][2], 3, -128, 127};
            q.act_min = -20;
            q.act_max = 100;
            cr_assert_eq(qat_quant_merge_finish(&q, QAT_LAYER_ADD, 0), 0);
            const qat_merge_params *p = &q.merge;
            cr_assert_eq(p->out_shift <= 0, k < 3, "cases 0-2 take the fast path, 3-4 not");
            int shape[2] = {1, (int)n};
            test_leaf a, b;
            leaf_init(&a, &r, 2, shape, 1.0f);
            leaf_init(&b, &r, 2, shape, 1.0f);
            for (size_t i = 0; i < n; i++) {
                float *x[2] = {&a.data[i], &b.data[i]};
                for (int j = 0; j < 2; j++) {
                    float s = sc[k][j], half = (float)((int)qat_rng_below(&r, 600) - 300) + 0.5f;
                    switch (qat_rng_below(&r, 8)) {
                    case 0: *x[j] = s * half; break; /* a tie */
                    case 1: *x[j] = s * half * 5.0f; break; /* beyond the clamp */
                    case 2: *x[j] = i % 97 == 0 ? NAN : -*x[j] * 3.0f; break;
                    default: *x[j] = *x[j] * s * 200.0f; break;
                    }
                }
            }
            a.t.requires_grad = b.t.requires_grad = grad;
            qat_team *team;
            qat_tape *t = make_tape(threads, &team);
            if (!grad)
                qat_tape_set_grad_enabled(t, 0);
            qat_tensor *y = qat_op_add_exact(t, &a.t, &b.t, p);
            float *proj = random_vec(&r, n);
            if (grad)
                qat_tape_backward(t, qat_op_dot_const(t, y, proj));
            for (size_t i = 0; i < n; i++) {
                int32_t raw = qat_fp_add(code_oracle(a.data[i], sc[k][0]),
                                         code_oracle(b.data[i], sc[k][1]), 20, p->in_mult[0],
                                         p->in_shift[0], p->in_mult[1], p->in_shift[1],
                                         p->out_mult, p->out_shift, 3, INT32_MIN, INT32_MAX);
                int32_t want = raw < -20 ? -20 : raw > 100 ? 100 : raw;
                cr_assert_eq(y->data[i], sc[k][2] * (float)(want - 3), "case %zu/%d element %zu",
                             k, variant, i);
                if (grad) {
                    float g = raw >= -20 && raw <= 100 ? proj[i] : 0.0f;
                    cr_assert_eq(a.grad[i], g, "case %zu element %zu", k, i);
                    cr_assert_eq(b.grad[i], g, "case %zu element %zu", k, i);
                }
            }
            free(proj);
            qat_tape_destroy(t);
            qat_team_destroy(team);
            leaf_free(&a);
            leaf_free(&b);
        }
}

Test(merge_ops, global_avgpool_and_concat_requantize_once)
{
    qat_rng r;
    qat_rng_seed(&r, 13, 3);
    qat_quant_cfg qc = qcfg();
    qat_layer_quant q;
    memset(&q, 0, sizeof q);
    q.cfg = &qc;
    q.merge.n = 1;
    q.merge.in[0] = (qat_qparams){0.04f, -128, -128, 127};
    q.out = (qat_qparams){0.01f, -128, -128, 127};
    q.act_min = -128;
    q.act_max = 127;
    cr_assert_eq(qat_quant_merge_finish(&q, QAT_LAYER_GLOBAL_AVGPOOL, 35), 0);
    int shape[4] = {2, 5, 7, 3};
    test_leaf x;
    leaf_init(&x, &r, 4, shape, 1.0f);
    on_grid(&r, x.data, x.t.numel, 0.04f, -128);
    qat_tape *t;
    cr_assert_eq(qat_tape_create(NULL, &t, NULL), QAT_OK);
    qat_tensor *y = qat_op_global_avgpool_exact(t, &x.t, &q.merge);
    cr_assert(y->shape[1] == 1 && y->shape[2] == 1 && y->shape[3] == 3);
    for (int n = 0; n < 2; n++)
        for (int c = 0; c < 3; c++) {
            int32_t sum = 0;
            double mean = 0;
            for (int p = 0; p < 35; p++) {
                float v = x.data[(n * 35 + p) * 3 + c];
                sum += (int32_t)lrintf(v / 0.04f);
                mean += v / 35.0;
            }
            int32_t want = qat_fp_requantize(sum, q.merge.out_mult, q.merge.out_shift, -128, -128,
                                             127);
            float got = y->data[n * 3 + c];
            cr_assert_eq(got, 0.01f * (float)(want + 128));
            if (want < 127) /* one rounding: within half a step of the mean */
                cr_assert(fabs(got - mean) <= 0.0051, "mean %g, got %g", mean, (double)got);
        }
    /* concat: the first input keeps its codes (same quantization), the second
     * is requantized to the output's */
    qat_layer_quant qq;
    memset(&qq, 0, sizeof qq);
    qq.cfg = &qc;
    qq.merge.n = 2;
    qq.merge.in[0] = (qat_qparams){0.04f, -128, -128, 127};
    qq.merge.in[1] = (qat_qparams){0.013f, 7, -128, 127};
    qq.out = qq.merge.in[0];
    qq.act_min = -128;
    qq.act_max = 127;
    cr_assert_eq(qat_quant_merge_finish(&qq, QAT_LAYER_CONCAT, 0), 0);
    test_leaf z;
    leaf_init(&z, &r, 4, shape, 1.0f);
    on_grid(&r, z.data, z.t.numel, 0.013f, 7);
    qat_tensor *in[2] = {&x.t, &z.t};
    y = qat_op_concat_exact(t, in, 2, &qq.merge);
    for (size_t p = 0; p < 70; p++)
        for (int c = 0; c < 3; c++) {
            cr_assert_eq(y->data[p * 6 + c], x.data[p * 3 + c], "identical quantization: a copy");
            int32_t want = qat_fp_requantize((int32_t)lrintf(z.data[p * 3 + c] / 0.013f),
                                             qq.merge.in_mult[1], qq.merge.in_shift[1], -128,
                                             -128, 127);
            cr_assert_eq(y->data[p * 6 + 3 + c], 0.04f * (float)(want + 128));
        }
    qat_tape_destroy(t);
    leaf_free(&x);
    leaf_free(&z);
}
