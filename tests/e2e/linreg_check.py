#!/usr/bin/env python3
"""configs/linreg.ini end to end: datasets/make_linreg.py writes y = X w + b +
noise, qat-train fits one linear layer with SGD and MSE, and the exported W8A8
model's dequantized weights, weight_scale[c] * (q - zero point), are within
one quantization step (weight_scale) of the true w; the bias within 2% of b.
qat-infer on the test split reports the run's own int8 metrics, and its
--dump-outputs are the dequantized outputs those metrics come from.

usage: linreg_check.py QAT_TRAIN SOURCE_ROOT (qat-infer beside qat-train)"""
import json
import os
import subprocess
import sys
import tempfile

import h5py
import numpy as np


def main():
    train, root = sys.argv[1], sys.argv[2]
    infer = os.path.join(os.path.dirname(train), 'qat-infer')
    with tempfile.TemporaryDirectory() as tmp:
        data, run = os.path.join(tmp, 'linreg'), os.path.join(tmp, 'run')
        subprocess.run([sys.executable, os.path.join(root, 'datasets', 'make_linreg.py'), data],
                       check=True)
        p = subprocess.run([train, os.path.join(root, 'configs', 'linreg.ini'), '--set',
                            'data.dir=' + data, '--out', run, '--quiet'],
                           capture_output=True, text=True)
        if p.returncode:
            print('qat-train failed:\n' + p.stderr)
            return 1
        truth = json.load(open(os.path.join(data, 'truth.json')))
        w_true, b_true = np.array(truth['w']), truth['b']
        with h5py.File(os.path.join(run, 'model.int8.h5'), 'r') as f:
            assert f.attrs['task'] == b'regression' and f.attrs['input_type'] == b'float32'
            l = f['layers/000']
            q = l['weights'][()].view(np.int8).astype(np.float64)
            zp = l['weight_zero_point'][()].astype(np.float64)
            step = l['weight_scale'][()].astype(np.float64)
            w = step[0] * (q - zp[0])
            bias_scale = float(l.attrs['input_scale']) * step[0]
            b = l['bias'][()][0] * bias_scale
        err = np.abs(w - w_true) / step[0]
        print('true w      ', np.round(w_true, 4))
        print('int8 w      ', np.round(w, 4))
        print('|error| in quantization steps (%.5f):' % step[0], np.round(err, 3))
        # the bias as stored is the one the layer applies to input codes
        # relative to their zero point: the real bias is b (the input's zero
        # point offsets nothing in the real domain)
        print('true b %.5f, int8 b %.5f' % (b_true, b))
        s = json.load(open(os.path.join(run, 'summary.json')))
        print('int8 MSE %.3g, R^2 %.6f, agreement %.4f' % (s['int8_mse'], s['int8_r2'],
                                                           s['agreement']))
        bad = int(np.any(err > 1.0)) + int(abs(b - b_true) > 0.02 * max(1.0, abs(b_true)))
        bad += s['int8_r2'] < 0.999 or s['agreement'] < 1.0
        dump = os.path.join(tmp, 'out.f32')
        p = subprocess.run([infer, os.path.join(run, 'model.int8.h5'), '--data',
                            os.path.join(data, 'test.csv'), '--target', 'y', '--json',
                            '--dump-outputs', dump], capture_output=True, text=True)
        if p.returncode:
            print('qat-infer failed:\n' + p.stderr)
            return 1
        r = json.loads(p.stdout)
        y = np.loadtxt(os.path.join(data, 'test.csv'), delimiter=',', skiprows=1)[:, -1]
        out = np.fromfile(dump, dtype='<f4').astype(np.float64)
        mse = float(np.mean((out - y.astype(np.float32)) ** 2))
        print('qat-infer: MSE %.6g, R^2 %.6f; from --dump-outputs: MSE %.6g' % (r['mse'], r['r2'],
                                                                               mse))
        bad += abs(r['mse'] - s['int8_mse']) > 1e-6 * s['int8_mse'] or out.size != y.size
        bad += abs(mse - r['mse']) > 1e-6 * r['mse']
        # FORMAT.md section 9: the independent reader's int8 outputs for the
        # float features equal qat-infer's, byte for byte
        x = np.loadtxt(os.path.join(data, 'test.csv'), delimiter=',', skiprows=1)[:, :-1]
        xs, ys = os.path.join(tmp, 'x.npy'), os.path.join(tmp, 'y.npy')
        np.save(xs, x.astype(np.float32))
        np.save(ys, y.astype(np.float32))
        c_bin, py_bin = os.path.join(tmp, 'c.bin'), os.path.join(tmp, 'py.bin')
        subprocess.run([infer, os.path.join(run, 'model.int8.h5'), '--images', xs, '--labels', ys,
                        '--dump-logits', c_bin, '--json'], check=True, capture_output=True)
        reader = os.path.join(root, 'tests', 'runtime', 'format_reader.py')
        subprocess.run([sys.executable, reader, os.path.join(run, 'model.int8.h5'), xs, py_bin],
                       check=True)
        same = open(c_bin, 'rb').read() == open(py_bin, 'rb').read()
        print('independent reader (float inputs): %s' % ('identical codes' if same else 'DIFFERS'))
        bad += not same
        return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main())
