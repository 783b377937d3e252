#!/bin/sh
# Installs ONNX Runtime's WebAssembly build (npm onnxruntime-web, pinned)
# into DIR/node_modules unless it is already there, and prints DIR. Needs
# node and npm, and the npm registry the first time (nothing else: the
# WebAssembly binaries ship inside the package). Concurrent callers wait
# for one another (flock on DIR.lock).
# usage: ort_setup.sh DIR
set -eu
ORT_VERSION=1.23.2 # works with Node 18 and 20; bump deliberately (docs/ONNX.md)
dir=$1
mkdir -p "$dir"
have() {
  [ -f "$dir/node_modules/onnxruntime-web/package.json" ] &&
    grep -q "\"version\": \"$ORT_VERSION\"" "$dir/node_modules/onnxruntime-web/package.json"
}
command -v node >/dev/null || { echo "ort_setup: node not found (scripts/setup.sh --test installs nodejs)" >&2; exit 1; }
command -v npm >/dev/null || { echo "ort_setup: npm not found (scripts/setup.sh --test installs npm)" >&2; exit 1; }
(
  flock 9
  if ! have; then
    echo "ort_setup: installing onnxruntime-web@$ORT_VERSION into $dir" >&2
    [ -f "$dir/package.json" ] || echo '{"name": "qat-onnx-test", "private": true}' > "$dir/package.json"
    npm install --prefix "$dir" --no-audit --no-fund --ignore-scripts --loglevel=error \
      "onnxruntime-web@$ORT_VERSION" >&2
    have || { echo "ort_setup: onnxruntime-web@$ORT_VERSION did not install" >&2; exit 1; }
  fi
) 9>"$dir.lock"
echo "$dir"
