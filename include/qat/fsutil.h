/* Files that appear whole or not at all, and directory trees. POSIX C: part
 * of the runtime core, shared by every writer (checkpoints, model files, the
 * C export, sweep tables). */
#ifndef QAT_FSUTIL_H
#define QAT_FSUTIL_H

#include <stddef.h>
#include <stdio.h>

#include "qat/status.h"

/* A file written under a temporary name beside its final path and renamed
 * over it only when complete and on disk, so a reader, a crash or a kill -9
 * meets the old file or the whole new one. The temporary is
 * "<path>.tmp.<pid>": after a crash it may stay behind, and nothing reads it. */
typedef struct qat_atomic {
    const char *path; /* the final name; borrowed until commit or abort */
    char tmp[4096];   /* "<path>.tmp.<pid>" */
} qat_atomic;

/* Names a->tmp for path (QAT_EINVAL when too long). Creates nothing: the
 * caller, or a library such as HDF5, creates and writes a->tmp. */
qat_status qat_atomic_begin(qat_atomic *a, const char *path, qat_error *err);
/* fsyncs a->tmp, renames it over a->path and fsyncs the directory, so the
 * new name survives a power cut too. On failure a->tmp is removed and
 * a->path is untouched (QAT_EIO naming both and the OS reason). */
qat_status qat_atomic_commit(qat_atomic *a, qat_error *err);
/* Removes a->tmp after a failed write; a->path is untouched. */
void qat_atomic_abort(qat_atomic *a);

/* qat_atomic_begin, then a->tmp opened for writing ("w") into *f (NULL when
 * either fails). End with qat_atomic_fclose. */
qat_status qat_atomic_fopen(qat_atomic *a, const char *path, FILE **f, qat_error *err);
/* Closes f (from qat_atomic_fopen) and commits; a write error met on f
 * aborts instead, leaving a->path untouched. */
qat_status qat_atomic_fclose(qat_atomic *a, FILE *f, qat_error *err);

/* len bytes of buf become the file at path, atomically (as above). */
qat_status qat_write_file_atomic(const char *path, const void *buf, size_t len, qat_error *err);

/* Creates the directory path and any missing parents (mode 0777 less the
 * umask). An existing directory is fine; an existing non-directory is
 * QAT_EIO naming it. */
qat_status qat_mkdir_p(const char *path, qat_error *err);

#endif
