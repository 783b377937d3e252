/* End to end across architectures: the model compiled in from
 * examples/embedded/tiny_cnn.c (qat-export --format c) runs on MNIST test
 * images with every kernel path this CPU has (ref, avx2 / neon-plain,
 * neon-dot), 1 and 2 threads, batch 1 and 64; every int8 logit must equal
 * the expected file, which is the x86 qat-infer result for the same model
 * (tests/runtime/test_embedded.sh checks that on x86; the aarch64 cross
 * build runs this under qemu). Plain C, links only the runtime core.
 *
 * usage: embedded_e2e IMAGES_IDX EXPECTED_LOGITS [REF_IMAGES [once]]
 * The slow reference path runs once (1 thread, batch 64), on the first
 * REF_IMAGES images if given (it is the oracle the kernel tester already
 * holds every other path to; under qemu it dominates the run time); with
 * "once", so does every path. Another model can be compiled in with
 * -DQAT_E2E_MODEL_H='"name.h"' -DQAT_E2E_MODEL_FN=name_model (scripts/
 * test_cross.sh does, for the full CNN on the 10k test set).
 * Exit 0 pass, 1 fail. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qat/runtime.h"
#include "runtime/kernels/kernels.h"
#ifndef QAT_E2E_MODEL_H
#define QAT_E2E_MODEL_H "tiny_cnn.h"
#define QAT_E2E_MODEL_FN tiny_cnn_model
#endif
#include QAT_E2E_MODEL_H

static unsigned char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "embedded_e2e: cannot open %s\n", path);
        exit(1);
    }
    size_t cap = 1 << 20, n = 0;
    unsigned char *b = malloc(cap);
    size_t got;
    while (b && (got = fread(b + n, 1, cap - n, f)) > 0)
        if ((n += got) == cap)
            b = realloc(b, cap *= 2);
    fclose(f);
    if (!b) {
        fprintf(stderr, "embedded_e2e: out of memory\n");
        exit(1);
    }
    *len = n;
    return b;
}

static unsigned be32(const unsigned char *p)
{
    return (unsigned)p[0] << 24 | (unsigned)p[1] << 16 | (unsigned)p[2] << 8 | p[3];
}

int main(int argc, char **argv)
{
    if (argc < 3 || argc > 5 || (argc == 5 && strcmp(argv[4], "once") != 0)) {
        fprintf(stderr, "usage: embedded_e2e IMAGES_IDX EXPECTED_LOGITS [REF_IMAGES [once]]\n");
        return 2;
    }
    const qat_rt_model_desc *desc = QAT_E2E_MODEL_FN();
    const int once = argc == 5;
    size_t ilen, llen;
    unsigned char *idx = slurp(argv[1], &ilen), *want = slurp(argv[2], &llen);
    const size_t isz = (size_t)desc->in_h * (size_t)desc->in_w * (size_t)desc->in_c;
    if (ilen < 16 || be32(idx) != 0x803 || be32(idx + 8) * (size_t)be32(idx + 12) != isz ||
        ilen != 16 + (size_t)be32(idx + 4) * isz) {
        fprintf(stderr, "embedded_e2e: %s: not an IDX image file of the model's %zu pixels\n",
                argv[1], isz);
        return 1;
    }
    const int n = (int)be32(idx + 4), nc = desc->num_classes;
    if (llen != (size_t)n * nc) {
        fprintf(stderr, "embedded_e2e: %s: %zu bytes, expected %d images x %d classes\n",
                argv[2], llen, n, nc);
        return 1;
    }
    const uint8_t *px = idx + 16;
    int8_t *got = malloc((size_t)n * nc);
    const qat_rt_kernels *paths[QAT_RT_MAX_PATHS];
    int np = qat_rt_kernels_available(paths), failures = 0, runs = 0;
    for (int pi = 0; pi < np; pi++) {
        qat_error e;
        qat_rt_model *m = NULL;
        if (qat_rt_model_create_isa(desc, paths[pi]->isa, &m, &e) != QAT_OK) {
            fprintf(stderr, "embedded_e2e: [%s] %s\n", paths[pi]->isa, e.msg);
            return 1;
        }
        int is_ref = strcmp(paths[pi]->isa, "ref") == 0, one = is_ref || once;
        int count = is_ref && argc == 4 && atoi(argv[3]) > 0 && atoi(argv[3]) < n ? atoi(argv[3])
                                                                                 : n;
        for (int threads = 1; threads <= (one ? 1 : 2); threads++)
            for (int batch = one ? 64 : 1; batch <= 64; batch += 63) {
                qat_rt_options o = {.threads = threads, .max_batch = batch};
                qat_rt_session *s = NULL;
                memset(got, 0x55, (size_t)n * nc);
                qat_status st = qat_rt_session_create(m, &o, &s, &e);
                for (int i = 0; !st && i < count; i += batch)
                    st = qat_rt_run(s, px + (size_t)i * isz, count - i < batch ? count - i : batch,
                                    got + (size_t)i * nc, &e);
                qat_rt_session_destroy(s);
                if (st) {
                    fprintf(stderr, "embedded_e2e: [%s] %s\n", paths[pi]->isa, e.msg);
                    return 1;
                }
                size_t bad = 0;
                while (bad < (size_t)count * nc && got[bad] == (int8_t)want[bad])
                    bad++;
                runs++;
                if (bad < (size_t)count * nc) {
                    failures++;
                    fprintf(stderr,
                            "embedded_e2e: [%s] threads %d batch %d: image %zu class %zu is %d, "
                            "expected %d\n",
                            paths[pi]->isa, threads, batch, bad / nc, bad % nc, got[bad],
                            (int8_t)want[bad]);
                }
            }
        qat_rt_model_destroy(m);
    }
    printf("embedded_e2e: %d images, paths:", n);
    for (int pi = 0; pi < np; pi++)
        printf(" %s", paths[pi]->isa);
    printf("; %d runs, %d differ from %s\n", runs, failures, argv[2]);
    free(idx);
    free(want);
    free(got);
    return failures ? 1 : 0;
}
