/* Differentiable ops. Each records itself on the tape (when grad is enabled
 * and an input requires grad) and returns an arena-owned output. Shapes are
 * validated when the model is built; here a mismatch is a broken invariant.
 * Ops parallelise over the tape's thread team with a static split, so results are
 * bit-identical for a given thread count. */
#ifndef QAT_OPS_H
#define QAT_OPS_H

#include <stdint.h>

#include "qat/autograd.h"

/* ---- dense ---------------------------------------------------------------- */
/* y = x w^T + b. x [N, In], w [Out, In], b [Out] or NULL. sgemm (OpenBLAS). */
qat_tensor *qat_op_linear(qat_tape *t, qat_tensor *x, qat_tensor *w, qat_tensor *b);
qat_tensor *qat_op_relu(qat_tape *t, qat_tensor *x);
/* min(max(x, 0), 6); the gradient passes where 0 < y < 6. */
qat_tensor *qat_op_relu6(qat_tape *t, qat_tensor *x);

/* ---- convolution and pooling (NHWC) ------------------------------------------ */
typedef struct qat_conv2d_params {
    int stride_h, stride_w;
    int pad_h, pad_w; /* zero padding on both sides */
} qat_conv2d_params;
/* x [N,H,W,Cin], w [Cout,KH,KW,Cin], b [Cout] or NULL -> [N,OH,OW,Cout],
 * OH = (H + 2 pad_h - KH) / stride_h + 1. */
qat_tensor *qat_op_conv2d(qat_tape *t, qat_tensor *x, qat_tensor *w, qat_tensor *b,
                          const qat_conv2d_params *p);
/* Grouped convolution: w [Cout,KH,KW,Cin/groups]; output channel co sees
 * the Cin/groups input channels of group co / (Cout/groups). groups = Cin
 * is depthwise (Cout = Cin x multiplier). groups = 1 is qat_op_conv2d. */
qat_tensor *qat_op_conv2d_grouped(qat_tape *t, qat_tensor *x, qat_tensor *w, qat_tensor *b,
                                  const qat_conv2d_params *p, int groups);
/* Output size of a conv/pool along one axis; <= 0 if the kernel does not fit. */
static inline int qat_conv_out_size(int in, int k, int stride, int pad)
{
    return in + 2 * pad < k || stride < 1 ? 0 : (in + 2 * pad - k) / stride + 1;
}

typedef struct qat_pool2d_params {
    int kernel_h, kernel_w;
    int stride_h, stride_w;
} qat_pool2d_params;
/* Windows without padding; ties in max pooling go to the first element in
 * window order (kh, kw), which is what the runtime picks too. */
qat_tensor *qat_op_maxpool2d(qat_tape *t, qat_tensor *x, const qat_pool2d_params *p);
qat_tensor *qat_op_avgpool2d(qat_tape *t, qat_tensor *x, const qat_pool2d_params *p);
/* qat_op_maxpool2d(qat_op_conv2d(x, w, b, p), pp) as one op (relu != 0:
 * followed by qat_op_relu), for windows that tile (stride = kernel, at most
 * 255 taps; qat_conv2d_maxpool_fuses): the same values and winners, the
 * full-size conv output never stored. Output [N, OH / kernel_h,
 * OW / kernel_w, Cout]. */
int qat_conv2d_maxpool_fuses(const qat_pool2d_params *pp);
qat_tensor *qat_op_conv2d_maxpool(qat_tape *t, qat_tensor *x, qat_tensor *w, qat_tensor *b,
                                  const qat_conv2d_params *p, const qat_pool2d_params *pp,
                                  int relu);
/* [N, ...] -> [N, prod(...)]; shares x's data. */
qat_tensor *qat_op_flatten(qat_tape *t, qat_tensor *x);

/* ---- normalisation and regularisation ------------------------------------------ */
/* Batch normalisation over the last axis: x [N,C] (1d) or [N,H,W,C] (2d).
 * In training mode (qat_tape_training) it normalises with the batch
 * statistics and updates running_mean/var with
 * running = (1 - momentum) * running + momentum * batch (unbiased variance);
 * otherwise it uses the running statistics. gamma/beta are parameters [C]. */
qat_tensor *qat_op_batchnorm(qat_tape *t, qat_tensor *x, qat_tensor *gamma, qat_tensor *beta,
                             float *running_mean, float *running_var, float momentum, float eps);
/* Inverted dropout with probability p, drawn from qat_tape_rng; identity
 * outside training mode. */
qat_tensor *qat_op_dropout(qat_tape *t, qat_tensor *x, float p);

/* ---- losses (scalar outputs) --------------------------------------------------- */
/* Mean over the batch of -log softmax(logits[n])[labels[n]]; logits [N, C].
 * Stable (max-subtracted log-sum-exp). */
qat_tensor *qat_op_softmax_cross_entropy(qat_tape *t, qat_tensor *logits, const uint8_t *labels);
/* The same against smoothed targets (1 - eps) onehot + eps / C, eps in [0, 1). */
qat_tensor *qat_op_softmax_cross_entropy_smooth(qat_tape *t, qat_tensor *logits,
                                                const uint8_t *labels, float eps);
/* Mean over all elements of (x - target)^2; target has x->numel floats. */
qat_tensor *qat_op_mse(qat_tape *t, qat_tensor *x, const float *target);
/* Mean absolute error, mean |x - target| (gradient sign(x - target), 0 at
 * 0), and the Huber loss, mean of 0.5 d^2 / delta where |d| < delta and
 * |d| - delta / 2 beyond (delta > 0; the scale of PyTorch's SmoothL1Loss
 * with beta = delta). target must outlive the step. */
qat_tensor *qat_op_l1(qat_tape *t, qat_tensor *x, const float *target);
qat_tensor *qat_op_huber(qat_tape *t, qat_tensor *x, const float *target, float delta);
/* Knowledge distillation: T^2 times the batch mean of
 * KL(softmax(teacher[n] / T) || softmax(x[n] / T)); teacher [N, C] floats
 * (constants, copied: no gradient). For the MSE variant use qat_op_mse. */
qat_tensor *qat_op_distill_kl(qat_tape *t, qat_tensor *x, const float *teacher, float temperature);
/* (1 - alpha) a + alpha b of two one-element losses. */
qat_tensor *qat_op_loss_blend(qat_tape *t, qat_tensor *a, qat_tensor *b, float alpha);
/* sum_i x_i * w_i (a random projection turns any op into a scalar for
 * gradient checks). w has x->numel floats and must outlive the step. */
qat_tensor *qat_op_dot_const(qat_tape *t, qat_tensor *x, const float *w);
/* Elementwise a + b, same shapes. */
qat_tensor *qat_op_add(qat_tape *t, qat_tensor *a, qat_tensor *b);
/* The n (1..4) tensors side by side along the last axis; the others equal. */
qat_tensor *qat_op_concat(qat_tape *t, qat_tensor *const *x, int n);

/* ---- thread-split sgemm used by the ops -------------------------------------- */
/* C[M,N] = alpha * op(A) op(B) + beta * C, row-major, split over the team
 * along M (rows of C), single-threaded sgemm per member (src/ops/sgemm:
 * qat's tiles or OpenBLAS, by CPU and $QAT_SGEMM). */
void qat_sgemm_rows(qat_team *team, int trans_a, int trans_b, int M, int N, int K, float alpha,
                    const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc);
/* Same, split along N (columns of C). */
void qat_sgemm_cols(qat_team *team, int trans_a, int trans_b, int M, int N, int K, float alpha,
                    const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc);
/* Makes OpenBLAS single-threaded: qat owns every thread (see team.h). */
void qat_blas_init(void);

/* Float layers in a quantized model (docs/ARITHMETIC.md §7,
 * src/ops/float_exact.c). y = codes * scale[0], each product a float32
 * rounding, as the runtime dequantizes; gradients to both. */
qat_tensor *qat_op_dequantize(qat_tape *t, qat_tensor *codes, qat_tensor *scale);
/* Overwrites the values of y, the output of qat_op_conv2d (NHWC, square
 * kernel / stride / pad) or qat_op_linear (x and y 2-D) on x, w and b (NULL:
 * no bias), with the runtime's float layer arithmetic: per output, the
 * window in (kh, kw, c_in) order with padded taps 0.0f, summed by
 * qat_f32_dot, then + b. The values differ from the op's only by float
 * rounding, so the op's recorded backward stays the gradient. */
void qat_float_layer_exact(qat_tape *t, const qat_tensor *x, const qat_tensor *w,
                           const qat_tensor *b, qat_tensor *y, int kernel, int stride, int pad);

#endif
