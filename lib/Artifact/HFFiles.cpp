//===- HFFiles.cpp - the Hugging Face files an artifact keeps -------------===//

#include "moeq/Artifact/HFFiles.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"

using namespace mlir::moeq;
using llvm::StringRef;

llvm::ArrayRef<llvm::StringLiteral> artifact::hfFileNames() {
  // What transformers' AutoConfig, AutoTokenizer and GenerationConfig read
  // (tokenizers of the sentencepiece, BPE and WordPiece kinds), and chat
  // templates; no Python code (trust_remote_code models are not run).
  static constexpr llvm::StringLiteral names[] = {
      "config.json",          "generation_config.json", "tokenizer.json",
      "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
      "tokenizer.model",      "vocab.json",             "vocab.txt",
      "merges.txt",           "chat_template.jinja",    "chat_template.json"};
  return names;
}

llvm::Expected<std::vector<std::string>> artifact::copyHFFiles(StringRef modelDir,
                                                               StringRef artifactDir) {
  llvm::SmallString<256> target(artifactDir);
  llvm::sys::path::append(target, kHFDirectory);
  if (std::error_code ec = llvm::sys::fs::create_directories(target))
    return llvm::createStringError("cannot create '" + target + "': " + ec.message());
  std::vector<std::string> copied;
  for (StringRef name : hfFileNames()) {
    llvm::SmallString<256> from(modelDir), to(target);
    llvm::sys::path::append(from, name);
    llvm::sys::path::append(to, name);
    if (!llvm::sys::fs::is_regular_file(from)) {
      if (name == "config.json")
        return llvm::createStringError("'" + from + "' is missing");
      continue;
    }
    if (std::error_code ec = llvm::sys::fs::copy_file(from, to))
      return llvm::createStringError("cannot copy '" + from + "': " + ec.message());
    copied.push_back(name.str());
  }
  return copied;
}
