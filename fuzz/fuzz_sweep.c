/* libFuzzer target: the sweep-file parser (qat-sweep's input).
 *
 * Input: the text of a sweep file that sits in a scratch folder beside a
 * small valid base config (base.ini, written once at start-up), so "base =
 * base.ini" resolves and the fuzzer reaches grids, runs and overrides. A
 * sweep that loads must keep its promises: at least one run, unique run
 * names, and every run's resolved config parsing back. The Pareto helper
 * of the reports is fed numbers from the input too. */
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qat/sweep.h"

static char sweep_name[256];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    char dir[] = "/tmp/qat-fuzz-sweep-XXXXXX";
    if (!mkdtemp(dir))
        abort();
    char path[256];
    snprintf(path, sizeof path, "%s/base.ini", dir);
    FILE *f = fopen(path, "w");
    if (!f)
        abort();
    fputs("[data]\ndir = data\ntrain_limit = 300\n[train]\nepochs = 1\nthreads = 1\n"
          "[quant]\nweight_bits = 8\n[layer.flatten]\ntype = flatten\n[layer.fc1]\n"
          "type = linear\nout_features = 16\nactivation = relu\n[layer.fc2]\ntype = linear\n"
          "out_features = 10\n",
          f);
    fclose(f);
    snprintf(sweep_name, sizeof sweep_name, "%s/fuzz.sweep", dir);
    /* "base = /dev/stdin" must not wait for a terminal */
    int null = open("/dev/null", O_RDONLY);
    if (null >= 0) {
        dup2(null, 0);
        close(null);
    }
    return 0;
}

static void check_pareto(const uint8_t *data, size_t size)
{
    enum { N = 8 };
    double x[N], y[N];
    int front[N];
    if (size < 2 * N)
        return;
    for (int i = 0; i < N; i++) {
        x[i] = data[i] == 255 ? NAN : (double)(data[i] % 16);
        y[i] = data[N + i] == 255 ? NAN : (double)(data[N + i] % 16);
    }
    int n = qat_sweep_pareto(x, y, N, front), count = 0;
    for (int i = 0; i < N; i++) {
        count += front[i];
        if (!front[i])
            continue;
        if (isnan(x[i]) || isnan(y[i]))
            abort(); /* NaN points are never on the front */
        for (int j = 0; j < N; j++)
            if (x[j] <= x[i] && y[j] >= y[i] && (x[j] < x[i] || y[j] > y[i]))
                abort(); /* a dominated point on the front */
    }
    if (count != n)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_pareto(data, size);
    qat_sweep *sw = NULL;
    qat_error err;
    qat_error_clear(&err);
    qat_status st = qat_sweep_parse((const char *)data, size, sweep_name, NULL, 0, &sw, &err);
    if (st != QAT_OK) {
        if (err.msg[0] == '\0' || sw)
            abort();
        return 0;
    }
    if (sw->nruns < 1 || sw->nruns > QAT_SWEEP_MAX_RUNS)
        abort();
    qat_config *cfg = malloc(sizeof *cfg);
    if (!cfg)
        abort();
    for (int i = 0; i < sw->nruns; i++) {
        const qat_sweep_run *r = &sw->runs[i];
        if (!memchr(r->name, '\0', sizeof r->name) || r->name[0] == '\0')
            abort();
        for (int j = 0; j < i; j++)
            if (strcmp(sw->runs[j].name, r->name) == 0)
                abort(); /* two runs would share a folder */
        if (!r->resolved ||
            qat_config_parse(r->resolved, strlen(r->resolved), "resolved", NULL, 0, cfg, &err) !=
                QAT_OK) {
            fprintf(stderr, "run %s: resolved config does not parse: %s\n", r->name, err.msg);
            abort();
        }
    }
    free(cfg);
    (void)qat_sweep_default_jobs(sw, 2);
    qat_sweep_free(sw);
    return 0;
}
