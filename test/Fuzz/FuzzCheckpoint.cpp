//===- FuzzCheckpoint.cpp - libFuzzer target: sharded checkpoints ---------===//
//
// The input is a shard index (model.safetensors.index.json) and one shard
// (model-00001-of-00001.safetensors). Checkpoint::open must accept them or
// fail with an error; every tensor of an accepted checkpoint is read as the
// importer reads it (float, FP8 block scales and MXFP4 included).
//
//===----------------------------------------------------------------------===//
#include "FuzzInputFiles.h"

#include "moeq/IO/Checkpoint.h"

#include "llvm/Support/Error.h"

using namespace mlir::moeq;

namespace {
template <typename T> void drop(llvm::Expected<T> value) {
  if (!value)
    llvm::consumeError(value.takeError());
}
} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  FuzzedDataProvider input(data, size);
  moeq_fuzz::writeFile(io::Checkpoint::IndexFileName.str(), moeq_fuzz::nextText(input, 4096));
  moeq_fuzz::writeFile("model-00001-of-00001.safetensors", moeq_fuzz::rest(input));
  auto checkpoint = io::Checkpoint::open(moeq_fuzz::scratchDirectory());
  if (!checkpoint) {
    llvm::consumeError(checkpoint.takeError());
    return 0;
  }
  for (llvm::StringRef name : (*checkpoint)->tensorNames()) {
    const io::TensorInfo *info = (*checkpoint)->find(name);
    if (!info)
      __builtin_trap(); // a listed tensor must be found
    if (info->numBytes() > (1u << 20))
      continue; // reading is bounded by the file; keep executions fast
    drop((*checkpoint)->readDequantized(name));
    if (name.consume_back("_blocks")) {
      auto shape = (*checkpoint)->mxfp4Shape(name);
      if (!shape)
        llvm::consumeError(shape.takeError());
      else if (*shape)
        drop((*checkpoint)->readMXFP4(name));
    }
  }
  return 0;
}
