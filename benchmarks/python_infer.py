#!/usr/bin/python3
"""qat-infer's measurement through the qat_runtime Python module: runs MODEL
on IDX images (raw or .gz) in batches through one session, times only the
runs (loading the model and the images is not timed, as in qat-infer), and
prints qat-infer's --json line: {"accuracy": A, "images_per_second": R}.
The timed call also returns float logits and classes (the module always
does), which qat-infer leaves out of its timing.

usage: python_infer.py MODEL IMAGES LABELS [--batch N] [--threads N] [--isa ISA]
(PYTHONPATH=python QAT_RT_LIBDIR=build/src/runtime/lib, or an installed module)
"""
import argparse
import gzip
import json
import time

import numpy as np

import qat_runtime


def idx(path, offset):
    with (gzip.open if path.endswith(".gz") else open)(path, "rb") as f:
        return np.frombuffer(f.read(), dtype=np.uint8, offset=offset)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("images")
    p.add_argument("labels")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--isa")
    a = p.parse_args()
    labels = idx(a.labels, 8)
    with qat_runtime.Model(a.model, isa=a.isa) as m:
        images = idx(a.images, 16).reshape((len(labels),) + m.input_shape)
        m.run(images[:1], batch=a.batch, threads=a.threads)  # the session, outside the timing
        t0 = time.perf_counter()
        r = m.run(images, batch=a.batch, threads=a.threads)
        secs = time.perf_counter() - t0
    print(json.dumps({"accuracy": round(float(np.mean(r.classes == labels)), 6),
                      "images_per_second": round(len(labels) / secs, 1)}))


if __name__ == "__main__":
    main()
