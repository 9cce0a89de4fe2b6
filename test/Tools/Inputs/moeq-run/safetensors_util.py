"""Minimal safetensors reading/writing with the standard library only (the
Python running lit has no numpy): F32, F16, BF16 and I32 tensors."""
import json
import struct

_FORMATS = {"F32": ("f", 4), "F16": ("e", 2), "I32": ("i", 4)}


def _encode(dtype, values):
    if dtype == "BF16":
        # Every value written as BF16 by these tests is exact in bf16: the
        # upper half of its float32 pattern.
        return b"".join(struct.pack("<I", struct.unpack("<I", struct.pack("<f", v))[0])[2:]
                        for v in values)
    code, _ = _FORMATS[dtype]
    return struct.pack("<%d%s" % (len(values), code), *values)


def write(path, tensors):
    """tensors: {name: (dtype, shape, flat values)}"""
    header, data = {}, b""
    for name in sorted(tensors):
        dtype, shape, values = tensors[name]
        blob = _encode(dtype, values)
        header[name] = {"dtype": dtype, "shape": list(shape),
                        "data_offsets": [len(data), len(data) + len(blob)]}
        data += blob
    text = json.dumps(header).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + data)


def read(path, name):
    """(dtype, shape, flat values as floats/ints)"""
    with open(path, "rb") as f:
        blob = f.read()
    (length,) = struct.unpack("<Q", blob[:8])
    entry = json.loads(blob[8:8 + length])[name]
    begin, end = entry["data_offsets"]
    raw = blob[8 + length + begin:8 + length + end]
    dtype = entry["dtype"]
    if dtype == "BF16":
        values = [struct.unpack("<f", b"\0\0" + raw[i:i + 2])[0] for i in range(0, len(raw), 2)]
    else:
        code, size = _FORMATS[dtype]
        values = list(struct.unpack("<%d%s" % (len(raw) // size, code), raw))
    return dtype, entry["shape"], values
