#!/usr/bin/python3
"""PyTorch peer for qat-ptq: PyTorch 1.13 eager-mode post-training static
quantization (qconfig 'onednn' with its default observers, conv+relu and
linear+relu fused, torch.backends.quantized.engine = 'onednn') of the seed
CNN (configs/mnist_cnn.ini), calibrated on N training images, evaluated on
the MNIST test set. Prints the float and int8 test accuracies and the wall
time of the quantization (fuse, prepare, calibration forward, convert).

The float model is qat's own: its weights are read from a qat-train
checkpoint.h5 of that CNN trained with quantization off (h5py), so both
tools quantize the same float model. Layouts are converted: qat's conv
weights are [out, kh, kw, in] and it flattens NHWC, PyTorch's are
[out, in, kh, kw] and it flattens NCHW, so fc1's columns are permuted. qat
folds the input standardisation (x - mean) / std into conv1 (weights times
1 / std, bias plus -mean / std times their sum) and pads the raw image, so
PyTorch gets the same folded conv1 and pixels / 255: the same function
(standardised inputs would pad with the mean instead). The calibration images are
drawn with numpy's generator from --seed (qat draws its own with its seed:
the same number of images, not the same ones).

Not a dependency of the build or the tests. Needs Debian's python3-torch,
python3-h5py and numpy. Usage (from the repository root):

    /usr/bin/python3 benchmarks/torch_ptq.py CHECKPOINT [--data DIR]
        [--calibration-images 1000] [--seed 1] [--threads 2] [--json]
"""
import argparse
import gzip
import json
import os
import time

import h5py
import numpy as np
import torch
import torch.ao.quantization as tq

from torch_infer import Net  # the same CNN (torch_infer.py, beside this file)

MEAN, STD = 0.1307, 0.3081  # configs/mnist_cnn.ini's [model] defaults


def read_idx(path):
    for p in (path, path + ".gz"):
        if os.path.exists(p):
            with (gzip.open if p.endswith(".gz") else open)(p, "rb") as f:
                data = f.read()
            break
    else:
        raise SystemExit(f"{path}: no such IDX file (raw or .gz)")
    magic = int.from_bytes(data[:4], "big")
    if magic == 0x803:
        n, h, w = (int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(3))
        return np.frombuffer(data[16:], dtype=np.uint8).reshape(n, 1, h, w)
    if magic == 0x801:
        return np.frombuffer(data[8:], dtype=np.uint8)
    raise SystemExit(f"{path}: not an IDX file (magic {magic:#x})")


def load_qat_weights(net, path):
    """qat's flat parameter array, layer by layer: weights then bias."""
    with h5py.File(path, "r") as f:
        fmt = f.attrs.get("format")
        fmt = fmt.decode() if isinstance(fmt, bytes) else fmt
        if fmt != "qat-checkpoint":
            raise SystemExit(f"{path}: attribute 'format' is {fmt!r}, not a qat checkpoint")
        params = np.asarray(f["params"], dtype=np.float32)
    shapes = [("conv1", (32, 3, 3, 1)), ("conv2", (64, 3, 3, 32)), ("fc1", (128, 3136)),
              ("fc2", (10, 128))]
    need = sum(int(np.prod(s)) + s[0] for _, s in shapes)
    if params.size != need:
        raise SystemExit(f"{path}: {params.size} parameters, the seed CNN without batchnorm or "
                         f"learned scales has {need}: not configs/mnist_cnn.ini's float model")
    at = 0
    sd = {}
    for name, s in shapes:
        n = int(np.prod(s))
        w = params[at:at + n].reshape(s)
        at += n
        b = params[at:at + s[0]]
        at += s[0]
        if name == "conv1":  # the standardisation, folded as qat folds it
            b = b + (-MEAN / STD) * w.reshape(s[0], -1).sum(axis=1, dtype=np.float64)
            w = w * (1.0 / STD)
        if name.startswith("conv"):
            w = w.transpose(0, 3, 1, 2)  # [out, kh, kw, in] -> [out, in, kh, kw]
        elif name == "fc1":  # columns (h, w, c) -> (c, h, w)
            w = w.reshape(128, 7, 7, 64).transpose(0, 3, 1, 2).reshape(128, 3136)
        sd[name + ".weight"] = torch.from_numpy(np.ascontiguousarray(w))
        sd[name + ".bias"] = torch.from_numpy(b.astype(np.float32))
    net.load_state_dict(sd, strict=False)


def accuracy(model, x, y):
    correct = 0
    with torch.inference_mode():
        for i in range(0, len(x), 500):
            correct += int((model(x[i:i + 500]).argmax(1) == y[i:i + 500]).sum())
    return correct / len(x)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--data", default="datasets/mnist")
    ap.add_argument("--calibration-images", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", action="store_true", help="one JSON object")
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    torch.backends.quantized.engine = "onednn"
    norm = lambda p: torch.from_numpy(p.astype(np.float32) / 255.0)
    train = norm(read_idx(os.path.join(a.data, "train-images-idx3-ubyte")))
    test = norm(read_idx(os.path.join(a.data, "t10k-images-idx3-ubyte")))
    labels = torch.from_numpy(read_idx(os.path.join(a.data, "t10k-labels-idx1-ubyte")).astype(np.int64))
    if a.calibration_images > len(train):
        raise SystemExit(f"--calibration-images {a.calibration_images}: the training set holds "
                         f"{len(train)} images")
    pick = np.random.default_rng(a.seed).choice(len(train), a.calibration_images, replace=False)
    calib = train[torch.from_numpy(pick)]

    fp32 = Net().eval()
    load_qat_weights(fp32, a.checkpoint)
    float_acc = accuracy(fp32, test, labels)

    q = Net().eval()
    q.load_state_dict(fp32.state_dict())
    t0 = time.perf_counter()
    q = tq.fuse_modules(q, [["conv1", "relu1"], ["conv2", "relu2"], ["fc1", "relu3"]])
    q.qconfig = tq.get_default_qconfig("onednn")
    tq.prepare(q, inplace=True)
    with torch.inference_mode():
        for i in range(0, len(calib), 64):
            q(calib[i:i + 64])
    tq.convert(q, inplace=True)
    seconds = time.perf_counter() - t0
    int8_acc = accuracy(q, test, labels)

    if a.json:
        print(json.dumps({"impl": "pytorch-ptq-onednn", "threads": a.threads,
                          "calibration_images": a.calibration_images,
                          "float_accuracy": float_acc, "int8_accuracy": int8_acc,
                          "ptq_seconds": round(seconds, 4)}))
    else:
        print(f"pytorch 1.13 eager PTQ (onednn): float {float_acc:.4f}  int8 {int8_acc:.4f}  "
              f"{seconds:.2f} s for {a.calibration_images} calibration images")


if __name__ == "__main__":
    main()
