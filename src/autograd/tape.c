#include "qat/autograd.h"

#include <stdlib.h>
#include <string.h>

#include "qat/clock.h"

/* Nodes are kept in arena-allocated blocks so that recording never mallocs
 * once the arena has reached its step size. */
#define NODE_BLOCK 64

typedef struct node_block {
    struct node_block *next;
    qat_node nodes[NODE_BLOCK];
} node_block;

struct qat_tape {
    qat_arena *arena;
    qat_team *team;
    qat_rng rng;
    node_block *first, *last;
    int nnodes;
    int grad_enabled;
    int training;
    qat_allreduce_fn allreduce; /* data-parallel: across ranks; NULL: one process */
    void *allreduce_ctx;
    int stream;
    /* profiling */
    int profiling, tag;
    double tag_start;
    double fwd[QAT_TAPE_MAX_TAGS], bwd[QAT_TAPE_MAX_TAGS];
};

void qat_tape_set_profiling(qat_tape *t, int on)
{
    t->profiling = on;
    t->tag = 0;
    t->tag_start = qat_clock_seconds();
    memset(t->fwd, 0, sizeof t->fwd);
    memset(t->bwd, 0, sizeof t->bwd);
}

void qat_tape_set_tag(qat_tape *t, int tag)
{
    if (!t->profiling)
        return;
    double now = qat_clock_seconds();
    if (t->tag >= 0)
        t->fwd[t->tag] += now - t->tag_start;
    t->tag_start = now;
    t->tag = tag < 0 ? -1 : tag >= QAT_TAPE_MAX_TAGS ? QAT_TAPE_MAX_TAGS - 1 : tag;
}

void qat_tape_profile(const qat_tape *t, double *fwd, double *bwd)
{
    memcpy(fwd, t->fwd, sizeof t->fwd);
    memcpy(bwd, t->bwd, sizeof t->bwd);
}

qat_status qat_tape_create(qat_team *team, qat_tape **out, qat_error *err)
{
    *out = NULL;
    qat_tape *t = calloc(1, sizeof *t);
    if (!t)
        return qat_fail(err, QAT_ENOMEM, "out of memory creating tape");
    t->arena = qat_arena_create((size_t)1 << 20);
    if (!t->arena) {
        free(t);
        return qat_fail(err, QAT_ENOMEM, "out of memory creating tape arena");
    }
    t->team = team;
    t->grad_enabled = 1;
    t->training = 1;
    qat_rng_seed(&t->rng, 0, 0);
    *out = t;
    return QAT_OK;
}

void qat_tape_destroy(qat_tape *t)
{
    if (!t)
        return;
    qat_arena_destroy(t->arena);
    free(t);
}

void qat_tape_reset(qat_tape *t)
{
    qat_arena_reset(t->arena);
    t->first = t->last = NULL;
    t->nnodes = 0;
}

void qat_tape_set_grad_enabled(qat_tape *t, int on) { t->grad_enabled = on; }
int qat_tape_grad_enabled(const qat_tape *t) { return t->grad_enabled; }
void qat_tape_set_training(qat_tape *t, int on) { t->training = on; }
int qat_tape_training(const qat_tape *t) { return t->training; }
qat_team *qat_tape_team(qat_tape *t) { return t->team; }
qat_arena *qat_tape_arena(qat_tape *t) { return t->arena; }
qat_rng *qat_tape_rng(qat_tape *t) { return &t->rng; }

void qat_tape_set_allreduce(qat_tape *t, qat_allreduce_fn fn, void *ctx, int stream)
{
    t->allreduce = fn;
    t->allreduce_ctx = ctx;
    t->stream = stream;
}

void qat_tape_allreduce(qat_tape *t, double *v, size_t n, qat_reduce_op op)
{
    if (t->allreduce)
        t->allreduce(t->allreduce_ctx, v, n, op);
}

int qat_tape_stream(const qat_tape *t) { return t->stream; }
int qat_tape_num_nodes(const qat_tape *t) { return t->nnodes; }

size_t qat_shape_numel(int ndim, const int *shape)
{
    size_t n = 1;
    for (int i = 0; i < ndim; i++) {
        QAT_ASSERT(shape[i] >= 0);
        n *= (size_t)shape[i];
    }
    return n;
}

qat_tensor qat_tensor_view(float *data, float *grad, int ndim, const int *shape)
{
    QAT_ASSERT(ndim >= 0 && ndim <= QAT_MAX_DIMS);
    qat_tensor x;
    memset(&x, 0, sizeof x);
    x.data = data;
    x.grad = grad;
    x.ndim = ndim;
    for (int i = 0; i < ndim; i++)
        x.shape[i] = shape[i];
    x.numel = qat_shape_numel(ndim, shape);
    x.requires_grad = grad != NULL;
    return x;
}

void *qat_tape_alloc(qat_tape *t, size_t bytes) { return qat_arena_alloc(t->arena, bytes); }

qat_tensor *qat_tape_tensor(qat_tape *t, int ndim, const int *shape)
{
    QAT_ASSERT(ndim >= 1 && ndim <= QAT_MAX_DIMS);
    qat_tensor *x = qat_arena_alloc(t->arena, sizeof *x);
    memset(x, 0, sizeof *x);
    x->ndim = ndim;
    for (int i = 0; i < ndim; i++)
        x->shape[i] = shape[i];
    x->numel = qat_shape_numel(ndim, shape);
    x->data = qat_arena_alloc(t->arena, x->numel * sizeof(float));
    return x;
}

int qat_tape_record(qat_tape *t, qat_backward_fn fn, qat_tensor *out, void *saved, int nin,
                    qat_tensor *const *in)
{
    QAT_ASSERT(nin >= 0 && nin <= 4);
    int any = 0;
    for (int i = 0; i < nin; i++)
        any |= qat_needs_grad(in[i]);
    out->requires_grad = any && t->grad_enabled;
    if (!out->requires_grad)
        return 0;
    if (!t->last || t->nnodes % NODE_BLOCK == 0) {
        node_block *b = qat_arena_alloc(t->arena, sizeof *b);
        b->next = NULL;
        if (t->last)
            t->last->next = b;
        else
            t->first = b;
        t->last = b;
    }
    qat_node *n = &t->last->nodes[t->nnodes % NODE_BLOCK];
    n->backward = fn;
    n->out = out;
    n->nin = nin;
    for (int i = 0; i < 4; i++)
        n->in[i] = i < nin ? in[i] : NULL;
    n->saved = saved;
    n->tag = t->tag < 0 ? 0 : t->tag;
    t->nnodes++;
    return 1;
}

float *qat_tape_grad(qat_tape *t, qat_tensor *x)
{
    if (!x->grad)
        x->grad = qat_arena_calloc(t->arena, x->numel * sizeof(float));
    return x->grad;
}

float *qat_tape_grad_fresh(qat_tape *t, qat_tensor *x, int *fresh)
{
    *fresh = !x->grad;
    if (!x->grad)
        x->grad = qat_arena_alloc(t->arena, x->numel * sizeof(float));
    return x->grad;
}

void qat_tape_backward(qat_tape *t, qat_tensor *loss) { qat_tape_backward_weighted(t, loss, 1.0f); }

void qat_tape_backward_weighted(qat_tape *t, qat_tensor *loss, float w)
{
    QAT_ASSERT(loss->numel == 1);
    if (!loss->requires_grad)
        return;
    qat_tape_grad(t, loss)[0] += w;
    /* Blocks form a singly linked list; collect them to walk backwards. */
    int nblocks = (t->nnodes + NODE_BLOCK - 1) / NODE_BLOCK;
    node_block **blocks = qat_arena_alloc(t->arena, (size_t)nblocks * sizeof *blocks);
    int i = 0;
    for (node_block *b = t->first; b; b = b->next)
        blocks[i++] = b;
    for (int k = t->nnodes - 1; k >= 0; k--) {
        const qat_node *n = &blocks[k / NODE_BLOCK]->nodes[k % NODE_BLOCK];
        if (!n->out->grad)
            continue; /* nothing downstream used this output */
        if (t->profiling) {
            double t0 = qat_clock_seconds();
            n->backward(t, n);
            t->bwd[n->tag] += qat_clock_seconds() - t0;
        } else {
            n->backward(t, n);
        }
    }
}
