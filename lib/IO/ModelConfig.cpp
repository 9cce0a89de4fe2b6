//===- ModelConfig.cpp - Hugging Face config.json for MoE models ----------===//

#include "moeq/IO/ModelConfig.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"

using namespace llvm;
using namespace mlir::moeq::io;

namespace {

/// Typed access to a config object. The first failure is kept ("sticky") so
/// family parsers can read a list of keys without an early return after
/// each one; the error names the file and the key.
class ConfigReader {
public:
  /// \p Prefix is prepended to every key named in an error, for nested
  /// objects (e.g. "quantization_config.").
  ConfigReader(const json::Object &Obj, StringRef FileName,
               StringRef Prefix = "")
      : Obj(Obj), FileName(FileName), Prefix(Prefix) {}

  void getInt(StringRef Key, int64_t &Out) { readInt(Key, Out, true); }
  /// `Key`, or its transformers 5 name `Renamed` when only that is present
  /// (errors name both).
  void getIntOrRenamed(StringRef Key, StringRef Renamed, int64_t &Out) {
    if (!isPresent(Key) && isPresent(Renamed))
      return readInt(Renamed, Out, true);
    if (!isPresent(Key) && !failed())
      return fail("missing integer key '" + keyName(Key) + "' (transformers 5: '" + keyName(Renamed) + "')");
    readInt(Key, Out, true);
  }
  void getOptionalInt(StringRef Key, int64_t &Out) { readInt(Key, Out, false); }
  void getNumber(StringRef Key, double &Out) { readNumber(Key, Out, true); }
  void getOptionalNumber(StringRef Key, double &Out) {
    readNumber(Key, Out, false);
  }
  void getString(StringRef Key, std::string &Out) {
    readString(Key, Out, true);
  }
  void getOptionalString(StringRef Key, std::string &Out) {
    readString(Key, Out, false);
  }
  void getOptionalBool(StringRef Key, bool &Out);
  void getOptionalStringList(StringRef Key, std::vector<std::string> &Out);
  /// Replaces \p Out by the list if the key is present.
  void getOptionalIntList(StringRef Key, std::vector<int64_t> &Out);
  /// An integer, or a per-layer list of integers that are all equal (what
  /// moeq supports of families that allow one value per layer); a list
  /// with different entries is an error naming the key.
  void getIntOrUniformList(StringRef Key, int64_t &Out);
  /// The object at \p Key, or null if absent or JSON null.
  const json::Object *getOptionalObject(StringRef Key);
  /// True if \p Key is present with the value null. For the few keys whose
  /// class default is not None, null still means None (e.g. DeepSeek's
  /// n_shared_experts: null means no shared experts).
  bool isNull(StringRef Key) const {
    const json::Value *V = Obj.get(Key);
    return V && V->kind() == json::Value::Null;
  }
  /// Present and not null.
  bool isPresent(StringRef Key) const {
    const json::Value *V = Obj.get(Key);
    return V && V->kind() != json::Value::Null;
  }

  /// The key as errors spell it.
  std::string keyName(StringRef Key) const { return (Prefix + Key).str(); }
  StringRef fileName() const { return FileName; }

  /// Records an error unless \p Value > 0.
  void checkPositive(StringRef Key, int64_t Value) {
    if (Value <= 0)
      fail("key '" + keyName(Key) + "' must be positive, got " + Twine(Value));
  }
  /// Keeps \p E (which already names the file) as the first error.
  void adopt(Error E) {
    if (!E)
      return;
    if (Err)
      consumeError(std::move(E));
    else
      Err = std::move(E);
  }
  void fail(const Twine &Msg) {
    if (!Err)
      Err = createStringError(std::errc::invalid_argument, "%s: %s",
                              FileName.str().c_str(), Msg.str().c_str());
  }
  bool failed() const { return Err.has_value(); }
  Error takeError() {
    if (!Err)
      return Error::success();
    Error E = std::move(*Err);
    Err.reset();
    return E;
  }

private:
  /// The value of \p Key, or null if absent or JSON null (Hugging Face writes
  /// null for "use the default"). Records an error if it is required.
  const json::Value *lookup(StringRef Key, StringRef TypeName, bool Required);
  void typeError(StringRef Key, StringRef TypeName, const json::Value &V);
  void readInt(StringRef Key, int64_t &Out, bool Required);
  void readNumber(StringRef Key, double &Out, bool Required);
  void readString(StringRef Key, std::string &Out, bool Required);

  const json::Object &Obj;
  StringRef FileName;
  StringRef Prefix;
  std::optional<Error> Err;
};

} // namespace

static StringRef kindName(const json::Value &V) {
  switch (V.kind()) {
  case json::Value::Null:
    return "null";
  case json::Value::Boolean:
    return "a boolean";
  case json::Value::Number:
    return "a number";
  case json::Value::String:
    return "a string";
  case json::Value::Array:
    return "an array";
  case json::Value::Object:
    return "an object";
  }
  llvm_unreachable("unknown JSON kind");
}

const json::Value *ConfigReader::lookup(StringRef Key, StringRef TypeName,
                                        bool Required) {
  if (failed())
    return nullptr;
  const json::Value *V = Obj.get(Key);
  if (V && V->kind() != json::Value::Null)
    return V;
  if (Required)
    fail("missing " + TypeName + " key '" + keyName(Key) + "'");
  return nullptr;
}

void ConfigReader::typeError(StringRef Key, StringRef TypeName,
                             const json::Value &V) {
  fail("key '" + keyName(Key) + "' must be " + TypeName + ", got " +
       kindName(V));
}

void ConfigReader::readInt(StringRef Key, int64_t &Out, bool Required) {
  const json::Value *V = lookup(Key, "integer", Required);
  if (!V)
    return;
  if (std::optional<int64_t> I = V->getAsInteger())
    Out = *I;
  else
    typeError(Key, "an integer", *V);
}

void ConfigReader::readNumber(StringRef Key, double &Out, bool Required) {
  const json::Value *V = lookup(Key, "number", Required);
  if (!V)
    return;
  if (std::optional<double> D = V->getAsNumber())
    Out = *D;
  else
    typeError(Key, "a number", *V);
}

void ConfigReader::readString(StringRef Key, std::string &Out, bool Required) {
  const json::Value *V = lookup(Key, "string", Required);
  if (!V)
    return;
  if (std::optional<StringRef> S = V->getAsString())
    Out = S->str();
  else
    typeError(Key, "a string", *V);
}

void ConfigReader::getOptionalBool(StringRef Key, bool &Out) {
  const json::Value *V = lookup(Key, "boolean", false);
  if (!V)
    return;
  if (std::optional<bool> B = V->getAsBoolean())
    Out = *B;
  else
    typeError(Key, "a boolean", *V);
}

void ConfigReader::getOptionalStringList(StringRef Key,
                                         std::vector<std::string> &Out) {
  const json::Value *V = lookup(Key, "string list", false);
  if (!V)
    return;
  const json::Array *A = V->getAsArray();
  if (!A)
    return typeError(Key, "an array of strings", *V);
  for (const json::Value &Elt : *A) {
    std::optional<StringRef> S = Elt.getAsString();
    if (!S)
      return typeError(Key, "an array of strings", Elt);
    Out.push_back(S->str());
  }
}

void ConfigReader::getOptionalIntList(StringRef Key,
                                      std::vector<int64_t> &Out) {
  const json::Value *V = lookup(Key, "integer list", false);
  if (!V)
    return;
  const json::Array *A = V->getAsArray();
  if (!A)
    return typeError(Key, "an array of integers", *V);
  std::vector<int64_t> List;
  for (const json::Value &Elt : *A) {
    std::optional<int64_t> I = Elt.getAsInteger();
    if (!I)
      return typeError(Key, "an array of integers", Elt);
    List.push_back(*I);
  }
  Out = std::move(List);
}

void ConfigReader::getIntOrUniformList(StringRef Key, int64_t &Out) {
  const json::Value *V = Obj.get(Key);
  if (!V || V->kind() != json::Value::Array)
    return getOptionalInt(Key, Out);
  std::vector<int64_t> List;
  getOptionalIntList(Key, List);
  if (failed() || List.empty())
    return fail("key '" + keyName(Key) + "' must be an integer or a non-empty list");
  if (llvm::any_of(List, [&](int64_t X) { return X != List.front(); }))
    return fail("key '" + keyName(Key) +
                "' gives layers different values; moeq supports one value for every "
                "MoE layer");
  Out = List.front();
}

const json::Object *ConfigReader::getOptionalObject(StringRef Key) {
  const json::Value *V = lookup(Key, "object", false);
  if (!V)
    return nullptr;
  const json::Object *O = V->getAsObject();
  if (!O)
    typeError(Key, "an object", *V);
  return O;
}

//===----------------------------------------------------------------------===//
// Families
//===----------------------------------------------------------------------===//

namespace {
/// The family-specific spelling of the keys the generic checks refer to.
struct FamilyKeys {
  StringRef NumExperts;
  StringRef TopK;
  StringRef MoEIntermediate;
};

struct Family {
  StringRef ModelType;
  FamilyKeys Keys;
  /// Reads the family's keys (and its class defaults for absent ones).
  void (*Parse)(ConfigReader &R, MoEModelConfig &C);
  /// Family-specific checks, run after the generic ones passed (so sizes
  /// are known to be positive); may be null.
  void (*Check)(ConfigReader &R, const MoEModelConfig &C);
  /// A multimodal config keeps the language model's keys in this object
  /// (e.g. "text_config"), and its tensors under `LayerPrefix`.
  StringRef NestedConfig = "";
  StringRef LayerPrefix = "model.layers.";
};
} // namespace

/// Counts far beyond any released model (61 layers and 384 experts at most
/// in 2026), small enough that lists and loops sized by them stay cheap.
constexpr int64_t kMaxLayers = 1 << 16;
constexpr int64_t kMaxExperts = 1 << 16;

/// Keys shared by every Llama-derived family. With \p KVHeadsDefaultToHeads,
/// an absent num_key_value_heads means num_attention_heads (no GQA), as in
/// the configuration classes whose default for it is None.
static void parseTransformerKeys(ConfigReader &R, MoEModelConfig &C,
                                 bool KVHeadsDefaultToHeads = false) {
  R.getInt("hidden_size", C.hiddenSize);
  R.getInt("num_hidden_layers", C.numLayers);
  // Families derive per-layer lists from the count while parsing: refuse an
  // absurd count before anything is sized by it (found by fuzzing).
  if (C.numLayers > kMaxLayers) {
    R.fail("key '" + R.keyName("num_hidden_layers") + "' is " + Twine(C.numLayers) +
           ", more than the " + Twine(kMaxLayers) + " layers moeq reads");
    C.numLayers = 0;
  }
  R.getInt("vocab_size", C.vocabSize);
  R.getInt("num_attention_heads", C.numAttentionHeads);
  if (KVHeadsDefaultToHeads) {
    C.numKeyValueHeads = -1;
    R.getOptionalInt("num_key_value_heads", C.numKeyValueHeads);
    if (C.numKeyValueHeads == -1)
      C.numKeyValueHeads = C.numAttentionHeads;
  } else {
    R.getInt("num_key_value_heads", C.numKeyValueHeads);
  }
  R.getNumber("rms_norm_eps", C.rmsNormEps);
  R.getString("hidden_act", C.hiddenAct);
  R.getOptionalInt("head_dim", C.headDim);
  R.getOptionalNumber("rope_theta", C.ropeTheta);
  // transformers 5 keeps it in "rope_parameters".
  if (const json::Object *Rope = R.getOptionalObject("rope_parameters"))
    if (std::optional<double> Theta = Rope->getNumber("rope_theta"))
      C.ropeTheta = *Theta;
  R.getOptionalInt("max_position_embeddings", C.maxPositionEmbeddings);
  R.getOptionalBool("tie_word_embeddings", C.tieWordEmbeddings);
}

/// Mixtral's (and PhiMoE's, MiniMax's) names: block_sparse_moe, w1/w3/w2.
static MoETensorNames mixtralTensorNames() {
  MoETensorNames N;
  N.block = "block_sparse_moe";
  N.gate = "w1";
  N.up = "w3";
  N.down = "w2";
  return N;
}

/// Mixtral: every layer is MoE, no shared experts, softmax router, and the
/// top-k weights are always renormalised (the HF implementation divides by
/// their sum unconditionally; there is no norm_topk_prob key).
static void parseMixtral(ConfigReader &R, MoEModelConfig &C) {
  // MixtralConfig's defaults, used when the keys are absent.
  C.ropeTheta = 1e6;
  C.maxPositionEmbeddings = 4096 * 32;
  parseTransformerKeys(R, C);
  R.getInt("intermediate_size", C.intermediateSize);
  R.getInt("num_local_experts", C.numExperts);
  R.getInt("num_experts_per_tok", C.topK);
  C.moeIntermediateSize = C.intermediateSize;
  C.normTopkProb = true;
  C.scoringFunc = "softmax";
  C.tensorNames = mixtralTensorNames();
}

/// MiniMax (MiniMax-Text-01, transformers' "-hf" conversion): Mixtral's MoE
/// block and names; its lightning-attention layers and the alpha/beta
/// residual factors are outside the block (carried through). The router's
/// jitter noise applies in training only.
static void parseMiniMax(ConfigReader &R, MoEModelConfig &C) {
  parseMixtral(R, C);
  // MiniMaxConfig's defaults differ from Mixtral's only outside the block.
}

/// PhiMoE (Phi-3.5-MoE): Mixtral's keys and tensor layout, but routed by
/// sparsemixer, which picks exactly two experts and weights each by its own
/// masked softmax (no renormalisation of the pair).
static void parsePhiMoE(ConfigReader &R, MoEModelConfig &C) {
  // PhimoeConfig's defaults.
  C.ropeTheta = 1e6;
  C.maxPositionEmbeddings = 4096 * 32;
  C.routerJitterNoise = 0.01;
  parseTransformerKeys(R, C);
  R.getInt("intermediate_size", C.intermediateSize);
  R.getInt("num_local_experts", C.numExperts);
  R.getInt("num_experts_per_tok", C.topK);
  R.getOptionalNumber("router_jitter_noise", C.routerJitterNoise);
  C.moeIntermediateSize = C.intermediateSize;
  C.scoringFunc = "sparsemixer";
  C.normTopkProb = false;
  C.tensorNames = mixtralTensorNames();
}

static void checkPhiMoE(ConfigReader &R, const MoEModelConfig &C) {
  // transformers' sparsemixer raises for any other top_k.
  if (C.topK != 2)
    R.fail("key 'num_experts_per_tok' must be 2 for phimoe (sparsemixer "
           "routing selects exactly two experts), got " +
           Twine(C.topK));
  if (!(C.routerJitterNoise >= 0.0))
    R.fail("key 'router_jitter_noise' must be non-negative");
}

/// Qwen2-MoE (Qwen1.5-MoE, Qwen2-57B-A14B) and Qwen3-MoE: softmax router,
/// optional renormalisation, dense MLP layers picked by mlp_only_layers and
/// decoder_sparse_step. Qwen2-MoE adds one shared expert whose output is
/// scaled by sigmoid(shared_expert_gate . x).
static void parseQwenMoE(ConfigReader &R, MoEModelConfig &C,
                         bool SharedExpert) {
  // Qwen2MoeConfig / Qwen3MoeConfig defaults.
  C.maxPositionEmbeddings = 32768;
  parseTransformerKeys(R, C);
  R.getInt("intermediate_size", C.intermediateSize);
  R.getIntOrRenamed("num_experts", "num_local_experts", C.numExperts);
  R.getInt("num_experts_per_tok", C.topK);
  R.getInt("moe_intermediate_size", C.moeIntermediateSize);
  R.getOptionalBool("norm_topk_prob", C.normTopkProb);
  R.getOptionalInt("decoder_sparse_step", C.decoderSparseStep);
  R.getOptionalIntList("mlp_only_layers", C.mlpOnlyLayers);
  if (SharedExpert) {
    R.getInt("shared_expert_intermediate_size", C.sharedExpertIntermediateSize);
    // Qwen2MoeSparseMoeBlock always builds the gated shared expert; a size
    // of 0 makes its contribution zero.
    C.numSharedExperts = C.sharedExpertIntermediateSize > 0 ? 1 : 0;
    C.sharedExpertGate = C.numSharedExperts > 0;
    C.tensorNames.sharedExpert = "shared_expert";
  }
}

static void parseQwen2MoE(ConfigReader &R, MoEModelConfig &C) {
  parseQwenMoE(R, C, /*SharedExpert=*/true);
}
/// Qwen3-Next: Qwen2-MoE's block (gated shared expert) and keys, with
/// norm_topk_prob on by default; its gated-DeltaNet (linear attention)
/// layers are outside the block and carried through.
static void parseQwen3Next(ConfigReader &R, MoEModelConfig &C) {
  C.normTopkProb = true; // Qwen3NextConfig's default
  parseQwenMoE(R, C, /*SharedExpert=*/true);
  C.maxPositionEmbeddings = 32768;
  R.getOptionalInt("max_position_embeddings", C.maxPositionEmbeddings);
}
static void parseQwen3MoE(ConfigReader &R, MoEModelConfig &C) {
  parseQwenMoE(R, C, /*SharedExpert=*/false);
}

static void checkQwenMoE(ConfigReader &R, const MoEModelConfig &C) {
  R.checkPositive("decoder_sparse_step", C.decoderSparseStep);
  if (C.sharedExpertIntermediateSize < 0)
    R.fail("key 'shared_expert_intermediate_size' must be non-negative, got " +
           Twine(C.sharedExpertIntermediateSize));
  for (int64_t L : C.mlpOnlyLayers)
    if (L < 0 || L >= C.numLayers)
      return R.fail("key 'mlp_only_layers' names layer " + Twine(L) +
                    ", outside [0, num_hidden_layers = " + Twine(C.numLayers) +
                    ")");
}

/// The MoE keys of the DeepSeek family and its descendants (glm4_moe,
/// dots1): expert counts and sizes, shared experts (null: none), leading
/// dense layers, scaling and renormalisation.
static void readDeepSeekMoEKeys(ConfigReader &R, MoEModelConfig &C) {
  R.getInt("intermediate_size", C.intermediateSize);
  R.getInt("n_routed_experts", C.numExperts);
  R.getInt("num_experts_per_tok", C.topK);
  R.getInt("moe_intermediate_size", C.moeIntermediateSize);
  if (R.isNull("n_shared_experts"))
    C.numSharedExperts = 0;
  R.getOptionalInt("n_shared_experts", C.numSharedExperts);
  R.getOptionalInt("first_k_dense_replace", C.firstDenseLayers);
  R.getOptionalNumber("routed_scaling_factor", C.routedScalingFactor);
  R.getOptionalBool("norm_topk_prob", C.normTopkProb);
}

/// DeepSeek-V2 and -V3: n_shared_experts always-on experts, leading dense
/// layers, a routed scaling factor and group-limited routing. V2 is softmax
/// with "greedy" or "group_limited_greedy"; V3 is sigmoid with "noaux_tc".
/// scoring_func, topk_method and moe_layer_freq are not in transformers'
/// configuration classes (its modeling hard-codes them) but are in every
/// released config.json; the reference modeling_deepseek.py honours them,
/// raising NotImplementedError for other values, and so do we.
static void parseDeepSeek(ConfigReader &R, MoEModelConfig &C, bool V3) {
  // DeepseekV2Config / DeepseekV3Config (and modeling_deepseek.py) defaults.
  C.maxPositionEmbeddings = V3 ? 4096 : 2048;
  C.numSharedExperts = V3 ? 1 : 2;
  C.firstDenseLayers = V3 ? 3 : 0;
  C.routedScalingFactor = V3 ? 2.5 : 1.0;
  C.normTopkProb = V3;
  C.scoringFunc = V3 ? "sigmoid" : "softmax";
  C.topkMethod = V3 ? "noaux_tc" : "greedy";
  C.scaleAfterNormalization = V3;
  int64_t NGroup = V3 ? 8 : -1, TopkGroup = V3 ? 4 : -1;

  parseTransformerKeys(R, C, /*KVHeadsDefaultToHeads=*/true);
  // As the configuration classes: head_dim is qk_rope_head_dim (a saved
  // config.json repeats it as "head_dim"; the released ones do not).
  C.headDim = 64;
  R.getOptionalInt("qk_rope_head_dim", C.headDim);
  readDeepSeekMoEKeys(R, C);
  R.getOptionalInt("moe_layer_freq", C.moeLayerFreq);
  R.getOptionalString("scoring_func", C.scoringFunc);
  R.getOptionalString("topk_method", C.topkMethod);
  R.getOptionalInt("n_group", NGroup);
  R.getOptionalInt("topk_group", TopkGroup);
  if (R.failed())
    return;
  C.sharedExpertIntermediateSize = C.moeIntermediateSize * C.numSharedExperts;

  StringRef WantScoring = V3 ? "sigmoid" : "softmax";
  if (C.scoringFunc != WantScoring)
    return R.fail("key 'scoring_func' must be \"" + WantScoring + "\" for " +
                  C.modelType + ", got \"" + C.scoringFunc + "\"");
  if (C.topkMethod == "group_limited_greedy" && !V3)
    C.groupScoring = "max";
  else if (C.topkMethod == "noaux_tc" && V3)
    C.groupScoring = "top2_sum";
  else if (C.topkMethod != "greedy" || V3)
    return R.fail("key 'topk_method' must be " +
                  Twine(V3 ? "\"noaux_tc\""
                           : "\"greedy\" or "
                             "\"group_limited_greedy\"") +
                  " for " + C.modelType + ", got \"" + C.topkMethod + "\"");
  C.hasScoreCorrectionBias = C.topkMethod == "noaux_tc";
  if (C.groupScoring.empty())
    return; // n_group / topk_group are unused by greedy routing.
  if (NGroup == -1)
    return R.fail("missing integer key 'n_group' (needed by topk_method '" +
                  C.topkMethod + "')");
  if (TopkGroup == -1)
    return R.fail("missing integer key 'topk_group' (needed by topk_method '" +
                  C.topkMethod + "')");
  C.nGroup = NGroup;
  C.topkGroup = TopkGroup;
}

static void parseDeepSeekV2(ConfigReader &R, MoEModelConfig &C) {
  parseDeepSeek(R, C, /*V3=*/false);
}
static void parseDeepSeekV3(ConfigReader &R, MoEModelConfig &C) {
  parseDeepSeek(R, C, /*V3=*/true);
}

static void checkDeepSeek(ConfigReader &R, const MoEModelConfig &C) {
  R.checkPositive("moe_layer_freq", C.moeLayerFreq);
  if (C.numSharedExperts < 0)
    R.fail("key 'n_shared_experts' must be non-negative, got " +
           Twine(C.numSharedExperts));
  if (!(C.routedScalingFactor > 0.0))
    R.fail("key 'routed_scaling_factor' must be positive");
  if (R.failed() || C.groupScoring.empty())
    return;
  R.checkPositive("n_group", C.nGroup);
  R.checkPositive("topk_group", C.topkGroup);
  if (R.failed())
    return;
  if (C.numExperts % C.nGroup != 0)
    return R.fail("n_routed_experts (" + Twine(C.numExperts) +
                  ") is not a multiple of n_group (" + Twine(C.nGroup) + ")");
  if (C.topkGroup > C.nGroup)
    return R.fail("key 'topk_group' must be in [1, n_group = " +
                  Twine(C.nGroup) + "], got " + Twine(C.topkGroup));
  int64_t PerGroup = C.numExperts / C.nGroup;
  if (C.groupScoring == "top2_sum" && PerGroup < 2)
    return R.fail("noaux_tc scores a group by its two best experts, but "
                  "n_routed_experts / n_group = " +
                  Twine(PerGroup));
  if (C.topK > C.topkGroup * PerGroup)
    R.fail("num_experts_per_tok (" + Twine(C.topK) +
           ") exceeds the experts in topk_group groups (" + Twine(C.topkGroup) +
           " x " + Twine(PerGroup) + ")");
}

/// The DeepSeek-V3 router without its topk_method / scoring_func keys
/// (GLM-4.5/4.6 "glm4_moe" and dots.llm1 "dots1" hard-code sigmoid scores,
/// selection on score + e_score_correction_bias within the topk_group best
/// groups by their two best biased scores, renormalisation when
/// norm_topk_prob, then routed_scaling_factor), with the same tensor names
/// and leading dense layers. The defaults are the configuration classes':
/// \p NormTopkProb and \p FirstDense differ between the two.
static void parseNoAuxTC(ConfigReader &R, MoEModelConfig &C, bool NormTopkProb,
                         int64_t FirstDense) {
  C.normTopkProb = NormTopkProb;
  C.firstDenseLayers = FirstDense;
  C.numSharedExperts = 1;
  C.maxPositionEmbeddings = 131072;
  parseTransformerKeys(R, C);
  readDeepSeekMoEKeys(R, C);
  R.getOptionalInt("n_group", C.nGroup);
  R.getOptionalInt("topk_group", C.topkGroup);
  C.sharedExpertIntermediateSize = C.moeIntermediateSize * C.numSharedExperts;
  C.scoringFunc = "sigmoid";
  C.topkMethod = "noaux_tc";
  C.groupScoring = "top2_sum";
  C.hasScoreCorrectionBias = true;
  C.scaleAfterNormalization = true;
}

static void parseGlm4MoE(ConfigReader &R, MoEModelConfig &C) {
  parseNoAuxTC(R, C, /*NormTopkProb=*/true, /*FirstDense=*/1);
}
static void parseDots1(ConfigReader &R, MoEModelConfig &C) {
  // Dots1Config has no default expert counts (None): n_shared_experts too
  // is required.
  parseNoAuxTC(R, C, /*NormTopkProb=*/false, /*FirstDense=*/0);
  R.getInt("n_shared_experts", C.numSharedExperts);
}

/// Hunyuan-A13B: every layer MoE, softmax router "gate.wg" (always
/// renormalised), one ungated shared MLP "shared_mlp"; transformers 4.57
/// sizes every expert and the shared MLP by intermediate_size (it does not
/// read moe_intermediate_size). num_experts and moe_topk may be per-layer
/// lists: equal entries are accepted, different ones refused.
static void parseHunyuanV1MoE(ConfigReader &R, MoEModelConfig &C) {
  C.maxPositionEmbeddings = 2048; // HunYuanMoEV1Config's default
  parseTransformerKeys(R, C, /*KVHeadsDefaultToHeads=*/true);
  R.getInt("intermediate_size", C.intermediateSize);
  C.moeIntermediateSize = C.intermediateSize;
  C.numExperts = 1;
  C.topK = 1;
  R.getIntOrUniformList("num_experts", C.numExperts);
  R.getIntOrUniformList("moe_topk", C.topK);
  C.numSharedExperts = 1;
  C.sharedExpertIntermediateSize = C.intermediateSize;
  C.normTopkProb = true;
  C.tensorNames.router = "gate.wg.weight";
  C.tensorNames.sharedExpert = "shared_mlp";
}

/// IBM Granite MoE: every layer MoE, the router "router.layer" takes a
/// softmax over the top-k logits (= softmax, top-k, renormalise), and the
/// experts are stored stacked: input_linear [E, 2I, H] (gate rows first)
/// and output_linear [E, H, I]. The embedding, residual, attention and
/// logits multipliers are outside the block (carried through).
static void parseGraniteMoE(ConfigReader &R, MoEModelConfig &C) {
  C.maxPositionEmbeddings = 2048;
  parseTransformerKeys(R, C, /*KVHeadsDefaultToHeads=*/true);
  R.getInt("intermediate_size", C.intermediateSize);
  R.getInt("num_local_experts", C.numExperts);
  R.getInt("num_experts_per_tok", C.topK);
  C.moeIntermediateSize = C.intermediateSize;
  C.normTopkProb = true;
  MoETensorNames &N = C.tensorNames;
  N.block = "block_sparse_moe";
  N.router = "router.layer.weight";
  N.gate = N.up = N.down = "";
  N.stackedGateUp = "input_linear.weight";
  N.stackedDown = "output_linear.weight";
}

/// ERNIE 4.5 MoE: softmax router whose selection adds a per-expert bias
/// (moe_statics.e_score_correction_bias, stored [1, E]; the weights are the
/// unbiased probabilities, always renormalised), shared experts fused into
/// one MLP of moe_intermediate_size * moe_num_shared_experts, and MoE
/// layers from moe_layer_start_index to moe_layer_end_index (-1: the last)
/// every moe_layer_interval-th. Expert biases (use_bias) are refused.
static void parseErnie45MoE(ConfigReader &R, MoEModelConfig &C) {
  // Ernie4_5_MoeConfig's defaults.
  C.maxPositionEmbeddings = 131072;
  C.numSharedExperts = 2;
  C.firstDenseLayers = 1;
  C.tieWordEmbeddings = true;
  parseTransformerKeys(R, C, /*KVHeadsDefaultToHeads=*/true);
  R.getInt("intermediate_size", C.intermediateSize);
  R.getInt("moe_num_experts", C.numExperts);
  R.getInt("moe_k", C.topK);
  R.getInt("moe_intermediate_size", C.moeIntermediateSize);
  R.getOptionalInt("moe_num_shared_experts", C.numSharedExperts);
  R.getOptionalInt("moe_layer_start_index", C.firstDenseLayers);
  R.getOptionalInt("moe_layer_end_index", C.lastMoELayer);
  R.getOptionalInt("moe_layer_interval", C.decoderSparseStep);
  bool UseBias = false;
  R.getOptionalBool("use_bias", UseBias);
  if (UseBias)
    R.fail("key 'use_bias' is true: expert and attention biases are not supported");
  C.sharedExpertIntermediateSize = C.moeIntermediateSize * C.numSharedExperts;
  C.normTopkProb = true;
  C.hasScoreCorrectionBias = true;
  C.tensorNames.scoreBias = "moe_statics.e_score_correction_bias";
}

/// Llama 4 (text): a sigmoid of the top-k router logits scales each
/// selected expert's INPUT, the experts' outputs are summed unweighted and a
/// shared expert of intermediate_size is added. Experts are stacked for
/// `x @ W` (gate_up [E, H, 2I], gate columns first; down [E, I, H]). MoE
/// layers are "moe_layers", else every interleave_moe_layer_step-th layer
/// (from step - 1); the others are dense MLPs of intermediate_size_mlp.
static void parseLlama4Text(ConfigReader &R, MoEModelConfig &C) {
  // Llama4TextConfig's defaults.
  C.ropeTheta = 500000;
  C.maxPositionEmbeddings = 4096 * 32;
  C.numExperts = 16;
  C.topK = 1;
  C.intermediateSize = 16384;
  parseTransformerKeys(R, C, /*KVHeadsDefaultToHeads=*/true);
  R.getInt("intermediate_size", C.moeIntermediateSize);
  R.getOptionalInt("intermediate_size_mlp", C.intermediateSize);
  R.getOptionalInt("num_local_experts", C.numExperts);
  R.getOptionalInt("num_experts_per_tok", C.topK);
  int64_t Step = 1;
  R.getOptionalInt("interleave_moe_layer_step", Step);
  std::vector<int64_t> Layers;
  if (R.isPresent("moe_layers")) {
    R.getOptionalIntList("moe_layers", Layers);
  } else if (Step >= 1) {
    for (int64_t L = Step - 1; L < C.numLayers; L += Step)
      Layers.push_back(L);
  } else {
    R.fail("key 'interleave_moe_layer_step' must be positive, got " + Twine(Step));
  }
  C.moeLayers = std::move(Layers);
  C.numSharedExperts = 1;
  C.sharedExpertIntermediateSize = C.moeIntermediateSize;
  C.scoringFunc = "sigmoid";
  C.normTopkProb = false;
  C.routingWeightsScaleInput = true;
  MoETensorNames &N = C.tensorNames;
  N.block = "feed_forward";
  N.router = "router.weight";
  N.gate = N.up = N.down = "";
  N.stackedLayout = MoETensorNames::StackedLayout::TransposedHalves;
  N.sharedExpert = "shared_expert";
}

/// OpenAI gpt-oss: every layer MoE; a router with a bias whose top-k logits
/// get a softmax (= softmax, top-k, renormalise); experts stored for x @ W
/// with the gate and up columns interleaved, every linear with a bias, and
/// the clamped SwiGLU (alpha 1.702, "swiglu_limit", default 7). Attention
/// (sliding window, sinks) is carried through. MXFP4 checkpoints
/// (quantization_config.quant_method "mxfp4") are decoded on import.
static void parseGptOss(ConfigReader &R, MoEModelConfig &C) {
  // GptOssConfig's defaults.
  C.ropeTheta = 150000;
  C.maxPositionEmbeddings = 131072;
  C.numExperts = 128;
  C.topK = 4;
  parseTransformerKeys(R, C, /*KVHeadsDefaultToHeads=*/true);
  R.getInt("intermediate_size", C.intermediateSize);
  C.moeIntermediateSize = C.intermediateSize;
  R.getOptionalInt("num_local_experts", C.numExperts);
  R.getOptionalInt("num_experts_per_tok", C.topK);
  R.getOptionalNumber("swiglu_limit", C.swigluLimit);
  R.getOptionalNumber("swiglu_alpha", C.swigluAlpha); // (transformers 5 writes it)
  C.normTopkProb = true;
  C.hasRouterBias = true;
  C.hasExpertBiases = true;
  C.expertActivation = "clamped_swiglu";
  MoETensorNames &N = C.tensorNames;
  N.router = "router.weight";
  N.routerBias = "router.bias";
  N.gate = N.up = N.down = "";
  N.stackedLayout = MoETensorNames::StackedLayout::TransposedInterleaved;
}

static void checkGptOss(ConfigReader &R, const MoEModelConfig &C) {
  if (!(C.swigluLimit > 0))
    R.fail("key 'swiglu_limit' must be positive, got " + Twine(std::to_string(C.swigluLimit)));
}

static void checkLlama4Text(ConfigReader &R, const MoEModelConfig &C) {
  for (int64_t L : *C.moeLayers)
    if (L < 0 || L >= C.numLayers)
      return R.fail("key 'moe_layers' lists layer " + Twine(L) +
                    ", outside num_hidden_layers = " + Twine(C.numLayers));
}

static void checkErnie45MoE(ConfigReader &R, const MoEModelConfig &C) {
  R.checkPositive("moe_layer_interval", C.decoderSparseStep);
  if (C.numSharedExperts < 0)
    R.fail("key 'moe_num_shared_experts' must be non-negative, got " +
           Twine(C.numSharedExperts));
  if (C.lastMoELayer < -1 || C.lastMoELayer >= C.numLayers)
    R.fail("key 'moe_layer_end_index' must be -1 or a layer index below num_hidden_layers = " +
           Twine(C.numLayers) + ", got " + Twine(C.lastMoELayer));
}

/// OLMoE: every layer is MoE; "intermediate_size" is the expert size.
static void parseOLMoE(ConfigReader &R, MoEModelConfig &C) {
  // OlmoeConfig's defaults.
  C.maxPositionEmbeddings = 4096;
  parseTransformerKeys(R, C, /*KVHeadsDefaultToHeads=*/true);
  R.getInt("intermediate_size", C.intermediateSize);
  R.getInt("num_experts", C.numExperts);
  R.getInt("num_experts_per_tok", C.topK);
  R.getOptionalBool("norm_topk_prob", C.normTopkProb);
  C.moeIntermediateSize = C.intermediateSize;
}

// To add a family: write parseX() reading its keys into MoEModelConfig
// (and checkX() for its own constraints) and add a row here.
static const Family Families[] = {
    {"mixtral",
     {"num_local_experts", "num_experts_per_tok", "intermediate_size"},
     parseMixtral,
     nullptr},
    {"phimoe",
     {"num_local_experts", "num_experts_per_tok", "intermediate_size"},
     parsePhiMoE,
     checkPhiMoE},
    {"qwen2_moe",
     {"num_experts", "num_experts_per_tok", "moe_intermediate_size"},
     parseQwen2MoE,
     checkQwenMoE},
    {"qwen3_moe",
     {"num_experts", "num_experts_per_tok", "moe_intermediate_size"},
     parseQwen3MoE,
     checkQwenMoE},
    {"deepseek_v2",
     {"n_routed_experts", "num_experts_per_tok", "moe_intermediate_size"},
     parseDeepSeekV2,
     checkDeepSeek},
    {"deepseek_v3",
     {"n_routed_experts", "num_experts_per_tok", "moe_intermediate_size"},
     parseDeepSeekV3,
     checkDeepSeek},
    {"olmoe",
     {"num_experts", "num_experts_per_tok", "intermediate_size"},
     parseOLMoE,
     nullptr},
    {"glm4_moe",
     {"n_routed_experts", "num_experts_per_tok", "moe_intermediate_size"},
     parseGlm4MoE,
     checkDeepSeek},
    {"dots1",
     {"n_routed_experts", "num_experts_per_tok", "moe_intermediate_size"},
     parseDots1,
     checkDeepSeek},
    {"qwen3_next",
     {"num_experts", "num_experts_per_tok", "moe_intermediate_size"},
     parseQwen3Next,
     checkQwenMoE},
    {"minimax",
     {"num_local_experts", "num_experts_per_tok", "intermediate_size"},
     parseMiniMax,
     nullptr},
    {"hunyuan_v1_moe",
     {"num_experts", "moe_topk", "intermediate_size"},
     parseHunyuanV1MoE,
     nullptr},
    {"ernie4_5_moe",
     {"moe_num_experts", "moe_k", "moe_intermediate_size"},
     parseErnie45MoE,
     checkErnie45MoE},
    {"granitemoe",
     {"num_local_experts", "num_experts_per_tok", "intermediate_size"},
     parseGraniteMoE,
     nullptr},
    {"llama4_text",
     {"num_local_experts", "num_experts_per_tok", "intermediate_size"},
     parseLlama4Text,
     checkLlama4Text},
    // Llama 4 as released (Llama4ForConditionalGeneration): the text model's
    // config in "text_config", its tensors under "language_model."; the
    // vision tower is carried through.
    {"llama4",
     {"num_local_experts", "num_experts_per_tok", "intermediate_size"},
     parseLlama4Text,
     checkLlama4Text,
     "text_config",
     "language_model.model.layers."},
    {"gpt_oss",
     {"num_local_experts", "num_experts_per_tok", "intermediate_size"},
     parseGptOss,
     checkGptOss},
};

/// "quantization_config", for every family. Only quant_method is read in
/// general; "fp8" (FineGrainedFP8, DeepSeek-V3's format) also gives the
/// block size.
static void parseQuantizationConfig(ConfigReader &R, MoEModelConfig &C) {
  const json::Object *Q = R.getOptionalObject("quantization_config");
  if (!Q)
    return;
  ConfigReader QR(*Q, R.fileName(), "quantization_config.");
  QR.getString("quant_method", C.quantMethod);
  if (!QR.failed() && C.quantMethod == "fp8") {
    std::string Fmt = "e4m3";
    QR.getOptionalString("fmt", Fmt);
    if (!QR.failed() && Fmt != "e4m3")
      QR.fail("key 'quantization_config.fmt' must be \"e4m3\", got \"" + Fmt +
              "\"");
    // FineGrainedFP8Config: absent means 128 x 128, null means one scale
    // per tensor (left as 0 x 0).
    std::vector<int64_t> Block = {128, 128};
    if (QR.isNull("weight_block_size"))
      Block = {0, 0};
    QR.getOptionalIntList("weight_block_size", Block);
    if (!QR.failed() &&
        (Block.size() != 2 || (Block != std::vector<int64_t>{0, 0} &&
                               (Block[0] <= 0 || Block[1] <= 0))))
      QR.fail("key 'quantization_config.weight_block_size' must be two "
              "positive integers");
    if (!QR.failed()) {
      C.fp8BlockRows = Block[0];
      C.fp8BlockCols = Block[1];
    }
  }
  R.adopt(QR.takeError());
}

/// Family-independent consistency checks, reported with the family's keys.
static void validate(ConfigReader &R, const FamilyKeys &Keys,
                     MoEModelConfig &C) {
  R.checkPositive("hidden_size", C.hiddenSize);
  R.checkPositive("num_hidden_layers", C.numLayers);
  R.checkPositive("vocab_size", C.vocabSize);
  R.checkPositive("num_attention_heads", C.numAttentionHeads);
  R.checkPositive("num_key_value_heads", C.numKeyValueHeads);
  R.checkPositive(Keys.NumExperts, C.numExperts);
  R.checkPositive(Keys.MoEIntermediate, C.moeIntermediateSize);
  if (C.numExperts > kMaxExperts)
    R.fail("key '" + R.keyName(Keys.NumExperts) + "' is " + Twine(C.numExperts) +
           ", more than the " + Twine(kMaxExperts) + " experts moeq reads");
  if (R.failed())
    return;
  if (C.topK < 1 || C.topK > C.numExperts)
    R.fail("key '" + Keys.TopK + "' must be in [1, " + Keys.NumExperts + " = " +
           Twine(C.numExperts) + "], got " + Twine(C.topK));
  if (C.numAttentionHeads % C.numKeyValueHeads != 0)
    R.fail("num_attention_heads (" + Twine(C.numAttentionHeads) +
           ") is not a multiple of num_key_value_heads (" +
           Twine(C.numKeyValueHeads) + ")");
  if (C.headDim == 0) {
    if (C.hiddenSize % C.numAttentionHeads != 0)
      R.fail("hidden_size (" + Twine(C.hiddenSize) +
             ") is not a multiple of num_attention_heads (" +
             Twine(C.numAttentionHeads) + ") and there is no head_dim");
    C.headDim = C.hiddenSize / C.numAttentionHeads;
  }
  R.checkPositive("head_dim", C.headDim);
  if (!(C.rmsNormEps > 0.0))
    R.fail("key 'rms_norm_eps' must be positive");
  if (C.firstDenseLayers < 0 || C.firstDenseLayers > C.numLayers)
    R.fail("the number of leading dense layers (" + Twine(C.firstDenseLayers) +
           ") is out of range");
}

bool MoEModelConfig::isMoELayer(int64_t Layer) const {
  if (moeLayers)
    return Layer >= 0 && Layer < numLayers && numExperts > 0 &&
           llvm::is_contained(*moeLayers, Layer);
  return Layer >= 0 && Layer < numLayers && numExperts > 0 &&
         Layer >= firstDenseLayers && moeLayerFreq > 0 &&
         Layer % moeLayerFreq == 0 && decoderSparseStep > 0 &&
         (Layer + 1) % decoderSparseStep == 0 &&
         (lastMoELayer < 0 || Layer <= lastMoELayer) &&
         !llvm::is_contained(mlpOnlyLayers, Layer);
}

std::vector<StringRef> mlir::moeq::io::supportedModelTypes() {
  std::vector<StringRef> Types;
  for (const Family &F : Families)
    Types.push_back(F.ModelType);
  return Types;
}

Expected<MoEModelConfig> mlir::moeq::io::parseModelConfig(StringRef JSONText,
                                                          StringRef FileName) {
  auto Fail = [&](const Twine &Msg) {
    return createStringError(std::errc::invalid_argument, "%s: %s",
                             FileName.str().c_str(), Msg.str().c_str());
  };
  Expected<json::Value> Root = json::parse(JSONText);
  if (!Root)
    return Fail("not valid JSON: " + toString(Root.takeError()));
  const json::Object *Obj = Root->getAsObject();
  if (!Obj)
    return Fail("not a JSON object");

  MoEModelConfig C;
  ConfigReader R(*Obj, FileName);
  R.getString("model_type", C.modelType);
  if (Error E = R.takeError())
    return std::move(E);
  const Family *F = llvm::find_if(
      Families, [&](const Family &F) { return F.ModelType == C.modelType; });
  if (F == std::end(Families))
    return Fail("unsupported model_type '" + C.modelType +
                "' (supported: " + join(supportedModelTypes(), ", ") + ")");

  R.getOptionalStringList("architectures", C.architectures);
  // transformers >= 4.56 writes "dtype"; older versions "torch_dtype".
  R.getOptionalString("torch_dtype", C.torchDtype);
  if (C.torchDtype.empty())
    R.getOptionalString("dtype", C.torchDtype);
  // The family's keys: at the top, or in a multimodal config's nested
  // language-model config (errors name them "text_config.<key>").
  std::string NestedPrefix = (F->NestedConfig + ".").str();
  std::optional<ConfigReader> Nested;
  if (!F->NestedConfig.empty()) {
    const json::Object *Inner = R.getOptionalObject(F->NestedConfig);
    if (!Inner && !R.failed())
      R.fail("missing object key '" + F->NestedConfig + "' (the language model's config)");
    if (Error E = R.takeError())
      return std::move(E);
    Nested.emplace(*Inner, FileName, NestedPrefix);
  }
  ConfigReader &Keys = Nested ? *Nested : R;
  C.tensorNames.layerPrefix = F->LayerPrefix.str();
  F->Parse(Keys, C);
  parseQuantizationConfig(R, C);
  if (!R.failed() && !Keys.failed())
    validate(Keys, F->Keys, C);
  if (!R.failed() && !Keys.failed() && F->Check)
    F->Check(Keys, C);
  if (Nested)
    R.adopt(Nested->takeError());
  if (Error E = R.takeError())
    return std::move(E);
  return C;
}

Expected<MoEModelConfig> mlir::moeq::io::loadModelConfig(StringRef Path) {
  SmallString<256> File(Path);
  if (sys::fs::is_directory(File))
    sys::path::append(File, "config.json");
  ErrorOr<std::unique_ptr<MemoryBuffer>> Buf = MemoryBuffer::getFile(File);
  if (!Buf)
    return createStringError(Buf.getError(), "%s: cannot read: %s",
                             File.c_str(), Buf.getError().message().c_str());
  return parseModelConfig((*Buf)->getBuffer(), File);
}
