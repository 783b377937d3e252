#!/usr/bin/env bash
# Whether the machine's logical CPUs run the same work at the same speed.
# Data-parallel ranks step in lockstep, so a 2-rank run goes at the pace of
# the slower CPU; on a virtual machine one vCPU can be much slower than the
# other (2026-12-06: CPU 0 took 8.85 ms per step where CPU 1 took 7.2 ms,
# every time, with the machine otherwise idle), and then no scaling figure
# says anything about qat. This runs the same single-thread W8A8 CNN
# training step (bench-train, batch 32: one rank's share of the batch 64 of
# benchmarks/mpi_scaling.sh) pinned to each CPU in turn, ROUNDS alternating
# rounds, and prints each CPU's median step time and the slowest over the
# fastest. benchmarks/mpi_scaling.sh prints it before and after its rounds.
# usage: benchmarks/cpu_balance.sh [BUILD_DIR] [ROUNDS]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
build=${1:-build}
rounds=${2:-3}
ncpu=$(nproc)
if ! command -v taskset >/dev/null; then
  echo "cpu_balance: taskset (util-linux) not found" >&2
  exit 2
fi
times=()
for ((r = 0; r < rounds; r++)); do
  for ((c = 0; c < ncpu; c++)); do
    line=$(taskset -c "$c" "$build/benchmarks/bench-train" configs/mnist_cnn.ini --threads 1 \
      --steps 60 --warmup 5 --mode quant --set train.batch_size=32 | grep '^step ms')
    # "step ms (min / median of 60 single steps, ...): w8a8 MIN / MEDIAN"
    times[c]+="$(awk '{print $NF}' <<<"$line") "
  done
done
args=()
for ((c = 0; c < ncpu; c++)); do args+=("${times[c]}"); done
/usr/bin/python3 - "${args[@]}" <<'PY'
import statistics, sys
med = [statistics.median(float(x) for x in s.split()) for s in sys.argv[1:]]
print("per-CPU speed (W8A8 CNN training step, batch 32, 1 thread pinned, median of each "
      "CPU's medians): " + ", ".join(f"cpu{c} {m:.2f} ms" for c, m in enumerate(med)))
skew = max(med) / min(med)
note = ("" if skew <= 1.05 else
        ": ranks in lockstep go at the slowest CPU's pace, so a scaling figure from this "
        "machine is bounded by it")
print(f"slowest / fastest CPU: {skew:.3f}{note}")
PY
