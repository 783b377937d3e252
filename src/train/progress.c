#include "progress.h"

#include <stdio.h>
#include <unistd.h>

#include "qat/clock.h"

void qat_progress_start(qat_progress *p, int quiet)
{
    p->quiet = quiet;
    p->tty = !quiet && isatty(STDERR_FILENO);
    p->t0 = qat_clock_seconds();
    p->last = 0;
}

void qat_progress_update(qat_progress *p, int epoch, int epochs, long done, long total,
                         double loss, double acc)
{
    if (!p->tty)
        return;
    double now = qat_clock_seconds();
    if (done < total && now - p->last < 0.1)
        return;
    p->last = now;
    double el = now - p->t0;
    double ips = el > 0 ? (double)done / el : 0;
    double eta = ips > 0 ? (double)(total - done) / ips : 0;
    int width = 30, fill = total ? (int)((double)width * (double)done / (double)total) : 0;
    char bar[64];
    for (int i = 0; i < width; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[width] = '\0';
    fprintf(stderr, "\repoch %d/%d [%s] %3.0f%%  %6.0f img/s  ETA %3.0fs  loss %.4f  acc %.4f ",
            epoch, epochs, bar, total ? 100.0 * (double)done / (double)total : 0.0, ips, eta,
            loss, acc);
    fflush(stderr);
}

void qat_progress_end(qat_progress *p)
{
    if (p->tty)
        fprintf(stderr, "\r%120s\r", "");
}
