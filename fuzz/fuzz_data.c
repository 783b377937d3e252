/* libFuzzer target: the dataset parsers beside IDX's (fuzz_idx has those),
 * one target for all so CI's smoke run stays short.
 *
 * Input: one selector byte, then file bytes. The selector picks the parser:
 * 0 .npy (then every element read back), 1 CSV of class labels, 2 CSV of
 * regression targets, 3 CIFAR-10 records, 4 CIFAR-100 records, 5 IDX of any
 * rank (unsigned byte or float32). What a parser accepts must keep the
 * promises the trainer relies on (sizes, labels below the classes, finite
 * floats), checked with abort(). HDF5 datasets are not here: their bytes
 * are HDF5's to parse (fuzz_model covers HDF5 file images). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/data_internal.h"
#include "qat/data.h"

static void refused_with_message(qat_status st, const qat_error *err)
{
    if (st != QAT_OK && err->msg[0] == '\0')
        abort(); /* a refusal must explain itself */
}

static void check_dataset(const qat_dataset *d, int regression, int classes)
{
    size_t isz = qat_dataset_image_size(d);
    if (d->n == 0 || isz == 0 || (!d->images == !d->features))
        abort();
    volatile float sink = 0;
    for (size_t i = 0; i < (size_t)d->n * isz; i++)
        sink += d->features ? d->features[i] : d->images[i];
    for (uint32_t i = 0; i < d->n; i++) {
        if (regression) {
            for (int k = 0; k < d->target_dim; k++)
                if (!isfinite(d->targets[(size_t)i * d->target_dim + k]))
                    abort();
        } else if (d->labels[i] >= classes) {
            abort();
        }
    }
    (void)sink;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int sel = data[0] % 6;
    const uint8_t *buf = data + 1;
    size_t len = size - 1;
    qat_error err;
    qat_error_clear(&err);
    qat_status st;
    qat_dataset d;
    memset(&d, 0, sizeof d);
    switch (sel) {
    case 0: {
        qat_npy_array a;
        st = qat_npy_parse(buf, len, "fuzz.npy", &a, &err);
        refused_with_message(st, &err);
        if (st == QAT_OK) {
            if (a.data < buf || a.data + a.count * (size_t)a.elem_size != buf + len)
                abort(); /* the array is exactly the rest of the file */
            volatile double s = 0;
            for (size_t i = 0; i < a.count; i++)
                s += qat_npy_get(&a, i);
            (void)s;
        }
        return 0;
    }
    case 1:
    case 2:
        st = qat_csv_parse((const char *)buf, len, "fuzz.csv", "t", sel == 2, 5, &d, &err);
        refused_with_message(st, &err);
        if (st == QAT_OK) {
            check_dataset(&d, sel == 2, 5);
            if (qat_data_check_split(&d, "x", "y", &err) != QAT_OK)
                abort(); /* the parser already refused everything the checks would */
        }
        break;
    case 3:
    case 4:
        st = qat_cifar_parse(buf, len, "fuzz.bin", sel - 2, sel == 3 ? 10 : 100, &d, &err);
        refused_with_message(st, &err);
        if (st == QAT_OK)
            check_dataset(&d, 0, sel == 3 ? 10 : 100);
        free(d.images);
        free(d.labels);
        return 0;
    default: {
        qat_idx_array a;
        st = qat_idx_parse(buf, len, "fuzz.idx", "inputs", 1, 4, 1, 0, SIZE_MAX, &a, &err);
        refused_with_message(st, &err);
        if (st == QAT_OK) {
            size_t n = a.type == QAT_DATA_F32 ? 4 : 1;
            for (int i = 0; i < a.ndims; i++)
                n *= a.dims[i];
            if (4 + 4 * (size_t)a.ndims + n != len)
                abort();
            volatile uint8_t last = ((uint8_t *)a.data)[n - 1];
            (void)last;
        }
        free(a.data);
        return 0;
    }
    }
    qat_dataset_free(&d);
    return 0;
}
