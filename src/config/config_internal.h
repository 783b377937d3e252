/* Pieces of the config module shared by its files (not a public API). */
#ifndef QAT_CONFIG_INTERNAL_H
#define QAT_CONFIG_INTERNAL_H

#include <stdio.h>

#include "qat/config.h"
#include "qat/ini.h"

/* Marks the section's input (or, for add and concat, inputs) entry used,
 * so the unknown-key check passes it, and appends the key's name to valid
 * (the list the unknown-key message gives). Resolved later. */
void qat_config_mark_input_keys(qat_ini_section *s, qat_layer_type type, char *valid,
                                size_t len);
/* Fills every layer's ninputs / inputs from its input / inputs key (or the
 * default: the previous layer, the model input for the first), once all
 * layers are parsed. Errors name file:line, the layer and the key: an
 * unknown layer, this layer itself or a later one (a cycle when following
 * it leads back), the wrong number of inputs, and a layer whose output no
 * later layer reads (the last layer's output is the model's). */
qat_status qat_config_resolve_inputs(qat_ini *ini, qat_config *cfg, qat_error *err);
/* "input = NAME" / "inputs = a, b" for layer i when the config named them. */
void qat_config_write_inputs(FILE *f, const qat_config *cfg, int i);

/* [distributed] (distributed.c): its keys, and the section as written back
 * (only when some key differs from its default). */
extern const qat_cfg_key qat_distributed_keys[];
extern const int qat_distributed_nkeys;
void qat_config_write_distributed(FILE *f, const qat_config *cfg);

/* [distill] (distill.c): its keys, its cross-key check (loss = kl with a
 * regression student; the error names the line) and the section as
 * written back. */
extern const qat_cfg_key qat_distill_keys[];
extern const int qat_distill_nkeys;
qat_status qat_config_check_distill(qat_ini *ini, const qat_config *cfg, qat_error *err);
void qat_config_write_distill(FILE *f, const qat_config *cfg);

/* [cluster] (cluster.c): its keys, its cross-key checks (K = 1, a start
 * after the last epoch; errors name the line that set the key), and the
 * section as written back. */
extern const qat_cfg_key qat_cluster_keys[];
extern const int qat_cluster_nkeys;
qat_status qat_config_check_cluster(qat_ini *ini, const qat_config *cfg, qat_error *err);
void qat_config_write_cluster(FILE *f, const qat_config *cfg);

/* checks.c: the cross-key checks of [model] and [train] the task decides
 * (a regression's loss; which shape keys were written), of pruning, and of
 * mode = ptq; errors name the file:line of the key at fault. */
qat_status qat_config_check_model(qat_ini *ini, qat_config *cfg, qat_error *err);
qat_status qat_config_check_prune(qat_ini *ini, const qat_config *cfg, qat_error *err);
qat_status qat_config_check_mode(qat_ini *ini, const qat_config *cfg, qat_error *err);
/* Index of the last layer with weights (the logits' layer), or -1. */
int qat_config_last_compute(const qat_config *cfg);

/* "file:line" of section.key where it was set (or "--set ..."), else of the
 * section, else the file: where a cross-key error points. */
void qat_config_where_key(const qat_ini *ini, const char *section, const char *key, char *buf,
                          size_t len);

#endif
