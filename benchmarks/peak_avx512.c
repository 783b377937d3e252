/* The peaks of the AVX-512 kernels' instructions on one core, as tight loops
 * of independent accumulator chains written in assembly. They were C
 * intrinsics until 2026-12-07: twelve chains of which several started from
 * the same value and took the same operands, so GCC merged them and the loop
 * ran 8 instructions an iteration while counting 12 (every peak reported
 * before then was 1.5x the machine's). Here the instruction count is what
 * the source says, and each function checks the sums it computed (every
 * chain's every lane), returning -1 if they are not what that many
 * instructions give. Built with the AVX-512 VNNI flags. */
#include <stdint.h>

#include "peak.h"

#define Z16(op)                                                                            \
    op(0) op(1) op(2) op(3) op(4) op(5) op(6) op(7) op(8) op(9) op(10) op(11) op(12) op(13) \
        op(14) op(15)
#define ZERO(i) "vpxord %%zmm" #i ", %%zmm" #i ", %%zmm" #i "\n\t"
#define STORE(i) "vmovdqu64 %%zmm" #i ", " #i "*64(%[out])\n\t"
#define DPBUSD(i) "vpdpbusd %%zmm17, %%zmm16, %%zmm" #i "\n\t"
#define FMA(i) "vfmadd231ps %%zmm17, %%zmm16, %%zmm" #i "\n\t"
#define CLOBBERS                                                                           \
    "memory", "cc", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8",   \
        "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "xmm16", "xmm17"

/* vpdpbusd on zmm (64 u8 x s8 multiply-accumulates into 16 int32), 16
 * chains (zmm0-15; the instruction's latency needs about 10 to reach its
 * throughput). Returns the multiply-accumulates done, or -1. */
long qat_bench_peak_avx512vnni(long iters)
{
    if (!qat_peak_iters_ok(iters))
        return -1;
    int32_t out[16 * 16];
    long n = iters;
    __asm__ volatile("vpternlogd $0xff, %%zmm16, %%zmm16, %%zmm16\n\t"
                     "vpabsb %%zmm16, %%zmm16\n\t" /* bytes of 1: u8 and s8 operands */
                     "vmovdqa64 %%zmm16, %%zmm17\n\t" Z16(ZERO) "1:\n\t" Z16(DPBUSD)
                     "dec %[n]\n\t"
                     "jnz 1b\n\t" Z16(STORE) "vzeroupper\n\t"
                     : [n] "+r"(n)
                     : [out] "r"(out)
                     : CLOBBERS);
    return qat_peak_checked_i32(out, 16 * 16, (int32_t)(4 * iters), iters * 16 * 64);
}

/* vfmadd231ps on zmm (16 multiply-adds), 16 chains. 1 * 1 added iters times
 * is exact up to 2^24. Returns the multiply-adds done, or -1. */
long qat_bench_peak_fma_avx512(long iters)
{
    if (!qat_peak_iters_ok(iters))
        return -1;
    const float one = 1.0f;
    float out[16 * 16];
    long n = iters;
    __asm__ volatile("vbroadcastss %[one], %%zmm16\n\t"
                     "vmovaps %%zmm16, %%zmm17\n\t" Z16(ZERO) "1:\n\t" Z16(FMA)
                     "dec %[n]\n\t"
                     "jnz 1b\n\t" Z16(STORE) "vzeroupper\n\t"
                     : [n] "+r"(n)
                     : [out] "r"(out), [one] "m"(one)
                     : CLOBBERS);
    return qat_peak_checked_f32(out, 16 * 16, (float)iters, iters * 16 * 16);
}
