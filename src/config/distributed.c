/* [distributed]: data-parallel training over MPI ranks and its quantized
 * gradients. Its own file so config.c only lists the section. */
#include <stddef.h>
#include <string.h>

#include "config_internal.h"
#include "qat/ini.h"

#define D(f) offsetof(qat_distributed_cfg, f)
const qat_cfg_key qat_distributed_keys[] = {
    {"gradient_bits", QAT_CFG_ENUM, D(gradient_bits), "32", 0, 0, 0, qat_grad_bits_names, "bits per gradient value sent between ranks: 32 (float, exact), 8, 4, 2, or 1 (the sign times the bucket's mean magnitude)"},
    {"gradient_rounding", QAT_CFG_ENUM, D(gradient_rounding), "nearest", 0, 0, 0, qat_grad_rounding_names, "gradient_bits < 32: round each value to the nearest code, or stochastically (unbiased, as QSGD / TernGrad)"},
    {"gradient_scaling", QAT_CFG_ENUM, D(gradient_scaling), "max", 0, 0, 0, qat_grad_scaling_names, "gradient_bits < 32: codes span a bucket's largest magnitude (TernGrad) or its L2 norm (QSGD)"},
    {"bucket_size", QAT_CFG_INT, D(bucket_size), "0", 0, 1e9, 0, NULL, "gradient_bits < 32: values sharing one float scale; 0: one scale per parameter tensor"},
    {"error_feedback", QAT_CFG_BOOL, D(error_feedback), "false", 0, 0, 0, NULL, "gradient_bits < 32: each rank adds last step's quantization residual to its next gradient"},
    {"simulate_ranks", QAT_CFG_INT, D(simulate_ranks), "0", 0, 4096, 0, NULL, "> 1: one process splits every batch into this many shards and quantizes each shard's gradient as that many ranks would send it (to study gradient_bits without a cluster); 0: off"},
    {"shard_optimizer", QAT_CFG_BOOL, D(shard_optimizer), "true", 0, 0, 0, NULL, "under mpirun with 32-bit gradients: each rank sums the gradient of its part of the parameters only, steps the optimizer there and sends the updated part to the others (ZeRO stage 1: the same data on the wire, 1/N of the summing and the optimizer work each); false: every rank sums and steps all of them"},
    {"verify", QAT_CFG_BOOL, D(verify), "false", 0, 0, 0, NULL, "under mpirun: hash parameters, quantization state and cluster centroids / assignments on every rank after each epoch and stop if they differ"},
};
#undef D
const int qat_distributed_nkeys = sizeof qat_distributed_keys / sizeof qat_distributed_keys[0];

void qat_config_write_distributed(FILE *f, const qat_config *cfg)
{
    /* written only when set, so a config (and checkpoint) that does not use
     * it reads exactly as before the section existed */
    qat_distributed_cfg def;
    memset(&def, 0, sizeof def);
    qat_cfg_defaults(qat_distributed_keys, qat_distributed_nkeys, &def);
    if (memcmp(&def, &cfg->distributed, sizeof def) == 0)
        return;
    fprintf(f, "\n[distributed]\n");
    qat_cfg_write(f, qat_distributed_keys, qat_distributed_nkeys, &cfg->distributed);
}
