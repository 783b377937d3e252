/* Writes the seed model files of fuzz/corpus/fuzz_model: small models that
 * use every op, every weight width class and nonzero zero points, so the
 * fuzzer starts from files that pass validation and run.
 *   make_seeds DIR */
#include "qat/runtime_h5.h"
#include "rt_fixture.h"

static int write(const char *dir, const char *name, fx_model *fx)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    qat_error e;
    qat_status st = qat_rt_h5_write(path, &fx->desc, &e);
    fx_free(fx);
    if (st) {
        fprintf(stderr, "make_seeds: %s\n", e.msg);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: make_seeds DIR\n");
        return 2;
    }
    int rc = 0;
    static const int bits[] = {8, 4, 2};
    for (int b = 0; b < 3; b++) {
        fx_model fx;
        char name[64];
        fx_begin(&fx, 6, 5, 1, 100 + (uint64_t)b);
        fx_conv(&fx, "conv", 3, 3, 1, 1, bits[b], 1);
        fx_pool(&fx, QAT_RT_MAXPOOL2D, "max", 2, 2);
        fx_pool(&fx, QAT_RT_AVGPOOL2D, "avg", 2, 1);
        fx_flatten(&fx, "flat");
        qat_rt_layer_desc *l = fx_linear(&fx, "fc", 4, bits[b], 0);
        (void)l;
        fx_finish(&fx);
        snprintf(name, sizeof name, "cnn_w%d.h5", bits[b]);
        rc |= write(argv[1], name, &fx);

        fx_begin(&fx, 3, 3, 2, 200 + (uint64_t)b);
        fx_flatten(&fx, "flat");
        fx_linear(&fx, "fc1", 5, bits[b], 1);
        fx_linear(&fx, "fc2", 3, bits[b], 0);
        fx_finish(&fx);
        snprintf(name, sizeof name, "mlp_w%d.h5", bits[b]);
        rc |= write(argv[1], name, &fx);
    }
    return rc;
}
