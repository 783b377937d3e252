/* Sparsity schedules against their formulas, measured on real masks; global
 * vs per-layer thresholds; per-layer overrides and exclusions; channel masks. */
#include "prune_fixture.h"

#include "qat/optim.h"

/* Zhu & Gupta, written out independently of schedule.c. */
static double zhu_gupta(double si, double sf, long t0, long t1, long dt, long step)
{
    if (step < t0)
        return 0.0;
    if (step >= t1)
        return sf;
    long u = t0 + ((step - t0) / dt) * dt;
    double x = 1.0 - (double)(u - t0) / (double)(t1 - t0);
    return sf + (si - sf) * x * x * x;
}

Test(schedule, gradual_updates_and_curve_follow_the_formula)
{
    qat_prune_schedule s = {QAT_PRUNE_GRADUAL, 10, 50, 7};
    long updates[] = {10, 17, 24, 31, 38, 45, 50};
    int k = 0;
    for (long t = 0; t <= 60; t++) {
        int want = k < 7 && updates[k] == t;
        cr_assert_eq(qat_prune_is_update(&s, t), want, "step %ld", t);
        k += want;
        double got = qat_prune_sparsity_at(&s, 0.1, 0.8, t);
        cr_assert_float_eq(got, zhu_gupta(0.1, 0.8, 10, 50, 7, t), 1e-12, "step %ld", t);
    }
    cr_assert_float_eq(qat_prune_sparsity_at(&s, 0.1, 0.8, 10), 0.1, 1e-12, "starts at initial");
    cr_assert_eq(qat_prune_sparsity_at(&s, 0.1, 0.8, 50), 0.8, "ends at target_sparsity");
    /* held between updates: steps 17..23 all show the value of step 17 */
    for (long t = 18; t < 24; t++)
        cr_assert_eq(qat_prune_sparsity_at(&s, 0.1, 0.8, t), qat_prune_sparsity_at(&s, 0.1, 0.8, 17));
}

Test(schedule, one_shot_prunes_once_at_start)
{
    qat_prune_schedule s = {QAT_PRUNE_ONE_SHOT, 20, 20, 100};
    for (long t = 0; t < 40; t++) {
        cr_assert_eq(qat_prune_is_update(&s, t), t == 20, "step %ld", t);
        cr_assert_eq(qat_prune_sparsity_at(&s, 0.3, 0.9, t), t < 20 ? 0.0 : 0.9, "step %ld", t);
    }
}

Test(schedule, resolve_epochs_into_steps_and_refuse_a_late_end)
{
    const char *sets[] = {"prune.method=magnitude", "prune.start=0.5", "prune.end=2.25"};
    qat_config *c = pf_config(pf_cnn, sets, 3);
    qat_prune_schedule s;
    qat_error e;
    cr_assert_eq(qat_prune_schedule_resolve(c, 100, 400, &s, &e), QAT_OK, "%s", e.msg);
    cr_assert(s.start == 50 && s.end == 225 && s.frequency == 100 && s.kind == QAT_PRUNE_GRADUAL);
    /* step units: the end is checked against the run's length once it is known */
    const char *steps[] = {"prune.method=magnitude", "prune.unit=step", "prune.start=5",
                           "prune.end=400"};
    qat_config *d = pf_config(pf_cnn, steps, 4);
    cr_assert_eq(qat_prune_schedule_resolve(d, 100, 400, &s, &e), QAT_EINVAL);
    cr_assert(strstr(e.msg, "t.ini") && strstr(e.msg, "[prune] end = 400 steps"), "%s", e.msg);
    /* a ramp that rounds to nothing */
    const char *tiny[] = {"prune.method=magnitude", "prune.start=1", "prune.end=1.001"};
    qat_config *f = pf_config(pf_cnn, tiny, 3);
    cr_assert_eq(qat_prune_schedule_resolve(f, 100, 400, &s, &e), QAT_EINVAL);
    cr_assert(strstr(e.msg, "both fall on optimizer step 100"), "%s", e.msg);
    free(c);
    free(d);
    free(f);
}

Test(schedule, counts_round_and_never_prune_everything)
{
    cr_assert_eq(qat_prune_count(0.5, 9), 5u);
    cr_assert_eq(qat_prune_count(0.0, 9), 0u);
    cr_assert_eq(qat_prune_count(0.99, 10), 9u, "one entry always stays");
    cr_assert_eq(qat_prune_count(0.9, 0), 0u);
    cr_assert_eq(qat_prune_count(0.123, 1000), 123u);
}

/* Runs steps 0..59 of a real schedule (SGD on random gradients between
 * updates) and checks every layer's mask against the formula at every step. */
static void run_curve(const char *schedule, int regrow)
{
    char sch[64], rg[64];
    snprintf(sch, sizeof sch, "prune.schedule=%s", schedule);
    snprintf(rg, sizeof rg, "prune.regrow=%s", regrow ? "true" : "false");
    const char *sets[] = {"prune.method=magnitude", "prune.scope=layer", "prune.unit=step",
                          "prune.start=10", "prune.end=50", "prune.frequency=7",
                          "prune.initial_sparsity=0.1", "prune.target_sparsity=0.8",
                          sch, rg, "layer.conv1.prune=false", "layer.fc2.target_sparsity=0.3"};
    qat_model *m = pf_model(pf_cnn, sets, 12);
    qat_prune_schedule s = pf_sched(m, 20); /* 4 epochs x 20 steps */
    qat_pruner *p = pf_pruner(m, &s);
    qat_optim_config oc;
    qat_optim_config_defaults(&oc, QAT_OPT_SGD);
    size_t np;
    int nsegs;
    float *params = qat_model_params(m, &np), *grads = qat_model_grads(m, &np);
    const qat_param_seg *segs = qat_model_segments(m, &nsegs);
    qat_optim *o;
    qat_error e;
    cr_assert_eq(qat_optim_create(&oc, np, segs, nsegs, &o, &e), QAT_OK, "%s", e.msg);
    float *prev = malloc(np * sizeof(float));
    memcpy(prev, qat_pruner_mask(p), np * sizeof(float));
    qat_rng r;
    qat_rng_seed(&r, 5, 0);
    int layers[] = {PF_CONV1, PF_CONV2, PF_FC1, PF_FC2};
    double targets[] = {0.0, 0.8, 0.8, 0.3}, initials[] = {0.0, 0.1, 0.1, 0.1};
    long regrown = 0;
    for (long t = 0; t < 60; t++) {
        int upd = qat_pruner_update(p, t);
        cr_assert_eq(upd, qat_prune_is_update(&s, t), "%s step %ld", schedule, t);
        for (int k = 0; k < 4; k++) {
            qat_layer *l = qat_model_layer(m, layers[k]);
            double si = initials[k] < targets[k] ? initials[k] : targets[k];
            double want = s.kind == QAT_PRUNE_ONE_SHOT ? (t < 10 ? 0 : targets[k])
                                                       : zhu_gupta(si, targets[k], 10, 50, 7, t);
            cr_assert_eq(pf_masked(m, p, layers[k]), qat_prune_count(want, l->w.numel),
                         "%s step %ld layer %s: %zu pruned, formula %.6f of %zu", schedule, t,
                         l->cfg->name, pf_masked(m, p, layers[k]), want, l->w.numel);
        }
        pf_expect_masked_zero(m, p, schedule);
        const float *mk = qat_pruner_mask(p);
        for (size_t i = 0; i < np; i++) {
            if (prev[i] == 0.0f && mk[i] != 0.0f) {
                cr_assert(regrow, "%s step %ld: parameter %zu came back without regrow",
                          schedule, t, i);
                regrown++;
            }
        }
        memcpy(prev, mk, np * sizeof(float));
        for (size_t i = 0; i < np; i++)
            grads[i] = 0.05f * qat_rng_normal(&r);
        qat_pruner_mask_grads(p, grads);
        qat_pruner_optim_step(p, o, params, grads, 1.0f);
        pf_expect_masked_zero(m, p, "after the optimizer step");
    }
    if (regrow)
        cr_assert_gt(regrown, 0, "dynamic with regrow: some pruned weight must re-enter");
    free(prev);
    qat_optim_destroy(o);
    qat_pruner_destroy(p);
    qat_model_destroy(m);
}

Test(curve, one_shot) { run_curve("one_shot", 0); }
Test(curve, gradual) { run_curve("gradual", 0); }
Test(curve, dynamic_with_regrow) { run_curve("dynamic", 1); }
Test(curve, dynamic_without_regrow_is_monotone) { run_curve("dynamic", 0); }

/* |w| of every weight of the four layers, before the update. */
static float *magnitudes(qat_model *m)
{
    size_t np;
    const float *w = qat_model_params(m, &np);
    float *a = malloc(np * sizeof(float));
    for (size_t i = 0; i < np; i++)
        a[i] = fabsf(w[i]);
    return a;
}

/* Largest pruned and smallest kept |w| of layer i (or of all when i < 0). */
static void extremes(qat_model *m, const qat_pruner *p, const float *mag, int i, float *pruned_max,
                     float *kept_min)
{
    size_t np;
    const float *base = qat_model_params(m, &np), *mk = qat_pruner_mask(p);
    *pruned_max = -1.0f;
    *kept_min = INFINITY;
    int layers[] = {PF_CONV1, PF_CONV2, PF_FC1, PF_FC2};
    for (int k = 0; k < 4; k++) {
        if (i >= 0 && layers[k] != i)
            continue;
        qat_layer *l = qat_model_layer(m, layers[k]);
        size_t off = (size_t)(l->w.data - base);
        for (size_t j = 0; j < l->w.numel; j++) {
            float a = mag[off + j];
            if (mk[off + j] == 0.0f)
                *pruned_max = fmaxf(*pruned_max, a);
            else
                *kept_min = fminf(*kept_min, a);
        }
    }
}

static qat_model *pruned_once(const char *scope, const char *extra, float **mag, qat_pruner **p)
{
    char sc[64];
    snprintf(sc, sizeof sc, "prune.scope=%s", scope);
    const char *sets[] = {"prune.method=magnitude", "prune.schedule=one_shot", "prune.unit=step",
                          "prune.start=0", "prune.target_sparsity=0.7", sc,
                          extra ? extra : "prune.regrow=false"};
    qat_model *m = pf_model(pf_cnn, sets, 7);
    qat_prune_schedule s = pf_sched(m, 10);
    *p = pf_pruner(m, &s);
    *mag = magnitudes(m);
    cr_assert(qat_pruner_update(*p, 0));
    return m;
}

Test(threshold, global_scope_uses_one_threshold_across_layers)
{
    float *mag;
    qat_pruner *p;
    qat_model *m = pruned_once("global", NULL, &mag, &p);
    float pmax, kmin;
    extremes(m, p, mag, -1, &pmax, &kmin);
    cr_assert_leq(pmax, kmin, "every pruned |w| (max %g) below every kept |w| (min %g)", pmax,
                  kmin);
    size_t z = 0, n = 0;
    int layers[] = {PF_CONV1, PF_CONV2, PF_FC1, PF_FC2};
    double sp[4];
    for (int k = 0; k < 4; k++) {
        size_t nk = qat_model_layer(m, layers[k])->w.numel, zk = pf_masked(m, p, layers[k]);
        sp[k] = (double)zk / (double)nk;
        z += zk;
        n += nk;
    }
    cr_assert_eq(z, qat_prune_count(0.7, n), "the global count");
    /* wide layers (small init bound 1/sqrt(fan_in)) lose more than conv1 */
    cr_assert_lt(sp[0], sp[2], "conv1 %.3f vs fc1 %.3f", sp[0], sp[2]);
    cr_assert_gt(fabs(sp[0] - 0.7), 0.05, "per-layer shares differ from the global one");
    free(mag);
    qat_pruner_destroy(p);
    qat_model_destroy(m);
}

Test(threshold, layer_scope_prunes_each_layer_to_its_share)
{
    float *mag;
    qat_pruner *p;
    qat_model *m = pruned_once("layer", NULL, &mag, &p);
    int layers[] = {PF_CONV1, PF_CONV2, PF_FC1, PF_FC2};
    for (int k = 0; k < 4; k++) {
        qat_layer *l = qat_model_layer(m, layers[k]);
        cr_assert_eq(pf_masked(m, p, layers[k]), qat_prune_count(0.7, l->w.numel), "%s",
                     l->cfg->name);
        float pmax, kmin;
        extremes(m, p, mag, layers[k], &pmax, &kmin);
        cr_assert_leq(pmax, kmin, "%s: its own threshold", l->cfg->name);
    }
    /* ...but not one threshold: conv1's kept weights are not all above fc1's pruned */
    float pmax, kmin;
    extremes(m, p, mag, -1, &pmax, &kmin);
    cr_assert_gt(pmax, kmin, "per-layer thresholds differ between layers");
    free(mag);
    qat_pruner_destroy(p);
    qat_model_destroy(m);
}

Test(threshold, a_layer_with_its_own_target_ranks_alone_under_global_scope)
{
    float *mag;
    qat_pruner *p;
    qat_model *m = pruned_once("global", "layer.fc2.target_sparsity=0.2", &mag, &p);
    qat_layer *fc2 = qat_model_layer(m, PF_FC2);
    cr_assert_eq(pf_masked(m, p, PF_FC2), qat_prune_count(0.2, fc2->w.numel));
    size_t n = 0, z = 0;
    int rest[] = {PF_CONV1, PF_CONV2, PF_FC1};
    for (int k = 0; k < 3; k++) {
        n += qat_model_layer(m, rest[k])->w.numel;
        z += pf_masked(m, p, rest[k]);
    }
    cr_assert_eq(z, qat_prune_count(0.7, n), "the others share the global threshold");
    free(mag);
    qat_pruner_destroy(p);
    qat_model_destroy(m);
}

Test(threshold, excluded_layers_stay_dense)
{
    float *mag;
    qat_pruner *p;
    qat_model *m = pruned_once("global", "layer.conv1.prune=false", &mag, &p);
    cr_assert_eq(pf_masked(m, p, PF_CONV1), 0u, "prune = false keeps the first layer dense");
    cr_assert_gt(pf_masked(m, p, PF_CONV2), 0u);
    free(mag);
    qat_pruner_destroy(p);
    qat_model_destroy(m);
}

static double row_norm(const float *w, size_t n, int l2)
{
    double s = 0;
    for (size_t k = 0; k < n; k++)
        s += l2 ? (double)w[k] * w[k] : fabs((double)w[k]);
    return l2 ? sqrt(s) : s;
}

/* Channels of layer i the masks cut, checking the whole structure: the row,
 * bias, gamma, beta, and the next layer's inputs j with j % C == c. */
static int check_channels(qat_model *m, const qat_pruner *p, const float *snap, int i, int next,
                          int l2, int expect_cut)
{
    size_t np;
    const float *base = qat_model_params(m, &np), *mk = qat_pruner_mask(p);
    qat_layer *l = qat_model_layer(m, i), *nx = qat_model_layer(m, next);
    size_t off = (size_t)(l->w.data - base), nxoff = (size_t)(nx->w.data - base);
    int C = l->out_c, cut = 0;
    double cut_max = -1, kept_min = INFINITY;
    for (int c = 0; c < C; c++) {
        const float *row = mk + off + (size_t)c * l->fan_in;
        /* the bias says: the row may also lose inputs to the layer before */
        int gone = mk[(size_t)(l->b.data - base) + c] == 0.0f;
        size_t zeros = 0;
        for (size_t k = 0; k < l->fan_in; k++)
            zeros += row[k] == 0.0f;
        if (gone) {
            cr_assert_eq(zeros, l->fan_in, "%s channel %d: the whole row", l->cfg->name, c);
            if (l->gamma.data) {
                cr_assert_eq(mk[(size_t)(l->gamma.data - base) + c], 0.0f, "gamma");
                cr_assert_eq(mk[(size_t)(l->beta.data - base) + c], 0.0f, "beta");
            }
            for (int o = 0; o < nx->out_c; o++)
                for (size_t j = (size_t)c; j < nx->fan_in; j += (size_t)C)
                    cr_assert_eq(mk[nxoff + (size_t)o * nx->fan_in + j], 0.0f,
                                 "%s input %zu reads pruned channel %d", nx->cfg->name, j, c);
            cut++;
        } else {
            cr_assert_lt(zeros, l->fan_in, "%s channel %d is kept", l->cfg->name, c);
        }
        double nrm = row_norm(snap + off + (size_t)c * l->fan_in, l->fan_in, l2);
        if (gone)
            cut_max = fmax(cut_max, nrm);
        else
            kept_min = fmin(kept_min, nrm);
    }
    cr_assert_eq(cut, expect_cut, "%s: %d channels cut", l->cfg->name, cut);
    cr_assert_leq(cut_max, kept_min, "%s: the smallest norms go", l->cfg->name);
    return cut;
}

static void channel_structure(const char *norm)
{
    char nm[64];
    snprintf(nm, sizeof nm, "prune.channel_norm=%s", norm);
    const char *sets[] = {"prune.method=channel", "prune.schedule=one_shot", "prune.unit=step",
                          "prune.start=0", "prune.target_sparsity=0.5", "prune.scope=layer", nm};
    qat_model *m = pf_model(pf_cnn, sets, 7);
    qat_prune_schedule s = pf_sched(m, 10);
    qat_pruner *p = pf_pruner(m, &s);
    float *snap = magnitudes(m); /* norms of |w| are norms of w */
    cr_assert(qat_pruner_update(p, 0));
    int l2 = strcmp(norm, "l2") == 0;
    check_channels(m, p, snap, PF_CONV1, PF_CONV2, l2, 3);
    check_channels(m, p, snap, PF_CONV2, PF_FC1, l2, 4);
    check_channels(m, p, snap, PF_FC1, PF_FC2, l2, 6);
    /* fc2's outputs are the classes: none cut (its inputs from fc1 are) */
    size_t np;
    const float *base = qat_model_params(m, &np), *mk = qat_pruner_mask(p);
    qat_layer *fc2 = qat_model_layer(m, PF_FC2);
    for (int c = 0; c < fc2->out_c; c++)
        cr_assert_eq(mk[(size_t)(fc2->b.data - base) + c], 1.0f);
    pf_expect_masked_zero(m, p, "channel");
    free(snap);
    qat_pruner_destroy(p);
    qat_model_destroy(m);
}

Test(channel, masks_rows_bias_bn_and_next_inputs_l1) { channel_structure("l1"); }
Test(channel, masks_rows_bias_bn_and_next_inputs_l2) { channel_structure("l2"); }

Test(channel, global_scope_keeps_a_channel_in_every_layer)
{
    const char *sets[] = {"prune.method=channel", "prune.schedule=one_shot", "prune.unit=step",
                          "prune.start=0", "prune.target_sparsity=0.95", "prune.scope=global"};
    qat_model *m = pf_model(pf_cnn, sets, 6);
    qat_prune_schedule s = pf_sched(m, 10);
    qat_pruner *p = pf_pruner(m, &s);
    qat_pruner_update(p, 0);
    int layers[] = {PF_CONV1, PF_CONV2, PF_FC1};
    int total = 0, cut = 0;
    for (int k = 0; k < 3; k++) {
        qat_layer *l = qat_model_layer(m, layers[k]);
        size_t rows_cut = pf_masked(m, p, layers[k]) / l->fan_in;
        total += l->out_c;
        /* masked inputs from the previous layer also zero entries: count rows */
        size_t np;
        const float *base = qat_model_params(m, &np), *mk = qat_pruner_mask(p);
        int kept = 0;
        for (int c = 0; c < l->out_c; c++)
            kept += mk[(size_t)(l->b.data - base) + c] != 0.0f;
        cr_assert_geq(kept, 1, "%s keeps a channel", l->cfg->name);
        cut += l->out_c - kept;
        (void)rows_cut;
    }
    cr_assert_eq(cut, total - 3, "0.95 of 26 channels is 25, but each layer keeps one");
    qat_pruner_destroy(p);
    qat_model_destroy(m);
}

/* --resume and qat-export read the config back from the checkpoint: the
 * pruning settings must survive the trip, defaults staying defaults. */
Test(config, prune_and_regularize_round_trip)
{
    const char *sets[] = {"prune.method=channel", "prune.schedule=dynamic", "prune.scope=layer",
                          "prune.target_sparsity=0.375", "prune.initial_sparsity=0.125",
                          "prune.unit=step", "prune.start=7", "prune.end=99",
                          "prune.frequency=3", "prune.regrow=false", "prune.channel_norm=l2",
                          "regularize.l1=1.5e-5", "regularize.l2=3e-4", "regularize.biases=true",
                          "layer.conv1.prune=false", "layer.fc1.target_sparsity=0.25",
                          "layer.conv2.l2=0.01"};
    qat_config *a = pf_config(pf_cnn, sets, 17), *b = malloc(sizeof *b);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    qat_config_write(f, a);
    fclose(f);
    qat_error e;
    cr_assert_eq(qat_config_parse(buf, len, "t.ini", NULL, 0, b, &e), QAT_OK, "%s\n%s", e.msg, buf);
    cr_assert_eq(memcmp(&a->prune, &b->prune, sizeof a->prune), 0, "%s", buf);
    cr_assert_eq(memcmp(&a->regularize, &b->regularize, sizeof a->regularize), 0);
    for (int i = 0; i < a->nlayers; i++) {
        const qat_layer_cfg *x = &a->layers[i], *y = &b->layers[i];
        cr_assert(x->prune == y->prune && x->target_sparsity == y->target_sparsity &&
                      x->l1 == y->l1 && x->l2 == y->l2,
                  "layer %s", x->name);
        float t1, t2;
        cr_assert_eq(qat_config_prune_layer(a, i, &t1), qat_config_prune_layer(b, i, &t2));
        cr_assert_eq(t1, t2);
    }
    cr_assert_eq(b->layers[PF_CONV1].prune, 0);
    cr_assert_eq(b->layers[PF_CONV2].prune, -1, "an unset override stays unset");
    cr_assert_eq(b->layers[PF_FC1].target_sparsity, 0.25f);
    cr_assert_eq(b->layers[PF_CONV2].target_sparsity, -1.0f);
    cr_assert_eq(b->layers[PF_CONV2].l2, 0.01f);
    cr_assert_eq(b->layers[PF_FC1].l2, 3e-4f, "inherited");
    cr_assert(!qat_config_prune_layer(b, PF_FC2, NULL), "channel: the last layer is left out");
    free(buf);
    free(a);
    free(b);
}
