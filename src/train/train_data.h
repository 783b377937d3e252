/* The run's data (train-internal): the splits as loaded from [data], the
 * configuration they resolve, and the batches built from them. */
#ifndef QAT_TRAIN_DATA_H
#define QAT_TRAIN_DATA_H

#include "qat/config.h"
#include "qat/data.h"

typedef struct qat_run_data {
    qat_dataset train_all;  /* the training split as loaded */
    qat_dataset train_view; /* with [data] val_fraction: what is left for training */
    qat_dataset val, test;
    const qat_dataset *train; /* train_all or train_view */
    int has_val;
} qat_run_data;

/* Loads cfg's splits and resolves into *rc (a copy of cfg) what the data
 * decides: the input shape (keys the config did not write), input_type
 * auto. A config key that disagrees with the data is an error naming both;
 * so are a regression's targets against its last layer (checked by the
 * trainer once the model exists). With val_fraction, splits off the
 * validation set with the seed. */
qat_status qat_run_data_load(const qat_config *cfg, qat_config *rc, qat_run_data *d,
                             qat_error *err);
void qat_run_data_free(qat_run_data *d);

/* One batch's buffers: inputs of the data's type, labels or targets. */
typedef struct qat_batch {
    void *inputs;
    uint8_t *labels;
    float *targets;
    void *scratch; /* one example, for augmentation */
} qat_batch;

qat_status qat_batch_alloc(qat_batch *b, const qat_dataset *d, int max, qat_error *err);
void qat_batch_free(qat_batch *b);
/* Gathers examples idx[0..n) of d and, for a training batch (aug active),
 * augments each by (seed, epoch, its index in d). */
void qat_batch_fill(qat_batch *b, const qat_dataset *d, const uint32_t *idx, int n,
                    const qat_augment_params *aug, uint64_t seed, int epoch);
/* The augmentation [augment] asks for. */
qat_augment_params qat_run_augment(const qat_config *cfg);

#endif
