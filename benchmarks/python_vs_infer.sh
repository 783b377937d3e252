#!/usr/bin/env bash
# The qat_runtime Python module against qat-infer on one model file: the same
# kernels, so the same speed is expected (the module's per-batch overhead is
# a ctypes call). ROUNDS alternating runs over the 60000 MNIST training
# images at batch BATCH, THREADS threads, by benchmarks/sidebyside.py: min /
# median / max images/s of each and the ratio of the medians. Refuses to
# print the ratio (exit 3) when other processes used more than 0.1 core.
# usage: benchmarks/python_vs_infer.sh MODEL.h5 [ROUNDS] [THREADS] [BATCH]
#   BUILD (default build) is the build whose qat-infer and libraries run;
#   DATA (default datasets/mnist, scripts/fetch_mnist.sh) the MNIST folder.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
model=$1
rounds=${2:-7}
threads=${3:-1}
batch=${4:-64}
build=${BUILD:-build}
data=${DATA:-datasets/mnist}
images=$data/train-images-idx3-ubyte
labels=$data/train-labels-idx1-ubyte
common="$model $images $labels --threads $threads --batch $batch"
py="PYTHONPATH=python QAT_RT_LIBDIR=$build/src/runtime/lib /usr/bin/python3 benchmarks/python_infer.py"
exec /usr/bin/python3 benchmarks/sidebyside.py --same-kind --rounds "$rounds" \
  --side "qat-infer=$build/qat-infer $model --images $images --labels $labels --threads $threads --batch $batch --json" \
  --side "python=$py $common" \
  --ratio "python / qat-infer (batch $batch, $threads thread(s))=python:row.images_per_second / qat-infer:row.images_per_second"
