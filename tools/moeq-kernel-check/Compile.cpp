//===- Compile.cpp - kernels to PTX and to the GPU emulator ---------------===//
#include "Compile.h"

#include "moeq/Passes/Export.h"
#include "moeq/Passes/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/Transforms/Passes.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Pass/PassManager.h"

#include "llvm/ExecutionEngine/Orc/Mangling.h"
#include "llvm/Support/raw_ostream.h"

using namespace mlir;
using namespace mlir::moeq;

void kcheck::fail(const llvm::Twine &message) {
  llvm::errs() << "moeq-kernel-check: error: " << message << "\n";
  std::exit(2);
}

void kcheck::check(llvm::Error error) {
  if (error)
    fail(llvm::toString(std::move(error)));
}

kcheck::PTXMap kcheck::compileToPTX(ModuleOp module) {
  OwningOpRef<ModuleOp> clone = module.clone();
  PassManager pm(module.getContext());
  buildLowerGPUModulesToNVVMPipeline(pm);
  buildSerializeToPTXPipeline(pm);
  if (failed(pm.run(*clone)))
    fail("compiling the kernels to PTX failed");
  FailureOr<std::vector<PTXKernel>> kernels = collectPTX(*clone);
  if (failed(kernels))
    fail("no PTX in the compiled module");
  PTXMap ptx;
  for (PTXKernel &kernel : *kernels)
    ptx[kernel.name] = std::move(kernel.ptx);
  return ptx;
}

void kcheck::lowerForEmulation(ModuleOp module) {
  PassManager pm(module.getContext());
  buildLowerGPUModulesToNVVMPipeline(pm);
  pm.addPass(createEmulateGPUKernels());
  if (failed(pm.run(module)))
    fail("lowering the kernel failed");
}

std::unique_ptr<ExecutionEngine> kcheck::jitKernels(ModuleOp module) {
  for (auto func : llvm::make_early_inc_range(module.getOps<func::FuncOp>()))
    func.erase();
  addPackedKernelWrappers(module); // <kernel>_packed(void **), as the runtime calls them
  auto engine = ExecutionEngine::create(module);
  if (!engine)
    fail("cannot JIT the kernel: " + llvm::toString(engine.takeError()));
  (*engine)->registerSymbols([](llvm::orc::MangleAndInterner interner) {
    llvm::orc::SymbolMap map;
    for (auto [name, address] : emu::runtimeSymbols())
      map[interner(name)] = {llvm::orc::ExecutorAddr::fromPtr(address),
                             llvm::JITSymbolFlags::Exported};
    return map;
  });
  return std::move(*engine);
}

emu::PackedKernel kcheck::lookupKernel(ExecutionEngine &engine, llvm::StringRef name) {
  auto kernel = engine.lookup((name + "_packed").str());
  if (!kernel)
    fail("no kernel " + name + ": " + llvm::toString(kernel.takeError()));
  return reinterpret_cast<emu::PackedKernel>(*kernel);
}
