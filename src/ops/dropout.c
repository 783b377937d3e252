/* Inverted dropout: in training each element is kept with probability 1 - p
 * and scaled by 1 / (1 - p), so evaluation is the identity. Forward and
 * backward side by side.
 *
 * The mask is drawn in fixed chunks of CHUNK elements, chunk i from its own
 * PCG32 stream seeded by (one 64-bit draw from qat_tape_rng, i). The op thus
 * takes two draws from the tape's generator whatever the tensor size, the
 * mask depends only on that generator's state -- not on the thread count --
 * and chunks can be drawn in parallel. */
#include <string.h>

#include "qat/ops.h"
#include "qat/team.h"

#define CHUNK 4096

typedef struct {
    uint8_t *mask; /* 1 = kept */
    float scale;
} dropout_saved;

typedef struct {
    const float *x, *dy;
    float *y, *dx;
    uint8_t *mask;
    size_t n;
    uint64_t seed;
    uint64_t threshold; /* keep iff a u32 draw >= threshold: prob. 1 - p */
    float scale;
} dropout_job;

static void dropout_fwd(void *vctx, size_t b, size_t e)
{
    const dropout_job *j = vctx;
    for (size_t ch = b; ch < e; ch++) {
        qat_rng r;
        qat_rng_seed(&r, j->seed, ch);
        size_t end = (ch + 1) * CHUNK < j->n ? (ch + 1) * CHUNK : j->n;
        for (size_t i = ch * CHUNK; i < end; i++) {
            uint8_t keep = (uint64_t)qat_rng_u32(&r) >= j->threshold;
            j->mask[i] = keep;
            j->y[i] = keep ? j->x[i] * j->scale : 0.0f;
        }
    }
}

static void dropout_bwd(void *vctx, size_t b, size_t e)
{
    const dropout_job *j = vctx;
    for (size_t i = b; i < e; i++)
        j->dx[i] += j->mask[i] ? j->dy[i] * j->scale : 0.0f;
}

static void dropout_backward(qat_tape *t, const qat_node *nd)
{
    qat_tensor *x = nd->in[0];
    if (!qat_needs_grad(x))
        return;
    const dropout_saved *s = nd->saved;
    dropout_job j = {.dy = nd->out->grad, .dx = qat_tape_grad(t, x), .mask = s->mask,
                     .scale = s->scale};
    qat_team_parallel_for(qat_tape_team(t), x->numel, QAT_ELEMWISE_GRAIN, dropout_bwd, &j);
}

qat_tensor *qat_op_dropout(qat_tape *t, qat_tensor *x, float p)
{
    QAT_ASSERT(p >= 0.0f && p <= 1.0f);
    if (!qat_tape_training(t) || p == 0.0f)
        return x; /* identity: the same tensor, so gradients pass straight through */
    qat_rng *rng = qat_tape_rng(t);
    uint64_t seed = (uint64_t)qat_rng_u32(rng) << 32;
    seed |= qat_rng_u32(rng);
    /* data-parallel ranks: the generator stays in step on every rank (the
     * checkpoint keeps one state), each rank's examples get their own masks */
    seed ^= (uint64_t)qat_tape_stream(t) * 0x9E3779B97F4A7C15ull;
    qat_tensor *y = qat_tape_tensor(t, x->ndim, x->shape);
    dropout_job j = {.x = x->data, .y = y->data, .n = x->numel, .seed = seed,
                     .threshold = (uint64_t)((double)p * 4294967296.0),
                     .scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f};
    j.mask = qat_tape_alloc(t, x->numel);
    size_t chunks = (x->numel + CHUNK - 1) / CHUNK;
    qat_team_parallel_for(qat_tape_team(t), chunks, QAT_ELEMWISE_GRAIN / CHUNK, dropout_fwd, &j);
    dropout_saved *s = qat_tape_alloc(t, sizeof *s);
    s->mask = j.mask;
    s->scale = j.scale;
    qat_tape_record(t, dropout_backward, y, s, 1, &x);
    return y;
}
