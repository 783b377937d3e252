/* The portable driver behind every SIMD path's conv2d, linear and conv2d +
 * 2x2 maxpool (microkernel.h): plain C, no intrinsics, written once. Per
 * block of output rows it finds where each window starts (preparing each
 * input image once: converted and padded), makes the block's patch rows
 * (im2col; direct paths read the windows in place), then runs the path's
 * tile over every channel tile and every group of rows. The loop order
 * (channel tiles outside, rows inside, per block) keeps one tile of
 * weights in L1 while the block's rows stream past it; a layer whose tile
 * of weights does not fit (head.rows_outer, conv_driver.c) swaps the two.
 *
 * Each path instantiates it (QAT_RT_CONV_KERNELS, below) in its
 * ISA-flagged conv file, where its description is defined: the compiler
 * sees the description as a constant, the calls through it become direct
 * and the microkernels are inlined. Through the pointers, one compiled
 * driver cost too much: an AVX-512 micro-tile of the MNIST CNN's first
 * conv (K = 9) is ~150 instructions, and a call per tile (arguments, saved
 * registers, per-call setup) added 17% to the network's instruction count
 * (AVX2: -0.3%; docs/RUNTIME.md, "Kernel paths"). */
#ifndef QAT_RT_CONV_DRIVER_H
#define QAT_RT_CONV_DRIVER_H

#include <stdint.h>

#include "runtime/kernels/microkernel.h"

#include "qat/status.h"

/* One prepared image slot, 64-byte aligned (0 when rows read the input). */
static inline size_t qat_rt_conv_image_bytes(const qat_rt_conv_params *p,
                                             const qat_rt_conv_head *h)
{
    return ((size_t)(p->in_h + 2 * p->pad_h) * (size_t)(p->in_w + 2 * p->pad_w) *
                (size_t)p->in_c * (size_t)h->image_elem +
            63) &
           ~(size_t)63;
}

/* Scratch: the block of packed patch rows (im2col paths; 64 bytes of slack
 * for copies that overrun a row), the block's window pointers and activation
 * sums, then the image slots and 64 bytes of slack (a tile's K group may
 * read a few bytes past a window row). */
static inline size_t qat_rt_conv_block_bytes(const qat_rt_conv_head *h)
{
    return h->row_bytes ? ((size_t)h->block_rows * (size_t)h->row_bytes + 64 + 63) & ~(size_t)63
                        : 0;
}

static inline size_t qat_rt_conv_index_bytes(const qat_rt_conv_head *h)
{
    return ((size_t)h->block_rows * (sizeof(void *) + sizeof(int32_t)) + 63) & ~(size_t)63;
}

/* The input image img converted and padded into dst (microkernel.h): the
 * padding between two image rows is one fill. */
static inline __attribute__((always_inline)) const uint8_t *
qat_rt_conv_prepare(const qat_rt_conv_ukernel *uk, const qat_rt_conv_params *p, size_t elem,
                    const int8_t *img, uint8_t *dst)
{
    const size_t c = (size_t)p->in_c, side = (size_t)p->pad_w * c, inner = (size_t)p->in_w * c;
    const size_t edge = (size_t)p->pad_h * (inner + 2 * side); /* pad_h padding rows */
    uint8_t *d = dst;
    if (side == 0) { /* the image rows are contiguous */
        uk->fill(d, edge, p->in_zp);
        d += edge * elem;
        uk->convert(d, img, (size_t)p->in_h * inner);
        uk->fill(d + (size_t)p->in_h * inner * elem, edge, p->in_zp);
        return dst;
    }
    uk->fill(d, edge + side, p->in_zp);
    d += (edge + side) * elem;
    for (int y = 0; y < p->in_h; y++, img += inner) {
        uk->convert(d, img, inner);
        d += inner * elem;
        size_t n = y + 1 < p->in_h ? 2 * side : side + edge;
        uk->fill(d, n, p->in_zp);
        d += n * elem;
    }
    return dst;
}

/* Patch rows for n windows (win[r]: where window r starts; window row ky
 * prow bytes further): im2col paths copy each window's runs into the row
 * at a + r * row_bytes (converting from the int8 input when images are not
 * prepared) and zero its K padding; paths with raw weights and zero points
 * get each row's activation sum. The padding, fewer than k_align values,
 * is written as k_align - 1 zeros: a constant count the compiler turns
 * into a store or two (a loop to kp became a memset call per row), the
 * extra ones landing in the next row, written after, or in the slack. */
static inline __attribute__((always_inline)) void
qat_rt_conv_rows(const qat_rt_conv_ukernel *uk, const qat_rt_conv_params *p,
                 const qat_rt_conv_head *h, const void *const *win, size_t n, size_t prow,
                 uint8_t *a, int32_t *sums)
{
    const size_t len = (size_t)h->len, k = (size_t)h->k, kp = (size_t)h->kp;
    const size_t e = (size_t)uk->elem, kh = (size_t)p->kernel_h;
    const int want_sums = uk->sum && h->any_wzp;
    if (uk->direct) { /* the tiles read the windows in place */
        for (size_t r = 0; want_sums && r < n; r++) {
            int32_t s = 0;
            for (size_t ky = 0; ky < kh; ky++)
                s += uk->sum((const uint8_t *)win[r] + ky * prow, len);
            sums[r] = s;
        }
        return;
    }
    /* locals: the stores below could alias *h */
    const size_t rb = (size_t)h->row_bytes, run = len * e;
    const int prepared = h->image_elem != 0, padded = kp > k;
    uint8_t *d = a;
    for (size_t r = 0; r < n; r++, d += rb) {
        const uint8_t *src = win[r];
        uint8_t *dk = d;
        for (size_t ky = 0; ky < kh; ky++, src += prow, dk += run) {
            if (prepared)
                uk->copy(dk, src, len);
            else
                uk->convert(dk, (const int8_t *)src, len);
        }
        if (padded)
            uk->fill(d + k * e, (size_t)uk->k_align - 1, -uk->offset); /* value 0 */
        if (want_sums)
            sums[r] = uk->sum(d, kp);
    }
}

/* Output rows [m0, m1) for channels [c0, c1): qat_rt_conv_fn's contract
 * when pooled is 0 (pool unused), qat_rt_conv_pool_fn's when it is 1 (pool
 * a 2x2 stride-2 maxpool). pooled must be a constant at the call. p->packed
 * was written by a pack function of uk's path; params goes to every tile. */
static inline __attribute__((always_inline)) void
qat_rt_conv_drive(const qat_rt_conv_ukernel *uk, const int pooled, const qat_rt_conv_params *p,
                  const qat_rt_pool_params *pool, const void *params, const int8_t *in,
                  int8_t *out, size_t m0, size_t m1, int c0, int c1, void *scratch)
{
    const qat_rt_conv_head *h = p->packed;
    if (m0 >= m1 || c0 >= c1)
        return;
    /* a pooled output row is four patch rows: its 2x2 window of conv pixels */
    const size_t win = pooled ? 4 : 1;
    const size_t ow = (size_t)(pooled ? pool->out_w : p->out_w);
    const size_t oh = (size_t)(pooled ? pool->out_h : p->out_h), per = oh * ow;
    const size_t elem = (size_t)h->image_elem, c = (size_t)p->in_c, ldo = (size_t)p->out_c;
    /* where windows are read: the prepared image, or the int8 input itself */
    const size_t vb = elem ? elem : 1, pw = elem ? (size_t)p->pad_w : 0;
    const size_t prow = ((size_t)p->in_w + 2 * pw) * c * vb;
    const size_t ystep = (size_t)p->stride_h * prow, xstep = (size_t)p->stride_w * c * vb;
    const size_t in_size = (size_t)p->in_h * (size_t)p->in_w * c;
    const size_t slot = qat_rt_conv_image_bytes(p, h);
    const size_t rb = (size_t)h->row_bytes, block = (size_t)h->block_rows / win;
    uint8_t *a = scratch;
    const void **rows = (const void **)(void *)(a + qat_rt_conv_block_bytes(h));
    int32_t *sums = (int32_t *)(void *)(rows + h->block_rows);
    uint8_t *images = (uint8_t *)rows + qat_rt_conv_index_bytes(h);
    const int nr = uk->nr, t0 = c0 / nr, t1 = (c1 + nr - 1) / nr;
    const size_t mr = (size_t)uk->mr, pool_step = (size_t)uk->pool_mr / 4;
    QAT_ASSERT(!pooled || (pool->kernel_h == 2 && pool->kernel_w == 2 && pool->stride_h == 2 &&
                           pool->stride_w == 2));
    /* image, y and x of output row mb, advanced without dividing */
    size_t img = m0 / per, y = m0 % per / ow, x = m0 % per % ow;
    const size_t img0 = img;
    size_t ready = SIZE_MAX; /* the image `base` points into */
    const uint8_t *base = NULL;
    const int row_tiles = !pooled && uk->row_tiles && uk->row_tiles(p);
    size_t outs;
    for (size_t mb = m0; mb < m1; mb += outs) {
        outs = m1 - mb < block ? m1 - mb : block;
        if (row_tiles && outs > ow - x)
            outs = ow - x;
        size_t r = 0, done = 0; /* rows [done, r) have windows but no patch rows yet */
        for (size_t o = 0; o < outs;) {
            if (img != ready) {
                if (!elem) {
                    base = (const uint8_t *)(in + img * in_size);
                } else {
                    /* one slot, reused: copy out the windows in the old image first */
                    if (!uk->direct && r > done) {
                        qat_rt_conv_rows(uk, p, h, rows + done, r - done, prow, a + done * rb,
                                         sums + done);
                        done = r;
                    }
                    base = qat_rt_conv_prepare(uk, p, elem, in + img * in_size,
                                               images + (uk->direct ? img - img0 : 0) * slot);
                }
                ready = img;
            }
            /* the block's outputs in this output row: a run of windows
             * xs apart, a tight loop (done per output, the multiplies and
             * wrap tests were ~5% of ResNet-8's int8 samples on AVX-512) */
            const size_t n = ow - x < outs - o ? ow - x : outs - o;
            const size_t xs = (pooled ? 2 : 1) * xstep;
            const uint8_t *q = base + (pooled ? 2 : 1) * (y * ystep + x * xstep);
            const void **rr = rows + r;
            if (pooled)
                for (size_t i = 0; i < n; i++, q += xs, rr += 4) {
                    rr[0] = q;
                    rr[1] = q + xstep;
                    rr[2] = q + ystep;
                    rr[3] = q + ystep + xstep;
                }
            else
                for (size_t i = 0; i < n; i++, q += xs)
                    rr[i] = q;
            r += win * n;
            o += n;
            if ((x += n) == ow) {
                x = 0;
                if (++y == oh) {
                    y = 0;
                    img++;
                }
            }
        }
        if (r > done)
            qat_rt_conv_rows(uk, p, h, rows + done, r - done, prow, a + done * rb, sums + done);
        if (!uk->direct)
            for (size_t i = 0; i < r; i++)
                rows[i] = a + i * rb;
        /* groups of rows (a micro-tile's) x channel tiles, in the layer's
         * order; one call site, so each path's tile is inlined once */
        const size_t step = pooled ? pool_step : mr, span = pooled ? outs : r;
        /* row_tiles: the block is one output row's run, in groups of
         * near-equal size */
        const size_t groups = (span + step - 1) / step, ntiles = (size_t)(t1 - t0);
        const int ro = h->rows_outer;
        const size_t n_outer = ro ? groups : ntiles, n_inner = ro ? ntiles : groups;
        for (size_t u = 0; u < n_outer; u++)
            for (size_t v = 0; v < n_inner; v++) {
                const size_t gi = ro ? u : v;
                const int t = t0 + (int)(ro ? v : u);
                const int nvalid = c1 - t * nr < nr ? c1 - t * nr : nr;
                size_t g, n;
                if (row_tiles) {
                    g = gi * span / groups;
                    n = (gi + 1) * span / groups - g;
                } else {
                    g = gi * step;
                    n = span - g < step ? span - g : step;
                }
                int8_t *o = out + (mb + g) * ldo + (size_t)t * (size_t)nr;
                if (pooled)
                    uk->tile_maxpool(p, params, t, nvalid, (int)(4 * n), rows + 4 * g,
                                     sums + 4 * g, o);
                else
                    uk->tile(p, params, t, nvalid, (int)n, rows + g, sums + g, o);
            }
    }
}

/* The driver with the description a layer was packed for: uk, or its
 * narrow one (microkernel.h). Both are constants where the driver is
 * instantiated, so each gets its own inlined copy of the loops; a path
 * without a narrow tile compiles one. */
static inline __attribute__((always_inline)) void
qat_rt_conv_drive_packed(const qat_rt_conv_ukernel *uk, const int pooled,
                         const qat_rt_conv_params *p, const qat_rt_pool_params *pool,
                         const void *params, const int8_t *in, int8_t *out, size_t m0, size_t m1,
                         int c0, int c1, void *scratch)
{
    const qat_rt_conv_head *h = p->packed;
    if (uk->narrow && h->narrow)
        qat_rt_conv_drive(uk->narrow, pooled, p, pool, params, in, out, m0, m1, c0, c1, scratch);
    else
        qat_rt_conv_drive(uk, pooled, p, pool, params, in, out, m0, m1, c0, c1, scratch);
}

/* Defines a path's conv2d / linear kernel CONV and its conv2d + 2x2
 * maxpool kernel CONV_POOL (declared as qat_rt_conv_kernel and
 * qat_rt_conv_pool_kernel in the path's header): the driver instantiated
 * with the description UK (defined in the same file; and with its narrow
 * one), the tiles' params a PARAMS_T made once per call by PARAMS_OF(p). */
#define QAT_RT_CONV_KERNELS(CONV, CONV_POOL, UK, PARAMS_T, PARAMS_OF)                            \
    void CONV(const qat_rt_conv_params *p, const int8_t *in, int8_t *out, size_t m0, size_t m1,  \
              int c0, int c1, void *scratch)                                                     \
    {                                                                                            \
        const PARAMS_T params = PARAMS_OF(p);                                                    \
        qat_rt_conv_drive_packed(&(UK), 0, p, NULL, &params, in, out, m0, m1, c0, c1, scratch);  \
    }                                                                                            \
    void CONV_POOL(const qat_rt_conv_params *p, const qat_rt_pool_params *pool,                  \
                   const int8_t *in, int8_t *out, size_t m0, size_t m1, int c0, int c1,          \
                   void *scratch)                                                                \
    {                                                                                            \
        const PARAMS_T params = PARAMS_OF(p);                                                    \
        qat_rt_conv_drive_packed(&(UK), 1, p, pool, &params, in, out, m0, m1, c0, c1, scratch); \
    }

#endif
