/* Internals of src/data shared with its tests; not part of the public API. */
#ifndef QAT_DATA_INTERNAL_H
#define QAT_DATA_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "qat/data.h"
#include "qat/status.h"

/* Largest file or decompressed stream qat_read_file_maybe_gz accepts: the
 * biggest legal IDX payload plus room for any header. */
#define QAT_DATA_MAX_FILE_BYTES (QAT_IDX_MAX_BYTES + 64)

/* Inflates a whole gzip stream (one or more members) held in memory. Output
 * larger than max_out bytes is refused (the cap is a parameter so tests can
 * exercise it without a 2 GiB bomb). name is used in error messages.
 * Allocates *out (freed by the caller; non-NULL even when *out_len is 0). */
qat_status qat_data_gunzip(const uint8_t *in, size_t in_len, size_t max_out, const char *name,
                           uint8_t **out, size_t *out_len, qat_error *err);

/* Hands block p (malloc'd, or mapped with map_len bytes) to d: freed by
 * qat_dataset_free. At most QAT_DATA_BLOCKS per dataset. */
void qat_data_own(qat_dataset *d, void *p, size_t map_len);

/* Maps a whole regular file read-only (MAP_PRIVATE): what .npy inputs are
 * read through, so every thread shares the page cache instead of a copy.
 * An empty file is an error naming it. */
qat_status qat_data_map(const char *path, uint8_t **p, size_t *len, qat_error *err);

/* QAT_EINVAL naming path when bytes exceed available (the dataset would not
 * fit in memory); available SIZE_MAX never refuses. */
qat_status qat_data_check_memory(const char *path, size_t bytes, size_t available,
                                 qat_error *err);

/* The checks every loaded split gets: at least one example, labels below
 * num_classes (classification) or finite targets (regression), finite
 * float inputs; name is the file named in messages. */
qat_status qat_data_check_split(const qat_dataset *d, const char *inputs_name,
                                const char *targets_name, qat_error *err);

/* Labels below num_classes or finite targets for records from..to-1 of
 * d's label or target array (which may hold more records than d->n: an IDX
 * file's labels past a limit are checked too). */
qat_status qat_data_check_records(const qat_dataset *d, uint32_t from, uint32_t to,
                                  const char *targets_name, qat_error *err);

/* Keeps the first limit examples (limit 0 or >= n: all). */
void qat_data_limit(qat_dataset *d, uint32_t limit);

/* Builds the dataset's inputs from an n x (shape) array of type (rank 2:
 * flat features, 3: h x w, 4: h x w x c), taking ownership of data when
 * owned (else it points into memory someone else keeps). */
qat_status qat_data_set_inputs(qat_dataset *d, const char *name, qat_data_type type, int ndims,
                               const uint64_t *dims, void *data, qat_error *err);

#endif
