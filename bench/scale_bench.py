#!/usr/bin/env python3
"""Scale benchmark: one MoE layer of a deployed size, compiled as moeq does.

    python3 bench/scale_bench.py --build build --work /var/tmp/moeq-scale \
        [--models mixtral-8x7b,deepseek-v3] [--gptq-experts 2] [--machines 1,4,16] \
        [--json results.json] [--keep]

For each model it generates ONE MoE layer of that model's shapes
(moeq-gen-checkpoint, random bf16 weights; written tensor by tensor, never
whole in memory) and measures, each as its own process (wall time and peak
RSS from wait4):

  * read:  reading the checkpoint file in 64 MiB chunks (the peer RTN is
           compared with: "RTN is bounded by reading the checkpoint"),
  * rtn:   moeq-compile --bits 4 (group 128) of the layer, every expert,
           twice: cold (the layer's pages dropped from the page cache
           first, so it reads the disk like a first compile) against the
           disk read, and warm (right after a read filled the cache, as far
           as the layer fits in memory) against the page-cache read,
  * gptq:  moeq-compile --bits 4 --method gptq of a layer with the same shapes
           and --gptq-experts experts (statistics from moeq-stats --random-inputs,
           whose time and size on disk are reported too), EXTRAPOLATED to the
           model's expert count (labelled so: per-expert time x experts),

then projects whole-model times on this machine (layers x per-layer time)
and per machine when the layers are spread over N machines as slices
(ceil(layers / N) layers each). Statistics size on disk: measured for the
subset, and the whole model's from the format (moeq-stats --print-sizes).

Prints a table; --json writes every figure. Needs ~27 GB free in --work for
DeepSeek-V3 (22.5 GB layer + 6 GB packed).
"""
import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys

from benchutil import run_measured, tree_bytes

MODELS = {
    # name: generator flags for one MoE layer, model facts for projections
    "mixtral-8x7b": dict(
        gen=["--family", "mixtral", "--hidden", "4096", "--intermediate", "14336",
             "--experts", "8", "--top-k", "2", "--heads", "32", "--kv-heads", "8"],
        subset=lambda k: ["--family", "mixtral", "--hidden", "4096", "--intermediate", "14336",
                          "--experts", str(k), "--top-k", str(min(2, k)), "--heads", "32",
                          "--kv-heads", "8"],
        experts=8, moe_layers=32, hidden=4096, intermediate=14336),
    # A smoke run of the script itself (seconds).
    "tiny": dict(
        gen=["--hidden", "256", "--intermediate", "512", "--experts", "8", "--top-k", "2"],
        subset=lambda k: ["--hidden", "256", "--intermediate", "512", "--experts", str(k),
                          "--top-k", str(min(2, k))],
        experts=8, moe_layers=4, hidden=256, intermediate=512),
    "deepseek-v3": dict(
        gen=["--family", "deepseek_v3", "--hidden", "7168", "--intermediate", "2048",
             "--shared-intermediate", "2048", "--experts", "256", "--top-k", "8",
             "--n-group", "8", "--topk-group", "4", "--heads", "16", "--kv-heads", "16"],
        subset=lambda k: ["--family", "deepseek_v3", "--hidden", "7168", "--intermediate", "2048",
                          "--shared-intermediate", "2048", "--experts", str(k),
                          "--top-k", str(min(2, k)), "--n-group", "1", "--topk-group", "1",
                          "--heads", "16", "--kv-heads", "16"],
        experts=256, moe_layers=58, hidden=7168, intermediate=2048),
}


def run(cmd, label):
    return run_measured(cmd, label)


du = tree_bytes


def expert_bytes(model_dir):
    """Bytes of routed-expert weight tensors in the checkpoint (from its header)."""
    total = 0
    for name in os.listdir(model_dir):
        if not name.endswith(".safetensors"):
            continue
        with open(os.path.join(model_dir, name), "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            header = json.loads(f.read(n))
        for key, info in header.items():
            if key != "__metadata__" and re.search(r"\.experts\.\d+\.", key):
                b, e = info["data_offsets"]
                total += e - b
    return total


def stats_size_from_format(build, model_dir):
    out = subprocess.run([os.path.join(build, "bin", "moeq-stats"), model_dir, "--print-sizes"],
                         check=True, capture_output=True, text=True).stdout
    row = re.search(r"^per MoE layer\s+(\d+)\s+(\d+)", out, re.M)
    return int(row.group(2))


def evict(files):
    """Drops the files' pages from the page cache (written back first:
    dirty pages cannot be dropped)."""
    for path in files:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def bench_model(name, spec, args):
    bin_ = lambda tool: os.path.join(args.build, "bin", tool)
    work = os.path.join(args.work, name)
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    res = {"model": name, "experts": spec["experts"], "moe_layers": spec["moe_layers"]}
    print(f"== {name}", file=sys.stderr)

    layer = os.path.join(work, "layer")
    res["generate_s"], _ = run([bin_("moeq-gen-checkpoint"), "-o", layer, "--layers", "1",
                                *spec["gen"]], "generate")
    res["expert_bytes"] = expert_bytes(layer)
    res["checkpoint_bytes"] = du(layer)
    res["stats_layer_bytes_format"] = stats_size_from_format(args.build, layer)

    # The peers: reading the checkpoint from the page cache (into one reused
    # buffer: memcpy speed) and from the disk (O_DIRECT, the page cache
    # bypassed), whichever bounds a compile on this machine.
    files = [os.path.join(layer, f) for f in sorted(os.listdir(layer)) if f.endswith(".safetensors")]
    reader = [sys.executable, "-c",
              "import sys\nb = bytearray(64 << 20)\nfor p in sys.argv[1:]:\n"
              " with open(p, 'rb', buffering=0) as f:\n  while f.readinto(b): pass", *files]
    run(reader, "read (warm)")  # (fills the page cache)
    res["read_s"], res["read_rss"] = run(reader, "read (page cache)")
    res["read_disk_s"] = sum(run(["dd", f"if={f}", "of=/dev/null", "bs=64M", "iflag=direct",
                                  "status=none"], "read (disk)")[0] for f in files)
    rtn = os.path.join(work, "rtn")
    compile_rtn = [bin_("moeq-compile"), layer, "-o", rtn, "--bits", "4", "--quiet"]
    evict(files)
    res["rtn_cold_s"], res["rtn_cold_rss"] = run(compile_rtn, "rtn (cold)")
    res["rtn_packed_bytes"] = du(rtn)
    shutil.rmtree(rtn)
    run(reader, "read (warm)")
    res["rtn_s"], res["rtn_rss"] = run(compile_rtn, "rtn (warm)")
    shutil.rmtree(rtn)
    if not args.keep:
        shutil.rmtree(layer)

    if args.skip_gptq:
        shutil.rmtree(work, ignore_errors=True)
        return res
    k = args.gptq_experts
    subset = os.path.join(work, f"subset{k}")
    run([bin_("moeq-gen-checkpoint"), "-o", subset, "--layers", "1", *spec["subset"](k)],
        "generate subset")
    stats = os.path.join(work, "stats")
    res["stats_s"], res["stats_rss"] = run(
        [bin_("moeq-stats"), subset, "--random-inputs", str(args.tokens), "-o", stats, "--quiet"],
        "statistics")
    res["stats_subset_bytes"] = du(stats)
    gptq = os.path.join(work, "gptq")
    res["gptq_subset_s"], res["gptq_rss"] = run(
        [bin_("moeq-compile"), subset, "-o", gptq, "--bits", "4", "--method", "gptq",
         "--stats", stats, "--quiet"], "gptq")
    res["gptq_subset_experts"] = k
    # The subset layer also has the non-expert parts (router, attention are
    # copied, not quantized); per-expert time is the whole over k.
    res["gptq_layer_s_extrapolated"] = res["gptq_subset_s"] / k * spec["experts"]
    res["stats_layer_s_extrapolated"] = res["stats_s"] / k * spec["experts"]
    shutil.rmtree(work, ignore_errors=True)
    return res


def project(res, machines):
    layers = res["moe_layers"]
    out = []
    for n in machines:
        per = math.ceil(layers / n)
        out.append({"machines": n, "layers_per_machine": per,
                    "rtn_s": per * res["rtn_s"],
                    "gptq_s_extrapolated": per * res["gptq_layer_s_extrapolated"]})
    return out


def hms(s):
    s = int(round(s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m{s % 60:02d}s" if s >= 3600 else \
        (f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s")


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build")
    ap.add_argument("--work", default="/var/tmp/moeq-scale")
    ap.add_argument("--models", default="mixtral-8x7b,deepseek-v3")
    ap.add_argument("--gptq-experts", type=int, default=2)
    ap.add_argument("--tokens", type=int, default=4096,
                    help="random calibration tokens for the subset's statistics")
    ap.add_argument("--machines", default="1,4,8,16")
    ap.add_argument("--json")
    ap.add_argument("--keep", action="store_true", help="keep the generated layer until the end")
    ap.add_argument("--skip-gptq", action="store_true", help="generation, reads and RTN only")
    args = ap.parse_args()
    machines = [int(m) for m in args.machines.split(",")]
    results = []
    for name in args.models.split(","):
        res = bench_model(name, MODELS[name], args)
        if not args.skip_gptq:
            res["projection"] = project(res, machines)
        results.append(res)

    gb = lambda b: f"{b / 1e9:.2f} GB"
    gib = lambda b: f"{b / 2**30:.2f} GiB"
    print(f"\nmoeq scale benchmark ({os.cpu_count()} cores)\n")
    print("| model | checkpoint (expert weights, bf16) | read, disk | RTN w4 g128, cold | "
          "RTN cold / disk read | RTN cold / disk traffic | read, page cache | RTN w4 g128, warm | "
          "RTN warm / cached read | RTN peak RSS |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    rate = lambda r, s: f"{s:.1f} s ({r['checkpoint_bytes'] / s / 1e9:.2f} GB/s)"
    # Disk traffic of a cold compile: the checkpoint read plus the artifact
    # written, both at the measured read rate (an estimate of the disk's
    # share; writes go through the page cache and may be slower or faster).
    traffic = lambda r: r["read_disk_s"] * (1 + r["rtn_packed_bytes"] / r["checkpoint_bytes"])
    for r in results:
        print(f"| {r['model']} | {gb(r['checkpoint_bytes'])} ({gb(r['expert_bytes'])}) | "
              f"{rate(r, r['read_disk_s'])} | {rate(r, r['rtn_cold_s'])} | "
              f"{r['rtn_cold_s'] / r['read_disk_s']:.2f} | {r['rtn_cold_s'] / traffic(r):.2f} | "
              f"{rate(r, r['read_s'])} | "
              f"{rate(r, r['rtn_s'])} | {r['rtn_s'] / r['read_s']:.2f} | "
              f"{gib(max(r['rtn_rss'], r['rtn_cold_rss']))} |")
    if args.skip_gptq:
        return _write_json(args, results)
    print()
    print("| model | GPTQ subset | GPTQ per layer (extrapolated) | GPTQ peak RSS | statistics, subset: time, on disk | statistics per layer (format 2) |")
    print("|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['model']} | {r['gptq_subset_experts']} experts: {r['gptq_subset_s']:.1f} s | "
              f"{hms(r['gptq_layer_s_extrapolated'])} ({r['experts']} experts) | {gib(r['gptq_rss'])} | "
              f"{r['stats_s']:.1f} s, {gb(r['stats_subset_bytes'])} | {gb(r['stats_layer_bytes_format'])} |")
    print()
    print("| model | machines | MoE layers each | RTN | GPTQ (extrapolated) |")
    print("|---|---|---|---|---|")
    for r in results:
        for p in r["projection"]:
            print(f"| {r['model']} | {p['machines']} | {p['layers_per_machine']} | {hms(p['rtn_s'])} | "
                  f"{hms(p['gptq_s_extrapolated'])} |")
    _write_json(args, results)


def _write_json(args, results):
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
