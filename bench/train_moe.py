"""Train a second small MoE on real text, so that quality rules measured on
the shared fixture (tiny-mixtral) can be checked on a model they were not
tuned on (issue 17). A benchmark helper, not a test.

  python bench/train_moe.py SHARED_FIXTURES_DIR OUT_DIR [--minutes 25]

The model is a Qwen2-MoE (shared expert with a sigmoid gate, q/k/v bias,
top-4 of 8 experts without renormalisation) of hidden width 192, which is
not a multiple of 128: the layout and the widths both differ from the
fixture's. It trains with the fixture's own pure-PyTorch implementation
(SHARED_FIXTURES_DIR/model.py, HF tensor names) on the calibration text
(the evaluation text stays held out), byte tokens, AdamW with the HF
load-balancing loss, and is written in the fixture's layout (config.json,
model.safetensors in bf16, train_info.json), so eval_ppl.py and moeq load
it as they load tiny-mixtral.
"""
import argparse
import json
import math
import os
import sys
import time

import torch
import torch.nn.functional as F

CONFIG = {
    "architectures": ["Qwen2MoeForCausalLM"],
    "model_type": "qwen2_moe",
    "vocab_size": 256,
    "hidden_size": 192,
    "intermediate_size": 384,
    "moe_intermediate_size": 384,
    "shared_expert_intermediate_size": 384,
    "num_hidden_layers": 4,
    "num_attention_heads": 6,
    "num_key_value_heads": 2,
    "head_dim": 32,
    "num_experts": 8,
    "num_experts_per_tok": 4,
    "norm_topk_prob": False,
    "decoder_sparse_step": 1,
    "mlp_only_layers": [],
    "hidden_act": "silu",
    "max_position_embeddings": 256,
    "rms_norm_eps": 1e-06,
    "rope_theta": 1000000.0,
    "attention_dropout": 0.0,
    "router_aux_loss_coef": 0.01,
    "output_router_logits": False,
    "initializer_range": 0.02,
    "tie_word_embeddings": False,
    "use_sliding_window": False,
    "sliding_window": None,
    "use_cache": True,
    "bos_token_id": None,
    "eos_token_id": None,
    "pad_token_id": None,
    "torch_dtype": "bfloat16",
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("fixtures")
    ap.add_argument("out")
    ap.add_argument("--minutes", type=float, default=25.0)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--lr", type=float, default=2.5e-3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=4321)
    args = ap.parse_args()
    sys.path.insert(0, args.fixtures)
    import model as fixture_model
    from safetensors.torch import save_file

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    data = open(os.path.join(args.fixtures, "corpus", "calib.txt"), "rb").read()
    tokens = torch.tensor(list(data), dtype=torch.long)
    net = fixture_model.MoECausalLM(CONFIG)
    for name, p in net.named_parameters():
        if p.dim() >= 2:
            torch.nn.init.normal_(p, std=CONFIG["initializer_range"])
        elif name.endswith("bias"):
            torch.nn.init.zeros_(p)
    decay = [p for n, p in net.named_parameters() if p.dim() >= 2]
    other = [p for n, p in net.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": other, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95))
    warmup = 40
    started = time.monotonic()
    losses = []
    step = 0
    generator = torch.Generator().manual_seed(args.seed)
    while step < args.steps and time.monotonic() - started < args.minutes * 60:
        lr = args.lr * min(1.0, (step + 1) / warmup) * 0.5 * (
            1 + math.cos(math.pi * min(1.0, step / args.steps)))
        for group in opt.param_groups:
            group["lr"] = lr
        starts = torch.randint(0, len(tokens) - args.seq_len - 1, (args.batch,),
                               generator=generator)
        batch = torch.stack([tokens[s:s + args.seq_len + 1] for s in starts])
        logits, router_logits = net(batch[:, :-1], return_router_logits=True)
        ce = F.cross_entropy(logits.reshape(-1, 256), batch[:, 1:].reshape(-1))
        aux = fixture_model.load_balancing_loss(router_logits, CONFIG["num_experts"],
                                                CONFIG["num_experts_per_tok"])
        loss = ce + CONFIG["router_aux_loss_coef"] * aux
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        losses.append(ce.item())
        step += 1
        if step % 20 == 0:
            print("step %d  ce %.4f  lr %.2e  %.0fs" % (
                step, sum(losses[-20:]) / 20, lr, time.monotonic() - started), flush=True)
    os.makedirs(args.out, exist_ok=True)
    save_file({n: p.detach().to(torch.bfloat16).contiguous()
                for n, p in net.named_parameters()},
               os.path.join(args.out, "model.safetensors"), metadata={"format": "pt"})
    json.dump(CONFIG, open(os.path.join(args.out, "config.json"), "w"), indent=2)
    json.dump({"args": vars(args), "steps_done": step,
               "train_seconds": round(time.monotonic() - started, 1),
               "final_train_ce_last50_avg": sum(losses[-50:]) / max(1, len(losses[-50:])),
               "n_params": sum(p.numel() for p in net.parameters())},
              open(os.path.join(args.out, "train_info.json"), "w"), indent=1)
    print("wrote", args.out)


if __name__ == "__main__":
    main()
