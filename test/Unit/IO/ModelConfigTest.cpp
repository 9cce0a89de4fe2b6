//===- ModelConfigTest.cpp - config.json parsing tests --------------------===//

#include "moeq/IO/ModelConfig.h"

#include "IOTestUtil.h"

#include "llvm/Support/JSON.h"

using namespace llvm;
using namespace mlir::moeq::io;
using namespace mlir::moeq::io::test;

namespace {

/// mistralai/Mixtral-8x7B-v0.1 config.json.
const char *Mixtral8x7B = R"({
  "architectures": ["MixtralForCausalLM"],
  "attention_dropout": 0.0,
  "bos_token_id": 1,
  "eos_token_id": 2,
  "hidden_act": "silu",
  "hidden_size": 4096,
  "initializer_range": 0.02,
  "intermediate_size": 14336,
  "max_position_embeddings": 32768,
  "model_type": "mixtral",
  "num_attention_heads": 32,
  "num_experts_per_tok": 2,
  "num_hidden_layers": 32,
  "num_key_value_heads": 8,
  "num_local_experts": 8,
  "output_router_logits": false,
  "rms_norm_eps": 1e-05,
  "rope_theta": 1000000.0,
  "router_aux_loss_coef": 0.02,
  "sliding_window": null,
  "tie_word_embeddings": false,
  "torch_dtype": "bfloat16",
  "transformers_version": "4.36.0.dev0",
  "use_cache": true,
  "vocab_size": 32000
})";

const char *RequiredMixtralKeys[] = {
    "model_type",        "hidden_size",         "intermediate_size",
    "num_local_experts", "num_experts_per_tok", "num_hidden_layers",
    "vocab_size",        "num_attention_heads", "num_key_value_heads",
    "rms_norm_eps",      "hidden_act",
};

/// Mixtral8x7B with \p Edit applied to the parsed object.
std::string editedConfig(function_ref<void(json::Object &)> Edit) {
  Expected<json::Value> V = json::parse(Mixtral8x7B);
  EXPECT_TRUE(bool(V));
  if (!V) {
    consumeError(V.takeError());
    return "";
  }
  Edit(*V->getAsObject());
  std::string Out;
  raw_string_ostream(Out) << *V;
  return Out;
}

std::string parseError(StringRef Text) {
  auto C = parseModelConfig(Text, "config.json");
  return errorText(C);
}

TEST(ModelConfigTest, Mixtral8x7B) {
  MOEQ_ASSERT_EXPECTED(C, parseModelConfig(Mixtral8x7B, "config.json"));
  EXPECT_EQ(C.modelType, "mixtral");
  EXPECT_EQ(C.architectures, std::vector<std::string>{"MixtralForCausalLM"});
  EXPECT_EQ(C.hiddenSize, 4096);
  EXPECT_EQ(C.numLayers, 32);
  EXPECT_EQ(C.numExperts, 8);
  EXPECT_EQ(C.topK, 2);
  EXPECT_EQ(C.moeIntermediateSize, 14336);
  EXPECT_EQ(C.intermediateSize, 14336);
  EXPECT_EQ(C.vocabSize, 32000);
  EXPECT_EQ(C.numAttentionHeads, 32);
  EXPECT_EQ(C.numKeyValueHeads, 8);
  EXPECT_EQ(C.headDim, 128);
  EXPECT_TRUE(C.normTopkProb);
  EXPECT_EQ(C.scoringFunc, "softmax");
  EXPECT_EQ(C.numSharedExperts, 0);
  EXPECT_EQ(C.firstDenseLayers, 0);
  EXPECT_DOUBLE_EQ(C.rmsNormEps, 1e-5);
  EXPECT_DOUBLE_EQ(C.ropeTheta, 1e6);
  EXPECT_EQ(C.maxPositionEmbeddings, 32768);
  EXPECT_EQ(C.hiddenAct, "silu");
  EXPECT_EQ(C.torchDtype, "bfloat16");
  EXPECT_FALSE(C.tieWordEmbeddings);
  EXPECT_TRUE(C.isMoELayer(0));
  EXPECT_TRUE(C.isMoELayer(31));
  EXPECT_FALSE(C.isMoELayer(32));
}

TEST(ModelConfigTest, EachMissingRequiredKey) {
  for (const char *Key : RequiredMixtralKeys) {
    std::string Msg =
        parseError(editedConfig([&](json::Object &O) { O.erase(Key); }));
    EXPECT_NE(Msg.find("config.json: missing"), std::string::npos) << Msg;
    EXPECT_NE(Msg.find(("key '" + Twine(Key) + "'").str()), std::string::npos)
        << Msg;
    // null means "not given" in Hugging Face configs.
    Msg = parseError(editedConfig([&](json::Object &O) { O[Key] = nullptr; }));
    EXPECT_NE(Msg.find(("'" + Twine(Key) + "'").str()), std::string::npos)
        << Msg;
  }
  EXPECT_EQ(parseError(editedConfig(
                [](json::Object &O) { O.erase("num_local_experts"); })),
            "config.json: missing integer key 'num_local_experts'");
}

TEST(ModelConfigTest, WrongTypes) {
  std::string Msg = parseError(
      editedConfig([](json::Object &O) { O["hidden_size"] = "4096"; }));
  EXPECT_EQ(Msg,
            "config.json: key 'hidden_size' must be an integer, got a string");
  Msg = parseError(
      editedConfig([](json::Object &O) { O["num_local_experts"] = 8.5; }));
  EXPECT_NE(Msg.find("'num_local_experts' must be an integer"),
            std::string::npos)
      << Msg;
  Msg = parseError(
      editedConfig([](json::Object &O) { O["rms_norm_eps"] = "small"; }));
  EXPECT_NE(Msg.find("'rms_norm_eps' must be a number"), std::string::npos)
      << Msg;
  Msg = parseError(editedConfig([](json::Object &O) { O["hidden_act"] = 1; }));
  EXPECT_NE(Msg.find("'hidden_act' must be a string"), std::string::npos)
      << Msg;
  Msg = parseError(
      editedConfig([](json::Object &O) { O["tie_word_embeddings"] = 1; }));
  EXPECT_NE(Msg.find("'tie_word_embeddings' must be a boolean"),
            std::string::npos)
      << Msg;
  Msg = parseError(
      editedConfig([](json::Object &O) { O["architectures"] = "Mixtral"; }));
  EXPECT_NE(Msg.find("'architectures'"), std::string::npos) << Msg;
  // An integral float is still an integer.
  EXPECT_EQ(parseError(editedConfig(
                [](json::Object &O) { O["hidden_size"] = 4096.0; })),
            "");
}

TEST(ModelConfigTest, UnknownModelType) {
  std::string Msg = parseError(
      editedConfig([](json::Object &O) { O["model_type"] = "llama"; }));
  EXPECT_NE(Msg.find("config.json"), std::string::npos) << Msg;
  EXPECT_NE(Msg.find("unsupported model_type 'llama'"), std::string::npos)
      << Msg;
  EXPECT_NE(Msg.find("mixtral"), std::string::npos) << Msg;
}

TEST(ModelConfigTest, Validation) {
  std::string Msg = parseError(
      editedConfig([](json::Object &O) { O["num_experts_per_tok"] = 9; }));
  EXPECT_NE(Msg.find("'num_experts_per_tok' must be in [1, "
                     "num_local_experts = 8], got 9"),
            std::string::npos)
      << Msg;
  Msg = parseError(
      editedConfig([](json::Object &O) { O["num_experts_per_tok"] = 0; }));
  EXPECT_NE(Msg.find("num_experts_per_tok"), std::string::npos) << Msg;
  Msg = parseError(editedConfig([](json::Object &O) { O["hidden_size"] = 0; }));
  EXPECT_NE(Msg.find("'hidden_size' must be positive"), std::string::npos)
      << Msg;
  Msg = parseError(
      editedConfig([](json::Object &O) { O["intermediate_size"] = -1; }));
  EXPECT_NE(Msg.find("'intermediate_size' must be positive"), std::string::npos)
      << Msg;
  Msg = parseError(
      editedConfig([](json::Object &O) { O["num_key_value_heads"] = 5; }));
  EXPECT_NE(Msg.find("num_key_value_heads"), std::string::npos) << Msg;
  Msg =
      parseError(editedConfig([](json::Object &O) { O["rms_norm_eps"] = 0; }));
  EXPECT_NE(Msg.find("rms_norm_eps"), std::string::npos) << Msg;
}

TEST(ModelConfigTest, OptionalKeys) {
  // head_dim overrides hidden / heads; newer transformers write "dtype".
  MOEQ_ASSERT_EXPECTED(C, parseModelConfig(editedConfig([](json::Object &O) {
                                             O["head_dim"] = 64;
                                             O.erase("torch_dtype");
                                             O["dtype"] = "float16";
                                             O.erase("rope_theta");
                                             O.erase("architectures");
                                           }),
                                           "config.json"));
  EXPECT_EQ(C.headDim, 64);
  EXPECT_EQ(C.torchDtype, "float16");
  EXPECT_DOUBLE_EQ(C.ropeTheta, 1e6); // MixtralConfig default.
  EXPECT_TRUE(C.architectures.empty());
  MOEQ_ASSERT_EXPECTED(D, parseModelConfig(editedConfig([](json::Object &O) {
                                             O["head_dim"] = nullptr;
                                           }),
                                           "config.json"));
  EXPECT_EQ(D.headDim, 128);
}

TEST(ModelConfigTest, NotJSON) {
  EXPECT_NE(parseError("{").find("config.json: not valid JSON"),
            std::string::npos);
  EXPECT_NE(parseError("[]").find("config.json: not a JSON object"),
            std::string::npos);
}

TEST(ModelConfigTest, LoadFromFileOrDirectory) {
  ScopedTempDir Dir;
  writeBytes(Dir.file("config.json"), Mixtral8x7B);
  MOEQ_ASSERT_EXPECTED(FromDir, loadModelConfig(Dir.path()));
  EXPECT_EQ(FromDir.numExperts, 8);
  MOEQ_ASSERT_EXPECTED(FromFile, loadModelConfig(Dir.file("config.json")));
  EXPECT_EQ(FromFile.hiddenSize, 4096);

  writeBytes(Dir.file("config.json"), "{\"model_type\": \"mixtral\"}");
  auto Bad = loadModelConfig(Dir.path());
  std::string Msg = errorText(Bad);
  EXPECT_NE(Msg.find(Dir.file("config.json")), std::string::npos) << Msg;
  EXPECT_NE(Msg.find("missing integer key"), std::string::npos) << Msg;

  auto Missing = loadModelConfig(Dir.file("nope"));
  EXPECT_NE(errorText(Missing).find("nope"), std::string::npos);
}

TEST(ModelConfigTest, SupportedTypes) {
  std::vector<StringRef> Types = supportedModelTypes();
  EXPECT_NE(llvm::find(Types, "mixtral"), Types.end());
}

} // namespace
