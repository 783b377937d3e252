/* Fully connected layer: y = x w^T + b through OpenBLAS, forward and backward. */
#include <string.h>

#include "qat/ops.h"
#include "qat/team.h"

/* C[M,N] = op(A) op(B) + beta C split over the team along the wider side:
 * each thread packs its part of the operand on that side and all of the
 * other, so splitting the columns of fc1 (N = 128 outputs or 3136 inputs,
 * M = 64 images) spares each thread packing all the weights (forward 0.42
 * -> 0.31 ms, backward 0.87 -> 0.77 at 2 threads), while a tall product (a
 * big batch into few outputs) keeps the rows. The split changes no sum. */
static void sgemm_split(qat_team *team, int trans_a, int trans_b, int M, int N, int K,
                        const float *A, int lda, const float *B, int ldb, float beta, float *C,
                        int ldc)
{
    if (N >= M)
        qat_sgemm_cols(team, trans_a, trans_b, M, N, K, 1.0f, A, lda, B, ldb, beta, C, ldc);
    else
        qat_sgemm_rows(team, trans_a, trans_b, M, N, K, 1.0f, A, lda, B, ldb, beta, C, ldc);
}

static void linear_backward(qat_tape *t, const qat_node *n)
{
    qat_tensor *x = n->in[0], *w = n->in[1], *b = n->in[2];
    qat_team *team = qat_tape_team(t);
    const float *dy = n->out->grad;
    int N = x->shape[0], In = x->shape[1], Out = w->shape[0];
    if (qat_needs_grad(x)) { /* dx += dy w; a fresh dx is stored, not zeroed and added */
        int fresh;
        float *dx = qat_tape_grad_fresh(t, x, &fresh);
        sgemm_split(team, 0, 0, N, In, Out, dy, Out, w->data, In, fresh ? 0.0f : 1.0f, dx, In);
    }
    if (qat_needs_grad(w)) /* dw += dy^T x, split over input features */
        qat_sgemm_cols(team, 1, 0, Out, In, N, 1.0f, dy, Out, x->data, In, 1.0f,
                       qat_tape_grad(t, w), In);
    if (qat_needs_grad(b)) {
        float *db = qat_tape_grad(t, b);
        for (int i = 0; i < N; i++)
            for (int o = 0; o < Out; o++)
                db[o] += dy[(size_t)i * Out + o];
    }
}

qat_tensor *qat_op_linear(qat_tape *t, qat_tensor *x, qat_tensor *w, qat_tensor *b)
{
    QAT_ASSERT(x->ndim == 2 && w->ndim == 2 && x->shape[1] == w->shape[1]);
    int N = x->shape[0], In = x->shape[1], Out = w->shape[0];
    int shape[2] = {N, Out};
    qat_tensor *y = qat_tape_tensor(t, 2, shape);
    float beta = 0.0f;
    if (b) {
        QAT_ASSERT(b->numel == (size_t)Out);
        for (int i = 0; i < N; i++)
            memcpy(y->data + (size_t)i * Out, b->data, (size_t)Out * sizeof(float));
        beta = 1.0f;
    }
    sgemm_split(qat_tape_team(t), 0, 1, N, Out, In, x->data, In, w->data, In, beta, y->data,
                Out);
    qat_tensor *in[3] = {x, w, b};
    qat_tape_record(t, linear_backward, y, NULL, b ? 3 : 2, in);
    return y;
}
