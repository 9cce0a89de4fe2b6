//===- SyntheticCheckpointTest.cpp - synthetic Mixtral checkpoint tests ---===//

#include "moeq/IO/SyntheticCheckpoint.h"

#include "moeq/IO/Checkpoint.h"
#include "moeq/IO/Float16.h"
#include "moeq/IO/ModelConfig.h"

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
    EXPECT_EQ(readBytes(Clean + "/config.json"), readBytes(Dir + "/config.json"));

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

} // namespace
