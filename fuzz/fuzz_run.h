/* Shared by the model fuzz targets: build a validated description into a
 * model and run it on two images, comparing the runtime's logits with the
 * independent naive executor of tests/runtime/rt_fixture.h (int64
 * accumulation, flagging any accumulator that leaves int32). Validation
 * must make both impossible to break: any difference or overflow aborts. */
#ifndef QAT_FUZZ_RUN_H
#define QAT_FUZZ_RUN_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qat/runtime.h"
#include "qat/status.h"
#include "palette_fixture.h"

/* Work per image above which a valid model is only built, not run: the
 * fuzzer should spend its time on parsing, not on big convolutions. */
#define FUZZ_MAX_MACS 4000000ULL
#define FUZZ_MAX_TENSOR (1u << 20)

static inline unsigned long long fuzz_macs(const qat_rt_model_desc *d)
{
    unsigned long long total = 0;
    for (int i = 0; i < d->num_layers; i++) {
        const qat_rt_layer_desc *l = &d->layers[i];
        unsigned long long out = (unsigned long long)l->out_h * (unsigned long long)l->out_w *
                                 (unsigned long long)l->out_c;
        unsigned long long in = (unsigned long long)l->in_h * (unsigned long long)l->in_w *
                                (unsigned long long)l->in_c;
        unsigned long long per = (unsigned long long)l->kernel_h * (unsigned long long)l->kernel_w;
        if (l->op == QAT_RT_CONV2D || l->op == QAT_RT_LINEAR)
            per *= (unsigned long long)l->in_c;
        if (out > FUZZ_MAX_TENSOR || in > FUZZ_MAX_TENSOR)
            return ~0ULL;
        total += out * per + in;
    }
    return total;
}

/* d has passed qat_rt_model_validate (or is about to be refused by create). */
static inline void fuzz_build_and_run(const qat_rt_model_desc *d, const uint8_t *seed,
                                      size_t seed_len, int threads)
{
    qat_error err;
    qat_error_clear(&err);
    qat_rt_model *m = NULL;
    qat_status st = qat_rt_model_create(d, &m, &err);
    if (st != QAT_OK) {
        if (err.msg[0] == '\0' || m)
            abort();
        return;
    }
    if (d->num_layers > FX_MAX_LAYERS || fuzz_macs(d) > FUZZ_MAX_MACS) {
        qat_rt_model_destroy(m);
        return;
    }
    const int n = 2;
    size_t in = qat_rt_model_input_size(m), nc = (size_t)qat_rt_model_num_classes(m);
    uint8_t *px = malloc(in * n);
    int8_t *logits = malloc(nc * n), *want = malloc(nc);
    /* float logits (FORMAT.md §11): compared as float32 bytes */
    const int fl = qat_rt_model_float_logits(m);
    float *flog = malloc(nc * n * sizeof(float)), *fwant = malloc(nc * sizeof(float));
    if (!px || !logits || !want || !flog || !fwant)
        abort();
    for (size_t i = 0; i < in * n; i++)
        px[i] = seed_len ? seed[i % seed_len] ^ (uint8_t)(i * 151u) : (uint8_t)(i * 151u);
    qat_rt_session *s = NULL;
    qat_rt_options o = {.threads = threads, .max_batch = n};
    if (qat_rt_session_create(m, &o, &s, &err) != QAT_OK ||
        (fl ? qat_rt_run_logits(s, px, n, flog, &err)
            : qat_rt_run(s, px, n, logits, &err)) != QAT_OK) {
        fprintf(stderr, "a validated model failed to run: %s\n", err.msg);
        abort();
    }
    /* the oracle: an fx_model view of d with unpacked weights */
    fx_model *fx = calloc(1, sizeof *fx);
    if (!fx)
        abort();
    fx->desc = *d;
    memcpy(fx->layers, d->layers, (size_t)d->num_layers * sizeof *d->layers);
    fx->desc.layers = fx->layers;
    for (int i = 0; i < d->num_layers; i++) {
        const qat_rt_layer_desc *l = &d->layers[i];
        if ((l->op != QAT_RT_CONV2D && l->op != QAT_RT_LINEAR) || l->is_float)
            continue;
        /* a grouped conv's output channel reads in_c / groups inputs */
        const int g = l->op == QAT_RT_CONV2D && l->groups > 1 ? l->groups : 1;
        size_t count = (size_t)l->kernel_h * (size_t)l->kernel_w * (size_t)(l->in_c / g) *
                       (size_t)l->out_c;
        fx->w[i] = malloc(count);
        fx->wzp[i] = calloc((size_t)l->out_c, sizeof(int32_t));
        if (!fx->w[i] || !fx->wzp[i])
            abort();
        if (l->palette_size) /* FORMAT.md §10, read here bit by bit */
            fx_pal_expand(l, count, fx->w[i]);
        else
            qat_rt_unpack_weights(l->weights, count, l->weight_bits, fx->w[i]);
        if (l->weight_zero_point)
            memcpy(fx->wzp[i], l->weight_zero_point, (size_t)l->out_c * sizeof(int32_t));
    }
    for (int b = 0; b < n; b++) {
        if (fx_oracle_f(fx, px + (size_t)b * in, want, fl ? fwant : NULL) != 0) {
            fprintf(stderr, "validated model overflows an int32 accumulator\n");
            abort();
        }
        if (fl ? memcmp(fwant, flog + (size_t)b * nc, nc * sizeof(float)) != 0
               : memcmp(want, logits + (size_t)b * nc, nc) != 0) {
            fprintf(stderr, "runtime logits differ from the naive executor (image %d)\n", b);
            abort();
        }
    }
    for (int i = 0; i < d->num_layers; i++) {
        free(fx->w[i]);
        free(fx->wzp[i]);
    }
    free(fx);
    qat_rt_session_destroy(s);
    free(px);
    free(logits);
    free(want);
    free(flog);
    free(fwant);
    qat_rt_model_destroy(m);
}

#endif
