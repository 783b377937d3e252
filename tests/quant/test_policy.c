/* The quantization policy over a hand-built layer: which scales it picks,
 * when its observers move, how LSQ takes over, and its state as checkpoints
 * store it. */
#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <string.h>

#include "qat/fixedpoint.h"
#include "qat/quant.h"

/* A layer of C = 2 output channels of fan_in 3. */
typedef struct {
    qat_quant_cfg cfg;
    qat_layer_quant q;
    float w_scale[2], acc_scale[2], ema_lo[2], ema_hi[2], scales[3], grads[3];
    int32_t w_zp[2], mult[2], shift[2], lsq_zp[2];
    float lo[2], hi[2], values[6];
    qat_quant_scratch scratch;
} layer;

static void make(layer *f, int per_channel, qat_observer_kind wobs, int lsq)
{
    memset(f, 0, sizeof *f);
    f->cfg = (qat_quant_cfg){.weight_bits = 8,
                             .activation_bits = 8,
                             .weight_scheme = QAT_SCHEME_SYMMETRIC,
                             .activation_scheme = QAT_SCHEME_ASYMMETRIC,
                             .weight_granularity = per_channel ? QAT_GRAN_PER_CHANNEL
                                                               : QAT_GRAN_PER_TENSOR,
                             .weight_observer = wobs,
                             .activation_observer = QAT_OBS_EMA,
                             .ema_decay = 0.5f,
                             .percentile = 99.99f,
                             .learn_scale = lsq};
    qat_layer_quant *q = &f->q;
    int Cw = per_channel ? 2 : 1, one = 1;
    q->cfg = &f->cfg;
    q->channels = 2;
    q->wq_channels = Cw;
    q->fan_in = 3;
    q->act_count = 10.0f;
    q->relu = 1;
    q->w_scale = f->w_scale;
    q->acc_scale = f->acc_scale;
    q->w_zp = f->w_zp;
    q->multiplier = f->mult;
    q->shift = f->shift;
    if (wobs == QAT_OBS_EMA) {
        q->w_ema.lo = f->ema_lo;
        q->w_ema.hi = f->ema_hi;
    }
    if (lsq) {
        q->lsq.s_w = qat_tensor_view(f->scales, f->grads, 1, &Cw);
        q->lsq.s_a = qat_tensor_view(f->scales + Cw, f->grads + Cw, 1, &one);
        q->lsq.weight_zero_point = f->lsq_zp;
    }
    q->in = qat_input_qparams();
    f->scratch = (qat_quant_scratch){f->lo, f->hi, f->values};
    qat_quant_state_reset(q);
}

Test(policy, minmax_weight_scales_follow_the_current_weights)
{
    layer f;
    make(&f, 1, QAT_OBS_MINMAX, 0);
    const float w[6] = {1.0f, -2.0f, 0.5f, 0.25f, 0.0f, -1.27f};
    qat_quant_weight_params(&f.q, w, 1, &f.scratch);
    cr_assert_float_eq(f.q.w_scale[0], 2.0f / 127.0f, 1e-9);
    cr_assert_float_eq(f.q.w_scale[1], 1.27f / 127.0f, 1e-9);
    cr_assert(f.q.wqmin == -127 && f.q.wqmax == 127 && f.q.w_zp[0] == 0);
    cr_assert_eq(f.q.bias_limit, qat_bias_limit(3, 8));
    /* per tensor: one range over all of them */
    make(&f, 0, QAT_OBS_MINMAX, 0);
    qat_quant_weight_params(&f.q, w, 1, &f.scratch);
    cr_assert(f.q.w_scale[0] == f.q.w_scale[1] && f.q.w_scale[0] == 2.0f / 127.0f);
}

Test(policy, ema_weight_observer_moves_only_on_update_steps)
{
    layer f;
    make(&f, 1, QAT_OBS_EMA, 0);
    const float w1[6] = {1.0f, -2.0f, 0.5f, 0.25f, 0.0f, -1.0f};
    const float w2[6] = {2.0f, -4.0f, 1.0f, 0.5f, 0.0f, -2.0f};
    /* not yet initialised: the current range, and no state change */
    qat_quant_weight_params(&f.q, w1, 0, &f.scratch);
    cr_assert_float_eq(f.q.w_scale[0], 2.0f / 127.0f, 1e-9);
    cr_assert_eq(f.q.w_ema.initialized, 0);
    qat_quant_weight_params(&f.q, w1, 1, &f.scratch); /* the first update sets the range */
    cr_assert(f.q.w_ema.initialized && f.ema_lo[0] == -2.0f && f.ema_hi[0] == 1.0f);
    qat_quant_weight_params(&f.q, w2, 1, &f.scratch); /* then blends with decay 0.5 */
    cr_assert(f.ema_lo[0] == -3.0f && f.ema_hi[0] == 1.5f);
    cr_assert_float_eq(f.q.w_scale[0], 3.0f / 127.0f, 1e-9);
    /* without update (eval, frozen observers) the stored range rules */
    qat_quant_weight_params(&f.q, w1, 0, &f.scratch);
    cr_assert(f.ema_lo[0] == -3.0f);
    cr_assert_float_eq(f.q.w_scale[0], 3.0f / 127.0f, 1e-9);
}

Test(policy, lsq_starts_from_the_observers_then_owns_the_scales)
{
    layer f;
    make(&f, 1, QAT_OBS_MINMAX, 1);
    const float w[6] = {1.0f, -2.0f, 0.5f, 0.25f, 0.0f, -1.27f};
    const float y[3] = {0.0f, 1.0f, 2.55f};
    qat_quant_observe_outputs(&f.q, NULL, y, 3);
    cr_assert(f.q.act_obs.initialized && f.q.act_obs.hi == 2.55f);
    qat_quant_weight_params(&f.q, w, 1, &f.scratch);
    cr_assert_not(qat_quant_lsq_ready(&f.q));
    qat_quant_lsq_init(&f.q);
    cr_assert(qat_quant_lsq_ready(&f.q));
    cr_assert(f.scales[0] == f.q.w_scale[0] && f.scales[1] == f.q.w_scale[1]);
    cr_assert_float_eq(f.scales[2], 0.01f, 1e-7);
    cr_assert_eq(f.q.lsq.act_zero_point, -128);
    /* from now on the learned values rule and the observer rests */
    f.scales[0] = 0.5f;
    f.scales[2] = -1.0f; /* a step that overshot */
    const float y2[3] = {-5.0f, 0.0f, 9.0f};
    qat_quant_observe_outputs(&f.q, NULL, y2, 3);
    cr_assert_eq(f.q.act_obs.hi, 2.55f, "the observer no longer moves");
    qat_quant_lsq_init(&f.q);
    cr_assert_eq(f.scales[0], 0.5f, "initialised once");
    qat_quant_weight_params(&f.q, w, 1, &f.scratch);
    cr_assert_eq(f.q.w_scale[0], 0.5f);
    qat_quant_act_params(&f.q);
    cr_assert_eq(f.q.out.scale, FLT_EPSILON, "a non-positive step size is clamped");
    cr_assert_eq(f.scales[2], FLT_EPSILON, "in the parameter too");
    cr_assert(f.q.out.zero_point == -128 && f.q.act_min == -128 && f.q.act_max == 127);
}

Test(policy, multipliers_and_their_overflow)
{
    layer f;
    make(&f, 1, QAT_OBS_MINMAX, 0);
    const float w[6] = {1.0f, -2.0f, 0.5f, 0.25f, 0.0f, -1.27f};
    const float y[2] = {0.0f, 2.55f};
    qat_quant_observe_outputs(&f.q, NULL, y, 2);
    qat_quant_weight_params(&f.q, w, 0, &f.scratch);
    qat_quant_act_params(&f.q);
    cr_assert_eq(qat_quant_finish(&f.q), 0);
    for (int c = 0; c < 2; c++) {
        cr_assert_eq(f.q.acc_scale[c], f.q.in.scale * f.q.w_scale[c]);
        double M = (double)f.q.acc_scale[c] / (double)f.q.out.scale;
        double got = (double)f.q.multiplier[c] * pow(2.0, f.q.shift[c] - 31);
        cr_assert(fabs(got - M) < 1e-9 * M);
    }
    f.q.out.scale = 1e-30f; /* M beyond 2^30 */
    cr_assert_eq(qat_quant_finish(&f.q), -1);
    cr_assert(f.q.multiplier[0] == INT32_MAX && f.q.shift[0] == QAT_SHIFT_MAX);
}

/* ---- checkpointed state ------------------------------------------------------- */

Test(policy_state, layout_and_round_trip)
{
    layer f, g;
    make(&f, 1, QAT_OBS_EMA, 1);
    make(&g, 1, QAT_OBS_EMA, 1);
    size_t n = qat_quant_state_size(&f.cfg, 2);
    cr_assert_eq(n, 3 + (2 + 2) + (2 * 2 + 1));
    f.q.act_obs = (qat_observer){-1.5f, 6.0f, 1};
    f.q.lsq.initialized = 1;
    f.q.lsq.act_zero_point = -100;
    f.lsq_zp[0] = 3;
    f.lsq_zp[1] = -4;
    f.ema_lo[0] = -0.5f;
    f.ema_lo[1] = -0.25f;
    f.ema_hi[0] = 0.75f;
    f.ema_hi[1] = 0.125f;
    f.q.w_ema.initialized = 1;
    float s[12];
    qat_quant_state_save(&f.q, s);
    /* checkpoint version 1's layout: a file written before this code loads */
    const float want[12] = {-1.5f, 6.0f, 1, 1, -100, 3, -4, -0.5f, -0.25f, 0.75f, 0.125f, 1};
    cr_assert_eq(memcmp(s, want, sizeof want), 0);
    qat_error e;
    cr_assert_eq(qat_quant_state_load(&g.q, s, &e), QAT_OK, "%s", e.msg);
    cr_assert(g.q.act_obs.lo == -1.5f && g.q.act_obs.hi == 6.0f && g.q.act_obs.initialized == 1);
    cr_assert(g.q.lsq.initialized == 1 && g.q.lsq.act_zero_point == -100);
    cr_assert(g.lsq_zp[0] == 3 && g.lsq_zp[1] == -4);
    cr_assert(g.ema_lo[1] == -0.25f && g.ema_hi[0] == 0.75f && g.q.w_ema.initialized == 1);
    /* only what the config has: a plain layer stores its observer alone */
    make(&f, 0, QAT_OBS_MINMAX, 0);
    cr_assert_eq(qat_quant_state_size(&f.cfg, 1), 3);
}

static void expect_refused(size_t i, float v, const char *needle)
{
    layer f;
    make(&f, 1, QAT_OBS_EMA, 1);
    float s[12] = {0, 1, 1, 1, -100, 3, -4, 0, 0, 1, 1, 1};
    s[i] = v;
    qat_error e;
    qat_error_clear(&e);
    cr_assert_eq(qat_quant_state_load(&f.q, s, &e), QAT_EINVAL, "element %zu = %g", i, (double)v);
    cr_assert(strstr(e.msg, needle), "'%s' lacks '%s'", e.msg, needle);
}

Test(policy_state, impossible_flags_and_zero_points_are_refused)
{
    expect_refused(2, 0.5f, "activation observer's 'initialised' flag is 0.5, expected 0 or 1");
    expect_refused(3, 2.0f, "LSQ's 'initialised' flag is 2");
    expect_refused(4, -129.0f, "activation zero point is -129, expected an integer in [-128, 127]");
    expect_refused(4, 1.5f, "activation zero point is 1.5");
    expect_refused(6, -128.0f, "weight zero point 1 is -128, expected an integer in [-127, 127]");
    expect_refused(6, NAN, "weight zero point 1 is nan");
    expect_refused(11, -1.0f, "EMA weight observer's 'initialised' flag is -1");
}
