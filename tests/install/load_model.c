/* The smallest program that runs a model file with the installed runtime:
 * built by tests/install/test_install.sh from outside the source tree with
 * `cc load_model.c $(pkg-config --cflags --libs qat-runtime-h5)`, as strict
 * C99, so it sees nothing but the installed headers.
 *
 *   load_model MODEL.h5 IMAGES.idx3 LOGITS.out
 *
 * Runs every image of the (uncompressed) IDX file in batches of 50 on two
 * threads and writes the int8 logits, N x classes, as qat-infer
 * --dump-logits does. Exit status 0 ok, 1 any failure. */
#include <stdio.h>
#include <stdlib.h>

#include "qat/runtime_h5.h"

static unsigned long be32(const unsigned char *p)
{
    return (unsigned long)p[0] << 24 | (unsigned long)p[1] << 16 | (unsigned long)p[2] << 8 | p[3];
}

/* IDX images (magic 0x00000803): *n images of h x w bytes, or NULL. */
static unsigned char *read_idx(const char *path, unsigned long *n, size_t *size)
{
    unsigned char head[16], *px = NULL;
    FILE *f = fopen(path, "rb");
    if (!f || fread(head, 1, sizeof head, f) != sizeof head || be32(head) != 0x803)
        goto out;
    *n = be32(head + 4);
    *size = (size_t)be32(head + 8) * be32(head + 12);
    if (*n > 1000000 || *size > 1000000)
        goto out;
    px = malloc(*n * *size + 1);
    if (px && fread(px, *size, *n, f) != *n) {
        free(px);
        px = NULL;
    }
out:
    if (f)
        fclose(f);
    return px;
}

int main(int argc, char **argv)
{
    qat_error err;
    qat_rt_model *model = NULL;
    qat_rt_session *session = NULL;
    qat_rt_options opts = {2, 50, 0}; /* threads, max_batch, profile */
    unsigned long n = 0, i;
    size_t size = 0;
    unsigned char *images;
    signed char *logits = NULL;
    FILE *out = NULL;
    int rc = 1, classes;

    if (argc != 4) {
        fprintf(stderr, "usage: load_model MODEL.h5 IMAGES.idx3 LOGITS.out\n");
        return 1;
    }
    images = read_idx(argv[2], &n, &size);
    if (!images) {
        fprintf(stderr, "load_model: %s: not a readable IDX image file\n", argv[2]);
        return 1;
    }
    if (qat_rt_h5_load(argv[1], &model, &err) != QAT_OK ||
        qat_rt_session_create(model, &opts, &session, &err) != QAT_OK) {
        fprintf(stderr, "load_model: %s (%s)\n", err.msg, qat_rt_status_name(err.status));
        goto done;
    }
    if (qat_rt_model_input_size(model) != size) {
        fprintf(stderr, "load_model: images of %lu bytes, the model takes %lu\n",
                (unsigned long)size, (unsigned long)qat_rt_model_input_size(model));
        goto done;
    }
    classes = qat_rt_model_num_classes(model);
    logits = malloc(n * (size_t)classes + 1);
    if (!logits)
        goto done;
    for (i = 0; i < n; i += 50) {
        int count = n - i < 50 ? (int)(n - i) : 50;
        if (qat_rt_run(session, images + i * size, count, (int8_t *)logits + i * classes,
                       &err) != QAT_OK) {
            fprintf(stderr, "load_model: %s\n", err.msg);
            goto done;
        }
    }
    out = fopen(argv[3], "wb");
    rc = out && fwrite(logits, (size_t)classes, n, out) == n ? 0 : 1;
    if (out && fclose(out) != 0)
        rc = 1;
    if (rc)
        fprintf(stderr, "load_model: %s: cannot write\n", argv[3]);
    printf("%lu images, %d classes, kernels %s\n", n, classes, qat_rt_model_isa(model));
done:
    qat_rt_session_destroy(session);
    qat_rt_model_destroy(model);
    free(logits);
    free(images);
    return rc;
}
