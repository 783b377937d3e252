/* The dispatch point: a session asks once for a kernel table. SIMD tables
 * (kernels/avx2, kernels/neon) will be added here behind a CPU-feature probe
 * done at selection time, never cached in a global. */
#include <string.h>

#include "runtime/kernels/kernels.h"

qat_status qat_rt_kernels_select(const char *isa, const qat_rt_kernels **out, qat_error *err)
{
    *out = NULL;
    if (!isa || strcmp(isa, "auto") == 0 || strcmp(isa, "ref") == 0) {
        *out = &qat_rt_kernels_ref;
        return QAT_OK;
    }
    if (strcmp(isa, "avx2") == 0 || strcmp(isa, "neon") == 0)
        return qat_fail(err, QAT_EUNSUPPORTED,
                        "isa '%s': this build has only the 'ref' kernels", isa);
    return qat_fail(err, QAT_EINVAL, "isa: expected one of auto, ref, avx2, neon; found '%s'",
                    isa);
}
