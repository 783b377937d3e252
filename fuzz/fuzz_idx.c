/* libFuzzer target: the IDX loader and its gunzip path.
 *
 * Input: one selector byte, then file bytes. The selector picks what the
 * bytes are taken as (an image file or a label file) and whether they go
 * through gunzip first, as qat_read_file_maybe_gz does for gzip magic. The
 * gunzip cap is lowered to 16 MiB (it is a parameter for exactly this), so
 * a bomb is refused instead of tripping the fuzzer's memory limit; the code
 * path is the same one the 2 GiB production cap takes. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/data_internal.h"
#include "qat/data.h"

#define FUZZ_GUNZIP_CAP ((size_t)1 << 24)

static void refused_with_message(qat_status st, const qat_error *err)
{
    if (st != QAT_OK && err->msg[0] == '\0')
        abort(); /* a refusal must explain itself */
}

static void parse(const uint8_t *buf, size_t len, int labels)
{
    qat_error err;
    qat_error_clear(&err);
    if (labels) {
        uint8_t *lab = NULL;
        uint32_t n = 0;
        qat_status st = qat_idx_parse_labels(buf, len, "fuzz-labels", &lab, &n, &err);
        refused_with_message(st, &err);
        if (st == QAT_OK) {
            /* exact length: header + n labels, every byte readable */
            if (len != 8 + (size_t)n)
                abort();
            unsigned sum = 0;
            for (uint32_t i = 0; i < n; i++)
                sum += lab[i];
            (void)sum;
        }
        free(lab);
    } else {
        uint8_t *px = NULL;
        uint32_t n = 0;
        int h = 0, w = 0;
        qat_status st = qat_idx_parse_images(buf, len, "fuzz-images", &px, &n, &h, &w, &err);
        refused_with_message(st, &err);
        if (st == QAT_OK) {
            if (n == 0 || h <= 0 || w <= 0 || len != 16 + (size_t)n * (size_t)h * (size_t)w)
                abort();
            qat_dataset d = {.images = px, .n = n, .h = h, .w = w, .c = 1};
            if (qat_dataset_image_size(&d) != (size_t)h * (size_t)w)
                abort();
            /* the last pixel is readable */
            volatile uint8_t last = px[(size_t)n * (size_t)h * (size_t)w - 1];
            (void)last;
        }
        free(px);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int sel = data[0];
    const uint8_t *buf = data + 1;
    size_t len = size - 1;
    int labels = sel & 1, gz = (sel >> 1) & 1;
    if (!gz) {
        parse(buf, len, labels);
        return 0;
    }
    uint8_t *out = NULL;
    size_t out_len = 0;
    qat_error err;
    qat_error_clear(&err);
    qat_status st = qat_data_gunzip(buf, len, FUZZ_GUNZIP_CAP, "fuzz.gz", &out, &out_len, &err);
    refused_with_message(st, &err);
    if (st == QAT_OK) {
        if (!out || out_len > FUZZ_GUNZIP_CAP)
            abort();
        parse(out, out_len, labels);
    } else if (out) {
        abort(); /* nothing is handed out on failure */
    }
    free(out);
    return 0;
}
