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
  ConfigReader(const json::Object &Obj, StringRef FileName)
      : Obj(Obj), FileName(FileName) {}

  void getInt(StringRef Key, int64_t &Out) { readInt(Key, Out, true); }
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

  /// Records an error unless \p Value > 0.
  void checkPositive(StringRef Key, int64_t Value) {
    if (Value <= 0)
      fail("key '" + Key + "' must be positive, got " + Twine(Value));
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
    fail("missing " + TypeName + " key '" + Key + "'");
  return nullptr;
}

void ConfigReader::typeError(StringRef Key, StringRef TypeName,
                             const json::Value &V) {
  fail("key '" + Key + "' must be " + TypeName + ", got " + kindName(V));
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
  void (*Parse)(ConfigReader &R, MoEModelConfig &C);
};
} // namespace

/// Keys shared by every Llama-derived family.
static void parseTransformerKeys(ConfigReader &R, MoEModelConfig &C) {
  R.getInt("hidden_size", C.hiddenSize);
  R.getInt("num_hidden_layers", C.numLayers);
  R.getInt("vocab_size", C.vocabSize);
  R.getInt("num_attention_heads", C.numAttentionHeads);
  R.getInt("num_key_value_heads", C.numKeyValueHeads);
  R.getNumber("rms_norm_eps", C.rmsNormEps);
  R.getString("hidden_act", C.hiddenAct);
  R.getOptionalInt("head_dim", C.headDim);
  R.getOptionalNumber("rope_theta", C.ropeTheta);
  R.getOptionalInt("max_position_embeddings", C.maxPositionEmbeddings);
  R.getOptionalBool("tie_word_embeddings", C.tieWordEmbeddings);
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
}

// To add a family: write parseX() reading its keys into MoEModelConfig and
// add a row here (e.g. qwen2_moe: num_experts / moe_intermediate_size /
// shared_expert_intermediate_size / norm_topk_prob; deepseek_v3:
// n_routed_experts / n_shared_experts / first_k_dense_replace /
// scoring_func / routed_scaling_factor).
static const Family Families[] = {
    {"mixtral",
     {"num_local_experts", "num_experts_per_tok", "intermediate_size"},
     parseMixtral},
};

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
  F->Parse(R, C);
  if (!R.failed())
    validate(R, F->Keys, C);
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
