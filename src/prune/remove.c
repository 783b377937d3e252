/* Physical removal of pruned channels from an integer model description.
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

#include "qat/prune.h"

#define ALIGN64(x) (((x) + 63) / 64 * 64)

static int is_compute(qat_rt_op op) { return op == QAT_RT_CONV2D || op == QAT_RT_LINEAR; }

typedef struct shrunk { /* a compute layer's kept rows, before the blob is laid out */
    int8_t *w;          /* kept rows x kept inputs, unpacked */
    int rows;
    size_t rowlen;
    int *row_of; /* original index of each kept row */
} shrunk;

static qat_status oom(qat_error *err)
{
    return qat_fail(err, QAT_ENOMEM, "channel removal: out of memory");
}

/* Unpacks layer L, keeps the inputs in_keep says, and marks its dead rows
 * (unless it is the last compute layer) in out_keep. */
static qat_status shrink_layer(const qat_rt_layer_desc *L, const unsigned char *in_keep,
                               int can_shrink, unsigned char *out_keep, shrunk *s,
                               qat_error *err)
{
    int K = L->kernel_h * L->kernel_w, cin = L->in_c, out = L->out_c;
    size_t rowlen = (size_t)K * (size_t)cin, kin = 0;
    for (int c = 0; c < cin; c++)
        kin += in_keep[c];
    size_t nrow = (size_t)K * kin;
    int8_t *w = malloc((size_t)out * rowlen + 1);
    s->w = malloc((size_t)out * nrow + 1);
    s->row_of = malloc((size_t)out * sizeof(int) + 1);
    if (!w || !s->w || !s->row_of) {
        free(w);
        return oom(err);
    }
    qat_rt_unpack_weights(L->weights, (size_t)out * rowlen, L->weight_bits, w);
    int rows = 0;
    for (int o = 0; o < out; o++) {
        int32_t zp = L->weight_zero_point ? L->weight_zero_point[o] : 0;
        const int8_t *src = w + (size_t)o * rowlen;
        int8_t *dst = s->w + (size_t)rows * nrow;
        int live = L->bias[o] != 0 || L->output_zero_point < L->act_min ||
                   L->output_zero_point > L->act_max;
        size_t k = 0;
        for (int t = 0; t < K; t++)
            for (int c = 0; c < cin; c++) {
                if (!in_keep[c])
                    continue;
                int8_t v = src[(size_t)t * (size_t)cin + (size_t)c];
                live |= v != zp;
                dst[k++] = v;
            }
        out_keep[o] = (unsigned char)(live || !can_shrink);
        if (out_keep[o])
            s->row_of[rows++] = o;
    }
    if (rows == 0) { /* a layer keeps one channel, even a dead one */
        out_keep[0] = 1;
        s->row_of[rows++] = 0;
        size_t k = 0;
        for (int t = 0; t < K; t++)
            for (int c = 0; c < cin; c++)
                if (in_keep[c])
                    s->w[k++] = w[(size_t)t * (size_t)cin + (size_t)c];
    }
    free(w);
    s->rows = rows;
    s->rowlen = nrow;
    return QAT_OK;
}

qat_status qat_prune_remove_channels(qat_rt_owned_desc *d, int *removed, qat_error *err)
{
    qat_rt_model_desc *md = &d->desc;
    int nl = md->num_layers, last = -1;
    if (removed)
        *removed = 0;
    for (int i = 0; i < nl; i++)
        if (is_compute(d->layers[i].op))
            last = i;
    size_t maxc = (size_t)md->in_c;
    for (int i = 0; i < nl; i++) {
        size_t f = (size_t)d->layers[i].out_h * (size_t)d->layers[i].out_w *
                   (size_t)d->layers[i].out_c;
        maxc = f > maxc ? f : maxc;
    }
    qat_rt_layer_desc *nd = calloc((size_t)nl + 1, sizeof *nd);
    shrunk *sh = calloc((size_t)nl + 1, sizeof *sh);
    unsigned char *keep = malloc(maxc + 1), *next = malloc(maxc + 1);
    qat_status st = QAT_OK;
    if (!nd || !sh || !keep || !next) {
        st = oom(err);
        goto done;
    }
    /* keep[]: which channels (features after a flatten) of the activation
     * entering layer i survive; n of them out of cur */
    int cur = md->in_c, n = md->in_c;
    memset(keep, 1, (size_t)cur);
    size_t bytes = 0;
    for (int i = 0; i < nl; i++) {
        const qat_rt_layer_desc *L = &d->layers[i];
        nd[i] = *L;
        nd[i].in_c = n;
        switch (L->op) {
        case QAT_RT_CONV2D:
        case QAT_RT_LINEAR: {
            if ((st = shrink_layer(L, keep, i != last, next, &sh[i], err)) != QAT_OK)
                goto done;
            memcpy(keep, next, (size_t)L->out_c);
            cur = L->out_c;
            n = sh[i].rows;
            if (removed)
                *removed += L->out_c - n;
            nd[i].out_c = n;
            size_t rows = (size_t)n;
            bytes += ALIGN64(qat_rt_packed_weight_bytes(rows * sh[i].rowlen, L->weight_bits));
            bytes += ALIGN64(rows * (4 * sizeof(int32_t) + sizeof(float)));
            break;
        }
        case QAT_RT_FLATTEN: {
            /* feature (h, w, c) of an NHWC image is (h * W + w) * C + c */
            size_t hw = (size_t)L->in_h * (size_t)L->in_w;
            for (size_t f = hw * (size_t)cur; f-- > 0;)
                keep[f] = keep[f % (size_t)cur];
            cur = (int)(hw * (size_t)cur);
            n = (int)(hw * (size_t)n);
            nd[i].out_c = n;
            break;
        }
        default: /* pools keep channels */
            nd[i].out_c = n;
            break;
        }
    }
    unsigned char *blob = calloc(1, bytes + 64);
    if (!blob) {
        st = oom(err);
        goto done;
    }
    unsigned char *p = blob;
    for (int i = 0; i < nl; i++) {
        const qat_rt_layer_desc *L = &d->layers[i];
        if (!is_compute(L->op))
            continue;
        const shrunk *s = &sh[i];
        size_t rows = (size_t)s->rows, wn = rows * s->rowlen;
        nd[i].weights_bytes = qat_rt_packed_weight_bytes(wn, L->weight_bits);
        qat_rt_pack_weights(s->w, wn, L->weight_bits, p);
        nd[i].weights = p;
        p += ALIGN64(nd[i].weights_bytes);
        int32_t *bias = (int32_t *)p, *mult = bias + rows, *shift = mult + rows, *wzp = shift + rows;
        float *scale = (float *)(wzp + rows);
        for (size_t r = 0; r < rows; r++) {
            int o = s->row_of[r];
            bias[r] = L->bias[o];
            mult[r] = L->multiplier[o];
            shift[r] = L->shift[o];
            wzp[r] = L->weight_zero_point ? L->weight_zero_point[o] : 0;
            scale[r] = L->weight_scale[o];
        }
        nd[i].bias = bias;
        nd[i].multiplier = mult;
        nd[i].shift = shift;
        nd[i].weight_zero_point = L->weight_zero_point ? wzp : NULL;
        nd[i].weight_scale = scale;
        p += ALIGN64(rows * (4 * sizeof(int32_t) + sizeof(float)));
    }
    free(d->layers);
    free(d->blob);
    d->layers = nd;
    d->blob = blob;
    md->layers = nd;
    nd = NULL;
done:
    for (int i = 0; sh && i < nl; i++) {
        free(sh[i].w);
        free(sh[i].row_of);
    }
    free(sh);
    free(nd);
    free(keep);
    free(next);
    return st;
}
