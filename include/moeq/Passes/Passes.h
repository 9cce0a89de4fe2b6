//===- Passes.h - MoEQ passes and pipelines ---------------------*- C++ -*-===//
#ifndef MOEQ_PASSES_PASSES_H
#define MOEQ_PASSES_PASSES_H

#include "mlir/Pass/Pass.h"
#include <string>

namespace mlir {
class DialectRegistry;
namespace moeq {

#define GEN_PASS_DECL
#include "moeq/Passes/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "moeq/Passes/Passes.h.inc"

/// Options of the whole-model GPU compile pipeline (`moeq-compile-gpu`).
struct CompileOptions {
  unsigned weightBits = 4;
  int64_t groupSize = 128;
  bool symmetric = false;
  bool includeShared = false;
  std::string method = "rtn"; ///< rtn, gptq or agq
  std::string statsPath;      ///< calibration statistics (GPTQ/AGQ Hessians)
  bool actOrder = false;
  bool mseClip = false;
  std::string chip = "sm_80";
  std::string weightsOutput;
};

/// Adds import -> quantize -> decompose -> GPU kernels -> gpu.binary (PTX).
void buildCompileGPUPipeline(OpPassManager &pm, const CompileOptions &options);
/// Adds the CPU lowering (moeq -> linalg -> LLVM), for the ExecutionEngine.
void buildLowerToCPUPipeline(OpPassManager &pm);
/// Registers the pipelines as `moeq-compile-gpu` and `moeq-lower-to-cpu`.
void registerPipelines();
/// Every dialect and external interface the pipelines need (upstream too).
void registerAllMoEQDependencies(DialectRegistry &registry);

} // namespace moeq
} // namespace mlir

#endif // MOEQ_PASSES_PASSES_H
