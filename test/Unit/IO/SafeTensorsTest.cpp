//===- SafeTensorsTest.cpp - safetensors reader/writer tests --------------===//

#include "moeq/IO/SafeTensors.h"

#include "moeq/IO/Float16.h"

#include "IOTestUtil.h"

#include "llvm/ADT/StringExtras.h"

#include <cmath>
#include <fstream>
#include <thread>
#include <unistd.h>

using namespace llvm;
using namespace mlir::moeq::io;
using namespace mlir::moeq::io::test;

namespace {

const DType AllDTypes[] = {
    DType::BOOL, DType::U8,  DType::I8,  DType::F8_E4M3, DType::F8_E5M2,
    DType::I16,  DType::U16, DType::F16, DType::BF16,    DType::I32,
    DType::U32,  DType::F32, DType::F64, DType::I64,     DType::U64,
};

TEST(DTypeTest, NamesAndSizes) {
  for (DType T : AllDTypes) {
    std::optional<DType> Parsed = parseDType(dtypeName(T));
    ASSERT_TRUE(Parsed.has_value()) << dtypeName(T).str();
    EXPECT_EQ(*Parsed, T);
  }
  EXPECT_EQ(dtypeName(DType::BF16), "BF16");
  EXPECT_EQ(dtypeName(DType::F8_E4M3), "F8_E4M3");
  EXPECT_EQ(dtypeSize(DType::BOOL), 1u);
  EXPECT_EQ(dtypeSize(DType::F8_E4M3), 1u);
  EXPECT_EQ(dtypeSize(DType::BF16), 2u);
  EXPECT_EQ(dtypeSize(DType::I32), 4u);
  EXPECT_EQ(dtypeSize(DType::F64), 8u);
  EXPECT_EQ(dtypeSize(DType::I64), 8u);
  EXPECT_FALSE(parseDType("bf16").has_value()); // The format is case-sensitive.
  EXPECT_FALSE(parseDType("F17").has_value());
}

/// Deterministic, non-trivial bytes.
std::vector<uint8_t> patternBytes(size_t N, unsigned Salt) {
  std::vector<uint8_t> B(N);
  for (size_t I = 0; I < N; ++I)
    B[I] = uint8_t(I * 37 + Salt * 11 + 5);
  return B;
}

class SafeTensorsFileTest : public ::testing::Test {
protected:
  ScopedTempDir Dir;

  std::unique_ptr<SafeTensorsFile>
  writeAndOpen(const SafeTensorsWriter &W, StringRef Name = "t.safetensors") {
    std::string Path = Dir.file(Name);
    if (Error E = W.writeAtomically(Path)) {
      ADD_FAILURE() << toString(std::move(E));
      return nullptr;
    }
    auto F = SafeTensorsFile::open(Path);
    if (!F) {
      ADD_FAILURE() << toString(F.takeError());
      return nullptr;
    }
    return std::move(*F);
  }

  /// Writes \p Bytes to "<name>" and returns open()'s error text ("" on
  /// success).
  std::string openError(StringRef Bytes, StringRef Name = "bad.safetensors") {
    std::string Path = Dir.file(Name);
    writeBytes(Path, Bytes);
    auto F = SafeTensorsFile::open(Path);
    return errorText(F);
  }

  /// openError() for a header with \p DataSize bytes of data; checks that
  /// the message names the file and, if given, the tensor.
  void expectHeaderError(StringRef Header, size_t DataSize, StringRef Tensor,
                         StringRef Fragment) {
    std::string Msg = openError(rawSafeTensors(Header, DataSize));
    EXPECT_NE(Msg, "") << "header accepted: " << Header.str();
    EXPECT_NE(Msg.find("bad.safetensors"), std::string::npos) << Msg;
    if (!Tensor.empty()) {
      EXPECT_NE(Msg.find(("'" + Tensor + "'").str()), std::string::npos) << Msg;
    }
    EXPECT_NE(Msg.find(Fragment.str()), std::string::npos)
        << "expected '" << Fragment.str() << "' in: " << Msg;
  }
};

TEST_F(SafeTensorsFileTest, RoundTripEveryDType) {
  SafeTensorsWriter W;
  unsigned Salt = 0;
  for (DType T : AllDTypes) {
    std::vector<int64_t> Shape = {3, 5};
    MOEQ_ASSERT_NO_ERROR(W.addTensor(("t_" + dtypeName(T)).str(), T, Shape,
                                     patternBytes(15 * dtypeSize(T), Salt++)));
  }
  auto F = writeAndOpen(W);
  ASSERT_TRUE(F);
  ASSERT_EQ(F->tensors().size(), std::size(AllDTypes));
  Salt = 0;
  for (DType T : AllDTypes) {
    std::string Name = ("t_" + dtypeName(T)).str();
    const TensorInfo *Info = F->find(Name);
    ASSERT_NE(Info, nullptr) << Name;
    EXPECT_EQ(Info->name, Name);
    EXPECT_EQ(Info->dtype, T);
    EXPECT_EQ(Info->shape, (std::vector<int64_t>{3, 5}));
    EXPECT_EQ(Info->numElements(), 15);
    // Packed largest element first: every tensor is naturally aligned.
    EXPECT_EQ((F->dataSectionOffset() + Info->begin) % dtypeSize(T), 0u)
        << Name;
    ArrayRef<uint8_t> Data = F->data(*Info);
    std::vector<uint8_t> Expected = patternBytes(15 * dtypeSize(T), Salt++);
    EXPECT_EQ(std::vector<uint8_t>(Data.begin(), Data.end()), Expected) << Name;
  }
  // tensors() is sorted by name.
  for (size_t I = 1; I < F->tensors().size(); ++I)
    EXPECT_LT(F->tensors()[I - 1].name, F->tensors()[I].name);
  EXPECT_EQ(F->find("nope"), nullptr);
}

TEST_F(SafeTensorsFileTest, FloatConversions) {
  std::vector<float> V = {1.0f, -2.5f, 0.1f, 65504.0f, 1e-8f, -0.0f};
  SafeTensorsWriter W;
  MOEQ_ASSERT_NO_ERROR(W.addF32("f32", {2, 3}, V));
  MOEQ_ASSERT_NO_ERROR(W.addF16("f16", {6}, V));
  MOEQ_ASSERT_NO_ERROR(W.addBF16("bf16", {3, 2}, V));
  MOEQ_ASSERT_NO_ERROR(W.addFloats("f64", DType::F64, {6}, V));
  MOEQ_ASSERT_NO_ERROR(W.addI32("i32", {2}, ArrayRef<int32_t>({-7, 1 << 30})));
  auto F = writeAndOpen(W);
  ASSERT_TRUE(F);

  MOEQ_ASSERT_EXPECTED(F32, F->readAsFloat("f32"));
  MOEQ_ASSERT_EXPECTED(F64, F->readAsFloat("f64"));
  MOEQ_ASSERT_EXPECTED(F16, F->readAsFloat("f16"));
  MOEQ_ASSERT_EXPECTED(BF16, F->readAsFloat("bf16"));
  ASSERT_EQ(F32.size(), V.size());
  for (size_t I = 0; I < V.size(); ++I) {
    EXPECT_EQ(floatToBits(F32[I]), floatToBits(V[I]));
    EXPECT_EQ(floatToBits(F64[I]), floatToBits(V[I]));
    EXPECT_EQ(F16[I], halfToFloat(floatToHalf(V[I])));
    EXPECT_EQ(BF16[I], bf16ToFloat(floatToBF16(V[I])));
  }
  EXPECT_EQ(F16[3], 65504.0f);
  EXPECT_TRUE(std::signbit(BF16[5]));

  // Integer data is not silently reinterpreted.
  auto I32 = F->readAsFloat("i32");
  std::string Msg = errorText(I32);
  EXPECT_NE(Msg.find("t.safetensors"), std::string::npos) << Msg;
  EXPECT_NE(Msg.find("'i32'"), std::string::npos) << Msg;
  ArrayRef<uint8_t> Raw = F->data(*F->find("i32"));
  EXPECT_EQ(int32_t(support::endian::read32le(Raw.data())), -7);

  auto Missing = F->readAsFloat("absent");
  Msg = errorText(Missing);
  EXPECT_NE(Msg.find("'absent'"), std::string::npos) << Msg;
}

TEST_F(SafeTensorsFileTest, Float8Decoding) {
  SafeTensorsWriter W;
  MOEQ_ASSERT_NO_ERROR(W.addTensor("e4m3", DType::F8_E4M3, {3},
                                   ArrayRef<uint8_t>({0x38, 0xc0, 0x7e})));
  auto F = writeAndOpen(W);
  ASSERT_TRUE(F);
  MOEQ_ASSERT_EXPECTED(V, F->readAsFloat("e4m3"));
  EXPECT_EQ(V, (std::vector<float>{1.0f, -2.0f, 448.0f}));
}

TEST_F(SafeTensorsFileTest, ExactHeaderLayout) {
  SafeTensorsWriter W;
  MOEQ_ASSERT_NO_ERROR(W.addF32("b", {2}, ArrayRef<float>({1.0f, 2.0f})));
  MOEQ_ASSERT_NO_ERROR(W.addF32("a", {1}, ArrayRef<float>({3.0f})));
  W.setMetadata("format", "pt");
  std::string Header = W.buildHeader();
  std::string Expected =
      R"({"__metadata__":{"format":"pt"},)"
      R"("a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
      R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})";
  Expected.append((8 - Expected.size() % 8) % 8, ' ');
  EXPECT_EQ(Header, Expected);
  EXPECT_EQ(Header.size() % 8, 0u);

  std::string Path = Dir.file("layout.safetensors");
  MOEQ_ASSERT_NO_ERROR(W.writeAtomically(Path));
  std::string Bytes = readBytes(Path);
  ASSERT_EQ(Bytes.size(), 8 + Header.size() + 12);
  EXPECT_EQ(support::endian::read64le(Bytes.data()), Header.size());
  EXPECT_EQ(Bytes.substr(8, Header.size()), Header);
  // "a" comes first in the data section.
  EXPECT_EQ(Bytes.substr(8 + Header.size(), 4),
            std::string("\x00\x00\x40\x40", 4)); // 3.0f
}

TEST_F(SafeTensorsFileTest, MixedDTypesArePackedWithoutHoles) {
  SafeTensorsWriter W;
  MOEQ_ASSERT_NO_ERROR(
      W.addTensor("a_bool", DType::BOOL, {3}, patternBytes(3, 1)));
  MOEQ_ASSERT_NO_ERROR(
      W.addTensor("b_f64", DType::F64, {1}, patternBytes(8, 2)));
  MOEQ_ASSERT_NO_ERROR(
      W.addTensor("c_bf16", DType::BF16, {3}, patternBytes(6, 3)));
  MOEQ_ASSERT_NO_ERROR(
      W.addTensor("d_i32", DType::I32, {1}, patternBytes(4, 4)));
  auto F = writeAndOpen(W);
  ASSERT_TRUE(F);
  std::vector<const TensorInfo *> ByOffset;
  for (const TensorInfo &T : F->tensors())
    ByOffset.push_back(&T);
  llvm::sort(ByOffset, [](auto *A, auto *B) { return A->begin < B->begin; });
  uint64_t Next = 0;
  for (const TensorInfo *T : ByOffset) {
    EXPECT_EQ(T->begin, Next) << T->name; // Contiguous, as the spec requires.
    EXPECT_EQ(T->begin % dtypeSize(T->dtype), 0u) << T->name;
    Next = T->end;
  }
  EXPECT_EQ(ByOffset.front()->name, "b_f64");
  EXPECT_EQ(ByOffset.back()->name, "a_bool");
}

TEST_F(SafeTensorsFileTest, ScalarsEmptyTensorsAndMetadata) {
  SafeTensorsWriter W;
  MOEQ_ASSERT_NO_ERROR(W.addF32("scalar", {}, ArrayRef<float>({42.0f})));
  MOEQ_ASSERT_NO_ERROR(W.addF32("empty", {0, 4}, ArrayRef<float>()));
  MOEQ_ASSERT_NO_ERROR(W.addF32("empty2", {4, 0}, ArrayRef<float>()));
  W.setMetadata("format", "pt");
  W.setMetadata("note", "quoted \"text\" and unicode \xc3\xa9");
  auto F = writeAndOpen(W);
  ASSERT_TRUE(F);
  const TensorInfo *S = F->find("scalar");
  ASSERT_NE(S, nullptr);
  EXPECT_TRUE(S->shape.empty());
  EXPECT_EQ(S->numElements(), 1);
  MOEQ_ASSERT_EXPECTED(SV, F->readAsFloat("scalar"));
  EXPECT_EQ(SV, std::vector<float>{42.0f});
  const TensorInfo *E = F->find("empty");
  ASSERT_NE(E, nullptr);
  EXPECT_EQ(E->numElements(), 0);
  EXPECT_TRUE(F->data(*E).empty());
  EXPECT_EQ(F->metadata().size(), 2u);
  EXPECT_EQ(F->metadata().at("format"), "pt");
  EXPECT_EQ(F->metadata().at("note"), "quoted \"text\" and unicode \xc3\xa9");
}

TEST_F(SafeTensorsFileTest, NoTensors) {
  SafeTensorsWriter W;
  auto F = writeAndOpen(W);
  ASSERT_TRUE(F);
  EXPECT_TRUE(F->tensors().empty());
  EXPECT_TRUE(F->metadata().empty());
}

TEST_F(SafeTensorsFileTest, WriterRejectsBadInput) {
  SafeTensorsWriter W;
  MOEQ_ASSERT_NO_ERROR(W.addF32("x", {1}, ArrayRef<float>({1.0f})));
  std::string Msg = errorText(W.addF32("x", {1}, ArrayRef<float>({2.0f})));
  EXPECT_NE(Msg.find("duplicate"), std::string::npos) << Msg;
  EXPECT_NE(Msg.find("'x'"), std::string::npos) << Msg;
  Msg = errorText(W.addF32("y", {2, 2}, ArrayRef<float>({1.0f})));
  EXPECT_NE(Msg.find("'y'"), std::string::npos) << Msg;
  Msg = errorText(W.addTensor("z", DType::I16, {3}, patternBytes(5, 0)));
  EXPECT_NE(Msg.find("needs 6 bytes, got 5"), std::string::npos) << Msg;
  Msg = errorText(W.addF32("__metadata__", {1}, ArrayRef<float>({1.0f})));
  EXPECT_NE(Msg.find("reserved"), std::string::npos) << Msg;
  Msg = errorText(W.addTensor("neg", DType::U8, {-1}, patternBytes(0, 0)));
  EXPECT_NE(Msg.find("invalid shape"), std::string::npos) << Msg;
  Msg = errorText(W.addFloats("i8", DType::I8, {1}, ArrayRef<float>({1.0f})));
  EXPECT_NE(Msg.find("'i8'"), std::string::npos) << Msg;
  EXPECT_EQ(W.size(), 1u);
}

TEST_F(SafeTensorsFileTest, ProducerStreamsAndIsChecked) {
  SafeTensorsWriter W;
  MOEQ_ASSERT_NO_ERROR(W.addTensor("p", DType::U8, {4}, [](raw_ostream &OS) {
    OS << "abcd";
    return Error::success();
  }));
  auto F = writeAndOpen(W);
  ASSERT_TRUE(F);
  ArrayRef<uint8_t> D = F->data(*F->find("p"));
  EXPECT_EQ(StringRef(reinterpret_cast<const char *>(D.data()), D.size()),
            "abcd");

  // A producer that writes the wrong amount fails the write, and the
  // destination is never created.
  SafeTensorsWriter Bad;
  MOEQ_ASSERT_NO_ERROR(
      Bad.addTensor("short", DType::U8, {4}, [](raw_ostream &OS) {
        OS << "abc";
        return Error::success();
      }));
  std::string Path = Dir.file("short.safetensors");
  std::string Msg = errorText(Bad.writeAtomically(Path));
  EXPECT_NE(Msg.find("short.safetensors"), std::string::npos) << Msg;
  EXPECT_NE(Msg.find("'short'"), std::string::npos) << Msg;
  EXPECT_FALSE(sys::fs::exists(Path));
}

TEST_F(SafeTensorsFileTest, WriterIsDeterministic) {
  auto Build = [](bool Reverse) {
    SafeTensorsWriter W;
    std::vector<std::string> Names = {"layer.1", "layer.0", "z", "a"};
    if (Reverse)
      std::reverse(Names.begin(), Names.end());
    for (const std::string &N : Names)
      EXPECT_FALSE(errorText(W.addTensor(N, DType::BF16, {2, 2},
                                         patternBytes(8, N.size())))
                       .size());
    W.setMetadata("k2", "v2");
    W.setMetadata("k1", "v1");
    return W;
  };
  std::string P1 = Dir.file("d1.safetensors"), P2 = Dir.file("d2.safetensors");
  MOEQ_ASSERT_NO_ERROR(Build(false).writeAtomically(P1));
  MOEQ_ASSERT_NO_ERROR(Build(true).writeAtomically(P2));
  EXPECT_EQ(readBytes(P1), readBytes(P2));
}

TEST_F(SafeTensorsFileTest, StreamingGivesTheSameBytes) {
  // Mixed element sizes (so the layout is not name order), metadata, a
  // tensor with bytes, a producer and an empty tensor; the declared ones
  // are written in reverse order from several threads.
  struct Spec {
    std::string Name;
    DType Type;
    std::vector<int64_t> Shape;
  };
  std::vector<Spec> Specs = {{"b.qweight", DType::I32, {3, 5}}, {"b.scales", DType::F16, {3, 2}},
                             {"a.qweight", DType::I32, {2, 4}}, {"a.zeros", DType::F16, {2, 1}},
                             {"c.f64", DType::F64, {7}},        {"empty", DType::U8, {0}},
                             {"d.u8", DType::U8, {13}}};
  auto Bytes = [&](const Spec &S) {
    int64_t N = 1;
    for (int64_t D : S.Shape)
      N *= D;
    return patternBytes(dtypeSize(S.Type) * N, S.Name.size());
  };
  SafeTensorsWriter Whole, Streamed;
  for (SafeTensorsWriter *W : {&Whole, &Streamed}) {
    W->setMetadata("producer", "test");
    MOEQ_ASSERT_NO_ERROR(W->addTensor("owned", DType::U8, {3}, patternBytes(3, 9)));
    MOEQ_ASSERT_NO_ERROR(W->addTensor("produced", DType::I16, {2}, [](raw_ostream &OS) {
      OS << "wxyz";
      return Error::success();
    }));
  }
  for (const Spec &S : Specs) {
    MOEQ_ASSERT_NO_ERROR(Whole.addTensor(S.Name, S.Type, S.Shape, Bytes(S)));
    MOEQ_ASSERT_NO_ERROR(Streamed.declareTensor(S.Name, S.Type, S.Shape));
  }
  std::string WholePath = Dir.file("whole.safetensors"), StreamPath = Dir.file("stream.safetensors");
  MOEQ_ASSERT_NO_ERROR(Whole.writeAtomically(WholePath));
  // write() refuses declared tensors.
  EXPECT_NE(errorText(Streamed.writeAtomically(Dir.file("x.safetensors"))).find("openStreaming"),
            std::string::npos);
  MOEQ_ASSERT_EXPECTED(Stream, Streamed.openStreaming(StreamPath));
  EXPECT_FALSE(sys::fs::exists(StreamPath)); // not before commit()
  std::vector<std::thread> Threads;
  std::vector<std::string> Errors(Specs.size());
  for (size_t I = Specs.size(); I-- > 0;)
    Threads.emplace_back([&, I] {
      Errors[I] = errorText(Stream->writeTensor(Specs[I].Name, Bytes(Specs[I])));
    });
  for (std::thread &T : Threads)
    T.join();
  for (const std::string &E : Errors)
    EXPECT_EQ(E, "");
  MOEQ_ASSERT_NO_ERROR(Stream->commit());
  EXPECT_EQ(readBytes(StreamPath), readBytes(WholePath));
  EXPECT_EQ(Stream->size(), readBytes(WholePath).size());
}

TEST_F(SafeTensorsFileTest, StreamingChecksEveryTensor) {
  SafeTensorsWriter W;
  MOEQ_ASSERT_NO_ERROR(W.declareTensor("x", DType::F32, {2}));
  MOEQ_ASSERT_NO_ERROR(W.declareTensor("y", DType::F32, {1}));
  std::string Path = Dir.file("s.safetensors");
  writeBytes(Path, "old");
  {
    MOEQ_ASSERT_EXPECTED(Stream, W.openStreaming(Path));
    EXPECT_NE(errorText(Stream->writeTensor("z", patternBytes(4, 0))).find("tensor 'z': not declared"),
              std::string::npos);
    EXPECT_NE(errorText(Stream->writeTensor("x", patternBytes(4, 0))).find("needs 8 bytes, got 4"),
              std::string::npos);
    MOEQ_ASSERT_NO_ERROR(Stream->writeTensor("x", patternBytes(8, 0)));
    EXPECT_NE(errorText(Stream->writeTensor("x", patternBytes(8, 0))).find("written twice"),
              std::string::npos);
    std::string Msg = errorText(Stream->commit());
    EXPECT_NE(Msg.find("tensor 'y': never written"), std::string::npos) << Msg;
    EXPECT_NE(Msg.find("s.safetensors"), std::string::npos) << Msg;
  }
  // Not committed: the old file is untouched and no temporary is left.
  EXPECT_EQ(readBytes(Path), "old");
  std::error_code EC;
  int Entries = 0;
  for (sys::fs::directory_iterator It(Dir.path(), EC), End; It != End && !EC; It.increment(EC))
    ++Entries;
  EXPECT_EQ(Entries, 1);
}

TEST_F(SafeTensorsFileTest, StreamingInParts) {
  // A tensor written in pieces, from several threads, in any order, gives
  // the bytes of the tensor written whole; pieces out of range, or more
  // bytes than the tensor has, are errors, and a tensor partly written
  // fails the commit.
  std::vector<uint8_t> Data = patternBytes(4 * 96, 5);
  SafeTensorsWriter Whole, Parts, Partial;
  MOEQ_ASSERT_NO_ERROR(Whole.addTensor("w", DType::F32, {8, 12}, Data));
  MOEQ_ASSERT_NO_ERROR(Parts.declareTensor("w", DType::F32, {8, 12}));
  MOEQ_ASSERT_NO_ERROR(Partial.declareTensor("w", DType::F32, {8, 12}));
  std::string WholePath = Dir.file("whole.safetensors"), PartsPath = Dir.file("parts.safetensors");
  MOEQ_ASSERT_NO_ERROR(Whole.writeAtomically(WholePath));
  {
    MOEQ_ASSERT_EXPECTED(Stream, Parts.openStreaming(PartsPath));
    constexpr size_t RowBytes = 4 * 12;
    std::vector<std::thread> Threads;
    std::vector<std::string> Errors(4);
    for (size_t Block = 4; Block-- > 0;) // two rows per piece, last first
      Threads.emplace_back([&, Block] {
        ArrayRef<uint8_t> Piece(Data.data() + Block * 2 * RowBytes, 2 * RowBytes);
        Errors[Block] = errorText(Stream->writeTensorPart("w", Block * 2 * RowBytes, Piece));
      });
    for (std::thread &T : Threads)
      T.join();
    for (const std::string &E : Errors)
      EXPECT_EQ(E, "");
    EXPECT_NE(errorText(Stream->writeTensorPart("w", 0, patternBytes(4, 0))).find("written twice"),
              std::string::npos);
    MOEQ_ASSERT_NO_ERROR(Stream->commit());
  }
  EXPECT_EQ(readBytes(PartsPath), readBytes(WholePath));
  MOEQ_ASSERT_EXPECTED(Stream, Partial.openStreaming(Dir.file("partial.safetensors")));
  EXPECT_NE(errorText(Stream->writeTensorPart("w", 380, patternBytes(8, 0))).find("are outside its 384"),
            std::string::npos);
  MOEQ_ASSERT_NO_ERROR(Stream->writeTensorPart("w", 0, patternBytes(48, 0)));
  std::string Msg = errorText(Stream->commit());
  EXPECT_NE(Msg.find("tensor 'w': only partly written"), std::string::npos) << Msg;
}

TEST_F(SafeTensorsFileTest, ParseFromMemory) {
  SafeTensorsWriter W;
  MOEQ_ASSERT_NO_ERROR(W.addF32("m", {2}, ArrayRef<float>({5.0f, 6.0f})));
  std::string Image;
  raw_string_ostream OS(Image);
  MOEQ_ASSERT_NO_ERROR(W.write(OS));
  OS.flush();
  auto F = SafeTensorsFile::parse(arrayRefFromStringRef(Image), "<memory>");
  ASSERT_TRUE(bool(F)) << toString(F.takeError());
  MOEQ_ASSERT_EXPECTED(V, (*F)->readAsFloat("m"));
  EXPECT_EQ(V, (std::vector<float>{5.0f, 6.0f}));
  EXPECT_EQ((*F)->path(), "<memory>");
}

//===----------------------------------------------------------------------===//
// Malformed files
//===----------------------------------------------------------------------===//

TEST_F(SafeTensorsFileTest, MissingFile) {
  auto F = SafeTensorsFile::open(Dir.file("does-not-exist.safetensors"));
  std::string Msg = errorText(F);
  EXPECT_NE(Msg.find("does-not-exist.safetensors"), std::string::npos) << Msg;
}

TEST_F(SafeTensorsFileTest, TooShort) {
  for (size_t N : {0, 1, 7}) {
    std::string Msg = openError(std::string(N, '\0'));
    EXPECT_NE(Msg.find("bad.safetensors"), std::string::npos) << Msg;
    EXPECT_NE(Msg.find("shorter than"), std::string::npos) << Msg;
  }
}

TEST_F(SafeTensorsFileTest, HeaderLengthBeyondFile) {
  std::string Msg = openError(rawSafeTensors("{}", 0, /*LengthPrefix=*/3));
  EXPECT_NE(Msg.find("bad.safetensors"), std::string::npos) << Msg;
  EXPECT_NE(Msg.find("header length 3 exceeds"), std::string::npos) << Msg;
  // A length that would overflow pointer arithmetic.
  Msg = openError(rawSafeTensors("{}", 0, ~uint64_t(0)));
  EXPECT_NE(Msg.find("exceeds"), std::string::npos) << Msg;
}

// A file can claim a header of any length (a sparse file costs nothing on
// disk): one beyond the format's limit is refused before it is allocated.
TEST_F(SafeTensorsFileTest, HeaderBeyondTheFormatsLimitIsRefusedBeforeReading) {
  std::string Path = Dir.file("huge-header.safetensors");
  {
    std::ofstream Out(Path, std::ios::binary);
    uint64_t Claimed = 150000000;
    char Prefix[8];
    for (int I = 0; I < 8; ++I)
      Prefix[I] = char(Claimed >> (8 * I));
    Out.write(Prefix, 8);
  }
  ASSERT_EQ(::truncate(Path.c_str(), 200000000), 0);
  auto F = SafeTensorsFile::open(Path);
  std::string Msg = errorText(F);
  EXPECT_NE(Msg.find("huge-header.safetensors"), std::string::npos) << Msg;
  EXPECT_NE(Msg.find("header length 150000000 exceeds safetensors' limit of 100000000 bytes"),
            std::string::npos)
      << Msg;
}

// A tensor larger than this process may allocate is refused before its
// decoded copy is allocated (the file is sparse: 4 TiB of holes).
TEST_F(SafeTensorsFileTest, TensorLargerThanMemoryIsRefusedBeforeDecoding) {
  std::string Path = Dir.file("huge-tensor.safetensors");
  uint64_t Bytes = uint64_t(1) << 42;
  std::string Header = R"({"w": {"dtype": "F32", "shape": [1048576, 1048576], )"
                       R"("data_offsets": [0, )" +
                       std::to_string(Bytes) + "]}}";
  Header.append((8 - Header.size() % 8) % 8, ' ');
  {
    std::ofstream Out(Path, std::ios::binary);
    uint64_t Length = Header.size();
    for (int I = 0; I < 8; ++I)
      Out.put(char(Length >> (8 * I)));
    Out << Header;
  }
  ASSERT_EQ(::truncate(Path.c_str(), off_t(8 + Header.size() + Bytes)), 0);
  MOEQ_ASSERT_EXPECTED(F, SafeTensorsFile::open(Path));
  auto Values = F->readAsFloat("w");
  std::string Msg = errorText(Values);
  EXPECT_EQ(Msg.rfind(Path + ": tensor 'w': decoding 1099511627776 elements to f32 needs 4.0 TiB, "
                             "more than the ",
                      0),
            0u)
      << Msg;
  EXPECT_NE(Msg.find(" this process may use (physical memory, cgroup and ulimit)"),
            std::string::npos)
      << Msg;
}

TEST_F(SafeTensorsFileTest, HeaderNotJSONObject) {
  expectHeaderError("{not json", 0, "", "not valid JSON");
  expectHeaderError("", 0, "", "not valid JSON");
  expectHeaderError("[1, 2]", 0, "", "not a JSON object");
  expectHeaderError("\"str\"", 0, "", "not a JSON object");
  expectHeaderError(R"({"t": 5})", 0, "t", "not a JSON object");
}

TEST_F(SafeTensorsFileTest, MissingFields) {
  expectHeaderError(R"({"w": {"shape": [1], "data_offsets": [0, 4]}})", 4, "w",
                    "missing 'dtype'");
  expectHeaderError(R"({"w": {"dtype": "F32", "data_offsets": [0, 4]}})", 4,
                    "w", "missing 'shape'");
  expectHeaderError(R"({"w": {"dtype": "F32", "shape": [1]}})", 4, "w",
                    "missing 'data_offsets'");
}

TEST_F(SafeTensorsFileTest, BadDType) {
  expectHeaderError(
      R"({"w": {"dtype": "F17", "shape": [1], "data_offsets": [0, 4]}})", 4,
      "w", "unknown dtype 'F17'");
  expectHeaderError(
      R"({"w": {"dtype": 4, "shape": [1], "data_offsets": [0, 4]}})", 4, "w",
      "'dtype' is not a string");
}

TEST_F(SafeTensorsFileTest, BadShape) {
  expectHeaderError(
      R"({"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}})", 4,
      "w", "negative");
  expectHeaderError(
      R"({"w": {"dtype": "F32", "shape": [2.5], "data_offsets": [0, 4]}})", 4,
      "w", "non-integer");
  expectHeaderError(
      R"({"w": {"dtype": "F32", "shape": [1.0], "data_offsets": [0, 4]}})", 4,
      "w", "non-integer");
  expectHeaderError(
      R"({"w": {"dtype": "F32", "shape": ["1"], "data_offsets": [0, 4]}})", 4,
      "w", "non-integer");
  expectHeaderError(
      R"({"w": {"dtype": "F32", "shape": 1, "data_offsets": [0, 4]}})", 4, "w",
      "'shape' is not an array");
  // Product overflows int64 (and the byte count overflows even if not).
  expectHeaderError(R"({"w": {"dtype": "F32", "shape": [4294967296, )"
                    R"(4294967296], "data_offsets": [0, 4]}})",
                    4, "w", "overflow");
  expectHeaderError(R"({"w": {"dtype": "F64", "shape": [2305843009213693952],)"
                    R"( "data_offsets": [0, 4]}})",
                    4, "w", "overflow");
  expectHeaderError(R"({"w": {"dtype": "F32", "shape": [18446744073709551615],)"
                    R"( "data_offsets": [0, 4]}})",
                    4, "w", "too large");
}

TEST_F(SafeTensorsFileTest, BadOffsets) {
  expectHeaderError(
      R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 0]}})", 4,
      "w", "begin 4 is greater than end 0");
  expectHeaderError(
      R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 8]}})", 4,
      "w", "beyond the data section");
  expectHeaderError(
      R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0]}})", 4, "w",
      "must have 2 elements");
  expectHeaderError(
      R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [-4, 0]}})", 4,
      "w", "negative");
  expectHeaderError(R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": )"
                    R"([18446744073709551612, 18446744073709551615]}})",
                    4, "w", "beyond the data section");
}

TEST_F(SafeTensorsFileTest, SizeMismatch) {
  expectHeaderError(
      R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}})", 8,
      "w", "needs 8 bytes but data_offsets span 4");
  expectHeaderError(
      R"({"w": {"dtype": "BF16", "shape": [3, 2], "data_offsets": [0, 8]}})", 8,
      "w", "needs 12 bytes");
}

TEST_F(SafeTensorsFileTest, OverlappingRanges) {
  expectHeaderError(R"({"a": {"dtype": "F32", "shape": [2], )"
                    R"("data_offsets": [0, 8]},)"
                    R"( "b": {"dtype": "F32", "shape": [1], )"
                    R"("data_offsets": [4, 8]}})",
                    8, "b", "overlap tensor 'a'");
  // Identical ranges also overlap.
  expectHeaderError(R"({"a": {"dtype": "U8", "shape": [4], )"
                    R"("data_offsets": [0, 4]},)"
                    R"( "b": {"dtype": "I8", "shape": [4], )"
                    R"("data_offsets": [0, 4]}})",
                    4, "", "overlap");
  // Zero-sized tensors may sit anywhere.
  std::string Msg =
      openError(rawSafeTensors(R"({"a": {"dtype": "U8", "shape": [4], )"
                               R"("data_offsets": [0, 4]},)"
                               R"( "e": {"dtype": "U8", "shape": [0], )"
                               R"("data_offsets": [2, 2]}})",
                               4),
                "ok.safetensors");
  EXPECT_EQ(Msg, "");
}

TEST_F(SafeTensorsFileTest, BadMetadata) {
  expectHeaderError(R"({"__metadata__": [1]})", 0, "", "'__metadata__'");
  expectHeaderError(R"({"__metadata__": {"k": 1}})", 0, "", "'k'");
}

TEST_F(SafeTensorsFileTest, TruncationNeverCrashes) {
  SafeTensorsWriter W;
  MOEQ_ASSERT_NO_ERROR(W.addF32("a", {4}, ArrayRef<float>({1, 2, 3, 4})));
  MOEQ_ASSERT_NO_ERROR(W.addBF16("b", {2, 2}, ArrayRef<float>({1, 2, 3, 4})));
  std::string Image;
  raw_string_ostream OS(Image);
  MOEQ_ASSERT_NO_ERROR(W.write(OS));
  OS.flush();
  for (size_t N = 0; N < Image.size(); ++N) {
    std::string Msg = openError(Image.substr(0, N));
    EXPECT_NE(Msg, "") << "truncated to " << N << " bytes was accepted";
    EXPECT_NE(Msg.find("bad.safetensors"), std::string::npos) << Msg;
  }
}

TEST_F(SafeTensorsFileTest, CorruptedHeaderBytesNeverCrash) {
  SafeTensorsWriter W;
  MOEQ_ASSERT_NO_ERROR(W.addF32("a", {4}, ArrayRef<float>({1, 2, 3, 4})));
  MOEQ_ASSERT_NO_ERROR(W.addI32("b", {2}, ArrayRef<int32_t>({1, 2})));
  std::string Image;
  raw_string_ostream OS(Image);
  MOEQ_ASSERT_NO_ERROR(W.write(OS));
  OS.flush();
  size_t HeaderEnd = 8 + support::endian::read64le(Image.data());
  const char Replacements[] = {'0', '9', '-', '"', '}', ']', ',', '\0', 'x'};
  for (size_t I = 0; I < HeaderEnd; ++I)
    for (char C : Replacements) {
      std::string Copy = Image;
      Copy[I] = C;
      auto F = SafeTensorsFile::parse(arrayRefFromStringRef(Copy), "fuzz");
      if (!F) {
        consumeError(F.takeError());
        continue;
      }
      // Whatever was accepted must be readable within bounds.
      for (const TensorInfo &T : (*F)->tensors()) {
        ASSERT_LE((*F)->dataSectionOffset() + T.end, Copy.size());
        if (isFloatingPoint(T.dtype)) {
          auto V = (*F)->readAsFloat(T);
          ASSERT_TRUE(bool(V)) << toString(V.takeError());
        }
      }
    }
}

} // namespace
