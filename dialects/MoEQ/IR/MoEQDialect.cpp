//===- MoEQDialect.cpp - MoEQ dialect registration ------------------------===//
#include "moeq/Dialect/MoEQ/IR/MoEQ.h"

#include "mlir/Dialect/LLVMIR/LLVMDialect.h"

#include "mlir/IR/DialectImplementation.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace mlir::moeq;

#include "moeq/Dialect/MoEQ/IR/MoEQOpsDialect.cpp.inc"

void MoEQDialect::initialize() {
  addOperations<
#define GET_OP_LIST
#include "moeq/Dialect/MoEQ/IR/MoEQOps.cpp.inc"
      >();
  registerAttributesAndTypes();
}
