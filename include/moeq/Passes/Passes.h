//===- Passes.h - MoEQ passes and pipelines ---------------------*- C++ -*-===//
#ifndef MOEQ_PASSES_PASSES_H
#define MOEQ_PASSES_PASSES_H

#include "mlir/Pass/Pass.h"
#include <string>

namespace mlir {
class DialectRegistry;
namespace moeq {

/// Rows of a linear on which moeq-estimate-sensitivity's priced k search
/// runs (`group-bits-rows`).
inline constexpr int64_t kDefaultGroupBitsRows = 512;

/// The allocator's candidate schemes when none are given: MxMoE's
/// weight-only candidates (docs/allocation.md).
inline constexpr const char *kDefaultCandidateSchemes =
    "w8a16pc,w4a16g128,w3a16g128,w2a16g128,w1a16g128";

/// moeq-assign-group-bits: what ranks SliM-LLM's candidate widths.
enum class GroupBitsLoss {
  Auto,    ///< Output where the statistics have samples, else Hessian
  Hessian, ///< tr((W - Q) H (W - Q)^T) with the op's Hessian
  Output,  ///< MxMoE's measured expert-output error on the samples
};
/// moeq-assign-group-bits: how many of the candidates are tried.
enum class GroupBitsSearch { Golden, Exhaustive };

#define GEN_PASS_DECL
#include "moeq/Passes/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "moeq/Passes/Passes.h.inc"

/// Options of the whole-model GPU compile pipeline (`moeq-compile-gpu`).
struct CompileOptions {
  unsigned weightBits = 4;
  unsigned actBits = 16;
  int64_t groupSize = 128;
  bool symmetric = false;
  std::string format = "int"; ///< int or lut (level tables)
  bool includeShared = false;
  std::string method = "rtn"; ///< rtn, gptq or agq
  std::string statsPath;      ///< calibration statistics (GPTQ/AGQ Hessians)
  bool actOrder = false;
  bool mseClip = false;
  bool salienceClip = false;
  std::string chip = "sm_80";
  std::string weightsOutput;
  /// > 0: mixed precision (moeq-estimate-sensitivity + moeq-allocate-bits)
  /// at this memory budget instead of one scheme for every weight.
  double avgBits = 0;
  std::string schemes = kDefaultCandidateSchemes;
  std::string granularity = "linear";
  std::string sensitivity = "auto"; ///< loss of moeq-estimate-sensitivity
  double r = 1.0;
  int64_t tokens = 512;
  std::string gpu; ///< cost-model GPU; empty = from the chip
  std::string kernelPath = "auto"; ///< auto, mma or simt
  bool persistent = true; ///< one launch per grouped matmul across its mixes
  bool progress = false; ///< per-layer lines on stderr from the long passes
  /// Threads of the quantizing passes (moeq-estimate-sensitivity,
  /// moeq-materialize-quantized-params); 0: all cores. The output does not
  /// depend on it.
  unsigned threads = 0;
  bool groupBits = false; ///< SliM-LLM group-wise widths after the assignment
  GroupBitsSearch groupBitsSearch = GroupBitsSearch::Golden;
  /// Price the widths in the sensitivity (moeq-estimate-sensitivity
  /// group-bits), so that the allocation knows what they gain.
  bool priceGroupBits = false;
  int64_t groupBitsRows = kDefaultGroupBitsRows; ///< rows its k search runs on
  /// > 0: D^2-MoE delta decompression first (moeq-delta-decompress), its
  /// f32 bases and factors written to `deltaOutput`.
  double deltaCompression = 0;
  std::string deltaMerge = "fisher";
  bool deltaWhiten = true;
  bool deltaSharedBasis = false;
  double deltaPrune = 0;
  int64_t deltaRankMultiple = 32;
  std::string deltaOutput;
};

/// Adds the bit assignment: one scheme for all, or sensitivity + allocation.
void buildAssignSchemesPipeline(OpPassManager &pm, const CompileOptions &options);
/// Adds quantize -> decompose -> GPU kernels and launch plans -> gpu.modules
/// lowered to NVVM (what the GPU emulator and gpu-module-to-binary take).
void buildCompileToNVVMPipeline(OpPassManager &pm, const CompileOptions &options);
/// gpu-module-to-binary{format=isa}: NVVM-lowered gpu.modules -> PTX.
void buildSerializeToPTXPipeline(OpPassManager &pm);
/// buildCompileToNVVMPipeline + buildSerializeToPTXPipeline.
void buildCompileGPUPipeline(OpPassManager &pm, const CompileOptions &options);
/// Adds the CPU lowering (moeq -> linalg -> LLVM), for the ExecutionEngine.
void buildLowerToCPUPipeline(OpPassManager &pm);
/// gpu.modules -> LLVM dialect + NVVM ops (what gpu-module-to-binary and the
/// GPU emulator take).
void buildLowerGPUModulesToNVVMPipeline(OpPassManager &pm);
/// Registers the pipelines as `moeq-compile-gpu` and `moeq-lower-to-cpu`.
void registerPipelines();
/// Every dialect and external interface the pipelines need (upstream too).
void registerAllMoEQDependencies(DialectRegistry &registry);

} // namespace moeq
} // namespace mlir

#endif // MOEQ_PASSES_PASSES_H
