/* Sub-8-bit weight packing (docs/FORMAT.md): 5..8 bits one int8 per byte,
 * 3..4 bits two 4-bit slots per byte, 2 bits four 2-bit slots per byte; a
 * flat stream, element i in byte i / per_byte at bit (i % per_byte) * slot,
 * low bits first, the tail of the last byte zero. */
#include <string.h>

#include "qat/runtime.h"

static int slot_bits(int bits) { return bits >= 5 ? 8 : bits >= 3 ? 4 : 2; }

size_t qat_rt_packed_weight_bytes(size_t count, int bits)
{
    if (bits < 2 || bits > 8)
        return 0;
    size_t per = (size_t)(8 / slot_bits(bits));
    return count / per + (count % per ? 1 : 0);
}

void qat_rt_pack_weights(const int8_t *w, size_t count, int bits, uint8_t *out)
{
    int slot = slot_bits(bits);
    size_t per = (size_t)(8 / slot);
    unsigned mask = (1u << slot) - 1u;
    memset(out, 0, qat_rt_packed_weight_bytes(count, bits));
    for (size_t i = 0; i < count; i++)
        out[i / per] |= (uint8_t)(((unsigned)(uint8_t)w[i] & mask) << ((i % per) * (size_t)slot));
}

void qat_rt_unpack_weights(const uint8_t *packed, size_t count, int bits, int8_t *out)
{
    int slot = slot_bits(bits);
    size_t per = (size_t)(8 / slot);
    unsigned mask = (1u << slot) - 1u, sign = 1u << (slot - 1);
    for (size_t i = 0; i < count; i++) {
        unsigned v = ((unsigned)packed[i / per] >> ((i % per) * (size_t)slot)) & mask;
        out[i] = (int8_t)((int)(v ^ sign) - (int)sign); /* sign-extend the slot */
    }
}

/* Palettized weights (FORMAT.md §10): indices at ceil(log2 K) bits in one
 * little-endian bit stream. */
int qat_rt_palette_index_bits(int k)
{
    int b = 1;
    while (b < 8 && (1 << b) < k)
        b++;
    return b;
}

size_t qat_rt_palette_index_bytes(size_t count, int k)
{
    size_t bits = (size_t)qat_rt_palette_index_bits(k);
    /* count <= 2^30 (validated): count * 8 fits */
    return (count * bits + 7) / 8;
}

void qat_rt_palette_pack(const uint8_t *idx, size_t count, int k, uint8_t *out)
{
    int b = qat_rt_palette_index_bits(k);
    memset(out, 0, qat_rt_palette_index_bytes(count, k));
    for (size_t i = 0; i < count; i++) {
        size_t t = i * (size_t)b;
        unsigned v = (unsigned)idx[i] << (t % 8); /* at most 15 bits */
        out[t / 8] |= (uint8_t)v;
        if ((t % 8) + (size_t)b > 8)
            out[t / 8 + 1] |= (uint8_t)(v >> 8);
    }
}

unsigned qat_rt_palette_index_at(const uint8_t *packed, size_t i, int bits)
{
    size_t t = i * (size_t)bits;
    unsigned v = packed[t / 8];
    if ((t % 8) + (size_t)bits > 8)
        v |= (unsigned)packed[t / 8 + 1] << 8;
    return (v >> (t % 8)) & ((1u << bits) - 1u);
}

void qat_rt_layer_weights(const qat_rt_layer_desc *l, int8_t *out)
{
    /* a row of a grouped conv sees in_c / groups input channels */
    size_t k = (size_t)l->kernel_h * (size_t)l->kernel_w *
               (size_t)(l->in_c / qat_rt_desc_groups(l));
    size_t n = k * (size_t)l->out_c;
    if (l->palette_size == 0) {
        qat_rt_unpack_weights(l->weights, n, l->weight_bits, out);
        return;
    }
    int b = qat_rt_palette_index_bits(l->palette_size);
    for (size_t i = 0; i < n; i++) {
        size_t g = l->palette_groups > 1 ? i / k : 0;
        out[i] = l->codebook[g * (size_t)l->palette_size + qat_rt_palette_index_at(l->indices, i, b)];
    }
}
