/* Sessions: every buffer is sized at creation; qat_rt_run only computes.
 *
 * A run is a short sequence of phases, each a set of tasks that the
 * caller's thread and the session's workers claim one at a time from a
 * shared board (an atomic word), so that nobody waits for a thread that has
 * not started: if the machine is busy and a worker is descheduled, the
 * others simply take its share. Phases:
 * - images: with at least one image per thread, the batch (minus n % threads
 *   images) is cut into chunks; a task runs the whole network on one chunk
 *   in the claiming thread's private activation arena (plan.c);
 * - layers: the images left over (all of them when n < threads, e.g. batch
 *   1) go through the network one layer per phase, each task computing a
 *   slice of the layer (output rows, or output channels when a layer has
 *   few rows, as fc layers do at batch 1) in shared buffers.
 * Every output value is computed by the same integer arithmetic whoever
 * computes it, so logits are identical for every thread count. */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "qat/clock.h"
#include "qat/team.h"
#include "runtime/rt_internal.h"

/* Most images per task in the images phase (the activation buffers hold
 * this many): small enough that a chunk's activations stay in L2. */
#define QAT_RT_CHUNK 16
/* A layer phase divides output rows when every thread gets at least this
 * many; otherwise it divides output channels. */
#define QAT_RT_MIN_ROWS 16
/* A layer phase gives each task at least this much work, in
 * multiply-accumulates (about a microsecond of vpdpbusd), a layer without
 * any (add, pools, concat) counting QAT_RT_ELEM_MACS per input and output
 * element: below it, the other core's reading and writing of the layer's
 * activations (cache lines that then move between cores) costs more than
 * the split saves. */
#define QAT_RT_MIN_TASK_MACS (1 << 19)
#define QAT_RT_ELEM_MACS 16

/* The board word: epoch (phase number) | task count | next unclaimed task.
 * One word, so that a claim (compare-and-swap) can only succeed for the
 * phase the claimer read the parameters of. */
#define B_BITS 20
#define B_MASK ((1ULL << B_BITS) - 1)
#define B_EPOCH(w) ((unsigned)((w) >> (2 * B_BITS)))
#define B_COUNT(w) ((unsigned)(((w) >> B_BITS) & B_MASK))
#define B_NEXT(w) ((unsigned)((w)&B_MASK))
#define B_MAKE(e, n) ((unsigned long long)(e) << (2 * B_BITS) | (unsigned long long)(n) << B_BITS)

enum { PHASE_IMAGES, PHASE_LAYER };

typedef struct worker {
    qat_rt_session *s;
    int id;
} worker;

struct qat_rt_session {
    const qat_rt_model *m;
    const qat_rt_kernels *k;
    int threads, max_batch, chunk;
    size_t act_stride;     /* bytes of one thread's activation arena (chunk images) */
    size_t scratch_stride; /* bytes of one thread's kernel scratch */
    int8_t *act;           /* threads * act_stride */
    unsigned char *scratch;
    double *prof; /* num_layers + 1 seconds (input first), or NULL */
    long prof_images;
    pthread_t *tids;
    worker *workers;
    int started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int sleepers; /* under mu */
    /* the run and the phase in flight; written by the caller's thread before
     * it publishes the phase on the board, read by a worker only after it has
     * claimed one of the phase's tasks */
    const uint8_t *images;
    const float *finputs; /* qat_rt_run_float's inputs (images NULL) */
    int8_t *logits;
    float *flogits; /* the *_logits entries' output (logits NULL) */
    int n_split;     /* images phase: [0, n_split) in tasks [first[t], first[t + 1]) */
    int *task_first; /* max_batch + 1 entries */
    int min_task;    /* images a task takes at least (fc_reuse) */
    int kind, layer, nb;      /* layer phase: layer index on nb images */
    double min_task_macs;     /* QAT_RT_MIN_TASK_MACS; tests lower it */
    unsigned epoch;
    /* the board and the completion count, each on its own cache line */
    _Alignas(64) atomic_ullong board;
    _Alignas(64) atomic_uint done;
    _Alignas(64) atomic_int stop;
};

/* ---- the network on private buffers, and one layer's slice -------------------------- */

/* Layer l on the arena at base (chunk images per tensor): its slice of
 * output rows [m0, m1) and channels [c0, c1). */
static void run_layer(const qat_rt_kernels *k, const qat_rt_layer *l, int8_t *base, size_t chunk,
                      size_t m0, size_t m1, int c0, int c1, void *scratch)
{
    const int8_t *in[QAT_RT_MAX_INPUTS];
    for (int q = 0; q < l->ninputs; q++)
        in[q] = base + l->in_off[q] * chunk;
    const int8_t *a = in[0];
    int8_t *b = base + l->out_off * chunk;
    if (l->is_float) {
        qat_rt_float_layer(&l->fl, a, b, m0, m1, c0, c1, scratch);
        return;
    }
    switch (l->op) {
    case QAT_RT_CONV2D:
        if (l->fused_pool)
            k->conv2d_maxpool(&l->conv, &l[1].pool, a, b, m0, m1, c0, c1, scratch);
        else if (l->conv.groups > 1)
            k->gconv2d(&l->conv, a, b, m0, m1, c0, c1, scratch);
        else
            k->conv2d(&l->conv, a, b, m0, m1, c0, c1, scratch);
        break;
    case QAT_RT_LINEAR: k->linear(&l->conv, a, b, m0, m1, c0, c1, scratch); break;
    case QAT_RT_MAXPOOL2D: k->maxpool2d(&l->pool, a, b, m0, m1); break;
    case QAT_RT_AVGPOOL2D: k->avgpool2d(&l->pool, a, b, m0, m1); break;
    case QAT_RT_FLATTEN: break;
    case QAT_RT_ADD: k->add(&l->merge, in, b, m0, m1); break;
    case QAT_RT_CONCAT: k->concat(&l->merge, in, b, m0, m1); break;
    case QAT_RT_GLOBAL_AVGPOOL: k->global_avgpool(&l->merge, in, b, m0, m1); break;
    }
}

static int splits_channels(const qat_rt_layer *l)
{
    return l->op == QAT_RT_CONV2D || l->op == QAT_RT_LINEAR;
}

static int skipped(const qat_rt_layer *l)
{
    return l->op == QAT_RT_FLATTEN || l->done_by_previous; /* NHWC is already flat */
}

/* How a layer on n images is cut into tasks: by output rows when there are
 * enough of them, else by groups of channel_align output channels. */
static unsigned layer_tasks(const qat_rt_session *s, const qat_rt_layer *l, int n, int *by_rows,
                            size_t *units)
{
    size_t rows = l->rows * (size_t)n;
    int oc = splits_channels(l) ? l->conv.out_c : 0;
    size_t align = (size_t)s->k->channel_align;
    *by_rows = !oc || rows >= (size_t)s->threads * QAT_RT_MIN_ROWS;
    *units = *by_rows ? rows : ((size_t)oc + align - 1) / align;
    size_t want = 4 * (size_t)s->threads; /* a descheduled thread holds up little */
    double macs = l->macs > 0 ? l->macs
                              : (double)(l->in_size + l->out_size) * QAT_RT_ELEM_MACS;
    double most = macs * n / s->min_task_macs;
    want = most < 1.0 ? 1 : most < (double)want ? (size_t)most : want;
    return (unsigned)(*units < want ? *units : want);
}

static void layer_task(qat_rt_session *s, unsigned task, unsigned ntasks, void *scratch)
{
    const qat_rt_layer *l = &s->m->layers[s->layer];
    int by_rows;
    size_t units, u0, u1;
    layer_tasks(s, l, s->nb, &by_rows, &units);
    qat_team_range(units, (int)task, (int)ntasks, &u0, &u1);
    size_t chunk = (size_t)s->chunk;
    if (by_rows) {
        int oc = splits_channels(l) ? l->conv.out_c : 0;
        run_layer(s->k, l, s->act, chunk, u0, u1, 0, oc, scratch);
    } else {
        size_t align = (size_t)s->k->channel_align, oc = (size_t)l->conv.out_c;
        run_layer(s->k, l, s->act, chunk, 0, l->rows * (size_t)s->nb, (int)(u0 * align),
                  (int)(u1 * align < oc ? u1 * align : oc), scratch);
    }
}

/* Where the last layer's output lives (a flatten or fused pool writes
 * nothing of its own: the plan gives the bytes holding it). */
static size_t logits_off(const qat_rt_model *m)
{
    const qat_rt_layer *last = &m->layers[m->num_layers - 1];
    if (last->op != QAT_RT_FLATTEN)
        return last->out_off;
    int src = last->inputs[0];
    while (src >= 0 && m->layers[src].op == QAT_RT_FLATTEN)
        src = m->layers[src].inputs[0];
    return src < 0 ? m->input_off : m->layers[src].out_off;
}

/* The logits of images [first, first + n), computed at res, into the
 * caller's array: int8 codes, float32 values (a float-logit model), or
 * int8 codes dequantized for the *_logits entries. */
static void put_logits(const qat_rt_session *s, size_t first, int n, const int8_t *res)
{
    const qat_rt_model *m = s->m;
    const size_t nc = (size_t)m->num_classes;
    if (s->logits)
        memcpy(s->logits + first * nc, res, (size_t)n * nc);
    else if (m->float_logits)
        memcpy(s->flogits + first * nc, res, (size_t)n * nc * sizeof(float));
    else
        qat_rt_dequantize_logits(m, res, n, s->flogits + first * nc);
}

/* Images [first, first + n) of the run into int8 codes at q. */
static void quantize_images(const qat_rt_session *s, size_t first, int n, int8_t *q)
{
    size_t isz = s->m->input_size, count = (size_t)n * isz;
    if (s->finputs)
        qat_rt_quantize_float(s->m, s->finputs + first * isz, count, q);
    else
        s->k->quantize_input(s->images + first * isz, q, count);
}

/* The whole network on n images in thread `me`'s buffers; returns where
 * the logits are. prof (the caller's thread only) accumulates per layer. */
static int8_t *forward_private(qat_rt_session *s, int me, size_t first, int n, double *prof)
{
    const qat_rt_model *m = s->m;
    const size_t chunk = (size_t)s->chunk;
    int8_t *base = s->act + (size_t)me * s->act_stride;
    void *scratch = s->scratch ? s->scratch + (size_t)me * s->scratch_stride : NULL;
    double t = prof ? qat_clock_seconds() : 0.0, t1;
    quantize_images(s, first, n, base + m->input_off * chunk);
    if (prof) {
        prof[0] += (t1 = qat_clock_seconds()) - t;
        t = t1;
    }
    for (int i = 0; i < m->num_layers; i++) {
        const qat_rt_layer *l = &m->layers[i];
        if (skipped(l))
            continue;
        int oc = splits_channels(l) ? l->conv.out_c : 0;
        run_layer(s->k, l, base, chunk, 0, l->rows * (size_t)n, 0, oc, scratch);
        if (prof) {
            prof[i + 1] += (t1 = qat_clock_seconds()) - t;
            t = t1;
        }
    }
    return base + logits_off(m) * chunk;
}

static void run_task(qat_rt_session *s, int me, unsigned task, unsigned ntasks)
{
    if (s->kind == PHASE_LAYER) {
        layer_task(s, task, ntasks,
                   s->scratch ? s->scratch + (size_t)me * s->scratch_stride : NULL);
        return;
    }
    size_t first = (size_t)s->task_first[task];
    int n = s->task_first[task + 1] - s->task_first[task];
    int8_t *res = forward_private(s, me, first, n, me == 0 ? s->prof : NULL);
    put_logits(s, first, n, res);
}

/* ---- the board ------------------------------------------------------------------------ */

/* Claims and runs tasks of phase `epoch` until none is left. */
static void work(qat_rt_session *s, int me, unsigned epoch)
{
    for (;;) {
        unsigned long long w = atomic_load_explicit(&s->board, memory_order_acquire);
        if (B_EPOCH(w) != epoch || B_NEXT(w) >= B_COUNT(w))
            return;
        if (!atomic_compare_exchange_weak_explicit(&s->board, &w, w + 1, memory_order_acq_rel,
                                                   memory_order_relaxed))
            continue;
        run_task(s, me, B_NEXT(w), B_COUNT(w));
        atomic_fetch_add_explicit(&s->done, 1, memory_order_release);
    }
}

/* The caller's thread: publishes a phase of ntasks tasks, works on it, and
 * returns when every task is done. */
static void run_phase(qat_rt_session *s, unsigned ntasks)
{
    if (ntasks == 0)
        return;
    if (ntasks == 1) { /* the caller's own: its inputs are in this core's cache */
        run_task(s, 0, 0, 1);
        return;
    }
    s->epoch = (s->epoch + 1) & ((1u << (64 - 2 * B_BITS)) - 1);
    atomic_store_explicit(&s->done, 0, memory_order_relaxed);
    atomic_store_explicit(&s->board, B_MAKE(s->epoch, ntasks), memory_order_release);
    if (s->threads > 1) {
        pthread_mutex_lock(&s->mu);
        if (s->sleepers)
            pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
    }
    work(s, 0, s->epoch);
    for (unsigned spins = 1; atomic_load_explicit(&s->done, memory_order_acquire) < ntasks;
         spins++) {
        if (spins % 64 == 0) /* a claimed task's owner may need our core */
            sched_yield();
        else
            qat_cpu_relax();
    }
}

static void *worker_main(void *arg)
{
    worker *wk = arg;
    qat_rt_session *s = wk->s;
    unsigned seen = 0;
    for (;;) {
        unsigned long long w;
        int spins = 0;
        while (B_EPOCH(w = atomic_load_explicit(&s->board, memory_order_acquire)) == seen &&
               !atomic_load_explicit(&s->stop, memory_order_relaxed) && spins < QAT_SPIN_ROUNDS) {
            qat_cpu_relax();
            spins++;
        }
        if (B_EPOCH(w) == seen && !atomic_load(&s->stop)) {
            pthread_mutex_lock(&s->mu);
            s->sleepers++;
            while (B_EPOCH(w = atomic_load(&s->board)) == seen && !atomic_load(&s->stop))
                pthread_cond_wait(&s->cv, &s->mu);
            s->sleepers--;
            pthread_mutex_unlock(&s->mu);
        }
        if (atomic_load(&s->stop))
            return NULL;
        seen = B_EPOCH(w);
        work(s, wk->id, seen);
    }
}

/* ---- the API -------------------------------------------------------------------------- */

/* Whether m has an integer fc layer whose weights (at least 16 KB) are
 * worth reusing over several images of a task: then a task takes at least
 * 4 (the MNIST CNN ran 7% slower with tasks of one image; ResNet-8, whose
 * fc has 640 bytes of weights, loses nothing by them). */
static int fc_reuse(const qat_rt_model *m)
{
    for (int i = 0; i < m->num_layers; i++) {
        const qat_rt_layer *l = &m->layers[i];
        if (l->op == QAT_RT_LINEAR && !l->is_float && l->macs >= 16384.0)
            return 1;
    }
    return 0;
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
    if (o->max_batch < 1 || o->max_batch > (1 << 24)) /* tasks must number < 2^20 */
        return qat_fail(err, QAT_EINVAL, "session: max_batch: expected in [1, 2^24], found %d",
                        o->max_batch);
    qat_rt_session *s = aligned_alloc(64, (sizeof *s + 63) & ~(size_t)63);
    if (!s)
        return qat_fail(err, QAT_ENOMEM, "session: out of memory");
    memset(s, 0, sizeof *s);
    atomic_init(&s->board, 0);
    atomic_init(&s->done, 0);
    atomic_init(&s->stop, 0);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->m = m;
    s->k = m->k;
    s->threads = o->threads;
    s->max_batch = o->max_batch;
    s->min_task_macs = QAT_RT_MIN_TASK_MACS;
    int per_thread = (o->max_batch + o->threads - 1) / o->threads;
    s->chunk = per_thread < QAT_RT_CHUNK ? per_thread : QAT_RT_CHUNK;
    for (int i = 0; i < m->num_layers; i++) {
        const qat_rt_layer *l = &m->layers[i];
        if (l->is_float) {
            size_t b = qat_rt_float_scratch(&l->fl);
            if (b > s->scratch_stride)
                s->scratch_stride = b;
        } else if (splits_channels(l)) {
            size_t b = l->conv.groups <= 1   ? s->k->conv_scratch(&l->conv, s->chunk)
                       : s->k->gconv_scratch ? s->k->gconv_scratch(&l->conv, s->chunk)
                                             : 0;
            if (b > s->scratch_stride)
                s->scratch_stride = b;
        }
    }
    size_t act_total, scratch_total;
    if (qat_size_mul(m->arena, (size_t)s->chunk, &s->act_stride) ||
        qat_size_add(s->act_stride, 63, &s->act_stride) ||
        qat_size_add(s->scratch_stride, 63, &s->scratch_stride) ||
        qat_size_mul(s->act_stride & ~(size_t)63, (size_t)s->threads, &act_total) ||
        qat_size_mul(s->scratch_stride & ~(size_t)63, (size_t)s->threads, &scratch_total)) {
        qat_rt_session_destroy(s);
        return qat_fail(err, QAT_ENOMEM, "session: buffer size overflows for max_batch %d",
                        o->max_batch);
    }
    s->act_stride &= ~(size_t)63;
    s->scratch_stride &= ~(size_t)63;
    s->min_task = fc_reuse(m) ? 4 : 1;
    s->task_first = malloc(((size_t)o->max_batch + 1) * sizeof *s->task_first);
    s->act = aligned_alloc(64, act_total);
    s->scratch = scratch_total ? aligned_alloc(64, scratch_total) : NULL;
    if (o->profile)
        s->prof = calloc((size_t)m->num_layers + 1, sizeof *s->prof);
    s->tids = calloc((size_t)o->threads, sizeof *s->tids);
    s->workers = calloc((size_t)o->threads, sizeof *s->workers);
    if (!s->act || (scratch_total && !s->scratch) || (o->profile && !s->prof) || !s->tids ||
        !s->workers || !s->task_first) {
        qat_rt_session_destroy(s);
        return qat_fail(err, QAT_ENOMEM, "session: out of memory for %zu bytes of activations",
                        act_total + scratch_total);
    }
    for (int i = 1; i < o->threads; i++) {
        s->workers[i] = (worker){.s = s, .id = i};
        if (pthread_create(&s->tids[i], NULL, worker_main, &s->workers[i]) != 0) {
            qat_rt_session_destroy(s);
            return qat_fail(err, QAT_EINTERNAL, "session: cannot start thread %d of %d", i,
                            o->threads);
        }
        s->started = i;
    }
    *out = s;
    return QAT_OK;
}

void qat_rt_session_set_min_task_macs(qat_rt_session *s, double macs)
{
    s->min_task_macs = macs > 0 ? macs : 1;
}

void qat_rt_session_destroy(qat_rt_session *s)
{
    if (!s)
        return;
    atomic_store(&s->stop, 1);
    pthread_mutex_lock(&s->mu);
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    for (int i = 1; i <= s->started; i++)
        pthread_join(s->tids[i], NULL);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s->tids);
    free(s->workers);
    free(s->act);
    free(s->task_first);
    free(s->scratch);
    free(s->prof);
    free(s);
}

/* Images [first, first + n), fewer than threads * chunk, layer by layer. */
static void run_layers(qat_rt_session *s, int first, int n)
{
    const qat_rt_model *m = s->m;
    double *prof = s->prof;
    const size_t chunk = (size_t)s->chunk; /* the caller's arena: s->act */
    double t = prof ? qat_clock_seconds() : 0.0, t1;
    quantize_images(s, (size_t)first, n, s->act + m->input_off * chunk);
    if (prof) {
        prof[0] += (t1 = qat_clock_seconds()) - t;
        t = t1;
    }
    s->kind = PHASE_LAYER;
    s->nb = n;
    for (int i = 0; i < m->num_layers; i++) {
        const qat_rt_layer *l = &m->layers[i];
        if (skipped(l))
            continue;
        int by_rows;
        size_t units;
        s->layer = i;
        run_phase(s, layer_tasks(s, l, n, &by_rows, &units));
        if (prof) {
            prof[i + 1] += (t1 = qat_clock_seconds()) - t;
            t = t1;
        }
    }
    put_logits(s, (size_t)first, n, s->act + logits_off(m) * chunk);
}

/* The images phase's tasks over [0, n), in the order they are claimed, of
 * decreasing size (guided scheduling): each takes 1 / (2 threads) of the
 * images left, at most a chunk and at least s->min_task, so the tasks
 * that end a run, the ones a descheduled or slower core can hold up, are
 * the smallest (docs/RUNTIME.md §3). Returns the task count. */
static unsigned plan_image_tasks(qat_rt_session *s, int n)
{
    unsigned t = 0;
    for (int first = 0; first < n; t++) {
        const int left = n - first;
        int per = (left + 2 * s->threads - 1) / (2 * s->threads);
        per = per < s->min_task ? s->min_task : per;
        per = per > s->chunk ? s->chunk : per;
        s->task_first[t] = first;
        first += per < left ? per : left;
    }
    s->task_first[t] = n;
    return t;
}

/* The run of n examples already placed in s->images or s->finputs, into
 * s->logits or s->flogits. */
static qat_status run(qat_rt_session *s, int n, qat_error *err)
{
    if (n < 0 || n > s->max_batch)
        return qat_fail(err, QAT_EINVAL, "run: n: expected in [0, %d] (max_batch), found %d",
                        s->max_batch, n);
    if (n == 0)
        return QAT_OK;
    if ((!s->images && !s->finputs) || (!s->logits && !s->flogits))
        return qat_fail(err, QAT_EINVAL, "run: images and logits are required");
    if (s->logits && s->m->float_logits)
        return qat_fail(err, QAT_EINVAL,
                        "run: the model's last layer is a float layer (float32 logits): use "
                        "qat_rt_run_logits or qat_rt_run_float_logits");
    /* images phase: equal chunks of at most `chunk` images, at least one task
     * per thread; the n % threads left over, layer by layer */
    s->n_split = n - n % s->threads;
    if (s->n_split > 0) {
        s->kind = PHASE_IMAGES;
        run_phase(s, plan_image_tasks(s, s->n_split));
    }
    for (int first = s->n_split; first < n; first += s->chunk)
        run_layers(s, first, n - first < s->chunk ? n - first : s->chunk);
    if (s->prof)
        s->prof_images += n;
    return QAT_OK;
}

/* One run from pixels or floats into int8 or float logits (run reports a
 * missing input or output). */
static qat_status start(qat_rt_session *s, const uint8_t *images, const float *inputs, int n,
                        int8_t *logits, float *flogits, qat_error *err)
{
    s->images = images;
    s->finputs = inputs;
    s->logits = logits;
    s->flogits = flogits;
    qat_status st = run(s, n, err);
    s->images = NULL;
    s->finputs = NULL;
    s->logits = NULL;
    s->flogits = NULL;
    return st;
}

qat_status qat_rt_run(qat_rt_session *s, const uint8_t *images, int n, int8_t *logits,
                      qat_error *err)
{
    if (s->m->input_type != QAT_RT_INPUT_UINT8)
        return qat_fail(err, QAT_EINVAL,
                        "run: the model takes float32 inputs (input_type float32): use "
                        "qat_rt_run_float");
    return start(s, images, NULL, n, logits, NULL, err);
}

qat_status qat_rt_run_float(qat_rt_session *s, const float *inputs, int n, int8_t *logits,
                            qat_error *err)
{
    return start(s, NULL, inputs, n, logits, NULL, err);
}

qat_status qat_rt_run_logits(qat_rt_session *s, const uint8_t *images, int n, float *logits,
                             qat_error *err)
{
    if (s->m->input_type != QAT_RT_INPUT_UINT8)
        return qat_fail(err, QAT_EINVAL,
                        "run: the model takes float32 inputs (input_type float32): use "
                        "qat_rt_run_float_logits");
    return start(s, images, NULL, n, NULL, logits, err);
}

qat_status qat_rt_run_float_logits(qat_rt_session *s, const float *inputs, int n, float *logits,
                                   qat_error *err)
{
    return start(s, NULL, inputs, n, NULL, logits, err);
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
