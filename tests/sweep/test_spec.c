/* Sweep files: grid expansion order, explicit runs, --set precedence,
 * sensitivity run lists (bit-width and float) and the float sweep's ranking
 * and tables, and every bad sweep file with its file:line. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qat/sweep.h"
#include "sweep_fixture.h"

static char dir[128];

static void setup(void)
{
    fx_tmpdir(dir, sizeof dir);
    fx_base_config(dir, "");
}

TestSuite(sweep_spec, .init = setup);

/* Writes dir/s.ini and loads it. */
static qat_status load(const char *text, const char *const *sets, int nsets, qat_sweep **sw,
                       qat_error *e)
{
    fx_write(dir, "s.ini", text);
    char p[256];
    snprintf(p, sizeof p, "%s/s.ini", dir);
    qat_error_clear(e);
    return qat_sweep_load(p, sets, nsets, sw, e);
}

static qat_sweep *load_ok(const char *text, const char *const *sets, int nsets)
{
    qat_sweep *sw;
    qat_error e;
    qat_status st = load(text, sets, nsets, &sw, &e);
    cr_assert_eq(st, QAT_OK, "%s", e.msg);
    return sw;
}

/* The error names s.ini:line and holds needle. */
static void expect_error(const char *text, const char *const *sets, int nsets, int line,
                         const char *needle)
{
    qat_sweep *sw = NULL;
    qat_error e;
    qat_status st = load(text, sets, nsets, &sw, &e);
    cr_assert_eq(st, QAT_EINVAL, "expected EINVAL (%s), got %d: %s", needle, st, e.msg);
    cr_assert_null(sw);
    char where[256];
    if (line)
        snprintf(where, sizeof where, "%s/s.ini:%d:", dir, line);
    else
        snprintf(where, sizeof where, "%s", needle);
    cr_assert(strstr(e.msg, where), "message '%s' lacks '%s'", e.msg, where);
    cr_assert(strstr(e.msg, needle), "message '%s' lacks '%s'", e.msg, needle);
}

static void expect_sets(const qat_sweep_run *r, const char *const *want, int n)
{
    cr_assert_eq(r->nsets, n, "run %s: %d overrides, expected %d", r->name, r->nsets, n);
    for (int i = 0; i < n; i++)
        cr_assert_str_eq(r->sets[i], want[i], "run %s override %d", r->name, i);
}

Test(sweep_spec, grid_is_the_product_with_the_first_key_slowest)
{
    qat_sweep *sw = load_ok("[sweep]\nbase = base.ini\n"
                            "[grid.quant]\nweight_bits = 2, 3,8\nactivation_bits = 4,8\n",
                            NULL, 0);
    static const char *const names[] = {"w2_a4", "w2_a8", "w3_a4", "w3_a8", "w8_a4", "w8_a8"};
    static const char *const w[] = {"2", "2", "3", "3", "8", "8"}, *const a[] = {"4", "8", "4", "8", "4", "8"};
    cr_assert_eq(sw->nruns, 6);
    cr_assert_eq(sw->ngrid_runs, 6);
    cr_assert_eq(sw->nkeys, 2);
    cr_assert_eq(sw->ngrid_keys, 2);
    cr_assert_str_eq(sw->keys[0], "quant.weight_bits");
    cr_assert_str_eq(sw->keys[1], "quant.activation_bits");
    cr_assert_str_eq(sw->name, "s");
    for (int i = 0; i < 6; i++) {
        const qat_sweep_run *r = &sw->runs[i];
        cr_assert_str_eq(r->name, names[i]);
        char s0[64], s1[64];
        snprintf(s0, sizeof s0, "quant.weight_bits=%s", w[i]);
        snprintf(s1, sizeof s1, "quant.activation_bits=%s", a[i]);
        const char *want[] = {s0, s1};
        expect_sets(r, want, 2);
        cr_assert_str_eq(r->values[0], w[i]);
        cr_assert_str_eq(r->values[1], a[i]);
        cr_assert_eq(r->threads, 1);
        char line[64];
        snprintf(line, sizeof line, "\nweight_bits = %s\n", w[i]);
        cr_assert(strstr(r->resolved, line), "resolved config of %s lacks '%s'", r->name, line);
    }
    qat_sweep_free(sw);
}

Test(sweep_spec, explicit_runs_follow_the_grid_with_resolved_values)
{
    qat_sweep *sw = load_ok("[sweep]\nbase = base.ini\nname = mixed\n"
                            "[runs]\nfirst = quant.weight_bits=4   layer.fc2.weight_bits=8\n"
                            "plain =\n"
                            "[grid.layer.fc1]\nweight_bits = 2,4\n",
                            NULL, 0);
    cr_assert_str_eq(sw->name, "mixed");
    cr_assert_eq(sw->nruns, 4);
    cr_assert_eq(sw->ngrid_runs, 2);
    /* grid keys first even though [runs] came first in the file */
    cr_assert_eq(sw->nkeys, 3);
    cr_assert_eq(sw->ngrid_keys, 1);
    cr_assert_str_eq(sw->keys[0], "layer.fc1.weight_bits");
    cr_assert_str_eq(sw->keys[1], "quant.weight_bits");
    cr_assert_str_eq(sw->keys[2], "layer.fc2.weight_bits");
    cr_assert_str_eq(sw->runs[0].name, "fc1.w2");
    cr_assert_str_eq(sw->runs[1].name, "fc1.w4");
    cr_assert_str_eq(sw->runs[2].name, "first");
    cr_assert_str_eq(sw->runs[3].name, "plain");
    const char *want[] = {"quant.weight_bits=4", "layer.fc2.weight_bits=8"};
    expect_sets(&sw->runs[2], want, 2);
    expect_sets(&sw->runs[3], NULL, 0);
    /* values come from the resolved config: fc1 inherits [quant] when not set */
    const char *v[4][3] = {{"2", "8", "8"}, {"4", "8", "8"}, {"4", "4", "8"}, {"8", "8", "8"}};
    for (int i = 0; i < 4; i++)
        for (int k = 0; k < 3; k++)
            cr_assert_str_eq(sw->runs[i].values[k], v[i][k], "run %s key %s", sw->runs[i].name,
                             sw->keys[k]);
    cr_assert(strstr(sw->runs[2].where, "s.ini:5"), "%s", sw->runs[2].where);
    qat_sweep_free(sw);
}

Test(sweep_spec, command_line_set_beats_the_file_and_goes_before_run_values)
{
    const char *text = "[sweep]\nbase = base.ini\n[set.train]\nepochs = 3\nseed = 7\n"
                       "[grid.train]\nlr = 0.01, 0.1\n";
    const char *sets[] = {"train.epochs=2", "data.test_limit=100"};
    qat_sweep *sw = load_ok(text, sets, 2);
    cr_assert_eq(sw->nruns, 2);
    cr_assert_str_eq(sw->runs[0].name, "lr-0.01");
    cr_assert_str_eq(sw->runs[1].name, "lr-0.1");
    const char *want[] = {"train.epochs=3", "train.seed=7", "train.epochs=2",
                          "data.test_limit=100", "train.lr=0.1"};
    expect_sets(&sw->runs[1], want, 5);
    cr_assert(strstr(sw->runs[1].resolved, "\nepochs = 2\n"), "--set wins over [set.train]");
    cr_assert(strstr(sw->runs[1].resolved, "\nseed = 7\n"));
    cr_assert(strstr(sw->runs[1].resolved, "\ntest_limit = 100\n"));
    qat_sweep_free(sw);
    /* but a --set may not flatten what the sweep varies */
    const char *bad[] = {"train.lr=0.5"};
    qat_sweep *s2 = NULL;
    qat_error e;
    cr_assert_eq(load(text, bad, 1, &s2, &e), QAT_EINVAL);
    cr_assert(strstr(e.msg, "--set train.lr=0.5") && strstr(e.msg, "varies train.lr"), "%s", e.msg);
    /* a bad --set is named as such */
    const char *typo[] = {"train.epochz=2"};
    cr_assert_eq(load(text, typo, 1, &s2, &e), QAT_EINVAL);
    cr_assert(strstr(e.msg, "--set train.epochz=2") && strstr(e.msg, "unknown key"), "%s", e.msg);
}

Test(sweep_spec, folder_names_for_layer_keys_and_label_collisions)
{
    qat_sweep *sw = load_ok("[sweep]\nbase = base.ini\n"
                            "[grid.layer.fc1]\nweight_bits = 4\nactivation_bits = 6\n"
                            "[grid.layer.fc2]\nweight_bits = 2\n"
                            "[grid.train]\noptimizer = sgd, adam\n",
                            NULL, 0);
    cr_assert_eq(sw->nruns, 2);
    cr_assert_str_eq(sw->runs[0].name, "fc1.w4_fc1.a6_fc2.w2_optimizer-sgd");
    cr_assert_str_eq(sw->runs[1].name, "fc1.w4_fc1.a6_fc2.w2_optimizer-adam");
    qat_sweep_free(sw);
    sw = load_ok("[sweep]\nbase = base.ini\n[grid.train]\nseed = 1,2\n[grid.data]\nshuffle = "
                 "true\n[grid.model]\nnormalize_input = false\n",
                 NULL, 0);
    cr_assert_str_eq(sw->runs[1].name, "seed-2_shuffle-true_normalize_input-false",
                     "%s", sw->runs[1].name);
    qat_sweep_free(sw);
}

Test(sweep_spec, default_jobs_divide_cores_by_threads)
{
    qat_sweep *sw = load_ok("[sweep]\nbase = base.ini\n[grid.quant]\nweight_bits = 2,4\n", NULL, 0);
    cr_assert_eq(qat_sweep_default_jobs(sw, 2), 2);
    cr_assert_eq(qat_sweep_default_jobs(sw, 8), 8);
    qat_sweep_free(sw);
    const char *sets[] = {"train.threads=3"};
    sw = load_ok("[sweep]\nbase = base.ini\njobs = 5\n[grid.quant]\nweight_bits = 2,4\n", sets, 1);
    cr_assert_eq(sw->jobs, 5);
    cr_assert_eq(qat_sweep_default_jobs(sw, 8), 2);
    cr_assert_eq(qat_sweep_default_jobs(sw, 2), 1, "never below one");
    qat_sweep_free(sw);
    const char *all[] = {"train.threads=0"}; /* 0: every core */
    sw = load_ok("[sweep]\nbase = base.ini\n[grid.quant]\nweight_bits = 2,4\n", all, 1);
    cr_assert_eq(qat_sweep_default_jobs(sw, 4), 1);
    qat_sweep_free(sw);
}

Test(sweep_spec, sensitivity_lowers_one_layer_at_a_time)
{
    char cfg[256];
    snprintf(cfg, sizeof cfg, "%s/base.ini", dir);
    int bits[] = {2, 4};
    qat_sweep *sw;
    qat_error e;
    const char *sets[] = {"quant.activation_bits=6"};
    cr_assert_eq(qat_sweep_sensitivity(cfg, bits, 2, QAT_SWEEP_WEIGHTS, sets, 1, &sw, &e), QAT_OK,
                 "%s", e.msg);
    cr_assert_eq(sw->kind, QAT_SWEEP_SENSITIVITY);
    cr_assert_str_eq(sw->name, "base-sensitivity");
    cr_assert_eq(sw->nruns, 5);
    static const char *const names[] = {"base", "fc1-w2", "fc1-w4", "fc2-w2", "fc2-w4"};
    static const char *const layers[] = {"", "fc1", "fc1", "fc2", "fc2"};
    static const int b[] = {0, 2, 4, 2, 4};
    for (int i = 0; i < 5; i++) {
        cr_assert_str_eq(sw->runs[i].name, names[i]);
        cr_assert_str_eq(sw->runs[i].layer, layers[i]);
        cr_assert_eq(sw->runs[i].bits, b[i]);
    }
    const char *want[] = {"quant.activation_bits=6", "layer.fc2.weight_bits=2"};
    expect_sets(&sw->runs[3], want, 2);
    expect_sets(&sw->runs[0], want, 1);
    qat_sweep_free(sw);
    cr_assert_eq(qat_sweep_sensitivity(cfg, bits, 1, QAT_SWEEP_BOTH, NULL, 0, &sw, &e), QAT_OK);
    const char *both[] = {"layer.fc1.weight_bits=2", "layer.fc1.activation_bits=2"};
    cr_assert_str_eq(sw->runs[1].name, "fc1-wa2");
    expect_sets(&sw->runs[1], both, 2);
    qat_sweep_free(sw);
}

Test(sweep_spec, sensitivity_errors)
{
    char cfg[256];
    snprintf(cfg, sizeof cfg, "%s/base.ini", dir);
    qat_sweep *sw = NULL;
    qat_error e;
    int one[] = {1}, dup[] = {2, 2}, two[] = {2};
    cr_assert_eq(qat_sweep_sensitivity(cfg, one, 1, 0, NULL, 0, &sw, &e), QAT_EINVAL);
    cr_assert(strstr(e.msg, "--bits: 1"), "%s", e.msg);
    cr_assert_eq(qat_sweep_sensitivity(cfg, dup, 2, 0, NULL, 0, &sw, &e), QAT_EINVAL);
    cr_assert(strstr(e.msg, "twice"), "%s", e.msg);
    const char *off[] = {"quant.enabled=false"};
    cr_assert_eq(qat_sweep_sensitivity(cfg, two, 1, 0, off, 1, &sw, &e), QAT_EINVAL);
    cr_assert(strstr(e.msg, "enabled = true"), "%s", e.msg);
    const char *clash[] = {"layer.fc1.weight_bits=3"};
    cr_assert_eq(qat_sweep_sensitivity(cfg, two, 1, 0, clash, 1, &sw, &e), QAT_EINVAL);
    cr_assert(strstr(e.msg, "varies layer.fc1.weight_bits"), "%s", e.msg);
    char missing[256];
    snprintf(missing, sizeof missing, "%s/nope.ini", dir);
    cr_assert_eq(qat_sweep_sensitivity(missing, two, 1, 0, NULL, 0, &sw, &e), QAT_EINVAL);
    cr_assert(strstr(e.msg, "nope.ini") && strstr(e.msg, "cannot read"), "%s", e.msg);
    cr_assert_null(sw);
}

/* A float sweep varies layer.NAME.quantize: only layers that can be float
 * and are not already (a depthwise or grouped conv has no float kernel). */
Test(sweep_spec, float_sensitivity_keeps_one_layer_in_float_at_a_time)
{
    fx_write(dir, "conv.ini",
             "[data]\ndir = unused\n[quant]\nenabled = true\n"
             "[layer.conv1]\ntype = conv2d\nout_channels = 4\nkernel = 3\n"
             "[layer.dw]\ntype = depthwise_conv2d\nkernel = 3\n"
             "[layer.grouped]\ntype = conv2d\nout_channels = 4\nkernel = 1\ngroups = 2\n"
             "[layer.flatten]\ntype = flatten\n"
             "[layer.fc1]\ntype = linear\nout_features = 8\nquantize = false\n"
             "[layer.fc2]\ntype = linear\nout_features = 10\n");
    char cfg[256];
    snprintf(cfg, sizeof cfg, "%s/conv.ini", dir);
    qat_sweep *sw;
    qat_error e;
    const char *sets[] = {"quant.weight_bits=2"};
    cr_assert_eq(qat_sweep_sensitivity(cfg, NULL, 0, QAT_SWEEP_FLOAT, sets, 1, &sw, &e), QAT_OK,
                 "%s", e.msg);
    cr_assert_eq(sw->target, QAT_SWEEP_FLOAT);
    cr_assert_eq(sw->nbits, 0);
    cr_assert_eq(sw->nruns, 3, "base, conv1, fc2 (dw, grouped and float fc1 skipped)");
    static const char *const names[] = {"base", "conv1-float", "fc2-float"};
    static const char *const layers[] = {"", "conv1", "fc2"};
    for (int i = 0; i < 3; i++) {
        cr_assert_str_eq(sw->runs[i].name, names[i]);
        cr_assert_str_eq(sw->runs[i].layer, layers[i]);
        cr_assert_eq(sw->runs[i].bits, 0);
    }
    const char *want[] = {"quant.weight_bits=2", "layer.fc2.quantize=false"};
    expect_sets(&sw->runs[2], want, 2);
    expect_sets(&sw->runs[0], want, 1);
    qat_sweep_free(sw);
    /* a --set that makes a layer float takes it out of the sweep */
    const char *fc2[] = {"layer.fc2.quantize=false"};
    cr_assert_eq(qat_sweep_sensitivity(cfg, NULL, 0, QAT_SWEEP_FLOAT, fc2, 1, &sw, &e), QAT_OK,
                 "%s", e.msg);
    cr_assert_eq(sw->nruns, 2);
    cr_assert_str_eq(sw->runs[1].name, "conv1-float");
    qat_sweep_free(sw);
    /* the bit-width sweep lowers every quantized layer, depthwise and
     * grouped ones too, but not one kept in float (its bits are unused) */
    int two[] = {2};
    cr_assert_eq(qat_sweep_sensitivity(cfg, two, 1, QAT_SWEEP_WEIGHTS, NULL, 0, &sw, &e), QAT_OK,
                 "%s", e.msg);
    static const char *const bit_runs[] = {"base", "conv1-w2", "dw-w2", "grouped-w2", "fc2-w2"};
    cr_assert_eq(sw->nruns, 5, "float fc1 skipped");
    for (int i = 0; i < 5; i++)
        cr_assert_str_eq(sw->runs[i].name, bit_runs[i]);
    qat_sweep_free(sw);
}

Test(sweep_spec, float_sensitivity_errors)
{
    char cfg[256];
    snprintf(cfg, sizeof cfg, "%s/base.ini", dir);
    qat_sweep *sw = NULL;
    qat_error e;
    int two[] = {2};
    cr_assert_eq(qat_sweep_sensitivity(cfg, two, 1, QAT_SWEEP_FLOAT, NULL, 0, &sw, &e),
                 QAT_EINVAL);
    cr_assert(strstr(e.msg, "--bits") && strstr(e.msg, "--target float"), "%s", e.msg);
    const char *clash[] = {"layer.fc1.quantize=true"};
    cr_assert_eq(qat_sweep_sensitivity(cfg, NULL, 0, QAT_SWEEP_FLOAT, clash, 1, &sw, &e),
                 QAT_EINVAL);
    cr_assert(strstr(e.msg, "--set layer.fc1.quantize=true") &&
              strstr(e.msg, "varies layer.fc1.quantize"), "%s", e.msg);
    const char *all[] = {"layer.fc1.quantize=false", "layer.fc2.quantize=false"};
    cr_assert_eq(qat_sweep_sensitivity(cfg, NULL, 0, QAT_SWEEP_FLOAT, all, 2, &sw, &e),
                 QAT_EINVAL);
    cr_assert(strstr(e.msg, cfg) && strstr(e.msg, "left to keep in float"), "%s", e.msg);
    const char *off[] = {"quant.enabled=false"};
    cr_assert_eq(qat_sweep_sensitivity(cfg, NULL, 0, QAT_SWEEP_FLOAT, off, 1, &sw, &e),
                 QAT_EINVAL);
    cr_assert(strstr(e.msg, "enabled = true"), "%s", e.msg);
    cr_assert_eq(qat_sweep_sensitivity(cfg, NULL, 0, 7, NULL, 0, &sw, &e), QAT_EINVAL);
    cr_assert(strstr(e.msg, "--target"), "%s", e.msg);
    cr_assert_null(sw);
}

/* base.ini with fc1..fc4: a float sweep of five runs (base first). */
static qat_sweep *four_layer_float_sweep(void)
{
    fx_write(dir, "four.ini",
             "[data]\ndir = unused\n[quant]\nenabled = true\n[layer.flatten]\ntype = flatten\n"
             "[layer.fc1]\ntype = linear\nout_features = 8\n"
             "[layer.fc2]\ntype = linear\nout_features = 8\n"
             "[layer.fc3]\ntype = linear\nout_features = 8\n"
             "[layer.fc4]\ntype = linear\nout_features = 10\n");
    char cfg[256];
    snprintf(cfg, sizeof cfg, "%s/four.ini", dir);
    qat_sweep *sw;
    qat_error e;
    cr_assert_eq(qat_sweep_sensitivity(cfg, NULL, 0, QAT_SWEEP_FLOAT, NULL, 0, &sw, &e), QAT_OK,
                 "%s", e.msg);
    cr_assert_eq(sw->nruns, 5);
    return sw;
}

static qat_sweep_outcome outcome(int status, double acc, double bytes)
{
    qat_sweep_outcome o = {.status = status, .float_acc = NAN, .fq_acc = acc, .int8_acc = acc,
                           .agreement = 1, .bytes_int8 = bytes, .sparsity = NAN,
                           .train_seconds = 1, .ptq_seconds = NAN};
    return o;
}

Test(sweep_spec, float_ranking_is_gain_per_extra_byte_failed_last)
{
    qat_sweep *sw = four_layer_float_sweep();
    qat_sweep_outcome o[5] = {
        outcome(QAT_RUN_OK, 0.90, 1000),
        outcome(QAT_RUN_OK, 0.92, 3048),     /* fc1: +2 points for 2 KiB: 1 / KiB */
        outcome(QAT_RUN_FAILED, NAN, NAN),   /* fc2 */
        outcome(QAT_RUN_CACHED, 0.91, 1512), /* fc3: +1 point for 0.5 KiB: 2 / KiB */
        outcome(QAT_RUN_OK, 0.905, 1000),    /* fc4: +0.5 points for no bytes */
    };
    qat_sweep_float_gain g[5];
    cr_assert_eq(qat_sweep_float_ranking(sw, o, g), 4);
    static const int run[] = {4, 3, 1, 2}, rank[] = {1, 2, 3, 0};
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(g[i].run, run[i], "row %d is run %d, expected %d", i, g[i].run, run[i]);
        cr_assert_eq(g[i].rank, rank[i], "row %d", i);
    }
    cr_assert_float_eq(g[1].gain_points, 1.0, 1e-9);
    cr_assert_float_eq(g[1].extra_bytes, 512.0, 1e-9);
    cr_assert_float_eq(g[1].points_per_kib, 2.0, 1e-9);
    cr_assert(isnan(g[0].points_per_kib), "no bytes spent: no per-KiB figure");
    cr_assert(isnan(g[3].gain_points) && isnan(g[3].metric));
    /* the tables: ranked rows, the suggestion names the best gain per byte */
    cr_assert_eq(qat_sweep_write_tables(sw, o, dir, NULL), QAT_OK);
    char p[256];
    snprintf(p, sizeof p, "%s/sensitivity.csv", dir);
    char *csv = fx_read(p);
    cr_assert_str_eq(csv, "layer,status,int8_accuracy,base_int8_accuracy,gain_points,extra_bytes,"
                          "gain_points_per_kib,rank\n"
                          "fc4,ok,0.905,0.9,0.5000,0,,1\n"
                          "fc3,cached,0.91,0.9,1.0000,512,2,2\n"
                          "fc1,ok,0.92,0.9,2.0000,2048,1,3\n"
                          "fc2,failed,,0.9,,,,\n");
    free(csv);
    snprintf(p, sizeof p, "%s/sensitivity.md", dir);
    char *md = fx_read(p);
    cr_assert(strstr(md, "| 2 | fc3 | 91.00 | +1.00 | +512 | +2 |"), "%s", md);
    cr_assert(strstr(md, "| – | fc2 | failed |"), "%s", md);
    cr_assert(strstr(md, "Suggested: keep `fc4` in float: +0.50 points of int8 accuracy for +0 "
                         "bytes.\n"), "%s", md);
    free(md);
    /* nothing gains: said so, nothing suggested */
    for (int i = 1; i < 5; i++)
        o[i] = outcome(QAT_RUN_OK, i == 2 ? 0.90 : 0.89, 2024);
    o[1] = outcome(QAT_RUN_OK, 0.8999, 1000 + 1024000); /* a tiny loss per KiB, not "0" */
    cr_assert_eq(qat_sweep_write_tables(sw, o, dir, NULL), QAT_OK);
    md = fx_read(p);
    cr_assert(strstr(md, "No layer gains") && !strstr(md, "Suggested"), "%s", md);
    cr_assert(strstr(md, "| 2 | fc1 | 89.99 | -0.01 | +1024000 | -1e-05 |"), "%s", md);
    cr_assert(strstr(md, "| 3 | fc3 | 89.00 | -1.00 | +1024 | -1 |"), "%s", md);
    cr_assert(strstr(md, "| 1 | fc2 | 90.00 | +0.00 | +1024 | +0 |"), "%s", md);
    free(md);
    /* the base failed: no gains, every row unranked in file order */
    o[0] = outcome(QAT_RUN_FAILED, NAN, NAN);
    qat_sweep_float_ranking(sw, o, g);
    for (int i = 0; i < 4; i++)
        cr_assert(g[i].run == i + 1 && g[i].rank == 0 && isnan(g[i].gain_points));
    qat_sweep_free(sw);
}

#define HEAD "[sweep]\nbase = base.ini\n"

Test(sweep_spec, unknown_key_in_the_grid)
{
    expect_error(HEAD "[grid.quant]\nweight_bits = 2\nweight_bitz = 2,4\n", NULL, 0, 5,
                 "unknown key 'weight_bitz'");
    expect_error(HEAD "[grid.layer.conv9]\nweight_bits = 2,4\n", NULL, 0, 4,
                 "no section [layer.conv9]");
    expect_error(HEAD "[grid.quant]\nweight_bits = 2, 1\n", NULL, 0, 4,
                 "expected an integer in [2, 8], found 1");
}

Test(sweep_spec, empty_value_lists)
{
    expect_error(HEAD "[grid.quant]\nweight_bits =\n", NULL, 0, 4, "empty value list");
    expect_error(HEAD "[grid.quant]\nweight_bits = 2,,4\n", NULL, 0, 4, "empty value");
    expect_error(HEAD "[grid.quant]\nweight_bits = 2,4,\n", NULL, 0, 4, "empty value");
    expect_error(HEAD "[grid.quant]\nweight_bits = 4, 4\n", NULL, 0, 4, "listed twice");
}

Test(sweep_spec, missing_base_config)
{
    expect_error("[sweep]\nname = x\nbase = ../nowhere/none.ini\n[grid.quant]\nweight_bits = 2\n",
                 NULL, 0, 3, "cannot read the base config");
    expect_error("[sweep]\nname = x\n[grid.quant]\nweight_bits = 2\n", NULL, 0, 1,
                 "missing required key 'base'");
    expect_error("[grid.quant]\nweight_bits = 2\n", NULL, 0, 0, "no [sweep] section");
}

Test(sweep_spec, a_broken_base_config_is_named_with_its_own_line)
{
    fx_write(dir, "broken.ini", "[train]\nepochs = many\n[layer.fc]\ntype = linear\nout_features = 10\n");
    expect_error("[sweep]\nbase = broken.ini\n[grid.quant]\nweight_bits = 2\n", NULL, 0, 2,
                 "broken.ini:2");
}

Test(sweep_spec, malformed_lines_and_sections)
{
    expect_error(HEAD "[grid.quant]\nweight_bits 2, 4\n", NULL, 0, 4, "expected 'key = value'");
    expect_error(HEAD "[grid.quant\nweight_bits = 2\n", NULL, 0, 3, "unterminated section");
    expect_error(HEAD "[gird.quant]\nweight_bits = 2\n", NULL, 0, 3, "unknown section [gird.quant]");
    expect_error(HEAD "[grid]\nweight_bits = 2\n", NULL, 0, 3, "needs the config section");
    expect_error(HEAD "[sweep2]\n", NULL, 0, 3, "unknown section");
    expect_error("[sweep]\nbase = base.ini\njobz = 2\n[grid.quant]\nweight_bits = 2\n", NULL, 0, 3,
                 "unknown key 'jobz'");
    expect_error("[sweep]\nbase = base.ini\nname = ../up\n[grid.quant]\nweight_bits = 2\n", NULL, 0,
                 3, "names a folder");
    expect_error(HEAD, NULL, 0, 0, "nothing to run");
}

Test(sweep_spec, bad_explicit_runs)
{
    expect_error(HEAD "[runs]\nr1 = quant.weight_bits\n", NULL, 0, 4, "is not section.key=value");
    expect_error(HEAD "[runs]\nr1 = weight_bits=4\n", NULL, 0, 4, "is not section.key=value");
    expect_error(HEAD "[runs]\nr1 = quant.weight_bits=4 quant.weight_bits=2\n", NULL, 0, 4,
                 "set twice");
    expect_error(HEAD "[runs]\nr1 = train.lr=0\n", NULL, 0, 4, "[train] lr");
    expect_error(HEAD "[runs]\nplots = train.lr=0.1\n", NULL, 0, 4, "not 'plots'");
    expect_error(HEAD "[grid.quant]\nweight_bits = 2\n[runs]\nw2 = train.lr=0.1\n", NULL, 0, 6,
                 "a grid run has this name");
}

Test(sweep_spec, one_key_in_one_place)
{
    expect_error(HEAD "[set.quant]\nweight_bits = 4\n[grid.quant]\nweight_bits = 2,8\n", NULL, 0,
                 4, "also varies quant.weight_bits");
    expect_error(HEAD "[set.train]\nepochz = 4\n[grid.quant]\nweight_bits = 2,8\n", NULL, 0, 4,
                 "unknown key 'epochz'");
    const char *sets[] = {"quant.weight_bits=4"};
    expect_error(HEAD "[grid.quant]\nweight_bits = 2,8\n", sets, 1, 0,
                 "--set quant.weight_bits=4: the sweep");
}

Test(sweep_spec, methods_cross_the_grid_as_its_fastest_axis)
{
    qat_sweep *sw = load_ok("[sweep]\nbase = base.ini\n[grid.quant]\nweight_bits = 2, 8\n"
                            "[methods]\nqat = train.lr=0.01\nfast = train.lr=0.1 train.epochs=2\n"
                            "[runs]\nlone = train.seed=3\n",
                            NULL, 0);
    static const char *const names[] = {"w2_qat", "w2_fast", "w8_qat", "w8_fast", "lone"};
    cr_assert_eq(sw->nruns, 5);
    cr_assert_eq(sw->ngrid_runs, 4);
    cr_assert_eq(sw->ngrid_keys, 2, "weight bits, then the method");
    cr_assert_str_eq(sw->keys[1], QAT_SWEEP_METHOD_KEY);
    cr_assert_str_eq(sw->keys[2], "train.seed", "then the keys of explicit runs");
    for (int i = 0; i < 5; i++)
        cr_assert_str_eq(sw->runs[i].name, names[i]);
    cr_assert_str_eq(sw->runs[1].values[1], "fast");
    cr_assert_str_eq(sw->runs[4].values[1], "", "explicit runs are not crossed");
    static const char *const w8fast[] = {"quant.weight_bits=8", "train.lr=0.1", "train.epochs=2"};
    expect_sets(&sw->runs[3], w8fast, 3);
    qat_sweep_free(sw);
    /* methods alone: one run each */
    sw = load_ok(HEAD "[methods]\na = train.lr=0.01\nb = train.lr=0.02\n", NULL, 0);
    cr_assert_eq(sw->nruns, 2);
    cr_assert_str_eq(sw->runs[1].name, "b");
    qat_sweep_free(sw);
}

/* A regression sweep's methods table names its metric (R^2), not accuracy. */
Test(sweep_spec, methods_table_names_the_regression_metric)
{
    qat_sweep *sw = load_ok(HEAD "[methods]\na = train.lr=0.01\nb = train.lr=0.02\n", NULL, 0);
    qat_sweep_outcome o[2];
    for (int i = 0; i < 2; i++) {
        memset(&o[i], 0, sizeof o[i]);
        o[i].status = QAT_RUN_OK;
        o[i].regression = 1;
        o[i].float_acc = o[i].wall_seconds = o[i].bytes_int8 = o[i].sparsity = NAN;
        o[i].train_seconds = o[i].ptq_seconds = NAN;
        o[i].fq_acc = o[i].int8_acc = 0.9 + 0.01 * i;
        o[i].agreement = 1;
    }
    qat_error e;
    cr_assert_eq(qat_sweep_write_tables(sw, o, dir, &e), QAT_OK, "%s", e.msg);
    char p[256];
    snprintf(p, sizeof p, "%s/results.md", dir);
    char *md = fx_read(p);
    cr_assert(strstr(md, "Test R^2 (R² x100) of each method's integer model"), "%s", md);
    cr_assert_null(strstr(md, "Test accuracy"), "%s", md);
    cr_assert(strstr(md, "| 90.00 | 91.00 |"), "%s", md);
    free(md);
    qat_sweep_free(sw);
}

Test(sweep_spec, bad_methods)
{
    expect_error(HEAD "[grid.quant]\nweight_bits = 2, 8\n[methods]\nm = quant.weight_bits=4\n",
                 NULL, 0, 4, "[methods] set quant.weight_bits, which the grid varies");
    expect_error(HEAD "[set.train]\nlr = 0.1\n[methods]\nm = train.lr=0.2\n", NULL, 0, 4,
                 "also varies train.lr");
    const char *sets[] = {"train.lr=0.3"};
    expect_error(HEAD "[methods]\nm = train.lr=0.2\n", sets, 1, 0,
                 "--set train.lr=0.3: the sweep");
    expect_error(HEAD "[methods]\nplots = train.lr=0.2\n", NULL, 0, 4, "method names are folder");
    expect_error(HEAD "[methods]\nm = train.mode=sometimes\n", NULL, 0, 4, "[train] mode");
}

/* The shipped PTQ-vs-QAT sweep: every grid point quantizes the one float
 * checkpoint post-training with each compensation and fine-tunes it, the
 * method varying fastest, and every run's resolved config says so. */
Test(sweep_spec, shipped_ptq_vs_qat_sweep)
{
    const char *root = getenv("QAT_SOURCE_ROOT");
    cr_assert(root, "QAT_SOURCE_ROOT is not set");
    char p[512];
    snprintf(p, sizeof p, "%s/configs/sweeps/mnist_cnn_ptq_vs_qat.ini", root);
    qat_sweep *sw;
    qat_error e;
    cr_assert_eq(qat_sweep_load(p, NULL, 0, &sw, &e), QAT_OK, "%s", e.msg);
    cr_assert_eq(sw->nruns, 24);
    cr_assert_eq(sw->ngrid_keys, 3);
    cr_assert_str_eq(sw->keys[2], QAT_SWEEP_METHOD_KEY);
    static const char *const methods[] = {"ptq", "ptq_bc", "ptq_adaround", "qat"};
    static const char *const want[] = {"mode = ptq\n", "mode = ptq\n", "mode = ptq\n",
                                       "mode = qat\n"};
    static const char *const comp[] = {"bias_correction = false\nadaround = false",
                                       "bias_correction = true\nadaround = false",
                                       "bias_correction = false\nadaround = true", NULL};
    for (int i = 0; i < sw->nruns; i++) {
        const qat_sweep_run *r = &sw->runs[i];
        cr_assert_str_eq(r->values[2], methods[i % 4], "%s", r->name);
        cr_assert(strstr(r->resolved, want[i % 4]), "%s", r->name);
        cr_assert(strstr(r->resolved, "init = runs/mnist_cnn_float/checkpoint.h5\n"), "%s",
                  r->name);
        cr_assert(!comp[i % 4] || strstr(r->resolved, comp[i % 4]), "%s", r->name);
    }
    cr_assert_str_eq(sw->runs[0].name, "w2_a4_ptq");
    cr_assert_str_eq(sw->runs[23].name, "w8_a8_qat");
    qat_sweep_free(sw);
}

Test(sweep_spec, pareto_front)
{
    /* cost, value: (1,50) (2,60) (2,55) (3,60) (4,70) (NaN) (0.5,40) (4,70) */
    double x[] = {1, 2, 2, 3, 4, NAN, 0.5, 4}, y[] = {50, 60, 55, 60, 70, 99, 40, 70};
    int f[8];
    cr_assert_eq(qat_sweep_pareto(x, y, 8, f), 5);
    int want[] = {1, 1, 0, 0, 1, 0, 1, 1};
    for (int i = 0; i < 8; i++)
        cr_assert_eq(f[i], want[i], "point %d", i);
}

Test(sweep_spec, outcomes_counted_by_status)
{
    qat_sweep_outcome o[6] = {{.status = QAT_RUN_OK},     {.status = QAT_RUN_FAILED},
                              {.status = QAT_RUN_CACHED}, {.status = QAT_RUN_OK},
                              {.status = QAT_RUN_OK},     {.status = QAT_RUN_PENDING}};
    int n[QAT_RUN_NSTATUS] = {7, 7, 7, 7};
    qat_sweep_count_status(o, 6, n);
    cr_assert_eq(n[QAT_RUN_PENDING], 1);
    cr_assert_eq(n[QAT_RUN_OK], 3);
    cr_assert_eq(n[QAT_RUN_CACHED], 1);
    cr_assert_eq(n[QAT_RUN_FAILED], 1);
    qat_sweep_count_status(o, 0, n);
    for (int s = 0; s < QAT_RUN_NSTATUS; s++)
        cr_assert_eq(n[s], 0);
}

Test(sweep_spec, summary_reader)
{
    fx_write(dir, "s.json",
             "{\n  \"config\": \"a, \\\"b\\\" }\",\n  \"float_accuracy\": null,\n"
             "  \"fakequant_accuracy\": 0.973,\n  \"int8_accuracy\": 0.9725,\n"
             "  \"agreement\": 0.999,\n  \"epoch_seconds\": [1.5, 2],\n"
             "  \"nested\": {\"int8_accuracy\": 0.1, \"x\": [1, {\"y\": 2}]},\n"
             "  \"train_seconds\": 3.5,\n  \"model_bytes_int8\": 13016,\n  \"sparsity\": 0.5,\n"
             "  \"ptq_seconds\": 1.25\n}\n");
    char p[256];
    snprintf(p, sizeof p, "%s/s.json", dir);
    qat_sweep_outcome o;
    qat_error e;
    cr_assert_eq(qat_sweep_read_summary(p, &o, &e), QAT_OK, "%s", e.msg);
    cr_assert(isnan(o.float_acc));
    cr_assert_float_eq(o.fq_acc, 0.973, 1e-12);
    cr_assert_float_eq(o.int8_acc, 0.9725, 1e-12, "the nested key must not win");
    cr_assert_float_eq(o.agreement, 0.999, 1e-12);
    cr_assert_float_eq(o.train_seconds, 3.5, 1e-12);
    cr_assert_float_eq(o.bytes_int8, 13016, 0);
    cr_assert_float_eq(o.sparsity, 0.5, 1e-12);
    cr_assert_float_eq(o.ptq_seconds, 1.25, 1e-12);
    fx_write(dir, "s.json", "{\"int8_accuracy\": 0.9, \"fakequant_accuracy\": 0.9}");
    cr_assert_eq(qat_sweep_read_summary(p, &o, &e), QAT_OK, "%s", e.msg);
    cr_assert(isnan(o.sparsity), "no sparsity key: NaN (empty cell)");
    cr_assert(isnan(o.ptq_seconds));
    fx_write(dir, "s.json", "{\"int8_accuracy\": 0.9, \"fakequant_accuracy\" 0.9}");
    cr_assert_eq(qat_sweep_read_summary(p, &o, &e), QAT_EINVAL);
    cr_assert(strstr(e.msg, "malformed JSON"), "%s", e.msg);
    fx_write(dir, "s.json", "{\"int8_accuracy\": 0.9, \"fakequant_accuracy\": 0.9");
    cr_assert_eq(qat_sweep_read_summary(p, &o, &e), QAT_EINVAL);
}
