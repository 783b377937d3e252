/* qat-export: checkpoint -> integer model file (thin main over export). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qat/export.h"
#include "qat/train.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: qat-export CHECKPOINT -o MODEL\n"
               "\n"
               "Re-exports the integer model from a qat-train checkpoint (HDF5).\n"
               "Exit status: 0 success, 2 bad usage or input, 1 other.\n");
}

int main(int argc, char **argv)
{
    const char *ckpt = NULL, *out = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "qat-export: %s needs an argument\n", a);
                return 2;
            }
            out = argv[++i];
        } else if (a[0] == '-') {
            fprintf(stderr, "qat-export: unknown option '%s' (see --help)\n", a);
            return 2;
        } else if (ckpt) {
            fprintf(stderr, "qat-export: more than one checkpoint given\n");
            return 2;
        } else {
            ckpt = a;
        }
    }
    if (!ckpt || !out) {
        fprintf(stderr, "qat-export: %s\n", !ckpt ? "missing CHECKPOINT" : "missing -o MODEL");
        usage(stderr);
        return 2;
    }
    qat_error err;
    qat_error_clear(&err);
    qat_model *m = NULL;
    qat_rt_owned_desc d;
    qat_status st = qat_checkpoint_load_model(ckpt, &m, &err);
    /* export errors name a layer; say which checkpoint it is in */
    if (st == QAT_OK && (st = qat_export_desc(m, &d, &err)) != QAT_OK)
        qat_error_prefix(&err, "%s", ckpt);
    if (st == QAT_OK) {
        st = qat_rt_h5_write(out, &d.desc, &err);
        if (st == QAT_OK)
            printf("wrote %s (%zu parameter bytes)\n", out, qat_export_param_bytes(&d.desc));
        qat_rt_owned_desc_free(&d);
    }
    qat_model_destroy(m);
    if (st != QAT_OK)
        fprintf(stderr, "qat-export: error: %s\n", err.msg);
    return qat_status_exit_code(st);
}
