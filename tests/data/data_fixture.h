/* Shared helpers for the data tests: synthetic IDX buffers, gzip, temp dirs. */
#ifndef QAT_TEST_DATA_FIXTURE_H
#define QAT_TEST_DATA_FIXTURE_H

#include <criterion/criterion.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "qat/data.h"
#include "qat/status.h"

/* Asserts a failure with the given status whose message contains every
 * listed fragment (the file name and a word that says what went wrong). */
#define EXPECT_ERR(st, e, code, ...)                                                          \
    do {                                                                                      \
        qat_status st_ = (st);                                                                \
        cr_assert_eq(st_, (code), "status %s, expected %s; message: %s",                      \
                     qat_status_name(st_), qat_status_name(code), (e).msg);                   \
        cr_assert_eq((e).status, (code), "err.status not set; message: %s", (e).msg);         \
        const char *needles_[] = {__VA_ARGS__};                                               \
        for (size_t k_ = 0; k_ < sizeof needles_ / sizeof needles_[0]; k_++)                  \
            cr_assert_not_null(strstr((e).msg, needles_[k_]), "message \"%s\" lacks \"%s\"",  \
                               (e).msg, needles_[k_]);                                        \
    } while (0)

static inline void fx_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Pixel k of image i: distinct across images for i < 256, so a copy of the
 * wrong image is caught. */
static inline uint8_t fx_pixel(uint32_t i, size_t k)
{
    return (uint8_t)(i * 7u + k * 13u + 1u);
}

/* An IDX image buffer: header + n*h*w pixels (fx_pixel), plus extra bytes
 * of room the caller may use. *len gets header + payload. */
static inline uint8_t *fx_images(uint32_t n, uint32_t h, uint32_t w, size_t *len)
{
    size_t isz = (size_t)h * w;
    *len = 16 + (size_t)n * isz;
    uint8_t *b = malloc(*len + 64);
    cr_assert_not_null(b);
    fx_be32(b, 0x00000803u);
    fx_be32(b + 4, n);
    fx_be32(b + 8, h);
    fx_be32(b + 12, w);
    for (uint32_t i = 0; i < n; i++)
        for (size_t k = 0; k < isz; k++)
            b[16 + i * isz + k] = fx_pixel(i, k);
    return b;
}

/* An IDX label buffer with label i = i % classes (+64 bytes of room). */
static inline uint8_t *fx_labels(uint32_t n, uint32_t classes, size_t *len)
{
    *len = 8 + (size_t)n;
    uint8_t *b = malloc(*len + 64);
    cr_assert_not_null(b);
    fx_be32(b, 0x00000801u);
    fx_be32(b + 4, n);
    for (uint32_t i = 0; i < n; i++)
        b[8 + i] = (uint8_t)(i % classes);
    return b;
}

/* gzip-compresses buf (a complete single-member gzip stream). */
static inline uint8_t *fx_gzip(const uint8_t *buf, size_t len, size_t *out_len)
{
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    cr_assert_eq(deflateInit2(&zs, 9, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
    size_t cap = deflateBound(&zs, (uLong)len) + 64;
    uint8_t *out = malloc(cap);
    cr_assert_not_null(out);
    zs.next_in = (Bytef *)(uintptr_t)buf;
    zs.avail_in = (uInt)len;
    zs.next_out = out;
    zs.avail_out = (uInt)cap;
    cr_assert_eq(deflate(&zs, Z_FINISH), Z_STREAM_END);
    *out_len = cap - zs.avail_out;
    deflateEnd(&zs);
    return out;
}

static inline void fx_write(const char *path, const uint8_t *buf, size_t len)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "cannot create %s", path);
    cr_assert_eq(fwrite(buf, 1, len, f), len);
    cr_assert_eq(fclose(f), 0);
}

/* path = dir/name, in a static-free caller buffer. */
static inline void fx_path(char *out, size_t cap, const char *dir, const char *name)
{
    int k = snprintf(out, cap, "%s/%s", dir, name);
    cr_assert(k > 0 && (size_t)k < cap);
}

static inline void fx_mkdtemp(char out[64])
{
    strcpy(out, "/tmp/qat_data_test_XXXXXX");
    cr_assert_not_null(mkdtemp(out));
}

static inline int fx_rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static inline void fx_rmtree(const char *dir)
{
    nftw(dir, fx_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

/* A version-1 .npy image: header dict for descr and shape, padded to 64. */
static inline uint8_t *fx_npy(const char *descr, const char *shape, const void *data, size_t bytes,
                    size_t *len)
{
    char dict[256];
    int dl = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': %s, }",
                      descr, shape);
    size_t hl = (size_t)dl + 1, total = 10 + hl;
    size_t pad = (64 - total % 64) % 64;
    hl += pad;
    *len = 10 + hl + bytes;
    uint8_t *b = malloc(*len);
    cr_assert_not_null(b);
    memcpy(b, "\x93NUMPY\x01\x00", 8);
    b[8] = (uint8_t)(hl & 0xff);
    b[9] = (uint8_t)(hl >> 8);
    memcpy(b + 10, dict, (size_t)dl);
    memset(b + 10 + dl, ' ', hl - (size_t)dl - 1);
    b[10 + hl - 1] = '\n';
    memcpy(b + 10 + hl, data, bytes);
    return b;
}


#endif
