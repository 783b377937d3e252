/* LSQ: the scale gradients of the weight-code and requantize ops equal the
 * finite-difference derivative of the straight-through surrogate
 * h(s) = s * (clip(v / s) + d0) with the rounding residual
 * d0 = round(clip(v / s0)) - clip(v / s0) held fixed: LSQ's gradient
 * (Esser et al.) is exactly its derivative. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "../ops/gradcheck_util.h"
#include "qat/fixedpoint.h"
#include "qat/quant.h"

/* y[r, i] = s[r] * x[r, i]: dequantizes per-row weight codes (test-local op) */
static void row_scale_backward(qat_tape *t, const qat_node *n)
{
    qat_tensor *x = n->in[0], *s = n->in[1];
    size_t rows = s->numel, k = x->numel / rows;
    for (size_t r = 0; r < rows; r++)
        for (size_t i = r * k; i < (r + 1) * k; i++) {
            if (qat_needs_grad(x))
                qat_tape_grad(t, x)[i] += n->out->grad[i] * s->data[r];
            if (qat_needs_grad(s))
                qat_tape_grad(t, s)[r] += n->out->grad[i] * x->data[i];
        }
}

static qat_tensor *row_scale(qat_tape *t, qat_tensor *x, qat_tensor *s)
{
    qat_tensor *y = qat_tape_tensor(t, x->ndim, x->shape);
    size_t rows = s->numel, k = x->numel / rows;
    for (size_t i = 0; i < x->numel; i++)
        y->data[i] = x->data[i] * s->data[i / k];
    qat_tensor *in[2] = {x, s};
    qat_tape_record(t, row_scale_backward, y, NULL, 2, in);
    return y;
}

/* q0 (may be NULL): the codes the forward produced, so the surrogate rounds
 * as the op did (the output stage rounds through a fixed-point multiplier). */
static double surrogate(const float *v, size_t n, double s, double s0, double zp, double lo,
                        double hi, const float *proj, const float *q0)
{
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        double c0 = (double)v[i] / s0 + zp, c = (double)v[i] / s + zp;
        c0 = c0 < lo ? lo : c0 > hi ? hi : c0;
        c = c < lo ? lo : c > hi ? hi : c;
        double r0 = q0 ? (double)q0[i] : round(c0);
        sum += proj[i] * s * (c + (r0 - c0) - zp);
    }
    return sum;
}

Test(lsq, weight_scale_gradient_matches_surrogate_derivative)
{
    qat_rng r;
    qat_rng_seed(&r, 21, 0);
    enum { C = 3, K = 40 };
    float w[C * K], gw[C * K], s[C] = {0.013f, 0.021f, 0.0077f}, gs[C], proj[C * K];
    for (int i = 0; i < C * K; i++) {
        w[i] = 0.1f * qat_rng_normal(&r);
        proj[i] = qat_rng_normal(&r);
    }
    int ws[2] = {C, K}, ss[1] = {C};
    qat_tensor wt = qat_tensor_view(w, gw, 2, ws), st = qat_tensor_view(s, gs, 1, ss);
    for (int bits = 3; bits <= 8; bits += 5) {
        int32_t qmin, qmax;
        qat_qrange(bits, 1, &qmin, &qmax); /* at 3 bits many weights clip */
        qat_tape *t;
        qat_tape_create(NULL, &t, NULL);
        memset(gs, 0, sizeof gs);
        memset(gw, 0, sizeof gw);
        qat_tensor *wk = qat_op_weight_codes(t, &wt, &st, NULL, qmin, qmax, QAT_STE_CLIPPED);
        qat_tape_backward(t, qat_op_dot_const(t, row_scale(t, wk, &st), proj));
        for (int c = 0; c < C; c++) {
            double h = 1e-4 * s[c];
            double fp = surrogate(w + c * K, K, s[c] + h, s[c], 0, qmin, qmax, proj + c * K, NULL);
            double fm = surrogate(w + c * K, K, s[c] - h, s[c], 0, qmin, qmax, proj + c * K, NULL);
            double fd = (fp - fm) / (2 * h);
            cr_assert(fabs(gs[c] - fd) <= 1e-3 * (1 + fabs(fd)), "bits %d channel %d: analytic %g fd %g",
                      bits, c, (double)gs[c], fd);
        }
        qat_tape_destroy(t);
    }
}

Test(lsq, output_scale_gradient_matches_surrogate_derivative)
{
    qat_rng r;
    qat_rng_seed(&r, 22, 0);
    enum { N = 200, C = 2 };
    float acc[N * C], proj[N * C], acc_scale[C] = {1e-3f, 3e-3f};
    for (int i = 0; i < N * C; i++) {
        acc[i] = (float)((int)qat_rng_below(&r, 3001) - 1000);
        proj[i] = qat_rng_normal(&r);
    }
    int as[2] = {N, C};
    qat_tensor at = qat_tensor_view(acc, NULL, 2, as);
    for (int relu = 0; relu < 2; relu++) {
        float s_out = 0.011f, g = 0;
        int one = 1;
        qat_tensor so = qat_tensor_view(&s_out, &g, 1, &one);
        int32_t zp = relu ? -128 : -20;
        int32_t mult[C], shift[C];
        for (int c = 0; c < C; c++)
            qat_fp_quantize_multiplier((double)acc_scale[c] / s_out, &mult[c], &shift[c]);
        qat_requant_params rp = {C, mult, shift, 1 << 30, zp, relu ? zp : -128, 127,
                                 QAT_STE_CLIPPED};
        qat_tape *t;
        qat_tape_create(NULL, &t, NULL);
        qat_tensor *y = qat_op_requantize(t, &at, NULL, qat_tape_const(t, acc_scale, C), &so, &rp);
        qat_tape_backward(t, qat_op_dot_const(t, y, proj));
        float real[N * C], q0[N * C];
        for (int i = 0; i < N * C; i++) {
            real[i] = acc[i] * acc_scale[i % C];
            q0[i] = y->data[i] / s_out + (float)zp; /* the forward's codes */
            q0[i] = roundf(q0[i]);
        }
        double h = 1e-4 * s_out;
        double fd = (surrogate(real, N * C, s_out + h, s_out, zp, rp.act_min, 127, proj, q0) -
                     surrogate(real, N * C, s_out - h, s_out, zp, rp.act_min, 127, proj, q0)) /
                    (2 * h);
        cr_assert(fabs(g - fd) <= 2e-3 * (1 + fabs(fd)), "relu %d: analytic %g fd %g", relu,
                  (double)g, fd);
        qat_tape_destroy(t);
    }
}

Test(lsq, gradient_scale_multiplies_only_the_gradient)
{
    float x[2] = {3, 4}, gx[2] = {0, 0}, w[2] = {1, -2};
    int n = 2;
    qat_tensor xt = qat_tensor_view(x, gx, 1, &n);
    qat_tape *t;
    qat_tape_create(NULL, &t, NULL);
    qat_tensor *y = qat_op_grad_scale(t, &xt, 0.25f);
    cr_assert(y->data[0] == 3 && y->data[1] == 4);
    qat_tape_backward(t, qat_op_dot_const(t, y, w));
    cr_assert(gx[0] == 0.25f && gx[1] == -0.5f);
    qat_tape_destroy(t);
}
