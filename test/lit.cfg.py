# -*- Python -*-
# lit configuration for the moeq regression tests.
import os
import sys

import lit.formats
import lit.util
from lit.llvm import llvm_config
from lit.llvm.subst import ToolSubst

config.name = "MOEQ"
config.test_format = lit.formats.ShTest(not llvm_config.use_lit_shell)
config.suffixes = [".mlir", ".test", ".td"]
config.excludes = ["Inputs", "Unit", "Utils", "CMakeLists.txt", "lit.cfg.py", "lit.site.cfg.py",
                   "lit_sanitizers.py"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.moeq_obj_root, "test")

config.substitutions.append(("%PATH%", config.environment["PATH"]))
config.substitutions.append(("%shlibext", config.llvm_shlib_ext))
config.substitutions.append(("%inputs", os.path.join(config.test_source_root, "Inputs")))

llvm_config.with_system_environment(["HOME", "INCLUDE", "LIB", "TMP", "TEMP"])
llvm_config.use_default_substitutions()

config.moeq_tools_dir = os.path.join(config.moeq_obj_root, "bin")
tool_dirs = [config.moeq_tools_dir, config.llvm_tools_dir]
tools = ["moeq-opt", "moeq-translate", "moeq-compile", "moeq-merge", "moeq-gen-checkpoint", "moeq-cpu-runner", "moeq-stats",
         "moeq-kernel-check", "moeq-run", "moeq-tblgen",
         "mlir-runner", "mlir-opt", "llvm-as"]
llvm_config.add_tool_substitutions(tools, tool_dirs)
llvm_config.with_environment("PATH", config.llvm_tools_dir, append_path=True)
llvm_config.with_environment("PATH", config.moeq_tools_dir, append_path=True)

# ptxas checks need the CUDA toolkit (never a GPU).
ptxas = os.path.join(config.cuda_home, "bin", "ptxas")
if os.path.exists(ptxas):
    config.available_features.add("ptxas")
    config.substitutions.append(("%ptxas", ptxas))
config.substitutions.append(("%mlir_lib_dir", config.mlir_lib_dir))
config.substitutions.append(("%mlir_include_dir", config.mlir_include_dir))
# libmoeq_runtime.so (the C API for the Python binding) and the binding.
config.substitutions.append(("%moeq_lib_dir", os.path.join(config.moeq_obj_root, "lib")))
config.substitutions.append(("%moeq_python_dir",
                             os.path.join(os.path.dirname(config.test_source_root), "tools", "python")))
# Real execution of SIMT kernels through SPIR-V on PoCL (the CPU OpenCL
# driver): the translator and the driver (moeq-kernel-check must have been
# built with OpenCL, which the same packages provide).
import shutil
if (shutil.which("llvm-spirv-15") or shutil.which("llvm-spirv")) and \
        os.path.exists("/etc/OpenCL/vendors/pocl.icd"):
    config.available_features.add("pocl")
# A private mount namespace where tmpfs can be mounted (root): full and
# read-only file systems for the output-error tests.
import subprocess
import tempfile
with tempfile.TemporaryDirectory() as mount_probe:
    if subprocess.run(["unshare", "-m", "sh", "-c", "mount -t tmpfs -o size=4k probe " + mount_probe],
                      capture_output=True).returncode == 0:
        config.available_features.add("mount-namespace")
# The libFuzzer targets, built in a second tree (.ci/common.sh,
# moeq_build_fuzzers): their seeds run as a test.
fuzz_bin = os.environ.get("MOEQ_FUZZ_BIN", "")
if fuzz_bin and os.path.exists(os.path.join(fuzz_bin, "moeq-fuzz-ir")):
    config.available_features.add("fuzzers")
    config.substitutions.append(("%fuzz_bin", fuzz_bin))
# -DMOEQ_SANITIZERS builds: their options, and how Python loads the
# instrumented libmoeq_runtime.so.
sys.path.insert(0, config.test_source_root)
import lit_sanitizers  # noqa: E402
sanitizer_python_prefix = lit_sanitizers.configure(config)
# The Python running lit (standard library only) for small checks on outputs.
config.substitutions.append(("%python", sys.executable))

# Semantics tests against Hugging Face transformers need its Python env.
# Headless Chromium (Debian's chromium-headless-shell, or chromium) renders
# report.html in its test.
import shutil
for browser in ("chromium-headless-shell", "chromium"):
    if shutil.which(browser):
        config.available_features.add("chromium")
        config.substitutions.append(("%chromium", "%s%s --no-sandbox --disable-gpu" % (
            shutil.which(browser), "" if browser.endswith("shell") else " --headless")))
        break

if config.moeq_python and os.path.exists(config.moeq_python):
    import subprocess
    # How tests run it: under a sanitizer build, with the ASan runtime.
    moeq_python_cmd = config.moeq_python if not sanitizer_python_prefix else \
        "%s %s" % (sanitizer_python_prefix, config.moeq_python)
    probe = subprocess.run([config.moeq_python, "-c", "import torch, transformers"],
                           capture_output=True)
    if probe.returncode == 0:
        config.available_features.add("transformers")
        config.substitutions.append(("%hfpython", moeq_python_cmd))
    # transformers 5 in <venv>/transformers5 (.ci/common.sh), in front of the
    # environment's 4.57: %hf5python runs the same Python with it.
    tf5 = os.path.join(os.path.dirname(os.path.dirname(config.moeq_python)), "transformers5")
    probe = subprocess.run([config.moeq_python, "-c",
                            "import torch, transformers; assert transformers.__version__[0] == '5'"],
                           capture_output=True, env=dict(os.environ, PYTHONPATH=tf5))
    if probe.returncode == 0:
        config.available_features.add("transformers5")
        config.substitutions.append(("%hf5python", "env PYTHONPATH=%s %s" % (tf5, moeq_python_cmd)))
    # Pinned packages of the test environment (.ci/common.sh), each a
    # feature when it imports:
    # - accelerate: transformers needs it to dequantize MXFP4 on a CPU;
    # - compressed-tensors: loads moeq's compressed-tensors exports;
    # - gguf: llama.cpp's Python reader, for moeq's GGUF exports;
    # - llama-cpp: llama.cpp itself (llama-cpp-python, built from source by
    #   .ci), running moeq's GGUF exports.
    for feature, module in (("accelerate", "accelerate"),
                            ("compressed-tensors", "compressed_tensors"),
                            ("gguf", "gguf"), ("llama-cpp", "llama_cpp")):
        if subprocess.run([config.moeq_python, "-c", "import " + module],
                          capture_output=True).returncode == 0:
            config.available_features.add(feature)
    # The distributed driver (tools/python/moeq_distributed.py) needs Ray
    # in the same environment; %raycli is its `ray` command (ray start/stop).
    probe = subprocess.run([config.moeq_python, "-c", "import ray"], capture_output=True)
    raycli = os.path.join(os.path.dirname(config.moeq_python), "ray")
    if probe.returncode == 0 and os.path.exists(raycli):
        config.available_features.add("ray")
        config.substitutions.append(("%raypython", moeq_python_cmd))
        config.substitutions.append(("%raycli", raycli))
