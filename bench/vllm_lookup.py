"""vLLM's own reading of a `moeq-export --format compressed-tensors` directory, without a GPU:
its CompressedTensorsConfig parses the quantization_config, and for every MoE layer the scheme
lookup of its fused-MoE method (CompressedTensorsMoEMethod.get_moe_method: the layer's
`<experts>.0.<proj>` names under the checkpoint's projection names, which must all resolve to
one scheme) and the kernel family that scheme selects (WNA16 for 4/8-bit weight-only groups or
channels, W8A8 int8 for dynamic per-token w8a8); attention layers must resolve to no scheme
(unquantized). vLLM looks only at expert 0 and loads every expert of the layer with that
scheme, so the script also resolves every expert's projections and reports a layer whose experts
differ (vLLM would misread their weights).

  PYTHONPATH=VLLM_SITE python bench/vllm_lookup.py EXPORT_DIR

VLLM_SITE: a directory with vllm (the wheel installed with --no-deps: its CUDA extension is not
loaded) and the pure-Python packages its config code imports; see docs/export.md for the
command. Not a test (vLLM and transformers 5 do not fit the test environment); the results are
recorded in docs/export.md.
"""
import json
import os
import re
import sys

import torch
from vllm.model_executor.layers.quantization.compressed_tensors.compressed_tensors import (
    CompressedTensorsConfig,
)
from vllm.model_executor.layers.quantization.compressed_tensors.schemes.compressed_tensors_wNa16 import (  # noqa: E501
    WNA16_SUPPORTED_BITS,
)

# The checkpoint projection names vLLM's model code gives its FusedMoE layers
# (ckpt_gate_proj_name, ckpt_up_proj_name, ckpt_down_proj_name).
PROJECTIONS = {"mixtral": ("w1", "w3", "w2")}
DEFAULT_PROJECTIONS = ("gate_proj", "up_proj", "down_proj")


def main():
    export = sys.argv[1]
    config = json.load(open(os.path.join(export, "config.json")))
    quant = CompressedTensorsConfig.from_config(config["quantization_config"])
    quant._add_fused_moe_to_target_scheme_map()
    projections = PROJECTIONS.get(config["model_type"], DEFAULT_PROJECTIONS)
    block = "block_sparse_moe" if config["model_type"] == "mixtral" else "mlp"
    layer = torch.nn.Module()
    ok = True
    kernels = {}
    for index in range(config["num_hidden_layers"]):
        prefix = "model.layers.%d.%s.experts" % (index, block)
        dicts = [quant.get_scheme_dict(layer, "%s.0.%s" % (prefix, p)) for p in projections]
        if dicts[0] is None or any(d != dicts[0] for d in dicts):
            print("layer %d: the projections resolve to %s: vLLM refuses the layer" % (index, dicts))
            ok = False
            continue
        experts = config.get("num_local_experts", config.get("num_experts", 1))
        others = [quant.get_scheme_dict(layer, "%s.%d.%s" % (prefix, e, p))
                  for e in range(experts) for p in projections]
        if any(d != dicts[0] for d in others):
            print("layer %d: expert 0 resolves to one scheme, other experts to others: vLLM "
                  "would load them all with expert 0's" % index)
            ok = False
            continue
        weights, inputs, fmt = dicts[0]["weights"], dicts[0]["input_activations"], dicts[0]["format"]
        if quant._is_wNa16_group_channel(weights, inputs):
            kernel = "WNA16 (%d-bit, %s)" % (weights.num_bits,
                                              "group %d" % weights.group_size
                                              if weights.group_size else "per channel")
            if weights.num_bits not in WNA16_SUPPORTED_BITS or fmt != "pack-quantized":
                kernel += ": refused (bits or format)"
                ok = False
        elif inputs is not None and quant._is_dynamic_token_w8a8(weights, inputs):
            kernel = "W8A8 int8, dynamic per-token activations"
        else:
            kernel = "no fused-MoE kernel"
            ok = False
        kernels.setdefault(kernel, []).append(index)
        attention = quant.get_scheme_dict(layer, "model.layers.%d.self_attn.q_proj" % index)
        if attention is not None:
            print("layer %d: attention resolves to a scheme" % index)
            ok = False
    for kernel, layers in sorted(kernels.items()):
        print("%s: layers %s" % (kernel, layers))
    print("vLLM %s: %s" % (__import__("vllm").__version__, "OK" if ok else "MISMATCH"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
