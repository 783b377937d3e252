/* Gradient codes. bits >= 2: s = 2^(bits-1) - 1 levels a side (2 bits is
 * TernGrad's {-1, 0, 1}); a value g in a bucket of scale S (max |g| or the
 * L2 norm) becomes round(g / S * s), clamped, stored biased by s. 1 bit:
 * the sign; nearest rounding sends sign(g) times the bucket's mean |g|
 * (signSGD's scaled sign, the usual partner of error feedback), stochastic
 * rounding sends +-S with P(+) = (1 + g / S) / 2, unbiased. Scales are
 * floats in the message; a zero scale decodes to zeros. */
#include "gradq.h"

#include <math.h>
#include <string.h>

size_t qat_gradq_bytes(const qat_gradq *q)
{
    if (q->bits == 32)
        return q->n * sizeof(float);
    return (size_t)q->nbuckets * sizeof(float) + (q->n * (size_t)q->bits + 7) / 8;
}

static float bucket_scale(const qat_gradq *q, const float *v, size_t n)
{
    if (q->bits == 1 && !q->stochastic) {
        double s = 0.0;
        for (size_t i = 0; i < n; i++)
            s += fabsf(v[i]);
        return n ? (float)(s / (double)n) : 0.0f;
    }
    if (q->l2) {
        double s = 0.0;
        for (size_t i = 0; i < n; i++)
            s += (double)v[i] * v[i];
        return (float)sqrt(s);
    }
    float m = 0.0f;
    for (size_t i = 0; i < n; i++)
        m = fabsf(v[i]) > m ? fabsf(v[i]) : m;
    return m;
}

/* The code of x (x / scale, in [-1, 1]) and the value it stands for, both
 * in units of the scale. */
static int code_of(const qat_gradq *q, float x, qat_rng *rng, float *val)
{
    if (q->bits == 1) {
        int pos = q->stochastic ? qat_rng_uniform(rng) < 0.5f * (1.0f + x) : x >= 0.0f;
        *val = pos ? 1.0f : -1.0f;
        return pos;
    }
    int s = (1 << (q->bits - 1)) - 1;
    float y = x * (float)s;
    float f = floorf(y);
    float k = q->stochastic ? f + (qat_rng_uniform(rng) < y - f) : nearbyintf(y);
    k = k < (float)-s ? (float)-s : k > (float)s ? (float)s : k;
    *val = k / (float)s;
    return (int)k + s;
}

static float value_of(const qat_gradq *q, unsigned c)
{
    if (q->bits == 1)
        return c ? 1.0f : -1.0f;
    int s = (1 << (q->bits - 1)) - 1;
    return (float)((int)c - s) / (float)s;
}

void qat_gradq_encode(const qat_gradq *q, const float *g, float *residual, qat_rng *rng,
                      uint8_t *out)
{
    if (q->bits == 32) {
        memcpy(out, g, q->n * sizeof(float));
        return;
    }
    float *scales = (float *)out; /* 4-byte aligned: the caller's buffer */
    uint8_t *codes = out + (size_t)q->nbuckets * sizeof(float);
    memset(codes, 0, (q->n * (size_t)q->bits + 7) / 8);
    size_t b = 0;
    int per_byte = 8 / q->bits;
    for (int k = 0; k < q->nbuckets; k++) {
        size_t e = q->bucket_end[k];
        /* with error feedback the residual joins the gradient first */
        if (residual)
            for (size_t i = b; i < e; i++)
                residual[i] += g[i];
        const float *v = residual ? residual + b : g + b;
        float S = bucket_scale(q, v, e - b);
        scales[k] = S;
        for (size_t i = b; i < e; i++) {
            float x = S > 0.0f ? v[i - b] / S : 0.0f;
            x = x < -1.0f ? -1.0f : x > 1.0f ? 1.0f : x;
            float val;
            unsigned c = (unsigned)code_of(q, x, rng, &val);
            codes[i / (size_t)per_byte] |= (uint8_t)(c << ((i % (size_t)per_byte) * q->bits));
            if (residual)
                residual[i] -= S > 0.0f ? val * S : 0.0f;
        }
        b = e;
    }
}

/* first: acc[i] = 0 + value (what zeroing acc and adding gives, -0
 * included), one pass instead of two. */
static void decode(const qat_gradq *q, const uint8_t *in, float *acc, int first)
{
    if (q->bits == 32) {
        const float *v = (const float *)in;
        if (first)
            for (size_t i = 0; i < q->n; i++)
                acc[i] = 0.0f + v[i];
        else
            for (size_t i = 0; i < q->n; i++)
                acc[i] += v[i];
        return;
    }
    const float *scales = (const float *)in;
    const uint8_t *codes = in + (size_t)q->nbuckets * sizeof(float);
    int per_byte = 8 / q->bits;
    unsigned mask = (1u << q->bits) - 1;
    size_t b = 0;
    for (int k = 0; k < q->nbuckets; k++) {
        size_t e = q->bucket_end[k];
        float S = scales[k];
        if (first && !(S > 0.0f))
            memset(acc + b, 0, (e - b) * sizeof *acc);
        for (size_t i = b; i < e && S > 0.0f; i++) {
            unsigned c = (codes[i / (size_t)per_byte] >> ((i % (size_t)per_byte) * q->bits)) & mask;
            float x = value_of(q, c) * S;
            acc[i] = first ? 0.0f + x : acc[i] + x;
        }
        b = e;
    }
}

void qat_gradq_decode_add(const qat_gradq *q, const uint8_t *in, float *acc)
{
    decode(q, in, acc, 0);
}

void qat_gradq_decode_set(const qat_gradq *q, const uint8_t *in, float *acc)
{
    decode(q, in, acc, 1);
}
