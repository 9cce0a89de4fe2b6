//===- FuzzExport.cpp - libFuzzer target: moeq-export's artifact reading --===//
//
// The input is an artifact: hf/config.json, manifest.json,
// experts.safetensors and params.safetensors. exportArtifact must write the
// dequantized export or fail with an error. A manifest with a "files" object
// gets the true checksums of the files written (as moeq-compile would):
// otherwise every mutated file would stop at its checksum and the readers
// behind it would never be fuzzed (the checks themselves are unit-tested).
//
//===----------------------------------------------------------------------===//
#include "FuzzInputFiles.h"

#include "moeq/Artifact/Export.h"
#include "moeq/Artifact/FileDigests.h"

#include "llvm/Support/Error.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/raw_ostream.h"

#include <sys/stat.h>

using namespace mlir::moeq;

/// Replaces the manifest's "files" (when it has that object) by the
/// checksums of the files in `dir`.
static void sealManifest(const std::string &dir) {
  std::string path = dir + "/manifest.json";
  auto buffer = llvm::MemoryBuffer::getFile(path);
  if (!buffer)
    return;
  llvm::Expected<llvm::json::Value> value = llvm::json::parse((*buffer)->getBuffer());
  if (!value) {
    llvm::consumeError(value.takeError());
    return;
  }
  llvm::json::Object *root = value->getAsObject();
  if (!root || !root->getObject(artifact::kFilesKey))
    return;
  llvm::Expected<llvm::json::Object> files = artifact::describeFiles(dir);
  if (!files) {
    llvm::consumeError(files.takeError());
    return;
  }
  (*root)[artifact::kFilesKey] = std::move(*files);
  std::string text;
  llvm::raw_string_ostream(text) << llvm::json::Value(std::move(*root));
  moeq_fuzz::writeFile("manifest.json", text);
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  FuzzedDataProvider input(data, size);
  const std::string &dir = moeq_fuzz::scratchDirectory();
  // (The previous input's export is not part of this artifact.)
  llvm::sys::fs::remove_directories(dir + "/exported");
  mkdir((dir + "/hf").c_str(), 0755);
  moeq_fuzz::writeFile("hf/config.json", moeq_fuzz::nextText(input, 1 << 16));
  moeq_fuzz::writeFile("manifest.json", moeq_fuzz::nextText(input, 1 << 20));
  moeq_fuzz::writeFile("experts.safetensors", moeq_fuzz::nextText(input, 1 << 22));
  moeq_fuzz::writeFile("params.safetensors", moeq_fuzz::rest(input));
  sealManifest(dir);
  auto summary = artifact::exportArtifact(dir, artifact::ExportFormat::Dequantized,
                                          dir + "/exported");
  if (!summary)
    llvm::consumeError(summary.takeError());
  return 0;
}
