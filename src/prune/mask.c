/* Pruning masks: which parameters are pruned, recomputed on the schedule's
 * update steps, and how they stay pruned through the optimizer.
 *
 * One float mask entry per parameter (1 kept, 0 pruned), so the optimizer's
 * own mask argument pins pruned entries. Magnitude pruning masks single
 * weights; channel pruning masks a layer's whole output channel (its weight
 * row, bias, BN gamma and beta, so the channel outputs an exact 0) and the
 * next conv2d/linear's inputs from that channel, which then carry no
 * information and are what export removes with it. */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "qat/prune.h"
#include "qat/select.h"

typedef struct player { /* one pruned conv2d / linear layer */
    int layer;          /* model index */
    int next;           /* the next conv2d / linear (its inputs follow our channels), or -1 */
    int group;          /* layers of a group share one threshold */
    size_t woff, wn;    /* weights in the parameter buffer */
    int rows;           /* output channels */
    size_t rowlen;      /* weights per channel (fan_in) */
    size_t coff;        /* first channel-mask entry */
} player;

typedef struct group {
    double initial, target;
    int nlayers;
} group;

typedef struct chan_rec {
    float key;
    int player, c;
} chan_rec;

struct qat_pruner {
    qat_model *m;
    const qat_config *cfg;
    qat_prune_schedule s;
    int method;
    int regrow;   /* dynamic + regrow: masks come from a dense copy that keeps training */
    int monotone; /* pruned entries rank below everything: masks only ever grow */
    int n, ngroups;
    player pl[QAT_MAX_LAYERS];
    group g[QAT_MAX_LAYERS];
    size_t np, nch, nstate;
    float *state; /* [mask: np][channel masks: nch][dense copy: np, when regrowing] */
    float *mask, *chan, *dense;
    float *keys, *tmp; /* ranking scratch, one entry per prunable weight */
    chan_rec *recs;
    int header_printed;
};

static int is_compute(int type) { return qat_layer_type_has_weights((qat_layer_type)type); }

static size_t offset_of(qat_model *m, const float *p)
{
    size_t n;
    return (size_t)(p - qat_model_params(m, &n));
}

qat_status qat_pruner_create(qat_model *m, const qat_prune_schedule *s, qat_pruner **out,
                             qat_error *err)
{
    *out = NULL;
    const qat_config *cfg = qat_model_config(m);
    if (cfg->prune.method == QAT_PRUNE_NONE)
        return qat_fail(err, QAT_EINVAL, "%s: [prune] method = none: nothing to prune",
                        cfg->path);
    qat_pruner *p = calloc(1, sizeof *p);
    if (!p)
        return qat_fail(err, QAT_ENOMEM, "out of memory for the pruner");
    p->m = m;
    p->cfg = cfg;
    p->s = *s;
    p->method = cfg->prune.method;
    p->regrow = cfg->prune.schedule == QAT_PRUNE_DYNAMIC && cfg->prune.regrow;
    p->monotone = !p->regrow;
    int shared = -1; /* the global threshold's group */
    size_t maxw = 0;
    for (int i = 0; i < qat_model_num_layers(m); i++) {
        float target;
        if (!qat_config_prune_layer(cfg, i, &target))
            continue;
        qat_layer *l = qat_model_layer(m, i);
        player *P = &p->pl[p->n];
        P->layer = i;
        P->next = -1;
        for (int j = i + 1; j < qat_model_num_layers(m) && P->next < 0; j++)
            if (is_compute(qat_model_layer(m, j)->type))
                P->next = j;
        QAT_ASSERT(p->method != QAT_PRUNE_CHANNEL || P->next >= 0); /* config refuses it */
        P->woff = offset_of(m, l->w.data);
        P->wn = l->w.numel;
        P->rows = l->out_c;
        P->rowlen = l->fan_in;
        P->coff = p->nch;
        p->nch += (size_t)l->out_c;
        maxw += P->wn;
        /* a layer with its own target ranks alone even under a global scope */
        int own = cfg->prune.scope == QAT_PRUNE_SCOPE_LAYER || l->cfg->target_sparsity >= 0.0f;
        if (!own && shared >= 0) {
            P->group = shared;
        } else {
            P->group = p->ngroups++;
            group *G = &p->g[P->group];
            G->target = target;
            /* a layer whose own target is below [prune] initial starts there */
            G->initial = cfg->prune.initial_sparsity < target ? cfg->prune.initial_sparsity : target;
            if (!own)
                shared = P->group;
        }
        p->g[P->group].nlayers++;
        p->n++;
    }
    qat_model_params(m, &p->np);
    p->nstate = p->np + p->nch + (p->regrow ? p->np : 0);
    p->state = malloc((p->nstate + 1) * sizeof(float));
    p->keys = malloc((maxw + 1) * sizeof(float));
    p->tmp = malloc((maxw + 1) * sizeof(float));
    p->recs = malloc((p->nch + 1) * sizeof *p->recs);
    if (!p->state || !p->keys || !p->tmp || !p->recs) {
        size_t np = p->np; /* p is gone after destroy */
        qat_pruner_destroy(p);
        return qat_fail(err, QAT_ENOMEM, "out of memory for pruning masks (%zu parameters)", np);
    }
    p->mask = p->state;
    p->chan = p->state + p->np;
    for (size_t i = 0; i < p->np + p->nch; i++)
        p->state[i] = 1.0f;
    if (p->regrow) {
        size_t n;
        p->dense = p->chan + p->nch;
        memcpy(p->dense, qat_model_params(m, &n), p->np * sizeof(float));
    }
    *out = p;
    return QAT_OK;
}

qat_status qat_pruner_create_hold(qat_model *m, const float *keep, qat_pruner **out,
                                  qat_error *err)
{
    *out = NULL;
    qat_pruner *p = calloc(1, sizeof *p);
    if (!p)
        return qat_fail(err, QAT_ENOMEM, "out of memory for the pruner");
    p->m = m;
    p->cfg = qat_model_config(m);
    /* no layer to rank and an update step never reached: the masks only hold */
    p->s = (qat_prune_schedule){QAT_PRUNE_ONE_SHOT, LONG_MAX, LONG_MAX, 1};
    p->method = QAT_PRUNE_MAGNITUDE;
    p->monotone = 1;
    qat_model_params(m, &p->np);
    p->nstate = p->np;
    p->state = malloc((p->nstate + 1) * sizeof(float));
    p->keys = malloc(sizeof(float));
    p->tmp = malloc(sizeof(float));
    p->recs = malloc(sizeof *p->recs);
    if (!p->state || !p->keys || !p->tmp || !p->recs) {
        size_t np = p->np;
        qat_pruner_destroy(p);
        return qat_fail(err, QAT_ENOMEM, "out of memory for pruning masks (%zu parameters)",
                        np);
    }
    p->mask = p->state;
    p->chan = p->state + p->np;
    for (size_t i = 0; i < p->np; i++)
        p->mask[i] = keep ? keep[i] : 1.0f;
    *out = p;
    return QAT_OK;
}

void qat_pruner_hold(qat_pruner *p, const float *keep)
{
    for (size_t i = 0; i < p->np; i++)
        if (keep[i] == 0.0f)
            p->mask[i] = 0.0f;
    /* a channel whose whole weight row is held counts as a pruned channel */
    for (int i = 0; i < p->n; i++) {
        const player *P = &p->pl[i];
        for (int c = 0; c < P->rows; c++) {
            size_t o = P->woff + (size_t)c * P->rowlen, k = 0;
            while (k < P->rowlen && keep[o + k] == 0.0f)
                k++;
            if (k == P->rowlen)
                p->chan[P->coff + (size_t)c] = 0.0f;
        }
    }
}

void qat_pruner_destroy(qat_pruner *p)
{
    if (!p)
        return;
    free(p->state);
    free(p->keys);
    free(p->tmp);
    free(p->recs);
    free(p);
}

/* Magnitude pruning of one group to sparsity s: the round(s N) smallest |w|
 * over the group's weights; ties at the threshold go in parameter order, so
 * the result is exact and deterministic. */
static void select_weights(qat_pruner *p, int g, double s, const float *v)
{
    size_t N = 0;
    for (int i = 0; i < p->n; i++) {
        const player *P = &p->pl[i];
        if (P->group != g)
            continue;
        for (size_t k = 0; k < P->wn; k++) {
            size_t o = P->woff + k;
            p->keys[N++] = p->monotone && p->mask[o] == 0.0f ? -1.0f : fabsf(v[o]);
        }
    }
    size_t k = qat_prune_count(s, N);
    float thr = -INFINITY;
    size_t ties = 0;
    if (k > 0) {
        memcpy(p->tmp, p->keys, N * sizeof(float));
        thr = qat_select_kth(p->tmp, N, k - 1);
        size_t below = 0;
        for (size_t i = 0; i < N; i++)
            below += p->keys[i] < thr;
        ties = k - below;
    }
    N = 0;
    for (int i = 0; i < p->n; i++) {
        const player *P = &p->pl[i];
        if (P->group != g)
            continue;
        for (size_t j = 0; j < P->wn; j++) {
            float key = p->keys[N++];
            int cut = key < thr;
            if (!cut && key == thr && ties > 0) {
                cut = 1;
                ties--;
            }
            p->mask[P->woff + j] = cut ? 0.0f : 1.0f;
        }
    }
}

static int rec_cmp(const void *a, const void *b)
{
    const chan_rec *x = a, *y = b;
    if (x->key != y->key)
        return x->key < y->key ? -1 : 1;
    if (x->player != y->player)
        return x->player < y->player ? -1 : 1;
    return (x->c > y->c) - (x->c < y->c);
}

/* Channel pruning of one group to sparsity s: the round(s C) channels of
 * smallest weight norm. Across layers (a global group) norms are taken per
 * weight (L1 / fan_in, L2 / sqrt(fan_in)) so wide and narrow rows compare;
 * every layer keeps at least one channel. */
static void select_channels(qat_pruner *p, int g, double s, const float *v)
{
    int n = 0, multi = p->g[g].nlayers > 1;
    int kept[QAT_MAX_LAYERS];
    for (int i = 0; i < p->n; i++) {
        const player *P = &p->pl[i];
        if (P->group != g)
            continue;
        kept[i] = P->rows;
        for (int c = 0; c < P->rows; c++) {
            const float *w = v + P->woff + (size_t)c * P->rowlen;
            double norm = 0;
            for (size_t k = 0; k < P->rowlen; k++)
                norm += p->cfg->prune.channel_norm == QAT_NORM_L1 ? fabs((double)w[k])
                                                                  : (double)w[k] * (double)w[k];
            if (p->cfg->prune.channel_norm == QAT_NORM_L2)
                norm = sqrt(norm);
            if (multi)
                norm /= p->cfg->prune.channel_norm == QAT_NORM_L1 ? (double)P->rowlen
                                                                  : sqrt((double)P->rowlen);
            int was_cut = p->chan[P->coff + (size_t)c] == 0.0f;
            p->recs[n++] = (chan_rec){p->monotone && was_cut ? -1.0f : (float)norm, i, c};
            p->chan[P->coff + (size_t)c] = 1.0f;
        }
    }
    size_t k = qat_prune_count(s, (size_t)n);
    qsort(p->recs, (size_t)n, sizeof *p->recs, rec_cmp);
    for (int r = 0; r < n && k > 0; r++) {
        const chan_rec *R = &p->recs[r];
        if (kept[R->player] <= 1)
            continue;
        p->chan[p->pl[R->player].coff + (size_t)R->c] = 0.0f;
        kept[R->player]--;
        k--;
    }
}

static void mask_range(float *mask, const float *base, const float *at, size_t n)
{
    if (at)
        memset(mask + (at - base), 0, n * sizeof(float));
}

/* Channel masks -> parameter mask: the channel's weight row, bias, gamma and
 * beta, and the next layer's inputs from it (input j of a conv2d or linear
 * reads channel j % C of its source, through pools and flatten alike). */
static void build_channel_mask(qat_pruner *p)
{
    size_t n;
    const float *base = qat_model_params(p->m, &n);
    for (size_t i = 0; i < p->np; i++)
        p->mask[i] = 1.0f;
    for (int i = 0; i < p->n; i++) {
        const player *P = &p->pl[i];
        qat_layer *l = qat_model_layer(p->m, P->layer);
        qat_layer *nx = qat_model_layer(p->m, P->next);
        size_t nxoff = offset_of(p->m, nx->w.data), C = (size_t)P->rows;
        for (int c = 0; c < P->rows; c++) {
            if (p->chan[P->coff + (size_t)c] != 0.0f)
                continue;
            memset(p->mask + P->woff + (size_t)c * P->rowlen, 0, P->rowlen * sizeof(float));
            mask_range(p->mask, base, l->b.data ? l->b.data + c : NULL, 1);
            mask_range(p->mask, base, l->gamma.data ? l->gamma.data + c : NULL, 1);
            mask_range(p->mask, base, l->beta.data ? l->beta.data + c : NULL, 1);
            for (int o = 0; o < nx->out_c; o++)
                for (size_t j = (size_t)c; j < nx->fan_in; j += C)
                    p->mask[nxoff + (size_t)o * nx->fan_in + j] = 0.0f;
        }
    }
}

void qat_pruner_recompute(qat_pruner *p, long step)
{
    if (!p)
        return;
    size_t np;
    float *params = qat_model_params(p->m, &np);
    const float *v = p->regrow ? p->dense : params;
    for (int g = 0; g < p->ngroups; g++) {
        double s = qat_prune_sparsity_at(&p->s, p->g[g].initial, p->g[g].target, step);
        if (p->method == QAT_PRUNE_CHANNEL)
            select_channels(p, g, s, v);
        else
            select_weights(p, g, s, v);
    }
    if (p->method == QAT_PRUNE_CHANNEL)
        build_channel_mask(p);
    for (size_t i = 0; i < np; i++)
        params[i] = p->mask[i] == 0.0f ? 0.0f : p->regrow ? p->dense[i] : params[i];
}

int qat_pruner_update(qat_pruner *p, long step)
{
    if (!p || !qat_prune_is_update(&p->s, step))
        return 0;
    qat_pruner_recompute(p, step);
    return 1;
}

const float *qat_pruner_mask(const qat_pruner *p) { return p ? p->mask : NULL; }

void qat_pruner_mask_grads(const qat_pruner *p, float *grads)
{
    if (!p || p->regrow)
        return;
    for (size_t i = 0; i < p->np; i++)
        if (p->mask[i] == 0.0f)
            grads[i] = 0.0f;
}

void qat_pruner_optim_step(qat_pruner *p, qat_optim *o, float *params, const float *grads,
                           float lr)
{
    if (!p) {
        qat_optim_step(o, params, grads, NULL, lr);
        return;
    }
    size_t np = p->np;
    if (!p->regrow) {
        qat_optim_step(o, params, grads, p->mask, lr);
        return;
    }
    /* The dense weights take the whole step (their pruned entries with the
     * gradient at the pruned model); the model goes back to the masked ones. */
    for (size_t i = 0; i < np; i++)
        if (p->mask[i] == 0.0f)
            params[i] = p->dense[i];
    qat_optim_step(o, params, grads, NULL, lr);
    memcpy(p->dense, params, np * sizeof(float));
    for (size_t i = 0; i < np; i++)
        if (p->mask[i] == 0.0f)
            params[i] = 0.0f;
}

float *qat_pruner_state(qat_pruner *p, size_t *count)
{
    *count = p ? p->nstate : 0;
    return p ? p->state : NULL;
}

qat_status qat_pruner_check_state(qat_pruner *p, qat_error *err)
{
    if (!p)
        return QAT_OK;
    size_t np;
    const float *params = qat_model_params(p->m, &np);
    for (size_t i = 0; i < p->np + p->nch; i++)
        if (p->state[i] != 0.0f && p->state[i] != 1.0f)
            return qat_fail(err, QAT_EINVAL,
                            "pruning state entry %zu is %g: masks hold only 0 and 1 (damaged "
                            "checkpoint?)",
                            i, (double)p->state[i]);
    for (size_t i = 0; i < np; i++)
        if (p->mask[i] == 0.0f && params[i] != 0.0f)
            return qat_fail(err, QAT_EINVAL,
                            "parameter %zu is pruned but holds %g: pruned parameters are exact "
                            "zeros (damaged checkpoint?)",
                            i, (double)params[i]);
    for (size_t i = 0; p->dense && i < np; i++)
        if (!isfinite(p->dense[i]))
            return qat_fail(err, QAT_EINVAL,
                            "dense copy entry %zu is %g (damaged checkpoint?)", i,
                            (double)p->dense[i]);
    return QAT_OK;
}

double qat_pruner_layer_sparsity(const qat_pruner *p, int i)
{
    if (!p)
        return 0.0;
    qat_layer *l = qat_model_layer(p->m, i);
    if (!is_compute(l->type) || l->w.numel == 0)
        return 0.0;
    const float *mk = p->mask + offset_of(p->m, l->w.data);
    size_t z = 0;
    for (size_t k = 0; k < l->w.numel; k++)
        z += mk[k] == 0.0f;
    return (double)z / (double)l->w.numel;
}

void qat_pruner_print_update(qat_pruner *p, FILE *f, long step, long steps_per_epoch)
{
    if (!p)
        return;
    qat_model *m = p->m;
    int nl = qat_model_num_layers(m);
    if (!p->header_printed) {
        fprintf(f, "prune    step   epoch  overall");
        for (int i = 0; i < nl; i++)
            if (is_compute(qat_model_layer(m, i)->type))
                fprintf(f, " %8s", qat_model_layer(m, i)->cfg->name);
        fprintf(f, "\n");
        p->header_printed = 1;
    }
    double zeros = 0, total = 0;
    for (int i = 0; i < nl; i++) {
        qat_layer *l = qat_model_layer(m, i);
        if (!is_compute(l->type))
            continue;
        zeros += qat_pruner_layer_sparsity(p, i) * (double)l->w.numel;
        total += (double)l->w.numel;
    }
    fprintf(f, "prune %7ld %7.2f %8.4f", step,
            steps_per_epoch > 0 ? (double)step / (double)steps_per_epoch : 0.0,
            total > 0 ? zeros / total : 0.0);
    for (int i = 0; i < nl; i++)
        if (is_compute(qat_model_layer(m, i)->type))
            fprintf(f, " %8.4f", qat_pruner_layer_sparsity(p, i));
    fprintf(f, "\n");
}
