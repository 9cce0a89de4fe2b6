#!/usr/bin/env python3
"""Evaluate a compiled moeq artifact through transformers: perplexity, KL divergence to the
original model and top-1 agreement on a text.

  moeq_eval.py ARTIFACT --text FILE [--original MODEL_DIR] [--backend export|reference|emulator|cuda]
               [--tokenizer auto|bytes] [--seq-len 512] [--max-windows N] [--batch-size 4]
               [--dtype float32|bfloat16] [--moeq-export PATH] [--json FILE] [--quiet]

The quantized model:
- `export` (default): `moeq-export ARTIFACT --format dequantized` into a temporary directory,
  loaded with AutoModelForCausalLM: the artifact alone, the weights moeq ships as floats;
- `reference`: the original model (--original) whose MoE blocks run the artifact through
  moeq.reference (PyTorch, any device);
- `emulator` / `cuda`: the same through moeq's runtime (libmoeq_runtime.so; cuda needs a GPU).

The text is tokenised with the artifact's tokenizer (`auto`; hf/ holds it) or as bytes
(`bytes`: token = UTF-8 byte mod vocab_size, for tokenizer-less models) and cut into
non-overlapping windows of --seq-len tokens (at most --max-windows). Every next-token
prediction of a window counts:
- perplexity = exp(mean cross-entropy), of the artifact and (with --original) of the original;
- KL = mean over predictions of KL(original || artifact) in nats per token;
- top-1 agreement = fraction of predictions whose argmax is the same.
Without --original only the artifact's perplexity is reported. Prints a table and one line
`eval-json {...}` (also written to --json).
"""
import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)


class EvalError(Exception):
    pass


def log(msg):
    print("[moeq_eval.py] " + msg, file=sys.stderr)
    sys.stderr.flush()


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("artifact")
    ap.add_argument("--text", required=True, help="UTF-8 text to evaluate on")
    ap.add_argument("--original", help="the checkpoint the artifact was compiled from "
                    "(KL and top-1 agreement; needed by --backend reference/emulator/cuda)")
    ap.add_argument("--backend", choices=("export", "reference", "emulator", "cuda"),
                    default="export")
    ap.add_argument("--tokenizer", choices=("auto", "bytes"), default="auto")
    ap.add_argument("--seq-len", type=int, default=512)
    ap.add_argument("--max-windows", type=int, default=0, help="0: every window of the text")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    ap.add_argument("--moeq-export", default="", help="the moeq-export binary "
                    "(default: on PATH, or beside this script's build)")
    ap.add_argument("--json", default="", help="also write the results as JSON to this file")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    a = ap.parse_args(argv)
    if a.seq_len < 2 or a.batch_size < 1 or a.max_windows < 0:
        ap.error("--seq-len must be >= 2, --batch-size >= 1, --max-windows >= 0")
    if a.backend != "export" and not a.original:
        ap.error("--backend %s runs the original model's non-MoE layers: give --original"
                 % a.backend)
    return a


def find_moeq_export(given):
    if given:
        if not os.access(given, os.X_OK):
            raise EvalError("--moeq-export '%s' is not an executable" % given)
        return given
    found = shutil.which("moeq-export")
    if found:
        return found
    for candidate in (os.path.join(here, "..", "..", "build", "bin", "moeq-export"),):
        if os.access(candidate, os.X_OK):
            return os.path.abspath(candidate)
    raise EvalError("moeq-export not found: put the build's bin/ on PATH or give --moeq-export")


def load_model(path, dtype):
    import torch
    import transformers
    try:
        model = transformers.AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    except Exception as e:  # noqa: BLE001
        raise EvalError("cannot load '%s' with transformers: %s" % (path, e))
    model.to(dtype)  # (MXFP4 experts come back as bfloat16 whatever dtype asks for)
    model.eval()
    torch.set_grad_enabled(False)
    return model


def windows_of(tokens, seq_len, max_windows):
    out = [tokens[i:i + seq_len] for i in range(0, len(tokens) - seq_len + 1, seq_len)]
    if not out and len(tokens) >= 2:
        out = [tokens]
    return out[:max_windows or None]


def progress_bar(total, quiet):
    if quiet:
        return None
    from tqdm import tqdm
    return tqdm(total=total, unit="window", file=sys.stderr, desc="[moeq_eval.py] evaluating")


def evaluate(quantized, original, windows, batch_size, quiet):
    """Sums over every next-token prediction of the windows."""
    import torch
    import torch.nn.functional as F
    sums = {"predictions": 0, "ce": 0.0, "ce_original": 0.0, "kl": 0.0, "agree": 0}
    bar = progress_bar(len(windows), quiet)
    for start in range(0, len(windows), batch_size):
        batch = windows[start:start + batch_size]
        length = min(len(w) for w in batch)
        ids = torch.tensor([w[:length] for w in batch], dtype=torch.long)
        targets = ids[:, 1:].reshape(-1)
        logq = F.log_softmax(quantized(input_ids=ids).logits[:, :-1].float(), dim=-1)
        logq = logq.reshape(-1, logq.shape[-1])
        sums["predictions"] += targets.numel()
        sums["ce"] += float(F.nll_loss(logq, targets, reduction="sum"))
        if original is not None:
            logp = F.log_softmax(original(input_ids=ids).logits[:, :-1].float(), dim=-1)
            logp = logp.reshape(-1, logp.shape[-1])
            sums["ce_original"] += float(F.nll_loss(logp, targets, reduction="sum"))
            sums["kl"] += float((logp.exp() * (logp - logq)).sum())
            sums["agree"] += int((logp.argmax(-1) == logq.argmax(-1)).sum())
        if bar is not None:
            bar.update(len(batch))
    if bar is not None:
        bar.close()
    return sums


def report_json(tag, result, path):
    """One line `TAG {...}` on stdout, and the same indented in `path` when given."""
    print(tag + " " + json.dumps(result, sort_keys=True))
    if path:
        with open(path, "w") as f:
            json.dump(result, f, indent=2, sort_keys=True)
            f.write("\n")


def main(argv):
    a = parse_args(argv)
    import torch
    import moeq_calibrate as mc
    dtype = torch.float32 if a.dtype == "float32" else torch.bfloat16
    hf = os.path.join(a.artifact, "hf")
    if not os.path.isfile(os.path.join(a.artifact, "manifest.json")):
        raise EvalError("'%s' is not a moeq artifact (no manifest.json)" % a.artifact)
    if not os.path.isfile(os.path.join(hf, "config.json")):
        raise EvalError("'%s' has no hf/config.json (compiled before artifacts kept the "
                        "config: compile it again)" % a.artifact)
    t0 = time.time()
    original = load_model(a.original, dtype) if a.original else None
    with tempfile.TemporaryDirectory(prefix="moeq-eval-") as tmp:
        if a.backend == "export":
            exported = os.path.join(tmp, "model")
            cmd = [find_moeq_export(a.moeq_export), a.artifact, "--format", "dequantized",
                   "-o", exported, "--quiet"]
            run = subprocess.run(cmd, capture_output=True, text=True)
            if run.returncode != 0:
                raise EvalError("moeq-export failed: %s" % run.stderr.strip())
            quantized = load_model(exported, dtype)
        else:
            quantized = load_model(a.original, dtype)
            if a.backend == "reference":
                from moeq import reference
                artifact = reference.ReferenceArtifact(a.artifact)
            else:
                import moeq
                artifact = moeq.Artifact(a.artifact, backend=a.backend)
            from moeq._patch import patch_model
            patch_model(quantized, artifact)
        vocab = quantized.config.get_text_config().vocab_size
        tokens = mc.Tokens(hf, a.tokenizer, vocab)
        try:
            ids = tokens.encode_file(a.text)
        except mc.CalibError as e:
            raise EvalError(str(e).replace("calibration text", "text"))
        windows = windows_of(ids, a.seq_len, a.max_windows)
        if not windows:
            raise EvalError("the text gives %d tokens: nothing to predict" % len(ids))
        log("%d windows of %d tokens (%s tokens), backend %s"
            % (len(windows), len(windows[0]), tokens.kind, a.backend))
        sums = evaluate(quantized, original, windows, a.batch_size, a.quiet)
    n = sums["predictions"]
    result = {"artifact": a.artifact, "backend": a.backend, "tokenizer": tokens.kind,
              "windows": len(windows), "predictions": n,
              "perplexity": math.exp(sums["ce"] / n), "seconds": round(time.time() - t0, 2)}
    if original is not None:
        result.update({"original_perplexity": math.exp(sums["ce_original"] / n),
                       "kl": sums["kl"] / n, "top1_agreement": sums["agree"] / n})
    print("%-22s %s" % ("artifact", a.artifact))
    print("%-22s %d windows, %d predictions (%s tokens)" % ("text", len(windows), n, tokens.kind))
    print("%-22s %.4f" % ("perplexity", result["perplexity"]))
    if original is not None:
        print("%-22s %.4f" % ("original perplexity", result["original_perplexity"]))
        print("%-22s %.6g nats/token" % ("KL to original", result["kl"]))
        print("%-22s %.4f" % ("top-1 agreement", result["top1_agreement"]))
    report_json("eval-json", result, a.json)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except EvalError as e:
        print("moeq_eval.py: error: %s" % e, file=sys.stderr)
        sys.exit(1)
