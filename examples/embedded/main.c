/* The smallest complete use of the qat runtime on a device: the model is
 * compiled in (tiny_cnn.c/.h, written by `qat-export --format c`), so are
 * the input images (digits.h); nothing is read from a file system and
 * nothing but the runtime core (C, libc, libm, pthreads) is linked.
 *
 * Exit status 0 when every digit is classified as its label. */
#include <stdio.h>

#include "qat/runtime.h"

#include "digits.h"
#include "tiny_cnn.h"

int main(void)
{
    qat_error err;
    qat_rt_model *model = NULL;
    qat_rt_session *session = NULL;
    /* The model copies and packs what it needs from the constant description. */
    if (qat_rt_model_create(tiny_cnn_model(), &model, &err) != QAT_OK) {
        fprintf(stderr, "embedded: %s\n", err.msg);
        return 1;
    }
    /* Every buffer is allocated here; qat_rt_run never allocates. */
    qat_rt_options opts = {.threads = 1, .max_batch = DIGITS_COUNT};
    if (qat_rt_session_create(model, &opts, &session, &err) != QAT_OK) {
        fprintf(stderr, "embedded: %s\n", err.msg);
        qat_rt_model_destroy(model);
        return 1;
    }
    enum { CLASSES = 10 };
    int8_t logits[DIGITS_COUNT * CLASSES];
    int classes[DIGITS_COUNT];
    float real[CLASSES];
    if (qat_rt_model_num_classes(model) != CLASSES ||
        qat_rt_model_input_size(model) != 28 * 28 ||
        qat_rt_run(session, digits_pixels, DIGITS_COUNT, logits, &err) != QAT_OK) {
        fprintf(stderr, "embedded: %s\n", err.msg[0] ? err.msg : "unexpected model shape");
        qat_rt_session_destroy(session);
        qat_rt_model_destroy(model);
        return 1;
    }
    qat_rt_classify(model, logits, DIGITS_COUNT, classes);
    qat_rt_dequantize_logits(model, logits, 1, real);

    int correct = 0;
    printf("kernels: %s\n", qat_rt_model_isa(model));
    for (int i = 0; i < DIGITS_COUNT; i++) {
        correct += classes[i] == digits_labels[i];
        printf("digit %d: class %d (label %d)\n", i, classes[i], digits_labels[i]);
    }
    printf("float logits of digit 0:");
    for (int c = 0; c < CLASSES; c++)
        printf(" %.3f", (double)real[c]);
    printf("\n%d of %d correct\n", correct, DIGITS_COUNT);
    qat_rt_session_destroy(session);
    qat_rt_model_destroy(model);
    return correct == DIGITS_COUNT ? 0 : 1;
}
