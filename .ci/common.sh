# Shared by .ci/install-and-run, .ci/install-and-test and .ci/sanitize: install the
# toolchain (idempotent), configure and build moeq.
set -euo pipefail

MOEQ_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MOEQ_BUILD="${MOEQ_BUILD:-$MOEQ_ROOT/build}"
LLVM_PREFIX=/usr/lib/llvm-22

# Debian 12 packages. LLVM/MLIR 22 come from Debian's security suite;
# chromium-headless-shell renders report.html in its test.
MOEQ_PACKAGES=(
  cmake ninja-build ccache lld g++ git
  libzstd-dev
  llvm-22-dev llvm-22-tools libmlir-22-dev mlir-22-tools
  libgtest-dev libopenblas-dev libglpk-dev nlohmann-json3-dev libxxhash-dev xxhash
  ocl-icd-opencl-dev opencl-headers pocl-opencl-icd llvm-spirv-15
  python3 python3-venv
  chromium-headless-shell
)

# The tests also build the fuzz targets (clang, libFuzzer) and run their
# seeds (test/Fuzz/regress.test).
MOEQ_FUZZ_PACKAGES=(clang-22 libclang-rt-22-dev libfuzzer-22-dev)
MOEQ_FUZZ_BUILD="${MOEQ_FUZZ_BUILD:-$MOEQ_ROOT/build-fuzz}"
# The whole tree under ASan + UBSan (.ci/sanitize; the same packages).
MOEQ_SAN_BUILD="${MOEQ_SAN_BUILD:-$MOEQ_ROOT/build-asan}"

# Installs MOEQ_PACKAGES and the packages given as arguments.
moeq_install() {
  local missing=()
  for pkg in "${MOEQ_PACKAGES[@]}" "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" ||
      missing+=("$pkg")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    echo "== all $(( ${#MOEQ_PACKAGES[@]} + $# )) packages already installed"
    return
  fi
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "== installing: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# A virtual environment with torch + transformers from PyPI for the tests that
# compare against Hugging Face implementations; reused while the pinned
# requirements do not change.
moeq_python_env() {
  local req="$MOEQ_ROOT/tools/python/requirements-test.txt"
  local key
  key=$(sha256sum "$req" | cut -c1-12)
  MOEQ_VENV="${MOEQ_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/moeq/pyenv-$key}"
  if [ -x "$MOEQ_VENV/bin/python" ] &&
     "$MOEQ_VENV/bin/python" -c "import torch, transformers, safetensors" 2>/dev/null; then
    echo "== python test environment: $MOEQ_VENV"
  else
    echo "== creating the python test environment $MOEQ_VENV (torch, transformers from PyPI)"
    rm -rf "$MOEQ_VENV"
    python3 -m venv "$MOEQ_VENV"
    "$MOEQ_VENV/bin/pip" install -q --disable-pip-version-check -r "$req"
  fi
  # transformers 5 beside 4.57 (tests of its fused expert modules): its
  # packages in <venv>/transformers5, put first on PYTHONPATH by the tests.
  local tf5="$MOEQ_VENV/transformers5"
  local tf5req="$MOEQ_ROOT/tools/python/requirements-transformers5.txt"
  local tf5version
  tf5version=$(sed -n 's/^transformers==//p' "$tf5req")
  if ! PYTHONPATH="$tf5" "$MOEQ_VENV/bin/python" -c \
      "import transformers, sys; sys.exit(transformers.__version__ != '$tf5version')" 2>/dev/null; then
    echo "== installing transformers $tf5version into $tf5"
    rm -rf "$tf5"
    "$MOEQ_VENV/bin/pip" install -q --disable-pip-version-check --no-deps --target "$tf5" -r "$tf5req"
  fi
  # Pinned packages beside the test environment (docs/dependencies.md): Ray
  # (the distributed driver), accelerate (transformers' MXFP4 path on a
  # CPU), compressed-tensors (loading moeq's compressed-tensors exports),
  # gguf and sentencepiece (reading moeq's GGUF exports as llama.cpp's
  # tools do, and their vocabularies); added to an existing environment too.
  local extras=("ray==2.60.0" "accelerate==1.16.0" "compressed-tensors==0.14.0.1" "gguf==0.19.0"
                "sentencepiece==0.2.3")
  if ! "$MOEQ_VENV/bin/python" - "${extras[@]}" 2>/dev/null <<'PY'; then
import importlib.metadata as md, sys
sys.exit(any(md.version(p.split("==")[0]) != p.split("==")[1] for p in sys.argv[1:]))
PY
    "$MOEQ_VENV/bin/pip" install -q --disable-pip-version-check "${extras[@]}"
  fi
  # llama.cpp itself, to run moeq's GGUF exports: llama-cpp-python builds it
  # from source (PyPI has no CPU wheel), CPU only and without its tools;
  # about 7 minutes on 2 cores, once per environment.
  if ! "$MOEQ_VENV/bin/python" -c "import importlib.metadata as md, sys; \
      sys.exit(md.version('llama_cpp_python') != '0.3.36')" 2>/dev/null; then
    echo "== building llama-cpp-python 0.3.36 (llama.cpp from source, CPU; a few minutes)"
    CMAKE_BUILD_PARALLEL_LEVEL="${MOEQ_JOBS:-2}" \
    CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_OPENMP=OFF -DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF \
-DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF" \
      "$MOEQ_VENV/bin/pip" install -q --disable-pip-version-check --no-deps \
      "llama-cpp-python==0.3.36" "diskcache==5.6.3"
  fi
}

moeq_build() {
  echo "== configuring $MOEQ_BUILD"
  cmake -G Ninja -S "$MOEQ_ROOT" -B "$MOEQ_BUILD" \
    -DCMAKE_BUILD_TYPE=Release \
    -DMLIR_DIR="$LLVM_PREFIX/lib/cmake/mlir" \
    -DLLVM_EXTERNAL_LIT="$LLVM_PREFIX/bin/lit" \
    -DMOEQ_PYTHON="${MOEQ_VENV:+$MOEQ_VENV/bin/python}" >/dev/null
  echo "== building (ninja -j${MOEQ_JOBS:-2})"
  ninja -C "$MOEQ_BUILD" -j"${MOEQ_JOBS:-2}" "$@"
}

# Configures build $1 with clang-22 (the sanitized trees); the rest of the
# arguments are extra cmake options.
moeq_configure_clang() {
  local build=$1
  shift
  cmake -G Ninja -S "$MOEQ_ROOT" -B "$build" \
    -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_C_COMPILER=clang-22 -DCMAKE_CXX_COMPILER=clang++-22 \
    -DMLIR_DIR="$LLVM_PREFIX/lib/cmake/mlir" \
    -DLLVM_EXTERNAL_LIT="$LLVM_PREFIX/bin/lit" "$@" >/dev/null
}

# The libFuzzer targets (test/Fuzz; docs/reliability.md) in a second tree
# built by clang with ASan and UBSan; lit runs their seeds when
# MOEQ_FUZZ_BIN names it.
moeq_build_fuzzers() {
  echo "== configuring $MOEQ_FUZZ_BUILD (clang-22, libFuzzer, ASan + UBSan)"
  moeq_configure_clang "$MOEQ_FUZZ_BUILD" -DMOEQ_FUZZERS=ON
  echo "== building the fuzz targets (ninja -j${MOEQ_JOBS:-2})"
  ninja -C "$MOEQ_FUZZ_BUILD" -j"${MOEQ_JOBS:-2}" moeq-fuzzers
  export MOEQ_FUZZ_BIN="$MOEQ_FUZZ_BUILD/bin"
}

# The whole tree built by clang with AddressSanitizer and
# UndefinedBehaviorSanitizer, every report fatal (docs/reliability.md).
moeq_build_sanitized() {
  echo "== configuring $MOEQ_SAN_BUILD (clang-22, ASan + UBSan)"
  moeq_configure_clang "$MOEQ_SAN_BUILD" -DMOEQ_SANITIZERS="address;undefined" \
    -DMOEQ_PYTHON="${MOEQ_VENV:+$MOEQ_VENV/bin/python}"
  echo "== building with the sanitizers (ninja -j${MOEQ_JOBS:-2})"
  ninja -C "$MOEQ_SAN_BUILD" -j"${MOEQ_JOBS:-2}" all
}

# Runs both suites (lit + GoogleTest) of build $1, ends with a "N passed, N
# failed" summary; returns 0 iff all pass.
moeq_run_tests() {
  local build=$1 log="$1/test-results.txt" status passed failed skipped
  echo "== running the tests of $build (lit)"
  set +e
  "$LLVM_PREFIX/bin/lit" -sv "$build/test" "$build/test/Unit" 2>&1 | tee "$log"
  status=${PIPESTATUS[0]}
  set -e
  # lit's summary lines: "  Passed     : 367 (85.55%)" (labels padded).
  count() {
    awk -v key="$1" '{ label = $0; sub(/^ +/, "", label); sub(/ *:.*/, "", label) }
                     label == key { sub(/^[^:]*: */, ""); n += $1 } END { print n + 0 }' "$log"
  }
  passed=$(count Passed)
  failed=$(( $(count Failed) + $(count Unresolved) + $(count Timed) ))
  skipped=$(count Unsupported)
  echo
  echo "$passed passed, $failed failed, $skipped skipped"
  if [ "$passed" -eq 0 ] && [ "$status" -eq 0 ]; then
    echo "error: no test ran"
    return 1
  fi
  return "$status"
}

moeq_cuda_note() {
  if [ ! -x "${CUDA_HOME:-/usr/local/cuda}/bin/ptxas" ]; then
    echo "note: no CUDA toolkit at ${CUDA_HOME:-/usr/local/cuda}: PTX is still generated," \
         "but the ptxas checks are skipped"
  fi
}
