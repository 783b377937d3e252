/* Writes a synthetic MNIST-shaped model file for the format cross-check:
 *   make_model OUT mlp|cnn|graph BITS [K [channel]]
 *   make_model OUT mlp|cnn BITS float MASK
 * cnn uses every version-1 op, odd kernels/strides, padding, relu, narrow
 * activations and nonzero weight zero points; graph (format version 2)
 * every graph op: depthwise and grouped conv, add, concat, global_avgpool,
 * relu6, inputs reaching back. K palettizes the weights of mlp and cnn
 * (FORMAT.md §10): K codes per layer, or with `channel` per output channel.
 * float MASK makes the layers whose bit is set in MASK float layers (format
 * version 3, FORMAT.md §11). */
#include "float_fixture.h"
#include "palette_fixture.h"
#include "qat/runtime_h5.h"

int main(int argc, char **argv)
{
    int fl = argc == 6 && strcmp(argv[4], "float") == 0;
    if (argc < 4 || argc > 6 || atoi(argv[3]) < 2 || atoi(argv[3]) > 8 ||
        (argc >= 5 && !fl && (atoi(argv[4]) < 2 || atoi(argv[4]) > 256)) ||
        (argc >= 5 && strcmp(argv[2], "graph") == 0)) {
        fprintf(stderr, "usage: make_model OUT mlp|cnn|graph BITS(2..8) [K(2..256) [channel]] "
                        "(K not with graph)\n"
                        "       make_model OUT mlp|cnn BITS float MASK\n");
        return 2;
    }
    int bits = atoi(argv[3]);
    fx_model fx;
    fx_begin(&fx, 28, 28, 1, 1000 + (uint64_t)bits);
    if (strcmp(argv[2], "graph") == 0) {
        fx_build_graph_hwc(&fx, 28, 28, 1, 2000 + (uint64_t)bits, bits);
    } else if (strcmp(argv[2], "mlp") == 0) {
        fx_flatten(&fx, "flatten");
        fx_linear(&fx, "fc1", 64, bits, 1);
        fx_linear(&fx, "fc2", 10, bits, 0);
        fx_finish(&fx);
    } else {
        fx_conv(&fx, "conv1", 5, 3, 1, 1, bits, 1);
        fx_pool(&fx, QAT_RT_MAXPOOL2D, "pool1", 2, 2);
        qat_rt_layer_desc *l = fx_push(&fx, QAT_RT_CONV2D, "conv2");
        l->kernel_h = 3;
        l->kernel_w = 2;
        l->stride_h = 2;
        l->stride_w = 3;
        l->pad_h = l->pad_w = 1;
        l->out_h = fx_out(l->in_h, 3, 2, 1);
        l->out_w = fx_out(l->in_w, 2, 3, 1);
        l->out_c = 7;
        fx_fill_weights(&fx, l, bits, 0, 6, 3);
        fx_commit(&fx, l);
        fx_pool(&fx, QAT_RT_AVGPOOL2D, "pool2", 2, 1);
        fx_flatten(&fx, "flatten");
        fx_linear(&fx, "fc", 10, bits, 0);
        fx_finish(&fx);
    }
    fx_palette p = {0};
    fx_float f = {0};
    if (fl)
        fx_floatize(&fx, &f, (unsigned)strtoul(argv[5], NULL, 0));
    else if (argc >= 5)
        fx_palettize(&fx, &p, atoi(argv[4]), argc == 6 && strcmp(argv[5], "channel") == 0);
    qat_error e;
    qat_status st = qat_rt_h5_write(argv[1], &fx.desc, &e);
    fx_free(&fx);
    fx_palette_free(&p);
    fx_float_free(&f);
    if (st) {
        fprintf(stderr, "make_model: %s\n", e.msg);
        return 1;
    }
    return 0;
}
