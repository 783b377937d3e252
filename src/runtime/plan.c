/* The activation arena of a model: one offset per stored tensor, planned
 * at model creation from live ranges over the DAG in file order, so that
 * qat_rt_run only indexes. Greedy by size (TFLite's arena planner uses the
 * same idea): the biggest tensors are placed first, each at the lowest
 * offset where it overlaps no placed tensor that is alive at the same
 * time. For a chain this gives what ping-pong buffers gave; for a residual
 * block it keeps the skip tensor alive across the block and no longer. */
#include <stdlib.h>
#include <string.h>

#include "qat/fixedpoint.h"
#include "runtime/rt_internal.h"

#define ALIGN 64

typedef struct {
    size_t size, off;
    int first, last; /* steps: 0 the input stage, i + 1 layer i, L + 1 the logits copy */
    int placed;
} slot;

static int skipped(const qat_rt_layer *l)
{
    return l->op == QAT_RT_FLATTEN || l->done_by_previous;
}

qat_status qat_rt_plan_arena(qat_rt_model *m, qat_error *err)
{
    const int L = m->num_layers;
    /* tensor t: 0 the model input, i + 1 layer i's output; store[t] the
     * tensor whose bytes hold it, -1 if never stored (a conv's output that
     * its fused pool consumes inside the kernel) */
    int *store = malloc((size_t)(L + 1) * sizeof *store);
    slot *sl = calloc((size_t)L + 1, sizeof *sl);
    int *order = malloc((size_t)(L + 1) * sizeof *order);
    if (!store || !sl || !order) {
        free(store);
        free(sl);
        free(order);
        return qat_fail(err, QAT_ENOMEM, "model: out of memory planning the activations");
    }
    store[0] = 0;
    sl[0].size = m->input_size;
    sl[0].first = sl[0].last = 0;
    for (int i = 0; i < L; i++) {
        const qat_rt_layer *l = &m->layers[i];
        int t = i + 1;
        store[t] = l->op == QAT_RT_FLATTEN ? store[l->inputs[0] + 1] : l->fused_pool ? -1 : t;
        /* a float layer giving the logits writes float32 values */
        sl[t].size = l->is_float && l->fl.float_out ? l->out_size * sizeof(float) : l->out_size;
        /* written by the layer itself, or by the conv a fused pool runs in */
        sl[t].first = sl[t].last = l->done_by_previous ? t - 1 : t;
    }
    for (int i = 0; i < L; i++) {
        const qat_rt_layer *l = &m->layers[i];
        if (skipped(l))
            continue;
        for (int k = 0; k < l->ninputs; k++) {
            int s = store[l->inputs[k] + 1];
            if (sl[s].last < i + 1)
                sl[s].last = i + 1;
        }
    }
    sl[store[L]].last = L + 1;
    int n = 0;
    for (int t = 0; t <= L; t++)
        if (store[t] == t) {
            size_t sz;
            if (qat_size_add(sl[t].size, ALIGN - 1, &sz)) {
                free(store), free(sl), free(order);
                return qat_fail(err, QAT_ENOMEM, "model: activation sizes overflow");
            }
            sl[t].size = sz & ~(size_t)(ALIGN - 1);
            order[n++] = t;
        }
    /* biggest first; ties in file order (a stable, deterministic plan) */
    for (int a = 1; a < n; a++)
        for (int b = a; b > 0 && sl[order[b]].size > sl[order[b - 1]].size; b--) {
            int tmp = order[b];
            order[b] = order[b - 1];
            order[b - 1] = tmp;
        }
    size_t arena = 0;
    for (int a = 0; a < n; a++) {
        slot *x = &sl[order[a]];
        size_t off = 0;
        /* raise off past every placed, concurrently live slot it would
         * overlap, until a pass moves it no more */
        for (int moved = 1; moved;) {
            moved = 0;
            for (int b = 0; b < a; b++) {
                const slot *y = &sl[order[b]];
                if (y->last < x->first || x->last < y->first)
                    continue; /* never alive together */
                if (off < y->off + y->size && y->off < off + x->size) {
                    off = y->off + y->size;
                    moved = 1;
                }
            }
        }
        x->off = off;
        if (off + x->size > arena)
            arena = off + x->size;
    }
    m->arena = arena;
    m->input_off = sl[0].off;
    for (int i = 0; i < L; i++) {
        qat_rt_layer *l = &m->layers[i];
        /* a pool fused into its conv reads a tensor that is never stored
         * (store -1): it runs inside the conv's kernel and needs no offset */
        for (int k = 0; k < l->ninputs; k++) {
            int s = store[l->inputs[k] + 1];
            l->in_off[k] = s >= 0 ? sl[s].off : 0;
        }
        int target = l->fused_pool ? store[i + 2] : store[i + 1];
        l->out_off = target >= 0 ? sl[target].off : 0;
    }
    free(store);
    free(sl);
    free(order);
    return QAT_OK;
}
