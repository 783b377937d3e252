/* The contract between the portable drivers and each SIMD path's
 * microkernels, in the manner of XNNPACK's gemm/igemm configs.
 *
 * A driver owns everything that is the same on every path: blocking, the
 * walk over output pixels and pooled windows, where each window starts,
 * preparing input images (padding), im2col, the scratch layout, packing,
 * and the loops over micro-tiles and their tails. A path describes only
 * what differs, in one const struct (qat_rt_conv_ukernel): tile sizes, the
 * layout of its packed weights and activations, the few primitives that
 * move its activation values (fill, convert, copy, sum), and the tile with
 * its fused-maxpool variant (K loop and requantizing output stage inside).
 * A new op is one driver plus a microkernel per path.
 *
 * The conv driver (conv_driver.h) is inlined into each path's conv file
 * with the path's description as a compile-time constant, so the calls
 * through it become direct and the microkernels are inlined: a call per
 * micro-tile cost up to 17% of the CNN's instructions (conv_driver.h). The
 * pool driver (pool_driver.c) is compiled once and calls its microkernel
 * through the pointer, once per row of output pixels. Microkernels are
 * defined with QAT_RT_UKERNEL as external functions their path's header
 * declares (kernels_<isa>.h): callable by name and through the
 * description, and inlined where the driver is instantiated. */
#ifndef QAT_RT_MICROKERNEL_H
#define QAT_RT_MICROKERNEL_H

#include <stddef.h>
#include <stdint.h>

#include "runtime/kernels/kernels.h"

#include "qat/fixedpoint.h"

/* How a microkernel is defined (its path's header declares it extern). */
#define QAT_RT_UKERNEL inline __attribute__((always_inline))

/* ---- conv2d / linear / conv2d + 2x2 maxpool -------------------------------------------- */

/* Activations. A prepared image is an input image converted to the path's
 * values (the int8 code widened to int16, offset to u8, ...; elem bytes
 * each) with its padding filled in, (in_h + 2 pad_h) x (in_w + 2 pad_w) x
 * in_c values: every window row is then one contiguous run. fill writes n
 * values standing for code in_zp (the path's offset added); convert writes
 * n values converted from n codes; copy moves n values (it may read and
 * write up to 32 bytes past both runs: the scratch has slack, and the
 * driver writes a patch row's runs in order, K padding last); sum returns
 * the sum of n values as the tile multiplies them. */
typedef void qat_rt_fill_ukernel(void *dst, size_t n, int32_t in_zp);
typedef void qat_rt_convert_ukernel(void *dst, const int8_t *src, size_t n);
typedef void qat_rt_copy_ukernel(void *dst, const void *src, size_t n);
typedef int32_t qat_rt_sum_ukernel(const void *v, size_t n);

/* One micro-tile: mr patch rows (rows[r], sums[r]) x the nr channels of
 * tile t, from the bias through the output stage; writes channels
 * [0, nvalid) of each output row at out, row stride p->out_c. tile takes
 * 1 <= mr <= the ukernel's mr and writes mr rows; tile_maxpool takes mr a
 * multiple of 4 up to pool_mr, every four rows one 2x2 window, and writes
 * mr / 4 rows of the window maxima. A patch row is a window: on im2col
 * paths its kp values, rows[r] = rows[0] + r * row_bytes (tiles may rely on
 * it); on direct paths its first window row in the prepared image, window
 * row ky prow bytes further on. params: the path's per-call constants (the
 * output stage's bounds as vectors, ...), made once per kernel call by the
 * path's own kernel and passed through the driver, as XNNPACK's
 * microkernels take their params. */
typedef void qat_rt_tile_ukernel(const qat_rt_conv_params *p, const void *params, int t,
                                 int nvalid, int mr, const void *const *rows, const int32_t *sums,
                                 int8_t *out);

/* A path's conv: sizes, layout and microkernels. */
typedef struct qat_rt_conv_ukernel {
    int mr, nr;      /* patch rows and channels per tile (nr: the table's channel_align) */
    int pool_mr;     /* patch rows per fused-maxpool tile, a multiple of 4 */
    int block_max;   /* most patch rows per block, a multiple of mr and pool_mr */
    /* direct: tiles read windows in place in the prepared images, which stay
     * in scratch for the whole call (one slot per image). Else im2col: the
     * driver copies each block's windows into patch rows (one image slot,
     * reused), and pointwise layers read the int8 input unprepared. */
    int direct;
    int elem;        /* bytes per activation value (images, patch rows) */
    int32_t offset;  /* activation value = code + offset (u8 for vpdpbusd: 128) */
    /* Weights: per tile of nr channels, per group of kr positions of the
     * padded K axis (kr a power of two), nr x kr values, channel c's at
     * kr * c. The K axis is padded with zero weights to a multiple of
     * k_align; on direct paths each window row is (a group must not
     * straddle two). wide: int16 w - wzp. Else the raw int8 w: the tile
     * subtracts wzp * sums[r], and the bias absorbs the offset. */
    int kr, k_align, wide;
    qat_rt_fill_ukernel *fill;
    qat_rt_convert_ukernel *convert;
    qat_rt_copy_ukernel *copy;  /* im2col paths */
    qat_rt_sum_ukernel *sum;    /* paths with raw weights */
    qat_rt_tile_ukernel *tile;
    qat_rt_tile_ukernel *tile_maxpool;
} qat_rt_conv_ukernel;

/* The first 64 bytes of every SIMD path's packed conv/linear layer: what
 * the driver and the tiles read. After it come QAT_RT_RQ_COUNT per-channel
 * int32 arrays of oc_pad entries each (qat_rt_conv_rq; padded channels 0),
 * then the weights (qat_rt_conv_weights), each 64-byte aligned when nr is
 * a multiple of 16. */
typedef struct qat_rt_conv_head {
    int32_t k;          /* kernel_h * kernel_w * in_c */
    int32_t kp;         /* the padded K axis: the tiles' K loop */
    int32_t len, lenp;  /* a window row, kernel_w * in_c, and its padded length (direct) */
    int32_t row_bytes;  /* one patch row (im2col paths; 0 on direct ones) */
    int32_t block_rows; /* patch rows per block */
    int32_t image_elem; /* bytes per prepared image value; 0: windows read the int8 input */
    int32_t direct;     /* the ukernel's flag */
    int32_t tiles;      /* ceil(out_c / nr) */
    int32_t oc_pad;     /* tiles * nr */
    int32_t any_left;   /* some channel shifts left: the SatShl step is needed */
    int32_t any_wzp;    /* some channel has a weight zero point */
    int32_t rows_outer; /* a tile's weights exceed L1: the driver's loop order (conv_driver.c) */
    int32_t pad_[3];
} qat_rt_conv_head;

/* Per-channel arrays: bias (bias_folded, and with raw weights the offset
 * folded in too), weight zero point, multiplier, left = max(shift, 0),
 * right = max(-shift, 0), nright = min(shift, 0), mask = 2^right - 1,
 * thr = mask >> 1. Each path's output stage reads the ones it needs. */
enum { QAT_RT_RQ_BIAS, QAT_RT_RQ_WZP, QAT_RT_RQ_MULT, QAT_RT_RQ_LEFT, QAT_RT_RQ_RIGHT,
       QAT_RT_RQ_NRIGHT, QAT_RT_RQ_MASK, QAT_RT_RQ_THR, QAT_RT_RQ_COUNT };

static inline const int32_t *qat_rt_conv_rq(const qat_rt_conv_head *h, int which)
{
    return (const int32_t *)(const void *)(h + 1) + (size_t)which * (size_t)h->oc_pad;
}

static inline const void *qat_rt_conv_weights(const qat_rt_conv_head *h)
{
    return qat_rt_conv_rq(h, QAT_RT_RQ_COUNT);
}

/* Packing (conv_driver.c, plain C; model creation): the blob size and the
 * blob of a layer in uk's layout. Tables bind them to their description. */
size_t qat_rt_conv_pack_size(const qat_rt_conv_ukernel *uk, const qat_rt_conv_params *p);
void qat_rt_conv_pack(const qat_rt_conv_ukernel *uk, const qat_rt_conv_params *p, void *dst);
/* The conv_scratch of every SIMD table: reads the head at p->packed. */
size_t qat_rt_conv_scratch(const qat_rt_conv_params *p, int max_images);

/* Defines a table's conv_packed_size and conv_pack entries (static SIZE
 * and PACK) for the description UK. */
#define QAT_RT_CONV_PACKING(SIZE, PACK, UK)                                                      \
    static size_t SIZE(const qat_rt_conv_params *p) { return qat_rt_conv_pack_size(&(UK), p); } \
    static void PACK(const qat_rt_conv_params *p, void *dst) { qat_rt_conv_pack(&(UK), p, dst); }

/* ---- pools -------------------------------------------------------------------------------- */

/* n consecutive output pixels of one output row: pixel i's window starts at
 * win + i * stride_w * c, its rows in_w * c bytes apart; writes n * c codes
 * at out. The ukernel vectorizes over channels. */
typedef void qat_rt_pool_row_ukernel(const qat_rt_pool_params *p, const int8_t *win, size_t n,
                                     int8_t *out);

/* Channels [ch, c) of the pooled pixel whose window starts at win, one at a
 * time: the tails of the SIMD row microkernels (kernels/ref's semantics). */
static inline void qat_rt_maxpool_tail(const qat_rt_pool_params *p, const int8_t *win, size_t ch,
                                       int8_t *dst)
{
    for (const size_t c = (size_t)p->c; ch < c; ch++) {
        int8_t v = INT8_MIN;
        for (int ky = 0; ky < p->kernel_h; ky++)
            for (int kx = 0; kx < p->kernel_w; kx++) {
                int8_t x = win[((size_t)ky * (size_t)p->in_w + (size_t)kx) * c + ch];
                v = x > v ? x : v;
            }
        dst[ch] = v;
    }
}

static inline void qat_rt_avgpool_tail(const qat_rt_pool_params *p, const int8_t *win, size_t ch,
                                       int8_t *dst)
{
    for (const size_t c = (size_t)p->c; ch < c; ch++) {
        int32_t s = 0;
        for (int ky = 0; ky < p->kernel_h; ky++)
            for (int kx = 0; kx < p->kernel_w; kx++)
                s += (int32_t)win[((size_t)ky * (size_t)p->in_w + (size_t)kx) * c + ch] - p->zp;
        int32_t v = p->zp + qat_fp_div_round(s, p->kernel_h * p->kernel_w);
        dst[ch] = (int8_t)(v < INT8_MIN ? INT8_MIN : v > INT8_MAX ? INT8_MAX : v);
    }
}

/* Output rows [m0, m1) of a pool (qat_rt_pool_fn's contract), one row
 * ukernel call per run of output pixels within an output row. */
void qat_rt_pool_run(qat_rt_pool_row_ukernel *row, const qat_rt_pool_params *p, const int8_t *in,
                     int8_t *out, size_t m0, size_t m1);

/* Defines a path's pool kernel NAME (declared as qat_rt_pool_kernel): the
 * pool driver with the row microkernel ROW. */
#define QAT_RT_POOL_KERNEL(NAME, ROW)                                                            \
    void NAME(const qat_rt_pool_params *p, const int8_t *in, int8_t *out, size_t m0, size_t m1)  \
    {                                                                                            \
        qat_rt_pool_run(ROW, p, in, out, m0, m1);                                                \
    }

#endif
