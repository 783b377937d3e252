/* Knowledge distillation ([distill]): a teacher checkpoint, rebuilt from the
 * config stored inside it (so it may be any architecture), runs forward
 * only -- eval mode, no gradients, its own tape on the run's thread team --
 * on the student's batch, and the student's loss becomes
 * (1 - alpha) task + alpha distill. The teacher's logits are constants of
 * the step: nothing flows back into the teacher. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qat/clock.h"
#include "qat/ops.h"
#include "qat/train.h"

struct qat_teacher {
    qat_model *model;
    qat_tape *tape;
    qat_distill_cfg cfg;
    float *logits; /* [batch, classes]: the last forward's, kept for the loss */
    int batch, classes;
    double seconds; /* forward time since the last qat_teacher_take_seconds */
};

qat_status qat_teacher_create(const qat_config *student, qat_team *team, int batch,
                              int inputs_float, qat_teacher **out, qat_error *err)
{
    *out = NULL;
    const qat_distill_cfg *dc = &student->distill;
    /* mode = ptq trains nothing, so it has nothing to distill into */
    if (!dc->teacher[0] || student->train.mode != QAT_MODE_QAT)
        return QAT_OK;
    qat_teacher *t = calloc(1, sizeof *t);
    if (!t)
        return qat_fail(err, QAT_ENOMEM, "out of memory");
    t->cfg = *dc;
    t->batch = batch;
    qat_status st = qat_checkpoint_load_model(dc->teacher, &t->model, err);
    if (st != QAT_OK) {
        free(t);
        return qat_error_prefix(err, "%s: [distill] teacher = %s", student->path, dc->teacher);
    }
    /* the teacher reads the student's images and scores the same classes */
    const qat_model_cfg *tm = &qat_model_config(t->model)->model, *sm = &student->model;
    if (tm->input_height != sm->input_height || tm->input_width != sm->input_width ||
        tm->input_channels != sm->input_channels)
        st = qat_fail(err, QAT_EINVAL,
                      "%s: [distill] teacher = %s: the teacher takes %dx%dx%d images ([model] "
                      "input_height/input_width/input_channels) but the student %dx%dx%d",
                      student->path, dc->teacher, tm->input_height, tm->input_width,
                      tm->input_channels, sm->input_height, sm->input_width, sm->input_channels);
    else if (tm->num_classes != sm->num_classes)
        st = qat_fail(err, QAT_EINVAL,
                      "%s: [distill] teacher = %s: the teacher scores %d classes ([model] "
                      "num_classes) but the student %d",
                      student->path, dc->teacher, tm->num_classes, sm->num_classes);
    else if (qat_model_input_info(t->model)->is_float != inputs_float)
        st = qat_fail(err, QAT_EINVAL,
                      "%s: [distill] teacher = %s: the teacher takes %s inputs but the "
                      "student's data are %s",
                      student->path, dc->teacher,
                      qat_model_input_info(t->model)->is_float ? "float32" : "uint8",
                      inputs_float ? "float32" : "uint8");
    t->classes = sm->num_classes;
    if (st == QAT_OK)
        st = qat_tape_create(team, &t->tape, err);
    if (st == QAT_OK &&
        !(t->logits = malloc((size_t)batch * (size_t)t->classes * sizeof *t->logits)))
        st = qat_fail(err, QAT_ENOMEM, "out of memory for the teacher's logits");
    if (st != QAT_OK) {
        qat_teacher_destroy(t);
        return st;
    }
    qat_tape_set_training(t->tape, 0);
    qat_tape_set_grad_enabled(t->tape, 0);
    *out = t;
    return QAT_OK;
}

void qat_teacher_destroy(qat_teacher *t)
{
    if (!t)
        return;
    qat_tape_destroy(t->tape);
    qat_model_destroy(t->model);
    free(t->logits);
    free(t);
}

const qat_config *qat_teacher_config(const qat_teacher *t) { return qat_model_config(t->model); }

void qat_teacher_print(const qat_teacher *t, FILE *f)
{
    if (!t)
        return;
    const qat_distill_cfg *d = &t->cfg;
    fprintf(f, "  distilling from %s (%d layers), loss %s, temperature %g, alpha %g\n",
            d->teacher, qat_teacher_config(t)->nlayers, qat_distill_loss_names[d->loss],
            (double)d->temperature, (double)d->alpha);
}

const float *qat_teacher_forward(qat_teacher *t, const void *inputs, int n)
{
    QAT_ASSERT(n >= 1 && n <= t->batch);
    double t0 = qat_clock_seconds();
    qat_tape_reset(t->tape);
    qat_tensor *z = qat_model_forward_taps(t->model, t->tape, inputs, n,
                                           qat_model_num_layers(t->model) - 1, NULL);
    memcpy(t->logits, z->data, (size_t)n * (size_t)t->classes * sizeof *t->logits);
    qat_tape_reset(t->tape);
    t->seconds += qat_clock_seconds() - t0;
    return t->logits;
}

qat_tensor *qat_teacher_loss(qat_teacher *t, qat_tape *tape, qat_tensor *task,
                             qat_tensor *logits, const void *inputs, int n, double *distill)
{
    const float *zt = qat_teacher_forward(t, inputs, n);
    qat_tensor *d = t->cfg.loss == QAT_DISTILL_MSE
                        ? qat_op_mse(tape, logits, zt)
                        : qat_op_distill_kl(tape, logits, zt, t->cfg.temperature);
    *distill = d->data[0];
    return qat_op_loss_blend(tape, task, d, t->cfg.alpha);
}

double qat_teacher_take_seconds(qat_teacher *t)
{
    double s = t->seconds;
    t->seconds = 0.0;
    return s;
}
