//===- moeq-cpu-runner.cpp - run MoE layers of a checkpoint on the CPU ----===//
//
//   moeq-cpu-runner MODEL_DIR --layer L --input x.safetensors -o y.safetensors
//                   [--bits B [--group-size G] [--symmetric] [--act-bits 8|4] [--quantize-shared]
//                    [--method rtn|gptq|agq [--stats stats.safetensors]]]
//
// Imports the checkpoint, optionally quantizes the experts (round to
// nearest), lowers the layer through the CPU pipeline, JIT-compiles it and
// runs it on tensor "x" (tokens x hidden, F32) of the input file, writing
// tensor "y". The numerical oracle of the compiler, usable from scripts.
//
//===----------------------------------------------------------------------===//
#include "moeq/IO/AtomicOutput.h"
#include "moeq/IO/SafeTensors.h"
#include "moeq/Passes/CPURunner.h"
#include "moeq/Passes/Import.h"
#include "moeq/Passes/Passes.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "llvm/ADT/ScopeExit.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/InitLLVM.h"

#include "StatsFlag.h"

using namespace mlir;
namespace cl = llvm::cl;
namespace io = mlir::moeq::io;

static cl::OptionCategory category("moeq-cpu-runner options");
static cl::opt<std::string> modelDir(cl::Positional, cl::desc("<hf-model-dir>"), cl::Required,
                                     cl::cat(category));
static cl::opt<int64_t> layer("layer", cl::desc("MoE layer index"), cl::Required,
                              cl::cat(category));
static cl::opt<std::string> inputPath("input", cl::desc("safetensors file with tensor 'x'"),
                                      cl::Required, cl::cat(category));
static cl::opt<std::string> outputPath("o", cl::desc("safetensors file to write tensor 'y' to"),
                                       cl::Required, cl::cat(category));
// The quantization flags are the `moeq-quantize` pipeline's options
// (Pipelines.td); it runs when --bits is given.
#define MOEQ_PIPELINE_FLAGS_CATEGORY category
namespace mlir::moeq {
#define GEN_TOOL_FLAGS_QuantizePipelineOptions
#include "moeq/Passes/Pipelines.h.inc"
} // namespace mlir::moeq
namespace flags = mlir::moeq::flags;

static cl::opt<std::string> passPipeline(
    "passes",
    cl::desc("passes run on the imported module first (after --bits), as a textual pass "
             "list, e.g. 'moeq-delta-decompress{compression=0.4 stats=s output=d}'"),
    cl::init(""), cl::cat(category));

static int fail(const llvm::Twine &message) {
  llvm::errs() << "moeq-cpu-runner: error: " << message << "\n";
  return 1;
}

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  // --passes names moeq passes by flag.
  mlir::moeq::registerMoEQPasses();
  cl::HideUnrelatedOptions(category);
  std::vector<std::string> storage;
  std::vector<char *> args = mlir::moeq::rewriteStatsFlag(argc, argv, storage);
  cl::ParseCommandLineOptions(int(args.size()) - 1, args.data(),
                              "run a MoE layer of a checkpoint on the CPU\n");

  auto inputFile = io::SafeTensorsFile::open(inputPath);
  if (!inputFile)
    return fail(llvm::toString(inputFile.takeError()));
  const io::TensorInfo *xInfo = (*inputFile)->find("x");
  if (!xInfo || xInfo->shape.size() != 2)
    return fail(inputPath + ": needs a 2-D tensor 'x' (tokens x hidden)");
  auto x = (*inputFile)->readAsFloat(*xInfo);
  if (!x)
    return fail(llvm::toString(x.takeError()));

  DialectRegistry registry;
  mlir::moeq::registerAllMoEQDependencies(registry);
  MLIRContext context(registry);
  OwningOpRef<ModuleOp> module = mlir::moeq::importHFCheckpoint(modelDir, &context);
  if (!module)
    return 1;

  // Packed weights go to a scratch archive next to the output.
  llvm::SmallString<128> scratch;
  if (flags::weightBits.getNumOccurrences()) {
    if (auto ec = llvm::sys::fs::createTemporaryFile("moeq-cpu-runner", "safetensors", scratch))
      return fail("cannot create a scratch file: " + ec.message());
    PassManager pm = PassManager::on<ModuleOp>(&context);
    mlir::moeq::QuantizePipelineOptions quantize;
    mlir::moeq::copyFlagsTo(quantize);
    quantize.weightsOutput = scratch.str().str();
    mlir::moeq::buildQuantizePipeline(pm, quantize);
    if (failed(pm.run(*module))) {
      llvm::sys::fs::remove(scratch);
      return 1;
    }
  }
  auto cleanup = llvm::make_scope_exit([&] {
    if (!scratch.empty())
      llvm::sys::fs::remove(scratch);
  });
  if (!passPipeline.empty()) {
    // The passes of a builtin.module pipeline, without the anchor.
    PassManager pm = PassManager::on<ModuleOp>(&context);
    std::string errors;
    llvm::raw_string_ostream errorStream(errors);
    if (failed(parsePassPipeline(passPipeline, pm, errorStream)))
      return fail("--passes: " + errors);
    if (failed(pm.run(*module)))
      return 1;
  }

  auto runner = mlir::moeq::CPULayerRunner::create(*module);
  if (failed(runner))
    return 1;
  std::string name = "moe_layer_" + std::to_string(layer);
  int64_t hidden = (*runner)->getHiddenSize(name);
  if (hidden < 0)
    return fail("layer " + llvm::Twine(layer) + " is not a MoE layer of " + modelDir);
  if (xInfo->shape[1] != hidden)
    return fail(inputPath + ": 'x' has " + llvm::Twine(xInfo->shape[1]) +
                " columns, the layer's hidden size is " + llvm::Twine(hidden));
  FailureOr<std::vector<float>> y = (*runner)->run(name, *x, xInfo->shape[0]);
  if (failed(y))
    return 1;
  io::SafeTensorsWriter writer;
  if (llvm::Error err = writer.addF32("y", xInfo->shape, *y))
    return fail(llvm::toString(std::move(err)));
  if (llvm::Error err = writer.writeAtomically(outputPath))
    return fail(llvm::toString(std::move(err)));
  return 0;
}
