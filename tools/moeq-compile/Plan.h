//===- Plan.h - moeq-compile --dry-run and the closing summary --*- C++ -*-===//
//
// What moeq-compile will do, before doing it (--dry-run: the model's family
// and MoE layers, the schemes and budget, the estimated output size and
// compile time, nothing quantized or written), and what it did (the summary
// table printed at the end of a compile).
//
//===----------------------------------------------------------------------===//
#ifndef MOEQ_TOOLS_MOEQCOMPILE_PLAN_H
#define MOEQ_TOOLS_MOEQCOMPILE_PLAN_H

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/raw_ostream.h"

#include <cstdint>
#include <string>

namespace mlir {
class ModuleOp;
} // namespace mlir

namespace moeq::compile {

/// The options that shape the plan.
struct PlanOptions {
  std::string modelDir;
  std::string arch;
  /// Mixed precision: the budget (> 0) and the candidate schemes; else the
  /// one scheme of every weight.
  double avgBits = 0;
  std::string schemes;    ///< comma-separated mangled names
  std::string scheme;     ///< uniform: the mangled name
  std::string granularity;
  double r = 1;
  std::string method;     ///< rtn, gptq or agq
  bool withStatistics = false;
  bool quantizeShared = false;
  bool groupBits = false;
  /// The widths priced in the sensitivity, their k search on this many
  /// rows of each weight (0: all).
  bool priceGroupBits = false;
  int64_t groupBitsRows = 0;
  double deltaCompression = 0;
  unsigned threads = 1;   ///< quantizing threads
  std::string serve;      ///< "vLLM" or empty
};

/// Prints the plan of compiling `module` (just imported, nothing quantized)
/// with `options`: it times the quantizer on one gate-shaped and one
/// down-shaped random weight of the model on this machine to estimate the
/// compile time. Returns false (after printing why) when the plan cannot
/// be made.
bool printCompilePlan(mlir::ModuleOp module, const PlanOptions &options,
                      llvm::raw_ostream &os);

/// The table printed at the end of a compile: per MoE layer its experts,
/// stored bits and schemes (with their counts), then the files and the
/// wall time.
void printCompileSummary(const llvm::json::Object &manifest, uint64_t expertsBytes,
                         uint64_t paramsBytes, size_t kernels, double seconds,
                         llvm::raw_ostream &os);

} // namespace moeq::compile

#endif // MOEQ_TOOLS_MOEQCOMPILE_PLAN_H
