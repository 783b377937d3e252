/* Running a built tool (qat-train, qat-export, qat-infer, qat-sweep, found
 * through QAT_BUILD_ROOT) as a child process, the way a user meets it:
 * real argv, output into files, the exit code back. Criterion only. */
#ifndef QAT_TEST_RUN_TOOL_H
#define QAT_TEST_RUN_TOOL_H

#include <sys/types.h>

/* Starts <QAT_BUILD_ROOT>/tool with args (NULL-terminated, without argv[0])
 * in its own process group, so the test can kill it and whatever it started
 * with kill(-pid, ...). Its stdout goes to the file out_path and its stderr
 * to err_path (NULL: /dev/null); env ("NAME=value", or NULL) is added to its
 * environment. Returns the pid. */
pid_t tc_spawn(const char *tool, const char *const *args, const char *out_path,
               const char *err_path, const char *env);

/* Waits for pid and returns its raw wait status. timeout_s > 0: after that
 * many seconds its process group is killed and the test fails (a hang);
 * 0: waits as long as it takes (the suite's own timeout applies). */
int tc_wait(pid_t pid, int timeout_s);

/* tc_spawn, then tc_wait without a timeout. A death by signal (a crash, an
 * abort, a sanitizer report) or a failed exec fails the test, quoting the
 * start of err_path. Returns the exit code. */
int tc_run_tool(const char *tool, const char *const *args, const char *out_path,
                const char *err_path, const char *env);

#endif
