/* The optimizer family over flat float buffers: SGD, momentum, Nesterov,
 * Adam, AdamW, RMSprop, following PyTorch's update rules so results can be
 * compared with it. All state is one buffer allocated at create time; a step
 * never allocates. Each update is an elementwise kernel over one run of
 * parameters that share a weight-decay setting; no element reads another, so
 * a mask can be applied inside the same pass. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "qat/hot_clones.h"
#include "qat/optim.h"

/* The kernels run in AVX-512 / AVX2 clones of step_run (the baseline build
 * is SSE2); with contraction off every product and sum is rounded apart
 * as in the baseline loop, and sqrt and division are exact at any width,
 * so a clone changes the speed, not the bits. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=off")
#endif

#define QAT_INLINE static inline __attribute__((always_inline))

struct qat_optim {
    qat_optim_config c;
    size_t n;
    int nruns;
    qat_param_seg *runs; /* segments sorted and merged where decay agrees */
    int nbuf;            /* state arrays of n floats each */
    float *state;        /* nbuf * n floats, 64-byte aligned, never NULL */
    long steps;
    qat_team *team;      /* NULL: the caller's thread alone */
};

/* ---- defaults ------------------------------------------------------------- */
void qat_optim_config_defaults(qat_optim_config *c, qat_optim_kind kind)
{
    memset(c, 0, sizeof *c);
    c->kind = kind;
    c->momentum = 0.9f;
    c->beta1 = 0.9f;
    c->beta2 = 0.999f;
    c->alpha = 0.99f;
    c->eps = 1e-8f;
    c->weight_decay = 0.0f;
}

/* ---- validation ----------------------------------------------------------- */
/* NaN fails every comparison, so these reject it too. */
static int in_unit(float x) { return x >= 0.0f && x < 1.0f; }

static qat_status check_config(const qat_optim_config *c, qat_error *err)
{
    if ((int)c->kind < 0 || (int)c->kind >= qat_enum_count(qat_optim_kind_names))
        return qat_fail(err, QAT_EINVAL,
                        "optimizer kind %d is unknown (expected sgd, momentum, nesterov, adam, "
                        "adamw or rmsprop)",
                        (int)c->kind);
    const char *k = qat_optim_kind_name(c->kind);
    if (!(c->weight_decay >= 0.0f && isfinite(c->weight_decay)))
        return qat_fail(err, QAT_EINVAL, "optimizer %s: weight_decay must be finite and >= 0, got %g",
                        k, (double)c->weight_decay);
    int uses_mom = c->kind == QAT_OPT_MOMENTUM || c->kind == QAT_OPT_NESTEROV ||
                   c->kind == QAT_OPT_RMSPROP;
    int adam = c->kind == QAT_OPT_ADAM || c->kind == QAT_OPT_ADAMW;
    if (uses_mom && !in_unit(c->momentum))
        return qat_fail(err, QAT_EINVAL, "optimizer %s: momentum must be in [0, 1), got %g", k,
                        (double)c->momentum);
    if (adam && !in_unit(c->beta1))
        return qat_fail(err, QAT_EINVAL, "optimizer %s: beta1 must be in [0, 1), got %g", k,
                        (double)c->beta1);
    if (adam && !in_unit(c->beta2))
        return qat_fail(err, QAT_EINVAL, "optimizer %s: beta2 must be in [0, 1), got %g", k,
                        (double)c->beta2);
    if (c->kind == QAT_OPT_RMSPROP && !in_unit(c->alpha))
        return qat_fail(err, QAT_EINVAL, "optimizer %s: alpha must be in [0, 1), got %g", k,
                        (double)c->alpha);
    if ((adam || c->kind == QAT_OPT_RMSPROP) && !(c->eps > 0.0f && isfinite(c->eps)))
        return qat_fail(err, QAT_EINVAL, "optimizer %s: eps must be finite and > 0, got %g", k,
                        (double)c->eps);
    return QAT_OK;
}

typedef struct {
    qat_param_seg s;
    int idx; /* position in the caller's array, for messages */
} seg_entry;

static int seg_cmp(const void *a, const void *b)
{
    const seg_entry *x = a, *y = b;
    if (x->s.offset != y->s.offset)
        return x->s.offset < y->s.offset ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Checks that segs tile [0, n) exactly (in any order), then writes the tiling
 * sorted, with neighbours of equal decay merged, to runs; *nruns gets its
 * length. tmp has room for nsegs entries. */
static qat_status tile_segments(const qat_param_seg *segs, int nsegs, size_t n, seg_entry *tmp,
                                qat_param_seg *runs, int *nruns, qat_error *err)
{
    for (int i = 0; i < nsegs; i++) {
        const qat_param_seg *s = &segs[i];
        size_t end;
        if (s->count == 0)
            return qat_fail(err, QAT_EINVAL, "optimizer: segment %d (offset %zu) is empty", i,
                            s->offset);
        if (qat_size_add(s->offset, s->count, &end) || end > n)
            return qat_fail(err, QAT_EINVAL,
                            "optimizer: segment %d [offset %zu, count %zu] ends past the %zu "
                            "parameters",
                            i, s->offset, s->count, n);
        if (s->decay != 0 && s->decay != 1)
            return qat_fail(err, QAT_EINVAL, "optimizer: segment %d decay must be 0 or 1, got %d", i,
                            s->decay);
        tmp[i].s = *s;
        tmp[i].idx = i;
    }
    qsort(tmp, (size_t)nsegs, sizeof *tmp, seg_cmp);
    size_t covered = 0;
    int nr = 0;
    for (int i = 0; i < nsegs; i++) {
        const qat_param_seg *s = &tmp[i].s;
        if (s->offset < covered)
            return qat_fail(err, QAT_EINVAL,
                            "optimizer: segment %d [offset %zu, count %zu] overlaps segment %d, "
                            "which ends at %zu",
                            tmp[i].idx, s->offset, s->count, tmp[i - 1].idx, covered);
        if (s->offset > covered)
            return qat_fail(err, QAT_EINVAL,
                            "optimizer: parameters [%zu, %zu) are in no segment", covered,
                            s->offset);
        if (nr > 0 && runs[nr - 1].decay == s->decay)
            runs[nr - 1].count += s->count;
        else
            runs[nr++] = *s;
        covered = s->offset + s->count;
    }
    if (covered != n)
        return qat_fail(err, QAT_EINVAL, "optimizer: parameters [%zu, %zu) are in no segment",
                        covered, n);
    *nruns = nr;
    return QAT_OK;
}

/* ---- create / destroy / state --------------------------------------------- */
static int state_arrays(const qat_optim_config *c)
{
    switch (c->kind) {
    case QAT_OPT_SGD: return 0;
    case QAT_OPT_MOMENTUM:
    case QAT_OPT_NESTEROV: return 1;                       /* v */
    case QAT_OPT_ADAM:
    case QAT_OPT_ADAMW: return 2;                          /* m, v */
    case QAT_OPT_RMSPROP: return c->momentum > 0 ? 2 : 1;  /* s, b */
    }
    return 0;
}

qat_status qat_optim_create(const qat_optim_config *c, size_t n, const qat_param_seg *segs,
                            int nsegs, qat_optim **out, qat_error *err)
{
    *out = NULL;
    qat_status st = check_config(c, err);
    if (st != QAT_OK)
        return st;
    if (n == 0)
        return qat_fail(err, QAT_EINVAL, "optimizer: no parameters to optimize (n = 0)");
    if (nsegs <= 0 || !segs)
        return qat_fail(err, QAT_EINVAL,
                        "optimizer: segments must cover the %zu parameters, got %d segments", n,
                        nsegs);

    qat_optim *o = calloc(1, sizeof *o);
    seg_entry *tmp = malloc((size_t)nsegs * sizeof *tmp);
    if (o)
        o->runs = malloc((size_t)nsegs * sizeof *o->runs);
    if (!o || !tmp || !o->runs) {
        free(tmp);
        qat_optim_destroy(o);
        return qat_fail(err, QAT_ENOMEM, "optimizer: out of memory for %d segments", nsegs);
    }
    st = tile_segments(segs, nsegs, n, tmp, o->runs, &o->nruns, err);
    free(tmp);
    if (st != QAT_OK) {
        qat_optim_destroy(o);
        return st;
    }

    o->c = *c;
    o->n = n;
    o->nbuf = state_arrays(c);
    size_t floats, bytes;
    if (qat_size_mul(n, (size_t)o->nbuf, &floats) || qat_size_mul(floats, sizeof(float), &bytes) ||
        qat_size_add(bytes, 63, &bytes)) {
        qat_optim_destroy(o);
        return qat_fail(err, QAT_ENOMEM, "optimizer: state for %zu parameters overflows", n);
    }
    bytes = bytes < 64 ? 64 : bytes & ~(size_t)63; /* never NULL, even for SGD */
    o->state = aligned_alloc(64, bytes);
    if (!o->state) {
        qat_optim_destroy(o);
        return qat_fail(err, QAT_ENOMEM, "optimizer: out of memory for %zu bytes of state", bytes);
    }
    memset(o->state, 0, bytes);
    *out = o;
    return QAT_OK;
}

void qat_optim_destroy(qat_optim *o)
{
    if (!o)
        return;
    free(o->state);
    free(o->runs);
    free(o);
}

float *qat_optim_state(qat_optim *o, size_t *count)
{
    *count = (size_t)o->nbuf * o->n;
    return o->state;
}

long qat_optim_steps(const qat_optim *o) { return o->steps; }

void qat_optim_set_steps(qat_optim *o, long steps)
{
    QAT_ASSERT(steps >= 0);
    o->steps = steps;
}

/* ---- kernels ---------------------------------------------------------------
 * Each kernel is written once with a `masked` flag and instantiated twice by
 * constant propagation (mask / no mask). A masked entry is cleared by ANDing
 * its bits with 0 rather than by `m ? x : 0` (which GCC turns into a branch
 * under -ftrapping-math, killing vectorisation) or by multiplying by 0 (which
 * lets a NaN or Inf through and gives -0): the result is exactly +0.
 * All loops vectorise with restrict; those that call sqrtf (Adam, AdamW,
 * RMSprop) only do so under -fno-math-errno, a build-wide flag. */
static inline uint32_t keep_bits(const float *m, size_t i, int masked)
{
    return masked ? -(uint32_t)(m[i] != 0.0f) : ~(uint32_t)0;
}

static inline float keep_if(float x, uint32_t keep)
{
    uint32_t b;
    memcpy(&b, &x, sizeof b);
    b &= keep;
    memcpy(&x, &b, sizeof x);
    return x;
}

typedef struct {
    float lr;
    float wd;      /* L2 coefficient for this run (0 where decay = 0) */
    float shrink;  /* AdamW's decoupled factor 1 - lr wd (1 where decay = 0) */
    float mu;      /* momentum */
    float b1, b2;  /* Adam betas */
    float alpha;   /* RMSprop smoothing */
    float eps;
    float inv_bc1, inv_bc2; /* Adam bias corrections 1 / (1 - beta^t) */
} step_args;

QAT_INLINE void sgd_k(float *restrict p, const float *restrict g, const float *restrict m,
                      size_t n, const step_args *a, int masked)
{
    const float lr = a->lr, wd = a->wd;
    for (size_t i = 0; i < n; i++) {
        float pi = p[i] - lr * (g[i] + wd * p[i]);
        p[i] = keep_if(pi, keep_bits(m, i, masked));
    }
}

/* Heavy ball (nesterov = 0) and Nesterov share the velocity update. */
QAT_INLINE void momentum_k(float *restrict p, const float *restrict g, const float *restrict m,
                           float *restrict v, size_t n, const step_args *a, int nesterov,
                           int masked)
{
    const float lr = a->lr, wd = a->wd, mu = a->mu;
    for (size_t i = 0; i < n; i++) {
        float gi = g[i] + wd * p[i];
        float vi = mu * v[i] + gi;
        float pi = p[i] - lr * (nesterov ? gi + mu * vi : vi);
        uint32_t keep = keep_bits(m, i, masked);
        v[i] = keep_if(vi, keep);
        p[i] = keep_if(pi, keep);
    }
}

/* Adam (wd = L2, shrink = 1) and AdamW (wd = 0, shrink = 1 - lr wd). */
QAT_INLINE void adam_k(float *restrict p, const float *restrict g, const float *restrict m,
                       float *restrict m1, float *restrict m2, size_t n, const step_args *a,
                       int masked)
{
    const float lr = a->lr, wd = a->wd, shrink = a->shrink, eps = a->eps;
    const float b1 = a->b1, b2 = a->b2, c1 = 1.0f - a->b1, c2 = 1.0f - a->b2;
    const float ib1 = a->inv_bc1, ib2 = a->inv_bc2;
    for (size_t i = 0; i < n; i++) {
        float gi = g[i] + wd * p[i];
        float mi = b1 * m1[i] + c1 * gi;
        float vi = b2 * m2[i] + c2 * gi * gi;
        float pi = p[i] * shrink - lr * (mi * ib1) / (sqrtf(vi * ib2) + eps);
        uint32_t keep = keep_bits(m, i, masked);
        m1[i] = keep_if(mi, keep);
        m2[i] = keep_if(vi, keep);
        p[i] = keep_if(pi, keep);
    }
}

QAT_INLINE void rmsprop_k(float *restrict p, const float *restrict g, const float *restrict m,
                          float *restrict s, size_t n, const step_args *a, int masked)
{
    const float lr = a->lr, wd = a->wd, al = a->alpha, c = 1.0f - a->alpha, eps = a->eps;
    for (size_t i = 0; i < n; i++) {
        float gi = g[i] + wd * p[i];
        float si = al * s[i] + c * gi * gi;
        float pi = p[i] - lr * gi / (sqrtf(si) + eps);
        uint32_t keep = keep_bits(m, i, masked);
        s[i] = keep_if(si, keep);
        p[i] = keep_if(pi, keep);
    }
}

/* RMSprop with momentum: b = mu b + g / (sqrt(s) + eps); p -= lr b. */
QAT_INLINE void rmsprop_mom_k(float *restrict p, const float *restrict g, const float *restrict m,
                              float *restrict s, float *restrict b, size_t n, const step_args *a,
                              int masked)
{
    const float lr = a->lr, wd = a->wd, eps = a->eps, mu = a->mu;
    const float al = a->alpha, c = 1.0f - a->alpha;
    for (size_t i = 0; i < n; i++) {
        float gi = g[i] + wd * p[i];
        float si = al * s[i] + c * gi * gi;
        float bi = mu * b[i] + gi / (sqrtf(si) + eps);
        float pi = p[i] - lr * bi;
        uint32_t keep = keep_bits(m, i, masked);
        s[i] = keep_if(si, keep);
        b[i] = keep_if(bi, keep);
        p[i] = keep_if(pi, keep);
    }
}

/* One run [off, off + cnt): s0 and s1 are the first two state arrays. */
HOT_CLONES
static void step_run(qat_optim_kind kind, float *p, const float *g, const float *m, float *s0,
                     float *s1, size_t cnt, const step_args *a)
{
    switch (kind) {
    case QAT_OPT_SGD:
        if (m)
            sgd_k(p, g, m, cnt, a, 1);
        else
            sgd_k(p, g, NULL, cnt, a, 0);
        break;
    case QAT_OPT_MOMENTUM:
    case QAT_OPT_NESTEROV:
        if (m && kind == QAT_OPT_NESTEROV)
            momentum_k(p, g, m, s0, cnt, a, 1, 1);
        else if (kind == QAT_OPT_NESTEROV)
            momentum_k(p, g, NULL, s0, cnt, a, 1, 0);
        else if (m)
            momentum_k(p, g, m, s0, cnt, a, 0, 1);
        else
            momentum_k(p, g, NULL, s0, cnt, a, 0, 0);
        break;
    case QAT_OPT_ADAM:
    case QAT_OPT_ADAMW:
        if (m)
            adam_k(p, g, m, s0, s1, cnt, a, 1);
        else
            adam_k(p, g, NULL, s0, s1, cnt, a, 0);
        break;
    case QAT_OPT_RMSPROP:
        if (s1 && m)
            rmsprop_mom_k(p, g, m, s0, s1, cnt, a, 1);
        else if (s1)
            rmsprop_mom_k(p, g, NULL, s0, s1, cnt, a, 0);
        else if (m)
            rmsprop_k(p, g, m, s0, cnt, a, 1);
        else
            rmsprop_k(p, g, NULL, s0, cnt, a, 0);
        break;
    }
}

void qat_optim_set_team(qat_optim *o, qat_team *team) { o->team = team; }

/* One run split over the team: elementwise, so the same bits on any split. */
typedef struct {
    qat_optim_kind kind;
    float *p, *s0, *s1;
    const float *g, *m;
    const step_args *a;
} run_job;

static void run_range(void *v, size_t b, size_t e)
{
    const run_job *j = v;
    step_run(j->kind, j->p + b, j->g + b, j->m ? j->m + b : NULL, j->s0 ? j->s0 + b : NULL,
             j->s1 ? j->s1 + b : NULL, e - b, j->a);
}

void qat_optim_step(qat_optim *o, float *params, const float *grads, const float *mask, float lr)
{
    qat_optim_step_range(o, params, grads, mask, lr, 0, o->n);
}

void qat_optim_step_range(qat_optim *o, float *params, const float *grads, const float *mask,
                          float lr, size_t lo, size_t hi)
{
    const qat_optim_config *c = &o->c;
    QAT_ASSERT(lo <= hi && hi <= o->n);
    o->steps++;
    step_args a = {.lr = lr, .shrink = 1.0f, .mu = c->momentum, .b1 = c->beta1, .b2 = c->beta2,
                   .alpha = c->alpha, .eps = c->eps, .inv_bc1 = 1.0f, .inv_bc2 = 1.0f};
    if (c->kind == QAT_OPT_ADAM || c->kind == QAT_OPT_ADAMW) {
        double t = (double)o->steps;
        a.inv_bc1 = (float)(1.0 / (1.0 - pow((double)c->beta1, t)));
        a.inv_bc2 = (float)(1.0 / (1.0 - pow((double)c->beta2, t)));
    }
    int decoupled = c->kind == QAT_OPT_ADAMW;
    size_t n = o->n;
    float *s0 = o->nbuf > 0 ? o->state : NULL;
    float *s1 = o->nbuf > 1 ? o->state + n : NULL;
    for (int r = 0; r < o->nruns; r++) {
        size_t off = o->runs[r].offset, end = off + o->runs[r].count;
        off = off > lo ? off : lo;
        end = end < hi ? end : hi;
        if (off >= end)
            continue;
        size_t cnt = end - off;
        int decay = o->runs[r].decay && c->weight_decay > 0.0f;
        a.wd = decay && !decoupled ? c->weight_decay : 0.0f;
        a.shrink = decay && decoupled ? 1.0f - lr * c->weight_decay : 1.0f;
        run_job j = {c->kind,           params + off, s0 ? s0 + off : NULL,
                     s1 ? s1 + off : NULL, grads + off,  mask ? mask + off : NULL,
                     &a};
        qat_team_parallel_for(o->team, cnt, QAT_ELEMWISE_GRAIN, run_range, &j);
    }
}

/* ---- gradient clipping ---------------------------------------------------- */
double qat_grad_sq_sum(const float *grads, size_t n)
{
    /* Four partial sums in a fixed order: deterministic, and the compiler
     * may keep them in one vector register. */
    double acc[4] = {0.0, 0.0, 0.0, 0.0};
    size_t i = 0;
    for (; i + 4 <= n; i += 4)
        for (int k = 0; k < 4; k++)
            acc[k] += (double)grads[i + k] * (double)grads[i + k];
    for (; i < n; i++)
        acc[0] += (double)grads[i] * (double)grads[i];
    return (acc[0] + acc[1]) + (acc[2] + acc[3]);
}

void qat_clip_grad_to(float *grads, size_t n, double norm, double max_norm)
{
    if (max_norm > 0.0 && norm > max_norm) {
        const float scale = (float)(max_norm / norm);
        for (size_t j = 0; j < n; j++)
            grads[j] *= scale;
    }
}

double qat_clip_grad_norm(float *grads, size_t n, double max_norm)
{
    double norm = sqrt(qat_grad_sq_sum(grads, n));
    qat_clip_grad_to(grads, n, norm, max_norm);
    return norm;
}
