#!/usr/bin/env python3
"""A compiled artifact inside a transformers model, against PyTorch.

    check_model.py MODEL_DIR ARTIFACT [--backend cuda|emulator] [--text FILE]
                   [--windows N] [--window-bytes B] [--rows R] [--json OUT]

Loads the checkpoint with transformers (float32), then:
  1. each MoE layer: the runtime's output (moeq.Artifact.run_layer) against
     moeq.reference (the artifact's dequantized weights and routing in
     PyTorch, float32) on the same random rows: max |error| / max |y|;
  2. the whole model twice, its MoE blocks patched once with the runtime
     (moeq.patch_model) and once with the reference: max logit difference,
     mean KL(reference || runtime), top-1 agreement and, with --text
     (byte-level models such as the fixture: token = byte), the perplexity
     of each on N non-overlapping windows;
  3. greedy generate() of 8 tokens with each: equal or not.
With --reference-only, only the reference's perplexity (for instance on the
CPU, before a GPU run: --cpu-reference then compares the GPU's figures with
it).
Prints one line per figure and writes them as JSON. Exit 1 when a figure is
out of its tolerance (layer error > 1e-2 relative, top-1 agreement < 0.98,
perplexities differing by more than 1%).
"""
import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools" / "python"))
import moeq  # noqa: E402
from moeq.reference import ReferenceArtifact  # noqa: E402


def text_vocab_size(config):
    """The language model's vocabulary (a multimodal config, Llama 4's, nests it)."""
    return getattr(config, "text_config", config).vocab_size


def load_model(model_dir, device, artifact):
    """The checkpoint in MODEL_DIR; a directory holding only config.json
    takes its weights from the artifact's params.safetensors (everything
    but the experts, which the patched blocks replace anyway)."""
    import tempfile
    from transformers import AutoModelForCausalLM, logging
    model_dir = Path(model_dir)
    if not list(model_dir.glob("*.safetensors")):
        staged = Path(tempfile.mkdtemp(prefix="moeq-model-"))
        (staged / "config.json").write_text((model_dir / "config.json").read_text())
        (staged / "model.safetensors").symlink_to(Path(artifact).resolve() / "params.safetensors")
        model_dir = staged
        logging.set_verbosity_error()  # the experts' weights are missing on purpose
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
    return model.to(device).eval()


def windows_of(args, vocab, device):
    if args.text:
        data = Path(args.text).read_bytes()
        n = min(args.windows, len(data) // args.window_bytes)
        ids = torch.tensor(list(data[: n * args.window_bytes]), dtype=torch.long)
        return ids.view(n, args.window_bytes).to(device)
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, vocab, (args.windows, args.window_bytes), generator=g).to(device)


def evaluate(model, ids, batch):
    """Logits of every window, and the mean negative log-likelihood of the
    next token."""
    logits, nll, count = [], 0.0, 0
    with torch.no_grad():
        for start in range(0, ids.shape[0], batch):
            chunk = ids[start:start + batch]
            out = model(chunk).logits.float()
            logits.append(out.cpu())
            loss = torch.nn.functional.cross_entropy(
                out[:, :-1].reshape(-1, out.shape[-1]), chunk[:, 1:].reshape(-1), reduction="sum")
            nll += loss.item()
            count += chunk[:, 1:].numel()
    return torch.cat(logits), nll / count


def reference_only(args):
    """The reference's perplexity on the windows of --text, on the CPU."""
    from transformers import AutoConfig
    reference = ReferenceArtifact(args.artifact, device="cpu")
    ids = windows_of(args, text_vocab_size(AutoConfig.from_pretrained(args.model_dir)), "cpu")
    m = load_model(args.model_dir, "cpu", args.artifact)
    moeq.patch_model(m, reference)
    start = time.time()
    _, nll = evaluate(m, ids, args.batch)
    result = {"perplexity_reference_cpu": math.exp(nll), "windows": int(ids.shape[0]),
              "tokens_per_window": int(ids.shape[1]), "seconds": time.time() - start}
    print("reference perplexity on the CPU: %.5f (%d windows x %d bytes, %.0f s)" % (
        result["perplexity_reference_cpu"], ids.shape[0], ids.shape[1], result["seconds"]))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir")
    parser.add_argument("artifact")
    parser.add_argument("--backend", default="cuda", choices=["cuda", "emulator"])
    parser.add_argument("--library", default=None, help="libmoeq_runtime.so")
    parser.add_argument("--text", default=None)
    parser.add_argument("--windows", type=int, default=8)
    parser.add_argument("--window-bytes", type=int, default=64)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--rows", type=int, default=33)
    parser.add_argument("--json", default=None)
    parser.add_argument("--reference-only", action="store_true",
                        help="only the reference's perplexity (any device; with --text)")
    parser.add_argument("--cpu-reference", default=None,
                        help="JSON of a --reference-only run (same windows) to compare with")
    args = parser.parse_args()
    if args.reference_only:
        return reference_only(args)

    device = "cuda" if args.backend == "cuda" else "cpu"
    results, ok = {"backend": args.backend}, True
    runtime = moeq.Artifact(args.artifact, backend=args.backend, library=args.library)
    reference = ReferenceArtifact(args.artifact, device=device)

    # 1. Layer by layer on random rows (f16-representable).
    g = torch.Generator().manual_seed(1)
    layer_errors = {}
    for layer in runtime.layers:
        x = (torch.rand(args.rows, runtime.hidden_size, generator=g) * 4 - 2).half().float()
        x = x.to(device)
        y_run = runtime.run_layer(layer, x).float()
        y_ref = reference.run_layer(layer, x).float()
        err = ((y_run - y_ref).abs().max() / y_ref.abs().max()).item()
        layer_errors[layer] = err
        print("layer %d: runtime vs reference max |error| / max |y| = %.2e" % (layer, err))
        ok &= err <= 1e-2
    results["layer_relative_error"] = layer_errors

    # 2. The whole model, patched with each.
    from transformers import AutoConfig
    vocab = text_vocab_size(AutoConfig.from_pretrained(args.model_dir))
    ids = windows_of(args, vocab, device)
    patched = {}
    for name, artifact in (("reference", reference), ("runtime", runtime)):
        m = load_model(args.model_dir, device, args.artifact)
        moeq.patch_model(m, artifact)
        start = time.time()
        logits, nll = evaluate(m, ids, args.batch)
        patched[name] = (m, logits, nll, time.time() - start)
    _, ref_logits, ref_nll, _ = patched["reference"]
    _, run_logits, run_nll, run_seconds = patched["runtime"]
    ref_logp = ref_logits.log_softmax(-1)
    run_logp = run_logits.log_softmax(-1)
    kl = (ref_logp.exp() * (ref_logp - run_logp)).sum(-1).mean().item()
    top1 = (ref_logits.argmax(-1) == run_logits.argmax(-1)).float().mean().item()
    max_diff = (ref_logits - run_logits).abs().max().item()
    results.update(windows=int(ids.shape[0]), tokens_per_window=int(ids.shape[1]),
                   max_logit_difference=max_diff, kl_reference_runtime=kl, top1_agreement=top1,
                   runtime_seconds=run_seconds)
    print("model: max |logit difference| %.3e, KL(reference || runtime) %.2e, top-1 agreement "
          "%.4f over %d windows x %d tokens" % (max_diff, kl, top1, ids.shape[0], ids.shape[1]))
    ok &= top1 >= 0.98
    if args.text:
        # Byte-level: nats per byte -> perplexity per byte.
        ppl_ref, ppl_run = math.exp(ref_nll), math.exp(run_nll)
        results.update(perplexity_reference=ppl_ref, perplexity_runtime=ppl_run)
        print("perplexity: reference %.4f, runtime %.4f (relative difference %.2e)"
              % (ppl_ref, ppl_run, abs(ppl_run / ppl_ref - 1)))
        ok &= abs(ppl_run / ppl_ref - 1) <= 1e-2
        if args.cpu_reference:
            cpu = json.loads(Path(args.cpu_reference).read_text())["perplexity_reference_cpu"]
            results["perplexity_reference_cpu"] = cpu
            print("perplexity: the CPU's reference (dequantized, float32) %.4f, runtime on the "
                  "GPU relative difference %.2e" % (cpu, abs(ppl_run / cpu - 1)))
            ok &= abs(ppl_run / cpu - 1) <= 1e-2

    # 3. generate() runs through the patched blocks.
    prompt = ids[:1, :8]
    outputs = {}
    for name in ("reference", "runtime"):
        m = patched[name][0]
        with torch.no_grad():
            out = m.generate(prompt, max_new_tokens=8, do_sample=False, pad_token_id=0)
        outputs[name] = out[0, prompt.shape[1]:].tolist()
    same = outputs["reference"] == outputs["runtime"]
    results.update(generate_equal=same, generated=outputs["runtime"])
    print("generate: %d tokens, %s" % (len(outputs["runtime"]), "equal" if same else
                                       "DIFFERENT %s vs %s" % (outputs["reference"],
                                                               outputs["runtime"])))
    results["ok"] = bool(ok)
    print("OK" if ok else "MISMATCH")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
