//===- Passes.h - MoEQ passes and pipelines ---------------------*- C++ -*-===//
#ifndef MOEQ_PASSES_PASSES_H
#define MOEQ_PASSES_PASSES_H

#include "moeq/Dialect/MoEQ/IR/MoEQ.h"

#include "mlir/Pass/Pass.h"
#include "mlir/Pass/PassOptions.h"
#include <string>

namespace mlir {
class DialectRegistry;
class RewritePatternSet;
namespace moeq {

/// Rows of a linear on which moeq-estimate-sensitivity's priced k search
/// runs (`group-bits-rows`).
inline constexpr int64_t kDefaultGroupBitsRows = 512;

/// The allocator's candidate schemes when none are given: MxMoE's
/// weight-only candidates (docs/allocation.md).
inline constexpr const char *kDefaultCandidateSchemes =
    "w8a16pc,w4a16g128,w3a16g128,w2a16g128,w1a16g128";

} // namespace moeq
} // namespace mlir

// The choices of the pass options (PassEnums.td).
#include "moeq/Passes/PassEnums.h.inc"

namespace mlir {
namespace moeq {

#define GEN_PASS_DECL
#include "moeq/Passes/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "moeq/Passes/Passes.h.inc"

// The pipelines' options (Pipelines.td): one struct per pipeline, and
// copyPipelineOptions(pipeline options, pass options) for the passes they
// forward options to.
#define GEN_PIPELINE_OPTIONS_DECL
#include "moeq/Passes/Pipelines.h.inc"
#define GEN_PIPELINE_PASS_OPTIONS
#include "moeq/Passes/Pipelines.h.inc"

/// The lowering of moeq.unpack_codes, moeq.dequantize_codes and
/// moeq.lookup_levels (moeq-lower-dequantization).
void populateDequantizationLoweringPatterns(RewritePatternSet &patterns);

/// Patterns lowering moeq.load_tile_async and moeq.mma_tile to nvgpu,
/// memref and arith (moeq-lower-tile-ops).
void populateTileOpLoweringPatterns(RewritePatternSet &patterns);

/// moeq-assign-uniform-scheme + moeq-materialize-quantized-params: every
/// routed-expert weight quantized to one scheme and packed into `weights`.
void buildQuantizePipeline(OpPassManager &pm, const QuantizePipelineOptions &options);
/// Adds the bit assignment: one scheme for all, or sensitivity + allocation.
void buildAssignSchemesPipeline(OpPassManager &pm, const CompileGPUPipelineOptions &options);
/// Adds quantize -> decompose -> GPU kernels and launch plans -> gpu.modules
/// lowered to NVVM (what the GPU emulator and gpu-module-to-binary take).
void buildCompileToNVVMPipeline(OpPassManager &pm, const CompileGPUPipelineOptions &options);
/// gpu-module-to-binary{format=isa}: NVVM-lowered gpu.modules -> PTX.
void buildSerializeToPTXPipeline(OpPassManager &pm);
/// buildCompileToNVVMPipeline + buildSerializeToPTXPipeline.
void buildCompileGPUPipeline(OpPassManager &pm, const CompileGPUPipelineOptions &options);
/// Adds the CPU lowering (moeq -> linalg -> LLVM), for the ExecutionEngine.
void buildLowerToCPUPipeline(OpPassManager &pm);
/// gpu.modules -> LLVM dialect + NVVM ops (what gpu-module-to-binary and the
/// GPU emulator take).
void buildLowerGPUModulesToNVVMPipeline(OpPassManager &pm);
/// Registers the pipelines `moeq-compile-gpu`, `moeq-quantize` and
/// `moeq-lower-to-cpu`.
void registerPipelines();
/// Every dialect and external interface the pipelines need (upstream too).
void registerAllMoEQDependencies(DialectRegistry &registry);

} // namespace moeq
} // namespace mlir

#endif // MOEQ_PASSES_PASSES_H
