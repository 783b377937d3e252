"""qat_runtime: run qat integer model files from Python.

A thin ctypes layer over the shared runtime (libqat_rt_h5.so and
libqat_rt.so, docs/RUNTIME.md): the same kernels as qat-infer, so the int8
logits are the same bytes. No compiled extension; numpy arrays in and out.

    import numpy as np, qat_runtime
    with qat_runtime.Model("model.int8.h5") as m:
        out = m.run(images)        # uint8, N x H x W x C (or N x H x W when C = 1);
                                   # float32: features (float32-input models, or p / 255)
        out.logits                 # int8, N x classes: the runtime's codes
        out.float_logits           # float32: output_scale * (logits - zero point)
        out.classes                # argmax per image, ties to the lowest class
        m.layers[0].name, m.layers[0].weight_bits

Every error the runtime reports (a bad or missing file, a bad option, a
batch larger than a session's) raises qat_runtime.Error with the runtime's
message; images of the wrong type raise TypeError, of the wrong shape
ValueError, before anything reaches C.

The libraries are found in $QAT_RT_LIBDIR if set, else where `meson install`
put them (recorded in _config.py next to this file at install time), else on
the dynamic loader's search path.
"""
import ctypes
import os
import threading
import types
import weakref
from typing import NamedTuple, Optional, Tuple

import numpy as np

__all__ = ["Error", "Model", "Session", "Result", "Layer"]

# The libraries' soname version (src/runtime/lib/meson.build: rt_soversion).
_SOVERSION = "0"
# include/qat/runtime.h
_NAME_MAX = 64
_ERROR_MSG = 1024
_INT_MAX = 2**31 - 1


class Error(Exception):
    """An error the qat runtime reported: str(e) is its message; .status its
    status name ("invalid input", "unsupported", ...), .code the number."""

    def __init__(self, message, status="", code=0):
        super().__init__(message)
        self.status = status
        self.code = code


# ---- the C structs of include/qat/runtime.h (and runtime_h5.h) ---------------------------

class _LayerDesc(ctypes.Structure):
    _fields_ = [
        ("op", ctypes.c_int), ("name", ctypes.c_char * _NAME_MAX),
        ("in_h", ctypes.c_int), ("in_w", ctypes.c_int), ("in_c", ctypes.c_int),
        ("out_h", ctypes.c_int), ("out_w", ctypes.c_int), ("out_c", ctypes.c_int),
        ("kernel_h", ctypes.c_int), ("kernel_w", ctypes.c_int),
        ("stride_h", ctypes.c_int), ("stride_w", ctypes.c_int),
        ("pad_h", ctypes.c_int), ("pad_w", ctypes.c_int),
        ("weight_bits", ctypes.c_int),
        ("weights", ctypes.POINTER(ctypes.c_uint8)), ("weights_bytes", ctypes.c_size_t),
        ("weight_zero_point", ctypes.POINTER(ctypes.c_int32)),
        ("bias", ctypes.POINTER(ctypes.c_int32)),
        ("multiplier", ctypes.POINTER(ctypes.c_int32)),
        ("shift", ctypes.POINTER(ctypes.c_int32)),
        ("weight_scale", ctypes.POINTER(ctypes.c_float)),
        ("act_min", ctypes.c_int32), ("act_max", ctypes.c_int32),
        ("input_scale", ctypes.c_float), ("output_scale", ctypes.c_float),
        ("input_zero_point", ctypes.c_int32), ("output_zero_point", ctypes.c_int32),
        # format version 2: palettized weights (docs/FORMAT.md section 10)
        ("palette_size", ctypes.c_int), ("palette_groups", ctypes.c_int),
        ("codebook", ctypes.POINTER(ctypes.c_int8)),
        ("indices", ctypes.POINTER(ctypes.c_uint8)), ("indices_bytes", ctypes.c_size_t),
        # format version 2: graph inputs and conv groups
        ("num_inputs", ctypes.c_int), ("inputs", ctypes.c_int * 4), ("groups", ctypes.c_int),
        # format version 3: float layers (docs/FORMAT.md section 11)
        ("is_float", ctypes.c_int),
        ("float_weights", ctypes.POINTER(ctypes.c_float)),
        ("float_bias", ctypes.POINTER(ctypes.c_float)),
        ("float_act", ctypes.c_int),
    ]


class _ModelDesc(ctypes.Structure):
    _fields_ = [
        ("version", ctypes.c_int),
        ("in_h", ctypes.c_int), ("in_w", ctypes.c_int), ("in_c", ctypes.c_int),
        ("input_scale", ctypes.c_float), ("input_zero_point", ctypes.c_int32),
        ("num_classes", ctypes.c_int), ("num_layers", ctypes.c_int),
        ("layers", ctypes.POINTER(_LayerDesc)),
        # zero for uint8 pixels and classification (docs/FORMAT.md §9)
        ("input_type", ctypes.c_int),
        ("input_offset", ctypes.POINTER(ctypes.c_float)),
        ("input_step", ctypes.POINTER(ctypes.c_float)),
        ("task", ctypes.c_int),
    ]


class _OwnedDesc(ctypes.Structure):
    _fields_ = [("desc", _ModelDesc), ("layers", ctypes.POINTER(_LayerDesc)),
                ("blob", ctypes.c_void_p)]


class _Options(ctypes.Structure):
    _fields_ = [("threads", ctypes.c_int), ("max_batch", ctypes.c_int),
                ("profile", ctypes.c_int)]


class _CError(ctypes.Structure):
    _fields_ = [("status", ctypes.c_int), ("msg", ctypes.c_char * _ERROR_MSG)]


# ---- loading the libraries -------------------------------------------------------------

def _library_dir():
    d = os.environ.get("QAT_RT_LIBDIR")
    if d:
        return d
    try:
        from . import _config  # written by meson install
    except ImportError:
        return None
    return os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                         _config.LIBDIR))


def _load():
    d = _library_dir()
    names = ["libqat_rt.so." + _SOVERSION, "libqat_rt_h5.so." + _SOVERSION]
    paths = [os.path.join(d, n) for n in names] if d else names
    try:
        # The runtime first, by path: the reader's dependency on its soname
        # then resolves to this copy, wherever the prefix is.
        ctypes.CDLL(paths[0])
        h5 = ctypes.CDLL(paths[1])
    except OSError as e:
        raise ImportError(
            f"qat_runtime: cannot load the qat runtime libraries ({e}); set QAT_RT_LIBDIR "
            "to the folder that holds libqat_rt_h5.so." + _SOVERSION) from None
    P, I, F = ctypes.c_void_p, ctypes.c_int, ctypes.c_float
    E = ctypes.POINTER(_CError)
    # name: (restype, argtypes); looked up through the reader, which also
    # finds the runtime's symbols (its dependency).
    sigs = {
        "qat_rt_status_name": (ctypes.c_char_p, [I]),
        "qat_rt_op_name": (ctypes.c_char_p, [I]),
        "qat_rt_h5_read_desc": (I, [ctypes.c_char_p, ctypes.POINTER(_OwnedDesc), E]),
        "qat_rt_owned_desc_free": (None, [ctypes.POINTER(_OwnedDesc)]),
        "qat_rt_model_create_isa": (I, [ctypes.POINTER(_ModelDesc), ctypes.c_char_p,
                                        ctypes.POINTER(P), E]),
        "qat_rt_model_destroy": (None, [P]),
        "qat_rt_model_isa": (ctypes.c_char_p, [P]),
        "qat_rt_model_num_classes": (I, [P]),
        "qat_rt_model_input_size": (ctypes.c_size_t, [P]),
        "qat_rt_model_output_scale": (F, [P]),
        "qat_rt_model_output_zero_point": (ctypes.c_int32, [P]),
        "qat_rt_session_create": (I, [P, ctypes.POINTER(_Options), ctypes.POINTER(P), E]),
        "qat_rt_session_destroy": (None, [P]),
        "qat_rt_model_input_type": (I, [P]),
        "qat_rt_model_task": (I, [P]),
        "qat_rt_run": (I, [P, P, I, P, E]),
        "qat_rt_run_float": (I, [P, P, I, P, E]),
        "qat_rt_run_logits": (I, [P, P, I, P, E]),
        "qat_rt_run_float_logits": (I, [P, P, I, P, E]),
        "qat_rt_model_float_logits": (I, [P]),
        "qat_rt_dequantize_logits": (None, [P, P, I, P]),
        "qat_rt_classify": (None, [P, P, I, P]),
    }
    lib = types.SimpleNamespace()
    for name, (res, args) in sigs.items():
        f = getattr(h5, name)
        f.restype, f.argtypes = res, args
        setattr(lib, name, f)
    return lib


_lib = _load()


def _check(status, err):
    if status != 0:
        raise Error(err.msg.decode("utf-8", "replace"),
                    _lib.qat_rt_status_name(status).decode(), status)


def _c_int(value, what):
    """value as a C int, or TypeError / ValueError: ctypes would silently wrap
    a larger Python int. The runtime checks its own ranges."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{what}: expected an int, found {type(value).__name__}")
    if not -_INT_MAX - 1 <= value <= _INT_MAX:
        raise ValueError(f"{what}: {value} does not fit a C int")
    return int(value)


# ---- the public API -----------------------------------------------------------------------

class Layer(NamedTuple):
    """One row of a model's layer table (docs/FORMAT.md); shapes are per image,
    (height, width, channels)."""
    index: int
    name: str
    op: str                      # "conv2d", "linear", "maxpool2d", "avgpool2d", "flatten"
    input_shape: Tuple[int, int, int]
    output_shape: Tuple[int, int, int]
    kernel: Tuple[int, int]      # (height, width); conv2d and pools
    stride: Tuple[int, int]
    padding: Tuple[int, int]
    weight_bits: int             # conv2d, linear; else 0
    weight_scale: Optional[np.ndarray]  # float32, one per output channel (conv2d, linear)
    input_scale: float
    input_zero_point: int
    output_scale: float
    output_zero_point: int
    act_min: int                 # output clamp (a fused relu raises act_min)
    act_max: int
    arithmetic: str = "int8"     # "float32": a float layer (FORMAT.md section 11)


class Result(NamedTuple):
    logits: Optional[np.ndarray]  # int8, N x classes: the runtime's codes; None when the
                                  # model's last layer is float (Model.float_logits)
    float_logits: np.ndarray  # float32, N x classes: output_scale * (code - zero point),
                              # or the float layer's own logits
    classes: np.ndarray       # intc, N: argmax of each row, ties to the lowest class


def _layer(i, d):
    weighted = d.op in (1, 2)  # QAT_RT_CONV2D, QAT_RT_LINEAR
    scale = None
    if weighted and d.weight_scale:
        scale = np.ctypeslib.as_array(d.weight_scale, shape=(d.out_c,)).copy()
    op = _lib.qat_rt_op_name(d.op)
    return Layer(i, d.name.decode("utf-8", "replace"), op.decode() if op else str(d.op),
                 (d.in_h, d.in_w, d.in_c), (d.out_h, d.out_w, d.out_c),
                 (d.kernel_h, d.kernel_w), (d.stride_h, d.stride_w), (d.pad_h, d.pad_w),
                 d.weight_bits if weighted else 0, scale,
                 float(d.input_scale), int(d.input_zero_point),
                 float(d.output_scale), int(d.output_zero_point),
                 int(d.act_min), int(d.act_max), "float32" if d.is_float else "int8")


class _Closing:
    """close() at the end of a with block, and when garbage collected."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # e.g. at interpreter shutdown
            pass


class Model(_Closing):
    """An integer model file (docs/FORMAT.md), read, validated and packed for
    one kernel path. isa: None or "auto" (QAT_ISA if set, else the fastest
    this CPU runs), "ref", "avx2", "avx512vnni", "neon", "neon-dot",
    "neon-plain"; every path gives the same logits."""

    def __init__(self, path, isa=None):
        self._handle = None
        # re-entrant: run() creates its session under it, and Session()
        # takes it so that close() cannot free the model in between
        self._lock = threading.RLock()
        self._sessions = weakref.WeakSet()
        self._default = None
        path = os.fspath(path)
        self.path = path
        bpath = os.fsencode(path)
        if b"\0" in bpath:
            raise ValueError("path: contains a NUL byte")
        if isa is not None and not isinstance(isa, str):
            raise TypeError(f"isa: expected a str or None, found {type(isa).__name__}")
        err = _CError()
        owned = _OwnedDesc()
        handle = ctypes.c_void_p()
        try:
            _check(_lib.qat_rt_h5_read_desc(bpath, ctypes.byref(owned), ctypes.byref(err)), err)
            d = owned.desc
            self.input_shape = (d.in_h, d.in_w, d.in_c)
            self.layers = tuple(_layer(i, d.layers[i]) for i in range(d.num_layers))
            st = _lib.qat_rt_model_create_isa(ctypes.byref(d),
                                              isa.encode() if isa is not None else None,
                                              ctypes.byref(handle), ctypes.byref(err))
            if st != 0:  # named after the file, as qat-infer does
                msg = err.msg.decode("utf-8", "replace")
                raise Error(f"{path}: {msg}", _lib.qat_rt_status_name(st).decode(), st)
        finally:
            _lib.qat_rt_owned_desc_free(ctypes.byref(owned))
        self._handle = handle
        self.isa = _lib.qat_rt_model_isa(handle).decode()
        self.num_classes = _lib.qat_rt_model_num_classes(handle)
        self.input_size = _lib.qat_rt_model_input_size(handle)
        self.output_scale = float(_lib.qat_rt_model_output_scale(handle))
        self.output_zero_point = int(_lib.qat_rt_model_output_zero_point(handle))
        # the last layer is a float layer: float32 logits, no int8 codes
        self.float_logits = bool(_lib.qat_rt_model_float_logits(handle))
        # "uint8": pixels (run takes uint8 or float32 p / 255); "float32":
        # features, quantized as the file says (run takes float32 only)
        self.input_type = "float32" if _lib.qat_rt_model_input_type(handle) == 1 else "uint8"
        self.task = "regression" if _lib.qat_rt_model_task(handle) == 1 else "classification"

    def __repr__(self):
        state = "closed" if self._handle is None else f"isa {self.isa}"
        return (f"<qat_runtime.Model {self.path!r}: {len(self.layers)} layers, input "
                f"{self.input_shape}, {self.num_classes} classes, {state}>")

    def _live(self):
        if self._handle is None:
            raise Error(f"{self.path}: the model is closed", "invalid input", 1)
        return self._handle

    def session(self, max_batch=64, threads=1):
        """A session: its buffers for up to max_batch images and threads - 1
        worker threads, allocated once; Session.run never allocates in C."""
        return Session(self, max_batch, threads)

    def run(self, images, batch=64, threads=1):
        """Runs any number of images in chunks of `batch` through one session
        (kept for the next call with the same batch and threads)."""
        x = self._images(images)
        with self._lock:
            s = self._default
            if s is None or s._closed() or s.max_batch != batch or s.threads != threads:
                # not closed here: another thread may be about to run on it;
                # it goes when its last user lets go of it (or at close())
                s = self._default = Session(self, batch, threads)
        return s._run(x, chunked=True)

    def _images(self, images):
        """images as a C-contiguous array N x H x W x C: uint8 pixels (a
        uint8 model's) or float32 values (qat_rt_run_float: features of a
        float32-input model, or p / 255 for a uint8 model); else TypeError /
        ValueError saying what was expected."""
        want = "float32" if self.input_type == "float32" else "uint8 or float32"
        if not isinstance(images, np.ndarray):
            raise TypeError(f"images: expected a numpy.ndarray of {want}, found "
                            f"{type(images).__name__}")
        if images.dtype != np.float32 and (images.dtype != np.uint8 or
                                           self.input_type == "float32"):
            raise TypeError(f"images: this model takes {want} inputs, found {images.dtype}")
        h, w, c = self.input_shape
        ok = images.ndim == 4 and images.shape[1:] == (h, w, c)
        ok = ok or (c == 1 and images.ndim == 3 and images.shape[1:] == (h, w))
        if not ok:
            also = f" or (N, {h}, {w})" if c == 1 else ""
            raise ValueError(f"images: expected shape (N, {h}, {w}, {c}){also}, found "
                             f"{tuple(images.shape)}")
        return np.ascontiguousarray(images)

    def close(self):
        """Frees the model and every session made from it (idempotent)."""
        with self._lock:
            for s in list(self._sessions):
                s.close()
            self._default = None
            if self._handle is not None:
                _lib.qat_rt_model_destroy(self._handle)
                self._handle = None


class Session(_Closing):
    """Buffers and threads for runs of up to max_batch images of one model.
    Calls are serialised: one run at a time (from any Python thread)."""

    def __init__(self, model, max_batch=64, threads=1):
        self._handle = None
        self._lock = threading.Lock()
        self.model = model
        opts = _Options(_c_int(threads, "threads"), _c_int(max_batch, "max_batch"), 0)
        self.max_batch, self.threads = opts.max_batch, opts.threads
        err = _CError()
        handle = ctypes.c_void_p()
        with model._lock:
            _check(_lib.qat_rt_session_create(model._live(), ctypes.byref(opts),
                                              ctypes.byref(handle), ctypes.byref(err)), err)
            self._handle = handle
            model._sessions.add(self)

    def _closed(self):
        return self._handle is None

    def run(self, images):
        """Runs at most max_batch images (more is the runtime's error)."""
        return self._run(self.model._images(images), chunked=False)

    def _run(self, x, chunked):
        m = self.model
        n, k = x.shape[0], m.num_classes
        fl = m.float_logits
        logits = np.empty((n, k), dtype=np.int8)
        real = np.empty((n, k), dtype=np.float32)
        classes = np.empty(n, dtype=np.intc)
        step = self.max_batch if chunked else max(n, 1)
        err = _CError()
        eref = ctypes.byref(err)
        # base addresses and byte strides, once: slicing four arrays and
        # asking each for .ctypes per chunk cost about 1.4% of the images/s at
        # batch 64 on the MNIST CNN (benchmarks/python_vs_infer.sh: 0.889 of
        # qat-infer before, 0.901 after)
        xp, xs = x.ctypes.data, x.strides[0] if n else 0
        lp, rp, cp = logits.ctypes.data, real.ctypes.data, classes.ctypes.data
        rs, cs = k * real.itemsize, classes.itemsize
        if fl:
            run = _lib.qat_rt_run_float_logits if x.dtype == np.float32 else _lib.qat_rt_run_logits
        else:
            run = _lib.qat_rt_run_float if x.dtype == np.float32 else _lib.qat_rt_run
        deq, cls = _lib.qat_rt_dequantize_logits, _lib.qat_rt_classify
        with self._lock:
            if self._handle is None:
                raise Error("the session is closed", "invalid input", 1)
            mh = m._live()
            h = self._handle
            for i in range(0, n, step):
                count = _c_int(min(n, i + step) - i, "n")
                lo = lp + i * k
                if fl:
                    _check(run(h, xp + i * xs, count, rp + i * rs, eref), err)
                    continue
                _check(run(h, xp + i * xs, count, lo, eref), err)
                deq(mh, lo, count, rp + i * rs)
                cls(mh, lo, count, cp + i * cs)
        if fl:  # ties to the lowest class, as qat_rt_classify
            classes[:] = np.argmax(real, axis=1) if n else classes
            return Result(None, real, classes)
        return Result(logits, real, classes)

    def close(self):
        with self._lock:
            if self._handle is not None:
                _lib.qat_rt_session_destroy(self._handle)
                self._handle = None
