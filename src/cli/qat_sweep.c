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
            "       qat-sweep --sensitivity CONFIG --target float [--set ...] [--out DIR] [--jobs N]\n"
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
            "                           (default), activations or both; or float: one run\n"
            "                           per layer kept in float32 (no --bits), ranked by\n"
            "                           accuracy gained per extra model byte\n"
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

/* The command line, parsed. */
typedef struct args {
    const char *file, *sens, *out, *target;
    const char **sets; /* main owns the array */
    int nsets, jobs, list, plots, quiet;
    int tgt; /* QAT_SWEEP_WEIGHTS / ACTIVATIONS / BOTH / FLOAT, from target */
    int bits[QAT_SWEEP_MAX_BITS], nbits;
} args;

/* What the options say together (each alone was checked while parsing):
 * -1 when they fit, else 2 after saying why and the usage on stderr. */
static int check_args(args *a)
{
    a->tgt = strcmp(a->target, "weights") == 0       ? QAT_SWEEP_WEIGHTS
             : strcmp(a->target, "activations") == 0 ? QAT_SWEEP_ACTIVATIONS
             : strcmp(a->target, "both") == 0        ? QAT_SWEEP_BOTH
             : strcmp(a->target, "float") == 0       ? QAT_SWEEP_FLOAT
                                                     : -1;
    const char *problem = NULL;
    if (a->file && a->sens)
        problem = "give either a SWEEP file or --sensitivity CONFIG, not both";
    else if (!a->file && !a->sens)
        problem = "missing SWEEP file (or --sensitivity CONFIG)";
    else if (a->tgt < 0)
        problem = "--target: expected weights, activations, both or float";
    else if (a->sens && a->tgt == QAT_SWEEP_FLOAT && a->nbits)
        problem = "--bits does not go with --target float (it keeps whole layers in float)";
    else if (a->sens && !a->nbits && a->tgt != QAT_SWEEP_FLOAT)
        problem = "--sensitivity needs --bits, e.g. --bits 2,4 (or --target float)";
    else if (!a->sens && a->nbits)
        problem = "--bits only goes with --sensitivity";
    if (!problem)
        return -1;
    fprintf(stderr, "qat-sweep: %s\n", problem);
    usage(stderr);
    return 2;
}

/* Fills a from argv: -1 to go on, else the exit code (0 after --help, 2
 * after saying what is wrong with the usage). */
static int parse_args(int argc, char **argv, args *a)
{
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        int takes = strcmp(arg, "--set") == 0 || strcmp(arg, "--out") == 0 ||
                    strcmp(arg, "--jobs") == 0 || strcmp(arg, "--sensitivity") == 0 ||
                    strcmp(arg, "--bits") == 0 || strcmp(arg, "--target") == 0;
        if (takes && !val) {
            fprintf(stderr, "qat-sweep: %s needs an argument\n", arg);
            return 2;
        }
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(arg, "--set") == 0) {
            a->sets[a->nsets++] = argv[++i];
        } else if (strncmp(arg, "--set=", 6) == 0) {
            a->sets[a->nsets++] = arg + 6;
        } else if (strcmp(arg, "--out") == 0) {
            a->out = argv[++i];
        } else if (strcmp(arg, "--jobs") == 0 || strcmp(arg, "-j") == 0) {
            if (!val || parse_int(argv[++i], 1, 1024, &a->jobs)) {
                fprintf(stderr, "qat-sweep: --jobs: expected an integer in [1, 1024], found '%s'\n",
                        val ? val : "");
                return 2;
            }
        } else if (strcmp(arg, "--sensitivity") == 0) {
            a->sens = argv[++i];
        } else if (strcmp(arg, "--bits") == 0) {
            if (parse_bits(argv[++i], a->bits, &a->nbits)) {
                fprintf(stderr, "qat-sweep: --bits: expected 1 to %d comma-separated bit-widths, "
                        "e.g. 2,4; found '%s'\n", QAT_SWEEP_MAX_BITS, val);
                return 2;
            }
        } else if (strcmp(arg, "--target") == 0) {
            a->target = argv[++i];
        } else if (strcmp(arg, "--list") == 0) {
            a->list = 1;
        } else if (strcmp(arg, "--no-plots") == 0) {
            a->plots = 0;
        } else if (strcmp(arg, "--quiet") == 0) {
            a->quiet = 1;
        } else if (arg[0] == '-') {
            fprintf(stderr, "qat-sweep: unknown option '%s' (see --help)\n", arg);
            return 2;
        } else if (a->file) {
            fprintf(stderr, "qat-sweep: more than one sweep file given ('%s' and '%s')\n", a->file,
                    arg);
            return 2;
        } else {
            a->file = arg;
        }
    }
    return check_args(a);
}

/* Trains every run of sw, writes the tables and plots, says how it went;
 * returns the exit code. */
static int sweep_all(const args *a, const qat_sweep *sw, const char *argv0, qat_dist *d)
{
    int lead = qat_dist_rank(d) == 0; /* rank 0 speaks and writes the tables */
    char dir[4096], exe[PATH_MAX + 16];
    if (a->out)
        snprintf(dir, sizeof dir, "%s", a->out);
    else
        snprintf(dir, sizeof dir, "sweeps/%s", sw->name);
    train_exe(argv0, exe, sizeof exe);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    qat_sweep_opts o = {
        .out_dir = dir,
        .train_exe = exe,
        .jobs = a->jobs ? a->jobs : sw->jobs ? sw->jobs : qat_sweep_default_jobs(sw, (int)cores),
        .log = a->quiet || !lead ? NULL : stderr,
    };
    qat_error err;
    qat_error_clear(&err);
    qat_status st = QAT_OK;
    qat_sweep_outcome *res = calloc((size_t)sw->nruns, sizeof *res);
    double t0 = qat_clock_seconds();
    if (!res)
        st = qat_fail(&err, QAT_ENOMEM, "out of memory");
    if (st == QAT_OK)
        st = qat_sweep_execute_ranks(sw, &o, d, res, &err);
    if (!lead) { /* its runs are in rank 0's outcomes */
        free(res);
        return st == QAT_OK ? 0 : qat_status_exit_code(st);
    }
    if (st == QAT_OK)
        st = qat_sweep_write_tables(sw, res, dir, &err);
    if (st == QAT_OK && a->plots) {
        qat_error pe;
        /* the tables are the result; a plot problem is reported, not fatal */
        if (qat_sweep_write_plots(sw, res, dir, "gnuplot", o.log, &pe) != QAT_OK)
            fprintf(stderr, "qat-sweep: warning: no plots: %s\n", pe.msg);
    }
    int n[QAT_RUN_NSTATUS] = {0};
    if (st == QAT_OK) {
        qat_sweep_count_status(res, sw->nruns, n);
        if (!a->quiet)
            fprintf(stderr,
                    "qat-sweep: done in %.1fs: %d ok, %d cached, %d failed; results in "
                    "%s/results.md and results.csv\n",
                    qat_clock_seconds() - t0, n[QAT_RUN_OK], n[QAT_RUN_CACHED], n[QAT_RUN_FAILED],
                    dir);
    } else {
        fprintf(stderr, "qat-sweep: error: %s\n", err.msg);
    }
    free(res);
    if (st != QAT_OK)
        return qat_status_exit_code(st);
    return n[QAT_RUN_FAILED] ? 1 : 0;
}

/* Everything but the argument array, which main owns: usage errors return
 * early and must not leak it. */
static int run(int argc, char **argv, const char **sets, qat_dist *d)
{
    args a = {.sets = sets, .target = "weights", .plots = 1};
    int rc = parse_args(argc, argv, &a);
    if (rc >= 0)
        return rc;
    qat_error err;
    qat_error_clear(&err);
    qat_sweep *sw = NULL;
    qat_status st = a.sens ? qat_sweep_sensitivity(a.sens, a.bits, a.nbits, a.tgt, a.sets, a.nsets,
                                                   &sw, &err)
                           : qat_sweep_load(a.file, a.sets, a.nsets, &sw, &err);
    if (st != QAT_OK) {
        fprintf(stderr, "qat-sweep: error: %s\n", err.msg);
        return qat_status_exit_code(st);
    }
    if (a.list) {
        if (qat_dist_rank(d) == 0)
            list_runs(sw);
        rc = 0;
    } else {
        rc = sweep_all(&a, sw, argv[0], d);
    }
    qat_sweep_free(sw);
    return rc;
}

int main(int argc, char **argv)
{
    /* mpirun -np N qat-sweep: the runs spread over the ranks (src/sweep/ranks.c).
     * The ranks exchange a few bytes per run, so OpenMPI's ob1 messaging
     * (shared memory, TCP) is all they need: with its default UCX layer
     * the start took 0.43 s here instead of 0.22 (measured with mpirun
     * -np 2), a cost every sweep pays. The runs are separate processes
     * without MPI, and a user's own choice (--mca pml, OMPI_MCA_pml)
     * stands. */
    setenv("OMPI_MCA_pml", "ob1", 0);
    qat_dist *d = qat_dist_init(&argc, &argv);
    const char **sets = calloc((size_t)argc + 1, sizeof *sets);
    if (!sets || !d)
        return 1;
    int rc = run(argc, argv, sets, d);
    free(sets);
    /* a sweep's own error (not a failed run: those are outcomes) ends every rank */
    if (rc == 2 && qat_dist_size(d) > 1)
        qat_dist_abort(d, rc);
    qat_dist_finalize(d);
    return rc;
}
