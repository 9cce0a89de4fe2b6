//===- SafeTensors.h - the runtime's safetensors reader/writer --*- C++ -*-===//
//
// The runtime cannot use lib/IO (it is built on LLVM Support), so it has
// its own small reader: the file is memory-mapped, the header
//
//   u64 little-endian N | N bytes of JSON | data section
//
// is validated up front (dtype, shape, data_offsets within the data section
// and consistent with the shape), and every later access is a checked slice.
// The writer produces the standard layout and replaces its target
// atomically (temporary sibling + rename).
//
//===----------------------------------------------------------------------===//
#ifndef MOEQ_RUNTIME_SAFETENSORS_H
#define MOEQ_RUNTIME_SAFETENSORS_H

#include "moeq/Runtime/Plan.h"
#include "moeq/Runtime/Status.h"

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace moeq::runtime {

struct TensorEntry {
  std::string name;
  std::string dtype;          ///< spelled as in the file: "BF16", "F32", ...
  size_t elementSize = 0;
  std::vector<int64_t> shape;
  int64_t elements = 0;
  uint64_t begin = 0, end = 0; ///< offsets in the data section
};

class SafeTensorsFile {
public:
  /// Maps and validates `path`.
  static Status open(const std::string &path, std::unique_ptr<SafeTensorsFile> &file);
  /// Validates an in-memory image (kept by the object); `path` names it in
  /// messages.
  static Status parse(std::vector<uint8_t> image, const std::string &path,
                      std::unique_ptr<SafeTensorsFile> &file);
  ~SafeTensorsFile();
  SafeTensorsFile(const SafeTensorsFile &) = delete;
  SafeTensorsFile &operator=(const SafeTensorsFile &) = delete;

  const std::string &path() const { return filePath; }
  /// The entry called `name`, or null.
  const TensorEntry *find(const std::string &name) const;
  /// The entry's bytes (entry.end - entry.begin of them).
  const uint8_t *data(const TensorEntry &entry) const { return dataSection + entry.begin; }

private:
  SafeTensorsFile() = default;
  Status parseHeader(const uint8_t *image, size_t size);

  std::string filePath;
  void *mapping = nullptr;
  size_t mappingSize = 0;
  std::vector<uint8_t> ownedImage;
  const uint8_t *dataSection = nullptr;
  std::map<std::string, TensorEntry> entries;
};

/// Size in bytes of a safetensors dtype ("F16" -> 2), 0 when unknown.
size_t safetensorsDTypeSize(const std::string &dtype);

/// Whether convertElements converts file dtype `from` to `to`.
bool canConvert(const std::string &from, DType to);

/// Converts `count` elements of file dtype `from` (BF16, F16, F32, I32, I8)
/// at `source` to `to` at `destination`: floats to f16/f32 rounding to
/// nearest even, integers to the same integer type only. Fails on any other
/// pair, naming both types.
Status convertElements(const std::string &from, const uint8_t *source, int64_t count, DType to,
                       void *destination);

struct TensorToWrite {
  std::string name;
  std::string dtype; ///< "F32", "F16", ...
  std::vector<int64_t> shape;
  const void *data = nullptr; ///< product(shape) * element size bytes
};

/// Writes `tensors` to `path` atomically: a temporary file next to it,
/// renamed over `path` once complete; nothing is left behind on failure.
Status writeSafeTensors(const std::string &path, const std::vector<TensorToWrite> &tensors);

} // namespace moeq::runtime

#endif // MOEQ_RUNTIME_SAFETENSORS_H
