/* The portable sgemm driver: BLIS's loop order (NC columns of op(B), KC
 * deep, MC rows of op(A), then NR x MR register tiles), packing into
 * zero-padded strips so every tile is full, and the path choice.
 *
 * Pack buffers: one per thread (MC x KC + KC x NC floats, ~660 KB),
 * allocated on the thread's first call and freed when it exits
 * (pthread_getspecific), so calls do not allocate and no two threads share
 * scratch. Not on the stack: test runners and some libcs give threads far
 * less than 660 KB of it. */
#include "ops/sgemm/sgemm.h"

#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qat/status.h"

/* MC a multiple of every MR (12, 6, 4), NC of every NR (32, 16, 8). A KC x NR
 * strip of B (32 KB at NR 32) stays in L1 while the MR x KC strips of A
 * stream from L2. NC 512 rather than 128: A is repacked once per NC
 * columns, and at 128 that cost 1024^3 a sixth of its speed (bench-ops). */
#define MC 144
#define NC 512
#define MAX_MR 12
#define MAX_NR 32

/* dst[k][w] = src[w][k] for w < width, k < kc: a full strip read from
 * `width` rows of a row-major matrix. Fixed widths, so the compiler unrolls
 * the inner loop and each packed k-row is written contiguously (the loop
 * the other way round cost conv2's forward a fifth of its speed). */
static inline void transpose_fixed(const float *src, int ld, int kc, int width, float *dst)
{
    for (int k = 0; k < kc; k++)
#pragma GCC unroll 32
        for (int w = 0; w < width; w++)
            dst[(size_t)k * width + w] = src[(size_t)w * ld + k];
}

static void transpose_strip(const float *src, int ld, int kc, int width, float *dst)
{
    switch (width) { /* every MR and NR of the tiles */
    case 4: transpose_fixed(src, ld, kc, 4, dst); break;
    case 6: transpose_fixed(src, ld, kc, 6, dst); break;
    case 8: transpose_fixed(src, ld, kc, 8, dst); break;
    case 12: transpose_fixed(src, ld, kc, 12, dst); break;
    case 16: transpose_fixed(src, ld, kc, 16, dst); break;
    case 32: transpose_fixed(src, ld, kc, 32, dst); break;
    default: transpose_fixed(src, ld, kc, width, dst); break;
    }
}

/* op(A)[i0 .. i0+mc) x [k0 .. k0+kc) into strips of mr rows: strip s holds
 * [k][mr], rows past M zero. */
static void pack_a(int trans_a, const float *A, int lda, int i0, int mc, int k0, int kc, int mr,
                   float *ap)
{
    for (int s = 0; s < mc; s += mr, ap += (size_t)mr * kc) {
        int rows = mc - s < mr ? mc - s : mr;
        if (trans_a) { /* op(A)[i][k] = A[k][i]: rows of A are contiguous in i */
            for (int k = 0; k < kc; k++) {
                const float *src = A + (size_t)(k0 + k) * lda + i0 + s;
                float *dst = ap + (size_t)k * mr;
                int i = 0;
                for (; i < rows; i++)
                    dst[i] = src[i];
                for (; i < mr; i++)
                    dst[i] = 0.0f;
            }
        } else if (rows == mr) {
            transpose_strip(A + (size_t)(i0 + s) * lda + k0, lda, kc, mr, ap);
        } else {
            for (int i = 0; i < rows; i++) {
                const float *src = A + (size_t)(i0 + s + i) * lda + k0;
                for (int k = 0; k < kc; k++)
                    ap[(size_t)k * mr + i] = src[k];
            }
            for (int i = rows; i < mr; i++)
                for (int k = 0; k < kc; k++)
                    ap[(size_t)k * mr + i] = 0.0f;
        }
    }
}

/* op(B)[k0 .. k0+kc) x [j0 .. j0+nc) into strips of nr columns: [k][nr],
 * columns past N zero. */
static void pack_b(int trans_b, const float *B, int ldb, int k0, int kc, int j0, int nc, int nr,
                   float *bp)
{
    for (int s = 0; s < nc; s += nr, bp += (size_t)nr * kc) {
        int cols = nc - s < nr ? nc - s : nr;
        if (!trans_b) {
            for (int k = 0; k < kc; k++) {
                const float *src = B + (size_t)(k0 + k) * ldb + j0 + s;
                float *dst = bp + (size_t)k * nr;
                int j = 0;
                for (; j < cols; j++)
                    dst[j] = src[j];
                for (; j < nr; j++)
                    dst[j] = 0.0f;
            }
        } else if (cols == nr) { /* op(B)[k][j] = B[j][k] */
            transpose_strip(B + (size_t)(j0 + s) * ldb + k0, ldb, kc, nr, bp);
        } else {
            for (int j = 0; j < cols; j++) {
                const float *src = B + (size_t)(j0 + s + j) * ldb + k0;
                for (int k = 0; k < kc; k++)
                    bp[(size_t)k * nr + j] = src[k];
            }
            for (int j = cols; j < nr; j++)
                for (int k = 0; k < kc; k++)
                    bp[(size_t)k * nr + j] = 0.0f;
        }
    }
}

/* C = beta C, the whole product when K or alpha is 0 (A, B unread). */
static void scale_c(int M, int N, float beta, float *C, int ldc)
{
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++)
            C[(size_t)i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[(size_t)i * ldc + j];
}

static pthread_key_t pack_key;
static pthread_once_t pack_once = PTHREAD_ONCE_INIT;

static void pack_key_create(void) { QAT_ASSERT(pthread_key_create(&pack_key, free) == 0); }

/* This thread's pack buffer, MC x KC floats of A then KC x NC of B. */
static float *pack_buffer(void)
{
    pthread_once(&pack_once, pack_key_create);
    float *p = pthread_getspecific(pack_key);
    if (!p) {
        p = aligned_alloc(64, (size_t)(MC + NC) * QAT_SGEMM_KC * sizeof(float));
        QAT_ASSERT(p && pthread_setspecific(pack_key, p) == 0);
    }
    return p;
}

/* The direct route: no packing of op(A) (the tile broadcasts it in place)
 * nor of B's rows (read with masks); only a transposed op(B) is gathered,
 * strip by strip, into the B pack area. Same KC blocks, so the same bits. */
static void gemm_direct(const qat_sgemm_path *p, int trans_a, int trans_b, int M, int N, int K,
                        float alpha, const float *A, int lda, const float *B, int ldb,
                        float beta, float *C, int ldc)
{
    const int mr = p->dmr, nr = p->dnr;
    const size_t rs = trans_a ? 1 : (size_t)lda, cs = trans_a ? (size_t)lda : 1;
    float *bp = pack_buffer() + MC * QAT_SGEMM_KC;
    for (int pc = 0; pc < K; pc += QAT_SGEMM_KC) {
        int kc = K - pc < QAT_SGEMM_KC ? K - pc : QAT_SGEMM_KC;
        float b_in = pc == 0 ? beta : 1.0f; /* later blocks add to C */
        for (int jr = 0; jr < N; jr += nr) {
            int cols = N - jr < nr ? N - jr : nr;
            const float *bs = B + (size_t)pc * ldb + jr;
            size_t lb = (size_t)ldb;
            if (trans_b && cols == nr) { /* op(B)[k][j] = B[j][k], unrolled */
                transpose_strip(B + (size_t)jr * ldb + pc, ldb, kc, nr, bp);
                bs = bp;
                lb = (size_t)nr;
            } else if (trans_b) {
                for (int j = 0; j < cols; j++) {
                    const float *src = B + (size_t)(jr + j) * ldb + pc;
                    for (int k = 0; k < kc; k++)
                        bp[(size_t)k * nr + j] = src[k];
                }
                bs = bp;
                lb = (size_t)nr;
            }
            for (int ir = 0; ir < M; ir += mr)
                p->direct(M - ir < mr ? M - ir : mr, cols, kc, A + ir * rs + (size_t)pc * cs, rs,
                          cs, bs, lb, C + (size_t)ir * ldc + jr, ldc, alpha, b_in);
        }
    }
}

/* Direct when the packed tiles would be mostly padding (N within one
 * direct tile: fc2's N = 10 filled 10 of a 32-wide AVX-512 tile, 8% of
 * peak), or when the product is so small that packing op(A) and op(B)
 * costs about as many instructions as its multiply-adds (fc2's backward
 * products, 64 x 128 x 10 and 10 x 128 x 64: 82k multiply-adds, ~10k
 * floats packed).
 *
 * And, on a path with dwide (AVX-512), when M or N is at most dwide: packing
 * copies op(A) once per NC columns and op(B) once per call, so its share of
 * the work grows as the other side narrows, and a 32-wide tile of 16-lane
 * FMAs outruns the (transposing) copy loops. bench-ops gemm-paths, one
 * core, thread CPU time (2026-12-06, AVX-512, GFLOP/s packed -> direct,
 * beside two training runs): conv2 forward 139 -> 176, backward-data
 * 186 -> 209, backward-weights 179 -> 205, fc1 forward 116 -> 127,
 * backward-data 150 -> 186, backward-weights 176 -> 185; the 1024^3 square
 * lost (172 -> 123), and so did every product on the AVX2 6x16 tiles
 * (dwide 0); quiet figures in benchmarks/README.md. Not when B, read in
 * place (not transposed), has rows a multiple of 4 KB apart: a 256-deep
 * strip of them falls in one L1 set and is evicted before the next row
 * tile reuses it. */
#define DIRECT_MAX_WORK ((size_t)1 << 17)

int qat_sgemm_uses_direct(const qat_sgemm_path *p, int trans_b, int M, int N, int K, int ldb)
{
    if (!p->direct)
        return 0;
    if (N <= p->dnr || (size_t)M * (size_t)N * (size_t)K <= DIRECT_MAX_WORK)
        return 1;
    int aliased = !trans_b && (size_t)ldb * sizeof(float) % 4096 == 0;
    return (M < N ? M : N) <= p->dwide && !aliased;
}

/* An edge tile's valid part into C with the tile's own rounding: C = fma(alpha,
 * acc, beta C). fmaf is exact everywhere; the x86-64-v3 clone makes it one
 * vfmadd a value, inline and vectorised, where the baseline build calls libm
 * (an edge is a quarter of C when M is 32: the last 8 of 12 rows). */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
__attribute__((target_clones("arch=x86-64-v3", "default")))
#endif
static void store_edge(const float *edge, int nr, int rows, int cols, float alpha, float b_in,
                       float *c, int ldc)
{
    for (int i = 0; i < rows; i++) {
        const float *e = edge + (size_t)i * (size_t)nr;
        float *ci = c + (size_t)i * (size_t)ldc;
        if (b_in == 0.0f)
            for (int j = 0; j < cols; j++)
                ci[j] = fmaf(alpha, e[j], 0.0f);
        else
            for (int j = 0; j < cols; j++)
                ci[j] = fmaf(alpha, e[j], b_in * ci[j]);
    }
}

void qat_sgemm_on(const qat_sgemm_path *p, int trans_a, int trans_b, int M, int N, int K,
                  float alpha, const float *A, int lda, const float *B, int ldb, float beta,
                  float *C, int ldc)
{
    if (M <= 0 || N <= 0)
        return;
    if (!p->tile) {
        cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                    trans_b ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda, B, ldb, beta,
                    C, ldc);
        return;
    }
    if (K <= 0 || alpha == 0.0f) {
        scale_c(M, N, beta, C, ldc);
        return;
    }
    if (qat_sgemm_uses_direct(p, trans_b, M, N, K, ldb)) {
        gemm_direct(p, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    const int mr = p->mr, nr = p->nr;
    QAT_ASSERT(mr <= MAX_MR && nr <= MAX_NR && MC % mr == 0 && NC % nr == 0);
    float *ap = pack_buffer(), *bp = ap + MC * QAT_SGEMM_KC;
    float edge[MAX_MR * MAX_NR] __attribute__((aligned(64)));
    for (int jc = 0; jc < N; jc += NC) {
        int nc = N - jc < NC ? N - jc : NC;
        for (int pc = 0; pc < K; pc += QAT_SGEMM_KC) {
            int kc = K - pc < QAT_SGEMM_KC ? K - pc : QAT_SGEMM_KC;
            float b_in = pc == 0 ? beta : 1.0f; /* later blocks add to C */
            pack_b(trans_b, B, ldb, pc, kc, jc, nc, nr, bp);
            for (int ic = 0; ic < M; ic += MC) {
                int mc = M - ic < MC ? M - ic : MC;
                pack_a(trans_a, A, lda, ic, mc, pc, kc, mr, ap);
                for (int jr = 0; jr < nc; jr += nr) {
                    int cols = nc - jr < nr ? nc - jr : nr;
                    const float *bs = bp + (size_t)jr * kc;
                    for (int ir = 0; ir < mc; ir += mr) {
                        int rows = mc - ir < mr ? mc - ir : mr;
                        const float *as = ap + (size_t)ir * kc;
                        float *c = C + (size_t)(ic + ir) * ldc + jc + jr;
                        if (rows == mr && cols == nr) {
                            p->tile(kc, as, bs, c, ldc, alpha, b_in);
                            continue;
                        }
                        /* an edge: the full tile into `edge` (alpha 1, beta 0
                         * store acc exactly), then the same fma as a tile */
                        p->tile(kc, as, bs, edge, nr, 1.0f, 0.0f);
                        store_edge(edge, nr, rows, cols, alpha, b_in, c, ldc);
                    }
                }
            }
        }
    }
}

static const qat_sgemm_path path_ref = {"ref", 4, 8, qat_sgemm_tile_4x8__ref, 0, 0, NULL, 0};
static const qat_sgemm_path path_openblas = {"openblas", 0, 0, NULL, 0, 0, NULL, 0};
#if defined(QAT_SGEMM_HAVE_X86)
static const qat_sgemm_path path_avx2 = {"avx2", 6, 16, qat_sgemm_tile_6x16__avx2,
                                         6, 16, qat_sgemm_direct_6x16__avx2, 0};
static const qat_sgemm_path path_avx512 = {"avx512", 12, 32, qat_sgemm_tile_12x32__avx512,
                                           8, 32, qat_sgemm_direct_8x32__avx512, 256};
#endif

const qat_sgemm_path *qat_sgemm_path_get(const char *name)
{
    if (strcmp(name, "ref") == 0)
        return &path_ref;
    if (strcmp(name, "openblas") == 0)
        return &path_openblas;
#if defined(QAT_SGEMM_HAVE_X86)
    /* libgcc's probe includes the OS saving the ymm / zmm state (XCR0) */
    __builtin_cpu_init();
    if (strcmp(name, "avx2") == 0 && __builtin_cpu_supports("avx2") &&
        __builtin_cpu_supports("fma"))
        return &path_avx2;
    if (strcmp(name, "avx512") == 0 && __builtin_cpu_supports("avx512f"))
        return &path_avx512;
#endif
    return NULL;
}

/* Chosen once: a pure function of the CPU and the environment, read by
 * every op on every call (a cpuid per call costs microseconds under a
 * hypervisor), so passing it down through each op would buy nothing. */
static const qat_sgemm_path *chosen;
static pthread_once_t chosen_once = PTHREAD_ONCE_INIT;

static void choose(void)
{
    const char *env = getenv("QAT_SGEMM");
    if (env && *env && strcmp(env, "auto") != 0) {
        chosen = qat_sgemm_path_get(env);
        if (!chosen) {
            fprintf(stderr,
                    "qat: QAT_SGEMM=%s (environment): not a path this build and CPU have "
                    "(auto, avx512, avx2, ref, openblas)\n",
                    env);
            abort();
        }
        return;
    }
    /* no AVX2: OpenBLAS's own kernels beat the scalar tile */
    const char *order[] = {"avx512", "avx2", "openblas"};
    for (size_t i = 0; !chosen; i++)
        chosen = qat_sgemm_path_get(order[i]);
}

const qat_sgemm_path *qat_sgemm_path_default(void)
{
    pthread_once(&chosen_once, choose);
    return chosen;
}

void qat_sgemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
               int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
    qat_sgemm_on(qat_sgemm_path_default(), trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb,
                 beta, C, ldc);
}
