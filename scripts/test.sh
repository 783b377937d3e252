#!/usr/bin/env bash
# Runs the full test suite: installs what it needs, builds, runs every
# Criterion suite with meson, then the aarch64 cross build under qemu
# (scripts/test_cross.sh: kernel tester and embedded model on NEON), the
# whole suite again under ASan+UBSan (scripts/test_sanitize.sh) and a short
# run of every fuzz target (scripts/fuzz_smoke.sh). Needs no download (tests
# use the committed MNIST subset). Extra arguments go to the first meson test.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
scripts/setup.sh --test
meson test -C build --print-errorlogs --num-processes 2 "$@"
scripts/test_cross.sh
scripts/test_sanitize.sh
scripts/fuzz_smoke.sh
