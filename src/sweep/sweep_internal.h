/* Helpers shared by the sweep module's files (not part of the public API). */
#ifndef QAT_SWEEP_INTERNAL_H
#define QAT_SWEEP_INTERNAL_H

#include <stddef.h>
#include <stdio.h>

#include "qat/config.h"
#include "qat/status.h"
#include "qat/sweep.h"
#include <sys/types.h>

/* A growable array of owned strings. */
typedef struct qat_strv {
    char **v;
    int n, cap;
} qat_strv;

/* Appends a copy of s; returns 0, or -1 when out of memory. */
int qat_strv_push(qat_strv *a, const char *s);
void qat_strv_free(qat_strv *a);

/* One grid axis: a config key and its values, in file order. */
typedef struct qat_sweep_axis {
    char key[256];
    qat_strv values;
    char where[QAT_CFG_STR_MAX + 32];
} qat_sweep_axis;

/* One run before validation: its own overrides and where it was written.
 * A [methods] entry is one too (its overrides, crossed with the grid). */
typedef struct qat_sweep_proto {
    char name[QAT_SWEEP_NAME_MAX];
    char method[QAT_SWEEP_NAME_MAX]; /* the [methods] entry a grid run crosses, or "" */
    qat_strv sets;
    char where[QAT_CFG_STR_MAX + 32];
    char layer[QAT_NAME_MAX];
    int bits;
} qat_sweep_proto;

/* The state shared by sweep-file parsing and sensitivity sweeps while runs
 * are collected and validated. */
typedef struct qat_sweep_builder {
    const char *file; /* sweep file (or config) named in messages */
    char base_path[QAT_CFG_STR_MAX];
    char *base_text;
    size_t base_len;
    qat_config *cfg; /* scratch for every trial load */
    qat_strv fixed;  /* [set.*] entries, then the command line's --set */
    qat_strv keys;   /* varied keys: the grid's, then those only explicit runs set */
    qat_strv run_keys;
    qat_sweep_axis *axes;
    int naxes;
    qat_sweep_proto *methods; /* [methods], file order */
    int nmethods;
    qat_strv method_keys;     /* keys the methods set */
    qat_sweep_proto *protos;
    int nprotos, cap;
} qat_sweep_builder;

/* Applies at most this many overrides in one run. */
#define QAT_SWEEP_MAX_SETS 512

int qat_strv_has(const qat_strv *a, const char *s);
/* The key part of "section.key=value", trimmed. */
void qat_sweep_assignment_key(const char *a, char *out, size_t n);
void qat_sweep_builder_free(qat_sweep_builder *b);
/* A zeroed run at the end of b->protos (NULL when out of memory). */
qat_sweep_proto *qat_sweep_add_proto(qat_sweep_builder *b);
/* Reads and checks the base config (where: the location that names it). */
qat_status qat_sweep_load_base(qat_sweep_builder *b, const char *path, const char *where,
                               qat_error *err);
/* Loads the base config with b's fixed overrides plus extra (n of them). */
qat_status qat_sweep_try_load(qat_sweep_builder *b, const char *const *extra, int n,
                              qat_error *err);
/* Rewrites a config error about one override to start at where. */
qat_status qat_sweep_blame(qat_error *err, const char *assignment, const char *where);
/* Appends the command line's --set to the fixed overrides, refusing varied keys. */
qat_status qat_sweep_add_cli_sets(qat_sweep_builder *b, const char *const *sets, int nsets,
                                  qat_error *err);
/* Resolves every proto of b into sw->runs (and b->keys into sw->keys). */
qat_status qat_sweep_finish_runs(qat_sweep_builder *b, qat_sweep *sw, qat_error *err);
/* File name without folder and ".ini", plus suffix. */
void qat_sweep_default_name(const char *path, const char *suffix, char *out, size_t n);

/* Whole file into a NUL-terminated malloc'd buffer (*len without the NUL);
 * NULL with errno set on failure. */
char *qat_sweep_read_file(const char *path, size_t *len);

/* Index of a sensitivity sweep's base run (the one without a layer), or -1. */
int qat_sweep_base_run(const qat_sweep *sw);

/* "ok", "cached", "failed" or "pending" (the status column of the tables). */
const char *qat_sweep_status_name(int status);

/* ---- the runner's pieces, for qat-sweep over MPI ranks (ranks.c) ------------ */
/* Fills out[] (blank, or cached from an earlier sweep) and todo[] with the
 * runs still to do; returns their count. */
int qat_sweep_pending(const qat_sweep *sw, const qat_sweep_opts *o, qat_sweep_outcome *out,
                      int *todo);
/* Starts run i (qat-train as a child); -1 with the failure in *out when it
 * cannot start. */
pid_t qat_sweep_start_run(const qat_sweep *sw, const qat_sweep_opts *o, int i,
                          qat_sweep_outcome *out);
/* Records run i's end (wait status ws) in *out and its status file. */
void qat_sweep_reap_run(const qat_sweep *sw, const qat_sweep_opts *o, int i, int ws, double secs,
                        qat_sweep_outcome *out);
/* The progress line of a finished run (done of all). */
void qat_sweep_report(const qat_sweep *sw, const qat_sweep_opts *o, int i,
                      const qat_sweep_outcome *out, int done, double t0);

#endif
