//===- Checksum.h - digests of an artifact's files --------------*- C++ -*-===//
//
// manifest.json lists every file of the artifact it describes (weights,
// kernels, the model's Hugging Face files) with its size and XXH3-128
// digest (docs/manifest.md). Whatever reads a file of an artifact (the
// runtime, moeq-export, moeq-merge) checks it first, so a file truncated,
// altered or swapped after the compile is refused by name instead of
// producing wrong numbers. XXH3 detects corruption and mix-ups; it is not a
// signature (whoever can edit the files can edit the manifest). Reads run
// at memory speed (bench/checksum.py); `xxhsum -H2 FILE` prints the same
// digest.
//
//===----------------------------------------------------------------------===//
#ifndef MOEQ_RUNTIME_CHECKSUM_H
#define MOEQ_RUNTIME_CHECKSUM_H

#include "moeq/Runtime/Status.h"

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>

namespace moeq::runtime {

/// The name of the digest in the manifest ("xxh3_128").
inline constexpr const char *kDigestName = "xxh3_128";

struct FileDigest {
  uint64_t bytes = 0;
  std::string xxh3; ///< 32 lower-case hex digits, XXH3-128's canonical (big-endian) form
};

/// Digest of relative path -> its size and digest.
using FileDigests = std::map<std::string, FileDigest>;

/// XXH3-128 of `size` bytes, as 32 hex digits.
std::string digestBytes(const void *data, size_t size);

/// Size and digest of the file at `path`, read in chunks (never whole).
Status digestFile(const std::string &path, FileDigest &digest);

/// Whether `relative` is a plain relative path inside an artifact: not
/// empty, not absolute, no "." or ".." component, no backslash.
bool isArtifactRelativePath(const std::string &relative);

/// Checks `<directory>/<relative>` against its entry in `digests`: listed,
/// present, of the listed size and digest. Every message names the file
/// and says what to do.
Status checkFileDigest(const std::string &directory, const std::string &relative,
                       const FileDigests &digests);

} // namespace moeq::runtime

#endif // MOEQ_RUNTIME_CHECKSUM_H
