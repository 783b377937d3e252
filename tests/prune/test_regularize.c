/* L1 / L2 penalties: values, gradients against central finite differences
 * of the whole training objective (data loss + penalty), weights only by
 * default, per-layer overrides. */
#include "prune_fixture.h"

#include "qat/autograd.h"
#include "qat/ops.h"

/* The trainer's composition, as one scalar for qat_gradcheck: the data
 * loss through the tape, plus the penalty whose gradient the hook adds
 * (qat_regularize_apply) when backward reaches this node. */
typedef struct objective {
    qat_model *m;
    const uint8_t *img, *lab;
    int n;
} objective;

static void penalty_backward(qat_tape *t, const qat_node *n)
{
    (void)t;
    QAT_ASSERT(n->out->grad[0] == 1.0f); /* the loss seed: the hook adds unit-weight gradients */
    qat_regularize_apply((qat_model *)n->saved);
}

static qat_tensor *total_loss(qat_tape *t, void *ctx)
{
    objective *o = ctx;
    qat_tensor *y = qat_model_forward(o->m, t, o->img, o->n);
    qat_tensor *data = qat_op_softmax_cross_entropy(t, y, o->lab);
    int one = 1;
    qat_tensor *pen = qat_tape_tensor(t, 1, &one);
    pen->data[0] = (float)qat_regularize_penalty(o->m);
    qat_tensor *leaf = &qat_model_layer(o->m, 1)->w; /* fc1: a leaf that wants gradients */
    qat_tape_record(t, penalty_backward, pen, o->m, 1, &leaf);
    return qat_op_add(t, data, pen);
}

/* Keeps weights away from L1's kink at 0 so central differences see a
 * smooth function (the hook's sign(0) = 0 is tested separately). */
static void off_zero(qat_tensor *w)
{
    for (size_t k = 0; k < w->numel; k++)
        if (fabsf(w->data[k]) < 0.02f)
            w->data[k] = w->data[k] < 0.0f ? -0.02f : 0.02f;
}

static void gradcheck_case(const char *const *sets, int nsets, int with_bias)
{
    /* a small float MLP: every probe re-runs the forward */
    static const char *mlp = "[model]\ninput_height=6\ninput_width=6\n"
                             "[quant]\nenabled=false\n"
                             "[layer.flat]\ntype=flatten\n"
                             "[layer.fc1]\ntype=linear\nout_features=5\nactivation=relu\n"
                             "[layer.fc2]\ntype=linear\nout_features=10\n";
    qat_model *m = pf_model(mlp, sets, nsets);
    uint8_t img[4 * 36], lab[4] = {1, 7, 3, 3};
    qat_rng r;
    qat_rng_seed(&r, 9, 0);
    for (size_t i = 0; i < sizeof img; i++)
        img[i] = (uint8_t)qat_rng_below(&r, 256);
    objective o = {m, img, lab, 4};
    qat_tensor *leaves[4];
    int nl = 0;
    for (int i = 1; i <= 2; i++) {
        qat_layer *l = qat_model_layer(m, i);
        off_zero(&l->w);
        leaves[nl++] = &l->w;
        if (with_bias) {
            off_zero(&l->b);
            leaves[nl++] = &l->b;
        }
    }
    qat_tape *t;
    qat_error e;
    cr_assert_eq(qat_tape_create(NULL, &t, &e), QAT_OK);
    qat_tape_set_training(t, 0);
    char where[256];
    double worst = qat_gradcheck(t, total_loss, &o, leaves, nl, 1e-3, 2e-3, 2e-2, 0, where,
                                 sizeof where);
    cr_assert_leq(worst, 1.0, "gradient vs finite differences: %s (worst %.3g)", where, worst);
    qat_tape_destroy(t);
    qat_model_destroy(m);
}

Test(gradcheck, l1_and_l2_on_weights)
{
    const char *sets[] = {"regularize.l1=0.02", "regularize.l2=0.3"};
    gradcheck_case(sets, 2, 0);
}

Test(gradcheck, per_layer_overrides_and_biases)
{
    const char *sets[] = {"regularize.l1=0.01", "regularize.biases=true", "layer.fc1.l2=0.5",
                          "layer.fc2.l1=0.05"};
    gradcheck_case(sets, 4, 1);
}

/* The check must be able to fail: a penalty gradient off by 10% is caught. */
static void wrong_backward(qat_tape *t, const qat_node *n)
{
    (void)t;
    qat_model *m = n->saved;
    size_t np;
    float *g = qat_model_grads(m, &np);
    float *before = malloc(np * sizeof(float));
    memcpy(before, g, np * sizeof(float));
    qat_regularize_apply(m);
    for (size_t i = 0; i < np; i++)
        g[i] = before[i] + 1.1f * (g[i] - before[i]);
    free(before);
}

static qat_tensor *wrong_penalty(qat_tape *t, void *ctx)
{
    qat_model *m = ctx;
    int one = 1;
    qat_tensor *pen = qat_tape_tensor(t, 1, &one);
    pen->data[0] = (float)qat_regularize_penalty(m);
    qat_tensor *leaf = &qat_model_layer(m, 1)->w;
    qat_tape_record(t, wrong_backward, pen, m, 1, &leaf);
    return pen;
}

Test(gradcheck, a_wrong_gradient_is_caught)
{
    static const char *mlp = "[model]\ninput_height=4\ninput_width=4\n[quant]\nenabled=false\n"
                             "[regularize]\nl2=0.5\n[layer.flat]\ntype=flatten\n"
                             "[layer.fc]\ntype=linear\nout_features=10\n";
    qat_model *m = pf_model(mlp, NULL, 0);
    qat_tensor *w = &qat_model_layer(m, 1)->w;
    qat_tape *t;
    qat_tape_create(NULL, &t, NULL);
    double worst = qat_gradcheck(t, wrong_penalty, m, &w, 1, 1e-3, 1e-4, 2e-2, 0, NULL, 0);
    cr_assert_gt(worst, 1.0, "a 10%% error must fail the check (worst %.3g)", worst);
    qat_tape_destroy(t);
    qat_model_destroy(m);
}

Test(penalty, value_gradient_and_what_is_penalised)
{
    static const char *mlp = "[model]\ninput_height=2\ninput_width=2\n[quant]\nenabled=false\n"
                             "[regularize]\nl1=0.1\nl2=0.4\n[layer.flat]\ntype=flatten\n"
                             "[layer.fc]\ntype=linear\nout_features=2\n"
                             "[layer.out]\ntype=linear\nout_features=10\nl1=0\nl2=0\n";
    qat_model *m = pf_model(mlp, NULL, 0);
    cr_assert(qat_regularize_active(qat_model_config(m)));
    qat_layer *fc = qat_model_layer(m, 1);
    float w[8] = {0.5f, -0.25f, 0.0f, 1.0f, -2.0f, 0.0f, 0.125f, 0.75f};
    memcpy(fc->w.data, w, sizeof w);
    fc->b.data[0] = 3.0f; /* biases: not by default */
    double l1 = 0, l2 = 0;
    for (int i = 0; i < 8; i++) {
        l1 += fabs(w[i]);
        l2 += (double)w[i] * w[i];
    }
    double want = 0.1 * l1 + 0.5 * 0.4 * l2;
    cr_assert_float_eq(qat_regularize_penalty(m), want, 1e-6);
    size_t np;
    float *g = qat_model_grads(m, &np);
    memset(g, 0, np * sizeof *g);
    double got = qat_regularize_apply(m); /* once: it accumulates */
    cr_assert_float_eq(got, want, 1e-6);
    for (int i = 0; i < 8; i++) {
        float s = (w[i] > 0) - (w[i] < 0);
        cr_assert_float_eq(fc->w.grad[i], 0.1f * s + 0.4f * w[i], 1e-7, "weight %d", i);
    }
    cr_assert_eq(fc->w.grad[2], 0.0f, "sign(0) = 0: a pruned zero is not pushed");
    cr_assert_eq(fc->b.grad[0], 0.0f, "biases are not penalised by default");
    qat_layer *out = qat_model_layer(m, 2);
    for (size_t i = 0; i < out->w.numel; i++)
        cr_assert_eq(out->w.grad[i], 0.0f, "the layer's own l1 = l2 = 0 wins");
    qat_model_destroy(m);
}

Test(penalty, inactive_without_coefficients)
{
    qat_config *c = pf_config(pf_cnn, NULL, 0);
    cr_assert(!qat_regularize_active(c));
    const char *sets[] = {"layer.fc1.l1=1e-4"};
    qat_config *d = pf_config(pf_cnn, sets, 1);
    cr_assert(qat_regularize_active(d), "one layer's override is enough");
    cr_assert_eq(d->layers[PF_FC1].l1, 1e-4f);
    cr_assert_eq(d->layers[PF_FC2].l1, 0.0f);
    free(c);
    free(d);
}
