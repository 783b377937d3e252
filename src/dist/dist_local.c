/* The one-process group: what the tools use when built without MPI. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qat/dist.h"

struct qat_dist {
    int unused;
};

int qat_dist_built_with_mpi(void) { return 0; }
qat_dist *qat_dist_init(int *argc, char ***argv) { return calloc(1, sizeof(qat_dist)); }
void qat_dist_finalize(qat_dist *d) { free(d); }
void qat_dist_abort(qat_dist *d, int code) { exit(code); }
int qat_dist_rank(const qat_dist *d) { return 0; }
int qat_dist_size(const qat_dist *d) { return 1; }
void qat_dist_allgather(qat_dist *d, const void *send, size_t bytes, void *recv)
{
    memmove(recv, send, bytes);
}
void qat_dist_alltoall_parts(qat_dist *d, const void *send, const size_t *off, size_t elem,
                             void *recv)
{
    memmove(recv, (const char *)send + off[0] * elem, (off[1] - off[0]) * elem);
}
void qat_dist_allgather_parts(qat_dist *d, void *buf, const size_t *off, size_t elem) {}
void qat_dist_bcast(qat_dist *d, void *buf, size_t bytes, int root) {}
void qat_dist_barrier(qat_dist *d) {}
void qat_dist_send(qat_dist *d, int to, int tag, const void *buf, size_t bytes)
{
    QAT_ASSERT(!"qat_dist_send: a one-process group has no one to send to");
}
int qat_dist_recv(qat_dist *d, int from, int tag, void *buf, size_t bytes, size_t *got)
{
    QAT_ASSERT(!"qat_dist_recv: a one-process group has no one to hear from");
    return -1;
}
int qat_dist_probe(qat_dist *d, int tag) { return -1; }

void qat_dist_fail(qat_dist *d, int code, const char *tool, const char *msg)
{
    fprintf(stderr, "%s: error: %s\n", tool, msg);
    exit(code);
}
