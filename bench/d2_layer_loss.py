"""Does a layer-level loss on the calibration samples predict whether
D^2-MoE helps at a budget? For each moeq-compile flag set it compiles the
model, exports the dequantized weights (moeq-export --format dequantized)
and sums, over the MoE layers, losses of the quantized experts
against the checkpoint's, on the statistics' input samples:

  expert:      sum over experts and their samples of w * |E(x) - E'(x)|^2
               (w: the sample's gate weight; what moeq's measured
               sensitivity ranks linears by)
  moe_routed:  |sum_k g_k (E_k(x) - E'_k(x))|^2 over the experts' samples,
               routed by the checkpoint's router (errors of the experts a
               token is routed to add up coherently: D^2-MoE's shared base
               makes them correlated)
  moe_uniform: the same on tokens at a fixed stride (not biased towards
               any expert): the shared expert's samples of the statistics,
               or N tokens of the MoE block inputs that
               `moeq_calibrate.py --dump-inputs FILE` wrote (--inputs FILE
               --token-samples N)
  fisher:      sum over routed expert weights of F * (W - W')^2, F the
               statistics' empirical Fisher (moeq_calibrate.py --fisher)
  output_fisher, output_paired (--grads-text FILE): the MoE output error e
               on tokens at a stride, weighted by the gradient g of the
               language-modelling loss with respect to the block's output:
               mean e^T G e with G = mean g g^T, and mean (g . e)^2 (what
               the layers after the block make of the error)

  python bench/d2_layer_loss.py MODEL STATS BUILD [--inputs FILE] [--grads-text FILE] \\
      "--avg-bits 2.0" "--avg-bits 2.0 --d2-compression 0.4 --d2-rank-multiple 32" ...

Prints one JSON line per flag set. Compare the ranking with the KL of
bench/fixture_quality.py (docs/quantization.md, Defaults).
"""
import argparse
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


def routed_difference(original, quantized, layer, x, experts, top_k, renormalize):
    """sum_k g_k (E_k(x) - E'_k(x)), one row per row of x."""
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
    return error


def routed_error(original, quantized, layer, x, experts, top_k, renormalize):
    """|sum_k g_k (E_k(x) - E'_k(x))|^2 summed over the rows of x."""
    return (routed_difference(original, quantized, layer, x, experts, top_k, renormalize) ** 2
            ).sum().item()


def output_gradients(model_dir, text, windows, stride=16):
    """The MoE blocks' output Fisher: for each layer G = mean over tokens of g g^T, with g the
    gradient of the summed next-token cross-entropy with respect to the block's output, and
    (x, g) pairs of every stride-th token (byte tokens, windows of 256)."""
    import transformers
    model = transformers.AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    data = [b % model.config.vocab_size for b in open(text, "rb").read()]
    ids = torch.tensor([data[i * 256:(i + 1) * 256 + 1] for i in range(windows)])
    blocks = [getattr(layer, "block_sparse_moe", None) or layer.mlp
              for layer in model.model.layers]
    captured = {}

    def hook(index):
        def keep(module, inputs, output):
            out = output[0] if isinstance(output, tuple) else output
            out.retain_grad()
            captured[index] = (inputs[0].detach(), out)
        return keep
    for index, block in enumerate(blocks):
        block.register_forward_hook(hook(index))
    hidden = model.config.hidden_size
    result = {i: {"G": torch.zeros(hidden, hidden, dtype=torch.float64), "x": [], "g": []}
              for i in range(len(blocks))}
    for start in range(0, windows, 8):
        batch = ids[start:start + 8]
        model.zero_grad()
        logits = model(input_ids=batch[:, :-1]).logits
        torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                          batch[:, 1:].reshape(-1), reduction="sum").backward()
        for index, (x, out) in captured.items():
            g = out.grad.reshape(-1, hidden).double()
            result[index]["G"] += g.T @ g / (windows * 256)
            result[index]["x"].append(x.reshape(-1, hidden)[::stride])
            result[index]["g"].append(g[::stride])
    return {i: (r["G"], torch.cat(r["x"]).float(), torch.cat(r["g"])) for i, r in result.items()}


def output_fisher_losses(original, quantized, grads, experts, top_k, renormalize):
    """Mean over the sampled tokens of e^T G e (the output Fisher's second-order estimate of
    the loss change) and of (g . e)^2 (the same with each token's own gradient), e the routed
    MoE output error."""
    fisher = paired = 0.0
    for layer, (G, x, g) in grads.items():
        e = routed_difference(original, quantized, layer, x, experts, top_k,
                              renormalize).double()
        fisher += ((e @ G) * e).sum().item() / len(x)
        paired += ((e * g).sum(-1) ** 2).sum().item() / len(x)
    return {"output_fisher": fisher, "output_paired": paired}


def token_samples(inputs_path, count):
    """layers.L.shared.samples from --dump-inputs' layers.L.input: `count` tokens at the
    stride that spreads them over all tokens (moeq_calibrate's shared-sample rule)."""
    samples = {}
    for key, x in load_file(inputs_path).items():
        m = re.match(r"layers\.(\d+)\.input$", key)
        if m:
            stride = max(1, x.shape[0] // count)
            samples["layers.%s.shared.samples" % m.group(1)] = x[::stride][:count]
    return samples


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
        m = re.match(r"layers\.(\d+)\.experts\.(\d+)\.fisher_(gate|up|down)$", key)
        if m:
            layer, expert, linear = m.groups()
            name = expert_names(original, layer, expert)[("gate", "up", "down").index(linear)]
            diff = original[name].float() - quantized[name].float()
            result["fisher"] = result.get("fisher", 0.0) + (x.float() * diff ** 2).sum().item()
        m = re.match(r"layers\.(\d+)\.shared\.samples$", key)
        if m:
            result["moe_uniform"] = result.get("moe_uniform", 0.0) + routed_error(
                original, quantized, m.group(1), x.float(), experts, top_k, renormalize)
    return result


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("stats_dir")
    ap.add_argument("build")
    ap.add_argument("flag_sets", nargs="+", help="moeq-compile flags, one string per compile")
    ap.add_argument("--inputs", help="moeq_calibrate.py --dump-inputs FILE: uniform token samples")
    ap.add_argument("--token-samples", type=int, default=256)
    ap.add_argument("--grads-text", help="also the output-Fisher losses, their gradients on "
                    "this text (byte tokens; transformers)")
    ap.add_argument("--grads-windows", type=int, default=512)
    args = ap.parse_args()
    model, stats_dir = args.model, args.stats_dir
    bindir = os.path.join(args.build, "bin")
    original = load_file(os.path.join(model, "model.safetensors"))
    config = json.load(open(os.path.join(model, "config.json")))
    stats = {}
    for path in sorted(glob.glob(os.path.join(stats_dir, "layer-*.safetensors"))):
        stats.update(load_file(path))
    if args.inputs:
        stats.update(token_samples(args.inputs, args.token_samples))
    grads = output_gradients(model, args.grads_text, args.grads_windows) if args.grads_text \
        else None
    for flags in args.flag_sets:
        with tempfile.TemporaryDirectory(prefix="moeq-d2-") as tmp:
            subprocess.run([os.path.join(bindir, "moeq-compile"), model, "--stats", stats_dir,
                            "--quiet", "-o", os.path.join(tmp, "artifact")] + flags.split(),
                           check=True, capture_output=True)
            subprocess.run([os.path.join(bindir, "moeq-export"), os.path.join(tmp, "artifact"),
                            "--format", "dequantized", "-o", os.path.join(tmp, "exported")],
                           check=True, capture_output=True)
            quantized = load_file(os.path.join(tmp, "exported", "model.safetensors"))
            result = losses(original, quantized, stats, config)
            if grads:
                experts = config.get("num_local_experts") or config["num_experts"]
                renormalize = config.get("norm_topk_prob", config["model_type"] == "mixtral")
                result.update(output_fisher_losses(original, quantized, grads, experts,
                                                   config["num_experts_per_tok"], renormalize))
            print(json.dumps(dict(flags=flags, **result)), flush=True)


if __name__ == "__main__":
    main()
