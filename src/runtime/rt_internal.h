/* What a built model looks like inside the runtime (not a public contract). */
#ifndef QAT_RT_INTERNAL_H
#define QAT_RT_INTERNAL_H

#include "qat/runtime.h"
#include "runtime/kernels/kernels.h"

typedef struct qat_rt_layer {
    qat_rt_op op;
    char name[QAT_RT_NAME_MAX];
    size_t in_size, out_size; /* elements per image */
    size_t rows;              /* output rows per image the kernels count (pixels) */
    /* conv2d whose following 2x2 stride-2 maxpool runs inside it
     * (kernels conv2d_maxpool): rows is then the pool's, and the pool layer
     * is marked done_by_previous. */
    int fused_pool;
    int done_by_previous;
    double macs;              /* multiply-accumulates per image (profiling) */
    qat_rt_conv_params conv;  /* conv2d, linear: arrays and packed weights in the blob */
    qat_rt_pool_params pool;  /* maxpool2d, avgpool2d */
    qat_rt_merge_params merge; /* add, concat, global_avgpool */
    /* what it reads: layer indices, -1 the model input */
    int ninputs;
    int inputs[QAT_RT_MAX_INPUTS];
    /* where its inputs and output live in the activation arena (plan.c):
     * byte offsets per image, to be multiplied by a session's chunk */
    size_t in_off[QAT_RT_MAX_INPUTS], out_off;
} qat_rt_layer;

struct qat_rt_model {
    const qat_rt_kernels *k; /* chosen at creation; the weights are packed for it */
    int in_h, in_w, in_c;
    size_t input_size;
    int num_classes;
    float output_scale;
    int32_t output_zero_point;
    int num_layers;
    qat_rt_layer *layers;
    /* the input stage (qat_rt_quantize_float); uint8 models get offset 0 and
     * step 1/255 so the float entry serves them too */
    qat_rt_input_type input_type;
    qat_rt_task task;
    int32_t input_zero_point;
    float *input_offset, *input_step; /* in_c each */
    /* The activation arena (plan.c): bytes per image, and where the
     * quantized model input goes. Tensors whose live ranges overlap never
     * share bytes; the others do. */
    size_t arena, input_off;
    void *blob;        /* every array the layers point into */
};

/* Plans m's activation arena from its layers' inputs, outputs, fused
 * pools and flattens (which alias their input): fills each layer's in_off
 * and out_off, m->input_off and m->arena. No allocation beyond a few
 * small arrays at model creation. */
qat_status qat_rt_plan_arena(qat_rt_model *m, qat_error *err);

#endif
