#!/bin/sh
# qat-export --format onnx, checked by consumers no one here wrote:
#  1. Debian's python3-onnx accepts every exported model
#     (onnx.checker.check_model(full_check=True));
#  2. ONNX Runtime's WebAssembly build (npm onnxruntime-web, run by node)
#     runs it on the committed MNIST subset, and its int8 logits are compared
#     with qat-infer --dump-logits (compare_logits.py: thresholds that fail);
#  3. a model QOperator cannot express exits 2 naming the layer and the
#     other style, and leaves no file behind.
# Models: the shipped CNN and MLP configs and a W4A4 CNN, each trained for
# one epoch on the subset, and synthetic models (tests/runtime/make_model:
# avgpool, odd strides, padding, 6-bit activations, weight zero points,
# a multiplier above 1).
# usage: test_onnx.sh SRC_ROOT ORT_DIR PYTHON QAT_EXPORT QAT_INFER QAT_TRAIN MAKE_MODEL
set -eu
src=$1 ortdir=$2 pyexe=$3 export=$4 infer=$5 train=$6 make_model=$7
here=$src/tests/onnx
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "test_onnx: FAIL: $*" >&2; exit 1; }
# the consumers run without meson's MALLOC_PERTURB_ (it checks our
# programs; in python and node it only costs time)
py() { env -u MALLOC_PERTURB_ "$pyexe" "$@"; }
run_node() { env -u MALLOC_PERTURB_ node "$@"; }

py -c "import onnx, numpy" 2>/dev/null ||
  fail "python3 with the onnx and numpy modules not found ('$pyexe'; Debian: python3-onnx, scripts/setup.sh --test)"
command -v node >/dev/null || fail "node not found (Debian: nodejs, scripts/setup.sh --test)"
"$here/ort_setup.sh" "$ortdir" >/dev/null
images=$src/datasets/mnist-subset/t10k-images-idx3-ubyte
labels=$src/datasets/mnist-subset/t10k-labels-idx1-ubyte

for cfg in mnist_cnn mnist_mlp; do
  "$train" "$src/configs/$cfg.ini" --out "$tmp/$cfg" --quiet --set data.dir="$src/datasets/mnist-subset" \
    --set train.epochs=1 --set train.threads=1 >/dev/null
done
"$train" "$src/configs/mnist_cnn.ini" --out "$tmp/w4a4" --quiet --set data.dir="$src/datasets/mnist-subset" \
  --set train.epochs=1 --set train.threads=1 --set quant.weight_bits=4 --set quant.activation_bits=4 >/dev/null
"$make_model" "$tmp/synth_cnn4.h5" cnn 4
"$make_model" "$tmp/synth_cnn8.h5" cnn 8
"$make_model" "$tmp/synth_mlp2.h5" mlp 2

# check NAME INPUT STYLE[:exact] COMPARE_OPTIONS...: export to ONNX and run
# qat-infer now; the consumers run once over every queued model (finish):
# starting python with onnx, or node with ONNX Runtime, costs more than
# checking or running one small model.
n=0
: > "$tmp/queue"
check() {
  name=$1 input=$2 style=${3%:exact}
  rq=
  [ "$3" = "$style" ] || rq="--onnx-requant exact"
  shift 3
  n=$((n + 1))
  m=$tmp/q$n.onnx
  # shellcheck disable=SC2086
  "$export" "$input" --format onnx --onnx-style "$style" $rq -o "$m" > "$tmp/export.log" ||
    fail "$name: qat-export exited $?: $(cat "$tmp/export.log")"
  qm=$input # qat-infer reads model files: a checkpoint's is beside it
  case $input in */checkpoint.h5) qm=$(dirname "$input")/model.int8.h5 ;; esac
  "$infer" "$qm" --images "$images" --labels "$labels" --threads 1 \
    --dump-logits "$tmp/q$n.qat" --json >/dev/null
  # one line a model: index|label|compare options
  echo "$n|$name ($style${rq:+, exact})|$*" >> "$tmp/queue"
}

finish() {
  models=$(awk -F'|' '{printf "%s/q%s.onnx ", t, $1}' t="$tmp" "$tmp/queue")
  # shellcheck disable=SC2086
  py - $models <<'PY' || fail "onnx.checker rejects an exported model (above)"
import sys
import onnx
bad = 0
for m in sys.argv[1:]:
    try:
        onnx.checker.check_model(onnx.load(m), full_check=True)
    except Exception as e:  # the checker's own exception types vary
        print(f"test_onnx: onnx.checker rejects {m}: {e}", file=sys.stderr)
        bad = 1
sys.exit(bad)
PY
  pairs=$(awk -F'|' '{printf "%s/q%s.onnx %s/q%s.ort ", t, $1, t, $1}' t="$tmp" "$tmp/queue")
  first=${pairs%% *} rest=${pairs#* }
  # shellcheck disable=SC2086
  run_node "$here/run_ort.mjs" "$ortdir" "$first" "$images" $rest >/dev/null 2> "$tmp/ort.log" ||
    fail "ONNX Runtime failed: $(grep -v '^ *at ' "$tmp/ort.log" | tail -3 | cut -c1-600)"
  while IFS='|' read -r i label opts; do
    classes=$(( $(wc -c < "$tmp/q$i.qat") / $(( ($(wc -c < "$images") - 16) / 784 )) ))
    # shellcheck disable=SC2086
    r=$(py "$here/compare_logits.py" "$tmp/q$i.qat" "$tmp/q$i.ort" "$labels" "$classes" $opts) ||
      fail "$label: $r"
    echo "ok: $label: $r"
  done < "$tmp/queue"
}

# exact requantization: byte-identical logits
for m in mnist_cnn/checkpoint.h5 mnist_mlp/model.int8.h5 w4a4/model.int8.h5 synth_cnn4.h5 synth_mlp2.h5; do
  check "$(echo "$m" | tr / _)" "$tmp/$m" qoperator:exact --min-identical 1 --max-diff 0
done
# QLinearConv's float requantization (docs/ONNX.md: one step off at times)
check cnn "$tmp/mnist_cnn/checkpoint.h5" qoperator --min-agreement 0.99 --min-identical 0.85 --max-diff 1
check cnn_file "$tmp/mnist_cnn/model.int8.h5" qdq --min-agreement 0.99 --max-acc-drop 0.005 --max-diff 2
check mlp "$tmp/mnist_mlp/model.int8.h5" qdq --min-agreement 0.99 --max-acc-drop 0.005 --max-diff 2
check w4a4 "$tmp/w4a4/model.int8.h5" qoperator --min-agreement 0.98 --min-identical 0.5 --max-diff 8
check w4a4 "$tmp/w4a4/model.int8.h5" qdq --min-agreement 0.98 --max-acc-drop 0.005 --max-diff 8
check synth_cnn4 "$tmp/synth_cnn4.h5" qoperator --min-agreement 0.9 --max-diff 2
check synth_cnn4 "$tmp/synth_cnn4.h5" qdq --min-agreement 0.9 --max-diff 3
check synth_cnn8 "$tmp/synth_cnn8.h5" qdq --min-agreement 0.9 --max-diff 3
finish

# 8-bit codes minus differing weight zero points leave int8: not QLinearConv
set +e
"$export" "$tmp/synth_cnn8.h5" --format onnx -o "$tmp/bad.onnx" > "$tmp/out.log" 2> "$tmp/err.log"
rc=$?
set -e
[ "$rc" = 2 ] || fail "synth_cnn8 qoperator: exit $rc, expected 2: $(cat "$tmp/err.log")"
grep -q "layer 2 'conv2' (conv2d)" "$tmp/err.log" && grep -q -- "--onnx-style qdq" "$tmp/err.log" ||
  fail "synth_cnn8 qoperator: message does not name the layer and the other style: $(cat "$tmp/err.log")"
[ -z "$(ls "$tmp" | grep '^bad\.onnx')" ] || fail "synth_cnn8 qoperator: left $(ls "$tmp" | grep '^bad')"
echo "ok: synth_cnn8 (qoperator) refused: $(cat "$tmp/err.log")"
