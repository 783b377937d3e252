#!/usr/bin/env bash
# Quick start: install, build, fetch MNIST, train. Extra arguments go to
# qat-train, e.g. scripts/run.sh --set train.epochs=1
# The config defaults to configs/mnist_cnn.ini; give another as the first
# argument (a path ending in .ini) to train that instead.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
config=configs/mnist_cnn.ini
if [[ $# -gt 0 && "$1" == *.ini ]]; then
  config=$1
  shift
fi
scripts/setup.sh
scripts/fetch_mnist.sh
exec build/qat-train "$config" "$@"
