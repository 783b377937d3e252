/* What the run measured after training, and the summary.json writer
 * (run-internal). */
#ifndef QAT_RUN_SUMMARY_H
#define QAT_RUN_SUMMARY_H

#include <stddef.h>

#include "qat/prune.h"
#include "qat/ptq.h"
#include "qat/train.h"

/* One model's metrics on one split; NaN where they do not apply (accuracy
 * for a regression, the regression metrics for a classifier). */
typedef struct qat_run_metrics {
    double accuracy;
    qat_regression_metrics reg;
} qat_run_metrics;

typedef struct qat_run_results {
    qat_run_metrics flt, fq, int8; /* test: float (quant off), fake-quant, integer runtime */
    qat_run_metrics val;           /* the trained model on [data] val_fraction's split */
    double agreement, int8_ips;    /* NaN: does not apply */
    size_t bytes_float, bytes_int8, file_bytes;
    qat_prune_stats sparsity; /* as exported (int8), or of the float weights */
    const qat_ptq_report *ptq; /* mode = ptq, else NULL */
} qat_run_results;

/* Writes <t->dir>/summary.json: the keys of run.h, in its order; the
 * sparsity keys only with [prune]. */
qat_status qat_run_write_summary(const qat_trained *t, const qat_run_results *res,
                                 qat_error *err);

#endif
