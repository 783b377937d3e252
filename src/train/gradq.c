/* Gradient codes. bits >= 2: s = 2^(bits-1) - 1 levels a side (2 bits is
 * TernGrad's {-1, 0, 1}); a value g in a bucket of scale S (max |g| or the
 * L2 norm) becomes round(g / S * s), clamped, stored biased by s. 1 bit:
 * the sign; nearest rounding sends sign(g) times the bucket's mean |g|
 * (signSGD's scaled sign, the usual partner of error feedback), stochastic
 * rounding sends +-S with P(+) = (1 + g / S) / 2, unbiased. Scales are
 * floats in the message; a zero scale decodes to zeros. */
/* Speed: the nearest-rounding encoder and the decoder work in chunks of
 * CHUNK values, each step a loop of one elementwise operation that GCC
 * vectorises in the AVX2 / AVX-512 clones (HOT_CLONES; nearbyintf becomes
 * one rounding instruction), the codes made and packed (unpacked) in
 * loops of their own. Contraction is off, so every clone rounds each
 * product and sum apart as the scalar loops did: the same bits (2-rank
 * W8A8 checkpoints at 8, 4, 2 and 1 bits with error feedback identical to
 * the scalar codec's). The MNIST CNN's 421,642 gradients at 8 bits with
 * error feedback: encode 2.0 -> 1.25 ms, decode 0.82 -> 0.44 ms (one core,
 * best of 30). The stochastic encoder (one random draw per value, in
 * order) and the 1-bit one stay the scalar loop. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=off")
#endif

#include "gradq.h"

#include <math.h>
#include <string.h>

#include "qat/hot_clones.h"

#define CHUNK 256

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

/* Packs n codes c (bits each; n a multiple of 8 / bits but for a bucket's
 * last chunk, whose partial byte the next bucket ORs into) into codes from
 * value index i0, which starts a byte. */
static inline __attribute__((always_inline)) void pack(int bits, const uint8_t *c, size_t n,
                                                       uint8_t *codes, size_t i0)
{
    uint8_t *d = codes + i0 * (size_t)bits / 8;
    if (bits == 8) {
        memcpy(d, c, n);
    } else if (bits == 4) {
        for (size_t j = 0; j < n / 2; j++)
            d[j] = (uint8_t)(c[2 * j] | c[2 * j + 1] << 4);
        if (n % 2)
            d[n / 2] = c[n - 1];
    } else { /* 2 */
        for (size_t j = 0; j < n / 4; j++)
            d[j] = (uint8_t)(c[4 * j] | c[4 * j + 1] << 2 | c[4 * j + 2] << 4 | c[4 * j + 3] << 6);
        for (size_t i = n / 4 * 4; i < n; i++)
            d[i / 4] |= (uint8_t)(c[i] << ((i % 4) * 2));
    }
}

/* Nearest rounding, bits >= 2: the values v[0..n) of a bucket starting at
 * value index b, scale S; the same operations as code_of, a loop each. */
HOT_CLONES
static void encode_nearest(const qat_gradq *q, const float *v, size_t n, size_t b, float S,
                           uint8_t *codes, float *residual)
{
    const float s = (float)((1 << (q->bits - 1)) - 1);
    float k[CHUNK];
    uint8_t c[CHUNK];
    size_t i = 0;
    /* the first chunk ends where a byte does, so every later one starts a byte */
    const size_t per_byte = 8 / (size_t)q->bits, lead = (per_byte - b % per_byte) % per_byte;
    for (size_t i1; i < n; i = i1) {
        i1 = i == 0 && lead ? lead : i + CHUNK;
        i1 = i1 < n ? i1 : n;
        const size_t m = i1 - i;
        for (size_t j = 0; j < m; j++) {
            float x = S > 0.0f ? v[i + j] / S : 0.0f;
            x = x < -1.0f ? -1.0f : x > 1.0f ? 1.0f : x;
            float y = nearbyintf(x * s);
            k[j] = y < -s ? -s : y > s ? s : y;
        }
        for (size_t j = 0; j < m; j++)
            c[j] = (uint8_t)(int)(k[j] + s);
        if (residual)
            for (size_t j = 0; j < m; j++)
                residual[i + j] -= S > 0.0f ? k[j] / s * S : 0.0f;
        if ((b + i) % per_byte == 0) {
            pack(q->bits, c, m, codes, b + i);
        } else { /* the lead-in of a bucket that starts inside a byte */
            for (size_t j = 0; j < m; j++) {
                size_t t = b + i + j;
                codes[t / per_byte] |= (uint8_t)(c[j] << ((t % per_byte) * (size_t)q->bits));
            }
        }
    }
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
        if (!q->stochastic && q->bits >= 2) {
            encode_nearest(q, v, e - b, b, S, codes, residual ? residual + b : NULL);
            b = e;
            continue;
        }
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

/* Values [b, e) of a bucket of scale S > 0 into acc: the code's value,
 * (c - s) / s or +-1, times S (first: 0 + it, else acc + it); the codes
 * unpacked a chunk at a time, then the float operations a loop each. */
HOT_CLONES
static void decode_bucket(const qat_gradq *q, const uint8_t *codes, size_t b, size_t e, float S,
                          float *acc, int first)
{
    const size_t per_byte = 8 / (size_t)q->bits;
    const unsigned mask = (1u << q->bits) - 1;
    const float s = q->bits == 1 ? 1.0f : (float)((1 << (q->bits - 1)) - 1);
    uint8_t c[CHUNK + 8];
    float x[CHUNK];
    /* the first chunk ends where a byte does, so every later one starts a byte */
    const size_t lead = (per_byte - b % per_byte) % per_byte;
    for (size_t i = b, i1; i < e; i = i1) {
        i1 = i == b && lead ? b + lead : i + CHUNK;
        i1 = i1 < e ? i1 : e;
        const size_t m = i1 - i;
        if (q->bits == 8) {
            memcpy(c, codes + i, m);
        } else if (i % per_byte) { /* the lead-in */
            for (size_t j = 0; j < m; j++) {
                const size_t t = i + j;
                c[j] = (uint8_t)((codes[t / per_byte] >> ((t % per_byte) * (size_t)q->bits)) &
                                 mask);
            }
        } else { /* whole bytes (the last one may hold values past e: unused) */
            const uint8_t *d = codes + i / per_byte;
            const size_t nb = (m + per_byte - 1) / per_byte;
            for (size_t j = 0; j < nb; j++)
                for (size_t u = 0; u < per_byte; u++)
                    c[j * per_byte + u] = (uint8_t)((d[j] >> (u * (size_t)q->bits)) & mask);
        }
        if (q->bits == 1)
            for (size_t j = 0; j < m; j++)
                x[j] = (c[j] ? 1.0f : -1.0f) * S;
        else
            for (size_t j = 0; j < m; j++)
                x[j] = (float)((int)c[j] - (int)s) / s * S;
        if (first)
            for (size_t j = 0; j < m; j++)
                acc[i + j] = 0.0f + x[j];
        else
            for (size_t j = 0; j < m; j++)
                acc[i + j] += x[j];
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
    size_t b = 0;
    for (int k = 0; k < q->nbuckets; k++) {
        size_t e = q->bucket_end[k];
        float S = scales[k];
        if (first && !(S > 0.0f))
            memset(acc + b, 0, (e - b) * sizeof *acc);
        if (S > 0.0f)
            decode_bucket(q, codes, b, e, S, acc, first);
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
