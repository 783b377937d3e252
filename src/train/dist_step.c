/* Data-parallel steps. Every collective is an allgather followed by a sum
 * in rank order, the same on every rank: a run is bit-reproducible for a
 * given rank and thread count, and no rank can drift by a reduction order
 * it did not share (MPI_Allreduce leaves the order to the library).
 * Gradients are the same exchange of encoded buffers (gradq.c), so 32-bit
 * and quantized gradients take one path, and a simulated run feeds its N
 * shards' messages through the same decode-and-sum. */
#include "dist_step.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gradq.h"

struct qat_dp {
    qat_dist *dist; /* NULL: simulated ranks in this process */
    int ranks, rank, local;
    uint64_t seed;
    int error_feedback;
    qat_gradq q;
    size_t *bucket_end;
    size_t np;
    size_t msg;       /* padded bytes of one encoded gradient */
    uint8_t *send;    /* local shards' messages: local * msg */
    uint8_t *recv;    /* every rank's: ranks * msg */
    float *residual;  /* error feedback: local * np, or NULL */
    double *red;      /* the tape's allreduce: ranks * red_cap doubles */
    size_t red_cap;
    /* the optimizer sharded over the ranks (qat_dp_shard_optimizer): rank
     * r sums, steps and owns parameters [part[r], part[r + 1]) */
    size_t *part;     /* ranks + 1 parameter offsets, or NULL */
    float *slices;    /* every rank's gradient of this rank's part */
};

static uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

/* The tape's collective: gather every rank's values, combine in rank order. */
static void dp_allreduce(void *ctx, double *v, size_t n, qat_reduce_op op)
{
    qat_dp *dp = ctx;
    if (n > dp->red_cap) { /* grows over the first step, then never again */
        free(dp->red);
        dp->red = malloc((size_t)dp->ranks * n * sizeof(double));
        QAT_ASSERT(dp->red);
        dp->red_cap = n;
    }
    qat_dist_allgather(dp->dist, v, n * sizeof(double), dp->red);
    for (size_t i = 0; i < n; i++) {
        double a = dp->red[i];
        for (int r = 1; r < dp->ranks; r++) {
            double b = dp->red[(size_t)r * n + i];
            a = op == QAT_REDUCE_SUM ? a + b : op == QAT_REDUCE_MIN ? fmin(a, b) : fmax(a, b);
        }
        v[i] = a;
    }
}

static qat_status check(const qat_config *cfg, int ranks, uint32_t train_n, qat_error *err)
{
    int B = cfg->train.batch_size;
    uint32_t tail = train_n % (uint32_t)B;
    if (B < ranks || (tail && tail < (uint32_t)ranks))
        return qat_fail(err, QAT_EINVAL,
                        "%s: [train] batch_size = %d over %d ranks: every rank needs at least "
                        "one example of every global batch, and %s has %d; use a batch_size "
                        "of at least %d%s",
                        cfg->path, B, ranks, B < ranks ? "the batch" : "the last batch",
                        B < ranks ? B : (int)tail, ranks,
                        B < ranks ? "" : " whose remainder over the training set is 0 or at "
                                         "least the rank count (or [data] train_limit)");
    for (int i = -1; i < cfg->nlayers; i++) {
        const qat_quant_cfg *qc = i < 0 ? &cfg->quant : &cfg->layers[i].quant;
        if (cfg->quant.enabled &&
            (qc->activation_observer == QAT_OBS_PERCENTILE || qc->activation_observer == QAT_OBS_MSE))
            return qat_fail(err, QAT_EINVAL,
                            "%s: [%s%s] activation_observer = %s: it needs every value of the "
                            "global batch in one place, which %d ranks do not have; use minmax "
                            "or ema",
                            cfg->path, i < 0 ? "quant" : "layer.", i < 0 ? "" : cfg->layers[i].name,
                            qat_enum_name(qat_observer_kind_names, qc->activation_observer),
                            ranks);
    }
    return QAT_OK;
}

/* Every rank must train the same configuration: compare a hash of it. */
static qat_status same_config(qat_dp *dp, const qat_config *cfg, qat_error *err)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f)
        return qat_fail(err, QAT_ENOMEM, "out of memory");
    qat_config_write(f, cfg);
    fclose(f);
    uint64_t h = fnv1a(0xcbf29ce484222325ull, text, len);
    free(text);
    uint64_t *all = malloc((size_t)dp->ranks * sizeof *all);
    if (!all)
        return qat_fail(err, QAT_ENOMEM, "out of memory");
    qat_dist_allgather(dp->dist, &h, sizeof h, all);
    int bad = -1;
    for (int r = 1; r < dp->ranks && bad < 0; r++)
        if (all[r] != all[0])
            bad = r;
    free(all);
    if (bad >= 0)
        return qat_fail(err, QAT_EINVAL,
                        "%s: rank %d resolved a different configuration than rank 0 (a "
                        "different file, --set or data on that node?); every rank must train "
                        "the same one",
                        cfg->path, bad);
    return QAT_OK;
}

static qat_status buckets(qat_dp *dp, const qat_config *cfg, qat_model *m, qat_error *err)
{
    int nsegs;
    const qat_param_seg *segs = qat_model_segments(m, &nsegs);
    size_t bs = (size_t)cfg->distributed.bucket_size, nb = 0;
    for (int pass = 0; pass < 2; pass++) {
        size_t k = 0, at = 0;
        for (int s = 0; s < nsegs; s++) {
            /* segments tile the parameters in order; a gap is its own bucket */
            size_t b = segs[s].offset, e = b + segs[s].count;
            if (b > at) {
                if (pass)
                    dp->bucket_end[k] = b;
                k++;
            }
            for (size_t x = b; x < e; x = bs && e - x > bs ? x + bs : e) {
                if (pass)
                    dp->bucket_end[k] = bs && e - x > bs ? x + bs : e;
                k++;
            }
            at = e;
        }
        if (at < dp->np) {
            if (pass)
                dp->bucket_end[k] = dp->np;
            k++;
        }
        nb = k;
        if (!pass && !(dp->bucket_end = malloc((nb ? nb : 1) * sizeof *dp->bucket_end)))
            return qat_fail(err, QAT_ENOMEM, "out of memory");
    }
    dp->q.bucket_end = dp->bucket_end;
    dp->q.nbuckets = (int)nb;
    return QAT_OK;
}

qat_status qat_dp_create(qat_dist *dist, const qat_config *cfg, qat_model *m, qat_tape *t,
                         uint32_t train_n, qat_dp **out, qat_error *err)
{
    *out = NULL;
    const qat_distributed_cfg *dc = &cfg->distributed;
    int world = dist ? qat_dist_size(dist) : 1;
    int sim = dc->simulate_ranks > 1 ? dc->simulate_ranks : 1;
    int bits = qat_grad_bits_value(dc->gradient_bits);
    if (world == 1 && sim == 1 && bits == 32)
        return QAT_OK;
    if (world > 1 && sim > 1)
        return qat_fail(err, QAT_EINVAL,
                        "%s: [distributed] simulate_ranks = %d under mpirun with %d ranks: "
                        "simulate ranks in one process, or run real ones, not both",
                        cfg->path, sim, world);
    int ranks = world > 1 ? world : sim;
    qat_status st = check(cfg, ranks, train_n, err);
    if (st != QAT_OK)
        return st;
    qat_dp *dp = calloc(1, sizeof *dp);
    if (!dp)
        return qat_fail(err, QAT_ENOMEM, "out of memory");
    dp->dist = world > 1 ? dist : NULL;
    dp->ranks = ranks;
    dp->rank = world > 1 ? qat_dist_rank(dist) : 0;
    dp->local = sim;
    dp->seed = (uint64_t)cfg->train.seed;
    dp->error_feedback = dc->error_feedback && bits < 32;
    qat_model_params(m, &dp->np);
    dp->q = (qat_gradq){.bits = bits, .stochastic = dc->gradient_rounding == QAT_GROUND_STOCHASTIC,
                        .l2 = dc->gradient_scaling == QAT_GSCALE_L2, .n = dp->np};
    if ((st = buckets(dp, cfg, m, err)) != QAT_OK) {
        qat_dp_destroy(dp);
        return st;
    }
    dp->msg = (qat_gradq_bytes(&dp->q) + 7) / 8 * 8;
    dp->send = malloc((size_t)dp->local * dp->msg);
    dp->recv = malloc((size_t)dp->ranks * dp->msg);
    if (dp->error_feedback)
        dp->residual = calloc((size_t)dp->local * dp->np, sizeof(float));
    if (!dp->send || !dp->recv || (dp->error_feedback && !dp->residual)) {
        qat_dp_destroy(dp);
        return qat_fail(err, QAT_ENOMEM, "out of memory for the gradient messages");
    }
    if (dp->dist) {
        if ((st = same_config(dp, cfg, err)) != QAT_OK) {
            qat_dp_destroy(dp);
            return st;
        }
        qat_tape_set_allreduce(t, dp_allreduce, dp, dp->rank);
    }
    *out = dp;
    return QAT_OK;
}

void qat_dp_destroy(qat_dp *dp)
{
    if (!dp)
        return;
    free(dp->bucket_end);
    free(dp->send);
    free(dp->recv);
    free(dp->residual);
    free(dp->red);
    free(dp->part);
    free(dp->slices);
    free(dp);
}

int qat_dp_ranks(const qat_dp *dp) { return dp ? dp->ranks : 1; }
int qat_dp_rank(const qat_dp *dp) { return dp ? dp->rank : 0; }
int qat_dp_leader(const qat_dp *dp) { return !dp || dp->rank == 0; }
int qat_dp_local_shards(const qat_dp *dp) { return dp ? dp->local : 1; }
int qat_dp_shard_index(const qat_dp *dp, int k) { return dp->dist ? dp->rank : k; }
size_t qat_dp_bytes_per_step(const qat_dp *dp) { return qat_gradq_bytes(&dp->q); }

void qat_dp_shard(const qat_dp *dp, int n, int r, int *off, int *cnt)
{
    int base = n / dp->ranks, extra = n % dp->ranks;
    *off = r * base + (r < extra ? r : extra);
    *cnt = base + (r < extra);
}

/* A rank's one 32-bit shard is its message as it stands: the exchange
 * reads the gradient buffer itself rather than a copy of it. */
static int sends_grads(const qat_dp *dp)
{
    return dp->dist && dp->local == 1 && dp->q.bits == 32 && dp->msg == dp->np * sizeof(float);
}

void qat_dp_add_shard(qat_dp *dp, int k, float *grads, long step)
{
    if (sends_grads(dp) || dp->part) /* the exchange reads grads itself */
        return;
    /* stochastic rounding: a stream per (step, shard), so a resume draws
     * what the uninterrupted run would have */
    qat_rng rng;
    qat_rng_seed(&rng, dp->seed ^ ((uint64_t)step * 0x9E3779B97F4A7C15ull),
                 64 + (uint64_t)qat_dp_shard_index(dp, k));
    float *res = dp->residual ? dp->residual + (size_t)k * dp->np : NULL;
    qat_gradq_encode(&dp->q, grads, res, &rng, dp->send + (size_t)k * dp->msg);
    if (k + 1 < dp->local) /* the next shard sums into it; qat_dp_reduce overwrites the last */
        memset(grads, 0, dp->np * sizeof *grads);
}

qat_status qat_dp_shard_optimizer(qat_dp *dp, qat_error *err)
{
    if (!dp || !dp->dist || dp->local != 1 || dp->q.bits != 32 || dp->part)
        return QAT_OK;
    size_t R = (size_t)dp->ranks;
    size_t *part = malloc((R + 1) * sizeof *part);
    if (!part)
        return qat_fail(err, QAT_ENOMEM, "out of memory for the optimizer's shards");
    /* parts of whole cache lines (16 floats), the last one takes the rest */
    size_t lines = (dp->np + 15) / 16;
    for (size_t r = 0; r <= R; r++) {
        size_t at = lines * r / R * 16;
        part[r] = at < dp->np ? at : dp->np;
    }
    size_t mine = part[dp->rank + 1] - part[dp->rank];
    if (!(dp->slices = malloc((mine ? R * mine : 1) * sizeof(float)))) {
        free(part);
        return qat_fail(err, QAT_ENOMEM, "out of memory for the optimizer's shards");
    }
    dp->part = part;
    return QAT_OK;
}

int qat_dp_part(const qat_dp *dp, size_t *lo, size_t *hi)
{
    if (!dp || !dp->part)
        return 0;
    *lo = dp->part[dp->rank];
    *hi = dp->part[dp->rank + 1];
    return 1;
}

void qat_dp_gather_params(qat_dp *dp, float *v)
{
    if (dp && dp->part)
        qat_dist_allgather_parts(dp->dist, v, dp->part, sizeof *v);
}

void qat_dp_gather_state(qat_dp *dp, float *state, size_t count)
{
    if (!dp || !dp->part)
        return;
    QAT_ASSERT(count % dp->np == 0);
    for (size_t k = 0; k < count / dp->np; k++)
        qat_dist_allgather_parts(dp->dist, state + k * dp->np, dp->part, sizeof *state);
}

double qat_dp_max_over_ranks(qat_dp *dp, double v)
{
    if (dp && dp->dist)
        dp_allreduce(dp, &v, 1, QAT_REDUCE_MAX);
    return v;
}

void qat_dp_reduce(qat_dp *dp, float *grads)
{
    if (dp->part) {
        /* each rank's copy of this rank's part, summed in rank order: the
         * bits the whole exchange below gives these entries */
        size_t lo = dp->part[dp->rank], n = dp->part[dp->rank + 1] - lo;
        qat_dist_alltoall_parts(dp->dist, grads, dp->part, sizeof *grads, dp->slices);
        float *g = grads + lo;
        const float *s = dp->slices;
        memcpy(g, s, n * sizeof *g);
        for (int r = 1; r < dp->ranks; r++) {
            s += n;
            for (size_t i = 0; i < n; i++)
                g[i] += s[i];
        }
        return;
    }
    const uint8_t *all = dp->send;
    if (dp->dist) {
        const void *mine = sends_grads(dp) ? (const void *)grads : dp->send;
        qat_dist_allgather(dp->dist, mine, dp->msg, dp->recv);
        all = dp->recv;
    }
    for (int r = 0; r < dp->ranks; r++)
        (r ? qat_gradq_decode_add : qat_gradq_decode_set)(&dp->q, all + (size_t)r * dp->msg,
                                                          grads);
}

void qat_dp_broadcast_model(qat_dp *dp, qat_model *m)
{
    if (!dp || !dp->dist)
        return;
    size_t np, ns = qat_model_state_size(m);
    float *p = qat_model_params(m, &np);
    qat_dist_bcast(dp->dist, p, np * sizeof *p, 0);
    float *s = malloc((ns ? ns : 1) * sizeof *s);
    QAT_ASSERT(s);
    qat_model_state_save(m, s);
    qat_dist_bcast(dp->dist, s, ns * sizeof *s, 0);
    qat_error err;
    qat_status st = qat_model_state_load(m, s, &err);
    QAT_ASSERT(st == QAT_OK); /* rank 0's state of the same model */
    free(s);
}

void qat_dp_sum(qat_dp *dp, double *v, int n)
{
    if (dp && dp->dist)
        dp_allreduce(dp, v, (size_t)n, QAT_REDUCE_SUM);
}

qat_status qat_dp_evaluate(qat_dp *dp, qat_model *m, qat_tape *t, const qat_dataset *d,
                           qat_eval *ev, qat_error *err)
{
    if (!dp || !dp->dist || !d->labels || d->n < (uint32_t)dp->ranks)
        return qat_evaluate_set(m, t, d, 256, NULL, NULL, ev, err);
    int off, cnt;
    qat_dp_shard(dp, (int)d->n, dp->rank, &off, &cnt);
    uint32_t *idx = malloc((size_t)cnt * sizeof *idx);
    if (!idx)
        return qat_fail(err, QAT_ENOMEM, "out of memory");
    for (int i = 0; i < cnt; i++)
        idx[i] = (uint32_t)(off + i);
    qat_dataset part;
    qat_status st = qat_dataset_subset(d, idx, (uint32_t)cnt, &part, err);
    free(idx);
    if (st == QAT_OK) {
        st = qat_evaluate_set(m, t, &part, 256, NULL, NULL, ev, err);
        qat_dataset_free(&part);
    }
    /* a failure on one rank ends the job (the caller aborts), so the sum
     * below is reached by all or by none */
    if (st != QAT_OK)
        return st;
    double correct = nearbyint(ev->accuracy * cnt);
    qat_dp_sum(dp, &correct, 1);
    ev->accuracy = correct / (double)d->n;
    return QAT_OK;
}

qat_status qat_dp_verify(qat_dp *dp, qat_model *m, float *tied, size_t ntied, int drift,
                         int epoch, qat_error *err)
{
    if (!dp || !dp->dist)
        return QAT_OK;
    size_t np, ns = qat_model_state_size(m);
    float *p = qat_model_params(m, &np);
    if (drift == 2 && ntied)
        tied[0] += 1e-3f;
    else if (drift)
        p[0] += 1e-3f;
    float *s = malloc((ns ? ns : 1) * sizeof *s);
    uint64_t *all = malloc((size_t)dp->ranks * 2 * sizeof *all);
    if (!s || !all) {
        free(s);
        free(all);
        return qat_fail(err, QAT_ENOMEM, "out of memory");
    }
    qat_model_state_save(m, s);
    /* two hashes, so the message can say which part diverged: a centroid
     * that drifted shows in the weights only after the next step ties them */
    uint64_t h[2] = {fnv1a(fnv1a(0xcbf29ce484222325ull, p, np * sizeof *p), s, ns * sizeof *s),
                     fnv1a(0xcbf29ce484222325ull, tied, ntied * sizeof *tied)};
    qat_dist_allgather(dp->dist, h, sizeof h, all);
    char bad[256] = "";
    size_t len = 0;
    int which = 0; /* bit 0: parameters / quantization state, bit 1: clusters */
    for (int r = 1; r < dp->ranks; r++) {
        int d = (all[2 * r] != all[0]) | (all[2 * r + 1] != all[1]) << 1;
        which |= d;
        if (d && len < sizeof bad - 16)
            len += (size_t)snprintf(bad + len, sizeof bad - len, "%s%d", len ? ", " : "", r);
    }
    free(s);
    free(all);
    static const char *const what[4] = {
        "", "parameters or quantization state", "cluster centroids or assignments",
        "parameters or quantization state and cluster centroids or assignments"};
    if (len)
        return qat_fail(err, QAT_EINVAL,
                        "[distributed] verify: after epoch %d the %s of rank(s) %s differ from "
                        "rank 0's (hash %016llx); the ranks have diverged, stopping",
                        epoch, what[which], bad,
                        (unsigned long long)h[(which & 1) ? 0 : 1]);
    return QAT_OK;
}
