/* Sweep tables: results.csv / results.md, and for a sensitivity sweep the
 * accuracy drop per layer and bit-width. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "qat/fsutil.h"
#include "qat/sweep.h"
#include "sweep_internal.h"

int qat_sweep_pareto(const double *x, const double *y, int n, int *front)
{
    int count = 0;
    for (int i = 0; i < n; i++) {
        front[i] = !isnan(x[i]) && !isnan(y[i]);
        for (int j = 0; front[i] && j < n; j++) {
            if (j == i || isnan(x[j]) || isnan(y[j]))
                continue;
            if (x[j] <= x[i] && y[j] >= y[i] && (x[j] < x[i] || y[j] > y[i]))
                front[i] = 0;
        }
        count += front[i];
    }
    return count;
}

/* The accuracy a run is judged by: int8 when quantized, else float. */
static double judged(const qat_sweep_outcome *o)
{
    return isnan(o->int8_acc) ? o->float_acc : o->int8_acc;
}

static int usable(const qat_sweep_outcome *o)
{
    return o->status == QAT_RUN_OK || o->status == QAT_RUN_CACHED;
}

static void csv_field(FILE *f, const char *s)
{
    if (!strpbrk(s, ",\"\n\r")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', f);
        fputc(*s == '\n' || *s == '\r' ? ' ' : *s, f);
    }
    fputc('"', f);
}

static void csv_num(FILE *f, const char *fmt, double v)
{
    fputc(',', f);
    if (!isnan(v))
        fprintf(f, fmt, v);
}

static void md_text(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '|')
            fputc('\\', f);
        fputc(*s == '\n' ? ' ' : *s, f);
    }
}

static void md_num(FILE *f, const char *fmt, double v)
{
    fputs(" | ", f);
    if (isnan(v))
        fputs("–", f);
    else
        fprintf(f, fmt, v);
}

/* A table file dir/name, written atomically: open_out, then close_out. */
typedef struct out_file {
    char path[4200];
    qat_atomic a;
} out_file;

static FILE *open_out(out_file *o, const char *dir, const char *name, qat_error *err)
{
    snprintf(o->path, sizeof o->path, "%s/%s", dir, name);
    FILE *f;
    return qat_atomic_fopen(&o->a, o->path, &f, err) == QAT_OK ? f : NULL;
}

static qat_status close_out(out_file *o, FILE *f, qat_error *err)
{
    return qat_atomic_fclose(&o->a, f, err);
}

static void pareto_of(const qat_sweep *sw, const qat_sweep_outcome *o, int *front)
{
    double *x = calloc((size_t)sw->nruns + 1, sizeof *x), *y = calloc((size_t)sw->nruns + 1, sizeof *y);
    if (!x || !y) {
        memset(front, 0, (size_t)sw->nruns * sizeof *front);
    } else {
        for (int i = 0; i < sw->nruns; i++) {
            x[i] = usable(&o[i]) ? o[i].bytes_int8 : NAN;
            y[i] = usable(&o[i]) ? o[i].int8_acc : NAN;
        }
        qat_sweep_pareto(x, y, sw->nruns, front);
    }
    free(x);
    free(y);
}

static qat_status write_csv(const qat_sweep *sw, const qat_sweep_outcome *o, const int *front,
                            const char *dir, qat_error *err)
{
    out_file out;
    FILE *f = open_out(&out, dir, "results.csv", err);
    if (!f)
        return err ? err->status : QAT_EIO;
    fputs("run", f);
    if (sw->kind == QAT_SWEEP_SENSITIVITY)
        fputs(",layer,bits", f);
    for (int k = 0; k < sw->nkeys; k++) {
        fputc(',', f);
        csv_field(f, sw->keys[k]);
    }
    const char *mk = qat_sweep_metric_of(o, sw->nruns)->key;
    fprintf(f, ",status,float_%s,fakequant_%s,int8_%s,agreement,model_bytes_int8,"
            "sparsity,train_seconds,ptq_seconds,pareto,exit,error\n", mk, mk, mk);
    for (int i = 0; i < sw->nruns; i++) {
        const qat_sweep_run *r = &sw->runs[i];
        csv_field(f, r->name);
        if (sw->kind == QAT_SWEEP_SENSITIVITY) {
            fputc(',', f);
            csv_field(f, r->layer);
            fputc(',', f);
            if (r->bits)
                fprintf(f, "%d", r->bits);
        }
        for (int k = 0; k < sw->nkeys; k++) {
            fputc(',', f);
            csv_field(f, r->values[k]);
        }
        fprintf(f, ",%s", qat_sweep_status_name(o[i].status));
        csv_num(f, "%.6g", o[i].float_acc);
        csv_num(f, "%.6g", o[i].fq_acc);
        csv_num(f, "%.6g", o[i].int8_acc);
        csv_num(f, "%.6g", o[i].agreement);
        csv_num(f, "%.0f", o[i].bytes_int8);
        csv_num(f, "%.6g", o[i].sparsity);
        csv_num(f, "%.3f", o[i].train_seconds);
        csv_num(f, "%.3f", o[i].ptq_seconds);
        fprintf(f, ",%d,", front[i]);
        csv_field(f, o[i].exit_desc);
        fputc(',', f);
        csv_field(f, o[i].error);
        fputc('\n', f);
    }
    return close_out(&out, f, err);
}

static void md_counts(FILE *f, const qat_sweep *sw, const qat_sweep_outcome *o)
{
    int n[QAT_RUN_NSTATUS];
    qat_sweep_count_status(o, sw->nruns, n);
    fprintf(f, "%d runs: %d ok, %d cached (finished earlier), %d failed.\n\n", sw->nruns,
            n[QAT_RUN_OK], n[QAT_RUN_CACHED], n[QAT_RUN_FAILED]);
}

static void md_failures(FILE *f, const qat_sweep *sw, const qat_sweep_outcome *o)
{
    int any = 0;
    for (int i = 0; i < sw->nruns; i++) {
        if (o[i].status != QAT_RUN_FAILED)
            continue;
        if (!any++)
            fputs("\nFailed runs (stderr in `<run>/stderr.log`):\n\n", f);
        fprintf(f, "* `%s` (%s): ", sw->runs[i].name, o[i].exit_desc);
        md_text(f, o[i].error);
        fputc('\n', f);
    }
}

static void md_cell(FILE *f, double v) /* " 99.12 |" */
{
    if (isnan(v))
        fputs(" – |", f);
    else
        fprintf(f, " %.2f |", v);
}

/* With [methods]: the grid's points as rows, the methods side by side (the
 * main metric of the int8 model, or the float one for a run without
 * quantization), and the float model's where a run measured it (mode = ptq
 * does). */
static void md_methods(FILE *f, const qat_sweep *sw, const qat_sweep_outcome *o)
{
    const qat_sweep_metric *mt = qat_sweep_metric_of(o, sw->nruns);
    int mk = -1;
    for (int k = 0; k < sw->ngrid_keys; k++)
        if (strcmp(sw->keys[k], QAT_SWEEP_METHOD_KEY) == 0)
            mk = k;
    if (mk < 0)
        return;
    int n = sw->ngrid_runs, nm = 0, fl = 0;
    int *col = calloc((size_t)n + 1, sizeof *col), *mrun = calloc((size_t)n + 1, sizeof *mrun);
    if (!col || !mrun) {
        free(col), free(mrun);
        return;
    }
    for (int i = 0; i < n; i++) { /* methods in order of first appearance */
        col[i] = -1;
        for (int m = 0; m < nm && col[i] < 0; m++)
            if (strcmp(sw->runs[mrun[m]].values[mk], sw->runs[i].values[mk]) == 0)
                col[i] = m;
        if (col[i] < 0) {
            mrun[nm] = i;
            col[i] = nm++;
        }
        fl |= usable(&o[i]) && !isnan(o[i].float_acc);
    }
    fprintf(f,
            "\n## Methods side by side\n\nTest %s (%s) of each method's integer model "
            "(float runs: their float %s)",
            mt->label, mt->md, mt->label);
    fputs(fl ? "; float: the float model the PTQ runs quantized.\n\n|" : ".\n\n|", f);
    for (int k = 0; k < sw->ngrid_keys; k++)
        if (k != mk)
            fprintf(f, " %s |", sw->keys[k]);
    if (fl)
        fputs(" float |", f);
    for (int m = 0; m < nm; m++) {
        fputc(' ', f);
        md_text(f, sw->runs[mrun[m]].values[mk]);
        fputs(" |", f);
    }
    fputs("\n|", f);
    for (int k = 0; k < sw->ngrid_keys + fl + nm - 1; k++)
        fputs(k < sw->ngrid_keys - 1 ? "---|" : "---:|", f);
    fputc('\n', f);
    for (int i = 0; i < n; i += nm) { /* the method is the fastest axis: nm runs a row */
        fputc('|', f);
        for (int k = 0; k < sw->ngrid_keys; k++)
            if (k != mk) {
                fputc(' ', f);
                md_text(f, sw->runs[i].values[k]);
                fputs(" |", f);
            }
        double fa = NAN;
        for (int j = i; j < i + nm && j < n; j++)
            if (usable(&o[j]) && !isnan(o[j].float_acc) && isnan(fa))
                fa = o[j].float_acc;
        if (fl)
            md_cell(f, 100 * fa);
        for (int j = i; j < i + nm && j < n; j++) {
            if (usable(&o[j]))
                md_cell(f, 100 * judged(&o[j]));
            else
                fputs(" failed |", f);
        }
        fputc('\n', f);
    }
    free(col);
    free(mrun);
}

static qat_status write_md(const qat_sweep *sw, const qat_sweep_outcome *o, const int *front,
                           const char *dir, qat_error *err)
{
    out_file out;
    FILE *f = open_out(&out, dir, "results.md", err);
    if (!f)
        return err ? err->status : QAT_EIO;
    fprintf(f, "# Sweep `%s`\n\nBase config `%s`. ", sw->name, sw->base);
    md_counts(f, sw, o);
    /* optional columns: only when some run has the value */
    int sparsity = 0, fl = 0, ptq = 0;
    for (int i = 0; i < sw->nruns; i++) {
        sparsity |= !isnan(o[i].sparsity);
        fl |= !isnan(o[i].float_acc);
        ptq |= !isnan(o[i].ptq_seconds);
    }
    fputs("| run", f);
    if (sw->kind == QAT_SWEEP_SENSITIVITY)
        fputs(" | layer | bits", f);
    for (int k = 0; k < sw->nkeys; k++)
        fprintf(f, " | %s", sw->keys[k]);
    const qat_sweep_metric *mt = qat_sweep_metric_of(o, sw->nruns);
    fprintf(f, " | status%s%s | fake-quant %s | int8 %s | agreement %% | int8 bytes%s | "
            "%s s | Pareto |\n|---", fl ? " | float " : "", fl ? mt->md : "", mt->md, mt->md,
            sparsity ? " | sparsity %" : "", ptq ? "train / PTQ" : "train");
    for (int k = 0; k < sw->nkeys + (sw->kind == QAT_SWEEP_SENSITIVITY ? 2 : 0); k++)
        fputs("|---", f);
    fprintf(f, "|---|%s---:|---:|---:|---:|%s---:|:---:|\n", fl ? "---:|" : "",
            sparsity ? "---:|" : "");
    for (int i = 0; i < sw->nruns; i++) {
        const qat_sweep_run *r = &sw->runs[i];
        fputs("| ", f);
        md_text(f, r->name);
        if (sw->kind == QAT_SWEEP_SENSITIVITY)
            fprintf(f, " | %s | %s", r->layer[0] ? r->layer : "(base)", "");
        if (sw->kind == QAT_SWEEP_SENSITIVITY && r->bits)
            fprintf(f, "%d", r->bits);
        for (int k = 0; k < sw->nkeys; k++) {
            fputs(" | ", f);
            md_text(f, r->values[k]);
        }
        fprintf(f, " | %s", qat_sweep_status_name(o[i].status));
        if (fl)
            md_num(f, "%.2f", 100 * o[i].float_acc);
        md_num(f, "%.2f", 100 * o[i].fq_acc);
        md_num(f, "%.2f", 100 * o[i].int8_acc);
        md_num(f, "%.2f", 100 * o[i].agreement);
        md_num(f, "%.0f", o[i].bytes_int8);
        if (sparsity)
            md_num(f, "%.1f", 100 * o[i].sparsity);
        md_num(f, "%.1f", isnan(o[i].train_seconds) ? o[i].ptq_seconds : o[i].train_seconds);
        fprintf(f, " | %s |\n", front[i] ? "yes" : "");
    }
    md_methods(f, sw, o);
    md_failures(f, sw, o);
    fputs("\nPlots: ", f);
    if (sw->kind == QAT_SWEEP_SENSITIVITY && sw->target == QAT_SWEEP_FLOAT)
        fprintf(f, "[%s gain per layer kept in float](plots/sensitivity.png), ", mt->label);
    else if (sw->kind == QAT_SWEEP_SENSITIVITY)
        fprintf(f, "[%s drop per layer](plots/sensitivity.png), ", mt->label);
    else
        fprintf(f, "[int8 %s vs weight bits](plots/accuracy_vs_bits.png), ", mt->label);
    fprintf(f, "[int8 %s vs model bytes](plots/accuracy_vs_bytes.png).\n", mt->label);
    return close_out(&out, f, err);
}

static qat_status write_sensitivity(const qat_sweep *sw, const qat_sweep_outcome *o,
                                    const char *dir, qat_error *err)
{
    int b = qat_sweep_base_run(sw);
    double base = b >= 0 && usable(&o[b]) ? judged(&o[b]) : NAN;
    static const char *const tag[] = {"W", "A", "W+A"};
    const char *t = tag[sw->target < 0 || sw->target > 2 ? 0 : sw->target];
    out_file out;
    FILE *f = open_out(&out, dir, "sensitivity.csv", err);
    if (!f)
        return err ? err->status : QAT_EIO;
    const qat_sweep_metric *mt = qat_sweep_metric_of(o, sw->nruns);
    fprintf(f, "layer,bits,status,int8_%s,base_int8_%s,drop_points\n", mt->key, mt->key);
    for (int i = 0; i < sw->nruns; i++) {
        if (i == b)
            continue;
        double acc = usable(&o[i]) ? judged(&o[i]) : NAN;
        fprintf(f, "%s,%d,%s", sw->runs[i].layer, sw->runs[i].bits,
                qat_sweep_status_name(o[i].status));
        csv_num(f, "%.6g", acc);
        csv_num(f, "%.6g", base);
        csv_num(f, "%.2f", 100 * (base - acc));
        fputc('\n', f);
    }
    qat_status st = close_out(&out, f, err);
    if (st != QAT_OK || !(f = open_out(&out, dir, "sensitivity.md", err)))
        return st != QAT_OK ? st : err ? err->status : QAT_EIO;
    fprintf(f, "# Sensitivity of `%s`\n\nEach run lowers one layer's %s bits and keeps every "
            "other layer at the base setting. Cells: %s drop vs the base run in "
            "percentage points (%s x 100 in brackets); base %s ", sw->base,
            sw->target == QAT_SWEEP_WEIGHTS ? "weight" : sw->target == QAT_SWEEP_ACTIVATIONS
                                                             ? "activation" : "weight and activation",
            mt->label, mt->label, mt->label);
    if (isnan(base))
        fputs("unknown (the base run failed).\n\n| layer", f);
    else
        fprintf(f, "%.2f %%.\n\n| layer", 100 * base);
    for (int k = 0; k < sw->nbits; k++)
        fprintf(f, " | %s%d", t, sw->bits[k]);
    fputs(" |\n|---", f);
    for (int k = 0; k < sw->nbits; k++)
        fputs("|---:", f);
    fputs("|\n", f);
    /* runs come layer by layer, bits in --bits order */
    for (int i = 0; i < sw->nruns; i++) {
        if (i == b || (i > 0 && strcmp(sw->runs[i - 1].layer, sw->runs[i].layer) == 0))
            continue;
        fprintf(f, "| %s", sw->runs[i].layer);
        for (int k = 0; k < sw->nbits; k++) {
            int j = i + k;
            double acc = j < sw->nruns && usable(&o[j]) ? judged(&o[j]) : NAN;
            if (isnan(acc))
                fputs(" | failed", f);
            else if (isnan(base))
                fprintf(f, " | (%.2f)", 100 * acc);
            else
                fprintf(f, " | %.2f (%.2f)", 100 * (base - acc), 100 * acc);
        }
        fputs(" |\n", f);
    }
    md_failures(f, sw, o);
    fprintf(f, "\nPlot: [%s drop per layer](plots/sensitivity.png).\n", mt->label);
    return close_out(&out, f, err);
}

/* Ties of the suggestion: the same gain and bytes (the same gain per byte
 * up to rounding is not a tie worth naming). */
static int rank_value_eq(const qat_sweep_float_gain *a, const qat_sweep_float_gain *b)
{
    return a->gain_points == b->gain_points && a->extra_bytes == b->extra_bytes;
}

/* The float sweep's md: the ranked table, then the suggestion in words. */
static void float_md(FILE *f, const qat_sweep *sw, const qat_sweep_outcome *o,
                     const qat_sweep_float_gain *g, int n, int b)
{
    const qat_sweep_metric *mt = qat_sweep_metric_of(o, sw->nruns);
    fprintf(f, "# Float sensitivity of `%s`\n\nEach run keeps one layer in float32 "
            "(`quantize = false`) and every other layer as in the base run. Gain: int8 %s "
            "vs the base run in percentage points; extra bytes: stored model bytes vs the "
            "base run's (float32 weights and bias instead of integer codes); ranked by gain "
            "per KiB. Base int8 %s ", sw->base, mt->label, mt->label);
    if (b >= 0 && usable(&o[b]) && !isnan(o[b].int8_acc))
        fprintf(f, "%.2f %% at %.0f bytes.\n\n", 100 * o[b].int8_acc, o[b].bytes_int8);
    else
        fputs("unknown (the base run failed).\n\n", f);
    fprintf(f, "| rank | layer | int8 %s | gain (points) | extra bytes | points per KiB |\n"
            "|---:|---|---:|---:|---:|---:|\n", mt->md);
    for (int i = 0; i < n; i++) {
        fprintf(f, "| %s", g[i].rank ? "" : "–");
        if (g[i].rank)
            fprintf(f, "%d", g[i].rank);
        fputs(" | ", f);
        md_text(f, sw->runs[g[i].run].layer);
        if (isnan(g[i].metric)) {
            fputs(" | failed | – | – | – |\n", f);
            continue;
        }
        md_num(f, "%.2f", 100 * g[i].metric);
        md_num(f, "%+.2f", g[i].gain_points);
        md_num(f, "%+.0f", g[i].extra_bytes);
        md_num(f, "%+.3g", g[i].points_per_kib); /* %g: a big layer's tiny loss is not 0 */
        fputs(" |\n", f);
    }
    /* the suggestion: the best gain per byte among the layers that gain */
    if (n == 0 || !g[0].rank) {
        fputs("\nNo suggestion: the base run or every layer's run failed.\n", f);
    } else if (!(g[0].gain_points > 0)) {
        fprintf(f, "\nNo layer gains: keeping any one layer in float does not raise the int8 "
                "%s over the base run, so none is worth its bytes.\n", mt->label);
    } else {
        fputs("\nSuggested: keep ", f);
        int k = 0;
        for (int i = 0; i < n && g[i].rank && g[i].gain_points > 0 &&
                        (i == 0 || rank_value_eq(&g[i], &g[0]));
             i++, k++) {
            fputs(k ? " and `" : "`", f);
            md_text(f, sw->runs[g[i].run].layer);
            fputc('`', f);
        }
        fprintf(f, " in float: %+.2f points of int8 %s for %+.0f bytes", g[0].gain_points,
                mt->label, g[0].extra_bytes);
        if (!isnan(g[0].points_per_kib))
            fprintf(f, " (%.3g points per KiB)", g[0].points_per_kib);
        fprintf(f, "%s.\n", k > 1 ? " each (a tie)" : "");
    }
}

/* sensitivity.csv / .md of a float sweep (--target float): one row per
 * layer, ranked by gain per extra byte. */
static qat_status write_float_sensitivity(const qat_sweep *sw, const qat_sweep_outcome *o,
                                          const char *dir, qat_error *err)
{
    int b = qat_sweep_base_run(sw);
    double base = b >= 0 && usable(&o[b]) ? o[b].int8_acc : NAN;
    qat_sweep_float_gain *g = calloc((size_t)sw->nruns + 1, sizeof *g);
    if (!g)
        return qat_fail(err, QAT_ENOMEM, "out of memory");
    int n = qat_sweep_float_ranking(sw, o, g);
    out_file out;
    FILE *f = open_out(&out, dir, "sensitivity.csv", err);
    if (!f) {
        free(g);
        return err ? err->status : QAT_EIO;
    }
    const qat_sweep_metric *mt = qat_sweep_metric_of(o, sw->nruns);
    fprintf(f, "layer,status,int8_%s,base_int8_%s,gain_points,extra_bytes,gain_points_per_kib,"
            "rank\n", mt->key, mt->key);
    for (int i = 0; i < n; i++) {
        csv_field(f, sw->runs[g[i].run].layer);
        fprintf(f, ",%s", qat_sweep_status_name(o[g[i].run].status));
        csv_num(f, "%.6g", g[i].metric);
        csv_num(f, "%.6g", base);
        csv_num(f, "%.4f", g[i].gain_points);
        csv_num(f, "%.0f", g[i].extra_bytes);
        csv_num(f, "%.6g", g[i].points_per_kib);
        fputc(',', f);
        if (g[i].rank)
            fprintf(f, "%d", g[i].rank);
        fputc('\n', f);
    }
    qat_status st = close_out(&out, f, err);
    if (st == QAT_OK && !(f = open_out(&out, dir, "sensitivity.md", err)))
        st = err ? err->status : QAT_EIO;
    if (st == QAT_OK) {
        float_md(f, sw, o, g, n, b);
        md_failures(f, sw, o);
        fprintf(f, "\nPlot: [%s gain per layer kept in float](plots/sensitivity.png).\n",
                mt->label);
        st = close_out(&out, f, err);
    }
    free(g);
    return st;
}

qat_status qat_sweep_write_tables(const qat_sweep *sw, const qat_sweep_outcome *o,
                                  const char *dir, qat_error *err)
{
    int *front = calloc((size_t)sw->nruns + 1, sizeof *front);
    if (!front)
        return qat_fail(err, QAT_ENOMEM, "out of memory");
    pareto_of(sw, o, front);
    qat_status st = write_csv(sw, o, front, dir, err);
    if (st == QAT_OK)
        st = write_md(sw, o, front, dir, err);
    if (st == QAT_OK && sw->kind == QAT_SWEEP_SENSITIVITY)
        st = sw->target == QAT_SWEEP_FLOAT ? write_float_sensitivity(sw, o, dir, err)
                                           : write_sensitivity(sw, o, dir, err);
    free(front);
    return st;
}
