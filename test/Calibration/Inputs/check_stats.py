"""Check a calibration statistics file (docs/calibration-stats.md) against the MoE block inputs it
was computed from, by brute force in numpy, independently of moeq_calibrate.py's code path.

  check_stats.py MODEL_DIR STATS INPUTS [--expect-zero-expert L:E]

MODEL_DIR: the Hugging Face checkpoint (config.json, model.safetensors); STATS: the statistics
(format version 2: a directory, stats.json + layer-<L>.safetensors; --layers: only those layers'
files are expected); INPUTS: the captured block inputs (`layers.L.input` [T, H] F32). The routing
of every family is re-implemented here token by token from the checkpoint's router tensors. The
stored float32 Gram matrices must be the float64 sums rounded once (within half a float32 ulp of
the float64 reference, plus 1e-10 of the largest entry for the different summation order): a
float32 accumulation would not be. Prints one line per check group and `OK`; exits 1 with the
first failure.
"""
import argparse
import hashlib
import json
import os
import sys

import numpy as np
from safetensors.numpy import load_file

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..",
                                "tools", "python"))
from moeq_calibrate import load_statistics, unpack_symmetric  # noqa: E402

TOL = 1e-10  # float64 sums in a different order
F32_TOL = 1e-6  # sums of float32-stored values (traces)


def fail(msg):
    print("FAILED: " + msg)
    sys.exit(1)


def close(a, b, what, tol=TOL):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        fail("%s: shape %s vs %s" % (what, a.shape, b.shape))
    scale = max(float(np.abs(b).max()) if b.size else 0.0, 1e-300)
    err = float(np.abs(a - b).max()) / scale if a.size else 0.0
    if not err <= tol:
        fail("%s: relative difference %.3g > %g" % (what, err, tol))
    return err


def close_f32(stored, ref, what):
    """A float32-stored sum vs its float64 reference: rounded once (see the docstring)."""
    a, b = np.asarray(stored, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    if a.shape != b.shape:
        fail("%s: shape %s vs %s" % (what, a.shape, b.shape))
    if not b.size:
        return 0.0
    scale = max(float(np.abs(b).max()), 1e-300)
    bound = 0.5 * np.spacing(np.abs(b).astype(np.float32)).astype(np.float64) + TOL * scale
    bad = np.abs(a - b) > bound
    if bad.any():
        fail("%s: %d entries are not the float64 sum rounded once to float32 (worst %.3g relative)"
             % (what, int(bad.sum()), float(np.abs(a - b).max()) / scale))
    return float(np.abs(a - b).max()) / scale


def silu(v):
    return v / (1.0 + np.exp(-v))


def softmax(v):
    e = np.exp(v - v.max())
    return e / e.sum()


def top(v, k):
    return list(np.argsort(-v, kind="stable")[:k])


# Families whose MoE block is another family's under other keys.
SAME_BLOCK_AS = {"llama4": "llama4_text", "minimax": "mixtral", "qwen3_next": "qwen2_moe", "glm4_moe": "deepseek_v3",
                 "dots1": "deepseek_v3"}


def per_layer(v):
    return v[0] if isinstance(v, list) else v


def top_k(mt, cfg):
    if mt == "ernie4_5_moe":
        return cfg["moe_k"]
    return per_layer(cfg["moe_topk"] if mt == "hunyuan_v1_moe" else cfg["num_experts_per_tok"])


def route_token(mt, cfg, W, s):
    """One token's router logits s -> list of (expert, routing weight)."""
    k = top_k(mt, cfg)
    if mt == "gpt_oss":  # softmax over the top-k logits (the router bias is in s)
        sel = top(s, k)
        return list(zip(sel, softmax(s[sel])))
    if mt == "llama4_text":  # sigmoid of the top-k logits
        sel = top(s, k)
        return [(e, 1.0 / (1.0 + np.exp(-s[e]))) for e in sel]
    if mt == "ernie4_5_moe":
        p = softmax(s)
        sel = top(p + W["bias"], k)
        w = p[sel]
        return list(zip(sel, w / max(w.sum(), 1e-12)))
    if mt in ("mixtral", "qwen2_moe", "qwen3_moe", "olmoe", "hunyuan_v1_moe", "granitemoe"):
        p = softmax(s)
        sel = top(p, k)
        w = p[sel]
        if mt in ("mixtral", "hunyuan_v1_moe", "granitemoe") or cfg.get("norm_topk_prob"):
            w = w / w.sum()
        return list(zip(sel, w))
    if mt == "phimoe":
        eps = cfg["router_jitter_noise"]
        out = []
        avail = np.ones(len(s), dtype=bool)
        for _ in range(2):
            cand = np.where(avail, s, -np.inf)
            i = int(np.argmax(cand))
            m = cand[i]
            keep = [j for j in range(len(s))
                    if avail[j] and not ((m - s[j]) / max(abs(s[j]), m) > 2 * eps)]
            out.append((i, np.exp(s[i] - m) / sum(np.exp(s[j] - m) for j in keep)))
            avail[i] = False
        return out
    if mt == "deepseek_v2":
        p = softmax(s)
        E = len(p)
        if cfg["topk_method"] == "group_limited_greedy":
            G, per = cfg["n_group"], E // cfg["n_group"]
            gs = np.array([p[g * per:(g + 1) * per].max() for g in range(G)])
            groups = set(top(gs, cfg["topk_group"]))
            p = np.array([p[e] if e // per in groups else 0.0 for e in range(E)])
        sel = top(p, k)
        return [(e, p[e] * cfg["routed_scaling_factor"]) for e in sel]
    if mt == "deepseek_v3":
        sc = 1.0 / (1.0 + np.exp(-s))
        b = sc + W["bias"]
        E = len(sc)
        G, per = cfg["n_group"], E // cfg["n_group"]
        gs = np.array([np.sort(b[g * per:(g + 1) * per])[-2:].sum() for g in range(G)])
        groups = set(top(gs, cfg["topk_group"]))
        b = np.array([b[e] if e // per in groups else 0.0 for e in range(E)])
        sel = top(b, k)
        w = sc[sel]
        if cfg.get("norm_topk_prob"):
            w = w / (w.sum() + 1e-20)
        return list(zip(sel, w * cfg["routed_scaling_factor"]))
    fail("no reference routing for " + mt)


FP4_E2M1 = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0,
                     -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0])


def decode_mxfp4(ckpt):
    """gpt-oss's MXFP4 experts: `<name>_blocks` U8 [E, out, in/32, 16] (two e2m1 codes per byte,
    the even element in the low nibble) and `<name>_scales` U8 [E, out, in/32] (2^(s - 127) per
    block of 32) of the [E, out, in] transpose of the parameter transformers computes with
    ([E, in, out], x @ W): replaced by that parameter, decoded here."""
    for name in [n for n in ckpt if n.endswith("_blocks")]:
        base = name[:-len("_blocks")]
        blocks, scales = ckpt.pop(name), ckpt.pop(base + "_scales").astype(np.int32)
        codes = np.stack([blocks & 15, blocks >> 4], axis=-1).reshape(*blocks.shape[:-1], 32)
        values = FP4_E2M1[codes] * np.ldexp(1.0, scales - 127)[..., None]
        ckpt[base] = values.reshape(*blocks.shape[:-2], -1).swapaxes(-1, -2)
    return ckpt


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model_dir")
    ap.add_argument("stats")
    ap.add_argument("inputs")
    ap.add_argument("--expect-zero-expert", action="append", default=[])
    ap.add_argument("--layers", type=lambda v: sorted(int(i) for i in v.split(",")),
                    help="the MoE layers whose files must be present (default: any)")
    args = ap.parse_args()

    cfg = json.load(open(os.path.join(args.model_dir, "config.json")))
    if "num_experts" not in cfg and "num_local_experts" in cfg:  # transformers 5's name (Qwen3)
        cfg["num_experts"] = cfg["num_local_experts"]
    model_type = cfg["model_type"]
    # Llama 4 as released: the language model's config in text_config, its tensors under
    # language_model.
    layer_prefix = "model.layers."
    if model_type == "llama4":
        cfg, layer_prefix = dict(cfg["text_config"]), "language_model.model.layers."
    mt = SAME_BLOCK_AS.get(model_type, model_type)
    ckpt = decode_mxfp4(load_file(os.path.join(args.model_dir, "model.safetensors")))
    meta, layer_meta, raw = load_statistics(args.stats, dense=False)
    stats = {n: unpack_symmetric(a) if n.rsplit(".", 1)[-1].startswith("gram_") else a
             for n, a in raw.items()}
    inputs = load_file(args.inputs)

    # ---- metadata
    if mt in ("mixtral", "phimoe"):
        E, I, Is, block, names = cfg["num_local_experts"], cfg["intermediate_size"], 0, "block_sparse_moe", ("w1", "w3", "w2")
    elif mt == "gpt_oss":  # stacked for x @ W, gate/up columns interleaved, biases
        E, I, Is, block, names = cfg["num_local_experts"], cfg["intermediate_size"], 0, "mlp", None
    elif mt == "granitemoe":  # stacked input_linear [E, 2I, H] (gate rows first)
        E, I, Is, block, names = cfg["num_local_experts"], cfg["intermediate_size"], 0, "block_sparse_moe", None
    elif mt == "llama4_text":  # stacked for x @ W: gate_up [E, H, 2I], a shared expert of size I
        E, I, block, names = cfg["num_local_experts"], cfg["intermediate_size"], "feed_forward", None
        Is = cfg["intermediate_size"]
    elif mt == "olmoe":
        E, I, Is, block, names = cfg["num_experts"], cfg["intermediate_size"], 0, "mlp", ("gate_proj", "up_proj", "down_proj")
    elif mt in ("qwen2_moe", "qwen3_moe"):
        E, I, block, names = cfg["num_experts"], cfg["moe_intermediate_size"], "mlp", ("gate_proj", "up_proj", "down_proj")
        Is = cfg.get("shared_expert_intermediate_size", 0) if mt == "qwen2_moe" else 0
    elif mt == "ernie4_5_moe":
        E, I, block, names = cfg["moe_num_experts"], cfg["moe_intermediate_size"], "mlp", ("gate_proj", "up_proj", "down_proj")
        Is = cfg["moe_intermediate_size"] * cfg["moe_num_shared_experts"]
    elif mt == "hunyuan_v1_moe":  # transformers 4.57 sizes experts and shared MLP by intermediate_size
        E, I, block, names = per_layer(cfg["num_experts"]), cfg["intermediate_size"], "mlp", ("gate_proj", "up_proj", "down_proj")
        Is = cfg["intermediate_size"]
    else:
        E, I, block, names = cfg["n_routed_experts"], cfg["moe_intermediate_size"], "mlp", ("gate_proj", "up_proj", "down_proj")
        Is = cfg["moe_intermediate_size"] * cfg["n_shared_experts"]
    H = cfg["hidden_size"]
    K = top_k(mt, cfg)
    router = {"hunyuan_v1_moe": "gate.wg.weight", "granitemoe": "router.layer.weight",
              "llama4_text": "router.weight", "gpt_oss": "router.weight"}.get(mt, "gate.weight")
    # Llama 4: the routing weight c scales the expert input (c x), the output weight is 1.
    on_inputs = mt == "llama4_text"

    def expert_in(t, c):
        return c * x[t] if on_inputs else x[t]

    def out_weight(c):
        return 1.0 if on_inputs else c

    def expert_hidden(P, e, xe):
        """The down projection's input h of expert e on rows xe."""
        if mt == "gpt_oss":
            gu = ckpt[P + "experts.gate_up_proj"][e].astype(np.float64)
            b = ckpt[P + "experts.gate_up_proj_bias"][e].astype(np.float64)
            limit = cfg.get("swiglu_limit", 7.0)
            g = np.minimum(xe @ gu[:, 0::2] + b[0::2], limit)
            u = np.clip(xe @ gu[:, 1::2] + b[1::2], -limit, limit)
            return g / (1.0 + np.exp(-1.702 * g)) * (u + 1.0)
        wg, wu = expert_gate_up(P, e)
        return silu(xe @ wg.T) * (xe @ wu.T)

    def expert_gate_up(P, e):
        if mt == "granitemoe":
            gu = ckpt[P + "input_linear.weight"][e].astype(np.float64)
            return gu[:I], gu[I:]
        if mt == "llama4_text":
            gu = ckpt[P + "experts.gate_up_proj"][e].astype(np.float64)
            return gu[:, :I].T, gu[:, I:].T
        return (ckpt["%sexperts.%d.%s.weight" % (P, e, n)].astype(np.float64) for n in names[:2])
    moe_layers = sorted(int(n[len(layer_prefix):].split(".")[0]) for n in ckpt
                        if n.startswith(layer_prefix) and n.endswith("%s.%s" % (block, router))
                        and ".experts." not in n)
    # The routers of every MoE layer, rounded to bf16 (to nearest even), little-endian, SHA-256.
    fingerprint = hashlib.sha256()
    for L in moe_layers:
        bits = np.ascontiguousarray(ckpt["%s%d.%s.%s" % (layer_prefix, L, block, router)],
                                    dtype=np.float32).view(np.uint32).astype(np.uint64)
        fingerprint.update(((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype("<u2").tobytes())
    expect = {"format": "moeq-calibration-stats", "version": "2", "gram_dtype": "F32",
              "gram_storage": "upper_packed", "model_type": model_type,
              "num_hidden_layers": str(cfg["num_hidden_layers"]), "hidden_size": str(H),
              "moe_intermediate_size": str(I), "shared_intermediate_size": str(Is), "num_experts": str(E),
              "top_k": str(K), "moe_layers": ",".join(map(str, moe_layers)),
              "weights_fingerprint": "sha256:" + fingerprint.hexdigest()}
    if meta != expect:
        fail("index %s, expected %s" % (meta, expect))
    layers = sorted(layer_meta)
    if not layers or not set(layers) <= set(moe_layers):
        fail("layer files for %s, MoE layers %s" % (layers, moe_layers))
    if args.layers is not None and layers != args.layers:
        fail("layer files for %s, expected %s" % (layers, args.layers))
    for L in layers:
        lm = layer_meta[L]
        for key, val in dict(expect, layer=str(L)).items():
            if lm.get(key) != val:
                fail("layer %d metadata %s = %r, expected %r" % (L, key, lm.get(key), val))
        if not lm.get("producer", "").startswith(("moeq_calibrate.py", "moeq-stats")):
            fail("layer %d metadata producer %r" % (L, lm.get("producer")))
    meta = layer_meta[layers[0]]
    for L in layers:
        for key in ("tokens", "samples_per_expert", "sample_stride", "producer"):
            if layer_meta[L].get(key) != meta.get(key):
                fail("layer %d metadata %s differs from layer %d's" % (L, key, layers[0]))
    print("metadata OK: %s layers %s of %s" % (model_type, ",".join(map(str, layers)), expect["moe_layers"]))

    # ---- the exact tensor set, as stored (format version 2)
    N = int(meta.get("samples_per_expert", "0"))
    stride = int(meta.get("sample_stride", "1"))
    packed = lambda n: (n * (n + 1) // 2,)  # noqa: E731
    names_expected = {}
    for L in layers:
        p = "layers.%d." % L
        names_expected.update({p + "tokens": ("int64", (1,)), p + "gram_all": ("float32", packed(H)),
                               p + "expert_counts": ("int64", (E,)), p + "affinity_sum": ("float64", (E,))})
        for e in range(E):
            for n, shp in (("gram_in", packed(H)), ("gram_in_weighted", packed(H)), ("gram_down", packed(I)),
                           ("gram_down_weighted", packed(I))):
                names_expected[p + "experts.%d.%s" % (e, n)] = ("float32", shp)
            if N:
                names_expected[p + "experts.%d.samples" % e] = ("float32", (N, H))
                names_expected[p + "experts.%d.sample_weights" % e] = ("float64", (N,))
        if Is:
            names_expected[p + "shared.gram_down"] = ("float32", packed(Is))
            if N:
                names_expected[p + "shared.samples"] = ("float32", (N, H))
                names_expected[p + "shared.sample_weights"] = ("float64", (N,))
            if mt == "qwen2_moe":
                names_expected[p + "shared.gram_in_weighted"] = ("float32", packed(H))
                names_expected[p + "shared.gram_down_weighted"] = ("float32", packed(Is))
    if set(raw) != set(names_expected):
        fail("tensor names: missing %s, unexpected %s" % (sorted(set(names_expected) - set(raw))[:5],
                                                          sorted(set(raw) - set(names_expected))[:5]))
    for n, (dt, shp) in names_expected.items():
        if str(raw[n].dtype) != dt or raw[n].shape != shp:
            fail("%s: %s %s, expected %s %s" % (n, raw[n].dtype, raw[n].shape, dt, shp))
    print("tensors OK: %d" % len(stats))

    total_tokens = None
    for L in layers:
        p = "layers.%d." % L
        P = "%s%d.%s." % (layer_prefix, L, block)
        x = inputs[p + "input"].astype(np.float64)
        T = x.shape[0]
        if total_tokens is None:
            total_tokens = T
        if int(stats[p + "tokens"][0]) != T or layer_meta[L]["tokens"] != str(T) or T != total_tokens:
            fail("layer %d: tokens %d / metadata %s, inputs %d" % (L, stats[p + "tokens"][0], layer_meta[L]["tokens"], T))
        counts = stats[p + "expert_counts"]
        if int(counts.sum()) != T * K:
            fail("layer %d: counts sum %d != tokens*top_k %d" % (L, counts.sum(), T * K))
        ga = stats[p + "gram_all"]
        if not np.array_equal(ga, ga.T):
            fail("layer %d: gram_all not symmetric" % L)
        ev = np.linalg.eigvalsh(ga)
        if ev.min() < -1e-5 * ev.max():  # (rounded to float32)
            fail("layer %d: gram_all not PSD (min eigenvalue %g)" % (L, ev.min()))
        close(np.trace(ga), (x * x).sum(), "layer %d trace(gram_all) vs sum |x|^2" % L, F32_TOL)
        close_f32(ga, x.T @ x, "layer %d gram_all" % L)

        # independent routing, token by token
        W = {"gate": ckpt[P + router].astype(np.float64)}
        if mt == "deepseek_v3":
            W["bias"] = ckpt[P + "gate.e_score_correction_bias"].astype(np.float64)
        if mt == "ernie4_5_moe":
            W["bias"] = ckpt[P + "moe_statics.e_score_correction_bias"].astype(np.float64).reshape(-1)
        logits = x @ W["gate"].T
        if mt == "gpt_oss":
            logits = logits + ckpt[P + "router.bias"].astype(np.float64)
        members = [[] for _ in range(E)]
        csum = np.zeros(T)
        for t in range(T):
            for e, c in route_token(mt, cfg, W, logits[t]):
                members[e].append((t, c))
                csum[t] += c
        ref_counts = np.array([len(m) for m in members])
        if not np.array_equal(ref_counts, counts):
            fail("layer %d: expert_counts %s, reference %s" % (L, counts.tolist(), ref_counts.tolist()))
        close(stats[p + "affinity_sum"], [sum(c for _, c in m) for m in members], "layer %d affinity_sum" % L)
        # weighted traces: sum_e tr(gram_in_weighted_e) = sum_t (sum_k c_tk) |x_t|^2
        # (on the inputs: sum_t (sum_k c_tk^2) |x_t|^2)
        wsum = np.zeros(T)
        for m in members:
            for t, c in m:
                wsum[t] += out_weight(c) * (c * c if on_inputs else 1.0)
        close(sum(np.trace(stats[p + "experts.%d.gram_in_weighted" % e]) for e in range(E)),
              (wsum * (x * x).sum(1)).sum(), "layer %d sum of weighted traces" % L, F32_TOL)
        close(stats[p + "affinity_sum"].sum(), csum.sum(), "layer %d total affinity" % L)

        # samples: routed row i of expert e (token order) when i % stride == 0, i // stride < N
        if N:
            if stride != max(1, T * K // (E * N)):
                fail("layer %d: sample_stride %d, expected %d" % (L, stride, max(1, T * K // (E * N))))
            for e in range(E):
                want_x, want_c = np.zeros((N, H)), np.zeros(N)
                for i, (t, c) in enumerate(members[e]):
                    if i % stride == 0 and i // stride < N:
                        want_x[i // stride], want_c[i // stride] = expert_in(t, c), out_weight(c)
                q = p + "experts.%d." % e
                if on_inputs:  # c * x, computed in float64 and stored as float32
                    close_f32(stats[q + "samples"], want_x, "layer %d expert %d samples" % (L, e))
                else:
                    close(stats[q + "samples"], want_x, "layer %d expert %d samples" % (L, e))
                close(stats[q + "sample_weights"], want_c, "layer %d expert %d sample_weights" % (L, e))

        worst = 0.0
        for e in range(E):
            q = p + "experts.%d." % e
            if not members[e]:
                for n in ("gram_in", "gram_in_weighted", "gram_down", "gram_down_weighted"):
                    if np.any(stats[q + n] != 0):
                        fail("layer %d expert %d: no tokens but %s is not zero" % (L, e, n))
                continue
            c = np.array([out_weight(c) for _, c in members[e]])
            xe = np.array([expert_in(t, c) for t, c in members[e]])
            h = expert_hidden(P, e, xe)
            worst = max(worst,
                        close_f32(stats[q + "gram_in"], xe.T @ xe, "layer %d expert %d gram_in" % (L, e)),
                        close_f32(stats[q + "gram_in_weighted"], (xe * c[:, None]).T @ xe, "layer %d expert %d gram_in_weighted" % (L, e)),
                        close_f32(stats[q + "gram_down"], h.T @ h, "layer %d expert %d gram_down" % (L, e)),
                        close_f32(stats[q + "gram_down_weighted"], (h * c[:, None]).T @ h, "layer %d expert %d gram_down_weighted" % (L, e)))
            if np.trace(stats[q + "gram_in_weighted"]) > c.max() * np.trace(stats[q + "gram_in"]) * (1 + F32_TOL):
                fail("layer %d expert %d: trace(gram_in_weighted) > max c * trace(gram_in)" % (L, e))
        # brute force, one outer product at a time, for the busiest expert
        e = int(np.argmax(ref_counts))
        g = np.zeros((H, H))
        gw = np.zeros((H, H))
        for t, c in members[e]:
            xi = expert_in(t, c)
            o = np.outer(xi, xi)
            g += o
            gw += out_weight(c) * o
        close_f32(stats[p + "experts.%d.gram_in" % e], g, "layer %d expert %d gram_in (brute force)" % (L, e))
        close_f32(stats[p + "experts.%d.gram_in_weighted" % e], gw, "layer %d expert %d gram_in_weighted (brute force)" % (L, e))

        if Is:
            sp = P + {"qwen2_moe": "shared_expert.", "hunyuan_v1_moe": "shared_mlp.",
                      "llama4_text": "shared_expert."}.get(mt, "shared_experts.")
            hs = silu(x @ ckpt[sp + "gate_proj.weight"].astype(np.float64).T) * (x @ ckpt[sp + "up_proj.weight"].astype(np.float64).T)
            close_f32(stats[p + "shared.gram_down"], hs.T @ hs, "layer %d shared gram_down" % L)
            gs = np.ones((T, 1))
            if mt == "qwen2_moe":
                gs = 1.0 / (1.0 + np.exp(-(x @ ckpt[P + "shared_expert_gate.weight"].astype(np.float64).T)))
            # samples of every token: token t when t % shared_stride == 0, t // shared_stride < N
            if N:
                shared_stride = max(1, T // N)
                if layer_meta[L].get("shared_sample_stride") != str(shared_stride):
                    fail("layer %d: shared_sample_stride %r, expected %d"
                         % (L, layer_meta[L].get("shared_sample_stride"), shared_stride))
                want_x, want_g = np.zeros((N, H)), np.zeros(N)
                kept = [t for t in range(T) if t % shared_stride == 0 and t // shared_stride < N]
                for t in kept:
                    want_x[t // shared_stride], want_g[t // shared_stride] = x[t], gs[t, 0]
                close(stats[p + "shared.samples"], want_x, "layer %d shared samples" % L)
                close(stats[p + "shared.sample_weights"], want_g, "layer %d shared sample_weights" % L)
            if mt == "qwen2_moe":
                close_f32(stats[p + "shared.gram_in_weighted"], (x * gs).T @ x, "layer %d shared gram_in_weighted" % L)
                close_f32(stats[p + "shared.gram_down_weighted"], (hs * gs).T @ hs, "layer %d shared gram_down_weighted" % L)
        zero = [e for e in range(E) if ref_counts[e] == 0]
        print("layer %d OK: %d tokens, counts %s, zero-token experts %s, max rel diff %.2g"
              % (L, T, ",".join(map(str, counts)), zero or "none", worst))

    for spec in args.expect_zero_expert:
        L, e = map(int, spec.split(":"))
        if int(stats["layers.%d.expert_counts" % L][e]) != 0:
            fail("layer %d expert %d should have no token" % (L, e))
    print("OK")


if __name__ == "__main__":
    main()
