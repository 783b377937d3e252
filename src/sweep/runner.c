/* Running a sweep: one qat-train process per run, a few at a time.
 *
 * Each run's folder records what the sweep asked for (sweep-config.ini: the
 * resolved config, sweep-overrides.txt: the overrides) and how it ended
 * (sweep-status). A later invocation skips a run only when its status is ok,
 * its summary.json reads back, its overrides are the same and its resolved
 * config agrees with what the sweep asks for now, so an edited grid, base
 * config or --set never reuses a stale folder. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "qat/clock.h"
#include "qat/fsutil.h"
#include "qat/ini.h"
#include "qat/sweep.h"
#include "sweep_internal.h"

#define STATUS_FILE "sweep-status"
#define CONFIG_FILE "sweep-config.ini"
#define OVERRIDES_FILE "sweep-overrides.txt"

static void fmt_duration(double s, char *buf, size_t n)
{
    if (!(s >= 0) || s > 1e7)
        snprintf(buf, n, "?");
    else if (s < 60)
        snprintf(buf, n, "%.1fs", s);
    else if (s < 3600)
        snprintf(buf, n, "%dm%02ds", (int)s / 60, (int)s % 60);
    else
        snprintf(buf, n, "%dh%02dm", (int)s / 3600, (int)s % 3600 / 60);
}

static void run_path(const qat_sweep_opts *o, const qat_sweep_run *r, const char *file, char *buf,
                     size_t n)
{
    snprintf(buf, n, "%s/%s/%s", o->out_dir, r->name, file);
}

static void blank_outcome(qat_sweep_outcome *o)
{
    memset(o, 0, sizeof *o);
    o->wall_seconds = o->float_acc = o->fq_acc = o->int8_acc = o->agreement = NAN;
    o->bytes_int8 = o->sparsity = o->train_seconds = o->ptq_seconds = NAN;
}

/* The overrides recorded in sweep-overrides.txt are exactly r's, in order
 * (comment lines and the base line aside: the same base may be named by
 * another relative path). */
static int same_overrides(const char *path, const qat_sweep_run *r)
{
    char *text = qat_sweep_read_file(path, NULL);
    if (!text)
        return 0;
    int k = 0, ok = 1;
    for (char *save = NULL, *l = strtok_r(text, "\n", &save); l && ok;
         l = strtok_r(NULL, "\n", &save)) {
        if (l[0] == '#' || strncmp(l, "base ", 5) == 0)
            continue;
        ok = k < r->nsets && strcmp(l, r->sets[k]) == 0;
        k++;
    }
    free(text);
    return ok && k == r->nsets;
}

/* Every key both resolved configs have holds the same value. A key only one
 * of them has came with another qat version's schema: new keys arrive with
 * defaults that keep the old behaviour, so a qat update alone does not
 * retrain a whole sweep (a run's own overrides are compared separately). */
static int same_config(const char *stored, const char *now_text)
{
    qat_ini *a = NULL, *b = NULL;
    qat_error e;
    int ok = qat_ini_parse(stored, strlen(stored), "stored", &a, &e) == QAT_OK &&
             qat_ini_parse(now_text, strlen(now_text), "resolved", &b, &e) == QAT_OK;
    for (int i = 0; ok && i < b->nsections; i++) {
        qat_ini_section *sb = &b->sections[i], *sa = qat_ini_find(a, sb->name);
        for (int j = 0; sa && ok && j < sb->nentries; j++) {
            qat_ini_entry *ea = qat_ini_section_get(sa, sb->entries[j].key);
            ok = !ea || strcmp(ea->value, sb->entries[j].value) == 0;
        }
    }
    qat_ini_free(a);
    qat_ini_free(b);
    return ok;
}

/* A finished run: ok status, the same overrides, a resolved config that
 * agrees, a readable summary. */
static int is_finished(const qat_sweep_opts *o, const qat_sweep_run *r, qat_sweep_outcome *out)
{
    char p[4200];
    run_path(o, r, STATUS_FILE, p, sizeof p);
    char *status = qat_sweep_read_file(p, NULL);
    int ok = status && strncmp(status, "ok\n", 3) == 0;
    free(status);
    run_path(o, r, OVERRIDES_FILE, p, sizeof p);
    if (!ok || !same_overrides(p, r))
        return 0;
    run_path(o, r, CONFIG_FILE, p, sizeof p);
    char *cfg = qat_sweep_read_file(p, NULL);
    ok = cfg && same_config(cfg, r->resolved);
    free(cfg);
    if (!ok)
        return 0;
    run_path(o, r, "summary.json", p, sizeof p);
    qat_error e;
    if (qat_sweep_read_summary(p, out, &e) != QAT_OK) {
        blank_outcome(out);
        return 0;
    }
    out->status = QAT_RUN_CACHED;
    return 1;
}

static void record_failure(qat_sweep_outcome *out, const char *desc, const char *msg)
{
    out->status = QAT_RUN_FAILED;
    snprintf(out->exit_desc, sizeof out->exit_desc, "%s", desc);
    snprintf(out->error, sizeof out->error, "%s", msg);
}

/* Clears what an earlier attempt left (so nothing stale is mistaken for this
 * run's output) and records what this attempt asks for. */
static qat_status prepare(const qat_sweep *sw, const qat_sweep_opts *o, const qat_sweep_run *r,
                          qat_error *err)
{
    static const char *const stale[] = {STATUS_FILE, "summary.json", "metrics.csv",
                                        "checkpoint.h5", "model.int8.h5", "config.ini",
                                        "stdout.log", "stderr.log"};
    char p[4200];
    snprintf(p, sizeof p, "%s/%s", o->out_dir, r->name);
    qat_status st = qat_mkdir_p(p, err);
    if (st != QAT_OK)
        return st;
    for (size_t i = 0; i < sizeof stale / sizeof stale[0]; i++) {
        run_path(o, r, stale[i], p, sizeof p);
        if (unlink(p) != 0 && errno != ENOENT)
            return qat_fail(err, QAT_EIO, "%s: cannot remove: %s", p, strerror(errno));
    }
    char *text = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&text, &len);
    if (!m)
        return qat_fail(err, QAT_ENOMEM, "out of memory");
    fprintf(m, "# run %s of sweep %s (%s): the base config and the overrides applied to it, "
            "in order\nbase %s\n", r->name, sw->name, sw->path, sw->base);
    for (int i = 0; i < r->nsets; i++)
        fprintf(m, "%s\n", r->sets[i]);
    fclose(m);
    if (!text)
        return qat_fail(err, QAT_ENOMEM, "out of memory");
    run_path(o, r, OVERRIDES_FILE, p, sizeof p);
    st = qat_write_file_atomic(p, text, len, err);
    free(text);
    run_path(o, r, CONFIG_FILE, p, sizeof p);
    if (st == QAT_OK)
        st = qat_write_file_atomic(p, r->resolved, strlen(r->resolved), err);
    run_path(o, r, STATUS_FILE, p, sizeof p);
    if (st == QAT_OK)
        st = qat_write_file_atomic(p, "running\n", strlen("running\n"), err);
    return st;
}

/* fork + exec of qat-train with stdout/stderr into the run's folder. */
static pid_t launch(const qat_sweep *sw, const qat_sweep_opts *o, const qat_sweep_run *r,
                    qat_error *err)
{
    char dir[4200], outp[4200], errp[4200];
    snprintf(dir, sizeof dir, "%s/%s", o->out_dir, r->name);
    run_path(o, r, "stdout.log", outp, sizeof outp);
    run_path(o, r, "stderr.log", errp, sizeof errp);
    /* everything the child needs is built before fork */
    const char **argv = calloc((size_t)(2 * r->nsets + 6), sizeof *argv);
    if (!argv) {
        qat_fail(err, QAT_ENOMEM, "out of memory");
        return -1;
    }
    int k = 0;
    argv[k++] = o->train_exe;
    argv[k++] = sw->base;
    for (int i = 0; i < r->nsets; i++) {
        argv[k++] = "--set";
        argv[k++] = r->sets[i];
    }
    argv[k++] = "--out";
    argv[k++] = dir;
    argv[k] = NULL;
    /* under mpirun the launcher's variables would make the run think it is
     * one of the sweep's ranks: it gets the environment without them */
    extern char **environ;
    size_t nenv = 0;
    while (environ[nenv])
        nenv++;
    char **envp = calloc(nenv + 1, sizeof *envp);
    if (!envp) {
        free(argv);
        qat_fail(err, QAT_ENOMEM, "out of memory");
        return -1;
    }
    for (size_t i = 0, j = 0; i < nenv; i++)
        if (strncmp(environ[i], "OMPI_", 5) && strncmp(environ[i], "PMIX_", 5) &&
            strncmp(environ[i], "PMI_", 4))
            envp[j++] = environ[i];
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        /* a killed sweep takes its runs with it */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent)
            _exit(126);
        int in = open("/dev/null", O_RDONLY);
        int fo = open(outp, O_WRONLY | O_CREAT | O_TRUNC, 0666);
        int fe = open(errp, O_WRONLY | O_CREAT | O_TRUNC, 0666);
        if (in < 0 || fo < 0 || fe < 0 || dup2(in, 0) < 0 || dup2(fo, 1) < 0 || dup2(fe, 2) < 0)
            _exit(126);
        execve(o->train_exe, (char *const *)argv, envp);
        dprintf(2, "qat-sweep: cannot run %s: %s\n", o->train_exe, strerror(errno));
        _exit(127);
    }
    free(argv);
    free(envp);
    if (pid < 0)
        qat_fail(err, QAT_EINTERNAL, "fork: %s", strerror(errno));
    return pid;
}

/* The last few non-empty lines of a log, " | "-joined. */
static void log_tail(const char *path, char *out, size_t n)
{
    out[0] = '\0';
    char *text = qat_sweep_read_file(path, NULL);
    if (!text)
        return;
    const char *lines[3];
    size_t lens[3];
    int got = 0;
    char *e = text + strlen(text);
    while (e > text && got < 3) {
        while (e > text && (e[-1] == '\n' || e[-1] == '\r' || e[-1] == ' '))
            e--;
        char *b = e;
        while (b > text && b[-1] != '\n')
            b--;
        if (e > b) {
            lines[got] = b;
            lens[got++] = (size_t)(e - b);
        }
        e = b;
    }
    size_t len = 0;
    for (int i = got - 1; i >= 0 && len + 1 < n; i--) {
        int w = snprintf(out + len, n - len, "%s%.*s", len ? " | " : "", (int)lens[i], lines[i]);
        len = w < 0 ? n : len + (size_t)w;
    }
    for (char *p = out; *p; p++)
        if (*p == '\t')
            *p = ' ';
    free(text);
}

/* Reaps a finished process into its outcome and status file. */
static void complete(const qat_sweep_opts *o, const qat_sweep_run *r, int ws, double secs,
                     qat_sweep_outcome *out)
{
    char p[4200], desc[64] = "exit 0";
    qat_error e;
    out->wall_seconds = secs;
    if (WIFEXITED(ws))
        snprintf(desc, sizeof desc, "exit %d", WEXITSTATUS(ws));
    else if (WIFSIGNALED(ws))
        snprintf(desc, sizeof desc, "killed by signal %d", WTERMSIG(ws));
    if (WIFEXITED(ws) && WEXITSTATUS(ws) == 0) {
        run_path(o, r, "summary.json", p, sizeof p);
        if (qat_sweep_read_summary(p, out, &e) == QAT_OK)
            out->status = QAT_RUN_OK;
        else
            record_failure(out, desc, e.msg);
    } else {
        char tail[sizeof out->error];
        run_path(o, r, "stderr.log", p, sizeof p);
        log_tail(p, tail, sizeof tail);
        if (!tail[0])
            snprintf(tail, sizeof tail, "no error output; see %.900s", p);
        record_failure(out, desc, tail);
    }
    char text[sizeof out->error + 128];
    if (out->status == QAT_RUN_OK)
        snprintf(text, sizeof text, "ok\n");
    else
        snprintf(text, sizeof text, "failed\n%s\n%s\n", out->exit_desc, out->error);
    run_path(o, r, STATUS_FILE, p, sizeof p);
    if (qat_write_file_atomic(p, text, strlen(text), &e) != QAT_OK && o->log)
        fprintf(o->log, "qat-sweep: warning: %s\n", e.msg);
}

pid_t qat_sweep_start_run(const qat_sweep *sw, const qat_sweep_opts *o, int i,
                          qat_sweep_outcome *out)
{
    qat_error e;
    pid_t pid = -1;
    if (prepare(sw, o, &sw->runs[i], &e) == QAT_OK)
        pid = launch(sw, o, &sw->runs[i], &e);
    if (pid < 0) /* this run cannot start; the others still can */
        record_failure(out, "not started", e.msg);
    return pid;
}

void qat_sweep_reap_run(const qat_sweep *sw, const qat_sweep_opts *o, int i, int ws, double secs,
                        qat_sweep_outcome *out)
{
    complete(o, &sw->runs[i], ws, secs, out);
}

int qat_sweep_pending(const qat_sweep *sw, const qat_sweep_opts *o, qat_sweep_outcome *out,
                      int *todo)
{
    int ntodo = 0;
    for (int i = 0; i < sw->nruns; i++) {
        blank_outcome(&out[i]);
        if (!is_finished(o, &sw->runs[i], &out[i]))
            todo[ntodo++] = i;
    }
    return ntodo;
}

/* Seconds left: the work still to do at the mean run time so far, minus
 * what the running processes have done already, shared by the jobs. */
static double estimate(double mean, int left, int jobs, const double *start, const pid_t *pids,
                       int nruns)
{
    if (!(mean > 0) || left <= 0)
        return left <= 0 ? 0 : NAN;
    double work = mean * left, t = qat_clock_seconds();
    for (int i = 0; i < nruns; i++)
        if (pids[i] > 0)
            work -= fmin(t - start[i], mean);
    int lanes = jobs < left ? jobs : left;
    return fmax(work, 0) / lanes;
}

static void progress(const qat_sweep_opts *o, const qat_sweep_run *r, const qat_sweep_outcome *out,
                     int done, int total, double eta_s, double t0)
{
    if (!o->log)
        return;
    char took[32], el[32], eta[32];
    fmt_duration(out->wall_seconds, took, sizeof took);
    fmt_duration(qat_clock_seconds() - t0, el, sizeof el);
    fmt_duration(eta_s, eta, sizeof eta);
    if (out->status == QAT_RUN_OK) {
        double acc = isnan(out->int8_acc) ? out->float_acc : out->int8_acc;
        fprintf(o->log, "qat-sweep: [%d/%d] %s ok in %s, %s %s %.4f; elapsed %s, ETA %s\n",
                done, total, r->name, took, isnan(out->int8_acc) ? "float" : "int8",
                out->regression ? "R^2" : "accuracy", acc, el,
                eta);
    } else {
        fprintf(o->log, "qat-sweep: [%d/%d] %s FAILED (%s) after %s: %s; elapsed %s, ETA %s\n",
                done, total, r->name, out->exit_desc, took, out->error, el, eta);
    }
    fflush(o->log);
}

qat_status qat_sweep_execute(const qat_sweep *sw, const qat_sweep_opts *o,
                             qat_sweep_outcome *out, qat_error *err)
{
    qat_status st = qat_mkdir_p(o->out_dir, err);
    if (st != QAT_OK)
        return st;
    if (access(o->train_exe, X_OK) != 0)
        return qat_fail(err, QAT_EIO, "%s: cannot run qat-train: %s", o->train_exe,
                        strerror(errno));
    int *todo = calloc((size_t)sw->nruns + 1, sizeof *todo);
    pid_t *pids = calloc((size_t)sw->nruns + 1, sizeof *pids);
    double *start = calloc((size_t)sw->nruns + 1, sizeof *start);
    if (!todo || !pids || !start) {
        free(todo), free(pids), free(start);
        return qat_fail(err, QAT_ENOMEM, "out of memory");
    }
    int ntodo = 0, done = 0;
    for (int i = 0; i < sw->nruns; i++) {
        blank_outcome(&out[i]);
        if (is_finished(o, &sw->runs[i], &out[i]))
            done++;
        else
            todo[ntodo++] = i;
    }
    int jobs = o->jobs < 1 ? 1 : o->jobs;
    if (o->log) {
        fprintf(o->log, "qat-sweep: %s: %d runs", sw->name, sw->nruns);
        if (done)
            fprintf(o->log, ", %d finished earlier (cached)", done);
        if (ntodo)
            fprintf(o->log, "; running %d, %d at a time, into %s/\n", ntodo,
                    jobs < ntodo ? jobs : ntodo, o->out_dir);
        else
            fprintf(o->log, "; nothing to run (%s/)\n", o->out_dir);
        fflush(o->log);
    }
    double t0 = qat_clock_seconds();
    int next = 0, running = 0, fresh = 0;
    double spent = 0; /* wall seconds of the runs finished by this invocation */
    while (next < ntodo || running) {
        while (running < jobs && next < ntodo) {
            int i = todo[next++];
            qat_error e;
            start[i] = qat_clock_seconds();
            pid_t pid = -1;
            if (prepare(sw, o, &sw->runs[i], &e) == QAT_OK)
                pid = launch(sw, o, &sw->runs[i], &e);
            if (pid < 0) {
                /* this run cannot start; the others still can */
                record_failure(&out[i], "not started", e.msg);
                ++done;
                progress(o, &sw->runs[i], &out[i], done, sw->nruns,
                         estimate(fresh ? spent / fresh : NAN, sw->nruns - done, jobs, start, pids,
                                  sw->nruns),
                         t0);
                continue;
            }
            pids[i] = pid;
            running++;
        }
        if (!running)
            break;
        int ws;
        pid_t pid = waitpid(-1, &ws, 0);
        if (pid < 0) {
            if (errno == EINTR)
                continue;
            st = qat_fail(err, QAT_EINTERNAL, "waitpid: %s", strerror(errno));
            break;
        }
        int i = 0;
        while (i < sw->nruns && pids[i] != pid)
            i++;
        if (i == sw->nruns)
            continue; /* not one of ours */
        pids[i] = 0;
        running--;
        complete(o, &sw->runs[i], ws, qat_clock_seconds() - start[i], &out[i]);
        fresh++;
        spent += out[i].wall_seconds;
        ++done;
        progress(o, &sw->runs[i], &out[i], done, sw->nruns,
                 estimate(spent / fresh, sw->nruns - done, jobs, start, pids, sw->nruns), t0);
    }
    free(todo);
    free(pids);
    free(start);
    return st;
}

void qat_sweep_report(const qat_sweep *sw, const qat_sweep_opts *o, int i,
                      const qat_sweep_outcome *out, int done, double t0)
{
    progress(o, &sw->runs[i], out, done, sw->nruns, NAN, t0);
}
