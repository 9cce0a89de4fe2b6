"""Check a `moeq-export --format dequantized` directory against its artifact.

  check_export.py ORIGINAL_MODEL ARTIFACT EXPORT

- The export loads with transformers (AutoModelForCausalLM, float32) with no
  missing, unexpected or mismatched tensors and no quantizer.
- Every routed expert's gate/up/down weight in the loaded model (read through
  the model's own modules: ModuleLists, or the fused 3-D parameters of
  Granite, Llama 4, gpt-oss) equals moeq.reference's dequantization of the
  artifact's packed tensors (manifest-driven Python, independent of the C++
  export), exactly.
- Quantized shared experts (--quantize-shared) equal moeq.reference's
  dequantization too; every other parameter equals the original model's.
- Logits on 24 tokens: the export vs the original model (quantization noise,
  printed) and vs the original model whose MoE blocks run the artifact
  through moeq.reference (the same weights: equal up to float32 rounding,
  relative 1e-4).
Prints one line per check and OK, or MISMATCH and exits 1.
"""
import argparse
import json
import os
import sys

import torch
import transformers

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "..", "..", "tools", "python"))
import moeq_calibrate as mc  # noqa: E402
from moeq import reference  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("original")
    ap.add_argument("artifact")
    ap.add_argument("export")
    a = ap.parse_args()
    ok = True

    model, info = transformers.AutoModelForCausalLM.from_pretrained(
        a.export, dtype=torch.float32, output_loading_info=True)
    problems = {k: v for k, v in info.items() if v}
    print("load: missing %d unexpected %d mismatched %d, quantized %s"
          % (len(info.get("missing_keys", [])), len(info.get("unexpected_keys", [])),
             len(info.get("mismatched_keys", [])), getattr(model, "hf_quantizer", None) is not None))
    if problems or getattr(model, "hf_quantizer", None) is not None:
        print("MISMATCH: %s" % problems)
        ok = False
    model.eval()
    original = transformers.AutoModelForCausalLM.from_pretrained(a.original, dtype=torch.float32)
    original.float()  # (transformers dequantizes MXFP4 experts to bfloat16, exactly)
    original.eval()

    manifest = json.load(open(os.path.join(a.artifact, "manifest.json")))
    from safetensors import safe_open
    files = {}

    def load(ref):
        if ref["file"] not in files:
            files[ref["file"]] = safe_open(os.path.join(a.artifact, ref["file"]), framework="pt")
        return files[ref["file"]].get_tensor(ref["tensor"])

    cfg = model.config
    mt = cfg.model_type
    names = mc.FAMILIES[mt][1]
    _, inter, _, _, _ = mc.model_shapes(cfg)
    _, blocks = mc.find_moe_layers(model, mt)
    blocks = dict(blocks)
    compared, worst = 0, 0.0
    for layer in manifest["layers"]:
        block = blocks[layer["layer"]]
        for expert in layer["experts"]:
            g, u, d, _, _ = mc.expert_matrices(mt, block, expert["expert"], names, inter, cfg)
            for role, got in zip(("gate", "up", "down"), (g, u, d)):
                linear = expert["linears"][role]
                want = reference.dequantize(linear, load)
                worst = max(worst, float((got.detach().float() - want).abs().max()))
                compared += 1
    # Quantized shared experts (--quantize-shared): their checkpoint names are the model's.
    state = model.state_dict()
    shared = set()
    for layer in manifest["layers"]:
        for role, linear in layer.get("shared_expert", {}).get("linears", {}).items():
            if "source" not in linear:
                continue
            name = linear["source"]["tensor"]
            shared.add(name)
            want = reference.dequantize(linear, load)
            worst = max(worst, float((state[name].float() - want).abs().max()))
            compared += 1
    print("expert weights: %d compared (%d shared), max |difference| %.3g"
          % (compared, len(shared), worst))
    if compared == 0 or worst != 0.0:
        print("MISMATCH: expert weights")
        ok = False

    theirs = dict(original.named_parameters())
    other, other_worst = 0, 0.0
    for name, p in model.named_parameters():
        if ".experts" in name or "input_linear" in name or "output_linear" in name:
            continue
        if name not in theirs or name in shared:
            continue
        other_worst = max(other_worst, float((p.detach() - theirs[name].detach()).abs().max()))
        other += 1
    print("other parameters: %d compared, max |difference| %.3g" % (other, other_worst))
    if other == 0 or other_worst != 0.0:
        print("MISMATCH: other parameters")
        ok = False

    ids = torch.tensor([[(7 * i + 3) % cfg.vocab_size for i in range(24)]])
    with torch.no_grad():
        exported = model(input_ids=ids).logits
        base = original(input_ids=ids).logits
        from moeq._patch import patch_model
        patch_model(original, reference.ReferenceArtifact(a.artifact))
        patched = original(input_ids=ids).logits
    scale = float(patched.abs().max())
    diff = float((exported - patched).abs().max())
    print("logits vs original: max |difference| %.3g (quantization)"
          % float((exported - base).abs().max()))
    print("logits vs original with the artifact's MoE layers (moeq.reference): "
          "max |difference| / max |logit| %.2e" % (diff / scale))
    if not diff <= 1e-4 * scale:
        print("MISMATCH: logits")
        ok = False
    print("OK" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
