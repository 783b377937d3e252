/* Optimizers against hand-computed steps on a two-parameter problem, weight
 * decay per segment, decoupled AdamW, pruning masks, checkpoint round trips,
 * gradient clipping and config validation.
 *
 * The hand problem: p0 = [1, -2], lr = 0.1, one decay segment, wd = 0,
 * gradients g1 = [0.5, -1], g2 = [1, 2], g3 = [-2, 0.25]. Hyperparameters
 * are dyadic (mu 0.5, beta1 0.5, beta2 0.75, alpha 0.75, eps 0.25) so the
 * moments are exact and the arithmetic below can be followed on paper. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "qat/optim.h"
#include "qat/rng.h"

#if defined(__GLIBC__)
#include <malloc.h> /* mallinfo2, to see that a step never allocates */
#endif

static const float G[3][2] = {{0.5f, -1.0f}, {1.0f, 2.0f}, {-2.0f, 0.25f}};

static void near(float got, double want, const char *what, int step, int i)
{
    cr_expect(fabs((double)got - want) <= 1e-6 * fabs(want),
              "%s step %d p[%d]: got %.9g, want %.9g", what, step, i, (double)got, want);
}

static qat_optim_config cfg(qat_optim_kind k)
{
    qat_optim_config c;
    qat_optim_config_defaults(&c, k);
    int adam = k == QAT_OPT_ADAM || k == QAT_OPT_ADAMW, rms = k == QAT_OPT_RMSPROP;
    /* Fields the kind ignores get other values, so a mix-up shows. */
    c.momentum = adam ? 0.875f : 0.5f;
    c.beta1 = adam ? 0.5f : 0.125f;
    c.beta2 = adam ? 0.75f : 0.375f;
    c.alpha = rms ? 0.75f : 0.625f;
    c.eps = adam || rms ? 0.25f : 0.0625f;
    return c;
}

static qat_optim *make(const qat_optim_config *c, size_t n, const qat_param_seg *segs, int nsegs)
{
    qat_optim *o = NULL;
    qat_error e;
    qat_error_clear(&e);
    cr_assert_eq(qat_optim_create(c, n, segs, nsegs, &o, &e), QAT_OK, "%s", e.msg);
    cr_assert_not_null(o);
    return o;
}

/* Runs the hand problem and checks params after every step. */
static qat_optim *run_hand(const qat_optim_config *c, const qat_param_seg *segs, int nsegs,
                           const double want[3][2], const char *what)
{
    qat_param_seg one = {0, 2, 1};
    qat_optim *o = make(c, 2, segs ? segs : &one, segs ? nsegs : 1);
    float p[2] = {1.0f, -2.0f};
    for (int t = 0; t < 3; t++) {
        qat_optim_step(o, p, G[t], NULL, 0.1f);
        for (int i = 0; i < 2; i++)
            near(p[i], want[t][i], what, t + 1, i);
    }
    cr_expect_eq(qat_optim_steps(o), 3);
    return o;
}

/* ---- hand-computed steps ---------------------------------------------------- */

Test(hand, sgd)
{
    /* p -= 0.1 g:
     * 1: [1 - 0.05, -2 + 0.1]     = [0.95, -1.9]
     * 2: [0.95 - 0.1, -1.9 - 0.2] = [0.85, -2.1]
     * 3: [0.85 + 0.2, -2.1 - 0.025] = [1.05, -2.125] */
    const double want[3][2] = {{0.95, -1.9}, {0.85, -2.1}, {1.05, -2.125}};
    qat_optim_config c = cfg(QAT_OPT_SGD);
    qat_optim *o = run_hand(&c, NULL, 0, want, "sgd");
    size_t cnt = 99;
    cr_expect_not_null(qat_optim_state(o, &cnt));
    cr_expect_eq(cnt, 0u);
    qat_optim_destroy(o);
}

Test(hand, momentum)
{
    /* v = 0.5 v + g; p -= 0.1 v (first step v = g):
     * 1: v = [0.5, -1];                          p = [0.95, -1.9]
     * 2: v = [0.25 + 1, -0.5 + 2] = [1.25, 1.5]; p = [0.95 - 0.125, -1.9 - 0.15] = [0.825, -2.05]
     * 3: v = [0.625 - 2, 0.75 + 0.25] = [-1.375, 1]; p = [0.825 + 0.1375, -2.05 - 0.1]
     *                                                 = [0.9625, -2.15] */
    const double want[3][2] = {{0.95, -1.9}, {0.825, -2.05}, {0.9625, -2.15}};
    qat_optim_config c = cfg(QAT_OPT_MOMENTUM);
    qat_optim *o = run_hand(&c, NULL, 0, want, "momentum");
    size_t cnt;
    const float *s = qat_optim_state(o, &cnt);
    cr_assert_eq(cnt, 2u);
    near(s[0], -1.375, "momentum v", 3, 0);
    near(s[1], 1.0, "momentum v", 3, 1);
    qat_optim_destroy(o);
}

Test(hand, nesterov)
{
    /* v = 0.5 v + g; p -= 0.1 (g + 0.5 v), same v as momentum:
     * 1: g + 0.5 v = [0.5 + 0.25, -1 - 0.5] = [0.75, -1.5];     p = [0.925, -1.85]
     * 2: = [1 + 0.625, 2 + 0.75] = [1.625, 2.75];               p = [0.7625, -2.125]
     * 3: = [-2 - 0.6875, 0.25 + 0.5] = [-2.6875, 0.75];         p = [1.03125, -2.2] */
    const double want[3][2] = {{0.925, -1.85}, {0.7625, -2.125}, {1.03125, -2.2}};
    qat_optim_config c = cfg(QAT_OPT_NESTEROV);
    qat_optim_destroy(run_hand(&c, NULL, 0, want, "nesterov"));
}

Test(hand, adam)
{
    /* m = 0.5 m + 0.5 g; v = 0.75 v + 0.25 g^2; bc1 = 1 - 0.5^t; bc2 = 1 - 0.75^t;
     * p -= 0.1 (m / bc1) / (sqrt(v / bc2) + 0.25)
     * t=1 (bc1 0.5, bc2 0.25):
     *   p0: m 0.25, v 0.0625, mhat 0.5, vhat 0.25, sqrt 0.5: p = 1 - 0.05/0.75 = 0.9333333333
     *   p1: m -0.5, v 0.25, mhat -1, vhat 1, sqrt 1: p = -2 + 0.1/1.25 = -1.92
     * t=2 (bc1 0.75, bc2 0.4375):
     *   p0: m 0.625, v 0.296875, mhat 0.8333333333, vhat 0.6785714286, sqrt 0.823754471,
     *       step 0.08333333/1.073754471 = 0.07760930043: p = 0.8557240329
     *   p1: m 0.75, v 1.1875, mhat 1, vhat 2.714285714, sqrt 1.647508942,
     *       step 0.1/1.897508942 = 0.05270067391: p = -1.972700674
     * t=3 (bc1 0.875, bc2 0.578125):
     *   p0: m -0.6875, v 1.22265625, mhat -0.7857142857, vhat 2.114864865, sqrt 1.454257496,
     *       step -0.07857142857/1.704257496 = -0.04610302654: p = 0.9018270594
     *   p1: m 0.5, v 0.90625, mhat 0.5714285714, vhat 1.567567568, sqrt 1.252025386,
     *       step 0.05714285714/1.502025386 = 0.03804386908: p = -2.010744543 */
    const double want[3][2] = {{0.9333333333, -1.92},
                               {0.8557240329, -1.972700674},
                               {0.9018270594, -2.010744543}};
    qat_optim_config c = cfg(QAT_OPT_ADAM);
    qat_optim *o = run_hand(&c, NULL, 0, want, "adam");
    size_t cnt;
    const float *s = qat_optim_state(o, &cnt);
    cr_assert_eq(cnt, 4u); /* m then v */
    near(s[0], -0.6875, "adam m", 3, 0);
    near(s[1], 0.5, "adam m", 3, 1);
    near(s[2], 1.22265625, "adam v", 3, 0);
    near(s[3], 0.90625, "adam v", 3, 1);
    qat_optim_destroy(o);
}

Test(hand, adamw_decays_only_its_segment)
{
    /* wd 0.5; p0 in a decay segment, p1 not. Moments see the raw gradient,
     * so they equal Adam's above; p0 is first shrunk by 1 - 0.1 * 0.5 = 0.95:
     *   t=1: p0 = 1 * 0.95 - 0.06666666667 = 0.8833333333;  p1 = -1.92 (as Adam)
     *   t=2: p0 = 0.8833333333 * 0.95 - 0.07760930043 = 0.8391666667 - 0.07760930043
     *           = 0.7615573662;                              p1 = -1.972700674
     *   t=3: p0 = 0.7615573662 * 0.95 + 0.04610302654 = 0.7234794979 + 0.04610302654
     *           = 0.7695825245;                              p1 = -2.010744543 */
    const double want[3][2] = {{0.8833333333, -1.92},
                               {0.7615573662, -1.972700674},
                               {0.7695825245, -2.010744543}};
    qat_optim_config c = cfg(QAT_OPT_ADAMW);
    c.weight_decay = 0.5f;
    qat_param_seg segs[2] = {{1, 1, 0}, {0, 1, 1}}; /* unsorted on purpose */
    qat_optim_destroy(run_hand(&c, segs, 2, want, "adamw"));
}

Test(hand, rmsprop)
{
    /* s = 0.75 s + 0.25 g^2; p -= 0.1 g / (sqrt(s) + 0.25)
     * t=1: p0: s 0.0625, den 0.5, g/den 1:                 p = 0.9
     *      p1: s 0.25, den 0.75, g/den -1.333333333:       p = -1.866666667
     * t=2: p0: s 0.296875, den 0.7948623679, g/den 1.258079437:  p = 0.7741920563
     *      p1: s 1.1875, den 1.339724736, g/den 1.492843975:     p = -2.015951064
     * t=3: p0: s 1.22265625, den 1.355737876, g/den -1.475211422: p = 0.9217131986
     *      p1: s 0.90625, den 1.201971638, g/den 0.2079915965:    p = -2.036750224 */
    const double want[3][2] = {{0.9, -1.866666667},
                               {0.7741920563, -2.015951064},
                               {0.9217131986, -2.036750224}};
    qat_optim_config c = cfg(QAT_OPT_RMSPROP);
    c.momentum = 0.0f;
    qat_optim *o = run_hand(&c, NULL, 0, want, "rmsprop");
    size_t cnt;
    const float *s = qat_optim_state(o, &cnt);
    cr_assert_eq(cnt, 2u);
    near(s[0], 1.22265625, "rmsprop s", 3, 0);
    near(s[1], 0.90625, "rmsprop s", 3, 1);
    qat_optim_destroy(o);
}

Test(hand, rmsprop_momentum)
{
    /* Same s and den as above; b = 0.5 b + g / den; p -= 0.1 b
     * t=1: b = [1, -1.333333333];                                p = [0.9, -1.866666667]
     * t=2: b = [0.5 + 1.258079437, -0.6666666667 + 1.492843975]
     *        = [1.758079437, 0.8261773082];                      p = [0.7241920563, -1.949284397]
     * t=3: b = [0.8790397185 - 1.475211422, 0.4130886541 + 0.2079915965]
     *        = [-0.596171704, 0.6210802506];                     p = [0.7838092267, -2.011392423] */
    const double want[3][2] = {{0.9, -1.866666667},
                               {0.7241920563, -1.949284397},
                               {0.7838092267, -2.011392423}};
    qat_optim_config c = cfg(QAT_OPT_RMSPROP);
    qat_optim *o = run_hand(&c, NULL, 0, want, "rmsprop+momentum");
    size_t cnt;
    const float *s = qat_optim_state(o, &cnt);
    cr_assert_eq(cnt, 4u); /* s then b */
    near(s[2], -0.596171704, "rmsprop b", 3, 0);
    near(s[3], 0.6210802506, "rmsprop b", 3, 1);
    qat_optim_destroy(o);
}

/* ---- weight decay ------------------------------------------------------------ */

/* p = [2, 2], g = [1, 1] twice, lr 0.1, wd 0.5; p0 in a decay segment, p1 not.
 * L2 is added to the gradient before anything else: g' = g + 0.5 p. */
static void run_decay(qat_optim_kind k, const double want[2][2])
{
    qat_optim_config c = cfg(k);
    c.weight_decay = 0.5f;
    qat_param_seg segs[2] = {{0, 1, 1}, {1, 1, 0}};
    qat_optim *o = make(&c, 2, segs, 2);
    float p[2] = {2.0f, 2.0f};
    const float g[2] = {1.0f, 1.0f};
    for (int t = 0; t < 2; t++) {
        qat_optim_step(o, p, g, NULL, 0.1f);
        for (int i = 0; i < 2; i++)
            near(p[i], want[t][i], qat_optim_kind_name(k), t + 1, i);
    }
    qat_optim_destroy(o);
}

Test(decay, l2_only_on_decay_segments)
{
    /* sgd: p0: g' = 1 + 1 = 2, p = 1.8; g' = 1 + 0.9 = 1.9, p = 1.8 - 0.19 = 1.61
     *      p1: 1.9, 1.8 */
    const double sgd[2][2] = {{1.8, 1.9}, {1.61, 1.8}};
    run_decay(QAT_OPT_SGD, sgd);
    /* momentum 0.5: p0: v = 2, p = 1.8; g' = 1.9, v = 1 + 1.9 = 2.9, p = 1.8 - 0.29 = 1.51
     *               p1: v = 1, p = 1.9; v = 1.5, p = 1.75 */
    const double mom[2][2] = {{1.8, 1.9}, {1.51, 1.75}};
    run_decay(QAT_OPT_MOMENTUM, mom);
    /* nesterov 0.5: p0: v = 2, step 2 + 1 = 3, p = 1.7;
     *                   g' = 1 + 0.85 = 1.85, v = 1 + 1.85 = 2.85, step 1.85 + 1.425 = 3.275,
     *                   p = 1.7 - 0.3275 = 1.3725
     *               p1: v = 1, step 1.5, p = 1.85; v = 1.5, step 1.75, p = 1.675 */
    const double nes[2][2] = {{1.7, 1.85}, {1.3725, 1.675}};
    run_decay(QAT_OPT_NESTEROV, nes);
    /* rmsprop (alpha 0.75, eps 0.25, no momentum):
     *   p0: g' 2, s 1, den 1.25, p = 2 - 0.16 = 1.84;
     *       g' = 1 + 0.92 = 1.92, s = 0.75 + 0.25 * 3.6864 = 1.6716, den 1.542903709,
     *       p = 1.84 - 0.192 / 1.542903709 = 1.715559311
     *   p1: s 0.25, den 0.75, p = 2 - 0.1333333333 = 1.866666667;
     *       s 0.4375, den 0.9114378278, p = 1.756949913 */
    qat_optim_config c = cfg(QAT_OPT_RMSPROP);
    c.momentum = 0.0f;
    c.weight_decay = 0.5f;
    qat_param_seg segs[2] = {{0, 1, 1}, {1, 1, 0}};
    qat_optim *o = make(&c, 2, segs, 2);
    float p[2] = {2.0f, 2.0f};
    const float g[2] = {1.0f, 1.0f};
    const double rms[2][2] = {{1.84, 1.866666667}, {1.715559311, 1.756949913}};
    for (int t = 0; t < 2; t++) {
        qat_optim_step(o, p, g, NULL, 0.1f);
        for (int i = 0; i < 2; i++)
            near(p[i], rms[t][i], "rmsprop", t + 1, i);
    }
    qat_optim_destroy(o);
}

/* One parameter p = 4, g = 1 twice, lr 0.1, beta1 0.5, beta2 0.75, eps 1e-8. */
static void run_one(qat_optim_kind k, float wd, const double want[2], const char *what)
{
    qat_optim_config c = cfg(k);
    c.eps = 1e-8f;
    c.weight_decay = wd;
    qat_param_seg seg = {0, 1, 1};
    qat_optim *o = make(&c, 1, &seg, 1);
    float p = 4.0f;
    const float g = 1.0f;
    for (int t = 0; t < 2; t++) {
        qat_optim_step(o, &p, &g, NULL, 0.1f);
        near(p, want[t], what, t + 1, 0);
    }
    qat_optim_destroy(o);
}

Test(decay, adamw_is_decoupled_adam_l2_is_not)
{
    /* Plain Adam, constant g: mhat = vhat = 1 every step, so p moves by
     * 0.1 / (1 + 1e-8): 3.9, 3.8. */
    const double plain[2] = {3.9, 3.8};
    run_one(QAT_OPT_ADAM, 0.0f, plain, "adam");
    /* Adam + L2 0.5: the decay enters the moments and is normalised away.
     *   t=1: g' = 1 + 2 = 3, mhat 3, vhat 9: p = 4 - 0.1 * 3/3 = 3.9 (same as plain)
     *   t=2: g' = 1 + 1.95 = 2.95, m = 0.75 + 1.475 = 2.225, mhat 2.966666667;
     *        v = 1.6875 + 2.175625 = 3.863125, vhat 8.83, sqrt 2.971531592;
     *        p = 3.9 - 0.2966666667 / 2.971531592 = 3.800163718 */
    const double l2[2] = {3.9, 3.800163718};
    run_one(QAT_OPT_ADAM, 0.5f, l2, "adam+l2");
    /* AdamW 0.5: the moments see the raw g (step 0.1 as in plain Adam), and p
     * shrinks by 1 - 0.05 first: 4 * 0.95 - 0.1 = 3.7; 3.7 * 0.95 - 0.1 = 3.415 */
    const double w[2] = {3.7, 3.415};
    run_one(QAT_OPT_ADAMW, 0.5f, w, "adamw");
}

static void grads_at(float *g, size_t n, int step)
{
    for (size_t i = 0; i < n; i++)
        g[i] = sinf(0.7f * (float)i + 1.3f * (float)step + 0.2f);
}

static const qat_optim_kind all_kinds[] = {QAT_OPT_SGD,  QAT_OPT_MOMENTUM, QAT_OPT_NESTEROV,
                                           QAT_OPT_ADAM, QAT_OPT_ADAMW,    QAT_OPT_RMSPROP,
                                           QAT_OPT_RMSPROP};
#define NCFG 7
/* cfg number 6 is RMSprop with momentum, 5 without. */
static qat_optim_config cfg_n(int j)
{
    qat_optim_config c = cfg(all_kinds[j]);
    if (j == 5)
        c.momentum = 0.0f;
    return c;
}

Test(decay, no_decay_segment_matches_wd_zero_bit_for_bit)
{
    enum { N = 13 };
    for (int j = 0; j < NCFG; j++) {
        qat_optim_config cd = cfg_n(j), c0 = cfg_n(j);
        cd.weight_decay = 0.25f;
        qat_param_seg segs[2] = {{0, 6, 1}, {6, N - 6, 0}}, all = {0, N, 1};
        qat_optim *od = make(&cd, N, segs, 2), *o0 = make(&c0, N, &all, 1);
        float pd[N], p0[N], g[N];
        for (int i = 0; i < N; i++)
            pd[i] = p0[i] = 1.0f + 0.1f * (float)i;
        for (int t = 0; t < 3; t++) {
            grads_at(g, N, t);
            qat_optim_step(od, pd, g, NULL, 0.05f);
            qat_optim_step(o0, p0, g, NULL, 0.05f);
        }
        cr_expect(memcmp(pd + 6, p0 + 6, (N - 6) * sizeof(float)) == 0,
                  "%s: decay = 0 segment changed by weight_decay", qat_optim_kind_name(cd.kind));
        for (int i = 0; i < 6; i++)
            cr_expect(pd[i] != p0[i], "%s: decay segment p[%d] ignored weight_decay",
                      qat_optim_kind_name(cd.kind), i);
        qat_optim_destroy(od);
        qat_optim_destroy(o0);
    }
}

/* ---- masks ------------------------------------------------------------------- */

static int is_pos_zero(float x)
{
    uint32_t b;
    memcpy(&b, &x, sizeof b);
    return b == 0;
}

Test(mask, pruned_entries_and_state_stay_zero_for_every_optimizer)
{
    enum { N = 11 };
    const float mask[N] = {1, 0, 1, 0, 1, 1, 1, 0, 1, 1, 1};
    for (int j = 0; j < NCFG; j++) {
        qat_optim_config c = cfg_n(j);
        c.weight_decay = 0.1f;
        const char *name = qat_optim_kind_name(c.kind);
        qat_param_seg segs[2] = {{0, 5, 1}, {5, N - 5, 0}};
        qat_optim *om = make(&c, N, segs, 2), *ref = make(&c, N, segs, 2);
        float pm[N], pr[N], g[N], gr[N];
        for (int i = 0; i < N; i++)
            pm[i] = pr[i] = 0.5f - 0.2f * (float)i; /* masked entries start nonzero */
        for (int t = 0; t < 4; t++) {
            grads_at(g, N, t);
            memcpy(gr, g, sizeof g);
            g[1] = NAN; /* ignored where masked */
            g[3] = INFINITY;
            qat_optim_step(om, pm, g, mask, 0.1f);
            qat_optim_step(ref, pr, gr, NULL, 0.1f);
            size_t cnt;
            const float *s = qat_optim_state(om, &cnt);
            for (int i = 0; i < N; i++) {
                if (mask[i] != 0.0f) {
                    cr_expect(pm[i] == pr[i], "%s: mask disturbed kept p[%d]", name, i);
                    continue;
                }
                cr_expect(is_pos_zero(pm[i]), "%s step %d: pruned p[%d] = %g", name, t, i,
                          (double)pm[i]);
                for (size_t k = 0; k < cnt / N; k++)
                    cr_expect(is_pos_zero(s[k * N + (size_t)i]),
                              "%s step %d: state %zu of pruned %d = %g", name, t, k, i,
                              (double)s[k * N + (size_t)i]);
            }
        }
        qat_optim_destroy(om);
        qat_optim_destroy(ref);
    }
}

Test(mask, unmasked_entry_restarts_from_zero_state)
{
    /* After masked steps, entry 1 (p = 0, state = 0) is released with g = 2
     * at step 4, lr 0.1, no decay on it:
     *   sgd:      p = -0.1 * 2 = -0.2
     *   momentum: v = 2, p = -0.2
     *   nesterov: v = 2, p = -0.1 (2 + 0.5 * 2) = -0.3
     *   adam(w):  m = 0.5 * 2 = 1, v = 0.25 * 4 = 1; mhat = 1/(1 - 0.5^4) = 1.066666667,
     *             vhat = 1/(1 - 0.75^4) = 1.462857143, sqrt 1.209486314;
     *             p = -0.1066666667 / 1.459486314 = -0.07308507498
     *   rmsprop:  s = 0.25 * 4 = 1, den 1.25, p = -0.2 / 1.25 = -0.16
     *   rmsprop+momentum: b = 2 / 1.25 = 1.6, p = -0.16 */
    const double want_p[NCFG] = {-0.2, -0.2, -0.3, -0.07308507498, -0.07308507498, -0.16, -0.16};
    const double want_s[NCFG][2] = {{0, 0}, {2, 0}, {2, 0}, {1, 1}, {1, 1}, {1, 0}, {1, 1.6}};
    enum { N = 3 };
    const float mask[N] = {1, 0, 1};
    for (int j = 0; j < NCFG; j++) {
        qat_optim_config c = cfg_n(j);
        c.weight_decay = 0.5f;
        const char *name = qat_optim_kind_name(c.kind);
        qat_param_seg segs[2] = {{0, 1, 1}, {1, 2, 0}};
        qat_optim *o = make(&c, N, segs, 2);
        float p[N] = {1.0f, 1.0f, 1.0f}, g[N] = {0.5f, 3.0f, -1.0f};
        for (int t = 0; t < 3; t++)
            qat_optim_step(o, p, g, mask, 0.1f);
        cr_assert(is_pos_zero(p[1]), "%s: pruned p = %g", name, (double)p[1]);
        g[1] = 2.0f;
        qat_optim_step(o, p, g, NULL, 0.1f);
        near(p[1], want_p[j], name, 4, 1);
        size_t cnt;
        const float *s = qat_optim_state(o, &cnt);
        for (size_t k = 0; k < cnt / N; k++)
            near(s[k * N + 1], want_s[j][k], name, 4, (int)k);
        qat_optim_destroy(o);
    }
}

/* ---- checkpoint round trip --------------------------------------------------- */

Test(state, restore_continues_bit_identically)
{
    enum { N = 37 }; /* odd, so vector loops run their tails */
    const size_t want_count[NCFG] = {0, N, N, 2 * N, 2 * N, N, 2 * N};
    float mask[N];
    for (int i = 0; i < N; i++)
        mask[i] = i % 5 == 2 ? 0.0f : 1.0f;
    qat_param_seg segs[2] = {{0, 20, 1}, {20, N - 20, 0}};
    for (int j = 0; j < NCFG; j++) {
        qat_optim_config c = cfg_n(j);
        c.weight_decay = 0.01f;
        const char *name = qat_optim_kind_name(c.kind);
        qat_optim *a = make(&c, N, segs, 2);
        float pa[N], g[N];
        qat_rng r;
        qat_rng_seed(&r, 5, (uint64_t)j);
        for (int i = 0; i < N; i++)
            pa[i] = qat_rng_normal(&r);
        for (int t = 0; t < 4; t++) {
            grads_at(g, N, t);
            qat_optim_step(a, pa, g, mask, 0.01f);
        }
        /* Save: params, state, steps. */
        size_t cnt;
        const float *sa = qat_optim_state(a, &cnt);
        cr_assert_eq(cnt, want_count[j], "%s: state count %zu", name, cnt);
        float saved[2 * N], pb[N], pc[N];
        memcpy(saved, sa, cnt * sizeof(float));
        memcpy(pb, pa, sizeof pa);
        memcpy(pc, pa, sizeof pa);
        /* Restore into b; `fresh` is a new optimizer left unrestored. */
        qat_optim *b = make(&c, N, segs, 2), *fresh = make(&c, N, segs, 2);
        size_t cntb;
        memcpy(qat_optim_state(b, &cntb), saved, cnt * sizeof(float));
        cr_assert_eq(cntb, cnt);
        qat_optim_set_steps(b, qat_optim_steps(a));
        cr_expect_eq(qat_optim_steps(b), 4);
        for (int t = 4; t < 9; t++) {
            grads_at(g, N, t);
            qat_optim_step(a, pa, g, mask, 0.01f);
            qat_optim_step(b, pb, g, mask, 0.01f);
            qat_optim_step(fresh, pc, g, mask, 0.01f);
        }
        cr_expect(memcmp(pa, pb, sizeof pa) == 0, "%s: restored params diverged", name);
        sa = qat_optim_state(a, &cnt);
        cr_expect(memcmp(sa, qat_optim_state(b, &cntb), cnt * sizeof(float)) == 0,
                  "%s: restored state diverged", name);
        /* Only SGD is stateless; elsewhere skipping the restore must show. */
        if (cnt)
            cr_expect(memcmp(pa, pc, sizeof pa) != 0, "%s: state had no effect", name);
        qat_optim_destroy(a);
        qat_optim_destroy(b);
        qat_optim_destroy(fresh);
    }
}

Test(state, adam_needs_the_step_counter)
{
    /* Same state but steps left at 0: bias correction restarts and the
     * trajectory differs, so the counter really is part of the checkpoint. */
    enum { N = 5 };
    qat_optim_config c = cfg(QAT_OPT_ADAM);
    qat_param_seg seg = {0, N, 1};
    qat_optim *a = make(&c, N, &seg, 1), *b = make(&c, N, &seg, 1);
    float pa[N] = {1, 2, 3, 4, 5}, g[N];
    for (int t = 0; t < 3; t++) {
        grads_at(g, N, t);
        qat_optim_step(a, pa, g, NULL, 0.1f);
    }
    float pb[N];
    memcpy(pb, pa, sizeof pa);
    size_t cnt, cntb;
    const float *sa = qat_optim_state(a, &cnt);
    memcpy(qat_optim_state(b, &cntb), sa, cnt * sizeof(float));
    grads_at(g, N, 3);
    qat_optim_step(a, pa, g, NULL, 0.1f);
    qat_optim_step(b, pb, g, NULL, 0.1f);
    cr_expect(memcmp(pa, pb, sizeof pa) != 0);
    qat_optim_destroy(a);
    qat_optim_destroy(b);
}

/* ---- gradient clipping ------------------------------------------------------- */

Test(clip, scales_to_max_norm)
{
    /* [1, -2, 2, 4, 12]: 1 + 4 + 4 + 16 + 144 = 169, norm 13. n = 5 runs the
     * tail of the 4-way sum. Clipped to 6.5 every entry halves. */
    float g[5] = {1, -2, 2, 4, 12};
    cr_expect_eq(qat_clip_grad_norm(g, 5, 6.5), 13.0);
    const float want[5] = {0.5f, -1.0f, 1.0f, 2.0f, 6.0f};
    for (int i = 0; i < 5; i++)
        near(g[i], want[i], "clip", 1, i);
    /* Now norm 6.5 <= 6.5: untouched, and the norm is still reported. */
    cr_expect_eq(qat_clip_grad_norm(g, 5, 6.5), 6.5);
    for (int i = 0; i < 5; i++)
        cr_expect_eq(g[i], want[i]);
    /* max_norm <= 0 disables clipping. */
    float h[2] = {3, 4};
    cr_expect_eq(qat_clip_grad_norm(h, 2, 0.0), 5.0);
    cr_expect_eq(h[0], 3.0f);
    cr_expect_eq(h[1], 4.0f);
    /* [3, 4] to norm 1: [0.6, 0.8]. */
    cr_expect_eq(qat_clip_grad_norm(h, 2, 1.0), 5.0);
    near(h[0], 0.6, "clip", 2, 0);
    near(h[1], 0.8, "clip", 2, 1);
}

Test(clip, norm_is_accumulated_in_double)
{
    /* 1 followed by 4096 entries of 1e-4: summed in float, each square
     * (1e-8) is below half an ulp of 1 and vanishes, leaving norm 1; in double
     * the norm is sqrt(1 + 4096e-8) = 1.0000205. */
    enum { N = 4097 };
    static float g[N];
    g[0] = 1.0f;
    for (int i = 1; i < N; i++)
        g[i] = 1e-4f;
    double small = (double)1e-4f * (double)1e-4f;
    double want = sqrt(1.0 + 4096.0 * small);
    cr_expect(fabs(qat_clip_grad_norm(g, N, 0.0) - want) < 1e-12);
}

/* ---- names, defaults, validation --------------------------------------------- */

Test(config, names_and_defaults)
{
    const char *names[] = {"sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop"};
    cr_expect_eq(qat_enum_count(qat_optim_kind_names), 6);
    for (int k = 0; k < 6; k++) {
        cr_expect_eq(qat_enum_parse(qat_optim_kind_names, names[k]), k);
        cr_expect_str_eq(qat_optim_kind_name((qat_optim_kind)k), names[k]);
    }
    cr_expect_eq(qat_enum_parse(qat_optim_kind_names, "adamax"), -1);
    cr_expect_eq(qat_enum_parse(qat_optim_kind_names, ""), -1);
    cr_expect_eq(qat_enum_parse(qat_optim_kind_names, NULL), -1);
    cr_expect_str_eq(qat_optim_kind_name((qat_optim_kind)6), "unknown");
    qat_optim_config c;
    qat_optim_config_defaults(&c, QAT_OPT_ADAMW);
    cr_expect_eq(c.kind, QAT_OPT_ADAMW);
    cr_expect_eq(c.momentum, 0.9f);
    cr_expect_eq(c.beta1, 0.9f);
    cr_expect_eq(c.beta2, 0.999f);
    cr_expect_eq(c.alpha, 0.99f);
    cr_expect_eq(c.eps, 1e-8f);
    cr_expect_eq(c.weight_decay, 0.0f);
}

static void expect_rejected(const qat_optim_config *c, size_t n, const qat_param_seg *segs,
                            int nsegs, const char *needle)
{
    qat_optim *o = (qat_optim *)&o; /* create must reset it */
    qat_error e;
    qat_error_clear(&e);
    cr_expect_eq(qat_optim_create(c, n, segs, nsegs, &o, &e), QAT_EINVAL, "accepted; wanted '%s'",
                 needle);
    cr_expect_null(o);
    cr_expect(strstr(e.msg, needle) != NULL, "message '%s' lacks '%s'", e.msg, needle);
}

Test(config, bad_hyperparameters_name_the_field)
{
    qat_param_seg seg = {0, 4, 1};
    qat_optim_config c;

    c = cfg(QAT_OPT_ADAM), c.eps = 0.0f;
    expect_rejected(&c, 4, &seg, 1, "eps");
    c = cfg(QAT_OPT_RMSPROP), c.eps = -1e-8f;
    expect_rejected(&c, 4, &seg, 1, "eps");
    c = cfg(QAT_OPT_ADAM), c.beta1 = 1.0f;
    expect_rejected(&c, 4, &seg, 1, "beta1");
    c = cfg(QAT_OPT_ADAMW), c.beta2 = -0.1f;
    expect_rejected(&c, 4, &seg, 1, "beta2");
    c = cfg(QAT_OPT_ADAM), c.beta2 = NAN;
    expect_rejected(&c, 4, &seg, 1, "beta2");
    c = cfg(QAT_OPT_MOMENTUM), c.momentum = 1.0f;
    expect_rejected(&c, 4, &seg, 1, "momentum");
    c = cfg(QAT_OPT_NESTEROV), c.momentum = -0.5f;
    expect_rejected(&c, 4, &seg, 1, "momentum");
    c = cfg(QAT_OPT_RMSPROP), c.momentum = 1.5f;
    expect_rejected(&c, 4, &seg, 1, "momentum");
    c = cfg(QAT_OPT_RMSPROP), c.alpha = 1.0f;
    expect_rejected(&c, 4, &seg, 1, "alpha");
    c = cfg(QAT_OPT_SGD), c.weight_decay = -0.1f;
    expect_rejected(&c, 4, &seg, 1, "weight_decay");
    c = cfg(QAT_OPT_ADAMW), c.weight_decay = INFINITY;
    expect_rejected(&c, 4, &seg, 1, "weight_decay");
    c = cfg(QAT_OPT_SGD), c.kind = (qat_optim_kind)42;
    expect_rejected(&c, 4, &seg, 1, "kind");

    /* Fields a kind does not use are not checked: SGD ignores eps and betas. */
    c = cfg(QAT_OPT_SGD), c.eps = 0.0f, c.beta1 = 7.0f, c.momentum = 3.0f;
    qat_optim *o = NULL;
    cr_expect_eq(qat_optim_create(&c, 4, &seg, 1, &o, NULL), QAT_OK);
    qat_optim_destroy(o);
}

Test(config, bad_segments_are_rejected)
{
    qat_optim_config c = cfg(QAT_OPT_MOMENTUM);
    qat_param_seg gap[2] = {{0, 3, 1}, {4, 6, 0}};
    expect_rejected(&c, 10, gap, 2, "[3, 4) are in no segment");
    qat_param_seg overlap[2] = {{0, 5, 1}, {4, 6, 0}};
    expect_rejected(&c, 10, overlap, 2, "overlaps");
    qat_param_seg dup[2] = {{0, 10, 1}, {0, 10, 1}};
    expect_rejected(&c, 10, dup, 2, "overlaps");
    qat_param_seg short_[1] = {{0, 8, 1}};
    expect_rejected(&c, 10, short_, 1, "[8, 10) are in no segment");
    qat_param_seg late[1] = {{2, 8, 1}};
    expect_rejected(&c, 10, late, 1, "[0, 2) are in no segment");
    qat_param_seg past[1] = {{0, 11, 1}};
    expect_rejected(&c, 10, past, 1, "ends past");
    qat_param_seg wrap[2] = {{0, 5, 1}, {5, SIZE_MAX, 1}};
    expect_rejected(&c, 10, wrap, 2, "ends past");
    qat_param_seg empty[2] = {{0, 10, 1}, {10, 0, 1}};
    expect_rejected(&c, 10, empty, 2, "empty");
    qat_param_seg flag[1] = {{0, 10, 2}};
    expect_rejected(&c, 10, flag, 1, "decay");
    expect_rejected(&c, 10, NULL, 0, "segments");
    expect_rejected(&c, 0, NULL, 0, "n = 0");

    /* Any order is fine as long as the tiling is exact. */
    qat_param_seg shuffled[3] = {{7, 3, 1}, {0, 2, 0}, {2, 5, 1}};
    qat_optim *o = NULL;
    cr_expect_eq(qat_optim_create(&c, 10, shuffled, 3, &o, NULL), QAT_OK);
    qat_optim_destroy(o);
}

/* A step split over a team (qat_optim_set_team) gives the single thread's
 * bits for every optimizer, with decay and no-decay runs, a mask and
 * enough parameters that the team really splits them (run lengths not a
 * multiple of any vector width). */
Test(step, team_split_is_bit_identical)
{
    enum { N = 3 * 16384 * 2 + 37 };
    qat_team *team = NULL;
    cr_assert_eq(qat_team_create(2, &team, NULL), QAT_OK);
    float *p1 = malloc(N * sizeof(float)), *p2 = malloc(N * sizeof(float));
    float *g = malloc(N * sizeof(float)), *mask = malloc(N * sizeof(float));
    cr_assert(p1 && p2 && g && mask);
    for (int j = 0; j < NCFG; j++) {
        qat_optim_config c = cfg_n(j);
        c.weight_decay = 0.01f;
        qat_param_seg segs[2] = {{0, 70001, 1}, {70001, N - 70001, 0}};
        qat_optim *one = make(&c, N, segs, 2), *two = make(&c, N, segs, 2);
        qat_optim_set_team(two, team);
        for (int i = 0; i < N; i++) {
            p1[i] = p2[i] = 0.25f - 1e-5f * (float)i;
            mask[i] = (float)(i % 7 != 3);
        }
        for (int t = 0; t < 3; t++) {
            grads_at(g, N, t);
            qat_optim_step(one, p1, g, t == 1 ? mask : NULL, 0.05f);
            qat_optim_step(two, p2, g, t == 1 ? mask : NULL, 0.05f);
        }
        size_t n1, n2;
        const float *s1 = qat_optim_state(one, &n1), *s2 = qat_optim_state(two, &n2);
        cr_expect(memcmp(p1, p2, N * sizeof(float)) == 0 && n1 == n2 &&
                      memcmp(s1, s2, n1 * sizeof(float)) == 0,
                  "%s: a 2-thread step differs from the single thread's",
                  qat_optim_kind_name(c.kind));
        qat_optim_destroy(one);
        qat_optim_destroy(two);
    }
    free(p1);
    free(p2);
    free(g);
    free(mask);
    qat_team_destroy(team);
}

#if defined(__GLIBC__)
Test(step, never_allocates)
{
    enum { N = 64 };
    for (int j = 0; j < NCFG; j++) {
        qat_optim_config c = cfg_n(j);
        qat_param_seg seg = {0, N, 1};
        qat_optim *o = make(&c, N, &seg, 1);
        float p[N] = {0}, g[N], mask[N];
        grads_at(g, N, 0);
        for (int i = 0; i < N; i++)
            mask[i] = (float)(i & 1);
        size_t before = mallinfo2().uordblks;
        for (int t = 0; t < 3; t++)
            qat_optim_step(o, p, g, t & 1 ? mask : NULL, 0.1f);
        size_t after = mallinfo2().uordblks;
        cr_expect_eq(after, before, "%s allocated in step", qat_optim_kind_name(c.kind));
        qat_optim_destroy(o);
    }
}
#endif
