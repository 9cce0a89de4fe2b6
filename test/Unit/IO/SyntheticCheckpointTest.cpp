//===- SyntheticCheckpointTest.cpp - synthetic Mixtral checkpoint tests ---===//

#include "moeq/IO/SyntheticCheckpoint.h"

#include "moeq/IO/Checkpoint.h"
#include "moeq/IO/Float16.h"
#include "moeq/IO/ModelConfig.h"
#include "moeq/IO/SafeTensors.h"

#include "IOTestUtil.h"

#include <cmath>
#include <set>

using namespace llvm;
using namespace mlir::moeq::io;
using namespace mlir::moeq::io::test;

namespace {

double mean(ArrayRef<float> V) {
  double S = 0;
  for (float X : V)
    S += X;
  return S / V.size();
}

double rms(ArrayRef<float> V) {
  double S = 0;
  for (float X : V)
    S += double(X) * X;
  return std::sqrt(S / V.size());
}

/// RMS of each column of a row-major [Rows, Cols] matrix.
std::vector<double> columnRMS(ArrayRef<float> V, int64_t Cols) {
  std::vector<double> S(Cols, 0.0);
  int64_t Rows = V.size() / Cols;
  for (int64_t R = 0; R < Rows; ++R)
    for (int64_t C = 0; C < Cols; ++C)
      S[C] += double(V[R * Cols + C]) * V[R * Cols + C];
  for (double &X : S)
    X = std::sqrt(X / Rows);
  return S;
}

/// The Hugging Face Mixtral tensor names, written out independently of the
/// generator.
std::set<std::string> expectedNames(int64_t Layers, int64_t Experts) {
  std::set<std::string> Names = {"model.embed_tokens.weight",
                                 "model.norm.weight", "lm_head.weight"};
  for (int64_t L = 0; L < Layers; ++L) {
    std::string P = "model.layers." + std::to_string(L) + ".";
    for (const char *S :
         {"input_layernorm.weight", "post_attention_layernorm.weight",
          "self_attn.q_proj.weight", "self_attn.k_proj.weight",
          "self_attn.v_proj.weight", "self_attn.o_proj.weight",
          "block_sparse_moe.gate.weight"})
      Names.insert(P + S);
    for (int64_t E = 0; E < Experts; ++E)
      for (const char *W : {"w1", "w2", "w3"})
        Names.insert(P + "block_sparse_moe.experts." + std::to_string(E) + "." +
                     W + ".weight");
  }
  return Names;
}

class SyntheticCheckpointTest : public ::testing::Test {
protected:
  ScopedTempDir Tmp;
};

TEST_F(SyntheticCheckpointTest, DefaultsRoundTripThroughCheckpoint) {
  SyntheticMixtralOptions Opts;
  std::string Dir = Tmp.file("ckpt");
  MOEQ_ASSERT_NO_ERROR(writeSyntheticMixtral(Dir, Opts));
  EXPECT_TRUE(sys::fs::exists(Dir + "/config.json"));
  EXPECT_TRUE(sys::fs::exists(Dir + "/model.safetensors"));

  MOEQ_ASSERT_EXPECTED(C, Checkpoint::open(Dir));
  std::vector<StringRef> Names = C->tensorNames();
  std::set<std::string> Got(Names.begin(), Names.end());
  EXPECT_EQ(Got, expectedNames(2, 4));
  EXPECT_EQ(Names.size(), 3u + 2 * (7 + 3 * 4));

  auto ShapeOf = [&](StringRef Name) {
    const TensorInfo *T = C->find(Name);
    EXPECT_NE(T, nullptr) << Name.str();
    return T ? T->shape : std::vector<int64_t>{};
  };
  using Shape = std::vector<int64_t>;
  EXPECT_EQ(ShapeOf("model.embed_tokens.weight"), (Shape{256, 128}));
  EXPECT_EQ(ShapeOf("lm_head.weight"), (Shape{256, 128}));
  EXPECT_EQ(ShapeOf("model.norm.weight"), (Shape{128}));
  EXPECT_EQ(ShapeOf("model.layers.1.input_layernorm.weight"), (Shape{128}));
  EXPECT_EQ(ShapeOf("model.layers.0.self_attn.q_proj.weight"),
            (Shape{128, 128}));
  // kvHeads (2) * headDim (128 / 4).
  EXPECT_EQ(ShapeOf("model.layers.0.self_attn.k_proj.weight"),
            (Shape{64, 128}));
  EXPECT_EQ(ShapeOf("model.layers.0.self_attn.v_proj.weight"),
            (Shape{64, 128}));
  EXPECT_EQ(ShapeOf("model.layers.0.self_attn.o_proj.weight"),
            (Shape{128, 128}));
  EXPECT_EQ(ShapeOf("model.layers.0.block_sparse_moe.gate.weight"),
            (Shape{4, 128}));
  EXPECT_EQ(ShapeOf("model.layers.1.block_sparse_moe.experts.3.w1.weight"),
            (Shape{256, 128}));
  EXPECT_EQ(ShapeOf("model.layers.1.block_sparse_moe.experts.3.w3.weight"),
            (Shape{256, 128}));
  EXPECT_EQ(ShapeOf("model.layers.1.block_sparse_moe.experts.3.w2.weight"),
            (Shape{128, 256}));
  for (const TensorInfo &T : C->shards()[0]->tensors())
    EXPECT_EQ(T.dtype, DType::BF16) << T.name;
  EXPECT_EQ(C->shards()[0]->metadata().at("format"), "pt");

  // The public list agrees with what was written.
  for (const SyntheticTensorSpec &S : syntheticMixtralTensors(Opts))
    EXPECT_EQ(ShapeOf(S.name), S.shape) << S.name;

  MOEQ_ASSERT_EXPECTED(Cfg, loadModelConfig(Dir));
  EXPECT_EQ(Cfg.modelType, "mixtral");
  EXPECT_EQ(Cfg.architectures, std::vector<std::string>{"MixtralForCausalLM"});
  EXPECT_EQ(Cfg.numLayers, 2);
  EXPECT_EQ(Cfg.hiddenSize, 128);
  EXPECT_EQ(Cfg.moeIntermediateSize, 256);
  EXPECT_EQ(Cfg.numExperts, 4);
  EXPECT_EQ(Cfg.topK, 2);
  EXPECT_EQ(Cfg.vocabSize, 256);
  EXPECT_EQ(Cfg.numAttentionHeads, 4);
  EXPECT_EQ(Cfg.numKeyValueHeads, 2);
  EXPECT_EQ(Cfg.headDim, 32);
  EXPECT_DOUBLE_EQ(Cfg.rmsNormEps, 1e-5);
  EXPECT_EQ(Cfg.torchDtype, "bfloat16");
  EXPECT_FALSE(Cfg.tieWordEmbeddings);
}

TEST_F(SyntheticCheckpointTest, Deterministic) {
  SyntheticMixtralOptions Opts;
  Opts.seed = 7;
  std::string A = Tmp.file("a"), B = Tmp.file("b"), D = Tmp.file("d");
  MOEQ_ASSERT_NO_ERROR(writeSyntheticMixtral(A, Opts));
  MOEQ_ASSERT_NO_ERROR(writeSyntheticMixtral(B, Opts));
  for (const char *F : {"/config.json", "/model.safetensors"}) {
    std::string BytesA = readBytes(A + F);
    EXPECT_GT(BytesA.size(), 100u);
    EXPECT_TRUE(BytesA == readBytes(B + F)) << F;
  }
  Opts.seed = 8;
  MOEQ_ASSERT_NO_ERROR(writeSyntheticMixtral(D, Opts));
  EXPECT_FALSE(readBytes(A + "/model.safetensors") ==
               readBytes(D + "/model.safetensors"));
  EXPECT_EQ(readBytes(A + "/config.json"), readBytes(D + "/config.json"));
}

TEST_F(SyntheticCheckpointTest, ValueStatistics) {
  SyntheticMixtralOptions Opts;
  Opts.dtype = DType::F32;
  std::string Dir = Tmp.file("stats");
  MOEQ_ASSERT_NO_ERROR(writeSyntheticMixtral(Dir, Opts));
  MOEQ_ASSERT_EXPECTED(C, Checkpoint::open(Dir));
  auto Read = [&](StringRef Name) {
    auto V = C->readAsFloat(Name);
    EXPECT_TRUE(bool(V)) << Name.str();
    if (!V) {
      consumeError(V.takeError());
      return std::vector<float>();
    }
    return *V;
  };
  const double InvSqrtHidden = 1.0 / std::sqrt(128.0);

  std::vector<float> Norm = Read("model.layers.0.input_layernorm.weight");
  EXPECT_NEAR(mean(Norm), 1.0, 0.05);

  std::vector<float> Q = Read("model.layers.0.self_attn.q_proj.weight");
  EXPECT_NEAR(mean(Q), 0.0, 0.01);
  EXPECT_NEAR(rms(Q), InvSqrtHidden, 0.1 * InvSqrtHidden);

  std::vector<float> Gate = Read("model.layers.0.block_sparse_moe.gate.weight");
  EXPECT_NEAR(rms(Gate), 2 * InvSqrtHidden, 0.2 * InvSqrtHidden);

  // Experts get increasing scales; compare the non-outlier bulk via the
  // median column RMS.
  auto MedianColumnRMS = [&](StringRef Name, int64_t Cols) {
    std::vector<double> R = columnRMS(Read(Name), Cols);
    std::nth_element(R.begin(), R.begin() + R.size() / 2, R.end());
    return R[R.size() / 2];
  };
  double E0 = MedianColumnRMS(
      "model.layers.0.block_sparse_moe.experts.0.w1.weight", 128);
  double E3 = MedianColumnRMS(
      "model.layers.0.block_sparse_moe.experts.3.w1.weight", 128);
  EXPECT_NEAR(E0, 0.75 * InvSqrtHidden, 0.1 * InvSqrtHidden);
  EXPECT_NEAR(E3, 1.25 * InvSqrtHidden, 0.1 * InvSqrtHidden);

  // A few input columns of each expert linear are outliers.
  for (const char *W : {"w1", "w2", "w3"}) {
    std::string Name =
        std::string("model.layers.1.block_sparse_moe.experts.2.") + W +
        ".weight";
    int64_t Cols = StringRef(W) == "w2" ? 256 : 128;
    std::vector<double> R = columnRMS(Read(Name), Cols);
    std::vector<double> Sorted = R;
    llvm::sort(Sorted);
    double Median = Sorted[Sorted.size() / 2];
    int Outliers = llvm::count_if(R, [&](double X) { return X > 4 * Median; });
    EXPECT_GE(Outliers, 1) << Name;
    EXPECT_LE(Outliers, Cols / 16) << Name;
  }

  // Routing is non-uniform: router logits for a random token differ.
  std::vector<float> Emb = Read("model.embed_tokens.weight");
  std::vector<double> Logits(4, 0.0);
  for (int E = 0; E < 4; ++E)
    for (int H = 0; H < 128; ++H)
      Logits[E] += double(Gate[E * 128 + H]) * Emb[H];
  double Spread = *std::max_element(Logits.begin(), Logits.end()) -
                  *std::min_element(Logits.begin(), Logits.end());
  EXPECT_GT(Spread, 0.5);
}

TEST_F(SyntheticCheckpointTest, DTypesAndCustomShape) {
  for (DType T : {DType::F16, DType::F32, DType::BF16}) {
    SyntheticMixtralOptions Opts;
    Opts.layers = 1;
    Opts.hidden = 64;
    Opts.intermediate = 96;
    Opts.experts = 3;
    Opts.topK = 1;
    Opts.vocab = 50;
    Opts.heads = 8;
    Opts.kvHeads = 8;
    Opts.dtype = T;
    std::string Dir = Tmp.file(("d" + dtypeName(T)).str());
    MOEQ_ASSERT_NO_ERROR(writeSyntheticMixtral(Dir, Opts));
    MOEQ_ASSERT_EXPECTED(C, Checkpoint::open(Dir));
    EXPECT_EQ(C->numTensors(), 3u + 1 * (7 + 3 * 3));
    const TensorInfo *K = C->find("model.layers.0.self_attn.k_proj.weight");
    ASSERT_NE(K, nullptr);
    EXPECT_EQ(K->dtype, T);
    EXPECT_EQ(K->shape, (std::vector<int64_t>{64, 64}));
    const TensorInfo *W2 =
        C->find("model.layers.0.block_sparse_moe.experts.2.w2.weight");
    ASSERT_NE(W2, nullptr);
    EXPECT_EQ(W2->shape, (std::vector<int64_t>{64, 96}));
    MOEQ_ASSERT_EXPECTED(Cfg, loadModelConfig(Dir));
    EXPECT_EQ(Cfg.topK, 1);
    EXPECT_EQ(Cfg.headDim, 8);
  }
}

TEST_F(SyntheticCheckpointTest, ShardedMatchesUnsharded) {
  SyntheticMixtralOptions Opts;
  Opts.seed = 3;
  std::string One = Tmp.file("one"), Three = Tmp.file("three");
  MOEQ_ASSERT_NO_ERROR(writeSyntheticMixtral(One, Opts));
  Opts.shards = 3;
  MOEQ_ASSERT_NO_ERROR(writeSyntheticMixtral(Three, Opts));
  EXPECT_TRUE(sys::fs::exists(Three + "/" + Checkpoint::IndexFileName));
  EXPECT_TRUE(sys::fs::exists(Three + "/model-00003-of-00003.safetensors"));

  MOEQ_ASSERT_EXPECTED(A, Checkpoint::open(One));
  MOEQ_ASSERT_EXPECTED(B, Checkpoint::open(Three));
  EXPECT_EQ(B->shards().size(), 3u);
  for (const auto &S : B->shards())
    EXPECT_FALSE(S->tensors().empty());
  ASSERT_EQ(A->tensorNames(), B->tensorNames());
  uint64_t Total = 0;
  for (StringRef Name : A->tensorNames()) {
    MOEQ_ASSERT_EXPECTED(DA, A->data(Name));
    MOEQ_ASSERT_EXPECTED(DB, B->data(Name));
    EXPECT_TRUE(DA == DB) << Name.str();
    Total += DA.size();
  }
  EXPECT_EQ(B->indexMetadata().at("total_size"), std::to_string(Total));
}

TEST_F(SyntheticCheckpointTest, InvalidOptions) {
  auto Check = [&](function_ref<void(SyntheticMixtralOptions &)> Edit,
                   StringRef Fragment) {
    SyntheticMixtralOptions Opts;
    Edit(Opts);
    std::string Dir = Tmp.file("invalid");
    std::string Msg = errorText(writeSyntheticMixtral(Dir, Opts));
    EXPECT_NE(Msg.find(Fragment.str()), std::string::npos) << Msg;
    EXPECT_FALSE(sys::fs::exists(Dir));
  };
  Check([](auto &O) { O.topK = 5; }, "top-k");
  Check([](auto &O) { O.topK = 0; }, "top-k");
  Check([](auto &O) { O.layers = 0; }, "layers must be positive");
  Check([](auto &O) { O.hidden = 130; }, "multiple of heads");
  Check([](auto &O) { O.kvHeads = 3; }, "multiple of kv-heads");
  Check([](auto &O) { O.dtype = DType::I8; }, "dtype");
  Check([](auto &O) { O.shards = 1000; }, "shards");
}

TEST_F(SyntheticCheckpointTest, NaNInjection) {
  const std::string W1 = "model.layers.1.block_sparse_moe.experts.2.w1.weight";
  for (DType T : {DType::BF16, DType::F16, DType::F32}) {
    SyntheticMixtralOptions Opts;
    Opts.hidden = 64;
    Opts.intermediate = 128;
    Opts.dtype = T;
    std::string Clean = Tmp.file(("clean" + dtypeName(T)).str());
    MOEQ_ASSERT_NO_ERROR(writeSyntheticMixtral(Clean, Opts));
    Opts.nanTensor = W1;
    Opts.nanIndex = 70; // [128, 64]: row 1, column 6.
    std::string Dir = Tmp.file(("nan" + dtypeName(T)).str());
    MOEQ_ASSERT_NO_ERROR(writeSyntheticMixtral(Dir, Opts));
    // config.json does not mention the fault.
    EXPECT_EQ(readBytes(Clean + "/config.json"),
              readBytes(Dir + "/config.json"));

    MOEQ_ASSERT_EXPECTED(A, Checkpoint::open(Clean));
    MOEQ_ASSERT_EXPECTED(B, Checkpoint::open(Dir));
    ASSERT_EQ(A->tensorNames(), B->tensorNames());
    for (StringRef Name : A->tensorNames()) {
      MOEQ_ASSERT_EXPECTED(VA, A->readAsFloat(Name));
      MOEQ_ASSERT_EXPECTED(VB, B->readAsFloat(Name));
      ASSERT_EQ(VA.size(), VB.size()) << Name.str();
      for (size_t I = 0; I < VA.size(); ++I) {
        if (Name == W1 && I == 70) {
          EXPECT_TRUE(std::isnan(VB[I])) << dtypeName(T).str();
          EXPECT_FALSE(std::isnan(VA[I]));
        } else {
          // Same bits: every other value is untouched.
          EXPECT_EQ(floatToBits(VA[I]), floatToBits(VB[I]))
              << Name.str() << "[" << I << "] " << dtypeName(T).str();
        }
      }
    }
  }

  // The last element and other tensors work too; sharding does not matter.
  SyntheticMixtralOptions Opts;
  Opts.nanTensor = "model.norm.weight";
  Opts.nanIndex = 127;
  Opts.shards = 3;
  std::string Dir = Tmp.file("nanlast");
  MOEQ_ASSERT_NO_ERROR(writeSyntheticMixtral(Dir, Opts));
  MOEQ_ASSERT_EXPECTED(C, Checkpoint::open(Dir));
  MOEQ_ASSERT_EXPECTED(Norm, C->readAsFloat("model.norm.weight"));
  ASSERT_EQ(Norm.size(), 128u);
  EXPECT_TRUE(std::isnan(Norm[127]));
  EXPECT_EQ(llvm::count_if(Norm, [](float X) { return std::isnan(X); }), 1);
}

TEST_F(SyntheticCheckpointTest, InvalidNaNOptions) {
  auto Check = [&](StringRef Tensor, int64_t Index, StringRef Fragment) {
    SyntheticMixtralOptions Opts;
    Opts.nanTensor = Tensor.str();
    Opts.nanIndex = Index;
    std::string Dir = Tmp.file("invalid-nan");
    std::string Msg = errorText(writeSyntheticMixtral(Dir, Opts));
    EXPECT_NE(Msg.find(Fragment.str()), std::string::npos) << Msg;
    EXPECT_FALSE(sys::fs::exists(Dir));
  };
  Check("model.layers.0.block_sparse_moe.experts.9.w1.weight", 0,
        "nan-tensor 'model.layers.0.block_sparse_moe.experts.9.w1.weight' is "
        "not a tensor");
  // experts.0.w2 is [128, 256].
  Check("model.layers.0.block_sparse_moe.experts.0.w2.weight", 128 * 256,
        "nan-index 32768 is out of range");
  Check("model.norm.weight", -1, "nan-index -1 is out of range");
  Check("", 5, "nan-index needs nan-tensor");
}

TEST_F(SyntheticCheckpointTest, ReplacesOnlyCheckpointDirectories) {
  SyntheticMixtralOptions Opts;
  std::string Dir = Tmp.file("out");
  MOEQ_ASSERT_NO_ERROR(writeSyntheticMixtral(Dir, Opts));
  // Regenerating over an old checkpoint (with a stale shard) replaces it.
  writeBytes(Dir + "/stale.safetensors", "x");
  Opts.layers = 1;
  MOEQ_ASSERT_NO_ERROR(writeSyntheticMixtral(Dir, Opts));
  EXPECT_FALSE(sys::fs::exists(Dir + "/stale.safetensors"));
  MOEQ_ASSERT_EXPECTED(Cfg, loadModelConfig(Dir));
  EXPECT_EQ(Cfg.numLayers, 1);

  // A directory with anything else in it is left alone.
  writeBytes(Dir + "/notes.txt", "precious");
  std::string Msg = errorText(writeSyntheticMixtral(Dir, Opts));
  EXPECT_NE(Msg.find("refusing to replace"), std::string::npos) << Msg;
  EXPECT_NE(Msg.find("notes.txt"), std::string::npos) << Msg;
  EXPECT_EQ(readBytes(Dir + "/notes.txt"), "precious");

  // No temporary directories are left behind.
  std::error_code EC;
  for (sys::fs::directory_iterator It(Tmp.path(), EC), End; It != End && !EC;
       It.increment(EC))
    EXPECT_EQ(sys::path::filename(It->path()), "out");
}

//===----------------------------------------------------------------------===//
// Families
//===----------------------------------------------------------------------===//

/// FNV-1a, for golden checks of whole files.
uint64_t fnv1a(StringRef S) {
  uint64_t H = 0xcbf29ce484222325ULL;
  for (unsigned char C : S) {
    H ^= C;
    H *= 0x100000001b3ULL;
  }
  return H;
}

TEST_F(SyntheticCheckpointTest, MixtralBytesUnchanged) {
  // The default checkpoint's bytes as the generator wrote them before it
  // knew other families: adding families must not change Mixtral's output.
  // (The values only involve libm through Box-Muller, whose last-ulp
  // differences vanish when rounded to BF16.)
  SyntheticMixtralOptions Opts;
  std::string Dir = Tmp.file("golden");
  MOEQ_ASSERT_NO_ERROR(writeSyntheticMixtral(Dir, Opts));
  EXPECT_EQ(fnv1a(readBytes(Dir + "/config.json")), 0xb1e38504f6fd7a51ULL);
  EXPECT_EQ(fnv1a(readBytes(Dir + "/model.safetensors")),
            0x35d269a5a055cb6bULL);
}

struct FamilyCase {
  std::string Family;
  int64_t DenseLayers = 0;
  bool Stacked = false;
  bool FP8 = false;
};

/// The Hugging Face tensor names of a family, written out independently of
/// the generator (from transformers 4.57's modeling files; stacked experts
/// from transformers v5's).
std::set<std::string> expectedFamilyNames(const FamilyCase &F, int64_t Layers,
                                          int64_t Experts) {
  std::set<std::string> Names = {"model.embed_tokens.weight",
                                 "model.norm.weight", "lm_head.weight"};
  bool Phi = F.Family == "phimoe", Mixtral = F.Family == "mixtral";
  bool DeepSeek = StringRef(F.Family).starts_with("deepseek");
  if (Phi)
    Names.insert("model.norm.bias");
  for (int64_t L = 0; L < Layers; ++L) {
    std::string P = "model.layers." + std::to_string(L) + ".";
    auto Add = [&](const std::string &S) { Names.insert(P + S); };
    Add("input_layernorm.weight");
    Add("post_attention_layernorm.weight");
    if (Phi) {
      Add("input_layernorm.bias");
      Add("post_attention_layernorm.bias");
    }
    if (DeepSeek) {
      for (const char *S :
           {"q_proj.weight", "kv_a_proj_with_mqa.weight",
            "kv_a_layernorm.weight", "kv_b_proj.weight", "o_proj.weight"})
        Add(std::string("self_attn.") + S);
    } else {
      for (const char *S : {"q_proj", "k_proj", "v_proj", "o_proj"})
        Add(std::string("self_attn.") + S + ".weight");
    }
    if (F.Family == "qwen2_moe")
      for (const char *S : {"q_proj", "k_proj", "v_proj"})
        Add(std::string("self_attn.") + S + ".bias");
    if (F.Family == "qwen3_moe" || F.Family == "olmoe") {
      Add("self_attn.q_norm.weight");
      Add("self_attn.k_norm.weight");
    }
    if (L < F.DenseLayers) {
      for (const char *S : {"gate_proj", "up_proj", "down_proj"})
        Add(std::string("mlp.") + S + ".weight");
      continue;
    }
    std::string M = Mixtral || Phi ? "block_sparse_moe." : "mlp.";
    Add(M + "gate.weight");
    if (F.Family == "deepseek_v3")
      Add(M + "gate.e_score_correction_bias");
    static const char *const MixtralLinears[] = {"w1", "w2", "w3"};
    static const char *const Linears[] = {"gate_proj", "up_proj", "down_proj"};
    if (F.Stacked) {
      Add(M + "experts.gate_up_proj");
      Add(M + "experts.down_proj");
    } else {
      for (int64_t E = 0; E < Experts; ++E)
        for (const char *W : Mixtral || Phi ? MixtralLinears : Linears) {
          std::string Name =
              M + "experts." + std::to_string(E) + "." + W + ".weight";
          Add(Name);
          if (F.FP8)
            Add(Name + "_scale_inv");
        }
    }
    if (F.Family == "qwen2_moe") {
      for (const char *S : {"gate_proj", "up_proj", "down_proj"})
        Add(std::string("mlp.shared_expert.") + S + ".weight");
      Add("mlp.shared_expert_gate.weight");
    }
    if (DeepSeek)
      for (const char *S : {"gate_proj", "up_proj", "down_proj"}) {
        Add(std::string("mlp.shared_experts.") + S + ".weight");
        if (F.FP8)
          Add(std::string("mlp.shared_experts.") + S + ".weight_scale_inv");
      }
  }
  return Names;
}

TEST_F(SyntheticCheckpointTest, EveryFamily) {
  std::vector<FamilyCase> Cases = {
      {"mixtral"},
      {"phimoe"},
      {"qwen2_moe"},
      {"qwen2_moe", 1, true},
      {"qwen3_moe", 1},
      {"qwen3_moe", 0, true},
      {"deepseek_v2", 1},
      {"deepseek_v2", 0, true},
      {"deepseek_v3", 1},
      {"deepseek_v3", 2, false, true},
      {"deepseek_v3", 1, true},
      {"olmoe"},
      {"olmoe", 0, true},
  };
  // The generator covers the first seven families; the later ones are
  // imported and tested from checkpoints transformers builds
  // (test/Semantics) and are listed here until the generator has them
  // (docs/status.md), so that a new family cannot miss it silently.
  std::vector<StringRef> NotGenerated = {"glm4_moe", "dots1",          "qwen3_next",
                                         "minimax",  "hunyuan_v1_moe", "ernie4_5_moe",
                                         "granitemoe",   "llama4_text",    "llama4",
                                         "gpt_oss"};
  std::vector<StringRef> Generated;
  for (StringRef Type : supportedModelTypes())
    if (!llvm::is_contained(NotGenerated, Type))
      Generated.push_back(Type);
  EXPECT_EQ(syntheticFamilies(), Generated);
  int N = 0;
  for (const FamilyCase &F : Cases) {
    SCOPED_TRACE(F.Family + " dense=" + std::to_string(F.DenseLayers) +
                 " stacked=" + std::to_string(F.Stacked) +
                 " fp8=" + std::to_string(F.FP8));
    SyntheticMixtralOptions Opts;
    Opts.family = F.Family;
    Opts.layers = 3;
    Opts.hidden = 64;
    Opts.intermediate = 48;
    Opts.heads = 4;
    Opts.kvHeads = 2;
    Opts.denseLayers = F.DenseLayers;
    Opts.stackedExperts = F.Stacked;
    Opts.fp8 = F.FP8;
    std::string Dir = Tmp.file("family" + std::to_string(N++));
    MOEQ_ASSERT_NO_ERROR(writeSyntheticMixtral(Dir, Opts));
    MOEQ_ASSERT_EXPECTED(C, Checkpoint::open(Dir));
    std::vector<StringRef> Names = C->tensorNames();
    EXPECT_EQ(std::set<std::string>(Names.begin(), Names.end()),
              expectedFamilyNames(F, 3, 4));
    for (const SyntheticTensorSpec &S : syntheticMixtralTensors(Opts)) {
      const TensorInfo *T = C->find(S.name);
      ASSERT_NE(T, nullptr) << S.name;
      EXPECT_EQ(T->shape, S.shape) << S.name;
      EXPECT_EQ(T->dtype, S.dtype) << S.name;
    }

    MOEQ_ASSERT_EXPECTED(Cfg, loadModelConfig(Dir));
    EXPECT_EQ(Cfg.modelType, F.Family);
    EXPECT_EQ(Cfg.numLayers, 3);
    EXPECT_EQ(Cfg.hiddenSize, 64);
    EXPECT_EQ(Cfg.numExperts, 4);
    EXPECT_EQ(Cfg.topK, 2);
    EXPECT_EQ(Cfg.moeIntermediateSize, 48);
    for (int64_t L = 0; L < 3; ++L)
      EXPECT_EQ(Cfg.isMoELayer(L), L >= F.DenseLayers) << L;
    bool Shared =
        F.Family == "qwen2_moe" || StringRef(F.Family).starts_with("deepseek");
    EXPECT_EQ(Cfg.sharedIntermediateSize(), Shared ? 96 : 0);
    EXPECT_EQ(Cfg.sharedExpertGate, F.Family == "qwen2_moe");
    EXPECT_EQ(Cfg.hasScoreCorrectionBias, F.Family == "deepseek_v3");
    EXPECT_EQ(Cfg.fp8BlockRows, F.FP8 ? 128 : 0);

    // The shapes the config implies.
    std::string Layer = "model.layers." + std::to_string(F.DenseLayers) + ".";
    std::string M = F.Family == "mixtral" || F.Family == "phimoe"
                        ? "block_sparse_moe."
                        : "mlp.";
    auto ShapeOf = [&](StringRef Name) {
      const TensorInfo *T = C->find(Name);
      EXPECT_NE(T, nullptr) << Name.str();
      return T ? T->shape : std::vector<int64_t>{};
    };
    using Shape = std::vector<int64_t>;
    EXPECT_EQ(ShapeOf(Layer + M + "gate.weight"), (Shape{4, 64}));
    if (F.Stacked) {
      EXPECT_EQ(ShapeOf(Layer + M + "experts.gate_up_proj"),
                (Shape{4, 2 * 48, 64}));
      EXPECT_EQ(ShapeOf(Layer + M + "experts.down_proj"), (Shape{4, 64, 48}));
    } else {
      std::string Down = M == "mlp." ? "down_proj" : "w2";
      EXPECT_EQ(ShapeOf(Layer + M + "experts.3." + Down + ".weight"),
                (Shape{64, 48}));
    }
    if (F.DenseLayers) {
      EXPECT_EQ(ShapeOf("model.layers.0.mlp.up_proj.weight"),
                (Shape{Cfg.intermediateSize, 64}));
    }
    if (F.Family == "qwen2_moe") {
      EXPECT_EQ(ShapeOf(Layer + "mlp.shared_expert_gate.weight"),
                (Shape{1, 64}));
    }
    if (F.Family == "deepseek_v3") {
      const TensorInfo *Bias =
          C->find(Layer + "mlp.gate.e_score_correction_bias");
      ASSERT_NE(Bias, nullptr);
      EXPECT_EQ(Bias->dtype, DType::F32);
      EXPECT_EQ(Bias->shape, (Shape{4}));
    }

    // Deterministic.
    std::string Again = Tmp.file("again" + std::to_string(N));
    MOEQ_ASSERT_NO_ERROR(writeSyntheticMixtral(Again, Opts));
    EXPECT_TRUE(readBytes(Dir + "/model.safetensors") ==
                readBytes(Again + "/model.safetensors"));
    EXPECT_EQ(readBytes(Dir + "/config.json"),
              readBytes(Again + "/config.json"));
  }
}

TEST_F(SyntheticCheckpointTest, FamilyConfigKeys) {
  SyntheticMixtralOptions Opts;
  Opts.family = "deepseek_v2";
  Opts.experts = 8;
  Opts.topK = 3;
  Opts.nGroup = 4;
  Opts.topkGroup = 2;
  Opts.sharedIntermediate = 3 * Opts.intermediate;
  std::string Text = syntheticMixtralConfig(Opts);
  MOEQ_ASSERT_EXPECTED(V2, parseModelConfig(Text, "config.json"));
  EXPECT_EQ(V2.topkMethod, "group_limited_greedy");
  EXPECT_EQ(V2.groupScoring, "max");
  EXPECT_EQ(V2.nGroup, 4);
  EXPECT_EQ(V2.topkGroup, 2);
  EXPECT_EQ(V2.numSharedExperts, 3);
  EXPECT_EQ(V2.sharedIntermediateSize(), 3 * 256);
  EXPECT_EQ(V2.numKeyValueHeads, 4); // MLA: as many as the heads.
  EXPECT_FALSE(V2.normTopkProb);

  Opts.family = "deepseek_v3";
  Opts.fp8 = true;
  Text = syntheticMixtralConfig(Opts);
  EXPECT_NE(Text.find(R"("quant_method": "fp8")"), std::string::npos);
  MOEQ_ASSERT_EXPECTED(V3, parseModelConfig(Text, "config.json"));
  EXPECT_EQ(V3.topkMethod, "noaux_tc");
  EXPECT_EQ(V3.groupScoring, "top2_sum");
  EXPECT_EQ(V3.scoringFunc, "sigmoid");
  EXPECT_TRUE(V3.normTopkProb);
  EXPECT_DOUBLE_EQ(V3.routedScalingFactor, 2.5);
  EXPECT_EQ(V3.quantMethod, "fp8");

  Opts = SyntheticMixtralOptions();
  Opts.family = "qwen3_moe";
  Opts.denseLayers = 2;
  Opts.layers = 4;
  Opts.denseIntermediate = 100;
  Text = syntheticMixtralConfig(Opts);
  MOEQ_ASSERT_EXPECTED(Q, parseModelConfig(Text, "config.json"));
  EXPECT_EQ(Q.mlpOnlyLayers, (std::vector<int64_t>{0, 1}));
  EXPECT_EQ(Q.intermediateSize, 100);
  EXPECT_TRUE(Q.normTopkProb);
  EXPECT_EQ(Q.headDim, 32);

  Opts.family = "phimoe";
  Opts.denseLayers = 0;
  MOEQ_ASSERT_EXPECTED(
      P, parseModelConfig(syntheticMixtralConfig(Opts), "config.json"));
  EXPECT_EQ(P.scoringFunc, "sparsemixer");
  EXPECT_DOUBLE_EQ(P.routerJitterNoise, 0.01);
}

/// Reads a tensor as floats, failing the test on error.
std::vector<float> readFloats(const Checkpoint &C, StringRef Name,
                              bool Dequantize = false) {
  auto V = Dequantize ? C.readDequantized(Name) : C.readAsFloat(Name);
  EXPECT_TRUE(bool(V)) << Name.str() << ": " << errorText(V);
  return V ? std::move(*V) : std::vector<float>();
}

TEST_F(SyntheticCheckpointTest, StackedExpertsHoldThePerExpertValues) {
  for (const char *Family : {"qwen2_moe", "deepseek_v3", "olmoe"}) {
    SyntheticMixtralOptions Opts;
    Opts.family = Family;
    Opts.hidden = 64;
    Opts.intermediate = 40;
    Opts.experts = 3;
    Opts.dtype = DType::F32;
    Opts.seed = 9;
    std::string PerExpert = Tmp.file(std::string(Family) + "-pe");
    std::string Stacked = Tmp.file(std::string(Family) + "-st");
    MOEQ_ASSERT_NO_ERROR(writeSyntheticMixtral(PerExpert, Opts));
    Opts.stackedExperts = true;
    MOEQ_ASSERT_NO_ERROR(writeSyntheticMixtral(Stacked, Opts));
    MOEQ_ASSERT_EXPECTED(A, Checkpoint::open(PerExpert));
    MOEQ_ASSERT_EXPECTED(B, Checkpoint::open(Stacked));
    const std::string M = "model.layers.1.mlp.experts.";
    std::vector<float> GateUp = readFloats(*B, M + "gate_up_proj");
    std::vector<float> Down = readFloats(*B, M + "down_proj");
    ASSERT_EQ(GateUp.size(), 3u * 80 * 64);
    ASSERT_EQ(Down.size(), 3u * 64 * 40);
    for (int E = 0; E < 3; ++E) {
      std::string P = M + std::to_string(E) + ".";
      std::vector<float> G = readFloats(*A, P + "gate_proj.weight");
      std::vector<float> U = readFloats(*A, P + "up_proj.weight");
      std::vector<float> D = readFloats(*A, P + "down_proj.weight");
      const float *Base = GateUp.data() + E * 80 * 64;
      // Gate rows first, then up rows.
      EXPECT_TRUE(std::equal(G.begin(), G.end(), Base)) << Family << E;
      EXPECT_TRUE(std::equal(U.begin(), U.end(), Base + 40 * 64))
          << Family << E;
      EXPECT_TRUE(std::equal(D.begin(), D.end(), Down.data() + E * 64 * 40))
          << Family << E;
    }
    // Everything else is the same.
    for (StringRef Name : A->tensorNames())
      if (!Name.contains(".experts.")) {
        MOEQ_ASSERT_EXPECTED(DA, A->data(Name));
        MOEQ_ASSERT_EXPECTED(DB, B->data(Name));
        EXPECT_TRUE(DA == DB) << Name.str();
      }
  }
}

TEST_F(SyntheticCheckpointTest, FP8BlockScales) {
  // Sizes that are not multiples of 128, so edge blocks are partial.
  SyntheticMixtralOptions Opts;
  Opts.family = "deepseek_v3";
  Opts.hidden = 160;
  Opts.heads = 5; // kv-heads (2) is ignored by DeepSeek.
  Opts.intermediate = 200;
  Opts.experts = 4;
  Opts.dtype = DType::F32;
  Opts.seed = 11;
  std::string Ref = Tmp.file("ref"), Q = Tmp.file("fp8");
  MOEQ_ASSERT_NO_ERROR(writeSyntheticMixtral(Ref, Opts));
  Opts.fp8 = true;
  MOEQ_ASSERT_NO_ERROR(writeSyntheticMixtral(Q, Opts));
  MOEQ_ASSERT_EXPECTED(R, Checkpoint::open(Ref));
  MOEQ_ASSERT_EXPECTED(C, Checkpoint::open(Q));
  MOEQ_ASSERT_EXPECTED(Cfg, loadModelConfig(Q));
  EXPECT_EQ(Cfg.quantMethod, "fp8");

  // The F8_E4M3 values, by magnitude (codes 0x00..0x7e are increasing).
  std::vector<float> Table;
  for (unsigned Code = 0; Code <= 0x7e; ++Code)
    Table.push_back(float8E4M3FNToFloat(uint8_t(Code)));

  int Quantized = 0;
  for (StringRef Name : R->tensorNames()) {
    const TensorInfo *T = C->find(Name);
    ASSERT_NE(T, nullptr) << Name.str();
    bool Expert =
        Name.contains(".experts.") || Name.contains(".shared_experts.");
    EXPECT_EQ(C->hasBlockScales(Name), Expert) << Name.str();
    if (!Expert) {
      // Untouched, bit for bit.
      MOEQ_ASSERT_EXPECTED(DA, R->data(Name));
      MOEQ_ASSERT_EXPECTED(DB, C->data(Name));
      EXPECT_TRUE(DA == DB) << Name.str();
      continue;
    }
    ++Quantized;
    EXPECT_EQ(T->dtype, DType::F8_E4M3);
    const TensorInfo *S = C->find(Name.str() + "_scale_inv");
    ASSERT_NE(S, nullptr);
    EXPECT_EQ(S->dtype, DType::F32);
    int64_t Rows = T->shape[0], Cols = T->shape[1];
    int64_t SR = (Rows + 127) / 128, SC = (Cols + 127) / 128;
    EXPECT_EQ(S->shape, (std::vector<int64_t>{SR, SC}));

    std::vector<float> Want = readFloats(*R, Name);
    std::vector<float> Scale = readFloats(*C, Name.str() + "_scale_inv");
    std::vector<float> Got = readFloats(*C, Name, /*Dequantize=*/true);
    MOEQ_ASSERT_EXPECTED(Codes, C->data(Name));
    ASSERT_EQ(Got.size(), Want.size());
    std::vector<float> Amax(SR * SC, 0.0f);
    std::vector<bool> HasMax(SR * SC, false);
    for (int64_t I = 0; I < Rows * Cols; ++I) {
      int64_t B = (I / Cols / 128) * SC + (I % Cols) / 128;
      Amax[B] = std::max(Amax[B], std::fabs(Want[I]));
      if ((Codes[I] & 0x7f) == 0x7e)
        HasMax[B] = true;
      // The code is the nearest F8_E4M3 value to Want / Scale, ties to
      // even.
      float X = std::fabs(Want[I] / Scale[B]);
      uint8_t Code = Codes[I] & 0x7f;
      ASSERT_LE(Code, 0x7e) << Name.str() << "[" << I << "]";
      EXPECT_EQ(std::signbit(Want[I]), (Codes[I] & 0x80) != 0);
      float D = std::fabs(X - Table[Code]);
      for (unsigned K = 0; K < Table.size(); ++K) {
        float DK = std::fabs(X - Table[K]);
        ASSERT_TRUE(DK > D || (DK == D && (K == Code || Code % 2 == 0)))
            << Name.str() << "[" << I << "] " << X << " -> " << Table[Code]
            << " but " << Table[K] << " is nearer";
      }
      EXPECT_EQ(Got[I], float8E4M3FNToFloat(Codes[I]) * Scale[B]);
    }
    for (int64_t B = 0; B < SR * SC; ++B) {
      // scale_inv = amax / 448, so the largest element is +-448.
      EXPECT_EQ(Scale[B], Amax[B] / 448.0f) << Name.str() << " block " << B;
      EXPECT_TRUE(HasMax[B]) << Name.str() << " block " << B;
    }
  }
  // 2 layers x (4 experts + 1 shared) x 3 linears.
  EXPECT_EQ(Quantized, 2 * 5 * 3);

  // A NaN planted in an FP8 weight is the NaN code; nothing else changes.
  Opts.nanTensor = "model.layers.1.mlp.experts.2.down_proj.weight";
  Opts.nanIndex = 160 * 200 - 1;
  std::string NaNDir = Tmp.file("fp8nan");
  MOEQ_ASSERT_NO_ERROR(writeSyntheticMixtral(NaNDir, Opts));
  MOEQ_ASSERT_EXPECTED(N, Checkpoint::open(NaNDir));
  for (StringRef Name : C->tensorNames()) {
    MOEQ_ASSERT_EXPECTED(DA, C->data(Name));
    MOEQ_ASSERT_EXPECTED(DB, N->data(Name));
    if (Name != Opts.nanTensor) {
      EXPECT_TRUE(DA == DB) << Name.str();
      continue;
    }
    for (size_t I = 0; I < DA.size(); ++I) {
      if (I == size_t(Opts.nanIndex)) {
        EXPECT_EQ(DB[I], 0x7f);
      } else {
        EXPECT_EQ(DA[I], DB[I]) << I;
      }
    }
  }
}

TEST_F(SyntheticCheckpointTest, InvalidFamilyOptions) {
  auto Check = [&](function_ref<void(SyntheticMixtralOptions &)> Edit,
                   StringRef Fragment) {
    SyntheticMixtralOptions Opts;
    Edit(Opts);
    std::string Dir = Tmp.file("invalid");
    std::string Msg = errorText(writeSyntheticMixtral(Dir, Opts));
    EXPECT_NE(Msg.find(Fragment.str()), std::string::npos) << Msg;
    EXPECT_FALSE(sys::fs::exists(Dir));
  };
  Check([](auto &O) { O.family = "llama"; },
        "unknown family 'llama' (supported: mixtral, phimoe, qwen2_moe, "
        "qwen3_moe, deepseek_v2, deepseek_v3, olmoe)");
  Check(
      [](auto &O) {
        O.family = "phimoe";
        O.topK = 3;
      },
      "top-k must be 2 for phimoe");
  Check(
      [](auto &O) {
        O.family = "qwen3_moe";
        O.fp8 = true;
      },
      "fp8 is only supported for deepseek_v3");
  Check(
      [](auto &O) {
        O.family = "deepseek_v3";
        O.fp8 = true;
        O.stackedExperts = true;
      },
      "fp8 and stacked-experts cannot be combined");
  Check([](auto &O) { O.stackedExperts = true; },
        "stacked-experts is not supported for mixtral");
  Check(
      [](auto &O) {
        O.family = "olmoe";
        O.sharedIntermediate = 64;
      },
      "shared-intermediate: olmoe has no shared experts");
  Check(
      [](auto &O) {
        O.family = "deepseek_v2";
        O.sharedIntermediate = 300;
      },
      "shared-intermediate (300) must be a multiple of intermediate (256)");
  Check([](auto &O) { O.denseLayers = 1; },
        "dense-layers: mixtral has no dense layers");
  Check(
      [](auto &O) {
        O.family = "deepseek_v2";
        O.denseLayers = 3;
      },
      "dense-layers must be in [0, layers = 2], got 3");
  Check([](auto &O) { O.nGroup = 2; },
        "n-group / topk-group: mixtral has no group-limited routing");
  Check(
      [](auto &O) {
        O.family = "deepseek_v2";
        O.nGroup = 3;
      },
      "n-group (3) must be positive and divide experts (4)");
  Check(
      [](auto &O) {
        O.family = "deepseek_v2";
        O.nGroup = 2;
        O.topkGroup = 3;
      },
      "topk-group must be in [1, n-group = 2], got 3");
  Check(
      [](auto &O) {
        O.family = "deepseek_v3";
        O.nGroup = 4;
      },
      "at least 2 experts per group");
  Check(
      [](auto &O) {
        O.family = "deepseek_v2";
        O.nGroup = 4;
        O.topK = 2;
      },
      "top-k (2) exceeds the experts of topk-group groups (1 x 1)");
  Check(
      [](auto &O) {
        O.family = "qwen2_moe";
        O.denseIntermediate = -1;
      },
      "dense-intermediate must not be negative");
}

} // namespace
