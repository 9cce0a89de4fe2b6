//===- HFFiles.h - the Hugging Face files an artifact keeps -----*- C++ -*-===//
//
// An artifact keeps the model's Hugging Face configuration and tokenizer
// files in `hf/`, so that exports (moeq-export) and evaluation need the
// artifact alone, not the checkpoint it was compiled from.
//
//===----------------------------------------------------------------------===//

#ifndef MOEQ_ARTIFACT_HFFILES_H
#define MOEQ_ARTIFACT_HFFILES_H

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <string>
#include <vector>

namespace mlir::moeq::artifact {

/// The artifact's directory of Hugging Face files.
inline constexpr llvm::StringLiteral kHFDirectory = "hf";

/// The files kept when the checkpoint has them: config.json (required),
/// generation_config.json, the tokenizer's files and chat templates.
llvm::ArrayRef<llvm::StringLiteral> hfFileNames();

/// Copies the hfFileNames() that `modelDir` holds into `<artifactDir>/hf/`
/// and returns their names; an error names the file that failed (a
/// missing config.json included).
llvm::Expected<std::vector<std::string>> copyHFFiles(llvm::StringRef modelDir,
                                                     llvm::StringRef artifactDir);

} // namespace mlir::moeq::artifact

#endif // MOEQ_ARTIFACT_HFFILES_H
