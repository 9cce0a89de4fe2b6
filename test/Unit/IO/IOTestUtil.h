//===- IOTestUtil.h - helpers shared by the MoeqIO unit tests ---*- C++ -*-===//

#ifndef MOEQ_TEST_UNIT_IO_IOTESTUTIL_H
#define MOEQ_TEST_UNIT_IO_IOTESTUTIL_H

#include "llvm/ADT/SmallString.h"
#include "llvm/Support/Endian.h"
#include "llvm/Support/Error.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include "gtest/gtest.h"

#include <string>
#include <vector>

namespace mlir::moeq::io::test {

/// Fails the test with the error text if \p E is an error.
#define MOEQ_ASSERT_NO_ERROR(E)                                                \
  do {                                                                         \
    if (llvm::Error Err_ = (E))                                                \
      FAIL() << "unexpected error: " << llvm::toString(std::move(Err_));       \
  } while (0)

/// Unwraps an Expected into \p Var, failing the test on error.
#define MOEQ_ASSERT_EXPECTED(Var, Expr)                                        \
  auto Var##OrErr = (Expr);                                                    \
  if (!Var##OrErr)                                                             \
    FAIL() << "unexpected error: " << llvm::toString(Var##OrErr.takeError());  \
  auto &Var = *Var##OrErr

/// The message of \p E ("" if it is success).
inline std::string errorText(llvm::Error E) {
  if (!E)
    return "";
  return llvm::toString(std::move(E));
}

/// The message of a failed Expected ("" if it holds a value).
template <typename T> std::string errorText(llvm::Expected<T> &V) {
  if (V)
    return "";
  return llvm::toString(V.takeError());
}

/// A fresh directory, removed with its contents at the end of the test.
class ScopedTempDir {
public:
  ScopedTempDir() {
    std::error_code EC = llvm::sys::fs::createUniqueDirectory("moeq-io", Path);
    EXPECT_FALSE(EC) << EC.message();
  }
  ~ScopedTempDir() {
    llvm::sys::fs::remove_directories(Path, /*IgnoreErrors=*/true);
  }
  llvm::StringRef path() const { return Path; }
  std::string file(llvm::StringRef Name) const {
    llvm::SmallString<256> P(Path);
    llvm::sys::path::append(P, Name);
    return std::string(P);
  }

private:
  llvm::SmallString<256> Path;
};

inline void writeBytes(llvm::StringRef Path, llvm::StringRef Bytes) {
  std::error_code EC;
  llvm::raw_fd_ostream OS(Path, EC);
  ASSERT_FALSE(EC) << EC.message();
  OS << Bytes;
}

inline std::string readBytes(llvm::StringRef Path) {
  auto Buf = llvm::MemoryBuffer::getFile(Path, /*IsText=*/false,
                                         /*RequiresNullTerminator=*/false);
  if (!Buf)
    return "<unreadable>";
  return (*Buf)->getBuffer().str();
}

/// A safetensors image with the given header text and \p DataSize zero
/// bytes of data. The length prefix is the header's size unless overridden.
inline std::string
rawSafeTensors(llvm::StringRef Header, size_t DataSize,
               std::optional<uint64_t> LengthPrefix = std::nullopt) {
  std::string Out(8, '\0');
  llvm::support::endian::write64le(&Out[0],
                                   LengthPrefix.value_or(Header.size()));
  Out += Header.str();
  Out.append(DataSize, '\0');
  return Out;
}

} // namespace mlir::moeq::io::test

#endif // MOEQ_TEST_UNIT_IO_IOTESTUTIL_H
