/* Messages for HDF5 failures: the line of context from HDF5's error stack,
 * and the OS reason a file cannot be opened (HDF5 only says that it cannot). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "runtime/h5/h5_internal.h"

typedef struct {
    char *buf;
    size_t cap;
} last_ctx;

static herr_t keep_last(unsigned n, const H5E_error2_t *e, void *vctx)
{
    (void)n;
    last_ctx *c = vctx;
    if (e && e->desc && e->desc[0])
        snprintf(c->buf, c->cap, "%s", e->desc);
    return 0;
}

void qat_h5_last_error(char *buf, size_t cap)
{
    if (!cap)
        return;
    buf[0] = '\0';
    last_ctx c = {buf, cap};
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, keep_last, &c);
}

qat_status qat_h5_check_openable(const char *path, const char *what, qat_error *err)
{
    FILE *probe = fopen(path, "rb");
    if (!probe)
        return qat_fail(err, QAT_EINVAL, "%s: cannot open%s%s: %s", path, what[0] ? " " : "", what,
                        strerror(errno));
    fclose(probe);
    return QAT_OK;
}
