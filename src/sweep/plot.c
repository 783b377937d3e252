/* Sweep plots: data files and gnuplot scripts under <out>/plots/, rendered
 * to PNG and SVG by running gnuplot on them. The scripts use relative paths
 * and stay next to the data, so `cd plots && gnuplot x.gp` redraws a plot. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "qat/fsutil.h"
#include "qat/sweep.h"
#include "sweep_internal.h"

/* Shared look: readable fonts, a grid, no enhanced-text markup (run names
 * hold '_', which enhanced mode would turn into subscripts). */
static void preamble(FILE *f, const char *title)
{
    fprintf(f, "# written by qat-sweep; rerun with: gnuplot %s.gp\n", title);
    fputs("set terminal pngcairo size 1000,640 noenhanced font 'DejaVu Sans,12'\n"
          "set output '__NAME__.png'\n"
          "set grid lc rgb '#d0d0d0'\n"
          "set border lw 1.2\n"
          "set key outside right top box opaque spacing 1.3\n"
          "set datafile missing '?'\n",
          f);
}

/* Every plot is drawn twice: the PNG, then the same commands for an SVG. */
static void epilogue(FILE *f)
{
    fputs("set terminal svg size 1000,640 noenhanced dynamic font 'DejaVu Sans,12'\n"
          "set output '__NAME__.svg'\n"
          "replot\n"
          "unset output\n",
          f);
}

/* gnuplot single-quoted strings only need '' for a quote. */
static void gp_str(FILE *f, const char *s)
{
    fputc('\'', f);
    for (; *s; s++) {
        if (*s == '\'')
            fputc('\'', f);
        fputc(*s == '\n' ? ' ' : *s, f);
    }
    fputc('\'', f);
}

static int ok_run(const qat_sweep_outcome *o)
{
    return (o->status == QAT_RUN_OK || o->status == QAT_RUN_CACHED) && !isnan(o->int8_acc);
}

static int key_index(const qat_sweep *sw, const char *key)
{
    for (int k = 0; k < sw->nkeys; k++)
        if (strcmp(sw->keys[k], key) == 0)
            return k;
    return -1;
}

/* Writes name.gp from a script whose "__NAME__" stands for name. */
static qat_status save_script(const char *dir, const char *name, const char *text, qat_error *err)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s.gp", dir, name);
    FILE *f = fopen(path, "w");
    if (!f)
        return qat_fail(err, QAT_EIO, "%s: cannot write: %s", path, strerror(errno));
    for (const char *p = text; *p;) {
        const char *m = strstr(p, "__NAME__");
        if (!m) {
            fputs(p, f);
            break;
        }
        fwrite(p, 1, (size_t)(m - p), f);
        fputs(name, f);
        p = m + 8;
    }
    if (fclose(f) != 0)
        return qat_fail(err, QAT_EIO, "%s: write failed", path);
    return QAT_OK;
}

/* int8 accuracy vs weight bits: the grid's runs as one line per combination
 * of its other axes (in a W x A grid: one line per activation bit-width);
 * explicit runs as labelled points. */
static int plot_bits(const qat_sweep *sw, const qat_sweep_outcome *o, FILE *data, FILE *gp)
{
    int wk = key_index(sw, "quant.weight_bits");
    int ak = key_index(sw, "quant.activation_bits");
    if (wk < 0)
        return 0;
    int n = sw->nruns, ngroups = 0, lined = wk < sw->ngrid_keys ? sw->ngrid_runs : 0;
    int *group = calloc((size_t)n + 1, sizeof *group), *first = calloc((size_t)n + 1, sizeof *first);
    if (!group || !first) {
        free(group), free(first);
        return 0;
    }
    /* group g = grid runs whose other axes all match run first[g] */
    for (int i = 0; i < lined; i++) {
        group[i] = -1;
        for (int g = 0; g < ngroups && group[i] < 0; g++) {
            int same = 1;
            for (int k = 0; k < sw->ngrid_keys && same; k++)
                same = k == wk || strcmp(sw->runs[i].values[k], sw->runs[first[g]].values[k]) == 0;
            if (same)
                group[i] = g;
        }
        if (group[i] < 0) {
            first[ngroups] = i;
            group[i] = ngroups++;
        }
    }
    int only_a = sw->ngrid_keys == 2 && ak >= 0 && ak < 2;
    const char *ml = qat_sweep_metric_of(o, n)->label;
    fprintf(gp, "set title 'int8 test %s vs weight bit-width'\n"
            "set xlabel 'weight bits'\nset ylabel 'int8 test %s (%%)'\n"
            "set offsets 0.4, 0.4, graph 0.08, graph 0.08\n",
            ml, ml);
    if (only_a)
        fputs("set key title 'activations'\n", gp);
    int used[33] = {0};
    for (int i = 0; i < n; i++) {
        int b = atoi(sw->runs[i].values[wk]);
        if (ok_run(&o[i]) && b >= 1 && b <= 32)
            used[b] = 1;
    }
    fputs("set xtics (", gp);
    for (int b = 1, c = 0; b <= 32; b++)
        if (used[b])
            fprintf(gp, "%s%d", c++ ? ", " : "", b);
    fputs(")\nplot ", gp);
    int blocks = 0;
    for (int g = 0; g <= ngroups; g++) {
        int pts = 0, others = g == ngroups;
        /* ascending weight bits, so each line reads left to right */
        for (int b = 1; b <= 32; b++)
            for (int i = others ? lined : 0; i < (others ? n : lined); i++) {
                if ((!others && group[i] != g) || !ok_run(&o[i]) ||
                    atoi(sw->runs[i].values[wk]) != b)
                    continue;
                fprintf(data, "%d %.6f %s\n", b, 100 * o[i].int8_acc, sw->runs[i].name);
                pts++;
            }
        if (!pts)
            continue;
        fputs("\n\n", data);
        const char *sep = blocks ? ", \\\n     " : "";
        if (others) {
            fprintf(gp, "%s'__NAME__.dat' index %d using 1:2 with points pt 5 ps 1.3 lc rgb "
                    "'#555555' title %s, \\\n     '__NAME__.dat' index %d using 1:2:3 with labels "
                    "offset 1,0.6 left font ',10' notitle",
                    sep, blocks, lined ? "'other runs'" : "'runs'", blocks);
            blocks++;
            continue;
        }
        char title[512] = "";
        size_t len = 0;
        for (int k = 0; k < sw->ngrid_keys && len < sizeof title; k++) {
            if (k == wk)
                continue;
            const char *v = sw->runs[first[g]].values[k];
            if (only_a)
                len += (size_t)snprintf(title + len, sizeof title - len, "%s-bit", v);
            else
                len += (size_t)snprintf(title + len, sizeof title - len, "%s%s=%s",
                                        len ? ", " : "", sw->keys[k], v);
        }
        fprintf(gp, "%s'__NAME__.dat' index %d using 1:2 with linespoints lw 2 pt 7 ps 1.3 title ",
                sep, blocks);
        gp_str(gp, title[0] ? title : "grid");
        blocks++;
    }
    /* a method comparison: the float model the PTQ runs quantized, as a level */
    double fa = NAN;
    for (int i = 0; i < n && isnan(fa) && key_index(sw, QAT_SWEEP_METHOD_KEY) >= 0; i++)
        if (ok_run(&o[i]) && !isnan(o[i].float_acc))
            fa = 100 * o[i].float_acc;
    if (blocks && !isnan(fa))
        fprintf(gp, ", \\\n     %.4f with lines dt 2 lw 2 lc rgb '#555555' title 'float model'", fa);
    fputc('\n', gp);
    free(group);
    free(first);
    return blocks;
}

/* int8 accuracy vs int8 model bytes, every run labelled, the Pareto front
 * (no run smaller and at least as accurate) drawn as a line. */
static int plot_bytes(const qat_sweep *sw, const qat_sweep_outcome *o, FILE *data, FILE *gp)
{
    int n = sw->nruns, m = 0;
    double *x = calloc((size_t)n + 1, sizeof *x), *y = calloc((size_t)n + 1, sizeof *y);
    int *front = calloc((size_t)n + 1, sizeof *front), *order = calloc((size_t)n + 1, sizeof *order);
    if (!x || !y || !front || !order)
        goto done;
    for (int i = 0; i < n; i++) {
        x[i] = ok_run(&o[i]) ? o[i].bytes_int8 / 1024.0 : NAN;
        y[i] = ok_run(&o[i]) ? 100 * o[i].int8_acc : NAN;
        m += !isnan(x[i]);
    }
    if (!m)
        goto done;
    qat_sweep_pareto(x, y, n, front);
    /* block 0: all runs; block 1: the front by size. Runs of one size (W3
     * and W4 may store alike) stack up in a column: their labels alternate
     * right and left, by rank from the top, so neighbours do not overlap. */
    for (int i = 0; i < n; i++) {
        if (isnan(x[i]))
            continue;
        int rank = 0;
        for (int j = 0; j < n; j++)
            if (j != i && !isnan(x[j]) && fabs(x[j] - x[i]) <= 0.01 * x[i] &&
                (y[j] > y[i] || (y[j] == y[i] && j < i)))
                rank++;
        fprintf(data, "%.4f %.6f %s %d\n", x[i], y[i], sw->runs[i].name, rank % 2);
    }
    fputs("\n\n", data);
    int nf = 0;
    for (int i = 0; i < n; i++)
        if (front[i])
            order[nf++] = i;
    for (int a = 1; a < nf; a++)
        for (int b = a; b > 0 && x[order[b]] < x[order[b - 1]]; b--) {
            int t = order[b];
            order[b] = order[b - 1];
            order[b - 1] = t;
        }
    for (int a = 0; a < nf; a++)
        fprintf(data, "%.4f %.6f %s\n", x[order[a]], y[order[a]], sw->runs[order[a]].name);
    const char *ml = qat_sweep_metric_of(o, n)->label;
    fprintf(gp, "set title 'int8 test %s vs int8 model size'\n", ml);
    fprintf(gp, "set ylabel 'int8 test %s (%%)'\n", ml);
    fputs("set xlabel 'int8 model size (KiB of stored integer parameters)'\n"
          "set offsets graph 0.12, graph 0.12, graph 0.08, graph 0.05\n"
          "plot '__NAME__.dat' index 1 using 1:2 with linespoints lw 2.5 lc rgb '#d62728' "
          "pt 6 ps 2.4 title 'Pareto front', \\\n"
          "     '__NAME__.dat' index 0 using 1:2 with points pt 7 ps 1.3 lc rgb '#1f77b4' "
          "title 'runs', \\\n"
          "     '__NAME__.dat' index 0 using 1:($4 == 0 ? $2 : NaN):3 with labels offset 1.2,0 "
          "left font ',10' notitle, \\\n"
          "     '__NAME__.dat' index 0 using 1:($4 == 1 ? $2 : NaN):3 with labels offset -1.2,0 "
          "right font ',10' notitle\n",
          gp);
done:
    free(x), free(y), free(front), free(order);
    return m;
}

/* Accuracy drop (points) per layer, one bar per bit-width. */
static int plot_sensitivity(const qat_sweep *sw, const qat_sweep_outcome *o, FILE *data, FILE *gp)
{
    int b = qat_sweep_base_run(sw);
    if (b < 0 || !ok_run(&o[b]))
        return 0;
    double base = 100 * o[b].int8_acc;
    fputs("layer", data);
    for (int k = 0; k < sw->nbits; k++)
        fprintf(data, " %d-bit", sw->bits[k]);
    fputc('\n', data);
    int rows = 0;
    for (int i = 0; i < sw->nruns; i++) {
        if (i == b || (i > 0 && strcmp(sw->runs[i - 1].layer, sw->runs[i].layer) == 0))
            continue;
        fprintf(data, "%s", sw->runs[i].layer);
        for (int k = 0; k < sw->nbits; k++) {
            int j = i + k;
            if (j < sw->nruns && ok_run(&o[j]))
                fprintf(data, " %.4f", base - 100 * o[j].int8_acc);
            else
                fputs(" ?", data);
        }
        fputc('\n', data);
        rows++;
    }
    const char *ml = qat_sweep_metric_of(o, sw->nruns)->label;
    fprintf(gp, "set title '%s drop when one layer is quantized lower (base %.2f %%)'\n"
            "set xlabel 'layer (the others stay at the base setting)'\n"
            "set ylabel 'int8 %s drop vs base (percentage points)'\n"
            "set style data histograms\nset style histogram clustered gap 1\n"
            "set style fill solid 0.85 border -1\nset boxwidth 0.9\nset key title '%s'\n"
            "set xtics nomirror\nset grid noxtics\nset yrange [*<0:*]\nset xrange [-0.6:%d.4]\n"
            "plot ",
            strcmp(ml, "accuracy") == 0 ? "Accuracy" : ml, base, ml,
            sw->target == QAT_SWEEP_WEIGHTS ? "weights" : sw->target == QAT_SWEEP_ACTIVATIONS
                                                                ? "activations" : "both", rows - 1);
    for (int k = 0; k < sw->nbits; k++)
        fprintf(gp, "%s'__NAME__.dat' using %d:xtic(1) title columnheader(%d)",
                k ? ", \\\n     " : "", k + 2, k + 2);
    fputc('\n', gp);
    return rows;
}

/* A float sweep: the gain (points) of each layer kept in float, in file
 * order, each bar labelled with the bytes it costs. */
static int plot_float_sensitivity(const qat_sweep *sw, const qat_sweep_outcome *o, FILE *data,
                                  FILE *gp)
{
    int b = qat_sweep_base_run(sw);
    if (b < 0 || !ok_run(&o[b]))
        return 0;
    double base = 100 * o[b].int8_acc;
    fputs("# layer, gain (points), extra bytes (labels)\n", data);
    int rows = 0;
    for (int i = 0; i < sw->nruns; i++) {
        if (i == b)
            continue;
        if (ok_run(&o[i]) && !isnan(o[i].bytes_int8) && !isnan(o[b].bytes_int8))
            fprintf(data, "%s %.4f %+.1fKiB\n", sw->runs[i].layer, 100 * o[i].int8_acc - base,
                    (o[i].bytes_int8 - o[b].bytes_int8) / 1024);
        else
            fprintf(data, "%s ? failed\n", sw->runs[i].layer);
        rows++;
    }
    const char *ml = qat_sweep_metric_of(o, sw->nruns)->label;
    fprintf(gp, "set title '%s gain when one layer is kept in float32 (base %.2f %%)'\n"
            "set xlabel 'layer kept in float (the others stay integer; labels: extra bytes)'\n"
            "set ylabel 'int8 %s gain vs base (percentage points)'\n"
            "set style data histograms\nset style histogram clustered gap 1\n"
            "set style fill solid 0.85 border -1\nset boxwidth 0.9\nunset key\n"
            "set xtics nomirror\nset grid noxtics\nset yrange [*<0:0<*]\n"
            "set xrange [-0.6:%d.4]\nset offsets 0, 0, graph 0.1, graph 0.05\n"
            "plot '__NAME__.dat' using 2:xtic(1) lc rgb '#2ca02c', \\\n"
            "     '__NAME__.dat' using 0:($2 >= 0 ? $2 : 0):3 with labels offset 0,0.8 "
            "font ',10'\n",
            strcmp(ml, "accuracy") == 0 ? "Accuracy" : ml, base, ml, rows - 1);
    return rows;
}

/* Runs gnuplot on dir/name.gp with dir as the working directory. */
static qat_status render(const char *dir, const char *name, const char *gnuplot, qat_error *err)
{
    char script[512], logp[4200];
    snprintf(script, sizeof script, "%s.gp", name);
    snprintf(logp, sizeof logp, "%s/%s.log", dir, name);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(logp, O_WRONLY | O_CREAT | O_TRUNC, 0666);
        int in = open("/dev/null", O_RDONLY);
        if (fd < 0 || in < 0 || dup2(in, 0) < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0 ||
            chdir(dir) != 0)
            _exit(126);
        execlp(gnuplot, gnuplot, script, (char *)NULL);
        _exit(errno == ENOENT ? 127 : 126);
    }
    if (pid < 0)
        return qat_fail(err, QAT_EINTERNAL, "fork: %s", strerror(errno));
    int ws;
    while (waitpid(pid, &ws, 0) < 0)
        if (errno != EINTR)
            return qat_fail(err, QAT_EINTERNAL, "waitpid: %s", strerror(errno));
    if (WIFEXITED(ws) && WEXITSTATUS(ws) == 127)
        return qat_fail(err, QAT_EUNSUPPORTED, "'%s' not found: install gnuplot (Debian: "
                        "gnuplot-nox) and rerun, or run the scripts in %s/ by hand", gnuplot, dir);
    if (!WIFEXITED(ws) || WEXITSTATUS(ws) != 0)
        return qat_fail(err, QAT_EINTERNAL, "gnuplot failed on %s/%s (messages in %s)", dir,
                        script, logp);
    unlink(logp);
    return QAT_OK;
}

typedef int (*plot_fn)(const qat_sweep *, const qat_sweep_outcome *, FILE *, FILE *);

static qat_status one_plot(const qat_sweep *sw, const qat_sweep_outcome *o, const char *dir,
                           const char *name, const char *title, plot_fn fn, const char *gnuplot,
                           FILE *log, qat_error *err)
{
    char dp[4200];
    snprintf(dp, sizeof dp, "%s/%s.dat", dir, name);
    FILE *data = fopen(dp, "w");
    char *text = NULL;
    size_t len = 0;
    FILE *gp = open_memstream(&text, &len);
    if (!data || !gp) {
        if (data)
            fclose(data);
        if (gp)
            fclose(gp);
        free(text);
        return qat_fail(err, QAT_EIO, "%s: cannot write: %s", dp, strerror(errno));
    }
    preamble(gp, name);
    int drawn = fn(sw, o, data, gp);
    epilogue(gp);
    fclose(gp);
    int bad = fclose(data) != 0;
    qat_status st = QAT_OK;
    if (bad)
        st = qat_fail(err, QAT_EIO, "%s: write failed", dp);
    else if (!drawn) {
        if (log)
            fprintf(log, "qat-sweep: no %s plot (%s)\n", name, title);
    } else if ((st = save_script(dir, name, text, err)) == QAT_OK && gnuplot) {
        st = render(dir, name, gnuplot, err);
    }
    free(text);
    return st;
}

qat_status qat_sweep_write_plots(const qat_sweep *sw, const qat_sweep_outcome *o,
                                 const char *dir, const char *gnuplot, FILE *log,
                                 qat_error *err)
{
    char pd[4200];
    snprintf(pd, sizeof pd, "%s/plots", dir);
    qat_status st = qat_mkdir_p(pd, err);
    if (st != QAT_OK)
        return st;
    if (sw->kind == QAT_SWEEP_SENSITIVITY)
        st = one_plot(sw, o, pd, "sensitivity", "the base run failed",
                      sw->target == QAT_SWEEP_FLOAT ? plot_float_sensitivity : plot_sensitivity,
                      gnuplot, log, err);
    else
        st = one_plot(sw, o, pd, "accuracy_vs_bits",
                      "quant.weight_bits is not varied, or no run finished", plot_bits, gnuplot,
                      log, err);
    if (st != QAT_OK)
        return st;
    return one_plot(sw, o, pd, "accuracy_vs_bytes", "no quantized run finished", plot_bytes,
                    gnuplot, log, err);
}
