//===- ExportEmulation.cpp - kernels for the runtime's emulator backend ---===//
//
// The artifact keeps, next to each kernel's PTX, what the GPU emulator needs
// to run the same kernel on a CPU: the NVVM-lowered kernel (the IR that
// became the PTX) with its NVVM operations turned into emulator calls
// (moeq-emulate-gpu-kernels), as LLVM bitcode defining
// `void <kernel>_packed(void **args)`, the cuLaunchKernel-style entry the
// runtime calls.
//
//===----------------------------------------------------------------------===//
#include "moeq/Passes/Export.h"
#include "moeq/Passes/Passes.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Target/LLVMIR/Export.h"

#include "llvm/Bitcode/BitcodeWriter.h"
#include "llvm/IR/LLVMContext.h"
#include "llvm/IR/Module.h"

using namespace mlir;
using namespace mlir::moeq;

void mlir::moeq::addPackedKernelWrappers(ModuleOp module) {
  MLIRContext *context = module.getContext();
  OpBuilder b(context);
  Location loc = module.getLoc();
  auto ptr = LLVM::LLVMPointerType::get(context);
  SmallVector<LLVM::LLVMFuncOp> kernels;
  for (auto func : module.getOps<LLVM::LLVMFuncOp>())
    if (!func.isExternal() && !func.getSymName().ends_with("_packed"))
      kernels.push_back(func);
  for (LLVM::LLVMFuncOp kernel : kernels) {
    b.setInsertionPointToEnd(module.getBody());
    auto wrapper = LLVM::LLVMFuncOp::create(
        b, loc, (kernel.getSymName() + "_packed").str(),
        LLVM::LLVMFunctionType::get(LLVM::LLVMVoidType::get(context), {ptr}));
    Block *entry = wrapper.addEntryBlock(b);
    b.setInsertionPointToStart(entry);
    // Argument i is *args[i], as cuLaunchKernel's kernelParams.
    SmallVector<Value> args;
    for (auto [i, type] : llvm::enumerate(kernel.getFunctionType().getParams())) {
      Value slot = LLVM::GEPOp::create(b, loc, ptr, ptr, entry->getArgument(0),
                                       ArrayRef<LLVM::GEPArg>{int32_t(i)});
      Value address = LLVM::LoadOp::create(b, loc, ptr, slot);
      args.push_back(LLVM::LoadOp::create(b, loc, type, address));
    }
    LLVM::CallOp::create(b, loc, kernel, args);
    LLVM::ReturnOp::create(b, loc, ValueRange{});
  }
}

FailureOr<std::vector<EmulationKernel>> mlir::moeq::buildEmulationKernels(ModuleOp module) {
  std::vector<EmulationKernel> kernels;
  for (auto gpuModule : module.getOps<gpu::GPUModuleOp>()) {
    // One module per kernel, like its PTX file.
    OwningOpRef<ModuleOp> host = ModuleOp::create(module.getLoc());
    OpBuilder b = OpBuilder::atBlockEnd(host->getBody());
    b.clone(*gpuModule);
    PassManager pm(module.getContext());
    pm.addPass(createEmulateGPUKernels());
    if (failed(pm.run(*host)))
      return gpuModule.emitError() << "cannot build the emulation module of this kernel";
    addPackedKernelWrappers(*host);
    llvm::LLVMContext llvmContext;
    std::unique_ptr<llvm::Module> llvmModule = translateModuleToLLVMIR(*host, llvmContext);
    if (!llvmModule)
      return gpuModule.emitError() << "cannot translate the emulation module to LLVM IR";
    EmulationKernel kernel{gpuModule.getSymName().str(), {}};
    llvm::raw_string_ostream os(kernel.bitcode);
    llvm::WriteBitcodeToFile(*llvmModule, os);
    kernels.push_back(std::move(kernel));
  }
  return kernels;
}
