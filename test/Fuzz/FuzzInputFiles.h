//===- FuzzInputFiles.h - one fuzz input as the files of a directory ------===//
//
// The readers of checkpoints and statistics take directories. A fuzz input
// is split into files (FuzzedDataProvider: a length-prefixed text, then the
// rest) written into one scratch directory per process, replaced by every
// input; the directory is in /dev/shm when it exists, so this costs no disk.
//
//===----------------------------------------------------------------------===//
#ifndef MOEQ_TEST_FUZZ_FUZZINPUTFILES_H
#define MOEQ_TEST_FUZZ_FUZZINPUTFILES_H

#include <fuzzer/FuzzedDataProvider.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <unistd.h>

namespace moeq_fuzz {

/// The scratch directory, created on first use.
inline const std::string &scratchDirectory() {
  static const std::string dir = [] {
    std::string pattern =
        (access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp") + std::string("/moeq-fuzz-XXXXXX");
    if (!mkdtemp(pattern.data()))
      abort();
    return pattern;
  }();
  return dir;
}

/// Writes `bytes` as `name` in the scratch directory; returns its path.
inline std::string writeFile(const std::string &name, const std::string &bytes) {
  std::string path = scratchDirectory() + "/" + name;
  FILE *file = fopen(path.c_str(), "wb");
  if (!file)
    abort();
  if (!bytes.empty() && fwrite(bytes.data(), 1, bytes.size(), file) != bytes.size())
    abort();
  fclose(file);
  return path;
}

/// The next part of the input: a text of at most `maxLength` bytes, then
/// (last) everything that is left.
inline std::string nextText(FuzzedDataProvider &input, size_t maxLength) {
  return input.ConsumeRandomLengthString(maxLength);
}
inline std::string rest(FuzzedDataProvider &input) {
  return input.ConsumeRemainingBytesAsString();
}

} // namespace moeq_fuzz

#endif // MOEQ_TEST_FUZZ_FUZZINPUTFILES_H
