"""Adds a uniform Fisher information (every element 1) for every routed
expert to a statistics directory (format version 2) in place, as
moeq_calibrate.py --fisher names and shapes it (layers.L.experts.E.
fisher_{gate,up,down}, F32 [out, in]). For tests of what Fisher statistics
switch on, without PyTorch.

  python add_uniform_fisher.py STATS_DIR
"""
import json
import os
import struct
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "Utils"))
from safetensors_rewrite import rewrite  # noqa: E402

root = sys.argv[1]
index = json.load(open(os.path.join(root, "stats.json")))
hidden, inter = int(index["hidden_size"]), int(index["moe_intermediate_size"])
experts = int(index["num_experts"])
added = []


def add(header, tensors):
    layer = int(header["__metadata__"]["layer"])
    for e in range(experts):
        for linear, shape in (("gate", [inter, hidden]), ("up", [inter, hidden]),
                              ("down", [hidden, inter])):
            name = "layers.%d.experts.%d.fisher_%s" % (layer, e, linear)
            header[name] = {"dtype": "F32", "shape": shape}
            tensors[name] = struct.pack("<f", 1.0) * (shape[0] * shape[1])
            added.append(name)


for name in sorted(os.listdir(root)):
    if name.endswith(".safetensors"):
        rewrite(os.path.join(root, name), add)
print("added %d fisher tensors" % len(added))
