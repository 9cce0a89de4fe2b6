//===- Statistics.h - calibration statistics of MoE layers ------*- C++ -*-===//
//
// Accumulates, per MoE layer, the statistics of docs/calibration-stats.md
// (expert token counts, affinity sums, plain and affinity-weighted Gram
// matrices of expert inputs) from the block inputs and the routing the
// compiler's CPU oracle computed, and writes them as safetensors. IR-free;
// the Gram updates are BLAS dsyrk calls in float64.
//
//===----------------------------------------------------------------------===//
#ifndef MOEQ_CALIBRATION_STATISTICS_H
#define MOEQ_CALIBRATION_STATISTICS_H

#include "llvm/ADT/ArrayRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace mlir::moeq::io {
class SafeTensorsWriter;
} // namespace mlir::moeq::io

namespace mlir::moeq::calib {

struct LayerShape {
  int64_t hidden = 0, intermediate = 0, experts = 0;
  int64_t sharedIntermediate = 0; ///< 0: no shared expert
  bool sharedGated = false;       ///< shared expert scaled by a sigmoid gate
};

/// One batch of `tokens` tokens through one MoE layer (row-major buffers).
struct LayerBatch {
  int64_t tokens = 0, topK = 0;
  llvm::ArrayRef<float> input;              ///< tokens x hidden block inputs
  llvm::ArrayRef<int32_t> routingIndices;   ///< tokens x topK
  llvm::ArrayRef<float> routingWeights;     ///< tokens x topK combine weights
  llvm::ArrayRef<int32_t> positions;        ///< sorted row -> slot t*topK+j
  llvm::ArrayRef<int32_t> offsets;          ///< experts + 1
  llvm::ArrayRef<float> expertActivations;  ///< sorted rows x intermediate
  llvm::ArrayRef<float> sharedActivations;  ///< tokens x sharedIntermediate
  llvm::ArrayRef<float> sharedGateLogits;   ///< tokens (gated shared expert)
};

/// Running sums of one MoE layer.
class LayerStatistics {
public:
  explicit LayerStatistics(const LayerShape &shape);

  /// Adds a batch; fails on inconsistent sizes or routing.
  llvm::Error add(const LayerBatch &batch);

  const LayerShape &shape() const { return Shape; }
  int64_t tokens() const { return Tokens; }
  llvm::ArrayRef<int64_t> expertCounts() const { return Counts; }
  /// Symmetric `hidden x hidden` Gram matrix of expert `e`'s inputs.
  std::vector<double> expertGramIn(int64_t e, bool weighted) const;

  /// Name (without the `layers.<L>.` prefix), element type and shape of
  /// every tensor a layer of `shape` writes.
  struct TensorSpec {
    std::string name;
    bool isInteger; ///< I64 (else F64)
    std::vector<int64_t> shape;
  };
  static std::vector<TensorSpec> tensorSpecs(const LayerShape &shape);

  /// Little-endian bytes of tensor `name` (a TensorSpec name).
  std::vector<uint8_t> tensorBytes(llvm::StringRef name) const;

private:
  LayerShape Shape;
  int64_t Tokens = 0;
  std::vector<int64_t> Counts;
  std::vector<double> AffinitySum;
  // Upper triangles (BLAS dsyrk) of the Gram sums.
  std::vector<double> GramAll;
  std::vector<std::vector<double>> GramIn, GramInWeighted, GramDown, GramDownWeighted;
  std::vector<double> SharedGramDown, SharedGramInWeighted, SharedGramDownWeighted;
};

/// Metadata keys and values of a statistics file (docs/calibration-stats.md).
using Metadata = std::map<std::string, std::string>;

/// Writes `layers` (MoE layer index -> statistics) to `path` atomically.
llvm::Error writeStatistics(llvm::StringRef path, const Metadata &metadata,
                            const std::map<int64_t, LayerStatistics> &layers);

/// Computes the statistics of one layer (e.g. by running it on its inputs).
using LayerComputation = std::function<llvm::Expected<LayerStatistics>(int64_t layer)>;

/// Writes the statistics of `layers` to `path` atomically, computing each
/// layer only when the writer reaches it and dropping it afterwards, so
/// that memory holds one layer's statistics at a time.
llvm::Error writeStatisticsStreaming(llvm::StringRef path, const Metadata &metadata,
                                     const LayerShape &shape,
                                     llvm::ArrayRef<int64_t> layers,
                                     LayerComputation compute);

} // namespace mlir::moeq::calib

#endif // MOEQ_CALIBRATION_STATISTICS_H
