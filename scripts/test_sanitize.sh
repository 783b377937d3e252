#!/usr/bin/env bash
# Builds the whole project with clang, AddressSanitizer and
# UndefinedBehaviorSanitizer into build-asan/ and runs the whole test suite
# there. Any sanitizer report fails: UBSan does not recover
# (-fno-sanitize-recover=all), every report exits with code 86 (which no
# tool or test expects, so it cannot pass as "bad input" or "other
# failure"), and the test log is searched for reports as well.
# HDF5 and OpenBLAS are not instrumented; the only suppression is HDF5's
# own leak on corrupt files (scripts/lsan.supp says why).
# Usage: scripts/test_sanitize.sh [meson test args...]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
dir=build-asan
flags=-fno-sanitize-recover=all
if [[ ! -f $dir/build.ninja ]]; then
  # debugoptimized: -O2 keeps the suite fast enough for CI; reports need
  # only file:line, so -gline-tables-only (not full -g: the AVX-512 kernels'
  # objects took 93 s to build with it, 63 s without)
  CC=clang meson setup "$dir" --buildtype=debugoptimized \
    -Db_sanitize=address,undefined -Db_lundef=false \
    -Dc_args="$flags -gline-tables-only" -Dc_link_args="$flags"
fi
ninja -C "$dir"
export ASAN_OPTIONS=exitcode=86:detect_leaks=1:strict_string_checks=1
export UBSAN_OPTIONS=exitcode=86:halt_on_error=1:print_stacktrace=1
export LSAN_OPTIONS=exitcode=86:suppressions=$root/scripts/lsan.supp:print_suppressions=0
# Criterion 2.4.1's runner leaks 48 bytes when it runs a suite's tests in
# parallel workers (criterion_run_all_tests, not our code); one worker per
# suite avoids it without a suppression that would also hide leaks in test
# bodies. meson still runs two suites at a time.
export CRITERION_JOBS=1
status=0
meson test -C "$dir" --print-errorlogs --num-processes 2 --timeout-multiplier 4 "$@" || status=$?
# belt and braces: a report that some test swallowed still fails the run
if grep -E -n "ERROR: (Address|Leak)Sanitizer|runtime error:|SUMMARY: (Address|UndefinedBehavior|Leak)Sanitizer" \
     "$dir/meson-logs/testlog.txt"; then
  echo "test_sanitize: sanitizer reports in $dir/meson-logs/testlog.txt" >&2
  status=1
fi
exit $status
