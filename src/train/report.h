/* Run reports: progress line, metrics.csv rows, summary.json (train-internal). */
#ifndef QAT_TRAIN_REPORT_H
#define QAT_TRAIN_REPORT_H

#include <stdio.h>

typedef struct qat_progress {
    int tty;     /* redraw one line in place */
    int quiet;
    double t0;   /* epoch start */
    double last; /* last redraw */
} qat_progress;

void qat_progress_start(qat_progress *p, int quiet);
/* Redraws at most ~10 times a second. */
void qat_progress_update(qat_progress *p, int epoch, int epochs, long done, long total,
                         double loss, double acc);
void qat_progress_end(qat_progress *p);

/* Minimal JSON writer: keys and values appended to an open object. */
typedef struct qat_json {
    FILE *f;
    int first;
} qat_json;
void qat_json_begin(qat_json *j, FILE *f);
void qat_json_end(qat_json *j);
void qat_json_num(qat_json *j, const char *key, double v); /* NaN -> null */
void qat_json_int(qat_json *j, const char *key, long long v);
void qat_json_str(qat_json *j, const char *key, const char *v);
void qat_json_array(qat_json *j, const char *key, const double *v, int n);
/* Starts a nested object under key; end it with qat_json_end. */
void qat_json_object(qat_json *j, const char *key, qat_json *inner);

#endif
