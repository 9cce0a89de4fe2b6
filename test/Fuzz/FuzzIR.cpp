//===- FuzzIR.cpp - libFuzzer target: MoEQ IR parser and verifier ---------===//
//
// The input is MLIR source using the MoEQ dialect (its attributes, packed
// weight type and ops, inside func/arith/tensor). Parsing and verifying
// must succeed or emit diagnostics; a successfully parsed module is printed
// and parsed again, which must give a verifying module (the round trip
// moeq-opt's tests rely on).
//
//===----------------------------------------------------------------------===//
#include "moeq/Dialect/MoEQ/IR/MoEQ.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Parser/Parser.h"

#include "llvm/Support/raw_ostream.h"

#include <cstdint>
#include <string>

using namespace mlir;

namespace {
MLIRContext &context() {
  static MLIRContext *ctx = [] {
    DialectRegistry registry;
    registry.insert<moeq::MoEQDialect, func::FuncDialect, arith::ArithDialect,
                    tensor::TensorDialect>();
    auto *c = new MLIRContext(registry, MLIRContext::Threading::DISABLED);
    c->loadAllAvailableDialects();
    // Diagnostics are the expected outcome of bad input: swallow them.
    c->getDiagEngine().registerHandler([](Diagnostic &) { return success(); });
    return c;
  }();
  return *ctx;
}
} // namespace

// MLIR's uniquers allocate from llvm::BumpPtrAllocator both in libMLIR.so
// (Debian's, not instrumented) and in code inlined here (instrumented),
// which poisons the unused rest of each slab that libMLIR then writes
// without unpoisoning: false "use-after-poison" reports. Ignore the
// allocator's manual poisoning; ASan still checks every real access.
extern "C" const char *__asan_default_options() { return "allow_user_poisoning=0"; }

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  // MLIR's lexer reads one byte past the text it is given (its files come
  // null-terminated from MemoryBuffer::getFile, as moeq-opt's do): give it
  // a null-terminated copy, as a file read would.
  std::string source(reinterpret_cast<const char *>(data), size);
  ParserConfig config(&context());
  OwningOpRef<ModuleOp> module = parseSourceString<ModuleOp>(source, config);
  if (!module || failed(verify(*module)))
    return 0;
  std::string printed;
  llvm::raw_string_ostream os(printed);
  module->print(os);
  OwningOpRef<ModuleOp> again = parseSourceString<ModuleOp>(printed, config);
  if (!again || failed(verify(*again)))
    __builtin_trap(); // what the printer wrote must parse and verify
  return 0;
}
