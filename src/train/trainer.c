/* The training loop: data -> model -> loss -> backward -> optimizer, with
 * per-epoch evaluation and checkpoints. What comes after training (export,
 * integer evaluation, summary.json) is src/run/'s: qat_train hands it the
 * trained model. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qat/clock.h"
#include "qat/fsutil.h"
#include "qat/ops.h"
#include "qat/prune.h"
#include "qat/train.h"
#include "progress.h"
#include "trainer_internal.h"

/* What the model learns from the training split before the first step:
 * auto input statistics (unless [train] init brought the checkpoint's), a
 * float input's range; and the outputs a regression's targets need. */
static qat_status prepare_inputs(run *r, qat_error *err)
{
    const qat_config *c = r->cfg;
    const qat_dataset *tr = r->train;
    const qat_model_input *in = qat_model_input_info(r->model);
    if (in->stats_from_data && !in->stats_set) {
        float *mean = malloc((size_t)tr->c * 2 * sizeof(float));
        if (!mean)
            return qat_fail(err, QAT_ENOMEM, "out of memory");
        qat_dataset_channel_stats(tr, mean, mean + tr->c);
        qat_model_set_input_norm(r->model, mean, mean + tr->c);
        free(mean);
    }
    if (in->is_float) {
        size_t isz = qat_dataset_image_size(tr);
        for (uint32_t i = 0; i < tr->n; i++)
            qat_model_observe_input(r->model,
                                    tr->features + (size_t)(tr->index ? tr->index[i] : i) * isz,
                                    isz);
    }
    int K = qat_model_num_outputs(r->model);
    if (r->regression && K != tr->target_dim) {
        const qat_layer *l = qat_model_layer(r->model, qat_model_num_layers(r->model) - 1);
        return qat_fail(err, QAT_EINVAL,
                        "%s:%d: [layer.%s] the last layer has %d outputs but the data holds %d "
                        "targets per example (%s); they must agree",
                        c->path, l->cfg->line, l->cfg->name, K, tr->target_dim,
                        *c->data.train ? c->data.train : c->data.dir);
    }
    return QAT_OK;
}

/* [train] init: the model starts from that checkpoint (not on a resume,
 * which restores the run's own). *keep gets a pruned checkpoint's masks. */
static qat_status init_model(run *r, float **keep, qat_error *err)
{
    const qat_config *c = r->cfg;
    if (!c->train.init[0] || r->resume)
        return QAT_OK;
    size_t np;
    qat_model_params(r->model, &np);
    *keep = malloc((np + 1) * sizeof **keep);
    if (!*keep)
        return qat_fail(err, QAT_ENOMEM, "out of memory");
    qat_init_report rep;
    qat_status st = qat_model_init_from(r->model, c->train.init, c->train.init_strict,
                                        r->quiet ? NULL : stdout, *keep, &rep, err);
    if (st != QAT_OK || !rep.held) {
        free(*keep);
        *keep = NULL;
    }
    return st;
}

/* What a pruned init checkpoint pruned stays pruned: the run's own pruner
 * starts from its masks, or, when this config prunes nothing, a pruner that
 * only holds them (and on a resume gets them back from the checkpoint). */
static qat_status hold_masks(run *r, const float *keep, qat_error *err)
{
    if (keep && r->pruner) {
        qat_pruner_hold(r->pruner, keep);
        return QAT_OK;
    }
    char path[4200];
    snprintf(path, sizeof path, "%s/checkpoint.h5", r->dir);
    if (r->pruner || r->cfg->train.mode != QAT_MODE_QAT ||
        !(keep || (r->resume && r->cfg->train.init[0] && qat_checkpoint_has(path, "prune_state"))))
        return QAT_OK;
    return qat_pruner_create_hold(r->model, keep, &r->pruner, err);
}

static qat_status setup(run *r, qat_error *err)
{
    const qat_config *c = r->cfg;
    qat_status st;
    /* refuse what cannot fit before allocating any of it (evaluation runs
     * batches of up to 256 test images, see run_epochs) */
    int eval_batch = r->data.test.n < 256 ? (int)r->data.test.n : 256;
    if ((st = qat_model_check_memory(c, c->train.batch_size, eval_batch, qat_memory_available(),
                                     err)) ||
        (st = qat_team_create(r->threads, &r->team, err)) ||
        (st = qat_tape_create(r->team, &r->tape, err)) ||
        (st = qat_model_create(c, &r->model, err)))
        return st;
    float *keep = NULL; /* a pruned init checkpoint's masks */
    if ((st = init_model(r, &keep, err)) != QAT_OK)
        return st;
    qat_optim_config oc;
    qat_optim_config_defaults(&oc, (qat_optim_kind)c->train.optimizer);
    oc.momentum = c->train.momentum;
    oc.beta1 = c->train.beta1;
    oc.beta2 = c->train.beta2;
    oc.alpha = c->train.alpha;
    oc.eps = c->train.eps;
    oc.weight_decay = c->train.weight_decay;
    size_t np;
    int nsegs;
    qat_model_params(r->model, &np);
    const qat_param_seg *segs = qat_model_segments(r->model, &nsegs);
    if ((st = qat_optim_create(&oc, np, segs, nsegs, &r->opt, err))) {
        free(keep);
        return qat_error_prefix(err, "%s: [train]", c->path);
    }
    qat_optim_set_team(r->opt, r->team);
    if ((st = prepare_inputs(r, err)) != QAT_OK) {
        free(keep);
        return st;
    }
    r->steps_per_epoch = (long)((r->train->n + (uint32_t)c->train.batch_size - 1) /
                                (uint32_t)c->train.batch_size);
    long spe = r->steps_per_epoch;
    r->sched = (qat_lr_schedule){(qat_lr_kind)c->train.lr_schedule, c->train.lr, c->train.lr_min,
                                 c->train.lr_gamma, (long)ceil(c->train.lr_step_epochs * spe),
                                 0, (long)llround(c->train.warmup_epochs * spe)};
    r->sched.total_steps = spe * c->train.epochs - r->sched.warmup_steps;
    if (r->sched.total_steps < 1)
        r->sched.total_steps = 1;
    r->quant_from_step = (long)llround(c->quant.delay_epochs * spe);
    if (c->quant.delay_steps > r->quant_from_step)
        r->quant_from_step = c->quant.delay_steps;
    if ((st = qat_lr_schedule_check(&r->sched, err))) {
        free(keep);
        return qat_error_prefix(err, "%s: [train] lr_schedule = %s", c->path,
                                qat_lr_kind_name(r->sched.kind));
    }
    int B = c->train.batch_size, C = qat_model_num_outputs(r->model);
    if ((st = qat_batch_alloc(&r->batch, r->train, B, err)) != QAT_OK) {
        free(keep);
        return st;
    }
    r->order = malloc((size_t)r->train->n * sizeof *r->order);
    r->onehot = malloc((size_t)B * (size_t)C * sizeof(float));
    r->epoch_seconds = calloc((size_t)c->train.epochs, sizeof(double));
    if (!r->order || !r->onehot || !r->epoch_seconds) {
        free(keep);
        return qat_fail(err, QAT_ENOMEM, "out of memory for batch buffers");
    }
    qat_rng_seed(&r->meta.shuffle, (uint64_t)c->train.seed, 1);
    qat_rng_seed(&r->meta.dropout, (uint64_t)c->train.seed, 2);
    /* pruning masks ride along in every checkpoint */
    if (c->prune.method != QAT_PRUNE_NONE &&
        ((st = qat_prune_schedule_resolve(c, spe, spe * c->train.epochs, &r->prune_sched, err)) ||
         (st = qat_pruner_create(r->model, &r->prune_sched, &r->pruner, err)))) {
        free(keep);
        return st;
    }
    st = hold_masks(r, keep, err);
    free(keep);
    if (st != QAT_OK)
        return st;
    r->meta.prune_state = qat_pruner_state(r->pruner, &r->meta.prune_count);
    if (c->train.mode == QAT_MODE_QAT &&
        (st = qat_train_clusterer_create(c, r->model, &oc, r->steps_per_epoch, r->resume,
                                         qat_pruner_mask(r->pruner), r->quiet, &r->clusterer,
                                         &r->meta, err)) != QAT_OK)
        return st;
    r->regularize = qat_regularize_active(c);
    if (c->train.mode == QAT_MODE_QAT &&
        (st = qat_dp_create(r->dist, c, r->model, r->tape, r->train->n, &r->dp, err)) != QAT_OK)
        return st;
    /* an elementwise step shards over the ranks; the centroids' step and a
     * regrowing pruner's dense copy need the whole gradient */
    int regrow = r->pruner && c->prune.schedule == QAT_PRUNE_DYNAMIC && c->prune.regrow;
    if (c->distributed.shard_optimizer && !r->clusterer && !regrow &&
        (st = qat_dp_shard_optimizer(r->dp, err)) != QAT_OK)
        return st;
    return qat_teacher_create(c, r->team, B, qat_dataset_type(r->train) == QAT_DATA_F32,
                              &r->teacher, err);
}

static void teardown(run *r)
{
    if (r->metrics)
        fclose(r->metrics);
    qat_batch_free(&r->batch);
    free(r->order);
    free(r->onehot);
    free(r->epoch_seconds);
    free(r->resumed_rows);
    qat_optim_destroy(r->opt);
    qat_pruner_destroy(r->pruner);
    qat_teacher_destroy(r->teacher);
    qat_dp_destroy(r->dp);
    qat_clusterer_destroy(r->clusterer);
    qat_model_destroy(r->model);
    qat_tape_destroy(r->tape);
    qat_team_destroy(r->team);
    qat_run_data_free(&r->data);
}


static qat_status save_checkpoint(run *r, qat_error *err)
{
    size_t ns;
    float *os = qat_optim_state(r->opt, &ns);
    qat_dp_gather_state(r->dp, os, ns); /* a sharded optimizer: every part */
    if (!qat_dp_leader(r->dp)) /* every rank holds the same; one writes it */
        return QAT_OK;
    char path[4200];
    snprintf(path, sizeof path, "%s/checkpoint.h5", r->dir);
    r->meta.dropout = *qat_tape_rng(r->tape);
    /* mirrors the centroid optimizer's moments into the saved state */
    if (r->clusterer)
        r->meta.cluster_state = qat_clusterer_state(r->clusterer, &r->meta.cluster_count);
    return qat_checkpoint_save(path, r->model, r->opt, &r->meta, err);
}

static qat_status run_epochs(run *r, int stop_after, qat_error *err)
{
    const qat_config *c = r->cfg;
    int B = c->train.batch_size;
    *qat_tape_rng(r->tape) = r->meta.dropout;
    for (int e = r->meta.epoch; e < c->train.epochs; e++) {
        qat_dataset_order(r->train->n, c->data.shuffle, &r->meta.shuffle, r->order);
        /* epoch-wise switches, derived from the epoch so a resume gets them too */
        const qat_quant_cfg *qc = &c->quant;
        qat_model_set_observers_frozen(r->model, qc->freeze_observers_epoch > 0 &&
                                                     e + 1 >= qc->freeze_observers_epoch);
        qat_model_set_bn_frozen(r->model, qc->freeze_bn_epoch > 0 && e + 1 >= qc->freeze_bn_epoch);
        qat_progress pr;
        qat_progress_start(&pr, !c->train.progress || r->quiet);
        double t0 = qat_clock_seconds(), loss_sum = 0, pen_sum = 0, sq_sum = 0, kd_sum = 0;
        if (r->teacher)
            qat_teacher_take_seconds(r->teacher);
        long correct = 0, seen = 0;
        uint32_t N = r->train->n;
        for (uint32_t b = 0; b < N; b += (uint32_t)B) {
            int n = (int)(N - b < (uint32_t)B ? N - b : (uint32_t)B);
            /* masks change before the step's forward; the log shows each update */
            if (qat_pruner_update(r->pruner, r->meta.step) && !r->quiet) {
                qat_progress_end(&pr);
                qat_pruner_print_update(r->pruner, stdout, r->meta.step, r->steps_per_epoch);
                fflush(stdout);
            }
            if (qat_clusterer_update(r->clusterer, r->meta.step, qat_pruner_mask(r->pruner)) &&
                !r->quiet) {
                qat_progress_end(&pr);
                qat_clusterer_print(r->clusterer, stdout, r->meta.step);
                fflush(stdout);
            }
            double ls, pen = 0, sq = 0, kd = 0;
            int ok, got;
            qat_status st = qat_run_step(r, b, n, e, &got, &ls, &kd, &pen, &ok, &sq, err);
            if (st != QAT_OK) {
                qat_progress_end(&pr);
                return st;
            }
            loss_sum += ls;
            pen_sum += pen * n;
            kd_sum += kd;
            correct += ok;
            sq_sum += sq;
            seen += got;
            qat_progress_update(&pr, e + 1, c->train.epochs, seen,
                                (long)N * qat_dp_local_shards(r->dp) / qat_dp_ranks(r->dp),
                                loss_sum / seen,
                                r->regression ? sq_sum / seen : (double)correct / seen);
        }
        qat_progress_end(&pr);
        if (r->dp) { /* every rank's share of the epoch's sums (the penalty is everyone's) */
            double v[5] = {loss_sum, kd_sum, sq_sum, (double)correct, (double)seen};
            qat_dp_sum(r->dp, v, 5);
            loss_sum = v[0], kd_sum = v[1], sq_sum = v[2], correct = (long)v[3], seen = (long)v[4];
        }
        double secs = qat_clock_seconds() - t0;
        /* the teacher's share of the epoch, per optimizer step */
        double teacher_ms = r->teacher ? 1e3 * qat_teacher_take_seconds(r->teacher) /
                                             (double)r->steps_per_epoch
                                       : 0.0;
        r->epoch_seconds[e] = secs;
        qat_eval ev;
        qat_status st = qat_dp_evaluate(r->dp, r->model, r->tape, r->eval, &ev, err);
        if (st == QAT_OK && c->distributed.verify) {
            size_t ntied;
            float *tied = qat_clusterer_tied(r->clusterer, &ntied);
            int drift = r->perturb_rank > 0 && r->perturb_rank == qat_dp_rank(r->dp);
            st = qat_dp_verify(r->dp, r->model, tied, ntied, drift << r->perturb_cluster, e + 1,
                               err);
        }
        if (st != QAT_OK)
            return st;
        float lr = qat_lr_at(&r->sched, r->meta.step > 0 ? r->meta.step - 1 : 0);
        /* classification: train accuracy and eval accuracy; regression: train
         * MSE and eval MSE, MAE, R^2 */
        double train_metric = r->regression ? sq_sum / seen : (double)correct / seen;
        fprintf(r->metrics, "%d,%.6f,%.6f", e + 1, loss_sum / seen, train_metric);
        if (r->regression)
            fprintf(r->metrics, ",%.8g,%.8g,%.6f", ev.reg.mse, ev.reg.mae, ev.reg.r2);
        else
            fprintf(r->metrics, ",%.6f", ev.accuracy);
        fprintf(r->metrics, ",%.8g,%.3f,%.1f", (double)lr, secs, seen / secs);
        qat_prune_stats sp;
        if (r->pruner)
            qat_prune_stats_float(r->model, &sp);
        if (r->regularize)
            fprintf(r->metrics, ",%.8g", pen_sum / seen);
        if (r->pruner)
            fprintf(r->metrics, ",%.6f", sp.sparsity);
        if (r->teacher)
            fprintf(r->metrics, ",%.6f,%.3f", kd_sum / seen, teacher_ms);
        fputc('\n', r->metrics);
        fflush(r->metrics);
        if (!r->quiet) {
            const char *ev_name = r->data.has_val ? "val" : "test";
            if (r->regression)
                printf("epoch %d/%d  loss %.4g  train_mse %.4g  %s_mse %.4g  %s_mae %.4g  "
                       "%s_r2 %.4f  lr %.3g  %.1fs  %.0f img/s",
                       e + 1, c->train.epochs, loss_sum / seen, train_metric, ev_name,
                       ev.reg.mse, ev_name, ev.reg.mae, ev_name, ev.reg.r2, (double)lr, secs,
                       seen / secs);
            else
                printf("epoch %d/%d  loss %.4f  train_acc %.4f  %s_acc %.4f  lr %.3g  %.1fs  "
                       "%.0f img/s",
                       e + 1, c->train.epochs, loss_sum / seen, train_metric, ev_name,
                       ev.accuracy, (double)lr, secs, seen / secs);
            if (r->regularize)
                printf("  penalty %.4g", pen_sum / seen);
            if (r->pruner)
                printf("  sparsity %.4f", sp.sparsity);
            if (r->teacher)
                printf("  distill %.4f  teacher %.2f ms/step", kd_sum / seen, teacher_ms);
            printf("\n");
        }
        fflush(stdout);
        r->meta.epoch = e + 1;
        int every = c->train.checkpoint_every;
        if ((every > 0 && (e + 1) % every == 0) || e + 1 == c->train.epochs) {
            st = save_checkpoint(r, err);
            if (st != QAT_OK)
                return st;
        }
        if (stop_after > 0 && e + 1 == stop_after && e + 1 < c->train.epochs) {
            st = save_checkpoint(r, err);
            return st != QAT_OK ? st : QAT_EINTERNAL; /* "interrupted" */
        }
    }
    return QAT_OK;
}

/* metrics.csv's header: the eval split is val with [data] val_fraction,
 * else test; + ",penalty" with regularisation, ",sparsity" with pruning,
 * ",distill_loss,teacher_ms_per_step" with a [distill] teacher */
static void metrics_header(const run *r, FILE *f)
{
    const char *ev = r->data.has_val ? "val" : "test";
    if (r->regression)
        fprintf(f, "epoch,train_loss,train_mse,%s_mse,%s_mae,%s_r2", ev, ev, ev);
    else
        fprintf(f, "epoch,train_loss,train_accuracy,%s_accuracy", ev);
    fprintf(f, ",lr,epoch_seconds,images_per_second%s%s%s\n", r->regularize ? ",penalty" : "",
            r->pruner ? ",sparsity" : "", r->teacher ? ",distill_loss,teacher_ms_per_step" : "");
}

/* Column of epoch_seconds in a metrics.csv row (by the header the run
 * writes: the task and val_fraction move it). */
static int seconds_column(const run *r)
{
    return r->regression ? 7 : 5;
}

/* Continues a run: state from the checkpoint; metrics rows of epochs the
 * checkpoint does not cover (the run died after writing them) are dropped,
 * and the kept rows give back the earlier epochs' timings. */
static qat_status restore(run *r, qat_error *err)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/checkpoint.h5", r->dir);
    qat_status st = qat_checkpoint_restore(path, r->model, r->opt, &r->meta, err);
    if (st == QAT_OK && (st = qat_pruner_check_state(r->pruner, err)) != QAT_OK)
        qat_error_prefix(err, "%s", path);
    if (st == QAT_OK && r->meta.cluster_restored &&
        (st = qat_clusterer_restored(r->clusterer, qat_pruner_mask(r->pruner), err)) != QAT_OK)
        qat_error_prefix(err, "%s", path);
    if (st != QAT_OK)
        return st;
    if (r->meta.epoch > r->cfg->train.epochs)
        return qat_fail(err, QAT_EINVAL, "%s: holds %d epochs but the config asks for %d", path,
                        r->meta.epoch, r->cfg->train.epochs);
    snprintf(path, sizeof path, "%s/metrics.csv", r->dir);
    FILE *f = fopen(path, "r");
    char *kept = NULL;
    size_t klen = 0;
    FILE *k = open_memstream(&kept, &klen);
    char line[1024];
    int col = seconds_column(r);
    while (f && k && fgets(line, sizeof line, f)) {
        /* rows of finished epochs: an epoch number, then numbers */
        char *end;
        long e = strtol(line, &end, 10);
        if (end == line || *end != ',' || e < 1 || e > r->meta.epoch)
            continue;
        const char *p = line;
        for (int i = 0; i < col && p; i++)
            p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL;
        double secs = p ? strtod(p, &end) : 0.0;
        if (!p || end == p)
            continue;
        r->epoch_seconds[e - 1] = secs;
        fputs(line, k);
    }
    if (f)
        fclose(f);
    if (k)
        fclose(k);
    r->resumed_rows = kept;
    return QAT_OK;
}

/* Data parallelism from the first step: a checkpoint is resumed by the
 * rank count that wrote it (the shards, and so the run, depend on it);
 * every rank starts from rank 0's model. */
static qat_status dp_start(run *r, qat_error *err)
{
    int ranks = qat_dp_ranks(r->dp), world = r->dist ? qat_dist_size(r->dist) : 1;
    if (world > 1 && r->cfg->train.mode == QAT_MODE_PTQ)
        return qat_fail(err, QAT_EINVAL,
                        "%s: [train] mode = ptq trains nothing to spread over %d ranks; run it "
                        "without mpirun",
                        r->cfg->path, world);
    if (r->resume && r->meta.ranks != world)
        return qat_fail(err, QAT_EINVAL,
                        "%s/checkpoint.h5 was written by a run over %d rank%s; resume it with "
                        "mpirun -np %d, not %d",
                        r->dir, r->meta.ranks, r->meta.ranks == 1 ? "" : "s", r->meta.ranks,
                        world);
    r->meta.ranks = world;
    qat_dp_broadcast_model(r->dp, r->model);
    size_t lo, hi;
    if (r->dp && !r->quiet)
        printf("qat-train: data parallel over %d %sranks, %d-bit gradients (%zu bytes per step "
               "per rank)%s\n",
               ranks, r->dist && qat_dist_size(r->dist) > 1 ? "" : "simulated ",
               qat_grad_bits_value(r->cfg->distributed.gradient_bits),
               qat_dp_bytes_per_step(r->dp),
               qat_dp_part(r->dp, &lo, &hi) ? ", optimizer sharded over the ranks" : "");
    return QAT_OK;
}

static qat_status open_metrics(run *r, qat_error *err)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/metrics.csv", r->dir);
    if (!qat_dp_leader(r->dp) || (r->dist && qat_dist_rank(r->dist) != 0))
        snprintf(path, sizeof path, "/dev/null"); /* rank 0 writes the rows */
    r->metrics = fopen(path, "w");
    if (!r->metrics)
        return qat_fail(err, QAT_EIO, "%s: cannot write: %s", path, strerror(errno));
    metrics_header(r, r->metrics);
    if (r->resumed_rows)
        fputs(r->resumed_rows, r->metrics);
    fflush(r->metrics);
    return QAT_OK;
}

static int online_cores(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 256 ? 256 : (int)n;
}

qat_status qat_train(const qat_config *cfg, const qat_train_opts *opts, qat_trained **out,
                     qat_error *err)
{
    *out = NULL;
    run *r = calloc(1, sizeof *r);
    if (!r)
        return qat_fail(err, QAT_ENOMEM, "out of memory");
    r->cfg = cfg;
    r->quiet = opts && opts->quiet;
    r->resume = opts && opts->resume;
    r->dist = opts ? opts->dist : NULL;
    r->perturb_rank = opts ? opts->perturb_rank : 0;
    r->perturb_cluster = opts ? opts->perturb_cluster : 0;
    /* ranks other than 0 train in silence: rank 0 speaks and writes for all */
    if (r->dist && qat_dist_rank(r->dist) != 0)
        r->quiet = 1;
    int ptq = cfg->train.mode == QAT_MODE_PTQ;
    if (ptq && r->resume) {
        free(r);
        return qat_fail(err, QAT_EINVAL,
                        "%s: [train] mode = ptq: a post-training quantization run trains "
                        "nothing, so there is nothing to resume; run it again",
                        cfg->path);
    }
    r->threads = cfg->train.threads ? cfg->train.threads : online_cores();
    if (opts && opts->out_dir)
        snprintf(r->dir, sizeof r->dir, "%s", opts->out_dir);
    else
        snprintf(r->dir, sizeof r->dir, "runs/%s", cfg->name);
    qat_cpu_flush_denormals();
    qat_blas_init();
    qat_status st = qat_mkdir_p(r->dir, err);
    /* the data resolves what the config leaves to it (input shape and type):
     * from here on the run's configuration is r->rc */
    if (st == QAT_OK && (st = qat_run_data_load(cfg, &r->rc, &r->data, err)) == QAT_OK) {
        r->cfg = cfg = &r->rc;
        r->train = r->data.train;
        r->eval = r->data.has_val ? &r->data.val : &r->data.test;
        r->regression = cfg->model.task == QAT_TASK_REGRESSION;
        r->aug = qat_run_augment(cfg);
    }
    if (st == QAT_OK && !(r->dist && qat_dist_rank(r->dist) != 0)) {
        char path[4200];
        snprintf(path, sizeof path, "%s/config.ini", r->dir);
        qat_atomic at;
        FILE *f;
        st = qat_atomic_fopen(&at, path, &f, err);
        if (st == QAT_OK) {
            fprintf(f, "# resolved from %s (every key, defaults included)\n", cfg->path);
            qat_config_write(f, cfg);
            st = qat_atomic_fclose(&at, f, err);
        }
    }
    if (st == QAT_OK)
        st = setup(r, err);
    if (st == QAT_OK && opts && opts->resume)
        st = restore(r, err);
    if (st == QAT_OK)
        st = dp_start(r, err);
    if (st == QAT_OK && !ptq)
        st = open_metrics(r, err);
    if (st == QAT_OK && !ptq && !r->quiet) {
        if (r->meta.epoch > 0)
            printf("qat-train: resuming %s after epoch %d (step %ld)\n", r->dir, r->meta.epoch,
                   r->meta.step);
        printf("qat-train: %s -> %s\n  %u train / ", cfg->path, r->dir, r->train->n);
        if (r->data.has_val)
            printf("%u val / ", r->data.val.n);
        printf("%u test %s, %d threads, %s, quant %s (W%d A%d)\n", r->data.test.n,
               qat_dataset_type(r->train) == QAT_DATA_F32 ? "examples" : "images", r->threads,
               qat_optim_kind_name((qat_optim_kind)cfg->train.optimizer),
               cfg->quant.enabled ? "on" : "off", cfg->quant.weight_bits,
               cfg->quant.activation_bits);
        qat_teacher_print(r->teacher, stdout);
        fflush(stdout);
    }
    if (st == QAT_OK && !ptq)
        st = run_epochs(r, opts ? opts->stop_after : 0, err);
    if (st == QAT_EINTERNAL && opts && opts->stop_after == r->meta.epoch) {
        teardown(r);
        free(r);
        return qat_fail(err, QAT_EINTERNAL, "stopped after epoch %d as asked", opts->stop_after);
    }
    if (st != QAT_OK) {
        teardown(r);
        free(r);
        return st;
    }
    /* what follows training runs on rank 0 alone: nothing may wait for the others */
    qat_tape_set_allreduce(r->tape, NULL, NULL, 0);
    r->pub = (qat_trained){.cfg = cfg, .dir = r->dir, .threads = r->threads,
                           .model = r->model, .tape = r->tape, .train = r->train,
                           .test = &r->data.test, .val = r->data.has_val ? &r->data.val : NULL,
                           .epoch_seconds = r->epoch_seconds,
                           .epochs = ptq ? 0 : cfg->train.epochs,
                           .leader = qat_dp_leader(r->dp),
                           .ranks = qat_dp_ranks(r->dp),
                           .gradient_bytes_per_step = r->dp ? qat_dp_bytes_per_step(r->dp) : 0};
    *out = &r->pub;
    return QAT_OK;
}

void qat_train_end(qat_trained *t)
{
    if (!t)
        return;
    run *r = (run *)t;
    teardown(r);
    free(r);
}
