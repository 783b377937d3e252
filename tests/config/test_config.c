/* Config parsing: the happy path, round trip, and every bad-input class. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qat/config.h"

static const char *base =
    "[train]\nepochs = 3\nlr = 0.01 # inline comment\noptimizer = sgd\n"
    "[quant]\nweight_bits = 4\n"
    "[layer.fc1]\ntype = linear\nout_features = 64\nactivation = relu\n"
    "[layer.fc2]\ntype = linear\nout_features = 10\nweight_bits = 8\n";

static qat_status parse(const char *text, qat_config *c, qat_error *e)
{
    return qat_config_parse(text, strlen(text), "t.ini", NULL, 0, c, e);
}

static void expect_error(const char *text, const char *const *sets, int nsets, const char *needle1,
                         const char *needle2)
{
    qat_config *c = malloc(sizeof *c);
    qat_error e;
    qat_error_clear(&e);
    qat_status st = qat_config_parse(text, strlen(text), "t.ini", sets, nsets, c, &e);
    cr_assert_eq(st, QAT_EINVAL, "expected EINVAL for %s, got %d (%s)", needle1, st, e.msg);
    cr_assert(strstr(e.msg, needle1), "message '%s' lacks '%s'", e.msg, needle1);
    if (needle2)
        cr_assert(strstr(e.msg, needle2), "message '%s' lacks '%s'", e.msg, needle2);
    free(c);
}

Test(config, parses_values_defaults_and_layer_overrides)
{
    qat_config *c = malloc(sizeof *c);
    qat_error e;
    cr_assert_eq(parse(base, c, &e), QAT_OK, "%s", e.msg);
    cr_assert_eq(c->train.epochs, 3);
    cr_assert_float_eq(c->train.lr, 0.01f, 1e-9);
    cr_assert_eq(c->train.batch_size, 64);
    cr_assert_eq(c->quant.weight_bits, 4);
    cr_assert_eq(c->quant.activation_bits, 8);
    cr_assert_eq(c->nlayers, 2);
    cr_assert_str_eq(c->layers[0].name, "fc1");
    cr_assert_eq(c->layers[0].activation, QAT_ACT_RELU);
    cr_assert_eq(c->layers[0].quant.weight_bits, 4, "inherits [quant]");
    cr_assert_eq(c->layers[1].quant.weight_bits, 8, "per-layer override");
    cr_assert_str_eq(c->name, "t");
    free(c);
}

Test(config, set_overrides_existing_and_new_fixed_sections)
{
    const char *sets[] = {"train.lr=0.5", "data.train_limit=100", "layer.fc1.out_features=32",
                          "quant.activation_bits=6"};
    qat_config *c = malloc(sizeof *c);
    qat_error e;
    cr_assert_eq(qat_config_parse(base, strlen(base), "t.ini", sets, 4, c, &e), QAT_OK, "%s", e.msg);
    cr_assert_float_eq(c->train.lr, 0.5f, 1e-9);
    cr_assert_eq(c->data.train_limit, 100);
    cr_assert_eq(c->layers[0].out_features, 32);
    cr_assert_eq(c->layers[0].quant.activation_bits, 6, "layer inherits overridden global");
    free(c);
}

/* The schema parses every enum key with the enum's own name table: the last
 * name of each table gives the enum's last value (the tables' lengths are
 * checked when enums.c compiles, their order here). */
Test(config, enum_keys_take_the_enums_own_names)
{
    const char *text =
        "[train]\noptimizer = RMSprop\nlr_schedule = cosine\nloss = mse\n"
        "[quant]\nweight_scheme = asymmetric\nweight_granularity = per_channel\n"
        "weight_observer = percentile\nactivation_observer = percentile\nweight_ste = identity\n"
        "[prune]\nmethod = channel\nschedule = dynamic\nscope = global\nunit = step\n"
        "start = 1\nend = 2\nchannel_norm = l2\n"
        "[layer.d]\ntype = dropout\n[layer.f]\ntype = flatten\n"
        "[layer.fc1]\ntype = linear\nout_features = 4\nactivation = relu\n"
        "[layer.fc2]\ntype = linear\nout_features = 10\n";
    qat_config *c = malloc(sizeof *c);
    qat_error e;
    cr_assert_eq(parse(text, c, &e), QAT_OK, "%s", e.msg);
    cr_assert_eq(c->train.optimizer, QAT_OPT_RMSPROP, "names are case-insensitive");
    cr_assert_eq(c->train.lr_schedule, QAT_LR_COSINE);
    cr_assert_eq(c->train.loss, QAT_LOSS_MSE);
    cr_assert_eq(c->quant.weight_scheme, QAT_SCHEME_ASYMMETRIC);
    cr_assert_eq(c->quant.weight_granularity, QAT_GRAN_PER_CHANNEL);
    cr_assert_eq(c->quant.weight_observer, QAT_OBS_PERCENTILE);
    cr_assert_eq(c->quant.activation_observer, QAT_OBS_PERCENTILE);
    cr_assert_eq(c->quant.weight_ste, QAT_STE_IDENTITY);
    cr_assert_eq(c->prune.method, QAT_PRUNE_CHANNEL);
    cr_assert_eq(c->prune.schedule, QAT_PRUNE_DYNAMIC);
    cr_assert_eq(c->prune.scope, QAT_PRUNE_SCOPE_GLOBAL);
    cr_assert_eq(c->prune.unit, QAT_PRUNE_UNIT_STEP);
    cr_assert_eq(c->prune.channel_norm, QAT_NORM_L2);
    cr_assert_eq(c->layers[0].type, QAT_LAYER_DROPOUT);
    cr_assert_eq(c->layers[2].activation, QAT_ACT_RELU);
    /* names for messages come from the same tables */
    cr_assert_str_eq(qat_optim_kind_name(c->train.optimizer), "rmsprop");
    cr_assert_str_eq(qat_lr_kind_name(c->train.lr_schedule), "cosine");
    cr_assert_str_eq(qat_layer_type_name(c->layers[1].type), "flatten");
    cr_assert_str_eq(qat_enum_name(qat_observer_kind_names, QAT_OBS_EMA), "ema");
    cr_assert_str_eq(qat_enum_name(qat_norm_kind_names, 2), "unknown");
    free(c);
}

Test(config, resolved_write_round_trips)
{
    qat_config *a = malloc(sizeof *a), *b = malloc(sizeof *b);
    qat_error e;
    cr_assert_eq(parse(base, a, &e), QAT_OK);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    qat_config_write(f, a);
    fclose(f);
    cr_assert_eq(qat_config_parse(buf, len, "t.ini", NULL, 0, b, &e), QAT_OK, "%s\n%s", e.msg, buf);
    cr_assert_eq(memcmp(&a->train, &b->train, sizeof a->train), 0);
    cr_assert_eq(memcmp(&a->quant, &b->quant, sizeof a->quant), 0);
    for (int i = 0; i < 2; i++) { /* the section moved, and the writer spells every key out */
        b->layers[i].line = a->layers[i].line;
        b->layers[i].explicit_activation_bits = a->layers[i].explicit_activation_bits;
    }
    cr_assert_eq(memcmp(a->layers, b->layers, sizeof a->layers[0] * 2), 0);
    free(buf);
    free(a);
    free(b);
}

/* A shape the file leaves to the data stays unwritten, so per-channel
 * input_std with three values survives the round trip (found by fuzz_config:
 * the writer used to pin input_channels = 1, which then refused the list). */
Test(config, unset_input_shape_stays_unwritten)
{
    qat_config *a = malloc(sizeof *a), *b = malloc(sizeof *b);
    qat_error e;
    const char *text = "[model]\ninput_std = 0.2, 0.3, 0.4\ninput_height = 32\n"
                       "[layer.f]\ntype = flatten\n";
    cr_assert_eq(qat_config_parse(text, strlen(text), "t.ini", NULL, 0, a, &e), QAT_OK, "%s", e.msg);
    cr_assert_eq(a->model.input_set, QAT_SET_HEIGHT);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    qat_config_write(f, a);
    fclose(f);
    cr_assert_not_null(strstr(buf, "input_height = 32\n"));
    cr_assert_null(strstr(buf, "input_channels"), "%s", buf);
    cr_assert_null(strstr(buf, "input_width"), "%s", buf);
    cr_assert_eq(qat_config_parse(buf, len, "t.ini", NULL, 0, b, &e), QAT_OK, "%s\n%s", e.msg, buf);
    cr_assert_eq(b->model.input_set, QAT_SET_HEIGHT);
    cr_assert_eq(b->model.input_std.n, 3);
    free(buf);
    free(a);
    free(b);
}

/* Written with only the layers' own [quant] keys, a config reads back the
 * same, and then a [quant] override reaches every layer but the ones that
 * set the key themselves (and the logits keep output_bits). */
Test(config, minimal_write_round_trips_and_lets_quant_overrides_through)
{
    qat_config *a = malloc(sizeof *a), *b = malloc(sizeof *b), *r = malloc(sizeof *r);
    qat_error e;
    cr_assert_eq(parse(base, a, &e), QAT_OK);
    char *full = NULL, *min = NULL;
    size_t flen = 0, mlen = 0;
    FILE *f = open_memstream(&full, &flen);
    qat_config_write(f, a);
    fclose(f);
    cr_assert_eq(qat_config_parse(full, flen, "t.ini", NULL, 0, r, &e), QAT_OK, "%s", e.msg);
    f = open_memstream(&min, &mlen);
    qat_config_write_minimal(f, r); /* from a resolved config, as checkpoints store it */
    fclose(f);
    cr_assert(strstr(min, "[layer.fc2]\ntype = linear") && strstr(min, "weight_bits = 8"), "%s",
              min);
    cr_assert_eq(qat_config_parse(min, mlen, "t.ini", NULL, 0, b, &e), QAT_OK, "%s\n%s", e.msg,
                 min);
    char *again = NULL;
    size_t alen = 0;
    f = open_memstream(&again, &alen);
    qat_config_write(f, b);
    fclose(f);
    cr_assert_str_eq(again, full, "the same resolved config");
    const char *sets[] = {"quant.weight_bits=3", "quant.activation_bits=6"};
    cr_assert_eq(qat_config_parse(min, mlen, "t.ini", sets, 2, b, &e), QAT_OK, "%s", e.msg);
    cr_assert_eq(b->layers[0].quant.weight_bits, 3, "fc1 inherits [quant]");
    cr_assert_eq(b->layers[1].quant.weight_bits, 8, "fc2 set its own");
    cr_assert_eq(b->layers[0].quant.activation_bits, 6);
    cr_assert_eq(b->layers[1].quant.activation_bits, 8, "the logits keep output_bits");
    free(full);
    free(min);
    free(again);
    free(a);
    free(b);
    free(r);
}

Test(config, train_mode_init_and_ptq_keys)
{
    qat_config *c = malloc(sizeof *c);
    qat_error e;
    cr_assert_eq(parse(base, c, &e), QAT_OK);
    cr_assert_eq(c->train.mode, QAT_MODE_QAT);
    cr_assert_str_eq(c->train.init, "");
    cr_assert_eq(c->train.init_strict, 1);
    cr_assert_eq(c->ptq.calibration_images, 1000);
    cr_assert(!c->ptq.bias_correction && !c->ptq.adaround && !c->ptq.bn_reestimate);
    const char *sets[] = {"train.mode=ptq", "train.init=runs/x/checkpoint.h5",
                          "ptq.adaround=true", "ptq.adaround_iterations=50",
                          "quant.weight_observer=mse"};
    cr_assert_eq(qat_config_parse(base, strlen(base), "t.ini", sets, 4, c, &e), QAT_OK, "%s",
                 e.msg);
    cr_assert_eq(c->train.mode, QAT_MODE_PTQ);
    cr_assert_str_eq(c->train.init, "runs/x/checkpoint.h5");
    cr_assert_eq(c->ptq.adaround_iterations, 50);
    cr_assert_eq(qat_config_parse(base, strlen(base), "t.ini", sets + 4, 1, c, &e), QAT_OK);
    cr_assert_eq(c->layers[0].quant.weight_observer, QAT_OBS_MSE);
    free(c);
}

Test(config_errors, ptq_needs_a_checkpoint_and_quantization)
{
    const char *a[] = {"train.mode=ptq"};
    expect_error(base, a, 1, "--set train.mode=ptq", "[train] init");
    const char *b[] = {"train.mode=ptq", "train.init=x.h5", "quant.enabled=false"};
    expect_error(base, b, 3, "--set quant.enabled=false", "mode = ptq");
    const char *c[] = {"train.mode=ptq", "train.init=x.h5", "ptq.adaround=true",
                       "layer.fc2.weight_observer=percentile"};
    expect_error(base, c, 4, "layer.fc2.weight_observer=percentile", "adaround");
    const char *d[] = {"ptq.calibration_images=0"};
    expect_error(base, d, 1, "calibration_images", "[1, ");
}

Test(config_errors, empty_file) { expect_error("", NULL, 0, "t.ini", "no [section]"); }
Test(config_errors, only_comments) { expect_error("# nothing\n\n", NULL, 0, "t.ini", "no [section]"); }
Test(config_errors, binary_bytes) { expect_error("[train]\nepochs = \x01\x02\n", NULL, 0, "t.ini:2", "control byte"); }
Test(config_errors, nul_byte)
{
    qat_config *c = malloc(sizeof *c);
    qat_error e;
    const char text[] = "[train]\nep\0chs = 3\n";
    cr_assert_eq(qat_config_parse(text, sizeof text - 1, "t.ini", NULL, 0, c, &e), QAT_EINVAL);
    cr_assert(strstr(e.msg, "t.ini:2") && strstr(e.msg, "0x00"), "%s", e.msg);
    free(c);
}
Test(config_errors, very_long_line)
{
    size_t n = QAT_INI_MAX_LINE + 100;
    char *t = malloc(n + 32);
    strcpy(t, "[train]\nlr = ");
    memset(t + strlen(t), '1', n);
    t[13 + n] = '\0';
    expect_error(t, NULL, 0, "t.ini:2", "characters long");
    free(t);
}
Test(config_errors, unterminated_section) { expect_error("[train\nepochs=1\n", NULL, 0, "t.ini:1", "unterminated"); }
Test(config_errors, duplicate_key) { expect_error("[train]\nepochs=1\nepochs=2\n", NULL, 0, "t.ini:3", "duplicate key 'epochs'"); }
Test(config_errors, duplicate_section) { expect_error("[train]\n[train]\n", NULL, 0, "t.ini:2", "duplicate section"); }
Test(config_errors, key_outside_section) { expect_error("epochs = 1\n[train]\n", NULL, 0, "t.ini:1", "outside"); }
Test(config_errors, line_without_equals) { expect_error("[train]\nepochs 1\n", NULL, 0, "t.ini:2", "key = value"); }
Test(config_errors, unknown_section) { expect_error("[trian]\nepochs=1\n[layer.a]\ntype=flatten\n", NULL, 0, "t.ini:1", "unknown section [trian]"); }
Test(config_errors, unknown_key) { expect_error("[train]\nepohcs = 3\n[layer.a]\ntype=flatten\n", NULL, 0, "t.ini:2", "unknown key 'epohcs'"); }
Test(config_errors, key_of_other_layer_type) { expect_error("[layer.p]\ntype = maxpool2d\nout_channels = 3\n", NULL, 0, "t.ini:3", "unknown key 'out_channels'"); }
Test(config_errors, wrong_type_int) { expect_error("[train]\nepochs = five\n[layer.a]\ntype=flatten\n", NULL, 0, "t.ini:2", "expected an integer"); }
Test(config_errors, wrong_type_float) { expect_error("[train]\nlr = fast\n[layer.a]\ntype=flatten\n", NULL, 0, "t.ini:2", "expected a number"); }
Test(config_errors, wrong_type_bool) { expect_error("[data]\nshuffle = maybe\n[layer.a]\ntype=flatten\n", NULL, 0, "t.ini:2", "true or false"); }
Test(config_errors, nan_number) { expect_error("[train]\nlr = nan\n[layer.a]\ntype=flatten\n", NULL, 0, "t.ini:2", "finite"); }
Test(config_errors, inf_number) { expect_error("[train]\nlr = 1e999\n[layer.a]\ntype=flatten\n", NULL, 0, "t.ini:2", "finite"); }
Test(config_errors, out_of_range) { expect_error("[train]\nbatch_size = 0\n[layer.a]\ntype=flatten\n", NULL, 0, "t.ini:2", "batch_size"); }
Test(config_errors, bits_too_low) { expect_error("[quant]\nweight_bits = 1\n[layer.a]\ntype=flatten\n", NULL, 0, "t.ini:2", "[2, 8]"); }
Test(config_errors, bits_too_high_per_layer) { expect_error("[layer.fc]\ntype=linear\nout_features=3\nactivation_bits = 9\n", NULL, 0, "t.ini:4", "activation_bits"); }
Test(config_errors, bad_enum) { expect_error("[train]\noptimizer = adamax\n[layer.a]\ntype=flatten\n", NULL, 0, "t.ini:2", "expected one of sgd"); }
Test(config_errors, integer_overflow) { expect_error("[train]\nepochs = 99999999999999999999\n[layer.a]\ntype=flatten\n", NULL, 0, "t.ini:2", "integer"); }
Test(config_errors, missing_required_key) { expect_error("[layer.c]\ntype = conv2d\n", NULL, 0, "t.ini:1", "missing required key 'out_channels'"); }
Test(config_errors, missing_layer_type) { expect_error("[layer.c]\nout_channels = 3\n", NULL, 0, "t.ini:1", "missing required key 'type'"); }
Test(config_errors, unknown_layer_type) { expect_error("[layer.c]\ntype = conv3d\n", NULL, 0, "t.ini:2", "conv3d"); }
Test(config_errors, no_layers) { expect_error("[train]\nepochs=1\n", NULL, 0, "t.ini", "model is empty"); }
Test(config_errors, empty_layer_name) { expect_error("[layer.]\ntype=flatten\n", NULL, 0, "t.ini:1", "layer names"); }
Test(config_errors, set_bad_value_names_the_flag)
{
    const char *sets[] = {"train.lr=abc"};
    expect_error(base, sets, 1, "--set train.lr=abc", "expected a number");
}
Test(config_errors, set_unknown_layer)
{
    const char *sets[] = {"layer.fc9.out_features=3"};
    expect_error(base, sets, 1, "--set layer.fc9.out_features=3", "no section [layer.fc9]");
}
Test(config_errors, set_without_equals)
{
    const char *sets[] = {"train.lr"};
    expect_error(base, sets, 1, "--set train.lr", "section.key=value");
}
Test(config_errors, set_unknown_key)
{
    const char *sets[] = {"train.lrr=0.1"};
    expect_error(base, sets, 1, "--set train.lrr=0.1", "unknown key 'lrr'");
}
Test(config_errors, missing_file)
{
    qat_config *c = malloc(sizeof *c);
    qat_error e;
    cr_assert_eq(qat_config_load("/nonexistent/x.ini", NULL, 0, c, &e), QAT_EINVAL);
    cr_assert(strstr(e.msg, "/nonexistent/x.ini"), "%s", e.msg);
    free(c);
}

Test(config, shipped_configs_parse)
{
    const char *root = getenv("QAT_SOURCE_ROOT");
    cr_assert_not_null(root);
    const char *files[] = {"configs/mnist_mlp.ini", "configs/mnist_cnn.ini"};
    for (int i = 0; i < (int)(sizeof files / sizeof files[0]); i++) {
        char p[1024];
        snprintf(p, sizeof p, "%s/%s", root, files[i]);
        qat_config *c = malloc(sizeof *c);
        qat_error e;
        cr_assert_eq(qat_config_load(p, NULL, 0, c, &e), QAT_OK, "%s", e.msg);
        free(c);
    }
}

Test(config_errors, per_channel_activations_rejected_at_their_line)
{
    expect_error("[quant]\nactivation_granularity = per_channel\n[layer.a]\ntype=flatten\n", NULL,
                 0, "t.ini:2", "per_channel applies to weights only");
    expect_error("[layer.fc]\ntype=linear\nout_features=10\nactivation_granularity=per_channel\n",
                 NULL, 0, "t.ini:4", "[layer.fc] activation_granularity");
}
Test(config_errors, unknown_observer) { expect_error("[quant]\nactivation_observer = histogram\n[layer.a]\ntype=flatten\n", NULL, 0, "t.ini:2", "minmax, ema, percentile, mse"); }
Test(config_errors, percentile_zero_or_above_100)
{
    expect_error("[quant]\npercentile = 0\n[layer.a]\ntype=flatten\n", NULL, 0, "t.ini:2", "(0, 100]");
    expect_error("[quant]\npercentile = 100.5\n[layer.a]\ntype=flatten\n", NULL, 0, "t.ini:2", "(0, 100]");
}
Test(config_errors, bits_1_and_9)
{
    expect_error("[quant]\nweight_bits = 9\n[layer.a]\ntype=flatten\n", NULL, 0, "t.ini:2", "[2, 8]");
    expect_error("[quant]\nactivation_bits = 1\n[layer.a]\ntype=flatten\n", NULL, 0, "t.ini:2", "[2, 8]");
}

Test(config, output_bits_apply_to_the_logits_unless_the_last_layer_says)
{
    qat_config *c = malloc(sizeof *c);
    qat_error e;
    const char *t1 = "[quant]\nactivation_bits=4\n[layer.f]\ntype=flatten\n"
                     "[layer.fc1]\ntype=linear\nout_features=8\n[layer.fc2]\ntype=linear\nout_features=10\n";
    cr_assert_eq(parse(t1, c, &e), QAT_OK, "%s", e.msg);
    cr_assert_eq(c->layers[1].quant.activation_bits, 4);
    cr_assert_eq(c->layers[2].quant.activation_bits, 8, "logits default to output_bits = 8");
    const char *t2 = "[quant]\nactivation_bits=4\noutput_bits=6\n[layer.f]\ntype=flatten\n"
                     "[layer.fc2]\ntype=linear\nout_features=10\nactivation_bits=3\n";
    cr_assert_eq(parse(t2, c, &e), QAT_OK, "%s", e.msg);
    cr_assert_eq(c->layers[1].quant.activation_bits, 3, "an explicit layer value wins");
    free(c);
}

/* ---- the model as a graph (src/config/graph.c) ------------------------------------- */

static const char *residual =
    "[layer.c1]\ntype = conv2d\nout_channels = 4\npadding = 1\n"
    "[layer.c2]\ntype = conv2d\nout_channels = 4\npadding = 1\nactivation = relu6\n"
    "[layer.sum]\ntype = add\ninputs = c2, c1\nactivation = relu\n"
    "[layer.dw]\ntype = depthwise_conv2d\nmultiplier = 2\nstride = 2\n"
    "[layer.g]\ntype = conv2d\nout_channels = 4\nkernel = 1\ngroups = 2\ninput = dw\n"
    "[layer.cat]\ntype = concat\ninputs = g , dw\n"
    "[layer.gap]\ntype = global_avgpool\n"
    "[layer.fc]\ntype = linear\nout_features = 10\n";

Test(config, inputs_resolve_to_earlier_layers)
{
    qat_config *c = malloc(sizeof *c);
    qat_error e;
    cr_assert_eq(parse(residual, c, &e), QAT_OK, "%s", e.msg);
    cr_assert_eq(c->layers[0].ninputs, 1);
    cr_assert_eq(c->layers[0].inputs[0], -1, "the first layer reads the model input");
    cr_assert_eq(c->layers[1].inputs[0], 0, "the default is the previous layer");
    cr_assert_eq(c->layers[2].ninputs, 2);
    cr_assert_eq(c->layers[2].inputs[0], 1);
    cr_assert_eq(c->layers[2].inputs[1], 0);
    cr_assert_eq(c->layers[2].activation, QAT_ACT_RELU);
    cr_assert_eq(c->layers[1].activation, QAT_ACT_RELU6);
    cr_assert_eq(c->layers[3].type, QAT_LAYER_DEPTHWISE_CONV2D);
    cr_assert_eq(c->layers[3].multiplier, 2);
    cr_assert_eq(c->layers[4].groups, 2);
    cr_assert_eq(c->layers[5].ninputs, 2, "spaces around names are trimmed");
    cr_assert_eq(c->layers[5].inputs[1], 3);
    cr_assert_eq(c->layers[6].type, QAT_LAYER_GLOBAL_AVGPOOL);
    /* the resolved config writes its inputs back, and reads back the same */
    qat_config *b = malloc(sizeof *b);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    qat_config_write(f, c);
    fclose(f);
    cr_assert(strstr(buf, "inputs = c2, c1\n") && strstr(buf, "input = dw\n"), "%s", buf);
    cr_assert_eq(qat_config_parse(buf, len, "t.ini", NULL, 0, b, &e), QAT_OK, "%s\n%s", e.msg, buf);
    for (int i = 0; i < c->nlayers; i++) {
        cr_assert_eq(b->layers[i].ninputs, c->layers[i].ninputs);
        cr_assert_eq(memcmp(b->layers[i].inputs, c->layers[i].inputs, sizeof c->layers[i].inputs), 0);
    }
    free(buf);
    free(b);
    free(c);
}

static void expect_graph_error(const char *layers, const char *needle1, const char *needle2)
{
    expect_error(layers, NULL, 0, needle1, needle2);
}

Test(config_errors, input_unknown_layer)
{
    expect_graph_error("[layer.a]\ntype=flatten\n[layer.b]\ntype=linear\nout_features=10\n"
                       "input = nope\n",
                       "t.ini:6", "[layer.b] input: unknown layer 'nope'");
}
Test(config_errors, input_itself_is_a_cycle)
{
    expect_graph_error("[layer.a]\ntype=flatten\ninput = a\n[layer.b]\ntype=linear\nout_features=10\n",
                       "t.ini:3", "is this layer itself, a cycle");
}
Test(config_errors, input_later_layer)
{
    /* c reads a, not b: a forward reference but no cycle */
    expect_graph_error("[layer.a]\ntype=flatten\n[layer.b]\ntype=flatten\ninput = c\n"
                       "[layer.c]\ntype=flatten\ninput=a\n[layer.d]\ntype=linear\n"
                       "out_features=10\n",
                       "t.ini:5", "layer 'c' (line 6) comes later in the file;");
}
Test(config_errors, input_cycle_through_two_layers)
{
    expect_graph_error("[layer.a]\ntype=flatten\ninput = b\n[layer.b]\ntype=flatten\ninput = a\n"
                       "[layer.c]\ntype=linear\nout_features=10\n",
                       "t.ini:3", "and reads this one, a cycle");
}
Test(config_errors, add_takes_two_inputs)
{
    expect_graph_error("[layer.a]\ntype=flatten\n[layer.s]\ntype=add\ninputs = a\n"
                       "[layer.c]\ntype=linear\nout_features=10\n",
                       "t.ini:5", "add sums exactly 2 layers, found 1");
}
Test(config_errors, add_without_inputs)
{
    expect_graph_error("[layer.a]\ntype=flatten\n[layer.s]\ntype=add\n"
                       "[layer.c]\ntype=linear\nout_features=10\n",
                       "t.ini:3", "missing required key 'inputs'");
}
Test(config_errors, input_key_on_add_and_inputs_on_conv)
{
    expect_graph_error("[layer.a]\ntype=flatten\n[layer.s]\ntype=add\ninput = a\n"
                       "[layer.c]\ntype=linear\nout_features=10\n",
                       "t.ini:5", "unknown key 'input'");
    expect_graph_error("[layer.a]\ntype=flatten\n[layer.c]\ntype=linear\nout_features=10\n"
                       "inputs = a\n",
                       "t.ini:6", "unknown key 'inputs'");
}
Test(config_errors, one_input_for_a_single_input_layer)
{
    expect_graph_error("[layer.a]\ntype=flatten\n[layer.b]\ntype=flatten\ninput=a\n"
                       "[layer.c]\ntype=linear\nout_features=10\ninput = a, b\n",
                       "t.ini:9", "reads one layer");
}
Test(config_errors, unused_layer_output)
{
    expect_graph_error("[layer.a]\ntype=flatten\n[layer.b]\ntype=flatten\n"
                       "[layer.c]\ntype=linear\nout_features=10\ninput = a\n",
                       "t.ini:3", "[layer.b] its output is never used");
}
Test(config_errors, channel_pruning_needs_a_chain)
{
    expect_graph_error("[prune]\nmethod = channel\n[layer.a]\ntype=conv2d\nout_channels=4\n"
                       "[layer.b]\ntype=conv2d\nout_channels=4\ngroups=2\n"
                       "[layer.f]\ntype=flatten\n[layer.c]\ntype=linear\nout_features=10\n",
                       "t.ini:2", "[layer.b] (line 6) is a grouped conv2d");
}
