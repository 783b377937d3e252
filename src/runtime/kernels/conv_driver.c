/* The conv driver's compiled half (its loops are in conv_driver.h, inlined
 * into each path): packing a layer into a path's layout, and the scratch
 * size every SIMD table reports. Plain C; runs at model and session
 * creation. */
#include <string.h>

#include "runtime/kernels/conv_driver.h"

#include "qat/status.h"

size_t qat_rt_conv_scratch(const qat_rt_conv_params *p, int max_images)
{
    const qat_rt_conv_head *h = p->packed;
    size_t slots = h->direct ? (size_t)max_images : 1;
    return qat_rt_conv_block_bytes(h) + qat_rt_conv_index_bytes(h) +
           slots * qat_rt_conv_image_bytes(p, h) + 64;
}

static size_t round_up(size_t n, size_t m) { return (n + m - 1) / m * m; }

/* The description a layer is packed for: the path's narrow one when the
 * layer's channels fit its tile (microkernel.h), else uk itself. */
static const qat_rt_conv_ukernel *packed_for(const qat_rt_conv_ukernel *uk,
                                             const qat_rt_conv_params *p)
{
    return uk->narrow && p->out_c <= uk->narrow->nr ? uk->narrow : uk;
}

/* The layer's geometry in uk's layout, without the arrays (uk: the
 * description it is packed for; narrow: whether that is the narrow one). */
static qat_rt_conv_head geometry(const qat_rt_conv_ukernel *uk, int narrow,
                                 const qat_rt_conv_params *p)
{
    qat_rt_conv_head h = {0};
    h.narrow = narrow;
    const size_t len = (size_t)p->kernel_w * (size_t)p->in_c;
    const size_t lenp = uk->direct ? round_up(len, (size_t)uk->k_align) : len;
    const size_t k = (size_t)p->kernel_h * len;
    const size_t kp = uk->direct ? (size_t)p->kernel_h * lenp : round_up(k, (size_t)uk->k_align);
    const int pointwise = p->kernel_h == 1 && p->kernel_w == 1 && p->stride_h == 1 &&
                          p->stride_w == 1 && p->pad_h == 0 && p->pad_w == 0;
    h.k = (int32_t)k;
    h.kp = (int32_t)kp;
    h.len = (int32_t)len;
    h.lenp = (int32_t)lenp;
    h.row_bytes = uk->direct ? 0 : (int32_t)(kp * (size_t)uk->elem);
    /* pointwise windows are single pixels: im2col converts each value once
     * anyway, straight from the input */
    h.image_elem = !uk->direct && pointwise ? 0 : uk->elem;
    h.direct = uk->direct;
    h.oc_pad = (int32_t)round_up((size_t)p->out_c, (size_t)uk->nr);
    h.tiles = h.oc_pad / uk->nr;
    /* about 16 KiB of patch rows per block, so a block and one tile of
     * weights stay in L1; whole tiles and whole pooled tiles */
    size_t align = (size_t)uk->mr, block_max = (size_t)uk->block_max;
    while (align % (size_t)uk->pool_mr)
        align += (size_t)uk->mr;
    QAT_ASSERT(block_max % align == 0);
    size_t rows = h.row_bytes ? 16384 / (size_t)h.row_bytes : block_max;
    rows -= rows % align;
    h.block_rows = (int32_t)(rows < align ? align : rows > block_max ? block_max : rows);
    /* Channel tiles outside, rows inside keeps a tile's weights in L1 while
     * the block's rows pass, if they fit. A wide linear layer's do not
     * (MNIST fc1: 3136 x 32 bytes per AVX-512 tile): then the rows go
     * outside, so a micro-tile's rows (8 x 3136 bytes) stay in L1 while
     * every tile's weights stream past once, as the per-ISA drivers did
     * before the split. It also keeps each tile's requantization constants
     * out of the loop over rows: hoisted there, they held registers the K
     * loop needed (one zmm spill per k group of fc1's 8x32 tile). */
    h.rows_outer = (size_t)uk->nr * kp * (uk->wide ? sizeof(int16_t) : sizeof(int8_t)) > 32768;
    return h;
}

static size_t weight_bytes(const qat_rt_conv_ukernel *uk, const qat_rt_conv_head *h)
{
    return (size_t)h->oc_pad * (size_t)h->kp * (uk->wide ? sizeof(int16_t) : sizeof(int8_t));
}

size_t qat_rt_conv_pack_size(const qat_rt_conv_ukernel *uk, const qat_rt_conv_params *p)
{
    const qat_rt_conv_ukernel *used = packed_for(uk, p);
    const qat_rt_conv_head h = geometry(used, used != uk, p);
    return sizeof h + (size_t)QAT_RT_RQ_COUNT * (size_t)h.oc_pad * sizeof(int32_t) +
           weight_bytes(uk, &h);
}

/* Channel c's weights: tap ky * len + i (window row ky) at position
 * ky * lenp + i of the padded K axis, in groups of kr (microkernel.h). */
static void pack_weights(const qat_rt_conv_ukernel *uk, const qat_rt_conv_params *p,
                         qat_rt_conv_head *h, size_t c)
{
    const size_t nr = (size_t)uk->nr, g = (size_t)uk->kr, len = (size_t)h->len;
    const size_t lenp = (size_t)h->lenp, base = c / nr * (size_t)h->kp * nr + c % nr * g;
    const int8_t *src = p->weights + c * (size_t)h->k;
    const int32_t wzp = p->weight_zp[c];
    int16_t *wide = (int16_t *)(void *)qat_rt_conv_weights(h);
    int8_t *raw = (int8_t *)(void *)qat_rt_conv_weights(h);
    for (size_t ky = 0; ky < (size_t)p->kernel_h; ky++, src += len)
        for (size_t i = 0; i < len; i++) {
            const size_t jp = ky * lenp + i, in = jp & (g - 1); /* g: a power of two */
            const size_t at = base + (jp - in) * nr + in;
            if (uk->wide)
                wide[at] = (int16_t)((int32_t)src[i] - wzp);
            else
                raw[at] = src[i];
        }
}

void qat_rt_conv_pack(const qat_rt_conv_ukernel *main_uk, const qat_rt_conv_params *p,
                      void *dst)
{
    const qat_rt_conv_ukernel *uk = packed_for(main_uk, p);
    QAT_ASSERT(!uk->wide || uk->offset == 0);
    QAT_ASSERT(uk->kr > 0 && (uk->kr & (uk->kr - 1)) == 0);
    qat_rt_conv_head *h = dst;
    memset(dst, 0, qat_rt_conv_pack_size(main_uk, p));
    *h = geometry(uk, uk != main_uk, p);
    int32_t *rq[QAT_RT_RQ_COUNT];
    for (int i = 0; i < QAT_RT_RQ_COUNT; i++)
        rq[i] = (int32_t *)qat_rt_conv_rq(h, i);
    const uint32_t k = (uint32_t)h->k, off = (uint32_t)uk->offset;
    h->min_right = 31;
    for (size_t c = 0; c < (size_t)p->out_c; c++) {
        pack_weights(uk, p, h, c);
        const int32_t s = p->shift[c], wzp = p->weight_zp[c];
        const int32_t right = s > 0 ? 0 : -s, mask = (int32_t)((1LL << right) - 1);
        /* raw weights on values u = x + offset: sum (w - wzp) x = sum w u -
         * wzp sum u - offset sum w + offset K wzp; the last two go into the
         * bias, modulo 2^32 like every int32 sum here (the true accumulator
         * fits, so the result is exact) */
        uint32_t sum = 0;
        for (size_t j = 0; off && j < k; j++)
            sum += (uint32_t)(int32_t)p->weights[c * k + j];
        rq[QAT_RT_RQ_BIAS][c] = (int32_t)((uint32_t)p->bias_folded[c] - off * sum +
                                          off * k * (uint32_t)wzp);
        rq[QAT_RT_RQ_WZP][c] = wzp;
        rq[QAT_RT_RQ_MULT][c] = p->multiplier[c];
        rq[QAT_RT_RQ_LEFT][c] = s > 0 ? s : 0;
        rq[QAT_RT_RQ_RIGHT][c] = right;
        rq[QAT_RT_RQ_NRIGHT][c] = -right;
        rq[QAT_RT_RQ_MASK][c] = mask;
        rq[QAT_RT_RQ_THR][c] = mask >> 1;
        h->any_left |= s > 0;
        h->any_wzp |= wzp != 0;
        h->min_right = right < h->min_right ? right : h->min_right;
        h->max_right = right > h->max_right ? right : h->max_right;
    }
}
