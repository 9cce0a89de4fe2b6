//===- moeq-translate.cpp - import checkpoints, export artifacts ----------===//
//
//   moeq-translate --import-hf DIR [-o out.mlir]
//       Hugging Face MoE checkpoint -> moeq IR (weights stay in the files).
//   moeq-translate --export-ptx | --export-manifest | --export-weights in.mlir
//       compiled moeq IR -> PTX (split-file format) / manifest JSON / weights.
//
//===----------------------------------------------------------------------===//
#include "moeq/Passes/Export.h"
#include "moeq/Passes/Import.h"
#include "moeq/Passes/Passes.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Support/FileUtilities.h"
#include "mlir/Tools/mlir-translate/MlirTranslateMain.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/ToolOutputFile.h"

using namespace mlir;

/// `--import-hf DIR` takes a directory, which mlirTranslateMain's
/// file-based input cannot: handle it before handing over.
static int importHF(StringRef dir, StringRef outputPath) {
  DialectRegistry registry;
  mlir::moeq::registerAllMoEQDependencies(registry);
  MLIRContext context(registry);
  OwningOpRef<ModuleOp> module = mlir::moeq::importHFCheckpoint(dir, &context);
  if (!module)
    return 1;
  std::string error;
  auto output = openOutputFile(outputPath, &error);
  if (!output) {
    llvm::errs() << "moeq-translate: " << error << "\n";
    return 1;
  }
  module->print(output->os());
  output->keep();
  return 0;
}

/// Import mode has its own options: mlirTranslateMain only knows file inputs.
static int runImport(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  static llvm::cl::opt<std::string> checkpointDir(
      "import-hf", llvm::cl::desc("import a Hugging Face MoE checkpoint directory"),
      llvm::cl::value_desc("dir"), llvm::cl::Required);
  static llvm::cl::opt<std::string> outputPath(
      "o", llvm::cl::desc("output file"), llvm::cl::value_desc("filename"),
      llvm::cl::init("-"));
  llvm::cl::ParseCommandLineOptions(argc, argv, "moeq-translate --import-hf\n");
  return importHF(checkpointDir, outputPath);
}

int main(int argc, char **argv) {
  for (int i = 1; i < argc; ++i) {
    StringRef arg = argv[i];
    if (arg.ltrim('-').starts_with("import-hf"))
      return runImport(argc, argv);
  }
  mlir::moeq::registerExportTranslations();
  return failed(mlirTranslateMain(argc, argv, "moeq translation driver\n"));
}
