"""The qat_runtime Python module (python/qat_runtime) against qat-infer.

The int8 logits must be qat-infer's --dump-logits bytes for a trained model
(examples/embedded/tiny_cnn.int8.h5) and synthetic ones at several weight
widths, over the committed MNIST subset, for every batch size, thread count
and kernel path; float logits and classes must follow from them as
docs/RUNTIME.md says; the layer table must be the file's (read with h5py);
and every bad input must raise a Python exception with a clear message,
never crash the interpreter.

usage (tests/python/meson.build): python3 test_qat_runtime.py QAT_INFER MAKE_MODEL
with PYTHONPATH=<source>/python, QAT_RT_LIBDIR=<build>/src/runtime/lib and
QAT_SOURCE_ROOT set.
"""
import os
import subprocess
import sys
import tempfile
import threading
import unittest

import numpy as np

import qat_runtime as qr

INFER, MAKE_MODEL = sys.argv[1:3]
SRC = os.environ["QAT_SOURCE_ROOT"]
IMAGES = os.path.join(SRC, "datasets/mnist-subset/t10k-images-idx3-ubyte")
LABELS = os.path.join(SRC, "datasets/mnist-subset/t10k-labels-idx1-ubyte")
TINY = os.path.join(SRC, "examples/embedded/tiny_cnn.int8.h5")
TMP = tempfile.TemporaryDirectory()
MODELS = {}  # name: (path, qat-infer's logits, N x classes int8)
PIXELS = np.fromfile(IMAGES, dtype=np.uint8, offset=16).reshape(-1, 28, 28)


# The tools run without LD_PRELOAD: a sanitizer build preloads its runtime
# into python3 only (tests/python/meson.build); the tools link their own.
TOOL_ENV = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}


def setUpModule():
    paths = {"tiny_cnn": TINY}
    for kind, bits in (("cnn", 2), ("cnn", 4), ("cnn", 8), ("mlp", 3)):
        p = os.path.join(TMP.name, f"{kind}{bits}.h5")
        subprocess.run([MAKE_MODEL, p, kind, str(bits)], check=True, env=TOOL_ENV)
        paths[f"{kind}{bits}"] = p
    for name, p in paths.items():
        dump = os.path.join(TMP.name, name + ".logits")
        subprocess.run([INFER, p, "--images", IMAGES, "--labels", LABELS, "--threads", "2",
                        "--batch", "50", "--dump-logits", dump, "--json"],
                       check=True, stdout=subprocess.DEVNULL, env=TOOL_ENV)
        MODELS[name] = (p, np.fromfile(dump, dtype=np.int8).reshape(len(PIXELS), -1))


def tearDownModule():
    TMP.cleanup()


class FloatLayers(unittest.TestCase):
    """A model whose conv1, conv2 and fc are float layers (FORMAT.md section
    11): float32 logits, byte for byte qat-infer's, and no int8 codes."""

    def test_float_logits_are_qat_infers(self):
        p = os.path.join(TMP.name, "float.h5")
        subprocess.run([MAKE_MODEL, p, "cnn", "4", "float", "37"], check=True, env=TOOL_ENV)
        dump = os.path.join(TMP.name, "float.logits")
        subprocess.run([INFER, p, "--images", IMAGES, "--labels", LABELS, "--dump-logits", dump,
                        "--json"], check=True, stdout=subprocess.DEVNULL, env=TOOL_ENV)
        want = np.fromfile(dump, dtype="<f4").reshape(len(PIXELS), -1)
        with qr.Model(p) as m:
            self.assertTrue(m.float_logits)
            self.assertEqual([L.arithmetic for L in m.layers],
                             ["float32", "int8", "float32", "int8", "int8", "float32"])
            for batch, threads in ((64, 1), (37, 2)):
                r = m.run(PIXELS, batch=batch, threads=threads)
                self.assertIsNone(r.logits)
                self.assertEqual(r.float_logits.tobytes(), want.tobytes())
                self.assertEqual(r.classes.tolist(), np.argmax(want, axis=1).tolist())
        with qr.Model(MODELS["cnn4"][0]) as m:
            self.assertFalse(m.float_logits)
            self.assertEqual({L.arithmetic for L in m.layers}, {"int8"})


class Logits(unittest.TestCase):
    def test_every_model_batch_and_thread_count_gives_qat_infers_bytes(self):
        for name, (path, want) in MODELS.items():
            with qr.Model(path) as m:
                for batch, threads in ((64, 1), (37, 2), (1, 1), (1000, 2)):
                    got = m.run(PIXELS, batch=batch, threads=threads).logits
                    self.assertEqual(got.dtype, np.int8)
                    self.assertEqual(got.shape, want.shape)
                    self.assertEqual(got.tobytes(), want.tobytes(),
                                     f"{name}, batch {batch}, threads {threads}")

    def test_every_kernel_path(self):
        path, want = MODELS["cnn4"]
        ran = []
        for isa in ("ref", "avx2", "avx512vnni", "neon", "auto", None):
            try:
                m = qr.Model(path, isa=isa)
            except qr.Error as e:  # a path this CPU lacks
                self.assertEqual(e.status, "unsupported", str(e))
                self.assertIn("available", str(e))
                continue
            with m:
                ran.append(m.isa)
                self.assertEqual(m.run(PIXELS[:200], threads=2).logits.tobytes(),
                                 want[:200].tobytes(), f"isa {isa} ({m.isa})")
        self.assertIn("ref", ran)

    def test_nhwc_nhw_and_strided_arrays_agree(self):
        path, want = MODELS["tiny_cnn"]
        with qr.Model(path) as m:
            self.assertEqual(m.input_shape, (28, 28, 1))
            self.assertEqual(m.run(PIXELS[..., None]).logits.tobytes(), want.tobytes())
            odd = PIXELS[::3]
            self.assertFalse(odd.flags.c_contiguous)
            self.assertEqual(m.run(odd).logits.tobytes(), want[::3].tobytes())
            fortran = np.asfortranarray(PIXELS[:50])
            self.assertEqual(m.run(fortran).logits.tobytes(), want[:50].tobytes())

    def test_float_logits_and_classes(self):
        path, want = MODELS["tiny_cnn"]
        with qr.Model(path) as m:
            r = m.run(PIXELS)
            scale, zp = np.float32(m.output_scale), m.output_zero_point
            self.assertEqual(r.float_logits.dtype, np.float32)
            np.testing.assert_array_equal(r.float_logits,
                                          scale * (want.astype(np.float32) - np.float32(zp)))
            np.testing.assert_array_equal(r.classes, np.argmax(want, axis=1))  # first max
            labels = np.fromfile(LABELS, dtype=np.uint8, offset=8)
            self.assertGreater(np.mean(r.classes == labels), 0.9)

    def test_float_inputs(self):
        # qat_rt_run_float: a uint8 model's float input p / 255 is its pixel p
        # (FORMAT.md §9), so the logits are qat-infer's bytes on the pixels
        for name in ("tiny_cnn", "mlp3"):
            path, want = MODELS[name]
            with qr.Model(path) as m:
                self.assertEqual(m.input_type, "uint8")
                self.assertEqual(m.task, "classification")
                x = PIXELS.astype(np.float32) / np.float32(255)
                np.testing.assert_array_equal(m.run(x, batch=37, threads=2).logits, want)

    def test_float_input_model(self):
        # a float32-input model (FORMAT.md §9), written with h5py from mlp3:
        # per-channel offset 0.25 and step 1/255, so the features p / 255 +
        # 0.25 are the codes p - 128 again: qat-infer's logits on the pixels
        import h5py, shutil
        path, want = MODELS["mlp3"]
        fpath = os.path.join(TMP.name, "mlp3_float.h5")
        shutil.copy(path, fpath)
        with h5py.File(fpath, "r+") as f:
            f.attrs["input_type"] = np.bytes_(b"float32")
            f.attrs["task"] = np.bytes_(b"classification")
            f.create_dataset("input_offset", data=np.array([0.25], np.float32))
            f.create_dataset("input_step", data=np.array([1 / 255], np.float32))
        with qr.Model(fpath) as m:
            self.assertEqual(m.input_type, "float32")
            x = PIXELS.astype(np.float32) / np.float32(255) + np.float32(0.25)
            np.testing.assert_array_equal(m.run(x, batch=64).logits, want)
            with self.assertRaises(TypeError) as cm:
                m.run(PIXELS[:4])
            self.assertIn("images: this model takes float32 inputs, found uint8",
                          str(cm.exception))
            # a NaN feature enters as code -128 (runtime.h): no crash, no error
            x[0, 0, 0] = np.nan
            self.assertEqual(m.run(x[:1]).logits.shape, (1, m.num_classes))

    def test_empty_batch(self):
        with qr.Model(TINY) as m:
            r = m.run(PIXELS[:0])
            self.assertEqual(r.logits.shape, (0, 10))
            self.assertEqual(r.classes.shape, (0,))

    def test_session_runs_up_to_its_max_batch(self):
        path, want = MODELS["cnn8"]
        with qr.Model(path) as m, m.session(max_batch=10, threads=2) as s:
            self.assertEqual(s.run(PIXELS[:10]).logits.tobytes(), want[:10].tobytes())
            self.assertEqual(s.run(PIXELS[10:13]).logits.tobytes(), want[10:13].tobytes())
            with self.assertRaises(qr.Error) as cm:
                s.run(PIXELS[:11])
            self.assertEqual(str(cm.exception),
                             "run: n: expected in [0, 10] (max_batch), found 11")
            self.assertEqual(cm.exception.status, "invalid input")
            # the session is still good after a refused call
            self.assertEqual(s.run(PIXELS[:1]).logits.tobytes(), want[:1].tobytes())

    def test_python_threads_share_a_model(self):
        path, want = MODELS["cnn4"]
        out = {}
        switch = sys.getswitchinterval()
        sys.setswitchinterval(1e-6)  # switch threads often: races show up
        self.addCleanup(sys.setswitchinterval, switch)
        with qr.Model(path) as m:
            def work(i):  # different batch sizes: each call replaces the model's session
                out[i] = [m.run(PIXELS[:300], batch=16 + i).logits.tobytes() for _ in range(5)]
            ts = [threading.Thread(target=work, args=(i,)) for i in range(4)]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
        self.assertEqual(sorted(out), [0, 1, 2, 3])
        for i in out:
            self.assertEqual(out[i], [want[:300].tobytes()] * 5, f"thread {i}")


class LayerTable(unittest.TestCase):
    def test_layers_are_the_files(self):
        try:
            import h5py
        except ImportError:
            self.skipTest("h5py is not installed (Debian: python3-h5py)")
        for name, (path, _) in MODELS.items():
            with qr.Model(path) as m, h5py.File(path, "r") as f:
                self.assertEqual(len(m.layers), f.attrs["num_layers"])
                self.assertEqual(m.input_shape, tuple(f.attrs["input_shape"]))
                for i, L in enumerate(m.layers):
                    g = f["layers/%03d" % i]
                    a = g.attrs
                    text = lambda v: v.decode() if isinstance(v, bytes) else v  # noqa: E731
                    where = f"{name} layer {i}"
                    self.assertEqual(L.index, i)
                    self.assertEqual(L.name, text(a["name"]), where)
                    self.assertEqual(L.op, text(a["op"]), where)
                    self.assertEqual(L.input_shape, tuple(a["input_shape"]), where)
                    self.assertEqual(L.output_shape, tuple(a["output_shape"]), where)
                    for k in ("input_scale", "output_scale"):
                        self.assertEqual(np.float32(getattr(L, k)), a[k], where + " " + k)
                    for k in ("input_zero_point", "output_zero_point"):
                        self.assertEqual(getattr(L, k), a[k], where + " " + k)
                    if L.op in ("conv2d", "maxpool2d", "avgpool2d"):
                        self.assertEqual(L.kernel, tuple(a["kernel"]), where)
                        self.assertEqual(L.stride, tuple(a["stride"]), where)
                        self.assertEqual(L.padding, tuple(a["padding"]), where)
                    if L.op in ("conv2d", "linear"):
                        self.assertEqual(L.weight_bits, a["weight_bits"], where)
                        self.assertEqual((L.act_min, L.act_max), (a["act_min"], a["act_max"]))
                        np.testing.assert_array_equal(L.weight_scale, g["weight_scale"][()])
                    else:
                        self.assertEqual(L.weight_bits, 0)
                        self.assertIsNone(L.weight_scale)
                last = m.layers[-1]
                self.assertEqual(m.num_classes, last.output_shape[2])
                self.assertEqual(np.float32(m.output_scale), np.float32(last.output_scale))
                self.assertEqual(m.output_zero_point, last.output_zero_point)


class BadInput(unittest.TestCase):
    """Each case raises, with a message that says what was wrong; the
    interpreter survives all of them (this process would die otherwise)."""

    def expect(self, exc, needle, f, *args, **kw):
        with self.assertRaises(exc) as cm:
            f(*args, **kw)
        self.assertIn(needle, str(cm.exception))
        return cm.exception

    def test_bad_files(self):
        missing = os.path.join(TMP.name, "missing.h5")
        e = self.expect(qr.Error, missing + ": cannot open model file", qr.Model, missing)
        self.assertEqual(e.status, "invalid input")
        text = os.path.join(TMP.name, "text.h5")
        with open(text, "w") as f:
            f.write("not a model\n")
        self.expect(qr.Error, "not a readable HDF5 model file", qr.Model, text)
        cut = os.path.join(TMP.name, "cut.h5")
        with open(TINY, "rb") as f, open(cut, "wb") as g:
            g.write(f.read()[:3000])
        self.expect(qr.Error, cut, qr.Model, cut)
        self.expect(ValueError, "NUL", qr.Model, TINY + "\0x")
        self.expect(TypeError, "", qr.Model, 42)

    def test_bad_options(self):
        self.expect(qr.Error, "isa: expected one of", qr.Model, TINY, isa="sse9")
        self.expect(TypeError, "isa: expected a str", qr.Model, TINY, isa=3)
        with qr.Model(TINY) as m:
            self.expect(qr.Error, "threads: expected in [1, 1024], found 0", m.session, 8, 0)
            self.expect(qr.Error, "threads: expected in [1, 1024], found 5000", m.session, 8,
                        5000)
            self.expect(qr.Error, "max_batch: expected in [1, 2^24], found 0", m.session, 0)
            self.expect(qr.Error, "max_batch: expected in [1, 2^24], found -1", m.session, -1)
            self.expect(ValueError, "threads: 1099511627776 does not fit a C int", m.session, 8,
                        2**40)
            self.expect(TypeError, "threads: expected an int, found str", m.session, 8, "2")
            self.expect(TypeError, "threads: expected an int, found bool", m.session, 8, True)
            self.expect(qr.Error, "max_batch", m.run, PIXELS[:5], batch=0)

    def test_bad_images(self):
        with qr.Model(TINY) as m:
            for bad in (PIXELS.astype(np.float64), PIXELS.astype(np.int8),
                        PIXELS.astype(np.uint16)):
                self.expect(TypeError, f"images: this model takes uint8 or float32 inputs, "
                            f"found {bad.dtype}", m.run, bad)
            self.expect(TypeError, "images: expected a numpy.ndarray of uint8 or float32, "
                        "found list", m.run, PIXELS[:2].tolist())
            want = "images: expected shape (N, 28, 28, 1) or (N, 28, 28), found "
            for shape in ((10, 28, 27), (10, 784), (28, 28), (10, 28, 28, 3), (1, 10, 28, 28, 1),
                          ()):
                self.expect(ValueError, want + str(shape), m.run, np.zeros(shape, np.uint8))
            s = m.session(4)
            self.expect(ValueError, want, s.run, np.zeros((2, 27, 28), np.uint8))

    def test_closed_objects(self):
        m = qr.Model(TINY)
        s = m.session(4)
        m.close()
        self.expect(qr.Error, "the model is closed", m.run, PIXELS[:1])
        self.expect(qr.Error, "the model is closed", m.session)
        self.expect(qr.Error, "the session is closed", s.run, PIXELS[:1])
        m.close()  # twice is fine
        s.close()


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1], verbosity=2)
