//===- CheckpointTest.cpp - HF checkpoint directory tests -----------------===//

#include "moeq/IO/Checkpoint.h"

#include "IOTestUtil.h"

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

} // namespace
