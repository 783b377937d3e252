/* The run's data: [data] becomes a qat_data_source, both splits load, the
 * data decides what the config left open (input shape, input type), and
 * the validation split is drawn. Then the batches: gathered through the
 * epoch order and augmented in place, one example at a time. */
#include <stdlib.h>
#include <string.h>

#include "qat/data_h5.h"
#include "qat/nn.h"
#include "train_data.h"

_Static_assert((int)QAT_FMT_CSV == (int)QAT_FORMAT_CSV && (int)QAT_FMT_IDX == (int)QAT_FORMAT_IDX,
               "[data] format's table follows qat_data_format");

/* "[data] dir = X" or "[data] train = X": where a split came from. */
static void data_key(const qat_config *c, const char *split, char *buf, size_t len)
{
    const char *own = strcmp(split, "train") == 0 ? c->data.train : c->data.test;
    if (*own)
        snprintf(buf, len, "[data] %s = %s", split, own);
    else
        snprintf(buf, len, "[data] dir = %s", c->data.dir);
}

static qat_status load_split(const qat_config *c, const qat_data_source *src, const char *split,
                             uint32_t limit, qat_dataset *out, qat_error *err)
{
    char where[4096];
    qat_status st = qat_data_load(src, split, limit, out, where, sizeof where, err);
    if (st != QAT_OK) {
        char key[4200];
        data_key(c, split, key, sizeof key);
        return qat_error_prefix(err, "%s: %s", c->path, key);
    }
    return QAT_OK;
}

static void shape_text(char *buf, size_t len, int h, int w, int ch)
{
    snprintf(buf, len, "%dx%dx%d", h, w, ch);
}

/* The shape and type the config asks for against the data's. */
static qat_status resolve(const qat_config *c, qat_config *rc, const qat_dataset *tr,
                          const qat_dataset *te, qat_error *err)
{
    qat_model_cfg *m = &rc->model;
    const qat_dataset *ds[2] = {tr, te};
    const char *splits[2] = {"train", "test"};
    int set = c->model.input_set;
    for (int i = 0; i < 2; i++) {
        const qat_dataset *d = ds[i];
        int bad = ((set & QAT_SET_HEIGHT) && d->h != c->model.input_height) ||
                  ((set & QAT_SET_WIDTH) && d->w != c->model.input_width) ||
                  ((set & QAT_SET_CHANNELS) && d->c != c->model.input_channels);
        if (bad) {
            char want[64], have[64];
            shape_text(want, sizeof want, c->model.input_height, c->model.input_width,
                       c->model.input_channels);
            shape_text(have, sizeof have, d->h, d->w, d->c);
            const char *own = i == 0 ? c->data.train : c->data.test;
            return qat_fail(err, QAT_EINVAL,
                            "%s: [model] expects %s images but %s (the %s split) holds %s",
                            c->path, want, *own ? own : c->data.dir, splits[i], have);
        }
    }
    if (tr->h != te->h || tr->w != te->w || tr->c != te->c ||
        qat_dataset_type(tr) != qat_dataset_type(te) || tr->target_dim != te->target_dim) {
        char a[64], b[64], ka[4200], kb[4200];
        shape_text(a, sizeof a, tr->h, tr->w, tr->c);
        shape_text(b, sizeof b, te->h, te->w, te->c);
        data_key(c, "train", ka, sizeof ka);
        data_key(c, "test", kb, sizeof kb);
        return qat_fail(err, QAT_EINVAL,
                        "%s: the training split (%s) holds %s %s examples%s but the test split "
                        "(%s) holds %s %s%s: they must agree",
                        c->path, ka, a, qat_dataset_type(tr) == QAT_DATA_F32 ? "float32" : "uint8",
                        tr->targets ? " with float targets" : "", kb, b,
                        qat_dataset_type(te) == QAT_DATA_F32 ? "float32" : "uint8",
                        te->targets ? " with float targets" : "");
    }
    m->input_height = tr->h;
    m->input_width = tr->w;
    m->input_channels = tr->c;
    m->input_set = QAT_SET_HEIGHT | QAT_SET_WIDTH | QAT_SET_CHANNELS;
    qat_input_type have = qat_dataset_type(tr) == QAT_DATA_F32 ? QAT_INPUT_FLOAT32
                                                                : QAT_INPUT_UINT8;
    if (m->input_type != QAT_INPUT_AUTO && m->input_type != have) {
        char key[4200];
        data_key(c, "train", key, sizeof key);
        return qat_fail(err, QAT_EINVAL, "%s: [model] input_type = %s but %s stores %s inputs",
                        c->path, qat_input_type_names[m->input_type], key,
                        qat_input_type_names[have]);
    }
    m->input_type = have;
    return QAT_OK;
}

qat_status qat_run_data_load(const qat_config *cfg, qat_config *rc, qat_run_data *d,
                             qat_error *err)
{
    memset(d, 0, sizeof *d);
    *rc = *cfg;
    const qat_data_cfg *dc = &cfg->data;
    qat_data_source src = {
        .format = (qat_data_format)dc->format,
        .dir = dc->dir,
        .train = dc->train,
        .test = dc->test,
        .x_name = dc->x_name,
        .y_name = dc->y_name,
        .target = dc->target,
        .regression = cfg->model.task == QAT_TASK_REGRESSION,
        .num_classes = cfg->model.num_classes,
        .mem_available = qat_memory_available(),
        .h5 = qat_data_h5_read,
    };
    qat_status st = load_split(cfg, &src, "train", (uint32_t)dc->train_limit, &d->train_all, err);
    if (st == QAT_OK)
        st = load_split(cfg, &src, "test", (uint32_t)dc->test_limit, &d->test, err);
    if (st == QAT_OK)
        st = resolve(cfg, rc, &d->train_all, &d->test, err);
    d->train = &d->train_all;
    if (st == QAT_OK && dc->val_fraction > 0) {
        qat_rng r;
        qat_rng_seed(&r, (uint64_t)cfg->train.seed, 3);
        st = qat_dataset_split(&d->train_all, dc->val_fraction, &r, &d->train_view, &d->val, err);
        if (st != QAT_OK)
            qat_error_prefix(err, "%s: [data] val_fraction", cfg->path);
        d->train = &d->train_view;
        d->has_val = st == QAT_OK;
    }
    if (st == QAT_OK && (uint32_t)cfg->train.batch_size > d->train->n)
        st = qat_fail(err, QAT_EINVAL,
                      "%s: [train] batch_size = %d is larger than the %u training images",
                      cfg->path, cfg->train.batch_size, d->train->n);
    if (st != QAT_OK)
        qat_run_data_free(d);
    return st;
}

void qat_run_data_free(qat_run_data *d)
{
    qat_dataset_free(&d->train_view);
    qat_dataset_free(&d->val);
    qat_dataset_free(&d->train_all);
    qat_dataset_free(&d->test);
    memset(d, 0, sizeof *d);
}

qat_augment_params qat_run_augment(const qat_config *cfg)
{
    return (qat_augment_params){cfg->augment.random_crop, cfg->augment.hflip, cfg->augment.shift,
                                cfg->augment.cutout};
}

qat_status qat_batch_alloc(qat_batch *b, const qat_dataset *d, int max, qat_error *err)
{
    memset(b, 0, sizeof *b);
    size_t esz = qat_dataset_type(d) == QAT_DATA_F32 ? sizeof(float) : 1;
    size_t isz = qat_dataset_image_size(d) * esz;
    b->inputs = malloc((size_t)max * isz);
    b->scratch = malloc(isz);
    b->labels = malloc((size_t)max);
    if (d->targets)
        b->targets = malloc((size_t)max * (size_t)d->target_dim * sizeof(float));
    if (!b->inputs || !b->scratch || !b->labels || (d->targets && !b->targets)) {
        qat_batch_free(b);
        return qat_fail(err, QAT_ENOMEM, "out of memory for batch buffers");
    }
    return QAT_OK;
}

void qat_batch_free(qat_batch *b)
{
    free(b->inputs);
    free(b->scratch);
    free(b->labels);
    free(b->targets);
    memset(b, 0, sizeof *b);
}

void qat_batch_fill(qat_batch *b, const qat_dataset *d, const uint32_t *idx, int n,
                    const qat_augment_params *aug, uint64_t seed, int epoch)
{
    qat_dataset_batch(d, idx, 0, n, b->inputs, b->labels, b->targets);
    if (!qat_augment_active(aug))
        return;
    qat_data_type type = qat_dataset_type(d);
    size_t isz = qat_dataset_image_size(d) * (type == QAT_DATA_F32 ? sizeof(float) : 1);
    for (int i = 0; i < n; i++)
        qat_augment_example(aug, seed, epoch, idx[i], type, d->h, d->w, d->c,
                            (uint8_t *)b->inputs + (size_t)i * isz, b->scratch);
}
