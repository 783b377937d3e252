/* qat-ptq: post-training quantization of a checkpoint (thin main over
 * qat_run with [train] mode = ptq). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qat/config.h"
#include "qat/run.h"
#include "qat/train.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: qat-ptq CHECKPOINT [--config CONFIG] [--set section.key=value]...\n"
            "               [--calibration-images N] [--out DIR] [--quiet]\n"
            "\n"
            "Quantizes a trained model post-training: the observers run over N training\n"
            "images (drawn with [train] seed) with no weight update, then the error\n"
            "compensations [ptq] turns on (bias_correction, adaround, bn_reestimate),\n"
            "and the integer model is exported and evaluated like qat-train's.\n"
            "\n"
            "  CHECKPOINT               a qat-train checkpoint.h5, float or QAT\n"
            "  --config CONFIG          the configuration to quantize with (default: the one\n"
            "                           stored in CHECKPOINT); its layers must match\n"
            "  --set section.key=value  override a key (repeatable), e.g. --set\n"
            "                           quant.weight_bits=4 --set ptq.adaround=true\n"
            "  --calibration-images N   the same as --set ptq.calibration_images=N\n"
            "                           (default 1000)\n"
            "  -o, --out DIR            output directory (default: CHECKPOINT's directory\n"
            "                           with -ptq appended)\n"
            "  --quiet                  print nothing but errors\n"
            "\n"
            "Quantization is switched on ([quant] enabled = true) and [train] mode = ptq,\n"
            "init = CHECKPOINT are set for you. Writes DIR/config.ini, DIR/checkpoint.h5\n"
            "(the calibrated, compensated model), DIR/model.int8.h5 and DIR/summary.json.\n"
            "Exit status: 0 success, 2 bad usage/config/input, 1 other.\n");
}

static int usage_error(const char *msg, const char *arg)
{
    fprintf(stderr, "qat-ptq: %s%s%s\nTry 'qat-ptq --help'.\n", msg, arg ? arg : "",
            arg ? "'" : "");
    return 2;
}

/* CHECKPOINT's directory + "-ptq" ("runs/ptq" for one in the working directory). */
static void default_out(const char *ckpt, char *out, size_t n)
{
    const char *slash = strrchr(ckpt, '/');
    if (!slash || slash == ckpt)
        snprintf(out, n, "runs/ptq");
    else
        snprintf(out, n, "%.*s-ptq", (int)(slash - ckpt), ckpt);
}

/* Everything but the argument arrays, which main owns. */
static int run(int argc, char **argv, const char **sets, char **owned)
{
    const char *ckpt = NULL, *config = NULL, *calib = NULL;
    int nsets = 0, nowned = 0;
    qat_train_opts opts = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        }
        const char **dst = strcmp(a, "--config") == 0                           ? &config
                           : strcmp(a, "--calibration-images") == 0             ? &calib
                           : strcmp(a, "--out") == 0 || strcmp(a, "-o") == 0    ? &opts.out_dir
                           : strcmp(a, "--set") == 0                            ? &sets[nsets]
                                                                                : NULL;
        if (dst) {
            if (i + 1 >= argc || argv[i + 1][0] == '\0')
                return usage_error("missing argument of ", a);
            *dst = argv[++i];
            if (dst == &sets[nsets])
                nsets++;
        } else if (strncmp(a, "--set=", 6) == 0) {
            sets[nsets++] = a + 6;
        } else if (strcmp(a, "--quiet") == 0) {
            opts.quiet = 1;
        } else if (a[0] == '-') {
            return usage_error("unknown option '", a);
        } else if (ckpt) {
            return usage_error("more than one CHECKPOINT given, the second is '", a);
        } else {
            ckpt = a;
        }
    }
    if (!ckpt)
        return usage_error("missing CHECKPOINT", NULL);
    for (int i = 0; i < nsets; i++)
        if (strncmp(sets[i], "train.mode", 10) == 0 || strncmp(sets[i], "train.init=", 11) == 0 ||
            strncmp(sets[i], "train.init ", 11) == 0)
            return usage_error("--set may not change train.mode or train.init (CHECKPOINT is "
                               "the model to quantize): '", sets[i]);
    if (calib) {
        char *end;
        long n = strtol(calib, &end, 10);
        if (*end || n < 1 || n > 1000000000)
            return usage_error("--calibration-images: expected a positive integer, found '",
                               calib);
    }
    /* quantization on before the user's sets (a --set can still turn it off,
     * which the config refuses with mode = ptq); mode and init after them */
    size_t len = strlen(ckpt) + 16;
    char *init = owned[nowned++] = malloc(len);
    if (!init)
        return 1;
    snprintf(init, len, "train.init=%s", ckpt);
    const char *forced[3] = {"quant.enabled=true", "train.mode=ptq", init};
    memmove(sets + 1, sets, (size_t)nsets * sizeof *sets);
    sets[0] = forced[0];
    nsets++;
    if (calib) {
        size_t cl = strlen(calib) + 32;
        char *c = owned[nowned++] = malloc(cl);
        if (!c)
            return 1;
        snprintf(c, cl, "ptq.calibration_images=%s", calib);
        sets[nsets++] = c;
    }
    sets[nsets++] = forced[1];
    sets[nsets++] = forced[2];
    char out[4200];
    if (!opts.out_dir) {
        default_out(ckpt, out, sizeof out);
        opts.out_dir = out;
    }
    qat_config *cfg = malloc(sizeof *cfg);
    qat_error err;
    qat_error_clear(&err);
    qat_status st;
    if (!cfg)
        st = qat_fail(&err, QAT_ENOMEM, "out of memory");
    else if (config)
        st = qat_config_load(config, sets, nsets, cfg, &err);
    else
        st = qat_checkpoint_config(ckpt, sets, nsets, cfg, &err);
    if (st == QAT_OK)
        st = qat_run(cfg, &opts, &err);
    if (st != QAT_OK)
        fprintf(stderr, "qat-ptq: error: %s\n", err.msg);
    free(cfg);
    return qat_status_exit_code(st);
}

int main(int argc, char **argv)
{
    const char **sets = calloc((size_t)argc + 4, sizeof *sets);
    char *owned[2] = {NULL, NULL};
    if (!sets)
        return 1;
    int rc = run(argc, argv, sets, owned);
    free(owned[0]);
    free(owned[1]);
    free(sets);
    return rc;
}
