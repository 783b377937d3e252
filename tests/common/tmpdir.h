/* Temporary folders for the Criterion suites: /tmp/PREFIX-XXXXXX, removed
 * with everything in it when the test's process exits, passed or failed
 * (Criterion runs each test in its own process and runs its exit
 * handlers). QAT_KEEP_TEST_DIRS=1 in the environment keeps them for a
 * post-mortem. Header only: a suite includes it without a link step. */
#ifndef QAT_TEST_TMPDIR_H
#define QAT_TEST_TMPDIR_H

#include <criterion/criterion.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { TC_MAX_TMPDIRS = 64 };
static char tc_tmpdirs[TC_MAX_TMPDIRS][256];
static int tc_ntmpdirs, tc_registered;

static int tc_rm_one(const char *p, const struct stat *sb, int flag, struct FTW *f)
{
    (void)sb, (void)flag, (void)f;
    remove(p);
    return 0;
}

static void tc_rm_tmpdirs(void)
{
    const char *keep = getenv("QAT_KEEP_TEST_DIRS");
    if (keep && keep[0] == '1')
        return;
    for (int i = 0; i < tc_ntmpdirs; i++)
        nftw(tc_tmpdirs[i], tc_rm_one, 16, FTW_DEPTH | FTW_PHYS);
    tc_ntmpdirs = 0;
}

/* Makes the folder into buf (n bytes) and schedules its removal. */
__attribute__((unused)) static void tc_tmpdir(char *buf, size_t n, const char *prefix)
{
    int k = snprintf(buf, n, "/tmp/%s-XXXXXX", prefix);
    cr_assert(k > 0 && (size_t)k < n && (size_t)k < sizeof tc_tmpdirs[0], "%s: name too long",
              prefix);
    cr_assert_not_null(mkdtemp(buf), "mkdtemp %s", buf);
    cr_assert_lt(tc_ntmpdirs, TC_MAX_TMPDIRS, "too many temporary folders in one test");
    if (!tc_registered)
        tc_registered = atexit(tc_rm_tmpdirs) == 0;
    strcpy(tc_tmpdirs[tc_ntmpdirs++], buf);
}

#endif
