//===- AtomicOutput.cpp - all-or-nothing file and directory output --------===//

#include "moeq/IO/AtomicOutput.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Signals.h"
#include "llvm/Support/raw_ostream.h"
#include "moeq/Runtime/MemoryLimit.h"

#include <cerrno>
#include <csignal>
#include <cstring>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

using namespace llvm;
using namespace mlir::moeq::io;

static Error ioError(const Twine &Path, std::error_code EC, const Twine &What) {
  return createStringError(EC, "%s: %s: %s", Path.str().c_str(),
                           What.str().c_str(), EC.message().c_str());
}

/// `<Path>.tmp-<host>-<pid>-`: the prefix of this process's temporaries
/// of \p Path. The host and process name the owner, so that a later run
/// can remove what a killed one left (removeStaleTemporaries).
static std::string temporaryPrefix(StringRef Path, int Pid = ::getpid()) {
  char Host[256] = "localhost";
  if (::gethostname(Host, sizeof(Host) - 1) != 0)
    std::strcpy(Host, "localhost");
  Host[sizeof(Host) - 1] = '\0';
  return (Path + ".tmp-" + Host + "-" + Twine(Pid) + "-").str();
}

/// Whether process \p Pid of this host has ended: it does not exist, or it
/// is a zombie (killed, its threads still being torn down or its parent yet
/// to reap it).
static bool processHasEnded(int Pid) {
  if (::kill(Pid, 0) != 0)
    return errno == ESRCH;
  auto Stat = MemoryBuffer::getFileAsStream("/proc/" + Twine(Pid) + "/stat");
  if (!Stat)
    return false;
  // "<pid> (<command>) <state> ...": the command may hold spaces and ')'.
  StringRef Text = (*Stat)->getBuffer();
  size_t Close = Text.rfind(')');
  if (Close == StringRef::npos || Close + 2 >= Text.size())
    return false;
  char State = Text[Close + 2];
  return State == 'Z' || State == 'X';
}

/// Removes the temporaries of \p Path that processes of this host left
/// when they were killed (SIGKILL runs no handler; an out-of-memory abort
/// none either): those whose process no longer exists. Others' (another
/// host on a shared file system, or a process still running) stay.
static void removeStaleTemporaries(StringRef Path) {
  StringRef Parent = sys::path::parent_path(Path);
  std::string Mine = temporaryPrefix(sys::path::filename(Path), 0);
  // "<name>.tmp-<host>-": what follows is "<pid>-XXXXXX".
  StringRef HostPrefix = StringRef(Mine).drop_back(2);
  std::error_code EC;
  for (sys::fs::directory_iterator It(Parent.empty() ? "." : Parent, EC), End; It != End && !EC;
       It.increment(EC)) {
    StringRef Name = sys::path::filename(It->path());
    if (!Name.consume_front(HostPrefix))
      continue;
    int Pid = 0;
    if (Name.consumeInteger(10, Pid) || !Name.consume_front("-") || Name.size() != 6 ||
        Pid <= 0)
      continue;
    if (!processHasEnded(Pid))
      continue; // still running (or not ours to know)
    (void)sys::fs::remove_directories(It->path(), /*IgnoreErrors=*/true);
    (void)sys::fs::remove(It->path());
  }
}

/// Creates `<Path>.tmp-<host>-<pid>-XXXXXX`, removed if the process is
/// interrupted or crashes before it is renamed into place.
static Error createTemporarySibling(StringRef Path, int &FD, SmallString<256> &TempPath) {
  removeStaleTemporaries(Path);
  if (std::error_code EC =
          sys::fs::createUniqueFile(temporaryPrefix(Path) + "%%%%%%", FD, TempPath))
    return ioError(Path, EC, "cannot create temporary file");
  sys::RemoveFileOnSignal(TempPath);
  return Error::success();
}

Error mlir::moeq::io::writeFileAtomically(StringRef Path,
                                    function_ref<Error(raw_ostream &)> Write) {
  int FD;
  SmallString<256> TempPath;
  if (Error E = createTemporarySibling(Path, FD, TempPath))
    return E;
  auto Cleanup = [&] {
    sys::fs::remove(TempPath);
    sys::DontRemoveFileOnSignal(TempPath);
  };

  raw_fd_ostream OS(FD, /*shouldClose=*/true);
  if (Error E = Write(OS)) {
    OS.close();
    OS.clear_error();
    Cleanup();
    return E;
  }
  OS.close();
  if (std::error_code EC = OS.error()) {
    // Clear it, otherwise raw_fd_ostream's destructor aborts the process.
    OS.clear_error();
    Cleanup();
    return ioError(TempPath, EC, "write failed");
  }
  if (std::error_code EC = sys::fs::rename(TempPath, Path)) {
    Cleanup();
    return ioError(Path, EC, "cannot rename temporary file into place");
  }
  sys::DontRemoveFileOnSignal(TempPath);
  return Error::success();
}

Expected<std::unique_ptr<AtomicOutputFile>> AtomicOutputFile::create(StringRef Path) {
  int FD;
  SmallString<256> TempPath;
  if (Error E = createTemporarySibling(Path, FD, TempPath))
    return std::move(E);
  return std::unique_ptr<AtomicOutputFile>(
      new AtomicOutputFile(Path.str(), std::string(TempPath), FD));
}

AtomicOutputFile::~AtomicOutputFile() { discard(); }

Error AtomicOutputFile::writeAt(uint64_t Offset, ArrayRef<uint8_t> Bytes) {
  if (FD < 0)
    return createStringError(std::errc::bad_file_descriptor, "%s: file is closed",
                             TempPath.c_str());
  const uint8_t *Data = Bytes.data();
  size_t Left = Bytes.size();
  while (Left) {
    ssize_t Written = ::pwrite(FD, Data, std::min<size_t>(Left, size_t(1) << 30), off_t(Offset));
    if (Written < 0) {
      if (errno == EINTR)
        continue;
      return ioError(TempPath, std::error_code(errno, std::generic_category()),
                     "write failed");
    }
    Data += Written;
    Offset += uint64_t(Written);
    Left -= size_t(Written);
  }
  return Error::success();
}

/// Bytes the file system holding `FD` can still give to this file: its free
/// blocks plus those the file holds already.
static uint64_t bytesAvailableTo(int FD) {
  struct statvfs FileSystem;
  struct stat File;
  if (::fstatvfs(FD, &FileSystem) != 0 || ::fstat(FD, &File) != 0)
    return UINT64_MAX; // (unknown: the writes will tell)
  return uint64_t(FileSystem.f_bavail) * uint64_t(FileSystem.f_frsize) +
         uint64_t(File.st_blocks) * 512;
}

Error AtomicOutputFile::resize(uint64_t Size) {
  // ftruncate makes a sparse file: without this check a file that cannot
  // fit would be found out only when the disk fills, after the work of
  // writing it (minutes for a large model's packed weights).
  uint64_t Available = FD < 0 ? UINT64_MAX : bytesAvailableTo(FD);
  if (Size > Available)
    return createStringError(std::errc::no_space_on_device,
                             "%s: needs %s, more than the %s free on its file system",
                             FinalPath.c_str(), ::moeq::formatBytes(Size).c_str(),
                             ::moeq::formatBytes(Available).c_str());
  if (FD < 0 || ::ftruncate(FD, off_t(Size)) != 0)
    return ioError(TempPath, std::error_code(FD < 0 ? EBADF : errno, std::generic_category()),
                   "cannot set the file size");
  return Error::success();
}

Error AtomicOutputFile::commit() {
  if (Committed || FD < 0)
    return createStringError(std::errc::invalid_argument,
                             "%s: output file already committed or discarded",
                             FinalPath.c_str());
  int Closed = ::close(FD);
  FD = -1;
  if (Closed != 0) {
    Error E = ioError(TempPath, std::error_code(errno, std::generic_category()), "write failed");
    discard();
    return E;
  }
  if (std::error_code EC = sys::fs::rename(TempPath, FinalPath)) {
    discard();
    return ioError(FinalPath, EC, "cannot rename temporary file into place");
  }
  sys::DontRemoveFileOnSignal(TempPath);
  Committed = true;
  return Error::success();
}

void AtomicOutputFile::discard() {
  if (FD >= 0) {
    ::close(FD);
    FD = -1;
  }
  if (Committed || TempPath.empty())
    return;
  sys::fs::remove(TempPath);
  sys::DontRemoveFileOnSignal(TempPath);
  TempPath.clear();
}

Error mlir::moeq::io::writeFileAtomically(StringRef Path, StringRef Contents) {
  return writeFileAtomically(Path, [&](raw_ostream &OS) {
    OS << Contents;
    return Error::success();
  });
}

//===----------------------------------------------------------------------===//
// AtomicOutputDirectory
//===----------------------------------------------------------------------===//

/// Creates a fresh directory named after \p Model ('%' -> random hex digit),
/// retrying on collisions, like createUniqueFile does for files.
static Error createUniqueSibling(StringRef Model, std::string &Result) {
  for (int Attempt = 0; Attempt < 128; ++Attempt) {
    SmallString<256> Candidate;
    sys::fs::createUniquePath(Model, Candidate, /*MakeAbsolute=*/false);
    std::error_code EC =
        sys::fs::create_directory(Candidate, /*IgnoreExisting=*/false);
    if (!EC) {
      Result = std::string(Candidate);
      return Error::success();
    }
    if (EC != std::errc::file_exists)
      return ioError(Candidate, EC, "cannot create directory");
  }
  return createStringError(std::errc::file_exists,
                           "%s: cannot find an unused temporary name",
                           Model.str().c_str());
}

Expected<AtomicOutputDirectory>
AtomicOutputDirectory::create(StringRef FinalPath) {
  SmallString<256> Final(FinalPath);
  // "out/" would otherwise yield the temporary "out/.tmp-XXXX" inside it.
  while (Final.size() > 1 && sys::path::is_separator(Final.back()))
    Final.pop_back();
  if (Final.empty())
    return createStringError(std::errc::invalid_argument,
                             "empty output directory path");

  sys::fs::file_status Status;
  if (!sys::fs::status(Final, Status) && sys::fs::exists(Status) &&
      !sys::fs::is_directory(Status))
    return createStringError(std::errc::not_a_directory,
                             "%s: exists and is not a directory",
                             Final.c_str());

  StringRef Parent = sys::path::parent_path(Final);
  if (!Parent.empty())
    if (std::error_code EC = sys::fs::create_directories(Parent))
      return ioError(Parent, EC, "cannot create parent directory");

  removeStaleTemporaries(Final);
  std::string Temp;
  if (Error E = createUniqueSibling(temporaryPrefix(Final) + "%%%%%%", Temp))
    return std::move(E);
  return AtomicOutputDirectory(std::string(Final), std::move(Temp));
}

AtomicOutputDirectory::AtomicOutputDirectory(AtomicOutputDirectory &&Other)
    : FinalPath(std::move(Other.FinalPath)),
      TempPath(std::move(Other.TempPath)), Committed(Other.Committed) {
  // The moved-from object must not delete what it no longer owns.
  Other.TempPath.clear();
  Other.Committed = true;
}

AtomicOutputDirectory &
AtomicOutputDirectory::operator=(AtomicOutputDirectory &&Other) {
  if (this != &Other) {
    discard();
    FinalPath = std::move(Other.FinalPath);
    TempPath = std::move(Other.TempPath);
    Committed = Other.Committed;
    Other.TempPath.clear();
    Other.Committed = true;
  }
  return *this;
}

AtomicOutputDirectory::~AtomicOutputDirectory() { discard(); }

std::string AtomicOutputDirectory::pathFor(const Twine &Name) const {
  SmallString<256> P(TempPath);
  sys::path::append(P, Name);
  return std::string(P);
}

void AtomicOutputDirectory::discard() {
  if (Committed || TempPath.empty())
    return;
  sys::fs::remove_directories(TempPath, /*IgnoreErrors=*/true);
  TempPath.clear();
}

Error AtomicOutputDirectory::commit() {
  if (Committed)
    return createStringError(std::errc::invalid_argument,
                             "%s: output directory already committed",
                             FinalPath.c_str());
  if (TempPath.empty())
    return createStringError(std::errc::invalid_argument,
                             "%s: output directory was discarded",
                             FinalPath.c_str());

  // Move an existing output aside first: rename() cannot replace a
  // non-empty directory.
  std::string Old;
  sys::fs::file_status Status;
  if (!sys::fs::status(FinalPath, Status) && sys::fs::exists(Status)) {
    if (!sys::fs::is_directory(Status))
      return createStringError(std::errc::not_a_directory,
                               "%s: exists and is not a directory",
                               FinalPath.c_str());
    // Reserve a unique name by creating it, then rename over the empty
    // placeholder (allowed for directories).
    if (Error E = createUniqueSibling(FinalPath + ".old-%%%%%%", Old))
      return E;
    if (std::error_code EC = sys::fs::rename(FinalPath, Old)) {
      sys::fs::remove(Old);
      return ioError(FinalPath, EC, "cannot move previous output aside");
    }
  }

  if (std::error_code EC = sys::fs::rename(TempPath, FinalPath)) {
    if (!Old.empty())
      (void)sys::fs::rename(Old, FinalPath); // Best effort: restore it.
    return ioError(FinalPath, EC, "cannot rename output directory into place");
  }
  Committed = true;
  if (!Old.empty())
    sys::fs::remove_directories(Old, /*IgnoreErrors=*/true);
  return Error::success();
}

llvm::Error mlir::moeq::io::checkReplaceableDirectory(
    llvm::StringRef Dir,
    llvm::function_ref<bool(llvm::StringRef, bool)> BelongsToOutput,
    llvm::StringRef Kind) {
  namespace fs = llvm::sys::fs;
  if (!fs::exists(Dir))
    return llvm::Error::success();
  if (!fs::is_directory(Dir))
    return llvm::createStringError(std::errc::not_a_directory,
                                   "%s: exists and is not a directory",
                                   Dir.str().c_str());
  std::error_code EC;
  for (fs::directory_iterator It(Dir, EC), End; It != End && !EC; It.increment(EC)) {
    llvm::StringRef Name = llvm::sys::path::filename(It->path());
    if (!BelongsToOutput(Name, It->type() == fs::file_type::directory_file))
      return llvm::createStringError(
          std::errc::directory_not_empty,
          "%s: refusing to replace a directory that contains '%s', which is "
          "not part of %s",
          Dir.str().c_str(), Name.str().c_str(), Kind.str().c_str());
  }
  if (EC)
    return llvm::createStringError(EC, "%s: cannot list directory: %s",
                                   Dir.str().c_str(), EC.message().c_str());
  return llvm::Error::success();
}
