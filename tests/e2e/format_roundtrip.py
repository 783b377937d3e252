#!/usr/bin/env python3
"""One float dataset written in four formats -- IDX (float32, rank 2), HDF5,
NumPy .npy and CSV -- trains to the same weights bit for bit: each format's
reader hands the trainer the same numbers. Exercises auto input statistics,
the validation split and [data] format both given and told from the files.

usage: format_roundtrip.py QAT_TRAIN SOURCE_ROOT"""
import json
import os
import struct
import subprocess
import sys
import tempfile

import h5py
import numpy as np

CONFIG = """[data]
format = {fmt}
val_fraction = 0.25
target = label
[model]
num_classes = 3
input_mean = auto
input_std = auto
[train]
epochs = 2
batch_size = 16
threads = 1
progress = false
[layer.fc1]
type = linear
out_features = 12
activation = relu
[layer.fc2]
type = linear
out_features = 3
"""


def write_idx(path, a):
    code = 0x0D if a.dtype == np.float32 else 0x08
    with open(path, 'wb') as f:
        f.write(bytes([0, 0, code, a.ndim]))
        f.write(struct.pack('>' + 'I' * a.ndim, *a.shape))
        f.write(a.astype('>f4' if code == 0x0D else 'u1').tobytes())


def write_all(root, splits):
    dirs = {}
    for fmt in ('idx', 'hdf5', 'npy', 'csv'):
        d = dirs[fmt] = os.path.join(root, fmt)
        os.makedirs(d)
        for split, (x, y) in splits.items():
            if fmt == 'idx':
                name = 'train' if split == 'train' else 't10k'
                write_idx(os.path.join(d, name + '-images-idx2-ubyte'), x)
                write_idx(os.path.join(d, name + '-labels-idx1-ubyte'), y)
            elif fmt == 'hdf5':
                with h5py.File(os.path.join(d, split + '.h5'), 'w') as f:
                    f['x'] = x
                    f['y'] = y.astype(np.int64)
            elif fmt == 'npy':
                np.save(os.path.join(d, 'x_%s.npy' % split), x)
                np.save(os.path.join(d, 'y_%s.npy' % split), y)
            else:
                with open(os.path.join(d, split + '.csv'), 'w') as f:
                    f.write(','.join(['f%d' % i for i in range(x.shape[1])] + ['label']) + '\n')
                    for row, t in zip(x, y):
                        f.write(','.join('%.9g' % v for v in row) + ',%d\n' % t)
    return dirs


def main():
    train, _root = sys.argv[1], sys.argv[2]
    rng = np.random.default_rng(3)
    splits = {}
    for split, n in (('train', 96), ('test', 40)):
        # features of very different scales, as tabular data has
        x = (rng.standard_normal((n, 6)) * np.array([1, 10, 0.1, 100, 5, 0.01])).astype(np.float32)
        y = (np.argmax(x[:, :3] / np.array([1, 10, 0.1]), axis=1)).astype(np.uint8)
        splits[split] = (x, y)
    with tempfile.TemporaryDirectory() as tmp:
        dirs = write_all(tmp, splits)
        results = {}
        for fmt, d in dirs.items():
            for given in (fmt, 'auto'):
                cfg = os.path.join(tmp, 'c_%s_%s.ini' % (fmt, given))
                with open(cfg, 'w') as f:
                    f.write(CONFIG.format(fmt=given))
                out = os.path.join(tmp, 'run_%s_%s' % (fmt, given))
                p = subprocess.run([train, cfg, '--set', 'data.dir=' + d, '--out', out, '--quiet'],
                                   capture_output=True, text=True)
                if p.returncode != 0:
                    print('%s (format = %s): qat-train failed:\n%s' % (fmt, given, p.stderr))
                    return 1
                with h5py.File(os.path.join(out, 'checkpoint.h5'), 'r') as f:
                    params = f['params'][()]
                    state = f['state'][()]
                with open(os.path.join(out, 'summary.json')) as f:
                    s = json.load(f)
                results[(fmt, given)] = (params, state, s['int8_accuracy'], s['val_images'])
        ref_key = ('idx', 'idx')
        ref = results[ref_key]
        bad = 0
        for key, (params, state, acc, nval) in results.items():
            same = (params.tobytes() == ref[0].tobytes() and state.tobytes() == ref[1].tobytes()
                    and acc == ref[2] and nval == ref[3])
            print('%-5s format = %-5s: %d parameters, int8 accuracy %.4f, %d val examples: %s'
                  % (key[0], key[1], params.size, acc, nval, 'same' if same else 'DIFFERENT'))
            bad += not same
        if ref[3] != 24:
            print('expected 24 validation examples (0.25 of 96), found %d' % ref[3])
            bad += 1
        return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main())
