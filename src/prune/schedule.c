/* Sparsity schedules: when masks are recomputed and to which sparsity. Pure
 * functions of the optimizer step, so a resumed run replays them exactly. */
#include <math.h>

#include "qat/prune.h"

qat_status qat_prune_schedule_resolve(const qat_config *cfg, long steps_per_epoch,
                                      long total_steps, qat_prune_schedule *out, qat_error *err)
{
    const qat_prune_cfg *p = &cfg->prune;
    int epochs = p->unit == QAT_PRUNE_UNIT_EPOCH;
    double mul = epochs ? (double)steps_per_epoch : 1.0;
    out->kind = p->schedule;
    out->start = llround((double)p->start * mul);
    out->end = p->schedule == QAT_PRUNE_ONE_SHOT ? out->start : llround((double)p->end * mul);
    out->frequency = p->frequency > 0 ? p->frequency : 1;
    const char *key = p->schedule == QAT_PRUNE_ONE_SHOT ? "start" : "end";
    float val = p->schedule == QAT_PRUNE_ONE_SHOT ? p->start : p->end;
    if (out->end >= total_steps)
        return qat_fail(err, QAT_EINVAL,
                        "%s: [prune] %s = %g %s is optimizer step %ld, but training runs %ld "
                        "steps (%ld per epoch): the last mask update must come before the end",
                        cfg->path, key, (double)val, epochs ? "epochs" : "steps", out->end,
                        total_steps, steps_per_epoch);
    if (p->schedule != QAT_PRUNE_ONE_SHOT && out->end <= out->start)
        return qat_fail(err, QAT_EINVAL,
                        "%s: [prune] start = %g and end = %g epochs both fall on optimizer step "
                        "%ld (%ld steps per epoch): the ramp needs end after start",
                        cfg->path, (double)p->start, (double)p->end, out->start,
                        steps_per_epoch);
    return QAT_OK;
}

int qat_prune_is_update(const qat_prune_schedule *s, long step)
{
    if (step < s->start || step > s->end)
        return 0;
    if (s->kind == QAT_PRUNE_ONE_SHOT)
        return step == s->start;
    return (step - s->start) % s->frequency == 0 || step == s->end;
}

double qat_prune_sparsity_at(const qat_prune_schedule *s, double initial, double target,
                             long step)
{
    if (step < s->start)
        return 0.0;
    if (s->kind == QAT_PRUNE_ONE_SHOT || step >= s->end)
        return target;
    /* masks hold what the last update set */
    long u = s->start + (step - s->start) / s->frequency * s->frequency;
    double r = 1.0 - (double)(u - s->start) / (double)(s->end - s->start);
    return target + (initial - target) * r * r * r;
}

size_t qat_prune_count(double s, size_t n)
{
    if (n == 0 || !(s > 0.0))
        return 0;
    size_t k = (size_t)floor(s * (double)n + 0.5);
    return k >= n ? n - 1 : k;
}
