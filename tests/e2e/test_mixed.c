/* Mixed float/integer models (quantize = false) on the committed MNIST
 * subset: train -> export -> runtime. The fake-quant forward and the
 * runtime must give the same logits exactly -- float32 logits bit for bit
 * when the last layer is float, int8 codes otherwise -- and every kernel
 * path the same bytes (docs/ARITHMETIC.md §7). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/tmpdir.h"
#include "qat/export.h"
#include "qat/export_onnx.h"
#include "qat/run.h"
#include "qat/runtime_h5.h"
#include "qat/train.h"

#include "e2e_fixture.h"

static const char *const isas[] = {"ref", "avx2", "avx512vnni", "neon-plain", "neon-dot"};
#define NISA 5

/* Trains config with extra settings in a fresh directory; checks the
 * runtime against the fake-quant forward on the test subset on every path
 * this CPU runs. Returns the float-logit flag of the model. */
static int train_and_check(const char *config, const char *const *extra, int nextra,
                           int want_version)
{
    char dir[256];
    tc_tmpdir(dir, sizeof dir, "qat-mixed");
    qat_config *cfg = malloc(sizeof *cfg);
    load_cfg(config, extra, nextra, cfg);
    qat_train_opts o = {.out_dir = dir, .quiet = 1};
    qat_error e;
    cr_assert_eq(qat_run(cfg, &o, &e), QAT_OK, "%s", e.msg);
    qat_dataset test;
    cr_assert_eq(qat_mnist_load(cfg->data.dir, "t10k", 10, 300, &test, &e), QAT_OK, "%s", e.msg);
    char ck[512], mp[512];
    snprintf(ck, sizeof ck, "%s/checkpoint.h5", dir);
    snprintf(mp, sizeof mp, "%s/model.int8.h5", dir);
    qat_model *m;
    cr_assert_eq(qat_checkpoint_load_model(ck, &m, &e), QAT_OK, "%s", e.msg);
    cr_assert_eq(qat_model_refresh_qparams(m, &e), QAT_OK, "%s", e.msg);
    qat_rt_owned_desc od;
    cr_assert_eq(qat_rt_h5_read_desc(mp, &od, &e), QAT_OK, "%s", e.msg);
    cr_assert_eq(od.desc.version, want_version, "format version %d, expected %d",
                 od.desc.version, want_version);
    const int fl = qat_rt_desc_float_logits(&od.desc);
    const int C = od.desc.num_classes, N = (int)test.n;
    size_t isz = qat_dataset_image_size(&test);

    /* the fake-quant forward, once */
    qat_team *team;
    qat_team_create(2, &team, NULL);
    qat_tape *t;
    qat_tape_create(team, &t, NULL);
    qat_tape_set_training(t, 0);
    qat_tape_set_grad_enabled(t, 0);
    qat_tape_reset(t);
    qat_tensor *y = qat_model_forward(m, t, test.images, N);
    float *fq = malloc((size_t)N * C * sizeof *fq);
    memcpy(fq, y->data, (size_t)N * C * sizeof *fq);

    float *first = NULL, *got = malloc((size_t)N * C * sizeof *got);
    int8_t *q = malloc((size_t)N * C);
    int paths = 0;
    for (int k = 0; k < NISA; k++) {
        qat_rt_model *rm;
        qat_status st = qat_rt_model_create_isa(&od.desc, isas[k], &rm, &e);
        if (st == QAT_EUNSUPPORTED || (st == QAT_EINVAL && k > 0))
            continue;
        cr_assert_eq(st, QAT_OK, "%s: %s", isas[k], e.msg);
        cr_assert_eq(qat_rt_model_float_logits(rm), fl);
        for (int threads = 1; threads <= 2; threads++) {
            qat_rt_options ro = {.threads = threads, .max_batch = N};
            qat_rt_session *s;
            cr_assert_eq(qat_rt_session_create(rm, &ro, &s, &e), QAT_OK, "%s", e.msg);
            if (fl) {
                cr_assert_eq(qat_rt_run(s, test.images, N, q, &e), QAT_EINVAL,
                             "int8 logits of a float-logit model must be refused");
                cr_assert_eq(qat_rt_run_logits(s, test.images, N, got, &e), QAT_OK, "%s", e.msg);
            } else {
                cr_assert_eq(qat_rt_run(s, test.images, N, q, &e), QAT_OK, "%s", e.msg);
                cr_assert_eq(qat_rt_run_logits(s, test.images, N, got, &e), QAT_OK, "%s", e.msg);
                float sc = qat_rt_model_output_scale(rm);
                int32_t zp = qat_rt_model_output_zero_point(rm);
                for (int i = 0; i < N * C; i++) {
                    cr_assert_eq(got[i], sc * (float)(q[i] - zp));
                    int code = (int)lrintf(fq[i] / sc) + zp;
                    cr_assert_eq(code, q[i], "%s: logit %d: fake-quant code %d, runtime %d",
                                 isas[k], i, code, q[i]);
                }
            }
            if (fl)
                for (int i = 0; i < N * C; i++)
                    cr_assert(memcmp(&got[i], &fq[i], sizeof(float)) == 0,
                              "%s: image %d logit %d: fake-quant %.9g, runtime %.9g", isas[k],
                              i / C, i % C, (double)fq[i], (double)got[i]);
            if (!first) {
                first = malloc((size_t)N * C * sizeof *first);
                memcpy(first, got, (size_t)N * C * sizeof *first);
            }
            cr_assert(memcmp(first, got, (size_t)N * C * sizeof *got) == 0,
                      "%s, %d threads: logits differ from ref's", isas[k], threads);
            qat_rt_session_destroy(s);
        }
        paths++;
        qat_rt_model_destroy(rm);
    }
    cr_assert_geq(paths, 1);
    /* the C export writes every float layer's float32 arrays and fields */
    char cpath[512];
    snprintf(cpath, sizeof cpath, "%s/model_c", dir);
    cr_assert_eq(qat_export_c(&od.desc, cpath, "mixed_model", mp, &e), QAT_OK, "%s", e.msg);
    snprintf(cpath, sizeof cpath, "%s/model_c.c", dir);
    FILE *cf = fopen(cpath, "r");
    cr_assert_not_null(cf);
    static char ctext[1 << 22];
    size_t clen = fread(ctext, 1, sizeof ctext - 1, cf);
    fclose(cf);
    ctext[clen] = '\0';
    for (int i = 0; i < od.desc.num_layers; i++) {
        char want[64];
        snprintf(want, sizeof want, "static const float l%d_float_weights[", i);
        cr_assert_eq(strstr(ctext, want) != NULL, od.desc.layers[i].is_float, "layer %d", i);
    }
#ifdef QAT_HAVE_ONNX
    /* ONNX: refused with the reason, nothing written (ARITHMETIC.md §7) */
    char opath[512];
    snprintf(opath, sizeof opath, "%s/m.onnx", dir);
    qat_onnx_options oo = {0};
    if (want_version == 3) {
        cr_assert_eq(qat_export_onnx(&od.desc, &oo, opath, mp, NULL, &e), QAT_EUNSUPPORTED);
        cr_assert(strstr(e.msg, "float layer (quantize = false) is not exported to ONNX"), "%s",
                  e.msg);
        cr_assert_neq(access(opath, F_OK), 0, "%s was written", opath);
    }
#endif
    free(first);
    free(got);
    free(q);
    free(fq);
    qat_rt_owned_desc_free(&od);
    qat_tape_destroy(t);
    qat_team_destroy(team);
    qat_model_destroy(m);
    qat_dataset_free(&test);
    free(cfg);
    (void)isz;
    return fl;
}

/* The shipped W2A2 CNN with its first and last layers float: float logits */
Test(mixed, float_ends_cnn_float_logits_equal_fake_quant_on_every_path, .timeout = 300)
{
    const char *extra[] = {"train.epochs=1", "data.train_limit=500", "data.test_limit=300"};
    cr_assert_eq(train_and_check("configs/mnist_cnn_w2a2_float_ends.ini", extra, 3, 3), 1);
}

/* A float layer in the middle: its output quantized for the next layer */
Test(mixed, float_middle_layer_output_quantized_for_the_next, .timeout = 300)
{
    const char *extra[] = {"train.epochs=1", "data.train_limit=500", "data.test_limit=300",
                           "layer.fc1.quantize=false", "quant.weight_bits=4",
                           "quant.activation_bits=4"};
    cr_assert_eq(train_and_check("configs/mnist_cnn.ini", extra, 6, 3), 0);
}

/* Batchnorm folded into a float conv (trained with batch statistics, then
 * frozen), relu6 on a float layer, symmetric activations */
Test(mixed, batchnorm_folds_into_a_float_conv, .timeout = 300)
{
    const char *extra[] = {"train.epochs=2",
                           "data.train_limit=400",
                           "data.test_limit=300",
                           "layer.conv1.quantize=false",
                           "layer.conv1.batchnorm=true",
                           "layer.conv2.quantize=false",
                           "layer.conv2.activation=relu6",
                           "quant.activation_scheme=symmetric"};
    cr_assert_eq(train_and_check("configs/mnist_cnn.ini", extra, 8, 3), 0);
}

/* No float layer: the file stays at the version it had before */
Test(mixed, an_all_integer_chain_still_writes_version_1, .timeout = 300)
{
    const char *extra[] = {"train.epochs=1", "data.train_limit=500", "data.test_limit=300"};
    cr_assert_eq(train_and_check("configs/mnist_mlp.ini", extra, 3, 1), 0);
}
