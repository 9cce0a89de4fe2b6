//===- AtomicOutputTest.cpp - atomic file and directory output tests ------===//

#include "moeq/IO/AtomicOutput.h"

#include "IOTestUtil.h"

#include <sys/wait.h>
#include <unistd.h>

using namespace llvm;
using namespace mlir::moeq::io;
using namespace mlir::moeq::io::test;

namespace {

std::vector<std::string> listDir(StringRef Dir) {
  std::vector<std::string> Names;
  std::error_code EC;
  for (sys::fs::directory_iterator It(Dir, EC), End; It != End && !EC;
       It.increment(EC))
    Names.push_back(sys::path::filename(It->path()).str());
  llvm::sort(Names);
  return Names;
}

TEST(AtomicFileTest, WritesAndReplaces) {
  ScopedTempDir Tmp;
  std::string Path = Tmp.file("f.txt");
  MOEQ_ASSERT_NO_ERROR(writeFileAtomically(Path, "first"));
  EXPECT_EQ(readBytes(Path), "first");
  MOEQ_ASSERT_NO_ERROR(writeFileAtomically(Path, "second"));
  EXPECT_EQ(readBytes(Path), "second");
  EXPECT_EQ(listDir(Tmp.path()), std::vector<std::string>{"f.txt"});
}

TEST(AtomicFileTest, FailedWriteKeepsOldContents) {
  ScopedTempDir Tmp;
  std::string Path = Tmp.file("f.txt");
  MOEQ_ASSERT_NO_ERROR(writeFileAtomically(Path, "old"));
  Error E = writeFileAtomically(Path, [](raw_ostream &OS) -> Error {
    OS << "partial";
    return createStringError(std::errc::io_error, "producer failed");
  });
  EXPECT_EQ(errorText(std::move(E)), "producer failed");
  EXPECT_EQ(readBytes(Path), "old");
  EXPECT_EQ(listDir(Tmp.path()), std::vector<std::string>{"f.txt"});
}

TEST(AtomicFileTest, MissingParentIsAnError) {
  ScopedTempDir Tmp;
  std::string Path = Tmp.file("no/such/dir/f.txt");
  std::string Msg = errorText(writeFileAtomically(Path, "x"));
  EXPECT_NE(Msg.find(Path), std::string::npos) << Msg;
}

// A size the file system cannot hold is refused when the file is sized, not
// found out when the disk fills after the work of writing it.
TEST(AtomicFileTest, SizeBeyondTheFreeSpaceIsRefused) {
  ScopedTempDir Tmp;
  std::string Path = Tmp.file("big.bin");
  MOEQ_ASSERT_EXPECTED(File, AtomicOutputFile::create(Path));
  MOEQ_ASSERT_NO_ERROR(File->resize(4096));
  Error E = File->resize(uint64_t(1) << 62);
  std::string Msg = errorText(std::move(E));
  EXPECT_EQ(Msg.rfind(Path + ": needs 4.0 EiB, more than the ", 0), 0u) << Msg;
  EXPECT_NE(Msg.find(" free on its file system"), std::string::npos) << Msg;
  File->discard();
  EXPECT_EQ(listDir(Tmp.path()), std::vector<std::string>{});
}

TEST(AtomicDirectoryTest, CommitMovesIntoPlace) {
  ScopedTempDir Tmp;
  std::string Final = Tmp.file("nested/out");
  {
    MOEQ_ASSERT_EXPECTED(Out, AtomicOutputDirectory::create(Final));
    EXPECT_NE(Out.path(), Out.finalPath());
    EXPECT_TRUE(StringRef(Out.path()).starts_with(Final + ".tmp-"));
    MOEQ_ASSERT_NO_ERROR(writeFileAtomically(Out.pathFor("a.txt"), "A"));
    EXPECT_FALSE(sys::fs::exists(Final));
    MOEQ_ASSERT_NO_ERROR(Out.commit());
    EXPECT_TRUE(Out.isCommitted());
    // A second commit is a usage error, not a crash.
    EXPECT_NE(errorText(Out.commit()), "");
  }
  EXPECT_EQ(readBytes(Final + "/a.txt"), "A");
  EXPECT_EQ(listDir(Tmp.file("nested")), std::vector<std::string>{"out"});
}

/// The pid of a process that has exited (and been reaped).
int deadProcessId() {
  pid_t Child = ::fork();
  if (Child == 0)
    ::_exit(0);
  int Status = 0;
  ::waitpid(Child, &Status, 0);
  return int(Child);
}

std::string hostName() {
  char Host[256] = "localhost";
  if (::gethostname(Host, sizeof(Host) - 1) != 0)
    return "localhost";
  return Host;
}

TEST(AtomicDirectoryTest, TemporariesOfKilledProcessesAreRemoved) {
  ScopedTempDir Tmp;
  std::string Final = Tmp.file("out");
  std::string Host = hostName();
  // Left by a process of this host that is gone (killed), by one still
  // running (this one's parent), and by a process of another host.
  std::string Dead = Final + ".tmp-" + Host + "-" + std::to_string(deadProcessId()) + "-abcdef";
  std::string Alive = Final + ".tmp-" + Host + "-" + std::to_string(::getppid()) + "-abcdef";
  std::string Remote = Final + ".tmp-elsewhere.example-" + std::to_string(deadProcessId()) +
                       "-abcdef";
  for (const std::string &Dir : {Dead, Alive, Remote}) {
    ASSERT_FALSE(sys::fs::create_directories(Dir));
    MOEQ_ASSERT_NO_ERROR(writeFileAtomically(Dir + "/manifest.json", "{}"));
  }
  std::string Stale = Tmp.file("f.txt.tmp-" + Host + "-" + std::to_string(deadProcessId()) +
                               "-abcdef");
  MOEQ_ASSERT_NO_ERROR(writeFileAtomically(Stale, "partial"));
  {
    MOEQ_ASSERT_EXPECTED(Out, AtomicOutputDirectory::create(Final));
    EXPECT_TRUE(StringRef(Out.path()).starts_with(
        Final + ".tmp-" + Host + "-" + std::to_string(::getpid()) + "-"));
    MOEQ_ASSERT_NO_ERROR(Out.commit());
  }
  MOEQ_ASSERT_NO_ERROR(writeFileAtomically(Tmp.file("f.txt"), "whole"));
  EXPECT_FALSE(sys::fs::exists(Dead));
  EXPECT_FALSE(sys::fs::exists(Stale));
  EXPECT_TRUE(sys::fs::exists(Alive));
  EXPECT_TRUE(sys::fs::exists(Remote));
}

TEST(AtomicDirectoryTest, UncommittedIsRemoved) {
  ScopedTempDir Tmp;
  std::string Final = Tmp.file("out");
  std::string TempPath;
  {
    MOEQ_ASSERT_EXPECTED(Out, AtomicOutputDirectory::create(Final));
    TempPath = Out.path().str();
    MOEQ_ASSERT_NO_ERROR(writeFileAtomically(Out.pathFor("a.txt"), "A"));
    EXPECT_TRUE(sys::fs::exists(TempPath));
  }
  EXPECT_FALSE(sys::fs::exists(TempPath));
  EXPECT_FALSE(sys::fs::exists(Final));
  EXPECT_TRUE(listDir(Tmp.path()).empty());
}

TEST(AtomicDirectoryTest, ReplacesExistingDirectory) {
  ScopedTempDir Tmp;
  std::string Final = Tmp.file("out/");
  ASSERT_FALSE(sys::fs::create_directory(Final));
  writeBytes(Tmp.file("out/old.txt"), "old");
  {
    MOEQ_ASSERT_EXPECTED(Out, AtomicOutputDirectory::create(Final));
    // The trailing slash must not put the temporary inside "out".
    EXPECT_EQ(sys::path::parent_path(Out.path()), Tmp.path());
    MOEQ_ASSERT_NO_ERROR(writeFileAtomically(Out.pathFor("new.txt"), "new"));
    MOEQ_ASSERT_NO_ERROR(Out.commit());
  }
  EXPECT_EQ(listDir(Tmp.file("out")), std::vector<std::string>{"new.txt"});
  EXPECT_EQ(listDir(Tmp.path()), std::vector<std::string>{"out"});
}

TEST(AtomicDirectoryTest, RefusesToReplaceAFile) {
  ScopedTempDir Tmp;
  std::string Final = Tmp.file("file");
  writeBytes(Final, "data");
  auto Out = AtomicOutputDirectory::create(Final);
  std::string Msg = errorText(Out);
  EXPECT_NE(Msg.find("not a directory"), std::string::npos) << Msg;
  EXPECT_EQ(readBytes(Final), "data");
}

TEST(AtomicDirectoryTest, MoveTransfersOwnership) {
  ScopedTempDir Tmp;
  std::string Final = Tmp.file("out");
  std::string TempPath;
  std::optional<AtomicOutputDirectory> Moved;
  {
    MOEQ_ASSERT_EXPECTED(Out, AtomicOutputDirectory::create(Final));
    TempPath = Out.path().str();
    Moved.emplace(std::move(Out));
  } // The moved-from object dies here and must not delete the directory.
  EXPECT_TRUE(sys::fs::is_directory(TempPath));
  EXPECT_EQ(Moved->path(), TempPath);
  MOEQ_ASSERT_NO_ERROR(Moved->commit());
  EXPECT_TRUE(sys::fs::is_directory(Final));
  EXPECT_FALSE(sys::fs::exists(TempPath));
}

} // namespace
