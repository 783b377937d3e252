#!/usr/bin/env python3
"""Compares two int8 logit dumps (N x classes, row-major: qat-infer
--dump-logits and tests/onnx/run_ort.mjs) and the labels, and prints one
JSON line: class agreement, images whose logits are identical, the largest
code difference, and both accuracies. With --min-* thresholds it exits 1
when one is not met (the numbers still print).

usage: compare_logits.py QAT.bin ORT.bin LABELS CLASSES
       [--min-agreement F] [--min-identical F] [--max-diff N] [--max-acc-drop F]
"""
import argparse
import gzip
import json
import sys

import numpy as np


def labels(path):
    raw = open(path, 'rb').read()
    if raw[:2] == b'\x1f\x8b':
        raw = gzip.decompress(raw)
    if int.from_bytes(raw[:4], 'big') != 0x801:
        sys.exit(f'{path}: not an IDX label file')
    n = int.from_bytes(raw[4:8], 'big')
    return np.frombuffer(raw[8:8 + n], dtype=np.uint8)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('qat')
    ap.add_argument('ort')
    ap.add_argument('labels')
    ap.add_argument('classes', type=int)
    ap.add_argument('--min-agreement', type=float)
    ap.add_argument('--min-identical', type=float)
    ap.add_argument('--max-diff', type=int)
    ap.add_argument('--max-acc-drop', type=float)
    a = ap.parse_args()
    q = np.fromfile(a.qat, dtype=np.int8).reshape(-1, a.classes).astype(np.int32)
    o = np.fromfile(a.ort, dtype=np.int8).reshape(-1, a.classes).astype(np.int32)
    if q.shape != o.shape:
        sys.exit(f'{a.qat}: {q.shape[0]} images, {a.ort}: {o.shape[0]}')
    y = labels(a.labels)[:q.shape[0]]
    # argmax takes the first maximum: ties to the lowest index, as qat does
    pq, po = q.argmax(1), o.argmax(1)
    r = {
        'images': int(q.shape[0]),
        'class_agreement': float((pq == po).mean()),
        'identical_images': float((q == o).all(1).mean()),
        'max_code_diff': int(np.abs(q - o).max()),
        'qat_accuracy': float((pq == y).mean()),
        'ort_accuracy': float((po == y).mean()),
    }
    print(json.dumps(r))
    bad = []
    if a.min_agreement is not None and r['class_agreement'] < a.min_agreement:
        bad.append(f"class agreement {r['class_agreement']:.4f} < {a.min_agreement}")
    if a.min_identical is not None and r['identical_images'] < a.min_identical:
        bad.append(f"identical images {r['identical_images']:.4f} < {a.min_identical}")
    if a.max_diff is not None and r['max_code_diff'] > a.max_diff:
        bad.append(f"largest logit difference {r['max_code_diff']} > {a.max_diff}")
    if a.max_acc_drop is not None and \
            abs(r['ort_accuracy'] - r['qat_accuracy']) > a.max_acc_drop:
        bad.append(f"accuracy {r['ort_accuracy']:.4f} vs qat {r['qat_accuracy']:.4f}")
    for b in bad:
        print(f'FAIL: {b}', file=sys.stderr)
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main())
