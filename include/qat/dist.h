/* The process group a data-parallel run or a sweep spreads over: MPI ranks
 * when the tools are built with -Dmpi and started by mpirun / srun, else a
 * single process. Every collective here is a plain byte exchange; the
 * arithmetic on what arrives (sums in rank order, so a run is
 * bit-reproducible for a given rank count) is the caller's. Only src/train
 * and src/sweep and the mains use it; the runtime never does. */
#ifndef QAT_DIST_H
#define QAT_DIST_H

#include <stddef.h>

#include "qat/status.h"

typedef struct qat_dist qat_dist;

/* 1 when the tools were built with MPI (-Dmpi). */
int qat_dist_built_with_mpi(void);
/* Joins the process group: MPI_Init when built with MPI and started by a
 * launcher (mpirun, srun: the launcher's environment says so), else a
 * one-process group with no MPI call at all. NULL on out of memory. */
qat_dist *qat_dist_init(int *argc, char ***argv);
/* MPI_Finalize when MPI was initialised; frees d (may be NULL). */
void qat_dist_finalize(qat_dist *d);
/* Ends every rank's process with exit status code (MPI_Abort; ranks
 * other than 0 wait a moment first, see qat_dist_fail), so one
 * rank's failure never leaves the others waiting in a collective. Without
 * MPI: exit(code). Never returns. */
void qat_dist_abort(qat_dist *d, int code) __attribute__((noreturn));
/* Reports a failure and ends every rank with exit status code: rank 0
 * prints "TOOL: error: MSG" and aborts at once; another rank first waits a
 * moment, so an error every rank hits (a bad config) is reported once, by
 * rank 0 (two ranks aborting together can crash OpenMPI 4.1's mpirun), and
 * only an error of its own is printed as "TOOL: rank R: error: MSG". One
 * process: prints and exits. Never returns. */
void qat_dist_fail(qat_dist *d, int code, const char *tool, const char *msg)
    __attribute__((noreturn));
int qat_dist_rank(const qat_dist *d);
int qat_dist_size(const qat_dist *d);
/* recv (size * bytes) receives every rank's send (bytes each), in rank
 * order, on every rank. */
void qat_dist_allgather(qat_dist *d, const void *send, size_t bytes, void *recv);
/* Exchanges over a buffer of elements of elem bytes split into size parts,
 * part r its elements [off[r], off[r + 1]) (off: size + 1 entries, the
 * same on every rank). alltoall: recv (size * this rank's part) receives
 * every rank's copy of this rank's part of send, in rank order
 * (MPI_Alltoallv). allgather: part r of buf becomes rank r's, on every
 * rank (MPI_Allgatherv in place). Neither allocates. */
void qat_dist_alltoall_parts(qat_dist *d, const void *send, const size_t *off, size_t elem,
                             void *recv);
void qat_dist_allgather_parts(qat_dist *d, void *buf, const size_t *off, size_t elem);
/* buf (bytes) on every rank becomes root's. */
void qat_dist_bcast(qat_dist *d, void *buf, size_t bytes, int root);
void qat_dist_barrier(qat_dist *d);
/* Point to point (qat-sweep's work queue): a message of at most bytes. */
void qat_dist_send(qat_dist *d, int to, int tag, const void *buf, size_t bytes);
/* Receives a message with tag from rank `from` (-1: any rank); returns the
 * sender and *got the length. */
int qat_dist_recv(qat_dist *d, int from, int tag, void *buf, size_t bytes, size_t *got);
/* The rank whose message with tag is waiting, or -1 (does not block). */
int qat_dist_probe(qat_dist *d, int tag);

#endif
