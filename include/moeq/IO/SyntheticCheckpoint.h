//===- SyntheticCheckpoint.h - deterministic test checkpoints --*- C++ -*-===//
//
// Writes small but structurally complete Hugging Face checkpoints with
// random weights, so every stage of the compiler can be tested without
// downloading a model. The output depends only on the options: the same
// options give the same bytes on every run (own PRNG and normal sampler, no
// <random> distributions, whose output is implementation-defined).
//
//===----------------------------------------------------------------------===//

#ifndef MOEQ_IO_SYNTHETICCHECKPOINT_H
#define MOEQ_IO_SYNTHETICCHECKPOINT_H

#include "moeq/IO/SafeTensors.h"

#include <string>
#include <vector>

namespace mlir::moeq::io {

struct SyntheticMixtralOptions {
  int64_t layers = 2;
  int64_t hidden = 128;
  int64_t intermediate = 256;
  int64_t experts = 4;
  int64_t topK = 2;
  int64_t vocab = 256;
  int64_t heads = 4;
  int64_t kvHeads = 2;
  /// BF16, F16 or F32.
  DType dtype = DType::BF16;
  uint64_t seed = 0;
  /// Number of safetensors shards; >1 also writes
  /// model.safetensors.index.json.
  int64_t shards = 1;
  /// Fault injection for tests of the consumers: if non-empty, element
  /// \c nanIndex (row-major flat index) of the tensor with this name is
  /// written as a quiet NaN. Every other byte of the checkpoint is the same
  /// as without it.
  std::string nanTensor;
  int64_t nanIndex = 0;
};

/// Checks the options for consistency (positive sizes, top-k <= experts,
/// hidden divisible by heads, heads by kv-heads, supported dtype, an
/// existing nan-tensor with nan-index in range, ...).
llvm::Error validateOptions(const SyntheticMixtralOptions &Opts);

/// Name and shape of one tensor of the synthetic checkpoint.
struct SyntheticTensorSpec {
  std::string name;
  std::vector<int64_t> shape;
};

/// The tensors writeSyntheticMixtral produces (the full Hugging Face Mixtral
/// set), sorted by name.
std::vector<SyntheticTensorSpec>
syntheticMixtralTensors(const SyntheticMixtralOptions &Opts);

/// The config.json text writeSyntheticMixtral produces.
std::string syntheticMixtralConfig(const SyntheticMixtralOptions &Opts);

/// Writes config.json and model.safetensors (or N shards plus the index) to
/// \p Dir atomically: everything is built in a sibling temporary directory
/// that replaces \p Dir only when complete. An existing \p Dir is replaced
/// only if it holds nothing but checkpoint files, so a mistyped -o cannot
/// wipe unrelated data.
llvm::Error writeSyntheticMixtral(llvm::StringRef Dir,
                                  const SyntheticMixtralOptions &Opts);

} // namespace mlir::moeq::io

#endif // MOEQ_IO_SYNTHETICCHECKPOINT_H
