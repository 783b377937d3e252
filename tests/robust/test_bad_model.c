/* Catalogue, model files and checkpoints: damaged integer-model files
 * through qat-infer, damaged checkpoints through qat-export. Each case starts
 * from a valid file written in the test (the first test of each tool proves
 * it loads) and damages one thing with the HDF5 API or by hand; the message
 * must name the file and the object (dataset, attribute, layer field). */
#include <hdf5.h>
#include <math.h>

#include "qat/runtime_h5.h"
#include "qat/train.h"
#include "h5_edit.h"
#include "robust.h"
#include "float_fixture.h"
#include "rt_fixture.h"

/* ---- a valid model, its images, and HDF5 surgery ------------------------------ */

/* The CNN of the runtime tests: 13x11x1 -> conv1 (3x3, pad 1) -> pool1 (max
 * 2x2) -> conv2 -> pool2 (avg) -> flatten -> fc (10 classes). Layer groups
 * /layers/000 .. /layers/005. */
static void write_model(const char *name)
{
    fx_model fx;
    fx_build_cnn(&fx, 17, 8);
    qat_error e;
    cr_assert_eq(qat_rt_h5_write(rb_path(name), &fx.desc, &e), QAT_OK, "%s", e.msg);
    fx_free(&fx);
}

static void write_idx(void)
{
    unsigned char img[16 + 4 * 13 * 11] = {0, 0, 8, 3, 0, 0, 0, 4, 0, 0, 0, 13, 0, 0, 0, 11};
    for (size_t i = 16; i < sizeof img; i++)
        img[i] = (unsigned char)(i * 31u);
    unsigned char lab[8 + 4] = {0, 0, 8, 1, 0, 0, 0, 4, 1, 2, 3, 4};
    rb_write("img", img, sizeof img);
    rb_write("lab", lab, sizeof lab);
}

static void infer_setup(void)
{
    rb_setup();
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    write_model("m.h5");
    write_idx();
}

static void set_f32(const char *obj, const char *attr, float v)
{
    set_attr("m.h5", obj, attr, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 0, &v);
}

static void set_str(const char *file, const char *obj, const char *attr, const char *s)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, strlen(s));
    set_attr(file, obj, attr, t, t, 0, s);
    H5Tclose(t);
}

/* Reads a 1-D int32 dataset of the model (at most cap values). */
static size_t get_i32s(const char *path, int32_t *v, size_t cap)
{
    hid_t f = H5Fopen(rb_path("m.h5"), H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t d = H5Dopen2(f, path, H5P_DEFAULT);
    cr_assert_geq(d, 0);
    hid_t sp = H5Dget_space(d);
    hsize_t n;
    H5Sget_simple_extent_dims(sp, &n, NULL);
    cr_assert_leq(n, cap);
    cr_assert_geq(H5Dread(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, v), 0);
    H5Sclose(sp);
    H5Dclose(d);
    H5Fclose(f);
    return (size_t)n;
}

static void unlink_obj(const char *file, const char *path)
{
    hid_t f = open_rw(file);
    cr_assert_geq(H5Ldelete(f, path, H5P_DEFAULT), 0);
    H5Fclose(f);
}

TestSuite(bad_model, .init = infer_setup, .fini = rb_teardown, .timeout = 120);

Test(bad_model, base_model_runs)
{
    int code = rb_run("qat-infer",
                      RB_ARGS(rb_path("m.h5"), "--images", rb_path("img"), "--labels", rb_path("lab")));
    cr_assert_eq(code, 0, "the catalogue's base model must run\n%s", rb_err);
}

Test(bad_model, truncated_file)
{
    size_t n;
    unsigned char *b = rb_read(rb_path("m.h5"), &n);
    rb_write("m.h5", b, n / 2);
    free(b);
    INFER_BAD("not a readable HDF5 model file");
}

Test(bad_model, random_bytes)
{
    unsigned char b[4096];
    qat_rng r;
    qat_rng_seed(&r, 3, 4);
    for (size_t i = 0; i < sizeof b; i++)
        b[i] = (unsigned char)qat_rng_u32(&r);
    rb_write("m.h5", b, sizeof b);
    INFER_BAD("not a readable HDF5 model file");
}

Test(bad_model, empty_file)
{
    rb_write("m.h5", "", 0);
    INFER_BAD("not a readable HDF5 model file");
}

Test(bad_model, missing_dataset)
{
    unlink_obj("m.h5", "/layers/002/bias");
    INFER_BAD("dataset /layers/002/bias", "missing");
}

Test(bad_model, missing_layer_group)
{
    int32_t n = 7;
    set_i32("/", "num_layers", 0, &n);
    INFER_BAD("/layers/006", "missing");
}

Test(bad_model, missing_attribute)
{
    hid_t f = open_rw("m.h5");
    cr_assert_geq(H5Adelete_by_name(f, "/layers/000", "output_scale", H5P_DEFAULT), 0);
    H5Fclose(f);
    INFER_BAD("/layers/000", "attribute 'output_scale'", "missing");
}

Test(bad_model, wrong_dtype_of_dataset)
{
    float s[33] = {0};
    set_dataset("m.h5", "/layers/002/shift", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 33, s);
    INFER_BAD("dataset /layers/002/shift", "expected dtype int32, found float32");
}

Test(bad_model, wrong_dtype_of_attribute)
{
    set_f32("/layers/000", "weight_bits", 8.0f);
    INFER_BAD("/layers/000", "attribute 'weight_bits'", "expected dtype int32, found float32");
}

Test(bad_model, dataset_of_wrong_length)
{
    int32_t b[32] = {0};
    set_dataset("m.h5", "/layers/002/bias", H5T_STD_I32LE, H5T_NATIVE_INT32, 32, b);
    INFER_BAD("dataset /layers/002/bias", "expected shape (33), found shape (32)");
}

Test(bad_model, shapes_disagree_between_layers)
{
    /* the max pool claims a 12x11 input where conv1 gives 13x11 */
    int32_t in[3] = {12, 11, 7}, out[3] = {6, 5, 7};
    set_i32("/layers/001", "input_shape", 3, in);
    set_i32("/layers/001", "output_shape", 3, out);
    INFER_BAD("layer 1 'pool1'", "input shape", "13x11x7");
}

Test(bad_model, output_shape_against_window)
{
    int32_t out[3] = {7, 5, 7};
    set_i32("/layers/001", "output_shape", 3, out);
    INFER_BAD("layer 1 'pool1'", "out_h");
}

Test(bad_model, last_layer_not_num_classes)
{
    int32_t n = 11;
    set_i32("/", "num_classes", 0, &n);
    INFER_BAD("num_classes");
}

Test(bad_model, absurd_shift)
{
    int32_t s[64];
    size_t n = get_i32s("/layers/000/shift", s, 64);
    s[n - 1] = 99;
    set_dataset("m.h5", "/layers/000/shift", H5T_STD_I32LE, H5T_NATIVE_INT32, n, s);
    INFER_BAD("layer 0 'conv1'", "shift[6]", "99");
}

Test(bad_model, absurd_zero_point)
{
    int32_t zp = 300;
    set_i32("/layers/000", "output_zero_point", 0, &zp);
    INFER_BAD("layer 0 'conv1'", "output_zero_point", "300");
}

Test(bad_model, absurd_weight_zero_point)
{
    int32_t z[64];
    size_t n = get_i32s("/layers/005/weight_zero_point", z, 64);
    z[0] = 1000;
    set_dataset("m.h5", "/layers/005/weight_zero_point", H5T_STD_I32LE, H5T_NATIVE_INT32, n, z);
    INFER_BAD("layer 5 'fc'", "weight_zero_point[0]", "1000");
}

Test(bad_model, absurd_bits)
{
    int32_t bits = 9;
    set_i32("/layers/002", "weight_bits", 0, &bits);
    INFER_BAD("/layers/002", "attribute 'weight_bits'", "[2, 8]", "9");
}

Test(bad_model, bits_disagree_with_stored_weights)
{
    int32_t bits = 4; /* the weights were packed as 8-bit bytes */
    set_i32("/layers/005", "weight_bits", 0, &bits);
    INFER_BAD("dataset /layers/005/weights", "expected shape");
}

Test(bad_model, negative_multiplier)
{
    int32_t m[64];
    size_t n = get_i32s("/layers/002/multiplier", m, 64);
    m[4] = -5;
    set_dataset("m.h5", "/layers/002/multiplier", H5T_STD_I32LE, H5T_NATIVE_INT32, n, m);
    INFER_BAD("layer 2 'conv2'", "multiplier[4]");
}

Test(bad_model, nan_scale)
{
    set_f32("/layers/002", "output_scale", NAN);
    INFER_BAD("layer 2 'conv2'", "output_scale", "nan");
}

Test(bad_model, clamp_range_inverted)
{
    int32_t lo = 50, hi = -50;
    set_i32("/layers/005", "act_min", 0, &lo);
    set_i32("/layers/005", "act_max", 0, &hi);
    INFER_BAD("layer 5 'fc'", "act_min");
}

Test(bad_model, unknown_op)
{
    set_str("m.h5", "/layers/003", "op", "softmax");
    INFER_BAD("/layers/003", "attribute 'op'", "softmax");
}

Test(bad_model, oversized_name)
{
    char name[300];
    memset(name, 'n', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    set_str("m.h5", "/layers/003", "name", name);
    INFER_BAD("/layers/003", "attribute 'name'");
}

Test(bad_model, wrong_format)
{
    set_str("m.h5", "/", "format", "qat-checkpoint");
    INFER_BAD("attribute 'format'", "qat-checkpoint");
}

Test(bad_model, unsupported_version)
{
    int32_t v = 4;
    set_i32("/", "version", 0, &v);
    INFER_BAD("attribute 'version'", "unsupported version");
}

Test(bad_model, input_scale_not_the_pixel_scale)
{
    set_f32("/", "input_scale", 0.5f);
    INFER_BAD("input_scale");
}

Test(bad_model, weights_never_written)
{
    /* the right name, type and length, but no data: HDF5 would hand out
     * fill values (zeros) and the model would run on weights it never had */
    size_t n;
    {
        hid_t f = H5Fopen(rb_path("m.h5"), H5F_ACC_RDONLY, H5P_DEFAULT);
        hid_t d = H5Dopen2(f, "/layers/005/weights", H5P_DEFAULT);
        hid_t sp = H5Dget_space(d);
        hsize_t dims;
        H5Sget_simple_extent_dims(sp, &dims, NULL);
        n = (size_t)dims;
        H5Sclose(sp);
        H5Dclose(d);
        H5Fclose(f);
    }
    hid_t f = open_rw("m.h5");
    cr_assert_geq(H5Ldelete(f, "/layers/005/weights", H5P_DEFAULT), 0);
    hsize_t dims[1] = {n}, chunk[1] = {64};
    hid_t sp = H5Screate_simple(1, dims, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, 1, chunk);
    hid_t d = H5Dcreate2(f, "/layers/005/weights", H5T_STD_U8LE, sp, H5P_DEFAULT, dcpl,
                         H5P_DEFAULT);
    cr_assert_geq(d, 0);
    H5Dclose(d);
    H5Pclose(dcpl);
    H5Sclose(sp);
    H5Fclose(f);
    INFER_BAD("dataset /layers/005/weights", "never written");
}

Test(bad_model, flipped_byte_in_weights)
{
    hid_t f = H5Fopen(rb_path("m.h5"), H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t d = H5Dopen2(f, "/layers/005/weights", H5P_DEFAULT);
    hsize_t off[1];
    unsigned mask;
    haddr_t addr;
    hsize_t size;
    hid_t sp = H5Dget_space(d);
    cr_assert_geq(H5Dget_chunk_info(d, sp, 0, off, &mask, &addr, &size), 0);
    H5Sclose(sp);
    H5Dclose(d);
    H5Fclose(f);
    size_t n;
    unsigned char *b = rb_read(rb_path("m.h5"), &n);
    cr_assert_lt(addr + size, n);
    b[addr + size / 2] ^= 0x10;
    rb_write("m.h5", b, n);
    free(b);
    INFER_BAD("dataset /layers/005/weights", "corrupt");
}

/* Rewrites the stored size of the first chunk of dataset `path` in m.h5's
 * chunk index (a v1 B-tree entry of a 1-D chunked dataset: size (4),
 * filter mask (4), two 8-byte offsets, then the chunk's address (8)). */
static void patch_chunk_size(const char *path, uint32_t new_size)
{
    hid_t f = H5Fopen(rb_path("m.h5"), H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t d = H5Dopen2(f, path, H5P_DEFAULT);
    hid_t sp = H5Dget_space(d);
    hsize_t off[1];
    unsigned mask;
    haddr_t addr;
    hsize_t size;
    cr_assert_geq(H5Dget_chunk_info(d, sp, 0, off, &mask, &addr, &size), 0);
    H5Sclose(sp);
    H5Dclose(d);
    H5Fclose(f);
    size_t n;
    unsigned char *b = rb_read(rb_path("m.h5"), &n);
    int patched = 0;
    for (size_t i = 24; i + 8 <= n && !patched; i++) {
        uint64_t a = 0;
        uint32_t sz = 0;
        for (int k = 7; k >= 0; k--)
            a = a << 8 | b[i + (size_t)k];
        for (int k = 3; k >= 0; k--)
            sz = sz << 8 | b[i - 24 + (size_t)k];
        if (a == addr && sz == size) {
            for (int k = 0; k < 4; k++)
                b[i - 24 + (size_t)k] = (unsigned char)(new_size >> (8 * k));
            patched = 1;
        }
    }
    cr_assert(patched, "chunk index entry of %s not found", path);
    rb_write("m.h5", b, n);
    free(b);
}

Test(bad_model, chunk_shorter_than_its_checksum)
{
    /* the chunk index claims 3 stored bytes for a Fletcher-32 chunk: HDF5
     * 1.10 then reads far past its buffer (found by fuzz_model) */
    patch_chunk_size("/layers/005/shift", 3);
    INFER_BAD("dataset /layers/005/shift", "checksum");
}

Test(bad_model, chunk_larger_than_the_file)
{
    /* the chunk index claims 2 GiB for the weights: HDF5 allocates a
     * chunk's stored size before it reads, so this must be refused first
     * (found by fuzz_model, as an out-of-memory) */
    patch_chunk_size("/layers/005/weights", 0x80000028u);
    INFER_BAD("dataset /layers/005/weights", "beyond the end of the file");
}

/* ---- string attributes (FORMAT.md §1) ----------------------------------------- */

/* Replaces string attribute attr of obj in m.h5 with s, fixed- or
 * variable-length (vlen, as h5py stores a str), declared in character set cs. */
static void set_str_as(const char *obj, const char *attr, const char *s, int vlen, H5T_cset_t cs)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    cr_assert_geq(H5Tset_size(t, vlen ? H5T_VARIABLE : strlen(s)), 0);
    cr_assert_geq(H5Tset_cset(t, cs), 0);
    set_attr("m.h5", obj, attr, t, t, 0, vlen ? (const void *)&s : s);
    H5Tclose(t);
}

/* qat-infer's logits for model name (must run); caller frees. */
static unsigned char *logits_of(const char *name, size_t *n)
{
    int code = rb_run("qat-infer", RB_ARGS(rb_path(name), "--images", rb_path("img"), "--labels",
                                           rb_path("lab"), "--dump-logits", rb_path("l.bin")));
    cr_assert_eq(code, 0, "%s must load and run\n%s", name, rb_err);
    return rb_read(rb_path("l.bin"), n);
}

Test(bad_model, utf8_and_variable_length_strings_are_accepted)
{
    /* h5py writes a str as a variable-length UTF-8 string; qat-infer used
     * to refuse it ("cannot be read") */
    static const struct {
        const char *obj, *attr, *value;
    } strs[] = {{"/", "format", "qat-int8-model"},
                {"/layers/002", "op", "conv2d"},
                {"/layers/002", "name", "conv2"},
                {"/layers/005", "name", "fc_\xC3\xA4\xE2\x82\xAC\xF0\x9F\x98\x80"}};
    static const struct {
        int vlen;
        H5T_cset_t cs;
    } kinds[] = {{0, H5T_CSET_UTF8}, {1, H5T_CSET_ASCII}, {1, H5T_CSET_UTF8}};
    size_t n0, n;
    unsigned char *want = logits_of("m.h5", &n0);
    rb_copy(rb_path("m.h5"), rb_path("orig.h5"));
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
        for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
            rb_copy(rb_path("orig.h5"), rb_path("m.h5"));
            set_str_as(strs[i].obj, strs[i].attr, strs[i].value, kinds[k].vlen, kinds[k].cs);
            unsigned char *got = logits_of("m.h5", &n);
            cr_assert(n == n0 && memcmp(got, want, n) == 0,
                      "%s %s as kind %zu: logits differ from the original file's", strs[i].obj,
                      strs[i].attr, k);
            free(got);
        }
    free(want);
    /* qat-export tells models from checkpoints by the same attribute */
    set_str_as("/", "format", "qat-int8-model", 1, H5T_CSET_UTF8);
    int code = rb_run("qat-export", RB_ARGS(rb_path("m.h5"), "-o", rb_path("out.h5")));
    cr_assert_eq(code, 0, "%s", rb_err);
}

/* Stores /format as a vlen string (it lands in a global heap collection),
 * then overwrites the size field of the heap entry `at` bytes past the
 * collection's signature, which must have index idx. */
static void patch_heap_entry_size(size_t at, int idx, const char size[8])
{
    set_str_as("/", "format", "qat-int8-model", 1, H5T_CSET_UTF8);
    size_t n;
    unsigned char *b = rb_read(rb_path("m.h5"), &n);
    unsigned char *g = memmem(b, n, "GCOL", 4);
    cr_assert_not_null(g, "no global heap collection in the file");
    cr_assert_eq(g[at] | g[at + 1] << 8, idx, "expected heap entry %d here", idx);
    memcpy(g + at + 8, size, 8);
    rb_write("m.h5", b, n);
    free(b);
}

Test(bad_model, global_heap_free_space_of_size_zero)
{
    /* a free-space entry of size 0 made HDF5 1.10 decode the collection
     * forever (found by fuzz_model as a timeout); it follows object 1 (the
     * 14-byte string, padded to 16) */
    patch_heap_entry_size(16 + 16 + 16, 0, "\0\0\0\0\0\0\0\0");
    INFER_BAD("attribute 'format'", "global heap collection at byte", "size 0");
}

Test(bad_model, global_heap_object_past_the_collection)
{
    /* an object whose size runs past its collection: HDF5 1.10 copied that
     * many bytes out of the collection's buffer (found by fuzz_model under
     * ASan as a heap buffer overflow in H5HG_read) */
    patch_heap_entry_size(16, 1, "\x00\x08\xa4\x5a\x00\x00\x00\x00"); /* 1.5 GB */
    INFER_BAD("attribute 'format'", "global heap collection at byte", "runs past its end");
}

Test(bad_model, name_not_utf8)
{
    set_str_as("/layers/002", "name", "conv\xFF", 0, H5T_CSET_ASCII);
    INFER_BAD("/layers/002: attribute 'name'", "expected UTF-8 text", "0xff at offset 4");
}

Test(bad_model, format_not_utf8)
{
    set_str_as("/", "format", "qat-int8-\xC0\xAFmodel", 1, H5T_CSET_UTF8);
    INFER_BAD("/: attribute 'format'", "expected UTF-8 text", "0xc0 at offset 9");
}

Test(bad_model, op_not_a_string)
{
    int32_t v = 1;
    set_i32("/layers/002", "op", 0, &v);
    INFER_BAD("/layers/002: attribute 'op'", "expected a string, found int32");
}

Test(bad_model, format_an_array_of_strings)
{
    /* qat-export's format probe read this into one pointer's worth of stack
     * and died with SIGSEGV */
    const char *two[2] = {"qat-int8-model", "qat-int8-model"};
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    set_attr("m.h5", "/", "format", t, t, 2, two);
    H5Tclose(t);
    INFER_BAD("/: attribute 'format'", "expected a scalar string, found shape (2)");
    RB_EXPECT_BAD("qat-export", RB_ARGS(rb_path("m.h5"), "-o", rb_path("out.h5")), "m.h5",
                  "attribute 'format'", "expected a scalar string, found shape (2)");
}

Test(bad_model, format_checked_before_version)
{
    /* FORMAT.md §2, §6, §7.2: format first, then version, then the rest */
    int32_t v = 3;
    set_i32("/", "version", 0, &v);
    set_str("m.h5", "/", "format", "qat-checkpoint");
    INFER_BAD("attribute 'format'", "expected 'qat-int8-model', found 'qat-checkpoint'");
    cr_assert_null(strstr(rb_err, "version"), "%s", rb_err);
}

/* ---- checkpoints through qat-export ------------------------------------------ */

static void export_setup(void)
{
    rb_setup();
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    static const char cfg_text[] = "[layer.flatten]\ntype = flatten\n[layer.fc]\ntype = linear\n"
                                   "out_features = 10\n";
    qat_config *cfg = malloc(sizeof *cfg);
    qat_error e;
    cr_assert_eq(qat_config_parse(cfg_text, sizeof cfg_text - 1, "c.ini", NULL, 0, cfg, &e),
                 QAT_OK, "%s", e.msg);
    qat_model *m;
    cr_assert_eq(qat_model_create(cfg, &m, &e), QAT_OK, "%s", e.msg);
    qat_checkpoint_meta meta = {0};
    cr_assert_eq(qat_checkpoint_save(rb_path("ck.h5"), m, NULL, &meta, &e), QAT_OK, "%s", e.msg);
    qat_model_destroy(m);
    free(cfg);
}

#define EXPORT_BAD(...)                                                                            \
    RB_EXPECT_BAD("qat-export", RB_ARGS(rb_path("ck.h5"), "-o", rb_path("out.h5")), "ck.h5",      \
                  __VA_ARGS__)

TestSuite(bad_checkpoint, .init = export_setup, .fini = rb_teardown, .timeout = 120);

Test(bad_checkpoint, base_checkpoint_loads)
{
    /* never trained: its observers are empty, which export refuses by name;
     * getting that far proves the file itself loads */
    EXPORT_BAD("observer has seen no data");
    qat_model *m;
    qat_error e;
    cr_assert_eq(qat_checkpoint_load_model(rb_path("ck.h5"), &m, &e), QAT_OK, "%s", e.msg);
    qat_model_destroy(m);
}

Test(bad_checkpoint, missing_file)
{
    cr_assert_eq(unlink(rb_path("ck.h5")), 0);
    EXPORT_BAD("cannot open");
}

Test(bad_checkpoint, random_bytes)
{
    unsigned char b[2048];
    for (size_t i = 0; i < sizeof b; i++)
        b[i] = (unsigned char)(i * 7919u >> 3);
    rb_write("ck.h5", b, sizeof b);
    EXPORT_BAD("not a readable HDF5 file");
}

Test(bad_checkpoint, truncated)
{
    size_t n;
    unsigned char *b = rb_read(rb_path("ck.h5"), &n);
    rb_write("ck.h5", b, n - n / 3);
    free(b);
    EXPORT_BAD("truncated or corrupt");
}

Test(bad_checkpoint, neither_checkpoint_nor_model)
{
    set_str("ck.h5", "/", "format", "qat-sweep");
    EXPORT_BAD("attribute 'format'", "'qat-sweep'");
}

Test(bad_checkpoint, params_of_wrong_length)
{
    float p[100] = {0};
    set_dataset("ck.h5", "/params", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 100, p);
    EXPORT_BAD("'/params'", "100 elements", "7850");
}

Test(bad_checkpoint, params_missing)
{
    unlink_obj("ck.h5", "/params");
    EXPORT_BAD("'/params'", "missing");
}

Test(bad_checkpoint, stored_config_unparsable)
{
    set_str("ck.h5", "/", "config", "[layer.fc]\ntype = linear\nout_features = 10\nfrobs = 2\n");
    EXPORT_BAD("ck.h5:/config:4", "unknown key 'frobs'");
}

Test(bad_checkpoint, stored_config_not_a_string)
{
    int32_t v = 5;
    set_attr("ck.h5", "/", "config", H5T_STD_I32LE, H5T_NATIVE_INT32, 0, &v);
    EXPORT_BAD("attribute 'config'", "string");
}

Test(bad_checkpoint, absurd_epoch)
{
    long long e = -3;
    set_attr("ck.h5", "/", "epoch", H5T_STD_I64LE, H5T_NATIVE_LLONG, 0, &e);
    EXPORT_BAD("epoch");
}

/* ---- checkpoints of a trained run, with non-finite numbers -------------------- */

static void trained_setup(void)
{
    rb_setup();
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    rb_printf("c.ini",
              "[data]\ndir = %s\ntrain_limit = 64\ntest_limit = 32\n[train]\nepochs = 1\n"
              "batch_size = 16\nthreads = 1\n[layer.flatten]\ntype = flatten\n[layer.fc]\n"
              "type = linear\nout_features = 10\n",
              rb_src("datasets/mnist-subset"));
    int code = rb_run("qat-train", RB_ARGS(rb_path("c.ini"), "--out", rb_path("run"), "--quiet"));
    cr_assert_eq(code, 0, "%s", rb_err);
    rb_copy(rb_path("run/checkpoint.h5"), rb_path("ck.h5"));
}

/* Sets element i of float dataset path in ck.h5 to v. */
static void poke_f32(const char *path, size_t i, float v)
{
    hid_t f = open_rw("ck.h5");
    hid_t d = H5Dopen2(f, path, H5P_DEFAULT);
    cr_assert_geq(d, 0);
    hid_t sp = H5Dget_space(d);
    hsize_t start[1] = {i}, count[1] = {1}, one[1] = {1};
    cr_assert_geq(H5Sselect_hyperslab(sp, H5S_SELECT_SET, start, NULL, count, NULL), 0);
    hid_t msp = H5Screate_simple(1, one, NULL);
    cr_assert_geq(H5Dwrite(d, H5T_NATIVE_FLOAT, msp, sp, H5P_DEFAULT, &v), 0);
    H5Sclose(msp);
    H5Sclose(sp);
    H5Dclose(d);
    H5Fclose(f);
}

TestSuite(bad_trained_checkpoint, .init = trained_setup, .fini = rb_teardown, .timeout = 120);

Test(bad_trained_checkpoint, base_checkpoint_exports)
{
    int code = rb_run("qat-export", RB_ARGS(rb_path("ck.h5"), "-o", rb_path("out.h5")));
    cr_assert_eq(code, 0, "%s", rb_err);
}

Test(bad_trained_checkpoint, nan_weight)
{
    poke_f32("/params", 5, NAN);
    EXPORT_BAD("'/params' element 5", "layer 'fc' weight", "nan");
}

Test(bad_trained_checkpoint, infinite_bias)
{
    poke_f32("/params", 7845, INFINITY);
    EXPORT_BAD("'/params' element 7845", "layer 'fc' bias", "inf");
}

Test(bad_trained_checkpoint, nan_observer_range)
{
    poke_f32("/state", 0, NAN);
    EXPORT_BAD("'/state' element 0", "nan");
}

Test(bad_trained_checkpoint, observer_flag_neither_0_nor_1)
{
    poke_f32("/state", 2, 0.5f);
    EXPORT_BAD("dataset '/state'", "layer 'fc'", "'initialised' flag is 0.5, expected 0 or 1");
}

/* ---- float layers (FORMAT.md §11) ---------------------------------------------- */

/* The same CNN with conv2 (layer 2, 7 -> 33 channels, 3x3) and fc (layer 5)
 * in float32: version 3, float logits. */
static void float_setup(void)
{
    rb_setup();
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    fx_model fx;
    fx_float f;
    fx_build_cnn(&fx, 17, 8);
    fx_floatize(&fx, &f, 1u << 2 | 1u << 5);
    qat_error e;
    cr_assert_eq(qat_rt_h5_write(rb_path("m.h5"), &fx.desc, &e), QAT_OK, "%s", e.msg);
    fx_float_free(&f);
    fx_free(&fx);
    write_idx();
}

TestSuite(bad_float_model, .init = float_setup, .fini = rb_teardown, .timeout = 120);

Test(bad_float_model, base_model_runs_with_two_float_layers)
{
    int code = rb_run("qat-infer",
                      RB_ARGS(rb_path("m.h5"), "--images", rb_path("img"), "--labels", rb_path("lab")));
    cr_assert_eq(code, 0, "the float-layer base model must run\n%s", rb_err);
    cr_assert(strstr(rb_out, "2 in float32"), "%s", rb_out);
}

/* conv2: 33 x 63 weights */
Test(bad_float_model, nan_or_infinite_float_weights)
{
    float w[33 * 63];
    for (size_t i = 0; i < 33 * 63; i++)
        w[i] = 0.001f * (float)(i % 17);
    w[70] = NAN;
    set_dataset("m.h5", "/layers/002/float_weights", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 33 * 63, w);
    INFER_BAD("layer 2 'conv2'", "float_weights[70] (channel 1): expected finite, found nan");
    w[70] = 0.0f;
    w[2078] = -INFINITY;
    set_dataset("m.h5", "/layers/002/float_weights", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 33 * 63, w);
    INFER_BAD("layer 2 'conv2'", "float_weights[2078] (channel 32): expected finite, found -inf");
}

Test(bad_float_model, infinite_float_bias)
{
    float b[10] = {0};
    b[9] = INFINITY;
    set_dataset("m.h5", "/layers/005/float_bias", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 10, b);
    INFER_BAD("layer 5 'fc'", "float_bias[9]: expected finite, found inf");
}

Test(bad_float_model, float_weights_of_the_wrong_length_or_missing)
{
    float w[5] = {0};
    set_dataset("m.h5", "/layers/005/float_weights", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 5, w);
    INFER_BAD("/layers/005/float_weights");
    hid_t f = open_rw("m.h5");
    cr_assert_geq(H5Ldelete(f, "/layers/005/float_weights", H5P_DEFAULT), 0);
    H5Fclose(f);
    INFER_BAD("/layers/005/float_weights");
}

Test(bad_float_model, unknown_arithmetic_or_activation)
{
    set_str("m.h5", "/layers/002", "arithmetic", "float16");
    INFER_BAD("/layers/002: attribute 'arithmetic'", "expected 'float32', found 'float16'");
    set_str("m.h5", "/layers/002", "arithmetic", "float32");
    set_str("m.h5", "/layers/002", "activation", "gelu");
    INFER_BAD("/layers/002: attribute 'activation'", "found 'gelu'");
}

/* a version-2 reader cannot run a float layer: the file must say 3 */
Test(bad_float_model, a_float_layer_in_a_version_2_file)
{
    const int32_t v = 2;
    set_i32("/", "version", 0, &v);
    INFER_BAD("/layers/002");
}
