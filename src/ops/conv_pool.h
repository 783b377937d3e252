/* The max pool fused into conv2d (conv2d.c runs it, conv_pool.c holds its
 * loops).
 *
 * conv2d followed by a max pool whose windows tile the conv output (stride =
 * kernel) runs as one op: each thread computes a few pooled rows' worth of
 * conv output into an L2-sized scratch block and pools it there, so the
 * full-size conv output (6 MB for the CNN's conv1 at batch 64) is never
 * written to memory, read back by the pool, rebuilt densely by the pool's
 * backward and read again by the conv's dw. Backward rebuilds the dense
 * gradient of one block at a time from the pooled gradient and the saved
 * winners. On this 2-core machine memory bandwidth (about 5 GB/s), not
 * arithmetic, bounded those passes. A pooled row is the unit of work: it
 * owns the KH conv rows under it, so blocks never share conv pixels. */
#ifndef QAT_OPS_CONV_POOL_H
#define QAT_OPS_CONV_POOL_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int KH, KW, PH, PW; /* KH = 0: no pool */
    int relu;           /* relu on the pooled output (max commutes with it) */
    size_t units;       /* pooled rows per block */
} pool_fuse;

/* Pools cnt pooled rows of conv output block cb (row-major conv pixels of
 * KH * OW each, CO channels) into y, the winner's window index kh * KW + kw
 * into arg (when not NULL). Strict > keeps the first maximum in (kh, kw)
 * order, the rule of qat_op_maxpool2d and of the runtime. */
void qat_conv_pool_block(size_t CO, size_t OW, const pool_fuse *pf, const float *restrict cb,
                         size_t cnt, float *restrict y, uint8_t *restrict arg);
/* The dense conv-output gradient of cnt pooled rows: each pooled gradient
 * goes to its window's winner (with relu: if the pooled output y is
 * positive), every other element of the block is 0. */
void qat_conv_unpool_block(size_t CO, size_t OW, const pool_fuse *pf, const float *restrict dy,
                           const float *restrict y, const uint8_t *restrict arg, size_t cnt,
                           float *restrict db);

#endif
