/* Pruning through qat-train: --resume stays bit-identical (masks, dense
 * copy and all); the log, metrics.csv and summary.json report sparsity and
 * the penalty; bad pruning configs end with exit 2 and file:line. */
#include <criterion/criterion.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/tmpdir.h"
#include "qat/run.h"
#include "run_tool.h"

static const char *env(const char *name)
{
    const char *v = getenv(name);
    cr_assert_not_null(v, "%s is not set (run through meson test)", name);
    return v;
}

static void mk(char buf[64])
{
    tc_tmpdir(buf, 64, "qat-prune-train");
}

/* ---- resume ------------------------------------------------------------------ */

static void cfg_for(const char *const *extra, int nextra, qat_config *cfg)
{
    char path[1024], data[1024];
    snprintf(path, sizeof path, "%s/configs/mnist_cnn.ini", env("QAT_SOURCE_ROOT"));
    snprintf(data, sizeof data, "data.dir=%s/datasets/mnist-subset", env("QAT_SOURCE_ROOT"));
    /* 600 images of 64: 10 steps per epoch; masks update in every epoch */
    const char *sets[32] = {data, "train.progress=false", "train.threads=2", "train.epochs=3",
                            "data.train_limit=600", "data.test_limit=200",
                            "layer.conv1.out_channels=8", "layer.conv2.out_channels=8",
                            "layer.fc1.in_features=392", "layer.fc1.out_features=16",
                            "prune.unit=step", "prune.start=3", "prune.end=25",
                            "prune.frequency=4"};
    int n = 14;
    for (int i = 0; i < nextra; i++)
        sets[n++] = extra[i];
    qat_error e;
    cr_assert_eq(qat_config_load(path, sets, n, cfg, &e), QAT_OK, "%s", e.msg);
}

/* Every dataset of a checkpoint, concatenated. */
static float *read_all(const char *dir, size_t *n)
{
    char p[512];
    snprintf(p, sizeof p, "%s/checkpoint.h5", dir);
    hid_t f = H5Fopen(p, H5F_ACC_RDONLY, H5P_DEFAULT);
    cr_assert_geq(f, 0, "%s", p);
    const char *names[] = {"params", "state", "optimizer_state", "prune_state"};
    float *all = NULL;
    *n = 0;
    for (int i = 0; i < 4; i++) {
        cr_assert_gt(H5Lexists(f, names[i], H5P_DEFAULT), 0, "%s has no /%s", p, names[i]);
        hid_t d = H5Dopen2(f, names[i], H5P_DEFAULT);
        hid_t s = H5Dget_space(d);
        hsize_t m;
        H5Sget_simple_extent_dims(s, &m, NULL);
        all = realloc(all, (*n + m) * sizeof(float));
        H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, all + *n);
        *n += m;
        H5Sclose(s);
        H5Dclose(d);
    }
    H5Fclose(f);
    return all;
}

static void train_in(const char *dir, const char *const *extra, int nextra, int stop_after,
                     int resume, qat_status expect)
{
    qat_config *cfg = malloc(sizeof *cfg);
    cfg_for(extra, nextra, cfg);
    qat_train_opts o = {.out_dir = dir, .quiet = 1, .stop_after = stop_after, .resume = resume};
    qat_error e;
    qat_status st = qat_run(cfg, &o, &e);
    cr_assert_eq(st, expect, "%s", e.msg);
    free(cfg);
}

static void check_resume(const char *const *extra, int nextra)
{
    char full[64], cut[64];
    mk(full);
    mk(cut);
    train_in(full, extra, nextra, 0, 0, QAT_OK);
    train_in(cut, extra, nextra, 1, 0, QAT_EINTERNAL); /* "killed" after epoch 1 */
    train_in(cut, extra, nextra, 0, 1, QAT_OK);
    size_t n1, n2;
    float *x = read_all(full, &n1), *y = read_all(cut, &n2);
    cr_assert_eq(n1, n2);
    cr_assert_eq(memcmp(x, y, n1 * sizeof(float)), 0, "resumed run differs from uninterrupted");
    free(x);
    free(y);
}

Test(resume, gradual_magnitude_with_l2, .timeout = 300)
{
    const char *extra[] = {"prune.method=magnitude", "prune.target_sparsity=0.8",
                           "regularize.l2=1e-3", "layer.fc2.l1=1e-4"};
    check_resume(extra, 4);
}

Test(resume, dynamic_with_regrow_and_momentum, .timeout = 300)
{
    const char *extra[] = {"prune.method=magnitude", "prune.schedule=dynamic",
                           "prune.scope=layer", "train.optimizer=momentum", "train.lr=0.05"};
    check_resume(extra, 5);
}

Test(resume, channel_pruning, .timeout = 300)
{
    const char *extra[] = {"prune.method=channel", "layer.conv1.prune=false"};
    check_resume(extra, 2);
}

/* A checkpoint whose masks were damaged is refused on --resume. */
Test(resume, damaged_masks_are_refused, .timeout = 300)
{
    char d[64], p[256];
    mk(d);
    const char *extra[] = {"prune.method=magnitude"};
    train_in(d, extra, 1, 1, 0, QAT_EINTERNAL);
    snprintf(p, sizeof p, "%s/checkpoint.h5", d);
    hid_t f = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t ds = H5Dopen2(f, "prune_state", H5P_DEFAULT);
    hid_t sp = H5Dget_space(ds);
    hsize_t n;
    H5Sget_simple_extent_dims(sp, &n, NULL);
    float *v = malloc(n * sizeof(float));
    H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v);
    size_t cut = 0;
    for (size_t i = 0; i < n && !cut; i++)
        if (v[i] == 0.0f)
            cut = i + 1;
    cr_assert_gt(cut, 0u, "epoch 1 pruned something");
    v[cut - 1] = 1.0f; /* un-pruned, but its weight is still the pruned zero: fine */
    v[3] = 0.5f;       /* not a mask value */
    H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v);
    H5Sclose(sp);
    H5Dclose(ds);
    H5Fclose(f);
    free(v);
    qat_config *cfg = malloc(sizeof *cfg);
    cfg_for(extra, 1, cfg);
    qat_train_opts o = {.out_dir = d, .quiet = 1, .resume = 1};
    qat_error e;
    cr_assert_eq(qat_run(cfg, &o, &e), QAT_EINVAL);
    cr_assert(strstr(e.msg, "checkpoint.h5") && strstr(e.msg, "pruning state entry 3 is 0.5"),
              "%s", e.msg);
    free(cfg);
}

/* ---- reports ----------------------------------------------------------------- */

static char *slurp(const char *dir, const char *name)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "r");
    cr_assert_not_null(f, "%s", p);
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return strdup(buf);
}

static double json_num(const char *json, const char *key)
{
    char k[128];
    snprintf(k, sizeof k, "\"%s\": ", key);
    const char *p = strstr(json, k);
    cr_assert_not_null(p, "summary.json lacks %s", key);
    return strtod(p + strlen(k), NULL);
}

/* Runs a tool with stdout and stderr into files under dir; returns the exit
 * code. */
static int run_tool(const char *dir, const char *tool, const char *const *args)
{
    char out[512], err[512];
    snprintf(out, sizeof out, "%s/stdout", dir);
    snprintf(err, sizeof err, "%s/stderr", dir);
    return tc_run_tool(tool, args, out, err, NULL);
}

Test(report, log_metrics_and_summary_carry_sparsity_and_penalty, .timeout = 300)
{
    char dir[64], run[128], data[1024], cfg[1024];
    mk(dir);
    snprintf(run, sizeof run, "%s/run", dir);
    snprintf(cfg, sizeof cfg, "%s/configs/mnist_cnn.ini", env("QAT_SOURCE_ROOT"));
    snprintf(data, sizeof data, "data.dir=%s/datasets/mnist-subset", env("QAT_SOURCE_ROOT"));
    const char *args[] = {cfg, "--out", run, "--set", data, "--set", "train.epochs=3",
                          "--set", "data.train_limit=600", "--set", "data.test_limit=200",
                          "--set", "prune.method=magnitude", "--set", "prune.unit=step",
                          "--set", "prune.start=2", "--set", "prune.end=18", "--set",
                          "prune.frequency=4", "--set", "prune.target_sparsity=0.7", "--set",
                          "regularize.l1=1e-5", "--set", "train.progress=false", NULL};
    int code = run_tool(dir, "qat-train", args);
    char *log = slurp(dir, "stdout");
    cr_assert_eq(code, 0, "%s\n%s", log, slurp(dir, "stderr"));
    /* a table row per update (steps 2, 6, 10, 14, 18) and the final table */
    cr_assert_not_null(strstr(log, "prune    step   epoch  overall    conv1    conv2      fc1      fc2"),
                       "%s", log);
    int rows = 0;
    for (const char *p = log; (p = strstr(p, "\nprune ")); p++)
        rows++;
    cr_assert_eq(rows, 6, "header + 5 updates:\n%s", log);
    cr_assert_not_null(strstr(log, "sparsity of the exported int8 weights"), "%s", log);
    char *csv = slurp(run, "metrics.csv");
    cr_assert(strncmp(csv,
                      "epoch,train_loss,train_accuracy,test_accuracy,lr,epoch_seconds,"
                      "images_per_second,penalty,sparsity\n",
                      strlen("epoch,train_loss")) == 0 &&
                  strstr(csv, ",penalty,sparsity\n"),
              "%s", csv);
    double prev = -1;
    const char *line = strchr(csv, '\n') + 1;
    for (int e = 1; e <= 3; e++) {
        double v[9];
        int got = sscanf(line, "%lf,%lf,%lf,%lf,%lf,%lf,%lf,%lf,%lf", &v[0], &v[1], &v[2], &v[3],
                         &v[4], &v[5], &v[6], &v[7], &v[8]);
        cr_assert_eq(got, 9, "row %d: %s", e, line);
        cr_assert_gt(v[7], 0.0, "the L1 penalty is reported apart");
        cr_assert_geq(v[8], prev, "sparsity does not fall");
        prev = v[8];
        line = strchr(line, '\n') + 1;
    }
    cr_assert_float_eq(prev, 0.7, 0.01, "all of the target by the end (%g)", prev);
    char *js = slurp(run, "summary.json");
    double sp = json_num(js, "sparsity");
    cr_assert(sp >= 0.69 && sp < 0.8, "int8-counted sparsity %g", sp);
    cr_assert_not_null(strstr(js, "\"sparsity_layers\": {"), "%s", js);
    cr_assert_not_null(strstr(js, "\"fc1\": "), "%s", js);
    cr_assert_gt(json_num(js, "model_file_bytes"), 0);
    cr_assert_gt(json_num(js, "model_bytes_int8"), 0);
    free(log);
    free(csv);
    free(js);
}

/* ---- bad configs ------------------------------------------------------------- */

static const char *small =
    "[data]\ndir = %s/datasets/mnist-subset\n" /* line 1-2 */
    "[train]\nepochs = 4\n"                   /* 3-4 */
    "[prune]\nmethod = %s\n%s\n"               /* 5-7 */
    "[layer.conv1]\ntype = conv2d\nout_channels = 4\nkernel = 3\nactivation = relu\n" /* 8-12 */
    "[layer.flat]\ntype = flatten\n"           /* 13-14 */
    "[layer.fc1]\ntype = linear\nout_features = 8\n%s\n" /* 15-18 */
    "[layer.fc2]\ntype = linear\nout_features = 10\n%s\n"; /* 19-22 */

static void expect_bad(const char *method, const char *prune_line, const char *fc1_line,
                       const char *fc2_line, const char *const *sets, const char *where,
                       const char *what)
{
    char dir[64], path[256];
    mk(dir);
    snprintf(path, sizeof path, "%s/c.ini", dir);
    FILE *f = fopen(path, "w");
    fprintf(f, small, env("QAT_SOURCE_ROOT"), method, prune_line, fc1_line, fc2_line);
    fclose(f);
    const char *args[16] = {path, "--quiet", "--out", dir};
    int n = 4;
    for (int i = 0; sets && sets[i]; i++) {
        args[n++] = "--set";
        args[n++] = sets[i];
    }
    args[n] = NULL;
    int code = run_tool(dir, "qat-train", args);
    char *err = slurp(dir, "stderr");
    cr_assert_eq(code, 2, "exit %d: %s", code, err);
    char loc[300];
    snprintf(loc, sizeof loc, "%s%s", where[0] == ':' ? path : "", where);
    cr_assert_not_null(strstr(err, loc), "stderr lacks '%s':\n%s", loc, err);
    cr_assert_not_null(strstr(err, what), "stderr lacks '%s':\n%s", what, err);
    free(err);
}

Test(bad_config, target_sparsity_of_one)
{
    expect_bad("magnitude", "target_sparsity = 1", "", "", NULL, ":7",
               "target_sparsity: expected a number in [0, 1), found 1");
}

Test(bad_config, negative_sparsity)
{
    expect_bad("magnitude", "initial_sparsity = -0.1", "", "", NULL, ":7",
               "initial_sparsity: expected a number in [0, 1), found -0.1");
}

Test(bad_config, per_layer_sparsity_out_of_range)
{
    expect_bad("magnitude", "", "target_sparsity = 1.5", "", NULL, ":18",
               "[layer.fc1] target_sparsity: expected a number in [0, 1)");
}

Test(bad_config, initial_above_target)
{
    expect_bad("magnitude", "initial_sparsity = 0.6", "", "", NULL, ":7",
               "initial_sparsity = 0.6 is above target_sparsity = 0.5");
}

Test(bad_config, end_before_start)
{
    const char *sets[] = {"prune.start=2", NULL};
    expect_bad("magnitude", "end = 1.5", "", "", sets, ":7",
               "[prune] end = 1.5 is not after start = 2");
}

Test(bad_config, end_at_the_end_of_training)
{
    expect_bad("magnitude", "end = 4", "", "", NULL, ":7",
               "[prune] end = 4 epochs is not before the end of training ([train] epochs = 4)");
}

Test(bad_config, channel_pruning_of_the_last_layer)
{
    expect_bad("channel", "", "", "prune = true", NULL, ":22",
               "[layer.fc2] cannot be channel-pruned");
}

Test(bad_config, channel_pruning_of_the_last_layer_by_target)
{
    const char *sets[] = {"layer.fc2.target_sparsity=0.3", NULL};
    expect_bad("channel", "", "", "", sets, "--set layer.fc2.target_sparsity=0.3",
               "is the last layer (its 10 outputs are the class scores)");
}

Test(bad_config, nothing_left_to_prune)
{
    const char *sets[] = {"layer.conv1.prune=false", NULL};
    expect_bad("channel", "scope = layer", "prune = false", "", sets, ":6",
               "[prune] method = channel but no layer is pruned");
}

Test(bad_config, unknown_prune_key)
{
    expect_bad("magnitude", "regorw = true", "", "", NULL, ":7", "[prune] unknown key 'regorw'");
}

Test(bad_config, negative_layer_penalty)
{
    expect_bad("none", "", "l1 = -1", "", NULL, ":18",
               "[layer.fc1] l1: expected a number in [0, 10], found -1");
}

Test(bad_config, step_schedule_past_the_run)
{
    /* 3000 subset images / 64 = 47 steps per epoch, 188 in all */
    const char *sets[] = {"prune.unit=step", "prune.start=10", NULL};
    expect_bad("magnitude", "end = 500", "", "", sets, "c.ini: [prune] end = 500 steps",
               "training runs 188 steps");
}
