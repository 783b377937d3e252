/* Physical removal of pruned channels from the integer model, on its codes
 * (codes.h), before anything is packed.
 *
 * Why it is exact: a conv2d / linear output channel whose weight codes all
 * sit at the weight zero point and whose bias code is 0 accumulates 0 for
 * every input, so it outputs its zero point, the code of a real 0 (when the
 * clamp admits it). Pools keep a constant channel constant, and the next
 * conv2d / linear computes sum (w - w_zp) (x - x_zp) with x_zp the same zero
 * point, so every term that reads the channel is exactly 0. Dropping the
 * channel and those inputs changes no integer anywhere: the logits are the
 * same bit for bit. The next layer's scales and bias codes stay as trained
 * (its bias limit only grows with fewer inputs). */
#include <stdlib.h>
#include <string.h>

#include "qat/status.h"
#include "export/codes.h"

static int is_compute(qat_rt_op op) { return op == QAT_RT_CONV2D || op == QAT_RT_LINEAR; }

/* Marks in out_keep the rows of L that stay: every row of the last compute
 * layer (can_shrink 0), else the live ones (a nonzero bias, a clamp that
 * excludes the zero point, or a weight off its zero point on a kept input),
 * and row 0 if none is. Returns how many stay. */
static int mark_rows(const qat_export_layer *L, const unsigned char *in_keep, int can_shrink,
                     unsigned char *out_keep)
{
    const qat_rt_layer_desc *d = &L->d;
    int K = d->kernel_h * d->kernel_w, cin = d->in_c, rows = 0;
    size_t rowlen = qat_export_row_len(d);
    for (int o = 0; o < d->out_c; o++) {
        int32_t zp = L->weight_zero_point ? L->weight_zero_point[o] : 0;
        const int8_t *w = L->codes + (size_t)o * rowlen;
        int live = !can_shrink || L->bias[o] != 0 || d->output_zero_point < d->act_min ||
                   d->output_zero_point > d->act_max;
        for (int t = 0; t < K && !live; t++)
            for (int c = 0; c < cin && !live; c++)
                live = in_keep[c] && w[(size_t)t * (size_t)cin + (size_t)c] != zp;
        out_keep[o] = (unsigned char)live;
        rows += live;
    }
    if (rows == 0) { /* a layer keeps one channel, even a dead one */
        out_keep[0] = 1;
        rows = 1;
    }
    return rows;
}

/* Keeps the rows out_keep marks and, in each, the inputs in_keep marks,
 * moving everything toward the front in place (nothing is ever written past
 * what has been read). */
static void compact_layer(qat_export_layer *L, const unsigned char *in_keep,
                          const unsigned char *out_keep, int kept_in)
{
    qat_rt_layer_desc *d = &L->d;
    int K = d->kernel_h * d->kernel_w, cin = d->in_c, r = 0;
    size_t rowlen = qat_export_row_len(d);
    int8_t *dst = L->codes;
    for (int o = 0; o < d->out_c; o++) {
        if (!out_keep[o])
            continue;
        const int8_t *src = L->codes + (size_t)o * rowlen;
        for (int t = 0; t < K; t++)
            for (int c = 0; c < cin; c++)
                if (in_keep[c])
                    *dst++ = src[(size_t)t * (size_t)cin + (size_t)c];
        L->bias[r] = L->bias[o];
        L->multiplier[r] = L->multiplier[o];
        L->shift[r] = L->shift[o];
        if (L->weight_zero_point)
            L->weight_zero_point[r] = L->weight_zero_point[o];
        L->weight_scale[r] = L->weight_scale[o];
        r++;
    }
    d->in_c = kept_in;
    d->out_c = r;
}

qat_status qat_export_remove_channels(qat_export_model *x, int *removed, qat_error *err)
{
    int nl = x->d.num_layers, last = -1;
    if (removed)
        *removed = 0;
    for (int i = 0; i < nl; i++)
        if (is_compute(x->layers[i].d.op))
            last = i;
    size_t maxc = (size_t)x->d.in_c;
    for (int i = 0; i < nl; i++) {
        const qat_rt_layer_desc *d = &x->layers[i].d;
        size_t f = (size_t)d->out_h * (size_t)d->out_w * (size_t)d->out_c;
        maxc = f > maxc ? f : maxc;
    }
    unsigned char *keep = malloc(maxc + 1), *next = malloc(maxc + 1);
    if (!keep || !next) {
        free(keep);
        free(next);
        return qat_fail(err, QAT_ENOMEM, "channel removal: out of memory");
    }
    /* keep[]: which channels (features after a flatten) of the activation
     * entering layer i survive; n of them out of cur */
    int cur = x->d.in_c, n = x->d.in_c;
    memset(keep, 1, (size_t)cur);
    for (int i = 0; i < nl; i++) {
        qat_export_layer *L = &x->layers[i];
        qat_rt_layer_desc *d = &L->d;
        switch (d->op) {
        case QAT_RT_CONV2D:
        case QAT_RT_LINEAR: {
            int out = d->out_c, rows = mark_rows(L, keep, i != last, next);
            compact_layer(L, keep, next, n);
            memcpy(keep, next, (size_t)out);
            cur = out;
            n = rows;
            if (removed)
                *removed += out - rows;
            break;
        }
        case QAT_RT_FLATTEN: {
            /* feature (h, w, c) of an NHWC image is (h * W + w) * C + c */
            size_t hw = (size_t)d->in_h * (size_t)d->in_w;
            for (size_t f = hw * (size_t)cur; f-- > 0;)
                keep[f] = keep[f % (size_t)cur];
            cur = (int)(hw * (size_t)cur);
            d->in_c = n;
            n = (int)(hw * (size_t)n);
            d->out_c = n;
            break;
        }
        default: /* pools keep channels */
            d->in_c = d->out_c = n;
            break;
        }
    }
    free(keep);
    free(next);
    return QAT_OK;
}
