/* One training step (trainer_internal.h): forward and backward of this
 * process's examples, the gradients summed over the ranks, the checks, and
 * the optimizer, whole or sharded over the ranks (dist_step.c). */
#include <math.h>
#include <string.h>

#include "qat/finite.h"
#include "qat/ops.h"
#include "trainer_internal.h"

/* Names the layer owning parameter index i. */
static const char *param_owner(qat_model *m, size_t i, const char **what)
{
    size_t np;
    float *base = qat_model_params(m, &np);
    for (int k = 0; k < qat_model_num_layers(m); k++) {
        qat_layer *l = qat_model_layer(m, k);
        const qat_tensor *ts[4] = {&l->w, &l->b, &l->gamma, &l->beta};
        static const char *names[4] = {"weight", "bias", "bn gamma", "bn beta"};
        for (int j = 0; j < 4; j++)
            if (ts[j]->data && base + i >= ts[j]->data && base + i < ts[j]->data + ts[j]->numel) {
                *what = names[j];
                return l->cfg->name;
            }
    }
    *what = "parameter";
    return "?";
}

static qat_status nonfinite(run *r, size_t i, double v, const char *kind, long step,
                            qat_error *err)
{
    const char *what;
    const char *layer = param_owner(r->model, i, &what);
    return qat_fail(err, QAT_ENUMERIC,
                    "step %ld: non-finite %s (%g) in layer '%s' %s; stopping. The last "
                    "good checkpoint is kept.",
                    step, kind, v, layer, what);
}

static qat_status check_finite(run *r, const float *v, size_t n, const char *kind, long step,
                               qat_error *err)
{
    size_t i = qat_first_nonfinite(v, n);
    return i == n ? QAT_OK : nonfinite(r, i, (double)v[i], kind, step, err);
}

/* Forward and backward of the n examples in r->batch, adding to the
 * gradients; returns the data loss (with a teacher: blended with the
 * distillation term, also given apart) and the correct count
 * (classification) or the squared error summed over examples, averaged over
 * outputs (regression). A data-parallel shard weighs its loss by w, its
 * share of the global batch, so the ranks' gradients sum to the batch's. */
static qat_status forward_backward(run *r, int n, float w, double *loss, double *distill,
                                   int *correct, double *sq_err, qat_error *err)
{
    const qat_config *c = r->cfg;
    qat_tape *t = r->tape;
    qat_tape_reset(t);
    qat_tape_set_training(t, 1);
    qat_tape_set_grad_enabled(t, 1);
    qat_tensor *logits = qat_dataset_type(r->train) == QAT_DATA_F32
                             ? qat_model_forward_f32(r->model, t, r->batch.inputs, n)
                             : qat_model_forward(r->model, t, r->batch.inputs, n);
    int C = logits->shape[1];
    const float *target = r->batch.targets;
    if (!r->regression && c->train.loss != QAT_LOSS_CROSS_ENTROPY) {
        memset(r->onehot, 0, (size_t)n * (size_t)C * sizeof(float));
        for (int i = 0; i < n; i++)
            r->onehot[(size_t)i * C + r->batch.labels[i]] = 1.0f;
        target = r->onehot;
    }
    qat_tensor *l;
    switch (c->train.loss) {
    case QAT_LOSS_MSE: l = qat_op_mse(t, logits, target); break;
    case QAT_LOSS_L1: l = qat_op_l1(t, logits, target); break;
    case QAT_LOSS_HUBER: l = qat_op_huber(t, logits, target, c->train.huber_delta); break;
    default:
        l = qat_op_softmax_cross_entropy_smooth(t, logits, r->batch.labels,
                                                c->train.label_smoothing);
    }
    if (r->teacher)
        l = qat_teacher_loss(r->teacher, t, l, logits, r->batch.inputs, n, distill);
    *loss = l->data[0];
    *correct = 0;
    *sq_err = 0;
    for (int i = 0; i < n && r->regression; i++)
        for (int k = 0; k < C; k++) {
            double d = (double)logits->data[(size_t)i * C + k] - target[(size_t)i * C + k];
            *sq_err += d * d / C;
        }
    for (int i = 0; i < n && !r->regression; i++) {
        const float *z = logits->data + (size_t)i * C;
        int best = 0;
        for (int k = 1; k < C; k++)
            if (z[k] > z[best])
                best = k;
        *correct += best == r->batch.labels[i];
    }
    if (!isfinite(*loss)) {
        /* name the layer the loss reads: the one that made the logits */
        const char *from = "?";
        for (int k = qat_model_num_layers(r->model) - 1; k >= 0 && from[0] == '?'; k--)
            if (qat_model_layer(r->model, k)->type != QAT_LAYER_DROPOUT)
                from = qat_model_layer(r->model, k)->cfg->name;
        float peak = 0.0f; /* largest |logit|, or the first non-finite one */
        for (size_t i = 0; i < (size_t)n * (size_t)C && isfinite(peak); i++)
            if (!isfinite(logits->data[i]) || fabsf(logits->data[i]) > peak)
                peak = isfinite(logits->data[i]) ? fabsf(logits->data[i]) : logits->data[i];
        return qat_fail(err, QAT_ENUMERIC,
                        "step %ld: the loss is %g: the logits of layer '%s' reach %g; "
                        "stopping. The last good checkpoint is kept.",
                        r->meta.step, *loss, from, (double)peak);
    }
    qat_tape_backward_weighted(t, l, w);
    return QAT_OK;
}

/* The global batch's examples this process computes (all of them, or its
 * shards), forward and backward, and their gradients summed over every rank;
 * *seen and the sums are this process's examples'. */
static qat_status batch_gradients(run *r, uint32_t b, int n, int epoch, int *seen,
                                  double *loss_sum, double *kd_sum, int *correct, double *sq,
                                  qat_error *err)
{
    const qat_config *c = r->cfg;
    if (!r->dp) {
        qat_batch_fill(&r->batch, r->train, r->order + b, n, &r->aug, (uint64_t)c->train.seed,
                       epoch);
        double loss;
        qat_status st = forward_backward(r, n, 1.0f, &loss, kd_sum, correct, sq, err);
        if (st != QAT_OK)
            return st;
        *loss_sum = loss * n;
        *kd_sum *= n;
        *seen = n;
        return st;
    }
    size_t np;
    float *grads = qat_model_grads(r->model, &np);
    *loss_sum = *kd_sum = *sq = 0;
    *correct = *seen = 0;
    for (int k = 0; k < qat_dp_local_shards(r->dp); k++) {
        int off, cnt, ok;
        qat_dp_shard(r->dp, n, qat_dp_shard_index(r->dp, k), &off, &cnt);
        qat_batch_fill(&r->batch, r->train, r->order + b + (uint32_t)off, cnt, &r->aug,
                       (uint64_t)c->train.seed, epoch);
        double loss, kd = 0, se = 0;
        qat_status st = forward_backward(r, cnt, (float)cnt / (float)n, &loss, &kd, &ok, &se, err);
        if (st != QAT_OK)
            return st;
        *loss_sum += loss * cnt;
        *kd_sum += kd * cnt;
        *sq += se;
        *correct += ok;
        *seen += cnt;
        qat_dp_add_shard(r->dp, k, grads, r->meta.step);
    }
    qat_dp_reduce(r->dp, grads);
    return QAT_OK;
}

static qat_status whole_step(run *r, float *params, float *grads, size_t np, float lr,
                             qat_error *err)
{
    qat_status st = check_finite(r, grads, np, "gradient", r->meta.step, err);
    if (st != QAT_OK)
        return st;
    /* pruned gradients go before clipping: they must not eat the norm */
    qat_pruner_mask_grads(r->pruner, grads);
    if (r->cfg->train.grad_clip > 0)
        qat_clip_grad_norm(grads, np, r->cfg->train.grad_clip);
    qat_pruner_optim_step(r->pruner, r->opt, params, grads, lr);
    return QAT_OK;
}

/* The optimizer sharded over the ranks: this rank holds the summed
 * gradient of parameters [lo, hi) only, steps them, and the ranks then
 * swap their parts. What needs the whole gradient (the first non-finite
 * entry, the clipping norm) is combined over the ranks. */
static qat_status sharded_step(run *r, float *params, float *grads, size_t lo, size_t hi,
                               float lr, qat_error *err)
{
    size_t n = hi - lo, i = qat_first_nonfinite(grads + lo, n);
    double bad = qat_dp_max_over_ranks(r->dp, i < n ? -(double)(lo + i) : -INFINITY);
    if (bad > -INFINITY) { /* every rank: the first bad entry, its value from its owner */
        size_t at = (size_t)-bad;
        double v = at >= lo && at < hi ? (double)grads[at] : 0.0;
        qat_dp_sum(r->dp, &v, 1); /* NaN or Inf plus zeros */
        return nonfinite(r, at, v, "gradient", r->meta.step, err);
    }
    qat_pruner_mask_grads(r->pruner, grads); /* before clipping, as whole_step */
    const float *mask = qat_pruner_mask(r->pruner);
    double clip = r->cfg->train.grad_clip;
    if (clip > 0) {
        double sq = qat_grad_sq_sum(grads + lo, n);
        qat_dp_sum(r->dp, &sq, 1);
        qat_clip_grad_to(grads + lo, n, sqrt(sq), clip);
    }
    qat_optim_step_range(r->opt, params, grads, mask, lr, lo, hi);
    qat_dp_gather_params(r->dp, params);
    return QAT_OK;
}

/* One optimizer step on the global batch at order[b .. b + n): sums as
 * batch_gradients, and the regularisation penalty. */
qat_status qat_run_step(run *r, uint32_t b, int n, int epoch, int *seen, double *loss_sum,
                        double *kd_sum, double *penalty, int *correct, double *sq_err,
                        qat_error *err)
{
    size_t np;
    float *params = qat_model_params(r->model, &np);
    float *grads = qat_model_grads(r->model, &np);
    memset(grads, 0, np * sizeof *grads);
    /* quantization delay: float warm-up, then fake-quant from this step on */
    qat_model_set_quant_active(r->model, r->meta.step >= r->quant_from_step);
    qat_status st = batch_gradients(r, b, n, epoch, seen, loss_sum, kd_sum, correct, sq_err, err);
    if (st != QAT_OK)
        return st;
    /* the penalty's gradient joins the data loss's (exact, regularize.c) */
    *penalty = r->regularize ? qat_regularize_apply(r->model) : 0.0;
    float lr = qat_lr_at(&r->sched, r->meta.step);
    size_t lo, hi;
    if (qat_dp_part(r->dp, &lo, &hi))
        st = sharded_step(r, params, grads, lo, hi, lr, err);
    else
        st = whole_step(r, params, grads, np, lr, err);
    if (st != QAT_OK)
        return st;
    /* tied weights: the centroids take the step, the members follow */
    qat_clusterer_step(r->clusterer, grads, qat_pruner_mask(r->pruner), lr);
    r->meta.step++;
    return check_finite(r, params, np, "weight", r->meta.step, err);
}
