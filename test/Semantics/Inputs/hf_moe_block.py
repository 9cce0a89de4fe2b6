"""Compare moeq's CPU execution of one imported MoE layer with the Hugging Face
`transformers` implementation of the same block (an independent oracle).

  hf_moe_block.py --family qwen2_moe --work DIR --runner PATH/moeq-cpu-runner [--variant V]

Builds a tiny randomly initialised model of the family with the transformers
config/model classes (float32), saves it as a safetensors checkpoint, runs the
MoE block of one layer in PyTorch on random tokens, runs the same layer through
`moeq-cpu-runner`, and prints the maximum absolute error. Exits 1 when the
error exceeds the tolerance (printed too).
"""
import argparse
import json
import os
import subprocess
import sys

import torch
import transformers
from safetensors.torch import load_file, save_file

HIDDEN, LAYERS, VOCAB, TOKENS = 64, 3, 96, 33
TOLERANCE = 2e-5  # relative to max |y|: float32 vs float32, different summation order


def config_for(family, variant):
    common = dict(hidden_size=HIDDEN, num_hidden_layers=LAYERS, vocab_size=VOCAB,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                  dtype="float32")
    if family == "mixtral":
        return transformers.MixtralConfig(intermediate_size=96, num_local_experts=8,
                                          num_experts_per_tok=2, **common), "block_sparse_moe", 0
    if family == "phimoe":
        return transformers.PhimoeConfig(intermediate_size=96, num_local_experts=8,
                                         num_experts_per_tok=2, router_jitter_noise=0.1,
                                         **common), "block_sparse_moe", 1
    if family == "qwen2_moe":
        return transformers.Qwen2MoeConfig(intermediate_size=160, moe_intermediate_size=48,
                                           shared_expert_intermediate_size=80, num_experts=8,
                                           num_experts_per_tok=3,
                                           norm_topk_prob=(variant == "norm"),
                                           decoder_sparse_step=1, mlp_only_layers=[0],
                                           **common), "mlp", 1
    if family == "qwen3_moe":
        return transformers.Qwen3MoeConfig(intermediate_size=160, moe_intermediate_size=48,
                                           num_experts=8, num_experts_per_tok=2,
                                           norm_topk_prob=True, head_dim=16,
                                           **common), "mlp", 2
    if family == "olmoe":
        return transformers.OlmoeConfig(intermediate_size=48, num_experts=8,
                                        num_experts_per_tok=2, norm_topk_prob=False,
                                        **common), "mlp", 1
    if family == "deepseek_v2":
        group = variant == "group"
        return transformers.DeepseekV2Config(
            intermediate_size=160, moe_intermediate_size=32, n_routed_experts=8,
            n_shared_experts=2, num_experts_per_tok=2, first_k_dense_replace=1,
            routed_scaling_factor=1.5, norm_topk_prob=False,
            topk_method="group_limited_greedy" if group else "greedy",
            n_group=4 if group else 1, topk_group=2 if group else 1,
            kv_lora_rank=16, q_lora_rank=None, qk_rope_head_dim=8, qk_nope_head_dim=8,
            v_head_dim=16, **common), "mlp", 2
    if family == "deepseek_v3":
        return transformers.DeepseekV3Config(
            intermediate_size=160, moe_intermediate_size=32, n_routed_experts=16,
            n_shared_experts=1, num_experts_per_tok=4, first_k_dense_replace=1,
            routed_scaling_factor=2.5, norm_topk_prob=True, n_group=4, topk_group=2,
            kv_lora_rank=16, q_lora_rank=32, qk_rope_head_dim=8, qk_nope_head_dim=8,
            v_head_dim=16, **common), "mlp", 1
    raise SystemExit("unknown family " + family)


def randomize(model):
    """transformers initialises with std 0.02: make the block's numbers O(1)."""
    gen = torch.Generator().manual_seed(1234)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() >= 2:
                p.copy_(torch.randn(p.shape, generator=gen) / p.shape[-1] ** 0.5)
            else:
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=gen))
        for name, buf in model.named_buffers():
            if name.endswith("e_score_correction_bias"):
                buf.copy_(0.05 * torch.randn(buf.shape, generator=gen))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--family", required=True)
    ap.add_argument("--variant", default="")
    ap.add_argument("--work", required=True)
    ap.add_argument("--runner", required=True)
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    torch.manual_seed(0)

    config, block_attr, layer = config_for(args.family, args.variant)
    model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.eval()
    randomize(model)
    ckpt = os.path.join(args.work, "ckpt")
    model.save_pretrained(ckpt, safe_serialization=True)

    block = getattr(model.model.layers[layer], block_attr)
    x = torch.randn(1, TOKENS, HIDDEN, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        out = block(x)
    y_ref = (out[0] if isinstance(out, tuple) else out).reshape(TOKENS, HIDDEN)

    x_path = os.path.join(args.work, "x.safetensors")
    y_path = os.path.join(args.work, "y.safetensors")
    save_file({"x": x.reshape(TOKENS, HIDDEN).contiguous()}, x_path)
    subprocess.run([args.runner, ckpt, "--layer", str(layer), "--input", x_path, "-o", y_path],
                   check=True)
    y = load_file(y_path)["y"]
    err = (y - y_ref).abs().max().item()
    scale = y_ref.abs().max().item()
    print(json.dumps({"family": args.family, "variant": args.variant, "layer": layer,
                      "transformers": transformers.__version__, "max_abs_error": err,
                      "max_abs_output": scale, "tolerance": TOLERANCE * max(1.0, scale)}))
    if not err <= TOLERANCE * max(1.0, scale):
        print("FAILED: moeq and transformers disagree", file=sys.stderr)
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
