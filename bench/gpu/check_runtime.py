#!/usr/bin/env python3
"""Whole MoE layers on the GPU through the runtime (moeq-run --backend cuda).

  check_runtime.py layers WORK/layers --moeq-run BIN [--json OUT]
      every case of prepare_layers.sh: moeq-run --backend cuda on the same
      inputs as the emulator run made on the CPU; prints max |cuda - emulator|
      and max |cuda - CPU oracle| relative to max |y| per case and token count.
  check_runtime.py big WORK/big --moeq-run BIN [--tokens 1,16,512,4096] [--json OUT]
      Mixtral-8x7B-sized layers (weights filled with random values here):
      the median time of one layer call (moeq-run --bench; at the token
      counts in ART/tokens, else --tokens) next to a PyTorch
      bf16 MoE layer of the same shape and routing (cuBLAS GEMMs per expert)
      and the HBM roofline of the expert weights the call reads.
Exit status 1 when a layer differs from the emulator by more than 1e-2
relative (2e-3 expected: same kernels, f16 outputs; the emulator computes
the MMAs in double).
"""
import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

HERE = Path(__file__).resolve().parent


def run(cmd, **kw):
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)


def relative(a, b):
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item()


def check_layers(args):
    results, ok = [], True
    for case in sorted(Path(args.work).iterdir()):
        layer = (case / "layer").read_text().strip()
        for x in sorted(case.glob("x*.safetensors"), key=lambda p: int(p.stem[1:])):
            t = x.stem[1:]
            out = Path("/tmp") / ("moeq-cuda-%s-%s.safetensors" % (case.name, t))
            r = run([args.moeq_run, case / "art", "--layer", layer, "--input", x, "-o", out,
                     "--backend", "cuda"])
            entry = {"case": case.name, "tokens": int(t)}
            if r.returncode != 0:
                entry["error"] = (r.stderr or r.stdout).strip()[-400:]
                ok = False
                print("%-18s T=%-4s ERROR %s" % (case.name, t, entry["error"]))
                results.append(entry)
                continue
            y = load_file(str(out))["y"]
            emu = load_file(str(case / ("emu%s.safetensors" % t)))["y"]
            cpu = load_file(str(case / ("cpu%s.safetensors" % t)))["y"]
            entry.update(vs_emulator=relative(y, emu), vs_cpu=relative(y, cpu),
                         finite=bool(torch.isfinite(y).all()),
                         equal_to_emulator=bool(torch.equal(y, emu)))
            ok &= entry["finite"] and entry["vs_emulator"] <= 1e-2
            print("%-18s T=%-4s cuda vs emulator %.2e%s, vs CPU oracle %.2e" % (
                case.name, t, entry["vs_emulator"], " (bitwise equal)" if entry[
                    "equal_to_emulator"] else "", entry["vs_cpu"]))
            results.append(entry)
    return {"layers": results, "ok": ok}


def copy_bandwidth():
    """Device-to-device copy bandwidth (bytes read + written per second)."""
    a = torch.empty(1 << 30, dtype=torch.uint8, device="cuda")
    b = torch.empty_like(a)
    for _ in range(3):
        b.copy_(a)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(10):
        b.copy_(a)
    end.record()
    torch.cuda.synchronize()
    return 2 * a.numel() * 10 / (start.elapsed_time(end) / 1e3)


def torch_moe_time(hidden, inter, experts, top_k, tokens, iterations=20):
    """Median ms of a bf16 MoE layer in PyTorch (router, top-k, per-expert
    cuBLAS GEMMs on gathered rows, SiLU, weighted scatter-add)."""
    g = torch.Generator(device="cuda").manual_seed(0)
    w1 = torch.randn(experts, inter, hidden, device="cuda", dtype=torch.bfloat16, generator=g) * .02
    w3 = torch.randn(experts, inter, hidden, device="cuda", dtype=torch.bfloat16, generator=g) * .02
    w2 = torch.randn(experts, hidden, inter, device="cuda", dtype=torch.bfloat16, generator=g) * .02
    router = torch.randn(experts, hidden, device="cuda", dtype=torch.bfloat16, generator=g) * .02
    x = torch.randn(tokens, hidden, device="cuda", dtype=torch.bfloat16, generator=g)

    def layer():
        weights, idx = (x @ router.t()).float().softmax(-1).topk(top_k, dim=-1)
        weights = (weights / weights.sum(-1, keepdim=True)).to(x.dtype)
        y = torch.zeros_like(x)
        for e in range(experts):
            token, slot = (idx == e).nonzero(as_tuple=True)
            if token.numel() == 0:
                continue
            xe = x[token]
            h = torch.nn.functional.silu(xe @ w1[e].t()) * (xe @ w3[e].t())
            y.index_add_(0, token, (h @ w2[e].t()) * weights[token, slot, None])
        return y

    for _ in range(3):
        layer()
    times = []
    for _ in range(iterations):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        layer()
        e.record()
        torch.cuda.synchronize()
        times.append(s.elapsed_time(e))
    del w1, w2, w3
    torch.cuda.empty_cache()
    return sorted(times)[len(times) // 2]


def check_big(args):
    bandwidth = copy_bandwidth()
    print("device-to-device copy: %.2f TB/s (read + write)" % (bandwidth / 1e12))
    tokens = [int(t) for t in args.tokens.split(",")]
    baseline = {}
    results = []
    for art in sorted(Path(args.work).iterdir()):
        manifest = json.loads((art / "manifest.json").read_text())
        layer = manifest["layers"][0]
        hidden, inter = layer["hidden_size"], layer["intermediate_size"]
        experts, top_k = layer["num_experts"], layer["top_k"]
        r = run([sys.executable, HERE / "fill_random_weights.py", art])
        if r.returncode:
            print("%s: cannot fill weights: %s" % (art.name, r.stderr[-300:]))
            results.append({"case": art.name, "error": r.stderr[-300:]})
            continue
        # Bytes of one expert's three packed linears (codes, scales, zeros).
        sizes = {p["tensor"]: p for p in manifest["device_params"]}
        expert_bytes = 0
        for linear in layer["experts"][0]["linears"].values():
            for t in linear["tensors"].values():
                p = sizes[t["tensor"]]
                n = 1
                for d in p["shape"]:
                    n *= d
                expert_bytes += n * (2 if p["dtype"] == "f16" else 4)
        counts = tokens
        if (art / "tokens").exists():  # the counts its tiles were chosen for
            counts = [int(t) for t in (art / "tokens").read_text().split(",")]
        for t in counts:
            x = (torch.rand(t, hidden) * 2 - 1).half().float()
            xin = Path("/tmp/moeq-big-x.safetensors")
            save_file({"x": x}, str(xin))
            r = run([args.moeq_run, art, "--layer", layer["layer"], "--input", xin, "-o",
                     "/tmp/moeq-big-y.safetensors", "--backend", "cuda", "--bench",
                     "--iterations", args.iterations,
                     # The random weights were written here, after the compile.
                     "--skip-checksums"])
            entry = {"case": art.name, "tokens": t}
            m = re.search(r"median ([0-9.]+) ms per call", r.stdout)
            if r.returncode or not m:
                entry["error"] = (r.stderr or r.stdout)[-400:]
                print("%-12s T=%-5d ERROR %s" % (art.name, t, entry["error"]))
                results.append(entry)
                continue
            entry["moeq_ms"] = float(m.group(1))
            entry["launches"] = [line for line in r.stdout.splitlines() if line.startswith("|")]
            key = (hidden, inter, experts, top_k, t)
            if key not in baseline:
                baseline[key] = torch_moe_time(hidden, inter, experts, top_k, t)
            entry["torch_bf16_ms"] = baseline[key]
            # Experts a call reads: all E at large T, at most T * top_k.
            touched = min(experts, t * top_k)
            entry["roofline_ms"] = touched * expert_bytes / bandwidth * 1e3
            entry["bf16_roofline_ms"] = touched * 3 * hidden * inter * 2 / bandwidth * 1e3
            print("%-12s T=%-5d moeq %8.3f ms | torch bf16 %8.3f ms (%.2fx) | weight roofline "
                  "%.3f ms (moeq %.2fx of it)" % (
                      art.name, t, entry["moeq_ms"], entry["torch_bf16_ms"],
                      entry["torch_bf16_ms"] / entry["moeq_ms"], entry["roofline_ms"],
                      entry["moeq_ms"] / entry["roofline_ms"]))
            results.append(entry)
    return {"bandwidth_bytes_per_s": bandwidth, "big": results, "ok": True}


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["layers", "big"])
    parser.add_argument("work")
    parser.add_argument("--moeq-run", required=True)
    parser.add_argument("--tokens", default="1,16,512,4096")
    parser.add_argument("--iterations", default="20")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    start = time.time()
    result = check_layers(args) if args.mode == "layers" else check_big(args)
    result["seconds"] = time.time() - start
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    print("OK" if result["ok"] else "MISMATCH")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
