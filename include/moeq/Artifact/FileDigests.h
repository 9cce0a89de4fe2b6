//===- FileDigests.h - the manifest's list of files and digests -*- C++ -*-===//
//
// The compiler side of the artifact's checksums (moeq/Runtime/Checksum.h
// holds the digest itself and the check, shared with the runtime):
// moeq-compile and moeq-merge describe the files they wrote; moeq-export
// and moeq-merge check each file they read against the manifest.
//
//===----------------------------------------------------------------------===//

#ifndef MOEQ_ARTIFACT_FILEDIGESTS_H
#define MOEQ_ARTIFACT_FILEDIGESTS_H

#include "moeq/Runtime/Checksum.h"

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"
#include "llvm/Support/JSON.h"

namespace mlir::moeq::artifact {

/// The manifest key that lists the files.
inline constexpr llvm::StringLiteral kFilesKey = "files";

/// Whether a file of an artifact is listed in "files": all but the
/// manifest itself and the human-readable reports (which moeq_tune.py
/// extends).
bool isDigestedFile(llvm::StringRef relative);

/// "files" for the artifact being written in `directory`: every regular
/// file under it (relative paths, '/'-separated) but those
/// isDigestedFile() excludes, with its size and digest.
llvm::Expected<llvm::json::Object> describeFiles(llvm::StringRef directory);

/// Reads a manifest's "files"; an error names the bad entry.
llvm::Expected<::moeq::runtime::FileDigests> readFileDigests(const llvm::json::Object &manifest);

/// The artifact in `directory` holds exactly the files its manifest lists
/// (besides those isDigestedFile() excludes), each of the listed size and
/// digest. What moeq-export and moeq-merge check before reading anything.
llvm::Error checkFiles(llvm::StringRef directory, const llvm::json::Object &manifest);

} // namespace mlir::moeq::artifact

#endif // MOEQ_ARTIFACT_FILEDIGESTS_H
