"""An independent PyTorch implementation of a compiled artifact's MoE layers.

`ReferenceArtifact(path)` reads an artifact (manifest.json, the packed
weights) and computes each MoE layer in PyTorch from the dequantized
weights, with the routing the manifest describes. It has the interface of
`moeq.Artifact` (`layers`, `hidden_size`, `run_layer`), so
`moeq.patch_model(model, ReferenceArtifact(path))` evaluates what was
compiled in PyTorch (perplexity, generation) without the runtime, and the
runtime can be checked against it. It shares no code with the compiler:
the packed format is decoded from docs/design.md ("Packed weight format").

Not supported (refused naming the layer): D^2-MoE layers (`delta`).
"""
import json
from pathlib import Path

import torch

__all__ = ["ReferenceArtifact", "dequantize"]


def _unpack_codes(words, k, bits, group_bits=None, group_size=None):
    """Codes [N, K] of little-endian bit streams: row n's code i occupies
    bits [i * bits, (i + 1) * bits) of its words (group-wise widths: each
    group's codes at its own width, one group after the other)."""
    n = words.shape[0]
    stream = words.contiguous().view(torch.uint8).reshape(n, -1)
    bit = torch.arange(8, dtype=torch.uint8, device=words.device)
    flat = ((stream.unsqueeze(-1) >> bit) & 1).reshape(n, -1).to(torch.int64)
    if group_bits is None:
        group_bits, group_size = [bits], k
    codes, first = [], 0
    for width in group_bits:
        chunk = flat[:, first:first + width * group_size].reshape(n, group_size, width)
        weights = (1 << torch.arange(width, device=words.device)).to(torch.int64)
        codes.append((chunk * weights).sum(-1))
        first += width * group_size
    return torch.cat(codes, dim=1)


def dequantize(linear, tensors):
    """The float32 weight [N, K] of one manifest linear (`scheme`, `shape`,
    `tensors`); `tensors(ref)` loads a tensor reference."""
    n, k = linear["shape"]
    if linear["scheme"] == "f16":
        return tensors(linear["tensors"]["weight"]).float()
    bits, group = linear["bits"], linear["group_size"]
    group_bits = linear.get("group_bits")
    words = tensors(linear["tensors"]["qweight"]).to(torch.int32)
    codes = _unpack_codes(words, k, bits, group_bits, group if group_bits else None)
    groups = k // group
    column_group = torch.arange(k, device=codes.device) // group
    if "levels" in linear["tensors"]:
        levels = tensors(linear["tensors"]["levels"]).float().reshape(n, groups, -1)
        return torch.gather(levels[:, column_group, :], 2, codes.unsqueeze(-1)).squeeze(-1)
    scales = tensors(linear["tensors"]["scales"]).float()[:, column_group]
    if linear["symmetric"]:
        zeros = torch.full_like(scales, float(1 << (bits - 1)))
        if group_bits:
            widths = torch.tensor(group_bits, device=codes.device)[column_group]
            zeros = (1 << (widths - 1)).float().expand_as(scales)
    else:
        zeros = tensors(linear["tensors"]["zeros"]).float()[:, column_group]
    return (codes.float() - zeros) * scales


def _fake_quantize_rows(x, bits):
    """Per-token dynamic symmetric activation quantization (w8a8, w4a4)."""
    qmax = float((1 << (bits - 1)) - 1)
    scale = x.abs().amax(dim=-1, keepdim=True) / qmax
    scale = torch.where(scale == 0, torch.ones_like(scale), scale)
    return torch.clamp(torch.round(x / scale), -qmax, qmax) * scale


class _Linear:
    def __init__(self, description, tensors, device):
        self.weight = dequantize(description, tensors).to(device)
        self.act_bits = description.get("activation_bits", 16)
        bias = description["tensors"].get("bias")
        self.bias = tensors(bias).float().to(device) if bias else None

    def __call__(self, x):
        if self.act_bits < 16:
            x = _fake_quantize_rows(x, self.act_bits)
        y = x @ self.weight.t()
        return y + self.bias if self.bias is not None else y


class _Layer:
    """One MoE layer in float32."""

    def __init__(self, layer, tensors, device):
        if "delta" in layer:
            raise NotImplementedError("layer %s is D^2-MoE compressed: the reference does not "
                                      "implement delta layers" % layer.get("layer"))
        self.spec = layer
        self.weights_on_inputs = layer.get("weights_on_inputs", False)
        self.router = tensors(layer["router"]).float().to(device)
        self.bias = tensors(layer["score_bias"]).float().to(device) if "score_bias" in layer \
            else None
        self.router_bias = tensors(layer["router_bias"]).float().to(device) \
            if "router_bias" in layer else None
        self.experts = [{role: _Linear(lin, tensors, device)
                         for role, lin in expert["linears"].items()}
                        for expert in layer["experts"]]
        shared = layer.get("shared_expert")
        self.shared = {role: _Linear(lin, tensors, device)
                       for role, lin in shared["linears"].items()} if shared else None
        self.shared_gate = _Linear(shared["sigmoid_gate"], tensors, device) \
            if shared and "sigmoid_gate" in shared else None

    def gated(self, g, u):
        """act(g) * u (clamped_swiglu: gpt-oss's formula with the layer's constants)."""
        if self.spec["activation"] == "clamped_swiglu":
            alpha, limit = self.spec["swiglu_alpha"], self.spec["swiglu_limit"]
            g = g.clamp(max=limit)
            return g * torch.sigmoid(alpha * g) * (u.clamp(-limit, limit) + 1)
        if self.spec["activation"] == "silu":
            return torch.nn.functional.silu(g) * u
        return torch.nn.functional.gelu(g) * u

    def route(self, x):
        s = self.spec
        logits = x @ self.router.t()
        if self.router_bias is not None:
            logits = logits + self.router_bias
        k = s["top_k"]
        if s["scoring"] == "sparsemixer":
            return self._sparsemixer(logits, s["jitter_eps"])
        scores = logits.softmax(-1) if s["scoring"] == "softmax" else logits.sigmoid()
        keys = scores + self.bias if self.bias is not None else scores.clone()
        if s.get("n_group", 1) > 1:
            groups = keys.view(keys.shape[0], s["n_group"], -1)
            if s["group_scoring"] == "top2_sum":
                group_scores = groups.topk(2, dim=-1).values.sum(-1)
            else:
                group_scores = groups.amax(-1)
            chosen = group_scores.topk(s["topk_group"], dim=-1).indices
            mask = torch.zeros_like(group_scores).scatter_(1, chosen, 1.0)
            keys = (groups * mask.unsqueeze(-1)).view_as(keys)
        indices = keys.topk(k, dim=-1).indices
        weights = scores.gather(1, indices)
        if s["norm_topk_prob"]:
            weights = weights / weights.sum(-1, keepdim=True)
        return indices, weights * s["routed_scaling_factor"]

    @staticmethod
    def _sparsemixer(logits, eps):
        """Phi-3.5-MoE (inference): the best logit weighted by a softmax over
        the logits within a relative 2 eps of it; then again without it."""
        keys = logits.clone()
        indices, weights = [], []
        for _ in range(2):
            top, winner = keys.max(dim=-1, keepdim=True)
            factor = torch.maximum(logits.abs(), top)
            keep = ((top - keys) / factor <= 2 * eps) & (keys > float("-inf"))
            terms = torch.where(keep, (keys - top).exp(), torch.zeros_like(keys))
            indices.append(winner)
            weights.append(1.0 / terms.sum(-1, keepdim=True))
            keys = keys.scatter(1, winner, float("-inf"))
        return torch.cat(indices, 1), torch.cat(weights, 1)

    def __call__(self, x):
        indices, weights = self.route(x)
        y = torch.zeros_like(x)
        for e, expert in enumerate(self.experts):
            token, slot = (indices == e).nonzero(as_tuple=True)
            if token.numel() == 0:
                continue
            w = weights[token, slot].unsqueeze(-1)
            # Llama 4: the weight scales the expert's input, not its output.
            xe = x[token] * w if self.weights_on_inputs else x[token]
            h = self.gated(expert["gate"](xe), expert["up"](xe))
            out = expert["down"](h)
            y.index_add_(0, token, out if self.weights_on_inputs else w * out)
        if self.shared:
            h = self.gated(self.shared["gate"](x), self.shared["up"](x))
            out = self.shared["down"](h)
            if self.shared_gate is not None:
                out = out * self.shared_gate(x).sigmoid()
            y = y + out
        return y


class ReferenceArtifact:
    """The MoE layers of an artifact in PyTorch (float32 on `device`), with
    the interface of moeq.Artifact."""

    backend = "reference"

    def __init__(self, path, device="cpu"):
        from safetensors import safe_open
        self.path = Path(path)
        manifest = json.loads((self.path / "manifest.json").read_text())
        self.device = torch.device(device)
        files = {}

        def tensors(ref):
            if ref["file"] not in files:
                files[ref["file"]] = safe_open(str(self.path / ref["file"]), framework="pt")
            t = files[ref["file"]].get_tensor(ref["tensor"])
            if "index" in ref:
                t = t[ref["index"]]
            if ref.get("transposed"):
                t = t.t()
            if "rows" in ref:
                offset, count = ref["rows"]
                step = ref.get("step", 1)
                t = t[offset:offset + (count - 1) * step + 1:step]
            return t

        self._layers = {layer["layer"]: _Layer(layer, tensors, self.device)
                        for layer in manifest["layers"]}
        self.layers = sorted(self._layers)
        self.hidden_size = manifest["layers"][0]["hidden_size"] if manifest["layers"] else 0

    def run_layer(self, layer, x):
        """y = the MoE layer applied to x [..., hidden] (computed in float32,
        returned in x's dtype)."""
        if layer not in self._layers:
            raise ValueError("layer %d is not a MoE layer of %s (MoE layers: %s)"
                             % (layer, self.path, ", ".join(map(str, self.layers))))
        shape = x.shape
        with torch.no_grad():
            flat = x.reshape(-1, shape[-1]).to(self.device, torch.float32)
            y = self._layers[layer](flat)
        return y.to(x.dtype).reshape(shape).to(x.device)
