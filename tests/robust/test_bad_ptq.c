/* Catalogue, starting from a trained model: bad checkpoints and settings
 * given to qat-ptq and to qat-train's [train] init. Each case must end with
 * exit code 2 naming the file and the field, and write nothing but the run
 * folder's config.ini (no checkpoint, model file or summary, not even half
 * of one). */
#include <hdf5.h>
#include <math.h>

#include "qat/runtime_h5.h"
#include "robust.h"
#include "rt_fixture.h"

#define MLP "[layer.flatten]\ntype = flatten\n[layer.fc1]\ntype = linear\nout_features = %d\n" \
            "activation = relu\n[layer.fc2]\ntype = linear\nout_features = 10\n"

/* c.ini: the MLP on 64 subset images; ck.h5: it trained in float; m.h5: an
 * integer model file. */
static void setup(void)
{
    rb_setup();
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    rb_printf("c.ini",
              "[data]\ndir = %s\ntrain_limit = 64\ntest_limit = 32\n[train]\nepochs = 1\n"
              "batch_size = 16\nthreads = 1\n[quant]\nenabled = false\n" MLP,
              rb_src("datasets/mnist-subset"), 16);
    rb_printf("other.ini", "[data]\ndir = %s\ntrain_limit = 64\ntest_limit = 32\n" MLP,
              rb_src("datasets/mnist-subset"), 32);
    int code = rb_run("qat-train", RB_ARGS(rb_path("c.ini"), "--out", rb_path("run"), "--quiet"));
    cr_assert_eq(code, 0, "%s", rb_err);
    rb_copy(rb_path("run/checkpoint.h5"), rb_path("ck.h5"));
    fx_model fx;
    fx_build_cnn(&fx, 17, 8);
    qat_error e;
    cr_assert_eq(qat_rt_h5_write(rb_path("m.h5"), &fx.desc, &e), QAT_OK, "%s", e.msg);
    fx_free(&fx);
}

TestSuite(bad_ptq, .init = setup, .fini = rb_teardown, .timeout = 120);

#define PTQ_BAD(ckpt, ...)                                                                         \
    do {                                                                                           \
        RB_EXPECT_BAD("qat-ptq", RB_ARGS(rb_path(ckpt), "--out", rb_path("out"), "--quiet"),      \
                      __VA_ARGS__);                                                                \
        rb_only_config_written("out");                                                                         \
    } while (0)

Test(bad_ptq, base_checkpoint_quantizes)
{
    int code = rb_run("qat-ptq", RB_ARGS(rb_path("ck.h5"), "--calibration-images", "32", "--out",
                                         rb_path("out"), "--quiet"));
    cr_assert_eq(code, 0, "%s", rb_err);
    size_t n;
    free(rb_read(rb_path("out/model.int8.h5"), &n));
    free(rb_read(rb_path("out/summary.json"), &n));
}

Test(bad_ptq, another_architecture)
{
    RB_EXPECT_BAD("qat-ptq", RB_ARGS(rb_path("ck.h5"), "--config", rb_path("other.ini"), "--out",
                                     rb_path("out")),
                  "other.ini", "ck.h5", "layer 'fc1'", "[32, 784]", "[16, 784]");
    rb_only_config_written("out");
}

Test(bad_ptq, another_architecture_through_train_init)
{
    RB_EXPECT_BAD("qat-train", RB_ARGS(rb_path("other.ini"), "--init", rb_path("ck.h5"), "--out",
                                       rb_path("out"), "--quiet"),
                  "other.ini", "[train] init", "ck.h5", "layer 'fc1'", "[32, 784]", "[16, 784]");
    rb_only_config_written("out");
}

Test(bad_ptq, truncated_checkpoint)
{
    size_t n;
    unsigned char *b = rb_read(rb_path("ck.h5"), &n);
    rb_write("ck.h5", b, n / 2);
    free(b);
    PTQ_BAD("ck.h5", "ck.h5", "truncated or corrupt");
}

Test(bad_ptq, model_file_instead_of_a_checkpoint)
{
    PTQ_BAD("m.h5", "m.h5", "attribute 'format' is 'qat-int8-model'", "not a checkpoint");
}

Test(bad_ptq, model_file_as_train_init)
{
    RB_EXPECT_BAD("qat-train", RB_ARGS(rb_path("c.ini"), "--init", rb_path("m.h5"), "--out",
                                       rb_path("out"), "--quiet"),
                  "c.ini", "[train] init", "m.h5", "not a checkpoint");
    rb_only_config_written("out");
}

Test(bad_ptq, missing_checkpoint)
{
    PTQ_BAD("nope.h5", "nope.h5", "cannot open checkpoint");
}

Test(bad_ptq, more_calibration_images_than_the_training_set)
{
    RB_EXPECT_BAD("qat-ptq", RB_ARGS(rb_path("ck.h5"), "--calibration-images", "65", "--out",
                                     rb_path("out")),
                  "[ptq] calibration_images = 65", "holds 64 images");
    rb_only_config_written("out");
}

Test(bad_ptq, nan_in_the_checkpoint)
{
    hid_t f = H5Fopen(rb_path("ck.h5"), H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t d = H5Dopen2(f, "params", H5P_DEFAULT);
    hid_t sp = H5Dget_space(d);
    hsize_t start[1] = {3}, one[1] = {1};
    cr_assert_geq(H5Sselect_hyperslab(sp, H5S_SELECT_SET, start, NULL, one, NULL), 0);
    hid_t msp = H5Screate_simple(1, one, NULL);
    float v = NAN;
    cr_assert_geq(H5Dwrite(d, H5T_NATIVE_FLOAT, msp, sp, H5P_DEFAULT, &v), 0);
    H5Sclose(msp);
    H5Sclose(sp);
    H5Dclose(d);
    H5Fclose(f);
    PTQ_BAD("ck.h5", "ck.h5", "'/params' element 3", "layer 'fc1' weight", "nan");
}

Test(bad_ptq, quantization_switched_off)
{
    RB_EXPECT_BAD("qat-ptq", RB_ARGS(rb_path("ck.h5"), "--set", "quant.enabled=false", "--out",
                                     rb_path("out")),
                  "[quant] enabled = false", "mode = ptq");
    rb_only_config_written("out");
}

Test(bad_ptq, ptq_mode_without_a_checkpoint)
{
    RB_EXPECT_BAD("qat-train", RB_ARGS(rb_path("c.ini"), "--set", "train.mode=ptq", "--set",
                                       "quant.enabled=true", "--out", rb_path("out")),
                  "--set train.mode=ptq", "[train] mode = ptq", "[train] init");
}

Test(bad_ptq, adaround_with_a_percentile_weight_observer)
{
    RB_EXPECT_BAD("qat-ptq", RB_ARGS(rb_path("ck.h5"), "--set", "ptq.adaround=true", "--set",
                                     "quant.weight_observer=percentile", "--out", rb_path("out")),
                  "weight_observer = percentile", "[ptq] adaround = true");
}

Test(bad_ptq, resuming_a_ptq_run)
{
    int code = rb_run("qat-ptq", RB_ARGS(rb_path("ck.h5"), "--calibration-images", "32", "--out",
                                         rb_path("out"), "--quiet"));
    cr_assert_eq(code, 0, "%s", rb_err);
    RB_EXPECT_BAD("qat-train", RB_ARGS("--resume", rb_path("out")), "mode = ptq",
                  "nothing to resume");
}

Test(bad_ptq, cli_missing_checkpoint_argument)
{
    RB_EXPECT_BAD("qat-ptq", RB_ARGS("--quiet"), "missing CHECKPOINT");
}

Test(bad_ptq, cli_unknown_option)
{
    RB_EXPECT_BAD("qat-ptq", RB_ARGS(rb_path("ck.h5"), "--epochs", "3"), "unknown option '--epochs'");
}

Test(bad_ptq, cli_set_may_not_change_the_checkpoint)
{
    RB_EXPECT_BAD("qat-ptq", RB_ARGS(rb_path("ck.h5"), "--set", "train.init=x.h5"),
                  "train.init=x.h5", "CHECKPOINT is the model to quantize");
}

Test(bad_ptq, cli_calibration_images_not_a_number)
{
    RB_EXPECT_BAD("qat-ptq", RB_ARGS(rb_path("ck.h5"), "--calibration-images", "many"),
                  "--calibration-images", "'many'");
}

Test(bad_ptq, cli_option_without_value)
{
    RB_EXPECT_BAD("qat-ptq", RB_ARGS(rb_path("ck.h5"), "--config"), "missing argument of --config");
}
