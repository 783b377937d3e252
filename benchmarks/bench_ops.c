/* Times the CNN ops at batch 64 (the MNIST CNN's layers) for 1 and 2
 * threads, with plain sgemm of the same shape as a yardstick; and, first,
 * the CNN's own GEMM shapes on one core on every sgemm path side by side
 * (qat's AVX-512 / AVX2 tiles, OpenBLAS) against the core's measured fp32
 * FMA peak. The ops use the default path ($QAT_SGEMM to force one).
 *
 *   ninja -C build && ./build/benchmarks/bench-ops [reps] [name-filter]
 *   ./build/benchmarks/bench-ops --fma-peak   (one JSON line: this core's
 *                                              fp32 FMA peak, GFMA/s)
 *
 * Prints the median ms per batch over reps (default 30) after warm-up, and
 * GFLOP/s for the convolutions (2 flops per multiply-add; the backward of
 * conv1 computes dw and db only, as its input needs no gradient). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ops/conv2d_internal.h"
#include "ops/sgemm/sgemm.h"
#include "qat/autograd.h"
#include "qat/clock.h"
#include "qat/ops.h"
#include "qat/team.h"
#include "qat/rng.h"

#include "peak.h"

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* A tensor that owns malloc'd data (and grad when want_grad). */
typedef struct {
    qat_tensor t;
    float *data, *grad;
} owned;

static void owned_init(owned *o, qat_rng *r, int ndim, const int *shape, float scale,
                       int want_grad)
{
    size_t n = qat_shape_numel(ndim, shape);
    o->data = malloc(n * sizeof(float));
    o->grad = want_grad ? calloc(n, sizeof(float)) : NULL;
    for (size_t i = 0; i < n; i++)
        o->data[i] = scale * qat_rng_normal(r);
    o->t = qat_tensor_view(o->data, o->grad, ndim, shape);
}

static void owned_free(owned *o)
{
    free(o->data);
    free(o->grad);
}

typedef enum { OP_CONV, OP_MAXPOOL, OP_AVGPOOL } op_kind;

typedef struct {
    const char *name;
    op_kind kind;
    int H, W, C, CO, k, pad; /* conv: k x k kernel, stride 1; pool: k x k, stride k */
    int x_grad;
    qat_conv_algo algo;
} bench_case;

typedef struct {
    double fwd_ms, total_ms, total_min_ms; /* medians, and the fastest fwd+bwd */
} timing;

/* Runs forward and backward reps times, each on a fresh step. The backward
 * starts from a fixed dy seeded straight into the output's grad, so no loss
 * op is timed. */
static timing run_case(const bench_case *c, qat_team *team, int N, int reps)
{
    qat_rng r;
    qat_rng_seed(&r, 1, 0);
    owned x, w, b, one;
    int xs[4] = {N, c->H, c->W, c->C}, ws[4] = {c->CO, c->k, c->k, c->C}, bs[1] = {c->CO};
    int s1[1] = {1};
    owned_init(&x, &r, 4, xs, 1.0f, c->x_grad);
    owned_init(&w, &r, 4, ws, 0.1f, 1);
    owned_init(&b, &r, 1, bs, 0.1f, 1);
    owned_init(&one, &r, 1, s1, 1.0f, 1); /* stand-in scalar "loss" for tape_backward */
    qat_tape *t;
    if (qat_tape_create(team, &t, NULL) != QAT_OK)
        abort();
    qat_conv2d_params cp = {1, 1, c->pad, c->pad};
    qat_pool2d_params pp = {c->k, c->k, c->k, c->k};
    float *dy = NULL;
    double *tf = malloc((size_t)reps * sizeof(double)), *tt = malloc((size_t)reps * sizeof(double));
    for (int it = -3; it < reps; it++) { /* 3 warm-up steps grow the arena */
        qat_tape_reset(t);
        double t0 = qat_clock_seconds();
        qat_tensor *y;
        if (c->kind == OP_CONV)
            y = qat_conv2d_algo(t, &x.t, &w.t, &b.t, &cp, c->algo);
        else if (c->kind == OP_MAXPOOL)
            y = qat_op_maxpool2d(t, &x.t, &pp);
        else
            y = qat_op_avgpool2d(t, &x.t, &pp);
        double t1 = qat_clock_seconds();
        if (!dy) {
            dy = malloc(y->numel * sizeof(float));
            for (size_t i = 0; i < y->numel; i++)
                dy[i] = qat_rng_normal(&r);
        }
        y->grad = dy;
        qat_tape_backward(t, &one.t);
        double t2 = qat_clock_seconds();
        if (it >= 0) {
            tf[it] = (t1 - t0) * 1e3;
            tt[it] = (t2 - t0) * 1e3;
        }
    }
    timing res;
    res.fwd_ms = median(tf, reps);
    res.total_ms = median(tt, reps);
    res.total_min_ms = tt[0]; /* sorted by median() */
    free(tf);
    free(tt);
    free(dy);
    qat_tape_destroy(t);
    owned_free(&x);
    owned_free(&w);
    owned_free(&b);
    owned_free(&one);
    return res;
}

static double conv_flops(const bench_case *c, int N, int with_backward)
{
    int OH = qat_conv_out_size(c->H, c->k, 1, c->pad), OW = qat_conv_out_size(c->W, c->k, 1, c->pad);
    double pass = 2.0 * N * OH * OW * (double)c->CO * c->k * c->k * c->C;
    return with_backward ? pass * (c->x_grad ? 3.0 : 2.0) : pass;
}

/* A [M*K], B [K*N] of small values, C [M*N] zero; the caller frees them. */
static void gemm_operands(int M, int N, int K, float **A, float **B, float **C)
{
    *A = malloc((size_t)M * K * sizeof(float));
    *B = malloc((size_t)K * N * sizeof(float));
    *C = calloc((size_t)M * N, sizeof(float));
    for (size_t i = 0; i < (size_t)M * K; i++)
        (*A)[i] = (float)(i % 13) * 0.01f;
    for (size_t i = 0; i < (size_t)K * N; i++)
        (*B)[i] = (float)(i % 7) * 0.01f;
}

static void bench_sgemm(qat_team *team, const char *name, int ta, int tb, int M, int N, int K,
                        int reps)
{
    float *A, *B, *C;
    gemm_operands(M, N, K, &A, &B, &C);
    double *ts = malloc((size_t)reps * sizeof(double));
    for (int it = -3; it < reps; it++) {
        double t0 = qat_clock_seconds();
        qat_sgemm_rows(team, ta, tb, M, N, K, 1.0f, A, ta ? M : K, B, tb ? K : N, 0.0f, C, N);
        if (it >= 0)
            ts[it] = (qat_clock_seconds() - t0) * 1e3;
    }
    double ms = median(ts, reps);
    printf("  %-34s %8.3f ms  %6.1f GFLOP/s\n", name, ms, 2.0 * M * N * (double)K / ms * 1e-6);
    free(A);
    free(B);
    free(C);
    free(ts);
}

/* ---- sgemm paths on the CNN's GEMM shapes, one core ------------------------------ */

/* This thread's CPU time: a busy machine preempts us less than it slows
 * the wall clock, and the minimum over repetitions discards the rest. */
static double cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Best of 5 half-second runs of the fp32 FMA loop, in GFMA/s (0: none). */
static double fma_peak(const char *isa)
{
    long (*fn)(long) = NULL;
#if defined(__x86_64__)
    if (strcmp(isa, "avx512") == 0 && qat_sgemm_path_get("avx512"))
        fn = qat_bench_peak_fma_avx512;
    if (strcmp(isa, "avx2") == 0 && qat_sgemm_path_get("avx2"))
        fn = qat_bench_peak_fma_avx2;
#endif
    double best = 0.0;
    for (int r = 0; fn && r < 5; r++) {
        long fmas = 0;
        double t0 = cpu_seconds(), t;
        do {
            long m = fn(1 << 18);
            if (m < 0) {
                fprintf(stderr, "bench-ops: the %s FMA peak loop's sums are wrong\n", isa);
                exit(1);
            }
            fmas += m;
        } while ((t = cpu_seconds() - t0) < 0.5);
        best = fmas / t * 1e-9 > best ? fmas / t * 1e-9 : best;
    }
    return best;
}

typedef struct {
    const char *name;
    int ta, tb, M, N, K;
} gemm_shape;

/* Min over reps of the CPU time of enough calls to last ~2 ms, in GFLOP/s. */
static double gemm_gflops(const qat_sgemm_path *p, const gemm_shape *s, int reps)
{
    int M = s->M, N = s->N, K = s->K;
    float *A, *B, *C;
    gemm_operands(M, N, K, &A, &B, &C);
    double flops = 2.0 * M * N * (double)K;
    int calls = (int)(2e-3 * 100e9 / flops) + 1;
    double best = 1e30;
    for (int it = -1; it < reps; it++) {
        double t0 = cpu_seconds();
        for (int c = 0; c < calls; c++)
            qat_sgemm_on(p, s->ta, s->tb, M, N, K, 1.0f, A, s->ta ? M : K, B, s->tb ? K : N, 0.0f,
                         C, N);
        double t = (cpu_seconds() - t0) / calls;
        if (it >= 0 && t < best)
            best = t;
    }
    free(A);
    free(B);
    free(C);
    return flops / best * 1e-9;
}

static void bench_gemm_paths(int reps)
{
    /* as the ops call them: conv2's per-block GEMMs (227 rows = the 256 KB
     * im2col block at K 288), linear's fc1 / fc2 at batch 64 */
    static const gemm_shape shapes[] = {
        {"conv2 fwd  [227x288][64x288]^T", 0, 1, 227, 64, 288},
        {"conv2 dcol [227x64][64x288]", 0, 0, 227, 288, 64},
        {"conv2 dw   [227x288]^T[227x64]", 1, 0, 288, 64, 227},
        {"fc1 fwd    [64x3136][128x3136]^T", 0, 1, 64, 128, 3136},
        {"fc1 dx     [64x128][128x3136]", 0, 0, 64, 3136, 128},
        {"fc1 dw     [64x128]^T[64x3136]", 1, 0, 128, 3136, 64},
        {"fc2 fwd    [64x128][10x128]^T", 0, 1, 64, 10, 128},
        {"fc2 dx     [64x10][10x128]", 0, 0, 64, 128, 10},
        {"fc2 dw     [64x10]^T[64x128]", 1, 0, 10, 128, 64},
        {"square     [1024x1024]^2", 0, 0, 1024, 1024, 1024},
    };
    const char *paths[] = {"openblas", "avx2", "avx512"};
    double p512 = fma_peak("avx512"), p256 = fma_peak("avx2");
    double peak = 2.0 * (p512 > p256 ? p512 : p256); /* GFLOP/s */
    const char *ct = getenv("OPENBLAS_CORETYPE");
    printf("sgemm paths, one core, GFLOP/s of the fastest of %d runs (thread CPU time)\n"
           "and %% of the fp32 peak (FMA loop: zmm %.1f, ymm %.1f GFMA/s), default path %s,\n"
           "OPENBLAS_CORETYPE=%s:\n",
           reps, p512, p256, qat_sgemm_path_default()->name, ct ? ct : "(unset)");
    printf("  %-34s", "shape");
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++)
        if (qat_sgemm_path_get(paths[i]))
            printf(" %15s", paths[i]);
    printf("\n");
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        printf("  %-34s", shapes[s].name);
        for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
            const qat_sgemm_path *p = qat_sgemm_path_get(paths[i]);
            if (!p)
                continue;
            double g = gemm_gflops(p, &shapes[s], reps);
            if (peak > 0)
                printf("  %6.1f (%4.1f%%)", g, 100 * g / peak);
            else
                printf(" %15.1f", g);
        }
        printf("\n");
    }
}

static void print_row(const bench_case *c, const timing *tm, int N)
{
    printf("  %-32s %8.3f %8.3f %8.3f %8.3f", c->name, tm->fwd_ms, tm->total_ms - tm->fwd_ms,
           tm->total_ms, tm->total_min_ms);
    if (c->kind == OP_CONV)
        printf(" %8.1f", conv_flops(c, N, 1) / tm->total_ms * 1e-6);
    printf("\n");
}

static void run_table(const bench_case *cases, size_t n, const char *filter, qat_team *team,
                      int N, int reps)
{
    printf("  %-32s %8s %8s %8s %8s %8s\n", "op (median ms; min of fwd+bwd)", "fwd", "bwd",
           "fwd+bwd", "min", "GFLOP/s");
    for (size_t i = 0; i < n; i++) {
        if (!strstr(cases[i].name, filter))
            continue;
        timing tm = run_case(&cases[i], team, N, reps);
        print_row(&cases[i], &tm, N);
    }
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--fma-peak") == 0) {
        /* one JSON line for scripts (train_vs_torch.sh's floor): this core's
         * fp32 FMA peak, widest vectors the machine has */
        double z = fma_peak("avx512"), y = fma_peak("avx2");
        printf("{\"impl\": \"fp32-peak\", \"gfma\": %.2f, \"gfma_zmm\": %.2f, "
               "\"gfma_ymm\": %.2f}\n",
               z > y ? z : y, z, y);
        return z > 0 || y > 0 ? 0 : 1;
    }
    int reps = argc > 1 ? atoi(argv[1]) : 30;
    if (reps < 1)
        reps = 1;
    const char *filter = argc > 2 ? argv[2] : ""; /* only names containing this */
    const int N = 64;
    qat_blas_init();
    qat_cpu_flush_denormals();
    const bench_case cases[] = {
        {"conv1 28x28x1->32 3x3 p1", OP_CONV, 28, 28, 1, 32, 3, 1, 0, QAT_CONV_AUTO},
        {"conv2 14x14x32->64 3x3 p1", OP_CONV, 14, 14, 32, 64, 3, 1, 1, QAT_CONV_AUTO},
        {"maxpool1 28x28x32 2x2", OP_MAXPOOL, 28, 28, 32, 32, 2, 0, 1, QAT_CONV_AUTO},
        {"maxpool2 14x14x64 2x2", OP_MAXPOOL, 14, 14, 64, 64, 2, 0, 1, QAT_CONV_AUTO},
        {"avgpool1 28x28x32 2x2", OP_AVGPOOL, 28, 28, 32, 32, 2, 0, 1, QAT_CONV_AUTO},
    };
    /* The direct/gemm choice (DIRECT_MAX_K in conv2d.c), for first layers:
     * small K comes from few input channels, and then x needs no gradient. */
    const bench_case algo_cases[] = {
        {"K=9  (3x3x1) direct", OP_CONV, 28, 28, 1, 32, 3, 1, 0, QAT_CONV_DIRECT},
        {"K=9  (3x3x1) gemm", OP_CONV, 28, 28, 1, 32, 3, 1, 0, QAT_CONV_GEMM},
        {"K=18 (3x3x2) direct", OP_CONV, 28, 28, 2, 32, 3, 1, 0, QAT_CONV_DIRECT},
        {"K=18 (3x3x2) gemm", OP_CONV, 28, 28, 2, 32, 3, 1, 0, QAT_CONV_GEMM},
        {"K=27 (3x3x3) direct", OP_CONV, 28, 28, 3, 32, 3, 1, 0, QAT_CONV_DIRECT},
        {"K=27 (3x3x3) gemm", OP_CONV, 28, 28, 3, 32, 3, 1, 0, QAT_CONV_GEMM},
        {"K=32 (4x4x2) direct", OP_CONV, 28, 28, 2, 32, 4, 2, 0, QAT_CONV_DIRECT},
        {"K=32 (4x4x2) gemm", OP_CONV, 28, 28, 2, 32, 4, 2, 0, QAT_CONV_GEMM},
    };
    if (strstr("gemm-paths", filter))
        bench_gemm_paths(reps);
    printf("\nbatch %d, %d reps after 3 warm-up steps. GFLOP/s counts 2 per multiply-add\n"
           "over forward, dw and (where x needs it) dx, on the median.\n", N, reps);
    for (int threads = 1; threads <= 2; threads++) {
        qat_team *team;
        if (qat_team_create(threads, &team, NULL) != QAT_OK)
            return 1;
        printf("\nthreads %d\n", threads);
        run_table(cases, sizeof cases / sizeof cases[0], filter, team, N, reps);
        if (strstr("sgemm", filter)) {
            printf("  sgemm yardstick, qat_sgemm_rows, conv2 shapes at batch 64 (median):\n");
            bench_sgemm(team, "fwd  [12544x288]*[288x64]^T", 0, 1, N * 196, 64, 288, reps);
            bench_sgemm(team, "dcol [12544x64]*[64x288]", 0, 0, N * 196, 288, 64, reps);
            bench_sgemm(team, "[1024x1024]*[1024x1024]", 0, 0, 1024, 1024, 1024,
                        reps < 10 ? reps : 10);
        }
        if (threads == 1) {
            printf("  direct vs gemm at 28x28->32, batch 64, no dx (a first layer):\n");
            run_table(algo_cases, sizeof algo_cases / sizeof algo_cases[0], filter, team, N, reps);
        }
        qat_team_destroy(team);
    }
    return 0;
}
