//===- FileDigests.cpp - the manifest's list of files and digests ---------===//

#include "moeq/Artifact/FileDigests.h"

#include "llvm/ADT/SmallString.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"

#include <algorithm>
#include <vector>

using namespace mlir::moeq;
namespace json = llvm::json;
using ::moeq::runtime::FileDigest;
using ::moeq::runtime::FileDigests;
using llvm::StringRef;

bool artifact::isDigestedFile(StringRef relative) {
  return !llvm::is_contained({"manifest.json", "report.txt", "report.html"}, relative);
}

namespace {

/// The digested files under `directory`, sorted.
llvm::Expected<std::vector<std::string>> listFiles(StringRef directory) {
  std::vector<std::string> relatives;
  std::error_code ec;
  for (llvm::sys::fs::recursive_directory_iterator it(directory, ec), end; it != end && !ec;
       it.increment(ec)) {
    llvm::ErrorOr<llvm::sys::fs::basic_file_status> status = it->status();
    if (!status)
      return llvm::createStringError("cannot stat '" + it->path() +
                                     "': " + status.getError().message());
    if (status->type() != llvm::sys::fs::file_type::regular_file)
      continue;
    StringRef relative = StringRef(it->path()).drop_front(directory.size()).ltrim('/');
    std::string name = llvm::sys::path::convert_to_slash(relative);
    if (artifact::isDigestedFile(name))
      relatives.push_back(std::move(name));
  }
  if (ec)
    return llvm::createStringError("cannot list '" + directory + "': " + ec.message());
  std::sort(relatives.begin(), relatives.end());
  return relatives;
}

} // namespace

llvm::Expected<json::Object> artifact::describeFiles(StringRef directory) {
  llvm::Expected<std::vector<std::string>> relatives = listFiles(directory);
  if (!relatives)
    return relatives.takeError();
  json::Object files;
  for (const std::string &relative : *relatives) {
    llvm::SmallString<256> path(directory);
    llvm::sys::path::append(path, relative);
    FileDigest digest;
    ::moeq::runtime::Status status = ::moeq::runtime::digestFile(path.str().str(), digest);
    if (!status.ok())
      return llvm::createStringError(status.message());
    files[relative] = json::Object{{"bytes", int64_t(digest.bytes)},
                                   {::moeq::runtime::kDigestName, digest.xxh3}};
  }
  return files;
}

llvm::Expected<FileDigests> artifact::readFileDigests(const json::Object &manifest) {
  const json::Object *files = manifest.getObject(kFilesKey);
  if (!files)
    return llvm::createStringError("manifest.json has no \"files\" (the list of the artifact's "
                                   "files and their checksums)");
  FileDigests digests;
  for (const auto &[key, value] : *files) {
    std::string relative = key.str();
    const json::Object *entry = value.getAsObject();
    std::optional<int64_t> bytes = entry ? entry->getInteger("bytes") : std::nullopt;
    std::optional<StringRef> hex =
        entry ? entry->getString(::moeq::runtime::kDigestName) : std::nullopt;
    if (!::moeq::runtime::isArtifactRelativePath(relative) || !bytes || *bytes < 0 || !hex ||
        hex->size() != 32 || hex->find_first_not_of("0123456789abcdef") != StringRef::npos)
      return llvm::createStringError("manifest.json: files[\"" + relative +
                                     "\"] is not a path inside the artifact with \"bytes\" and "
                                     "\"" + ::moeq::runtime::kDigestName +
                                     "\" (32 hex digits)");
    digests[relative] = FileDigest{uint64_t(*bytes), hex->str()};
  }
  return digests;
}

llvm::Error artifact::checkFiles(StringRef directory, const json::Object &manifest) {
  llvm::Expected<FileDigests> digests = readFileDigests(manifest);
  if (!digests)
    return digests.takeError();
  llvm::Expected<std::vector<std::string>> present = listFiles(directory);
  if (!present)
    return present.takeError();
  for (const std::string &relative : *present)
    if (!digests->count(relative))
      return llvm::createStringError("'" + relative + "' in '" + directory +
                                     "' is not listed in the manifest's \"files\": it was "
                                     "added after the compile (remove it, or compile again)");
  for (const auto &entry : *digests) {
    ::moeq::runtime::Status status =
        ::moeq::runtime::checkFileDigest(directory.str(), entry.first, *digests);
    if (!status.ok())
      return llvm::createStringError(status.message());
  }
  return llvm::Error::success();
}
