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
    int mr, nr;      /* patch rows and channels per tile (main tile's nr: channel_align) */
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
    /* A second description for layers of at most narrow->nr output
     * channels (NULL: none), with the same activations (direct, elem,
     * offset, k_align, the primitives) and its own tile sizes, weights
     * layout and tiles: where half or more of the main tile's channels
     * would be padding (ResNet-8's 16-channel stage on AVX-512's 32).
     * Packing picks it per layer (head.narrow) and the kernels run it. Such
     * a layer has one channel split ([0, out_c) under any channel_align
     * >= narrow->nr), so its nr need not be the table's channel_align. */
    const struct qat_rt_conv_ukernel *narrow;
    /* Whether a layer's tiles want their rows to be consecutive outputs of
     * one output row (NULL: never): then the driver ends each block at the
     * end of an output row and cuts a block into tiles of near-equal size
     * (a 28-wide row into 14 + 14, not 16 + 12), none straddling two rows
     * (AVX-512's narrow tile and its run K loop, avx512/conv2d.c). */
    int (*row_tiles)(const qat_rt_conv_params *p);
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
    int32_t narrow;     /* packed for the description's narrow tile (1) or its main one (0) */
    int32_t min_right, max_right; /* over the channels: which output stage forms apply */
} qat_rt_conv_head;

/* The accessors below are always inlined: in AVX-512's conv file, whose
 * driver and tiles GCC inlines into one large function, it kept
 * qat_rt_conv_rq a call (116 call sites, a few in every tile's output
 * stage). */

/* Per-channel arrays: bias (bias_folded, and with raw weights the offset
 * folded in too), weight zero point, multiplier, left = max(shift, 0),
 * right = max(-shift, 0), nright = min(shift, 0), mask = 2^right - 1,
 * thr = mask >> 1. Each path's output stage reads the ones it needs. */
enum { QAT_RT_RQ_BIAS, QAT_RT_RQ_WZP, QAT_RT_RQ_MULT, QAT_RT_RQ_LEFT, QAT_RT_RQ_RIGHT,
       QAT_RT_RQ_NRIGHT, QAT_RT_RQ_MASK, QAT_RT_RQ_THR, QAT_RT_RQ_COUNT };

static inline __attribute__((always_inline)) const int32_t *
qat_rt_conv_rq(const qat_rt_conv_head *h, int which)
{
    return (const int32_t *)(const void *)(h + 1) + (size_t)which * (size_t)h->oc_pad;
}

static inline __attribute__((always_inline)) const void *
qat_rt_conv_weights(const qat_rt_conv_head *h)
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

/* ---- depthwise conv2d ------------------------------------------------------------------- */

/* A depthwise conv2d (groups == in_c, out_c = multiplier * in_c) on a SIMD
 * path: the portable driver (dw_driver.c) hands the path's row ukernel
 * each run of output pixels within one output row; the ukernel
 * vectorises over channels (contiguous in NHWC). A grouped conv with
 * 1 < groups < in_c runs the reference kernel: its channels are not one
 * vector axis, and no model qat trains has one on a hot path.
 *
 * The ukernels multiply x - in_zp, not x: then a padded tap contributes 0
 * and is skipped (no padded copy of the input), and the bias is the
 * layer's own, bias_folded + in_zp * sum (w - wzp). |x - in_zp| <= 255 and
 * validation bounds every partial sum (ARITHMETIC.md §4), so the sums are
 * exact in any order.
 *
 * Packed layer: a qat_rt_dw_head, QAT_RT_RQ_COUNT per-channel int32 arrays
 * of oc_pad entries (qat_rt_dw_rq; padded channels 0), then per tap
 * (ky, kx) oc_pad weights w - wzp in [-255, 255] (qat_rt_dw_weights): int16
 * (welem 2), or int32 with the int16 in the low half and 0 in the high
 * half (welem 4: a pmaddwd operand that multiplies a sign-extended int32
 * exactly). oc_pad leaves at least nr entries past out_c, so a vector of
 * nr channels may start at any channel below out_c. */
typedef struct qat_rt_dw_head {
    int32_t depthwise; /* 0: a general grouped conv (nothing else is packed) */
    int32_t mult;      /* out_c / in_c */
    int32_t taps;      /* kernel_h * kernel_w */
    int32_t oc_pad;
    int32_t any_left;  /* some channel shifts left */
    int32_t min_right, max_right; /* over the channels, as qat_rt_conv_head's */
    int32_t pad_[9];
} qat_rt_dw_head;

static inline __attribute__((always_inline)) const int32_t *
qat_rt_dw_rq(const qat_rt_dw_head *h, int which)
{
    return (const int32_t *)(const void *)(h + 1) + (size_t)which * (size_t)h->oc_pad;
}

static inline __attribute__((always_inline)) const void *
qat_rt_dw_weights(const qat_rt_dw_head *h)
{
    return qat_rt_dw_rq(h, QAT_RT_RQ_COUNT);
}

/* n output pixels of one output row, channels [c0, c1): pixel i (output
 * column ox0 + i) reads its window's input rows ky in [ky0, ky1) (those
 * inside the image) at rows + (ky - ky0) * rstride, pixel ix of a row at
 * ix * pix bytes and output channel oc at byte oc of it (the driver
 * expands the input to output channels when the multiplier is > 1), and
 * writes channels [c0, c1) of out + i * out_c. */
typedef void qat_rt_dw_row_ukernel(const qat_rt_conv_params *p, const int8_t *rows,
                                   size_t rstride, size_t pix, int ky0, int ky1, int ox0,
                                   size_t n, int c0, int c1, int8_t *out);

/* What a row microkernel's tap loop needs about one output pixel: where
 * its window rows are (qat_rt_dw_row_ukernel's rows, rstride, pix), the
 * packed weights' channel stride, and the taps inside the image: rows
 * [ky0, ky1), columns [kx0, kx1) of input column ix0 + kx. */
typedef struct qat_rt_dw_window {
    const int8_t *rows;
    size_t rstride, pix, oc_pad;
    int ky0, ky1, kx0, kx1, ix0, kw;
} qat_rt_dw_window;

static inline qat_rt_dw_window qat_rt_dw_window_of(const qat_rt_conv_params *p,
                                                   const qat_rt_dw_head *h, const int8_t *rows,
                                                   size_t rstride, size_t pix, int ky0, int ky1)
{
    qat_rt_dw_window w = {.rows = rows, .rstride = rstride, .pix = pix,
                          .oc_pad = (size_t)h->oc_pad, .ky0 = ky0, .ky1 = ky1,
                          .kw = p->kernel_w};
    return w;
}

/* The columns of output column ox's window that lie inside the image. */
static inline void qat_rt_dw_columns(const qat_rt_conv_params *p, int ox, qat_rt_dw_window *w)
{
    w->ix0 = ox * p->stride_w - p->pad_w;
    w->kx0 = w->ix0 < 0 ? -w->ix0 : 0;
    w->kx1 = p->in_w - w->ix0 < p->kernel_w ? p->in_w - w->ix0 : p->kernel_w;
}

typedef struct qat_rt_dw_ukernel {
    int nr;    /* channels per vector: oc_pad's granularity */
    int welem; /* bytes per packed weight: 2 or 4 */
    qat_rt_dw_row_ukernel *row;
} qat_rt_dw_ukernel;

/* dw_driver.c: packing (model creation), scratch, and the walk. */
size_t qat_rt_dw_pack_size(const qat_rt_dw_ukernel *uk, const qat_rt_conv_params *p);
void qat_rt_dw_pack(const qat_rt_dw_ukernel *uk, const qat_rt_conv_params *p, void *dst);
size_t qat_rt_dw_scratch(const qat_rt_conv_params *p, int max_images);
void qat_rt_dw_run(const qat_rt_dw_ukernel *uk, const qat_rt_conv_params *p, const int8_t *in,
                   int8_t *out, size_t m0, size_t m1, int c0, int c1, void *scratch);

/* Defines a table's gconv_packed_size, gconv_pack (static SIZE and PACK)
 * and its gconv2d kernel CONV (declared as qat_rt_conv_kernel) for the
 * depthwise description UK. */
#define QAT_RT_DW_KERNELS(SIZE, PACK, CONV, UK)                                                   \
    static size_t SIZE(const qat_rt_conv_params *p) { return qat_rt_dw_pack_size(&(UK), p); }    \
    static void PACK(const qat_rt_conv_params *p, void *dst) { qat_rt_dw_pack(&(UK), p, dst); }  \
    void CONV(const qat_rt_conv_params *p, const int8_t *in, int8_t *out, size_t m0, size_t m1,  \
              int c0, int c1, void *scratch)                                                     \
    {                                                                                            \
        qat_rt_dw_run(&(UK), p, in, out, m0, m1, c0, c1, scratch);                               \
    }

/* ---- add: each input's rescale in 32-bit lanes ---------------------------------------------- */

/* RDPOT(SRDHM((x - zp) 2^20, M), r) of an add input's code x, r = -shift
 * (validated: M >= 0, shift in [-31, 0]). With v = x - zp (|v| <= 255) and
 * M = Mh 2^11 + Ml (Ml < 2^11), SRDHM(v 2^20, M) = floor((v M 2^20 + 2^30)
 * / 2^31) = floor((v M + 2^10) / 2^11) = v Mh + floor((v Ml + 2^10) /
 * 2^11): |v Mh| < 2^28 and |v Ml + 2^10| < 2^20, so two 32-bit multiplies
 * and an arithmetic shift give it exactly, with no 64-bit product. The zero
 * point is folded into the constants: y = x Mh + c2 + ((x Ml + c1) >> 11),
 * c1 = 2^10 - zp Ml, c2 = -zp Mh. Then RDPOT(y, r) = (y + rnd - (one &
 * [y < 0])) >> r: floor((y + 2^(r-1) - [y < 0]) / 2^r) for r >= 1 (stated
 * at qat_fp_requantize_right; y + 2^30 < 2^31 as |y| < 2^28), and y for
 * r = 0 (rnd = one = 0). docs/ARITHMETIC.md §4.1 gives it to implementers.
 * Checked against qat_fp_rescale on every code, zero point and right shift
 * for edge and random multipliers (296M cases) when written, and by the
 * kernel tester's rounding-tie cases. The SIMD adds broadcast these. */
_Static_assert(QAT_RT_ADD_LEFT_SHIFT == 20, "the split of M assumes the add's 2^20 scaling");

typedef struct qat_rt_add_rescale {
    int32_t mh, ml, c1, c2, rnd, one, right;
} qat_rt_add_rescale;

static inline qat_rt_add_rescale qat_rt_add_rescale_of(int32_t mult, int32_t shift, int32_t zp)
{
    const int32_t r = -shift, mh = mult >> 11, ml = mult & 2047;
    qat_rt_add_rescale a = {.mh = mh, .ml = ml, .c1 = 1024 - zp * ml, .c2 = -zp * mh,
                            .rnd = r > 0 ? (int32_t)(1u << (r - 1)) : 0, .one = r > 0,
                            .right = r};
    return a;
}

/* ---- add, concat, global_avgpool: the scalar tails ------------------------------------------ */

/* Elements [i, end) of an add (kernels/ref's semantics). */
static inline void qat_rt_add_tail(const qat_rt_merge_params *p, const int8_t *a, const int8_t *b,
                                   size_t i, size_t end, int8_t *out)
{
    for (; i < end; i++)
        out[i] = (int8_t)qat_fp_add((int32_t)a[i] - p->in_zp[0], (int32_t)b[i] - p->in_zp[1],
                                    QAT_RT_ADD_LEFT_SHIFT, p->in_mult[0], p->in_shift[0],
                                    p->in_mult[1], p->in_shift[1], p->out_mult, p->out_shift,
                                    p->out_zp, p->act_min, p->act_max);
}

/* Codes [i, n) of concat input k's run src into dst. */
static inline void qat_rt_concat_tail(const qat_rt_merge_params *p, int k, const int8_t *src,
                                      size_t i, size_t n, int8_t *dst)
{
    for (; i < n; i++)
        dst[i] = (int8_t)qat_fp_requantize((int32_t)src[i] - p->in_zp[k], p->in_mult[k],
                                           p->in_shift[k], p->out_zp, p->act_min, p->act_max);
}

/* Whether concat input k's requantization is the identity on every code
 * clamped to [act_min, act_max]: zp_k = zp_out and M = 2^30 * 2^(1 - 31) = 1.
 * Then for v = x - zp (|v| <= 255): SatShl(v, 1) = 2v, SRDHM(2v, 2^30) =
 * floor((2^31 v + 2^30) / 2^31) = v, RDPOT(v, 0) = v, and v + zp = x. */
static inline int qat_rt_concat_is_copy(const qat_rt_merge_params *p, int k)
{
    return p->in_mult[k] == (1 << 30) && p->in_shift[k] == 1 && p->in_zp[k] == p->out_zp;
}

/* Channels [ch, C) of image m's global average (kernels/ref's semantics). */
static inline void qat_rt_global_avgpool_tail(const qat_rt_merge_params *p, const int8_t *img,
                                              size_t ch, int8_t *dst)
{
    const size_t C = (size_t)p->out_c, pix = (size_t)p->window;
    for (; ch < C; ch++) {
        int32_t sum = 0;
        for (size_t px = 0; px < pix; px++)
            sum += (int32_t)img[px * C + ch] - p->in_zp[0];
        dst[ch] = (int8_t)qat_fp_requantize(sum, p->out_mult, p->out_shift, p->out_zp,
                                            p->act_min, p->act_max);
    }
}

#endif
