#include "report.h"

#include <math.h>
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

static void key(qat_json *j, const char *k)
{
    fprintf(j->f, "%s\n  \"%s\": ", j->first ? "" : ",", k);
    j->first = 0;
}

void qat_json_begin(qat_json *j, FILE *f)
{
    j->f = f;
    j->first = 1;
    fputc('{', f);
}

void qat_json_end(qat_json *j) { fputs("\n}", j->f); }

void qat_json_num(qat_json *j, const char *k, double v)
{
    key(j, k);
    if (isfinite(v))
        fprintf(j->f, "%.10g", v);
    else
        fputs("null", j->f);
}

void qat_json_int(qat_json *j, const char *k, long long v)
{
    key(j, k);
    fprintf(j->f, "%lld", v);
}

void qat_json_str(qat_json *j, const char *k, const char *v)
{
    key(j, k);
    fputc('"', j->f);
    for (const char *p = v; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '"' || c == '\\')
            fprintf(j->f, "\\%c", c);
        else if (c < 0x20)
            fprintf(j->f, "\\u%04x", c);
        else
            fputc(c, j->f);
    }
    fputc('"', j->f);
}

void qat_json_array(qat_json *j, const char *k, const double *v, int n)
{
    key(j, k);
    fputc('[', j->f);
    for (int i = 0; i < n; i++)
        fprintf(j->f, "%s%.6g", i ? ", " : "", v[i]);
    fputc(']', j->f);
}

void qat_json_object(qat_json *j, const char *k, qat_json *inner)
{
    key(j, k);
    qat_json_begin(inner, j->f);
}
