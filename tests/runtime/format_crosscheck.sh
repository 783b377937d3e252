#!/bin/sh
# docs/FORMAT.md + docs/ARITHMETIC.md are enough to reproduce qat-infer: an
# independent reader (format_reader.py, h5py + numpy) must dump byte-identical
# logits for an MLP and a CNN at every weight width, a version-2 graph model
# (every graph op) at 4 and 8 bits, also after h5py has
# rewritten the strings its own way; and both refuse a chunk that claims more
# bytes than the file holds (FORMAT.md §7.1, with the h5py calls it names).
# usage: format_crosscheck.sh PYTHON MAKE_MODEL QAT_INFER READER IMAGES LABELS
set -eu
pyexe=$1 make_model=$2 infer=$3 reader=$4 images=$5 labels=$6
# meson test sets MALLOC_PERTURB_, which fills every malloc and free: it
# checks our programs, but for numpy's large arrays it only costs time
# (52 s against 20 s for this script); the reader runs without it
py() { env -u MALLOC_PERTURB_ "$pyexe" "$@"; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for kind in mlp cnn graph; do
  for bits in 2 3 4 5 6 7 8; do
    [ "$kind" = graph ] && [ "$bits" != 4 ] && [ "$bits" != 8 ] && continue
    m="$tmp/$kind$bits.h5"
    "$make_model" "$m" "$kind" "$bits"
    "$infer" "$m" --images "$images" --labels "$labels" --threads 2 --batch 50 \
      --dump-logits "$tmp/c.bin" --json > /dev/null
    py "$reader" "$m" "$images" "$tmp/py.bin"
    if ! cmp -s "$tmp/c.bin" "$tmp/py.bin"; then
      echo "FAIL: $kind, $bits-bit weights: independent reader disagrees with qat-infer" >&2
      exit 1
    fi
    echo "ok: $kind, $bits-bit weights: $(wc -c < "$tmp/c.bin") logit bytes identical"
  done
done

# FORMAT.md §10: palettized weights, per layer and per output channel
for spec in "cnn 8 16" "cnn 4 5 channel" "mlp 2 3" "mlp 7 100 channel"; do
  set -- $spec
  m="$tmp/palette.h5"
  "$make_model" "$m" "$@"
  "$infer" "$m" --images "$images" --labels "$labels" --threads 2 --batch 50 \
    --dump-logits "$tmp/c.bin" --json > /dev/null
  py "$reader" "$m" "$images" "$tmp/py.bin"
  if ! cmp -s "$tmp/c.bin" "$tmp/py.bin"; then
    echo "FAIL: palettized $spec: independent reader disagrees with qat-infer" >&2
    exit 1
  fi
  echo "ok: palettized $spec: $(wc -c < "$tmp/c.bin") logit bytes identical"
done

# FORMAT.md §11: float layers (version 3): first, middle and last (float
# logits, float32), and a float layer before an integer one (ARITHMETIC.md §7)
for spec in "cnn 4 37" "mlp 3 1"; do
  set -- $spec
  m="$tmp/float.h5"
  "$make_model" "$m" "$1" "$2" float "$3"
  "$infer" "$m" --images "$images" --labels "$labels" --threads 2 --batch 50 \
    --dump-logits "$tmp/c.bin" --json > /dev/null
  py "$reader" "$m" "$images" "$tmp/py.bin"
  if ! cmp -s "$tmp/c.bin" "$tmp/py.bin"; then
    echo "FAIL: float layers $spec: independent reader disagrees with qat-infer" >&2
    exit 1
  fi
  echo "ok: float layers $spec: $(wc -c < "$tmp/c.bin") logit bytes identical"
done

# FORMAT.md §1: h5py stores a str as a variable-length UTF-8 string.
m="$tmp/cnn8.h5" s="$tmp/strings.h5"
cp "$m" "$s"
py - "$s" <<'EOF'
import sys
import h5py
f = h5py.File(sys.argv[1], "r+")
del f.attrs["format"]
f.attrs["format"] = "qat-int8-model"
for g in f["layers"].values():
    op, name = g.attrs["op"].decode(), g.attrs["name"].decode()
    del g.attrs["op"], g.attrs["name"]
    g.attrs["op"], g.attrs["name"] = op, name + "_\u00e4\u20ac\U0001F600"
f.close()
EOF
for model in "$m" "$s"; do
  "$infer" "$model" --images "$images" --labels "$labels" --batch 50 \
    --dump-logits "$model.c.bin" --json > /dev/null
done
py "$reader" "$s" "$images" "$tmp/py.bin"
if ! cmp -s "$m.c.bin" "$s.c.bin" || ! cmp -s "$m.c.bin" "$tmp/py.bin"; then
  echo "FAIL: variable-length UTF-8 strings (as h5py writes them) change the logits" >&2
  exit 1
fi
echo "ok: h5py's variable-length UTF-8 strings: same logits from both readers"

# FORMAT.md §7.1: a chunk index entry (v1 B-tree key: size, filter mask,
# two 8-byte offsets, then the chunk's address) patched to claim 2 GiB.
c="$tmp/chunk.h5"
py - "$m" "$c" <<'EOF'
import struct
import sys
import h5py
with h5py.File(sys.argv[1], "r") as f:
    info = f["layers/005/weights"].id.get_chunk_info(0)
b = bytearray(open(sys.argv[1], "rb").read())
addr, size = struct.pack("<Q", info.byte_offset), struct.pack("<I", info.size)
at = [i for i in range(24, len(b) - 7) if b[i:i + 8] == addr and b[i - 24:i - 20] == size]
assert len(at) == 1, at
b[at[0] - 24:at[0] - 20] = struct.pack("<I", 0x80000028)
open(sys.argv[2], "wb").write(b)
EOF
for tool in "$infer" "$reader"; do
  rc=0
  if [ "$tool" = "$infer" ]; then
    "$infer" "$c" --images "$images" --labels "$labels" > /dev/null 2> "$tmp/err" || rc=$?
  else
    py "$reader" "$c" "$images" "$tmp/py.bin" 2> "$tmp/err" || rc=$?
  fi
  if [ $rc -ne 2 ] || ! grep -q "layers/005/weights" "$tmp/err"; then
    echo "FAIL: $tool accepted a chunk beyond the end of the file (exit $rc):" >&2
    cat "$tmp/err" >&2
    exit 1
  fi
done
echo "ok: a chunk claiming 2 GiB beyond the end of the file: both readers refuse it"
