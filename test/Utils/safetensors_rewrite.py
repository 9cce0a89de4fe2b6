"""Rewrites a safetensors file in place with the standard library (no
safetensors package): an 8-byte little-endian header length, the JSON
header (metadata kept), the data. For tests that edit statistics files.

  from safetensors_rewrite import rewrite
  rewrite(path, edit)   # edit(header, tensors) changes both in place;
                        # tensors: name -> bytes, header: name -> dtype/shape
"""
import json
import struct


def rewrite(path, edit):
    blob = open(path, "rb").read()
    (size,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + size])
    data = blob[8 + size:]
    tensors = {name: data[info["data_offsets"][0]:info["data_offsets"][1]]
               for name, info in header.items() if name != "__metadata__"}
    edit(header, tensors)
    out, chunks, offset = {}, [], 0
    if "__metadata__" in header:
        out["__metadata__"] = header["__metadata__"]
    for name in sorted(tensors):
        chunks.append(tensors[name])
        out[name] = {"dtype": header[name]["dtype"], "shape": header[name]["shape"],
                     "data_offsets": [offset, offset + len(tensors[name])]}
        offset += len(tensors[name])
    text = json.dumps(out, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(chunks))
