"""Compare moeq's dequantized expert weights with an independent numpy RTN.

  check_dequantized.py MODEL.safetensors DEQUANTIZED.safetensors --bits B --group-size G

Asymmetric round to nearest per group of G input columns: scale rounded to
f16, zero = rint(-min / scale), code = clip(rint(w / scale) + zero, 0, 2^B - 1),
value = (code - zero) * scale, all in float32 like moeq. Prints the tensor
count and whether every tensor is equal bit for bit.
"""
import argparse

import numpy as np
from safetensors.numpy import load_file


def rtn(w, bits, group):
    rows, cols = w.shape
    g = w.reshape(rows, cols // group, group)
    lo, hi = g.min(axis=2, keepdims=True), g.max(axis=2, keepdims=True)
    scale = ((hi - lo) / np.float32(2**bits - 1)).astype(np.float32)
    scale = np.where(scale > 0, scale, np.float32(1)).astype(np.float16).astype(np.float32)
    zero = np.rint(-lo / scale).astype(np.float32)
    code = np.clip(np.rint(g / scale) + zero, 0, 2**bits - 1).astype(np.float32)
    return ((code - zero) * scale).astype(np.float32).reshape(rows, cols)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("dequantized")
    ap.add_argument("--bits", type=int, required=True)
    ap.add_argument("--group-size", type=int, required=True)
    args = ap.parse_args()
    model, deq = load_file(args.model), load_file(args.dequantized)
    same = all(np.array_equal(rtn(model[name], args.bits, args.group_size), value)
               for name, value in deq.items())
    print("%d tensors" % len(deq))
    print("bit-exact", same)


if __name__ == "__main__":
    main()
