#!/usr/bin/env python3
"""Writes the weight files of an artifact shipped without them: every
`device_params` tensor of its manifest with random values of its dtype and
shape (packed codes: uniform random words; scales: 1e-3 to 3e-3; zero
points: the middle of the code range; float weights and routers: normal,
sd 0.02), never zeros. For timing whole layers at sizes whose weights do
not travel (bench/gpu/check_runtime.sh).

    fill_random_weights.py ARTIFACT
"""
import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file


def main():
    art = Path(sys.argv[1])
    manifest = json.loads((art / "manifest.json").read_text())
    bits = {}
    for layer in manifest["layers"]:
        for expert in layer["experts"]:
            for linear in expert["linears"].values():
                for tensor in linear.get("tensors", {}).values():
                    bits[tensor["tensor"]] = linear.get("bits", 16)
    g = torch.Generator(device="cuda").manual_seed(0)
    files = {}
    for p in manifest["device_params"]:
        shape, name = p["shape"], p["tensor"]
        if p["dtype"] == "i32":
            t = torch.randint(-2**31, 2**31 - 1, shape, dtype=torch.int64, generator=g,
                              device="cuda").to(torch.int32)
        elif name.endswith(".scales"):
            t = (torch.rand(shape, generator=g, device="cuda") * 2e-3 + 1e-3).half()
        elif name.endswith(".zeros"):
            t = torch.full(shape, float(1 << (bits.get(name, 4) - 1)), device="cuda").half()
        else:
            t = (torch.randn(shape, generator=g, device="cuda") * 0.02)
            t = t.half() if p["dtype"] == "f16" else t
        files.setdefault(p["file"], {})[name] = t.cpu().contiguous()
    for file, tensors in files.items():
        save_file(tensors, str(art / file))
        print("wrote %s: %d tensors, %.1f MB" % (art / file, len(tensors),
                                                 sum(t.numel() * t.element_size()
                                                     for t in tensors.values()) / 1e6))


if __name__ == "__main__":
    main()
