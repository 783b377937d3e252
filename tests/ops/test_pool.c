/* maxpool2d / avgpool2d: against a naive reference, finite-difference
 * gradients on odd shapes, the first-in-window tie rule, and threads. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "gradcheck_util.h"

typedef struct {
    int N, H, W, C, KH, KW, SH, SW;
} pool_case;

/* Non-square inputs and windows, C = 1/3/5/7, batch 1 and 3, overlapping
 * windows (stride < kernel), and inputs the windows do not fully cover. */
static const pool_case cases[] = {
    {1, 4, 6, 1, 2, 2, 2, 2}, {3, 7, 5, 3, 2, 2, 2, 2}, {3, 6, 7, 5, 3, 3, 2, 2},
    {1, 5, 8, 7, 3, 2, 1, 2}, {3, 9, 4, 3, 2, 3, 3, 1}, {1, 3, 3, 5, 3, 3, 1, 1},
};
#define NCASES (sizeof cases / sizeof cases[0])

static int out_h(const pool_case *c) { return qat_conv_out_size(c->H, c->KH, c->SH, 0); }
static int out_w(const pool_case *c) { return qat_conv_out_size(c->W, c->KW, c->SW, 0); }

typedef struct {
    pool_case c;
    int is_max;
    int via_relu; /* pool relu(x), x > 0: the pool's input is an activation
                     whose gradient starts unallocated (the fresh-dx path) */
    test_leaf x;
    float *proj;
} pool_ctx;

/* Max pooling needs inputs without near-ties (a probe must not change which
 * element wins): a shuffled ladder 0.05 apart, far wider than 2 * eps. */
static void ctx_init(pool_ctx *k, const pool_case *c, int is_max, uint64_t seed, int via_relu)
{
    memset(k, 0, sizeof *k);
    k->c = *c;
    k->is_max = is_max;
    k->via_relu = via_relu;
    qat_rng r;
    qat_rng_seed(&r, seed, (uint64_t)(c->H * 100 + c->W * 10 + c->C));
    int xs[4] = {c->N, c->H, c->W, c->C};
    leaf_init(&k->x, &r, 4, xs, 1.0f);
    size_t n = k->x.t.numel;
    uint32_t *perm = malloc(n * sizeof *perm);
    for (uint32_t i = 0; i < n; i++)
        perm[i] = i;
    qat_rng_shuffle_u32(&r, perm, (uint32_t)n);
    for (size_t i = 0; i < n; i++)
        k->x.data[i] = 0.05f * ((float)perm[i] - 0.5f * (float)n);
    if (via_relu)
        for (size_t i = 0; i < n; i++)
            k->x.data[i] += 0.05f * (0.5f * (float)n + 1.0f); /* all >= 0.05 */
    free(perm);
    k->proj = random_vec(&r, (size_t)c->N * out_h(c) * out_w(c) * c->C);
}

static void ctx_free(pool_ctx *k)
{
    leaf_free(&k->x);
    free(k->proj);
}

static qat_pool2d_params params_of(const pool_case *c)
{
    qat_pool2d_params p = {c->KH, c->KW, c->SH, c->SW};
    return p;
}

static qat_tensor *pool_fn(qat_tape *t, void *vctx)
{
    pool_ctx *k = vctx;
    qat_pool2d_params p = params_of(&k->c);
    qat_tensor *in = k->via_relu ? qat_op_relu(t, &k->x.t) : &k->x.t;
    qat_tensor *y = k->is_max ? qat_op_maxpool2d(t, in, &p) : qat_op_avgpool2d(t, in, &p);
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

static void check_forward(const pool_case *c, int is_max, int threads, int grad_on)
{
    pool_ctx k;
    ctx_init(&k, c, is_max, 2, 0);
    qat_team *team;
    qat_tape *t = make_tape(threads, &team);
    qat_tape_set_grad_enabled(t, grad_on); /* max: with and without argmax */
    qat_pool2d_params p = params_of(c);
    qat_tensor *y = is_max ? qat_op_maxpool2d(t, &k.x.t, &p) : qat_op_avgpool2d(t, &k.x.t, &p);
    int OH = out_h(c), OW = out_w(c);
    cr_assert(y->ndim == 4 && y->shape[0] == c->N && y->shape[1] == OH && y->shape[2] == OW &&
              y->shape[3] == c->C);
    for (int n = 0; n < c->N; n++)
        for (int oh = 0; oh < OH; oh++)
            for (int ow = 0; ow < OW; ow++)
                for (int ch = 0; ch < c->C; ch++) {
                    double ref = is_max ? -INFINITY : 0.0;
                    for (int kh = 0; kh < c->KH; kh++)
                        for (int kw = 0; kw < c->KW; kw++) {
                            int ih = oh * c->SH + kh, iw = ow * c->SW + kw;
                            double v = k.x.data[((n * c->H + ih) * c->W + iw) * c->C + ch];
                            ref = is_max ? fmax(ref, v) : ref + v;
                        }
                    if (!is_max)
                        ref /= c->KH * c->KW;
                    float got = y->data[(((size_t)n * OH + oh) * OW + ow) * c->C + ch];
                    cr_assert(fabs(got - ref) <= 1e-5 * (1 + fabs(ref)),
                              "%s n=%d oh=%d ow=%d c=%d: %g vs %g", is_max ? "max" : "avg", n,
                              oh, ow, ch, got, ref);
                }
    qat_tape_destroy(t);
    qat_team_destroy(team);
    ctx_free(&k);
}

Test(pool2d, forward_matches_naive)
{
    for (size_t i = 0; i < NCASES; i++)
        for (int threads = 1; threads <= 2; threads++)
            for (int g = 0; g <= 1; g++) {
                check_forward(&cases[i], 1, threads, g);
                check_forward(&cases[i], 0, threads, g);
            }
}

static void run_gradcheck(const pool_case *c, int is_max, int threads, int via_relu)
{
    pool_ctx k;
    ctx_init(&k, c, is_max, 4, via_relu);
    qat_team *team;
    qat_tape *t = make_tape(threads, &team);
    qat_tensor *leaves[1] = {&k.x.t};
    char where[256];
    /* pooling is piecewise linear: a step of 1e-2 (below half the 0.05
     * spacing, so no probe changes a winner) keeps float rounding of the loss
     * small against the difference */
    double worst = qat_gradcheck(t, pool_fn, &k, leaves, 1, 1e-2, 1e-3, 1e-2, 0, where,
                                 sizeof where);
    cr_assert_leq(worst, 1.0, "%s%s threads=%d N=%d H=%d W=%d C=%d k=%dx%d s=%d,%d: %s",
                  is_max ? "max" : "avg", via_relu ? "(relu)" : "", threads, c->N, c->H, c->W,
                  c->C, c->KH, c->KW, c->SH, c->SW, where);
    qat_tape_destroy(t);
    qat_team_destroy(team);
    ctx_free(&k);
}

Test(gradcheck, maxpool2d)
{
    for (size_t i = 0; i < NCASES; i++)
        for (int threads = 1; threads <= 2; threads++)
            for (int via_relu = 0; via_relu <= 1; via_relu++)
                run_gradcheck(&cases[i], 1, threads, via_relu);
}

Test(gradcheck, avgpool2d)
{
    for (size_t i = 0; i < NCASES; i++)
        for (int threads = 1; threads <= 2; threads++)
            for (int via_relu = 0; via_relu <= 1; via_relu++)
                run_gradcheck(&cases[i], 0, threads, via_relu);
}

/* Gradient of max pooling over one 1x1x(2x3)x2 window per channel with the
 * maximum repeated: it must all go to the first maximum in (kh, kw) order. */
Test(pool2d, ties_go_to_the_first_element_in_window_order)
{
    /* channel 0: max 5 at (0,1) and (1,0) -> (0,1). channel 1: all equal -> (0,0). */
    float x[12] = {1, 2, 5, 2, 0, 2, 5, 2, 3, 2, 5, 2};
    float gx[12] = {0};
    int s[4] = {1, 2, 3, 2};
    qat_tensor xt = qat_tensor_view(x, gx, 4, s);
    qat_tape *t;
    qat_tape_create(NULL, &t, NULL);
    qat_pool2d_params p = {2, 3, 1, 1};
    qat_tensor *y = qat_op_maxpool2d(t, &xt, &p);
    cr_assert_eq(y->numel, 2u);
    cr_assert_eq(y->data[0], 5.0f);
    cr_assert_eq(y->data[1], 2.0f);
    float proj[2] = {1.0f, 10.0f};
    qat_tape_backward(t, qat_op_dot_const(t, y, proj));
    /* element (kh, kw, c) sits at (kh * 3 + kw) * 2 + c */
    float expect[12] = {0, 10, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    for (int i = 0; i < 12; i++)
        cr_assert_eq(gx[i], expect[i], "dx[%d] = %g, expected %g", i, gx[i], expect[i]);
    qat_tape_destroy(t);
}

/* Rows and columns no window covers get exactly zero gradient, also when
 * the pool writes a fresh gradient buffer (input behind a relu). */
Test(pool2d, uncovered_inputs_get_no_gradient)
{
    const pool_case c = {2, 5, 7, 3, 2, 2, 2, 2}; /* row 4 and column 6 uncovered */
    for (int v = 0; v < 4; v++) {
        int is_max = v & 1;
        pool_ctx k;
        ctx_init(&k, &c, is_max, 9, v >> 1);
        qat_team *team;
        qat_tape *t = make_tape(1, &team);
        memset(k.x.grad, 0, k.x.t.numel * sizeof(float));
        qat_tape_backward(t, pool_fn(t, &k));
        double covered = 0;
        for (int n = 0; n < c.N; n++)
            for (int h = 0; h < c.H; h++)
                for (int w = 0; w < c.W; w++)
                    for (int ch = 0; ch < c.C; ch++) {
                        float g = k.x.grad[((n * c.H + h) * c.W + w) * c.C + ch];
                        if (h == 4 || w == 6)
                            cr_assert_eq(g, 0.0f);
                        else
                            covered += fabs(g);
                    }
        cr_assert_gt(covered, 0.0);
        qat_tape_destroy(t);
        ctx_free(&k);
    }
}

Test(pool2d, records_nothing_without_grad)
{
    pool_ctx k;
    ctx_init(&k, &cases[1], 1, 1, 0);
    qat_tape *t;
    qat_tape_create(NULL, &t, NULL);
    qat_tape_set_grad_enabled(t, 0);
    qat_pool2d_params p = params_of(&cases[1]);
    qat_op_maxpool2d(t, &k.x.t, &p);
    qat_op_avgpool2d(t, &k.x.t, &p);
    cr_assert_eq(qat_tape_num_nodes(t), 0);
    qat_tape_set_grad_enabled(t, 1);
    qat_op_maxpool2d(t, &k.x.t, &p);
    qat_op_avgpool2d(t, &k.x.t, &p);
    cr_assert_eq(qat_tape_num_nodes(t), 2);
    qat_tape_destroy(t);
    ctx_free(&k);
}
