/* dropout: seeded masks, identity cases, drop rate, scaling and gradient. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "gradcheck_util.h"

typedef struct {
    test_leaf x;
    float *proj;
    float p;
    uint64_t seed;
} drop_ctx;

static void ctx_init(drop_ctx *k, int ndim, const int *shape, float p)
{
    memset(k, 0, sizeof *k);
    qat_rng r;
    qat_rng_seed(&r, 77, (uint64_t)shape[0]);
    leaf_init(&k->x, &r, ndim, shape, 1.0f);
    k->proj = random_vec(&r, k->x.t.numel);
    k->p = p;
    k->seed = 1234;
}

static void ctx_free(drop_ctx *k)
{
    leaf_free(&k->x);
    free(k->proj);
}

/* Reseeds the step RNG first, as the trainer does per step, so every
 * evaluation in a gradient check draws the same mask. */
static qat_tensor *drop_fn(qat_tape *t, void *vctx)
{
    drop_ctx *k = vctx;
    qat_rng_seed(qat_tape_rng(t), k->seed, 0);
    return qat_op_dot_const(t, qat_op_dropout(t, &k->x.t, k->p), k->proj);
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

/* y for (seed, threads), copied out. */
static float *run_dropout(drop_ctx *k, uint64_t seed, int threads)
{
    qat_team *team;
    qat_tape *t = make_tape(threads, &team);
    qat_rng_seed(qat_tape_rng(t), seed, 0);
    qat_tensor *y = qat_op_dropout(t, &k->x.t, k->p);
    float *out = malloc(y->numel * sizeof(float));
    memcpy(out, y->data, y->numel * sizeof(float));
    qat_tape_destroy(t);
    qat_team_destroy(team);
    return out;
}

Test(dropout, same_seed_same_mask_any_thread_count)
{
    int s[2] = {37, 1001}; /* 37037 elements: several mask chunks and a partial one */
    drop_ctx k;
    ctx_init(&k, 2, s, 0.4f);
    size_t n = k.x.t.numel;
    float *a = run_dropout(&k, 5, 1), *b = run_dropout(&k, 5, 1), *c = run_dropout(&k, 5, 2);
    float *d = run_dropout(&k, 6, 1);
    cr_assert(memcmp(a, b, n * sizeof(float)) == 0, "same seed, different mask");
    cr_assert(memcmp(a, c, n * sizeof(float)) == 0, "mask depends on the thread count");
    size_t differ = 0;
    for (size_t i = 0; i < n; i++)
        differ += (a[i] == 0.0f) != (d[i] == 0.0f);
    cr_assert_gt(differ, n / 4, "another seed should give another mask (%zu differ)", differ);
    free(a);
    free(b);
    free(c);
    free(d);
    ctx_free(&k);
}

Test(dropout, drop_rate_and_scaling)
{
    int s[4] = {8, 25, 25, 40}; /* 200000 elements */
    const float ps[] = {0.1f, 0.3f, 0.5f, 0.9f};
    for (int pi = 0; pi < 4; pi++) {
        drop_ctx k;
        ctx_init(&k, 4, s, ps[pi]);
        float *y = run_dropout(&k, 3, 2);
        size_t n = k.x.t.numel, zeros = 0;
        float scale = 1.0f / (1.0f - ps[pi]);
        for (size_t i = 0; i < n; i++) {
            if (y[i] == 0.0f)
                zeros++;
            else
                cr_assert_eq(y[i], k.x.data[i] * scale, "kept values are scaled by 1/(1-p)");
        }
        double frac = (double)zeros / (double)n, p = ps[pi];
        double sigma = sqrt(p * (1 - p) / (double)n);
        cr_assert(fabs(frac - p) < 5 * sigma, "p=%g: dropped fraction %g", p, frac);
        free(y);
        ctx_free(&k);
    }
}

Test(dropout, identity_for_p0_and_outside_training)
{
    int s[2] = {3, 5};
    drop_ctx k;
    ctx_init(&k, 2, s, 0.0f);
    qat_tape *t;
    qat_tape_create(NULL, &t, NULL);
    qat_tensor *y = qat_op_dropout(t, &k.x.t, 0.0f);
    cr_assert(memcmp(y->data, k.x.data, 15 * sizeof(float)) == 0);
    qat_tape_set_training(t, 0);
    y = qat_op_dropout(t, &k.x.t, 0.7f);
    cr_assert(memcmp(y->data, k.x.data, 15 * sizeof(float)) == 0);
    /* the gradient passes through unchanged */
    memset(k.x.grad, 0, 15 * sizeof(float));
    qat_tape_backward(t, qat_op_dot_const(t, y, k.proj));
    for (int i = 0; i < 15; i++)
        cr_assert_eq(k.x.grad[i], k.proj[i]);
    qat_tape_destroy(t);
    ctx_free(&k);
}

Test(dropout, p1_drops_everything)
{
    int s[2] = {4, 9};
    drop_ctx k;
    ctx_init(&k, 2, s, 1.0f);
    float *y = run_dropout(&k, 1, 1);
    for (int i = 0; i < 36; i++)
        cr_assert_eq(y[i], 0.0f);
    free(y);
    ctx_free(&k);
}

Test(gradcheck, dropout)
{
    int s[4] = {3, 5, 3, 7};
    for (int threads = 1; threads <= 2; threads++) {
        drop_ctx k;
        ctx_init(&k, 4, s, 0.35f);
        qat_team *team;
        qat_tape *t = make_tape(threads, &team);
        qat_tensor *leaves[1] = {&k.x.t};
        char where[256];
        double worst = qat_gradcheck(t, drop_fn, &k, leaves, 1, 1e-2, 1e-3, 1e-2, 0, where,
                                     sizeof where);
        cr_assert_leq(worst, 1.0, "threads=%d: %s", threads, where);
        /* and exactly: dx = mask * proj / (1 - p), dropped where y was 0 */
        qat_tape_reset(t);
        memset(k.x.grad, 0, k.x.t.numel * sizeof(float));
        qat_rng_seed(qat_tape_rng(t), k.seed, 0);
        qat_tensor *y = qat_op_dropout(t, &k.x.t, k.p);
        qat_tape_backward(t, qat_op_dot_const(t, y, k.proj));
        size_t kept = 0;
        for (size_t i = 0; i < k.x.t.numel; i++) {
            float expect = y->data[i] != 0.0f ? k.proj[i] * (1.0f / (1.0f - k.p)) : 0.0f;
            cr_assert_eq(k.x.grad[i], expect);
            kept += y->data[i] != 0.0f;
        }
        cr_assert(kept > 0 && kept < k.x.t.numel);
        qat_tape_destroy(t);
        qat_team_destroy(team);
        ctx_free(&k);
    }
}
