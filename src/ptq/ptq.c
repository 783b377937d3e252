/* Post-training quantization, end to end: the calibration images, the
 * observers, then the compensations [ptq] turns on. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ptq_internal.h"
#include "qat/clock.h"

/* Learned scales (LSQ) initialise from the observers at the first training
 * step; re-estimating BN runs training steps, which must not count. */
static int bn_reestimate(ptq_ctx *c)
{
    int nl = qat_model_num_layers(c->m), ready[QAT_MAX_LAYERS];
    for (int i = 0; i < nl; i++)
        ready[i] = qat_model_layer(c->m, i)->q.lsq.initialized;
    int n = ptq_bn_reestimate(c);
    for (int i = 0; i < nl; i++)
        qat_model_layer(c->m, i)->q.lsq.initialized = ready[i];
    return n;
}

qat_status qat_ptq(qat_trained *t, FILE *log, qat_ptq_report *rep, qat_error *err)
{
    const qat_config *cfg = t->cfg;
    const qat_ptq_cfg *pc = &cfg->ptq;
    memset(rep, 0, sizeof *rep);
    if ((uint32_t)pc->calibration_images > t->train->n)
        return qat_fail(err, QAT_EINVAL,
                        "%s: [ptq] calibration_images = %d, but the training set ([data] dir = "
                        "%s) holds %u images",
                        cfg->path, pc->calibration_images, cfg->data.dir, t->train->n);
    /* the inputs as stored: uint8 pixels or float32 features */
    size_t esz = t->train->features ? sizeof(float) : 1;
    ptq_ctx c = {.m = t->model, .t = t->tape, .cfg = cfg, .log = log,
                 .isz = qat_dataset_image_size(t->train) * esz, .n = pc->calibration_images};
    uint32_t *order = malloc((size_t)t->train->n * sizeof *order);
    uint8_t *images = malloc((size_t)c.n * c.isz + 1);
    if (!order || !images) {
        free(order);
        free(images);
        return qat_fail(err, QAT_ENOMEM, "out of memory for %d calibration images", c.n);
    }
    /* stream 3: 1 and 2 are training's shuffle and dropout */
    qat_rng rng;
    qat_rng_seed(&rng, (uint64_t)cfg->train.seed, 3);
    qat_dataset_order(t->train->n, 1, &rng, order);
    qat_dataset_batch(t->train, order, 0, c.n, images, NULL, NULL);
    free(order);
    c.images = images;
    rep->calibration_images = c.n;
    for (int i = 0; i < qat_model_num_layers(c.m); i++) {
        qat_layer *l = qat_model_layer(c.m, i);
        if (!ptq_is_compute(l))
            continue;
        qat_ptq_layer_report *lr = &rep->layers[rep->nlayers++];
        lr->name = l->cfg->name;
        lr->round_error_nearest = lr->round_error_learned = NAN;
        lr->bias_error_before = lr->bias_error_after = NAN;
    }

    double t0 = qat_clock_seconds();
    qat_model_set_quant_active(c.m, 1);
    ptq_reset_observers(&c);
    ptq_calibrate(&c);
    rep->calibration_seconds = qat_clock_seconds() - t0;
    if (log)
        fprintf(log, "ptq: observers calibrated on %d training images in %.2fs\n", c.n,
                rep->calibration_seconds);
    double t1 = qat_clock_seconds();
    if (pc->bn_reestimate && (rep->bn_layers_reestimated = bn_reestimate(&c)) > 0) {
        /* the folded weights moved: the ranges they give must be seen again */
        ptq_reset_observers(&c);
        ptq_calibrate(&c);
        if (log)
            fprintf(log, "ptq: batchnorm statistics of %d layers re-estimated\n",
                    rep->bn_layers_reestimated);
    } else if (pc->bn_reestimate && log) {
        fprintf(log, "ptq: bn_reestimate: the model has no batchnorm layer\n");
    }
    qat_status st = qat_model_refresh_qparams(c.m, err);
    if (st == QAT_OK && (pc->adaround || pc->bias_correction))
        st = ptq_compensate(&c, rep, err);
    rep->compensation_seconds = qat_clock_seconds() - t1;
    if (st == QAT_OK && log && (pc->adaround || pc->bias_correction || pc->bn_reestimate))
        fprintf(log, "ptq: compensation took %.2fs\n", rep->compensation_seconds);
    free(images);
    if (st != QAT_OK)
        return qat_error_prefix(err, "%s: post-training quantization", cfg->path);
    return QAT_OK;
}
