/* Atomic file replacement and mkdir -p (include/qat/fsutil.h). Every writer
 * of a file someone else reads goes through here, so each gets the same
 * durability: data fsynced before the rename, the rename fsynced after. */
#include "qat/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* fsync by name (a library such as HDF5 wrote and closed the file); keeps
 * fsync's errno. */
static int sync_path(const char *p, int flags)
{
    int fd = open(p, flags | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    errno = e;
    return rc;
}

qat_status qat_atomic_begin(qat_atomic *a, const char *path, qat_error *err)
{
    a->path = path;
    int n = snprintf(a->tmp, sizeof a->tmp, "%s.tmp.%ld", path, (long)getpid());
    if (n < 0 || (size_t)n >= sizeof a->tmp) {
        a->tmp[0] = '\0';
        return qat_fail(err, QAT_EINVAL, "%s: path too long", path);
    }
    return QAT_OK;
}

qat_status qat_atomic_commit(qat_atomic *a, qat_error *err)
{
    if (sync_path(a->tmp, O_RDONLY) != 0) {
        int e = errno;
        qat_atomic_abort(a);
        return qat_fail(err, QAT_EIO, "%s: fsync of %s failed: %s", a->path, a->tmp, strerror(e));
    }
    if (rename(a->tmp, a->path) != 0) {
        int e = errno;
        qat_atomic_abort(a);
        return qat_fail(err, QAT_EIO, "%s: cannot rename %s into place: %s", a->path, a->tmp,
                        strerror(e));
    }
    /* The file is in place under its name now, so a failure here is not
     * reported: it only weakens the promise against a power cut, and some
     * file systems refuse fsync on a directory. */
    char dir[sizeof a->tmp];
    snprintf(dir, sizeof dir, "%s", a->path);
    sync_path(dirname(dir), O_RDONLY | O_DIRECTORY);
    return QAT_OK;
}

void qat_atomic_abort(qat_atomic *a)
{
    if (a->tmp[0])
        unlink(a->tmp);
}

qat_status qat_atomic_fopen(qat_atomic *a, const char *path, FILE **f, qat_error *err)
{
    *f = NULL;
    qat_status st = qat_atomic_begin(a, path, err);
    if (st != QAT_OK)
        return st;
    *f = fopen(a->tmp, "w");
    if (!*f)
        return qat_fail(err, QAT_EIO, "%s: cannot create %s: %s", path, a->tmp, strerror(errno));
    return QAT_OK;
}

qat_status qat_atomic_fclose(qat_atomic *a, FILE *f, qat_error *err)
{
    errno = 0;
    int bad = ferror(f) != 0 || fflush(f) != 0;
    int e = errno;
    if (fclose(f) != 0 && !bad) {
        bad = 1;
        e = errno;
    }
    if (bad) {
        qat_atomic_abort(a);
        return qat_fail(err, QAT_EIO, "%s: cannot write %s: %s", a->path, a->tmp,
                        e ? strerror(e) : "write error");
    }
    return qat_atomic_commit(a, err);
}

qat_status qat_write_file_atomic(const char *path, const void *buf, size_t len, qat_error *err)
{
    qat_atomic a;
    FILE *f;
    qat_status st = qat_atomic_fopen(&a, path, &f, err);
    if (st != QAT_OK)
        return st;
    if (len && fwrite(buf, 1, len, f) != len) {
        int e = errno;
        fclose(f);
        qat_atomic_abort(&a);
        return qat_fail(err, QAT_EIO, "%s: cannot write %s: %s", path, a.tmp, strerror(e));
    }
    return qat_atomic_fclose(&a, f, err);
}

qat_status qat_mkdir_p(const char *path, qat_error *err)
{
    char buf[4096];
    int n = snprintf(buf, sizeof buf, "%s", path);
    if (n < 0 || (size_t)n >= sizeof buf)
        return qat_fail(err, QAT_EINVAL, "%s: path too long", path);
    if (!buf[0])
        return qat_fail(err, QAT_EINVAL, "empty directory name");
    /* every parent (skipping a leading '/'), then path itself */
    for (char *p = buf + 1;; p++) {
        if (*p && *p != '/')
            continue;
        char c = *p;
        *p = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST)
            return qat_fail(err, QAT_EIO, "%s: cannot create directory: %s", buf, strerror(errno));
        *p = c;
        if (!c)
            break;
    }
    /* mkdir's EEXIST also covers a file of that name */
    struct stat sb;
    if (stat(buf, &sb) != 0)
        return qat_fail(err, QAT_EIO, "%s: cannot create directory: %s", buf, strerror(errno));
    if (!S_ISDIR(sb.st_mode))
        return qat_fail(err, QAT_EIO, "%s: cannot create directory: %s", buf, strerror(ENOTDIR));
    return QAT_OK;
}
