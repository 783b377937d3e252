/* conv2d fused with a tiling max pool and optionally relu
 * (qat_op_conv2d_maxpool) against the ops it replaces,
 * [qat_op_relu](qat_op_maxpool2d(qat_conv2d_algo(...))): the same
 * outputs and the same gradients for x, w and b, on both conv algorithms,
 * one and two threads, blocks that split images, and conv outputs whose
 * last rows and columns no window covers; and windows full of ties.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "gradcheck_util.h"
#include "ops/conv2d_internal.h"

typedef struct {
    int N, H, W, C, CO, K, pad, PKH, PKW, bias;
} cp_case;

static const cp_case cases[] = {
    {1, 5, 7, 1, 3, 3, 1, 2, 2, 1},    /* odd conv output: a row and a column left over */
    {3, 9, 8, 3, 5, 3, 0, 3, 2, 0},    /* non-square windows, no bias */
    {2, 28, 28, 1, 32, 3, 1, 2, 2, 1}, /* the CNN's conv1 (direct) */
    {3, 14, 14, 32, 64, 3, 1, 2, 2, 1},/* the CNN's conv2 (gemm, several blocks per image) */
    {1, 6, 6, 7, 17, 1, 0, 3, 3, 1},   /* 1x1 conv, 3x3 windows */
    {2, 11, 13, 5, 9, 3, 2, 1, 1, 1},  /* 1x1 windows: no pooling at all */
};
#define NCASES (sizeof cases / sizeof cases[0])

typedef struct {
    float *y, *gx, *gw, *gb;
    size_t ny;
} result;

static int ties; /* inputs rounded to integers (ties_go_to_the_first_tap) */

static void run(const cp_case *c, qat_conv_algo algo, int threads, int fused, int x_grad,
                int relu, result *out)
{
    qat_rng r;
    qat_rng_seed(&r, 11, (uint64_t)(c->H * 100 + c->C * 10 + c->CO));
    test_leaf x, w, b;
    int xs[4] = {c->N, c->H, c->W, c->C}, ws[4] = {c->CO, c->K, c->K, c->C}, bs[1] = {c->CO};
    leaf_init(&x, &r, 4, xs, 1.0f);
    leaf_init(&w, &r, 4, ws, 0.5f);
    leaf_init(&b, &r, 1, bs, 0.5f);
    x.t.requires_grad = x_grad;
    if (ties) { /* small integers: conv outputs tie within windows all the time */
        for (size_t i = 0; i < x.t.numel; i++)
            x.data[i] = roundf(2.0f * x.data[i]);
        for (size_t i = 0; i < w.t.numel; i++)
            w.data[i] = roundf(2.0f * w.data[i]);
        for (size_t i = 0; i < b.t.numel; i++)
            b.data[i] = roundf(2.0f * b.data[i]);
    }
    qat_team *team = NULL;
    if (threads > 1)
        cr_assert_eq(qat_team_create(threads, &team, NULL), QAT_OK);
    qat_tape *t;
    cr_assert_eq(qat_tape_create(team, &t, NULL), QAT_OK);
    tape_poison(t, (size_t)16 << 20);
    qat_conv2d_params p = {1, 1, c->pad, c->pad};
    qat_pool2d_params pp = {c->PKH, c->PKW, c->PKH, c->PKW};
    cr_assert(qat_conv2d_maxpool_fuses(&pp));
    qat_tensor *bt = c->bias ? &b.t : NULL, *y;
    if (fused)
        y = qat_conv2d_pool_algo(t, &x.t, &w.t, bt, &p, &pp, relu, algo);
    else {
        y = qat_op_maxpool2d(t, qat_conv2d_algo(t, &x.t, &w.t, bt, &p, algo), &pp);
        y = relu ? qat_op_relu(t, y) : y;
    }
    int OH = qat_conv_out_size(c->H, c->K, 1, c->pad), OW = qat_conv_out_size(c->W, c->K, 1, c->pad);
    cr_assert(y->shape[0] == c->N && y->shape[1] == OH / c->PKH && y->shape[2] == OW / c->PKW &&
              y->shape[3] == c->CO);
    float *proj = random_vec(&r, y->numel);
    qat_tape_backward(t, qat_op_dot_const(t, y, proj));
    out->ny = y->numel;
    out->y = malloc(y->numel * sizeof(float));
    memcpy(out->y, y->data, y->numel * sizeof(float));
    out->gx = x.grad;
    out->gw = w.grad;
    out->gb = b.grad;
    free(x.data);
    free(w.data);
    free(b.data);
    free(proj);
    qat_tape_destroy(t);
    qat_team_destroy(team);
}

static void free_result(result *r)
{
    free(r->y);
    free(r->gx);
    free(r->gw);
    free(r->gb);
}

/* Gradients are sums of the same terms in a different order (blocks). */
static void close_all(const float *a, const float *b, size_t n, const char *what,
                       const cp_case *c, qat_conv_algo algo, int threads)
{
    for (size_t i = 0; i < n; i++)
        cr_assert(fabsf(a[i] - b[i]) <= 1e-4f * (1.0f + fabsf(b[i])),
                  "%s[%zu] fused %.8g unfused %.8g (H=%d W=%d C=%d CO=%d pool %dx%d algo %d "
                  "threads %d)",
                  what, i, a[i], b[i], c->H, c->W, c->C, c->CO, c->PKH, c->PKW, algo, threads);
}

static void compare(const cp_case *c, qat_conv_algo algo, int threads, int x_grad, int relu)
{
    result f, u;
    run(c, algo, threads, 1, x_grad, relu, &f);
    run(c, algo, threads, 0, x_grad, relu, &u);
    cr_assert_eq(f.ny, u.ny);
    /* The direct kernel is ours and computes each conv output the same
     * way in both: equal bits. The GEMM path computes the same dot products
     * through OpenBLAS sgemm on blocks of rows instead of the whole image,
     * and OpenBLAS may pick another kernel for another matrix size (the
     * small-matrix kernels of AVX-512 CPUs sum in another order), so there
     * the outputs agree to float rounding. (Quantized layers are unaffected:
     * their GEMMs run on integer codes and are exact in any order.) */
    if (algo == QAT_CONV_DIRECT)
        cr_assert_eq(memcmp(f.y, u.y, f.ny * sizeof(float)), 0,
                     "outputs differ (H=%d C=%d CO=%d algo %d threads %d)", c->H, c->C, c->CO,
                     algo, threads);
    else
        close_all(f.y, u.y, f.ny, "y", c, algo, threads);
    size_t nx = (size_t)c->N * c->H * c->W * c->C, nw = (size_t)c->CO * c->K * c->K * c->C;
    close_all(f.gx, u.gx, nx, "dx", c, algo, threads);
    close_all(f.gw, u.gw, nw, "dw", c, algo, threads);
    close_all(f.gb, u.gb, (size_t)c->CO, "db", c, algo, threads);
    if (!x_grad)
        for (size_t i = 0; i < nx; i++)
            cr_assert_eq(f.gx[i], 0.0f, "dx written though x needs no gradient");
    free_result(&f);
    free_result(&u);
}

Test(conv2d_maxpool, equals_conv_then_maxpool)
{
    for (size_t i = 0; i < NCASES; i++)
        for (int threads = 1; threads <= 2; threads++) {
            compare(&cases[i], QAT_CONV_GEMM, threads, 1, 0);
            if (cases[i].K * cases[i].K * cases[i].C <= 32)
                compare(&cases[i], QAT_CONV_DIRECT, threads, 1, 1);
            compare(&cases[i], QAT_CONV_AUTO, threads, 0, 1);
            compare(&cases[i], QAT_CONV_GEMM, threads, 1, 1);
        }
}

Test(conv2d_maxpool, takes_only_tiling_windows)
{
    qat_pool2d_params ok = {2, 2, 2, 2}, overlap = {3, 3, 2, 2}, wide = {16, 16, 16, 16};
    cr_assert(qat_conv2d_maxpool_fuses(&ok));
    cr_assert_not(qat_conv2d_maxpool_fuses(&overlap));
    cr_assert_not(qat_conv2d_maxpool_fuses(&wide)); /* 256 taps: the winner index is a byte */
}

/* Equal values in a window: the winner, and so where the gradient goes, is
 * the first in (kh, kw) order, in the fused op's 2x2 and general windows
 * alike (integer sums: both algorithms exact). */
Test(conv2d_maxpool, ties_go_to_the_first_tap)
{
    ties = 1;
    for (size_t i = 0; i < NCASES; i++)
        for (int relu = 0; relu <= 1; relu++) {
            compare(&cases[i], QAT_CONV_GEMM, 2, 1, relu);
            if (cases[i].K * cases[i].K * cases[i].C <= 32)
                compare(&cases[i], QAT_CONV_DIRECT, 1, 1, relu);
        }
    ties = 0;
}
