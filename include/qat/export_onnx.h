/* ONNX export of an integer model (qat-export --format onnx; docs/ONNX.md).
 * Built only with the meson feature `onnx` (libprotobuf-c + onnx.proto);
 * QAT_HAVE_ONNX is defined for the code that may call it. */
#ifndef QAT_EXPORT_ONNX_H
#define QAT_EXPORT_ONNX_H

#include "qat/runtime.h"

typedef enum qat_onnx_style {
    QAT_ONNX_QOPERATOR = 0, /* the integer graph: QLinearConv, MatMulInteger, ... */
    QAT_ONNX_QDQ = 1        /* float ops between QuantizeLinear/DequantizeLinear pairs */
} qat_onnx_style;

/* qoperator's requantization of conv2d layers: QLinearConv's float one
 * (FLOAT, the default: what ONNX Runtime, OpenVINO and vendor compilers
 * fuse) or ConvInteger followed by qat's fixed-point rounding written out
 * as ONNX arithmetic (EXACT: bit-identical logits). linear layers always
 * take the exact route (MatMulInteger + requantization). */
typedef enum qat_onnx_requant { QAT_ONNX_REQUANT_FLOAT = 0, QAT_ONNX_REQUANT_EXACT = 1 } qat_onnx_requant;

typedef struct qat_onnx_options {
    qat_onnx_style style;
    qat_onnx_requant requant; /* qoperator only */
} qat_onnx_options;

/* How closely ONNX Runtime's float requantization can follow qat's
 * fixed-point one (docs/ONNX.md): per requantized output channel, whether
 * the exported scale reproduces qat's code for every accumulator the layer
 * can produce, and how many output-code thresholds still differ. */
typedef struct qat_onnx_report {
    int channels;          /* conv2d/linear output channels requantized */
    int channels_exact;    /* of those, exact for every reachable accumulator */
    long thresholds;       /* output-code thresholds checked */
    long thresholds_off;   /* thresholds where ONNX Runtime would step at another accumulator */
    int nodes, initializers;
    size_t bytes;          /* file size */
} qat_onnx_report;

/* Writes d as an opset-13 ONNX model at path (atomically: a temporary file
 * renamed into place; nothing is left behind on failure). The model takes
 * float32 N x C x H x W pixels / 255 ("input") and returns "logits" (float32
 * N x classes) and "logits_q" (their int8 codes, equal to qat-infer's
 * --dump-logits bytes where the requantization agrees). d is validated
 * first. A layer the style cannot express is QAT_EUNSUPPORTED naming the
 * layer and op; an unwritable path QAT_EIO. origin (e.g. the input file) is
 * recorded in the model's doc string. report may be NULL. */
qat_status qat_export_onnx(const qat_rt_model_desc *d, const qat_onnx_options *opt,
                           const char *path, const char *origin, qat_onnx_report *report,
                           qat_error *err);

/* "qoperator" / "qdq" -> style; -1 if unknown. */
int qat_onnx_style_parse(const char *s);
const char *qat_onnx_style_name(qat_onnx_style s);

#endif
