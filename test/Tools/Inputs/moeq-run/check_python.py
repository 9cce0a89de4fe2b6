"""The Python binding (tools/python/moeq) on the emulator backend with the
hand-written reverse-rows artifact: run_layer's conversions and errors, and
patch_model on tiny transformers models (its MoE blocks then reverse rows).
check_python.py ARTIFACT LIBRARY"""
import sys

import torch
import transformers

import moeq

artifact_dir, library = sys.argv[1], sys.argv[2]
art = moeq.Artifact(artifact_dir, backend="emulator", library=library)
print("layers", art.layers, "hidden", art.hidden_size)


def reversed_rows(x):
    flat = x.reshape(-1, x.shape[-1]).to(torch.float16)
    return flat.flip(0).reshape(x.shape).to(x.dtype)


torch.manual_seed(0)
x = torch.randn(2, 5, 128)
y = art.run_layer(1, x)
print("f32", y.dtype, tuple(y.shape), torch.equal(y, reversed_rows(x)))
xb = torch.randn(7, 128, dtype=torch.bfloat16)
yb = art.run_layer(0, xb)
print("bf16", yb.dtype, torch.equal(yb, reversed_rows(xb)))
print("empty", tuple(art.run_layer(0, torch.zeros(0, 128)).shape))

for call in (lambda: art.run_layer(7, x), lambda: art.run_layer(0, torch.zeros(3, 64)),
             lambda: moeq.Artifact(artifact_dir + "/kernels", backend="emulator", library=library),
             lambda: moeq.Artifact(artifact_dir, backend="tpu", library=library)):
    try:
        call()
        print("no error")
    except (moeq.MoeqError, ValueError) as error:
        print(type(error).__name__ + ":", str(error).replace(artifact_dir, "ART"))


def check_model(name, model, block_class):
    model.eval()
    before = {n: p.clone() for n, p in model.named_parameters()}
    names = moeq.patch_model(model, art)
    # Everything but the replaced blocks' experts (routed and shared) stays.
    before = {n: p for n, p in before.items()
              if not any(n.startswith(b + ".") and not n.startswith(b + ".gate.") for b in names)}
    print(name, "patched", names)
    blocks = [model.get_submodule(n) for n in names]
    print(name, "isinstance", all(isinstance(b, block_class) for b in blocks))
    seen = []
    for block in blocks:
        block.register_forward_hook(lambda m, args, out: seen.append((m, args[0], out)))
    ids = torch.randint(0, 100, (2, 6))
    with torch.no_grad():
        out = model(ids, output_router_logits=True)
    ok = True
    for block, inp, result in seen:
        y = result[0] if isinstance(result, tuple) else result
        ok &= torch.equal(y, reversed_rows(inp))
        if isinstance(result, tuple):
            gate = block.gate(inp.reshape(-1, inp.shape[-1]))
            ok &= torch.equal(result[1], gate[0] if isinstance(gate, tuple) else gate)
    print(name, "calls", len(seen), "moe-output", bool(ok), "tuple",
          isinstance(seen[0][2], tuple))
    logits = getattr(out, "router_logits", None)
    print(name, "router_logits", None if logits is None else [tuple(l.shape) for l in logits])
    after = dict(model.named_parameters())
    print(name, "others-untouched", all(n in after and torch.equal(after[n], p)
                                        for n, p in before.items()))


common = dict(hidden_size=128, intermediate_size=64, num_hidden_layers=2,
              num_attention_heads=4, num_key_value_heads=2, vocab_size=100)
check_model("mixtral", transformers.MixtralForCausalLM(transformers.MixtralConfig(
    num_local_experts=4, num_experts_per_tok=2, **common)),
    transformers.models.mixtral.modeling_mixtral.MixtralSparseMoeBlock)
check_model("qwen3_moe", transformers.Qwen3MoeForCausalLM(transformers.Qwen3MoeConfig(
    num_experts=4, num_experts_per_tok=2, moe_intermediate_size=32, head_dim=32, **common)),
    transformers.models.qwen3_moe.modeling_qwen3_moe.Qwen3MoeSparseMoeBlock)
check_model("deepseek_v3", transformers.DeepseekV3ForCausalLM(transformers.DeepseekV3Config(
    n_routed_experts=4, num_experts_per_tok=2, moe_intermediate_size=32, first_k_dense_replace=0,
    n_group=1, topk_group=1, kv_lora_rank=32, q_lora_rank=None, qk_rope_head_dim=16,
    qk_nope_head_dim=16, v_head_dim=32, **common)),
    transformers.models.deepseek_v3.modeling_deepseek_v3.DeepseekV3MoE)
