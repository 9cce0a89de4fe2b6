//===- SyntheticCheckpoint.h - deterministic test checkpoints --*- C++ -*-===//
//
// Writes small but structurally complete Hugging Face checkpoints of the
// common MoE families (Mixtral, PhiMoE, Qwen2/3-MoE, DeepSeek-V2/V3, OLMoE)
// with random weights, so every stage of the compiler can be tested without
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

/// Options of the synthetic checkpoint. (Named after the first family; the
/// `family` field selects any of them.)
struct SyntheticMixtralOptions {
  /// The Hugging Face model_type to imitate, with its tensor names and
  /// config.json keys: mixtral, phimoe, qwen2_moe, qwen3_moe, deepseek_v2,
  /// deepseek_v3 or olmoe. See syntheticFamilies().
  std::string family = "mixtral";
  int64_t layers = 2;
  int64_t hidden = 128;
  /// Intermediate size of one routed expert.
  int64_t intermediate = 256;
  int64_t experts = 4;
  int64_t topK = 2;
  int64_t vocab = 256;
  int64_t heads = 4;
  /// Key/value heads; ignored by the DeepSeek families (MLA, whose
  /// config.json has num_key_value_heads = heads).
  int64_t kvHeads = 2;
  /// Total intermediate size of the shared expert(s) (qwen2_moe: the
  /// shared expert; deepseek: n_shared_experts = sharedIntermediate /
  /// intermediate, so it must be a multiple of it). 0 means 2 x
  /// intermediate for those families; must be 0 for the others.
  int64_t sharedIntermediate = 0;
  /// Leading layers with a dense MLP (`mlp.{gate,up,down}_proj.weight`):
  /// deepseek first_k_dense_replace, qwen2_moe / qwen3_moe mlp_only_layers
  /// = [0, N). Must be 0 for the other families.
  int64_t denseLayers = 0;
  /// Intermediate size of the dense MLP layers ("intermediate_size" of the
  /// qwen and deepseek families); 0 means 3 x intermediate.
  int64_t denseIntermediate = 0;
  /// DeepSeek group-limited routing: n_group and topk_group. deepseek_v2
  /// uses "group_limited_greedy" if nGroup > 1, else "greedy"; deepseek_v3
  /// always "noaux_tc". Must be 1 for the other families.
  int64_t nGroup = 1;
  int64_t topkGroup = 1;
  /// deepseek_v3 only: store the routed and shared experts' weights as
  /// F8_E4M3 with F32 "<name>_scale_inv" scales per 128 x 128 block
  /// (amax / 448, as DeepSeek-V3's FP8 checkpoints), and add the fp8
  /// quantization_config to config.json.
  bool fp8 = false;
  /// Write each layer's routed experts as two stacked tensors, as
  /// transformers v5 exports do: `mlp.experts.gate_up_proj` [E, 2*I, H]
  /// (each expert's gate rows, then its up rows) and
  /// `mlp.experts.down_proj` [E, H, I]. The values are the same as those of
  /// the per-expert tensors without this option. Not for mixtral / phimoe.
  bool stackedExperts = false;
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

/// The supported values of SyntheticMixtralOptions::family.
std::vector<llvm::StringRef> syntheticFamilies();

/// Checks the options for consistency (known family, positive sizes, top-k
/// <= experts, hidden divisible by heads, heads by kv-heads, supported
/// dtype, family-specific options only where they apply, an existing
/// nan-tensor with nan-index in range, ...).
llvm::Error validateOptions(const SyntheticMixtralOptions &Opts);

/// Name, shape and element type of one tensor of the synthetic checkpoint.
struct SyntheticTensorSpec {
  std::string name;
  std::vector<int64_t> shape;
  /// Options::dtype, except for FP8 weights (F8_E4M3), their scales and
  /// DeepSeek-V3's e_score_correction_bias (F32).
  DType dtype = DType::BF16;
};

/// The tensors writeSyntheticMixtral produces (the full Hugging Face set of
/// the family), sorted by name.
std::vector<SyntheticTensorSpec>
syntheticMixtralTensors(const SyntheticMixtralOptions &Opts);

/// The config.json text writeSyntheticMixtral produces: the family's keys as
/// its transformers configuration class has them, sorted.
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
