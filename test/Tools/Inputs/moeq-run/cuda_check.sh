#!/bin/bash
# The cuda backend on a GPU machine (not run by lit: CI has no GPU). From the
# repository root:
#   [NLOHMANN=<folder with nlohmann/json.hpp>] bash test/Tools/Inputs/moeq-run/cuda_check.sh
# builds the runtime alone (-DMOEQ_RUNTIME_ONLY=ON) in /tmp/moeq-rt and runs
# the hand-written artifact of moeq-run.test on the GPU: every input dtype, no
# tokens, --bench, a bad device, 64 KiB of dynamic shared memory (the
# function attribute), a PTX the driver rejects (its JIT log), and, when
# torch is installed, the Python binding on the default and a side stream.
# Ran on an H200: every line ends in True / the expected message.
set -u
ROOT=$PWD
BUILD=/tmp/moeq-rt
GEN="-G Ninja"; command -v ninja >/dev/null || GEN=""
nvidia-smi -L
cmake $GEN -S . -B $BUILD -DMOEQ_RUNTIME_ONLY=ON ${NLOHMANN:+-DMOEQ_NLOHMANN_JSON_INCLUDE_DIR=$NLOHMANN} \
  > /tmp/moeq-rt-configure.log && cmake --build $BUILD -j"$(nproc)" > /tmp/moeq-rt-build.log ||
  { tail -30 /tmp/moeq-rt-configure.log /tmp/moeq-rt-build.log; exit 1; }
BIN=$BUILD/bin/moeq-run LIB=$BUILD/lib/libmoeq_runtime.so
IN=test/Tools/Inputs/moeq-run CHECK=test/Tools/Inputs/moeq-run/check_reversed.py
T=$(mktemp -d); cp -r $IN/artifact $T/art
python3 $IN/make_inputs.py $T $T/art

for case in "1 x" "0 x16" "1 xbf16" "1 empty"; do
  set -- $case
  $BIN $T/art --layer $1 --input $T/$2.safetensors -o $T/y-$2.safetensors &&
    python3 $CHECK $T/$2.safetensors $T/y-$2.safetensors
done
$BIN $T/art --layer 1 --input $T/x.safetensors -o $T/yb.safetensors --bench --iterations 20
$BIN $T/art --layer 1 --input $T/x.safetensors -o $T/yd.safetensors --device 7   # no CUDA device 7

cp -r $T/art $T/big && sed -i 's/"shared_memory_bytes": 0/"shared_memory_bytes": 65536/' $T/big/manifest.json
$BIN $T/big --layer 1 --input $T/x.safetensors -o $T/ybig.safetensors && python3 $CHECK $T/x.safetensors $T/ybig.safetensors
cp -r $T/art $T/bad && sed -i 's/ld.global.b16/ld.global.bogus16/' $T/bad/kernels/reverse_rows.ptx
$BIN $T/bad --layer 1 --input $T/x.safetensors -o $T/ybad.safetensors   # CUDA_ERROR_INVALID_PTX + log

PYTHONPATH=tools/python python3 - "$T/art" "$LIB" <<'PY'
import sys
try:
    import torch
except ImportError:
    sys.exit("no torch: the Python binding is not checked")
import moeq
art = moeq.Artifact(sys.argv[1], backend="cuda", device=0, library=sys.argv[2])
def rev(x):
    f = x.reshape(-1, x.shape[-1]).half()
    return f.flip(0).reshape(x.shape).to(x.dtype)
x = torch.randn(3, 11, 128, device="cuda")
print("python default stream", torch.equal(art.run_layer(1, x), rev(x)))
s = torch.cuda.Stream()
with torch.cuda.stream(s):
    xb = torch.randn(1000, 128, device="cuda", dtype=torch.bfloat16)
    yb = art.run_layer(0, xb)
s.synchronize()
print("python side stream bf16", torch.equal(yb, rev(xb)))
print("python token counts", all(torch.equal(art.run_layer(1, t), rev(t)) for t in
      (torch.randn(n, 128, device="cuda", dtype=torch.float16) for n in (1, 17, 4096, 5))))
PY
rm -rf "$T"
