#!/usr/bin/env bash
# Memory figures of the graph models of issue 18 (configs/fashion_resnet8.ini,
# configs/fashion_dscnn.ini), which do not depend on a quiet machine:
#   - the integer model's peak activation memory per image (qat-infer: the
#     arena the runtime planned over the DAG's live ranges);
#   - the static size of the C export (qat-export --format c, compiled with
#     cc -Os -c against the runtime's headers alone; `size`: text holds the
#     const arrays), and of the runtime core it links with (libqat_rt.a's
#     libqat_rt*.a objects, every kernel path of this build).
# Each model is a trained run's model.int8.h5 if RUNS_DIR/<model>/ has one
# (e.g. RUNS_DIR=runs with runs/fashion_resnet8/), else a 64-image, one-epoch
# run on Fashion-MNIST made here: neither figure depends on the weights.
# usage: benchmarks/graph_footprint.sh [BUILD_DIR]   (env: RUNS_DIR, CC)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
build=${1:-build}
cc=${CC:-cc}
data=/usr/share/datasets/fashion-mnist
for t in qat-train qat-export qat-infer; do
  [[ -x "$build/$t" ]] || { echo "graph_footprint: no $build/$t (ninja -C $build)" >&2; exit 2; }
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf '%-16s %14s %12s %12s %12s\n' model "activations/B" "C text/B" "C data/B" "C bss/B"
for m in fashion_resnet8 fashion_dscnn; do
  model=${RUNS_DIR:-/nonexistent}/$m/model.int8.h5
  if [[ ! -f "$model" ]]; then
    "$build/qat-train" "configs/$m.ini" --set train.epochs=1 --set data.train_limit=64 \
      --set data.test_limit=64 --set train.threads=1 --out "$tmp/$m" --quiet >/dev/null
    model=$tmp/$m/model.int8.h5
  fi
  act=$("$build/qat-infer" "$model" --images "$data/t10k-images-idx3-ubyte.gz" \
        --labels "$data/t10k-labels-idx1-ubyte.gz" |
        sed -n 's/^activations: \([0-9]*\) bytes per image.*/\1/p')
  "$build/qat-export" "$model" --format c -o "$tmp/$m" --name "$m" >/dev/null
  "$cc" -Os -c -Iinclude "$tmp/$m.c" -o "$tmp/$m.o"
  read -r text data_b bss _ < <(size "$tmp/$m.o" | tail -1)
  printf '%-16s %14s %12s %12s %12s\n' "$m" "$act" "$text" "$data_b" "$bss"
done
libs=$(find "$build/src/runtime" -maxdepth 1 -name 'libqat_rt*.a' | sort)
if [[ -n "$libs" ]]; then
  # shellcheck disable=SC2086
  size -t $libs | tail -1 |
    awk '{printf "runtime core (%s: every kernel path): text %s, data %s, bss %s bytes\n", L, $1, $2, $3}' \
      L="$(echo $libs | xargs -n1 basename | tr '\n' ' ' | sed 's/ $//')"
fi
