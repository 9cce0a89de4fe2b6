//===- EmulatorBackend.h - the emulator backend (full build only) -*- C++ -*-===//
//
// Runs each kernel's emulation bitcode (`kernels/<name>.emu.bc`: a module
// defining `void <entry>_packed(void **args)` that calls the moeq_emu_*
// runtime of lib/GPUEmulator) JIT-compiled with LLVM ORC, CTA by CTA with
// PTX semantics. Device memory is host memory. Library MoeqRuntimeEmulator,
// which links LLVM; this header does not include any LLVM header.
//
//===----------------------------------------------------------------------===//
#ifndef MOEQ_RUNTIME_EMULATORBACKEND_H
#define MOEQ_RUNTIME_EMULATORBACKEND_H

#include "moeq/Runtime/Device.h"

#include <memory>

namespace moeq::runtime {

/// Makes Backend::Emulator available to createDevice and the C API.
/// Idempotent.
void registerEmulatorBackend();

/// An emulator device (`ordinal` is ignored: there is one CPU).
Status createEmulatorDevice(int ordinal, std::unique_ptr<Device> &device);

} // namespace moeq::runtime

#endif // MOEQ_RUNTIME_EMULATORBACKEND_H
