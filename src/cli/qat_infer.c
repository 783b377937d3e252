/* qat-infer: runs an integer model file on IDX images and reports accuracy
 * and throughput. A thin main: the work is in the runtime (qat_rt_*), the
 * HDF5 loader (qat_rt_h5_*) and the IDX reader (qat_idx_*). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qat/clock.h"
#include "qat/data.h"
#include "qat/runtime.h"
#include "qat/runtime_h5.h"

#define PROG "qat-infer"
#define DEFAULT_BATCH 64
#define DEFAULT_THREADS 1

static const char usage_text[] =
    "usage: " PROG " MODEL --images IDX --labels IDX [--batch N] [--threads N] [--isa ISA]\n"
    "                 [--json] [--dump-logits FILE] [--profile]\n"
    "\n"
    "Runs the integer model MODEL (HDF5, docs/FORMAT.md) on the images and reports\n"
    "top-1 accuracy against the labels and the inference throughput (images/s;\n"
    "loading is not timed).\n"
    "\n"
    "  --images IDX        IDX image file (magic 0x00000803), raw or gzip\n"
    "  --labels IDX        IDX label file (magic 0x00000801), raw or gzip\n"
    "  --batch N           images per qat_rt_run call (default 64)\n"
    "  --threads N         threads splitting each batch (default 1); with fewer images\n"
    "                      than threads (e.g. --batch 1) they split each layer instead\n"
    "  --isa ISA           kernel path: auto (default: $QAT_ISA if set, else the\n"
    "                      fastest this CPU runs), ref, avx2, avx512vnni, neon,\n"
    "                      neon-dot, neon-plain.\n"
    "                      Every path gives identical logits; one the CPU lacks is an\n"
    "                      error (exit 2)\n"
    "  --json              print one line: {\"accuracy\": A, \"images_per_second\": R}\n"
    "  --dump-logits FILE  write the int8 logits, N x num_classes, row-major, raw\n"
    "  --profile           print the time spent in each layer (thread 0's view)\n"
    "  -h, --help          print this help\n"
    "\n"
    "Exit status: 0 success, 2 bad usage or input (flags, model, IDX files),\n"
    "1 any other failure.\n";

typedef struct args {
    const char *model, *images, *labels, *dump, *isa;
    int batch, threads, json, profile;
} args;

__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, PROG ": ");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry '" PROG " --help'.\n");
    return 2;
}

static int fail(const qat_error *e)
{
    fprintf(stderr, PROG ": %s\n", e->msg);
    return qat_status_exit_code(e->status);
}

static int parse_int(const char *flag, const char *v, int lo, int hi, int *out)
{
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi)
        return usage_error("%s: expected an integer in [%d, %d], found '%s'", flag, lo, hi, v);
    *out = (int)x;
    return 0;
}

/* Returns -1 to go on, else the exit code. */
static int parse_args(int argc, char **argv, args *a)
{
    *a = (args){.batch = DEFAULT_BATCH, .threads = DEFAULT_THREADS};
    int only_positional = 0;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (only_positional || arg[0] != '-' || arg[1] == '\0') {
            if (a->model)
                return usage_error("unexpected argument '%s' (MODEL is already '%s')", arg,
                                   a->model);
            a->model = arg;
            continue;
        }
        if (strcmp(arg, "--") == 0) {
            only_positional = 1;
            continue;
        }
        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            fputs(usage_text, stdout);
            return 0;
        }
        if (strcmp(arg, "--json") == 0) {
            a->json = 1;
            continue;
        }
        if (strcmp(arg, "--profile") == 0) {
            a->profile = 1;
            continue;
        }
        /* flags with a value: "--flag VALUE" or "--flag=VALUE" */
        static const char *const with_value[] = {"--images", "--labels", "--batch", "--threads",
                                                 "--dump-logits", "--isa"};
        const char *value = NULL, *flag = NULL;
        char name[32];
        for (size_t f = 0; f < sizeof with_value / sizeof with_value[0]; f++) {
            size_t n = strlen(with_value[f]);
            if (strncmp(arg, with_value[f], n) == 0 && (arg[n] == '\0' || arg[n] == '=')) {
                flag = with_value[f];
                if (arg[n] == '=')
                    value = arg + n + 1;
                else if (i + 1 < argc)
                    value = argv[++i];
                else
                    return usage_error("%s: missing argument", flag);
                break;
            }
        }
        if (!flag) {
            snprintf(name, sizeof name, "%.*s", (int)strcspn(arg, "="), arg);
            return usage_error("unknown flag '%s'", name);
        }
        if (value[0] == '\0')
            return usage_error("%s: missing argument", flag);
        int rc = 0;
        if (strcmp(flag, "--images") == 0)
            a->images = value;
        else if (strcmp(flag, "--labels") == 0)
            a->labels = value;
        else if (strcmp(flag, "--dump-logits") == 0)
            a->dump = value;
        else if (strcmp(flag, "--isa") == 0)
            a->isa = value;
        else if (strcmp(flag, "--batch") == 0)
            rc = parse_int(flag, value, 1, 1 << 16, &a->batch);
        else
            rc = parse_int(flag, value, 1, 1024, &a->threads);
        if (rc)
            return rc;
    }
    if (!a->model)
        return usage_error("missing MODEL");
    if (!a->images)
        return usage_error("--images: required");
    if (!a->labels)
        return usage_error("--labels: required");
    return -1;
}

typedef struct data {
    uint8_t *pixels, *labels;
    uint32_t n;
    int h, w;
} data;

static qat_status load_data(const args *a, const qat_rt_model *m, data *d, qat_error *e)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    uint32_t nl = 0;
    qat_status st = qat_read_file_maybe_gz(a->images, &buf, &len, e);
    if (!st)
        st = qat_idx_parse_images(buf, len, a->images, &d->pixels, &d->n, &d->h, &d->w, e);
    free(buf);
    buf = NULL;
    if (!st)
        st = qat_read_file_maybe_gz(a->labels, &buf, &len, e);
    if (!st)
        st = qat_idx_parse_labels(buf, len, a->labels, &d->labels, &nl, e);
    free(buf);
    if (st)
        return st;
    size_t want = qat_rt_model_input_size(m);
    if ((size_t)d->h * (size_t)d->w != want)
        return qat_fail(e, QAT_EINVAL,
                        "%s: images are %dx%d (%zu pixels), but model %s expects %zu values "
                        "per image",
                        a->images, d->h, d->w, (size_t)d->h * (size_t)d->w, a->model, want);
    if (nl != d->n)
        return qat_fail(e, QAT_EINVAL, "%s: %u labels, but %s holds %u images", a->labels,
                        (unsigned)nl, a->images, (unsigned)d->n);
    if (d->n == 0)
        return qat_fail(e, QAT_EINVAL, "%s: no images", a->images);
    int nc = qat_rt_model_num_classes(m);
    for (uint32_t i = 0; i < d->n; i++)
        if (d->labels[i] >= nc)
            return qat_fail(e, QAT_EINVAL,
                            "%s: label %u of example %u is not below the model's %d classes",
                            a->labels, (unsigned)d->labels[i], (unsigned)i, nc);
    return QAT_OK;
}

static qat_status write_logits(const char *path, const int8_t *lg, size_t bytes, qat_error *e)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return qat_fail(e, QAT_EIO, "--dump-logits %s: cannot open: %s", path, strerror(errno));
    size_t wrote = fwrite(lg, 1, bytes, f);
    int bad = wrote != bytes || ferror(f);
    if (fclose(f) != 0 || bad)
        return qat_fail(e, QAT_EIO, "--dump-logits %s: write failed: %s", path, strerror(errno));
    return QAT_OK;
}

/* Per-layer table; goes to stderr under --json so stdout stays one line. */
static void print_profile(const qat_rt_session *s, double wall, FILE *f)
{
    qat_rt_layer_profile p[QAT_RT_MAX_LAYERS + 1];
    int n = qat_rt_session_profile(s, p, QAT_RT_MAX_LAYERS + 1);
    double total = 0.0;
    for (int i = 0; i < n; i++)
        total += p[i].seconds;
    fprintf(f, "profile (thread 0, %ld images, %.3f s in layers, %.3f s wall):\n",
            n ? p[0].images : 0L, total, wall);
    fprintf(f, "  %-5s %-16s %-10s %10s %6s %9s\n", "layer", "name", "op", "us/image", "%",
            "GMAC/s");
    for (int i = 0; i < n; i++) {
        double per = p[i].images ? 1e6 * p[i].seconds / (double)p[i].images : 0.0;
        char idx[16] = "-";
        if (p[i].index >= 0)
            snprintf(idx, sizeof idx, "%d", p[i].index);
        fprintf(f, "  %-5s %-16.16s %-10s %10.2f %6.1f", idx, p[i].name, p[i].op, per,
                total > 0 ? 100.0 * p[i].seconds / total : 0.0);
        if (p[i].macs > 0 && p[i].seconds > 0)
            fprintf(f, " %9.2f", p[i].macs / p[i].seconds * 1e-9);
        fputc('\n', f);
    }
}

int main(int argc, char **argv)
{
    args a;
    int rc = parse_args(argc, argv, &a);
    if (rc >= 0)
        return rc;

    qat_error e;
    qat_error_clear(&e);
    qat_rt_model *m = NULL;
    qat_rt_session *s = NULL;
    data d = {0};
    int8_t *logits = NULL;
    int exit_code = 0;
    qat_rt_owned_desc desc = {0};
    const char *isa = NULL;
    qat_status st = qat_rt_isa_resolve(a.isa, &isa, &e); /* before reading anything */
    if (!st)
        st = qat_rt_h5_read_desc(a.model, &desc, &e);
    if (!st) {
        st = qat_rt_model_create_isa(&desc.desc, isa, &m, &e);
        if (st)
            qat_error_prefix(&e, "%s", a.model);
    }
    qat_rt_owned_desc_free(&desc);
    if (!st)
        st = load_data(&a, m, &d, &e);
    int nc = m ? qat_rt_model_num_classes(m) : 0;
    size_t in = m ? qat_rt_model_input_size(m) : 0, total = 0;
    if (!st && qat_size_mul((size_t)d.n, (size_t)nc, &total))
        st = qat_fail(&e, QAT_ENOMEM, "logits for %u images do not fit in memory", (unsigned)d.n);
    if (!st && !(logits = malloc(total)))
        st = qat_fail(&e, QAT_ENOMEM, "out of memory for %zu bytes of logits", total);
    if (!st) {
        int batch = (uint32_t)a.batch < d.n ? a.batch : (int)d.n;
        qat_rt_options o = {.threads = a.threads, .max_batch = batch, .profile = a.profile};
        st = qat_rt_session_create(m, &o, &s, &e);
        double t0 = qat_clock_seconds();
        for (uint32_t i = 0; !st && i < d.n; i += (uint32_t)batch) {
            int n = d.n - i < (uint32_t)batch ? (int)(d.n - i) : batch;
            st = qat_rt_run(s, d.pixels + (size_t)i * in, n, logits + (size_t)i * (size_t)nc, &e);
        }
        double secs = qat_clock_seconds() - t0;
        if (!st && a.dump)
            st = write_logits(a.dump, logits, total, &e);
        if (!st) {
            uint32_t correct = 0;
            for (uint32_t i = 0; i < d.n; i++)
                correct += qat_rt_argmax(logits + (size_t)i * (size_t)nc, nc) == d.labels[i];
            double acc = (double)correct / (double)d.n;
            double ips = (double)d.n / (secs > 1e-9 ? secs : 1e-9);
            if (a.json)
                printf("{\"accuracy\": %.6f, \"images_per_second\": %.1f}\n", acc, ips);
            else
                printf("model: %s\nimages: %u (%dx%d) from %s\naccuracy: %.4f (%u/%u)\n"
                       "throughput: %.1f images/s (batch %d, threads %d, isa %s)\n",
                       a.model, (unsigned)d.n, d.h, d.w, a.images, acc, (unsigned)correct,
                       (unsigned)d.n, ips, batch, a.threads, qat_rt_model_isa(m));
            if (a.profile)
                print_profile(s, secs, a.json ? stderr : stdout);
        }
    }
    if (st)
        exit_code = fail(&e);
    else if (fflush(stdout) != 0)
        exit_code = 1; /* e.g. stdout is a closed pipe: the report was lost */
    free(logits);
    free(d.pixels);
    free(d.labels);
    qat_rt_session_destroy(s);
    qat_rt_model_destroy(m);
    return exit_code;
}
