#!/usr/bin/env python3
"""What checking an artifact's files against its manifest costs
(docs/manifest.md "files"): a generated model is compiled, then moeq-run
opens it and runs one token through a layer (emulator backend) with and
without the checks (--skip-checksums); the difference, per byte checked,
against xxhsum -H2 (xxHash's own tool) over the same files. Files are in
the page cache (each variant runs once before it is timed): this is the
hashing cost, not the disk's. Prints a table, then one line `json {...}`.

    python bench/checksum.py BUILD [--layers 4] [--hidden 1024]
        [--intermediate 2048] [--experts 8] [--repeat 5] [--work DIR]
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchutil import run_measured  # noqa: E402


def median_seconds(cmd, repeat):
    run_measured(cmd)  # warm: the page cache, the emulator's JIT cache
    return statistics.median(run_measured(cmd)[0] for _ in range(repeat))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("build")
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--hidden", type=int, default=1024)
    ap.add_argument("--intermediate", type=int, default=2048)
    ap.add_argument("--experts", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--work", default=None, help="scratch directory (default: a temporary one)")
    a = ap.parse_args()
    bin_dir = os.path.join(os.path.abspath(a.build), "bin")
    work = a.work or tempfile.mkdtemp(prefix="moeq-checksum-")
    os.makedirs(work, exist_ok=True)
    ck, art = os.path.join(work, "ck"), os.path.join(work, "art")
    x = os.path.join(work, "x.safetensors")
    print("[checksum] generating and compiling the model in %s" % work, file=sys.stderr, flush=True)
    run_measured([os.path.join(bin_dir, "moeq-gen-checkpoint"), "-o", ck, "--layers", str(a.layers),
                  "--hidden", str(a.hidden), "--intermediate", str(a.intermediate),
                  "--experts", str(a.experts), "--top-k", "2"])
    run_measured([os.path.join(bin_dir, "moeq-compile"), ck, "--bits", "4", "--ptxas", "none",
                  "-o", art, "--quiet"])
    # One token of zeros (F32 [1, hidden]).
    header = json.dumps({"x": {"dtype": "F32", "shape": [1, a.hidden],
                               "data_offsets": [0, 4 * a.hidden]}}).encode()
    header += b" " * (-len(header) % 8)
    with open(x, "wb") as f:
        f.write(len(header).to_bytes(8, "little") + header + bytes(4 * a.hidden))
    manifest = json.load(open(os.path.join(art, "manifest.json")))
    files = manifest["files"]
    weights = [f for f in files if f.endswith(".safetensors")]
    checked = sum(files[f]["bytes"] for f in weights) + sum(
        files[f]["bytes"] for f in files if f.endswith(".emu.bc"))
    run = [os.path.join(bin_dir, "moeq-run"), art, "--layer", str(manifest["layers"][0]["layer"]),
           "--input", x, "-o", os.path.join(work, "y.safetensors"), "--backend", "emulator"]
    print("[checksum] timing moeq-run with and without the checks (%d runs each)" % a.repeat,
          file=sys.stderr, flush=True)
    with_checks = median_seconds(run, a.repeat)
    without = median_seconds(run + ["--skip-checksums"], a.repeat)
    xxhsum = shutil.which("xxhsum")
    reference = None
    if xxhsum:
        paths = [os.path.join(art, f) for f in weights]
        cmd = [xxhsum, "-H2", "-q"] + paths
        subprocess.run(cmd, capture_output=True, check=True)
        times = []
        for _ in range(a.repeat):
            start = time.perf_counter()
            subprocess.run(cmd, capture_output=True, check=True)
            times.append(time.perf_counter() - start)
        reference = statistics.median(times)
    weight_bytes = sum(files[f]["bytes"] for f in weights)
    cost = with_checks - without
    result = {
        "model": {"layers": a.layers, "hidden": a.hidden, "intermediate": a.intermediate,
                  "experts": a.experts},
        "weight_bytes": weight_bytes, "checked_bytes": checked,
        "moeq_run_seconds": with_checks, "moeq_run_skip_checksums_seconds": without,
        "check_seconds": cost, "check_share": cost / with_checks if with_checks else None,
        "check_gb_per_s": checked / cost / 1e9 if cost > 0 else None,
        "xxhsum_seconds": reference,
        "xxhsum_gb_per_s": weight_bytes / reference / 1e9 if reference else None,
    }
    print("| what | seconds | GB/s |")
    print("|---|---|---|")
    print("| moeq-run (open, check, one token) | %.3f | |" % with_checks)
    print("| moeq-run --skip-checksums | %.3f | |" % without)
    print("| the checks (difference, %.1f MB) | %.3f | %s |" % (
        checked / 1e6, cost, "%.2f" % result["check_gb_per_s"] if result["check_gb_per_s"] else "-"))
    if reference:
        print("| xxhsum -H2 over the weight files (%.1f MB) | %.3f | %.2f |" % (
            weight_bytes / 1e6, reference, result["xxhsum_gb_per_s"]))
    print("json " + json.dumps(result))
    if not a.work:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
