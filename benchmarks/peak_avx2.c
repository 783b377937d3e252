/* The peaks of the AVX2 kernels' instructions on one core, as tight loops
 * of independent accumulator chains in assembly (see peak_avx512.c for why
 * not intrinsics: GCC merged the old loops' identical chains, and the
 * int8 one ran 4 vpmaddwd an iteration while counting 12). Each function
 * checks the sums it computed and returns -1 if they are not what the
 * instructions it counts give. Built with -mavx2 -mfma (ymm0-15 only). */
#include <stdint.h>

#include "peak.h"

#define Y12(op) op(0) op(1) op(2) op(3) op(4) op(5) op(6) op(7) op(8) op(9) op(10) op(11)
#define Y6(op) op(0) op(1) op(2) op(3) op(4) op(5)
#define ZERO(i) "vpxor %%ymm" #i ", %%ymm" #i ", %%ymm" #i "\n\t"
#define STORE(i) "vmovdqu %%ymm" #i ", " #i "*32(%[out])\n\t"
#define CLOBBERS                                                                           \
    "memory", "cc", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8",   \
        "xmm9", "xmm10", "xmm11", "xmm12", "xmm13"

/* vpmaddwd (16 int16 multiply-adds into 8 int32 pairs) + vpaddd into an
 * accumulator, the AVX2 conv tile's pair: 6 chains (ymm0-5), products in
 * ymm6-11. Returns the multiply-accumulates done, or -1. */
#define MADD(i, t) "vpmaddwd %%ymm13, %%ymm12, %%ymm" #t "\n\t"
#define ADD(i, t) "vpaddd %%ymm" #t ", %%ymm" #i ", %%ymm" #i "\n\t"
#define PAIRS(op) op(0, 6) op(1, 7) op(2, 8) op(3, 9) op(4, 10) op(5, 11)
long qat_bench_peak_avx2(long iters)
{
    if (!qat_peak_iters_ok(iters))
        return -1;
    int32_t out[12 * 8];
    long n = iters;
    __asm__ volatile("vpcmpeqd %%ymm12, %%ymm12, %%ymm12\n\t"
                     "vpabsw %%ymm12, %%ymm12\n\t" /* int16 ones */
                     "vmovdqa %%ymm12, %%ymm13\n\t" Y6(ZERO) "1:\n\t" PAIRS(MADD) PAIRS(ADD)
                     "dec %[n]\n\t"
                     "jnz 1b\n\t" Y6(STORE) "vzeroupper\n\t"
                     : [n] "+r"(n)
                     : [out] "r"(out)
                     : CLOBBERS);
    return qat_peak_checked_i32(out, 6 * 8, (int32_t)(2 * iters), iters * 6 * 16);
}

/* vfmadd231ps on ymm (8 multiply-adds), 12 chains. Returns the
 * multiply-adds done, or -1. */
#define FMA(i) "vfmadd231ps %%ymm13, %%ymm12, %%ymm" #i "\n\t"
long qat_bench_peak_fma_avx2(long iters)
{
    if (!qat_peak_iters_ok(iters))
        return -1;
    const float one = 1.0f;
    float out[12 * 8];
    long n = iters;
    __asm__ volatile("vbroadcastss %[one], %%ymm12\n\t"
                     "vmovaps %%ymm12, %%ymm13\n\t" Y12(ZERO) "1:\n\t" Y12(FMA)
                     "dec %[n]\n\t"
                     "jnz 1b\n\t" Y12(STORE) "vzeroupper\n\t"
                     : [n] "+r"(n)
                     : [out] "r"(out), [one] "m"(one)
                     : CLOBBERS);
    return qat_peak_checked_f32(out, 12 * 8, (float)iters, iters * 12 * 8);
}
