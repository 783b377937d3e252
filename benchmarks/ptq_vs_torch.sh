#!/usr/bin/env bash
# Post-training quantization side by side: qat-ptq (round-to-nearest, W8A8,
# the shipped CNN's [quant] settings) against PyTorch 1.13's eager-mode
# static quantization (benchmarks/torch_ptq.py: onednn, fused conv+relu,
# default observers) of the same float model -- a qat-train checkpoint of
# configs/mnist_cnn.ini trained with quantization off, whose weights the
# peer loads -- both calibrated on 1000 training images, in ROUNDS
# alternating rounds run by benchmarks/sidebyside.py: min / median / max of
# the test accuracies and of the quantization's wall time (qat: the
# summary's ptq_seconds, calibration and compensation; PyTorch: fuse,
# prepare, calibration, convert; neither counts data loading or the test
# evaluation). The ratio is our median time over PyTorch's best; it is
# withheld (exit 3) when other processes used more than 0.1 core.
# usage: benchmarks/ptq_vs_torch.sh CHECKPOINT [THREADS] [ROUNDS] [BUILD_DIR] [DATA_DIR]
#   CHECKPOINT: e.g. runs/float/checkpoint.h5 from
#     qat-train configs/mnist_cnn.ini --set quant.enabled=false --out runs/float
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ckpt=${1:?usage: benchmarks/ptq_vs_torch.sh CHECKPOINT [THREADS] [ROUNDS] [BUILD_DIR] [DATA_DIR]}
threads=${2:-2}
rounds=${3:-3}
build=${4:-build}
data=${5:-datasets/mnist}
if [[ ! -x "$build/qat-ptq" ]]; then
  [[ "$build" == build ]] && scripts/setup.sh >/dev/null
  ninja -C "$build" qat-ptq >/dev/null
fi
[[ "$data" == datasets/mnist ]] && scripts/fetch_mnist.sh >/dev/null
if ! /usr/bin/python3 -c "import torch, h5py" 2>/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=300 \
    python3-torch python3-h5py >/dev/null
fi
out=$(mktemp -d /tmp/qat-ptq-bench-XXXXXX)
trap 'rm -rf "$out"' EXIT
summary="import json; s = json.load(open('$out/summary.json')); print(json.dumps({'impl': \
'qat-ptq', 'float_accuracy': s['float_accuracy'], 'int8_accuracy': s['int8_accuracy'], \
'agreement': s['agreement'], 'ptq_seconds': s['ptq_seconds']}))"
ours="$build/qat-ptq $ckpt --set data.dir=$data --set train.threads=$threads \
--calibration-images 1000 --out $out --quiet && /usr/bin/python3 -c \"$summary\""
peer="/usr/bin/python3 benchmarks/torch_ptq.py $ckpt --data $data --threads $threads \
--calibration-images 1000 --json"
exec /usr/bin/python3 benchmarks/sidebyside.py --rounds "$rounds" \
  --side "qat=$ours" --side "torch=$peer" \
  --ratio "PTQ wall time: qat / pytorch=qat:qat-ptq.ptq_seconds / torch:pytorch-ptq-onednn.ptq_seconds lower"
