"""Import, quantization and calibration-statistics throughput and peak memory.

  python3 bench/import_stats_bench.py BUILD_DIR [MODEL_DIR ...] [--tokens N]
                                     [--big-tokens N] [--batch-tokens N]

For every checkpoint (default: the trained fixture ../shared/fixtures/tiny-mixtral
and a larger generated Mixtral, hidden 1024, intermediate 2816, 8 experts,
4 layers), runs as separate processes
  * `moeq-translate --import-hf` (headers only),
  * `moeq-compile --bits 4` (reads, quantizes and packs every expert weight),
  * `moeq-stats --random-inputs N` (N tokens through every MoE layer; N is
    --tokens, or --big-tokens for the generated model; --batch-tokens per
    CPU batch, default 256: batch buffers are not layer memory),
and prints a table and one JSON line per run: wall time, throughput (GB/s of
expert weights, tokens/s) and peak resident memory (the child's own rusage).
Memory is compared with the checkpoint's largest layer, above a baseline:
the same command on a tiny generated model (1 layer, hidden 128), which holds
the MLIR/LLVM libraries, the JIT and the context but no real data.
"""
import argparse
import json
import os
import shutil
import struct
import subprocess
import tempfile

from benchutil import run_measured


def run(cmd):
    """Wall seconds and peak RSS (MiB) of one child process."""
    seconds, rss = run_measured(cmd)
    return seconds, rss / 2**20


def tensor_bytes(model_dir):
    """name -> bytes for every tensor of the checkpoint (safetensors headers)."""
    sizes = {}
    for name in sorted(os.listdir(model_dir)):
        if not name.endswith(".safetensors"):
            continue
        with open(os.path.join(model_dir, name), "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(n))
        for key, info in header.items():
            if key != "__metadata__":
                begin, end = info["data_offsets"]
                sizes[key] = end - begin
    return sizes


def layer_sizes(sizes):
    layers = {}
    for key, size in sizes.items():
        if key.startswith("model.layers."):
            idx = int(key.split(".")[2])
            layers[idx] = layers.get(idx, 0) + size
    return layers


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("models", nargs="*")
    ap.add_argument("--tokens", type=int, default=4096)
    ap.add_argument("--big-tokens", type=int, default=256)
    ap.add_argument("--batch-tokens", type=int, default=256)
    args = ap.parse_args()
    bindir = os.path.join(args.build, "bin")
    tmp = tempfile.mkdtemp(prefix="moeq-bench-")
    models = list(args.models)
    if not models:
        here = os.path.dirname(os.path.abspath(__file__))
        fixture = os.path.join(here, "..", "..", "shared", "fixtures", "tiny-mixtral")
        if os.path.isdir(fixture):
            models.append(os.path.normpath(fixture))
        big = os.path.join(tmp, "mixtral-h1024")
        subprocess.run([os.path.join(bindir, "moeq-gen-checkpoint"), "-o", big, "--layers", "4",
                        "--hidden", "1024", "--intermediate", "2816", "--experts", "8"],
                       check=True, stdout=subprocess.DEVNULL)
        models.append(big)

    tiny = os.path.join(tmp, "tiny")
    subprocess.run([os.path.join(bindir, "moeq-gen-checkpoint"), "-o", tiny, "--layers", "1",
                    "--hidden", "128", "--intermediate", "128", "--experts", "4"],
                   check=True, stdout=subprocess.DEVNULL)
    rows = []
    for model in models:
        tokens = args.big_tokens if model.endswith("mixtral-h1024") else args.tokens
        sizes = tensor_bytes(model)
        expert_bytes = sum(v for k, v in sizes.items() if ".experts." in k)
        largest = max(layer_sizes(sizes).values())
        out = os.path.join(tmp, "out")
        stats = os.path.join(tmp, "stats.safetensors")
        steps = [
            ("import", lambda m: [os.path.join(bindir, "moeq-translate"), "--import-hf", m, "-o",
                                  os.path.join(tmp, "m.mlir")], None),
            ("compile w4", lambda m: [os.path.join(bindir, "moeq-compile"), m, "-o", out,
                                      "--bits", "4", "--arch", "sm_90", "--quiet"], "weights"),
            ("stats", lambda m: [os.path.join(bindir, "moeq-stats"), m, "--random-inputs",
                                 str(tokens), "--batch-tokens", str(args.batch_tokens), "-o", stats,
                                 "--quiet"], "tokens"),
        ]
        for tool, cmd, unit in steps:
            shutil.rmtree(out, ignore_errors=True)
            _, baseline = run(cmd(tiny))
            shutil.rmtree(out, ignore_errors=True)
            seconds, peak = run(cmd(model))
            row = {"model": os.path.basename(model), "step": tool, "seconds": round(seconds, 3),
                   "peak_rss_mib": round(peak, 1), "baseline_rss_mib": round(baseline, 1),
                   "largest_layer_mib": round(largest / 2**20, 1),
                   "expert_weights_mib": round(expert_bytes / 2**20, 1)}
            if unit == "weights":
                row["gb_per_s"] = round(expert_bytes / seconds / 1e9, 3)
            if unit == "tokens":
                row["tokens"] = tokens
                row["tokens_per_s"] = round(tokens / seconds, 1)
                row["stats_mib"] = round(os.path.getsize(stats) / 2**20, 1)
            rows.append(row)
            print(json.dumps(row), flush=True)
    print()
    print("| model | step | s | throughput | peak RSS MiB | baseline MiB | above baseline "
          "| largest layer MiB | above / layer |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        thr = ("%.3f GB/s" % r["gb_per_s"]) if "gb_per_s" in r else (
            ("%.0f tok/s" % r["tokens_per_s"]) if "tokens_per_s" in r else "-")
        above = r["peak_rss_mib"] - r["baseline_rss_mib"]
        print("| %s | %s | %.2f | %s | %.0f | %.0f | %.0f | %.1f | %.2f |" % (
            r["model"], r["step"], r["seconds"], thr, r["peak_rss_mib"], r["baseline_rss_mib"],
            above, r["largest_layer_mib"], above / r["largest_layer_mib"]))
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
