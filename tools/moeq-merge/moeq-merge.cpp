//===- moeq-merge.cpp - join partial artifacts into one -------------------===//
//
//   moeq-merge part0 part1 ... -o out
//
// Each part is a partial artifact written by `moeq-compile --layers A:B`
// (for instance on another machine); together they must cover the model's
// layers once, compiled with the same options. The result is the artifact
// a single moeq-compile of the whole model with those options writes, byte
// for byte (docs/distributed.md). Nothing is written unless the merge
// succeeds.
//
//===----------------------------------------------------------------------===//
#include "moeq/Artifact/Merge.h"

#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/raw_ostream.h"

#include <chrono>

namespace cl = llvm::cl;

static cl::OptionCategory mergeCategory("moeq-merge options");
static cl::list<std::string> parts(cl::Positional, cl::OneOrMore,
                                   cl::desc("<partial artifact directories>"),
                                   cl::cat(mergeCategory));
static cl::opt<std::string> outputDir("o", cl::desc("output artifact directory"),
                                      cl::value_desc("dir"), cl::Required,
                                      cl::cat(mergeCategory));
static cl::opt<bool> quiet("quiet", cl::desc("no summary on stderr"), cl::init(false),
                           cl::cat(mergeCategory));

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  cl::HideUnrelatedOptions(mergeCategory);
  cl::ParseCommandLineOptions(argc, argv,
                              "moeq-merge: join the partial artifacts of moeq-compile "
                              "--layers into the artifact of the whole model\n");
  auto start = std::chrono::steady_clock::now();
  llvm::Expected<mlir::moeq::artifact::MergeSummary> summary =
      mlir::moeq::artifact::mergeArtifacts(parts, outputDir);
  if (!summary) {
    llvm::errs() << "moeq-merge: error: " << llvm::toString(summary.takeError()) << "\n";
    return 1;
  }
  double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (!quiet)
    llvm::errs() << llvm::formatv(
        "wrote {0}: layers {1}:{2} from {3} parts, {4} kernel files ({5} shared by several "
        "parts, stored once), {6} tensors ({7:F1} MiB) in {8:F2} s\n",
        outputDir.getValue(), summary->begin, summary->end, parts.size(), summary->kernels,
        summary->sharedKernels, summary->tensors, summary->tensorBytes / 1048576.0, seconds);
  return 0;
}
