#!/usr/bin/env bash
# The GPU check, run on the GPU machine (no moeq build needed there):
#
#   bash bench/gpu/check.sh OUT
#
# Prints the GPU, replays the kernel cases (check_kernels.py), runs the
# sanitizer subset, times the expert GEMMs (time_gemms.py), each under a
# time limit; a failing step is recorded and the next one runs. Logs and
# JSON go to OUT, everything merged into OUT/gpu_check.json. The inputs
# (bench/gpu/work: cases, timing cases) come from prepare_kernels.sh.
# Budget: 340 s in all (MOEQ_GPU_BUDGET); `step` cuts each step to what is left.
set -u
OUT=${1:?usage: bash bench/gpu/check.sh OUT}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
WORK=${MOEQ_GPU_WORK:-$HERE/work}
PY=${PYTHON:-python3}
BUDGET=${MOEQ_GPU_BUDGET:-340}
mkdir -p "$OUT"
export OUT HERE ROOT WORK PY
START=$(date +%s)
STEPS_JSON="$OUT/steps.jsonl"
: > "$STEPS_JSON"

elapsed() { echo $(( $(date +%s) - START )); }

# step NAME LIMIT_S COMMAND...: runs COMMAND with a time limit (never more
# than what is left of the budget), output to OUT/NAME.log, then prints the
# log's last lines (the scripts print their tables last).
step() {
  local name=$1 limit=$2
  shift 2
  local left=$(( BUDGET - $(elapsed) - 5 ))
  if [ "$left" -le 10 ]; then
    echo "== $name: skipped (budget spent)"
    echo "{\"step\": \"$name\", \"status\": \"skipped\", \"seconds\": 0}" >> "$STEPS_JSON"
    return
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  echo "== $name (limit ${limit}s, $(elapsed)s elapsed)"
  local t0=$(date +%s)
  if declare -F "$1" > /dev/null; then
    # A shell function (runtime_steps.sh): run it in a child bash.
    export -f "$1"
    timeout --kill-after=10 "$limit" bash -c '"$@"' _ "$@" > "$OUT/$name.log" 2>&1
  else
    timeout --kill-after=10 "$limit" "$@" > "$OUT/$name.log" 2>&1
  fi
  local rc=$?
  local secs=$(( $(date +%s) - t0 ))
  local status=ok
  [ "$rc" -ne 0 ] && status="failed (exit $rc)"
  [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ] && status="timed out"
  tail -n "${TAIL_LINES:-45}" "$OUT/$name.log"
  echo "-- $name: $status in ${secs}s"
  echo "{\"step\": \"$name\", \"status\": \"$status\", \"exit\": $rc, \"seconds\": $secs}" >> "$STEPS_JSON"
}

echo "== GPU"
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1 || echo "nvidia-smi failed" >> "$OUT/nvidia-smi.txt"
head -n 20 "$OUT/nvidia-smi.txt"
$PY - > "$OUT/environment.json" 2>&1 <<'EOF'
import json, platform
env = {"python": platform.python_version()}
for mod in ("torch", "cupy", "numpy", "safetensors"):
    try:
        m = __import__(mod)
        env[mod] = getattr(m, "__version__", "?")
    except Exception as e:
        env[mod] = "missing: %s" % e
try:
    import torch
    env["cuda_available"] = torch.cuda.is_available()
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        env.update(device=p.name, sms=p.multi_processor_count, memory_gb=p.total_memory / 2**30,
                   capability="%d.%d" % (p.major, p.minor), torch_cuda=torch.version.cuda)
except Exception as e:
    env["torch_error"] = str(e)
print(json.dumps(env))
EOF
cat "$OUT/environment.json"
if [ ! -d "$WORK/cases" ] || [ ! -d "$WORK/timing" ]; then
  echo "missing $WORK/cases or $WORK/timing: run bench/gpu/prepare_kernels.sh first (and carry bench/gpu/work)"
fi

# 1. Every kernel case against the emulator and the reference.
step check_kernels "${LIMIT_CHECK:-60}" \
  $PY "$HERE/check_kernels.py" "$WORK/cases" --json "$OUT/check_kernels.json"

# 2. Expert-GEMM times against the cost model, cuBLAS bf16 and the roofline.
step time_gemms "${LIMIT_TIMING:-60}" \
  $PY "$HERE/time_gemms.py" "$WORK/timing" --budget "${TIMING_BUDGET:-45}" --iters 20 \
  --warmup 2 --json "$OUT/timing.json"

# 3-6. The runtime (built here without LLVM) and whole layers
# (runtime_steps.sh, sourced with `step`, OUT, WORK, ROOT, HERE and PY).
if [ -f "$HERE/runtime_steps.sh" ]; then
  # Exported (set -a): the steps' functions run in child shells.
  set -a
  # shellcheck source=/dev/null
  source "$HERE/runtime_steps.sh"
  set +a
fi

# 7. The sanitizer subset (WORK/cases/sanitize_subset.txt), one process per
# tool, with what is left of the budget.
step sanitize "${LIMIT_SANITIZE:-60}" \
  $PY "$HERE/check_kernels.py" "$WORK/cases" --sanitize memcheck,racecheck,synccheck \
  --sanitize-timeout 18 --json "$OUT/sanitize.json"

# Everything in one JSON.
$PY - "$OUT" <<'EOF'
import json, os, sys
out = sys.argv[1]
merged = {"steps": []}
with open(os.path.join(out, "steps.jsonl")) as f:
    merged["steps"] = [json.loads(l) for l in f if l.strip()]
for key, name in (("environment", "environment.json"), ("check_kernels", "check_kernels.json"),
                  ("sanitize", "sanitize.json"), ("timing", "timing.json")) + tuple(
        (f[:-5], f) for f in sorted(os.listdir(out))
        if f.endswith(".json") and f not in ("environment.json", "check_kernels.json",
                                             "sanitize.json", "timing.json", "gpu_check.json")):
    path = os.path.join(out, name)
    try:
        with open(path) as f:
            merged[key] = json.load(f)
    except Exception as e:
        merged[key] = {"missing": "%s: %s" % (name, e)}
with open(os.path.join(out, "gpu_check.json"), "w") as f:
    json.dump(merged, f, indent=1)
ck = merged["check_kernels"].get("summary", {})
san = merged["sanitize"].get("sanitize", [])
tim = merged["timing"].get("results", [])
print("== summary")
for s in merged["steps"]:
    print("  %-14s %-20s %4ss" % (s["step"], s["status"], s["seconds"]))
if ck:
    print("  kernel cases: %s/%s passed; failed: %s" % (ck.get("passed"), ck.get("cases"),
                                                       ", ".join(ck.get("failed", [])[:12]) or "-"))
if san:
    print("  sanitizer: %d/%d tool runs clean" % (sum(1 for s in san if s.get("clean")), len(san)))
if tim:
    runs = [r for e in tim for r in e.get("runs", [])]
    print("  timing: %d cases, %d runs, %d errors" % (len(tim), len(runs),
                                                     sum(1 for e in tim if e.get("error"))))
lay = merged["layers"].get("layers", [])
if lay:
    bad = [l for l in lay if l.get("error") or l.get("vs_emulator", 1) > 1e-2]
    print("  whole layers (cuda vs emulator): %d runs, %d bad, max relative %.2e" % (
        len(lay), len(bad), max(l.get("vs_emulator", 0) for l in lay)))
for b in merged["big_layers"].get("big", []):
    if "moeq_ms" in b:
        print("  %-11s T=%-5d moeq %.3f ms, torch bf16 %.3f ms, roofline %.3f ms" % (
            b["case"], b["tokens"], b["moeq_ms"], b["torch_bf16_ms"], b["roofline_ms"]))
ppl = merged["perplexity"]
if "perplexity_runtime" in ppl:
    print("  fixture perplexity: runtime %.4f, reference %.4f, top-1 %.4f" % (
        ppl["perplexity_runtime"], ppl["perplexity_reference"], ppl["top1_agreement"]))
print("  written: %s" % os.path.join(out, "gpu_check.json"))
EOF
echo "== done in $(elapsed)s"
