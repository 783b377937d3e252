/* Palettized weights (docs/FORMAT.md §10): a clustered layer's codes take at
 * most K values, so they are stored as a codebook of K codes and one
 * ceil(log2 K)-bit index per weight. The codebook is read off the exported
 * codes themselves, not the training's centroids, so the encoding is
 * lossless by construction: the runtime expands exactly the codes the plain
 * stream would hold. */
#include <string.h>

#include "export/codes.h"

/* The distinct codes of n codes at v, ascending and padded to k by
 * repeating the largest, into cb; map[code + 128] gets each one's slot.
 * Returns 0 if there are more than k. */
static int book(const int8_t *v, size_t n, int k, int8_t *cb, uint8_t *map)
{
    unsigned char seen[256] = {0};
    for (size_t i = 0; i < n; i++)
        seen[v[i] + 128] = 1;
    int d = 0;
    for (int c = 0; c < 256; c++)
        if (seen[c]) {
            if (d == k)
                return 0;
            map[c] = (uint8_t)d;
            cb[d++] = (int8_t)(c - 128);
        }
    for (int j = d; j < k; j++)
        cb[j] = cb[d - 1];
    return 1;
}

int qat_export_palette(const int8_t *codes, size_t oc, size_t rowlen, int k, int8_t *cb,
                       uint8_t *idx)
{
    uint8_t map[256];
    size_t n = oc * rowlen;
    if (n == 0 || k < 2)
        return 0;
    if (book(codes, n, k, cb, map)) {
        for (size_t i = 0; i < n; i++)
            idx[i] = map[codes[i] + 128];
        return 1;
    }
    /* per-channel scales (or a batchnorm fold) give each channel its own
     * codes for the shared centroids: one codebook per output channel */
    for (size_t c = 0; c < oc; c++) {
        const int8_t *row = codes + c * rowlen;
        if (!book(row, rowlen, k, cb + c * (size_t)k, map))
            return 0;
        for (size_t j = 0; j < rowlen; j++)
            idx[c * rowlen + j] = map[row[j] + 128];
    }
    return (int)oc;
}
