/* Catalogue, command lines: unknown flags, missing and extra arguments, bad
 * values, for every tool. The message must name the flag or argument. */
#include <dirent.h>

#include "qat/runtime_h5.h"
#include "robust.h"
#include "rt_fixture.h"

TestSuite(bad_cli, .init = rb_setup, .fini = rb_teardown, .timeout = 60);

/* ---- qat-train ---------------------------------------------------------------- */

Test(bad_cli, train_help_exits_0)
{
    cr_assert_eq(rb_run("qat-train", RB_ARGS("--help")), 0);
    cr_assert_not_null(strstr(rb_out, "usage: qat-train"), "%s", rb_out);
}

Test(bad_cli, train_unknown_flag)
{
    RB_EXPECT_BAD("qat-train", RB_ARGS("c.ini", "--epochs=3"), "unknown option '--epochs=3'");
}

Test(bad_cli, train_missing_config)
{
    RB_EXPECT_BAD("qat-train", RB_ARGS("--quiet"), "missing CONFIG");
}

Test(bad_cli, train_two_configs)
{
    RB_EXPECT_BAD("qat-train", RB_ARGS("a.ini", "b.ini"), "more than one config", "'a.ini'",
                  "'b.ini'");
}

Test(bad_cli, train_set_without_value)
{
    RB_EXPECT_BAD("qat-train", RB_ARGS("c.ini", "--set"), "--set needs an argument");
}

Test(bad_cli, train_out_without_value)
{
    RB_EXPECT_BAD("qat-train", RB_ARGS("c.ini", "--out"), "--out needs an argument");
}

Test(bad_cli, train_resume_without_value)
{
    RB_EXPECT_BAD("qat-train", RB_ARGS("--resume"), "--resume needs a run directory");
}

Test(bad_cli, train_resume_with_config)
{
    RB_EXPECT_BAD("qat-train", RB_ARGS("--resume", rb_dir, "c.ini"), "--resume", "CONFIG");
}

Test(bad_cli, train_resume_without_checkpoint)
{
    RB_EXPECT_BAD("qat-train", RB_ARGS("--resume", rb_dir, "--quiet"), "checkpoint.h5",
                  "cannot open checkpoint");
}

Test(bad_cli, train_set_without_equals)
{
    rb_printf("c.ini", "[layer.flatten]\ntype = flatten\n[layer.fc]\ntype = linear\n"
                       "out_features = 10\n");
    RB_EXPECT_BAD("qat-train", RB_ARGS(rb_path("c.ini"), "--set", "train.epochs"),
                  "--set train.epochs", "section.key=value");
}

/* ---- qat-export --------------------------------------------------------------- */

Test(bad_cli, export_unknown_flag)
{
    RB_EXPECT_BAD("qat-export", RB_ARGS("ck.h5", "-o", "m.h5", "--fast"), "unknown option '--fast'");
}

Test(bad_cli, export_output_without_value)
{
    RB_EXPECT_BAD("qat-export", RB_ARGS("ck.h5", "-o"), "-o: missing argument");
}

Test(bad_cli, export_missing_output)
{
    RB_EXPECT_BAD("qat-export", RB_ARGS("ck.h5"), "missing -o OUTPUT");
}

Test(bad_cli, export_missing_input)
{
    RB_EXPECT_BAD("qat-export", RB_ARGS("-o", "m.h5"), "missing INPUT");
}

Test(bad_cli, export_two_inputs)
{
    RB_EXPECT_BAD("qat-export", RB_ARGS("a.h5", "b.h5", "-o", "m.h5"), "more than one INPUT",
                  "'a.h5'", "'b.h5'");
}

Test(bad_cli, export_unknown_format)
{
    RB_EXPECT_BAD("qat-export", RB_ARGS("ck.h5", "-o", "m", "--format", "tflite"), "--format",
                  "'tflite'");
}

Test(bad_cli, export_onnx_style_without_onnx)
{
    RB_EXPECT_BAD("qat-export", RB_ARGS("ck.h5", "-o", "m.h5", "--onnx-style", "qdq"),
                  "--onnx-style applies to --format onnx only");
}

#ifdef QAT_HAVE_ONNX
Test(bad_cli, export_onnx_unknown_style)
{
    RB_EXPECT_BAD("qat-export", RB_ARGS("ck.h5", "-o", "m.onnx", "--format", "onnx", "--onnx-style",
                                        "qlinear"),
                  "--onnx-style", "'qlinear'", "qoperator or qdq");
}

Test(bad_cli, export_onnx_requant_with_qdq)
{
    RB_EXPECT_BAD("qat-export", RB_ARGS("ck.h5", "-o", "m.onnx", "--format", "onnx", "--onnx-style",
                                        "qdq", "--onnx-requant", "exact"),
                  "--onnx-requant", "qoperator only");
}

/* A small valid model file; with differing_wzp, conv1 has per-channel
 * weight zero points that differ and an 8-bit code (127 - (-2)) that leaves
 * int8 once its zero point is taken out: QLinearConv / ConvInteger in ONNX
 * Runtime take one weight zero point per layer, so QOperator cannot carry it. */
static void write_onnx_model(const char *name, int differing_wzp)
{
    fx_model fx;
    fx_begin(&fx, 8, 8, 1, 5);
    qat_rt_layer_desc *l = fx_push(&fx, QAT_RT_CONV2D, "conv1");
    l->kernel_h = l->kernel_w = 3;
    l->stride_h = l->stride_w = 1;
    l->out_h = l->out_w = 6;
    l->out_c = 3;
    fx_fill_weights(&fx, l, 8, 1, 8, 0);
    if (differing_wzp) {
        fx.wzp[0][0] = 0;
        fx.wzp[0][1] = -2;
        fx.w[0][9] = 127; /* channel 1, first tap: 8-bit codes are stored as bytes */
        fx.packed[0][9] = 127;
    }
    fx_commit(&fx, l);
    fx_flatten(&fx, "flatten");
    fx_linear(&fx, "fc", 4, 8, 0);
    fx_finish(&fx);
    qat_error e;
    cr_assert_eq(qat_rt_h5_write(rb_path(name), &fx.desc, &e), QAT_OK, "%s", e.msg);
    fx_free(&fx);
}

Test(bad_cli, export_onnx_qoperator_cannot_express)
{
    write_onnx_model("m.h5", 1);
    RB_EXPECT_BAD("qat-export", RB_ARGS(rb_path("m.h5"), "--format", "onnx", "-o", rb_path("m.onnx")),
                  "layer 0 'conv1' (conv2d)", "weight zero point", "--onnx-style qdq");
    cr_assert_eq(access(rb_path("m.onnx"), F_OK), -1, "a refused export left m.onnx");
    /* the other style carries it */
    cr_assert_eq(rb_run("qat-export", RB_ARGS(rb_path("m.h5"), "--format", "onnx", "--onnx-style",
                                              "qdq", "-o", rb_path("m.onnx"))),
                 0, "%s", rb_err);
    cr_assert_eq(access(rb_path("m.onnx"), F_OK), 0);
}

/* An output path that cannot be written: exit 1, the path named, and
 * nothing half-written left behind (no file, no temporary). */
Test(bad_cli, export_onnx_unwritable_output)
{
    write_onnx_model("m.h5", 0);
    rb_write_text("file", "not a directory\n");
    const char *out = rb_path("file/m.onnx");
    int code = rb_run("qat-export", RB_ARGS(rb_path("m.h5"), "--format", "onnx", "-o", out));
    cr_assert_eq(code, 1, "expected exit code 1, got %d\nstderr:\n%s", code, rb_err);
    cr_assert_not_null(strstr(rb_err, out), "stderr lacks the path:\n%s", rb_err);
    DIR *dir = opendir(rb_dir);
    cr_assert_not_null(dir);
    for (struct dirent *e; (e = readdir(dir));)
        cr_assert(e->d_name[0] == '.' || strcmp(e->d_name, "m.h5") == 0 ||
                      strcmp(e->d_name, "file") == 0,
                  "left behind: %s", e->d_name);
    closedir(dir);
}
#endif

/* ---- qat-infer ---------------------------------------------------------------- */

Test(bad_cli, infer_unknown_flag)
{
    RB_EXPECT_BAD("qat-infer", RB_ARGS("m.h5", "--images", "i", "--labels", "l", "--fast"),
                  "unknown flag '--fast'");
}

Test(bad_cli, infer_flag_without_value)
{
    RB_EXPECT_BAD("qat-infer", RB_ARGS("m.h5", "--labels", "l", "--images"),
                  "--images: missing argument");
}

Test(bad_cli, infer_missing_model)
{
    RB_EXPECT_BAD("qat-infer", RB_ARGS("--images", "i", "--labels", "l"), "missing MODEL");
}

Test(bad_cli, infer_missing_labels)
{
    RB_EXPECT_BAD("qat-infer", RB_ARGS("m.h5", "--images", "i"), "--labels: required");
}

Test(bad_cli, infer_two_models)
{
    RB_EXPECT_BAD("qat-infer", RB_ARGS("a.h5", "b.h5", "--images", "i", "--labels", "l"),
                  "unexpected argument 'b.h5'");
}

Test(bad_cli, infer_batch_zero)
{
    RB_EXPECT_BAD("qat-infer", RB_ARGS("m.h5", "--images", "i", "--labels", "l", "--batch", "0"),
                  "--batch", "'0'");
}

Test(bad_cli, infer_threads_not_a_number)
{
    RB_EXPECT_BAD("qat-infer",
                  RB_ARGS("m.h5", "--images", "i", "--labels", "l", "--threads=four"),
                  "--threads", "'four'");
}

Test(bad_cli, infer_model_missing)
{
    RB_EXPECT_BAD("qat-infer", RB_ARGS(rb_path("none.h5"), "--images", "i", "--labels", "l"),
                  "none.h5", "cannot open model file");
}
