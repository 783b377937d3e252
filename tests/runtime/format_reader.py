#!/usr/bin/env python3
"""An independent reader of the integer model format, written only from
docs/FORMAT.md and docs/ARITHMETIC.md (h5py + numpy). It runs a model on an
IDX image file and writes the int8 logits, N x num_classes, row-major, so the
test suite can demand byte equality with `qat-infer --dump-logits`.

usage: format_reader.py MODEL IMAGES_IDX OUT_LOGITS
"""
import gzip
import sys

import h5py
import numpy as np

I32 = np.int64  # all integer math in int64, results checked against int32


def die(msg):
    sys.stderr.write("format_reader: %s\n" % msg)
    sys.exit(2)


def attr(obj, name, kind, shape):
    """kind: 'i32', 'f32' or 'str'; shape: () scalar or (n,)."""
    if name not in obj.attrs:
        die("%s: attribute '%s' missing" % (obj.name, name))
    a = obj.attrs.get_id(name)
    t, s = a.get_type(), a.get_space()
    if kind == "str":
        if not isinstance(t, h5py.h5t.TypeStringID) or s.get_simple_extent_type() != h5py.h5s.SCALAR:
            die("%s: attribute '%s' is not a scalar string" % (obj.name, name))
        if t.get_cset() not in (h5py.h5t.CSET_ASCII, h5py.h5t.CSET_UTF8):
            die("%s: attribute '%s' is neither ASCII nor UTF-8" % (obj.name, name))
        try:  # h5py gives str for variable-length strings, bytes for fixed ones
            v = obj.attrs[name]
            if isinstance(v, bytes):
                v = v.split(b"\0")[0]
                if t.get_strpad() == h5py.h5t.STR_SPACEPAD:
                    v = v.rstrip(b" ")
                v = v.decode("utf-8")  # strict: overlong forms and surrogates fail
        except UnicodeDecodeError as e:
            die("%s: attribute '%s' is not UTF-8: %s" % (obj.name, name, e))
        return v
    want = {"i32": (h5py.h5t.INTEGER, 4), "f32": (h5py.h5t.FLOAT, 4)}[kind]
    if (t.get_class(), t.get_size()) != want or (kind == "i32" and t.get_sign() != h5py.h5t.SGN_2):
        die("%s: attribute '%s' has the wrong dtype" % (obj.name, name))
    v = obj.attrs[name]
    if shape == ():
        if s.get_simple_extent_type() != h5py.h5s.SCALAR:
            die("%s: attribute '%s' is not a scalar" % (obj.name, name))
        return v.item()
    if s.get_simple_extent_type() != h5py.h5s.SIMPLE or s.shape != shape:
        die("%s: attribute '%s' must have shape %s" % (obj.name, name, shape))
    return [x.item() for x in v]


def check_storage(d, n):
    """FORMAT.md §7.1, before any data of d (n elements) is read."""
    why = None
    layout = d.id.get_create_plist().get_layout()
    if d.external:
        why = "stored outside the file"
    elif layout == h5py.h5d.CONTIGUOUS and d.id.get_storage_size() == 0:
        why = "never written"
    elif layout == h5py.h5d.CHUNKED:
        c = d.chunks[0]
        want = -(-n // c)
        if c > n or want > 1 << 20 or d.id.get_num_chunks() != want:
            why = "chunks of %d elements, %d stored" % (c, d.id.get_num_chunks())
        size = d.file.id.get_filesize()
        for i in range(want if why is None else 0):
            info = d.id.get_chunk_info_by_coord((i * c,))
            if info.byte_offset is None or info.byte_offset + info.size > size or \
                    (d.fletcher32 and info.size < 4):
                why = "chunk %d: %d bytes at %s" % (i, info.size, info.byte_offset)
                break
    if why:
        die("%s: %s" % (d.name, why))


def dataset(g, name, dtype, n):
    if name not in g or not isinstance(g[name], h5py.Dataset):
        die("%s/%s: dataset missing" % (g.name, name))
    d = g[name]
    if d.dtype != np.dtype(dtype) or d.shape != (n,):
        die("%s/%s: expected %s[%d], found %s%s" % (g.name, name, dtype, n, d.dtype, d.shape))
    check_storage(d, n)
    return d[...]


def unpack(packed, n, bits):
    s = 8 if bits >= 5 else 4 if bits >= 3 else 2
    per = 8 // s
    i = np.arange(n)
    u = (packed[i // per].astype(I32) >> ((i % per) * s)) & ((1 << s) - 1)
    return np.where(u >= (1 << (s - 1)), u - (1 << s), u)


def unpalette(g, n, OC, bits):
    """FORMAT.md section 10: codebook[group * K + index], the indices at
    ceil(log2 K) bits in one little-endian bit stream."""
    K = attr(g, "palette_size", "i32", ())
    groups = attr(g, "palette_groups", "i32", ())
    if not 2 <= K <= 256 or groups not in (1, OC):
        die("%s: palette_size / palette_groups" % g.name)
    b = max(1, int(K - 1).bit_length())
    cb = dataset(g, "codebook", "int8", groups * K).astype(I32)
    if cb.min() < -(1 << (bits - 1)) or cb.max() > (1 << (bits - 1)) - 1:
        die("%s: codebook code outside the weight bits" % g.name)
    packed = dataset(g, "palette_indices", "uint8", -(-(n * b) // 8))
    stream = np.unpackbits(packed, bitorder="little")
    idx = (stream[: n * b].reshape(n, b).astype(I32) << np.arange(b)).sum(axis=1)
    if idx.max() >= K or stream[n * b :].any():
        die("%s: an index beyond the codebook, or nonzero padding bits" % g.name)
    group = np.arange(n) // (n // OC) if groups > 1 else np.zeros(n, dtype=np.int64)
    return cb[group * K + idx]


def trunc_div(x, d):
    return np.sign(x) * (np.abs(x) // d)


def srdhm(a, b):
    ab = a * b
    nudge = np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    r = trunc_div(ab + nudge, 1 << 31)
    return np.where((a == -(1 << 31)) & (b == -(1 << 31)), (1 << 31) - 1, r)


def rdpot(x, n):
    mask = (1 << n) - 1
    rem = x & mask
    thr = (mask >> 1) + (x < 0)
    return (x >> n) + (rem > thr)


def requantize(acc, m0, shift, zp, lo, hi):
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    v = np.clip(acc * (1 << left), -(1 << 31), (1 << 31) - 1)
    v = rdpot(srdhm(v, m0), right) + zp
    return np.clip(v, lo, hi)


def div_round(s, n):
    return np.where(s >= 0, (s + n // 2) // n, -((-s + n // 2) // n))


def rescale(v, m0, shift):
    """ARITHMETIC.md 4.1: Requantize without the zero point and the clamp."""
    v = np.clip(v * (1 << np.maximum(shift, 0)), -(1 << 31), (1 << 31) - 1)
    return rdpot(srdhm(v, m0), np.maximum(-shift, 0))


def run_merge(L, xs, zps):
    """add, concat, global_avgpool (ARITHMETIC.md 4.1) on the inputs' codes."""
    op, m, sh = L["op"], L["mult"], L["shift"]
    zp, lo, hi = L["output_zero_point"], L["act_min"], L["act_max"]
    if op == "add":
        r = [rescale((x - z) * (1 << 20), m[k], sh[k]) for k, (x, z) in enumerate(zip(xs, zps))]
        s = r[0] + r[1]
        assert s.min() >= -(1 << 31) and s.max() < (1 << 31)
        return requantize(s, m[2], sh[2], zp, lo, hi)
    if op == "concat":
        return np.concatenate([requantize(x - z, m[k], sh[k], zp, lo, hi)
                               for k, (x, z) in enumerate(zip(xs, zps))], axis=3)
    x = xs[0]
    s = (x - zps[0]).sum(axis=(1, 2), keepdims=True)
    return requantize(s, m[0], sh[0], zp, lo, hi)


def run_layer(L, x):
    """x: (N, H, W, C) int64 codes -> output codes."""
    op = L["op"]
    N, H, W, C = x.shape
    if L.get("groups", 1) > 1:  # ARITHMETIC.md 4.1: each group a conv of its own
        g, OC = L["groups"], L["output_shape"][2]
        cg, og = C // g, OC // g
        outs = []
        for j in range(g):
            Lj = dict(L, groups=1, output_shape=(L["output_shape"][0], L["output_shape"][1], og))
            KH, KW = L["kernel"]
            Lj["w"] = L["w"].reshape(OC, -1)[j * og:(j + 1) * og].reshape(-1)
            for k in ("wzp", "bias", "mult", "shift"):
                Lj[k] = L[k][j * og:(j + 1) * og]
            outs.append(run_layer(Lj, x[:, :, :, j * cg:(j + 1) * cg]))
        return np.concatenate(outs, axis=3)
    if op == "flatten":
        return x.reshape(N, 1, 1, H * W * C)
    if op in ("maxpool2d", "avgpool2d"):
        (KH, KW), (SH, SW) = L["kernel"], L["stride"]
        OH, OW = L["output_shape"][0], L["output_shape"][1]
        win = np.stack([x[:, ky:ky + SH * (OH - 1) + 1:SH, kx:kx + SW * (OW - 1) + 1:SW, :]
                        for ky in range(KH) for kx in range(KW)])
        if op == "maxpool2d":
            return win.max(axis=0)
        zp = L["input_zero_point"]
        return np.clip(zp + div_round((win - zp).sum(axis=0), KH * KW), -128, 127)
    (KH, KW), (SH, SW), (PH, PW) = L["kernel"], L["stride"], L["padding"]
    OH, OW, OC = L["output_shape"]
    zp_in = L["input_zero_point"]
    xp = np.full((N, H + 2 * PH, W + 2 * PW, C), zp_in, dtype=I32)
    xp[:, PH:PH + H, PW:PW + W, :] = x
    w = (L["w"].reshape(OC, KH, KW, C) - L["wzp"][:, None, None, None]).astype(I32)
    acc = np.zeros((N, OH, OW, OC), dtype=I32) + L["bias"]
    for ky in range(KH):
        for kx in range(KW):
            patch = xp[:, ky:ky + SH * (OH - 1) + 1:SH, kx:kx + SW * (OW - 1) + 1:SW, :] - zp_in
            acc += np.einsum("nhwc,oc->nhwo", patch, w[:, ky, kx, :])
    assert acc.min() >= -(1 << 31) and acc.max() < (1 << 31)
    return requantize(acc, L["mult"], L["shift"], L["output_zero_point"], L["act_min"], L["act_max"])


def load_float(g, L):
    """FORMAT.md section 11: arithmetic "float32", activation, the clamp,
    float32 weights (OC x KH x KW x C) and bias, every value finite."""
    if attr(g, "arithmetic", "str", ()) != "float32":
        die("%s: arithmetic" % g.name)
    L["float"] = attr(g, "activation", "str", ())
    if L["float"] not in ("none", "relu", "relu6") or L.get("groups", 1) != 1:
        die("%s: a float layer's activation / groups" % g.name)
    L["act_min"], L["act_max"] = attr(g, "act_min", "i32", ()), attr(g, "act_max", "i32", ())
    H, W, C = L["input_shape"]
    OC = L["output_shape"][2]
    KH, KW = L["kernel"]
    L["fw"] = dataset(g, "float_weights", "<f4", OC * KH * KW * C).astype(np.float32)
    L["fb"] = dataset(g, "float_bias", "<f4", OC).astype(np.float32)
    if not np.all(np.isfinite(L["fw"])) or not np.all(np.isfinite(L["fb"])):
        die("%s: float_weights / float_bias must be finite" % g.name)
    for k in ("input_scale", "output_scale"):
        L[k] = np.float32(attr(g, k, "f32", ()))


def run_float(L, x, last):
    """ARITHMETIC.md section 7: each input code dequantized as one float32
    product (padded taps 0.0), the window summed in float32 from 0 in the
    order (ky, kx, c), one product rounded before each addition, then + bias,
    the activation, and the output quantized like an input value (or, as the
    model's output, float logits)."""
    N, H, W, C = x.shape
    (KH, KW), (SH, SW), (PH, PW) = L["kernel"], L["stride"], L["padding"]
    OH, OW, OC = L["output_shape"]
    f32 = np.float32
    xf = np.zeros((N, H + 2 * PH, W + 2 * PW, C), dtype=f32)
    xf[:, PH:PH + H, PW:PW + W, :] = (x - L["input_zero_point"]).astype(f32) * L["input_scale"]
    w = L["fw"].reshape(OC, KH, KW, C)
    acc = np.zeros((N, OH, OW, OC), dtype=f32)
    for ky in range(KH):
        for kx in range(KW):
            patch = xf[:, ky:ky + SH * (OH - 1) + 1:SH, kx:kx + SW * (OW - 1) + 1:SW, :]
            for c in range(C):
                acc = (acc + (patch[:, :, :, c:c + 1] * w[:, ky, kx, c]).astype(f32)).astype(f32)
    y = (acc + L["fb"]).astype(f32)
    if L["float"] != "none":
        y = np.where(y > 0, y, f32(0)).astype(f32)
    if L["float"] == "relu6":
        y = np.where(y < 6, y, f32(6)).astype(f32)
    if last:
        return y
    r = (y / L["output_scale"]).astype(f32)
    q = np.sign(r) * np.floor(np.abs(r.astype(np.float64)) + 0.5) + L["output_zero_point"]
    return np.clip(q, L["act_min"], L["act_max"]).astype(I32)


def load(path):
    f = h5py.File(path, "r")
    if attr(f, "format", "str", ()) != "qat-int8-model":
        die("not a qat model")
    version = attr(f, "version", "i32", ())
    if version not in (1, 2, 3):
        die("unsupported version")
    shape = attr(f, "input_shape", "i32", (3,))
    # FORMAT.md section 9: optional; absent means uint8 pixels
    inp = {"type": attr(f, "input_type", "str", ()) if "input_type" in f.attrs else "uint8"}
    if inp["type"] == "float32":
        inp["zp"] = attr(f, "input_zero_point", "i32", ())
        if not -128 <= inp["zp"] <= 127 or not np.float32(attr(f, "input_scale", "f32", ())) > 0:
            die("input quantization")
        inp["offset"] = dataset(f, "input_offset", "<f4", shape[2]).astype(np.float32)
        inp["step"] = dataset(f, "input_step", "<f4", shape[2]).astype(np.float32)
        if not np.all(np.isfinite(inp["offset"])) or not np.all(inp["step"] > 0):
            die("input offset / step")
    elif inp["type"] != "uint8":
        die("input_type")
    elif attr(f, "input_zero_point", "i32", ()) != -128:
        die("input zero point")
    elif np.float32(attr(f, "input_scale", "f32", ())) != np.float32(1) / np.float32(255):
        die("input scale")
    layers = []
    for i in range(attr(f, "num_layers", "i32", ())):
        g = f["/layers/%03d" % i]
        L = {"op": attr(g, "op", "str", ())}
        ops = ("conv2d", "linear", "maxpool2d", "avgpool2d", "flatten")
        if version >= 2:
            ops += ("add", "concat", "global_avgpool")
        if L["op"] not in ops:
            die("%s: unknown op" % g.name)
        # FORMAT.md 3.1: version 2's optional inputs (absent: the previous layer)
        L["inputs"] = [i - 1]
        if version >= 2 and "inputs" in g.attrs:
            n = g.attrs["inputs"].shape[0] if g.attrs["inputs"].shape else 0
            if not 1 <= n <= 4:
                die("%s: inputs: 1 to 4 values" % g.name)
            L["inputs"] = attr(g, "inputs", "i32", (n,))
            if any(not -1 <= j < i for j in L["inputs"]):
                die("%s: inputs: an input must be an earlier layer or -1" % g.name)
        if L["op"] == "conv2d" and version >= 2 and "groups" in g.attrs:
            L["groups"] = attr(g, "groups", "i32", ())
        for k in ("input_shape", "output_shape"):
            L[k] = attr(g, k, "i32", (3,))
        for k in ("input_zero_point", "output_zero_point"):
            L[k] = attr(g, k, "i32", ())
        if L["op"] in ("conv2d", "maxpool2d", "avgpool2d"):
            for k in ("kernel", "stride", "padding"):
                L[k] = attr(g, k, "i32", (2,))
        elif L["op"] == "linear":
            L["kernel"], L["stride"], L["padding"] = (1, 1), (1, 1), (0, 0)
        if L["op"] in ("add", "concat", "global_avgpool"):
            n = {"add": 3, "concat": len(L["inputs"]), "global_avgpool": 1}[L["op"]]
            L["act_min"], L["act_max"] = attr(g, "act_min", "i32", ()), attr(g, "act_max", "i32", ())
            L["mult"] = dataset(g, "multiplier", "<i4", n).astype(I32)
            L["shift"] = dataset(g, "shift", "<i4", n).astype(I32)
            if L["op"] == "add" and (len(L["inputs"]) != 2 or max(L["shift"][:2]) > 0):
                die("%s: add needs two inputs and input shifts <= 0" % g.name)
        if L["op"] in ("conv2d", "linear") and version >= 3 and "arithmetic" in g.attrs:
            load_float(g, L)  # FORMAT.md 11: a float layer
        elif L["op"] in ("conv2d", "linear"):
            bits = attr(g, "weight_bits", "i32", ())
            L["act_min"], L["act_max"] = attr(g, "act_min", "i32", ()), attr(g, "act_max", "i32", ())
            H, W, C = L["input_shape"]
            OC = L["output_shape"][2]
            KH, KW = L["kernel"]
            groups = L.get("groups", 1)
            if groups < 1 or C % groups or OC % groups:
                die("%s: groups must divide the input and output channels" % g.name)
            n = OC * KH * KW * (C // groups)
            if version >= 2 and "palette_size" in g.attrs:
                L["w"] = unpalette(g, n, OC, bits)
            else:
                s = 8 if bits >= 5 else 4 if bits >= 3 else 2
                packed = dataset(g, "weights", "uint8", -(-n // (8 // s)))
                L["w"] = unpack(packed, n, bits)
            L["wzp"] = dataset(g, "weight_zero_point", "<i4", OC).astype(I32)
            L["bias"] = dataset(g, "bias", "<i4", OC).astype(I32)
            L["mult"] = dataset(g, "multiplier", "<i4", OC).astype(I32)
            L["shift"] = dataset(g, "shift", "<i4", OC).astype(I32)
        layers.append(L)
    return shape, layers, inp


def quantize_input(v, inp):
    """ARITHMETIC.md section 6: one float32 subtraction, one float32
    division, round half away from zero, plus the zero point, clamped."""
    C = inp["offset"].shape[0]
    v = v.reshape(v.shape[0], -1, C).astype(np.float32)
    r = ((v - inp["offset"]).astype(np.float32) / inp["step"]).astype(np.float32)
    zp = inp["zp"]
    with np.errstate(invalid="ignore"):
        q = np.sign(r) * np.floor(np.abs(r.astype(np.float64)) + 0.5) + zp
        q = np.where(np.isnan(r) | (r < -128 - zp - 1), -128, q)
        q = np.where(r > 127 - zp + 1, 127, q)
    return np.clip(q, -128, 127).astype(I32)


def read_idx_images(path):
    raw = open(path, "rb").read()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if raw[:4] != b"\x00\x00\x08\x03":
        die("%s: not an IDX image file" % path)
    n, h, w = (int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(3))
    return np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(n, h, w, 1)


def main():
    if len(sys.argv) != 4:
        die(__doc__)
    shape, layers, inp = load(sys.argv[1])
    if sys.argv[2].endswith(".npy"):  # float features (or pixels) of shape N x ...
        v = np.load(sys.argv[2])
        if inp["type"] == "float32":
            x = quantize_input(v, inp).reshape(v.shape[0], *shape)
        else:
            x = v.reshape(v.shape[0], *shape).astype(I32) - 128
    else:
        px = read_idx_images(sys.argv[2])
        x = px.reshape(px.shape[0], *shape).astype(I32) - 128
    # layers in file order, each reading the outputs it names (-1: the input)
    outs, zps = {-1: x}, {-1: -128 if inp["type"] == "uint8" else inp["zp"]}
    for i, L in enumerate(layers):
        xs = [outs[j] for j in L["inputs"]]
        for j, xj in zip(L["inputs"], xs):
            if tuple(xj.shape[1:]) != tuple(layers[j]["output_shape"] if j >= 0 else shape):
                die("layer %d: an input's shape differs from what it reads" % i)
        if L["op"] == "add" and xs[0].shape != xs[1].shape:
            die("layer %d: add inputs of different shapes" % i)
        if L["op"] in ("add", "concat", "global_avgpool"):
            x = run_merge(L, xs, [zps[j] for j in L["inputs"]])
        elif "float" in L:
            out = i == len(layers) - 1 or all(M["op"] == "flatten" for M in layers[i + 1:])
            x = run_float(L, xs[0], out)
        else:
            x = run_layer(L, xs[0])
        outs[i], zps[i] = x, L["output_zero_point"]
        for j in L["inputs"]:  # an output nobody reads later is dropped (memory)
            if all(j not in M["inputs"] for M in layers[i + 1:]):
                outs.pop(j, None)
    if x.dtype == np.float32:  # float logits (ARITHMETIC.md 7): float32, little-endian
        x.reshape(x.shape[0], -1).astype("<f4").tofile(sys.argv[3])
    else:
        x.reshape(x.shape[0], -1).astype(np.int8).tofile(sys.argv[3])


if __name__ == "__main__":
    main()
