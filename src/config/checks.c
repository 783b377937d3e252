/* The config's cross-key checks (model and task, pruning, ptq mode), which
 * layers prune, and where a key was set: each error names the file:line of
 * the key at fault. */
#include <stdio.h>
#include <string.h>

#include "config_internal.h"

static int is_compute_cfg(const qat_layer_cfg *l) { return qat_layer_type_has_weights(l->type); }

int qat_config_last_compute(const qat_config *cfg)
{
    for (int i = cfg->nlayers - 1; i >= 0; i--)
        if (is_compute_cfg(&cfg->layers[i]))
            return i;
    return -1;
}

int qat_config_prune_layer(const qat_config *cfg, int i, float *target)
{
    const qat_layer_cfg *l = &cfg->layers[i];
    float t = l->target_sparsity >= 0.0f ? l->target_sparsity : cfg->prune.target_sparsity;
    if (target)
        *target = t;
    if (cfg->prune.method == QAT_PRUNE_NONE || !is_compute_cfg(l) || l->prune == 0)
        return 0;
    if (l->prune == 1 || l->target_sparsity >= 0.0f)
        return 1;
    return !(cfg->prune.method == QAT_PRUNE_CHANNEL && i == qat_config_last_compute(cfg));
}

/* "file:line" of section.key where it was set (or "--set ..."), else of the
 * section, else the file. */
void qat_config_where_key(const qat_ini *ini, const char *section, const char *key, char *buf,
                          size_t len)
{
    qat_ini_section *s = qat_ini_find((qat_ini *)ini, section);
    qat_ini_entry *e = s && key ? qat_ini_section_get(s, key) : NULL;
    if (e)
        qat_ini_where(ini, e, buf, len);
    else if (s)
        snprintf(buf, len, "%s:%d", ini->path, s->line);
    else
        snprintf(buf, len, "%s", ini->path);
}

/* Cross-key checks of [model] and [train] the task decides: a regression
 * trains with mse unless its loss is set (and never cross-entropy); which
 * shape keys were written (the rest come from the data). */
qat_status qat_config_check_model(qat_ini *ini, qat_config *cfg, qat_error *err)
{
    qat_model_cfg *m = &cfg->model;
    qat_ini_section *ms = qat_ini_find(ini, "model");
    static const char *const shape_keys[3] = {"input_height", "input_width", "input_channels"};
    m->input_set = 0;
    for (int i = 0; i < 3; i++)
        if (ms && qat_ini_section_get(ms, shape_keys[i]))
            m->input_set |= 1 << i;
    char where[600];
    if (m->task == QAT_TASK_REGRESSION) {
        qat_ini_section *ts = qat_ini_find(ini, "train");
        if (!ts || !qat_ini_section_get(ts, "loss")) {
            cfg->train.loss = QAT_LOSS_MSE;
        } else if (cfg->train.loss == QAT_LOSS_CROSS_ENTROPY) {
            qat_config_where_key(ini, "train", "loss", where, sizeof where);
            return qat_fail(err, QAT_EINVAL,
                            "%s: [train] loss = cross_entropy needs class labels; [model] task = "
                            "regression trains with mse, l1 or huber",
                            where);
        }
    }
    const qat_cfg_floats *lists[2] = {&m->input_mean, &m->input_std};
    static const char *const list_keys[2] = {"input_mean", "input_std"};
    for (int i = 0; i < 2; i++)
        if ((m->input_set & QAT_SET_CHANNELS) && lists[i]->n > 1 &&
            lists[i]->n != m->input_channels) {
            qat_config_where_key(ini, "model", list_keys[i], where, sizeof where);
            return qat_fail(err, QAT_EINVAL,
                            "%s: [model] %s has %d values but input_channels = %d: give one "
                            "value, one per channel, or auto",
                            where, list_keys[i], lists[i]->n, m->input_channels);
        }
    return QAT_OK;
}

/* Cross-key checks of [prune] and the layers' overrides that ranges cannot
 * express; each message points at the line that set the offending key. */
qat_status qat_config_check_prune(qat_ini *ini, const qat_config *cfg, qat_error *err)
{
    const qat_prune_cfg *p = &cfg->prune;
    char where[600];
    if (p->method == QAT_PRUNE_NONE)
        return QAT_OK;
    for (int i = 0; p->method == QAT_PRUNE_CHANNEL && i < cfg->nlayers; i++) {
        const qat_layer_cfg *l = &cfg->layers[i];
        int reads_other = l->ninputs != 1 || l->inputs[0] != i - 1;
        int chain_op = l->type == QAT_LAYER_CONV2D ? l->groups == 1
                                                   : l->type <= QAT_LAYER_DROPOUT;
        if (chain_op && !reads_other)
            continue;
        qat_config_where_key(ini, "prune", "method", where, sizeof where);
        return qat_fail(err, QAT_EINVAL,
                        "%s: [prune] method = channel takes a pruned layer's channels out "
                        "together with the next layer's inputs, which needs a plain chain of "
                        "conv2d (groups = 1), linear, pool, flatten and dropout layers; "
                        "[layer.%s] (line %d) %s",
                        where, l->name, l->line,
                        chain_op ? "reads a layer other than the one before it"
                                 : l->type == QAT_LAYER_CONV2D ? "is a grouped conv2d"
                                                               : "is not one of those");
    }
    const char *unit = qat_prune_unit_names[p->unit];
    if (p->schedule != QAT_PRUNE_ONE_SHOT) {
        if (p->initial_sparsity > p->target_sparsity) {
            qat_config_where_key(ini, "prune", "initial_sparsity", where, sizeof where);
            return qat_fail(err, QAT_EINVAL,
                            "%s: [prune] initial_sparsity = %g is above target_sparsity = %g "
                            "(the %s schedule only ever prunes more)",
                            where, (double)p->initial_sparsity, (double)p->target_sparsity,
                            qat_prune_schedule_kind_names[p->schedule]);
        }
        if (!(p->end > p->start)) {
            /* point at end unless only start was written */
            qat_ini_section *ps = qat_ini_find(ini, "prune");
            int only_start = ps && !qat_ini_section_get(ps, "end") &&
                             qat_ini_section_get(ps, "start");
            qat_config_where_key(ini, "prune", only_start ? "start" : "end", where, sizeof where);
            return qat_fail(err, QAT_EINVAL,
                            "%s: [prune] end = %g is not after start = %g (%ss): the %s "
                            "schedule ramps the sparsity up from start to end",
                            where, (double)p->end, (double)p->start, unit,
                            qat_prune_schedule_kind_names[p->schedule]);
        }
    }
    float last = p->schedule == QAT_PRUNE_ONE_SHOT ? p->start : p->end;
    if (p->unit == QAT_PRUNE_UNIT_EPOCH && !(last < (float)cfg->train.epochs)) {
        const char *k = p->schedule == QAT_PRUNE_ONE_SHOT ? "start" : "end";
        qat_config_where_key(ini, "prune", k, where, sizeof where);
        return qat_fail(err, QAT_EINVAL,
                        "%s: [prune] %s = %g epochs is not before the end of training ([train] "
                        "epochs = %d): the model needs steps after the last mask update to "
                        "recover",
                        where, k, (double)last, cfg->train.epochs);
    }
    int last_i = qat_config_last_compute(cfg), any = 0;
    for (int i = 0; i < cfg->nlayers; i++) {
        const qat_layer_cfg *l = &cfg->layers[i];
        if (!is_compute_cfg(l))
            continue;
        char sec[QAT_NAME_MAX + 8];
        snprintf(sec, sizeof sec, "layer.%s", l->name);
        if (p->method == QAT_PRUNE_CHANNEL && i == last_i && l->prune != 0 &&
            (l->prune == 1 || l->target_sparsity >= 0.0f)) {
            qat_config_where_key(ini, sec, l->prune == 1 ? "prune" : "target_sparsity", where,
                                 sizeof where);
            return qat_fail(err, QAT_EINVAL,
                            "%s: [layer.%s] cannot be channel-pruned: removing its output "
                            "channels needs a later layer whose inputs shrink to match, and "
                            "'%s' is the last layer (its %d outputs are the class scores); set "
                            "prune = false or drop the key",
                            where, l->name, l->name, cfg->model.num_classes);
        }
        any |= qat_config_prune_layer(cfg, i, NULL);
    }
    if (!any) {
        qat_config_where_key(ini, "prune", "method", where, sizeof where);
        return qat_fail(err, QAT_EINVAL,
                        "%s: [prune] method = %s but no layer is pruned (every conv2d/linear "
                        "layer says prune = false%s)",
                        where, qat_prune_method_names[p->method],
                        p->method == QAT_PRUNE_CHANNEL ? ", or is the last layer" : "");
    }
    return QAT_OK;
}

/* mode = ptq quantizes a trained model: it needs one, and quantization.
 * AdaRound writes its rounding into the weights, so the weight scales must
 * come back from the rounded weights: the range (minmax, whose extremes it
 * keeps) or state (ema) does; a percentile or MSE search over the rounded
 * weights may not. */
qat_status qat_config_check_mode(qat_ini *ini, const qat_config *cfg, qat_error *err)
{
    char where[600];
    if (cfg->train.mode != QAT_MODE_PTQ)
        return QAT_OK;
    if (!cfg->train.init[0]) {
        qat_config_where_key(ini, "train", "mode", where, sizeof where);
        return qat_fail(err, QAT_EINVAL,
                        "%s: [train] mode = ptq quantizes a trained model: set [train] init = "
                        "the checkpoint.h5 to quantize",
                        where);
    }
    if (!cfg->quant.enabled) {
        qat_config_where_key(ini, "quant", "enabled", where, sizeof where);
        return qat_fail(err, QAT_EINVAL,
                        "%s: [quant] enabled = false, but [train] mode = ptq quantizes the model",
                        where);
    }
    for (int i = 0; cfg->ptq.adaround && i < cfg->nlayers; i++) {
        const qat_layer_cfg *l = &cfg->layers[i];
        qat_observer_kind k = l->quant.weight_observer;
        if (!is_compute_cfg(l) || k == QAT_OBS_MINMAX || k == QAT_OBS_EMA)
            continue;
        char sec[QAT_NAME_MAX + 8];
        snprintf(sec, sizeof sec, "layer.%s", l->name);
        qat_ini_section *ls = qat_ini_find(ini, sec);
        qat_config_where_key(ini, ls && qat_ini_section_get(ls, "weight_observer") ? sec : "quant",
                  "weight_observer", where, sizeof where);
        return qat_fail(err, QAT_EINVAL,
                        "%s: layer '%s' weight_observer = %s, but [ptq] adaround = true needs "
                        "minmax or ema: the learned rounding is stored in the weights, and a "
                        "%s range recomputed from the rounded weights would move the scale",
                        where, l->name, qat_observer_kind_names[k], qat_observer_kind_names[k]);
    }
    return QAT_OK;
}
