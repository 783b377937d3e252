/* bench-infer: inference speed of a network three ways, on MNIST test
 * images:
 *   - our integer runtime (qat_rt_*), images/s at batch 1 and 64;
 *   - our training engine's fp32 forward (qat_model_forward, eval mode, no
 *     grad, simulated quantization off), images/s at the same batches;
 *   - per-kernel GMAC/s of conv2 and fc1, and of the first grouped /
 *     depthwise conv if the model has one (one thread, one 16-image chunk
 *     per call, CPU time) against a measured peak of the same instruction
 *     (vpdpbusd for avx512vnni, vpmaddwd + vpaddd for avx2): a tight loop
 *     of independent accumulators, shown as a percentage; and of a
 *     DS-CNN-shaped depthwise conv2d (14x14x64, 3x3 stride 1, batch 64 a
 *     call) beside them.
 * The network is the config's (default configs/mnist_cnn.ini) with seeded
 * random weights, its activation ranges calibrated on real images, or a
 * trained checkpoint's. Speed does not depend on the weight values.
 *
 * usage: bench-infer [--config INI | --checkpoint H5] [--images IDX]
 *                    [--threads N] [--isa ISA] [--seconds S] [--repeats R] [--json]
 * Figures are medians of R timed runs of S seconds each (wall clock), after
 * a warm-up. benchmarks/README.md has the side-by-side command with PyTorch. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "qat/autograd.h"
#include "qat/clock.h"
#include "qat/config.h"
#include "qat/data.h"
#include "qat/export.h"
#include "qat/nn.h"
#include "qat/team.h"
#include "qat/train.h"
#include "runtime/rt_internal.h"

#include "peak.h"

typedef struct opts {
    const char *config, *checkpoint, *images, *isa;
    int threads, repeats, json;
    double seconds;
} opts;

static double cpu(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static __attribute__((noreturn)) void die(const char *what, const qat_error *e)
{
    fprintf(stderr, "bench-infer: %s: %s\n", what, e ? e->msg : "failed");
    exit(1);
}

/* Runs fn(ctx, batch, offset) repeatedly for o->seconds, o->repeats times;
 * returns the median images/s. offset walks over the test images. */
typedef void (*run_fn)(void *ctx, int batch, size_t first);
static double images_per_second(const opts *o, run_fn fn, void *ctx, int batch, size_t nimg)
{
    double rates[64];
    size_t first = 0;
    for (double end = qat_clock_seconds() + 0.3; qat_clock_seconds() < end;) { /* warm-up */
        fn(ctx, batch, first);
        first = first + 2 * (size_t)batch <= nimg ? first + (size_t)batch : 0;
    }
    for (int r = 0; r < o->repeats; r++) {
        long images = 0;
        double t0 = qat_clock_seconds(), t;
        do {
            fn(ctx, batch, first);
            first = first + 2 * (size_t)batch <= nimg ? first + (size_t)batch : 0;
            images += batch;
        } while ((t = qat_clock_seconds() - t0) < o->seconds);
        rates[r] = (double)images / t;
    }
    return median(rates, o->repeats);
}

/* ---- the two engines ----------------------------------------------------------------- */

typedef struct int8_ctx {
    qat_rt_session *s;
    const uint8_t *px;
    size_t isz;
    int8_t *logits;
} int8_ctx;

static void run_int8(void *ctx, int batch, size_t first)
{
    int8_ctx *c = ctx;
    qat_error e;
    if (qat_rt_run(c->s, c->px + first * c->isz, batch, c->logits, &e))
        die("qat_rt_run", &e);
}

typedef struct fp32_ctx {
    qat_model *m;
    qat_tape *t;
    const uint8_t *px;
    size_t isz;
} fp32_ctx;

static void run_fp32(void *ctx, int batch, size_t first)
{
    fp32_ctx *c = ctx;
    qat_tape_reset(c->t);
    qat_model_forward(c->m, c->t, c->px + first * c->isz, batch);
}

/* ---- per-kernel GMAC/s ------------------------------------------------------------- */

/* The first plain conv2d and linear layers after the first conv (conv2 and
 * fc1), or with `grouped` the first grouped / depthwise conv2d (0 GMAC/s
 * and *name untouched when the model has none). */
static double kernel_gmacs(const qat_rt_model *m, int want_op, int grouped, const uint8_t *px,
                           size_t isz, double seconds, const char **name)
{
    enum { CHUNK = 16 };
    int seen_conv = 0, li = -1;
    for (int i = 0; i < m->num_layers && li < 0; i++) {
        const qat_rt_layer *c = &m->layers[i];
        if (c->op == QAT_RT_CONV2D && seen_conv++ == 0 && !grouped)
            continue;
        if ((int)c->op == want_op && (want_op != QAT_RT_LINEAR || seen_conv) &&
            (want_op != QAT_RT_CONV2D || (c->conv.groups > 1) == grouped))
            li = i;
    }
    if (li < 0)
        return 0.0;
    const qat_rt_layer *l = &m->layers[li];
    const qat_rt_kernels *k = m->k;
    *name = l->name;
    /* input codes: the pixels reused (kernel speed does not depend on values) */
    /* grouped convs: the table's own scratch query, if it has one (as the
     * session sizes it) */
    size_t scratch_bytes =
        l->conv.groups > 1
            ? ((k->gconv_scratch ? k->gconv_scratch(&l->conv, CHUNK) : 0) + 64) & ~(size_t)63
            : (k->conv_scratch(&l->conv, CHUNK) + 64) & ~(size_t)63;
    int8_t *in = aligned_alloc(64, (m->arena * CHUNK + 64) & ~(size_t)63);
    int8_t *out = aligned_alloc(64, (m->arena * CHUNK + 64) & ~(size_t)63);
    void *scratch = aligned_alloc(64, scratch_bytes ? scratch_bytes : 64);
    if (!in || !out || !scratch)
        die("kernel bench: out of memory", NULL);
    for (size_t i = 0; i < l->in_size * CHUNK; i++)
        in[i] = (int8_t)(px[i % (isz * CHUNK)] - 128);
    size_t rows = l->rows * CHUNK;
    double t0 = cpu(), t;
    long calls = 0;
    do {
        if (l->fused_pool)
            k->conv2d_maxpool(&l->conv, &l[1].pool, in, out, 0, rows, 0, l->conv.out_c, scratch);
        else if (l->op == QAT_RT_CONV2D && l->conv.groups > 1)
            k->gconv2d(&l->conv, in, out, 0, rows, 0, l->conv.out_c, scratch);
        else if (l->op == QAT_RT_CONV2D)
            k->conv2d(&l->conv, in, out, 0, rows, 0, l->conv.out_c, scratch);
        else
            k->linear(&l->conv, in, out, 0, rows, 0, l->conv.out_c, scratch);
        calls++;
    } while ((t = cpu() - t0) < seconds);
    free(in);
    free(out);
    free(scratch);
    return l->macs * CHUNK * (double)calls / t * 1e-9;
}

/* A DS-CNN-shaped depthwise conv2d on the model's kernel path: 14x14x64,
 * 3x3 stride 1 padding 1, multiplier 1, 64 images a call (one thread, CPU
 * time). MACs per image: 14 * 14 output pixels x 64 channels x 9 taps
 * (one input channel per output channel), 112,896. */
static double dwconv_gmacs(const qat_rt_kernels *k, double seconds)
{
    enum { H = 14, W = 14, C = 64, KS = 3, BATCH = 64 };
    qat_rt_conv_params p = {.in_h = H, .in_w = W, .in_c = C, .out_h = H, .out_w = W, .out_c = C,
                            .kernel_h = KS, .kernel_w = KS, .stride_h = 1, .stride_w = 1,
                            .pad_h = 1, .pad_w = 1, .in_zp = -128, .out_zp = -128,
                            .act_min = -128, .act_max = 127, .groups = C};
    static int8_t w[C * KS * KS];
    static int32_t wzp[C], bias[C], mult[C], shift[C];
    uint32_t r = 12345u; /* speed does not depend on the values */
    for (int i = 0; i < C * KS * KS; i++)
        w[i] = (int8_t)((r = r * 1664525u + 1013904223u) >> 24);
    for (int c = 0; c < C; c++) {
        bias[c] = (int32_t)((r = r * 1664525u + 1013904223u) >> 22) - 512;
        mult[c] = (1 << 30) + c;
        shift[c] = -8;
    }
    p.weights = w;
    p.weight_zp = wzp;
    p.bias_folded = bias;
    p.multiplier = mult;
    p.shift = shift;
    const size_t in_n = (size_t)BATCH * H * W * C, rows = (size_t)BATCH * H * W;
    size_t packed_bytes = k->gconv_packed_size ? k->gconv_packed_size(&p) : 0;
    size_t scratch_bytes = k->gconv_scratch ? k->gconv_scratch(&p, BATCH) : 0;
    int8_t *in = aligned_alloc(64, in_n), *out = aligned_alloc(64, in_n);
    void *packed = aligned_alloc(64, (packed_bytes + 64) & ~(size_t)63);
    void *scratch = aligned_alloc(64, (scratch_bytes + 64) & ~(size_t)63);
    if (!in || !out || !packed || !scratch)
        die("depthwise bench: out of memory", NULL);
    for (size_t i = 0; i < in_n; i++)
        in[i] = (int8_t)((r = r * 1664525u + 1013904223u) >> 24);
    if (k->gconv_pack) {
        k->gconv_pack(&p, packed);
        p.packed = packed;
    }
    double t0 = cpu(), t;
    long calls = 0;
    do {
        k->gconv2d(&p, in, out, 0, rows, 0, C, scratch);
        calls++;
    } while ((t = cpu() - t0) < seconds);
    free(in);
    free(out);
    free(packed);
    free(scratch);
    return (double)rows * C * KS * KS * (double)calls / t * 1e-9;
}

static double peak_gmacs(const char *isa, double seconds)
{
    long (*fn)(long) = NULL;
#if defined(__x86_64__)
    if (strcmp(isa, "avx512vnni") == 0)
        fn = qat_bench_peak_avx512vnni;
    else if (strcmp(isa, "avx2") == 0)
        fn = qat_bench_peak_avx2;
#endif
    if (!fn)
        return 0.0;
    double best = 0.0;
    for (int r = 0; r < 3; r++) {
        long macs = 0, iters = 1 << 20;
        double t0 = cpu(), t;
        do {
            long m = fn(iters);
            if (m < 0) {
                fprintf(stderr, "bench-infer: the %s peak loop's sums are wrong\n", isa);
                exit(1);
            }
            macs += m;
        } while ((t = cpu() - t0) < seconds / 3);
        double g = (double)macs / t * 1e-9;
        best = g > best ? g : best;
    }
    return best;
}

/* ---- setup ---------------------------------------------------------------------------- */

static void parse(int argc, char **argv, opts *o)
{
    *o = (opts){.config = "configs/mnist_cnn.ini",
                .images = "datasets/mnist-subset/t10k-images-idx3-ubyte",
                .threads = 2, .repeats = 5, .seconds = 2.0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--json") == 0) {
            o->json = 1;
            continue;
        }
        if (!v) {
            fprintf(stderr, "bench-infer: %s: missing argument (see the comment atop "
                            "benchmarks/bench_infer.c)\n", a);
            exit(2);
        }
        i++;
        if (strcmp(a, "--config") == 0)
            o->config = v;
        else if (strcmp(a, "--checkpoint") == 0)
            o->checkpoint = v;
        else if (strcmp(a, "--images") == 0)
            o->images = v;
        else if (strcmp(a, "--isa") == 0)
            o->isa = v;
        else if (strcmp(a, "--threads") == 0)
            o->threads = atoi(v);
        else if (strcmp(a, "--repeats") == 0)
            o->repeats = atoi(v);
        else if (strcmp(a, "--seconds") == 0)
            o->seconds = atof(v);
        else {
            fprintf(stderr, "bench-infer: unknown option '%s'\n", a);
            exit(2);
        }
    }
    if (o->threads < 1 || o->repeats < 1 || o->repeats > 64 || !(o->seconds > 0)) {
        fprintf(stderr, "bench-infer: --threads >= 1, --repeats in [1, 64], --seconds > 0\n");
        exit(2);
    }
}

int main(int argc, char **argv)
{
    opts o;
    parse(argc, argv, &o);
    qat_error e;
    qat_error_clear(&e);

    uint8_t *buf, *px;
    size_t len;
    uint32_t nimg;
    int ih, iw;
    if (qat_read_file_maybe_gz(o.images, &buf, &len, &e) ||
        qat_idx_parse_images(buf, len, o.images, &px, &nimg, &ih, &iw, &e))
        die(o.images, &e);
    free(buf);
    if (nimg < 128)
        die("need at least 128 images", NULL);
    const size_t isz = (size_t)ih * (size_t)iw;

    qat_model *m = NULL;
    qat_team *team = NULL;
    qat_tape *t = NULL;
    if (qat_team_create(o.threads, &team, &e) || qat_tape_create(team, &t, &e))
        die("tape", &e);
    if (o.checkpoint) {
        if (qat_checkpoint_load_model(o.checkpoint, &m, &e))
            die(o.checkpoint, &e);
    } else {
        static qat_config cfg;
        if (qat_config_load(o.config, NULL, 0, &cfg, &e) || qat_model_create(&cfg, &m, &e))
            die(o.config, &e);
        /* activation ranges from real images, as training would set them */
        qat_model_set_quant_active(m, 1);
        qat_tape_set_training(t, 1);
        qat_tape_set_grad_enabled(t, 0);
        for (int b = 0; b < 8; b++) {
            qat_tape_reset(t);
            qat_model_forward(m, t, px + (size_t)b * 64 * isz, 64);
        }
    }
    qat_rt_owned_desc desc;
    qat_rt_model *rm = NULL;
    if (qat_export_desc(m, &desc, &e) || qat_rt_model_create_isa(&desc.desc, o.isa, &rm, &e))
        die("export", &e);
    qat_rt_owned_desc_free(&desc);
    const char *isa = qat_rt_model_isa(rm);

    /* our int8 runtime */
    int8_ctx ic = {.px = px, .isz = isz, .logits = malloc(64 * 16)};
    qat_rt_options ro = {.threads = o.threads, .max_batch = 64};
    if (qat_rt_session_create(rm, &ro, &ic.s, &e))
        die("session", &e);
    double int8_b1 = images_per_second(&o, run_int8, &ic, 1, nimg);
    double int8_b64 = images_per_second(&o, run_int8, &ic, 64, nimg);
    qat_rt_session_destroy(ic.s);

    /* our fp32 forward: eval mode, no grad, simulated quantization off */
    fp32_ctx fc = {.m = m, .t = t, .px = px, .isz = isz};
    qat_model_set_quant_active(m, 0);
    qat_tape_set_training(t, 0);
    qat_tape_set_grad_enabled(t, 0);
    double fp32_b1 = images_per_second(&o, run_fp32, &fc, 1, nimg);
    double fp32_b64 = images_per_second(&o, run_fp32, &fc, 64, nimg);

    /* kernels against the peak of their instruction (one thread, CPU time) */
    const char *conv_name = "-", *fc_name = "-", *dw_name = NULL;
    double peak = peak_gmacs(isa, 1.0);
    double conv2 = kernel_gmacs(rm, QAT_RT_CONV2D, 0, px, isz, 1.0, &conv_name);
    double fc1 = kernel_gmacs(rm, QAT_RT_LINEAR, 0, px, isz, 1.0, &fc_name);
    double gconv = kernel_gmacs(rm, QAT_RT_CONV2D, 1, px, isz, 1.0, &dw_name);
    double dw = dwconv_gmacs(rm->k, 1.0);

    if (o.json) {
        printf("{\"impl\": \"qat-int8\", \"isa\": \"%s\", \"threads\": %d, \"batch1\": %.1f, "
               "\"batch64\": %.1f}\n",
               isa, o.threads, int8_b1, int8_b64);
        printf("{\"impl\": \"qat-fp32\", \"threads\": %d, \"batch1\": %.1f, \"batch64\": %.1f}\n",
               o.threads, fp32_b1, fp32_b64);
        printf("{\"kernels\": \"%s\", \"peak_gmacs\": %.1f, \"%s_gmacs\": %.1f, "
               "\"%s_gmacs\": %.1f, \"dwconv_14x14x64_gmacs\": %.1f",
               isa, peak, conv_name, conv2, fc_name, fc1, dw);
        if (dw_name)
            printf(", \"%s_gmacs\": %.1f", dw_name, gconv);
        printf("}\n");
    } else {
        printf("bench-infer: %s, %d threads, %d x %.1f s per figure (median)\n",
               o.checkpoint ? o.checkpoint : o.config, o.threads, o.repeats, o.seconds);
        printf("  %-22s %12s %12s\n", "images/s", "batch 1", "batch 64");
        printf("  %-22s %12.1f %12.1f\n", "qat int8", int8_b1, int8_b64);
        printf("  %-22s %12.1f %12.1f\n", "qat fp32 (train engine)", fp32_b1, fp32_b64);
        printf("  %-22s %12.2f %12.2f\n", "int8 / fp32", int8_b1 / fp32_b1, int8_b64 / fp32_b64);
        printf("  kernel path %s, one thread, 16-image chunks, CPU time:\n", isa);
        if (peak > 0) {
            printf("    peak (tight loop)     %8.1f GMAC/s\n", peak);
            printf("    %-8s %-12s %8.1f GMAC/s  %5.1f%% of peak\n", conv_name,
                   rm->layers[0].fused_pool ? "(+maxpool)" : "", conv2, 100 * conv2 / peak);
            printf("    %-8s %-12s %8.1f GMAC/s  %5.1f%% of peak\n", fc_name, "", fc1,
                   100 * fc1 / peak);
            if (dw_name)
                printf("    %-8s %-12s %8.1f GMAC/s  %5.1f%% of peak\n", dw_name, "(grouped)",
                       gconv, 100 * gconv / peak);
        } else {
            printf("    %s %.1f GMAC/s, %s %.1f GMAC/s (no peak loop for this path)\n",
                   conv_name, conv2, fc_name, fc1);
            if (dw_name)
                printf("    %s (grouped) %.1f GMAC/s\n", dw_name, gconv);
        }
        printf("    %-21s %8.1f GMAC/s  (depthwise 14x14x64 3x3/1 pad 1, batch 64)\n", "dwconv",
               dw);
    }
    free(ic.logits);
    free(px);
    qat_rt_model_destroy(rm);
    qat_model_destroy(m);
    qat_tape_destroy(t);
    qat_team_destroy(team);
    return 0;
}
