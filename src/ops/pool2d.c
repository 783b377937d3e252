/* Max and average pooling over NHWC windows (no padding), forward and
 * backward side by side. The channel axis is innermost, so every loop runs
 * over C contiguous floats and vectorises; window positions are the outer
 * loops. Forward splits output rows (n, oh) over the pool; backward splits
 * whole images, because overlapping windows (stride < kernel) would let two
 * threads add into the same input pixel. */
#include <string.h>

#include "qat/hot_clones.h"
#include "qat/ops.h"
#include "qat/team.h"

typedef struct {
    int N, H, W, C, KH, KW, SH, SW, OH, OW;
} pool_geom;

static pool_geom geom_of(const qat_tensor *x, const qat_pool2d_params *p)
{
    QAT_ASSERT(x->ndim == 4);
    pool_geom g = {x->shape[0], x->shape[1], x->shape[2], x->shape[3], p->kernel_h, p->kernel_w,
                   p->stride_h, p->stride_w, 0, 0};
    QAT_ASSERT(g.KH >= 1 && g.KW >= 1);
    g.OH = qat_conv_out_size(g.H, g.KH, g.SH, 0);
    g.OW = qat_conv_out_size(g.W, g.KW, g.SW, 0);
    QAT_ASSERT(g.OH > 0 && g.OW > 0);
    return g;
}

/* x[n, oh*SH, ow*SW, 0]: the first element of an output pixel's window. */
static inline size_t window_origin(const pool_geom *g, int n, int oh, int ow)
{
    return (((size_t)n * g->H + (size_t)oh * g->SH) * g->W + (size_t)ow * g->SW) * g->C;
}

typedef struct {
    pool_geom g;
    const float *x, *dy;
    float *y, *dx;
    uint16_t *arg; /* max: window index kh*KW + kw of the winner, per output */
    int fresh;     /* dx is uninitialised arena memory (nothing accumulated yet) */
} pool_job;

/* Backward into a fresh dx: with tiling windows (stride = kernel) every
 * covered element is written exactly once, so it is stored rather than
 * added, and only the rows and columns no window covers are cleared. That
 * saves the separate zero-fill pass over dx, which for the CNN's first pool
 * is a 6 MB write; overlapping windows clear the image and then add. */
static int tiles(const pool_geom *g) { return g->SH == g->KH && g->SW == g->KW; }

static void prepare_fresh_image(const pool_geom *g, float *dxn)
{
    size_t C = (size_t)g->C, row = (size_t)g->W * C;
    if (!tiles(g)) {
        memset(dxn, 0, (size_t)g->H * row * sizeof(float));
        return;
    }
    size_t hc = (size_t)g->OH * g->SH, wc = (size_t)g->OW * g->SW; /* covered extent */
    if (wc < (size_t)g->W)
        for (size_t h = 0; h < hc; h++)
            memset(dxn + h * row + wc * C, 0, ((size_t)g->W - wc) * C * sizeof(float));
    memset(dxn + hc * row, 0, ((size_t)g->H - hc) * row * sizeof(float));
}

/* Takes x's gradient for a backward: a fresh buffer (and j->fresh = 1) when
 * nothing has accumulated into it yet. */
static float *pool_dx(qat_tape *t, qat_tensor *x, pool_job *j)
{
    if (x->grad)
        return x->grad;
    j->fresh = 1;
    return x->grad = qat_tape_alloc(t, x->numel * sizeof(float));
}

/* ---- max ------------------------------------------------------------------ */
/* Strict > keeps the earliest element of the window in (kh, kw) order on
 * ties, the rule the integer runtime follows. */
HOT_CLONES
static void max_fwd_rows(const pool_job *j, size_t r0, size_t r1)
{
    const pool_geom *g = &j->g;
    size_t C = (size_t)g->C;
    for (size_t r = r0; r < r1; r++) {
        int n = (int)(r / (size_t)g->OH), oh = (int)(r % (size_t)g->OH);
        for (int ow = 0; ow < g->OW; ow++) {
            size_t o = (r * g->OW + (size_t)ow) * C;
            const float *x0 = j->x + window_origin(g, n, oh, ow);
            float *y = j->y + o;
            memcpy(y, x0, C * sizeof(float));
            uint16_t *a = j->arg ? j->arg + o : NULL;
            if (a)
                memset(a, 0, C * sizeof(uint16_t));
            for (int kh = 0; kh < g->KH; kh++)
                for (int kw = kh ? 0 : 1; kw < g->KW; kw++) {
                    const float *xp = x0 + ((size_t)kh * g->W + (size_t)kw) * C;
                    if (a) {
                        uint16_t k = (uint16_t)(kh * g->KW + kw);
                        for (size_t c = 0; c < C; c++) {
                            int win = xp[c] > y[c];
                            y[c] = win ? xp[c] : y[c];
                            a[c] = win ? k : a[c];
                        }
                    } else {
                        for (size_t c = 0; c < C; c++)
                            y[c] = xp[c] > y[c] ? xp[c] : y[c];
                    }
                }
        }
    }
}

static void max_fwd_part(void *vctx, int tid, int nt)
{
    const pool_job *j = vctx;
    size_t b, e;
    qat_team_range((size_t)j->g.N * j->g.OH, tid, nt, &b, &e);
    if (b < e)
        max_fwd_rows(j, b, e);
}

HOT_CLONES
static void max_bwd_images(const pool_job *j, size_t n0, size_t n1)
{
    const pool_geom *g = &j->g;
    size_t C = (size_t)g->C;
    int store = j->fresh && tiles(g);
    for (size_t n = n0; n < n1; n++) {
        if (j->fresh)
            prepare_fresh_image(g, j->dx + n * g->H * g->W * C);
        for (int oh = 0; oh < g->OH; oh++)
            for (int ow = 0; ow < g->OW; ow++) {
                size_t o = (((size_t)n * g->OH + (size_t)oh) * g->OW + (size_t)ow) * C;
                const float *dy = j->dy + o;
                const uint16_t *a = j->arg + o;
                float *d0 = j->dx + window_origin(g, (int)n, oh, ow);
                if (store) { /* every element of the window: dy or 0 */
                    for (int kh = 0; kh < g->KH; kh++)
                        for (int kw = 0; kw < g->KW; kw++) {
                            uint16_t k = (uint16_t)(kh * g->KW + kw);
                            float *d = d0 + ((size_t)kh * g->W + (size_t)kw) * C;
                            for (size_t c = 0; c < C; c++)
                                d[c] = a[c] == k ? dy[c] : 0.0f;
                        }
                    continue;
                }
                for (size_t c = 0; c < C; c++) {
                    int k = a[c];
                    d0[((size_t)(k / g->KW) * g->W + (size_t)(k % g->KW)) * C + c] += dy[c];
                }
            }
    }
}

static void max_bwd_part(void *vctx, int tid, int nt)
{
    const pool_job *j = vctx;
    size_t b, e;
    qat_team_range((size_t)j->g.N, tid, nt, &b, &e);
    if (b < e)
        max_bwd_images(j, b, e);
}

typedef struct {
    pool_geom g;
    uint16_t *arg;
} max_saved;

static void maxpool_backward(qat_tape *t, const qat_node *nd)
{
    qat_tensor *x = nd->in[0];
    if (!qat_needs_grad(x))
        return;
    const max_saved *s = nd->saved;
    pool_job j = {.g = s->g, .dy = nd->out->grad, .arg = s->arg};
    j.dx = pool_dx(t, x, &j);
    qat_team_run(qat_tape_team(t), max_bwd_part, &j);
}

qat_tensor *qat_op_maxpool2d(qat_tape *t, qat_tensor *x, const qat_pool2d_params *p)
{
    pool_geom g = geom_of(x, p);
    QAT_ASSERT(g.KH * g.KW <= 65536); /* window index fits the uint16 argmax */
    int shape[4] = {g.N, g.OH, g.OW, g.C};
    qat_tensor *y = qat_tape_tensor(t, 4, shape);
    pool_job j = {.g = g, .x = x->data, .y = y->data};
    max_saved *saved = NULL;
    if (qat_tape_grad_enabled(t) && qat_needs_grad(x)) {
        saved = qat_tape_alloc(t, sizeof *saved);
        saved->g = g;
        saved->arg = j.arg = qat_tape_alloc(t, y->numel * sizeof(uint16_t));
    }
    qat_team_run(qat_tape_team(t), max_fwd_part, &j);
    qat_tape_record(t, maxpool_backward, y, saved, 1, &x);
    return y;
}

/* ---- average -------------------------------------------------------------- */
HOT_CLONES
static void avg_fwd_rows(const pool_job *j, size_t r0, size_t r1)
{
    const pool_geom *g = &j->g;
    size_t C = (size_t)g->C;
    float scale = 1.0f / (float)(g->KH * g->KW);
    for (size_t r = r0; r < r1; r++) {
        int n = (int)(r / (size_t)g->OH), oh = (int)(r % (size_t)g->OH);
        for (int ow = 0; ow < g->OW; ow++) {
            const float *x0 = j->x + window_origin(g, n, oh, ow);
            float *y = j->y + (r * g->OW + (size_t)ow) * C;
            memset(y, 0, C * sizeof(float));
            for (int kh = 0; kh < g->KH; kh++)
                for (int kw = 0; kw < g->KW; kw++) {
                    const float *xp = x0 + ((size_t)kh * g->W + (size_t)kw) * C;
                    for (size_t c = 0; c < C; c++)
                        y[c] += xp[c];
                }
            for (size_t c = 0; c < C; c++)
                y[c] *= scale;
        }
    }
}

static void avg_fwd_part(void *vctx, int tid, int nt)
{
    const pool_job *j = vctx;
    size_t b, e;
    qat_team_range((size_t)j->g.N * j->g.OH, tid, nt, &b, &e);
    if (b < e)
        avg_fwd_rows(j, b, e);
}

HOT_CLONES
static void avg_bwd_images(const pool_job *j, size_t n0, size_t n1)
{
    const pool_geom *g = &j->g;
    size_t C = (size_t)g->C;
    float scale = 1.0f / (float)(g->KH * g->KW);
    int store = j->fresh && tiles(g);
    for (size_t n = n0; n < n1; n++) {
        if (j->fresh)
            prepare_fresh_image(g, j->dx + n * g->H * g->W * C);
        for (int oh = 0; oh < g->OH; oh++)
            for (int ow = 0; ow < g->OW; ow++) {
                const float *dy = j->dy + (((size_t)n * g->OH + (size_t)oh) * g->OW + (size_t)ow) * C;
                float *d0 = j->dx + window_origin(g, (int)n, oh, ow);
                for (int kh = 0; kh < g->KH; kh++)
                    for (int kw = 0; kw < g->KW; kw++) {
                        float *d = d0 + ((size_t)kh * g->W + (size_t)kw) * C;
                        if (store)
                            for (size_t c = 0; c < C; c++)
                                d[c] = scale * dy[c];
                        else
                            for (size_t c = 0; c < C; c++)
                                d[c] += scale * dy[c];
                    }
            }
    }
}

static void avg_bwd_part(void *vctx, int tid, int nt)
{
    const pool_job *j = vctx;
    size_t b, e;
    qat_team_range((size_t)j->g.N, tid, nt, &b, &e);
    if (b < e)
        avg_bwd_images(j, b, e);
}

static void avgpool_backward(qat_tape *t, const qat_node *nd)
{
    qat_tensor *x = nd->in[0];
    if (!qat_needs_grad(x))
        return;
    pool_job j = {.g = *(const pool_geom *)nd->saved, .dy = nd->out->grad};
    j.dx = pool_dx(t, x, &j);
    qat_team_run(qat_tape_team(t), avg_bwd_part, &j);
}

qat_tensor *qat_op_avgpool2d(qat_tape *t, qat_tensor *x, const qat_pool2d_params *p)
{
    pool_geom g = geom_of(x, p);
    int shape[4] = {g.N, g.OH, g.OW, g.C};
    qat_tensor *y = qat_tape_tensor(t, 4, shape);
    pool_job j = {.g = g, .x = x->data, .y = y->data};
    qat_team_run(qat_tape_team(t), avg_fwd_part, &j);
    pool_geom *saved = NULL;
    if (qat_tape_grad_enabled(t) && qat_needs_grad(x)) {
        saved = qat_tape_alloc(t, sizeof *saved);
        *saved = g;
    }
    qat_tape_record(t, avgpool_backward, y, saved, 1, &x);
    return y;
}
