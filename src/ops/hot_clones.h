/* HOT_CLONES: the attribute the training ops' hottest non-BLAS loops carry
 * (conv2d.c, grouped_conv.c, pool2d.c): AVX-512 and AVX2+FMA clones beside
 * the baseline one; the library itself is built for baseline x86-64 and
 * the dispatcher picks at load time. Every lane of these loops is its own
 * output element, summed in the same order at any vector width, so the
 * clones give the same bits (MNIST CNN float and W8A8, ResNet-8, DS-CNN:
 * checkpoints identical); the AVX-512 one took the MNIST CNN's float step
 * from 8.0 to 7.6 ms (2 threads, bench-train, 3 alternating runs,
 * 2026-12-07). GCC only: clang resolves target_clones differently. */
#ifndef QAT_OPS_HOT_CLONES_H
#define QAT_OPS_HOT_CLONES_H

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define HOT_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define HOT_CLONES
#endif

#endif
