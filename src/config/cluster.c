/* [cluster]: weight sharing (k-means centroids tied during training,
 * exported palettized). Its own file so config.c only lists the section. */
#include <stddef.h>
#include <stdio.h>

#include "config_internal.h"
#include "qat/ini.h"

#define CL(f) offsetof(qat_cluster_cfg, f)
const qat_cfg_key qat_cluster_keys[] = {
    {"clusters", QAT_CFG_INT, CL(clusters), "0", 0, 256, 0, NULL, "weight sharing: K shared values per layer (or per output channel), 2..256; 0: off. Exported palettized: K int8 codes and ceil(log2 K)-bit indices"},
    {"init", QAT_CFG_ENUM, CL(init), "kmeans++", 0, 0, 0, qat_cluster_init_names, "first centroids of the k-means: k-means++ seeding (with [train] seed), evenly spaced over [min, max] (linear), or at evenly spaced quantiles (density)"},
    {"start", QAT_CFG_FLOAT, CL(start), "0", 0, 1e9, 0, NULL, "epoch (fractions allowed) at which the weights are clustered and tied; before it they train freely"},
    {"preserve_sparsity", QAT_CFG_BOOL, CL(preserve_sparsity), "true", 0, 0, 0, NULL, "exact zeros (pruned weights) stay an exact zero cluster, one of the K"},
    {"granularity", QAT_CFG_ENUM, CL(granularity), "per_tensor", 0, 0, 0, qat_granularity_names, "one set of K centroids per layer, or one per output channel"},
};
#undef CL
const int qat_cluster_nkeys = sizeof qat_cluster_keys / sizeof qat_cluster_keys[0];

int qat_config_cluster_layer(const qat_config *cfg, int i)
{
    const qat_layer_cfg *l = &cfg->layers[i];
    if (!qat_layer_type_has_weights(l->type) || l->type == QAT_LAYER_ADD)
        return 0;
    return l->clusters >= 0 ? l->clusters : cfg->cluster.clusters;
}

/* K = 1 is no sharing at all (every weight one value): the schema's range
 * cannot say "0 or 2..256", so it is refused here, at the line that set it. */
qat_status qat_config_check_cluster(qat_ini *ini, const qat_config *cfg, qat_error *err)
{
    char where[600];
    if (cfg->cluster.clusters == 1) {
        qat_config_where_key(ini, "cluster", "clusters", where, sizeof where);
        return qat_fail(err, QAT_EINVAL,
                        "%s: [cluster] clusters = 1 is out of range: expected 0 (off) or 2..256",
                        where);
    }
    int any = 0;
    for (int i = 0; i < cfg->nlayers; i++)
        any |= qat_config_cluster_layer(cfg, i) != 0;
    if (any && cfg->train.mode == QAT_MODE_QAT && cfg->cluster.start >= (float)cfg->train.epochs) {
        qat_config_where_key(ini, "cluster", "start", where, sizeof where);
        return qat_fail(err, QAT_EINVAL,
                        "%s: [cluster] start = %g epochs is not before the end of training "
                        "([train] epochs = %d): the weights would never be clustered",
                        where, (double)cfg->cluster.start, cfg->train.epochs);
    }
    for (int i = 0; i < cfg->nlayers; i++) {
        const qat_layer_cfg *l = &cfg->layers[i];
        if (l->clusters != 1)
            continue;
        char sec[QAT_NAME_MAX + 8];
        snprintf(sec, sizeof sec, "layer.%s", l->name);
        qat_config_where_key(ini, sec, "clusters", where, sizeof where);
        return qat_fail(err, QAT_EINVAL,
                        "%s: [layer.%s] clusters = 1 is out of range: expected 0 (off) or 2..256",
                        where, l->name);
    }
    return QAT_OK;
}

void qat_config_write_cluster(FILE *f, const qat_config *cfg)
{
    /* always written, defaults included (unlike [distributed]): so it was
     * before the section had a file of its own, and config.ini must not change */
    fprintf(f, "\n[cluster]\n");
    qat_cfg_write(f, qat_cluster_keys, qat_cluster_nkeys, &cfg->cluster);
}
