#!/usr/bin/env bash
# Installs the Debian packages qat needs (only those missing), then configures
# and builds into build/. Safe to rerun. Usage: scripts/setup.sh [--test]
#   --test  also installs what the full test suite needs (cross compiler,
#           qemu-user, clang for fuzzing and sanitizers, numpy, h5py, g++).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

# gnuplot-nox: qat-sweep and scripts/plot_metrics.sh draw their plots with it.
# help2man: the installed man pages, made from each tool's --help.
# libprotobuf-c-dev, protobuf-c-compiler, libonnx-dev: qat-export --format onnx
# (protoc-c compiles libonnx-dev's onnx.proto at build time).
# dataset-fashion-mnist: configs/fashion_cnn.ini's data (IDX files in
# /usr/share/datasets/fashion-mnist/).
# libopenmpi-dev, openmpi-bin: data-parallel qat-train / qat-sweep under
# mpirun (-Dmpi) and their tests.
pkgs=(gcc meson ninja-build pkg-config libopenblas-dev libhdf5-dev zlib1g-dev libcriterion-dev
      gnuplot-nox libprotobuf-c-dev protobuf-c-compiler libonnx-dev help2man dataset-fashion-mnist
      libopenmpi-dev openmpi-bin)
if [[ "${1:-}" == "--test" ]]; then
  # python3-numpy: the qat_runtime module's test (h5py for the format
  # cross-check and the layer table); g++: the installed headers as C++.
  # python3-onnx: the ONNX checker; node + npm: ONNX Runtime's WebAssembly
  # build (npm onnxruntime-web, fetched into build/ by tests/onnx/ort_setup.sh)
  pkgs+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user clang libclang-rt-14-dev python3-h5py
         python3-onnx python3-numpy g++)
  # a node from elsewhere (e.g. NodeSource's nodejs, which bundles npm) is kept
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    pkgs+=(nodejs npm)
  fi
fi

missing=()
for p in "${pkgs[@]}"; do
  if ! grep -q "install ok installed" <<<"$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)"; then
    missing+=("$p")
  fi
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=()
  if [[ $(id -u) != 0 ]]; then
    command -v sudo >/dev/null || { echo "setup: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
    sudo_cmd=(sudo)
  fi
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if [[ ! -f build/build.ninja ]]; then
  meson setup build --buildtype=release
fi
ninja -C build
