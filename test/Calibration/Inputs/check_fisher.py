"""Recompute the expert Fisher information of moeq_calibrate.py --fisher independently.

  check_fisher.py MODEL_DIR TEXT STATS --seq-len N --sequences S

STATS: the statistics directory (format version 2; the Fisher tensors are in the layer files).
Byte tokens, the first S sequences of N tokens; for each, transformers' own LM loss
(`labels=ids`, its internal shift and cross-entropy: not the tool's code path) is
back-propagated and the squared gradients of every routed expert weight are averaged.
Prints the number of Fisher tensors compared and the largest relative difference
(max |a - b| / max |b| per tensor), OK below 1e-4.
"""
import argparse
import os
import sys

import torch
import transformers

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..",
                                "tools", "python"))
from moeq_calibrate import load_statistics  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("text")
    ap.add_argument("stats")
    ap.add_argument("--seq-len", type=int, required=True)
    ap.add_argument("--sequences", type=int, required=True)
    a = ap.parse_args()
    model = transformers.AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.float32)
    model.eval()
    vocab = model.config.vocab_size
    data = [b % vocab for b in open(a.text, "rb").read()]
    seqs = [data[i:i + a.seq_len] for i in range(0, len(data), a.seq_len)][:a.sequences]
    seqs = [s for s in seqs if len(s) >= 2]
    weights = {}
    for i, layer in enumerate(model.model.layers):
        for e, expert in enumerate(layer.block_sparse_moe.experts):
            for name, attr in (("gate", "w1"), ("up", "w3"), ("down", "w2")):
                weights["layers.%d.experts.%d.fisher_%s" % (i, e, name)] = getattr(expert, attr).weight
    total = {k: torch.zeros_like(w, dtype=torch.float64) for k, w in weights.items()}
    for s in seqs:
        ids = torch.tensor([s])
        model.zero_grad()
        model(input_ids=ids, labels=ids).loss.backward()
        for k, w in weights.items():
            if w.grad is not None:
                total[k] += w.grad.double() ** 2
    stats = load_statistics(a.stats)[2]
    worst = 0.0
    for k, t in total.items():
        ref = (t / len(seqs)).numpy()
        got = stats[k].astype("float64")
        scale = max(abs(ref).max(), 1e-30)
        worst = max(worst, float(abs(got - ref).max() / scale))
    print("fisher tensors %d" % len(total))
    print("max relative difference %.2e %s" % (worst, "OK" if worst < 1e-4 else "MISMATCH"))


if __name__ == "__main__":
    main()
