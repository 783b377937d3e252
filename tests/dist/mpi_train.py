#!/usr/bin/env python3
"""Data-parallel qat-train and qat-sweep under mpirun (tests/dist/meson.build):
mpi_train.py MPIRUN NP CKPT_DIFF QAT_TRAIN QAT_SWEEP.

- one step over NP ranks (a batch norm layer, observers, uneven shards)
  equals the single-process step within float rounding, and two runs over
  NP ranks are bit-identical;
- the optimizer sharded over the ranks gives the whole step's bits, its
  checkpoint resumes as the uninterrupted run, clipping across parts agrees
  within rounding, and a diverging run stops with step and layer;
- [distributed] verify stops a run whose rank 1 drifted (exit 2, message):
  its parameters, or (clustered) its centroids alone;
- --resume with another rank count is refused (exit 2, message);
- a bad gradient_bits is refused with file:line (exit 2), as is a batch
  smaller than the rank count;
- an error on one rank only (its data missing) ends the job: exit 2, no hang;
- qat-sweep over NP ranks runs every run once, isolates a failing one,
  writes the tables on rank 0, and a second pass finds them all cached.
Run with 2 and 3 ranks. The scenarios whose outcome does not depend on the
rank count (a diverging run, verify, bad gradient_bits, mismatched configs,
the sweep's cached second pass) run at 2 ranks only; 3 ranks repeat what
the shard sizes and the optimizer's parts change.
"""
import os
import re
import subprocess
import sys
import tempfile

mpirun, np_, ckpt_diff, qat_train, qat_sweep = sys.argv[1], int(sys.argv[2]), *sys.argv[3:6]
src = os.environ.get("QAT_SOURCE_ROOT", os.path.join(os.path.dirname(__file__), "..", ".."))
data = os.path.join(src, "datasets", "mnist-subset")
MPI = [mpirun, "--allow-run-as-root", "--oversubscribe", "-np"]
# Under the sanitizers (scripts/test_sanitize.sh): OpenMPI's own leaks are
# suppressed by library (scripts/lsan.supp), which needs whole stacks.
for var in ("ASAN_OPTIONS", "LSAN_OPTIONS"):
    if var in os.environ:
        os.environ[var] += ":fast_unwind_on_malloc=0"
        os.environ["OMPI_MCA_mca_base_component_disable_dlclose"] = "1"
failures = []
every = np_ == 2  # the rank-count-independent scenarios (docstring)


def run(args, env=None, timeout=300):
    e = dict(os.environ)
    e.update(env or {})
    p = subprocess.run(args, capture_output=True, text=True, env=e, timeout=timeout)
    return p.returncode, p.stdout + p.stderr


def expect(cond, what, out=""):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        print(out[-3000:])
        failures.append(what)


CONFIG = f"""[data]
dir = {data}
train_limit = 61
test_limit = 100
[train]
epochs = 1
batch_size = 61
optimizer = momentum
lr = 0.1
seed = 3
threads = 1
progress = false
[quant]
enabled = true
weight_bits = 8
activation_bits = 8
[distributed]
gradient_bits = 32
[layer.conv1]
type = conv2d
out_channels = 4
kernel = 3
padding = 1
batchnorm = true
activation = relu
[layer.pool1]
type = maxpool2d
kernel = 2
[layer.flatten]
type = flatten
[layer.fc]
type = linear
out_features = 10
"""

with tempfile.TemporaryDirectory() as tmp:
    cfg = os.path.join(tmp, "dp.ini")
    with open(cfg, "w") as f:
        f.write(CONFIG)
    d = lambda name: os.path.join(tmp, name)

    # one step (61 examples: shards of uneven size for 2 and 3 ranks)
    rc, out = run([qat_train, cfg, "--quiet", "--out", d("one")])
    expect(rc == 0, "single-process step", out)
    rc, out = run(MPI + [str(np_), qat_train, cfg, "--quiet", "--out", d("many")])
    expect(rc == 0, f"step over {np_} ranks", out)
    rc, out = run([ckpt_diff, d("one/checkpoint.h5"), d("many/checkpoint.h5"), "1e-5"])
    expect(rc == 0, f"{np_} ranks' step equals one process's within float rounding", out)
    rc, out = run([ckpt_diff, d("one/checkpoint.h5"), d("many/checkpoint.h5"), "0"])
    print("  (exactly equal: %s)" % (rc == 0))
    rc, out = run(MPI + [str(np_), qat_train, cfg, "--quiet", "--out", d("again")])
    rc2, out2 = run([ckpt_diff, d("many/checkpoint.h5"), d("again/checkpoint.h5"), "0"])
    expect(rc == 0 and rc2 == 0, f"two runs over {np_} ranks are bit-identical", out + out2)
    with open(d("many/summary.json")) as f:
        summary = f.read()
    expect(f'"ranks": {np_}' in summary and "gradient_bytes_per_step_per_rank" in summary,
           "summary.json reports ranks and bytes per step", summary)

    # the optimizer sharded over the ranks (the default): each rank's part
    # takes the bits of every rank stepping all of it; a checkpoint holds
    # every rank's optimizer state, so a resume continues as one run would
    adam = os.path.join(tmp, "adam.ini")
    with open(adam, "w") as f:
        # a 2x2 conv of 3 channels: an odd parameter count (5,911; a 32-bit
        # message is padded to 8 bytes, so the gradient is not sent in place)
        f.write(CONFIG.replace("optimizer = momentum", "optimizer = adam")
                .replace("lr = 0.1", "lr = 0.01").replace("epochs = 1", "epochs = 3")
                .replace("out_channels = 4", "out_channels = 3")
                .replace("kernel = 3", "kernel = 2"))
    rc, out = run(MPI + [str(np_), qat_train, adam, "--out", d("sh")])
    rc2, out2 = run(MPI + [str(np_), qat_train, adam, "--out", d("nosh"),
                           "--set", "distributed.shard_optimizer=false"])
    expect(rc == 0 and rc2 == 0 and "optimizer sharded" in out and "optimizer sharded" not in out2,
           "Adam over the ranks, sharded and not", out + out2)
    rc, out = run([ckpt_diff, d("sh/checkpoint.h5"), d("nosh/checkpoint.h5"), "0"])
    expect(rc == 0, "the sharded optimizer's steps are bit-identical to the whole step's", out)
    rc, out = run(MPI + [str(np_), qat_train, adam, "--quiet", "--out", d("shr")],
                  env={"QAT_TEST_STOP_AFTER": "1"})
    rc2, out2 = run(MPI + [str(np_), qat_train, "--resume", d("shr"), "--quiet"])
    rc3, out3 = run([ckpt_diff, d("sh/checkpoint.h5"), d("shr/checkpoint.h5"), "0"])
    expect(rc == 0 and rc2 == 0 and rc3 == 0,
           "a sharded run stopped after epoch 1 and resumed equals the uninterrupted one",
           out + out2 + out3)
    # the clipping norm summed over the ranks' parts: equal within rounding
    rc, out = run(MPI + [str(np_), qat_train, adam, "--quiet", "--out", d("shc"),
                         "--set", "train.grad_clip=0.01"])
    rc2, out2 = run(MPI + [str(np_), qat_train, adam, "--quiet", "--out", d("noshc"),
                           "--set", "train.grad_clip=0.01", "--set",
                           "distributed.shard_optimizer=false"])
    rc3, out3 = run([ckpt_diff, d("shc/checkpoint.h5"), d("noshc/checkpoint.h5"), "1e-6"])
    rc4, out4 = run([ckpt_diff, d("shc/checkpoint.h5"), d("sh/checkpoint.h5"), "1e-3"])
    expect(rc == 0 and rc2 == 0 and rc3 == 0 and rc4 == 1,
           "clipped sharded steps equal the whole step's within rounding (and clipping acts)",
           out + out2 + out3 + out4)
    if every:
        # a diverging run stops on every rank with the step and the layer named
        div = os.path.join(tmp, "div.ini")
        with open(div, "w") as f:
            f.write(CONFIG.replace("optimizer = momentum", "optimizer = sgd\nloss = mse")
                    .replace("lr = 0.1", "lr = 10").replace("epochs = 1", "epochs = 40")
                    .replace("batchnorm = true", "batchnorm = false"))
        rc, out = run(MPI + [str(np_), qat_train, div, "--quiet", "--out", d("div")], timeout=120)
        expect(rc == 1 and re.search(r"step \d+: (the loss|non-finite)", out) is not None
               and "layer '" in out, "a diverging sharded run stops with step and layer", out)

        # verify catches a rank that drifted
        rc, out = run(MPI + [str(np_), qat_train, cfg, "--quiet", "--out", d("drift"),
                             "--set", "distributed.verify=true"],
                      env={"QAT_TEST_PERTURB_RANK": "1"})
        expect(rc == 2 and "rank(s) 1 differ from rank 0" in out, "verify stops a drifted rank", out)
        rc, out = run(MPI + [str(np_), qat_train, cfg, "--quiet", "--out", d("noverify"),
                             "--set", "distributed.verify=true"])
        expect(rc == 0, "verify passes ranks that agree", out)
        # ... and one whose rank 1 holds another centroid (the weights still agree)
        clustered = os.path.join(tmp, "cluster.ini")
        with open(clustered, "w") as f:
            f.write(CONFIG + "[cluster]\nclusters = 4\nstart = 0\n")
        rc, out = run(MPI + [str(np_), qat_train, clustered, "--quiet", "--out", d("cdrift"),
                             "--set", "distributed.verify=true"],
                      env={"QAT_TEST_PERTURB_RANK": "1", "QAT_TEST_PERTURB_CLUSTER": "1"})
        expect(rc == 2 and "cluster centroids or assignments of rank(s) 1 differ from rank 0" in out,
               "verify stops a rank whose centroids drifted", out)
        rc, out = run(MPI + [str(np_), qat_train, clustered, "--quiet", "--out", d("cagree"),
                             "--set", "distributed.verify=true"])
        expect(rc == 0, "verify passes clustered ranks that agree", out)

    # --resume with another rank count
    for other in ([mpirun, "--allow-run-as-root", "--oversubscribe", "-np", str(np_ - 1)], []):
        rc, out = run(other + [qat_train, "--resume", d("many"), "--quiet"])
        expect(rc == 2 and f"written by a run over {np_} ranks" in out,
               f"--resume over {np_ - 1 if other else 'no mpirun'} refused", out)

    # bad input: exit 2 with a message, no hang
    if every:
        with open(cfg) as f:
            line = next(i for i, l in enumerate(f.read().splitlines(), 1) if l.startswith("gradient_bits"))
        bad = os.path.join(tmp, "bad.ini")
        with open(bad, "w") as f:
            f.write(CONFIG.replace("gradient_bits = 32", "gradient_bits = 3"))
        rc, out = run(MPI + [str(np_), qat_train, bad, "--quiet", "--out", d("bad")])
        expect(rc == 2 and f"bad.ini:{line}" in out and "gradient_bits" in out,
               "gradient_bits = 3 refused with file:line", out)
    rc, out = run(MPI + [str(np_), qat_train, cfg, "--quiet", "--out", d("small"),
                         "--set", f"train.batch_size={np_ - 1}"])
    expect(rc == 2 and "every rank needs at least one example" in out,
           "a batch smaller than the rank count refused", out)
    # rank 1 alone fails (its data is missing): the job ends, nobody waits
    mpmd = [mpirun, "--allow-run-as-root", "--oversubscribe",
            "-np", "1", qat_train, cfg, "--quiet", "--out", d("mpmd"), ":",
            "-np", str(np_ - 1), qat_train, cfg, "--quiet", "--out", d("mpmd"),
            "--set", "data.dir=/nonexistent"]
    rc, out = run(mpmd, timeout=120)
    # with 3 ranks, ranks 1 and 2 both fail: whichever aborts first ends the
    # job, so only one of their messages is certain to be printed
    expect(rc == 2 and re.search(r"rank [1-9][0-9]*: error", out) is not None,
           "one rank's error ends the job", out)
    if every:
        # every rank must train the same configuration
        mpmd = [mpirun, "--allow-run-as-root", "--oversubscribe",
                "-np", "1", qat_train, cfg, "--quiet", "--out", d("mix"), ":",
                "-np", str(np_ - 1), qat_train, cfg, "--quiet", "--out", d("mix"),
                "--set", "train.lr=0.2"]
        rc, out = run(mpmd, timeout=120)
        expect(rc == 2 and "different configuration than rank 0" in out,
               "ranks with different configs refused", out)

    # qat-sweep: runs handed out over the ranks
    with open(d("sw.ini"), "w") as f:
        f.write("[sweep]\nbase = dp.ini\n[grid.quant]\nweight_bits = 2, 4, 8\n"
                "[runs]\nbroken = layer.fc.in_features=999\n")
    rc, out = run(MPI + [str(np_), qat_sweep, d("sw.ini"), "--out", d("swout"), "--no-plots"])
    with open(d("swout/results.csv")) as f:
        csv = f.read()
    expect(rc == 1 and csv.count(",ok,") == 3 and csv.count(",failed,") == 1
           and out.count("] w") == 3 and "[4/4]" in out,
           f"qat-sweep over {np_} ranks: 3 ok, the broken run isolated", out + csv)
    if every:
        rc, out = run(MPI + [str(np_), qat_sweep, d("sw.ini"), "--out", d("swout"), "--no-plots"])
        expect(rc == 1 and "3 finished earlier (cached)" in out, "a second pass reuses the runs", out)

sys.exit(1 if failures else 0)
