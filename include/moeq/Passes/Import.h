//===- Import.h - Hugging Face checkpoint -> moeq IR ------------*- C++ -*-===//
#ifndef MOEQ_PASSES_IMPORT_H
#define MOEQ_PASSES_IMPORT_H

#include "mlir/IR/OwningOpRef.h"
#include "mlir/Support/LLVM.h"

namespace mlir {
class MLIRContext;
class ModuleOp;
namespace moeq {

/// Imports the MoE layers of the Hugging Face checkpoint in `dir`
/// (config.json + safetensors, sharded or not) as one `func.func
/// @moe_layer_<i>` per MoE layer, every weight a `moeq.param` in scope
/// "model". Errors name the file, key or tensor and are emitted to the
/// context's diagnostic handler; returns null on failure.
OwningOpRef<ModuleOp> importHFCheckpoint(StringRef dir, MLIRContext *context);


} // namespace moeq
} // namespace mlir

#endif // MOEQ_PASSES_IMPORT_H
