/* Catalogue, datasets: broken IDX files reaching qat-train through [data]
 * dir and qat-infer through --images/--labels. Each case starts from small
 * synthetic files that load (the first test of each tool proves it) and
 * breaks one; the message must name the file (and what is wrong with it). */
#include <zlib.h>

#include "qat/runtime_h5.h"
#include "robust.h"
#include "rt_fixture.h"

#define NTRAIN 64
#define NTEST 32

static unsigned char *idx_images(uint32_t n, uint32_t h, uint32_t w, size_t *len)
{
    *len = 16 + (size_t)n * h * w;
    unsigned char *b = malloc(*len);
    cr_assert_not_null(b);
    uint32_t hdr[4] = {0x803, n, h, w};
    for (int i = 0; i < 4; i++)
        for (int k = 0; k < 4; k++)
            b[4 * i + k] = (unsigned char)(hdr[i] >> (24 - 8 * k));
    for (size_t i = 16; i < *len; i++)
        b[i] = (unsigned char)(i * 37u);
    return b;
}

static unsigned char *idx_labels(uint32_t n, size_t *len)
{
    *len = 8 + (size_t)n;
    unsigned char *b = malloc(*len);
    cr_assert_not_null(b);
    uint32_t hdr[2] = {0x801, n};
    for (int i = 0; i < 2; i++)
        for (int k = 0; k < 4; k++)
            b[4 * i + k] = (unsigned char)(hdr[i] >> (24 - 8 * k));
    for (size_t i = 8; i < *len; i++)
        b[i] = (unsigned char)(i % 10);
    return b;
}

/* gzip-wrapped copy of buf */
static unsigned char *gzip(const unsigned char *buf, size_t len, size_t *out_len)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    cr_assert_eq(deflateInit2(&z, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
    size_t cap = deflateBound(&z, (uLong)len) + 64;
    unsigned char *out = malloc(cap);
    cr_assert_not_null(out);
    z.next_in = (Bytef *)buf;
    z.avail_in = (uInt)len;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    cr_assert_eq(deflate(&z, Z_FINISH), Z_STREAM_END);
    *out_len = z.total_out;
    deflateEnd(&z);
    return out;
}

static void put(const char *name, unsigned char *b, size_t len)
{
    rb_write(name, b, len);
    free(b);
}

static void put_images(const char *name, uint32_t n, uint32_t h, uint32_t w)
{
    size_t len;
    unsigned char *b = idx_images(n, h, w, &len);
    put(name, b, len);
}

static void put_labels(const char *name, uint32_t n)
{
    size_t len;
    unsigned char *b = idx_labels(n, &len);
    put(name, b, len);
}

/* d/{train,t10k}-{images,labels}: valid 28x28 sets of NTRAIN and NTEST */
static void make_dataset(void)
{
    cr_assert_eq(mkdir(rb_path("d"), 0755), 0);
    put_images("d/train-images-idx3-ubyte", NTRAIN, 28, 28);
    put_labels("d/train-labels-idx1-ubyte", NTRAIN);
    put_images("d/t10k-images-idx3-ubyte", NTEST, 28, 28);
    put_labels("d/t10k-labels-idx1-ubyte", NTEST);
    rb_printf("c.ini",
              "[data]\ndir = %s\n[train]\nepochs = 1\nbatch_size = 16\nthreads = 1\n"
              "[layer.flatten]\ntype = flatten\n[layer.fc]\ntype = linear\nout_features = 10\n",
              rb_path("d"));
}

static void setup(void)
{
    rb_setup();
    make_dataset();
}

#define TRAIN_BAD(...)                                                                             \
    RB_EXPECT_BAD("qat-train", RB_ARGS(rb_path("c.ini"), "--out", rb_path("run"), "--quiet"),     \
                  __VA_ARGS__)

/* Overwrites count bytes at offset of d/<file>. */
static void poke(const char *file, long offset, const void *bytes, size_t count)
{
    char name[128];
    snprintf(name, sizeof name, "d/%s", file);
    FILE *f = fopen(rb_path(name), "r+b");
    cr_assert_not_null(f);
    cr_assert_eq(fseek(f, offset, offset < 0 ? SEEK_END : SEEK_SET), 0);
    cr_assert_eq(fwrite(bytes, 1, count, f), count);
    cr_assert_eq(fclose(f), 0);
}

static void be32(unsigned char *p, uint32_t v)
{
    for (int k = 0; k < 4; k++)
        p[k] = (unsigned char)(v >> (24 - 8 * k));
}

TestSuite(bad_data_train, .init = setup, .fini = rb_teardown, .timeout = 120);

Test(bad_data_train, base_dataset_trains)
{
    int code = rb_run("qat-train", RB_ARGS(rb_path("c.ini"), "--out", rb_path("run"), "--quiet"));
    cr_assert_eq(code, 0, "the catalogue's base dataset must train\n%s", rb_err);
}

Test(bad_data_train, wrong_magic)
{
    unsigned char m[4];
    be32(m, 0x801);
    poke("train-images-idx3-ubyte", 0, m, 4);
    TRAIN_BAD("d/train-images-idx3-ubyte", "bad magic number 0x00000801", "label file");
}

Test(bad_data_train, truncated_payload)
{
    cr_assert_eq(truncate(rb_path("d/t10k-images-idx3-ubyte"), 16 + 28 * 28 * NTEST - 5), 0);
    TRAIN_BAD("d/t10k-images-idx3-ubyte", "truncated payload");
}

Test(bad_data_train, truncated_header)
{
    cr_assert_eq(truncate(rb_path("d/train-labels-idx1-ubyte"), 6), 0);
    TRAIN_BAD("d/train-labels-idx1-ubyte", "truncated header");
}

Test(bad_data_train, trailing_bytes)
{
    poke("train-labels-idx1-ubyte", 8 + NTRAIN, "xy", 2);
    TRAIN_BAD("d/train-labels-idx1-ubyte", "trailing bytes");
}

Test(bad_data_train, zero_dimension)
{
    unsigned char z[4] = {0};
    poke("train-images-idx3-ubyte", 12, z, 4);
    TRAIN_BAD("d/train-images-idx3-ubyte", "zero dimension", "dim 2");
}

Test(bad_data_train, huge_dimensions)
{
    unsigned char dims[12];
    be32(dims, 0xffffffffu);
    be32(dims + 4, 0xffffffu);
    be32(dims + 8, 0xffffffu);
    poke("train-images-idx3-ubyte", 4, dims, 12);
    TRAIN_BAD("d/train-images-idx3-ubyte", "too large");
}

Test(bad_data_train, image_and_label_counts_differ)
{
    put_labels("d/train-labels-idx1-ubyte", NTRAIN - 1);
    TRAIN_BAD("d/train-images-idx3-ubyte", "d/train-labels-idx1-ubyte", "64 images", "63 labels");
}

Test(bad_data_train, label_not_below_num_classes)
{
    unsigned char ten = 10;
    poke("t10k-labels-idx1-ubyte", 8 + 5, &ten, 1);
    TRAIN_BAD("d/t10k-labels-idx1-ubyte", "index 5", "value 10", "num_classes 10");
}

Test(bad_data_train, corrupt_gzip)
{
    size_t n;
    unsigned char *raw = idx_images(NTRAIN, 28, 28, &n), *z;
    size_t zn;
    z = gzip(raw, n, &zn);
    free(raw);
    z[zn / 2] ^= 0x55; /* inside the deflate stream */
    cr_assert_eq(unlink(rb_path("d/train-images-idx3-ubyte")), 0);
    put("d/train-images-idx3-ubyte.gz", z, zn);
    TRAIN_BAD("d/train-images-idx3-ubyte.gz", "gzip");
}

Test(bad_data_train, truncated_gzip)
{
    size_t n;
    unsigned char *raw = idx_labels(NTRAIN, &n), *z;
    size_t zn;
    z = gzip(raw, n, &zn);
    free(raw);
    cr_assert_eq(unlink(rb_path("d/train-labels-idx1-ubyte")), 0);
    put("d/train-labels-idx1-ubyte.gz", z, zn - 10);
    TRAIN_BAD("d/train-labels-idx1-ubyte.gz", "truncated gzip");
}

Test(bad_data_train, missing_file)
{
    cr_assert_eq(unlink(rb_path("d/t10k-labels-idx1-ubyte")), 0);
    TRAIN_BAD("d", "cannot find the t10k labels");
}

/* A shape the config writes must be the data's (unwritten keys come from
 * the data). */
Test(bad_data_train, images_not_the_model_size)
{
    put_images("d/train-images-idx3-ubyte", NTRAIN, 20, 20);
    rb_printf("c.ini",
              "[data]\ndir = %s\n[model]\ninput_height = 28\ninput_width = 28\n[train]\n"
              "epochs = 1\nbatch_size = 16\nthreads = 1\n[layer.flatten]\ntype = flatten\n"
              "[layer.fc]\ntype = linear\nout_features = 10\n",
              rb_path("d"));
    TRAIN_BAD("c.ini", "[model]", "28x28x1", "20x20x1");
}

Test(bad_data_train, train_and_test_shapes_differ)
{
    put_images("d/train-images-idx3-ubyte", NTRAIN, 20, 20);
    TRAIN_BAD("c.ini", "training split", "20x20x1", "test split", "28x28x1", "must agree");
}

/* ---- qat-infer --images / --labels ------------------------------------------ */

static void infer_setup(void)
{
    setup();
    fx_model fx; /* a random 28x28 MLP, 784 -> 16 -> 10 */
    fx_begin(&fx, 28, 28, 1, 5);
    fx_flatten(&fx, "flatten");
    fx_linear(&fx, "fc1", 16, 8, 1);
    fx_linear(&fx, "fc2", 10, 8, 0);
    fx_finish(&fx);
    qat_error e;
    cr_assert_eq(qat_rt_h5_write(rb_path("m.h5"), &fx.desc, &e), QAT_OK, "%s", e.msg);
    fx_free(&fx);
}

#define INFER_BAD(images, labels, ...)                                                             \
    RB_EXPECT_BAD("qat-infer", RB_ARGS(rb_path("m.h5"), "--images", images, "--labels", labels),  \
                  __VA_ARGS__)
#define IMAGES rb_path("d/t10k-images-idx3-ubyte")
#define LABELS rb_path("d/t10k-labels-idx1-ubyte")

TestSuite(bad_data_infer, .init = infer_setup, .fini = rb_teardown, .timeout = 120);

Test(bad_data_infer, base_dataset_runs)
{
    int code = rb_run("qat-infer", RB_ARGS(rb_path("m.h5"), "--images", IMAGES, "--labels", LABELS));
    cr_assert_eq(code, 0, "the catalogue's base dataset must run\n%s", rb_err);
}

Test(bad_data_infer, labels_given_as_images)
{
    INFER_BAD(LABELS, LABELS, "d/t10k-labels-idx1-ubyte", "bad magic", "label file");
}

Test(bad_data_infer, image_and_label_counts_differ)
{
    put_labels("d/t10k-labels-idx1-ubyte", NTEST + 1);
    INFER_BAD(IMAGES, LABELS, "d/t10k-labels-idx1-ubyte", "33 labels", "32 images");
}

Test(bad_data_infer, label_not_below_the_models_classes)
{
    unsigned char big = 200;
    poke("t10k-labels-idx1-ubyte", 8 + 3, &big, 1);
    INFER_BAD(IMAGES, LABELS, "d/t10k-labels-idx1-ubyte", "label 200", "example 3");
}

Test(bad_data_infer, images_not_the_model_size)
{
    put_images("d/t10k-images-idx3-ubyte", NTEST, 27, 28);
    INFER_BAD(IMAGES, LABELS, "d/t10k-images-idx3-ubyte", "27x28", "m.h5");
}

Test(bad_data_infer, corrupt_gzip_images)
{
    size_t n, zn;
    unsigned char *raw = idx_images(NTEST, 28, 28, &n);
    unsigned char *z = gzip(raw, n, &zn);
    free(raw);
    z[zn - 6] ^= 0xff; /* the CRC32 trailer */
    put("d/i.gz", z, zn);
    INFER_BAD(rb_path("d/i.gz"), LABELS, "d/i.gz", "corrupt gzip");
}

Test(bad_data_infer, empty_labels_file)
{
    rb_write("d/empty", "", 0);
    INFER_BAD(IMAGES, rb_path("d/empty"), "d/empty", "truncated header");
}

Test(bad_data_infer, zero_images)
{
    size_t n;
    unsigned char *b = idx_images(1, 28, 28, &n);
    be32(b + 4, 0);
    put("d/none", b, 16);
    INFER_BAD(rb_path("d/none"), LABELS, "d/none", "zero dimension");
}

Test(bad_data_infer, images_file_missing)
{
    INFER_BAD(rb_path("d/nope"), LABELS, "d/nope", "cannot open");
}
