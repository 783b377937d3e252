#!/usr/bin/env bash
# One training epoch of the MNIST CNN, qat vs PyTorch 1.13, float and QAT
# (W8A8), batch 64, in ROUNDS alternating rounds run by
# benchmarks/sidebyside.py: min / median / max of each epoch time, and the
# ratios of our median to PyTorch's best (fastest) epoch. It refuses to print
# ratios (exit 3) when other processes used more than 0.1 core before or
# during any run. Needs the full MNIST (scripts/fetch_mnist.sh) and, for the
# peer, Debian's python3-torch (installed on demand; never a dependency of
# qat itself).
# Each round also measures the fp32 FMA peak of each CPU the threads run on
# (bench-ops --fma-peak, pinned) and gives the epoch's arithmetic floor at
# that peak: the CNN's 12,497,664 multiply-adds a training image (conv1
# forward and dw 2 x 225,792, no dx: its input is the data; conv2 forward,
# dx and dw 3 x 3,612,672; fc1 3 x 401,408; fc2 3 x 1,280) times the
# images, over the summed peaks. The machine's speed drifts by tens of
# percent between minutes, so a floor from another run would not do.
# usage: benchmarks/train_vs_torch.sh [THREADS] [LIMIT] [ROUNDS] [BUILD_DIR]
#   LIMIT: training images, 0 = all 60000
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
threads=${1:-2}
limit=${2:-0}
rounds=${3:-3}
build=${4:-build}
[[ "$build" == build ]] && scripts/setup.sh >/dev/null
scripts/fetch_mnist.sh >/dev/null
if ! /usr/bin/python3 -c "import torch" 2>/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=300 python3-torch >/dev/null
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
# our side: both modes, one JSON line each (epoch_seconds from metrics.csv)
cat >"$out/ours.sh" <<SH
set -e
for mode in float:false qat:true; do
  d="$out/run-\${mode%%:*}"
  rm -rf "\$d"
  "$build/qat-train" configs/mnist_cnn.ini --quiet --out "\$d" --set train.epochs=1 \\
    --set train.threads=$threads --set quant.enabled=\${mode#*:} --set data.train_limit=$limit \\
    --set data.test_limit=1000 >/dev/null
  s=\$(cut -d, -f6 "\$d/metrics.csv" | tail -1)
  echo "{\"impl\": \"qat-\${mode%%:*}\", \"epoch_seconds\": \$s}"
done
peaks=0
for ((i = 0; i < $threads; i++)); do
  p=\$(taskset -c \$((i % $(nproc))) "$build/benchmarks/bench-ops" --fma-peak |
      sed -n 's/.*"gfma": \([0-9.]*\).*/\1/p')
  peaks=\$(awk -v a="\$peaks" -v b="\$p" 'BEGIN { print a + b }')
done
images=$limit
[[ \$images -eq 0 || \$images -gt 60000 ]] && images=60000
awk -v p="\$peaks" -v n="\$images" 'BEGIN { printf "{\"impl\": \"qat-floor\", \"epoch_seconds\": %.4f, \"peak_gfma\": %.2f}\n", 12497664 * n / (p * 1e9), p }'
SH
/usr/bin/python3 benchmarks/sidebyside.py --rounds "$rounds" \
  --side "qat=bash $out/ours.sh" \
  --side "torch=/usr/bin/python3 benchmarks/torch_train.py datasets/mnist --json --threads $threads --limit $limit" \
  --ratio "float epoch: qat / pytorch=qat:qat-float.epoch_seconds / torch:pytorch-float.epoch_seconds lower" \
  --ratio "W8A8 QAT epoch: qat / pytorch eager QAT=qat:qat-qat.epoch_seconds / torch:pytorch-qat.epoch_seconds lower" \
  --ratio "fake-quant overhead: qat QAT / qat float=qat:qat-qat.epoch_seconds / qat:qat-float.epoch_seconds lower" \
  --ratio "float epoch / its arithmetic floor at the peak of the round=qat:qat-float.epoch_seconds / qat:qat-floor.epoch_seconds lower"
