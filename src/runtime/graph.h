/* The inputs of a layer of a model description, version 1 or 2 (a layer
 * with num_inputs 0 reads the one before it). Shared by validation, model
 * building and the writers; no allocation. */
#ifndef QAT_RT_GRAPH_H
#define QAT_RT_GRAPH_H

#include "qat/runtime.h"

/* How many tensors layer i reads. */
static inline int qat_rt_desc_ninputs(const qat_rt_layer_desc *l)
{
    return l->num_inputs > 0 ? l->num_inputs : 1;
}

/* The index of input k of layer i: a layer index, or -1 for the model input. */
static inline int qat_rt_desc_input(const qat_rt_layer_desc *l, int i, int k)
{
    return l->num_inputs > 0 ? l->inputs[k] : i - 1;
}

/* conv2d groups (0 means 1). */
static inline int qat_rt_desc_groups(const qat_rt_layer_desc *l)
{
    return l->op == QAT_RT_CONV2D && l->groups > 1 ? l->groups : 1;
}

/* Whether layer l needs format version 2 (a graph input, a group, a new op). */
static inline int qat_rt_desc_is_v2(const qat_rt_layer_desc *l, int i)
{
    return l->op > QAT_RT_FLATTEN || qat_rt_desc_groups(l) > 1 ||
           (l->num_inputs > 0 && (l->num_inputs != 1 || l->inputs[0] != i - 1));
}

/* Entries of multiplier / shift of a weightless layer with its own output
 * scale (add: both inputs and the output; concat: each input; gap: one). */
static inline int qat_rt_desc_merge_mults(const qat_rt_layer_desc *l)
{
    return l->op == QAT_RT_ADD ? 3 : l->op == QAT_RT_CONCAT ? qat_rt_desc_ninputs(l) : 1;
}

static inline int qat_rt_op_is_merge(qat_rt_op op)
{
    return op == QAT_RT_ADD || op == QAT_RT_CONCAT || op == QAT_RT_GLOBAL_AVGPOOL;
}

#endif
