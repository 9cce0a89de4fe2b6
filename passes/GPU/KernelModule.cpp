//===- KernelModule.cpp - the gpu.module holding one kernel ---------------===//
//
// Every kernel moeq emits lives in a `gpu.module` of its own name, so that
// it becomes one PTX file (and one emulation module) of the artifact.
//
//===----------------------------------------------------------------------===//
#include "KernelBuilders.h"

#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/SPIRV/IR/SPIRVAttributes.h"
#include "mlir/Dialect/SPIRV/IR/SPIRVDialect.h"
#include "mlir/Dialect/SPIRV/IR/TargetAndABI.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/SymbolTable.h"

using namespace mlir;
using namespace mlir::moeq;

/// A new `gpu.module @name` holding `gpu.func @name` of `argTypes`.
gpu::GPUFuncOp mlir::moeq::createKernelModule(ModuleOp module, SymbolTable &symbols,
                                            StringRef name, TargetAttr target,
                                            ArrayRef<Type> argTypes, int64_t threads,
                                            bool spirv) {
  OpBuilder b = OpBuilder::atBlockEnd(module.getBody());
  Location loc = module.getLoc();
  gpu::GPUModuleOp gpuModule;
  if (spirv) {
    // OpenCL SPIR-V (Kernel capability), e.g. for PoCL.
    using spirv::Capability;
    auto triple = spirv::VerCapExtAttr::get(
        spirv::Version::V_1_0,
        {Capability::Kernel, Capability::Addresses, Capability::Int64, Capability::Int8,
         Capability::Int16, Capability::Float16, Capability::Float16Buffer,
         Capability::Linkage},
        {}, module.getContext());
    gpuModule = gpu::GPUModuleOp::create(b, loc, name);
    gpuModule->setAttr(spirv::getTargetEnvAttrName(),
                       spirv::TargetEnvAttr::get(
                           triple, spirv::getDefaultResourceLimits(module.getContext())));
  } else {
    auto nvvmTarget = NVVM::NVVMTargetAttr::get(
        module.getContext(), /*optLevel=*/3, /*triple=*/"nvptx64-nvidia-cuda",
        target.getChip().getValue());
    gpuModule = gpu::GPUModuleOp::create(b, loc, name, b.getArrayAttr({nvvmTarget}));
  }
  symbols.insert(gpuModule);
  b.setInsertionPointToStart(gpuModule.getBody());
  auto func = gpu::GPUFuncOp::create(b, loc, name, b.getFunctionType(argTypes, {}));
  func->setAttr(gpu::GPUDialect::getKernelFuncAttrName(), b.getUnitAttr());
  func.setKnownBlockSizeAttr(b.getDenseI32ArrayAttr({int32_t(threads), 1, 1}));
  if (spirv) {
    func->setAttr(spirv::getEntryPointABIAttrName(),
                  spirv::getEntryPointABIAttr(module.getContext(), {int32_t(threads), 1, 1}));
    return func;
  }
  // .minnctapersm 1: without it ptxas may cap registers for occupancy
  // and spill; the tile was sized to fit the register file.
  func->setAttr(NVVM::NVVMDialect::getMinctasmAttrName(), b.getI32IntegerAttr(1));
  return func;
}

