/* The kernel interface of the integer runtime: plain parameter structs, one
 * function type per op, and a table of function pointers that a session
 * picks once (the dispatch point). Every ISA path (kernels/ref now;
 * kernels/avx2 and kernels/neon later, in files built with their own ISA
 * flags) fills the same table, and kernels/ref is the oracle the others must
 * equal bit for bit. Kernels never allocate and never touch globals: any
 * scratch they need is sized by the table's *_scratch query and passed in.
 * Semantics: docs/ARITHMETIC.md. */
#ifndef QAT_RT_KERNELS_H
#define QAT_RT_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "qat/status.h"

/* conv2d and linear (linear reads only in_c = K and out_c; its input and
 * output are 1 x 1 x C). Activations NHWC int8, images contiguous. */
typedef struct qat_rt_conv_params {
    int in_h, in_w, in_c;
    int out_h, out_w, out_c;
    int kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w;
    int32_t in_zp, out_zp, act_min, act_max;
    const int8_t *weights;       /* [out_c][kernel_h][kernel_w][in_c], unpacked */
    const int32_t *weight_zp;    /* out_c */
    /* bias[c] - in_zp * sum_k (w[c][k] - weight_zp[c]): with it, the int32
     * accumulator is bias_folded[c] + sum_k (w - weight_zp) * x, where a
     * padded tap reads x = in_zp. Never overflows given model validation. */
    const int32_t *bias_folded;  /* out_c */
    const int32_t *multiplier;   /* out_c */
    const int32_t *shift;        /* out_c */
} qat_rt_conv_params;

/* maxpool2d / avgpool2d: no padding; zero point shared by input and output. */
typedef struct qat_rt_pool_params {
    int in_h, in_w, c;
    int out_h, out_w;
    int kernel_h, kernel_w, stride_h, stride_w;
    int32_t zp; /* avgpool only */
} qat_rt_pool_params;

/* Each op runs on n whole images: in holds n input tensors back to back,
 * out receives n output tensors back to back. */
typedef void (*qat_rt_conv_fn)(const qat_rt_conv_params *p, const int8_t *in, int8_t *out, int n,
                               void *scratch);
typedef void (*qat_rt_pool_fn)(const qat_rt_pool_params *p, const int8_t *in, int8_t *out, int n);
/* Model input: q = p - 128 for count pixels. */
typedef void (*qat_rt_quantize_fn)(const uint8_t *pixels, int8_t *q, size_t count);
/* Bytes of scratch a conv/linear kernel needs for n images (may be 0). */
typedef size_t (*qat_rt_scratch_fn)(const qat_rt_conv_params *p, int n);

typedef struct qat_rt_kernels {
    const char *isa; /* "ref", later "avx2", "neon" */
    qat_rt_quantize_fn quantize_input;
    qat_rt_conv_fn conv2d;
    qat_rt_scratch_fn conv2d_scratch;
    qat_rt_conv_fn linear;
    qat_rt_scratch_fn linear_scratch;
    qat_rt_pool_fn maxpool2d;
    qat_rt_pool_fn avgpool2d;
} qat_rt_kernels;

/* The plain C reference path (always available). */
extern const qat_rt_kernels qat_rt_kernels_ref;

/* Picks a kernel table: isa NULL or "auto" gives the best path this build
 * and CPU support (only "ref" exists for now); naming a path that is not
 * available is QAT_EUNSUPPORTED, an unknown name QAT_EINVAL. */
qat_status qat_rt_kernels_select(const char *isa, const qat_rt_kernels **out, qat_error *err);

/* Reference kernels: the scalar twins every SIMD kernel is tested against. */
void qat_u8_quantize_input__ref(const uint8_t *pixels, int8_t *q, size_t count);
void qat_s8_conv2d__ref(const qat_rt_conv_params *p, const int8_t *in, int8_t *out, int n,
                        void *scratch);
void qat_s8_linear__ref(const qat_rt_conv_params *p, const int8_t *in, int8_t *out, int n,
                        void *scratch);
void qat_s8_maxpool2d__ref(const qat_rt_pool_params *p, const int8_t *in, int8_t *out, int n);
void qat_s8_avgpool2d__ref(const qat_rt_pool_params *p, const int8_t *in, int8_t *out, int n);
size_t qat_rt_no_scratch__ref(const qat_rt_conv_params *p, int n);

#endif
