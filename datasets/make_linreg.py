#!/usr/bin/env python3
"""Writes the linear-regression example of configs/linreg.ini: y = X w + b +
noise with X ~ N(0, 1), F features, and the true w and b beside the data.

usage: make_linreg.py OUT_DIR [--seed S] [--train N] [--test N] [--features F]
                      [--noise SIGMA]

OUT_DIR gets train.csv and test.csv (columns x0..x{F-1}, y) and truth.json
({"w": [...], "b": ...}). Deterministic for a seed (NumPy's PCG64)."""
import argparse
import json
import os

import numpy as np


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('out')
    p.add_argument('--seed', type=int, default=7)
    p.add_argument('--train', type=int, default=2000)
    p.add_argument('--test', type=int, default=500)
    p.add_argument('--features', type=int, default=8)
    p.add_argument('--noise', type=float, default=0.01)
    a = p.parse_args()
    rng = np.random.default_rng(a.seed)
    w = rng.uniform(-2.0, 2.0, a.features).astype(np.float32)
    b = np.float32(rng.uniform(-1.0, 1.0))
    os.makedirs(a.out, exist_ok=True)
    for split, n in (('train', a.train), ('test', a.test)):
        x = rng.standard_normal((n, a.features)).astype(np.float32)
        y = (x @ w + b + a.noise * rng.standard_normal(n)).astype(np.float32)
        with open(os.path.join(a.out, split + '.csv'), 'w') as f:
            f.write(','.join(['x%d' % i for i in range(a.features)] + ['y']) + '\n')
            for row, t in zip(x, y):
                # %.9g round-trips a float32 exactly
                f.write(','.join('%.9g' % v for v in row) + ',%.9g\n' % t)
    with open(os.path.join(a.out, 'truth.json'), 'w') as f:
        json.dump({'w': [float(v) for v in w], 'b': float(b), 'noise': a.noise,
                   'seed': a.seed}, f, indent=1)
        f.write('\n')


if __name__ == '__main__':
    main()
