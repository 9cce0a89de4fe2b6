//===- CPURunner.h - run moeq layers on the CPU (the oracle) ----*- C++ -*-===//
//
// Lowers a module's MoE layer functions with the moeq-lower-to-cpu pipeline,
// JIT-compiles them with the MLIR ExecutionEngine and runs them with the
// parameters bound, zero-copy, from their safetensors archives.
//
//===----------------------------------------------------------------------===//
#ifndef MOEQ_PASSES_CPURUNNER_H
#define MOEQ_PASSES_CPURUNNER_H

#include "mlir/Support/LLVM.h"
#include "llvm/ADT/StringMap.h"

#include <memory>
#include <string>
#include <vector>

namespace mlir {
class ExecutionEngine;
class MLIRContext;
class ModuleOp;
namespace moeq {
class ParameterArchives;

class CPULayerRunner {
public:
  /// Lowers a clone of `module` and JIT-compiles it. Errors are emitted as
  /// diagnostics on the module's context.
  static FailureOr<std::unique_ptr<CPULayerRunner>> create(ModuleOp module);
  ~CPULayerRunner();

  /// Runs layer function `name` on `tokens x hidden` f32 activations and
  /// returns the `tokens x hidden` output.
  FailureOr<std::vector<float>> run(StringRef name, ArrayRef<float> input,
                                    int64_t tokens);

  /// Hidden size of layer `name`, or -1 if there is no such layer.
  int64_t getHiddenSize(StringRef name) const;

  struct Argument;
  struct Layer;

private:
  CPULayerRunner();
  /// The memory of parameter `arg`: the archive mapping when it is stored as
  /// compiled, else a decoded f32 copy appended to `decoded`.
  FailureOr<void *> bindParameter(const Argument &arg,
                                  std::vector<std::vector<float>> &decoded);
  std::unique_ptr<ExecutionEngine> engine;
  std::unique_ptr<ParameterArchives> archives;
  llvm::StringMap<std::unique_ptr<Layer>> layers;
  MLIRContext *context = nullptr;
};

} // namespace moeq
} // namespace mlir

#endif // MOEQ_PASSES_CPURUNNER_H
