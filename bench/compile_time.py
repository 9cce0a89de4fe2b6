"""Wall time of moeq-compile's default path and its parts, on a generated
model larger than the fixture (issue 17: the compile time next to quality).

  python bench/compile_time.py BUILD_DIR [--hidden 1024 --intermediate 2048
      --experts 8 --layers 2 --avg-bits 2.5 --jobs 2]
      [--configs "defaults;--group-bits=false;..."]

Generates a random Mixtral-layout checkpoint (moeq-gen-checkpoint) and
statistics from random inputs (moeq-stats, with samples), then times one
moeq-compile per config (extra flags after `--avg-bits B --stats S`;
`nostats` leaves the statistics out) and prints a Markdown table with
the time relative to the first config (peers in the same run; timings on
other machines differ). Random weights say nothing about quality: this
measures time only.
"""
import argparse
import os
import shlex
import subprocess
import sys
import tempfile
import time

DEFAULT_CONFIGS = ";".join([
    "defaults",                       # AGQ + measured loss + SliM-LLM widths
    "--group-bits=false",             # the defaults without the widths
    "--group-bits-search=exhaustive",  # the widths with every k tried
    "nostats",                        # data-free: RTN, weight-only loss
])


def run(cmd):
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit("failed: %s\n%s" % (" ".join(cmd), proc.stderr))
    return proc.stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--hidden", type=int, default=1024)
    ap.add_argument("--intermediate", type=int, default=2048)
    ap.add_argument("--experts", type=int, default=8)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--avg-bits", default="2.5")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--tokens", type=int, default=4096)
    ap.add_argument("--configs", default=DEFAULT_CONFIGS)
    args = ap.parse_args()
    bindir = os.path.join(args.build, "bin")
    tmp = tempfile.mkdtemp(prefix="moeq-compile-time-")
    model = os.path.join(tmp, "model")
    stats = os.path.join(tmp, "stats.safetensors")
    run([os.path.join(bindir, "moeq-gen-checkpoint"), "-o", model, "--layers", str(args.layers),
         "--hidden", str(args.hidden), "--intermediate", str(args.intermediate),
         "--experts", str(args.experts), "--top-k", "2"])
    run([os.path.join(bindir, "moeq-stats"), model, "--random-inputs", str(args.tokens),
         "--samples-per-expert", "256", "-o", stats, "--quiet"])
    rows = []
    for config in args.configs.split(";"):
        flags = ["--avg-bits", args.avg_bits, "--jobs", str(args.jobs)]
        extra = [] if config in ("defaults", "nostats") else shlex.split(config)
        if config != "nostats":
            flags += ["--stats", stats]
        out = os.path.join(tmp, "out")
        started = time.monotonic()
        run([os.path.join(bindir, "moeq-compile"), model] + flags + extra + ["--quiet", "-o", out])
        seconds = time.monotonic() - started
        rows.append((config, seconds))
        print("%-34s %8.1f s" % (config, seconds), flush=True)
    print()
    print("model: %d layers x %d experts, hidden %d, expert width %d; --avg-bits %s, "
          "--jobs %d" % (args.layers, args.experts, args.hidden, args.intermediate,
                         args.avg_bits, args.jobs))
    print()
    print("| config | compile (s) | vs first |")
    print("|---|---|---|")
    for config, seconds in rows:
        print("| %s | %.1f | %.2fx |" % (config, seconds, seconds / rows[0][1]))


if __name__ == "__main__":
    main()
