#!/usr/bin/env python3
"""The peer for the training benchmarks: one epoch of the MNIST CNN in
PyTorch (Debian's python3-torch, 1.13), float and eager-mode QAT (fused
conv+relu / linear+relu modules, default 'onednn' QAT qconfig), same batch,
optimizer and thread count as qat. Never a dependency of qat's build or tests.

usage: torch_train.py MNIST_DIR [--threads N] [--batch N] [--mode float|qat|both]
                      [--limit N]
Prints one line per mode: "<mode> epoch_seconds <s> images_per_second <r>",
or with --json {"impl": "pytorch-<mode>", "epoch_seconds": s, ...}."""
import argparse
import json
import time

import numpy as np
import torch
import torch.ao.quantization as tq
import torch.nn as nn


def idx(path, offset):
    with open(path, "rb") as f:
        return np.frombuffer(f.read(), dtype=np.uint8, offset=offset)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.quant, self.dequant = tq.QuantStub(), tq.DeQuantStub()
        self.conv1, self.relu1, self.pool1 = nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)
        self.conv2, self.relu2, self.pool2 = nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)
        self.fc1, self.relu3, self.fc2 = nn.Linear(3136, 128), nn.ReLU(), nn.Linear(128, 10)

    def forward(self, x):
        x = self.quant(x)
        x = self.pool1(self.relu1(self.conv1(x)))
        x = self.pool2(self.relu2(self.conv2(x)))
        x = self.relu3(self.fc1(x.reshape(x.shape[0], -1)))
        return self.dequant(self.fc2(x))


def epoch(model, X, y, batch):
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    perm = torch.randperm(X.shape[0])
    model.train()
    t0 = time.perf_counter()
    for i in range(0, X.shape[0], batch):
        b = perm[i:i + batch]
        opt.zero_grad()
        loss_fn(model(X[b]), y[b]).backward()
        opt.step()
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mnist_dir")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--mode", default="both", choices=["float", "qat", "both"])
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    X = idx(a.mnist_dir + "/train-images-idx3-ubyte", 16).reshape(-1, 1, 28, 28)
    y = idx(a.mnist_dir + "/train-labels-idx1-ubyte", 8)
    if a.limit:
        X, y = X[:a.limit], y[:a.limit]
    X = torch.tensor(X.astype(np.float32) / 255.0)
    y = torch.tensor(y.astype(np.int64))
    for mode in (["float", "qat"] if a.mode == "both" else [a.mode]):
        model = Net()
        if mode == "qat":
            torch.backends.quantized.engine = "onednn"
            model.qconfig = tq.get_default_qat_qconfig("onednn")
            model.train()
            tq.fuse_modules_qat(model, [["conv1", "relu1"], ["conv2", "relu2"], ["fc1", "relu3"]],
                                inplace=True)
            tq.prepare_qat(model, inplace=True)
        s = epoch(model, X, y, a.batch)
        print_epoch(f"pytorch-{mode}" if a.json else mode, s, X.shape[0], a.json)


def print_epoch(name, seconds, images, as_json):
    """One line per timed epoch: JSON for benchmarks/sidebyside.py (with ATen's
    CPU capability, the kernel path PyTorch ran) or plain text."""
    if as_json:
        cap = next((l.split(":", 1)[1].strip() for l in torch.__config__.show().splitlines()
                    if "CPU capability" in l), "unknown")
        print(json.dumps({"impl": name, "epoch_seconds": round(seconds, 3),
                          "images_per_second": round(images / seconds, 1),
                          "cpu_capability": cap}), flush=True)
    else:
        print(f"{name} epoch_seconds {seconds:.2f} images_per_second {images / seconds:.0f}",
              flush=True)


if __name__ == "__main__":
    main()
