//===- StatsFlag.h - the --stats flag next to LLVM's own -stats -*- C++ -*-===//
//
// libLLVM registers a `-stats` option (pass statistics) when a tool's
// options are first listed, so a tool cannot declare its own `stats`
// cl::opt. The tools that take a calibration statistics file declare
// `--calibration-stats` and accept `--stats FILE` / `--stats=FILE` for it,
// rewritten here before the command line is parsed.
//
//===----------------------------------------------------------------------===//
#ifndef MOEQ_TOOLS_STATSFLAG_H
#define MOEQ_TOOLS_STATSFLAG_H

#include "llvm/ADT/StringRef.h"

#include <string>
#include <vector>

namespace mlir::moeq {

/// argv with `--stats[=...]` / `-stats[=...]` spelled `--calibration-stats`.
/// The strings live in `storage`; the returned pointers into it.
inline std::vector<char *> rewriteStatsFlag(int argc, char **argv,
                                            std::vector<std::string> &storage) {
  storage.assign(argv, argv + argc);
  std::vector<char *> result;
  for (std::string &arg : storage) {
    llvm::StringRef flag(arg);
    if (flag.consume_front("--stats") || flag.consume_front("-stats"))
      if (flag.empty() || flag.starts_with("="))
        arg = "--calibration-stats" + flag.str();
    result.push_back(arg.data());
  }
  result.push_back(nullptr);
  return result;
}

} // namespace mlir::moeq

#endif // MOEQ_TOOLS_STATSFLAG_H
