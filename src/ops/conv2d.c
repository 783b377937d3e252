/* 2-D convolution over NHWC activations, forward and backward side by side.
 *
 * Two algorithms; qat_op_conv2d picks by the reduction length K = KH*KW*Cin.
 *
 * im2col + sgemm (K > DIRECT_MAX_K; e.g. conv2 of the MNIST CNN, K = 288).
 *   In NHWC a row of the im2col matrix is one output pixel (n, oh, ow), its
 *   columns are (kh, kw, cin) -- the order of a weight row -- and the
 *   (kw, cin) run of each kernel row is contiguous in x whatever the stride.
 *   So im2col is a few memcpy per row, and out[N*OH*OW, Cout] = col w^T
 *   lands directly in NHWC. The multiply-adds run in src/ops/sgemm (on
 *   AVX-512 its direct route: op(A), the col rows, read in place).
 *   The col matrix is never materialised whole: rows go in blocks of about
 *   BLOCK_BYTES that stay in the core's L2, im2col'ed into per-thread
 *   scratch and consumed at once. For conv2 at batch 64 the whole col
 *   matrix would be 14 MB per step, and on the 2-core target machine memory
 *   bandwidth (~5 GB/s) makes writing it and reading it back in backward
 *   cost more than simply redoing the cheap im2col from x (1.6 MB, hot in
 *   cache) per block. Small blocks also make OpenBLAS faster on these
 *   skinny shapes (about 70 vs 50 GFLOP/s per core measured).
 *   Backward per block: col = im2col(x), dw^T += col^T dy; dcol = dy w,
 *   dx += col2im(dcol).
 *
 * direct (K <= DIRECT_MAX_K; e.g. conv1, Cin = 1, K = 9). A GEMM with K = 9
 *   does only 9 multiply-adds per col element, so building the 9x-inflated
 *   col matrix costs more than the arithmetic: sgemm on L2-sized blocks is
 *   itself quick, but with im2col (even a gather through the offset table
 *   below) conv1 took about 1.8 + 2.1 ms (fwd + dw, one thread) against
 *   1.0-1.4 + 1.3 ms for the direct loops; bench-ops shows the comparison
 *   up to K = 32. The direct kernel reads windows straight from a zero-padded copy of x and
 *   computes PX output pixels at a time with the loop over output channels
 *   outermost, so GCC vectorises across channels and keeps PX accumulator
 *   vectors in registers while it reduces over the K window taps; dw
 *   accumulates PX pixels' outer products per pass over a [K][Cout] partial
 *   that stays in L1. dx (rare: a first layer's input needs none) takes the
 *   sgemm route below.
 *
 * Threads: static splits only. Forward splits output rows (pixels); backward
 * splits whole images, because col2im adds into neighbouring input pixels.
 * Weight and bias gradients are summed into per-thread partials and reduced
 * in thread order, so results are bit-identical run to run for a given
 * thread count. */
#include <string.h>

#include "conv2d_internal.h"
#include "conv_pool.h"
#include "qat/hot_clones.h"
#include "ops/sgemm/sgemm.h"
#include "qat/ops.h"
#include "qat/team.h"

/* Largest K for the direct kernel (its buckets end at 32); bench-ops
 * (direct vs gemm) times both paths at K = 9, 27 and 32. */
#define DIRECT_MAX_K 32
/* Output pixels per direct-kernel step: each weight vector loaded is used
 * PX times. */
#define PX 4
/* Bytes of col per sgemm block, so that col, dcol and the dy/y rows of a
 * block stay inside a 2 MB L2 together. */
#define BLOCK_BYTES (256u * 1024u)

typedef struct {
    int N, H, W, C;    /* input */
    int CO, KH, KW, K; /* K = KH * KW * C, one row of w or col */
    int OH, OW, P;     /* P = OH * OW pixels per image */
    int sh, sw, ph, pw;
} conv_geom;

/* Output pixel (n, oh, ow) and the part of its window inside the image:
 * kernel rows [khlo, khhi) and columns [kwlo, kwhi). */
typedef struct {
    int n, oh, ow;
    int ih0, iw0, khlo, khhi, kwlo, kwhi;
} conv_pix;

static inline void pix_window(const conv_geom *g, conv_pix *p)
{
    p->ih0 = p->oh * g->sh - g->ph;
    p->iw0 = p->ow * g->sw - g->pw;
    p->khlo = p->ih0 < 0 ? -p->ih0 : 0;
    p->khhi = g->H - p->ih0 < g->KH ? g->H - p->ih0 : g->KH;
    p->kwlo = p->iw0 < 0 ? -p->iw0 : 0;
    p->kwhi = g->W - p->iw0 < g->KW ? g->W - p->iw0 : g->KW;
}

static inline void pix_at(const conv_geom *g, size_t r, conv_pix *p)
{
    p->n = (int)(r / (size_t)g->P);
    int q = (int)(r % (size_t)g->P);
    p->oh = q / g->OW;
    p->ow = q % g->OW;
    pix_window(g, p);
}

/* Rows are walked in order, so divisions happen once per range, not per
 * pixel (with K = 9 a division costs as much as the pixel's arithmetic). */
static inline void pix_next(const conv_geom *g, conv_pix *p)
{
    if (++p->ow == g->OW) {
        p->ow = 0;
        if (++p->oh == g->OH) {
            p->oh = 0;
            p->n++;
        }
    }
    pix_window(g, p);
}

/* Offset of x[n, ih0 + kh, iw0 + kwlo, 0]: the in-image start of kernel
 * row kh (only meaningful for khlo <= kh < khhi). */
static inline size_t pix_src(const conv_geom *g, const conv_pix *p, int kh)
{
    return (((size_t)p->n * g->H + (size_t)(p->ih0 + kh)) * g->W + (size_t)(p->iw0 + p->kwlo)) *
           (size_t)g->C;
}

/* ---- im2col / col2im ------------------------------------------------------ */
static void im2col_rows(const conv_geom *g, const float *x, size_t r0, size_t r1, float *col)
{
    size_t run = (size_t)g->KW * g->C;
    conv_pix p;
    pix_at(g, r0, &p);
    for (size_t r = r0; r < r1; r++, pix_next(g, &p)) {
        float *dst = col + (r - r0) * (size_t)g->K;
        for (int kh = 0; kh < g->KH; kh++, dst += run) {
            if (kh < p.khlo || kh >= p.khhi || p.kwlo >= p.kwhi) {
                memset(dst, 0, run * sizeof(float));
                continue;
            }
            size_t lo = (size_t)p.kwlo * g->C, hi = (size_t)p.kwhi * g->C;
            memset(dst, 0, lo * sizeof(float));
            memcpy(dst + lo, x + pix_src(g, &p, kh), (hi - lo) * sizeof(float));
            memset(dst + hi, 0, (run - hi) * sizeof(float));
        }
    }
}

HOT_CLONES
static void col2im_rows(const conv_geom *g, const float *col, size_t r0, size_t r1, float *dx)
{
    conv_pix p;
    pix_at(g, r0, &p);
    for (size_t r = r0; r < r1; r++, pix_next(g, &p)) {
        const float *src = col + (r - r0) * (size_t)g->K;
        int len = (p.kwhi - p.kwlo) * g->C;
        for (int kh = p.khlo; kh < p.khhi; kh++) {
            const float *restrict s = src + ((size_t)kh * g->KW + p.kwlo) * g->C;
            float *restrict d = dx + pix_src(g, &p, kh);
            for (int i = 0; i < len; i++)
                d[i] += s[i];
        }
    }
}

/* ---- direct kernels -------------------------------------------------------- */
/* The direct kernels read x through a zero-padded copy xp
 * [N][H + 2ph][W + 2pw][C], so every window lies inside it and window
 * element k of an output pixel is at a fixed offset off[k] from the
 * window's corner: no bounds checks and no gather in the inner loops.
 * The window length is a compile-time constant KP (K itself for the common
 * 3x3x1, 5x5x1 and 3x3x3 windows, else K rounded up to a bucket with zero
 * weights; those padding taps read the corner element, so only an inf or
 * NaN input could notice them): with a runtime K, GCC vectorises the
 * reduction over k lane by lane instead of the loop over output channels,
 * which measured 8x slower. */
static inline int direct_kp(int K)
{
    if (K == 9 || K == 25 || K == 27)
        return K;
    return K <= 4 ? 4 : K <= 8 ? 8 : K <= 16 ? 16 : 32;
}

/* Padded-input geometry of the direct path. */
typedef struct {
    int Hp, Wp, KP;
    int off[DIRECT_MAX_K];
} direct_geom;

/* Offset in xp of the window corner of output pixel p. */
static inline size_t corner(const conv_geom *g, const direct_geom *d, const conv_pix *p)
{
    return (((size_t)p->n * d->Hp + (size_t)p->oh * g->sh) * d->Wp + (size_t)p->ow * g->sw) *
           (size_t)g->C;
}

/* Four output rows whose window corners are x0..x3: the channel loop is
 * outermost so GCC vectorises across channels and keeps the four
 * accumulator vectors in registers while the unrolled k loop reduces. */
static inline __attribute__((always_inline)) void
direct_fwd4(const float *restrict x0, const float *restrict x1, const float *restrict x2,
            const float *restrict x3, const int *restrict off, const int KP,
            const float *restrict wt, const float *restrict bias, float *restrict y, int CO)
{
    for (int co = 0; co < CO; co++) {
        float s0 = bias[co], s1 = s0, s2 = s0, s3 = s0;
#pragma GCC unroll 32
        for (int k = 0; k < KP; k++) {
            float w = wt[(size_t)k * CO + co];
            s0 += x0[off[k]] * w;
            s1 += x1[off[k]] * w;
            s2 += x2[off[k]] * w;
            s3 += x3[off[k]] * w;
        }
        y[co] = s0;
        y[CO + co] = s1;
        y[2 * CO + co] = s2;
        y[3 * CO + co] = s3;
    }
}

/* Conv output rows [r0, r1) = bias + window . w into y (row r0 first), with
 * wt = w transposed to [KP][CO] (rows past K zero). */
HOT_CLONES
static void direct_fwd_rows(const conv_geom *g, const direct_geom *d, const float *restrict xp,
                            const float *restrict wt, const float *restrict bias,
                            float *restrict y, size_t r0, size_t r1)
{
    int CO = g->CO;
    conv_pix p;
    pix_at(g, r0, &p);
    size_t r = r0;
    for (; r + PX <= r1; r += PX) {
        const float *xq[PX];
        for (int q = 0; q < PX; q++, pix_next(g, &p))
            xq[q] = xp + corner(g, d, &p);
        float *yr = y + (r - r0) * CO;
        switch (d->KP) {
#define FWD4(kp) direct_fwd4(xq[0], xq[1], xq[2], xq[3], d->off, kp, wt, bias, yr, CO)
        case 4: FWD4(4); break;
        case 8: FWD4(8); break;
        case 9: FWD4(9); break;
        case 16: FWD4(16); break;
        case 25: FWD4(25); break;
        case 27: FWD4(27); break;
        default: FWD4(32); break;
#undef FWD4
        }
    }
    for (; r < r1; r++, pix_next(g, &p)) { /* the last < PX rows */
        const float *x0 = xp + corner(g, d, &p);
        for (int co = 0; co < CO; co++) {
            float s = bias[co];
            for (int k = 0; k < d->KP; k++)
                s += x0[d->off[k]] * wt[(size_t)k * CO + co];
            y[(r - r0) * CO + co] = s;
        }
    }
}
_Static_assert(PX == 4, "the direct kernels are written out for PX = 4");

/* dwt[KP][CO] += sum over rows [r0, r1) of window (outer) dy_row (dy holds
 * row r0 first), PX rows
 * per pass so that each dwt vector is loaded and stored once per PX pixels;
 * rows of dwt past K are never touched. db (if not NULL) += the same dy
 * rows, summed while they are in L1. */
HOT_CLONES
static void direct_dw_rows(const conv_geom *g, const direct_geom *d, const float *restrict xp,
                           const float *restrict dy, float *restrict dwt, float *restrict db,
                           size_t r0, size_t r1)
{
    int K = g->K, CO = g->CO;
    conv_pix p;
    pix_at(g, r0, &p);
    size_t r = r0;
    for (; r + PX <= r1; r += PX) {
        const float *xq[PX];
        for (int q = 0; q < PX; q++, pix_next(g, &p))
            xq[q] = xp + corner(g, d, &p);
        const float *restrict d0 = dy + (r - r0) * CO, *restrict d1 = d0 + CO, *restrict d2 = d1 + CO,
                              *restrict d3 = d2 + CO;
        for (int k = 0; k < K; k++) {
            int o = d->off[k];
            float v0 = xq[0][o], v1 = xq[1][o], v2 = xq[2][o], v3 = xq[3][o];
            float *restrict dw = dwt + (size_t)k * CO;
            for (int co = 0; co < CO; co++)
                dw[co] += v0 * d0[co] + v1 * d1[co] + v2 * d2[co] + v3 * d3[co];
        }
        if (db)
            for (int co = 0; co < CO; co++)
                db[co] += (d0[co] + d1[co]) + (d2[co] + d3[co]);
    }
    for (; r < r1; r++, pix_next(g, &p)) {
        const float *x0 = xp + corner(g, d, &p), *d0 = dy + (r - r0) * CO;
        for (int k = 0; k < K; k++) {
            float v = x0[d->off[k]];
            float *restrict dw = dwt + (size_t)k * CO;
            for (int co = 0; co < CO; co++)
                dw[co] += v * d0[co];
        }
        if (db)
            for (int co = 0; co < CO; co++)
                db[co] += d0[co];
    }
}

/* db[CO] += the sum of dy rows [0, n), four rows per pass (see above). */
HOT_CLONES
static void sum_rows(const float *restrict dy, size_t n, int CO, float *restrict db)
{
    size_t r = 0;
    for (; r + 4 <= n; r += 4) {
        const float *d0 = dy + r * CO, *d1 = d0 + CO, *d2 = d1 + CO, *d3 = d2 + CO;
        for (int co = 0; co < CO; co++)
            db[co] += (d0[co] + d1[co]) + (d2[co] + d3[co]);
    }
    for (; r < n; r++)
        for (int co = 0; co < CO; co++)
            db[co] += dy[r * CO + co];
}

/* xp = x with ph/pw zero rows/columns around every image (rows [n0, n1)). */
static void pad_images(const conv_geom *g, const direct_geom *d, const float *x, float *xp,
                       size_t n0, size_t n1)
{
    size_t C = (size_t)g->C, row = (size_t)d->Wp * C;
    for (size_t n = n0; n < n1; n++) {
        float *dst = xp + n * d->Hp * row;
        memset(dst, 0, (size_t)g->ph * row * sizeof(float));
        for (int h = 0; h < g->H; h++) {
            float *dr = dst + (size_t)(g->ph + h) * row;
            memset(dr, 0, (size_t)g->pw * C * sizeof(float));
            memcpy(dr + g->pw * C, x + ((n * g->H + (size_t)h) * g->W) * C,
                   (size_t)g->W * C * sizeof(float));
            memset(dr + (g->pw + g->W) * C, 0, (size_t)g->pw * C * sizeof(float));
        }
        memset(dst + (size_t)(g->ph + g->H) * row, 0, (size_t)g->ph * row * sizeof(float));
    }
}

/* ---- parallel parts ------------------------------------------------------- */
typedef struct {
    conv_geom g;
    qat_conv_algo algo;
    pool_fuse pf;
    const float *x, *w, *bias;
    const direct_geom *dg; /* direct: padded geometry and xp */
    const float *xp, *wt; /* wt: w as [KP][CO] (direct) or [K][CO] (gemm) */
    float *y;
    uint8_t *arg;   /* fused pool: winners, one per pooled output (NULL: none kept) */
    float *scratch; /* gemm: per thread 2 * block_rows * K floats */
    float *pbuf;    /* fused pool: per thread pf.units * KH * OW * CO floats */
    size_t block_rows;
    /* backward */
    const float *dy, *yout; /* yout: the op's output (fused relu mask) */
    float *dx;
    float *dw_part, *db_part; /* per thread dw_stride and CO floats */
    size_t dw_stride;         /* [KP][CO] (direct) or [K][CO] (gemm) */
    int zero_dx;              /* dx is fresh arena memory: clear it first */
} conv_job;

/* Conv output rows [r0, r1) into y (row r0 first); col: gemm scratch. */
static void conv_rows(const conv_job *j, const conv_geom *g, const direct_geom *dl, size_t r0,
                      size_t r1, float *y, float *col)
{
    if (j->algo == QAT_CONV_DIRECT) {
        direct_fwd_rows(g, dl, j->xp, j->wt, j->bias, y, r0, r1);
        return;
    }
    for (size_t r = r0; r < r1; r += j->block_rows) {
        size_t n = r1 - r < j->block_rows ? r1 - r : j->block_rows;
        im2col_rows(g, j->x, r, r + n, col);
        float *yb = y + (r - r0) * g->CO;
        float beta = 0.0f;
        if (j->bias) {
            for (size_t i = 0; i < n; i++)
                memcpy(yb + i * g->CO, j->bias, (size_t)g->CO * sizeof(float));
            beta = 1.0f;
        }
        qat_sgemm(0, 0, (int)n, g->CO, g->K, 1.0f, col, g->K, j->wt, g->CO, beta, yb, g->CO);
    }
}

/* First conv pixel of pooled row u (= n * PH + ph). */
static size_t unit_row0(const conv_geom *g, const pool_fuse *pf, size_t u)
{
    size_t n = u / (size_t)pf->PH, ph = u % (size_t)pf->PH;
    return (n * (size_t)g->OH + ph * (size_t)pf->KH) * (size_t)g->OW;
}

/* Each member works from its own copy of the geometry: the job lives on the
 * calling thread's stack, next to locals that thread keeps writing, so the
 * hot loops of the other members should not read it. */
static void fwd_part(void *vctx, int tid, int nt)
{
    const conv_job *j = vctx;
    const conv_geom gl = j->g, *g = &gl;
    const pool_fuse pf = j->pf;
    direct_geom dl;
    if (j->dg)
        dl = *j->dg;
    float *col = j->scratch ? j->scratch + (size_t)tid * 2 * j->block_rows * g->K : NULL;
    size_t CO = (size_t)g->CO, b, e;
    if (!pf.KH) {
        qat_team_range((size_t)g->N * g->P, tid, nt, &b, &e);
        if (b < e)
            conv_rows(j, g, &dl, b, e, j->y + b * CO, col);
        return;
    }
    float *cb = j->pbuf + (size_t)tid * pf.units * pf.KH * g->OW * CO;
    qat_team_range((size_t)g->N * pf.PH, tid, nt, &b, &e);
    for (size_t u = b; u < e;) { /* blocks of pooled rows within one image */
        size_t left = (size_t)pf.PH - u % (size_t)pf.PH, cnt = e - u < left ? e - u : left;
        cnt = cnt < pf.units ? cnt : pf.units;
        size_t r0 = unit_row0(g, &pf, u);
        conv_rows(j, g, &dl, r0, r0 + cnt * pf.KH * g->OW, cb, col);
        size_t o = u * (size_t)pf.PW * CO;
        qat_conv_pool_block((size_t)g->CO, (size_t)g->OW, &pf, cb, cnt, j->y + o, j->arg ? j->arg + o : NULL);
        u += cnt;
    }
}

/* Backward of conv rows [r0, r1) given their output gradient dy (row r0
 * first): dw and db partials, and dx += col2im(dy w). */
static void bwd_rows(const conv_job *j, const conv_geom *g, const direct_geom *dl,
                     const float *dy, size_t r0, size_t r1, float *dwp, float *dbp, float *col)
{
    size_t K = (size_t)g->K, CO = (size_t)g->CO;
    int gemm_dw = dwp && j->algo == QAT_CONV_GEMM;
    if (dwp && !gemm_dw)
        direct_dw_rows(g, dl, j->xp, dy, dwp, dbp, r0, r1);
    else if (dbp)
        sum_rows(dy, r1 - r0, (int)CO, dbp);
    if (!gemm_dw && !j->dx)
        return;
    /* both algorithms take dx = col2im(dy w) from sgemm: a direct scatter
     * of dy w into small windows measured far slower */
    float *dcol = col + j->block_rows * K;
    for (size_t r = r0; r < r1; r += j->block_rows) {
        size_t n = r1 - r < j->block_rows ? r1 - r : j->block_rows;
        const float *dyb = dy + (r - r0) * CO;
        if (gemm_dw) { /* dw^T += col^T dy: [K][CO] like the direct partials, and
                          measured faster than dw = dy^T col for this shape */
            im2col_rows(g, j->x, r, r + n, col);
            qat_sgemm(1, 0, (int)K, (int)CO, (int)n, 1.0f, col, (int)K, dyb, (int)CO, 1.0f, dwp,
                      (int)CO);
        }
        if (j->dx) { /* dx += col2im(dy w) */
            qat_sgemm(0, 0, (int)n, (int)K, (int)CO, 1.0f, dyb, (int)CO, j->w, (int)K, 0.0f, dcol,
                      (int)K);
            col2im_rows(g, dcol, r, r + n, j->dx);
        }
    }
}

static void bwd_part(void *vctx, int tid, int nt)
{
    const conv_job *j = vctx;
    const conv_geom gl = j->g, *g = &gl;
    const pool_fuse pf = j->pf;
    direct_geom dl;
    if (j->dg)
        dl = *j->dg;
    size_t P = (size_t)g->P, K = (size_t)g->K, CO = (size_t)g->CO;
    size_t nb, ne;
    qat_team_range((size_t)g->N, tid, nt, &nb, &ne);
    float *dwp = j->dw_part ? j->dw_part + (size_t)tid * j->dw_stride : NULL;
    float *dbp = j->db_part ? j->db_part + (size_t)tid * CO : NULL;
    if (dwp)
        memset(dwp, 0, j->dw_stride * sizeof(float));
    if (dbp)
        memset(dbp, 0, CO * sizeof(float));
    if (j->zero_dx) { /* a fresh dx: each thread clears its own images */
        size_t img = (size_t)g->H * g->W * g->C;
        memset(j->dx + nb * img, 0, (ne - nb) * img * sizeof(float));
    }
    float *col = j->scratch ? j->scratch + (size_t)tid * 2 * j->block_rows * K : NULL;
    if (!pf.KH) {
        if (nb < ne)
            bwd_rows(j, g, &dl, j->dy + nb * P * CO, nb * P, ne * P, dwp, dbp, col);
        return;
    }
    float *cb = j->pbuf + (size_t)tid * pf.units * pf.KH * g->OW * CO;
    for (size_t u = nb * pf.PH; u < ne * pf.PH;) { /* whole images: col2im stays inside */
        size_t left = (size_t)pf.PH - u % (size_t)pf.PH, cnt = left < pf.units ? left : pf.units;
        size_t r0 = unit_row0(g, &pf, u), o = u * (size_t)pf.PW * CO;
        qat_conv_unpool_block((size_t)g->CO, (size_t)g->OW, &pf, j->dy + o, j->yout + o, j->arg + o, cnt, cb);
        bwd_rows(j, g, &dl, cb, r0, r0 + cnt * pf.KH * g->OW, dwp, dbp, col);
        u += cnt;
    }
}

/* ---- op ------------------------------------------------------------------- */
typedef struct {
    conv_geom g;
    qat_conv_algo algo;
    pool_fuse pf;
    size_t block_rows;
    direct_geom dg; /* direct path: the padded copy of x the forward made */
    const float *xp;
    uint8_t *arg;
} conv_saved;

static void conv_backward(qat_tape *t, const qat_node *nd)
{
    const conv_saved *s = nd->saved;
    qat_tensor *x = nd->in[0], *w = nd->in[1], *b = nd->nin > 2 ? nd->in[2] : NULL;
    qat_team *team = qat_tape_team(t);
    int nt = qat_team_threads(team);
    size_t K = (size_t)s->g.K, CO = (size_t)s->g.CO;
    conv_job j;
    memset(&j, 0, sizeof j);
    j.g = s->g;
    j.algo = s->algo;
    j.pf = s->pf;
    j.x = x->data;
    j.w = w->data;
    j.block_rows = s->block_rows;
    j.dg = &s->dg;
    j.xp = s->xp;
    j.arg = s->arg;
    j.dy = nd->out->grad;
    j.yout = nd->out->data;
    /* the arena is not thread-safe: every buffer is taken here, up front */
    if (qat_needs_grad(x)) {
        if (!x->grad) { /* zero it in parallel below, not here on one thread */
            x->grad = qat_tape_alloc(t, x->numel * sizeof(float));
            j.zero_dx = 1;
        }
        j.dx = x->grad;
    }
    if (qat_needs_grad(w)) {
        j.dw_stride = (s->algo == QAT_CONV_DIRECT ? (size_t)s->dg.KP : K) * CO;
        j.dw_part = qat_tape_alloc(t, (size_t)nt * j.dw_stride * sizeof(float));
    }
    if (qat_needs_grad(b))
        j.db_part = qat_tape_alloc(t, (size_t)nt * CO * sizeof(float));
    if (s->algo == QAT_CONV_GEMM || j.dx)
        j.scratch = qat_tape_alloc(t, (size_t)nt * 2 * s->block_rows * K * sizeof(float));
    if (s->pf.KH)
        j.pbuf = qat_tape_alloc(t, (size_t)nt * s->pf.units * s->pf.KH * s->g.OW * CO *
                                       sizeof(float));
    qat_team_run(team, bwd_part, &j);

    /* reduce partials in thread order: fixed sums for a fixed thread count */
    if (j.dw_part) {
        float *dw = qat_tape_grad(t, w);
        for (size_t co = 0; co < CO; co++)
            for (size_t k = 0; k < K; k++) { /* partials are dw transposed: [K][CO] */
                size_t i = k * CO + co;
                float sum = j.dw_part[i];
                for (int tid = 1; tid < nt; tid++)
                    sum += j.dw_part[(size_t)tid * j.dw_stride + i];
                dw[co * K + k] += sum;
            }
    }
    if (j.db_part) {
        float *db = qat_tape_grad(t, b);
        for (size_t co = 0; co < CO; co++) {
            float sum = j.db_part[co];
            for (int tid = 1; tid < nt; tid++)
                sum += j.db_part[(size_t)tid * CO + co];
            db[co] += sum;
        }
    }
}

int qat_conv2d_maxpool_fuses(const qat_pool2d_params *pp)
{
    return pp->kernel_h >= 1 && pp->kernel_w >= 1 && pp->stride_h == pp->kernel_h &&
           pp->stride_w == pp->kernel_w && pp->kernel_h * pp->kernel_w <= 255;
}

/* w [CO][K] transposed to [KP][CO] in the tape's arena, rows past K zero
 * (the direct path's padding taps; the gemm path takes KP = K). */
static float *weights_kco(qat_tape *t, const float *w, size_t K, size_t KP, size_t CO)
{
    float *wt = qat_tape_alloc(t, KP * CO * sizeof(float));
    for (size_t k = 0; k < KP; k++)
        for (size_t co = 0; co < CO; co++)
            wt[k * CO + co] = k < K ? w[co * K + k] : 0.0f;
    return wt;
}

qat_tensor *qat_conv2d_pool_algo(qat_tape *t, qat_tensor *x, qat_tensor *w, qat_tensor *b,
                                 const qat_conv2d_params *p, const qat_pool2d_params *pp,
                                 int relu, qat_conv_algo algo)
{
    QAT_ASSERT(x->ndim == 4 && w->ndim == 4 && x->shape[3] == w->shape[3]);
    conv_geom g = {.N = x->shape[0], .H = x->shape[1], .W = x->shape[2], .C = x->shape[3],
                   .CO = w->shape[0], .KH = w->shape[1], .KW = w->shape[2],
                   .sh = p->stride_h, .sw = p->stride_w, .ph = p->pad_h, .pw = p->pad_w};
    g.K = g.KH * g.KW * g.C;
    g.OH = qat_conv_out_size(g.H, g.KH, g.sh, g.ph);
    g.OW = qat_conv_out_size(g.W, g.KW, g.sw, g.pw);
    g.P = g.OH * g.OW;
    QAT_ASSERT(g.OH > 0 && g.OW > 0 && g.ph >= 0 && g.pw >= 0 && g.K > 0 && g.CO > 0);
    QAT_ASSERT(!b || b->numel == (size_t)g.CO);
    if (algo == QAT_CONV_AUTO)
        algo = g.K <= DIRECT_MAX_K ? QAT_CONV_DIRECT : QAT_CONV_GEMM;
    if (algo == QAT_CONV_DIRECT && g.K > DIRECT_MAX_K)
        algo = QAT_CONV_GEMM; /* no kernel for it */
    size_t K = (size_t)g.K, CO = (size_t)g.CO;
    size_t block_rows = BLOCK_BYTES / (K * sizeof(float));
    if (block_rows < 1)
        block_rows = 1;
    pool_fuse pf = {0, 0, 0, 0, 0, 0};
    int shape[4] = {g.N, g.OH, g.OW, g.CO};
    if (pp) {
        QAT_ASSERT(qat_conv2d_maxpool_fuses(pp));
        pf.KH = pp->kernel_h;
        pf.KW = pp->kernel_w;
        pf.PH = g.OH / pf.KH;
        pf.PW = g.OW / pf.KW;
        pf.relu = relu;
        QAT_ASSERT(pf.PH > 0 && pf.PW > 0);
        /* a block as large as the gemm path's, or BLOCK_BYTES of output */
        size_t cap = algo == QAT_CONV_GEMM ? block_rows : BLOCK_BYTES / (CO * sizeof(float));
        pf.units = cap / ((size_t)pf.KH * g.OW);
        pf.units = pf.units ? pf.units : 1;
        shape[1] = pf.PH;
        shape[2] = pf.PW;
    }
    qat_tensor *y = qat_tape_tensor(t, 4, shape);
    qat_team *team = qat_tape_team(t);
    int nt = qat_team_threads(team);
    int keep = qat_tape_grad_enabled(t) &&
               (qat_needs_grad(x) || qat_needs_grad(w) || qat_needs_grad(b));

    conv_job j;
    memset(&j, 0, sizeof j);
    j.g = g;
    j.algo = algo;
    j.pf = pf;
    j.x = x->data;
    j.w = w->data;
    j.y = y->data;
    j.block_rows = block_rows;
    direct_geom dg;
    memset(&dg, 0, sizeof dg);
    if (algo == QAT_CONV_DIRECT) {
        dg.Hp = g.H + 2 * g.ph;
        dg.Wp = g.W + 2 * g.pw;
        dg.KP = direct_kp(g.K);
        for (int k = 0; k < dg.KP; k++) { /* padding taps read the corner */
            int kh = k / (g.KW * g.C), kw = k / g.C % g.KW, c = k % g.C;
            dg.off[k] = k < g.K ? (kh * dg.Wp + kw) * g.C + c : 0;
        }
        float *xp = x->data;
        if (g.ph || g.pw) {
            xp = qat_tape_alloc(t, (size_t)g.N * dg.Hp * dg.Wp * g.C * sizeof(float));
            pad_images(&g, &dg, x->data, xp, 0, (size_t)g.N); /* cheap: 1x the input */
        }
        float *bias = qat_tape_alloc(t, CO * sizeof(float));
        j.wt = weights_kco(t, w->data, K, (size_t)dg.KP, CO);
        for (size_t co = 0; co < CO; co++)
            bias[co] = b ? b->data[co] : 0.0f;
        j.dg = &dg;
        j.xp = xp;
        j.bias = bias;
    } else {
        /* once here, not strip by strip in every block's sgemm (same
         * values, same sums) */
        j.wt = weights_kco(t, w->data, K, K, CO);
        j.bias = b ? b->data : NULL;
        j.scratch = qat_tape_alloc(t, (size_t)nt * 2 * j.block_rows * K * sizeof(float));
    }
    if (pf.KH) {
        j.pbuf = qat_tape_alloc(t, (size_t)nt * pf.units * pf.KH * g.OW * CO * sizeof(float));
        if (keep)
            j.arg = qat_tape_alloc(t, y->numel);
    }
    qat_team_run(team, fwd_part, &j);

    conv_saved *s = NULL;
    if (keep) {
        s = qat_tape_alloc(t, sizeof *s);
        s->g = g;
        s->algo = algo;
        s->pf = pf;
        s->block_rows = j.block_rows;
        s->dg = dg;
        s->xp = j.xp;
        s->arg = j.arg;
    }
    qat_tensor *in[3] = {x, w, b};
    qat_tape_record(t, conv_backward, y, s, b ? 3 : 2, in);
    return y;
}

qat_tensor *qat_conv2d_algo(qat_tape *t, qat_tensor *x, qat_tensor *w, qat_tensor *b,
                            const qat_conv2d_params *p, qat_conv_algo algo)
{
    return qat_conv2d_pool_algo(t, x, w, b, p, NULL, 0, algo);
}

qat_tensor *qat_op_conv2d(qat_tape *t, qat_tensor *x, qat_tensor *w, qat_tensor *b,
                          const qat_conv2d_params *p)
{
    return qat_conv2d_pool_algo(t, x, w, b, p, NULL, 0, QAT_CONV_AUTO);
}

qat_tensor *qat_op_conv2d_maxpool(qat_tape *t, qat_tensor *x, qat_tensor *w, qat_tensor *b,
                                  const qat_conv2d_params *p, const qat_pool2d_params *pp,
                                  int relu)
{
    return qat_conv2d_pool_algo(t, x, w, b, p, pp, relu, QAT_CONV_AUTO);
}
