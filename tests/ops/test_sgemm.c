/* qat's sgemm paths against a double-precision reference over awkward
 * shapes, every transpose, alpha/beta and padded leading dimensions; and
 * the tiled paths against each other bit for bit (they share one fma
 * order, sgemm.h). Paths the CPU lacks are skipped. */
#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ops/sgemm/sgemm.h"

static const int sizes[] = {1, 7, 17, 63, 65, 130};
#define NSIZES (int)(sizeof sizes / sizeof sizes[0])

static float frand(unsigned *s)
{
    *s = *s * 1664525u + 1013904223u;
    return (float)((*s >> 8) & 0xFFFF) / 32768.0f - 1.0f;
}

typedef struct {
    int ta, tb, M, N, K, lda, ldb, ldc;
    float alpha, beta;
    float *A, *B, *C0;
} gcase;

static void make(gcase *g, int ta, int tb, int M, int N, int K, float alpha, float beta,
                 unsigned seed)
{
    *g = (gcase){ta, tb, M, N, K, 0, 0, 0, alpha, beta, NULL, NULL, NULL};
    /* leading dimensions wider than the row, by an odd amount */
    g->lda = (ta ? M : K) + 3;
    g->ldb = (tb ? K : N) + 5;
    g->ldc = N + 2;
    size_t na = (size_t)(ta ? K : M) * g->lda, nb = (size_t)(tb ? N : K) * g->ldb;
    size_t nc = (size_t)M * g->ldc;
    g->A = malloc(na * sizeof(float));
    g->B = malloc(nb * sizeof(float));
    g->C0 = malloc(nc * sizeof(float));
    for (size_t i = 0; i < na; i++)
        g->A[i] = frand(&seed);
    for (size_t i = 0; i < nb; i++)
        g->B[i] = frand(&seed);
    for (size_t i = 0; i < nc; i++)
        g->C0[i] = beta == 0.0f ? NAN : frand(&seed); /* beta 0: C must not be read */
}

static void unmake(gcase *g)
{
    free(g->A);
    free(g->B);
    free(g->C0);
}

static float *run(const qat_sgemm_path *p, const gcase *g)
{
    float *C = malloc((size_t)g->M * g->ldc * sizeof(float));
    memcpy(C, g->C0, (size_t)g->M * g->ldc * sizeof(float));
    qat_sgemm_on(p, g->ta, g->tb, g->M, g->N, g->K, g->alpha, g->A, g->lda, g->B, g->ldb, g->beta,
                 C, g->ldc);
    return C;
}

/* |C - ref| <= 2 eps (K + 2) * (|alpha| sum |a b| + |beta c|) + 1e-30: the
 * forward-error bound of a K-term float sum, with headroom. Padding
 * columns of C (j >= N) must be untouched. */
static void check(const char *name, const gcase *g, const float *C)
{
    for (int i = 0; i < g->M; i++) {
        for (int j = 0; j < g->ldc; j++) {
            float got = C[(size_t)i * g->ldc + j], c0 = g->C0[(size_t)i * g->ldc + j];
            if (j >= g->N) {
                cr_assert(memcmp(&got, &c0, sizeof got) == 0, "%s: padding of C written", name);
                continue;
            }
            double s = 0, mag = 0;
            for (int k = 0; k < g->K; k++) {
                double a = g->ta ? g->A[(size_t)k * g->lda + i] : g->A[(size_t)i * g->lda + k];
                double b = g->tb ? g->B[(size_t)j * g->ldb + k] : g->B[(size_t)k * g->ldb + j];
                s += a * b;
                mag += fabs(a * b);
            }
            double ref = g->alpha * s, bound = fabs(g->alpha) * mag;
            if (g->beta != 0.0f) {
                ref += (double)g->beta * c0;
                bound += fabs((double)g->beta * c0);
            }
            double tol = 2.0 * FLT_EPSILON * (g->K + 2) * bound + 1e-30;
            cr_assert(fabs(got - ref) <= tol,
                      "%s ta=%d tb=%d M=%d N=%d K=%d alpha=%g beta=%g: C[%d][%d] = %.9g, "
                      "reference %.9g (tolerance %.3g)",
                      name, g->ta, g->tb, g->M, g->N, g->K, g->alpha, g->beta, i, j, got, ref,
                      tol);
        }
    }
}

static void sweep(const char *name)
{
    const qat_sgemm_path *p = qat_sgemm_path_get(name);
    if (!p)
        cr_skip_test("sgemm path %s: not on this build or CPU", name);
    const qat_sgemm_path *ref = qat_sgemm_path_get("ref");
    const float ab[][2] = {{1.0f, 0.0f}, {0.5f, 1.0f}, {-1.5f, 0.25f}};
    unsigned seed = 1;
    for (int t = 0; t < 4; t++)
        for (int mi = 0; mi < NSIZES; mi++)
            for (int ni = 0; ni < NSIZES; ni++)
                for (int ki = 0; ki < NSIZES; ki++) {
                    const float *s = ab[(mi + ni + ki + t) % 3];
                    gcase g;
                    make(&g, t & 1, t >> 1, sizes[mi], sizes[ni], sizes[ki], s[0], s[1],
                         seed++);
                    float *C = run(p, &g);
                    check(name, &g, C);
                    if (p->tile) { /* the tiles share the scalar tile's bits */
                        float *R = run(ref, &g);
                        cr_assert(memcmp(C, R, (size_t)g.M * g.ldc * sizeof(float)) == 0,
                                  "%s differs from ref bitwise at ta=%d tb=%d M=%d N=%d K=%d",
                                  name, g.ta, g.tb, g.M, g.N, g.K);
                        free(R);
                    }
                    free(C);
                    unmake(&g);
                }
}

/* Deeper than one KC block and wider than one NC / MC block, with the
 * CNN's own shapes (conv2 forward, backward-data, backward-weights; fc1). */
static void big(const char *name)
{
    const qat_sgemm_path *p = qat_sgemm_path_get(name);
    if (!p)
        cr_skip_test("sgemm path %s: not on this build or CPU", name);
    const int shp[][5] = {{0, 1, 227, 64, 288}, {0, 0, 227, 288, 64}, {1, 0, 288, 64, 227},
                          {0, 1, 64, 128, 3136}, {1, 0, 128, 3136, 64}, {0, 0, 97, 257, 513},
                          {1, 1, 200, 300, 600}};
    for (size_t s = 0; s < sizeof shp / sizeof shp[0]; s++) {
        gcase g;
        make(&g, shp[s][0], shp[s][1], shp[s][2], shp[s][3], shp[s][4], 1.0f, s % 2 ? 1.0f : 0.0f,
             (unsigned)s + 100);
        float *C = run(p, &g);
        check(name, &g, C);
        if (p->tile) {
            float *R = run(qat_sgemm_path_get("ref"), &g);
            cr_assert(memcmp(C, R, (size_t)g.M * g.ldc * sizeof(float)) == 0,
                      "%s differs from ref bitwise at M=%d N=%d K=%d", name, g.M, g.N, g.K);
            free(R);
        }
        free(C);
        unmake(&g);
    }
}

/* The direct route (unpacked tiles, masked columns) over awkward shapes:
 * every width up to two vectors and one past, wider ones over several
 * strips, row counts around the tile, depths across KC blocks, every
 * transpose, with and without beta; bit for bit the scalar tile's result.
 * The CNN's narrow and small products must take it, and on a path with
 * dwide (AVX-512) its conv2 and fc1 products too, but not a square nor a B
 * read in place with rows 4 KB apart. */
static void direct(const char *name)
{
    const qat_sgemm_path *p = qat_sgemm_path_get(name);
    if (!p)
        cr_skip_test("sgemm path %s: not on this build or CPU", name);
    cr_assert(qat_sgemm_uses_direct(p, 1, 64, 10, 128, 128) &&
                  qat_sgemm_uses_direct(p, 1, 256, 10, 128, 128) &&
                  qat_sgemm_uses_direct(p, 0, 64, 128, 10, 128) &&
                  qat_sgemm_uses_direct(p, 0, 10, 128, 64, 128),
              "%s: fc2's products do not take the direct route", name);
    int wide = p->dwide >= 64;
    cr_assert(qat_sgemm_uses_direct(p, 1, 227, 64, 288, 288) == wide &&
                  qat_sgemm_uses_direct(p, 0, 227, 288, 64, 288) == wide &&
                  qat_sgemm_uses_direct(p, 0, 288, 64, 227, 64) == wide &&
                  qat_sgemm_uses_direct(p, 1, 64, 128, 3136, 3136) == wide &&
                  qat_sgemm_uses_direct(p, 0, 64, 3136, 128, 3136) == wide,
              "%s: conv2 / fc1 products %s the direct route", name, wide ? "miss" : "take");
    cr_assert(!qat_sgemm_uses_direct(p, 0, 1024, 1024, 1024, 1024) &&
                  !qat_sgemm_uses_direct(p, 0, 64, 1024, 1024, 1024) &&
                  qat_sgemm_uses_direct(p, 1, 64, 1024, 1024, 1024) == wide,
              "%s: a square or a 4 KB-strided B takes the direct route", name);
    const qat_sgemm_path *ref = qat_sgemm_path_get("ref");
    const int ms[] = {1, 5, 8, 9, 13, 64}, ks[] = {1, 10, 257, 300};
    int ns[64], nn = 0;
    for (int n = 1; n <= p->dnr + 1; n += n < 18 ? 1 : 7)
        ns[nn++] = n;
    ns[nn++] = 2 * p->dnr + 5; /* three strips, the last one partial */
    ns[nn++] = 100;
    unsigned seed = 7;
    int routed = 0;
    for (int t = 0; t < 4; t++)
        for (int ni = 0; ni < nn; ni++)
            for (size_t mi = 0; mi < sizeof ms / sizeof ms[0]; mi++)
                for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++) {
                    gcase g;
                    int n = ns[ni];
                    float beta = (n + (int)mi + t) % 2 ? 0.5f : 0.0f;
                    make(&g, t & 1, t >> 1, ms[mi], n, ks[ki], -1.25f, beta, seed++);
                    routed += qat_sgemm_uses_direct(p, g.tb, g.M, g.N, g.K, g.ldb);
                    float *C = run(p, &g), *R = run(ref, &g);
                    check(name, &g, C);
                    cr_assert(memcmp(C, R, (size_t)g.M * g.ldc * sizeof(float)) == 0,
                              "%s direct differs from ref bitwise at ta=%d tb=%d M=%d N=%d K=%d",
                              name, g.ta, g.tb, g.M, g.N, g.K);
                    free(C);
                    free(R);
                    unmake(&g);
                }
    cr_assert(routed > 0, "%s: no case took the direct route", name);
}

Test(sgemm, avx2_direct_route) { direct("avx2"); }
Test(sgemm, avx512_direct_route) { direct("avx512"); }
Test(sgemm, ref_awkward) { sweep("ref"); }
Test(sgemm, avx2_awkward) { sweep("avx2"); }
Test(sgemm, avx512_awkward) { sweep("avx512"); }
Test(sgemm, openblas_awkward) { sweep("openblas"); }
Test(sgemm, ref_cnn_shapes) { big("ref"); }
Test(sgemm, avx2_cnn_shapes) { big("avx2"); }
Test(sgemm, avx512_cnn_shapes) { big("avx512"); }

/* K = 0 and alpha = 0 scale C by beta without reading A or B (NULL here). */
Test(sgemm, empty_product_scales_c)
{
    const char *names[] = {"ref", "avx2", "avx512"};
    for (int n = 0; n < 3; n++) {
        const qat_sgemm_path *p = qat_sgemm_path_get(names[n]);
        if (!p)
            continue;
        float C[6] = {1, 2, 3, 4, 5, 6};
        qat_sgemm_on(p, 0, 0, 2, 3, 0, 1.0f, NULL, 1, NULL, 3, 2.0f, C, 3);
        cr_assert(C[0] == 2.0f && C[5] == 12.0f, "%s: K=0 beta=2", names[n]);
        qat_sgemm_on(p, 0, 0, 2, 3, 4, 0.0f, NULL, 4, NULL, 3, 0.0f, C, 3);
        cr_assert(C[0] == 0.0f && C[5] == 0.0f, "%s: alpha=0 beta=0", names[n]);
    }
}

Test(sgemm, unknown_path_is_null)
{
    cr_assert_null(qat_sgemm_path_get("avx1024"));
    cr_assert_not_null(qat_sgemm_path_get("ref"));
    cr_assert_not_null(qat_sgemm_path_default());
}
