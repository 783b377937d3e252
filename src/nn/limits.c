/* Memory a training run needs, estimated from the config's shapes before
 * anything is allocated, and how much the machine can give. qat-train
 * refuses a run that cannot fit, with the numbers, instead of being killed
 * by the OOM killer minutes in (or, worse, taking the machine down). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_internal.h"
#include "qat/optim.h"

static size_t sat_mul(size_t a, size_t b)
{
    size_t r;
    return qat_size_mul(a, b, &r) ? SIZE_MAX : r;
}

static size_t sat_add(size_t a, size_t b)
{
    size_t r;
    return qat_size_add(a, b, &r) ? SIZE_MAX : r;
}

/* Float buffers per parameter: the value, its gradient, the effective
 * weight the forward and export use, and the optimizer's moments. */
static size_t floats_per_param(qat_optim_kind optimizer)
{
    switch (optimizer) {
    case QAT_OPT_SGD: return 3;
    case QAT_OPT_MOMENTUM:
    case QAT_OPT_NESTEROV:
    case QAT_OPT_RMSPROP: return 4;
    case QAT_OPT_ADAM:
    case QAT_OPT_ADAMW: return 5;
    }
    return 3;
}

qat_status qat_model_memory_estimate(const qat_config *cfg, int train_batch, int eval_batch,
                                     qat_model_memory *out, qat_error *err)
{
    memset(out, 0, sizeof *out);
    out->peak_layer = -1;
    qat_layer *layers = calloc((size_t)(cfg->nlayers > 0 ? cfg->nlayers : 1), sizeof *layers);
    if (!layers)
        return qat_fail(err, QAT_ENOMEM, "out of memory estimating the model's memory");
    const qat_model_cfg *mc = &cfg->model;
    /* activation values per image: the float input, then every layer's output */
    size_t values = sat_mul(sat_mul((size_t)mc->input_height, (size_t)mc->input_width),
                            (size_t)mc->input_channels);
    qat_status st = qat_layers_infer_shapes(cfg, layers, err);
    for (int i = 0; i < cfg->nlayers && st == QAT_OK; i++) {
        const qat_layer *l = &layers[i];
        size_t v = sat_mul(sat_mul((size_t)l->out_h, (size_t)l->out_w), (size_t)l->out_c);
        values = sat_add(values, v);
        if (out->peak_layer < 0 || v > out->peak_values) {
            out->peak_layer = i;
            out->peak_values = v;
        }
        if (qat_layer_type_has_weights(l->type)) {
            size_t n = sat_mul((size_t)l->out_c, l->fan_in);
            if (l->cfg->bias)
                n = sat_add(n, (size_t)l->out_c);
            if (l->cfg->batchnorm)
                n = sat_add(n, 2 * (size_t)l->out_c);
            out->params = sat_add(out->params, n);
        }
    }
    free(layers);
    if (st != QAT_OK)
        return st;
    size_t fl = sizeof(float);
    out->param_bytes = sat_mul(sat_mul(out->params, floats_per_param(cfg->train.optimizer)), fl);
    size_t tb = train_batch > 0 ? (size_t)train_batch : 0;
    size_t eb = eval_batch > 0 ? (size_t)eval_batch : 0;
    /* per step, whatever the batch: simulated quantization puts each layer's
     * weight codes on the tape (and their gradient, in training) */
    size_t wtmp = cfg->quant.enabled ? out->params : 0;
    out->train_bytes =
        sat_add(sat_mul(sat_mul(sat_mul(values, 2), fl), tb), sat_mul(sat_mul(wtmp, 2), fl));
    out->eval_bytes = sat_add(sat_mul(sat_mul(values, fl), eb), sat_mul(wtmp, fl));
    out->total_bytes = sat_add(out->param_bytes, out->train_bytes > out->eval_bytes
                                                     ? out->train_bytes
                                                     : out->eval_bytes);
    return QAT_OK;
}

static double gib(size_t b) { return (double)b / (double)(1ull << 30); }

qat_status qat_model_check_memory(const qat_config *cfg, int train_batch, int eval_batch,
                                  size_t available, qat_error *err)
{
    qat_model_memory m;
    qat_status st = qat_model_memory_estimate(cfg, train_batch, eval_batch, &m, err);
    if (st != QAT_OK || m.total_bytes <= available)
        return st;
    const qat_layer_cfg *pk = &cfg->layers[m.peak_layer];
    int train = m.train_bytes >= m.eval_bytes;
    return qat_fail(err, QAT_EINVAL,
                    "%s:%d: [layer.%s] this run needs at least %.1f GiB but %.1f GiB is "
                    "available: %.1f GiB of activations for one %s batch of %d images "
                    "([train] batch_size = %d; layer '%s' alone outputs %zu values per image) "
                    "and %.1f GiB for %zu parameters with their gradients and optimizer "
                    "state. Lower batch_size or shrink the layers.",
                    cfg->path, pk->line, pk->name, gib(m.total_bytes), gib(available),
                    gib(train ? m.train_bytes : m.eval_bytes), train ? "training" : "evaluation",
                    train ? train_batch : eval_batch, cfg->train.batch_size, pk->name,
                    m.peak_values, gib(m.param_bytes), m.params);
}

/* First number after "key" in a "key: value kB" style file; 0 if absent. */
static unsigned long long read_value(const char *path, const char *key)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    char line[256];
    unsigned long long v = 0;
    size_t kl = key ? strlen(key) : 0;
    while (fgets(line, sizeof line, f)) {
        if (key && strncmp(line, key, kl) != 0)
            continue;
        if (sscanf(line + kl, " %llu", &v) != 1)
            v = 0;
        break;
    }
    fclose(f);
    return v;
}

size_t qat_memory_available(void)
{
    unsigned long long avail = read_value("/proc/meminfo", "MemAvailable:") * 1024ull;
    if (avail == 0)
        avail = SIZE_MAX;
    /* a container's limit is what the OOM killer enforces ("max" parses as
     * 0 and v1's "unlimited" is a huge number: both leave avail alone) */
    static const char *const limits[2][2] = {
        {"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"},
        {"/sys/fs/cgroup/memory/memory.limit_in_bytes",
         "/sys/fs/cgroup/memory/memory.usage_in_bytes"},
    };
    for (int i = 0; i < 2; i++) {
        unsigned long long lim = read_value(limits[i][0], NULL);
        unsigned long long used = read_value(limits[i][1], NULL);
        if (lim > 0 && lim < (1ull << 60)) {
            unsigned long long left = lim > used ? lim - used : 0;
            if (left < avail)
                avail = left;
        }
    }
    return avail > SIZE_MAX ? SIZE_MAX : (size_t)avail;
}
