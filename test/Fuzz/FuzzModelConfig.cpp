//===- FuzzModelConfig.cpp - libFuzzer target: config.json ----------------===//
//
// The input is a config.json. parseModelConfig must accept it (a model
// family moeq compiles, every dimension usable) or fail with an error.
//
//===----------------------------------------------------------------------===//
#include "moeq/IO/ModelConfig.h"

#include "llvm/Support/Error.h"

#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  llvm::StringRef text(reinterpret_cast<const char *>(data), size);
  auto config = mlir::moeq::io::parseModelConfig(text, "config.json");
  if (!config)
    llvm::consumeError(config.takeError());
  return 0;
}
