#!/usr/bin/env python3
"""Do two builds of moeq (say GCC's build/ and Clang's build-asan/) produce
the same IR and the same artifacts? C++ leaves the order in which a call's
arguments are evaluated unspecified, and GCC and Clang differ: IR builders
that create ops inside argument lists emit them in another order, and the
PTX then depends on the compiler that built moeq (docs/reliability.md).

Runs every `moeq-opt` RUN line of the lit tests (test/**/*.mlir) with both
builds' moeq-opt and compares the output; then compiles a generated model
with both builds' moeq-compile (ptxas not run; SIMT and tensor-core
kernels, 4-bit, w8a8, D^2-MoE) and compares every artifact file's checksum. Prints a table and one line `json {...}`;
exits 1 when anything differs.

    python bench/compare_builds.py BUILD_A BUILD_B [--work DIR]
"""
import argparse
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# A sanitized build reports leaks of the uninstrumented MLIR at exit and
# poisons what MLIR's allocators hand out (docs/reliability.md).
ENV = dict(os.environ, ASAN_OPTIONS="detect_leaks=0:allow_user_poisoning=0")


def opt_commands():
    """(test file, moeq-opt command line) of every single-line moeq-opt RUN."""
    for path in sorted(glob.glob(os.path.join(ROOT, "test", "**", "*.mlir"), recursive=True)):
        for line in open(path):
            m = re.match(r"\s*//\s*RUN:\s*(moeq-opt\s.*)", line)
            if not m or line.rstrip().endswith("\\"):
                continue
            cmd = m.group(1).split("|")[0].replace("%s", path)
            if "%" not in cmd:
                yield path, cmd


# moeq-compile options of the artifacts compared (kernels of each kind).
VARIANTS = [
    ("w4-sm90", ["--bits", "4", "--arch", "sm_90"]),
    ("w4-sm80", ["--bits", "4", "--group-size", "64", "--arch", "sm_80"]),
    ("w8a8", ["--bits", "8", "--act-bits", "8", "--symmetric", "--arch", "sm_90"]),
    ("d2-gptq", ["--bits", "4", "--method", "gptq", "--stats", "{stats}", "--d2-compression", "0.4",
                 "--d2-merge", "mean", "--arch", "sm_90"]),
]


def first_difference(a, b):
    for number, (x, y) in enumerate(zip(a.splitlines(), b.splitlines()), 1):
        if x != y:
            return number, x.strip(), y.strip()
    return None, "", ""


def compare_ir(builds):
    rows = []
    for path, cmd in opt_commands():
        outputs = [subprocess.run(os.path.join(b, "bin", cmd), shell=True, capture_output=True,
                                  env=ENV).stdout.decode(errors="replace") for b in builds]
        line, a, b = first_difference(*outputs)
        rows.append({"test": os.path.relpath(path, ROOT), "same": outputs[0] == outputs[1],
                     "line": line, "a": a[:100], "b": b[:100]})
    return rows


def compare_artifacts(builds, work):
    ck = os.path.join(work, "ck")
    subprocess.run([os.path.join(builds[0], "bin", "moeq-gen-checkpoint"), "-o", ck, "--layers", "1",
                    "--hidden", "256", "--intermediate", "512", "--experts", "4", "--top-k", "2"],
                   check=True, capture_output=True, env=ENV)
    stats = os.path.join(work, "stats.safetensors")
    subprocess.run([os.path.join(builds[0], "bin", "moeq-stats"), ck, "--random-inputs", "256", "-o",
                    stats, "--quiet"], check=True, env=ENV)
    rows = []
    for variant, options in VARIANTS:
        options = [o.replace("{stats}", stats) for o in options]
        files = []
        for i, build in enumerate(builds):
            out = os.path.join(work, "%s-%d" % (variant, i))
            subprocess.run([os.path.join(build, "bin", "moeq-compile"), ck, "-o", out, "--ptxas", "none",
                            "--quiet"] + options, check=True, env=ENV)
            files.append(json.load(open(os.path.join(out, "manifest.json")))["files"])
        for name in sorted(set(files[0]) | set(files[1])):
            digests = [f.get(name, {}).get("xxh3_128") for f in files]
            rows.append({"file": "%s: %s" % (variant, name), "same": digests[0] == digests[1]})
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("build_a")
    ap.add_argument("build_b")
    ap.add_argument("--work", default=None, help="scratch directory (default: a temporary one)")
    a = ap.parse_args()
    builds = [os.path.abspath(a.build_a), os.path.abspath(a.build_b)]
    work = a.work or tempfile.mkdtemp(prefix="moeq-compare-")
    print("[compare] moeq-opt over the lit tests' inputs", file=sys.stderr, flush=True)
    ir = compare_ir(builds)
    print("[compare] one artifact from each build", file=sys.stderr, flush=True)
    artifact = compare_artifacts(builds, work)
    print("| lit test (moeq-opt RUN line) | same IR | first difference (line: A / B) |")
    print("|---|---|---|")
    for r in ir:
        print("| %s | %s | %s |" % (r["test"], "yes" if r["same"] else "no",
                                    "" if r["same"] else "%s: `%s` / `%s`" % (r["line"], r["a"], r["b"])))
    print()
    print("| artifact file | same bytes |")
    print("|---|---|")
    for r in artifact:
        print("| %s | %s |" % (r["file"], "yes" if r["same"] else "no"))
    summary = {"runs": len(ir), "runs_differing": sum(not r["same"] for r in ir),
               "artifact_files": len(artifact),
               "artifact_files_differing": sum(not r["same"] for r in artifact)}
    print("json " + json.dumps(summary))
    if not a.work:
        shutil.rmtree(work)
    return 1 if summary["runs_differing"] or summary["artifact_files_differing"] else 0


if __name__ == "__main__":
    sys.exit(main())
