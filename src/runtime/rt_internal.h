/* What a built model looks like inside the runtime (not a public contract). */
#ifndef QAT_RT_INTERNAL_H
#define QAT_RT_INTERNAL_H

#include "qat/runtime.h"
#include "runtime/kernels/kernels.h"

/* A float conv2d / linear layer (docs/ARITHMETIC.md §7): one portable
 * function for every ISA path, so every path gives the same bits. */
typedef struct qat_rt_float_params {
    int in_h, in_w, in_c, out_h, out_w, out_c;
    int kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w;
    float in_scale, out_scale;
    int32_t in_zp, out_zp, act_min, act_max;
    qat_rt_float_act act;
    int float_out; /* the model's logits: float32 values out, not int8 codes */
    const float *weights, *bias; /* in the model's blob */
} qat_rt_float_params;

/* Scratch bytes of qat_rt_float_layer: one gathered input window. */
size_t qat_rt_float_scratch(const qat_rt_float_params *p);
/* Output rows [m0, m1) (pixels of the batch, as for conv) and channels
 * [c0, c1) of a float layer: in is int8, out int8 codes or (float_out)
 * float32 values. scratch: qat_rt_float_scratch bytes, float-aligned. */
void qat_rt_float_layer(const qat_rt_float_params *p, const int8_t *in, void *out, size_t m0,
                        size_t m1, int c0, int c1, void *scratch);

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
    int is_float;             /* conv2d / linear in float: fl, not conv's arrays */
    qat_rt_float_params fl;
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
    int float_logits; /* the output layer is a float layer: float32 logits */
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

/* The least work (multiply-accumulates, session.c) a layer phase gives a
 * task; below twice it a layer is one task on the calling thread. For
 * tests: 1 splits every layer as far as its rows or channels go, the way
 * sessions did before 2026-12-07, so the split paths stay covered by
 * small models. */
void qat_rt_session_set_min_task_macs(qat_rt_session *s, double macs);

#endif
