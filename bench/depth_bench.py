#!/usr/bin/env python3
"""Peak memory of moeq-compile against the model's depth.

    python3 bench/depth_bench.py --build build [--layers 1,4,16] [--work DIR] [--json F]

Generates Mixtral-layout models that differ only in their number of layers
(H 1024, I 2048, 8 experts, bf16: 100.7 MB of expert weights per layer) and
compiles each with `moeq-compile --bits 4` as its own process; prints wall
time, peak RSS (wait4's ru_maxrss of that process), the packed output and
the checkpoint. With packed weights streamed to the artifact and weights
read a chunk at a time, the peak is the process baseline plus what the
worker threads hold, the same for every depth; before issue 14 it grew by
the packed size of every layer.
"""
import argparse
import json
import os
import shutil
import sys

from benchutil import run_measured as run, tree_bytes as size


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build")
    ap.add_argument("--layers", default="1,4,16")
    ap.add_argument("--work", default="/var/tmp/moeq-depth")
    ap.add_argument("--json")
    args = ap.parse_args()
    tool = lambda name: os.path.join(args.build, "bin", name)
    rows = []
    for layers in [int(x) for x in args.layers.split(",")]:
        work = os.path.join(args.work, f"l{layers}")
        shutil.rmtree(work, ignore_errors=True)
        os.makedirs(work)
        model, out = os.path.join(work, "model"), os.path.join(work, "out")
        print(f"== {layers} layers", file=sys.stderr, flush=True)
        run([tool("moeq-gen-checkpoint"), "-o", model, "--layers", str(layers), "--hidden", "1024",
             "--intermediate", "2048", "--experts", "8", "--top-k", "2"])
        wall, rss = run([tool("moeq-compile"), model, "-o", out, "--bits", "4", "--quiet"])
        rows.append({"layers": layers, "checkpoint_bytes": size(model),
                     "packed_bytes": os.path.getsize(os.path.join(out, "experts.safetensors")),
                     "seconds": wall, "peak_rss_bytes": rss})
        shutil.rmtree(work)
    mib = lambda b: b / 2**20
    print("| layers | checkpoint MiB | packed MiB | moeq-compile s | peak RSS MiB |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['layers']} | {mib(r['checkpoint_bytes']):.0f} | {mib(r['packed_bytes']):.0f} | "
              f"{r['seconds']:.1f} | {mib(r['peak_rss_bytes']):.0f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
