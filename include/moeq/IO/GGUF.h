//===- GGUF.h - writing GGUF files (llama.cpp's model format) ----*- C++ -*-===//
//
// GGUF version 3 (ggml's gguf.cpp / the `gguf` Python package define it):
// a header, typed key/value metadata, tensor descriptors (dimensions
// innermost first, a ggml type, an offset) and the tensor data, every
// tensor aligned to `general.alignment` (32 bytes, the default). ggml is not
// packaged in Debian 12 and the writer is small; files are checked by
// reading them back with the `gguf` package (test/Tools/moeq-export-gguf).
//
// Also the ggml block types whose values moeq's integer schemes reproduce
// exactly (packGGMLBlocks).
//
//===----------------------------------------------------------------------===//

#ifndef MOEQ_IO_GGUF_H
#define MOEQ_IO_GGUF_H

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace llvm {
class raw_ostream;
} // namespace llvm

namespace mlir::moeq::io {

/// ggml tensor types (ggml.h's `enum ggml_type` values).
enum class GGMLType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2, ///< 32 values: f16 d, 16 bytes of nibbles; (q - 8) * d
  Q4_1 = 3, ///< 32 values: f16 d, f16 m, 16 bytes of nibbles; q * d + m
  Q5_0 = 6, ///< 32 values: f16 d, 32 high bits, nibbles; (q - 16) * d
  Q5_1 = 7, ///< 32 values: f16 d, f16 m, 32 high bits, nibbles; q * d + m
  Q8_0 = 8, ///< 32 values: f16 d, 32 int8; q * d
  BF16 = 30,
};

llvm::StringRef ggmlTypeName(GGMLType type);
/// Values per block (1 for the float types) and bytes per block.
int64_t ggmlBlockValues(GGMLType type);
int64_t ggmlBlockBytes(GGMLType type);

/// Encodes rows of moeq codes in a ggml block type, one (scale, zero) per
/// block of 32 consecutive values: a value is (code - zero) * scale.
/// Q4_0, Q5_0 and Q8_0 are symmetric: `zero` must be their middle code
/// (8, 16, 128); Q4_1 and Q5_1 store m = -zero * scale rounded to f16 (the
/// only value not carried exactly: |error| <= 2^-11 |m|). Scales are
/// stored as f16 (moeq's are f16 values already). Fails on a code or zero
/// outside the type's range.
llvm::Error packGGMLBlocks(GGMLType type, llvm::ArrayRef<uint8_t> codes,
                           llvm::ArrayRef<float> scales, llvm::ArrayRef<float> zeros,
                           std::vector<uint8_t> &out);

/// Builds a GGUF file: metadata, then tensors whose bytes are produced when
/// the file is written (one at a time, so a model larger than memory can
/// be written).
class GGUFWriter {
public:
  using Producer = std::function<llvm::Error(llvm::raw_ostream &)>;

  GGUFWriter();
  ~GGUFWriter();

  void addUInt32(llvm::StringRef key, uint32_t value);
  void addFloat32(llvm::StringRef key, float value);
  void addBool(llvm::StringRef key, bool value);
  void addString(llvm::StringRef key, llvm::StringRef value);
  void addStrings(llvm::StringRef key, llvm::ArrayRef<std::string> values);
  void addFloat32s(llvm::StringRef key, llvm::ArrayRef<float> values);
  void addInt32s(llvm::StringRef key, llvm::ArrayRef<int32_t> values);

  /// Adds a tensor of `shape` (outermost first, as numpy and safetensors
  /// write it; GGUF stores the reverse). The innermost dimension must be a
  /// whole number of `type`'s blocks; `produce` must write exactly
  /// tensorBytes(type, shape) bytes. Fails on a duplicate name.
  llvm::Error addTensor(llvm::StringRef name, llvm::ArrayRef<int64_t> shape, GGMLType type,
                        Producer produce);
  static llvm::Expected<uint64_t> tensorBytes(GGMLType type, llvm::ArrayRef<int64_t> shape);

  /// Writes the file to `<path>.tmp-*` and renames it over `path`.
  llvm::Error writeAtomically(llvm::StringRef path) const;

  uint64_t dataBytes() const;

private:
  struct Tensor;
  void addValue(llvm::StringRef key, uint32_t type, std::string encoded);
  std::vector<std::pair<std::string, std::string>> metadata; ///< key, type + value bytes
  std::vector<std::unique_ptr<Tensor>> tensors;
  std::map<std::string, size_t> tensorIndex;
};

} // namespace mlir::moeq::io

#endif // MOEQ_IO_GGUF_H
