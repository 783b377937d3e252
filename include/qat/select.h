/* Order statistics over float arrays (observers, pruning thresholds). */
#ifndef QAT_SELECT_H
#define QAT_SELECT_H

#include <stddef.h>

/* The k-th smallest (0-based; k >= n means n - 1) of v[0..n), n > 0, by
 * quickselect: O(n) on average, reorders v. Percentile observers and
 * magnitude pruning run it over every weight row at every update, where a
 * sort would be too slow for fc layers with thousands of inputs per row. */
float qat_select_kth(float *v, size_t n, size_t k);

#endif
