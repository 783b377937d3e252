/* Atomic file replacement, mkdir -p and the monotonic clock (core/fsutil.c,
 * core/clock.c): the file appears whole or not at all, a failed write leaves
 * the old file and no temporary behind, and errors name the file. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "qat/clock.h"
#include "qat/fsutil.h"

static char dir[64];

static const char *in_dir(const char *name)
{
    static char bufs[4][256];
    static int next;
    char *b = bufs[next++ % 4];
    snprintf(b, sizeof bufs[0], "%s/%s", dir, name);
    return b;
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/qat_fsutil_XXXXXX");
    cr_assert_not_null(mkdtemp(dir), "mkdtemp: %s", strerror(errno));
}

static void teardown(void) { nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS); }

TestSuite(fsutil, .init = setup, .fini = teardown);

static char *slurp(const char *path)
{
    static char buf[256];
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s: %s", path, strerror(errno));
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* Number of entries in dir (without . and ..). */
static int entries(const char *d)
{
    DIR *dd = opendir(d);
    cr_assert_not_null(dd);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(dd)))
        n += strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
    closedir(dd);
    return n;
}

Test(fsutil, write_file_atomic_creates_then_replaces_and_leaves_no_temporary)
{
    qat_error e;
    const char *p = in_dir("out.txt");
    cr_assert_eq(qat_write_file_atomic(p, "first", 5, &e), QAT_OK, "%s", e.msg);
    cr_assert_str_eq(slurp(p), "first");
    cr_assert_eq(qat_write_file_atomic(p, "second\n", 7, &e), QAT_OK, "%s", e.msg);
    cr_assert_str_eq(slurp(p), "second\n");
    cr_assert_eq(qat_write_file_atomic(p, "", 0, &e), QAT_OK, "%s", e.msg);
    cr_assert_str_eq(slurp(p), "");
    cr_assert_eq(entries(dir), 1, "a temporary stayed behind");
}

Test(fsutil, temporary_is_named_path_tmp_pid)
{
    qat_atomic a;
    qat_error e;
    const char *p = in_dir("model.h5");
    cr_assert_eq(qat_atomic_begin(&a, p, &e), QAT_OK, "%s", e.msg);
    char want[256];
    snprintf(want, sizeof want, "%s.tmp.%ld", p, (long)getpid());
    cr_assert_str_eq(a.tmp, want);
    cr_assert_eq(entries(dir), 0, "begin must create nothing");
}

/* The HDF5 way: a library creates and closes the temporary by name. */
Test(fsutil, commit_renames_a_file_written_by_someone_else)
{
    qat_atomic a;
    qat_error e;
    const char *p = in_dir("lib.bin");
    cr_assert_eq(qat_write_file_atomic(p, "old", 3, &e), QAT_OK, "%s", e.msg);
    cr_assert_eq(qat_atomic_begin(&a, p, &e), QAT_OK, "%s", e.msg);
    int fd = open(a.tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, "library", 7), 7);
    close(fd);
    cr_assert_str_eq(slurp(p), "old", "the final name changed before commit");
    cr_assert_eq(qat_atomic_commit(&a, &e), QAT_OK, "%s", e.msg);
    cr_assert_str_eq(slurp(p), "library");
    cr_assert_eq(entries(dir), 1);
}

Test(fsutil, abort_removes_the_temporary_and_keeps_the_old_file)
{
    qat_atomic a;
    qat_error e;
    const char *p = in_dir("keep.txt");
    cr_assert_eq(qat_write_file_atomic(p, "old", 3, &e), QAT_OK, "%s", e.msg);
    FILE *f;
    cr_assert_eq(qat_atomic_fopen(&a, p, &f, &e), QAT_OK, "%s", e.msg);
    fputs("half", f);
    fclose(f);
    cr_assert_eq(entries(dir), 2);
    qat_atomic_abort(&a);
    cr_assert_eq(entries(dir), 1);
    cr_assert_str_eq(slurp(p), "old");
}

Test(fsutil, a_stream_error_aborts_instead_of_committing)
{
    qat_atomic a;
    qat_error e;
    const char *p = in_dir("stream.csv");
    cr_assert_eq(qat_write_file_atomic(p, "old", 3, &e), QAT_OK, "%s", e.msg);
    FILE *f;
    cr_assert_eq(qat_atomic_fopen(&a, p, &f, &e), QAT_OK, "%s", e.msg);
    fputs("new", f);
    /* reading a write-only stream sets its error flag, as a failed write would */
    (void)fgetc(f);
    cr_assert(ferror(f));
    cr_assert_eq(qat_atomic_fclose(&a, f, &e), QAT_EIO);
    cr_assert(strstr(e.msg, p) && strstr(e.msg, "cannot write"), "%s", e.msg);
    cr_assert_str_eq(slurp(p), "old");
    cr_assert_eq(entries(dir), 1, "the temporary stayed behind");
}

Test(fsutil, a_failed_rename_names_both_files_and_removes_the_temporary)
{
    qat_error e;
    /* a non-empty directory cannot be replaced by a file */
    const char *p = in_dir("taken");
    cr_assert_eq(mkdir(p, 0755), 0);
    cr_assert_eq(qat_write_file_atomic(in_dir("taken/x"), "x", 1, &e), QAT_OK, "%s", e.msg);
    cr_assert_eq(qat_write_file_atomic(p, "data", 4, &e), QAT_EIO);
    cr_assert(strstr(e.msg, p) && strstr(e.msg, ".tmp.") && strstr(e.msg, "rename"), "%s", e.msg);
    cr_assert_eq(entries(dir), 1, "the temporary stayed behind");
}

Test(fsutil, commit_without_a_temporary_fails_naming_it)
{
    qat_atomic a;
    qat_error e;
    const char *p = in_dir("never.h5");
    cr_assert_eq(qat_atomic_begin(&a, p, &e), QAT_OK, "%s", e.msg);
    cr_assert_eq(qat_atomic_commit(&a, &e), QAT_EIO);
    cr_assert(strstr(e.msg, a.tmp) && strstr(e.msg, "No such file"), "%s", e.msg);
    cr_assert_eq(access(p, F_OK), -1);
}

Test(fsutil, a_missing_directory_or_a_long_path_is_an_error_naming_the_file)
{
    qat_error e;
    const char *p = in_dir("no/such/file");
    cr_assert_eq(qat_write_file_atomic(p, "x", 1, &e), QAT_EIO);
    cr_assert(strstr(e.msg, p) && strstr(e.msg, "No such file"), "%s", e.msg);
    static char longp[5000];
    memset(longp, 'a', sizeof longp - 1);
    /* (the message starts with the path, so the 1 KiB message is all 'a's) */
    cr_assert_eq(qat_write_file_atomic(longp, "x", 1, &e), QAT_EINVAL);
    cr_assert_eq(qat_mkdir_p(longp, &e), QAT_EINVAL);
}

Test(fsutil, mkdir_p_creates_parents_and_accepts_what_exists)
{
    qat_error e;
    const char *p = in_dir("a/b/c");
    cr_assert_eq(qat_mkdir_p(p, &e), QAT_OK, "%s", e.msg);
    struct stat sb;
    cr_assert_eq(stat(p, &sb), 0);
    cr_assert(S_ISDIR(sb.st_mode));
    cr_assert_eq(qat_mkdir_p(p, &e), QAT_OK, "%s", e.msg);
    cr_assert_eq(qat_mkdir_p(in_dir("a/b/"), &e), QAT_OK, "%s", e.msg);
    cr_assert_eq(qat_mkdir_p(in_dir("a//d"), &e), QAT_OK, "%s", e.msg);
    cr_assert_eq(stat(in_dir("a/d"), &sb), 0);
}

Test(fsutil, mkdir_p_through_or_onto_a_file_names_it)
{
    qat_error e;
    const char *f = in_dir("file");
    cr_assert_eq(qat_write_file_atomic(f, "x", 1, &e), QAT_OK, "%s", e.msg);
    cr_assert_eq(qat_mkdir_p(f, &e), QAT_EIO);
    cr_assert(strstr(e.msg, f) && strstr(e.msg, "Not a directory"), "%s", e.msg);
    cr_assert_eq(qat_mkdir_p(in_dir("file/sub"), &e), QAT_EIO);
    cr_assert(strstr(e.msg, "file/sub") && strstr(e.msg, "Not a directory"), "%s", e.msg);
    cr_assert_eq(qat_mkdir_p("", &e), QAT_EINVAL);
}

Test(clock, is_monotonic_and_counts_seconds)
{
    double t0 = qat_clock_seconds(), prev = t0;
    for (int i = 0; i < 1000; i++) {
        double t = qat_clock_seconds();
        cr_assert_geq(t, prev);
        prev = t;
    }
    struct timespec nap = {0, 20 * 1000 * 1000};
    nanosleep(&nap, NULL);
    double dt = qat_clock_seconds() - t0;
    /* at least the nap; well below a second even on a loaded machine */
    cr_assert(dt >= 0.019 && dt < 5.0, "20 ms measured as %g s", dt);
}
