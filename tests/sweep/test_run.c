/* qat-sweep end to end on a tiny MLP (300 subset images, 1 epoch): the
 * values in results.csv, failure isolation, resume (cached, retried,
 * changed overrides), sensitivity tables (bit-width and float) and the
 * command line's exit codes. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "qat/runtime_h5.h"
#include "qat/sweep.h"
#include "run_tool.h"
#include "sweep_fixture.h"

static char dir[128], errlog[256];
static char *err_text;

static void setup(void)
{
    fx_tmpdir(dir, sizeof dir);
    fx_base_config(dir, "");
    snprintf(errlog, sizeof errlog, "%s/stderr.txt", dir);
}

static void teardown(void)
{
    free(err_text);
    err_text = NULL;
}

TestSuite(sweep_run, .init = setup, .fini = teardown);

/* Runs qat-sweep with args (NULL-terminated); stderr lands in err_text. */
static int sweep(const char *const *args)
{
    int code = tc_run_tool("qat-sweep", args, NULL, errlog, NULL);
    free(err_text);
    err_text = fx_read(errlog);
    return code;
}

/* ---- a small CSV reader: header names -> cells ------------------------------ */
typedef struct csv {
    int rows, cols;
    char *cell[16][24]; /* [0] is the header */
} csv;

static void csv_load(const char *path, csv *c)
{
    memset(c, 0, sizeof *c);
    char *text = fx_read(path), *p = text;
    cr_assert(*p, "%s is missing or empty", path);
    while (*p && c->rows < 16) {
        int col = 0;
        for (;;) {
            char buf[2048];
            size_t n = 0;
            if (*p == '"') {
                for (p++; *p && !(*p == '"' && p[1] != '"'); p++) {
                    if (*p == '"')
                        p++;
                    if (n < sizeof buf - 1)
                        buf[n++] = *p;
                }
                if (*p == '"')
                    p++;
            } else {
                while (*p && *p != ',' && *p != '\n')
                    if (n < sizeof buf - 1)
                        buf[n++] = *p++;
                    else
                        p++;
            }
            buf[n] = '\0';
            if (col < 24)
                c->cell[c->rows][col++] = strdup(buf);
            if (*p == ',') {
                p++;
                continue;
            }
            break;
        }
        if (c->rows == 0)
            c->cols = col;
        else
            cr_assert_eq(col, c->cols, "%s row %d has %d cells, header %d", path, c->rows, col,
                         c->cols);
        c->rows++;
        if (*p == '\n')
            p++;
    }
    free(text);
}

static void csv_free(csv *c)
{
    for (int r = 0; r < 16; r++)
        for (int k = 0; k < 24; k++)
            free(c->cell[r][k]);
}

static const char *cell(const csv *c, const char *run, const char *column)
{
    int k = 0;
    while (k < c->cols && strcmp(c->cell[0][k], column) != 0)
        k++;
    cr_assert_lt(k, c->cols, "no column %s", column);
    for (int r = 1; r < c->rows; r++)
        if (strcmp(c->cell[r][0], run) == 0)
            return c->cell[r][k];
    cr_assert_fail("no row for run %s", run);
    return NULL;
}

static double num(const csv *c, const char *run, const char *column)
{
    const char *s = cell(c, run, column);
    return *s ? strtod(s, NULL) : NAN;
}

static void summary_of(const char *out, const char *run, qat_sweep_outcome *o)
{
    char p[512];
    qat_error e;
    snprintf(p, sizeof p, "%s/%s/summary.json", out, run);
    cr_assert_eq(qat_sweep_read_summary(p, o, &e), QAT_OK, "%s", e.msg);
}

static void write_sweep(const char *name, const char *body)
{
    char text[4096];
    snprintf(text, sizeof text, "[sweep]\nbase = base.ini\n%s", body);
    fx_write(dir, name, text);
}

static int has_gnuplot(void)
{
    return system("command -v gnuplot >/dev/null 2>&1") == 0;
}

static void expect_png(const char *path)
{
    char *b = fx_read(path);
    cr_assert(memcmp(b, "\x89PNG", 4) == 0, "%s is not a PNG", path);
    free(b);
}

Test(sweep_run, csv_holds_each_runs_numbers_and_a_broken_run_is_isolated, .timeout = 240)
{
    write_sweep("s.ini", "[grid.quant]\nweight_bits = 2, 8\n"
                         "[runs]\nbroken = layer.fc1.in_features=999\n");
    char sw[256], out[256];
    snprintf(sw, sizeof sw, "%s/s.ini", dir);
    snprintf(out, sizeof out, "%s/out", dir);
    const char *args[] = {sw, "--out", out, "--jobs", "2", NULL};
    cr_assert_eq(sweep(args), 1, "a failed run makes the exit status 1: %s", err_text);
    cr_assert(strstr(err_text, "[3/3]"), "progress lines: %s", err_text);
    cr_assert(strstr(err_text, "broken FAILED (exit 2)"), "%s", err_text);
    csv c;
    char p[512];
    snprintf(p, sizeof p, "%s/results.csv", out);
    csv_load(p, &c);
    cr_assert_eq(c.rows, 4, "header + 3 runs");
    static const char *const header[] = {"run", "quant.weight_bits", "layer.fc1.in_features",
                                         "status"};
    for (int k = 0; k < 4; k++)
        cr_assert_str_eq(c.cell[0][k], header[k]);
    cr_assert_str_eq(c.cell[1][0], "w2", "grid runs first, in order");
    cr_assert_str_eq(c.cell[2][0], "w8");
    cr_assert_str_eq(c.cell[3][0], "broken");
    qat_sweep_outcome s2, s8;
    summary_of(out, "w2", &s2);
    summary_of(out, "w8", &s8);
    const char *runs[] = {"w2", "w8"};
    qat_sweep_outcome *sums[] = {&s2, &s8};
    for (int i = 0; i < 2; i++) {
        const char *r = runs[i];
        cr_assert_str_eq(cell(&c, r, "status"), "ok");
        cr_assert_str_eq(cell(&c, r, "quant.weight_bits"), i ? "8" : "2");
        cr_assert_str_eq(cell(&c, r, "layer.fc1.in_features"), "0", "resolved default");
        cr_assert_float_eq(num(&c, r, "int8_accuracy"), sums[i]->int8_acc, 1e-9);
        cr_assert_float_eq(num(&c, r, "fakequant_accuracy"), sums[i]->fq_acc, 1e-9);
        cr_assert_float_eq(num(&c, r, "agreement"), sums[i]->agreement, 1e-9);
        cr_assert_float_eq(num(&c, r, "model_bytes_int8"), sums[i]->bytes_int8, 0.5);
        cr_assert_float_eq(num(&c, r, "train_seconds"), sums[i]->train_seconds, 6e-4);
        cr_assert(isnan(num(&c, r, "float_accuracy")), "quantized run: no float accuracy");
        cr_assert(isnan(num(&c, r, "sparsity")), "no sparsity in summary.json: empty");
        /* one epoch on 300 images: well above chance, and the integer model
         * agrees with its simulation */
        cr_assert_gt(num(&c, r, "int8_accuracy"), 0.2, "%s", r);
        cr_assert_leq(num(&c, r, "int8_accuracy"), 1.0);
        cr_assert_geq(num(&c, r, "agreement"), 0.95);
        cr_assert_str_eq(cell(&c, r, "error"), "");
    }
    /* 2-bit weights take about a quarter of the 8-bit bytes */
    double b2 = num(&c, "w2", "model_bytes_int8"), b8 = num(&c, "w8", "model_bytes_int8");
    cr_assert(b2 > 0 && b2 < 0.5 * b8, "W2 %g bytes vs W8 %g", b2, b8);
    /* w2 is smallest, so it is on the front; w8 too when it is more accurate */
    cr_assert_str_eq(cell(&c, "w2", "pareto"), "1");
    cr_assert_str_eq(cell(&c, "w8", "pareto"), s8.int8_acc > s2.int8_acc ? "1" : "0");
    cr_assert_str_eq(cell(&c, "broken", "status"), "failed");
    cr_assert_str_eq(cell(&c, "broken", "layer.fc1.in_features"), "999");
    cr_assert_str_eq(cell(&c, "broken", "exit"), "exit 2");
    cr_assert(strstr(cell(&c, "broken", "error"), "in_features = 999"), "%s",
              cell(&c, "broken", "error"));
    cr_assert_str_eq(cell(&c, "broken", "int8_accuracy"), "");
    cr_assert_str_eq(cell(&c, "broken", "pareto"), "0");
    csv_free(&c);
    snprintf(p, sizeof p, "%s/broken/sweep-status", out);
    char *st = fx_read(p);
    cr_assert(strncmp(st, "failed\nexit 2\n", 14) == 0, "%s", st);
    free(st);
    snprintf(p, sizeof p, "%s/w8/sweep-overrides.txt", out);
    char *ov = fx_read(p);
    cr_assert(strstr(ov, "\nquant.weight_bits=8\n"), "the run's exact overrides: %s", ov);
    free(ov);
    snprintf(p, sizeof p, "%s/results.md", out);
    char *md = fx_read(p);
    char row[256];
    snprintf(row, sizeof row, "| w8 | 8 | 0 | ok | %.2f | %.2f |", 100 * s8.fq_acc,
             100 * s8.int8_acc);
    cr_assert(strstr(md, row), "results.md lacks '%s':\n%s", row, md);
    cr_assert(strstr(md, "* `broken` (exit 2): qat-train: error:"), "%s", md);
    free(md);
    if (has_gnuplot()) {
        static const char *const plots[] = {"accuracy_vs_bits.png", "accuracy_vs_bits.svg",
                                            "accuracy_vs_bytes.png", "accuracy_vs_bytes.svg"};
        struct stat sb;
        for (int i = 0; i < 4; i++) {
            snprintf(p, sizeof p, "%s/plots/%s", out, plots[i]);
            cr_assert_eq(stat(p, &sb), 0, "%s missing (%s)", p, err_text);
            cr_assert_gt(sb.st_size, 1000);
        }
        snprintf(p, sizeof p, "%s/plots/accuracy_vs_bits.png", out);
        expect_png(p);
        /* the data behind the Pareto plot: both runs, then the front */
        snprintf(p, sizeof p, "%s/plots/accuracy_vs_bytes.dat", out);
        char *dat = fx_read(p);
        char line[128];
        snprintf(line, sizeof line, "%.4f %.6f w2 ", b2 / 1024, 100 * s2.int8_acc);
        cr_assert(strstr(dat, line), "'%s' not in %s", line, dat);
        free(dat);
    }
}

Test(sweep_run, rerun_skips_finished_runs_and_retries_failed_or_changed_ones, .timeout = 300)
{
    /* "late" fails until its data folder exists: the same config, a
     * different outcome, as after fixing a full disk */
    char late[256], sw[256], out[256], p[512];
    snprintf(late, sizeof late, "%s/late-data", dir);
    snprintf(sw, sizeof sw, "%s/r.ini", dir);
    snprintf(out, sizeof out, "%s/out", dir);
    char body[1024];
    snprintf(body, sizeof body, "[grid.quant]\nweight_bits = 2, 8\n[runs]\nlate = data.dir=%s\n",
             late);
    write_sweep("r.ini", body);
    const char *args[] = {sw, "--out", out, "--no-plots", NULL};
    cr_assert_eq(sweep(args), 1, "%s", err_text);
    csv c;
    snprintf(p, sizeof p, "%s/results.csv", out);
    csv_load(p, &c);
    cr_assert_str_eq(cell(&c, "w2", "status"), "ok");
    cr_assert_str_eq(cell(&c, "late", "status"), "failed");
    double acc2 = num(&c, "w2", "int8_accuracy");
    csv_free(&c);
    struct stat before, after;
    snprintf(p, sizeof p, "%s/w2/summary.json", out);
    cr_assert_eq(stat(p, &before), 0);

    const char *root = getenv("QAT_SOURCE_ROOT");
    char target[512];
    snprintf(target, sizeof target, "%s/datasets/mnist-subset", root);
    cr_assert_eq(symlink(target, late), 0);
    cr_assert_eq(sweep(args), 0, "%s", err_text);
    cr_assert(strstr(err_text, "2 finished earlier (cached)"), "%s", err_text);
    snprintf(p, sizeof p, "%s/results.csv", out);
    csv_load(p, &c);
    cr_assert_str_eq(cell(&c, "w2", "status"), "cached");
    cr_assert_str_eq(cell(&c, "w8", "status"), "cached");
    cr_assert_str_eq(cell(&c, "late", "status"), "ok", "the failed run is retried");
    cr_assert_float_eq(num(&c, "w2", "int8_accuracy"), acc2, 1e-12, "cached numbers are kept");
    csv_free(&c);
    snprintf(p, sizeof p, "%s/w2/summary.json", out);
    cr_assert_eq(stat(p, &after), 0);
    cr_assert_eq(after.st_mtim.tv_nsec, before.st_mtim.tv_nsec, "w2 was not retrained");
    cr_assert_eq(after.st_mtim.tv_sec, before.st_mtim.tv_sec);

    /* a third pass has nothing to do */
    cr_assert_eq(sweep(args), 0, "%s", err_text);
    cr_assert(strstr(err_text, "nothing to run"), "%s", err_text);

    /* a changed grid reuses only folders whose resolved config still matches */
    snprintf(body, sizeof body, "[grid.quant]\nweight_bits = 2, 4\n[runs]\nlate = data.dir=%s\n",
             late);
    write_sweep("r.ini", body);
    cr_assert_eq(sweep(args), 0, "%s", err_text);
    snprintf(p, sizeof p, "%s/results.csv", out);
    csv_load(p, &c);
    cr_assert_eq(c.rows, 4);
    cr_assert_str_eq(cell(&c, "w2", "status"), "cached");
    cr_assert_str_eq(cell(&c, "w4", "status"), "ok");
    cr_assert_str_eq(cell(&c, "late", "status"), "cached");
    csv_free(&c);

    /* the same folder names with other overrides (a --set for every run) are
     * stale: everything trains again */
    const char *changed[] = {sw, "--out", out, "--no-plots", "--set", "train.seed=2", NULL};
    cr_assert_eq(sweep(changed), 0, "%s", err_text);
    csv_load(p, &c);
    for (int r = 1; r < c.rows; r++)
        cr_assert_str_eq(cell(&c, c.cell[r][0], "status"), "ok", "run %s", c.cell[r][0]);
    csv_free(&c);
    snprintf(p, sizeof p, "%s/w2/sweep-overrides.txt", out);
    char *ov = fx_read(p);
    cr_assert(strstr(ov, "\ntrain.seed=2\n"), "%s", ov);
    free(ov);
}

Test(sweep_run, an_interrupted_or_edited_run_folder_is_not_trusted, .timeout = 120)
{
    char sw[256], out[256], p[512];
    snprintf(sw, sizeof sw, "%s/i.ini", dir);
    snprintf(out, sizeof out, "%s/out", dir);
    write_sweep("i.ini", "[grid.quant]\nweight_bits = 4\n");
    const char *args[] = {sw, "--out", out, "--no-plots", NULL};
    cr_assert_eq(sweep(args), 0, "%s", err_text);
    /* killed while training: the status file still says running */
    snprintf(p, sizeof p, "%s/w4/sweep-status", out);
    fx_write(out, "w4/sweep-status", "running\n");
    cr_assert_eq(sweep(args), 0, "%s", err_text);
    char *st = fx_read(p);
    cr_assert_str_eq(st, "ok\n");
    free(st);
    cr_assert(strstr(err_text, "running 1"), "%s", err_text);
    /* summary.json gone: not finished either */
    snprintf(p, sizeof p, "%s/w4/summary.json", out);
    cr_assert_eq(unlink(p), 0);
    cr_assert_eq(sweep(args), 0, "%s", err_text);
    cr_assert(strstr(err_text, "running 1"), "%s", err_text);
    /* keys one side lacks (another qat version's schema) do not matter ... */
    snprintf(p, sizeof p, "%s/w4/sweep-config.ini", out);
    char *cfg = fx_read(p);
    char *grown = malloc(strlen(cfg) + 64);
    sprintf(grown, "%s\n[from_a_later_qat]\nsome_key = 1\n", cfg);
    fx_write(out, "w4/sweep-config.ini", grown);
    cr_assert_eq(sweep(args), 0, "%s", err_text);
    cr_assert(strstr(err_text, "nothing to run"), "%s", err_text);
    /* ... a value that differs does */
    char *w = strstr(grown, "\nweight_bits = 4\n");
    cr_assert_not_null(w, "%s", grown);
    w[15] = '5';
    fx_write(out, "w4/sweep-config.ini", grown);
    cr_assert_eq(sweep(args), 0, "%s", err_text);
    cr_assert(strstr(err_text, "running 1"), "%s", err_text);
    free(cfg);
    free(grown);
    /* and so does an edited override list */
    snprintf(p, sizeof p, "%s/w4/sweep-overrides.txt", out);
    char *ov = fx_read(p);
    char *edited = malloc(strlen(ov) + 64);
    sprintf(edited, "%strain.lr=0.5\n", ov);
    fx_write(out, "w4/sweep-overrides.txt", edited);
    cr_assert_eq(sweep(args), 0, "%s", err_text);
    cr_assert(strstr(err_text, "running 1"), "%s", err_text);
    free(ov);
    free(edited);
}

Test(sweep_run, sensitivity_table_is_the_drop_from_the_base_run, .timeout = 240)
{
    char cfg[256], out[256], p[512];
    snprintf(cfg, sizeof cfg, "%s/base.ini", dir);
    snprintf(out, sizeof out, "%s/sens", dir);
    const char *args[] = {"--sensitivity", cfg, "--bits", "2", "--out", out, NULL};
    cr_assert_eq(sweep(args), 0, "%s", err_text);
    qat_sweep_outcome base, fc1, fc2;
    summary_of(out, "base", &base);
    summary_of(out, "fc1-w2", &fc1);
    summary_of(out, "fc2-w2", &fc2);
    csv c;
    snprintf(p, sizeof p, "%s/sensitivity.csv", out);
    csv_load(p, &c);
    cr_assert_eq(c.rows, 3, "fc1 and fc2 at 2 bits");
    cr_assert_str_eq(c.cell[0][5], "drop_points");
    cr_assert_str_eq(c.cell[1][0], "fc1");
    cr_assert_str_eq(c.cell[1][1], "2");
    cr_assert_str_eq(c.cell[2][0], "fc2");
    cr_assert_float_eq(strtod(c.cell[1][3], NULL), fc1.int8_acc, 1e-9);
    cr_assert_float_eq(strtod(c.cell[1][4], NULL), base.int8_acc, 1e-9);
    cr_assert_float_eq(strtod(c.cell[1][5], NULL), 100 * (base.int8_acc - fc1.int8_acc), 0.006);
    cr_assert_float_eq(strtod(c.cell[2][5], NULL), 100 * (base.int8_acc - fc2.int8_acc), 0.006);
    csv_free(&c);
    /* lowering a layer shrinks the model */
    cr_assert_lt(fc1.bytes_int8, base.bytes_int8);
    cr_assert_lt(fc2.bytes_int8, base.bytes_int8);
    snprintf(p, sizeof p, "%s/results.csv", out);
    csv_load(p, &c);
    cr_assert_str_eq(c.cell[0][1], "layer");
    cr_assert_str_eq(cell(&c, "fc2-w2", "layer"), "fc2");
    cr_assert_str_eq(cell(&c, "fc2-w2", "bits"), "2");
    cr_assert_str_eq(cell(&c, "base", "bits"), "");
    csv_free(&c);
    snprintf(p, sizeof p, "%s/sensitivity.md", out);
    char *md = fx_read(p), row[128];
    snprintf(row, sizeof row, "| fc1 | %.2f (%.2f) |", 100 * (base.int8_acc - fc1.int8_acc),
             100 * fc1.int8_acc);
    cr_assert(strstr(md, row), "'%s' not in\n%s", row, md);
    free(md);
    if (has_gnuplot()) {
        snprintf(p, sizeof p, "%s/plots/sensitivity.png", out);
        expect_png(p);
        snprintf(p, sizeof p, "%s/plots/sensitivity.svg", out);
        struct stat sb;
        cr_assert_eq(stat(p, &sb), 0, "%s", err_text);
    }
}

/* Layer name's desc in run's model.int8.h5 (od owns it). */
static const qat_rt_layer_desc *model_layer(const char *out, const char *run, const char *name,
                                            qat_rt_owned_desc *od)
{
    char p[512];
    qat_error e;
    snprintf(p, sizeof p, "%s/%s/model.int8.h5", out, run);
    cr_assert_eq(qat_rt_h5_read_desc(p, od, &e), QAT_OK, "%s", e.msg);
    for (int i = 0; i < od->desc.num_layers; i++)
        if (strcmp(od->desc.layers[i].name, name) == 0)
            return &od->desc.layers[i];
    cr_assert_fail("%s has no layer %s", p, name);
    return NULL;
}

/* --target float: a run per layer kept in float32; the extra bytes are that
 * layer's float32 weights and bias minus its integer codes and per-channel
 * int32 (bias, multiplier, shift), and the rows follow gain per byte. */
Test(sweep_run, float_sensitivity_ranks_layers_by_gain_per_byte, .timeout = 240)
{
    char cfg[256], out[256], p[512];
    snprintf(cfg, sizeof cfg, "%s/base.ini", dir);
    snprintf(out, sizeof out, "%s/fsens", dir);
    /* 4-bit codes pack two to a byte: the byte count is not just weights x 1 */
    const char *args[] = {"--sensitivity", cfg, "--target", "float", "--set",
                          "quant.weight_bits=4", "--out", out, "--jobs", "2", NULL};
    cr_assert_eq(sweep(args), 0, "%s", err_text);
    static const char *const layers[] = {"fc1", "fc2"};
    qat_sweep_outcome base, run[2];
    summary_of(out, "base", &base);
    csv c;
    snprintf(p, sizeof p, "%s/results.csv", out);
    csv_load(p, &c);
    cr_assert_eq(c.rows, 4, "base, fc1-float, fc2-float");
    cr_assert_str_eq(c.cell[1][0], "base");
    cr_assert_str_eq(cell(&c, "fc1-float", "layer"), "fc1");
    cr_assert_str_eq(cell(&c, "fc2-float", "layer"), "fc2");
    cr_assert_str_eq(cell(&c, "fc2-float", "bits"), "");
    csv_free(&c);
    double value[2];
    for (int l = 0; l < 2; l++) {
        char name[64];
        snprintf(name, sizeof name, "%s-float", layers[l]);
        summary_of(out, name, &run[l]);
        qat_rt_owned_desc bd, fd;
        const qat_rt_layer_desc *q = model_layer(out, "base", layers[l], &bd);
        const qat_rt_layer_desc *fl = model_layer(out, name, layers[l], &fd);
        cr_assert(!q->is_float && fl->is_float, "%s: only the float run keeps it float", name);
        cr_assert_eq(q->palette_size, 0);
        /* zero points are stored only when some is not 0 (the reader
         * hands back an all-zero array either way) */
        int zp = 0;
        for (int o = 0; q->weight_zero_point && o < q->out_c; o++)
            zp |= q->weight_zero_point[o] != 0;
        double int8 = (double)q->weights_bytes + (double)q->out_c * 3 * 4 +
                      (zp ? (double)q->out_c * 4 : 0);
        double f32 = ((double)fl->kernel_h * fl->kernel_w * fl->in_c + 1) * fl->out_c * 4;
        cr_assert_float_eq(run[l].bytes_int8 - base.bytes_int8, f32 - int8, 0.5,
                           "%s: %.0f extra bytes, its weights+bias %.0f as float32, %.0f as int",
                           name, run[l].bytes_int8 - base.bytes_int8, f32, int8);
        value[l] = 100 * (run[l].int8_acc - base.int8_acc) /
                   ((run[l].bytes_int8 - base.bytes_int8) / 1024);
        qat_rt_owned_desc_free(&bd);
        qat_rt_owned_desc_free(&fd);
    }
    snprintf(p, sizeof p, "%s/sensitivity.csv", out);
    csv_load(p, &c);
    static const char *const cols[] = {"layer", "status", "int8_accuracy", "base_int8_accuracy",
                                       "gain_points", "extra_bytes", "gain_points_per_kib",
                                       "rank"};
    cr_assert_eq(c.cols, 8);
    for (int k = 0; k < 8; k++)
        cr_assert_str_eq(c.cell[0][k], cols[k]);
    cr_assert_eq(c.rows, 3);
    int best = value[1] > value[0]; /* fc1 wins a tie: file order */
    for (int r = 1; r < 3; r++) {
        int l = r == 1 ? best : !best;
        cr_assert_str_eq(c.cell[r][0], layers[l], "row %d: gain per KiB %.4f vs %.4f", r,
                         value[0], value[1]);
        cr_assert_eq(atoi(c.cell[r][7]), r);
        cr_assert_float_eq(strtod(c.cell[r][2], NULL), run[l].int8_acc, 1e-9);
        cr_assert_float_eq(strtod(c.cell[r][3], NULL), base.int8_acc, 1e-9);
        cr_assert_float_eq(strtod(c.cell[r][4], NULL), 100 * (run[l].int8_acc - base.int8_acc),
                           1e-4);
        cr_assert_float_eq(strtod(c.cell[r][5], NULL), run[l].bytes_int8 - base.bytes_int8, 0.5);
        cr_assert_float_eq(strtod(c.cell[r][6], NULL), value[l], 1e-4 * fabs(value[l]) + 1e-6);
    }
    csv_free(&c);
    snprintf(p, sizeof p, "%s/sensitivity.md", out);
    char *md = fx_read(p), want[128];
    if (run[best].int8_acc > base.int8_acc)
        snprintf(want, sizeof want, "Suggested: keep `%s` in float", layers[best]);
    else
        snprintf(want, sizeof want, "No layer gains");
    cr_assert(strstr(md, want), "'%s' not in\n%s", want, md);
    free(md);
    if (has_gnuplot()) {
        snprintf(p, sizeof p, "%s/plots/sensitivity.png", out);
        expect_png(p);
    }
    /* a rerun trains nothing */
    cr_assert_eq(sweep(args), 0, "%s", err_text);
    cr_assert(strstr(err_text, "3 finished earlier"), "%s", err_text);
}

/* Float, PTQ and a QAT fine-tune from one float checkpoint, side by side:
 * every PTQ run quantizes the same float model (its float accuracy is the
 * float run's) without training, and the methods table lines them up. */
Test(sweep_run, methods_compare_ptq_and_qat_from_one_checkpoint, .timeout = 240)
{
    char cfg[256], fl[256], out[256], p[512];
    snprintf(cfg, sizeof cfg, "%s/base.ini", dir);
    snprintf(fl, sizeof fl, "%s/float", dir);
    const char *targs[] = {cfg, "--set", "quant.enabled=false", "--out", fl, "--quiet", NULL};
    cr_assert_eq(tc_run_tool("qat-train", targs, NULL, errlog, NULL), 0);
    char text[1024];
    snprintf(text, sizeof text,
             "[sweep]\nbase = base.ini\n[set.train]\ninit = %s/checkpoint.h5\n"
             "[set.ptq]\ncalibration_images = 200\n[grid.quant]\nweight_bits = 4, 8\n"
             "[methods]\nptq = train.mode=ptq\nptq_bc = train.mode=ptq "
             "ptq.bias_correction=true\nqat = train.mode=qat\n",
             fl);
    fx_write(dir, "m.ini", text);
    char sw[256];
    snprintf(sw, sizeof sw, "%s/m.ini", dir);
    snprintf(out, sizeof out, "%s/out", dir);
    const char *args[] = {sw, "--out", out, "--jobs", "2", "--no-plots", NULL};
    cr_assert_eq(sweep(args), 0, "%s", err_text);
    qat_sweep_outcome f, o;
    snprintf(p, sizeof p, "%s/summary.json", fl);
    cr_assert_eq(qat_sweep_read_summary(p, &f, NULL), QAT_OK);
    const char *ptq_runs[] = {"w4_ptq", "w4_ptq_bc", "w8_ptq", "w8_ptq_bc"};
    for (int i = 0; i < 4; i++) {
        summary_of(out, ptq_runs[i], &o);
        cr_assert_float_eq(o.float_acc, f.float_acc, 1e-9, "%s quantizes the float model",
                           ptq_runs[i]);
        cr_assert_eq(o.agreement, 1.0, "%s", ptq_runs[i]);
        cr_assert(isnan(o.train_seconds) && o.ptq_seconds > 0, "%s trains nothing", ptq_runs[i]);
    }
    summary_of(out, "w4_qat", &o);
    cr_assert(o.train_seconds > 0 && isnan(o.ptq_seconds));
    csv c;
    snprintf(p, sizeof p, "%s/results.csv", out);
    csv_load(p, &c);
    cr_assert_str_eq(cell(&c, "w8_ptq_bc", "method"), "ptq_bc");
    csv_free(&c);
    snprintf(p, sizeof p, "%s/results.md", out);
    char *md = fx_read(p), row[128];
    summary_of(out, "w8_qat", &o);
    snprintf(row, sizeof row, "| quant.weight_bits | float | ptq | ptq_bc | qat |");
    cr_assert(strstr(md, row), "'%s' not in\n%s", row, md);
    snprintf(row, sizeof row, "| 8 | %.2f |", 100 * f.float_acc);
    cr_assert(strstr(md, row), "'%s' not in\n%s", row, md);
    free(md);
}

Test(sweep_run, distill_keys_vary_like_any_other, .timeout = 240)
{
    char cfg[256], teacher[256], out[256], p[512];
    snprintf(cfg, sizeof cfg, "%s/base.ini", dir);
    snprintf(teacher, sizeof teacher, "%s/teacher", dir);
    const char *targs[] = {cfg, "--set", "quant.enabled=false", "--out", teacher, "--quiet", NULL};
    cr_assert_eq(tc_run_tool("qat-train", targs, NULL, errlog, NULL), 0);
    char text[1024];
    snprintf(text, sizeof text,
             "[sweep]\nbase = base.ini\n[set.distill]\nteacher = %s/checkpoint.h5\n"
             "[grid.distill]\nalpha = 0, 0.5\nloss = kl, mse\n",
             teacher);
    fx_write(dir, "d.ini", text);
    char sw[256];
    snprintf(sw, sizeof sw, "%s/d.ini", dir);
    snprintf(out, sizeof out, "%s/out", dir);
    const char *args[] = {sw, "--out", out, "--jobs", "2", "--no-plots", NULL};
    cr_assert_eq(sweep(args), 0, "%s", err_text);
    csv c;
    snprintf(p, sizeof p, "%s/results.csv", out);
    csv_load(p, &c);
    cr_assert_eq(c.rows, 5, "four runs");
    int alpha = -1, loss = -1;
    for (int k = 0; k < c.cols; k++) {
        alpha = strcmp(c.cell[0][k], "distill.alpha") == 0 ? k : alpha;
        loss = strcmp(c.cell[0][k], "distill.loss") == 0 ? k : loss;
    }
    cr_assert(alpha >= 0 && loss >= 0, "results.csv names the distill keys");
    for (int r = 1; r < c.rows; r++) {
        /* each run trained with its own values against the teacher */
        snprintf(p, sizeof p, "%s/%s/metrics.csv", out, c.cell[r][0]);
        char *m = fx_read(p);
        cr_assert(strstr(m, "distill_loss"), "%s: %s", c.cell[r][0], m);
        free(m);
        snprintf(p, sizeof p, "%s/%s/config.ini", out, c.cell[r][0]);
        char *ini = fx_read(p), want[64];
        snprintf(want, sizeof want, "alpha = %s\n", c.cell[r][alpha]);
        cr_assert(strstr(ini, want), "%s lacks '%s'", p, want);
        snprintf(want, sizeof want, "loss = %s\n", c.cell[r][loss]);
        cr_assert(strstr(ini, want), "%s lacks '%s'", p, want);
        free(ini);
    }
    csv_free(&c);
}

Test(sweep_run, command_line_errors_exit_2_with_a_clear_message)
{
    char sw[256];
    snprintf(sw, sizeof sw, "%s/e.ini", dir);
    write_sweep("e.ini", "[grid.quant]\nweight_bits = 2, 9\n");
    const char *bad_value[] = {sw, "--list", NULL};
    cr_assert_eq(sweep(bad_value), 2);
    char where[300];
    snprintf(where, sizeof where, "%s:4: [grid.quant] weight_bits = 9", sw);
    cr_assert(strstr(err_text, where), "%s", err_text);
    write_sweep("e.ini", "[grid.quant]\nweight_bits = 2, 4\n");
    const char *listing[] = {sw, "--list", "--set", "train.epochs=2", NULL};
    cr_assert_eq(sweep(listing), 0, "%s", err_text);
    const char *cases[][8] = {
        {NULL},
        {sw, "--jobs", "0", NULL},
        {sw, "--bits", "2", NULL},
        {sw, "--frobnicate", NULL},
        {sw, "--set", NULL},
        {"--sensitivity", sw, NULL},
        {"--sensitivity", sw, "--bits", "2,x", NULL},
        {sw, "--list", "--set", "train.lr=50", NULL},
        {"--sensitivity", sw, "--target", "float", "--bits", "2", NULL},
        {"--sensitivity", sw, "--target", "floats", NULL},
    };
    const char *needles[] = {"missing SWEEP", "--jobs", "--bits only goes with --sensitivity",
                             "unknown option", "needs an argument", "needs --bits", "--bits",
                             "[train] lr", "--bits does not go with --target float",
                             "--target: expected weights, activations, both or float"};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cr_assert_eq(sweep(cases[i]), 2, "case %zu: %s", i, err_text);
        cr_assert(strstr(err_text, needles[i]), "case %zu: '%s' lacks '%s'", i, err_text,
                  needles[i]);
    }
}

/* Runs scripts/plot_metrics.sh with the given arguments; its exit status. */
static int plot_metrics(const char *a1, const char *a2)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "'%s/scripts/plot_metrics.sh' '%s' %s%s%s >/dev/null 2>'%s'",
             getenv("QAT_SOURCE_ROOT"), a1, a2 ? "'" : "", a2 ? a2 : "", a2 ? "'" : "", errlog);
    int st = system(cmd);
    free(err_text);
    err_text = fx_read(errlog);
    cr_assert(WIFEXITED(st));
    return WEXITSTATUS(st);
}

Test(sweep_run, plot_metrics_reads_columns_by_name)
{
    if (!has_gnuplot())
        cr_skip_test("gnuplot is not installed");
    char run[256], p[512];
    snprintf(run, sizeof run, "%s/run", dir);
    cr_assert_eq(mkdir(run, 0777), 0);
    /* columns in another order, plus sparsity and one nobody plots */
    fx_write(run, "metrics.csv",
             "epoch,lr,penalty,train_loss,test_accuracy,train_accuracy,sparsity\n"
             "1,0.01,0.5,1.2,0.80,0.75,0.10\n2,0.01,0.4,0.6,0.88,0.90,0.30\n"
             "3,0.001,0.3,0.4,0.90,0.93,0.50\n");
    cr_assert_eq(plot_metrics(run, NULL), 0, "%s", err_text);
    snprintf(p, sizeof p, "%s/curves.png", run);
    expect_png(p);
    snprintf(p, sizeof p, "%s/curves.svg", run);
    char *svg = fx_read(p);
    cr_assert(strstr(svg, "sparsity"), "the sparsity panel is drawn");
    cr_assert(strstr(svg, "learning rate") && strstr(svg, "accuracy (%)"));
    free(svg);
    snprintf(p, sizeof p, "%s/sub/c", dir);
    cr_assert_eq(plot_metrics(run, p), 0, "%s", err_text);
    snprintf(p, sizeof p, "%s/sub/c.png", dir);
    expect_png(p);
    /* bad inputs: exit 2 with the file (and line) named */
    fx_write(run, "metrics.csv", "epoch,lr,train_loss\n1,0.1,2\n");
    cr_assert_eq(plot_metrics(run, NULL), 2);
    cr_assert(strstr(err_text, "metrics.csv:1: no 'train_accuracy' column"), "%s", err_text);
    fx_write(run, "metrics.csv", "epoch,train_loss,train_accuracy,test_accuracy,lr\n1,2,0.1\n");
    cr_assert_eq(plot_metrics(run, NULL), 2);
    cr_assert(strstr(err_text, "metrics.csv:2: 3 fields"), "%s", err_text);
    snprintf(p, sizeof p, "%s/none", dir);
    cr_assert_eq(plot_metrics(p, NULL), 2);
    cr_assert(strstr(err_text, "no such folder"), "%s", err_text);
}
