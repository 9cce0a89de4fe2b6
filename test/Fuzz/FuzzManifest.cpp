//===- FuzzManifest.cpp - libFuzzer target: artifact manifests ------------===//
//
// The input is a manifest.json. The runtime's parser (moeq-run, the C API)
// and moeq-merge's reading of a partial artifact's description must accept
// it or fail with an error.
//
//===----------------------------------------------------------------------===//
#include "moeq/Artifact/Merge.h"
#include "moeq/Runtime/Plan.h"

#include "llvm/Support/Error.h"
#include "llvm/Support/JSON.h"

#include <cstdint>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  std::string text(reinterpret_cast<const char *>(data), size);
  moeq::runtime::Manifest manifest;
  (void)moeq::runtime::parseManifest(text, "/artifact/manifest.json", "/artifact", manifest);

  llvm::Expected<llvm::json::Value> value = llvm::json::parse(text);
  if (!value) {
    llvm::consumeError(value.takeError());
    return 0;
  }
  if (const llvm::json::Object *root = value->getAsObject())
    if (const llvm::json::Value *partial = root->get("partial")) {
      auto info = mlir::moeq::artifact::partialFromJSON(*partial);
      if (!info)
        llvm::consumeError(info.takeError());
    }
  return 0;
}
