//===- SafeTensorsTest.cpp - the runtime's safetensors reader and uploads -===//
#include "moeq/Runtime/SafeTensors.h"
#include "moeq/Runtime/Weights.h"

#include "RuntimeTestUtil.h"

#include "gtest/gtest.h"

#include <cmath>
#include <fstream>
#include <unistd.h>

using namespace moeq::runtime;
using namespace moeq::runtime::test;
namespace bits = mlir::moeq::io;

namespace {

std::vector<uint8_t> readBytes(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

TEST(RuntimeSafeTensors, WritesAndReadsBack) {
  TempDir dir;
  std::vector<float> a = {1, 2, 3, 4, 5, 6};
  std::vector<int32_t> b = {-7, 8};
  ASSERT_TRUE(writeSafeTensors(dir.file("t.safetensors"),
                               {{"a", "F32", {2, 3}, a.data()}, {"b", "I32", {2}, b.data()}})
                  .ok());
  std::unique_ptr<SafeTensorsFile> file;
  Status status = SafeTensorsFile::open(dir.file("t.safetensors"), file);
  ASSERT_TRUE(status.ok()) << status.message();
  const TensorEntry *entry = file->find("a");
  ASSERT_NE(entry, nullptr);
  EXPECT_EQ(entry->dtype, "F32");
  EXPECT_EQ(entry->shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(entry->elements, 6);
  EXPECT_EQ(std::memcmp(file->data(*entry), a.data(), 24), 0);
  entry = file->find("b");
  ASSERT_NE(entry, nullptr);
  EXPECT_EQ(std::memcmp(file->data(*entry), b.data(), 8), 0);
  EXPECT_EQ(file->find("c"), nullptr);
  // The data section starts 8-byte aligned; the file replaced its temporary.
  std::vector<uint8_t> bytes = readBytes(dir.file("t.safetensors"));
  EXPECT_EQ(bytes[0] % 8, 0);
  EXPECT_EQ(std::system(("test $(ls '" + dir.path + "' | wc -l) -eq 1").c_str()), 0);
}

TEST(RuntimeSafeTensors, TruncatedAndCorruptFilesAreErrors) {
  TempDir dir;
  std::vector<float> a(16, 1.0f);
  std::string path = dir.file("t.safetensors");
  ASSERT_TRUE(writeSafeTensors(path, {{"a", "F32", {16}, a.data()}}).ok());
  std::vector<uint8_t> bytes = readBytes(path);
  std::unique_ptr<SafeTensorsFile> file;

  std::vector<uint8_t> cut(bytes.begin(), bytes.end() - 4);
  Status status = SafeTensorsFile::parse(cut, "cut.safetensors", file);
  EXPECT_EQ(status.message(), "cut.safetensors: tensor 'a': data_offsets [0, 64] are outside "
                              "the data section of 60 bytes (truncated file?)");

  std::vector<uint8_t> headerOnly(bytes.begin(), bytes.begin() + 20);
  status = SafeTensorsFile::parse(headerOnly, "h.safetensors", file);
  EXPECT_EQ(status.message().rfind("h.safetensors: truncated or not a safetensors file (header of ", 0),
            0u)
      << status.message();

  status = SafeTensorsFile::parse({1, 2, 3}, "tiny.safetensors", file);
  EXPECT_EQ(status.message(), "tiny.safetensors: truncated safetensors file (3 bytes, not even "
                              "the 8-byte header length)");

  std::string header = R"({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 12]}})";
  std::vector<uint8_t> wrongSize(8, 0);
  wrongSize[0] = uint8_t(header.size());
  wrongSize.insert(wrongSize.end(), header.begin(), header.end());
  wrongSize.resize(wrongSize.size() + 12);
  status = SafeTensorsFile::parse(wrongSize, "w.safetensors", file);
  EXPECT_EQ(status.message(), "w.safetensors: tensor 'a': 12 bytes of data for 4 F32 elements");

  status = SafeTensorsFile::open(dir.file("none.safetensors"), file);
  EXPECT_EQ(status.message(), dir.file("none.safetensors") + ": cannot open: No such file or directory");
}

uint16_t toF16(const std::string &from, const void *value) {
  uint16_t half = 0;
  Status status = convertElements(from, static_cast<const uint8_t *>(value), 1, DType::F16, &half);
  EXPECT_TRUE(status.ok()) << status.message();
  return half;
}

// A header longer than the format allows is refused by name, before it is
// parsed (the file is sparse: its claimed header costs nothing on disk).
TEST(RuntimeSafeTensors, HeaderBeyondTheFormatsLimitIsRefused) {
  TempDir dir;
  std::string path = dir.file("huge-header.safetensors");
  {
    std::ofstream out(path, std::ios::binary);
    uint64_t claimed = 150000000;
    char prefix[8];
    for (int i = 0; i < 8; ++i)
      prefix[i] = char(claimed >> (8 * i));
    out.write(prefix, 8);
  }
  ASSERT_EQ(::truncate(path.c_str(), 200000000), 0);
  std::unique_ptr<SafeTensorsFile> file;
  Status status = SafeTensorsFile::open(path, file);
  EXPECT_EQ(status.message(), path + ": header of 150000000 bytes exceeds safetensors' limit of "
                                     "100000000 bytes");
}

TEST(RuntimeSafeTensors, ConversionsRoundToNearestEven) {
  float tieDown = 1.0f + std::ldexp(1.0f, -11); // halfway between 1 and 1 + 2^-10
  float tieUp = 1.0f + 3 * std::ldexp(1.0f, -11);
  float overflow = 65520.0f;
  EXPECT_EQ(toF16("F32", &tieDown), 0x3C00);
  EXPECT_EQ(toF16("F32", &tieUp), 0x3C02);
  EXPECT_EQ(toF16("F32", &overflow), 0x7C00);
  uint16_t bf16 = bits::floatToBF16(-2.5f);
  EXPECT_EQ(toF16("BF16", &bf16), bits::floatToHalf(-2.5f));
  uint16_t half = 0x3555;
  EXPECT_EQ(toF16("F16", &half), 0x3555);

  float asFloat = 0;
  ASSERT_TRUE(convertElements("F16", reinterpret_cast<const uint8_t *>(&half), 1, DType::F32,
                              &asFloat)
                  .ok());
  EXPECT_EQ(asFloat, bits::halfToFloat(0x3555));
  ASSERT_TRUE(convertElements("BF16", reinterpret_cast<const uint8_t *>(&bf16), 1, DType::F32,
                              &asFloat)
                  .ok());
  EXPECT_EQ(asFloat, -2.5f);
  int32_t integer = -12345, copied = 0;
  ASSERT_TRUE(convertElements("I32", reinterpret_cast<const uint8_t *>(&integer), 1, DType::I32,
                              &copied)
                  .ok());
  EXPECT_EQ(copied, -12345);
  EXPECT_EQ(convertElements("F32", reinterpret_cast<const uint8_t *>(&asFloat), 1, DType::I32,
                            &copied)
                .message(),
            "cannot convert F32 to i32 (the runtime converts BF16/F16/F32 to f16/f32, I32 to i32 "
            "and I8 to i8)");
  EXPECT_FALSE(canConvert("F64", DType::F32));
  EXPECT_FALSE(canConvert("I32", DType::F16));
}

/// Uploads a manifest's device_params to a FakeDevice: the bytes of each.
std::vector<std::vector<uint8_t>> upload(const std::string &params) {
  TempDir dir;
  writeTestArtifact(dir.path, replaced(kTestManifest,
                                       R"({"file": "params.safetensors", "tensor": "gate", "dtype": "f32", "shape": [3, 4]})",
                                       params));
  Manifest manifest;
  Status status = loadManifest(dir.path, KernelFile::None, manifest);
  EXPECT_TRUE(status.ok()) << status.message();
  DeviceParamSources sources;
  status = sources.open(manifest);
  EXPECT_TRUE(status.ok()) << status.message();
  FakeDevice device;
  std::vector<DeviceAddress> addresses;
  status = sources.upload(device, addresses);
  EXPECT_TRUE(status.ok()) << status.message();
  std::vector<std::vector<uint8_t>> contents;
  for (size_t i = 0; i < addresses.size(); ++i) {
    size_t bytes = dtypeSize(manifest.deviceParams[i].dtype);
    for (int64_t dim : manifest.deviceParams[i].shape)
      bytes *= size_t(dim);
    const uint8_t *data = reinterpret_cast<const uint8_t *>(addresses[i]);
    contents.emplace_back(data, data + bytes);
  }
  return contents;
}

template <typename T>
std::vector<T> as(const std::vector<uint8_t> &bytes) {
  std::vector<T> values(bytes.size() / sizeof(T));
  std::memcpy(values.data(), bytes.data(), values.size() * sizeof(T));
  return values;
}

std::vector<float> halvesToFloats(const std::vector<uint8_t> &bytes) {
  std::vector<float> values;
  for (uint16_t half : as<uint16_t>(bytes))
    values.push_back(bits::halfToFloat(half));
  return values;
}

TEST(RuntimeSafeTensors, DeviceParamsHonourIndexRowsAndDType) {
  auto contents = upload(R"(
    {"file": "params.safetensors", "tensor": "gate", "dtype": "f32", "shape": [3, 4]},
    {"file": "params.safetensors", "tensor": "stack", "dtype": "f16", "shape": [2, 4], "index": 1, "rows": [1, 2]},
    {"file": "params.safetensors", "tensor": "gate", "dtype": "f16", "shape": [1, 4], "rows": [1, 1]},
    {"file": "params.safetensors", "tensor": "ids", "dtype": "i32", "shape": [5]},
    {"file": "params.safetensors", "tensor": "half", "dtype": "f32", "shape": [4]},
    {"file": "params.safetensors", "tensor": "stack", "dtype": "f32", "shape": [3, 4], "index": 0})");
  ASSERT_EQ(contents.size(), 6u);
  EXPECT_EQ(as<float>(contents[0]), (std::vector<float>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}));
  // stack element i is i / 4: matrix 1 starts at 12, its row 1 at 16.
  EXPECT_EQ(halvesToFloats(contents[1]),
            (std::vector<float>{4, 4.25, 4.5, 4.75, 5, 5.25, 5.5, 5.75}));
  EXPECT_EQ(halvesToFloats(contents[2]), (std::vector<float>{4, 5, 6, 7}));
  EXPECT_EQ(as<int32_t>(contents[3]), (std::vector<int32_t>{10, 11, 12, 13, 14}));
  EXPECT_EQ(as<float>(contents[4]), (std::vector<float>{0.5, 1.5, 2.5, 3.5}));
  EXPECT_EQ(as<float>(contents[5]),
            (std::vector<float>{0, 0.25, 0.5, 0.75, 1, 1.25, 1.5, 1.75, 2, 2.25, 2.5, 2.75}));
}

// Experts stored [in, out] (Llama 4, gpt-oss) are read transposed, with
// every step-th row of the transposed matrix (gpt-oss's interleaved gate/up).
TEST(RuntimeSafeTensors, DeviceParamsGatherTransposedAndStridedRows) {
  auto contents = upload(R"(
    {"file": "params.safetensors", "tensor": "stack", "dtype": "f32", "shape": [4, 3], "index": 1, "transposed": true},
    {"file": "params.safetensors", "tensor": "stack", "dtype": "f16", "shape": [2, 3], "index": 1, "transposed": true, "rows": [1, 2], "step": 2},
    {"file": "params.safetensors", "tensor": "gate", "dtype": "f32", "shape": [2, 4], "rows": [0, 2], "step": 2})");
  ASSERT_EQ(contents.size(), 3u);
  // Matrix 1 of stack is elements 12..23 (value i / 4) as [3, 4]: its
  // transpose's row c is (12 + c, 16 + c, 20 + c) / 4.
  EXPECT_EQ(as<float>(contents[0]), (std::vector<float>{3, 4, 5, 3.25, 4.25, 5.25, 3.5, 4.5,
                                                         5.5, 3.75, 4.75, 5.75}));
  EXPECT_EQ(halvesToFloats(contents[1]),
            (std::vector<float>{3.25, 4.25, 5.25, 3.75, 4.75, 5.75}));
  // gate [3, 4] = 0..11: rows 0 and 2.
  EXPECT_EQ(as<float>(contents[2]), (std::vector<float>{0, 1, 2, 3, 8, 9, 10, 11}));
}

} // namespace
