//===- PtxasCheck.h - assemble the emitted PTX before committing -*- C++ -*-===//
//
// moeq-compile checks its own PTX with ptxas when the CUDA toolkit is
// installed: a kernel the assembler rejects is an error and no artifact is
// written. Registers, spills and stack frame go to the report.
//
//===----------------------------------------------------------------------===//
#ifndef MOEQ_TOOLS_MOEQCOMPILE_PTXASCHECK_H
#define MOEQ_TOOLS_MOEQCOMPILE_PTXASCHECK_H

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <optional>
#include <string>
#include <vector>

namespace moeq::compile {

/// Limits of every chip since sm_50: registers of one thread and of one block
/// (the register file of an SM).
inline constexpr int64_t kMaxRegistersPerThread = 255;
inline constexpr int64_t kRegistersPerBlock = 65536;

struct PtxasResult {
  std::string kernel;
  int64_t registers = -1, spillBytes = 0, stackBytes = 0;
  int64_t maxThreads = 0; ///< the kernel's .maxntid (0: not declared)
};

/// `requested` if given ("none": no check), else $CUDA_HOME/bin/ptxas or
/// /usr/local/cuda/bin/ptxas when it exists; none otherwise.
std::optional<std::string> findPtxas(llvm::StringRef requested);

/// Assembles `ptx` (the module of kernel `kernel`) for `chip` with
/// `ptxas -v`; an error carries ptxas's message, or says which register
/// limit the assembled kernel exceeds.
llvm::Expected<PtxasResult> assemble(llvm::StringRef ptxas, llvm::StringRef chip,
                                     llvm::StringRef kernel, llvm::StringRef ptx);

} // namespace moeq::compile

#endif // MOEQ_TOOLS_MOEQCOMPILE_PTXASCHECK_H
