/* ONNX graph builder: fills the protobuf-c structs generated from onnx.proto
 * and serializes them with libprotobuf-c. No protobuf encoding is done by
 * hand here; this file only decides what goes into the messages. */
#include "onnx_build.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qat/arena.h"
#include "qat/fsutil.h"

/* Growable pointer list kept in the arena (a grown list abandons its old
 * array there: lists are short and the arena dies with the builder). */
typedef struct plist {
    void **v;
    size_t n, cap;
} plist;

struct onnx_builder {
    qat_arena *arena;
    Onnx__ModelProto model;
    Onnx__GraphProto graph;
    plist nodes, inits, inputs, outputs, opsets;
    size_t written; /* bytes of the last successful write */
};

static void *zalloc(onnx_builder *b, size_t bytes) { return qat_arena_calloc(b->arena, bytes); }

static void push(onnx_builder *b, plist *l, void *p)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 16;
        void **v = zalloc(b, cap * sizeof *v);
        if (l->n)
            memcpy(v, l->v, l->n * sizeof *v);
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = p;
}

static char *sdup(onnx_builder *b, const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = qat_arena_alloc(b->arena, n);
    memcpy(d, s, n);
    return d;
}

onnx_builder *onnx_builder_create(const char *graph_name)
{
    onnx_builder *b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    b->arena = qat_arena_create(1 << 20);
    if (!b->arena) {
        free(b);
        return NULL;
    }
    onnx__model_proto__init(&b->model);
    onnx__graph_proto__init(&b->graph);
    b->graph.name = sdup(b, graph_name);
    b->model.graph = &b->graph;
    return b;
}

void onnx_builder_destroy(onnx_builder *b)
{
    if (!b)
        return;
    qat_arena_destroy(b->arena);
    free(b);
}

const char *onnx_str(onnx_builder *b, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return sdup(b, buf);
}

/* A tensor with dims and raw little-endian bytes (bytes already encoded). */
static Onnx__TensorProto *tensor(onnx_builder *b, const char *name, int type, const int64_t *dims,
                                 int nd, const uint8_t *raw, size_t raw_len)
{
    Onnx__TensorProto *t = zalloc(b, sizeof *t);
    onnx__tensor_proto__init(t);
    t->name = sdup(b, name);
    t->has_data_type = 1;
    t->data_type = type;
    t->n_dims = (size_t)nd;
    if (nd > 0) {
        t->dims = zalloc(b, (size_t)nd * sizeof *t->dims);
        memcpy(t->dims, dims, (size_t)nd * sizeof *t->dims);
    }
    t->has_raw_data = 1;
    t->raw_data.len = raw_len;
    t->raw_data.data = qat_arena_alloc(b->arena, raw_len ? raw_len : 1);
    if (raw_len)
        memcpy(t->raw_data.data, raw, raw_len);
    push(b, &b->inits, t);
    return t;
}

static size_t count(const int64_t *dims, int nd)
{
    size_t n = 1;
    for (int i = 0; i < nd; i++)
        n *= (size_t)dims[i];
    return n;
}

/* A tensor of n elements of `width` bytes each (host order in v). ONNX
 * raw_data is little-endian whatever the host: encoded byte by byte. */
static const char *init_le(onnx_builder *b, const char *name, int type, const void *v, int width,
                           const int64_t *dims, int nd)
{
    size_t n = count(dims, nd), w = (size_t)width;
    uint8_t *o = qat_arena_alloc(b->arena, w * n + 1);
    for (size_t i = 0; i < n; i++) {
        uint64_t x = 0;
        if (w == 4) {
            uint32_t x32;
            memcpy(&x32, (const uint8_t *)v + 4 * i, 4);
            x = x32;
        } else {
            memcpy(&x, (const uint8_t *)v + 8 * i, 8);
        }
        for (size_t k = 0; k < w; k++)
            o[w * i + k] = (uint8_t)(x >> (8 * k));
    }
    return tensor(b, name, type, dims, nd, o, w * n)->name;
}

const char *onnx_init_f32(onnx_builder *b, const char *name, const float *v, const int64_t *dims,
                          int nd)
{
    return init_le(b, name, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, v, 4, dims, nd);
}

const char *onnx_init_i32(onnx_builder *b, const char *name, const int32_t *v, const int64_t *dims,
                          int nd)
{
    return init_le(b, name, ONNX__TENSOR_PROTO__DATA_TYPE__INT32, v, 4, dims, nd);
}

const char *onnx_init_i64(onnx_builder *b, const char *name, const int64_t *v, const int64_t *dims,
                          int nd)
{
    return init_le(b, name, ONNX__TENSOR_PROTO__DATA_TYPE__INT64, v, 8, dims, nd);
}

const char *onnx_init_f64(onnx_builder *b, const char *name, const double *v, const int64_t *dims,
                          int nd)
{
    return init_le(b, name, ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE, v, 8, dims, nd);
}

const char *onnx_init_u8(onnx_builder *b, const char *name, const uint8_t *v, const int64_t *dims,
                         int nd)
{
    return tensor(b, name, ONNX__TENSOR_PROTO__DATA_TYPE__UINT8, dims, nd, v, count(dims, nd))->name;
}

const char *onnx_init_i8(onnx_builder *b, const char *name, const int8_t *v, const int64_t *dims,
                         int nd)
{
    return tensor(b, name, ONNX__TENSOR_PROTO__DATA_TYPE__INT8, dims, nd, (const uint8_t *)v,
                  count(dims, nd))
        ->name;
}

const char *onnx_scalar_f32(onnx_builder *b, const char *name, float v)
{
    return onnx_init_f32(b, name, &v, NULL, 0);
}

const char *onnx_scalar_i8(onnx_builder *b, const char *name, int8_t v)
{
    return onnx_init_i8(b, name, &v, NULL, 0);
}

static char **names(onnx_builder *b, const char *const *list, size_t *n)
{
    size_t k = 0;
    while (list && list[k])
        k++;
    char **v = zalloc(b, (k + 1) * sizeof *v);
    for (size_t i = 0; i < k; i++)
        v[i] = sdup(b, list[i]);
    *n = k;
    return v;
}

Onnx__NodeProto *onnx_node(onnx_builder *b, const char *op, const char *domain, const char *name,
                           const char *const *inputs, const char *const *outputs)
{
    Onnx__NodeProto *n = zalloc(b, sizeof *n);
    onnx__node_proto__init(n);
    n->op_type = sdup(b, op);
    n->name = sdup(b, name);
    if (domain)
        n->domain = sdup(b, domain);
    n->input = names(b, inputs, &n->n_input);
    n->output = names(b, outputs, &n->n_output);
    n->attribute = zalloc(b, 8 * sizeof *n->attribute);
    push(b, &b->nodes, n);
    return n;
}

static Onnx__AttributeProto *attr(onnx_builder *b, Onnx__NodeProto *n, const char *name,
                                  Onnx__AttributeProto__AttributeType type)
{
    QAT_ASSERT(n->n_attribute < 8);
    Onnx__AttributeProto *a = zalloc(b, sizeof *a);
    onnx__attribute_proto__init(a);
    a->name = sdup(b, name);
    a->has_type = 1;
    a->type = type;
    n->attribute[n->n_attribute++] = a;
    return a;
}

void onnx_attr_int(onnx_builder *b, Onnx__NodeProto *n, const char *name, int64_t v)
{
    Onnx__AttributeProto *a = attr(b, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
    a->has_i = 1;
    a->i = v;
}

void onnx_attr_ints(onnx_builder *b, Onnx__NodeProto *n, const char *name, const int64_t *v,
                    int cnt)
{
    Onnx__AttributeProto *a = attr(b, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
    a->n_ints = (size_t)cnt;
    a->ints = zalloc(b, (size_t)cnt * sizeof *a->ints + 8);
    memcpy(a->ints, v, (size_t)cnt * sizeof *a->ints);
}

static Onnx__ValueInfoProto *value_info(onnx_builder *b, const char *name, int elem_type,
                                        const int64_t *dims, int nd, const char *doc)
{
    Onnx__TensorShapeProto *shape = zalloc(b, sizeof *shape);
    onnx__tensor_shape_proto__init(shape);
    shape->n_dim = (size_t)nd + 1;
    shape->dim = zalloc(b, shape->n_dim * sizeof *shape->dim);
    for (size_t i = 0; i < shape->n_dim; i++) {
        Onnx__TensorShapeProto__Dimension *d = zalloc(b, sizeof *d);
        onnx__tensor_shape_proto__dimension__init(d);
        if (i == 0) {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            d->dim_param = sdup(b, "N");
        } else {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            d->dim_value = dims[i - 1];
        }
        shape->dim[i] = d;
    }
    Onnx__TypeProto__Tensor *tt = zalloc(b, sizeof *tt);
    onnx__type_proto__tensor__init(tt);
    tt->has_elem_type = 1;
    tt->elem_type = elem_type;
    tt->shape = shape;
    Onnx__TypeProto *tp = zalloc(b, sizeof *tp);
    onnx__type_proto__init(tp);
    tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    tp->tensor_type = tt;
    Onnx__ValueInfoProto *vi = zalloc(b, sizeof *vi);
    onnx__value_info_proto__init(vi);
    vi->name = sdup(b, name);
    vi->type = tp;
    if (doc)
        vi->doc_string = sdup(b, doc);
    return vi;
}

void onnx_graph_input(onnx_builder *b, const char *name, int elem_type, const int64_t *dims, int nd,
                      const char *doc)
{
    push(b, &b->inputs, value_info(b, name, elem_type, dims, nd, doc));
}

void onnx_graph_output(onnx_builder *b, const char *name, int elem_type, const int64_t *dims,
                       int nd, const char *doc)
{
    push(b, &b->outputs, value_info(b, name, elem_type, dims, nd, doc));
}

static void opset(onnx_builder *b, const char *domain, int64_t version)
{
    Onnx__OperatorSetIdProto *o = zalloc(b, sizeof *o);
    onnx__operator_set_id_proto__init(o);
    o->domain = sdup(b, domain);
    o->has_version = 1;
    o->version = version;
    push(b, &b->opsets, o);
}

void onnx_model_info(onnx_builder *b, int64_t ir_version, int64_t opset_version, int64_t ms_opset,
                     const char *producer_version, const char *doc)
{
    b->model.has_ir_version = 1;
    b->model.ir_version = ir_version;
    b->model.producer_name = sdup(b, "qat");
    b->model.producer_version = sdup(b, producer_version);
    b->model.doc_string = sdup(b, doc);
    opset(b, "", opset_version);
    if (ms_opset > 0)
        opset(b, "com.microsoft", ms_opset);
}

qat_status onnx_builder_write(onnx_builder *b, const char *path, qat_error *err)
{
    b->graph.node = (Onnx__NodeProto **)b->nodes.v;
    b->graph.n_node = b->nodes.n;
    b->graph.initializer = (Onnx__TensorProto **)b->inits.v;
    b->graph.n_initializer = b->inits.n;
    b->graph.input = (Onnx__ValueInfoProto **)b->inputs.v;
    b->graph.n_input = b->inputs.n;
    b->graph.output = (Onnx__ValueInfoProto **)b->outputs.v;
    b->graph.n_output = b->outputs.n;
    b->model.opset_import = (Onnx__OperatorSetIdProto **)b->opsets.v;
    b->model.n_opset_import = b->opsets.n;
    size_t len = onnx__model_proto__get_packed_size(&b->model);
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf)
        return qat_fail(err, QAT_ENOMEM, "%s: out of memory serializing %zu bytes", path, len);
    size_t packed = onnx__model_proto__pack(&b->model, buf);
    b->written = len;
    qat_status st = packed == len ? qat_write_file_atomic(path, buf, len, err)
                                  : qat_fail(err, QAT_EINTERNAL,
                                             "%s: protobuf-c packed %zu bytes, expected %zu", path,
                                             packed, len);
    free(buf);
    return st;
}

void onnx_builder_stats(const onnx_builder *b, int *nodes, int *initializers, size_t *bytes)
{
    *nodes = (int)b->nodes.n;
    *initializers = (int)b->inits.n;
    *bytes = b->written;
}
