//===- Probes.h - one-warp probes of the warp-level instructions -*- C++ -*-===//
#ifndef MOEQ_TOOLS_KERNELCHECK_PROBES_H
#define MOEQ_TOOLS_KERNELCHECK_PROBES_H

#include "mlir/IR/MLIRContext.h"
#include "llvm/ADT/StringRef.h"

namespace mlir::moeq::kcheck {

/// Runs the probe `name` ("all": every probe) on the GPU emulator; with
/// `saveDir`, writes each as a case (`saveDir/<probe>`) whose expected
/// outputs are the emulator's. Returns the exit code.
int runProbes(MLIRContext *context, llvm::StringRef name, llvm::StringRef saveDir,
              llvm::StringRef arch);

} // namespace mlir::moeq::kcheck

#endif // MOEQ_TOOLS_KERNELCHECK_PROBES_H
