/* qat-sweep: run a grid of training runs (or a per-layer sensitivity sweep)
 * as parallel qat-train processes, then write tables and plots. Thin main
 * over src/sweep. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qat/clock.h"
#include "qat/sweep.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: qat-sweep SWEEP.ini [--set section.key=value]... [--out DIR] [--jobs N]\n"
            "       qat-sweep --sensitivity CONFIG --bits 2,4 [--target weights|activations|both]\n"
            "                 [--set section.key=value]... [--out DIR] [--jobs N]\n"
            "options: --list (print the runs and exit), --no-plots, --quiet, --help\n"
            "\n"
            "Trains every run of the sweep as its own qat-train process (found next to\n"
            "qat-sweep), N at a time, each into DIR/<run>/, then writes DIR/results.csv,\n"
            "DIR/results.md and PNG/SVG plots in DIR/plots/ (gnuplot). Rerunning skips runs\n"
            "that finished with the same resolved config; failed runs are retried.\n"
            "\n"
            "  --set section.key=value  override a config key in every run (repeatable); it\n"
            "                           may not set a key the sweep varies\n"
            "  --out DIR                output folder (default: sweeps/<sweep name>/)\n"
            "  --jobs N                 runs at a time (default: [sweep] jobs, else online\n"
            "                           cores / train.threads, at least 1)\n"
            "  --sensitivity CONFIG     base run, plus one run per conv2d/linear layer and\n"
            "                           bit-width that lowers only that layer\n"
            "  --bits LIST              the low bit-widths, e.g. 2,4 (sensitivity)\n"
            "  --target WHAT            which bits a sensitivity run lowers: weights\n"
            "                           (default), activations or both\n"
            "  --list                   print each run's name and overrides, run nothing\n"
            "  --no-plots               skip gnuplot\n"
            "  --quiet                  no progress lines\n"
            "\n"
            "Exit status: 0 every run finished, 1 some run failed (the others completed) or\n"
            "another error, 2 bad usage or a bad sweep file/config.\n");
}

/* qat-train beside this binary (the build dir, or the install's bin/). */
static void train_exe(const char *argv0, char *buf, size_t n)
{
    char self[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    if (len > 0) {
        self[len] = '\0';
    } else {
        snprintf(self, sizeof self, "%s", argv0);
    }
    char *slash = strrchr(self, '/');
    if (slash)
        snprintf(buf, n, "%.*s/qat-train", (int)(slash - self), self);
    else
        snprintf(buf, n, "qat-train");
}

static int parse_int(const char *s, int lo, int hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || errno || v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

static int parse_bits(const char *s, int *bits, int *n)
{
    *n = 0;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", s);
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        while (*t == ' ')
            t++;
        if (*n == QAT_SWEEP_MAX_BITS || parse_int(t, 0, 64, &bits[*n]))
            return -1;
        (*n)++;
    }
    return *n ? 0 : -1;
}

static void list_runs(const qat_sweep *sw)
{
    printf("%s: %d runs over %s\n", sw->name, sw->nruns, sw->base);
    for (int i = 0; i < sw->nruns; i++) {
        printf("%s", sw->runs[i].name);
        for (int j = 0; j < sw->runs[i].nsets; j++)
            printf(" %s", sw->runs[i].sets[j]);
        printf("\n");
    }
}

/* Everything but the argument array, which main owns: usage errors return
 * early and must not leak it. */
static int run(int argc, char **argv, const char **sets)
{
    const char *file = NULL, *sens = NULL, *out = NULL, *target = "weights";
    int nsets = 0, jobs = 0, list = 0, plots = 1, quiet = 0, bits[QAT_SWEEP_MAX_BITS], nbits = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        int takes = strcmp(a, "--set") == 0 || strcmp(a, "--out") == 0 ||
                    strcmp(a, "--jobs") == 0 || strcmp(a, "--sensitivity") == 0 ||
                    strcmp(a, "--bits") == 0 || strcmp(a, "--target") == 0;
        if (takes && !val) {
            fprintf(stderr, "qat-sweep: %s needs an argument\n", a);
            return 2;
        }
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--set") == 0) {
            sets[nsets++] = argv[++i];
        } else if (strncmp(a, "--set=", 6) == 0) {
            sets[nsets++] = a + 6;
        } else if (strcmp(a, "--out") == 0) {
            out = argv[++i];
        } else if (strcmp(a, "--jobs") == 0 || strcmp(a, "-j") == 0) {
            if (!val || parse_int(argv[++i], 1, 1024, &jobs)) {
                fprintf(stderr, "qat-sweep: --jobs: expected an integer in [1, 1024], found '%s'\n",
                        val ? val : "");
                return 2;
            }
        } else if (strcmp(a, "--sensitivity") == 0) {
            sens = argv[++i];
        } else if (strcmp(a, "--bits") == 0) {
            if (parse_bits(argv[++i], bits, &nbits)) {
                fprintf(stderr, "qat-sweep: --bits: expected 1 to %d comma-separated bit-widths, "
                        "e.g. 2,4; found '%s'\n", QAT_SWEEP_MAX_BITS, val);
                return 2;
            }
        } else if (strcmp(a, "--target") == 0) {
            target = argv[++i];
        } else if (strcmp(a, "--list") == 0) {
            list = 1;
        } else if (strcmp(a, "--no-plots") == 0) {
            plots = 0;
        } else if (strcmp(a, "--quiet") == 0) {
            quiet = 1;
        } else if (a[0] == '-') {
            fprintf(stderr, "qat-sweep: unknown option '%s' (see --help)\n", a);
            return 2;
        } else if (file) {
            fprintf(stderr, "qat-sweep: more than one sweep file given ('%s' and '%s')\n", file, a);
            return 2;
        } else {
            file = a;
        }
    }
    int tgt = strcmp(target, "weights") == 0       ? QAT_SWEEP_WEIGHTS
              : strcmp(target, "activations") == 0 ? QAT_SWEEP_ACTIVATIONS
              : strcmp(target, "both") == 0        ? QAT_SWEEP_BOTH
                                                   : -1;
    const char *problem = NULL;
    if (file && sens)
        problem = "give either a SWEEP file or --sensitivity CONFIG, not both";
    else if (!file && !sens)
        problem = "missing SWEEP file (or --sensitivity CONFIG)";
    else if (sens && !nbits)
        problem = "--sensitivity needs --bits, e.g. --bits 2,4";
    else if (!sens && nbits)
        problem = "--bits only goes with --sensitivity";
    else if (tgt < 0)
        problem = "--target: expected weights, activations or both";
    if (problem) {
        fprintf(stderr, "qat-sweep: %s\n", problem);
        usage(stderr);
        return 2;
    }

    qat_error err;
    qat_error_clear(&err);
    qat_sweep *sw = NULL;
    qat_status st = sens ? qat_sweep_sensitivity(sens, bits, nbits, tgt, sets, nsets, &sw, &err)
                         : qat_sweep_load(file, sets, nsets, &sw, &err);
    if (st != QAT_OK) {
        fprintf(stderr, "qat-sweep: error: %s\n", err.msg);
        return qat_status_exit_code(st);
    }
    if (list) {
        list_runs(sw);
        qat_sweep_free(sw);
        return 0;
    }
    char dir[4096], exe[PATH_MAX + 16];
    if (out)
        snprintf(dir, sizeof dir, "%s", out);
    else
        snprintf(dir, sizeof dir, "sweeps/%s", sw->name);
    train_exe(argv[0], exe, sizeof exe);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    qat_sweep_opts o = {
        .out_dir = dir,
        .train_exe = exe,
        .jobs = jobs ? jobs : sw->jobs ? sw->jobs : qat_sweep_default_jobs(sw, (int)cores),
        .log = quiet ? NULL : stderr,
    };
    qat_sweep_outcome *res = calloc((size_t)sw->nruns, sizeof *res);
    double t0 = qat_clock_seconds();
    if (!res)
        st = qat_fail(&err, QAT_ENOMEM, "out of memory");
    if (st == QAT_OK)
        st = qat_sweep_execute(sw, &o, res, &err);
    if (st == QAT_OK)
        st = qat_sweep_write_tables(sw, res, dir, &err);
    if (st == QAT_OK && plots) {
        qat_error pe;
        /* the tables are the result; a plot problem is reported, not fatal */
        if (qat_sweep_write_plots(sw, res, dir, "gnuplot", o.log, &pe) != QAT_OK)
            fprintf(stderr, "qat-sweep: warning: no plots: %s\n", pe.msg);
    }
    int failed = 0, n[4] = {0};
    if (st == QAT_OK) {
        for (int i = 0; i < sw->nruns; i++) {
            n[res[i].status & 3]++;
            failed += res[i].status == QAT_RUN_FAILED;
        }
        if (!quiet)
            fprintf(stderr,
                    "qat-sweep: done in %.1fs: %d ok, %d cached, %d failed; results in "
                    "%s/results.md and results.csv\n",
                    qat_clock_seconds() - t0, n[QAT_RUN_OK], n[QAT_RUN_CACHED], n[QAT_RUN_FAILED], dir);
    } else {
        fprintf(stderr, "qat-sweep: error: %s\n", err.msg);
    }
    free(res);
    qat_sweep_free(sw);
    if (st != QAT_OK)
        return qat_status_exit_code(st);
    return failed ? 1 : 0;
}

int main(int argc, char **argv)
{
    const char **sets = calloc((size_t)argc + 1, sizeof *sets);
    if (!sets)
        return 1;
    int rc = run(argc, argv, sets);
    free(sets);
    return rc;
}
