/* [cluster] in a training run: creating the run's clusterer and carrying an
 * init checkpoint's cluster state over. Beside the trainer, not in
 * src/prune/cluster.c, because reading a checkpoint is training's (prune
 * sits below it). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster.h"

qat_status qat_train_clusterer_create(const qat_config *cfg, qat_model *m,
                                      const qat_optim_config *oc, long steps_per_epoch,
                                      int resume, const float *mask, int quiet,
                                      qat_clusterer **out, qat_checkpoint_meta *meta,
                                      qat_error *err)
{
    long start = (long)llround(cfg->cluster.start * (double)steps_per_epoch);
    qat_status st = qat_clusterer_create(m, oc, start, out, err);
    if (st != QAT_OK || !*out)
        return st;
    meta->cluster_state = qat_clusterer_state(*out, &meta->cluster_count);
    if (resume || !cfg->train.init[0] || !qat_checkpoint_has(cfg->train.init, "cluster_state"))
        return QAT_OK;
    qat_error e2;
    float *tmp = malloc(meta->cluster_count * sizeof *tmp);
    if (!tmp)
        return qat_fail(err, QAT_ENOMEM, "out of memory");
    if (qat_checkpoint_read_f32(cfg->train.init, "cluster_state", tmp, meta->cluster_count,
                                &e2) == QAT_OK) {
        memcpy(meta->cluster_state, tmp, meta->cluster_count * sizeof *tmp);
        st = qat_clusterer_restored(*out, mask, err);
        if (st == QAT_OK && !quiet)
            printf("  cluster state from %s\n", cfg->train.init);
    } else if (!quiet) {
        printf("  %s holds another cluster layout: clustering afresh\n", cfg->train.init);
    }
    free(tmp);
    return st != QAT_OK ? qat_error_prefix(err, "%s", cfg->train.init) : QAT_OK;
}
