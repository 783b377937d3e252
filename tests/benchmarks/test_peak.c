/* The peak loops of benchmarks/peak_*.c: each runs the instructions it
 * counts. Every function checks the sums its chains computed and returns -1
 * if they are not what that many instructions give; here each is called
 * where the CPU has its instructions, with loop counts at the edges of the
 * ranges it accepts, and out of range. (Before 2026-12-07 the loops were C
 * intrinsics whose duplicate chains GCC merged: 8 instructions an iteration
 * counted as 12. A sums check cannot see such a merge, which keeps values;
 * the loops are now assembly, so the count is what the source says.) */
#include <criterion/criterion.h>

#include "../../benchmarks/peak.h"

static int has(const char *f)
{
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma"))
        return 0;
    if (f[0] == '5')
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
    return 1;
}

static void check(long (*fn)(long), long per_iter)
{
    const long n[] = {1, 2, 3, 1000, 65537, QAT_PEAK_MAX_ITERS};
    for (size_t i = 0; i < sizeof n / sizeof *n; i++)
        cr_expect_eq(fn(n[i]), n[i] * per_iter, "iters %ld", n[i]);
    cr_expect_eq(fn(0), -1);
    cr_expect_eq(fn(-5), -1);
    cr_expect_eq(fn(QAT_PEAK_MAX_ITERS + 1), -1);
}

Test(peak, avx2_int8)
{
    if (!has("2"))
        cr_skip_test("no AVX2");
    check(qat_bench_peak_avx2, 6 * 16); /* 6 vpmaddwd of 16 a loop */
}

Test(peak, avx2_fma)
{
    if (!has("2"))
        cr_skip_test("no AVX2");
    check(qat_bench_peak_fma_avx2, 12 * 8);
}

Test(peak, avx512_vnni)
{
    if (!has("5"))
        cr_skip_test("no AVX-512 VNNI");
    check(qat_bench_peak_avx512vnni, 16 * 64);
}

Test(peak, avx512_fma)
{
    if (!has("5"))
        cr_skip_test("no AVX-512 VNNI");
    check(qat_bench_peak_fma_avx512, 16 * 16);
}
