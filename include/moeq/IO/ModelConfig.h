//===- ModelConfig.h - Hugging Face config.json for MoE models -*- C++ -*-===//
//
// Reads the parts of a Hugging Face `config.json` that describe the MoE
// structure into one family-independent struct. Each model family has its
// own key names and defaults; the family table in ModelConfig.cpp maps
// "model_type" to a parser, so adding a family is one function plus one
// table row (supportedModelTypes(); docs/semantics.md). Keys absent (or
// null) take the default of the family's transformers (4.57)
// configuration class, except the ones that define the model's shape,
// which are required.
//
//===----------------------------------------------------------------------===//

#ifndef MOEQ_IO_MODELCONFIG_H
#define MOEQ_IO_MODELCONFIG_H

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace mlir::moeq::io {

/// Where a family keeps the tensors of one MoE layer, relative to
/// "<layerPrefix><i>." (the transformers module names).
struct MoETensorNames {
  /// The decoder layers' prefix ("language_model.model.layers." in a
  /// multimodal checkpoint: Llama 4).
  std::string layerPrefix = "model.layers.";
  /// The MoE block's attribute on the decoder layer.
  std::string block = "mlp";
  /// Router weight [E, H] and the router's selection bias [E], relative to
  /// the block.
  std::string router = "gate.weight";
  std::string scoreBias = "gate.e_score_correction_bias";
  /// The router's bias [E], added to the logits (gpt-oss; when
  /// MoEModelConfig::hasRouterBias).
  std::string routerBias = "router.bias";
  /// Per-expert linears "experts.<e>.<name>.weight" (empty: the family
  /// stores its experts stacked only).
  std::string gate = "gate_proj", up = "up_proj", down = "down_proj";
  /// Stacked 3-D expert tensors, laid out as `stackedLayout` says.
  std::string stackedGateUp = "experts.gate_up_proj";
  std::string stackedDown = "experts.down_proj";
  /// Stacked expert biases (gpt-oss, when MoEModelConfig::hasExpertBiases):
  /// [E, 2I] laid out like gate_up's output columns, and [E, H].
  std::string stackedGateUpBias = "experts.gate_up_proj_bias";
  std::string stackedDownBias = "experts.down_proj_bias";
  enum class StackedLayout {
    /// gate and up rows of expert e in [E, 2I, H] (gate rows first), down
    /// [E, H, I] (transformers' Qwen/OLMoE/Granite `nn.Linear` layout).
    GateRowsFirst,
    /// Stored for `x @ W`: gate_up [E, H, 2I] with the gate columns first,
    /// down [E, I, H] (Llama 4).
    TransposedHalves,
    /// Stored for `x @ W` with gate and up columns interleaved: gate_up
    /// [E, H, 2I], gate = columns 0, 2, ..., up = 1, 3, ...; down [E, I, H]
    /// (gpt-oss).
    TransposedInterleaved,
  };
  StackedLayout stackedLayout = StackedLayout::GateRowsFirst;
  /// The shared expert's module and its gate weight [1, H].
  std::string sharedExpert = "shared_experts";
  std::string sharedExpertGate = "shared_expert_gate.weight";
};

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
  /// Per-head dimension ("head_dim", else hidden / heads). For the DeepSeek
  /// (MLA) families it is "qk_rope_head_dim", as transformers sets it; their
  /// other attention dimensions are not parsed.
  int64_t headDim = 0;

  /// The names of the MoE blocks' tensors in the checkpoint.
  MoETensorNames tensorNames;

  /// Routed experts per MoE layer.
  int64_t numExperts = 0;
  /// Experts selected per token.
  int64_t topK = 0;
  /// Intermediate size of one routed expert.
  int64_t moeIntermediateSize = 0;
  /// Intermediate size of a dense MLP layer, i.e. of the layers for which
  /// isMoELayer() is false ("intermediate_size" in every family). Equal to
  /// moeIntermediateSize for the families whose "intermediate_size" is the
  /// expert size (mixtral, phimoe, olmoe).
  int64_t intermediateSize = 0;
  /// Shared (always-on) experts and their total intermediate size; 0 if the
  /// family has none. DeepSeek: n_shared_experts experts fused into one MLP
  /// of moe_intermediate_size * n_shared_experts; qwen2_moe: one expert of
  /// shared_expert_intermediate_size. Prefer sharedIntermediateSize().
  int64_t numSharedExperts = 0;
  int64_t sharedExpertIntermediateSize = 0;
  /// True if the shared expert's output is multiplied by
  /// sigmoid(x . shared_expert_gate), a [1, hidden] weight (qwen2_moe);
  /// false if it is added as is (DeepSeek).
  bool sharedExpertGate = false;

  /// The first `firstDenseLayers` layers use a dense MLP instead of MoE
  /// (DeepSeek "first_k_dense_replace").
  int64_t firstDenseLayers = 0;
  /// DeepSeek "moe_layer_freq": past the leading dense layers, only layers
  /// with index % moeLayerFreq == 0 are MoE (1 in every released model).
  int64_t moeLayerFreq = 1;
  /// Qwen "decoder_sparse_step": only layers with (index + 1) %
  /// decoderSparseStep == 0 are MoE.
  int64_t decoderSparseStep = 1;
  /// Qwen "mlp_only_layers": indices of layers that use a dense MLP.
  std::vector<int64_t> mlpOnlyLayers;
  /// The last layer that can be MoE (ERNIE "moe_layer_end_index"); -1:
  /// every layer.
  int64_t lastMoELayer = -1;
  /// Llama 4 "moe_layers": when set, exactly these layers are MoE (the rule
  /// above does not apply).
  std::optional<std::vector<int64_t>> moeLayers;

  /// Router scoring function: "softmax", "sigmoid" (DeepSeek-V3) or
  /// "sparsemixer" (PhiMoE: top-1 and top-2 each get a softmax over the
  /// logits within routerJitterNoise-relative distance of that expert's
  /// logit, the top-1 expert masked out for the second; see
  /// transformers' modeling_phimoe.sparsemixer).
  std::string scoringFunc = "softmax";
  /// Expert selection: "greedy" (plain top-k of the scores),
  /// "group_limited_greedy" (DeepSeek-V2) or "noaux_tc" (DeepSeek-V3: top-k
  /// of score + e_score_correction_bias within the selected groups; the
  /// gate weights are the unbiased scores).
  std::string topkMethod = "greedy";
  /// How a group is scored for group-limited selection: "" (no groups),
  /// "max" (group_limited_greedy: the group's highest score) or "top2_sum"
  /// (noaux_tc: sum of the group's two highest bias-corrected scores). The
  /// experts are split into nGroup contiguous groups of numExperts / nGroup;
  /// the topkGroup best groups are kept and the rest masked out before the
  /// top-k. Both are 1 when groupScoring is "".
  std::string groupScoring;
  int64_t nGroup = 1;
  int64_t topkGroup = 1;
  /// True if the router has a per-expert selection bias
  /// ("mlp.gate.e_score_correction_bias", DeepSeek-V3 noaux_tc).
  bool hasScoreCorrectionBias = false;

  /// True if the routing weight multiplies the expert's input instead of
  /// its output (Llama 4: expert(x * w), summed unweighted).
  bool routingWeightsScaleInput = false;
  /// gpt-oss: the router has a bias (added to the logits) and every expert
  /// linear a bias.
  bool hasRouterBias = false;
  bool hasExpertBiases = false;
  /// The experts' gated activation when it is not hiddenAct: "clamped_swiglu"
  /// (gpt-oss: (clamp(up, -limit, limit) + 1) * g * sigmoid(alpha g), g =
  /// min(gate, limit), alpha = 1.702).
  std::string expertActivation;
  double swigluAlpha = 1.702, swigluLimit = 7.0;

  /// Whether the selected top-k gate weights are renormalised to sum to 1.
  bool normTopkProb = false;
  /// Multiplier applied to the routed experts' gate weights
  /// ("routed_scaling_factor"; 1 for families without one).
  double routedScalingFactor = 1.0;
  /// Whether routedScalingFactor also applies when normTopkProb is set.
  /// DeepSeek-V3: true (renormalise, then scale). DeepSeek-V2: false: the
  /// reference implementation (modeling_deepseek.py shipped with the
  /// weights) multiplies by routed_scaling_factor only when it does NOT
  /// renormalise. (transformers 4.57's native DeepseekV2 ignores
  /// norm_topk_prob and always scales; every released V2 checkpoint has
  /// norm_topk_prob false, where both agree.) Use routedOutputScale().
  bool scaleAfterNormalization = true;
  /// PhiMoE "router_jitter_noise": sparsemixer's relative masking threshold
  /// (used at inference, unlike other families' jitter, which is training
  /// noise and not parsed). 0 for other families.
  double routerJitterNoise = 0.0;

  /// "quantization_config"."quant_method" (e.g. "fp8"); empty if the
  /// checkpoint is not pre-quantized.
  std::string quantMethod;
  /// For quant_method "fp8" (DeepSeek-V3 / transformers FineGrainedFP8):
  /// weights are F8_E4M3 in blocks of fp8BlockRows x fp8BlockCols with one
  /// "<name>_scale_inv" factor per block ("weight_block_size", default
  /// 128 x 128). 0 otherwise.
  int64_t fp8BlockRows = 0;
  int64_t fp8BlockCols = 0;

  double rmsNormEps = 0.0;
  double ropeTheta = 10000.0;
  int64_t maxPositionEmbeddings = 0;
  std::string hiddenAct;
  /// "torch_dtype" (or the newer "dtype"), e.g. "bfloat16"; empty if absent.
  std::string torchDtype;
  bool tieWordEmbeddings = false;

  /// True if layer \p Layer has an MoE block (as opposed to a dense MLP):
  /// in range, past firstDenseLayers, index % moeLayerFreq == 0, (index + 1)
  /// % decoderSparseStep == 0 and not in mlpOnlyLayers. Every family's rule
  /// is this one with its other terms at their neutral values.
  bool isMoELayer(int64_t Layer) const;

  /// Total intermediate size of the shared expert(s); 0 if there are none.
  int64_t sharedIntermediateSize() const {
    return numSharedExperts > 0 ? sharedExpertIntermediateSize : 0;
  }

  /// The factor the normalised (or not) top-k gate weights are multiplied
  /// by: routedScalingFactor, except 1 when normTopkProb is set and
  /// !scaleAfterNormalization (DeepSeek-V2).
  double routedOutputScale() const {
    return normTopkProb && !scaleAfterNormalization ? 1.0 : routedScalingFactor;
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
