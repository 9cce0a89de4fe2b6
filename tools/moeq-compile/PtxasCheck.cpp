//===- PtxasCheck.cpp - assemble the emitted PTX before committing --------===//
#include "PtxasCheck.h"

#include "llvm/ADT/SmallString.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/raw_ostream.h"

#include <cstdlib>

using namespace moeq::compile;

std::optional<std::string> moeq::compile::findPtxas(llvm::StringRef requested) {
  if (requested == "none")
    return std::nullopt;
  if (!requested.empty())
    return requested.str();
  for (const char *home : {static_cast<const char *>(std::getenv("CUDA_HOME")), "/usr/local/cuda"}) {
    if (!home)
      continue;
    llvm::SmallString<256> path(home);
    llvm::sys::path::append(path, "bin", "ptxas");
    if (llvm::sys::fs::can_execute(path))
      return std::string(path);
  }
  return std::nullopt;
}

namespace {
/// The number before `suffix` in a ptxas -v line ("... 24 bytes stack frame").
int64_t numberBefore(llvm::StringRef line, llvm::StringRef suffix) {
  size_t at = line.find(suffix);
  if (at == llvm::StringRef::npos)
    return -1;
  llvm::StringRef before = line.take_front(at).rtrim();
  size_t start = before.find_last_not_of("0123456789");
  int64_t value = -1;
  if (before.drop_front(start + 1).getAsInteger(10, value))
    return -1;
  return value;
}
/// The block size a kernel declares with `.maxntid x, y, z` (or
/// `.reqntid`); 0 (unknown: the launch decides) without one.
int64_t maxThreadsOf(llvm::StringRef ptx) {
  for (llvm::StringRef directive : {".maxntid", ".reqntid"}) {
    size_t at = ptx.find(directive);
    if (at == llvm::StringRef::npos)
      continue;
    llvm::StringRef dims = ptx.drop_front(at + directive.size()).take_until(
        [](char c) { return c == '\n' || c == '{'; });
    llvm::SmallVector<llvm::StringRef, 3> parts;
    dims.split(parts, ',');
    int64_t threads = 1;
    for (llvm::StringRef part : parts) {
      int64_t dim = 0;
      if (part.trim().getAsInteger(10, dim) || dim <= 0)
        return 0;
      threads *= dim;
    }
    return threads;
  }
  return 0;
}
} // namespace

llvm::Expected<PtxasResult> moeq::compile::assemble(llvm::StringRef ptxas, llvm::StringRef chip,
                                                    llvm::StringRef kernel,
                                                    llvm::StringRef ptx) {
  llvm::SmallString<128> input, output, log;
  if (std::error_code ec = llvm::sys::fs::createTemporaryFile("moeq-ptxas", "ptx", input))
    return llvm::createStringError(ec, "cannot create a scratch file: " + ec.message());
  llvm::sys::fs::createTemporaryFile("moeq-ptxas", "cubin", output);
  llvm::sys::fs::createTemporaryFile("moeq-ptxas", "log", log);
  auto cleanup = [&] {
    for (auto *path : {&input, &output, &log})
      llvm::sys::fs::remove(*path);
  };
  {
    std::error_code ec;
    llvm::raw_fd_ostream os(input, ec);
    if (ec) {
      cleanup();
      return llvm::createStringError(ec, "cannot write " + input + ": " + ec.message());
    }
    os << ptx;
  }
  std::string arch = ("-arch=" + chip).str();
  llvm::SmallVector<llvm::StringRef> args{ptxas, arch, "-v", "-o", output, input};
  std::optional<llvm::StringRef> redirects[] = {std::nullopt, log.str(), log.str()};
  std::string error;
  int status = llvm::sys::ExecuteAndWait(ptxas, args, std::nullopt, redirects, 0, 0, &error);
  auto text = llvm::MemoryBuffer::getFile(log);
  std::string messages = text ? (*text)->getBuffer().trim().str() : "";
  cleanup();
  if (status != 0)
    return llvm::createStringError(
        "ptxas (" + ptxas.str() + ") rejects kernel '" + kernel.str() + "' for " + chip.str() +
        ": " + (messages.empty() ? error : messages));
  PtxasResult result;
  result.kernel = kernel.str();
  result.maxThreads = maxThreadsOf(ptx);
  llvm::SmallVector<llvm::StringRef> lines;
  llvm::StringRef(messages).split(lines, '\n');
  for (llvm::StringRef line : lines) {
    if (int64_t regs = numberBefore(line, " registers"); regs >= 0 && line.contains("Used"))
      result.registers = regs;
    if (int64_t stack = numberBefore(line, " bytes stack frame"); stack >= 0) {
      result.stackBytes = stack;
      result.spillBytes = std::max<int64_t>(0, numberBefore(line, " bytes spill stores"));
    }
  }
  // ptxas fits the registers to .maxntid; checked again here so that an
  // assembler that did not is caught before a launch fails.
  if (result.registers > kMaxRegistersPerThread ||
      result.registers * result.maxThreads > kRegistersPerBlock)
    return llvm::createStringError(llvm::formatv(
        "kernel '{0}' for {1} uses {2} registers per thread for {3} threads per block ({4} "
        "registers); a thread may use at most {5} and a block at most {6}",
        kernel, chip, result.registers, result.maxThreads,
        result.registers * result.maxThreads, kMaxRegistersPerThread, kRegistersPerBlock));
  return result;
}
