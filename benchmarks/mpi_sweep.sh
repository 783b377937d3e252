#!/usr/bin/env bash
# A 16-run sweep (W {2,3,4,8} x A {2,4,6,8} of configs/mnist_cnn.ini, one
# epoch on LIMIT training images each, 1 thread per run) done by one
# qat-sweep process running one run at a time (--jobs 1) and by
# `mpirun -np 2 qat-sweep`, whose two ranks take runs as they free up; in
# ROUNDS alternating rounds run by benchmarks/sidebyside.py (min / median /
# max wall seconds, ratio of the medians). Every round starts from an empty
# output folder, so no run is reused. It refuses to print the ratio (exit 3)
# when other processes used more than 0.1 core before or during any run: run
# it on a quiet machine. Issue 19 asks for mpirun -np 2 <= 0.55x of --jobs 1.
# Before and after the rounds it prints the CPUs' balance and the bound it sets.
# Needs the full MNIST (scripts/fetch_mnist.sh) and a build with MPI.
# usage: benchmarks/mpi_sweep.sh [LIMIT] [ROUNDS] [BUILD_DIR]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
limit=${1:-3000}
rounds=${2:-3}
build=${3:-build}
scripts/fetch_mnist.sh >/dev/null
# meson's log is rewritten by every reconfigure; the linked library is not
if ! grep -q libmpi <<<"$(ldd "$build/qat-train")"; then
  echo "mpi_sweep: $build was built without MPI (meson setup -Dmpi=enabled)" >&2
  exit 2
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
cat >"$out/sweep.ini" <<INI
[sweep]
base = $PWD/configs/mnist_cnn.ini
[set.train]
threads = 1
epochs = 1
[set.data]
dir = $PWD/datasets/mnist
train_limit = $limit
test_limit = 1000
[grid.quant]
weight_bits = 2, 3, 4, 8
activation_bits = 2, 4, 6, 8
INI
# one side: NAME (jobs1 or np2); prints one JSON line with the wall time
cat >"$out/side.sh" <<SH
set -e
name=\$1
d="$out/sweep-\$name"
rm -rf "\$d"
t0=\$(date +%s%N)
if [ "\$name" = np2 ]; then
  mpirun --allow-run-as-root -np 2 --bind-to none "$build/qat-sweep" "$out/sweep.ini" \\
    --out "\$d" --no-plots --quiet >/dev/null
else
  "$build/qat-sweep" "$out/sweep.ini" --jobs 1 --out "\$d" --no-plots --quiet >/dev/null
fi
t1=\$(date +%s%N)
n=\$(grep -c . "\$d/results.csv")
[ "\$n" -eq 17 ] || { echo "mpi_sweep: \$name wrote \$((n - 1)) result rows, not 16" >&2; exit 1; }
awk -v n="\$name" -v ns=\$((t1 - t0)) 'BEGIN { printf "{\\"impl\\": \\"%s\\", \\"wall_seconds\\": %.2f}\\n", n, ns / 1e9 }'
SH
# The CPUs' own balance before and after the rounds (benchmarks/cpu_balance.sh)
# and the bound it sets: two ranks that take runs as they free up do the
# work at the sum of the two CPUs' speeds, one process at the faster one's,
# so with no overhead at all the ratio is 1 / (1 + fastest / slowest) at
# best, with --jobs 1 on the faster CPU (0.5 on a balanced machine; 0.549
# with one vCPU 21.6% slower, as on
# 2026-12-07).
balance() {
  local b skew
  b=$(benchmarks/cpu_balance.sh "$build" 2)
  echo "$b"
  skew=$(sed -n 's|^slowest / fastest CPU: \([0-9.]*\).*|\1|p' <<<"$b")
  if [ "$(nproc)" -eq 2 ] && [ -n "$skew" ]; then
    awk -v s="$skew" 'BEGIN { printf "bound this CPU balance sets on the ratio (no overhead): %.3f\n", 1 / (1 + 1 / s) }'
  fi
}
balance
status=0
/usr/bin/python3 benchmarks/sidebyside.py --rounds "$rounds" --same-kind \
  --side "jobs1=bash $out/side.sh jobs1" \
  --side "np2=bash $out/side.sh np2" \
  --ratio "mpirun -np 2 vs --jobs 1 (wall time)=np2:np2.wall_seconds / jobs1:jobs1.wall_seconds lower" || status=$?
balance
exit "$status"
