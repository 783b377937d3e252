/* Owned model descriptions. The type is the runtime core's, not the HDF5
 * layer's: export builds one from a trained model without touching model
 * files, and any loader may hand one to qat_rt_model_create. */
#include <stdlib.h>
#include <string.h>

#include "qat/runtime.h"

void qat_rt_owned_desc_free(qat_rt_owned_desc *d)
{
    if (!d)
        return;
    free(d->layers);
    free(d->blob);
    memset(d, 0, sizeof *d);
}
