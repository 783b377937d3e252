#!/usr/bin/env bash
# qat-infer on two integer models side by side, e.g. the dense W8A8 CNN and
# its channel-pruned twin (configs/mnist_cnn_channel50.ini): ROUNDS
# alternating runs over the 10000 MNIST test images, the median images/s of
# each and their ratio. The machines are shared and noisy: compare ratios,
# and rerun.
# usage: benchmarks/prune_infer.sh DENSE.h5 PRUNED.h5 [ROUNDS] [THREADS] [BATCH]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
dense=$1
pruned=$2
rounds=${3:-7}
threads=${4:-1}
batch=${5:-64}
infer=${QAT_INFER:-build/qat-infer}
images=datasets/mnist/t10k-images-idx3-ubyte
labels=datasets/mnist/t10k-labels-idx1-ubyte
ips() { # model -> images/s of one run
  "$infer" "$1" --images "$images" --labels "$labels" --threads "$threads" --batch "$batch" \
    --json | sed 's/.*"images_per_second": \([0-9.]*\).*/\1/'
}
median() { sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
d=()
p=()
for ((i = 0; i < rounds; i++)); do
  d+=("$(ips "$dense")")
  p+=("$(ips "$pruned")")
done
md=$(printf '%s\n' "${d[@]}" | median)
mp=$(printf '%s\n' "${p[@]}" | median)
acc() { "$infer" "$1" --images "$images" --labels "$labels" --json | sed 's/.*"accuracy": \([0-9.]*\),.*/\1/'; }
printf 'model                      accuracy  images/s (median of %d, %d thread(s), batch %d)\n' \
  "$rounds" "$threads" "$batch"
printf '%-26s %8s  %8.0f\n' "$(basename "$(dirname "$dense")")/$(basename "$dense")" "$(acc "$dense")" "$md"
printf '%-26s %8s  %8.0f\n' "$(basename "$(dirname "$pruned")")/$(basename "$pruned")" "$(acc "$pruned")" "$mp"
awk -v a="$md" -v b="$mp" 'BEGIN {printf "speed-up %.2fx\n", b / a}'
