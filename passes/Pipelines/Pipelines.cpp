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

namespace {
/// The quantizer options every assignment pass has under the same names.
template <typename PassOptions>
PassOptions withQuantizer(const CompileOptions &options) {
  PassOptions passOptions;
  passOptions.method = options.method;
  // (Statistics given for D^2-MoE only are not the quantizer's: round to
  // nearest takes none, except for the sensitivity of an allocation.)
  if (options.method != "rtn" || options.avgBits > 0)
    passOptions.statsPath = options.statsPath;
  passOptions.actOrder = options.actOrder;
  passOptions.mseClip = options.mseClip;
  passOptions.salienceClip = options.salienceClip;
  return passOptions;
}
} // namespace

void mlir::moeq::buildAssignSchemesPipeline(OpPassManager &pm,
                                            const CompileOptions &options) {
  if (options.avgBits > 0) {
    auto sensitivity = withQuantizer<EstimateSensitivityOptions>(options);
    sensitivity.schemeList = options.schemes;
    sensitivity.includeShared = options.includeShared;
    sensitivity.lossMode = options.sensitivity;
    sensitivity.progress = options.progress;
    sensitivity.threads = options.threads;
    sensitivity.priceGroupBits = options.groupBits && options.priceGroupBits;
    sensitivity.groupBitsRows = options.groupBitsRows;
    pm.addPass(createEstimateSensitivity(sensitivity));
    auto allocation = withQuantizer<AllocateBitsOptions>(options);
    allocation.avgBits = options.avgBits;
    allocation.granularity = options.granularity;
    allocation.r = options.r;
    allocation.tokens = options.tokens;
    allocation.gpuName = options.gpu;
    allocation.progress = options.progress;
    pm.addPass(createAllocateBits(allocation));
    return;
  }
  auto scheme = withQuantizer<AssignUniformSchemeOptions>(options);
  scheme.weightBits = options.weightBits;
  scheme.actBits = options.actBits;
  scheme.groupSize = options.groupSize;
  scheme.symmetric = options.symmetric;
  scheme.format = options.format;
  scheme.includeShared = options.includeShared;
  pm.addPass(createAssignUniformScheme(scheme));
}

void mlir::moeq::buildCompileGPUPipeline(OpPassManager &pm,
                                         const CompileOptions &options) {
  buildCompileToNVVMPipeline(pm, options);
  buildSerializeToPTXPipeline(pm);
}

void mlir::moeq::buildSerializeToPTXPipeline(OpPassManager &pm) {
  GpuModuleToBinaryPassOptions binary;
  binary.compilationTarget = "isa";
  pm.addPass(createGpuModuleToBinaryPass(binary));
}

void mlir::moeq::buildCompileToNVVMPipeline(OpPassManager &pm,
                                            const CompileOptions &options) {
  if (options.deltaCompression > 0) {
    DeltaDecompressOptions delta;
    delta.compression = options.deltaCompression;
    delta.merge = options.deltaMerge;
    delta.whiten = options.deltaWhiten;
    delta.sharedBasis = options.deltaSharedBasis;
    delta.prune = options.deltaPrune;
    delta.rankMultiple = options.deltaRankMultiple;
    delta.statsPath = options.statsPath;
    delta.outputPath = options.deltaOutput;
    delta.threads = options.threads;
    pm.addPass(createDeltaDecompress(delta));
  }
  buildAssignSchemesPipeline(pm, options);
  if (options.groupBits) {
    AssignGroupBitsOptions groupBits;
    groupBits.threads = options.threads;
    groupBits.search = options.groupBitsSearch;
    pm.addPass(createAssignGroupBits(groupBits));
  }
  MaterializeQuantizedParamsOptions materialize;
  materialize.outputPath = options.weightsOutput;
  materialize.threads = options.threads;
  pm.addPass(createMaterializeQuantizedParams(materialize));
  pm.addNestedPass<func::FuncOp>(createDecomposeMoE());
  TileExpertGemmsOptions tiling;
  tiling.tokens = options.tokens;
  tiling.gpuName = options.gpu;
  tiling.kernelPath = options.kernelPath;
  tiling.persistent = options.persistent;
  pm.addPass(createTileExpertGemms(tiling));
  LowerExpertGemmsToGPUOptions kernels;
  kernels.chip = options.chip;
  pm.addPass(createLowerExpertGemmsToGPU(kernels));
  ConvertToLaunchPlanOptions plan;
  plan.gpuName = options.gpu;
  pm.addPass(createConvertToLaunchPlan(plan));

  buildLowerGPUModulesToNVVMPipeline(pm);
}

void mlir::moeq::buildLowerGPUModulesToNVVMPipeline(OpPassManager &pm) {
  // Weights are static memrefs and lower to bare pointers; activations
  // already are pointers (see LowerExpertGemmsToGPU).
  OpPassManager &gpuPm = pm.nest<gpu::GPUModuleOp>();
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
  pm.addNestedPass<func::FuncOp>(createConvertLinalgToLoopsPass());
  // erf (GeLU) has no LLVM intrinsic: call libm.
  pm.addPass(createConvertMathToLibmPass());
  pm.addPass(memref::createExpandStridedMetadataPass());
  pm.addPass(createLowerAffinePass());
  pm.addPass(createSCFToControlFlowPass());
  pm.addPass(createConvertToLLVMPass());
  pm.addPass(createReconcileUnrealizedCastsPass());
}

namespace {
struct CompileGPUPipelineOptions
    : public PassPipelineOptions<CompileGPUPipelineOptions> {
  Option<unsigned> bits{*this, "bits", llvm::cl::desc("weight bits"),
                        llvm::cl::init(4)};
  Option<int64_t> groupSize{*this, "group-size",
                            llvm::cl::desc("columns per scale (0 = per channel)"),
                            llvm::cl::init(128)};
  Option<std::string> format{*this, "format", llvm::cl::desc("int or lut"),
                             llvm::cl::init("int")};
  Option<bool> symmetric{*this, "symmetric", llvm::cl::desc("symmetric"),
                         llvm::cl::init(false)};
  Option<bool> includeShared{*this, "include-shared",
                             llvm::cl::desc("also quantize shared experts"),
                             llvm::cl::init(false)};
  Option<std::string> method{*this, "method", llvm::cl::desc("rtn, gptq or agq"),
                             llvm::cl::init("rtn")};
  Option<std::string> stats{*this, "stats",
                            llvm::cl::desc("calibration statistics (GPTQ/AGQ Hessians)")};
  Option<bool> actOrder{*this, "act-order", llvm::cl::desc("GPTQ act-order"),
                        llvm::cl::init(false)};
  Option<bool> mseClip{*this, "mse-clip", llvm::cl::desc("clipping range search"),
                       llvm::cl::init(false)};
  Option<bool> salienceClip{*this, "salience-clip",
                            llvm::cl::desc("SliM-LLM salience-weighted range calibration"),
                            llvm::cl::init(false)};
  Option<std::string> chip{*this, "chip", llvm::cl::desc("sm_80, sm_90, ..."),
                           llvm::cl::init("sm_80")};
  Option<std::string> weights{*this, "weights",
                              llvm::cl::desc("output archive of packed weights")};
  Option<double> avgBits{*this, "avg-bits",
                         llvm::cl::desc("mixed precision at this budget (0 = uniform --bits)"),
                         llvm::cl::init(0.0)};
  Option<std::string> schemes{*this, "schemes", llvm::cl::desc("candidate schemes"),
                              llvm::cl::init(kDefaultCandidateSchemes)};
  Option<std::string> granularity{*this, "granularity", llvm::cl::desc("linear, expert or layer"),
                                  llvm::cl::init("linear")};
  Option<std::string> sensitivity{*this, "sensitivity",
                                  llvm::cl::desc("loss: auto, output or hessian"),
                                  llvm::cl::init("auto")};
  Option<double> r{*this, "r", llvm::cl::desc("accuracy weight of the allocation"),
                   llvm::cl::init(1.0)};
  Option<int64_t> tokens{*this, "tokens", llvm::cl::desc("tokens per step (cost model)"),
                         llvm::cl::init(512)};
  Option<std::string> kernelPath{*this, "kernel-path",
                                 llvm::cl::desc("kernel family: auto, mma or simt"),
                                 llvm::cl::init("auto")};
  Option<bool> persistent{*this, "persistent",
                          llvm::cl::desc("one persistent launch per layer across precision mixes"),
                          llvm::cl::init(true)};
  Option<bool> groupBits{*this, "group-bits",
                         llvm::cl::desc("SliM-LLM group-wise widths inside each linear"),
                         llvm::cl::init(false)};
  Option<unsigned> threads{*this, "threads",
                           llvm::cl::desc("quantization threads (0: all cores; same output "
                                          "for any count)"),
                           llvm::cl::init(0)};
};
} // namespace

void mlir::moeq::registerPipelines() {
  PassPipelineRegistration<CompileGPUPipelineOptions>(
      "moeq-compile-gpu",
      "quantize the routed experts, decompose the MoE blocks and compile the "
      "expert GEMMs to PTX (gpu.binary)",
      [](OpPassManager &pm, const CompileGPUPipelineOptions &opts) {
        CompileOptions options;
        options.weightBits = opts.bits;
        options.groupSize = opts.groupSize;
        options.symmetric = opts.symmetric;
        options.format = opts.format;
        options.includeShared = opts.includeShared;
        options.method = opts.method;
        options.statsPath = opts.stats;
        options.actOrder = opts.actOrder;
        options.mseClip = opts.mseClip;
        options.salienceClip = opts.salienceClip;
        options.chip = opts.chip;
        options.weightsOutput = opts.weights;
        options.avgBits = opts.avgBits;
        options.schemes = opts.schemes;
        options.granularity = opts.granularity;
        options.sensitivity = opts.sensitivity;
        options.r = opts.r;
        options.tokens = opts.tokens;
        options.groupBits = opts.groupBits;
        options.kernelPath = opts.kernelPath;
        options.persistent = opts.persistent;
        options.threads = opts.threads;
        buildCompileGPUPipeline(pm, options);
      });
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
