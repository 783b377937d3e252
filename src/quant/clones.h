/* QUANT_CLONES: the attribute of the fake-quant, observer and add loops
 * (fq_ops.c, observe.c, mse.c, merge.c; requant.c names its own):
 * x86-64-v4 (AVX-512 F/BW/DQ/VL) and AVX2 clones beside the baseline one.
 * Contraction is off in every file that includes this (GCC), so an
 * FMA-capable clone rounds each product and sum apart as the baseline
 * does: a clone changes the speed, not the bits (checkpoints identical:
 * MNIST CNN and ResNet-8 with minmax, mse, percentile observers and LSQ).
 * The AVX-512 clone was "avx512f" alone, without DQ's int64 <-> float
 * conversions and BW's byte masks. Include it first: the pragma must
 * precede every inline function the file's loops call. */
#ifndef QAT_QUANT_CLONES_H
#define QAT_QUANT_CLONES_H

#if defined(__GNUC__) && !defined(__clang__) /* every ISA: aarch64 GCC fuses too */
#pragma GCC optimize("fp-contract=off")
#endif

#if defined(__x86_64__)
#define QUANT_CLONES __attribute__((target_clones("arch=x86-64-v4", "avx2", "default")))
#else
#define QUANT_CLONES
#endif

#endif
