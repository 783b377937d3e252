/* libFuzzer target: the integer-model loader and validator, from the bytes
 * of an HDF5 file image (what qat-infer reads from disk) through
 * qat_rt_h5_read_desc_memory, qat_rt_model_create and a two-image
 * qat_rt_run checked against the naive executor. Seeds: model files made
 * by tests/runtime/make_model (fuzz/corpus/fuzz_model). */
#include "fuzz_run.h"
#include "qat/runtime_h5.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    qat_rt_owned_desc d;
    qat_error err;
    qat_error_clear(&err);
    qat_status st = qat_rt_h5_read_desc_memory(data, size, "fuzz.h5", &d, &err);
    if (st != QAT_OK) {
        if (err.msg[0] == '\0')
            abort();
        return 0;
    }
    fuzz_build_and_run(&d.desc, data, size, 1);
    qat_rt_owned_desc_free(&d);
    return 0;
}
