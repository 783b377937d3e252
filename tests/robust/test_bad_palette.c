/* Catalogue, palettized model files (docs/FORMAT.md §10): a valid
 * palettized model (4-bit weights, K = 3 codes per layer, 2-bit indices)
 * damaged with the HDF5 API; qat-infer must exit 2 naming the file and the
 * dataset, attribute or layer field. */
#include <hdf5.h>

#include "palette_fixture.h"
#include "qat/runtime_h5.h"
#include "h5_edit.h"
#include "robust.h"

static void setup(void)
{
    rb_setup();
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    fx_model fx;
    fx_palette p;
    fx_build_cnn(&fx, 17, 4);
    fx_palettize(&fx, &p, 3, 0);
    qat_error e;
    cr_assert_eq(qat_rt_h5_write(rb_path("m.h5"), &fx.desc, &e), QAT_OK, "%s", e.msg);
    fx_palette_free(&p);
    fx_free(&fx);
    unsigned char img[16 + 4 * 13 * 11] = {0, 0, 8, 3, 0, 0, 0, 4, 0, 0, 0, 13, 0, 0, 0, 11};
    for (size_t i = 16; i < sizeof img; i++)
        img[i] = (unsigned char)(i * 31u);
    unsigned char lab[8 + 4] = {0, 0, 8, 1, 0, 0, 0, 4, 1, 2, 3, 4};
    rb_write("img", img, sizeof img);
    rb_write("lab", lab, sizeof lab);
}

TestSuite(bad_palette, .init = setup, .fini = rb_teardown, .timeout = 120);

Test(bad_palette, base_model_runs_and_reports_its_weight_bytes)
{
    int code = rb_run("qat-infer",
                      RB_ARGS(rb_path("m.h5"), "--images", rb_path("img"), "--labels", rb_path("lab")));
    cr_assert_eq(code, 0, "the palettized base model must run\n%s", rb_err);
    cr_assert(strstr(rb_out, "(3 of 3 weight layers palettized)"), "%s", rb_out);
}

/* fc: 132 x 10 weights, 2-bit indices: 330 bytes */
Test(bad_palette, index_beyond_the_codebook)
{
    uint8_t idx[330];
    memset(idx, 0xFF, sizeof idx); /* every index 3, K = 3 */
    set_dataset("m.h5", "/layers/005/palette_indices", H5T_STD_U8LE, H5T_NATIVE_UINT8, sizeof idx, idx);
    INFER_BAD("layer 5", "palette_indices[0]: expected < palette_size 3, found 3");
}

Test(bad_palette, codebook_code_outside_the_weight_bits)
{
    const int8_t cb[3] = {-8, 0, 8}; /* 4-bit weights: [-8, 7] */
    set_dataset("m.h5", "/layers/005/codebook", H5T_STD_I8LE, H5T_NATIVE_INT8, 3, cb);
    INFER_BAD("layer 5", "codebook[2]: expected in [-8, 7] for 4 bits, found 8");
}

Test(bad_palette, index_array_of_the_wrong_length)
{
    uint8_t idx[329] = {0};
    set_dataset("m.h5", "/layers/005/palette_indices", H5T_STD_U8LE, H5T_NATIVE_UINT8, sizeof idx, idx);
    INFER_BAD("dataset /layers/005/palette_indices", "expected shape (330), found shape (329)");
}

Test(bad_palette, codebook_of_the_wrong_length_or_type)
{
    const int8_t cb[4] = {-8, 0, 7, 1};
    set_dataset("m.h5", "/layers/002/codebook", H5T_STD_I8LE, H5T_NATIVE_INT8, 4, cb);
    INFER_BAD("dataset /layers/002/codebook", "expected shape (3), found shape (4)");
    const int32_t wide[3] = {-8, 0, 7};
    set_dataset("m.h5", "/layers/002/codebook", H5T_STD_I32LE, H5T_NATIVE_INT32, 3, wide);
    INFER_BAD("dataset /layers/002/codebook", "expected dtype int8, found int32");
}

Test(bad_palette, palette_size_out_of_range)
{
    set_i32("/layers/000", "palette_size", 0, (const int32_t[]){300});
    INFER_BAD("/layers/000: attribute 'palette_size'", "[2, 256]", "300");
}

Test(bad_palette, palette_groups_neither_one_nor_the_channels)
{
    set_i32("/layers/002", "palette_groups", 0, (const int32_t[]){2});
    INFER_BAD("/layers/002: attribute 'palette_groups'", "expected 1 or 33", "found 2");
}

Test(bad_palette, a_version_1_file_has_no_palette)
{
    set_i32("/", "version", 0, (const int32_t[]){1});
    INFER_BAD("dataset /layers/000/weights", "missing");
}
