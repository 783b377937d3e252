/* Weight sharing by clustering (Han et al., Deep Compression): from the
 * [cluster] start step on, the weights of a layer (or of each output
 * channel) take one of K shared values, the centroids of a 1-D k-means.
 *
 * Tying: a centroid's gradient is the sum of its members' gradients; a
 * second optimizer of the run's kind updates the centroids, and the members
 * are written back from them after every step, so the model's parameter
 * buffer always holds the tied weights and everything downstream (forward,
 * observers, checkpoints, export) sees them without knowing about clusters.
 * The centroids stay float, like QAT's latent weights: the forward's
 * fake-quant puts them on the layer's integer grid, and since members of
 * one group share a value and a grid they share a code, which is what makes
 * the palettized export exact (src/export/palette.c). Snapping the latent
 * centroids themselves would freeze any centroid whose update per step is
 * below half a grid step. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "qat/prune.h"
#include "qat/rng.h"

typedef struct clayer { /* one clustered conv2d / linear layer */
    int layer;          /* model index */
    int k;              /* centroids per group (the zero cluster included) */
    int groups;         /* 1, or out_c (per_channel) */
    size_t woff, wn;    /* weights in the parameter buffer */
    size_t goff;        /* first centroid (groups * k of them) */
    int zero;           /* slot 0 of each group is the pinned exact-zero cluster */
} clayer;

struct qat_clusterer {
    qat_model *m;
    const qat_config *cfg;
    long start;    /* optimizer step at which the weights are clustered */
    int clustered; /* 1 once tied */
    int n;
    clayer cl[QAT_MAX_LAYERS];
    size_t nc, nw;  /* centroids, clustered weights */
    float *state;   /* [clustered, optimizer steps][centroids nc][assignments nw][optimizer] */
    float *cent;    /* nc */
    float *assign;  /* nw, as floats: the checkpoint's layout; the index is exact below 2^24 */
    float *cgrad;   /* nc */
    float *cmask;   /* nc: 0 pins a zero cluster */
    float *ostate;  /* the centroid optimizer's own state (inside state) */
    size_t nostate, nstate;
    qat_optim *opt;
    float *scratch; /* k-means: sorted values */
};

/* ---- 1-D k-means --------------------------------------------------------------- */

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* Index of the centroid nearest v among k ascending ones (ties: the lower). */
static int nearest(const float *c, int k, float v)
{
    int lo = 0, hi = k - 1;
    while (lo < hi) { /* first centroid whose midpoint with the next is >= v */
        int mid = (lo + hi) / 2;
        if (v <= 0.5f * (c[mid] + c[mid + 1]))
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

/* k-means++ seeding (Arthur & Vassilvitskii) over the sorted values s[0..n):
 * each next centroid drawn with probability proportional to the squared
 * distance to the nearest one already chosen. */
static void seed_kmeanspp(const float *s, size_t n, int k, qat_rng *rng, float *c, double *d2)
{
    c[0] = s[qat_rng_below(rng, (uint32_t)n)];
    for (size_t i = 0; i < n; i++)
        d2[i] = (double)(s[i] - c[0]) * (s[i] - c[0]);
    for (int j = 1; j < k; j++) {
        double total = 0;
        for (size_t i = 0; i < n; i++)
            total += d2[i];
        size_t pick = n - 1;
        if (total > 0) {
            double u = (double)qat_rng_uniform(rng) * total, acc = 0;
            for (size_t i = 0; i < n; i++) {
                acc += d2[i];
                if (acc > u) {
                    pick = i;
                    break;
                }
            }
        }
        c[j] = s[pick];
        for (size_t i = 0; i < n; i++) {
            double d = (double)(s[i] - c[j]) * (s[i] - c[j]);
            if (d < d2[i])
                d2[i] = d;
        }
    }
}

void qat_kmeans_1d(const float *v, size_t n, int k, qat_cluster_init init, uint64_t seed,
                   float *cent, uint8_t *idx, float *scratch)
{
    QAT_ASSERT(n >= 1 && k >= 1 && k <= 256);
    float *s = scratch;
    memcpy(s, v, n * sizeof *s);
    qsort(s, n, sizeof *s, cmp_float);
    if (init == QAT_CLUSTER_LINEAR) {
        for (int j = 0; j < k; j++)
            cent[j] = k == 1 ? s[0] : s[0] + (s[n - 1] - s[0]) * (float)j / (float)(k - 1);
    } else if (init == QAT_CLUSTER_DENSITY || (size_t)k >= n) {
        for (int j = 0; j < k; j++)
            cent[j] = s[(size_t)(((double)j + 0.5) * (double)n / k)];
    } else {
        qat_rng rng;
        qat_rng_seed(&rng, seed, 7);
        double *d2 = malloc(n * sizeof *d2);
        QAT_ASSERT(d2 != NULL);
        seed_kmeanspp(s, n, k, &rng, cent, d2);
        free(d2);
    }
    qsort(cent, (size_t)k, sizeof *cent, cmp_float);
    /* Lloyd iterations on the sorted values: the members of a centroid are
     * a contiguous run, so one pass sums them; an empty cluster keeps its
     * centroid (it gets no members, and export drops unused codes anyway). */
    for (int it = 0; it < 100; it++) {
        int changed = 0;
        size_t i = 0;
        for (int j = 0; j < k; j++) {
            double sum = 0;
            size_t cnt = 0;
            while (i < n && nearest(cent, k, s[i]) == j) {
                sum += s[i++];
                cnt++;
            }
            float nc = cnt ? (float)(sum / (double)cnt) : cent[j];
            changed |= nc != cent[j];
            cent[j] = nc;
        }
        qsort(cent, (size_t)k, sizeof *cent, cmp_float);
        if (!changed)
            break;
    }
    for (size_t i = 0; i < n; i++)
        idx[i] = (uint8_t)nearest(cent, k, v[i]);
}

/* ---- the run's clusterer ------------------------------------------------------- */

static size_t offset_of(qat_model *m, const float *p)
{
    size_t n;
    return (size_t)(p - qat_model_params(m, &n));
}

qat_status qat_clusterer_create(qat_model *m, const qat_optim_config *oc, long start_step,
                                qat_clusterer **out, qat_error *err)
{
    *out = NULL;
    const qat_config *cfg = qat_model_config(m);
    qat_clusterer *c = calloc(1, sizeof *c);
    if (!c)
        return qat_fail(err, QAT_ENOMEM, "out of memory");
    c->m = m;
    c->cfg = cfg;
    c->start = start_step;
    size_t maxw = 0;
    for (int i = 0; i < qat_model_num_layers(m); i++) {
        int k = qat_config_cluster_layer(cfg, i);
        qat_layer *l = qat_model_layer(m, i);
        if (k == 0 || !l->w.data)
            continue;
        clayer *cl = &c->cl[c->n++];
        cl->layer = i;
        cl->k = k;
        cl->groups = cfg->cluster.granularity == QAT_GRAN_PER_CHANNEL ? l->out_c : 1;
        cl->woff = offset_of(m, l->w.data);
        cl->wn = l->w.numel;
        size_t per = cl->wn / (size_t)cl->groups;
        if ((size_t)k > per) {
            qat_status st = qat_fail(
                err, QAT_EINVAL,
                "%s:%d: [layer.%s] clusters = %d is more than the %zu weights %s (%d output "
                "channels x %zu inputs): K must be at most that",
                cfg->path, l->cfg->line, l->cfg->name, k, per,
                cl->groups > 1 ? "of each of its output channels" : "the layer has", l->out_c,
                l->fan_in);
            free(c);
            return st;
        }
        cl->zero = cfg->cluster.preserve_sparsity && qat_config_prune_layer(cfg, i, NULL);
        cl->goff = c->nc;
        c->nc += (size_t)cl->groups * (size_t)k;
        c->nw += cl->wn;
        if (cl->wn > maxw)
            maxw = cl->wn;
    }
    if (c->n == 0) {
        free(c);
        return QAT_OK;
    }
    qat_param_seg seg = {0, c->nc, 1};
    qat_status st = qat_optim_create(oc, c->nc, &seg, 1, &c->opt, err);
    if (st) {
        free(c);
        return qat_error_prefix(err, "%s: [cluster] centroids' optimizer", cfg->path);
    }
    float *os = qat_optim_state(c->opt, &c->nostate);
    (void)os;
    c->nstate = 2 + c->nc + c->nw + c->nostate;
    c->state = calloc(c->nstate, sizeof *c->state);
    c->cgrad = calloc(c->nc, sizeof *c->cgrad);
    c->cmask = malloc(c->nc * sizeof *c->cmask);
    c->scratch = malloc(maxw * sizeof *c->scratch);
    if (!c->state || !c->cgrad || !c->cmask || !c->scratch) {
        qat_clusterer_destroy(c);
        return qat_fail(err, QAT_ENOMEM, "out of memory for the cluster state");
    }
    c->cent = c->state + 2;
    c->assign = c->cent + c->nc;
    c->ostate = c->assign + c->nw;
    for (int j = 0; j < c->n; j++) {
        const clayer *cl = &c->cl[j];
        for (size_t g = 0; g < (size_t)cl->groups * (size_t)cl->k; g++)
            c->cmask[cl->goff + g] = cl->zero && g % (size_t)cl->k == 0 ? 0.0f : 1.0f;
    }
    *out = c;
    return QAT_OK;
}

void qat_clusterer_destroy(qat_clusterer *c)
{
    if (!c)
        return;
    qat_optim_destroy(c->opt);
    free(c->state);
    free(c->cgrad);
    free(c->cmask);
    free(c->scratch);
    free(c);
}

/* Writes every clustered weight from its centroid. A weight the pruner
 * masks joins the zero cluster where there is one, so pruning that goes on
 * after clustering keeps it exact. */
static void expand(qat_clusterer *c, const float *mask)
{
    size_t np;
    float *w = qat_model_params(c->m, &np);
    size_t a = 0;
    for (int j = 0; j < c->n; j++) {
        const clayer *cl = &c->cl[j];
        size_t per = cl->wn / (size_t)cl->groups;
        for (size_t i = 0; i < cl->wn; i++, a++) {
            size_t g = i / per;
            if (cl->zero && mask && mask[cl->woff + i] == 0.0f)
                c->assign[a] = 0.0f;
            w[cl->woff + i] = c->cent[cl->goff + g * (size_t)cl->k + (size_t)c->assign[a]];
        }
    }
}

void qat_clusterer_cluster(qat_clusterer *c, const float *mask)
{
    if (!c)
        return;
    size_t np;
    float *w = qat_model_params(c->m, &np);
    size_t a = 0;
    for (int j = 0; j < c->n; j++) {
        const clayer *cl = &c->cl[j];
        size_t per = cl->wn / (size_t)cl->groups;
        for (int g = 0; g < cl->groups; g++) {
            const float *v = w + cl->woff + (size_t)g * per;
            float *cent = c->cent + cl->goff + (size_t)g * (size_t)cl->k;
            float *as = c->assign + a + (size_t)g * per;
            /* the zero cluster takes slot 0; the others cluster the rest */
            size_t nz = 0;
            float *vals = c->scratch; /* the nonzero values, then sorted in place */
            for (size_t i = 0; i < per; i++)
                if (!(cl->zero && v[i] == 0.0f))
                    vals[nz++] = v[i];
            int k = cl->k - cl->zero;
            cent[0] = 0.0f;
            if (nz == 0) {
                for (int q = 0; q < cl->k; q++)
                    cent[q] = 0.0f;
                for (size_t i = 0; i < per; i++)
                    as[i] = 0.0f;
                continue;
            }
            float *copy = malloc(nz * sizeof *copy);
            uint8_t *idx = malloc(nz);
            QAT_ASSERT(copy != NULL && idx != NULL);
            memcpy(copy, vals, nz * sizeof *copy);
            qat_kmeans_1d(copy, nz, k < (int)nz ? k : (int)nz, c->cfg->cluster.init,
                          (uint64_t)c->cfg->train.seed + (uint64_t)cl->layer * 65537u + (uint64_t)g,
                          cent + cl->zero, idx, vals);
            for (int q = (k < (int)nz ? k : (int)nz); q < k; q++) /* unused slots */
                cent[cl->zero + q] = cent[cl->zero];
            for (size_t i = 0, t = 0; i < per; i++)
                as[i] = cl->zero && v[i] == 0.0f ? 0.0f : (float)(idx[t++] + cl->zero);
            free(copy);
            free(idx);
        }
        a += cl->wn;
    }
    c->clustered = 1;
    c->state[0] = 1.0f;
    expand(c, mask);
}

int qat_clusterer_update(qat_clusterer *c, long step, const float *mask)
{
    if (!c || c->clustered || step < c->start)
        return 0;
    qat_clusterer_cluster(c, mask);
    return 1;
}

int qat_clusterer_active(const qat_clusterer *c) { return c && c->clustered; }

void qat_clusterer_centroid_grads(qat_clusterer *c, const float *grads, float *cgrad)
{
    memset(cgrad, 0, c->nc * sizeof *cgrad);
    size_t a = 0;
    for (int j = 0; j < c->n; j++) {
        const clayer *cl = &c->cl[j];
        size_t per = cl->wn / (size_t)cl->groups;
        for (size_t i = 0; i < cl->wn; i++, a++)
            cgrad[cl->goff + (i / per) * (size_t)cl->k + (size_t)c->assign[a]] +=
                grads[cl->woff + i];
    }
}

void qat_clusterer_step(qat_clusterer *c, const float *grads, const float *mask, float lr)
{
    if (!qat_clusterer_active(c))
        return;
    qat_clusterer_centroid_grads(c, grads, c->cgrad);
    qat_optim_step(c->opt, c->cent, c->cgrad, c->cmask, lr);
    c->state[1] = (float)qat_optim_steps(c->opt);
    expand(c, mask);
}

float *qat_clusterer_state(qat_clusterer *c, size_t *count)
{
    if (!c) {
        *count = 0;
        return NULL;
    }
    /* the optimizer's state lives in its own buffer: mirror it for saving */
    size_t no;
    float *os = qat_optim_state(c->opt, &no);
    memcpy(c->ostate, os, no * sizeof *os);
    c->state[1] = (float)qat_optim_steps(c->opt);
    *count = c->nstate;
    return c->state;
}

float *qat_clusterer_tied(qat_clusterer *c, size_t *count)
{
    *count = c ? c->nc + c->nw : 0;
    return c ? c->cent : NULL; /* assign follows cent in state */
}

qat_status qat_clusterer_restored(qat_clusterer *c, const float *mask, qat_error *err)
{
    if (!c)
        return QAT_OK;
    c->clustered = c->state[0] != 0.0f;
    size_t no;
    float *os = qat_optim_state(c->opt, &no);
    memcpy(os, c->ostate, no * sizeof *os);
    qat_optim_set_steps(c->opt, (long)c->state[1]);
    if (!c->clustered)
        return QAT_OK;
    size_t a = 0;
    for (int j = 0; j < c->n; j++) {
        const clayer *cl = &c->cl[j];
        for (size_t i = 0; i < cl->wn; i++, a++) {
            float v = c->assign[a];
            if (!(v >= 0.0f && v < (float)cl->k && v == floorf(v))) {
                const qat_layer *l = qat_model_layer(c->m, cl->layer);
                return qat_fail(err, QAT_EINVAL,
                                "cluster_state: layer '%s' weight %zu has cluster index %g, "
                                "expected an integer in [0, %d) (a damaged checkpoint)",
                                l->cfg->name, i, (double)v, cl->k);
            }
        }
    }
    expand(c, mask);
    return QAT_OK;
}

void qat_clusterer_print(const qat_clusterer *c, FILE *f, long step)
{
    if (!qat_clusterer_active(c))
        return;
    fprintf(f, "  step %ld: weights clustered and tied:", step);
    for (int j = 0; j < c->n; j++) {
        const clayer *cl = &c->cl[j];
        fprintf(f, " %s %d%s%s", qat_model_layer(c->m, cl->layer)->cfg->name, cl->k,
                cl->groups > 1 ? "/channel" : "", cl->zero ? " (incl. zero)" : "");
    }
    fprintf(f, "\n");
}
