/* The run pipeline: train -> export -> integer evaluation -> summary.json.
 * Training knows nothing of what follows it; this is where the trained
 * model meets export, the model file and the integer runtime. */
#include "qat/run.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "qat/clock.h"
#include "qat/fixedpoint.h"
#include "qat/export.h"
#include "qat/ptq.h"
#include "qat/runtime_h5.h"
#include "summary.h"

#define EVAL_BATCH 256

/* Runs an integer model over d with a session of `threads` threads; codes
 * (d->n x outputs) receives its int8 outputs, or flt its float32 logits
 * when its last layer is a float layer (qat_rt_model_float_logits).
 * Classification: the accuracy and pred (the classes); regression: the
 * metrics of the dequantized outputs. */
static qat_status evaluate_int8(const qat_rt_model *m, const qat_dataset *d, int threads,
                                int8_t *codes, float *flt, uint8_t *pred, qat_run_metrics *res,
                                double *images_per_second, qat_error *err)
{
    const int fl = qat_rt_model_float_logits(m);
    qat_rt_options o = {.threads = threads, .max_batch = EVAL_BATCH};
    qat_rt_session *s;
    qat_status st = qat_rt_session_create(m, &o, &s, err);
    if (st != QAT_OK)
        return st;
    int C = qat_rt_model_num_classes(m), is_float = qat_dataset_type(d) == QAT_DATA_F32;
    size_t isz = qat_dataset_image_size(d) * (is_float ? sizeof(float) : 1);
    void *in = malloc((size_t)EVAL_BATCH * isz);
    uint8_t *labels = malloc(EVAL_BATCH);
    float *out = d->targets ? malloc((size_t)d->n * (size_t)C * sizeof(float)) : NULL;
    if (!in || !labels || (d->targets && !out)) {
        free(in);
        free(labels);
        free(out);
        qat_rt_session_destroy(s);
        return qat_fail(err, QAT_ENOMEM, "out of memory");
    }
    size_t correct = 0;
    double secs = 0;
    for (uint32_t b = 0; b < d->n && st == QAT_OK; b += EVAL_BATCH) {
        int n = (int)(d->n - b < EVAL_BATCH ? d->n - b : EVAL_BATCH);
        qat_dataset_batch(d, NULL, b, n, in, labels, NULL);
        int8_t *lg = codes + (size_t)b * (size_t)C;
        float *flg = flt + (size_t)b * (size_t)C;
        double t0 = qat_clock_seconds(); /* the runtime only, not the gather */
        if (fl)
            st = is_float ? qat_rt_run_float_logits(s, in, n, flg, err)
                          : qat_rt_run_logits(s, in, n, flg, err);
        else
            st = is_float ? qat_rt_run_float(s, in, n, lg, err) : qat_rt_run(s, in, n, lg, err);
        secs += qat_clock_seconds() - t0;
        for (int i = 0; st == QAT_OK && d->labels && i < n; i++) {
            int p = fl ? qat_rt_argmax_f32(flg + (size_t)i * C, C)
                       : qat_rt_argmax(lg + (size_t)i * C, C);
            correct += p == labels[i];
            pred[b + (uint32_t)i] = (uint8_t)p;
        }
    }
    if (st == QAT_OK && out) {
        if (fl)
            memcpy(out, flt, (size_t)d->n * (size_t)C * sizeof(float));
        else
            qat_rt_dequantize_logits(m, codes, (int)d->n, out);
        qat_dataset_regression_metrics(d, out, &res->reg);
    }
    free(in);
    free(labels);
    free(out);
    qat_rt_session_destroy(s);
    if (st != QAT_OK)
        return st;
    if (d->labels)
        res->accuracy = d->n ? (double)correct / d->n : 0.0;
    *images_per_second = secs > 0 ? d->n / secs : 0.0;
    return QAT_OK;
}

/* Regression agreement: the share of outputs where the integer runtime's
 * code and the fake-quant model's (its output divided by the output scale,
 * rounded, plus the zero point) are at most one step apart. */
static double code_agreement(const qat_rt_model *m, const int8_t *codes, const float *flt,
                             const float *fq, size_t count)
{
    if (qat_rt_model_float_logits(m)) { /* float outputs: the same float32 value */
        size_t same = 0;
        for (size_t i = 0; i < count; i++)
            same += flt[i] == fq[i];
        return count ? (double)same / (double)count : NAN;
    }
    float scale = qat_rt_model_output_scale(m);
    int32_t zp = qat_rt_model_output_zero_point(m);
    size_t close = 0;
    for (size_t i = 0; i < count; i++) {
        int32_t q = qat_fp_quantize(fq[i], scale, zp, -128, 127);
        close += abs(q - (int32_t)codes[i]) <= 1;
    }
    return count ? (double)close / (double)count : NAN;
}

static void clear_metrics(qat_run_metrics *r)
{
    r->accuracy = NAN;
    r->reg = (qat_regression_metrics){NAN, NAN, NAN};
}

/* The final float or fake-quant metrics (test, and val when there is one);
 * with quantization on, the export to <dir>/model.int8.h5 and the integer
 * runtime's metrics on what was written, read back through the loader
 * users will use. */
static qat_status finish(const qat_trained *t, qat_run_results *res, qat_error *err)
{
    const qat_config *c = t->cfg;
    const qat_dataset *test = t->test;
    int pruned = c->prune.method != QAT_PRUNE_NONE;
    /* res->flt is set before (quantization off, or mode = ptq's float model) */
    clear_metrics(&res->fq);
    clear_metrics(&res->int8);
    clear_metrics(&res->val);
    res->agreement = res->int8_ips = NAN;
    res->bytes_float = qat_model_float_bytes(t->model);
    res->bytes_int8 = res->file_bytes = 0;
    size_t K = (size_t)qat_model_num_outputs(t->model);
    uint8_t *pred = malloc(test->n + 1), *pred8 = malloc(test->n + 1);
    float *fq_out = malloc((size_t)test->n * K * sizeof(float) + 1);
    int8_t *codes = malloc((size_t)test->n * K + 1);
    float *flt = malloc((size_t)test->n * K * sizeof(float) + 1);
    qat_status st = QAT_OK;
    if (!pred || !pred8 || !fq_out || !codes || !flt) {
        st = qat_fail(err, QAT_ENOMEM, "out of memory");
        goto done;
    }
    if (c->quant.enabled) /* even if the delay outlasted training */
        qat_model_set_quant_active(t->model, 1);
    qat_eval ev;
    if ((st = qat_evaluate_set(t->model, t->tape, test, EVAL_BATCH, fq_out, pred, &ev, err)))
        goto done;
    qat_run_metrics *trained = c->quant.enabled ? &res->fq : &res->flt;
    trained->accuracy = ev.accuracy;
    trained->reg = ev.reg;
    if (t->val) {
        if ((st = qat_evaluate_set(t->model, t->tape, t->val, EVAL_BATCH, NULL, NULL, &ev, err)))
            goto done;
        res->val.accuracy = ev.accuracy;
        res->val.reg = ev.reg;
    }
    if (pruned)
        qat_prune_stats_float(t->model, &res->sparsity);
    if (!c->quant.enabled)
        goto done;
    qat_error why;
    if (qat_export_check(t->model, &why) != QAT_OK) {
        /* a model the integer format cannot hold (a channel-pruned graph):
         * its checkpoint is kept, the int8 metrics stay NaN (null in
         * summary.json) and the results line says why */
        goto done;
    }
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
    st = evaluate_int8(rm, test, t->threads, codes, flt, pred8, &res->int8, &res->int8_ips, err);
    if (st == QAT_OK && test->targets) {
        res->agreement = code_agreement(rm, codes, flt, fq_out, (size_t)test->n * K);
    } else if (st == QAT_OK) {
        size_t same = 0;
        for (uint32_t i = 0; i < test->n; i++)
            same += pred[i] == pred8[i];
        res->agreement = test->n ? (double)same / test->n : NAN;
    }
    qat_rt_model_destroy(rm);
done:
    free(pred);
    free(pred8);
    free(fq_out);
    free(codes);
    free(flt);
    return st;
}

static void print_results(const qat_trained *t, const qat_run_results *res)
{
    const qat_config *c = t->cfg;
    qat_error why;
    if (c->quant.enabled && c->model.task != QAT_TASK_REGRESSION && !isnan(res->flt.accuracy))
        printf("float_accuracy %.4f  ", res->flt.accuracy);
    if (c->model.task == QAT_TASK_REGRESSION) {
        const qat_run_metrics *m = c->quant.enabled ? &res->fq : &res->flt;
        printf("%s_mse %.6g  mae %.6g  r2 %.6f", c->quant.enabled ? "fakequant" : "float",
               m->reg.mse, m->reg.mae, m->reg.r2);
        if (c->quant.enabled)
            printf("  int8_mse %.6g  mae %.6g  r2 %.6f  agreement %.4f  int8 model %zu bytes",
                   res->int8.reg.mse, res->int8.reg.mae, res->int8.reg.r2, res->agreement,
                   res->bytes_int8);
        printf("\n");
    } else if (c->quant.enabled && qat_export_check(t->model, &why) != QAT_OK) {
        printf("fakequant_accuracy %.4f  no int8 model: %s\n", res->fq.accuracy, why.msg);
    } else if (c->quant.enabled) {
        printf("fakequant_accuracy %.4f  int8_accuracy %.4f  agreement %.4f  int8 model "
               "%zu bytes\n",
               res->fq.accuracy, res->int8.accuracy, res->agreement, res->bytes_int8);
    } else {
        printf("float_accuracy %.4f\n", res->flt.accuracy);
    }
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
    qat_eval ev;
    qat_status st =
        qat_evaluate_set(t->model, t->tape, t->test, EVAL_BATCH, NULL, NULL, &ev, err);
    qat_model_set_quant_active(t->model, 1);
    if (st != QAT_OK)
        return st;
    res->flt.accuracy = ev.accuracy;
    res->flt.reg = ev.reg;
    if (!quiet)
        printf("ptq: %s: float accuracy %.4f\n", t->cfg->train.init, res->flt.accuracy);
    st = qat_ptq(t, quiet ? NULL : stdout, rep, err);
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
    if (!t->leader) { /* rank 0 exports, evaluates and reports for every rank */
        qat_train_end(t);
        return QAT_OK;
    }
    qat_run_results res = {0};
    clear_metrics(&res.flt);
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
