"""Compare moeq's CPU execution of one imported MoE layer with the Hugging Face
`transformers` implementation of the same block (an independent oracle).

  hf_moe_block.py --family qwen2_moe --work DIR --runner PATH/moeq-cpu-runner [--variant V]
                  [--layout per-expert|stacked] [--fp8 [--fp8-block 128]] [--mxfp4]

Builds a tiny randomly initialised model of the family with the transformers
config/model classes (float32), saves it as a safetensors checkpoint, runs the
MoE block of one layer in PyTorch on random tokens, runs the same layer through
`moeq-cpu-runner`, and prints the maximum absolute error. Exits 1 when the
error exceeds the tolerance (printed too).

--layout stacked rewrites the saved checkpoint's experts into the stacked 3-D
tensors of transformers v5 (`experts.gate_up_proj` [E, 2I, H], gate rows first,
`experts.down_proj` [E, H, I]); transformers 4.57 still computes with its
per-expert modules, so the reference is unchanged.

--fp8 stores every expert linear (routed and shared) as F8_E4M3 with BxB block
scales `weight_scale_inv` = amax / 448 (DeepSeek-V3's format, B = --fp8-block,
128 in the released checkpoints; a small B gives these tiny matrices several
blocks per dimension), quantized here with torch's own float8_e4m3fn rounding,
and gives the transformers block the dequantized weights, so both sides compute
with the same values.

--mxfp4 (gpt_oss, --variant mxfp4: widths that are multiples of 32) stores the
experts as gpt-oss's MXFP4 checkpoints do (`<name>_blocks` U8 e2m1 pairs and
`<name>_scales` U8 power-of-two exponents per 32 values, of the [E, out, in]
matrices), encoded here, and gives the transformers block the decoded weights.
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
    if family == "glm4_moe":
        return transformers.Glm4MoeConfig(
            intermediate_size=160, moe_intermediate_size=32, n_routed_experts=16,
            n_shared_experts=1, num_experts_per_tok=4, first_k_dense_replace=1,
            routed_scaling_factor=2.5, norm_topk_prob=True, n_group=4, topk_group=2,
            head_dim=16, use_qk_norm=True, **common), "mlp", 1
    if family == "dots1":
        return transformers.Dots1Config(
            intermediate_size=160, moe_intermediate_size=32, n_routed_experts=8,
            n_shared_experts=2, num_experts_per_tok=3, first_k_dense_replace=1,
            routed_scaling_factor=1.5, norm_topk_prob=(variant != "nonorm"), n_group=1,
            topk_group=1, head_dim=16, **common), "mlp", 2
    if family == "qwen3_next":
        # Layer 0 is a gated-DeltaNet (linear attention) layer: its MoE block
        # is the one compared, the attention tensors are carried through.
        return transformers.Qwen3NextConfig(
            intermediate_size=160, moe_intermediate_size=48, shared_expert_intermediate_size=80,
            num_experts=8, num_experts_per_tok=2, norm_topk_prob=True, head_dim=16,
            linear_key_head_dim=16, linear_value_head_dim=16, linear_num_key_heads=2,
            linear_num_value_heads=4,
            layer_types=["linear_attention", "full_attention", "linear_attention"],
            mlp_only_layers=[], decoder_sparse_step=1, **common), "mlp", 0
    if family == "minimax":
        return transformers.MiniMaxConfig(
            intermediate_size=96, num_local_experts=8, num_experts_per_tok=2, head_dim=16,
            block_size=16, layer_types=["linear_attention", "full_attention", "linear_attention"],
            **common), "block_sparse_moe", 0
    if family == "hunyuan_v1_moe":
        per_layer = variant == "lists"  # one expert count / top-k per layer
        return transformers.HunYuanMoEV1Config(
            intermediate_size=48, num_experts=[8] * LAYERS if per_layer else 8,
            moe_topk=[3] * LAYERS if per_layer else 3, head_dim=16, **common), "mlp", 1
    if family == "ernie4_5_moe":
        # MoE layers 1..2 (start 1, end -1), or only layer 1 (variant "end").
        return transformers.Ernie4_5_MoeConfig(
            intermediate_size=160, moe_intermediate_size=32, moe_num_experts=8, moe_k=3,
            moe_num_shared_experts=2, moe_layer_start_index=1,
            moe_layer_end_index=1 if variant == "end" else -1, moe_layer_interval=1,
            use_bias=False, **common), "mlp", 1
    if family == "granitemoe":
        return transformers.GraniteMoeConfig(
            intermediate_size=48, num_local_experts=8, num_experts_per_tok=2,
            embedding_multiplier=12.0, residual_multiplier=0.22, attention_multiplier=0.0625,
            logits_scaling=6.0, **common), "block_sparse_moe", 1
    if family == "llama4_text":
        # MoE layers: every 2nd (layer 1), or the explicit list [0, 2]
        # (variant "moe_layers"); top-1 as released, or top-2 ("top2").
        explicit = variant == "moe_layers"
        return transformers.Llama4TextConfig(
            intermediate_size=48, intermediate_size_mlp=96, num_local_experts=8,
            num_experts_per_tok=2 if variant == "top2" else 1, head_dim=16,
            interleave_moe_layer_step=2, moe_layers=[0, 2] if explicit else None,
            **common), "feed_forward", 2 if explicit else 1
    if family == "llama4":
        # Llama 4 as released: the multimodal config (text_config, a small
        # vision tower), tensors under language_model.
        text, _, layer = config_for("llama4_text", variant)
        vision = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                      intermediate_size=64, image_size=32, patch_size=16, vision_output_dim=64,
                      projector_input_dim=64, projector_output_dim=64)
        return transformers.Llama4Config(text_config=text.to_dict(), vision_config=vision), \
            "feed_forward", layer
    if family == "gpt_oss":
        # Router and expert biases, interleaved gate/up stored for x @ W,
        # clamped SwiGLU (variant "clamp": inputs past the limit of 7).
        return transformers.GptOssConfig(
            intermediate_size=64 if variant == "mxfp4" else 48, num_local_experts=8, num_experts_per_tok=3, head_dim=16,
            layer_types=["sliding_attention", "full_attention", "sliding_attention"],
            sliding_window=8, **common), "mlp", 1
    raise SystemExit("unknown family " + family)


def randomize_gpt_oss_biases(model, variant):
    """Biases of either sign (randomize gives 1-D parameters 1 +- 0.1), and for the
    "clamp" variant gate/up weights large enough that the clamp at 7 acts."""
    gen = torch.Generator().manual_seed(99)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("router.bias", "gate_up_proj_bias", "down_proj_bias")):
                p.copy_(0.5 * torch.randn(p.shape, generator=gen))
            if variant == "clamp" and name.endswith("experts.gate_up_proj"):
                p.mul_(12.0)


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


def expert_weight_names(state, block_prefix):
    return sorted(k for k in state if k.startswith(block_prefix) and k.endswith("_proj.weight")
                  and (".experts." in k or ".shared_experts." in k))


def stack_experts(state, block_prefixes):
    """Per-expert gate/up/down weights -> experts.gate_up_proj / experts.down_proj."""
    for prefix in block_prefixes:
        experts = prefix + ".experts."
        count = 1 + max(int(k[len(experts):].split(".")[0]) for k in state if k.startswith(experts))
        take = lambda e, proj: state.pop("%s%d.%s.weight" % (experts, e, proj))  # noqa: E731
        gate_up, down = [], []
        for e in range(count):
            gate_up.append(torch.cat([take(e, "gate_proj"), take(e, "up_proj")], dim=0))
            down.append(take(e, "down_proj"))
        state[experts + "gate_up_proj"] = torch.stack(gate_up).contiguous()
        state[experts + "down_proj"] = torch.stack(down).contiguous()


def quantize_fp8(weight, block=128):
    """(F8_E4M3 codes, F32 scale_inv [ceil(R/128), ceil(C/128)], dequantized F32 weight)."""
    rows, cols = weight.shape
    sr, sc = -(-rows // block), -(-cols // block)
    padded = torch.zeros(sr * block, sc * block)
    padded[:rows, :cols] = weight
    tiles = padded.reshape(sr, block, sc, block)
    scale = tiles.abs().amax(dim=(1, 3)) / 448.0
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    codes = (tiles / scale[:, None, :, None]).to(torch.float8_e4m3fn)
    dequant = (codes.to(torch.float32) * scale[:, None, :, None]).reshape(sr * block, sc * block)
    codes = codes.reshape(sr * block, sc * block)[:rows, :cols].contiguous()
    return codes, scale.contiguous(), dequant[:rows, :cols].contiguous()


# The OCP MXFP4 element (e2m1) values by code: bit 3 the sign.
FP4_VALUES = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0]


def quantize_mxfp4(weight):
    """W [..., R, C] (C a multiple of 32) -> (blocks U8 [..., R, C/32, 16], scales U8
    [..., R, C/32], the dequantized W): per block of 32 along C a power-of-two scale 2^(s - 127)
    with s = 127 + ceil(log2(amax / 6)) and each value the nearest e2m1 value, two per byte (the
    even element in the low nibble), as gpt-oss checkpoints store their experts."""
    *lead, rows, cols = weight.shape
    w = weight.reshape(*lead, rows, cols // 32, 32).double()
    amax = w.abs().amax(-1, keepdim=True)
    exp = torch.ceil(torch.log2(torch.where(amax > 0, amax / 6.0, torch.ones_like(amax))))
    values = torch.tensor(FP4_VALUES, dtype=torch.float64)
    codes = (w / torch.pow(2.0, exp)).unsqueeze(-1).sub(values).abs().argmin(-1)
    dequant = values[codes] * torch.pow(2.0, exp)
    blocks = (codes[..., 0::2] | (codes[..., 1::2] << 4)).to(torch.uint8)
    scales = (exp.squeeze(-1) + 127).to(torch.uint8)
    return blocks.contiguous(), scales.contiguous(), dequant.reshape(weight.shape).float()


def rewrite_mxfp4(state, model, block_prefixes):
    """gpt-oss's MXFP4 checkpoint: the experts' gate_up_proj [E, H, 2I] and down_proj [E, I, H]
    (transformers' x @ W layout) stored as <name>_blocks / <name>_scales of their [E, 2I, H] and
    [E, H, I] transposes; the model computes with the dequantized weights."""
    params = dict(model.named_parameters())
    for prefix in block_prefixes:
        for proj in ("gate_up_proj", "down_proj"):
            name = "%s.experts.%s" % (prefix, proj)
            blocks, scales, dequant = quantize_mxfp4(state.pop(name).transpose(1, 2))
            state[name + "_blocks"], state[name + "_scales"] = blocks, scales
            with torch.no_grad():
                params[name].copy_(dequant.transpose(1, 2))


def set_quantization_config(ckpt, quantization_config):
    with open(os.path.join(ckpt, "config.json")) as f:
        config = json.load(f)
    config["quantization_config"] = quantization_config
    with open(os.path.join(ckpt, "config.json"), "w") as f:
        json.dump(config, f, indent=2)


def rewrite_checkpoint(ckpt, model, args, block_prefixes):
    """Apply --layout stacked / --fp8 / --mxfp4 to the saved checkpoint (single file)."""
    path = os.path.join(ckpt, "model.safetensors")
    state = load_file(path)
    if args.mxfp4:
        rewrite_mxfp4(state, model, block_prefixes)
        set_quantization_config(ckpt, {"quant_method": "mxfp4", "modules_to_not_convert": [
            "model.layers.*.self_attn", "model.layers.*.mlp.router", "model.embed_tokens",
            "lm_head"]})
    if args.fp8:
        params = dict(model.named_parameters())
        for prefix in block_prefixes:
            for name in expert_weight_names(state, prefix):
                codes, scale, dequant = quantize_fp8(state[name], args.fp8_block)
                state[name] = codes
                state[name + "_scale_inv"] = scale
                with torch.no_grad():
                    params[name].copy_(dequant)
        set_quantization_config(ckpt, {"quant_method": "fp8", "fmt": "e4m3",
                                       "activation_scheme": "dynamic",
                                       "weight_block_size": [args.fp8_block] * 2})
    if args.layout == "stacked":
        stack_experts(state, block_prefixes)
    save_file(state, path, metadata={"format": "pt"})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--family", required=True)
    ap.add_argument("--variant", default="")
    ap.add_argument("--work", required=True)
    ap.add_argument("--runner", required=True)
    ap.add_argument("--layout", choices=("per-expert", "stacked"), default="per-expert")
    ap.add_argument("--fp8", action="store_true")
    ap.add_argument("--fp8-block", type=int, default=128)
    ap.add_argument("--mxfp4", action="store_true",
                    help="gpt_oss: store the experts as MXFP4 blocks and scales")
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    torch.manual_seed(0)

    config, block_attr, layer = config_for(args.family, args.variant)
    if args.family == "llama4":  # (AutoModelForCausalLM builds the text model only)
        model = transformers.Llama4ForConditionalGeneration(config).float()
    else:
        model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.eval()
    randomize(model)
    if args.family == "gpt_oss":
        randomize_gpt_oss_biases(model, args.variant)
    ckpt = os.path.join(args.work, "ckpt")
    model.save_pretrained(ckpt, safe_serialization=True)
    if args.layout != "per-expert" or args.fp8 or args.mxfp4:
        prefixes = ["model.layers.%d.%s" % (i, block_attr) for i in range(LAYERS)
                    if hasattr(getattr(model.model.layers[i], block_attr), "experts")]
        rewrite_checkpoint(ckpt, model, args, prefixes)

    # (transformers 5 names every family's block `mlp`; its checkpoints keep
    # the 4.x names.)
    decoder = model.language_model.model if args.family == "llama4" else model.model
    decoder_layer = decoder.layers[layer]
    block = getattr(decoder_layer, block_attr, None) or decoder_layer.mlp
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
    print(json.dumps({"family": args.family, "variant": args.variant, "layout": args.layout,
                      "fp8": args.fp8 and args.fp8_block, "mxfp4": args.mxfp4, "layer": layer,
                      "transformers": transformers.__version__, "max_abs_error": err,
                      "max_abs_output": scale, "tolerance": TOLERANCE * max(1.0, scale)}))
    if not err <= TOLERANCE * max(1.0, scale):
        print("FAILED: moeq and transformers disagree", file=sys.stderr)
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
