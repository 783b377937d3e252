/* Weight sharing: the 1-D k-means, the tied gradient (a centroid's gradient
 * is the sum of its members'), the tying through optimizer steps, pruning's
 * exact zero cluster, and the config's refusals. */
#include "prune_fixture.h"

#include "qat/ops.h"
#include "qat/optim.h"

Test(kmeans, recovers_well_separated_clusters_with_every_init)
{
    /* three tight blobs around -1, 0.5 and 3 */
    float v[300], cent[3], scratch[300];
    uint8_t idx[300];
    qat_rng g;
    qat_rng_seed(&g, 5, 0);
    const float centres[3] = {-1.0f, 0.5f, 3.0f};
    for (int i = 0; i < 300; i++)
        v[i] = centres[i % 3] + 0.01f * (qat_rng_uniform(&g) - 0.5f);
    for (int init = 0; init <= QAT_CLUSTER_DENSITY; init++) {
        qat_kmeans_1d(v, 300, 3, (qat_cluster_init)init, 9, cent, idx, scratch);
        for (int j = 0; j < 3; j++)
            cr_assert(fabsf(cent[j] - centres[j]) < 0.01f, "init %d centroid %d = %g", init, j,
                      (double)cent[j]);
        for (int i = 0; i < 300; i++)
            cr_assert_eq(idx[i], i % 3, "init %d value %d", init, i);
    }
}

Test(kmeans, is_deterministic_for_a_seed_and_lloyd_converged)
{
    float v[1000], a[16], b[16], scratch[1000];
    uint8_t ia[1000], ib[1000];
    qat_rng g;
    qat_rng_seed(&g, 3, 0);
    for (int i = 0; i < 1000; i++)
        v[i] = qat_rng_normal(&g);
    qat_kmeans_1d(v, 1000, 16, QAT_CLUSTER_KMEANSPP, 42, a, ia, scratch);
    qat_kmeans_1d(v, 1000, 16, QAT_CLUSTER_KMEANSPP, 42, b, ib, scratch);
    cr_assert_eq(memcmp(a, b, sizeof a), 0);
    cr_assert_eq(memcmp(ia, ib, sizeof ia), 0);
    for (int j = 1; j < 16; j++)
        cr_assert(a[j] >= a[j - 1], "centroids ascending");
    /* a fixed point of Lloyd: every centroid is the mean of its members and
     * every value sits at its nearest centroid */
    for (int j = 0; j < 16; j++) {
        double s = 0;
        int n = 0;
        for (int i = 0; i < 1000; i++)
            if (ia[i] == j) {
                s += v[i];
                n++;
            }
        if (n)
            cr_assert(fabs(s / n - a[j]) < 1e-5, "centroid %d is its members' mean", j);
    }
    for (int i = 0; i < 1000; i++)
        for (int j = 0; j < 16; j++)
            cr_assert(fabsf(v[i] - a[ia[i]]) <= fabsf(v[i] - a[j]) + 1e-6f);
}

Test(kmeans, exactly_k_distinct_values_come_back_exactly)
{
    /* what a re-clustering of tied weights (an --init of a clustered
     * checkpoint without its state) relies on */
    float v[64], cent[4], scratch[64];
    uint8_t idx[64];
    const float vals[4] = {-0.3f, -0.01f, 0.02f, 0.7f};
    for (int i = 0; i < 64; i++)
        v[i] = vals[(i * 7) % 4];
    qat_kmeans_1d(v, 64, 4, QAT_CLUSTER_KMEANSPP, 1, cent, idx, scratch);
    for (int i = 0; i < 64; i++)
        cr_assert_eq(cent[idx[i]], v[i]);
}

static qat_clusterer *make(qat_model *m)
{
    qat_optim_config oc;
    qat_optim_config_defaults(&oc, QAT_OPT_SGD);
    qat_clusterer *c;
    qat_error e;
    cr_assert_eq(qat_clusterer_create(m, &oc, 0, &c, &e), QAT_OK, "%s", e.msg);
    cr_assert_not_null(c);
    return c;
}

static size_t distinct(const float *w, size_t n)
{
    float *s = malloc(n * sizeof *s);
    memcpy(s, w, n * sizeof *s);
    size_t d = 0;
    for (size_t i = 0; i < n; i++) {
        int seen = 0;
        for (size_t j = 0; j < d && !seen; j++)
            seen = s[j] == w[i];
        if (!seen)
            s[d++] = w[i];
    }
    free(s);
    return d;
}

Test(cluster, centroid_gradient_is_the_sum_of_its_members)
{
    const char *sets[] = {"cluster.clusters=4"};
    qat_model *m = pf_model(pf_cnn, sets, 1);
    qat_clusterer *c = make(m);
    cr_assert_eq(qat_clusterer_update(c, 0, NULL), 1);
    qat_layer *fc1 = qat_model_layer(m, PF_FC1);
    cr_assert(distinct(fc1->w.data, fc1->w.numel) <= 4);
    size_t np;
    float *p = qat_model_params(m, &np), *gr = qat_model_grads(m, &np);
    qat_rng g;
    qat_rng_seed(&g, 2, 0);
    for (size_t i = 0; i < np; i++)
        gr[i] = qat_rng_normal(&g);
    size_t nc;
    qat_clusterer_state(c, &nc);
    float *cg = calloc(nc, sizeof *cg);
    qat_clusterer_centroid_grads(c, gr, cg);
    /* recompute fc1's four sums from the members, grouped by value */
    size_t woff = (size_t)(fc1->w.data - p);
    float vals[4];
    double sums[4] = {0};
    int nv = 0;
    for (size_t i = 0; i < fc1->w.numel; i++) {
        int j = 0;
        while (j < nv && vals[j] != fc1->w.data[i])
            j++;
        if (j == nv)
            vals[nv++] = fc1->w.data[i];
        sums[j] += gr[woff + i];
    }
    /* fc1 is the third clustered layer: its centroids follow conv1's and conv2's */
    for (int j = 0; j < nv; j++) {
        int found = 0;
        for (size_t q = 8; q < 12; q++)
            found |= fabs((double)cg[q] - sums[j]) < 1e-4 * (1 + fabs(sums[j]));
        cr_assert(found, "fc1's cluster of %g has the summed gradient %g", (double)vals[j],
                  sums[j]);
    }
    /* after a step the members are still tied */
    qat_clusterer_step(c, gr, NULL, 0.01f);
    cr_assert(distinct(fc1->w.data, fc1->w.numel) <= 4);
    free(cg);
    qat_clusterer_destroy(c);
    qat_model_destroy(m);
}

Test(cluster, sgd_step_equals_the_summed_gradient_step)
{
    const char *sets[] = {"cluster.clusters=3", "layer.conv1.clusters=0", "layer.conv2.clusters=0",
                          "layer.fc1.clusters=0"};
    qat_model *m = pf_model(pf_cnn, sets, 4);
    qat_clusterer *c = make(m);
    qat_clusterer_cluster(c, NULL);
    qat_layer *fc2 = qat_model_layer(m, PF_FC2);
    size_t np;
    float *p = qat_model_params(m, &np), *gr = qat_model_grads(m, &np);
    size_t woff = (size_t)(fc2->w.data - p), n = fc2->w.numel;
    float *w0 = malloc(n * sizeof *w0);
    memcpy(w0, fc2->w.data, n * sizeof *w0);
    for (size_t i = 0; i < np; i++)
        gr[i] = 0.001f * (float)(i % 7) - 0.002f;
    qat_clusterer_step(c, gr, NULL, 0.1f);
    for (size_t i = 0; i < n; i++) {
        double sum = 0;
        for (size_t j = 0; j < n; j++)
            if (w0[j] == w0[i])
                sum += gr[woff + j];
        cr_assert(fabs(fc2->w.data[i] - (w0[i] - 0.1 * sum)) < 1e-5, "weight %zu", i);
    }
    free(w0);
    qat_clusterer_destroy(c);
    qat_model_destroy(m);
}

Test(cluster, pruned_zeros_stay_an_exact_zero_cluster_counted_in_k)
{
    const char *sets[] = {"cluster.clusters=4", "prune.method=magnitude",
                          "prune.schedule=one_shot", "prune.unit=step", "prune.start=0",
                          "prune.target_sparsity=0.5", "prune.scope=layer"};
    qat_model *m = pf_model(pf_cnn, sets, 7);
    qat_prune_schedule s = pf_sched(m, 10);
    qat_pruner *p = pf_pruner(m, &s);
    qat_pruner_update(p, 0);
    qat_clusterer *c = make(m);
    qat_clusterer_cluster(c, qat_pruner_mask(p));
    qat_layer *fc1 = qat_model_layer(m, PF_FC1);
    size_t zeros = 0;
    for (size_t i = 0; i < fc1->w.numel; i++)
        zeros += fc1->w.data[i] == 0.0f;
    cr_assert_eq(zeros, pf_masked(m, p, PF_FC1));
    cr_assert(distinct(fc1->w.data, fc1->w.numel) <= 4, "the zero cluster is one of the K");
    size_t np;
    float *gr = qat_model_grads(m, &np);
    for (size_t i = 0; i < np; i++)
        gr[i] = 0.5f;
    qat_pruner_mask_grads(p, gr);
    qat_clusterer_step(c, gr, qat_pruner_mask(p), 0.1f);
    size_t z2 = 0;
    for (size_t i = 0; i < fc1->w.numel; i++)
        z2 += fc1->w.data[i] == 0.0f;
    cr_assert_eq(z2, zeros, "the zero cluster does not move");
    qat_clusterer_destroy(c);
    qat_pruner_destroy(p);
    qat_model_destroy(m);
}

Test(cluster, state_round_trips_and_rejects_a_bad_assignment)
{
    const char *sets[] = {"cluster.clusters=8", "cluster.granularity=per_channel"};
    qat_model *m = pf_model(pf_cnn, sets, 2);
    qat_clusterer *c = make(m);
    qat_clusterer_cluster(c, NULL);
    size_t n, np;
    float *st = qat_clusterer_state(c, &n);
    float *copy = malloc(n * sizeof *copy);
    memcpy(copy, st, n * sizeof *copy);
    float *p = qat_model_params(m, &np);
    float *p0 = malloc(np * sizeof *p0);
    memcpy(p0, p, np * sizeof *p0);
    for (size_t i = 0; i < np; i++)
        p[i] = 0.25f; /* a restore must put the tied weights back */
    memcpy(st, copy, n * sizeof *copy);
    qat_error e;
    cr_assert_eq(qat_clusterer_restored(c, NULL, &e), QAT_OK, "%s", e.msg);
    qat_layer *fc1 = qat_model_layer(m, PF_FC1);
    size_t off = (size_t)(fc1->w.data - p);
    cr_assert_eq(memcmp(p + off, p0 + off, fc1->w.numel * sizeof *p), 0);
    /* per channel: each of fc1's rows has at most 8 values */
    for (int r = 0; r < fc1->out_c; r++)
        cr_assert(distinct(fc1->w.data + (size_t)r * fc1->fan_in, fc1->fan_in) <= 8);
    /* an assignment out of range: the damaged checkpoint is refused */
    size_t nc = 0;
    for (int i = 0; i < qat_model_num_layers(m); i++)
        if (qat_model_layer(m, i)->w.data)
            nc += (size_t)qat_model_layer(m, i)->out_c * 8;
    st[2 + nc] = 9.0f;
    cr_assert_eq(qat_clusterer_restored(c, NULL, &e), QAT_EINVAL);
    cr_assert(strstr(e.msg, "conv1") && strstr(e.msg, "cluster index 9"), "%s", e.msg);
    free(copy);
    free(p0);
    qat_clusterer_destroy(c);
    qat_model_destroy(m);
}

Test(cluster_config, k_out_of_range_names_the_line)
{
    qat_config *c = malloc(sizeof *c);
    qat_error e;
    const char *one[] = {"cluster.clusters=1"};
    cr_assert_eq(qat_config_parse(pf_cnn, strlen(pf_cnn), "t.ini", one, 1, c, &e), QAT_EINVAL);
    cr_assert(strstr(e.msg, "clusters = 1") && strstr(e.msg, "2..256"), "%s", e.msg);
    const char *big[] = {"cluster.clusters=257"};
    cr_assert_eq(qat_config_parse(pf_cnn, strlen(pf_cnn), "t.ini", big, 1, c, &e), QAT_EINVAL);
    cr_assert(strstr(e.msg, "clusters"), "%s", e.msg);
    char text[2048];
    snprintf(text, sizeof text, "%s%s", pf_cnn, "clusters = 1\n");
    cr_assert_eq(qat_config_parse(text, strlen(text), "t.ini", NULL, 0, c, &e), QAT_EINVAL);
    cr_assert(strstr(e.msg, "t.ini:") && strstr(e.msg, "[layer.fc2] clusters = 1"), "%s", e.msg);
    const char *late[] = {"cluster.clusters=4", "cluster.start=4"}; /* epochs = 4 */
    cr_assert_eq(qat_config_parse(pf_cnn, strlen(pf_cnn), "t.ini", late, 2, c, &e), QAT_EINVAL);
    cr_assert(strstr(e.msg, "[cluster] start = 4") && strstr(e.msg, "never be clustered"), "%s",
              e.msg);
    free(c);
}

Test(cluster_config, k_above_a_layers_weight_count_names_the_layer)
{
    const char *sets[] = {"cluster.clusters=16", "cluster.granularity=per_channel"};
    qat_model *m = pf_model(pf_cnn, sets, 2); /* conv1: 9 weights per channel */
    qat_optim_config oc;
    qat_optim_config_defaults(&oc, QAT_OPT_SGD);
    qat_clusterer *c;
    qat_error e;
    cr_assert_eq(qat_clusterer_create(m, &oc, 0, &c, &e), QAT_EINVAL);
    cr_assert_null(c);
    cr_assert(strstr(e.msg, "t.ini:") && strstr(e.msg, "[layer.conv1] clusters = 16") &&
                  strstr(e.msg, "9 weights"),
              "%s", e.msg);
    qat_model_destroy(m);
}

Test(cluster_config, the_written_config_reads_back_the_same)
{
    const char *sets[] = {"cluster.clusters=16", "cluster.init=density", "cluster.start=1.5",
                          "layer.fc2.clusters=4"};
    qat_config *c = pf_config(pf_cnn, sets, 4);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    qat_config_write(f, c);
    fclose(f);
    qat_config *d = pf_config(buf, NULL, 0);
    cr_assert_eq(d->cluster.clusters, 16);
    cr_assert_eq(d->cluster.init, QAT_CLUSTER_DENSITY);
    cr_assert_eq(d->cluster.start, 1.5f);
    cr_assert_eq(qat_config_cluster_layer(d, PF_FC2), 4);
    cr_assert_eq(qat_config_cluster_layer(d, PF_FC1), 16);
    cr_assert_eq(qat_config_cluster_layer(d, 1), 0, "a pool is never clustered");
    free(buf);
    free(c);
    free(d);
}
