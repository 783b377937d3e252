/* The model struct, shared by the files of src/nn only. */
#ifndef QAT_NN_MODEL_INTERNAL_H
#define QAT_NN_MODEL_INTERNAL_H

#include "qat/nn.h"

struct qat_model {
    qat_config cfg;
    int nlayers;
    qat_layer layers[QAT_MAX_LAYERS];
    float *params, *grads, *state;
    size_t nparams, nstate;
    qat_param_seg *segs;
    int nsegs;
    void *qbuf; /* backing store of every layer's qat_layer_quant arrays */
    int quant_active;
    int observers_frozen;
};

/* Derives layer l's output quantization from its observer and its input
 * quantization (already in l->q.in), filling l->q. Returns 0, or -1 if a
 * multiplier cannot be represented (then it saturates). */
int qat_layer_derive_qparams(qat_layer *l);

#endif
