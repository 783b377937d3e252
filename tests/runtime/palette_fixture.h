/* Palettized versions of the runtime tests' synthetic models (FORMAT.md
 * §10): each conv2d / linear layer's weights are coarsened to at most k
 * codes (per layer, or per output channel), re-packed plain, and given a
 * codebook and indices packed by this file's own packer (written from
 * FORMAT.md, not from the runtime's), so one fx_model holds both encodings
 * of the same weights. */
#ifndef QAT_TEST_PALETTE_FIXTURE_H
#define QAT_TEST_PALETTE_FIXTURE_H

#include "rt_fixture.h"

typedef struct fx_palette {
    int8_t *codebook[FX_MAX_LAYERS];
    uint8_t *indices[FX_MAX_LAYERS];
} fx_palette;

/* Stream bit t is bit t % 8 of byte t / 8; index i holds bits [i*b, i*b+b). */
static inline size_t fx_pal_pack(const uint8_t *idx, size_t n, int b, uint8_t **out)
{
    size_t bytes = (n * (size_t)b + 7) / 8;
    *out = calloc(bytes + 1, 1);
    for (size_t i = 0; i < n; i++)
        for (int q = 0; q < b; q++)
            if (idx[i] >> q & 1) {
                size_t t = i * (size_t)b + (size_t)q;
                (*out)[t / 8] |= (uint8_t)(1u << (t % 8));
            }
    return bytes;
}

static inline int fx_pal_bits(int k)
{
    int b = 1;
    while ((1 << b) < k)
        b++;
    return b;
}

/* A palettized layer's count codes, expanded bit by bit from FORMAT.md §10
 * (the oracle's own reading, not the runtime's). */
static inline void fx_pal_expand(const qat_rt_layer_desc *l, size_t count, int8_t *out)
{
    int b = fx_pal_bits(l->palette_size);
    size_t kk = count / (size_t)l->out_c;
    for (size_t i = 0; i < count; i++) {
        unsigned v = 0;
        for (int q = 0; q < b; q++) {
            size_t t = i * (size_t)b + (size_t)q;
            v |= (unsigned)(l->indices[t / 8] >> (t % 8) & 1) << q;
        }
        size_t g = l->palette_groups > 1 ? i / kk : 0;
        out[i] = l->codebook[g * (size_t)l->palette_size + v];
    }
}

/* Coarsens and palettizes every weight layer of m: per_channel 0 gives one
 * codebook of k codes per layer, 1 one per output channel (each channel's
 * codes then differ: channel c uses the k codes from (c % 3) upward on its
 * grid). Sets m->desc.version = 2. */
static inline void fx_palettize(fx_model *m, fx_palette *p, int k, int per_channel)
{
    memset(p, 0, sizeof *p);
    for (int i = 0; i < m->desc.num_layers; i++) {
        qat_rt_layer_desc *l = &m->layers[i];
        if (l->op != QAT_RT_CONV2D && l->op != QAT_RT_LINEAR)
            continue;
        int bits = l->weight_bits, lo = -(1 << (bits - 1)), span = 1 << bits;
        int step = span / k > 0 ? span / k : 1;
        size_t kk = (size_t)l->kernel_h * l->kernel_w * l->in_c, n = kk * (size_t)l->out_c;
        int groups = per_channel ? l->out_c : 1;
        p->codebook[i] = malloc((size_t)groups * (size_t)k);
        uint8_t *idx = malloc(n);
        for (int g = 0; g < groups; g++)
            for (int j = 0; j < k; j++) {
                int v = lo + (per_channel ? g % 3 : 0) + j * step;
                p->codebook[i][g * k + j] = (int8_t)(v > lo + span - 1 ? lo + span - 1 : v);
            }
        for (size_t e = 0; e < n; e++) {
            int g = per_channel ? (int)(e / kk) : 0;
            /* the slot nearest the original weight */
            int best = 0;
            for (int j = 1; j < k; j++)
                if (abs(p->codebook[i][g * k + j] - m->w[i][e]) <
                    abs(p->codebook[i][g * k + best] - m->w[i][e]))
                    best = j;
            idx[e] = (uint8_t)best;
            m->w[i][e] = p->codebook[i][g * k + best];
        }
        free(m->packed[i]);
        l->weights_bytes = fx_pack(m->w[i], n, bits, &m->packed[i]);
        l->weights = m->packed[i];
        l->palette_size = k;
        l->palette_groups = groups;
        l->codebook = p->codebook[i];
        l->indices_bytes = fx_pal_pack(idx, n, fx_pal_bits(k), &p->indices[i]);
        l->indices = p->indices[i];
        free(idx);
    }
    m->desc.version = 2;
}

/* The same model with the palettes dropped: the plain stream alone. */
static inline void fx_unpalettize(fx_model *m)
{
    for (int i = 0; i < m->desc.num_layers; i++)
        m->layers[i].palette_size = 0;
    m->desc.version = 1;
}

static inline void fx_palette_free(fx_palette *p)
{
    for (int i = 0; i < FX_MAX_LAYERS; i++) {
        free(p->codebook[i]);
        free(p->indices[i]);
    }
}

#endif
