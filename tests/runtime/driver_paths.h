/* Kernel tables made of the portable drivers and scalar test microkernels
 * (driver_paths.c): the kernel tester runs them beside the real paths. */
#ifndef QAT_TEST_DRIVER_PATHS_H
#define QAT_TEST_DRIVER_PATHS_H

#include "runtime/kernels/kernels.h"

extern const qat_rt_kernels qat_test_driver_gemm;  /* im2col, 3x8 tiles */
extern const qat_rt_kernels qat_test_driver_igemm; /* direct, 5x4 tiles */

#endif
