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

#include "moeq/Dialect/MoEQ/IR/MoEQEnums.h.inc"

// The attributes first: the dialect's helpers of its discardable attributes
// (`discardableAttrs`) return them.
#define GET_ATTRDEF_CLASSES
#include "moeq/Dialect/MoEQ/IR/MoEQAttrs.h.inc"

#include "moeq/Dialect/MoEQ/IR/MoEQOpsDialect.h.inc"

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
// The names of the dialect's discardable attributes, from its ODS
// declaration (`discardableAttrs` in MoEQBase.td, where each one's type and
// place are described; MoEQDialect::verifyOperationAttribute checks them).
#define MOEQ_ATTR_NAME(Helper) MoEQDialect::Helper::getNameStr()
inline constexpr llvm::StringLiteral kArchivesAttrName = MOEQ_ATTR_NAME(ArchivesAttrHelper);
inline constexpr llvm::StringLiteral kPassthroughAttrName =
    MOEQ_ATTR_NAME(PassthroughAttrHelper);
inline constexpr llvm::StringLiteral kLaunchPlanAttrName = MOEQ_ATTR_NAME(LaunchPlanAttrHelper);
inline constexpr llvm::StringLiteral kTargetAttrName = MOEQ_ATTR_NAME(TargetAttrHelper);
inline constexpr llvm::StringLiteral kSensitivityAttrName =
    MOEQ_ATTR_NAME(SensitivityAttrHelper);
inline constexpr llvm::StringLiteral kAllocationAttrName = MOEQ_ATTR_NAME(AllocationAttrHelper);
inline constexpr llvm::StringLiteral kDeltaSourcesAttrName =
    MOEQ_ATTR_NAME(DeltaSourcesAttrHelper);
inline constexpr llvm::StringLiteral kModelAllocationAttrName =
    MOEQ_ATTR_NAME(ModelAllocationAttrHelper);
inline constexpr llvm::StringLiteral kLayerAttrName = MOEQ_ATTR_NAME(LayerAttrHelper);
inline constexpr llvm::StringLiteral kModelAttrName = MOEQ_ATTR_NAME(ModelAttrHelper);
inline constexpr llvm::StringLiteral kDeltaAttrName = MOEQ_ATTR_NAME(DeltaAttrHelper);
inline constexpr llvm::StringLiteral kRowsPerExpertAttrName =
    MOEQ_ATTR_NAME(RowsPerExpertAttrHelper);
inline constexpr llvm::StringLiteral kBufferNameAttrName = MOEQ_ATTR_NAME(NameAttrHelper);
inline constexpr llvm::StringLiteral kPersistentAttrName = MOEQ_ATTR_NAME(PersistentAttrHelper);
inline constexpr llvm::StringLiteral kHessianAttrName = MOEQ_ATTR_NAME(HessianAttrHelper);
inline constexpr llvm::StringLiteral kPipelineStagesAttrName =
    MOEQ_ATTR_NAME(PipelineStagesAttrHelper);
#undef MOEQ_ATTR_NAME
/// Argument attributes of the CPU lowering's functions
/// (MoEQDialect::verifyRegionArgAttribute): the archive tensor, the output,
/// or the trace an argument binds to.
inline constexpr llvm::StringLiteral kParamArgAttrName = "moeq.param";
inline constexpr llvm::StringLiteral kOutputArgAttrName = "moeq.output";
inline constexpr llvm::StringLiteral kTraceArgAttrName = "moeq.trace";

} // namespace mlir::moeq

#endif // MOEQ_DIALECT_MOEQ_IR_MOEQ_H
