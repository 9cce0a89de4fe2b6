//===- Statistics.h - calibration statistics of MoE layers ------*- C++ -*-===//
//
// Accumulates, per MoE layer, the statistics of docs/calibration-stats.md
// (expert token counts, affinity sums, plain and affinity-weighted Gram
// matrices of expert inputs) from the block inputs and the routing the
// compiler's CPU oracle computed, and writes them as safetensors: format
// version 2 (a directory, one file per layer, F32 packed triangles) or the
// older version 1 (one file, dense F64). IR-free; the Gram updates are BLAS
// dsyrk calls in float64 whatever the stored type (see Statistics.cpp).
//
//===----------------------------------------------------------------------===//
#ifndef MOEQ_CALIBRATION_STATISTICS_H
#define MOEQ_CALIBRATION_STATISTICS_H

#include "moeq/Calibration/StatisticsFiles.h"
#include "moeq/IO/SafeTensors.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace llvm {
class raw_ostream;
} // namespace llvm

namespace mlir::moeq::io {
class SafeTensorsWriter;
} // namespace mlir::moeq::io

namespace mlir::moeq::calib {

struct LayerShape {
  int64_t hidden = 0, intermediate = 0, experts = 0;
  int64_t sharedIntermediate = 0; ///< 0: no shared expert
  bool sharedGated = false;       ///< shared expert scaled by a sigmoid gate
  /// The routing weight c scales the expert's input (Llama 4): the expert
  /// sees c * x and its output is summed with weight 1, so the Gram
  /// matrices and samples are of c * x and the "weighted" ones weight by 1.
  bool weightsOnInputs = false;
  /// Sample rows kept per expert for the measured (MxMoE) sensitivity:
  /// routed row i of an expert (in token order) is kept when
  /// i % sampleStride == 0 and i / sampleStride < samplesPerExpert.
  int64_t samplesPerExpert = 0;
  int64_t sampleStride = 1;
  /// The shared expert's samples (as many as per routed expert), of every
  /// token: token i of the layer is kept when i % sharedSampleStride == 0
  /// (sampleStride(tokens, 1, 1, samplesPerExpert)).
  int64_t sharedSampleStride = 1;
};

/// The stride that spreads `samplesPerExpert` samples over the routed rows
/// an expert gets on average from `tokens` tokens: max(1, floor(tokens *
/// topK / (experts * samplesPerExpert))). Both producers use it.
int64_t sampleStride(int64_t tokens, int64_t topK, int64_t experts, int64_t samplesPerExpert);

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

/// The four Gram matrices of one routed expert (full, symmetric, row-major).
struct ExpertGrams {
  std::vector<double> in, inWeighted;     ///< hidden x hidden
  std::vector<double> down, downWeighted; ///< intermediate x intermediate
};

/// Statistics of one MoE layer, in two passes so that memory holds the
/// layer-wide sums plus one expert's Gram matrices, never every expert's:
/// add() accumulates what spans the layer (counts, affinities, `gram_all`,
/// the shared expert) and spills every routed row (its block input and its
/// down-projection input, f32) to an unlinked scratch file; expertGrams()
/// then reads one expert's rows back and forms its four Gram matrices.
/// A layer's spill is tokens * topK * (hidden + intermediate) * 4 bytes.
class LayerStatistics {
public:
  /// Spills into `scratchDir` (empty: the system temporary directory).
  explicit LayerStatistics(const LayerShape &shape, std::string scratchDir = "");
  LayerStatistics(LayerStatistics &&);
  LayerStatistics &operator=(LayerStatistics &&);
  ~LayerStatistics();

  /// Pass 1: adds a batch; fails on inconsistent sizes or routing, or when
  /// the scratch file cannot be written.
  llvm::Error add(const LayerBatch &batch);

  const LayerShape &shape() const { return Shape; }
  int64_t tokens() const { return Tokens; }
  llvm::ArrayRef<int64_t> expertCounts() const { return Counts; }

  /// Pass 2: the Gram matrices of expert `e` from its spilled rows, read in
  /// chunks (float64 sums, BLAS dsyrk).
  llvm::Expected<ExpertGrams> expertGrams(int64_t e) const;

  /// Name (without the `layers.<L>.` prefix), element type and shape of
  /// every tensor a layer of `shape` writes in format `version`: version 1
  /// dense F64 matrices and samples; version 2 F32 matrices as packed upper
  /// triangles [n (n + 1) / 2] and F32 samples (counts I64, affinities and
  /// sample weights F64 in both).
  struct TensorSpec {
    std::string name;
    io::DType dtype;
    std::vector<int64_t> shape;
  };
  static std::vector<TensorSpec> tensorSpecs(const LayerShape &shape, int version = 1);

  /// Writes the little-endian bytes of tensor `name` (a TensorSpec name) in
  /// format `version`. An expert's matrices are computed on the first
  /// request and kept until another expert's are asked for (the writer asks
  /// expert by expert).
  llvm::Error writeTensor(llvm::StringRef name, llvm::raw_ostream &os, int version = 1);

private:
  llvm::Error writeExpertTensor(llvm::StringRef name, llvm::raw_ostream &os, int version);
  class RowSpill;
  LayerShape Shape;
  std::string ScratchDir;
  int64_t Tokens = 0;
  std::vector<int64_t> Counts;
  std::vector<double> AffinitySum;
  // Upper triangles (BLAS dsyrk) of the layer-wide Gram sums.
  std::vector<double> GramAll;
  std::vector<double> SharedGramDown, SharedGramInWeighted, SharedGramDownWeighted;
  /// Per expert: the combine weight of every spilled row, in spill order.
  std::vector<std::vector<double>> RowWeights;
  /// Per expert: sampled block inputs (samplesPerExpert x hidden, zero
  /// rows unused) and their combine weights (0 for unused rows).
  std::vector<std::vector<double>> Samples, SampleWeights;
  /// The shared expert's sampled block inputs and their combine weights
  /// (the sigmoid gate, or 1), laid out as an expert's.
  std::vector<double> SharedSamples, SharedSampleWeights;
  std::unique_ptr<RowSpill> Spill;
  int64_t CachedExpert = -1;
  ExpertGrams Cached;
};

/// Format version 1: writes `layers` (MoE layer index -> statistics) to
/// the file `path` atomically.
llvm::Error writeStatistics(llvm::StringRef path, const Metadata &metadata,
                            std::map<int64_t, LayerStatistics> &layers);

/// Computes the statistics of one layer (pass 1, e.g. by running it on its
/// inputs).
using LayerComputation = std::function<llvm::Expected<LayerStatistics>(int64_t layer)>;

/// Format version 1: writes the statistics of `layers` to the file `path`
/// atomically, computing each
/// layer only when the writer reaches it and dropping it afterwards, and
/// each expert's matrices only when written, so that memory holds one
/// layer's layer-wide sums and one expert's matrices at a time.
llvm::Error writeStatisticsStreaming(llvm::StringRef path, const Metadata &metadata,
                                     const LayerShape &shape,
                                     llvm::ArrayRef<int64_t> layers,
                                     LayerComputation compute);

/// Format version 2: writes the statistics of `layers` into the directory
/// `dir` (created, its index `index` written or checked: see
/// prepareStatisticsDirectory), one file per layer, each computed when its
/// turn comes and written atomically before the next layer is computed:
/// memory holds one layer's layer-wide sums and one expert's matrices at a
/// time. Every layer file's metadata is `index` + `layerMetadata` + `layer`.
llvm::Error writeStatisticsDirectory(llvm::StringRef dir, const Metadata &index,
                                     const Metadata &layerMetadata, const LayerShape &shape,
                                     llvm::ArrayRef<int64_t> layers, LayerComputation compute);

/// Converts the version 1 statistics `v1` into the version 2 directory
/// `dir` (index `index`), layer by layer, for `layers` (each must be in the
/// file): matrices rounded to F32 packed triangles, samples to F32, other
/// tensors (counts, affinities, Fisher information) copied.
llvm::Error convertToDirectory(StatisticsReader &v1, llvm::StringRef dir, const Metadata &index,
                               llvm::ArrayRef<int64_t> layers);

} // namespace mlir::moeq::calib

#endif // MOEQ_CALIBRATION_STATISTICS_H
