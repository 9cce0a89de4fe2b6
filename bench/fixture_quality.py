"""Quality of moeq's quantizers on the trained fixture, measured with the
fixture's own reference (../shared/fixtures/eval_ppl.py: byte perplexity,
mean KL divergence to the bf16 model and top-1 agreement on the first 512
256-byte windows of eval.txt).

  python bench/fixture_quality.py SHARED_FIXTURES_DIR BUILD_DIR --stats STATS
      [--configs rtn:2:128,gptq:3:128,mx:2.5:agq:0.75,...] [--windows 512]

STATS: calibration statistics of the fixture, e.g.
  python tools/python/moeq_calibrate.py ../shared/fixtures/tiny-mixtral \\
      --text ../shared/fixtures/corpus/calib.txt --tokenizer bytes --seq-len 256 \\
      --max-sequences 512 -o stats.safetensors

For every config METHOD:BITS:GROUP it imports the checkpoint, quantizes all
routed experts (moeq-assign-uniform-scheme, moeq-materialize-quantized-params);
a config mx:AVG_BITS:METHOD:R[:KEY=VALUE...] allocates mixed precision
instead (moeq-estimate-sensitivity, moeq-allocate-bits with the statistics);
keys: granularity (linear|expert), loss (auto|output|hessian), schemes
(separated by '+'), groupbits=1 (SliM-LLM group widths after the
allocation; METHOD:BITS:GROUP:slim does the same for a uniform scheme). It then
exports the dequantized weights under their original names
(moeq-translate --export-dequantized) and evaluates them as an override.
Prints one JSON line per config and a Markdown table. A measurement for docs/,
not a test: the fixtures are not part of the repository.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

DEFAULT = ",".join("%s:%d:128" % (m, b) for b in (2, 3, 4) for m in ("rtn", "gptq", "agq"))


def run(cmd, **kw):
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if proc.returncode != 0:
        sys.exit("failed: %s\n%s" % (" ".join(cmd), proc.stderr))
    return proc.stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("fixtures")
    ap.add_argument("build")
    ap.add_argument("--stats", required=True)
    ap.add_argument("--configs", default=DEFAULT)
    ap.add_argument("--windows", type=int, default=512)
    args = ap.parse_args()
    model = os.path.join(args.fixtures, "tiny-mixtral")
    bindir = os.path.join(args.build, "bin")
    tmp = tempfile.mkdtemp(prefix="moeq-quality-")
    imported = os.path.join(tmp, "model.mlir")
    run([os.path.join(bindir, "moeq-translate"), "--import-hf", model, "-o", imported])
    rows = []
    for config in ["bf16"] + args.configs.split(","):
        override = None
        avg_bits = None
        if config != "bf16":
            stats = " stats=" + os.path.abspath(args.stats)
            if config.startswith("mx:"):
                parts = config.split(":")[1:]
                budget, method, r = parts[:3]
                extra = dict(p.split("=", 1) for p in parts[3:])
                granularity = extra.get("granularity", "linear")
                slim = extra.get("groupbits") == "1"
                common = " method=%s%s" % (method, stats)
                sensitivity = "loss=%s%s" % (extra.get("loss", "auto"), common)
                if "schemes" in extra:
                    sensitivity += " schemes=" + extra["schemes"].replace("+", ",")
                passes = ["-moeq-estimate-sensitivity=" + sensitivity,
                          "-moeq-allocate-bits=avg-bits=%s r=%s granularity=%s%s" % (
                              budget, r, granularity, common)]
                if slim:
                    passes.append("-moeq-assign-group-bits")
            else:
                method, bits, group = config.split(":")[:3]
                options = "bits=%s group-size=%s method=%s" % (bits, group, method)
                if method != "rtn":
                    options += stats
                passes = ["-moeq-assign-uniform-scheme=" + options]
                if config.endswith(":slim"):
                    passes.append("-moeq-assign-group-bits")
                avg_bits = int(bits) + 32.0 / int(group)
            packed = os.path.join(tmp, "packed.safetensors")
            quantized = os.path.join(tmp, "quantized.mlir")
            run([os.path.join(bindir, "moeq-opt"), imported] + passes +
                ["-moeq-materialize-quantized-params=output=" + packed, "-o", quantized])
            if avg_bits is None:
                used = re.findall(r"avg_bits = ([0-9.e+-]+)", open(quantized).read())
                avg_bits = sum(map(float, used)) / len(used)
            override = os.path.join(tmp, "dequantized.safetensors")
            run([os.path.join(bindir, "moeq-translate"), "--export-dequantized", quantized,
                 "--weights-output", override])
        out = os.path.join(tmp, "eval.json")
        cmd = [sys.executable, os.path.join(args.fixtures, "eval_ppl.py"), model,
               "--n-windows", str(args.windows), "--json", out]
        if override:
            cmd += ["--override", override, "--kl-ref"]
        run(cmd)
        result = json.load(open(out))
        row = {"config": config, "ppl": result.get("ppl"),
               "kl": result.get("kl_vs_ref_nats_per_byte", 0.0),
               "top1": result.get("top1_agreement_vs_ref", 1.0)}
        if avg_bits is not None:
            row["avg_bits"] = avg_bits
        rows.append(row)
        print(json.dumps(row), flush=True)
    print()
    print("| config | avg bits | ppl | KL to bf16 (nats/byte) | top-1 agreement |")
    print("|---|---|---|---|---|")
    for r in rows:
        print("| %s | %s | %.4f | %.3g | %.4f |" % (
            r["config"], ("%.2f" % r["avg_bits"]) if "avg_bits" in r else "16",
            r["ppl"], r["kl"], r["top1"]))


if __name__ == "__main__":
    main()
