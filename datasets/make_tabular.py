#!/usr/bin/env python3
"""Writes the tabular classification example of configs/tabular_mlp.ini: 10
numeric features on very different scales (as in real tables: counts,
ratios, money), three classes decided by a nonlinear rule on four of them
plus label noise.

usage: make_tabular.py OUT_DIR [--seed S] [--train N] [--test N]

OUT_DIR gets train.csv and test.csv, columns f0..f9 and class (0, 1, 2).
Deterministic for a seed (NumPy's PCG64)."""
import argparse
import os

import numpy as np

SCALES = np.array([1.0, 1000.0, 0.01, 50.0, 1.0, 1e4, 0.5, 3.0, 200.0, 0.001])


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('out')
    p.add_argument('--seed', type=int, default=11)
    p.add_argument('--train', type=int, default=4000)
    p.add_argument('--test', type=int, default=1000)
    a = p.parse_args()
    rng = np.random.default_rng(a.seed)
    os.makedirs(a.out, exist_ok=True)
    for split, n in (('train', a.train), ('test', a.test)):
        z = rng.standard_normal((n, 10))
        score = np.stack([z[:, 0] * z[:, 1] + 0.5 * z[:, 3],
                          np.sin(2 * z[:, 5]) + 0.8 * z[:, 3] ** 2 - 0.8,
                          -z[:, 0] - z[:, 5] * 0.7], axis=1)
        y = np.argmax(score + 0.25 * rng.standard_normal(score.shape), axis=1)
        x = (z * SCALES + SCALES * 2).astype(np.float32)  # scaled and shifted
        with open(os.path.join(a.out, split + '.csv'), 'w') as f:
            f.write(','.join(['f%d' % i for i in range(10)] + ['class']) + '\n')
            for row, t in zip(x, y):
                f.write(','.join('%.9g' % v for v in row) + ',%d\n' % t)


if __name__ == '__main__':
    main()
