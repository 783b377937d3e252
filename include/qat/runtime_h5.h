/* HDF5 model files (docs/FORMAT.md). Lives beside the runtime core, not in
 * it: only this layer links HDF5. */
#ifndef QAT_RUNTIME_H5_H
#define QAT_RUNTIME_H5_H

#include "qat/runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Reads and validates a model file into an owned description
 * (qat_rt_owned_desc, runtime.h). Every problem
 * (missing dataset, wrong dtype or shape, absurd attribute) is QAT_EINVAL
 * with the file and the field named. HDF5's own error printing is off during
 * the call; after a failed call it stays off (HDF5 1.10 would otherwise print
 * spurious shutdown errors for some corrupt files). */
QAT_RT_API qat_status qat_rt_h5_read_desc(const char *path, qat_rt_owned_desc *out,
                                          qat_error *err);
/* Same, from an HDF5 file image held in memory. */
QAT_RT_API qat_status qat_rt_h5_read_desc_memory(const void *buf, size_t len,
                                                 const char *name, qat_rt_owned_desc *out,
                                                 qat_error *err);

/* Convenience: read + qat_rt_model_create. */
QAT_RT_API qat_status qat_rt_h5_load(const char *path, qat_rt_model **out, qat_error *err);
QAT_RT_API qat_status qat_rt_h5_load_memory(const void *buf, size_t len, const char *name,
                                            qat_rt_model **out, qat_error *err);

/* The root `format` attribute of any qat HDF5 file ("qat-int8-model" for a
 * model file, "qat-checkpoint" for a training checkpoint) into buf (cap
 * bytes); QAT_EINVAL naming the file if it is missing, unreadable, not a
 * scalar ASCII/UTF-8 string, or longer than cap - 1 bytes. Lets tools accept
 * either kind of file. */
QAT_RT_API qat_status qat_rt_h5_file_format(const char *path, char *buf, size_t cap,
                                            qat_error *err);

/* Writes d to path atomically (temp file, fsync, rename); weight datasets use
 * HDF5's deflate filter. Validates d first (qat_rt_model_create's checks). */
QAT_RT_API qat_status qat_rt_h5_write(const char *path, const qat_rt_model_desc *d,
                                      qat_error *err);

#ifdef __cplusplus
}
#endif
#endif
