"""Sanitizer settings shared by the regression (lit.cfg.py) and unit
(Unit/lit.cfg.py) suites of a build configured with -DMOEQ_SANITIZERS
(docs/reliability.md). A no-op for a normal build."""
import os
import subprocess


def configure(config):
    sanitizers = [s for s in getattr(config, "moeq_sanitizers", "").split(",") if s]
    if not sanitizers:
        return None
    config.available_features.add("sanitizers")
    # Every report fails the test (the build also makes them fatal).
    config.environment["UBSAN_OPTIONS"] = "print_stacktrace=1:halt_on_error=1"
    if "address" not in sanitizers:
        return None
    config.available_features.add("asan")
    # LLVM and MLIR are Debian's, not instrumented: code inlined from their
    # headers poisons the unused rest of each BumpPtrAllocator slab, which
    # libMLIR.so then writes without unpoisoning (false use-after-poison).
    # Every real access is still checked.
    options = "allow_user_poisoning=0:detect_leaks=1:strict_string_checks=1:" \
              "check_initialization_order=1:detect_stack_use_after_return=1"
    config.environment["ASAN_OPTIONS"] = options
    # Leaks inside libraries moeq calls but does not build (PoCL and its
    # LLVM 15 keep their compiler state until exit).
    config.environment["LSAN_OPTIONS"] = "suppressions=" + os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "lsan-suppressions.txt")
    # libmoeq_runtime.so loaded by Python (ctypes) needs the ASan runtime
    # first in the process: preloaded, without leak checks (Python and
    # torch keep their allocations at exit).
    runtime = subprocess.run([config.moeq_cxx_compiler, "-print-file-name=libclang_rt.asan-x86_64.so"],
                             capture_output=True, text=True).stdout.strip()
    if not os.path.isabs(runtime) or not os.path.exists(runtime):
        return None
    return "env LD_PRELOAD=%s ASAN_OPTIONS=%s:detect_leaks=0" % (runtime, options)
