/* Owned model descriptions. The type is the runtime core's, not the HDF5
 * layer's: export builds one from a trained model without touching model
 * files, and any loader may hand one to qat_rt_model_create. */
#include <stdlib.h>
#include <string.h>

#include "qat/runtime.h"

void qat_rt_owned_desc_free(qat_rt_owned_desc *d)
{
    if (!d)
        return;
    free(d->layers);
    free(d->blob);
    memset(d, 0, sizeof *d);
}

/* How many tensors layer i reads. */
int qat_rt_desc_ninputs(const qat_rt_layer_desc *l)
{
    return l->num_inputs > 0 ? l->num_inputs : 1;
}

/* The index of input k of layer i: a layer index, or -1 for the model input. */
int qat_rt_desc_input(const qat_rt_layer_desc *l, int i, int k)
{
    return l->num_inputs > 0 ? l->inputs[k] : i - 1;
}

/* conv2d groups (0 means 1). */
int qat_rt_desc_groups(const qat_rt_layer_desc *l)
{
    return l->op == QAT_RT_CONV2D && l->groups > 1 ? l->groups : 1;
}

/* Whether layer l needs format version 2 (a graph input, a group, a new op). */
int qat_rt_desc_is_v2(const qat_rt_layer_desc *l, int i)
{
    return l->op > QAT_RT_FLATTEN || qat_rt_desc_groups(l) > 1 ||
           (l->num_inputs > 0 && (l->num_inputs != 1 || l->inputs[0] != i - 1));
}

/* Entries of multiplier / shift of a weightless layer with its own output
 * scale (add: both inputs and the output; concat: each input; gap: one). */
int qat_rt_desc_merge_mults(const qat_rt_layer_desc *l)
{
    return l->op == QAT_RT_ADD ? 3 : l->op == QAT_RT_CONCAT ? qat_rt_desc_ninputs(l) : 1;
}

int qat_rt_op_is_merge(qat_rt_op op)
{
    return op == QAT_RT_ADD || op == QAT_RT_CONCAT || op == QAT_RT_GLOBAL_AVGPOOL;
}

int qat_rt_desc_output_layer(const qat_rt_model_desc *d)
{
    int src = d->num_layers - 1;
    while (src >= 0 && d->layers[src].op == QAT_RT_FLATTEN)
        src = qat_rt_desc_input(&d->layers[src], src, 0);
    return src;
}

int qat_rt_desc_float_logits(const qat_rt_model_desc *d)
{
    int src = qat_rt_desc_output_layer(d);
    return src >= 0 && d->layers[src].is_float;
}
