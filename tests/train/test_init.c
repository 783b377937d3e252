/* [train] init: a run starts from a checkpoint, layer by layer by name and
 * shape; mismatches are errors naming both sides unless init_strict is
 * off; quantization state comes along where it means the same; a pruned
 * checkpoint's pruned parameters stay pruned. */
#include <criterion/criterion.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/tmpdir.h"
#include "qat/run.h"
#include "qat/runtime_h5.h"

static char dir[64];

static void setup(void)
{
    tc_tmpdir(dir, sizeof dir, "qat-init");
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

/* The MLP config (784-64-10) on a few subset images, plus extra sets. */
static void load(const char *const *extra, int nextra, qat_config *cfg)
{
    const char *root = getenv("QAT_SOURCE_ROOT");
    cr_assert_not_null(root, "run through meson test");
    char path[1024], data[1024];
    snprintf(path, sizeof path, "%s/configs/mnist_mlp.ini", root);
    snprintf(data, sizeof data, "data.dir=%s/datasets/mnist-subset", root);
    const char *sets[24] = {data, "train.progress=false", "train.threads=2", "train.epochs=1",
                            "data.train_limit=300", "data.test_limit=100"};
    int n = 6;
    for (int i = 0; i < nextra; i++)
        sets[n++] = extra[i];
    qat_error e;
    cr_assert_eq(qat_config_load(path, sets, n, cfg, &e), QAT_OK, "%s", e.msg);
}

/* Trains into dir/name; returns the checkpoint's path (static buffer). */
static const char *train(const char *name, const char *const *extra, int nextra)
{
    static char ck[256];
    qat_config *cfg = malloc(sizeof *cfg);
    load(extra, nextra, cfg);
    char out[128];
    snprintf(out, sizeof out, "%s/%s", dir, name);
    qat_train_opts o = {.out_dir = out, .quiet = 1};
    qat_error e;
    cr_assert_eq(qat_run(cfg, &o, &e), QAT_OK, "%s", e.msg);
    free(cfg);
    snprintf(ck, sizeof ck, "%s/checkpoint.h5", out);
    return ck;
}

static qat_model *model_of(const char *const *extra, int nextra, qat_config *cfg)
{
    load(extra, nextra, cfg);
    qat_model *m;
    qat_error e;
    cr_assert_eq(qat_model_create(cfg, &m, &e), QAT_OK, "%s", e.msg);
    return m;
}

static qat_layer *layer(qat_model *m, const char *name)
{
    for (int i = 0; i < qat_model_num_layers(m); i++)
        if (strcmp(qat_model_layer(m, i)->cfg->name, name) == 0)
            return qat_model_layer(m, i);
    cr_assert_fail("no layer %s", name);
    return NULL;
}

TestSuite(init, .init = setup, .timeout = 240);

Test(init, strict_init_copies_parameters_and_observers_of_a_qat_checkpoint)
{
    const char *ck = train("qat", NULL, 0);
    qat_config *cfg = malloc(sizeof *cfg);
    qat_model *m = model_of(NULL, 0, cfg), *src;
    qat_error e;
    qat_init_report rep;
    cr_assert_eq(qat_model_init_from(m, ck, 1, NULL, NULL, &rep, &e), QAT_OK, "%s", e.msg);
    cr_assert_eq(rep.layers, 2);
    cr_assert_eq(rep.quant_state, 2, "the observers of a quantized run come along");
    cr_assert_eq(rep.skipped, 0);
    cr_assert_eq(qat_checkpoint_load_model(ck, &src, &e), QAT_OK, "%s", e.msg);
    size_t n, ns;
    float *a = qat_model_params(m, &n), *b = qat_model_params(src, &ns);
    cr_assert_eq(n, ns);
    cr_assert_eq(memcmp(a, b, n * sizeof *a), 0, "parameters bit for bit");
    qat_layer *l = layer(m, "fc2"), *s = layer(src, "fc2");
    cr_assert(l->q.act_obs.initialized);
    cr_assert_eq(l->q.act_obs.lo, s->q.act_obs.lo);
    cr_assert_eq(l->q.act_obs.hi, s->q.act_obs.hi);
    qat_model_destroy(src);
    qat_model_destroy(m);
    free(cfg);
}

Test(init, a_float_checkpoint_brings_no_observer_state)
{
    const char *x[] = {"quant.enabled=false"};
    const char *ck = train("float", x, 1);
    qat_config *cfg = malloc(sizeof *cfg);
    qat_model *m = model_of(NULL, 0, cfg); /* quantized: fine-tuning the float model */
    qat_error e;
    qat_init_report rep;
    cr_assert_eq(qat_model_init_from(m, ck, 1, NULL, NULL, &rep, &e), QAT_OK, "%s", e.msg);
    cr_assert_eq(rep.layers, 2);
    cr_assert_eq(rep.quant_state, 0);
    cr_assert(!layer(m, "fc1")->q.act_obs.initialized);
    qat_model_destroy(m);
    free(cfg);
}

Test(init, learned_scales_come_along_only_on_the_same_code_grid)
{
    const char *x[] = {"quant.learn_scale=true", "quant.weight_bits=4"};
    const char *ck = train("lsq", x, 2);
    for (int k = 0; k < 2; k++) {
        const char *y[] = {"quant.learn_scale=true", k ? "quant.weight_bits=2" : "quant.weight_bits=4"};
        qat_config *cfg = malloc(sizeof *cfg);
        qat_model *m = model_of(y, 2, cfg), *src;
        qat_error e;
        qat_init_report rep;
        cr_assert_eq(qat_model_init_from(m, ck, 1, NULL, NULL, &rep, &e), QAT_OK, "%s", e.msg);
        cr_assert_eq(qat_checkpoint_load_model(ck, &src, &e), QAT_OK, "%s", e.msg);
        qat_layer *l = layer(m, "fc1"), *s = layer(src, "fc1");
        cr_assert(s->q.lsq.initialized);
        if (k == 0) {
            cr_assert(l->q.lsq.initialized);
            cr_assert_eq(l->q.lsq.s_a.data[0], s->q.lsq.s_a.data[0]);
            cr_assert_eq(memcmp(l->q.lsq.s_w.data, s->q.lsq.s_w.data, 64 * sizeof(float)), 0);
        } else {
            cr_assert(!l->q.lsq.initialized, "2-bit steps are not 4-bit steps: LSQ starts over");
            cr_assert(l->q.act_obs.initialized, "the observed range is valid at any width");
        }
        qat_model_destroy(src);
        qat_model_destroy(m);
        free(cfg);
    }
}

Test(init, a_shape_mismatch_names_both_files_the_layer_and_both_shapes)
{
    const char *ck = train("qat", NULL, 0);
    const char *x[] = {"layer.fc1.out_features=32"};
    qat_config *cfg = malloc(sizeof *cfg);
    qat_model *m = model_of(x, 1, cfg);
    qat_error e;
    qat_init_report rep;
    cr_assert_eq(qat_model_init_from(m, ck, 1, NULL, NULL, &rep, &e), QAT_EINVAL);
    const char *want[] = {"mnist_mlp.ini", ck, "'fc1'", "[32, 784]", "[64, 784]", "init_strict"};
    for (int i = 0; i < 6; i++)
        cr_assert(strstr(e.msg, want[i]), "'%s' missing from: %s", want[i], e.msg);
    qat_model_destroy(m);
    free(cfg);
}

Test(init, non_strict_init_starts_mismatched_layers_fresh_and_lists_them)
{
    const char *ck = train("qat", NULL, 0);
    const char *x[] = {"layer.fc1.out_features=32"};
    qat_config *cfg = malloc(sizeof *cfg);
    qat_model *m = model_of(x, 1, cfg), *fresh = model_of(x, 1, cfg);
    char *logtext = NULL;
    size_t loglen = 0;
    FILE *log = open_memstream(&logtext, &loglen);
    qat_error e;
    qat_init_report rep;
    cr_assert_eq(qat_model_init_from(m, ck, 0, log, NULL, &rep, &e), QAT_OK, "%s", e.msg);
    fclose(log);
    /* fc1 has 32 outputs here, so fc2 reads 32 inputs: neither matches */
    cr_assert_eq(rep.skipped, 2);
    cr_assert_eq(rep.layers, 0);
    cr_assert(strstr(logtext, "layer 'fc1' weight [32, 784] here, [64, 784] in the checkpoint"),
              "%s", logtext);
    cr_assert(strstr(logtext, "initialised fresh"), "%s", logtext);
    size_t n;
    float *a = qat_model_params(m, &n), *b = qat_model_params(fresh, &n);
    cr_assert_eq(memcmp(a, b, n * sizeof *a), 0, "skipped layers keep the seed's init");
    free(logtext);
    qat_model_destroy(m);
    qat_model_destroy(fresh);
    free(cfg);
}

Test(init, a_layer_the_config_lacks_is_an_error_unless_not_strict)
{
    const char *ck = train("qat", NULL, 0);
    /* fc1 renamed: the checkpoint's fc1 has no counterpart, and hidden none */
    const char *root = getenv("QAT_SOURCE_ROOT");
    char data[1024], path[256];
    snprintf(data, sizeof data, "[data]\ndir = %s/datasets/mnist-subset\n[layer.flatten]\n"
             "type = flatten\n[layer.hidden]\ntype = linear\nout_features = 64\nactivation = "
             "relu\n[layer.fc2]\ntype = linear\nout_features = 10\n", root);
    snprintf(path, sizeof path, "%s/renamed.ini", dir);
    qat_config *cfg = malloc(sizeof *cfg);
    qat_error e;
    cr_assert_eq(qat_config_parse(data, strlen(data), path, NULL, 0, cfg, &e), QAT_OK, "%s",
                 e.msg);
    qat_model *m;
    cr_assert_eq(qat_model_create(cfg, &m, &e), QAT_OK, "%s", e.msg);
    qat_init_report rep;
    cr_assert_eq(qat_model_init_from(m, ck, 1, NULL, NULL, &rep, &e), QAT_EINVAL);
    cr_assert(strstr(e.msg, "the checkpoint's layer 'fc1'") && strstr(e.msg, "renamed.ini"), "%s",
              e.msg);
    cr_assert_eq(qat_model_init_from(m, ck, 0, NULL, NULL, &rep, &e), QAT_OK, "%s", e.msg);
    cr_assert_eq(rep.layers, 1, "fc2 matches");
    cr_assert_eq(rep.skipped, 2, "fc1 left out, hidden initialised fresh");
    qat_model_destroy(m);
    free(cfg);
}

Test(init, another_input_standardisation_is_an_error)
{
    const char *ck = train("qat", NULL, 0);
    const char *x[] = {"model.input_std=0.5"};
    qat_config *cfg = malloc(sizeof *cfg);
    qat_model *m = model_of(x, 1, cfg);
    qat_error e;
    qat_init_report rep;
    cr_assert_eq(qat_model_init_from(m, ck, 0, NULL, NULL, &rep, &e), QAT_EINVAL);
    cr_assert(strstr(e.msg, "input_std") && strstr(e.msg, ck), "%s", e.msg);
    qat_model_destroy(m);
    free(cfg);
}

/* Auto input statistics are folded into the first layer like fixed ones:
 * fine-tuning on other data keeps the checkpoint's, not its own data's. */
Test(init, auto_input_statistics_come_from_the_checkpoint)
{
    const char *x[] = {"model.input_mean=auto", "model.input_std=auto"};
    char ck[256];
    snprintf(ck, sizeof ck, "%s", train("auto", x, 2));
    char init[300];
    snprintf(init, sizeof init, "train.init=%s", ck);
    const char *y[] = {"model.input_mean=auto", "model.input_std=auto", init,
                       "data.train_limit=80"};
    const char *tuned = train("tuned", y, 4);
    qat_model *a, *b;
    qat_error e;
    cr_assert_eq(qat_checkpoint_load_model(ck, &a, &e), QAT_OK, "%s", e.msg);
    cr_assert_eq(qat_checkpoint_load_model(tuned, &b, &e), QAT_OK, "%s", e.msg);
    const qat_model_input *ia = qat_model_input_info(a), *ib = qat_model_input_info(b);
    cr_assert(ia->stats_from_data && ib->stats_from_data);
    cr_assert_eq(ia->mean[0], ib->mean[0], "mean %g (checkpoint) vs %g (fine-tuned)",
                 (double)ia->mean[0], (double)ib->mean[0]);
    cr_assert_eq(ia->std[0], ib->std[0]);
    /* and the 80 images alone have other statistics, so this can fail */
    const char *z[] = {"model.input_mean=auto", "model.input_std=auto", "data.train_limit=80"};
    const char *own = train("own", z, 3);
    qat_model *c;
    cr_assert_eq(qat_checkpoint_load_model(own, &c, &e), QAT_OK, "%s", e.msg);
    cr_assert_neq(qat_model_input_info(c)->mean[0], ia->mean[0]);
    qat_model_destroy(a);
    qat_model_destroy(b);
    qat_model_destroy(c);
}

/* A checkpoint whose stored config predates this version's keys (train.mode,
 * init, init_strict, [ptq]) reads with their defaults. */
Test(init, a_checkpoint_without_the_new_keys_still_loads)
{
    const char *ck = train("qat", NULL, 0);
    qat_config *cfg = malloc(sizeof *cfg);
    qat_error e;
    cr_assert_eq(qat_checkpoint_load_config(ck, cfg, &e), QAT_OK, "%s", e.msg);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    qat_config_write(f, cfg);
    fclose(f);
    /* drop the new lines and section, as an older writer never had them */
    char *old = calloc(len + 1, 1), *o = old;
    int in_ptq = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        if (line[0] == '[')
            in_ptq = strcmp(line, "[ptq]") == 0;
        if (in_ptq || strncmp(line, "mode =", 6) == 0 || strncmp(line, "init", 4) == 0)
            continue;
        o += sprintf(o, "%s\n", line);
    }
    cr_assert_null(strstr(old, "[ptq]"));
    hid_t h = H5Fopen(ck, H5F_ACC_RDWR, H5P_DEFAULT);
    cr_assert_geq(h, 0);
    cr_assert_geq(H5Adelete(h, "config"), 0);
    hid_t ty = H5Tcopy(H5T_C_S1);
    H5Tset_size(ty, strlen(old) + 1);
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(h, "config", ty, sp, H5P_DEFAULT, H5P_DEFAULT);
    cr_assert_geq(H5Awrite(a, ty, old), 0);
    H5Aclose(a);
    H5Sclose(sp);
    H5Tclose(ty);
    H5Fclose(h);
    qat_model *m = model_of(NULL, 0, cfg);
    qat_init_report rep;
    cr_assert_eq(qat_model_init_from(m, ck, 1, NULL, NULL, &rep, &e), QAT_OK, "%s", e.msg);
    cr_assert_eq(rep.layers, 2);
    qat_model_destroy(m);
    free(text);
    free(old);
    free(cfg);
}

/* Exact zeros among a checkpoint's parameters. */
static size_t zeros_in(const char *ck)
{
    qat_model *m;
    qat_error e;
    cr_assert_eq(qat_checkpoint_load_model(ck, &m, &e), QAT_OK, "%s", e.msg);
    size_t n, z = 0;
    const float *p = qat_model_params(m, &n);
    for (size_t i = 0; i < n; i++)
        z += p[i] == 0.0f;
    qat_model_destroy(m);
    return z;
}

/* Single pruned weights get gradients like any other (a pruned channel's
 * would not: its row and the next layer's column are both zero), so only
 * the masks keep them at zero. */
Test(init, a_pruned_checkpoint_stays_pruned_through_fine_tuning_and_resume)
{
    const char *pr[] = {"prune.method=magnitude", "prune.schedule=one_shot", "prune.start=0",
                        "prune.target_sparsity=0.8"};
    char ck[256];
    snprintf(ck, sizeof ck, "%s", train("pruned", pr, 4));
    size_t z0 = zeros_in(ck);
    cr_assert_geq(z0, (size_t)(0.8 * (784 * 64 + 64 * 10)));
    /* fine-tuning with a config that prunes nothing, interrupted and resumed */
    char init[300], out[128];
    snprintf(init, sizeof init, "train.init=%s", ck);
    snprintf(out, sizeof out, "%s/tuned", dir);
    const char *x[] = {init, "train.epochs=2"};
    qat_config *cfg = malloc(sizeof *cfg);
    load(x, 2, cfg);
    qat_error e;
    qat_train_opts o = {.out_dir = out, .quiet = 1, .stop_after = 1};
    cr_assert_eq(qat_run(cfg, &o, &e), QAT_EINTERNAL, "%s", e.msg);
    o.stop_after = 0;
    o.resume = 1;
    cr_assert_eq(qat_run(cfg, &o, &e), QAT_OK, "%s", e.msg);
    char tuned[256];
    snprintf(tuned, sizeof tuned, "%s/checkpoint.h5", out);
    cr_assert_geq(zeros_in(tuned), z0, "every pruned parameter is still +0");
    free(cfg);
}

Test(init, a_channel_pruned_checkpoint_quantizes_to_the_reduced_shapes)
{
    const char *pr[] = {"prune.method=channel", "prune.schedule=one_shot", "prune.start=0"};
    char ck[256];
    snprintf(ck, sizeof ck, "%s", train("pruned", pr, 3));
    char init[300], out[128];
    snprintf(init, sizeof init, "train.init=%s", ck);
    const char *y[] = {pr[0], pr[1], pr[2], "train.mode=ptq", init, "ptq.calibration_images=200",
                       "ptq.bias_correction=true"};
    qat_config *cfg = malloc(sizeof *cfg);
    load(y, 7, cfg);
    snprintf(out, sizeof out, "%s/ptq", dir);
    qat_train_opts p = {.out_dir = out, .quiet = 1};
    qat_error e;
    cr_assert_eq(qat_run(cfg, &p, &e), QAT_OK, "%s", e.msg);
    char mp[256];
    snprintf(mp, sizeof mp, "%s/model.int8.h5", out);
    qat_rt_owned_desc d;
    cr_assert_eq(qat_rt_h5_read_desc(mp, &d, &e), QAT_OK, "%s", e.msg);
    cr_assert_eq(d.desc.layers[1].out_c, 32, "fc1 keeps its 32 live neurons");
    cr_assert_eq(d.desc.layers[2].in_c, 32);
    qat_rt_owned_desc_free(&d);
    free(cfg);
}
