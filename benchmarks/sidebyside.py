#!/usr/bin/python3
"""Side-by-side benchmark driver that a busy machine or a noisy peer cannot fool.

Runs two or more commands ("sides") in alternating rounds, each printing JSON
lines of figures, and reports for every figure the min, median and max over
the rounds, then the requested ratios: our median against the peer's best
(its fastest run), the comparison most favourable to the peer. It names the
CPU (model, family, the SIMD flags that matter) and the kernel path each side
reported.

It refuses to print ratios (exit status 3, with the reason) when the machine
was not quiet: before the first round it samples /proc/stat for --settle
seconds, and around every run it compares the CPU time the whole machine spent
(/proc/stat: user, nice, system, irq, softirq, steal) with the CPU time of the
run itself (wait4's rusage of the child and its descendants). What is left is
other processes' work; more than --max-other cores of it (default 0.10) in any
window makes the figures worthless, because a spinning OpenMP peer collapses
when it loses a core.

Figures: each JSON object printed by a side becomes figures named
"<prefix>.<field>" for its numeric fields, where prefix is its "impl" value
(with "@b<batch>" when it has a "batch" field) or else its first string field's
key; string fields (e.g. "isa") are kept as that side's path description.
An object with a "peak_gmacs" field also gives "<field>_of_peak" for each of
its other "*_gmacs" fields: the kernel's share of the peak loop the same
process measured, which cancels a drift of the machine's speed slower than
one process (read it beside the raw figure: a faster drift does not cancel).

usage: sidebyside.py [--rounds N] [--max-other CORES] [--settle S] [--force]
                     --side NAME=CMD [--side NAME=CMD]...
                     [--ratio 'LABEL=SIDE:FIGURE / SIDE:FIGURE[ higher|lower]']...
  CMD is run by /bin/sh. A ratio compares the first side's median with the
  second side's best (max for "higher", the default: images/s; min for
  "lower": seconds). --force (or QAT_BENCH_FORCE=1 in the environment, for
  trying a benchmark script on a busy machine) runs on even if the machine is
  busy at the start (the ratios are still withheld when it was busy).
  --same-kind: ratios compare median with median (two builds of the same
  program, where neither side is a peer to be favoured).
Exit status: 0 ratios printed; 3 machine not quiet (figures printed, no
ratios); 1 a side failed or printed no figures; 2 bad usage.
"""
import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")
FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx_vnni",
         "amx_int8", "asimd", "asimddp", "sve")


def proc_stat():
    """(busy, steal) CPU seconds of the whole machine since boot."""
    with open("/proc/stat") as f:
        fields = f.readline().split()
    v = [int(x) for x in fields[1:]]
    user, nice, system, _idle, _iowait, irq, softirq = v[:7]
    steal = v[7] if len(v) > 7 else 0
    return (user + nice + system + irq + softirq) / CLK_TCK, steal / CLK_TCK


def cpu_description():
    info = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if ":" not in line:
                    if info:
                        break
                    continue
                k, v = (s.strip() for s in line.split(":", 1))
                info.setdefault(k, v)
    except OSError:
        pass
    model = info.get("model name") or info.get("CPU part") or "unknown CPU"
    family = info.get("cpu family", info.get("CPU architecture", "?"))
    flags = set((info.get("flags") or info.get("Features") or "").split())
    have = [f for f in FLAGS if f in flags]
    return (f"{model} (family {family}, model {info.get('model', '?')}; "
            f"{os.cpu_count()} logical CPUs; flags: {' '.join(have) or 'none of interest'})")


class Window:
    """Machine CPU time minus our own children's, over a span of wall time."""

    def __init__(self):
        self.t0 = time.monotonic()
        self.busy0, self.steal0 = proc_stat()

    def close(self, own_cpu):
        busy, steal = proc_stat()
        wall = max(time.monotonic() - self.t0, 1e-9)
        # /proc/stat and rusage count in clock ticks: allow one tick per CPU
        # for each of the two readings, or a short window reads as busy
        slack = 2.0 * (os.cpu_count() or 1) / CLK_TCK
        other = max(busy - self.busy0 - own_cpu - slack, 0.0)
        return {"wall": wall, "other_cores": other / wall,
                "steal_cores": (steal - self.steal0) / wall}


def run_side(cmd):
    w = Window()
    p = subprocess.Popen(cmd, shell=True, stdout=subprocess.PIPE, text=True)
    out = p.stdout.read()
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    own = ru.ru_utime + ru.ru_stime
    return p.returncode, out, w.close(own)


def figures(out):
    nums, strs = {}, {}
    for line in out.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            o = json.loads(line)
        except json.JSONDecodeError:
            continue
        if "impl" in o:
            prefix = str(o["impl"]) + (f"@b{o['batch']}" if "batch" in o else "")
        else:
            prefix = next((k for k, v in o.items() if isinstance(v, str)), "row")
        for k, v in o.items():
            if isinstance(v, bool) or k in ("batch", "threads", "impl"):
                continue
            if isinstance(v, (int, float)):
                nums[f"{prefix}.{k}"] = float(v)
            elif isinstance(v, str):
                strs[f"{prefix}.{k}"] = v
        # a kernel figure over the peak loop measured by the same process: the
        # machine's speed drifts between rounds (its own peak loop has varied
        # 450-630 GMAC/s here); the fraction cancels a drift slower than one
        # process, not a faster one, so read it beside the raw figure
        peak = o.get("peak_gmacs")
        if isinstance(peak, (int, float)) and peak > 0:
            for k, v in o.items():
                if k.endswith("_gmacs") and k != "peak_gmacs" and isinstance(v, (int, float)):
                    nums[f"{prefix}.{k}_of_peak"] = float(v) / float(peak)
    return nums, strs


def parse_ratio(spec):
    label, _, rest = spec.partition("=")
    sense = "higher"
    parts = rest.split()
    if parts and parts[-1] in ("higher", "lower"):
        sense = parts.pop()
    a, slash, b = " ".join(parts).partition("/")
    if not slash or ":" not in a or ":" not in b:
        raise ValueError(f"--ratio '{spec}': expected LABEL=SIDE:FIGURE / SIDE:FIGURE")
    return label.strip(), tuple(a.strip().split(":", 1)), tuple(b.strip().split(":", 1)), sense


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--max-other", type=float, default=0.10)
    ap.add_argument("--settle", type=float, default=2.0)
    ap.add_argument("--force", action="store_true")
    ap.add_argument("--same-kind", action="store_true")
    ap.add_argument("--side", action="append", default=[])
    ap.add_argument("--ratio", action="append", default=[])
    a = ap.parse_args()
    sides = []
    for s in a.side:
        name, eq, cmd = s.partition("=")
        if not eq or not name or not cmd:
            ap.error(f"--side '{s}': expected NAME=CMD")
        sides.append((name, cmd))
    if len(sides) < 1 or a.rounds < 1:
        ap.error("need at least one --side and --rounds >= 1")
    try:
        ratios = [parse_ratio(r) for r in a.ratio]
    except ValueError as e:
        ap.error(str(e))

    print(f"CPU: {cpu_description()}")
    reasons = []
    w = Window()
    time.sleep(a.settle)
    pre = w.close(0.0)
    print(f"before the runs: other processes used {pre['other_cores']:.3f} cores, "
          f"steal {pre['steal_cores']:.3f} (over {a.settle:.1f} s)")
    if pre["other_cores"] > a.max_other or pre["steal_cores"] > a.max_other:
        reasons.append(f"before the runs other processes used {pre['other_cores']:.2f} cores "
                       f"(steal {pre['steal_cores']:.2f}); the limit is {a.max_other}")
        if not (a.force or os.environ.get("QAT_BENCH_FORCE") == "1"):
            print(f"sidebyside: not quiet: {reasons[0]}; nothing run (--force runs anyway, "
                  "without ratios)", file=sys.stderr)
            top = subprocess.run("ps -eo pcpu,comm --sort=-pcpu | head -6", shell=True,
                                 capture_output=True, text=True).stdout
            print(top, file=sys.stderr)
            return 3

    data = {name: {} for name, _ in sides}
    paths = {name: {} for name, _ in sides}
    worst = 0.0
    for r in range(1, a.rounds + 1):
        for name, cmd in sides:
            rc, out, win = run_side(cmd)
            if rc != 0:
                print(f"sidebyside: side {name} failed (exit {rc}): {cmd}", file=sys.stderr)
                return 1
            nums, strs = figures(out)
            if not nums:
                print(f"sidebyside: side {name} printed no JSON figures: {cmd}", file=sys.stderr)
                return 1
            for k, v in nums.items():
                data[name].setdefault(k, []).append(v)
            paths[name].update(strs)
            worst = max(worst, win["other_cores"], win["steal_cores"])
            print(f"round {r} {name}: {win['wall']:.1f} s, other processes "
                  f"{win['other_cores']:.3f} cores, steal {win['steal_cores']:.3f}", flush=True)
            if win["other_cores"] > a.max_other or win["steal_cores"] > a.max_other:
                reasons.append(f"round {r} of {name}: other processes used "
                               f"{win['other_cores']:.2f} cores (steal "
                               f"{win['steal_cores']:.2f}); the limit is {a.max_other}")

    print(f"\nfigures over {a.rounds} alternating rounds: min / median / max")
    for name, _ in sides:
        desc = ", ".join(f"{k}={v}" for k, v in sorted(paths[name].items()))
        print(f"  [{name}]" + (f" ({desc})" if desc else ""))
        for k, v in data[name].items():
            print(f"    {k:42s} {min(v):12.4g} {statistics.median(v):12.4g} {max(v):12.4g}")
    if reasons:
        print("\nsidebyside: the machine was not quiet, so no ratios are printed:", file=sys.stderr)
        for why in reasons:
            print(f"  {why}", file=sys.stderr)
        return 3
    if ratios:
        kind = "median vs median" if a.same_kind else "our median vs the peer's best"
        print(f"\nratios ({kind}):")
    for label, (sa, fa), (sb, fb), sense in ratios:
        try:
            va, vb = data[sa][fa], data[sb][fb]
        except KeyError as e:
            print(f"sidebyside: ratio {label}: no figure {e}", file=sys.stderr)
            return 1
        ours = statistics.median(va)
        peer = statistics.median(vb) if a.same_kind else (max(vb) if sense == "higher" else min(vb))
        print(f"  {label:40s} {ours / peer:8.3f}  ({sa} {ours:.4g} / {sb} {peer:.4g}, "
              f"{sense} is better)")
    print(f"quiet: other processes used at most {worst:.3f} cores in any run "
          f"(limit {a.max_other})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
