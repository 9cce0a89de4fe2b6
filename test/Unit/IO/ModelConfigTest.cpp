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

/// \p Base with \p Edit applied to the parsed object.
std::string editedJSON(StringRef Base,
                       function_ref<void(json::Object &)> Edit) {
  Expected<json::Value> V = json::parse(Base);
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

/// Mixtral8x7B with \p Edit applied to the parsed object.
std::string editedConfig(function_ref<void(json::Object &)> Edit) {
  return editedJSON(Mixtral8x7B, Edit);
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
  EXPECT_FALSE(C.isMoELayer(-1));
  EXPECT_EQ(C.topkMethod, "greedy");
  EXPECT_EQ(C.groupScoring, "");
  EXPECT_EQ(C.sharedIntermediateSize(), 0);
  EXPECT_DOUBLE_EQ(C.routedOutputScale(), 1.0);
  EXPECT_DOUBLE_EQ(C.routerJitterNoise, 0.0);
  EXPECT_EQ(C.quantMethod, "");
  EXPECT_EQ(C.fp8BlockRows, 0);
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

// Counts that would size lists and loops while parsing are refused first
// (the fuzzer's out-of-memory input: a llama4_text config whose 8e14 layers
// the parser expanded into its list of MoE layers).
TEST(ModelConfigTest, AbsurdCountsAreRefused) {
  std::string Msg = parseError(editedConfig(
      [](json::Object &O) { O["num_hidden_layers"] = int64_t(810888888888832); }));
  EXPECT_NE(Msg.find("key 'num_hidden_layers' is 810888888888832, more than the 65536 "
                     "layers moeq reads"),
            std::string::npos)
      << Msg;
  Msg = parseError(editedConfig(
      [](json::Object &O) { O["num_local_experts"] = int64_t(1) << 20; }));
  EXPECT_NE(Msg.find("key 'num_local_experts' is 1048576, more than the 65536 experts"),
            std::string::npos)
      << Msg;
  Msg = parseError(R"({"model_type": "llama4_text", "hidden_size": 32,
      "num_attention_heads": 4, "rms_norm_eps": 1e-5, "intermediate_size": 9,
      "num_hidden_layers": 810888888888832, "head_dim": 16, "vocab_size": 32})");
  EXPECT_NE(Msg.find("more than the 65536 layers"), std::string::npos) << Msg;
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
  EXPECT_EQ(Types, (std::vector<StringRef>{
                       "mixtral", "phimoe", "qwen2_moe", "qwen3_moe", "deepseek_v2",
                       "deepseek_v3", "olmoe", "glm4_moe", "dots1", "qwen3_next", "minimax",
                       "hunyuan_v1_moe", "ernie4_5_moe", "granitemoe", "llama4_text",
                       "llama4", "gpt_oss"}));
  std::string Msg = parseError(
      editedConfig([](json::Object &O) { O["model_type"] = "llama"; }));
  for (StringRef T : Types)
    EXPECT_NE(Msg.find(T.str()), std::string::npos) << Msg;
}

//===----------------------------------------------------------------------===//
// Other families. The config.json texts are the released models' (some as
// transformers 4.57 re-saves them, with "dtype" and derived keys).
//===----------------------------------------------------------------------===//

/// microsoft/Phi-3.5-MoE-instruct (rope_scaling factor lists trimmed).
const char *Phi35MoE = R"({
  "_name_or_path": "Phi-3.5-moe-instruct",
  "architectures": ["PhiMoEForCausalLM"],
  "attention_bias": true,
  "attention_dropout": 0.0,
  "bos_token_id": 1,
  "eos_token_id": 32000,
  "hidden_act": "silu",
  "hidden_dropout": 0.0,
  "hidden_size": 4096,
  "initializer_range": 0.02,
  "input_jitter_noise": 0.01,
  "intermediate_size": 6400,
  "lm_head_bias": true,
  "max_position_embeddings": 131072,
  "model_type": "phimoe",
  "num_attention_heads": 32,
  "num_experts_per_tok": 2,
  "num_hidden_layers": 32,
  "num_key_value_heads": 8,
  "num_local_experts": 16,
  "original_max_position_embeddings": 4096,
  "output_router_logits": false,
  "rms_norm_eps": 1e-05,
  "rope_scaling": {
    "long_factor": [1.0199999809265137, 1.0299999713897705, 1.0399999618530273, 1.0499999523162842],
    "long_mscale": 1.243163121016122,
    "original_max_position_embeddings": 4096,
    "short_factor": [1.0, 1.0399999618530273, 1.0399999618530273, 1.0399999618530273],
    "short_mscale": 1.243163121016122,
    "type": "longrope"
  },
  "rope_theta": 10000.0,
  "router_aux_loss_coef": 0.0,
  "router_jitter_noise": 0.01,
  "sliding_window": 131072,
  "tie_word_embeddings": false,
  "torch_dtype": "bfloat16",
  "transformers_version": "4.43.3",
  "use_cache": true,
  "vocab_size": 32064
})";

/// Qwen/Qwen1.5-MoE-A2.7B, as transformers 4.57 saves it.
const char *Qwen15MoE = R"({
  "architectures": [
    "Qwen2MoeForCausalLM"
  ],
  "attention_dropout": 0.0,
  "bos_token_id": 151643,
  "decoder_sparse_step": 1,
  "dtype": "bfloat16",
  "eos_token_id": 151643,
  "hidden_act": "silu",
  "hidden_size": 2048,
  "initializer_range": 0.02,
  "intermediate_size": 5632,
  "max_position_embeddings": 8192,
  "max_window_layers": 21,
  "mlp_only_layers": [],
  "model_type": "qwen2_moe",
  "moe_intermediate_size": 1408,
  "norm_topk_prob": false,
  "num_attention_heads": 16,
  "num_experts": 60,
  "num_experts_per_tok": 4,
  "num_hidden_layers": 24,
  "num_key_value_heads": 16,
  "output_router_logits": false,
  "qkv_bias": true,
  "rms_norm_eps": 1e-06,
  "rope_scaling": null,
  "rope_theta": 1000000.0,
  "router_aux_loss_coef": 0.001,
  "shared_expert_intermediate_size": 5632,
  "sliding_window": null,
  "tie_word_embeddings": false,
  "transformers_version": "4.57.6",
  "use_cache": true,
  "use_sliding_window": false,
  "vocab_size": 151936
})";

/// Qwen/Qwen3-30B-A3B.
const char *Qwen3MoE30B = R"({
  "architectures": ["Qwen3MoeForCausalLM"],
  "attention_bias": false,
  "attention_dropout": 0.0,
  "bos_token_id": 151643,
  "decoder_sparse_step": 1,
  "eos_token_id": 151645,
  "head_dim": 128,
  "hidden_act": "silu",
  "hidden_size": 2048,
  "initializer_range": 0.02,
  "intermediate_size": 6144,
  "max_position_embeddings": 40960,
  "max_window_layers": 48,
  "mlp_only_layers": [],
  "model_type": "qwen3_moe",
  "moe_intermediate_size": 768,
  "norm_topk_prob": true,
  "num_attention_heads": 32,
  "num_experts": 128,
  "num_experts_per_tok": 8,
  "num_hidden_layers": 48,
  "num_key_value_heads": 4,
  "output_router_logits": false,
  "rms_norm_eps": 1e-06,
  "rope_scaling": null,
  "rope_theta": 1000000.0,
  "router_aux_loss_coef": 0.001,
  "sliding_window": null,
  "tie_word_embeddings": false,
  "torch_dtype": "bfloat16",
  "transformers_version": "4.51.0",
  "use_cache": true,
  "use_sliding_window": false,
  "vocab_size": 151936
})";

/// deepseek-ai/DeepSeek-V2-Lite.
const char *DeepSeekV2Lite = R"({
  "architectures": ["DeepseekV2ForCausalLM"],
  "attention_bias": false,
  "attention_dropout": 0.0,
  "aux_loss_alpha": 0.001,
  "bos_token_id": 100000,
  "eos_token_id": 100001,
  "ep_size": 1,
  "first_k_dense_replace": 1,
  "hidden_act": "silu",
  "hidden_size": 2048,
  "initializer_range": 0.02,
  "intermediate_size": 10944,
  "kv_lora_rank": 512,
  "max_position_embeddings": 163840,
  "model_type": "deepseek_v2",
  "moe_intermediate_size": 1408,
  "moe_layer_freq": 1,
  "n_group": 1,
  "n_routed_experts": 64,
  "n_shared_experts": 2,
  "norm_topk_prob": false,
  "num_attention_heads": 16,
  "num_experts_per_tok": 6,
  "num_hidden_layers": 27,
  "num_key_value_heads": 16,
  "pretraining_tp": 1,
  "q_lora_rank": null,
  "qk_nope_head_dim": 128,
  "qk_rope_head_dim": 64,
  "rms_norm_eps": 1e-06,
  "rope_scaling": {
    "beta_fast": 32,
    "beta_slow": 1,
    "factor": 40,
    "mscale": 0.707,
    "mscale_all_dim": 0.707,
    "original_max_position_embeddings": 4096,
    "type": "yarn"
  },
  "rope_theta": 10000,
  "routed_scaling_factor": 1.0,
  "scoring_func": "softmax",
  "seq_aux": true,
  "tie_word_embeddings": false,
  "topk_group": 1,
  "topk_method": "greedy",
  "torch_dtype": "bfloat16",
  "transformers_version": "4.33.1",
  "use_cache": true,
  "v_head_dim": 128,
  "vocab_size": 102400
})";

/// deepseek-ai/DeepSeek-V3, as transformers 4.57 saves it.
const char *DeepSeekV3 = R"({
  "architectures": [
    "DeepseekV3ForCausalLM"
  ],
  "attention_bias": false,
  "attention_dropout": 0.0,
  "aux_loss_alpha": 0.001,
  "bos_token_id": 0,
  "dtype": "bfloat16",
  "eos_token_id": 1,
  "ep_size": 1,
  "first_k_dense_replace": 3,
  "head_dim": 64,
  "hidden_act": "silu",
  "hidden_size": 7168,
  "initializer_range": 0.02,
  "intermediate_size": 18432,
  "kv_lora_rank": 512,
  "max_position_embeddings": 163840,
  "model_type": "deepseek_v3",
  "moe_intermediate_size": 2048,
  "moe_layer_freq": 1,
  "n_group": 8,
  "n_routed_experts": 256,
  "n_shared_experts": 1,
  "norm_topk_prob": true,
  "num_attention_heads": 128,
  "num_experts_per_tok": 8,
  "num_hidden_layers": 61,
  "num_key_value_heads": 128,
  "num_nextn_predict_layers": 1,
  "pretraining_tp": 1,
  "q_lora_rank": 1536,
  "qk_head_dim": 192,
  "qk_nope_head_dim": 128,
  "qk_rope_head_dim": 64,
  "quantization_config": {
    "activation_scheme": "dynamic",
    "fmt": "e4m3",
    "quant_method": "fp8",
    "weight_block_size": [
      128,
      128
    ]
  },
  "rms_norm_eps": 1e-06,
  "rope_interleave": true,
  "rope_scaling": {
    "beta_fast": 32.0,
    "beta_slow": 1.0,
    "factor": 40.0,
    "mscale": 1.0,
    "mscale_all_dim": 1.0,
    "original_max_position_embeddings": 4096,
    "rope_type": "yarn",
    "type": "yarn"
  },
  "rope_theta": 10000,
  "routed_scaling_factor": 2.5,
  "scoring_func": "sigmoid",
  "seq_aux": true,
  "tie_word_embeddings": false,
  "topk_group": 4,
  "topk_method": "noaux_tc",
  "transformers_version": "4.57.6",
  "use_cache": true,
  "v_head_dim": 128,
  "vocab_size": 129280
})";

/// allenai/OLMoE-1B-7B-0924.
const char *OLMoE1B7B = R"({
  "architectures": ["OlmoeForCausalLM"],
  "attention_bias": false,
  "attention_dropout": 0.0,
  "clip_qkv": null,
  "eos_token_id": 50279,
  "hidden_act": "silu",
  "hidden_size": 2048,
  "initializer_range": 0.02,
  "intermediate_size": 1024,
  "max_position_embeddings": 4096,
  "model_type": "olmoe",
  "norm_topk_prob": false,
  "num_attention_heads": 16,
  "num_experts": 64,
  "num_experts_per_tok": 8,
  "num_hidden_layers": 16,
  "num_key_value_heads": 16,
  "output_router_logits": false,
  "pad_token_id": 1,
  "rms_norm_eps": 1e-05,
  "rope_scaling": null,
  "rope_theta": 10000.0,
  "router_aux_loss_coef": 0.01,
  "tie_word_embeddings": false,
  "torch_dtype": "bfloat16",
  "transformers_version": "4.43.0.dev0",
  "use_cache": true,
  "vocab_size": 50304
})";

/// deepseek-ai/DeepSeek-V2 (236B): V2-Lite's text with V2's values.
std::string deepSeekV2() {
  return editedJSON(DeepSeekV2Lite, [](json::Object &O) {
    O["hidden_size"] = 5120;
    O["intermediate_size"] = 12288;
    O["moe_intermediate_size"] = 1536;
    O["n_routed_experts"] = 160;
    O["n_group"] = 8;
    O["topk_group"] = 3;
    O["topk_method"] = "group_limited_greedy";
    O["routed_scaling_factor"] = 16.0;
    O["num_attention_heads"] = 128;
    O["num_key_value_heads"] = 128;
    O["num_hidden_layers"] = 60;
    O["q_lora_rank"] = 1536;
  });
}

std::string parseErrorOf(StringRef Base,
                         function_ref<void(json::Object &)> Edit) {
  return parseError(editedJSON(Base, Edit));
}

#define EXPECT_CONTAINS(Haystack, Needle)                                      \
  EXPECT_NE(std::string(Haystack).find(Needle), std::string::npos)             \
      << "'" << (Haystack) << "' does not contain '" << (Needle) << "'"

TEST(ModelConfigTest, PhiMoE) {
  MOEQ_ASSERT_EXPECTED(C, parseModelConfig(Phi35MoE, "config.json"));
  EXPECT_EQ(C.modelType, "phimoe");
  EXPECT_EQ(C.architectures, std::vector<std::string>{"PhiMoEForCausalLM"});
  EXPECT_EQ(C.hiddenSize, 4096);
  EXPECT_EQ(C.numLayers, 32);
  EXPECT_EQ(C.numExperts, 16);
  EXPECT_EQ(C.topK, 2);
  EXPECT_EQ(C.moeIntermediateSize, 6400);
  EXPECT_EQ(C.intermediateSize, 6400);
  EXPECT_EQ(C.numKeyValueHeads, 8);
  EXPECT_EQ(C.headDim, 128);
  EXPECT_EQ(C.vocabSize, 32064);
  EXPECT_EQ(C.scoringFunc, "sparsemixer");
  EXPECT_EQ(C.topkMethod, "greedy");
  EXPECT_FALSE(C.normTopkProb);
  EXPECT_DOUBLE_EQ(C.routerJitterNoise, 0.01);
  EXPECT_DOUBLE_EQ(C.routedOutputScale(), 1.0);
  EXPECT_EQ(C.sharedIntermediateSize(), 0);
  EXPECT_DOUBLE_EQ(C.ropeTheta, 10000.0);
  EXPECT_EQ(C.maxPositionEmbeddings, 131072);
  for (int64_t L = 0; L < 32; ++L)
    EXPECT_TRUE(C.isMoELayer(L)) << L;

  // PhimoeConfig's defaults.
  MOEQ_ASSERT_EXPECTED(D, parseModelConfig(editedJSON(Phi35MoE,
                                                      [](json::Object &O) {
                                                        O.erase("router_jitter_"
                                                                "noise");
                                                        O.erase("rope_theta");
                                                      }),
                                           "config.json"));
  EXPECT_DOUBLE_EQ(D.routerJitterNoise, 0.01);
  EXPECT_DOUBLE_EQ(D.ropeTheta, 1e6);
  MOEQ_ASSERT_EXPECTED(E, parseModelConfig(editedJSON(Phi35MoE,
                                                      [](json::Object &O) {
                                                        O["router_jitter_"
                                                          "noise"] = 0.05;
                                                      }),
                                           "config.json"));
  EXPECT_DOUBLE_EQ(E.routerJitterNoise, 0.05);

  EXPECT_CONTAINS(
      parseErrorOf(Phi35MoE,
                   [](json::Object &O) { O["num_experts_per_tok"] = 4; }),
      "'num_experts_per_tok' must be 2 for phimoe");
  EXPECT_CONTAINS(
      parseErrorOf(Phi35MoE,
                   [](json::Object &O) { O["router_jitter_noise"] = -0.5; }),
      "'router_jitter_noise' must be non-negative");
  EXPECT_CONTAINS(
      parseErrorOf(Phi35MoE,
                   [](json::Object &O) { O["router_jitter_noise"] = "x"; }),
      "'router_jitter_noise' must be a number");
}

TEST(ModelConfigTest, Qwen2MoE) {
  MOEQ_ASSERT_EXPECTED(C, parseModelConfig(Qwen15MoE, "config.json"));
  EXPECT_EQ(C.modelType, "qwen2_moe");
  EXPECT_EQ(C.hiddenSize, 2048);
  EXPECT_EQ(C.numLayers, 24);
  EXPECT_EQ(C.numExperts, 60);
  EXPECT_EQ(C.topK, 4);
  EXPECT_EQ(C.moeIntermediateSize, 1408);
  EXPECT_EQ(C.intermediateSize, 5632);
  EXPECT_EQ(C.numSharedExperts, 1);
  EXPECT_EQ(C.sharedExpertIntermediateSize, 5632);
  EXPECT_EQ(C.sharedIntermediateSize(), 5632);
  EXPECT_TRUE(C.sharedExpertGate);
  EXPECT_FALSE(C.normTopkProb);
  EXPECT_EQ(C.scoringFunc, "softmax");
  EXPECT_EQ(C.topkMethod, "greedy");
  EXPECT_EQ(C.groupScoring, "");
  EXPECT_EQ(C.decoderSparseStep, 1);
  EXPECT_TRUE(C.mlpOnlyLayers.empty());
  EXPECT_EQ(C.firstDenseLayers, 0);
  EXPECT_EQ(C.headDim, 128);
  EXPECT_EQ(C.torchDtype, "bfloat16"); // From "dtype".
  EXPECT_DOUBLE_EQ(C.rmsNormEps, 1e-6);
  EXPECT_DOUBLE_EQ(C.ropeTheta, 1e6);
  for (int64_t L = 0; L < 24; ++L)
    EXPECT_TRUE(C.isMoELayer(L)) << L;
  EXPECT_FALSE(C.isMoELayer(24));

  // Qwen2MoeConfig's defaults for the optional MoE keys.
  MOEQ_ASSERT_EXPECTED(
      D, parseModelConfig(editedJSON(Qwen15MoE,
                                     [](json::Object &O) {
                                       O.erase("norm_topk_prob");
                                       O.erase("decoder_"
                                               "sparse_step");
                                       O["mlp_only_layers"] = nullptr;
                                     }),
                          "config.json"));
  EXPECT_FALSE(D.normTopkProb);
  EXPECT_EQ(D.decoderSparseStep, 1);
  EXPECT_TRUE(D.mlpOnlyLayers.empty());
  // A zero-sized shared expert contributes nothing: none.
  MOEQ_ASSERT_EXPECTED(Z, parseModelConfig(editedJSON(Qwen15MoE,
                                                      [](json::Object &O) {
                                                        O["shared_expert_"
                                                          "intermediate_"
                                                          "size"] = 0;
                                                      }),
                                           "config.json"));
  EXPECT_EQ(Z.sharedIntermediateSize(), 0);
  EXPECT_FALSE(Z.sharedExpertGate);
}

TEST(ModelConfigTest, Qwen3MoE) {
  MOEQ_ASSERT_EXPECTED(C, parseModelConfig(Qwen3MoE30B, "config.json"));
  EXPECT_EQ(C.modelType, "qwen3_moe");
  EXPECT_EQ(C.numLayers, 48);
  EXPECT_EQ(C.numExperts, 128);
  EXPECT_EQ(C.topK, 8);
  EXPECT_EQ(C.moeIntermediateSize, 768);
  EXPECT_EQ(C.intermediateSize, 6144);
  EXPECT_EQ(C.numKeyValueHeads, 4);
  EXPECT_EQ(C.headDim, 128); // Not hidden / heads = 64.
  EXPECT_TRUE(C.normTopkProb);
  EXPECT_EQ(C.numSharedExperts, 0);
  EXPECT_EQ(C.sharedIntermediateSize(), 0);
  EXPECT_FALSE(C.sharedExpertGate);
  EXPECT_EQ(C.maxPositionEmbeddings, 40960);
  EXPECT_TRUE(C.isMoELayer(0));
  EXPECT_TRUE(C.isMoELayer(47));
  // The class default is false (the released configs all say true).
  MOEQ_ASSERT_EXPECTED(
      D, parseModelConfig(
             editedJSON(Qwen3MoE30B,
                        [](json::Object &O) { O.erase("norm_topk_prob"); }),
             "config.json"));
  EXPECT_FALSE(D.normTopkProb);
  // No shared expert even if a stray key says so.
  MOEQ_ASSERT_EXPECTED(S, parseModelConfig(editedJSON(Qwen3MoE30B,
                                                      [](json::Object &O) {
                                                        O["shared_expert_"
                                                          "intermediate_"
                                                          "size"] = 5632;
                                                      }),
                                           "config.json"));
  EXPECT_EQ(S.sharedIntermediateSize(), 0);
}

TEST(ModelConfigTest, QwenMoELayerRules) {
  // Qwen2MoeDecoderLayer: MoE iff not in mlp_only_layers and (layer + 1) %
  // decoder_sparse_step == 0.
  for (const char *Base : {Qwen15MoE, Qwen3MoE30B}) {
    MOEQ_ASSERT_EXPECTED(
        C,
        parseModelConfig(editedJSON(Base,
                                    [](json::Object &O) {
                                      O["num_hidden_layers"] = 8;
                                      O["decoder_sparse_"
                                        "step"] = 2;
                                      O["mlp_only_layers"] = json::Array{0, 5};
                                    }),
                         "config.json"));
    EXPECT_EQ(C.decoderSparseStep, 2);
    EXPECT_EQ(C.mlpOnlyLayers, (std::vector<int64_t>{0, 5}));
    std::vector<int64_t> MoE;
    for (int64_t L = -1; L <= 8; ++L)
      if (C.isMoELayer(L))
        MoE.push_back(L);
    EXPECT_EQ(MoE, (std::vector<int64_t>{1, 3, 7}));

    MOEQ_ASSERT_EXPECTED(D, parseModelConfig(editedJSON(Base,
                                                        [](json::Object &O) {
                                                          O["mlp_only_"
                                                            "layers"] =
                                                              json::Array{0, 1};
                                                        }),
                                             "config.json"));
    EXPECT_FALSE(D.isMoELayer(0));
    EXPECT_FALSE(D.isMoELayer(1));
    EXPECT_TRUE(D.isMoELayer(2));

    EXPECT_CONTAINS(
        parseErrorOf(Base,
                     [](json::Object &O) { O["decoder_sparse_step"] = 0; }),
        "'decoder_sparse_step' must be positive");
    EXPECT_CONTAINS(parseErrorOf(Base,
                                 [](json::Object &O) {
                                   O["mlp_only_layers"] = json::Array{3, 99};
                                 }),
                    "'mlp_only_layers' names layer 99");
    EXPECT_CONTAINS(
        parseErrorOf(Base, [](json::Object &O) { O["mlp_only_layers"] = "0"; }),
        "'mlp_only_layers' must be an array of integers, got a "
        "string");
    EXPECT_CONTAINS(parseErrorOf(Base,
                                 [](json::Object &O) {
                                   O["mlp_only_layers"] = json::Array{1.5};
                                 }),
                    "'mlp_only_layers' must be an array of integers, got a "
                    "number");
  }
}

TEST(ModelConfigTest, DeepSeekV2Lite) {
  MOEQ_ASSERT_EXPECTED(C, parseModelConfig(DeepSeekV2Lite, "config.json"));
  EXPECT_EQ(C.modelType, "deepseek_v2");
  EXPECT_EQ(C.hiddenSize, 2048);
  EXPECT_EQ(C.numLayers, 27);
  EXPECT_EQ(C.numExperts, 64);
  EXPECT_EQ(C.topK, 6);
  EXPECT_EQ(C.moeIntermediateSize, 1408);
  EXPECT_EQ(C.intermediateSize, 10944);
  EXPECT_EQ(C.numSharedExperts, 2);
  EXPECT_EQ(C.sharedIntermediateSize(), 2 * 1408);
  EXPECT_FALSE(C.sharedExpertGate);
  EXPECT_EQ(C.firstDenseLayers, 1);
  EXPECT_EQ(C.moeLayerFreq, 1);
  EXPECT_EQ(C.scoringFunc, "softmax");
  EXPECT_EQ(C.topkMethod, "greedy");
  EXPECT_EQ(C.groupScoring, "");
  EXPECT_EQ(C.nGroup, 1);
  EXPECT_EQ(C.topkGroup, 1);
  EXPECT_FALSE(C.normTopkProb);
  EXPECT_DOUBLE_EQ(C.routedScalingFactor, 1.0);
  EXPECT_FALSE(C.scaleAfterNormalization);
  EXPECT_FALSE(C.hasScoreCorrectionBias);
  EXPECT_EQ(C.headDim, 64); // qk_rope_head_dim, as transformers.
  EXPECT_EQ(C.numKeyValueHeads, 16);
  EXPECT_EQ(C.quantMethod, "");
  EXPECT_FALSE(C.isMoELayer(0));
  for (int64_t L = 1; L < 27; ++L)
    EXPECT_TRUE(C.isMoELayer(L)) << L;
  EXPECT_FALSE(C.isMoELayer(27));

  // Greedy routing ignores n_group / topk_group, which may be null.
  MOEQ_ASSERT_EXPECTED(N, parseModelConfig(editedJSON(DeepSeekV2Lite,
                                                      [](json::Object &O) {
                                                        O["n_group"] = nullptr;
                                                        O["topk_group"] = 7;
                                                        O.erase("num_key_value_"
                                                                "heads");
                                                      }),
                                           "config.json"));
  EXPECT_EQ(N.nGroup, 1);
  EXPECT_EQ(N.topkGroup, 1);
  EXPECT_EQ(N.numKeyValueHeads, 16); // Defaults to the heads.
  // n_shared_experts null: no shared experts.
  MOEQ_ASSERT_EXPECTED(S, parseModelConfig(editedJSON(DeepSeekV2Lite,
                                                      [](json::Object &O) {
                                                        O["n_shared_experts"] =
                                                            nullptr;
                                                      }),
                                           "config.json"));
  EXPECT_EQ(S.numSharedExperts, 0);
  EXPECT_EQ(S.sharedIntermediateSize(), 0);
}

TEST(ModelConfigTest, DeepSeekV2GroupLimited) {
  MOEQ_ASSERT_EXPECTED(C, parseModelConfig(deepSeekV2(), "config.json"));
  EXPECT_EQ(C.numExperts, 160);
  EXPECT_EQ(C.topkMethod, "group_limited_greedy");
  EXPECT_EQ(C.groupScoring, "max");
  EXPECT_EQ(C.nGroup, 8);
  EXPECT_EQ(C.topkGroup, 3);
  EXPECT_DOUBLE_EQ(C.routedScalingFactor, 16.0);
  // Not renormalised: the factor applies.
  EXPECT_DOUBLE_EQ(C.routedOutputScale(), 16.0);
  EXPECT_EQ(C.sharedIntermediateSize(), 2 * 1536);

  // V2 applies routed_scaling_factor only when it does not renormalise.
  std::string Norm = editedJSON(
      deepSeekV2(), [](json::Object &O) { O["norm_topk_prob"] = true; });
  MOEQ_ASSERT_EXPECTED(N, parseModelConfig(Norm, "config.json"));
  EXPECT_TRUE(N.normTopkProb);
  EXPECT_FALSE(N.scaleAfterNormalization);
  EXPECT_DOUBLE_EQ(N.routedScalingFactor, 16.0);
  EXPECT_DOUBLE_EQ(N.routedOutputScale(), 1.0);

  EXPECT_EQ(parseErrorOf(deepSeekV2(),
                         [](json::Object &O) { O["n_group"] = nullptr; }),
            "config.json: missing integer key 'n_group' (needed by "
            "topk_method 'group_limited_greedy')");
  EXPECT_CONTAINS(parseErrorOf(deepSeekV2(),
                               [](json::Object &O) { O.erase("topk_group"); }),
                  "missing integer key 'topk_group'");
  EXPECT_CONTAINS(
      parseErrorOf(deepSeekV2(), [](json::Object &O) { O["n_group"] = 7; }),
      "n_routed_experts (160) is not a multiple of n_group (7)");
  EXPECT_CONTAINS(
      parseErrorOf(deepSeekV2(), [](json::Object &O) { O["topk_group"] = 9; }),
      "'topk_group' must be in [1, n_group = 8], got 9");
  EXPECT_CONTAINS(
      parseErrorOf(deepSeekV2(), [](json::Object &O) { O["topk_group"] = 0; }),
      "'topk_group' must be positive");
  // 1 group of 20 experts cannot supply 21.
  EXPECT_CONTAINS(parseErrorOf(deepSeekV2(),
                               [](json::Object &O) {
                                 O["topk_group"] = 1;
                                 O["num_experts_per_tok"] = 21;
                               }),
                  "num_experts_per_tok (21) exceeds the experts in "
                  "topk_group groups (1 x 20)");
  EXPECT_CONTAINS(
      parseErrorOf(deepSeekV2(),
                   [](json::Object &O) { O["topk_method"] = "noaux_tc"; }),
      "'topk_method' must be \"greedy\" or "
      "\"group_limited_greedy\" for deepseek_v2, got "
      "\"noaux_tc\"");
  EXPECT_CONTAINS(
      parseErrorOf(deepSeekV2(),
                   [](json::Object &O) { O["scoring_func"] = "sigmoid"; }),
      "'scoring_func' must be \"softmax\" for deepseek_v2");
}

TEST(ModelConfigTest, DeepSeekV3) {
  MOEQ_ASSERT_EXPECTED(C, parseModelConfig(DeepSeekV3, "config.json"));
  EXPECT_EQ(C.modelType, "deepseek_v3");
  EXPECT_EQ(C.hiddenSize, 7168);
  EXPECT_EQ(C.numLayers, 61);
  EXPECT_EQ(C.numExperts, 256);
  EXPECT_EQ(C.topK, 8);
  EXPECT_EQ(C.moeIntermediateSize, 2048);
  EXPECT_EQ(C.intermediateSize, 18432);
  EXPECT_EQ(C.numSharedExperts, 1);
  EXPECT_EQ(C.sharedIntermediateSize(), 2048);
  EXPECT_FALSE(C.sharedExpertGate);
  EXPECT_EQ(C.firstDenseLayers, 3);
  EXPECT_EQ(C.scoringFunc, "sigmoid");
  EXPECT_EQ(C.topkMethod, "noaux_tc");
  EXPECT_EQ(C.groupScoring, "top2_sum");
  EXPECT_EQ(C.nGroup, 8);
  EXPECT_EQ(C.topkGroup, 4);
  EXPECT_TRUE(C.hasScoreCorrectionBias);
  EXPECT_TRUE(C.normTopkProb);
  EXPECT_DOUBLE_EQ(C.routedScalingFactor, 2.5);
  EXPECT_TRUE(C.scaleAfterNormalization);
  EXPECT_DOUBLE_EQ(C.routedOutputScale(), 2.5);
  EXPECT_EQ(C.quantMethod, "fp8");
  EXPECT_EQ(C.fp8BlockRows, 128);
  EXPECT_EQ(C.fp8BlockCols, 128);
  EXPECT_EQ(C.headDim, 64);
  EXPECT_EQ(C.numKeyValueHeads, 128);
  EXPECT_EQ(C.torchDtype, "bfloat16");
  EXPECT_EQ(C.maxPositionEmbeddings, 163840);
  EXPECT_FALSE(C.isMoELayer(0));
  EXPECT_FALSE(C.isMoELayer(2));
  EXPECT_TRUE(C.isMoELayer(3));
  EXPECT_TRUE(C.isMoELayer(60));
  EXPECT_FALSE(C.isMoELayer(61)); // The MTP layer is not a decoder layer.

  // Without the keys only modeling_deepseek.py reads (and the class
  // defaults of the others), V3 is still sigmoid / noaux_tc / 8 / 4 / 2.5.
  MOEQ_ASSERT_EXPECTED(
      D, parseModelConfig(editedJSON(DeepSeekV3,
                                     [](json::Object &O) {
                                       for (const char *K :
                                            {"scoring_func", "topk_method",
                                             "moe_layer_freq", "n_group",
                                             "topk_group",
                                             "routed_scaling_"
                                             "factor",
                                             "norm_topk_prob",
                                             "first_k_dense_"
                                             "replace",
                                             "n_shared_"
                                             "experts",
                                             "quantization_"
                                             "config"})
                                         O.erase(K);
                                     }),
                          "config.json"));
  EXPECT_EQ(D.scoringFunc, "sigmoid");
  EXPECT_EQ(D.topkMethod, "noaux_tc");
  EXPECT_EQ(D.nGroup, 8);
  EXPECT_EQ(D.topkGroup, 4);
  EXPECT_DOUBLE_EQ(D.routedScalingFactor, 2.5);
  EXPECT_TRUE(D.normTopkProb);
  EXPECT_EQ(D.firstDenseLayers, 3);
  EXPECT_EQ(D.numSharedExperts, 1);
  EXPECT_EQ(D.quantMethod, "");
  EXPECT_EQ(D.fp8BlockRows, 0);

  EXPECT_CONTAINS(
      parseErrorOf(DeepSeekV3,
                   [](json::Object &O) { O["scoring_func"] = "softmax"; }),
      "'scoring_func' must be \"sigmoid\" for deepseek_v3, got "
      "\"softmax\"");
  EXPECT_CONTAINS(
      parseErrorOf(DeepSeekV3,
                   [](json::Object &O) { O["topk_method"] = "greedy"; }),
      "'topk_method' must be \"noaux_tc\" for deepseek_v3");
  // noaux_tc scores groups by their two best experts.
  EXPECT_CONTAINS(parseErrorOf(DeepSeekV3,
                               [](json::Object &O) {
                                 O["n_routed_experts"] = 8;
                                 O["topk_group"] = 1;
                                 O["num_experts_per_tok"] = 1;
                               }),
                  "n_routed_experts / n_group = 1");
  EXPECT_CONTAINS(
      parseErrorOf(DeepSeekV3,
                   [](json::Object &O) { O["num_experts_per_tok"] = 129; }),
      "num_experts_per_tok (129) exceeds the experts in "
      "topk_group groups (4 x 32)");
  EXPECT_CONTAINS(
      parseErrorOf(DeepSeekV3,
                   [](json::Object &O) { O["routed_scaling_factor"] = 0; }),
      "'routed_scaling_factor' must be positive");
  EXPECT_CONTAINS(
      parseErrorOf(DeepSeekV3,
                   [](json::Object &O) { O["n_shared_experts"] = -1; }),
      "'n_shared_experts' must be non-negative");
}

TEST(ModelConfigTest, DeepSeekMoELayerRules) {
  // modeling_deepseek.py: MoE iff layer >= first_k_dense_replace and
  // layer % moe_layer_freq == 0.
  for (const char *Base : {DeepSeekV2Lite, DeepSeekV3}) {
    MOEQ_ASSERT_EXPECTED(
        C, parseModelConfig(editedJSON(Base,
                                       [](json::Object &O) {
                                         O["num_hidden_layers"] = 8;
                                         O["first_k_dense_"
                                           "replace"] = 3;
                                         O["moe_layer_freq"] = 2;
                                       }),
                            "config.json"));
    std::vector<int64_t> MoE;
    for (int64_t L = -1; L <= 8; ++L)
      if (C.isMoELayer(L))
        MoE.push_back(L);
    EXPECT_EQ(MoE, (std::vector<int64_t>{4, 6}));
    EXPECT_CONTAINS(
        parseErrorOf(Base, [](json::Object &O) { O["moe_layer_freq"] = 0; }),
        "'moe_layer_freq' must be positive, got 0");
    EXPECT_CONTAINS(
        parseErrorOf(Base,
                     [](json::Object &O) { O["first_k_dense_replace"] = 100; }),
        "leading dense layers (100) is out of range");
  }
}

TEST(ModelConfigTest, QuantizationConfig) {
  auto WithQuant = [](json::Value Q) {
    return editedJSON(DeepSeekV3, [&](json::Object &O) {
      O["quantization_config"] = std::move(Q);
    });
  };
  MOEQ_ASSERT_EXPECTED(
      A, parseModelConfig(WithQuant(json::Object{{"quant_method", "fp8"}}),
                          "config.json"));
  EXPECT_EQ(A.quantMethod, "fp8");
  EXPECT_EQ(A.fp8BlockRows, 128); // FineGrainedFP8Config's default.
  EXPECT_EQ(A.fp8BlockCols, 128);
  MOEQ_ASSERT_EXPECTED(
      B, parseModelConfig(WithQuant(json::Object{
                              {"quant_method", "fp8"},
                              {"weight_block_size", json::Array{64, 32}}}),
                          "config.json"));
  EXPECT_EQ(B.fp8BlockRows, 64);
  EXPECT_EQ(B.fp8BlockCols, 32);
  // null: one scale per tensor.
  MOEQ_ASSERT_EXPECTED(
      P,
      parseModelConfig(WithQuant(json::Object{{"quant_method", "fp8"},
                                              {"weight_block_size", nullptr}}),
                       "config.json"));
  EXPECT_EQ(P.fp8BlockRows, 0);
  // Other methods are only recorded.
  MOEQ_ASSERT_EXPECTED(
      G, parseModelConfig(
             WithQuant(json::Object{{"quant_method", "gptq"}, {"bits", 4}}),
             "config.json"));
  EXPECT_EQ(G.quantMethod, "gptq");
  EXPECT_EQ(G.fp8BlockRows, 0);
  // And apply to every family.
  MOEQ_ASSERT_EXPECTED(
      Q, parseModelConfig(editedJSON(Qwen15MoE,
                                     [](json::Object &O) {
                                       O["quantization_"
                                         "config"] = json::Object{
                                           {"quant_method", "fp8"}};
                                     }),
                          "config.json"));
  EXPECT_EQ(Q.fp8BlockRows, 128);

  EXPECT_EQ(
      parseError(WithQuant(json::Object{{"fmt", "e4m3"}})),
      "config.json: missing string key 'quantization_config.quant_method'");
  EXPECT_EQ(parseError(WithQuant(
                json::Object{{"quant_method", "fp8"}, {"fmt", "e5m2"}})),
            "config.json: key 'quantization_config.fmt' must be \"e4m3\", got "
            "\"e5m2\"");
  EXPECT_CONTAINS(
      parseError(WithQuant(json::Object{
          {"quant_method", "fp8"}, {"weight_block_size", json::Array{128}}})),
      "'quantization_config.weight_block_size' must be two positive integers");
  EXPECT_CONTAINS(parseError(WithQuant(json::Object{
                      {"quant_method", "fp8"},
                      {"weight_block_size", json::Array{0, 128}}})),
                  "'quantization_config.weight_block_size' must be two "
                  "positive integers");
  EXPECT_CONTAINS(
      parseError(WithQuant(json::Object{{"quant_method", "fp8"},
                                        {"weight_block_size", "128x128"}})),
      "'quantization_config.weight_block_size' must be an array "
      "of integers");
  EXPECT_EQ(parseError(WithQuant("fp8")),
            "config.json: key 'quantization_config' must be an object, got a "
            "string");
}

TEST(ModelConfigTest, OLMoE) {
  MOEQ_ASSERT_EXPECTED(C, parseModelConfig(OLMoE1B7B, "config.json"));
  EXPECT_EQ(C.modelType, "olmoe");
  EXPECT_EQ(C.hiddenSize, 2048);
  EXPECT_EQ(C.numLayers, 16);
  EXPECT_EQ(C.numExperts, 64);
  EXPECT_EQ(C.topK, 8);
  EXPECT_EQ(C.moeIntermediateSize, 1024);
  EXPECT_EQ(C.intermediateSize, 1024);
  EXPECT_FALSE(C.normTopkProb);
  EXPECT_EQ(C.scoringFunc, "softmax");
  EXPECT_EQ(C.sharedIntermediateSize(), 0);
  EXPECT_EQ(C.numKeyValueHeads, 16);
  EXPECT_EQ(C.headDim, 128);
  EXPECT_EQ(C.vocabSize, 50304);
  for (int64_t L = 0; L < 16; ++L)
    EXPECT_TRUE(C.isMoELayer(L)) << L;
  MOEQ_ASSERT_EXPECTED(D,
                       parseModelConfig(editedJSON(OLMoE1B7B,
                                                   [](json::Object &O) {
                                                     O.erase("norm_topk_prob");
                                                     O.erase("num_key_value_"
                                                             "heads");
                                                     O.erase("max_position_"
                                                             "embeddings");
                                                   }),
                                        "config.json"));
  EXPECT_FALSE(D.normTopkProb);
  EXPECT_EQ(D.numKeyValueHeads, 16);
  EXPECT_EQ(D.maxPositionEmbeddings, 4096);
  MOEQ_ASSERT_EXPECTED(N, parseModelConfig(editedJSON(OLMoE1B7B,
                                                      [](json::Object &O) {
                                                        O["norm_topk_prob"] =
                                                            true;
                                                      }),
                                           "config.json"));
  EXPECT_TRUE(N.normTopkProb);
}

TEST(ModelConfigTest, EveryFamilysRequiredKeys) {
  struct Case {
    const char *Name;
    std::string Text;
    std::vector<const char *> Required;
  };
  std::vector<const char *> Common = {
      "model_type", "hidden_size",         "num_hidden_layers",
      "vocab_size", "num_attention_heads", "rms_norm_eps",
      "hidden_act", "intermediate_size",   "num_experts_per_tok"};
  Case Cases[] = {
      {"phimoe", Phi35MoE, {"num_local_experts", "num_key_value_heads"}},
      {"qwen2_moe",
       Qwen15MoE,
       {"num_experts", "moe_intermediate_size", "num_key_value_heads",
        "shared_expert_intermediate_size"}},
      {"qwen3_moe",
       Qwen3MoE30B,
       {"num_experts", "moe_intermediate_size", "num_key_value_heads"}},
      {"deepseek_v2",
       DeepSeekV2Lite,
       {"n_routed_experts", "moe_intermediate_size"}},
      {"deepseek_v3",
       DeepSeekV3,
       {"n_routed_experts", "moe_intermediate_size"}},
      {"olmoe", OLMoE1B7B, {"num_experts"}},
  };
  for (Case &C : Cases) {
    MOEQ_ASSERT_EXPECTED(Parsed, parseModelConfig(C.Text, "config.json"));
    EXPECT_EQ(Parsed.modelType, C.Name);
    std::vector<const char *> Keys = Common;
    Keys.insert(Keys.end(), C.Required.begin(), C.Required.end());
    for (const char *Key : Keys) {
      std::string Msg =
          parseErrorOf(C.Text, [&](json::Object &O) { O.erase(Key); });
      EXPECT_CONTAINS(Msg, "config.json: missing");
      EXPECT_CONTAINS(Msg, ("key '" + Twine(Key) + "'").str());
    }
    // Wrong types name the key too.
    EXPECT_CONTAINS(
        parseErrorOf(C.Text,
                     [&](json::Object &O) { O[C.Required[0]] = "many"; }),
        ("key '" + Twine(C.Required[0]) + "' must be an integer").str());
    EXPECT_CONTAINS(
        parseErrorOf(
            C.Text,
            [&](json::Object &O) { O["num_experts_per_tok"] = 100000; }),
        ("'num_experts_per_tok' must be in [1, " + Twine(C.Required[0]) + " = ")
            .str());
  }
}

} // namespace

//===----------------------------------------------------------------------===//
// The 2025-26 families (issue 15). Configs shaped like the released models'
// (the keys moeq reads, with their values; other keys trimmed).
//===----------------------------------------------------------------------===//

namespace {

/// Shaped like zai-org/GLM-4.5-Air: no topk_method / scoring_func keys.
const char *Glm45Air = R"({
  "architectures": ["Glm4MoeForCausalLM"], "model_type": "glm4_moe",
  "hidden_size": 4096, "num_hidden_layers": 46, "vocab_size": 151552,
  "num_attention_heads": 96, "num_key_value_heads": 8, "head_dim": 128,
  "rms_norm_eps": 1e-05, "hidden_act": "silu", "intermediate_size": 10944,
  "moe_intermediate_size": 1408, "n_routed_experts": 128, "n_shared_experts": 1,
  "num_experts_per_tok": 8, "first_k_dense_replace": 1, "norm_topk_prob": true,
  "routed_scaling_factor": 1.0, "n_group": 1, "topk_group": 1,
  "partial_rotary_factor": 0.5, "torch_dtype": "bfloat16"
})";

/// Shaped like tencent/Hunyuan-A13B-Instruct: moe_topk one entry per layer.
const char *HunyuanA13B = R"({
  "architectures": ["HunYuanMoEV1ForCausalLM"], "model_type": "hunyuan_v1_moe",
  "hidden_size": 4096, "num_hidden_layers": 4, "vocab_size": 128167,
  "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 128,
  "rms_norm_eps": 1e-05, "hidden_act": "silu", "intermediate_size": 3072,
  "num_experts": 64, "moe_topk": [8, 8, 8, 8], "torch_dtype": "bfloat16"
})";

/// Shaped like ibm-granite/granite-3.1-3b-a800m-instruct.
const char *Granite31A800M = R"({
  "architectures": ["GraniteMoeForCausalLM"], "model_type": "granitemoe",
  "hidden_size": 1536, "num_hidden_layers": 32, "vocab_size": 49155,
  "num_attention_heads": 24, "num_key_value_heads": 8, "rms_norm_eps": 1e-06,
  "hidden_act": "silu", "intermediate_size": 512, "num_local_experts": 40,
  "num_experts_per_tok": 8, "residual_multiplier": 0.22, "embedding_multiplier": 12.0,
  "torch_dtype": "bfloat16"
})";

} // namespace

TEST(ModelConfigTest, Glm4MoEIsDeepSeekV3Routing) {
  MOEQ_ASSERT_EXPECTED(C, parseModelConfig(Glm45Air, "config.json"));
  EXPECT_EQ(C.scoringFunc, "sigmoid");
  EXPECT_EQ(C.topkMethod, "noaux_tc");
  EXPECT_EQ(C.groupScoring, "top2_sum");
  EXPECT_TRUE(C.hasScoreCorrectionBias);
  EXPECT_TRUE(C.normTopkProb);
  EXPECT_EQ(C.nGroup, 1);
  EXPECT_EQ(C.sharedIntermediateSize(), 1408);
  EXPECT_EQ(C.tensorNames.block, "mlp");
  EXPECT_EQ(C.tensorNames.sharedExpert, "shared_experts");
  EXPECT_FALSE(C.isMoELayer(0));
  EXPECT_TRUE(C.isMoELayer(1));
  EXPECT_TRUE(C.isMoELayer(45));
  // Glm4MoeConfig's defaults: one shared expert, one leading dense layer.
  MOEQ_ASSERT_EXPECTED(D, parseModelConfig(editedJSON(Glm45Air,
                                                      [](json::Object &O) {
                                                        O.erase("n_shared_experts");
                                                        O.erase("first_k_dense_replace");
                                                        O.erase("norm_topk_prob");
                                                      }),
                                           "config.json"));
  EXPECT_EQ(D.numSharedExperts, 1);
  EXPECT_EQ(D.firstDenseLayers, 1);
  EXPECT_TRUE(D.normTopkProb);
}

TEST(ModelConfigTest, Dots1RequiresSharedExpertsAndDefaultsToNoNorm) {
  std::string Dots = editedJSON(Glm45Air, [](json::Object &O) {
    O["model_type"] = "dots1";
    O.erase("norm_topk_prob");
    O.erase("first_k_dense_replace");
  });
  MOEQ_ASSERT_EXPECTED(C, parseModelConfig(Dots, "config.json"));
  EXPECT_FALSE(C.normTopkProb);
  EXPECT_EQ(C.firstDenseLayers, 0);
  EXPECT_CONTAINS(parseErrorOf(Dots, [](json::Object &O) { O.erase("n_shared_experts"); }),
                  "missing integer key 'n_shared_experts'");
}

TEST(ModelConfigTest, HunyuanPerLayerValues) {
  MOEQ_ASSERT_EXPECTED(C, parseModelConfig(HunyuanA13B, "config.json"));
  EXPECT_EQ(C.numExperts, 64);
  EXPECT_EQ(C.topK, 8);
  // transformers 4.57 sizes experts and the shared MLP by intermediate_size.
  EXPECT_EQ(C.moeIntermediateSize, 3072);
  EXPECT_EQ(C.sharedIntermediateSize(), 3072);
  EXPECT_FALSE(C.sharedExpertGate);
  EXPECT_TRUE(C.normTopkProb);
  EXPECT_EQ(C.tensorNames.router, "gate.wg.weight");
  EXPECT_EQ(C.tensorNames.sharedExpert, "shared_mlp");
  for (int64_t L = 0; L < 4; ++L)
    EXPECT_TRUE(C.isMoELayer(L));
  // Layers with different expert counts or top-k: refused, naming the key.
  EXPECT_CONTAINS(parseErrorOf(HunyuanA13B,
                               [](json::Object &O) {
                                 O["moe_topk"] = json::Array{8, 8, 4, 8};
                               }),
                  "key 'moe_topk' gives layers different values");
  EXPECT_CONTAINS(parseErrorOf(HunyuanA13B,
                               [](json::Object &O) { O["num_experts"] = json::Array{}; }),
                  "key 'num_experts' must be an integer or a non-empty list");
  EXPECT_CONTAINS(parseErrorOf(HunyuanA13B,
                               [](json::Object &O) {
                                 O["moe_topk"] = json::Array{8, "8", 8, 8};
                               }),
                  "'moe_topk'");
}

TEST(ModelConfigTest, GraniteMoEStackedNames) {
  MOEQ_ASSERT_EXPECTED(C, parseModelConfig(Granite31A800M, "config.json"));
  EXPECT_EQ(C.numExperts, 40);
  EXPECT_EQ(C.topK, 8);
  EXPECT_EQ(C.moeIntermediateSize, 512);
  EXPECT_TRUE(C.normTopkProb); // softmax over the top-k logits
  EXPECT_EQ(C.sharedIntermediateSize(), 0);
  EXPECT_EQ(C.tensorNames.block, "block_sparse_moe");
  EXPECT_EQ(C.tensorNames.router, "router.layer.weight");
  EXPECT_EQ(C.tensorNames.gate, "");
  EXPECT_EQ(C.tensorNames.stackedGateUp, "input_linear.weight");
  EXPECT_EQ(C.tensorNames.stackedDown, "output_linear.weight");
}

TEST(ModelConfigTest, MiniMaxAndQwen3NextReuseTheirBlocks) {
  MOEQ_ASSERT_EXPECTED(M, parseModelConfig(editedJSON(Mixtral8x7B,
                                                      [](json::Object &O) {
                                                        O["model_type"] = "minimax";
                                                      }),
                                           "config.json"));
  EXPECT_EQ(M.tensorNames.gate, "w1");
  EXPECT_EQ(M.tensorNames.block, "block_sparse_moe");
  EXPECT_TRUE(M.normTopkProb);
  MOEQ_ASSERT_EXPECTED(Q, parseModelConfig(editedJSON(Qwen15MoE,
                                                      [](json::Object &O) {
                                                        O["model_type"] = "qwen3_next";
                                                        O.erase("norm_topk_prob");
                                                      }),
                                           "config.json"));
  EXPECT_TRUE(Q.normTopkProb); // Qwen3NextConfig's default
  EXPECT_TRUE(Q.sharedExpertGate);
  EXPECT_EQ(Q.tensorNames.sharedExpert, "shared_expert");
}

namespace {
/// Shaped like baidu/ERNIE-4.5-21B-A3B-PT.
const char *Ernie45A3B = R"({
  "architectures": ["Ernie4_5_MoeForCausalLM"], "model_type": "ernie4_5_moe",
  "hidden_size": 2560, "num_hidden_layers": 28, "vocab_size": 103424,
  "num_attention_heads": 20, "num_key_value_heads": 4, "rms_norm_eps": 1e-05,
  "hidden_act": "silu", "intermediate_size": 12288, "moe_intermediate_size": 1536,
  "moe_num_experts": 64, "moe_k": 6, "moe_num_shared_experts": 2,
  "moe_layer_start_index": 1, "moe_layer_end_index": 27, "moe_layer_interval": 1,
  "use_bias": false, "torch_dtype": "bfloat16"
})";
} // namespace

TEST(ModelConfigTest, Ernie45MoE) {
  MOEQ_ASSERT_EXPECTED(C, parseModelConfig(Ernie45A3B, "config.json"));
  EXPECT_EQ(C.numExperts, 64);
  EXPECT_EQ(C.topK, 6);
  EXPECT_EQ(C.sharedIntermediateSize(), 3072);
  EXPECT_FALSE(C.sharedExpertGate);
  EXPECT_TRUE(C.normTopkProb);
  EXPECT_EQ(C.scoringFunc, "softmax");
  EXPECT_TRUE(C.hasScoreCorrectionBias);
  EXPECT_EQ(C.tensorNames.scoreBias, "moe_statics.e_score_correction_bias");
  EXPECT_FALSE(C.isMoELayer(0));
  EXPECT_TRUE(C.isMoELayer(1));
  EXPECT_TRUE(C.isMoELayer(27));
  MOEQ_ASSERT_EXPECTED(E, parseModelConfig(editedJSON(Ernie45A3B,
                                                      [](json::Object &O) {
                                                        O["moe_layer_end_index"] = 20;
                                                        O["moe_layer_interval"] = 2;
                                                      }),
                                           "config.json"));
  EXPECT_TRUE(E.isMoELayer(1));
  EXPECT_FALSE(E.isMoELayer(2));
  EXPECT_TRUE(E.isMoELayer(19));
  EXPECT_FALSE(E.isMoELayer(21));
  // The end index -1 (its default) means the last layer.
  MOEQ_ASSERT_EXPECTED(D, parseModelConfig(editedJSON(Ernie45A3B,
                                                      [](json::Object &O) {
                                                        O.erase("moe_layer_end_index");
                                                      }),
                                           "config.json"));
  EXPECT_TRUE(D.isMoELayer(27));
  EXPECT_CONTAINS(parseErrorOf(Ernie45A3B, [](json::Object &O) { O["use_bias"] = true; }),
                  "key 'use_bias' is true");
  EXPECT_CONTAINS(
      parseErrorOf(Ernie45A3B, [](json::Object &O) { O["moe_layer_end_index"] = 28; }),
      "key 'moe_layer_end_index' must be -1 or a layer index below num_hidden_layers = 28");
}

namespace {

/// Shaped like the text_config of meta-llama/Llama-4-Maverick-17B-128E
/// (as a llama4_text config.json): MoE every second layer.
const char *Llama4Maverick = R"({
  "architectures": ["Llama4ForCausalLM"], "model_type": "llama4_text",
  "hidden_size": 5120, "num_hidden_layers": 48, "vocab_size": 202048,
  "num_attention_heads": 40, "num_key_value_heads": 8, "head_dim": 128,
  "rms_norm_eps": 1e-05, "hidden_act": "silu", "intermediate_size": 8192,
  "intermediate_size_mlp": 16384, "num_local_experts": 128, "num_experts_per_tok": 1,
  "interleave_moe_layer_step": 2, "moe_layers": null, "rope_theta": 500000.0,
  "torch_dtype": "bfloat16"
})";

} // namespace

TEST(ModelConfigTest, Llama4TextRoutingWeightsOnInputs) {
  MOEQ_ASSERT_EXPECTED(C, parseModelConfig(Llama4Maverick, "config.json"));
  EXPECT_EQ(C.numExperts, 128);
  EXPECT_EQ(C.topK, 1);
  EXPECT_EQ(C.moeIntermediateSize, 8192);
  EXPECT_EQ(C.intermediateSize, 16384); // the dense layers' MLP
  EXPECT_EQ(C.sharedIntermediateSize(), 8192);
  EXPECT_FALSE(C.sharedExpertGate);
  EXPECT_EQ(C.scoringFunc, "sigmoid");
  EXPECT_FALSE(C.normTopkProb);
  EXPECT_TRUE(C.routingWeightsScaleInput);
  EXPECT_EQ(C.tensorNames.block, "feed_forward");
  EXPECT_EQ(C.tensorNames.router, "router.weight");
  EXPECT_EQ(C.tensorNames.sharedExpert, "shared_expert");
  EXPECT_TRUE(C.tensorNames.stackedLayout == MoETensorNames::StackedLayout::TransposedHalves);
  // interleave_moe_layer_step 2: layers 1, 3, ..., 47.
  EXPECT_FALSE(C.isMoELayer(0));
  EXPECT_TRUE(C.isMoELayer(1));
  EXPECT_FALSE(C.isMoELayer(46));
  EXPECT_TRUE(C.isMoELayer(47));
  // An explicit moe_layers list wins; absent keys take Llama4TextConfig's
  // defaults (16 experts, top-1, step 1: every layer).
  MOEQ_ASSERT_EXPECTED(L, parseModelConfig(editedJSON(Llama4Maverick,
                                                      [](json::Object &O) {
                                                        O["moe_layers"] = json::Array{0, 5};
                                                      }),
                                           "config.json"));
  EXPECT_TRUE(L.isMoELayer(0));
  EXPECT_FALSE(L.isMoELayer(1));
  EXPECT_TRUE(L.isMoELayer(5));
  MOEQ_ASSERT_EXPECTED(D, parseModelConfig(editedJSON(Llama4Maverick,
                                                      [](json::Object &O) {
                                                        O.erase("num_local_experts");
                                                        O.erase("num_experts_per_tok");
                                                        O.erase("interleave_moe_layer_step");
                                                        O.erase("intermediate_size_mlp");
                                                      }),
                                           "config.json"));
  EXPECT_EQ(D.numExperts, 16);
  EXPECT_EQ(D.topK, 1);
  EXPECT_EQ(D.intermediateSize, 16384);
  EXPECT_TRUE(D.isMoELayer(0));
  EXPECT_TRUE(D.isMoELayer(47));
  EXPECT_CONTAINS(
      parseErrorOf(Llama4Maverick, [](json::Object &O) { O["moe_layers"] = json::Array{1, 48}; }),
      "key 'moe_layers' lists layer 48, outside num_hidden_layers = 48");
  EXPECT_CONTAINS(
      parseErrorOf(Llama4Maverick, [](json::Object &O) { O["interleave_moe_layer_step"] = 0; }),
      "key 'interleave_moe_layer_step' must be positive, got 0");
  EXPECT_CONTAINS(parseErrorOf(Llama4Maverick, [](json::Object &O) { O.erase("intermediate_size"); }),
                  "missing integer key 'intermediate_size'");
}

namespace {

/// openai/gpt-oss-20b's config.json (layer_types trimmed to 4 layers).
const char *GptOss20B = R"({
  "architectures": ["GptOssForCausalLM"], "model_type": "gpt_oss",
  "hidden_size": 2880, "intermediate_size": 2880, "num_hidden_layers": 4,
  "num_local_experts": 32, "num_experts_per_tok": 4, "experts_per_token": 4,
  "num_attention_heads": 64, "num_key_value_heads": 8, "head_dim": 64,
  "rms_norm_eps": 1e-05, "hidden_act": "silu", "vocab_size": 201088,
  "sliding_window": 128, "rope_theta": 150000, "swiglu_limit": 7.0,
  "layer_types": ["sliding_attention", "full_attention", "sliding_attention", "full_attention"],
  "torch_dtype": "bfloat16"
})";

} // namespace

TEST(ModelConfigTest, GptOssBiasesAndClampedSwiGLU) {
  MOEQ_ASSERT_EXPECTED(C, parseModelConfig(GptOss20B, "config.json"));
  EXPECT_EQ(C.numExperts, 32);
  EXPECT_EQ(C.topK, 4);
  EXPECT_EQ(C.moeIntermediateSize, 2880);
  EXPECT_EQ(C.sharedIntermediateSize(), 0);
  EXPECT_EQ(C.scoringFunc, "softmax");
  EXPECT_TRUE(C.normTopkProb); // softmax over the top-k logits
  EXPECT_TRUE(C.hasRouterBias);
  EXPECT_TRUE(C.hasExpertBiases);
  EXPECT_EQ(C.expertActivation, "clamped_swiglu");
  EXPECT_EQ(C.swigluLimit, 7.0);
  EXPECT_EQ(C.tensorNames.router, "router.weight");
  EXPECT_EQ(C.tensorNames.routerBias, "router.bias");
  EXPECT_TRUE(C.tensorNames.stackedLayout ==
              MoETensorNames::StackedLayout::TransposedInterleaved);
  for (int64_t L = 0; L < 4; ++L)
    EXPECT_TRUE(C.isMoELayer(L));
  MOEQ_ASSERT_EXPECTED(D, parseModelConfig(editedJSON(GptOss20B,
                                                      [](json::Object &O) {
                                                        O.erase("swiglu_limit");
                                                        O.erase("num_local_experts");
                                                        O.erase("num_experts_per_tok");
                                                      }),
                                           "config.json"));
  EXPECT_EQ(D.swigluLimit, 7.0);
  EXPECT_EQ(D.numExperts, 128);
  EXPECT_EQ(D.topK, 4);
  EXPECT_CONTAINS(parseErrorOf(GptOss20B, [](json::Object &O) { O["swiglu_limit"] = -1.0; }),
                  "key 'swiglu_limit' must be positive");
}

// transformers 5 writes Qwen3-MoE's expert count as num_local_experts and
// rope_theta inside rope_parameters.
TEST(ModelConfigTest, Transformers5RenamedKeys) {
  std::string V5 = editedJSON(Qwen3MoE30B, [](json::Object &O) {
    O["num_local_experts"] = *O.get("num_experts");
    O.erase("num_experts");
    O.erase("rope_theta");
    O["rope_parameters"] = json::Object{{"rope_type", "default"}, {"rope_theta", 2500000.0}};
  });
  MOEQ_ASSERT_EXPECTED(C, parseModelConfig(V5, "config.json"));
  EXPECT_EQ(C.numExperts, 128);
  EXPECT_EQ(C.ropeTheta, 2500000.0);
  EXPECT_CONTAINS(parseErrorOf(V5, [](json::Object &O) { O.erase("num_local_experts"); }),
                  "missing integer key 'num_experts' (transformers 5: 'num_local_experts')");
  // gpt-oss's swiglu_alpha, which transformers 5 writes.
  MOEQ_ASSERT_EXPECTED(G, parseModelConfig(editedJSON(GptOss20B,
                                                      [](json::Object &O) {
                                                        O["swiglu_alpha"] = 1.5;
                                                      }),
                                           "config.json"));
  EXPECT_EQ(G.swigluAlpha, 1.5);
}

// Llama 4 as released: model_type llama4 with the text model's keys in
// text_config (errors name them so) and its tensors under language_model.
TEST(ModelConfigTest, Llama4MultimodalNestsTheTextConfig) {
  json::Value Text = *json::parse(Llama4Maverick);
  json::Object Root{{"model_type", "llama4"},
                    {"architectures", json::Array{"Llama4ForConditionalGeneration"}},
                    {"text_config", std::move(Text)},
                    {"vision_config", json::Object{{"hidden_size", 1408}}}};
  std::string Multimodal = llvm::formatv("{0}", json::Value(std::move(Root))).str();
  MOEQ_ASSERT_EXPECTED(C, parseModelConfig(Multimodal, "config.json"));
  EXPECT_EQ(C.modelType, "llama4");
  EXPECT_EQ(C.numExperts, 128);
  EXPECT_TRUE(C.routingWeightsScaleInput);
  EXPECT_EQ(C.tensorNames.layerPrefix, "language_model.model.layers.");
  EXPECT_TRUE(C.isMoELayer(47));
  EXPECT_FALSE(C.isMoELayer(46));
  EXPECT_CONTAINS(parseErrorOf(Multimodal,
                               [](json::Object &O) {
                                 O.get("text_config")->getAsObject()->erase("hidden_size");
                               }),
                  "missing integer key 'text_config.hidden_size'");
  EXPECT_CONTAINS(parseErrorOf(Multimodal, [](json::Object &O) { O.erase("text_config"); }),
                  "missing object key 'text_config'");
  MOEQ_ASSERT_EXPECTED(T, parseModelConfig(Llama4Maverick, "config.json"));
  EXPECT_EQ(T.tensorNames.layerPrefix, "model.layers.");
}
