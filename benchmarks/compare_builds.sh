#!/usr/bin/env bash
# Two builds of qat side by side (e.g. before and after a change to the
# kernels): bench-infer of each build on every kernel path given, in ROUNDS
# alternating rounds run by benchmarks/sidebyside.py, and the ratio of the
# new build's median to the base build's median per path and figure (int8
# images/s at batch 1 and 64, conv2 / fc1 kernel GMAC/s, and those as a
# share of the peak loop the same process measured, which cancels a slow
# drift of the machine's speed between rounds). Refuses to print
# ratios (exit 3) when other processes used more than 0.1 core.
# usage: benchmarks/compare_builds.sh BASE_BUILD NEW_BUILD [ROUNDS] [THREADS] [ISA...]
#   ISA: kernel paths to compare (default: avx2 avx512vnni on x86-64)
#   QAT_BENCH_ARGS: extra bench-infer options, e.g. "--checkpoint run/checkpoint.h5"
#   QAT_BENCH_CPU: with THREADS 1 both builds run pinned to this CPU (default
#     the last one): a one-thread process otherwise lands on whichever vCPU,
#     and on these virtual machines one can be 10-20% slower than the other
#     (benchmarks/cpu_balance.sh), which mixes two speeds into the rounds
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
base=$1
new=$2
rounds=${3:-5}
threads=${4:-2}
shift $(($# < 4 ? $# : 4))
isas=("$@")
((${#isas[@]})) || isas=(avx2 avx512vnni)
args=(--rounds "$rounds")
pin=
if [[ $threads == 1 ]] && command -v taskset >/dev/null; then
  pin="taskset -c ${QAT_BENCH_CPU:-$(($(nproc) - 1))} "
fi
for isa in "${isas[@]}"; do
  for side in base new; do
    b=${!side}
    [[ -x "$b/benchmarks/bench-infer" ]] || { echo "compare_builds: no $b/benchmarks/bench-infer" >&2; exit 2; }
    args+=(--side "$side-$isa=$pin$b/benchmarks/bench-infer --json --isa $isa --threads $threads --seconds 1 --repeats 3 ${QAT_BENCH_ARGS:-}")
  done
  for fig in qat-int8.batch1 qat-int8.batch64 kernels.conv2_gmacs kernels.fc1_gmacs \
             kernels.conv2_gmacs_of_peak kernels.fc1_gmacs_of_peak; do
    args+=(--ratio "$isa $fig: new / base=new-$isa:$fig / base-$isa:$fig")
  done
done
exec /usr/bin/python3 benchmarks/sidebyside.py --same-kind "${args[@]}"
