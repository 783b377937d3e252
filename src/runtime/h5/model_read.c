/* Reading a model file (docs/FORMAT.md) into an owned description. Nothing
 * in the file is trusted: every object is checked for presence, class, size,
 * sign, rank and extent before it is read, attribute values that size
 * allocations are range-checked first, and the finished description goes
 * through qat_rt_model_validate. Errors name the file and the object path. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/h5/h5_read.h"

static int has_weights(qat_rt_op op) { return op == QAT_RT_CONV2D || op == QAT_RT_LINEAR; }

/* Reads an optional int32 attribute of 1..max values into out, their count
 * into *n (0 when absent). */
static qat_status read_opt_list(rd *r, hid_t obj, const char *opath, const char *name, int max,
                                int32_t *out, int *n)
{
    *n = 0;
    char where[160], found[128];
    snprintf(where, sizeof where, "%s: attribute '%s'", opath, name);
    htri_t ex = H5Aexists(obj, name);
    if (ex < 0)
        return h5r_fail(r, where, "cannot be looked up (corrupt object header?)");
    if (ex == 0)
        return QAT_OK;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    if (a < 0)
        return h5r_fail(r, where, "cannot be opened");
    hid_t sp = H5Aget_space(a);
    hsize_t dims[1] = {0};
    int ok = sp >= 0 && H5Sget_simple_extent_type(sp) == H5S_SIMPLE &&
             H5Sget_simple_extent_ndims(sp) == 1 && H5Sget_simple_extent_dims(sp, dims, NULL) == 1 &&
             dims[0] >= 1 && dims[0] <= (hsize_t)max;
    if (!ok)
        qat_h5_describe_space(sp, found, sizeof found);
    QAT_H5_CLOSE(sp, a);
    if (!ok)
        return h5r_fail(r, where, "expected shape (1) to (%d), found %s", max, found);
    *n = (int)dims[0];
    return h5r_attr(r, obj, opath, name, K_I32, *n, out);
}

/* Version 2's optional layer attributes: `inputs` (absent: the previous
 * layer) and a conv2d's `groups` (absent: 1). */
static qat_status read_graph_attrs(rd *r, hid_t g, const char *gpath, qat_rt_layer_desc *l)
{
    if (r->version < 2)
        return QAT_OK; /* version-1 readers never looked at them */
    qat_status st = read_opt_list(r, g, gpath, "inputs", QAT_RT_MAX_INPUTS, l->inputs,
                                  &l->num_inputs);
    if (st || l->op != QAT_RT_CONV2D || H5Aexists(g, "groups") <= 0)
        return st;
    int32_t groups;
    if ((st = h5r_attr(r, g, gpath, "groups", K_I32, -1, &groups)) ||
        (st = h5r_check_range(r, gpath, "groups", &groups, 1, 1, QAT_RT_MAX_DIM)))
        return st;
    /* the weight count below divides by it */
    if (l->in_c % groups || l->out_c % groups) {
        char where[160];
        snprintf(where, sizeof where, "%s: attribute 'groups'", gpath);
        return h5r_fail(r, where, "expected a divisor of the input channels %d and output channels "
                               "%d, found %d",
                     l->in_c, l->out_c, groups);
    }
    l->groups = groups;
    return QAT_OK;
}

/* add, concat, global_avgpool: the output clamp and the multiplier and
 * shift datasets (qat_rt_desc_merge_mults entries). */
static qat_status read_merge_meta(rd *r, hid_t g, const char *gpath, qat_rt_layer_desc *l)
{
    qat_status st;
    hid_t d;
    int n = qat_rt_desc_merge_mults(l);
    if ((st = h5r_attr(r, g, gpath, "act_min", K_I32, -1, &l->act_min)) ||
        (st = h5r_attr(r, g, gpath, "act_max", K_I32, -1, &l->act_max)) ||
        (st = h5r_open_dataset(r, g, gpath, "multiplier", K_I32, n, &d)))
        return st;
    H5Dclose(d);
    if ((st = h5r_open_dataset(r, g, gpath, "shift", K_I32, n, &d)))
        return st;
    H5Dclose(d);
    return QAT_OK;
}

static qat_status parse_op(rd *r, const char *gpath, const char *s, qat_rt_op *op)
{
    int last = r->version >= 2 ? QAT_RT_GLOBAL_AVGPOOL : QAT_RT_FLATTEN;
    for (int o = QAT_RT_CONV2D; o <= last; o++)
        if (strcmp(s, qat_rt_op_name((qat_rt_op)o)) == 0) {
            *op = (qat_rt_op)o;
            return QAT_OK;
        }
    char where[160];
    snprintf(where, sizeof where, "%s: attribute 'op'", gpath);
    return h5r_fail(r, where,
                 "expected one of conv2d, linear, maxpool2d, avgpool2d, flatten%s, found '%.64s'",
                 r->version >= 2 ? ", add, concat, global_avgpool" : " (format version 1)", s);
}

/* Pass 1 for one layer: every attribute into l, range checks on the values
 * that size arrays, and the metadata of each dataset. */
/* Version 2's optional palettized weights (FORMAT.md §10): palette_size
 * and palette_groups, whose datasets replace `weights`. */
static qat_status read_palette_meta(rd *r, hid_t g, const char *gpath, qat_rt_layer_desc *l,
                                    size_t count)
{
    qat_status st;
    int32_t groups;
    if ((st = h5r_attr(r, g, gpath, "palette_size", K_I32, -1, &l->palette_size)) ||
        (st = h5r_check_range(r, gpath, "palette_size", &l->palette_size, 1, 2, QAT_RT_PALETTE_MAX)) ||
        (st = h5r_attr(r, g, gpath, "palette_groups", K_I32, -1, &groups)))
        return st;
    if (groups != 1 && groups != l->out_c) {
        char where[160];
        snprintf(where, sizeof where, "%s: attribute 'palette_groups'", gpath);
        return h5r_fail(r, where, "expected 1 or %d (output channels), found %d", l->out_c, groups);
    }
    l->palette_groups = groups;
    l->indices_bytes = qat_rt_palette_index_bytes(count, l->palette_size);
    hid_t d;
    if ((st = h5r_open_dataset(r, g, gpath, "codebook", K_I8,
                           (long long)groups * l->palette_size, &d)))
        return st;
    H5Dclose(d);
    if ((st = h5r_open_dataset(r, g, gpath, "palette_indices", K_U8, (long long)l->indices_bytes, &d)))
        return st;
    H5Dclose(d);
    return QAT_OK;
}

/* Version 3's float layer (FORMAT.md §11): arithmetic "float32", its
 * activation and clamp, and the float32 datasets' sizes. */
static qat_status read_float_meta(rd *r, hid_t g, const char *gpath, qat_rt_layer_desc *l)
{
    static const char *const acts[] = {"none", "relu", "relu6"};
    char where[160], buf[QAT_H5_MAX_STR];
    int act = -1;
    qat_status st;
    if ((st = h5r_str_attr(r, g, gpath, "arithmetic", buf, sizeof buf)))
        return st;
    snprintf(where, sizeof where, "%s: attribute 'arithmetic'", gpath);
    if (strcmp(buf, "float32") != 0)
        return h5r_fail(r, where, "expected 'float32', found '%.64s'", buf);
    if ((st = h5r_str_attr(r, g, gpath, "activation", buf, sizeof buf)))
        return st;
    for (int i = 0; i < 3; i++)
        if (strcmp(buf, acts[i]) == 0)
            act = i;
    snprintf(where, sizeof where, "%s: attribute 'activation'", gpath);
    if (act < 0)
        return h5r_fail(r, where, "expected 'none', 'relu' or 'relu6', found '%.64s'", buf);
    l->is_float = 1;
    l->float_act = (qat_rt_float_act)act;
    if ((st = h5r_attr(r, g, gpath, "act_min", K_I32, -1, &l->act_min)) ||
        (st = h5r_attr(r, g, gpath, "act_max", K_I32, -1, &l->act_max)))
        return st;
    /* each factor <= 2^20: bound K before multiplying by out_c */
    unsigned long long k = (unsigned long long)l->kernel_h * (unsigned long long)l->kernel_w *
                           (unsigned long long)l->in_c;
    unsigned long long count = k <= QAT_RT_MAX_WEIGHTS ? k * (unsigned long long)l->out_c : k;
    if (count > QAT_RT_MAX_WEIGHTS) {
        snprintf(where, sizeof where, "dataset %s/float_weights", gpath);
        return h5r_fail(r, where, "the shapes imply more than %d weights", QAT_RT_MAX_WEIGHTS);
    }
    hid_t d;
    if ((st = h5r_open_dataset(r, g, gpath, "float_weights", K_F32, (long long)count, &d)))
        return st;
    H5Dclose(d);
    if ((st = h5r_open_dataset(r, g, gpath, "float_bias", K_F32, l->out_c, &d)))
        return st;
    H5Dclose(d);
    return QAT_OK;
}

static qat_status read_layer_meta(rd *r, hid_t g, const char *gpath, qat_rt_layer_desc *l,
                                  int version)
{
    qat_status st;
    char op[QAT_H5_MAX_STR];
    int32_t in[3], out[3], v2[2];
    if ((st = h5r_str_attr(r, g, gpath, "op", op, sizeof op)) ||
        (st = parse_op(r, gpath, op, &l->op)) ||
        (st = h5r_str_attr(r, g, gpath, "name", l->name, sizeof l->name)) ||
        (st = h5r_attr(r, g, gpath, "input_shape", K_I32, 3, in)) ||
        (st = h5r_check_range(r, gpath, "input_shape", in, 3, 1, QAT_RT_MAX_DIM)) ||
        (st = h5r_attr(r, g, gpath, "output_shape", K_I32, 3, out)) ||
        (st = h5r_check_range(r, gpath, "output_shape", out, 3, 1, QAT_RT_MAX_DIM)) ||
        (st = h5r_attr(r, g, gpath, "input_scale", K_F32, -1, &l->input_scale)) ||
        (st = h5r_attr(r, g, gpath, "input_zero_point", K_I32, -1, &l->input_zero_point)) ||
        (st = h5r_attr(r, g, gpath, "output_scale", K_F32, -1, &l->output_scale)) ||
        (st = h5r_attr(r, g, gpath, "output_zero_point", K_I32, -1, &l->output_zero_point)))
        return st;
    l->in_h = in[0];
    l->in_w = in[1];
    l->in_c = in[2];
    l->out_h = out[0];
    l->out_w = out[1];
    l->out_c = out[2];
    /* linear and flatten have no window: 1x1, stride 1, no padding */
    l->kernel_h = l->kernel_w = l->stride_h = l->stride_w = 1;
    l->pad_h = l->pad_w = 0;
    l->act_min = INT8_MIN;
    l->act_max = INT8_MAX;
    if (l->op == QAT_RT_CONV2D || l->op == QAT_RT_MAXPOOL2D || l->op == QAT_RT_AVGPOOL2D) {
        if ((st = h5r_attr(r, g, gpath, "kernel", K_I32, 2, v2)) ||
            (st = h5r_check_range(r, gpath, "kernel", v2, 2, 1, QAT_RT_MAX_DIM)))
            return st;
        l->kernel_h = v2[0];
        l->kernel_w = v2[1];
        if ((st = h5r_attr(r, g, gpath, "stride", K_I32, 2, v2)) ||
            (st = h5r_check_range(r, gpath, "stride", v2, 2, 1, QAT_RT_MAX_DIM)))
            return st;
        l->stride_h = v2[0];
        l->stride_w = v2[1];
        if ((st = h5r_attr(r, g, gpath, "padding", K_I32, 2, v2)) ||
            (st = h5r_check_range(r, gpath, "padding", v2, 2, 0, QAT_RT_MAX_DIM)))
            return st;
        l->pad_h = v2[0];
        l->pad_w = v2[1];
    }
    if ((st = read_graph_attrs(r, g, gpath, l)))
        return st;
    if (qat_rt_op_is_merge(l->op))
        return read_merge_meta(r, g, gpath, l);
    if (!has_weights(l->op))
        return QAT_OK;
    htri_t fl = version >= 3 ? H5Aexists(g, "arithmetic") : 0;
    if (fl < 0)
        return h5r_fail(r, gpath, "attribute 'arithmetic' cannot be looked up (corrupt header?)");
    if (fl)
        return read_float_meta(r, g, gpath, l);
    if ((st = h5r_attr(r, g, gpath, "weight_bits", K_I32, -1, &l->weight_bits)) ||
        (st = h5r_check_range(r, gpath, "weight_bits", &l->weight_bits, 1, 2, 8)) ||
        (st = h5r_attr(r, g, gpath, "act_min", K_I32, -1, &l->act_min)) ||
        (st = h5r_attr(r, g, gpath, "act_max", K_I32, -1, &l->act_max)))
        return st;
    /* each factor <= 2^20: bound K before multiplying by out_c */
    unsigned long long k = (unsigned long long)l->kernel_h * (unsigned long long)l->kernel_w *
                           (unsigned long long)(l->in_c / qat_rt_desc_groups(l));
    unsigned long long count = k <= QAT_RT_MAX_WEIGHTS ? k * (unsigned long long)l->out_c : k;
    if (count > QAT_RT_MAX_WEIGHTS) {
        char where[160];
        snprintf(where, sizeof where, "dataset %s/weights", gpath);
        return h5r_fail(r, where, "the shapes imply more than %d weights", QAT_RT_MAX_WEIGHTS);
    }
    l->weights_bytes = qat_rt_packed_weight_bytes((size_t)count, l->weight_bits);
    static const struct {
        const char *name;
        kind k;
    } per_channel[] = {{"weight_zero_point", K_I32}, {"bias", K_I32}, {"multiplier", K_I32},
                       {"shift", K_I32},             {"weight_scale", K_F32}};
    hid_t d;
    htri_t pal = version >= 2 ? H5Aexists(g, "palette_size") : 0;
    if (pal < 0)
        return h5r_fail(r, gpath, "attribute 'palette_size' cannot be looked up (corrupt header?)");
    if (pal) {
        l->weights_bytes = 0;
        if ((st = read_palette_meta(r, g, gpath, l, (size_t)count)))
            return st;
    } else if ((st = h5r_open_dataset(r, g, gpath, "weights", K_U8, (long long)l->weights_bytes,
                                  &d))) {
        return st;
    } else {
        H5Dclose(d);
    }
    for (size_t i = 0; i < sizeof per_channel / sizeof per_channel[0]; i++) {
        if ((st = h5r_open_dataset(r, g, gpath, per_channel[i].name, per_channel[i].k, l->out_c, &d)))
            return st;
        H5Dclose(d);
    }
    return QAT_OK;
}

static size_t layer_blob_bytes(const qat_rt_layer_desc *l)
{
    if (l->is_float) /* weights (<= 2^32 bytes), then the bias; rounded to 8 */
        return ((((size_t)l->kernel_h * (size_t)l->kernel_w * (size_t)l->in_c + 1) *
                 (size_t)l->out_c * sizeof(float)) + 7) & ~(size_t)7;
    if (qat_rt_op_is_merge(l->op))
        return 2 * 4 * (size_t)qat_rt_desc_merge_mults(l);
    if (!has_weights(l->op))
        return 0;
    /* weights (<= 2^30 bytes) rounded to 8, then 5 arrays of out_c (<= 2^20);
     * palettized: the indices (<= 2^30 bytes) and codebooks (<= 2^28) */
    size_t pal = l->palette_size ? ((l->indices_bytes + 7) & ~(size_t)7) +
                                       (size_t)l->palette_groups * (size_t)l->palette_size
                                 : 0;
    /* rounded to 8 so the next layer's int32 arrays stay aligned */
    size_t n = ((l->weights_bytes + 7) & ~(size_t)7) + 5 * 4 * (size_t)l->out_c + pal;
    return (n + 7) & ~(size_t)7;
}

/* Pass 2 for one layer: the arrays, into memory carved from the blob. */
static qat_status read_layer_data(rd *r, hid_t g, const char *gpath, qat_rt_layer_desc *l,
                                  unsigned char *mem)
{
    qat_status st;
    if (qat_rt_op_is_merge(l->op)) {
        int n = qat_rt_desc_merge_mults(l);
        int32_t *mult = (int32_t *)mem, *shift = mult + n;
        if ((st = h5r_dataset(r, g, gpath, "multiplier", K_I32, n, mult)) ||
            (st = h5r_dataset(r, g, gpath, "shift", K_I32, n, shift)))
            return st;
        l->multiplier = mult;
        l->shift = shift;
        return QAT_OK;
    }
    if (!has_weights(l->op))
        return QAT_OK;
    size_t oc = (size_t)l->out_c;
    if (l->is_float) {
        size_t n = (size_t)l->kernel_h * (size_t)l->kernel_w * (size_t)l->in_c * oc;
        float *fw = (float *)mem, *fb = fw + n;
        if ((st = h5r_dataset(r, g, gpath, "float_weights", K_F32, (long long)n, fw)) ||
            (st = h5r_dataset(r, g, gpath, "float_bias", K_F32, l->out_c, fb)))
            return st;
        l->float_weights = fw;
        l->float_bias = fb;
        return QAT_OK;
    }
    uint8_t *w = mem;
    int32_t *wzp = (int32_t *)(mem + ((l->weights_bytes + 7) & ~(size_t)7));
    int32_t *bias = wzp + oc, *mult = bias + oc, *shift = mult + oc;
    float *wscale = (float *)(shift + oc);
    if (l->palette_size) {
        uint8_t *idx = (uint8_t *)(wscale + oc);
        int8_t *cb = (int8_t *)(idx + ((l->indices_bytes + 7) & ~(size_t)7));
        if ((st = h5r_dataset(r, g, gpath, "palette_indices", K_U8,
                               (long long)l->indices_bytes, idx)) ||
            (st = h5r_dataset(r, g, gpath, "codebook", K_I8,
                               (long long)l->palette_groups * l->palette_size, cb)))
            return st;
        l->indices = idx;
        l->codebook = cb;
    } else if ((st = h5r_dataset(r, g, gpath, "weights", K_U8, (long long)l->weights_bytes, w))) {
        return st;
    }
    if ((st = h5r_dataset(r, g, gpath, "weight_zero_point", K_I32, l->out_c, wzp)) ||
        (st = h5r_dataset(r, g, gpath, "bias", K_I32, l->out_c, bias)) ||
        (st = h5r_dataset(r, g, gpath, "multiplier", K_I32, l->out_c, mult)) ||
        (st = h5r_dataset(r, g, gpath, "shift", K_I32, l->out_c, shift)) ||
        (st = h5r_dataset(r, g, gpath, "weight_scale", K_F32, l->out_c, wscale)))
        return st;
    l->weights = l->palette_size ? NULL : w;
    l->weight_zero_point = wzp;
    l->bias = bias;
    l->multiplier = mult;
    l->shift = shift;
    l->weight_scale = wscale;
    return QAT_OK;
}

static qat_status open_group(rd *r, hid_t parent, const char *name, const char *path, hid_t *out)
{
    *out = -1;
    htri_t ex = H5Lexists(parent, name, H5P_DEFAULT);
    if (ex < 0)
        return h5r_fail(r, path, "cannot be looked up (corrupt group?)");
    if (ex == 0)
        return h5r_fail(r, path, "group missing");
    *out = H5Gopen2(parent, name, H5P_DEFAULT);
    if (*out < 0)
        return h5r_fail(r, path, "is not a group or cannot be opened");
    return QAT_OK;
}

/* An optional string attribute naming one of names[0..n) (absent: 0). */
static qat_status read_choice(rd *r, hid_t obj, const char *opath, const char *name,
                              const char *const *names, int n, int *out)
{
    *out = 0;
    htri_t ex = H5Aexists(obj, name);
    if (ex == 0)
        return QAT_OK;
    char buf[QAT_H5_MAX_STR], where[160];
    qat_status st = h5r_str_attr(r, obj, opath, name, buf, sizeof buf);
    if (st)
        return st;
    for (int i = 0; i < n; i++)
        if (strcmp(buf, names[i]) == 0) {
            *out = i;
            return QAT_OK;
        }
    snprintf(where, sizeof where, "%s: attribute '%s'", opath, name);
    return h5r_fail(r, where, "expected '%s' or '%s', found '%.64s'", names[0], names[1], buf);
}

static qat_status read_root(rd *r, hid_t f, qat_rt_model_desc *d)
{
    qat_status st;
    char fmt[QAT_H5_MAX_STR];
    if ((st = h5r_str_attr(r, f, "/", "format", fmt, sizeof fmt)))
        return st;
    if (strcmp(fmt, QAT_H5_FORMAT_NAME) != 0)
        return h5r_fail(r, "/: attribute 'format'", "expected '%s', found '%.64s'",
                     QAT_H5_FORMAT_NAME, fmt);
    /* the version decides the layout of everything else: check it first */
    if ((st = h5r_attr(r, f, "/", "version", K_I32, -1, &d->version)))
        return st;
    if (d->version < QAT_RT_FORMAT_VERSION_MIN || d->version > QAT_RT_FORMAT_VERSION)
        return h5r_fail(r, "/: attribute 'version'",
                     "expected %d..%d, found %d (unsupported version)",
                     QAT_RT_FORMAT_VERSION_MIN, QAT_RT_FORMAT_VERSION, d->version);
    r->version = d->version;
    int32_t in[3];
    if ((st = h5r_attr(r, f, "/", "input_shape", K_I32, 3, in)) ||
        (st = h5r_check_range(r, "/", "input_shape", in, 3, 1, QAT_RT_MAX_DIM)) ||
        (st = h5r_attr(r, f, "/", "input_scale", K_F32, -1, &d->input_scale)) ||
        (st = h5r_attr(r, f, "/", "input_zero_point", K_I32, -1, &d->input_zero_point)) ||
        (st = h5r_attr(r, f, "/", "num_classes", K_I32, -1, &d->num_classes)) ||
        (st = h5r_check_range(r, "/", "num_classes", &d->num_classes, 1, 1, QAT_RT_MAX_DIM)) ||
        (st = h5r_attr(r, f, "/", "num_layers", K_I32, -1, &d->num_layers)) ||
        (st = h5r_check_range(r, "/", "num_layers", &d->num_layers, 1, 1, QAT_RT_MAX_LAYERS)))
        return st;
    /* optional (FORMAT.md §9): absent means uint8 pixels, classification */
    static const char *const input_types[] = {"uint8", "float32"};
    static const char *const tasks[] = {"classification", "regression"};
    int it, task;
    if ((st = read_choice(r, f, "/", "input_type", input_types, 2, &it)) ||
        (st = read_choice(r, f, "/", "task", tasks, 2, &task)))
        return st;
    d->input_type = (qat_rt_input_type)it;
    d->task = (qat_rt_task)task;
    d->in_h = in[0];
    d->in_w = in[1];
    d->in_c = in[2];
    return QAT_OK;
}

static qat_status read_file(rd *r, hid_t f, qat_rt_owned_desc *out)
{
    qat_rt_model_desc *d = &out->desc;
    qat_status st = read_root(r, f, d);
    if (st)
        return st;
    hid_t lg, g = -1;
    if ((st = open_group(r, f, QAT_H5_LAYERS_GROUP, "/" QAT_H5_LAYERS_GROUP, &lg)))
        return st;
    out->layers = calloc((size_t)d->num_layers, sizeof *out->layers);
    if (!out->layers) {
        H5Gclose(lg);
        return qat_fail(r->err, QAT_ENOMEM, "%s: out of memory", r->file);
    }
    d->layers = out->layers;
    /* float inputs: offsets and steps first in the blob */
    size_t in_bytes = d->input_type == QAT_RT_INPUT_FLOAT32 ? 2 * (size_t)d->in_c * sizeof(float)
                                                             : 0;
    size_t total = (in_bytes + 7) & ~(size_t)7;
    char name[16], path[64];
    for (int i = 0; i < d->num_layers && !st; i++) {
        snprintf(name, sizeof name, QAT_H5_LAYER_FMT, i);
        snprintf(path, sizeof path, "/%s/%s", QAT_H5_LAYERS_GROUP, name);
        if ((st = open_group(r, lg, name, path, &g)))
            break;
        st = read_layer_meta(r, g, path, &out->layers[i], d->version);
        H5Gclose(g);
        if (!st && qat_size_add(total, layer_blob_bytes(&out->layers[i]), &total))
            st = h5r_fail(r, path, "arrays too large");
    }
    if (!st) {
        out->blob = malloc(total ? total : 1);
        if (!out->blob)
            st = qat_fail(r->err, QAT_ENOMEM, "%s: out of memory for %zu bytes of weights",
                          r->file, total);
    }
    size_t off = (in_bytes + 7) & ~(size_t)7;
    if (!st && in_bytes) {
        float *io = out->blob;
        if (!(st = h5r_dataset(r, f, "", "input_offset", K_F32, d->in_c, io)) &&
            !(st = h5r_dataset(r, f, "", "input_step", K_F32, d->in_c, io + d->in_c))) {
            d->input_offset = io;
            d->input_step = io + d->in_c;
        }
    }
    for (int i = 0; i < d->num_layers && !st; i++) {
        snprintf(name, sizeof name, QAT_H5_LAYER_FMT, i);
        snprintf(path, sizeof path, "/%s/%s", QAT_H5_LAYERS_GROUP, name);
        if ((st = open_group(r, lg, name, path, &g)))
            break;
        st = read_layer_data(r, g, path, &out->layers[i], (unsigned char *)out->blob + off);
        off += layer_blob_bytes(&out->layers[i]);
        H5Gclose(g);
    }
    H5Gclose(lg);
    if (!st && (st = qat_rt_model_validate(d, r->err)))
        qat_error_prefix(r->err, "%s", r->file);
    return st;
}

/* Opens with fapl, reads, closes; fills the error with HDF5's reason when
 * the file cannot be opened at all. */
static qat_status read_with(const char *name, hid_t fapl, qat_rt_owned_desc *out, qat_error *err)
{
    rd r = {name, err, 0};
    hid_t f = H5Fopen(name, H5F_ACC_RDONLY, fapl);
    if (f < 0) {
        char h5msg[256];
        qat_h5_last_error(h5msg, sizeof h5msg);
        return qat_fail(err, QAT_EINVAL, "%s: not a readable HDF5 model file (truncated or "
                                         "corrupt?)%s%s",
                        name, h5msg[0] ? ": " : "", h5msg);
    }
    qat_status st = read_file(&r, f, out);
    H5Fclose(f);
    return st;
}

qat_status qat_rt_h5_read_desc(const char *path, qat_rt_owned_desc *out, qat_error *err)
{
    memset(out, 0, sizeof *out);
    qat_status st = qat_h5_check_openable(path, "model file", err);
    if (st)
        return st;
    qat_h5_quiet q;
    qat_h5_quiet_begin(&q);
    st = read_with(path, H5P_DEFAULT, out, err);
    qat_h5_quiet_end(&q, st != QAT_OK);
    if (st)
        qat_rt_owned_desc_free(out);
    return st;
}

qat_status qat_rt_h5_read_desc_memory(const void *buf, size_t len, const char *name,
                                      qat_rt_owned_desc *out, qat_error *err)
{
    memset(out, 0, sizeof *out);
    if (!name)
        name = "<memory>";
    if (!buf || len == 0)
        return qat_fail(err, QAT_EINVAL, "%s: empty model image", name);
    qat_h5_quiet q;
    qat_h5_quiet_begin(&q);
    qat_status st;
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    /* core driver without a backing store: the image is the whole file */
    if (fapl < 0 || H5Pset_fapl_core(fapl, 1 << 16, 0) < 0 ||
        H5Pset_file_image(fapl, (void *)buf, len) < 0)
        st = qat_fail(err, QAT_EINTERNAL, "%s: cannot set up an HDF5 in-memory file", name);
    else
        st = read_with(name, fapl, out, err);
    if (fapl >= 0)
        H5Pclose(fapl);
    qat_h5_quiet_end(&q, st != QAT_OK);
    if (st)
        qat_rt_owned_desc_free(out);
    return st;
}

qat_status qat_rt_h5_load(const char *path, qat_rt_model **out, qat_error *err)
{
    *out = NULL;
    qat_rt_owned_desc d;
    qat_status st = qat_rt_h5_read_desc(path, &d, err);
    if (st)
        return st;
    st = qat_rt_model_create(&d.desc, out, err);
    if (st)
        qat_error_prefix(err, "%s", path);
    qat_rt_owned_desc_free(&d);
    return st;
}

qat_status qat_rt_h5_load_memory(const void *buf, size_t len, const char *name,
                                 qat_rt_model **out, qat_error *err)
{
    *out = NULL;
    qat_rt_owned_desc d;
    qat_status st = qat_rt_h5_read_desc_memory(buf, len, name, &d, err);
    if (st)
        return st;
    st = qat_rt_model_create(&d.desc, out, err);
    if (st)
        qat_error_prefix(err, "%s", name ? name : "<memory>");
    qat_rt_owned_desc_free(&d);
    return st;
}
