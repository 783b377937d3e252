/* sgemm split over qat's own pool. Each member runs a single-threaded
 * sgemm on the default path (ops/sgemm: qat's tiles, or OpenBLAS, which is
 * kept single-threaded), so `threads` is the only source of parallelism and
 * each output element has one owner. On qat's paths an element's value does
 * not depend on the split at all; on OpenBLAS it depends on the thread
 * count only. */
#include "ops/sgemm/sgemm.h"
#include "qat/ops.h"

void openblas_set_num_threads(int);
/* OpenBLAS's pthread build starts a worker thread per extra CPU when it
 * loads, and each spins in sched_yield for 2^28 cycles (~0.1 s) before it
 * sleeps: CPU time taken from a neighbour process (two sweep runs, two MPI
 * ranks) at every start, for threads qat never uses. Its exported shutdown
 * (what its fork handler calls) joins them; weak, since other BLAS builds
 * (OpenMP, reference) have no such threads and no such symbol. A
 * single-threaded call never starts them again. */
int blas_thread_shutdown_(void) __attribute__((weak));

void qat_blas_init(void)
{
    openblas_set_num_threads(1);
    if (blas_thread_shutdown_)
        blas_thread_shutdown_();
}

typedef struct {
    int trans_a, trans_b, M, N, K;
    float alpha, beta;
    const float *A, *B;
    float *C;
    int lda, ldb, ldc;
    int by_cols;
} gemm_job;

/* Below ~1M multiply-adds (~20 us) per member, waking a thread costs more than
 * splitting saves. */
#define MIN_WORK_PER_THREAD (1 << 20)

static void gemm_part(void *vctx, int tid, int nt)
{
    const gemm_job *g = vctx;
    size_t b, e;
    if (g->by_cols) {
        qat_team_range((size_t)g->N, tid, nt, &b, &e);
        if (e == b)
            return;
        const float *B = g->trans_b ? g->B + b * (size_t)g->ldb : g->B + b;
        qat_sgemm(g->trans_a, g->trans_b, g->M, (int)(e - b), g->K, g->alpha, g->A, g->lda, B,
                  g->ldb, g->beta, g->C + b, g->ldc);
    } else {
        qat_team_range((size_t)g->M, tid, nt, &b, &e);
        if (e == b)
            return;
        const float *A = g->trans_a ? g->A + b : g->A + b * (size_t)g->lda;
        qat_sgemm(g->trans_a, g->trans_b, (int)(e - b), g->N, g->K, g->alpha, A, g->lda, g->B,
                  g->ldb, g->beta, g->C + b * (size_t)g->ldc, g->ldc);
    }
}

static void run(qat_team *team, gemm_job *g)
{
    size_t work = (size_t)g->M * (size_t)g->N * (size_t)g->K;
    int nt = qat_team_threads(team);
    if (nt == 1 || work < (size_t)nt * MIN_WORK_PER_THREAD || (g->by_cols ? g->N : g->M) < nt)
        gemm_part(g, 0, 1);
    else
        qat_team_run(team, gemm_part, g);
}

void qat_sgemm_rows(qat_team *team, int trans_a, int trans_b, int M, int N, int K, float alpha,
                    const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
    gemm_job g = {trans_a, trans_b, M, N, K, alpha, beta, A, B, C, lda, ldb, ldc, 0};
    run(team, &g);
}

void qat_sgemm_cols(qat_team *team, int trans_a, int trans_b, int M, int N, int K, float alpha,
                    const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
    gemm_job g = {trans_a, trans_b, M, N, K, alpha, beta, A, B, C, lda, ldb, ldc, 1};
    run(team, &g);
}
