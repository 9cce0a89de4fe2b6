#!/usr/bin/env bash
# Builds the whole-layer inputs of the GPU check, here on the CPU, with a
# moeq build (bench/gpu/README.md):
#
#   bash bench/gpu/prepare_layers.sh [WORK]      (default bench/gpu/work)
#
#   WORK/layers/<case>/art        a compiled artifact (sm_90)
#   WORK/layers/<case>/x<T>.safetensors, emu<T>.safetensors, cpu<T>.safetensors
#                                 inputs of T tokens, the emulator's output
#                                 (moeq-run --backend emulator) and the CPU
#                                 oracle's (moeq-cpu-runner) for layer L
#   WORK/big/<case>               Mixtral-8x7B-sized layers (hidden 4096,
#                                 intermediate 14336, 8 experts, top-2) without
#                                 their weight files (0.7 GB of experts at 4
#                                 bits, 84 MB of attention): the GPU machine
#                                 fills every device parameter with random
#                                 values (fill_random_weights.py) to time
#                                 whole layers
#   WORK/fixture/model, art, eval.txt   the trained fixture's config
#                                 (../shared/fixtures), its artifact and the
#                                 evaluation text the check reads: the model's
#                                 other weights travel in the artifact
#                                 (params.safetensors), not twice
#   WORK/include/nlohmann/json.hpp   the JSON header the runtime builds with
#   WORK/include/xxhash.h            the checksum header the runtime builds with
#
# MOEQ_BUILD selects the build (default ./build). WORK is ignored by git.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${MOEQ_BUILD:-$ROOT/build}
BIN=$BUILD/bin
WORK=${1:-$ROOT/bench/gpu/work}
FIXTURES=${MOEQ_FIXTURES:-$ROOT/../shared/fixtures}
SCRATCH=${TMPDIR:-/tmp}/moeq-gpu-prepare
rm -rf "$WORK/layers" "$WORK/big" "$WORK/fixture" "$WORK/include" "$SCRATCH"
mkdir -p "$WORK/layers" "$WORK/big" "$WORK/fixture" "$WORK/include/nlohmann" "$SCRATCH"
cp /usr/include/nlohmann/json.hpp "$WORK/include/nlohmann/"
cp /usr/include/xxhash.h "$WORK/include/"
START=$(date +%s)
say() { echo "[$(( $(date +%s) - START ))s] $*"; }

# case|layer|checkpoint flags|compile flags|cpu-runner quantization flags
LAYERS=$(cat <<'EOF'
mixtral_w4|0|--hidden 256 --intermediate 512 --experts 8 --top-k 2|--bits 4|--bits 4
mixtral_w3g64|0|--hidden 128 --intermediate 256 --experts 8 --top-k 2|--bits 3 --group-size 64|--bits 3 --group-size 64
phimoe_w4|0|--family phimoe --hidden 128 --intermediate 256 --experts 8 --top-k 2|--bits 4|--bits 4
qwen2_shared_w4|0|--family qwen2_moe --hidden 128 --intermediate 128 --experts 16 --top-k 4|--bits 4 --quantize-shared|--bits 4 --quantize-shared
dsv3_e64_w4g64|0|--family deepseek_v3 --hidden 128 --intermediate 64 --experts 64 --top-k 8 --n-group 8 --topk-group 4|--bits 4 --group-size 64|--bits 4 --group-size 64
k192_w4g64|0|--hidden 192 --intermediate 320 --experts 4 --top-k 2|--bits 4 --group-size 64|--bits 4 --group-size 64
simt_w4|0|--hidden 128 --intermediate 256 --experts 8 --top-k 2|--bits 4 --kernel-path simt|--bits 4
w8a8|0|--hidden 128 --intermediate 256 --experts 8 --top-k 2|--bits 8 --act-bits 8 --group-size 0 --symmetric|--bits 8 --act-bits 8 --group-size 0 --symmetric
decode_splitk_w4|0|--hidden 256 --intermediate 512 --experts 8 --top-k 2|--bits 4 --tokens 4 --persistent=false|--bits 4
EOF
)
while IFS='|' read -r name layer gen compile cpu; do
  dir=$WORK/layers/$name
  mkdir -p "$dir"
  say "layer case $name"
  # shellcheck disable=SC2086
  "$BIN/moeq-gen-checkpoint" -o "$SCRATCH/$name" --layers 1 --vocab 64 --heads 2 --kv-heads 2 $gen > /dev/null
  # shellcheck disable=SC2086
  "$BIN/moeq-compile" "$SCRATCH/$name" -o "$dir/art" $compile --arch sm_90 --quiet
  hidden=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['hidden_size'])" "$SCRATCH/$name/config.json")
  echo "$layer" > "$dir/layer"
  for t in 1 16 100; do
    python3 "$ROOT/test/Utils/layer_io.py" make "$dir/x$t.safetensors" --rows "$t" --cols "$hidden" --seed "$t"
    "$BIN/moeq-run" "$dir/art" --layer "$layer" --input "$dir/x$t.safetensors" -o "$dir/emu$t.safetensors" --backend emulator
    # shellcheck disable=SC2086
    "$BIN/moeq-cpu-runner" "$SCRATCH/$name" --layer "$layer" --input "$dir/x$t.safetensors" -o "$dir/cpu$t.safetensors" $cpu
  done
  rm -rf "$SCRATCH/$name"
done <<< "$LAYERS"

# Mixtral-8x7B-sized layers: compiled from a generated checkpoint (2.8 GB of
# bf16 experts), shipped without experts.safetensors.
say "Mixtral-8x7B-sized checkpoint"
"$BIN/moeq-gen-checkpoint" -o "$SCRATCH/big" --layers 1 --hidden 4096 --intermediate 14336 \
  --experts 8 --top-k 2 --heads 32 --kv-heads 8 --vocab 256 > /dev/null
# case|token counts the GPU times it at|compile flags (tiles for decode or prefill)
for spec in "w4_t16|1,16|--bits 4 --tokens 16" "w4_t4096|512,4096|--bits 4 --tokens 4096" \
            "w3_t16|1,16|--bits 3 --tokens 16" "w2_t16|1,16|--bits 2 --tokens 16" \
            "w8a8_t4096|4096|--bits 8 --act-bits 8 --group-size 0 --symmetric --tokens 4096"; do
  IFS='|' read -r name tokens flags <<< "$spec"
  say "big layer $name ($flags)"
  # shellcheck disable=SC2086
  "$BIN/moeq-compile" "$SCRATCH/big" -o "$WORK/big/$name" $flags --arch sm_90 --quiet
  rm "$WORK/big/$name/experts.safetensors" "$WORK/big/$name/params.safetensors"
  echo "$tokens" > "$WORK/big/$name/tokens"
done
rm -rf "$SCRATCH/big"

# The trained fixture and its artifact (w4 g128, data-free RTN).
if [ -d "$FIXTURES/tiny-mixtral" ]; then
  say "fixture"
  mkdir -p "$WORK/fixture/model"
  cp "$FIXTURES/tiny-mixtral/config.json" "$WORK/fixture/model/"
  head -c $((512 * 256)) "$FIXTURES/corpus/eval.txt" > "$WORK/fixture/eval.txt"
  "$BIN/moeq-compile" "$FIXTURES/tiny-mixtral" -o "$WORK/fixture/art" --bits 4 --arch sm_90 --quiet
  # The CPU-dequantized perplexity on the same windows (MOEQ_PYTHON: a Python
  # with torch and transformers, e.g. the test environment of .ci).
  if [ -n "${MOEQ_PYTHON:-}" ]; then
    say "fixture: reference perplexity on the CPU"
    "$MOEQ_PYTHON" "$ROOT/bench/gpu/check_model.py" "$WORK/fixture/model" "$WORK/fixture/art" \
      --reference-only --text "$WORK/fixture/eval.txt" --windows 512 --window-bytes 256 \
      --json "$WORK/fixture/cpu_reference.json"
  fi
else
  say "no fixture at $FIXTURES: the perplexity check will be skipped"
fi
say "done: $(du -sh "$WORK" | cut -f1) in $WORK"
