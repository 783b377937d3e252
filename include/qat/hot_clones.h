/* HOT_CLONES: the attribute the training stack's hottest non-BLAS loops
 * carry (ops: conv2d.c, conv_pool.c, grouped_conv.c, pool2d.c; optim.c;
 * the gradient codec, train/gradq.c): AVX-512 and AVX2+FMA clones beside
 * the baseline one; the library itself is built for baseline x86-64 and
 * the dispatcher picks at load time. Every lane of these loops is its own
 * output element, summed in the same order at any vector width, so the
 * two clones give the same bits as each other (MNIST CNN float and W8A8,
 * ResNet-8, DS-CNN: checkpoints identical); the ops' loops let GCC fuse
 * products into sums there, as the AVX2 clone always did, so a machine
 * without AVX2 (the baseline clone) rounds them apart. optim.c and gradq.c
 * turn contraction off and match the baseline too. The AVX-512 clone took
 * the MNIST CNN's float step from 8.0 to 7.6 ms (2 threads, bench-train,
 * 3 alternating runs, 2026-12-07). GCC only: clang resolves target_clones
 * differently. Owned by core, so that any layer may use it. */
#ifndef QAT_HOT_CLONES_H
#define QAT_HOT_CLONES_H

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define HOT_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define HOT_CLONES
#endif

#endif
