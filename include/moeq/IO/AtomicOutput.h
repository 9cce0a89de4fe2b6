//===- AtomicOutput.h - all-or-nothing file and directory output -*- C++
//-*-===//
//
// Outputs are built under a temporary name next to their final location and
// renamed into place only once complete, so an interrupted or failed run
// never leaves a truncated file or a half-written artifact directory where a
// consumer would pick it up. Siblings (not the system temp dir) are used
// because rename() is only atomic within one file system. A temporary
// names its host and process: one left by a killed process (SIGKILL, an
// out-of-memory abort) is removed by the next output to the same path from
// this host, once that process is gone.
//
//===----------------------------------------------------------------------===//

#ifndef MOEQ_IO_ATOMICOUTPUT_H
#define MOEQ_IO_ATOMICOUTPUT_H

#include "llvm/ADT/STLFunctionalExtras.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/ADT/Twine.h"
#include "llvm/Support/Error.h"

#include "llvm/ADT/ArrayRef.h"

#include <cstdint>
#include <memory>
#include <string>

namespace llvm {
class raw_ostream;
} // namespace llvm

namespace mlir::moeq::io {

/// Calls \p Write on a stream to `<Path>.tmp-<host>-<pid>-XXXXXX` and, if it succeeds and
/// every byte reached the file, renames the temporary over \p Path. On any
/// failure the temporary is removed and \p Path is left untouched.
llvm::Error
writeFileAtomically(llvm::StringRef Path,
                    llvm::function_ref<llvm::Error(llvm::raw_ostream &)> Write);

/// Convenience overload for in-memory contents.
llvm::Error writeFileAtomically(llvm::StringRef Path, llvm::StringRef Contents);

/// A file built as `<Path>.tmp-<host>-<pid>-XXXXXX` by positioned writes, in any order
/// and from any thread, and renamed over \p Path by commit(). Destroyed
/// (or the process interrupted) without a successful commit(), the
/// temporary is removed and \p Path is left untouched. Lets a producer
/// stream a large file whose layout is known up front without holding it.
class AtomicOutputFile {
public:
  static llvm::Expected<std::unique_ptr<AtomicOutputFile>> create(llvm::StringRef Path);
  ~AtomicOutputFile();
  AtomicOutputFile(const AtomicOutputFile &) = delete;
  AtomicOutputFile &operator=(const AtomicOutputFile &) = delete;

  /// Writes \p Bytes at \p Offset (pwrite, until every byte is written).
  /// Thread-safe; writes to disjoint ranges may run concurrently.
  llvm::Error writeAt(uint64_t Offset, llvm::ArrayRef<uint8_t> Bytes);
  /// Sets the file's size; bytes never written read as zeros. A size the
  /// file system has no room for is refused (ENOSPC) before any is written.
  llvm::Error resize(uint64_t Size);
  /// Closes the file and renames it over the final path.
  llvm::Error commit();
  /// Removes the temporary now (also done by the destructor).
  void discard();

  llvm::StringRef path() const { return FinalPath; }
  llvm::StringRef tempPath() const { return TempPath; }

private:
  AtomicOutputFile(std::string FinalPath, std::string TempPath, int FD)
      : FinalPath(std::move(FinalPath)), TempPath(std::move(TempPath)), FD(FD) {}
  std::string FinalPath, TempPath;
  int FD = -1;
  bool Committed = false;
};

/// Fails (naming the directory and the entry) if \p Dir exists and holds an
/// entry for which \p BelongsToOutput(name, isDirectory) is false, or is not
/// a directory. Guards against a mistyped output path replacing user data.
/// \p Kind names the output in the message ("a moeq artifact").
llvm::Error checkReplaceableDirectory(
    llvm::StringRef Dir,
    llvm::function_ref<bool(llvm::StringRef Name, bool IsDirectory)> BelongsToOutput,
    llvm::StringRef Kind);

/// A directory built as `<FinalPath>.tmp-<host>-<pid>-XXXXXX` and moved to \p FinalPath by
/// commit(). If it is destroyed without a successful commit() the temporary
/// directory and everything in it is deleted.
class AtomicOutputDirectory {
public:
  /// Creates the temporary sibling (and missing parents of \p FinalPath).
  /// Fails if \p FinalPath exists and is not a directory.
  static llvm::Expected<AtomicOutputDirectory>
  create(llvm::StringRef FinalPath);

  AtomicOutputDirectory(AtomicOutputDirectory &&Other);
  AtomicOutputDirectory &operator=(AtomicOutputDirectory &&Other);
  AtomicOutputDirectory(const AtomicOutputDirectory &) = delete;
  AtomicOutputDirectory &operator=(const AtomicOutputDirectory &) = delete;
  ~AtomicOutputDirectory();

  /// The temporary directory to write into.
  llvm::StringRef path() const { return TempPath; }
  llvm::StringRef finalPath() const { return FinalPath; }
  /// `path()/Name`.
  std::string pathFor(const llvm::Twine &Name) const;
  bool isCommitted() const { return Committed; }

  /// Moves the temporary directory to the final path, replacing a previous
  /// directory there. POSIX cannot atomically replace a non-empty directory,
  /// so an old one is first renamed aside and deleted afterwards; readers
  /// may briefly see no directory, but never a mixed or partial one.
  llvm::Error commit();
  /// Deletes the temporary directory now (also done by the destructor).
  void discard();

private:
  AtomicOutputDirectory(std::string FinalPath, std::string TempPath)
      : FinalPath(std::move(FinalPath)), TempPath(std::move(TempPath)) {}

  std::string FinalPath;
  std::string TempPath;
  bool Committed = false;
};

} // namespace mlir::moeq::io

#endif // MOEQ_IO_ATOMICOUTPUT_H
