/* Writes the seed model files of fuzz/corpus/fuzz_model: small models that
 * use every op, every weight width class, nonzero zero points, palettized
 * weights (per layer and per channel) and graphs (format version 2: a
 * ResNet-style and a DS-CNN-style model), so the
 * fuzzer starts from files that pass validation and run; one has its
 * strings as h5py writes a str (variable-length UTF-8).
 *   make_seeds DIR */
#include <hdf5.h>

#include "qat/runtime_h5.h"
#include "float_fixture.h"
#include "palette_fixture.h"

/* Replaces string attribute name of obj with s as a variable-length UTF-8
 * string (FORMAT.md §1). */
static int vlen_utf8(hid_t f, const char *obj, const char *name, const char *s)
{
    hid_t t = H5Tcopy(H5T_C_S1), sp = H5Screate(H5S_SCALAR), a = -1;
    int ok = t >= 0 && sp >= 0 && H5Tset_size(t, H5T_VARIABLE) >= 0 &&
             H5Tset_cset(t, H5T_CSET_UTF8) >= 0 &&
             H5Adelete_by_name(f, obj, name, H5P_DEFAULT) >= 0;
    if (ok)
        a = H5Acreate_by_name(f, obj, name, t, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    ok = ok && a >= 0 && H5Awrite(a, t, &s) >= 0;
    if (a >= 0)
        H5Aclose(a);
    if (sp >= 0)
        H5Sclose(sp);
    if (t >= 0)
        H5Tclose(t);
    return ok ? 0 : 1;
}

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

        /* palettized (format version 2): per layer and per channel */
        fx_palette p;
        fx_begin(&fx, 6, 5, 1, 400 + (uint64_t)b);
        fx_conv(&fx, "conv", 3, 3, 1, 1, bits[b], 1);
        fx_pool(&fx, QAT_RT_MAXPOOL2D, "max", 2, 2);
        fx_flatten(&fx, "flat");
        fx_linear(&fx, "fc", 4, bits[b], 0);
        fx_finish(&fx);
        fx_palettize(&fx, &p, b == 2 ? 3 : 5, b == 1);
        snprintf(name, sizeof name, "palette_w%d.h5", bits[b]);
        rc |= write(argv[1], name, &fx);
        fx_palette_free(&p);

        /* float layers (format version 3, FORMAT.md §11): the conv float
         * (8 bits), the fc float too (4 bits: float logits), the fc alone (2) */
        fx_float f;
        fx_begin(&fx, 6, 5, 1, 500 + (uint64_t)b);
        fx_conv(&fx, "conv", 3, 3, 1, 1, bits[b], 1);
        fx_pool(&fx, QAT_RT_MAXPOOL2D, "max", 2, 2);
        fx_flatten(&fx, "flat");
        fx_linear(&fx, "fc", 4, bits[b], 0);
        fx_finish(&fx);
        fx_floatize(&fx, &f, b == 0 ? 1u : b == 1 ? 9u : 8u);
        snprintf(name, sizeof name, "float_w%d.h5", bits[b]);
        rc |= write(argv[1], name, &fx);
        fx_float_free(&f);
    }
    fx_model fx;
    /* ResNet-style: stem, two residual blocks (the second with a strided
     * 1x1 projection), global average pool */
    fx_begin(&fx, 8, 8, 1, 500);
    fx.desc.version = 2;
    fx_conv(&fx, "stem", 8, 3, 1, 1, 8, 1);                              /* 0 */
    fx_gconv(&fx, "b1c1", 0, 8, 3, 1, 1, 1, 8, 1);                       /* 1 */
    fx_gconv(&fx, "b1c2", 1, 8, 3, 1, 1, 1, 8, 0);                       /* 2 */
    fx_merge(&fx, QAT_RT_ADD, "b1add", 2, (int[]){2, 0}, 1, 0);          /* 3 */
    fx_gconv(&fx, "b2c1", 3, 16, 3, 2, 1, 1, 8, 1);                      /* 4 */
    fx_gconv(&fx, "b2proj", 3, 16, 1, 2, 0, 1, 8, 0);                    /* 5 */
    fx_gconv(&fx, "b2c2", 4, 16, 3, 1, 1, 1, 8, 0);                      /* 6 */
    fx_merge(&fx, QAT_RT_ADD, "b2add", 2, (int[]){6, 5}, 1, 0);          /* 7 */
    fx_merge(&fx, QAT_RT_GLOBAL_AVGPOOL, "gap", 1, (int[]){7}, 0, 0);    /* 8 */
    fx_linear(&fx, "fc", 4, 8, 0);
    fx_finish(&fx);
    rc |= write(argv[1], "graph_resnet.h5", &fx);

    /* DS-CNN-style: depthwise 3x3 + pointwise 1x1 blocks with relu6 (one
     * depthwise stride 2 with multiplier 2), global average pool */
    fx_begin(&fx, 10, 8, 1, 600);
    fx.desc.version = 2;
    qat_rt_layer_desc *ds[5];
    ds[0] = fx_conv(&fx, "stem", 8, 3, 1, 1, 8, 1);                      /* 0 */
    ds[1] = fx_gconv(&fx, "dw1", 0, 8, 3, 1, 1, 8, 8, 1);                /* 1: depthwise */
    ds[2] = fx_gconv(&fx, "pw1", 1, 12, 1, 1, 0, 1, 8, 1);               /* 2 */
    ds[3] = fx_gconv(&fx, "dw2", 2, 24, 3, 2, 1, 12, 8, 1);              /* 3: x2, stride 2 */
    ds[4] = fx_gconv(&fx, "pw2", 3, 16, 1, 1, 0, 1, 8, 1);               /* 4 */
    for (int i = 0; i < 5; i++) /* relu6: a clamp above the zero point */
        ds[i]->act_max = ds[i]->output_zero_point + 40 < 127 ? ds[i]->output_zero_point + 40 : 127;
    fx_merge(&fx, QAT_RT_GLOBAL_AVGPOOL, "gap", 1, (int[]){4}, 0, 0);    /* 5 */
    fx_linear(&fx, "fc", 4, 8, 0);
    fx_finish(&fx);
    rc |= write(argv[1], "graph_dscnn.h5", &fx);

    fx_begin(&fx, 3, 3, 2, 300);
    fx_flatten(&fx, "flat");
    fx_linear(&fx, "fc", 3, 8, 0);
    fx_finish(&fx);
    char path[4096];
    snprintf(path, sizeof path, "%s/strings_vlen_utf8.h5", argv[1]);
    if (write(argv[1], "strings_vlen_utf8.h5", &fx) == 0) {
        hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
        rc |= f < 0 || vlen_utf8(f, "/", "format", "qat-int8-model") ||
              vlen_utf8(f, "/layers/000", "op", "flatten") ||
              vlen_utf8(f, "/layers/001", "op", "linear") ||
              vlen_utf8(f, "/layers/001", "name", "fc_\xC3\xA4\xE2\x82\xAC");
        if (f >= 0)
            H5Fclose(f);
    } else {
        rc = 1;
    }
    return rc;
}
