#!/usr/bin/env bash
# CNN inference side by side: our int8 runtime and our fp32 forward
# (bench-infer) against PyTorch 1.13's quantized model and its fp32 model
# (benchmarks/torch_infer.py), alternating for ROUNDS rounds so that both
# see the same machine load; prints medians and the ratios. The machine is
# shared and noisy: compare ratios, and rerun. Needs Debian's python3-torch
# for the peer (installed on demand; never a dependency of qat itself).
# usage: benchmarks/infer_vs_torch.sh [THREADS] [ROUNDS] [BUILD_DIR] [--checkpoint H5]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
threads=${1:-2}
rounds=${2:-3}
build=${3:-build}
shift $(($# < 3 ? $# : 3))
if [[ ! -x "$build/benchmarks/bench-infer" ]]; then
  [[ "$build" == build ]] && scripts/setup.sh >/dev/null
  ninja -C "$build" benchmarks/bench-infer >/dev/null
fi
if ! /usr/bin/python3 -c "import torch" 2>/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-torch >/dev/null
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for ((r = 1; r <= rounds; r++)); do
  "$build/benchmarks/bench-infer" --json --threads "$threads" --seconds 2 --repeats 3 "$@" \
    >>"$out/ours.jsonl"
  /usr/bin/python3 benchmarks/torch_infer.py --json --threads "$threads" --seconds 2 \
    --repeats 3 >>"$out/torch.jsonl"
done
/usr/bin/python3 - "$out" "$threads" "$rounds" <<'PY'
import json, statistics, sys
d, threads, rounds = sys.argv[1], sys.argv[2], sys.argv[3]
rows = {}
def add(name, batch, v):
    rows.setdefault((name, batch), []).append(v)
kern = []
for line in open(f"{d}/ours.jsonl"):
    o = json.loads(line)
    if o.get("impl") in ("qat-int8", "qat-fp32"):
        name = o["impl"] + (f" ({o['isa']})" if "isa" in o else "")
        add(name, 1, o["batch1"]); add(name, 64, o["batch64"])
    elif "kernels" in o:
        kern.append(o)
for line in open(f"{d}/torch.jsonl"):
    o = json.loads(line)
    add(o["impl"], o["batch"], o["images_per_second"])
med = {k: statistics.median(v) for k, v in rows.items()}
names = sorted({k[0] for k in med}, key=lambda n: (not n.startswith("qat"), n))
print(f"images/s, {threads} threads, median of {rounds} rounds (each the median of 3 x 2 s)")
print(f"  {'':28s} {'batch 1':>10s} {'batch 64':>10s}")
for n in names:
    print(f"  {n:28s} {med[(n, 1)]:10.1f} {med[(n, 64)]:10.1f}")
q8 = [n for n in names if n.startswith("qat-int8")][0]
def ratio(a, b, batch):
    return med[(a, batch)] / med[(b, batch)]
print("ratios")
for other in ("pytorch-int8-onednn", "qat-fp32", "pytorch-fp32"):
    print(f"  {q8} / {other:20s} batch 1: {ratio(q8, other, 1):6.2f}x   batch 64: {ratio(q8, other, 64):6.2f}x")
for k in kern[-1:]:
    peak = k["peak_gmacs"]
    for key, v in k.items():
        if key.endswith("_gmacs") and key != "peak_gmacs":
            pct = f" = {100 * v / peak:.1f}% of the {peak:.1f} GMAC/s peak" if peak else ""
            print(f"  kernel {key[:-6]:6s} ({k['kernels']}, 1 thread): {v:.1f} GMAC/s{pct}")
PY
