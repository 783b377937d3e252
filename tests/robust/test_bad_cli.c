/* Catalogue, command lines: unknown flags, missing and extra arguments, bad
 * values, for every tool. The message must name the flag or argument. */
#include "robust.h"

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
    RB_EXPECT_BAD("qat-export", RB_ARGS("ck.h5", "-o", "m", "--format", "onnx"), "--format",
                  "'onnx'");
}

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
