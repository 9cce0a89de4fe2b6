"""Compare two calibration statistics (docs/calibration-stats.md) tensor by tensor.

  compare_stats.py A B [--tolerance 1e-9] [--derived-tolerance 1e-5]

A and B: format version 2 directories (or version 1 files). Same tensor names, dtypes and shapes;
I64 tensors equal; float tensors within a relative tolerance (max |a - b| / max |b|, per tensor);
metadata equal except `producer` (version 2: the index, and every layer file's metadata); two
version 2 directories must have byte-identical indexes (stats.json). Prints the worst relative
difference of each class and `OK`, or the mismatches and exits 1.

Two classes of float tensors, because the two producers differ in where they round:
  * sums over the captured inputs themselves (`gram_all`, `experts.e.gram_in`, `shared.gram_in`)
    and the sampled inputs (`experts.e.samples`):
    both producers accumulate the same float32 values in float64, so they agree to --tolerance;
    stored as float32 (version 2) each is that float64 sum rounded once, so they differ by at
    most one float32 ulp per element (checked element by element);
  * quantities that depend on routing weights or on expert activations (`affinity_sum`, every
    `*_weighted`, every `gram_down`, `sample_weights`; for Llama 4, whose routing weight
    scales the expert input, also the experts' `gram_in` and `samples`): moeq_calibrate.py computes those in float64 while moeq-stats
    takes them from moeq's float32 CPU oracle (the executed IR), so they agree only to float32
    rounding amplified by the activation (silu(g) * u cancels), --derived-tolerance.
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..",
                                "tools", "python"))
from moeq_calibrate import load_statistics  # noqa: E402


def is_derived(name, weights_on_inputs=False):
    """True for sums that depend on routing weights or expert activations (see the docstring).
    When the routing weight scales the expert's input (Llama 4), the routed experts' inputs
    (`gram_in`, `samples`) are c * x and depend on it too."""
    leaf = name.rsplit(".", 1)[-1]
    return (leaf in ("affinity_sum", "gram_down", "sample_weights")
            or leaf.endswith("_weighted")
            or (weights_on_inputs and ".experts." in name and leaf in ("gram_in", "samples")))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--tolerance", type=float, default=1e-9,
                    help="relative tolerance for sums over the captured inputs")
    ap.add_argument("--derived-tolerance", type=float, default=1e-5,
                    help="relative tolerance for routing- and activation-derived sums")
    args = ap.parse_args()
    loaded = [load_statistics(path, dense=False) for path in (args.a, args.b)]
    errors = []

    def strip(meta):
        return {k: v for k, v in meta.items() if k != "producer"}

    if strip(loaded[0][0]) != strip(loaded[1][0]):
        errors.append("metadata differs: %s vs %s" % (strip(loaded[0][0]), strip(loaded[1][0])))
    if set(loaded[0][1]) != set(loaded[1][1]):
        errors.append("layer files differ: %s vs %s" % (sorted(loaded[0][1]), sorted(loaded[1][1])))
    for layer in sorted(set(loaded[0][1]) & set(loaded[1][1])):
        if strip(loaded[0][1][layer]) != strip(loaded[1][1][layer]):
            errors.append("layer %d metadata differs: %s vs %s"
                          % (layer, strip(loaded[0][1][layer]), strip(loaded[1][1][layer])))
    if os.path.isdir(args.a) and os.path.isdir(args.b):
        index = [open(os.path.join(p, "stats.json"), "rb").read() for p in (args.a, args.b)]
        if index[0] != index[1]:
            errors.append("stats.json differs: %r vs %r" % (index[0], index[1]))
    a, b = loaded[0][2], loaded[1][2]
    weights_on_inputs = loaded[0][0].get("model_type") in ("llama4_text", "llama4")
    worst = {"input": (0.0, ""), "derived": (0.0, "")}
    for name in sorted(set(a) & set(b)):
        x, y = a[name], b[name]
        if x.dtype != y.dtype or x.shape != y.shape:
            errors.append("%s: %s %s vs %s %s" % (name, x.dtype, x.shape, y.dtype, y.shape))
            continue
        if x.dtype.kind in "iu":
            if not np.array_equal(x, y):
                errors.append("%s: %s vs %s" % (name, x.tolist(), y.tolist()))
            continue
        scale = float(np.abs(y).max()) if y.size else 0.0
        diff = float(np.abs(x.astype(np.float64) - y).max()) if y.size else 0.0
        rel = diff / scale if scale > 0 else diff
        kind = "derived" if is_derived(name, weights_on_inputs) else "input"
        tolerance = args.derived_tolerance if kind == "derived" else args.tolerance
        if kind == "input" and x.dtype == np.float32:
            # Two roundings of float64 sums equal to --tolerance: at most one ulp apart.
            ulp = np.spacing(np.maximum(np.abs(x), np.abs(y))) + args.tolerance * scale
            far = int((np.abs(x - y) > ulp).sum())
            if far:
                errors.append("%s: %d elements differ by more than one float32 ulp" % (name, far))
        elif not rel <= tolerance:
            errors.append("%s: relative difference %.3g > %g" % (name, rel, tolerance))
        if rel >= worst[kind][0]:
            worst[kind] = (rel, name)
    print("compared %d tensors, worst relative difference: inputs %.3g (%s), derived %.3g (%s)"
          % (len(a), worst["input"][0], worst["input"][1], worst["derived"][0],
             worst["derived"][1]))
    if errors:
        for e in errors[:20]:
            print("MISMATCH " + e)
        print("FAILED: %d mismatches" % len(errors))
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
