/* Conv2d with an explicit algorithm, so tests can hold both paths to the same
 * reference and benchmarks can time both on one shape (not a public API). */
#ifndef QAT_CONV2D_INTERNAL_H
#define QAT_CONV2D_INTERNAL_H

#include "qat/ops.h"

typedef enum {
    QAT_CONV_AUTO = 0,   /* what qat_op_conv2d picks (see conv2d.c) */
    QAT_CONV_DIRECT = 1, /* register-tiled loop, no im2col */
    QAT_CONV_GEMM = 2    /* im2col + OpenBLAS sgemm */
} qat_conv_algo;

/* qat_op_conv2d with the algorithm forced (AUTO = the default choice). */
qat_tensor *qat_conv2d_algo(qat_tape *t, qat_tensor *x, qat_tensor *w, qat_tensor *b,
                            const qat_conv2d_params *p, qat_conv_algo algo);
/* qat_op_conv2d_maxpool (pp != NULL) or qat_op_conv2d with the algorithm forced. */
qat_tensor *qat_conv2d_pool_algo(qat_tape *t, qat_tensor *x, qat_tensor *w, qat_tensor *b,
                                 const qat_conv2d_params *p, const qat_pool2d_params *pp,
                                 int relu, qat_conv_algo algo);

#endif
