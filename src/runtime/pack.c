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
