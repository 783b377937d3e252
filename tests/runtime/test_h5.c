/* HDF5 model files: write -> read gives the same description and the same
 * logits; every kind of damage is rejected with the file and the field
 * named, never a crash. */
#include <criterion/criterion.h>
#include <hdf5.h>
#include <sys/stat.h>
#include <dirent.h>
#include <unistd.h>

#include "qat/runtime_h5.h"
#include "qat/status.h"
#include "rt_fixture.h"

static char dir[64];
static char path[128];

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/qat_rt_h5_XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/model.h5", dir);
}

static void teardown(void)
{
    DIR *dd = opendir(dir);
    struct dirent *de;
    char p[512];
    while (dd && (de = readdir(dd)))
        if (de->d_name[0] != '.') {
            snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
            unlink(p);
        }
    if (dd)
        closedir(dd);
    rmdir(dir);
}

TestSuite(h5, .init = setup, .fini = teardown);

static void write_cnn(fx_model *fx, int bits)
{
    fx_build_cnn(fx, 500 + (uint64_t)bits, bits);
    qat_error e;
    cr_assert_eq(qat_rt_h5_write(path, &fx->desc, &e), QAT_OK, "%s", e.msg);
}

static void *slurp(const char *p, size_t *len)
{
    FILE *f = fopen(p, "rb");
    cr_assert_not_null(f);
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    void *b = malloc(*len ? *len : 1);
    cr_assert_eq(fread(b, 1, *len, f), *len);
    fclose(f);
    return b;
}

static void spit(const char *p, const void *b, size_t len)
{
    FILE *f = fopen(p, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(b, 1, len, f), len);
    fclose(f);
}

static void expect_load_fails(const char *field)
{
    qat_error e;
    qat_rt_model *m = (qat_rt_model *)&e;
    qat_status st = qat_rt_h5_load(path, &m, &e);
    cr_assert_eq(st, QAT_EINVAL, "expected EINVAL, got %s: %s", qat_status_name(st), e.msg);
    cr_assert_null(m);
    cr_assert(strstr(e.msg, path), "message '%s' does not name the file", e.msg);
    cr_assert(strstr(e.msg, field), "message '%s' lacks '%s'", e.msg, field);
}

/* Reopens the written file read-write for surgery; H5 errors stay quiet. */
static hid_t h5_edit(void)
{
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    cr_assert_geq(f, 0);
    return f;
}

static void set_attr_i32(hid_t f, const char *obj, const char *name, int32_t v)
{
    hid_t o = H5Oopen(f, obj, H5P_DEFAULT);
    cr_assert_geq(o, 0);
    if (H5Aexists(o, name) > 0)
        H5Adelete(o, name);
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(o, name, H5T_STD_I32LE, sp, H5P_DEFAULT, H5P_DEFAULT);
    cr_assert_geq(H5Awrite(a, H5T_NATIVE_INT32, &v), 0);
    H5Aclose(a);
    H5Sclose(sp);
    H5Oclose(o);
}

static void replace_dataset(hid_t f, const char *p, hid_t type, hsize_t n, const void *v)
{
    cr_assert_geq(H5Ldelete(f, p, H5P_DEFAULT), 0);
    hid_t sp = H5Screate_simple(1, &n, NULL);
    hid_t d = H5Dcreate2(f, p, type, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    cr_assert_geq(d, 0);
    cr_assert_geq(H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, v), 0);
    H5Dclose(d);
    H5Sclose(sp);
}

static void logits_of(const qat_rt_model *m, int n, int8_t *out)
{
    size_t in = qat_rt_model_input_size(m);
    uint8_t *px = malloc((size_t)n * in);
    fx_images(1234, px, (size_t)n * in);
    qat_error e;
    cr_assert_eq(fx_run(m, 2, n, px, n, out, &e), QAT_OK, "%s", e.msg);
    free(px);
}

Test(h5, roundtrip_preserves_description_and_logits_every_width)
{
    for (int bits = 2; bits <= 8; bits++) {
        fx_model fx;
        write_cnn(&fx, bits);
        qat_error e;
        qat_rt_owned_desc od;
        cr_assert_eq(qat_rt_h5_read_desc(path, &od, &e), QAT_OK, "%s", e.msg);
        const qat_rt_model_desc *a = &fx.desc, *b = &od.desc;
        cr_assert_eq(b->version, a->version);
        cr_assert_eq(b->num_layers, a->num_layers);
        cr_assert_eq(b->num_classes, a->num_classes);
        cr_assert_eq(b->in_h * 10000 + b->in_w * 100 + b->in_c, a->in_h * 10000 + a->in_w * 100 + a->in_c);
        for (int i = 0; i < a->num_layers; i++) {
            const qat_rt_layer_desc *x = &a->layers[i], *y = &b->layers[i];
            cr_assert_eq(y->op, x->op);
            cr_assert_str_eq(y->name, x->name);
            cr_assert(y->in_h == x->in_h && y->in_w == x->in_w && y->in_c == x->in_c &&
                      y->out_h == x->out_h && y->out_w == x->out_w && y->out_c == x->out_c);
            cr_assert(y->input_scale == x->input_scale && y->output_scale == x->output_scale);
            cr_assert(y->input_zero_point == x->input_zero_point &&
                      y->output_zero_point == x->output_zero_point);
            if (x->op == QAT_RT_CONV2D || x->op == QAT_RT_LINEAR) {
                size_t oc = (size_t)x->out_c;
                cr_assert_eq(y->weight_bits, x->weight_bits);
                cr_assert_eq(y->weights_bytes, x->weights_bytes);
                cr_assert_arr_eq(y->weights, x->weights, x->weights_bytes);
                cr_assert_arr_eq(y->weight_zero_point, x->weight_zero_point, oc * 4);
                cr_assert_arr_eq(y->bias, x->bias, oc * 4);
                cr_assert_arr_eq(y->multiplier, x->multiplier, oc * 4);
                cr_assert_arr_eq(y->shift, x->shift, oc * 4);
                cr_assert_arr_eq(y->weight_scale, x->weight_scale, oc * 4);
                cr_assert(y->act_min == x->act_min && y->act_max == x->act_max);
            }
            if (x->op != QAT_RT_LINEAR && x->op != QAT_RT_FLATTEN)
                cr_assert(y->kernel_h == x->kernel_h && y->kernel_w == x->kernel_w &&
                          y->stride_h == x->stride_h && y->stride_w == x->stride_w &&
                          y->pad_h == x->pad_h && y->pad_w == x->pad_w);
        }
        qat_rt_model *m1, *m2, *m3;
        cr_assert_eq(qat_rt_model_create(&fx.desc, &m1, &e), QAT_OK, "%s", e.msg);
        cr_assert_eq(qat_rt_h5_load(path, &m2, &e), QAT_OK, "%s", e.msg);
        size_t len;
        void *img = slurp(path, &len);
        cr_assert_eq(qat_rt_h5_load_memory(img, len, "img", &m3, &e), QAT_OK, "%s", e.msg);
        int8_t l1[7 * 10], l2[7 * 10], l3[7 * 10];
        logits_of(m1, 7, l1);
        logits_of(m2, 7, l2);
        logits_of(m3, 7, l3);
        cr_assert_arr_eq(l2, l1, sizeof l1, "bits %d: file model differs", bits);
        cr_assert_arr_eq(l3, l1, sizeof l1, "bits %d: memory model differs", bits);
        free(img);
        qat_rt_model_destroy(m1);
        qat_rt_model_destroy(m2);
        qat_rt_model_destroy(m3);
        qat_rt_owned_desc_free(&od);
        fx_free(&fx);
    }
}

Test(h5, write_is_atomic_and_leaves_no_temp_files)
{
    fx_model fx;
    write_cnn(&fx, 8);
    fx_free(&fx);
    write_cnn(&fx, 4); /* replaces the first */
    qat_error e;
    qat_rt_owned_desc od;
    cr_assert_eq(qat_rt_h5_read_desc(path, &od, &e), QAT_OK, "%s", e.msg);
    cr_assert_eq(od.desc.layers[0].weight_bits, 4);
    qat_rt_owned_desc_free(&od);
    /* an invalid description is refused and the old file survives */
    fx.layers[2].weight_bits = 9;
    cr_assert_eq(qat_rt_h5_write(path, &fx.desc, &e), QAT_EINVAL);
    cr_assert(strstr(e.msg, path) && strstr(e.msg, "weight_bits"), "%s", e.msg);
    cr_assert_eq(qat_rt_h5_read_desc(path, &od, &e), QAT_OK, "%s", e.msg);
    qat_rt_owned_desc_free(&od);
    int entries = 0;
    DIR *dd = opendir(dir);
    struct dirent *de;
    while ((de = readdir(dd)))
        entries += de->d_name[0] != '.';
    closedir(dd);
    cr_assert_eq(entries, 1, "temporary files left behind");
    /* an unwritable destination is an I/O error naming the path */
    char bad[200];
    snprintf(bad, sizeof bad, "%s/no/such/dir/m.h5", dir);
    fx.layers[2].weight_bits = 4;
    cr_assert_eq(qat_rt_h5_write(bad, &fx.desc, &e), QAT_EIO);
    cr_assert(strstr(e.msg, bad), "%s", e.msg);
    fx_free(&fx);
}

Test(h5, missing_file)
{
    snprintf(path, sizeof path, "%s/nope.h5", dir);
    expect_load_fails("No such file");
}

Test(h5, truncated_files)
{
    fx_model fx;
    write_cnn(&fx, 8);
    fx_free(&fx);
    size_t len;
    unsigned char *img = slurp(path, &len);
    const size_t cuts[] = {0, 1, 8, 100, 512, len / 3, len / 2, len - 100, len - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        spit(path, img, cuts[i]);
        expect_load_fails("");
    }
    free(img);
}

Test(h5, random_bytes)
{
    qat_rng r;
    qat_rng_seed(&r, 9, 9);
    unsigned char junk[4096];
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (unsigned char)qat_rng_u32(&r);
    spit(path, junk, sizeof junk);
    expect_load_fails("not a readable HDF5 model file");
    /* an HDF5 signature followed by garbage */
    memcpy(junk, "\x89HDF\r\n\x1a\n", 8);
    spit(path, junk, sizeof junk);
    expect_load_fails("not a readable HDF5 model file");
}

Test(h5, missing_dataset)
{
    fx_model fx;
    write_cnn(&fx, 8);
    fx_free(&fx);
    hid_t f = h5_edit();
    cr_assert_geq(H5Ldelete(f, "/layers/002/bias", H5P_DEFAULT), 0);
    H5Fclose(f);
    expect_load_fails("dataset /layers/002/bias: missing");
}

Test(h5, missing_layer_group_and_attribute)
{
    fx_model fx;
    write_cnn(&fx, 8);
    fx_free(&fx);
    hid_t f = h5_edit();
    cr_assert_geq(H5Ldelete(f, "/layers/004", H5P_DEFAULT), 0);
    H5Fclose(f);
    expect_load_fails("/layers/004: group missing");
    write_cnn(&fx, 8);
    fx_free(&fx);
    f = h5_edit();
    cr_assert_geq(H5Adelete_by_name(f, "/layers/001", "kernel", H5P_DEFAULT), 0);
    H5Fclose(f);
    expect_load_fails("/layers/001: attribute 'kernel': missing");
}

Test(h5, dataset_with_wrong_dtype)
{
    fx_model fx;
    write_cnn(&fx, 8);
    float f10[10] = {0};
    fx_free(&fx);
    hid_t f = h5_edit();
    replace_dataset(f, "/layers/005/shift", H5T_IEEE_F32LE, 10, f10);
    H5Fclose(f);
    expect_load_fails("dataset /layers/005/shift: expected dtype int32, found float32");
    write_cnn(&fx, 8);
    fx_free(&fx);
    int32_t w32[10] = {0};
    f = h5_edit();
    replace_dataset(f, "/layers/005/weights", H5T_STD_I32LE, 10, w32);
    H5Fclose(f);
    expect_load_fails("dataset /layers/005/weights: expected dtype uint8, found int32");
}

Test(h5, dataset_with_wrong_shape)
{
    fx_model fx;
    write_cnn(&fx, 8);
    fx_free(&fx);
    int32_t b[34] = {0};
    hid_t f = h5_edit();
    replace_dataset(f, "/layers/002/bias", H5T_STD_I32LE, 34, b);
    H5Fclose(f);
    expect_load_fails("dataset /layers/002/bias: expected shape (33), found shape (34)");
}

Test(h5, absurd_attributes)
{
    static const struct {
        const char *obj, *attr;
        int32_t value;
        const char *field;
    } cases[] = {
        {"/", "version", 4, "attribute 'version': expected 1..3, found 4"},
        {"/", "num_layers", 100000, "attribute 'num_layers': expected a value in [1, 256]"},
        {"/", "num_classes", -3, "attribute 'num_classes'"},
        {"/", "input_zero_point", 0, "input_zero_point: expected -128, found 0"},
        {"/layers/000", "weight_bits", 9, "/layers/000: attribute 'weight_bits'"},
        {"/layers/000", "weight_bits", 1, "/layers/000: attribute 'weight_bits'"},
        {"/layers/002", "act_min", 500, "layer 2 'conv2': act_min"},
        {"/layers/005", "output_zero_point", -129, "layer 5 'fc': output_zero_point"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fx_model fx;
        write_cnn(&fx, 8);
        fx_free(&fx);
        hid_t f = h5_edit();
        set_attr_i32(f, cases[i].obj, cases[i].attr, cases[i].value);
        H5Fclose(f);
        expect_load_fails(cases[i].field);
    }
}

Test(h5, absurd_shape_and_array_values)
{
    fx_model fx;
    write_cnn(&fx, 8);
    fx_free(&fx);
    hid_t f = h5_edit();
    hid_t o = H5Oopen(f, "/layers/001", H5P_DEFAULT);
    H5Adelete(o, "output_shape");
    int32_t shp[3] = {6, -5, 7};
    hsize_t three = 3;
    hid_t sp = H5Screate_simple(1, &three, NULL);
    hid_t a = H5Acreate2(o, "output_shape", H5T_STD_I32LE, sp, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, H5T_NATIVE_INT32, shp);
    H5Aclose(a);
    H5Sclose(sp);
    H5Oclose(o);
    H5Fclose(f);
    expect_load_fails("/layers/001: attribute 'output_shape': expected each value in [1, 1048576], found -5");

    write_cnn(&fx, 8);
    int32_t shifts[33];
    memcpy(shifts, fx.shift[2], sizeof shifts);
    shifts[7] = 40;
    fx_free(&fx);
    f = h5_edit();
    replace_dataset(f, "/layers/002/shift", H5T_STD_I32LE, 33, shifts);
    H5Fclose(f);
    expect_load_fails("layer 2 'conv2': shift[7]: expected in [-31, 30], found 40");
}

Test(h5, attribute_with_wrong_dtype_or_rank)
{
    fx_model fx;
    write_cnn(&fx, 8);
    fx_free(&fx);
    hid_t f = h5_edit();
    H5Adelete(f, "version");
    int64_t v = 1;
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(f, "version", H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, H5T_NATIVE_INT64, &v);
    H5Aclose(a);
    H5Sclose(sp);
    H5Fclose(f);
    expect_load_fails("/: attribute 'version': expected dtype int32, found int64");

    write_cnn(&fx, 8);
    fx_free(&fx);
    f = h5_edit();
    H5Adelete_by_name(f, "/layers/000", "kernel", H5P_DEFAULT);
    int32_t k3[3] = {3, 3, 3};
    hsize_t three = 3;
    hid_t o = H5Oopen(f, "/layers/000", H5P_DEFAULT);
    sp = H5Screate_simple(1, &three, NULL);
    a = H5Acreate2(o, "kernel", H5T_STD_I32LE, sp, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, H5T_NATIVE_INT32, k3);
    H5Aclose(a);
    H5Sclose(sp);
    H5Oclose(o);
    H5Fclose(f);
    expect_load_fails("/layers/000: attribute 'kernel': expected shape (2), found shape (3)");
}

Test(h5, unknown_op_and_wrong_format_name)
{
    fx_model fx;
    write_cnn(&fx, 8);
    fx_free(&fx);
    hid_t f = h5_edit();
    H5Adelete_by_name(f, "/layers/003", "op", H5P_DEFAULT);
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, 7);
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t o = H5Oopen(f, "/layers/003", H5P_DEFAULT);
    hid_t a = H5Acreate2(o, "op", t, sp, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, t, "softmax");
    H5Aclose(a);
    H5Oclose(o);
    H5Adelete(f, "format");
    a = H5Acreate2(f, "format", t, sp, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, t, "pytorch");
    H5Aclose(a);
    H5Sclose(sp);
    H5Tclose(t);
    H5Fclose(f);
    expect_load_fails("/: attribute 'format': expected 'qat-int8-model', found 'pytorch'");
}

Test(h5, variable_length_strings_are_accepted)
{
    /* h5py writes str attributes as variable-length strings */
    fx_model fx;
    write_cnn(&fx, 8);
    fx_free(&fx);
    hid_t f = h5_edit();
    H5Adelete_by_name(f, "/layers/003", "name", H5P_DEFAULT);
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t o = H5Oopen(f, "/layers/003", H5P_DEFAULT);
    hid_t a = H5Acreate2(o, "name", t, sp, H5P_DEFAULT, H5P_DEFAULT);
    const char *s = "avg_vlen";
    H5Awrite(a, t, &s);
    H5Aclose(a);
    H5Oclose(o);
    H5Sclose(sp);
    H5Tclose(t);
    H5Fclose(f);
    qat_error e;
    qat_rt_owned_desc od;
    cr_assert_eq(qat_rt_h5_read_desc(path, &od, &e), QAT_OK, "%s", e.msg);
    cr_assert_str_eq(od.desc.layers[3].name, "avg_vlen");
    qat_rt_owned_desc_free(&od);
}

/* Replaces /layers/003's name with the bytes s, as a UTF-8 string,
 * variable-length (h5py's str) or fixed-length. */
static void set_name_utf8(const char *s, int vlen)
{
    hid_t f = h5_edit();
    hid_t o = H5Oopen(f, "/layers/003", H5P_DEFAULT);
    H5Adelete(o, "name");
    hid_t t = H5Tcopy(H5T_C_S1);
    cr_assert_geq(H5Tset_size(t, vlen ? H5T_VARIABLE : strlen(s)), 0);
    cr_assert_geq(H5Tset_cset(t, H5T_CSET_UTF8), 0);
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(o, "name", t, sp, H5P_DEFAULT, H5P_DEFAULT);
    cr_assert_geq(H5Awrite(a, t, vlen ? (const void *)&s : s), 0);
    H5Aclose(a);
    H5Sclose(sp);
    H5Tclose(t);
    H5Oclose(o);
    H5Fclose(f);
}

Test(h5, utf8_strings_are_accepted_and_their_bytes_validated)
{
    /* the edges of well-formed UTF-8 (Unicode Table 3-7) */
    static const char *const good[] = {
        "n\xC2\x80",         "n\xC3\xA4 \xE2\x82\xAC",   "n\xED\x9F\xBF" /* U+D7FF */,
        "n\xEE\x80\x80",     "n\xEF\xBF\xBF",            "n\xF0\x90\x80\x80",
        "n\xF0\x9F\x98\x80", "n\xF4\x8F\xBF\xBF" /* U+10FFFF */};
    static const struct {
        const char *s;
        const char *at; /* the expected "byte 0x.. at offset N" */
    } bad[] = {
        {"n\x80", "0x80 at offset 1"},                 /* lone continuation */
        {"n\xC0\xAF", "0xc0 at offset 1"},             /* overlong '/' */
        {"n\xC1\xBF", "0xc1 at offset 1"},             /* overlong */
        {"n\xE0\x9F\xBF", "0xe0 at offset 1"},         /* overlong U+07FF */
        {"n\xED\xA0\x80", "0xed at offset 1"},         /* surrogate U+D800 */
        {"n\xF0\x8F\xBF\xBF", "0xf0 at offset 1"},     /* overlong U+FFFF */
        {"n\xF4\x90\x80\x80", "0xf4 at offset 1"},     /* U+110000 */
        {"n\xF5\x80\x80\x80", "0xf5 at offset 1"},     /* no such lead byte */
        {"n\xFF", "0xff at offset 1"},                 /* never in UTF-8 */
        {"n\xE2\x28\xA1", "0xe2 at offset 1"},         /* bad continuation */
        {"n\xC3\xA4\xE2\x82", "0xe2 at offset 3"},     /* cut off at the end */
        {"n\xF0\x9F\x98\x41", "0xf0 at offset 1"},     /* cut off by ASCII */
    };
    fx_model fx;
    write_cnn(&fx, 8);
    fx_free(&fx);
    qat_error e;
    qat_rt_owned_desc od;
    for (int vlen = 0; vlen <= 1; vlen++) {
        for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
            set_name_utf8(good[i], vlen);
            cr_assert_eq(qat_rt_h5_read_desc(path, &od, &e), QAT_OK, "good[%zu]: %s", i, e.msg);
            cr_assert_str_eq(od.desc.layers[3].name, good[i]);
            qat_rt_owned_desc_free(&od);
        }
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            set_name_utf8(bad[i].s, vlen);
            expect_load_fails("/layers/003: attribute 'name': expected UTF-8 text");
            expect_load_fails(bad[i].at);
        }
    }
}

Test(h5, byte_flips_never_crash_and_never_load_bad_models)
{
    /* Damage each of many positions in turn: every outcome must be either a
     * clean error or a model that passed validation and runs. */
    fx_model fx;
    write_cnn(&fx, 4);
    fx_free(&fx);
    size_t len;
    unsigned char *img = slurp(path, &len);
    unsigned char *bad = malloc(len);
    int rejected = 0, loaded = 0;
    for (size_t pos = 0; pos < len; pos += 17) {
        memcpy(bad, img, len);
        bad[pos] ^= 0x5A;
        qat_error e;
        qat_rt_model *m = NULL;
        qat_status st = qat_rt_h5_load_memory(bad, len, "flipped.h5", &m, &e);
        if (st) {
            cr_assert(strstr(e.msg, "flipped.h5"), "%s", e.msg);
            rejected++;
            continue;
        }
        int8_t lg[2 * 10];
        uint8_t px[2 * 13 * 11];
        fx_images(5, px, sizeof px);
        cr_assert_eq(fx_run(m, 1, 2, px, 2, lg, &e), QAT_OK, "%s", e.msg);
        qat_rt_model_destroy(m);
        loaded++;
    }
    cr_assert_gt(rejected, 0);
    free(bad);
    free(img);
}

/* ---- graph models (format version 2): layers of fx_build_graph ---- */

static void write_graph(fx_model *fx, int bits)
{
    fx_build_graph(fx, 600 + (uint64_t)bits, bits);
    qat_error e;
    cr_assert_eq(qat_rt_h5_write(path, &fx->desc, &e), QAT_OK, "%s", e.msg);
}

static void set_attr_i32v(hid_t f, const char *obj, const char *name, int n, const int32_t *v)
{
    hid_t o = H5Oopen(f, obj, H5P_DEFAULT);
    cr_assert_geq(o, 0);
    if (H5Aexists(o, name) > 0)
        H5Adelete(o, name);
    hsize_t dim = (hsize_t)n;
    hid_t sp = H5Screate_simple(1, &dim, NULL);
    hid_t a = H5Acreate2(o, name, H5T_STD_I32LE, sp, H5P_DEFAULT, H5P_DEFAULT);
    cr_assert_geq(H5Awrite(a, H5T_NATIVE_INT32, v), 0);
    H5Aclose(a);
    H5Sclose(sp);
    H5Oclose(o);
}

Test(h5, graph_roundtrip_keeps_inputs_groups_and_logits)
{
    for (int bits = 3; bits <= 8; bits += 5) {
        fx_model fx;
        write_graph(&fx, bits);
        qat_error e;
        qat_rt_owned_desc d;
        cr_assert_eq(qat_rt_h5_read_desc(path, &d, &e), QAT_OK, "%s", e.msg);
        cr_assert_eq(d.desc.version, 2);
        for (int i = 0; i < fx.desc.num_layers; i++) {
            const qat_rt_layer_desc *a = &fx.layers[i], *b = &d.layers[i];
            cr_assert_eq(b->op, a->op, "layer %d", i);
            cr_assert_eq(b->num_inputs, a->num_inputs, "layer %d", i);
            cr_assert_arr_eq(b->inputs, a->inputs, sizeof(int) * (size_t)a->num_inputs);
            cr_assert_eq(b->groups > 1 ? b->groups : 1, a->groups > 1 ? a->groups : 1);
            cr_assert_eq(b->act_max, a->act_max, "layer %d", i);
        }
        qat_rt_model *m1, *m2;
        cr_assert_eq(qat_rt_model_create(&fx.desc, &m1, &e), QAT_OK, "%s", e.msg);
        cr_assert_eq(qat_rt_model_create(&d.desc, &m2, &e), QAT_OK, "%s", e.msg);
        int8_t l1[7 * 10], l2[7 * 10];
        logits_of(m1, 7, l1);
        logits_of(m2, 7, l2);
        cr_assert_arr_eq(l1, l2, sizeof l1);
        qat_rt_model_destroy(m1);
        qat_rt_model_destroy(m2);
        qat_rt_owned_desc_free(&d);
        fx_free(&fx);
    }
}

/* FORMAT.md §7's graph items: each refused with the layer and field. */
Test(h5, graph_bad_inputs_shapes_and_groups)
{
    static const struct {
        const char *obj, *attr;
        int n;
        int32_t v[4];
        const char *field;
    } cases[] = {
        {"/layers/003", "inputs", 2, {2, 5}, "layer 3 'res': inputs[1]: points forward to layer 5"},
        {"/layers/003", "inputs", 2, {3, 0}, "layer 3 'res': inputs[0]: the layer reads itself"},
        {"/layers/006", "inputs", 3, {5, 4, 12}, "layer 6 'cat': inputs[2]: expected a layer index"},
        {"/layers/003", "inputs", 2, {2, 1}, "layer 3 'res': inputs[1]: add needs inputs of one shape"},
        {"/layers/006", "inputs", 3, {5, 3, 5}, "layer 6 'cat': inputs[1]: concat needs inputs"},
        {"/layers/003", "inputs", 5, {2, 0, 0, 0}, "/layers/003: attribute 'inputs': expected shape"},
        {"/layers/001", "groups", 1, {4}, "/layers/001: attribute 'groups': expected a divisor"},
        {"/layers/001", "groups", 1, {3}, "dataset /layers/001/weights: expected shape"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fx_model fx;
        write_graph(&fx, 8);
        fx_free(&fx);
        hid_t f = h5_edit();
        if (strcmp(cases[i].attr, "groups") == 0)
            set_attr_i32(f, cases[i].obj, cases[i].attr, cases[i].v[0]);
        else if (cases[i].n == 5) { /* five inputs: more than any layer reads */
            int32_t five[5] = {2, 0, 0, 0, 0};
            set_attr_i32v(f, cases[i].obj, cases[i].attr, 5, five);
        } else
            set_attr_i32v(f, cases[i].obj, cases[i].attr, cases[i].n, cases[i].v);
        H5Fclose(f);
        expect_load_fails(cases[i].field);
    }
    /* read as version 1, the file's graph attributes do not exist: the
     * depthwise layer's weights are too few for a plain conv */
    fx_model fx;
    write_graph(&fx, 8);
    fx_free(&fx);
    hid_t f = h5_edit();
    set_attr_i32(f, "/", "version", 1);
    H5Fclose(f);
    expect_load_fails("dataset /layers/001/weights: expected shape (648), found shape (108)");
}
