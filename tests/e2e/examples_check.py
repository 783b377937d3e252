#!/usr/bin/env python3
"""The shipped examples that need data qat cannot download or ships as a
generator: configs/cifar10_cnn.ini on generated files in CIFAR-10's binary
layout (data_batch_1..2.bin, test_batch.bin: a label byte, then 3072 planar
RGB pixels), one short epoch; configs/tabular_mlp.ini on
datasets/make_tabular.py's CSV files, to the accuracy README reports; and
configs/fashion_cnn.ini as shipped (its data.dir is where Debian's
dataset-fashion-mnist, which scripts/setup.sh installs, puts the IDX files)
on 1000 training images for one epoch, augmentation on (int8 accuracy
0.52 here: the bar of 0.4 is 4x chance).

usage: examples_check.py QAT_TRAIN SOURCE_ROOT"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np


def train(exe, cfg, out, *sets):
    args = [exe, cfg, '--out', out, '--quiet']
    for s in sets:
        args += ['--set', s]
    p = subprocess.run(args, capture_output=True, text=True)
    if p.returncode:
        print('%s failed:\n%s' % (' '.join(args), p.stderr))
        return None
    return json.load(open(os.path.join(out, 'summary.json')))


def main():
    exe, root = sys.argv[1], sys.argv[2]
    bad = 0
    with tempfile.TemporaryDirectory() as tmp:
        cifar = os.path.join(tmp, 'cifar-10-batches-bin')
        os.makedirs(cifar)
        rng = np.random.default_rng(5)
        for name, n in (('data_batch_1.bin', 48), ('data_batch_2.bin', 48),
                        ('test_batch.bin', 32)):
            labels = rng.integers(0, 10, n, dtype=np.uint8)
            # class-dependent colour, so the images are learnable
            planes = rng.integers(0, 96, (n, 3, 1024), dtype=np.uint8)
            planes[np.arange(n), labels % 3, :] += (16 * labels)[:, None].astype(np.uint8)
            rec = np.concatenate([labels[:, None], planes.reshape(n, 3072)], axis=1)
            rec.astype(np.uint8).tofile(os.path.join(cifar, name))
        s = train(exe, os.path.join(root, 'configs', 'cifar10_cnn.ini'), os.path.join(tmp, 'c'),
                  'data.dir=' + cifar, 'train.epochs=1', 'train.batch_size=16', 'train.threads=2')
        if s is None:
            return 1
        print('cifar10_cnn.ini on generated CIFAR batches: %d train / %d test images, int8 '
              'accuracy %.3f, agreement %.3f' % (s['train_images'], s['test_images'],
                                                 s['int8_accuracy'], s['agreement']))
        bad += s['train_images'] != 96 or s['test_images'] != 32 or s['agreement'] != 1.0
        tab = os.path.join(tmp, 'tabular')
        subprocess.run([sys.executable, os.path.join(root, 'datasets', 'make_tabular.py'), tab],
                       check=True)
        s = train(exe, os.path.join(root, 'configs', 'tabular_mlp.ini'), os.path.join(tmp, 't'),
                  'data.dir=' + tab)
        if s is None:
            return 1
        print('tabular_mlp.ini: fake-quant %.4f, int8 %.4f, agreement %.4f, val %.4f'
              % (s['fakequant_accuracy'], s['int8_accuracy'], s['agreement'], s['val_accuracy']))
        bad += s['int8_accuracy'] < 0.84 or s['agreement'] != 1.0
        s = train(exe, os.path.join(root, 'configs', 'fashion_cnn.ini'), os.path.join(tmp, 'f'),
                  'data.train_limit=1000', 'data.test_limit=500', 'train.epochs=1')
        if s is None:
            return 1
        print('fashion_cnn.ini, 1000 images, one epoch: int8 accuracy %.3f, agreement %.3f'
              % (s['int8_accuracy'], s['agreement']))
        bad += s['test_images'] != 500 or s['int8_accuracy'] < 0.4 or s['agreement'] < 0.99
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main())
