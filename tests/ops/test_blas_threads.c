/* qat_blas_init leaves the process with no BLAS worker threads: OpenBLAS's
 * pthread build starts one per extra CPU when it loads, and each spins
 * (sched_yield) for ~0.1 s of CPU before it sleeps, taken from whatever
 * shares the machine (a sweep's other run, another MPI rank). A plain
 * program, not a Criterion test: Criterion forks every test, and threads do
 * not survive a fork. */
#include <dirent.h>
#include <stdio.h>
#include <string.h>

#include <cblas.h>

#include "qat/ops.h"

static int count_threads(void)
{
    DIR *d = opendir("/proc/self/task");
    if (!d)
        return -1;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

int main(void)
{
    int before = count_threads();
    if (before < 0) {
        printf("1..0 # SKIP no /proc/self/task\n");
        return 0;
    }
    qat_blas_init();
    int after = count_threads();
    printf("threads before qat_blas_init %d, after %d\n", before, after);
    if (after != 1) {
        fprintf(stderr, "test_blas_threads: %d threads left after qat_blas_init, expected 1\n",
                after);
        return 1;
    }
    /* a product large enough for OpenBLAS to split, were it allowed to,
     * runs in this thread and starts no worker again: A times the identity */
    enum { N = 256 };
    static float a[N * N], b[N * N], c[N * N];
    for (int i = 0; i < N * N; i++) {
        a[i] = (float)(i % 251) - 125.0f;
        b[i] = i % (N + 1) == 0;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, N, N, 1.0f, a, N, b, N, 0.0f, c,
                N);
    int left = count_threads();
    if (left != 1 || memcmp(a, c, sizeof a) != 0) {
        fprintf(stderr, "test_blas_threads: after a %dx%d product: %d threads, c %s a\n", N, N,
                left, memcmp(a, c, sizeof a) ? "differs from" : "equals");
        return 1;
    }
    return 0;
}
