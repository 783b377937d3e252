/* HDF5 datasets: the one data format that needs HDF5, kept apart from
 * src/data so that what links only the other formats stays HDF5-free. */
#ifndef QAT_DATA_H5_H
#define QAT_DATA_H5_H

#include "qat/data.h"

/* A qat_data_h5_reader (data.h): reads x_name (uint8 or float32/float64
 * inputs, N x F, N x H x W or N x H x W x C) and y_name (integer labels of
 * shape N, or with regression float targets N or N x K) from group or the
 * root, each into one buffer (the training threads share it). Wrong rank,
 * type or count, and a dataset larger than mem_available, are errors naming
 * the file and the dataset's path. */
qat_status qat_data_h5_read(const char *path, const char *group, int group_required,
                            const char *x_name, const char *y_name, int regression,
                            int num_classes, size_t mem_available, qat_dataset *out,
                            qat_error *err);

/* The same on a file image held in memory (name is used in messages): the
 * fuzz target's entry. */
qat_status qat_data_h5_read_image(const void *buf, size_t len, const char *name,
                                  const char *group, int group_required, const char *x_name,
                                  const char *y_name, int regression, int num_classes,
                                  qat_dataset *out, qat_error *err);

#endif
