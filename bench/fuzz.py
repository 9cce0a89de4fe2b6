"""Runs moeq's libFuzzer targets (test/Fuzz, built with -DMOEQ_FUZZERS=ON)
for a given time each and prints a table of executions, coverage and
crashes (and JSON with --json).

  python bench/fuzz.py BUILD_FUZZ_DIR [--seconds 600] [--parallel 2]
      [--targets safetensors,model-config,...] [--work DIR] [--json FILE]
  python bench/fuzz.py BUILD_FUZZ_DIR --regress     # every seed once: a crash fails

Each target starts from its seed corpus (test/Fuzz/corpus/<target>, read
only) and a working corpus in --work (kept between runs, so a later run
goes on where this one stopped). A crash, leak, timeout (10 s per input) or
out-of-memory input (2 GiB) is saved in --work/<target>/findings and counted;
turn each into a regression seed (copy it into the seed corpus) once fixed.
Exit status 1 when anything was found.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
SEEDS = os.path.join(os.path.dirname(HERE), "test", "Fuzz", "corpus")
TARGETS = ("safetensors", "model-config", "checkpoint", "statistics", "manifest", "export", "ir")
FINDING = re.compile(r"^(crash|leak|timeout|oom|slow-unit)-")


def run_target(args, target):
    binary = os.path.join(args.build, "bin", "moeq-fuzz-" + target)
    if not os.access(binary, os.X_OK):
        return {"target": target, "error": "not built: %s" % binary}
    work = os.path.join(args.work, target)
    corpus, findings = os.path.join(work, "corpus"), os.path.join(work, "findings")
    os.makedirs(corpus, exist_ok=True)
    os.makedirs(findings, exist_ok=True)
    before = set(os.listdir(findings))
    command = [binary, "-rss_limit_mb=2048", "-timeout=10", "-print_final_stats=1",
               "-artifact_prefix=" + findings + "/"]
    if args.regress:
        command += ["-runs=0", os.path.join(SEEDS, target)]
    else:
        command += ["-max_total_time=%d" % args.seconds, corpus, os.path.join(SEEDS, target)]
    started = time.monotonic()
    log_path = os.path.join(work, "last.log")
    with open(log_path, "w") as log:
        status = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT).returncode
    text = open(log_path, errors="replace").read()

    def stat(name):
        found = re.findall(r"stat::%s:\s*(\d+)" % name, text)
        return int(found[-1]) if found else None
    coverage = re.findall(r"\bcov: (\d+) ft: (\d+)", text)
    new = sorted(set(os.listdir(findings)) - before)
    return {"target": target, "seconds": round(time.monotonic() - started, 1),
            "executions": stat("number_of_executed_units"), "peak_rss_mb": stat("peak_rss_mb"),
            "coverage": int(coverage[-1][0]) if coverage else None,
            "features": int(coverage[-1][1]) if coverage else None,
            "corpus": len(os.listdir(corpus)), "seeds": len(os.listdir(os.path.join(SEEDS, target))),
            "findings": [os.path.join(findings, f) for f in new if FINDING.match(f)],
            "exit": status, "log": log_path}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("build", help="a build directory configured with -DMOEQ_FUZZERS=ON")
    ap.add_argument("--seconds", type=int, default=600, help="per target")
    ap.add_argument("--parallel", type=int, default=2, help="targets run at once")
    ap.add_argument("--targets", default=",".join(TARGETS))
    ap.add_argument("--work", default="fuzz-work", help="working corpora and findings")
    ap.add_argument("--regress", action="store_true", help="run every seed once instead")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    targets = [t for t in args.targets.split(",") if t]
    unknown = [t for t in targets if t not in TARGETS]
    if unknown:
        ap.error("unknown targets %s (known: %s)" % (", ".join(unknown), ", ".join(TARGETS)))
    print("fuzzing %d targets, %s each, %d at a time" % (
        len(targets), "every seed once" if args.regress else "%d s" % args.seconds,
        args.parallel), file=sys.stderr, flush=True)
    with ThreadPoolExecutor(args.parallel) as pool:
        results = []
        for result in pool.map(lambda t: run_target(args, t), targets):
            results.append(result)
            print("  %s: %s" % (result["target"], "error" if "error" in result else
                                "%d executions, %d findings" % (result["executions"] or 0,
                                                                len(result["findings"]))),
                  file=sys.stderr, flush=True)
    print("| target | seconds | executions | exec/s | coverage (edges) | features | corpus "
          "(seeds) | peak RSS (MB) | findings |")
    print("|---|---|---|---|---|---|---|---|---|")
    bad = False
    for r in results:
        if "error" in r:
            print("| %s | - | - | - | - | - | - | - | %s |" % (r["target"], r["error"]))
            bad = True
            continue
        found = len(r["findings"]) + (0 if r["exit"] == 0 or r["findings"] else 1)
        bad |= found > 0
        rate = (r["executions"] or 0) / max(r["seconds"], 1e-9)
        print("| %s | %.0f | %s | %.0f | %s | %s | %d (%d) | %s | %d%s |" % (
            r["target"], r["seconds"], r["executions"], rate, r["coverage"], r["features"],
            r["corpus"], r["seeds"], r["peak_rss_mb"], found,
            "".join(" " + os.path.basename(f) for f in r["findings"])
            or (" (exit %d: %s)" % (r["exit"], r["log"]) if found else "")))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
