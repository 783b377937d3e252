#!/usr/bin/env bash
# Training curves of one qat-train run (scripts/plot_metrics.sh RUN_DIR
# [OUT_PREFIX]; installed as qat-plot-metrics). usage() below is the
# documentation: --help prints it.
set -euo pipefail

# The help text (also the installed qat-plot-metrics' man page, made from it
# by help2man): to stdout for --help, to stderr after bad usage.
usage() {
  cat <<EOF
usage: ${0##*/} RUN_DIR [OUT_PREFIX]

Draws the training curves of one qat-train run from RUN_DIR/metrics.csv:
training loss, train and test accuracy, learning rate, and sparsity when the
file has that column (columns are found by their header names).

  RUN_DIR     a qat-train run folder (it holds metrics.csv)
  OUT_PREFIX  output path without extension (default: RUN_DIR/curves)
  -h, --help  print this help

Writes OUT_PREFIX.png and OUT_PREFIX.svg with gnuplot. Exit status: 0 ok,
2 bad usage or a bad metrics.csv, 1 gnuplot missing or failed.
EOF
}
die() { echo "plot_metrics: $2" >&2; exit "$1"; }

if [[ $# -lt 1 || $# -gt 2 || ${1:-} == -* ]]; then
  [[ ${1:-} == -h || ${1:-} == --help ]] && { usage; exit 0; }
  usage >&2
  exit 2
fi
run=${1%/}
prefix=${2:-$run/curves}
csv=$run/metrics.csv
[[ -d $run ]] || die 2 "$run: no such folder"
[[ -f $csv ]] || die 2 "$csv: no such file (is $run a qat-train run folder?)"
command -v gnuplot >/dev/null || die 1 "gnuplot not found: install gnuplot-nox (scripts/setup.sh does)"

IFS=, read -r -a cols < <(head -n 1 "$csv" | tr -d '\r')
col() { # 1-based index of a header name, 0 when absent
  local i
  for i in "${!cols[@]}"; do
    [[ ${cols[$i]} == "$1" ]] && { echo $((i + 1)); return; }
  done
  echo 0
}
for need in epoch train_loss train_accuracy test_accuracy lr; do
  [[ $(col "$need") != 0 ]] || die 2 "$csv:1: no '$need' column (header: ${cols[*]})"
done
rows=$(($(wc -l < "$csv") - 1))
((rows >= 1)) || die 2 "$csv: no epochs yet (only the header)"
ep=$(col epoch) loss=$(col train_loss) tra=$(col train_accuracy) tea=$(col test_accuracy)
lr=$(col lr) sp=$(col sparsity)

# A numeric row check with the line number, so a damaged file is named.
awk -F, -v n="$(head -n 1 "$csv" | awk -F, '{print NF}')" -v f="$csv" 'NR > 1 {
  if (NF != n) { printf "plot_metrics: %s:%d: %d fields, the header has %d\n", f, NR, NF, n > "/dev/stderr"; exit 2 }
}' "$csv" || exit 2

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
tail -n +2 "$csv" | tr -d '\r' > "$tmp/data.csv"
mkdir -p "$(dirname "$prefix")"

panels=3
[[ $sp != 0 ]] && panels=4
name=$(basename "$(cd "$run" && pwd)")
# Whole-number epoch ticks while they stay readable.
xt="set xtics 1"
((rows > 20)) && xt="set xtics autofreq"

common="set datafile separator ','
set grid lc rgb '#d0d0d0'
set xlabel 'epoch'
$xt
set offsets 0.1, 0.1, graph 0.05, graph 0.05"
# The panels are written out once per terminal (PNG, then SVG).
panels_gp() {
  cat <<EOF
set multiplot layout $((panels == 4 ? 2 : 1)),$((panels == 4 ? 2 : 3)) title 'training curves: $name'
set title 'training loss'
set ylabel 'loss'
unset key
plot '$tmp/data.csv' using $ep:$loss with linespoints lw 2 pt 7 lc rgb '#1f77b4'
set title 'accuracy'
set ylabel 'accuracy (%)'
set key bottom right box opaque
plot '$tmp/data.csv' using $ep:(100*\$$tra) with linespoints lw 2 pt 7 lc rgb '#1f77b4' title 'train', \\
     '$tmp/data.csv' using $ep:(100*\$$tea) with linespoints lw 2 pt 5 lc rgb '#d62728' title 'test'
set title 'learning rate'
set ylabel 'learning rate'
set format y '%g'
unset key
plot '$tmp/data.csv' using $ep:$lr with linespoints lw 2 pt 7 lc rgb '#2ca02c'
EOF
  if [[ $sp != 0 ]]; then
    cat <<EOF
set title 'sparsity'
set ylabel 'zero weights (%)'
set format y '%g'
plot '$tmp/data.csv' using $ep:(100*\$$sp) with linespoints lw 2 pt 7 lc rgb '#9467bd'
EOF
  fi
  echo "unset multiplot"
  echo "set format y '%g'"
}
size="1500,480"
((panels == 4)) && size="1200,860"
{
  echo "$common"
  echo "set terminal pngcairo size $size noenhanced font 'DejaVu Sans,11'"
  echo "set output '$prefix.png'"
  panels_gp
  echo "set terminal svg size $size noenhanced dynamic font 'DejaVu Sans,11'"
  echo "set output '$prefix.svg'"
  panels_gp
  echo "unset output"
} > "$tmp/all.gp"
gnuplot "$tmp/all.gp" 2> "$tmp/err" || { cat "$tmp/err" >&2; die 1 "gnuplot failed"; }
echo "plot_metrics: wrote $prefix.png and $prefix.svg"
