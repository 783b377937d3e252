#!/usr/bin/env bash
# Runs the full test suite: installs what it needs, builds, runs every
# Criterion suite with meson (the mpirun tests with 2 and 3 ranks among
# them), then the aarch64 cross build under qemu
# (scripts/test_cross.sh: kernel tester and embedded model on NEON), the
# whole suite again under ASan+UBSan (scripts/test_sanitize.sh) and a short
# run of every fuzz target (scripts/fuzz_smoke.sh). Needs no download (tests
# use the committed MNIST subset). Extra arguments go to the first meson test.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
scripts/setup.sh --test
# setup.sh installs OpenMPI, so the mpirun tests (tests/dist) must be built
# (the list captured first: `| grep -q` under pipefail fails when grep
# stops reading early and meson dies of the closed pipe)
tests=$(meson test -C build --list 2>/dev/null || true)
grep -q test_mpi_train_np2 <<<"$tests" ||
  { echo "test: build/ has no MPI tests (reconfigure: meson setup --reconfigure build -Dmpi=enabled)" >&2; exit 1; }
meson test -C build --print-errorlogs --num-processes 2 "$@"
scripts/test_cross.sh
scripts/test_sanitize.sh
scripts/fuzz_smoke.sh
