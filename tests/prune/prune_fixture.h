/* Shared helpers of the pruning tests: a small CNN built from config text
 * (BN, input standardisation, max and avg pools, a flatten), and counting. */
#ifndef QAT_TEST_PRUNE_FIXTURE_H
#define QAT_TEST_PRUNE_FIXTURE_H

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qat/nn.h"
#include "qat/prune.h"
#include "qat/rng.h"

/* 28x28x1 -> conv1 6 (pad 1, BN) -> maxpool 14x14 -> conv2 8 -> 12x12 ->
 * avgpool 6x6 -> flatten 288 -> fc1 12 -> fc2 10 */
static const char *const pf_cnn __attribute__((unused)) =
    "[train]\nepochs = 4\n"
    "[layer.conv1]\ntype=conv2d\nout_channels=6\nkernel=3\npadding=1\nactivation=relu\n"
    "batchnorm=true\n"
    "[layer.pool1]\ntype=maxpool2d\nkernel=2\n"
    "[layer.conv2]\ntype=conv2d\nout_channels=8\nkernel=3\nactivation=relu\n"
    "[layer.pool2]\ntype=avgpool2d\nkernel=2\n"
    "[layer.flat]\ntype=flatten\n"
    "[layer.fc1]\ntype=linear\nout_features=12\nactivation=relu\n"
    "[layer.fc2]\ntype=linear\nout_features=10\n";

/* Layer indices of pf_cnn's conv2d / linear layers. */
enum { PF_CONV1 = 0, PF_CONV2 = 2, PF_FC1 = 5, PF_FC2 = 6 };

static inline qat_config *pf_config(const char *text, const char *const *sets, int nsets)
{
    qat_config *c = malloc(sizeof *c);
    qat_error e;
    cr_assert_eq(qat_config_parse(text, strlen(text), "t.ini", sets, nsets, c, &e), QAT_OK, "%s",
                 e.msg);
    return c;
}

static inline qat_model *pf_model(const char *text, const char *const *sets, int nsets)
{
    qat_config *c = pf_config(text, sets, nsets);
    qat_model *m;
    qat_error e;
    cr_assert_eq(qat_model_create(c, &m, &e), QAT_OK, "%s", e.msg);
    free(c);
    return m;
}

static inline qat_pruner *pf_pruner(qat_model *m, qat_prune_schedule *s)
{
    qat_pruner *p;
    qat_error e;
    cr_assert_eq(qat_pruner_create(m, s, &p, &e), QAT_OK, "%s", e.msg);
    return p;
}

/* Schedule in steps, as the trainer resolves it with `spe` steps per epoch. */
static inline qat_prune_schedule pf_sched(qat_model *m, long spe)
{
    qat_prune_schedule s;
    qat_error e;
    const qat_config *c = qat_model_config(m);
    cr_assert_eq(qat_prune_schedule_resolve(c, spe, spe * c->train.epochs, &s, &e), QAT_OK, "%s",
                 e.msg);
    return s;
}

/* Zeros of the mask over layer i's weights. */
static inline size_t pf_masked(qat_model *m, const qat_pruner *p, int i)
{
    size_t np;
    const float *base = qat_model_params(m, &np), *mk = qat_pruner_mask(p);
    qat_layer *l = qat_model_layer(m, i);
    size_t z = 0;
    for (size_t k = 0; k < l->w.numel; k++)
        z += mk[(size_t)(l->w.data - base) + k] == 0.0f;
    return z;
}

/* Every masked parameter is +0. */
static inline void pf_expect_masked_zero(qat_model *m, const qat_pruner *p, const char *when)
{
    size_t np;
    const float *w = qat_model_params(m, &np), *mk = qat_pruner_mask(p);
    for (size_t i = 0; i < np; i++)
        if (mk[i] == 0.0f)
            cr_assert(w[i] == 0.0f && !signbit(w[i]), "%s: pruned parameter %zu is %g", when, i,
                      (double)w[i]);
}

/* Moves every kept weight by a little noise, as training would. */
static inline void pf_jiggle(qat_model *m, const qat_pruner *p, qat_rng *r, float amount)
{
    size_t np;
    float *w = qat_model_params(m, &np);
    const float *mk = qat_pruner_mask(p);
    for (size_t i = 0; i < np; i++)
        if (!mk || mk[i] != 0.0f)
            w[i] += amount * (2.0f * qat_rng_uniform(r) - 1.0f);
}

#endif
