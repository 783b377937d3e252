/* Datasets: the file formats qat reads (IDX raw or gzip, NumPy .npy, CIFAR
 * binary batches, CSV; HDF5 through data_h5.h), the examples they hold
 * (uint8 or float32 inputs, class labels or float targets), and what the
 * training loop does with them: subsets, epoch order, batches and
 * augmentation. Pure C on core and zlib: qat-infer links it too. */
#ifndef QAT_DATA_H
#define QAT_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "qat/rng.h"
#include "qat/status.h"

/* Refuse IDX files whose payload would exceed this (a corrupt header must
 * not make us allocate gigabytes). */
#define QAT_IDX_MAX_BYTES ((size_t)1 << 31)
/* Most values one example may hold (any format): a corrupt shape must not
 * become a huge allocation per batch. */
#define QAT_DATA_MAX_EXAMPLE ((size_t)1 << 26)
/* Most float targets per example (regression outputs). */
#define QAT_DATA_MAX_TARGETS 4096

/* What an input value is stored as. */
typedef enum qat_data_type {
    QAT_DATA_U8 = 0, /* pixels 0..255; the model sees p / 255 */
    QAT_DATA_F32     /* real features; the model quantizes them itself */
} qat_data_type;

/* The file formats of [data] format (the config's table has the same order). */
typedef enum qat_data_format {
    QAT_FORMAT_AUTO = 0, /* told from the files */
    QAT_FORMAT_IDX,
    QAT_FORMAT_HDF5,
    QAT_FORMAT_NPY,
    QAT_FORMAT_CIFAR,
    QAT_FORMAT_CSV
} qat_data_format;
/* "auto", "idx", "hdf5", "npy", "cifar", "csv"; NULL-terminated. */
extern const char *const qat_data_format_names[];
/* The format named s (exactly as listed), or -1. */
int qat_data_format_parse(const char *s);

/* A block a dataset owns: malloc'd (map_len 0) or a read-only mapping. */
typedef struct qat_data_block {
    void *p;
    size_t map_len;
} qat_data_block;
#define QAT_DATA_BLOCKS 4

typedef struct qat_dataset {
    uint8_t *images;   /* QAT_DATA_U8 inputs: n * h * w * c values, example-major, HWC */
    float *features;   /* QAT_DATA_F32 inputs, the same layout (exactly one of the two is set) */
    uint8_t *labels;   /* classification: n labels, each < num_classes (else NULL) */
    float *targets;    /* regression: n * target_dim finite values (else NULL) */
    uint32_t n;
    int h, w, c;       /* flat features: h = w = 1, c = count */
    int num_classes;   /* classification */
    int target_dim;    /* regression: values per target; 0 for classification */
    /* A subset view (qat_dataset_subset): example i is stored example
     * index[i] of the arrays above; NULL: example i is stored example i. */
    uint32_t *index;
    /* What qat_dataset_free releases (a view owns only its index). */
    qat_data_block own[QAT_DATA_BLOCKS];
} qat_dataset;

/* ---- IDX (the MNIST container) ------------------------------------------------ */

/* A parsed IDX array: dims[0] examples of the rest, uint8 or float32 (IDX
 * type 0x08 or 0x0D, big-endian in the file, native here). */
typedef struct qat_idx_array {
    qat_data_type type;
    int ndims;
    uint32_t dims[4]; /* as in the file */
    uint32_t kept;    /* examples in data: dims[0], or the first limit of them */
    void *data;       /* malloc'd, kept * dims[1] * ... values */
} qat_idx_array;

/* Parses an IDX image file (magic 0x00000803, dims n x h x w) held in memory,
 * already decompressed. name is used in error messages. Allocates *pixels. */
qat_status qat_idx_parse_images(const uint8_t *buf, size_t len, const char *name,
                                uint8_t **pixels, uint32_t *n, int *h, int *w, qat_error *err);
/* Parses an IDX label file (magic 0x00000801, dim n). Allocates *labels. */
qat_status qat_idx_parse_labels(const uint8_t *buf, size_t len, const char *name,
                                uint8_t **labels, uint32_t *n, qat_error *err);
/* Parses any IDX file of rank min_rank..max_rank (1..4) whose elements are
 * unsigned bytes or (float_ok) float32; what names the content in messages
 * ("inputs", "targets"). The whole file is checked (header, exact length);
 * limit > 0 copies only the first limit examples (out->kept), so a mapped
 * file's later pages are never read. A copy of more than mem_available
 * bytes is refused before it is made (SIZE_MAX: never). Allocates
 * out->data. */
qat_status qat_idx_parse(const uint8_t *buf, size_t len, const char *name, const char *what,
                         int min_rank, int max_rank, int float_ok, uint32_t limit,
                         size_t mem_available, qat_idx_array *out, qat_error *err);
/* Reads a whole file, transparently gunzipping if it starts with the gzip
 * magic. Corrupt or truncated gzip is an error naming the file. Allocates. */
qat_status qat_read_file_maybe_gz(const char *path, uint8_t **buf, size_t *len, qat_error *err);

/* Loads split "train" or "t10k" from dir: <dir>/<split>-images-idx3-ubyte and
 * <dir>/<split>-labels-idx1-ubyte, each raw or with a .gz suffix. Checks that
 * counts agree and labels < num_classes. limit > 0 keeps only the first
 * limit examples. */
qat_status qat_mnist_load(const char *dir, const char *split, int num_classes, uint32_t limit,
                          qat_dataset *out, qat_error *err);

/* ---- any format ------------------------------------------------------------------ */

/* Reads one HDF5 split (data_h5.h implements it; data itself has no HDF5):
 * datasets x_name and y_name in group (the split's name, "train" or
 * "test") if the file has that group, else at the root; with
 * group_required the group must be there. */
typedef qat_status (*qat_data_h5_reader)(const char *path, const char *group, int group_required,
                                         const char *x_name, const char *y_name, int regression,
                                         int num_classes, size_t mem_available, qat_dataset *out,
                                         qat_error *err);

/* Where a dataset's splits are and how to read them ([data] in a config). */
typedef struct qat_data_source {
    qat_data_format format;
    const char *dir;          /* folder holding both splits under standard names */
    const char *train, *test; /* a split's own file or folder ("" or NULL: from dir) */
    const char *x_name, *y_name; /* HDF5 dataset names */
    const char *target;       /* CSV: the target column */
    int regression;           /* float targets (else class labels) */
    int num_classes;          /* classification: labels must be below it */
    size_t mem_available;     /* refuse a dataset larger than this (SIZE_MAX: no check) */
    qat_data_h5_reader h5;    /* NULL: HDF5 files are refused */
} qat_data_source;

/* Loads split "train" or "test" of src (README, "Datasets": where each
 * format keeps its files). Every label is checked below num_classes and
 * every float value is checked finite, naming the file and the record (line
 * for CSV); an empty split, a dataset larger than src->mem_available, and
 * targets of the wrong kind are errors. limit > 0 keeps the first limit
 * examples. *where receives the file or folder the split came from. */
qat_status qat_data_load(const qat_data_source *src, const char *split, uint32_t limit,
                         qat_dataset *out, char *where, size_t where_len, qat_error *err);
/* Loads the inputs file and targets file of one split whose format is known
 * (qat-infer's --images/--labels, any IDX or .npy pair). */
qat_status qat_data_load_pair(qat_data_format format, const char *inputs, const char *targets,
                              int regression, int num_classes, size_t mem_available,
                              qat_dataset *out, qat_error *err);
/* The format of a file from its first bytes and name (AUTO if none fits). */
qat_data_format qat_data_sniff(const char *path);

/* ---- format parsers (in memory; the loaders above and the fuzzers use them) -- */

/* A .npy array: the header of format versions 1-3, little-endian or
 * byte-order-free dtypes u1 i1 u2 i2 u4 i4 u8 i8 f4 f8, C order. data points
 * into buf (not copied). */
typedef struct qat_npy_array {
    char kind;      /* 'u', 'i' or 'f' */
    int elem_size;  /* bytes per element */
    int ndims;
    uint64_t dims[4];
    size_t count;   /* elements */
    const uint8_t *data;
} qat_npy_array;
qat_status qat_npy_parse(const uint8_t *buf, size_t len, const char *name, qat_npy_array *out,
                         qat_error *err);
/* Element i of a parsed array as a double (any dtype). */
double qat_npy_get(const qat_npy_array *a, size_t i);

/* CIFAR-10/100 binary batches held in memory: records of label_bytes label
 * bytes (the last one is the label) then 3072 pixels, planar R, G, B of
 * 32x32. Appends the records to the dataset being built in out (n grows),
 * checking labels < num_classes. */
qat_status qat_cifar_parse(const uint8_t *buf, size_t len, const char *name, int label_bytes,
                           int num_classes, qat_dataset *out, qat_error *err);

/* CSV with a header row: every column but target is a feature (float32),
 * target the label (an integer below num_classes) or, with regression, the
 * float target. A missing value, a cell that is not a number, a ragged row
 * are errors naming name:line and the column. */
qat_status qat_csv_parse(const char *text, size_t len, const char *name, const char *target,
                         int regression, int num_classes, qat_dataset *out, qat_error *err);

/* ---- datasets ----------------------------------------------------------------------- */

void qat_dataset_free(qat_dataset *d);
/* Values per example (h * w * c). */
size_t qat_dataset_image_size(const qat_dataset *d);
qat_data_type qat_dataset_type(const qat_dataset *d);
/* Bytes the dataset's arrays occupy (inputs and targets). */
size_t qat_dataset_bytes(const qat_dataset *d);
/* A view of d's examples idx[0..n) (d's storage, which must outlive it; d
 * may itself be a view). */
qat_status qat_dataset_subset(const qat_dataset *d, const uint32_t *idx, uint32_t n,
                              qat_dataset *out, qat_error *err);
/* Splits d into a training view and a validation view of round(fraction *
 * n) examples drawn with rng (deterministic for a seed). */
qat_status qat_dataset_split(const qat_dataset *d, double fraction, qat_rng *rng,
                             qat_dataset *train, qat_dataset *val, qat_error *err);

/* Epoch order: a permutation of [0, n) drawn from rng (or identity when
 * shuffle is 0). order must hold n entries. */
void qat_dataset_order(uint32_t n, int shuffle, qat_rng *rng, uint32_t *order);
/* Copies the uint8 examples idx[0..count) into contiguous images/labels
 * buffers (labels may be NULL). */
void qat_dataset_gather(const qat_dataset *d, const uint32_t *idx, int count, uint8_t *images,
                        uint8_t *labels);
/* The same for any dataset: inputs receives count examples of
 * image_size values (uint8 or float, as stored); labels (classification) or
 * targets (regression, count * target_dim) may be NULL. idx NULL: examples
 * first .. first + count - 1. */
void qat_dataset_batch(const qat_dataset *d, const uint32_t *idx, uint32_t first, int count,
                       void *inputs, uint8_t *labels, float *targets);

/* Per-channel mean and standard deviation of the inputs (uint8 as p / 255,
 * the scale the model sees), over every example and position; std is the
 * population one, floored at 1e-6. mean and std hold d->c entries. */
void qat_dataset_channel_stats(const qat_dataset *d, float *mean, float *std);

/* Regression metrics over every output of every example: mean squared and
 * absolute error, and R^2 = 1 - SSE / SST (SST around each output's mean
 * over d; NaN when the targets do not vary). */
typedef struct qat_regression_metrics {
    double mse, mae, r2;
} qat_regression_metrics;
/* outputs: d->n x target_dim values, row i for example i of d (a view's
 * order). NaN for everything if d has no float targets. */
void qat_dataset_regression_metrics(const qat_dataset *d, const float *outputs,
                                    qat_regression_metrics *out);

/* ---- augmentation (images) ------------------------------------------------------------ */
typedef struct qat_augment_params {
    int crop_pad; /* pad by this many zeros on each side, crop back at a random offset */
    int hflip;    /* mirror left-right with probability 1/2 */
    int shift;    /* translate by up to this many pixels, the edge pixels extended */
    int cutout;   /* zero a square of this side at a random centre */
} qat_augment_params;

int qat_augment_active(const qat_augment_params *p);
/* Augments one HWC example in place (uint8 or float values), drawing from
 * a generator seeded by (seed, epoch, example): the same example in the same
 * epoch is augmented the same way whatever the batch, thread count or
 * resume. scratch holds h * w * c values of the type. */
void qat_augment_example(const qat_augment_params *p, uint64_t seed, int epoch, uint32_t example,
                         qat_data_type type, int h, int w, int c, void *values, void *scratch);

#endif
