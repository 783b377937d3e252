/* qat-sweep over MPI ranks (mpirun -np N qat-sweep): every rank runs one
 * qat-train at a time; rank 0 hands out the runs as ranks free up (it runs
 * them too, between answering), collects each run's outcome and, back in
 * the CLI, writes the tables and plots. The runs' folders must be on a
 * file system every rank sees (as under Slurm). Resume and failure
 * isolation are the runner's: cached runs are not run again, a failed run
 * is one outcome, and a rank only ends when rank 0 says there is no more. */
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "qat/clock.h"
#include "qat/fsutil.h"
#include "sweep_internal.h"

enum { TAG_DONE = 71, TAG_RUN = 72 };

/* A rank's report: the run it finished (-1: none yet) and how it went. */
typedef struct done_msg {
    int run;
    qat_sweep_outcome out;
} done_msg;

static double run_blocking(const qat_sweep *sw, const qat_sweep_opts *o, int i,
                           qat_sweep_outcome *out)
{
    double t = qat_clock_seconds();
    pid_t pid = qat_sweep_start_run(sw, o, i, out);
    int ws;
    while (pid > 0 && waitpid(pid, &ws, 0) < 0) {
    }
    if (pid > 0)
        qat_sweep_reap_run(sw, o, i, ws, qat_clock_seconds() - t, out);
    return qat_clock_seconds() - t;
}

static void worker(const qat_sweep *sw, const qat_sweep_opts *o, qat_dist *d,
                   qat_sweep_outcome *out)
{
    done_msg *m = calloc(1, sizeof *m);
    QAT_ASSERT(m);
    m->run = -1;
    for (;;) {
        qat_dist_send(d, 0, TAG_DONE, m, sizeof *m);
        int i;
        size_t got;
        qat_dist_recv(d, 0, TAG_RUN, &i, sizeof i, &got);
        if (i < 0)
            break;
        run_blocking(sw, o, i, &out[i]);
        m->run = i;
        m->out = out[i];
    }
    free(m);
}

static void coordinator(const qat_sweep *sw, const qat_sweep_opts *o, qat_dist *d, const int *todo,
                        int ntodo, int done, qat_sweep_outcome *out)
{
    done_msg *m = calloc(1, sizeof *m);
    QAT_ASSERT(m);
    double t0 = qat_clock_seconds(), started = 0;
    int next = 0, waiting = qat_dist_size(d) - 1, mine = -1;
    pid_t pid = 0;
    while (waiting > 0 || pid > 0 || next < ntodo) {
        int busy = 0;
        if (pid <= 0 && next < ntodo) { /* rank 0 runs one too */
            mine = todo[next++];
            started = qat_clock_seconds();
            pid = qat_sweep_start_run(sw, o, mine, &out[mine]);
            if (pid < 0)
                qat_sweep_report(sw, o, mine, &out[mine], ++done, t0);
            busy = 1;
        }
        int from = qat_dist_probe(d, TAG_DONE);
        if (from >= 0) {
            size_t got;
            qat_dist_recv(d, from, TAG_DONE, m, sizeof *m, &got);
            if (m->run >= 0) {
                out[m->run] = m->out;
                qat_sweep_report(sw, o, m->run, &out[m->run], ++done, t0);
            }
            int i = next < ntodo ? todo[next++] : -1;
            qat_dist_send(d, from, TAG_RUN, &i, sizeof i);
            waiting -= i < 0;
            busy = 1;
        }
        int ws;
        if (pid > 0 && waitpid(pid, &ws, WNOHANG) == pid) {
            qat_sweep_reap_run(sw, o, mine, ws, qat_clock_seconds() - started, &out[mine]);
            qat_sweep_report(sw, o, mine, &out[mine], ++done, t0);
            pid = 0;
            busy = 1;
        }
        /* a run takes a second or more; a waiting rank (spinning in its
         * receive) or a finished run of ours waits 2.5 ms on average, and
         * 200 idle wake-ups a second cost nothing measurable */
        if (!busy)
            nanosleep(&(struct timespec){0, 5 * 1000 * 1000}, NULL);
    }
    free(m);
}

qat_status qat_sweep_execute_ranks(const qat_sweep *sw, const qat_sweep_opts *o, qat_dist *d,
                                   qat_sweep_outcome *out, qat_error *err)
{
    if (qat_dist_size(d) == 1)
        return qat_sweep_execute(sw, o, out, err);
    int rank = qat_dist_rank(d);
    qat_status st = QAT_OK;
    if (rank == 0) {
        st = qat_mkdir_p(o->out_dir, err);
        if (st == QAT_OK && access(o->train_exe, X_OK) != 0)
            st = qat_fail(err, QAT_EIO, "%s: cannot run qat-train", o->train_exe);
    }
    /* every rank learns whether rank 0 can go on, so none is left waiting */
    int ok = st == QAT_OK;
    qat_dist_bcast(d, &ok, sizeof ok, 0);
    if (!ok)
        return rank == 0 ? st : qat_fail(err, QAT_EIO, "rank 0 could not start the sweep");
    int *todo = calloc((size_t)sw->nruns + 1, sizeof *todo);
    QAT_ASSERT(todo);
    int ntodo = qat_sweep_pending(sw, o, out, todo);
    if (rank == 0) {
        if (o->log) {
            fprintf(o->log, "qat-sweep: %s: %d runs", sw->name, sw->nruns);
            if (sw->nruns - ntodo)
                fprintf(o->log, ", %d finished earlier (cached)", sw->nruns - ntodo);
            fprintf(o->log, "; running %d over %d MPI ranks, one at a time each, into %s/\n",
                    ntodo, qat_dist_size(d), o->out_dir);
            fflush(o->log);
        }
        coordinator(sw, o, d, todo, ntodo, sw->nruns - ntodo, out);
    } else {
        worker(sw, o, d, out);
    }
    free(todo);
    return QAT_OK;
}
