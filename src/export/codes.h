/* The integer model while export builds it (export-internal): every layer's
 * description with its weight codes unpacked, one int8 per weight, and its
 * per-channel arrays in memory export may rewrite. Channel removal and the
 * int8 sparsity count work on this form; the runtime's packer turns it into
 * a qat_rt_owned_desc once, at the end (qat_export_pack). */
#ifndef QAT_EXPORT_CODES_H
#define QAT_EXPORT_CODES_H

#include <stdint.h>

#include "qat/runtime.h"

typedef struct qat_export_layer {
    /* shapes, quantization, clamps and weight_bits; its array pointers stay
     * NULL (the arrays are below) */
    qat_rt_layer_desc d;
    /* conv2d / linear (NULL otherwise): d.out_c rows of
     * d.kernel_h * d.kernel_w * d.in_c codes (order kh, kw, c_in), and d.out_c
     * entries of each array. weight_zero_point is NULL for symmetric weights
     * (every zero point 0). One allocation, owned (qat_export_layer_alloc). */
    int8_t *codes;
    int32_t *bias, *multiplier, *shift, *weight_zero_point;
    float *weight_scale;
    /* a float layer (d.is_float; codes and the int arrays NULL): d.out_c
     * rows of float32 weights in the codes' order, then d.out_c biases, in
     * one owned allocation at fweights */
    float *fweights, *fbias;
    /* add / concat / global_avgpool: qat_rt_desc_merge_mults entries */
    int32_t merge_mult[QAT_RT_MAX_INPUTS], merge_shift[QAT_RT_MAX_INPUTS];
} qat_export_layer;

/* A codebook for oc rows of rowlen codes with at most k distinct codes in
 * the layer (returns 1: k codes in cb) or else in every row (returns oc:
 * oc * k codes), and each code's slot in idx (oc * rowlen); 0 when neither
 * fits (the layer stays unpalettized). cb holds oc * k codes. */
int qat_export_palette(const int8_t *codes, size_t oc, size_t rowlen, int k, int8_t *cb,
                       uint8_t *idx);

typedef struct qat_export_model {
    qat_rt_model_desc d; /* input shape and quantization, num_classes, num_layers */
    qat_export_layer *layers; /* d.num_layers entries; d.layers stays NULL */
    float *input_arrays; /* float32 inputs: d.in_c offsets then d.in_c steps (owned), else NULL */
} qat_export_model;

/* Weights of a conv2d / linear layer's row (one output channel; a grouped
 * conv's row spans its group's in_c / groups channels). */
static inline size_t qat_export_row_len(const qat_rt_layer_desc *d)
{
    int g = d->op == QAT_RT_CONV2D && d->groups > 1 ? d->groups : 1;
    return (size_t)d->kernel_h * (size_t)d->kernel_w * (size_t)(d->in_c / g);
}

/* Allocates l's codes and arrays for the shapes in l->d (conv2d / linear),
 * with a weight zero point array only if asymmetric; contents unset. */
qat_status qat_export_layer_alloc(qat_export_layer *l, int asymmetric, qat_error *err);
/* Frees every layer's arrays and the layer array; zeroes *x. */
void qat_export_model_free(qat_export_model *x);

/* Takes out of x every dead output channel of a conv2d / linear layer but
 * the last (all weight codes at the zero point and bias code 0, so the
 * channel outputs its zero point, a real 0, for every input) and the
 * matching inputs of the next conv2d / linear (through pools, and every
 * (h, w, c) position of a flatten in between), in place (src/export/remove.c).
 * Exact: the integer model computes the same logits, bit for bit. A layer
 * keeps at least one channel. *removed (may be NULL) gets the number of
 * channels taken out. */
qat_status qat_export_remove_channels(qat_export_model *x, int *removed, qat_error *err);

/* Packs x into an owned description: weights through qat_rt_pack_weights
 * at each layer's weight_bits, every array copied into one blob. */
qat_status qat_export_pack(const qat_export_model *x, qat_rt_owned_desc *out, qat_error *err);

#endif
