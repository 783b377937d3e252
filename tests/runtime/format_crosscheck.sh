#!/bin/sh
# docs/FORMAT.md + docs/ARITHMETIC.md are enough to reproduce qat-infer: an
# independent reader (format_reader.py, h5py + numpy) must dump byte-identical
# logits for an MLP and a CNN at every weight width.
# usage: format_crosscheck.sh PYTHON MAKE_MODEL QAT_INFER READER IMAGES LABELS
set -eu
py=$1 make_model=$2 infer=$3 reader=$4 images=$5 labels=$6
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for kind in mlp cnn; do
  for bits in 2 3 4 5 6 7 8; do
    m="$tmp/$kind$bits.h5"
    "$make_model" "$m" "$kind" "$bits"
    "$infer" "$m" --images "$images" --labels "$labels" --threads 2 --batch 50 \
      --dump-logits "$tmp/c.bin" --json > /dev/null
    "$py" "$reader" "$m" "$images" "$tmp/py.bin"
    if ! cmp -s "$tmp/c.bin" "$tmp/py.bin"; then
      echo "FAIL: $kind, $bits-bit weights: independent reader disagrees with qat-infer" >&2
      exit 1
    fi
    echo "ok: $kind, $bits-bit weights: $(wc -c < "$tmp/c.bin") logit bytes identical"
  done
done
