/* Quantized gradients (QSGD / TernGrad / signSGD with error feedback): the
 * codec of what data-parallel ranks send each other. A gradient vector is
 * cut into buckets, each with one float scale; every value becomes a
 * signed code of `bits` bits packed into bytes. Pure functions on caller
 * buffers: nothing allocates. */
#ifndef QAT_TRAIN_GRADQ_H
#define QAT_TRAIN_GRADQ_H

#include <stddef.h>
#include <stdint.h>

#include "qat/rng.h"

typedef struct qat_gradq {
    int bits;        /* 32 (raw floats), 8, 4, 2 or 1 */
    int stochastic;  /* unbiased stochastic rounding, else nearest */
    int l2;          /* scale = the bucket's L2 norm, else its max |g| */
    const size_t *bucket_end; /* bucket k covers [bucket_end[k-1], bucket_end[k]) */
    int nbuckets;
    size_t n;        /* values: bucket_end[nbuckets - 1] */
} qat_gradq;

/* Bytes one encoded vector takes (scales then packed codes). */
size_t qat_gradq_bytes(const qat_gradq *q);
/* Encodes g (q->n values) into out (qat_gradq_bytes). residual (may be
 * NULL): error feedback, added to g before encoding and left holding what
 * the codes do not carry (g + old residual - decoded). rng: stochastic
 * rounding's draws. */
void qat_gradq_encode(const qat_gradq *q, const float *g, float *residual, qat_rng *rng,
                      uint8_t *out);
/* acc[i] += the decoded value i of in. */
void qat_gradq_decode_add(const qat_gradq *q, const uint8_t *in, float *acc);
/* acc[i] = 0 + the decoded value i of in: the same bits as zeroing acc
 * and calling qat_gradq_decode_add, in one pass. */
void qat_gradq_decode_set(const qat_gradq *q, const uint8_t *in, float *acc);

#endif
