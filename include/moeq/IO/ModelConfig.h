//===- ModelConfig.h - Hugging Face config.json for MoE models -*- C++ -*-===//
//
// Reads the parts of a Hugging Face `config.json` that describe the MoE
// structure into one family-independent struct. Each model family has its
// own key names and defaults; the family table in ModelConfig.cpp maps
// "model_type" to a parser, so adding a family is one function plus one
// table row.
//
//===----------------------------------------------------------------------===//

#ifndef MOEQ_IO_MODELCONFIG_H
#define MOEQ_IO_MODELCONFIG_H

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <string>
#include <vector>

namespace mlir::moeq::io {

struct MoEModelConfig {
  /// The "model_type" key, e.g. "mixtral".
  std::string modelType;
  /// The "architectures" list, e.g. {"MixtralForCausalLM"} (may be empty).
  std::vector<std::string> architectures;

  int64_t hiddenSize = 0;
  int64_t numLayers = 0;
  int64_t vocabSize = 0;
  int64_t numAttentionHeads = 0;
  int64_t numKeyValueHeads = 0;
  /// Per-head dimension ("head_dim", else hidden / heads).
  int64_t headDim = 0;

  /// Routed experts per MoE layer.
  int64_t numExperts = 0;
  /// Experts selected per token.
  int64_t topK = 0;
  /// Intermediate size of one routed expert.
  int64_t moeIntermediateSize = 0;
  /// Intermediate size of a dense MLP layer (equal to moeIntermediateSize
  /// for families without dense layers).
  int64_t intermediateSize = 0;
  /// Shared (always-on) experts and their total intermediate size; 0 if the
  /// family has none.
  int64_t numSharedExperts = 0;
  int64_t sharedExpertIntermediateSize = 0;
  /// The first `firstDenseLayers` layers use a dense MLP instead of MoE.
  int64_t firstDenseLayers = 0;
  /// Whether the selected top-k gate weights are renormalised to sum to 1.
  bool normTopkProb = false;
  /// Router scoring function: "softmax" or "sigmoid".
  std::string scoringFunc = "softmax";
  /// Multiplier applied to the routed experts' output.
  double routedScalingFactor = 1.0;

  double rmsNormEps = 0.0;
  double ropeTheta = 10000.0;
  int64_t maxPositionEmbeddings = 0;
  std::string hiddenAct;
  /// "torch_dtype" (or the newer "dtype"), e.g. "bfloat16"; empty if absent.
  std::string torchDtype;
  bool tieWordEmbeddings = false;

  /// True if layer \p Layer has an MoE block (as opposed to a dense MLP).
  bool isMoELayer(int64_t Layer) const {
    return Layer >= firstDenseLayers && Layer < numLayers;
  }
};

/// The model_type values parseModelConfig understands.
std::vector<llvm::StringRef> supportedModelTypes();

/// Parses config.json text. \p FileName only names the source in errors,
/// which look like "config.json: missing integer key 'num_local_experts'".
llvm::Expected<MoEModelConfig> parseModelConfig(llvm::StringRef JSONText,
                                                llvm::StringRef FileName);

/// Reads \p Path, which is either a config.json file or a model directory
/// containing one.
llvm::Expected<MoEModelConfig> loadModelConfig(llvm::StringRef Path);

} // namespace mlir::moeq::io

#endif // MOEQ_IO_MODELCONFIG_H
