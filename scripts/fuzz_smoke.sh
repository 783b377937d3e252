#!/usr/bin/env bash
# Builds the libFuzzer targets of fuzz/ (clang, ASan + UBSan, -Dfuzz=true)
# into build-fuzz/ and runs each for a short while (default 20 s, two at a
# time) from its committed seed corpus fuzz/corpus/<target>/. Any crash,
# sanitizer report, leak, timeout or out-of-memory fails; the input that
# did it is kept as build-fuzz/artifacts/<target>-crash-* (rerun it with
# build-fuzz/fuzz/<target> FILE). New inputs go to a scratch corpus, never
# into fuzz/corpus.
# Usage: scripts/fuzz_smoke.sh [SECONDS] [TARGET...]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
secs=${1:-20}
shift || true
dir=build-fuzz
flags=-fno-sanitize-recover=all
if [[ ! -f $dir/build.ninja ]]; then
  CC=clang meson setup "$dir" --buildtype=debugoptimized -Dfuzz=true -Dtests=false \
    -Db_sanitize=address,undefined -Db_lundef=false \
    -Dc_args="$flags -gline-tables-only" -Dc_link_args="$flags"
fi
targets=("$@")
if ((${#targets[@]} == 0)); then
  for f in fuzz/fuzz_*.c; do
    t=$(basename "$f" .c)
    # a target whose module is not in this tree yet is not built (fuzz/meson.build)
    grep -q "'$t'" fuzz/meson.build && targets+=("$t")
  done
fi
ninja -C "$dir" "${targets[@]/#/fuzz/}"
mkdir -p "$dir/artifacts"
export ASAN_OPTIONS=detect_leaks=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export LSAN_OPTIONS=suppressions=$root/scripts/lsan.supp:print_suppressions=0

run_one() {
  local t=$1 scratch
  scratch=$(mktemp -d)
  local rc=0
  "$dir/fuzz/$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$dir/artifacts/$t-" \
    "$scratch" "fuzz/corpus/$t" > "$dir/artifacts/$t.log" 2>&1 || rc=$?
  rm -rf "$scratch"
  local runs
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/artifacts/$t.log")
  if ((rc != 0)); then
    echo "fuzz_smoke: $t FAILED (exit $rc); log: $dir/artifacts/$t.log" >&2
    grep -E -A12 "ERROR|runtime error|SUMMARY" "$dir/artifacts/$t.log" | head -40 >&2 || true
  else
    echo "fuzz_smoke: $t ok, ${runs:-?} runs in ${secs} s"
  fi
  return $rc
}

status=0
pids=()
names=()
for t in "${targets[@]}"; do
  run_one "$t" &
  pids+=($!)
  names+=("$t")
  # two at a time: CI machines have two cores
  if ((${#pids[@]} == 2)); then
    wait "${pids[0]}" || status=1
    pids=("${pids[@]:1}")
  fi
done
for p in "${pids[@]}"; do
  wait "$p" || status=1
done
exit $status
