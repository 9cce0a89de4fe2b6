"""Does a layer-level loss on the calibration samples predict whether
D^2-MoE helps at a budget? For each moeq-compile flag set it compiles the
model, exports the dequantized weights (moeq-export --format dequantized)
and sums, over the MoE layers, three losses of the quantized experts
against the checkpoint's, on the statistics' input samples:

  expert:      sum over experts and their samples of w * |E(x) - E'(x)|^2
               (w: the sample's gate weight; what moeq's measured
               sensitivity ranks linears by)
  moe_routed:  |sum_k g_k (E_k(x) - E'_k(x))|^2 over the experts' samples,
               routed by the checkpoint's router (errors of the experts a
               token is routed to add up coherently: D^2-MoE's shared base
               makes them correlated)
  moe_uniform: the same on the shared expert's samples (every token at a
               fixed stride, not biased towards any expert; only in
               statistics of models with a shared expert)

  python bench/d2_layer_loss.py MODEL STATS BUILD "--avg-bits 2.0" \\
      "--avg-bits 2.0 --d2-compression 0.4 --d2-rank-multiple 32" ...

Prints one JSON line per flag set. Compare the ranking with the KL of
bench/fixture_quality.py (docs/quantization.md, Defaults).
"""
import glob
import json
import os
import re
import subprocess
import sys
import tempfile

import torch
from safetensors.torch import load_file


def expert_names(weights, layer, expert):
    for prefix, gate, up, down in (
            ("model.layers.%s.block_sparse_moe.experts.%s." % (layer, expert), "w1", "w3", "w2"),
            ("model.layers.%s.mlp.experts.%s." % (layer, expert),
             "gate_proj", "up_proj", "down_proj")):
        if prefix + gate + ".weight" in weights:
            return [prefix + name + ".weight" for name in (gate, up, down)]
    sys.exit("no routed expert %s of layer %s in the checkpoint" % (expert, layer))


def router(weights, layer):
    for name in ("model.layers.%s.block_sparse_moe.gate.weight" % layer,
                 "model.layers.%s.mlp.gate.weight" % layer):
        if name in weights:
            return weights[name].float()
    sys.exit("no router of layer %s in the checkpoint" % layer)


def expert_output(w, x):
    gate, up, down = w
    return (torch.nn.functional.silu(x @ gate.T) * (x @ up.T)) @ down.T


def routed_error(original, quantized, layer, x, experts, top_k, renormalize):
    """|sum_k g_k (E_k(x) - E'_k(x))|^2 summed over the rows of x."""
    probs = torch.softmax(x @ router(original, layer).T, -1)
    chosen = torch.zeros_like(probs).scatter(1, probs.topk(top_k, -1).indices, 1.0)
    weights = probs * chosen
    if renormalize:
        weights = weights / weights.sum(-1, keepdim=True)
    error = torch.zeros_like(x)
    for e in range(experts):
        names = expert_names(original, layer, e)
        error += weights[:, e:e + 1] * (
            expert_output([original[n].float() for n in names], x) -
            expert_output([quantized[n].float() for n in names], x))
    return (error ** 2).sum().item()


def losses(original, quantized, stats, config):
    experts = config.get("num_local_experts") or config["num_experts"]
    top_k = config["num_experts_per_tok"]
    # Mixtral always renormalises the top-k gates; Qwen-MoE when norm_topk_prob.
    renormalize = config.get("norm_topk_prob", config["model_type"] == "mixtral")
    result = {"expert": 0.0, "moe_routed": 0.0}
    for key, x in stats.items():
        m = re.match(r"layers\.(\d+)\.experts\.(\d+)\.samples$", key)
        if m:
            layer, expert = m.groups()
            x = x.float()
            names = expert_names(original, layer, expert)
            diff = (expert_output([original[n].float() for n in names], x) -
                    expert_output([quantized[n].float() for n in names], x))
            w = stats["layers.%s.experts.%s.sample_weights" % (layer, expert)].float()
            result["expert"] += (w * (diff ** 2).sum(-1)).sum().item()
            result["moe_routed"] += routed_error(original, quantized, layer, x, experts, top_k,
                                                 renormalize)
        m = re.match(r"layers\.(\d+)\.shared\.samples$", key)
        if m:
            result["moe_uniform"] = result.get("moe_uniform", 0.0) + routed_error(
                original, quantized, m.group(1), x.float(), experts, top_k, renormalize)
    return result


def main():
    model, stats_dir, build = sys.argv[1:4]
    bindir = os.path.join(build, "bin")
    original = load_file(os.path.join(model, "model.safetensors"))
    config = json.load(open(os.path.join(model, "config.json")))
    stats = {}
    for path in sorted(glob.glob(os.path.join(stats_dir, "layer-*.safetensors"))):
        stats.update(load_file(path))
    for flags in sys.argv[4:]:
        with tempfile.TemporaryDirectory(prefix="moeq-d2-") as tmp:
            subprocess.run([os.path.join(bindir, "moeq-compile"), model, "--stats", stats_dir,
                            "--quiet", "-o", os.path.join(tmp, "artifact")] + flags.split(),
                           check=True, capture_output=True)
            subprocess.run([os.path.join(bindir, "moeq-export"), os.path.join(tmp, "artifact"),
                            "--format", "dequantized", "-o", os.path.join(tmp, "exported")],
                           check=True, capture_output=True)
            quantized = load_file(os.path.join(tmp, "exported", "model.safetensors"))
            print(json.dumps(dict(flags=flags, **losses(original, quantized, stats, config))),
                  flush=True)


if __name__ == "__main__":
    main()
