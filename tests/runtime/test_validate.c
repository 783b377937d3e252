/* One test per invariant of qat_rt_model_validate: each starts from the
 * valid example CNN (checked valid first), breaks exactly one thing, and
 * expects QAT_EINVAL with a message naming the layer and the field. */
#include <criterion/criterion.h>

#include "qat/status.h"
#include "rt_fixture.h"

/* layers of fx_build_cnn: 0 conv1, 1 pool1, 2 conv2, 3 pool2, 4 flatten, 5 fc */

static void expect_invalid(fx_model *fx, const char *where, const char *field)
{
    qat_error e;
    qat_rt_model *m = (qat_rt_model *)&e; /* must be reset to NULL */
    qat_status st = qat_rt_model_create(&fx->desc, &m, &e);
    cr_assert_eq(st, QAT_EINVAL, "expected EINVAL, got %s (%s)", qat_status_name(st), e.msg);
    cr_assert_null(m);
    cr_assert(strstr(e.msg, where), "message '%s' lacks '%s'", e.msg, where);
    cr_assert(strstr(e.msg, field), "message '%s' lacks '%s'", e.msg, field);
    cr_assert_eq(qat_rt_model_validate(&fx->desc, NULL), QAT_EINVAL);
    fx_free(fx);
}

static void base(fx_model *fx)
{
    fx_build_cnn(fx, 42, 8);
    qat_error e;
    cr_assert_eq(qat_rt_model_validate(&fx->desc, &e), QAT_OK, "%s", e.msg);
}

#define L(fx, i) (&(fx).layers[i])

Test(validate, bad_version)
{
    fx_model fx;
    base(&fx);
    fx.desc.version = 4;
    expect_invalid(&fx, "model", "version: expected 1..3, found 4");
    base(&fx);
    fx.desc.version = 0;
    expect_invalid(&fx, "model", "version: expected 1..3, found 0");
}

Test(validate, layer_count_zero_and_too_many)
{
    fx_model fx;
    base(&fx);
    fx.desc.num_layers = 0;
    expect_invalid(&fx, "model", "num_layers");
    base(&fx);
    fx.desc.num_layers = QAT_RT_MAX_LAYERS + 1;
    expect_invalid(&fx, "model", "num_layers");
}

Test(validate, unknown_op)
{
    fx_model fx;
    base(&fx);
    L(fx, 3)->op = (qat_rt_op)9;
    expect_invalid(&fx, "layer 3 'pool2'", "op: expected one of");
}

Test(validate, unterminated_name)
{
    fx_model fx;
    base(&fx);
    memset(L(fx, 1)->name, 'x', QAT_RT_NAME_MAX);
    expect_invalid(&fx, "layer 1", "name: expected a NUL-terminated");
}

Test(validate, shape_chain_broken)
{
    fx_model fx;
    base(&fx);
    L(fx, 2)->in_c = 8; /* pool1 gives 7 channels */
    expect_invalid(&fx, "layer 2 'conv2'", "input shape: expected 6x5x7");
}

Test(validate, first_layer_disagrees_with_model_input)
{
    fx_model fx;
    base(&fx);
    fx.desc.in_w = 12;
    expect_invalid(&fx, "layer 0 'conv1'", "the model input");
}

Test(validate, last_layer_must_give_num_classes)
{
    fx_model fx;
    base(&fx);
    fx.desc.num_classes = 11;
    expect_invalid(&fx, "layer 5 'fc'", "num_classes");
}

Test(validate, num_classes_zero)
{
    fx_model fx;
    base(&fx);
    fx.desc.num_classes = 0;
    expect_invalid(&fx, "model", "num_classes");
}

Test(validate, conv_output_size_inconsistent)
{
    fx_model fx;
    base(&fx);
    L(fx, 0)->out_h = 12;
    expect_invalid(&fx, "layer 0 'conv1'", "out_h: expected");
}

Test(validate, kernel_must_fit)
{
    fx_model fx;
    base(&fx);
    L(fx, 3)->kernel_w = 4; /* pool2 input is 3x3 */
    expect_invalid(&fx, "layer 3 'pool2'", "kernel_w: kernel 4 does not fit input 3");
}

Test(validate, conv_padding_must_be_below_kernel)
{
    fx_model fx;
    base(&fx);
    L(fx, 0)->pad_w = 3;
    expect_invalid(&fx, "layer 0 'conv1'", "pad_w: expected in [0, 2], found 3");
}

Test(validate, zero_stride)
{
    fx_model fx;
    base(&fx);
    L(fx, 2)->stride_h = 0;
    expect_invalid(&fx, "layer 2 'conv2'", "stride_h");
}

Test(validate, pools_take_no_padding)
{
    fx_model fx;
    base(&fx);
    L(fx, 1)->pad_h = 1;
    expect_invalid(&fx, "layer 1 'pool1'", "pad_h: expected in [0, 0], found 1");
}

Test(validate, pool_channels_change)
{
    fx_model fx;
    base(&fx);
    L(fx, 1)->out_c = 6;
    expect_invalid(&fx, "layer 1 'pool1'", "out_c: expected in_c 7");
}

Test(validate, pool_keeps_scale_and_zero_point)
{
    fx_model fx;
    base(&fx);
    L(fx, 1)->output_scale *= 2.0f;
    L(fx, 2)->input_scale = L(fx, 1)->output_scale;
    expect_invalid(&fx, "layer 1 'pool1'", "output_scale: expected equal to input_scale");
    base(&fx);
    L(fx, 3)->output_zero_point += 1;
    L(fx, 4)->input_zero_point += 1;
    L(fx, 4)->output_zero_point += 1;
    L(fx, 5)->input_zero_point += 1;
    expect_invalid(&fx, "layer 3 'pool2'", "output_zero_point: expected equal");
}

Test(validate, avgpool_window_too_large_for_int32_sum)
{
    fx_model fx;
    fx_begin(&fx, 2902, 2902, 1, 1);
    fx_pool(&fx, QAT_RT_AVGPOOL2D, "gap", 2902, 1);
    fx_finish(&fx);
    expect_invalid(&fx, "layer 0 'gap'", "too large for an int32 sum");
    /* 2897^2 * 255 < 2^31, but the rounding term n/2 on top of a full sum
     * would not fit: the bound is n <= 2^23 */
    fx_begin(&fx, 2897, 2897, 1, 1);
    fx_pool(&fx, QAT_RT_AVGPOOL2D, "gap", 2897, 1);
    fx_finish(&fx);
    expect_invalid(&fx, "layer 0 'gap'", "kernel_h * kernel_w <= 2^23");
    /* and 2896^2 <= 2^23 is accepted */
    fx_begin(&fx, 2896, 2896, 1, 1);
    fx_pool(&fx, QAT_RT_AVGPOOL2D, "gap", 2896, 1);
    fx_finish(&fx);
    qat_error e;
    cr_assert_eq(qat_rt_model_validate(&fx.desc, &e), QAT_OK, "%s", e.msg);
}

Test(validate, flatten_size_wrong)
{
    fx_model fx;
    base(&fx);
    L(fx, 4)->out_c = 131;
    L(fx, 5)->in_c = 131;
    expect_invalid(&fx, "layer 4 'flatten'", "flatten expects 1x1x132");
}

Test(validate, linear_needs_1x1_input)
{
    fx_model fx;
    fx_begin(&fx, 2, 1, 3, 1);
    qat_rt_layer_desc *l = fx_linear(&fx, "fc", 4, 8, 0);
    fx_finish(&fx);
    (void)l;
    expect_invalid(&fx, "layer 0 'fc'", "linear expects in_h = in_w = 1");
}

Test(validate, linear_kernel_fields)
{
    fx_model fx;
    base(&fx);
    L(fx, 5)->kernel_h = 0;
    expect_invalid(&fx, "layer 5 'fc'", "kernel/stride/pad: linear expects 1x1");
}

Test(validate, dimension_too_large)
{
    fx_model fx;
    base(&fx);
    L(fx, 0)->out_c = QAT_RT_MAX_DIM + 1;
    expect_invalid(&fx, "layer 0 'conv1'", "out_c: expected in [1, 1048576]");
}

Test(validate, tensor_too_large)
{
    fx_model fx;
    base(&fx);
    L(fx, 0)->out_h = 1 << 20;
    L(fx, 0)->out_w = 1 << 20;
    expect_invalid(&fx, "layer 0 'conv1'", "output size: expected at most");
}

Test(validate, weight_bits_1_and_9)
{
    fx_model fx;
    base(&fx);
    L(fx, 0)->weight_bits = 1;
    expect_invalid(&fx, "layer 0 'conv1'", "weight_bits: expected in [2, 8], found 1");
    base(&fx);
    L(fx, 2)->weight_bits = 9;
    expect_invalid(&fx, "layer 2 'conv2'", "weight_bits: expected in [2, 8], found 9");
}

Test(validate, wrong_weights_bytes)
{
    fx_model fx;
    base(&fx);
    L(fx, 5)->weights_bytes -= 1;
    expect_invalid(&fx, "layer 5 'fc'", "weights_bytes: expected 1320");
    base(&fx);
    L(fx, 0)->weight_bits = 4; /* same buffer is now twice too large */
    expect_invalid(&fx, "layer 0 'conv1'", "weights_bytes: expected 32");
}

Test(validate, null_weights_and_arrays)
{
    fx_model fx;
    base(&fx);
    L(fx, 0)->weights = NULL;
    expect_invalid(&fx, "layer 0 'conv1'", "weights: missing");
    base(&fx);
    L(fx, 2)->bias = NULL;
    expect_invalid(&fx, "layer 2 'conv2'", "bias: missing");
    base(&fx);
    L(fx, 5)->multiplier = NULL;
    expect_invalid(&fx, "layer 5 'fc'", "multiplier: missing");
    base(&fx);
    L(fx, 5)->shift = NULL;
    expect_invalid(&fx, "layer 5 'fc'", "shift: missing");
    base(&fx);
    L(fx, 5)->weight_scale = NULL;
    expect_invalid(&fx, "layer 5 'fc'", "weight_scale: missing");
    base(&fx);
    fx.desc.layers = NULL;
    expect_invalid(&fx, "model", "layers: missing");
}

Test(validate, weight_out_of_range_for_its_bits)
{
    /* 5 bits are stored one per byte: 16 does not fit [-16, 15] */
    fx_model fx;
    fx_build_cnn(&fx, 43, 5);
    fx.packed[2][17] = 16;
    expect_invalid(&fx, "layer 2 'conv2'", "weights[17] (channel 0): expected in [-16, 15]");
    /* 3 bits use 4-bit slots: slot value 7 does not fit [-4, 3] */
    fx_build_cnn(&fx, 44, 3);
    fx.packed[5][3] = (uint8_t)((fx.packed[5][3] & 0x0F) | 0x70); /* element 7 */
    expect_invalid(&fx, "layer 5 'fc'", "weights[7] (channel 0): expected in [-4, 3]");
}

Test(validate, last_byte_padding_bits_must_be_zero)
{
    fx_model fx;
    fx_build_cnn(&fx, 45, 2); /* conv1: 7 * 9 = 63 weights -> 16 bytes, 1 slot spare */
    fx.packed[0][15] |= 0xC0;
    expect_invalid(&fx, "layer 0 'conv1'", "padding bits of the last byte");
}

Test(validate, weight_zero_point_out_of_range)
{
    fx_model fx;
    fx_build_cnn(&fx, 46, 4);
    fx.wzp[2][3] = 8;
    expect_invalid(&fx, "layer 2 'conv2'", "weight_zero_point[3]: expected in [-8, 7], found 8");
}

Test(validate, negative_multiplier)
{
    fx_model fx;
    base(&fx);
    fx.mult[5][9] = -5;
    expect_invalid(&fx, "layer 5 'fc'", "multiplier[9]: expected in [0, 2^31), found -5");
}

Test(validate, shift_out_of_range_both_ends)
{
    fx_model fx;
    base(&fx);
    fx.shift[0][1] = 31;
    expect_invalid(&fx, "layer 0 'conv1'", "shift[1]: expected in [-31, 30], found 31");
    base(&fx);
    fx.shift[0][1] = -32;
    expect_invalid(&fx, "layer 0 'conv1'", "shift[1]: expected in [-31, 30], found -32");
}

Test(validate, output_zero_point_out_of_range)
{
    fx_model fx;
    base(&fx);
    L(fx, 5)->output_zero_point = 200;
    expect_invalid(&fx, "layer 5 'fc'", "output_zero_point: expected in [-128, 127], found 200");
}

Test(validate, input_zero_point_disagrees_with_previous_output)
{
    fx_model fx;
    base(&fx);
    L(fx, 2)->input_zero_point += 1;
    expect_invalid(&fx, "layer 2 'conv2'", "input_zero_point: expected");
}

Test(validate, input_scale_disagrees_with_previous_output)
{
    fx_model fx;
    base(&fx);
    L(fx, 5)->input_scale *= 1.5f;
    expect_invalid(&fx, "layer 5 'fc'", "input_scale: expected");
}

Test(validate, act_min_above_act_max)
{
    fx_model fx;
    base(&fx);
    L(fx, 2)->act_min = 10;
    L(fx, 2)->act_max = 9;
    expect_invalid(&fx, "layer 2 'conv2'", "act_min: expected <= act_max 9, found 10");
}

Test(validate, act_max_outside_int8)
{
    fx_model fx;
    base(&fx);
    L(fx, 2)->act_max = 128;
    expect_invalid(&fx, "layer 2 'conv2'", "act_max: expected in [-128, 127], found 128");
}

Test(validate, scales_must_be_positive_and_finite)
{
    fx_model fx;
    base(&fx);
    L(fx, 5)->output_scale = 0.0f;
    expect_invalid(&fx, "layer 5 'fc'", "output_scale: expected positive and finite");
    base(&fx);
    L(fx, 5)->output_scale = NAN;
    expect_invalid(&fx, "layer 5 'fc'", "output_scale: expected positive and finite");
    base(&fx);
    L(fx, 5)->output_scale = INFINITY;
    expect_invalid(&fx, "layer 5 'fc'", "output_scale");
    base(&fx);
    fx.wscale[2][0] = -1.0f;
    expect_invalid(&fx, "layer 2 'conv2'", "weight_scale[0]: expected positive and finite");
}

Test(validate, model_input_quantization_is_fixed)
{
    fx_model fx;
    base(&fx);
    fx.desc.input_scale = 1.0f / 256.0f;
    expect_invalid(&fx, "model", "input_scale: expected 1/255");
    base(&fx);
    fx.desc.input_zero_point = 0;
    expect_invalid(&fx, "model", "input_zero_point: expected -128, found 0");
}

Test(validate, accumulator_overflow_bound)
{
    /* K = 9 * 7 = 63 for conv2; |w| <= 128 gives K * 128 * 255 = 2056320,
     * so a bias of 2^31 - 2056320 breaks the bound on channel 4. */
    fx_model fx;
    base(&fx);
    fx.bias[2][4] = 2147483647 - 63 * 100 * 255;
    expect_invalid(&fx, "layer 2 'conv2'", "bias[4]: int32 accumulator may overflow");
}

Test(validate, weight_count_cannot_wrap_around)
{
    /* kernel 2^20 x 2^20 over a padded 1x1 input with stride 2^20 gives a
     * 1x1 output; K * out_c = 2^46 * 2^20 = 2^66 would wrap a 64-bit count
     * to 0 and match weights_bytes 0. */
    fx_model fx;
    fx_begin(&fx, 1, 1, 64, 1);
    qat_rt_layer_desc *l = fx_push(&fx, QAT_RT_CONV2D, "huge");
    l->kernel_h = l->kernel_w = 1 << 20;
    l->stride_h = l->stride_w = 1 << 20;
    l->pad_h = l->pad_w = (1 << 20) - 1;
    l->out_h = l->out_w = 1;
    l->out_c = 1 << 20;
    l->weight_bits = 8;
    static uint8_t one;
    static int32_t zero32[1];
    static float one_f[1] = {1.0f};
    l->weights = &one;
    l->weights_bytes = 0;
    l->bias = l->multiplier = l->shift = zero32;
    l->weight_scale = one_f;
    fx_commit(&fx, l);
    fx_finish(&fx);
    expect_invalid(&fx, "layer 0 'huge'", "weights: expected at most");
}

/* ---- graph models (format version 2); layers of fx_build_graph: 0 stem,
 * 1 dw (depthwise x2), 2 pw, 3 res = add(pw, stem), 4 grp (groups 3, from
 * the input), 5 dw2 (from res), 6 cat = concat(dw2, grp, dw2), 7 gap, 8 fc */

static void gbase(fx_model *fx)
{
    fx_build_graph(fx, 77, 8);
    qat_error e;
    cr_assert_eq(qat_rt_model_validate(&fx->desc, &e), QAT_OK, "%s", e.msg);
}

Test(validate, graph_input_forward_out_of_range_and_cycle)
{
    fx_model fx;
    gbase(&fx);
    L(fx, 3)->inputs[1] = 5;
    expect_invalid(&fx, "layer 3 'res'", "inputs[1]: points forward to layer 5");
    gbase(&fx);
    L(fx, 3)->inputs[1] = 3;
    expect_invalid(&fx, "layer 3 'res'", "inputs[1]: the layer reads itself (a cycle)");
    gbase(&fx);
    L(fx, 6)->inputs[2] = 9;
    expect_invalid(&fx, "layer 6 'cat'", "inputs[2]: expected a layer index in [-1, 5], found 9");
    gbase(&fx);
    L(fx, 4)->inputs[0] = -2;
    expect_invalid(&fx, "layer 4 'grp'", "inputs[0]: expected a layer index in [-1, 3], found -2");
}

Test(validate, graph_input_counts)
{
    fx_model fx;
    gbase(&fx);
    L(fx, 3)->num_inputs = 1;
    expect_invalid(&fx, "layer 3 'res'", "inputs: add reads 2..2 layers, found 1");
    gbase(&fx);
    L(fx, 7)->num_inputs = 2;
    expect_invalid(&fx, "layer 7 'gap'", "inputs: global_avgpool reads 1..1 layers, found 2");
}

Test(validate, graph_add_and_concat_shapes)
{
    fx_model fx;
    gbase(&fx);
    L(fx, 3)->inputs[1] = 1; /* dw: 11x9x12 beside pw's 11x9x6 */
    expect_invalid(&fx, "layer 3 'res'", "inputs[1]: add needs inputs of one shape");
    gbase(&fx);
    L(fx, 6)->inputs[1] = 3; /* res: 11x9 beside dw2's 6x5 */
    expect_invalid(&fx, "layer 6 'cat'", "inputs[1]: concat needs inputs of one height and width");
    gbase(&fx);
    L(fx, 6)->out_c = 17;
    expect_invalid(&fx, "layer 6 'cat'", "concat expects out_c 18");
    gbase(&fx);
    L(fx, 3)->input_zero_point++; /* input 0's quantization is pw's output's */
    expect_invalid(&fx, "layer 3 'res'", "input_zero_point: expected");
}

Test(validate, graph_groups_and_merge_arrays)
{
    fx_model fx;
    gbase(&fx);
    L(fx, 1)->groups = 4; /* 6 input channels */
    expect_invalid(&fx, "layer 1 'dw'", "groups: expected a divisor of in_c 6 and out_c 12");
    gbase(&fx);
    L(fx, 1)->groups = 3; /* the weights are for 6 groups: the wrong count */
    expect_invalid(&fx, "layer 1 'dw'", "weights_bytes: expected");
    gbase(&fx);
    fx.mult[3][0] = -1;
    expect_invalid(&fx, "layer 3 'res'", "multiplier[0]");
    gbase(&fx);
    fx.shift[3][1] = 1; /* an add input scaled up could overflow the sum */
    expect_invalid(&fx, "layer 3 'res'", "shift[1]: expected in [-31, 0]");
    gbase(&fx);
    L(fx, 7)->act_max = 200;
    expect_invalid(&fx, "layer 7 'gap'", "act_max");
}

Test(validate, graph_unused_output_and_version_1)
{
    fx_model fx;
    gbase(&fx);
    /* cat = concat(grp, grp, grp): nothing reads dw2 any more */
    L(fx, 6)->inputs[0] = L(fx, 6)->inputs[2] = 4;
    L(fx, 6)->input_scale = L(fx, 4)->output_scale;
    L(fx, 6)->input_zero_point = L(fx, 4)->output_zero_point;
    expect_invalid(&fx, "layer 5 'dw2'", "output: read by no later layer");
    gbase(&fx);
    fx.desc.version = 1;
    expect_invalid(&fx, "layer 1 'dw'", "a graph layer needs format version 2");
}
