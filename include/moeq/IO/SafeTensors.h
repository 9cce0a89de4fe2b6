//===- SafeTensors.h - safetensors reader and writer -----------*- C++ -*-===//
//
// The safetensors format (https://github.com/huggingface/safetensors):
//
//   u64 little-endian N | N bytes of JSON header | data section
//
// The header maps tensor names to {"dtype", "shape", "data_offsets": [b, e]}
// with offsets relative to the start of the data section, plus an optional
// "__metadata__" string->string map.
//
// The reader validates the whole header up front (reading only the header)
// and memory-maps the file read-only when a tensor's bytes are first asked
// for, so every later access is a plain bounds-checked slice; readBytes()
// copies a range without mapping anything. Every diagnostic names the file
// and, where there is one, the tensor.
//
//===----------------------------------------------------------------------===//

#ifndef MOEQ_IO_SAFETENSORS_H
#define MOEQ_IO_SAFETENSORS_H

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/STLFunctionalExtras.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"
#include "llvm/Support/FileSystem.h"

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace llvm {
class raw_ostream;
} // namespace llvm

namespace mlir::moeq::io {

class AtomicOutputFile;

/// Element types, spelled as in the safetensors specification.
enum class DType : uint8_t {
  BOOL,
  U8,
  I8,
  F8_E4M3,
  F8_E5M2,
  I16,
  U16,
  F16,
  BF16,
  I32,
  U32,
  F32,
  F64,
  I64,
  U64,
};

/// Size of one element in bytes.
size_t dtypeSize(DType T);
/// The specification spelling, e.g. "BF16".
llvm::StringRef dtypeName(DType T);
/// Inverse of dtypeName (case-sensitive, like the format).
std::optional<DType> parseDType(llvm::StringRef Name);
/// True for the types readAsFloat can convert (all floating-point types).
bool isFloatingPoint(DType T);

/// One entry of a safetensors header. Offsets are relative to the data
/// section, as in the file.
struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  uint64_t begin = 0;
  uint64_t end = 0;

  /// Product of the shape (1 for a scalar). Validated not to overflow when
  /// the entry was read.
  int64_t numElements() const;
  uint64_t numBytes() const { return end - begin; }
};

/// Decodes \p Bytes of element type \p T into floats. Fails for non-floating
/// types. \p Context prefixes the error message.
llvm::Expected<std::vector<float>>
decodeToFloat(DType T, llvm::ArrayRef<uint8_t> Bytes, llvm::StringRef Context);

/// Appends \p Values encoded as \p T (BF16, F16, F32 or F64; rounding to
/// nearest even) to \p Out, little-endian. Fails for other types.
llvm::Error encodeFromFloat(DType T, llvm::ArrayRef<float> Values,
                            std::vector<uint8_t> &Out);

/// A read-only, memory-mapped, fully validated safetensors file.
class SafeTensorsFile {
public:
  static llvm::Expected<std::unique_ptr<SafeTensorsFile>>
  open(llvm::StringRef Path);

  /// Parses an in-memory image (used by open() and by tests). \p Path only
  /// names the source in diagnostics. The image must outlive the result.
  static llvm::Expected<std::unique_ptr<SafeTensorsFile>>
  parse(llvm::ArrayRef<uint8_t> Image, llvm::StringRef Path);

  ~SafeTensorsFile();

  /// The entry called \p Name, or null.
  const TensorInfo *find(llvm::StringRef Name) const;
  /// All entries, sorted by name.
  llvm::ArrayRef<TensorInfo> tensors() const { return Tensors; }
  /// The raw little-endian bytes of \p Info, which must come from this file.
  /// Maps the file on first use (thread-safe; a file that cannot be mapped
  /// is a fatal error).
  llvm::ArrayRef<uint8_t> data(const TensorInfo &Info) const;

  /// Copies \p Out.size() bytes of \p Info's data from \p Offset into
  /// \p Out: with pread, without mapping the file (or from the mapping or
  /// in-memory image when there is one). Thread-safe. Lets streaming
  /// readers bound their address space and resident set by what they
  /// hold, not by the file.
  llvm::Error readBytes(const TensorInfo &Info, uint64_t Offset,
                        llvm::MutableArrayRef<uint8_t> Out) const;

  /// Calls \p Consume(Offset, Bytes) for the bytes [Begin, Begin + Size)
  /// of \p Info's data, in order, \p ChunkBytes at a time (the last chunk
  /// shorter), read with readBytes() into one reused buffer: the tensor is
  /// never whole in memory, nothing is mapped. Offsets are relative to
  /// \p Begin. Stops at the first error.
  llvm::Error forEachChunk(
      const TensorInfo &Info, uint64_t Begin, uint64_t Size, uint64_t ChunkBytes,
      llvm::function_ref<llvm::Error(uint64_t, llvm::ArrayRef<uint8_t>)> Consume) const;

  /// Converts a floating-point tensor (BF16, F16, F32, F64, F8_E4M3,
  /// F8_E5M2) to f32. Integer and bool tensors are an error.
  llvm::Expected<std::vector<float>> readAsFloat(llvm::StringRef Name) const;
  llvm::Expected<std::vector<float>> readAsFloat(const TensorInfo &Info) const;

  /// Drops the file's pages from this process's resident set (madvise
  /// MADV_DONTNEED on the read-only mapping): they stay in the page cache
  /// and fault back in when read again. Streaming consumers call this after
  /// each weight or layer so that RSS tracks what they hold, not what they
  /// have read. No-op for in-memory images and files not mapped.
  void releasePages() const;

  /// The "__metadata__" map (empty if absent).
  const std::map<std::string, std::string> &metadata() const {
    return Metadata;
  }
  llvm::StringRef path() const { return Path; }
  /// Offset of the data section from the start of the file.
  uint64_t dataSectionOffset() const { return DataStart; }

private:
  SafeTensorsFile() = default;
  llvm::Error parseHeader(llvm::StringRef HeaderText, uint64_t DataSize);
  /// Maps the file if it is not yet (no-op for in-memory images).
  void ensureMapped() const;

  std::string Path;
  // The mapping, made on first use (empty when parsed from memory);
  // mutable: mapping does not change what the file reads.
  mutable llvm::sys::fs::mapped_file_region Mapping;
  mutable std::once_flag MapOnce;
  // The in-memory image, or the mapping once made.
  mutable llvm::ArrayRef<uint8_t> Image;
  // The open file (-1 for in-memory images) and its size.
  int FD = -1;
  uint64_t FileSize = 0;
  uint64_t DataStart = 0;
  std::vector<TensorInfo> Tensors;
  std::map<std::string, std::string> Metadata;
};

/// Builds a safetensors file in the standard layout, byte-for-byte
/// deterministic for the same inputs:
///  - header keys sorted by name ("__metadata__" first), compact JSON,
///    padded with spaces so the data section starts 8-byte aligned;
///  - data packed without holes (the reference implementation rejects
///    holes), ordered by element size (largest first) and then by name, so
///    every tensor is aligned to its element size. With a single dtype this
///    is plain sorted-name order.
class SafeTensorsWriter {
public:
  /// Produces exactly the tensor's bytes into the stream when the file is
  /// written; lets callers generate large tensors without keeping them all.
  using Producer = std::function<llvm::Error(llvm::raw_ostream &)>;

  SafeTensorsWriter();
  ~SafeTensorsWriter();
  SafeTensorsWriter(SafeTensorsWriter &&);
  SafeTensorsWriter &operator=(SafeTensorsWriter &&);

  /// Adds a tensor, copying \p Bytes. Fails on a duplicate or reserved name,
  /// a negative dimension, or a byte count that does not match the shape.
  llvm::Error addTensor(llvm::StringRef Name, DType T,
                        llvm::ArrayRef<int64_t> Shape,
                        llvm::ArrayRef<uint8_t> Bytes);
  /// Same, taking ownership of \p Bytes without a copy.
  llvm::Error addTensor(llvm::StringRef Name, DType T,
                        llvm::ArrayRef<int64_t> Shape,
                        std::vector<uint8_t> &&Bytes);
  /// Same, with the bytes produced lazily at write time. The producer must
  /// write exactly product(Shape) * dtypeSize(T) bytes.
  llvm::Error addTensor(llvm::StringRef Name, DType T,
                        llvm::ArrayRef<int64_t> Shape, Producer Produce);

  llvm::Error addF32(llvm::StringRef Name, llvm::ArrayRef<int64_t> Shape,
                     llvm::ArrayRef<float> Values);
  /// Rounds to f16 / bf16 (nearest, ties to even).
  llvm::Error addF16(llvm::StringRef Name, llvm::ArrayRef<int64_t> Shape,
                     llvm::ArrayRef<float> Values);
  llvm::Error addBF16(llvm::StringRef Name, llvm::ArrayRef<int64_t> Shape,
                      llvm::ArrayRef<float> Values);
  /// Stores \p Values as \p T, which must be BF16, F16, F32 or F64.
  llvm::Error addFloats(llvm::StringRef Name, DType T,
                        llvm::ArrayRef<int64_t> Shape,
                        llvm::ArrayRef<float> Values);
  llvm::Error addI32(llvm::StringRef Name, llvm::ArrayRef<int64_t> Shape,
                     llvm::ArrayRef<int32_t> Values);

  /// Declares a tensor whose bytes come later, through a StreamingFile
  /// (openStreaming()); write() refuses a writer with declared tensors.
  llvm::Error declareTensor(llvm::StringRef Name, DType T,
                            llvm::ArrayRef<int64_t> Shape);

  void setMetadata(llvm::StringRef Key, llvm::StringRef Value);

  size_t size() const;
  bool contains(llvm::StringRef Name) const;

  /// The JSON header including its space padding (without the u64 prefix).
  std::string buildHeader() const;
  /// Writes the whole file to \p OS.
  llvm::Error write(llvm::raw_ostream &OS) const;
  /// Writes to a temporary file next to \p Path and renames it into place.
  llvm::Error writeAtomically(llvm::StringRef Path) const;

  /// A safetensors file written tensor by tensor as the tensors become
  /// ready, in any order and from any thread, with exactly the bytes
  /// write() gives: the header, and so every tensor's place, is fixed when
  /// the file is opened. Nothing is kept in memory but the header. Written
  /// atomically: the file is built as `<Path>.tmp-XXXXXX` and renamed into
  /// place by commit(); destroyed without it, the temporary is removed.
  class StreamingFile {
  public:
    ~StreamingFile();
    /// Writes the whole of a declared tensor, once; \p Bytes must have
    /// its size. Thread-safe.
    llvm::Error writeTensor(llvm::StringRef Name, llvm::ArrayRef<uint8_t> Bytes);
    /// Writes \p Bytes at byte \p Offset of a declared tensor: a producer
    /// streams a tensor in pieces (e.g. row blocks) without holding it.
    /// Pieces must not overlap; the tensor counts as written once they
    /// cover its size. Thread-safe.
    llvm::Error writeTensorPart(llvm::StringRef Name, uint64_t Offset,
                                llvm::ArrayRef<uint8_t> Bytes);
    /// Fails, naming one, if a declared tensor was not written; else moves
    /// the file into place.
    llvm::Error commit();
    /// Bytes of the whole file.
    uint64_t size() const { return FileSize; }

  private:
    friend class SafeTensorsWriter;
    struct Slot;
    StreamingFile();
    std::unique_ptr<AtomicOutputFile> File;
    std::vector<Slot> Slots;
    std::map<std::string, size_t> SlotOf;
    uint64_t FileSize = 0;
  };
  /// Opens \p Path for streaming: creates the temporary, writes the header
  /// and every tensor added with bytes or a producer, and reserves the
  /// places of the declared ones.
  llvm::Expected<std::unique_ptr<StreamingFile>>
  openStreaming(llvm::StringRef Path) const;

private:
  struct Entry;
  llvm::Error checkNewTensor(llvm::StringRef Name, DType T,
                             llvm::ArrayRef<int64_t> Shape,
                             uint64_t &NumBytes) const;
  std::vector<const Entry *> layoutOrder() const;

  std::map<std::string, std::unique_ptr<Entry>> Entries;
  std::map<std::string, std::string> Metadata;
};

} // namespace mlir::moeq::io

#endif // MOEQ_IO_SAFETENSORS_H
