#!/bin/sh
# ONNX export under ONNX Runtime's WebAssembly build (npm onnxruntime-web,
# run by node) against qat-infer, on a test set: for each model and each
# export flavour (qoperator with QLinearConv's float requantization,
# qoperator with exact requantization, qdq), one Markdown table row with the
# class agreement, the share of images whose int8 logits are identical, the
# largest logit difference, both accuracies, and both speeds (images/s, one
# thread, batch 100). WebAssembly against native code is not a fair race:
# the speed columns are there to be reported, not compared as engines.
#
# usage: benchmarks/onnx_ort.sh [BUILD_DIR] [DATA_DIR] MODEL.h5...
#   BUILD_DIR default build; DATA_DIR default datasets/mnist (the full test
#   set: scripts/fetch_mnist.sh); ONNX Runtime is installed into
#   BUILD_DIR/onnxruntime-web on first use (tests/onnx/ort_setup.sh).
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build}
data=${2:-datasets/mnist}
shift 2 || true
[ "$#" -gt 0 ] || { echo "usage: benchmarks/onnx_ort.sh [BUILD_DIR] [DATA_DIR] MODEL.h5..." >&2; exit 2; }
py=/usr/bin/python3
ort=$("$root/tests/onnx/ort_setup.sh" "$build/onnxruntime-web")
images=$data/t10k-images-idx3-ubyte labels=$data/t10k-labels-idx1-ubyte
[ -f "$images" ] || images=$images.gz
[ -f "$labels" ] || labels=$labels.gz
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "| model | flavour | class agreement | identical logits | max diff | qat acc | ORT acc | qat-infer img/s | ORT-web img/s |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---:|"
for m in "$@"; do
  q=$("$build/qat-infer" "$m" --images "$images" --labels "$labels" --threads 1 --batch 100 \
        --dump-logits "$tmp/qat.bin" --json)
  qips=$(echo "$q" | sed 's/.*"images_per_second": *\([0-9.]*\).*/\1/')
  classes=$("$py" -c "import h5py,sys; f=h5py.File(sys.argv[1],'r'); print(int(f.attrs['num_classes']))" "$m" 2>/dev/null || echo 10)
  for flavour in "qoperator" "qoperator --onnx-requant exact" "qdq"; do
    # shellcheck disable=SC2086
    "$build/qat-export" "$m" --format onnx --onnx-style $flavour -o "$tmp/m.onnx" >/dev/null
    o=$(node "$root/tests/onnx/run_ort.mjs" "$ort" "$tmp/m.onnx" "$images" "$tmp/ort.bin" --batch 100 --threads 1)
    oips=$(echo "$o" | sed 's/.*"images_per_second":\([0-9.]*\).*/\1/')
    "$py" "$root/tests/onnx/compare_logits.py" "$tmp/qat.bin" "$tmp/ort.bin" "$labels" "$classes" |
      "$py" -c "
import json, sys
r = json.load(sys.stdin)
print('| %s | %s | %.2f%% | %.2f%% | %d | %.2f%% | %.2f%% | %.0f | %.0f |' % (sys.argv[1], sys.argv[2],
      100 * r['class_agreement'], 100 * r['identical_images'], r['max_code_diff'],
      100 * r['qat_accuracy'], 100 * r['ort_accuracy'], float(sys.argv[3]), float(sys.argv[4])))
" "$m" "$flavour" "$qips" "$oips"
  done
done
