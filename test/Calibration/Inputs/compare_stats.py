"""Compare two calibration statistics files (docs/calibration-stats.md) tensor by tensor.

  compare_stats.py A B [--tolerance 1e-9] [--derived-tolerance 1e-5]

Same tensor names, dtypes and shapes; I64 tensors equal; F64 tensors within a relative tolerance
(max |a - b| / max |b|, per tensor); metadata equal except `producer`. Prints the worst relative
difference of each class and `OK`, or the mismatches and exits 1.

Two classes of F64 tensors, because the two producers differ in where they round:
  * sums over the captured inputs themselves (`gram_all`, `experts.e.gram_in`, `shared.gram_in`)
    and the sampled inputs (`experts.e.samples`):
    both producers accumulate the same float32 values in float64, so they agree to --tolerance;
  * quantities that depend on routing weights or on expert activations (`affinity_sum`, every
    `*_weighted`, every `gram_down`, `sample_weights`): moeq_calibrate.py computes those in float64 while moeq-stats
    takes them from moeq's float32 CPU oracle (the executed IR), so they agree only to float32
    rounding amplified by the activation (silu(g) * u cancels), --derived-tolerance.
"""
import argparse
import sys

import numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file


def is_derived(name):
    """True for sums that depend on routing weights or expert activations (see the docstring)."""
    leaf = name.rsplit(".", 1)[-1]
    return (leaf in ("affinity_sum", "gram_down", "sample_weights")
            or leaf.endswith("_weighted"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--tolerance", type=float, default=1e-9,
                    help="relative tolerance for sums over the captured inputs")
    ap.add_argument("--derived-tolerance", type=float, default=1e-5,
                    help="relative tolerance for routing- and activation-derived sums")
    args = ap.parse_args()
    metas = []
    for path in (args.a, args.b):
        with safe_open(path, "np") as f:
            m = dict(f.metadata() or {})
        m.pop("producer", None)
        metas.append(m)
    errors = []
    if metas[0] != metas[1]:
        errors.append("metadata differs: %s vs %s" % (metas[0], metas[1]))
    a, b = load_file(args.a), load_file(args.b)
    if set(a) != set(b):
        errors.append("tensor names differ: only in A %s, only in B %s"
                      % (sorted(set(a) - set(b))[:8], sorted(set(b) - set(a))[:8]))
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
        kind = "derived" if is_derived(name) else "input"
        tolerance = args.derived_tolerance if kind == "derived" else args.tolerance
        if not rel <= tolerance:
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
