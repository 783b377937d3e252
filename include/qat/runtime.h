/* The integer runtime: what users ship to a device.
 *
 * Builds with a C compiler, libc, libm and pthreads only: no HDF5, no BLAS,
 * no training code. A model reaches it as a qat_rt_model_desc (plain arrays
 * in the layout of docs/FORMAT.md), which may come from the HDF5 loader
 * (runtime_h5.h), from generated C, or from any other source. */
#ifndef QAT_RUNTIME_H
#define QAT_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

#include "qat/status_types.h"

/* Marks the runtime's API. The libraries are compiled with hidden symbol
 * visibility, so the shared libqat_rt / libqat_rt_h5 export exactly the
 * declarations that carry this (the install test compares the two sets). */
#ifndef QAT_RT_API
#if defined(__GNUC__) && __GNUC__ >= 4
#define QAT_RT_API __attribute__((visibility("default")))
#else
#define QAT_RT_API
#endif
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* The newest format version this runtime reads (docs/FORMAT.md); it reads
 * every version from QAT_RT_FORMAT_VERSION_MIN on. Version 2 adds graph
 * layers (inputs, groups, add/concat/global_avgpool) and palettized weights
 * (§10); version 3 float layers (§11). The exporter writes the lowest
 * version a model needs (1 for a chain of plain integer layers), so files
 * stay readable by older readers wherever they can be. */
#define QAT_RT_FORMAT_VERSION 3
#define QAT_RT_FORMAT_VERSION_MIN 1
#define QAT_RT_PALETTE_MAX 256 /* codes per codebook */
#define QAT_RT_MAX_INPUTS 4 /* inputs of one layer (concat's most) */
#define QAT_RT_MAX_LAYERS 256
#define QAT_RT_NAME_MAX 64
/* Sanity limits (docs/FORMAT.md): a description beyond them is rejected, so a
 * crafted file cannot make the runtime allocate absurd amounts. */
#define QAT_RT_MAX_DIM (1 << 20)     /* any h, w, c, kernel, stride, num_classes */
#define QAT_RT_MAX_TENSOR (1 << 26)  /* elements of one image's activation */
#define QAT_RT_MAX_WEIGHTS (1 << 30) /* weight values of one layer */

/* A float layer's activation, applied in float before its output is
 * quantized or returned (docs/ARITHMETIC.md §7). */
typedef enum qat_rt_float_act {
    QAT_RT_FLOAT_ACT_NONE = 0,
    QAT_RT_FLOAT_ACT_RELU,
    QAT_RT_FLOAT_ACT_RELU6
} qat_rt_float_act;

typedef enum qat_rt_op {
    QAT_RT_CONV2D = 1,
    QAT_RT_LINEAR = 2,
    QAT_RT_MAXPOOL2D = 3,
    QAT_RT_AVGPOOL2D = 4,
    QAT_RT_FLATTEN = 5,
    /* version 2 (docs/ARITHMETIC.md §4.1) */
    QAT_RT_ADD = 6,           /* two same-shaped inputs, TFLite's ADD */
    QAT_RT_CONCAT = 7,        /* inputs side by side along the channels */
    QAT_RT_GLOBAL_AVGPOOL = 8 /* H x W x C -> 1 x 1 x C, with its own output scale */
} qat_rt_op;

/* One layer. Activations are int8 NHWC; shapes are per image. A linear
 * layer's input and output have h = w = 1. */
typedef struct qat_rt_layer_desc {
    qat_rt_op op;
    char name[QAT_RT_NAME_MAX];
    int in_h, in_w, in_c;
    int out_h, out_w, out_c;
    /* conv2d and pools (pools: pad 0; conv2d: 0 <= pad < kernel). linear
     * must say 1 / 1 / 0; flatten ignores them. */
    int kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w;
    /* conv2d / linear only (ignored for pools and flatten). Weights are out_c rows of kernel_h*kernel_w*in_c
     * values (order kh, kw, c_in), stored as FORMAT.md says for weight_bits:
     * int8 bytes for 5..8 bits, 4-bit two's-complement slots for 3..4 bits,
     * 2-bit slots for 2 bits, packed low bits first. */
    int weight_bits;
    const uint8_t *weights;
    size_t weights_bytes;
    const int32_t *weight_zero_point; /* out_c entries, or NULL for all zero */
    const int32_t *bias;              /* out_c, scale input_scale * weight_scale[c] */
    const int32_t *multiplier;        /* out_c, in [0, 2^31) */
    const int32_t *shift;             /* out_c, in [QAT_SHIFT_MIN, QAT_SHIFT_MAX] */
    const float *weight_scale;        /* out_c; used only to dequantize for tools */
    int32_t act_min, act_max;         /* output clamp; fused relu: act_min = out zp */
    /* every layer: quantization of its input and output activations (pools
     * and flatten: output equal to input) */
    float input_scale, output_scale;
    int32_t input_zero_point, output_zero_point;
    /* conv2d / linear, version 2: palettized weights (FORMAT.md §10), or
     * palette_size 0 for the plain stream in weights. With palette_size
     * K in [2, 256], weight (oc, j) is codebook[g * K + index] where index is
     * element oc * K_in + j of indices (ceil(log2 K) bits each, low bits
     * first) and g is 0 (palette_groups 1) or oc (palette_groups out_c);
     * weights / weights_bytes are then ignored. */
    int palette_size;
    int palette_groups;
    const int8_t *codebook;  /* palette_groups * palette_size codes in the weight_bits range */
    const uint8_t *indices;  /* qat_rt_palette_index_bytes(out_c * K_in, palette_size) bytes */
    size_t indices_bytes;
    /* Version 2 (zero in a version-1 description). num_inputs 0 means the
     * previous layer (layer 0: the model input), as in version 1; else
     * inputs[0 .. num_inputs) are layer indices below this one's, -1 being
     * the model input. in_h/in_w/in_c, input_scale and input_zero_point
     * describe input 0 (and must equal what it produces). */
    int num_inputs;
    int inputs[QAT_RT_MAX_INPUTS];
    /* conv2d: 0 or 1 for a plain conv; g > 1 splits in_c and out_c into g
     * groups, weights then being out_c rows of kernel_h*kernel_w*(in_c/g)
     * (depthwise: g = in_c). add, concat and global_avgpool use
     * multiplier/shift (add: m_0, m_1, m_out; concat: one per input;
     * global_avgpool: one) and act_min/act_max; they have no weights. */
    int groups;
    /* Version 3 (zero before): a float conv2d / linear layer (FORMAT.md
     * §11, ARITHMETIC.md §7). It dequantizes its int8 input, computes in
     * float32 with float_weights (out_c rows of kernel_h*kernel_w*in_c,
     * order kh, kw, c_in; groups must be 1) and float_bias (out_c), applies
     * float_act and quantizes the result with output_scale /
     * output_zero_point clamped to [act_min, act_max]; as the model's last
     * layer its float values are the logits (qat_rt_run_logits). The
     * integer fields (weight_bits, weights, bias, multiplier, shift,
     * weight_zero_point, weight_scale, palette_*) are unused and zero. */
    int is_float;
    const float *float_weights;
    const float *float_bias;
    qat_rt_float_act float_act;
} qat_rt_layer_desc;

/* What a model's input values are (docs/FORMAT.md §9). */
typedef enum qat_rt_input_type {
    QAT_RT_INPUT_UINT8 = 0, /* pixels p, entering as q = p - 128 (scale 1/255, zero point -128) */
    QAT_RT_INPUT_FLOAT32    /* features x, entering as q = quantize(x - offset[c], step[c], zp) */
} qat_rt_input_type;

/* What the outputs mean: class scores, or regression values (the
 * dequantized outputs). Metadata for tools; the arithmetic is the same. */
typedef enum qat_rt_task { QAT_RT_TASK_CLASSIFICATION = 0, QAT_RT_TASK_REGRESSION } qat_rt_task;

typedef struct qat_rt_model_desc {
    int version; /* QAT_RT_FORMAT_VERSION */
    /* Model input, H x W x C values (NHWC): uint8 pixels entering as q = p - 128
     * (input_scale 1/255, input_zero_point -128), or, with input_type
     * float32, features quantized per channel c (the last axis) as
     * q = clamp(round_half_away((x - input_offset[c]) / input_step[c]) +
     * input_zero_point, -128, 127) (ARITHMETIC.md §6). */
    int in_h, in_w, in_c;
    float input_scale;
    int32_t input_zero_point;
    int num_classes; /* outputs of the last layer (classes, or regression outputs) */
    int num_layers;
    const qat_rt_layer_desc *layers;
    /* zero for uint8 pixels and classification, as before these fields */
    qat_rt_input_type input_type;
    const float *input_offset; /* float32 inputs: in_c finite values */
    const float *input_step;   /* float32 inputs: in_c finite positive values */
    qat_rt_task task;
} qat_rt_model_desc;

/* A description that owns its arrays: what the HDF5 reader (runtime_h5.h)
 * and export build. layers holds desc.num_layers entries (desc.layers
 * points at it); blob is the one allocation every array of every layer
 * points into. */
typedef struct qat_rt_owned_desc {
    qat_rt_model_desc desc;
    qat_rt_layer_desc *layers;
    void *blob;
} qat_rt_owned_desc;

/* Reading a layer's graph fields (version 1 or 2), for any code that walks
 * a description. */
/* How many tensors layer l reads (num_inputs, or 1 when it is 0). */
QAT_RT_API int qat_rt_desc_ninputs(const qat_rt_layer_desc *l);
/* Input k of layer l at index i: a layer index, or -1 for the model input
 * (num_inputs 0: i - 1). */
QAT_RT_API int qat_rt_desc_input(const qat_rt_layer_desc *l, int i, int k);
/* A conv2d's groups (0 and 1 mean 1); 1 for every other op. */
QAT_RT_API int qat_rt_desc_groups(const qat_rt_layer_desc *l);
/* Whether layer l at index i needs format version 2 (an input other than
 * the layer before, groups > 1, or a graph op). */
QAT_RT_API int qat_rt_desc_is_v2(const qat_rt_layer_desc *l, int i);
/* Entries of multiplier / shift of an add (3), concat (one per input) or
 * global_avgpool (1). */
QAT_RT_API int qat_rt_desc_merge_mults(const qat_rt_layer_desc *l);
/* add, concat or global_avgpool: no weights, an output scale of their own. */
QAT_RT_API int qat_rt_op_is_merge(qat_rt_op op);
/* The index of the layer whose output is the model's (the last layer, or
 * what a trailing flatten passes on); -1 for the model input. */
QAT_RT_API int qat_rt_desc_output_layer(const qat_rt_model_desc *d);
/* Whether d's output comes from a float layer (float logits). */
QAT_RT_API int qat_rt_desc_float_logits(const qat_rt_model_desc *d);

/* Frees layers and blob and zeroes *d; d may be NULL or already freed. */
QAT_RT_API void qat_rt_owned_desc_free(qat_rt_owned_desc *d);

/* "conv2d", "linear", "maxpool2d", "avgpool2d", "flatten", "add", "concat",
 * "global_avgpool"; NULL if unknown. */
QAT_RT_API const char *qat_rt_op_name(qat_rt_op op);
/* "ok", "invalid input", ... for a status code (a static string). */
QAT_RT_API const char *qat_rt_status_name(qat_status s);

typedef struct qat_rt_model qat_rt_model;
typedef struct qat_rt_session qat_rt_session;

/* Checks every invariant of d (shapes chain, ranges of zero points, shifts,
 * multipliers, bits, buffer sizes, overflow-checked) without allocating.
 * QAT_EINVAL names the layer (index, name), the field, expected vs found. */
QAT_RT_API qat_status qat_rt_model_validate(const qat_rt_model_desc *d, qat_error *err);
/* qat_rt_model_validate, then picks the kernel path (isa) and builds a model
 * that owns all its arrays, with the weights unpacked from their stored bit
 * width and packed into the layout that path's kernels read: d may be freed
 * afterwards. isa: NULL or "auto" takes the QAT_ISA environment variable if
 * set, else the fastest path this build and CPU run; or one of "ref"
 * (portable C, the reference), "avx2" (x86-64 with AVX2 and FMA),
 * "avx512vnni" (x86-64 with AVX-512 F/BW/VL and VNNI), "neon"
 * (aarch64; dot-product instructions when the CPU reports them, plain NEON
 * otherwise), "neon-dot", "neon-plain". Every path gives identical logits.
 * A path the build or CPU lacks is QAT_EUNSUPPORTED, an unknown name
 * QAT_EINVAL; the message lists the paths available. */
QAT_RT_API qat_status qat_rt_model_create_isa(const qat_rt_model_desc *d, const char *isa,
                                              qat_rt_model **out, qat_error *err);
/* The path qat_rt_model_create_isa(d, isa, ...) would pick here, as a
 * static string in *name, with the same errors; lets a tool reject a bad
 * --isa before reading anything. */
QAT_RT_API qat_status qat_rt_isa_resolve(const char *isa, const char **name, qat_error *err);
/* qat_rt_model_create_isa(d, NULL, out, err). */
QAT_RT_API qat_status qat_rt_model_create(const qat_rt_model_desc *d, qat_rt_model **out,
                                          qat_error *err);
QAT_RT_API void qat_rt_model_destroy(qat_rt_model *m);
/* The kernel path the model was built for ("ref", "avx2", "avx512vnni",
 * "neon-dot", "neon-plain"); a static string. */
QAT_RT_API const char *qat_rt_model_isa(const qat_rt_model *m);
QAT_RT_API int qat_rt_model_num_classes(const qat_rt_model *m);
QAT_RT_API int qat_rt_model_num_layers(const qat_rt_model *m);
/* Bytes of activation memory one image needs: the planned arena that holds
 * every live activation (the model input included) at the peak of the run.
 * A session holds this times its chunk of images per buffer set. */
QAT_RT_API size_t qat_rt_model_activation_bytes(const qat_rt_model *m);
/* Pixels per image (in_h * in_w * in_c). */
QAT_RT_API size_t qat_rt_model_input_size(const qat_rt_model *m);
/* QAT_RT_INPUT_UINT8 (qat_rt_run) or QAT_RT_INPUT_FLOAT32 (qat_rt_run_float). */
QAT_RT_API qat_rt_input_type qat_rt_model_input_type(const qat_rt_model *m);
QAT_RT_API qat_rt_task qat_rt_model_task(const qat_rt_model *m);
/* Whether the model's last layer is a float layer: its logits are then
 * float32 values (qat_rt_run_logits), not int8 codes. */
QAT_RT_API int qat_rt_model_float_logits(const qat_rt_model *m);
/* Output quantization of the logits (a float-logit model: 1 and 0). */
QAT_RT_API float qat_rt_model_output_scale(const qat_rt_model *m);
QAT_RT_API int32_t qat_rt_model_output_zero_point(const qat_rt_model *m);

typedef struct qat_rt_options {
    int threads;   /* 1..1024 */
    int max_batch; /* largest n passed to qat_rt_run; buffers are sized for it */
    int profile;   /* nonzero: time every layer (qat_rt_session_profile) */
} qat_rt_options;

/* All scratch memory is allocated here; qat_rt_run never allocates. Starts
 * threads - 1 worker threads (a qat_team). A run of n images splits them
 * evenly over the threads; the n % threads left over (all of them when
 * n < threads, e.g. batch 1) run with every thread computing part of each
 * layer. The kernel path is the model's (qat_rt_model_create_isa). */
QAT_RT_API qat_status qat_rt_session_create(const qat_rt_model *m, const qat_rt_options *o,
                                            qat_rt_session **out, qat_error *err);
QAT_RT_API void qat_rt_session_destroy(qat_rt_session *s);
/* images: n x input_size uint8 pixels (NHWC); logits: n x num_classes int8
 * codes; 0 <= n <= max_batch. Never allocates. A session serves one caller
 * thread at a time; the model must outlive it. A float32-input model is
 * QAT_EINVAL here (its inputs are not pixels): use qat_rt_run_float. */
QAT_RT_API qat_status qat_rt_run(qat_rt_session *s, const uint8_t *images, int n,
                                 int8_t *logits, qat_error *err);
/* The same from float inputs: n x input_size float32 values (NHWC), each
 * quantized as the model says (qat_rt_quantize_float). Any model: a uint8
 * model's input is x = p / 255 (scale 1/255, zero point -128, no offset),
 * so x = p / 255.0f gives qat_rt_run's logits. NaN enters as -128. */
QAT_RT_API qat_status qat_rt_run_float(qat_rt_session *s, const float *inputs, int n,
                                       int8_t *logits, qat_error *err);
/* The same runs with float32 logits out (n x num_classes): a float-logit
 * model's own values, an int8 model's codes dequantized
 * (qat_rt_dequantize_logits). qat_rt_run and qat_rt_run_float refuse a
 * float-logit model (QAT_EINVAL): its logits are not int8 codes. */
QAT_RT_API qat_status qat_rt_run_logits(qat_rt_session *s, const uint8_t *images, int n,
                                        float *logits, qat_error *err);
QAT_RT_API qat_status qat_rt_run_float_logits(qat_rt_session *s, const float *inputs, int n,
                                              float *logits, qat_error *err);
/* The int8 codes qat_rt_run_float feeds the first layer: count values of
 * whole examples (count a multiple of in_c), channel i % in_c. */
QAT_RT_API void qat_rt_quantize_float(const qat_rt_model *m, const float *x, size_t count, int8_t *q);

/* Time spent per layer since the session was created (options.profile). */
typedef struct qat_rt_layer_profile {
    int index;        /* layer index; -1 for the input quantization */
    const char *name; /* layer name (model-owned), "input" for index -1 */
    const char *op;   /* "conv2d", ..., "quantize" */
    double seconds;   /* wall time as seen by thread 0 (its share of each batch) */
    double macs;      /* multiply-accumulates of all images run (conv2d, linear) */
    long images;      /* images run */
} qat_rt_layer_profile;
/* Fills out[0 .. min(max, num_layers + 1)) (the input stage first) and
 * returns the count; 0 if the session was created without profiling. */
QAT_RT_API int qat_rt_session_profile(const qat_rt_session *s, qat_rt_layer_profile *out, int max);

/* Weight packing of docs/FORMAT.md. Bytes needed for count weights of
 * bits (2..8) bits; 0 if bits is out of range or the size would overflow. */
QAT_RT_API size_t qat_rt_packed_weight_bytes(size_t count, int bits);
/* Packs count weights (each in the b-bit range) into
 * qat_rt_packed_weight_bytes(count, bits) bytes at out, padding bits zero. */
QAT_RT_API void qat_rt_pack_weights(const int8_t *w, size_t count, int bits, uint8_t *out);
/* Inverse of qat_rt_pack_weights (sign-extends each slot). */
QAT_RT_API void qat_rt_unpack_weights(const uint8_t *packed, size_t count, int bits, int8_t *out);
/* Bits per palette index for a codebook of k codes: ceil(log2 k), k in [2, 256]. */
QAT_RT_API int qat_rt_palette_index_bits(int k);
/* Bytes of count indices packed at qat_rt_palette_index_bits(k) bits. */
QAT_RT_API size_t qat_rt_palette_index_bytes(size_t count, int k);
/* Packs count indices (each < k) into qat_rt_palette_index_bytes(count, k)
 * bytes at out: index i at stream bits [i*b, i*b + b), stream bit t being
 * bit t % 8 of byte t / 8 (low bits first, an index may span two bytes);
 * the padding bits are zero. */
QAT_RT_API void qat_rt_palette_pack(const uint8_t *idx, size_t count, int k, uint8_t *out);
/* Index i of such a stream. */
QAT_RT_API unsigned qat_rt_palette_index_at(const uint8_t *packed, size_t i, int bits);
/* The layer's out_c * K_in weight codes (plain or palettized) into out. */
QAT_RT_API void qat_rt_layer_weights(const qat_rt_layer_desc *l, int8_t *out);

/* Helpers on int8 logits. Float logits: out[i] = output_scale * (q[i] - zp)
 * for n x num_classes values. */
QAT_RT_API void qat_rt_dequantize_logits(const qat_rt_model *m, const int8_t *q, int n,
                                         float *out);
/* Index of the largest code; ties go to the lowest index. */
QAT_RT_API int qat_rt_argmax(const int8_t *logits, int num_classes);
/* The same on float logits. */
QAT_RT_API int qat_rt_argmax_f32(const float *logits, int num_classes);
/* Predicted class of each of n images (qat_rt_argmax per row). */
QAT_RT_API void qat_rt_classify(const qat_rt_model *m, const int8_t *logits, int n, int *classes);

#ifdef __cplusplus
}
#endif
#endif
