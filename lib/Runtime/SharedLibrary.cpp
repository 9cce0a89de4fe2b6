//===- SharedLibrary.cpp - libmoeq_runtime.so -----------------------------===//
//
// The C API as a shared library (for ctypes and C programs). In the full
// build it also carries the emulator backend, registered when the library
// is loaded: a static initialiser in the library itself, since the static
// emulator library's own objects would not be pulled in otherwise.
//
//===----------------------------------------------------------------------===//
#include "moeq/Runtime/moeq_runtime.h"

#ifdef MOEQ_RUNTIME_WITH_EMULATOR
#include "moeq/Runtime/EmulatorBackend.h"

namespace {
struct RegisterEmulatorBackend {
  RegisterEmulatorBackend() { moeq::runtime::registerEmulatorBackend(); }
} registerEmulatorBackendAtLoad;
} // namespace
#endif
