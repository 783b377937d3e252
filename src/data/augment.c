/* Image augmentation on the fly: each example of a batch is transformed
 * where it was gathered, so no augmented copy of the dataset ever exists.
 *
 * Every random choice comes from a generator seeded by (seed, epoch,
 * example index) alone -- not by the batch, the thread or the position in
 * the epoch -- so the same run augments the same example the same way
 * whatever the thread count, and a resumed run continues exactly. The
 * draws happen in a fixed order (crop, shift, flip, cutout), each only when
 * its key is on. */
#include <string.h>

#include "qat/data.h"

/* Stream ids 1 and 2 are shuffling and dropout, 1000+ the layers' init: the
 * augmentation streams live above 2^62. */
#define AUG_STREAM (1ULL << 62)

int qat_augment_active(const qat_augment_params *p)
{
    return p && (p->crop_pad > 0 || p->hflip || p->shift > 0 || p->cutout > 0);
}

/* Value copy of element s of src to element d of dst, esz bytes each. */
static inline void put(void *dst, size_t d, const void *src, size_t s, size_t esz)
{
    memcpy((char *)dst + d * esz, (const char *)src + s * esz, esz);
}

/* out(y, x) = in(y + dy, x + dx); outside the image: zero, or with edge
 * the nearest edge pixel. */
static void translate(const void *in, void *out, int h, int w, int c, size_t esz, int dy, int dx,
                      int edge)
{
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            int sy = y + dy, sx = x + dx;
            size_t o = ((size_t)y * (size_t)w + (size_t)x) * (size_t)c;
            if (edge) {
                sy = sy < 0 ? 0 : sy >= h ? h - 1 : sy;
                sx = sx < 0 ? 0 : sx >= w ? w - 1 : sx;
            } else if (sy < 0 || sy >= h || sx < 0 || sx >= w) {
                memset((char *)out + o * esz, 0, (size_t)c * esz);
                continue;
            }
            size_t s = ((size_t)sy * (size_t)w + (size_t)sx) * (size_t)c;
            memcpy((char *)out + o * esz, (const char *)in + s * esz, (size_t)c * esz);
        }
}

void qat_augment_example(const qat_augment_params *p, uint64_t seed, int epoch, uint32_t example,
                         qat_data_type type, int h, int w, int c, void *values, void *scratch)
{
    if (!qat_augment_active(p))
        return;
    qat_rng r;
    qat_rng_seed(&r, seed, AUG_STREAM | (uint64_t)(uint32_t)epoch << 32 | example);
    size_t esz = type == QAT_DATA_F32 ? sizeof(float) : 1, isz = (size_t)h * w * c * esz;
    if (p->crop_pad > 0) {
        /* pad by P on each side and crop an h x w window at (oy, ox) in
         * [0, 2P]^2: the image moves by (P - oy, P - ox), zeros come in */
        int P = p->crop_pad;
        int oy = (int)qat_rng_below(&r, 2u * (unsigned)P + 1);
        int ox = (int)qat_rng_below(&r, 2u * (unsigned)P + 1);
        if (oy != P || ox != P) {
            translate(values, scratch, h, w, c, esz, oy - P, ox - P, 0);
            memcpy(values, scratch, isz);
        }
    }
    if (p->shift > 0) {
        int S = p->shift;
        int dy = (int)qat_rng_below(&r, 2u * (unsigned)S + 1) - S;
        int dx = (int)qat_rng_below(&r, 2u * (unsigned)S + 1) - S;
        if (dy || dx) {
            translate(values, scratch, h, w, c, esz, dy, dx, 1);
            memcpy(values, scratch, isz);
        }
    }
    if (p->hflip && (qat_rng_u32(&r) & 1)) {
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                for (int k = 0; k < c; k++) {
                    size_t o = ((size_t)y * w + (size_t)x) * c + (size_t)k;
                    size_t s = ((size_t)y * w + (size_t)(w - 1 - x)) * c + (size_t)k;
                    put(scratch, o, values, s, esz);
                }
        memcpy(values, scratch, isz);
    }
    if (p->cutout > 0) {
        /* a square of side L centred anywhere in the image, clipped at the
         * edges (DeVries & Taylor) */
        int L = p->cutout;
        int cy = (int)qat_rng_below(&r, (uint32_t)h), cx = (int)qat_rng_below(&r, (uint32_t)w);
        int y0 = cy - L / 2, x0 = cx - L / 2;
        for (int y = y0 < 0 ? 0 : y0; y < y0 + L && y < h; y++) {
            int xs = x0 < 0 ? 0 : x0, xe = x0 + L < w ? x0 + L : w;
            if (xe > xs)
                memset((char *)values + ((size_t)y * w + (size_t)xs) * c * esz, 0,
                       (size_t)(xe - xs) * c * esz);
        }
    }
}
