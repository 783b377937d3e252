/* Catalogue, configs: qat-train on broken INI files and overrides. Each case
 * starts from a small valid config (the first test proves it trains) and
 * breaks one thing; the message must name the file and line (or the --set)
 * and the key. */
#include "robust.h"

/* "[data]" and three keys, so a body starts at line 5 */
#define BODY_LINE 5
#define LAYERS                                                                                     \
    "[layer.flatten]\ntype = flatten\n[layer.fc]\ntype = linear\nout_features = 10\n"

static void write_cfg(const char *body)
{
    rb_printf("c.ini", "[data]\ndir = %s\ntrain_limit = 200\ntest_limit = 100\n%s",
              rb_src("datasets/mnist-subset"), body);
}

/* qat-train c.ini --out run --quiet [extra...] must fail with code 2 and
 * mention each wanted string. */
#define TRAIN_BAD(...)                                                                             \
    RB_EXPECT_BAD("qat-train", RB_ARGS(rb_path("c.ini"), "--out", rb_path("run"), "--quiet"),     \
                  __VA_ARGS__)

TestSuite(bad_config, .init = rb_setup, .fini = rb_teardown, .timeout = 120);

Test(bad_config, base_config_trains)
{
    write_cfg("[train]\nepochs = 1\nthreads = 1\n" LAYERS);
    int code = rb_run("qat-train", RB_ARGS(rb_path("c.ini"), "--out", rb_path("run"), "--quiet"));
    cr_assert_eq(code, 0, "the catalogue's base config must train\n%s", rb_err);
}

Test(bad_config, empty_file)
{
    rb_write("c.ini", "", 0);
    TRAIN_BAD("c.ini", "empty");
}

Test(bad_config, binary_file)
{
    unsigned char junk[512];
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (unsigned char)(i * 193u + 7u);
    rb_write("c.ini", junk, sizeof junk);
    TRAIN_BAD("c.ini:1", "is this a text file");
}

Test(bad_config, nul_byte)
{
    static const char text[] = "[train]\nepo\0chs = 1\n";
    rb_write("c.ini", text, sizeof text - 1);
    TRAIN_BAD("c.ini:2", "0x00");
}

Test(bad_config, very_long_line)
{
    size_t n = 10000;
    char *body = malloc(n + 256);
    cr_assert_not_null(body);
    int k = snprintf(body, 64, "[train]\nseed = ");
    memset(body + k, '1', n);
    strcpy(body + k + n, "\n" LAYERS);
    write_cfg(body);
    free(body);
    TRAIN_BAD("c.ini:6", "characters long");
}

Test(bad_config, unterminated_section)
{
    write_cfg("[train\nepochs = 1\n" LAYERS);
    TRAIN_BAD("c.ini:5", "unterminated section");
}

Test(bad_config, duplicate_key)
{
    write_cfg("[train]\nepochs = 1\nepochs = 2\n" LAYERS);
    TRAIN_BAD("c.ini:7", "duplicate key 'epochs'", "line 6");
}

Test(bad_config, duplicate_section)
{
    write_cfg("[train]\nepochs = 1\n[train]\nseed = 2\n" LAYERS);
    TRAIN_BAD("c.ini:7", "duplicate section [train]");
}

Test(bad_config, unknown_section)
{
    write_cfg("[trian]\nepochs = 1\n" LAYERS);
    TRAIN_BAD("c.ini:5", "unknown section [trian]");
}

Test(bad_config, unknown_key)
{
    write_cfg("[train]\nepocs = 1\n" LAYERS);
    TRAIN_BAD("c.ini:6", "unknown key 'epocs'", "epochs");
}

Test(bad_config, key_outside_section)
{
    rb_printf("c.ini", "epochs = 3\n[data]\ndir = %s\n" LAYERS, rb_src("datasets/mnist-subset"));
    TRAIN_BAD("c.ini:1", "outside");
}

Test(bad_config, line_without_equals)
{
    write_cfg("[train]\nepochs 3\n" LAYERS);
    TRAIN_BAD("c.ini:6", "key = value");
}

Test(bad_config, integer_of_wrong_type)
{
    write_cfg("[train]\nbatch_size = many\n" LAYERS);
    TRAIN_BAD("c.ini:6", "batch_size", "'many'");
}

Test(bad_config, bool_of_wrong_type)
{
    write_cfg(LAYERS "bias = maybe\n");
    TRAIN_BAD("c.ini:10", "bias", "'maybe'");
}

Test(bad_config, unknown_enum_value)
{
    write_cfg("[train]\noptimizer = adamm\n" LAYERS);
    TRAIN_BAD("c.ini:6", "optimizer", "'adamm'");
}

Test(bad_config, number_with_trailing_garbage)
{
    write_cfg("[train]\nlr = 0.1x\n" LAYERS);
    TRAIN_BAD("c.ini:6", "lr", "'0.1x'");
}

Test(bad_config, empty_value)
{
    write_cfg("[train]\nlr =\n" LAYERS);
    TRAIN_BAD("c.ini:6", "lr");
}

Test(bad_config, integer_out_of_range)
{
    write_cfg("[train]\nbatch_size = 0\n" LAYERS);
    TRAIN_BAD("c.ini:6", "batch_size", "[1, 65536]");
}

Test(bad_config, integer_overflowing_long)
{
    write_cfg("[train]\nepochs = 99999999999999999999\n" LAYERS);
    TRAIN_BAD("c.ini:6", "epochs");
}

Test(bad_config, nan_number)
{
    write_cfg("[train]\nlr = nan\n" LAYERS);
    TRAIN_BAD("c.ini:6", "lr", "finite");
}

Test(bad_config, infinite_number)
{
    write_cfg("[model]\ninput_mean = -inf\n" LAYERS);
    TRAIN_BAD("c.ini:6", "input_mean", "finite");
}

Test(bad_config, bits_out_of_range)
{
    write_cfg("[quant]\nweight_bits = 9\n" LAYERS);
    TRAIN_BAD("c.ini:6", "weight_bits", "[2, 8]");
}

Test(bad_config, layer_without_type)
{
    write_cfg("[layer.x]\nout_features = 3\n" LAYERS);
    TRAIN_BAD("c.ini:5", "[layer.x]", "'type'");
}

Test(bad_config, unknown_layer_type)
{
    write_cfg("[layer.x]\ntype = lstm\n" LAYERS);
    TRAIN_BAD("c.ini:6", "type", "'lstm'");
}

Test(bad_config, layer_name_too_long)
{
    char body[512];
    snprintf(body, sizeof body, "[layer.%0100d]\ntype = flatten\n" LAYERS, 0);
    write_cfg(body);
    TRAIN_BAD("c.ini:5", "layer names must have");
}

Test(bad_config, no_layers)
{
    write_cfg("[train]\nepochs = 1\n");
    TRAIN_BAD("c.ini", "no [layer.<name>] sections");
}

Test(bad_config, kernel_larger_than_input)
{
    write_cfg("[layer.c]\ntype = conv2d\nout_channels = 2\nkernel = 40\n" LAYERS);
    TRAIN_BAD("c.ini:5", "[layer.c]", "does not fit");
}

Test(bad_config, padding_not_below_kernel)
{
    write_cfg("[layer.c]\ntype = conv2d\nout_channels = 2\nkernel = 3\npadding = 3\n" LAYERS);
    TRAIN_BAD("c.ini:5", "[layer.c]", "padding 3");
}

Test(bad_config, linear_on_unflattened_input)
{
    write_cfg("[layer.fc]\ntype = linear\nout_features = 10\n");
    TRAIN_BAD("c.ini:5", "[layer.fc]", "flatten");
}

Test(bad_config, in_features_disagree_with_previous_layer)
{
    write_cfg("[layer.flatten]\ntype = flatten\n[layer.fc]\ntype = linear\nin_features = 100\n"
              "out_features = 10\n");
    TRAIN_BAD("c.ini:7", "in_features = 100", "784");
}

Test(bad_config, last_layer_not_num_classes)
{
    write_cfg("[layer.flatten]\ntype = flatten\n[layer.fc]\ntype = linear\nout_features = 7\n");
    TRAIN_BAD("c.ini:7", "[layer.fc]", "num_classes");
}

Test(bad_config, input_shape_disagrees_with_data)
{
    write_cfg("[model]\ninput_height = 20\n" LAYERS);
    TRAIN_BAD("c.ini", "[model]", "20x28x1", "28x28x1");
}

Test(bad_config, batch_larger_than_dataset)
{
    write_cfg("[train]\nbatch_size = 201\n" LAYERS);
    TRAIN_BAD("c.ini", "[train] batch_size = 201", "200 training images");
}

Test(bad_config, override_of_missing_section)
{
    write_cfg(LAYERS);
    RB_EXPECT_BAD("qat-train",
                  RB_ARGS(rb_path("c.ini"), "--out", rb_path("run"), "--quiet", "--set",
                          "layer.nope.out_features=3"),
                  "--set layer.nope.out_features=3", "[layer.nope]");
}

Test(bad_config, override_with_bad_value)
{
    write_cfg(LAYERS);
    RB_EXPECT_BAD("qat-train",
                  RB_ARGS(rb_path("c.ini"), "--out", rb_path("run"), "--quiet", "--set",
                          "train.lr=abc"),
                  "--set train.lr=abc", "lr");
}

Test(bad_config, config_file_missing)
{
    TRAIN_BAD("c.ini", "cannot open");
}

Test(bad_config, config_is_a_directory)
{
    RB_EXPECT_BAD("qat-train", RB_ARGS(rb_dir, "--out", rb_path("run"), "--quiet"), rb_dir,
                  "is a directory");
}

/* ---- graph models: inputs and shapes ------------------------------------------- */
/* body lines: 5 [layer.c1], 9 [layer.c2], 13 [layer.sum], 14 type, 15 inputs */
#define GRAPH(C2_STRIDE, SUM_INPUTS)                                                               \
    "[layer.c1]\ntype = conv2d\nout_channels = 2\npadding = 1\n"                                   \
    "[layer.c2]\ntype = conv2d\nout_channels = 2\nstride = " C2_STRIDE "\n"                        \
    "[layer.sum]\ntype = add\ninputs = " SUM_INPUTS "\nactivation = relu\n" LAYERS

Test(bad_config, add_of_different_shapes)
{
    write_cfg(GRAPH("2", "c2, c1"));
    TRAIN_BAD("c.ini:13", "[layer.sum]", "same shape", "'c2' gives 13x13x2", "'c1' gives 28x28x2");
}

Test(bad_config, input_unknown_layer)
{
    write_cfg(GRAPH("1", "c2, c0"));
    TRAIN_BAD("c.ini:15", "[layer.sum] inputs: unknown layer 'c0'");
}

Test(bad_config, input_later_layer)
{
    write_cfg(GRAPH("1", "c2, flatten"));
    TRAIN_BAD("c.ini:15", "[layer.sum] inputs", "'flatten'", "comes later");
}

Test(bad_config, input_cycle)
{
    write_cfg("[layer.c1]\ntype = conv2d\nout_channels = 2\ninput = c2\n"
              "[layer.c2]\ntype = conv2d\nout_channels = 2\n" LAYERS);
    TRAIN_BAD("c.ini:8", "[layer.c1] input", "a cycle");
}

Test(bad_config, unused_layer_output)
{
    write_cfg("[layer.c1]\ntype = conv2d\nout_channels = 2\n"
              "[layer.c2]\ntype = conv2d\nout_channels = 2\ninput = c1\n"
              "[layer.c3]\ntype = conv2d\nout_channels = 2\ninput = c1\n" LAYERS);
    TRAIN_BAD("c.ini:8", "[layer.c2]", "never used");
}

Test(bad_config, groups_not_dividing_channels)
{
    write_cfg("[layer.c1]\ntype = conv2d\nout_channels = 3\n"
              "[layer.c2]\ntype = conv2d\nout_channels = 4\ngroups = 2\n" LAYERS);
    TRAIN_BAD("c.ini:8", "[layer.c2]", "groups = 2", "(3)");
}

/* quantize = false (a float layer) only where a float kernel exists */
Test(bad_config, float_layer_on_a_pool_or_a_grouped_conv)
{
    write_cfg("[layer.c1]\ntype = conv2d\nout_channels = 4\n"
              "[layer.p]\ntype = maxpool2d\nquantize = false\n" LAYERS);
    TRAIN_BAD("c.ini:10", "[layer.p] quantize", "only a conv2d (groups = 1) or linear layer",
              "this is a maxpool2d");
    write_cfg("[layer.c1]\ntype = conv2d\nout_channels = 4\n"
              "[layer.c2]\ntype = conv2d\nout_channels = 4\ngroups = 2\nquantize = false\n" LAYERS);
    TRAIN_BAD("c.ini:12", "[layer.c2] quantize", "conv2d with groups > 1");
}
