#!/usr/bin/env bash
# One training epoch of the MNIST CNN, qat vs PyTorch 1.13, float and QAT,
# side by side in one run (the machines are shared and noisy: compare the
# ratios, and rerun). Needs the full MNIST (scripts/fetch_mnist.sh) and, for
# the peer, Debian's python3-torch (installed on demand; never a dependency
# of qat itself).
# usage: benchmarks/train_vs_torch.sh [THREADS] [LIMIT]   (LIMIT: images, 0 = all)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
threads=${1:-2}
limit=${2:-0}
scripts/setup.sh >/dev/null
scripts/fetch_mnist.sh >/dev/null
if ! /usr/bin/python3 -c "import torch" 2>/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-torch >/dev/null
fi
out=$(mktemp -d)
ours() { # mode -> seconds for one epoch
  build/qat-train configs/mnist_cnn.ini --quiet --out "$out/$1" --set train.epochs=1 \
    --set train.threads="$threads" --set quant.enabled="$2" --set data.train_limit="$limit" \
    --set data.test_limit=1000 >/dev/null
  cut -d, -f6 "$out/$1/metrics.csv" | tail -1
}
qf=$(ours float false)
qq=$(ours quant true)
peer=$(/usr/bin/python3 benchmarks/torch_train.py datasets/mnist --threads "$threads" \
  --limit "$limit")
tf=$(awk '/^float/ {print $3}' <<<"$peer")
tq=$(awk '/^qat/ {print $3}' <<<"$peer")
awk -v qf="$qf" -v qq="$qq" -v tf="$tf" -v tq="$tq" 'BEGIN {
  printf "%-28s %10s %10s %8s\n", "one epoch, batch 64", "qat (s)", "torch (s)", "ratio"
  printf "%-28s %10.2f %10.2f %8.3f\n", "float", qf, tf, qf / tf
  printf "%-28s %10.2f %10.2f %8.3f\n", "QAT (W8A8)", qq, tq, qq / tq
  printf "fake-quant overhead over our float epoch: %+.1f%%\n", 100 * (qq / qf - 1)
}'
rm -rf "$out"
