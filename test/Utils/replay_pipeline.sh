#!/usr/bin/env bash
# Checks that `moeq-compile --print-pipeline` reproduces a compile: usage
#   replay_pipeline.sh MODEL WORK FLAG...
# compiles MODEL with the flags into WORK/compiled, prints the pipeline of
# the same flags (weights into WORK/replay), runs it with moeq-opt on
# `moeq-translate --import-hf MODEL`, and compares the packed weights and
# every kernel's PTX byte for byte. Prints the pipeline, then one line per
# comparison; exits non-zero on the first difference.
set -euo pipefail
model=$1 work=$2
shift 2
rm -rf "$work"
mkdir -p "$work/replay"
moeq-compile "$model" -o "$work/compiled" --quiet "$@"
pipeline=$(moeq-compile "$model" -o "$work/replay" --print-pipeline "$@")
echo "pipeline: $pipeline"
moeq-translate --import-hf "$model" | moeq-opt --pass-pipeline="$pipeline" -o "$work/replay/ir.mlir"
cmp "$work/compiled/experts.safetensors" "$work/replay/experts.safetensors"
echo "weights: identical ($(stat -c %s "$work/replay/experts.safetensors") bytes)"
moeq-translate --export-ptx "$work/replay/ir.mlir" > "$work/replay/kernels.split"
split-file "$work/replay/kernels.split" "$work/replay/kernels"
diff -r -x '*.emu.bc' "$work/compiled/kernels" "$work/replay/kernels"
echo "kernels: $(ls "$work/replay/kernels" | wc -l) identical"
