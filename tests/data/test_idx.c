/* IDX parsing and gzip-aware file reading, on synthetic buffers and files. */
#include "data_fixture.h"

#include "data/data_internal.h"

#define IMG "synthetic-images-idx3-ubyte"
#define LBL "synthetic-labels-idx1-ubyte"

static qat_status parse_img(const uint8_t *b, size_t len, qat_error *e, uint8_t **px,
                            uint32_t *n, int *h, int *w)
{
    qat_error_clear(e);
    return qat_idx_parse_images(b, len, IMG, px, n, h, w, e);
}

Test(idx, valid_images_parse_with_dims_and_pixels)
{
    size_t len;
    uint8_t *b = fx_images(3, 4, 5, &len);
    qat_error e;
    uint8_t *px = NULL;
    uint32_t n = 0;
    int h = 0, w = 0;
    cr_assert_eq(parse_img(b, len, &e, &px, &n, &h, &w), QAT_OK, "%s", e.msg);
    cr_assert_eq(n, 3u);
    cr_assert_eq(h, 4);
    cr_assert_eq(w, 5);
    for (uint32_t i = 0; i < 3; i++)
        for (size_t k = 0; k < 20; k++)
            cr_assert_eq(px[i * 20 + k], fx_pixel(i, k), "image %u pixel %zu", i, k);
    cr_assert_neq(px, b + 16, "parser must copy, not alias, the input buffer");
    free(px);
    free(b);
}

Test(idx, valid_labels_parse)
{
    size_t len;
    uint8_t *b = fx_labels(25, 10, &len);
    qat_error e;
    qat_error_clear(&e);
    uint8_t *lb = NULL;
    uint32_t n = 0;
    cr_assert_eq(qat_idx_parse_labels(b, len, LBL, &lb, &n, &e), QAT_OK, "%s", e.msg);
    cr_assert_eq(n, 25u);
    for (uint32_t i = 0; i < 25; i++)
        cr_assert_eq(lb[i], i % 10);
    free(lb);
    free(b);
}

Test(idx, wrong_magic_names_file_and_both_values)
{
    size_t len;
    uint8_t *b = fx_images(2, 3, 3, &len);
    fx_be32(b, 0x00000801u); /* a label magic on an image file */
    qat_error e;
    uint8_t *px = NULL;
    uint32_t n;
    int h, w;
    EXPECT_ERR(parse_img(b, len, &e, &px, &n, &h, &w), e, QAT_EINVAL, IMG, "magic",
               "0x00000801", "0x00000803", "label file");
    cr_assert_null(px);

    size_t llen;
    uint8_t *l = fx_labels(4, 10, &llen);
    fx_be32(l, 0x00000803u);
    uint8_t *lb = NULL;
    qat_error_clear(&e);
    EXPECT_ERR(qat_idx_parse_labels(l, llen, LBL, &lb, &n, &e), e, QAT_EINVAL, LBL, "magic",
               "0x00000803", "0x00000801");
    cr_assert_null(lb);

    /* Float IDX (type 0x0D) is a valid IDX file we do not accept. */
    fx_be32(b, 0x00000D03u);
    EXPECT_ERR(parse_img(b, len, &e, &px, &n, &h, &w), e, QAT_EINVAL, IMG, "0x00000d03",
               "element type");
    free(b);
    free(l);
}

Test(idx, gzip_bytes_given_to_parser_say_so)
{
    size_t len, zlen;
    uint8_t *b = fx_images(2, 3, 3, &len);
    uint8_t *z = fx_gzip(b, len, &zlen);
    qat_error e;
    uint8_t *px;
    uint32_t n;
    int h, w;
    EXPECT_ERR(parse_img(z, zlen, &e, &px, &n, &h, &w), e, QAT_EINVAL, IMG, "magic", "gzip");
    free(z);
    free(b);
}

Test(idx, truncated_header_reports_expected_and_found)
{
    size_t len;
    uint8_t *b = fx_images(2, 3, 3, &len);
    qat_error e;
    uint8_t *px;
    uint32_t n;
    int h, w;
    EXPECT_ERR(parse_img(b, 10, &e, &px, &n, &h, &w), e, QAT_EINVAL, IMG, "truncated header",
               "expected 16", "found 10");
    /* Too short even for the magic. */
    EXPECT_ERR(parse_img(b, 2, &e, &px, &n, &h, &w), e, QAT_EINVAL, IMG, "truncated header",
               "found 2");
    EXPECT_ERR(parse_img(b, 0, &e, &px, &n, &h, &w), e, QAT_EINVAL, IMG, "truncated header",
               "found 0");

    size_t llen;
    uint8_t *l = fx_labels(4, 10, &llen);
    uint8_t *lb;
    qat_error_clear(&e);
    EXPECT_ERR(qat_idx_parse_labels(l, 6, LBL, &lb, &n, &e), e, QAT_EINVAL, LBL,
               "truncated header", "expected 8", "found 6");
    free(b);
    free(l);
}

Test(idx, truncated_payload_reports_expected_and_found)
{
    size_t len;
    uint8_t *b = fx_images(2, 3, 3, &len); /* 16 + 18 = 34 bytes */
    qat_error e;
    uint8_t *px = NULL;
    uint32_t n;
    int h, w;
    EXPECT_ERR(parse_img(b, len - 1, &e, &px, &n, &h, &w), e, QAT_EINVAL, IMG,
               "truncated payload", "expected 34", "found 33");
    cr_assert_null(px);

    size_t llen;
    uint8_t *l = fx_labels(4, 10, &llen);
    uint8_t *lb;
    qat_error_clear(&e);
    EXPECT_ERR(qat_idx_parse_labels(l, llen - 4, LBL, &lb, &n, &e), e, QAT_EINVAL, LBL,
               "truncated payload", "expected 12", "found 8");
    free(b);
    free(l);
}

Test(idx, trailing_bytes_are_an_error)
{
    size_t len;
    uint8_t *b = fx_images(2, 3, 3, &len); /* has 64 bytes of room */
    memset(b + len, 0, 3);
    qat_error e;
    uint8_t *px = NULL;
    uint32_t n;
    int h, w;
    EXPECT_ERR(parse_img(b, len + 3, &e, &px, &n, &h, &w), e, QAT_EINVAL, IMG,
               "3 trailing bytes", "expected 34", "found 37");
    cr_assert_null(px);

    size_t llen;
    uint8_t *l = fx_labels(4, 10, &llen);
    uint8_t *lb;
    qat_error_clear(&e);
    EXPECT_ERR(qat_idx_parse_labels(l, llen + 1, LBL, &lb, &n, &e), e, QAT_EINVAL, LBL,
               "1 trailing bytes", "expected 12", "found 13");
    free(b);
    free(l);
}

Test(idx, zero_dimension_rejected_in_every_position)
{
    qat_error e;
    uint8_t *px;
    uint32_t n;
    int h, w;
    for (int d = 0; d < 3; d++) {
        size_t len;
        uint8_t *b = fx_images(2, 3, 3, &len);
        fx_be32(b + 4 + 4 * d, 0);
        char dim[16];
        snprintf(dim, sizeof dim, "dim %d", d);
        EXPECT_ERR(parse_img(b, len, &e, &px, &n, &h, &w), e, QAT_EINVAL, IMG,
                   "zero dimension", dim);
        free(b);
    }
    size_t llen;
    uint8_t *l = fx_labels(4, 10, &llen);
    fx_be32(l + 4, 0);
    uint8_t *lb;
    qat_error_clear(&e);
    EXPECT_ERR(qat_idx_parse_labels(l, 8, LBL, &lb, &n, &e), e, QAT_EINVAL, LBL,
               "zero dimension");
    free(l);
}

Test(idx, huge_dimensions_overflow_or_exceed_cap_without_allocating)
{
    uint8_t hdr[16];
    qat_error e;
    uint8_t *px = NULL;
    uint32_t n;
    int h, w;

    /* (2^32-1)^3 overflows even a 64-bit size_t. */
    fx_be32(hdr, 0x00000803u);
    fx_be32(hdr + 4, 0xFFFFFFFFu);
    fx_be32(hdr + 8, 0xFFFFFFFFu);
    fx_be32(hdr + 12, 0xFFFFFFFFu);
    EXPECT_ERR(parse_img(hdr, 16, &e, &px, &n, &h, &w), e, QAT_EINVAL, IMG, "too large",
               "overflow");
    cr_assert_null(px);

    /* 65536 * 256 * 256 = 2^32: fits size_t, exceeds the 2^31 cap. */
    fx_be32(hdr + 4, 65536);
    fx_be32(hdr + 8, 256);
    fx_be32(hdr + 12, 256);
    EXPECT_ERR(parse_img(hdr, 16, &e, &px, &n, &h, &w), e, QAT_EINVAL, IMG, "too large",
               "4294967296", "exceeds the limit", "2147483648");

    /* Exactly at the cap is legal, so the complaint is the missing data. */
    fx_be32(hdr + 4, 32768);
    EXPECT_ERR(parse_img(hdr, 16, &e, &px, &n, &h, &w), e, QAT_EINVAL, IMG,
               "truncated payload", "expected 2147483664", "found 16");

    /* One side over INT_MAX while n*h*w stays within the cap. */
    fx_be32(hdr + 4, 1);
    fx_be32(hdr + 8, 0x80000000u);
    fx_be32(hdr + 12, 1);
    EXPECT_ERR(parse_img(hdr, 16, &e, &px, &n, &h, &w), e, QAT_EINVAL, IMG, "too large",
               "1 x 2147483648 x 1", "2147483647");

    uint8_t lh[8];
    fx_be32(lh, 0x00000801u);
    fx_be32(lh + 4, 0xFFFFFFFFu);
    uint8_t *lb = NULL;
    qat_error_clear(&e);
    EXPECT_ERR(qat_idx_parse_labels(lh, 8, LBL, &lb, &n, &e), e, QAT_EINVAL, LBL, "too large",
               "exceeds the limit");
    cr_assert_null(lb);
}

/* ---- gzip and whole-file reading ------------------------------------------------ */

static void read_ok(const char *path, uint8_t **buf, size_t *len)
{
    qat_error e;
    qat_error_clear(&e);
    cr_assert_eq(qat_read_file_maybe_gz(path, buf, len, &e), QAT_OK, "%s", e.msg);
}

Test(gz, raw_and_gz_files_read_identically)
{
    char dir[64], raw[128], gz[128], cat[128];
    fx_mkdtemp(dir);
    fx_path(raw, sizeof raw, dir, "x-images-idx3-ubyte");
    fx_path(gz, sizeof gz, dir, "x-images-idx3-ubyte.gz");
    fx_path(cat, sizeof cat, dir, "two-members.gz");
    size_t len, zlen;
    uint8_t *b = fx_images(50, 28, 28, &len);
    uint8_t *z = fx_gzip(b, len, &zlen);
    fx_write(raw, b, len);
    fx_write(gz, z, zlen);

    uint8_t *r1, *r2;
    size_t l1, l2;
    read_ok(raw, &r1, &l1);
    read_ok(gz, &r2, &l2);
    cr_assert_eq(l1, len);
    cr_assert_eq(l2, len, "gunzipped length %zu, expected %zu", l2, len);
    cr_assert_eq(memcmp(r1, b, len), 0);
    cr_assert_eq(memcmp(r2, b, len), 0);

    /* `cat a.gz b.gz` is valid gzip and must yield both payloads. */
    uint8_t *zz = malloc(2 * zlen);
    memcpy(zz, z, zlen);
    memcpy(zz + zlen, z, zlen);
    fx_write(cat, zz, 2 * zlen);
    uint8_t *r3;
    size_t l3;
    read_ok(cat, &r3, &l3);
    cr_assert_eq(l3, 2 * len);
    cr_assert_eq(memcmp(r3, b, len), 0);
    cr_assert_eq(memcmp(r3 + len, b, len), 0);

    free(r1);
    free(r2);
    free(r3);
    free(zz);
    free(z);
    free(b);
    fx_rmtree(dir);
}

/* Writes bytes to dir/name and expects reading it to fail with fragments. */
static void write_and_read(const char *dir, const char *name, const uint8_t *b, size_t len,
                           char *path, size_t cap, qat_error *e, qat_status *st)
{
    fx_path(path, cap, dir, name);
    fx_write(path, b, len);
    uint8_t *out = (uint8_t *)1;
    size_t olen = 99;
    qat_error_clear(e);
    *st = qat_read_file_maybe_gz(path, &out, &olen, e);
    if (*st != QAT_OK) {
        cr_assert_null(out, "failed read must not hand out a buffer");
        cr_assert_eq(olen, 0u);
    } else {
        free(out);
    }
}

Test(gz, corrupt_gzip_names_file_and_zlib_reason)
{
    char dir[64], path[128];
    fx_mkdtemp(dir);
    size_t len, zlen;
    uint8_t *b = fx_images(20, 28, 28, &len);
    uint8_t *z = fx_gzip(b, len, &zlen);
    qat_error e;
    qat_status st;

    /* First deflate byte after the 10-byte gzip header: 0xff sets block
     * type 3, which deflate reserves. */
    uint8_t *bad = malloc(zlen);
    memcpy(bad, z, zlen);
    bad[10] = 0xff;
    write_and_read(dir, "blocktype.gz", bad, zlen, path, sizeof path, &e, &st);
    EXPECT_ERR(st, e, QAT_EINVAL, path, "corrupt gzip data", "invalid block type");

    /* Intact deflate data but a wrong CRC32 in the trailer. */
    memcpy(bad, z, zlen);
    bad[zlen - 8] ^= 0x5a;
    write_and_read(dir, "crc.gz", bad, zlen, path, sizeof path, &e, &st);
    EXPECT_ERR(st, e, QAT_EINVAL, path, "corrupt gzip data", "incorrect data check");

    /* Bytes after the gzip stream that are not another member. */
    uint8_t *tail = malloc(zlen + 5);
    memcpy(tail, z, zlen);
    memcpy(tail + zlen, "junk!", 5);
    write_and_read(dir, "tail.gz", tail, zlen + 5, path, sizeof path, &e, &st);
    EXPECT_ERR(st, e, QAT_EINVAL, path, "corrupt gzip data", "5 bytes of trailing garbage");

    free(tail);
    free(bad);
    free(z);
    free(b);
    fx_rmtree(dir);
}

Test(gz, truncated_gzip_names_file)
{
    char dir[64], path[128];
    fx_mkdtemp(dir);
    size_t len, zlen;
    uint8_t *b = fx_images(20, 28, 28, &len);
    uint8_t *z = fx_gzip(b, len, &zlen);
    qat_error e;
    qat_status st;

    write_and_read(dir, "half.gz", z, zlen / 2, path, sizeof path, &e, &st);
    EXPECT_ERR(st, e, QAT_EINVAL, path, "truncated gzip data");
    /* All deflate data present, only the last trailer byte missing. */
    write_and_read(dir, "notrailer.gz", z, zlen - 1, path, sizeof path, &e, &st);
    EXPECT_ERR(st, e, QAT_EINVAL, path, "truncated gzip data");
    /* Nothing but the magic. */
    write_and_read(dir, "magic.gz", z, 2, path, sizeof path, &e, &st);
    EXPECT_ERR(st, e, QAT_EINVAL, path, "truncated gzip data");

    free(z);
    free(b);
    fx_rmtree(dir);
}

Test(gz, output_cap_is_enforced)
{
    size_t len, zlen;
    uint8_t *b = fx_images(40, 28, 28, &len);
    uint8_t *z = fx_gzip(b, len, &zlen);
    qat_error e;
    qat_error_clear(&e);
    uint8_t *out = NULL;
    size_t olen;
    EXPECT_ERR(qat_data_gunzip(z, zlen, len - 1, "bomb.gz", &out, &olen, &e), e, QAT_EINVAL,
               "bomb.gz", "more than", "limit");
    cr_assert_null(out);
    /* A cap of exactly the output size is enough. */
    qat_error_clear(&e);
    cr_assert_eq(qat_data_gunzip(z, zlen, len, "fits.gz", &out, &olen, &e), QAT_OK, "%s", e.msg);
    cr_assert_eq(olen, len);
    cr_assert_eq(memcmp(out, b, len), 0);
    free(out);
    free(z);
    free(b);
}

Test(read, missing_file_is_einval_naming_path)
{
    qat_error e;
    qat_error_clear(&e);
    uint8_t *buf;
    size_t len;
    const char *p = "/nonexistent-qat-dir/train-images-idx3-ubyte.gz";
    EXPECT_ERR(qat_read_file_maybe_gz(p, &buf, &len, &e), e, QAT_EINVAL, p, "cannot open",
               "No such file");
}

Test(read, directory_is_einval_naming_path)
{
    char dir[64];
    fx_mkdtemp(dir);
    qat_error e;
    qat_error_clear(&e);
    uint8_t *buf;
    size_t len;
    EXPECT_ERR(qat_read_file_maybe_gz(dir, &buf, &len, &e), e, QAT_EINVAL, dir, "directory");
    fx_rmtree(dir);
}
