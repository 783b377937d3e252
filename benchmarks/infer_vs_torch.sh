#!/usr/bin/env bash
# CNN inference side by side: our int8 runtime and our fp32 forward
# (bench-infer) against PyTorch 1.13's quantized model and its fp32 model
# (benchmarks/torch_infer.py), in ROUNDS alternating rounds run by
# benchmarks/sidebyside.py: min / median / max of every figure, and ratios
# of our median to PyTorch's best round. It refuses to print ratios (exit 3)
# when other processes used more than 0.1 core before or during any run.
# Needs Debian's python3-torch for the peer (installed on demand; never a
# dependency of qat itself).
# usage: benchmarks/infer_vs_torch.sh [THREADS] [ROUNDS] [BUILD_DIR] [bench-infer options]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
threads=${1:-2}
rounds=${2:-3}
build=${3:-build}
shift $(($# < 3 ? $# : 3))
if [[ ! -x "$build/benchmarks/bench-infer" ]]; then
  [[ "$build" == build ]] && scripts/setup.sh >/dev/null
  ninja -C "$build" benchmarks/bench-infer >/dev/null
fi
if ! /usr/bin/python3 -c "import torch" 2>/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=300 python3-torch >/dev/null
fi
ours="$build/benchmarks/bench-infer --json --threads $threads --seconds 2 --repeats 3 $*"
peer="/usr/bin/python3 benchmarks/torch_infer.py --json --threads $threads --seconds 2 --repeats 3"
exec /usr/bin/python3 benchmarks/sidebyside.py --rounds "$rounds" \
  --side "qat=$ours" --side "torch=$peer" \
  --ratio "int8 batch 1: qat / pytorch int8=qat:qat-int8.batch1 / torch:pytorch-int8-onednn@b1.images_per_second" \
  --ratio "int8 batch 64: qat / pytorch int8=qat:qat-int8.batch64 / torch:pytorch-int8-onednn@b64.images_per_second" \
  --ratio "batch 64: qat int8 / pytorch fp32=qat:qat-int8.batch64 / torch:pytorch-fp32@b64.images_per_second" \
  --ratio "batch 64: qat int8 / qat fp32=qat:qat-int8.batch64 / qat:qat-fp32.batch64"
