/* The bad-input catalogue's harness: every case runs a real tool (found
 * through QAT_BUILD_ROOT) in a fresh temp directory on inputs generated
 * there, and checks how it ends. A bad input must end with exit code 2 and
 * a message on stderr that names the file with its line or the field; a
 * signal (a crash, an abort, a sanitizer report) always fails the case. */
#ifndef QAT_TEST_ROBUST_H
#define QAT_TEST_ROBUST_H

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "run_tool.h"

#define RB_OUT_CAP 16384
#define RB_TIMEOUT_S 120

/* One per test process (Criterion forks each test): the temp dir and the
 * captured output of the last run. */
static char rb_dir[64];
static char rb_out[RB_OUT_CAP], rb_err[RB_OUT_CAP];

static inline const char *rb_env(const char *name)
{
    const char *v = getenv(name);
    cr_assert_not_null(v, "%s is not set (run through meson test)", name);
    return v;
}

/* dir/name in one of a few rotating buffers (enough for one call's args). */
static inline const char *rb_path(const char *name)
{
    static char bufs[8][512];
    static int next;
    char *b = bufs[next++ % 8];
    snprintf(b, sizeof bufs[0], "%s/%s", rb_dir, name);
    return b;
}

/* <source root>/rel */
static inline const char *rb_src(const char *rel)
{
    static char bufs[4][512];
    static int next;
    char *b = bufs[next++ % 4];
    snprintf(b, sizeof bufs[0], "%s/%s", rb_env("QAT_SOURCE_ROOT"), rel);
    return b;
}

static inline void rb_setup(void)
{
    snprintf(rb_dir, sizeof rb_dir, "/tmp/qat_robust_XXXXXX");
    cr_assert_not_null(mkdtemp(rb_dir), "mkdtemp: %s", strerror(errno));
}

static inline int rb_rm(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    chmod(p, 0700);
    return remove(p);
}

static inline void rb_teardown(void)
{
    if (rb_dir[0])
        nftw(rb_dir, rb_rm, 16, FTW_DEPTH | FTW_PHYS);
}

static inline void rb_write(const char *name, const void *data, size_t len)
{
    FILE *f = fopen(rb_path(name), "wb");
    cr_assert_not_null(f, "cannot create %s: %s", rb_path(name), strerror(errno));
    cr_assert_eq(fwrite(data, 1, len, f), len);
    cr_assert_eq(fclose(f), 0);
}

static inline void rb_write_text(const char *name, const char *text)
{
    rb_write(name, text, strlen(text));
}

__attribute__((format(printf, 2, 3))) static inline void rb_printf(const char *name,
                                                                   const char *fmt, ...)
{
    FILE *f = fopen(rb_path(name), "wb");
    cr_assert_not_null(f);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    cr_assert_eq(fclose(f), 0);
}

/* Reads a whole file (caller frees); *len its size. */
static inline unsigned char *rb_read(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s: %s", path, strerror(errno));
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)n + 1);
    cr_assert_not_null(b);
    cr_assert_eq(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return b;
}

static inline void rb_copy(const char *from, const char *to)
{
    size_t n;
    unsigned char *b = rb_read(from, &n);
    FILE *f = fopen(to, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(b, 1, n, f), n);
    cr_assert_eq(fclose(f), 0);
    free(b);
}

/* The scratch folder dir holds nothing a finished run writes, and no
 * temporary file: only config.ini, which a refused run writes first. */
static inline void rb_only_config_written(const char *dir)
{
    DIR *d = opendir(rb_path(dir));
    if (!d)
        return;
    for (struct dirent *e; (e = readdir(d));)
        cr_assert(e->d_name[0] == '.' || strcmp(e->d_name, "config.ini") == 0,
                  "%s/%s was written", dir, e->d_name);
    closedir(d);
}

static inline void rb_slurp(const char *path, char *buf)
{
    FILE *f = fopen(path, "rb");
    size_t n = f ? fread(buf, 1, RB_OUT_CAP - 1, f) : 0;
    buf[n] = '\0';
    if (f)
        fclose(f);
}

/* Starts tool (qat-train, qat-export, qat-infer) with args (NULL-terminated,
 * without argv[0]), stdout/stderr going to files in the temp dir. Returns
 * the pid; the child has its own process group so it can be killed. */
static inline pid_t rb_spawn(const char *tool, const char *const *args)
{
    char out_path[512], err_path[512];
    snprintf(out_path, sizeof out_path, "%s/.stdout", rb_dir);
    snprintf(err_path, sizeof err_path, "%s/.stderr", rb_dir);
    return tc_spawn(tool, args, out_path, err_path, NULL);
}

/* Waits for pid (killing it after RB_TIMEOUT_S) and loads its output;
 * returns the raw wait status. */
static inline int rb_wait(pid_t pid)
{
    int status = tc_wait(pid, RB_TIMEOUT_S);
    char p[512];
    snprintf(p, sizeof p, "%s/.stdout", rb_dir);
    rb_slurp(p, rb_out);
    snprintf(p, sizeof p, "%s/.stderr", rb_dir);
    rb_slurp(p, rb_err);
    return status;
}

/* Runs tool to the end; any death by signal fails the test. Returns the
 * exit code. */
static inline int rb_run(const char *tool, const char *const *args)
{
    int status = rb_wait(rb_spawn(tool, args));
    cr_assert(WIFEXITED(status), "%s died by signal %d (crash?)\nstderr:\n%s", tool,
              WIFSIGNALED(status) ? WTERMSIG(status) : -1, rb_err);
    cr_assert_neq(WEXITSTATUS(status), 127, "cannot exec %s", tool);
    return WEXITSTATUS(status);
}

#define RB_ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})

/* The catalogue's contract: exit code 2 and every one of the NULL-ended
 * strings (the file, its line or the field, what was wrong) on stderr. */
static inline void rb_expect_bad_v(const char *tool, const char *const *args,
                                   const char *const *want)
{
    int code = rb_run(tool, args);
    cr_assert_eq(code, 2, "%s: expected exit code 2, got %d\nstderr:\n%s", tool, code, rb_err);
    for (int i = 0; want[i]; i++)
        cr_assert_not_null(strstr(rb_err, want[i]), "%s: stderr lacks '%s'\nstderr:\n%s", tool,
                           want[i], rb_err);
    /* one clear message, not a dump */
    cr_assert_lt(strlen(rb_err), 4096, "%s: stderr is %zu bytes:\n%s", tool, strlen(rb_err),
                 rb_err);
}

#define RB_EXPECT_BAD(tool, args, ...)                                                             \
    rb_expect_bad_v(tool, args, (const char *const[]){__VA_ARGS__, NULL})

#endif
