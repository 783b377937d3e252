/* Starting a run from a checkpoint ([train] init): the checkpoint's own
 * model is rebuilt from the config stored in it (so any checkpoint reads,
 * whatever this run's config says), then every conv/linear layer is copied
 * into the run's model by name, after its shapes are compared. What a run
 * carries beyond its parameters -- optimizer state, step count, RNG -- is
 * not copied: that is --resume's job. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qat/train.h"

static int is_compute(qat_layer_type type)
{
    return type == QAT_LAYER_CONV2D || type == QAT_LAYER_LINEAR;
}

static qat_layer *find_layer(qat_model *m, const char *name)
{
    for (int i = 0; i < qat_model_num_layers(m); i++) {
        qat_layer *l = qat_model_layer(m, i);
        if (is_compute(l->type) && strcmp(l->cfg->name, name) == 0)
            return l;
    }
    return NULL;
}

/* "[32, 3, 3, 1]", or "none" for an absent tensor. */
static void shape_text(const qat_tensor *t, char *buf, size_t n)
{
    if (!t->data) {
        snprintf(buf, n, "none");
        return;
    }
    size_t len = (size_t)snprintf(buf, n, "[");
    for (int d = 0; d < t->ndim && len < n; d++)
        len += (size_t)snprintf(buf + len, n - len, "%s%d", d ? ", " : "", t->shape[d]);
    if (len < n)
        snprintf(buf + len, n - len, "]");
}

static int same_shape(const qat_tensor *a, const qat_tensor *b)
{
    if (!a->data != !b->data || a->ndim != b->ndim)
        return 0;
    for (int d = 0; a->data && d < a->ndim; d++)
        if (a->shape[d] != b->shape[d])
            return 0;
    return 1;
}

/* The first tensor of dst and src that differs, described in why; 0 if all
 * match (type, weights, bias, batchnorm). */
static int mismatch(const qat_layer *dst, const qat_layer *src, char *why, size_t n)
{
    static const char *const names[4] = {"weight", "bias", "batchnorm gamma", "batchnorm beta"};
    const qat_tensor *a[4] = {&dst->w, &dst->b, &dst->gamma, &dst->beta};
    const qat_tensor *b[4] = {&src->w, &src->b, &src->gamma, &src->beta};
    if (dst->type != src->type) {
        snprintf(why, n, "a %s here, a %s in the checkpoint", qat_layer_type_name(dst->type),
                 qat_layer_type_name(src->type));
        return 1;
    }
    for (int i = 0; i < 4; i++)
        if (!same_shape(a[i], b[i])) {
            char sa[96], sb[96];
            shape_text(a[i], sa, sizeof sa);
            shape_text(b[i], sb, sizeof sb);
            snprintf(why, n, "%s %s here, %s in the checkpoint", names[i], sa, sb);
            return 1;
        }
    return 0;
}

static void copy_tensor(qat_tensor *dst, const qat_tensor *src)
{
    if (dst->data)
        memcpy(dst->data, src->data, dst->numel * sizeof(float));
}

/* Observer and LSQ state, as far as it means the same thing in both
 * layers; returns 1 if any came along. A checkpoint trained without
 * quantization has observers that never saw data: nothing comes. */
static int copy_quant_state(qat_layer_quant *d, const qat_layer_quant *s)
{
    const qat_quant_cfg *dc = d->cfg, *sc = s->cfg;
    int any = 0;
    if (s->act_obs.initialized) { /* a range in real units: valid at any bit-width */
        d->act_obs = s->act_obs;
        any = 1;
    }
    if (d->w_ema.lo && s->w_ema.lo && s->w_ema.initialized && d->wq_channels == s->wq_channels) {
        memcpy(d->w_ema.lo, s->w_ema.lo, (size_t)d->wq_channels * sizeof(float));
        memcpy(d->w_ema.hi, s->w_ema.hi, (size_t)d->wq_channels * sizeof(float));
        d->w_ema.initialized = 1;
        any = 1;
    }
    /* learned step sizes and zero points are steps of one code grid */
    if (dc->learn_scale && sc->learn_scale && s->lsq.initialized &&
        d->wq_channels == s->wq_channels && dc->weight_bits == sc->weight_bits &&
        dc->activation_bits == sc->activation_bits && dc->weight_scheme == sc->weight_scheme &&
        dc->activation_scheme == sc->activation_scheme) {
        memcpy(d->lsq.s_w.data, s->lsq.s_w.data, (size_t)d->wq_channels * sizeof(float));
        d->lsq.s_a.data[0] = s->lsq.s_a.data[0];
        memcpy(d->lsq.weight_zero_point, s->lsq.weight_zero_point,
               (size_t)d->wq_channels * sizeof(int32_t));
        d->lsq.act_zero_point = s->lsq.act_zero_point;
        d->lsq.initialized = 1;
        any = 1;
    }
    return any;
}

/* keep[offset of t's entries] = 0 where src holds +0 (a pruned entry). */
static void mark_zeros(qat_model *m, const qat_tensor *t, float *keep, int *held)
{
    size_t np;
    const float *base = qat_model_params(m, &np);
    for (size_t i = 0; t->data && i < t->numel; i++)
        if (t->data[i] == 0.0f) {
            keep[(size_t)(t->data + i - base)] = 0.0f;
            *held = 1;
        }
}

static int floats_equal(const qat_cfg_floats *a, const qat_cfg_floats *b)
{
    if (a->n != b->n)
        return 0;
    for (int i = 0; i < a->n; i++)
        if (a->v[i] != b->v[i])
            return 0;
    return 1;
}

/* The list as a config file writes it ("auto", or "a, b, c"). */
static void floats_text(const qat_cfg_floats *f, char *buf, size_t len)
{
    static const qat_cfg_key k = {.type = QAT_CFG_FLOATS};
    qat_cfg_format(&k, f, buf, len);
}

/* Input standardisation is folded into the first layer's weights, so the
 * two runs must agree on it for the weights to mean the same ("auto" on
 * both sides: the run takes the checkpoint's statistics, see
 * qat_model_init_from, rather than measuring its own data's). */
static qat_status check_model_keys(const qat_config *dc, const qat_config *sc, const char *path,
                                   qat_error *err)
{
    const qat_model_cfg *a = &dc->model, *b = &sc->model;
    if (a->normalize_input == b->normalize_input &&
        (!a->normalize_input ||
         (floats_equal(&a->input_mean, &b->input_mean) &&
          floats_equal(&a->input_std, &b->input_std))))
        return QAT_OK;
    char am[256], as[256], bm[256], bs[256];
    floats_text(&a->input_mean, am, sizeof am);
    floats_text(&a->input_std, as, sizeof as);
    floats_text(&b->input_mean, bm, sizeof bm);
    floats_text(&b->input_std, bs, sizeof bs);
    return qat_fail(err, QAT_EINVAL,
                    "%s: [train] init = %s: [model] normalize_input = %s, input_mean = %s, "
                    "input_std = %s here, but %s, %s, %s in the checkpoint: the first "
                    "layer's weights would mean something else",
                    dc->path, path, a->normalize_input ? "true" : "false", am, as,
                    b->normalize_input ? "true" : "false", bm, bs);
}

qat_status qat_model_init_from(qat_model *m, const char *path, int strict, FILE *log,
                               float *keep, qat_init_report *rep, qat_error *err)
{
    memset(rep, 0, sizeof *rep);
    const qat_config *dc = qat_model_config(m);
    size_t np;
    qat_model_params(m, &np);
    for (size_t i = 0; keep && i < np; i++)
        keep[i] = 1.0f;
    qat_model *src = NULL;
    qat_status st = qat_checkpoint_load_model(path, &src, err);
    if (st != QAT_OK)
        return qat_error_prefix(err, "%s: [train] init", dc->path);
    const qat_config *sc = qat_model_config(src);
    if ((st = check_model_keys(dc, sc, path, err)) != QAT_OK)
        goto done;
    const qat_model_input *si = qat_model_input_info(src);
    if (si->stats_from_data && si->stats_set &&
        si->channels == qat_model_input_info(m)->channels) {
        qat_model_set_input_norm(m, si->mean, si->std);
        if (log)
            fprintf(log, "init: input statistics (auto) taken from %s\n", path);
    }
    int pruned = sc->prune.method != QAT_PRUNE_NONE;
    /* layers of the checkpoint that this model lacks */
    for (int i = 0; i < qat_model_num_layers(src); i++) {
        qat_layer *s = qat_model_layer(src, i);
        if (!is_compute(s->type) || find_layer(m, s->cfg->name))
            continue;
        char sh[96];
        shape_text(&s->w, sh, sizeof sh);
        if (strict) {
            st = qat_fail(err, QAT_EINVAL,
                          "%s: [train] init = %s: the checkpoint's layer '%s' (%s, weight %s) "
                          "is not in this config (set [train] init_strict = false to leave it "
                          "out)",
                          dc->path, path, s->cfg->name, qat_layer_type_name(s->type), sh);
            goto done;
        }
        if (log)
            fprintf(log, "init: the checkpoint's layer '%s' (weight %s) is not in %s: left out\n",
                    s->cfg->name, sh, dc->path);
        rep->skipped++;
    }
    for (int i = 0; i < qat_model_num_layers(m); i++) {
        qat_layer *d = qat_model_layer(m, i);
        if (!is_compute(d->type))
            continue;
        qat_layer *s = find_layer(src, d->cfg->name);
        char why[256];
        if (!s || mismatch(d, s, why, sizeof why)) {
            char sh[96];
            shape_text(&d->w, sh, sizeof sh);
            if (!s)
                snprintf(why, sizeof why, "not in the checkpoint (weight %s here)", sh);
            if (strict) {
                st = qat_fail(err, QAT_EINVAL,
                              "%s:%d: [layer.%s] [train] init = %s: layer '%s' %s (set [train] "
                              "init_strict = false to initialise it fresh)",
                              dc->path, d->cfg->line, d->cfg->name, path, d->cfg->name, why);
                goto done;
            }
            if (log)
                fprintf(log, "init: layer '%s' %s: initialised fresh\n", d->cfg->name, why);
            rep->skipped++;
            continue;
        }
        copy_tensor(&d->w, &s->w);
        copy_tensor(&d->b, &s->b);
        copy_tensor(&d->gamma, &s->gamma);
        copy_tensor(&d->beta, &s->beta);
        if (d->running_mean) {
            memcpy(d->running_mean, s->running_mean, (size_t)d->out_c * sizeof(float));
            memcpy(d->running_var, s->running_var, (size_t)d->out_c * sizeof(float));
        }
        rep->quant_state += copy_quant_state(&d->q, &s->q);
        if (pruned && keep) {
            const qat_tensor *ts[4] = {&d->w, &d->b, &d->gamma, &d->beta};
            for (int k = 0; k < 4; k++)
                mark_zeros(m, ts[k], keep, &rep->held);
        }
        rep->layers++;
    }
    if (log)
        fprintf(log,
                "init: %d layers from %s (observer/LSQ state of %d)%s%s\n", rep->layers, path,
                rep->quant_state, rep->skipped ? ", some initialised fresh" : "",
                rep->held ? "; its pruned parameters stay pruned" : "");
done:
    qat_model_destroy(src);
    return st;
}
