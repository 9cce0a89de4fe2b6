//===- GGUF.cpp - writing GGUF files (llama.cpp's model format) -----------===//

#include "moeq/IO/GGUF.h"
#include "moeq/IO/AtomicOutput.h"
#include "moeq/IO/Float16.h"

#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/raw_ostream.h"

#include <cmath>
#include <cstring>

using namespace mlir::moeq::io;
using llvm::Error;
using llvm::StringRef;
using llvm::Twine;

namespace {

constexpr uint32_t kGGUFVersion = 3;
constexpr uint64_t kAlignment = 32; // general.alignment's default

/// gguf_type values of metadata.
enum ValueType : uint32_t {
  kUInt32 = 4,
  kInt32 = 5,
  kFloat32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
};

template <typename T> void append(std::string &out, T value) {
  char bytes[sizeof(T)];
  std::memcpy(bytes, &value, sizeof(T));
  out.append(bytes, sizeof(T));
}

void appendString(std::string &out, StringRef value) {
  append<uint64_t>(out, value.size());
  out.append(value.data(), value.size());
}

uint64_t alignUp(uint64_t value) { return (value + kAlignment - 1) / kAlignment * kAlignment; }

Error ggufError(const Twine &message) { return llvm::createStringError(message.str()); }

} // namespace

StringRef mlir::moeq::io::ggmlTypeName(GGMLType type) {
  switch (type) {
  case GGMLType::F32: return "F32";
  case GGMLType::F16: return "F16";
  case GGMLType::Q4_0: return "Q4_0";
  case GGMLType::Q4_1: return "Q4_1";
  case GGMLType::Q5_0: return "Q5_0";
  case GGMLType::Q5_1: return "Q5_1";
  case GGMLType::Q8_0: return "Q8_0";
  case GGMLType::BF16: return "BF16";
  }
  llvm_unreachable("unknown ggml type");
}

int64_t mlir::moeq::io::ggmlBlockValues(GGMLType type) {
  switch (type) {
  case GGMLType::F32:
  case GGMLType::F16:
  case GGMLType::BF16:
    return 1;
  default:
    return 32;
  }
}

int64_t mlir::moeq::io::ggmlBlockBytes(GGMLType type) {
  switch (type) {
  case GGMLType::F32: return 4;
  case GGMLType::F16:
  case GGMLType::BF16: return 2;
  case GGMLType::Q4_0: return 2 + 16;
  case GGMLType::Q4_1: return 2 + 2 + 16;
  case GGMLType::Q5_0: return 2 + 4 + 16;
  case GGMLType::Q5_1: return 2 + 2 + 4 + 16;
  case GGMLType::Q8_0: return 2 + 32;
  }
  llvm_unreachable("unknown ggml type");
}

Error mlir::moeq::io::packGGMLBlocks(GGMLType type, llvm::ArrayRef<uint8_t> codes,
                                     llvm::ArrayRef<float> scales, llvm::ArrayRef<float> zeros,
                                     std::vector<uint8_t> &out) {
  int64_t blocks = int64_t(codes.size()) / 32;
  if (ggmlBlockValues(type) != 32 || int64_t(codes.size()) != blocks * 32 ||
      int64_t(scales.size()) != blocks || int64_t(zeros.size()) != blocks)
    return ggufError(llvm::formatv("{0} blocks: {1} codes, {2} scales, {3} zeros", ggmlTypeName(type),
                                   codes.size(), scales.size(), zeros.size()));
  bool withMin = type == GGMLType::Q4_1 || type == GGMLType::Q5_1;
  unsigned bits = type == GGMLType::Q8_0 ? 8 : (type == GGMLType::Q5_0 || type == GGMLType::Q5_1) ? 5 : 4;
  out.assign(blocks * ggmlBlockBytes(type), 0);
  for (int64_t b = 0; b < blocks; ++b) {
    uint8_t *block = out.data() + b * ggmlBlockBytes(type);
    const uint8_t *q = codes.data() + b * 32;
    float zero = zeros[b];
    if (!withMin && zero != float(1u << (bits - 1)))
      return ggufError(llvm::formatv("block {0}: {1} is symmetric around {2}, the zero point is {3}",
                                     b, ggmlTypeName(type), 1u << (bits - 1), zero));
    if (withMin && (zero != std::nearbyint(zero) || zero < 0 || zero >= float(1u << bits)))
      return ggufError(llvm::formatv("block {0}: zero point {1} is not a {2}-bit code", b, zero, bits));
    for (int j = 0; j < 32; ++j)
      if (q[j] >> bits)
        return ggufError(llvm::formatv("block {0}: code {1} does not fit {2} bits", b, q[j], bits));
    uint16_t d = floatToHalf(scales[b]);
    std::memcpy(block, &d, 2);
    block += 2;
    if (withMin) {
      uint16_t m = floatToHalf(-zero * scales[b]);
      std::memcpy(block, &m, 2);
      block += 2;
    }
    if (type == GGMLType::Q8_0) {
      for (int j = 0; j < 32; ++j)
        block[j] = uint8_t(int8_t(int(q[j]) - 128));
      continue;
    }
    if (bits == 5) {
      // Bit j of qh is the fifth bit of value j.
      uint32_t qh = 0;
      for (int j = 0; j < 32; ++j)
        qh |= uint32_t(q[j] >> 4) << j;
      std::memcpy(block, &qh, 4);
      block += 4;
    }
    // Byte j: value j in the low nibble, value j + 16 in the high one.
    for (int j = 0; j < 16; ++j)
      block[j] = uint8_t((q[j] & 0xF) | (q[j + 16] & 0xF) << 4);
  }
  return Error::success();
}

struct GGUFWriter::Tensor {
  std::string name;
  std::vector<int64_t> shape;
  GGMLType type;
  uint64_t bytes = 0, offset = 0;
  Producer produce;
};

GGUFWriter::GGUFWriter() = default;
GGUFWriter::~GGUFWriter() = default;

void GGUFWriter::addValue(StringRef key, uint32_t type, std::string encoded) {
  std::string entry;
  append<uint32_t>(entry, type);
  entry += encoded;
  for (auto &[existing, value] : metadata)
    if (existing == key) {
      value = std::move(entry);
      return;
    }
  metadata.emplace_back(key.str(), std::move(entry));
}

void GGUFWriter::addUInt32(StringRef key, uint32_t value) {
  std::string v;
  append(v, value);
  addValue(key, kUInt32, std::move(v));
}

void GGUFWriter::addFloat32(StringRef key, float value) {
  std::string v;
  append(v, value);
  addValue(key, kFloat32, std::move(v));
}

void GGUFWriter::addBool(StringRef key, bool value) {
  addValue(key, kBool, std::string(1, value ? '\1' : '\0'));
}

void GGUFWriter::addString(StringRef key, StringRef value) {
  std::string v;
  appendString(v, value);
  addValue(key, kString, std::move(v));
}

void GGUFWriter::addStrings(StringRef key, llvm::ArrayRef<std::string> values) {
  std::string v;
  append<uint32_t>(v, kString);
  append<uint64_t>(v, values.size());
  for (const std::string &s : values)
    appendString(v, s);
  addValue(key, kArray, std::move(v));
}

void GGUFWriter::addFloat32s(StringRef key, llvm::ArrayRef<float> values) {
  std::string v;
  append<uint32_t>(v, kFloat32);
  append<uint64_t>(v, values.size());
  for (float f : values)
    append(v, f);
  addValue(key, kArray, std::move(v));
}

void GGUFWriter::addInt32s(StringRef key, llvm::ArrayRef<int32_t> values) {
  std::string v;
  append<uint32_t>(v, kInt32);
  append<uint64_t>(v, values.size());
  for (int32_t i : values)
    append(v, i);
  addValue(key, kArray, std::move(v));
}

llvm::Expected<uint64_t> GGUFWriter::tensorBytes(GGMLType type, llvm::ArrayRef<int64_t> shape) {
  if (shape.empty())
    return ggufError("a GGUF tensor needs at least one dimension");
  uint64_t elements = 1;
  for (int64_t d : shape) {
    if (d <= 0)
      return ggufError("GGUF tensor dimensions must be positive");
    elements *= uint64_t(d);
  }
  if (shape.back() % ggmlBlockValues(type))
    return ggufError(llvm::formatv("{0} stores rows in blocks of {1} values, the rows have {2}",
                                   ggmlTypeName(type), ggmlBlockValues(type), shape.back()));
  return elements / ggmlBlockValues(type) * ggmlBlockBytes(type);
}

Error GGUFWriter::addTensor(StringRef name, llvm::ArrayRef<int64_t> shape, GGMLType type,
                            Producer produce) {
  if (shape.size() > 4)
    return ggufError("GGUF tensor '" + name + "' has more than 4 dimensions");
  if (tensorIndex.count(name.str()))
    return ggufError("GGUF tensor '" + name + "' is added twice");
  llvm::Expected<uint64_t> bytes = tensorBytes(type, shape);
  if (!bytes)
    return ggufError("GGUF tensor '" + name + "': " + llvm::toString(bytes.takeError()));
  auto tensor = std::make_unique<Tensor>();
  tensor->name = name.str();
  tensor->shape.assign(shape.begin(), shape.end());
  tensor->type = type;
  tensor->bytes = *bytes;
  tensor->offset = tensors.empty() ? 0 : alignUp(tensors.back()->offset + tensors.back()->bytes);
  tensor->produce = std::move(produce);
  tensorIndex[tensor->name] = tensors.size();
  tensors.push_back(std::move(tensor));
  return Error::success();
}

uint64_t GGUFWriter::dataBytes() const {
  return tensors.empty() ? 0 : tensors.back()->offset + tensors.back()->bytes;
}

namespace {
/// Counts the bytes a producer writes, so that a wrong count is an error
/// instead of a file whose offsets are off.
class CountingStream : public llvm::raw_ostream {
public:
  explicit CountingStream(llvm::raw_ostream &os) : os(os) { SetUnbuffered(); }
  uint64_t count = 0;

private:
  void write_impl(const char *ptr, size_t size) override {
    os.write(ptr, size);
    count += size;
  }
  uint64_t current_pos() const override { return count; }
  llvm::raw_ostream &os;
};
} // namespace

Error GGUFWriter::writeAtomically(StringRef path) const {
  std::string header;
  header.append("GGUF", 4);
  append<uint32_t>(header, kGGUFVersion);
  append<uint64_t>(header, tensors.size());
  append<uint64_t>(header, metadata.size());
  for (const auto &[key, value] : metadata) {
    appendString(header, key);
    header += value;
  }
  for (const auto &tensor : tensors) {
    appendString(header, tensor->name);
    append<uint32_t>(header, tensor->shape.size());
    for (auto d = tensor->shape.rbegin(); d != tensor->shape.rend(); ++d)
      append<uint64_t>(header, uint64_t(*d));
    append<uint32_t>(header, uint32_t(tensor->type));
    append<uint64_t>(header, tensor->offset);
  }
  header.resize(alignUp(header.size()), '\0');
  return writeFileAtomically(path, [&](llvm::raw_ostream &os) -> Error {
    os << header;
    uint64_t at = 0;
    for (const auto &tensor : tensors) {
      os.write_zeros(tensor->offset - at);
      CountingStream counted(os);
      if (Error err = tensor->produce(counted))
        return err;
      counted.flush();
      if (counted.count != tensor->bytes)
        return ggufError(llvm::formatv("GGUF tensor '{0}': {1} bytes produced, {2} expected",
                                       tensor->name, counted.count, tensor->bytes));
      at = tensor->offset + tensor->bytes;
    }
    return Error::success();
  });
}
