/* Grouped and depthwise 2-D convolution over NHWC activations, forward and
 * backward side by side.
 *
 * Output channel co belongs to group g = co / og (og = Cout / groups) and
 * sees input channels g * cg .. g * cg + cg - 1 (cg = Cin / groups); its
 * weights are w[co][kh][kw][j], j < cg. Depthwise is groups = Cin (cg = 1),
 * with og = the multiplier.
 *
 * A GEMM per group would have K = KH * KW * cg (9 for a 3x3 depthwise) and
 * N = og (often 1): far too small for BLAS. The loops here are direct, with
 * the weights transposed to [tap][j][co] so that the innermost loop runs
 * over output channels; in the common depthwise case (cg = og = 1) input
 * channel = output channel and it vectorises with plain loads. Other
 * shapes index the input through a per-channel table.
 *
 * Threads: static splits, as conv2d.c: the forward splits output pixels, the
 * backward whole images (dx of neighbouring pixels overlaps), with weight
 * and bias gradients in per-thread partials reduced in thread order, so
 * results are bit-identical for a given thread count. */
#include <stdlib.h>
#include <string.h>

#include "qat/hot_clones.h"
#include "qat/ops.h"
#include "qat/team.h"

typedef struct {
    int N, H, W, C, CO, KH, KW, OH, OW;
    int sh, sw, ph, pw;
    int cg, og, taps; /* taps = KH * KW */
    int plain;        /* cg = og = 1: input channel co for output co */
    const int *base;  /* [CO]: first input channel of co's group, (co / og) * cg */
} gconv_geom;

typedef struct {
    const gconv_geom *g;
    const float *x, *wt, *b; /* wt: [taps][cg][CO] */
    float *y;
    /* backward */
    const float *dy;
    float *dx;
    float *dwt, *db; /* [threads][taps * cg * CO], [threads][CO] */
    size_t wn;
} gconv_ctx;

/* The taps of output pixel (oh, ow) inside the image: kernel rows
 * [*kh0, *kh1), columns [*kw0, *kw1); ih0, iw0: the window's corner. */
static inline void window(const gconv_geom *g, int oh, int ow, int *ih0, int *iw0, int *kh0,
                          int *kh1, int *kw0, int *kw1)
{
    *ih0 = oh * g->sh - g->ph;
    *iw0 = ow * g->sw - g->pw;
    *kh0 = *ih0 < 0 ? -*ih0 : 0;
    *kh1 = g->H - *ih0 < g->KH ? g->H - *ih0 : g->KH;
    *kw0 = *iw0 < 0 ? -*iw0 : 0;
    *kw1 = g->W - *iw0 < g->KW ? g->W - *iw0 : g->KW;
}

HOT_CLONES
static void fwd_rows(void *v, size_t r0, size_t r1)
{
    gconv_ctx *c = v;
    const gconv_geom *g = c->g;
    const size_t CO = (size_t)g->CO, C = (size_t)g->C, P = (size_t)g->OH * g->OW;
    for (size_t r = r0; r < r1; r++) {
        int n = (int)(r / P), q = (int)(r % P), oh = q / g->OW, ow = q % g->OW;
        int ih0, iw0, kh0, kh1, kw0, kw1;
        window(g, oh, ow, &ih0, &iw0, &kh0, &kh1, &kw0, &kw1);
        float *restrict y = c->y + r * CO;
        for (size_t co = 0; co < CO; co++)
            y[co] = c->b ? c->b[co] : 0.0f;
        for (int kh = kh0; kh < kh1; kh++)
            for (int kw = kw0; kw < kw1; kw++) {
                const float *restrict xp =
                    c->x + (((size_t)n * g->H + (size_t)(ih0 + kh)) * g->W + (size_t)(iw0 + kw)) * C;
                const float *restrict wt = c->wt + (size_t)(kh * g->KW + kw) * g->cg * CO;
                if (g->plain) {
                    for (size_t co = 0; co < CO; co++)
                        y[co] += xp[co] * wt[co];
                    continue;
                }
                for (int j = 0; j < g->cg; j++, wt += CO)
                    for (size_t co = 0; co < CO; co++)
                        y[co] += xp[g->base[co] + j] * wt[co];
            }
    }
}

HOT_CLONES
static void bwd_images(void *v, int tid, int nt)
{
    gconv_ctx *c = v;
    const gconv_geom *g = c->g;
    size_t i0, i1;
    qat_team_range((size_t)g->N, tid, nt, &i0, &i1);
    const size_t CO = (size_t)g->CO, C = (size_t)g->C;
    float *restrict dwt = c->dwt ? c->dwt + (size_t)tid * c->wn : NULL;
    float *restrict db = c->db ? c->db + (size_t)tid * CO : NULL;
    if (dwt)
        memset(dwt, 0, c->wn * sizeof(float));
    if (db)
        memset(db, 0, CO * sizeof(float));
    for (size_t n = i0; n < i1; n++)
        for (int oh = 0; oh < g->OH; oh++)
            for (int ow = 0; ow < g->OW; ow++) {
                const float *restrict dy =
                    c->dy + ((n * (size_t)g->OH + (size_t)oh) * g->OW + (size_t)ow) * CO;
                if (db)
                    for (size_t co = 0; co < CO; co++)
                        db[co] += dy[co];
                int ih0, iw0, kh0, kh1, kw0, kw1;
                window(g, oh, ow, &ih0, &iw0, &kh0, &kh1, &kw0, &kw1);
                for (int kh = kh0; kh < kh1; kh++)
                    for (int kw = kw0; kw < kw1; kw++) {
                        size_t off =
                            ((n * (size_t)g->H + (size_t)(ih0 + kh)) * g->W + (size_t)(iw0 + kw)) * C;
                        const float *restrict xp = c->x + off;
                        float *restrict dxp = c->dx ? c->dx + off : NULL;
                        size_t tap = (size_t)(kh * g->KW + kw) * g->cg * CO;
                        const float *restrict wt = c->wt + tap;
                        float *restrict dw = dwt ? dwt + tap : NULL;
                        if (g->plain) {
                            if (dxp)
                                for (size_t co = 0; co < CO; co++)
                                    dxp[co] += dy[co] * wt[co];
                            if (dw)
                                for (size_t co = 0; co < CO; co++)
                                    dw[co] += dy[co] * xp[co];
                            continue;
                        }
                        for (int j = 0; j < g->cg; j++) {
                            for (size_t co = 0; co < CO; co++) {
                                size_t ic = (size_t)g->base[co] + (size_t)j;
                                if (dxp)
                                    dxp[ic] += dy[co] * wt[(size_t)j * CO + co];
                                if (dw)
                                    dw[(size_t)j * CO + co] += dy[co] * xp[ic];
                            }
                        }
                    }
            }
}

typedef struct {
    gconv_geom g;
    float *wt; /* the transposed weights of the forward */
} gconv_saved;

static void gconv_backward(qat_tape *t, const qat_node *n)
{
    qat_tensor *x = n->in[0], *w = n->in[1], *b = n->nin > 2 ? n->in[2] : NULL;
    const gconv_saved *s = n->saved;
    const gconv_geom *g = &s->g;
    qat_team *team = qat_tape_team(t);
    int nt = qat_team_threads(team);
    if (nt > g->N)
        nt = g->N;
    size_t wn = (size_t)g->taps * g->cg * g->CO;
    gconv_ctx c = {g, x->data, s->wt, NULL, NULL, n->out->grad,
                   qat_needs_grad(x) ? qat_tape_grad(t, x) : NULL,
                   qat_needs_grad(w) ? qat_tape_alloc(t, (size_t)nt * wn * sizeof(float)) : NULL,
                   qat_needs_grad(b) ? qat_tape_alloc(t, (size_t)nt * g->CO * sizeof(float)) : NULL,
                   wn};
    if (nt <= 1)
        bwd_images(&c, 0, 1), nt = 1;
    else
        qat_team_run(team, bwd_images, &c);
    if (c.dwt) { /* [taps][j][co] partials -> dw[co][tap][j], thread order */
        float *dw = qat_tape_grad(t, w);
        for (int co = 0; co < g->CO; co++)
            for (int tap = 0; tap < g->taps; tap++)
                for (int j = 0; j < g->cg; j++) {
                    size_t k = ((size_t)tap * g->cg + (size_t)j) * g->CO + (size_t)co;
                    float acc = 0.0f;
                    for (int i = 0; i < nt; i++)
                        acc += c.dwt[(size_t)i * wn + k];
                    dw[((size_t)co * g->taps + (size_t)tap) * g->cg + (size_t)j] += acc;
                }
    }
    if (c.db) {
        float *db = qat_tape_grad(t, b);
        for (int co = 0; co < g->CO; co++) {
            float acc = 0.0f;
            for (int i = 0; i < nt; i++)
                acc += c.db[(size_t)i * g->CO + (size_t)co];
            db[co] += acc;
        }
    }
}

qat_tensor *qat_op_conv2d_grouped(qat_tape *t, qat_tensor *x, qat_tensor *w, qat_tensor *b,
                                  const qat_conv2d_params *p, int groups)
{
    if (groups == 1)
        return qat_op_conv2d(t, x, w, b, p);
    gconv_saved *s = qat_tape_alloc(t, sizeof *s);
    gconv_geom *g = &s->g;
    *g = (gconv_geom){.N = x->shape[0], .H = x->shape[1], .W = x->shape[2], .C = x->shape[3],
                      .CO = w->shape[0], .KH = w->shape[1], .KW = w->shape[2],
                      .sh = p->stride_h, .sw = p->stride_w, .ph = p->pad_h, .pw = p->pad_w};
    QAT_ASSERT(x->ndim == 4 && w->ndim == 4 && groups > 0 && g->C % groups == 0 &&
               g->CO % groups == 0 && w->shape[3] == g->C / groups);
    g->cg = g->C / groups;
    g->og = g->CO / groups;
    g->taps = g->KH * g->KW;
    g->plain = g->cg == 1 && g->og == 1;
    g->OH = qat_conv_out_size(g->H, g->KH, g->sh, g->ph);
    g->OW = qat_conv_out_size(g->W, g->KW, g->sw, g->pw);
    int *base = qat_tape_alloc(t, (size_t)g->CO * sizeof *base);
    for (int co = 0; co < g->CO; co++)
        base[co] = co / g->og * g->cg;
    g->base = base;
    size_t wn = (size_t)g->taps * g->cg * g->CO;
    s->wt = qat_tape_alloc(t, wn * sizeof(float));
    for (int co = 0; co < g->CO; co++)
        for (int k = 0; k < g->taps * g->cg; k++)
            s->wt[(size_t)k * g->CO + (size_t)co] = w->data[(size_t)co * g->taps * g->cg + (size_t)k];
    int shape[4] = {g->N, g->OH, g->OW, g->CO};
    qat_tensor *y = qat_tape_tensor(t, 4, shape);
    gconv_ctx c = {g, x->data, s->wt, b ? b->data : NULL, y->data, NULL, NULL, NULL, NULL, wn};
    size_t rows = (size_t)g->N * g->OH * g->OW;
    qat_team_parallel_for(qat_tape_team(t), rows,
                          QAT_ELEMWISE_GRAIN / ((size_t)g->CO * g->taps * g->cg) + 1, fwd_rows, &c);
    qat_tensor *in[3] = {x, w, b};
    qat_tape_record(t, gconv_backward, y, s, b ? 3 : 2, in);
    return y;
}
