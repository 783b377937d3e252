/* summary.json: a flat JSON object whose keys run.h names (qat-sweep reads
 * them back through the same names). */
#include "summary.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

#include "qat/fsutil.h"
#include "qat/run.h"

/* A minimal JSON writer: keys and values appended to an open object. */
typedef struct json {
    FILE *f;
    int first;
} json;

static void key(json *j, const char *k)
{
    fprintf(j->f, "%s\n  \"%s\": ", j->first ? "" : ",", k);
    j->first = 0;
}

static void json_begin(json *j, FILE *f)
{
    j->f = f;
    j->first = 1;
    fputc('{', f);
}

static void json_end(json *j) { fputs("\n}", j->f); }

static void json_num(json *j, const char *k, double v) /* NaN -> null */
{
    key(j, k);
    if (isfinite(v))
        fprintf(j->f, "%.10g", v);
    else
        fputs("null", j->f);
}

static void json_int(json *j, const char *k, long long v)
{
    key(j, k);
    fprintf(j->f, "%lld", v);
}

static void json_str(json *j, const char *k, const char *v)
{
    key(j, k);
    fputc('"', j->f);
    for (const char *p = v; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '"' || c == '\\')
            fprintf(j->f, "\\%c", c);
        else if (c < 0x20)
            fprintf(j->f, "\\u%04x", c);
        else
            fputc(c, j->f);
    }
    fputc('"', j->f);
}

static void json_array(json *j, const char *k, const double *v, int n)
{
    key(j, k);
    fputc('[', j->f);
    for (int i = 0; i < n; i++)
        fprintf(j->f, "%s%.6g", i ? ", " : "", v[i]);
    fputc(']', j->f);
}

/* Starts a nested object under k; end it with json_end. */
static void json_object(json *j, const char *k, json *inner)
{
    key(j, k);
    json_begin(inner, j->f);
}

static void write_ptq(json *j, const qat_config *c, const qat_ptq_report *p)
{
    char comp[96] = "";
    const char *parts[3] = {c->ptq.bn_reestimate ? "bn_reestimate" : NULL,
                            c->ptq.adaround ? "adaround" : NULL,
                            c->ptq.bias_correction ? "bias_correction" : NULL};
    for (int i = 0; i < 3; i++)
        if (parts[i])
            snprintf(comp + strlen(comp), sizeof comp - strlen(comp), "%s%s", comp[0] ? "+" : "",
                     parts[i]);
    json_int(j, QAT_SUMMARY_CALIBRATION_IMAGES, p->calibration_images);
    json_num(j, QAT_SUMMARY_CALIBRATION_SECONDS, p->calibration_seconds);
    json_str(j, QAT_SUMMARY_COMPENSATION, comp[0] ? comp : "none");
    json_num(j, QAT_SUMMARY_COMPENSATION_SECONDS, p->compensation_seconds);
    json_num(j, QAT_SUMMARY_PTQ_SECONDS, p->calibration_seconds + p->compensation_seconds);
    json layers, one;
    json_object(j, QAT_SUMMARY_PTQ_LAYERS, &layers);
    for (int i = 0; i < p->nlayers; i++) {
        const qat_ptq_layer_report *l = &p->layers[i];
        json_object(&layers, l->name, &one);
        json_num(&one, "round_error_nearest", l->round_error_nearest);
        json_num(&one, "round_error_learned", l->round_error_learned);
        json_int(&one, "codes_flipped", l->codes_flipped);
        json_int(&one, "codes_mismatched", l->codes_mismatched);
        json_num(&one, "bias_error_before", l->bias_error_before);
        json_num(&one, "bias_error_after", l->bias_error_after);
        json_end(&one);
    }
    json_end(&layers);
}

qat_status qat_run_write_summary(const qat_trained *t, const qat_run_results *res,
                                 qat_error *err)
{
    const qat_config *c = t->cfg;
    char path[4200];
    snprintf(path, sizeof path, "%s/summary.json", t->dir);
    qat_atomic at;
    FILE *f;
    qat_status st = qat_atomic_fopen(&at, path, &f, err);
    if (st != QAT_OK)
        return st;
    double total = 0;
    for (int e = 0; e < t->epochs; e++)
        total += t->epoch_seconds[e];
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    json j;
    json_begin(&j, f);
    json_str(&j, QAT_SUMMARY_CONFIG, c->path);
    json_str(&j, QAT_SUMMARY_MODE, qat_enum_name(qat_train_mode_names, (int)c->train.mode));
    json_str(&j, QAT_SUMMARY_INIT, c->train.init);
    json_int(&j, QAT_SUMMARY_EPOCHS, t->epochs);
    json_int(&j, QAT_SUMMARY_THREADS, t->threads);
    json_int(&j, QAT_SUMMARY_TRAIN_IMAGES, t->train->n);
    json_int(&j, QAT_SUMMARY_TEST_IMAGES, t->test->n);
    json_int(&j, QAT_SUMMARY_QUANT_ENABLED, c->quant.enabled);
    json_str(&j, QAT_SUMMARY_TASK, qat_task_names[c->model.task]);
    json_num(&j, QAT_SUMMARY_FLOAT_ACCURACY, res->flt.accuracy);
    json_num(&j, QAT_SUMMARY_FAKEQUANT_ACCURACY, res->fq.accuracy);
    json_num(&j, QAT_SUMMARY_INT8_ACCURACY, res->int8.accuracy);
    json_num(&j, QAT_SUMMARY_AGREEMENT, res->agreement);
    if (c->model.task == QAT_TASK_REGRESSION) {
        json_num(&j, QAT_SUMMARY_FLOAT_MSE, res->flt.reg.mse);
        json_num(&j, QAT_SUMMARY_FLOAT_MAE, res->flt.reg.mae);
        json_num(&j, QAT_SUMMARY_FLOAT_R2, res->flt.reg.r2);
        json_num(&j, QAT_SUMMARY_FAKEQUANT_MSE, res->fq.reg.mse);
        json_num(&j, QAT_SUMMARY_FAKEQUANT_MAE, res->fq.reg.mae);
        json_num(&j, QAT_SUMMARY_FAKEQUANT_R2, res->fq.reg.r2);
        json_num(&j, QAT_SUMMARY_INT8_MSE, res->int8.reg.mse);
        json_num(&j, QAT_SUMMARY_INT8_MAE, res->int8.reg.mae);
        json_num(&j, QAT_SUMMARY_INT8_R2, res->int8.reg.r2);
    }
    if (t->val) {
        json_int(&j, QAT_SUMMARY_VAL_IMAGES, t->val->n);
        if (c->model.task == QAT_TASK_REGRESSION) {
            json_num(&j, QAT_SUMMARY_VAL_MSE, res->val.reg.mse);
            json_num(&j, QAT_SUMMARY_VAL_MAE, res->val.reg.mae);
            json_num(&j, QAT_SUMMARY_VAL_R2, res->val.reg.r2);
        } else {
            json_num(&j, QAT_SUMMARY_VAL_ACCURACY, res->val.accuracy);
        }
    }
    json_array(&j, QAT_SUMMARY_EPOCH_SECONDS, t->epoch_seconds, t->epochs);
    json_num(&j, QAT_SUMMARY_TRAIN_SECONDS, t->epochs ? total : NAN);
    json_num(&j, QAT_SUMMARY_TRAIN_IMAGES_PER_SECOND,
             total > 0 ? (double)t->train->n * t->epochs / total : NAN);
    json_num(&j, QAT_SUMMARY_INT8_IMAGES_PER_SECOND, res->int8_ips);
    json_int(&j, QAT_SUMMARY_MODEL_BYTES_FLOAT, (long long)res->bytes_float);
    if (c->quant.enabled) {
        json_int(&j, QAT_SUMMARY_MODEL_BYTES_INT8, (long long)res->bytes_int8);
        json_int(&j, QAT_SUMMARY_MODEL_FILE_BYTES, (long long)res->file_bytes);
    } else {
        json_num(&j, QAT_SUMMARY_MODEL_BYTES_INT8, NAN);
        json_num(&j, QAT_SUMMARY_MODEL_FILE_BYTES, NAN);
    }
    if (c->prune.method != QAT_PRUNE_NONE) { /* zero / trained weights, removed ones included */
        const qat_prune_stats *sp = &res->sparsity;
        json_num(&j, QAT_SUMMARY_SPARSITY, sp->sparsity);
        json in;
        json_object(&j, QAT_SUMMARY_SPARSITY_LAYERS, &in);
        for (int i = 0; i < sp->n; i++)
            json_num(&in, sp->layers[i].name,
                     sp->layers[i].weights
                         ? (double)sp->layers[i].zeros / (double)sp->layers[i].weights
                         : 0.0);
        json_end(&in);
        json_object(&j, QAT_SUMMARY_CHANNELS_KEPT, &in);
        for (int i = 0; i < sp->n; i++)
            json_int(&in, sp->layers[i].name, sp->layers[i].channels_kept);
        json_end(&in);
    }
    if (res->ptq)
        write_ptq(&j, c, res->ptq);
    if (t->gradient_bytes_per_step) {
        json_int(&j, QAT_SUMMARY_RANKS, t->ranks);
        json_int(&j, QAT_SUMMARY_GRADIENT_BITS, qat_grad_bits_value(c->distributed.gradient_bits));
        json_int(&j, QAT_SUMMARY_GRADIENT_BYTES, (long long)t->gradient_bytes_per_step);
    }
    json_int(&j, QAT_SUMMARY_PEAK_RSS_KB, ru.ru_maxrss);
    json_end(&j);
    fputc('\n', f);
    return qat_atomic_fclose(&at, f, err);
}
