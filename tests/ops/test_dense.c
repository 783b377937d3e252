/* Finite-difference gradient checks for linear, relu, losses, add, flatten. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "gradcheck_util.h"

typedef struct {
    test_leaf x, w, b;
    float *proj;
    uint8_t labels[8];
    int use_bias, with_relu, loss; /* 0 dot, 1 ce, 2 mse, 3 smoothed ce, 4 l1, 5 huber, 6 kd,
                                     7 ce+kd */
    float *target;
} dense_ctx;

static qat_tensor *dense_fn(qat_tape *t, void *vctx)
{
    dense_ctx *c = vctx;
    qat_tensor *y = qat_op_linear(t, &c->x.t, &c->w.t, c->use_bias ? &c->b.t : NULL);
    if (c->with_relu)
        y = qat_op_relu(t, y);
    if (c->loss == 1)
        return qat_op_softmax_cross_entropy(t, y, c->labels);
    if (c->loss == 3)
        return qat_op_softmax_cross_entropy_smooth(t, y, c->labels, 0.2f);
    if (c->loss == 2)
        return qat_op_mse(t, y, c->target);
    if (c->loss == 4)
        return qat_op_l1(t, y, c->target);
    if (c->loss == 5)
        return qat_op_huber(t, y, c->target, 0.5f);
    /* distillation against fixed "teacher logits" (target, scaled up so the
     * softened distributions are far from uniform) */
    if (c->loss == 6)
        return qat_op_distill_kl(t, y, c->target, 2.5f);
    if (c->loss == 7)
        return qat_op_loss_blend(t, qat_op_softmax_cross_entropy(t, y, c->labels),
                                 qat_op_distill_kl(t, y, c->target, 4.0f), 0.3f);
    return qat_op_dot_const(t, y, c->proj);
}

static void run_dense(int N, int In, int Out, int bias, int relu, int loss, int threads)
{
    qat_rng r;
    qat_rng_seed(&r, 11, (uint64_t)(N * 100 + In * 10 + Out));
    dense_ctx c;
    memset(&c, 0, sizeof c);
    int xs[2] = {N, In}, ws[2] = {Out, In}, bs[1] = {Out};
    leaf_init(&c.x, &r, 2, xs, 1.0f);
    leaf_init(&c.w, &r, 2, ws, 0.5f);
    leaf_init(&c.b, &r, 1, bs, 0.5f);
    c.proj = random_vec(&r, (size_t)N * Out);
    c.target = random_vec(&r, (size_t)N * Out);
    for (int i = 0; loss >= 6 && i < N * Out; i++)
        c.target[i] *= 6.0f;
    for (int i = 0; i < N; i++)
        c.labels[i] = (uint8_t)qat_rng_below(&r, (uint32_t)Out);
    c.use_bias = bias;
    c.with_relu = relu;
    c.loss = loss;
    qat_team *team = NULL;
    if (threads > 1)
        cr_assert_eq(qat_team_create(threads, &team, NULL), QAT_OK);
    qat_tape *t;
    cr_assert_eq(qat_tape_create(team, &t, NULL), QAT_OK);
    qat_tensor *leaves[3] = {&c.x.t, &c.w.t, &c.b.t};
    char where[256];
    /* float32 forward: eps 1e-2 keeps truncation and rounding error ~1e-4 */
    /* relu has a kink at 0: a smaller step keeps probes from crossing it */
    double worst = qat_gradcheck(t, dense_fn, &c, leaves, bias ? 3 : 2,
                                 relu || loss == 4 ? 1e-3 : 1e-2, 2e-3, 2e-2, 0,
                                 where, sizeof where);
    cr_assert_leq(worst, 1.0, "N=%d In=%d Out=%d bias=%d relu=%d loss=%d: %s", N, In, Out, bias,
                  relu, loss, where);
    qat_tape_destroy(t);
    qat_team_destroy(team);
    leaf_free(&c.x);
    leaf_free(&c.w);
    leaf_free(&c.b);
    free(c.proj);
    free(c.target);
}

Test(gradcheck, linear_with_and_without_bias) {
    run_dense(1, 3, 5, 1, 0, 0, 1);
    run_dense(4, 7, 3, 0, 0, 0, 1);
    run_dense(5, 9, 6, 1, 0, 0, 2);
}
Test(gradcheck, relu) { run_dense(3, 6, 5, 1, 1, 0, 1); }
Test(gradcheck, softmax_cross_entropy) { run_dense(6, 4, 10, 1, 0, 1, 1); }
Test(gradcheck, mse) { run_dense(2, 5, 4, 1, 0, 2, 1); }
/* l1 has a kink where an output meets its target: the small step keeps
 * probes off it; huber's delta 0.5 puts outputs on both of its pieces */
Test(gradcheck, l1) { run_dense(3, 5, 4, 1, 0, 4, 1); }
Test(gradcheck, huber) { run_dense(4, 5, 4, 1, 0, 5, 1); }
Test(gradcheck, label_smoothed_cross_entropy) { run_dense(5, 4, 7, 1, 0, 3, 1); }
Test(gradcheck, distillation_kl) { run_dense(6, 4, 10, 1, 0, 6, 1); }
Test(gradcheck, task_and_distillation_blend) { run_dense(5, 3, 7, 1, 0, 7, 1); }

Test(ops, distillation_kl_matches_the_formula)
{
    qat_tape *t;
    qat_tape_create(NULL, &t, NULL);
    float z[3] = {2.0f, -1.0f, 0.5f}, zt[3] = {0.0f, 3.0f, 1.0f};
    int s[2] = {1, 3};
    qat_tensor x = qat_tensor_view(z, NULL, 2, s);
    double T = 2.0, q[3], p[3], sq = 0, sp = 0, kl = 0;
    for (int c = 0; c < 3; c++) {
        sq += q[c] = exp(z[c] / T);
        sp += p[c] = exp(zt[c] / T);
    }
    for (int c = 0; c < 3; c++)
        kl += p[c] / sp * log((p[c] / sp) / (q[c] / sq));
    cr_assert_float_eq(qat_op_distill_kl(t, &x, zt, 2.0f)->data[0], T * T * kl, 1e-5);
    /* a student that agrees with its teacher pays nothing */
    cr_assert_float_eq(qat_op_distill_kl(t, &x, z, 2.0f)->data[0], 0.0, 1e-6);
    qat_tape_destroy(t);
}

Test(ops, label_smoothing_matches_the_smoothed_target_formula)
{
    qat_tape *t;
    qat_tape_create(NULL, &t, NULL);
    float z[3] = {2.0f, -1.0f, 0.5f};
    int s[2] = {1, 3};
    qat_tensor x = qat_tensor_view(z, NULL, 2, s);
    uint8_t lab[1] = {1};
    double lse = log(exp(2.0) + exp(-1.0) + exp(0.5));
    double expect = 0.0;
    for (int c = 0; c < 3; c++)
        expect -= ((c == 1 ? 0.7 : 0.0) + 0.1) * ((double)z[c] - lse); /* eps 0.3 */
    cr_assert_float_eq(qat_op_softmax_cross_entropy_smooth(t, &x, lab, 0.3f)->data[0], expect, 1e-5);
    qat_tape_destroy(t);
}

Test(ops, cross_entropy_is_stable_for_huge_logits)
{
    qat_tape *t;
    qat_tape_create(NULL, &t, NULL);
    float z[6] = {1000.0f, 0.0f, -1000.0f, -500.0f, 800.0f, 799.0f};
    int s[2] = {2, 3};
    qat_tensor x = qat_tensor_view(z, NULL, 2, s);
    uint8_t lab[2] = {0, 2};
    qat_tensor *l = qat_op_softmax_cross_entropy(t, &x, lab);
    /* row 0: loss ~0; row 1: lse = 800 + log(1 + e^-1) -> 800.3133 - 799 */
    double expect = (0.0 + (800.0 + log(1.0 + exp(-1.0)) - 799.0)) / 2.0;
    cr_assert(isfinite(l->data[0]));
    cr_assert_float_eq(l->data[0], expect, 1e-4);
    qat_tape_destroy(t);
}

Test(ops, linear_matches_naive_product_on_awkward_sizes)
{
    qat_rng r;
    qat_rng_seed(&r, 5, 0);
    const int sizes[][3] = {{1, 1, 1}, {3, 7, 33}, {65, 17, 9}, {64, 3136, 128}};
    for (size_t k = 0; k < 4; k++) {
        int N = sizes[k][0], In = sizes[k][1], Out = sizes[k][2];
        test_leaf x, w, b;
        int xs[2] = {N, In}, ws[2] = {Out, In}, bs[1] = {Out};
        leaf_init(&x, &r, 2, xs, 1.0f);
        leaf_init(&w, &r, 2, ws, 1.0f);
        leaf_init(&b, &r, 1, bs, 1.0f);
        qat_team *team;
        qat_team_create(2, &team, NULL);
        qat_tape *t;
        qat_tape_create(team, &t, NULL);
        qat_tensor *y = qat_op_linear(t, &x.t, &w.t, &b.t);
        for (int i = 0; i < N; i++)
            for (int o = 0; o < Out; o++) {
                double s = b.data[o];
                for (int j = 0; j < In; j++)
                    s += (double)x.data[(size_t)i * In + j] * w.data[(size_t)o * In + j];
                cr_assert_float_eq(y->data[(size_t)i * Out + o], s, 1e-3 * (1 + fabs(s)));
            }
        qat_tape_destroy(t);
        qat_team_destroy(team);
        leaf_free(&x);
        leaf_free(&w);
        leaf_free(&b);
    }
}

static qat_tensor *flatten_fn(qat_tape *t, void *vctx)
{
    dense_ctx *c = vctx;
    qat_tensor *a = qat_op_relu(t, &c->x.t);
    qat_tensor *f = qat_op_flatten(t, qat_op_add(t, a, &c->b.t));
    return qat_op_dot_const(t, f, c->proj);
}

Test(gradcheck, add_and_flatten)
{
    qat_rng r;
    qat_rng_seed(&r, 9, 0);
    dense_ctx c;
    memset(&c, 0, sizeof c);
    int s[4] = {2, 3, 2, 5};
    leaf_init(&c.x, &r, 4, s, 1.0f);
    leaf_init(&c.b, &r, 4, s, 1.0f);
    c.proj = random_vec(&r, 60);
    qat_tape *t;
    qat_tape_create(NULL, &t, NULL);
    qat_tensor *leaves[2] = {&c.x.t, &c.b.t};
    char where[256];
    double worst = qat_gradcheck(t, flatten_fn, &c, leaves, 2, 1e-3, 1e-3, 1e-2, 0, where,
                                 sizeof where);
    cr_assert_leq(worst, 1.0, "%s", where);
    qat_tape_destroy(t);
    leaf_free(&c.x);
    leaf_free(&c.b);
    free(c.proj);
}

/* An op with a deliberately wrong backward (d(x^2) reported as 3x): the
 * checker itself must be able to fail. */
static void bad_square_backward(qat_tape *t, const qat_node *n)
{
    float *dx = qat_tape_grad(t, n->in[0]);
    for (size_t i = 0; i < n->out->numel; i++)
        dx[i] += n->out->grad[i] * 3.0f * n->in[0]->data[i];
}

static qat_tensor *bad_fn(qat_tape *t, void *vctx)
{
    dense_ctx *c = vctx;
    qat_tensor *x = &c->x.t;
    qat_tensor *y = qat_tape_tensor(t, x->ndim, x->shape);
    for (size_t i = 0; i < x->numel; i++)
        y->data[i] = x->data[i] * x->data[i];
    qat_tape_record(t, bad_square_backward, y, NULL, 1, &x);
    return qat_op_dot_const(t, y, c->proj);
}

Test(gradcheck, detects_a_wrong_gradient)
{
    qat_rng r;
    qat_rng_seed(&r, 10, 0);
    dense_ctx c;
    memset(&c, 0, sizeof c);
    int s[2] = {2, 4};
    leaf_init(&c.x, &r, 2, s, 1.0f);
    c.proj = random_vec(&r, 8);
    qat_tape *t;
    qat_tape_create(NULL, &t, NULL);
    qat_tensor *leaves[1] = {&c.x.t};
    char where[256];
    double worst = qat_gradcheck(t, bad_fn, &c, leaves, 1, 1e-3, 1e-3, 1e-2, 0, where, sizeof where);
    cr_assert_gt(worst, 10.0, "a 1.5x wrong gradient must fail the check");
    qat_tape_destroy(t);
    leaf_free(&c.x);
    free(c.proj);
}
