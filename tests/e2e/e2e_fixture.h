/* The e2e suites' config loader: a config of the source tree on the
 * committed MNIST subset, progress off, 2 threads, plus extra sets. */
#ifndef QAT_TESTS_E2E_FIXTURE_H
#define QAT_TESTS_E2E_FIXTURE_H

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>

#include "qat/config.h"

static void load_cfg(const char *rel, const char *const *extra, int nextra, qat_config *cfg)
{
    cr_assert(nextra <= 17, "at most 17 extra sets");
    const char *root = getenv("QAT_SOURCE_ROOT");
    cr_assert_not_null(root, "run through meson test");
    char path[1024], data[1024];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    snprintf(data, sizeof data, "data.dir=%s/datasets/mnist-subset", root);
    const char *sets[20] = {data, "train.progress=false", "train.threads=2"};
    int n = 3;
    for (int i = 0; i < nextra; i++)
        sets[n++] = extra[i];
    qat_error e;
    cr_assert_eq(qat_config_load(path, sets, n, cfg, &e), QAT_OK, "%s", e.msg);
}

#endif
