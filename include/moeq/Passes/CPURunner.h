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

/// What a layer computed on the way, for calibration statistics: routing
/// and the inputs of the down projections (see moeq-convert-to-linalg's
/// expose-trace option). Row-major; `rows x cols` each.
struct LayerTrace {
  int64_t tokens = 0, topK = 0;
  std::vector<int32_t> routingIndices;   ///< tokens x topK expert ids
  std::vector<float> routingWeights;     ///< tokens x topK combine weights
  std::vector<int32_t> positions;        ///< sorted row -> slot t*topK+j
  std::vector<int32_t> offsets;          ///< experts + 1 row offsets
  std::vector<float> expertActivations;  ///< sorted rows x intermediate
  int64_t intermediate = 0;
  std::vector<float> sharedActivations;  ///< tokens x shared intermediate
  int64_t sharedIntermediate = 0;
  std::vector<float> sharedGateLogits;   ///< tokens (empty if ungated)
};

class CPULayerRunner {
public:
  /// Lowers a clone of `module` and JIT-compiles it; with `exposeTrace` the
  /// layers also report a LayerTrace. Errors are emitted as diagnostics on
  /// the module's context.
  static FailureOr<std::unique_ptr<CPULayerRunner>> create(ModuleOp module,
                                                           bool exposeTrace = false);
  ~CPULayerRunner();

  /// Runs layer function `name` on `tokens x hidden` f32 activations and
  /// returns the `tokens x hidden` output; fills `trace` when given (the
  /// runner must have been created with exposeTrace).
  FailureOr<std::vector<float>> run(StringRef name, ArrayRef<float> input,
                                    int64_t tokens, LayerTrace *trace = nullptr);

  /// Drops the parameter pages the layers have read from the resident set
  /// (ParameterArchives::releasePages): call between layers to keep memory
  /// at one layer's weights.
  void releaseParameterPages() const;

  /// Names of the layer functions, sorted.
  std::vector<std::string> getLayerNames() const;

  /// Hidden size of layer `name`, or -1 if there is no such layer.
  int64_t getHiddenSize(StringRef name) const;

  struct Argument;
  struct Layer;

private:
  CPULayerRunner();
  /// The memory of parameter `arg`: the archive mapping when it is stored as
  /// compiled, else a decoded f32 copy or gathered selection, which
  /// `keepAlive` holds.
  FailureOr<void *> bindParameter(const Argument &arg,
                                  std::vector<std::shared_ptr<const void>> &keepAlive);
  std::unique_ptr<ExecutionEngine> engine;
  std::unique_ptr<ParameterArchives> archives;
  llvm::StringMap<std::unique_ptr<Layer>> layers;
  MLIRContext *context = nullptr;
};

} // namespace moeq
} // namespace mlir

#endif // MOEQ_PASSES_CPURUNNER_H
