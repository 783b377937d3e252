/* Finiteness scans over float arrays: the trainer checks every gradient
 * and weight at every step, and the checkpoint reader every stored value. */
#ifndef QAT_FINITE_H
#define QAT_FINITE_H

#include <stddef.h>

/* Index of the first NaN or infinity in v[0..n), or n when there is none.
 * Vectorised (a block at a time, without an early exit) so the per-step
 * checks run at memory speed rather than one compare and branch a value. */
size_t qat_first_nonfinite(const float *v, size_t n);

#endif
