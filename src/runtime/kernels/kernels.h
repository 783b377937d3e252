/* The kernel interface of the integer runtime: plain parameter structs, one
 * function type per op, and a table of function pointers per ISA path. A
 * model picks its table once, when it is created (it packs its weights into
 * that table's layout), and every session of the model uses it.
 *
 * Paths: kernels/ref (plain C, always built: the oracle), kernels/avx2
 * (x86-64 AVX2+FMA), kernels/avx512 (x86-64 AVX-512 VNNI), kernels/neon
 * (aarch64, with and without the dot-product extension). Each SIMD table
 * entry is a portable driver (conv_driver.h, pool_driver.c) run with the
 * path's microkernels (microkernel.h; each path declares its own in
 * kernels_<isa>.h). Intrinsics live only in files compiled with their ISA
 * flags; the drivers, tables and packing code are plain C. Every SIMD path
 * must equal ref bit for bit (tests/runtime/kernel_tester.c). Kernels never
 * allocate and never touch globals: scratch is sized by the table's query
 * and passed in. Semantics: docs/ARITHMETIC.md. */
#ifndef QAT_RT_KERNELS_H
#define QAT_RT_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "qat/status.h"

/* conv2d and linear (a linear layer is a 1x1 conv on a 1x1 input: in_c = K).
 * Activations NHWC int8, images contiguous. */
typedef struct qat_rt_conv_params {
    int in_h, in_w, in_c;
    int out_h, out_w, out_c;
    int kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w;
    int32_t in_zp, out_zp, act_min, act_max;
    /* Unpacked int8 weights [out_c][kernel_h][kernel_w][in_c]: read by the
     * pack functions only (model creation, tests); kernels read `packed`. */
    const int8_t *weights;
    const int32_t *weight_zp; /* out_c */
    /* bias[c] - in_zp * sum_k (w[c][k] - weight_zp[c]): with it, the int32
     * accumulator is bias_folded[c] + sum_k (w - weight_zp) * x, where a
     * padded tap reads x = in_zp. Never overflows given model validation. */
    const int32_t *bias_folded; /* out_c */
    const int32_t *multiplier;  /* out_c */
    const int32_t *shift;       /* out_c */
    const void *packed;         /* the table's own layout, built by its pack() */
    /* grouped conv2d (groups > 1; 0 and 1 mean a plain conv): output
     * channel oc reads input channels (oc / (out_c / groups)) * cg + j,
     * j < cg = in_c / groups, with weights[oc][ky][kx][j] (unpacked: the
     * grouped kernels read `weights`, not `packed`) */
    int groups;
} qat_rt_conv_params;

/* The integer add's scaling of each input code difference (TFLite's for
 * 8-bit inputs; docs/ARITHMETIC.md §4.1): 255 * 2^20 < 2^28. */
#define QAT_RT_ADD_LEFT_SHIFT 20

/* add, concat, global_avgpool (docs/ARITHMETIC.md §4.1). A row is one
 * output pixel (global_avgpool: one image) of the batch. */
typedef struct qat_rt_merge_params {
    int n;                 /* inputs (add: 2; global_avgpool: 1) */
    int c[4];              /* channels of each input */
    int out_c;             /* channels of a row of the output */
    int window;            /* global_avgpool: in_h * in_w pixels per image */
    int32_t in_zp[4];
    int32_t in_mult[4], in_shift[4]; /* add, concat: per input */
    int32_t out_mult, out_shift;     /* add, global_avgpool */
    int32_t out_zp, act_min, act_max;
    /* add: what the table's add_pack built at model creation, or NULL (no
     * add_pack, or it packs nothing on this CPU): the kernel works either way */
    const void *packed;
} qat_rt_merge_params;

/* maxpool2d / avgpool2d: no padding; zero point shared by input and output. */
typedef struct qat_rt_pool_params {
    int in_h, in_w, c;
    int out_h, out_w;
    int kernel_h, kernel_w, stride_h, stride_w;
    int32_t zp; /* avgpool only */
    /* avgpool: DivRound by n = kernel_h * kernel_w as a multiply-shift,
     * floor(u / n) = (u * div_mul) >> div_shift for 0 <= u < 2^31
     * (qat_rt_pool_divisor); SIMD paths use it, ref divides. */
    uint32_t div_mul;
    int div_shift;
} qat_rt_pool_params;

/* The output stage alone (what conv/linear fuse): acc holds rows x channels
 * int32 accumulators; out receives rows x channels int8 codes. */
typedef struct qat_rt_requant_params {
    int channels;
    const int32_t *multiplier, *shift; /* channels */
    int32_t out_zp, act_min, act_max;
} qat_rt_requant_params;

/* Each kernel's function type (kernels are declared with it, so the
 * compiler checks every definition) and the table's pointer to it.
 *
 * conv/linear: computes output rows [m0, m1) of a batch, where row r is
 * output pixel r % (out_h * out_w) of image r / (out_h * out_w), for output
 * channels [c0, c1) (c0 a multiple of the table's channel_align; c1 one too,
 * or out_c). in and out point at image 0 of the batch. scratch holds
 * conv_scratch(p) bytes, 64-byte aligned. */
typedef void qat_rt_conv_kernel(const qat_rt_conv_params *p, const int8_t *in, int8_t *out,
                                size_t m0, size_t m1, int c0, int c1, void *scratch);
typedef qat_rt_conv_kernel *qat_rt_conv_fn;
typedef size_t (*qat_rt_conv_size_fn)(const qat_rt_conv_params *p);
/* Scratch bytes a conv/linear kernel needs for calls of up to max_images
 * images (may be 0). p->packed is set: the layer is packed first. */
typedef size_t (*qat_rt_scratch_fn)(const qat_rt_conv_params *p, int max_images);
/* Fills dst (conv_packed_size(p) bytes, 64-byte aligned) from p->weights,
 * weight_zp, bias_folded, multiplier and shift. */
typedef void (*qat_rt_pack_fn)(const qat_rt_conv_params *p, void *dst);
/* conv2d followed by a 2x2 stride-2 maxpool, in one pass: output rows
 * [m0, m1) of the pool (pooled pixels of the batch, numbered as for conv)
 * for channels [c0, c1). Equal to the two layers run one after the other:
 * the output stage is monotone non-decreasing in the accumulator (m0 >= 0),
 * so the max of four requantized codes is the requantized max of the four
 * accumulators, and a kernel may requantize once per pooled value. Conv
 * pixels no pooling window covers are not computed. */
typedef void qat_rt_conv_pool_kernel(const qat_rt_conv_params *p, const qat_rt_pool_params *pool,
                                     const int8_t *in, int8_t *out, size_t m0, size_t m1, int c0,
                                     int c1, void *scratch);
typedef qat_rt_conv_pool_kernel *qat_rt_conv_pool_fn;
/* Pools: output rows [m0, m1), a row being one output pixel (all channels)
 * of the batch, numbered as for conv. */
typedef void qat_rt_pool_kernel(const qat_rt_pool_params *p, const int8_t *in, int8_t *out,
                                size_t m0, size_t m1);
typedef qat_rt_pool_kernel *qat_rt_pool_fn;
/* Model input: q = p - 128 for count pixels. */
typedef void qat_rt_quantize_kernel(const uint8_t *pixels, int8_t *q, size_t count);
typedef qat_rt_quantize_kernel *qat_rt_quantize_fn;
typedef void qat_rt_requantize_kernel(const qat_rt_requant_params *q, const int32_t *acc,
                                      int8_t *out, size_t rows);
typedef qat_rt_requantize_kernel *qat_rt_requantize_fn;

/* add / concat / global_avgpool: output rows [m0, m1); in[k] points at
 * image 0 of input k. */
typedef void qat_rt_merge_kernel(const qat_rt_merge_params *p, const int8_t *const *in,
                                 int8_t *out, size_t m0, size_t m1);
typedef qat_rt_merge_kernel *qat_rt_merge_fn;
/* The bytes a table packs for a merge layer (0: none), and the packing. */
typedef size_t qat_rt_merge_size_fn(const qat_rt_merge_params *p);
typedef void qat_rt_merge_pack_fn(const qat_rt_merge_params *p, void *dst);

typedef struct qat_rt_kernels {
    const char *isa;   /* "ref", "avx2", "avx512vnni", "neon-dot", "neon-plain" */
    int channel_align; /* conv c0/c1 split granularity */
    qat_rt_quantize_fn quantize_input;
    qat_rt_conv_size_fn conv_packed_size;
    qat_rt_pack_fn conv_pack;
    qat_rt_scratch_fn conv_scratch;
    qat_rt_conv_fn conv2d;
    qat_rt_conv_pool_fn conv2d_maxpool; /* NULL: the session runs the two layers */
    qat_rt_conv_fn linear;
    qat_rt_pool_fn maxpool2d;
    qat_rt_pool_fn avgpool2d;
    qat_rt_requantize_fn requantize;
    /* graph layers (format version 2). Grouped / depthwise conv2d: p->weights
     * stays unpacked (ref and a path's general grouped case read it); a
     * table with gconv_pack also gets p->packed, gconv_packed_size(p)
     * bytes filled by gconv_pack (model creation), and gconv_scratch(p, n)
     * bytes of scratch (NULL: none). */
    qat_rt_conv_size_fn gconv_packed_size; /* NULL: nothing packed */
    qat_rt_pack_fn gconv_pack;
    qat_rt_scratch_fn gconv_scratch;
    qat_rt_conv_fn gconv2d;
    qat_rt_merge_fn add, concat, global_avgpool;
    /* the add's packed data (NULL: none): add_packed_size(p) bytes, filled
     * by add_pack at model creation, become p->packed */
    qat_rt_merge_size_fn *add_packed_size;
    qat_rt_merge_pack_fn *add_pack;
} qat_rt_kernels;

/* The plain C reference path (always available). */
extern const qat_rt_kernels qat_rt_kernels_ref;
/* Whether the CPU (and OS) run AVX-512 VBMI: dispatch.c probes the CPU for
 * every x86-64 path, this for the avx512vnni path's add (x86-64 builds). */
int qat_rt_cpu_has_avx512vbmi(void);
#if defined(QAT_RT_HAVE_AVX2)
extern const qat_rt_kernels qat_rt_kernels_avx2;
extern const qat_rt_kernels qat_rt_kernels_avx512vnni;
#endif
#if defined(QAT_RT_HAVE_NEON)
extern const qat_rt_kernels qat_rt_kernels_neon_plain;
extern const qat_rt_kernels qat_rt_kernels_neon_dot;
#endif

/* Picks a kernel table. isa NULL or "auto": the QAT_ISA environment variable
 * if set, else the best path this build and CPU support. Names: ref, avx2,
 * avx512vnni, neon (the dot-product kernels when the CPU has them, else
 * plain NEON), neon-dot, neon-plain. A path this build or CPU lacks is QAT_EUNSUPPORTED,
 * an unknown name QAT_EINVAL; both messages list what is available. The
 * CPU is probed on every call (cpuid/xgetbv, getauxval): cheap, and no
 * global state. */
qat_status qat_rt_kernels_select(const char *isa, const qat_rt_kernels **out, qat_error *err);
/* Every table this build and CPU can run, ref first, then in increasing
 * preference; returns the count (at most QAT_RT_MAX_PATHS). */
#define QAT_RT_MAX_PATHS 4
int qat_rt_kernels_available(const qat_rt_kernels *out[QAT_RT_MAX_PATHS]);

/* Multiply-shift for avgpool's division by n in [1, 2^23]. */
void qat_rt_pool_divisor(int32_t n, uint32_t *mul, int *shift);

/* Reference kernels: the scalar twins every SIMD kernel is tested against. */
qat_rt_quantize_kernel qat_u8_quantize_input__ref;
size_t qat_s8_conv_packed_size__ref(const qat_rt_conv_params *p);
void qat_s8_conv_pack__ref(const qat_rt_conv_params *p, void *dst);
size_t qat_s8_conv_scratch__ref(const qat_rt_conv_params *p, int max_images);
qat_rt_conv_kernel qat_s8_conv2d__ref, qat_s8_linear__ref;
/* The unfused semantics, pooled pixel by pooled pixel: the max of the four
 * requantized conv outputs (the oracle of every fused kernel). */
qat_rt_conv_pool_kernel qat_s8_conv2d_maxpool__ref;
qat_rt_pool_kernel qat_s8_maxpool2d__ref, qat_s8_avgpool2d__ref;
qat_rt_requantize_kernel qat_s32_requantize__ref;
qat_rt_conv_kernel qat_s8_gconv2d__ref;
qat_rt_merge_kernel qat_s8_add__ref, qat_s8_concat__ref, qat_s8_global_avgpool__ref;

#endif
