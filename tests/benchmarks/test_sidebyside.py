#!/usr/bin/python3
"""benchmarks/sidebyside.py: the guard refuses ratios next to a busy
process, and the ratios are our median against the peer's best."""
import os
import subprocess
import sys
import time

root = os.environ.get("QAT_SOURCE_ROOT", os.path.join(os.path.dirname(__file__), "..", ".."))
tool = [sys.executable, os.path.join(root, "benchmarks", "sidebyside.py")]


def run(*args):
    return subprocess.run(tool + list(args), capture_output=True, text=True)


def check(cond, what, p=None):
    if not cond:
        print(f"FAIL: {what}")
        if p is not None:
            print(p.stdout, p.stderr)
        sys.exit(1)


# ratio arithmetic, with the guard off (--max-other 100): side a prints
# 1, 2, 3 over the rounds (median 2), side b prints 4, 8, 5 (best 8 when
# higher is better, 4 when lower is better; median 5)
counter = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"sbs-{os.getpid()}")
seq_a = f"n=$(cat {counter}a 2>/dev/null || echo 0); n=$((n+1)); echo $n > {counter}a; " \
        "echo \"{\\\"impl\\\": \\\"x\\\", \\\"v\\\": $n}\""
seq_b = f"n=$(cat {counter}b 2>/dev/null || echo 0); n=$((n+1)); echo $n > {counter}b; " \
        "case $n in 1) v=4;; 2) v=8;; *) v=5;; esac; " \
        "echo \"{\\\"impl\\\": \\\"y\\\", \\\"batch\\\": 64, \\\"v\\\": $v, \\\"isa\\\": \\\"z\\\"}\""
try:
    p = run("--rounds", "3", "--settle", "0.2", "--max-other", "100", "--side", f"a={seq_a}",
            "--side", f"b={seq_b}", "--ratio", "hi=a:x.v / b:y@b64.v",
            "--ratio", "lo=a:x.v / b:y@b64.v lower")
finally:
    for s in "ab":
        if os.path.exists(counter + s):
            os.remove(counter + s)
check(p.returncode == 0, f"exit {p.returncode} with the guard off", p)
check("hi" in p.stdout and "0.250" in p.stdout, "median 2 / best 8 = 0.250", p)
check("0.500" in p.stdout, "median 2 / best (lowest) 4 = 0.500", p)
check("isa=z" in p.stdout, "the side's kernel path is named", p)
check("CPU:" in p.stdout and "family" in p.stdout, "the CPU is named", p)

# a row with a peak loop gives each kernel figure as a share of it
p = run("--rounds", "1", "--settle", "0", "--max-other", "100", "--side",
        "a=echo '{\"kernels\": \"k\", \"peak_gmacs\": 400, \"conv2_gmacs\": 300}'",
        "--ratio", "r=a:kernels.conv2_gmacs_of_peak / a:kernels.peak_gmacs")
check(p.returncode == 0, f"peak row: exit {p.returncode}", p)
check("kernels.conv2_gmacs_of_peak" in p.stdout and "0.75" in p.stdout, "300 / 400 = 0.75", p)
check("kernels.peak_gmacs_of_peak" not in p.stdout, "the peak is not a share of itself", p)

# a busy process next to the run: no ratios, exit 3, the run named
busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
try:
    time.sleep(0.3)
    p = run("--rounds", "1", "--settle", "0.5", "--force", "--side",
            "a=sleep 1; echo '{\"impl\": \"x\", \"v\": 1}'", "--ratio", "r=a:x.v / a:x.v")
    check(p.returncode == 3, f"busy machine: exit {p.returncode}, expected 3", p)
    check("ratios (" not in p.stdout, "busy machine: ratios printed", p)
    check("round 1 of a" in p.stderr and "not quiet" in p.stderr, "busy run not named", p)
    p = run("--rounds", "1", "--settle", "0.5", "--side", "a=echo '{\"impl\": \"x\", \"v\": 1}'")
    check(p.returncode == 3 and "nothing run" in p.stderr, "busy before the start: runs anyway", p)
finally:
    busy.kill()
    busy.wait()

# a side that fails or prints nothing is an error, not a figure
p = run("--rounds", "1", "--settle", "0", "--max-other", "100", "--side", "a=exit 7")
check(p.returncode == 1 and "exit 7" in p.stderr, "failing side", p)
p = run("--rounds", "1", "--settle", "0", "--max-other", "100", "--side", "a=echo hello")
check(p.returncode == 1 and "no JSON" in p.stderr, "side without figures", p)
print("ok")
