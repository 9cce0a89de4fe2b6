//===- CheckpointTest.cpp - HF checkpoint directory tests -----------------===//

#include "moeq/IO/Checkpoint.h"

#include "IOTestUtil.h"

#include <cmath>

using namespace llvm;
using namespace mlir::moeq::io;
using namespace mlir::moeq::io::test;

namespace {

class CheckpointTest : public ::testing::Test {
protected:
  ScopedTempDir Dir;

  /// Writes a shard with F32 tensors; tensor I of the list holds
  /// {Base + I, Base + I + 0.5}.
  void writeShard(StringRef Name, ArrayRef<StringRef> Tensors,
                  float Base = 0.0f) {
    SafeTensorsWriter W;
    for (size_t I = 0; I < Tensors.size(); ++I) {
      float V = Base + float(I);
      MOEQ_ASSERT_NO_ERROR(
          W.addF32(Tensors[I], {2}, ArrayRef<float>({V, V + 0.5f})));
    }
    MOEQ_ASSERT_NO_ERROR(W.writeAtomically(Dir.file(Name)));
  }

  void writeIndex(StringRef WeightMapJSON) {
    writeBytes(Dir.file(Checkpoint::IndexFileName),
               (R"({"metadata": {"total_size": 24}, "weight_map": )" +
                WeightMapJSON + "}")
                   .str());
  }

  std::string openError() {
    auto C = Checkpoint::open(Dir.path());
    return errorText(C);
  }
};

TEST_F(CheckpointTest, ShardedWithIndex) {
  writeShard("model-00001-of-00002.safetensors", {"a", "b"}, 10.0f);
  writeShard("model-00002-of-00002.safetensors", {"c"}, 20.0f);
  writeIndex(R"({"a": "model-00001-of-00002.safetensors",
                 "b": "model-00001-of-00002.safetensors",
                 "c": "model-00002-of-00002.safetensors"})");
  MOEQ_ASSERT_EXPECTED(C, Checkpoint::open(Dir.path()));
  EXPECT_EQ(C->tensorNames(), (std::vector<StringRef>{"a", "b", "c"}));
  EXPECT_EQ(C->numTensors(), 3u);
  EXPECT_EQ(C->shards().size(), 2u);
  EXPECT_EQ(C->indexMetadata().at("total_size"), "24");
  EXPECT_EQ(C->directory(), Dir.path());

  const SafeTensorsFile *File = nullptr;
  const TensorInfo *Info = C->find("c", &File);
  ASSERT_NE(Info, nullptr);
  ASSERT_NE(File, nullptr);
  EXPECT_EQ(sys::path::filename(File->path()),
            "model-00002-of-00002.safetensors");
  EXPECT_EQ(Info->shape, std::vector<int64_t>{2});
  EXPECT_EQ(C->find("zzz"), nullptr);

  MOEQ_ASSERT_EXPECTED(B, C->readAsFloat("b"));
  EXPECT_EQ(B, (std::vector<float>{11.0f, 11.5f}));
  MOEQ_ASSERT_EXPECTED(CV, C->readAsFloat("c"));
  EXPECT_EQ(CV, (std::vector<float>{20.0f, 20.5f}));
  MOEQ_ASSERT_EXPECTED(Raw, C->data("a"));
  EXPECT_EQ(Raw.size(), 8u);
  auto Missing = C->readAsFloat("zzz");
  EXPECT_NE(errorText(Missing).find("'zzz'"), std::string::npos);
}

TEST_F(CheckpointTest, IndexIsAuthoritative) {
  // "extra" is in the shard but not in the index: not part of the model.
  writeShard("s1.safetensors", {"a", "extra"});
  writeIndex(R"({"a": "s1.safetensors"})");
  MOEQ_ASSERT_EXPECTED(C, Checkpoint::open(Dir.path()));
  EXPECT_EQ(C->tensorNames(), std::vector<StringRef>{"a"});
}

TEST_F(CheckpointTest, IndexNamesMissingShard) {
  writeShard("s1.safetensors", {"a"});
  writeIndex(R"({"a": "s1.safetensors", "b": "s2.safetensors"})");
  std::string Msg = openError();
  EXPECT_NE(Msg.find("shard 's2.safetensors' does not exist"),
            std::string::npos)
      << Msg;
  EXPECT_NE(Msg.find(Checkpoint::IndexFileName.str()), std::string::npos)
      << Msg;
}

TEST_F(CheckpointTest, IndexNamesTensorMissingFromShard) {
  writeShard("s1.safetensors", {"a"});
  writeShard("s2.safetensors", {"b"});
  writeIndex(R"({"a": "s1.safetensors", "b": "s1.safetensors"})");
  std::string Msg = openError();
  EXPECT_NE(Msg.find("tensor 'b'"), std::string::npos) << Msg;
  EXPECT_NE(Msg.find("'s1.safetensors'"), std::string::npos) << Msg;
  EXPECT_NE(Msg.find("does not contain it"), std::string::npos) << Msg;
}

TEST_F(CheckpointTest, IndexRejectsPathsOutsideTheDirectory) {
  writeShard("s1.safetensors", {"a"});
  writeIndex(R"({"a": "../s1.safetensors"})");
  EXPECT_NE(openError().find("not a relative path"), std::string::npos);
  writeIndex(R"({"a": "/etc/passwd"})");
  EXPECT_NE(openError().find("not a relative path"), std::string::npos);
}

TEST_F(CheckpointTest, MalformedIndex) {
  writeShard("s1.safetensors", {"a"});
  writeBytes(Dir.file(Checkpoint::IndexFileName), "{oops");
  EXPECT_NE(openError().find("not valid JSON"), std::string::npos);
  writeBytes(Dir.file(Checkpoint::IndexFileName), R"({"metadata": {}})");
  EXPECT_NE(openError().find("missing 'weight_map'"), std::string::npos);
  writeIndex(R"({"a": 3})");
  EXPECT_NE(openError().find("tensor 'a'"), std::string::npos);
}

TEST_F(CheckpointTest, MalformedShardIsNamed) {
  writeShard("s1.safetensors", {"a"});
  writeBytes(Dir.file("s2.safetensors"), "garbage");
  writeIndex(R"({"a": "s1.safetensors", "b": "s2.safetensors"})");
  std::string Msg = openError();
  EXPECT_NE(Msg.find("s2.safetensors"), std::string::npos) << Msg;
  EXPECT_NE(Msg.find("shorter than"), std::string::npos) << Msg;
}

TEST_F(CheckpointTest, UnindexedDirectory) {
  writeShard("b.safetensors", {"y", "z"}, 5.0f);
  writeShard("a.safetensors", {"x"}, 1.0f);
  writeBytes(Dir.file("config.json"), "{}");
  MOEQ_ASSERT_EXPECTED(C, Checkpoint::open(Dir.path()));
  EXPECT_EQ(C->tensorNames(), (std::vector<StringRef>{"x", "y", "z"}));
  ASSERT_EQ(C->shards().size(), 2u);
  EXPECT_EQ(sys::path::filename(C->shards()[0]->path()), "a.safetensors");
  MOEQ_ASSERT_EXPECTED(Z, C->readAsFloat("z"));
  EXPECT_EQ(Z, (std::vector<float>{6.0f, 6.5f}));
}

TEST_F(CheckpointTest, UnindexedDuplicateTensor) {
  writeShard("a.safetensors", {"x", "dup"});
  writeShard("b.safetensors", {"dup"});
  std::string Msg = openError();
  EXPECT_NE(Msg.find("tensor 'dup'"), std::string::npos) << Msg;
  EXPECT_NE(Msg.find("'a.safetensors'"), std::string::npos) << Msg;
  EXPECT_NE(Msg.find("'b.safetensors'"), std::string::npos) << Msg;
}

TEST_F(CheckpointTest, EmptyDirectory) {
  std::string Msg = openError();
  EXPECT_NE(Msg.find(Dir.path().str()), std::string::npos) << Msg;
  EXPECT_NE(Msg.find("no *.safetensors"), std::string::npos) << Msg;
}

TEST_F(CheckpointTest, SingleFile) {
  writeShard("only.safetensors", {"w"}, 3.0f);
  MOEQ_ASSERT_EXPECTED(C, Checkpoint::open(Dir.file("only.safetensors")));
  EXPECT_EQ(C->tensorNames(), std::vector<StringRef>{"w"});
  EXPECT_EQ(C->directory(), Dir.path());
  MOEQ_ASSERT_EXPECTED(W, C->readAsFloat("w"));
  EXPECT_EQ(W, (std::vector<float>{3.0f, 3.5f}));
}

TEST_F(CheckpointTest, NonexistentPath) {
  auto C = Checkpoint::open(Dir.file("nope"));
  std::string Msg = errorText(C);
  EXPECT_NE(Msg.find("nope"), std::string::npos) << Msg;
}

//===----------------------------------------------------------------------===//
// FP8 with block scales
//===----------------------------------------------------------------------===//

/// F8_E4M3 ("FN") codes and their values, by hand: sign | exponent (4 bits,
/// bias 7) | mantissa (3 bits).
constexpr uint8_t One = 0x38;        // 0.0111.000 = 2^0
constexpr uint8_t Two = 0x40;        // 0.1000.000 = 2^1
constexpr uint8_t MinusOne = 0xb8;   // 1.0111.000
constexpr uint8_t Half = 0x30;       // 0.0110.000 = 2^-1
constexpr uint8_t OneAndHalf = 0x3c; // 0.0111.100 = 1.5
constexpr uint8_t Max = 0x7e;        // 0.1111.110 = 1.75 * 2^8 = 448
constexpr uint8_t MinSub = 0x01;     // 0.0000.001 = 2^-6 / 8 = 2^-9
constexpr uint8_t MinusZero = 0x80;
constexpr uint8_t NaN = 0x7f; // 0.1111.111

class FP8Test : public CheckpointTest {
protected:
  SafeTensorsWriter W;

  void addFP8(StringRef Name, std::vector<int64_t> Shape,
              std::vector<uint8_t> Codes, DType T = DType::F8_E4M3) {
    MOEQ_ASSERT_NO_ERROR(W.addTensor(Name, T, Shape, std::move(Codes)));
  }
  void addScale(StringRef Name, std::vector<int64_t> Shape,
                ArrayRef<float> Values, DType T = DType::F32) {
    MOEQ_ASSERT_NO_ERROR(W.addFloats(Name, T, Shape, Values));
  }
  std::unique_ptr<Checkpoint> open() {
    EXPECT_FALSE(bool(W.writeAtomically(Dir.file("model.safetensors"))));
    auto C = Checkpoint::open(Dir.path());
    EXPECT_TRUE(bool(C)) << errorText(C);
    return C ? std::move(*C) : nullptr;
  }
};

TEST_F(FP8Test, ScaleName) {
  EXPECT_EQ(
      Checkpoint::scaleInvName("model.layers.3.mlp.experts.0.gate_proj.weight"),
      "model.layers.3.mlp.experts.0.gate_proj.weight_scale_inv");
  EXPECT_EQ(Checkpoint::scaleInvName("model.layers.3.mlp.experts.gate_up_proj"),
            "model.layers.3.mlp.experts.gate_up_proj_scale_inv");
}

TEST_F(FP8Test, RowsNotAMultipleOf128) {
  // [130, 3]: rows 0..127 form block row 0 (scale 2), rows 128..129 block
  // row 1 (scale 0.5).
  std::vector<uint8_t> Codes(130 * 3, One);
  uint8_t Row0[] = {Two, MinusOne, Half};
  uint8_t Row127[] = {OneAndHalf, Max, MinSub};
  uint8_t Row128[] = {Two, MinusZero, NaN};
  uint8_t Row129[] = {Max, OneAndHalf, MinusOne};
  std::copy(std::begin(Row0), std::end(Row0), Codes.begin());
  std::copy(std::begin(Row127), std::end(Row127), Codes.begin() + 127 * 3);
  std::copy(std::begin(Row128), std::end(Row128), Codes.begin() + 128 * 3);
  std::copy(std::begin(Row129), std::end(Row129), Codes.begin() + 129 * 3);
  const char *Name = "model.layers.3.mlp.experts.0.gate_proj.weight";
  addFP8(Name, {130, 3}, Codes);
  addScale("model.layers.3.mlp.experts.0.gate_proj.weight_scale_inv", {2, 1},
           {2.0f, 0.5f});
  std::unique_ptr<Checkpoint> C = open();
  ASSERT_TRUE(C);
  EXPECT_TRUE(C->hasBlockScales(Name));
  EXPECT_FALSE(C->hasBlockScales(
      "model.layers.3.mlp.experts.0.gate_proj.weight_scale_inv"));
  EXPECT_FALSE(C->hasBlockScales("nope"));

  MOEQ_ASSERT_EXPECTED(V, C->readDequantized(Name));
  ASSERT_EQ(V.size(), 130u * 3);
  auto Row = [&](int R) {
    return std::vector<float>(V.begin() + R * 3, V.begin() + R * 3 + 3);
  };
  EXPECT_EQ(Row(0), (std::vector<float>{4.0f, -2.0f, 1.0f}));
  EXPECT_EQ(Row(1), (std::vector<float>{2.0f, 2.0f, 2.0f}));
  EXPECT_EQ(Row(127), (std::vector<float>{3.0f, 896.0f, 0x1p-8f}));
  EXPECT_EQ(V[128 * 3 + 0], 1.0f);
  EXPECT_EQ(V[128 * 3 + 1], 0.0f);
  EXPECT_TRUE(std::signbit(V[128 * 3 + 1]));
  EXPECT_TRUE(std::isnan(V[128 * 3 + 2]));
  EXPECT_EQ(Row(129), (std::vector<float>{224.0f, 0.75f, -0.5f}));
  // Without the scales: the raw codes.
  MOEQ_ASSERT_EXPECTED(Raw, C->readAsFloat(Name));
  EXPECT_EQ(Raw[0], 2.0f);
  EXPECT_EQ(Raw[127 * 3 + 1], 448.0f);
  // The given block size must agree with the shapes.
  MOEQ_ASSERT_EXPECTED(Given, C->readDequantized(Name, 128, 128));
  EXPECT_EQ(Given[129 * 3], 224.0f);
  auto Wrong = C->readDequantized(Name, 64, 128);
  EXPECT_EQ(errorText(Wrong),
            Dir.path().str() + ": tensor '" + Name + "': scale '" + Name +
                "_scale_inv' has shape [2, 1], which no block size fits for "
                "the weight's [130, 3] with 64 x 128 blocks");
}

TEST_F(FP8Test, ColumnsNotAMultipleOf128BF16Scales) {
  // [2, 200]: columns 0..127 use scale column 0, 128..199 column 1.
  std::vector<uint8_t> Codes(2 * 200, One);
  Codes[127] = Two;
  Codes[128] = Two;
  Codes[200 + 199] = MinusOne;
  addFP8("w.weight", {2, 200}, Codes);
  addScale("w.weight_scale_inv", {1, 2}, {0.25f, 3.0f}, DType::BF16);
  std::unique_ptr<Checkpoint> C = open();
  ASSERT_TRUE(C);
  MOEQ_ASSERT_EXPECTED(V, C->readDequantized("w.weight"));
  EXPECT_EQ(V[0], 0.25f);
  EXPECT_EQ(V[127], 0.5f);
  EXPECT_EQ(V[128], 6.0f);
  EXPECT_EQ(V[199], 3.0f);
  EXPECT_EQ(V[200], 0.25f);
  EXPECT_EQ(V[200 + 199], -3.0f);
}

TEST_F(FP8Test, SmallBlocksInferredFromShapes) {
  // [6, 4] with [3, 2] scales: ceil(6 / 128) != 3, so 2 x 2 blocks.
  std::vector<uint8_t> Codes(24, One);
  Codes[0 * 4 + 3] = Two;      // Block (0, 1).
  Codes[5 * 4 + 0] = MinusOne; // Block (2, 0).
  addFP8("w.weight", {6, 4}, Codes);
  addScale("w.weight_scale_inv", {3, 2}, {1, 2, 3, 4, 5, 6});
  std::unique_ptr<Checkpoint> C = open();
  ASSERT_TRUE(C);
  MOEQ_ASSERT_EXPECTED(V, C->readDequantized("w.weight"));
  std::vector<float> Expected = {1,  1, 2, 4, //
                                 1,  1, 2, 2, //
                                 3,  3, 4, 4, //
                                 3,  3, 4, 4, //
                                 5,  5, 6, 6, //
                                 -5, 5, 6, 6};
  EXPECT_EQ(V, Expected);
  MOEQ_ASSERT_EXPECTED(Given, C->readDequantized("w.weight", 2, 2));
  EXPECT_EQ(Given, Expected);
  auto Wrong = C->readDequantized("w.weight", 4, 4);
  EXPECT_NE(errorText(Wrong).find("with 4 x 4 blocks"), std::string::npos);
}

TEST_F(FP8Test, StackedExpertsAndPerTensorScales) {
  // Stacked [2 experts, 3, 2] with one block per expert.
  addFP8("mlp.experts.gate_up_proj", {2, 3, 2},
         {One, Two, Half, One, One, MinusOne, //
          One, Two, Half, One, One, MinusOne});
  addScale("mlp.experts.gate_up_proj_scale_inv", {2, 1, 1}, {2.0f, -1.0f});
  // A single scale for the whole tensor, as [] and as [1].
  addFP8("a.weight", {2, 2}, {One, Two, Half, MinusOne});
  addScale("a.weight_scale_inv", {}, {4.0f});
  addFP8("b.weight", {2}, {One, Two}, DType::F8_E5M2);
  addScale("b.weight_scale_inv", {1}, {0.5f});
  std::unique_ptr<Checkpoint> C = open();
  ASSERT_TRUE(C);
  MOEQ_ASSERT_EXPECTED(S, C->readDequantized("mlp.experts.gate_up_proj"));
  EXPECT_EQ(S,
            (std::vector<float>{2, 4, 1, 2, 2, -2, -1, -2, -0.5, -1, -1, 1}));
  MOEQ_ASSERT_EXPECTED(A, C->readDequantized("a.weight"));
  EXPECT_EQ(A, (std::vector<float>{4, 8, 2, -4}));
  // F8_E5M2: 0x38 = 0.01110.00 = 2^-1, 0x40 = 0.10000.00 = 2^1.
  EXPECT_TRUE(C->hasBlockScales("b.weight"));
  MOEQ_ASSERT_EXPECTED(B, C->readDequantized("b.weight"));
  EXPECT_EQ(B, (std::vector<float>{0.25f, 1.0f}));
}

TEST_F(FP8Test, OrdinaryTensorsAndErrors) {
  MOEQ_ASSERT_NO_ERROR(W.addBF16("plain.weight", {2}, {1.5f, -2.0f}));
  // A companion does not make a BF16 tensor block-scaled.
  addScale("plain.weight_scale_inv", {1, 1}, {10.0f});
  addFP8("lonely.weight", {1, 2}, {One, One});
  addFP8("intscale.weight", {1, 2}, {One, One});
  MOEQ_ASSERT_NO_ERROR(
      W.addI32("intscale.weight_scale_inv", {1, 1}, ArrayRef<int32_t>{1}));
  addFP8("rank1.weight", {4}, {One, One, One, One});
  addScale("rank1.weight_scale_inv", {2}, {1, 1});
  addFP8("lead.weight", {2, 2, 2}, std::vector<uint8_t>(8, One));
  addScale("lead.weight_scale_inv", {3, 1, 1}, {1, 1, 1});
  // 5 rows cannot be cut into 4 blocks of equal height.
  addFP8("odd.weight", {5, 1}, std::vector<uint8_t>(5, One));
  addScale("odd.weight_scale_inv", {4, 1}, {1, 1, 1, 1});
  std::unique_ptr<Checkpoint> C = open();
  ASSERT_TRUE(C);

  EXPECT_FALSE(C->hasBlockScales("plain.weight"));
  MOEQ_ASSERT_EXPECTED(P, C->readDequantized("plain.weight"));
  EXPECT_EQ(P, (std::vector<float>{1.5f, -2.0f}));
  EXPECT_FALSE(C->hasBlockScales("lonely.weight"));

  auto Err = [&](StringRef Name) {
    auto V = C->readDequantized(Name);
    return errorText(V);
  };
  EXPECT_NE(Err("missing").find("no tensor named 'missing'"),
            std::string::npos);
  std::string Msg = Err("lonely.weight");
  EXPECT_NE(Msg.find("tensor 'lonely.weight': F8_E4M3 tensor has no "
                     "'lonely.weight_scale_inv' block scales"),
            std::string::npos)
      << Msg;
  Msg = Err("intscale.weight");
  EXPECT_NE(Msg.find("must be F32, BF16 or F16, got I32"), std::string::npos)
      << Msg;
  Msg = Err("rank1.weight");
  EXPECT_NE(Msg.find("at least 2 dimensions, got [4]"), std::string::npos)
      << Msg;
  Msg = Err("lead.weight");
  EXPECT_NE(Msg.find("has shape [3, 1, 1], which does not match the "
                     "weight's [2, 2, 2]"),
            std::string::npos)
      << Msg;
  Msg = Err("odd.weight");
  EXPECT_NE(Msg.find("which no block size fits for the weight's [5, 1]"),
            std::string::npos)
      << Msg;
}

//===----------------------------------------------------------------------===//
// MXFP4 (gpt-oss)
//===----------------------------------------------------------------------===//

// Two experts of a [2, 1, 64] tensor: 2 blocks of 32 per row. Byte j of a
// block holds elements 2j (low nibble) and 2j + 1 (high nibble); e2m1 code
// 0x2 = 1.0, 0x7 = 6.0, 0x9 = -0.5, 0xF = -6.0; scale byte s = 2^(s - 127).
TEST_F(FP8Test, MXFP4KnownValues) {
  std::vector<uint8_t> Blocks(2 * 1 * 2 * 16, 0x00);
  Blocks[0] = 0x72;           // expert 0, block 0: elements 0, 1 = 1.0, 6.0
  Blocks[16 + 15] = 0xF9;     // expert 0, block 1: elements 62, 63 = -0.5, -6.0
  Blocks[32 + 16 + 0] = 0x29; // expert 1, block 1: elements 32, 33 = -0.5, 1.0
  addFP8("w_blocks", {2, 1, 2, 16}, Blocks, DType::U8);
  addFP8("w_scales", {2, 1, 2}, {127, 129, 125, 120}, DType::U8);
  std::unique_ptr<Checkpoint> C = open();
  ASSERT_TRUE(C);
  MOEQ_ASSERT_EXPECTED(Shape, C->mxfp4Shape("w"));
  ASSERT_TRUE(Shape.has_value());
  EXPECT_EQ(*Shape, (std::vector<int64_t>{2, 1, 64}));
  MOEQ_ASSERT_EXPECTED(None, C->mxfp4Shape("w_blocks"));
  EXPECT_FALSE(None.has_value());
  MOEQ_ASSERT_EXPECTED(E0, C->readMXFP4("w", 0));
  ASSERT_EQ(E0.size(), 64u);
  EXPECT_EQ(E0[0], 1.0f);       // scale 2^0
  EXPECT_EQ(E0[1], 6.0f);
  EXPECT_EQ(E0[2], 0.0f);
  EXPECT_EQ(E0[62], -0.5f * 4); // scale 2^2
  EXPECT_EQ(E0[63], -6.0f * 4);
  MOEQ_ASSERT_EXPECTED(E1, C->readMXFP4("w", 1));
  EXPECT_EQ(E1[32], -0.5f / 128); // scale 2^-7
  EXPECT_EQ(E1[33], 1.0f / 128);
  MOEQ_ASSERT_EXPECTED(All, C->readMXFP4("w"));
  ASSERT_EQ(All.size(), 128u);
  EXPECT_EQ(All[64 + 33], E1[33]);
  auto Outside = C->readMXFP4("w", 2);
  EXPECT_NE(errorText(Outside).find("cannot select matrix 2"), std::string::npos);
}

TEST_F(FP8Test, MXFP4InconsistentCompanionsAreNamed) {
  addFP8("w_blocks", {2, 4, 16}, std::vector<uint8_t>(2 * 4 * 16), DType::U8);
  addFP8("w_scales", {2, 3}, std::vector<uint8_t>(6), DType::U8);
  std::unique_ptr<Checkpoint> C = open();
  ASSERT_TRUE(C);
  auto Shape = C->mxfp4Shape("w");
  std::string Msg = errorText(Shape);
  EXPECT_NE(Msg.find("MXFP4 tensor 'w': 'w_blocks' must be U8 [..., rows, blocks, 16]"),
            std::string::npos)
      << Msg;
}

} // namespace
