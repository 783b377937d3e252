#include "run_tool.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* exit codes of a child that never became the tool */
#define NO_OUTPUT 126 /* cannot open its output files */
#define NO_EXEC 127   /* cannot exec the tool */

pid_t tc_spawn(const char *tool, const char *const *args, const char *out_path,
               const char *err_path, const char *env)
{
    const char *root = getenv("QAT_BUILD_ROOT");
    cr_assert_not_null(root, "QAT_BUILD_ROOT is not set (run through meson test)");
    char exe[1024];
    snprintf(exe, sizeof exe, "%s/%s", root, tool);
    const char *argv[64] = {exe};
    int n = 1;
    while (args[n - 1]) {
        cr_assert_lt(n, 63, "too many arguments for %s", tool);
        argv[n] = args[n - 1];
        n++;
    }
    argv[n] = NULL;
    fflush(NULL); /* or the child's copy of our buffers is written twice */
    pid_t pid = fork();
    cr_assert_geq(pid, 0, "fork failed");
    if (pid == 0) {
        setpgid(0, 0);
        int o = open(out_path ? out_path : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int e = open(err_path ? err_path : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (o < 0 || e < 0)
            _exit(NO_OUTPUT);
        dup2(o, 1);
        dup2(e, 2);
        if (env)
            putenv((char *)env);
        execv(exe, (char *const *)argv);
        _exit(NO_EXEC);
    }
    setpgid(pid, pid); /* also here: a kill(-pid) right after the fork must find it */
    return pid;
}

int tc_wait(pid_t pid, int timeout_s)
{
    int status = 0;
    if (timeout_s <= 0) {
        cr_assert_eq(waitpid(pid, &status, 0), pid, "waitpid failed");
        return status;
    }
    for (int t = 0; t < timeout_s * 20; t++) {
        if (waitpid(pid, &status, WNOHANG) == pid)
            return status;
        usleep(50000);
    }
    kill(-pid, SIGKILL);
    waitpid(pid, &status, 0);
    cr_assert_fail("the tool ran for more than %d s (hang?)", timeout_s);
    return status;
}

int tc_run_tool(const char *tool, const char *const *args, const char *out_path,
                const char *err_path, const char *env)
{
    int status = tc_wait(tc_spawn(tool, args, out_path, err_path, env), 0);
    if (!WIFEXITED(status)) {
        char text[4096] = "";
        FILE *f = err_path ? fopen(err_path, "rb") : NULL;
        if (f) {
            text[fread(text, 1, sizeof text - 1, f)] = '\0';
            fclose(f);
        }
        cr_assert_fail("%s died by signal %d (crash?)\nstderr:\n%s", tool,
                       WIFSIGNALED(status) ? WTERMSIG(status) : -1, text);
    }
    cr_assert_neq(WEXITSTATUS(status), NO_OUTPUT, "%s: cannot open its output files", tool);
    cr_assert_neq(WEXITSTATUS(status), NO_EXEC, "cannot exec %s", tool);
    return WEXITSTATUS(status);
}
