/* Learning-rate schedules: constant, step decay and cosine annealing, each
 * behind an optional linear warmup. Evaluated in double and rounded once, so
 * the value at a step does not depend on how it was reached (a resumed run
 * sees the same rates). */
#include <math.h>

#include "qat/optim.h"

qat_status qat_lr_schedule_check(const qat_lr_schedule *s, qat_error *err)
{
    if ((int)s->kind < 0 || (int)s->kind >= qat_enum_count(qat_lr_kind_names))
        return qat_fail(err, QAT_EINVAL,
                        "lr schedule kind %d is unknown (expected constant, step or cosine)",
                        (int)s->kind);
    const char *k = qat_lr_kind_name(s->kind);
    /* NaN fails every comparison, so these reject it too. */
    if (!(s->base_lr > 0.0f && isfinite(s->base_lr)))
        return qat_fail(err, QAT_EINVAL, "lr schedule %s: base_lr must be finite and > 0, got %g", k,
                        (double)s->base_lr);
    if (s->warmup_steps < 0)
        return qat_fail(err, QAT_EINVAL, "lr schedule %s: warmup_steps must be >= 0, got %ld", k,
                        s->warmup_steps);
    if (s->kind == QAT_LR_STEP) {
        if (s->step_size < 1)
            return qat_fail(err, QAT_EINVAL, "lr schedule step: step_size must be >= 1, got %ld",
                            s->step_size);
        if (!(s->gamma > 0.0f && s->gamma <= 1.0f))
            return qat_fail(err, QAT_EINVAL, "lr schedule step: gamma must be in (0, 1], got %g",
                            (double)s->gamma);
    }
    if (s->kind == QAT_LR_COSINE) {
        if (s->total_steps < 1)
            return qat_fail(err, QAT_EINVAL, "lr schedule cosine: total_steps must be >= 1, got %ld",
                            s->total_steps);
        if (!(s->min_lr >= 0.0f && s->min_lr <= s->base_lr))
            return qat_fail(err, QAT_EINVAL,
                            "lr schedule cosine: min_lr must be in [0, base_lr = %g], got %g",
                            (double)s->base_lr, (double)s->min_lr);
    }
    return QAT_OK;
}

float qat_lr_at(const qat_lr_schedule *s, long step)
{
    const double base = s->base_lr;
    if (step < 0)
        step = 0;
    if (step < s->warmup_steps)
        return (float)(base * (double)(step + 1) / (double)s->warmup_steps);
    long t = step - s->warmup_steps;
    switch (s->kind) {
    case QAT_LR_CONSTANT:
        return s->base_lr;
    case QAT_LR_STEP:
        QAT_ASSERT(s->step_size > 0);
        return (float)(base * pow((double)s->gamma, (double)(t / s->step_size)));
    case QAT_LR_COSINE:
        QAT_ASSERT(s->total_steps > 0);
        if (t >= s->total_steps)
            return s->min_lr;
        {
            const double lo = s->min_lr, T = (double)s->total_steps;
            return (float)(lo + (base - lo) * 0.5 * (1.0 + cos(M_PI * (double)t / T)));
        }
    }
    QAT_ASSERT(!"unknown lr schedule kind");
    return 0.0f;
}
