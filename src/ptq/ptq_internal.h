/* What the files of src/ptq share: the calibration set and passes over it. */
#ifndef QAT_PTQ_INTERNAL_H
#define QAT_PTQ_INTERNAL_H

#include <stdint.h>
#include <stdio.h>

#include "qat/ptq.h"

/* Passes run in batches of this many images (any size gives the same
 * numbers; calibration itself uses [train] batch_size, see calibrate.c). */
#define PTQ_PASS_BATCH 256

typedef struct ptq_ctx {
    qat_model *m;
    qat_tape *t;
    const qat_config *cfg;
    const uint8_t *images; /* n calibration inputs (uint8 or float32, as stored), contiguous */
    size_t isz;            /* bytes per input */
    int n;
    FILE *log;
    qat_layer_tap taps[QAT_MAX_LAYERS];
} ptq_ctx;

/* Called once per batch of a pass with the taps of that batch's forward. */
typedef void (*ptq_visit)(ptq_ctx *c, int first, int count, void *user);

/* One eval-mode, no-grad forward over the calibration images in batches of
 * `batch`, quantized or float, up to layer last, calling fn after each. */
void ptq_pass(ptq_ctx *c, int quant, int last, int batch, ptq_visit fn, void *user);

/* Observers back to "seen nothing" (layers with learned scales keep them). */
void ptq_reset_observers(ptq_ctx *c);
/* The observers run over the calibration images (src/ptq/calibrate.c). */
void ptq_calibrate(ptq_ctx *c);
/* Batchnorm statistics re-estimated on the quantized model; returns the
 * number of batchnorm layers (0: nothing to do). */
int ptq_bn_reestimate(ptq_ctx *c);

static inline int ptq_is_compute(const qat_layer *l)
{
    return l->type == QAT_LAYER_CONV2D || l->type == QAT_LAYER_LINEAR;
}

/* The bias the quantized layer adds, in real units: its bias codes times
 * acc_scale (current quantization parameters). */
void ptq_quant_bias(const qat_layer *l, float *out);

/* Per-layer compensation (src/ptq/compensate.c): float targets captured
 * once, then layer by layer in model order. */
qat_status ptq_compensate(ptq_ctx *c, qat_ptq_report *rep, qat_error *err);

#endif
