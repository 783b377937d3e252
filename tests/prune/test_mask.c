/* Masks through forward (folded weights keep the zeros), backward (pruned
 * gradients masked before clipping) and every optimizer (pruned weights and
 * their state stay exact zeros); regrow trains them on a dense copy. */
#include "prune_fixture.h"

#include "qat/ops.h"
#include "qat/optim.h"

#define B 6

typedef struct rig {
    qat_model *m;
    qat_pruner *p;
    qat_tape *t;
    uint8_t img[B * 28 * 28], lab[B];
} rig;

static void rig_make(rig *r, const char *const *sets, int nsets)
{
    r->m = pf_model(pf_cnn, sets, nsets);
    qat_prune_schedule s = pf_sched(r->m, 10);
    r->p = pf_pruner(r->m, &s);
    qat_error e;
    cr_assert_eq(qat_tape_create(NULL, &r->t, &e), QAT_OK);
    qat_rng g;
    qat_rng_seed(&g, 11, 0);
    for (size_t i = 0; i < sizeof r->img; i++)
        r->img[i] = (uint8_t)qat_rng_below(&g, 256);
    for (int i = 0; i < B; i++)
        r->lab[i] = (uint8_t)qat_rng_below(&g, 10);
}

static void rig_free(rig *r)
{
    qat_tape_destroy(r->t);
    qat_pruner_destroy(r->p);
    qat_model_destroy(r->m);
}

/* Forward + backward of the cross-entropy in training mode. */
static qat_tensor *fwd_bwd(rig *r)
{
    size_t np;
    float *g = qat_model_grads(r->m, &np);
    memset(g, 0, np * sizeof *g);
    qat_tape_reset(r->t);
    qat_tape_set_training(r->t, 1);
    qat_tape_set_grad_enabled(r->t, 1);
    qat_tensor *y = qat_model_forward(r->m, r->t, r->img, B);
    qat_tensor *l = qat_op_softmax_cross_entropy(r->t, y, r->lab);
    qat_tape_backward(r->t, l);
    return y;
}

static const char *magnitude_once[] = {"prune.method=magnitude", "prune.schedule=one_shot",
                                       "prune.unit=step", "prune.start=0",
                                       "prune.target_sparsity=0.6", "prune.scope=layer"};

Test(mask, forward_sees_the_pruned_weights_and_folding_keeps_them_zero)
{
    rig r;
    rig_make(&r, magnitude_once, 6);
    size_t np;
    float *w = qat_model_params(r.m, &np);
    float *before = malloc(np * sizeof(float));
    memcpy(before, w, np * sizeof(float));
    cr_assert(qat_pruner_update(r.p, 0));
    const float *mk = qat_pruner_mask(r.p);
    size_t cut = 0;
    for (size_t i = 0; i < np; i++) {
        if (mk[i] == 0.0f)
            cut++;
        else
            cr_assert_eq(w[i], before[i], "kept parameter %zu untouched", i);
    }
    cr_assert_gt(cut, np / 3);
    pf_expect_masked_zero(r.m, r.p, "after the update");
    /* the quantized forward folds BN and the input standardisation into
     * conv1: the effective weights it quantizes keep every pruned zero */
    fwd_bwd(&r); /* observers see data */
    qat_error e;
    cr_assert_eq(qat_model_refresh_qparams(r.m, &e), QAT_OK, "%s", e.msg);
    int layers[] = {PF_CONV1, PF_CONV2, PF_FC1, PF_FC2};
    for (int k = 0; k < 4; k++) {
        qat_layer *l = qat_model_layer(r.m, layers[k]);
        size_t off = (size_t)(l->w.data - w), z = 0;
        for (size_t j = 0; j < l->w.numel; j++)
            if (mk[off + j] == 0.0f) {
                cr_assert_eq(l->w_eff[j], 0.0f, "%s: folded weight %zu", l->cfg->name, j);
                z++;
            }
        cr_assert_gt(z, 0u, "%s is pruned", l->cfg->name);
    }
    cr_assert(qat_model_layer(r.m, PF_CONV1)->gamma.data, "conv1 has BN to fold");
    free(before);
    rig_free(&r);
}

Test(mask, pruned_gradients_are_zeroed_before_clipping)
{
    rig r;
    rig_make(&r, magnitude_once, 6);
    qat_pruner_update(r.p, 0);
    fwd_bwd(&r);
    size_t np;
    float *g = qat_model_grads(r.m, &np);
    const float *mk = qat_pruner_mask(r.p);
    float *raw = malloc(np * sizeof(float));
    memcpy(raw, g, np * sizeof(float));
    size_t live = 0;
    double kept_sq = 0;
    for (size_t i = 0; i < np; i++) {
        live += mk[i] == 0.0f && raw[i] != 0.0f;
        if (mk[i] != 0.0f)
            kept_sq += (double)raw[i] * raw[i];
    }
    cr_assert_gt(live, 100u, "a zero weight still has a gradient: masking must remove it");
    qat_pruner_mask_grads(r.p, g);
    for (size_t i = 0; i < np; i++)
        cr_assert_eq(g[i], mk[i] == 0.0f ? 0.0f : raw[i], "gradient %zu", i);
    double norm = qat_clip_grad_norm(g, np, 0);
    cr_assert_float_eq(norm, sqrt(kept_sq), 1e-6 * sqrt(kept_sq),
                       "the clipping norm counts kept gradients only");
    free(raw);
    rig_free(&r);
}

static void optimizer_case(qat_optim_kind kind, float momentum)
{
    rig r;
    rig_make(&r, magnitude_once, 6);
    qat_pruner_update(r.p, 0);
    qat_optim_config oc;
    qat_optim_config_defaults(&oc, kind);
    oc.weight_decay = 0.01f;
    oc.momentum = momentum;
    size_t np;
    int nsegs;
    float *w = qat_model_params(r.m, &np), *g = qat_model_grads(r.m, &np);
    const qat_param_seg *segs = qat_model_segments(r.m, &nsegs);
    qat_optim *o, *ctl;
    qat_error e;
    cr_assert_eq(qat_optim_create(&oc, np, segs, nsegs, &o, &e), QAT_OK, "%s", e.msg);
    cr_assert_eq(qat_optim_create(&oc, np, segs, nsegs, &ctl, &e), QAT_OK, "%s", e.msg);
    const float *mk = qat_pruner_mask(r.p);
    float *start = malloc(np * sizeof(float)), *copy = malloc(np * sizeof(float));
    memcpy(start, w, np * sizeof(float));
    const char *name = qat_optim_kind_name(kind);
    for (int step = 0; step < 4; step++) {
        fwd_bwd(&r);
        if (step == 0) {
            /* control: the same step without masks revives pruned weights */
            memcpy(copy, w, np * sizeof(float));
            qat_optim_step(ctl, copy, g, NULL, 0.01f);
            size_t revived = 0;
            for (size_t i = 0; i < np; i++)
                revived += mk[i] == 0.0f && copy[i] != 0.0f;
            cr_assert_gt(revived, 100u, "%s: an unmasked step would revive pruned weights",
                         name);
        }
        qat_pruner_mask_grads(r.p, g);
        qat_pruner_optim_step(r.p, o, w, g, 0.01f);
        pf_expect_masked_zero(r.m, r.p, name);
        size_t ns;
        const float *st = qat_optim_state(o, &ns);
        for (size_t k = 0; k < ns; k++)
            if (mk[k % np] == 0.0f)
                cr_assert_eq(st[k], 0.0f, "%s step %d: state %zu of pruned %zu", name, step,
                             k / np, k % np);
    }
    size_t moved = 0, kept = 0;
    for (size_t i = 0; i < np; i++)
        if (mk[i] != 0.0f) {
            kept++;
            moved += w[i] != start[i];
        }
    cr_assert_gt(moved, kept / 2, "%s: kept weights train", name);
    free(start);
    free(copy);
    qat_optim_destroy(o);
    qat_optim_destroy(ctl);
    rig_free(&r);
}

Test(optimizers, sgd) { optimizer_case(QAT_OPT_SGD, 0.9f); }
Test(optimizers, momentum) { optimizer_case(QAT_OPT_MOMENTUM, 0.9f); }
Test(optimizers, nesterov) { optimizer_case(QAT_OPT_NESTEROV, 0.9f); }
Test(optimizers, adam) { optimizer_case(QAT_OPT_ADAM, 0.9f); }
Test(optimizers, adamw) { optimizer_case(QAT_OPT_ADAMW, 0.9f); }
Test(optimizers, rmsprop) { optimizer_case(QAT_OPT_RMSPROP, 0.0f); }
Test(optimizers, rmsprop_with_momentum) { optimizer_case(QAT_OPT_RMSPROP, 0.5f); }

Test(mask, regrow_trains_pruned_weights_on_a_dense_copy_and_lets_them_back)
{
    const char *sets[] = {"prune.method=magnitude", "prune.schedule=dynamic", "prune.regrow=true",
                          "prune.unit=step", "prune.start=0", "prune.end=20",
                          "prune.frequency=5", "prune.initial_sparsity=0.5",
                          "prune.target_sparsity=0.5", "prune.scope=layer",
                          "quant.enabled=false"};
    rig r;
    rig_make(&r, sets, 11);
    qat_optim_config oc;
    qat_optim_config_defaults(&oc, QAT_OPT_SGD);
    size_t np;
    int nsegs;
    float *w = qat_model_params(r.m, &np), *g = qat_model_grads(r.m, &np);
    const qat_param_seg *segs = qat_model_segments(r.m, &nsegs);
    qat_optim *o;
    qat_error e;
    cr_assert_eq(qat_optim_create(&oc, np, segs, nsegs, &o, &e), QAT_OK, "%s", e.msg);
    float *prev = malloc(np * sizeof(float));
    size_t back = 0;
    for (long t = 0; t < 16; t++) {
        memcpy(prev, qat_pruner_mask(r.p), np * sizeof(float));
        int upd = qat_pruner_update(r.p, t);
        const float *mk = qat_pruner_mask(r.p);
        for (size_t i = 0; i < np; i++)
            if (prev[i] == 0.0f && mk[i] != 0.0f) {
                cr_assert(upd, "step %ld: masks change only at updates", t);
                cr_assert_neq(w[i], 0.0f, "a weight that re-enters brings its trained value");
                back++;
            }
        fwd_bwd(&r);
        qat_pruner_mask_grads(r.p, g); /* regrow: the dense copy needs them all */
        size_t live = 0;
        for (size_t i = 0; i < np; i++)
            live += mk[i] == 0.0f && g[i] != 0.0f;
        cr_assert_gt(live, 0u, "step %ld: pruned gradients reach the dense copy", t);
        qat_pruner_optim_step(r.p, o, w, g, 0.1f);
        pf_expect_masked_zero(r.m, r.p, "regrow, between updates");
        for (int k = 0; k < 4; k++) {
            int layers[] = {PF_CONV1, PF_CONV2, PF_FC1, PF_FC2};
            qat_layer *l = qat_model_layer(r.m, layers[k]);
            cr_assert_eq(pf_masked(r.m, r.p, layers[k]), qat_prune_count(0.5, l->w.numel));
        }
    }
    cr_assert_gt(back, 0u, "updates at steps 5, 10, 15 let grown-back weights re-enter");
    free(prev);
    qat_optim_destroy(o);
    rig_free(&r);
}

/* Pruned zeros must not drag a percentile weight observer toward 0. */
Test(observer, percentile_ranks_only_unpruned_weights)
{
    float w[200], lo, hi, scratch[200];
    for (int i = 0; i < 200; i++)
        w[i] = i < 150 ? 0.0f : (float)(i - 149) / 50.0f * (i % 2 ? 1.0f : -1.0f); /* |w| 0.02..1 */
    qat_weight_ranges(w, 1, 200, 1, QAT_OBS_PERCENTILE, 90.0f, QAT_SCHEME_SYMMETRIC, &lo, &hi,
                      scratch);
    cr_assert_lt(hi, 0.7f, "counting the zeros, the 90th percentile falls to %g", hi);
    qat_weight_ranges_pruned(w, 1, 200, 1, QAT_OBS_PERCENTILE, 90.0f, QAT_SCHEME_SYMMETRIC, &lo,
                             &hi, scratch);
    cr_assert_float_eq(hi, 0.9f, 1e-6, "90th percentile of the 50 kept |w|: %g", hi);
    cr_assert_eq(lo, -hi);
    /* minmax: the same either way */
    float a, b, c, d;
    qat_weight_ranges(w, 1, 200, 1, QAT_OBS_MINMAX, 90.0f, QAT_SCHEME_ASYMMETRIC, &a, &b, scratch);
    qat_weight_ranges_pruned(w, 1, 200, 1, QAT_OBS_MINMAX, 90.0f, QAT_SCHEME_ASYMMETRIC, &c, &d,
                             scratch);
    cr_assert(a == c && b == d);
    /* a fully pruned row (two channels: one range each) */
    float lo2[2], hi2[2];
    memset(w, 0, sizeof w);
    qat_weight_ranges_pruned(w, 2, 100, 1, QAT_OBS_PERCENTILE, 99.0f, QAT_SCHEME_SYMMETRIC, lo2,
                             hi2, scratch);
    cr_assert(lo2[0] == 0.0f && hi2[0] == 0.0f && lo2[1] == 0.0f && hi2[1] == 0.0f);
}

Test(observer, a_pruned_model_scales_weights_from_the_kept_ones)
{
    const char *sets[] = {"prune.method=magnitude", "prune.schedule=one_shot", "prune.unit=step",
                          "prune.start=0", "prune.target_sparsity=0.8", "prune.scope=layer",
                          "quant.weight_observer=percentile", "quant.percentile=99",
                          "quant.weight_granularity=per_tensor"};
    rig r;
    rig_make(&r, sets, 9);
    qat_pruner_update(r.p, 0);
    fwd_bwd(&r);
    qat_error e;
    cr_assert_eq(qat_model_refresh_qparams(r.m, &e), QAT_OK, "%s", e.msg);
    qat_layer *l = qat_model_layer(r.m, PF_FC1);
    size_t n = l->w.numel;
    float *kept = malloc(n * sizeof(float)), lo, hi;
    float *scratch = malloc(n * sizeof(float));
    size_t k = 0;
    for (size_t j = 0; j < n; j++)
        if (l->w_eff[j] != 0.0f)
            kept[k++] = l->w_eff[j];
    qat_weight_ranges(kept, 1, k, 0, QAT_OBS_PERCENTILE, 99.0f, QAT_SCHEME_SYMMETRIC, &lo, &hi,
                      scratch);
    qat_qparams q = qat_weight_qparams_from_range(lo, hi, 8, QAT_SCHEME_SYMMETRIC);
    cr_assert_eq(l->q.w_scale[0], q.scale, "fc1's scale comes from its %zu kept weights", k);
    free(kept);
    free(scratch);
    rig_free(&r);
}
