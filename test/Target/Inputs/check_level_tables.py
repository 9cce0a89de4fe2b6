"""Check moeq's level-table (DDQ adaptive resolution) weights independently.

  check_level_tables.py MODEL.safetensors PACKED.safetensors DEQUANTIZED.safetensors
      --bits B --group-size G

For every expert weight W of the model it decodes the packed archive itself
(little-endian B-bit codes in 32-bit words, `.levels` f16 [rows, groups * 2^B])
and checks that
  - the dequantized export equals levels[code], bit for bit;
  - each weight's code selects the level nearest to it (ties either way);
  - the outer levels are the group's minimum and maximum (f16), and each
    inner level in use is the mean of the weights that selected it (a fixed
    point of Lloyd's algorithm, up to the f16 rounding of the level);
  - the squared error is below that of the uniform asymmetric grid of the
    same width (f16 scale, integer zero point).
Prints the tensor count, each verdict and the error ratio table / grid.
"""
import argparse

import numpy as np
from safetensors.numpy import load_file


def unpack(words, rows, cols, bits):
    stream = np.unpackbits(words.astype("<u4").view(np.uint8).reshape(rows, -1),
                           axis=1, bitorder="little")
    stream = stream[:, :cols * bits].reshape(rows, cols, bits).astype(np.int64)
    return (stream << np.arange(bits)).sum(axis=2)


def uniform_error(w, bits, group):
    rows, cols = w.shape
    g = w.reshape(rows, cols // group, group)
    lo, hi = g.min(axis=2, keepdims=True), g.max(axis=2, keepdims=True)
    scale = ((hi - lo) / np.float32(2**bits - 1)).astype(np.float16).astype(np.float32)
    scale = np.where(scale > 0, scale, np.float32(1))
    zero = np.rint(-lo / scale)
    code = np.clip(np.rint(g / scale) + zero, 0, 2**bits - 1)
    return float((((code - zero) * scale - g) ** 2).sum())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("packed")
    ap.add_argument("dequantized")
    ap.add_argument("--bits", type=int, required=True)
    ap.add_argument("--group-size", type=int, required=True)
    a = ap.parse_args()
    model, packed, deq = load_file(a.model), load_file(a.packed), load_file(a.dequantized)
    levels_n = 2**a.bits
    exact = nearest = stationary = True
    err_table = err_grid = 0.0
    for name, d in sorted(deq.items()):
        w = model[name].astype(np.float32)
        rows, cols = w.shape
        groups = cols // a.group_size
        codes = unpack(packed[name + ".qweight"], rows, cols, a.bits)
        table = packed[name + ".levels"].astype(np.float32).reshape(rows, groups, levels_n)
        gidx = np.arange(cols) // a.group_size
        values = table[np.arange(rows)[:, None], gidx[None, :], codes]
        exact &= bool(np.array_equal(values, d))
        dist = np.abs(w[:, :, None] - table[:, gidx, :])
        best = dist.min(axis=2)
        chosen = np.take_along_axis(dist, codes[:, :, None], axis=2)[:, :, 0]
        nearest &= bool(np.all(chosen <= best + 1e-7))
        for r in range(rows):
            for g in range(groups):
                cw = w[r, g * a.group_size:(g + 1) * a.group_size]
                cc = codes[r, g * a.group_size:(g + 1) * a.group_size]
                ends = np.array([cw.min(), cw.max()], np.float32).astype(np.float16).astype(np.float32)
                stationary &= bool(table[r, g, 0] == ends[0] and table[r, g, -1] == ends[1])
                for lvl in np.unique(cc):
                    if lvl in (0, levels_n - 1):
                        continue
                    mean = cw[cc == lvl].mean()
                    level = table[r, g, lvl]
                    stationary &= bool(abs(level - mean) <= 1e-3 * (1 + abs(mean)))
        err_table += float(((values - w) ** 2).sum())
        err_grid += uniform_error(w, a.bits, a.group_size)
    print("%d tensors" % len(deq))
    print("bit-exact %s" % exact)
    print("nearest %s" % nearest)
    print("stationary %s" % stationary)
    print("better-than-grid %s ratio %.3f" % (err_table < err_grid, err_table / err_grid))


if __name__ == "__main__":
    main()
