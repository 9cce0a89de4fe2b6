//===- MoEQ.h - MoEQ dialect ------------------------------------*- C++ -*-===//
//
// The MoEQ dialect: Mixture-of-Experts blocks, their decomposition, and
// packed quantized weights. Include this header only from .cpp files: it
// pulls in the MLIR IR headers.
//
//===----------------------------------------------------------------------===//
#ifndef MOEQ_DIALECT_MOEQ_IR_MOEQ_H
#define MOEQ_DIALECT_MOEQ_IR_MOEQ_H

#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Dialect.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/Interfaces/InferTypeOpInterface.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#include "moeq/Dialect/MoEQ/IR/MoEQOpsDialect.h.inc"
#include "moeq/Dialect/MoEQ/IR/MoEQEnums.h.inc"

#define GET_ATTRDEF_CLASSES
#include "moeq/Dialect/MoEQ/IR/MoEQAttrs.h.inc"

#define GET_TYPEDEF_CLASSES
#include "moeq/Dialect/MoEQ/IR/MoEQOpsTypes.h.inc"

#define GET_OP_CLASSES
#include "moeq/Dialect/MoEQ/IR/MoEQOps.h.inc"

namespace mlir::moeq {

/// Logical (rows x cols) shape of a weight operand: a ranked tensor or a
/// `!moeq.qweight`.
ArrayRef<int64_t> getWeightShape(Type weightType);

/// A memref in GPU global memory (`#gpu.address_space<global>`): a device
/// buffer or parameter of a launch plan.
bool isGlobalMemRef(Type type);
/// `!llvm.ptr<1>`: the bare device pointer generated kernels take.
bool isDevicePointer(Type type);

/// The archive scope of the imported checkpoint (moeq-translate
/// --import-hf): its tensors keep their Hugging Face names.
inline constexpr llvm::StringLiteral kCheckpointScope = "model";
/// Name of the module attribute mapping archive scopes to files/directories.
inline constexpr llvm::StringLiteral kArchivesAttrName = "moeq.archives";
/// Name of the module attribute listing, as #moeq.param references, the
/// tensors the compiler carries through unchanged (attention, norms, dense
/// layers, embeddings).
inline constexpr llvm::StringLiteral kPassthroughAttrName = "moeq.passthrough";
/// On a launch-plan function (`@<layer>_launch`): the layer function it
/// runs (moeq-convert-to-launch-plan).
inline constexpr llvm::StringLiteral kLaunchPlanAttrName = "moeq.launch_plan";
/// Name of the module attribute holding the GPU target.
inline constexpr llvm::StringLiteral kTargetAttrName = "moeq.target";
/// On moeq.moe: losses per expert weight and candidate scheme, written by
/// moeq-estimate-sensitivity and consumed by moeq-allocate-bits.
inline constexpr llvm::StringLiteral kSensitivityAttrName = "moeq.sensitivity";
/// On the layer function: what moeq-allocate-bits decided (objective,
/// budget, gap); the manifest carries it as the layer's "allocation".
inline constexpr llvm::StringLiteral kAllocationAttrName = "moeq.allocation";
/// On the grouped matmul of D^2-MoE's `a` factors (moeq-decompose-moe): per
/// expert, the checkpoint tensor its base + a . b replaces (the
/// delta_weight's `source`), so that the manifest names it for exports; an
/// array of #moeq.param, a unit attribute where an expert has none.
inline constexpr llvm::StringLiteral kDeltaSourcesAttrName = "moeq.delta_sources";
/// On the module, with granularity=layer (one allocation over all layers):
/// the model-wide summary (the manifest's "allocation").
inline constexpr llvm::StringLiteral kModelAllocationAttrName = "moeq.model_allocation";

} // namespace mlir::moeq

#endif // MOEQ_DIALECT_MOEQ_IR_MOEQ_H
