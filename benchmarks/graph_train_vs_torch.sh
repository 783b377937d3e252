#!/usr/bin/env bash
# One training epoch of the graph models of issue 18, ResNet-8
# (configs/fashion_resnet8.ini) and the DS-CNN (configs/fashion_dscnn.ini),
# on Fashion-MNIST, qat vs PyTorch 1.13, float and W8A8 QAT, batch 64, Adam
# lr 1e-3, in ROUNDS alternating rounds run by benchmarks/sidebyside.py:
# min / median / max of each epoch time and the ratios of our median to
# PyTorch's best (fastest) epoch. The peer is benchmarks/torch_graph.py
# --train: the same networks, eager mode, float and QAT (conv+BN(+ReLU)
# fused for training, prepare_qat, default onednn qconfig, FloatFunctional
# for the add), timed as benchmarks/torch_train.py times its epoch. It
# refuses to print ratios (exit 3) when other processes used more than 0.1
# core before or during any run (QAT_BENCH_FORCE=1 runs anyway on a busy
# machine: figures printed, ratios withheld). Needs Debian's
# dataset-fashion-mnist and, for the peer, python3-torch (installed on
# demand; never a dependency of qat itself).
# usage: benchmarks/graph_train_vs_torch.sh [THREADS] [LIMIT] [ROUNDS] [BUILD_DIR]
#   LIMIT: training images, 0 = all 60000
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
threads=${1:-2}
limit=${2:-0}
rounds=${3:-3}
build=${4:-build}
[[ "$build" == build ]] && scripts/setup.sh >/dev/null
if ! /usr/bin/python3 -c "import torch" 2>/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=300 python3-torch >/dev/null
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
sides=() ratios=()
for m in resnet8 dscnn; do
  # our side: both modes, one JSON line each (epoch_seconds from metrics.csv)
  cat >"$out/ours-$m.sh" <<SH
set -e
for mode in float:false qat:true; do
  d="$out/run-$m-\${mode%%:*}"
  rm -rf "\$d"
  "$build/qat-train" configs/fashion_$m.ini --quiet --out "\$d" --set train.epochs=1 \\
    --set train.threads=$threads --set quant.enabled=\${mode#*:} --set data.train_limit=$limit \\
    --set data.test_limit=1000 >/dev/null
  s=\$(cut -d, -f6 "\$d/metrics.csv" | tail -1)
  echo "{\"impl\": \"qat-\${mode%%:*}-$m\", \"epoch_seconds\": \$s}"
done
SH
  sides+=(--side "qat-$m=bash $out/ours-$m.sh"
          --side "torch-$m=/usr/bin/python3 benchmarks/torch_graph.py --train --json --model $m --threads $threads --limit $limit")
  ratios+=(--ratio "$m float epoch: qat / pytorch=qat-$m:qat-float-$m.epoch_seconds / torch-$m:pytorch-float-$m.epoch_seconds lower"
           --ratio "$m W8A8 QAT epoch: qat / pytorch eager QAT=qat-$m:qat-qat-$m.epoch_seconds / torch-$m:pytorch-qat-$m.epoch_seconds lower")
done
exec /usr/bin/python3 benchmarks/sidebyside.py --rounds "$rounds" "${sides[@]}" "${ratios[@]}"
