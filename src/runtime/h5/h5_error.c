/* Turning HDF5's error stack into a line of context for our messages. */
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
