/* Structured pruning's export: the pruned-and-removed integer model equals
 * the masked one bit for bit, on synthetic integer models (every weight
 * width, asymmetric and symmetric zero points, pools, a flatten, padding)
 * and on a small CNN trained with channel pruning on the committed MNIST
 * subset (where it also equals the QAT forward, code for code). Removal
 * works on export's codes (src/export/codes.h); the removed model is packed
 * by the runtime's packer, the masked one by the fixture's own. */
#include <criterion/criterion.h>
#include <unistd.h>

#include "../common/tmpdir.h"
#include "../runtime/rt_fixture.h"
#include "export/codes.h"
#include "qat/export.h"
#include "qat/run.h"
#include "qat/runtime_h5.h"

/* ---- synthetic models ------------------------------------------------------- */

static qat_rt_layer_desc *conv_z(fx_model *m, const char *name, int out_c, int k, int s, int pad,
                                 int bits, int relu, int wzp)
{
    qat_rt_layer_desc *l = fx_push(m, QAT_RT_CONV2D, name);
    l->kernel_h = l->kernel_w = k;
    l->stride_h = l->stride_w = s;
    l->pad_h = l->pad_w = pad;
    l->out_h = fx_out(l->in_h, k, s, pad);
    l->out_w = fx_out(l->in_w, k, s, pad);
    l->out_c = out_c;
    fx_fill_weights(m, l, bits, relu, 8, wzp);
    fx_commit(m, l);
    return l;
}

static qat_rt_layer_desc *linear_z(fx_model *m, const char *name, int out_c, int bits, int relu,
                                   int wzp)
{
    qat_rt_layer_desc *l = fx_push(m, QAT_RT_LINEAR, name);
    l->out_h = l->out_w = 1;
    l->out_c = out_c;
    fx_fill_weights(m, l, bits, relu, 8, wzp);
    fx_commit(m, l);
    return l;
}

/* What channel pruning leaves behind: the row at its zero point, bias 0. */
static void kill(fx_model *m, int li, int c, int keep_bias)
{
    qat_rt_layer_desc *l = &m->layers[li];
    size_t k = (size_t)l->kernel_h * l->kernel_w * l->in_c, n = k * (size_t)l->out_c;
    for (size_t j = 0; j < k; j++)
        m->w[li][(size_t)c * k + j] = (int8_t)m->wzp[li][c];
    if (!keep_bias)
        m->bias[li][c] = 0;
    free(m->packed[li]);
    l->weights_bytes = fx_pack(m->w[li], n, l->weight_bits, &m->packed[li]);
    l->weights = m->packed[li];
}

/* m in export's form: the codes and arrays the fixture packed; a weight
 * zero point array only for layers with a nonzero zero point. */
static void to_codes(const fx_model *m, qat_export_model *x)
{
    memset(x, 0, sizeof *x);
    x->d = m->desc;
    x->d.layers = NULL;
    x->layers = calloc((size_t)m->desc.num_layers, sizeof *x->layers);
    for (int i = 0; i < m->desc.num_layers; i++) {
        qat_export_layer *L = &x->layers[i];
        const qat_rt_layer_desc *l = &m->layers[i];
        L->d = *l;
        L->d.weights = NULL;
        L->d.weights_bytes = 0;
        L->d.weight_zero_point = L->d.bias = L->d.multiplier = L->d.shift = NULL;
        L->d.weight_scale = NULL;
        if (l->op != QAT_RT_CONV2D && l->op != QAT_RT_LINEAR)
            continue;
        size_t C = (size_t)l->out_c, n = C * qat_export_row_len(l);
        int asym = 0;
        for (size_t c = 0; c < C; c++)
            asym |= m->wzp[i][c] != 0;
        qat_error e;
        cr_assert_eq(qat_export_layer_alloc(L, asym, &e), QAT_OK, "%s", e.msg);
        memcpy(L->codes, m->w[i], n);
        memcpy(L->bias, m->bias[i], C * sizeof(int32_t));
        memcpy(L->multiplier, m->mult[i], C * sizeof(int32_t));
        memcpy(L->shift, m->shift[i], C * sizeof(int32_t));
        if (asym)
            memcpy(L->weight_zero_point, m->wzp[i], C * sizeof(int32_t));
        memcpy(L->weight_scale, m->wscale[i], C * sizeof(float));
    }
}

/* m's dead channels removed in export's form, then packed. */
static int remove_and_pack(const fx_model *m, qat_rt_owned_desc *o)
{
    qat_export_model x;
    to_codes(m, &x);
    int removed;
    qat_error e;
    cr_assert_eq(qat_export_remove_channels(&x, &removed, &e), QAT_OK, "%s", e.msg);
    cr_assert_eq(qat_export_pack(&x, o, &e), QAT_OK, "%s", e.msg);
    qat_export_model_free(&x);
    return removed;
}

/* Runs d on n images through the given kernel path. */
static int8_t *logits_of(const qat_rt_model_desc *d, const char *isa, const uint8_t *px, int n)
{
    qat_rt_model *rm;
    qat_rt_session *s;
    qat_error e;
    cr_assert_eq(qat_rt_model_create_isa(d, isa, &rm, &e), QAT_OK, "%s", e.msg);
    qat_rt_options o = {.threads = 2, .max_batch = n};
    cr_assert_eq(qat_rt_session_create(rm, &o, &s, &e), QAT_OK, "%s", e.msg);
    int8_t *q = malloc((size_t)n * (size_t)d->num_classes);
    cr_assert_eq(qat_rt_run(s, px, n, q, &e), QAT_OK, "%s", e.msg);
    qat_rt_session_destroy(s);
    qat_rt_model_destroy(rm);
    return q;
}

static void expect_same_logits(const qat_rt_model_desc *a, const qat_rt_model_desc *b, int n)
{
    uint8_t *px = malloc((size_t)n * (size_t)a->in_h * a->in_w * a->in_c);
    fx_images(77, px, (size_t)n * (size_t)a->in_h * a->in_w * a->in_c);
    const char *isas[] = {"ref", NULL};
    for (int k = 0; k < 2; k++) {
        int8_t *x = logits_of(a, isas[k], px, n), *y = logits_of(b, isas[k], px, n);
        cr_assert_eq(memcmp(x, y, (size_t)n * (size_t)a->num_classes), 0,
                     "masked and removed models disagree (%s path)", isas[k] ? isas[k] : "auto");
        free(x);
        free(y);
    }
    free(px);
}

/* conv1 (8-bit, asymmetric) -> maxpool -> conv2 (4-bit, asymmetric, stride
 * 2, pad 1) -> avgpool -> flatten -> fc (2-bit) -> out (8-bit) */
static void build(fx_model *m, uint64_t seed)
{
    fx_begin(m, 13, 11, 1, seed);
    conv_z(m, "conv1", 7, 3, 1, 1, 8, 1, 20);             /* 13x11x7 */
    fx_pool(m, QAT_RT_MAXPOOL2D, "pool1", 2, 2);           /* 6x5x7 */
    conv_z(m, "conv2", 9, 3, 2, 1, 4, 0, 3);              /* 3x3x9 */
    fx_pool(m, QAT_RT_AVGPOOL2D, "pool2", 2, 1);           /* 2x2x9 */
    fx_flatten(m, "flatten");                             /* 36 */
    linear_z(m, "fc", 8, 2, 1, 0);
    linear_z(m, "out", 10, 8, 0, 0);
    fx_finish(m);
}

enum { L_CONV1 = 0, L_CONV2 = 2, L_FLAT = 4, L_FC = 5, L_OUT = 6 };

Test(remove, synthetic_masked_and_removed_models_agree_bit_for_bit)
{
    for (uint64_t seed = 1; seed <= 6; seed++) {
        fx_model m;
        build(&m, seed);
        kill(&m, L_CONV1, 1, 0);
        kill(&m, L_CONV1, 4, 0);
        kill(&m, L_CONV2, 0, 0);
        kill(&m, L_CONV2, 3, 0);
        kill(&m, L_CONV2, 8, 0);
        kill(&m, L_FC, 2, 0);
        kill(&m, L_FC, 5, 0);
        kill(&m, L_FC, 6, 1); /* zero weights but a bias: a constant, not a zero: stays */
        kill(&m, L_OUT, 7, 0); /* the class scores never shrink */
        qat_rt_owned_desc o;
        int removed = remove_and_pack(&m, &o);
        qat_error e;
        cr_assert_eq(removed, 7, "seed %lu", (unsigned long)seed);
        const qat_rt_layer_desc *L = o.desc.layers;
        cr_assert(L[L_CONV1].out_c == 5 && L[1].in_c == 5 && L[1].out_c == 5);
        cr_assert(L[L_CONV2].in_c == 5 && L[L_CONV2].out_c == 6 && L[3].out_c == 6);
        cr_assert(L[L_FLAT].in_c == 6 && L[L_FLAT].out_c == 24, "flatten 2x2x6");
        cr_assert(L[L_FC].in_c == 24 && L[L_FC].out_c == 6);
        cr_assert(L[L_OUT].in_c == 6 && L[L_OUT].out_c == 10);
        cr_assert_eq(qat_rt_model_validate(&o.desc, &e), QAT_OK, "%s", e.msg);
        expect_same_logits(&m.desc, &o.desc, 40);
        qat_rt_owned_desc_free(&o);
        fx_free(&m);
    }
}

Test(remove, a_fully_dead_layer_keeps_one_channel)
{
    fx_model m;
    build(&m, 9);
    for (int c = 0; c < 9; c++)
        kill(&m, L_CONV2, c, 0);
    qat_rt_owned_desc o;
    remove_and_pack(&m, &o);
    cr_assert_eq(o.desc.layers[L_CONV2].out_c, 1);
    cr_assert_eq(o.desc.layers[L_FC].in_c, 4);
    expect_same_logits(&m.desc, &o.desc, 20);
    qat_rt_owned_desc_free(&o);
    fx_free(&m);
}

Test(remove, the_comparison_can_fail)
{
    /* removing a live channel by hand must change logits: the check sees it */
    fx_model m;
    build(&m, 3);
    kill(&m, L_CONV2, 2, 1); /* weights zero, bias kept: outputs a constant */
    qat_rt_owned_desc o;
    cr_assert_eq(remove_and_pack(&m, &o), 0, "a constant channel is not removable");
    m.bias[L_CONV2][2] = 0; /* make it removable, then compare against the biased model */
    qat_rt_owned_desc o2;
    cr_assert_eq(remove_and_pack(&m, &o2), 1);
    int n = 40;
    size_t isz = (size_t)m.desc.in_h * m.desc.in_w;
    uint8_t *px = malloc((size_t)n * isz);
    fx_images(5, px, (size_t)n * isz);
    int8_t *x = logits_of(&o.desc, "ref", px, n), *y = logits_of(&o2.desc, "ref", px, n);
    cr_assert_neq(memcmp(x, y, (size_t)n * 10), 0, "the bias mattered");
    free(x);
    free(y);
    free(px);
    qat_rt_owned_desc_free(&o);
    qat_rt_owned_desc_free(&o2);
    fx_free(&m);
}

/* ---- a trained channel-pruned CNN ------------------------------------------- */

static char dir[64];

static qat_config *subset_cfg(const char *const *extra, int nextra)
{
    const char *root = getenv("QAT_SOURCE_ROOT");
    cr_assert_not_null(root, "run through meson test");
    char path[1024], data[1024];
    snprintf(path, sizeof path, "%s/configs/mnist_cnn.ini", root);
    snprintf(data, sizeof data, "data.dir=%s/datasets/mnist-subset", root);
    const char *sets[24] = {data, "train.progress=false", "train.threads=2", "train.epochs=3",
                            "data.train_limit=600", "data.test_limit=200",
                            "layer.conv1.out_channels=8", "layer.conv2.out_channels=8",
                            "layer.fc1.in_features=392", "layer.fc1.out_features=16"};
    int n = 10;
    for (int i = 0; i < nextra; i++)
        sets[n++] = extra[i];
    qat_config *c = malloc(sizeof *c);
    qat_error e;
    cr_assert_eq(qat_config_load(path, sets, n, c, &e), QAT_OK, "%s", e.msg);
    return c;
}

/* QAT forward codes of m on d's images vs an integer model's logits. */
static int differing_images(qat_model *m, const qat_rt_model_desc *desc, const qat_dataset *d)
{
    qat_tape *t;
    qat_tape_create(NULL, &t, NULL);
    qat_tape_set_training(t, 0);
    qat_tape_set_grad_enabled(t, 0);
    int8_t *q = logits_of(desc, NULL, d->images, (int)d->n);
    qat_tensor *y = qat_model_forward(m, t, d->images, (int)d->n);
    float s = 0;
    int32_t zp = 0;
    for (int i = 0; i < desc->num_layers; i++) {
        s = desc->layers[i].output_scale;
        zp = desc->layers[i].output_zero_point;
    }
    int differ = 0;
    for (uint32_t i = 0; i < d->n; i++) {
        int same = 1;
        for (int c = 0; c < 10; c++)
            same &= (int)lrintf(y->data[i * 10 + c] / s) + zp == q[i * 10 + c];
        differ += !same;
    }
    free(q);
    qat_tape_destroy(t);
    return differ;
}

/* The deployed sparsity export counts on its codes equals a count on the
 * written file: codes at their zero point, plus the weights removal took
 * out of the trained shapes (m's). */
static void expect_sparsity(qat_model *m, const qat_rt_model_desc *d)
{
    qat_rt_owned_desc x;
    qat_prune_stats s;
    qat_error e;
    cr_assert_eq(qat_export_desc_sparsity(m, &x, &s, &e), QAT_OK, "%s", e.msg);
    qat_rt_owned_desc_free(&x);
    int k = 0, li = 0;
    size_t total = 0, zeros = 0;
    for (int i = 0; i < d->num_layers; i++) {
        const qat_rt_layer_desc *l = &d->layers[i];
        if (l->op != QAT_RT_CONV2D && l->op != QAT_RT_LINEAR)
            continue;
        while (qat_model_layer(m, li)->type != QAT_LAYER_CONV2D &&
               qat_model_layer(m, li)->type != QAT_LAYER_LINEAR)
            li++;
        const qat_layer *trained = qat_model_layer(m, li++);
        cr_assert_lt(k, s.n);
        const qat_prune_layer_stat *L = &s.layers[k++];
        size_t row = (size_t)l->kernel_h * l->kernel_w * l->in_c, n = row * (size_t)l->out_c, z = 0;
        int8_t *w = malloc(n);
        qat_rt_unpack_weights(l->weights, n, l->weight_bits, w);
        for (size_t j = 0; j < n; j++)
            z += w[j] == (l->weight_zero_point ? l->weight_zero_point[j / row] : 0);
        free(w);
        cr_assert_str_eq(L->name, l->name);
        cr_assert_eq(L->weights, trained->w.numel, "%s", l->name);
        cr_assert_eq(L->channels, trained->out_c, "%s", l->name);
        cr_assert_eq(L->channels_kept, l->out_c, "%s", l->name);
        cr_assert_eq(L->zeros, z + (trained->w.numel - n), "%s", l->name);
        total += L->weights;
        zeros += L->zeros;
    }
    cr_assert_eq(k, s.n);
    cr_assert(s.weights == total && s.zeros == zeros);
    cr_assert_eq(s.sparsity, (double)zeros / (double)total);
    cr_assert_gt(zeros, 0, "channel pruning left zeros to count");
}

static void trained_case(const char *const *extra, int nextra, int conv2_kept, int fc1_kept)
{
    tc_tmpdir(dir, sizeof dir, "qat-prune");
    qat_config *cfg = subset_cfg(extra, nextra);
    qat_train_opts o = {.out_dir = dir, .quiet = 1};
    qat_error e;
    cr_assert_eq(qat_run(cfg, &o, &e), QAT_OK, "%s", e.msg);
    char ck[256], mp[256];
    snprintf(ck, sizeof ck, "%s/checkpoint.h5", dir);
    snprintf(mp, sizeof mp, "%s/model.int8.h5", dir);
    qat_model *m;
    cr_assert_eq(qat_checkpoint_load_model(ck, &m, &e), QAT_OK, "%s", e.msg);
    cr_assert_eq(qat_model_refresh_qparams(m, &e), QAT_OK, "%s", e.msg);
    /* the file qat-train wrote has the reduced shapes */
    qat_rt_owned_desc removed;
    cr_assert_eq(qat_rt_h5_read_desc(mp, &removed, &e), QAT_OK, "%s", e.msg);
    const qat_rt_layer_desc *L = removed.desc.layers;
    cr_assert_eq(L[0].out_c, 8, "conv1 is kept dense");
    cr_assert_eq(L[2].out_c, conv2_kept, "conv2 filters");
    cr_assert_eq(L[3].out_c, conv2_kept, "pool2 follows");
    cr_assert_eq(L[4].out_c, 49 * conv2_kept, "flatten: 7x7 positions of each kept channel");
    cr_assert_eq(L[5].in_c, 49 * conv2_kept);
    cr_assert_eq(L[5].out_c, fc1_kept, "fc1 neurons");
    cr_assert(L[6].in_c == fc1_kept && L[6].out_c == 10);
    expect_sparsity(m, &removed.desc);
    /* the same weights exported without removal: the masked integer model */
    qat_config *plain = malloc(sizeof *plain);
    *plain = *qat_model_config(m);
    plain->prune.method = QAT_PRUNE_NONE;
    qat_model *m2;
    cr_assert_eq(qat_model_create(plain, &m2, &e), QAT_OK, "%s", e.msg);
    size_t n1, n2;
    const float *src = qat_model_params(m, &n1);
    float *dst = qat_model_params(m2, &n2);
    cr_assert_eq(n1, n2);
    memcpy(dst, src, n1 * sizeof(float));
    n1 = qat_model_state_size(m);
    cr_assert_eq(n1, qat_model_state_size(m2));
    float *state = malloc(n1 * sizeof *state);
    qat_model_state_save(m, state);
    cr_assert_eq(qat_model_state_load(m2, state, &e), QAT_OK, "%s", e.msg);
    free(state);
    qat_rt_owned_desc masked;
    cr_assert_eq(qat_export_desc(m2, &masked, &e), QAT_OK, "%s", e.msg);
    cr_assert_eq(masked.desc.layers[2].out_c, 8, "no removal: full shapes");
    cr_assert_lt(qat_export_param_bytes(&removed.desc), qat_export_param_bytes(&masked.desc));
    qat_dataset test;
    cr_assert_eq(qat_mnist_load(cfg->data.dir, "t10k", 10, 200, &test, &e), QAT_OK, "%s", e.msg);
    expect_same_logits(&masked.desc, &removed.desc, 64);
    int8_t *a = logits_of(&masked.desc, NULL, test.images, (int)test.n);
    int8_t *b = logits_of(&removed.desc, NULL, test.images, (int)test.n);
    cr_assert_eq(memcmp(a, b, (size_t)test.n * 10), 0, "test images: masked != removed");
    cr_assert_eq(differing_images(m, &removed.desc, &test), 0,
                 "the removed integer model reproduces the QAT forward code for code");
    free(a);
    free(b);
    qat_dataset_free(&test);
    qat_rt_owned_desc_free(&removed);
    qat_rt_owned_desc_free(&masked);
    qat_model_destroy(m);
    qat_model_destroy(m2);
    free(plain);
    free(cfg);
}

static const char *channel50[] = {"prune.method=channel", "prune.scope=layer",
                                  "prune.target_sparsity=0.5", "prune.unit=step",
                                  "prune.start=5", "prune.end=20", "prune.frequency=5",
                                  "layer.conv1.prune=false"};

Test(trained, channel_pruned_cnn_exports_reduced_and_exact, .timeout = 300)
{
    trained_case(channel50, 8, 4, 8);
}

Test(trained, with_batchnorm_asymmetric_weights_and_l2_ranking, .timeout = 300)
{
    const char *extra[12];
    memcpy(extra, channel50, sizeof channel50);
    extra[8] = "layer.conv2.batchnorm=true";
    extra[9] = "quant.weight_scheme=asymmetric";
    extra[10] = "prune.channel_norm=l2";
    extra[11] = "layer.fc1.target_sparsity=0.75";
    trained_case(extra, 12, 4, 4);
}

/* ---- a trained clustered CNN (weight sharing, FORMAT.md §10) ------------------ */

/* Trained with [cluster] from step 0: the file qat-train wrote is
 * palettized, its logits equal the same codes stored plain, and both equal
 * the QAT forward code for code. */
static void clustered_case(const char *const *extra, int nextra, int k)
{
    tc_tmpdir(dir, sizeof dir, "qat-cluster");
    qat_config *cfg = subset_cfg(extra, nextra);
    qat_train_opts o = {.out_dir = dir, .quiet = 1};
    qat_error e;
    cr_assert_eq(qat_run(cfg, &o, &e), QAT_OK, "%s", e.msg);
    char ck[256], mp[256];
    snprintf(ck, sizeof ck, "%s/checkpoint.h5", dir);
    snprintf(mp, sizeof mp, "%s/model.int8.h5", dir);
    cr_assert(qat_checkpoint_has(ck, "cluster_state"), "the checkpoint keeps the clusters");
    qat_model *m;
    cr_assert_eq(qat_checkpoint_load_model(ck, &m, &e), QAT_OK, "%s", e.msg);
    cr_assert_eq(qat_model_refresh_qparams(m, &e), QAT_OK, "%s", e.msg);
    qat_rt_owned_desc pal;
    cr_assert_eq(qat_rt_h5_read_desc(mp, &pal, &e), QAT_OK, "%s", e.msg);
    cr_assert_eq(pal.desc.version, 2);
    qat_rt_owned_desc plain;
    cr_assert_eq(qat_export_desc(m, &plain, &e), QAT_OK, "%s", e.msg);
    int npal = 0;
    for (int i = 0; i < plain.desc.num_layers; i++) {
        qat_rt_layer_desc *l = &plain.layers[i];
        if (l->op != QAT_RT_CONV2D && l->op != QAT_RT_LINEAR)
            continue;
        /* palettized exactly where the palette is the smaller encoding */
        const qat_rt_layer_desc *p = &pal.layers[i];
        size_t n = (size_t)l->kernel_h * l->kernel_w * l->in_c * l->out_c;
        int8_t *w = malloc(n), *cb = malloc((size_t)l->out_c * (size_t)k);
        uint8_t *idx = malloc(n);
        qat_rt_unpack_weights(l->weights, n, l->weight_bits, w);
        int groups = qat_export_palette(w, (size_t)l->out_c, n / (size_t)l->out_c, k, cb, idx);
        cr_assert_gt(groups, 0, "%s: the tied weights fit %d codes", l->name, k);
        int smaller = (size_t)groups * (size_t)k + qat_rt_palette_index_bytes(n, k) <
                      l->weights_bytes;
        cr_assert_eq(p->palette_size, smaller ? k : 0, "layer %s", l->name);
        free(w);
        free(cb);
        free(idx);
        if (p->palette_size) {
            cr_assert_null(p->weights);
            cr_assert_lt((size_t)p->palette_groups * (size_t)k + p->indices_bytes,
                         l->weights_bytes, "%s", l->name);
        }
        npal += p->palette_size != 0;
        l->palette_size = 0; /* the export keeps the plain stream beside the palette */
    }
    cr_assert_geq(npal, 2, "conv2 and fc1 at least are palettized");
    plain.desc.version = 1;
    cr_assert_lt(qat_export_param_bytes(&pal.desc), qat_export_param_bytes(&plain.desc));
    qat_dataset test;
    cr_assert_eq(qat_mnist_load(cfg->data.dir, "t10k", 10, 200, &test, &e), QAT_OK, "%s", e.msg);
    int8_t *a = logits_of(&plain.desc, NULL, test.images, (int)test.n);
    int8_t *b = logits_of(&pal.desc, NULL, test.images, (int)test.n);
    cr_assert_eq(memcmp(a, b, (size_t)test.n * 10), 0, "palettized != plain");
    cr_assert_eq(differing_images(m, &pal.desc, &test), 0,
                 "the palettized model reproduces the QAT forward code for code");
    free(a);
    free(b);
    qat_dataset_free(&test);
    qat_rt_owned_desc_free(&pal);
    qat_rt_owned_desc_free(&plain);
    qat_model_destroy(m);
    free(cfg);
}

Test(trained, clustered_cnn_exports_palettized_and_exact, .timeout = 300)
{
    const char *extra[] = {"cluster.clusters=8", "cluster.start=1"};
    clustered_case(extra, 2, 8);
}

Test(trained, clustered_per_channel_with_magnitude_pruning, .timeout = 300)
{
    const char *extra[] = {"cluster.clusters=4",        "cluster.granularity=per_channel",
                           "prune.method=magnitude",    "prune.schedule=one_shot",
                           "prune.target_sparsity=0.5", "prune.start=1",
                           "cluster.start=1"};
    clustered_case(extra, 7, 4);
}
