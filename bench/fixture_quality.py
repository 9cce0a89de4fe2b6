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
keys: granularity (linear|expert), loss (auto|output|hessian), solver
(exact|relaxed: DDQ's gradient relaxation; the layers' gaps to the exact optimum
are printed), schemes
(separated by '+'), groupbits=1 (SliM-LLM group widths after the
allocation, ranked by gbloss=auto|output|hessian, searched by
gbsearch=golden|exhaustive; price=1 prices them in the sensitivity; METHOD:BITS:GROUP:slim does the same for a uniform scheme). It then
exports the dequantized weights under their original names
(moeq-translate --export-dequantized) and evaluates them as an override.
A config default:AVG_BITS runs moeq-compile with --avg-bits AVG_BITS --stats
STATS and nothing else (the defaults a user gets) and evaluates its artifact
(moeq-export --format dequantized); its time is the whole compile (import,
sensitivity, allocation, quantization, kernels). default:AVG_BITS:nostats
leaves out --stats (the data-free defaults); further :FLAG=VALUE parts are
passed as --FLAG=VALUE (e.g. default:2.5:group-bits=false).
A config tuned:AVG_BITS runs tools/python/moeq_tune.py instead (the defaults
and the budget's alternatives, chosen by their KL on --tune-text from window
--tune-skip on, by default calib.txt from window 512: text the statistics,
512 windows of 256 bytes, did not see); its time is the whole tuning.
A config d2:COMPRESSION[:KEY=VALUE...] first replaces the routed experts by
D^2-MoE's base + low-rank deltas (moeq-delta-decompress; keys merge=fisher|mean,
whiten=1|0, shared=1, prune=FRACTION, rm=RANK_MULTIPLE (16; 32 to quantize
the factors at any width); the statistics need the Fisher
information: moeq_calibrate.py --fisher); d2:...|QUANT then quantizes the base
and the factors with QUANT (any of the configs above). Level tables: METHOD:BITS:GROUP:lut.
--skip-windows S evaluates windows S, S+1, ... instead of the first ones
(held-out windows: confirm on them a ranking chosen on the first ones).
--compare A~B (repeatable; A and B among the configs) evaluates in this
process with the fixture's own model loader and window split (the bf16
model's log-probabilities computed once) and prints the ratio of A's mean KL
to B's with a 95% paired bootstrap interval over windows (what the
evaluation noise allows one to conclude from a ratio).
Prints one JSON line per config and a Markdown table, with the wall time of the quantizing
moeq-opt run (sensitivity, allocation, quantization; the import and the evaluation excluded). A measurement for docs/,
not a test: the fixtures are not part of the repository.
"""
import argparse
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools",
                                "python"))
from moeq_tune import paired_ratio  # noqa: E402  (the bootstrap the tuning decides by)

DEFAULT = ",".join("%s:%d:128" % (m, b) for b in (2, 3, 4) for m in ("rtn", "gptq", "agq"))


def run(cmd, **kw):
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if proc.returncode != 0:
        sys.exit("failed: %s\n%s" % (" ".join(cmd), proc.stderr))
    return proc.stdout


def stored_bits_per_original_weight(path):
    """Storage of the routed experts (packed codes, scales, zeros, level tables, or the
    f32-parameter bases and factors counted at 16 bits) per original expert weight: the
    types of the moeq.param ops whose keys are expert weights, bases or factors."""
    text = open(path).read()
    stored = 0.0
    # (Each parameter op once: types also appear in the signatures of the ops
    # that use them.)
    for shape, scheme in re.findall(
            r"moeq.param <[^>]*>(?: source <[^>]*>)? : !moeq.qweight<(\d+x\d+), "
            r"#moeq.scheme<([^>]*)>", text):
        rows, cols = map(int, shape.split("x"))
        bits = int(re.match(r"w(\d+)", scheme).group(1))
        group = re.search(r"g(\d+)", scheme)
        width = int(group.group(1)) if group else cols
        overhead = 16.0 * 2 ** bits if "lut" in scheme else (16.0 if ", sym" in scheme else 32.0)
        stored += rows * cols * (bits + overhead / width)
    for rows, cols in re.findall(
            r"moeq.param <\"delta\", \"[^\"]*\">(?: \{[^}]*\})? : tensor<(\d+)x(\d+)xf32>", text):
        stored += int(rows) * int(cols) * 16.0
    original = 0
    for rows, cols in re.findall(r"moeq.delta_weight [^\n]* -> tensor<(\d+)x(\d+)x", text):
        original += int(rows) * int(cols)
    if not original:
        original = sum(int(r) * int(c) for r, c in
                       re.findall(r"moeq.param <[^>]*>(?: source <[^>]*>)? : !moeq.qweight<(\d+)x(\d+),",
                                  text))
    return stored / original


def artifact_bits_per_expert_weight(artifact, model):
    """Every byte of the artifact's expert tensors (packed codes, scales, zeros,
    level tables, padding) over the routed-expert weights of the checkpoint."""
    with open(os.path.join(artifact, "experts.safetensors"), "rb") as f:
        size = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(size))
    stored = sum(t["data_offsets"][1] - t["data_offsets"][0]
                 for name, t in header.items() if name != "__metadata__")
    config = json.load(open(os.path.join(model, "config.json")))
    experts = config.get("num_local_experts") or config.get("num_experts")
    inter = config.get("moe_intermediate_size") or config["intermediate_size"]
    weights = config["num_hidden_layers"] * experts * 3 * config["hidden_size"] * inter
    return 8.0 * stored / weights


class PairedEvaluator:
    """The fixture's evaluation (eval_ppl.py: its window split, model loader
    and KL definition) with the KL kept per window, so that two configs can
    be compared window by window; the bf16 model's log-probabilities are
    computed once."""

    def __init__(self, fixtures, model, data, n_windows):
        sys.path.insert(0, fixtures)
        import torch
        import eval_ppl
        from model import load_model
        self.torch, self.load_model, self.model = torch, load_model, model
        torch.set_num_threads(2)
        self.x, self.y = eval_ppl.windows(open(data, "rb").read(), n_windows, 256)
        reference = load_model(model)[0].eval()
        with torch.no_grad():
            self.ref = [torch.log_softmax(reference(self.x[i:i + 32]).float(), -1)
                        for i in range(0, len(self.x), 32)]

    def evaluate(self, override):
        torch = self.torch
        m = self.load_model(self.model, override=override)[0].eval()
        nll, kl, agree = 0.0, [], 0
        with torch.no_grad():
            for b, i in enumerate(range(0, len(self.x), 32)):
                logits = m(self.x[i:i + 32]).float()
                lq, lp = torch.log_softmax(logits, -1), self.ref[b]
                nll += torch.nn.functional.cross_entropy(
                    logits.reshape(-1, logits.shape[-1]), self.y[i:i + 32].reshape(-1),
                    reduction="sum").item()
                kl.extend((lp.exp() * (lp - lq)).sum(-1).sum(-1).tolist())
                agree += (lp.argmax(-1) == lq.argmax(-1)).sum().item()
        count = self.y.numel()
        return ({"ppl": math.exp(nll / count), "kl_vs_ref_nats_per_byte": sum(kl) / count,
                 "top1_agreement_vs_ref": agree / count}, kl)


def tune(args, bindir, model, flags, artifact):
    """moeq_tune.py on --tune-text from window --tune-skip on."""
    tool = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools", "python",
                        "moeq_tune.py")
    text = args.tune_text or os.path.join(args.fixtures, "corpus", "calib.txt")
    run([sys.executable, tool, model] + flags +
        ["--text", text, "--tokenizer", "bytes", "--seq-len", "256",
         "--skip-windows", str(args.tune_skip), "--quiet", "-o", artifact,
         "--moeq-compile", os.path.join(bindir, "moeq-compile"),
         "--moeq-export", os.path.join(bindir, "moeq-export")])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("fixtures")
    ap.add_argument("build")
    ap.add_argument("--stats", required=True)
    ap.add_argument("--configs", default=DEFAULT)
    ap.add_argument("--windows", type=int, default=512)
    ap.add_argument("--model", default=None,
                    help="another checkpoint in the fixture's layout (default: "
                         "FIXTURES/tiny-mixtral), e.g. one from bench/train_moe.py")
    ap.add_argument("--skip-windows", type=int, default=0,
                    help="evaluate from window S of eval.txt on (held-out windows)")
    ap.add_argument("--tune-text", help="tuned:B configs: the text moeq_tune.py measures on "
                    "(default: FIXTURES/corpus/calib.txt)")
    ap.add_argument("--tune-skip", type=int, default=512,
                    help="tuned:B configs: windows of 256 bytes skipped at its start")
    ap.add_argument("--compare", action="append", default=[], metavar="A~B",
                    help="configs A and B of --configs: A's KL over B's with a paired "
                         "bootstrap interval over windows (repeatable)")
    args = ap.parse_args()
    model = args.model or os.path.join(args.fixtures, "tiny-mixtral")
    bindir = os.path.join(args.build, "bin")
    tmp = tempfile.mkdtemp(prefix="moeq-quality-")
    data = os.path.join(args.fixtures, "corpus", "eval.txt")
    if args.skip_windows:
        # eval_ppl.py reads the first windows of its --data: a file that
        # starts S windows later holds the held-out ones.
        heldout = os.path.join(tmp, "eval-heldout.txt")
        with open(data, "rb") as f, open(heldout, "wb") as g:
            g.write(f.read()[args.skip_windows * 256:])
        data = heldout
    paired = PairedEvaluator(args.fixtures, model, data, args.windows) if args.compare else None
    per_window = {}
    imported = os.path.join(tmp, "model.mlir")
    run([os.path.join(bindir, "moeq-translate"), "--import-hf", model, "-o", imported])
    rows = []
    for config in ["bf16"] + args.configs.split(","):
        name = config
        override = None
        avg_bits = None
        delta_passes = []
        quant_config = config
        quantize_seconds = None
        if config.startswith("d2:"):
            delta, _, quant_config = config.partition("|")
            parts = delta.split(":")[1:]
            extra = dict(p.split("=", 1) for p in parts[1:])
            delta_passes = ["-moeq-delta-decompress=compression=%s merge=%s whiten=%s "
                            "shared-basis=%s prune=%s rank-multiple=%s stats=%s output=%s" % (
                                parts[0], extra.get("merge", "fisher"),
                                "true" if extra.get("whiten", "1") == "1" else "false",
                                "true" if extra.get("shared") == "1" else "false",
                                extra.get("prune", "0"), extra.get("rm", "16"),
                                os.path.abspath(args.stats),
                                os.path.join(tmp, "delta.safetensors"))]
        if config.startswith(("default:", "tuned:")):
            artifact = os.path.join(tmp, "artifact")
            parts = config.split(":")[1:]
            flags = ["--avg-bits", parts[0]]
            if "nostats" not in parts[1:]:
                flags += ["--stats", os.path.abspath(args.stats)]
            # ('+' separates a list value, as in --schemes: the configs are comma-separated.)
            flags += ["--" + p.replace("+", ",") for p in parts[1:] if p != "nostats"]
            started = time.monotonic()
            if config.startswith("tuned:"):
                tune(args, bindir, model, flags, artifact)
            else:
                run([os.path.join(bindir, "moeq-compile"), model] + flags +
                    ["--quiet", "-o", artifact])
            quantize_seconds = time.monotonic() - started
            avg_bits = artifact_bits_per_expert_weight(artifact, model)
            exported = os.path.join(tmp, "exported")
            run([os.path.join(bindir, "moeq-export"), artifact, "--format", "dequantized",
                 "-o", exported])
            override = os.path.join(exported, "model.safetensors")
        elif delta_passes and not quant_config:
            compressed = os.path.join(tmp, "delta.mlir")
            run([os.path.join(bindir, "moeq-opt"), imported] + delta_passes + ["-o", compressed])
            kept = re.findall(r"params_kept = ([0-9.e+-]+)", open(compressed).read())
            avg_bits = 16.0 * sum(map(float, kept)) / len(kept)
            override = os.path.join(tmp, "dequantized.safetensors")
            run([os.path.join(bindir, "moeq-translate"), "--export-dequantized", compressed,
                 "--weights-output", override])
        elif config != "bf16":
            config = quant_config
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
                if extra.get("price") == "1":
                    sensitivity += " group-bits=true"
                passes = ["-moeq-estimate-sensitivity=" + sensitivity,
                          "-moeq-allocate-bits=avg-bits=%s r=%s granularity=%s solver=%s%s" % (
                              budget, r, granularity, extra.get("solver", "exact"), common)]
                if slim:
                    passes.append("-moeq-assign-group-bits=loss=%s search=%s" % (
                        extra.get("gbloss", "auto"), extra.get("gbsearch", "golden")))
            else:
                method, bits, group = config.split(":")[:3]
                options = "bits=%s group-size=%s method=%s" % (bits, group, method)
                symmetric = config.endswith(":sym")
                if symmetric:
                    options += " symmetric=true"
                if method != "rtn":
                    options += stats
                passes = ["-moeq-assign-uniform-scheme=" + options]
                if config.endswith(":slim"):
                    passes.append("-moeq-assign-group-bits")
                if config.endswith(":lut"):
                    passes[-1] += " format=lut"
                elif int(group):
                    avg_bits = int(bits) + (16.0 if symmetric else 32.0) / int(group)
            packed = os.path.join(tmp, "packed.safetensors")
            quantized = os.path.join(tmp, "quantized.mlir")
            started = time.monotonic()
            run([os.path.join(bindir, "moeq-opt"), imported] + delta_passes + passes +
                ["-moeq-materialize-quantized-params=output=" + packed, "-o", quantized])
            quantize_seconds = time.monotonic() - started
            if delta_passes or avg_bits is None:
                avg_bits = stored_bits_per_original_weight(quantized)
            override = os.path.join(tmp, "dequantized.safetensors")
            run([os.path.join(bindir, "moeq-translate"), "--export-dequantized", quantized,
                 "--weights-output", override])
        if paired:
            result, per_window[name] = paired.evaluate(override)
        else:
            out = os.path.join(tmp, "eval.json")
            cmd = [sys.executable, os.path.join(args.fixtures, "eval_ppl.py"), model,
                   "--n-windows", str(args.windows), "--data", data, "--json", out]
            if override:
                cmd += ["--override", override, "--kl-ref"]
            run(cmd)
            result = json.load(open(out))
        row = {"config": name, "ppl": result.get("ppl"),
               "kl": result.get("kl_vs_ref_nats_per_byte", 0.0),
               "top1": result.get("top1_agreement_vs_ref", 1.0)}
        if avg_bits is not None:
            row["avg_bits"] = avg_bits
        if quantize_seconds is not None:
            row["quantize_s"] = round(quantize_seconds, 2)
        if override and "solver=relaxed" in name:
            gaps = re.findall(r"relaxation_gap = ([0-9.eE+-]+)", open(quantized).read())
            row["relaxation_gaps"] = [float(g) for g in gaps]
        rows.append(row)
        print(json.dumps(row), flush=True)
    if paired:
        print("| A | B | KL A / KL B (95% paired bootstrap over windows) |")
        print("|---|---|---|")
        for pair in args.compare:
            a, _, b = pair.partition("~")
            if a not in per_window or b not in per_window:
                sys.exit("--compare %s: both sides must be configs" % pair)
            ratio, low, high = paired_ratio(per_window[a], per_window[b])
            print(json.dumps({"compare": pair, "ratio": ratio, "ci95": [low, high]}),
                  file=sys.stderr)
            print("| %s | %s | %.3f (%.3f-%.3f) |" % (a, b, ratio, low, high))
        print()
    print("| config | avg bits | ppl | KL to bf16 (nats/byte) | top-1 agreement | quantize (s) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print("| %s | %s | %.4f | %.3g | %.4f | %s |" % (
            r["config"], ("%.2f" % r["avg_bits"]) if "avg_bits" in r else "16",
            r["ppl"], r["kl"], r["top1"],
            ("%.1f" % r["quantize_s"]) if "quantize_s" in r else "-"))


if __name__ == "__main__":
    main()
