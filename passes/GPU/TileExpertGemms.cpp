//===- TileExpertGemms.cpp - kernel path and tile per precision mix -------===//
//
// MxMoE's kernel tiling: the expert GEMMs of a `moeq.grouped_matmul` are
// grouped by precision mix (the weight type: scheme, group widths, shape),
// and each mix gets the kernel the cost model predicts fastest at the
// expected rows per expert: the tensor-core kernel with its tile (BM, BN,
// BK, warps, stages) or the SIMT decode kernel. Rows per expert are
// `tokens * top_k / experts` (uniform routing), `top_k` read from the
// dispatch feeding the op; shared-expert linears see all `tokens`.
//
//===----------------------------------------------------------------------===//
#include "moeq/Dialect/MoEQ/IR/MoEQ.h"
#include "moeq/Passes/Kernels.h"
#include "moeq/Passes/Passes.h"

#include "mlir/IR/BuiltinOps.h"

#include <cmath>

namespace mlir::moeq {
#define GEN_PASS_DEF_TILEEXPERTGEMMS
#include "moeq/Passes/Passes.h.inc"
} // namespace mlir::moeq

using namespace mlir;
using namespace mlir::moeq;

namespace {

struct TileExpertGemmsPass : mlir::moeq::impl::TileExpertGemmsBase<TileExpertGemmsPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (tokens <= 0) {
      module.emitError() << "tokens must be positive, got " << int64_t(tokens);
      return signalPassFailure();
    }
    const cost::GpuSpec *priced = resolveCostModelGpu(module, gpuName);
    if (!priced)
      return signalPassFailure();
    // The tiles must fit the target chip's shared memory even when another
    // GPU is priced (--gpu h100 for sm_80 kernels).
    cost::GpuSpec limited = *priced;
    if (auto target = module->getAttrOfType<TargetAttr>(kTargetAttrName))
      limited = cost::limitToChip(*priced, target.getChip().getValue());
    const cost::GpuSpec *gpu = &limited;
    std::optional<cost::KernelPath> path = toCostModelPath(kernelPath);
    auto choose = [&](Operation *op, int64_t rows, Type weightType) {
      cost::KernelChoice choice = chooseKernelFor(*gpu, rows, weightType, *path);
      if (*path == cost::KernelPath::TensorCore && !choice.tensorCore)
        op->emitWarning() << "no tensor-core tile can be emitted for " << weightType
                          << "; using the SIMT kernel";
      return getTileConfig(&getContext(), choice);
    };
    module.walk([&](GroupedMatmulOp op) {
      int64_t rows = rowsPerExpert(op);
      // One choice per precision mix: groups with equal weight types share it.
      llvm::DenseMap<Type, TileConfigAttr> perMix;
      SmallVector<Attribute> tiles;
      SmallVector<Type> types;
      for (Value weight : op.getWeights()) {
        TileConfigAttr &tile = perMix[weight.getType()];
        if (!tile)
          tile = choose(op, rows, weight.getType());
        tiles.push_back(tile);
        types.push_back(weight.getType());
      }
      if (persistent && *path != cost::KernelPath::Simt)
        fuseIntoPersistentLaunch(op, *gpu, rows, types, tiles);
      op.setTilesAttr(ArrayAttr::get(&getContext(), tiles));
      op->setAttr(kRowsPerExpertAttrName,
                  IntegerAttr::get(IntegerType::get(&getContext(), 64), rows));
    });
    module.walk([&](LinearOp op) {
      op.setTileAttr(choose(op, tokens, op.getWeight().getType()));
    });
  }

  /// MxMoE's layer-wide launch: when every mix runs on tensor cores with
  /// the same activation format, re-choose the tiles with one warp count
  /// (the one of least total predicted time) and mark the op for a single
  /// persistent kernel; otherwise keep one launch per mix.
  void fuseIntoPersistentLaunch(GroupedMatmulOp op, const cost::GpuSpec &gpu, int64_t rows,
                                ArrayRef<Type> types, SmallVector<Attribute> &tiles) {
    auto asTiles = [](ArrayRef<Attribute> attrs) {
      return llvm::map_to_vector(attrs, [](Attribute a) { return cast<TileConfigAttr>(a); });
    };
    // Mixes the cost model sends to the SIMT kernel stay separate launches.
    if (types.size() < 2 ||
        llvm::any_of(tiles, [](Attribute a) { return !cast<TileConfigAttr>(a).isTensorCore(); }))
      return;
    std::optional<SmallVector<Attribute>> best;
    double bestSeconds = 0;
    for (int64_t warps : {4, 8}) {
      llvm::DenseMap<Type, cost::KernelChoice> perMix;
      SmallVector<Attribute> candidate;
      double seconds = 0;
      bool emittable = true;
      for (Type type : types) {
        auto [it, inserted] = perMix.try_emplace(type);
        if (inserted)
          it->second = chooseKernelFor(gpu, rows, type, cost::KernelPath::TensorCore, warps,
                                       /*allowSplitK=*/false);
        emittable &= it->second.tensorCore;
        seconds += it->second.cost.seconds;
        candidate.push_back(getTileConfig(&getContext(), it->second));
      }
      if (emittable && (!best || seconds < bestSeconds)) {
        best = candidate;
        bestSeconds = seconds;
      }
    }
    if (!best || !checkPersistentLaunch(types, asTiles(*best)).empty())
      return;
    tiles = *best;
    op->setAttr(kPersistentAttrName, UnitAttr::get(&getContext()));
  }

  /// Expected rows of each group: tokens * top_k / experts.
  int64_t rowsPerExpert(GroupedMatmulOp op) {
    int64_t groups = op.getWeights().size();
    int64_t topK = 1;
    if (auto dispatch = op.getOffsets().getDefiningOp<DispatchOp>()) {
      int64_t k = dispatch.getIndices().getType().getDimSize(1);
      if (k != ShapedType::kDynamic)
        topK = k;
      groups = dispatch.getNumExperts();
    }
    return std::max<int64_t>(1, int64_t(std::ceil(double(tokens) * topK / groups)));
  }
};

} // namespace
