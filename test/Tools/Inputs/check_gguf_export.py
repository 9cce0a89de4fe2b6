"""Check a `moeq-export --format gguf` file against the dequantized export of
the same artifact, reading it with the `gguf` package (llama.cpp's own
Python reader and dequantizers).

  check_gguf_export.py MODEL.gguf DEQUANTIZED_EXPORT_DIR

- Metadata: architecture, hyperparameters against config.json, vocabulary.
- Every tensor: the GGUF name of each transformers tensor (llama.cpp's
  convert_hf_to_gguf naming, written out here), shape, and values after
  gguf.quants.dequantize; each layer's experts stacked per projection; q/k
  rows permuted to ggml's rotary layout (the permutation is redone here with
  numpy, as convert_hf_to_gguf.py does it).
- Symmetric types (Q4_0, Q5_0, Q8_0) and float tensors must be exact;
  Q4_1/Q5_1 carry -zero*scale as an f16 min: printed relative to the
  tensor's largest weight and bounded by 2^-10.
Prints one line per check and OK, or MISMATCH and exits 1.
"""
import argparse
import collections
import json
import os
import sys

import numpy as np
import gguf
from safetensors.numpy import load_file


def permute(w, heads):
    return (w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:])
            .swapaxes(1, 2).reshape(w.shape))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("gguf_file")
    ap.add_argument("export")
    ap.add_argument("--spm", help="the tokenizer.model the vocabulary must equal")
    a = ap.parse_args()
    ok = True
    cfg = json.load(open(os.path.join(a.export, "config.json")))
    reader = gguf.GGUFReader(a.gguf_file)

    def field(key):
        f = reader.get_field(key)
        return None if f is None else f.contents()

    arch = field("general.architecture")
    expect = {"llama.block_count": cfg["num_hidden_layers"],
              "llama.embedding_length": cfg["hidden_size"],
              "llama.feed_forward_length": cfg["intermediate_size"],
              "llama.attention.head_count": cfg["num_attention_heads"],
              "llama.attention.head_count_kv": cfg.get("num_key_value_heads", cfg["num_attention_heads"]),
              "llama.expert_count": cfg["num_local_experts"],
              "llama.expert_used_count": cfg["num_experts_per_tok"]}
    wrong = {k: (field(k), v) for k, v in expect.items() if field(k) != v}
    tokens = field("tokenizer.ggml.tokens")
    print("metadata: architecture %s, %d layers, %d experts (top-%d), %d tokens (%s), mismatched %s"
          % (arch, field("llama.block_count"), field("llama.expert_count"),
             field("llama.expert_used_count"), len(tokens), field("tokenizer.ggml.model"), wrong))
    if arch != "llama" or wrong or len(tokens) != cfg["vocab_size"]:
        print("MISMATCH: metadata")
        ok = False

    if a.spm:
        import sentencepiece
        sp = sentencepiece.SentencePieceProcessor(model_file=a.spm)
        scores = field("tokenizer.ggml.scores")
        types = field("tokenizer.ggml.token_type")
        want_types = [2 if sp.is_unknown(i) else 3 if sp.is_control(i) else 6 if sp.is_byte(i)
                      else 5 if sp.is_unused(i) else 1 for i in range(sp.get_piece_size())]
        same = (tokens[:sp.get_piece_size()] == [sp.id_to_piece(i) for i in range(sp.get_piece_size())]
                and list(scores[:sp.get_piece_size()]) == [sp.get_score(i) for i in range(sp.get_piece_size())]
                and list(types[:sp.get_piece_size()]) == want_types)
        print("vocabulary: %d pieces, equal to sentencepiece's: %s" % (sp.get_piece_size(), same))
        ok &= same

    weights = load_file(os.path.join(a.export, "model.safetensors"))
    heads = cfg["num_attention_heads"]
    kv_heads = cfg.get("num_key_value_heads", heads)
    expected = {}
    names = {"model.embed_tokens.weight": "token_embd.weight",
             "model.norm.weight": "output_norm.weight", "lm_head.weight": "output.weight"}
    per_layer = {"input_layernorm.weight": "attn_norm.weight",
                 "post_attention_layernorm.weight": "ffn_norm.weight",
                 "self_attn.q_proj.weight": "attn_q.weight", "self_attn.k_proj.weight": "attn_k.weight",
                 "self_attn.v_proj.weight": "attn_v.weight", "self_attn.o_proj.weight": "attn_output.weight",
                 "block_sparse_moe.gate.weight": "ffn_gate_inp.weight"}
    experts = collections.defaultdict(dict)
    for name, w in weights.items():
        w = w.astype(np.float32)
        if name in names:
            expected[names[name]] = w
            continue
        parts = name.split(".")
        layer, rest = int(parts[2]), ".".join(parts[3:])
        if rest in per_layer:
            if rest.startswith("self_attn.q_proj"):
                w = permute(w, heads)
            elif rest.startswith("self_attn.k_proj"):
                w = permute(w, kv_heads)
            expected["blk.%d.%s" % (layer, per_layer[rest])] = w
        elif parts[3:5] == ["block_sparse_moe", "experts"]:
            proj = {"w1": "gate", "w3": "up", "w2": "down"}[parts[6]]
            experts["blk.%d.ffn_%s_exps.weight" % (layer, proj)][int(parts[5])] = w
        else:
            print("MISMATCH: no GGUF name for %s" % name)
            ok = False
    for name, by_expert in experts.items():
        expected[name] = np.stack([by_expert[e] for e in sorted(by_expert)])

    got = {t.name: t for t in reader.tensors}
    if sorted(got) != sorted(expected):
        print("MISMATCH: tensors only in the GGUF %s, only expected %s"
              % (sorted(set(got) - set(expected)), sorted(set(expected) - set(got))))
        ok = False
    types = collections.Counter()
    worst = {}
    for name in sorted(set(got) & set(expected)):
        t = got[name]
        values = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)
        shape = tuple(int(d) for d in reversed(t.shape))
        values = values.reshape(shape)
        want = expected[name]
        if values.shape != want.shape:
            print("MISMATCH: %s has shape %s, expected %s" % (name, values.shape, want.shape))
            ok = False
            continue
        kind = t.tensor_type.name
        types[kind] += 1
        diff = float(np.abs(values - want).max()) / max(float(np.abs(want).max()), 1e-30)
        worst[kind] = max(worst.get(kind, 0.0), diff)
    for kind in sorted(types):
        bound = 2.0 ** -10 if kind in ("Q4_1", "Q5_1") else 0.0
        print("%s: %d tensors, max |difference| / max |weight| %.3g" % (kind, types[kind], worst[kind]))
        if worst[kind] > bound:
            print("MISMATCH: %s beyond %g" % (kind, bound))
            ok = False
    print("OK" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
