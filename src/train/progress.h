/* The one-line progress bar qat-train redraws on a terminal during an epoch
 * (train-internal). */
#ifndef QAT_TRAIN_PROGRESS_H
#define QAT_TRAIN_PROGRESS_H

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

#endif
