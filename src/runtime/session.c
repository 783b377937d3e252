/* Sessions: every buffer is sized at creation; qat_rt_run only computes.
 * A batch is split into contiguous image ranges, one per pool member, and
 * each member runs the whole network on its range in chunks of at most
 * `chunk` images, ping-ponging between two private activation buffers. An
 * image's result never depends on which member computed it, so logits are
 * identical for every thread count. */
#include <stdlib.h>
#include <string.h>

#include "qat/pool.h"
#include "runtime/rt_internal.h"

/* Images per kernel call: enough for weight reuse in linear layers, small
 * enough that the activations of a chunk stay in cache. */
#define QAT_RT_CHUNK 16

struct qat_rt_session {
    const qat_rt_model *m;
    const qat_rt_kernels *k;
    qat_pool *pool;
    int threads, max_batch, chunk;
    size_t act_stride;     /* bytes of one activation buffer (chunk images) */
    size_t scratch_stride; /* bytes of one member's kernel scratch */
    int8_t *act;           /* threads * 2 * act_stride */
    unsigned char *scratch;
    /* the batch in flight */
    const uint8_t *images;
    int n;
    int8_t *logits;
};

static size_t layer_scratch(const qat_rt_kernels *k, const qat_rt_layer *l, int n)
{
    if (l->op == QAT_RT_CONV2D)
        return k->conv2d_scratch(&l->conv, n);
    if (l->op == QAT_RT_LINEAR)
        return k->linear_scratch(&l->conv, n);
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
    if (o->max_batch < 1)
        return qat_fail(err, QAT_EINVAL, "session: max_batch: expected >= 1, found %d",
                        o->max_batch);
    qat_rt_session *s = calloc(1, sizeof *s);
    if (!s)
        return qat_fail(err, QAT_ENOMEM, "session: out of memory");
    s->m = m;
    s->threads = o->threads;
    s->max_batch = o->max_batch;
    qat_status st = qat_rt_kernels_select(NULL, &s->k, err);
    if (st) {
        free(s);
        return st;
    }
    int per_thread = (o->max_batch + o->threads - 1) / o->threads;
    s->chunk = per_thread < QAT_RT_CHUNK ? per_thread : QAT_RT_CHUNK;
    for (int i = 0; i < m->num_layers; i++) {
        size_t b = layer_scratch(s->k, &m->layers[i], s->chunk);
        if (b > s->scratch_stride)
            s->scratch_stride = b;
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
    if (!s->act || (scratch_total && !s->scratch)) {
        qat_rt_session_destroy(s);
        return qat_fail(err, QAT_ENOMEM, "session: out of memory for %zu bytes of activations",
                        act_total + scratch_total);
    }
    st = qat_pool_create(o->threads, &s->pool, err);
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
    free(s);
}

/* Runs every layer on n images starting at in (quantized input); returns
 * the buffer that holds the last layer's output. */
static int8_t *forward(const qat_rt_session *s, int8_t *a, int8_t *b, int n, void *scratch)
{
    const qat_rt_kernels *k = s->k;
    for (int i = 0; i < s->m->num_layers; i++) {
        const qat_rt_layer *l = &s->m->layers[i];
        switch (l->op) {
        case QAT_RT_CONV2D: k->conv2d(&l->conv, a, b, n, scratch); break;
        case QAT_RT_LINEAR: k->linear(&l->conv, a, b, n, scratch); break;
        case QAT_RT_MAXPOOL2D: k->maxpool2d(&l->pool, a, b, n); break;
        case QAT_RT_AVGPOOL2D: k->avgpool2d(&l->pool, a, b, n); break;
        case QAT_RT_FLATTEN: continue; /* NHWC memory is already flat */
        }
        int8_t *t = a;
        a = b;
        b = t;
    }
    return a;
}

static void run_member(void *ctx, int tid, int nt)
{
    const qat_rt_session *s = ctx;
    const qat_rt_model *m = s->m;
    size_t begin, end;
    qat_pool_range((size_t)s->n, tid, nt, &begin, &end);
    int8_t *a = s->act + (size_t)tid * 2 * s->act_stride;
    int8_t *b = a + s->act_stride;
    void *scratch = s->scratch ? s->scratch + (size_t)tid * s->scratch_stride : NULL;
    const size_t classes = (size_t)m->num_classes;
    for (size_t i = begin; i < end; i += (size_t)s->chunk) {
        int n = (int)(end - i < (size_t)s->chunk ? end - i : (size_t)s->chunk);
        s->k->quantize_input(s->images + i * m->input_size, a, (size_t)n * m->input_size);
        int8_t *res = forward(s, a, b, n, scratch);
        memcpy(s->logits + i * classes, res, (size_t)n * classes);
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
    s->logits = logits;
    qat_pool_run(s->pool, run_member, s);
    s->images = NULL;
    s->logits = NULL;
    return QAT_OK;
}
