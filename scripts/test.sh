#!/usr/bin/env bash
# Runs the full test suite: installs what it needs, builds, runs every
# Criterion suite with meson. Needs no download (tests use the committed
# MNIST subset).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
scripts/setup.sh --test
meson test -C build --print-errorlogs --num-processes 2 "$@"
scripts/test_sanitize.sh
scripts/fuzz_smoke.sh
