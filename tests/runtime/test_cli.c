/* qat-infer as a user meets it: exit codes, messages naming the flag or the
 * file, the --json line, and --dump-logits equal to the runtime's logits. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <unistd.h>

#include "qat/data.h"
#include "qat/runtime_h5.h"
#include "rt_fixture.h"
#include "run_tool.h"
#include "runtime/kernels/kernels.h"

static char dir[64], model[128], out_path[128], err_path[128], images[512], labels[512];
static char out[8192], err[8192];
static const char *child_env; /* "NAME=value" set in qat-infer's environment, or NULL */

static void read_small(const char *p, char *buf, size_t cap)
{
    FILE *f = fopen(p, "rb");
    size_t n = f ? fread(buf, 1, cap - 1, f) : 0;
    buf[n] = '\0';
    if (f)
        fclose(f);
}

/* Runs qat-infer with argv (NULL-terminated, without argv[0]); its output
 * lands in out and err. */
static int run(const char *const *args)
{
    int code = tc_run_tool("qat-infer", args, out_path, err_path, child_env);
    read_small(out_path, out, sizeof out);
    read_small(err_path, err, sizeof err);
    return code;
}

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/qat_cli_XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(model, sizeof model, "%s/mlp.h5", dir);
    snprintf(out_path, sizeof out_path, "%s/stdout", dir);
    snprintf(err_path, sizeof err_path, "%s/stderr", dir);
    const char *src = getenv("QAT_SOURCE_ROOT");
    cr_assert_not_null(src, "QAT_SOURCE_ROOT is not set (run through meson test)");
    snprintf(images, sizeof images, "%s/datasets/mnist-subset/t10k-images-idx3-ubyte.gz", src);
    snprintf(labels, sizeof labels, "%s/datasets/mnist-subset/t10k-labels-idx1-ubyte", src);
    /* a random MNIST-shaped MLP: 784 -> 64 (relu) -> 10 */
    fx_model fx;
    fx_begin(&fx, 28, 28, 1, 31);
    fx_flatten(&fx, "flatten");
    fx_linear(&fx, "fc1", 64, 8, 1);
    fx_linear(&fx, "fc2", 10, 8, 0);
    fx_finish(&fx);
    qat_error e;
    cr_assert_eq(qat_rt_h5_write(model, &fx.desc, &e), QAT_OK, "%s", e.msg);
    fx_free(&fx);
}

static void teardown(void)
{
    DIR *dd = opendir(dir);
    struct dirent *de;
    char p[512];
    while (dd && (de = readdir(dd)))
        if (de->d_name[0] != '.') {
            snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
            unlink(p);
        }
    if (dd)
        closedir(dd);
    rmdir(dir);
}

TestSuite(cli, .init = setup, .fini = teardown, .timeout = 60);

Test(cli, help_exits_0)
{
    cr_assert_eq(run((const char *[]){"--help", NULL}), 0);
    cr_assert(strstr(out, "usage: qat-infer MODEL"), "%s", out);
}

Test(cli, unknown_flag_exits_2_naming_it)
{
    cr_assert_eq(run((const char *[]){model, "--images", images, "--labels", labels, "--frobnicate",
                                      NULL}),
                 2);
    cr_assert(strstr(err, "unknown flag '--frobnicate'"), "%s", err);
}

Test(cli, missing_argument_exits_2_naming_the_flag)
{
    cr_assert_eq(run((const char *[]){model, "--labels", labels, "--images", NULL}), 2);
    cr_assert(strstr(err, "--images: missing argument"), "%s", err);
    cr_assert_eq(run((const char *[]){model, "--images", images, NULL}), 2);
    cr_assert(strstr(err, "--labels"), "%s", err);
    cr_assert_eq(run((const char *[]){"--images", images, "--labels", labels, NULL}), 2);
    cr_assert(strstr(err, "MODEL"), "%s", err);
}

Test(cli, bad_numbers_exit_2)
{
    cr_assert_eq(run((const char *[]){model, "--images", images, "--labels", labels, "--threads",
                                      "0", NULL}),
                 2);
    cr_assert(strstr(err, "--threads"), "%s", err);
    cr_assert_eq(run((const char *[]){model, "--images", images, "--labels", labels, "--batch",
                                      "12x", NULL}),
                 2);
    cr_assert(strstr(err, "--batch"), "%s", err);
}

Test(cli, missing_model_file_exits_2_naming_it)
{
    char missing[200];
    snprintf(missing, sizeof missing, "%s/absent.h5", dir);
    cr_assert_eq(run((const char *[]){missing, "--images", images, "--labels", labels, NULL}), 2);
    cr_assert(strstr(err, missing), "%s", err);
}

Test(cli, corrupt_model_exits_2_naming_it)
{
    FILE *f = fopen(model, "r+b");
    cr_assert_not_null(f);
    cr_assert_eq(ftruncate(fileno(f), 2000), 0);
    fclose(f);
    cr_assert_eq(run((const char *[]){model, "--images", images, "--labels", labels, NULL}), 2);
    cr_assert(strstr(err, model), "%s", err);
}

Test(cli, bad_idx_exits_2_naming_it)
{
    /* labels passed as images: wrong magic */
    cr_assert_eq(run((const char *[]){model, "--images", labels, "--labels", labels, NULL}), 2);
    cr_assert(strstr(err, labels), "%s", err);
}

Test(cli, json_line_and_dumped_logits_match_the_runtime)
{
    char dump[200];
    snprintf(dump, sizeof dump, "%s/logits.bin", dir);
    cr_assert_eq(run((const char *[]){model, "--images", images, "--labels", labels, "--json",
                                      "--threads", "3", "--batch", "37", "--dump-logits", dump,
                                      NULL}),
                 0, "%s", err);
    double acc = -1, ips = -1;
    char tail[8] = "";
    cr_assert_eq(sscanf(out, "{\"accuracy\": %lf, \"images_per_second\": %lf}%7s", &acc, &ips,
                        tail),
                 2, "not one JSON line: '%s'", out);
    cr_assert(strchr(out, '\n') == out + strlen(out) - 1, "expected exactly one line: '%s'", out);

    /* the same logits straight from the library */
    qat_error e;
    qat_rt_model *m;
    cr_assert_eq(qat_rt_h5_load(model, &m, &e), QAT_OK, "%s", e.msg);
    uint8_t *buf, *px, *lb;
    size_t len;
    uint32_t n, nl;
    int h, w;
    cr_assert_eq(qat_read_file_maybe_gz(images, &buf, &len, &e), QAT_OK, "%s", e.msg);
    cr_assert_eq(qat_idx_parse_images(buf, len, images, &px, &n, &h, &w, &e), QAT_OK);
    free(buf);
    cr_assert_eq(qat_read_file_maybe_gz(labels, &buf, &len, &e), QAT_OK, "%s", e.msg);
    cr_assert_eq(qat_idx_parse_labels(buf, len, labels, &lb, &nl, &e), QAT_OK);
    free(buf);
    int8_t *want = malloc((size_t)n * 10);
    cr_assert_eq(fx_run(m, 1, (int)n, px, (int)n, want, &e), QAT_OK, "%s", e.msg);
    size_t dlen;
    FILE *f = fopen(dump, "rb");
    cr_assert_not_null(f);
    int8_t *got = malloc((size_t)n * 10 + 1);
    dlen = fread(got, 1, (size_t)n * 10 + 1, f);
    fclose(f);
    cr_assert_eq(dlen, (size_t)n * 10, "dump has %zu bytes, expected N x classes", dlen);
    cr_assert_arr_eq(got, want, (size_t)n * 10);
    uint32_t correct = 0;
    for (uint32_t i = 0; i < n; i++)
        correct += qat_rt_argmax(want + (size_t)i * 10, 10) == lb[i];
    cr_assert_float_eq(acc, (double)correct / n, 1e-6);
    cr_assert_gt(ips, 0.0);
    free(want);
    free(got);
    free(px);
    free(lb);
    qat_rt_model_destroy(m);
}

Test(cli, text_report_exits_0)
{
    cr_assert_eq(run((const char *[]){model, "--images", images, "--labels", labels, NULL}), 0,
                 "%s", err);
    cr_assert(strstr(out, "accuracy: "), "%s", out);
    cr_assert(strstr(out, "images/s"), "%s", out);
}

static size_t read_all(const char *path, int8_t *buf, size_t cap)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    size_t n = fread(buf, 1, cap, f);
    fclose(f);
    return n;
}

Test(cli, every_isa_and_thread_count_dumps_identical_logits)
{
    static int8_t want[1000 * 10 + 1], got[1000 * 10 + 1];
    char dump[200];
    snprintf(dump, sizeof dump, "%s/logits.bin", dir);
    cr_assert_eq(run((const char *[]){model, "--images", images, "--labels", labels, "--isa",
                                      "ref", "--dump-logits", dump, NULL}),
                 0, "%s", err);
    cr_assert(strstr(out, "isa ref"), "%s", out);
    size_t n = read_all(dump, want, sizeof want);
    cr_assert_eq(n, 1000 * 10);
    const qat_rt_kernels *paths[QAT_RT_MAX_PATHS];
    int np = qat_rt_kernels_available(paths);
    for (int i = 0; i < np; i++)
        for (int t = 1; t <= 2; t++)
            for (int b = 0; b < 2; b++) {
                char threads[8], isa_seen[64];
                snprintf(threads, sizeof threads, "%d", t);
                cr_assert_eq(run((const char *[]){model, "--images", images, "--labels", labels,
                                                  "--isa", paths[i]->isa, "--threads", threads,
                                                  "--batch", b ? "37" : "1", "--dump-logits",
                                                  dump, NULL}),
                             0, "%s", err);
                snprintf(isa_seen, sizeof isa_seen, "isa %s)", paths[i]->isa);
                cr_assert(strstr(out, isa_seen), "%s", out);
                cr_assert_eq(read_all(dump, got, sizeof got), n);
                cr_assert_arr_eq(got, want, n, "--isa %s --threads %d --batch %s differs from ref",
                                 paths[i]->isa, t, b ? "37" : "1");
            }
}

Test(cli, unknown_or_unavailable_isa_exits_2)
{
    cr_assert_eq(run((const char *[]){model, "--images", images, "--labels", labels, "--isa",
                                      "sse9", NULL}),
                 2);
    cr_assert(strstr(err, "qat-infer: isa: expected one of auto, ref, avx2, avx512vnni, neon"),
              "%s", err);
    cr_assert(strstr(err, "'sse9'"), "%s", err);
#if defined(__x86_64__)
    cr_assert_eq(run((const char *[]){model, "--images", images, "--labels", labels, "--isa",
                                      "neon", NULL}),
                 2);
    cr_assert(strstr(err, "isa 'neon': this build has no neon kernels"), "%s", err);
    cr_assert(strstr(err, "available here: ref"), "%s", err);
#endif
    /* the environment variable is named when it is the culprit */
    child_env = "QAT_ISA=fast";
    int rc = run((const char *[]){model, "--images", images, "--labels", labels, NULL});
    child_env = NULL;
    cr_assert_eq(rc, 2);
    cr_assert(strstr(err, "QAT_ISA (environment)"), "%s", err);
    /* and forces the path when --isa does not */
    child_env = "QAT_ISA=ref";
    rc = run((const char *[]){model, "--images", images, "--labels", labels, NULL});
    child_env = NULL;
    cr_assert_eq(rc, 0, "%s", err);
    cr_assert(strstr(out, "isa ref)"), "%s", out);
}

Test(cli, profile_lists_every_layer)
{
    cr_assert_eq(run((const char *[]){model, "--images", images, "--labels", labels, "--profile",
                                      NULL}),
                 0, "%s", err);
    cr_assert(strstr(out, "profile (thread 0, 1000 images"), "%s", out);
    const char *rows[] = {"input", "flatten", "fc1", "fc2"};
    for (int i = 0; i < 4; i++)
        cr_assert(strstr(out, rows[i]), "profile lacks %s: %s", rows[i], out);
    cr_assert(strstr(out, "GMAC/s"), "%s", out);
    /* with --json the table goes to stderr and stdout stays one line */
    cr_assert_eq(run((const char *[]){model, "--images", images, "--labels", labels, "--profile",
                                      "--json", NULL}),
                 0, "%s", err);
    cr_assert(strchr(out, '\n') == out + strlen(out) - 1, "%s", out);
    cr_assert(strstr(err, "fc1"), "%s", err);
}
