#!/usr/bin/env python3
"""Inputs and output comparison for whole-layer tests (standard library
only: lit runs it with its own Python).

  layer_io.py make OUT --rows R --cols C [--seed S]
      writes tensor "x" (R x C, F32) of values uniform in [-2, 2] rounded to
      f16, so that the f16 runtime and the f32 CPU oracle see the same input.
  layer_io.py compare REFERENCE CANDIDATE [--rel-tol T]
      compares tensor "y" of two F32 safetensors files: prints the max
      absolute error, max |reference| and their ratio; exits 1 if the ratio
      exceeds T or any value is not finite."""
import argparse
import json
import math
import random
import struct
import sys


def read_f32(path, name):
    with open(path, "rb") as f:
        size = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(size))
        info = header[name]
        if info["dtype"] != "F32":
            sys.exit(f"{path}: tensor {name} is {info['dtype']}, expected F32")
        begin, end = info["data_offsets"]
        f.seek(8 + size + begin)
        data = f.read(end - begin)
    return info["shape"], struct.unpack(f"<{len(data) // 4}f", data)


def write_f32(path, name, shape, values):
    data = struct.pack(f"<{len(values)}f", *values)
    header = json.dumps({name: {"dtype": "F32", "shape": shape,
                                "data_offsets": [0, len(data)]}}).encode()
    header += b" " * (-len(header) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(header)) + header + data)


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    make = sub.add_parser("make")
    make.add_argument("out")
    make.add_argument("--rows", type=int, required=True)
    make.add_argument("--cols", type=int, required=True)
    make.add_argument("--seed", type=int, default=1)
    compare = sub.add_parser("compare")
    compare.add_argument("reference")
    compare.add_argument("candidate")
    compare.add_argument("--rel-tol", type=float, default=4e-3)
    args = parser.parse_args()

    if args.command == "make":
        rng = random.Random(args.seed)
        half = lambda v: struct.unpack("<e", struct.pack("<e", v))[0]
        values = [half(rng.uniform(-2, 2)) for _ in range(args.rows * args.cols)]
        write_f32(args.out, "x", [args.rows, args.cols], values)
        return 0

    ref_shape, ref = read_f32(args.reference, "y")
    got_shape, got = read_f32(args.candidate, "y")
    if ref_shape != got_shape:
        print(f"MISMATCH: shapes {ref_shape} and {got_shape}")
        return 1
    if not all(math.isfinite(v) for v in got):
        print("MISMATCH: non-finite output")
        return 1
    max_err = max(abs(a - b) for a, b in zip(ref, got))
    max_ref = max(abs(a) for a in ref)
    ratio = max_err / max(max_ref, 1e-30)
    verdict = "OK" if ratio <= args.rel_tol else "MISMATCH"
    print(f"rows {ref_shape[0]}: max |error| {max_err:.3e}, max |reference| {max_ref:.3e}, "
          f"relative {ratio:.2e} (tolerance {args.rel_tol:.0e}): {verdict}")
    return 0 if verdict == "OK" else 1


if __name__ == "__main__":
    sys.exit(main())
