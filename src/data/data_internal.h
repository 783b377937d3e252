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

#endif
