#!/bin/sh
# What a user gets from `meson install`, checked from outside the source
# tree: installs the build into a temporary DESTDIR under the build
# directory, finds the files wherever the configured prefix put them, and
#  - checks the installed set: tools, man pages, exactly the public headers,
#    static and shared libraries with their sonames, pkg-config files, the
#    Python module;
#  - checks that the shared libraries export exactly the functions the
#    installed headers declare (all qat_rt_*: a declaration without
#    QAT_RT_API is hidden and fails here), and that the runtime needs
#    nothing but libc/libm (pthreads are in libc);
#  - builds examples/embedded with `cc ... $(pkg-config --cflags --libs
#    qat-runtime)`, shared and static, and runs it;
#  - builds tests/install/load_model.c (strict C99, the installed headers
#    only; also read as C++) with qat-runtime-h5, shared and static, and
#    demands the installed qat-infer's --dump-logits bytes on two models;
#  - runs the installed Python module from the installed tree, with no
#    QAT_RT_LIBDIR, on the same models: the same bytes again.
# usage: test_install.sh BUILD SOURCE MESON MAKE_MODEL PYTHON|- MAN(yes|no) CC [CFLAGS...]
set -eu
build=$1 src=$2 meson=$3 make_model=$4 py=$5 man=$6 cc=$7
shift 7
cflags="$*"
case $make_model in /*) ;; *) make_model=$PWD/$make_model ;; esac
fail() { echo "FAIL: $*" >&2; exit 1; }

dest=$(mktemp -d "$build/install-test.XXXXXX")
trap 'rm -rf "$dest"' EXIT
"$meson" install -C "$build" --no-rebuild --quiet --destdir "$dest" > "$dest.log" 2>&1 ||
  { cat "$dest.log" >&2; rm -f "$dest.log"; fail "meson install"; }
rm -f "$dest.log"

# Where the prefix put everything (no assumption about prefix or libdir).
one() { # the single installed file matching find arguments "$@"
  found=$(find "$dest" "$@")
  [ -n "$found" ] && [ "$(printf '%s\n' "$found" | wc -l)" -eq 1 ] ||
    fail "expected one installed file for 'find $*', found: ${found:-none}"
  printf '%s\n' "$found"
}
pc=$(one -name qat-runtime.pc)
libso=$(one -name libqat_rt.so)
libdir=$(dirname "$libso")
bindir=$(dirname "$(one -name qat-infer -type f)")
inc=$(dirname "$(dirname "$(one -name runtime.h -path '*/qat/*')")")
[ "$(dirname "$pc")" = "$libdir/pkgconfig" ] || fail "$pc is not in $libdir/pkgconfig"

# ---- the installed set ------------------------------------------------------------------
for t in qat-train qat-export qat-infer qat-sweep qat-plot-metrics; do
  [ -x "$bindir/$t" ] || fail "tool $t not installed in $bindir"
  "$bindir/$t" --help > "$dest/help.txt" || fail "$t --help"
  grep -q "^usage: $t" "$dest/help.txt" || fail "$t --help does not name $t"
  if [ "$man" = yes ]; then
    page=$(one -name "$t.1")
    grep -q "^\.TH \"\\{0,1\\}$(echo "$t" | tr a-z- A-Z-)" "$page" || fail "$page: no .TH"
    # generated from the --help text: its option lines are in the page
    opt=$(grep -o -m1 -- '--[a-z][a-z-]*' "$dest/help.txt" | sed 's/-/\\\\-/g')
    grep -q -- "$opt" "$page" || fail "$page lacks $opt from $t --help"
  fi
done
headers=$(cd "$inc/qat" && ls | tr '\n' ' ')
[ "$headers" = "runtime.h runtime_h5.h status_types.h " ] ||
  fail "installed headers: expected runtime.h runtime_h5.h status_types.h, found $headers"
for l in qat_rt qat_rt_h5; do
  for f in "lib$l.a" "lib$l.so" "lib$l.so.0"; do
    [ -e "$libdir/$f" ] || fail "$libdir/$f not installed"
  done
  soname=$(readelf -d "$libdir/lib$l.so" | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')
  [ "$soname" = "lib$l.so.0" ] || fail "lib$l.so: soname '$soname', expected lib$l.so.0"
done
[ -f "$libdir/pkgconfig/qat-runtime-h5.pc" ] || fail "qat-runtime-h5.pc not installed"
grep -q '^Requires.private: hdf5' "$libdir/pkgconfig/qat-runtime-h5.pc" ||
  fail "qat-runtime-h5.pc: HDF5 is not a private requirement"
needed=$(readelf -d "$libso" | sed -n 's/.*NEEDED.*\[\(.*\)\]/\1/p' | tr '\n' ' ')
for n in $needed; do
  case $n in libc.so.*|libm.so.*|libpthread.so.*|ld-linux*) ;;
    *) fail "libqat_rt.so needs $n: the runtime must need only libc, libm, pthreads" ;;
  esac
done

# ---- build against the installed files with pkg-config, outside the tree ----------------
# The staged files carry the configured prefix: the sysroot maps it into
# DESTDIR. System flags are kept so that a /usr prefix still gives -I/-L.
export PKG_CONFIG_PATH="$libdir/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$dest"
export PKG_CONFIG_ALLOW_SYSTEM_CFLAGS=1 PKG_CONFIG_ALLOW_SYSTEM_LIBS=1
work=$dest/work
mkdir -p "$work/static"
cp "$src/examples/embedded/main.c" "$src/examples/embedded/tiny_cnn.c" \
  "$src/examples/embedded/tiny_cnn.h" "$src/examples/embedded/digits.h" \
  "$src/examples/embedded/tiny_cnn.int8.h5" "$src/tests/install/load_model.c" "$work/"
ln -s "$libdir/libqat_rt.a" "$libdir/libqat_rt_h5.a" "$work/static/"
cd "$work"
case "$(pkg-config --cflags qat-runtime)" in
  *"$dest"*) ;;
  *) fail "pkg-config --cflags qat-runtime does not point into the install: $(pkg-config --cflags qat-runtime)" ;;
esac
# ---- exports: every function the headers declare, nothing else --------------------------
# (the preprocessed headers: no comments, whatever the declarations carry)
exports() { nm -D --defined-only "$1" | awk '$2 ~ /^[TWDBRVi]$/ {print $3}' | sed 's/@.*//' | sort; }
exports "$libdir/libqat_rt.so" > "$dest/rt.sym"
exports "$libdir/libqat_rt_h5.so" > "$dest/h5.sym"
sort "$dest/rt.sym" "$dest/h5.sym" > "$dest/exported"
echo '#include "qat/runtime_h5.h"' |
  $cc $cflags -E -P $(pkg-config --cflags qat-runtime-h5) -x c - > "$dest/headers.i"
grep -o 'qat_rt_[a-z0-9_]*[[:space:]]*(' "$dest/headers.i" | tr -d ' (' | sort -u > "$dest/declared"
if ! cmp -s "$dest/exported" "$dest/declared"; then
  diff "$dest/declared" "$dest/exported" >&2 || true
  fail "exported symbols (>) differ from the functions the installed headers declare (<)"
fi
[ -z "$(sort "$dest/rt.sym" "$dest/h5.sym" | uniq -d)" ] || fail "a symbol is exported twice"
echo "ok: libqat_rt.so exports $(wc -l < "$dest/rt.sym") functions," \
  "libqat_rt_h5.so $(wc -l < "$dest/h5.sym"), exactly those the headers declare;" \
  "libqat_rt.so is $(wc -c < "$(readlink -f "$libso")") bytes, needs: $needed"

# hdf5's own flags, which the sysroot must not move (static link of the reader)
hdf5_libs=$(PKG_CONFIG_SYSROOT_DIR= pkg-config --static --libs hdf5)
export LD_LIBRARY_PATH="$libdir"
cc_run() { echo "+ $cc $cflags $*"; $cc $cflags "$@"; }

# shellcheck disable=SC2046 # pkg-config output is meant to split into words
cc_run -O2 -o embedded main.c tiny_cnn.c $(pkg-config --cflags --libs qat-runtime)
cc_run -O2 -o embedded_static main.c tiny_cnn.c $(pkg-config --cflags qat-runtime) \
  -L"$work/static" $(pkg-config --static --libs qat-runtime)
readelf -d embedded | grep -q 'NEEDED.*libqat_rt\.so\.0' || fail "embedded: not linked to libqat_rt.so.0"
! readelf -d embedded_static | grep -q 'libqat_rt' || fail "embedded_static links a shared libqat_rt"
for prog in embedded embedded_static; do
  ./$prog > $prog.out || { cat $prog.out >&2; fail "$prog"; }
  grep -q '^10 of 10 correct$' $prog.out || fail "$prog: $(tail -1 $prog.out)"
done
echo "ok: examples/embedded built with pkg-config qat-runtime, shared and static: 10 of 10"

strict="-std=c99 -pedantic-errors -Wall -Wextra -Werror"
cc_run $strict -O2 -o load_model load_model.c $(pkg-config --cflags --libs qat-runtime-h5)
cc_run $strict -O2 -o load_model_static load_model.c $(pkg-config --cflags qat-runtime-h5) \
  -L"$work/static" $(pkg-config --static --libs qat-runtime-h5) $hdf5_libs
! readelf -d load_model_static | grep -q 'libqat_rt' || fail "load_model_static links a shared libqat_rt"
if command -v c++ > /dev/null && [ -z "$cflags" ]; then
  echo '#include "qat/runtime_h5.h"
int main() { return qat_rt_status_name(QAT_OK) == nullptr; }' > cxx.cc
  c++ -std=c++11 -Wall -Werror -o cxx cxx.cc $(pkg-config --cflags --libs qat-runtime-h5) ||
    fail "the installed headers do not build as C++"
  ./cxx || fail "C++ program"
fi

images=$src/datasets/mnist-subset/t10k-images-idx3-ubyte
labels=$src/datasets/mnist-subset/t10k-labels-idx1-ubyte
"$make_model" cnn4.h5 cnn 4
for m in tiny_cnn.int8.h5 cnn4.h5; do
  "$bindir/qat-infer" "$m" --images "$images" --labels "$labels" --dump-logits "$m.infer" \
    --json > /dev/null || fail "installed qat-infer on $m"
  for prog in load_model load_model_static; do
    ./$prog "$m" "$images" "$m.$prog" > /dev/null || fail "$prog $m"
    cmp -s "$m.infer" "$m.$prog" || fail "$prog $m: logits differ from qat-infer --dump-logits"
  done
  if [ "$py" != - ]; then
    pymod=$(dirname "$(dirname "$(one -name __init__.py -path '*/qat_runtime/*')")")
    env -u QAT_RT_LIBDIR PYTHONPATH="$pymod" LD_LIBRARY_PATH= "$py" - "$m" "$images" "$m.py" "$libdir" <<'EOF'
import sys
import numpy as np
import qat_runtime
model, images, out, libdir = sys.argv[1:]
px = np.fromfile(images, dtype=np.uint8, offset=16).reshape(-1, 28, 28)
with qat_runtime.Model(model) as m:
    m.run(px, batch=50, threads=2).logits.tofile(out)
maps = open("/proc/self/maps").read()
assert libdir + "/libqat_rt.so" in maps and libdir + "/libqat_rt_h5.so" in maps, \
    "the module did not load the installed libraries"
EOF
    cmp -s "$m.infer" "$m.py" || fail "python $m: logits differ from qat-infer --dump-logits"
  fi
done
also=
[ "$py" = - ] || also=", and the installed Python module"
echo "ok: load_model (C99, installed headers only) shared and static$also: the installed" \
  "qat-infer's logits byte for byte on two models"
