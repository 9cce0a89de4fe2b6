//===- moeq-opt.cpp - mlir-opt style driver for moeq ----------------------===//
//
// Runs any moeq pass or pipeline (and the upstream passes the pipelines use)
// on MLIR input, for lit tests and for compiler engineers.
//
//===----------------------------------------------------------------------===//
#include "moeq/Passes/Passes.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/InitAllPasses.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"

int main(int argc, char **argv) {
  mlir::registerAllPasses();
  mlir::moeq::registerMoEQPasses();
  mlir::moeq::registerPipelines();

  mlir::DialectRegistry registry;
  mlir::moeq::registerAllMoEQDependencies(registry);
  return mlir::asMainReturnCode(
      mlir::MlirOptMain(argc, argv, "moeq optimizer driver\n", registry));
}
