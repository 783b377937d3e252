#!/usr/bin/env bash
# The graph models of issue 18 side by side with PyTorch 1.13: ResNet-8
# (configs/fashion_resnet8.ini) and the DS-CNN (configs/fashion_dscnn.ini)
# on our int8 runtime (bench-infer --config: seeded weights, activation
# ranges calibrated on real images) against the same networks as PyTorch
# eager quantized models (benchmarks/torch_graph.py: onednn,
# FloatFunctional add_relu for the residual add, quantized ReLU6), batch 1
# and 64, in ROUNDS alternating rounds run by benchmarks/sidebyside.py:
# min / median / max of every figure, and ratios of our median to
# PyTorch's best round. It refuses to print ratios (exit 3) when other
# processes used more than 0.1 core before or during any run. bench-infer
# also reports the depthwise kernel's GMAC/s next to conv2d's (the DS-CNN's
# dw1 and pw1). First it prints benchmarks/graph_footprint.sh's memory
# figures (peak activations per image, static size of the C export), which
# need no quiet machine.
# Needs Debian's python3-torch for the peer (installed on demand; never a
# dependency of qat itself).
# usage: benchmarks/graph_vs_torch.sh [THREADS] [ROUNDS] [BUILD_DIR]
#   env SECONDS_PER=2 REPEATS=3: each figure is the median of REPEATS timed
#   runs of SECONDS_PER seconds (short values only to check the script);
#   QAT_BENCH_FORCE=1 runs on a busy machine (figures printed, ratios withheld;
#   benchmarks/sidebyside.py reads it, as for every side-by-side script)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
threads=${1:-2}
rounds=${2:-3}
build=${3:-build}
secs=${SECONDS_PER:-2}
reps=${REPEATS:-3}
images=/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz
if [[ ! -x "$build/benchmarks/bench-infer" ]]; then
  [[ "$build" == build ]] && scripts/setup.sh >/dev/null
  ninja -C "$build" benchmarks/bench-infer qat-train qat-export qat-infer >/dev/null
fi
if ! /usr/bin/python3 -c "import torch" 2>/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=300 python3-torch >/dev/null
fi
benchmarks/graph_footprint.sh "$build"
echo
timing="--threads $threads --seconds $secs --repeats $reps"
sides=() ratios=()
for m in resnet8 dscnn; do
  sides+=(--side "qat-$m=$build/benchmarks/bench-infer --json $timing --config configs/fashion_$m.ini --images $images"
          --side "torch-$m=/usr/bin/python3 benchmarks/torch_graph.py --json $timing --model $m --images $images")
  for b in 1 64; do
    ratios+=(--ratio "$m int8 batch $b: qat / pytorch int8=qat-$m:qat-int8.batch$b / torch-$m:pytorch-int8-onednn-$m@b$b.images_per_second")
  done
done
exec /usr/bin/python3 benchmarks/sidebyside.py --rounds "$rounds" "${sides[@]}" "${ratios[@]}"
