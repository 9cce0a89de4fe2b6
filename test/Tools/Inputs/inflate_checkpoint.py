"""Writes a checkpoint with the tensors, names and config of a small one but
larger dimensions, as a sparse file (only the header is on disk: the data
reads as zeros), for tests of shapes the machine cannot hold.

  inflate_checkpoint.py SMALL_DIR OUT_DIR KEY=NEW ...

Each KEY is a config.json dimension (hidden_size, intermediate_size, ...):
its value becomes NEW, and so does every tensor dimension equal to its old
value."""
import json
import os
import shutil
import struct
import sys


def main():
    small, out = sys.argv[1], sys.argv[2]
    changes = dict(arg.split("=") for arg in sys.argv[3:])
    os.makedirs(out, exist_ok=True)
    config = json.load(open(os.path.join(small, "config.json")))
    dims = {}
    for key, value in changes.items():
        dims[int(config[key])] = int(value)
        config[key] = int(value)
    json.dump(config, open(os.path.join(out, "config.json"), "w"), indent=2)
    for name in os.listdir(small):
        if name.endswith(".json") and name != "config.json":
            shutil.copy(os.path.join(small, name), out)
    with open(os.path.join(small, "model.safetensors"), "rb") as f:
        length = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(length))
    sizes = {"F32": 4, "BF16": 2, "F16": 2, "I32": 4, "I64": 8, "F64": 8}
    offset = 0
    for name in sorted(k for k in header if k != "__metadata__"):
        info = header[name]
        info["shape"] = [dims.get(d, d) for d in info["shape"]]
        count = 1
        for d in info["shape"]:
            count *= d
        info["data_offsets"] = [offset, offset + count * sizes[info["dtype"]]]
        offset += count * sizes[info["dtype"]]
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    path = os.path.join(out, "model.safetensors")
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text)
        f.truncate(8 + len(text) + offset)
    print("%s: %d bytes (sparse)" % (path, os.path.getsize(path)))


if __name__ == "__main__":
    main()
