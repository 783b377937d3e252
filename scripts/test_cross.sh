#!/usr/bin/env bash
# Cross-builds the runtime core for aarch64 (-Druntime_only=true, Debian's
# gcc-aarch64-linux-gnu; cross/aarch64-linux-gnu.ini) into build-aarch64/ and
# runs its suite under qemu-aarch64: the kernel tester (ref, neon-plain,
# neon-dot; and with QEMU_CPU=cortex-a53, a CPU without the dot-product
# extension) and the embedded C model against the x86 logits. About a
# minute. scripts/setup.sh --test installs what it needs
# (gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user).
# Usage: scripts/test_cross.sh [meson test args]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
for tool in aarch64-linux-gnu-gcc qemu-aarch64; do
  command -v "$tool" >/dev/null || {
    echo "test_cross: $tool not found (apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user)" >&2
    exit 1
  }
done
if [[ ! -f build-aarch64/build.ninja ]]; then
  meson setup build-aarch64 --cross-file cross/aarch64-linux-gnu.ini -Druntime_only=true
fi
ninja -C build-aarch64
meson test -C build-aarch64 --print-errorlogs --num-processes 2 "$@"
