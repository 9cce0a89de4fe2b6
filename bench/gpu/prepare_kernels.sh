#!/usr/bin/env bash
# Builds the inputs of the GPU check (bench/gpu/README.md) with a moeq
# build, here, on the CPU:
#
#   bash bench/gpu/prepare_kernels.sh [WORK]     (default bench/gpu/work)
#
#   WORK/cases/<name>    kernel cases: every kernel checked on the GPU
#                        emulator and saved with its PTX (sm_90; the hp_*
#                        wgmma cases sm_90a), launches,
#                        inputs, the emulator's outputs and the references
#   WORK/cases/probes/   one-warp probes of each warp instruction
#   WORK/cases/sanitize_subset.txt   the cases check_kernels.py --sanitize runs
#   WORK/timing/<name>   timing cases: Mixtral-8x7B expert GEMMs (8 experts,
#                        top-2) per scheme and token count, PTX + launches,
#                        no weights
#
# MOEQ_BUILD selects the build (default ./build), JOBS the parallel checks.
# Exits 1 if any kernel check fails on the emulator (the case is still
# written). WORK is ignored by git; carry it to the GPU machine.
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${MOEQ_BUILD:-$ROOT/build}
CHECK="$BUILD/bin/moeq-kernel-check"
WORK=${1:-$ROOT/bench/gpu/work}
JOBS=${JOBS:-2}
ARCH=sm_90
[ -x "$CHECK" ] || { echo "no $CHECK (set MOEQ_BUILD)"; exit 2; }
rm -rf "$WORK/cases" "$WORK/timing" "$WORK/logs"
mkdir -p "$WORK/cases" "$WORK/timing" "$WORK/logs"
START=$(date +%s)

# name|moeq-kernel-check arguments (sm_90; every case also runs on the emulator).
CASES=$(cat <<'EOF'
tc_f16|--scheme f16 --tile mma:32x64x64w4s3 --n 200 --rows 1,17,40
tc_w8a16pca|--scheme w8a16pca --tile mma:16x64x32w4s2 --n 72 --rows 3,33
tc_w4a16g128a|--scheme w4a16g128a --tile mma:32x64x64w4s3 --rows 1,17,40
tc_w4a16g128s|--scheme w4a16g128s --tile mma:32x64x64w4s3 --rows 1,17,40
tc_w4a16g32s_s4|--scheme w4a16g32s --tile mma:64x64x64w4s4 --rows 70
tc_w3a16g128a|--scheme w3a16g128a --tile mma:16x128x64w4s2 --n 200 --rows 1,17
tc_w3a16g128s|--scheme w3a16g128s --tile mma:16x128x64w4s2 --n 200 --rows 1,17
tc_w3a16g64a_w8|--scheme w3a16g64a --tile mma:32x64x32w8s3 --rows 33
tc_w2a16g128a|--scheme w2a16g128a --tile mma:32x64x64w4s3 --n 200 --rows 5,40
tc_w2a16g128s|--scheme w2a16g128s --tile mma:32x64x64w4s3 --n 200 --rows 5,40
tc_w1a16g128a|--scheme w1a16g128a --tile mma:32x64x64w4s3 --n 200 --rows 5,40
tc_w3a16g128a_lut|--scheme w3a16g128a_lut --tile mma:32x64x64w4s3 --n 200 --rows 5,40
tc_w2a16g64a_lut|--scheme w2a16g64a_lut --tile mma:16x64x32w4s2 --rows 1,17
tc_w4a16pca_lut|--scheme w4a16pca_lut --tile mma:64x64x64w4s4 --n 72 --rows 70
tc_gb_w3_2-4|--scheme w3a16g128a --group-bits 2,4 --tile mma:16x64x64w4s2 --rows 9,16
tc_gb_w2_1-3|--scheme w2a16g128a --group-bits 1,3 --tile mma:32x64x64w4s3 --n 200 --rows 40
tc_w8a8pcs|--scheme w8a8pcs --tile mma:64x128x64w8s3 --n 200 --rows 3,70
tc_w8a8pcs_s4|--scheme w8a8pcs --tile mma:16x64x32w4s4 --n 72 --k 512 --rows 17
tc_w4a4g128s|--scheme w4a4g128s --tile mma:32x64x128w4s2 --rows 3,33
sk_w4a16g128a_k2|--scheme w4a16g128a --tile mma:16x64x32w4s3k2 --n 200 --k 512 --rows 1,17
sk_gb_w3_k4|--scheme w3a16g128a --group-bits 2,4 --tile mma:16x64x64w4s2k4 --rows 3
sk_f16_k4|--scheme f16 --tile mma:32x64x32w4s2k4 --rows 5
sk_w3a16g128a_lut_k2|--scheme w3a16g128a_lut --tile mma:16x64x32w4s3k2 --n 200 --k 512 --rows 3
ksteps_f16_s2|--scheme f16 --tile mma:16x64x32w4s2 --n 64 --k 4096 --rows 1,17
ksteps_f16_s3|--scheme f16 --tile mma:16x64x32w4s3 --n 64 --k 4096 --rows 1,17
ksteps_f16_s4|--scheme f16 --tile mma:16x64x32w4s4 --n 64 --k 4096 --rows 1,17
ksteps_w4a16g128a_s2|--scheme w4a16g128a --tile mma:16x64x64w4s2 --n 128 --k 4096 --rows 1,17
ksteps_w4a16g128a_s3|--scheme w4a16g128a --tile mma:16x64x64w4s3 --n 128 --k 4096 --rows 1,17
ksteps_w4a16g128a_s4|--scheme w4a16g128a --tile mma:16x64x64w4s4 --n 128 --k 4096 --rows 1,17
ksteps_w4a16g128a_bk128_s4|--scheme w4a16g128a --tile mma:16x64x128w4s4 --n 128 --k 4096 --rows 1
smem_max_w2a16g128a|--scheme w2a16g128a --tile mma:256x128x128w8s3 --n 256 --k 512 --rows 260
smem_max_w4a16g128a|--scheme w4a16g128a --tile mma:256x64x128w8s3 --n 200 --k 512 --rows 300
smem_max_f16|--scheme f16 --tile mma:16x256x128w8s3 --n 512 --k 512 --rows 17
smem_max_w8a8pcs|--scheme w8a8pcs --tile mma:256x128x128w8s4 --n 256 --k 512 --rows 260
smem_48k_f16|--scheme f16 --tile mma:64x64x64w4s3 --n 256 --k 512 --rows 130
smem_48k_w8a8pcs|--scheme w8a8pcs --tile mma:128x128x32w8s4 --n 256 --k 512 --rows 130
xcols_w4_512|--scheme w4a16g128a --tile mma:16x64x64w4s3 --n 256 --k 384 --x-cols 512 --rows 5,40
xcols_w4_388|--scheme w4a16g128a --tile mma:16x64x64w4s3 --n 256 --k 384 --x-cols 388 --rows 5,40
xcols_w4_386|--scheme w4a16g128a --tile mma:16x64x64w4s3 --n 256 --k 384 --x-cols 386 --rows 5,40
xcols_w4_391|--scheme w4a16g128a --tile mma:16x64x64w4s3 --n 256 --k 384 --x-cols 391 --rows 5,40
xcols_f16_391|--scheme f16 --tile mma:32x64x32w4s2 --n 256 --k 384 --x-cols 391 --rows 17
hp_f16|--arch sm_90a --scheme f16 --tile wgmma:64x64x64w4s3 --n 200 --rows 1,70
hp_f16_2wg|--arch sm_90a --scheme f16 --tile wgmma:128x256x32w8s3 --n 256 --k 512 --rows 200
hp_w8a16pca|--arch sm_90a --scheme w8a16pca --tile wgmma:64x256x64w4s3 --n 256 --rows 70
hp_w4a16g128a|--arch sm_90a --scheme w4a16g128a --tile wgmma:64x64x64w4s3 --n 200 --rows 1,70
hp_w4a16g128a_2wg|--arch sm_90a --scheme w4a16g128a --tile wgmma:128x256x32w8s3 --n 256 --k 512 --rows 200
hp_w4a16g32s_n2|--arch sm_90a --scheme w4a16g32s --tile wgmma:64x256x32w8s4 --n 512 --rows 70
hp_w3a16g128s|--arch sm_90a --scheme w3a16g128s --tile wgmma:64x256x128w4s3 --n 256 --k 512 --rows 70
hp_w2a16g128a|--arch sm_90a --scheme w2a16g128a --tile wgmma:128x128x64w8s4 --k 512 --rows 130
hp_w1a16g128a|--arch sm_90a --scheme w1a16g128a --tile wgmma:64x128x64w4s3 --n 200 --rows 33
hp_gb_w3_2-4|--arch sm_90a --scheme w3a16g128a --group-bits 2,4 --tile wgmma:64x64x64w4s2 --rows 9,80
hp_w3a16g128a_lut|--arch sm_90a --scheme w3a16g128a_lut --tile wgmma:64x64x64w4s3 --n 200 --rows 70
hp_auto_w4a16g128a|--arch sm_90a --scheme w4a16g128a --tile auto --tokens 8192 --n 1024 --k 1024 --rows 100
simt_f16|--scheme f16 --tile simt --rows 1,3
simt_w8a16pca|--scheme w8a16pca --tile simt --rows 1,3
simt_w4a16g128a|--scheme w4a16g128a --tile simt --rows 1,3
simt_w4a16g128s|--scheme w4a16g128s --tile simt --rows 1,3
simt_w3a16g64s|--scheme w3a16g64s --tile simt --n 200 --rows 2
simt_w2a16g128a|--scheme w2a16g128a --tile simt --rows 2
simt_w1a16g128a|--scheme w1a16g128a --tile simt --rows 2
simt_gb_w2_1-3|--scheme w2a16g128a --group-bits 1,3 --tile simt --rows 2
simt_w3a16g128a_lut|--scheme w3a16g128a_lut --tile simt --n 200 --rows 1,3
simt_w8a8pca|--scheme w8a8pca --tile simt --rows 2
simt_w8a8pcs|--scheme w8a8pcs --tile simt --rows 2
simt_w4a4g128s|--scheme w4a4g128s --tile simt --rows 2
simt_xcols_w3_391|--scheme w3a16g128a --tile simt --n 256 --k 384 --x-cols 391 --rows 3
grp_mix4|--experts w4a16g128a,w2a16g128a,w4a16g128a,w3a16g128a --expert-rows 5,0,37,20 --tokens 64 --n 200
grp_mix5_ctas5|--experts w4a16g128a,w2a16g128a,w8a16pca,w3a16g128a,w1a16g128a --expert-rows 70,3,0,130,33 --tokens 8192 --n 256 --k 512 --ctas 5
grp_f16_gb|--experts f16,w4a16g32s,w3a16g128a:gb2-4 --expert-rows 9,18,1 --tokens 4096
grp_lut|--experts w3a16g128a_lut,w4a16g128a,w2a16g128a_lut --expert-rows 9,0,40 --tokens 512 --n 200
grp_w8a8pcs|--experts w8a8pcs,w8a8pcs --expert-rows 40,17 --tokens 8192 --n 256
grp_w4a4g128s|--experts w4a4g128s,w4a4g128s,w4a4g128s --expert-rows 40,0,17 --tokens 512
grp_decode_8x|--experts w4a16g128a,w4a16g128a,w4a16g128a,w4a16g128a,w4a16g128a,w4a16g128a,w4a16g128a,w4a16g128a --expert-rows 1,0,0,1,0,0,0,0 --tokens 1 --top-k 2 --n 256 --k 512 --ctas 132 --gpu h200
EOF
)

run_case() {
  local name=${1%%|*} args=${1#*|}
  # Cases naming their own --arch (the Hopper wgmma ones: sm_90a) keep it.
  case " $args " in *" --arch "*) ;; *) args="$args --arch $ARCH" ;; esac
  # shellcheck disable=SC2086
  if "$CHECK" $args --save-case "$WORK/cases/$name" > "$WORK/logs/$name.log" 2>&1 &&
     ! grep -q MISMATCH "$WORK/logs/$name.log"; then
    echo "ok   $name"
  else
    echo "FAIL $name (see $WORK/logs/$name.log)"
  fi
}
export -f run_case
export CHECK WORK ARCH

echo "== kernel cases"
echo "$CASES" | xargs -P "$JOBS" -I{} bash -c 'run_case "$@"' _ {} | tee "$WORK/logs/cases.txt"

echo "== probes"
PROBES_FAILED=0
if "$CHECK" --probe all --arch "$ARCH" --save-case "$WORK/cases/probes" > "$WORK/logs/probes.log" 2>&1; then
  echo "ok   probes ($(ls "$WORK/cases/probes" | wc -l))"
else
  echo "FAIL probes (see $WORK/logs/probes.log)"
  PROBES_FAILED=1
fi

# check_kernels.py --sanitize: f16 and w4 kernels with many K steps at 2-4
# stages, one persistent kernel, one split-K kernel, two wgmma kernels
# (racecheck/synccheck see the barrier around the dequantised f16 tile).
cat > "$WORK/cases/sanitize_subset.txt" <<'EOF'
hp_w4a16g128a
hp_f16
ksteps_f16_s2
ksteps_f16_s3
ksteps_f16_s4
ksteps_w4a16g128a_s2
ksteps_w4a16g128a_s3
ksteps_w4a16g128a_s4
grp_mix4
sk_w4a16g128a_k2
EOF

echo "== timing cases (Mixtral-8x7B experts, 8 experts, top-2, cost model h200)"
# Splits of tokens * 2 rows over 8 experts: uniform, and skewed (routing
# counts decaying like 1/(e+1)^0.8, the largest expert first).
splits() {
  python3 - "$1" <<'PY'
import sys
t = int(sys.argv[1]); rows = 2 * t; e = 8
uni = [rows // e + (1 if i < rows % e else 0) for i in range(e)]
w = [1 / (i + 1) ** 0.8 for i in range(e)]
sk = [int(rows * x / sum(w)) for x in w]
sk[0] += rows - sum(sk)
print("uniform:" + ",".join(map(str, uni)) + ";skewed:" + ",".join(map(str, sk)))
PY
}
timing_case() {
  local scheme=$1 proj=$2 n=$3 k=$4 t=$5
  local experts
  experts=$(printf "%s," "$scheme" "$scheme" "$scheme" "$scheme" "$scheme" "$scheme" "$scheme" "$scheme")
  local name="${scheme}_${proj}_t${t}"
  if "$CHECK" --timing-case "$WORK/timing/$name" --experts "${experts%,}" \
       --expert-rows "$(splits "$t")" --tokens "$t" --top-k 2 --gpu h200 --arch "$ARCH" \
       --n "$n" --k "$k" > "$WORK/logs/timing_$name.log" 2>&1; then
    echo "ok   $name: $(tail -n 1 "$WORK/logs/timing_$name.log")"
  else
    echo "FAIL $name (see $WORK/logs/timing_$name.log)"
  fi
}
export -f timing_case splits
TIMING=""
for scheme in f16 w8a16pca w4a16g128a w3a16g128a w2a16g128a w8a8pcs w4a4g128s; do
  for t in 1 16 512 4096; do
    TIMING+="$scheme gate_up 14336 4096 $t"$'\n'
    TIMING+="$scheme down 4096 14336 $t"$'\n'
  done
done
printf "%s" "$TIMING" | xargs -P "$JOBS" -L 1 bash -c 'timing_case "$@"' _ | tee "$WORK/logs/timing.txt"

FAILED=$(( $(cat "$WORK/logs/cases.txt" "$WORK/logs/timing.txt" | grep -c '^FAIL') + PROBES_FAILED ))
echo "== $(ls "$WORK/cases" | grep -vc "sanitize_subset\|probes") kernel cases (+ $(ls "$WORK/cases/probes" 2>/dev/null | wc -l) probes), $(ls "$WORK/timing" | wc -l) timing cases, $(du -sm "$WORK" | cut -f1) MiB in $WORK, $(( $(date +%s) - START ))s; $FAILED failed"
[ "$FAILED" -eq 0 ]
