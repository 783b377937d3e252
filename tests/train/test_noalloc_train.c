/* After the first step, a training step (forward, loss, backward, optimizer
 * update) never touches the heap: activations come from the tape's arena,
 * which has grown to the step's size. Every allocator call from the
 * statically linked qat libraries is counted (alloc_count.h). */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "alloc_count.h"
#include "qat/ops.h"
#include "qat/optim.h"
#include "qat/train.h"

/* Allocations made by steps 3..8 of a training loop over the config. */
static long steady_state_allocations(const char *const *sets, int nsets)
{
    const char *root = getenv("QAT_SOURCE_ROOT");
    cr_assert_not_null(root, "run through meson test");
    char path[1024], data[1024];
    snprintf(path, sizeof path, "%s/configs/mnist_cnn.ini", root);
    snprintf(data, sizeof data, "%s/datasets/mnist-subset", root);
    qat_config *c = malloc(sizeof *c);
    qat_error e;
    cr_assert_eq(qat_config_load(path, sets, nsets, c, &e), QAT_OK, "%s", e.msg);
    qat_dataset d;
    cr_assert_eq(qat_mnist_load(data, "train", 10, 512, &d, &e), QAT_OK, "%s", e.msg);
    qat_blas_init();
    qat_team *team;
    qat_tape *t;
    qat_model *m;
    qat_optim *o;
    cr_assert_eq(qat_team_create(2, &team, &e), QAT_OK);
    cr_assert_eq(qat_tape_create(team, &t, &e), QAT_OK);
    cr_assert_eq(qat_model_create(c, &m, &e), QAT_OK, "%s", e.msg);
    qat_optim_config oc;
    qat_optim_config_defaults(&oc, QAT_OPT_ADAM);
    size_t np;
    int ns;
    float *params = qat_model_params(m, &np), *grads = qat_model_grads(m, &np);
    const qat_param_seg *segs = qat_model_segments(m, &ns);
    cr_assert_eq(qat_optim_create(&oc, np, segs, ns, &o, &e), QAT_OK);
    int B = 64;
    uint8_t *img = malloc((size_t)B * 784), *lab = malloc((size_t)B);
    uint32_t idx[64];
    long before = 0;
    for (int s = 0; s < 9; s++) {
        if (s == 3)
            before = tc_alloc_count();
        for (int i = 0; i < B; i++)
            idx[i] = (uint32_t)((s * B + i) % (int)d.n);
        qat_dataset_gather(&d, idx, B, img, lab);
        qat_tape_reset(t);
        qat_tape_set_training(t, 1);
        memset(grads, 0, np * sizeof *grads);
        qat_tensor *y = qat_model_forward(m, t, img, B);
        qat_tensor *loss = qat_op_softmax_cross_entropy(t, y, lab);
        qat_tape_backward(t, loss);
        qat_optim_step(o, params, grads, NULL, 1e-3f);
    }
    long during = tc_alloc_count() - before;
    free(img);
    free(lab);
    qat_optim_destroy(o);
    qat_model_destroy(m);
    qat_tape_destroy(t);
    qat_team_destroy(team);
    qat_dataset_free(&d);
    free(c);
    return during;
}

Test(noalloc, float_steps_do_not_allocate)
{
    const char *sets[] = {"quant.enabled=false"};
    cr_assert_eq(steady_state_allocations(sets, 1), 0);
}

Test(noalloc, qat_steps_do_not_allocate)
{
    const char *sets[] = {"quant.enabled=true"};
    cr_assert_eq(steady_state_allocations(sets, 1), 0);
}

Test(noalloc, qat_with_lsq_bn_and_percentile_observers_does_not_allocate)
{
    const char *sets[] = {"quant.learn_scale=true", "layer.conv1.batchnorm=true",
                          "quant.weight_observer=percentile", "quant.activation_observer=percentile"};
    cr_assert_eq(steady_state_allocations(sets, 4), 0);
}

Test(noalloc, the_counter_sees_allocations)
{
    /* an allocation made inside the qat libraries must be counted */
    long a = tc_alloc_count();
    qat_arena *ar = qat_arena_create(4096);
    qat_arena_destroy(ar);
    cr_assert_gt(tc_alloc_count(), a, "the --wrap counter must be live");
}
