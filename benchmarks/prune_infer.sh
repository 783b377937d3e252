#!/usr/bin/env bash
# qat-infer on two integer models side by side, e.g. the dense W8A8 CNN and
# its channel-pruned twin (configs/mnist_cnn_channel50.ini): ROUNDS
# alternating runs over the 60000 MNIST training images (long enough to time;
# accuracy is reported on them too), run by benchmarks/sidebyside.py: min /
# median / max images/s of each and the ratio of the medians. Refuses to
# print the ratio (exit 3) when other processes used more than 0.1 core.
# usage: benchmarks/prune_infer.sh DENSE.h5 PRUNED.h5 [ROUNDS] [THREADS] [BATCH]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
dense=$1
pruned=$2
rounds=${3:-7}
threads=${4:-1}
batch=${5:-64}
infer=${QAT_INFER:-build/qat-infer}
images=datasets/mnist/train-images-idx3-ubyte
labels=datasets/mnist/train-labels-idx1-ubyte
run() { echo "$infer $1 --images $images --labels $labels --threads $threads --batch $batch --json"; }
exec /usr/bin/python3 benchmarks/sidebyside.py --same-kind --rounds "$rounds" \
  --side "dense=$(run "$dense")" --side "pruned=$(run "$pruned")" \
  --ratio "speed-up, pruned / dense (batch $batch, $threads thread(s))=pruned:row.images_per_second / dense:row.images_per_second"
