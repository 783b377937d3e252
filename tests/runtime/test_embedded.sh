#!/bin/sh
# The embeddable C export, end to end on x86 (the aarch64 half is
# tests/runtime_only/embedded_e2e.c under qemu):
#  1. qat-export --format c of the committed examples/embedded/tiny_cnn.int8.h5
#     reproduces the committed tiny_cnn.c / tiny_cnn.h byte for byte (so the
#     compiled-in model is the file's model);
#  2. qat-infer on that file dumps exactly the committed expected logits
#     (tests/runtime_only/tiny_cnn.logits) with every kernel path, 1 and 2
#     threads: the expected logits are the x86 result the cross test compares;
#  3. a checkpoint and the integer model file exported from it give the same
#     C (qat-export tells the two inputs apart by their `format` attribute);
#  4. bad usage and bad input exit 2 with the culprit named.
# usage: test_embedded.sh SRC_ROOT QAT_EXPORT QAT_INFER QAT_TRAIN ISAS...
set -eu
src=$1 export=$2 infer=$3 train=$4
shift 4
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "test_embedded: $*" >&2; exit 1; }

ex=$src/examples/embedded
"$export" "$ex/tiny_cnn.int8.h5" --format c -o "$tmp/tiny_cnn" >/dev/null
cmp "$tmp/tiny_cnn.c" "$ex/tiny_cnn.c" || fail "regenerated tiny_cnn.c differs from the committed one"
cmp "$tmp/tiny_cnn.h" "$ex/tiny_cnn.h" || fail "regenerated tiny_cnn.h differs from the committed one"

images=$src/datasets/mnist-subset/t10k-images-idx3-ubyte
labels=$src/datasets/mnist-subset/t10k-labels-idx1-ubyte
for isa in "$@"; do
  for t in 1 2; do
    "$infer" "$ex/tiny_cnn.int8.h5" --images "$images" --labels "$labels" --isa "$isa" \
      --threads "$t" --dump-logits "$tmp/logits" >/dev/null
    cmp "$tmp/logits" "$src/tests/runtime_only/tiny_cnn.logits" ||
      fail "qat-infer --isa $isa --threads $t differs from tests/runtime_only/tiny_cnn.logits"
  done
done

# checkpoint in, C out, equal to the C of the model file written with it
cat > "$tmp/micro.ini" <<EOF
[data]
dir = $src/datasets/mnist-subset
[train]
epochs = 1
batch_size = 50
seed = 3
threads = 1
[quant]
enabled = true
[layer.conv]
type = conv2d
out_channels = 4
kernel = 3
stride = 2
activation = relu
[layer.pool]
type = avgpool2d
kernel = 2
[layer.flat]
type = flatten
[layer.fc]
type = linear
out_features = 10
EOF
"$train" "$tmp/micro.ini" --out "$tmp/run" >/dev/null 2>&1 || fail "qat-train of the micro model failed"
mkdir "$tmp/a" "$tmp/b"
"$export" "$tmp/run/checkpoint.h5" --format c -o "$tmp/a/micro.c" >/dev/null
"$export" "$tmp/run/model.int8.h5" --format c -o "$tmp/b/micro" >/dev/null
# the first comment line names the input file; everything else must agree
[ "$(sed 1d "$tmp/a/micro.c")" = "$(sed 1d "$tmp/b/micro.c")" ] ||
  fail "C from the checkpoint differs from C from its model file"
grep -q "micro_model(void)" "$tmp/a/micro.h" || fail "header lacks micro_model()"
"$export" "$tmp/run/checkpoint.h5" -o "$tmp/c.int8.h5" >/dev/null
"$infer" "$tmp/c.int8.h5" --images "$images" --labels "$labels" --dump-logits "$tmp/l1" >/dev/null
"$infer" "$tmp/run/model.int8.h5" --images "$images" --labels "$labels" --dump-logits "$tmp/l2" >/dev/null
cmp "$tmp/l1" "$tmp/l2" || fail "model re-exported from the checkpoint gives other logits"

# a graph model (format version 2: inputs, a depthwise conv, add, global
# average pool): the C carries its graph fields, the same from the
# checkpoint as from the model file
sed '/^\[layer.conv\]/,$d' "$tmp/micro.ini" > "$tmp/graph.ini"
cat >> "$tmp/graph.ini" <<EOF
[layer.stem]
type = conv2d
out_channels = 4
kernel = 3
stride = 2
activation = relu
[layer.dw]
type = depthwise_conv2d
kernel = 3
padding = 1
activation = relu6
[layer.sum]
type = add
inputs = dw, stem
[layer.gap]
type = global_avgpool
[layer.fc]
type = linear
out_features = 10
EOF
"$train" "$tmp/graph.ini" --out "$tmp/grun" >/dev/null 2>&1 || fail "qat-train of the graph model failed"
"$export" "$tmp/grun/checkpoint.h5" --format c -o "$tmp/a/graph.c" >/dev/null
"$export" "$tmp/grun/model.int8.h5" --format c -o "$tmp/b/graph" >/dev/null
[ "$(sed 1d "$tmp/a/graph.c")" = "$(sed 1d "$tmp/b/graph.c")" ] ||
  fail "graph model: C from the checkpoint differs from C from its model file"
for want in ".version = 2" ".groups = 4" ".op = QAT_RT_ADD" ".num_inputs = 2, .inputs = {1, 0}" \
    ".op = QAT_RT_GLOBAL_AVGPOOL" "l2_multiplier"; do
  grep -qF "$want" "$tmp/a/graph.c" || fail "graph model: the C lacks '$want'"
done

# usage and input errors: exit 2, culprit named
expect2() {
  want=$1
  shift
  set +e
  "$export" "$@" >"$tmp/out" 2>"$tmp/err"
  rc=$?
  set -e
  [ "$rc" = 2 ] || fail "qat-export $*: exit $rc, expected 2"
  grep -q -- "$want" "$tmp/err" || fail "qat-export $*: message lacks '$want': $(cat "$tmp/err")"
}
expect2 "--format: expected h5, c or onnx, found 'cpp'" "$ex/tiny_cnn.int8.h5" --format cpp -o "$tmp/x"
expect2 "--name: expected a C identifier" "$ex/tiny_cnn.int8.h5" --format c --name 9lives -o "$tmp/x"
expect2 "missing -o OUTPUT" "$ex/tiny_cnn.int8.h5"
expect2 "$tmp/none.h5: cannot open" "$tmp/none.h5" -o "$tmp/x"
printf 'not hdf5' > "$tmp/junk.h5"
expect2 "$tmp/junk.h5: not a readable HDF5 file" "$tmp/junk.h5" --format c -o "$tmp/x"
[ ! -e "$tmp/x.c" ] || fail "a failed export left $tmp/x.c behind"
echo "test_embedded: ok"
