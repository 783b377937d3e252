/* Palettized weights (docs/FORMAT.md §10): the index bit order, the
 * runtime's expansion (logits byte-identical to the same weights stored
 * plain, on every kernel path this machine runs, through the HDF5 file and
 * its reader too), export's codebook builder, the C export's encoding, and
 * the validator's refusals. */
#include <criterion/criterion.h>
#include <unistd.h>

#include "../runtime/palette_fixture.h"
#include "export/codes.h"
#include "qat/export.h"
#include "qat/runtime_h5.h"

Test(palette, index_bit_order_matches_the_worked_example)
{
    /* FORMAT.md §10: K = 8 (3 bits), indices (5, 1, 7) -> 0xCD 0x01 */
    const uint8_t idx[3] = {5, 1, 7};
    uint8_t out[2];
    qat_rt_palette_pack(idx, 3, 8, out);
    cr_assert(out[0] == 0xCD && out[1] == 0x01, "%02x %02x", out[0], out[1]);
    cr_assert_eq(qat_rt_palette_index_bytes(3, 8), 2);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(qat_rt_palette_index_at(out, (size_t)i, 3), idx[i]);
    /* every width against the fixture's bit-by-bit packer */
    for (int k = 2; k <= 256; k = k * 2 - 1 + (k & 1)) {
        uint8_t v[97], *mine;
        for (int i = 0; i < 97; i++)
            v[i] = (uint8_t)((i * 37 + 11) % k);
        size_t n = fx_pal_pack(v, 97, fx_pal_bits(k), &mine);
        cr_assert_eq(n, qat_rt_palette_index_bytes(97, k), "k %d", k);
        uint8_t *theirs = calloc(n, 1);
        qat_rt_palette_pack(v, 97, k, theirs);
        cr_assert_eq(memcmp(mine, theirs, n), 0, "k %d", k);
        free(mine);
        free(theirs);
    }
    cr_assert_eq(qat_rt_palette_index_bits(2), 1);
    cr_assert_eq(qat_rt_palette_index_bits(3), 2);
    cr_assert_eq(qat_rt_palette_index_bits(16), 4);
    cr_assert_eq(qat_rt_palette_index_bits(17), 5);
    cr_assert_eq(qat_rt_palette_index_bits(256), 8);
}

static int8_t *run(const qat_rt_model_desc *d, const char *isa, const uint8_t *px, int n,
                   int threads)
{
    qat_rt_model *rm;
    qat_error e;
    cr_assert_eq(qat_rt_model_create_isa(d, isa, &rm, &e), QAT_OK, "%s", e.msg);
    int8_t *q = malloc((size_t)n * (size_t)d->num_classes);
    cr_assert_eq(fx_run(rm, threads, n, px, n, q, &e), QAT_OK, "%s", e.msg);
    qat_rt_model_destroy(rm);
    return q;
}

static void same_logits_case(int bits, int k, int per_channel)
{
    fx_model m;
    fx_palette p;
    fx_build_cnn(&m, 31, bits);
    fx_palettize(&m, &p, k, per_channel);
    const int n = 37;
    size_t isz = (size_t)m.desc.in_h * m.desc.in_w;
    uint8_t *px = malloc((size_t)n * isz);
    fx_images(9, px, (size_t)n * isz);
    static const char *const isas[] = {"ref", "avx2", "avx512vnni", "neon", NULL};
    qat_rt_model_desc plain = m.desc;
    plain.version = 1;
    qat_rt_layer_desc pl[FX_MAX_LAYERS];
    memcpy(pl, m.layers, sizeof pl);
    for (int i = 0; i < m.desc.num_layers; i++)
        pl[i].palette_size = 0;
    plain.layers = pl;
    /* the file: written palettized, read back with the weights stream absent */
    char path[] = "/tmp/qat-palette-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    close(fd);
    qat_error e;
    cr_assert_eq(qat_rt_h5_write(path, &m.desc, &e), QAT_OK, "%s", e.msg);
    qat_rt_owned_desc rd;
    cr_assert_eq(qat_rt_h5_read_desc(path, &rd, &e), QAT_OK, "%s", e.msg);
    unlink(path);
    cr_assert_eq(rd.desc.version, 2);
    cr_assert_eq(rd.layers[0].palette_size, k);
    cr_assert_eq(rd.layers[0].palette_groups, per_channel ? m.layers[0].out_c : 1);
    cr_assert_null(rd.layers[0].weights, "a palettized layer stores no plain stream");
    for (int t = 0; isas[t]; t++) {
        const char *name;
        if (qat_rt_isa_resolve(isas[t], &name, &e) != QAT_OK)
            continue;
        for (int threads = 1; threads <= 2; threads++) {
            int8_t *a = run(&plain, isas[t], px, n, threads);
            int8_t *b = run(&m.desc, isas[t], px, n, threads);
            int8_t *c = run(&rd.desc, isas[t], px, n, threads);
            cr_assert_eq(memcmp(a, b, (size_t)n * 10), 0, "%s: palettized != plain", isas[t]);
            cr_assert_eq(memcmp(a, c, (size_t)n * 10), 0, "%s: file != plain", isas[t]);
            free(a);
            free(b);
            free(c);
        }
    }
    int8_t oracle[10], *a = run(&m.desc, "ref", px, 1, 1);
    cr_assert_eq(fx_oracle(&m, px, oracle), 0);
    cr_assert_eq(memcmp(a, oracle, 10), 0, "the oracle reads the coarsened plain weights");
    free(a);
    qat_rt_owned_desc_free(&rd);
    free(px);
    fx_palette_free(&p);
    fx_free(&m);
}

Test(palette, runtime_logits_equal_the_plain_encoding_8bit_16_per_layer)
{
    same_logits_case(8, 16, 0);
}

Test(palette, runtime_logits_equal_the_plain_encoding_4bit_4_per_channel)
{
    same_logits_case(4, 4, 1);
}

Test(palette, runtime_logits_equal_the_plain_encoding_2bit_3_per_layer)
{
    same_logits_case(2, 3, 0);
}

Test(palette, runtime_logits_equal_the_plain_encoding_7bit_100_per_channel)
{
    same_logits_case(7, 100, 1);
}

Test(palette, a_version_1_model_reads_back_unchanged)
{
    fx_model m;
    fx_build_cnn(&m, 3, 8);
    m.desc.version = 1;
    char path[] = "/tmp/qat-palette-XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    qat_error e;
    cr_assert_eq(qat_rt_h5_write(path, &m.desc, &e), QAT_OK, "%s", e.msg);
    qat_rt_owned_desc rd;
    cr_assert_eq(qat_rt_h5_read_desc(path, &rd, &e), QAT_OK, "%s", e.msg);
    unlink(path);
    cr_assert_eq(rd.desc.version, 1);
    cr_assert_eq(rd.layers[0].palette_size, 0);
    qat_rt_owned_desc_free(&rd);
    fx_free(&m);
}

Test(palette, export_builds_a_layer_codebook_else_per_channel_else_none)
{
    /* 2 channels of 4: 3 codes overall fit K = 3 per layer */
    const int8_t a[8] = {-5, 0, 7, 0, 7, 7, -5, -5};
    int8_t cb[8];
    uint8_t idx[8];
    cr_assert_eq(qat_export_palette(a, 2, 4, 3, cb, idx), 1);
    cr_assert(cb[0] == -5 && cb[1] == 0 && cb[2] == 7);
    for (int i = 0; i < 8; i++)
        cr_assert_eq(cb[idx[i]], a[i]);
    /* 4 codes overall, 2 per channel: K = 2 needs per-channel codebooks */
    const int8_t b[8] = {1, 2, 2, 1, -3, 9, 9, 9};
    cr_assert_eq(qat_export_palette(b, 2, 4, 2, cb, idx), 2);
    for (int i = 0; i < 8; i++)
        cr_assert_eq(cb[(i / 4) * 2 + idx[i]], b[i]);
    /* padding: fewer codes than K repeat the largest */
    cr_assert_eq(qat_export_palette(b, 2, 4, 4, cb, idx), 1);
    cr_assert(cb[0] == -3 && cb[1] == 1 && cb[2] == 2 && cb[3] == 9);
    const int8_t c[8] = {1, 2, 3, 1, 0, 0, 0, 0};
    cr_assert_eq(qat_export_palette(c, 2, 4, 2, cb, idx), 0, "3 codes in channel 0 exceed K");
}

static void expect_invalid(const qat_rt_model_desc *d, const char *want)
{
    qat_error e;
    cr_assert_eq(qat_rt_model_validate(d, &e), QAT_EINVAL, "accepted; wanted %s", want);
    cr_assert(strstr(e.msg, want), "'%s' lacks '%s'", e.msg, want);
}

Test(palette, validation_refuses_bad_indices_codebooks_and_lengths)
{
    fx_model m;
    fx_palette p;
    fx_build_cnn(&m, 5, 4);
    fx_palettize(&m, &p, 3, 0); /* 2-bit indices: the value 3 is out of range */
    qat_error e;
    cr_assert_eq(qat_rt_model_validate(&m.desc, &e), QAT_OK, "%s", e.msg);
    qat_rt_layer_desc *fc = &m.layers[5];
    uint8_t save = p.indices[5][1];
    p.indices[5][1] |= 0x0C; /* index 5 -> 3 */
    expect_invalid(&m.desc, "palette_indices[5]: expected < palette_size 3, found 3");
    p.indices[5][1] = save;
    p.codebook[5][2] = 8; /* 4-bit weights: [-8, 7] */
    expect_invalid(&m.desc, "codebook[2]: expected in [-8, 7] for 4 bits, found 8");
    p.codebook[5][2] = -8;
    fc->indices_bytes--;
    expect_invalid(&m.desc, "palette_indices: expected");
    fc->indices_bytes++;
    fc->palette_groups = 2;
    expect_invalid(&m.desc, "palette_groups: expected 1 or out_c 10, found 2");
    fc->palette_groups = 1;
    fc->palette_size = 257;
    expect_invalid(&m.desc, "palette_size: expected in [2, 256]");
    fc->palette_size = 3;
    m.desc.version = 1;
    expect_invalid(&m.desc, "need format version 2");
    m.desc.version = 2;
    cr_assert_eq(qat_rt_model_validate(&m.desc, &e), QAT_OK, "%s", e.msg);
    fx_palette_free(&p);
    fx_free(&m);
}

Test(palette, validation_refuses_nonzero_padding_bits)
{
    fx_model m;
    fx_palette p;
    fx_build_cnn(&m, 5, 8);
    fx_palettize(&m, &p, 8, 0); /* 3 bits: conv1's 63 weights end mid-byte */
    qat_rt_layer_desc *c1 = &m.layers[0];
    cr_assert_neq((63 * 3) % 8, 0);
    p.indices[0][c1->indices_bytes - 1] |= 0x80;
    expect_invalid(&m.desc, "padding bits of the last byte must be zero");
    fx_palette_free(&p);
    fx_free(&m);
}

Test(palette, the_c_export_carries_codebook_and_indices)
{
    fx_model m;
    fx_palette p;
    fx_build_cnn(&m, 8, 8);
    fx_palettize(&m, &p, 16, 0);
    char dir[] = "/tmp/qat-palette-c-XXXXXX", prefix[64], src[80];
    cr_assert_not_null(mkdtemp(dir));
    snprintf(prefix, sizeof prefix, "%s/net", dir);
    snprintf(src, sizeof src, "%s.c", prefix);
    qat_error e;
    cr_assert_eq(qat_export_c(&m.desc, prefix, "net", "test", &e), QAT_OK, "%s", e.msg);
    FILE *f = fopen(src, "r");
    cr_assert_not_null(f);
    char *text = calloc(1 << 20, 1);
    size_t n = fread(text, 1, (1 << 20) - 1, f);
    fclose(f);
    cr_assert_gt(n, 0);
    cr_assert(strstr(text, "static const int8_t l0_codebook[16]"), "codebook array");
    cr_assert(strstr(text, ".palette_size = 16, .palette_groups = 1"));
    cr_assert(strstr(text, ".indices = l0_palette_indices"));
    cr_assert_null(strstr(text, "l0_weights"), "no plain stream beside the palette");
    cr_assert(strstr(text, ".version = 2"));
    free(text);
    unlink(src);
    snprintf(src, sizeof src, "%s.h", prefix);
    unlink(src);
    rmdir(dir);
    fx_palette_free(&p);
    fx_free(&m);
}
