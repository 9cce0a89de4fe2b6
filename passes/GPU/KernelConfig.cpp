//===- KernelConfig.cpp - naming and sizing of the emitted GEMM kernels ---===//
#include "moeq/Passes/Kernels.h"

#include "KernelBuilders.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/Parser/Parser.h"

#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/xxhash.h"

using namespace mlir;
using namespace mlir::moeq;

cost::WeightFormat mlir::moeq::getWeightFormat(SchemeAttr scheme) {
  cost::WeightFormat format{scheme.getWeightBits(), scheme.getActBits(),
                            scheme.getGroupSize(), scheme.getSymmetric()};
  format.levelTable = scheme.isLevelTable();
  return format;
}

cost::WeightFormat mlir::moeq::getWeightFormat(Type weightType) {
  auto packed = dyn_cast<PackedWeightType>(weightType);
  if (!packed)
    return {};
  cost::WeightFormat format = getWeightFormat(packed.getScheme());
  format.groupWidths = packed.hasGroupBits();
  // The widths live in the (uniqued, context-owned) type storage.
  format.groupBits = packed.getGroupBits();
  return format;
}

cost::Tile mlir::moeq::toCostTile(TileConfigAttr tile) {
  return {tile.getBm(),     tile.getBn(),     tile.getBk(),
          tile.getWarps(),  tile.getStages(), tile.getSplitK(),
          tile.isWarpGroupMma()};
}

TileConfigAttr mlir::moeq::getTileConfig(MLIRContext *context,
                                         const cost::KernelChoice &choice) {
  const cost::Tile &t = choice.tile;
  KernelFamily family = !choice.tensorCore ? KernelFamily::Simt
                        : t.warpGroup      ? KernelFamily::WarpGroupMma
                                           : KernelFamily::TensorCore;
  return TileConfigAttr::get(context, family, t.bm, t.bn, t.bk, t.warps, t.stages, t.splitK);
}

const cost::GpuSpec *mlir::moeq::resolveCostModelGpu(ModuleOp module, StringRef gpuName) {
  if (!gpuName.empty()) {
    if (const cost::GpuSpec *spec = cost::lookupGpu(gpuName))
      return spec;
    module.emitError() << "unknown GPU '" << gpuName
                       << "' for the cost model (known: a100, h100, h200, rtx4090)";
    return nullptr;
  }
  StringRef chip = "sm_90";
  if (auto target = module->getAttrOfType<TargetAttr>(kTargetAttrName))
    chip = target.getChip().getValue();
  if (const cost::GpuSpec *spec = cost::defaultGpuForChip(chip))
    return spec;
  module.emitError() << "the cost model has no GPU for target '" << chip
                     << "'; name one with the 'gpu' option";
  return nullptr;
}

cost::KernelPath mlir::moeq::toCostModelPath(GemmKernelPath path) {
  switch (path) {
  case GemmKernelPath::Auto:
    return cost::KernelPath::Auto;
  case GemmKernelPath::TensorCore:
    return cost::KernelPath::TensorCore;
  case GemmKernelPath::Simt:
    return cost::KernelPath::Simt;
  }
  llvm_unreachable("unknown kernel path");
}

cost::KernelChoice mlir::moeq::chooseKernelFor(const cost::GpuSpec &gpu, int64_t m,
                                               Type weightType, cost::KernelPath path,
                                               int64_t warps, bool allowSplitK) {
  ArrayRef<int64_t> shape = getWeightShape(weightType);
  cost::KernelChoice choice = cost::chooseKernel(gpu, m, shape[0], shape[1],
                                                 getWeightFormat(weightType), path, warps,
                                                 allowSplitK);
  // The tensor-core kernel stores output column pairs of whole m16n8 tiles.
  if (shape[0] % 8 && choice.tensorCore) {
    choice.tensorCore = false;
    choice.tile = cost::Tile{1, cost::kSimtBlock, 32, cost::kSimtBlock / 32, 1, 1};
    choice.cost = cost::estimateSimtGemm(gpu, m, shape[0], shape[1], getWeightFormat(weightType));
  }
  return choice;
}

std::string mlir::moeq::getGemmKernelName(Type weightType, TileConfigAttr tile,
                                          int64_t inputCols) {
  ArrayRef<int64_t> shape = getWeightShape(weightType);
  std::string name = "gemm_";
  if (auto packed = dyn_cast<PackedWeightType>(weightType)) {
    name += packed.getScheme().getMangledName();
    // Group-wise widths are compiled into the kernel: one per pattern.
    if (packed.hasGroupBits()) {
      name += "_gb";
      for (int64_t bits : packed.getGroupBits())
        name += std::to_string(bits);
    }
  } else {
    name += "f16";
  }
  name += "_n" + std::to_string(shape[0]) + "_k" + std::to_string(shape[1]);
  if (inputCols > shape[1])
    name += "_x" + std::to_string(inputCols);
  if (!tile.isTensorCore())
    return name + "_simt";
  name += (tile.isWarpGroupMma() ? "_wgmma" : "_mma") + std::to_string(tile.getBm()) + "x" + std::to_string(tile.getBn()) + "x" +
          std::to_string(tile.getBk()) + "w" + std::to_string(tile.getWarps()) + "s" +
          std::to_string(tile.getStages());
  if (tile.getSplitK() > 1)
    name += "k" + std::to_string(tile.getSplitK());
  return name;
}

std::string mlir::moeq::getSplitKReduceKernelName(int64_t n, int64_t splitK) {
  return "splitk_reduce_n" + std::to_string(n) + "_s" + std::to_string(splitK);
}

std::string mlir::moeq::getActivationQuantKernelName(PackedWeightType weightType) {
  return "quant_a" + std::to_string(weightType.getScheme().getActBits()) + "_k" +
         std::to_string(weightType.getInputDim());
}

static unsigned activationBitsOf(Type weightType) {
  auto packed = dyn_cast<PackedWeightType>(weightType);
  return packed ? packed.getScheme().getActBits() : 16;
}

std::string mlir::moeq::checkPersistentLaunch(ArrayRef<Type> weightTypes,
                                              ArrayRef<TileConfigAttr> tiles) {
  if (weightTypes.size() != tiles.size() || weightTypes.empty())
    return "one tile per group is needed";
  for (auto [type, tile] : llvm::zip_equal(weightTypes, tiles)) {
    if (!tile.isTensorCore())
      return "a group runs the SIMT kernel";
    if (tile.isWarpGroupMma())
      return "a group runs a wgmma tile (the persistent scheduler runs mma.sync tiles)";
    if (tile.getWarps() != tiles.front().getWarps())
      return "the groups' tiles have different warp counts";
    if (tile.getSplitK() != 1)
      return "a group splits K";
    if (activationBitsOf(type) != activationBitsOf(weightTypes.front()))
      return "the groups quantize their activations differently";
  }
  return "";
}

std::string mlir::moeq::getGroupedKernelName(ArrayRef<Type> weightTypes,
                                             ArrayRef<TileConfigAttr> tiles) {
  std::string key;
  llvm::raw_string_ostream os(key);
  for (auto [type, tile] : llvm::zip_equal(weightTypes, tiles))
    os << type << tile << ";";
  ArrayRef<int64_t> shape = getWeightShape(weightTypes.front());
  return llvm::formatv("moe_gemm_n{0}_k{1}_e{2}_{3:x16}", shape[0], shape[1],
                       weightTypes.size(), llvm::xxh3_64bits(key));
}

int64_t mlir::moeq::getGroupedKernelSharedBytes(ArrayRef<Type> weightTypes,
                                                ArrayRef<TileConfigAttr> tiles) {
  return getGroupedGemmSharedBytes(weightTypes, tiles);
}

int64_t mlir::moeq::getKernelSharedBytes(Type weightType, TileConfigAttr tile) {
  return tile.isTensorCore() ? getTensorCoreSharedBytes(weightType, tile) : 0;
}

OwningOpRef<ModuleOp> mlir::moeq::buildSingleGemmModule(MLIRContext *context, Type weightType,
                                                        TileConfigAttr tile, StringRef chip,
                                                        int64_t inputCols) {
  ArrayRef<int64_t> shape = getWeightShape(weightType);
  std::string typeText, tileText;
  llvm::raw_string_ostream(typeText) << weightType;
  llvm::raw_string_ostream(tileText) << tile;
  if (inputCols > shape[1]) {
    // A `leading_inputs` linear: rows of inputCols activations.
    std::string source = llvm::formatv(
        R"mlir(module attributes {{moeq.target = #moeq.target<"{0}">} {{
  func.func @gemm(%x: tensor<?x{1}xf32>) -> tensor<?x{2}xf32> {{
    %w = moeq.param <"quant", "w"> : {3}
    %y = moeq.linear %x, %w {{leading_inputs, tile = {4}}
        : tensor<?x{1}xf32>, {3} -> tensor<?x{2}xf32>
    return %y : tensor<?x{2}xf32>
  }
})mlir",
        chip, inputCols, shape[0], typeText, tileText);
    return parseSourceString<ModuleOp>(source, context);
  }
  std::string source = llvm::formatv(
      R"mlir(module attributes {{moeq.target = #moeq.target<"{0}">} {{
  func.func @gemm(%x: tensor<?x{1}xf32>, %o: tensor<2xi32>) -> tensor<?x{2}xf32> {{
    %w = moeq.param <"quant", "w"> : {3}
    %y = moeq.grouped_matmul %x, %o weights(%w : {3}) {{tiles = [{4}]}
        : tensor<?x{1}xf32>, tensor<2xi32> -> tensor<?x{2}xf32>
    return %y : tensor<?x{2}xf32>
  }
})mlir",
      chip, shape[1], shape[0], typeText, tileText);
  return parseSourceString<ModuleOp>(source, context);
}

SmallVector<Type> mlir::moeq::getWeightArgumentTypes(MLIRContext *context, Type weightType) {
  Builder b(context);
  auto global = gpu::AddressSpaceAttr::get(context, gpu::AddressSpace::Global);
  auto globalMemRef = [&](ArrayRef<int64_t> shape, Type element) -> Type {
    return MemRefType::get(shape, element, MemRefLayoutAttrInterface(), global);
  };
  ArrayRef<int64_t> shape = getWeightShape(weightType);
  auto packed = dyn_cast<PackedWeightType>(weightType);
  if (!packed)
    return {globalMemRef({shape[0], shape[1]}, b.getF16Type())};
  SmallVector<Type> types;
  for (StringRef suffix : packed.getScheme().getStorageSuffixes())
    types.push_back(globalMemRef({shape[0], packed.getStorageRowLength(suffix)},
                                 suffix == ".qweight" ? Type(b.getI32Type())
                                                      : Type(b.getF16Type())));
  return types;
}
