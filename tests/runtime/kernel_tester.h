/* What the kernel tester's files share (kernel_tester.c: the conv, pool
 * and model cases and main; kernel_tester_graph.c: the graph layers): the
 * check counter, the case generators and guarded output buffers. */
#ifndef QAT_TEST_KERNEL_TESTER_H
#define QAT_TEST_KERNEL_TESTER_H

#include <stdint.h>
#include <stdio.h>

#include "rt_fixture.h"
#include "runtime/kernels/kernels.h"

extern int failures;
extern long checks;
extern int quick;
extern const qat_rt_kernels *paths[QAT_RT_MAX_PATHS]; /* ref first */
extern int npaths;
extern qat_rng rng, srng; /* cases; slices */

#define CHECK(cond, ...)                                                        \
    do {                                                                        \
        checks++;                                                               \
        if (!(cond)) {                                                          \
            if (failures++ < 20) {                                              \
                fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);            \
                fprintf(stderr, __VA_ARGS__);                                   \
                fputc('\n', stderr);                                            \
            }                                                                   \
        }                                                                       \
    } while (0)

int32_t rnd(int32_t lo, int32_t hi);  /* from rng, inclusive */
int32_t srnd(int32_t lo, int32_t hi); /* from srng */
void *xalloc(size_t n);               /* 64-byte aligned; exits on failure */

#define GUARD 64
int8_t *guarded(size_t n); /* n bytes with GUARD guard bytes each side */
int guards_ok(const int8_t *o, size_t n);
/* The first index where got and want differ, or n. */
size_t first_diff(const int8_t *got, const int8_t *want, size_t n);
void unguard(int8_t *o);

enum wpat { W_RANDOM, W_PLUS127, W_MINUS127, W_ALT127, W_MIN8, W_COUNT };
enum xpat { X_RANDOM, X_MAX, X_MIN, X_ENDS, X_COUNT };
/* _RIGHT: no channel shifts left (M < 1, as in every trained layer): with
 * relu's clamp, the output stage AVX-512's kernels take then (requant.h) */
enum rqpat { RQ_SPREAD, RQ_EXTREME, RQ_SPREAD_RIGHT, RQ_EXTREME_RIGHT, RQ_COUNT };
static inline enum rqpat rq_pattern(int extreme, int right)
{
    return (enum rqpat)(!!extreme + 2 * !!right);
}

typedef struct conv_case {
    int linear, n, in_h, in_w, in_c, out_c, kh, kw, sh, sw, ph, pw;
    int bits;        /* weight range */
    int wzp_mode;    /* 0: zero, 1: random, 2: both ends of the range */
    enum wpat wp;
    enum xpat xp;
    enum rqpat rq;
    int32_t in_zp, out_zp, relu;
} conv_case;

void make_weights(const conv_case *cc, size_t k, size_t oc, int8_t *w, int32_t *wzp,
                  int32_t *bias, int32_t *mult, int32_t *shift, const char *what);
void make_inputs(const conv_case *cc, int8_t *x, size_t n);

/* kernel_tester_graph.c */
void test_gconv(void);
void test_merge(void);

#endif
