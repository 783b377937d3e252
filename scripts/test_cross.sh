#!/usr/bin/env bash
# Cross-builds the runtime core for aarch64 (-Druntime_only=true, Debian's
# gcc-aarch64-linux-gnu; cross/aarch64-linux-gnu.ini) into build-aarch64/ and
# runs its suite under qemu-aarch64: the kernel tester (ref, neon-plain,
# neon-dot; and with QEMU_CPU=cortex-a53, a CPU without the dot-product
# extension) and the embedded C model against the x86 logits. About a
# minute. scripts/setup.sh --test installs what it needs
# (gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user).
#
# With QAT_CROSS_MODEL=M.int8.h5 and QAT_CROSS_IMAGES=IDX (raw, not gzip)
# it also compiles that model in (x86 build/qat-export --format c), runs it
# on the images with every NEON path under qemu, and demands the logits of
# x86 `qat-infer --isa ref` byte for byte (the full CNN on the 10k test set
# takes a few minutes). QAT_CROSS_X86_BUILD names the x86 build (build).
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

if [[ -n "${QAT_CROSS_MODEL:-}" ]]; then
  x86=${QAT_CROSS_X86_BUILD:-build}
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  labels=${QAT_CROSS_LABELS:-${QAT_CROSS_IMAGES/images-idx3/labels-idx1}}
  "$x86/qat-infer" "$QAT_CROSS_MODEL" --images "$QAT_CROSS_IMAGES" --labels "$labels" \
    --isa ref --threads 2 --dump-logits "$tmp/x86.logits"
  "$x86/qat-export" "$QAT_CROSS_MODEL" --format c -o "$tmp/model" --name model >/dev/null
  aarch64-linux-gnu-gcc -O2 -std=gnu11 -Iinclude -Isrc -I"$tmp" -DQAT_RT_HAVE_NEON \
    -DQAT_E2E_MODEL_H='"model.h"' -DQAT_E2E_MODEL_FN=model_model \
    tests/runtime_only/embedded_e2e.c "$tmp/model.c" build-aarch64/src/runtime/libqat_rt.a \
    build-aarch64/src/core/libqat_core.a -lpthread -lm -o "$tmp/e2e"
  # ref is skipped past the first 100 images (x86 already compared it)
  for cpu in max cortex-a53; do
    QEMU_CPU=$cpu qemu-aarch64 -L /usr/aarch64-linux-gnu "$tmp/e2e" "$QAT_CROSS_IMAGES" \
      "$tmp/x86.logits" 100 once
  done
fi
