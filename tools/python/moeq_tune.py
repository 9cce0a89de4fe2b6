#!/usr/bin/env python3
"""Choose between moeq-compile's defaults and the compositions that win on some models and lose
on others, by the end-to-end KL divergence on a text, and keep the best artifact.

  moeq_tune.py MODEL_DIR --avg-bits B --stats STATS --text FILE -o OUT
               [--try FLAGS]... [--no-alternatives] [--skip-windows N] [--max-windows 64]
               [--seq-len 256] [--tokenizer auto|bytes] [--batch-size 4]
               [--dtype float32|bfloat16] [--moeq-compile PATH] [--moeq-export PATH]
               [--json FILE] [--quiet] [-- MOEQ_COMPILE_FLAGS...]

moeq-compile decides everything it can from the statistics (docs/quantization.md, "Defaults").
What it cannot decide is where the right answer depends on the layers after the MoE blocks:
D^2-MoE at 2.0 bits lowered one model's KL by 23% and raised another's by 33%, and none of the
layer-level losses the statistics allow ranked both correctly. This tool measures instead. It
compiles the defaults and the alternatives measured to help some model at this budget (the
table ALTERNATIVES below; --try adds more, --no-alternatives keeps only --try's), exports each
(`moeq-export --format dequantized`), runs it with transformers on the text against the original
model, and keeps the composition with the lowest KL whose paired bootstrap interval (95%, over
windows) of KL over the defaults' lies below 1; otherwise the defaults. So an alternative is
chosen only when the text shows it better, not by noise.

The text should not be what the statistics were computed on (the quantizers fit those tokens):
give other text, or the same text with --skip-windows set past the calibration's sequences
(windows of --seq-len tokens, as moeq_calibrate.py cuts them). Flags after `--` go to every
moeq-compile run (--arch, --threads, ...).

The chosen artifact replaces OUT atomically (an existing OUT must be a moeq artifact), with a
"tuning" section appended to its report.txt: every trial, its KL, ratio and interval, and why
the choice. Prints the same table and one line `tune-json {...}` (also written to --json).
"""
import argparse
import hashlib
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)

import moeq_eval  # noqa: E402

# MxMoE's candidates plus groups of 64 and 32 and the level tables: what won at 3.0-3.5 bits on
# the fixture (-10%, -24%) and lost 3-4% on the second model.
WIDE_CANDIDATES = ("w8a16pc,w4a16g128,w3a16g128,w2a16g128,w1a16g128,w4a16g64,w3a16g64,w2a16g64,"
                   "w2a16g32,w3a16pc,w2a16pc,w2a16g128a_lut,w3a16g128a_lut")

# (lowest budget, highest budget, flags, why): alternatives whose effect on the KL changed sign
# between the two models measured (docs/quantization.md, "Defaults" and "Held-out check").
ALTERNATIVES = (
    (0.0, 2.25, "--d2-compression 0.4 --d2-rank-multiple 32",
     "D^2-MoE 40%: 2.0 bits -23% KL on the fixture, +33% on the second model"),
    (0.0, 2.49, "--price-group-bits",
     "group widths priced below 2.5 bits: fixture -4%/-20%, second model +10%/+18%"),
    (3.0, 8.0, "--price-group-bits",
     "group widths priced from 3.0 bits: fixture +26%/+14%, second model -21%/-16%"),
    (3.0, 8.0, "--schemes " + WIDE_CANDIDATES,
     "13 candidates: fixture -10%/-24% at 3.0/3.5 bits, second model +3%/+4%"),
)


class TuneError(Exception):
    pass


def log(msg):
    print("[moeq_tune.py] " + msg, file=sys.stderr)
    sys.stderr.flush()


def parse_args(argv):
    passthrough = []
    if "--" in argv:
        cut = argv.index("--")
        argv, passthrough = argv[:cut], argv[cut + 1:]
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model_dir", metavar="MODEL_DIR")
    ap.add_argument("--avg-bits", type=float, required=True)
    ap.add_argument("--stats", required=True, help="moeq_calibrate.py's statistics")
    ap.add_argument("--text", required=True, help="UTF-8 text the choice is measured on")
    ap.add_argument("-o", "--output", required=True, help="the artifact to write")
    ap.add_argument("--try", dest="trials", action="append", default=[], metavar="FLAGS",
                    help="moeq-compile flags of one more composition (repeatable; a single "
                    "flag as --try=--flag)")
    ap.add_argument("--no-alternatives", action="store_true",
                    help="try only the defaults and --try's, not the budget's alternatives")
    ap.add_argument("--skip-windows", type=int, default=0,
                    help="start after this many windows of the text")
    ap.add_argument("--max-windows", type=int, default=64)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--tokenizer", choices=("auto", "bytes"), default="auto")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    ap.add_argument("--moeq-compile", default="", help="the moeq-compile binary "
                    "(default: on PATH, or beside this script's build)")
    ap.add_argument("--moeq-export", default="", help="the moeq-export binary (likewise)")
    ap.add_argument("--json", default="", help="also write the results as JSON to this file")
    ap.add_argument("--quiet", action="store_true", help="no progress bars")
    a = ap.parse_args(argv)
    if a.seq_len < 2 or a.batch_size < 1 or a.max_windows < 1 or a.skip_windows < 0:
        ap.error("--seq-len must be >= 2, --batch-size and --max-windows >= 1, "
                 "--skip-windows >= 0")
    if not 0 < a.avg_bits <= 16:
        ap.error("--avg-bits must be in (0, 16]")
    for flag in ("-o", "--output", "--avg-bits", "--stats"):
        if any(p == flag or p.startswith(flag + "=") for p in passthrough):
            ap.error("%s is the tool's own option: give it before `--`" % flag)
    a.passthrough = passthrough
    return a


def find_binary(name, given):
    if given:
        if not os.access(given, os.X_OK):
            raise TuneError("--%s '%s' is not an executable" % (name, given))
        return given
    found = shutil.which(name)
    if found:
        return found
    candidate = os.path.join(here, "..", "..", "build", "bin", name)
    if os.access(candidate, os.X_OK):
        return os.path.abspath(candidate)
    raise TuneError("%s not found: put the build's bin/ on PATH or give --%s" % (name, name))


def trials_for(a):
    """[(flags, why)]: the defaults first, then the budget's alternatives and --try's."""
    trials = [("", "the defaults")]
    if not a.no_alternatives:
        trials += [(flags, why) for low, high, flags, why in ALTERNATIVES
                   if low <= a.avg_bits <= high]
    trials += [(flags, "--try") for flags in a.trials]
    seen, unique = set(), []
    for flags, why in trials:
        if flags not in seen:
            seen.add(flags)
            unique.append((flags, why))
    return unique


def check_replaceable(output):
    """Refuse to replace anything but a moeq artifact (moeq-compile's own rule)."""
    if not os.path.exists(output):
        return
    if not os.path.isdir(output):
        raise TuneError("%s: exists and is not a directory" % output)
    allowed = {"manifest.json", "experts.safetensors", "params.safetensors", "report.txt",
               "report.html", "kernels", "hf"}
    for name in sorted(os.listdir(output)):
        if name not in allowed:
            raise TuneError("%s: refusing to replace a directory that contains '%s', which is "
                            "not part of a moeq artifact" % (output, name))


def replace_directory(source, output):
    """Move `source` to `output`, an existing `output` aside first and removed after."""
    old = None
    if os.path.exists(output):
        old = tempfile.mkdtemp(prefix=os.path.basename(output) + ".old-",
                               dir=os.path.dirname(os.path.abspath(output)))
        os.rename(output, old + "/artifact")
    os.rename(source, output)
    if old:
        shutil.rmtree(old, ignore_errors=True)


class Evaluator:
    """Per-window KL(original || quantized) on fixed windows; the original model's
    log-probabilities are computed once when they fit in memory."""

    CACHE_BYTES = 1 << 30

    def __init__(self, a, windows, original):
        self.a, self.windows, self.original = a, windows, original
        self.cache = None
        vocab = original.config.get_text_config().vocab_size
        if len(windows) * len(windows[0]) * vocab * 4 <= self.CACHE_BYTES:
            self.cache = [self.log_probs(original, batch) for batch in self.batches()]

    def batches(self):
        size = self.a.batch_size
        return [self.windows[i:i + size] for i in range(0, len(self.windows), size)]

    @staticmethod
    def log_probs(model, batch):
        import torch
        ids = torch.tensor(batch, dtype=torch.long)
        return torch.log_softmax(model(input_ids=ids).logits[:, :-1].float(), dim=-1)

    def per_window_kl(self, quantized, label):
        bar = None
        if not self.a.quiet:
            from tqdm import tqdm
            bar = tqdm(total=len(self.windows), unit="window", file=sys.stderr,
                       desc="[moeq_tune.py] evaluating " + label)
        kl = []
        for b, batch in enumerate(self.batches()):
            logp = self.cache[b] if self.cache else self.log_probs(self.original, batch)
            logq = self.log_probs(quantized, batch)
            kl += [float(v) for v in (logp.exp() * (logp - logq)).sum(-1).mean(-1)]
            if bar is not None:
                bar.update(len(batch))
        if bar is not None:
            bar.close()
        return kl


def paired_ratio(kl, base, resamples=2000):
    """mean(kl) / mean(base) and its 95% percentile bootstrap interval, windows resampled
    together; seeded, so the choice is deterministic."""
    rng = random.Random(0)
    n = len(kl)
    ratios = []
    for _ in range(resamples):
        pick = [rng.randrange(n) for _ in range(n)]
        ratios.append(sum(kl[i] for i in pick) / max(sum(base[i] for i in pick), 1e-300))
    ratios.sort()
    return (sum(kl) / max(sum(base), 1e-300), ratios[int(0.025 * resamples)],
            ratios[int(0.975 * resamples) - 1])


def compile_trial(a, binaries, flags, directory):
    cmd = ([binaries["moeq-compile"], a.model_dir, "--avg-bits", repr(a.avg_bits), "--stats",
            a.stats, "--quiet", "-o", os.path.join(directory, "artifact")] + flags.split() +
           a.passthrough)
    run = subprocess.run(cmd, capture_output=True, text=True)
    if run.returncode != 0:
        # The first error without its location prefix (loc(...): error: ...).
        lines = [l for l in run.stderr.splitlines() if l.strip()]
        errors = [l for l in run.stderr.splitlines() if "error: " in l]
        if errors:
            return errors[0].partition("error: ")[2].strip()
        return lines[0].strip() if lines else "moeq-compile exited with %d" % run.returncode
    run = subprocess.run([binaries["moeq-export"], os.path.join(directory, "artifact"),
                          "--format", "dequantized", "-o", os.path.join(directory, "exported"),
                          "--quiet"], capture_output=True, text=True)
    if run.returncode != 0:
        raise TuneError("moeq-export failed: %s" % run.stderr.strip())
    return None


def weights_digest(artifact):
    """SHA-256 of the artifact's weight files: equal digests, equal models."""
    digest = hashlib.sha256()
    for name in ("experts.safetensors", "params.safetensors"):
        path = os.path.join(artifact, name)
        if os.path.exists(path):
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()


def choose(results):
    """The defaults unless an alternative's interval lies below 1; then the lowest KL."""
    best = results[0]
    for r in results[1:]:
        if (r.get("high") is not None and r["high"] < 1.0 and r["kl"] < best["kl"] and
                not r.get("same_as")):
            best = r
    if best is results[0]:
        why = ("no alternative's KL was below the defaults' with 95% confidence"
               if len(results) > 1 else "no alternative at this budget")
    else:
        why = "KL %.3fx the defaults' (95%% interval %.3f-%.3f)" % (
            best["ratio"], best["low"], best["high"])
    return best, why


def table(results, chosen, why, windows, predictions):
    lines = ["tuning: %d composition%s on %d windows (%d predictions) of the text, KL to the "
             "original model in nats/token" % (len(results), "s"[:len(results) > 1], windows,
                                               predictions)]
    lines.append("  %-2s %-12s %-26s %-9s %s" % ("#", "KL", "over the defaults (95%)",
                                                "compile", "flags (why tried)"))
    for i, r in enumerate(results, 1):
        note = r["why"]
        if "error" in r:
            kl, ratio, note = "failed", "-", "%s; failed: %s" % (note, r["error"])
        else:
            kl = "%.4g" % r["kl"]
            ratio = ("%.3f (%.3f-%.3f)" % (r["ratio"], r["low"], r["high"])
                     if r.get("low") is not None else "1")
            if r.get("same_as"):
                note += "; the same artifact as #%d" % r["same_as"]
        lines.append("  %-2d %-12s %-26s %-9s %s (%s)" % (
            i, kl, ratio, "%.1f s" % r["compile_s"], r["flags"] or "(defaults)", note))
    lines.append("  chosen: #%d %s: %s" % (results.index(chosen) + 1,
                                           chosen["flags"] or "(the defaults)", why))
    return "\n".join(lines)


def main(argv):
    a = parse_args(argv)
    import torch
    import moeq_calibrate as mc
    dtype = torch.float32 if a.dtype == "float32" else torch.bfloat16
    binaries = {name: find_binary(name, getattr(a, name.replace("-", "_")))
                for name in ("moeq-compile", "moeq-export")}
    if not os.path.isfile(os.path.join(a.model_dir, "config.json")):
        raise TuneError("'%s' is not a model directory (no config.json)" % a.model_dir)
    check_replaceable(a.output)
    trials = trials_for(a)
    log("%d composition%s at %g bits: %s" % (len(trials), "s"[:len(trials) > 1], a.avg_bits,
                                            "; ".join(f or "(defaults)" for f, _ in trials)))
    original = moeq_eval.load_model(a.model_dir, dtype)
    vocab = original.config.get_text_config().vocab_size
    tokens = mc.Tokens(a.model_dir, a.tokenizer, vocab)
    try:
        ids = tokens.encode_file(a.text)
    except mc.CalibError as e:
        raise TuneError(str(e).replace("calibration text", "text"))
    windows = moeq_eval.windows_of(ids, a.seq_len, 0)[a.skip_windows:][:a.max_windows]
    if len(windows) < 2:
        raise TuneError("the text gives %d windows of %d tokens after skipping %d: at least 2 "
                        "are needed" % (len(windows), a.seq_len, a.skip_windows))
    log("%d windows of %d tokens (%s tokens) from window %d"
        % (len(windows), len(windows[0]), tokens.kind, a.skip_windows))
    evaluator = Evaluator(a, windows, original)
    parent = os.path.dirname(os.path.abspath(a.output))
    os.makedirs(parent, exist_ok=True)
    work = tempfile.mkdtemp(prefix=".moeq-tune-", dir=parent)
    try:
        results = []
        for i, (flags, why) in enumerate(trials):
            directory = os.path.join(work, str(i))
            log("composition %d/%d: compiling %s" % (i + 1, len(trials), flags or "(defaults)"))
            started = time.monotonic()
            error = compile_trial(a, binaries, flags, directory)
            result = {"flags": flags, "why": why, "directory": directory,
                      "compile_s": round(time.monotonic() - started, 2)}
            if error:
                if i == 0:
                    raise TuneError("the defaults do not compile: %s" % error)
                log("composition %d failed: %s" % (i + 1, error))
                result["error"] = error
                results.append(result)
                continue
            result["digest"] = weights_digest(os.path.join(directory, "artifact"))
            earlier = [j for j, r in enumerate(results) if r.get("digest") == result["digest"]]
            if earlier:  # the same weights (e.g. pricing changed no choice): the same KL
                result["same_as"] = earlier[0] + 1
                result["per_window"] = results[earlier[0]]["per_window"]
                log("composition %d: the same weights as %d" % (i + 1, earlier[0] + 1))
            else:
                quantized = moeq_eval.load_model(os.path.join(directory, "exported"), dtype)
                result["per_window"] = evaluator.per_window_kl(
                    quantized, "%d/%d" % (i + 1, len(trials)))
                del quantized
            shutil.rmtree(os.path.join(directory, "exported"))
            result["kl"] = sum(result["per_window"]) / len(windows)
            if i > 0:
                result["ratio"], result["low"], result["high"] = paired_ratio(
                    result["per_window"], results[0]["per_window"])
            results.append(result)
        chosen, why = choose([r for r in results if "error" not in r])
        predictions = len(windows) * (len(windows[0]) - 1)
        text = table(results, chosen, why, len(windows), predictions)
        with open(os.path.join(chosen["directory"], "artifact", "report.txt"), "a") as f:
            f.write("\n" + text + "\n")
        replace_directory(os.path.join(chosen["directory"], "artifact"), a.output)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(text)
    summary = {"output": a.output, "avg_bits": a.avg_bits, "windows": len(windows),
               "predictions": predictions, "chosen": chosen["flags"], "why": why,
               "trials": [{k: r[k] for k in ("flags", "why", "compile_s", "kl", "ratio", "low",
                                             "high", "error") if k in r} for r in results]}
    moeq_eval.report_json("tune-json", summary, a.json)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except (TuneError, moeq_eval.EvalError) as e:
        print("moeq_tune.py: error: %s" % e, file=sys.stderr)
        sys.exit(1)
