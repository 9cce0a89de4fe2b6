//===- FuzzSafeTensors.cpp - libFuzzer target: safetensors readers --------===//
//
// The input is a whole safetensors file. Both readers (the compiler's
// io::SafeTensorsFile and the runtime's) must accept it or fail with an
// error; what the compiler's accepts is read back and decoded to float as
// the importers do.
//
//===----------------------------------------------------------------------===//
#include "moeq/IO/SafeTensors.h"
#include "moeq/Runtime/SafeTensors.h"

#include "llvm/Support/Error.h"

#include <cstdint>
#include <vector>

using namespace mlir::moeq;

namespace {
/// Decodes at most this many bytes per tensor: enough to reach every
/// dtype's code, small enough to keep executions fast.
constexpr uint64_t kDecodeBytes = 4096;

void readCompilerSide(const uint8_t *data, size_t size) {
  auto file = io::SafeTensorsFile::parse(llvm::ArrayRef<uint8_t>(data, size), "fuzz.safetensors");
  if (!file) {
    llvm::consumeError(file.takeError());
    return;
  }
  for (const io::TensorInfo &info : (*file)->tensors()) {
    if ((*file)->find(info.name) != &info)
      __builtin_trap(); // find() must return the entry itself
    llvm::ArrayRef<uint8_t> bytes = (*file)->data(info);
    if (bytes.size() != info.numBytes())
      __builtin_trap();
    uint64_t element = io::dtypeSize(info.dtype);
    uint64_t take = std::min<uint64_t>(bytes.size(), kDecodeBytes);
    if (element)
      take -= take % element;
    auto values = io::decodeToFloat(info.dtype, bytes.take_front(take), info.name);
    if (!values)
      llvm::consumeError(values.takeError());
    std::vector<uint8_t> partial(std::min<uint64_t>(info.numBytes(), 64));
    if (llvm::Error err = (*file)->readBytes(info, 0, partial))
      llvm::consumeError(std::move(err));
  }
}

void readRuntimeSide(const uint8_t *data, size_t size) {
  std::unique_ptr<moeq::runtime::SafeTensorsFile> file;
  moeq::runtime::Status status = moeq::runtime::SafeTensorsFile::parse(
      std::vector<uint8_t>(data, data + size), "fuzz.safetensors", file);
  (void)status;
}
} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  readCompilerSide(data, size);
  readRuntimeSide(data, size);
  return 0;
}
