"""Load a `moeq-export --format compressed-tensors` directory the way users do and compare it
with the dequantized export of the same artifact.

  check_ct_export.py CT_EXPORT DEQUANTIZED_EXPORT

- transformers 4.57.1 + compressed-tensors 0.14.0.1 load CT_EXPORT with
  CompressedTensorsConfig(run_compressed=False) (float32), with no missing, unexpected or
  mismatched tensors; the config groups are printed (format, bits, strategy, modules).
- Every quantized module's decompressed weight equals the dequantized export's tensor of the
  same name exactly (compressed-tensors' own unpacking, dequantize and zero points against
  moeq's), and every other parameter equals it too.
- The modules compressed-tensors quantized (those it gave a quantization_scheme, by its own
  target matching: exact names, or one `re:` target per layer's experts) are the quantized ones.
- With --vllm-layers N: vLLM's fused-MoE lookup, done with compressed-tensors' matcher: for each
  layer's experts `<P>`, the names `<P>.0.gate_proj/up_proj/down_proj` vLLM looks the layer's
  scheme up under must each match exactly one config group, the same one (N layers expected).
- Logits on 24 tokens: the compressed-tensors model (as transformers runs it: weights fake-
  quantized again on every call, int-quantized activations per token) against the
  dequantized export; printed, and within 1e-4 relative for weight-only schemes.
Prints OK, or MISMATCH and exits 1.
"""
import argparse
import json
import os
import re
import sys

import torch
import transformers
from transformers import CompressedTensorsConfig


def check_vllm_lookup(qc, quantized, expected_layers):
    """vLLM names a fused-MoE layer's projections `<P>.0.gate_proj` (up_proj, down_proj) and
    needs all three to resolve to one scheme."""
    from compressed_tensors.utils.match import _match_name
    prefixes = sorted({m.rsplit(".", 2)[0] for m in quantized
                       if re.search(r"\.experts\.\d+\.[^.]+$", m)})
    good = 0
    for prefix in prefixes:
        found = []
        for proj in ("gate_proj", "up_proj", "down_proj"):
            name = "%s.0.%s" % (prefix, proj)
            groups = [g for g, group in qc["config_groups"].items()
                      if any(_match_name(name, t) for t in group["targets"])]
            found.append(tuple(groups))
        if len(set(found)) == 1 and len(found[0]) == 1:
            good += 1
        else:
            print("vllm lookup: %s resolves to %s" % (prefix, found))
    print("vllm fused-moe lookup: %d of %d layers resolve to one scheme" % (good, len(prefixes)))
    return good == len(prefixes) == expected_layers


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("ct")
    ap.add_argument("dequantized")
    ap.add_argument("--vllm-layers", type=int, default=None)
    a = ap.parse_args()
    ok = True
    qc = json.load(open(os.path.join(a.ct, "config.json")))["quantization_config"]
    print("format %s, status %s" % (qc["format"], qc["quantization_status"]))
    for name, group in sorted(qc["config_groups"].items()):
        w = group["weights"]
        print("%s: %s %d-bit %s %s group %s, %d targets" % (
            name, group["format"], w["num_bits"], "sym" if w["symmetric"] else "asym",
            w["strategy"], w["group_size"], len(group["targets"])))
    model, info = transformers.AutoModelForCausalLM.from_pretrained(
        a.ct, dtype=torch.float32, output_loading_info=True,
        quantization_config=CompressedTensorsConfig(run_compressed=False))
    problems = {k: v for k, v in info.items() if v}
    print("load: missing %d unexpected %d mismatched %d" % (
        len(info.get("missing_keys", [])), len(info.get("unexpected_keys", [])),
        len(info.get("mismatched_keys", []))))
    if problems:
        print("MISMATCH: %s" % problems)
        ok = False
    model.eval()
    reference = transformers.AutoModelForCausalLM.from_pretrained(a.dequantized,
                                                                  dtype=torch.float32).eval()
    theirs = reference.state_dict()
    quantized = {name for name, module in model.named_modules()
                 if getattr(module, "quantization_scheme", None) is not None}
    print("modules quantized by compressed-tensors: %d" % len(quantized))
    if a.vllm_layers is not None:
        ok &= check_vllm_lookup(qc, quantized, a.vllm_layers)
    compared, worst, other, other_worst = 0, 0.0, 0, 0.0
    for name, module in model.named_modules():
        weight = getattr(module, "weight", None)
        if not isinstance(weight, torch.Tensor) or name + ".weight" not in theirs:
            continue
        diff = float((weight.detach().float() - theirs[name + ".weight"].float()).abs().max())
        if name in quantized:
            compared, worst = compared + 1, max(worst, diff)
        else:
            other, other_worst = other + 1, max(other_worst, diff)
    print("quantized weights: %d compared with the dequantized export, max |difference| %.3g"
          % (compared, worst))
    print("other weights: %d compared, max |difference| %.3g" % (other, other_worst))
    if compared != len(quantized) or worst != 0.0 or other_worst != 0.0:
        print("MISMATCH: weights")
        ok = False
    ids = torch.tensor([[(5 * i + 1) % model.config.vocab_size for i in range(24)]])
    with torch.no_grad():
        got, want = model(input_ids=ids).logits, reference(input_ids=ids).logits
    rel = float((got - want).abs().max() / want.abs().max())
    print("logits vs the dequantized export: max |difference| / max |logit| %.2e" % rel)
    weight_only = all(g["input_activations"] is None for g in qc["config_groups"].values())
    if weight_only and not rel <= 1e-4:
        print("MISMATCH: logits")
        ok = False
    print("OK" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
