/* MNIST-style datasets: IDX files, raw or gzip-compressed, kept as uint8. */
#ifndef QAT_DATA_H
#define QAT_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "qat/rng.h"
#include "qat/status.h"

/* Refuse IDX files whose payload would exceed this (a corrupt header must
 * not make us allocate gigabytes). */
#define QAT_IDX_MAX_BYTES ((size_t)1 << 31)

typedef struct qat_dataset {
    uint8_t *images; /* n * h * w * c pixels, image-major, HWC */
    uint8_t *labels; /* n labels, each < num_classes */
    uint32_t n;
    int h, w, c;
    int num_classes;
} qat_dataset;

/* Parses an IDX image file (magic 0x00000803, dims n x h x w) held in memory,
 * already decompressed. name is used in error messages. Allocates *pixels. */
qat_status qat_idx_parse_images(const uint8_t *buf, size_t len, const char *name,
                                uint8_t **pixels, uint32_t *n, int *h, int *w, qat_error *err);
/* Parses an IDX label file (magic 0x00000801, dim n). Allocates *labels. */
qat_status qat_idx_parse_labels(const uint8_t *buf, size_t len, const char *name,
                                uint8_t **labels, uint32_t *n, qat_error *err);
/* Reads a whole file, transparently gunzipping if it starts with the gzip
 * magic. Corrupt or truncated gzip is an error naming the file. Allocates. */
qat_status qat_read_file_maybe_gz(const char *path, uint8_t **buf, size_t *len, qat_error *err);

/* Loads split "train" or "t10k" from dir: <dir>/<split>-images-idx3-ubyte and
 * <dir>/<split>-labels-idx1-ubyte, each raw or with a .gz suffix. Checks that
 * counts agree and labels < num_classes. limit > 0 keeps only the first
 * limit examples. */
qat_status qat_mnist_load(const char *dir, const char *split, int num_classes, uint32_t limit,
                          qat_dataset *out, qat_error *err);
void qat_dataset_free(qat_dataset *d);
size_t qat_dataset_image_size(const qat_dataset *d);

/* Epoch order: a permutation of [0, n) drawn from rng (or identity when
 * shuffle is 0). order must hold n entries. */
void qat_dataset_order(uint32_t n, int shuffle, qat_rng *rng, uint32_t *order);
/* Copies the examples idx[0..count) into contiguous images/labels buffers. */
void qat_dataset_gather(const qat_dataset *d, const uint32_t *idx, int count, uint8_t *images,
                        uint8_t *labels);

#endif
