/* A small ONNX graph builder over the protobuf-c structs that protoc-c
 * generates from Debian's onnx.proto (build time, src/export/meson.build).
 * Every message, string and array lives in one arena owned by the builder,
 * so building a graph never frees piecemeal and a failed export leaks
 * nothing (the arena aborts on out-of-memory, as everywhere in qat).
 * Internal to src/export/onnx*.c. */
#ifndef QAT_EXPORT_ONNX_BUILD_H
#define QAT_EXPORT_ONNX_BUILD_H

#include <stddef.h>
#include <stdint.h>

#include "onnx.pb-c.h"
#include "qat/status.h"

typedef struct onnx_builder onnx_builder;

/* NULL on allocation failure. */
onnx_builder *onnx_builder_create(const char *graph_name);
void onnx_builder_destroy(onnx_builder *b);

/* printf into the builder's arena (the string lives as long as b). */
const char *onnx_str(onnx_builder *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Constant tensors (graph initializers), stored as little-endian raw_data.
 * dims may be NULL for a scalar (nd = 0). Return the name. */
const char *onnx_init_f32(onnx_builder *b, const char *name, const float *v, const int64_t *dims,
                          int nd);
const char *onnx_init_i8(onnx_builder *b, const char *name, const int8_t *v, const int64_t *dims,
                         int nd);
const char *onnx_init_i32(onnx_builder *b, const char *name, const int32_t *v, const int64_t *dims,
                          int nd);
const char *onnx_init_f64(onnx_builder *b, const char *name, const double *v, const int64_t *dims,
                          int nd);
const char *onnx_init_u8(onnx_builder *b, const char *name, const uint8_t *v, const int64_t *dims,
                         int nd);
const char *onnx_init_i64(onnx_builder *b, const char *name, const int64_t *v, const int64_t *dims,
                          int nd);
/* Scalars. */
const char *onnx_scalar_f32(onnx_builder *b, const char *name, float v);
const char *onnx_scalar_i8(onnx_builder *b, const char *name, int8_t v);

/* Appends a node; inputs/outputs are NULL-terminated name lists ("" marks an
 * omitted optional input). domain NULL is the default ONNX domain. */
Onnx__NodeProto *onnx_node(onnx_builder *b, const char *op, const char *domain, const char *name,
                           const char *const *inputs, const char *const *outputs);
void onnx_attr_int(onnx_builder *b, Onnx__NodeProto *n, const char *name, int64_t v);
void onnx_attr_ints(onnx_builder *b, Onnx__NodeProto *n, const char *name, const int64_t *v,
                    int count);

/* Graph inputs and outputs: a tensor of elem_type (ONNX__TENSOR_PROTO__DATA_TYPE__*)
 * whose first dimension is the symbolic batch "N" and the rest dims. */
void onnx_graph_input(onnx_builder *b, const char *name, int elem_type, const int64_t *dims, int nd,
                      const char *doc);
void onnx_graph_output(onnx_builder *b, const char *name, int elem_type, const int64_t *dims,
                       int nd, const char *doc);

/* Model header: opset of the default domain, and of com.microsoft when
 * ms_opset > 0; producer and doc strings. */
void onnx_model_info(onnx_builder *b, int64_t ir_version, int64_t opset, int64_t ms_opset,
                     const char *producer_version, const char *doc);

/* Serializes the model and writes it atomically: <path>.tmp.<pid>, fsync,
 * rename over path, fsync of the directory. On failure nothing is left at
 * path or at the temporary name; QAT_EIO names the path and the reason. */
qat_status onnx_builder_write(onnx_builder *b, const char *path, qat_error *err);

/* Node and initializer counts, and the bytes the last write produced. */
void onnx_builder_stats(const onnx_builder *b, int *nodes, int *initializers, size_t *bytes);

#endif
