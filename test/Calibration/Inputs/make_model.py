"""Build a tiny randomly initialised Hugging Face MoE model of one family (transformers
config/model classes, float32) and save it as a safetensors checkpoint.

  make_model.py --family F [--variant V] [--dead-expert E] --out DIR

Configurations and O(1) weight randomisation follow test/Semantics/Inputs/hf_moe_block.py.
--dead-expert E (deepseek_v3 only): e_score_correction_bias of expert E = -100 in every MoE layer,
so that E never receives a token (exercises the zero-statistics path).
"""
import argparse
import os
import sys

import torch
import transformers

HIDDEN, LAYERS, VOCAB = 64, 3, 96


def config_for(family, variant):
    common = dict(hidden_size=HIDDEN, num_hidden_layers=LAYERS, vocab_size=VOCAB,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                  dtype="float32")
    if family == "mixtral":
        return transformers.MixtralConfig(intermediate_size=96, num_local_experts=8,
                                          num_experts_per_tok=2, **common)
    if family == "phimoe":
        return transformers.PhimoeConfig(intermediate_size=96, num_local_experts=8,
                                         num_experts_per_tok=2, router_jitter_noise=0.1, **common)
    if family == "qwen2_moe":
        # all-moe: every layer MoE and widths of whole groups of 32, as
        # llama.cpp's qwen2moe takes them, and 320 tokens.
        all_moe = variant == "all-moe"
        if all_moe:
            common = dict(common, vocab_size=320)  # room for a byte-level BPE tokenizer
        return transformers.Qwen2MoeConfig(intermediate_size=160,
                                           moe_intermediate_size=64 if all_moe else 48,
                                           shared_expert_intermediate_size=96 if all_moe else 80,
                                           num_experts=8,
                                           num_experts_per_tok=3, norm_topk_prob=(variant == "norm"),
                                           decoder_sparse_step=1,
                                           mlp_only_layers=[] if all_moe else [0],
                                           **common)
    if family == "qwen3_moe":
        # wide: expert widths of whole groups of 32 (GGUF's block types).
        return transformers.Qwen3MoeConfig(intermediate_size=160,
                                           moe_intermediate_size=64 if variant == "wide" else 48,
                                           num_experts=8, num_experts_per_tok=2, norm_topk_prob=True,
                                           head_dim=16, **common)
    if family == "olmoe":
        return transformers.OlmoeConfig(intermediate_size=48, num_experts=8, num_experts_per_tok=2,
                                        norm_topk_prob=False, **common)
    if family.startswith("deepseek"):  # the full model needs as many KV heads as heads
        common["num_key_value_heads"] = common["num_attention_heads"]
    if family == "deepseek_v2":
        group = variant == "group"
        return transformers.DeepseekV2Config(
            intermediate_size=160, moe_intermediate_size=32, n_routed_experts=8, n_shared_experts=2,
            num_experts_per_tok=2, first_k_dense_replace=1, routed_scaling_factor=1.5,
            norm_topk_prob=False, topk_method="group_limited_greedy" if group else "greedy",
            n_group=4 if group else 1, topk_group=1, kv_lora_rank=16,
            q_lora_rank=None, qk_rope_head_dim=8, qk_nope_head_dim=8, v_head_dim=16, **common)
    if family == "deepseek_v3":
        return transformers.DeepseekV3Config(
            intermediate_size=160, moe_intermediate_size=32, n_routed_experts=16, n_shared_experts=1,
            num_experts_per_tok=4, first_k_dense_replace=1, routed_scaling_factor=2.5,
            norm_topk_prob=True, n_group=4, topk_group=2, kv_lora_rank=16, q_lora_rank=32,
            qk_rope_head_dim=8, qk_nope_head_dim=8, v_head_dim=16, **common)
    # The later families: the semantics tests' configurations (same sizes).
    return semantics_config(family, variant)[0]


def semantics_config(family, variant):
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                    "Semantics", "Inputs"))
    import hf_moe_block
    return hf_moe_block.config_for(family, variant)


def randomize(model, dead_expert):
    """transformers initialises with std 0.02: make the numbers O(1)."""
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
                if dead_expert is not None:
                    buf[dead_expert] = -100.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--family", required=True)
    ap.add_argument("--variant", default="")
    ap.add_argument("--dead-expert", type=int)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.manual_seed(0)
    config = config_for(args.family, args.variant)
    if args.family == "llama4":  # as released: the multimodal model (a small vision tower)
        model = transformers.Llama4ForConditionalGeneration(config).float()
    else:
        model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.eval()
    randomize(model, args.dead_expert)
    if args.family == "gpt_oss":  # biases of either sign, as the semantics test
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                        "Semantics", "Inputs"))
        import hf_moe_block
        hf_moe_block.randomize_gpt_oss_biases(model, args.variant)
    model.save_pretrained(args.out, safe_serialization=True)


if __name__ == "__main__":
    main()
