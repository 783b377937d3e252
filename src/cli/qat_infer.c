/* qat-infer: runs an integer model file on a dataset and reports accuracy
 * (or, for a regression model, MSE, MAE and R^2) and throughput. A thin
 * main: the work is in the runtime (qat_rt_*), the HDF5 model loader
 * (qat_rt_h5_*) and the dataset readers (qat_data_*). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qat/clock.h"
#include "qat/data.h"
#include "qat/data_h5.h"
#include "qat/runtime.h"
#include "qat/runtime_h5.h"

#define PROG "qat-infer"
#define DEFAULT_BATCH 64
#define DEFAULT_THREADS 1

static const char usage_text[] =
    "usage: " PROG " MODEL --images FILE --labels FILE [options]\n"
    "       " PROG " MODEL --data PATH [--format F] [--split S] [--target COL]\n"
    "                 [--x-name NAME] [--y-name NAME] [options]\n"
    "options: [--batch N] [--threads N] [--isa ISA] [--json] [--dump-logits FILE]\n"
    "         [--dump-outputs FILE] [--profile]\n"
    "\n"
    "Runs the integer model MODEL (HDF5, docs/FORMAT.md) on a dataset and reports\n"
    "top-1 accuracy against the labels -- for a regression model (its file says\n"
    "task = regression), the MSE, MAE and R^2 of its dequantized outputs against\n"
    "the targets -- and the inference throughput (examples/s; loading is not\n"
    "timed). A float32-input model runs on float features (qat_rt_run_float).\n"
    "\n"
    "  --images FILE       inputs: an IDX file (any rank, unsigned byte or float32;\n"
    "                      raw or gzip) or a .npy array\n"
    "  --labels FILE       their labels or targets, the same format\n"
    "  --data PATH         a split of any format qat-train reads: a file (.h5, .csv,\n"
    "                      a CIFAR batch, an IDX or .npy inputs file with its targets\n"
    "                      beside it) or a folder holding the dataset\n"
    "  --format F          auto (default), idx, hdf5, npy, cifar, csv\n"
    "  --split S           the split of a folder or of an HDF5 file with groups:\n"
    "                      test (default) or train\n"
    "  --target COL        CSV: the target column (default target)\n"
    "  --x-name, --y-name  HDF5: the inputs and targets datasets (default x, y)\n"
    "  --batch N           images per qat_rt_run call (default 64)\n"
    "  --threads N         threads splitting each batch (default 1); with fewer images\n"
    "                      than threads (e.g. --batch 1) they split each layer instead\n"
    "  --isa ISA           kernel path: auto (default: $QAT_ISA if set, else the\n"
    "                      fastest this CPU runs), ref, avx2, avx512vnni, neon,\n"
    "                      neon-dot, neon-plain.\n"
    "                      Every path gives identical logits; one the CPU lacks is an\n"
    "                      error (exit 2)\n"
    "  --json              print one line: {\"accuracy\": A, \"images_per_second\": R}\n"
    "                      (regression: {\"mse\": .., \"mae\": .., \"r2\": .., ...})\n"
    "  --dump-logits FILE  write the int8 logits, N x num_classes, row-major, raw\n"
    "                      (a model whose last layer is float: its float32 logits,\n"
    "                      little-endian)\n"
    "  --dump-outputs FILE write the dequantized outputs, N x num_classes float32\n"
    "                      (little-endian), row-major, raw\n"
    "  --profile           print the time spent in each layer (thread 0's view)\n"
    "  -h, --help          print this help\n"
    "\n"
    "Exit status: 0 success, 2 bad usage or input (flags, model, IDX files),\n"
    "1 any other failure.\n";

typedef struct args {
    const char *model, *images, *labels, *dump, *dump_out, *isa;
    const char *data, *format, *split, *target, *x_name, *y_name;
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
    *a = (args){.batch = DEFAULT_BATCH, .threads = DEFAULT_THREADS, .format = "auto",
                .split = "test", .target = "target", .x_name = "x", .y_name = "y"};
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
        static const char *const with_value[] = {
            "--images", "--labels", "--batch", "--threads", "--dump-logits", "--isa",
            "--data", "--format", "--split", "--target", "--x-name", "--y-name", "--dump-outputs"};
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
        else if (strcmp(flag, "--dump-outputs") == 0)
            a->dump_out = value;
        else if (strcmp(flag, "--data") == 0)
            a->data = value;
        else if (strcmp(flag, "--format") == 0)
            a->format = value;
        else if (strcmp(flag, "--split") == 0)
            a->split = value;
        else if (strcmp(flag, "--target") == 0)
            a->target = value;
        else if (strcmp(flag, "--x-name") == 0)
            a->x_name = value;
        else if (strcmp(flag, "--y-name") == 0)
            a->y_name = value;
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
    if (qat_data_format_parse(a->format) < 0)
        return usage_error("--format: expected auto, idx, hdf5, npy, cifar or csv, found '%s'",
                           a->format);
    if (strcmp(a->split, "test") != 0 && strcmp(a->split, "train") != 0)
        return usage_error("--split: expected test or train, found '%s'", a->split);
    if (a->data && (a->images || a->labels))
        return usage_error("--data: give either --data or --images and --labels, not both");
    if (!a->data && !a->images)
        return usage_error("--images: required (or --data)");
    if (!a->data && !a->labels)
        return usage_error("--labels: required");
    return -1;
}

/* Loads the dataset and checks it fits the model: its inputs' type and
 * size, its labels below the model's classes or its targets one per
 * output. */
static qat_status load_data(const args *a, const qat_rt_model *m, qat_dataset *d, qat_error *e)
{
    int regression = qat_rt_model_task(m) == QAT_RT_TASK_REGRESSION;
    qat_data_format fmt = (qat_data_format)qat_data_format_parse(a->format);
    /* labels are checked against the model below, with its own message */
    qat_status st;
    if (a->data) {
        qat_data_source src = {.format = fmt, .dir = a->data, .x_name = a->x_name,
                               .y_name = a->y_name, .target = a->target,
                               .regression = regression, .num_classes = 256,
                               .mem_available = SIZE_MAX, .h5 = qat_data_h5_read};
        st = qat_data_load(&src, a->split, 0, d, NULL, 0, e);
    } else {
        st = qat_data_load_pair(fmt, a->images, a->labels, regression, 256, SIZE_MAX, d, e);
    }
    if (st)
        return st;
    const char *src = a->data ? a->data : a->images;
    size_t want = qat_rt_model_input_size(m), have = qat_dataset_image_size(d);
    if (have != want)
        return qat_fail(e, QAT_EINVAL,
                        "%s: images are %dx%d (%zu pixels), but model %s expects %zu values "
                        "per image",
                        src, d->h == 1 && d->w == 1 ? d->c : d->h, d->h == 1 && d->w == 1 ? 1 : d->w,
                        have, a->model, want);
    int model_float = qat_rt_model_input_type(m) == QAT_RT_INPUT_FLOAT32;
    if (model_float != (qat_dataset_type(d) == QAT_DATA_F32))
        return qat_fail(e, QAT_EINVAL, "%s: holds %s inputs, but model %s takes %s", src,
                        model_float ? "uint8" : "float32", a->model,
                        model_float ? "float32 features" : "uint8 pixels");
    int nc = qat_rt_model_num_classes(m);
    const char *tname = a->data ? a->data : a->labels;
    if (regression && d->target_dim != nc)
        return qat_fail(e, QAT_EINVAL, "%s: %d targets per example, but model %s has %d outputs",
                        tname, d->target_dim, a->model, nc);
    for (uint32_t i = 0; d->labels && i < d->n; i++)
        if (d->labels[i] >= nc)
            return qat_fail(e, QAT_EINVAL,
                            "%s: label %u of example %u is not below the model's %d classes",
                            tname, (unsigned)d->labels[i], (unsigned)i, nc);
    return QAT_OK;
}

static qat_status write_raw(const char *flag, const char *path, const void *v, size_t bytes,
                            qat_error *e)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return qat_fail(e, QAT_EIO, "%s %s: cannot open: %s", flag, path, strerror(errno));
    size_t wrote = fwrite(v, 1, bytes, f);
    int bad = wrote != bytes || ferror(f);
    if (fclose(f) != 0 || bad)
        return qat_fail(e, QAT_EIO, "%s %s: write failed: %s", flag, path, strerror(errno));
    return QAT_OK;
}

/* count float32 values, little-endian (the byte order of every platform
 * qat builds on; written by bytes so it holds anyway), through le (4 *
 * count bytes). */
static qat_status write_f32(const char *flag, const char *path, const float *v, size_t count,
                            uint8_t *le, qat_error *e)
{
    for (size_t i = 0; i < count; i++) {
        uint32_t u;
        memcpy(&u, &v[i], 4);
        for (int b = 0; b < 4; b++)
            le[4 * i + (size_t)b] = (uint8_t)(u >> (8 * b));
    }
    return write_raw(flag, path, le, 4 * count, e);
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
    qat_dataset d = {0};
    int8_t *logits = NULL;
    float *outputs = NULL;
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
    /* what the file stores for the weights: packed codes, or codebooks and
     * indices for palettized layers */
    size_t wbytes = 0;
    int npal = 0, nw = 0, nfl = 0;
    for (int i = 0; !st && i < desc.desc.num_layers; i++) {
        const qat_rt_layer_desc *l = &desc.layers[i];
        if (l->op != QAT_RT_CONV2D && l->op != QAT_RT_LINEAR)
            continue;
        nw++;
        npal += l->palette_size != 0;
        nfl += l->is_float;
        wbytes += l->is_float ? (size_t)l->kernel_h * (size_t)l->kernel_w * (size_t)l->in_c *
                                    (size_t)l->out_c * sizeof(float)
                  : l->palette_size ? (size_t)l->palette_groups * (size_t)l->palette_size +
                                        l->indices_bytes
                                  : l->weights_bytes;
    }
    qat_rt_owned_desc_free(&desc);
    if (!st)
        st = load_data(&a, m, &d, &e);
    int nc = m ? qat_rt_model_num_classes(m) : 0;
    size_t in = m ? qat_rt_model_input_size(m) : 0, total = 0;
    if (!st && qat_size_mul((size_t)d.n, (size_t)nc, &total))
        st = qat_fail(&e, QAT_ENOMEM, "logits for %u images do not fit in memory", (unsigned)d.n);
    /* float logits: the outputs are the logits, and logits the bytes of a dump */
    const int fl = m && qat_rt_model_float_logits(m);
    if (!st && (!(logits = malloc(fl ? 4 * total + 1 : total + 1)) ||
                !(outputs = malloc(total * sizeof(float) + 1))))
        st = qat_fail(&e, QAT_ENOMEM, "out of memory for %zu bytes of logits", total);
    int is_float = !st && qat_dataset_type(&d) == QAT_DATA_F32;
    if (!st) {
        int batch = (uint32_t)a.batch < d.n ? a.batch : (int)d.n;
        qat_rt_options o = {.threads = a.threads, .max_batch = batch, .profile = a.profile};
        st = qat_rt_session_create(m, &o, &s, &e);
        double t0 = qat_clock_seconds();
        for (uint32_t i = 0; !st && i < d.n; i += (uint32_t)batch) {
            int n = d.n - i < (uint32_t)batch ? (int)(d.n - i) : batch;
            int8_t *lg = logits + (size_t)i * (size_t)nc;
            float *flg = outputs + (size_t)i * (size_t)nc;
            if (fl)
                st = is_float ? qat_rt_run_float_logits(s, d.features + (size_t)i * in, n, flg, &e)
                              : qat_rt_run_logits(s, d.images + (size_t)i * in, n, flg, &e);
            else
                st = is_float ? qat_rt_run_float(s, d.features + (size_t)i * in, n, lg, &e)
                              : qat_rt_run(s, d.images + (size_t)i * in, n, lg, &e);
        }
        double secs = qat_clock_seconds() - t0;
        if (!st && !fl)
            qat_rt_dequantize_logits(m, logits, (int)d.n, outputs);
        uint32_t correct = 0;
        for (uint32_t i = 0; !st && d.labels && i < d.n; i++)
            correct += (fl ? qat_rt_argmax_f32(outputs + (size_t)i * (size_t)nc, nc)
                           : qat_rt_argmax(logits + (size_t)i * (size_t)nc, nc)) == d.labels[i];
        if (!st && a.dump)
            st = fl ? write_f32("--dump-logits", a.dump, outputs, total, (uint8_t *)logits, &e)
                    : write_raw("--dump-logits", a.dump, logits, total, &e);
        if (!st && a.dump_out)
            st = write_f32("--dump-outputs", a.dump_out, outputs, total,
                           fl ? (uint8_t *)logits : (uint8_t *)outputs, &e);
        const char *src = a.data ? a.data : a.images;
        double ips = (double)d.n / (secs > 1e-9 ? secs : 1e-9);
        if (!st && d.targets) {
            qat_regression_metrics r;
            if (!fl)
                qat_rt_dequantize_logits(m, logits, (int)d.n, outputs);
            qat_dataset_regression_metrics(&d, outputs, &r);
            if (a.json)
                printf("{\"mse\": %.8g, \"mae\": %.8g, \"r2\": %.8g, \"images_per_second\": "
                       "%.1f}\n",
                       r.mse, r.mae, r.r2, ips);
            else
                printf("model: %s\nexamples: %u (%dx%dx%d) from %s\nmse: %.6g\nmae: %.6g\n"
                       "r2: %.6f\nthroughput: %.1f examples/s (batch %d, threads %d, isa %s)\n",
                       a.model, (unsigned)d.n, d.h, d.w, d.c, src, r.mse, r.mae, r.r2, ips,
                       batch, a.threads, qat_rt_model_isa(m));
        } else if (!st) {
            double acc = (double)correct / (double)d.n;
            if (a.json)
                printf("{\"accuracy\": %.6f, \"images_per_second\": %.1f}\n", acc, ips);
            else if (d.c == 1 && !is_float)
                printf("model: %s\nimages: %u (%dx%d) from %s\naccuracy: %.4f (%u/%u)\n"
                       "throughput: %.1f images/s (batch %d, threads %d, isa %s)\n",
                       a.model, (unsigned)d.n, d.h, d.w, src, acc, (unsigned)correct,
                       (unsigned)d.n, ips, batch, a.threads, qat_rt_model_isa(m));
            else
                printf("model: %s\nexamples: %u (%dx%dx%d) from %s\naccuracy: %.4f (%u/%u)\n"
                       "throughput: %.1f examples/s (batch %d, threads %d, isa %s)\n",
                       a.model, (unsigned)d.n, d.h, d.w, d.c, src, acc, (unsigned)correct,
                       (unsigned)d.n, ips, batch, a.threads, qat_rt_model_isa(m));
        }
        if (!st && !a.json) {
            printf("weights: %zu bytes stored (%d of %d weight layers palettized", wbytes,
                   npal, nw);
            if (nfl)
                printf(", %d in float32", nfl);
            printf(")\n");
            printf("activations: %zu bytes per image (the planned arena's peak)\n",
                   qat_rt_model_activation_bytes(m));
        }
        if (!st) {
            if (a.profile)
                print_profile(s, secs, a.json ? stderr : stdout);
        }
    }
    if (st)
        exit_code = fail(&e);
    else if (fflush(stdout) != 0)
        exit_code = 1; /* e.g. stdout is a closed pipe: the report was lost */
    free(logits);
    free(outputs);
    qat_dataset_free(&d);
    qat_rt_session_destroy(s);
    qat_rt_model_destroy(m);
    return exit_code;
}
