/* Shared scaffolding for finite-difference tests of ops. */
#ifndef QAT_TEST_GRADCHECK_UTIL_H
#define QAT_TEST_GRADCHECK_UTIL_H

#include <stdlib.h>

#include "qat/autograd.h"
#include "qat/ops.h"
#include "qat/rng.h"

/* A leaf with its own data and grad buffers, filled with N(0, scale^2). */
typedef struct {
    qat_tensor t;
    float *data, *grad;
} test_leaf;

static inline void leaf_init(test_leaf *l, qat_rng *r, int ndim, const int *shape, float scale)
{
    size_t n = qat_shape_numel(ndim, shape);
    l->data = malloc(n * sizeof(float) + 4);
    l->grad = calloc(n + 1, sizeof(float));
    for (size_t i = 0; i < n; i++)
        l->data[i] = scale * qat_rng_normal(r);
    l->t = qat_tensor_view(l->data, l->grad, ndim, shape);
}

static inline void leaf_free(test_leaf *l)
{
    free(l->data);
    free(l->grad);
}

static inline float *random_vec(qat_rng *r, size_t n)
{
    float *w = malloc(n * sizeof(float) + 4);
    for (size_t i = 0; i < n; i++)
        w[i] = qat_rng_normal(r);
    return w;
}

/* Fills the tape's arena with NaN and leaves it reset, so a buffer an op
 * forgets to initialise poisons its results instead of reading the zeros of
 * fresh pages. Two rounds: the first reset merges chunks into one. */
static inline void tape_poison(qat_tape *t, size_t bytes)
{
    for (int round = 0; round < 2; round++) {
        qat_tape_reset(t);
        float *p = qat_tape_alloc(t, bytes);
        for (size_t i = 0; i < bytes / sizeof(float); i++)
            p[i] = __builtin_nanf("");
    }
    qat_tape_reset(t);
}

#endif
