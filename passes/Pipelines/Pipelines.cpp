//===- Pipelines.cpp - the compile pipelines as registered pass pipelines -===//
//
// moeq-compile, moeq-opt and the tests all run these same pipelines.
//
//===----------------------------------------------------------------------===//
#include "moeq/Dialect/MoEQ/IR/MoEQ.h"
#include "moeq/Passes/Passes.h"

#include "mlir/Conversion/MathToLibm/MathToLibm.h"
#include "mlir/Conversion/Passes.h"
#include "mlir/Dialect/Bufferization/Transforms/Passes.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/GPU/Transforms/Passes.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/Linalg/Passes.h"
#include "mlir/Dialect/MemRef/Transforms/Passes.h"
#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassOptions.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Target/LLVM/NVVM/Target.h"
#include "mlir/Target/LLVMIR/Dialect/All.h"
#include "mlir/Transforms/Passes.h"

using namespace mlir;
using namespace mlir::moeq;

#include "moeq/Passes/PassEnums.cpp.inc"

namespace {
/// `PassOptionsT` with every option the pipeline forwards to it
/// (Pipelines.td), before the pipeline's own adjustments.
template <typename PassOptionsT, typename PipelineOptionsT>
PassOptionsT forwarded(const PipelineOptionsT &options) {
  PassOptionsT passOptions;
  copyPipelineOptions(options, passOptions);
  return passOptions;
}

/// The statistics a quantizer takes: round to nearest takes none, except
/// for the sensitivity of an allocation (statistics given for D^2-MoE only
/// are not the quantizer's).
std::string quantizerStatistics(const CompileGPUPipelineOptions &options) {
  if (options.method == QuantMethod::RTN && options.avgBits <= 0)
    return "";
  return options.statsPath;
}
} // namespace

void mlir::moeq::buildQuantizePipeline(OpPassManager &pm,
                                       const QuantizePipelineOptions &options) {
  pm.addPass(createAssignUniformScheme(forwarded<AssignUniformSchemeOptions>(options)));
  pm.addPass(
      createMaterializeQuantizedParams(forwarded<MaterializeQuantizedParamsOptions>(options)));
}

void mlir::moeq::buildAssignSchemesPipeline(OpPassManager &pm,
                                            const CompileGPUPipelineOptions &options) {
  if (options.avgBits > 0) {
    auto sensitivity = forwarded<EstimateSensitivityOptions>(options);
    sensitivity.statsPath = quantizerStatistics(options);
    // The widths are priced only where they will be assigned.
    sensitivity.priceGroupBits = options.groupBits && options.priceGroupBits;
    pm.addPass(createEstimateSensitivity(sensitivity));
    auto allocation = forwarded<AllocateBitsOptions>(options);
    allocation.statsPath = quantizerStatistics(options);
    pm.addPass(createAllocateBits(allocation));
    return;
  }
  auto scheme = forwarded<AssignUniformSchemeOptions>(options);
  scheme.statsPath = quantizerStatistics(options);
  pm.addPass(createAssignUniformScheme(scheme));
}

void mlir::moeq::buildCompileGPUPipeline(OpPassManager &pm,
                                         const CompileGPUPipelineOptions &options) {
  buildCompileToNVVMPipeline(pm, options);
  buildSerializeToPTXPipeline(pm);
}

void mlir::moeq::buildSerializeToPTXPipeline(OpPassManager &pm) {
  // NVVM operations without an LLVM intrinsic (wgmma.mma_async) become
  // inline PTX; the emulator (moeq-emulate-gpu-kernels) still sees them as
  // NVVM operations before this step.
  pm.addNestedPass<gpu::GPUModuleOp>(createConvertNVVMToLLVMPass());
  GpuModuleToBinaryPassOptions binary;
  binary.compilationTarget = "isa";
  pm.addPass(createGpuModuleToBinaryPass(binary));
}

void mlir::moeq::buildCompileToNVVMPipeline(OpPassManager &pm,
                                            const CompileGPUPipelineOptions &options) {
  pm.addPass(createSetTarget(forwarded<SetTargetOptions>(options)));
  if (options.deltaCompression > 0)
    pm.addPass(createDeltaDecompress(forwarded<DeltaDecompressOptions>(options)));
  buildAssignSchemesPipeline(pm, options);
  if (options.groupBits)
    pm.addPass(createAssignGroupBits(forwarded<AssignGroupBitsOptions>(options)));
  pm.addPass(
      createMaterializeQuantizedParams(forwarded<MaterializeQuantizedParamsOptions>(options)));
  pm.addNestedPass<func::FuncOp>(createDecomposeMoE());
  pm.addPass(createTileExpertGemms(forwarded<TileExpertGemmsOptions>(options)));
  pm.addPass(createLowerExpertGemmsToGPU(forwarded<LowerExpertGemmsToGPUOptions>(options)));
  pm.addPass(createConvertToLaunchPlan(forwarded<ConvertToLaunchPlanOptions>(options)));
  buildLowerGPUModulesToNVVMPipeline(pm);
}

void mlir::moeq::buildLowerGPUModulesToNVVMPipeline(OpPassManager &pm) {
  // Weights are static memrefs and lower to bare pointers; activations
  // already are pointers (see LowerExpertGemmsToGPU).
  OpPassManager &gpuPm = pm.nest<gpu::GPUModuleOp>();
  gpuPm.addPass(createPipelineTileLoads());
  gpuPm.addPass(createLowerTileOps());
  gpuPm.addPass(createSwizzleTileOperands());
  gpuPm.addPass(createLowerDequantization());
  gpuPm.addPass(createConvertNVGPUToNVVMPass());
  gpuPm.addPass(createSCFToControlFlowPass());
  ConvertGpuOpsToNVVMOpsOptions nvvm;
  nvvm.indexBitwidth = 64;
  nvvm.useBarePtrCallConv = true;
  gpuPm.addPass(createConvertGpuOpsToNVVMOps(nvvm));
  gpuPm.addPass(createCanonicalizerPass());
  gpuPm.addPass(createCSEPass());
  gpuPm.addPass(createReconcileUnrealizedCastsPass());
}

void mlir::moeq::buildLowerToCPUPipeline(OpPassManager &pm) {
  pm.addNestedPass<func::FuncOp>(createDecomposeMoE());
  pm.addPass(createConvertMoEQToLinalg());
  pm.addPass(createLowerDequantization());
  pm.addNestedPass<func::FuncOp>(createConvertLinalgToLoopsPass());
  // erf (GeLU) has no LLVM intrinsic: call libm.
  pm.addPass(createConvertMathToLibmPass());
  pm.addPass(memref::createExpandStridedMetadataPass());
  pm.addPass(createLowerAffinePass());
  pm.addPass(createSCFToControlFlowPass());
  pm.addPass(createConvertToLLVMPass());
  pm.addPass(createReconcileUnrealizedCastsPass());
}

void mlir::moeq::registerPipelines() {
  PassPipelineRegistration<CompileGPUPipelineOptions>(
      "moeq-compile-gpu",
      "quantize the routed experts, decompose the MoE blocks and compile the "
      "expert GEMMs to PTX (gpu.binary); moeq-compile's flags are its options",
      buildCompileGPUPipeline);
  PassPipelineRegistration<QuantizePipelineOptions>(
      "moeq-quantize",
      "quantize every routed-expert weight to one scheme and pack it into `weights` "
      "(moeq-cpu-runner --bits)",
      buildQuantizePipeline);
  PassPipelineRegistration<>(
      "moeq-lower-to-cpu",
      "lower (quantized) MoE layers to LLVM for the CPU ExecutionEngine",
      [](OpPassManager &pm) { buildLowerToCPUPipeline(pm); });
}

void mlir::moeq::registerAllMoEQDependencies(DialectRegistry &registry) {
  registry.insert<MoEQDialect>();
  registerAllDialects(registry);
  registerAllExtensions(registry);
  registerAllToLLVMIRTranslations(registry);
  NVVM::registerNVVMTargetInterfaceExternalModels(registry);
}
