#!/bin/sh
# qat as a meson subproject: a parent project with subprojects/qat (a link to
# this source tree) gets the runtime through dependency('qat-runtime'),
# built with -Druntime_only=true (nothing but a C compiler), and runs
# examples/embedded; a second parent gets dependency('qat-runtime-h5') from
# the full build and runs tests/install/load_model.c on a model file, which
# must give the build's qat-infer --dump-logits bytes. Only the parents'
# targets are built.
# usage: test_subproject.sh BUILD SOURCE MESON QAT_INFER
set -eu
build=$1 src=$2 meson=$3 infer=$4
case $infer in /*) ;; *) infer=$PWD/$infer ;; esac
fail() { echo "FAIL: $*" >&2; exit 1; }
tmp=$(mktemp -d "$build/subproject-test.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

parent() { # DIR DEPENDENCY DEFAULT_OPTIONS SOURCES...
  d=$tmp/$1 dep=$2 opts=$3
  shift 3
  mkdir -p "$d/subprojects"
  ln -s "$src" "$d/subprojects/qat"
  for f in "$@"; do cp "$src/$f" "$d/"; done
  files=$(for f in "$@"; do case $f in *.c) printf "'%s', " "$(basename "$f")" ;; esac; done)
  cat > "$d/meson.build" <<EOT
project('parent', 'c')
dep = dependency('$dep', fallback : 'qat', default_options : [$opts])
executable('prog', $files dependencies : dep)
EOT
  "$meson" setup "$d/b" "$d" > "$d/setup.log" 2>&1 || { cat "$d/setup.log" >&2; fail "$1: meson setup"; }
  ninja -C "$d/b" prog > "$d/ninja.log" 2>&1 || { cat "$d/ninja.log" >&2; fail "$1: ninja prog"; }
}

e=examples/embedded
parent rt qat-runtime "'runtime_only=true'" $e/main.c $e/tiny_cnn.c $e/tiny_cnn.h $e/digits.h
"$tmp/rt/b/prog" > "$tmp/rt.out" || { cat "$tmp/rt.out" >&2; fail "embedded example"; }
grep -q '^10 of 10 correct$' "$tmp/rt.out" || fail "embedded example: $(tail -1 "$tmp/rt.out")"
echo "ok: dependency('qat-runtime') from the subproject (runtime only): examples/embedded 10 of 10"

parent h5 qat-runtime-h5 "'tests=false'" tests/install/load_model.c
images=$src/datasets/mnist-subset/t10k-images-idx3-ubyte
labels=$src/datasets/mnist-subset/t10k-labels-idx1-ubyte
model=$src/$e/tiny_cnn.int8.h5
"$tmp/h5/b/prog" "$model" "$images" "$tmp/prog.logits" > /dev/null || fail "load_model"
"$infer" "$model" --images "$images" --labels "$labels" --dump-logits "$tmp/infer.logits" \
  --json > /dev/null
cmp -s "$tmp/infer.logits" "$tmp/prog.logits" || fail "load_model: logits differ from qat-infer"
echo "ok: dependency('qat-runtime-h5') from the subproject: load_model gives qat-infer's logits"
