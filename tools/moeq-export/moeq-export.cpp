//===- moeq-export.cpp - a compiled artifact in other tools' formats ------===//
//
//   moeq-export ARTIFACT --format dequantized|compressed-tensors|gguf -o OUT
//
// Reads the artifact directory alone (manifest.json, the packed and copied
// weights, hf/) and writes it in a format other tools load. Nothing is
// written unless the export succeeds.
//
//===----------------------------------------------------------------------===//
#include "moeq/Artifact/Export.h"

#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/raw_ostream.h"

#include <chrono>

namespace cl = llvm::cl;
using mlir::moeq::artifact::ExportFormat;

static cl::OptionCategory exportCategory("moeq-export options");
static cl::opt<std::string> artifactDir(cl::Positional, cl::Required,
                                        cl::desc("<artifact directory>"),
                                        cl::cat(exportCategory));
static cl::opt<ExportFormat> format(
    "format", cl::desc("what to write"), cl::Required,
    cl::values(clEnumValN(ExportFormat::Dequantized, "dequantized",
                          "a Hugging Face model directory whose quantized weights are F32 "
                          "dequantized values under their checkpoint names (evaluation in "
                          "PyTorch/transformers)"),
               clEnumValN(ExportFormat::CompressedTensors, "compressed-tensors",
                          "a Hugging Face model directory in the compressed-tensors format "
                          "(pack-quantized, int-quantized for w8a8; transformers, vLLM)"),
               clEnumValN(ExportFormat::GGUF, "gguf",
                          "one GGUF file for llama.cpp (Mixtral layout; Q4_0/Q4_1/Q5_0/Q5_1/"
                          "Q8_0 stacked experts, one scheme per layer and projection)")),
    cl::cat(exportCategory));
static cl::opt<std::string> outputDir("o", cl::desc("output directory (for gguf: the *.gguf file)"),
                                      cl::value_desc("path"),
                                      cl::Required, cl::cat(exportCategory));
static cl::opt<bool> quiet("quiet", cl::desc("no progress or summary on stderr"),
                           cl::init(false), cl::cat(exportCategory));

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  cl::HideUnrelatedOptions(exportCategory);
  cl::ParseCommandLineOptions(
      argc, argv,
      "moeq-export: write a compiled artifact in a format other tools load\n\n"
      "  moeq-export out/ --format dequantized -o out-f32/\n"
      "      a transformers model directory with the weights moeq ships, e.g. for\n"
      "      tools/python/moeq_eval.py or any PyTorch evaluation\n"
      "  moeq-export out/ --format compressed-tensors -o out-ct/\n"
      "      the packed weights as compressed-tensors (pack-quantized / int-quantized)\n"
      "  moeq-export out/ --format gguf -o model.gguf\n"
      "      llama.cpp's format; compile with one exact scheme per layer and projection,\n"
      "      e.g. moeq-compile MODEL --bits 4 --group-size 32 --symmetric (Q4_0)\n");
  auto start = std::chrono::steady_clock::now();
  uint64_t written = 0;
  auto progress = [&](llvm::StringRef name) {
    ++written;
    if (!quiet)
      llvm::errs() << llvm::formatv("\r[moeq-export] tensor {0}: {1}\x1b[K", written, name);
  };
  auto summary = mlir::moeq::artifact::exportArtifact(artifactDir, format, outputDir, progress);
  if (!quiet && written)
    llvm::errs() << "\n";
  if (!summary) {
    llvm::errs() << "moeq-export: error: " << llvm::toString(summary.takeError()) << "\n";
    return 1;
  }
  double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (!quiet)
    llvm::errs() << llvm::formatv(
        "wrote {0}: {1} tensors ({2:F1} MiB; {3} quantized matrices){4}, in {5:F2} s\n",
        outputDir.getValue(), summary->tensors, summary->bytes / 1048576.0,
        summary->dequantized,
        format == ExportFormat::GGUF
            ? std::string()
            : llvm::formatv(", {0} config/tokenizer files", summary->hfFiles.size()).str(),
        seconds);
  if (!quiet)
    for (const std::string &group : summary->groups)
      llvm::errs() << "  " << group << "\n";
  return 0;
}
