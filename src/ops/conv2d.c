/* 2-D convolution over NHWC activations, forward and backward side by side.
 *
 * Two algorithms; qat_op_conv2d picks by the reduction length K = KH*KW*Cin:
 *
 * im2col + sgemm (K > DIRECT_MAX_K; e.g. conv2 of the MNIST CNN, K = 288).
 *   In NHWC a row of the im2col matrix is one output pixel (n, oh, ow) and
 *   its columns are (kh, kw, cin), the order of a weight row, and the
 *   (kw, cin) run of a row is contiguous in x whatever the stride. So im2col
 *   is a few memcpy per row and out[N*OH*OW, Cout] = col w^T lands in NHWC
 *   with no transpose. The multiply-adds run in OpenBLAS, several times
 *   faster than anything auto-vectorised. Rows go in blocks small enough to
 *   stay in L2, because a block that fits runs faster than one big call (we
 *   measured about 70 vs 50 GFLOP/s per core for these skinny shapes).
 *   Backward: dw = dy^T col from the col matrix kept on the tape (cheaper
 *   than a second im2col), dx = col2im(dy w) per block.
 *
 * direct (small K; e.g. conv1, Cin = 1, K = 9). With K = 9 a GEMM does only
 *   9 multiply-adds per col element it streams, so the 9x-inflated col matrix
 *   makes it memory-bound, and OpenBLAS is slow on the skinny dw shape
 *   (Cout x 9 outputs, N*OH*OW-long reduction). The direct loop instead holds
 *   a tile of output channels in registers, broadcasts each input value once
 *   per tile, and never writes col; dw accumulates the same way into a
 *   per-thread [K][Cout] partial.
 *
 * Threads: every parallel loop is a static split (rows of N*OH*OW for the
 * forward and the weight gradient, whole images for dx because col2im
 * scatters into neighbouring pixels). Weight and bias gradients are summed in
 * per-thread partials and reduced in thread order, so results are
 * bit-identical run to run for a given thread count. */
#include <cblas.h>
#include <string.h>

#include "conv2d_internal.h"
#include "ops_internal.h"

/* Above this K the col matrix is dense enough for sgemm to win; benchmarks
 * (bench-ops: direct vs gemm) put the crossover between K = 27 and K = 72. */
#define DIRECT_MAX_K 32
/* Output channels per register tile of the direct loop: two AVX2 vectors. */
#define COT 16
/* Bytes of col per sgemm block: stays in the per-core L2 (2 MB here). */
#define BLOCK_BYTES (512u * 1024u)

/* The hottest non-BLAS loops get an AVX2+FMA clone; the library itself is
 * built for baseline x86-64 and the dispatcher picks at load time. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define HOT_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define HOT_CLONES
#endif

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

/* Start of the in-image part of kernel row kh: x[n, ih0+kh, iw0+kwlo, 0]. */
static inline const float *pix_src(const conv_geom *g, const float *x, const conv_pix *p, int kh)
{
    return x + (((size_t)p->n * g->H + (size_t)(p->ih0 + kh)) * g->W + (size_t)(p->iw0 + p->kwlo)) *
                   g->C;
}

static inline int round_up(int v, int m) { return (v + m - 1) / m * m; }

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
            memcpy(dst + lo, pix_src(g, x, &p, kh), (hi - lo) * sizeof(float));
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
        for (int kh = p.khlo; kh < p.khhi; kh++) {
            const float *s = src + ((size_t)kh * g->KW + p.kwlo) * g->C;
            float *d = (float *)pix_src(g, dx, &p, kh);
            int len = (p.kwhi - p.kwlo) * g->C;
            for (int i = 0; i < len; i++)
                d[i] += s[i];
        }
    }
}

/* ---- direct kernels -------------------------------------------------------- */
/* y rows [r0, r1) = bias + sum over the window of x * w. wt is w transposed to
 * [KH][KW][C][COP] (COP = Cout rounded up to COT, zero padded) so a tile of
 * output channels is one contiguous load per input value; bias_p has COP. */
HOT_CLONES
static void direct_fwd_rows(const conv_geom *g, const float *x, const float *wt,
                            const float *bias_p, float *y, size_t r0, size_t r1)
{
    size_t COP = (size_t)round_up(g->CO, COT);
    conv_pix p;
    pix_at(g, r0, &p);
    for (size_t r = r0; r < r1; r++, pix_next(g, &p)) {
        int span = (p.kwhi - p.kwlo) * g->C;
        for (int co0 = 0; co0 < g->CO; co0 += COT) {
            float acc[COT];
            for (int j = 0; j < COT; j++)
                acc[j] = bias_p[co0 + j];
            for (int kh = p.khlo; kh < p.khhi; kh++) {
                const float *xr = pix_src(g, x, &p, kh);
                const float *wr = wt + ((size_t)kh * g->KW + p.kwlo) * g->C * COP + co0;
                for (int i = 0; i < span; i++) {
                    float xv = xr[i];
                    const float *wv = wr + (size_t)i * COP;
                    for (int j = 0; j < COT; j++)
                        acc[j] += xv * wv[j];
                }
            }
            float *yr = y + r * g->CO + co0;
            int nj = g->CO - co0 < COT ? g->CO - co0 : COT;
            for (int j = 0; j < nj; j++)
                yr[j] = acc[j];
        }
    }
}

/* dwt[K][CO] += sum over rows [r0, r1) of x_window (outer) dy_row. */
HOT_CLONES
static void direct_dw_rows(const conv_geom *g, const float *x, const float *dy, float *dwt,
                           size_t r0, size_t r1)
{
    int CO = g->CO;
    conv_pix p;
    pix_at(g, r0, &p);
    for (size_t r = r0; r < r1; r++, pix_next(g, &p)) {
        const float *dyr = dy + r * CO;
        int span = (p.kwhi - p.kwlo) * g->C;
        for (int kh = p.khlo; kh < p.khhi; kh++) {
            const float *xr = pix_src(g, x, &p, kh);
            float *dr = dwt + ((size_t)kh * g->KW + p.kwlo) * g->C * CO;
            for (int i = 0; i < span; i++) {
                float xv = xr[i];
                float *d = dr + (size_t)i * CO;
                for (int co = 0; co < CO; co++)
                    d[co] += xv * dyr[co];
            }
        }
    }
}

/* dx[window] += dy_row[co] * w[co] over rows [r0, r1): an axpy over the
 * contiguous (kw, cin) run of each kernel row. Only used when the input of a
 * small-K conv needs a gradient, which the first layer of a net never does. */
static void direct_dx_rows(const conv_geom *g, const float *w, const float *dy, float *dx,
                           size_t r0, size_t r1)
{
    conv_pix p;
    pix_at(g, r0, &p);
    for (size_t r = r0; r < r1; r++, pix_next(g, &p)) {
        const float *dyr = dy + r * g->CO;
        int span = (p.kwhi - p.kwlo) * g->C;
        for (int kh = p.khlo; kh < p.khhi; kh++) {
            float *d = (float *)pix_src(g, dx, &p, kh);
            const float *wk = w + ((size_t)kh * g->KW + p.kwlo) * g->C;
            for (int co = 0; co < g->CO; co++) {
                float s = dyr[co];
                const float *wv = wk + (size_t)co * g->K;
                for (int i = 0; i < span; i++)
                    d[i] += s * wv[i];
            }
        }
    }
}

/* ---- parallel parts ------------------------------------------------------- */
typedef struct {
    conv_geom g;
    qat_conv_algo algo;
    const float *x, *w, *bias;
    float *y;
    float *col;     /* [rows][K], kept for backward; NULL = use scratch */
    float *scratch; /* per thread: block_rows * K floats */
    size_t block_rows;
    /* direct forward */
    const float *wt, *bias_p;
    /* backward */
    const float *dy;
    float *dx;
    float *dw_part, *db_part; /* per thread: dw_stride / CO floats, or NULL */
    size_t dw_stride;
} conv_job;

static void fwd_part(void *vctx, int tid, int nt)
{
    const conv_job *j = vctx;
    const conv_geom *g = &j->g;
    size_t rb, re;
    qat_pool_range((size_t)g->N * g->P, tid, nt, &rb, &re);
    if (j->algo == QAT_CONV_DIRECT) {
        if (rb < re)
            direct_fwd_rows(g, j->x, j->wt, j->bias_p, j->y, rb, re);
        return;
    }
    for (size_t r = rb; r < re; r += j->block_rows) {
        size_t n = re - r < j->block_rows ? re - r : j->block_rows;
        float *cb = j->col ? j->col + r * g->K : j->scratch + (size_t)tid * j->block_rows * g->K;
        im2col_rows(g, j->x, r, r + n, cb);
        float *yb = j->y + r * g->CO;
        float beta = 0.0f;
        if (j->bias) {
            for (size_t i = 0; i < n; i++)
                memcpy(yb + i * g->CO, j->bias, (size_t)g->CO * sizeof(float));
            beta = 1.0f;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, g->CO, g->K, 1.0f, cb, g->K,
                    j->w, g->K, beta, yb, g->CO);
    }
}

static void bwd_part(void *vctx, int tid, int nt)
{
    const conv_job *j = vctx;
    const conv_geom *g = &j->g;
    size_t P = (size_t)g->P, K = (size_t)g->K, CO = (size_t)g->CO;
    size_t b, e;
    if (j->dx) { /* whole images per thread: col2im writes across pixels */
        qat_pool_range((size_t)g->N, tid, nt, &b, &e);
        if (j->algo == QAT_CONV_DIRECT) {
            if (b < e)
                direct_dx_rows(g, j->w, j->dy, j->dx, b * P, e * P);
        } else {
            float *db = j->scratch + (size_t)tid * j->block_rows * K;
            for (size_t r = b * P; r < e * P; r += j->block_rows) {
                size_t n = e * P - r < j->block_rows ? e * P - r : j->block_rows;
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)K, (int)CO,
                            1.0f, j->dy + r * CO, (int)CO, j->w, (int)K, 0.0f, db, (int)K);
                col2im_rows(g, db, r, r + n, j->dx);
            }
        }
    }
    qat_pool_range((size_t)g->N * P, tid, nt, &b, &e);
    if (j->dw_part) {
        float *dwp = j->dw_part + (size_t)tid * j->dw_stride;
        memset(dwp, 0, j->dw_stride * sizeof(float));
        if (j->algo == QAT_CONV_DIRECT) {
            if (b < e)
                direct_dw_rows(g, j->x, j->dy, dwp, b, e);
        } else {
            for (size_t r = b; r < e; r += j->block_rows) {
                size_t n = e - r < j->block_rows ? e - r : j->block_rows;
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)CO, (int)K, (int)n,
                            1.0f, j->dy + r * CO, (int)CO, j->col + r * K, (int)K, 1.0f, dwp,
                            (int)K);
            }
        }
    }
    if (j->db_part) {
        float *dbp = j->db_part + (size_t)tid * CO;
        memset(dbp, 0, CO * sizeof(float));
        for (size_t r = b; r < e; r++)
            for (size_t co = 0; co < CO; co++)
                dbp[co] += j->dy[r * CO + co];
    }
}

/* ---- op ------------------------------------------------------------------- */
typedef struct {
    conv_geom g;
    qat_conv_algo algo;
    float *col; /* im2col of x when w needs a gradient (gemm path) */
    size_t block_rows;
} conv_saved;

static void conv_backward(qat_tape *t, const qat_node *nd)
{
    const conv_saved *s = nd->saved;
    qat_tensor *x = nd->in[0], *w = nd->in[1], *b = nd->nin > 2 ? nd->in[2] : NULL;
    qat_pool *pool = qat_tape_pool(t);
    int nt = qat_pool_threads(pool);
    const conv_geom *g = &s->g;
    size_t K = (size_t)g->K, CO = (size_t)g->CO;
    conv_job j;
    memset(&j, 0, sizeof j);
    j.g = *g;
    j.algo = s->algo;
    j.x = x->data;
    j.w = w->data;
    j.col = s->col;
    j.block_rows = s->block_rows;
    j.dy = nd->out->grad;
    /* the arena is not thread-safe: every buffer is taken here, up front */
    if (qat_needs_grad(x)) {
        j.dx = qat_tape_grad(t, x);
        if (s->algo == QAT_CONV_GEMM)
            j.scratch = qat_tape_alloc(t, (size_t)nt * s->block_rows * K * sizeof(float));
    }
    if (qat_needs_grad(w)) {
        QAT_ASSERT(s->algo == QAT_CONV_DIRECT || s->col);
        j.dw_stride = K * CO;
        j.dw_part = qat_tape_alloc(t, (size_t)nt * j.dw_stride * sizeof(float));
    }
    if (qat_needs_grad(b))
        j.db_part = qat_tape_alloc(t, (size_t)nt * CO * sizeof(float));
    qat_pool_run(pool, bwd_part, &j);

    /* reduce partials in thread order: fixed sums for a fixed thread count */
    if (j.dw_part) {
        float *dw = qat_tape_grad(t, w);
        for (size_t co = 0; co < CO; co++)
            for (size_t k = 0; k < K; k++) {
                /* direct partials are [K][CO], gemm partials [CO][K] like w */
                size_t i = s->algo == QAT_CONV_DIRECT ? k * CO + co : co * K + k;
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

qat_tensor *qat_conv2d_algo(qat_tape *t, qat_tensor *x, qat_tensor *w, qat_tensor *b,
                            const qat_conv2d_params *p, qat_conv_algo algo)
{
    QAT_ASSERT(x->ndim == 4 && w->ndim == 4 && x->shape[3] == w->shape[3]);
    conv_geom g = {.N = x->shape[0], .H = x->shape[1], .W = x->shape[2], .C = x->shape[3],
                   .CO = w->shape[0], .KH = w->shape[1], .KW = w->shape[2],
                   .sh = p->stride_h, .sw = p->stride_w, .ph = p->pad_h, .pw = p->pad_w};
    g.K = g.KH * g.KW * g.C;
    g.OH = qat_conv_out_size(g.H, g.KH, g.sh, g.ph);
    g.OW = qat_conv_out_size(g.W, g.KW, g.sw, g.pw);
    g.P = g.OH * g.OW;
    QAT_ASSERT(g.OH > 0 && g.OW > 0 && g.ph >= 0 && g.pw >= 0 && g.K > 0);
    QAT_ASSERT(!b || b->numel == (size_t)g.CO);
    if (algo == QAT_CONV_AUTO)
        algo = g.K <= DIRECT_MAX_K ? QAT_CONV_DIRECT : QAT_CONV_GEMM;

    int shape[4] = {g.N, g.OH, g.OW, g.CO};
    qat_tensor *y = qat_tape_tensor(t, 4, shape);
    qat_pool *pool = qat_tape_pool(t);
    int nt = qat_pool_threads(pool);
    int record = qat_tape_grad_enabled(t) &&
                 (qat_needs_grad(x) || qat_needs_grad(w) || qat_needs_grad(b));
    size_t rows = (size_t)g.N * g.P, K = (size_t)g.K;

    conv_job j;
    memset(&j, 0, sizeof j);
    j.g = g;
    j.algo = algo;
    j.x = x->data;
    j.w = w->data;
    j.bias = b ? b->data : NULL;
    j.y = y->data;
    j.block_rows = BLOCK_BYTES / (K * sizeof(float));
    if (j.block_rows < 1)
        j.block_rows = 1;
    if (algo == QAT_CONV_DIRECT) {
        size_t COP = (size_t)round_up(g.CO, COT);
        float *wt = qat_tape_alloc(t, K * COP * sizeof(float));
        float *bp = qat_tape_alloc(t, COP * sizeof(float));
        for (size_t k = 0; k < K; k++)
            for (size_t co = 0; co < COP; co++)
                wt[k * COP + co] = co < (size_t)g.CO ? w->data[co * K + k] : 0.0f;
        for (size_t co = 0; co < COP; co++)
            bp[co] = b && co < (size_t)g.CO ? b->data[co] : 0.0f;
        j.wt = wt;
        j.bias_p = bp;
    } else if (record && qat_needs_grad(w)) {
        j.col = qat_tape_alloc(t, rows * K * sizeof(float));
    } else {
        j.scratch = qat_tape_alloc(t, (size_t)nt * j.block_rows * K * sizeof(float));
    }
    qat_pool_run(pool, fwd_part, &j);

    conv_saved *s = NULL;
    if (record) {
        s = qat_tape_alloc(t, sizeof *s);
        s->g = g;
        s->algo = algo;
        s->col = j.col;
        s->block_rows = j.block_rows;
    }
    qat_tensor *in[3] = {x, w, b};
    qat_tape_record(t, conv_backward, y, s, b ? 3 : 2, in);
    return y;
}

qat_tensor *qat_op_conv2d(qat_tape *t, qat_tensor *x, qat_tensor *w, qat_tensor *b,
                          const qat_conv2d_params *p)
{
    return qat_conv2d_algo(t, x, w, b, p, QAT_CONV_AUTO);
}
