/* Sparsity as it is deployed: counted from the weights themselves (exact
 * float zeros here; int8 codes at the zero point in export), not from the
 * masks, so the numbers in summary.json describe the model a user ships. */
#include <string.h>

#include "qat/prune.h"

static int is_compute(int type) { return qat_layer_type_has_weights((qat_layer_type)type); }

static void begin(qat_model *m, qat_prune_stats *s)
{
    memset(s, 0, sizeof *s);
    for (int i = 0; i < qat_model_num_layers(m); i++) {
        qat_layer *l = qat_model_layer(m, i);
        if (!is_compute(l->type))
            continue;
        qat_prune_layer_stat *L = &s->layers[s->n++];
        L->name = l->cfg->name;
        L->weights = l->w.numel;
        L->channels = L->channels_kept = l->out_c;
    }
}

void qat_prune_stats_total(qat_prune_stats *s)
{
    for (int i = 0; i < s->n; i++) {
        s->weights += s->layers[i].weights;
        s->zeros += s->layers[i].zeros;
    }
    s->sparsity = s->weights ? (double)s->zeros / (double)s->weights : 0.0;
}

void qat_prune_stats_float(qat_model *m, qat_prune_stats *s)
{
    begin(m, s);
    int k = 0;
    for (int i = 0; i < qat_model_num_layers(m); i++) {
        qat_layer *l = qat_model_layer(m, i);
        if (!is_compute(l->type))
            continue;
        size_t z = 0;
        for (size_t j = 0; j < l->w.numel; j++)
            z += l->w.data[j] == 0.0f;
        s->layers[k++].zeros = z;
    }
    qat_prune_stats_total(s);
}

void qat_prune_stats_print(FILE *f, const qat_prune_stats *s, const char *title)
{
    fprintf(f, "%s\n  %-12s %10s %10s %9s %10s\n", title, "layer", "weights", "zeros",
            "sparsity", "channels");
    for (int i = 0; i < s->n; i++) {
        const qat_prune_layer_stat *L = &s->layers[i];
        fprintf(f, "  %-12s %10zu %10zu %9.4f %5d/%-4d\n", L->name, L->weights, L->zeros,
                L->weights ? (double)L->zeros / (double)L->weights : 0.0, L->channels_kept,
                L->channels);
    }
    fprintf(f, "  %-12s %10zu %10zu %9.4f\n", "overall", s->weights, s->zeros, s->sparsity);
}
