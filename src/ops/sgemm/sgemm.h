/* qat's own single-precision GEMM: one portable driver (cache blocking,
 * packing, edge tiles) and, per ISA, only a register-tile microkernel.
 *
 * Every path computes each element of C the same way: acc = 0, then
 * acc = fma(a, b, acc) over k in order within each KC block, then
 * C = fma(alpha, acc, beta * C) for the first block (C unread when beta is 0)
 * and C = fma(alpha, acc, C) for the next ones. So the AVX-512, AVX2 and
 * scalar paths give the same bits, whatever the tile an element lands in,
 * and so whatever the split of C over threads. The direct route (narrow or
 * small products, unpacked tiles; qat_sgemm_uses_direct) keeps the same
 * blocks and chains. OpenBLAS (a path too) sums in its own order. */
#ifndef QAT_OPS_SGEMM_H
#define QAT_OPS_SGEMM_H

#include <stddef.h>

/* The depth of one packed block: part of the result's rounding (see above),
 * so one value for every path. */
#define QAT_SGEMM_KC 256

/* c[i*ldc + j] (i < mr, j < nr) from a packed [kc][mr] strip of op(A) and a
 * packed [kc][nr] strip of op(B), as described at the top. Never allocates. */
typedef void (*qat_sgemm_tile_fn)(int kc, const float *a, const float *b, float *c, int ldc,
                                  float alpha, float beta);

/* The direct route's tile: c[i*ldc + j] (i < rows <= dmr, j < cols <= dnr)
 * from op(A) read in place (element (i, k) at a[i*rs + k*cs]) and kc rows
 * of ldb floats of op(B) (columns [0, cols) read), the same fma chain as a
 * tile; columns past cols are neither read nor written. Never allocates. */
typedef void (*qat_sgemm_direct_fn)(int rows, int cols, int kc, const float *a, size_t rs,
                                    size_t cs, const float *b, size_t ldb, float *c, int ldc,
                                    float alpha, float beta);

typedef struct {
    const char *name;       /* "avx512", "avx2", "ref", "openblas" */
    int mr, nr;             /* tile, for the driver; 0 for openblas */
    qat_sgemm_tile_fn tile; /* NULL: the whole product goes to OpenBLAS */
    /* The direct route, for products too narrow or small to repay packing
     * (qat_sgemm_uses_direct); NULL: always the packed tiles. */
    int dmr, dnr;
    qat_sgemm_direct_fn direct;
    /* The direct route also for wider products whose smaller side, M or N,
     * is at most dwide (0: never): where the tile outruns packing. */
    int dwide;
} qat_sgemm_path;

/* The path called `name`, or NULL when this build or CPU lacks it. */
const qat_sgemm_path *qat_sgemm_path_get(const char *name);
/* The path the training ops use: $QAT_SGEMM when set (auto, avx512, avx2,
 * ref, openblas; an unknown or unavailable one aborts with a message), else
 * the best this CPU has. Chosen once per process. */
const qat_sgemm_path *qat_sgemm_path_default(void);

/* 1 when qat_sgemm_on(path, trans_b, M, N, K, ..., ldb, ...) (K, alpha
 * nonzero) takes the path's direct route rather than its packed tiles. */
int qat_sgemm_uses_direct(const qat_sgemm_path *path, int trans_b, int M, int N, int K, int ldb);

/* C[M,N] = alpha op(A) op(B) + beta C, row-major, single-threaded, on `path`.
 * Pack buffers: one per calling thread (about 660 KB), kept until it exits. */
void qat_sgemm_on(const qat_sgemm_path *path, int trans_a, int trans_b, int M, int N, int K,
                  float alpha, const float *A, int lda, const float *B, int ldb, float beta,
                  float *C, int ldc);
/* The same on the default path. */
void qat_sgemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
               int lda, const float *B, int ldb, float beta, float *C, int ldc);

/* Microkernels (sgemm_<isa>.c, built with that ISA's flags). */
void qat_sgemm_tile_12x32__avx512(int kc, const float *a, const float *b, float *c, int ldc,
                                  float alpha, float beta);
void qat_sgemm_tile_6x16__avx2(int kc, const float *a, const float *b, float *c, int ldc,
                               float alpha, float beta);
void qat_sgemm_direct_8x32__avx512(int rows, int cols, int kc, const float *a, size_t rs,
                                   size_t cs, const float *b, size_t ldb, float *c, int ldc,
                                   float alpha, float beta);
void qat_sgemm_direct_6x16__avx2(int rows, int cols, int kc, const float *a, size_t rs,
                                 size_t cs, const float *b, size_t ldb, float *c, int ldc,
                                 float alpha, float beta);
void qat_sgemm_tile_4x8__ref(int kc, const float *a, const float *b, float *c, int ldc,
                             float alpha, float beta);

#endif
