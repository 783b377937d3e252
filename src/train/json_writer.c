#include "json_writer.h"

#include <math.h>

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
