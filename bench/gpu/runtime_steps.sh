# The runtime part of the GPU check, sourced by check.sh (uses its `step`,
# OUT, WORK, ROOT, HERE, PY): builds the runtime without LLVM, runs whole
# layers through moeq-run --backend cuda against the emulator's outputs made
# on the CPU (prepare_layers.sh), times Mixtral-8x7B-sized layers against a
# PyTorch bf16 layer, and compares the fixture's perplexity with its MoE
# blocks run by the runtime (moeq.patch_model) and by moeq.reference.

RT_BUILD=${RT_BUILD:-/tmp/moeq-runtime-build}
MOEQ_RUN=$RT_BUILD/bin/moeq-run

build_runtime() {
  cmake -G Ninja -S "$ROOT" -B "$RT_BUILD" -DMOEQ_RUNTIME_ONLY=ON -DCMAKE_BUILD_TYPE=Release \
    -DMOEQ_NLOHMANN_JSON_INCLUDE_DIR="$WORK/include" \
    -DMOEQ_XXHASH_INCLUDE_DIR="$WORK/include" > /dev/null &&
  ninja -C "$RT_BUILD" -j16
}

# 4. The runtime, built with a plain C++ compiler (no LLVM here).
step build_runtime "${LIMIT_BUILD:-40}" build_runtime

if [ -x "$MOEQ_RUN" ]; then
  # 5. Whole layers: cuda against the emulator and the CPU oracle.
  step layers "${LIMIT_LAYERS:-30}" \
    $PY "$HERE/check_runtime.py" layers "$WORK/layers" --moeq-run "$MOEQ_RUN" \
    --json "$OUT/layers.json"
  # 6. Mixtral-8x7B-sized layers: time per call against PyTorch bf16.
  step big_layers "${LIMIT_BIG:-60}" \
    $PY "$HERE/check_runtime.py" big "$WORK/big" --moeq-run "$MOEQ_RUN" \
    --iterations 10 --json "$OUT/big_layers.json"
  # 7. The fixture: perplexity with the runtime against the PyTorch reference.
  if [ -d "$WORK/fixture/model" ]; then
    step perplexity "${LIMIT_PPL:-40}" env MOEQ_RUNTIME_LIB="$RT_BUILD/lib/libmoeq_runtime.so" \
      $PY "$HERE/check_model.py" "$WORK/fixture/model" "$WORK/fixture/art" --backend cuda \
      --text "$WORK/fixture/eval.txt" --windows 512 --window-bytes 256 --batch 128 \
      $( [ -f "$WORK/fixture/cpu_reference.json" ] && echo --cpu-reference "$WORK/fixture/cpu_reference.json" ) \
      --json "$OUT/perplexity.json"
  fi
else
  echo "== no $MOEQ_RUN: the runtime steps are skipped"
fi
