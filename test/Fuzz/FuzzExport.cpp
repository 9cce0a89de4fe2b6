//===- FuzzExport.cpp - libFuzzer target: moeq-export's artifact reading --===//
//
// The input is an artifact: hf/config.json, manifest.json,
// experts.safetensors and params.safetensors. exportArtifact must write the
// dequantized export or fail with an error.
//
//===----------------------------------------------------------------------===//
#include "FuzzInputFiles.h"

#include "moeq/Artifact/Export.h"

#include "llvm/Support/Error.h"

#include <sys/stat.h>

using namespace mlir::moeq;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  FuzzedDataProvider input(data, size);
  const std::string &dir = moeq_fuzz::scratchDirectory();
  mkdir((dir + "/hf").c_str(), 0755);
  moeq_fuzz::writeFile("hf/config.json", moeq_fuzz::nextText(input, 1 << 16));
  moeq_fuzz::writeFile("manifest.json", moeq_fuzz::nextText(input, 1 << 20));
  moeq_fuzz::writeFile("experts.safetensors", moeq_fuzz::nextText(input, 1 << 22));
  moeq_fuzz::writeFile("params.safetensors", moeq_fuzz::rest(input));
  auto summary = artifact::exportArtifact(dir, artifact::ExportFormat::Dequantized,
                                          dir + "/exported");
  if (!summary)
    llvm::consumeError(summary.takeError());
  return 0;
}
