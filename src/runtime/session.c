/* Sessions: every buffer is sized at creation; qat_rt_run only computes.
 *
 * Two ways to use the threads, chosen per call and mixed within one:
 * - batch split: with at least one image per member, each member takes a
 *   contiguous range of images and runs the whole network on it in chunks,
 *   ping-ponging between two private activation buffers, with no
 *   synchronisation at all until the end;
 * - layer split: the n % threads images left over (all of them when
 *   n < threads, e.g. batch 1) go through the network with every member
 *   computing a slice of each layer (output rows, or output channels when a
 *   layer has few rows, as fc layers do at batch 1), and a spinning barrier
 *   between layers.
 * Every output value is computed by the same integer arithmetic whatever
 * the split, so logits are identical for every thread count. */
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "qat/pool.h"
#include "runtime/rt_internal.h"

/* Images per kernel call in a batch split: enough for weight reuse in linear
 * layers, small enough that the activations of a chunk stay in L2. */
#define QAT_RT_CHUNK 16
/* A layer split divides output rows when every member gets at least this
 * many; otherwise it divides output channels. */
#define QAT_RT_MIN_ROWS 16

#if defined(__x86_64__) || defined(__i386__)
#define CPU_RELAX() __builtin_ia32_pause()
#elif defined(__aarch64__)
#define CPU_RELAX() __asm__ __volatile__("yield")
#else
#define CPU_RELAX() ((void)0)
#endif

struct qat_rt_session {
    const qat_rt_model *m;
    const qat_rt_kernels *k;
    qat_pool *pool;
    int threads, max_batch, chunk;
    size_t act_stride;     /* bytes of one activation buffer (chunk images) */
    size_t scratch_stride; /* bytes of one member's kernel scratch */
    int8_t *act;           /* threads * 2 * act_stride */
    unsigned char *scratch;
    double *prof; /* num_layers + 1 seconds (input first), or NULL */
    long prof_images;
    /* the batch in flight */
    const uint8_t *images;
    int n, n_split; /* images [0, n_split) are batch-split, the rest layer-split */
    int8_t *logits;
    /* layer-split barrier; its own cache lines, away from the fields above */
    _Alignas(64) atomic_uint bar_count;
    _Alignas(64) atomic_uint bar_gen;
};

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

qat_status qat_rt_session_create(const qat_rt_model *m, const qat_rt_options *o,
                                 qat_rt_session **out, qat_error *err)
{
    *out = NULL;
    if (!m || !o)
        return qat_fail(err, QAT_EINVAL, "session: model and options are required");
    if (o->threads < 1 || o->threads > 1024)
        return qat_fail(err, QAT_EINVAL, "session: threads: expected in [1, 1024], found %d",
                        o->threads);
    if (o->max_batch < 1)
        return qat_fail(err, QAT_EINVAL, "session: max_batch: expected >= 1, found %d",
                        o->max_batch);
    qat_rt_session *s = aligned_alloc(64, (sizeof *s + 63) & ~(size_t)63);
    if (!s)
        return qat_fail(err, QAT_ENOMEM, "session: out of memory");
    memset(s, 0, sizeof *s);
    atomic_init(&s->bar_count, 0);
    atomic_init(&s->bar_gen, 0);
    s->m = m;
    s->k = m->k;
    s->threads = o->threads;
    s->max_batch = o->max_batch;
    int per_thread = (o->max_batch + o->threads - 1) / o->threads;
    s->chunk = per_thread < QAT_RT_CHUNK ? per_thread : QAT_RT_CHUNK;
    for (int i = 0; i < m->num_layers; i++) {
        const qat_rt_layer *l = &m->layers[i];
        if (l->op == QAT_RT_CONV2D || l->op == QAT_RT_LINEAR) {
            size_t b = s->k->conv_scratch(&l->conv, s->chunk);
            if (b > s->scratch_stride)
                s->scratch_stride = b;
        }
    }
    size_t act_total, scratch_total;
    if (qat_size_mul(m->max_tensor, (size_t)s->chunk, &s->act_stride) ||
        qat_size_add(s->act_stride, 63, &s->act_stride) ||
        qat_size_add(s->scratch_stride, 63, &s->scratch_stride) ||
        qat_size_mul(s->act_stride & ~(size_t)63, 2 * (size_t)s->threads, &act_total) ||
        qat_size_mul(s->scratch_stride & ~(size_t)63, (size_t)s->threads, &scratch_total)) {
        free(s);
        return qat_fail(err, QAT_ENOMEM, "session: buffer size overflows for max_batch %d",
                        o->max_batch);
    }
    s->act_stride &= ~(size_t)63;
    s->scratch_stride &= ~(size_t)63;
    s->act = aligned_alloc(64, act_total);
    s->scratch = scratch_total ? aligned_alloc(64, scratch_total) : NULL;
    if (o->profile)
        s->prof = calloc((size_t)m->num_layers + 1, sizeof *s->prof);
    if (!s->act || (scratch_total && !s->scratch) || (o->profile && !s->prof)) {
        qat_rt_session_destroy(s);
        return qat_fail(err, QAT_ENOMEM, "session: out of memory for %zu bytes of activations",
                        act_total + scratch_total);
    }
    qat_status st = qat_pool_create(o->threads, &s->pool, err);
    if (st) {
        qat_rt_session_destroy(s);
        return qat_error_prefix(err, "session");
    }
    *out = s;
    return QAT_OK;
}

void qat_rt_session_destroy(qat_rt_session *s)
{
    if (!s)
        return;
    qat_pool_destroy(s->pool);
    free(s->act);
    free(s->scratch);
    free(s->prof);
    free(s);
}

/* All members of the layer split meet here. Spins (the wait is a layer of
 * a few microseconds), yielding now and then in case there are more
 * threads than cores. */
static void barrier(qat_rt_session *s, int nt)
{
    if (nt == 1)
        return;
    unsigned gen = atomic_load_explicit(&s->bar_gen, memory_order_acquire);
    if (atomic_fetch_add_explicit(&s->bar_count, 1, memory_order_acq_rel) == (unsigned)nt - 1) {
        atomic_store_explicit(&s->bar_count, 0, memory_order_relaxed);
        atomic_store_explicit(&s->bar_gen, gen + 1, memory_order_release);
        return;
    }
    for (unsigned spins = 1; atomic_load_explicit(&s->bar_gen, memory_order_acquire) == gen;
         spins++) {
        if (spins % 1024 == 0)
            sched_yield();
        else
            CPU_RELAX();
    }
}

/* Runs layer l on n images (rows [m0, m1), channels [c0, c1)). */
static void run_layer(const qat_rt_kernels *k, const qat_rt_layer *l, const int8_t *a, int8_t *b,
                      size_t m0, size_t m1, int c0, int c1, void *scratch)
{
    switch (l->op) {
    case QAT_RT_CONV2D:
        if (l->fused_pool)
            k->conv2d_maxpool(&l->conv, &l[1].pool, a, b, m0, m1, c0, c1, scratch);
        else
            k->conv2d(&l->conv, a, b, m0, m1, c0, c1, scratch);
        break;
    case QAT_RT_LINEAR: k->linear(&l->conv, a, b, m0, m1, c0, c1, scratch); break;
    case QAT_RT_MAXPOOL2D: k->maxpool2d(&l->pool, a, b, m0, m1); break;
    case QAT_RT_AVGPOOL2D: k->avgpool2d(&l->pool, a, b, m0, m1); break;
    case QAT_RT_FLATTEN: break;
    }
}

/* Member tid's share of layer l on n images when nt members split it. */
static void layer_slice(const qat_rt_kernels *k, const qat_rt_layer *l, int n, int tid, int nt,
                        size_t *m0, size_t *m1, int *c0, int *c1)
{
    size_t rows = l->rows * (size_t)n;
    int oc = l->op == QAT_RT_CONV2D || l->op == QAT_RT_LINEAR ? l->conv.out_c : 0;
    *m0 = 0;
    *m1 = rows;
    *c0 = 0;
    *c1 = oc;
    if (!oc || rows >= (size_t)nt * QAT_RT_MIN_ROWS) {
        qat_pool_range(rows, tid, nt, m0, m1);
        return;
    }
    size_t align = (size_t)k->channel_align, units = ((size_t)oc + align - 1) / align, u0, u1;
    qat_pool_range(units, tid, nt, &u0, &u1);
    *c0 = (int)(u0 * align);
    *c1 = (int)(u1 * align < (size_t)oc ? u1 * align : (size_t)oc);
    if (*c0 >= *c1)
        *m1 = 0; /* nothing for this member */
}

/* The whole network on n images at `in`; returns the buffer holding the
 * logits. With nt > 1 every member calls this together (layer split).
 * prof (member 0 only) accumulates seconds per layer. */
static int8_t *forward(qat_rt_session *s, const uint8_t *in, int8_t *a, int8_t *b, int n,
                       int tid, int nt, void *scratch, double *prof)
{
    const qat_rt_model *m = s->m;
    const qat_rt_kernels *k = s->k;
    double t = prof ? now_seconds() : 0.0;
    size_t q0, q1;
    qat_pool_range((size_t)n * m->input_size, tid, nt, &q0, &q1);
    k->quantize_input(in + q0, a + q0, q1 - q0);
    barrier(s, nt);
    if (prof) {
        double t1 = now_seconds();
        prof[0] += t1 - t;
        t = t1;
    }
    for (int i = 0; i < m->num_layers; i++) {
        const qat_rt_layer *l = &m->layers[i];
        if (l->op == QAT_RT_FLATTEN || l->done_by_previous)
            continue; /* NHWC memory is already flat; a fused pool ran in its conv */
        size_t m0, m1;
        int c0, c1;
        layer_slice(k, l, n, tid, nt, &m0, &m1, &c0, &c1);
        if (m0 < m1)
            run_layer(k, l, a, b, m0, m1, c0, c1, scratch);
        barrier(s, nt);
        if (prof) {
            double t1 = now_seconds();
            prof[i + 1] += t1 - t;
            t = t1;
        }
        int8_t *tmp = a;
        a = b;
        b = tmp;
    }
    return a;
}

static void run_member(void *ctx, int tid, int nt)
{
    qat_rt_session *s = ctx;
    const qat_rt_model *m = s->m;
    const size_t classes = (size_t)m->num_classes, chunk = (size_t)s->chunk;
    void *scratch = s->scratch ? s->scratch + (size_t)tid * s->scratch_stride : NULL;
    /* batch split: images [0, n_split), an equal share per member */
    int8_t *a = s->act + (size_t)tid * 2 * s->act_stride;
    size_t begin, end;
    qat_pool_range((size_t)s->n_split, tid, nt, &begin, &end);
    for (size_t i = begin; i < end; i += chunk) {
        int n = (int)(end - i < chunk ? end - i : chunk);
        int8_t *res = forward(s, s->images + i * m->input_size, a, a + s->act_stride, n, 0, 1,
                              scratch, tid == 0 ? s->prof : NULL);
        memcpy(s->logits + i * classes, res, (size_t)n * classes);
    }
    if (s->n_split == s->n)
        return;
    /* layer split: the rest, all members together in member 0's buffers */
    a = s->act;
    barrier(s, nt); /* member 0's buffers are free */
    for (size_t i = (size_t)s->n_split; i < (size_t)s->n; i += chunk) {
        int n = (int)((size_t)s->n - i < chunk ? (size_t)s->n - i : chunk);
        int8_t *res = forward(s, s->images + i * m->input_size, a, a + s->act_stride, n, tid, nt,
                              scratch, tid == 0 ? s->prof : NULL);
        if (tid == 0)
            memcpy(s->logits + i * classes, res, (size_t)n * classes);
        barrier(s, nt); /* the copy is done before the buffers are reused */
    }
}

qat_status qat_rt_run(qat_rt_session *s, const uint8_t *images, int n, int8_t *logits,
                      qat_error *err)
{
    if (n < 0 || n > s->max_batch)
        return qat_fail(err, QAT_EINVAL, "run: n: expected in [0, %d] (max_batch), found %d",
                        s->max_batch, n);
    if (n == 0)
        return QAT_OK;
    if (!images || !logits)
        return qat_fail(err, QAT_EINVAL, "run: images and logits are required");
    s->images = images;
    s->n = n;
    s->n_split = n - n % s->threads;
    s->logits = logits;
    qat_pool_run(s->pool, run_member, s);
    s->images = NULL;
    s->logits = NULL;
    if (s->prof)
        s->prof_images += n;
    return QAT_OK;
}

int qat_rt_session_profile(const qat_rt_session *s, qat_rt_layer_profile *out, int max)
{
    const qat_rt_model *m = s->m;
    if (!s->prof)
        return 0;
    int count = 0;
    for (int i = -1; i < m->num_layers && count < max; i++) {
        qat_rt_layer_profile *p = &out[count++];
        if (i < 0) {
            *p = (qat_rt_layer_profile){.index = -1, .name = "input", .op = "quantize",
                                        .seconds = s->prof[0]};
        } else {
            const qat_rt_layer *l = &m->layers[i];
            *p = (qat_rt_layer_profile){.index = i, .name = l->name, .op = qat_rt_op_name(l->op),
                                        .seconds = s->prof[i + 1]};
            if (l->fused_pool)
                p->op = "conv2d+maxpool2d";
            else if (l->done_by_previous)
                p->op = "(in conv2d)";
            p->macs = l->macs * (double)s->prof_images;
        }
        p->images = s->prof_images;
    }
    return count;
}
