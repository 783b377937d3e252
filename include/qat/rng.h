/* Seeded PCG32 generator. Every random choice in qat (init, shuffling,
 * dropout) draws from an explicit qat_rng, so runs are reproducible and the
 * state can be saved in checkpoints. */
#ifndef QAT_RNG_H
#define QAT_RNG_H

#include <stdint.h>

typedef struct qat_rng {
    uint64_t state, inc;
} qat_rng;

/* Derives a stream from (seed, stream id): different ids give independent
 * sequences from the same user seed. */
void qat_rng_seed(qat_rng *r, uint64_t seed, uint64_t stream);
uint32_t qat_rng_u32(qat_rng *r);
/* Uniform in [0, n), unbiased; n >= 1. */
uint32_t qat_rng_below(qat_rng *r, uint32_t n);
/* Uniform float in [0, 1). */
float qat_rng_uniform(qat_rng *r);
/* Standard normal (Box-Muller, one value per call). */
float qat_rng_normal(qat_rng *r);
/* Fisher-Yates shuffle of idx[0..n). */
void qat_rng_shuffle_u32(qat_rng *r, uint32_t *idx, uint32_t n);

#endif
