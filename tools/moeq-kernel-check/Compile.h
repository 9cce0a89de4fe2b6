//===- Compile.h - kernels to PTX and to the GPU emulator -------*- C++ -*-===//
//
// The two ways moeq-kernel-check takes a module whose kernels are built
// (gpu.modules of gpu/nvgpu/memref ops): to PTX as moeq-compile does, and
// to CPU functions the GPU emulator runs. Both start from the same IR.
//
//===----------------------------------------------------------------------===//
#ifndef MOEQ_TOOLS_KERNELCHECK_COMPILE_H
#define MOEQ_TOOLS_KERNELCHECK_COMPILE_H

#include "moeq/GPUEmulator/Emulator.h"

#include "mlir/ExecutionEngine/ExecutionEngine.h"
#include "mlir/IR/BuiltinOps.h"

#include <map>
#include <memory>
#include <string>

namespace mlir::moeq::kcheck {

[[noreturn]] void fail(const llvm::Twine &message);
/// Fails with the error's message, if any.
void check(llvm::Error error);

/// The PTX of each kernel of a module, by kernel (= gpu.module) name.
using PTXMap = std::map<std::string, std::string>;

/// The PTX of every kernel of `module`, from a clone lowered exactly as in
/// moeq-compile (NVVM, gpu-module-to-binary{format=isa}).
PTXMap compileToPTX(ModuleOp module);

/// Lowers the kernels to NVVM (as for PTX) and makes them CPU functions
/// for the emulator (moeq-emulate-gpu-kernels).
void lowerForEmulation(ModuleOp module);

/// JIT-compiles the kernels (only them) with the emulator runtime.
std::unique_ptr<ExecutionEngine> jitKernels(ModuleOp module);

/// The kernel `name` in the packed form emu::launch runs.
emu::PackedKernel lookupKernel(ExecutionEngine &engine, llvm::StringRef name);

} // namespace mlir::moeq::kcheck

#endif // MOEQ_TOOLS_KERNELCHECK_COMPILE_H
