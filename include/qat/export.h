/* Trained float model -> integer model: the only bridge from training to the
 * runtime. What it writes is exactly what the QAT forward simulated. */
#ifndef QAT_EXPORT_H
#define QAT_EXPORT_H

#include <stddef.h>
#include <stdint.h>

#include "qat/nn.h"
#include "qat/prune.h"
#include "qat/runtime.h"

/* QAT_OK if the integer runtime can hold m; else QAT_EINVAL naming the first
 * layer it cannot (graph models, until the runtime runs them). */
qat_status qat_export_check(qat_model *m, qat_error *err);
/* Builds the integer description of m (refreshing its quantization from the
 * weights and observers first). Dropout layers disappear; everything else
 * maps one to one. Under [prune] method = channel the pruned channels are
 * removed, with the next layer's inputs (src/export/remove.c), so the
 * integer model has the reduced shapes. Weights are packed by the runtime's
 * packer (qat_rt_pack_weights). out owns its arrays (free with
 * qat_rt_owned_desc_free); writing it to a file is runtime_h5.h's. */
qat_status qat_export_desc(qat_model *m, qat_rt_owned_desc *out, qat_error *err);
/* qat_export_desc, and *sparsity gets the exported weights' sparsity per
 * conv2d / linear layer (names are m's): codes at their zero point plus the
 * weights channel removal took out, relative to the trained shapes. */
qat_status qat_export_desc_sparsity(qat_model *m, qat_rt_owned_desc *out,
                                    qat_prune_stats *sparsity, qat_error *err);

/* Bytes the integer model's parameters occupy as stored (packed weights, or
 * a palettized layer's codebooks and packed indices; int32 bias,
 * multiplier, shift, and per-channel zero points if any; the int32
 * multipliers and shifts of add, concat and global_avgpool layers; a float
 * layer's float32 weights and bias). */
size_t qat_export_param_bytes(const qat_rt_model_desc *d);

/* Embeddable C (qat-export --format c): writes <prefix>.h, declaring
 * `const qat_rt_model_desc *<name>_model(void);`, and <prefix>.c, holding
 * every array of d as const data (floats as exact hex literals), each
 * through a temporary file renamed into place. d is validated first; name
 * must be a C identifier (qat_export_c_name_ok); origin (e.g. the input
 * file) is quoted in the generated comments. The files need only the
 * runtime core. QAT_EIO names the file that could not be written. */
qat_status qat_export_c(const qat_rt_model_desc *d, const char *prefix, const char *name,
                        const char *origin, qat_error *err);
/* 1 if name is a C identifier of at most 64 characters. */
int qat_export_c_name_ok(const char *name);

#endif
