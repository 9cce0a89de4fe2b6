"""Adds a uniform Fisher information (every element 1) for every routed
expert to a statistics directory (format version 2) in place, as
moeq_calibrate.py --fisher names and shapes it (layers.L.experts.E.
fisher_{gate,up,down}, F32 [out, in]). For tests of what Fisher statistics
switch on, without PyTorch; the safetensors layout is rewritten with the
standard library (8-byte header length, JSON header, data), metadata kept.

  python add_uniform_fisher.py STATS_DIR
"""
import json
import os
import struct
import sys

root = sys.argv[1]
index = json.load(open(os.path.join(root, "stats.json")))
hidden, inter = int(index["hidden_size"]), int(index["moe_intermediate_size"])
experts = int(index["num_experts"])
added = 0
for name in sorted(os.listdir(root)):
    if not name.endswith(".safetensors"):
        continue
    path = os.path.join(root, name)
    blob = open(path, "rb").read()
    (size,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + size])
    data = blob[8 + size:]
    layer = int(header["__metadata__"]["layer"])
    extra = []
    for e in range(experts):
        for linear, shape in (("gate", [inter, hidden]), ("up", [inter, hidden]),
                              ("down", [hidden, inter])):
            count = shape[0] * shape[1]
            header["layers.%d.experts.%d.fisher_%s" % (layer, e, linear)] = {
                "dtype": "F32", "shape": shape,
                "data_offsets": [len(data), len(data) + 4 * count]}
            data += struct.pack("<f", 1.0) * count
            added += 1
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + data)
print("added %d fisher tensors" % added)
