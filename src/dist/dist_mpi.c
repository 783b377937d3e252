/* The process group over MPI (built with -Dmpi). MPI is initialised only
 * when a launcher started the process (mpirun, or srun with PMI/PMIx): a
 * tool run by hand stays a plain one-process program that never touches
 * MPI, so every single-process path behaves exactly as without MPI. */
#include <limits.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qat/dist.h"

struct qat_dist {
    int mpi; /* MPI_Init was called */
    int rank, size;
    int *counts; /* 4 * size: the part exchanges' counts and displacements */
};

int qat_dist_built_with_mpi(void) { return 1; }

static int launched(void)
{
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK",
                                       "PMI_SIZE", NULL};
    for (int i = 0; vars[i]; i++)
        if (getenv(vars[i]))
            return 1;
    return 0;
}

qat_dist *qat_dist_init(int *argc, char ***argv)
{
    qat_dist *d = calloc(1, sizeof *d);
    if (!d || !launched()) {
        if (d)
            d->size = 1;
        return d;
    }
    /* Shared-memory messages between ranks of one node go through OpenMPI's
     * copy-in / copy-out buffers rather than its single copy by the kernel
     * (CMA, process_vm_readv): measured here (Linux VM, OpenMPI 4.1), every
     * page CMA read from a rank's parameters or gradients made that rank's
     * next writes to it about 3x slower (the sharded optimizer step 0.13 ->
     * 0.39 ms), and a W8A8 MNIST epoch over 2 ranks took 7.8 s instead of
     * 7.3. A choice of the user's (mpirun --mca, OMPI_MCA_ in the
     * environment) stands. */
    setenv("OMPI_MCA_btl_vader_single_copy_mechanism", "none", 0);
    MPI_Init(argc, argv);
    /* errors are ours to report: a failed call aborts the job, not one rank */
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_ARE_FATAL);
    MPI_Comm_rank(MPI_COMM_WORLD, &d->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &d->size);
    d->mpi = 1;
    d->counts = malloc(4 * (size_t)d->size * sizeof *d->counts);
    QAT_ASSERT(d->counts);
    return d;
}

void qat_dist_finalize(qat_dist *d)
{
    if (d && d->mpi)
        MPI_Finalize();
    if (d)
        free(d->counts);
    free(d);
}

__attribute__((noreturn)) static void abort_now(qat_dist *d, int code)
{
    fflush(stdout);
    fflush(stderr);
    if (d && d->mpi && d->size > 1)
        MPI_Abort(MPI_COMM_WORLD, code);
    if (d && d->mpi)
        MPI_Finalize();
    exit(code);
}

/* Ranks other than 0 wait a moment first: when rank 0 fails too it aborts
 * the job alone (several ranks in MPI_Abort at once can crash OpenMPI
 * 4.1's mpirun, and the job's exit status with it). */
static void grace(const qat_dist *d)
{
    if (d && d->mpi && d->rank != 0)
        sleep(3);
}

void qat_dist_abort(qat_dist *d, int code)
{
    grace(d);
    abort_now(d, code);
}

int qat_dist_rank(const qat_dist *d) { return d->rank; }
int qat_dist_size(const qat_dist *d) { return d->size; }

void qat_dist_allgather(qat_dist *d, const void *send, size_t bytes, void *recv)
{
    if (!d->mpi) {
        memmove(recv, send, bytes);
        return;
    }
    QAT_ASSERT(bytes <= INT_MAX);
    MPI_Allgather(send, (int)bytes, MPI_BYTE, recv, (int)bytes, MPI_BYTE, MPI_COMM_WORLD);
}

/* MPI's counts and displacements are ints, in bytes: parts of at most
 * INT_MAX bytes; into cnt[0..size) and displ[0..size). */
static void part_ints(const qat_dist *d, const size_t *off, size_t elem, int *cnt, int *displ)
{
    for (int r = 0; r < d->size; r++) {
        QAT_ASSERT(off[r + 1] >= off[r] && off[r + 1] * elem <= INT_MAX);
        cnt[r] = (int)((off[r + 1] - off[r]) * elem);
        displ[r] = (int)(off[r] * elem);
    }
}

void qat_dist_alltoall_parts(qat_dist *d, const void *send, const size_t *off, size_t elem,
                             void *recv)
{
    size_t mine = (off[d->rank + 1] - off[d->rank]) * elem;
    if (!d->mpi) {
        memmove(recv, (const char *)send + off[0] * elem, mine);
        return;
    }
    int R = d->size, *sc = d->counts, *sd = sc + R, *rc = sd + R, *rd = rc + R;
    part_ints(d, off, elem, sc, sd);
    QAT_ASSERT((size_t)R * mine <= INT_MAX);
    for (int r = 0; r < R; r++) {
        rc[r] = (int)mine;
        rd[r] = r * (int)mine;
    }
    MPI_Alltoallv(send, sc, sd, MPI_BYTE, recv, rc, rd, MPI_BYTE, MPI_COMM_WORLD);
}

void qat_dist_allgather_parts(qat_dist *d, void *buf, const size_t *off, size_t elem)
{
    if (!d->mpi)
        return;
    int *cnt = d->counts, *displ = cnt + d->size;
    part_ints(d, off, elem, cnt, displ);
    MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf, cnt, displ, MPI_BYTE, MPI_COMM_WORLD);
}

void qat_dist_bcast(qat_dist *d, void *buf, size_t bytes, int root)
{
    if (!d->mpi)
        return;
    QAT_ASSERT(bytes <= INT_MAX);
    MPI_Bcast(buf, (int)bytes, MPI_BYTE, root, MPI_COMM_WORLD);
}

void qat_dist_barrier(qat_dist *d)
{
    if (d->mpi)
        MPI_Barrier(MPI_COMM_WORLD);
}

void qat_dist_send(qat_dist *d, int to, int tag, const void *buf, size_t bytes)
{
    QAT_ASSERT(d->mpi && bytes <= INT_MAX);
    MPI_Send(buf, (int)bytes, MPI_BYTE, to, tag, MPI_COMM_WORLD);
}

int qat_dist_recv(qat_dist *d, int from, int tag, void *buf, size_t bytes, size_t *got)
{
    QAT_ASSERT(d->mpi && bytes <= INT_MAX);
    MPI_Status s;
    MPI_Recv(buf, (int)bytes, MPI_BYTE, from < 0 ? MPI_ANY_SOURCE : from, tag, MPI_COMM_WORLD, &s);
    int n = 0;
    MPI_Get_count(&s, MPI_BYTE, &n);
    *got = (size_t)n;
    return s.MPI_SOURCE;
}

int qat_dist_probe(qat_dist *d, int tag)
{
    if (!d->mpi)
        return -1;
    int flag = 0;
    MPI_Status s;
    MPI_Iprobe(MPI_ANY_SOURCE, tag, MPI_COMM_WORLD, &flag, &s);
    return flag ? s.MPI_SOURCE : -1;
}

void qat_dist_fail(qat_dist *d, int code, const char *tool, const char *msg)
{
    grace(d); /* killed here when rank 0 failed too: its message is the one */
    if (d->rank != 0)
        fprintf(stderr, "%s: rank %d: error: %s\n", tool, d->rank, msg);
    else
        fprintf(stderr, "%s: error: %s\n", tool, msg);
    abort_now(d, code);
}
