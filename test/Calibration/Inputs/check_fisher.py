"""Recompute the expert Fisher information of moeq_calibrate.py --fisher independently.

  check_fisher.py MODEL_DIR TEXT STATS --seq-len N --sequences S

STATS: the statistics directory (format version 2; the Fisher tensors are in the layer files).
Byte tokens, the first S sequences of N tokens; for each, transformers' own LM loss
(`labels=ids`, its internal shift and cross-entropy: not the tool's code path) is
back-propagated and the squared gradients of every routed expert weight are averaged.
Fused 3-D expert parameters (Granite's input_linear/output_linear, Llama 4's and gpt-oss's
gate_up_proj/down_proj stored for x @ W, transformers 5's [E, 2I, H] / [E, H, I]) are sliced
here from the parameter names and shapes, [out, in] per expert.
Prints the number of Fisher tensors compared and the largest relative difference
(max |a - b| / max |b| per tensor), OK below 1e-4.
"""
import argparse
import os
import re
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
    params = dict(model.named_parameters())
    for p in params.values():
        p.requires_grad_(False)
    routed = {}  # parameter name -> the parameter (per-expert 2-D or fused 3-D)
    for name, p in params.items():
        if re.search(r"\.experts\.\d+\.(w1|w2|w3|gate_proj|up_proj|down_proj)\.weight$", name) or \
                re.search(r"\.experts\.(gate_up_proj|down_proj)$", name) or \
                re.search(r"\.(input_linear|output_linear)\.weight$", name):
            p.requires_grad_(True)
            routed[name] = p
    total = {k: torch.zeros_like(w, dtype=torch.float64) for k, w in routed.items()}
    for s in seqs:
        ids = torch.tensor([s])
        model.zero_grad()
        model(input_ids=ids, labels=ids).loss.backward()
        for k, w in routed.items():
            if w.grad is not None:
                total[k] += w.grad.double() ** 2
    mt = model.config.model_type
    fisher = {}
    for name, t in total.items():
        t = t / len(seqs)
        layer = int(re.search(r"layers\.(\d+)\.", name).group(1))
        key = lambda e, linear: "layers.%d.experts.%d.fisher_%s" % (layer, e, linear)
        m = re.search(r"\.experts\.(\d+)\.(\w+)\.weight$", name)
        if m:
            linear = {"w1": "gate", "gate_proj": "gate", "w3": "up", "up_proj": "up",
                      "w2": "down", "down_proj": "down"}[m.group(2)]
            fisher[key(int(m.group(1)), linear)] = t
            continue
        for e in range(t.shape[0]):
            w = t[e]
            if name.endswith("down_proj") or name.endswith("output_linear.weight"):
                # Stored for x @ W ([I, H]) in Llama 4 and gpt-oss, [H, I] otherwise.
                fisher[key(e, "down")] = w.T if mt in ("llama4_text", "gpt_oss") else w
            elif mt == "gpt_oss":  # [H, 2I], gate and up columns interleaved
                fisher[key(e, "gate")], fisher[key(e, "up")] = w[:, 0::2].T, w[:, 1::2].T
            elif mt == "llama4_text":  # [H, 2I], gate columns first
                half = w.shape[1] // 2
                fisher[key(e, "gate")], fisher[key(e, "up")] = w[:, :half].T, w[:, half:].T
            else:  # [2I, H], gate rows first
                half = w.shape[0] // 2
                fisher[key(e, "gate")], fisher[key(e, "up")] = w[:half], w[half:]
    stats = load_statistics(a.stats)[2]
    worst = 0.0
    for k, t in fisher.items():
        ref = t.numpy()
        got = stats[k].astype("float64")
        scale = max(abs(ref).max(), 1e-30)
        worst = max(worst, float(abs(got - ref).max() / scale))
    if not fisher or set(fisher) != {k for k in stats if ".fisher_" in k}:
        print("MISMATCH: fisher tensors %s, statistics %s"
              % (sorted(fisher)[:4], sorted(k for k in stats if ".fisher_" in k)[:4]))
    print("fisher tensors %d" % len(fisher))
    print("max relative difference %.2e %s" % (worst, "OK" if worst < 1e-4 else "MISMATCH"))


if __name__ == "__main__":
    main()
