/* Sweeps: many training runs described by one file, run as separate
 * qat-train processes, collected into tables and plots.
 *
 * A sweep is a base config plus, per run, a list of "section.key=value"
 * overrides. Every run's overrides are applied with qat_config_load when the
 * sweep is loaded, so a bad key or value is reported before anything runs,
 * with the sweep file's file:line. README.md ("qat-sweep") documents the
 * file format. */
#ifndef QAT_SWEEP_H
#define QAT_SWEEP_H

#include <stdio.h>

#include "qat/config.h"
#include "qat/dist.h"
#include "qat/status.h"

#define QAT_SWEEP_MAX_RUNS 4096
#define QAT_SWEEP_NAME_MAX 128
#define QAT_SWEEP_MAX_BITS 8
/* The pseudo-key of a sweep's [methods] axis: its values are method names. */
#define QAT_SWEEP_METHOD_KEY "method"

typedef enum qat_sweep_kind {
    QAT_SWEEP_GRID = 0,        /* a sweep file: grid and/or explicit runs */
    QAT_SWEEP_SENSITIVITY = 1  /* one layer at a time at low bit-widths */
} qat_sweep_kind;

/* What a sensitivity run lowers in its one layer, or (float) keeps in
 * float32 (layer.NAME.quantize = false) to rank layers by gain per byte. */
typedef enum qat_sweep_target {
    QAT_SWEEP_WEIGHTS = 0,
    QAT_SWEEP_ACTIVATIONS = 1,
    QAT_SWEEP_BOTH = 2,
    QAT_SWEEP_FLOAT = 3
} qat_sweep_target;

typedef struct qat_sweep_run {
    char name[QAT_SWEEP_NAME_MAX]; /* also the run's folder under the sweep's out dir */
    char **sets;                   /* every override handed to qat-train, in order */
    int nsets;
    char **values;   /* effective value of each sweep key (after all overrides) */
    char *resolved;  /* the run's resolved config as qat_config_write prints it */
    int threads;     /* train.threads (0: all online cores) */
    char where[QAT_CFG_STR_MAX + 32]; /* "file:line" that defines the run */
    /* sensitivity: the lowered layer ("" for the base run) and its bits */
    char layer[QAT_NAME_MAX];
    int bits;                      /* 0 in a float sensitivity sweep */
} qat_sweep_run;

typedef struct qat_sweep {
    int kind;                     /* qat_sweep_kind */
    char name[QAT_SWEEP_NAME_MAX];
    char path[QAT_CFG_STR_MAX];   /* the sweep file, or the config for sensitivity */
    char base[QAT_CFG_STR_MAX];   /* base config path as handed to qat-train */
    int jobs;                     /* [sweep] jobs; 0: automatic */
    char **keys;                  /* varied keys "section.key": grid keys ("method" last
                                     with [methods]), then keys of runs */
    int nkeys;
    int ngrid_keys;               /* keys[0..ngrid_keys) are the grid's axes */
    qat_sweep_run *runs;
    int nruns;
    int ngrid_runs;               /* runs[0..ngrid_runs) are the grid's product */
    int target;                   /* sensitivity: qat_sweep_target */
    int bits[QAT_SWEEP_MAX_BITS]; /* sensitivity: the low bit-widths (none: float) */
    int nbits;
} qat_sweep;

/* Reads and expands a sweep file. sets ("section.key=value", nsets of them)
 * apply to every run; setting a key that the sweep varies is an error. On
 * success *out is owned by the caller (qat_sweep_free). */
qat_status qat_sweep_load(const char *path, const char *const *sets, int nsets, qat_sweep **out,
                          qat_error *err);
/* Same from text; name is the file name used in messages and the folder the
 * base config path is relative to. */
qat_status qat_sweep_parse(const char *text, size_t len, const char *name,
                           const char *const *sets, int nsets, qat_sweep **out, qat_error *err);
/* A sensitivity sweep of config: a base run, then for each conv2d/linear
 * layer (file order) and each of bits[0..nbits) one run that lowers only
 * that layer's weight (and/or activation) bits. With target
 * QAT_SWEEP_FLOAT (nbits 0, bits unused): one run per quantized conv2d
 * (groups = 1) / linear layer with only that layer in float. */
qat_status qat_sweep_sensitivity(const char *config, const int *bits, int nbits, int target,
                                 const char *const *sets, int nsets, qat_sweep **out,
                                 qat_error *err);
void qat_sweep_free(qat_sweep *sw);

/* Parallel runs that fit: cores / the largest train.threads (0 counts as
 * all cores), at least 1. */
int qat_sweep_default_jobs(const qat_sweep *sw, int cores);

/* ---- running ---------------------------------------------------------------- */
typedef enum qat_run_status {
    QAT_RUN_PENDING = 0,
    QAT_RUN_OK,     /* trained by this invocation */
    QAT_RUN_CACHED, /* finished earlier with the same resolved config: skipped */
    QAT_RUN_FAILED,
    QAT_RUN_NSTATUS /* how many statuses there are (for counting by status) */
} qat_run_status;

typedef struct qat_sweep_outcome {
    int status;           /* qat_run_status */
    double wall_seconds;  /* of the qat-train process; NaN when cached */
    char exit_desc[64];   /* failed: "exit 2", "killed by signal 9", ... */
    char error[1024];     /* failed: the last lines of its stderr, " | "-joined */
    /* from summary.json; NaN when absent or null. The *_acc fields hold the
     * run's main metric: accuracy, or R^2 for a regression (regression set) */
    int regression;
    double float_acc, fq_acc, int8_acc, agreement;
    double bytes_int8, sparsity, train_seconds;
    double ptq_seconds; /* mode = ptq: calibration and compensation */
} qat_sweep_outcome;

/* counts[s] = how many of o[0..n) have status s, for each of the
 * QAT_RUN_NSTATUS entries of counts. */
void qat_sweep_count_status(const qat_sweep_outcome *o, int n, int counts[QAT_RUN_NSTATUS]);

typedef struct qat_sweep_opts {
    const char *out_dir;   /* runs go to out_dir/<run name>/ */
    const char *train_exe; /* the qat-train binary */
    int jobs;              /* >= 1 */
    FILE *log;             /* progress lines (stderr); NULL: silent */
} qat_sweep_opts;

/* Runs every run that is not finished yet, at most opts->jobs at a time, and
 * fills out[0..nruns). A failing run is recorded in its outcome and does not
 * stop the others; the status is about the sweep itself (out dir, fork). */
qat_status qat_sweep_execute(const qat_sweep *sw, const qat_sweep_opts *opts,
                             qat_sweep_outcome *out, qat_error *err);
/* The same spread over the ranks of d (mpirun -np N qat-sweep; one rank:
 * qat_sweep_execute): each rank runs one run at a time, handed out by rank
 * 0 as ranks free up; on rank 0 out[] ends up complete (other ranks' out[]
 * holds only their own runs). The run folders must be on a file system
 * every rank sees. */
qat_status qat_sweep_execute_ranks(const qat_sweep *sw, const qat_sweep_opts *opts, qat_dist *d,
                                   qat_sweep_outcome *out, qat_error *err);
/* Reads the metrics of a summary.json into o (absent keys become NaN). */
qat_status qat_sweep_read_summary(const char *path, qat_sweep_outcome *o, qat_error *err);

/* ---- reporting ---------------------------------------------------------------- */
/* How the tables and plots name the main metric: accuracy, or R^2 when the
 * runs are regressions (values are shown x 100 either way). */
typedef struct qat_sweep_metric {
    const char *key;   /* CSV column stem: "accuracy" or "r2" */
    const char *label; /* "accuracy" or "R^2" */
    const char *md;    /* Markdown column: "acc %" or "R² x100" */
} qat_sweep_metric;
const qat_sweep_metric *qat_sweep_metric_of(const qat_sweep_outcome *o, int n);
/* One layer of a float sensitivity sweep, measured against the base run. */
typedef struct qat_sweep_float_gain {
    int run;             /* index into sw->runs */
    double metric;       /* int8 main metric of the run (NaN when it failed) */
    double gain_points;  /* 100 x (metric - base metric) */
    double extra_bytes;  /* model_bytes_int8 of the run - the base's */
    double points_per_kib; /* gain_points / (extra_bytes / 1024); NaN when extra_bytes <= 0 */
    int rank;            /* 1 = the best gain per byte; 0: unknown (the run or base failed) */
} qat_sweep_float_gain;
/* Fills rows[] (sw->nruns - 1 of them: every run but the base) ranked by
 * gain per extra byte, best first; a layer that gains while costing no
 * bytes ranks above any that cost bytes, one that loses while costing none
 * below; ties keep file order; runs without a known gain come last, in
 * file order, with rank 0. Returns the number of rows. */
int qat_sweep_float_ranking(const qat_sweep *sw, const qat_sweep_outcome *o,
                            qat_sweep_float_gain *rows);
/* Writes dir/results.csv and dir/results.md (and for a sensitivity sweep
 * dir/sensitivity.csv and dir/sensitivity.md). */
qat_status qat_sweep_write_tables(const qat_sweep *sw, const qat_sweep_outcome *o,
                                  const char *dir, qat_error *err);
/* Writes the plot data and gnuplot scripts under dir/plots/ and runs gnuplot
 * (the command, e.g. "gnuplot") on them for PNG and SVG. A missing gnuplot is
 * QAT_EUNSUPPORTED; the scripts stay for a later run. */
qat_status qat_sweep_write_plots(const qat_sweep *sw, const qat_sweep_outcome *o,
                                 const char *dir, const char *gnuplot, FILE *log,
                                 qat_error *err);
/* Marks front[i] = 1 for the points no other point beats: x (cost) no larger
 * and y (value) no smaller, one of them strictly. NaN points are never on it.
 * Returns the number of points on the front. */
int qat_sweep_pareto(const double *x, const double *y, int n, int *front);

#endif
