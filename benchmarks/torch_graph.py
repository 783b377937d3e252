#!/usr/bin/python3
"""PyTorch peer for the graph models of issue 18: configs/fashion_resnet8.ini
(ResNet-8, MLPerf Tiny's shape) or configs/fashion_dscnn.ini (MobileNet-v1
blocks) as PyTorch 1.13 eager-mode quantized models (qconfig 'onednn',
torch.backends.quantized.engine = 'onednn'; conv+BN(+ReLU) fused; the
residual add is torch.nn.quantized.FloatFunctional's add_relu / add, relu6
is nn.ReLU6, which eager quantization swaps for its quantized ReLU6),
timed at batch 1 and 64 on Fashion-MNIST test images, printing images/s;
the fp32 model is timed too for reference. The shapes are the configs',
layer for layer.

Not a dependency of the build or the tests. Needs Debian's python3-torch
(PyTorch 1.13) and numpy. Usage (from the repository root):

    /usr/bin/python3 benchmarks/torch_graph.py --model resnet8|dscnn
        [--threads 2] [--seconds 2] [--repeats 5]
        [--images /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz]

Weights are random and calibrated on real images (speed does not depend
on their values); timing as benchmarks/torch_infer.py's.

With --train it is instead the peer of benchmarks/graph_train_vs_torch.sh:
one training epoch of the model on the Fashion-MNIST training images (the
first --limit, 0 = all), float and eager-mode QAT (conv+BN(+ReLU) fused for
training by fuse_modules_qat, prepare_qat, default 'onednn' QAT qconfig,
FloatFunctional for the add), batch 64, Adam lr 1e-3, timed as
benchmarks/torch_train.py times its epoch:

    /usr/bin/python3 benchmarks/torch_graph.py --train --model resnet8|dscnn
        [--threads 2] [--limit 0] [--batch 64] [--mode float|qat|both]
        [--train-dir /usr/share/datasets/fashion-mnist]
"""
import argparse
import gzip

import numpy as np
import torch
import torch.nn as nn
import torch.ao.quantization as tq

from torch_infer import quantize_eager, read_idx_images, report
from torch_train import epoch, print_epoch


def conv_bn(cin, cout, k, stride=1, groups=1):
    return [nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout)]


class Block(nn.Module):
    """[conv 3x3, BN, relu; conv 3x3, BN] + shortcut (identity, or conv 1x1 /2
    + BN), relu: the add and its relu are one quantized add_relu."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.a = nn.Sequential(*conv_bn(cin, cout, 3, stride), nn.ReLU())
        self.b = nn.Sequential(*conv_bn(cout, cout, 3))
        self.sc = nn.Sequential(*conv_bn(cin, cout, 1, stride)) if stride != 1 else None
        self.add = nn.quantized.FloatFunctional()

    def forward(self, x):
        return self.add.add_relu(self.b(self.a(x)), self.sc(x) if self.sc is not None else x)

    def fuse(self, fuse=tq.fuse_modules):
        fuse(self.a, [["0", "1", "2"]], inplace=True)
        fuse(self.b, [["0", "1"]], inplace=True)
        if self.sc is not None:
            fuse(self.sc, [["0", "1"]], inplace=True)


class ResNet8(nn.Module):
    def __init__(self):
        super().__init__()
        self.quant = tq.QuantStub()
        self.stem = nn.Sequential(*conv_bn(1, 16, 3), nn.ReLU())
        self.s1, self.s2, self.s3 = Block(16, 16, 1), Block(16, 32, 2), Block(32, 64, 2)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, 10)
        self.dequant = tq.DeQuantStub()

    def forward(self, x):
        x = self.s3(self.s2(self.s1(self.stem(self.quant(x)))))
        return self.dequant(self.fc(torch.flatten(self.gap(x), 1)))

    def fuse(self, fuse=tq.fuse_modules):
        fuse(self.stem, [["0", "1", "2"]], inplace=True)
        for b in (self.s1, self.s2, self.s3):
            b.fuse(fuse)


class DSCNN(nn.Module):
    """conv 3x3 32; 4 x [depthwise 3x3 (/2 in the 1st and 2nd), BN, relu6;
    pointwise 1x1, BN, relu6] to 64, 128, 128, 128; global average pool; fc."""

    def __init__(self):
        super().__init__()
        self.quant = tq.QuantStub()
        layers = conv_bn(1, 32, 3, 1) + [nn.ReLU6()]
        cin = 32
        for cout, stride in ((64, 2), (128, 2), (128, 1), (128, 1)):
            layers += conv_bn(cin, cin, 3, stride, groups=cin) + [nn.ReLU6()]
            layers += conv_bn(cin, cout, 1) + [nn.ReLU6()]
            cin = cout
        self.body = nn.Sequential(*layers)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(128, 10)
        self.dequant = tq.DeQuantStub()

    def forward(self, x):
        x = self.body(self.quant(x))
        return self.dequant(self.fc(torch.flatten(self.gap(x), 1)))

    def fuse(self, fuse=tq.fuse_modules):
        # eager fusion knows conv+bn(+relu), not relu6: each conv+bn pair fuses
        pairs = [[str(i), str(i + 1)] for i, m in enumerate(self.body)
                 if isinstance(m, nn.Conv2d)]
        fuse(self.body, pairs, inplace=True)


MODELS = {"resnet8": ResNet8, "dscnn": DSCNN}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", choices=sorted(MODELS), required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--images",
                    default="/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz")
    ap.add_argument("--json", action="store_true", help="one JSON object per line")
    ap.add_argument("--train", action="store_true",
                    help="time one training epoch instead of inference")
    ap.add_argument("--train-dir", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--limit", type=int, default=0, help="training images, 0 = all")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--mode", default="both", choices=["float", "qat", "both"])
    a = ap.parse_args()

    torch.manual_seed(1)
    torch.set_num_threads(a.threads)
    torch.backends.quantized.engine = "onednn"
    if a.train:
        return train(a)
    data = torch.from_numpy(read_idx_images(a.images).astype(np.float32) / 255.0)

    fp32 = MODELS[a.model]()
    with torch.inference_mode():  # BN running statistics of real images
        for i in range(0, min(len(data), 512), 64):
            fp32(data[i:i + 64])
    fp32.eval()
    q = MODELS[a.model]().eval()
    q.load_state_dict(fp32.state_dict())
    quantize_eager(q, data, lambda m: m.fuse())
    report(((f"pytorch-int8-onednn-{a.model}", q), (f"pytorch-fp32-{a.model}", fp32)), data, a)
    if not a.json:  # the quantized model computes what the float one does
        with torch.inference_mode():
            same = (q(data[:256]).argmax(1) == fp32(data[:256]).argmax(1)).float().mean()
        print(f"int8 vs fp32 top-1 agreement on 256 images: {same.item():.3f}")


def read_idx_labels(path):
    with (gzip.open if path.endswith(".gz") else open)(path, "rb") as f:
        data = f.read()
    if int.from_bytes(data[:4], "big") != 0x801:
        raise SystemExit(f"{path}: not an IDX label file")
    return np.frombuffer(data[8:], dtype=np.uint8)


def train(a):
    """One epoch per mode, as torch_train.py does for the MNIST CNN."""
    X = read_idx_images(a.train_dir + "/train-images-idx3-ubyte.gz")
    y = read_idx_labels(a.train_dir + "/train-labels-idx1-ubyte.gz")
    if a.limit:
        X, y = X[:a.limit], y[:a.limit]
    X = torch.from_numpy(X.astype(np.float32) / 255.0)
    y = torch.from_numpy(y.astype(np.int64))
    for mode in (["float", "qat"] if a.mode == "both" else [a.mode]):
        model = MODELS[a.model]()
        if mode == "qat":
            model.qconfig = tq.get_default_qat_qconfig("onednn")
            model.train()
            model.fuse(tq.fuse_modules_qat)
            tq.prepare_qat(model, inplace=True)
        s = epoch(model, X, y, a.batch)
        print_epoch(f"pytorch-{mode}-{a.model}" if a.json else f"{a.model} {mode}", s,
                    X.shape[0], a.json)


if __name__ == "__main__":
    main()
