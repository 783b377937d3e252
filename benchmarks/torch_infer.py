#!/usr/bin/python3
"""PyTorch peer for bench-infer: the seed CNN (configs/mnist_cnn.ini) as
PyTorch 1.13's eager-mode quantized model (conv+relu and linear+relu fused,
qconfig 'onednn', torch.backends.quantized.engine = 'onednn'), timed at
batch 1 and 64 on MNIST test images, printing images/s; its fp32 model is
timed too for reference.

Not a dependency of the build or the tests. Needs Debian's python3-torch
(PyTorch 1.13) and numpy. Usage (from the repository root):

    /usr/bin/python3 benchmarks/torch_infer.py [--threads 2] [--seconds 2]
        [--repeats 5] [--images datasets/mnist-subset/t10k-images-idx3-ubyte]

Weights are random and calibrated on real images: speed does not depend
on their values. Each figure is the median of --repeats timed runs of
--seconds each, after a warm-up. Inputs are float tensors prepared
beforehand (the uint8 -> float conversion is not timed; the model's own
quantization of its input is).
"""
import argparse
import gzip
import json
import statistics
import time

import numpy as np
import torch
import torch.nn as nn
import torch.ao.quantization as tq


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.quant = tq.QuantStub()
        self.conv1 = nn.Conv2d(1, 32, 3, padding=1)
        self.relu1 = nn.ReLU()
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.relu2 = nn.ReLU()
        self.pool2 = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(3136, 128)
        self.relu3 = nn.ReLU()
        self.fc2 = nn.Linear(128, 10)
        self.dequant = tq.DeQuantStub()

    def forward(self, x):
        x = self.quant(x)
        x = self.pool1(self.relu1(self.conv1(x)))
        x = self.pool2(self.relu2(self.conv2(x)))
        x = torch.flatten(x, 1)
        x = self.relu3(self.fc1(x))
        return self.dequant(self.fc2(x))


def read_idx_images(path):
    with (gzip.open if path.endswith(".gz") else open)(path, "rb") as f:
        data = f.read()
    magic, n, h, w = np.frombuffer(data[:16], dtype=">u4")
    if magic != 0x803:
        raise SystemExit(f"{path}: not an IDX image file (magic {magic:#x})")
    return np.frombuffer(data[16:], dtype=np.uint8).reshape(n, 1, h, w)


def images_per_second(model, x, seconds, repeats):
    with torch.inference_mode():
        end = time.perf_counter() + 0.5  # warm-up
        while time.perf_counter() < end:
            model(x)
        rates = []
        for _ in range(repeats):
            count = 0
            t0 = time.perf_counter()
            while True:
                model(x)
                count += x.shape[0]
                t = time.perf_counter() - t0
                if t >= seconds:
                    break
            rates.append(count / t)
    return statistics.median(rates)


def quantize_eager(q, data, fuse):
    """q (a float model in eval mode) quantized in place by PyTorch's eager
    flow: fuse(q), qconfig 'onednn', prepare, calibrate on up to 512 images
    of data, convert. Returns q."""
    fuse(q)
    q.qconfig = tq.get_default_qconfig("onednn")
    tq.prepare(q, inplace=True)
    with torch.inference_mode():
        for i in range(0, min(len(data), 512), 64):
            q(data[i:i + 64])
    tq.convert(q, inplace=True)
    return q


def report(models, data, a):
    """Times each (name, model) at batch 1 and 64 and prints images/s."""
    # the kernel path PyTorch's own dispatch picked (ATen's CPU capability)
    cap = next((l.split(":", 1)[1].strip() for l in torch.__config__.show().splitlines()
                if "CPU capability" in l), "unknown")
    for batch in (1, 64):
        x = data[:batch].contiguous()
        for name, model in models:
            ips = images_per_second(model, x, a.seconds, a.repeats)
            if a.json:
                print(json.dumps({"impl": name, "batch": batch, "threads": a.threads,
                                  "images_per_second": round(ips, 1),
                                  "engine": torch.backends.quantized.engine,
                                  "cpu_capability": cap}))
            else:
                print(f"{name:32s} batch {batch:3d}  threads {a.threads}  {ips:10.1f} images/s")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--images", default="datasets/mnist-subset/t10k-images-idx3-ubyte")
    ap.add_argument("--json", action="store_true", help="one JSON object per line")
    a = ap.parse_args()

    torch.manual_seed(1)
    torch.set_num_threads(a.threads)
    torch.backends.quantized.engine = "onednn"
    pixels = read_idx_images(a.images)
    data = torch.from_numpy(pixels.astype(np.float32) / 255.0)

    fp32 = Net().eval()
    q = Net().eval()
    q.load_state_dict(fp32.state_dict())
    quantize_eager(q, data, lambda m: tq.fuse_modules(
        m, [["conv1", "relu1"], ["conv2", "relu2"], ["fc1", "relu3"]], inplace=True))
    report((("pytorch-int8-onednn", q), ("pytorch-fp32", fp32)), data, a)


if __name__ == "__main__":
    main()
