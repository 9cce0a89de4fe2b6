//===- GGUFTest.cpp - GGUF writer and ggml block encodings ----------------===//
//
// The blocks are decoded here as ggml's dequantize_row_q*_* do (reference
// formulas, ggml-quants.c) and must give moeq's (code - zero) * scale.
//
//===----------------------------------------------------------------------===//

#include "moeq/IO/Float16.h"
#include "moeq/IO/GGUF.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/raw_ostream.h"
#include "gtest/gtest.h"

#include <cstring>
#include <random>

using namespace mlir::moeq::io;

namespace {

float half(const uint8_t *p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return halfToFloat(h);
}

/// ggml's dequantize_row for one block.
std::vector<float> decodeBlock(GGMLType type, const uint8_t *b) {
  std::vector<float> y(32);
  float d = half(b);
  if (type == GGMLType::Q8_0) {
    for (int j = 0; j < 32; ++j)
      y[j] = float(int8_t(b[2 + j])) * d;
    return y;
  }
  bool withMin = type == GGMLType::Q4_1 || type == GGMLType::Q5_1;
  float m = withMin ? half(b + 2) : 0.f;
  const uint8_t *rest = b + (withMin ? 4 : 2);
  bool five = type == GGMLType::Q5_0 || type == GGMLType::Q5_1;
  uint32_t qh = 0;
  if (five) {
    std::memcpy(&qh, rest, 4);
    rest += 4;
  }
  int offset = withMin ? 0 : (five ? 16 : 8);
  for (int j = 0; j < 16; ++j) {
    int xh0 = five ? int(((qh >> j) << 4) & 0x10) : 0;
    int xh1 = five ? int((qh >> (j + 12)) & 0x10) : 0;
    int x0 = ((rest[j] & 0x0F) | xh0) - offset;
    int x1 = ((rest[j] >> 4) | xh1) - offset;
    y[j] = withMin ? x0 * d + m : x0 * d;
    y[j + 16] = withMin ? x1 * d + m : x1 * d;
  }
  return y;
}

void checkType(GGMLType type, unsigned bits, bool symmetric) {
  std::mt19937 rng(7);
  int blocks = 5;
  std::vector<uint8_t> codes(32 * blocks);
  std::vector<float> scales(blocks), zeros(blocks);
  for (int b = 0; b < blocks; ++b) {
    scales[b] = halfToFloat(floatToHalf(0.01f + 0.003f * float(rng() % 100)));
    zeros[b] = symmetric ? float(1u << (bits - 1)) : float(rng() % (1u << bits));
    for (int j = 0; j < 32; ++j)
      codes[b * 32 + j] = uint8_t(rng() % (1u << bits));
  }
  codes[0] = 0; // the extremes
  codes[1] = uint8_t((1u << bits) - 1);
  std::vector<uint8_t> out;
  ASSERT_FALSE(llvm::errorToBool(packGGMLBlocks(type, codes, scales, zeros, out)));
  ASSERT_EQ(int64_t(out.size()), blocks * ggmlBlockBytes(type));
  for (int b = 0; b < blocks; ++b) {
    std::vector<float> y = decodeBlock(type, out.data() + b * ggmlBlockBytes(type));
    for (int j = 0; j < 32; ++j) {
      float expected = (float(codes[b * 32 + j]) - zeros[b]) * scales[b];
      // Q4_1 / Q5_1 carry -zero * scale as an f16 min.
      float tolerance = symmetric ? 0.f : std::ldexp(std::fabs(zeros[b] * scales[b]), -11);
      EXPECT_NEAR(y[j], expected, tolerance) << ggmlTypeName(type).str() << " block " << b << " value " << j;
    }
  }
}

TEST(GGUFTest, BlocksDecodeToMoeqValues) {
  checkType(GGMLType::Q4_0, 4, true);
  checkType(GGMLType::Q5_0, 5, true);
  checkType(GGMLType::Q8_0, 8, true);
  checkType(GGMLType::Q4_1, 4, false);
  checkType(GGMLType::Q5_1, 5, false);
}

TEST(GGUFTest, SymmetricTypesNeedTheMiddleZero) {
  std::vector<uint8_t> codes(32, 3), out;
  std::vector<float> scales{1.f}, zeros{7.f};
  llvm::Error err = packGGMLBlocks(GGMLType::Q4_0, codes, scales, zeros, out);
  ASSERT_TRUE(bool(err));
  EXPECT_NE(llvm::toString(std::move(err)).find("symmetric around 8"), std::string::npos);
  codes[5] = 16;
  zeros[0] = 3.f;
  err = packGGMLBlocks(GGMLType::Q4_1, codes, scales, zeros, out);
  ASSERT_TRUE(bool(err));
  EXPECT_NE(llvm::toString(std::move(err)).find("does not fit 4 bits"), std::string::npos);
}

template <typename T> T readAt(llvm::StringRef bytes, size_t &at) {
  T value;
  std::memcpy(&value, bytes.data() + at, sizeof(T));
  at += sizeof(T);
  return value;
}

std::string readString(llvm::StringRef bytes, size_t &at) {
  uint64_t size = readAt<uint64_t>(bytes, at);
  std::string s = bytes.substr(at, size).str();
  at += size;
  return s;
}

TEST(GGUFTest, FileLayout) {
  llvm::SmallString<128> path;
  ASSERT_FALSE(llvm::sys::fs::createTemporaryFile("moeq-gguf", "gguf", path));
  GGUFWriter writer;
  writer.addString("general.architecture", "llama");
  writer.addUInt32("llama.block_count", 2);
  std::vector<float> values{1, 2, 3};
  ASSERT_FALSE(llvm::errorToBool(writer.addTensor("a", {3}, GGMLType::F32, [&](llvm::raw_ostream &os) {
    os.write(reinterpret_cast<const char *>(values.data()), 12);
    return llvm::Error::success();
  })));
  ASSERT_FALSE(llvm::errorToBool(writer.addTensor("b", {2, 32}, GGMLType::Q8_0, [](llvm::raw_ostream &os) {
    os.write_zeros(68);
    return llvm::Error::success();
  })));
  // Rows must be whole blocks; names unique.
  EXPECT_TRUE(llvm::errorToBool(writer.addTensor("c", {2, 30}, GGMLType::Q4_0, {})));
  EXPECT_TRUE(llvm::errorToBool(writer.addTensor("a", {3}, GGMLType::F32, {})));
  ASSERT_FALSE(llvm::errorToBool(writer.writeAtomically(path)));

  auto buffer = llvm::MemoryBuffer::getFile(path);
  ASSERT_TRUE(bool(buffer));
  llvm::StringRef bytes = (*buffer)->getBuffer();
  size_t at = 0;
  EXPECT_EQ(bytes.substr(0, 4), "GGUF");
  at = 4;
  EXPECT_EQ(readAt<uint32_t>(bytes, at), 3u);
  EXPECT_EQ(readAt<uint64_t>(bytes, at), 2u); // tensors
  EXPECT_EQ(readAt<uint64_t>(bytes, at), 2u); // key/values
  EXPECT_EQ(readString(bytes, at), "general.architecture");
  EXPECT_EQ(readAt<uint32_t>(bytes, at), 8u);
  EXPECT_EQ(readString(bytes, at), "llama");
  EXPECT_EQ(readString(bytes, at), "llama.block_count");
  EXPECT_EQ(readAt<uint32_t>(bytes, at), 4u);
  EXPECT_EQ(readAt<uint32_t>(bytes, at), 2u);
  EXPECT_EQ(readString(bytes, at), "a");
  EXPECT_EQ(readAt<uint32_t>(bytes, at), 1u);
  EXPECT_EQ(readAt<uint64_t>(bytes, at), 3u);
  EXPECT_EQ(readAt<uint32_t>(bytes, at), 0u);
  EXPECT_EQ(readAt<uint64_t>(bytes, at), 0u);
  EXPECT_EQ(readString(bytes, at), "b");
  EXPECT_EQ(readAt<uint32_t>(bytes, at), 2u);
  EXPECT_EQ(readAt<uint64_t>(bytes, at), 32u); // innermost first
  EXPECT_EQ(readAt<uint64_t>(bytes, at), 2u);
  EXPECT_EQ(readAt<uint32_t>(bytes, at), 8u);
  EXPECT_EQ(readAt<uint64_t>(bytes, at), 32u); // 12 bytes aligned up to 32
  size_t data = (at + 31) / 32 * 32;
  EXPECT_EQ(bytes.size(), data + 32 + 68);
  float first;
  std::memcpy(&first, bytes.data() + data, 4);
  EXPECT_EQ(first, 1.f);
  llvm::sys::fs::remove(path);
}

TEST(GGUFTest, WrongProducerSizeIsAnError) {
  llvm::SmallString<128> path;
  ASSERT_FALSE(llvm::sys::fs::createTemporaryFile("moeq-gguf", "gguf", path));
  llvm::sys::fs::remove(path);
  GGUFWriter writer;
  ASSERT_FALSE(llvm::errorToBool(writer.addTensor("a", {4}, GGMLType::F32, [](llvm::raw_ostream &os) {
    os.write_zeros(8);
    return llvm::Error::success();
  })));
  llvm::Error err = writer.writeAtomically(path);
  ASSERT_TRUE(bool(err));
  EXPECT_NE(llvm::toString(std::move(err)).find("8 bytes produced, 16 expected"), std::string::npos);
  EXPECT_FALSE(llvm::sys::fs::exists(path));
}

} // namespace
