/* batchnorm: statistics and running-stat updates checked against double
 * arithmetic, eval mode, and finite-difference gradients in both modes. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "gradcheck_util.h"

typedef struct {
    int ndim, shape[4];
    int training, threads;
} bn_case;

/* 1d [N,C] and 2d [N,H,W,C]; C = 1/3/5/7; batch 1 (2d) and 3. */
static const bn_case cases[] = {
    {2, {3, 5}, 1, 1},       {2, {6, 7}, 1, 2},       {4, {1, 3, 5, 3}, 1, 1},
    {4, {3, 2, 3, 5}, 1, 2}, {4, {3, 4, 2, 1}, 1, 1}, {2, {3, 5}, 0, 1},
    {2, {1, 7}, 0, 2},       {4, {1, 3, 5, 3}, 0, 1}, {4, {3, 2, 3, 7}, 0, 2},
};
#define NCASES (sizeof cases / sizeof cases[0])

typedef struct {
    bn_case c;
    int C;
    size_t M;
    test_leaf x, gamma, beta;
    float *rmean, *rvar, *proj;
    float momentum, eps;
} bn_ctx;

static void ctx_init(bn_ctx *k, const bn_case *c, uint64_t seed)
{
    memset(k, 0, sizeof *k);
    k->c = *c;
    k->C = c->shape[c->ndim - 1];
    qat_rng r;
    qat_rng_seed(&r, seed, (uint64_t)(k->C * 10 + c->ndim));
    leaf_init(&k->x, &r, c->ndim, c->shape, 2.0f);
    k->M = k->x.t.numel / (size_t)k->C;
    for (size_t i = 0; i < k->x.t.numel; i++) /* a per-channel offset, as activations have */
        k->x.data[i] += 0.5f * (float)(i % (size_t)k->C);
    int cs[1] = {k->C};
    leaf_init(&k->gamma, &r, 1, cs, 0.5f);
    leaf_init(&k->beta, &r, 1, cs, 0.5f);
    for (int i = 0; i < k->C; i++)
        k->gamma.data[i] += 1.0f;
    k->rmean = random_vec(&r, (size_t)k->C);
    k->rvar = random_vec(&r, (size_t)k->C);
    for (int i = 0; i < k->C; i++)
        k->rvar[i] = 0.5f + k->rvar[i] * k->rvar[i];
    k->proj = random_vec(&r, k->x.t.numel);
    k->momentum = 0.1f;
    k->eps = 1e-5f;
}

static void ctx_free(bn_ctx *k)
{
    leaf_free(&k->x);
    leaf_free(&k->gamma);
    leaf_free(&k->beta);
    free(k->rmean);
    free(k->rvar);
    free(k->proj);
}

static qat_tensor *bn_fn(qat_tape *t, void *vctx)
{
    bn_ctx *k = vctx;
    qat_tape_set_training(t, k->c.training);
    qat_tensor *y = qat_op_batchnorm(t, &k->x.t, &k->gamma.t, &k->beta.t, k->rmean, k->rvar,
                                     k->momentum, k->eps);
    return qat_op_dot_const(t, y, k->proj);
}

static qat_tape *make_tape(int threads, qat_team **team)
{
    *team = NULL;
    if (threads > 1)
        cr_assert_eq(qat_team_create(threads, team, NULL), QAT_OK);
    qat_tape *t;
    cr_assert_eq(qat_tape_create(*team, &t, NULL), QAT_OK);
    return t;
}

Test(gradcheck, batchnorm_training_and_eval)
{
    for (size_t i = 0; i < NCASES; i++) {
        bn_ctx k;
        ctx_init(&k, &cases[i], 3);
        qat_team *team;
        qat_tape *t = make_tape(cases[i].threads, &team);
        qat_tensor *leaves[3] = {&k.x.t, &k.gamma.t, &k.beta.t};
        char where[256];
        double worst = qat_gradcheck(t, bn_fn, &k, leaves, 3, 1e-2, 2e-3, 2e-2, 0, where,
                                     sizeof where);
        cr_assert_leq(worst, 1.0, "case %zu (%s, %dd, C=%d, M=%zu, threads %d): %s", i,
                      cases[i].training ? "training" : "eval", cases[i].ndim == 2 ? 1 : 2, k.C,
                      k.M, cases[i].threads, where);
        qat_tape_destroy(t);
        qat_team_destroy(team);
        ctx_free(&k);
    }
}

/* One forward step against statistics computed here in double. */
static void check_forward(const bn_case *c)
{
    bn_ctx k;
    ctx_init(&k, c, 5);
    float *rm0 = malloc((size_t)k.C * sizeof(float)), *rv0 = malloc((size_t)k.C * sizeof(float));
    memcpy(rm0, k.rmean, (size_t)k.C * sizeof(float));
    memcpy(rv0, k.rvar, (size_t)k.C * sizeof(float));
    qat_team *team;
    qat_tape *t = make_tape(c->threads, &team);
    qat_tape_set_training(t, c->training);
    qat_tensor *y = qat_op_batchnorm(t, &k.x.t, &k.gamma.t, &k.beta.t, k.rmean, k.rvar,
                                     k.momentum, k.eps);
    for (int ch = 0; ch < k.C; ch++) {
        double mean = 0, var = 0;
        for (size_t r = 0; r < k.M; r++)
            mean += k.x.data[r * k.C + ch];
        mean /= (double)k.M;
        for (size_t r = 0; r < k.M; r++) {
            double d = k.x.data[r * k.C + ch] - mean;
            var += d * d;
        }
        double ub = k.M > 1 ? var / (double)(k.M - 1) : 0.0;
        var /= (double)k.M;
        double um = c->training ? mean : rm0[ch], uv = c->training ? var : rv0[ch];
        for (size_t r = 0; r < k.M; r++) {
            double ref = (k.x.data[r * k.C + ch] - um) / sqrt(uv + k.eps) * k.gamma.data[ch] +
                         k.beta.data[ch];
            float got = y->data[r * k.C + ch];
            cr_assert(fabs(got - ref) <= 1e-4 * (1 + fabs(ref)), "c=%d r=%zu: %g vs %g", ch, r,
                      got, ref);
        }
        double erm = c->training ? 0.9 * rm0[ch] + 0.1 * mean : rm0[ch];
        double erv = c->training ? 0.9 * rv0[ch] + 0.1 * ub : rv0[ch];
        cr_assert(fabs(k.rmean[ch] - erm) <= 1e-5 * (1 + fabs(erm)), "running mean %g vs %g",
                  k.rmean[ch], erm);
        cr_assert(fabs(k.rvar[ch] - erv) <= 1e-5 * (1 + fabs(erv)), "running var %g vs %g",
                  k.rvar[ch], erv);
    }
    free(rm0);
    free(rv0);
    qat_tape_destroy(t);
    qat_team_destroy(team);
    ctx_free(&k);
}

Test(batchnorm, forward_and_running_stats_match_double_reference)
{
    for (size_t i = 0; i < NCASES; i++)
        check_forward(&cases[i]);
}

Test(batchnorm, training_output_is_normalised_per_channel)
{
    bn_case c = {4, {3, 5, 4, 7}, 1, 2};
    bn_ctx k;
    ctx_init(&k, &c, 8);
    qat_team *team;
    qat_tape *t = make_tape(2, &team);
    qat_tensor *y = qat_op_batchnorm(t, &k.x.t, NULL, NULL, k.rmean, k.rvar, 0.5f, 1e-5f);
    for (int ch = 0; ch < k.C; ch++) {
        double m = 0, v = 0;
        for (size_t r = 0; r < k.M; r++)
            m += y->data[r * k.C + ch];
        m /= (double)k.M;
        for (size_t r = 0; r < k.M; r++)
            v += (y->data[r * k.C + ch] - m) * (y->data[r * k.C + ch] - m);
        v /= (double)k.M;
        cr_assert(fabs(m) < 1e-5, "mean %g", m);
        cr_assert(fabs(v - 1.0) < 1e-3, "var %g", v);
    }
    qat_tape_destroy(t);
    qat_team_destroy(team);
    ctx_free(&k);
}

Test(batchnorm, same_thread_count_gives_bit_identical_results)
{
    bn_case c = {4, {5, 6, 7, 5}, 1, 2};
    float *out[2], *gx[2];
    for (int run = 0; run < 2; run++) {
        bn_ctx k;
        ctx_init(&k, &c, 12);
        qat_team *team;
        qat_tape *t = make_tape(2, &team);
        memset(k.x.grad, 0, k.x.t.numel * sizeof(float));
        qat_tensor *y = qat_op_batchnorm(t, &k.x.t, &k.gamma.t, &k.beta.t, k.rmean, k.rvar, 0.1f,
                                         1e-5f);
        out[run] = malloc(y->numel * sizeof(float));
        memcpy(out[run], y->data, y->numel * sizeof(float));
        qat_tape_backward(t, qat_op_dot_const(t, y, k.proj));
        gx[run] = malloc(k.x.t.numel * sizeof(float));
        memcpy(gx[run], k.x.grad, k.x.t.numel * sizeof(float));
        if (run == 1) {
            cr_assert(memcmp(out[0], out[1], y->numel * sizeof(float)) == 0);
            cr_assert(memcmp(gx[0], gx[1], k.x.t.numel * sizeof(float)) == 0);
        }
        qat_tape_destroy(t);
        qat_team_destroy(team);
        ctx_free(&k);
    }
    for (int run = 0; run < 2; run++) {
        free(out[run]);
        free(gx[run]);
    }
}
