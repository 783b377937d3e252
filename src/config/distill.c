/* [distill]: knowledge distillation from a teacher checkpoint. Its own
 * file so config.c only lists the section. */
#include <stddef.h>
#include <stdio.h>

#include "config_internal.h"
#include "qat/ini.h"

#define DI(f) offsetof(qat_distill_cfg, f)
const qat_cfg_key qat_distill_keys[] = {
    {"teacher", QAT_CFG_STRING, DI(teacher), "", 0, 0, 0, NULL, "checkpoint.h5 of the teacher (any architecture with the same input shape and classes; its config is stored inside); empty: no distillation"},
    {"temperature", QAT_CFG_FLOAT, DI(temperature), "4", 0, 100, QAT_CFG_MIN_EXCL, NULL, "kl: both sides' logits are divided by T before the softmax; the term is scaled by T^2"},
    {"alpha", QAT_CFG_FLOAT, DI(alpha), "0.5", 0, 1, 0, NULL, "loss = (1 - alpha) task + alpha distillation"},
    {"loss", QAT_CFG_ENUM, DI(loss), "kl", 0, 0, 0, qat_distill_loss_names, "kl: the KL divergence of the student's softened probabilities from the teacher's, times T^2; mse: the mean squared difference of the logits"},
};
#undef DI
const int qat_distill_nkeys = sizeof qat_distill_keys / sizeof qat_distill_keys[0];

/* kl compares softmax distributions over classes; a regression student's
 * outputs are values, not logits, so the term would be meaningless (and
 * would train quietly). Points at the loss line, or at the teacher's when
 * kl is the default. */
qat_status qat_config_check_distill(qat_ini *ini, const qat_config *cfg, qat_error *err)
{
    if (!cfg->distill.teacher[0] || cfg->model.task != QAT_TASK_REGRESSION ||
        cfg->distill.loss != QAT_DISTILL_KL)
        return QAT_OK;
    char where[600];
    qat_ini_section *s = qat_ini_find(ini, "distill");
    qat_config_where_key(ini, "distill", s && qat_ini_section_get(s, "loss") ? "loss" : "teacher",
                         where, sizeof where);
    return qat_fail(err, QAT_EINVAL,
                    "%s: [distill] loss = kl compares class probabilities, but [model] task = "
                    "regression: a regression student distills with loss = mse",
                    where);
}

void qat_config_write_distill(FILE *f, const qat_config *cfg)
{
    /* always written, defaults included (unlike [distributed]): so it was
     * before the section had a file of its own, and config.ini must not change */
    fprintf(f, "\n[distill]\n");
    qat_cfg_write(f, qat_distill_keys, qat_distill_nkeys, &cfg->distill);
}
