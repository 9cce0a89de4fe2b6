"""A Mixtral MoE block in numpy (float64), for checking moeq's CPU execution.

  mixtral_block_reference.py MODEL_DIR WEIGHTS X Y --layer L [--top-k K]

Router `model.layers.L.block_sparse_moe.gate.weight` from MODEL_DIR's
model.safetensors; expert weights w1 (gate), w3 (up), w2 (down) from WEIGHTS
(e.g. moeq-translate --export-dequantized output) when present there, else from
the checkpoint. softmax over the router logits, top-k, renormalised weights,
y = sum_k c_k w2 (silu(w1 x) * w3 x). Compares with tensor 'y' of Y and prints
the largest error relative to max |y| (OK below 1e-4).
"""
import argparse
import os

import numpy as np
from safetensors.numpy import load_file


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("weights")
    ap.add_argument("x")
    ap.add_argument("y")
    ap.add_argument("--layer", type=int, required=True)
    ap.add_argument("--top-k", type=int, default=2)
    a = ap.parse_args()
    ck = load_file(os.path.join(a.model, "model.safetensors"))
    over = load_file(a.weights)
    p = "model.layers.%d.block_sparse_moe." % a.layer
    get = lambda n: (over[n] if n in over else ck[n]).astype(np.float64)  # noqa: E731
    x = load_file(a.x)["x"].astype(np.float64)
    router = get(p + "gate.weight")
    logits = x @ router.T
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    top = np.argsort(-probs, axis=1, kind="stable")[:, :a.top_k]
    y = np.zeros_like(x)
    for t in range(x.shape[0]):
        c = probs[t, top[t]] / probs[t, top[t]].sum()
        for k, e in enumerate(top[t]):
            q = p + "experts.%d." % e
            g, u = get(q + "w1.weight") @ x[t], get(q + "w3.weight") @ x[t]
            h = g / (1 + np.exp(-g)) * u
            y[t] += c[k] * (get(q + "w2.weight") @ h)
    got = load_file(a.y)["y"].astype(np.float64)
    err = float(np.abs(got - y).max() / np.abs(y).max())
    print("overridden %d" % sum(1 for n in over if n.startswith(p + "experts.")))
    print("max relative error %.2e %s" % (err, "OK" if err < 1e-4 else "MISMATCH"))


if __name__ == "__main__":
    main()
