/* Catalogue, graph model files (format version 2; issue 18's "Bad input"):
 * a valid residual + depthwise-separable model written in the test (the
 * first case proves it runs), then one thing damaged with the HDF5 API:
 * add inputs of different shapes, input indices pointing forward or out
 * of range, cycles, a depthwise layer with weights for the wrong channel
 * count. qat-infer must exit 2 naming the file, the layer and the field. */
#include <hdf5.h>

#include "qat/runtime_h5.h"
#include "h5_edit.h"
#include "robust.h"
#include "rt_fixture.h"

/* fx_build_graph_hwc on 13x11x1 images (the catalogue's idx files):
 *   0 stem conv 13x11x6     1 dw depthwise x2 (12)   2 pw 1x1 (6)
 *   3 res add(2, 0)         4 grp conv(input)        5 dw2 depthwise s2
 *   6 cat concat(5, 4, 5)   7 gap                    8 fc */
static void graph_setup(void)
{
    rb_setup();
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    fx_model fx;
    fx_build_graph_hwc(&fx, 13, 11, 1, 23, 8);
    qat_error e;
    cr_assert_eq(qat_rt_h5_write(rb_path("m.h5"), &fx.desc, &e), QAT_OK, "%s", e.msg);
    fx_free(&fx);
    unsigned char img[16 + 4 * 13 * 11] = {0, 0, 8, 3, 0, 0, 0, 4, 0, 0, 0, 13, 0, 0, 0, 11};
    for (size_t i = 16; i < sizeof img; i++)
        img[i] = (unsigned char)(i * 29u);
    unsigned char lab[8 + 4] = {0, 0, 8, 1, 0, 0, 0, 4, 1, 2, 3, 4};
    rb_write("img", img, sizeof img);
    rb_write("lab", lab, sizeof lab);
}

TestSuite(bad_graph, .init = graph_setup, .fini = rb_teardown, .timeout = 120);

static void set_inputs(const char *layer, int n, const int32_t *v)
{
    set_i32(layer, "inputs", n, v);
}

Test(bad_graph, base_model_runs)
{
    int code = rb_run("qat-infer",
                      RB_ARGS(rb_path("m.h5"), "--images", rb_path("img"), "--labels", rb_path("lab")));
    cr_assert_eq(code, 0, "the catalogue's base graph model must run\n%s", rb_err);
}

Test(bad_graph, add_inputs_of_different_shapes)
{
    /* layer 1 gives 13x11x12, layer 2 13x11x6 */
    set_inputs("/layers/003", 2, (const int32_t[]){2, 1});
    INFER_BAD("layer 3 'res'", "inputs[1]", "add needs inputs of one shape", "13x11x12");
}

Test(bad_graph, input_points_forward)
{
    set_inputs("/layers/002", 1, (const int32_t[]){5});
    INFER_BAD("layer 2 'pw'", "inputs[0]", "points forward to layer 5");
}

Test(bad_graph, input_index_out_of_range)
{
    set_inputs("/layers/003", 2, (const int32_t[]){2, 42});
    INFER_BAD("layer 3 'res'", "inputs[1]", "expected a layer index in [-1, 2], found 42");
}

Test(bad_graph, input_index_below_the_model_input)
{
    set_inputs("/layers/006", 3, (const int32_t[]){5, -2, 5});
    INFER_BAD("layer 6 'cat'", "inputs[1]", "found -2");
}

Test(bad_graph, layer_reads_itself)
{
    set_inputs("/layers/003", 2, (const int32_t[]){2, 3});
    INFER_BAD("layer 3 'res'", "inputs[1]", "reads itself (a cycle)");
}

Test(bad_graph, two_layer_cycle)
{
    /* 1 reads 2 and 2 reads 1: in file order the edge 1 <- 2 points forward */
    set_inputs("/layers/001", 1, (const int32_t[]){2});
    set_inputs("/layers/002", 1, (const int32_t[]){1});
    INFER_BAD("layer 1 'dw'", "inputs[0]", "points forward to layer 2", "cycle");
}

Test(bad_graph, depthwise_weights_for_the_wrong_channel_count)
{
    /* dw: 12 output channels x 3x3 x 1 input channel each; weights for 6 */
    uint8_t w[6 * 9] = {0}; /* 8-bit codes, one byte each */
    set_dataset("m.h5", "/layers/001/weights", H5T_STD_U8LE, H5T_NATIVE_UINT8, sizeof w, w);
    INFER_BAD("/layers/001", "weights", "108");
}

Test(bad_graph, depthwise_groups_not_the_channel_count)
{
    /* groups 4 divides neither 6 input channels nor the weights' layout */
    int32_t g = 4;
    set_i32("/layers/001", "groups", 0, &g);
    INFER_BAD("/layers/001", "attribute 'groups'", "found 4");
}
