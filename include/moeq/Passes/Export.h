//===- Export.h - moeq IR -> PTX files, manifest, weights -------*- C++ -*-===//
#ifndef MOEQ_PASSES_EXPORT_H
#define MOEQ_PASSES_EXPORT_H

#include "mlir/Support/LLVM.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/Support/JSON.h"

#include <string>
#include <vector>

namespace mlir {
class ModuleOp;
namespace moeq {

/// One compiled kernel: the PTX of a `gpu.binary`.
struct PTXKernel {
  std::string name; ///< gpu.binary symbol = kernel entry name
  std::string chip; ///< sm_80, sm_90, ...
  std::string ptx;
};

/// Every PTX object of every `gpu.binary` in `module`; emits an error and
/// fails if a binary holds no PTX assembly.
FailureOr<std::vector<PTXKernel>> collectPTX(ModuleOp module);

/// One kernel as the runtime's emulator backend runs it: LLVM bitcode
/// defining `void <name>_packed(void **args)`.
struct EmulationKernel {
  std::string name;
  std::string bitcode;
};

/// For a module whose gpu.modules are lowered to NVVM (before
/// gpu-module-to-binary): every kernel made a CPU function for the GPU
/// emulator (moeq-emulate-gpu-kernels) with its packed entry, as bitcode.
FailureOr<std::vector<EmulationKernel>> buildEmulationKernels(ModuleOp module);

/// Adds `void <kernel>_packed(void **args)` for every kernel (defined
/// llvm.func) of `module`: loads argument i from *args[i] and calls the
/// kernel, the calling convention of cuLaunchKernel's kernelParams and of
/// the emulator's launch.
void addPackedKernelWrappers(ModuleOp module);

/// Writes all PTX as one text stream, each kernel preceded by a
/// `//--- <name>.ptx` line (the format of lit's split-file).
LogicalResult exportPTX(ModuleOp module, raw_ostream &os);

/// The deployment manifest of a compiled module (see docs/manifest.md).
/// `scopeFiles` maps archive scopes to the file names the manifest uses and
/// `ptxDir` is where the kernels' .ptx files live, relative to the manifest.
FailureOr<llvm::json::Value>
buildManifest(ModuleOp module, const llvm::StringMap<std::string> &scopeFiles,
              StringRef ptxDir);

/// Copies every tensor that a `moeq.param` of `module` references in a scope
/// not listed in `skipScopes` into one safetensors file, written atomically.
LogicalResult exportReferencedParams(ModuleOp module, StringRef path,
                                     ArrayRef<StringRef> skipScopes = {});

/// Registers --export-ptx, --export-manifest and --export-weights.
/// Writes every packed weight of `module` as an F32 tensor under its
/// original checkpoint name (dequantized exactly as the kernels do), to
/// `path` atomically: an override file for PyTorch evaluations.
LogicalResult exportDequantized(ModuleOp module, StringRef path);

void registerExportTranslations();

} // namespace moeq
} // namespace mlir

#endif // MOEQ_PASSES_EXPORT_H
