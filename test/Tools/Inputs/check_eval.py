"""Recompute moeq_eval.py's figures independently and compare.

  check_eval.py EVAL_JSON EXPORTED_MODEL ORIGINAL_MODEL TEXT --seq-len N [--max-windows W]

Byte tokens (UTF-8 byte mod vocab), non-overlapping windows of N tokens. The perplexity comes
from transformers' own loss (`labels=ids`: its shift and cross-entropy, weighted by the
window's predictions); KL(original || exported) and top-1 agreement from float64 softmaxes.
Prints the differences and OK when every figure agrees to 1e-6 relative.
"""
import argparse
import json
import math

import torch
import transformers


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("eval_json")
    ap.add_argument("exported")
    ap.add_argument("original")
    ap.add_argument("text")
    ap.add_argument("--seq-len", type=int, required=True)
    ap.add_argument("--max-windows", type=int, default=0)
    a = ap.parse_args()
    got = json.load(open(a.eval_json))
    q = transformers.AutoModelForCausalLM.from_pretrained(a.exported, dtype=torch.float32).eval()
    p = transformers.AutoModelForCausalLM.from_pretrained(a.original, dtype=torch.float32).eval()
    vocab = q.config.vocab_size
    data = [b % vocab for b in open(a.text, "rb").read()]
    wins = [data[i:i + a.seq_len] for i in range(0, len(data) - a.seq_len + 1, a.seq_len)]
    wins = wins[:a.max_windows or None]
    ce = kl = 0.0
    agree = n = 0
    with torch.no_grad():
        for w in wins:
            ids = torch.tensor([w])
            out_q = q(input_ids=ids, labels=ids)
            ce += float(out_q.loss) * (len(w) - 1)
            lq = torch.log_softmax(out_q.logits[0, :-1].double(), -1)
            lp = torch.log_softmax(p(input_ids=ids).logits[0, :-1].double(), -1)
            kl += float((lp.exp() * (lp - lq)).sum())
            agree += int((lp.argmax(-1) == lq.argmax(-1)).sum())
            n += len(w) - 1
    want = {"predictions": n, "perplexity": math.exp(ce / n), "kl": kl / n,
            "top1_agreement": agree / n}
    ok = got["predictions"] == n
    for key in ("perplexity", "kl", "top1_agreement"):
        rel = abs(got[key] - want[key]) / max(abs(want[key]), 1e-12)
        print("%s: moeq_eval %.8g, recomputed %.8g, relative difference %.1e"
              % (key, got[key], want[key], rel))
        ok = ok and rel < 1e-5
    print("OK" if ok else "MISMATCH")


if __name__ == "__main__":
    main()
