/* conv2d: both algorithms against a naive double-precision convolution on
 * awkward shapes, finite-difference gradients, and run-to-run determinism. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "gradcheck_util.h"
#include "ops/conv2d_internal.h"

typedef struct {
    int N, H, W, C, CO, KH, KW, sh, sw, ph, pw, bias;
} conv_case;

/* Odd shapes: non-square inputs and kernels, channel counts 1/3/5/7/17,
 * batch 1 and 3, stride 2, padding 0/1/2, a 1x1 kernel whose padded border
 * sees only zeros, and the two MNIST layers. */
static const conv_case cases[] = {
    {1, 5, 7, 1, 3, 3, 3, 1, 1, 1, 1, 1},
    {3, 6, 5, 3, 5, 3, 2, 2, 1, 0, 1, 0},
    {2, 7, 9, 5, 7, 3, 3, 2, 2, 2, 2, 1},
    {1, 4, 6, 7, 17, 1, 1, 1, 1, 0, 0, 1},
    {3, 9, 8, 7, 5, 5, 3, 1, 2, 2, 0, 1},
    {1, 3, 4, 3, 2, 1, 1, 1, 1, 1, 1, 1},
    {3, 5, 4, 1, 7, 2, 3, 2, 2, 0, 2, 0},
};
#define NCASES (sizeof cases / sizeof cases[0])

static qat_conv2d_params params_of(const conv_case *c)
{
    qat_conv2d_params p = {c->sh, c->sw, c->ph, c->pw};
    return p;
}

/* y = conv(x, w) + b in double, straight from the definition. Also returns
 * sum |x w| per output in mag (the scale of float rounding error). */
static void naive_conv(const conv_case *c, const float *x, const float *w, const float *b,
                       double *y, double *mag)
{
    int OH = qat_conv_out_size(c->H, c->KH, c->sh, c->ph);
    int OW = qat_conv_out_size(c->W, c->KW, c->sw, c->pw);
    for (int n = 0; n < c->N; n++)
        for (int oh = 0; oh < OH; oh++)
            for (int ow = 0; ow < OW; ow++)
                for (int co = 0; co < c->CO; co++) {
                    double s = c->bias ? b[co] : 0.0, m = fabs(s);
                    for (int kh = 0; kh < c->KH; kh++)
                        for (int kw = 0; kw < c->KW; kw++) {
                            int ih = oh * c->sh - c->ph + kh, iw = ow * c->sw - c->pw + kw;
                            if (ih < 0 || ih >= c->H || iw < 0 || iw >= c->W)
                                continue;
                            for (int ci = 0; ci < c->C; ci++) {
                                double v = (double)x[((n * c->H + ih) * c->W + iw) * c->C + ci] *
                                           w[((co * c->KH + kh) * c->KW + kw) * c->C + ci];
                                s += v;
                                m += fabs(v);
                            }
                        }
                    size_t o = (((size_t)n * OH + oh) * OW + ow) * c->CO + co;
                    y[o] = s;
                    mag[o] = m;
                }
}

typedef struct {
    conv_case c;
    qat_conv_algo algo;
    test_leaf x, w, b;
    float *proj;
    int x_needs_grad;
} conv_ctx;

static void ctx_init(conv_ctx *k, const conv_case *c, qat_conv_algo algo, uint64_t seed)
{
    memset(k, 0, sizeof *k);
    k->c = *c;
    k->algo = algo;
    k->x_needs_grad = 1;
    qat_rng r;
    qat_rng_seed(&r, seed, (uint64_t)(c->H * 1000 + c->C * 10 + c->CO));
    int xs[4] = {c->N, c->H, c->W, c->C}, ws[4] = {c->CO, c->KH, c->KW, c->C}, bs[1] = {c->CO};
    leaf_init(&k->x, &r, 4, xs, 1.0f);
    leaf_init(&k->w, &r, 4, ws, 0.5f);
    leaf_init(&k->b, &r, 1, bs, 0.5f);
    int OH = qat_conv_out_size(c->H, c->KH, c->sh, c->ph);
    int OW = qat_conv_out_size(c->W, c->KW, c->sw, c->pw);
    k->proj = random_vec(&r, (size_t)c->N * OH * OW * c->CO);
}

static void ctx_free(conv_ctx *k)
{
    leaf_free(&k->x);
    leaf_free(&k->w);
    leaf_free(&k->b);
    free(k->proj);
}

static qat_tensor *conv_fn(qat_tape *t, void *vctx)
{
    conv_ctx *k = vctx;
    qat_conv2d_params p = params_of(&k->c);
    k->x.t.requires_grad = k->x_needs_grad;
    qat_tensor *y = qat_conv2d_algo(t, &k->x.t, &k->w.t, k->c.bias ? &k->b.t : NULL, &p, k->algo);
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

static const char *algo_name(qat_conv_algo a)
{
    return a == QAT_CONV_DIRECT ? "direct" : a == QAT_CONV_GEMM ? "gemm" : "auto";
}

static void check_forward(const conv_case *c, qat_conv_algo algo, int threads, int grad_on)
{
    conv_ctx k;
    ctx_init(&k, c, algo, 3);
    qat_team *team;
    qat_tape *t = make_tape(threads, &team);
    qat_tape_set_grad_enabled(t, grad_on); /* on: col kept for backward; off: scratch */
    qat_conv2d_params p = params_of(c);
    qat_tensor *y = qat_conv2d_algo(t, &k.x.t, &k.w.t, c->bias ? &k.b.t : NULL, &p, algo);
    int OH = qat_conv_out_size(c->H, c->KH, c->sh, c->ph);
    int OW = qat_conv_out_size(c->W, c->KW, c->sw, c->pw);
    cr_assert_eq(y->ndim, 4);
    cr_assert(y->shape[0] == c->N && y->shape[1] == OH && y->shape[2] == OW &&
              y->shape[3] == c->CO);
    double *ref = malloc(y->numel * sizeof(double)), *mag = malloc(y->numel * sizeof(double));
    naive_conv(c, k.x.data, k.w.data, k.b.data, ref, mag);
    for (size_t i = 0; i < y->numel; i++)
        cr_assert(fabs(y->data[i] - ref[i]) <= 1e-6 + 1e-5 * mag[i],
                  "%s threads=%d H=%d W=%d C=%d CO=%d k=%dx%d s=%d,%d p=%d,%d: y[%zu]=%.7g ref %.7g",
                  algo_name(algo), threads, c->H, c->W, c->C, c->CO, c->KH, c->KW, c->sh, c->sw,
                  c->ph, c->pw, i, y->data[i], ref[i]);
    free(ref);
    free(mag);
    qat_tape_destroy(t);
    qat_team_destroy(team);
    ctx_free(&k);
}

Test(conv2d, forward_matches_naive_double_convolution)
{
    const qat_conv_algo algos[] = {QAT_CONV_AUTO, QAT_CONV_DIRECT, QAT_CONV_GEMM};
    for (size_t i = 0; i < NCASES; i++)
        for (int a = 0; a < 3; a++)
            for (int threads = 1; threads <= 2; threads++)
                for (int grad_on = 0; grad_on <= 1; grad_on++)
                    check_forward(&cases[i], algos[a], threads, grad_on);
}

Test(conv2d, mnist_layers_match_naive_across_sgemm_blocks)
{
    /* 6 images of 14x14 = 1176 rows: several sgemm row blocks per thread */
    const conv_case conv1 = {3, 28, 28, 1, 32, 3, 3, 1, 1, 1, 1, 1};
    const conv_case conv2 = {6, 14, 14, 32, 64, 3, 3, 1, 1, 1, 1, 1};
    for (int threads = 1; threads <= 2; threads++) {
        check_forward(&conv1, QAT_CONV_AUTO, threads, 1);
        check_forward(&conv2, QAT_CONV_AUTO, threads, 1);
        check_forward(&conv2, QAT_CONV_DIRECT, threads, 0);
    }
}

static void run_gradcheck(const conv_case *c, qat_conv_algo algo, int threads, int x_grad)
{
    conv_ctx k;
    ctx_init(&k, c, algo, 7);
    k.x_needs_grad = x_grad;
    qat_team *team;
    qat_tape *t = make_tape(threads, &team);
    qat_tensor *leaves[3] = {&k.w.t, &k.b.t, &k.x.t};
    int nleaves = c->bias ? 2 : 1;
    if (x_grad) {
        leaves[nleaves++] = &k.x.t;
    } else {
        memset(k.x.grad, 0, k.x.t.numel * sizeof(float));
    }
    char where[256];
    /* conv is linear in each leaf, so a large step has no truncation error.
     * One thread probes every element; two threads (the split and the
     * partial-sum reduction) at most 300 per leaf, spread evenly. */
    double worst = qat_gradcheck(t, conv_fn, &k, leaves, nleaves, 1e-2, 1e-3, 1e-2,
                                 threads == 1 ? 0 : 300, where, sizeof where);
    cr_assert_leq(worst, 1.0, "%s threads=%d H=%d W=%d C=%d CO=%d k=%dx%d s=%d,%d p=%d,%d bias=%d: %s",
                  algo_name(algo), threads, c->H, c->W, c->C, c->CO, c->KH, c->KW, c->sh, c->sw,
                  c->ph, c->pw, c->bias, where);
    if (!x_grad) /* an input that needs no gradient gets none */
        for (size_t i = 0; i < k.x.t.numel; i++)
            cr_assert_eq(k.x.grad[i], 0.0f);
    qat_tape_destroy(t);
    qat_team_destroy(team);
    ctx_free(&k);
}

Test(gradcheck, conv2d_gemm)
{
    for (size_t i = 0; i < NCASES; i++)
        for (int threads = 1; threads <= 2; threads++)
            run_gradcheck(&cases[i], QAT_CONV_GEMM, threads, 1);
}

Test(gradcheck, conv2d_direct)
{
    for (size_t i = 0; i < NCASES; i++)
        for (int threads = 1; threads <= 2; threads++)
            run_gradcheck(&cases[i], QAT_CONV_DIRECT, threads, 1);
}

Test(gradcheck, conv2d_input_without_grad)
{
    for (size_t i = 0; i < NCASES; i++) {
        run_gradcheck(&cases[i], QAT_CONV_AUTO, 2, 0);
        run_gradcheck(&cases[i], QAT_CONV_GEMM, 1, 0);
    }
}

/* Two convs in a row: the second one's input is an activation whose
 * gradient starts unallocated, so its backward takes the fresh-dx path. */
typedef struct {
    test_leaf x, w1, b1, w2;
    float *proj;
    qat_conv2d_params p1, p2;
} chain_ctx;

static qat_tensor *chain_fn(qat_tape *t, void *vctx)
{
    chain_ctx *k = vctx;
    qat_tensor *h = qat_op_conv2d(t, &k->x.t, &k->w1.t, &k->b1.t, &k->p1);
    return qat_op_dot_const(t, qat_op_conv2d(t, h, &k->w2.t, NULL, &k->p2), k->proj);
}

static void run_chain(int C0, int C1, int C2, int threads)
{
    qat_rng r;
    qat_rng_seed(&r, 21, (uint64_t)(C0 * 100 + C1));
    chain_ctx k;
    int xs[4] = {3, 7, 6, C0}, w1s[4] = {C1, 3, 3, C0}, b1s[1] = {C1}, w2s[4] = {C2, 3, 2, C1};
    leaf_init(&k.x, &r, 4, xs, 1.0f);
    leaf_init(&k.w1, &r, 4, w1s, 0.5f);
    leaf_init(&k.b1, &r, 1, b1s, 0.5f);
    leaf_init(&k.w2, &r, 4, w2s, 0.5f);
    k.p1 = (qat_conv2d_params){1, 1, 1, 1}; /* 7x6 -> 7x6 */
    k.p2 = (qat_conv2d_params){2, 1, 1, 0}; /* 7x6 -> 4x5 */
    k.proj = random_vec(&r, (size_t)3 * 4 * 5 * C2);
    qat_team *team;
    qat_tape *t = make_tape(threads, &team);
    qat_tensor *leaves[4] = {&k.x.t, &k.w1.t, &k.b1.t, &k.w2.t};
    char where[256];
    /* the loss is linear in each leaf alone, so central differences are
     * exact at any step; a big one keeps the float rounding of the loss
     * (~1e-5 here) small against the difference */
    double worst = qat_gradcheck(t, chain_fn, &k, leaves, 4, 0.25, 1e-3, 1e-2, 0, where,
                                 sizeof where);
    cr_assert_leq(worst, 1.0, "chain %d->%d->%d threads=%d: %s", C0, C1, C2, threads, where);
    qat_tape_destroy(t);
    qat_team_destroy(team);
    leaf_free(&k.x);
    leaf_free(&k.w1);
    leaf_free(&k.b1);
    leaf_free(&k.w2);
    free(k.proj);
}

Test(gradcheck, conv2d_chain_through_an_activation)
{
    for (int threads = 1; threads <= 2; threads++) {
        run_chain(1, 5, 3, threads); /* direct then gemm */
        run_chain(5, 7, 3, threads); /* gemm then gemm */
    }
}

/* Forward + backward twice on a fresh tape; everything must match bit for bit. */
static void run_twice_identical(const conv_case *c, qat_conv_algo algo, int threads)
{
    conv_ctx k;
    ctx_init(&k, c, algo, 13);
    qat_team *team;
    qat_tape *t = make_tape(threads, &team);
    size_t ny = 0;
    float *y0 = NULL, *g0[3];
    qat_tensor *leaf[3] = {&k.x.t, &k.w.t, &k.b.t};
    for (int run = 0; run < 2; run++) {
        for (int l = 0; l < 3; l++)
            memset(leaf[l]->grad, 0, leaf[l]->numel * sizeof(float));
        qat_tape_reset(t);
        qat_conv2d_params p = params_of(c);
        qat_tensor *y = qat_conv2d_algo(t, &k.x.t, &k.w.t, &k.b.t, &p, algo);
        qat_tape_backward(t, qat_op_dot_const(t, y, k.proj));
        if (run == 0) {
            ny = y->numel;
            y0 = malloc(ny * sizeof(float));
            memcpy(y0, y->data, ny * sizeof(float));
            for (int l = 0; l < 3; l++) {
                g0[l] = malloc(leaf[l]->numel * sizeof(float));
                memcpy(g0[l], leaf[l]->grad, leaf[l]->numel * sizeof(float));
            }
        } else {
            cr_assert(memcmp(y0, y->data, ny * sizeof(float)) == 0, "%s: outputs differ",
                      algo_name(algo));
            for (int l = 0; l < 3; l++)
                cr_assert(memcmp(g0[l], leaf[l]->grad, leaf[l]->numel * sizeof(float)) == 0,
                          "%s threads=%d: gradient of leaf %d differs between runs",
                          algo_name(algo), threads, l);
        }
    }
    /* the gradients were really produced, not left at zero */
    double s = 0;
    for (size_t i = 0; i < k.w.t.numel; i++)
        s += fabs(g0[1][i]);
    cr_assert_gt(s, 0.0);
    free(y0);
    for (int l = 0; l < 3; l++)
        free(g0[l]);
    qat_tape_destroy(t);
    qat_team_destroy(team);
    ctx_free(&k);
}

Test(conv2d, same_thread_count_gives_bit_identical_results)
{
    const conv_case conv2 = {5, 14, 14, 32, 64, 3, 3, 1, 1, 1, 1, 1};
    const conv_case conv1 = {5, 28, 28, 1, 32, 3, 3, 1, 1, 1, 1, 1};
    for (int threads = 1; threads <= 2; threads++) {
        run_twice_identical(&conv2, QAT_CONV_GEMM, threads);
        run_twice_identical(&conv1, QAT_CONV_DIRECT, threads);
        run_twice_identical(&cases[2], QAT_CONV_GEMM, threads);
    }
}

Test(conv2d, records_nothing_without_grad)
{
    conv_ctx k;
    ctx_init(&k, &cases[1], QAT_CONV_AUTO, 1);
    qat_tape *t;
    qat_tape_create(NULL, &t, NULL);
    qat_tape_set_grad_enabled(t, 0);
    qat_conv2d_params p = params_of(&cases[1]);
    qat_tensor *y = qat_op_conv2d(t, &k.x.t, &k.w.t, NULL, &p);
    cr_assert_eq(qat_tape_num_nodes(t), 0);
    cr_assert_eq(y->requires_grad, 0);
    qat_tape_set_grad_enabled(t, 1);
    y = qat_op_conv2d(t, &k.x.t, &k.w.t, NULL, &p);
    cr_assert_eq(qat_tape_num_nodes(t), 1);
    cr_assert_eq(y->requires_grad, 1);
    qat_tape_destroy(t);
    ctx_free(&k);
}
