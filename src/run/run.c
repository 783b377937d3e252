/* The run pipeline: train -> export -> integer evaluation -> summary.json.
 * Training knows nothing of what follows it; this is where the trained
 * model meets export, the model file and the integer runtime. */
#include "qat/run.h"

#include <math.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "qat/clock.h"
#include "qat/export.h"
#include "qat/ptq.h"
#include "qat/runtime_h5.h"
#include "summary.h"

#define EVAL_BATCH 256

/* Runs an integer model over d with a session of `threads` threads;
 * pred (d->n entries) receives the predicted classes. */
static qat_status evaluate_int8(const qat_rt_model *m, const qat_dataset *d, int threads,
                                uint8_t *pred, double *accuracy, double *images_per_second,
                                qat_error *err)
{
    qat_rt_options o = {.threads = threads, .max_batch = EVAL_BATCH};
    qat_rt_session *s;
    qat_status st = qat_rt_session_create(m, &o, &s, err);
    if (st != QAT_OK)
        return st;
    int C = qat_rt_model_num_classes(m);
    size_t isz = qat_dataset_image_size(d);
    int8_t *logits = malloc((size_t)EVAL_BATCH * (size_t)C);
    if (!logits) {
        qat_rt_session_destroy(s);
        return qat_fail(err, QAT_ENOMEM, "out of memory");
    }
    size_t correct = 0;
    double t0 = qat_clock_seconds();
    for (uint32_t b = 0; b < d->n && st == QAT_OK; b += EVAL_BATCH) {
        int n = (int)(d->n - b < EVAL_BATCH ? d->n - b : EVAL_BATCH);
        st = qat_rt_run(s, d->images + (size_t)b * isz, n, logits, err);
        for (int i = 0; st == QAT_OK && i < n; i++) {
            int p = qat_rt_argmax(logits + (size_t)i * C, C);
            correct += p == d->labels[b + (uint32_t)i];
            pred[b + (uint32_t)i] = (uint8_t)p;
        }
    }
    double dt = qat_clock_seconds() - t0;
    free(logits);
    qat_rt_session_destroy(s);
    if (st != QAT_OK)
        return st;
    *accuracy = d->n ? (double)correct / d->n : 0.0;
    *images_per_second = dt > 0 ? d->n / dt : 0.0;
    return QAT_OK;
}

/* The final float or fake-quant accuracy; with quantization on, the export
 * to <dir>/model.int8.h5 and the integer runtime's accuracy on what was
 * written, read back through the loader users will use. */
static qat_status finish(const qat_trained *t, qat_run_results *res, qat_error *err)
{
    const qat_config *c = t->cfg;
    const qat_dataset *test = t->test;
    int pruned = c->prune.method != QAT_PRUNE_NONE;
    res->fq_acc = res->int8_acc = res->agreement = res->int8_ips = NAN;
    res->bytes_float = qat_model_float_bytes(t->model);
    res->bytes_int8 = res->file_bytes = 0;
    uint8_t *pred = malloc(test->n + 1), *pred8 = malloc(test->n + 1);
    if (!pred || !pred8) {
        free(pred);
        free(pred8);
        return qat_fail(err, QAT_ENOMEM, "out of memory");
    }
    if (c->quant.enabled) /* even if the delay outlasted training */
        qat_model_set_quant_active(t->model, 1);
    double acc = qat_evaluate(t->model, t->tape, test, EVAL_BATCH, pred);
    qat_status st = QAT_OK;
    if (pruned)
        qat_prune_stats_float(t->model, &res->sparsity);
    if (!c->quant.enabled) {
        res->float_acc = acc;
        goto done;
    }
    res->fq_acc = acc;
    qat_rt_owned_desc d;
    if ((st = qat_export_desc_sparsity(t->model, &d, pruned ? &res->sparsity : NULL, err)))
        goto done;
    res->bytes_int8 = qat_export_param_bytes(&d.desc);
    char path[4200];
    snprintf(path, sizeof path, "%s/model.int8.h5", t->dir);
    st = qat_rt_h5_write(path, &d.desc, err);
    qat_rt_owned_desc_free(&d);
    if (st != QAT_OK)
        goto done;
    struct stat sb;
    if (stat(path, &sb) == 0)
        res->file_bytes = (size_t)sb.st_size;
    qat_rt_model *rm;
    if ((st = qat_rt_h5_load(path, &rm, err)) != QAT_OK)
        goto done;
    st = evaluate_int8(rm, test, t->threads, pred8, &res->int8_acc, &res->int8_ips, err);
    qat_rt_model_destroy(rm);
    if (st != QAT_OK)
        goto done;
    size_t same = 0;
    for (uint32_t i = 0; i < test->n; i++)
        same += pred[i] == pred8[i];
    res->agreement = test->n ? (double)same / test->n : NAN;
done:
    free(pred);
    free(pred8);
    return st;
}

static void print_results(const qat_trained *t, const qat_run_results *res)
{
    const qat_config *c = t->cfg;
    if (c->quant.enabled && !isnan(res->float_acc))
        printf("float_accuracy %.4f  ", res->float_acc);
    if (c->quant.enabled)
        printf("fakequant_accuracy %.4f  int8_accuracy %.4f  agreement %.4f  int8 model "
               "%zu bytes\n",
               res->fq_acc, res->int8_acc, res->agreement, res->bytes_int8);
    else
        printf("float_accuracy %.4f\n", res->float_acc);
    if (c->prune.method != QAT_PRUNE_NONE)
        qat_prune_stats_print(stdout, &res->sparsity,
                              c->quant.enabled ? "sparsity of the exported int8 weights"
                                               : "sparsity of the float weights");
    printf("outputs in %s/\n", t->dir);
}

/* mode = ptq: the float model's accuracy (before compensation changes its
 * weights), post-training quantization, and its result as the run's
 * checkpoint, so qat-export and a later [train] init can read it. */
static qat_status post_training(qat_trained *t, int quiet, qat_ptq_report *rep,
                                qat_run_results *res, qat_error *err)
{
    qat_model_set_quant_active(t->model, 0);
    res->float_acc = qat_evaluate(t->model, t->tape, t->test, EVAL_BATCH, NULL);
    qat_model_set_quant_active(t->model, 1);
    if (!quiet)
        printf("ptq: %s: float accuracy %.4f\n", t->cfg->train.init, res->float_acc);
    qat_status st = qat_ptq(t, quiet ? NULL : stdout, rep, err);
    if (st != QAT_OK)
        return st;
    res->ptq = rep;
    char path[4200];
    snprintf(path, sizeof path, "%s/checkpoint.h5", t->dir);
    qat_checkpoint_meta meta = {0};
    return qat_checkpoint_save(path, t->model, NULL, &meta, err);
}

qat_status qat_run(const qat_config *cfg, const qat_train_opts *opts, qat_error *err)
{
    qat_trained *t;
    qat_status st = qat_train(cfg, opts, &t, err);
    if (st != QAT_OK)
        return st;
    qat_run_results res = {.float_acc = NAN};
    qat_ptq_report *rep = NULL;
    if (cfg->train.mode == QAT_MODE_PTQ) {
        rep = malloc(sizeof *rep);
        st = rep ? post_training(t, opts && opts->quiet, rep, &res, err)
                 : qat_fail(err, QAT_ENOMEM, "out of memory");
    }
    if (st == QAT_OK)
        st = finish(t, &res, err);
    if (st == QAT_OK)
        st = qat_run_write_summary(t, &res, err);
    if (st == QAT_OK && !(opts && opts->quiet))
        print_results(t, &res);
    free(rep);
    qat_train_end(t);
    return st;
}
