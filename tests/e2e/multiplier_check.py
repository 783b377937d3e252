#!/usr/bin/env python3
"""docs/ARITHMETIC.md §2, held to its word on trained models: qat-train
trains small CNNs under every weight and activation scheme the config
allows, and for each exported model.int8.h5 this script

  - recomputes every stored (multiplier, shift) from the stored scales with
    the documented formula M = (double)float32(s_in * s_w[c]) / (double)s_out
    and the documented decomposition, and demands equality everywhere;
  - counts the channels where the double product s_in * s_w / s_out would
    have given another multiplier, and demands some (so the check can tell
    the two formulas apart);
  - checks what §2 and FORMAT.md §3 say each scheme stores (weight zero
    points and code ranges, per-tensor scales repeated per channel,
    symmetric activations' zero point 0).

usage: multiplier_check.py QAT_TRAIN SOURCE_ROOT
"""
import math
import os
import subprocess
import sys
import tempfile

import h5py
import numpy as np

sys.dont_write_bytecode = True  # nothing written into the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "runtime"))
from format_reader import unpack  # noqa: E402  (FORMAT.md §5)

SMALL_CNN = ["train.epochs=2", "data.train_limit=1200", "data.test_limit=100",
             "train.threads=2", "train.progress=false",
             "layer.conv1.out_channels=6", "layer.conv2.out_channels=5",
             "layer.fc1.in_features=245", "layer.fc1.out_features=12"]

# (name, overrides, weight scheme, weight granularity, activation scheme)
RUNS = [
    ("w8a8", [], "symmetric", "per_channel", "asymmetric"),
    ("asym_per_tensor_symact",
     ["quant.weight_scheme=asymmetric", "quant.weight_granularity=per_tensor",
      "quant.activation_scheme=symmetric", "layer.conv1.batchnorm=true"],
     "asymmetric", "per_tensor", "symmetric"),
    ("w2a4_lsq_asym", ["quant.weight_bits=2", "quant.activation_bits=4",
                       "quant.learn_scale=true", "quant.weight_scheme=asymmetric"],
     "asymmetric", "per_channel", "asymmetric"),
    ("w4_per_tensor_lsq", ["quant.weight_bits=4", "quant.weight_granularity=per_tensor",
                           "quant.learn_scale=true"],
     "symmetric", "per_tensor", "asymmetric"),
]


def fail(msg):
    sys.stderr.write("FAIL: %s\n" % msg)
    sys.exit(1)


def quantize_multiplier(M):
    """ARITHMETIC.md §2, steps 1-5."""
    if M == 0.0:
        return 0, 0
    f, e = math.frexp(M)
    m0 = math.floor(f * 2.0 ** 31 + 0.5)  # llround: f * 2^31 > 0, + 0.5 is exact
    if m0 == 1 << 31:
        m0, e = 1 << 30, e + 1
    if e < -31:
        return 0, 0
    if e > 30:
        fail("M = %r cannot be exported, yet the file has it" % M)
    return m0, e


def check_model(path, wscheme, wgran, ascheme):
    """Returns (channels checked, channels where the double product differs)."""
    f = h5py.File(path, "r")
    checked = naive_differs = 0
    nonzero_wzp = uses_low_code = 0
    for i in range(int(f.attrs["num_layers"])):
        g = f["layers/%03d" % i]
        op = g.attrs["op"]
        op = op.decode() if isinstance(op, bytes) else op
        where = "%s layer %d (%s)" % (path, i, op)
        zp_out = int(g.attrs["output_zero_point"])
        if ascheme == "symmetric" and zp_out != 0:
            fail("%s: symmetric activations, output zero point %d" % (where, zp_out))
        if op not in ("conv2d", "linear"):
            continue
        s_in = np.float32(g.attrs["input_scale"])
        s_out = np.float32(g.attrs["output_scale"])
        s_w = g["weight_scale"][...].astype(np.float32)
        wzp = g["weight_zero_point"][...]
        mult, shift = g["multiplier"][...], g["shift"][...]
        for c in range(len(s_w)):
            acc_scale = np.float32(s_in * s_w[c])  # one float32 multiplication
            want = quantize_multiplier(float(acc_scale) / float(s_out))
            got = (int(mult[c]), int(shift[c]))
            if got != want:
                fail("%s channel %d: stored (m0, shift) = %s, ARITHMETIC.md §2 gives %s"
                     % (where, c, got, want))
            naive = quantize_multiplier(float(s_in) * float(s_w[c]) / float(s_out))
            naive_differs += naive != got
            checked += 1
        bits = int(g.attrs["weight_bits"])
        qmax = (1 << (bits - 1)) - 1
        kh, kw = g.attrs["kernel"] if op == "conv2d" else (1, 1)
        n = len(s_w) * int(kh) * int(kw) * int(g.attrs["input_shape"][2])
        w = unpack(g["weights"][...], n, bits)
        if wscheme == "symmetric":
            if np.any(wzp != 0) or w.min() < -qmax:
                fail("%s: symmetric weights with zero points %s, smallest code %d"
                     % (where, sorted(set(wzp.tolist())), w.min()))
        nonzero_wzp += int(np.count_nonzero(wzp))
        uses_low_code += int(np.count_nonzero(w == -qmax - 1))
        if wgran == "per_tensor":
            if np.any(s_w != s_w[0]) or np.any(wzp != wzp[0]):
                fail("%s: per-tensor weights with several scales or zero points" % where)
        elif len(s_w) > 1 and np.all(s_w == s_w[0]):
            fail("%s: per-channel weights, yet one scale for all channels" % where)
    if wscheme == "asymmetric" and (nonzero_wzp == 0 or uses_low_code == 0):
        fail("%s: asymmetric weights, yet %d nonzero weight zero points and %d codes "
             "-2^(b-1)" % (path, nonzero_wzp, uses_low_code))
    return checked, naive_differs


def main():
    if len(sys.argv) != 3:
        fail(__doc__)
    train, root = sys.argv[1], sys.argv[2]
    total = differs = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name, extra, wscheme, wgran, ascheme in RUNS:
            out = os.path.join(tmp, name)
            cmd = [train, os.path.join(root, "configs", "mnist_cnn.ini"), "--out", out, "--quiet",
                   "--set", "data.dir=" + os.path.join(root, "datasets", "mnist-subset")]
            for s in SMALL_CNN + extra:
                cmd += ["--set", s]
            r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            if r.returncode != 0:
                fail("%s: qat-train exited %d\n%s" % (name, r.returncode, r.stderr))
            n, d = check_model(os.path.join(out, "model.int8.h5"), wscheme, wgran, ascheme)
            print("ok: %s: %d multipliers as documented; the double product differs in %d"
                  % (name, n, d))
            total += n
            differs += d
    if differs == 0:
        fail("the double product s_in * s_w / s_out gives the same multipliers in all %d "
             "channels: this check cannot tell the formulas apart" % total)


if __name__ == "__main__":
    main()
