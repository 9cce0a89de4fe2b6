//===- Checksum.cpp - digests of an artifact's files ----------------------===//
#include "moeq/Runtime/Checksum.h"
#include "moeq/Runtime/Plan.h"

// Header-only use of libxxhash (Debian's libxxhash-dev): nothing to link, and
// the header alone can be carried to a machine without the package.
#define XXH_INLINE_ALL
#include <xxhash.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <vector>

using namespace moeq::runtime;

namespace {

std::string hexOf(XXH128_hash_t hash) {
  XXH128_canonical_t canonical;
  XXH128_canonicalFromHash(&canonical, hash);
  static const char digits[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(2 * sizeof(canonical.digest));
  for (unsigned char byte : canonical.digest) {
    hex.push_back(digits[byte >> 4]);
    hex.push_back(digits[byte & 15]);
  }
  return hex;
}

struct StateDeleter {
  void operator()(XXH3_state_t *state) const { XXH3_freeState(state); }
};

struct FileCloser {
  void operator()(FILE *file) const { std::fclose(file); }
};

} // namespace

std::string moeq::runtime::digestBytes(const void *data, size_t size) {
  return hexOf(XXH3_128bits(data, size));
}

Status moeq::runtime::digestFile(const std::string &path, FileDigest &digest) {
  std::unique_ptr<FILE, FileCloser> file(std::fopen(path.c_str(), "rb"));
  if (!file)
    return Status::error("cannot read " + path + ": " + std::strerror(errno));
  std::unique_ptr<XXH3_state_t, StateDeleter> state(XXH3_createState());
  if (!state || XXH3_128bits_reset(state.get()) == XXH_ERROR)
    return Status::error("cannot hash " + path + ": out of memory");
  // 4 MiB at a time: large enough to run at memory speed, small enough to
  // hash a file of any size.
  std::vector<unsigned char> chunk(size_t(4) << 20);
  uint64_t bytes = 0;
  for (;;) {
    size_t read = std::fread(chunk.data(), 1, chunk.size(), file.get());
    if (read > 0) {
      XXH3_128bits_update(state.get(), chunk.data(), read);
      bytes += read;
    }
    if (read < chunk.size())
      break;
  }
  if (std::ferror(file.get()))
    return Status::error("read error in " + path);
  digest.bytes = bytes;
  digest.xxh3 = hexOf(XXH3_128bits_digest(state.get()));
  return Status();
}

bool moeq::runtime::isArtifactRelativePath(const std::string &relative) {
  if (relative.empty() || relative[0] == '/' || relative.find('\\') != std::string::npos)
    return false;
  size_t start = 0;
  while (start <= relative.size()) {
    size_t end = relative.find('/', start);
    if (end == std::string::npos)
      end = relative.size();
    std::string component = relative.substr(start, end - start);
    if (component.empty() || component == "." || component == "..")
      return false;
    start = end + 1;
  }
  return true;
}

Status moeq::runtime::checkFileDigest(const std::string &directory, const std::string &relative,
                                      const FileDigests &digests) {
  std::string path = joinPath(directory, relative);
  auto listed = digests.find(relative);
  if (listed == digests.end())
    return Status::error(path + " is not listed in the manifest's \"files\" (an artifact "
                                "lists every file it uses with its checksum)");
  FileDigest found;
  if (Status status = digestFile(path, found); !status.ok())
    return Status::error("missing or unreadable file " + path + " (the manifest lists it): " +
                         status.message());
  const FileDigest &expected = listed->second;
  if (found.bytes != expected.bytes)
    return Status::error(path + " has " + std::to_string(found.bytes) +
                         " bytes, the manifest says " + std::to_string(expected.bytes) +
                         ": the file was truncated or replaced after the compile (copy or "
                         "compile the artifact again)");
  if (found.xxh3 != expected.xxh3)
    return Status::error(path + " does not match its checksum (" + kDigestName + " " +
                         found.xxh3 + ", the manifest says " + expected.xxh3 +
                         "): the file was altered or corrupted after the compile (copy or "
                         "compile the artifact again)");
  return Status();
}
