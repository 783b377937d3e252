/* qat-export: checkpoint or integer model file -> integer model file (HDF5),
 * embeddable C source or ONNX. A thin main over export and the model file
 * reader; the input kind is told by the file's root `format` attribute. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qat/export.h"
#include "qat/ops.h"
#include "qat/runtime_h5.h"
#ifdef QAT_HAVE_ONNX
#include "qat/export_onnx.h"
#endif
#include "qat/train.h"

#define CKPT_FORMAT "qat-checkpoint"
#define MODEL_FORMAT "qat-int8-model"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: qat-export INPUT -o OUTPUT [--format h5|c|onnx] [--name IDENT]\n"
            "                  [--onnx-style qoperator|qdq] [--onnx-requant float|exact]\n"
            "\n"
            "Writes the integer model of INPUT, which is either a qat-train checkpoint\n"
            "(checkpoint.h5) or an integer model file (model.int8.h5); the file's root\n"
            "'format' attribute tells which.\n"
            "\n"
            "  -o, --output OUTPUT  h5: the model file to write (docs/FORMAT.md);\n"
            "                       c: a path prefix: writes OUTPUT.c and OUTPUT.h (a\n"
            "                       trailing .c or .h on OUTPUT is dropped); onnx: the\n"
            "                       .onnx file to write\n"
            "  --format h5|c        h5 (default) or embeddable C: the model as const\n"
            "                       arrays and an accessor IDENT_model() returning its\n"
            "                       qat_rt_model_desc; compiles with the runtime core\n"
            "                       alone (no HDF5, no file system); docs/RUNTIME.md\n"
            "  --name IDENT         C identifier for the accessor (default: OUTPUT's base\n"
            "                       name with other characters turned into '_')\n"
            "  --format onnx        an opset-13 ONNX model (docs/ONNX.md): float32 input\n"
            "                       N x C x H x W pixels / 255, outputs 'logits' (float32)\n"
            "                       and 'logits_q' (int8 codes)%s\n"
            "  --onnx-style STYLE   qoperator (default): the integer graph (QLinearConv,\n"
            "                       MatMulInteger, int8 MaxPool, ...); qdq: float ops\n"
            "                       between QuantizeLinear/DequantizeLinear pairs\n"
            "  --onnx-requant float|exact\n"
            "                       qoperator conv2d layers: QLinearConv, whose float\n"
            "                       requantization may differ from qat's by one step\n"
            "                       (float, default), or ConvInteger + qat's rounding as\n"
            "                       ONNX arithmetic: logits identical to qat-infer's (exact)\n"
            "\n"
            "Exit status: 0 success, 2 bad usage or input, 1 other.\n",
#ifdef QAT_HAVE_ONNX
            ""
#else
            "\n                       (not in this build: needs the meson feature 'onnx')"
#endif
    );
}

__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("qat-export: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\nTry 'qat-export --help'.\n", stderr);
    return 2;
}

/* Default accessor name: the base name of prefix, non-identifier characters
 * as '_', a leading digit prefixed with 'm'. */
static void default_name(const char *prefix, char *out, size_t cap)
{
    const char *base = strrchr(prefix, '/');
    base = base ? base + 1 : prefix;
    size_t n = 0;
    if (*base >= '0' && *base <= '9')
        out[n++] = 'm';
    for (; *base && n + 1 < cap && n < 64; base++) {
        char c = *base;
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        out[n++] = ok ? c : '_';
    }
    out[n] = '\0';
}

/* Reads INPUT into d (either kind of file). */
static qat_status read_input(const char *in, qat_rt_owned_desc *d, qat_error *err)
{
    char fmt[64];
    qat_status st = qat_rt_h5_file_format(in, fmt, sizeof fmt, err);
    if (st)
        return st;
    if (strcmp(fmt, MODEL_FORMAT) == 0)
        return qat_rt_h5_read_desc(in, d, err);
    if (strcmp(fmt, CKPT_FORMAT) != 0)
        return qat_fail(err, QAT_EINVAL,
                        "%s: attribute 'format' is '%s'; expected '%s' (a checkpoint) or '%s' "
                        "(an integer model file)",
                        in, fmt, CKPT_FORMAT, MODEL_FORMAT);
    qat_model *m = NULL;
    st = qat_checkpoint_load_model(in, &m, err);
    /* export errors name a layer; say which checkpoint it is in */
    if (st == QAT_OK && (st = qat_export_desc(m, d, err)) != QAT_OK)
        qat_error_prefix(err, "%s", in);
    qat_model_destroy(m);
    return st;
}

int main(int argc, char **argv)
{
    qat_blas_init(); /* stops OpenBLAS's idle worker threads (ops/gemm.c) */
    const char *in = NULL, *out = NULL, *format = "h5", *name = NULL, *style = NULL;
    const char *requant = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        }
        const char **dst = strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0 ? &out
                           : strcmp(a, "--format") == 0                         ? &format
                           : strcmp(a, "--name") == 0                           ? &name
                           : strcmp(a, "--onnx-style") == 0                     ? &style
                           : strcmp(a, "--onnx-requant") == 0                   ? &requant
                                                                                : NULL;
        if (dst) {
            if (i + 1 >= argc || argv[i + 1][0] == '\0')
                return usage_error("%s: missing argument", a);
            *dst = argv[++i];
        } else if (a[0] == '-' && a[1] != '\0') {
            return usage_error("unknown option '%s'", a);
        } else if (in) {
            return usage_error("more than one INPUT given ('%s' and '%s')", in, a);
        } else {
            in = a;
        }
    }
    if (!in)
        return usage_error("missing INPUT");
    if (!out)
        return usage_error("missing -o OUTPUT");
    int to_c = strcmp(format, "c") == 0, to_onnx = strcmp(format, "onnx") == 0;
    if (!to_c && !to_onnx && strcmp(format, "h5") != 0)
        return usage_error("--format: expected h5, c or onnx, found '%s'", format);
    if (name && !to_c)
        return usage_error("--name applies to --format c only");
    if ((style || requant) && !to_onnx)
        return usage_error("%s applies to --format onnx only", style ? "--onnx-style" : "--onnx-requant");
#ifdef QAT_HAVE_ONNX
    qat_onnx_options onnx_opt = {QAT_ONNX_QOPERATOR, QAT_ONNX_REQUANT_FLOAT};
    if (style) {
        int ps = qat_onnx_style_parse(style);
        if (ps < 0)
            return usage_error("--onnx-style: expected qoperator or qdq, found '%s'", style);
        onnx_opt.style = (qat_onnx_style)ps;
    }
    if (requant && strcmp(requant, "exact") != 0 && strcmp(requant, "float") != 0)
        return usage_error("--onnx-requant: expected float or exact, found '%s'", requant);
    if (requant && strcmp(requant, "exact") == 0)
        onnx_opt.requant = QAT_ONNX_REQUANT_EXACT;
    if (requant && onnx_opt.style == QAT_ONNX_QDQ)
        return usage_error("--onnx-requant applies to --onnx-style qoperator only (QDQ's "
                           "requantization is the consumer's)");
#else
    if (to_onnx) {
        fprintf(stderr, "qat-export: --format onnx: this qat-export was built without ONNX "
                        "support (meson feature 'onnx'; Debian: libprotobuf-c-dev "
                        "protobuf-c-compiler libonnx-dev)\n");
        return 2;
    }
#endif

    char prefix[4096], ident[80];
    if (to_c) {
        size_t len = strlen(out);
        if (len >= sizeof prefix)
            return usage_error("-o: path too long");
        memcpy(prefix, out, len + 1);
        if (len > 2 && prefix[len - 2] == '.' && (prefix[len - 1] == 'c' || prefix[len - 1] == 'h'))
            prefix[len - 2] = '\0';
        if (!name) {
            default_name(prefix, ident, sizeof ident);
            name = ident;
        }
        if (!qat_export_c_name_ok(name))
            return usage_error("--name: expected a C identifier of at most 64 characters, "
                               "found '%s'",
                               name);
    }

    qat_error err;
    qat_error_clear(&err);
    qat_rt_owned_desc d;
    memset(&d, 0, sizeof d);
    qat_status st = read_input(in, &d, &err);
    if (st == QAT_OK) {
        if (to_c) {
            const char *base = strrchr(in, '/');
            st = qat_export_c(&d.desc, prefix, name, base ? base + 1 : in, &err);
            if (st == QAT_OK)
                printf("wrote %s.c and %s.h (%s_model(), %zu parameter bytes)\n", prefix, prefix,
                       name, qat_export_param_bytes(&d.desc));
        } else if (to_onnx) {
#ifdef QAT_HAVE_ONNX
            const char *base = strrchr(in, '/');
            qat_onnx_report r;
            st = qat_export_onnx(&d.desc, &onnx_opt, out, base ? base + 1 : in, &r, &err);
            if (st == QAT_OK) {
                printf("wrote %s (ONNX, %s, opset 13: %d nodes, %zu bytes); requantization: %d of "
                       "%d channels give qat's code for every reachable accumulator",
                       out, qat_onnx_style_name(onnx_opt.style), r.nodes, r.bytes,
                       r.channels_exact, r.channels);
                if (r.thresholds)
                    printf(" (float requantization: %ld of %ld output-code steps at another "
                           "accumulator)",
                           r.thresholds_off, r.thresholds);
                printf("\n");
            }
#endif
        } else {
            st = qat_rt_h5_write(out, &d.desc, &err);
            if (st == QAT_OK)
                printf("wrote %s (%zu parameter bytes)\n", out, qat_export_param_bytes(&d.desc));
        }
    }
    qat_rt_owned_desc_free(&d);
    if (st != QAT_OK)
        fprintf(stderr, "qat-export: error: %s\n", err.msg);
    return qat_status_exit_code(st);
}
